"""A TCP server on loopback that speaks just enough MQTT to misbehave like a broken broker.

With ``connack=False`` it accepts connections and never sends a byte: a port where
something listens that is not an MQTT broker, or a broker that hangs. With
``connack=True`` it replies to CONNECT with CONNACK and to PINGREQ with PINGRESP, reads
every PUBLISH, and never sends a PUBACK: a broker that accepts publishes and no longer
acknowledges them.

Mosquitto cannot play either part: it replies to every CONNECT and acknowledges every
QoS 1 PUBLISH it reads, and has no setting to withhold one. Stopping it with SIGSTOP
would silence the CONNACK and the pings too, a different fault.
"""

import socket
import threading

from tests.conftest import free_tcp_port

_CONNECT, _PUBLISH, _PINGREQ, _DISCONNECT = 1, 3, 12, 14
_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
_PINGRESP = b"\xd0\x00"


class BrokerStandIn:
    """Serves each connection in its own thread (tests may use threads)."""

    def __init__(self, port=None, connack=True):
        self.port = port or free_tcp_port()
        self.connack = connack
        self.connections = 0
        self.client_ids = {}  # connection number (from 1) -> client id of its CONNECT
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
        try:
            while True:
                packet = _read_packet(stream)
                if packet is None:
                    return
                if self.connack:
                    self._answer(sock, number, *packet)
        except OSError:
            return
        finally:
            stream.close()

    def _answer(self, sock, number, packet_type, flags, body):
        if packet_type == _CONNECT:
            # Protocol name (length-prefixed), level, flags and keepalive, then the client id.
            start = 2 + int.from_bytes(body[:2], "big") + 4
            length = int.from_bytes(body[start:start + 2], "big")
            with self.lock:
                self.client_ids[number] = body[start + 2:start + 2 + length].decode()
            sock.sendall(_CONNACK_ACCEPTED)
        elif packet_type == _PINGREQ:
            sock.sendall(_PINGRESP)
        elif packet_type == _PUBLISH:
            topic_length = int.from_bytes(body[:2], "big")
            topic = body[2:2 + topic_length].decode()
            qos = (flags >> 1) & 3
            payload = body[2 + topic_length + (2 if qos else 0):]
            with self.lock:
                self.publishes.append((number, topic, payload))
        elif packet_type == _DISCONNECT:
            sock.close()


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
