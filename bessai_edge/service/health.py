"""``/health`` and ``/metrics`` over HTTP, served from the scan loop's wait between cycles.

The scan loop calls ``serve_until(deadline)`` instead of sleeping. It waits in a
selector on non-blocking sockets and returns at the deadline whatever clients do.
Each event costs one bounded ``recv`` or ``send``. Each connection has its own
deadline (``CONNECTION_TIMEOUT_S``) and a cap on the bytes it may send
(``MAX_REQUEST_BYTES``), and connections beyond ``MAX_CONNECTIONS`` are closed at once.
h11 parses HTTP/1.1. Each connection carries one request, and the response closes it
(``Connection: close``).
"""

import datetime
import errno
import http
import logging
import os
import select
import selectors
import socket
import time

import h11
import orjson

from bessai_edge.errors import ConfigError
from bessai_edge.i18n import _
from bessai_edge.ratelimit import RateLimitedLog
from bessai_edge.service import metrics
from bessai_edge.settings import parse_listen

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
MAX_REQUEST_BYTES = 8192          # request line and headers; health requests have no body
CONNECTION_TIMEOUT_S = 5.0        # from accept until the response is sent
READ_CHUNK = 4096
ACCEPTS_PER_EVENT = 64            # bounds the work of one readiness event on the listener
LISTEN_BACKLOG = 64
LISTEN_RETRY_S = 30.0             # between attempts to listen after a failed one

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class HealthServer:
    """HTTP server for ``/health`` and ``/metrics`` that only runs inside ``serve_until``.

    ``listen`` is ``(host, port)``, a ``"HOST:PORT"`` string, or None or ``""`` to turn
    the server off (``serve_until`` then only waits). Port 0 binds a free port, and
    ``address`` is the bound address, None while not listening. The health server is
    optional, so an address it cannot listen on (a port another program holds, an
    address not yet up at boot) is logged and tried again every ``LISTEN_RETRY_S``
    while the scan loop goes on.
    """

    def __init__(self, listen, state, clock=time.monotonic):
        self._listen = _parse_listen(listen)
        self._listener = None
        self._listen_failures = 0
        self._retry_listen_at = None
        self.state = state
        self._clock = clock
        self._registry = metrics.make_registry(state, clock)
        self._connections = {}
        self.rejected_connections = 0
        self.accept_errors = 0
        self._limited_log = RateLimitedLog(logger)
        self._accepting = False
        self.address = None
        self._selector = selectors.DefaultSelector()
        fileno = getattr(self._selector, "fileno", None)
        self._wait_fd = fileno() if fileno is not None else None
        self._slack_fraction = _timer_slack_fraction()
        self._wake_reader, self._wake_writer = socket.socketpair()
        for sock in (self._wake_reader, self._wake_writer):
            sock.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        if self._listen is not None:
            self._try_listen(clock())

    def _try_listen(self, now):
        try:
            self._listener = _open_listener(*self._listen)
        except OSError as error:
            self._listen_failures += 1
            self._retry_listen_at = now + LISTEN_RETRY_S
            self._limited_log.log(
                "listen", logging.ERROR, "HEALTH_LISTEN=%s: cannot listen there: %s; "
                "/health and /metrics are off, polling goes on, next attempt in %.0f s; "
                "%s, or set HEALTH_LISTEN= (empty) to turn the health server off",
                _format_address(self._listen), error.strerror or error, LISTEN_RETRY_S,
                _listen_fix(self._listen[1], error))
            return
        self._retry_listen_at = None
        self.address = self._listener.getsockname()[:2]
        after = (f" after {self._listen_failures} failed "
                 f"{'attempt' if self._listen_failures == 1 else 'attempts'}"
                 if self._listen_failures else "")
        logger.info("health server listening on http://%s%s", _format_address(self.address),
                    after)

    def serve_until(self, deadline):
        """Serve clients until the monotonic ``deadline`` or until ``wake()`` is called.

        Without a wake-up it returns at the deadline, on Linux usually no later than a
        plain sleep would (see ``_wait``).
        """
        if self._retry_listen_at is not None and self._clock() >= self._retry_listen_at:
            self._try_listen(self._clock())
        if self._listener is not None and not self._accepting:
            self._selector.register(self._listener, selectors.EVENT_READ, None)
            self._accepting = True
        while True:
            now = self._clock()
            if self._connections:
                self._close_expired(now)
            if now >= deadline:
                return
            timeout = deadline - now
            if self._connections:
                earliest = min(connection.deadline for connection in self._connections.values())
                timeout = min(timeout, max(0.0, earliest - now))
            for key, mask in self._wait(timeout):
                if key.fileobj is self._wake_reader:
                    self._drain_wake()
                    return
                if key.fileobj is self._listener:
                    self._accept(now)
                else:
                    self._handle(key.fileobj, mask)
                if self._clock() >= deadline:
                    return

    def _wait(self, timeout):
        """Return the selector's events of the next ``timeout`` seconds, or none.

        epoll's timeout has millisecond steps, so the wait is a select() on the epoll
        descriptor, whose timeout has microsecond steps. One wake-up then ends the wait
        on time, and the events are collected without waiting. Linux (fs/select.c) lets
        a select() timer fire up to 0.1 % of its timeout late, or 0.5 % at a positive
        nice value. The timeout is shortened by that much, and the caller's loop waits
        out whatever is left. A descriptor above FD_SETSIZE, which select() rejects,
        falls back to epoll's own timeout, up to 1 ms late.
        """
        if self._wait_fd is not None:
            try:
                ready = select.select([self._wait_fd], [], [],
                                      timeout * (1.0 - self._slack_fraction))[0]
            except ValueError:
                self._wait_fd = None
            else:
                return self._selector.select(0) if ready else ()
        return self._selector.select(timeout)

    def wake(self):
        """Make ``serve_until`` return at once; safe to call from a signal handler."""
        try:
            self._wake_writer.send(b"\0")
        except OSError:
            pass  # the buffer is full, so a wake-up is already pending

    def close(self):
        """Close the listener and every client connection."""
        for sock in list(self._connections):
            self._close(sock)
        if self._listener is not None:
            if self._accepting:
                self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        self._selector.unregister(self._wake_reader)
        self._wake_reader.close()
        self._wake_writer.close()
        self._selector.close()

    @property
    def open_connections(self):
        """Client connections currently open."""
        return len(self._connections)

    def _drain_wake(self):
        try:
            while self._wake_reader.recv(READ_CHUNK):
                pass
        except BlockingIOError:
            pass

    def _accept(self, now):
        for _attempt in range(ACCEPTS_PER_EVENT):
            try:
                sock, _peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # that client is gone already
                self._pause_accepting(error)
                return
            if len(self._connections) >= MAX_CONNECTIONS:
                self._reject(sock)
                continue
            sock.setblocking(False)
            self._connections[sock] = _Connection(now + CONNECTION_TIMEOUT_S)
            self._selector.register(sock, selectors.EVENT_READ, None)

    def _pause_accepting(self, error):
        """Stop accepting until the next ``serve_until`` call, after EMFILE or the like.

        The pending connection stays in the backlog. Without the pause the listener
        would stay readable and the selector would spin until the deadline.
        """
        self.accept_errors += 1
        self._limited_log.log("accept", logging.WARNING,
                              "health server cannot accept connections: %s", error)
        self._selector.unregister(self._listener)
        self._accepting = False

    def _reject(self, sock):
        self.rejected_connections += 1
        self._limited_log.log("limit", logging.WARNING,
                              "health server rejected a connection: %d clients are connected, "
                              "the limit", MAX_CONNECTIONS)
        sock.setblocking(False)
        try:
            sock.send(_canned_response(503, b"too many connections\n"))
        except OSError:
            pass
        sock.close()

    def _handle(self, sock, mask):
        connection = self._connections.get(sock)
        if connection is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._send_pending(sock, connection)
        elif mask & selectors.EVENT_READ:
            self._receive(sock, connection)

    def _receive(self, sock, connection):
        try:
            data = sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sock)
            return
        connection.received += len(data)
        if connection.received > MAX_REQUEST_BYTES:
            self._respond(sock, connection, _error_response(connection, 431, "request too large"))
            return
        connection.parser.receive_data(data)  # b"" is how h11 learns that the client closed
        try:
            event = connection.parser.next_event()
        except h11.RemoteProtocolError as error:
            self._respond(sock, connection,
                          _error_response(connection, error.error_status_hint, "bad request"))
            return
        if isinstance(event, h11.Request):
            self._respond(sock, connection, self._answer(connection, event))
        elif event is h11.PAUSED or isinstance(event, h11.ConnectionClosed) or not data:
            self._close(sock)

    def _answer(self, connection, request):
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _response(connection, 405, b"only GET and HEAD are served\n", _TEXT,
                             head=False, extra=[("Allow", "GET, HEAD")])
        head = method == "HEAD"
        if path == "/health":
            document = health_document(self.state, self._clock())
            status = 200 if document["status"] == "ok" else 503
            body = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
            return _response(connection, status, body, _JSON, head)
        if path == "/metrics":
            accept = ", ".join(value.decode("latin-1") for name, value in request.headers
                               if name == b"accept")
            body, content_type = metrics.render(self._registry, accept)
            return _response(connection, 200, body, content_type, head)
        return _response(connection, 404, b"not found: try /health or /metrics\n", _TEXT, head)

    def _respond(self, sock, connection, data):
        connection.pending = data
        self._selector.modify(sock, selectors.EVENT_WRITE, None)
        self._send_pending(sock, connection)

    def _send_pending(self, sock, connection):
        try:
            sent = sock.send(connection.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sock)
            return
        connection.pending = connection.pending[sent:]
        if not connection.pending:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._close(sock)

    def _close_expired(self, now):
        for sock, connection in list(self._connections.items()):
            if now >= connection.deadline:
                logger.debug("health client timed out after %.1f s", CONNECTION_TIMEOUT_S)
                self._close(sock)

    def _close(self, sock):
        self._connections.pop(sock, None)
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


def _timer_slack_fraction():
    """Return how late, as a fraction of its timeout, Linux may end this process's select()."""
    try:
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    except OSError:
        nice = 0
    return 0.005 if nice > 0 else 0.001


class _Connection:
    """One client: its h11 parser, its deadline, bytes received and the response left to send."""

    __slots__ = ("parser", "deadline", "received", "pending")

    def __init__(self, deadline):
        self.parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        self.deadline = deadline
        self.received = 0
        self.pending = b""


def _response(connection, status, body, content_type, head, extra=()):
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"), ("Connection", "close"), *extra]
    parser = connection.parser
    data = parser.send(h11.Response(status_code=status, headers=headers,
                                    reason=http.HTTPStatus(status).phrase))
    if not head:
        data += parser.send(h11.Data(data=body))
    data += parser.send(h11.EndOfMessage())
    return data


def _error_response(connection, status, text):
    body = f"{status} {text}\n".encode("ascii")
    try:
        return _response(connection, status, body, _TEXT, head=False)
    except h11.LocalProtocolError:
        return _canned_response(status, body)


def _canned_response(status, body):
    # For a client h11 has no state for: over the connection limit, or a parser that can
    # no longer send.
    return (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            f"Content-Type: {_TEXT}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode("ascii") + body


def health_document(state, now_monotonic):
    """Return the /health JSON document for a GatewayState."""
    if state.cycles:
        last_cycle = datetime.datetime.fromtimestamp(
            state.last_cycle_wall_ms / 1000.0, tz=datetime.timezone.utc)
        last_cycle_text = last_cycle.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        last_cycle_age_s = round(max(0.0, now_monotonic - state.last_cycle_monotonic), 3)
    else:
        last_cycle_text, last_cycle_age_s = None, None
    spool = dict(state.spool_stats() or {})
    return {
        "status": state.overall_status(spool),
        "site": state.site,
        "version": state.version,
        "uptime_s": round(max(0.0, now_monotonic - state.started_monotonic), 3),
        "cycles": state.cycles,
        "overruns": state.overruns,
        "clock_synced": state.clock_synced,
        "last_cycle": last_cycle_text,
        "last_cycle_age_s": last_cycle_age_s,
        "last_cycle_duration_s": round(state.last_cycle_duration_s, 4) if state.cycles else None,
        "devices": [
            {
                "name": device.name,
                "profile": device.profile,
                "endpoint": device.endpoint,
                "unit_id": device.unit_id,
                "state": device.state,
                "last_error": device.last_error or None,
                "reconnects": device.reconnects,
            }
            for device in state.devices
        ],
        "active_alarms": list(state.active_alarms),
        "spool_backlog": {
            "bytes": spool.get("bytes"),
            "segments": spool.get("segments"),
            "dropping": spool.get("dropping"),
        },
        "spool": spool,
    }


def _parse_listen(listen):
    if not listen:
        return None
    if isinstance(listen, str):
        parsed = parse_listen(listen)
        if parsed is None:
            raise ConfigError(_(
                "HEALTH_LISTEN={value!r} is invalid: expected HOST:PORT with an IP address, "
                "e.g. 127.0.0.1:8000 or [::1]:8000, or empty to turn the health server off"
            ).format(value=listen))
        return parsed
    host, port = listen
    return host, int(port)


def _open_listener(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _listen_fix(port, error):
    """Return what to do after listening on ``port`` failed with ``error``."""
    lowest = unprivileged_port_start()
    if error.errno == errno.EACCES and port < lowest:
        # The units run with an empty CapabilityBoundingSet=, so they never have it.
        return (f"ports below {lowest} need the CAP_NET_BIND_SERVICE capability, which this "
                f"process does not have: choose a port of {lowest} or above, such as 8000")
    return "choose a free port on an address of this machine"


def unprivileged_port_start():
    """Return the lowest port that needs no privilege to bind (Linux 4.11+ sysctl, else 1024).

    The sysctl is under net.ipv4 but applies to IPv6 too.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "rb") as stream:
            return int(stream.read())
    except (OSError, ValueError):
        return 1024


def _format_address(address):
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
