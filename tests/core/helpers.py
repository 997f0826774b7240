"""Helpers shared by the core tests: one point decoded through the compiled core."""

import math
from array import array

from bessai_edge.core import QUALITY_NAMES, DecodeTable, PointSpec


def decode_one(type_name, order, words, scale=1.0, offset=0.0, sentinels=(),
               default_sentinel=True, sf_word=None):
    """Decode one point (and its sunssf word, if any) with the compiled core."""
    points = [PointSpec("value", type_name, order, 0, length=len(words), scale=scale,
                        offset=offset, sf_index=-1 if sf_word is None else 1,
                        sentinels=tuple(sentinels), default_sentinel=default_sentinel)]
    buffer = list(words)
    if sf_word is not None:
        points.append(PointSpec("value_sf", "sunssf", order, len(words)))
        buffer.append(sf_word)
    table = DecodeTable(points, len(buffer))
    values, quality = table.decode(array("H", buffer), bytes(1))
    return values[0], quality[0]


def assert_expected(case, value, quality):
    """Assert a decoded (value, quality) pair against a vector's expected result."""
    if isinstance(case.expected, str):
        assert QUALITY_NAMES[quality] == case.expected
        assert math.isnan(value)
    else:
        assert QUALITY_NAMES[quality] == "ok"
        assert math.isfinite(value)
        assert math.isclose(value, case.expected, rel_tol=1e-12, abs_tol=1e-12)
