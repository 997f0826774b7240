"""Pure parts of the scan loop: grid arithmetic, summaries, rate limiting, records, limits."""

import array
import logging
import math
import types

import orjson
import pytest

from bessai_edge import alarms, records, settings
from bessai_edge.poller import PollResult
from bessai_edge.ratelimit import RateLimitedLog
from bessai_edge.scanloop import SUMMARY_INTERVAL_S, CycleSummary, ScanLoop, next_start_index
from bessai_edge.state import GatewayState

# (start, period, index due next, now) -> (next index, skipped start times)
GRID_CASES = [
    ((100.0, 1.0, 1, 100.2), (1, 0)),     # cycle ended early: next grid point
    ((100.0, 1.0, 1, 101.0), (1, 0)),     # ended exactly on the next grid point
    ((100.0, 1.0, 1, 101.3), (2, 1)),     # overran one point
    ((100.0, 1.0, 5, 107.9), (8, 3)),     # overran three points
    ((0.0, 0.25, 4, 1.01), (5, 1)),       # sub-second period
    ((50.0, 60.0, 1, 230.0), (4, 3)),     # long period
]


@pytest.mark.parametrize("arguments, expected", GRID_CASES)
def test_next_start_index_grid(arguments, expected):
    assert next_start_index(*arguments) == expected


def test_next_start_index_never_goes_back():
    start, period = 10.0, 1.0
    index = 1
    for now in (10.5, 11.2, 11.9, 14.7, 14.8, 20.0):
        next_index, _ = next_start_index(start, period, index, now)
        assert next_index >= index
        assert start + next_index * period >= now
        index = next_index + 1


class FakeClock:
    """A monotonic clock that tests move by hand, so no test depends on real time."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_rate_limited_log_counts_repeats(caplog):
    clock = FakeClock()
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        assert limited.log("timeout", logging.WARNING, "device %s timed out", "inverter")
        for _ in range(4):
            clock.now += 10.0
            assert not limited.log("timeout", logging.WARNING, "device %s timed out", "inverter")
        assert limited.log("refused", logging.WARNING, "device %s refused", "inverter")
        clock.now += 30.0
        assert limited.log("timeout", logging.WARNING, "device %s timed out", "inverter")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["device inverter timed out", "device inverter refused",
                        "device inverter timed out (repeated 4 times in the last 70 s)"]


def test_rate_limited_log_one_repeat_singular(caplog):
    clock = FakeClock()
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        limited.log("timeout", logging.WARNING, "timed out")
        clock.now += 10.0
        limited.log("timeout", logging.WARNING, "timed out")
        clock.now += 60.0
        limited.log("timeout", logging.WARNING, "timed out")
    assert caplog.records[-1].getMessage() == "timed out (repeated 1 time in the last 70 s)"


def test_rate_limited_log_forget_logs_again(caplog):
    clock = FakeClock()
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        limited.log("key", logging.WARNING, "first")
        limited.forget("key")
        limited.log("key", logging.WARNING, "second")
    assert [record.getMessage() for record in caplog.records] == ["first", "second"]


def result(state="ok", values=None, alarm_names=(), error=None):
    values = values or {}
    return PollResult(state=state, error=error, values=values,
                      quality=dict.fromkeys(values, "ok"), alarms=list(alarm_names),
                      alarm_changes=[])


class NamedPoller:
    """Stands in for a DevicePoller where only ``device.name`` is read."""

    def __init__(self, name):
        self.device = type("Device", (), {"name": name})()


def test_cycle_summary_line_single_device():
    summary = CycleSummary(name_devices=False)
    line = summary.line(1, [NamedPoller("inverter")], [result(values={
        "soc_pct": 72.4, "battery_power_kw": -1.2, "battery_temp_c": 35.2, "grid_voltage_v": 230.0})])
    assert line == "cycle 1: soc=72.4% battery_power=-1.2kW battery_temp=35.2C alarms=none"


def test_cycle_summary_small_negative_shows_zero():
    summary = CycleSummary(name_devices=False)
    line = summary.line(1, [NamedPoller("inverter")], [result(values={
        "grid_power_kw": -0.004, "battery_power_kw": -0.05})])
    assert line == "cycle 1: battery_power=-0.1kW grid_power=0.0kW alarms=none"


def test_cycle_summary_line_two_devices_down_and_alarm():
    summary = CycleSummary(name_devices=True)
    line = summary.line(7, [NamedPoller("inverter"), NamedPoller("meter")], [
        result(values={"soc_pct": None}, alarm_names=["soc_pct:stale"]),
        result(state="down", error="timeout: no reply before the request timeout")])
    assert line == ("cycle 7: inverter: soc=n/a; meter: device down (timeout: no reply "
                    "before the request timeout) alarms=inverter:soc_pct:stale")


def test_cycle_summary_line_spool_dropping():
    summary = CycleSummary(name_devices=False)
    line = summary.line(3, [NamedPoller("inverter")], [result(values={"soc_pct": 50.0})],
                        spool_dropping=True)
    assert line == "cycle 3: soc=50.0% alarms=none spool=dropping"


def test_cycle_summary_due_when_spool_drops():
    summary = CycleSummary(name_devices=False)
    state = GatewayState(site="s", version="v")
    assert summary.due(0.0, state, ["ok"])
    state.spool_dropping = True
    assert summary.due(1.0, state, ["ok"])   # dropping began
    assert not summary.due(2.0, state, ["ok"])
    state.spool_dropping = False
    assert summary.due(3.0, state, ["ok"])   # writing works again


def test_cycle_summary_each_minute_on_grid():
    # Timed from the end of each cycle, with start jitter, the line came at cycles 1, 61,
    # 122, 183: a second later each minute.
    summary = CycleSummary(name_devices=False)
    state = GatewayState(site="s", version="v")
    starts = [index + 0.0003 * math.sin(index) for index in range(181)]  # wake-up jitter
    logged = [index + 1 for index, start in enumerate(starts)
              if summary.due(start, state, ["ok"])]
    assert logged == [1, 61, 121, 181]


def test_cycle_summary_due_on_change_and_each_minute():
    summary = CycleSummary(name_devices=False)
    state = GatewayState(site="s", version="v")
    assert summary.due(0.0, state, ["ok"])            # first cycle
    assert not summary.due(1.0, state, ["ok"])
    assert summary.due(2.0, state, ["down"])  # the logged device state changed
    assert not summary.due(3.0, state, ["down"])
    state.active_alarms = ["inverter:soc_pct:low_warn"]
    assert summary.due(4.0, state, ["down"])  # alarm set changed
    assert not summary.due(4.0 + SUMMARY_INTERVAL_S - 0.5, state, ["down"])
    assert summary.due(4.0 + SUMMARY_INTERVAL_S, state, ["down"])


def test_record_layout_round_trips_through_orjson():
    factory = records.RecordFactory("SITE-1", "inverter", "huawei_sun2000", "boot-1")
    record = factory.build(cycle=3, wall_ms=1_700_000_000_123, monotonic_s=12.3456789,
                           cycle_ms=41.23456, state="degraded", error="exception_2: rejected",
                           values={"soc_pct": 72.4, "pv_power_kw": None},
                           quality={"soc_pct": "ok", "pv_power_kw": "comm_error"},
                           alarms=["soc_pct:high_warn"],
                           alarm_changes=[("soc_pct:high_warn", True)], clock_synced=False)
    record["seq"] = 17
    decoded = orjson.loads(orjson.dumps(record))
    assert list(decoded) == ["v", "site", "device", "profile", "seq", "time_ms", "mono_s",
                             "boot_id", "clock_synced", "cycle", "cycle_ms", "state", "error",
                             "values", "quality", "alarms", "alarm_changes"]
    assert decoded["clock_synced"] is False
    assert decoded["v"] == records.RECORD_VERSION
    assert decoded["seq"] == 17
    assert decoded["mono_s"] == 12.345679
    assert decoded["cycle_ms"] == 41.235
    assert decoded["values"] == {"soc_pct": 72.4, "pv_power_kw": None}
    assert decoded["alarm_changes"] == [{"alarm": "soc_pct:high_warn", "raised": True}]


def test_read_boot_id_kernel_and_fallback(tmp_path, caplog):
    kernel = records.read_boot_id()
    assert len(kernel) == 36 and kernel.count("-") == 4
    with caplog.at_level(logging.WARNING, logger="bessai_edge.records"):
        fallback = records.read_boot_id(str(tmp_path / "missing"))
    assert len(fallback) == 36
    assert fallback != kernel
    assert "cannot read" in caplog.records[0].getMessage()


def load_limits(**variables):
    environ = {"SITE_ID": "s", "INVERTER_IP": "127.0.0.1", "DRIVER_PROFILE_PATH": "huawei_sun2000",
               "LIMIT_DEBOUNCE_CYCLES": "1", **variables}
    return settings.load_settings(environ).limits


def test_limit_table_watches_only_fields_in_plan():
    _table, watched = alarms.build_limit_table(load_limits(), {"soc_pct": 0, "pv_power_kw": 1})
    assert watched == ["soc_pct"]


def test_limit_table_default_soc_and_temperature_alarms():
    table, watched = alarms.build_limit_table(
        load_limits(), {"soc_pct": 0, "battery_temp_c": 1, "grid_frequency_hz": 2})
    assert watched == ["soc_pct", "battery_temp_c", "grid_frequency_hz"]
    changes = table.evaluate(array.array("d", [4.0, 50.0, 50.0]), bytearray(3))
    assert sorted(changes) == [("battery_temp_c", "high_warn", True),
                               ("soc_pct", "low_trip", True), ("soc_pct", "low_warn", True)]
    changes = table.evaluate(array.array("d", [50.0, 20.0, 48.0]), bytearray(3))
    assert sorted(changes) == [
        ("battery_temp_c", "high_warn", False), ("grid_frequency_hz", "low_trip", True),
        ("grid_frequency_hz", "low_warn", True), ("soc_pct", "low_trip", False),
        ("soc_pct", "low_warn", False)]


def test_limit_table_battery_power_against_rating():
    table, _ = alarms.build_limit_table(load_limits(BATTERY_RATED_POWER_KW="5"),
                                        {"battery_power_kw": 0})
    assert table.evaluate(array.array("d", [4.9]), bytearray(1)) == []
    assert table.evaluate(array.array("d", [-5.6]), bytearray(1)) == [
        ("battery_power_kw", "low_trip", True), ("battery_power_kw", "low_warn", True)]


def test_limit_table_stale_after_seconds():
    limits = load_limits(STALE_AFTER_S="2", SCAN_INTERVAL_S="0.5")
    table, _ = alarms.build_limit_table(limits, {"soc_pct": 0})
    comm_error = bytearray([2])
    raised = [table.evaluate(array.array("d", [0.0]), comm_error) for _ in range(4)]
    assert raised[:3] == [[], [], []]
    assert raised[3] == [("soc_pct", "stale", True)]


def test_overrun_log_singular_for_one_skip(caplog):
    """One skipped start time and the first overrun read in the singular."""
    loop = ScanLoop(period_s=1.0, pollers=[], factories=[], spool=None, state=GatewayState(
        site="s", version="0"), notifier=None, clock=lambda: 1.5)
    caplog.set_level(logging.WARNING, logger="bessai_edge.scanloop")
    assert loop._next_index(0.0, 1) == 2
    assert "skipped 1 start time, 1 overrun since start" in caplog.text


def test_overrun_log_names_slowest_device(caplog):
    """With several devices the overrun line names the one whose poll took longest."""
    # Only the device names are read; the pollers need no link for that.
    pollers = [types.SimpleNamespace(device=types.SimpleNamespace(name=name), state=None)
               for name in ("huawei", "sma", "victron")]
    loop = ScanLoop(period_s=1.0, pollers=pollers, factories=[], spool=None,
                    state=GatewayState(site="s", version="0"), notifier=None,
                    clock=lambda: 2.5)
    loop._poll_ends_s[:] = [0.1, 1.9, 2.0]  # sma took 1.8 s of the cycle
    caplog.set_level(logging.WARNING, logger="bessai_edge.scanloop")
    assert loop._next_index(0.0, 1) == 3
    assert ("overran the 1.000 s period by 1.500 s, longest poll: sma 1.800 s: skipped 2 start "
            "times, 1 overrun since start") in caplog.text
