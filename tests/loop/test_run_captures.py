"""Every register capture replayed by ``bessai simulate --capture`` and read by ``bessai run``.

The expected canonical values per capture are the table of the profile tests
(``tests/profiles/test_captures.py``); here they must come out of the whole path:
Modbus TCP, the link, the plan's exception-2 splitting, the core and the spool.
"""

import json
import re

import pytest

from bessai_edge.profile.registry import resolve_profile_path
from tests.conftest import CAPTURES
from tests.loop.conftest import gateway_env, run_gateway, simulator
from tests.profiles.test_captures import FAMILY

CYCLES = 3
SUNS = (0x5375, 0x6E53)
FILLER_MODEL_ID = 64999  # a vendor model id that no definition describes, so it is skipped


def plan_settings(arguments):
    """Return the settings that give ``profile.plan(**arguments)``'s unit ids."""
    variables = {}
    if "unit_id" in arguments:
        variables["MODBUS_SLAVE_ID"] = arguments["unit_id"]
    for role, unit_id in arguments.get("unit_ids", {}).items():
        variables[f"MODBUS_UNIT_{role.upper()}"] = unit_id
    return variables


def with_sunspec_chain(capture_path, directory):
    """Return a capture file whose SunSpec map starts with ``SunS`` at 40000.

    Two captures hold one model without the marker and the models before it. A device
    always has them, and discovery walks from the marker, so the replayed image gets the
    marker and one filler model whose length puts the next header where the captured
    model starts.
    """
    capture = json.loads(capture_path.read_text(encoding="utf-8"))
    registers = capture["registers"]
    if "40000" in registers or capture["family"] not in ("fronius", "sunspec"):
        return capture_path
    first = min(int(address) for address in registers)
    registers.update({"40000": SUNS[0], "40001": SUNS[1], "40002": FILLER_MODEL_ID,
                      "40003": first - 40004})
    path = directory / capture_path.name
    path.write_text(json.dumps(capture), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_run_capture_replay(tmp_path, name):
    profile, arguments, fields = FAMILY[name]
    capture_path = with_sunspec_chain(CAPTURES / name, tmp_path)
    capture = json.loads((CAPTURES / name).read_text(encoding="utf-8"))
    with simulator("--capture", str(capture_path)) as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile, **plan_settings(arguments))
        run = run_gateway(environ, CYCLES)
    assert run.returncode == 0, run.stderr
    assert [record["cycle"] for record in run.records] == [1, 2, 3]
    # Cycle 1 learns the addresses the image lacks (exception 2) and reads the rest
    # again, so it carries the values too.
    for record in (run.records[0], run.records[-1]):
        assert record["state"] in ("ok", "degraded"), (record["cycle"], record["error"])
        for field, expected in fields.items():
            quality, value = record["quality"][field], record["values"][field]
            if expected is None:
                assert quality == "not_available", (record["cycle"], field)
                assert value is None, (record["cycle"], field)
            else:
                assert quality == "ok", (record["cycle"], field, quality)
                assert value == pytest.approx(expected, rel=1e-9, abs=1e-9), (
                    record["cycle"], field)
    walk = {key: item["value"] for key, item in capture["expected"].items()
            if key.startswith("walk.")}
    if walk:
        check_walk_logged(walk, run.stderr)


def check_walk_logged(walk, log):
    """Check the SunSpec model chain that ``bessai run`` logged against the capture's walk."""
    found = re.search(r"SunSpec models found: unit \d+: SunS@(\d+): (.*?); ends at (\d+) \((.*?)\)",
                      log)
    assert found, log
    base, models, end_address, end = found.groups()
    entries = re.findall(r"(\d+)@(\d+)\+\d+", models)
    assert len(entries) == walk["walk.model_count"]
    for model_id, address in entries:
        assert walk[f"walk.model_{model_id}_address"] == int(address)
    if "walk.sunspec_id_address" in walk:
        assert int(base) == walk["walk.sunspec_id_address"]
    assert int(end_address) == walk["walk.end_marker_address"]
    assert end == "end marker"


def test_run_capture_word_swapped_with_cdab_profile_file(tmp_path):
    """The low-word-first capture decodes right through a profile file that says CDAB."""
    name = "huawei_word_swapped_i32_constructed.json"
    profile = json.loads(resolve_profile_path("huawei_sun2000").read_text(encoding="utf-8"))
    swapped = [point for point in profile["points"] if point.get("address") == 37765]
    assert swapped, "the Huawei profile lost its battery power point"
    for point in swapped:
        point["order"] = "CDAB"
    profile.pop("$schema", None)
    profile_path = tmp_path / "huawei_cdab.json"
    profile_path.write_text(json.dumps(profile), encoding="utf-8")
    with simulator("--capture", str(CAPTURES / name)) as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile_path, MODBUS_SLAVE_ID=3)
        run = run_gateway(environ, CYCLES)
    assert run.returncode == 0, run.stderr
    last = run.records[-1]
    assert last["values"]["battery_power_kw"] == pytest.approx(1.297)
    assert last["values"]["soc_pct"] == pytest.approx(54.0)
    assert last["profile"] == "huawei_sun2000"
    assert "battery_power_kw reads" not in run.stderr


def test_run_word_swapped_power_warned_once(tmp_path):
    """The low-word-first capture read with the bundled profile gets one WARNING line."""
    name = "huawei_word_swapped_i32_constructed.json"
    with simulator("--capture", str(CAPTURES / name)) as (host, port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH="huawei_sun2000", MODBUS_SLAVE_ID=3)
        run = run_gateway(environ, 5)
    assert run.returncode == 0, run.stderr
    assert [record["values"]["battery_power_kw"] for record in run.records] == \
        [pytest.approx(85000.192)] * 5
    lines = [line for line in run.stderr.splitlines() if "battery_power_kw reads" in line]
    assert len(lines) == 1, run.stderr
    line = lines[0]
    assert " WARNING bessai_edge.battery_power_log: inverter: " in line
    assert ("battery_power_kw reads 85000.2 kW, more than ten times battery_voltage_v times "
            "battery_current_a (1.42 kW)") in line
    assert "point storage_charge_discharge_power in profile huawei_sun2000" in line
    assert '"order": "CDAB"' in line
    assert "BESSAI_DEVICE=inverter" in line
    assert "BESSAI_EVENT=implausible_value" in line
