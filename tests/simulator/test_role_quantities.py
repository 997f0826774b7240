"""The simulated device over Modbus TCP on loopback: every point that measures the
battery, the PV strings or the grid frequency agrees with the battery model, read by
``bessai check --json``."""

import json

import pytest

from tests.check.test_check import run_check
from tests.simulator.helpers import simulator  # noqa: F401 (fixture)


def read_points(device, profile):
    result = run_check("--json", port=device.port, profile=profile)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {line["name"]: line for line in lines if "name" in line}


def test_victron_roles_share_battery_values(simulator):
    device = simulator("--profile", "victron_multiplus")
    points = read_points(device, "victron_multiplus")
    system_soc = points["system:/Dc/Battery/Soc"]["value"]
    assert 20 <= system_soc <= 95
    for name in ("battery:/Soc", "vebus:/Soc"):
        assert points[name]["value"] == pytest.approx(system_soc, abs=1.0), name
    for name in ("system:/Dc/Battery/Voltage", "battery:/Dc/0/Voltage", "vebus:/Dc/0/Voltage"):
        assert 40 <= points[name]["value"] <= 60, name
    system_current = points["system:/Dc/Battery/Current"]["value"]
    for name in ("battery:/Dc/0/Current", "vebus:/Dc/0/Current"):
        assert points[name]["value"] == pytest.approx(system_current, abs=1.0), name


def test_fronius_mppt_voltage_follows_power(simulator):
    # The model starts at 09:00 with PV above the load, so the battery charges through
    # module 3 while the test runs.
    device = simulator("--profile", "fronius_gen24")
    points = read_points(device, "fronius_gen24")
    modules = {name.split("]")[0] + "]" for name in points if name.startswith("mppt.module[")}
    powered = [module for module in modules
               if module + ".DCV" in points and points[module + ".DCW"]["value"] > 0]
    assert powered
    for module in powered:
        assert points[module + ".DCV"]["value"] > 0, module


def test_fronius_storage_battery_voltage(simulator):
    device = simulator("--profile", "fronius_gen24")
    points = read_points(device, "fronius_gen24")
    assert points["storage.InBatV"]["value"] > 100


def test_sma_tracker_voltage_follows_power(simulator):
    device = simulator("--profile", "sma_sunny_tripower")
    points = read_points(device, "sma_sunny_tripower")
    power = points["DcMs.Watt"]["value"]
    voltage = points["DcMs.Vol"]["value"]
    assert power > 0
    assert voltage > 0
    assert points["DcMs.Amp"]["value"] == pytest.approx(power / voltage, rel=0.1)


def test_sunspec_modules_share_pv_power(simulator):
    device = simulator("--profile", "sunspec")
    points = read_points(device, "sunspec")
    modules = sorted({name.split("]")[0] + "]" for name in points
                      if name.startswith("m160.module[")})
    assert modules
    for module in modules:
        assert points[module + ".DCW"]["value"] > 0, module
        assert points[module + ".DCV"]["value"] > 0, module
        assert points[module + ".DCA"]["value"] > 0, module
    total = sum(points[module + ".DCW"]["value"] for module in modules)
    assert total == pytest.approx(points["m103.DCW"]["value"], rel=0.1)
    assert points["m103.DCV"]["value"] > 0


def test_huawei_meter_frequency_is_grid_frequency(simulator):
    device = simulator("--profile", "huawei_sun2000", "--set", "grid_frequency_hz=49.87")
    points = read_points(device, "huawei_sun2000")
    grid = points["grid_frequency"]["value"]
    assert grid == pytest.approx(49.87, abs=0.01)
    assert points["active_grid_frequency"]["value"] == pytest.approx(grid, abs=0.05)


def test_victron_dc_pv_current_follows_power(simulator):
    # The simulator takes /Dc/Pv/Current on the 48 V battery bus: power / bank voltage.
    device = simulator("--profile", "victron_multiplus")
    points = read_points(device, "victron_multiplus")
    power = points["system:/Dc/Pv/Power"]["value"]
    voltage = points["system:/Dc/Battery/Voltage"]["value"]
    assert power > 0
    assert points["system:/Dc/Pv/Current"]["value"] == pytest.approx(power / voltage, rel=0.2)


def test_sunspec_sentinel_wins_over_shared_registers(simulator):
    # m103.DCW reads the registers of pv_power. The value copied into it from that point
    # must not replace the "not available" value that --sentinel requests.
    device = simulator("--profile", "sunspec", "--sentinel", "pv_power_kw")
    result = run_check("--json", port=device.port, profile="sunspec")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    points = {line["name"]: line for line in lines if "name" in line}
    assert points["m103.DCW"]["quality"] == "not_available", points["m103.DCW"]
