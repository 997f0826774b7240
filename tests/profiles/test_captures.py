"""Every register capture decodes to its expected values through our plan and the real core.

The words of each image are read through the profile's read plan (a read of an address
the image lacks gets exception 2, as from the simulator) and decoded by the compiled core. Each
expected point is found by unit id and address; its value must match, and a null must
come back with quality not_available. Then the canonical fields of the family are
checked: the values the records will carry.
"""

import json

import pytest

from bessai_edge import core
from bessai_edge.profile import load_profile, parse_profile, sunspec
from tests.conftest import CAPTURES
from tests.profiles.imaging import FakeDevice, capture_image, load_capture, point_at, run_cycle

# capture -> (profile, plan arguments, expected canonical fields: value or None)
FAMILY = {
    "huawei_inverter_32064_block_huawei_solar1403.json": ("huawei_sun2000", {"unit_id": 3}, {
        "pv_power_kw": 2.062, "ac_power_kw": 1.032, "grid_frequency_hz": 50.06,
        "inverter_temp_c": 30.7, "inverter_state": 512, "fault_code": 0}),
    "huawei_16bit_not_available_constructed.json": ("huawei_sun2000", {"unit_id": 3}, {
        "ac_power_kw": 1.032, "grid_frequency_hz": None, "inverter_temp_c": None,
        "inverter_state": 512}),
    "huawei_luna2000_37760_charging_huawei_solar1403.json": ("huawei_sun2000", {"unit_id": 3}, {
        "soc_pct": 54.0, "battery_state": 2, "battery_voltage_v": 458.3,
        "battery_current_a": 3.1, "battery_power_kw": 1.297}),
    "sma_stp_nan_at_night_constructed.json": ("sma_sunny_tripower", {}, {
        "ac_power_kw": None, "grid_frequency_hz": None, "inverter_temp_c": None,
        "inverter_state": 307, "pv_power_kw": None}),
    "sma_sunnyboy_30775_power_input_evcc17768.json": ("sma_sunny_tripower", {}, {
        "ac_power_kw": 0.083}),
    "victron_system_battery_discharging_constructed.json": ("victron_multiplus", {}, {
        "soc_pct": 67, "battery_power_kw": -1.344, "battery_current_a": -25.3,
        "battery_voltage_v": 53.1, "battery_state": 2}),
    "victron_battery_official_test.json": (
        "victron_multiplus", {"unit_ids": {"battery": 247}}, {"battery_temp_c": 34.5}),
    "fronius_symo_m103_intsf_night_evcc16924.json": ("fronius_gen24", {}, {
        "ac_power_kw": 0.0, "grid_frequency_hz": 0.0, "soc_pct": None}),
    "fronius_gen24_m124_chastate_constructed.json": ("fronius_gen24", {}, {
        "soc_pct": 5.0, "battery_state": 3, "battery_max_charge_kw": 9.6, "ac_power_kw": None}),
    "sunspec_pysunspec2_suns_walk_m1_m126.json": ("sunspec", {}, {}),
    "sunspec_pysunspec2_inverter_123_m1_m129.json": ("sunspec", {}, {}),
}


SWAPPED = "huawei_word_swapped_i32_constructed.json"


def test_every_capture_has_a_case():
    names = {path.name for path in CAPTURES.glob("*.json")}
    assert names == set(FAMILY) | {SWAPPED}


def _model_map(capture, image):
    """Return the capture's SunSpec model map: walked from SunS, or from its first header."""
    device = FakeDevice(image)
    if (capture["unit_id"], 3, 40000) in image:
        return sunspec.discover(device.read, capture["unit_id"])
    first = min(int(address) for address in capture["registers"])
    model_id, length = device.read(capture["unit_id"], 3, first, 2)
    return sunspec.ModelMap(capture["unit_id"], 40000,
                            (sunspec.ModelEntry(model_id, first, length),),
                            first + 2 + length, "end marker")


def _decode(name, profile, arguments):
    capture = load_capture(name)
    image = capture_image(capture)
    if profile.sunspec:
        arguments = {**arguments, "model_map": _model_map(capture, image)}
    plan = profile.plan(**arguments)
    device = FakeDevice(image)
    run_cycle(plan, device)
    # Exception 2 splits the requests during the first cycle; the second reads clean.
    device.rejected.clear()
    values, quality = run_cycle(plan, device)
    assert device.rejected == [], "a rejected request came back in the next cycle"
    return capture, plan, values, quality


def _check_points(capture, plan, values, quality):
    checked = 0
    for point_name, expected in capture["expected"].items():
        if expected["type"] == "walk":
            continue
        index = point_at(plan, expected["unit_id"], expected["address"], expected["type"])
        quality_name = core.QUALITY_NAMES[quality[index]]
        if expected["value"] is None:
            assert quality_name == "not_available", point_name
        else:
            assert quality_name == "ok", point_name
            assert values[index] == pytest.approx(expected["value"], rel=1e-9, abs=1e-9), (
                point_name)
        checked += 1
    return checked


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_capture_decodes_expected_points(name):
    profile_name, arguments, _ = FAMILY[name]
    capture, plan, values, quality = _decode(name, load_profile(profile_name), arguments)
    assert _check_points(capture, plan, values, quality) > 0


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_capture_canonical_fields(name):
    profile_name, arguments, fields = FAMILY[name]
    _, plan, values, quality = _decode(name, load_profile(profile_name), arguments)
    for field, expected in fields.items():
        index = plan.fields[field]
        quality_name = core.QUALITY_NAMES[quality[index]]
        if expected is None:
            assert quality_name == "not_available", field
        else:
            assert quality_name == "ok", field
            assert values[index] == pytest.approx(expected, rel=1e-9, abs=1e-9), field


@pytest.mark.parametrize("name", ["fronius_symo_m103_intsf_night_evcc16924.json",
                                  "fronius_gen24_m124_chastate_constructed.json"])
def test_fronius_capture_through_generic_sunspec_profile(name):
    capture, plan, values, quality = _decode(name, load_profile("sunspec"), {})
    assert _check_points(capture, plan, values, quality) == len(capture["expected"])
    names = {point.name for point in plan.points}
    assert set(capture["expected"]) <= names  # generated names match SunSpec's m<id>.<point>


def test_sunspec_capture_names_match_generated_points():
    capture, plan, _, _ = _decode("sunspec_pysunspec2_inverter_123_m1_m129.json",
                                  load_profile("sunspec"), {})
    names = {point.name for point in plan.points}
    expected = {name for name, item in capture["expected"].items() if item["type"] != "walk"}
    assert expected <= names


def test_huawei_word_swapped_needs_cdab():
    name = SWAPPED
    profile = load_profile("huawei_sun2000")
    with open(profile.path, encoding="utf-8") as stream:
        data = json.load(stream)
    for point in data["points"]:
        if point["address"] == 37765:
            point["order"] = "CDAB"
    swapped = parse_profile(json.dumps(data), "huawei_cdab.json")
    capture, plan, values, quality = _decode(name, swapped, {"unit_id": 3})
    assert _check_points(capture, plan, values, quality) == 2
    assert values[plan.fields["battery_power_kw"]] == pytest.approx(1.297)
    # Read as the bundled ABCD profile, the same words give the wrong number.
    _, plain_plan, plain_values, _ = _decode(name, profile, {"unit_id": 3})
    assert plain_values[plain_plan.fields["battery_power_kw"]] == pytest.approx(
        1297 * 65536 * 0.001)


def test_sma_reads_measurements_with_function_4():
    plan = load_profile("sma_sunny_tripower").plan()
    functions = {request.address: request.function for request in plan.requests}
    assert functions[30769] == 4
    assert functions[40189] == 3
