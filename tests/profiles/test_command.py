"""``bessai profiles`` and ``bessai profiles show``, run as the installed command."""

import json
import subprocess

from bessai_edge.errors import EX_CONFIG
from bessai_edge.profile import bundled_profiles
from tests.conftest import bessai_command


def _run(*args, cwd=None):
    return subprocess.run(bessai_command() + ["profiles", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd,
                          env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})


def test_profiles_lists_bundled():
    result = _run()
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert names == bundled_profiles()


def test_profiles_list_counts_points_as_show():
    # The list counted a SunSpec profile's points before its models were expanded
    # (fronius_gen24: 48 listed, 73 in show and in bessai check).
    result = _run()
    counts = {line.split()[0]: int(line.split()[2]) for line in result.stdout.splitlines()[1:]}
    for name, count in counts.items():
        plan = json.loads(_run("show", name, "--json").stdout)
        assert count == len(plan["points"]), name


def test_show_prints_requests_spans_and_unused():
    result = _run("show", "huawei_sun2000")
    assert result.returncode == 0, result.stderr
    assert "6 requests per cycle, 109 registers, 38 of them unused" in result.stdout
    assert "unit 1 holding 32064-32115 (52 registers, 9 unused): input_power" in result.stdout


def test_show_json_with_unit_role():
    result = _run("show", "victron_multiplus", "--unit", "vebus=246", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["request_count"] == len(plan["requests"]) == 8
    assert {request["unit_id"] for request in plan["requests"]} == {100, 225, 246}
    state = next(point for point in plan["points"] if point["name"] == "vebus:/State")
    assert state["unit_id"] == 246
    assert state["field"] == "inverter_state"


def test_show_sunspec_profile_over_example_map():
    result = _run("show", "fronius_gen24")
    assert result.returncode == 0, result.stderr
    assert "example model map" in result.stdout
    assert "unit 200 holding" in result.stdout


def test_show_unknown_profile_exits_78():
    result = _run("show", "huawei_sun3000")
    assert result.returncode == EX_CONFIG
    assert "profile 'huawei_sun3000': file not found" in result.stderr
    assert "huawei_sun2000" in result.stderr


def test_show_registry_relative_path(tmp_path):
    result = _run("show", "registry/sma_sunny_tripower.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sma_sunny_tripower:")


def test_show_unit_id_out_of_range():
    # 300 was accepted, while MODBUS_SLAVE_ID takes 0 to 247.
    result = _run("show", "huawei_sun2000", "--unit-id", "300")
    assert result.returncode == 2
    assert "argument --unit-id: expected a unit id from 0 to 247, got '300'" in result.stderr


def test_show_main_role_is_not_a_unit_role():
    # "main" was listed among the roles and accepted by --unit, though MODBUS_UNIT_MAIN is
    # not a setting: the main unit id is MODBUS_SLAVE_ID (--unit-id here).
    result = _run("show", "victron_multiplus", "--unit", "main=5")
    assert result.returncode == EX_CONFIG
    assert ("profile victron_multiplus has no unit role 'main' (MODBUS_UNIT_MAIN): its roles "
            "are battery, vebus;") in result.stderr


def test_show_unit_role_on_profile_without_roles():
    result = _run("show", "huawei_sun2000", "--unit", "vebus=5")
    assert result.returncode == EX_CONFIG
    assert ("profile huawei_sun2000 has no unit roles, so MODBUS_UNIT_VEBUS does not apply: "
            "remove the setting, and set the device's unit id with MODBUS_SLAVE_ID"
            ) in result.stderr
