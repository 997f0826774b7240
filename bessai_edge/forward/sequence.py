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
        self._highest_checked = last_seq or 0

    def damaged_line(self):
        """Count a line after the last record read that was not a record."""
        self._damaged += 1

    def rewind(self, seq):
        """Read again after the record ``seq`` (None for the oldest), as after a reconnect."""
        self._last_seq = seq
        self._damaged = 0

    def start_again(self):
        """Forget everything read: the spool is read again from its oldest record."""
        self.rewind(None)
        self._highest_checked = 0

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
            self._highest_checked = max(self._highest_checked, seq)
            return
        if seq <= previous:
            self._highest_checked = seq
            logger.warning("sequence number went back from %d to %d at spool segment %d: "
                           "was the spool directory replaced?", previous, seq, position[0],
                           extra={"BESSAI_EVENT": "sequence_reset", "BESSAI_SPOOL_SEQ": seq})
            return
        if seq <= self._highest_checked:
            return  # read again after a reconnect: logged the first time
        self._highest_checked = seq
        missing = seq - previous - 1
        self.gaps += 1
        self.missing_records += missing
        logger.warning("sequence gap: records %d to %d (%d) %s", previous + 1, seq - 1, missing,
                       _gap_cause(missing, damaged),
                       extra={"BESSAI_EVENT": "sequence_gap", "BESSAI_SPOOL_SEQ": seq})


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
