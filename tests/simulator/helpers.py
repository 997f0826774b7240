"""Start ``bessai simulate`` as a real child process on loopback, and crafted Modbus servers.

``simulator`` is a pytest fixture: ``simulator(*arguments)`` starts the CLI with those
arguments on a free port and returns the running process (``host``, ``port``), and
every simulator a test started is stopped at its end. ``CraftedServer`` is a plain TCP
server whose replies a test writes byte by byte, for replies the simulator never sends
(short, mismatched, malformed, trickled).
"""

import socket
import struct
import threading
import time

import pytest

from bessai_edge.simulator_process import SimulatorProcess


class RunningSimulator:
    """A started ``bessai simulate`` child: ``host``, ``port`` and its ``process``."""

    def __init__(self, child):
        self.child = child
        self.host, self.port = child.address
        self.process = child.process

    def stop(self):
        self.child.stop()


@pytest.fixture
def simulator():
    started = []

    def start(*arguments, port=0):
        child = SimulatorProcess(arguments, port=port)
        started.append(child)
        child.start()
        return RunningSimulator(child)

    yield start
    for child in started:
        child.stop()


def request_fields(frame):
    """Return (transaction id, unit id, function code, address, count) of a read request."""
    transaction_id, _, _, unit_id, function_code, address, count = struct.unpack(">HHHBBHH", frame)
    return transaction_id, unit_id, function_code, address, count


def reply(transaction_id, unit_id, pdu, protocol_id=0, length=None):
    """Return an MBAP frame around ``pdu``; ``length`` overrides the header's length field."""
    if length is None:
        length = len(pdu) + 1
    return struct.pack(">HHHB", transaction_id, protocol_id, length, unit_id) + pdu


def registers_pdu(function_code, words):
    return bytes((function_code, 2 * len(words))) + struct.pack(f">{len(words)}H", *words)


class CraftedServer:
    """A TCP server on 127.0.0.1 that replies to each 12-byte read request with ``respond``.

    ``respond(frame)`` returns a list of (delay_s, bytes) chunks to send in order. The
    server thread exists only in the test; the link under test stays single-threaded.
    """

    def __init__(self, respond):
        self.respond = respond
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                self._serve_connection(connection)

    def _serve_connection(self, connection):
        connection.settimeout(0.1)
        buffer = b""
        while not self._stop.is_set():
            try:
                data = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buffer += data
            while len(buffer) >= 12:
                frame, buffer = buffer[:12], buffer[12:]
                self.requests += 1
                for delay_s, chunk in self.respond(frame):
                    time.sleep(delay_s)
                    try:
                        connection.sendall(chunk)
                    except OSError:
                        return

    def close(self):
        self._stop.set()
        self._thread.join()
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
