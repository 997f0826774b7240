"""A read position in the spool that follows the writer.

``SpoolReader.read`` stops at the end of what is on disk when it gets there. The
cursor hands out lines one at a time. Once the reader has run dry, the cursor reads
again from the same position after ``poll_interval_s``, so records the scan loop
appends later are picked up without rereading anything.
"""

import time


class SpoolCursor:
    """Hands out ``(position, line)`` pairs in spool order from a starting position."""

    def __init__(self, reader, position=None, poll_interval_s=0.5, clock=time.monotonic):
        self.reader = reader
        self.position = position    # just after the last line handed out; None: the oldest
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self._lines = None
        self._next_poll = 0.0
        self.caught_up = False      # the last read reached the end of what is on disk

    @property
    def idle(self):
        """True while the reader ran dry and the next poll is not due yet."""
        return self._lines is None and self.clock() < self._next_poll

    def next(self):
        """Return the next ``(position, line)``, or None when there is nothing new yet."""
        if self._lines is None:
            if self.clock() < self._next_poll:
                return None
            self._lines = self.reader.read(self.position)
        try:
            item = next(self._lines, None)
        except Exception:
            # The reader failed (a listing or a file that cannot be read): try again later.
            self._lines = None
            self._next_poll = self.clock() + self.poll_interval_s
            raise
        if item is None:
            self._lines = None
            self._next_poll = self.clock() + self.poll_interval_s
            self.caught_up = True
            return None
        self.position = item[0]
        self.caught_up = False
        return item

    def rewind(self, position):
        """Read again from ``position`` (just after a line; None for the oldest record)."""
        self.close()
        self.position = position
        self._next_poll = 0.0
        self.caught_up = False

    def close(self):
        if self._lines is not None:
            self._lines.close()
            self._lines = None
