"""``bessai check``: connect to each device, read every point once and report problems.

The check uses the gateway's own settings, profile, read plan and decoder, so what it
shows is what ``bessai run`` will record. A request rejected with exception 2 is
probed and the plan read again around the rejected addresses, as the scan loop does
over its first cycles. Exit status: 0 when every device is fine, 1 when a device
answered with problems, 2 when no device gave data, 78 for invalid settings.
"""

import array
import dataclasses
import difflib
import ipaddress
import json
import logging
import math
import os
import sys
import time

from bessai_edge.diagnosis import SKIPPED, outcome_text
from bessai_edge.i18n import _, ngettext
from bessai_edge.poller import judged_unit_parts, units_reading_no_data

HELP = "check the connection to each device and decode every point once"

log = logging.getLogger(__name__)

INTEGER_TYPES = ("u16", "s16", "u32", "s32", "u64", "s64", "bitfield16", "bitfield32",
                 "enum16", "acc32", "acc64", "sunssf")
READ_PASSES = 2           # the second pass reads around addresses learned in the first


def add_arguments(parser):
    parser.epilog = _("Exit status: 0 when every device is fine, 1 when a device answered with "
                      "problems or the devices' reads together do not fit SCAN_INTERVAL_S, 2 "
                      "when no device gave data or a device's simulator did not start (and "
                      "for an invalid command line), 78 for invalid settings or an unknown "
                      "--device. Warnings that `bessai run`, `bessai forward` or the "
                      "installed services will not start leave the status as it is.")
    parser.add_argument("--env-file", metavar=_("FILE"),
                        help=_("read settings from FILE (EnvironmentFile syntax) before the "
                               "environment, e.g. /etc/bessai/bessai.env"))
    parser.add_argument("--json", action="store_true",
                        help=_("print one JSON object per point instead of a table, then one "
                               "object with key sunspec_map per discovered SunSpec unit; the "
                               "diagnosis goes to stderr. When the connection or the SunSpec "
                               "discovery fails, an object with key device_error (endpoint, "
                               "unit_id, kind, message) comes first, and the points, if the "
                               "plan needs no discovery, have quality comm_error. A request "
                               "the device answers with an exception shows as its points' "
                               "error, such as exception_11"))
    parser.add_argument("--device", metavar=_("NAME"),
                        help=_("check only this device (see DEVICES)"))
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default="error",
                        help=_("log level on stderr; debug shows every request "
                               "(default: %(default)s)"))


@dataclasses.dataclass
class DeviceCheck:
    """The outcome of checking one device."""

    device: object
    profile: object
    endpoint: str
    unit_id: int
    plan: object = None
    maps: dict = dataclasses.field(default_factory=dict)  # unit id -> SunSpec ModelMap
    rows: list = dataclasses.field(default_factory=list)
    fields: dict = dataclasses.field(default_factory=dict)
    findings: list = dataclasses.field(default_factory=list)
    read_s: float | None = None  # one read of every request, when the device replied
    timeouts: tuple = ()  # (connect, request, quiet after connect) in s, as the check used them
    error: dict = None  # kind and message when no plan could be read (connect, discovery)


def main(args):
    from bessai_edge import settings as settings_module
    from bessai_edge.errors import ConfigError
    from bessai_edge.service.journal import print_warnings, quiet_pymodbus

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="bessai check: %(levelname)s %(name)s: %(message)s")
    quiet_pymodbus()
    environ = settings_module.read_environment(args.env_file)
    print_warnings(environ.warnings)
    settings = settings_module.load_settings(environ)
    print_warnings(settings_module.unused_device_variables(environ, settings.devices))
    devices = [device for device in settings.devices
               if args.device is None or device.name == args.device]
    if not devices:
        names = [device.name for device in settings.devices]
        close = difflib.get_close_matches(args.device.lower(), names, n=1)
        hint = _("; did you mean {name}?").format(name=close[0]) if close else ""
        raise ConfigError(_("--device {name}: no such device; configured devices: "
                            "{names}").format(name=args.device, names=", ".join(names)) + hint)
    from bessai_edge.devices import load_device_profiles

    profiles = load_device_profiles(devices)
    from bessai_edge.simulator_process import SimulatorStartError

    checks = []
    simulators = []
    try:
        for device in devices:
            host, port = _endpoint(settings, device, profiles[device.name], simulators)
            checks.append(check_device(settings, device, profiles[device.name], host, port))
    except SimulatorStartError as error:
        print(_("bessai check: the simulator for device {device} did not start: {error}").format(
            device=device.name, error=error), file=sys.stderr)
        return 2
    finally:
        for simulator in simulators:
            simulator.stop()
    try:
        for check in checks:
            if args.json:
                _print_json(check)
            else:
                _print_table(check)
        sys.stdout.flush()  # the warnings on stderr come after the table, also in `2>&1 | less`
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped: send what is left, and the final flush at
        # exit, to /dev/null instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for problem in settings_module.spool_directory_problems(environ):
        # Not a device problem, so the exit status stays the devices' own.
        print(_("bessai check: warning: `bessai run` will not start: {problem}").format(
            problem=problem), file=sys.stderr)
    from bessai_edge.service.sandbox import service_spool_problems

    spool_dir = environ.get("SPOOL_DIR") or settings_module.DEFAULT_SPOOL_DIR
    for problem in service_spool_problems(spool_dir):
        print(_("bessai check: warning: the installed services will not start: {problem}"
                ).format(problem=problem), file=sys.stderr)
    for problem in _forwarder_problems(args.env_file):
        print(_("bessai check: warning: `bessai forward` will not start: {problem}").format(
            problem=problem), file=sys.stderr)
    _warn_of_watchdog_fit(checks)
    _warn_of_unmapped_limits(settings.limits, profiles.values())
    _warn_of_privileged_health_port(settings.health_listen)
    _warn_of_unsynchronized_clock()
    _warn_of_relative_profile_paths(devices)
    _warn_of_unreadable_profiles(devices)
    _warn_of_unreadable_service_files(args.env_file, environ)
    from bessai_edge.diagnosis import exit_status

    status = exit_status([check.findings for check in checks])
    _warn_of_silent_device_cost(checks, settings.scan_interval_s)
    if _warn_of_total_read_time(checks, settings.scan_interval_s):
        status = max(status, 1)
    return status


def _warn_of_watchdog_fit(checks):
    """Warn when the installed service will shorten the timeouts this check used.

    ``bessai run`` under systemd fits each device's timeouts to half the unit's
    WatchdogSec (see ``watchdog_fit``), so a device that replied here only within the
    longer timeouts would time out in the service.
    """
    from bessai_edge.service.installed import watchdog_s
    from bessai_edge.watchdog_fit import fit_timeouts

    watchdog = watchdog_s()
    if not watchdog:
        return
    for check in checks:
        connect_s, request_s, quiet_s = check.timeouts
        fitted = fit_timeouts(watchdog, connect_s, request_s, quiet_s)
        if not fitted.shortened:
            continue
        print(_("bessai check: warning: the installed service uses a connect timeout of "
                "{connect:g} s and a request timeout of {request:g} s for {device}, not the "
                "{tried_connect:g} s and {tried_request:g} s used here, to fit its {watchdog:g} "
                "s watchdog: a device that needs longer would time out there; to keep them, "
                "raise WatchdogSec (systemctl edit bessai)").format(
                    connect=fitted.connect_s, request=fitted.request_s,
                    device=check.device.name, tried_connect=connect_s,
                    tried_request=request_s, watchdog=watchdog), file=sys.stderr)


def _warn_of_unmapped_limits(limit_settings, profiles):
    """Warn of each limit changed in the settings whose field no device's profile maps."""
    from bessai_edge.alarms import unmapped_limits
    from bessai_edge.poller import profile_field_names

    fields = {field for profile in profiles for field in profile_field_names(profile)}
    for field, variables in unmapped_limits(limit_settings, fields):
        print(ngettext(
            "bessai check: warning: {variables} is set, but no device's profile maps "
            "{field}, so that limit is never checked: add a point with \"field\": "
            "\"{field}\" to the profile, or remove the setting",
            "bessai check: warning: {variables} are set, but no device's profile maps "
            "{field}, so those limits are never checked: add a point with \"field\": "
            "\"{field}\" to the profile, or remove the settings", len(variables)).format(
                variables=", ".join(variables), field=field), file=sys.stderr)


def _warn_of_privileged_health_port(listen):
    """Warn when HEALTH_LISTEN names a port the installed service cannot listen on.

    The units run without capabilities, so a port below the unprivileged range leaves
    the service without /health and /metrics, although a root shell can bind it.
    """
    from bessai_edge.service.health import unprivileged_port_start

    if listen is None:
        return
    port, lowest = listen[1], unprivileged_port_start()
    if port < lowest:
        print(_("bessai check: warning: the installed service cannot listen on HEALTH_LISTEN "
                "port {port}: ports below {lowest} need the CAP_NET_BIND_SERVICE "
                "capability, which the service does not have, so /health and /metrics "
                "would be off; choose a port of {lowest} or above, such as 8000").format(
                    port=port, lowest=lowest), file=sys.stderr)


def _warn_of_relative_profile_paths(devices):
    """Warn of a profile that this check found only through the current directory."""
    from bessai_edge.profile.registry import found_through_working_directory

    directory = os.getcwd()
    if directory == "/":
        return  # the services' own working directory: the paths resolve the same there
    for device in devices:
        if found_through_working_directory(device.profile):
            print(_("bessai check: warning: the profile {path} of device {device} was found "
                    "in the current directory {directory}, but the installed services run in "
                    "/, where it is not found: give its absolute path, {absolute}").format(
                        path=device.profile, device=device.name, directory=directory,
                        absolute=os.path.abspath(device.profile)), file=sys.stderr)


def _warn_of_unreadable_profiles(devices):
    """Warn of a profile file that this shell reads but the installed services cannot."""
    from bessai_edge.errors import ProfileError
    from bessai_edge.profile.registry import registry_dir, resolve_profile_path
    from bessai_edge.service.sandbox import service_profile_problems

    bundled = os.path.realpath(registry_dir())
    for device in devices:
        try:
            path = os.path.realpath(resolve_profile_path(device.profile))
        except ProfileError:
            continue   # reported with the device
        if os.path.commonpath([path, bundled]) == bundled:
            continue
        for problem in service_profile_problems(path):
            print(_("bessai check: warning: the installed services will not start: {problem}"
                    ).format(problem=problem), file=sys.stderr)


def _warn_of_unreadable_service_files(env_file, environ):
    """Warn of the installed settings file or MQTT password file that bessai cannot read.

    systemd reads the settings file as root for EnvironmentFile=, but both services also
    read it themselves, as the bessai user.
    """
    from bessai_edge.cli import INSTALLED_ENV_FILE
    from bessai_edge.service.sandbox import SERVICE_USER, readable_by_user

    if os.geteuid() != 0:
        return
    if env_file and os.path.realpath(env_file) == INSTALLED_ENV_FILE and not readable_by_user(
            INSTALLED_ENV_FILE, SERVICE_USER):
        print(_("bessai check: warning: the installed services will not start: settings file "
                "{path} is not readable by the {user} user: chown root:{user} {path} and "
                "chmod 640 {path}").format(path=INSTALLED_ENV_FILE, user=SERVICE_USER),
              file=sys.stderr)
    password_file = environ.get("MQTT_PASSWORD_FILE")
    if password_file and not readable_by_user(password_file, SERVICE_USER):
        print(_("bessai check: warning: `bessai forward` will not start: MQTT_PASSWORD_FILE "
                "{path} is not readable by the {user} user: chown {user}: {path} and chmod "
                "600 {path}").format(path=password_file, user=SERVICE_USER), file=sys.stderr)


def _warn_of_unsynchronized_clock():
    """Warn when the kernel does not consider the wall clock synchronized by NTP.

    Records then carry clock_synced=false and possibly a wrong time_ms; see ``clock``.
    """
    from bessai_edge.clock import kernel_clock_synchronized

    if kernel_clock_synchronized() is False:
        print(_("bessai check: warning: the system clock is not synchronized by NTP, so the "
                "records' time may be wrong (they carry clock_synced=false): enable an NTP "
                "client such as systemd-timesyncd or chrony and check that it reaches a "
                "server; `timedatectl` shows \"System clock synchronized: yes\" once it "
                "has"), file=sys.stderr)


def _warn_of_total_read_time(checks, interval_s):
    """Warn when the devices' reads together do not fit the period; return True if so.

    Each device's own read is judged by its ``slow_cycle`` finding, but one cycle of
    `bessai run` polls the devices one after the other.
    """
    from bessai_edge.diagnosis import cycle_too_long, suggested_interval_s

    timed = [check for check in checks if check.read_s is not None]
    total_s = sum(check.read_s for check in timed)
    if len(timed) < 2 or not cycle_too_long(total_s, interval_s):
        return False
    print(_("bessai check: warning: the devices' reads take {total:.2f} s per cycle in all "
            "({parts}), too much of SCAN_INTERVAL_S={interval:g}: cycles of `bessai run` "
            "would overrun their period. Set SCAN_INTERVAL_S to {suggested:g} or "
            "more.").format(total=total_s, interval=interval_s,
                            parts=", ".join(f"{check.device.name} {check.read_s:.2f} s"
                                            for check in timed),
                            suggested=suggested_interval_s(total_s)), file=sys.stderr)
    return True


def _warn_of_silent_device_cost(checks, interval_s):
    """Warn of the devices whose outage would delay the others by more than a period.

    While a device accepts TCP and does not reply, each attempt costs its quiet time
    after connect plus one request timeout (or a connect timeout), and the devices
    after it in the list wait.
    """
    if len(checks) < 2:
        return
    from bessai_edge.diagnosis import suggested_interval_s

    slow = []
    worst_s = 0.0
    for check in checks:
        if not check.timeouts:
            continue
        connect_s, request_s, quiet_s = check.timeouts
        device_s = max(connect_s, quiet_s + request_s)
        if device_s > interval_s:
            slow.append(f"{check.device.name} {device_s:g} s")
            worst_s = max(worst_s, device_s)
    if slow:
        print(_("bessai check: warning: while a device does not answer, each cycle waits "
                "for it up to its quiet time after connect plus its request timeout, or its "
                "connect timeout ({devices}), more than SCAN_INTERVAL_S={interval:g}: "
                "during its outages the devices after it are read late and cycles overrun. "
                "If the devices reply quickly, set REQUEST_TIMEOUT_S and CONNECT_TIMEOUT_S "
                "shorter, such as 0.5 on a local network; otherwise set SCAN_INTERVAL_S to "
                "{suggested:g} or more").format(
                    devices=", ".join(slow), interval=interval_s,
                    suggested=suggested_interval_s(worst_s)), file=sys.stderr)


def _forwarder_problems(env_file):
    """Return the problems that would stop ``bessai forward`` with the same settings.

    With MQTT_ENABLED off the forwarder reads only that setting, LOG_LEVEL and the
    names in the file, so a misspelt MQTT_ENABLED is still found. With it on, the
    checkpoint directory FORWARD_STATE_DIR is checked as the forwarder checks it at
    start, except for the write permission, because the check may run as another user.
    """
    from bessai_edge.errors import ConfigError
    from bessai_edge.forward import settings as forward_settings

    try:
        settings = forward_settings.load_settings(forward_settings.read_environment(env_file))
        if settings.enabled:
            forward_settings.require_usable_state_dir(settings, check_access=False)
    except ConfigError as error:
        return error.problems
    return []


def _endpoint(settings, device, profile, simulators):
    """Return (host, port) of a device, starting its simulator in simulator mode."""
    from bessai_edge.devices import modbus_endpoint, simulator_for

    if settings.mode != "simulator":
        return modbus_endpoint(device, profile)
    simulator = simulator_for(device)
    simulators.append(simulator)
    return simulator.start()


def check_device(settings, device, profile, host, port):
    """Connect, discover (SunSpec), read and decode one device; return its DeviceCheck."""
    from bessai_edge.alarms import battery_power_warn_levels_kw
    from bessai_edge.diagnosis import SLOW_OUTCOMES, Observation, diagnose
    from bessai_edge.errors import LinkError, ProfileError
    from bessai_edge.link import DeviceLink, format_endpoint

    unit_id = profile.unit_id if device.unit_id is None else device.unit_id
    endpoint = format_endpoint(host, port)
    check = DeviceCheck(device, profile, endpoint, unit_id)
    # A connection that has not replied stays open for a second timeout, so that a reply
    # that comes after the first one is read and counted. That distinguishes a slow
    # device from a silent one.
    options = {"connect_timeout_s": settings.connect_timeout_s,
               "silent_timeouts_before_reconnect": 2}
    if settings.request_timeout_s is not None:
        options["request_timeout_s"] = settings.request_timeout_s
    link = DeviceLink.for_profile(profile, host, port=port, unit_id=unit_id, **options)
    check.timeouts = (link.connect_timeout_s, link.request_timeout_s,
                      link.quiet_after_connect_s)
    observation = Observation(endpoint=endpoint, port=port, unit_id=unit_id, profile=profile.name,
                              request_timeout_s=link.request_timeout_s,
                              quiet_after_connect_s=link.quiet_after_connect_s,
                              scan_interval_s=settings.scan_interval_s,
                              battery_power_warn_levels_kw=battery_power_warn_levels_kw(
                                  settings.limits),
                              unit_roles=_roles_by_unit(profile, device),
                              role_labels={role: profile.role_label(role)
                                           for role in profile.role_names()},
                              profile_units=profile.resolve_units(),
                              variables=device.variables,
                              unit_id_set=device.unit_id is not None,
                              loopback=_is_loopback(host))
    try:
        link.connect()
    except LinkError as error:
        observation.connect_error_kind = error.kind
        observation.connect_error = str(error)
        check.error = {"kind": error.kind, "message": str(error)}
        if not profile.sunspec:  # the plan needs no device: list its points as unread
            check.plan = profile.plan(unit_id=device.unit_id, unit_ids=device.unit_ids)
            _fill_unread(check, error.kind)
        check.findings = diagnose(observation)
        return check
    try:
        check.plan, check.maps = _plan(profile, device, link)
        if profile.sunspec:
            observation.units_without_sunspec = tuple(
                unit for unit in profile.sunspec_units(device.unit_id, device.unit_ids)
                if unit not in check.maps)
        _read(link, check, observation)
        if not any(kind in SLOW_OUTCOMES for kind in observation.request_outcomes):
            check.read_s = observation.read_s  # a timeout's wait is not the device's pace
    except LinkError as error:
        # SunSpec discovery failed on the link itself (a timeout, a dropped connection).
        observation.request_outcomes = [error.kind]
        check.error = {"kind": error.kind, "message": str(error)}
    except ProfileError as error:
        places = getattr(error, "marker_places", None)
        # The finding names the unit id and the fix; of the marker search, the places do.
        observation.discovery_error = str(error) if places is None else _(
            "no marker 'SunS' (0x5375 0x6e53) at {places}").format(places=places)
    finally:
        link.close()
    check.findings = diagnose(observation)
    return check


def _is_loopback(host):
    """Return True when ``host`` names this machine: 127.0.0.0/8, ::1 or localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a host name other than localhost


def _roles_by_unit(profile, device):
    """Return unit id -> the names of the profile's roles read from it (main included)."""
    roles = {}
    for role, unit in profile.resolve_units(device.unit_id, device.unit_ids).items():
        if unit is not None:
            roles.setdefault(unit, []).append(role)
    return {unit: tuple(names) for unit, names in roles.items()}


def _plan(profile, device, link):
    """Return (plan, SunSpec model maps by unit id), discovering the maps first."""
    if not profile.sunspec:
        return profile.plan(unit_id=device.unit_id, unit_ids=device.unit_ids), {}
    from bessai_edge.profile import sunspec

    units = profile.sunspec_units(device.unit_id, device.unit_ids)
    maps = sunspec.discover_units(link.read, units)
    for model_map in maps.values():
        log.info("SunSpec map: %s", model_map.describe())
    plan = profile.plan(unit_id=device.unit_id, unit_ids=device.unit_ids, model_map=maps)
    return plan, maps


def _read(link, check, observation):
    """Read the plan (twice if exception 2 taught it new holes) and fill the rows.

    When role unit ids gave no data, their registers are then probed at the unit ids
    that rejected their own (see ``unit_probe``).
    """
    from bessai_edge.unit_probe import probe_role_units

    plan = check.plan
    units_with_data = set()
    for number in range(READ_PASSES):
        requests = list(plan.requests)
        buffer = array.array("H", bytes(2 * plan.buffer_words))
        statuses = bytearray(b"\x01" * len(plan.requests))
        link.wait_for_turn()  # the quiet time after connect is not part of a cycle
        started = time.monotonic()
        outcomes, words_ffff, late_replies, unknown_ids, busy_retries, dropped = (
            _read_requests(link, plan, buffer, statuses))
        # The last pass is the closest to a cycle: the first may include exception 2 probes.
        observation.read_s = time.monotonic() - started
        no_data_units = _reject_no_data_units(plan, buffer, statuses, outcomes)
        units_with_data.update(request.unit_id for request, outcome in zip(requests, outcomes)
                        if outcome == "ok")
        if number == 0:
            observation.request_outcomes = list(outcomes)
            observation.requests = [(request.unit_id, request.function, request.address,
                                     request.count) for request in requests]
            first_requests = requests
            observation.all_words_ffff = words_ffff
            observation.late_replies = late_replies
            observation.unknown_id_frames = unknown_ids
            observation.busy_retries = busy_retries
            observation.dropped_requests = dropped
            observation.no_data_units = no_data_units
            observation.exception_11_units = _units_failing_only_with(plan, outcomes,
                                                                      "exception_11")
            # A late reply means a slow device, which the late_replies finding names.
            if not late_replies:
                observation.silent_units = _units_failing_only_with(plan, outcomes, "timeout")
        # decode() regroups the plan after exception 2, so everything that depends on
        # this pass's layout is taken first.
        strings = plan.table.decode_strings(buffer, statuses)
        errors = [outcomes[point.block] if point.block < len(outcomes) else None
                  for point in plan.points]
        values, quality = plan.table.decode(buffer, statuses)
        values, quality = list(values), bytes(quality)
        if "exception_2" not in outcomes:
            break
    check.rows = _rows(plan, strings, errors, values, quality)
    check.fields = _field_values(plan, values, quality)
    _observe_values(check, observation)
    observation.serving_units = probe_role_units(
        link.read, first_requests, observation.request_outcomes, units_with_data,
        observation.unit_roles)


def _fill_unread(check, kind):
    """Fill the rows of a plan that was never read: every point a comm_error of ``kind``."""
    plan = check.plan
    buffer = array.array("H", bytes(2 * plan.buffer_words))
    statuses = bytearray(b"\x01" * len(plan.requests))
    strings = plan.table.decode_strings(buffer, statuses)
    values, quality = plan.table.decode(buffer, statuses)
    values, quality = list(values), bytes(quality)
    check.rows = _rows(plan, strings, [kind] * len(plan.points), values, quality)
    check.fields = _field_values(plan, values, quality)


def _read_requests(link, plan, buffer, statuses):
    """Read every request into the buffer.

    Returns (outcome per request, all words 0xFFFF, late replies, frames with unknown
    transaction ids, requests read on the link's second try after exception 6, the
    (unit id, function, address, count) of each request at which the device closed the
    connection). After such a drop, ``_reconnect_after_drop`` connects again. A late
    reply is one that came after its request had timed out and was discarded while the
    link waited for a later request's reply. A frame whose transaction id no request
    used is not a late reply, so it is counted apart.
    """
    from bessai_edge.diagnosis import PARTIAL_REPLY
    from bessai_edge.errors import ConnectionLost, DeviceException, LinkError, LinkTimeout

    outcomes = []
    answered = []
    late_replies = 0
    unknown_ids_before = link.unknown_id_frames
    busy_retries = 0
    dropped = []
    replied = False             # a request of this pass got a reply or an exception reply
    after_reconnect = False     # the request is the first one on a connection opened here
    for request in plan.requests:
        sent_before = link.requests
        busy_before = link.counters["exception_6"]
        mismatched_before = link.counters["mismatched_reply"]
        unknown_before = link.unknown_id_frames
        duplicates_before = link.duplicate_replies
        words = None
        try:
            words = link.read(request.unit_id, request.function, request.address,
                              request.count)
            outcome = "ok"
        except DeviceException as error:
            outcome = error.kind
            if error.code == 2:
                plan.mark_illegal_address(request, read=link.read)
        except ConnectionLost as error:
            outcome = SKIPPED if link.requests == sent_before else "disconnected"
            if error.dropped_after_request:
                dropped.append(request)
                after_reconnect = _reconnect_after_drop(link, after_reconnect, replied)
        except LinkTimeout as error:
            outcome = PARTIAL_REPLY if error.partial else error.kind
        except LinkError as error:
            outcome = error.kind
        outcomes.append(outcome)
        if outcome != "disconnected":
            after_reconnect = False
        replied = replied or outcome == "ok" or outcome.startswith("exception_")
        # The link counts late replies and invalid frames under one kind: a request that
        # failed with an invalid frame accounts for one of them itself.
        late_replies += (link.counters["mismatched_reply"] - mismatched_before
                         - (outcome == "mismatched_reply")
                         - (link.unknown_id_frames - unknown_before)
                         - (link.duplicate_replies - duplicates_before))
        if words is None:
            continue
        busy_retries += link.counters["exception_6"] != busy_before
        buffer[request.buffer_offset:request.buffer_offset + request.count] = array.array("H", words)
        statuses[request.block] = 0
        answered.extend(words)
    return (outcomes, bool(answered) and all(word == 0xFFFF for word in answered),
            late_replies, link.unknown_id_frames - unknown_ids_before, busy_retries,
            [(request.unit_id, request.function, request.address, request.count)
             for request in dropped])


def _reconnect_after_drop(link, after_reconnect, replied):
    """Reconnect once after the device closed the connection instead of replying.

    Some devices hang up at a request for registers they cannot serve, and the other
    requests are then read on a new connection, as ``bessai run`` reads them. No
    reconnect follows when the first request of a connection opened here was dropped
    too and no request got a reply: the device hangs up at the first request of every
    connection, which the ``connection_dropped`` finding names. Returns True when a new
    connection is open.

    NOTE: a plan whose first two requests both hit registers the device hangs up at is
    reported as ``connection_dropped`` too, because the rest of the plan is not sent.
    """
    from bessai_edge.errors import LinkError

    if after_reconnect and not replied:
        return False
    try:
        link.connect()
    except LinkError as error:
        log.info("reconnect after the device closed the connection failed: %s", error)
        return False
    return True


def _units_failing_only_with(plan, outcomes, kind):
    """Return the unit ids whose every request failed with ``kind`` while another replied.

    A request not sent because the link was down (SKIPPED) does not count against it.
    """
    by_unit = {}
    for request in plan.requests:
        if request.block < len(outcomes):
            by_unit.setdefault(request.unit_id, []).append(outcomes[request.block])
    # Exception 2 counts as a reply. These outcomes come from the first pass, and a unit
    # id whose reads hit missing registers gives data only from the second.
    if not any("ok" in kinds or "exception_2" in kinds for kinds in by_unit.values()):
        return ()   # the whole-device rules name the cause
    return tuple(sorted(unit for unit, kinds in by_unit.items()
                        if kind in kinds and all(each in (kind, SKIPPED) for each in kinds)))


def _reject_no_data_units(plan, buffer, statuses, outcomes):
    """Fail the requests of each unit id that read 0xFFFF in every register, as the gateway does.

    Only while another unit id of the plan gives data: when every unit id reads 0xFFFF,
    the whole-device rule (``all_words_ffff``) names the cause. Returns the unit ids,
    sorted. Outcomes are indexed by request block, as the rows read them.
    """
    unit_parts = judged_unit_parts(plan.requests)
    rejected = units_reading_no_data(unit_parts, buffer, statuses)
    if len(rejected) == len({request.unit_id for request in plan.requests}):
        return ()
    for unit_id in rejected:
        for block, _offset, _end in unit_parts[unit_id]:
            outcomes[block] = "no_data"
            statuses[block] = 1
    return tuple(sorted(rejected))


def _rows(plan, strings, errors, values, quality):
    """Return one dict per point: identity, value, quality and the error that hid it."""
    from bessai_edge import core

    rows = []
    for index, point in enumerate(plan.points):
        code = quality[index]
        value = None
        if code == core.QUALITY_OK:
            value = strings.get(point.name) if point.type == "str" else _number(point, values[index])
        row = {
            "name": point.name,
            "field": point.field,
            "unit_id": point.unit_id,
            "function": point.function_name,
            "address": point.address,
            "type": point.type,
            "value": value,
            "unit": point.unit,
            "quality": core.QUALITY_NAMES[code],
        }
        if point.status != "ok":
            row["status"] = point.status
        elif code == core.QUALITY_COMM_ERROR and errors[index]:
            row["error"] = errors[index]
        rows.append(row)
    return rows


def _number(point, value):
    """Return an int for unscaled integer points, else a float rounded as records round fields."""
    from bessai_edge import records

    if math.isnan(value):
        return None
    if point.type in INTEGER_TYPES and point.scale == 1 and point.offset == 0 and point.sf < 0:
        return int(value)
    rounding = records.entry_rounding(point.type, point.scale, point.offset, point.sf >= 0)
    if rounding is not None:
        kind, digits = rounding
        places = ((0, digits),) if kind == "places" else ()
        significant = ((0, digits),) if kind == "significant" else ()
        value = records.round_values({0: value}, (places, significant))[0]
    return value + 0.0      # turns -0.0 into 0.0


def _field_values(plan, values, quality):
    """Return the canonical fields as the gateway records them: rounded, None unless ok."""
    from bessai_edge import core, records

    fields = {field: values[index] if quality[index] == core.QUALITY_OK else None
              for field, index in plan.fields.items()}
    records.round_values(fields, records.field_rounding(plan))
    # + 0.0 turns -0.0 into 0.0, which round_values leaves for fields that decode exactly.
    return {field: None if value is None else value + 0.0 for field, value in fields.items()}


def _observe_values(check, observation):
    rows = check.rows
    observation.points = len(rows)
    observation.points_ok = sum(1 for row in rows if row["quality"] == "ok")
    observation.points_not_available = sum(1 for row in rows if row["quality"] == "not_available")
    observation.points_rejected = sum(1 for row in rows if row.get("status") == "illegal")
    observation.points_absent = sum(1 for row in rows if row.get("status") == "absent")
    observation.points_role_off = sum(1 for row in rows if row.get("status") == "role_off")
    observation.roles_off = tuple(sorted(role for role, unit in check.plan.units.items()
                                         if unit is None))
    observation.soc_pct = check.fields.get("soc_pct")
    # Points the device lacks or rejects carry a status: they are not "not available".
    observation.soc_not_available = tuple(
        row["name"] for row in rows
        if row["field"] == "soc_pct" and row["quality"] == "not_available" and "status" not in row)
    from bessai_edge.power_plausibility import dc_power_kw, reported_max_power_kw

    observation.battery_max_power_kw = reported_max_power_kw(check.fields)
    observation.battery_power_kw = check.fields.get("battery_power_kw")
    observation.battery_power_points = tuple(
        row["name"] for row in rows
        if row["field"] == "battery_power_kw" and row["quality"] == "ok")
    observation.battery_dc_power_kw = dc_power_kw(check.fields)
    from bessai_edge.diagnosis import MAIN_FIELDS

    # A main field that only points of switched-off roles feed is not expected on the site.
    main = [row for row in rows
            if row["field"] in MAIN_FIELDS and row.get("status") != "role_off"]
    observation.main_fields = tuple(dict.fromkeys(row["field"] for row in main))
    # A field is missing when no point of it exists on the device (absent, or rejected).
    present = {row["field"] for row in main if row.get("status") not in ("absent", "illegal")}
    observation.main_fields_missing = tuple(field for field in observation.main_fields
                                            if field not in present)
    observation.main_fields_failed = tuple(dict.fromkeys(
        row["field"] for row in main if row["quality"] == "comm_error"))


def _print_json(check):
    if check.error is not None:
        print(json.dumps({"device": check.device.name, "device_error": {
            "endpoint": check.endpoint, "unit_id": check.unit_id, **check.error}},
            ensure_ascii=False))
    for row in check.rows:
        print(json.dumps({"device": check.device.name, **row}, ensure_ascii=False))
    for unit_id, model_map in sorted(check.maps.items()):
        print(json.dumps({"device": check.device.name, "sunspec_map": {
            "unit_id": unit_id,
            "base": model_map.base,
            "models": [{"id": entry.model_id, "address": entry.address, "length": entry.length}
                       for entry in model_map.models],
            "end_address": model_map.end_address,
            "end": model_map.end,
        }}))
    for finding in check.findings:
        # The code in brackets stays English for scripts; the severity is for a person.
        print(f"bessai check: {check.device.name}: {_severity_text(finding.severity)} "
              f"[{finding.code}]: {finding.message}", file=sys.stderr)


def _print_table(check):
    print(_("Device {device}: profile {profile} at {endpoint}, unit id {unit}").format(
        device=check.device.name, profile=check.profile.name, endpoint=check.endpoint,
        unit=check.unit_id))
    if check.rows:
        header = (_("Point"), _("Value"), _("Unit"), _("Quality"))
        lines = [header] + [(row["name"], _format_value(row), row["unit"],
                             _quality_text(row, check.device, point.role))
                            for row, point in zip(check.rows, check.plan.points)]
        widths = [max(len(line[column]) for line in lines) for column in range(3)]
        for line in lines:
            print(f"  {line[0]:<{widths[0]}}  {line[1]:>{widths[1]}}  {line[2]:<{widths[2]}}  "
                  f"{line[3]}".rstrip())
        known = [f"{field}={_format_field(value)}" for field, value in check.fields.items()]
        print(_("Canonical fields: {fields}").format(fields=" ".join(known)))
    print(_("Diagnosis:"))
    for finding in check.findings:
        label = _severity_text(finding.severity)
        if finding.code != finding.severity:    # "ok: ok" would repeat the word
            label = f"{label}: {finding.code}"
        print(f"  [{label}] {finding.message}")
    print()


def _severity_text(severity):
    return {"ok": _("ok"), "warning": _("warning"), "error": _("error")}[severity]


def _format_value(row):
    value = row["value"]
    if value is None:
        return "-"
    if row["type"] in ("bitfield16", "bitfield32"):
        return f"{value:#06x}"
    return str(value)


def _format_field(value):
    return "-" if value is None else f"{value:.15g}"


def _role_variable(device, role):
    """Return the variable that sets the unit id of ``role`` for this device.

    With DEVICES that is ``DEVICE_<NAME>_UNIT_<ROLE>``, also where the shared
    ``MODBUS_UNIT_<ROLE>`` switched the role off, because the device's own overrides it.
    """
    prefix = device.variables.get("MODBUS_UNIT_", "MODBUS_UNIT_")
    return f"{prefix}{role.upper()}"


def _quality_text(row, device, role):
    """Return the Quality column: the status of a point not read, else its quality."""
    if row.get("status") == "role_off":
        return _("switched off ({variable})").format(variable=_role_variable(device, role))
    if "status" in row:
        statuses = {"illegal": _("rejected (exception 2)"), "absent": _("not on the device"),
                    "unreachable": _("too far from its scale factor")}
        return statuses.get(row["status"], row["status"])
    qualities = {"ok": _("ok"), "not_available": _("not available"),
                 "comm_error": _("communication error"), "invalid": _("invalid")}
    text = qualities.get(row["quality"], row["quality"])
    if "error" in row:
        text += f" ({outcome_text(row['error'])})"
    return text
