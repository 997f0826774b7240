"""``bessai run`` in simulator mode: the simulator child dies and comes back, its banner
stays out of the gateway's output, and a spool problem stops the start before any child
runs. Real processes, real signals, real Modbus TCP on loopback."""

import os
import re
import signal
import subprocess
import time

from bessai_edge.errors import EX_CONFIG
from tests.conftest import bessai_command
from tests.loop.conftest import (
    RUN_TIMEOUT_S,
    gateway_env,
    pid_gone,
    running_gateway,
    wait_for_records,
)

PROFILE = "huawei_sun2000"
BANNER = "stop with Ctrl-C"
CHILD_LINE = re.compile(r"simulator \(--profile huawei_sun2000\) running as pid (\d+) on "
                        r"127\.0\.0\.1:(\d+)")


def wait_for_log(gateway, pattern):
    deadline = time.monotonic() + RUN_TIMEOUT_S  # bounds a hung test only
    while True:
        match = re.search(pattern, gateway.log())
        if match:
            return match
        assert gateway.poll() is None, f"bessai run exited: {gateway.log()}"
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.05)


def test_run_restarts_killed_simulator_child(tmp_path):
    spool_dir = tmp_path / "spool"
    environ = gateway_env(spool_dir, BESSAI_MODE="simulator", DRIVER_PROFILE_PATH=PROFILE)
    with running_gateway(environ) as gateway:
        child = wait_for_log(gateway, CHILD_LINE)
        pid, port = int(child.group(1)), child.group(2)
        wait_for_records(spool_dir, 1, gateway, predicate=lambda r: r["state"] == "ok")
        os.kill(pid, signal.SIGKILL)
        assert pid_gone(pid, timeout=RUN_TIMEOUT_S), "the gateway reaps its dead child"
        down = wait_for_records(spool_dir, 1, gateway, predicate=lambda r: r["state"] == "down")
        wait_for_records(spool_dir, 1, gateway, predicate=lambda r: (
            r["state"] == "ok" and r["cycle"] > down[0]["cycle"]))
        status = gateway.stop()
        log = gateway.log()
    assert status == 0, log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert f"pid {pid} on 127.0.0.1:{port} was killed by signal 9 (SIGKILL)" in errors[0]
    assert re.search(rf"restarted as pid \d+ on 127\.0\.0\.1:{port}", log), log
    assert BANNER not in log


def test_run_spool_error_before_simulator_starts(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    environ = gateway_env(tmp_path / "unused", BESSAI_MODE="simulator",
                          DRIVER_PROFILE_PATH=PROFILE, SPOOL_DIR=not_a_directory)
    result = subprocess.run([*bessai_command(), "run", "--cycles", "1"], env=environ,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == EX_CONFIG, result.stderr
    assert str(not_a_directory) in result.stderr
    assert "simulator" not in result.stderr, "no child started before the spool check"
    assert BANNER not in result.stderr


def test_run_one_cycle_log_says_cycle(tmp_path):
    environ = gateway_env(tmp_path / "spool", BESSAI_MODE="simulator", DRIVER_PROFILE_PATH=PROFILE)
    result = subprocess.run([*bessai_command(), "run", "--cycles", "1"], env=environ,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert "stopped after 1 cycle: 1 record appended, 0 dropped" in result.stderr, result.stderr
