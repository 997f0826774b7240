"""Model values for points that map no canonical field but measure a modelled quantity.

A device often reports one battery in several places. A Victron GX serves the SOC,
voltage, current and temperature on its system unit and again on its VE.Bus and
battery units, and the profile maps each canonical field to only one of those points.
A point of a unit role gets the model's value when its name after the role prefix is a
Victron D-Bus path listed in ``ROLE_PATH_QUANTITIES``. A SunSpec point gets it when its
model id and point name are listed in ``SUNSPEC_QUANTITIES``.

Every read-only point in Hz measures the grid frequency, so it gets the model's
``grid_frequency_hz`` (Huawei's meter frequency, a SunSpec meter model's Hz). Settings
in Hz, such as SunSpec model 121's nominal frequency, are read-write and keep 0.

A point without a value of its own gets the value of a point that reads the same
registers. A profile that reads every SunSpec model names both m103.DCW and its
``pv_power`` point at one address, for example.

The DC values of PV inputs and MPPT modules come from ``pv_inputs``.
"""

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


def add_point_quantities(points, model_values, values):
    """Add to ``values`` (point name -> value) the points that measure a model quantity.

    Points that already have a value, from a field, a derived sum or ``--set``, keep it.
    """
    _copy_shared_registers(points, values)
    for point in points:
        if point.name in values:
            continue
        quantity = (_role_path_quantity(point) or _frequency_quantity(point)
                    or SUNSPEC_QUANTITIES.get((point.model_id, point.name.rsplit(".", 1)[-1])))
        if quantity in model_values:
            values[point.name] = in_point_unit(model_values[quantity], point.unit)


def in_point_unit(value, unit):
    """Convert a model value from its canonical unit to the point's unit (W for kW)."""
    factor = UNIT_CONVERSIONS.get(unit, (None, 1.0))[1]
    return value / factor


def _copy_shared_registers(points, values):
    """Give a point without a value the value of a point of the same type and registers."""
    by_registers = {}
    for point in points:
        if point.name in values:
            by_registers[_registers(point)] = values[point.name]
    for point in points:
        if point.name not in values and _registers(point) in by_registers:
            values[point.name] = by_registers[_registers(point)]


def _registers(point):
    return point.unit_id, point.function, point.address, point.type


def _role_path_quantity(point):
    prefix, separator, path = point.name.partition(":")
    if not separator or prefix != point.role:
        return None
    return ROLE_PATH_QUANTITIES.get(path)


def _frequency_quantity(point):
    unit = UNIT_CONVERSIONS.get(point.unit, (None,))[0]
    if unit == "Hz" and point.access == "ro" and not point.field:
        return "grid_frequency_hz"
    return None
