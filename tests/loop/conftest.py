"""Helpers for the end-to-end tests of ``bessai run``: real processes, real Modbus TCP.

Every test runs the installed ``bessai`` CLI as a child process against ``bessai
simulate`` on 127.0.0.1 and reads the records back from the spool directory with the
spool's own reader.
"""

import contextlib
import dataclasses
import os
import signal
import subprocess
import tempfile
import time

import orjson

from bessai_edge.simulator_process import SimulatorProcess
from bessai_edge.spool import SpoolReader
from tests.conftest import bessai_command

# Short period so that a few cycles take little time; the timing itself is benchmarked.
TEST_PERIOD_S = "0.2"
RUN_TIMEOUT_S = 90


def gateway_env(spool_dir, **variables):
    """Return a clean environment for ``bessai run`` with the spool in ``spool_dir``."""
    os.makedirs(spool_dir, exist_ok=True)
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "SITE_ID": "test-site",
        "SCAN_INTERVAL_S": TEST_PERIOD_S,
        "SPOOL_DIR": str(spool_dir),
        "HEALTH_LISTEN": "",
        "LOG_LEVEL": "info",
    }
    environ.update({name: str(value) for name, value in variables.items()})
    return environ


@dataclasses.dataclass
class GatewayRun:
    """Outcome of one ``bessai run``: exit status, log lines and the spooled records."""

    returncode: int
    stderr: str
    records: list


def read_records(spool_dir):
    """Return every record in the spool, oldest first, as dicts."""
    return [orjson.loads(line) for _position, line in SpoolReader(str(spool_dir)).read(None)]


def run_gateway(environ, cycles, *extra_args, timeout=RUN_TIMEOUT_S):
    """Run ``bessai run --cycles N`` to the end and return a GatewayRun."""
    result = subprocess.run([*bessai_command(), "run", "--cycles", str(cycles), *extra_args],
                            env=environ, capture_output=True, text=True, timeout=timeout)
    return GatewayRun(result.returncode, result.stderr, read_records(environ["SPOOL_DIR"]))


@contextlib.contextmanager
def simulator(*source_args, port=0):
    """Run ``bessai simulate SOURCE_ARGS`` on loopback (port 0: a free one); yield (host, port)."""
    process = SimulatorProcess(source_args, port=port)
    try:
        yield process.start()
    finally:
        process.stop()


class BackgroundGateway:
    """``bessai run`` in the background, its log in a file so a full pipe never blocks it."""

    def __init__(self, environ, *extra_args):
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([*bessai_command(), "run", *extra_args], env=environ,
                                        stdout=subprocess.DEVNULL, stderr=self._log, text=True)

    def poll(self):
        return self.process.poll()

    @property
    def returncode(self):
        return self.process.returncode

    def stop(self, signum=signal.SIGTERM):
        """Send ``signum`` unless it exited, wait for the exit and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def log(self):
        self._log.seek(0)
        return self._log.read()


@contextlib.contextmanager
def running_gateway(environ, *extra_args):
    """Start ``bessai run`` in the background; yield a BackgroundGateway, SIGTERM it after."""
    gateway = BackgroundGateway(environ, *extra_args)
    try:
        yield gateway
    finally:
        gateway.stop()


def wait_for_records(spool_dir, count, process, timeout=RUN_TIMEOUT_S, predicate=None):
    """Wait until the spool holds ``count`` records (matching ``predicate``); return them.

    Raises AssertionError when the gateway exits first or the timeout passes; the
    timeout only bounds a hung test, it asserts nothing about speed.
    """
    deadline = time.monotonic() + timeout
    while True:
        records = [record for record in read_records(spool_dir)
                   if predicate is None or predicate(record)]
        if len(records) >= count:
            return records
        assert process.poll() is None, f"bessai run exited with {process.returncode}"
        assert time.monotonic() < deadline, f"only {len(records)} of {count} records"
        time.sleep(0.05)


def pid_gone(pid, timeout=10.0):
    """Return True once no process has ``pid`` (zombies are reaped by their new parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def make_poller(tmp_path, port, profile_name):
    """Return (link, poller) for ``profile_name`` at 127.0.0.1:``port``, from real settings."""
    from bessai_edge import settings as settings_module
    from bessai_edge.devices import load_device_profiles
    from bessai_edge.link import DeviceLink
    from bessai_edge.poller import DevicePoller

    loaded = settings_module.load_settings({
        "SITE_ID": "t", "INVERTER_IP": "127.0.0.1", "INVERTER_PORT": str(port),
        "DRIVER_PROFILE_PATH": profile_name, "SPOOL_DIR": str(tmp_path)})
    device, = loaded.devices
    profile = load_device_profiles(loaded.devices)[device.name]
    link = DeviceLink.for_profile(profile, "127.0.0.1", port=port, unit_id=device.unit_id,
                                  connect_timeout_s=1.0)
    return link, DevicePoller(device, profile, link, loaded.limits, f"127.0.0.1:{port}")
