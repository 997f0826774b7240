"""The journal line of ``bessai run`` for an implausible battery power reading.

``bessai check`` reports the same rule (``power_plausibility``) as the
battery_power_implausible finding. The gateway records what the device sends, so a
misread point would otherwise fill the records with impossible values unnoticed.
"""

import logging

from bessai_edge.alarms import battery_power_warn_levels_kw
from bessai_edge.power_plausibility import (
    DC_POWER, REPORTED_MAX, SETTINGS_MAX, WARN_LEVEL, dc_power_kw, implausible_battery_power,
    reported_max_power_kw)
from bessai_edge.service.journal import EVENT_IMPLAUSIBLE_VALUE, FIELD_EVENT

logger = logging.getLogger(__name__)

FIELD = "battery_power_kw"


class BatteryPowerLog:
    """Judges one device's battery_power_kw and logs one WARNING the first time it fails.

    ``judge()`` costs a dictionary look-up, so the poller calls it only on the first
    cycle with a value after each connect, not on every cycle.
    """

    def __init__(self, device_name, profile_name, limit_settings, log_extra):
        self.device_name = device_name
        self.profile_name = profile_name
        self.warn_levels_kw = battery_power_warn_levels_kw(limit_settings)
        self.extra = {**log_extra, FIELD_EVENT: EVENT_IMPLAUSIBLE_VALUE}
        self.warned = False

    def judge(self, values, plan):
        """Judge this cycle's ``values``; return False when there was nothing to judge yet.

        A reading of exactly 0 is left for a later cycle, because a 32-bit value of 0
        reads 0 in either word order. After the warning, and for a plan without the
        field, every call returns True at once.
        """
        if self.warned or FIELD not in values:
            return True
        power = values[FIELD]
        if not power:
            return False  # None (not read) or 0
        implausible = implausible_battery_power(power, dc_power_kw(values),
                                                reported_max_power_kw(values),
                                                self.warn_levels_kw)
        if implausible is not None:
            self._log(implausible, feeding_points(plan, FIELD))
            self.warned = True
        return True

    def _log(self, implausible, points):
        logger.warning(
            "%s: battery_power_kw reads %g kW, %s: the word order, type or scale of point %s "
            "in profile %s is probably wrong (a 32-bit value whose device sends the low word "
            "first reads about 65,536 times too large). Compare the point with the "
            "manufacturer's register list; for such a device, set \"order\": \"CDAB\" on the "
            "point in a copy of the profile and point DRIVER_PROFILE_PATH at the copy. "
            "Logged once per run; `bessai check` shows the same warning",
            self.device_name, implausible.power_kw, self._reference_text(implausible),
            ", ".join(points) or "none", self.profile_name, extra=self.extra)

    def _reference_text(self, implausible):
        """Return the reference the reading exceeds, as the middle of the log line."""
        reference_kw = round(implausible.reference_kw, 2)
        if implausible.reference == SETTINGS_MAX:
            return (f"more than {reference_kw:g} kW, the largest battery rated power the "
                    f"settings accept")
        sources = {
            DC_POWER: "battery_voltage_v times battery_current_a",
            REPORTED_MAX: "the maximum charge or discharge power the device reports",
            WARN_LEVEL: "the battery power warning level ("
                        + ", ".join(name for name, _size in self.warn_levels_kw) + ")",
        }
        return f"more than ten times {sources[implausible.reference]} ({reference_kw:g} kW)"


def feeding_points(plan, field):
    """Return the names of the plan's points that feed ``field``, directly or as terms."""
    names = [point.name for point in plan.points if point.field == field]
    for derived in plan.profile.derived:
        if derived.field == field:
            names.extend(term.point for term in derived.terms)
    return names
