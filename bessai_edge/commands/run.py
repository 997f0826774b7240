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

from bessai_edge.errors import ConfigError
from bessai_edge.i18n import _

HELP = "poll the devices and append their telemetry to the spool"


def add_arguments(parser):
    parser.epilog = _("Exit status: 0 after SIGTERM, Ctrl-C or --cycles N, 1 when the "
                      "simulator of a device did not start (BESSAI_MODE=simulator), 78 for "
                      "invalid settings, an invalid profile or a spool directory that "
                      "cannot be used. systemd does not restart the bessai unit after 78.")
    parser.add_argument(
        "--env-file", metavar=_("FILE"),
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
    from bessai_edge.service.privileges import log_switch, switch_to_spool_owner

    environ = settings_module.read_environment(args.env_file)
    journal.print_warnings(environ.warnings)
    # Checked before the spool is opened, so that one run lists a missing spool
    # directory together with the invalid settings.
    spool_problems = settings_module.spool_directory_problems(environ)
    try:
        settings = settings_module.load_settings(environ)
    except ConfigError as error:
        raise ConfigError(error.problems + spool_problems) from error
    if spool_problems:
        raise ConfigError(spool_problems)
    journal.print_warnings(settings_module.unused_device_variables(environ, settings.devices))
    journal.setup_logging(settings.log_level, site=settings.site_id)
    log_switch(switch_to_spool_owner(settings.spool.directory), settings.spool.directory)
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
    from bessai_edge.devices import load_device_profiles, modbus_endpoint, simulator_for
    from bessai_edge.gateway import Gateway
    from bessai_edge.simulator_process import SimulatorStartError

    profiles = load_device_profiles(settings.devices)
    endpoints = {}
    simulators = {}
    # Stopped after gateway.close(), which closes the connections to them first.
    cleanup.callback(_stop_simulators, simulators)
    gateway = Gateway(settings, profiles, endpoints, simulators=simulators)
    cleanup.callback(gateway.close)
    gateway.open_spool()  # a spool problem ends the start before any child runs
    for device in settings.devices:
        if settings.mode != "simulator":
            endpoints[device.name] = modbus_endpoint(device, profiles[device.name])
            continue
        simulator = simulator_for(device)
        simulators[device.name] = simulator
        try:
            endpoints[device.name] = simulator.start()
        except SimulatorStartError as error:
            raise _StartFailed(_("the simulator for device {device} did not start: {error}")
                               .format(device=device.name, error=error)) from error
    gateway.open()
    return gateway


def _stop_simulators(simulators):
    for simulator in reversed(list(simulators.values())):
        simulator.stop()
