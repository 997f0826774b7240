"""Rate-limited logging: a repeated message is logged once per interval with a count."""

import time

DEFAULT_INTERVAL_S = 60.0


class RateLimitedLog:
    """Logs the first message of each key, then at most one per ``interval_s``.

    A line that follows suppressed ones of the same key ends with
    ``(repeated N times in the last T s)``, so the journal still shows how often the
    problem happened.
    """

    def __init__(self, logger, interval_s=DEFAULT_INTERVAL_S, clock=time.monotonic):
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._entries = {}  # key -> [monotonic time of the last line, suppressed count]

    def log(self, key, level, message, *args, **kwargs):
        """Log ``message % args`` under ``key`` unless the key was logged recently.

        Returns True when the line was written. ``kwargs`` go to ``Logger.log``.
        """
        if not self.logger.isEnabledFor(level):
            return False
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.interval_s:
            entry[1] += 1
            return False
        if entry is not None and entry[1]:
            message += " (repeated %d %s in the last %.0f s)"
            args = (*args, entry[1], "time" if entry[1] == 1 else "times", now - entry[0])
        self._entries[key] = [now, 0]
        self.logger.log(level, message, *args, **kwargs)
        return True

    def forget(self, key):
        """Drop ``key`` so that its next message is logged at once (after a recovery)."""
        self._entries.pop(key, None)

