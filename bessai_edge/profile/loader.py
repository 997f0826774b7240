"""Load a profile file: parse the JSON, validate all of it, build the Profile."""

import json
import logging

from bessai_edge.errors import ProfileError
from bessai_edge.i18n import _
from bessai_edge.profile import validate as validation
from bessai_edge.profile.fields import FUNCTIONS
from bessai_edge.profile.model import (
    Derived, DerivedTerm, Document, Hole, PointDef, Profile, UnitRole)
from bessai_edge.profile.registry import resolve_profile_path, unreadable_profile_text

logger = logging.getLogger(__name__)


def load_profile(path_or_name):
    """Load, validate and return a profile given by bare name, registry path or file path.

    Raises ProfileError listing every problem, one line each, in ``problems``.
    """
    path = resolve_profile_path(path_or_name)
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte order mark is skipped
    except OSError as error:
        raise _profile_error([unreadable_profile_text(path, error)]) from error
    except UnicodeDecodeError as error:
        raise _profile_error([_("{path}: not a profile: byte 0x{byte:02x} at offset {offset} "
                                "is not UTF-8 text, and a profile is a UTF-8 JSON file").format(
            path=path, byte=error.object[error.start], offset=error.start)]) from error
    return parse_profile(text, str(path))


def parse_profile(text, path="<profile>"):
    """Validate profile JSON text and return the Profile; raise ProfileError if invalid."""
    duplicates = []
    try:
        data = json.loads(text, object_pairs_hook=_pairs_hook(duplicates))
    except json.JSONDecodeError as error:
        start = text.lstrip()[:1]
        if start not in ("{", ""):
            # Not a broken profile but another file, such as the settings file.
            raise _profile_error([_(
                "{path}: not a profile: a profile is a JSON object, and this file starts "
                "with {start!r}; set DRIVER_PROFILE_PATH (or DEVICE_<NAME>_PROFILE) to a "
                "profile file or to a bundled profile name (list them with `bessai "
                "profiles`)").format(path=path, start=text.lstrip()[:20])]) from None
        raise _profile_error([_json_syntax_problem(text, error, path)]) from None
    except RecursionError:
        # The C scanner gives up at the interpreter's recursion limit (about 1000 levels).
        raise _profile_error([_("{path}: invalid JSON: objects and lists are nested more "
                                "deeply than a profile can hold; a profile nests them only "
                                "a few levels deep").format(path=path)]) from None
    except ValueError:
        # The one other ValueError of json.loads: an integer of more than 4300 digits,
        # the interpreter's limit (sys.get_int_max_str_digits()).
        raise _profile_error([_("{path}: invalid JSON: a number has more digits than a "
                                "profile can hold; write a shorter number").format(
                                    path=path)]) from None
    places = _object_places(data) if duplicates else {}
    problems = [_("{path}: {where}: key {key!r} appears twice in one object: keep one").format(
                    path=path, where=places.get(id(owner), _("object")), key=key)
                for owner, key in duplicates]
    problems += validation.validate(data, path)
    if problems:
        raise _profile_error(problems)
    return build_profile(data, path)


def _json_syntax_problem(text, error, path):
    """Return the problem line of a JSONDecodeError, naming the usual hand-editing slips.

    The parser reports a trailing comma at the bracket after it ("Expecting value") and a
    comment as a missing property name or delimiter, which do not point at the cause.
    """
    before = text[:error.pos].rstrip()
    closer = text[error.pos:error.pos + 1]
    if before.endswith(",") and closer in ("]", "}"):
        comma = len(before) - 1
        line = text.count("\n", 0, comma) + 1
        column = comma - text.rfind("\n", 0, comma)
        return _("{path}:{line}:{column}: invalid JSON: a comma before '{closer}', which JSON "
                 "does not allow after the last item; remove that comma").format(
                     path=path, line=line, column=column, closer=closer)
    if text.startswith(("//", "/*"), error.pos):
        return _("{path}:{line}:{column}: invalid JSON: a comment, which JSON does not allow; "
                 "remove it, or move its text to the profile's notes or a point's "
                 "description").format(path=path, line=error.lineno, column=error.colno)
    return _("{path}:{line}:{column}: invalid JSON: {reason}; fix the syntax at that line and "
             "column").format(path=path, line=error.lineno, column=error.colno,
                              reason=error.msg)


def _profile_error(problems):
    error = ProfileError("\n".join(problems))
    error.problems = list(problems)
    return error


def _pairs_hook(duplicates):
    """Return an object_pairs_hook that appends (object, key) for each repeated key."""
    def hook(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                duplicates.append((result, key))
            result[key] = value
        return result
    return hook


def _object_places(data):
    """Map the id() of each JSON object in ``data`` to its place, named as validation does.

    The places are ``profile``, ``device``, ``documents[0]``, ``device.holes[1]``, a point's
    ``point 'name'`` (``points[3]`` without a name) and ``derived[0].sum[1]``. The walk uses
    a stack, not recursion, because json.loads accepts nesting close to the recursion limit.
    """
    places = {}
    pending = [(data, validation.TOP)]
    while pending:
        value, place = pending.pop()
        if isinstance(value, dict):
            places[id(value)] = validation.place_name(place)
            for key, child in value.items():
                pending.append((child, key if place == validation.TOP else f"{place}.{key}"))
        elif isinstance(value, list):
            for number, child in enumerate(value):
                child_place = f"{place}[{number}]"
                if place == "points" and isinstance(child, dict) \
                        and isinstance(child.get("name"), str):
                    child_place = validation.point_place(child["name"])
                pending.append((child, child_place))
    return places


def build_profile(data, path):
    """Build a Profile from validated data."""
    device = data["device"]
    roles = {
        name: UnitRole(name, settings["unit_id"], settings["description"])
        for name, settings in device.get("unit_roles", {}).items()
    }
    holes = tuple(
        Hole(hole["first"], hole["last"], FUNCTIONS.get(hole.get("function")),
             hole.get("unit_role"), hole["reason"])
        for hole in device.get("holes", ()))
    notes = data.get("notes", ())
    return Profile(
        name=data["name"],
        title=data["title"],
        path=path,
        documents=tuple(Document(document["title"], document["version"],
                                 document["publisher"], document.get("url", ""))
                        for document in data["documents"]),
        unit_id=device["unit_id"],
        port=device["port"],
        max_registers=device["max_registers"],
        max_gap=device["max_gap"],
        quiet_after_connect_s=float(device["quiet_after_connect_s"]),
        min_request_interval_s=float(device["min_request_interval_s"]),
        request_timeout_s=float(device["request_timeout_s"]),
        holes=holes,
        unit_roles=roles,
        unit_id_note=device.get("unit_id_note", ""),
        notes=(notes,) if isinstance(notes, str) else tuple(notes),
        points=tuple(_build_point(point) for point in data["points"]),
        derived=tuple(
            Derived(item["field"], item["description"],
                    tuple(DerivedTerm(term["point"], float(term["factor"]))
                          for term in item["sum"]),
                    item.get("ignore_not_available", False))
            for item in data.get("derived", ())),
        all_sunspec_models=data.get("all_sunspec_models", False),
        battery_nominal_voltage_v=device.get("battery_nominal_voltage_v"),
    )


def _build_point(point):
    common = dict(
        name=point["name"],
        description=point.get("description", ""),
        field=point.get("field"),
        field_scale=float(point.get("field_scale", 1.0)),
        scale=float(point.get("scale", 1.0)),
        offset=float(point.get("offset", 0.0)),
        unit=point.get("unit", ""),
        unit_id=point.get("unit_id"),
        unit_role=point.get("unit_role"),
        not_available=tuple(point.get("not_available", ())),
        default_not_available=point.get("default_not_available", True),
        access=point.get("access", "ro"),
    )
    if "model" in point:
        models = point["model"]
        return PointDef(model=tuple(models) if isinstance(models, list) else (models,),
                        model_point=point["point"], **common)
    return PointDef(
        function=FUNCTIONS[point.get("function", "holding")],
        address=point["address"],
        type=point["type"],
        order=point.get("order", "ABCD"),
        length=point.get("length"),
        scale_factor=point.get("scale_factor"),
        **common)
