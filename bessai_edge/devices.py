"""Set-up shared by ``bessai run`` and ``bessai check``: each device's profile and endpoint."""

from bessai_edge.errors import ConfigError, ProfileError
from bessai_edge.i18n import _

SIMULATOR_HOST = "127.0.0.1"


def load_device_profiles(devices):
    """Load every device's profile; raise one ConfigError listing every bad one."""
    from bessai_edge.profile import load_profile

    profiles = {}
    problems = []
    for device in devices:
        try:
            profile = load_profile(device.profile)
        except ProfileError as error:
            problems.extend(getattr(error, "problems", None) or [str(error)])
            continue
        try:
            profile.resolve_units(device.unit_id, device.unit_ids)
        except ValueError as error:
            problems.append(_("device {device}: unit id settings do not fit the profile: "
                              "{error}").format(device=device.name, error=error))
            continue
        profiles[device.name] = profile
    if problems:
        raise ConfigError(problems)
    return profiles


def simulator_for(device):
    """Return a SimulatorProcess (not started) that serves the device's profile on loopback."""
    from bessai_edge.simulator_process import SimulatorProcess

    source = ["--profile", device.profile]
    if device.unit_id is not None:
        source += ["--unit-id", str(device.unit_id)]
    for role, unit_id in sorted(device.unit_ids.items()):
        if unit_id is not None:  # a role switched off is served all the same
            source += ["--unit", f"{role}={unit_id}"]
    return SimulatorProcess(source, host=SIMULATOR_HOST)


def modbus_endpoint(device, profile):
    """Return (host, port) of a real device: its port setting, else the profile's."""
    return device.host, device.port or profile.port


def format_endpoint(host, port):
    """Return ``host:port``, with brackets around an IPv6 address."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
