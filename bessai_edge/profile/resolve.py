"""Turn a profile's point definitions into resolved points with unit id, address and type.

Register points are resolved from the profile alone. SunSpec points need the model map
of their unit: the first listed model found on the device gives the address, type,
unit and scale-factor point of the named model point. A point that cannot be read is
kept, so that the table and the canonical fields keep one layout. Its status is
``role_off`` when the settings switch its role off, else ``absent`` (its model or point
missing on the device).
"""

import dataclasses
import logging

from bessai_edge.errors import ProfileError
from bessai_edge.i18n import _
from bessai_edge.profile import sunspec_models
from bessai_edge.profile.fields import FUNCTION_NAMES, MAIN_ROLE
from bessai_edge.profile.sunspec import ModelMap

logger = logging.getLogger(__name__)

HOLDING = 3
READABLE = "ok"
ABSENT = "absent"            # model/point not on the device, or its scale factor unreadable
ROLE_OFF = "role_off"        # role switched off in the settings (MODBUS_UNIT_<ROLE>=off)
ILLEGAL = "illegal"          # the device rejected its addresses with exception 2


@dataclasses.dataclass
class ResolvedPoint:
    """A point ready for planning; ``index`` and ``block`` are set by the read plan."""

    name: str
    description: str
    field: str | None
    field_scale: float
    unit_id: int | None
    function: int
    address: int | None
    type: str
    order: str
    length: int
    scale: float
    offset: float
    unit: str
    sentinels: tuple
    default_sentinel: bool
    access: str
    role: str
    sf: int = -1                  # index of the scale-factor point in the point list
    sf_apart: bool = False        # scale factor read by another request (see planner)
    model_id: int | None = None
    status: str = READABLE
    index: int = 0
    block: int = 0

    @property
    def function_name(self):
        return FUNCTION_NAMES[self.function]

    @property
    def readable(self):
        return self.status == READABLE

    def as_dict(self):
        """Return the point's identity for ``bessai check --json`` and documentation."""
        return {
            "name": self.name,
            "field": self.field,
            "unit_id": self.unit_id,
            "function": self.function_name,
            "address": self.address,
            "type": self.type,
            "registers": self.length,
            "order": self.order,
            "unit": self.unit,
            "model": self.model_id,
            "access": self.access,
            "description": self.description,
        }


def normalize_model_maps(model_map):
    """Return unit id -> ModelMap from None, one ModelMap or such a dict."""
    if model_map is None:
        return {}
    if isinstance(model_map, ModelMap):
        return {model_map.unit_id: model_map}
    if isinstance(model_map, dict):
        return dict(model_map)
    raise TypeError(f"model_map must be a ModelMap or a dict of them, not {type(model_map)}")


def resolve_points(profile, units, maps):
    """Return the resolved points of a profile, profile points first, in a stable order."""
    resolver = _Resolver(profile, units, maps)
    for point in profile.points:
        resolver.add_profile_point(point)
    if profile.all_sunspec_models:
        resolver.add_all_models(units[MAIN_ROLE])
    resolver.link_scale_factors()
    return resolver.points


class _Resolver:
    def __init__(self, profile, units, maps):
        self.profile = profile
        self.units = units
        self.maps = maps
        self.points = []
        self.by_name = {}
        self.sf_names = {}          # point index -> name of its scale factor point
        self.sunssf_at = {}         # (unit, address) -> index of a sunssf point there

    def append(self, point, sf_name=None):
        if point.name in self.by_name:
            return self.by_name[point.name]
        index = len(self.points)
        self.points.append(point)
        self.by_name[point.name] = index
        if point.type == "sunssf" and point.readable:
            self.sunssf_at.setdefault((point.unit_id, point.address), index)
        if sf_name is not None:
            self.sf_names[index] = sf_name
        return index

    def add_profile_point(self, point):
        role = point.unit_role or MAIN_ROLE
        unit = self.profile.point_unit(point, self.units)
        if not point.is_sunspec:
            resolved = ResolvedPoint(
                name=point.name, description=point.description, field=point.field,
                field_scale=point.field_scale, unit_id=unit, function=point.function,
                address=point.address, type=point.type, order=point.order,
                length=point.registers, scale=point.scale, offset=point.offset,
                unit=point.unit, sentinels=point.not_available,
                default_sentinel=point.default_not_available, access=point.access,
                role=role, status=READABLE if unit is not None else ROLE_OFF)
            self.append(resolved, point.scale_factor)
            return
        model_map = self.maps.get(unit)
        entry = model_map.find(point.model) if model_map is not None else None
        model_point = _find_model_point(entry, point.model_point) if entry else None
        if model_point is None:
            self.append(self._absent_sunspec_point(point, unit, role))
            return
        self._add_sunspec_point(point.name, entry, model_point, unit, role, point)

    def _absent_sunspec_point(self, point, unit, role):
        # Type and length come from the first listed model, so the table keeps its layout.
        model_point = _definition_point(point.model[0], point.model_point)
        return ResolvedPoint(
            name=point.name, description=point.description or model_point.description,
            field=point.field, field_scale=point.field_scale, unit_id=unit, function=HOLDING,
            address=None, type=model_point.type, order="ABCD", length=model_point.size,
            scale=point.scale, offset=point.offset, unit=point.unit or model_point.units,
            sentinels=(), default_sentinel=True, access=point.access, role=role,
            model_id=None, status=ABSENT if unit is not None else ROLE_OFF)

    def _add_sunspec_point(self, name, entry, model_point, unit, role, point=None):
        scale = point.scale if point else 1.0
        if model_point.sf_value is not None:
            scale *= 10.0 ** model_point.sf_value
        resolved = ResolvedPoint(
            name=name,
            description=(point.description if point and point.description
                         else model_point.description),
            field=point.field if point else None,
            field_scale=point.field_scale if point else 1.0,
            unit_id=unit, function=HOLDING, address=entry.address + model_point.offset,
            type=model_point.type, order="ABCD", length=model_point.size, scale=scale,
            offset=point.offset if point else 0.0,
            unit=(point.unit if point and point.unit else model_point.units),
            sentinels=(tuple(point.not_available) if point else ()) + model_point.sentinels,
            default_sentinel=model_point.default_not_available and (
                point.default_not_available if point else True),
            access=point.access if point else model_point.access,
            role=role, model_id=entry.model_id)
        sf_name = None
        if model_point.sf is not None:
            sf_name = self._scale_factor_point(entry, model_point.sf, unit, role)
        return self.append(resolved, sf_name)

    def _scale_factor_point(self, entry, sf_path, unit, role):
        """Return the name of the sunssf point at ``sf_path``, adding it when needed."""
        sf_point = _find_model_point(entry, sf_path)
        address = entry.address + sf_point.offset
        existing = self.sunssf_at.get((unit, address))
        if existing is not None:
            return self.points[existing].name
        name = f"{self._model_prefix(entry, unit)}.{sf_path}"
        self._add_sunspec_point(name, entry, sf_point, unit, role)
        return name

    def _model_prefix(self, entry, unit):
        """Return ``m<id>`` for the first model of an id on a unit, ``m<id>_<n>`` after."""
        same = [other for other in self.maps[unit].models if other.model_id == entry.model_id]
        number = same.index(entry) + 1
        return f"m{entry.model_id}" if number == 1 else f"m{entry.model_id}_{number}"

    def add_all_models(self, unit):
        model_map = self.maps.get(unit)
        if model_map is None:
            return
        for entry in model_map.models:
            if sunspec_models.load_definition(entry.model_id) is None:
                logger.info("unit %d: SunSpec model %d at %d has no bundled definition; "
                            "not read", unit, entry.model_id, entry.address)
                continue
            prefix = self._model_prefix(entry, unit)
            for model_point in entry.layout():
                if model_point.path in ("ID", "L"):
                    continue
                name = f"{prefix}.{model_point.path}"
                if name not in self.by_name:
                    self._add_sunspec_point(name, entry, model_point, unit, MAIN_ROLE)

    def link_scale_factors(self):
        for index, sf_name in self.sf_names.items():
            target = self.by_name.get(sf_name)
            if target is None:
                raise ProfileError(_(
                    "{path}: point {name!r}: scale factor point {sf!r} not found"
                ).format(path=self.profile.path, name=self.points[index].name, sf=sf_name))
            point = self.points[index]
            point.sf = target
            if not self.points[target].readable and point.readable:
                point.status = ABSENT


def _find_model_point(entry, path):
    for model_point in entry.layout():
        if model_point.path == path:
            return model_point
    return None


def _definition_point(model_id, path):
    """Return the ModelPoint of ``path`` in a model laid out with one group instance."""
    wanted = _strip_instances(path)
    length = sunspec_models.body_length(model_id)
    for model_point in sunspec_models.layout(model_id, length, count_of=lambda path, offset: 1):
        if _strip_instances(model_point.path) == wanted:
            return model_point
    raise ProfileError(_("SunSpec model {model} has no point {path!r}").format(
        model=model_id, path=path))


def _strip_instances(path):
    parts = []
    for segment in path.split("."):
        parts.append(segment.split("[", 1)[0])
    return ".".join(parts)
