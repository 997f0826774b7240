"""systemd/bessai.service: the directives the gateway relies on, and its security rating."""

import collections
import re
import subprocess

import pytest

from tests.conftest import REPO, require_commands

UNIT = REPO / "systemd" / "bessai.service"
MAX_EXPOSURE = 2.0
_EXPOSURE = re.compile(r"Overall exposure level for bessai\.service: (\d+\.\d+)")


def read_unit(path=UNIT):
    """Return ``{(section, key): [values]}``; a key may repeat, as systemd allows."""
    directives = collections.defaultdict(list)
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _sep, value = line.partition("=")
        directives[(section, key.strip())].append(value.strip())
    return directives


def exposure_level(output):
    match = _EXPOSURE.search(output)
    assert match, f"no overall exposure line in:\n{output[-2000:]}"
    return float(match.group(1))


@pytest.mark.parametrize("key, value", [
    ("Type", "notify"),
    ("NotifyAccess", "main"),
    ("ExecStart", "/usr/bin/bessai run --env-file /etc/bessai/bessai.env"),
    ("EnvironmentFile", "/etc/bessai/bessai.env"),
    ("User", "bessai"),
    ("Group", "bessai"),
    ("WatchdogSec", "30"),
    ("Restart", "always"),     # on-failure left it stopped after a stray SIGTERM
    ("RestartPreventExitStatus", "78"),
    ("KillMode", "mixed"),
    ("ReadWritePaths", "-/var/spool/bessai"),
    ("ProtectSystem", "strict"),
    ("NoNewPrivileges", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectHome", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectHostname", "yes"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("LockPersonality", "yes"),
    ("SystemCallArchitectures", "native"),
    ("CapabilityBoundingSet", ""),
    ("MemoryDenyWriteExecute", "yes"),
    ("UMask", "0027"),
])
def test_unit_service_directive(key, value):
    assert read_unit()[("Service", key)] == [value]


def test_unit_system_call_filter():
    assert read_unit()[("Service", "SystemCallFilter")] == [
        "@system-service", "~@privileged @resources",
        "adjtimex clock_adjtime clock_adjtime64"]


def test_unit_lets_the_clock_status_be_read():
    # ProtectClock= would make the read-only adjtimex fail (EPERM) for the records'
    # clock_synced; the empty capability set still keeps the service from setting the clock.
    directives = read_unit()
    assert ("Service", "ProtectClock") not in directives
    assert directives[("Service", "CapabilityBoundingSet")] == [""]


def test_unit_only_spool_writable():
    directives = read_unit()
    writable = [key for (section, key) in directives
                if section == "Service" and key in ("ReadWritePaths", "StateDirectory",
                                                    "CacheDirectory", "LogsDirectory",
                                                    "RuntimeDirectory")]
    assert writable == ["ReadWritePaths"]


def test_unit_stop_timeout_covers_final_flush():
    directives = read_unit()
    stop_s = int(directives[("Service", "TimeoutStopSec")][0])
    watchdog_s = int(directives[("Service", "WatchdogSec")][0])
    # The final cycle is bounded like any cycle by the watchdog interval; the flush is
    # one fdatasync. Stopping must not be cut shorter than a cycle may take.
    assert stop_s >= watchdog_s


def test_unit_offline_security_within_target():
    require_commands("systemd-analyze")
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                             str(UNIT)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert exposure_level(result.stdout) <= MAX_EXPOSURE


def test_unit_verify_reports_only_missing_program():
    require_commands("systemd-analyze")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNIT)],
                            capture_output=True, text=True, timeout=60)

    # /usr/bin/bessai exists only where the package is installed; any other complaint
    # is a mistake in the unit file.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line and "/usr/bin/bessai" not in line]
    assert problems == []
