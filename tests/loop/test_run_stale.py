"""``bessai run`` stale alarms over real Modbus TCP when the device stops answering.

The simulator is stopped with SIGSTOP, so connections are still accepted but every
request waits out REQUEST_TIMEOUT_S, which is longer than the scan period: cycles
overrun and grid start times are skipped. The stale alarm must still come
STALE_AFTER_S after the last good value, counted in grid periods, not in cycles run.
"""

import math
import os
import signal

from bessai_edge.simulator_process import SimulatorProcess
from tests.loop.conftest import gateway_env, read_records, running_gateway, wait_for_records

PROFILE = "huawei_sun2000"
PERIOD_S = 0.3
STALE_AFTER_S = 1.5          # 5 grid periods
REQUEST_TIMEOUT_S = 0.8      # more than 2 periods: a timed-out cycle skips start times
STALE_PERIODS = math.ceil(STALE_AFTER_S / PERIOD_S - 1e-9)
STALE = "soc_pct:stale"


def grid_index(record, first):
    """Return the grid point of a record's cycle, counted from the first record's.

    A cycle starts at its grid point plus a small scheduling delay, well below half
    a period, so rounding recovers the grid point.
    """
    return round((record["mono_s"] - first["mono_s"]) / PERIOD_S)


def changes(record, alarm):
    return [change["raised"] for change in record["alarm_changes"] if change["alarm"] == alarm]


def test_run_stale_counts_skipped_periods(tmp_path):
    spool_dir = tmp_path / "spool"
    device = SimulatorProcess(["--profile", PROFILE], port=0)
    host, port = device.start()
    stopped = False
    try:
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, SCAN_INTERVAL_S=PERIOD_S,
                              STALE_AFTER_S=STALE_AFTER_S, REQUEST_TIMEOUT_S=REQUEST_TIMEOUT_S)
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
    elapsed = [grid_index(r, first) - grid_index(records[last_good], first) for r in bad]
    # Raised at the first cycle whose periods since the last good value reach the limit.
    assert elapsed[-1] >= STALE_PERIODS, elapsed
    assert all(periods < STALE_PERIODS for periods in elapsed[:-1]), elapsed
    # The timeouts made cycles skip start times, which counting cycles would have missed.
    assert len(bad) < STALE_PERIODS, elapsed
    # The first good value clears the alarm at once, without LIMIT_DEBOUNCE_CYCLES.
    clear_at = next(i for i, r in enumerate(records) if changes(r, STALE) == [False])
    first_good = next(i for i in range(raise_at, len(records))
                      if records[i]["quality"]["soc_pct"] == "ok")
    assert clear_at == first_good
    assert STALE not in records[clear_at]["alarms"]
