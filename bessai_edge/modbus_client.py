"""pymodbus's synchronous TCP client, with a deadline per request and checked frames.

``DeviceLink`` (in ``link``) drives one ``FramedTcpClient`` per connection. The client
keeps pymodbus's request path (PDU classes, transaction ids, framer) and replaces what
sits below and above it:

* ``open()``, ``send()`` and ``recv()`` work on a non-blocking socket, each wait one
  ``select()`` bounded by the request's deadline;
* ``recv()`` returns exactly one MBAP frame, skips frames of earlier transactions and
  checks the reply against the request before pymodbus decodes it;
* the read-registers replies are decoded by ``HoldingRegistersReply`` and
  ``InputRegistersReply``, registered through pymodbus's ``register()``: one
  ``array('H')`` conversion per reply instead of one ``struct.unpack`` per register,
  and a ``str()`` that counts the registers rather than listing them.
"""

import array
import collections
import logging
import select
import socket
import struct
import sys
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from bessai_edge.devices import format_endpoint
from bessai_edge.errors import (
    ConnectionLost,
    ConnectionRefused,
    HostUnreachable,
    LinkTimeout,
    MismatchedReply,
    ShortReply,
)

log = logging.getLogger(__name__)

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MAX_STALE_FRAMES = 16  # a device that streams old frames must not hold a request forever
# Transaction ids of this many recent requests count as sent, which distinguishes a late
# reply to one of them from a frame whose id no request on the connection used.
SENT_IDS_KEPT = 64
RECV_CHUNK = 4096  # a few whole frames: an MBAP frame has at most 260 bytes
_READ_REPLY_HEAD_SIZE = 9  # MBAP header, function code, byte count
_REPLY_LENGTHS = tuple((3 + 2 * count).to_bytes(2, "big") for count in range(256))
_BYTE_COUNTS = tuple(bytes([2 * count & 0xFF]) for count in range(256))
_SWAP_WORDS = sys.byteorder == "little"  # registers are big-endian on the wire


def _registers_from(data):
    """Return the registers of a read reply's data (byte count, then words) as array('H')."""
    if len(data) < 1 or data[0] != len(data) - 1 or data[0] % 2:
        raise ModbusIOException(f"byte count {data[0] if data else None} does not match "
                                f"the {len(data) - 1} data bytes of the reply")
    registers = array.array("H", data[1:])
    if _SWAP_WORDS:
        registers.byteswap()
    return registers


class _RegistersReply:
    """Base of the two read-registers replies: array decode and a short ``str()``."""

    def decode(self, data):
        self.registers = _registers_from(data)

    def __str__(self):
        # pymodbus formats str(reply) for its debug log on every reply, even with debug
        # logging off. The stock text lists every register; this one counts them.
        return (f"{type(self).__name__}(dev_id={self.dev_id}, "
                f"transaction_id={self.transaction_id}, registers={len(self.registers)})")


class HoldingRegistersReply(_RegistersReply, ReadHoldingRegistersResponse):
    """Reply to function code 3 whose ``registers`` is an ``array('H')``."""


class InputRegistersReply(_RegistersReply, ReadInputRegistersResponse):
    """Reply to function code 4 whose ``registers`` is an ``array('H')``."""


class _Expected:
    """The request that is waiting for its reply, parsed from the frame that was sent."""

    def __init__(self, frame):
        self.transaction_id, _, _, self.unit_id = _MBAP.unpack_from(frame)
        self.function_code = frame[7]
        self.count = int.from_bytes(frame[10:12], "big")


class FramedTcpClient(ModbusTcpClient):
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
        self._early_bytes = 0  # bytes of a frame that began before the request was sent
        super().__init__(host, port=port, timeout=timeout_s, retries=0)
        self.register(HoldingRegistersReply)
        self.register(InputRegistersReply)
        self.deadline = 0.0
        self.sent = b""         # the request frame waiting for its reply
        self.reply_head = b""   # the first 9 bytes of the normal reply to ``sent``
        self.reply_size = 0     # the length of that reply
        self._poll = None       # select.poll() with the socket registered for reading
        self.stale_frames = 0
        self.stale_frames_this_request = 0
        self.sent_ids = collections.deque(maxlen=SENT_IDS_KEPT)
        self.answered_ids = collections.deque(maxlen=SENT_IDS_KEPT)  # ids with a valid reply
        self._sent_id = None    # transaction id of the request in flight
        # Stale frames by cause, kept until the link adds them to its own counts.
        self.unknown_id_frames_this_request = 0  # with an id no request used
        self.duplicate_frames_this_request = 0   # with the id of a request already replied to
        self.unknown_id = None  # the last such transaction id

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
        # Non-blocking from here on: every wait is one poll() bounded by the deadline,
        # and send() and recv() are one system call each.
        sock.setblocking(False)
        self.socket = sock
        # A poll object is registered once; select() would build its fd sets per call.
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def close(self):
        super().close()
        self._received.clear()
        self._early_bytes = 0

    def send(self, request, addr=None):
        sock = self.socket
        if not sock:
            raise ConnectionLost("not connected")
        self.stale_frames_this_request = 0
        if self._received:
            self._drop_received_frames()  # bytes that came after the last reply
        self.sent = request
        self._sent_id = int.from_bytes(request[:2], "big")
        self.sent_ids.append(self._sent_id)
        # The normal reply to a read of ``count`` registers (at most 125, so byte 10 is
        # 0): same transaction and protocol id, its own length, same unit id and
        # function code, then the byte count.
        count = request[11]
        self.reply_head = request[:4] + _REPLY_LENGTHS[count] + request[6:8] + _BYTE_COUNTS[count]
        self.reply_size = _READ_REPLY_HEAD_SIZE + 2 * count
        try:
            sent = _send_some(sock, request)
            while sent < len(request):
                remaining = max(0.0, self.deadline - time.monotonic())
                if not select.select([], [sock], [], remaining)[1]:
                    raise TimeoutError
                sent += _send_some(sock, request[sent:])
        except TimeoutError as error:
            self.close()  # part of the frame may be on the wire
            raise LinkTimeout("sending the request timed out; connection closed") from error
        except OSError as error:
            self.close()
            raise ConnectionLost(f"sending the request failed: {error.strerror or error}") from error
        return len(request)

    def discard_early_frames(self):
        """Read what waits in the socket and drop the whole frames, before a request.

        No byte received before a request is sent belongs to its reply. Yet a frame that
        carries the next request's transaction id, from a device or gateway that replies
        to a request this client never sent, passes every check of ``_check_reply`` and
        would be decoded as that request's reply. The poll costs a system call, so the
        link calls this only after an idle time, such as the wait between cycles.
        ``send()`` itself drops only the bytes already read.
        """
        self._early_bytes = 0
        if not self._received and not self._poll.poll(0):
            return  # the usual case: nothing arrived since the last reply
        for _ in range(MAX_STALE_FRAMES):
            if not self._poll.poll(0):
                break
            try:
                chunk = self.socket.recv(RECV_CHUNK)
            except BlockingIOError:
                break
            except OSError as error:
                self.close()
                raise ConnectionLost("the connection failed before the request was sent: "
                                     f"{error.strerror or error}") from error
            if not chunk:
                break  # the device closed the connection: the reply's read reports it
            self._received += chunk
        self._drop_received_frames()

    def _drop_received_frames(self):
        """Drop the whole frames in the receive buffer, each counted as stale.

        A frame whose end has not arrived yet is dropped when it is complete.
        """
        self._early_bytes = 0
        received = self._received
        while len(received) >= _MBAP.size:
            transaction_id, protocol_id, length, _ = _MBAP.unpack_from(received)
            if protocol_id != 0 or not 2 <= length <= 254:
                return  # the next read reports the invalid header and closes
            end = _MBAP.size - 1 + length
            if len(received) < end:
                break
            del received[:end]
            self.stale_frames += 1
            self._note_unknown_id(transaction_id)
            log.debug("discarded a frame with transaction id %d that arrived before the "
                      "request was sent", transaction_id)
        self._early_bytes = len(received)

    def recv(self, size):
        if not self._received:
            # Usually the reply arrives whole and alone, and its header is exactly the
            # one ``send`` worked out: one select, one recv and one comparison.
            remaining = self.deadline - time.monotonic()
            # poll() takes milliseconds and rounds a fraction up, so it never ends early;
            # an error or hang-up also wakes it, and recv() then reports it.
            if self._poll.poll(remaining * 1000 if remaining > 0 else 0):
                try:
                    chunk = self.socket.recv(RECV_CHUNK)
                except BlockingIOError:
                    chunk = b""  # readable, then not: the general path selects again
                except OSError as error:
                    raise self._read_failed(error) from error
                if len(chunk) == self.reply_size and chunk.startswith(self.reply_head):
                    self.answered_ids.append(self._sent_id)
                    return chunk
                # Anything else, including b"" at the end of the stream, takes the
                # general path, which reads on, skips stale frames and names the fault.
                self._received += chunk
        return self._recv_frame()

    def _read_failed(self, error):
        """Close the connection and return the ConnectionLost for a failed recv."""
        self.close()
        return _dropped(ConnectionLost(f"reading the reply failed: {error.strerror or error}"))

    def _recv_frame(self):
        """Return the reply frame, skipping frames of earlier transactions, after checking it."""
        expected = _Expected(self.sent)
        while True:
            if self.stale_frames_this_request >= MAX_STALE_FRAMES:
                raise LinkTimeout(self._unknown_id_text(expected.transaction_id) or
                                  f"no reply among {MAX_STALE_FRAMES} frames of earlier requests")
            try:
                frame, transaction_id, unit_id = self._next_frame()
            except LinkTimeout as error:
                text = self.socket is not None and self._unknown_id_text(expected.transaction_id)
                if text:  # not cut off mid-frame: the frames with unknown ids are the cause
                    raise LinkTimeout(text) from error
                raise
            if self._early_bytes:
                self._early_bytes = 0  # its first bytes came before the request was sent
            elif transaction_id == expected.transaction_id:
                break
            self.stale_frames += 1
            self.stale_frames_this_request += 1
            self._note_unknown_id(transaction_id)
            log.debug("discarded a reply to transaction %d while waiting for transaction %d",
                      transaction_id, expected.transaction_id)
        pdu = memoryview(frame)[_MBAP.size:]
        try:
            _check_reply(expected, unit_id, pdu)
        except ShortReply as error:
            if len(pdu) > 1 and not pdu[0] & 0x80 and pdu[1] != len(pdu) - 2:
                # The MBAP length and the byte count disagree, so where the next frame
                # starts is unknown: reading on would take its bytes for a header.
                self.close()
                raise ShortReply(f"{error}; connection closed") from error
            raise
        self.answered_ids.append(expected.transaction_id)
        return frame

    def _note_unknown_id(self, transaction_id):
        """Count a stale frame that repeats an earlier request's reply or has an unknown id."""
        if transaction_id in self.answered_ids:
            self.duplicate_frames_this_request += 1
        elif transaction_id not in self.sent_ids:
            self.unknown_id_frames_this_request += 1
            self.unknown_id = transaction_id

    def _unknown_id_text(self, expected_id):
        """Return the timeout message that names frames with unknown ids, or "" when none came."""
        count = self.unknown_id_frames_this_request
        if not count:
            return ""
        frames = "1 frame" if count == 1 else f"{count} frames"
        return (f"no reply with transaction id {expected_id} before the request timeout, but "
                f"{frames} with transaction id {self.unknown_id}, which no request on this "
                f"connection used: the device or gateway does not copy the request's "
                f"transaction id into its reply")

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

        One ``recv`` takes whatever the device has sent, often a whole frame. The end of
        one frame and the start of the next may arrive together, so bytes are buffered.
        """
        # Past the deadline the socket is still polled once, so a frame whose bytes are
        # already here is taken instead of cut off.
        remaining = max(0.0, self.deadline - time.monotonic())
        chunk = None
        if self._poll.poll(remaining * 1000):
            try:
                chunk = self.socket.recv(RECV_CHUNK)
            except BlockingIOError:
                pass  # readable, then not: select again while time is left
            except OSError as error:
                raise self._read_failed(error) from error
            if chunk == b"":
                self.close()
                raise _dropped(ConnectionLost("the device closed the connection"))
        if chunk is not None:
            self._received += chunk
        elif time.monotonic() >= self.deadline:
            if frame_started:
                self.close()
                error = LinkTimeout("timed out in the middle of a reply; connection closed")
                error.partial = True  # check separates a partial reply from silence
                raise error
            raise LinkTimeout("no reply before the request timeout")


def _dropped(error):
    """Mark ``error`` as a connection the device ended after a request was sent."""
    error.dropped_after_request = True
    return error


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
