"""Log lines for broker outages: one when an outage starts, one when it is over.

An outage starts with the first failed connection attempt or a lost connection. It
is over once the forwarder is connected again, the connection has lasted (the
session calls it settled), and the backlog that built up meanwhile is delivered.
So a broker that keeps dropping the client gives one outage, not a pair of lines
per connection. The closing line gives the time from the start of the outage to the
connection that ended it, and how many records that connection delivered before it
first had nothing left to send, and the time that took. The first time includes the
backoff wait before the successful attempt, so the broker may have been back for part
of it. Failed attempts in between are logged at DEBUG, except when the reason
changes (for example from "refused" to "credentials"), which is logged again because
it usually needs a different fix. The start line and that line take the failure's
level: WARNING, or ERROR for a broker that does not support MQTT 5 (``protocol``).
A restarting broker gives lost connections, then refused attempts, timeouts or network
errors, so after a lost connection these stay at DEBUG. A change to a kind that needs
a fix (rejected credentials, TLS, DNS and the like) is logged. A connection dropped soon
after it was accepted, again and again (kind ``dropped_repeatedly``), is logged too,
because its line names a likely cause. The words "for another reason" appear only when
the two kinds are not both lost connections.
"""

import logging
import time

logger = logging.getLogger(__name__)
# The journal field of the outage lines: `journalctl -u bessai-forward BESSAI_EVENT=mqtt_outage`.
_EVENT = {"BESSAI_EVENT": "mqtt_outage"}

# Failures that end an accepted connection. The plain ones name no cause, and are what
# a restarting broker gives, as are the transient failures of the attempts after them.
_PLAIN_LOSSES = ("lost", "dropped")
_LOSSES = (*_PLAIN_LOSSES, "dropped_repeatedly")
_TRANSIENT = ("refused", "timeout", "network")


class OutageLog:
    """Tracks the current outage, if any, and writes its start and end lines."""

    def __init__(self, broker, clock=time.monotonic):
        self.broker = broker
        self.clock = clock
        self.active = False
        self.outages = 0
        self._started = 0.0
        self._reconnected = None   # monotonic time of the first connection after the start
        self._failures = 0
        self._kind = ""
        self._delivered = 0        # records delivered on this connection until caught up
        self._caught_up_at = None  # when the backlog was first delivered after reconnecting
        self._had_connection = False  # a connection was made since the process started
        self._never_connected = False  # the current outage began before any connection

    def failed(self, failure, retry_in_s):
        """Record a failed attempt or a lost connection."""
        if not self.active:
            self.active = True
            self.outages += 1
            self._started = self.clock()
            self._reconnected = None
            self._failures = 0
            self._delivered = 0
            self._kind = failure.kind
            self._never_connected = not self._had_connection and failure.kind not in _LOSSES
            logger.log(failure.level, "MQTT outage started: %s; the spool keeps the records, "
                       "next attempt in %.1f s", failure.message, retry_in_s, extra=_EVENT)
        elif self._is_news(failure.kind):
            same_kind = self._kind in _LOSSES and failure.kind in _LOSSES
            self._kind = failure.kind
            logger.log(failure.level, "MQTT outage goes on%s: %s; next attempt in %.1f s",
                       "" if same_kind else ", for another reason", failure.message,
                       retry_in_s, extra=_EVENT)
        else:
            # The same reason, or a broker still restarting after a lost connection.
            self._kind = failure.kind
            logger.debug("MQTT broker still unreachable: %s; next attempt in %.1f s",
                         failure.message, retry_in_s)
        if failure.kind in _LOSSES:
            self._never_connected = False  # a connection made during the outage was lost
        if failure.kind != "lost":
            self._failures += 1
        self._reconnected = None
        self._caught_up_at = None

    def _is_news(self, kind):
        """Return True when a failure of ``kind`` during the outage needs its own line."""
        if kind == self._kind or kind in _PLAIN_LOSSES:
            return False
        return self._kind not in _LOSSES or kind not in _TRANSIENT

    def held_back(self):
        """Note a connection ended over a rejected record: its records do not end the outage.

        The backlog waits behind that record, so its delivery time starts again with the
        connection on which the broker accepts it.
        """
        self._reconnected = None
        self._caught_up_at = None

    def connected(self):
        self._had_connection = True
        if self.active and self._reconnected is None:
            self._reconnected = self.clock()
            self._delivered = 0

    def delivered(self, count):
        # Records written after the backlog was delivered, while the connection settles,
        # are not part of it.
        if self.active and self._caught_up_at is None:
            self._delivered += count

    def caught_up(self, settled=True):
        """Close the outage once connected with nothing left to send; return True if closed.

        ``settled`` is False while the connection is too young to count as restored. The
        outage then stays open, and the backlog's delivery time ends at the first call.
        """
        if not self.active or self._reconnected is None:
            return False
        now = self.clock()
        if self._caught_up_at is None:
            self._caught_up_at = now
        if not settled:
            return False
        logger.info("MQTT outage over: %s to broker %s after %.1f s (%d failed %s); "
                    "delivered the backlog of %d records in %.1f s",
                    "connected" if self._never_connected else "reconnected",
                    self.broker, self._reconnected - self._started, self._failures,
                    "attempt" if self._failures == 1 else "attempts",
                    self._delivered, self._caught_up_at - self._reconnected, extra=_EVENT)
        self.active = False
        return True
