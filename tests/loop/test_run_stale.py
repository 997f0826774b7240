"""``bessai run`` stale alarms over real Modbus TCP when the device stops answering.

The simulator is stopped with SIGSTOP, so connections are still accepted but every
request waits out REQUEST_TIMEOUT_S, which is longer than the scan period: cycles
overrun and grid start times are skipped. The stale alarm must still come
STALE_AFTER_S after the last good value, counted in grid periods at the moment the
limits are evaluated (after the device's requests), not in cycles run.
"""

import math
import os
import signal

import pytest

from bessai_edge.simulator_process import SimulatorProcess
from tests.conftest import free_tcp_port
from tests.loop.conftest import gateway_env, read_records, running_gateway, wait_for_records

PROFILE = "huawei_sun2000"
PERIOD_S = 0.3
STALE_AFTER_S = 1.5          # 5 grid periods
REQUEST_TIMEOUT_S = 0.8      # more than 2 periods: a timed-out cycle skips start times
STALE = "soc_pct:stale"


def evaluation_index(record, first, period_s):
    """Return the last grid point passed when the record's limits were evaluated.

    The grid starts at the first record's cycle start. The limits are evaluated after
    the device's requests, just before the record is built, and ``cycle_ms`` is taken
    when it is built: the difference is microseconds, far below a period.
    """
    evaluated = record["mono_s"] + record["cycle_ms"] / 1000.0
    return math.floor((evaluated - first["mono_s"]) / period_s)


def changes(record, alarm):
    return [change["raised"] for change in record["alarm_changes"] if change["alarm"] == alarm]


@pytest.mark.parametrize("stale_after_s, request_timeout_s", [
    (STALE_AFTER_S, REQUEST_TIMEOUT_S),  # several timed-out cycles before the limit
    (0.9, 2.4),                          # one timeout alone outlasts the stale time
])
def test_run_stale_counts_skipped_periods(tmp_path, stale_after_s, request_timeout_s):
    stale_periods = math.ceil(stale_after_s / PERIOD_S - 1e-9)
    spool_dir = tmp_path / "spool"
    device = SimulatorProcess(["--profile", PROFILE], port=0)
    host, port = device.start()
    stopped = False
    try:
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, SCAN_INTERVAL_S=PERIOD_S,
                              STALE_AFTER_S=stale_after_s, REQUEST_TIMEOUT_S=request_timeout_s)
        with running_gateway(environ) as gateway:
            wait_for_records(spool_dir, 3, gateway, predicate=lambda r: r["state"] == "ok")
            os.kill(device.process.pid, signal.SIGSTOP)
            stopped = True
            wait_for_records(spool_dir, 1, gateway, predicate=lambda r: changes(r, STALE))
            os.kill(device.process.pid, signal.SIGCONT)
            stopped = False
            wait_for_records(spool_dir, 1, gateway,
                             predicate=lambda r: changes(r, STALE) == [False])
        records = read_records(spool_dir)
    finally:
        if stopped:
            os.kill(device.process.pid, signal.SIGCONT)
        device.stop()

    first = records[0]
    raise_at = next(i for i, r in enumerate(records) if changes(r, STALE))
    last_good = max(i for i in range(raise_at) if records[i]["quality"]["soc_pct"] == "ok")
    bad = records[last_good + 1:raise_at + 1]
    assert bad and all(r["quality"]["soc_pct"] != "ok" for r in bad)
    assert changes(records[raise_at], STALE) == [True]
    good_index = evaluation_index(records[last_good], first, PERIOD_S)
    elapsed = [evaluation_index(r, first, PERIOD_S) - good_index for r in bad]
    # Raised at the first evaluation whose periods since the last good value reach the limit.
    assert elapsed[-1] >= stale_periods, elapsed
    assert all(periods < stale_periods for periods in elapsed[:-1]), elapsed
    # The timeouts made cycles skip start times, which counting cycles would have missed.
    assert len(bad) < stale_periods, elapsed
    # The first good value clears the alarm at once, without LIMIT_DEBOUNCE_CYCLES.
    clear_at = next(i for i, r in enumerate(records) if changes(r, STALE) == [False])
    first_good = next(i for i in range(raise_at, len(records))
                      if records[i]["quality"]["soc_pct"] == "ok")
    assert clear_at == first_good
    assert STALE not in records[clear_at]["alarms"]


def test_run_stale_silent_from_start_counts_first_cycle(tmp_path):
    # A device silent from start-up: the first cycle waits out the request timeout.
    # Those periods count, so the alarm comes STALE_AFTER_S after the first cycle
    # starts (the first cycle counting as one period), not several timeouts later.
    stale_periods = math.ceil(STALE_AFTER_S / PERIOD_S - 1e-9)
    spool_dir = tmp_path / "spool"
    device = SimulatorProcess(["--profile", PROFILE, "--silent"], port=0)
    host, port = device.start()
    try:
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, SCAN_INTERVAL_S=PERIOD_S,
                              STALE_AFTER_S=STALE_AFTER_S, REQUEST_TIMEOUT_S=REQUEST_TIMEOUT_S)
        with running_gateway(environ) as gateway:
            wait_for_records(spool_dir, 1, gateway, predicate=lambda r: changes(r, STALE))
        records = read_records(spool_dir)
    finally:
        device.stop()

    first = records[0]
    raise_at = next(i for i, r in enumerate(records) if changes(r, STALE))
    assert all(r["quality"]["soc_pct"] != "ok" for r in records[:raise_at + 1])
    counted = [evaluation_index(r, first, PERIOD_S) + 1 for r in records[:raise_at + 1]]
    assert counted[-1] >= stale_periods, counted
    assert all(periods < stale_periods for periods in counted[:-1]), counted


def test_run_stale_raised_for_undiscovered_sunspec_device(tmp_path):
    # A SunSpec device down since start-up has no plan and no limit table: its stale
    # alarms never came. They now come STALE_AFTER_S after start and clear once the
    # device is found and read.
    spool_dir = tmp_path / "spool"
    port = free_tcp_port()
    environ = gateway_env(spool_dir, INVERTER_IP="127.0.0.1", INVERTER_PORT=port,
                          DRIVER_PROFILE_PATH="fronius_gen24", SCAN_INTERVAL_S=PERIOD_S,
                          STALE_AFTER_S=STALE_AFTER_S, CONNECT_TIMEOUT_S=0.1)
    with running_gateway(environ) as gateway:
        down = wait_for_records(spool_dir, 1, gateway, predicate=lambda r: r["alarms"])
        device = SimulatorProcess(["--profile", "fronius_gen24"], port=port)
        device.start()
        try:
            wait_for_records(spool_dir, 2, gateway, predicate=lambda r: r["state"] == "ok")
        finally:
            device.stop()

    records = read_records(spool_dir)
    first_stale = down[0]
    assert first_stale["state"] == "down"
    assert STALE in first_stale["alarms"]
    assert {change["alarm"] for change in first_stale["alarm_changes"]} == set(
        first_stale["alarms"])
    assert all(change["raised"] for change in first_stale["alarm_changes"])
    # Raised at the first evaluation whose grid periods, the first cycle's included,
    # reach the stale time; the record before it had none.
    stale_periods = math.ceil(STALE_AFTER_S / PERIOD_S - 1e-9)
    before = [record for record in records if record["cycle"] < first_stale["cycle"]]
    assert evaluation_index(first_stale, records[0], PERIOD_S) + 1 >= stale_periods
    assert before and evaluation_index(before[-1], records[0], PERIOD_S) + 1 < stale_periods
    assert all(record["alarms"] == [] for record in before)

    first_ok = next(record for record in records if record["state"] == "ok")
    assert STALE not in first_ok["alarms"]
    assert {"alarm": STALE, "raised": False} in first_ok["alarm_changes"]
