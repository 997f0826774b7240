"""The log lines of a device's state changes, with a device that keeps changing summed up.

A device whose connection drops every other cycle would otherwise log "device state
ok -> degraded" and "degraded -> ok" in turn, one line per cycle for as long as it
lasts, and the cycle summary would follow each of them.
"""

import collections
import logging

from bessai_edge import state as gateway_state
from bessai_edge.ratelimit import DEFAULT_INTERVAL_S


class DeviceStateLog:
    """Logs one device's state changes; a change that repeats within a minute is counted.

    A change (old state -> new state) is logged at once, unless the device made the
    same change less than ``interval_s`` before: then it is counted instead. Once ``interval_s``
    has passed since the last line, the next cycle reports the counted changes in one
    WARNING line that ends with the state the device is in then. So the journal shows
    the device's present state at most ``interval_s`` late. Counted changes are also
    reported before any change that is logged at once, such as ``degraded -> down``,
    and at shutdown.

    ``logged_state`` is the state of the last line, the one the journal shows: the cycle
    summary follows it rather than every change. Times are ``time.monotonic()`` seconds.
    """

    def __init__(self, logger, name, extra, interval_s=DEFAULT_INTERVAL_S):
        self.logger = logger
        self.name = name
        self.extra = extra
        self.interval_s = interval_s
        self.logged_state = gateway_state.DEVICE_STARTING
        self.pending = False              # counted changes not reported yet
        self._seen_at = {}                # (old, new) -> when the device last made it
        self._counts = collections.Counter()
        self._last_line_at = None
        self._last_error = ""

    def changed(self, now, old, new, error, error_kind=None):
        """Log or count the change ``old -> new`` the device made at ``now``."""
        change = (old, new)
        seen_at = self._seen_at.get(change)
        self._seen_at[change] = now
        if seen_at is not None and now - seen_at < self.interval_s:
            self._counts[change] += 1
            self._last_error = error or self._last_error
            self.pending = True
            self.cycle_done(now, new, error)
            return
        if self.pending:
            self._report(now, old, None)  # the counted changes, with their own last error
        level = logging.INFO if new == gateway_state.DEVICE_OK else logging.WARNING
        extra = {**self.extra, "BESSAI_EVENT": "device_state", "BESSAI_DEVICE_STATE": new}
        if error and error_kind:
            extra["BESSAI_ERROR_KIND"] = error_kind
        self.logger.log(level, "%s: device state %s -> %s%s", self.name, old, new,
                        f" ({error})" if error else "", extra=extra)
        self._last_line_at = now
        self.logged_state = new

    def cycle_done(self, now, current, error):
        """Report the counted changes once ``interval_s`` has passed since the last line."""
        if self.pending and now - self._last_line_at >= self.interval_s:
            self._report(now, current, error)

    def report_pending(self, now, current, error):
        """Report the counted changes now, if there are any: at shutdown."""
        if self.pending:
            self._report(now, current, error)

    def _report(self, now, current, error):
        total = sum(self._counts.values())
        counts = ", ".join(f"{old} -> {new} {count}"
                           for (old, new), count in sorted(self._counts.items()))
        last_error = error or self._last_error
        extra = {**self.extra, "BESSAI_EVENT": "device_state", "BESSAI_DEVICE_STATE": current}
        self.logger.warning("%s: device state changed %d more %s in the last %.0f s (%s), "
                            "now %s%s", self.name, total, "time" if total == 1 else "times",
                            now - self._last_line_at, counts, current,
                            f"; last error: {last_error}" if last_error else "", extra=extra)
        self._counts.clear()
        self._last_error = ""
        self._last_line_at = now
        self.pending = False
        self.logged_state = current
