"""The battery model: bounds, day curve and energy balance over simulated days."""

import pytest

from bessai_edge.simulator.model import (
    SOC_MAX_PCT,
    SOC_MIN_PCT,
    BatteryModel,
    SiteRating,
    load_kw,
    pv_power_kw,
)


@pytest.mark.parametrize("hour,expected", [
    (0.0, 0.0), (5.9, 0.0), (6.0, 0.0), (9.0, 6.0 * 0.7071067811865476), (12.0, 6.0),
    (15.0, 6.0 * 0.7071067811865476), (18.0, 0.0), (23.0, 0.0),
])
def test_pv_power_day_curve(hour, expected):
    assert pv_power_kw(hour, 6.0) == pytest.approx(expected, abs=1e-9)


def test_load_peaks_in_the_evening():
    assert load_kw(20.0, 0.8, 2.5) == pytest.approx(3.3)
    assert load_kw(4.0, 0.8, 2.5) == pytest.approx(0.8, abs=1e-6)


def run_days(model, days, step_s=1.0):
    samples = []
    steps = int(days * model.day_seconds / step_s)
    for step in range(1, steps + 1):
        model.advance(step * step_s)
        samples.append((model.hour_of_day, model.values()))
    return samples


def test_model_soc_stays_within_limits_over_a_week():
    model = BatteryModel(day_seconds=120.0, seed=7)
    samples = run_days(model, 7)
    socs = [values["soc_pct"] for _, values in samples]
    assert min(socs) >= SOC_MIN_PCT
    assert max(socs) <= SOC_MAX_PCT
    assert max(socs) - min(socs) > 30, "SOC follows the power through the day"


def test_model_soc_follows_battery_power():
    model = BatteryModel(day_seconds=240.0, seed=3, start_hour=10.0, initial_soc_pct=40.0)
    before = model.values()["soc_pct"]
    model.advance(10.0)   # one simulated hour around noon: PV surplus charges
    after = model.values()
    assert after["battery_power_kw"] > 0
    assert after["soc_pct"] > before


def test_model_pv_zero_at_night_and_battery_discharges():
    model = BatteryModel(day_seconds=240.0, seed=3, start_hour=21.0, initial_soc_pct=80.0)
    model.advance(5.0)
    values = model.values()
    assert values["pv_power_kw"] == 0.0
    assert values["battery_power_kw"] < 0
    assert values["battery_current_a"] < 0


def test_model_stops_discharging_at_soc_minimum():
    model = BatteryModel(day_seconds=240.0, start_hour=19.0, initial_soc_pct=SOC_MIN_PCT + 0.5)
    model.advance(60.0)   # six simulated hours of evening load
    values = model.values()
    assert values["soc_pct"] == pytest.approx(SOC_MIN_PCT)
    assert values["battery_power_kw"] == 0.0


def test_model_temperature_follows_absolute_power():
    model = BatteryModel(day_seconds=240.0, seed=1, start_hour=2.0, initial_soc_pct=90.0)
    model.advance(30.0)  # three quiet night hours: small discharge, near ambient
    night = model.values()
    busy = BatteryModel(day_seconds=240.0, seed=1, start_hour=19.5, initial_soc_pct=90.0)
    busy.advance(10.0)   # evening peak: discharging at full power
    peak = busy.values()
    assert abs(peak["battery_power_kw"]) > abs(night["battery_power_kw"])
    assert peak["battery_temp_c"] > night["battery_temp_c"]


def test_model_power_balance():
    model = BatteryModel(day_seconds=300.0, seed=5)
    steps = int(model.day_seconds / 7.0)
    for step in range(1, steps + 1):
        model.advance(step * 7.0)
        values = model.values()
        # Import = load - (PV - charge): the grid covers what PV and the battery do not.
        assert values["ac_power_kw"] == pytest.approx(values["pv_power_kw"] - values["battery_power_kw"])
        assert values["grid_power_kw"] == pytest.approx(model.load_kw - values["ac_power_kw"])
        assert values["battery_current_a"] * values["battery_voltage_v"] == pytest.approx(
            1000 * values["battery_power_kw"])


def test_model_is_deterministic_for_a_seed():
    first = run_days(BatteryModel(day_seconds=60.0, seed=11), 1)
    second = run_days(BatteryModel(day_seconds=60.0, seed=11), 1)
    assert first == second


def test_model_battery_voltage_follows_nominal():
    model = BatteryModel(SiteRating(battery_nominal_v=48.0), initial_soc_pct=50.0)
    assert model.values()["battery_voltage_v"] == pytest.approx(48.0)
    assert BatteryModel(initial_soc_pct=50.0).values()["battery_voltage_v"] == pytest.approx(400.0)


def test_model_pv_voltage_zero_only_without_pv():
    day = BatteryModel(start_hour=12.0).values()
    night = BatteryModel(start_hour=2.0).values()
    assert 0.9 * 380.0 <= day["pv_voltage_v"] <= 380.0
    assert night["pv_power_kw"] == 0.0
    assert night["pv_voltage_v"] == 0.0
