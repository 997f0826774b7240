"""The SunSpec model chain a simulated device presents for a SunSpec profile.

For each unit id the chain starts with "SunS" at 40000 and the common model 1. One
model follows for every model choice in the profile, in ascending id order: the first
acceptable id of each point, or its float variant with ``prefer_float``. The 0xFFFF
end marker closes the chain. Model 160 (multiple MPPT) gets four modules, as on a
Fronius GEN24 whose modules 3 and 4 carry the battery's charge and discharge power.
"""

from bessai_edge.profile import sunspec
from bessai_edge.profile.fields import MAIN_ROLE

HOLDING = 3
COMMON_MODEL = 1
REPEATS = {160: 4}
# Models of a typical hybrid inverter, served for a profile that reads every model.
TYPICAL_INVERTER = (103, 120, 121, 122, 123, 124, 160)


def is_float_model(model_id):
    """Return True for the float variants of the inverter and meter models."""
    return 111 <= model_id <= 113 or 211 <= model_id <= 214


def choose_model(model_ids, prefer_float=False):
    """Return the model a simulated device offers for a point that accepts ``model_ids``."""
    for model_id in model_ids:
        if is_float_model(model_id) == prefer_float:
            return model_id
    return model_ids[0]


def model_choices(profile, unit_id=None, unit_ids=None, prefer_float=False):
    """Return unit id -> the model ids its chain holds, in chain order."""
    units = profile.resolve_units(unit_id, unit_ids)
    chosen = {}
    for point in profile.points:
        if not point.is_sunspec:
            continue
        unit = profile.point_unit(point, units)
        if unit is None:
            continue
        models = chosen.setdefault(unit, {COMMON_MODEL})
        if not models & set(point.model):
            models.add(choose_model(point.model, prefer_float))
    if profile.all_sunspec_models:
        models = chosen.setdefault(units[MAIN_ROLE], {COMMON_MODEL})
        typical = [choose_model((model_id, model_id + 10), prefer_float)
                   if model_id in (103, 203) else model_id for model_id in TYPICAL_INVERTER]
        models.update(typical)
    return {unit: sorted(models) for unit, models in chosen.items()}


def build_maps(profile, unit_id=None, unit_ids=None, prefer_float=False):
    """Return unit id -> the sunspec.ModelMap the simulated device presents."""
    return {unit: sunspec.example_map(models, unit_id=unit, repeats=REPEATS)
            for unit, models in model_choices(profile, unit_id, unit_ids, prefer_float).items()}


def write_map(image, model_map):
    """Write the marker, model headers, count points and end marker of a chain.

    Model bodies are filled with 0. Returns the (unit, function, address) of every word
    written here that the value encoding must leave alone.
    """
    unit = model_map.unit_id
    table = image.table(unit, HOLDING)
    fixed = set()

    def put(address, words):
        for offset, word in enumerate(words):
            table[address + offset] = word
            fixed.add((unit, HOLDING, address + offset))

    put(model_map.base, sunspec.MARKER)
    for entry in model_map.models:
        put(entry.address, (entry.model_id, entry.length))
        for address in range(entry.address + 2, entry.address + 2 + entry.length):
            table.setdefault(address, 0)
        counts = dict(entry.counts)
        for model_point in entry.layout():
            if model_point.path in counts:
                put(entry.address + model_point.offset, (counts[model_point.path],))
            elif model_point.sunspec_type == "count":
                # A count the layout does not depend on (model 160's N): the instances laid out.
                put(entry.address + model_point.offset, (REPEATS.get(entry.model_id, 1),))
    put(model_map.end_address, (sunspec.END_MODEL_ID, 0))
    return fixed
