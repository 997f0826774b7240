"""Load a recorded register image (a capture file) into a RegisterImage.

A capture is JSON: ``unit_id``, ``functions`` (``holding`` and/or ``input``) and
``registers``, a map from the 0-based wire address (a decimal string) to the 16-bit
word. The simulator serves those words on every listed function for that unit id and
responds with exception 2 to any address the file does not contain. tests/captures/README.md
describes the rest of the format (expected values, sources).
"""

import json

from bessai_edge.errors import ConfigError
from bessai_edge.i18n import _, os_error_text
from bessai_edge.simulator.image import RegisterImage

_FUNCTION_CODES = {"holding": 3, "input": 4}


def read_capture(path):
    """Return the parsed document of a capture file, or raise ConfigError naming the problem."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except OSError as error:
        raise ConfigError(_("cannot read capture {path}: {error}").format(
            path=path, error=os_error_text(error))) from error
    except json.JSONDecodeError as error:
        raise ConfigError(_("capture {path} is not valid JSON: {error}").format(
            path=path, error=error)) from error
    if not isinstance(document, dict):
        raise ConfigError(_("capture {path}: expected a JSON object").format(path=path))
    return document


def image_from_capture(document, path="<capture>", unknown_unit="exception11", unit_id=None):
    """Build the RegisterImage of a parsed capture document."""
    problems = []
    if unit_id is None:
        unit_id = document.get("unit_id")
    if unit_id is None:
        problems.append(_("capture {path}: unit_id is missing: add the unit id the device was "
                          "read on, such as \"unit_id\": 1, or pass --unit-id").format(path=path))
    elif not isinstance(unit_id, int) or not 0 <= unit_id <= 255:
        problems.append(_("capture {path}: unit_id={value!r} is invalid: expected 0 to 255").format(
            path=path, value=unit_id))
    functions = document.get("functions") or [document.get("function")]
    codes = []
    for name in functions:
        if name not in _FUNCTION_CODES:
            problems.append(_("capture {path}: function {value!r} is invalid: expected holding or "
                              "input").format(path=path, value=name))
        else:
            codes.append(_FUNCTION_CODES[name])
    registers = document.get("registers")
    words = {}
    if not isinstance(registers, dict) or not registers:
        problems.append(_("capture {path}: registers is missing: expected an object of address "
                          "to word").format(path=path))
        registers = {}
    for key, word in registers.items():
        if not key.isdigit() or int(key) > 65535:
            problems.append(_("capture {path}: register address {value!r} is invalid: expected "
                              "0 to 65535").format(path=path, value=key))
        elif not isinstance(word, int) or not 0 <= word <= 0xFFFF:
            problems.append(_("capture {path}: register {address} = {value!r} is invalid: "
                              "expected a word from 0 to 65535").format(
                                  path=path, address=key, value=word))
        else:
            words[int(key)] = word
    if problems:
        raise ConfigError(problems)
    image = RegisterImage(unknown_unit)
    for code in codes:
        image.table(unit_id, code).update(words)
    return image


# Capture families whose devices are read through SunSpec discovery.
SUNSPEC_FAMILIES = ("fronius", "sunspec")


def missing_sunspec_marker(document):
    """Return True for a SunSpec capture without a "SunS" marker where discovery looks.

    Such a capture contains one model's words alone, so SunSpec profiles find nothing.
    """
    from bessai_edge.profile.sunspec import BASE_ADDRESSES, MARKER

    if document.get("family") not in SUNSPEC_FAMILIES:
        return False
    registers = document.get("registers") or {}
    return not any((registers.get(str(base)), registers.get(str(base + 1))) == MARKER
                   for base in BASE_ADDRESSES)
