"""The count of damaged spool lines the forwarder skipped, for its stop line.

Damaged lines are lines that are not records (the forwarder's JSON check) and lines
the reader skips itself (NUL bytes, the cut end of a sealed segment). A reconnect
reads the lines after the checkpoint again, so each line counts only the first time
its position is passed.

NOTE: lines the reader skipped after the last record handed out count only once a
record follows them, so the stop line may leave out a damaged line at the very end.
"""


class SkippedLines:
    """Counts each damaged line once, however often reconnects read it again."""

    def __init__(self, reader):
        self.reader = reader     # its skipped_lines counts lines it did not hand out
        self.count = 0
        self._furthest = None    # the furthest position handed out so far
        self._reader_seen = 0    # reader.skipped_lines at the last line handed out

    def passed(self, position, damaged=False):
        """Take the line handed out at ``position``; ``damaged`` when it is not a record.

        The lines the reader skipped since the previous line handed out lie before
        ``position``, so they count only when ``position`` is new.
        """
        reader_skips = self.reader.skipped_lines - self._reader_seen
        self._reader_seen = self.reader.skipped_lines
        if self._furthest is not None and position <= self._furthest:
            return
        self._furthest = position
        self.count += reader_skips + (1 if damaged else 0)
