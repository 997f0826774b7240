"""HealthServer over real HTTP on loopback, including hostile clients.

The server runs in the test's main thread, as in the scan loop; clients run in helper
threads. Timing is never asserted: a server that blocked would stop the main thread's
loop, and the test would fail on pytest-timeout or on its own deadline.
"""

import collections
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bessai_edge.errors import ConfigError
from bessai_edge.service import health
from bessai_edge.state import DeviceState, GatewayState
from tests.conftest import REPO, skip_unless_ci
from tests.settings.helpers import call_as_nobody

CLIENT_TIMEOUT_S = 20


def make_state(device_state="ok", alarms=(), cycles=5):
    state = GatewayState(site="cl-stgo-01", version="0.1.0")
    device = DeviceState(name="inverter", profile="huawei_sun2000", endpoint="127.0.0.1:1502",
                         unit_id=1, state=device_state)
    device.requests = 40
    device.reconnects = 2
    device.request_errors.update({"timeout": 3, "exception_2": 1})
    device.quality_counts.update({"ok": 90, "not_available": 10})
    device.values.update({"soc_pct": 55.5, "battery_power_kw": -1.25, "battery_temp_c": None})
    state.devices.append(device)
    state.cycles = cycles
    state.overruns = 1
    state.last_cycle_wall_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    state.last_cycle_monotonic = time.monotonic()
    state.last_cycle_duration_s = 0.012
    state.active_alarms = list(alarms)
    state.spool = {"bytes": 4096, "segments": 2, "records_appended": 10, "records_dropped": 1,
                   "records_evicted": 0, "dropping": False}
    return state


class Served:
    """Runs ``client`` in a thread while the main thread calls serve_until in slices."""

    def __init__(self, server):
        self.server = server

    def run(self, client, *args):
        outcome = {}

        def target():
            try:
                outcome["result"] = client(*args)
            except BaseException as error:  # re-raised in the main thread
                outcome["error"] = error

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        give_up = time.monotonic() + CLIENT_TIMEOUT_S
        while thread.is_alive() and time.monotonic() < give_up:
            self.server.serve_until(time.monotonic() + 0.05)
        thread.join(timeout=1)
        assert not thread.is_alive(), "client thread still running"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]


@pytest.fixture
def server():
    state = make_state()
    server = health.HealthServer(("127.0.0.1", 0), state)
    yield server
    server.close()


def get(address, path, method="GET", headers=None):
    connection = http.client.HTTPConnection(*address, timeout=CLIENT_TIMEOUT_S)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_exchange(address, data):
    """Send ``data`` and return everything the server sends back until it closes."""
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before it has read everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_health_ok_document(server):
    status, headers, body = Served(server).run(get, server.address, "/health")

    document = json.loads(body)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert document["status"] == "ok"
    assert document["site"] == "cl-stgo-01"
    assert document["version"] == "0.1.0"
    assert document["cycles"] == 5
    assert document["last_cycle"] == "2026-01-01T00:00:00.000Z"
    assert document["last_cycle_age_s"] >= 0
    assert document["uptime_s"] >= 0
    assert document["devices"][0]["name"] == "inverter"
    assert document["devices"][0]["state"] == "ok"
    assert document["active_alarms"] == []
    assert document["spool_backlog"] == {"bytes": 4096, "segments": 2, "dropping": False}


@pytest.mark.parametrize("device_state, alarms, expected", [
    ("ok", ["inverter:soc_pct:low_warn"], "degraded"),
    ("degraded", [], "degraded"),
    ("starting", [], "degraded"),
    ("down", [], "down"),
])
def test_health_not_ok_returns_503(device_state, alarms, expected):
    server = health.HealthServer(("127.0.0.1", 0), make_state(device_state, alarms))
    try:
        status, _headers, body = Served(server).run(get, server.address, "/health")
    finally:
        server.close()

    assert status == 503
    assert json.loads(body)["status"] == expected
    assert json.loads(body)["active_alarms"] == alarms


def test_health_spool_dropping_returns_503():
    state = make_state()
    state.spool["dropping"] = True
    server = health.HealthServer(("127.0.0.1", 0), state)
    try:
        status, _headers, body = Served(server).run(get, server.address, "/health")
    finally:
        server.close()

    assert status == 503
    assert json.loads(body)["status"] == "degraded"
    assert json.loads(body)["spool_backlog"]["dropping"] is True


def test_health_before_first_cycle_has_no_cycle_time():
    state = make_state("starting", cycles=0)
    document = health.health_document(state, time.monotonic())

    assert document["last_cycle"] is None
    assert document["last_cycle_age_s"] is None
    assert document["cycles"] == 0


def metric_samples(body):
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_reports_counters_and_values(server):
    server.state.active_alarms = ["inverter:soc_pct:low_warn"]
    status, headers, body = Served(server).run(get, server.address, "/metrics")

    samples = metric_samples(body)
    inverter = (("device", "inverter"),)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert samples[("bessai_cycles_total", ())] == 5
    assert samples[("bessai_cycle_overruns_total", ())] == 1
    assert samples[("bessai_device_request_errors_total", inverter + (("kind", "timeout"),))] == 3
    assert samples[("bessai_device_request_errors_total",
                    inverter + (("kind", "exception_2"),))] == 1
    assert samples[("bessai_device_requests_total", inverter)] == 40
    assert samples[("bessai_device_reconnects_total", inverter)] == 2
    assert samples[("bessai_device_values_total", inverter + (("quality", "ok"),))] == 90
    assert samples[("bessai_device_values_total", inverter + (("quality", "not_available"),))] == 10
    assert samples[("bessai_device_state", inverter + (("state", "ok"),))] == 1
    assert samples[("bessai_device_state", inverter + (("state", "down"),))] == 0
    assert samples[("bessai_alarms_active", ())] == 1
    assert samples[("bessai_alarm_active", (("alarm", "inverter:soc_pct:low_warn"),))] == 1
    assert samples[("bessai_status", (("status", "degraded"),))] == 1
    assert samples[("bessai_spool_bytes", ())] == 4096
    assert samples[("bessai_spool_records_total", ())] == 10
    assert samples[("bessai_spool_dropped_records_total", ())] == 1
    assert samples[("bessai_spool_dropping", ())] == 0
    assert samples[("bessai_value", inverter + (("field", "soc_pct"),))] == 55.5
    assert samples[("bessai_value", inverter + (("field", "battery_power_kw"),))] == -1.25
    assert ("bessai_value", inverter + (("field", "battery_temp_c"),)) not in samples
    assert samples[("bessai_info", (("site", "cl-stgo-01"), ("version", "0.1.0")))] == 1


def test_metrics_openmetrics_when_asked(server):
    status, headers, body = Served(server).run(
        get, server.address, "/metrics", "GET",
        {"Accept": "application/openmetrics-text; version=1.0.0"})

    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_head_returns_headers_only(server):
    reply = Served(server).run(raw_exchange, server.address,
                               b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")

    head, _sep, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: " in head
    assert body == b""


@pytest.mark.parametrize("request_bytes, status_line", [
    (b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 404 Not Found"),
    (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     b"HTTP/1.1 405 Method Not Allowed"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
     b"HTTP/1.1 431 Request Header Fields Too Large"),
    (b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 3000, b"HTTP/1.1 431 Request Header Fields Too Large"),
])
def test_bad_requests_get_error_status(server, request_bytes, status_line):
    reply = Served(server).run(raw_exchange, server.address, request_bytes)

    assert reply.startswith(status_line)
    assert server.open_connections == 0


def test_client_closing_early_is_dropped(server):
    def connect_and_close(address):
        with socket.create_connection(address) as sock:
            sock.sendall(b"GET /hea")
        return get(address, "/health")[0]

    assert Served(server).run(connect_and_close, server.address) == 200
    assert server.open_connections == 0


def test_slow_client_cut_at_connection_deadline(server, monkeypatch):
    monkeypatch.setattr(health, "CONNECTION_TIMEOUT_S", 0.5)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    def one_byte_at_a_time(address):
        with socket.create_connection(address, timeout=CLIENT_TIMEOUT_S) as sock:
            for byte in request:
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    return "cut while sending"
                time.sleep(0.2)
            try:
                return "answered" if sock.recv(100) else "cut"
            except ConnectionResetError:
                return "cut"

    outcome = {}

    def slow_and_fast(address):
        slow = threading.Thread(target=lambda: outcome.update(slow=one_byte_at_a_time(address)))
        slow.start()
        outcome["fast"] = get(address, "/health")[0]  # served while the slow one dribbles
        slow.join()
        return outcome

    Served(server).run(slow_and_fast, server.address)

    assert outcome["fast"] == 200
    assert outcome["slow"] in ("cut", "cut while sending")


def test_connection_limit_rejects_extra_clients(server, monkeypatch):
    monkeypatch.setattr(health, "CONNECTION_TIMEOUT_S", 1.0)
    extra = 20

    def flood(address):
        idle = [socket.create_connection(address) for _ in range(health.MAX_CONNECTIONS + extra)]
        try:
            replies = collections.Counter()
            for sock in idle:
                sock.settimeout(CLIENT_TIMEOUT_S)
                try:
                    reply = sock.recv(100)
                except ConnectionResetError:
                    reply = b"reset"
                replies[reply[:12]] += 1
            return replies
        finally:
            for sock in idle:
                sock.close()

    replies = Served(server).run(flood, server.address)
    after = Served(server).run(get, server.address, "/health")

    assert server.rejected_connections == extra
    assert replies[b"HTTP/1.1 503"] == extra
    assert replies[b""] == health.MAX_CONNECTIONS  # closed at their deadline, no reply
    assert after[0] == 200
    assert server.open_connections == 0


def test_hundreds_of_connections_while_serving(server):
    def storm(address):
        results = collections.Counter()
        lock = threading.Lock()

        def client():
            try:
                status = get(address, "/metrics")[0]
            except (ConnectionError, http.client.HTTPException) as error:
                status = type(error).__name__
            with lock:
                results[status] += 1

        threads = [threading.Thread(target=client) for _ in range(300)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    results = Served(server).run(storm, server.address)

    assert sum(results.values()) == 300
    assert results[200] > 0
    assert set(results) <= {200, 503, "RemoteDisconnected", "ConnectionResetError"}
    assert server.open_connections == 0


def test_wake_ends_serve_until_early(server):
    waker = threading.Timer(0.1, server.wake)
    waker.start()
    deadline = time.monotonic() + 3600

    server.serve_until(deadline)

    waker.join()
    assert time.monotonic() < deadline


def test_disabled_server_only_waits():
    server = health.HealthServer("", make_state())
    try:
        server.wake()
        server.serve_until(time.monotonic() + 3600)  # returns at once: a wake-up is pending
        server.serve_until(time.monotonic() + 0.01)
    finally:
        server.close()

    assert server.address is None


def test_listen_on_busy_port_retries_later(caplog):
    caplog.set_level(logging.INFO, logger="bessai_edge.service.health")
    now = [100.0]
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    server = health.HealthServer(("127.0.0.1", port), make_state(), clock=lambda: now[0])
    try:
        assert server.address is None
        assert f"HEALTH_LISTEN=127.0.0.1:{port}: cannot listen there: " in caplog.text
        assert "polling goes on, next attempt in 30 s" in caplog.text
        assert "HEALTH_LISTEN= (empty)" in caplog.text

        busy.close()
        now[0] += health.LISTEN_RETRY_S - 1
        server.serve_until(now[0])  # not yet due: no attempt
        assert server.address is None
        now[0] += 1
        server.serve_until(now[0])
        assert server.address == ("127.0.0.1", port)
        assert "listening on http://127.0.0.1:" in caplog.text
        assert "after 1 failed attempt" in caplog.text
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the listener accepts connections again
    finally:
        busy.close()
        server.close()


class MessageList(logging.Handler):
    """Logging handler that keeps each record's message."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def listen_messages(listen):
    """Return the address and the log messages of a HealthServer asked to listen on ``listen``."""
    handler = MessageList()
    logging.getLogger("bessai_edge.service.health").addHandler(handler)
    server = health.HealthServer(listen, make_state())
    address = server.address
    server.close()
    return {"address": address, "messages": handler.messages}


def test_listen_privileged_port_names_fix():
    # HEALTH_LISTEN=127.0.0.1:80 under the unit, which has no CAP_NET_BIND_SERVICE.
    # Root may bind it, so as root the server runs in a child that runs as the user nobody.
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as stream:
        lowest = int(stream.read())
    if lowest <= 80:
        skip_unless_ci(f"net.ipv4.ip_unprivileged_port_start is {lowest}: port 80 needs "
                       "no privilege here")
    if os.geteuid() == 0:
        outcome = call_as_nobody(listen_messages, ["127.0.0.1", 80])
    else:
        outcome = listen_messages(("127.0.0.1", 80))

    assert outcome["address"] is None
    message, = outcome["messages"]
    assert message.startswith("HEALTH_LISTEN=127.0.0.1:80: cannot listen there: Permission "
                              "denied; ")
    assert (f"ports below {lowest} need the CAP_NET_BIND_SERVICE capability, which this "
            f"process does not have: choose a port of {lowest} or above, such as 8000") in message
    assert "choose a free port" not in message


@pytest.mark.parametrize("listen", ["8000", "127.0.0.1", "host.example:80", "127.0.0.1:99999"])
def test_listen_invalid_text_is_config_error(listen):
    with pytest.raises(ConfigError) as caught:
        health.HealthServer(listen, make_state())

    assert f"HEALTH_LISTEN={listen!r}" in str(caught.value)


def test_listen_on_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    server = health.HealthServer(("::1", 0), make_state())
    if server.address is None:
        server.close()
        pytest.skip("no IPv6 loopback here: cannot listen on [::1]")
    try:
        status = Served(server).run(get, ("::1", server.address[1]), "/health")[0]
    finally:
        server.close()

    assert status == 200


# Runs in a child process: it exhausts its own descriptors so that accept() fails with
# EMFILE, serves a while, then frees them and serves the client that waited.
EMFILE_SERVER = textwrap.dedent("""
    import os, resource, select, sys, time
    from bessai_edge.service import health
    from tests.service.test_health import make_state

    server = health.HealthServer(("127.0.0.1", 0), make_state())
    print(server.address[1], flush=True)
    sys.stdin.readline()  # the client has connected and sent its request
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    calls = 0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        server.serve_until(min(end, time.monotonic() + 0.1))
        calls += 1
    for fd in fillers:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print(server.accept_errors, calls, flush=True)
    end = time.monotonic() + 20
    while time.monotonic() < end and not select.select([sys.stdin], [], [], 0)[0]:
        server.serve_until(min(end, time.monotonic() + 0.1))  # until the test has its reply
""")


def test_accept_emfile_pauses_until_next_call():
    child = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER], cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=str(REPO)), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        port = int(child.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            child.stdin.write("go\n")
            child.stdin.flush()
            accept_errors, calls = map(int, child.stdout.readline().split())
            reply = sock.recv(100)
        _out, errors = child.communicate("done\n", timeout=CLIENT_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert accept_errors >= 1
    assert accept_errors <= calls  # at most one failed accept() per serve_until call
    assert errors.count("cannot accept connections") == 1
    assert reply.startswith(b"HTTP/1.1 200 OK")
