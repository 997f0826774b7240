"""Model values for points that map no canonical field but measure a modelled quantity.

A device often reports one battery in several places. A Victron GX serves the SOC,
voltage, current and temperature on its system unit and again on its VE.Bus and
battery units, and the profile maps each canonical field to only one of those points.
A point of a unit role gets the model's value when its name after the role prefix is a
Victron D-Bus path listed in ``ROLE_PATH_QUANTITIES``. A SunSpec point gets it when its
model id and point name are listed in ``SUNSPEC_QUANTITIES``.

A SunSpec multiple-MPPT block (model 160) carries DC power, voltage and current per
module. The power comes from the profile's derived sums. A module's voltage is the
battery voltage when its power feeds ``battery_power_kw`` (modules 3 and 4 of a
Fronius GEN24), and otherwise the PV string voltage, which is 0 V at night. The current
is the power divided by that voltage.
"""

import re

from bessai_edge.profile.fields import UNIT_CONVERSIONS

# Victron D-Bus path -> model quantity, from the GX Modbus-TCP register list.
ROLE_PATH_QUANTITIES = {
    "/Soc": "soc_pct",
    "/Dc/0/Voltage": "battery_voltage_v",
    "/Dc/0/Current": "battery_current_a",
    "/Dc/0/Power": "battery_power_kw",
    "/Dc/0/Temperature": "battery_temp_c",
}
# (SunSpec model id, point name) -> model quantity, from the model definitions.
SUNSPEC_QUANTITIES = {(124, "InBatV"): "battery_voltage_v"}
MPPT_MODEL_IDS = (160,)
MODULE_POINT = re.compile(r"(?P<block>.*module\[\d+\])\.(?P<name>DCW|DCV|DCA)\Z")
# Canonical field a module's power feeds -> the model quantity that is its voltage.
MODULE_VOLTAGE = {"battery_power_kw": "battery_voltage_v", "pv_power_kw": "pv_voltage_v"}


def add_point_quantities(points, profile, model_values, values):
    """Add to ``values`` (point name -> value) the points that measure a model quantity.

    Points that already have a value, from a field, a derived sum or ``--set``, keep it.
    """
    for point in points:
        if point.name in values:
            continue
        quantity = _role_path_quantity(point) or SUNSPEC_QUANTITIES.get(
            (point.model_id, point.name.rsplit(".", 1)[-1]))
        if quantity in model_values:
            values[point.name] = _in_point_unit(model_values[quantity], point.unit)
    _add_module_values(points, profile, model_values, values)


def _role_path_quantity(point):
    prefix, separator, path = point.name.partition(":")
    if not separator or prefix != point.role:
        return None
    return ROLE_PATH_QUANTITIES.get(path)


def _in_point_unit(value, unit):
    """Convert a model value from its canonical unit to the point's unit (W for kW)."""
    factor = UNIT_CONVERSIONS.get(unit, (None, 1.0))[1]
    return value / factor


def _add_module_values(points, profile, model_values, values):
    """Give each MPPT module's voltage and current, from its power and what it feeds."""
    feeds = {term.point: derived.field for derived in profile.derived for term in derived.terms}
    for point in points:
        match = MODULE_POINT.match(point.name)
        if point.model_id not in MPPT_MODEL_IDS or not match or point.name in values:
            continue
        power_name = match["block"] + ".DCW"
        power_w = values.get(power_name) or 0.0
        quantity = MODULE_VOLTAGE.get(feeds.get(power_name), "pv_voltage_v")
        voltage = model_values[quantity]
        if not power_w and quantity != "battery_voltage_v":
            voltage = 0.0   # a PV input without power is a string in the dark
        if match["name"] == "DCV":
            values[point.name] = voltage
        elif match["name"] == "DCA":
            values[point.name] = power_w / voltage if voltage else 0.0
