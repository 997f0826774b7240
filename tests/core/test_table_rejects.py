"""DecodeTable and the per-cycle calls reject bad input with CoreError naming the thing."""

from array import array

import pytest

from bessai_edge.core import DecodeTable, PointSpec
from bessai_edge.errors import CoreError


def rejection(points, buffer_words):
    """Return the message of the CoreError raised for a table."""
    with pytest.raises(CoreError) as raised:
        DecodeTable(points, buffer_words)
    return str(raised.value)


def test_table_rejects_point_outside_buffer():
    message = rejection([PointSpec("ok", "u16", "ABCD", 0),
                         PointSpec("battery_power", "s32", "ABCD", 119)], 120)
    assert "'battery_power'" in message
    assert "words 119..120 of a 120-word buffer" in message
    assert "outside the buffer" in message


def test_table_rejects_negative_index():
    message = rejection([PointSpec("soc", "u16", "ABCD", -1)], 10)
    assert "'soc'" in message
    assert "outside the buffer" in message


def test_table_rejects_unknown_type():
    message = rejection([PointSpec("soc", "uint16", "ABCD", 0)], 10)
    assert "'soc'" in message
    assert "'uint16'" in message
    assert "u16, s16" in message


def test_table_rejects_unknown_order():
    message = rejection([PointSpec("soc", "u32", "big", 0)], 10)
    assert "'soc'" in message
    assert "'big'" in message
    assert "ABCD, BADC, CDAB or DCBA" in message


def test_table_rejects_string_longer_than_buffer():
    message = rejection([PointSpec("model", "str", "ABCD", 4, length=10)], 12)
    assert "'model'" in message
    assert "words 4..13 of a 12-word buffer" in message


def test_table_rejects_string_without_length():
    message = rejection([PointSpec("model", "str", "ABCD", 0)], 12)
    assert "'model'" in message
    assert "needs a length" in message


def test_table_rejects_string_of_zero_words():
    message = rejection([PointSpec("model", "str", "ABCD", 0, length=0)], 12)
    assert "'model'" in message
    assert "length" in message


def test_table_rejects_string_word_order():
    message = rejection([PointSpec("model", "str", "CDAB", 0, length=2)], 12)
    assert "'model'" in message
    assert "strings: ABCD or BADC" in message


def test_table_rejects_length_that_contradicts_type():
    message = rejection([PointSpec("energy", "u32", "ABCD", 0, length=1)], 12)
    assert "'energy'" in message
    assert "length" in message


def test_table_rejects_scale_factor_not_sunssf():
    points = [PointSpec("w", "u16", "ABCD", 0, sf_index=1), PointSpec("va", "u16", "ABCD", 1)]
    message = rejection(points, 2)
    assert "'w'" in message
    assert "sunssf" in message


def test_table_rejects_scale_factor_in_other_block():
    points = [PointSpec("w", "u16", "ABCD", 0, block=0, sf_index=1),
              PointSpec("w_sf", "sunssf", "ABCD", 1, block=1)]
    message = rejection(points, 2)
    assert "'w'" in message
    assert "same block" in message


def test_table_rejects_scale_factor_index_past_end():
    message = rejection([PointSpec("w", "u16", "ABCD", 0, sf_index=5)], 2)
    assert "'w'" in message


def test_table_rejects_zero_scale():
    message = rejection([PointSpec("soc", "u16", "ABCD", 0, scale=0.0)], 1)
    assert "'soc'" in message
    assert "non-zero scale" in message


def test_table_rejects_infinite_offset():
    message = rejection([PointSpec("soc", "u16", "ABCD", 0, offset=float("inf"))], 1)
    assert "'soc'" in message


@pytest.mark.parametrize("type_name, sentinel", [
    ("u16", 0x10000), ("u16", -1), ("s16", -0x8001), ("s32", 0x100000000),
    ("u32", 1.5), ("u64", "0xFFFF"),
])
def test_table_rejects_sentinel_outside_type(type_name, sentinel):
    message = rejection([PointSpec("alarm", type_name, "ABCD", 0, sentinels=(sentinel,))], 4)
    assert "'alarm'" in message
    assert repr(sentinel) in message


def test_table_rejects_sentinel_on_string():
    message = rejection([PointSpec("model", "str", "ABCD", 0, length=2, sentinels=(0,))], 2)
    assert "'model'" in message


def test_decode_rejects_wrong_buffer_size():
    table = DecodeTable([PointSpec("soc", "u16", "ABCD", 0)], 4)
    with pytest.raises(CoreError, match="3 words .* table of 4 words"):
        table.decode(array("H", [0, 0, 0]), bytes(1))


def test_decode_rejects_short_block_status():
    table = DecodeTable([PointSpec("a", "u16", "ABCD", 0, block=2)], 1)
    with pytest.raises(CoreError, match="1 block statuses .* 3 blocks"):
        table.decode(array("H", [0]), bytes(1))


def test_decode_rejects_wrong_word_type():
    table = DecodeTable([PointSpec("a", "u16", "ABCD", 0)], 1)
    with pytest.raises(TypeError, match=r"words must be a buffer of format 'H'.*'l'"):
        table.decode(array("l", [0]), bytes(1))


def test_decode_accepts_memoryview_and_list_is_rejected():
    table = DecodeTable([PointSpec("a", "u16", "ABCD", 0)], 1)
    values, quality = table.decode(memoryview(array("H", [7])), memoryview(bytes(1)))
    assert values[0] == 7.0
    with pytest.raises(TypeError):
        table.decode([7], bytes(1))


def test_core_error_is_runtime_error():
    with pytest.raises(RuntimeError):
        DecodeTable([PointSpec("soc", "f16", "ABCD", 0)], 1)


def test_empty_table_decodes_nothing():
    table = DecodeTable([], 0)
    values, quality = table.decode(array("H"), b"")
    assert len(values) == 0
    assert len(quality) == 0


def test_table_rejects_field_of_wrong_python_type():
    with pytest.raises(CoreError, match="point 'soc'.*as integers"):
        DecodeTable([PointSpec("soc", "u16", "ABCD", 0, scale="0.1")], 1)
