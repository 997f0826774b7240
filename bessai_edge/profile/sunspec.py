"""SunSpec discovery: find the ``SunS`` marker and walk the model chain of a unit.

A SunSpec map starts with the words 0x5375 0x6E53 ("SunS") at 40000 (some devices use 0
or 50000). Each model follows as ID, L (body length in registers) and the body; the
chain ends with ID 0xFFFF. Some devices (SMA among them) have no end marker and answer
the next header's address with exception 2 (Illegal Data Address), which ends the walk
too. ID 0 ends it as well, because no SunSpec model has that ID, and a device that reads
zeros past its last model would otherwise fill the map with models of ID 0 and length 0.
The resulting ``ModelMap`` gives ``Profile.plan`` the address of each model, so one profile
fits a device in "int + SF" mode (models 101-103, 201-204) and in "float" mode (111-113,
211-214) wherever the models are.
"""

import dataclasses
import logging

from bessai_edge.errors import DeviceException, ProfileError
from bessai_edge.i18n import _
from bessai_edge.profile import sunspec_models

logger = logging.getLogger(__name__)

HOLDING = 3
MARKER = (0x5375, 0x6E53)
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF
ILLEGAL_DATA_ADDRESS = 2
MAX_MODELS = 200  # a walk longer than this is a device bug, not a map


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model in a device's map: ``address`` is where its ID register sits."""

    model_id: int
    address: int
    length: int
    counts: tuple = ()   # (count point path, value) read for groups sized by a point

    def layout(self):
        """Return the model's points (sunspec_models.ModelPoint) as laid out on the device."""
        counts = dict(self.counts)
        return _cached_layout(self.model_id, self.length, tuple(sorted(counts.items())))


@dataclasses.dataclass(frozen=True)
class ModelMap:
    """The SunSpec models of one unit id, in address order."""

    unit_id: int
    base: int                 # address of the "SunS" marker
    models: tuple             # ModelEntry, in chain order
    end_address: int          # address after the last model
    end: str                  # "end marker", "exception 2", "model id 0" or "address space"

    def find(self, model_ids):
        """Return the first entry whose id comes first in ``model_ids``, or None."""
        for model_id in model_ids:
            for entry in self.models:
                if entry.model_id == model_id:
                    return entry
        return None

    def model_ids(self):
        return [entry.model_id for entry in self.models]

    def describe(self):
        """Return the map as one line, for a log message."""
        models = ", ".join(f"{entry.model_id}@{entry.address}+{entry.length}"
                           for entry in self.models)
        return (f"unit {self.unit_id}: SunS@{self.base}: {models or 'no models'}; "
                f"ends at {self.end_address} ({self.end})")

    __str__ = describe


_layouts = {}


def _cached_layout(model_id, length, counts):
    key = (model_id, length, counts)
    if key not in _layouts:
        values = dict(counts)
        _layouts[key] = sunspec_models.layout(
            model_id, length, count_of=lambda path, offset: values.get(path, 0))
    return _layouts[key]


def discover(read, unit_id):
    """Walk the SunSpec model chain of ``unit_id`` and return its ModelMap.

    ``read(unit_id, function, address, count)`` returns a list of words and raises
    ``DeviceException`` for a Modbus exception reply; other ``LinkError`` propagate.
    Raises ProfileError when no ``SunS`` marker is found at 40000, 0 or 50000.
    """
    base = _find_marker(read, unit_id)
    address = base + 2
    models = []
    end = "address space"
    while address + 2 <= 65536 and len(models) < MAX_MODELS:
        try:
            model_id, length = read(unit_id, HOLDING, address, 2)
        except DeviceException as error:
            if error.code != ILLEGAL_DATA_ADDRESS:
                raise
            end = "exception 2"
            break
        if model_id == END_MODEL_ID:
            end = "end marker"
            break
        if model_id == 0:
            end = "model id 0"
            break
        entry = ModelEntry(model_id, address, length)
        if sunspec_models.load_definition(model_id) is not None and _has_counted_groups(model_id):
            entry = dataclasses.replace(entry, counts=_read_counts(read, unit_id, entry))
        models.append(entry)
        logger.debug("unit %d: SunSpec model %d at %d, length %d", unit_id, model_id, address,
                     length)
        address += 2 + length
    return ModelMap(unit_id, base, tuple(models), address, end)


def discover_units(read, unit_ids):
    """Discover every unit id in ``unit_ids``; return unit id -> ModelMap.

    The first unit is the device's main unit: its failure propagates. A later unit (a
    meter behind the inverter, say) that has no SunSpec map is logged and left out, so
    its points read as not available instead of failing the whole device.
    """
    maps = {}
    for number, unit_id in enumerate(unit_ids):
        try:
            maps[unit_id] = discover(read, unit_id)
        except (ProfileError, DeviceException) as error:
            if number == 0:
                raise
            logger.warning("unit %d: no SunSpec map (%s); its points will be not available",
                           unit_id, error)
    return maps


def _find_marker(read, unit_id):
    tried = []
    for base in BASE_ADDRESSES:
        try:
            words = read(unit_id, HOLDING, base, 2)
        except DeviceException as error:
            tried.append(_("{address}: exception {code}").format(address=base, code=error.code))
            continue
        if tuple(words) == MARKER:
            return base
        tried.append(f"{base}: {words[0]:#06x} {words[1]:#06x}")
    error = ProfileError(_(
        "unit {unit}: no SunSpec marker 'SunS' (0x5375 0x6e53) found ({tried}); check that "
        "the device has SunSpec Modbus enabled and that the unit id is right"
    ).format(unit=unit_id, tried="; ".join(tried)))
    error.marker_places = "; ".join(tried)  # for a message that names the fix itself
    raise error


def _has_counted_groups(model_id):
    definition = sunspec_models.load_definition(model_id)

    def walk(group):
        for child in group.get("groups", ()):
            if isinstance(child.get("count"), str) or walk(child):
                return True
        return False

    return walk(definition["group"])


def _read_counts(read, unit_id, entry):
    """Read the count points that size a model's repeating groups."""
    counts = {}

    def count_of(path, offset):
        if path not in counts:
            counts[path] = read(unit_id, HOLDING, entry.address + offset, 1)[0]
        return counts[path]

    sunspec_models.layout(entry.model_id, entry.length, count_of=count_of)
    return tuple(sorted(counts.items()))


def example_map(model_ids, unit_id=1, base=40000, repeats=None):
    """Return a ModelMap of the given models laid out one after the other from ``base``.

    Used where no device is at hand (``bessai profiles show``, the benchmark, tests):
    each model gets the length of its fixed part plus ``repeats[model_id]`` instances
    of its repeating group (1 by default).
    """
    repeats = repeats or {}
    address = base + 2
    models = []
    for model_id in model_ids:
        definition = sunspec_models.load_definition(model_id)
        if definition is None:
            raise ProfileError(_("SunSpec model {model} has no bundled definition").format(
                model=model_id))
        length = sunspec_models.body_length(model_id, repeats.get(model_id, 1))
        counts = tuple((name, repeats.get(model_id, 1)) for name in _count_points(definition))
        models.append(ModelEntry(model_id, address, length, counts))
        address += 2 + length
    return ModelMap(unit_id, base, tuple(models), address, "end marker")


def _count_points(definition):
    names = []

    def walk(group):
        for child in group.get("groups", ()):
            if isinstance(child.get("count"), str):
                names.append(child["count"])
            walk(child)

    walk(definition["group"])
    return names
