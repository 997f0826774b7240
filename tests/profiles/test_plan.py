"""The read plan of the bundled profiles: units, holes, canonical fields and exception 2."""

import array

import pytest

from bessai_edge import core
from bessai_edge.errors import ProfileError
from bessai_edge.profile import bundled_profiles, load_profile
from tests.profiles.imaging import FakeDevice, run_cycle

HOLDING = 3
REGISTER_PROFILES = ["huawei_sun2000", "sma_sunny_tripower", "victron_multiplus"]


def _full_image(plan, word=0):
    """Return an image that contains every register the plan reads, all set to ``word``."""
    return {(request.unit_id, request.function, address): word
            for request in plan.requests
            for address in range(request.address, request.address + request.count)}


def _quality(quality, index):
    return core.QUALITY_NAMES[quality[index]]


def _index(plan, name):
    return next(index for index, point in enumerate(plan.points) if point.name == name)


@pytest.mark.parametrize("name", REGISTER_PROFILES)
def test_requests_respect_limits_and_holes(name):
    profile = load_profile(name)
    plan = profile.plan()
    for request in plan.requests:
        assert 1 <= request.count <= profile.max_registers
        for hole in profile.holes:
            if hole.function in (None, request.function):
                assert not (request.address <= hole.last
                            and hole.first < request.address + request.count), hole


@pytest.mark.parametrize("name", REGISTER_PROFILES)
def test_every_point_inside_its_request(name):
    plan = load_profile(name).plan()
    for point in plan.points:
        request = plan.requests[point.block]
        assert (request.unit_id, request.function) == (point.unit_id, point.function)
        assert request.address <= point.address
        assert point.address + point.length <= request.address + request.count
        assert point.index == request.buffer_offset + point.address - request.address


def test_huawei_reads_at_most_64_registers():
    plan = load_profile("huawei_sun2000").plan()
    assert max(request.count for request in plan.requests) <= 64


def test_main_unit_override():
    plan = load_profile("huawei_sun2000").plan(unit_id=100)
    assert {request.unit_id for request in plan.requests} == {100}


def test_unit_role_override():
    plan = load_profile("victron_multiplus").plan(unit_ids={"vebus": 246, "BATTERY": 247})
    units = {request.unit_id for request in plan.requests}
    assert units == {100, 246, 247}
    assert plan.points[_index(plan, "vebus:/State")].unit_id == 246


def test_unknown_unit_role_rejected():
    with pytest.raises(ProfileError) as raised:
        load_profile("victron_multiplus").plan(unit_ids={"pv": 246})
    assert "no unit role 'pv'" in str(raised.value)
    assert "its roles are battery, vebus;" in str(raised.value)


def test_unit_role_on_profile_without_roles_rejected():
    # The message listed "main" as the role to use, which no MODBUS_UNIT_ setting names.
    with pytest.raises(ProfileError) as raised:
        load_profile("huawei_sun2000").plan(unit_ids={"vebus": 246})
    assert "has no unit roles, so MODBUS_UNIT_VEBUS does not apply" in str(raised.value)
    assert "main" not in str(raised.value)


def test_role_switched_off_reads_nothing_there():
    plan = load_profile("victron_multiplus").plan(unit_ids={"battery": None})
    assert 225 not in {request.unit_id for request in plan.requests}
    device = FakeDevice(_full_image(plan))
    values, quality = run_cycle(plan, device)
    assert _quality(quality, plan.fields["battery_temp_c"]) == "not_available"
    assert _quality(quality, plan.fields["soc_pct"]) == "ok"


def test_canonical_field_converts_sign_and_unit():
    plan = load_profile("huawei_sun2000").plan()
    image = _full_image(plan)
    # Meter active power 37113 is +500 W (export): import-positive grid power is -0.5 kW.
    image[(1, HOLDING, 37113)], image[(1, HOLDING, 37114)] = 0, 500
    values, quality = run_cycle(plan, FakeDevice(image))
    assert values[_index(plan, "power_meter_active_power")] == 500
    assert values[plan.fields["grid_power_kw"]] == pytest.approx(-0.5)
    assert _quality(quality, plan.fields["grid_power_kw"]) == "ok"


def test_derived_field_sums_points():
    plan = load_profile("sma_sunny_tripower").plan()
    image = _full_image(plan)
    image[(3, 4, 31394)] = 1500   # present battery charge 1500 W
    image[(3, 4, 31396)] = 200    # present battery discharge 200 W
    image[(3, 4, 30866)] = 300    # power drawn from the grid
    image[(3, 4, 30868)] = 1000   # power fed in
    values, quality = run_cycle(plan, FakeDevice(image))
    assert values[plan.fields["battery_power_kw"]] == pytest.approx(1.3)
    assert values[plan.fields["grid_power_kw"]] == pytest.approx(-0.7)


def test_derived_field_not_available_term():
    plan = load_profile("sma_sunny_tripower").plan()
    image = _full_image(plan)
    image[(3, 4, 31393)] = image[(3, 4, 31394)] = 0xFFFF   # U32 NaN: charge not available
    image[(3, 4, 30961)] = 0x8000                            # S32 NaN: MPP tracker B
    image[(3, 4, 30774)] = 2000                              # MPP tracker A 2000 W
    values, quality = run_cycle(plan, FakeDevice(image))
    assert _quality(quality, plan.fields["battery_power_kw"]) == "not_available"
    # pv_power_kw ignores a tracker that is not available as long as another is good.
    assert values[plan.fields["pv_power_kw"]] == pytest.approx(2.0)
    assert _quality(quality, plan.fields["pv_power_kw"]) == "ok"


def test_failed_block_gives_comm_error():
    plan = load_profile("huawei_sun2000").plan()
    buffer = array.array("H", bytes(2 * plan.buffer_words))
    status = bytearray(len(plan.requests))
    soc = plan.points[_index(plan, "storage_state_of_capacity")]
    status[soc.block] = 1
    values, quality = plan.table.decode(buffer, status)
    assert _quality(quality, plan.fields["soc_pct"]) == "comm_error"
    assert _quality(quality, plan.fields["ac_power_kw"]) == "ok"


def test_points_expose_identity_for_check():
    plan = load_profile("victron_multiplus").plan()
    point = plan.points[_index(plan, "system:/Dc/Battery/Power")].as_dict()
    assert point["name"] == "system:/Dc/Battery/Power"
    assert point["field"] == "battery_power_kw"
    assert point["unit_id"] == 100
    assert point["function"] == "holding"
    assert point["address"] == 842
    assert point["type"] == "s16"
    assert point["unit"] == "W"


@pytest.mark.parametrize("name", bundled_profiles())
def test_fields_are_canonical_entries(name):
    from bessai_edge.profile import sunspec

    profile = load_profile(name)
    maps = {unit: sunspec.example_map([1, 103, 160, 124, 203], unit, repeats={160: 4})
            for unit in profile.sunspec_units()}
    plan = profile.plan(model_map=maps or None)
    assert len(plan.table) == len(plan.points) + len(plan.fields)
    assert all(index >= len(plan.points) for index in plan.fields.values())


# -- exception 2 -----------------------------------------------------------------------

def test_rejected_gap_split_once_with_probe():
    plan = load_profile("huawei_sun2000").plan()
    before = len(plan.requests)
    image = _full_image(plan)
    del image[(1, HOLDING, 32100)]   # unused register bridged inside 32064-32115
    device = FakeDevice(image)
    run_cycle(plan, device)
    assert device.rejected[0] == (1, HOLDING, 32064, 52)   # then the probes of its halves
    assert plan.learned_holes() == [(1, HOLDING, 32097, 32105)]
    device.rejected.clear()
    values, quality = run_cycle(plan, device)
    assert device.rejected == []
    assert len(plan.requests) == before + 1
    assert all(point.readable for point in plan.points)
    assert set(_quality(quality, index) for index in plan.fields.values()) == {"ok"}


def test_rejected_point_not_available_next_cycles():
    plan = load_profile("huawei_sun2000").plan()
    image = _full_image(plan)
    del image[(1, HOLDING, 32087)]   # internal temperature
    device = FakeDevice(image)
    run_cycle(plan, device)
    for _ in range(2):
        device.rejected.clear()
        values, quality = run_cycle(plan, device)
        assert device.rejected == []
        assert _quality(quality, plan.fields["inverter_temp_c"]) == "not_available"
        assert _quality(quality, plan.fields["ac_power_kw"]) == "ok"
    assert plan.points[_index(plan, "internal_temperature")].status == "illegal"


def test_rejected_gap_without_probe_settles_in_two_cycles():
    plan = load_profile("huawei_sun2000").plan()
    before = len(plan.requests)
    image = _full_image(plan)
    del image[(1, HOLDING, 32100)]
    device = FakeDevice(image)
    run_cycle(plan, device, probe=False)
    assert len(device.rejected) == 1
    device.rejected.clear()
    run_cycle(plan, device, probe=False)       # every atom of the block read alone
    assert device.rejected == []
    assert len(plan.requests) == before + 1    # regrouped around the gap
    device.rejected.clear()
    values, quality = run_cycle(plan, device, probe=False)
    assert device.rejected == []
    assert _quality(quality, plan.fields["ac_power_kw"]) == "ok"


def test_rejected_point_without_probe():
    plan = load_profile("huawei_sun2000").plan()
    image = _full_image(plan)
    del image[(1, HOLDING, 32087)]
    device = FakeDevice(image)
    run_cycle(plan, device, probe=False)
    device.rejected.clear()
    run_cycle(plan, device, probe=False)
    assert device.rejected == [(1, HOLDING, 32087, 1)]   # the atom alone, once
    for _ in range(2):
        device.rejected.clear()
        values, quality = run_cycle(plan, device, probe=False)
        assert device.rejected == []
    assert _quality(quality, plan.fields["inverter_temp_c"]) == "not_available"
    assert _quality(quality, plan.fields["pv_power_kw"]) == "ok"


def test_stale_request_ignored():
    plan = load_profile("huawei_sun2000").plan()
    stale = plan.requests[0]._replace(address=1)
    assert plan.mark_illegal_address(stale) == []
    assert plan.learned_holes() == []


def test_all_values_read_after_probe_of_sunspec_block():
    from bessai_edge.profile import sunspec

    profile = load_profile("sunspec")
    model_map = sunspec.example_map([1, 103], unit_id=1)
    plan = profile.plan(model_map=model_map)
    image = _full_image(plan, word=1)
    missing = plan.points[_index(plan, "m103.TmpTrns")].address
    del image[(1, HOLDING, missing)]
    device = FakeDevice(image)
    run_cycle(plan, device)
    device.rejected.clear()
    values, quality = run_cycle(plan, device)
    assert device.rejected == []
    assert _quality(quality, _index(plan, "m103.TmpTrns")) == "not_available"
    assert _quality(quality, _index(plan, "m103.W")) == "ok"
