"""SimulatorProcess.check(): a dead simulator child is reaped, logged and restarted on
the same port. Real child processes killed with real signals, real Modbus TCP."""

import logging
import os
import signal
import socket
import time

import pytest

from bessai_edge.backoff import BackoffPolicy
from bessai_edge.link import DeviceLink
from bessai_edge.simulator_process import SimulatorProcess

FAST_RESTART = BackoffPolicy(initial_s=0.1, maximum_s=0.4, jitter=0.0)
HANG_LIMIT_S = 30.0  # bounds a hung test only; no speed is asserted


@pytest.fixture
def child():
    process = SimulatorProcess(["--profile", "huawei_sun2000"], restart_backoff=FAST_RESTART)
    process.start()
    yield process
    process.stop()


def is_zombie_or_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]  # the state letter
    except FileNotFoundError:
        return None


def check_until(child, condition):
    deadline = time.monotonic() + HANG_LIMIT_S
    while not condition():
        assert time.monotonic() < deadline, "check() never reached the expected state"
        child.check()
        time.sleep(0.05)


def read_one(port):
    with DeviceLink("127.0.0.1", port, unit_id=1, request_timeout_s=2.0) as link:
        return link.read(1, "holding", 32080, 2)


def test_check_running_child_does_nothing(child, caplog):
    caplog.set_level(logging.DEBUG, logger="bessai_edge.simulator_process")
    pid = child.process.pid
    for _ in range(3):
        assert child.check() is True
    assert child.process.pid == pid
    assert child.restarts == 0
    assert not caplog.records


def test_check_reaps_logs_and_restarts_killed_child(child, caplog):
    caplog.set_level(logging.DEBUG, logger="bessai_edge.simulator_process")
    host, port = child.address
    old_pid = child.process.pid
    os.kill(old_pid, signal.SIGKILL)
    check_until(child, lambda: child.restarts == 1)
    assert is_zombie_or_running(old_pid) is None, "the dead child is reaped, not a zombie"
    check_until(child, lambda: any("restarted as pid" in r.getMessage() for r in caplog.records))
    assert child.process.pid != old_pid
    assert child.address == (host, port)
    assert len(read_one(port)) == 2  # the same port serves again

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert f"pid {old_pid}" in errors[0]
    assert f"{host}:{port}" in errors[0]
    assert "killed by signal 9 (SIGKILL)" in errors[0]


def test_check_retries_while_port_is_taken(child, caplog):
    caplog.set_level(logging.DEBUG, logger="bessai_edge.simulator_process")
    port = child.address[1]
    child.process.send_signal(signal.SIGTERM)
    child.process.wait(HANG_LIMIT_S)  # the port is free once the child has exited
    with socket.create_server(("127.0.0.1", port)) as squatter:
        check_until(child, lambda: any("cannot listen" in r.getMessage()
                                       for r in caplog.records))
        assert squatter.fileno() >= 0
        first_failure = child.restarts
        check_until(child, lambda: child.restarts > first_failure)  # retried, backed off
    check_until(child, lambda: any("restarted as pid" in r.getMessage() for r in caplog.records))
    assert len(read_one(port)) == 2

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "exited with status 0" in errors[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "later failed restarts are logged at DEBUG"
    assert f"cannot listen on 127.0.0.1:{port} again" in warnings[0]


def test_check_after_stop_restarts_nothing(child):
    child.stop()
    assert child.check() is False
    assert child.restarts == 0
