"""Device link: Modbus TCP reads on pymodbus's synchronous client, without threads.

``DeviceLink`` owns one TCP connection to one endpoint (a device, or a gateway that
serves several unit ids). It applies the profile's quiet time after connect and the
minimum spacing between requests, and bounds every request by a deadline. Every
failure becomes one ``LinkError`` subclass, counted by ``kind``. While the device is
down, reconnects follow a capped exponential backoff.

A reply that arrives after its request timed out carries the old MBAP transaction id,
so it is read, counted as ``mismatched_reply`` and discarded; it is never decoded as
the answer to a later request. A timeout in the middle of a frame closes the
connection, because the byte stream can no longer be split into frames.
"""

import collections
import logging
import math
import random
import time

from pymodbus.exceptions import ConnectionException, ModbusIOException

from bessai_edge.backoff import BackoffPolicy
from bessai_edge.devices import format_endpoint
from bessai_edge.errors import (
    ConnectionLost,
    DeviceException,
    LinkError,
    LinkTimeout,
    ShortReply,
)
from bessai_edge.modbus_client import FramedTcpClient
from bessai_edge.link_outages import LinkOutageLog
from bessai_edge.ratelimit import DEFAULT_INTERVAL_S, RateLimitedLog
from bessai_edge.service.journal import EVENT_LINK, FIELD_ERROR_KIND, FIELD_EVENT

__all__ = ["DeviceLink", "format_endpoint", "FUNCTION_CODES", "MAX_READ_REGISTERS"]

log = logging.getLogger(__name__)

FUNCTION_CODES = {"holding": 3, "input": 4, 3: 3, 4: 4}
MAX_READ_REGISTERS = 125  # Modbus Application Protocol v1.1b3, section 6.3: 1 to 125 registers
DEVICE_BUSY = 6           # exception code: the device cannot take the request now
# A request this long after the last reply first reads and drops what the device sent
# meanwhile. A cycle sends its requests back to back, so this costs one system call
# per cycle, not per request. Processing a reply takes well under this on a Raspberry
# Pi class machine (an estimate; a slower machine only reads the socket more often).
# NOTE: a frame sent unasked within this time after a reply, with the next request's
# transaction id, is not looked for. Once that request is sent, nothing in Modbus TCP
# distinguishes such a frame from its reply.
IDLE_BEFORE_DISCARD_S = 0.005


def _sleep_until(deadline):
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class DeviceLink:
    """One Modbus TCP connection with timeouts, pacing, error counters and backoff.

    ``connect()`` opens the connection now. ``read()`` connects by itself when a
    reconnect is due, and while the backoff delay runs (until ``next_attempt_monotonic``)
    it raises ConnectionLost at once, without a request and without a count.
    ``counters`` counts failures by kind: ``refused``, ``timeout``, ``unreachable``,
    ``disconnected``, ``exception_N``, ``short_reply`` and ``mismatched_reply`` (which
    includes replies to earlier, timed-out requests that were read and discarded).

    A connection is dropped when a frame is cut off, when the device closes it, after
    ``timeouts_before_reconnect`` timeouts in a row, and after
    ``silent_timeouts_before_reconnect`` timeouts (default 2) on a connection that has
    not replied yet. The poller ends a device's cycle at its first timeout, so the
    second falls in the next cycle. A device that ignores requests after a connect for
    longer than the profile's ``quiet_after_connect_s`` is then read from the second
    cycle of each connection. A reply that comes after the first timeout is read and
    counted as ``mismatched_reply``. A connection that ends before its first reply
    counts as a failed attempt, so a device that accepts TCP and then stays silent or
    hangs up is retried on the backoff schedule, not every cycle. An outage ends at the
    first reply after it.
    ``link_outages.LinkOutageLog`` writes its log lines, and counts outages that repeat within
    ``outage_log_interval_s`` instead of logging each one.

    ``wait_until(deadline)`` is called for the quiet time after connect and the spacing
    between requests; the scan loop passes a function that serves its health page until
    the monotonic deadline instead of sleeping.
    """

    def __init__(self, host, port, *, unit_id, connect_timeout_s=3.0, request_timeout_s=1.0,
                 quiet_after_connect_s=0.0, min_request_interval_s=0.0,
                 backoff=BackoffPolicy(), timeouts_before_reconnect=3,
                 silent_timeouts_before_reconnect=2, outage_log_interval_s=DEFAULT_INTERVAL_S,
                 wait_until=_sleep_until, rng=random.random):
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.endpoint = format_endpoint(host, port)
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.quiet_after_connect_s = quiet_after_connect_s
        self.min_request_interval_s = min_request_interval_s
        self.backoff = backoff
        self.timeouts_before_reconnect = timeouts_before_reconnect
        self.silent_timeouts_before_reconnect = silent_timeouts_before_reconnect
        self.counters = collections.Counter()
        # Of the mismatched_reply frames, those whose transaction id no request used.
        self.unknown_id_frames = 0     # stale frames whose transaction id no request used
        self.duplicate_replies = 0     # stale frames that repeat the reply to an earlier request
        self.requests = 0              # requests sent
        self.connects = 0              # connection attempts
        self.sessions = 0              # connections opened
        self.next_attempt_monotonic = 0.0
        self.retry_delay_s = 0.0       # the backoff delay scheduled last
        self.ready_monotonic = 0.0     # end of the quiet time of the current connection
        self._next_request_at = 0.0    # quiet time and request spacing allow a request then
        self._replied_at = 0.0         # monotonic time the last reply was read
        self._wait_until = wait_until
        self._rng = rng
        self._client = None
        self._failures = 0             # failed attempts in a row; 0 after any reply
        self._timeouts_in_row = 0
        self._answered = False         # the current connection returned at least one reply
        self._failing_since = None     # first failure since the last reply: the outage start
        self._outage = LinkOutageLog(self.endpoint, unit_id, outage_log_interval_s)
        self._busy_log = RateLimitedLog(log, outage_log_interval_s)
        self._log_requests = False
        self._keepalive = None
        self._keepalive_interval_s = math.inf
        self._keepalive_at = math.inf  # monotonic time of the next keepalive() call
        # The earlier of _keepalive_at and the outage log's report_due_at: one comparison
        # per request covers both.
        self._timer_at = math.inf

    def set_keepalive(self, keepalive, interval_s):
        """Call ``keepalive()`` after a request once ``interval_s`` has passed since the last call.

        The gateway passes the watchdog's WATCHDOG=1: one poll of a slow device can take
        longer than the watchdog interval although the device replies to each request in
        time. A request costs one comparison for it.
        """
        self._keepalive = keepalive
        self._keepalive_interval_s = interval_s
        self._keepalive_at = time.monotonic() + interval_s
        self._timer_at = min(self._keepalive_at, self._outage.report_due_at)

    def _run_timers(self, now):
        """Call the keepalive and report counted brief outages, whichever is due."""
        if now >= self._keepalive_at:
            self._keepalive_at = now + self._keepalive_interval_s
            self._keepalive()
        if now >= self._outage.report_due_at:
            self._outage.report_brief_outages(now)
        self._timer_at = min(self._keepalive_at, self._outage.report_due_at)

    @classmethod
    def for_profile(cls, profile, host, port=None, unit_id=None, **options):
        """Create a link with the pacing and timeouts of a loaded profile.

        ``port`` and ``unit_id`` default to the profile's; ``options`` override the other
        keyword arguments (``request_timeout_s`` replaces the profile's value).
        """
        options.setdefault("request_timeout_s", profile.request_timeout_s)
        options.setdefault("quiet_after_connect_s", profile.quiet_after_connect_s)
        options.setdefault("min_request_interval_s", profile.min_request_interval_s)
        return cls(host, profile.port if port is None else port,
                   unit_id=profile.unit_id if unit_id is None else unit_id, **options)

    @property
    def connected(self):
        return self._client is not None and self._client.socket is not None

    def connect(self):
        """Open the connection now, or raise the LinkError that names the cause."""
        if self.connected:
            return
        self.connects += 1
        client = FramedTcpClient(self.host, self.port, self.request_timeout_s)
        attempt_started = time.monotonic()
        try:
            client.open(self.connect_timeout_s)
        except LinkError as error:
            self.counters[error.kind] += 1
            if self._failing_since is None:
                self._failing_since = attempt_started
            self._note_down(error, failed_attempt=True)
            raise
        self._client = client
        self.sessions += 1
        now = time.monotonic()
        self.ready_monotonic = self._next_request_at = now + self.quiet_after_connect_s
        self._answered = False
        self._timeouts_in_row = 0
        self._log_requests = log.isEnabledFor(logging.DEBUG)  # read once per connection
        if not self._outage.down:
            log.info("connected to %s (unit id %d)", self.endpoint, self.unit_id,
                     extra=self._outage.extra)
        else:  # still down until the device replies: a listener may accept and stay silent
            log.debug("reconnected to %s (unit id %d); waiting for its first reply",
                      self.endpoint, self.unit_id, extra=self._outage.extra)

    def set_log_fields(self, fields):
        """Add journal ``fields`` (the device's name...) to the link's log lines.

        The lines also get ``BESSAI_EVENT=link``.
        """
        self._outage.extra = {**fields, FIELD_EVENT: EVENT_LINK}

    def close(self):
        """Close the connection; the next read reconnects when ``next_attempt_monotonic`` is due.

        Brief outages counted since the last report are logged now, so that a
        shutdown does not lose them.
        """
        if self._client is not None:
            self._client.close()
            self._client = None
            log.debug("closed the connection to %s", self.endpoint)
        self._outage.report_brief_outages(time.monotonic())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def read(self, unit_id, function, address, count):
        """Read ``count`` registers and return them as a list of ints.

        ``function`` is ``"holding"`` or 3, ``"input"`` or 4. Raises a LinkError
        subclass on any failure, and ValueError for arguments that no request can carry.
        """
        return self.read_checked(unit_id, _check_request(unit_id, function, address, count),
                                 address, count).tolist()

    def read_checked(self, unit_id, function_code, address, count, busy_retry=True):
        """``read()`` for arguments already checked, such as a read plan's requests.

        Returns the registers as an ``array('H')``. ``function_code`` is 3 or 4. The
        scan loop calls this once per request, so it is written for few calls: the
        checks of ``read()`` were done when the plan was built.
        """
        client = self._client
        if client is None or client.socket is None:
            client = self._reconnect_for_request()
        started = time.monotonic()
        if started < self._next_request_at:
            self._wait_until(self._next_request_at)
            started = time.monotonic()
        client.deadline = started + self.request_timeout_s
        stale_before = client.stale_frames
        self.requests += 1
        try:
            if started - self._replied_at > IDLE_BEFORE_DISCARD_S:
                client.discard_early_frames()  # what a device sent unasked while idle
            if function_code == 3:
                response = client.read_holding_registers(address, count=count, device_id=unit_id)
            else:
                response = client.read_input_registers(address, count=count, device_id=unit_id)
        except LinkError as error:
            self._request_failed(client, stale_before, started, error, unit_id,
                                 function_code, address, count)
            raise
        except ConnectionException as error:
            client.close()
            link_error = ConnectionLost(f"connection to {self.endpoint} lost: {error}")
            self._request_failed(client, stale_before, started, link_error, unit_id,
                                 function_code, address, count)
            raise link_error from error
        except ModbusIOException as error:
            # NOTE: recv() validates the frame before pymodbus decodes it, so only a
            # reply that passed those checks and still could not be decoded lands here.
            link_error = ShortReply(f"undecodable reply from {self.endpoint}: {error}")
            self._request_failed(client, stale_before, started, link_error, unit_id,
                                 function_code, address, count)
            raise link_error from error
        ended = time.monotonic()
        self._replied_at = ended
        self._next_request_at = ended + self.min_request_interval_s
        if ended >= self._timer_at:
            self._run_timers(ended)
        if client.stale_frames != stale_before:
            self.counters["mismatched_reply"] += client.stale_frames - stale_before
            self._count_stale_causes(client)
        if self._failing_since is not None or not self._answered:
            self._note_answered()
        if response.function_code & 0x80:
            if response.exception_code == DEVICE_BUSY and busy_retry:
                # A busy device often has the data a moment later: one more try, after
                # the request spacing. The busy reply is counted like any exception.
                self.counters[f"exception_{DEVICE_BUSY}"] += 1
                self._log_busy_reply(unit_id, address, count)
                self._wait_for_turn()
                return self.read_checked(unit_id, function_code, address, count,
                                         busy_retry=False)
            self._exception_reply(response, unit_id, function_code, address, count)
        if self._log_requests:
            log.debug("%s: read unit %d fc %d address %d count %d: ok in %.1f ms",
                      self.endpoint, unit_id, function_code, address, count,
                      (ended - started) * 1000)
        return response.registers  # a new array per reply, so the caller may keep it

    def _log_busy_reply(self, unit_id, address, count):
        """Log a busy reply that gets a second try, at most once per outage log interval.

        ``RateLimitedLog`` suppresses the lines in between and appends their count to
        the next line it writes.
        """
        self._busy_log.log(
            "busy", logging.WARNING,
            "%s: unit id %d answered exception 6 (device busy) to the read of registers "
            "%d..%d, so the request is sent once more and the cycle takes longer: another "
            "Modbus client probably polls the device, or the device is busy with other work. "
            "Stop the other client; if cycles overrun, raise SCAN_INTERVAL_S",
            self.endpoint, unit_id, address, address + count - 1,
            extra={**self._outage.extra, FIELD_ERROR_KIND: f"exception_{DEVICE_BUSY}"})

    def _reconnect_for_request(self):
        """Connect for a request when a reconnect is due; raise ConnectionLost before then."""
        self._client = None
        now = time.monotonic()
        if now < self.next_attempt_monotonic:
            raise ConnectionLost(f"{self.endpoint} is down; next connection attempt in "
                                 f"{self.next_attempt_monotonic - now:.1f} s")
        self.connect()
        return self._client

    def _note_answered(self):
        """Record the first reply on a connection, or after failures, and end an outage."""
        self._answered = True
        self._timeouts_in_row = 0
        self._failures = 0
        if self._outage.down:
            self._outage.restored(time.monotonic())
            self._timer_at = min(self._keepalive_at, self._outage.report_due_at)
        self._failing_since = None

    def _count_stale_causes(self, client):
        self.unknown_id_frames += client.unknown_id_frames_this_request
        self.duplicate_replies += client.duplicate_frames_this_request
        client.unknown_id_frames_this_request = client.duplicate_frames_this_request = 0

    def _request_failed(self, client, stale_before, started, error, unit_id, function_code,
                        address, count):
        """Count and log a failed request sent at ``started``; the caller raises ``error``."""
        now = time.monotonic()
        self._next_request_at = now + self.min_request_interval_s
        if now >= self._timer_at:
            self._run_timers(now)
        if client.stale_frames != stale_before:
            self.counters["mismatched_reply"] += client.stale_frames - stale_before
            self._count_stale_causes(client)
        log.debug("%s: read unit %d fc %d address %d count %d failed: %s",
                  self.endpoint, unit_id, function_code, address, count, error)
        self._handle_failure(error, started)

    def _exception_reply(self, response, unit_id, function_code, address, count):
        """Count and raise the DeviceException of an exception reply."""
        code = response.exception_code
        error = DeviceException(code, (
            f"unit id {unit_id} returned Modbus exception code {code} "
            f"for function {function_code} address {address} count {count}"))
        self.counters[error.kind] += 1
        log.debug("%s: read unit %d fc %d address %d count %d: exception %d",
                  self.endpoint, unit_id, function_code, address, count, code)
        raise error

    def wait_for_turn(self):
        """Wait until the quiet time after connect and the request spacing have passed."""
        self._wait_for_turn()

    def _wait_for_turn(self):
        if time.monotonic() < self._next_request_at:
            self._wait_until(self._next_request_at)

    def _handle_failure(self, error, started):
        """Count a failed request and decide whether the connection stays open.

        An outage is dated from the moment its first failed request was sent.
        """
        self.counters[error.kind] += 1
        if self._failing_since is None:
            self._failing_since = started
        if isinstance(error, LinkTimeout) and self.connected:
            self._timeouts_in_row += 1
            allowed = (self.timeouts_before_reconnect if self._answered
                       else self.silent_timeouts_before_reconnect)
            if self._timeouts_in_row >= allowed:
                self._client.close()
        if self.connected:
            return
        self._client = None
        self._note_down(error, failed_attempt=not self._answered)

    def _note_down(self, error, failed_attempt):
        """Schedule the next attempt after a failure that dropped the connection, and log it."""
        now = time.monotonic()
        if failed_attempt:
            self._failures += 1
        self.retry_delay_s = self.backoff.delay(self._failures, self._rng())
        self.next_attempt_monotonic = now + self.retry_delay_s
        since = self._failing_since if self._failing_since is not None else now
        self._outage.failed(now, since, error, failed_attempt, self.retry_delay_s)


def _check_request(unit_id, function, address, count):
    """Return the function code, or raise ValueError naming the argument that cannot be sent."""
    function_code = FUNCTION_CODES.get(function)
    if function_code is None:
        raise ValueError(f"function {function!r}: expected 'holding' or 'input'")
    if not 0 <= unit_id <= 255:
        raise ValueError(f"unit id {unit_id}: expected 0 to 255")
    if not 1 <= count <= MAX_READ_REGISTERS:
        raise ValueError(f"count {count}: expected 1 to {MAX_READ_REGISTERS}")
    if not 0 <= address <= 65536 - count:
        raise ValueError(f"address {address} with count {count}: expected the range to end "
                         f"by 65535")
    return function_code
