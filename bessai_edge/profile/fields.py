"""Vocabulary of profiles: register types, byte orders, functions and canonical fields.

These tables are plain data so that a profile can be validated without the compiled
core. The type names and sizes must match ``bessai_edge.core.TYPES`` and
``TYPE_WORDS``; a test checks that they do.
"""

import re

# Registers per type; None for str, whose length the point gives.
TYPE_REGISTERS = {
    "u16": 1, "s16": 1, "u32": 2, "s32": 2, "u64": 4, "s64": 4, "f32": 2, "f64": 4,
    "bitfield16": 1, "bitfield32": 2, "enum16": 1, "acc32": 2, "acc64": 4, "sunssf": 1,
    "str": None,
}
TYPES = tuple(TYPE_REGISTERS)
FLOAT_TYPES = ("f32", "f64")
SIGNED_TYPES = ("s16", "s32", "s64", "sunssf")
STRING_ORDERS = ("ABCD", "BADC")
ORDERS = ("ABCD", "BADC", "CDAB", "DCBA")

# Modbus function codes by the names profiles use.
FUNCTIONS = {"holding": 3, "input": 4}
FUNCTION_NAMES = {code: name for name, code in FUNCTIONS.items()}

MAX_REQUEST_REGISTERS = 125  # Modbus application protocol 1.1b3, 6.3: 1 to 125 registers
MAX_ADDRESS = 65535
MAX_UNIT_ID = 247            # 0 is broadcast on serial lines; gateways use 1..247 on TCP

ACCESS = ("ro", "rw")

# Canonical record fields: name -> (unit, meaning). Signs are fixed here once for every
# vendor; a profile converts its points with ``field_scale`` (or a derived sum).
CANONICAL_FIELDS = {
    "soc_pct": ("%", "battery state of charge"),
    "battery_power_kw": ("kW", "battery DC power, positive while charging"),
    "battery_voltage_v": ("V", "battery voltage"),
    "battery_current_a": ("A", "battery current, positive while charging"),
    "battery_temp_c": ("degC", "battery temperature"),
    "battery_state": ("", "battery operating state, the vendor's code"),
    "battery_max_charge_kw": ("kW", "maximum charge power the battery accepts now or is rated for"),
    "battery_max_discharge_kw": ("kW", "maximum discharge power the battery delivers now or is "
                                       "rated for"),
    "pv_power_kw": ("kW", "photovoltaic input power"),
    "ac_power_kw": ("kW", "AC active power at the inverter terminals, positive when delivered"),
    "grid_power_kw": ("kW", "active power at the grid connection point, positive on import"),
    "grid_frequency_hz": ("Hz", "grid frequency"),
    "inverter_state": ("", "inverter operating state, the vendor's code"),
    "inverter_temp_c": ("degC", "inverter internal temperature"),
    "fault_code": ("", "the vendor's current fault or error code"),
}
# Fields whose sign is a direction (charge or discharge, import or export): only a point
# that feeds one of these may flip its sign with a negative field_scale.
SIGNED_FIELDS = frozenset({"battery_power_kw", "battery_current_a", "ac_power_kw",
                           "grid_power_kw"})
# Point units that validation converts: unit -> (canonical field unit, factor to it). A point
# in one of these units that feeds a field must have that factor, up to its sign, as its
# field_scale (or as its derived factor). A unit not listed here is not checked.
UNIT_CONVERSIONS = {
    "W": ("kW", 0.001), "kW": ("kW", 1.0), "MW": ("kW", 1000.0),
    "Wh": ("kWh", 0.001), "kWh": ("kWh", 1.0),
    "mV": ("V", 0.001), "V": ("V", 1.0), "kV": ("V", 1000.0),
    "mA": ("A", 0.001), "A": ("A", 1.0),
    "%": ("%", 1.0),
    "degC": ("degC", 1.0), "°C": ("degC", 1.0),
    "mHz": ("Hz", 0.001), "Hz": ("Hz", 1.0),
}

# Alarm words keep the vendor's bits or codes, e.g. alarm_1 or alarm_vebus_overload.
ALARM_FIELD = re.compile(r"alarm_[a-z0-9_]+\Z")
ALARM_FIELD_PATTERN = "^alarm_[a-z0-9_]+$"

NAME = re.compile(r"[A-Za-z0-9_./:\[\]#-]{1,100}\Z")
NAME_PATTERN = "^[A-Za-z0-9_./:\\[\\]#-]{1,100}$"
ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
ROLE_PATTERN = "^[a-z][a-z0-9_]{0,31}$"
MAIN_ROLE = "main"


def is_canonical_field(name):
    """Return True when ``name`` is a canonical record field or an alarm field."""
    return name in CANONICAL_FIELDS or bool(ALARM_FIELD.match(name))


def integer_range(type_name):
    """Return the (min, max) raw integer a not-available value of an integer type may have.

    Signed types accept both the negative form and the register's unsigned pattern, as
    the core does (``-32768`` and ``0x8000`` are the same s16 sentinel).
    """
    bits = 16 * TYPE_REGISTERS[type_name]
    low = -(1 << (bits - 1)) if type_name in SIGNED_TYPES else 0
    return low, (1 << bits) - 1
