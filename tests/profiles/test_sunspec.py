"""SunSpec model layout, discovery, and one profile over int+SF and float maps."""

import pytest

from bessai_edge import core
from bessai_edge.errors import DeviceException, ProfileError
from bessai_edge.profile import load_profile, sunspec, sunspec_models
from tests.profiles.imaging import FakeDevice, capture_image, load_capture, run_cycle

HOLDING = 3


def _offsets(model_id, length, count_of=None):
    return {point.path: point for point in sunspec_models.layout(model_id, length, count_of)}


def test_layout_model_103_scale_factor_after_value():
    points = _offsets(103, 50)
    assert points["W"].offset == 14
    assert points["W"].sf == "W_SF"
    assert points["W_SF"].offset == 15
    assert points["WH"].type == "acc32"
    assert points["St"].type == "enum16"


def test_layout_model_113_floats_without_scale_factor():
    points = _offsets(113, sunspec_models.body_length(113))
    assert points["W"].type == "f32"
    assert points["W"].sf is None
    assert points["St"].type == "enum16"


def test_layout_model_160_modules_fill_length():
    points = _offsets(160, 88)
    assert points["module[3].DCW"].offset == 61
    assert points["module[4].DCW"].offset == 81
    assert points["module[4].DCW"].sf == "DCW_SF"
    assert "module[5].DCW" not in points


def test_layout_model_129_four_curves():
    points = _offsets(129, 210)
    assert points["curve[4].ReadOnly"].offset == 40281 - 40070
    assert "Pad" not in points  # padding is not a value


def test_layout_counted_group_reads_count_point():
    asked = []

    def count_of(path, offset):
        asked.append(path)
        return 2 if path == "NCrv" else 3

    points = _offsets(705, 200, count_of)
    assert "Crv[2].Pt[3].V" in points
    assert "Crv[3].ActPt" not in points
    assert set(asked) == {"NCrv", "NPt"}


@pytest.mark.parametrize("model_id,path,error", [
    (103, "W", None),
    (160, "module[3].DCW", None),
    (160, "module.DCW", "repeats"),
    (103, "Watt", "has no point"),
    (1, "common[1].Mn", "has no group"),
], ids=["plain", "repeating_instance", "instance_missing", "unknown_point", "unknown_group"])
def test_check_point_path(model_id, path, error):
    result = sunspec_models.check_point_path(model_id, path)
    if error is None:
        assert result is None
    else:
        assert error in result


def test_discover_walk_to_end_marker():
    capture = load_capture("sunspec_pysunspec2_suns_walk_m1_m126.json")
    device = FakeDevice(capture_image(capture))
    model_map = sunspec.discover(device.read, 1)
    expected = capture["expected"]
    assert model_map.base == expected["walk.sunspec_id_address"]["value"]
    assert len(model_map.models) == expected["walk.model_count"]["value"]
    assert model_map.find([1]).address == expected["walk.model_1_address"]["value"]
    assert model_map.find([126]).address == expected["walk.model_126_address"]["value"]
    assert model_map.end_address == expected["walk.end_marker_address"]["value"]
    assert model_map.end == "end marker"
    assert device.rejected == []


def test_discover_stops_at_exception_2():
    capture = load_capture("sunspec_pysunspec2_suns_walk_m1_m126.json")
    image = capture_image(capture)
    del image[(1, HOLDING, 40136)]
    del image[(1, HOLDING, 40137)]
    model_map = sunspec.discover(FakeDevice(image).read, 1)
    assert model_map.model_ids() == [1, 126]
    assert model_map.end == "exception 2"
    assert model_map.end_address == 40136


def test_discover_stops_at_model_id_0():
    # A device without an end marker that reads zeros after its last model must not
    # yield a chain of "model 0" entries up to MAX_MODELS.
    capture = load_capture("sunspec_pysunspec2_suns_walk_m1_m126.json")
    image = capture_image(capture)
    for address in range(40136, 40600):
        image[(1, HOLDING, address)] = 0
    model_map = sunspec.discover(FakeDevice(image).read, 1)
    assert model_map.model_ids() == [1, 126]
    assert model_map.end == "model id 0"
    assert model_map.end_address == 40136


@pytest.mark.parametrize("base", [0, 50000])
def test_discover_other_base_addresses(base):
    image = _sunspec_image(1, [(1, {}, 1), (103, {"W": 10}, 1)], base=base)
    device = FakeDevice(image)
    model_map = sunspec.discover(device.read, 1)
    assert model_map.base == base
    assert model_map.model_ids() == [1, 103]


def test_discover_without_marker_names_unit_and_fix():
    device = FakeDevice({(7, HOLDING, 40000): 1, (7, HOLDING, 40001): 2})
    with pytest.raises(ProfileError) as raised:
        sunspec.discover(device.read, 7)
    message = str(raised.value)
    assert "unit 7" in message
    assert "40000: 0x0001 0x0002" in message
    assert "0: exception 2" in message
    assert "SunSpec Modbus enabled" in message


def test_discover_reads_count_points():
    image = _sunspec_image(1, [(1, {}, 1), (705, {"NCrv": 2, "NPt": 2}, 2)])
    model_map = sunspec.discover(FakeDevice(image).read, 1)
    entry = model_map.find([705])
    assert dict(entry.counts) == {"NCrv": 2, "NPt": 2}
    assert any(point.path == "Crv[2].Pt[2].V" for point in entry.layout())


def test_discover_units_skips_missing_secondary_unit():
    image = _sunspec_image(1, [(1, {}, 1), (103, {}, 1)])
    maps = sunspec.discover_units(FakeDevice(image).read, [1, 200])
    assert list(maps) == [1]


def test_discover_units_raises_for_main_unit():
    image = _sunspec_image(200, [(1, {}, 1), (203, {}, 1)])
    with pytest.raises(ProfileError):
        sunspec.discover_units(FakeDevice(image).read, [1, 200])


def test_model_map_describe_one_line():
    model_map = sunspec.example_map([1, 103, 124], unit_id=1)
    text = model_map.describe()
    assert text == ("unit 1: SunS@40000: 1@40002+66, 103@40070+50, 124@40122+24; "
                    "ends at 40148 (end marker)")


INT_SF = {
    1: [(1, {}, 1),
        (103, {"W": 4200, "W_SF": 0, "Hz": 5002, "Hz_SF": -2, "St": 4, "TmpCab": 415,
               "Tmp_SF": -1}, 1),
        (160, {"DCW_SF": 0, "N": 4, "module[1].DCW": 3000, "module[2].DCW": 1500,
               "module[3].DCW": 1200, "module[4].DCW": 0, "DCV_SF": -1,
               "module[3].DCV": 5120}, 4),
        (124, {"ChaState": 635, "ChaState_SF": -1, "ChaSt": 4, "WChaMax": 9600,
               "WChaMax_SF": 0}, 1)],
    200: [(1, {}, 1), (203, {"W": -800, "W_SF": 0, "Hz": 5001, "Hz_SF": -2}, 1)],
}
FLOAT = {
    1: [(1, {}, 1),
        (113, {"W": 4200.0, "Hz": 50.02, "St": 4, "TmpCab": 41.5}, 1),
        INT_SF[1][2],
        INT_SF[1][3]],
    200: [(1, {}, 1), (213, {"W": -800.0, "Hz": 50.01}, 1)],
}
EXPECTED_FIELDS = {
    "ac_power_kw": 4.2, "grid_frequency_hz": 50.02, "inverter_state": 4,
    "inverter_temp_c": 41.5, "soc_pct": 63.5, "battery_state": 4,
    "battery_max_charge_kw": 9.6, "battery_power_kw": 1.2, "pv_power_kw": 4.5,
    "grid_power_kw": -0.8,
}


@pytest.mark.parametrize("maps", [INT_SF, FLOAT], ids=["int_sf", "float"])
def test_fronius_profile_same_values_in_both_modes(maps):
    image = {}
    for unit, models in maps.items():
        image.update(_sunspec_image(unit, models))
    device = FakeDevice(image)
    profile = load_profile("fronius_gen24")
    model_maps = sunspec.discover_units(device.read, profile.sunspec_units())
    plan = profile.plan(model_map=model_maps)
    values, quality = run_cycle(plan, device)
    assert device.rejected == []
    for field, expected in EXPECTED_FIELDS.items():
        index = plan.fields[field]
        assert core.QUALITY_NAMES[quality[index]] == "ok", field
        assert values[index] == pytest.approx(expected, rel=1e-6), field
    for point in plan.points:
        if point.readable and point.sf >= 0:
            assert plan.points[point.sf].block == point.block, point.name


def test_modes_resolve_to_different_addresses():
    plans = []
    for maps in (INT_SF, FLOAT):
        image = {}
        for unit, models in maps.items():
            image.update(_sunspec_image(unit, models))
        device = FakeDevice(image)
        profile = load_profile("fronius_gen24")
        plans.append(profile.plan(model_map=sunspec.discover_units(
            device.read, profile.sunspec_units())))
    int_plan, float_plan = plans
    assert _point(int_plan, "inverter.W").model_id == 103
    assert _point(float_plan, "inverter.W").model_id == 113
    assert _point(int_plan, "inverter.W").type == "s16"
    assert _point(float_plan, "inverter.W").type == "f32"
    assert _point(int_plan, "storage.ChaState").address != _point(
        float_plan, "storage.ChaState").address


def test_sunspec_profile_needs_model_map():
    with pytest.raises(ProfileError) as raised:
        load_profile("fronius_gen24").plan()
    assert "discover unit 1 first" in str(raised.value)


def test_missing_model_reads_not_available():
    image = _sunspec_image(1, [(1, {}, 1), (103, {"W": 1000, "W_SF": 0}, 1)])
    device = FakeDevice(image)
    profile = load_profile("fronius_gen24")
    plan = profile.plan(model_map=sunspec.discover_units(device.read, profile.sunspec_units()))
    values, quality = run_cycle(plan, device)
    assert values[plan.fields["ac_power_kw"]] == pytest.approx(1.0)
    for field in ("soc_pct", "battery_power_kw", "grid_power_kw"):
        assert core.QUALITY_NAMES[quality[plan.fields[field]]] == "not_available", field
    assert _point(plan, "storage.ChaState").status == "absent"


def _point(plan, name):
    return next(point for point in plan.points if point.name == name)


def _sunspec_image(unit, models, base=40000):
    """Build a SunSpec register image: models as (id, raw values by path, repeats).

    Integer points take raw register values and float points engineering values. Every
    point not given contains its type's "not implemented" value, as a real device sends.
    """
    image = {}

    def put(address, words):
        for offset, word in enumerate(words):
            image[(unit, HOLDING, address + offset)] = word

    put(base, [0x5375, 0x6E53])
    address = base + 2
    for model_id, values, repeats in models:
        length = sunspec_models.body_length(model_id, repeats)
        put(address, [model_id, length] + [0] * length)
        layout = sunspec_models.layout(model_id, length, count_of=lambda path, offset: repeats)
        for point in layout:
            if point.path in ("ID", "L"):
                continue
            if point.sunspec_type == "count":
                words = [repeats]
            elif point.path in values:
                words = core.encode(point.type, "ABCD", values[point.path],
                                    length=point.size if point.type == "str" else None)
            elif point.type == "str":
                words = [0] * point.size
            else:
                words = core.not_available_words(point.type)
            put(address + point.offset, words)
        address += 2 + length
    put(address, [0xFFFF, 0])
    return image


def test_image_builder_rejects_unknown_address():
    device = FakeDevice(_sunspec_image(1, [(1, {}, 1)]))
    with pytest.raises(DeviceException):
        device.read(1, HOLDING, 39999, 1)
