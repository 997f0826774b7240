"""Model values for the DC power, voltage and current of PV inputs and MPP trackers.

A PV input's power comes from the profile's fields and derived sums. Its voltage is the
model's PV string voltage, which is 0 V while the input has no power, and its current is
the power divided by that voltage. Two kinds of input are recognised:

- SunSpec DCW, DCV and DCA points, of the inverter models (101-103, 111-113) and of each
  multiple-MPPT module (model 160). A module whose power feeds ``battery_power_kw``
  (modules 3 and 4 of a Fronius GEN24) is at the battery voltage instead.
- In other profiles, a point in W that maps or is summed into ``pv_power_kw``, and the
  points in V and A whose names share its prefix, such as SMA's DcMs.Watt, DcMs.Vol and
  DcMs.Amp.

A model 160 block that no profile point powers, as in a profile that reads every SunSpec
model, gets the model's PV power shared evenly across its modules. The even split is a
choice of the simulator, not a device fact.
"""

import re

from bessai_edge.profile.fields import UNIT_CONVERSIONS
from bessai_edge.simulator.point_quantities import in_point_unit

DC_MODEL_IDS = (101, 102, 103, 111, 112, 113, 160)
MPPT_MODEL_IDS = (160,)
DC_POINT = re.compile(r"(?P<block>.*)\.(?P<name>DCW|DCV|DCA)\Z")
MPPT_MODULE = re.compile(r"(?P<model>.*)\.module\[\d+\]\Z")
NAME_PREFIX = re.compile(r"(?P<prefix>.+)[./][^./]+\Z")
# Canonical field a module's power feeds -> the model quantity that is its voltage.
MODULE_VOLTAGE = {"battery_power_kw": "battery_voltage_v", "pv_power_kw": "pv_voltage_v"}
# Victron D-Bus paths of a PV current measured on the battery side of the solar chargers.
# NOTE: the GX register list calls /Dc/Pv/Current "DC-coupled PV current" without naming
# the side. The simulator takes it as the chargers' output at the battery voltage, an
# estimate to confirm on a real GX.
BATTERY_SIDE_CURRENTS = ("/Dc/Pv/Current",)


def add_pv_input_values(points, profile, model_values, values):
    """Add to ``values`` (point name -> value) the DC values of each PV input and module.

    Points that already have a value, from a field, a derived sum or ``--set``, keep it.
    """
    feeds = _power_fields(points, profile)
    _share_module_power(points, model_values, values)
    _add_sunspec_dc_values(points, feeds, model_values, values)
    _add_named_input_values(points, feeds, model_values, values)


def _power_fields(points, profile):
    """Return point name -> the canonical field that the point maps or is summed into."""
    feeds = {point.name: point.field for point in points if point.field}
    for derived in profile.derived:
        feeds.update({term.point: derived.field for term in derived.terms})
    return feeds


def _share_module_power(points, model_values, values):
    """Share the PV power across the modules of each model 160 block without power."""
    blocks = {}
    for point in points:
        match = DC_POINT.match(point.name)
        if point.model_id not in MPPT_MODEL_IDS or not match or match["name"] != "DCW":
            continue
        module = MPPT_MODULE.match(match["block"])
        if module:
            blocks.setdefault(module["model"], []).append(point)
    for modules in blocks.values():
        if any(point.name in values for point in modules):
            continue
        for point in modules:
            share_kw = model_values["pv_power_kw"] / len(modules)
            values[point.name] = in_point_unit(share_kw, point.unit)


def _add_sunspec_dc_values(points, feeds, model_values, values):
    """Give each SunSpec DCV and DCA point a value from the DCW of its block."""
    for point in points:
        match = DC_POINT.match(point.name)
        if point.model_id not in DC_MODEL_IDS or not match or point.name in values:
            continue
        if match["name"] == "DCW":
            continue
        power_name = match["block"] + ".DCW"
        power_w = values.get(power_name) or 0.0
        quantity = MODULE_VOLTAGE.get(feeds.get(power_name), "pv_voltage_v")
        voltage = _input_voltage(quantity, power_w, model_values)
        if match["name"] == "DCV":
            values[point.name] = voltage
        else:
            values[point.name] = power_w / voltage if voltage else 0.0


def _add_named_input_values(points, feeds, model_values, values):
    """Give the V and A points beside each non-SunSpec PV power point their values."""
    by_prefix = {}
    for point in points:
        match = NAME_PREFIX.match(point.name)
        if point.model_id is None and match:
            by_prefix.setdefault(match["prefix"], []).append(point)
    for point in points:
        match = NAME_PREFIX.match(point.name)
        if point.model_id is not None or not match or feeds.get(point.name) != "pv_power_kw":
            continue
        power_w = _in_watts(values.get(point.name) or 0.0, point.unit)
        for sibling in by_prefix[match["prefix"]]:
            if sibling.name not in values:
                _add_input_value(sibling, power_w, model_values, values)


def _add_input_value(point, power_w, model_values, values):
    """Set a PV input's voltage or current point, converted to the point's own unit."""
    unit = UNIT_CONVERSIONS.get(point.unit, (None, 1.0))[0]
    quantity = "pv_voltage_v"
    if point.name.partition(":")[2] in BATTERY_SIDE_CURRENTS:
        quantity = "battery_voltage_v"
    voltage = _input_voltage(quantity, power_w, model_values)
    if unit == "V":
        values[point.name] = in_point_unit(voltage, point.unit)
    elif unit == "A":
        values[point.name] = in_point_unit(power_w / voltage if voltage else 0.0, point.unit)


def _in_watts(value, unit):
    """Convert a power from the point's unit (W when it states none) to W."""
    factor_to_kw = UNIT_CONVERSIONS.get(unit, ("kW", 0.001))[1]
    return 1000.0 * value * factor_to_kw


def _input_voltage(quantity, power_w, model_values):
    """Return the voltage of a DC input: 0 V for a PV input without power (a dark string)."""
    if not power_w and quantity == "pv_voltage_v":
        return 0.0
    return model_values[quantity]
