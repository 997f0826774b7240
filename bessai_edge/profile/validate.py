"""Hand-written validation of a parsed profile, in step with registry/profile.schema.json.

``validate(data, path)`` returns every problem as one line that names the file, the
place (device, a point by name, a derived field), the key, the value and what is
accepted. The JSON Schema states the same rules for editors and other tools. A test
checks that every bundled profile passes both and that the rejection cases the schema
can express fail both.
"""

import difflib
import json
import math

from bessai_edge.i18n import _, ngettext
from bessai_edge.profile import sunspec_models
from bessai_edge.profile.fields import (
    ACCESS, CANONICAL_FIELDS, FLOAT_TYPES, FUNCTIONS, MAIN_ROLE, MAX_ADDRESS,
    MAX_REQUEST_REGISTERS, MAX_UNIT_ID, NAME, ORDERS, ROLE, SIGNED_FIELDS, STRING_ORDERS,
    TYPE_REGISTERS, TYPES, UNIT_CONVERSIONS, integer_range, is_canonical_field)

CODE_TYPES = ("enum16", "bitfield16", "bitfield32")  # values are codes or bits, not amounts
FAHRENHEIT_UNITS = ("degf", "°f", "deg f", "fahrenheit")  # compared in lower case
TOP_KEYS = ("$schema", "name", "title", "documents", "device", "notes", "points", "derived",
            "all_sunspec_models")
TOP_REQUIRED = ("name", "title", "documents", "device", "points")
DOCUMENT_KEYS = ("title", "version", "publisher", "url")
DOCUMENT_REQUIRED = ("title", "version", "publisher")
DEVICE_KEYS = ("unit_id", "unit_id_note", "port", "max_registers", "max_gap",
               "quiet_after_connect_s", "min_request_interval_s", "request_timeout_s",
               "holes", "unit_roles", "battery_nominal_voltage_v")
DEVICE_REQUIRED = ("unit_id", "port", "max_registers", "max_gap", "quiet_after_connect_s",
                   "min_request_interval_s", "request_timeout_s")
ROLE_KEYS = ("unit_id", "description")
HOLE_KEYS = ("first", "last", "function", "unit_role", "reason")
HOLE_REQUIRED = ("first", "last", "reason")
COMMON_POINT_KEYS = ("name", "description", "field", "field_scale", "scale", "offset", "unit",
                     "unit_id", "unit_role", "not_available", "default_not_available", "access")
REGISTER_POINT_KEYS = COMMON_POINT_KEYS + ("function", "address", "type", "order", "length",
                                           "scale_factor")
SUNSPEC_POINT_KEYS = COMMON_POINT_KEYS + ("model", "point")
DERIVED_KEYS = ("field", "description", "sum", "ignore_not_available")
DERIVED_REQUIRED = ("field", "description", "sum")
TERM_KEYS = ("point", "factor")
MAX_SECONDS = 60.0
MAX_BATTERY_VOLTAGE_V = 1500.0   # upper limit of low-voltage DC (EU Low Voltage Directive)


TOP = "profile"  # the place of a problem with the document's top-level keys


class Problems:
    """Collects problem lines for one file.

    ``where`` is a place in the document, such as ``points[3]`` or ``device.holes[0]``
    (kept as written, like the keys), or ``TOP``, which is shown translated.
    """

    def __init__(self, path):
        self.path = path
        self.lines = []

    def invalid(self, where, key, value, accepted):
        self.lines.append(_("{path}: {where}: {key}: {value} is invalid: {accepted}").format(
            path=self.path, where=place_name(where), key=key, value=_json_text(value),
            accepted=accepted))

    def missing(self, where, key, accepted):
        self.lines.append(_("{path}: {where}: {key} is missing: {accepted}").format(
            path=self.path, where=place_name(where), key=key, accepted=accepted))

    def add(self, where, text):
        self.lines.append(f"{self.path}: {place_name(where)}: {text}")


def place_name(where):
    """Return the name of a problem's place as messages show it."""
    return _("profile") if where == TOP else where


def validate(data, path):
    """Return the problems of a parsed profile as a list of lines (empty when valid)."""
    problems = Problems(path)
    if not isinstance(data, dict):
        problems.add(TOP, _("the file holds a JSON {kind}: expected an object with the "
                                  "keys {keys}").format(kind=_json_kind(data),
                                                        keys=", ".join(TOP_REQUIRED)))
        return problems.lines
    _check_keys(problems, TOP, data, TOP_KEYS, TOP_REQUIRED)
    name = data.get("name")
    if "name" in data and not (isinstance(name, str) and ROLE.match(name)):
        problems.invalid(TOP, "name", name,
                         _("expected lower-case letters, digits and '_', starting with a letter"))
    for key in ("title",):
        if key in data and not _text(data[key]):
            problems.invalid(TOP, key, data[key], _("expected a non-empty string"))
    if "notes" in data and not (_text(data["notes"]) or _text_list(data["notes"])):
        problems.invalid(TOP, "notes", data["notes"],
                         _("expected a string or a list of strings"))
    if "all_sunspec_models" in data and not isinstance(data["all_sunspec_models"], bool):
        problems.invalid(TOP, "all_sunspec_models", data["all_sunspec_models"],
                         _("expected true or false"))
    _check_documents(problems, data.get("documents"), "documents" in data)
    roles = _check_device(problems, data.get("device"))
    points = _check_points(problems, data, roles)
    _check_derived(problems, data.get("derived"), points, "derived" in data)
    return problems.lines


def _check_documents(problems, documents, present):
    if not present:
        return
    if not isinstance(documents, list) or not documents:
        problems.invalid(TOP, "documents", documents,
                         _("expected a non-empty list of {title, version, publisher}"))
        return
    for number, document in enumerate(documents):
        where = f"documents[{number}]"
        if not isinstance(document, dict):
            problems.invalid(where, "document", document, _("expected an object"))
            continue
        _check_keys(problems, where, document, DOCUMENT_KEYS, DOCUMENT_REQUIRED)
        for key in DOCUMENT_KEYS:
            if key in document and not _text(document[key]):
                problems.invalid(where, key, document[key], _("expected a non-empty string"))


def _check_device(problems, device):
    """Check the device settings; return the declared role names."""
    if device is None:
        return {MAIN_ROLE}
    if not isinstance(device, dict):
        problems.invalid(TOP, "device", device, _("expected an object"))
        return {MAIN_ROLE}
    _check_keys(problems, "device", device, DEVICE_KEYS, DEVICE_REQUIRED)
    _check_integer(problems, "device", device, "unit_id", 0, MAX_UNIT_ID)
    _check_integer(problems, "device", device, "port", 1, 65535)
    _check_integer(problems, "device", device, "max_registers", 1, MAX_REQUEST_REGISTERS)
    _check_integer(problems, "device", device, "max_gap", 0, MAX_REQUEST_REGISTERS)
    for key in ("quiet_after_connect_s", "min_request_interval_s"):
        _check_number(problems, "device", device, key, 0.0, MAX_SECONDS)
    _check_number(problems, "device", device, "request_timeout_s", 0.0, MAX_SECONDS,
                  exclusive_minimum=True)
    if "unit_id_note" in device and not _text(device["unit_id_note"]):
        problems.invalid("device", "unit_id_note", device["unit_id_note"],
                         _("expected a non-empty string"))
    _check_battery_voltage(problems, device)

    roles = _check_roles(problems, device.get("unit_roles", {}))
    _check_holes(problems, device.get("holes", []), roles)
    return roles


def _check_roles(problems, unit_roles):
    """Check ``device.unit_roles``; return the role names, ``main`` included."""
    roles = {MAIN_ROLE}
    if not isinstance(unit_roles, dict):
        problems.invalid("device", "unit_roles", unit_roles,
                         _("expected an object of role name -> {unit_id, description}"))
        return roles
    for role, settings in unit_roles.items():
        where = f"device.unit_roles.{role}"
        if not ROLE.match(role) or role == MAIN_ROLE:
            problems.invalid("device.unit_roles", "role", role,
                             _("expected lower-case letters, digits and '_' (not 'main', which "
                             "is the device's unit_id)"))
            continue
        roles.add(role)
        if not isinstance(settings, dict):
            problems.invalid(where, "role", settings, _("expected {unit_id, description}"))
            continue
        _check_keys(problems, where, settings, ROLE_KEYS, ROLE_KEYS)
        _check_integer(problems, where, settings, "unit_id", 0, MAX_UNIT_ID)
        if "description" in settings and not _text(settings["description"]):
            problems.invalid(where, "description", settings["description"],
                             _("expected a non-empty string"))
    return roles


def _check_holes(problems, holes, roles):
    if not isinstance(holes, list):
        problems.invalid("device", "holes", holes, _("expected a list of {first, last, reason}"))
        return
    for number, hole in enumerate(holes):
        where = f"device.holes[{number}]"
        if not isinstance(hole, dict):
            problems.invalid(where, "hole", hole, _("expected {first, last, reason}"))
            continue
        _check_keys(problems, where, hole, HOLE_KEYS, HOLE_REQUIRED)
        first_ok = _check_integer(problems, where, hole, "first", 0, MAX_ADDRESS)
        last_ok = _check_integer(problems, where, hole, "last", 0, MAX_ADDRESS)
        if first_ok and last_ok and hole["first"] > hole["last"]:
            problems.invalid(where, "last", hole["last"],
                             _("expected an address of at least first ({first})").format(
                                 first=hole["first"]))
        if "function" in hole and hole["function"] not in FUNCTIONS:
            problems.invalid(where, "function", hole["function"], _one_of(FUNCTIONS))
        if "unit_role" in hole and hole["unit_role"] not in roles:
            problems.invalid(where, "unit_role", hole["unit_role"], _one_of_roles(roles))
        if "reason" in hole and not _text(hole["reason"]):
            problems.invalid(where, "reason", hole["reason"], _("expected a non-empty string"))


def _check_points(problems, data, roles):
    """Check every point; return name -> point dict of the points with a valid name."""
    points = data.get("points")
    if points is None:
        return {}
    if not isinstance(points, list) or (not points and not data.get("all_sunspec_models")):
        problems.invalid(TOP, "points", points, _("expected a non-empty list of points"))
        return {}
    by_name = {}
    numbers = {}        # name -> position in the points list
    fields = {}
    for number, point in enumerate(points):
        if not isinstance(point, dict):
            problems.invalid(f"points[{number}]", "point", point, _("expected an object"))
            continue
        name = point.get("name")
        where = point_place(name) if isinstance(name, str) else f"points[{number}]"
        if isinstance(name, str) and name in by_name:
            where = f"points[{number}]"
            problems.invalid(where, "name", name,
                             _("points[{first}] already has this name; rename one of the "
                               "two, because each point needs its own name").format(
                                   first=numbers[name]))
        elif isinstance(name, str):
            by_name[name] = point
            numbers[name] = number
        _check_point(problems, where, point, roles)
        field = point.get("field")
        if isinstance(field, str):
            if field in fields:
                problems.invalid(where, "field", field,
                                 _("expected a canonical field no other point maps; "
                                   "{owner} already maps {field}").format(
                                       owner=fields[field], field=field))
            fields[field] = where
    for name, point in by_name.items():
        _check_scale_factor(problems, point_place(name), point, by_name)
    _check_holes_against_points(problems, data.get("device"), by_name)
    _check_overlapping_points(problems, by_name)
    return by_name


def _check_point(problems, where, point, roles):
    sunspec = "model" in point or "point" in point
    allowed = SUNSPEC_POINT_KEYS if sunspec else REGISTER_POINT_KEYS
    required = ("name", "model", "point") if sunspec else ("name", "description", "address", "type")
    _check_keys(problems, where, point, allowed, required)
    if "name" in point and not (isinstance(point["name"], str) and NAME.match(point["name"])):
        problems.invalid(where, "name", point["name"],
                         _("expected 1 to 100 letters, digits or _ . / : [ ] # -"))
    if "description" in point and not _text(point["description"]):
        problems.invalid(where, "description", point["description"],
                         _("expected the manufacturer's description as a non-empty string"))
    _check_field(problems, where, point)
    for key in ("scale", "field_scale"):
        if key in point and not _nonzero_number(point[key]):
            problems.invalid(where, key, point[key], _("expected a finite number other than 0"))
    if isinstance(point.get("field"), str):
        _check_conversion(problems, where, "field_scale", point.get("field_scale"),
                          point.get("unit"), point["field"])
        _check_sign_flip(problems, where, point)
    if "offset" in point and not _finite_number(point["offset"]):
        problems.invalid(where, "offset", point["offset"], _("expected a finite number"))
    if "unit" in point and not isinstance(point["unit"], str):
        problems.invalid(where, "unit", point["unit"], _("expected a string such as \"kW\""))
    if "access" in point and point["access"] not in ACCESS:
        problems.invalid(where, "access", point["access"], _one_of(ACCESS))
    if "default_not_available" in point and not isinstance(point["default_not_available"], bool):
        problems.invalid(where, "default_not_available", point["default_not_available"],
                         _("expected true or false"))
    _check_unit(problems, where, point, roles)
    if sunspec:
        _check_sunspec_point(problems, where, point)
    else:
        _check_register_point(problems, where, point)


def _check_field(problems, where, point):
    if "field" in point:
        field = point["field"]
        if not (isinstance(field, str) and is_canonical_field(field)):
            problems.invalid(where, "field", field, _field_help())
    if "field_scale" in point and "field" not in point:
        problems.add(where, _("field_scale is given without field: add the canonical field "
                            "it converts to, or remove field_scale"))


def _check_conversion(problems, where, key, factor, unit, field):
    """Check that a point in ``unit`` feeds ``field`` with the factor between their units.

    ``key`` is where the factor is written: ``field_scale`` of a point, whose default is
    1, or ``factor`` of a derived term. Units and fields without a known unit pass.
    """
    field_unit = CANONICAL_FIELDS.get(field, ("",))[0]
    if not field_unit or not isinstance(unit, str):
        return
    conversion = UNIT_CONVERSIONS.get(unit)
    if conversion is None:
        _unknown_unit(problems, where, unit, field, field_unit)
        return
    target_unit, expected = conversion
    if target_unit != field_unit:
        units = [name for name, (target, _factor) in UNIT_CONVERSIONS.items()
                 if target == field_unit]
        problems.invalid(where, "unit", unit,
                         _("{field} is in {field_unit}, so expected a unit of the same "
                           "quantity ({units}); fix unit, or field if the point measures "
                           "something else").format(field=field, field_unit=field_unit,
                                                    units=", ".join(units)))
        return
    if factor is None:
        if expected != 1:
            problems.missing(where, key,
                             _("a point in {unit} feeds {field}, which is in {field_unit}, so "
                               "set {key} to {factor:g} (or {negative:g} where the device's "
                               "sign is the opposite)").format(
                                   unit=unit, field=field, field_unit=field_unit, key=key,
                                   factor=expected, negative=-expected))
        return
    if _nonzero_number(factor) and not math.isclose(abs(factor), expected, rel_tol=1e-9):
        problems.invalid(where, key, factor,
                         _("expected {factor:g} or {negative:g}, because a point in {unit} "
                           "feeds {field}, which is in {field_unit}").format(
                               factor=expected, negative=-expected, unit=unit, field=field,
                               field_unit=field_unit))


def _check_sign_flip(problems, where, point):
    """Reject a negative field_scale on a field whose sign is not a direction, such as SOC."""
    factor = point.get("field_scale")
    field = point["field"]
    if (_nonzero_number(factor) and factor < 0 and field in CANONICAL_FIELDS
            and field not in SIGNED_FIELDS):
        problems.invalid(where, "field_scale", factor, _(
            "{field} has no direction, so a negative field_scale only turns its values "
            "negative: write {positive:g}; only {signed} take a sign flip").format(
                field=field, positive=-factor, signed=", ".join(sorted(SIGNED_FIELDS))))


def _unknown_unit(problems, where, unit, field, field_unit):
    """Reject a unit the conversion check does not know that is a known one miswritten.

    Such a unit would skip the check of ``field_scale``. Other unknown units pass.
    """
    same_letters = [name for name in UNIT_CONVERSIONS if name.lower() == unit.lower()]
    if same_letters:
        problems.invalid(where, "unit", unit, _(
            "unit symbols are case-sensitive: write {known} if that is the unit, because "
            "field_scale is checked against it").format(known=same_letters[0]))
    elif field_unit == "degC" and unit.lower() in FAHRENHEIT_UNITS:
        problems.invalid(where, "unit", unit, _(
            "{field} is in degC, which a factor cannot convert from Fahrenheit: set "
            "scale to 0.5556 times the point's scale, offset to -17.78 and unit to degC"
            ).format(field=field))


def _check_unit(problems, where, point, roles):
    if "unit_id" in point:
        _check_integer(problems, where, point, "unit_id", 0, MAX_UNIT_ID)
        if "unit_role" in point:
            problems.add(where, _("unit_id and unit_role are both given: keep one (a role "
                                "lets the settings change the unit id)"))
    if "unit_role" in point and point["unit_role"] not in roles:
        problems.invalid(where, "unit_role", point["unit_role"], _one_of_roles(roles))


def _check_register_point(problems, where, point):
    address_ok = _check_integer(problems, where, point, "address", 0, MAX_ADDRESS)
    type_name = point.get("type")
    type_ok = type_name in TYPES
    if "type" in point and not type_ok:
        problems.invalid(where, "type", type_name, _one_of(TYPES))
    if "function" in point and point["function"] not in FUNCTIONS:
        problems.invalid(where, "function", point["function"], _one_of(FUNCTIONS))
    order = point.get("order", "ABCD")
    if order not in ORDERS:
        problems.invalid(where, "order", order, _one_of(ORDERS))
    elif type_name == "str" and order not in STRING_ORDERS:
        problems.invalid(where, "order", order,
                         _("expected {orders} for a str point").format(
                             orders=" or ".join(STRING_ORDERS)))
    elif TYPE_REGISTERS.get(type_name) == 1 and order not in STRING_ORDERS:
        # CDAB would change nothing and DCBA would act as BADC: both hide a mistake.
        problems.invalid(where, "order", order,
                         _("expected {orders}: type {type} has one register, and {order} "
                           "swaps registers").format(
                               orders=" or ".join(STRING_ORDERS), type=type_name, order=order))
    if type_name in CODE_TYPES:
        for key, neutral in (("scale", 1), ("offset", 0), ("field_scale", 1)):
            if key in point and point[key] != neutral:
                problems.invalid(where, key, point[key],
                                 _("type {type} holds codes or bits, which {key} would "
                                   "change: remove {key}").format(type=type_name, key=key))
    registers = _check_length(problems, where, point, type_name if type_ok else None)
    if address_ok and registers and point["address"] + registers - 1 > MAX_ADDRESS:
        problems.invalid(where, "address", point["address"],
                         _("the point's {registers} registers run past {max}; expected an "
                           "address of at most {highest}").format(
                               registers=registers, max=MAX_ADDRESS,
                               highest=MAX_ADDRESS + 1 - registers))
    if type_ok:
        _check_not_available(problems, where, point, type_name)
        if type_name == "str" and "field" in point:
            problems.add(where, _("a str point cannot map a canonical field, which holds a "
                                "number: remove field"))
        if type_name in ("sunssf", "str") and "scale_factor" in point:
            problems.add(where, _("a {type} point cannot have a scale_factor: remove it").format(
                type=type_name))
    if "scale_factor" in point and not isinstance(point["scale_factor"], str):
        problems.invalid(where, "scale_factor", point["scale_factor"],
                         _("expected the name of a sunssf point"))


def _check_length(problems, where, point, type_name):
    """Check ``length``; return the point's registers, or None when unknown."""
    if "length" not in point:
        if type_name == "str":
            problems.missing(where, "length", _("a str point needs its length in registers"))
            return None
        return TYPE_REGISTERS.get(type_name)
    length = point["length"]
    if not _integer(length) or length < 1:
        problems.invalid(where, "length", length, _("expected a positive number of registers"))
        return None
    if length > MAX_REQUEST_REGISTERS:
        problems.invalid(where, "length", length,
                         _("a point longer than {max} registers cannot be read in one "
                           "request; split it into several points").format(
                               max=MAX_REQUEST_REGISTERS))
        return None
    if type_name not in (None, "str") and length != TYPE_REGISTERS[type_name]:
        registers = TYPE_REGISTERS[type_name]
        problems.invalid(where, "length", length,
                         ngettext("{type} points are {registers} register long; remove "
                                  "length or fix the type",
                                  "{type} points are {registers} registers long; remove "
                                  "length or fix the type", registers).format(
                                      type=type_name, registers=registers))
        return None
    return length


def _check_not_available(problems, where, point, type_name):
    if "not_available" not in point:
        return
    values = point["not_available"]
    if type_name == "str" or not isinstance(values, list):
        problems.invalid(where, "not_available", values,
                         _("expected a list of raw register values (str points take none)"))
        return
    for value in values:
        if type_name in FLOAT_TYPES:
            if not _finite_number(value):
                problems.invalid(where, "not_available", value,
                                 _("expected finite numbers for a {type} point (NaN is "
                                   "always not available)").format(type=type_name))
            continue
        low, high = integer_range(type_name)
        if not _integer(value) or not low <= value <= high:
            problems.invalid(where, "not_available", value,
                             _("expected raw integers from {low} to {high} for a {type} "
                               "point").format(low=low, high=high, type=type_name))


def _check_scale_factor(problems, where, point, by_name):
    name = point.get("scale_factor")
    if not isinstance(name, str):
        return
    target = by_name.get(name)
    if target is None:
        problems.invalid(where, "scale_factor", name, _("expected the name of a point of this "
                                                      "profile whose type is sunssf"))
        return
    if target.get("type") != "sunssf":
        problems.invalid(where, "scale_factor", name,
                         _("point {name!r} has type {type}; expected a point of type "
                           "sunssf").format(name=name, type=_json_text(target.get("type"))))
        return
    same_unit = (point.get("unit_id"), point.get("unit_role", MAIN_ROLE)) == (
        target.get("unit_id"), target.get("unit_role", MAIN_ROLE))
    same_function = point.get("function", "holding") == target.get("function", "holding")
    if not (same_unit and same_function):
        problems.invalid(where, "scale_factor", name,
                         _("the scale factor must be read from the same unit with the same "
                         "function as the value, in the same request"))


def _check_holes_against_points(problems, device, by_name):
    if not isinstance(device, dict) or not isinstance(device.get("holes"), list):
        return
    for number, hole in enumerate(device["holes"]):
        if not (isinstance(hole, dict) and _integer(hole.get("first"))
                and _integer(hole.get("last"))):
            continue
        for name, point in by_name.items():
            if not (_integer(point.get("address")) and point.get("type") in TYPES):
                continue
            if "function" in hole and point.get("function", "holding") != hole["function"]:
                continue
            if "unit_role" in hole and point.get("unit_role", MAIN_ROLE) != hole["unit_role"]:
                continue
            registers = point.get("length") or TYPE_REGISTERS[point["type"]] or 1
            if point["address"] <= hole["last"] and hole["first"] < point["address"] + registers:
                problems.invalid(point_place(name), "address", point["address"],
                                 _("the point overlaps device.holes[{number}] "
                                   "({first}..{last}), which the device rejects; fix the "
                                   "address or the hole").format(
                                       number=number, first=hole["first"], last=hole["last"]))


def _check_overlapping_points(problems, by_name):
    """Reject two register points that read a common register of one unit and function.

    Such an overlap is nearly always a wrong address or type (a 32-bit point placed one
    register too early), and both points would then decode wrong values.
    """
    spans = {}  # (function, unit) -> [(first, last, name)] in the order of the file
    for name, point in by_name.items():
        if not (_integer(point.get("address")) and point.get("type") in TYPES):
            continue
        registers = TYPE_REGISTERS[point["type"]] or point.get("length")
        if not _integer(registers) or registers < 1:
            continue
        unit = ("unit_id", point["unit_id"]) if "unit_id" in point else (
            "unit_role", point.get("unit_role", MAIN_ROLE))
        key = (point.get("function", "holding"), unit)
        first, last = point["address"], point["address"] + registers - 1
        for other_first, other_last, other in spans.get(key, []):
            if first <= other_last and other_first <= last:
                problems.invalid(point_place(name), "address", point["address"], _(
                    "the point's registers {first}..{last} overlap those of point "
                    "'{other}' ({other_first}..{other_last}); fix the address or the type "
                    "of one of them").format(first=first, last=last, other=other,
                                              other_first=other_first,
                                              other_last=other_last))
                break
        spans.setdefault(key, []).append((first, last, name))


def _check_sunspec_point(problems, where, point):
    models = point.get("model")
    model_ids = [models] if _integer(models) else models
    if "model" in point and not (isinstance(model_ids, list) and model_ids
                                 and all(_integer(model) for model in model_ids)):
        problems.invalid(where, "model", models,
                         _("expected a SunSpec model id or a list of them, e.g. [103, 113]"))
        return
    if "model" not in point:
        return

    missing = [model for model in model_ids if sunspec_models.load_definition(model) is None]
    if missing:
        problems.invalid(where, "model", models,
                         _("no bundled SunSpec definition for model(s) {models}; known: "
                           "registry/sunspec/model_*.json").format(
                               models=", ".join(map(str, missing))))
        return
    path = point.get("point")
    if "point" in point and not isinstance(path, str):
        problems.invalid(where, "point", path, _("expected a point path such as W or module[3].DCW"))
        return
    if path is None:
        return

    for model in model_ids:
        error = sunspec_models.check_point_path(model, path)
        if error:
            problems.invalid(where, "point", path, _(
                "expected a point of every listed model: {error}").format(error=error))
            return
    values = point.get("not_available", [])
    if not isinstance(values, list) or not all(_finite_number(value) for value in values):
        problems.invalid(where, "not_available", values,
                         _("expected a list of raw register values"))


def _check_derived(problems, derived, points, present):
    if not present:
        return
    if not isinstance(derived, list):
        problems.invalid(TOP, "derived", derived, _("expected a list of {field, sum}"))
        return
    seen = {}
    for number, item in enumerate(derived):
        where = f"derived[{number}]"
        if not isinstance(item, dict):
            problems.invalid(where, "derived", item, _("expected {field, description, sum}"))
            continue
        _check_keys(problems, where, item, DERIVED_KEYS, DERIVED_REQUIRED)
        if "ignore_not_available" in item and not isinstance(item["ignore_not_available"], bool):
            problems.invalid(where, "ignore_not_available", item["ignore_not_available"],
                             _("expected true or false"))
        field = item.get("field")
        if "field" in item and not (isinstance(field, str) and is_canonical_field(field)):
            problems.invalid(where, "field", field, _field_help())
        elif isinstance(field, str):
            owner = seen.get(field) or _point_mapping(points, field)
            if owner:
                problems.invalid(where, "field", field,
                                 _("expected a canonical field nothing else maps; {owner} "
                                   "already maps {field}").format(owner=owner, field=field))
            seen[field] = where
        if "description" in item and not _text(item["description"]):
            problems.invalid(where, "description", item["description"],
                             _("expected a non-empty string"))
        _check_terms(problems, where, item.get("sum"), points, "sum" in item,
                     field if isinstance(field, str) else None)


def _check_terms(problems, where, terms, points, present, field):
    if not present:
        return
    if not isinstance(terms, list) or not terms:
        problems.invalid(where, "sum", terms, _("expected a non-empty list of {point, factor}"))
        return
    for number, term in enumerate(terms):
        term_where = f"{where}.sum[{number}]"
        if not isinstance(term, dict):
            problems.invalid(term_where, "term", term, _("expected {point, factor}"))
            continue
        _check_keys(problems, term_where, term, TERM_KEYS, TERM_KEYS)
        if "point" in term and term["point"] not in points:
            problems.invalid(term_where, "point", term["point"],
                             _("expected the name of a point of this profile"))
        elif "point" in term and points[term["point"]].get("type") == "str":
            problems.invalid(term_where, "point", term["point"],
                             _("a derived sum adds numbers, and this point is a str point, "
                               "which contains text, so name a numeric point"))
        if "factor" in term and not _nonzero_number(term["factor"]):
            problems.invalid(term_where, "factor", term["factor"],
                             _("expected a finite number other than 0"))
        point = points.get(term.get("point")) if isinstance(term.get("point"), str) else None
        if point is not None and field is not None and "factor" in term:
            _check_conversion(problems, term_where, "factor", term["factor"], point.get("unit"),
                              field)


def _point_mapping(points, field):
    for name, point in points.items():
        if point.get("field") == field:
            return point_place(name)
    return None


def _check_keys(problems, where, item, allowed, required):
    for key in item:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = _("did you mean {key!r}? ").format(key=close[0]) if close else ""
            problems.add(where, _("unknown key {key!r}: {hint}accepted keys are {keys}").format(
                key=key, hint=hint, keys=", ".join(allowed)))
    for key in required:
        if key not in item:
            problems.missing(where, key, _("this key is required"))


def _check_integer(problems, where, item, key, low, high):
    """Check an integer key if present; return True when it is present and valid."""
    if key not in item:
        return False
    value = item[key]
    if not _integer(value) or not low <= value <= high:
        problems.invalid(where, key, value, _("expected an integer from {low} to {high}").format(
            low=low, high=high))
        return False
    return True


def _check_number(problems, where, item, key, low, high, exclusive_minimum=False):
    if key not in item:
        return
    value = item[key]
    too_low = _finite_number(value) and (value <= low if exclusive_minimum else value < low)
    if not _finite_number(value) or too_low or value > high:
        if exclusive_minimum:
            accepted = _("expected a number of seconds above {low:g} up to {high:g}")
        else:
            accepted = _("expected a number of seconds from {low:g} up to {high:g}")
        problems.invalid(where, key, value, accepted.format(low=low, high=high))


def _check_battery_voltage(problems, device):
    value = device.get("battery_nominal_voltage_v", 1.0)
    if not _finite_number(value) or not 0.0 < value <= MAX_BATTERY_VOLTAGE_V:
        problems.invalid("device", "battery_nominal_voltage_v", value,
                         _("expected a number of volts above 0 up to {high:g}").format(
                             high=MAX_BATTERY_VOLTAGE_V))


def _field_help():
    return _("expected a canonical field: {fields}, or alarm_<name>").format(
        fields=", ".join(CANONICAL_FIELDS))


def _one_of(values):
    return _("expected one of {values}").format(values=", ".join(values))


def _one_of_roles(roles):
    if len(roles) == 1:
        return _("expected the role {role}, the only one this profile has").format(
            role=next(iter(roles)))
    return _("expected one of the roles {roles}").format(roles=", ".join(sorted(roles)))


def _json_text(value):
    """Return a profile value as it is written in JSON (``true``, ``null``, ``"text"``)."""
    return json.dumps(value, ensure_ascii=False)


def point_place(name):
    """Return the place of a point's problems, such as ``point 'soc'``."""
    return _("point {name!r}").format(name=name)


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _nonzero_number(value):
    return _finite_number(value) and value != 0


def _text(value):
    return isinstance(value, str) and bool(value.strip())


def _text_list(value):
    return isinstance(value, list) and all(_text(item) for item in value)


def _json_kind(value):
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
