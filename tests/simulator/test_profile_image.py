"""The profile simulator's register image, decoded by the gateway's own plan and core.

These tests read the image in-process (the TCP path is covered by the check tests):
every canonical field the model produces must come back through the profile's points
within the resolution of their registers.
"""

import array
import math

import pytest

from bessai_edge.errors import ConfigError, DeviceException
from bessai_edge.profile import bundled_profiles, load_profile, sunspec
from bessai_edge.profile.model import Derived, DerivedTerm
from bessai_edge.simulator import sunspec_layout
from bessai_edge.simulator.model import BatteryModel
from bessai_edge.simulator.profile_image import ProfileImage, _split_derived, parse_pinned

PROFILES = bundled_profiles()


class FakeClock:
    """A settable monotonic clock, so the model's state does not depend on test speed."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_image(name, clock=None, **options):
    model = BatteryModel(day_seconds=240.0, seed=2, start_hour=11.0)
    return ProfileImage(load_profile(name), model=model, clock=clock or FakeClock(), **options)


def decode(image):
    """Read every request of the image's plan and decode it like a scan cycle."""
    plan = image.plan
    buffer = array.array("H", bytes(2 * plan.buffer_words))
    statuses = bytearray(len(plan.requests))
    for request in plan.requests:
        words = image.read(request.unit_id, request.function, request.address, request.count)
        assert isinstance(words, list), f"{request} answered {words!r}"
        buffer[request.buffer_offset:request.buffer_offset + request.count] = array.array("H", words)
    values, quality = plan.table.decode(buffer, statuses)
    return list(values), bytes(quality)


def resolution(plan, values, field):
    """Return the value step of a canonical field's registers."""
    points = [point for point in plan.points if point.field == field]
    if not points:
        derived = next(item for item in plan.profile.derived if item.field == field)
        by_name = {point.name: point for point in plan.points}
        return sum(_step(plan, values, by_name[term.point]) * abs(term.factor)
                   for term in derived.terms)
    return _step(plan, values, points[0]) * abs(points[0].field_scale)


def _step(plan, values, point):
    step = abs(point.scale)
    if point.sf >= 0:
        step *= 10.0 ** values[point.sf]
    return step


def test_bundled_profiles_found():
    assert {"huawei_sun2000", "sma_sunny_tripower", "victron_multiplus", "fronius_gen24",
            "sunspec"} <= set(PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_image_decodes_to_model_values(name):
    image = make_image(name)
    values, quality = decode(image)
    expected = image.model.values()
    checked = []
    for field, index in image.plan.fields.items():
        if field not in expected:
            continue
        assert quality[index] == 0, f"{field} has quality {quality[index]}"
        step = resolution(image.plan, values, field)
        assert abs(values[index] - expected[field]) <= step + 1e-9, (
            f"{field}: decoded {values[index]}, model {expected[field]}, step {step}")
        checked.append(field)
    assert "soc_pct" in checked
    assert "battery_power_kw" in checked or name == "sunspec"


@pytest.mark.parametrize("name", PROFILES)
def test_profile_image_answers_every_point_read(name):
    image = make_image(name)
    _, quality = decode(image)
    bad = [point.name for index, point in enumerate(image.plan.points)
           if point.readable and quality[index] not in (0, 1)]
    assert not bad


def test_profile_image_follows_model_over_time():
    clock = FakeClock()
    image = make_image("huawei_sun2000", clock=clock)
    soc = image.plan.fields["soc_pct"]
    before = decode(image)[0][soc]
    clock.now += 30.0  # three simulated hours around noon: the battery charges
    after = decode(image)[0][soc]
    assert after > before
    assert after == pytest.approx(image.model.values()["soc_pct"], abs=0.1)


def test_profile_image_pins_field_and_point():
    image = make_image("huawei_sun2000",
                       pinned={"soc_pct": 0.0, "storage_bus_voltage": 123.4})
    values, quality = decode(image)
    fields = image.plan.fields
    assert values[fields["soc_pct"]] == 0.0
    assert values[fields["battery_voltage_v"]] == pytest.approx(123.4)


@pytest.mark.parametrize("name,field", [("huawei_sun2000", "soc_pct"),
                                        ("sma_sunny_tripower", "battery_temp_c"),
                                        ("sma_sunny_tripower", "battery_power_kw"),
                                        ("fronius_gen24", "soc_pct")])
def test_profile_image_serves_sentinel(name, field):
    image = make_image(name, sentinels={field})
    values, quality = decode(image)
    assert quality[image.plan.fields[field]] == 1  # not_available
    assert math.isnan(values[image.plan.fields[field]])


def test_profile_image_rejects_unknown_names():
    with pytest.raises(ConfigError) as error:
        make_image("huawei_sun2000", pinned={"no_such_point": 1.0}, sentinels={"nor_this"})
    assert len(error.value.problems) == 2
    assert "no_such_point" in error.value.problems[0]


@pytest.mark.parametrize("texts,expected", [
    (["soc_pct=0"], {"soc_pct": 0.0}),
    (["a=1.5", "b = -2"], {"a": 1.5, "b": -2.0}),
])
def test_parse_pinned_valid(texts, expected):
    assert parse_pinned(texts) == expected


@pytest.mark.parametrize("text", ["soc_pct", "=1", "soc_pct=x", "soc_pct=nan", "soc_pct=inf"])
def test_parse_pinned_invalid(text):
    with pytest.raises(ConfigError, match="POINT=NUMBER"):
        parse_pinned([text])


BATTERY = Derived("battery_power_kw", "", (DerivedTerm("charge", 0.001),
                                           DerivedTerm("discharge", -0.001)))
PV = Derived("pv_power_kw", "", (DerivedTerm("a", 0.001), DerivedTerm("b", 0.001)))


@pytest.mark.parametrize("derived,value,expected", [
    (BATTERY, 2.0, {"charge": 2000.0, "discharge": 0.0}),
    (BATTERY, -1.5, {"charge": 0.0, "discharge": 1500.0}),
    (BATTERY, 0.0, {"charge": 0.0, "discharge": 0.0}),
    (PV, 3.0, {"a": 1500.0, "b": 1500.0}),
])
def test_split_derived_keeps_terms_non_negative(derived, value, expected):
    assert _split_derived(derived, value) == pytest.approx(expected)


def read_words(image):
    def read(unit_id, function, address, count):
        result = image.read(unit_id, function, address, count)
        if isinstance(result, int):
            raise DeviceException(result)
        return result
    return read


@pytest.mark.parametrize("name,prefer_float,inverter_model", [
    ("fronius_gen24", False, 103), ("fronius_gen24", True, 113), ("sunspec", False, 103)])
def test_sunspec_image_is_discovered_as_laid_out(name, prefer_float, inverter_model):
    profile = load_profile(name)
    image = make_image(name, prefer_float=prefer_float)
    expected = sunspec_layout.build_maps(profile, prefer_float=prefer_float)
    for unit_id, model_map in expected.items():
        found = sunspec.discover(read_words(image), unit_id)
        assert found.base == 40000
        assert found.end == "end marker"
        assert [(m.model_id, m.address, m.length) for m in found.models] == [
            (m.model_id, m.address, m.length) for m in model_map.models]
    assert inverter_model in expected[profile.unit_id].model_ids()


def test_sunspec_float_image_decodes_same_fields():
    integer = make_image("fronius_gen24")
    floating = make_image("fronius_gen24", prefer_float=True)
    int_values, _ = decode(integer)
    float_values, _ = decode(floating)
    for field in ("ac_power_kw", "soc_pct", "battery_power_kw"):
        index = integer.plan.fields[field]
        assert float_values[floating.plan.fields[field]] == pytest.approx(
            int_values[index], abs=resolution(integer.plan, int_values, field) + 1e-6)


def test_sunspec_model_160_count_matches_modules():
    image = make_image("sunspec")
    values, _ = decode(image)
    names = {point.name: index for index, point in enumerate(image.plan.points)}
    assert values[names["m160.N"]] == 4
    assert "m160.module[4].DCW" in names


def test_profile_image_sentinel_is_profile_marker():
    # Huawei marks a missing battery temperature with 0x7FFF, not the s16 default 0x8000.
    image = make_image("huawei_sun2000", sentinels={"battery_temp_c"})
    point = next(point for point in image.plan.points if point.field == "battery_temp_c")
    request = next(request for request in image.plan.requests
                   if request.address <= point.address < request.address + request.count)
    words = image.read(request.unit_id, request.function, request.address, request.count)
    assert words[point.address - request.address] == 0x7FFF
