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
import random
import select
import socket
import struct
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from bessai_edge.backoff import BackoffPolicy
from bessai_edge.errors import (
    ConnectionLost,
    ConnectionRefused,
    DeviceException,
    HostUnreachable,
    LinkError,
    LinkTimeout,
    MismatchedReply,
    ShortReply,
)

log = logging.getLogger(__name__)

FUNCTION_CODES = {"holding": 3, "input": 4, 3: 3, 4: 4}
MAX_READ_REGISTERS = 125  # Modbus Application Protocol v1.1b3, section 6.3: 1 to 125 registers
_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MAX_STALE_FRAMES = 16  # a device that streams old frames must not hold a request forever
RECV_CHUNK = 4096  # a few whole frames: an MBAP frame has at most 260 bytes


def format_endpoint(host, port):
    """Return ``host:port``, with brackets around an IPv6 address."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"




class _Expected:
    """The request that is waiting for its reply, parsed from the frame that was sent."""

    def __init__(self, frame):
        self.transaction_id, _, _, self.unit_id = _MBAP.unpack_from(frame)
        self.function_code = frame[7]
        self.count = int.from_bytes(frame[10:12], "big")


class _FramedTcpClient(ModbusTcpClient):
    """pymodbus's synchronous TCP client with a deadline per request and whole-frame reads.

    The stock ``connect()``, ``send()`` and ``recv()`` are replaced. The stock
    ``connect()`` logs a failure and returns only a bool, which loses the difference
    between refused, timed out and unreachable. Here ``open()`` raises the matching
    LinkError instead, and ``connect()`` only reports the state, so pymodbus never
    reconnects on its own. The stock ``recv()`` waits a full timeout per call, so a
    trickle of bytes can stretch a request well past its timeout. Here ``recv()``
    returns exactly one MBAP frame received before ``deadline``, drops frames of earlier
    transactions and validates the reply against the request before pymodbus decodes
    it. The socket stays non-blocking, and ``send()`` too waits no longer than
    ``deadline``.
    """

    def __init__(self, host, port, timeout_s):
        self._received = bytearray()  # bytes read but not yet returned as a frame
        super().__init__(host, port=port, timeout=timeout_s, retries=0,
                         trace_packet=self._trace_packet)
        self.deadline = 0.0
        self.expected = None
        self.stale_frames = 0
        self.stale_frames_this_request = 0

    def _trace_packet(self, sending, data):
        if sending:
            self.expected = _Expected(data)
            self.stale_frames_this_request = 0
        return data

    def connect(self):
        return self.socket is not None

    def open(self, timeout_s):
        """Open the TCP connection, or raise the LinkError that names the cause."""
        endpoint = format_endpoint(self.comm_params.host, self.comm_params.port)
        try:
            sock = socket.create_connection((self.comm_params.host, self.comm_params.port),
                                            timeout=timeout_s)
        except ConnectionRefusedError as error:
            raise ConnectionRefused(f"connection to {endpoint} refused") from error
        except TimeoutError as error:
            raise LinkTimeout(f"connection to {endpoint} timed out after {timeout_s:g} s") from error
        except socket.gaierror as error:
            raise HostUnreachable(f"cannot resolve {self.comm_params.host!r}: {error.strerror}") from error
        except OSError as error:
            raise HostUnreachable(f"cannot connect to {endpoint}: {error.strerror or error}") from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Non-blocking from here on: every wait is one select() bounded by the deadline,
        # and send() and recv() are one system call each.
        sock.setblocking(False)
        self.socket = sock

    def close(self):
        super().close()
        self._received.clear()

    def send(self, request, addr=None):
        if not self.socket:
            raise ConnectionLost("not connected")
        try:
            sent = _send_some(self.socket, request)
            while sent < len(request):
                remaining = max(0.0, self.deadline - time.monotonic())
                if not select.select([], [self.socket], [], remaining)[1]:
                    raise TimeoutError
                sent += _send_some(self.socket, request[sent:])
        except TimeoutError as error:
            self.close()  # part of the frame may be on the wire
            raise LinkTimeout("sending the request timed out; connection closed") from error
        except OSError as error:
            self.close()
            raise ConnectionLost(f"sending the request failed: {error.strerror or error}") from error
        return len(request)

    def recv(self, size):
        expected = self.expected
        while True:
            if self.stale_frames_this_request >= MAX_STALE_FRAMES:
                raise LinkTimeout(f"no reply among {MAX_STALE_FRAMES} frames of earlier requests")
            frame, transaction_id, unit_id = self._next_frame()
            if transaction_id == expected.transaction_id:
                break
            self.stale_frames += 1
            self.stale_frames_this_request += 1
            log.debug("discarded a reply to transaction %d while waiting for transaction %d",
                      transaction_id, expected.transaction_id)
        _check_reply(expected, unit_id, memoryview(frame)[_MBAP.size:])
        return frame

    def _next_frame(self):
        """Return ``(frame, transaction id, unit id)`` of the next MBAP frame.

        The bytes are read before the deadline, or LinkTimeout or ConnectionLost is
        raised. An invalid header raises MismatchedReply and closes the connection.
        Bytes past the frame stay in ``_received`` for the next call.
        """
        received = self._received
        while True:
            if len(received) >= _MBAP.size:
                transaction_id, protocol_id, length, unit_id = _MBAP.unpack_from(received)
                if protocol_id != 0 or not 2 <= length <= 254:
                    header = bytes(received[:_MBAP.size])
                    self.close()
                    raise MismatchedReply(
                        f"invalid MBAP header {header.hex()} (protocol id {protocol_id}, "
                        f"length {length}); connection closed")
                end = _MBAP.size - 1 + length  # the length field counts the unit id
                if len(received) >= end:
                    frame = bytes(received[:end])
                    del received[:end]
                    return frame, transaction_id, unit_id
            self._receive_some(frame_started=bool(received))

    def _receive_some(self, frame_started):
        """Append the bytes that arrive before the deadline to ``_received``.

        One ``recv`` takes whatever the device has sent, often a whole frame; a frame's
        end and the next frame's start may arrive together, hence the buffer.
        """
        # Past the deadline the socket is still polled once, so a frame whose bytes are
        # already here is taken instead of cut off.
        remaining = max(0.0, self.deadline - time.monotonic())
        chunk = None
        if select.select([self.socket], [], [], remaining)[0]:
            try:
                chunk = self.socket.recv(RECV_CHUNK)
            except BlockingIOError:
                pass  # readable, then not: select again while time is left
            except OSError as error:
                self.close()
                raise ConnectionLost(f"reading the reply failed: {error.strerror or error}") from error
            if chunk == b"":
                self.close()
                raise ConnectionLost("the device closed the connection")
        if chunk is not None:
            self._received += chunk
        elif time.monotonic() >= self.deadline:
            if frame_started:
                self.close()
                raise LinkTimeout("timed out in the middle of a reply; connection closed")
            raise LinkTimeout("no reply before the request timeout")


def _send_some(sock, data):
    """Send what the non-blocking socket takes now; return the bytes sent."""
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def _check_reply(expected, unit_id, pdu):
    """Raise MismatchedReply or ShortReply unless ``pdu`` is a valid reply to ``expected``."""
    function_code = pdu[0]
    if unit_id != expected.unit_id:
        raise MismatchedReply(f"reply from unit id {unit_id} to a request for unit id {expected.unit_id}")
    if function_code & 0x7F != expected.function_code:
        raise MismatchedReply(
            f"reply with function code {function_code} to a request with function code "
            f"{expected.function_code}")
    if function_code & 0x80:
        if len(pdu) != 2:
            raise ShortReply(f"exception reply of {len(pdu)} bytes, expected 2")
        return
    wanted = 2 * expected.count
    byte_count = pdu[1] if len(pdu) > 1 else 0
    if byte_count != len(pdu) - 2:
        raise ShortReply(f"reply declares {byte_count} data bytes but carries {len(pdu) - 2}")
    if byte_count < wanted:
        raise ShortReply(f"reply carries {byte_count // 2} registers, requested {expected.count}")
    if byte_count > wanted:
        raise MismatchedReply(f"reply carries {byte_count // 2} registers, requested {expected.count}")


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
    ``timeouts_before_reconnect`` timeouts in a row, and at the first timeout on a
    connection that has not replied yet. A connection that ends before its first
    reply counts as a failed attempt, so a device that accepts TCP and then stays
    silent or hangs up is retried on the backoff schedule, not every cycle. An outage
    is logged once when it starts and once, as restored, at the first reply after it;
    its count of failed attempts is the connection attempts that got no reply.

    ``wait_until(deadline)`` is called for the quiet time after connect and the spacing
    between requests; the scan loop passes a function that serves its health page until
    the monotonic deadline instead of sleeping.
    """

    def __init__(self, host, port, *, unit_id, connect_timeout_s=3.0, request_timeout_s=1.0,
                 quiet_after_connect_s=0.0, min_request_interval_s=0.0,
                 backoff=BackoffPolicy(), timeouts_before_reconnect=3,
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
        self.counters = collections.Counter()
        self.requests = 0              # requests sent
        self.connects = 0              # connection attempts
        self.sessions = 0              # connections opened
        self.next_attempt_monotonic = 0.0
        self.retry_delay_s = 0.0       # the backoff delay scheduled last
        self.ready_monotonic = 0.0     # end of the quiet time of the current connection
        self._wait_until = wait_until
        self._rng = rng
        self._client = None
        self._failures = 0             # failed attempts in a row; 0 after any reply
        self._timeouts_in_row = 0
        self._answered = False         # the current connection returned at least one reply
        self._last_request_end = 0.0
        self._down_since = None
        self._down_kind = None
        self._down_attempts = 0

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
        client = _FramedTcpClient(self.host, self.port, self.request_timeout_s)
        try:
            client.open(self.connect_timeout_s)
        except LinkError as error:
            self.counters[error.kind] += 1
            self._note_down(error, failed_attempt=True)
            raise
        self._client = client
        self.sessions += 1
        now = time.monotonic()
        self.ready_monotonic = now + self.quiet_after_connect_s
        self._last_request_end = 0.0
        self._answered = False
        self._timeouts_in_row = 0
        if self._down_since is None:
            log.info("connected to %s (unit id %d)", self.endpoint, self.unit_id)
        else:  # still down until the device replies: a listener may accept and stay silent
            log.debug("reconnected to %s (unit id %d); waiting for its first reply",
                      self.endpoint, self.unit_id)

    def close(self):
        """Close the connection; the next read reconnects when ``next_attempt_monotonic`` is due."""
        if self._client is not None:
            self._client.close()
            self._client = None
            log.debug("closed the connection to %s", self.endpoint)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def read(self, unit_id, function, address, count):
        """Read ``count`` registers and return them as a list of ints.

        ``function`` is ``"holding"`` (code 3) or ``"input"`` (code 4). Raises a
        LinkError subclass on any failure, and ValueError for arguments that no request
        can carry.
        """
        function_code = _check_request(unit_id, function, address, count)
        if not self.connected:
            self._client = None
            now = time.monotonic()
            if now < self.next_attempt_monotonic:
                raise ConnectionLost(f"{self.endpoint} is down; next connection attempt in "
                                     f"{self.next_attempt_monotonic - now:.1f} s")
            self.connect()
        self._wait_for_turn()
        client = self._client
        started = time.monotonic()
        client.deadline = started + self.request_timeout_s
        stale_before = client.stale_frames
        self.requests += 1
        try:
            response = self._execute(client, unit_id, function_code, address, count)
        except LinkError as error:
            self._last_request_end = time.monotonic()
            self._count_stale(client, stale_before)
            log.debug("read unit %d fc %d address %d count %d failed: %s",
                      unit_id, function_code, address, count, error)
            self._handle_failure(error)
            raise
        self._last_request_end = time.monotonic()
        self._count_stale(client, stale_before)
        self._answered = True
        self._timeouts_in_row = 0
        self._failures = 0
        if self._down_since is not None:
            self._note_restored()
        if response.isError():
            error = DeviceException(response.exception_code, (
                f"unit id {unit_id} returned Modbus exception code {response.exception_code} "
                f"for function {function_code} address {address} count {count}"))
            self.counters[error.kind] += 1
            log.debug("read unit %d fc %d address %d count %d: exception %d",
                      unit_id, function_code, address, count, response.exception_code)
            raise error
        log.debug("read unit %d fc %d address %d count %d: ok in %.1f ms", unit_id,
                  function_code, address, count, (self._last_request_end - started) * 1000)
        return response.registers  # a new list per reply, so the caller may keep it

    def _execute(self, client, unit_id, function_code, address, count):
        method = client.read_holding_registers if function_code == 3 else client.read_input_registers
        try:
            return method(address, count=count, device_id=unit_id)
        except ConnectionException as error:
            client.close()
            raise ConnectionLost(f"connection to {self.endpoint} lost: {error}") from error
        except ModbusIOException as error:
            # NOTE: recv() validates the frame before pymodbus decodes it, so only a
            # reply that passed those checks and still could not be decoded lands here.
            raise ShortReply(f"undecodable reply from {self.endpoint}: {error}") from error

    def wait_for_turn(self):
        """Wait until the quiet time after connect and the request spacing have passed."""
        self._wait_for_turn()

    def _wait_for_turn(self):
        due = max(self.ready_monotonic, self._last_request_end + self.min_request_interval_s)
        if time.monotonic() < due:
            self._wait_until(due)

    def _count_stale(self, client, before):
        stale = client.stale_frames - before
        if stale:
            self.counters["mismatched_reply"] += stale

    def _handle_failure(self, error):
        """Count a failed request and decide whether the connection stays open."""
        self.counters[error.kind] += 1
        if isinstance(error, LinkTimeout) and self.connected:
            self._timeouts_in_row += 1
            if not self._answered or self._timeouts_in_row >= self.timeouts_before_reconnect:
                self._client.close()
        if self.connected:
            return
        self._client = None
        self._note_down(error, failed_attempt=not self._answered)

    def _note_restored(self):
        """Log the end of an outage at the first reply (an exception reply counts)."""
        log.info("connection to %s (unit id %d) restored after %.1f s and %d failed attempts",
                 self.endpoint, self.unit_id, time.monotonic() - self._down_since,
                 self._down_attempts)
        self._down_since = None

    def _note_down(self, error, failed_attempt):
        """Schedule the next attempt and log the state change once per outage and cause."""
        now = time.monotonic()
        if failed_attempt:
            self._failures += 1
        self.retry_delay_s = self.backoff.delay(self._failures, self._rng())
        self.next_attempt_monotonic = now + self.retry_delay_s
        if self._down_since is None:
            self._down_since = now
            self._down_attempts = 0
            self._down_kind = error.kind
            log.warning("%s (unit id %d) is down: %s; next attempt in %.1f s",
                        self.endpoint, self.unit_id, error, self.retry_delay_s)
        elif error.kind != self._down_kind:
            self._down_kind = error.kind
            log.warning("%s (unit id %d) is still down, now: %s; next attempt in %.1f s",
                        self.endpoint, self.unit_id, error, self.retry_delay_s)
        else:
            log.debug("%s (unit id %d) is still down: %s; next attempt in %.1f s",
                      self.endpoint, self.unit_id, error, self.retry_delay_s)
        if failed_attempt:
            self._down_attempts += 1


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
        raise ValueError(f"address {address} with count {count}: expected the range to end by 65535")
    return function_code
