"""The simulated device over Modbus TCP on loopback: every unit and MPPT module that
measures the battery or the PV strings agrees with the battery model, read by
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
