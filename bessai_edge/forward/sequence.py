"""The sequence numbers of the records the forwarder reads, and the gaps between them.

``seq`` grows by one from record to record of a gateway, so a jump means records that
were never forwarded: evicted by the spool's size cap, dropped on a full disk, or on a
damaged line that was skipped. Each gap is logged once, with its most likely cause,
even when a reconnect reads the same records again.
"""

import logging

logger = logging.getLogger("bessai_edge.forward.forwarder")  # the forwarder's log lines


class SequenceCheck:
    """The sequence numbers of the records read in spool order, each jump logged once."""

    def __init__(self, reader, last_seq=None):
        self.reader = reader          # its skipped_lines counts lines it did not hand out
        self.gaps = 0                 # sequence gaps seen since start
        self.missing_records = 0      # records those gaps left out
        self._last_seq = last_seq     # seq of the last record read
        self._damaged = 0             # lines skipped as not a record after that one
        self._reader_skips_seen = 0   # reader.skipped_lines at the last record read
        # (first, last) of each gap logged past the last rewind, so that reading the
        # same records again logs no gap twice but does log records lost since.
        self._logged_gaps = []

    def damaged_line(self):
        """Count a line after the last record read that was not a record."""
        self._damaged += 1

    def rewind(self, seq):
        """Read again after the record ``seq`` (None for the oldest), as after a reconnect."""
        self._last_seq = seq
        self._damaged = 0
        if seq is not None:
            self.acknowledged(seq)

    def acknowledged(self, seq):
        """Forget the logged gaps up to record ``seq``: no rewind reads them again."""
        if self._logged_gaps and self._logged_gaps[0][1] <= seq:
            self._logged_gaps = [gap for gap in self._logged_gaps if gap[1] > seq]

    def start_again(self):
        """Forget everything read: the spool is read again from its oldest record."""
        self.rewind(None)
        self._logged_gaps = []

    def check(self, seq, position):
        """Take the record ``seq`` read at ``position``; log a jump once."""
        previous = self._last_seq
        # Lines the reader skipped (a cut end, NUL bytes) count as damaged like bad records.
        reader_skips = self.reader.skipped_lines
        damaged = self._damaged + reader_skips - self._reader_skips_seen
        self._reader_skips_seen = reader_skips
        self._last_seq = seq
        self._damaged = 0
        if previous is None or seq == previous + 1:
            return
        if seq <= previous:
            self._logged_gaps = []   # the logged gaps belong to the old numbering
            logger.warning("sequence number went back from %d to %d at spool segment %d: "
                           "was the spool directory replaced?", previous, seq, position[0],
                           extra={"BESSAI_EVENT": "sequence_reset", "BESSAI_SPOOL_SEQ": seq})
            return
        # After a reconnect the same records are read again. The jump may then cover a
        # gap logged the first time, records read then and evicted since, or both.
        for first, last in _subtract(previous + 1, seq - 1, self._logged_gaps):
            self._log_gap(first, last, seq, damaged)

    def _log_gap(self, first, last, seq, damaged):
        missing = last - first + 1
        self.gaps += 1
        self.missing_records += missing
        self._logged_gaps.append((first, last))
        logger.warning("sequence gap: records %d to %d (%d) %s", first, last, missing,
                       _gap_cause(missing, damaged),
                       extra={"BESSAI_EVENT": "sequence_gap", "BESSAI_SPOOL_SEQ": seq})


def _subtract(first, last, ranges):
    """Return the parts of ``first..last`` (inclusive) that no range in ``ranges`` covers."""
    parts = [(first, last)]
    for covered_first, covered_last in ranges:
        remaining = []
        for part_first, part_last in parts:
            if covered_last < part_first or covered_first > part_last:
                remaining.append((part_first, part_last))
                continue
            if part_first < covered_first:
                remaining.append((part_first, covered_first - 1))
            if covered_last < part_last:
                remaining.append((covered_last + 1, part_last))
        parts = remaining
    return parts


def _gap_cause(missing, damaged):
    """Return why ``missing`` records are absent when ``damaged`` lines were skipped there."""
    evicted = ("evicted by the spool's size cap, dropped on a full disk, or deleted from the "
               "spool directory by hand before they could be forwarded")
    if not damaged:
        return f"are not in the spool; they were {evicted}"
    lines = "line" if damaged == 1 else "lines"
    if damaged >= missing:
        return f"were not forwarded: the damaged {lines} skipped there (logged above)"
    return (f"were not forwarded: {damaged} damaged {lines} skipped there (logged above); "
            f"the others were {evicted}")
