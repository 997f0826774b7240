"""``bessai simulate`` as a process: ready line, free port, signals, parent death, captures."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bessai_edge.errors import DeviceException
from bessai_edge.link import DeviceLink
from tests.conftest import CAPTURES, bessai_command, free_tcp_port
from tests.simulator.helpers import simulator  # noqa: F401 (fixture)

SMA = str(CAPTURES / "sma_sunnyboy_30775_power_input_evcc17768.json")


def wait_for_exit(process, limit_s=10.0):
    """Return the exit status, or None if the process still runs after ``limit_s`` (a hang)."""
    try:
        return process.wait(limit_s)
    except subprocess.TimeoutExpired:
        return None


def pid_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_simulate_port_zero_prints_bound_port(simulator):
    device = simulator("--capture", SMA)
    assert device.host == "127.0.0.1"
    assert device.port > 0
    with DeviceLink(device.host, device.port, unit_id=3) as link:
        assert link.read(3, "input", 30775, 2) == [0, 83]


def test_simulate_fixed_port(simulator):
    port = free_tcp_port()
    device = simulator("--capture", SMA, port=port)
    assert device.port == port


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_ends_cleanly_on_signal(simulator, signum):
    device = simulator("--capture", SMA)
    with DeviceLink(device.host, device.port, unit_id=3) as link:
        link.read(3, "holding", 30775, 2)
        device.process.send_signal(signum)
        assert wait_for_exit(device.process) == 0


def test_simulate_exits_when_parent_dies(tmp_path):
    # A parent process starts the simulator, reports its pid, then is killed with
    # SIGKILL, so it cannot stop its child: the child must notice and exit by itself.
    parent_script = textwrap.dedent(f"""
        import subprocess, sys, os, time
        child = subprocess.Popen({bessai_command()!r} + ["simulate", "--capture", {SMA!r},
                                  "--port", "0", "--parent-pid", str(os.getpid())],
                                 stdout=subprocess.PIPE)
        print(child.pid, child.stdout.readline().decode().strip(), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_script], stdout=subprocess.PIPE)
    try:
        line = parent.stdout.readline().decode()
        child_pid = int(line.split()[0])
        assert "listening on 127.0.0.1:" in line
        assert pid_exists(child_pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10  # hang guard, not a speed requirement
        while pid_exists(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_exists(child_pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_simulate_capture_answers_only_its_addresses(simulator):
    device = simulator("--capture", SMA)
    with DeviceLink(device.host, device.port, unit_id=3) as link:
        assert link.read(3, "holding", 30775, 2) == [0, 83]
        with pytest.raises(DeviceException) as missing:
            link.read(3, "input", 30775, 3)
        with pytest.raises(DeviceException) as other_unit:
            link.read(1, "input", 30775, 2)
        assert missing.value.code == 2
        assert other_unit.value.code == 11


def test_simulate_unit_id_and_unknown_unit_options(simulator):
    device = simulator("--capture", SMA, "--unit-id", "7", "--unknown-unit", "ffff")
    with DeviceLink(device.host, device.port, unit_id=7) as link:
        assert link.read(7, "input", 30775, 2) == [0, 83]
        assert link.read(3, "input", 30775, 2) == [0xFFFF, 0xFFFF]


def run_simulate(*arguments):
    return subprocess.run([*bessai_command(), "simulate", *arguments, "--port", "0"],
                          capture_output=True, text=True, timeout=60)


def test_simulate_bad_capture_exits_78(tmp_path):
    capture = tmp_path / "broken.json"
    capture.write_text('{"unit_id": 3, "functions": ["holding"], "registers": {"1": 70000}}')
    result = run_simulate("--capture", str(capture))
    assert result.returncode == 78
    assert "register 1 = 70000" in result.stderr
    assert "listening" not in result.stdout


def test_simulate_missing_capture_exits_78(tmp_path):
    result = run_simulate("--capture", str(tmp_path / "absent.json"))
    assert result.returncode == 78
    assert "absent.json" in result.stderr


@pytest.mark.parametrize("arguments,named", [
    (("--exception", "12=x"), "ADDRESS=CODE"),
    (("--latency-requests", "5-2"), "N-M"),
    (("--port", "70000"), "0 to 65535"),
    (("--latency", "-1"), "at least 0"),
])
def test_simulate_rejects_invalid_option(arguments, named):
    result = run_simulate("--capture", SMA, *arguments)
    assert result.returncode == 2
    assert named in result.stderr


@pytest.mark.parametrize("arguments,named", [
    (("--profile", "no_such_profile"), "no_such_profile"),
    (("--profile", "huawei_sun2000", "--set", "soc_pct=x"), "POINT=NUMBER"),
    (("--profile", "huawei_sun2000", "--set", "no_such_point=1"), "no_such_point"),
    (("--profile", "huawei_sun2000", "--sentinel", "no_such_field"), "no_such_field"),
    (("--profile", "victron_multiplus", "--unit", "inverter=5"), "inverter"),
])
def test_simulate_profile_errors_exit_78(arguments, named):
    result = subprocess.run([*bessai_command(), "simulate", *arguments, "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert named in result.stderr
    assert "listening" not in result.stdout


def test_simulate_unknown_role_names_option():
    result = subprocess.run([*bessai_command(), "simulate", "--profile", "victron_multiplus",
                             "--unit", "Bateria=1", "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "--unit bateria=1" in result.stderr
    assert "battery, main, vebus" in result.stderr
    assert "MODBUS_UNIT" not in result.stderr


def test_simulate_profile_serves_roles_on_their_unit_ids(simulator):
    device = simulator("--profile", "victron_multiplus", "--unit-id", "90", "--unit", "vebus=246")
    with DeviceLink(device.host, device.port, unit_id=90) as link:
        soc = link.read(90, "holding", 843, 1)[0]
        assert 20 <= soc <= 95
        assert len(link.read(246, "holding", 9, 1)) == 1
        with pytest.raises(DeviceException) as error:
            link.read(100, "holding", 843, 1)
        assert error.value.code == 11


@pytest.mark.parametrize("name,warned", [
    ("fronius_symo_m103_intsf_night_evcc16924.json", True),
    ("sunspec_pysunspec2_suns_walk_m1_m126.json", False),
    ("sma_sunnyboy_30775_power_input_evcc17768.json", False)])
def test_simulate_warns_of_sunspec_capture_without_marker(name, warned):
    # A capture of one SunSpec model's words alone gave only sunspec_not_found in check.
    child = subprocess.Popen(bessai_command() + ["simulate", "--capture", str(CAPTURES / name),
                                                 "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().startswith("listening on ")
    finally:
        child.terminate()
        _, stderr = child.communicate(timeout=30)
    assert ("holds no SunSpec marker 'SunS' at 40000, 0 or 50000" in stderr) == warned, stderr
