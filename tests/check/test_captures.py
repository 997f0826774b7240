"""Every capture in tests/captures/, served by ``bessai simulate --capture`` and read over
Modbus TCP by ``bessai check --json``, decodes to the values the capture expects.

Expected names are the manufacturer's or SunSpec's, so each expected entry is matched to
the profile's point at the same unit id and address. ``walk.*`` entries are checked
against the SunSpec model map the check discovered.
"""

import json
import os
import subprocess

import pytest

from bessai_edge.profile import load_profile
from bessai_edge.profile.fields import MAIN_ROLE
from tests.conftest import CAPTURES, bessai_command
from tests.simulator.helpers import simulator  # noqa: F401 (fixture)

# The profiles each capture is read with. The generic sunspec profile reads every point
# of every model, so with it every expected entry of a SunSpec capture must be checked.
PROFILES_OF_FAMILY = {
    "huawei": ("huawei_sun2000",),
    "sma": ("sma_sunny_tripower",),
    "victron": ("victron_multiplus",),
    "fronius": ("fronius_gen24", "sunspec"),
    "sunspec": ("sunspec",),
}
COMPLETE_PROFILES = ("sunspec",)
SUNS = [0x5375, 0x6E53]
COMMON_MODEL_LENGTH = 65       # the common model as Fronius sends it
FILLER_MODEL = 65000           # a vendor model id with no bundled definition
CAPTURE_FILES = sorted(CAPTURES.glob("*.json"))
# Captures recorded for a gateway configured differently from the bundled profile.
# The word-swapped capture holds a 32-bit value low word first and expects the point to
# be set to CDAB; the stock profile (ABCD, as real Huawei devices send) must misread it.
PROFILE_CHANGES = {
    "huawei_word_swapped_i32_constructed": {"storage_charge_discharge_power": {"order": "CDAB"}},
}


def load(path):
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def with_sunspec_chain(capture):
    """Return the capture with a SunSpec chain leading to its model, if it lacks one.

    Two Fronius captures hold one model's block but not the "SunS" marker at 40000, so
    discovery could not reach them. The test adds the marker, a common model header
    (length 65, body zero) and, when the model sits further on, one filler model of an
    unknown vendor id that discovery steps over. The capture's own words are unchanged.
    """
    registers = dict(capture["registers"])
    if capture["family"] not in ("fronius", "sunspec") or "40000" in registers:
        return capture
    first = min(int(address) for address in registers)
    added = {40000: SUNS[0], 40001: SUNS[1], 40002: 1, 40003: COMMON_MODEL_LENGTH}
    for address in range(40004, 40004 + COMMON_MODEL_LENGTH):
        added[address] = 0
    filler_at = 40004 + COMMON_MODEL_LENGTH
    if first > filler_at:
        added[filler_at] = FILLER_MODEL
        added[filler_at + 1] = first - filler_at - 2
        for address in range(filler_at + 2, first):
            added[address] = 0
    for address, word in added.items():
        assert str(address) not in registers
        registers[str(address)] = word
    return {**capture, "registers": registers}


def unit_environment(profile, capture):
    """Return the settings that read the capture's unit id with the right profile role."""
    roles = {}
    registers = {int(address) for address in capture["registers"]}
    for point in profile.points:
        if point.address is not None and point.address in registers and point.unit_id is None:
            role = point.unit_role or MAIN_ROLE
            roles[role] = roles.get(role, 0) + 1
    role = max(roles, key=roles.get) if roles else MAIN_ROLE
    if role == MAIN_ROLE:
        return {"MODBUS_SLAVE_ID": str(capture["unit_id"])}
    return {f"MODBUS_UNIT_{role.upper()}": str(capture["unit_id"])}


def changed_profile(profile_name, changes, directory):
    """Write a copy of a bundled profile with some point keys changed; return its path."""
    data = load(load_profile(profile_name).path)
    for point in data["points"]:
        point.update(changes.get(point["name"], {}))
    path = directory / f"{profile_name}_changed.json"
    path.write_text(json.dumps(data))
    return str(path)


def run_check(port, profile_name, extra_environment):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("MODBUS_", "INVERTER_", "DRIVER_", "DEVICE"))}
    environment.update({"SITE_ID": "capture-test", "BESSAI_MODE": "modbus",
                        "INVERTER_IP": "127.0.0.1", "INVERTER_PORT": str(port),
                        "DRIVER_PROFILE_PATH": profile_name, "LANG": "C",
                        **extra_environment})
    return subprocess.run([*bessai_command(), "check", "--json"], env=environment,
                          capture_output=True, text=True, timeout=120)


def close_enough(actual, expected):
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


CASES = [(path, profile) for path in CAPTURE_FILES
         for profile in PROFILES_OF_FAMILY[load(path)["family"]]]


@pytest.mark.parametrize("path,profile_name", CASES,
                         ids=[f"{path.stem}-{profile}" for path, profile in CASES])
def test_capture_decodes_to_expected_values(path, profile_name, tmp_path, simulator):
    capture = load(path)
    served = with_sunspec_chain(capture)
    served_path = tmp_path / path.name
    served_path.write_text(json.dumps(served))
    device = simulator("--capture", str(served_path))

    units = unit_environment(load_profile(profile_name), capture)
    if path.stem in PROFILE_CHANGES:
        stock = run_check(device.port, profile_name, units)
        assert_misread(stock, capture, PROFILE_CHANGES[path.stem])
        profile_name = changed_profile(profile_name, PROFILE_CHANGES[path.stem], tmp_path)
    result = run_check(device.port, profile_name, units)
    assert result.returncode in (0, 1), result.stderr
    # Read with the right profile, every capture gives plausible values.
    assert "battery_power_implausible" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rows = {(row["unit_id"], row["function"], row["address"]): row
            for row in lines if "name" in row and row["address"] is not None}
    maps = [line["sunspec_map"] for line in lines if "sunspec_map" in line]

    checked = []
    mismatches = []
    for name, expected in capture["expected"].items():
        if name.startswith("walk."):
            continue
        row = None
        for function in capture["functions"]:
            row = rows.get((expected["unit_id"], function, expected["address"]))
            if row is not None:
                break
        if row is None:
            continue  # the profile does not read this register
        checked.append(name)
        if expected["value"] is None:
            if row["value"] is not None or row["quality"] != "not_available":
                mismatches.append(f"{name} -> {row['name']}: expected not available, got "
                                  f"{row['value']!r} ({row['quality']})")
        elif row["quality"] != "ok" or not close_enough(row["value"], expected["value"]):
            mismatches.append(f"{name} -> {row['name']}: expected {expected['value']!r}, got "
                              f"{row['value']!r} ({row['quality']})")
    assert checked, f"no expected point of {path.name} is a point of profile {profile_name}"
    if profile_name in COMPLETE_PROFILES:
        missing = [name for name in capture["expected"]
                   if not name.startswith("walk.") and name not in checked]
        assert not missing, f"not read by profile {profile_name}: {missing}"
    assert not mismatches, "\n".join(mismatches)
    check_walk(capture, maps)


def assert_misread(result, capture, changes):
    """Assert that the stock profile decodes the changed points to other values."""
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())
            if "name" in row}
    for name in changes:
        assert rows[name]["quality"] == "ok"
        assert not close_enough(rows[name]["value"], capture["expected"][name]["value"])
    # The check names the likely cause of the misread value.
    assert "warning [battery_power_implausible]" in result.stderr, result.stderr


def check_walk(capture, maps):
    walk = {name[len("walk."):]: entry["value"] for name, entry in capture["expected"].items()
            if name.startswith("walk.")}
    if not walk:
        return
    unit_maps = [model_map for model_map in maps if model_map["unit_id"] == capture["unit_id"]]
    assert len(unit_maps) == 1
    model_map = unit_maps[0]
    addresses = {f"model_{model['id']}_address": model["address"] for model in model_map["models"]}
    for key, value in walk.items():
        if key == "sunspec_id_address":
            assert model_map["base"] == value
        elif key == "model_count":
            assert len(model_map["models"]) == value
        elif key == "end_marker_address":
            assert model_map["end_address"] == value
            assert model_map["end"] == "end marker"
        else:
            assert addresses.get(key) == value, key
