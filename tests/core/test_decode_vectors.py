"""Known-answer vectors through the compiled core, every type in every byte order."""

import math
from array import array

import pytest

from bessai_edge.core import (QUALITY_COMM_ERROR, QUALITY_NOT_AVAILABLE, QUALITY_OK, TYPES,
                              DecodeTable, PointSpec)
from tests.core.helpers import assert_expected, decode_one
from tests.core.vectors import expanded

CASES = expanded()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_decode_known_answer(case):
    value, quality = decode_one(case.type, case.order, case.words, case.scale, case.offset,
                                case.sentinels, case.default_sentinel, case.sf_word)
    assert_expected(case, value, quality)


def test_vectors_cover_every_numeric_type():
    covered = {case.type for case in CASES}
    assert covered == set(TYPES) - {"str"}


def test_decode_failed_block_is_comm_error():
    points = [PointSpec("a", "u16", "ABCD", 0, block=0),
              PointSpec("b", "u16", "ABCD", 1, block=1)]
    table = DecodeTable(points, 2)
    values, quality = table.decode(array("H", [7, 8]), bytes([0, 4]))
    assert list(quality) == [QUALITY_OK, QUALITY_COMM_ERROR]
    assert values[0] == 7.0
    assert math.isnan(values[1])


def test_decode_reuses_output_buffers():
    table = DecodeTable([PointSpec("a", "u16", "ABCD", 0)], 1)
    first = table.decode(array("H", [1]), bytes(1))
    second = table.decode(array("H", [0xFFFF]), bytes(1))
    assert first[0] is second[0]
    assert first[1] is second[1]
    assert second[1][0] == QUALITY_NOT_AVAILABLE


def test_decode_many_points_over_one_buffer():
    points = [PointSpec("soc", "u16", "ABCD", 0, scale=0.1),
              PointSpec("power", "s32", "ABCD", 1, scale=0.001),
              PointSpec("w", "u16", "ABCD", 3, sf_index=3),
              PointSpec("w_sf", "sunssf", "ABCD", 4),
              PointSpec("energy", "u32", "CDAB", 5)]
    table = DecodeTable(points, 7)
    values, quality = table.decode(array("H", [850, 1, 0xD4C0, 60000, 0xFFFE, 177, 0]),
                                   bytes(1))
    assert list(quality) == [QUALITY_OK] * 5
    assert list(values) == pytest.approx([85.0, 120.0, 600.0, -2.0, 177.0])


def test_decode_strings_ascii_and_not_available():
    points = [PointSpec("model", "str", "ABCD", 0, length=3),
              PointSpec("serial", "str", "BADC", 3, length=2),
              PointSpec("unset", "str", "ABCD", 5, length=2)]
    table = DecodeTable(points, 7)
    words = array("H", [0x5355, 0x4E32, 0x3000, 0x4241, 0x0043, 0, 0])
    texts = table.decode_strings(words)
    assert texts == {"model": "SUN20", "serial": "ABC", "unset": None}
    values, quality = table.decode(words, bytes(1))
    assert list(quality) == [QUALITY_OK, QUALITY_OK, QUALITY_NOT_AVAILABLE]
    assert values[0] == 0.0


def test_decode_strings_trailing_spaces_and_failed_block():
    points = [PointSpec("model", "str", "ABCD", 0, length=2, block=0),
              PointSpec("other", "str", "ABCD", 2, length=1, block=1)]
    table = DecodeTable(points, 3)
    words = array("H", [0x4142, 0x2020, 0x4344])
    assert table.decode_strings(words) == {"model": "AB", "other": "CD"}
    assert table.decode_strings(words, bytes([0, 1])) == {"model": "AB", "other": None}


def test_decode_strings_non_ascii_replaced():
    table = DecodeTable([PointSpec("name", "str", "ABCD", 0, length=1)], 1)
    assert table.decode_strings(array("H", [0x41E9])) == {"name": "A\ufffd"}


def test_decode_strings_leading_nul_is_empty_text():
    table = DecodeTable([PointSpec("name", "str", "ABCD", 0, length=2)], 2)
    words = array("H", [0x0041, 0x4243])
    assert table.decode_strings(words) == {"name": ""}
    assert table.decode(words, bytes(1))[1][0] == QUALITY_OK
