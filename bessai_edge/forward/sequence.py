"""The sequence numbers of the records the forwarder reads, and the gaps between them.

``seq`` grows by one from record to record of a gateway, so a jump means records that
were never forwarded: evicted by the spool's size cap, dropped on a full disk, on a
damaged line that was skipped, or set aside in a ``.corrupt`` file by the start-up
repair of ``bessai run``. Each gap is logged once, with its most likely cause,
even when a reconnect reads the same records again.

A number that goes back has two causes under one spool id. The start-up repair of
``bessai run`` moves the valid records after a damaged line to a new segment, so
records the broker already acknowledged come again: they are skipped. After a crash or
power cut the writer hands out the numbers of records lost with the page cache again,
so new records carry numbers already delivered: they are forwarded. The records'
``boot_id`` and ``mono_s`` tell the two apart (``stamp.written_by``). When they cannot,
the record is forwarded, because a duplicate is better than a lost record.
"""

import logging

from bessai_edge.forward.stamp import describe_newer, written_by
from bessai_edge.spool.set_aside import files_for_gap

logger = logging.getLogger("bessai_edge.forward.forwarder")  # the forwarder's log lines


class SequenceCheck:
    """The sequence numbers of the records read in spool order, each jump logged once."""

    def __init__(self, reader, last_seq=None, mark=None):
        self.reader = reader          # its skipped_lines counts lines it did not hand out
        self.gaps = 0                 # sequence gaps seen since start
        self.missing_records = 0      # records those gaps left out
        self.skipped_delivered = 0    # records skipped since start as delivered before
        # RecordStamp of the newest record acknowledged or in flight: records written
        # no later than it were delivered before.
        self.mark = mark
        self._skipping = False        # the last record read was skipped as delivered
        self._last_seq = last_seq     # seq of the last record read
        self._last_segment = None     # first seq of its segment, None when not known
        self._damaged = 0             # lines skipped as not a record after that one
        self._reader_skips_seen = 0   # reader.skipped_lines at the last record read
        # (first, last) of each gap logged past the last rewind, so that reading the
        # same records again logs no gap twice but does log records lost since.
        self._logged_gaps = []

    def damaged_line(self):
        """Count a line after the last record read that was not a record."""
        self._damaged += 1

    def rewind(self, seq, mark=None):
        """Read again after the record ``seq`` (None for the oldest), as after a reconnect.

        ``mark`` is the RecordStamp of the newest acknowledged record, or None.
        """
        self._last_seq = seq
        self._last_segment = None
        self.mark = mark
        self._skipping = False
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

    def check(self, seq, position, stamp=None):
        """Take the record ``seq`` read at ``position``; return True when it was delivered.

        A delivered record is one the broker acknowledged or that is in flight, and the
        caller skips it. ``stamp`` is the record's RecordStamp; without one, or with a
        ``seq`` above ``mark``'s, the record counts as new. Each jump is logged once.
        """
        previous = self._last_seq
        previous_segment, self._last_segment = self._last_segment, position[0]
        # Lines the reader skipped (a cut end, NUL bytes) count as damaged like bad records.
        reader_skips = self.reader.skipped_lines
        damaged = self._damaged + reader_skips - self._reader_skips_seen
        self._reader_skips_seen = reader_skips
        self._damaged = 0
        if self._delivered(seq, stamp):
            self._last_seq = seq if previous is None else max(previous, seq)
            self._log_skip(seq, position)
            return True
        self._skipping = False
        self._last_seq = seq
        mark, self.mark = self.mark, stamp or self.mark
        if previous is None or seq == previous + 1:
            return False
        if seq <= previous:
            self._logged_gaps = []   # the logged gaps belong to the old numbering
            self._log_went_back(previous, seq, position, stamp, mark)
            return False
        # After a reconnect the same records are read again. The jump may then cover a
        # gap logged the first time, records read then and evicted since, or both.
        for first, last in _subtract(previous + 1, seq - 1, self._logged_gaps):
            self._log_gap(first, last, seq, damaged, previous_segment)
        return False

    def _delivered(self, seq, stamp):
        mark = self.mark
        return (stamp is not None and mark is not None and seq <= mark.seq
                and written_by(stamp, mark))

    def _log_skip(self, seq, position):
        """Count a skipped delivered record; log the first of each run of them."""
        self.skipped_delivered += 1
        if self._skipping:
            return
        self._skipping = True
        logger.info("spool segment %d has records from %d on that the broker acknowledged "
                    "before, up to record %d, as after the start-up repair of bessai run "
                    "moved the records after a damaged line to a new segment; skipping them",
                    position[0], seq, self.mark.seq,
                    extra={"BESSAI_EVENT": "sequence_repeat", "BESSAI_SPOOL_SEQ": seq})

    def _log_went_back(self, previous, seq, position, stamp, mark):
        newer = describe_newer(stamp, mark) if stamp is not None else None
        if newer is None:
            logger.warning("sequence number went back from %d to %d at spool segment %d, "
                           "and the records or the checkpoint lack the boot_id and mono_s "
                           "that tell whether record %d was delivered: forwarding the records "
                           "from there on, so receivers may get some of them twice",
                           previous, seq, position[0], seq,
                           extra={"BESSAI_EVENT": "sequence_reset", "BESSAI_SPOOL_SEQ": seq})
            return
        logger.warning("sequence number went back from %d to %d at spool segment %d: record "
                       "%d %s, so bessai run numbered new records from %d again, as it does "
                       "after a crash or power cut lost records that had been read; "
                       "forwarding them, so receivers get these seq numbers twice and tell "
                       "the records apart by boot_id and time_ms", previous, seq, position[0],
                       seq, newer, seq,
                       extra={"BESSAI_EVENT": "sequence_reused", "BESSAI_SPOOL_SEQ": seq})

    def _log_gap(self, first, last, seq, damaged, previous_segment):
        missing = last - first + 1
        self.gaps += 1
        self.missing_records += missing
        self._logged_gaps.append((first, last))
        directory = getattr(self.reader, "directory", None)
        set_aside = (files_for_gap(directory, first, last, previous_segment)
                     if directory is not None else [])
        logger.warning("sequence gap: records %d to %d (%d) %s", first, last, missing,
                       _gap_cause(missing, damaged, set_aside),
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


def _gap_cause(missing, damaged, set_aside=()):
    """Return why ``missing`` records are absent when ``damaged`` lines were skipped there.

    ``set_aside`` names the ``.corrupt`` files that hold the absent records.
    """
    if set_aside:
        evicted = (f"set aside as damaged lines in {', '.join(set_aside)} by the start-up "
                   f"repair of bessai run (inspect it, then delete it)")
    else:
        evicted = ("evicted by the spool's size cap, dropped on a full disk, or deleted "
                   "from the spool directory by hand before they could be forwarded")
    if not damaged:
        return f"are not in the spool; they were {evicted}"
    lines = "line" if damaged == 1 else "lines"
    if damaged >= missing:
        return f"were not forwarded: the damaged {lines} skipped there (logged above)"
    return (f"were not forwarded: {damaged} damaged {lines} skipped there (logged above); "
            f"the others were {evicted}")
