"""``bessai run`` when devices fail: down at start, lost and restored, holes, SIGTERM.

Every device is ``bessai simulate`` over real Modbus TCP on loopback, or a free port
where nothing listens.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from bessai_edge.profile import load_profile
from bessai_edge.profile.registry import resolve_profile_path
from bessai_edge.simulator_process import SimulatorProcess
from tests.conftest import free_tcp_port
from tests.loop.conftest import (
    gateway_env,
    pid_gone,
    read_records,
    run_gateway,
    running_gateway,
    simulator,
    wait_for_records,
)
from tests.service.conftest import NotifyListener
from tests.spool.test_full_disk import fill_disk

PROFILE = "huawei_sun2000"


def test_run_device_down_at_start_sends_ready(tmp_path):
    socket_path = str(tmp_path / "notify.sock")
    listener = NotifyListener(socket_path, socket_path)
    environ = gateway_env(tmp_path / "spool", INVERTER_IP="127.0.0.1",
                          INVERTER_PORT=free_tcp_port(), DRIVER_PROFILE_PATH=PROFILE,
                          NOTIFY_SOCKET=socket_path)
    try:
        run = run_gateway(environ, 3)
        listener.receive(0.5)
        texts = listener.texts()
    finally:
        listener.close()
    assert run.returncode == 0, run.stderr
    assert any("READY=1" in text.splitlines() for text in texts), texts
    assert any("STOPPING=1" in text.splitlines() for text in texts), texts
    assert len(run.records) == 3
    for record in run.records:
        assert record["state"] == "down"
        assert record["error"].startswith("refused"), record["error"]
        assert set(record["quality"].values()) == {"comm_error"}
        assert set(record["values"].values()) == {None}
    assert "device down (refused" in run.stderr


def test_run_two_devices_polled_in_order_one_dead(tmp_path):
    with simulator("--profile", PROFILE) as (host, port):
        environ = gateway_env(tmp_path / "spool", DEVICES="first,second", INVERTER_IP=host,
                              DRIVER_PROFILE_PATH=PROFILE, DEVICE_FIRST_PORT=free_tcp_port(),
                              DEVICE_SECOND_PORT=port)
        run = run_gateway(environ, 3)
    assert run.returncode == 0, run.stderr
    assert [(record["cycle"], record["device"]) for record in run.records] == [
        (1, "first"), (1, "second"), (2, "first"), (2, "second"), (3, "first"), (3, "second")]
    assert {record["state"] for record in run.records if record["device"] == "first"} == {"down"}
    assert {record["state"] for record in run.records if record["device"] == "second"} == {"ok"}
    assert re.search(r"cycle 1: first: device down \(refused.*; second: soc=", run.stderr)


def test_run_connection_lost_and_restored(tmp_path):
    port = free_tcp_port()
    health_port = free_tcp_port()
    spool_dir = tmp_path / "spool"
    environ = gateway_env(spool_dir, INVERTER_IP="127.0.0.1", INVERTER_PORT=port,
                          DRIVER_PROFILE_PATH=PROFILE,
                          HEALTH_LISTEN=f"127.0.0.1:{health_port}")
    first = SimulatorProcess(["--profile", PROFILE], port=port)
    first.start()
    try:
        with running_gateway(environ) as gateway:
            wait_for_records(spool_dir, 2, gateway, predicate=lambda r: r["state"] == "ok")
            first.stop()
            down = wait_for_records(spool_dir, 1, gateway,
                                    predicate=lambda r: r["state"] == "down")
            lost_cycle = down[0]["cycle"]
            with simulator("--profile", PROFILE, port=port):
                wait_for_records(spool_dir, 1, gateway, predicate=lambda r: (
                    r["state"] == "ok" and r["cycle"] > lost_cycle))
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics",
                                            timeout=10) as response:
                    metrics = response.read().decode()
                # Stopped while the device still replies, so the last record is "ok".
                status = gateway.stop()
            log = gateway.log()
    finally:
        first.stop()
    assert status == 0, log
    records = read_records(spool_dir)
    cycles = [record["cycle"] for record in records]
    assert cycles == list(range(1, len(records) + 1))  # one record per cycle, gaps included
    states = [record["state"] for record in records]
    assert states[0] == "ok"
    assert "down" in states
    assert states[-1] == "ok"
    assert "device state ok -> down" in log
    assert "device state down -> ok" in log
    # The line that reports the loss carries the link's error kind for journalctl filters.
    down_line = next(line for line in log.splitlines() if "device state ok -> down" in line)
    assert re.search(r"BESSAI_ERROR_KIND=(refused|disconnected|timeout)", down_line), down_line
    assert re.search(r'^bessai_device_reconnects_total\{device="[^"]+"\} 1(\.0)?$', metrics,
                     re.MULTILINE), metrics
    assert re.search(r"connection to 127\.0\.0\.1:\d+ \(unit id \d+\) restored after", log), log


def test_run_connection_dropped_every_cycle_logged_once(tmp_path):
    # Each cycle used to log "is down" and "restored after": 30 lines in 15 cycles.
    profile = "sma_sunny_tripower"  # no quiet time after connect: the cycles stay short
    with simulator("--profile", profile, "--disconnect-every", "3") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile)
        run = run_gateway(environ, 15)
    assert run.returncode == 0, run.stderr
    dropped = [record for record in run.records
               if (record["error"] or "").startswith("disconnected")]
    assert len(dropped) >= 5, [record["error"] for record in run.records]
    link_lines = [line for line in run.stderr.splitlines() if "bessai_edge.link:" in line]
    down = [line for line in link_lines if " is down: " in line]
    restored = [line for line in link_lines if " restored after " in line]
    assert len(down) == 1, link_lines
    assert "WARNING" in down[0]
    assert "the device closed the connection" in down[0]
    assert len(restored) == 1, link_lines
    # Every later drop is restored by the next cycle's first request, except a drop in
    # the last cycle. They are counted, and the count is logged when the link closes.
    counts = [int(match.group(1)) for line in link_lines
              for match in [re.search(r" lost and restored (\d+) times? in the last \d+ s; "
                                      r"last cause: the device closed the connection(?: BESSAI_|$)", line)]
              if match]
    still_down = 1 if run.records[-1] in dropped else 0
    assert counts and sum(counts) == len(dropped) - 1 - still_down, link_lines


def test_run_shutdown_line_counts_overruns(tmp_path):
    # Every reply 0.1 s late: each cycle of a 0.05 s period overruns. The overrun line
    # is rate-limited, so the shutdown line gives the total.
    profile = "sma_sunny_tripower"
    with simulator("--profile", profile, "--latency", "0.1") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile, SCAN_INTERVAL_S="0.05")
        run = run_gateway(environ, 4)
    assert run.returncode == 0, run.stderr
    overrun_lines = [line for line in run.stderr.splitlines() if " overran the " in line]
    assert len(overrun_lines) == 1, run.stderr
    assert "stopped after 4 cycles: 4 records appended, 0 dropped, 3 overruns" in run.stderr


def test_run_device_changing_state_every_cycle_logged_once(tmp_path):
    # A drop every 13th request makes every other cycle degraded. Each change used to
    # log a device state line and a cycle summary: about 30 lines in 15 cycles.
    profile = "sma_sunny_tripower"  # 9 requests a cycle, no quiet time after connect
    with simulator("--profile", profile, "--disconnect-every", "13") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile)
        run = run_gateway(environ, 15)
    assert run.returncode == 0, run.stderr
    states = ["starting"] + [record["state"] for record in run.records]
    changes = sum(1 for old, new in zip(states, states[1:]) if old != new)
    assert changes >= 10, states
    poller_lines = [line for line in run.stderr.splitlines() if "bessai_edge.poller:" in line
                    and "device state" in line]
    assert [re.search(r"device state (\w+ -> \w+)", line).group(1)
            for line in poller_lines[:3]] == ["starting -> ok", "ok -> degraded",
                                              "degraded -> ok"], poller_lines
    # The rest are counted and reported at shutdown, with the state the device ended in.
    assert len(poller_lines) == 4, poller_lines
    report = re.search(r"device state changed (\d+) more times in the last \d+ s \("
                       r"degraded -> ok \d+, ok -> degraded \d+\), now (\w+); last error: "
                       r"disconnected: the device closed the connection", poller_lines[3])
    assert report, poller_lines[3]
    assert int(report.group(1)) == changes - 3
    assert report.group(2) == run.records[-1]["state"]
    summaries = [line for line in run.stderr.splitlines() if "bessai_edge.scanloop: cycle " in line
                 and " overran " not in line]
    assert len(summaries) == 3, summaries  # cycles 1 to 3: one per state line, not per change


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_run_stop_signal_flushes_and_exits_zero(tmp_path, signum):
    spool_dir = tmp_path / "spool"
    environ = gateway_env(spool_dir, BESSAI_MODE="simulator", DRIVER_PROFILE_PATH=PROFILE)
    with running_gateway(environ) as gateway:
        wait_for_records(spool_dir, 3, gateway)
        status = gateway.stop(signum)
        log = gateway.log()
    assert status == 0, log
    assert f"received {signum.name}: stopped after cycle" in log
    cycles = int(re.search(r"stopped after cycle (\d+)", log).group(1))
    records = read_records(spool_dir)
    assert [record["cycle"] for record in records] == list(range(1, cycles + 1))
    assert f"stopped after {cycles} cycles: {cycles} records appended, 0 dropped" in log
    child = re.search(r"running as pid (\d+)", log)
    assert child, log
    assert pid_gone(int(child.group(1)))


def wait_for_log(gateway, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in gateway.log():
        assert gateway.poll() is None, gateway.log()
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.05)


def silent_device():
    """Return a listening socket: a real TCP peer that completes the handshake from its
    backlog and never replies."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    return silent


def test_run_second_ctrl_c_message(tmp_path):
    with silent_device() as silent:
        environ = gateway_env(tmp_path / "spool", INVERTER_IP="127.0.0.1",
                              INVERTER_PORT=silent.getsockname()[1],
                              DRIVER_PROFILE_PATH=PROFILE, REQUEST_TIMEOUT_S="5")
        with running_gateway(environ) as gateway:
            wait_for_log(gateway, "connected to 127.0.0.1")
            gateway.process.send_signal(signal.SIGINT)
            # The first SIGINT writes its line at once, while the device stays silent.
            wait_for_log(gateway, "stopping after the cycle in progress")
            status = gateway.stop(signal.SIGINT)
            log = gateway.log()
    assert status == 130, log
    # Connect timeout 2 s against 1 s quiet time plus the 5 s request, and 10 s to close.
    assert "bessai: stopping after the cycle in progress (up to 16 s while a device does " \
           "not reply); press Ctrl-C again to stop at once without its record" in log
    assert "bessai: second Ctrl-C: stopping now; the record of the cycle in progress is " \
           "not written" in log


def test_run_stop_during_start_sends_no_ready(tmp_path):
    socket_path = str(tmp_path / "notify.sock")
    listener = NotifyListener(socket_path, socket_path)
    try:
        with silent_device() as silent:
            environ = gateway_env(tmp_path / "spool", INVERTER_IP="127.0.0.1",
                                  INVERTER_PORT=silent.getsockname()[1],
                                  DRIVER_PROFILE_PATH=PROFILE, NOTIFY_SOCKET=socket_path)
            with running_gateway(environ) as gateway:
                # SIGTERM within the profile's 1 s quiet time after connect, before READY=1.
                wait_for_log(gateway, "connected to 127.0.0.1")
                status = gateway.stop()
        listener.receive(0.5)
        texts = listener.texts()
    finally:
        listener.close()
    assert status == 0, gateway.log()
    assert not any("READY=1" in text.splitlines() for text in texts), texts
    assert sum("STOPPING=1" in text.splitlines() for text in texts) == 1, texts


def hole_target(profile_name):
    """Return (address, field, other fields of its request) for a canonical point that
    shares its request with other canonical points."""
    profile = load_profile(profile_name)
    plan = profile.plan()
    by_block = {}
    for point in plan.points:
        if point.field and point.readable:
            by_block.setdefault(point.block, []).append(point)
    for points in by_block.values():
        if len(points) >= 3:
            middle = points[len(points) // 2]
            others = [point.field for point in points if point is not middle]
            return middle.address, middle.field, others
    raise AssertionError(f"profile {profile_name} has no request with three canonical points")


def test_run_polls_while_health_port_busy(tmp_path):
    with silent_device() as busy:
        port = busy.getsockname()[1]
        environ = gateway_env(tmp_path / "spool", BESSAI_MODE="simulator",
                              DRIVER_PROFILE_PATH=PROFILE, HEALTH_LISTEN=f"127.0.0.1:{port}")
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    assert f"HEALTH_LISTEN=127.0.0.1:{port}: cannot listen there" in run.stderr
    assert [record["state"] for record in run.records] == ["ok", "ok"]


def test_run_warns_of_spool_cap_above_disk(tmp_path):
    spool_dir = tmp_path / "spool"
    environ = gateway_env(spool_dir, BESSAI_MODE="simulator", DRIVER_PROFILE_PATH=PROFILE,
                          SPOOL_MAX_TOTAL_BYTES="1024G")
    usage = os.statvfs(tmp_path)
    assert usage.f_bavail * usage.f_frsize < 1024 ** 4, "the test needs a disk below 1 TiB"
    run = run_gateway(environ, 1)
    assert run.returncode == 0, run.stderr
    assert re.search(r"WARNING .*SPOOL_MAX_TOTAL_BYTES=1099511627776 is more than the spool can "
                     r"get on its file system \(\d+ bytes: \d+ free and \d+ in the spool\): "
                     r"when the disk fills, new records are dropped while the oldest stay; "
                     r"set SPOOL_MAX_TOTAL_BYTES to at most \d+K BESSAI_EVENT=spool", run.stderr), \
        run.stderr
    assert len(run.records) == 1


def test_run_spool_advice_fits_small_disk(tmp_path, needs_root):
    # A real 8 MiB tmpfs: too small for the default 16 MiB segments.
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        environ = gateway_env(disk, BESSAI_MODE="simulator", DRIVER_PROFILE_PATH=PROFILE,
                              SPOOL_MAX_TOTAL_BYTES="64M")
        run = run_gateway(environ, 1)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert run.returncode == 0, run.stderr
    advice = re.search(r"set SPOOL_SEGMENT_MAX_BYTES to at most (\d+)K and "
                       r"SPOOL_MAX_TOTAL_BYTES to at most (\d+)K", run.stderr)
    assert advice, run.stderr
    segment_k, total_k = int(advice.group(1)), int(advice.group(2))
    assert total_k * 1024 < 8 * 1024 * 1024
    assert 2 * segment_k <= total_k  # the advice passes the settings check


def test_run_full_disk_says_free_space(tmp_path, needs_root):
    # Another file fills a 1 MiB tmpfs: lowering the cap would only evict the spool.
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        spool_dir = disk / "spool"
        spool_dir.mkdir()
        fill_disk(disk)
        environ = gateway_env(spool_dir, BESSAI_MODE="simulator", DRIVER_PROFILE_PATH=PROFILE,
                              SPOOL_SEGMENT_MAX_BYTES="64K", SPOOL_MAX_TOTAL_BYTES="512K")
        run = run_gateway(environ, 1)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert run.returncode == 0, run.stderr
    assert re.search(r"WARNING .*SPOOL_MAX_TOTAL_BYTES=524288 is more than the spool can get "
                     r"on its file system \(\d+ bytes: \d+ free and 0 in the spool\), "
                     r"because other files take most of its \d+ bytes: when the disk fills, "
                     r"new records are dropped while the oldest stay; free space there "
                     rf"\(df -h {re.escape(str(spool_dir))} shows it\)", run.stderr), run.stderr
    assert "set SPOOL_MAX_TOTAL_BYTES to at most" not in run.stderr
    assert "set SPOOL_SEGMENT_MAX_BYTES to at most" not in run.stderr
    assert re.search(r"cycle 1: .* alarms=none spool=dropping", run.stderr), run.stderr


def test_run_exception_to_every_request_is_down(tmp_path):
    # The simulator replies to an unknown unit id with exception 11, as a Modbus gateway does.
    with simulator("--profile", PROFILE, "--unknown-unit", "exception11") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, MODBUS_SLAVE_ID="2")
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    assert [record["state"] for record in run.records] == ["down", "down"]
    assert run.records[0]["error"].startswith("exception_11"), run.records[0]["error"]
    assert "device state starting -> down (exception_11" in run.stderr
    # One line for the unit id, not one per request, and it names the setting to fix.
    exception_lines = [line for line in run.stderr.splitlines()
                       if "returned Modbus exception code 11" in line and "WARNING" in line
                       and "device state" not in line]
    assert len(exception_lines) == 1, exception_lines
    assert ("no device answers unit id 2 behind this gateway: check MODBUS_SLAVE_ID"
            in exception_lines[0])


def test_run_exception_11_names_device_variable(tmp_path):
    with simulator("--profile", "sma_sunny_tripower") as (host, port):
        environ = gateway_env(tmp_path / "spool", DEVICES="sma", DEVICE_SMA_IP=host,
                              DEVICE_SMA_PORT=port, DEVICE_SMA_PROFILE="sma_sunny_tripower",
                              DEVICE_SMA_SLAVE_ID="7")
        run = run_gateway(environ, 1)
    assert run.returncode == 0, run.stderr
    assert "no device answers unit id 7 behind this gateway: check DEVICE_SMA_SLAVE_ID" in (
        run.stderr)


def test_run_unit_id_answered_with_ffff_is_down(tmp_path):
    # Some RS-485 gateways reply to a unit id that nothing serves with 0xFFFF in every
    # register. Decoded, those words read -0.1 C and -0.001 kW and raise a false alarm.
    with simulator("--profile", PROFILE, "--unknown-unit", "ffff") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, MODBUS_SLAVE_ID="7")
        run = run_gateway(environ, 4)
    assert run.returncode == 0, run.stderr
    for record in run.records:
        assert record["state"] == "down", record
        assert record["error"].startswith("no_data: unit id 7 read 0xFFFF"), record["error"]
        assert set(record["quality"].values()) == {"comm_error"}, record["quality"]
        assert set(record["values"].values()) == {None}, record["values"]
        assert not any(alarm.endswith(("_warn", "_trip")) for alarm in record["alarms"])
    assert "device state starting -> down (no_data: unit id 7" in run.stderr
    assert "MODBUS_SLAVE_ID" in run.stderr


def test_run_silent_role_unit_named(tmp_path):
    # A gateway silent for a wrong VE.Bus unit id: the state line was only "degraded
    # (timeout: no reply before the request timeout)", naming no unit id.
    with simulator("--profile", "victron_multiplus", "--unknown-unit", "none") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH="victron_multiplus", MODBUS_UNIT_VEBUS="246",
                              REQUEST_TIMEOUT_S="0.2")
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    record = run.records[0]
    assert record["state"] == "degraded", record
    assert record["error"].startswith("timeout: "), record["error"]
    assert "; unit id 246, function " in record["error"], record["error"]
    assert "device state starting -> degraded (timeout: " in run.stderr


def test_run_ffff_role_unit_degrades_device(tmp_path):
    profile = load_profile("victron_multiplus")
    battery_fields = {point.field for point in profile.points
                      if point.unit_role == "battery" and point.field}
    with simulator("--profile", "victron_multiplus", "--unknown-unit", "ffff") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH="victron_multiplus", MODBUS_UNIT_BATTERY="226")
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    assert battery_fields
    for record in run.records:
        assert record["state"] == "degraded", record
        assert record["error"].startswith("no_data: unit id 226 read 0xFFFF"), record["error"]
        for field, quality in record["quality"].items():
            expected = "comm_error" if field in battery_fields else "ok"
            assert quality == expected or (expected == "ok" and quality == "not_available"), (
                field, quality)
        assert any(quality == "ok" for quality in record["quality"].values())


def test_run_request_starting_with_ffff_stays_ok(tmp_path):
    # Huawei's alarm bitfield 32008 may read 0xFFFF: the first word of a request alone
    # is no sign of an absent unit id.
    with simulator("--profile", PROFILE, "--set", "alarm_1=65535") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE)
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    for record in run.records:
        assert record["state"] == "ok", record["error"]
        assert record["values"]["alarm_1"] == 65535
        assert record["quality"]["alarm_1"] == "ok"


def test_run_retries_busy_request_once(tmp_path):
    # Every second request gets exception 6 (device busy). Its retry is the next
    # request, which the simulator replies to, so every value is read in every cycle.
    with simulator("--profile", PROFILE, "--busy-every", "2") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE)
        run = run_gateway(environ, 3)
    assert run.returncode == 0, run.stderr
    for record in run.records:
        assert record["state"] == "ok", record["error"]
        assert record["quality"]["soc_pct"] == "ok"
        assert record["quality"]["battery_power_kw"] == "ok"
    # Every cycle has busy replies, and the rate limit lets one line through a minute.
    busy = [line for line in run.stderr.splitlines() if "exception 6 (device busy)" in line]
    assert len(busy) == 1, run.stderr
    assert " WARNING bessai_edge.link: " in busy[0]
    assert "the request is sent once more" in busy[0]
    assert "raise SCAN_INTERVAL_S" in busy[0]
    assert "BESSAI_DEVICE=inverter" in busy[0]
    assert "BESSAI_ERROR_KIND=exception_6" in busy[0]
    assert "battery_power_kw reads" not in run.stderr  # the simulator's values are plausible


def test_run_busy_twice_fails_the_request(tmp_path):
    # Every request busy: one retry each, then the device is down with exception 6.
    with simulator("--profile", PROFILE, "--busy-every", "1") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE)
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    for record in run.records:
        assert record["state"] == "down", record
        assert record["error"].startswith("exception_6"), record["error"]


def test_run_hole_split_then_no_failing_request(tmp_path):
    address, field, others = hole_target(PROFILE)
    with simulator("--profile", PROFILE, "--exception", f"{address}=2") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE)
        run = run_gateway(environ, 3)
    assert run.returncode == 0, run.stderr
    # Cycle 1 probes the rejected request, then reads the regrouped plan again.
    for record in run.records:
        assert record["state"] == "ok", record["error"]
        assert record["error"] is None
        assert record["quality"][field] == "not_available"
        for other in others:
            assert record["quality"][other] == "ok", (other, record["quality"])
    assert "exception 2 (illegal data address)" in run.stderr


def test_run_quiet_time_spent_before_first_cycle(tmp_path):
    # The Huawei profile waits 1 s after connecting. With a 1 s period that wait alone
    # would make cycle 1 overrun on every start unless it is spent before the loop.
    with simulator("--profile", PROFILE) as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, SCAN_INTERVAL_S="1")
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    assert [record["state"] for record in run.records] == ["ok", "ok"]
    assert "cycle 1 overran" not in run.stderr, run.stderr


def test_run_reads_after_long_quiet_time(tmp_path):
    # The profile waits 1 s after connecting and the device ignores requests for 1.5 s.
    # The first request times out; the connection stays open, so cycle 2 reads values.
    with simulator("--profile", PROFILE, "--quiet-after-accept", "1.5") as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, SCAN_INTERVAL_S="1",
                              REQUEST_TIMEOUT_S="1")
        run = run_gateway(environ, 3)
    assert run.returncode == 0, run.stderr
    states = [record["state"] for record in run.records]
    assert states == ["down", "ok", "ok"], run.stderr
    assert run.records[1]["values"]["soc_pct"] is not None
    assert "connected to" in run.stderr
    assert "reconnected" not in run.stderr


def test_run_warns_of_limit_without_field(tmp_path):
    # A copy of the SMA profile whose SOC point feeds no field: LIMIT_SOC_LOW_WARN is
    # never checked, so the start logs a warning.
    profile = json.loads(resolve_profile_path("sma_sunny_tripower").read_text())
    for point in profile["points"]:
        if point.get("field") == "soc_pct":
            del point["field"]
    profile_path = tmp_path / "sma_no_soc.json"
    profile_path.write_text(json.dumps(profile))
    environ = gateway_env(tmp_path / "spool", BESSAI_MODE="simulator",
                          DRIVER_PROFILE_PATH=str(profile_path), LIMIT_SOC_LOW_WARN="20")
    run = run_gateway(environ, 1)
    assert run.returncode == 0, run.stderr
    assert ("LIMIT_SOC_LOW_WARN set, but no device's profile maps soc_pct, so the limit is "
            "never checked") in run.stderr
    assert "soc_pct" not in run.records[0]["values"]


def test_run_plan_lines_name_the_device(tmp_path):
    # With two devices on one unit id, "unit 1 holding ..." alone did not say which.
    address, _field, _others = hole_target(PROFILE)
    with simulator("--profile", PROFILE, "--exception", f"{address}=2") as (host, port):
        environ = gateway_env(tmp_path / "spool", DEVICES="huawei", DEVICE_HUAWEI_IP=host,
                              DEVICE_HUAWEI_PORT=port, DEVICE_HUAWEI_PROFILE=PROFILE)
        run = run_gateway(environ, 1)
    assert run.returncode == 0, run.stderr
    rejected = [line for line in run.stderr.splitlines() if "the device rejects" in line]
    assert rejected, run.stderr
    assert "bessai_edge.profile.plan: huawei: unit 1 holding " in rejected[0]
    assert f"rejects registers {address} with exception 2" in rejected[0]
    assert "BESSAI_DEVICE=huawei" in rejected[0]
    assert "huawei: read plan regrouped" in run.stderr


def test_run_role_off_no_stale_alarm(tmp_path):
    # A Victron site without a battery monitor: the battery role's unit id gets
    # exception 11, which made the device degraded and battery_temp_c stale for good.
    with simulator("--profile", "victron_multiplus", "--unknown-unit", "exception11") as (
            host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH="victron_multiplus",
                              MODBUS_UNIT_BATTERY="off", STALE_AFTER_S="1",
                              SCAN_INTERVAL_S="0.5")
        run = run_gateway(environ, 6)
    assert run.returncode == 0, run.stderr
    assert [record["state"] for record in run.records] == ["ok"] * 6
    last = run.records[-1]
    assert last["quality"]["battery_temp_c"] == "not_available"
    assert last["values"]["soc_pct"] is not None
    assert last["alarms"] == [], last["alarms"]
    assert "battery_temp_c:stale" not in run.stderr
    # The battery temperature limit is on by default, so switching its only feeder off is
    # logged.
    assert ("WARNING bessai_edge.poller: inverter: MODBUS_UNIT_BATTERY=off switches off the "
            "only points that feed battery_temp_c, so the safety limits on it are off; if the "
            "site has that part, set its unit id instead") in run.stderr
    assert "read plan of 4 requests, 56 registers, 33 points" in run.stderr
