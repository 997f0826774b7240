"""``bessai run --cycles 3`` end to end for every bundled profile, in both modes.

Simulator mode starts the simulator as the gateway's own child; modbus mode polls a
simulator this test started, as it would poll a device on the LAN.
"""

import re

import pytest

from bessai_edge.profile.registry import bundled_profiles
from tests.loop.conftest import gateway_env, pid_gone, run_gateway, simulator

PROFILES = bundled_profiles()
CYCLES = 3


def check_records(records, profile):
    assert len(records) == CYCLES
    assert [record["cycle"] for record in records] == [1, 2, 3]
    sequences = [record["seq"] for record in records]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == CYCLES
    for record in records:
        assert record["v"] == 1
        assert record["site"] == "test-site"
        assert record["device"] == "inverter"
        assert record["profile"] == profile
        assert record["state"] == "ok", record["error"]
        assert set(record["values"]) == set(record["quality"])
        assert "comm_error" not in record["quality"].values(), record["quality"]
        assert any(quality == "ok" for quality in record["quality"].values())
        for field, value in record["values"].items():
            assert (value is None) == (record["quality"][field] != "ok"), field
    last = records[-1]
    if last["quality"].get("soc_pct") == "ok":
        assert 20.0 <= last["values"]["soc_pct"] <= 95.0
    walls = [record["time_ms"] for record in records]
    monotonic = [record["mono_s"] for record in records]
    assert walls == sorted(walls)
    assert monotonic == sorted(monotonic)
    assert len({record["boot_id"] for record in records}) == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_run_simulator_mode_profile(tmp_path, profile):
    environ = gateway_env(tmp_path / "spool", BESSAI_MODE="simulator",
                          DRIVER_PROFILE_PATH=profile)
    run = run_gateway(environ, CYCLES)
    assert run.returncode == 0, run.stderr
    check_records(run.records, profile)
    assert "cycle 1: " in run.stderr
    child = re.search(r"simulator \(--profile \S+\) running as pid (\d+)", run.stderr)
    assert child, run.stderr
    assert pid_gone(int(child.group(1))), "the simulator child outlived the gateway"


@pytest.mark.parametrize("profile", PROFILES)
def test_run_modbus_mode_profile(tmp_path, profile):
    with simulator("--profile", profile) as (host, port):
        environ = gateway_env(tmp_path / "spool", BESSAI_MODE="modbus", INVERTER_IP=host,
                              INVERTER_PORT=port, DRIVER_PROFILE_PATH=profile)
        run = run_gateway(environ, CYCLES)
    assert run.returncode == 0, run.stderr
    check_records(run.records, profile)
    start_line = [line for line in run.stderr.splitlines() if "starting: site test-site" in line]
    assert start_line, run.stderr
    assert f"profile {profile} at {host}:{port} unit id" in start_line[0]
    assert "mode modbus" in start_line[0]
    assert "read plan of" in run.stderr


def test_run_debug_log_one_line_per_request(tmp_path):
    # pymodbus's own debug lines (a byte dump and a reply text per request) used to
    # triple the debug log. The link's line per request gives what a technician needs.
    with simulator("--profile", "huawei_sun2000") as (host, port):
        environ = gateway_env(tmp_path / "spool", BESSAI_MODE="modbus", INVERTER_IP=host,
                              INVERTER_PORT=port, DRIVER_PROFILE_PATH="huawei_sun2000",
                              LOG_LEVEL="debug")
        run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    request_line = re.escape(f"{host}:{port}") + r": read unit \d+ fc 3 address \d+ count \d+: ok"
    request_lines = re.findall(request_line, run.stderr)
    assert len(request_lines) == 2 * 6, run.stderr
    assert "pymodbus" not in run.stderr
