"""``bessai simulate``: serve a profile's registers, or a recorded image, over Modbus TCP."""

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys

from bessai_edge.errors import EX_CONFIG
from bessai_edge.i18n import _, os_error_text
from bessai_edge.simulator.faults import (parse_address_range, parse_exception_spec,
                                          parse_request_range)

HELP = "serve a simulated device over Modbus TCP, for tests and training"
DEFAULT_PORT = 5020  # 502 needs root; pass --port 502 to stand in for a real device

log = logging.getLogger(__name__)


class ListenError(Exception):
    """The server cannot listen on --host/--port; the message names both and the fix."""


def add_arguments(parser):
    parser.epilog = _("Exit status: 0 after SIGTERM or Ctrl-C, 78 when it cannot listen on "
                      "--host/--port (the port is in use, or the address is not on this "
                      "host).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", metavar=_("NAME"),
                        help=_("profile to simulate: a bundled name such as huawei_sun2000, "
                               "or the path of a profile JSON file"))
    source.add_argument("--capture", metavar=_("FILE"),
                        help=_("serve a recorded register image (a capture JSON file)"))
    parser.add_argument("--host", default="127.0.0.1",
                        help=_("address to listen on (default: %(default)s)"))
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, metavar=_("PORT"),
                        help=_("TCP port; 0 picks a free one and prints it (default: %(default)s)"))
    parser.add_argument("--unit-id", type=_unit_id, metavar="N",
                        help=_("serve the profile's default unit id, or the capture's, as N "
                               "instead"))
    parser.add_argument("--unit", type=_argument(_parse_role_unit), action="append", default=[],
                        metavar=_("ROLE=N"), dest="unit_roles",
                        help=_("serve a unit role of a multi-unit profile (such as Victron's "
                               "vebus) as unit id N; repeatable"))
    parser.add_argument("--unknown-unit", choices=("exception11", "ffff", "none"),
                        default="exception11",
                        help=_("reply to a unit id the device does not serve: exception 11, "
                               "every word 0xFFFF, or no reply (default: %(default)s)"))
    parser.add_argument("--sunspec-float", action="store_true",
                        help=_("offer the float variants of the SunSpec inverter and meter "
                               "models (111-113, 211-214) instead of int + scale factor"))
    model = parser.add_argument_group(_("battery model (with --profile)"))
    model.add_argument("--day-seconds", type=_positive, default=600.0, metavar="S",
                       help=_("real seconds per simulated day of PV production "
                              "(default: %(default)s)"))
    model.add_argument("--seed", type=int, default=1, metavar=_("SEED"),
                       help=_("seed of the model's random variation (default: %(default)s)"))
    model.add_argument("--set", action="append", default=[], metavar=_("POINT=VALUE"),
                       dest="pinned",
                       help=_("serve a fixed engineering value for a point or canonical field, "
                              "e.g. soc_pct=0; repeatable"))
    model.add_argument("--sentinel", action="append", default=[], metavar=_("POINT"),
                       help=_("serve the 'not available' value for a point or canonical "
                              "field; repeatable"))
    faults = parser.add_argument_group(_("faults"))
    faults.add_argument("--latency", type=_non_negative, default=0.0, metavar="S",
                        help=_("delay every reply by S seconds"))
    faults.add_argument("--latency-requests", type=_argument(parse_request_range), default=(),
                        metavar="N[-M]",
                        help=_("delay only the replies to requests N to M, counted from 1 "
                               "since the start (default: every request)"))
    faults.add_argument("--quiet-after-accept", type=_non_negative, default=0.0, metavar="S",
                        help=_("ignore requests during S seconds after a connection is "
                               "accepted, as Huawei inverters do"))
    faults.add_argument("--exception", type=_argument(parse_exception_spec), action="append",
                        default=[], metavar=_("ADDR[-LAST]=CODE"),
                        dest="exceptions",
                        help=_("respond with Modbus exception CODE to reads touching "
                               "these addresses; repeatable"))
    faults.add_argument("--busy-every", type=_non_negative_int, default=0, metavar="N",
                        help=_("respond to every Nth request with exception 6 (device "
                               "busy)"))
    faults.add_argument("--disconnect-every", type=_non_negative_int, default=0, metavar="N",
                        help=_("close the connection instead of answering every Nth request"))
    faults.add_argument("--disconnect-at", type=_argument(parse_address_range), action="append",
                        default=[], metavar=_("ADDR[-LAST]"),
                        help=_("close the connection instead of answering reads touching "
                               "these addresses; repeatable"))
    faults.add_argument("--silent", action="store_true",
                        help=_("accept connections but never answer"))
    parser.add_argument("--parent-pid", type=int, metavar="PID",
                        help=_("exit when the process PID (the parent) ends"))
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default="warning", help=_("log level on stderr (default: %(default)s)"))


def main(args):
    from bessai_edge.simulator import lifetime
    from bessai_edge.simulator.server import ModbusServer

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="bessai simulate: %(levelname)s %(name)s: %(message)s")
    if args.parent_pid is not None and not lifetime.die_with_parent(args.parent_pid):
        return 0
    faults = faults_from_args(args)
    source, description = _build_source(args)
    if faults.options():
        description = _("{description}, with faults {options}").format(
            description=description, options=" ".join(faults.options()))
    server = ModbusServer(source, faults)
    try:
        asyncio.run(_serve(server, args.host, args.port, args.parent_pid, description))
    except ListenError as error:
        print(f"bessai simulate: {error}", file=sys.stderr, flush=True)
        return EX_CONFIG
    return 0


def faults_from_args(args):
    """Return the Faults that the fault options of ``args`` set."""
    from bessai_edge.simulator.faults import Faults

    return Faults(latency_s=args.latency, latency_requests=args.latency_requests,
                  quiet_after_accept_s=args.quiet_after_accept, exceptions=tuple(args.exceptions),
                  busy_every=args.busy_every, disconnect_every=args.disconnect_every,
                  disconnect_at=tuple(args.disconnect_at), silent=args.silent)


def _build_source(args):
    """Return the register source and a line that describes it."""
    if args.capture:
        from bessai_edge.simulator.capture import (image_from_capture, missing_sunspec_marker,
                                                   read_capture)

        document = read_capture(args.capture)
        image = image_from_capture(document, args.capture, args.unknown_unit,
                                   unit_id=args.unit_id)
        if missing_sunspec_marker(document):
            print(_("bessai simulate: warning: capture {path} holds no SunSpec marker 'SunS' "
                    "at 40000, 0 or 50000, so SunSpec profiles find no models in it "
                    "(sunspec_not_found): add the marker and the model headers in front "
                    "of the model's words").format(path=args.capture),
                  file=sys.stderr, flush=True)
        return image, _("capture {path}, unit id {units}").format(
            path=args.capture, units=", ".join(map(str, image.unit_ids)))
    from bessai_edge.profile import load_profile
    from bessai_edge.simulator.model import BatteryModel
    from bessai_edge.simulator.profile_image import ProfileImage, parse_pinned, site_rating

    pinned = parse_pinned(args.pinned)
    profile = load_profile(args.profile)
    _check_unit_roles(profile, args.unit_roles)
    model = BatteryModel(site_rating(profile), day_seconds=args.day_seconds, seed=args.seed)
    image = ProfileImage(
        profile, unit_id=args.unit_id, unit_ids=dict(args.unit_roles) or None,
        unknown_unit=args.unknown_unit, model=model, pinned=pinned,
        sentinels=tuple(args.sentinel), prefer_float=args.sunspec_float)
    return image, _("profile {name}, unit id {units}").format(
        name=image.profile.name, units=", ".join(map(str, image.unit_ids)))


def _check_unit_roles(profile, unit_roles):
    """Raise ConfigError, naming the option, for a --unit role the profile lacks."""
    from bessai_edge.errors import ConfigError

    known = profile.role_names()
    for role, unit_id in unit_roles:
        if role not in known:
            raise ConfigError(_("--unit {role}={unit_id}: profile {profile} has no unit role "
                                "{role!r}; its roles are {known}").format(
                                    role=role, unit_id=unit_id, profile=profile.name,
                                    known=", ".join(known)))


async def _serve(server, host, port, parent_pid, description):
    from bessai_edge.simulator import lifetime

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        bound = await server.start(host, port)
    except OSError as error:
        raise ListenError(_listen_problem(host, port, error)) from error
    print(lifetime.ready_line(host, bound), flush=True)
    if parent_pid is None:  # a child of the gateway or a test: no one reads the banner
        print(_("bessai simulate: serving {description}; stop with Ctrl-C").format(
            description=description), file=sys.stderr, flush=True)
    watcher = None
    if parent_pid is not None:
        watcher = asyncio.create_task(_watch_parent(parent_pid, stop))
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await server.stop()
    log.info("stopped after %d requests on %d connections", server.requests, server.connections)


def _listen_problem(host, port, error):
    """Return the message for a failed bind or listen on ``host:port``."""
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(error, socket.gaierror):
        return _("cannot listen on {endpoint}: cannot resolve {host!r}; pass an address of "
                 "this host as --host, such as 127.0.0.1").format(endpoint=endpoint, host=host)
    if error.errno == errno.EADDRINUSE:
        return _("cannot listen on {endpoint}: the port is in use; stop the program that uses "
                 "it, or choose another --port (0 picks a free one)").format(endpoint=endpoint)
    if error.errno == errno.EADDRNOTAVAIL:
        return _("cannot listen on {endpoint}: {host} is not an address of this host; pass "
                 "one of its addresses as --host, such as 127.0.0.1").format(
                     endpoint=endpoint, host=host)
    if error.errno == errno.EACCES:
        return _("cannot listen on {endpoint}: permission denied (ports below 1024 need "
                 "root); choose a --port of 1024 or above").format(endpoint=endpoint)
    return _("cannot listen on {endpoint}: {reason}; check --host and --port").format(
        endpoint=endpoint, reason=os_error_text(error))


async def _watch_parent(parent_pid, stop):
    from bessai_edge.simulator import lifetime

    while lifetime.parent_alive(parent_pid):
        await asyncio.sleep(0.5)
    log.info("parent process %d ended; stopping", parent_pid)
    stop.set()


def _argument(parse):
    """Wrap a parser that raises ValueError as an argparse type."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    return convert


def _parse_role_unit(text):
    """Parse ``ROLE=N`` into (role, unit id)."""
    role, sep, value = text.partition("=")
    if not sep or not role.strip() or not value.strip().isdigit() or int(value) > 255:
        raise ValueError(_("invalid unit role {text!r}: expected ROLE=N with N from 0 to 255, "
                           "such as vebus=246").format(text=text))
    return role.strip().lower(), int(value)


def _number_type(convert, check, accepted):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            raise argparse.ArgumentTypeError(_("{value!r} is invalid: expected {accepted}").format(
                value=text, accepted=accepted))
        return value
    return parse


_port = _number_type(int, lambda value: 0 <= value <= 65535, _("a port from 0 to 65535"))
_unit_id = _number_type(int, lambda value: 0 <= value <= 255, _("a unit id from 0 to 255"))
_positive = _number_type(float, lambda value: value > 0, _("a number above 0"))
_non_negative = _number_type(float, lambda value: value >= 0, _("a number of at least 0"))
_non_negative_int = _number_type(int, lambda value: value >= 0, _("an integer of at least 0"))
