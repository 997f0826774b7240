"""systemd/bessai-forward.service: notify and watchdog, the gateway's hardening, exposure."""

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO, require_commands

UNIT = REPO / "systemd" / "bessai-forward.service"
GATEWAY_UNIT = REPO / "systemd" / "bessai.service"
# Settings that differ between the two units on purpose.
OWN_SETTINGS = {"Description", "ExecStart", "WatchdogSec", "ReadWritePaths", "StateDirectory",
                "StateDirectoryMode", "ProcSubset", "Nice", "IOSchedulingClass",
                "IOSchedulingPriority", "KillMode", "RestartPreventExitStatus",
                "SuccessExitStatus"}

# The gateway alone reads the clock's NTP status, for its records (systemd/README.md).
GATEWAY_ONLY = {"SystemCallFilter": ("adjtimex clock_adjtime clock_adjtime64",)}


def unit_settings(path):
    """Map each setting name to its values (a setting may appear more than once)."""
    settings = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        name, _, value = line.partition("=")
        settings.setdefault(name, []).append(value)
    return settings


def test_forward_unit_service_settings():
    settings = unit_settings(UNIT)
    assert settings["Type"] == ["notify"]
    assert settings["ExecStart"] == ["/usr/bin/bessai forward --env-file /etc/bessai/bessai.env"]
    assert settings["EnvironmentFile"] == ["/etc/bessai/bessai.env"]
    assert int(settings["WatchdogSec"][0]) >= 30
    assert settings["Restart"] == ["always"]
    # 69: MQTT_ENABLED is false, which ends the unit inactive, not failed and not restarted.
    assert settings["RestartPreventExitStatus"] == ["69 78"]
    assert settings["SuccessExitStatus"] == ["69"]
    assert settings["StateDirectory"] == ["bessai"]      # /var/lib/bessai, the checkpoint
    assert "/var/spool/bessai" in settings["ReadWritePaths"][0]


def test_forward_unit_mirrors_gateway_hardening():
    if not GATEWAY_UNIT.exists():
        pytest.skip("systemd/bessai.service is not written yet")
    ours = unit_settings(UNIT)
    gateway = {name: [value for value in values if value not in GATEWAY_ONLY.get(name, ())]
               for name, values in unit_settings(GATEWAY_UNIT).items()}
    different = {name: (values, ours.get(name)) for name, values in gateway.items()
                 if name not in OWN_SETTINGS and ours.get(name) != values}
    assert different == {}
    # The forwarder reads no clock status, so it keeps the clock protection.
    assert ours["ProtectClock"] == ["yes"]


def test_forward_unit_security_exposure():
    if shutil.which("systemd-analyze") is None:
        require_commands("systemd-analyze")
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for bessai-forward.service: ([0-9.]+)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0
