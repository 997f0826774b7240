"""Reconnect schedule for a device that is down: capped exponential backoff with jitter.

The schedule is a pure function of the number of consecutive failures and a random
fraction, so it can be tested with a table of cases. Jitter only shortens a delay, so
the cap is a hard upper bound, and gateways that lost the same device at the same
moment spread their reconnects instead of arriving together.
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class BackoffPolicy:
    """Parameters of the reconnect schedule, in seconds.

    After ``n`` consecutive failures the base delay is ``initial_s * multiplier**(n-1)``,
    capped at ``maximum_s``; jitter then removes up to ``jitter`` (a fraction) of it.
    """

    initial_s: float = 1.0
    maximum_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self):
        problems = []
        if not (math.isfinite(self.initial_s) and self.initial_s > 0):
            problems.append(f"initial_s={self.initial_s!r}: expected a number above 0")
        if not (math.isfinite(self.maximum_s) and self.maximum_s >= self.initial_s):
            problems.append(f"maximum_s={self.maximum_s!r}: expected a number of at least initial_s")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            problems.append(f"multiplier={self.multiplier!r}: expected a number of at least 1")
        if not (0 <= self.jitter < 1):
            problems.append(f"jitter={self.jitter!r}: expected a fraction from 0 to below 1")
        if problems:
            raise ValueError("invalid backoff policy: " + "; ".join(problems))

    def delay(self, failures, random_fraction):
        """Return the seconds to wait after ``failures`` consecutive failures.

        ``random_fraction`` is a number in [0, 1), normally ``random.random()``; 0 gives
        the full base delay. No failure means no wait.
        """
        if failures <= 0:
            return 0.0
        base = self.initial_s
        for _ in range(failures - 1):
            base *= self.multiplier
            if base >= self.maximum_s:
                break
        base = min(base, self.maximum_s)
        return base * (1.0 - self.jitter * random_fraction)
