"""Checks of setting names, so that a misspelt variable is reported instead of ignored.

``bessai run`` reads fixed names (``settings.KNOWN_NAMES``), ``MODBUS_UNIT_<ROLE>`` and,
for each device listed in ``DEVICES``, ``DEVICE_<NAME>_<FIELD>`` where <FIELD> is one of
``DEVICE_FIELDS`` or ``UNIT_<ROLE>``. ``MQTT_`` and ``FORWARD_`` names belong to the
forwarder, which checks them itself.
"""

import difflib

from bessai_edge.envfile import located
from bessai_edge.i18n import _

DEVICE_PREFIX = "DEVICE_"
DEVICE_FIELDS = ("IP", "PORT", "PROFILE", "SLAVE_ID")
UNIT_FIELD = "UNIT_"
# Prefixes of names that are checked elsewhere: per device and role names by
# ``device_name_problems`` and ``settings._read_unit_ids``, the rest by the forwarder.
CHECKED_PREFIXES = (DEVICE_PREFIX, "MODBUS_UNIT_", "MQTT_", "FORWARD_")
_CUTOFF = 0.8  # difflib ratio above which a name counts as a misspelling of another


def misspelt_name_problem(where, name, known_names):
    """Return a problem line when ``name`` is close to a known name; ``where`` is FILE:LINE.

    A name that is close to none is left alone: it may belong to another program that
    reads the same file.
    """
    if name in known_names or name.startswith(CHECKED_PREFIXES):
        return None
    upper = name.upper()
    if upper in known_names or upper.startswith(CHECKED_PREFIXES):
        close = [upper]   # names are case-sensitive: site_id is not SITE_ID
    else:
        close = difflib.get_close_matches(upper, sorted(known_names), n=1, cutoff=_CUTOFF)
    if not close:
        return None
    return _("{path}: {name} is not a bessai setting: did you mean {known}?").format(
        path=where, name=name, known=close[0])


def device_name_problems(environ, device_names):
    """Return a problem line for each ``DEVICE_`` variable that sets nothing.

    ``device_names`` are the names listed in ``DEVICES``, empty when it is unset. A
    variable sets nothing when its name is not a listed device followed by a field.
    """
    listed = sorted((name.upper() for name in device_names), key=len, reverse=True)
    problems = []
    for name in sorted(environ):
        if name.startswith(DEVICE_PREFIX) and not _is_device_setting(name, listed):
            problems.append(located(environ, name, _device_name_problem(
                name, listed, ",".join(device_names))))
    return problems



def _split_device_name(name, listed):
    """Return (device, field) for ``DEVICE_<device>_<field>`` with a listed device, or None.

    ``listed`` is sorted longest first, so ``DEVICE_PV_2_IP`` with devices pv and pv_2
    belongs to pv_2.
    """
    rest = name[len(DEVICE_PREFIX):]
    for device in listed:
        if rest.startswith(device + "_"):
            return device, rest[len(device) + 1:]
    return None


def _is_device_setting(name, listed):
    split = _split_device_name(name, listed)
    if split is None:
        return False
    field = split[1]
    # ``settings._read_unit_ids`` checks the role after UNIT_, an empty one included.
    return field in DEVICE_FIELDS or field.startswith(UNIT_FIELD)


def _split_field(rest):
    """Return (device part, field) when ``rest`` ends with a device field, or None."""
    for field in DEVICE_FIELDS:
        if rest.endswith("_" + field):
            return rest[:-len(field) - 1], field
    device, sep, role = rest.rpartition("_" + UNIT_FIELD)
    return (device, UNIT_FIELD + role) if sep and device and role else None


def _closest(text, candidates):
    close = difflib.get_close_matches(text, candidates, n=1, cutoff=_CUTOFF)
    return close[0] if close else None


def _suggestion(name, listed):
    """Return the valid name that ``name`` is a misspelling of, or None.

    The misspelt part is compared alone, so that the long shared ``DEVICE_<NAME>_``
    does not make an unrelated field look close.
    """
    if name != name.upper() and _is_device_setting(name.upper(), listed):
        return name.upper()  # variable names are case-sensitive, device names upper-case
    split = _split_device_name(name, listed)
    if split:
        device, field = split
        fields = list(DEVICE_FIELDS)
        role = field.partition("_")[2]
        if role:
            fields.append(UNIT_FIELD + role)
        close = _closest(field, fields)
        return f"{DEVICE_PREFIX}{device}_{close}" if close else None
    split = _split_field(name[len(DEVICE_PREFIX):])
    if split:
        device, field = split
        close = _closest(device, listed)
        return f"{DEVICE_PREFIX}{close}_{field}" if close else None
    whole_names = [f"{DEVICE_PREFIX}{device}_{field}" for device in listed
                   for field in DEVICE_FIELDS]
    return _closest(name, whole_names)


def _device_name_problem(name, listed, devices_text):
    known = _suggestion(name, listed)
    if known:
        return _("{name} is not a bessai setting: did you mean {known}?").format(
            name=name, known=known)
    if not listed:
        return _(
            "{name} is set but DEVICES is not: list the devices in DEVICES, or set "
            "INVERTER_IP, INVERTER_PORT, DRIVER_PROFILE_PATH, MODBUS_SLAVE_ID and "
            "MODBUS_UNIT_<ROLE> for a single device").format(name=name)
    split = _split_device_name(name, listed)
    if split:
        return _(
            "{name} is not a setting of device {device}: expected {prefix} followed by IP, "
            "PORT, PROFILE, SLAVE_ID or UNIT_<ROLE>").format(
                name=name, device=split[0].lower(), prefix=f"{DEVICE_PREFIX}{split[0]}_")
    return _(
        "{name} does not name a device listed in DEVICES ({devices}): device settings are "
        "DEVICE_<NAME>_IP, _PORT, _PROFILE, _SLAVE_ID and _UNIT_<ROLE>; add the device to "
        "DEVICES, or correct or remove the variable").format(name=name, devices=devices_text)
