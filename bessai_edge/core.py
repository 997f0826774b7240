"""The decode and safety core: the only module that imports the compiled ``_core``.

There is no pure-Python fallback. When the compiled module cannot be imported, importing
this module prints what is missing and how to fix it, then exits with status 70
(EX_SOFTWARE), so a broken installation never runs with a slower or different decoder.
"""

import math
import sys
from typing import NamedTuple

from bessai_edge.i18n import _

EX_SOFTWARE = 70  # sysexits.h: internal software error (here: the installation is broken)


class PointSpec(NamedTuple):
    """One point of a decode table.

    ``index`` is the point's first word in the cycle buffer and ``block`` the index of
    the request that reads it. ``length`` is in words: None takes the type's size, and a
    str point must give it. ``sf_index`` is the index, in the same point list, of the
    sunssf point whose value x (10 ** sf) scales this one, or -1. ``sentinels`` are raw
    "not available" values beyond the type's default: integers as read from the registers
    (signed types also accept the negative form), floats for f32/f64 compared bit
    for bit. ``default_sentinel=False`` makes the type's default sentinel an ordinary
    value, for registers such as alarm bitfields where 0xFFFF is a valid reading.
    """

    name: str
    type: str
    order: str
    index: int
    length: int | None = None
    block: int = 0
    scale: float = 1.0
    offset: float = 0.0
    sf_index: int = -1
    sentinels: tuple = ()
    default_sentinel: bool = True


class LimitSpec(NamedTuple):
    """One safety limit over the decoded value at ``value_index``; NaN disables a level.

    A high level raises when the value is >= its threshold and clears when the value is
    below threshold - hysteresis; a low level mirrors that. ``debounce`` is the number of
    consecutive good cycles a raise or a clear must hold (0 and 1 act at once).
    ``stale_cycles`` raises the ``stale`` level once that many scan periods have passed
    without a good value, counted with ``LimitTable.evaluate(..., periods=N)`` so that
    skipped start times count too (0 disables it); the next good value clears it at
    once, with no debounce.
    """

    name: str
    value_index: int
    low_trip: float = math.nan
    low_warn: float = math.nan
    high_warn: float = math.nan
    high_trip: float = math.nan
    hysteresis: float = 0.0
    debounce: int = 1
    stale_cycles: int = 0


def _exit_core_missing(error):
    """Print why the compiled core is missing and how to fix it, then exit."""
    print(_("bessai: the compiled core bessai_edge._core cannot be imported: {error}").format(
        error=error), file=sys.stderr)
    print(_("bessai: build it with `make build` in the source tree, or reinstall the "
            "bessai-edge package; there is no pure-Python fallback."), file=sys.stderr)
    raise SystemExit(EX_SOFTWARE)


try:
    from bessai_edge._core import (  # noqa: F401 (re-exported)
        LEVELS,
        ORDERS,
        QUALITY_COMM_ERROR,
        QUALITY_INVALID,
        QUALITY_NAMES,
        QUALITY_NOT_AVAILABLE,
        QUALITY_OK,
        SF_MAX,
        SF_MIN,
        TYPE_WORDS,
        TYPES,
        DecodeTable,
        FieldMap,
        LimitTable,
        encode,
        not_available_words,
        round_places,
    )
except ImportError as import_error:
    _exit_core_missing(import_error)

__all__ = [
    "LEVELS", "ORDERS", "QUALITY_COMM_ERROR", "QUALITY_INVALID", "QUALITY_NAMES",
    "QUALITY_NOT_AVAILABLE", "QUALITY_OK", "SF_MAX", "SF_MIN", "TYPE_WORDS", "TYPES",
    "DecodeTable", "FieldMap", "LimitSpec", "LimitTable", "PointSpec", "encode",
    "not_available_words", "round_places",
]
