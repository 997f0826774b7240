"""Record values carry the decimals their register's scale resolves, not binary noise.

The end-to-end case runs ``bessai run`` against the simulator for every bundled profile
and reads the spooled records. The tables check the decimals worked out from a scale.
"""

import math

import pytest

from bessai_edge import records
from bessai_edge.profile.loader import load_profile
from bessai_edge.profile.registry import bundled_profiles
from tests.loop.conftest import gateway_env, run_gateway

CYCLES = 3


@pytest.mark.parametrize(("step", "expected"), [
    (1, 0), (1000, 0), (0, 0), (0.1, 1), (-0.1, 1), (0.01, 2), (0.001, 3),
    (0.1 * 0.001, 4), (10 * 0.001, 2), (0.25, 2), (0.5, 1), (1 / 3, records.MAX_DECIMALS),
    (1e-9, records.MAX_DECIMALS), (273.15, 2), (math.inf, 0),
])
def test_step_decimals_table(step, expected):
    assert records.step_decimals(step) == expected


@pytest.mark.parametrize(("arguments", "expected"), [
    (("u16", 1.0, 0.0, False), None),
    (("s32", 0.001, 0.0, False), ("places", 3)),
    (("u16", 0.1, -40.0, False), ("places", 1)),
    (("s16", 1.0, -273.15, False), ("places", 2)),
    (("s16", 1.0, 0.0, True), ("places", records.MAX_DECIMALS)),
    (("f32", 1.0, 0.0, False), ("significant", 7)),
    (("f64", 1.0, 0.0, False), None),
    (("f64", 0.001, 0.0, False), ("significant", 15)),
])
def test_entry_rounding_table(arguments, expected):
    assert records.entry_rounding(*arguments) == expected


@pytest.mark.parametrize(("rounding", "value", "expected"), [
    ((("x", 1),), 80.80000000000001, 80.8),
    ((("x", 1),), 26.200000000000003, 26.2),
    ((("x", 3),), 0.1 * 3, 0.3),
    ((("x", 3),), -0.0, 0.0),
    ((("x", 1),), None, None),
])
def test_round_values_places(rounding, value, expected):
    values = records.round_values({"x": value, "y": 0.1 * 3}, (rounding, ()))
    assert values["x"] == expected
    assert repr(values["x"]) == repr(expected)
    assert values["y"] == 0.1 * 3      # a field the rounding does not name stays as it is


@pytest.mark.parametrize(("value", "expected"), [
    (230.10000610351562, 230.1),    # 230.1 stored as f32
    (-0.0012345678, -0.001234568),
    (0.0, 0.0),
    (math.nan, math.nan),
])
def test_round_values_f32_significant_digits(value, expected):
    values = records.round_values({"x": value}, ((), (("x", 7),)))
    assert repr(values["x"]) == repr(expected)


def test_round_values_keeps_value_that_rounding_would_overflow():
    # To 15 digits the largest doubles round up to 1.79769313486232e308, past the maximum.
    values = records.round_values({"x": 1.7976931348623151e308}, ((), (("x", 15),)))
    assert values["x"] == 1.7976931348623151e308


def test_field_rounding_huawei_plan():
    places, significant = records.field_rounding(load_profile("huawei_sun2000").plan())
    decimals = dict(places)
    assert decimals["soc_pct"] == 1
    assert decimals["grid_frequency_hz"] == 2
    assert decimals["battery_power_kw"] == 3
    assert "alarm_1" not in decimals      # integer registers decode exactly
    assert significant == ()


def noise_free(value):
    """True when ``value`` has at most 10 significant digits, as rounded values do."""
    return value is None or float(f"{value:.10g}") == value


@pytest.mark.parametrize("profile", bundled_profiles())
def test_run_records_have_no_float_noise(tmp_path, profile):
    environ = gateway_env(tmp_path / "spool", BESSAI_MODE="simulator",
                          DRIVER_PROFILE_PATH=profile)
    run = run_gateway(environ, CYCLES)
    assert run.returncode == 0, run.stderr
    assert len(run.records) == CYCLES
    for record in run.records:
        assert any(value is not None for value in record["values"].values())
        noisy = {field: value for field, value in record["values"].items()
                 if not noise_free(value)}
        assert not noisy, f"{profile} cycle {record['cycle']}: {noisy}"
