"""``bessai run``: poll the devices on a fixed period and append their telemetry to the spool.

Start-up order: settings, logging, profiles, spool, simulator children (simulator
mode), device links, health server; then READY=1, even when a device is down, because
a device that is down is an alarm and not a failed start. Shutdown (SIGTERM, SIGINT or
``--cycles``): the cycle in progress finishes, the spool is flushed and closed, the
simulator children end, and the exit status is 0.
"""

import argparse
import contextlib
import sys

from bessai_edge.i18n import _

HELP = "poll the devices and append their telemetry to the spool"
SIMULATOR_HOST = "127.0.0.1"


def add_arguments(parser):
    parser.add_argument(
        "--env-file", metavar="FILE",
        help=_("read settings from FILE (systemd EnvironmentFile syntax); variables set in "
               "the environment override it"))
    parser.add_argument(
        "--cycles", metavar="N", type=_positive_int,
        help=_("stop after N cycles (default: run until SIGTERM or Ctrl-C)"))


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(_("expected a whole number of at least 1, got {value!r}")
                                         .format(value=text))
    return value


def main(args):
    from bessai_edge import settings as settings_module
    from bessai_edge.service import journal

    settings = settings_module.load_settings(settings_module.read_environment(args.env_file))
    journal.setup_logging(settings.log_level, site=settings.site_id)
    with contextlib.ExitStack() as cleanup:
        try:
            gateway = _start(settings, cleanup)
        except _StartFailed as error:
            print(f"bessai: {error}", file=sys.stderr)
            return 1
        gateway.run(args.cycles)
    return 0


class _StartFailed(Exception):
    """Start-up failed for a reason that is not a setting (the simulator child did not start)."""


def _start(settings, cleanup):
    """Build the gateway; every resource is registered on ``cleanup`` in reverse order."""
    from bessai_edge.gateway import Gateway
    from bessai_edge.profile import load_profile
    from bessai_edge.simulator_process import SimulatorProcess, SimulatorStartError

    profiles = _load_profiles(settings, load_profile)
    endpoints = {}
    for device in settings.devices:
        if settings.mode == "simulator":
            source = ["--profile", device.profile]
            if device.unit_id is not None:
                source += ["--unit-id", str(device.unit_id)]
            for role, unit_id in sorted(device.unit_ids.items()):
                source += ["--unit", f"{role}={unit_id}"]
            simulator = SimulatorProcess(source, host=SIMULATOR_HOST)
            cleanup.callback(simulator.stop)
            try:
                endpoints[device.name] = simulator.start()
            except SimulatorStartError as error:
                raise _StartFailed(_("the simulator for device {device} did not start: {error}")
                                   .format(device=device.name, error=error)) from error
        else:
            profile = profiles[device.name]
            endpoints[device.name] = (device.host, device.port or profile.port)
    gateway = Gateway(settings, profiles, endpoints)
    cleanup.callback(gateway.close)
    gateway.open()
    return gateway


def _load_profiles(settings, load_profile):
    """Load every device's profile; raise one ConfigError listing every bad one."""
    from bessai_edge.errors import ConfigError, ProfileError

    profiles = {}
    problems = []
    for device in settings.devices:
        try:
            profile = load_profile(device.profile)
        except ProfileError as error:
            problems.append(str(error))
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
