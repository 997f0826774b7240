"""The findings ``bessai check`` reports to a technician about one device.

``diagnose(observation)`` is a pure function: it turns the outcome of the connection
and of every request into findings, each with a code (for tests and scripts), a
severity and a message that says what to change on site. The rules come from the
failures field technicians meet most: a wrong unit id, Modbus TCP switched off or
blocked, an inverter in standby, and a profile that does not fit the device.
"""

import dataclasses
import re

from bessai_edge.diagnosis.model import (  # noqa: F401 (the package's interface)
    ERROR, MAIN_FIELDS, OK, PARTIAL_REPLY, SKIPPED, SLOW_OUTCOMES, WARNING, Finding,
    Observation, exception_meaning, outcome_text, unit_id_hint)
from bessai_edge.diagnosis.drops import dropped_requests_finding, without_dropped
from bessai_edge.diagnosis.units import (
    role_off_text, role_units_text, serving_unit_findings, silent_unit_finding,
    unit_exception_11_finding, units_not_found_elsewhere)
from bessai_edge.diagnosis.values import (  # noqa: F401 (the package's interface)
    cycle_too_long, cycle_time_findings, main_field_findings, suggested_interval_s,
    value_findings)
from bessai_edge.i18n import _, ngettext

# Replies that arrived whole but are not valid replies to their request.
_MALFORMED = ("short_reply", "mismatched_reply")

# Requests failing with these kinds reached a device that rejected the request itself.
_DEVICE_REJECTIONS = ("exception_1", "exception_2", "exception_3", "exception_4")

# Maximum number of failed requests that some_requests_failed names by their registers.
_LISTED_REQUESTS = 3


def diagnose(observation):
    """Return the findings for one device, most important first (never empty).

    The messages name the single-device variables (MODBUS_SLAVE_ID, INVERTER_PORT...);
    for a device of DEVICES they name its own instead, from ``observation.variables``.
    """
    findings = _findings(observation)
    if not observation.variables:
        return findings
    pattern = re.compile(r"\b(?:%s)" % "|".join(map(re.escape, observation.variables)))
    return [dataclasses.replace(finding, message=pattern.sub(
        lambda match: observation.variables[match.group()], finding.message))
        for finding in findings]


def _findings(observation):
    connect = _connection_findings(observation)
    if connect:
        return connect
    if observation.discovery_error:
        return [Finding(ERROR, "sunspec_not_found", _(
            "No SunSpec register map found on unit id {unit}: {error}. Enable Modbus TCP "
            "with the SunSpec register map on the device (Fronius: web interface > "
            "Communication > Modbus, SunSpec model type 'int + SF' or 'float'), check "
            "MODBUS_SLAVE_ID, or, for a device that is not SunSpec, set "
            "DRIVER_PROFILE_PATH to its make's profile (list them with `bessai profiles`)."
        ).format(unit=observation.unit_id, error=observation.discovery_error))]
    findings = _request_findings(observation)
    # After an error finding, which already names the cause, missing fields add nothing.
    errors = any(finding.severity == ERROR for finding in findings)
    if not errors:
        findings += main_field_findings(observation)
        findings += cycle_time_findings(observation)
    findings += _busy_retry_findings(observation)
    findings += value_findings(observation, errors)
    if not findings:
        findings.append(_all_well_finding(observation))
    return findings


def _busy_retry_findings(observation):
    """Return a finding when requests got exception 6 and a reply when sent once more.

    The link sends a request that got exception 6 once more, so the values are read,
    but each busy reply costs a request: `bessai run`'s cycles take longer.
    """
    count = observation.busy_retries
    if not count:
        return []
    total = sum(1 for kind in observation.request_outcomes if kind != SKIPPED)
    return [Finding(WARNING, "busy_replies", ngettext(
        "The device at {endpoint} answered {count} of {total} requests with exception 6 "
        "(device busy) and served it when asked again: another Modbus client probably "
        "polls the device (a Huawei serves one client at a time), or the device is busy "
        "with other work. Each busy reply costs one more request, so the reads take "
        "longer. Stop the other Modbus client; if cycles of `bessai run` overrun, raise "
        "SCAN_INTERVAL_S.",
        "The device at {endpoint} answered {count} of {total} requests with exception 6 "
        "(device busy) and served them when asked again: another Modbus client probably "
        "polls the device (a Huawei serves one client at a time), or the device is busy "
        "with other work. Each busy reply costs one more request, so the reads take "
        "longer. Stop the other Modbus client; if cycles of `bessai run` overrun, raise "
        "SCAN_INTERVAL_S.", count
    ).format(endpoint=observation.endpoint, count=count, total=total))]


def _all_well_finding(observation):
    """Return the ok finding, which counts only the points read and names the roles off."""
    message = _(
        "All {count} points read; the device answers as profile {profile} expects."
    ).format(count=observation.points - observation.points_not_read,
             profile=observation.profile)
    if observation.points_role_off:
        variables = ", ".join(f"MODBUS_UNIT_{role.upper()}" for role in observation.roles_off)
        message += " " + ngettext(
            "{count} point was not read because its role is switched off ({variables}).",
            "{count} points were not read because their role is switched off ({variables}).",
            observation.points_role_off
        ).format(count=observation.points_role_off, variables=variables)
    return Finding(OK, "ok", message)


def exit_status(findings_per_device):
    """Return 0 when every finding is ok, 2 when no device gave data, else 1.

    A device gave no data when one of its findings has a code that implies it, or is
    marked ``no_data``.
    """
    severities = [finding.severity for findings in findings_per_device for finding in findings]
    if all(severity == OK for severity in severities):
        return 0
    no_data = {"refused", "connect_timeout", "unreachable", "connect_failed", "all_timeouts",
               "slow_replies", "wrong_transaction_id", "partial_replies", "malformed_replies",
               "connection_dropped", "wrong_unit_id",
               "device_busy", "sunspec_not_found", "all_illegal_address",
               "all_requests_rejected", "nothing_read"}
    if all(any(finding.code in no_data or finding.no_data for finding in findings)
           for findings in findings_per_device):
        return 2
    return 1


def _connection_findings(observation):
    kind = observation.connect_error_kind
    if kind is None:
        return []
    if kind == "refused" and observation.loopback:
        return [Finding(ERROR, "refused", _(
            "Connection to {endpoint} refused: nothing listens on port {port} of this "
            "machine. Is `bessai simulate` (or a tunnel to the device) running, and on which "
            "port? Set INVERTER_PORT to that port."
        ).format(endpoint=observation.endpoint, port=observation.port))]
    if kind == "refused":
        return [Finding(ERROR, "refused", _(
            "Connection to {endpoint} refused: the device is reachable, but nothing accepts "
            "Modbus TCP on port {port}. Enable Modbus TCP on the device (Huawei: FusionSolar "
            "app > Settings > Communication configuration > Dongle parameter settings > "
            "Modbus TCP; SMA: web interface > Device parameters > Edit parameters > External "
            "communication > Modbus > TCP server; Victron GX: Settings > Services > Modbus "
            "TCP, or Settings > Integrations > Modbus TCP server on newer Venus OS; Fronius: "
            "web interface > Communication > Modbus), check INVERTER_PORT, and check that no "
            "firewall blocks TCP port {port}."
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
    if observation.unit_id_set:
        wrong_unit = _("The device does not serve unit id {unit}: MODBUS_SLAVE_ID={unit} is "
                       "probably wrong. Typical unit ids: {hint}.").format(
                           unit=observation.unit_id, hint=unit_id_hint())
    else:
        wrong_unit = _("The device does not serve unit id {unit}, the profile's: set "
                       "MODBUS_SLAVE_ID to the unit id the device uses, or the profile is for "
                       "another make. Typical unit ids: {hint}.").format(
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

    # Points not read (rejected, absent, role off) have quality not_available too, so only
    # the other points that are not available are values read.
    nothing_read = (not observation.points_ok
                    and observation.points_not_available <= observation.points_not_read)
    # A unit id that serves another role's registers shows that the profile fits, so its
    # finding comes before those that blame the profile.
    serving = serving_unit_findings(observation, nothing_read)
    if outcomes and nothing_read and serving:
        return serving

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
    if outcomes and nothing_read and any(kind not in ("ok", "exception_2") for kind in outcomes):
        return [Finding(ERROR, "nothing_read", _(
            "No point of profile {profile} was read ({summary}): DRIVER_PROFILE_PATH "
            "probably names the wrong profile for this device, or MODBUS_SLAVE_ID (now "
            "{unit}) is wrong (list the profiles with `bessai profiles`)."
        ).format(profile=observation.profile, summary=_count_kinds(outcomes),
                 unit=observation.unit_id))]

    findings = serving
    no_data_units = units_not_found_elsewhere(observation, observation.no_data_units)
    if no_data_units:
        labels, variables = role_units_text(observation, no_data_units)
        findings.append(Finding(ERROR, "unit_no_data", ngettext(
            "Unit id {units} read 0xFFFF in every register: no device answers to it at "
            "{endpoint}, so its points show a communication error. Set {variables} to the "
            "unit id the device lists.",
            "Unit ids {units} read 0xFFFF in every register: no device answers to them at "
            "{endpoint}, so their points show a communication error. Set {variables} to the "
            "unit ids the devices list.", len(no_data_units)
        ).format(units=labels, endpoint=observation.endpoint, variables=variables)
            + role_off_text(observation, no_data_units)))
    if observation.units_without_sunspec:
        labels, variables = role_units_text(observation, observation.units_without_sunspec)
        findings.append(Finding(WARNING, "unit_no_sunspec", ngettext(
            "Unit id {units} has no SunSpec register map at {endpoint}, so its points are "
            "not read. Set {variables} to the unit id the device lists; a site without "
            "that device gets this warning at every check. Typical unit ids: {hint}.",
            "Unit ids {units} have no SunSpec register map at {endpoint}, so their points "
            "are not read. Set {variables} to the unit ids the devices list; a site without "
            "those devices gets this warning at every check. Typical unit ids: {hint}.",
            len(observation.units_without_sunspec)
        ).format(units=labels, endpoint=observation.endpoint, variables=variables,
                 hint=unit_id_hint(observation.profile))))
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
        lost = observation.main_fields_missing
        if lost and len(lost) < len(observation.main_fields):
            findings.append(_main_values_rejected_finding(observation, lost))

    exception_11_units = units_not_found_elsewhere(observation, observation.exception_11_units)
    if exception_11_units:
        findings.append(unit_exception_11_finding(observation, exception_11_units))
    silent_units = units_not_found_elsewhere(observation, observation.silent_units)
    if silent_units:
        findings.append(silent_unit_finding(observation, silent_units))
    # Only the first request after connecting went unanswered: the device's quiet time.
    quiet = (not observation.silent_units and outcomes[:1] == ["timeout"] and not late_replies
             and all(kind in ("ok", "exception_2") for kind in outcomes[1:]) and answered)
    if quiet:
        findings.append(_quiet_after_connect_finding(observation))
    # Exception 2 is handled by probing; no_data and those units have their own finding.
    skip = ("exception_2", "no_data") + (
        ("exception_11",) if observation.exception_11_units else ()) + (
        ("timeout", SKIPPED) if observation.silent_units or quiet else ())
    failed = [kind for kind in failed if kind not in skip]
    # The device hung up at some requests and replied to the others after a reconnect.
    if observation.dropped_requests and answered:
        findings.append(dropped_requests_finding(observation))
        failed = without_dropped(failed, observation)
    illegal_function = failed.count("exception_1")
    if illegal_function:
        # Exception 1 rejects the function code, not the address: no register list helps.
        findings.append(Finding(WARNING, "illegal_function", ngettext(
            "{count} of {total} requests got exception 1 (illegal function): the device "
            "does not serve that kind of read (holding or input registers) on this unit id. "
            "DRIVER_PROFILE_PATH probably names a profile for another make or model, or "
            "the profile's function for those points is wrong.",
            "{count} of {total} requests got exception 1 (illegal function): the device "
            "does not serve that kind of read (holding or input registers) on this unit id. "
            "DRIVER_PROFILE_PATH probably names a profile for another make or model, or "
            "the profile's function for those points is wrong.", illegal_function
        ).format(count=illegal_function, total=len(outcomes))))
        failed = [kind for kind in failed if kind != "exception_1"]
    if failed:
        message = ngettext(
            "{failed} of {total} requests failed ({summary}); the points it carries show "
            "a communication error.",
            "{failed} of {total} requests failed ({summary}); the points they carry show "
            "a communication error.", len(failed)
        ).format(failed=len(failed), total=len(outcomes), summary=_count_kinds(failed))
        message += _failed_requests_text(observation, set(failed))
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


def _main_values_rejected_finding(observation, lost):
    """Return the finding for main values the device rejects while it gives others.

    A unit id of another part of the device (a Victron VE.Bus id given as the main
    one) serves some points and rejects the main values. So does a device without
    a battery, hence a warning.
    """
    return Finding(WARNING, "main_values_rejected", ngettext(
        "The device gives no value for the main value {fields}, while it answers for other "
        "points. Unless the site lacks that part, MODBUS_SLAVE_ID (now {unit}) is the unit "
        "id of another part of the device: set it to the one the profile's main values "
        "come from, or check DRIVER_PROFILE_PATH. Typical unit ids: {hint}.",
        "The device gives no value for the main values {fields}, while it answers for "
        "other points. Unless the site lacks that part, MODBUS_SLAVE_ID (now {unit}) is "
        "the unit id of another part of the device: set it to the one the profile's main "
        "values come from, or check DRIVER_PROFILE_PATH. Typical unit ids: {hint}.",
        len(lost)
    ).format(fields=", ".join(lost), unit=observation.unit_id, hint=unit_id_hint()))


def _quiet_after_connect_finding(observation):
    """Return the finding for a device that ignores requests for a while after a connect.

    ``bessai run`` keeps a connection that has not replied yet for a second request,
    sent in the next cycle, so it loses only the first cycle after each connect.
    """
    return Finding(WARNING, "quiet_after_connect", _(
        "The device did not answer the first request after connecting within {timeout:g} "
        "s, then answered the others: it ignores requests for longer after a connect than "
        "profile {profile} waits (quiet_after_connect_s, now {quiet:g} s). `bessai run` "
        "keeps the connection and reads it from the next cycle, so the first cycle after "
        "each connect has no values. To read that cycle too, copy the profile to "
        "/etc/bessai/profiles/, raise its quiet_after_connect_s and point "
        "DRIVER_PROFILE_PATH at the copy."
    ).format(timeout=observation.request_timeout_s or 0, profile=observation.profile,
             quiet=observation.quiet_after_connect_s or 0))


def _failed_requests_text(observation, kinds):
    """Return sentences that name the requests that failed with ``kinds`` and the exceptions.

    The first _LISTED_REQUESTS requests are named by their registers, then a count of
    the others. Returns "" when the observation has no requests to name.
    """
    failed = [(request, kind) for request, kind
              in zip(observation.requests, observation.request_outcomes) if kind in kinds]
    if not failed:
        return ""
    named = []
    for (unit, function, address, count), kind in failed[:_LISTED_REQUESTS]:
        named.append(_("{first}..{last} (unit id {unit}, function {function}, {outcome})")
                     .format(first=address, last=address + count - 1, unit=unit,
                             function=function, outcome=outcome_text(kind)))
    requests = ", ".join(named)
    if len(failed) > _LISTED_REQUESTS:
        requests = _("{requests} and {count} more").format(
            requests=requests, count=len(failed) - _LISTED_REQUESTS)
    text = " " + ngettext("The failed request reads registers {requests}.",
                          "The failed requests read registers {requests}.",
                          len(failed)).format(requests=requests)
    codes = sorted({int(kind[len("exception_"):]) for kind in kinds
                    if kind.startswith("exception_")})
    for code in codes:
        meaning = exception_meaning(code)
        if meaning:
            text += " " + meaning
    return text


def _count_kinds(kinds):
    counts = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{outcome_text(kind)} x{count}" for kind, count in sorted(counts.items()))
