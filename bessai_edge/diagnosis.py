"""The findings ``bessai check`` reports to a technician about one device.

``diagnose(observation)`` is a pure function: it turns the outcome of the connection
and of every request into findings, each with a code (for tests and scripts), a
severity and a message that says what to change on site. The rules come from the
failures field technicians meet most: a wrong unit id, Modbus TCP switched off or
blocked, an inverter in standby, and a profile that does not fit the device.
"""

import dataclasses
import math

from bessai_edge.alarms import MAX_POWER_KW
from bessai_edge.i18n import _, ngettext
from bessai_edge.profile.fields import MAIN_ROLE

ERROR = "error"
WARNING = "warning"
OK = "ok"

# Canonical fields that tell whether a profile fits the device: a device that has none
# of those its profile maps is almost certainly read with the wrong profile.
MAIN_FIELDS = ("soc_pct", "battery_power_kw", "ac_power_kw", "pv_power_kw",
               "grid_frequency_hz")

# A read of every request may take this share of SCAN_INTERVAL_S; more gets slow_cycle.
CYCLE_SHARE = 0.8

SKIPPED = "skipped"  # a request not sent: the link was down after an earlier failure
PARTIAL_REPLY = "partial_reply"  # a request timeout after part of the reply had arrived
# A request that failed with one of these waited out a timeout or a reconnect.
SLOW_OUTCOMES = ("timeout", PARTIAL_REPLY, "disconnected", SKIPPED, "mismatched_reply")
# Replies that arrived whole but are not valid replies to their request.
_MALFORMED = ("short_reply", "mismatched_reply")

# Requests failing with these kinds reached a device that rejected the request itself.
_DEVICE_REJECTIONS = ("exception_1", "exception_2", "exception_3", "exception_4")


def unit_id_hint():
    """Return the unit ids the bundled profiles' devices use by default, translated."""
    return _("Huawei SUN2000 1 (0 through the inverter's own access point, 100 on some "
             "dongles), SMA 3, Victron GX 100 (VE.Bus 227, 246 or 228), Fronius 1 "
             "(meter 200)")


@dataclasses.dataclass
class Observation:
    """Outcome of checking one device: its connection and every request.

    ``request_outcomes`` has one entry per request: ``ok`` or the LinkError kind
    (``timeout``, ``exception_11``...). ``all_words_ffff`` is True when at least one
    request got a reply and every word of every reply was 0xFFFF. ``late_replies``
    counts replies that came after their request had timed out. ``request_timeout_s``
    is the timeout in use (REQUEST_TIMEOUT_S or the profile's). When it is None, the
    findings leave out the late replies and the hint to raise the timeout.
    """

    endpoint: str
    port: int
    unit_id: int
    profile: str
    request_timeout_s: float | None = None
    connect_error_kind: str | None = None
    connect_error: str = ""
    discovery_error: str = ""
    request_outcomes: list = dataclasses.field(default_factory=list)  # first pass only
    all_words_ffff: bool = False
    no_data_units: tuple = ()     # unit ids of a multi-unit plan that read only 0xFFFF
    exception_11_units: tuple = ()  # unit ids of a multi-unit plan that got only exception 11
    silent_units: tuple = ()      # unit ids of a multi-unit plan that got only timeouts
    units_without_sunspec: tuple = ()  # role unit ids where SunSpec discovery found no map
    unit_roles: dict = dataclasses.field(default_factory=dict)  # unit id -> its role names
    late_replies: int = 0         # first pass only, like request_outcomes
    unknown_id_frames: int = 0    # first pass: frames whose transaction id no request used
    soc_pct: float | None = None
    soc_not_available: tuple = ()  # names of the read points of soc_pct that are "not available"
    battery_max_power_kw: float | None = None  # the larger maximum charge or discharge power
    battery_power_kw: float | None = None
    battery_power_points: tuple = ()  # names of the read points that feed battery_power_kw
    battery_dc_power_kw: float | None = None  # battery_voltage_v times battery_current_a
    battery_power_warn_levels_kw: tuple = ()  # (variable, size in kW) per warning level on
    points: int = 0
    points_ok: int = 0
    points_not_available: int = 0
    points_rejected: int = 0      # not read because the device rejected their addresses
    main_fields: tuple = ()       # MAIN_FIELDS the profile maps
    main_fields_missing: tuple = ()  # of those, the ones the device does not have
    main_fields_failed: tuple = ()  # of those, the ones whose read failed (comm_error)
    read_s: float | None = None   # time the last read pass took: one cycle's requests
    scan_interval_s: float | None = None  # SCAN_INTERVAL_S, to compare read_s with


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosis line: ``code`` is stable, ``message`` is for the technician."""

    severity: str
    code: str
    message: str


def diagnose(observation):
    """Return the findings for one device, most important first (never empty)."""
    connect = _connection_findings(observation)
    if connect:
        return connect
    if observation.discovery_error:
        return [Finding(ERROR, "sunspec_not_found", _(
            "No SunSpec register map found on unit id {unit}: {error}. Enable Modbus TCP "
            "with the SunSpec register map on the device (Fronius: web interface > "
            "Communication > Modbus, SunSpec model type 'int + SF' or 'float'), or check "
            "MODBUS_SLAVE_ID."
        ).format(unit=observation.unit_id, error=observation.discovery_error))]
    findings = _request_findings(observation)
    # After an error finding, which already names the cause, missing fields add nothing.
    errors = any(finding.severity == ERROR for finding in findings)
    if not errors:
        findings += _main_field_findings(observation)
        findings += _cycle_time_findings(observation)
    findings += _value_findings(observation, errors)
    if not findings:
        findings.append(Finding(OK, "ok", _(
            "All {count} points read; the device answers as profile {profile} expects."
        ).format(count=observation.points, profile=observation.profile)))
    return findings


def exit_status(findings_per_device):
    """Return 0 when every finding is ok, 2 when no device gave data, else 1."""
    severities = [finding.severity for findings in findings_per_device for finding in findings]
    if all(severity == OK for severity in severities):
        return 0
    no_data = {"refused", "connect_timeout", "unreachable", "connect_failed", "all_timeouts",
               "slow_replies", "wrong_transaction_id", "partial_replies", "malformed_replies",
               "connection_dropped", "wrong_unit_id",
               "device_busy", "sunspec_not_found", "all_illegal_address",
               "all_requests_rejected", "nothing_read"}
    if all(any(finding.code in no_data for finding in findings) for findings in findings_per_device):
        return 2
    return 1


def _connection_findings(observation):
    kind = observation.connect_error_kind
    if kind is None:
        return []
    if kind == "refused":
        return [Finding(ERROR, "refused", _(
            "Connection to {endpoint} refused: the device is reachable, but nothing accepts "
            "Modbus TCP on port {port}. Enable Modbus TCP on the device (Huawei: FusionSolar "
            "app > Settings > Communication configuration > Dongle parameter settings > "
            "Modbus TCP; SMA: web interface > Device parameters > Edit parameters > External "
            "communication > Modbus > TCP server; Victron GX: Settings > Services > Modbus "
            "TCP; Fronius: web interface > Communication > Modbus), check INVERTER_PORT, and "
            "check that no firewall blocks TCP port {port}."
        ).format(endpoint=observation.endpoint, port=observation.port))]
    if kind == "timeout":
        return [Finding(ERROR, "connect_timeout", _(
            "No answer to the TCP connection to {endpoint}: the device is off or asleep, "
            "INVERTER_IP is wrong, or a firewall drops port {port}. Check that "
            "`ping` reaches the device and that port {port} is open."
        ).format(endpoint=observation.endpoint, port=observation.port))]
    if kind == "unreachable":
        return [Finding(ERROR, "unreachable", _(
            "Cannot reach {endpoint}: {error}. Check INVERTER_IP and the network route to "
            "the device."
        ).format(endpoint=observation.endpoint, error=observation.connect_error))]
    return [Finding(ERROR, "connect_failed", _(
        "Cannot connect to {endpoint}: {error}."
    ).format(endpoint=observation.endpoint, error=observation.connect_error))]


def _request_findings(observation):
    # "skipped" requests were never sent (the link was down after an earlier failure).
    outcomes = [kind for kind in observation.request_outcomes if kind != SKIPPED]
    answered = [kind for kind in outcomes if kind == "ok"]
    failed = [kind for kind in outcomes if kind != "ok"]
    wrong_unit = _("The device does not serve unit id {unit}: MODBUS_SLAVE_ID is probably "
                   "wrong, or the profile is for another make, since without MODBUS_SLAVE_ID "
                   "the unit id comes from the profile. Typical unit ids: {hint}.").format(
                       unit=observation.unit_id, hint=unit_id_hint())

    if outcomes and all(kind == "exception_11" for kind in outcomes):
        return [Finding(ERROR, "wrong_unit_id", wrong_unit + " " + _(
            "(Every request was answered with exception 11, gateway target device failed "
            "to respond.)"))]
    if answered and not failed and observation.all_words_ffff:
        return [Finding(ERROR, "wrong_unit_id", wrong_unit + " " + _(
            "(Every register read 0xFFFF.)"))]
    if outcomes and all(kind == "exception_6" for kind in outcomes):
        return [Finding(ERROR, "device_busy", _(
            "The device at {endpoint} answered every request with exception 6 (device "
            "busy), also when asked again: another Modbus client may be polling it (a "
            "Huawei serves one client at a time), or it is still starting up. Stop other "
            "Modbus clients, wait a minute and check again."
        ).format(endpoint=observation.endpoint))]

    if outcomes and all(kind == "disconnected" for kind in outcomes):
        return [Finding(ERROR, "connection_dropped", _(
            "The device at {endpoint} accepts the connection and closes it at the first "
            "request: another Modbus client may hold its only connection (Huawei inverters "
            "serve one client at a time), or it rejects this client's address. Stop other "
            "Modbus clients and check the device's allowed client list."
        ).format(endpoint=observation.endpoint))]

    timeout_s = observation.request_timeout_s
    late_replies = observation.late_replies if timeout_s is not None else 0
    if (outcomes and PARTIAL_REPLY in outcomes
            and all(kind in ("timeout", PARTIAL_REPLY, "disconnected") for kind in outcomes)):
        return [Finding(ERROR, "partial_replies", _(
            "The device at {endpoint} starts its replies but does not finish them within "
            "the request timeout{timeout}: a slow or lossy network link (Wi-Fi, cellular), "
            "or a device or Modbus TCP gateway that declares a wrong length. On a slow link "
            "raise REQUEST_TIMEOUT_S; otherwise update the gateway's firmware or connect to "
            "the device directly."
        ).format(endpoint=observation.endpoint,
                 timeout=f" ({timeout_s:g} s)" if timeout_s is not None else ""))]
    if outcomes and all(kind in ("timeout", "disconnected") for kind in outcomes):
        if observation.unknown_id_frames:
            return [Finding(ERROR, "wrong_transaction_id", _(
                "The device at {endpoint} replies, but its replies carry transaction ids "
                "that no request used, so no reply matches its request: the device or a "
                "Modbus TCP gateway in between does not copy the request's transaction id "
                "into its reply. Update the gateway's firmware or replace it, or connect "
                "to the device directly."
            ).format(endpoint=observation.endpoint))]
        if late_replies:
            return [Finding(ERROR, "slow_replies", _(
                "The device at {endpoint} replies, but only after the request timeout of "
                "{timeout:g} s, so every request timed out: the network link or the device "
                "is slow. Raise REQUEST_TIMEOUT_S (at most 30), then check again."
            ).format(endpoint=observation.endpoint, timeout=timeout_s))]
        message = _(
            "The device at {endpoint} accepts the connection but answers no request: the "
            "inverter is in standby (at night, or waiting for the grid) or Modbus TCP is "
            "switched off in its settings. Wake it or enable Modbus TCP, then check again. "
            "Some devices also stay silent for a wrong MODBUS_SLAVE_ID (now {unit})."
        ).format(endpoint=observation.endpoint, unit=observation.unit_id)
        if timeout_s is not None:
            message += " " + _(
                "A slow network link or device that replies after the request timeout "
                "({timeout:g} s) looks the same: if the device is awake, raise "
                "REQUEST_TIMEOUT_S.").format(timeout=timeout_s)
        return [Finding(ERROR, "all_timeouts", message)]

    if outcomes and all(kind == "exception_2" for kind in outcomes) and not observation.points_ok:
        return [Finding(ERROR, "all_illegal_address", _(
            "The device rejects every address of profile {profile} (exception 2, illegal "
            "data address): DRIVER_PROFILE_PATH probably names the wrong profile for this "
            "device."
        ).format(profile=observation.profile))]

    # Exception 2 alone is handled by probing (rejected_addresses); other exceptions are not.
    if (outcomes and not answered and not observation.points_ok
            and all(kind in _DEVICE_REJECTIONS for kind in outcomes)
            and any(kind != "exception_2" for kind in outcomes)):
        return [Finding(ERROR, "all_requests_rejected", _(
            "The device rejects every request of profile {profile} ({summary}): "
            "DRIVER_PROFILE_PATH probably names the wrong profile for this device (list "
            "the profiles with `bessai profiles`)."
        ).format(profile=observation.profile, summary=_count_kinds(outcomes)))]

    if (outcomes and not answered and not observation.points_ok
            and all(kind in _MALFORMED for kind in outcomes)):
        return [Finding(ERROR, "malformed_replies", _(
            "The device at {endpoint} replies to every request, but no reply is valid "
            "({summary}: a wrong function code, unit id, byte count or register count). "
            "The device or a Modbus TCP gateway in between is faulty, not the profile: "
            "update the gateway's firmware or replace it, or connect to the device "
            "directly."
        ).format(endpoint=observation.endpoint, summary=_count_kinds(outcomes)))]

    # A mixture of failures (exception 2 on some units, 11 on others) that left no value.
    # Rejected points count as not available too; only the others are read values.
    nothing_read = (not observation.points_ok
                    and observation.points_not_available <= observation.points_rejected)
    if outcomes and nothing_read and any(kind not in ("ok", "exception_2") for kind in outcomes):
        return [Finding(ERROR, "nothing_read", _(
            "No point of profile {profile} was read ({summary}): DRIVER_PROFILE_PATH "
            "probably names the wrong profile for this device, or MODBUS_SLAVE_ID (now "
            "{unit}) is wrong (list the profiles with `bessai profiles`)."
        ).format(profile=observation.profile, summary=_count_kinds(outcomes),
                 unit=observation.unit_id))]

    findings = []
    if observation.no_data_units:
        labels, variables = _role_units_text(observation, observation.no_data_units)
        findings.append(Finding(ERROR, "unit_no_data", ngettext(
            "Unit id {units} read 0xFFFF in every register: no device answers to it at "
            "{endpoint}, so its points show a communication error. Set {variables} to the "
            "unit id the device lists.",
            "Unit ids {units} read 0xFFFF in every register: no device answers to them at "
            "{endpoint}, so their points show a communication error. Set {variables} to the "
            "unit ids the devices list.", len(observation.no_data_units)
        ).format(units=labels, endpoint=observation.endpoint, variables=variables)))
    if observation.units_without_sunspec:
        labels, variables = _role_units_text(observation, observation.units_without_sunspec)
        findings.append(Finding(WARNING, "unit_no_sunspec", ngettext(
            "Unit id {units} has no SunSpec register map at {endpoint}, so its points are "
            "not read. Set {variables} to the unit id the device lists; a site without "
            "that device gets this warning at every check. Typical unit ids: {hint}.",
            "Unit ids {units} have no SunSpec register map at {endpoint}, so their points "
            "are not read. Set {variables} to the unit ids the devices list; a site without "
            "those devices gets this warning at every check. Typical unit ids: {hint}.",
            len(observation.units_without_sunspec)
        ).format(units=labels, endpoint=observation.endpoint, variables=variables,
                 hint=unit_id_hint())))
    if observation.points_rejected:
        findings.append(Finding(WARNING, "rejected_addresses", ngettext(
            "The device rejects the address of {count} point of profile {profile} "
            "(exception 2): it is not read. This is normal for registers a model does "
            "not have; if it is one of the profile's main values, check "
            "DRIVER_PROFILE_PATH.",
            "The device rejects the addresses of {count} points of profile {profile} "
            "(exception 2): they are not read. This is normal for registers a model does "
            "not have; if the profile's main values are among them, check "
            "DRIVER_PROFILE_PATH.", observation.points_rejected
        ).format(count=observation.points_rejected, profile=observation.profile)))

    if observation.exception_11_units:
        findings.append(_unit_exception_11_finding(observation))
    if observation.silent_units:
        findings.append(_silent_unit_finding(observation))
    # Exception 2 is handled by probing; no_data and those units have their own finding.
    skip = ("exception_2", "no_data") + (
        ("exception_11",) if observation.exception_11_units else ()) + (
        ("timeout", SKIPPED) if observation.silent_units else ())
    failed = [kind for kind in failed if kind not in skip]
    if failed:
        message = ngettext(
            "{failed} of {total} requests failed ({summary}); the points it carries show "
            "a communication error.",
            "{failed} of {total} requests failed ({summary}); the points they carry show "
            "a communication error.", len(failed)
        ).format(failed=len(failed), total=len(outcomes), summary=_count_kinds(failed))
        lost = observation.main_fields_failed
        if lost:
            message += " " + ngettext(
                "The main value {fields} is among them. Check again; if the same request "
                "fails every time, compare its addresses with the manufacturer's register "
                "list and look for an alarm on the device's display.",
                "The main values {fields} are among them. Check again; if the same requests "
                "fail every time, compare their addresses with the manufacturer's register "
                "list and look for an alarm on the device's display.", len(lost)
            ).format(fields=", ".join(lost))
        findings.append(Finding(WARNING, "some_requests_failed", message))
    if late_replies:
        findings.append(Finding(WARNING, "late_replies", ngettext(
            "{count} reply came after the request timeout of {timeout:g} s and was "
            "discarded: the network link or the device is slow at times. If such timeouts "
            "recur, raise REQUEST_TIMEOUT_S.",
            "{count} replies came after the request timeout of {timeout:g} s and were "
            "discarded: the network link or the device is slow at times. If such timeouts "
            "recur, raise REQUEST_TIMEOUT_S.", late_replies
        ).format(count=late_replies, timeout=timeout_s)))
    return findings


def _role_units_text(observation, units):
    """Return the unit ids with their roles, and the variables that set them, as text."""
    labels = []
    variables = []
    for unit in units:
        roles = observation.unit_roles.get(unit, ())
        if not roles:
            labels.append(str(unit))
            continue
        labels.append(_("{unit} (role {roles})").format(unit=unit, roles=", ".join(roles)))
        variables += ["MODBUS_SLAVE_ID" if role == MAIN_ROLE else f"MODBUS_UNIT_{role.upper()}"
                      for role in roles]
    return ", ".join(labels), ", ".join(variables) or "MODBUS_UNIT_<ROLE>"


def _unit_exception_11_finding(observation):
    """Return the finding for role unit ids whose every reply was exception 11."""
    labels, variables = _role_units_text(observation, observation.exception_11_units)
    return Finding(ERROR, "unit_exception_11", ngettext(
        "Unit id {units} answered every request with exception 11 (gateway target device "
        "failed to respond): no device answers to it at {endpoint}, while the other unit "
        "ids give data, so its points show a communication error; set {variables} to the "
        "unit id the device lists. Typical unit ids: {hint}.",
        "Unit ids {units} answered every request with exception 11 (gateway target device "
        "failed to respond): no device answers to them at {endpoint}, while the other unit "
        "ids give data, so their points show a communication error; set {variables} to the "
        "unit ids the devices list. Typical unit ids: {hint}.",
        len(observation.exception_11_units)
    ).format(units=labels, endpoint=observation.endpoint, variables=variables,
             hint=unit_id_hint()))


def _silent_unit_finding(observation):
    """Return the finding for role unit ids that never answered while the others did."""
    labels, variables = _role_units_text(observation, observation.silent_units)
    return Finding(ERROR, "unit_timeout", ngettext(
        "Unit id {units} answered no request within {timeout:g} s, while the other unit ids "
        "give data: a Modbus TCP gateway may stay silent for a unit id that nothing serves, "
        "and every cycle then waits out the timeout. Set {variables} to the unit id the "
        "device lists. Typical unit ids: {hint}.",
        "Unit ids {units} answered no request within {timeout:g} s, while the other unit "
        "ids give data: a Modbus TCP gateway may stay silent for a unit id that nothing "
        "serves, and every cycle then waits out the timeouts. Set {variables} to the unit "
        "ids the devices list. Typical unit ids: {hint}.",
        len(observation.silent_units)
    ).format(units=labels, timeout=observation.request_timeout_s or 0, variables=variables,
             hint=unit_id_hint()))


def _count_kinds(kinds):
    counts = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{outcome_text(kind)} x{count}" for kind, count in sorted(counts.items()))


def outcome_text(kind):
    """Return the words for a request outcome such as ``refused`` or ``exception_2``.

    Findings' codes and ``bessai check --json`` keep the kind itself, which scripts and
    the documentation use; the words are for people, in their language.
    """
    if kind.startswith("exception_"):
        return _("exception {code}").format(code=kind[len("exception_"):])
    texts = {"refused": _("connection refused"), "unreachable": _("host unreachable"),
             "timeout": _("timeout"), "disconnected": _("connection lost"),
             "short_reply": _("short reply"), "mismatched_reply": _("mismatched reply"),
             PARTIAL_REPLY: _("partial reply"), SKIPPED: _("not sent, link down"),
             "no_data": _("every register 0xFFFF")}
    return texts.get(kind, kind)


def _main_field_findings(observation):
    main = observation.main_fields
    if not main or set(main) != set(observation.main_fields_missing):
        return []
    return [Finding(WARNING, "main_fields_missing", _(
        "The device has none of the main values profile {profile} maps ({fields}): "
        "the profile probably does not fit this device. Check DRIVER_PROFILE_PATH "
        "(list the profiles with `bessai profiles`)."
    ).format(profile=observation.profile, fields=", ".join(main)))]


def suggested_interval_s(read_s):
    """Return a SCAN_INTERVAL_S for reads of ``read_s``: half again, up to a tenth of a second."""
    return math.ceil(read_s * 15) / 10


def cycle_too_long(read_s, interval_s):
    """Return True when reads of ``read_s`` leave less than a fifth of the period spare.

    The replies' times vary from cycle to cycle, so a read that takes most of the
    period makes some cycles overrun.
    """
    return read_s > interval_s * CYCLE_SHARE


def _cycle_time_findings(observation):
    read_s, interval_s = observation.read_s, observation.scan_interval_s
    if read_s is None or interval_s is None or not cycle_too_long(read_s, interval_s):
        return []
    if any(kind in SLOW_OUTCOMES for kind in observation.request_outcomes):
        return []  # the request timeout took the time, and its own finding names it
    values = {"profile": observation.profile, "read": read_s, "interval": interval_s,
              "suggested": suggested_interval_s(read_s)}
    if read_s > interval_s:
        return [Finding(WARNING, "slow_cycle", _(
            "Reading every request of profile {profile} once took {read:.2f} s, longer "
            "than SCAN_INTERVAL_S={interval:g}: every cycle of `bessai run` would overrun "
            "its period. Set SCAN_INTERVAL_S to {suggested:g} or more.").format(**values))]
    return [Finding(WARNING, "slow_cycle", _(
        "Reading every request of profile {profile} once took {read:.2f} s, most of "
        "SCAN_INTERVAL_S={interval:g}: cycles of `bessai run` would overrun their period "
        "whenever the device replies a little slower. Set SCAN_INTERVAL_S to "
        "{suggested:g} or more.").format(**values))]


# How far the battery power warning level may lie from the maximum power the device
# reports before the level is taken for a slip of unit (W for kW, MW for kW).
RATED_POWER_RATIO = 10.0
# The smallest reference for a battery power reading, so that a battery at rest
# (voltage times a current near 0) does not make a reading of a few kW look wrong.
PLAUSIBLE_POWER_FLOOR_KW = 1.0


def _rated_power_findings(observation):
    """Return a finding for the warning levels far above, and one for those far below.

    Each names its levels' variables, since the charge and discharge levels may be set
    apart, and both come from BATTERY_RATED_POWER_KW when they are not.
    """
    levels, device_kw = observation.battery_power_warn_levels_kw, observation.battery_max_power_kw
    if not levels or not device_kw:
        return []
    high = [(name, size) for name, size in levels if size > device_kw * RATED_POWER_RATIO]
    low = [(name, size) for name, size in levels if size * RATED_POWER_RATIO < device_kw]
    problems = (
        (high, _("The battery power alarm warns at {warn} kW ({names}), more than ten times "
                 "the maximum charge or discharge power the device reports ({device:g} kW), "
                 "so it would never go off. Set BATTERY_RATED_POWER_KW to the battery's rated "
                 "power in kW, not W, or those levels in kW.")),
        (low, _("The battery power alarm warns at {warn} kW ({names}), less than a tenth of "
                "the maximum charge or discharge power the device reports ({device:g} kW), so "
                "it would go off in normal operation. Set BATTERY_RATED_POWER_KW to the "
                "battery's rated power in kW, not MW, or those levels in kW.")),
    )
    return [Finding(WARNING, "rated_power_mismatch",
                    message.format(warn=_sizes(group), names=_names(group), device=device_kw))
            for group, message in problems if group]


def _battery_power_findings(observation):
    """Return a finding when battery_power_kw is far larger than any power it should match.

    The references are the battery's voltage times its current, the maximum charge or
    discharge power the device reports and the battery power warning levels. Without
    any of them, the limit is the largest rated power the settings accept. A 32-bit
    value read with its words swapped comes out about 65,536 times too large.
    """
    power = observation.battery_power_kw
    if power is None:
        return []
    references = []
    if observation.battery_dc_power_kw is not None:
        references.append((abs(observation.battery_dc_power_kw),
                           _("the battery's voltage times its current")))
    if observation.battery_max_power_kw is not None:
        references.append((observation.battery_max_power_kw,
                           _("the maximum charge or discharge power the device reports")))
    levels = observation.battery_power_warn_levels_kw
    if levels:
        references.append((max(size for _name, size in levels),
                           _("the battery power warning level ({names})").format(
                               names=_names(levels))))
    if references:
        reference, source = max(references, key=lambda item: item[0])
        if abs(power) <= max(reference, PLAUSIBLE_POWER_FLOOR_KW) * RATED_POWER_RATIO:
            return []
        cause = _("Battery power reads {power:g} kW, more than ten times {source} "
                  "({reference:g} kW).").format(power=power, source=source,
                                                 reference=round(reference, 2))
    elif abs(power) > MAX_POWER_KW:
        cause = _("Battery power reads {power:g} kW, more than {limit:g} kW, the largest "
                  "battery rated power the settings accept.").format(power=power,
                                                                     limit=MAX_POWER_KW)
    else:
        return []
    return [Finding(WARNING, "battery_power_implausible", cause + " " + _(
        "The word order, type or scale of point {points} in profile {profile} is probably "
        "wrong: a 32-bit value whose device sends the low word first reads about 65,536 "
        "times too large. Compare the point with the manufacturer's register list; for such "
        "a device, set \"order\": \"CDAB\" on the point in a copy of the profile."
    ).format(points=", ".join(observation.battery_power_points), profile=observation.profile))]


def _sizes(levels):
    return "/".join(sorted({f"{size:g}" for _name, size in levels}))


def _names(levels):
    return ", ".join(name for name, _size in levels)


def _value_findings(observation, errors):
    findings = []
    if observation.soc_pct is not None and observation.soc_pct == 0:
        findings.append(Finding(WARNING, "soc_zero", _(
            "State of charge reads 0 %: a real battery almost never reports exactly 0, so "
            "profile {profile} probably does not match this device. Check "
            "DRIVER_PROFILE_PATH (list the profiles with `bessai profiles`)."
        ).format(profile=observation.profile)))
    elif observation.soc_pct is not None and not 0 <= observation.soc_pct <= 100:
        findings.append(Finding(WARNING, "soc_out_of_range", _(
            "State of charge reads {soc:g} %, outside 0 to 100 %. The scale, type or byte "
            "order of the point that feeds soc_pct in profile {profile} is probably wrong, "
            "or the profile does not match this device. Compare that point with the "
            "manufacturer's register list, and check DRIVER_PROFILE_PATH."
        ).format(soc=observation.soc_pct, profile=observation.profile)))
    findings += _rated_power_findings(observation)
    findings += _battery_power_findings(observation)
    measured = observation.points - observation.points_rejected
    if measured and observation.points_not_available - observation.points_rejected == measured:
        findings.append(Finding(WARNING, "all_not_available", _(
            "Every point reads 'not available': the device answers but reports no "
            "measurements, as inverters do at night or in standby."
        )))
    elif observation.soc_not_available and not errors:
        findings.append(Finding(WARNING, "soc_not_available", _(
            "State of charge reads 'not available' (point {points}), so `bessai run` would "
            "raise the soc_pct:stale alarm. The battery is off or not connected, its BMS "
            "does not talk to the inverter, or the inverter reports no battery values in "
            "standby. If the battery runs, check that profile {profile} fits this device "
            "(DRIVER_PROFILE_PATH)."
        ).format(points=", ".join(observation.soc_not_available),
                 profile=observation.profile)))
    return findings
