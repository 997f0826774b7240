"""The profile template in docs/examples: it loads and decodes as its descriptions state."""

import array
import math

from bessai_edge.profile import load_profile
from bessai_edge.simulator.profile_image import ProfileImage
from tests.conftest import REPO

TEMPLATE = REPO / "docs" / "examples" / "profile_minimal.json"


def decode_with(**pinned):
    """Serve the template with ``pinned`` point values and decode one read of its plan."""
    image = ProfileImage(load_profile(str(TEMPLATE)), pinned=pinned)
    plan = image.plan
    buffer = array.array("H", bytes(2 * plan.buffer_words))
    for request in plan.requests:
        words = image.read(request.unit_id, request.function, request.address, request.count)
        buffer[request.buffer_offset:request.buffer_offset + request.count] = array.array(
            "H", words)
    values, _quality = plan.table.decode(buffer, bytearray(len(plan.requests)))
    return {field: values[index] for field, index in plan.fields.items()}


def test_template_maps_four_fields():
    profile = load_profile(str(TEMPLATE))
    assert {point.field for point in profile.points} == {
        "soc_pct", "battery_power_kw", "battery_temp_c", "grid_frequency_hz"}


def test_template_decodes_sign_and_scale():
    fields = decode_with(battery_soc=55.5, battery_power=1500.0, grid_frequency=50.02)
    assert fields["soc_pct"] == 55.5
    assert fields["battery_power_kw"] == -1.5  # discharging in the device's sign
    assert math.isclose(fields["grid_frequency_hz"], 50.02, abs_tol=1e-9)


def test_template_temperature_marker_unavailable():
    fields = decode_with(battery_temperature=3276.7)  # raw 0x7FFF
    assert math.isnan(fields["battery_temp_c"])
