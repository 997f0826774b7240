"""Settings from the environment, in systemd ``EnvironmentFile=`` syntax.

``parse_env_file`` reads a file the way systemd does for the subset people write by
hand: ``KEY=VALUE`` lines, ``#`` and ``;`` comments, single or double quotes and a
trailing backslash that continues a line. ``EnvReader`` turns the variables into typed
values and collects every problem, so a user sees all invalid settings at once.
"""

import codecs
import math
import os
import re
import stat
import typing

from bessai_edge import access
from bessai_edge.errors import ConfigError
from bessai_edge.i18n import _, os_error_text

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DECIMAL_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+", re.ASCII)
_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(,[0-9]{3})+", re.ASCII)
# A number followed by a unit, as a technician may write it: 5s, 500 ms, 45°C, 10%.
_NUMBER_WITH_UNIT = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?\s*(ms|s|secs?|seg|min|h|%|[°º]?c|"
                               r"degc|k?wh?|mw|hz)", re.IGNORECASE)
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_INLINE_COMMENT = re.compile(r"#|\s;")  # systemd keeps such text in the value


def is_explicit_path(path):
    """Return True for an absolute path or one that starts with ``./`` or ``../``.

    ``var/spool/bessai``, a likely typo for ``/var/spool/bessai``, returns False.
    """
    return os.path.isabs(path) or path in (".", "..") or path.startswith(("./", "../"))


class EnvFileContents(typing.NamedTuple):
    """The contents of an EnvironmentFile, as ``read_env_file`` returns them."""

    variables: dict
    problems: list      # one line per bad line
    unreadable: set     # names of bad lines that still name a variable
    repeats: list       # one warning per variable set again on a later line
    lines: dict         # name -> number of the line whose value is in effect


def parse_env_file(path):
    """Parse an EnvironmentFile into a dict; raise ConfigError naming every bad line."""
    contents = read_env_file(path)
    if contents.problems:
        raise ConfigError(contents.problems)
    return contents.variables


def read_env_file(path):
    """Return the ``EnvFileContents`` of an EnvironmentFile.

    Bad lines are left out. The unreadable names are those of left-out lines that
    still name a variable (``SITE_ID`` without ``=``, a value with bad quoting), so the
    settings check neither reports them missing nor checks a value for them. A
    variable set on several lines takes the last value, as under systemd. Each later
    line gets a warning in ``repeats``, because an old line further down overrides an
    edit made near the top. Raises
    ConfigError only when the file cannot be read at all, so that the check can report
    the bad lines together with the invalid values. A UTF-8 byte order mark is skipped.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except PermissionError as error:
        raise ConfigError(_permission_problem(path, error)) from error
    except OSError as error:
        raise ConfigError(_("cannot read settings file {path}: {error}").format(
            path=path, error=os_error_text(error))) from error
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(_("settings file {path} is UTF-16 text: save it as UTF-8").format(
            path=path))
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines, problems, unreadable = _decode_lines(data, path)
    repeats = []
    value_lines = {}
    variables, line_problems, line_unreadable = _parse_env_text("\n".join(lines), path,
                                                                repeats, value_lines)
    return EnvFileContents(variables, problems + line_problems, unreadable | line_unreadable,
                           repeats, value_lines)


def _permission_problem(path, error):
    """Return the message for a settings file the user may not read, with what to do next.

    The package installs ``/etc/bessai/bessai.env`` as 0640 root:bessai, because it may
    contain MQTT credentials, so a member of group bessai may read it without root.
    """
    try:
        status = os.stat(path)
    except OSError:
        status = None
    if access.user_name() == access.SERVICE_USER:
        # The services cannot use sudo: the fix is the file's owner and mode.
        return _("cannot read settings file {path}: {error}; the services read it as user "
                 "{user}, through group {user}: chown root:{user} {path} and chmod 640 "
                 "{path}").format(path=path, error=os_error_text(error),
                                  user=access.SERVICE_USER)
    group = None
    if status is not None and status.st_mode & stat.S_IRGRP:
        group = access.group_name(status.st_gid)
    if group is None or access.is_in_group(status.st_gid):
        return _("cannot read settings file {path}: {error}; run the command with sudo"
                 ).format(path=path, error=os_error_text(error))
    return _("cannot read settings file {path}: {error}; run the command with sudo, or add "
             "{user} to group {group}, which may read the file (sudo adduser {user} {group}, "
             "then log in again)").format(path=path, error=os_error_text(error),
                                          user=access.user_name(), group=group)


def _decode_lines(data, path):
    """Decode ``data`` line by line. A line that is not UTF-8 is reported and read as empty.

    Such a comment line is left alone, because nothing in it is read.
    """
    lines, problems, unreadable = [], [], set()
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8"))
            continue
        except UnicodeDecodeError as error:
            byte = raw[error.start]
        lines.append("")
        if raw.lstrip()[:1] in (b"#", b";"):
            continue
        name = raw.partition(b"=")[0].strip().decode("ascii", "replace")
        if _NAME.match(name):
            unreadable.add(name)
        if problems:
            problems.append(_("{path}:{line}: byte 0x{byte:02x} is not UTF-8 text").format(
                path=path, line=number, byte=byte))
            continue
        problems.append(_("{path}:{line}: byte 0x{byte:02x} is not UTF-8 text; save the "
                          "file as UTF-8, e.g. for a Latin-1 file: iconv -f latin1 -t "
                          "utf-8 {path} > {path}.new, then move {path}.new over {path}"
                          ).format(path=path, line=number, byte=byte))
    return lines, problems, unreadable


def parse_env_text(text, path="<environment>"):
    """Parse EnvironmentFile text into a dict; raise ConfigError naming every bad line."""
    variables, problems, _unreadable = _parse_env_text(text, path)
    if problems:
        raise ConfigError(problems)
    return variables


def _parse_env_text(text, path, repeats=None, value_lines=None):
    """Parse ``text``; ``repeats`` and ``value_lines`` (name -> line), when given, are filled in."""
    variables = {}
    first_lines = {}
    problems = []
    unreadable = set()
    logical_lines = _join_continued_lines(text.splitlines())
    for number, line in logical_lines:
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if "\0" in stripped:
            name = stripped.partition("=")[0].strip()
            if _NAME.match(name):
                unreadable.add(name)
            problems.append(_("{path}:{line}: the line contains a NUL byte: remove it").format(
                path=path, line=number))
            continue
        name, sep, raw_value = stripped.partition("=")
        name = name.strip()
        exported = name.split(None, 1)
        if sep and len(exported) == 2 and exported[0] == "export" and _NAME.match(exported[1]):
            # Shell syntax, named as such: "expected NAME=VALUE" would not say what is wrong.
            unreadable.add(exported[1])
            problems.append(_("{path}:{line}: invalid line {text!r}: 'export' is shell "
                              "syntax; write the line without it").format(
                path=path, line=number, text=shortened(stripped)))
            continue
        if not sep or not _NAME.match(name):
            if _NAME.match(name):
                unreadable.add(name)
            problems.append(_("{path}:{line}: invalid line {text!r}: expected NAME=VALUE").format(
                path=path, line=number, text=shortened(stripped)))
            continue
        try:
            variables[name] = _unquote(raw_value.strip())
        except ValueError as error:
            problems.append(f"{path}:{number}: {name}: {error}")
            unreadable.add(name)
            continue
        if value_lines is not None:
            value_lines[name] = number
        first = first_lines.setdefault(name, number)
        if repeats is not None and first != number:
            repeats.append(_("{path}:{line}: {name} is set again (first on line {first}); "
                             "the last line that sets it wins: delete the lines you do not "
                             "want").format(path=path, line=number, name=name, first=first))
    return variables, problems, unreadable


def _join_continued_lines(lines):
    joined = []
    pending, start = None, 0
    for number, line in enumerate(lines, 1):
        if pending is None:
            pending, start = "", number
        if line.endswith("\\") and not line.strip().startswith(("#", ";")):
            pending += line[:-1]
            continue
        joined.append((start, pending + line))
        pending = None
    if pending is not None:
        joined.append((start, pending))
    return joined


def _unquote(value):
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\(["\\$`])', r"\1", value[1:-1])
    if value[:1] in ("'", '"'):
        closing = value.find(value[0], 1)
        if closing > 0:
            raise ValueError(_("text after the closing quote in {value!r}: remove it, or put "
                               "a comment on its own line").format(value=shortened(value)))
        # Shown as written: a repr would escape the very quote that is wrong.
        raise ValueError(_("unterminated quote: the value {value} starts with {quote} but "
                           "does not end with it; end it with the same quote, or remove the "
                           "quotes").format(value=shortened(value), quote=value[0]))
    return value


# Maximum length of a value that a settings message quotes whole. A longer one is cut to
# QUOTED_PREFIX_CHARS, with an ellipsis and its length, so that a pasted file or a
# runaway value does not make a message of many kilobytes.
MAX_QUOTED_CHARS = 80
QUOTED_PREFIX_CHARS = 60


class _ShortenedValue:
    """A long setting value that formats as its first characters, an ellipsis and its length."""

    def __init__(self, value):
        self.value = value

    def _suffix(self):
        return "\u2026 " + _("({count} characters)").format(count=len(self.value))

    def __repr__(self):
        return repr(self.value[:QUOTED_PREFIX_CHARS]) + self._suffix()

    def __str__(self):
        return self.value[:QUOTED_PREFIX_CHARS] + self._suffix()

    def __format__(self, spec):
        return format(str(self), spec)


def shortened(value):
    """Return ``value`` for ``{value!r}`` or ``{value}`` in a message, cut when it is long.

    Values of at most MAX_QUOTED_CHARS characters, and values that are not strings,
    come back unchanged.
    """
    if isinstance(value, str) and len(value) > MAX_QUOTED_CHARS:
        return _ShortenedValue(value)
    return value


class EnvReader:
    """Typed access to environment variables that collects every problem.

    Each getter returns the parsed value, or the default when the variable is unset
    or empty. An invalid value is recorded and the default returned, so reading goes
    on; ``raise_if_invalid`` then raises one ConfigError listing every problem.
    """

    def __init__(self, environ):
        self.environ = environ
        self.problems = []
        self.unreadable = frozenset(getattr(environ, "unreadable", ()))
        # Names the process environment sets over the settings file, so that a message
        # about one does not send the reader to a file that contains another value.
        self.process_names = frozenset(getattr(environ, "process_names", ()))
        self.env_file = getattr(environ, "env_file", None)

    def invalid(self, name, value, accepted):
        """Record that NAME=value is invalid and what would be accepted."""
        if name in self.unreadable:
            return  # its line was reported already
        problem = _("{name}={value!r} is invalid: {accepted}").format(
            name=name, value=shortened(value), accepted=accepted) + comment_hint(value)
        if name in self.process_names:
            problem += _(" (set in the process environment, which overrides {path}: "
                         "unset it there)").format(path=self.env_file)
        else:
            problem = located(self.environ, name, problem)
        self.problems.append(problem)

    def raw(self, name):
        value = self.environ.get(name, "")
        return value.strip()

    def string(self, name, default=None, required=False, pattern=None, accepted=""):
        value = self.raw(name)
        if not value:
            if required and name not in self.unreadable:
                self.problems.append(_("{name} is missing: {accepted}").format(
                    name=name, accepted=accepted or _("set it in the settings file")))
            return default
        if pattern and not re.fullmatch(pattern, value):
            self.invalid(name, value, accepted)
            return default
        return value

    def choice(self, name, choices, default):
        value = self.raw(name)
        if not value:
            return default
        if value.lower() not in choices:
            self.invalid(name, value, _("expected one of {choices}").format(
                choices=", ".join(choices)))
            return default
        return value.lower()

    def boolean(self, name, default):
        value = self.raw(name)
        if not value:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.invalid(name, value, _("expected true or false"))
        return default

    def integer(self, name, default, minimum=None, maximum=None):
        value = self.raw(name)
        if not value:
            return default
        # int() alone would also take "1_0", "0x10" and non-ASCII digits, which a typo
        # can produce and which would silently select another value.
        if not _DECIMAL_INTEGER.fullmatch(value):
            self.invalid(name, value, _range_text(_("an integer"), minimum, maximum)
                         + number_hint(name, value))
            return default
        number = int(value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            self.invalid(name, value, _range_text(_("an integer"), minimum, maximum))
            return default
        return number

    def number(self, name, default, minimum=None, maximum=None):
        value = self.raw(name)
        if not value:
            return default
        number = parse_decimal(value)
        if not math.isfinite(number) or (minimum is not None and number < minimum) or (
                maximum is not None and number > maximum):
            self.invalid(name, value, _range_text(_("a number"), minimum, maximum)
                         + number_hint(name, value))
            return default
        return number

    def raise_if_invalid(self):
        """Raise one ConfigError listing the problems, those of the settings file in line order."""
        if self.problems:
            raise ConfigError(sorted(self.problems, key=self._file_line))

    def _file_line(self, problem):
        """Return the settings file line that ``problem`` starts with, or infinity."""
        prefix = f"{self.env_file}:"
        if self.env_file is None or not problem.startswith(prefix):
            return math.inf
        number = problem[len(prefix):].partition(":")[0]
        return int(number) if number.isdigit() else math.inf


def located(environ, name, problem, *other_names):
    """Return ``problem`` about variable ``name``, led by FILE:LINE when the file sets it.

    For a problem of two or more variables, ``other_names`` are tried in turn when the
    file does not set ``name``. ``environ`` is a ``settings.SettingsEnvironment`` read
    with ``--env-file``, or any mapping (then the problem is returned as it is).
    """
    lines = getattr(environ, "lines", {})
    for candidate in (name, *other_names):
        line = lines.get(candidate)
        if line is not None:
            return f"{environ.env_file}:{line}: {problem}"
    return problem


def comment_hint(value):
    """Return a hint for a value that carries a comment (``x # note``), else ``""``."""
    if _INLINE_COMMENT.search(str(value)):
        # systemd keeps the text after "#" in the value, and this parser does too.
        return _("; a comment ('#' or ';') after the value is part of it, so put the "
                 "comment on its own line")
    return ""


def override_warnings(path, file_variables, environ):
    """Return a warning for each variable of the file that ``environ`` sets differently.

    The installed service reads only the file, so a value left in a technician's shell
    would make ``check`` test other settings than the service runs with.
    """
    return [_("{path}: {name} is set in the process environment ({value!r}), which overrides "
              "the file's {file_value!r}; the service reads only the file: unset {name} to "
              "check the file as the service sees it").format(
                  path=path, name=name, value=shortened(environ[name]),
                  file_value=shortened(value))
            for name, value in file_variables.items()
            if name in environ and environ[name] != value]


def parse_decimal(text):
    """Return ``text`` as a float if it is a plain decimal number (``-1.5``, ``2e3``), else NaN.

    ``float()`` alone would also take ``1_0``, ``inf`` and non-ASCII digits.
    """
    return float(text) if _DECIMAL_NUMBER.fullmatch(text) else math.nan


def number_hint(name, value):
    """Return a hint for a number written with a decimal comma or with a unit, else ``""``."""
    return decimal_comma_hint(value) or unit_hint(name, value)


def unit_hint(name, value):
    """Return a hint for a number written with its unit (``5s``), else ``""``.

    The unit of a setting is the suffix of its name (_S, _KW, _HZ), so the hint names it
    rather than converting: ``500ms`` in a setting in seconds is 0.5, not 500.
    """
    match = _NUMBER_WITH_UNIT.fullmatch(value.strip())
    if match is None:
        return ""
    units = {"_S": _("seconds"), "_KW": "kW", "_HZ": "Hz"}
    unit = next((text for suffix, text in units.items() if name.endswith(suffix)), None)
    if unit is None:
        return _("; write the number alone, without {unit}").format(unit=match.group(1))
    return _("; write the number alone, without {unit}: {name} is in {setting_unit}").format(
        unit=match.group(1), name=name, setting_unit=unit)


def decimal_comma_hint(value):
    """Return a hint for a number written with a comma (``0,5``, ``1,000``), else ``""``."""
    if _THOUSANDS.fullmatch(value):
        # 1,000 may be a thousand or one with three decimals: name both readings.
        return _("; write a number without a thousands separator ({whole}), and decimals "
                 "after a point, not a comma ({fixed})").format(
                     whole=value.replace(",", ""), fixed=value.replace(",", "."))
    if _DECIMAL_COMMA.fullmatch(value):
        return _("; write the decimals after a point, not a comma: {fixed}").format(
            fixed=value.replace(",", "."))
    return ""


def _range_text(kind, minimum, maximum):
    if minimum is not None and maximum is not None:
        return _("expected {kind} from {minimum} to {maximum}").format(
            kind=kind, minimum=minimum, maximum=maximum)
    if minimum is not None:
        return _("expected {kind} of at least {minimum}").format(kind=kind, minimum=minimum)
    if maximum is not None:
        return _("expected {kind} of at most {maximum}").format(kind=kind, maximum=maximum)
    return _("expected {kind}").format(kind=kind)
