"""The telemetry record: one dict per device per cycle, written to the spool as an orjson line.

Layout (``RECORD_VERSION`` 1; a new key keeps the version, a changed or removed one
raises it)::

    v            1
    site         SITE_ID
    device       device name from the settings ("inverter" for a single device)
    profile      profile name, e.g. huawei_sun2000
    seq          sequence number, set by Spool.append
    time_ms      UTC wall-clock time of the cycle start, milliseconds since the epoch
    mono_s       time.monotonic() of the cycle start, seconds (meaningful within one boot)
    boot_id      /proc/sys/kernel/random/boot_id, which separates the boots that mono_s counts in
    clock_synced true while the kernel considers the wall clock synchronized by NTP, false
                 before (time_ms may then be wrong: see ``clock``), null when unknown
    cycle        cycle number since the gateway started, from 1
    cycle_ms     milliseconds from the cycle start until this record was built
    state        device state: ok, degraded (some requests failed) or down (no data:
                 no reply, or an exception to every request)
    error        the last request error of this cycle as "kind: message", or null; while
                 the link waits out its backoff and sends no request, the error that
                 brought the device down (such a record has cycle_ms near 0)
    values       canonical field -> number, or null when its quality is not ok; rounded to
                 the decimals its register's scale can resolve (see ``field_rounding``)
    quality      canonical field -> ok, not_available, comm_error or invalid
    alarms       active alarms after this cycle, "field:level", sorted
    alarm_changes  this cycle's transitions: [{"alarm": "field:level", "raised": bool}]
"""

import logging
import math
import uuid

from bessai_edge import core
from bessai_edge.i18n import _
from bessai_edge.profile.fields import FLOAT_TYPES

logger = logging.getLogger(__name__)

RECORD_VERSION = 1
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
MAX_DECIMALS = 6        # also used when a runtime SunSpec scale factor sets the step
SIGNIFICANT_DIGITS = {"f32": 7, "f64": 15}
STATES = ("ok", "degraded", "down")

# The JSON types that each key of the layout allows, by the names JSON uses.
LAYOUT_TYPES = {
    "v": ("integer",), "site": ("string",), "device": ("string",), "profile": ("string",),
    "seq": ("integer",), "time_ms": ("integer",), "mono_s": ("number",),
    "boot_id": ("string",), "clock_synced": ("boolean", "null"), "cycle": ("integer",),
    "cycle_ms": ("number",), "state": ("string",), "error": ("string", "null"),
    "values": ("object",), "quality": ("object",), "alarms": ("array",),
    "alarm_changes": ("array",),
}


def read_boot_id(path=BOOT_ID_PATH):
    """Return the kernel's boot id, or a random id for this process when it is unreadable."""
    try:
        with open(path, encoding="ascii") as stream:
            return stream.read().strip()
    except OSError as error:
        boot_id = str(uuid.uuid4())
        logger.warning("cannot read %s (%s): using %s as boot id for this run",
                       path, error, boot_id)
        return boot_id


def layout_problem(record):
    """Return what breaks the layout of ``RECORD_VERSION`` in a parsed record, or None.

    Every key of the layout must be there with a value of its JSON type, and ``v`` and
    ``state`` must have a value of the layout. Other keys are allowed, because a new key
    keeps the version. The values inside ``values``, ``quality`` and the lists are not
    checked.
    """
    for key, allowed in LAYOUT_TYPES.items():
        if key not in record:
            return _("key {key} is missing").format(key=key)
        found = _json_type(record[key])
        if found not in allowed and not (found == "integer" and "number" in allowed):
            return _("key {key} is a JSON {found}, expected {expected}").format(
                key=key, found=found, expected=_expected_types(allowed))
    if record["v"] != RECORD_VERSION:
        return _("key v is {value}, expected {version}").format(
            value=record["v"], version=RECORD_VERSION)
    if record["state"] not in STATES:
        return _("key state is {value!r}, expected one of {states}").format(
            value=record["state"], states=", ".join(STATES))
    return None


def _expected_types(allowed):
    if len(allowed) == 1:
        return allowed[0]
    return _("{first} or {second}").format(first=allowed[0], second=allowed[1])


def _json_type(value):
    """Return the JSON type name of a value that orjson parsed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class RecordFactory:
    """Builds the records of one device; the fields that never change are set once."""

    def __init__(self, site, device, profile, boot_id):
        self.site = site
        self.device = device
        self.profile = profile
        self.boot_id = boot_id

    def build(self, *, cycle, wall_ms, monotonic_s, cycle_ms, state, error, values, quality,
              alarms, alarm_changes, clock_synced=None):
        """Return one record dict in the layout of ``RECORD_VERSION``."""
        return {
            "v": RECORD_VERSION,
            "site": self.site,
            "device": self.device,
            "profile": self.profile,
            "seq": None,
            "time_ms": wall_ms,
            "mono_s": core.round_places(monotonic_s, 6),
            "boot_id": self.boot_id,
            "clock_synced": clock_synced,
            "cycle": cycle,
            "cycle_ms": core.round_places(cycle_ms, 3),
            "state": state,
            "error": error,
            "values": values,
            "quality": quality,
            "alarms": alarms,
            "alarm_changes": [{"alarm": name, "raised": raised} for name, raised in alarm_changes],
        }


# -- rounding ------------------------------------------------------------------------
# A value decoded as raw * 0.1 carries binary noise (80.80000000000001). The plan knows
# each field's step (its scale), so the decimals are worked out once per plan and each
# cycle only calls round().


def step_decimals(step):
    """Return the decimals that write every multiple of ``step`` exactly, at most MAX_DECIMALS.

    ``step_decimals(0.1) == 1``, ``step_decimals(0.25) == 2``, ``step_decimals(1000) == 0``.
    """
    step = abs(step)
    if step == 0 or not math.isfinite(step):
        return 0
    for places in range(MAX_DECIMALS + 1):
        if abs(round(step, places) - step) <= step * 1e-9:
            return places
    return MAX_DECIMALS


def entry_rounding(type_name, scale, offset, scaled_at_run_time):
    """Return ("places", n), ("significant", n) or None (exact already) for one decoded entry."""
    if type_name in FLOAT_TYPES:
        if type_name == "f64" and scale == 1 and offset == 0:
            return None
        return ("significant", SIGNIFICANT_DIGITS[type_name])
    if scaled_at_run_time:
        return ("places", MAX_DECIMALS)
    places = max(step_decimals(scale), step_decimals(offset))
    return ("places", places) if places else None


def _combine(roundings):
    """Return the rounding of a sum of terms: the finest places, the fewest significant digits."""
    roundings = [rounding for rounding in roundings if rounding is not None]
    significant = [digits for kind, digits in roundings if kind == "significant"]
    if significant:
        return ("significant", min(significant))
    return ("places", max(digits for _kind, digits in roundings)) if roundings else None


def field_rounding(plan):
    """Return ``(places, significant)``: tuples of (field, digits) for ``round_values``.

    Fields that decode exactly (integer steps, f64 with no scale) are left out. Works on
    the plan's points and decode table layout (see ``profile.plan.PlanTable``).
    """
    points = plan.points
    by_entry = {}
    entry = len(points)
    for point in points:
        if point.field:
            by_entry[entry] = entry_rounding(
                point.type, point.scale * point.field_scale, point.offset * point.field_scale,
                point.sf >= 0)
            entry += 1
    for slot, terms, _ignore in plan.derived:
        by_entry[slot] = _combine(
            entry_rounding(points[index].type, points[index].scale * factor,
                           points[index].offset * factor, points[index].sf >= 0)
            for index, factor in terms)
    places, significant = [], []
    for field, slot in plan.fields.items():
        rounding = by_entry.get(slot)
        if rounding is not None:
            (places if rounding[0] == "places" else significant).append((field, rounding[1]))
    return tuple(places), tuple(significant)


def round_values(values, rounding):
    """Round the numbers of ``values`` (field -> number or None) in place; return it.

    ``rounding`` comes from ``field_rounding``. Fields it does not name are left as they
    are, and so is a value that rounding would carry past the largest float.
    """
    places, significant = rounding
    for field, digits in places:
        value = values.get(field)
        if value is not None:
            values[field] = round(value, digits) + 0.0   # + 0.0 turns -0.0 into 0.0
    for field, digits in significant:
        value = values.get(field)
        if value and math.isfinite(value):
            try:
                values[field] = round(value, digits - 1 - math.floor(math.log10(abs(value))))
            except OverflowError:
                pass  # 1.79e308 to 15 digits rounds past the largest float: keep it
    return values
