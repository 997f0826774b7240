"""``bessai run`` restarted during an alarm keeps it active from cycle 1.

Without the previous state the debounce held the alarm back for the first cycles after
a restart, so those records had no alarms, and the forwarder published a retained
"no alarms" message before the raise again. The tests use real Modbus TCP against the
simulator and a real spool. The simulated SOC stays between 20 and 95 %, so a low
warning at 97 % is active in every cycle.
"""

import pytest

from tests.loop.conftest import gateway_env, run_gateway, simulator

PROFILE = "huawei_sun2000"
SOC_ALARMS = ["soc_pct:low_trip", "soc_pct:low_warn"]
ALARM_LIMITS = {"LIMIT_SOC_LOW_TRIP": 96, "LIMIT_SOC_LOW_WARN": 97}


@pytest.mark.parametrize("profile", [PROFILE, "fronius_gen24"])  # SunSpec: after discovery
def test_run_restart_keeps_active_alarms(tmp_path, profile):
    spool_dir = tmp_path / "spool"
    with simulator("--profile", profile) as (host, port):
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile, **ALARM_LIMITS)
        first = run_gateway(environ, 4)
        assert first.returncode == 0, first.stderr
        assert [record["alarms"] for record in first.records] == [[], [], SOC_ALARMS, SOC_ALARMS]

        second = run_gateway(environ, 2)
        assert second.returncode == 0, second.stderr
        restarted = second.records[4:]
        assert [record["cycle"] for record in restarted] == [1, 2]
        assert [record["alarms"] for record in restarted] == [SOC_ALARMS, SOC_ALARMS]
        assert [record["alarm_changes"] for record in restarted] == [[], []]
        assert ("inverter: restored the alarms active in the previous run's last record "
                "(seq 4): soc_pct:low_trip, soc_pct:low_warn") in second.stderr


def test_run_restart_clears_restored_alarms_after_debounce(tmp_path):
    spool_dir = tmp_path / "spool"
    with simulator("--profile", PROFILE) as (host, port):
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, **ALARM_LIMITS)
        assert run_gateway(environ, 3).returncode == 0
        for name in ALARM_LIMITS:
            del environ[name]  # back to the default levels: the SOC is fine
        third = run_gateway(environ, 3)
    assert third.returncode == 0, third.stderr
    restarted = third.records[3:]
    assert [record["alarms"] for record in restarted] == [SOC_ALARMS, SOC_ALARMS, []]
    assert restarted[2]["alarm_changes"] == [{"alarm": name, "raised": False}
                                             for name in SOC_ALARMS]


def test_run_restart_with_other_site_starts_cleared(tmp_path):
    spool_dir = tmp_path / "spool"
    with simulator("--profile", PROFILE) as (host, port):
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE, **ALARM_LIMITS)
        assert run_gateway(environ, 3).returncode == 0
        environ["SITE_ID"] = "another-site"
        other = run_gateway(environ, 1)
    assert other.returncode == 0, other.stderr
    assert other.records[-1]["site"] == "another-site"
    assert other.records[-1]["alarms"] == []
    assert "restored the alarms" not in other.stderr


def test_run_restart_keeps_alarms_of_undiscovered_sunspec_device(tmp_path):
    # A SunSpec device down at the restart has no plan and no limit table yet: its
    # records had no alarms until it came back.
    spool_dir = tmp_path / "spool"
    profile = "fronius_gen24"
    with simulator("--profile", profile) as (host, port):
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=profile, CONNECT_TIMEOUT_S=0.2,
                              **ALARM_LIMITS)
        assert run_gateway(environ, 3).returncode == 0
    down = run_gateway(environ, 2)   # the simulator has stopped: connection refused
    assert down.returncode == 0, down.stderr
    restarted = down.records[3:]
    assert [record["state"] for record in restarted] == ["down", "down"]
    assert [record["alarms"] for record in restarted] == [SOC_ALARMS, SOC_ALARMS]
    assert [record["alarm_changes"] for record in restarted] == [[], []]
