"""A real ``bessai run`` in simulator mode, seen as systemd would see it.

The gateway polls its simulator child over Modbus TCP on loopback, sends sd_notify
messages to a NotifyListener and serves /health and /metrics on a free port. The tests
check the order of the notifications, that WATCHDOG=1 comes from the running loop
only (after cycles, between devices and within long waits), and that hostile HTTP
clients do not stop cycles from completing on time.
"""

import collections
import contextlib
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bessai_edge.service import health
from bessai_edge.simulator_process import SimulatorProcess
from tests.conftest import bessai_command, free_tcp_port
from tests.service.conftest import assignments

START_TIMEOUT_S = 60
SCAN_INTERVAL_S = 0.2
WATCHDOG_USEC = 2_000_000  # watchdog() sends at most every 0.5 s: every few cycles
HOSTILE_SCAN_INTERVAL_S = 0.5
_STATUS_CYCLE = re.compile(r"cycle (\d+); inverter (\w+); ")


class RunningGateway:
    """One ``bessai run`` child process with its health port and stderr log."""

    def __init__(self, tmp_path, extra_env):
        self.health_port = free_tcp_port()
        self.log_path = tmp_path / "bessai-run.log"
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("NOTIFY_", "WATCHDOG_", "JOURNAL_"))}
        env.update({
            "SITE_ID": "cl-test-01",
            "BESSAI_MODE": "simulator",
            "DRIVER_PROFILE_PATH": "huawei_sun2000",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "HEALTH_LISTEN": f"127.0.0.1:{self.health_port}",
            "SCAN_INTERVAL_S": str(SCAN_INTERVAL_S),
            "LOG_LEVEL": "info",
            **extra_env,
        })
        (tmp_path / "spool").mkdir()
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([*bessai_command(), "run"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.process.pid

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=30):
        """Send SIGTERM and return the exit status."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # in case a test left it stopped
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"bessai run ignored SIGTERM for {timeout} s; log:\n{self.log_text()}")
        finally:
            self.log.close()

    def get(self, path, timeout=10):
        connection = http.client.HTTPConnection("127.0.0.1", self.health_port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def metrics(self):
        status, body = self.get("/metrics")
        assert status == 200, body
        values = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return values

    def wait_for_cycles(self, count, timeout=START_TIMEOUT_S):
        """Wait until /metrics reports ``count`` cycles and return the metrics."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"bessai run exited with {self.process.returncode}; "
                            f"log:\n{self.log_text()}")
            try:
                metrics = self.metrics()
                if metrics[("bessai_cycles_total", ())] >= count:
                    return metrics
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"fewer than {count} cycles after {timeout} s; log:\n{self.log_text()}")
            time.sleep(0.1)


@contextlib.contextmanager
def running_gateway(tmp_path, **extra_env):
    gateway = RunningGateway(tmp_path, extra_env)
    try:
        yield gateway
    finally:
        gateway.stop()


def children_of(pid):
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as stream:
            children.extend(int(child) for child in stream.read().split())
    return children


def environment_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as stream:
        entries = stream.read().split(b"\0")
    return dict(entry.decode(errors="replace").split("=", 1) for entry in entries if b"=" in entry)


def status_cycle(text):
    match = _STATUS_CYCLE.search(assignments(text).get("STATUS", ""))
    return int(match.group(1)) if match else None


def test_run_notifies_ready_watchdog_status_stopping(tmp_path, notify_listener):
    with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                         WATCHDOG_USEC=str(WATCHDOG_USEC)) as gateway:
        notify_listener.wait_for(lambda m: sum("WATCHDOG=1" in x.text for x in m) >= 3,
                                 timeout=START_TIMEOUT_S)
        simulators = children_of(gateway.pid)
        simulator_environments = [environment_of(pid) for pid in simulators]
        exit_status = gateway.stop()
    notify_listener.receive(0.2)

    messages = notify_listener.messages
    kinds = [assignments(message.text) for message in messages]
    assert exit_status == 0
    assert {message.pid for message in messages} == {gateway.pid}
    assert kinds[0]["READY"] == "1"
    assert sum("READY" in kind for kind in kinds) == 1
    assert kinds[-1].get("STOPPING") == "1"
    assert sum("STOPPING" in kind for kind in kinds) == 1

    # WATCHDOG=1 only after a completed cycle, in one message with that cycle's STATUS:
    # two watchdog messages name two different cycles.
    cycles = [status_cycle(message.text) for message in messages]
    watchdog_cycles = [cycle for kind, cycle in zip(kinds, cycles) if kind.get("WATCHDOG") == "1"]
    assert None not in watchdog_cycles, kinds
    assert watchdog_cycles == sorted(set(watchdog_cycles))
    numbered = [cycle for cycle in cycles if cycle is not None]
    assert numbered == sorted(set(numbered))
    assert numbered[:2] == [0, 1]  # READY carries the status before the first cycle
    # Rate-limited to a quarter of WATCHDOG_USEC: the status is not sent on every cycle.
    assert len(numbered) < max(numbered)

    assert simulators, "the simulator child was not found"
    for environment in simulator_environments:
        assert "NOTIFY_SOCKET" not in environment
        assert "WATCHDOG_USEC" not in environment


def test_run_stop_extends_timeout(tmp_path, notify_listener):
    # A stop request can come while a silent device keeps the cycle busy: the Huawei's 1 s
    # quiet time plus the 3 s request timeout, plus 10 s to close, make 14 s.
    with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                         REQUEST_TIMEOUT_S="3") as gateway:
        notify_listener.wait_for(lambda m: any("READY=1" in x.text for x in m),
                                 timeout=START_TIMEOUT_S)
        assert gateway.stop() == 0
    notify_listener.receive(0.2)

    stopping = [assignments(message.text) for message in notify_listener.messages
                if "STOPPING=1" in message.text]
    assert stopping == [{"STOPPING": "1", "EXTEND_TIMEOUT_USEC": "14000000"}]
    assert "received SIGTERM: stopped after cycle" in gateway.log_text()


def test_run_stop_extends_timeout_for_slow_device(tmp_path, notify_listener):
    # Every reply 0.5 s late: a cycle of 9 requests takes about 4.5 s, while the budget
    # for silent devices is only the 2 s connect timeout plus 10 s to close. A stop then
    # used to ask for 12 s, and systemd killed the gateway in the cycle's middle.
    device = SimulatorProcess(["--profile", "sma_sunny_tripower", "--latency", "0.5"], port=0)
    host, port = device.start()
    try:
        with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                             BESSAI_MODE="modbus", DRIVER_PROFILE_PATH="sma_sunny_tripower",
                             INVERTER_IP=host, INVERTER_PORT=str(port), REQUEST_TIMEOUT_S="1",
                             SCAN_INTERVAL_S="1") as gateway:
            notify_listener.wait_for(
                lambda m: any((status_cycle(x.text) or 0) >= 1 for x in m),
                timeout=START_TIMEOUT_S)
            assert gateway.stop() == 0
    finally:
        device.stop()
    notify_listener.receive(0.2)

    stopping = [assignments(message.text) for message in notify_listener.messages
                if "STOPPING=1" in message.text]
    assert len(stopping) == 1, stopping
    # At least half again the 4.5 s of the cycle before, plus 10 s to close.
    assert int(stopping[0]["EXTEND_TIMEOUT_USEC"]) >= 16_750_000, stopping


@pytest.mark.parametrize("watchdog_usec, warned", [(2_000_000, True), (10_000_000, False)])
def test_run_fits_timeouts_to_watchdog(tmp_path, notify_listener, watchdog_usec, warned):
    # With a 2 s watchdog, the 2 s connect timeout and a 3 s request timeout are cut to 1 s.
    with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                         WATCHDOG_USEC=str(watchdog_usec), REQUEST_TIMEOUT_S="3") as gateway:
        notify_listener.wait_for(lambda m: any("WATCHDOG=1" in x.text for x in m),
                                 timeout=START_TIMEOUT_S)
        assert gateway.stop() == 0
    log = gateway.log_text()
    # A silent Huawei costs its 1 s quiet time plus the request timeout: 0.05 s is left.
    expected = ("inverter: with timeouts this long (connect timeout 2 s, request timeout 3 s, "
                "after the profile's quiet time of 1 s) a silent device would get the gateway "
                "restarted by systemd's 2 s watchdog: using a connect timeout of 1 s and a "
                "request timeout of 0.05 s")
    assert (expected in log) is warned, log


def watchdog_gaps(messages):
    """Return the seconds between consecutive WATCHDOG=1 messages."""
    times = [message.time for message in messages if "WATCHDOG=1" in message.text]
    return [later - earlier for earlier, later in zip(times, times[1:])]


def test_run_pets_watchdog_in_long_wait(tmp_path, notify_listener):
    # A 3 s period with a 2 s watchdog: the wait between cycles alone outlasts the
    # interval, so the loop must send WATCHDOG=1 from within the wait.
    with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                         WATCHDOG_USEC=str(WATCHDOG_USEC), SCAN_INTERVAL_S="3") as gateway:
        notify_listener.wait_for(lambda m: sum("WATCHDOG=1" in x.text for x in m) >= 12,
                                 timeout=START_TIMEOUT_S)
        assert gateway.stop() == 0
    gaps = watchdog_gaps(notify_listener.messages)
    # systemd restarts the service when a gap reaches WATCHDOG_USEC.
    assert max(gaps) < WATCHDOG_USEC / 1e6, gaps


def test_run_pets_watchdog_while_device_silent(tmp_path, notify_listener):
    # With a 6 s watchdog, REQUEST_TIMEOUT_S=30 becomes 2 s: half the interval less the
    # Huawei's 1 s quiet time after connect.
    watchdog_usec = 6_000_000
    device = SimulatorProcess(["--profile", "huawei_sun2000", "--silent"], port=0)
    host, port = device.start()
    try:
        with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                             WATCHDOG_USEC=str(watchdog_usec), BESSAI_MODE="modbus",
                             INVERTER_IP=host, INVERTER_PORT=str(port),
                             REQUEST_TIMEOUT_S="30") as gateway:
            notify_listener.wait_for(lambda m: sum("WATCHDOG=1" in x.text for x in m) >= 8,
                                     timeout=START_TIMEOUT_S)
            assert gateway.stop() == 0
    finally:
        device.stop()
    log = gateway.log_text()
    assert ("(request timeout 30 s, after the profile's quiet time of 1 s) a silent device "
            "would get the gateway restarted") in log, log
    assert "request timeout of 2 s" in log, log
    assert "device state starting -> down (timeout" in log, log
    gaps = watchdog_gaps(notify_listener.messages)
    assert max(gaps) < watchdog_usec / 1e6, gaps


def test_run_pets_watchdog_between_slow_devices(tmp_path, notify_listener):
    # Two devices that reply in the first cycle, then too late: the connection stays
    # up for three timeouts, so each of the next cycles waits out one 2 s request
    # timeout per device (Victron's profile has no quiet time). A 4 s cycle is the whole
    # 4 s watchdog interval, so WATCHDOG=1 must also go out between the devices.
    watchdog_usec = 4_000_000
    slow = ["--profile", "victron_multiplus", "--latency", "5", "--latency-requests", "9-100000"]
    devices = [SimulatorProcess(slow, port=0) for _number in range(2)]
    try:
        (host, first_port), (_host, second_port) = [device.start() for device in devices]
        with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                             WATCHDOG_USEC=str(watchdog_usec), BESSAI_MODE="modbus",
                             DRIVER_PROFILE_PATH="victron_multiplus", INVERTER_IP=host,
                             DEVICES="first,second", DEVICE_FIRST_PORT=str(first_port),
                             DEVICE_SECOND_PORT=str(second_port), REQUEST_TIMEOUT_S="30",
                             SCAN_INTERVAL_S="1") as gateway:
            notify_listener.wait_for(lambda m: sum("WATCHDOG=1" in x.text for x in m) >= 6,
                                     timeout=START_TIMEOUT_S)
            assert gateway.stop() == 0
    finally:
        for device in devices:
            device.stop()
    log = gateway.log_text()
    assert "first: with timeouts this long" in log, log
    assert "device state ok -> down (timeout" in log, log
    gaps = watchdog_gaps(notify_listener.messages)
    assert max(gaps) < watchdog_usec / 1e6, gaps


def test_run_pets_watchdog_within_slow_poll(tmp_path, notify_listener):
    # Each reply comes 0.6 s late, within the 2 s request timeout, and one poll of the
    # Victron's requests takes longer than the 4 s watchdog interval. The link must
    # send WATCHDOG=1 between the requests of that one device.
    watchdog_usec = 4_000_000
    device = SimulatorProcess(["--profile", "victron_multiplus", "--latency", "0.6"], port=0)
    host, port = device.start()
    try:
        with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                             WATCHDOG_USEC=str(watchdog_usec), BESSAI_MODE="modbus",
                             DRIVER_PROFILE_PATH="victron_multiplus", INVERTER_IP=host,
                             INVERTER_PORT=str(port), REQUEST_TIMEOUT_S="2",
                             SCAN_INTERVAL_S="1") as gateway:
            notify_listener.wait_for(
                lambda m: sum((status_cycle(x.text) or 0) >= 2 for x in m) >= 1,
                timeout=START_TIMEOUT_S)
            assert gateway.stop() == 0
    finally:
        device.stop()
    log = gateway.log_text()
    assert "device state starting -> ok" in log, log
    assert "overran the 1.000 s period" in log, log  # one poll outlasts the period
    gaps = watchdog_gaps(notify_listener.messages)
    assert max(gaps) < watchdog_usec / 1e6, gaps


def test_run_watchdog_silent_while_stopped(tmp_path, notify_listener):
    with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                         WATCHDOG_USEC=str(WATCHDOG_USEC)) as gateway:
        notify_listener.wait_for(lambda m: any("WATCHDOG=1" in x.text for x in m),
                                 timeout=START_TIMEOUT_S)
        os.kill(gateway.pid, signal.SIGSTOP)
        notify_listener.receive(0.2)  # whatever was in flight before the stop
        before = len(notify_listener.messages)
        # Three times the gap after which a working loop would send WATCHDOG=1 again.
        wedged = notify_listener.receive(3 * WATCHDOG_USEC / 4 / 1e6)[before:]
        last_cycle = max(filter(None, map(status_cycle, notify_listener.texts())))
        os.kill(gateway.pid, signal.SIGCONT)
        notify_listener.wait_for(
            lambda m: any("WATCHDOG=1" in x.text for x in m[before:]), timeout=START_TIMEOUT_S)
        resumed = notify_listener.wait_for(
            lambda m: any((status_cycle(x.text) or 0) > last_cycle for x in m[before:]),
            timeout=START_TIMEOUT_S)

    assert wedged == []
    assert any("WATCHDOG=1" in message.text for message in resumed[before:])


def _slow_client(port, stop):
    """Send a request one byte a second until the server closes or the attack ends."""
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for byte in request:
                if stop.wait(1.0):
                    return "ended"
                sock.sendall(bytes([byte]))
    except OSError:
        return "cut"
    return "finished"


def _oversized_client(port, stop):
    body = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 1_000_000 + b"\r\n\r\n"
    replies = collections.Counter()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                try:
                    sock.sendall(body)
                except OSError:
                    pass
                replies[sock.recv(12)] += 1
        except OSError as error:
            replies[type(error).__name__] += 1
    return replies


def _garbage_client(port, stop):
    count = 0
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(os.urandom(512))
                sock.recv(64)
        except OSError:
            pass
        count += 1
    return count


def _flood_client(port, stop):
    idle_connections = []
    try:
        for _ in range(300):
            try:
                idle_connections.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        stop.wait()
        return len(idle_connections)
    finally:
        for sock in idle_connections:
            sock.close()


def test_run_cycles_continue_under_hostile_clients(tmp_path):
    with running_gateway(tmp_path, SCAN_INTERVAL_S=str(HOSTILE_SCAN_INTERVAL_S)) as gateway:
        # The first cycle overruns by design (the profile's quiet time after connect).
        before = gateway.wait_for_cycles(3)
        stop = threading.Event()
        outcomes = {}
        attackers = [("flood", _flood_client), ("oversized", _oversized_client),
                     ("garbage", _garbage_client)]
        attackers += [(f"slow{i}", _slow_client) for i in range(20)]
        threads = [threading.Thread(target=lambda n=name, f=function: outcomes.update(
            {n: f(gateway.health_port, stop)})) for name, function in attackers]
        for thread in threads:
            thread.start()
        # The attack outlasts the time a connection may stay open, so that every slow
        # client has been cut by the server before the attack ends.
        attack_cycles = math.ceil(health.CONNECTION_TIMEOUT_S / HOSTILE_SCAN_INTERVAL_S) + 4
        during = before[("bessai_cycles_total", ())] + attack_cycles
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and _records_in_spool(gateway) < during:
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(30)
        after = gateway.wait_for_cycles(during)
        status, body = gateway.get("/health")

    assert outcomes["flood"] > 0
    assert {outcomes[f"slow{i}"] for i in range(20)} == {"cut"}
    assert outcomes["garbage"] > 0
    assert sum(outcomes["oversized"].values()) > 0
    assert after[("bessai_cycles_total", ())] >= during
    assert after[("bessai_cycle_overruns_total", ())] == before[("bessai_cycle_overruns_total", ())]
    assert status in (200, 503)
    assert json.loads(body)["site"] == "cl-test-01"


def _records_in_spool(gateway):
    # The health port is under attack; the cycle count comes from the spool instead.
    spool = gateway.log_path.parent / "spool"
    count = 0
    for segment in spool.glob("*.jsonl"):
        with open(segment, "rb") as stream:
            count += sum(1 for _line in stream)
    return count


@pytest.mark.parametrize("connect_timeout_s, extended", [("15", True), ("2", False)])
def test_run_extends_start_timeout_for_slow_connects(tmp_path, notify_listener,
                                                     connect_timeout_s, extended):
    # Three devices whose connects could each take 15 s: 45 s before READY=1 is more
    # than half the unit's TimeoutStartSec=60, so the gateway requests 45 + 10 s.
    # The devices reject the connection at once here; the request goes out first.
    ports = [str(free_tcp_port()) for _number in range(3)]
    with running_gateway(tmp_path, NOTIFY_SOCKET=notify_listener.address,
                         BESSAI_MODE="modbus", INVERTER_IP="127.0.0.1",
                         DEVICES="first,second,third", DEVICE_FIRST_PORT=ports[0],
                         DEVICE_SECOND_PORT=ports[1], DEVICE_THIRD_PORT=ports[2],
                         CONNECT_TIMEOUT_S=connect_timeout_s) as gateway:
        notify_listener.wait_for(lambda m: any("READY=1" in x.text for x in m),
                                 timeout=START_TIMEOUT_S)
        assert gateway.stop() == 0
    kinds = [assignments(message.text) for message in notify_listener.messages]
    ready_at = next(index for index, kind in enumerate(kinds) if "READY" in kind)
    extensions = [kind for kind in kinds[:ready_at] if "EXTEND_TIMEOUT_USEC" in kind]
    if extended:
        assert extensions == [{"EXTEND_TIMEOUT_USEC": "55000000"}], kinds
    else:
        assert extensions == [], kinds


@pytest.mark.parametrize("status_text", [
    "Exit status: 0 after SIGTERM, Ctrl-C or --cycles N",
    "1 when the simulator of a device did not start",
    "78 for invalid settings, an invalid profile or a spool directory that cannot be used",
])
def test_run_help_lists_exit_status(status_text):
    result = subprocess.run([*bessai_command(), "run", "--help"], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                        "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert status_text in " ".join(result.stdout.split()), result.stdout
