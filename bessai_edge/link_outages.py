"""The log lines of a device link's outages, with repeated short outages counted.

A device that drops its connection every few requests would otherwise log "is down"
and "restored after" in every cycle. ``LinkOutageLog`` keeps the first outage and long
ones as two lines each and sums up the short repeats once per interval.
"""

import logging
import math

from bessai_edge.ratelimit import DEFAULT_INTERVAL_S

log = logging.getLogger("bessai_edge.link")  # the link's lines, under the link's logger


class LinkOutageLog:
    """Log lines of one link's outages, with outages that repeat counted, not listed.

    An outage is logged at WARNING when it starts ("is down") and at INFO when it ends
    ("restored after"). An outage that starts less than ``interval_s`` after the
    previous one ended is a repeat. A repeat is logged only once it has a failed
    connection attempt, and its "is down" line then gives how long it has been failing.
    A repeat that ends at the first reconnect is a brief outage. Brief outages are
    counted and reported in one WARNING line, "lost and restored N times in the last
    T s", once ``interval_s`` has passed since the previous report: at the brief outage
    that ends then, or at ``report_due_at``, which the link checks after each request.
    A count still open is also reported before the next "is down" line and when the
    link is closed.

    Times are ``time.monotonic()`` seconds, passed in by the link.
    """

    def __init__(self, endpoint, unit_id, interval_s=DEFAULT_INTERVAL_S):
        self.endpoint = endpoint
        self.unit_id = unit_id
        self.interval_s = interval_s
        self.extra = {}              # journal fields of every line (``DeviceLink.set_log_fields``)
        self.since = None            # start of the current outage (its first failed request)
        self.attempts = 0            # failed connection attempts in the current outage
        self._kind = None            # LinkError kind of the current outage's last failure
        self._cause = ""             # the error that started the current outage
        self._logged = False         # the current outage's "is down" line was written
        self._ended_at = None        # end of the previous outage
        self._brief = 0              # brief outages not reported yet
        self._brief_cause = ""       # the error that started the last of them
        self._report_since = None    # start of the time span those brief outages fall in

    @property
    def down(self):
        return self.since is not None

    @property
    def report_due_at(self):
        """Monotonic time at which the brief outages counted so far are due, or inf."""
        if not self._brief:
            return math.inf
        return self._report_since + self.interval_s

    def failed(self, now, since, error, failed_attempt, retry_delay_s):
        """Record a failure that dropped the connection, and log it as the class describes.

        ``since`` is the start of the outage (its first failed request), used when this
        failure starts one. ``failed_attempt`` is true when the connection never replied.
        """
        if self.since is None:
            self.since = since
            self.attempts = 0
            self._kind = error.kind
            self._cause = str(error)
            self._logged = False
            repeat = self._ended_at is not None and now - self._ended_at < self.interval_s
            if repeat and not failed_attempt:
                log.debug("%s (unit id %d) is down again: %s", self.endpoint, self.unit_id,
                          error, extra=self.extra)
            else:
                self._log_down(now, error, retry_delay_s)
        elif not self._logged and failed_attempt:
            self._kind = error.kind
            self._log_down(now, error, retry_delay_s)
        elif self._logged and error.kind != self._kind:
            self._kind = error.kind
            log.warning("%s (unit id %d) is still down, now: %s; next attempt in %.1f s",
                        self.endpoint, self.unit_id, error, retry_delay_s, extra=self.extra)
        else:
            self._kind = error.kind
            log.debug("%s (unit id %d) is still down: %s; next attempt in %.1f s",
                      self.endpoint, self.unit_id, error, retry_delay_s, extra=self.extra)
        if failed_attempt:
            self.attempts += 1

    def restored(self, now):
        """End the current outage at the first reply after it (an exception reply counts).

        The outage is measured from its first failed request, which may come a few
        timeouts before the connection was given up.
        """
        if self._logged:
            attempts = self.attempts
            # A connection that dropped and came back at the first attempt failed none.
            counted = (f" and {attempts} failed {'attempt' if attempts == 1 else 'attempts'}"
                       if attempts else "")
            log.info("connection to %s (unit id %d) restored after %.1f s%s",
                     self.endpoint, self.unit_id, now - self.since, counted, extra=self.extra)
            self._report_since = now
        else:
            self._brief += 1
            self._brief_cause = self._cause
            log.debug("%s (unit id %d) is up again after %.1f s", self.endpoint, self.unit_id,
                      now - self.since, extra=self.extra)
            if now - self._report_since >= self.interval_s:
                self.report_brief_outages(now)
        self._ended_at = now
        self.since = None

    def report_brief_outages(self, now):
        """Log the brief outages counted since the last report, if there are any."""
        if not self._brief:
            return
        log.warning("connection to %s (unit id %d) lost and restored %d %s in the last %.0f s; "
                    "last cause: %s", self.endpoint, self.unit_id, self._brief,
                    "time" if self._brief == 1 else "times", now - self._report_since,
                    self._brief_cause, extra=self.extra)
        self._brief = 0
        self._report_since = now

    def _log_down(self, now, error, retry_delay_s):
        self.report_brief_outages(now)
        self._logged = True
        failing_s = now - self.since
        # The first failure of an outage has no duration yet, and a reconnect may be due now.
        failing = f"failing for {failing_s:.1f} s, " if failing_s >= 0.05 else ""
        retry = (f"next attempt in {retry_delay_s:.1f} s" if retry_delay_s >= 0.05
                 else "next attempt at once")
        log.warning("%s (unit id %d) is down: %s; %s%s", self.endpoint, self.unit_id, error,
                    failing, retry, extra=self.extra)
