"""Serve a profile's register map with values from the battery model.

The image is laid out from the profile's own read plan, so every request the gateway
sends for that profile finds its registers. Points get the model's values, encoded by
the core's ``encode`` through each point's type, byte order, scale and offset. The
unused registers a request bridges read 0. A SunSpec profile gets a model chain
(``sunspec_layout``) that the gateway discovers like a real device's.

Points that map no field but measure a modelled quantity (the same battery on another
unit, the grid frequency at a meter) get their values from ``point_quantities``, and the
DC voltage and current of PV inputs and MPPT modules come from ``pv_inputs``.
Canonical values are converted back to the point's own unit with ``field_scale``; a
derived field (a sum of points) is put on the terms whose factor has the value's sign,
so a charge/discharge pair of unsigned registers carries a signed power correctly.
"""

import logging
import math
import time

from bessai_edge.errors import ConfigError, CoreError
from bessai_edge.i18n import _
from bessai_edge.simulator import sunspec_layout
from bessai_edge.simulator.image import RegisterImage
from bessai_edge.simulator.model import BatteryModel, SiteRating
from bessai_edge.simulator.point_quantities import add_point_quantities
from bessai_edge.simulator.pv_inputs import add_pv_input_values

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 0.2
DEFAULT_SF = -2              # two decimals, unless a value needs a larger scale factor
MAX_SF = 4
_RAW_LIMIT = {"s16": 32767, "u16": 65535, "s32": 2**31 - 1, "u32": 2**32 - 1,
              "acc32": 2**32 - 1, "s64": 2**63 - 1, "u64": 2**64 - 1, "acc64": 2**64 - 1}


def site_rating(profile):
    """Return the simulated site's sizes, with the battery voltage the profile states."""
    rating = SiteRating()
    if profile.battery_nominal_voltage_v is not None:
        rating.battery_nominal_v = profile.battery_nominal_voltage_v
    return rating


def parse_pinned(texts):
    """Parse ``NAME=VALUE`` items into a dict; raise ConfigError naming a bad item."""
    pinned = {}
    problems = []
    for text in texts:
        name, sep, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name.strip() or not math.isfinite(number):
            problems.append(_("--set {text!r} is invalid: expected POINT=NUMBER or "
                              "FIELD=NUMBER, such as soc_pct=0").format(text=text))
            continue
        pinned[name.strip()] = number
    if problems:
        raise ConfigError(problems)
    return pinned


class ProfileImage:
    """A register source for ``ModbusServer`` that simulates one profile's device."""

    def __init__(self, profile, unit_id=None, unit_ids=None, unknown_unit="exception11",
                 model=None, pinned=None, sentinels=(), prefer_float=False, clock=time.monotonic):
        self.profile = profile
        self.model = model or BatteryModel(site_rating(profile))
        self.pinned = dict(pinned or {})
        self.sentinels = set(sentinels)
        for derived in profile.derived:
            if derived.field in self.sentinels:
                self.sentinels.update(term.point for term in derived.terms)
        self.clock = clock
        self.image = RegisterImage(unknown_unit)
        self.fixed = set()           # (unit, function, address) of SunSpec headers and counts
        try:
            profile.resolve_units(unit_id, unit_ids)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        maps = None
        if profile.sunspec:
            maps = sunspec_layout.build_maps(profile, unit_id, unit_ids, prefer_float)
            for model_map in maps.values():
                self.fixed |= sunspec_layout.write_map(self.image, model_map)
        self.plan = profile.plan(unit_id=unit_id, unit_ids=unit_ids, model_map=maps)
        self.points = [(index, point) for index, point in enumerate(self.plan.points)
                       if point.readable]
        self._point_names = {point.name for point in self.plan.points}
        self._check_names()
        for request in self.plan.requests:
            table = self.image.table(request.unit_id, request.function)
            for address in range(request.address, request.address + request.count):
                table.setdefault(address, 0)
        self._started = clock()
        self._refreshed = None
        self._encode_failures = set()
        self.refresh()

    @property
    def unit_ids(self):
        return self.image.unit_ids

    def read(self, unit_id, function_code, address, count):
        """Return the words of a read, refreshed from the model at most every 0.2 s."""
        if self.clock() - self._refreshed >= REFRESH_INTERVAL_S:
            self.refresh()
        return self.image.read(unit_id, function_code, address, count)

    def refresh(self):
        """Advance the model to now and encode every point again."""
        now = self.clock()
        self._refreshed = now
        self.model.advance(now - self._started)
        values = self._point_values(self.model.values())
        scale_factors = self._scale_factors(values)
        # Points without a value go first and "not available" points last: where a profile
        # point and a model-wide point of an all-models SunSpec profile share an address,
        # a value wins over none and a --sentinel wins over a value.
        ordered = sorted(self.points, key=lambda item: (values.get(item[1].name) is not None,
                                                        self._is_sentinel(item[1])))
        for index, point in ordered:
            if (point.unit_id, point.function, point.address) in self.fixed:
                continue
            words = self._encode(index, point, values.get(point.name), scale_factors)
            if words is not None:
                self.image.set_words(point.unit_id, point.function, point.address, words)

    # -- values ------------------------------------------------------------------------

    def _point_values(self, model_values):
        """Return point name -> engineering value (or a str) for this refresh."""
        canonical = {**model_values, **{name: value for name, value in self.pinned.items()
                                     if name not in self._point_names}}
        values = {}
        for _, point in self.points:
            if point.type == "str":
                values[point.name] = _text_for(point, self.profile)
            elif point.field in canonical and point.field_scale:
                values[point.name] = canonical[point.field] / point.field_scale
        for derived in self.profile.derived:
            if derived.field in canonical:
                values.update(_split_derived(derived, canonical[derived.field]))
        for name, value in self.pinned.items():
            if name in self._point_names:
                values[name] = value
        readable = [point for _, point in self.points]
        add_point_quantities(readable, canonical, values)
        add_pv_input_values(readable, self.profile, canonical, values)
        return values

    def _scale_factors(self, values):
        """Return sunssf point index -> the scale factor that fits every value using it."""
        needed = {}
        for _, point in self.points:
            if point.sf < 0:
                continue
            value = values.get(point.name)
            exponent = DEFAULT_SF
            if isinstance(value, float | int) and value:
                limit = _RAW_LIMIT.get(point.type, 32767)
                exponent = max(exponent, math.ceil(math.log10(abs(value / point.scale) / limit)))
            needed[point.sf] = max(needed.get(point.sf, DEFAULT_SF), exponent)
        return {index: min(MAX_SF, sf) for index, sf in needed.items()}

    def _is_sentinel(self, point):
        return bool({point.name, point.field} & self.sentinels)

    def _encode(self, index, point, value, scale_factors):
        """Return the words of one point, or None to leave its registers as they are."""
        from bessai_edge import core

        if self._is_sentinel(point):
            return _not_available(core, point)
        if point.type == "sunssf":
            value = scale_factors.get(index, 0)
            return core.encode("sunssf", point.order, value)
        if value is None:
            value = 0.0
        scale = point.scale
        if point.sf >= 0:
            scale *= 10.0 ** scale_factors.get(point.sf, 0)
        try:
            if point.type == "str":
                return core.encode("str", point.order, value, length=point.length)
            return core.encode(point.type, point.order, value, scale, point.offset)
        except (CoreError, ValueError, OverflowError) as error:
            if point.name not in self._encode_failures:
                self._encode_failures.add(point.name)
                log.warning("cannot encode %s = %r as %s: %s; serving 'not available'",
                            point.name, value, point.type, error)
            return _not_available(core, point)

    def _check_names(self):
        """Reject --set and --sentinel names that are neither a point nor a field."""
        known = self._point_names | set(self.plan.fields) | set(self.model.values())
        unknown = sorted((set(self.pinned) | self.sentinels) - known)
        if unknown:
            raise ConfigError([_("{name!r} is not a point or canonical field of profile "
                                 "{profile}: see `bessai profiles show {profile}`").format(
                                     name=name, profile=self.profile.name) for name in unknown])


def _split_derived(derived, value):
    """Return point values whose weighted sum is ``value``, none of them negative."""
    if value == 0:
        return {term.point: 0.0 for term in derived.terms}
    matching = [term for term in derived.terms if term.factor * value > 0]
    result = {term.point: 0.0 for term in derived.terms}
    for term in matching:
        result[term.point] = value / (len(matching) * term.factor)
    return result


def _not_available(core, point):
    """Return the words of the point's "not available" marker: the profile's own first."""
    if point.sentinels:
        return core.encode(point.type, point.order, point.sentinels[0])
    if point.default_sentinel:
        return core.not_available_words(point.type, point.length if point.type == "str" else None,
                                        point.order)
    return None


def _text_for(point, profile):
    """Return the text of a string point (SunSpec common model names, serial numbers)."""
    texts = {"Mn": "bessai-edge", "Md": f"simulated {profile.name}", "SN": "SIM0000001",
             "Vr": "1.0", "Opt": "simulator"}
    text = texts.get(point.name.rsplit(".", 1)[-1], "SIM")
    return text[:2 * point.length]
