"""Fixtures for the forwarder's tests: a real broker, a subscriber, spools, the process.

``mosquitto`` is a broker started for one test (see ``broker.py``), and ``subscriber``
a collecting client on it. ``RecordWriter`` fills a spool with the real ``Spool``
writer and records laid out by ``records.RecordFactory``. ``ForwarderProcess`` runs
``bessai forward`` as a child process, the way systemd does, with its log on a file.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from bessai_edge.records import RecordFactory
from bessai_edge.spool import Spool
from tests.conftest import bessai_command, require_commands
from tests.forward.broker import MOSQUITTO, Mosquitto, Subscriber

DEVICES = ("inverter", "battery")


@pytest.fixture
def mosquitto(tmp_path):
    if not os.path.exists(MOSQUITTO):
        require_commands("mosquitto")
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


@pytest.fixture
def subscriber(mosquitto):
    client = Subscriber(mosquitto.port).start()
    yield client
    client.stop()


class RecordWriter:
    """Appends records for several devices, in turn, through the real spool writer."""

    def __init__(self, directory, devices=DEVICES, **spool_options):
        spool_options.setdefault("segment_max_bytes", 64 * 1024)
        spool_options.setdefault("max_total_bytes", 1024 ** 3)
        self.spool = Spool(directory, **spool_options)
        self.spool.open()
        self.factories = [RecordFactory("SITE-TEST-001", device, "huawei_sun2000", "boot-1")
                          for device in devices]
        self.cycle = 0
        self.seqs = []
        self.devices = {}   # seq -> device name
        self.active = {factory.device: [] for factory in self.factories}

    def append(self, count, alarm_every=0, extra_values=None):
        """Append ``count`` records; every ``alarm_every``-th one raises or clears an alarm.

        The alarm is raised on a device where it is not active, else cleared, and each
        record lists its device's active alarms, as ``bessai run`` writes them.
        ``extra_values`` are added to each record's ``values``, to make records larger.
        """
        for _ in range(count):
            self.cycle += 1
            factory = self.factories[self.cycle % len(self.factories)]
            changes = []
            if alarm_every and self.cycle % alarm_every == 0:
                raised = not self.active[factory.device]
                changes = [("soc_pct:low_warn", raised)]
                self.active[factory.device] = ["soc_pct:low_warn"] if raised else []
            active = self.active[factory.device]
            record = factory.build(
                cycle=self.cycle, wall_ms=1_700_000_000_000 + self.cycle * 1000,
                monotonic_s=float(self.cycle), cycle_ms=12.5, state="ok", error=None,
                values={"soc_pct": 50.0 + self.cycle % 40, "battery_power_kw": -1.25,
                        "battery_temp_c": 31.5, "grid_frequency_hz": 50.01,
                        **(extra_values or {})},
                quality={"soc_pct": "ok", "battery_power_kw": "ok", "battery_temp_c": "ok",
                         "grid_frequency_hz": "ok"},
                alarms=list(active), alarm_changes=changes)
            seq = self.spool.append(record)
            assert seq is not None, "the test spool dropped a record"
            self.seqs.append(seq)
            self.devices[seq] = factory.device
        return self.seqs[-count:]

    def expected_by_device(self, seqs=None):
        """Map each device to its seqs in spool order (all appended ones by default)."""
        by_device = {}
        for seq in self.seqs if seqs is None else seqs:
            by_device.setdefault(self.devices[seq], []).append(seq)
        return by_device

    def close(self):
        self.spool.close()


@pytest.fixture
def spool_dir(tmp_path):
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return path


def forward_environment(broker_port, spool_dir, state_dir, **overrides):
    """The environment of a ``bessai forward`` child: settings plus PATH and locale."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "SITE_ID": "SITE-TEST-001",
        "MQTT_ENABLED": "true",
        "MQTT_BROKER_HOST": "127.0.0.1",
        "MQTT_PORT": str(broker_port),
        "MQTT_CLIENT_ID": "bessai-forward-test",
        "MQTT_RECONNECT_MIN_S": "0.2",
        "MQTT_RECONNECT_MAX_S": "1",
        "SPOOL_DIR": str(spool_dir),
        "FORWARD_STATE_DIR": str(state_dir),
        "LOG_LEVEL": "info",
    }
    environ.update({name: str(value) for name, value in overrides.items()})
    return environ


def forward_command():
    return [*bessai_command(), "forward"]


class ForwarderProcess:
    """``bessai forward`` as a child process; its stderr goes to ``log_path``."""

    def __init__(self, environ, log_path):
        self.environ = environ
        self.log_path = pathlib.Path(log_path)
        self.process = None

    def start(self):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(forward_command(), env=self.environ,
                                        stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        return self

    def stop(self, timeout=15):
        """SIGTERM and wait; return the exit status."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        status = self.process.wait(timeout=timeout)
        self._log.close()
        return status

    def kill(self):
        """SIGKILL, the way a crash or the OOM killer ends the process."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)
        self._log.close()

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            if self.process.poll() is not None:
                return text in self.log_text()
            time.sleep(0.05)
        return False


def receive_notifications(sock, until, stop_when=None):
    """Return the sd_notify datagrams that arrive on ``sock`` before monotonic ``until``.

    Stops early after the first datagram for which ``stop_when`` returns true.
    """
    messages = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            break
        messages.append(data)
        if stop_when and stop_when(data):
            break
    return messages


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """Paths of a throwaway CA, server and client certificates (see ``tls.py``)."""
    if shutil.which("openssl") is None:
        require_commands("openssl")
    from tests.forward.tls import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("tls"))


def first_arrivals(seqs):
    """``seqs`` without repeats, each at its first arrival."""
    seen = set()
    ordered = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            ordered.append(seq)
    return ordered


def wait_until(condition, timeout=30):
    """Return True once ``condition()`` holds, or False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def start_forwarder(tmp_path, mosquitto, spool_dir, state_dir):
    """A function that starts ``bessai forward`` on this test's broker and spool.

    Keyword arguments override settings. Every process still running at the end of
    the test is stopped with SIGTERM.
    """
    started = []

    def start(**overrides):
        environ = forward_environment(mosquitto.port, spool_dir, state_dir, **overrides)
        process = ForwarderProcess(environ, tmp_path / "forward.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()
