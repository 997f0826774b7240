"""The plausibility rule for battery_power_kw, shared by ``bessai check`` and ``bessai run``.

A battery power reading is compared with the largest power it should match: the
battery's voltage times its current, the maximum charge or discharge power the device
reports, or the battery power warning levels. Without any of them, the limit is the
largest rated power the settings accept. A 32-bit value read with its words swapped
comes out about 65,536 times too large, so a factor of ten leaves room for real
readings. The callers word the outcome: check translates it, run logs English.
"""

import dataclasses

from bessai_edge.alarms import MAX_POWER_KW

# How far a power may lie from its reference before the two are taken for different
# units or a misread value (W for kW, MW for kW, swapped words).
RATED_POWER_RATIO = 10.0
# The smallest reference for a battery power reading, so that a battery at rest
# (voltage times a current near 0) does not make a reading of a few kW look wrong.
PLAUSIBLE_POWER_FLOOR_KW = 1.0

# Kinds of reference in ImplausiblePower.reference.
DC_POWER = "dc_power"            # battery_voltage_v times battery_current_a
REPORTED_MAX = "reported_max"    # the larger of battery_max_charge_kw, battery_max_discharge_kw
WARN_LEVEL = "warn_level"        # the largest battery power warning level
SETTINGS_MAX = "settings_max"    # MAX_POWER_KW, the largest BATTERY_RATED_POWER_KW


@dataclasses.dataclass(frozen=True)
class ImplausiblePower:
    """A battery power reading far above its reference, in kW."""

    power_kw: float
    reference: str        # DC_POWER, REPORTED_MAX, WARN_LEVEL or SETTINGS_MAX
    reference_kw: float


def dc_power_kw(fields):
    """Return battery_voltage_v times battery_current_a in kW, or None without both."""
    voltage, current = fields.get("battery_voltage_v"), fields.get("battery_current_a")
    if voltage is None or current is None:
        return None
    return voltage * current / 1000.0


def reported_max_power_kw(fields):
    """Return the larger of the maximum charge and discharge powers the device reports.

    Returns None when the device reports neither, or only zeros.
    """
    reported = [abs(value) for value in (fields.get("battery_max_charge_kw"),
                                         fields.get("battery_max_discharge_kw")) if value]
    return max(reported) if reported else None


def implausible_battery_power(power_kw, dc_kw=None, max_kw=None, warn_levels_kw=()):
    """Return the ImplausiblePower for ``power_kw``, or None when the reading is plausible.

    ``dc_kw`` is the battery's voltage times its current, ``max_kw`` the maximum
    charge or discharge power the device reports, and ``warn_levels_kw`` contains
    ``(variable, size in kW)`` per battery power warning level that is on. The
    largest of them is the reference.
    """
    if power_kw is None:
        return None
    references = []
    if dc_kw is not None:
        references.append((abs(dc_kw), DC_POWER))
    if max_kw is not None:
        references.append((max_kw, REPORTED_MAX))
    if warn_levels_kw:
        references.append((max(size for _name, size in warn_levels_kw), WARN_LEVEL))
    if references:
        reference_kw, reference = max(references, key=lambda item: item[0])
        if abs(power_kw) <= max(reference_kw, PLAUSIBLE_POWER_FLOOR_KW) * RATED_POWER_RATIO:
            return None
        return ImplausiblePower(power_kw, reference, reference_kw)
    if abs(power_kw) > MAX_POWER_KW:
        return ImplausiblePower(power_kw, SETTINGS_MAX, MAX_POWER_KW)
    return None
