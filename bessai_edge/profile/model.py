"""The validated profile as Python objects. ``loader.load_profile`` builds them."""

import dataclasses

from bessai_edge.errors import ProfileError
from bessai_edge.i18n import _
from bessai_edge.profile.fields import FUNCTION_NAMES, MAIN_ROLE, TYPE_REGISTERS


@dataclasses.dataclass(frozen=True)
class Document:
    """A manufacturer document the profile's addresses were checked against."""

    title: str
    version: str
    publisher: str
    url: str = ""

    def citation(self):
        return f"{self.publisher}: {self.title}, {self.version}"


@dataclasses.dataclass(frozen=True)
class UnitRole:
    """A named unit id of a multi-unit device, e.g. Victron's VE.Bus inverter/charger."""

    name: str
    unit_id: int
    description: str


@dataclasses.dataclass(frozen=True)
class Hole:
    """Registers a device rejects; no request may read them.

    ``function`` is a function code, or None for both; ``unit_role`` a role name, or
    None for every unit. ``first`` and ``last`` are inclusive.
    """

    first: int
    last: int
    function: int | None
    unit_role: str | None
    reason: str


@dataclasses.dataclass(frozen=True)
class PointDef:
    """One point as the profile defines it.

    A register point has ``address`` and ``type``. A SunSpec point has ``model`` (the
    acceptable model ids, in order of preference) and ``model_point`` (its path in the
    model definition); it gets its address and type after discovery.
    """

    name: str
    description: str
    field: str | None = None
    field_scale: float = 1.0
    function: int = 3
    address: int | None = None
    type: str | None = None
    order: str = "ABCD"
    length: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    scale_factor: str | None = None
    unit: str = ""
    unit_id: int | None = None
    unit_role: str | None = None
    not_available: tuple = ()
    default_not_available: bool = True
    access: str = "ro"
    model: tuple | None = None
    model_point: str | None = None

    @property
    def is_sunspec(self):
        return self.model is not None

    @property
    def registers(self):
        """Registers the point reads (register points only)."""
        return self.length if self.length is not None else TYPE_REGISTERS[self.type]

    @property
    def function_name(self):
        return FUNCTION_NAMES[self.function]


@dataclasses.dataclass(frozen=True)
class DerivedTerm:
    point: str
    factor: float


@dataclasses.dataclass(frozen=True)
class Derived:
    """A canonical field computed as the sum of points times factors.

    With ``ignore_not_available`` a term whose point is not available counts as 0 as
    long as another term is good (a PV inverter that is not installed, say).
    """

    field: str
    description: str
    terms: tuple
    ignore_not_available: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class Profile:
    """A validated device profile. ``plan()`` resolves it into a ReadPlan."""

    name: str
    title: str
    path: str
    documents: tuple
    unit_id: int
    port: int
    max_registers: int
    max_gap: int
    quiet_after_connect_s: float
    min_request_interval_s: float
    request_timeout_s: float
    holes: tuple
    unit_roles: dict
    unit_id_note: str
    notes: tuple
    points: tuple
    derived: tuple
    all_sunspec_models: bool = False
    battery_nominal_voltage_v: float | None = None   # None: not stated by the profile

    @property
    def document(self):
        """The documents the profile follows, as one line."""
        return "; ".join(document.citation() for document in self.documents)

    @property
    def sunspec(self):
        """True when points are resolved by SunSpec model and offset after discovery."""
        return self.all_sunspec_models or any(point.is_sunspec for point in self.points)

    def role_names(self):
        """Return the unit roles ``resolve_units`` accepts, in sorted order."""
        return sorted({MAIN_ROLE, *(role.name for role in self.unit_roles.values())})

    def role_label(self, role):
        """Return the name of ``role`` for messages.

        A profile names the parts of a device by the prefix of its point names, such as
        ``system:`` for the main role of victron_multiplus. The main role gets that prefix
        when all its points share one; any other role, or a main role without one, keeps
        its own name.
        """
        if role != MAIN_ROLE:
            return role
        prefixes = {point.name.partition(":")[0] if ":" in point.name else None
                    for point in self.points if (point.unit_role or MAIN_ROLE) == MAIN_ROLE}
        if len(prefixes) == 1 and None not in prefixes:
            return prefixes.pop()
        return role

    def resolve_units(self, unit_id=None, unit_ids=None):
        """Return role name -> unit id, applying the overrides of the settings.

        ``unit_id`` replaces the main unit id (``MODBUS_SLAVE_ID``). ``unit_ids`` maps
        role names to unit ids (``MODBUS_UNIT_<ROLE>``), where None leaves the role's
        points unread. Raises ProfileError for a role the profile lacks.
        """
        units = {MAIN_ROLE: self.unit_id if unit_id is None else unit_id}
        for role in self.unit_roles.values():
            units[role.name] = role.unit_id
        for role, value in (unit_ids or {}).items():
            role = role.lower()
            if role not in units or role == MAIN_ROLE:
                # The main role's unit id is MODBUS_SLAVE_ID, not a MODBUS_UNIT_ setting.
                raise self._unknown_role_error(role)
            units[role] = value
        return units

    def _unknown_role_error(self, role):
        known = [name for name in self.role_names() if name != MAIN_ROLE]
        if not known:
            return ProfileError(_(
                "profile {profile} has no unit roles, so MODBUS_UNIT_{variable} does not "
                "apply: remove the setting, and set the device's unit id with "
                "MODBUS_SLAVE_ID").format(profile=self.name, variable=role.upper()))
        return ProfileError(_(
            "profile {profile} has no unit role {role!r} (MODBUS_UNIT_{variable}): "
            "its roles are {known}; remove the setting or choose another profile"
        ).format(profile=self.name, role=role, variable=role.upper(), known=", ".join(known)))

    def point_unit(self, point, units):
        """Return the unit id a point is read from, or None when its role is switched off."""
        if point.unit_id is not None:
            return point.unit_id
        return units[point.unit_role or MAIN_ROLE]

    def sunspec_units(self, unit_id=None, unit_ids=None):
        """Return the unit ids whose SunSpec model map the plan needs, main unit first."""
        units = self.resolve_units(unit_id, unit_ids)
        needed = [units[MAIN_ROLE]] if self.all_sunspec_models else []
        for point in self.points:
            if point.is_sunspec:
                unit = self.point_unit(point, units)
                if unit is not None and unit not in needed:
                    needed.append(unit)
        return needed

    def plan(self, unit_id=None, unit_ids=None, model_map=None):
        """Resolve the profile into a ReadPlan (see ``bessai_edge.profile.plan``)."""
        from bessai_edge.profile.plan import build_plan

        return build_plan(self, unit_id=unit_id, unit_ids=unit_ids, model_map=model_map)
