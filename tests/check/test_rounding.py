"""``bessai check`` shows values rounded as the gateway records them, never as ``-0``."""

import dataclasses
import math

import pytest

from bessai_edge import core, records
from bessai_edge.commands import check
from bessai_edge.profile import load_profile


@pytest.fixture(scope="module")
def huawei_plan():
    return load_profile("huawei_sun2000").plan()


def field_values(plan, **fields):
    values = [0.0] * len(plan.table)
    for field, value in fields.items():
        values[plan.fields[field]] = value
    quality = bytes([core.QUALITY_OK]) * len(values)
    return check._field_values(plan, values, quality)


@pytest.mark.parametrize("field, decoded, shown", [
    ("soc_pct", 80.80000000000001, "80.8"),
    ("grid_frequency_hz", 49.980000000000004, "49.98"),
    ("grid_power_kw", -0.0, "0"),
    ("battery_power_kw", -3.3460000000000005, "-3.346"),
])
def test_field_values_rounded_like_records(huawei_plan, field, decoded, shown):
    fields = field_values(huawei_plan, **{field: decoded})
    recorded = records.round_values({field: decoded}, records.field_rounding(huawei_plan))
    assert fields[field] == recorded[field]
    assert check._format_field(fields[field]) == shown


def test_field_values_never_negative_zero(huawei_plan):
    # inverter_state decodes exactly, so round_values leaves it alone.
    fields = field_values(huawei_plan, inverter_state=-0.0, grid_power_kw=-0.0)
    for field in ("inverter_state", "grid_power_kw"):
        assert math.copysign(1.0, fields[field]) == 1.0, field
        assert check._format_field(fields[field]) == "0"


def test_point_value_rounded_to_its_scale(huawei_plan):
    point = next(point for point in huawei_plan.points if point.name == "grid_frequency")
    assert point.scale == 0.01
    assert check._number(point, 49.980000000000004) == 49.98
    assert math.copysign(1.0, check._number(point, -0.0)) == 1.0


def test_point_value_f32_seven_significant_digits(huawei_plan):
    # No bundled register profile has an f32 point, so one is made from a real point.
    point = dataclasses.replace(huawei_plan.points[0], type="f32", scale=1.0, offset=0.0, sf=-1)
    assert check._number(point, 49.99999237060547) == 49.99999
