"""Findings about the values a device gave: main values, cycle time and plausibility."""

import math

from bessai_edge.alarms import MAX_POWER_KW
from bessai_edge.diagnosis.model import SLOW_OUTCOMES, WARNING, Finding
from bessai_edge.i18n import _
from bessai_edge.power_plausibility import (
    DC_POWER, RATED_POWER_RATIO, REPORTED_MAX, SETTINGS_MAX, WARN_LEVEL,
    implausible_battery_power)

# A read of every request may take this share of SCAN_INTERVAL_S, and a longer one gets
# slow_cycle.
CYCLE_SHARE = 0.8


def main_field_findings(observation):
    """Return a finding when the device has none of the main values its profile maps."""
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


def cycle_time_findings(observation):
    """Return a finding when one read of every request takes most of SCAN_INTERVAL_S."""
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

    ``power_plausibility`` holds the rule, which ``bessai run`` logs too.
    """
    implausible = implausible_battery_power(
        observation.battery_power_kw, observation.battery_dc_power_kw,
        observation.battery_max_power_kw, observation.battery_power_warn_levels_kw)
    if implausible is None:
        return []
    power, reference = implausible.power_kw, implausible.reference
    if reference == SETTINGS_MAX:
        cause = _("Battery power reads {power:g} kW, more than {limit:g} kW, the largest "
                  "battery rated power the settings accept.").format(power=power,
                                                                     limit=MAX_POWER_KW)
    else:
        sources = {
            DC_POWER: _("the battery's voltage times its current"),
            REPORTED_MAX: _("the maximum charge or discharge power the device reports"),
            WARN_LEVEL: _("the battery power warning level ({names})").format(
                names=_names(observation.battery_power_warn_levels_kw)),
        }
        cause = _("Battery power reads {power:g} kW, more than ten times {source} "
                  "({reference:g} kW).").format(power=power, source=sources[reference],
                                                 reference=round(implausible.reference_kw, 2))
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


def value_findings(observation, errors):
    """Return the findings about the values read; ``errors`` is True after an error finding."""
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
    measured = observation.points - observation.points_not_read
    if measured and observation.points_not_available - observation.points_not_read == measured:
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
