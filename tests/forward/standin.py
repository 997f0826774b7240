"""A TCP server on loopback that speaks just enough MQTT to misbehave like a broken broker.

With ``connack=False`` it accepts connections and never sends a byte: a port where
something listens that is not an MQTT broker, or a broker that hangs. With
``connack=True`` it replies to CONNECT with CONNACK and to PINGREQ with PINGRESP, reads
every PUBLISH, and never sends a PUBACK: a broker that accepts publishes and no longer
acknowledges them. It speaks MQTT 3.1.1 and MQTT 5, each in the version of the CONNECT.
With ``mqtt5=False`` it answers an MQTT 5 CONNECT as a broker that supports only MQTT
3.1.1 does: CONNACK return code 1 (unacceptable protocol version), then it closes the
connection. With ``reject_larger_than=N`` it acknowledges every QoS 1 PUBLISH over MQTT
5, a payload of more than N bytes with reason code 149 (Packet too large), and keeps the
connection open: a broker that goes on taking the messages behind a rejected one.

Mosquitto cannot play these parts: it replies to every CONNECT and acknowledges every
QoS 1 PUBLISH it reads, and has no setting to withhold one. After a rejection for size
it may close the connection before it reads the publishes behind, so whether it took
them depends on timing. Stopping it with SIGSTOP
would silence the CONNACK and the pings too, a different fault. Mosquitto 2.0.11 also
accepts MQTT 5 on every listener and has no setting to refuse it.
"""

import socket
import threading

from tests.conftest import free_tcp_port

_CONNECT, _PUBLISH, _PINGREQ, _DISCONNECT = 1, 3, 12, 14
_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
# MQTT 5 adds the properties, here none (length 0), after the reason code.
_CONNACK_ACCEPTED_MQTT5 = b"\x20\x03\x00\x00\x00"
# MQTT 3.1.1's reply to a protocol level it does not support.
_CONNACK_UNACCEPTABLE_PROTOCOL = b"\x20\x02\x00\x01"
_MQTT5 = 5
_PINGRESP = b"\xd0\x00"
_PUBACK = 0x40
_PACKET_TOO_LARGE = 0x95


class BrokerStandIn:
    """Serves each connection in its own thread (tests may use threads)."""

    def __init__(self, port=None, connack=True, mqtt5=True, reject_larger_than=None):
        self.port = port or free_tcp_port()
        self.connack = connack
        self.mqtt5 = mqtt5
        self.reject_larger_than = reject_larger_than
        self.connections = 0
        self.client_ids = {}  # connection number (from 1) -> client id of its CONNECT
        self.protocol_levels = {}  # connection number -> protocol level (4: 3.1.1, 5: MQTT 5)
        self.publishes = []   # (connection number, topic, payload), in arrival order
        self.lock = threading.Lock()
        self._listener = None
        self._sockets = []
        self._threads = []
        self._stopping = False

    def start(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        self._listener = listener
        self._start_thread(self._accept_loop)
        return self

    def stop(self):
        """Close the listener and every connection, as a broker that goes away."""
        self._stopping = True
        with self.lock:
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def connection_count(self):
        with self.lock:
            return self.connections

    def published_by(self, client_id):
        """Return, for each connection of ``client_id`` in turn, its (topic, payload) list.

        Other clients may connect too: the tests' subscriber reconnects on its own.
        """
        with self.lock:
            numbers = sorted(number for number, name in self.client_ids.items()
                             if name == client_id)
            return [[(topic, payload) for number, topic, payload in self.publishes
                     if number == wanted] for wanted in numbers]

    def _start_thread(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                self._sockets.append(sock)
            self._start_thread(self._serve, sock, number)

    def _serve(self, sock, number):
        stream = sock.makefile("rb")
        level = None   # the protocol level of this connection's CONNECT
        try:
            while True:
                packet = _read_packet(stream)
                if packet is None:
                    return
                if not self.connack:
                    continue
                packet_type, flags, body = packet
                if packet_type == _CONNECT:
                    level = self._answer_connect(sock, number, body)
                else:
                    self._answer(sock, number, level, packet_type, flags, body)
        except OSError:
            return
        finally:
            stream.close()

    def _answer_connect(self, sock, number, body):
        """Reply to a CONNECT; return its protocol level."""
        # Protocol name (length-prefixed), then level, flags and keepalive (4 bytes).
        level_at = 2 + int.from_bytes(body[:2], "big")
        level = body[level_at]
        start = level_at + 4
        if level == _MQTT5:
            start = _skip_properties(body, start)
        length = int.from_bytes(body[start:start + 2], "big")
        with self.lock:
            self.client_ids[number] = body[start + 2:start + 2 + length].decode()
            self.protocol_levels[number] = level
        if level == _MQTT5 and not self.mqtt5:
            sock.sendall(_CONNACK_UNACCEPTABLE_PROTOCOL)
            sock.shutdown(socket.SHUT_RDWR)
        elif level == _MQTT5:
            sock.sendall(_CONNACK_ACCEPTED_MQTT5)
        else:
            sock.sendall(_CONNACK_ACCEPTED)
        return level

    def _answer(self, sock, number, level, packet_type, flags, body):
        if packet_type == _PINGREQ:
            sock.sendall(_PINGRESP)
        elif packet_type == _PUBLISH:
            topic_length = int.from_bytes(body[:2], "big")
            topic = body[2:2 + topic_length].decode()
            qos = (flags >> 1) & 3
            start = 2 + topic_length + (2 if qos else 0)
            if level == _MQTT5:
                start = _skip_properties(body, start)
            payload = body[start:]
            with self.lock:
                self.publishes.append((number, topic, payload))
            if self.reject_larger_than is not None and qos and level == _MQTT5:
                packet_id = body[2 + topic_length:4 + topic_length]
                reason = 0 if len(payload) <= self.reject_larger_than else _PACKET_TOO_LARGE
                sock.sendall(bytes([_PUBACK, 3]) + packet_id + bytes([reason]))
        elif packet_type == _DISCONNECT:
            sock.close()


def _skip_properties(body, start):
    """Return the offset after the MQTT 5 properties that begin at ``start`` in ``body``."""
    length, shift, offset = 0, 0, start
    while True:
        byte = body[offset]
        offset += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return offset + length


def _read_packet(stream):
    """Return (type, flags, body) of the next MQTT packet, or None at the end of the stream."""
    header = stream.read(1)
    if not header:
        return None
    length = 0
    for shift in range(0, 28, 7):
        byte = stream.read(1)
        if not byte:
            return None
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
    body = stream.read(length)
    if len(body) < length:
        return None
    return header[0] >> 4, header[0] & 0x0F, body
