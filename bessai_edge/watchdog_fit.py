"""Device link timeouts shortened to fit the systemd watchdog.

The scan loop sends WATCHDOG=1 after each cycle, between devices, in long waits between
cycles and, through the link's keepalive, after a request once a quarter interval has
passed. A silent device still costs its connect timeout, or its quiet time after
connect plus its request timeout, in one wait. So each of those must fit half the
watchdog interval, or systemd restarts the gateway for as long as the device stays
silent. ``bessai run`` applies the fit at start; ``bessai check`` uses it to warn that
the installed service will not use the timeouts it tried.
"""

import dataclasses

MIN_FITTED_TIMEOUT_S = 0.05  # the shortest request timeout a fit sets


@dataclasses.dataclass(frozen=True)
class FittedTimeouts:
    """A link's connect and request timeouts after the fit, in seconds."""

    connect_s: float
    request_s: float
    connect_shortened: bool
    request_shortened: bool

    @property
    def shortened(self):
        return self.connect_shortened or self.request_shortened


def fit_timeouts(watchdog_s, connect_s, request_s, quiet_after_connect_s):
    """Return the timeouts that fit a watchdog of ``watchdog_s`` (0 or less: no watchdog)."""
    limit_s = watchdog_s / 2
    if limit_s <= 0:
        return FittedTimeouts(connect_s, request_s, False, False)
    request_limit_s = max(limit_s - quiet_after_connect_s, MIN_FITTED_TIMEOUT_S)
    return FittedTimeouts(connect_s=min(connect_s, limit_s),
                          request_s=min(request_s, request_limit_s),
                          connect_shortened=connect_s > limit_s,
                          request_shortened=request_s > request_limit_s)
