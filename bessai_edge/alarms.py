"""Default safety limits and their settings.

Each limit watches one canonical field with four levels (low trip, low warn, high warn,
high trip), a hysteresis in the field's unit, a debounce in cycles and a staleness
check. The compiled core evaluates them (``core.LimitTable``). This module defines
which limits exist, reads their settings and builds the table for one device's plan.

Alarm names are ``<field>:<level>``, e.g. ``soc_pct:low_warn`` or ``battery_temp_c:stale``.
"""

import dataclasses
import functools
import math

from bessai_edge import envfile
from bessai_edge.i18n import _

LEVELS = ("LOW_TRIP", "LOW_WARN", "HIGH_WARN", "HIGH_TRIP")
OFF_WORDS = ("off", "none")


@dataclasses.dataclass(frozen=True)
class LimitLevels:
    """One limit: the field it watches and its levels (NaN for a level that is off)."""

    setting: str   # the middle of its variable names: LIMIT_<setting>_LOW_WARN
    field: str     # canonical field, e.g. soc_pct
    low_trip: float
    low_warn: float
    high_warn: float
    high_trip: float
    hysteresis: float

    def enabled(self):
        return any(not math.isnan(level) for level in self.levels())

    def levels(self):
        return (self.low_trip, self.low_warn, self.high_warn, self.high_trip)


@dataclasses.dataclass(frozen=True)
class LimitSettings:
    """Every limit, with the debounce and staleness shared by all of them."""

    limits: tuple          # LimitLevels
    debounce_cycles: int
    stale_cycles: int      # scan periods without a good value before "stale"; 0: never
    # (LimitLevels.setting, its LIMIT_<setting>_* variables set to other than the default)
    changed: tuple = ()


_OFF = math.nan

# Defaults: (setting, field, low_trip, low_warn, high_warn, high_trip, hysteresis).
# SOC and temperature follow the usual operating window of lithium-ion storage: the BMS
# protects the cells itself, so these levels warn before it has to. Battery power and
# grid frequency levels are derived from BATTERY_RATED_POWER_KW and
# GRID_NOMINAL_FREQUENCY_HZ in ``read_limit_settings``.
_FIXED_DEFAULTS = (
    ("SOC", "soc_pct", 5.0, 10.0, 98.0, _OFF, 1.0),
    ("BATTERY_TEMP", "battery_temp_c", -10.0, 0.0, 45.0, 55.0, 2.0),
)
POWER_WARN_FRACTION = 1.0   # warn at the rated power, charging or discharging
POWER_TRIP_FRACTION = 1.1   # trip 10 % above it
FREQUENCY_WARN_HZ = 0.5     # deviation from nominal that warns
FREQUENCY_TRIP_HZ = 1.5     # deviation that trips: 48.5 and 51.5 Hz on a 50 Hz grid
NOMINAL_FREQUENCIES_HZ = (50.0, 60.0)
MAX_POWER_KW = 100000.0     # the largest BATTERY_RATED_POWER_KW
# The largest battery power level: the trip level derived from the largest rated power.
MAX_POWER_LEVEL_KW = MAX_POWER_KW * POWER_TRIP_FRACTION

# Levels that make sense, by setting. A level outside them is a typo
# (LIMIT_SOC_HIGH_WARN=980 for 98.0) or a value in another unit (Fahrenheit), because
# lithium-ion cells are far past their safe range at 90 C.
_LEVEL_RANGES = {"SOC": (0.0, 100.0), "BATTERY_TEMP": (-50.0, 90.0)}
FREQUENCY_LEVEL_SPAN_HZ = 5.0  # grid frequency levels lie this close to the nominal
# The largest hysteresis that still lets an alarm clear near its level.
_HYSTERESIS_MAXIMA = {"SOC": 20, "BATTERY_TEMP": 20, "GRID_FREQUENCY": 1}

GLOBAL_SETTING_NAMES = ("LIMIT_DEBOUNCE_CYCLES", "STALE_AFTER_S", "BATTERY_RATED_POWER_KW",
                        "GRID_NOMINAL_FREQUENCY_HZ")
_LIMIT_SETTINGS = ("SOC", "BATTERY_TEMP", "BATTERY_POWER", "GRID_FREQUENCY")
SETTING_NAMES = frozenset(
    GLOBAL_SETTING_NAMES
    + tuple(f"LIMIT_{limit}_{level}" for limit in _LIMIT_SETTINGS for level in LEVELS)
    + tuple(f"LIMIT_{limit}_HYSTERESIS" for limit in _LIMIT_SETTINGS))


def default_limits(rated_power_kw, nominal_frequency_hz):
    """Return the default LimitLevels; battery power is off without a rated power."""
    limits = [LimitLevels(*row) for row in _FIXED_DEFAULTS]
    if rated_power_kw is None:
        limits.append(LimitLevels("BATTERY_POWER", "battery_power_kw", _OFF, _OFF, _OFF, _OFF,
                                  0.0))
    else:
        warn, trip = rated_power_kw * POWER_WARN_FRACTION, rated_power_kw * POWER_TRIP_FRACTION
        limits.append(LimitLevels("BATTERY_POWER", "battery_power_kw", -trip, -warn, warn, trip,
                                  0.02 * rated_power_kw))
    nominal = nominal_frequency_hz
    limits.append(LimitLevels(
        "GRID_FREQUENCY", "grid_frequency_hz", nominal - FREQUENCY_TRIP_HZ,
        nominal - FREQUENCY_WARN_HZ, nominal + FREQUENCY_WARN_HZ, nominal + FREQUENCY_TRIP_HZ,
        0.05))
    return limits


def read_limit_settings(reader, scan_interval_s):
    """Read the limit variables with an ``EnvReader``; problems go to the reader."""
    rated = None
    written = reader.raw("BATTERY_RATED_POWER_KW")
    if written and written.lower() not in OFF_WORDS:
        rated = envfile.parse_decimal(written)
        if not 0.1 <= rated <= MAX_POWER_KW:
            reader.invalid("BATTERY_RATED_POWER_KW", written, _(
                "expected a number from 0.1 to 100000 (kW), or off")
                + envfile.number_hint("BATTERY_RATED_POWER_KW", written))
            rated = None
    nominal = _read_nominal_frequency(reader)
    defaults = default_limits(rated, nominal)
    limits = tuple(_read_levels(reader, default, nominal) for default in defaults)
    debounce = reader.integer("LIMIT_DEBOUNCE_CYCLES", 3, minimum=1, maximum=1000)
    stale_after_s = _read_level(reader, "STALE_AFTER_S", 10.0, _stale_problem,
                                accepted=_stale_problem(0.0))
    stale_cycles = 0
    if not math.isnan(stale_after_s):
        stale_cycles = max(1, math.ceil(stale_after_s / scan_interval_s - 1e-9))
    return LimitSettings(limits=limits, debounce_cycles=debounce, stale_cycles=stale_cycles,
                         changed=_changed_levels(defaults, limits))


def _changed_levels(defaults, limits):
    """Return ``(setting, variables)`` for the LIMIT_<setting>_* levels moved from their default.

    The installed settings file writes the defaults out, so a level equal to its
    default is no choice made for the site. A level switched off counts as unchanged.
    """
    changed = []
    for default, limit in zip(defaults, limits):
        names = [f"LIMIT_{default.setting}_{level}"
                 for level, before, after in zip(LEVELS, default.levels(), limit.levels())
                 if not math.isnan(after) and after != before]
        if limit.hysteresis is not None and limit.hysteresis != default.hysteresis and (
                limit.enabled()):
            names.append(f"LIMIT_{default.setting}_HYSTERESIS")
        if names:
            changed.append((default.setting, tuple(names)))
    return tuple(changed)


def unmapped_limits(limit_settings, fields):
    """Return ``(field, variables)`` of the limits changed by hand whose field is not in ``fields``.

    Such a limit is never checked, so ``bessai run`` and ``bessai check`` warn of it.
    """
    changed = dict(limit_settings.changed)
    return [(limit.field, changed[limit.setting]) for limit in limit_settings.limits
            if limit.setting in changed and limit.field not in fields]


def _stale_problem(seconds):
    """Return what STALE_AFTER_S accepts when ``seconds`` is not a valid value, else None."""
    if seconds > 0:
        return None
    return _("expected a positive number of seconds, or off")


def _read_nominal_frequency(reader):
    """Return GRID_NOMINAL_FREQUENCY_HZ in Hz: 50 or 60, also written as 50.0."""
    name = "GRID_NOMINAL_FREQUENCY_HZ"
    value = reader.raw(name)
    if not value:
        return NOMINAL_FREQUENCIES_HZ[0]
    number = envfile.parse_decimal(value)
    if number not in NOMINAL_FREQUENCIES_HZ:
        reader.invalid(name, value, _("expected one of {choices}").format(choices="50, 60")
                       + envfile.number_hint(name, value))
        return NOMINAL_FREQUENCIES_HZ[0]
    return number


def _read_levels(reader, default, nominal_hz):
    prefix = f"LIMIT_{default.setting}_"
    levels = [_read_level(reader, prefix + level, value,
                          functools.partial(_level_problem, default.setting, level, nominal_hz))
              for level, value in zip(LEVELS, default.levels())]
    hysteresis = reader.number(prefix + "HYSTERESIS", default.hysteresis, minimum=0,
                               maximum=_HYSTERESIS_MAXIMA.get(default.setting))
    if default.setting == "BATTERY_POWER" and hysteresis is not None:
        _check_power_hysteresis(reader, prefix, levels, hysteresis)
    _check_order(reader, prefix, levels)
    return dataclasses.replace(default, low_trip=levels[0], low_warn=levels[1],
                               high_warn=levels[2], high_trip=levels[3], hysteresis=hysteresis)


def _level_problem(setting, level, nominal_hz, number):
    """Return what is accepted when ``number`` makes no sense as ``level``, else None."""
    if setting == "SOC" and 0 < number < 1:
        return _("SOC levels are in %: write {percent:g} for {percent:g} %, not a "
                 "fraction").format(percent=number * 100)
    if setting == "GRID_FREQUENCY":
        return _frequency_level_problem(level, nominal_hz, number)
    if setting == "BATTERY_POWER":
        return _power_level_problem(level, number)
    valid_range = _LEVEL_RANGES.get(setting)
    if valid_range is None or valid_range[0] <= number <= valid_range[1]:
        return None
    accepted = _("expected a number from {minimum:g} to {maximum:g}, or off").format(
        minimum=valid_range[0], maximum=valid_range[1])
    celsius = (number - 32) / 1.8
    # Fahrenheit only when a usual warning or trip level comes out: 35 C and more.
    if setting == "BATTERY_TEMP" and 35 <= celsius <= valid_range[1]:
        accepted += _("; levels are in °C, and {value:g} °F is {celsius:.0f} °C").format(
            value=number, celsius=celsius)
    return accepted


def _power_level_problem(level, number):
    """Return the problem of a battery power level, or None: the right sign, in range.

    Battery power is positive while charging, so HIGH levels watch charge power and
    must be above 0, and LOW levels watch discharge power and must be below 0. A level
    at 0 or on the wrong side raises its alarm on an idle battery.
    """
    high = level.startswith("HIGH")
    if high and number > MAX_POWER_LEVEL_KW:
        return _("expected a number above 0 and at most {maximum:g} (kW), or off").format(
            maximum=MAX_POWER_LEVEL_KW)
    if not high and number < -MAX_POWER_LEVEL_KW:
        return _("expected a number below 0 and at least {minimum:g} (kW), or off").format(
            minimum=-MAX_POWER_LEVEL_KW)
    if high and number <= 0:
        return _("a HIGH level watches charge power, which is positive: expected a number "
                 "above 0 (kW), or off")
    if not high and number >= 0:
        return _("a LOW level watches discharge power, which is negative: expected a number "
                 "below 0 (kW), e.g. -{example:g}, or off").format(example=abs(number) or 5)
    return None


def _check_power_hysteresis(reader, prefix, levels, hysteresis):
    """Reject a battery power hysteresis that would keep an alarm from ever clearing.

    A high alarm clears below its level minus the hysteresis. With a hysteresis as large
    as the level, that needs the battery to discharge, and an idle battery keeps it.
    """
    enabled = [abs(level) for level in levels if not math.isnan(level)]
    if not enabled or hysteresis < min(enabled):
        return
    name = prefix + "HYSTERESIS"
    reader.invalid(name, reader.raw(name) or f"{hysteresis:g}", _(
        "expected a number below the smallest battery power level ({level:g} kW), so "
        "that an alarm clears before the battery power changes direction").format(
            level=min(enabled)))


def _frequency_level_problem(level, nominal_hz, number):
    """Return the problem of a grid frequency level, or None: near nominal, right side."""
    high = level.startswith("HIGH")
    if abs(number - nominal_hz) <= FREQUENCY_LEVEL_SPAN_HZ:
        if (number > nominal_hz) == high and number != nominal_hz:
            return None
        return _("a {level} level must lie {side} GRID_NOMINAL_FREQUENCY_HZ={nominal:g}, "
                 "or it raises its alarm on a healthy grid").format(
                     level=level, nominal=nominal_hz, side=_("above") if high else _("below"))
    accepted = _("expected a number from {minimum:g} to {maximum:g}, within {span:g} Hz "
                 "of GRID_NOMINAL_FREQUENCY_HZ={nominal:g}, or off").format(
                     minimum=nominal_hz - FREQUENCY_LEVEL_SPAN_HZ,
                     maximum=nominal_hz + FREQUENCY_LEVEL_SPAN_HZ,
                     span=FREQUENCY_LEVEL_SPAN_HZ, nominal=nominal_hz)
    other = next(hz for hz in NOMINAL_FREQUENCIES_HZ if hz != nominal_hz)
    if abs(number - other) <= FREQUENCY_TRIP_HZ * 2:  # near the other grid's levels
        accepted += _("; for a {other:g} Hz grid set GRID_NOMINAL_FREQUENCY_HZ={other:g}"
                      ).format(other=other)
    return accepted


def _read_level(reader, name, default, check=None, accepted=None):
    """Return the level ``name``, NaN for off; ``check(number)`` returns a problem or None.

    ``accepted`` replaces the generic text for a value that is not a finite number.
    """
    value = reader.raw(name)
    if not value:
        return default
    if value.lower() in OFF_WORDS:
        return _OFF
    number = envfile.parse_decimal(value)
    if not math.isfinite(number):
        reader.invalid(name, value, (accepted or _("expected a number, or off"))
                       + envfile.number_hint(name, value))
        # Left out of the order check, which would otherwise compare the default with
        # the other levels as if the user had written it.
        return _OFF
    problem = check(number) if check is not None else None
    if problem is not None:
        reader.invalid(name, value, problem)
        return _OFF
    return number


def _check_order(reader, prefix, levels):
    named = [(prefix + level, value) for level, value in zip(LEVELS, levels)
             if not math.isnan(value)]
    for (lower_name, lower), (upper_name, upper) in zip(named, named[1:]):
        if lower > upper:
            reader.problems.append(envfile.located(reader.environ, lower_name, _(
                "{lower_name}={lower} is above {upper_name}={upper}: the levels must rise "
                "from LOW_TRIP to HIGH_TRIP; fix one of them or set it to off").format(
                    lower_name=lower_name, lower=_level_text(reader, lower_name, lower),
                    upper_name=upper_name, upper=_level_text(reader, upper_name, upper)),
                upper_name))


def _level_text(reader, name, value):
    """Return the level as written, marked when the user left it at its default."""
    if reader.raw(name):
        return reader.raw(name)
    return _("{value:g} (default)").format(value=value)


def restorable_alarms(limit_settings, names):
    """Return the ``field:level`` names whose level ``limit_settings`` has switched on, sorted.

    These are the alarms a limit table can take from a previous run before it exists
    (a SunSpec device not discovered yet), judged from the settings alone.
    """
    enabled = set()
    for limit in limit_settings.limits:
        for level, value in zip(("low_trip", "low_warn", "high_warn", "high_trip"),
                                limit.levels()):
            if not math.isnan(value):
                enabled.add(alarm_name(limit.field, level))
        if limit_settings.stale_cycles:
            enabled.add(alarm_name(limit.field, "stale"))
    return sorted(name for name in names if name in enabled)


def battery_power_warn_levels_kw(limit_settings):
    """Return ``(variable, size in kW)`` of each battery power warning level that is on.

    The charge level (HIGH_WARN) comes first, then the discharge level (LOW_WARN).
    """
    for limit in limit_settings.limits:
        if limit.setting == "BATTERY_POWER":
            levels = (("LIMIT_BATTERY_POWER_HIGH_WARN", limit.high_warn),
                      ("LIMIT_BATTERY_POWER_LOW_WARN", limit.low_warn))
            return tuple((name, abs(level)) for name, level in levels if not math.isnan(level))
    return ()


def watched_fields(limit_settings, fields):
    """Return the fields of ``fields`` that a limit watches, in the order of the limits."""
    return [limit.field for limit in limit_settings.limits
            if limit.field in fields and (limit.enabled() or limit_settings.stale_cycles)]


def build_limit_table(limit_settings, fields):
    """Build the core's LimitTable for the limits whose field is in ``fields``.

    ``fields`` maps canonical field names to point indexes (``ReadPlan.fields``).
    Returns ``(table, watched)``: the LimitTable and the list of watched field names.
    """
    from bessai_edge import core

    specs = []
    for limit in limit_settings.limits:
        if limit.field not in fields:
            continue
        if not limit.enabled() and not limit_settings.stale_cycles:
            continue
        specs.append(core.LimitSpec(
            limit.field, fields[limit.field], limit.low_trip, limit.low_warn, limit.high_warn,
            limit.high_trip, limit.hysteresis, limit_settings.debounce_cycles,
            limit_settings.stale_cycles))
    return core.LimitTable(specs), [spec.name for spec in specs]


def alarm_name(limit_name, level):
    """Return the alarm name used in records, logs and STATUS: ``field:level``."""
    return f"{limit_name}:{level}"
