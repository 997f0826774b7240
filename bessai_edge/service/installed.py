"""Properties of the installed units, asked from systemd, for ``bessai check``.

``bessai check`` runs in a technician's shell, outside the units. Where systemd runs
and the units are installed, ``systemctl show`` returns what the services will get.
Elsewhere (a laptop, a container without systemd) every function here returns None.
"""

import os
import re
import shutil
import subprocess

SYSTEMCTL_TIMEOUT_S = 10
_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)")
_SPAN_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def unit_properties(unit, names):
    """Return ``{name: value}`` for a loaded unit's ``names``, or None when unknown.

    None means that there is no systemd to ask, or that the unit is not installed.
    """
    systemctl = shutil.which("systemctl")
    if systemctl is None or not os.path.isdir("/run/systemd/system"):
        return None
    try:
        result = subprocess.run(
            [systemctl, "show", "--property=" + ",".join(("LoadState", *names)), unit],
            capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    properties = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if result.returncode != 0 or properties.get("LoadState") != "loaded":
        return None
    return properties


def watchdog_s(unit="bessai"):
    """Return the unit's WatchdogSec= in seconds (0 when off), or None when unknown.

    systemd reports the value the running service started with (systemd 252), so a
    changed WatchdogSec= shows here once the service has been restarted.
    """
    properties = unit_properties(unit, ("WatchdogUSec",))
    if properties is None:
        return None
    return parse_time_span(properties.get("WatchdogUSec", ""))


def parse_time_span(text):
    """Return a time span as ``systemctl show`` prints it (``30s``, ``1min 30s``) in seconds.

    ``0``, ``infinity`` and text that is not a span give 0, which means no watchdog.
    """
    text = text.strip()
    parts = _SPAN_PART.findall(text)
    if not parts or _SPAN_PART.sub("", text).strip():
        return 0.0
    return sum(float(number) * _SPAN_SECONDS[unit] for number, unit in parts)
