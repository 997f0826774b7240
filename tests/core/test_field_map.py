"""FieldMap: the record's value and quality maps built in C, against the Python steps."""

import math
from array import array

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bessai_edge import records
from bessai_edge.core import QUALITY_NAMES, QUALITY_OK, FieldMap, round_places
from bessai_edge.errors import CoreError
from bessai_edge.profile import load_profile

FIELD_NAMES = [f"field_{index}" for index in range(8)]


def python_maps(fields, values, quality, rounding):
    """The reference: one dict pass, then records.round_values, then -0.0 -> 0.0."""
    value_map, quality_map = {}, {}
    for field, slot in fields.items():
        value_map[field] = values[slot] if quality[slot] == QUALITY_OK else None
        quality_map[field] = QUALITY_NAMES[quality[slot]]
    records.round_values(value_map, rounding)
    for field, value in value_map.items():
        if value is not None and value == 0.0:
            value_map[field] = 0.0
    return value_map, quality_map


def same_maps(left, right):
    """Compare two (values, quality) pairs; NaN equals NaN, 0.0 and -0.0 differ."""
    (left_values, left_quality), (right_values, right_quality) = left, right
    assert list(left_values) == list(right_values)
    assert left_quality == right_quality
    for field, left_value in left_values.items():
        right_value = right_values[field]
        if left_value is None or right_value is None:
            assert left_value is right_value, field
        elif math.isnan(left_value):
            assert math.isnan(right_value), field
        else:
            assert (left_value, math.copysign(1.0, left_value)) == (
                right_value, math.copysign(1.0, right_value)), field


@st.composite
def decoded_cycles(draw):
    entries = draw(st.integers(1, 8))
    values = draw(st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.floats(-1e6, 1e6).map(lambda value: round(value, 3)),
                  st.sampled_from([0.0, -0.0, 0.1 * 3, 80.80000000000001, -4.8280000000000005])),
        min_size=entries, max_size=entries))
    quality = draw(st.lists(st.sampled_from(sorted(QUALITY_NAMES)), min_size=entries,
                            max_size=entries))
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=entries,
                          unique=True))
    fields = {name: draw(st.integers(0, entries - 1)) for name in names}
    places, significant = [], []
    for name in names:
        kind = draw(st.sampled_from(["none", "places", "significant"]))
        if kind == "places":
            places.append((name, draw(st.integers(0, records.MAX_DECIMALS))))
        elif kind == "significant":
            significant.append((name, draw(st.sampled_from([7, 15]))))
    return fields, values, quality, (tuple(places), tuple(significant))


@settings(max_examples=1500, deadline=None)
@given(decoded_cycles())
def test_field_map_matches_python_rounding(cycle):
    fields, values, quality, rounding = cycle
    field_map = FieldMap(fields, *rounding)
    built = field_map.build(array("d", values), bytearray(quality))
    same_maps(built, python_maps(fields, values, quality, rounding))


@st.composite
def near_ties(draw):
    """A value at, or one step beside, a halfway point of ``places`` decimals."""
    places = draw(st.integers(0, records.MAX_DECIMALS))
    halfway = (draw(st.integers(-10**9, 10**9)) + 0.5) / 10**places
    step = draw(st.sampled_from([None, math.inf, -math.inf]))
    return (halfway if step is None else math.nextafter(halfway, step)), places


@settings(max_examples=3000, deadline=None)
@given(near_ties())
@example((-0.049999999999999996, 1))  # scaled - floor(scaled) rounded to 0.5 here
@example((0.049999999999999996, 1))
def test_field_map_halfway_like_python(case):
    value, places = case
    value_map, _quality = FieldMap({"x": 0}, (("x", places),)).build(
        array("d", [value]), bytearray([QUALITY_OK]))
    assert value_map["x"] == round(value, places) + 0.0


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([7, 15]))
def test_field_map_significant_like_python(value, digits):
    value_map, _quality = FieldMap({"x": 0}, (), (("x", digits),)).build(
        array("d", [value]), bytearray([QUALITY_OK]))
    assert value_map["x"] == records.round_values({"x": value}, ((), (("x", digits),)))["x"]


def test_field_map_huawei_plan():
    plan = load_profile("huawei_sun2000").plan()
    entries = len(plan.table)
    values = [index * 0.1 * 3 - 4.8280000000000005 for index in range(entries)]
    quality = [QUALITY_OK] * entries
    rounding = records.field_rounding(plan)
    built = FieldMap(plan.fields, *rounding).build(array("d", values), bytearray(quality))
    same_maps(built, python_maps(plan.fields, values, quality, rounding))
    assert list(built[0]) == list(plan.fields)  # record order is the plan's field order


def test_field_map_negative_zero_becomes_zero():
    value_map, _quality = FieldMap({"grid_power_kw": 0}).build(array("d", [-0.0]),
                                                                bytearray([QUALITY_OK]))
    assert math.copysign(1.0, value_map["grid_power_kw"]) == 1.0


def test_field_map_rejects_outside_entry():
    field_map = FieldMap({"soc_pct": 3})
    with pytest.raises(CoreError, match=r"field 'soc_pct': entry 3 is outside the 2 decoded"):
        field_map.build(array("d", [1.0, 2.0]), bytearray(2))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), near_ties().map(lambda c: c[0])),
       st.integers(0, 9))
@example(-5e-07, 6)  # a halfway point just above -0.5 once scaled: rounds to -0.0
@example(-0.5, 0)
def test_round_places_equals_python_round(value, places):
    rounded = round_places(value, places)
    expected = round(value, places)
    assert (rounded, math.copysign(1.0, rounded)) == (expected, math.copysign(1.0, expected))
