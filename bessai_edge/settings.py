"""The gateway's settings, read from the environment with ``envfile.EnvReader``.

``load_settings(environ)`` validates every variable at once and returns a frozen
``Settings``, or raises one ``ConfigError`` that lists every problem, one line each.
``read_environment(env_file)`` builds that mapping the way ``bessai run --env-file``
does: the file first, then the process environment on top of it.

One device is described by the variables BESSAI users already know (``INVERTER_IP``,
``INVERTER_PORT``, ``DRIVER_PROFILE_PATH``, ``MODBUS_SLAVE_ID``). Several devices are
listed in ``DEVICES=name1,name2``; ``DEVICE_<NAME>_<KEY>`` then sets ``<KEY>`` for one
device and falls back to the single-device variable. ``setting_names`` reports names
that set nothing, such as a misspelt field or a device missing from ``DEVICES``.
"""

import dataclasses
import difflib
import ipaddress
import os
import re

from bessai_edge import alarms, setting_names
from bessai_edge.devices import format_endpoint
from bessai_edge.envfile import (
    EnvReader,
    comment_hint,
    is_explicit_path,
    located,
    override_warnings,
    read_env_file,
)
from bessai_edge.errors import ProfileError
from bessai_edge.hosts import address_fix_text, host_problem, split_url
from bessai_edge.i18n import _, ngettext
from bessai_edge.profile.fields import MAX_UNIT_ID
from bessai_edge.profile.registry import resolve_profile_path

MODES = ("modbus", "simulator")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_DEVICE = "inverter"
DEFAULT_HEALTH_LISTEN = "127.0.0.1:8000"

_SITE_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_DEVICE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
DEFAULT_SPOOL_DIR = "/var/spool/bessai"
_ROLE = re.compile(r"[A-Z][A-Z0-9_]{0,31}\Z")  # a profile's role name, upper-cased
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(i?B)?\Z", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
# Sizes a user may write with decimals (1.5G, 512,5M) or a thousands separator (1,000M).
_DECIMAL_SIZE = re.compile(r"(\d*)[.,](\d+)\s*([KMG]?)(i?B)?\Z", re.IGNORECASE)
_THOUSANDS_SIZE = re.compile(r"(\d{1,3}(?:,\d{3})+)\s*([KMG]?)(i?B)?\Z", re.IGNORECASE)

# Names set by the single-device variables and their DEVICE_<NAME>_<KEY> overrides.
_DEVICE_KEYS = {
    "host": "INVERTER_IP",
    "port": "INVERTER_PORT",
    "profile": "DRIVER_PROFILE_PATH",
    "unit_id": "MODBUS_SLAVE_ID",
}
_DEVICE_SUFFIXES = dict(zip(_DEVICE_KEYS, setting_names.DEVICE_FIELDS))

# Every variable this module reads, for the "did you mean" hint on misspelt names.
KNOWN_NAMES = frozenset({
    "SITE_ID", "BESSAI_MODE", "DEVICES", *_DEVICE_KEYS.values(),
    "SCAN_INTERVAL_S", "CONNECT_TIMEOUT_S", "REQUEST_TIMEOUT_S",
    "SPOOL_DIR", "SPOOL_SEGMENT_MAX_BYTES", "SPOOL_SEGMENT_MAX_AGE_S",
    "SPOOL_FSYNC_INTERVAL_S", "SPOOL_MAX_TOTAL_BYTES",
    "HEALTH_LISTEN", "LOG_LEVEL", "MQTT_ENABLED", "MQTT_BROKER_HOST",
    *alarms.SETTING_NAMES,
})


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    """One polled device: where it is, which profile decodes it, which unit ids."""

    name: str
    host: str            # empty in simulator mode: the child simulator's address is used
    port: int | None     # None: the profile's port (502 for every bundled profile)
    profile: str         # a bundled profile name or a path to a profile JSON file
    unit_id: int | None  # None: the profile's unit id
    unit_ids: dict       # role name (lower case) -> unit id, for multi-unit profiles
    # Single-device variable -> the one that sets it for this device, when they differ
    # (with DEVICES: INVERTER_IP -> DEVICE_SMA_IP, MODBUS_UNIT_ -> DEVICE_SMA_UNIT_).
    variables: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SpoolSettings:
    """Arguments of ``spool.Spool``."""

    directory: str
    segment_max_bytes: int
    segment_max_age_s: float
    fsync_interval_s: float
    max_total_bytes: int


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of ``bessai run``, validated."""

    site_id: str
    mode: str
    devices: tuple
    scan_interval_s: float
    connect_timeout_s: float
    request_timeout_s: float | None  # None: each profile's request timeout
    spool: SpoolSettings
    health_listen: tuple | None      # (host, port), or None when disabled
    log_level: str
    limits: alarms.LimitSettings
    mqtt_enabled: str                # read by the forwarder; kept here for `bessai check`
    mqtt_broker_host: str


class SettingsEnvironment(dict):
    """Variables of the settings environment, with the problems found in their names.

    ``load_settings`` reports ``name_problems`` together with the invalid values.
    """

    def __init__(self, variables, name_problems=(), unreadable=(), warnings=(), env_file=None,
                 process_names=(), lines=None):
        super().__init__(variables)
        self.name_problems = list(name_problems)
        self.unreadable = frozenset(unreadable)  # names whose file line was reported bad
        self.warnings = list(warnings)  # lines to show without failing, such as repeats
        self.env_file = env_file
        self.process_names = frozenset(process_names)  # set by the process, over env_file
        self.lines = lines or {}  # name -> line of env_file that sets its value


def read_environment(env_file=None, environ=None, misspelt_name_problem=None):
    """Return the settings environment: ``env_file``'s variables, overridden by ``environ``.

    ``environ`` defaults to ``os.environ``. A variable set in it overrides the file even
    when it is empty, so ``HEALTH_LISTEN= bessai run --env-file ...`` disables the
    health server. Misspelt names in the file go to ``name_problems``:
    ``misspelt_name_problem(where, name)`` returns the problem line of a name set at
    ``where`` (FILE:LINE), or None,
    and defaults to the check for ``bessai run``'s names. Variables set twice in the
    file, or changed by ``environ``, go to ``warnings``. Only a file that cannot be
    read or parsed raises ConfigError here.
    """
    environ = os.environ if environ is None else environ
    if env_file is None:
        return SettingsEnvironment(environ)
    if misspelt_name_problem is None:
        misspelt_name_problem = _misspelt_run_name
    contents = read_env_file(env_file)
    variables = contents.variables
    warnings = contents.repeats + override_warnings(env_file, variables, environ)
    problems = [misspelt_name_problem(f"{env_file}:{contents.lines[name]}", name)
                for name in variables]
    # The units pass the file to systemd's EnvironmentFile= too, so the process
    # environment repeats its values: only a different value overrides the file's line.
    overriding = {name for name in environ if variables.get(name) != environ[name]}
    variables.update(environ)
    return SettingsEnvironment(
        variables, contents.problems + [problem for problem in problems if problem],
        contents.unreadable - overriding, warnings, env_file, overriding,
        {name: line for name, line in contents.lines.items() if name not in overriding})


def _misspelt_run_name(where, name):
    return setting_names.misspelt_name_problem(where, name, KNOWN_NAMES)


def load_settings(environ):
    """Validate the settings in ``environ``; raise ConfigError listing every problem.

    The problems include ``environ.name_problems`` when ``environ`` comes from
    ``read_environment``.
    """
    reader = EnvReader(environ)
    reader.problems.extend(getattr(environ, "name_problems", ()))
    site_id = _read_site_id(reader)
    mode = reader.choice("BESSAI_MODE", MODES, "modbus")
    written_mode = reader.raw("BESSAI_MODE")
    # An invalid mode is reported once: the devices are read without its requirements,
    # so BESSAI_MODE=real does not also report a missing INVERTER_IP.
    mode_known = not written_mode or written_mode.lower() in MODES
    devices = _read_devices(reader, mode if mode_known else None)
    scan_interval_s = reader.number("SCAN_INTERVAL_S", 1.0, minimum=0.05, maximum=3600)
    settings = Settings(
        site_id=site_id,
        mode=mode,
        devices=devices,
        scan_interval_s=scan_interval_s,
        connect_timeout_s=reader.number("CONNECT_TIMEOUT_S", 2.0, minimum=0.05, maximum=30),
        request_timeout_s=reader.number("REQUEST_TIMEOUT_S", None, minimum=0.05, maximum=30),
        spool=_read_spool(reader),
        health_listen=_read_listen(reader),
        log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, "info"),
        limits=alarms.read_limit_settings(reader, scan_interval_s),
        mqtt_enabled=reader.raw("MQTT_ENABLED"),
        mqtt_broker_host=reader.raw("MQTT_BROKER_HOST"),
    )
    reader.problems = list(dict.fromkeys(reader.problems))  # fallbacks can repeat one
    reader.raise_if_invalid()
    return settings


def _read_site_id(reader):
    site_id = reader.string("SITE_ID", required=True, accepted=_(
        "1 to 64 ASCII letters (no accents or ñ), digits, '.', '_' or '-', starting with a "
        "letter or digit"))
    if site_id and not re.fullmatch(_SITE_ID, site_id):
        reader.invalid("SITE_ID", site_id, _(
            "expected 1 to 64 ASCII letters (no accents or ñ), digits, '.', '_' or '-', "
            "starting with a letter or digit"))
        return None
    return site_id


def _read_devices(reader, mode):
    common_unit_ids = _read_unit_ids(reader, "MODBUS_UNIT_")
    names_text = reader.raw("DEVICES")
    if not names_text:
        reader.problems.extend(setting_names.device_name_problems(reader.environ, ()))
        return (_read_device(reader, mode, DEFAULT_DEVICE, None, common_unit_ids),)
    # Names are not lower-cased: DEVICES=Inverter is rejected with the rule, so that a
    # device's name in the records is always the one the settings file spells.
    names = [name.strip() for name in names_text.split(",")]
    invalid = [name for name in names if not _DEVICE_NAME.match(name)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if invalid or repeated:
        text = _("expected distinct names separated by commas, each a lower-case letter "
                 "followed by up to 31 lower-case letters, digits or '_'")
        if invalid:
            text += "; " + ngettext("invalid name: {names}", "invalid names: {names}",
                                    len(invalid)).format(
                names=", ".join(repr(name) for name in invalid))
        if repeated:
            text += "; " + ngettext("name listed more than once: {names}",
                                    "names listed more than once: {names}",
                                    len(repeated)).format(names=", ".join(repeated))
        reader.invalid("DEVICES", names_text, text)
        return ()
    reader.problems.extend(setting_names.device_name_problems(reader.environ, names))
    profiles = {}  # device name -> its loaded profile, None when it did not load
    devices = tuple(
        _read_device(reader, mode, name, f"DEVICE_{name.upper()}_", common_unit_ids,
                     len(names) > 1, profiles)
        for name in names)
    _check_distinct_endpoints(reader, mode, devices, profiles)
    return devices


def _read_device(reader, mode, name, prefix, common_unit_ids, several_devices=False,
                 profiles=None):
    def variable(key):
        # The device's own variable when it is set, or when the single-device variable
        # it falls back to is unset too, so that "missing" names the device's variable.
        specific = f"{prefix}{_DEVICE_SUFFIXES[key]}" if prefix else None
        if specific and (reader.raw(specific) or not reader.raw(_DEVICE_KEYS[key])):
            return specific
        return _DEVICE_KEYS[key]

    profile = reader.string(variable("profile"), required=True, accepted=_(
        "a bundled profile name such as huawei_sun2000 (list them with `bessai profiles`) "
        "or the path of a profile JSON file"))
    profile_found = False
    if profile:
        try:
            resolve_profile_path(profile)
            profile_found = True
        except ProfileError as error:
            reader.invalid(variable("profile"), profile, str(error))
    host = ""
    if mode in ("modbus", None):  # None: BESSAI_MODE is invalid, so the host is optional
        host = reader.string(variable("host"), required=mode == "modbus", accepted=_(
            "the IP address or host name of the device, e.g. 192.168.1.100"))
        port_name = f"{prefix}{_DEVICE_SUFFIXES['port']}" if prefix else _DEVICE_KEYS["port"]
        problem = host_problem(host, port_name) if host else None
        if problem:
            reader.invalid(variable("host"), host, problem)
    device = DeviceSettings(
        name=name,
        host=host,
        port=reader.integer(variable("port"), None, minimum=1, maximum=65535),
        profile=profile or "",
        unit_id=reader.integer(variable("unit_id"), None, minimum=0, maximum=MAX_UNIT_ID),
        unit_ids={**common_unit_ids, **(_read_unit_ids(reader, f"{prefix}UNIT_") if prefix else {})},
        variables=_device_variables(variable, prefix),
    )
    loaded = _load_profile(reader, device.profile) if profile_found else None
    if loaded is not None and device.unit_ids:
        _check_unit_roles(reader, device, loaded, prefix, several_devices)
    if profiles is not None:
        profiles[name] = loaded
    return device


def _load_profile(reader, name):
    """Return the loaded profile, or None after adding its problems to the others."""
    from bessai_edge.profile import load_profile

    try:
        return load_profile(name)
    except ProfileError as error:
        # Reported with the settings, so that one run lists every problem.
        reader.problems.extend(getattr(error, "problems", None) or [str(error)])
        return None


def _check_unit_roles(reader, device, profile, prefix, several_devices):
    """Report unit roles the device's profile lacks, naming the variable that set each.

    ``prefix`` is the device's ``DEVICE_<NAME>_`` (None for the single device). A role
    set by ``DEVICE_<NAME>_UNIT_<ROLE>`` is reported under that name. ``MODBUS_UNIT_<ROLE>``
    applies to every device, so with several devices the fix is to set the role for
    the device that has it.
    """
    roles = sorted(role.name for role in profile.unit_roles.values())
    for role in device.unit_ids:
        if role in roles:
            continue
        specific = f"{prefix}UNIT_{role.upper()}" if prefix else None
        own = specific is not None and reader.raw(specific)
        name = specific if own else f"MODBUS_UNIT_{role.upper()}"
        reader.invalid(name, reader.raw(name), _unknown_role_text(
            device, profile.name, role, roles, name, several_devices and not own))


def _unknown_role_text(device, profile, role, roles, name, shared):
    text = _("profile {profile} of device {device} has no unit role {role!r}").format(
        profile=profile, device=device.name, role=role)
    if roles:
        text += _(" (its roles: {roles})").format(roles=", ".join(roles))
    else:
        text += _(" (it reads only its main unit)")
    close = difflib.get_close_matches(role, roles, n=1, cutoff=0.75)
    if close:
        return text + _("; did you mean {name}?").format(
            name=name[:-len(role)] + close[0].upper())
    if shared:
        return text + _("; with several devices, set it only for the device that has the "
                        "role, as DEVICE_<NAME>_UNIT_{role}").format(role=role.upper())
    return text + _("; remove the setting or choose another profile")


def unused_device_variables(environ, devices):
    """Return a warning for each single-device variable set while no device of DEVICES uses it.

    With DEVICES, INVERTER_IP, INVERTER_PORT, DRIVER_PROFILE_PATH and MODBUS_SLAVE_ID only
    stand in for a device that lacks its own DEVICE_<NAME>_ variable. Set next to a full
    list, as after a move from one device to several, they do nothing.
    """
    if not environ.get("DEVICES", "").strip():
        return []
    warnings = []
    for single in _DEVICE_KEYS.values():
        if not environ.get(single, "").strip():
            continue
        if devices and all(single in device.variables for device in devices):
            warnings.append(_("{name} is set, but every device in DEVICES has its own "
                              "variable for it ({own}), so it is not used: remove it").format(
                                  name=single, own=", ".join(
                                      device.variables[single] for device in devices)))
    return warnings


def _device_variables(variable, prefix):
    """Return single-device variable -> the variable ``variable(key)`` uses for a device."""
    if not prefix:
        return {}
    names = {_DEVICE_KEYS[key]: variable(key) for key in _DEVICE_KEYS}
    names["MODBUS_UNIT_"] = f"{prefix}UNIT_"
    return {single: own for single, own in names.items() if single != own}


def _read_unit_ids(reader, prefix):
    unit_ids = {}
    for name in sorted(reader.environ):
        if not name.startswith(prefix) or not reader.raw(name):
            continue
        role = name[len(prefix):]
        if role == "ID":
            # MODBUS_UNIT_ID reads like the field's "unit id", but the unit id of the
            # device itself is MODBUS_SLAVE_ID. No bundled profile names a role "id".
            reader.invalid(name, reader.raw(name), _(
                "{prefix}<ROLE> sets the unit id of a profile's role, and no role is "
                "called ID; set the device's own unit id with {slave_id}").format(
                    prefix=prefix, slave_id=prefix.replace("UNIT_", "SLAVE_ID")))
            continue
        if role == "MAIN":
            # The main role's unit id is the device's own: a second way to set it would
            # let the logs show MODBUS_SLAVE_ID while the requests went elsewhere.
            reader.invalid(name, reader.raw(name), _(
                "the main unit id is the device's own; set it with {slave_id}").format(
                    slave_id=prefix.replace("UNIT_", "SLAVE_ID")))
            continue
        if not _ROLE.match(role):
            reader.invalid(name, reader.raw(name), _(
                "the role after {prefix} must be an upper-case letter followed by up to 31 "
                "upper-case letters, digits or '_', as in {prefix}VEBUS").format(prefix=prefix))
            continue
        if reader.raw(name).lower() in alarms.OFF_WORDS:
            unit_ids[role.lower()] = None  # a part the site lacks: its points are not read
            continue
        unit_id = reader.integer(name, None, minimum=0, maximum=MAX_UNIT_ID)
        if unit_id is not None:
            unit_ids[role.lower()] = unit_id
    return unit_ids


def _check_distinct_endpoints(reader, mode, devices, profiles):
    """Report devices that poll the same address, port and unit id with the same profile.

    Ports and unit ids left to the profile are compared as the profile sets them, so
    a device with DEVICE_<NAME>_PORT=502 matches one that takes 502 from the profile.
    Addresses are compared as written: localhost and 127.0.0.1 count as different.
    """
    if mode != "modbus" or len(devices) < 2:
        return
    seen = {}
    for device in devices:
        if not device.host:
            continue  # its missing address is reported already
        port, unit_id = _resolved_port_and_unit(device, profiles.get(device.name))
        key = (device.host, port, unit_id, device.profile)
        if key in seen:
            endpoint = device.host if port is None else format_endpoint(device.host, port)
            reader.problems.append(_(
                "devices {first} and {second} are the same device ({host}, unit id {unit}): "
                "give each its own DEVICE_<NAME>_IP, DEVICE_<NAME>_PORT or "
                "DEVICE_<NAME>_SLAVE_ID").format(
                    first=seen[key], second=device.name, host=endpoint,
                    unit=unit_id if unit_id is not None else _("from profile")))
        seen[key] = device.name


def _resolved_port_and_unit(device, profile):
    """Return the device's (port, unit id), taking unset ones from its loaded ``profile``.

    A value stays None when the profile did not load: that is reported already.
    """
    if profile is None:
        return device.port, device.unit_id
    return (profile.port if device.port is None else device.port,
            profile.unit_id if device.unit_id is None else device.unit_id)


def _read_size(reader, name, default, minimum, maximum):
    """Return the size in bytes, the default when unset, or None when the value is invalid."""
    value = reader.raw(name)
    if not value:
        return default
    match = _SIZE.match(value)
    size = int(match.group(1)) * _SIZE_FACTORS[match.group(2).upper()] if match else None
    if size is None or not minimum <= size <= maximum:
        reader.invalid(name, value, _(
            "expected a whole number from {minimum} bytes to {maximum}, alone or with a K, "
            "M or G suffix (powers of 1024, also written KB or KiB), e.g. 64M or 1536M for "
            "1.5G").format(minimum=minimum, maximum=f"{maximum // 1024 ** 3}G")
            + _size_hint(value, minimum, maximum))
        return None
    return size


def _size_hint(value, minimum, maximum):
    """Return a hint for a size written with decimals or a thousands separator, else ``""``.

    A value with decimals is rewritten in the largest unit that makes it a whole number
    (512,5M as 524800K). The hint suggests only values in range.
    """
    thousands = _THOUSANDS_SIZE.match(value)
    decimal = _DECIMAL_SIZE.match(value)
    fixed = None
    if decimal:
        whole, fraction, unit = decimal.group(1) or "0", decimal.group(2), decimal.group(3)
        fixed = _whole_size_text(int(whole + fraction) * _SIZE_FACTORS[unit.upper()],
                                 10 ** len(fraction), minimum, maximum)
    if thousands:
        digits, unit = thousands.group(1).replace(",", ""), thousands.group(2).upper()
        size = int(digits) * _SIZE_FACTORS[unit]
        without_separator = f"{digits}{unit}" if minimum <= size <= maximum else None
        if without_separator and fixed:
            # 1,000M may be a thousand megabytes or one with three decimals: name both.
            return _("; write the size without a thousands separator ({whole}) or, if the "
                     "comma marks decimals, as {fixed}").format(whole=without_separator,
                                                               fixed=fixed)
        if without_separator:
            return _("; write the size without a thousands separator: {whole}").format(
                whole=without_separator)
    if fixed:
        return _("; write the size as a whole number, without decimals: {fixed}").format(
            fixed=fixed)
    return ""


def _whole_size_text(numerator, denominator, minimum, maximum):
    """Return ``numerator / denominator`` bytes in the largest unit that makes it a whole
    number (``1536M``), or None when it is not whole bytes or is out of range."""
    if numerator % denominator:
        return None
    size = numerator // denominator
    if not minimum <= size <= maximum:
        return None
    for unit in ("G", "M", "K", ""):
        if size % _SIZE_FACTORS[unit] == 0:
            return f"{size // _SIZE_FACTORS[unit]}{unit}"
    return None


def _size_text(reader, name, size):
    """Return a size as the user wrote it, or marked as the default, with its bytes."""
    written = reader.raw(name)
    if not written:
        return _("{size} bytes (default)").format(size=size)
    if written == str(size):
        return written
    return _("{written} ({size} bytes)").format(written=written, size=size)


def _read_spool(reader):
    directory = reader.string("SPOOL_DIR", DEFAULT_SPOOL_DIR)
    if not is_explicit_path(directory):
        reader.invalid("SPOOL_DIR", directory, _(
            "expected an absolute path such as /var/spool/bessai, or a path relative to the "
            "working directory that starts with ./ or ../"))
    segment_max_bytes = _read_size(reader, "SPOOL_SEGMENT_MAX_BYTES", 16 * 1024 ** 2, 4096,
                                   4 * 1024 ** 3)
    max_total_bytes = _read_size(reader, "SPOOL_MAX_TOTAL_BYTES", 512 * 1024 ** 2, 8192,
                                 1024 ** 4)
    # An invalid size is left out of the check below, which would otherwise compare the
    # default with the other size as if the user had written it.
    if None not in (segment_max_bytes, max_total_bytes) and (
            max_total_bytes < 2 * segment_max_bytes):
        reader.problems.append(located(reader.environ, "SPOOL_MAX_TOTAL_BYTES", _(
            "SPOOL_MAX_TOTAL_BYTES={total} is less than twice SPOOL_SEGMENT_MAX_BYTES={segment}: "
            "the spool must hold at least two segments; raise the total or lower the "
            "segment size").format(
                total=_size_text(reader, "SPOOL_MAX_TOTAL_BYTES", max_total_bytes),
                segment=_size_text(reader, "SPOOL_SEGMENT_MAX_BYTES", segment_max_bytes)),
            "SPOOL_SEGMENT_MAX_BYTES"))
    return SpoolSettings(
        directory=directory,
        segment_max_bytes=segment_max_bytes or 0,
        segment_max_age_s=reader.number("SPOOL_SEGMENT_MAX_AGE_S", 3600.0, minimum=1),
        fsync_interval_s=reader.number("SPOOL_FSYNC_INTERVAL_S", 5.0, minimum=0, maximum=3600),
        max_total_bytes=max_total_bytes or 0,
    )


def spool_directory_problems(environ):
    """Return the problem of the spool directory ``environ`` names, as a list of 0 or 1 lines.

    ``bessai run`` calls it before it opens the spool, so that a directory that is
    missing, on a read-only file system or not writable by the current user is listed
    together with any invalid settings. ``bessai check`` calls it to warn before the
    service fails on it. The writability is that of the user running the check, which
    may not be the service's user.
    """
    from bessai_edge.spool.segments import directory_error, not_writable_text

    directory = environ.get("SPOOL_DIR") or DEFAULT_SPOOL_DIR
    if not is_explicit_path(directory):
        return []  # the settings check reports the value itself
    try:
        os.listdir(directory)
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
    except (OSError, ValueError) as error:
        return [str(directory_error(directory, error)) + comment_hint(directory)]
    if read_only:
        return [read_only_spool_problem(directory, "bessai")]
    # The test that Spool.open() makes, with the same message.
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=True):
        return [not_writable_text(directory)]
    return []


def read_only_spool_problem(directory, unit):
    """Return the problem of a spool directory that ``unit`` finds read-only.

    ``unit`` is the systemd unit of the calling command, ``bessai`` or ``bessai-forward``.
    """
    if os.environ.get("INVOCATION_ID"):
        # Under systemd the unit's ProtectSystem=strict mounts all but its
        # ReadWritePaths= read-only, so remounting is not the fix. Both units read
        # SPOOL_DIR from the same settings file, so both need the drop-in.
        return _("spool directory {directory} is read-only for the service: the {unit} unit "
                 "may write only to {default}; set SPOOL_DIR={default}, or add the "
                 "directory with ReadWritePaths= in a drop-in for both units (systemctl edit "
                 "bessai, then systemctl edit bessai-forward)").format(
                     directory=directory, unit=unit, default=DEFAULT_SPOOL_DIR)
    return _("spool directory {directory} is on a read-only file system: remount it "
             "read-write or set SPOOL_DIR to a directory on a writable file system"
             ).format(directory=directory)


def _read_listen(reader):
    if "HEALTH_LISTEN" not in reader.environ:
        text = DEFAULT_HEALTH_LISTEN
    else:
        text = reader.raw("HEALTH_LISTEN")
        if not text or text.lower() in alarms.OFF_WORDS:
            return None  # set and empty, or off: the health server is off
    listen = parse_listen(text)
    if listen is None:
        expected = _("expected HOST:PORT where HOST is an IP address or localhost, e.g. "
                     "127.0.0.1:8000 or [::1]:8000, or off (or empty) to turn the health "
                     "server off")
        reader.invalid("HEALTH_LISTEN", text, expected + _listen_url_hint(text))
    return listen


def _listen_url_hint(text):
    """Return the hint for a HEALTH_LISTEN written as a URL, such as http://HOST:PORT/."""
    scheme, endpoint, path = split_url(text)
    if not (scheme or path) or parse_listen(endpoint) is None:
        return ""
    return "; " + address_fix_text(scheme or path, endpoint)


def parse_listen(text):
    """Parse ``HOST:PORT`` or ``[V6]:PORT`` into (host, port), or return None."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9.]+|localhost):(\d{1,5})", text)
    if not match:
        return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    if not 1 <= port <= 65535:
        return None
    return host, port
