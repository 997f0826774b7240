"""The official SunSpec model definitions, shipped as data in ``registry/sunspec/``.

A definition is a tree of groups and points; ``layout`` turns one model as found on a
device (its id and length L) into the register offset, type and scale-factor point of
every point, expanding repeating groups. A repeating group's count is a number, a
count point read from the device (``count_of``) or, when 0, whatever fills L.
"""

import dataclasses
import functools
import json
import logging
import re

from bessai_edge.errors import ProfileError
from bessai_edge.i18n import _
from bessai_edge.profile.registry import sunspec_dir

logger = logging.getLogger(__name__)

HEADER_REGISTERS = 2  # ID and L precede every model's body

# SunSpec point type -> (core type, type's default sentinel applies, extra sentinels).
# None: not a number the gateway decodes (padding, IPv6 and MAC addresses).
TYPE_MAP = {
    "int16": ("s16", True, ()),
    "uint16": ("u16", True, ()),
    "count": ("u16", True, ()),
    "raw16": ("u16", False, ()),
    "acc16": ("u16", False, (0,)),
    "int32": ("s32", True, ()),
    "uint32": ("u32", True, ()),
    "acc32": ("acc32", True, ()),
    "int64": ("s64", True, ()),
    "uint64": ("u64", True, ()),
    "acc64": ("acc64", True, ()),
    "bitfield16": ("bitfield16", True, ()),
    "bitfield32": ("bitfield32", True, ()),
    "bitfield64": ("u64", True, ()),
    "enum16": ("enum16", True, ()),
    "enum32": ("u32", True, ()),
    "float32": ("f32", True, ()),
    "float64": ("f64", True, ()),
    "string": ("str", True, ()),
    "sunssf": ("sunssf", True, ()),
    "ipaddr": ("u32", False, (0,)),
    "pad": None,
    "ipv6addr": None,
    "eui48": None,
}

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([1-9][0-9]*)\])?\Z")


@dataclasses.dataclass(frozen=True)
class ModelPoint:
    """One point of a laid-out model; ``offset`` counts from the model's ID register."""

    path: str            # e.g. "W", "curve[1].V1", "module[3].DCW"
    offset: int
    size: int            # registers
    sunspec_type: str
    type: str            # core type
    sf: str | None       # path of the sunssf point in the same model, or None
    sf_value: int | None  # a fixed scale factor written in the definition
    units: str
    access: str          # "ro" or "rw"
    description: str
    default_not_available: bool
    sentinels: tuple


@functools.lru_cache(maxsize=None)
def load_definition(model_id):
    """Return the parsed definition of a model, or None when none is bundled."""
    path = sunspec_dir() / f"model_{int(model_id)}.json"
    try:
        with open(path, encoding="utf-8") as stream:
            definition = json.load(stream)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ProfileError(_("{path}: cannot read the SunSpec model definition: {error}; "
                             "reinstall the registry").format(path=path, error=error)) from error
    if definition.get("id") != model_id:
        raise ProfileError(_("{path}: contains model {found!r}, not {model}; reinstall the "
                             "registry").format(path=path, found=definition.get("id"),
                                                model=model_id))
    return definition


def known_models():
    """Return the ids of every bundled model definition, sorted."""
    ids = []
    for path in sunspec_dir().glob("model_*.json"):
        suffix = path.stem[len("model_"):]
        if suffix.isdigit():
            ids.append(int(suffix))
    return sorted(ids)


def group_size(group):
    """Return the registers of one instance of a group whose nested groups repeat once."""
    size = sum(point["size"] for point in group.get("points", ()))
    for child in group.get("groups", ()):
        count = child.get("count", 1)
        repeats = count if isinstance(count, int) and count > 0 else 1
        size += repeats * group_size(child)
    return size


def body_length(model_id, repeats=1):
    """Return the length L of a model whose repeating groups have ``repeats`` instances."""
    definition = load_definition(model_id)
    if definition is None:
        raise ProfileError(_("SunSpec model {model} has no bundled definition in "
                             "{directory}").format(model=model_id, directory=sunspec_dir()))

    def size(group):
        total = sum(point["size"] for point in group.get("points", ()))
        for child in group.get("groups", ()):
            count = child.get("count", 1)
            instances = count if isinstance(count, int) and count > 0 else repeats
            total += instances * size(child)
        return total

    return size(definition["group"]) - HEADER_REGISTERS


def layout(model_id, length, count_of=None):
    """Lay out a model of body length ``length``; return its points in register order.

    ``count_of(path, offset)`` returns the value of a count point (the register at
    ``offset`` from the model's ID) for groups whose count names a point; without it
    such groups are laid out once. Points past the model's length are left out.
    """
    definition = load_definition(model_id)
    if definition is None:
        raise ProfileError(_("SunSpec model {model} has no bundled definition in "
                             "{directory}").format(model=model_id, directory=sunspec_dir()))
    state = _Layout(model_id, length, count_of)
    state.walk(definition["group"], prefix="", scopes=(), offset=0)
    end = HEADER_REGISTERS + length
    return tuple(point for point in state.points if point.offset + point.size <= end)


class _Layout:
    """Walks a definition tree and collects ModelPoints with their offsets."""

    def __init__(self, model_id, length, count_of):
        self.model_id = model_id
        self.length = length
        self.count_of = count_of
        self.points = []

    def walk(self, group, prefix, scopes, offset):
        # The group's scope is filled first: a value may name a scale factor that follows
        # it (model 103's W comes before W_SF).
        scope = {}
        scopes = scopes + (scope,)
        placed = []
        for point in group.get("points", ()):
            path = prefix + point["name"]
            scope[point["name"]] = (path, offset)
            placed.append((point, path, offset))
            offset += point["size"]
        for point, path, point_offset in placed:
            mapped = TYPE_MAP.get(point["type"])
            if mapped is not None:
                self.points.append(self._model_point(point, path, point_offset, mapped, scopes))
        for child in group.get("groups", ()):
            repeats, indexed = self._repeats(group, child, scopes, offset)
            for number in range(1, repeats + 1):
                child_prefix = f"{prefix}{child['name']}[{number}]." if indexed else (
                    f"{prefix}{child['name']}.")
                offset = self.walk(child, child_prefix, scopes, offset)
        return offset

    def _repeats(self, parent, child, scopes, offset):
        count = child.get("count", 1)
        if isinstance(count, int) and count > 0:
            return count, count > 1
        if count == 0:
            # The group fills what is left of the model after every other part.
            rest = HEADER_REGISTERS + self.length - offset - _size_after(parent, child)
            size = group_size(child)
            if size <= 0 or rest < 0:
                return 0, True
            if rest % size:
                logger.warning("SunSpec model %d: length %d leaves %d registers for "
                               "repeating group %s of %d registers each; using %d instances",
                               self.model_id, self.length, rest, child["name"], size,
                               rest // size)
            return rest // size, True
        path, count_offset = _lookup(scopes, count)
        if self.count_of is None or path is None:
            return 1, True
        value = self.count_of(path, count_offset)
        return (value if isinstance(value, int) and 0 <= value <= 1000 else 0), True

    def _model_point(self, point, path, offset, mapped, scopes):
        core_type, default_not_available, sentinels = mapped
        sf = point.get("sf")
        sf_path, sf_value = None, None
        if isinstance(sf, int):
            sf_value = sf
        elif isinstance(sf, str):
            sf_path, _scope = _lookup(scopes, sf)
        description = point.get("label", point["name"])
        if point.get("desc"):
            description = f"{description}: {point['desc']}"
        return ModelPoint(
            path=path, offset=offset, size=point["size"], sunspec_type=point["type"],
            type=core_type, sf=sf_path, sf_value=sf_value, units=point.get("units", ""),
            access="rw" if point.get("access") == "RW" else "ro", description=description,
            default_not_available=default_not_available, sentinels=sentinels)


def _size_after(parent, child):
    """Return the registers of the parent's groups that follow ``child`` (laid out once)."""
    groups = parent.get("groups", ())
    after = groups[groups.index(child) + 1:]
    return sum(group_size(group) for group in after)


def _lookup(scopes, name):
    """Return (path, offset) of the nearest point called ``name``, innermost scope first."""
    for scope in reversed(scopes):
        if name in scope:
            return scope[name]
    return None, None


def check_point_path(model_id, path):
    """Return None when ``path`` can name a point of the model, else what is wrong.

    A path names groups from the top, with a 1-based instance for repeating groups:
    ``W``, ``module[3].DCW``, ``curve[2].V1``.
    """
    definition = load_definition(model_id)
    if definition is None:
        return _("no bundled definition of SunSpec model {model}").format(model=model_id)
    group = definition["group"]
    segments = path.split(".")
    for depth, segment in enumerate(segments):
        match = _SEGMENT.match(segment)
        if not match:
            return _("{segment!r} is not a point or group name (write e.g. "
                     "module[3].DCW)").format(segment=segment)
        name, index = match.group(1), match.group(2)
        if depth == len(segments) - 1:
            names = [point["name"] for point in group.get("points", ())]
            if index is not None or name not in names:
                if depth:
                    text = _("model {model} has no point {path!r} in group {group}; points "
                             "there: {names}")
                else:
                    text = _("model {model} has no point {path!r}; points there: {names}")
                return text.format(model=model_id, path=path, group=group["name"],
                                   names=", ".join(names))
            return None
        children = {child["name"]: child for child in group.get("groups", ())}
        if name not in children:
            return _("model {model} has no group {name!r} in {path!r}").format(
                model=model_id, name=name, path=path)
        child = children[name]
        repeating = child.get("count", 1) != 1
        if repeating and index is None:
            return _("group {name!r} of model {model} repeats: give an instance such as "
                     "{name}[1]").format(name=name, model=model_id)
        if index is not None and not repeating:
            return _("group {name!r} of model {model} does not repeat: drop the "
                     "[{index}]").format(name=name, model=model_id, index=index)
        group = child
    return None
