"""encode() and not_available_words(): known-answer vectors and rejections."""

import math

import pytest

from bessai_edge.core import TYPES, encode, not_available_words
from bessai_edge.errors import CoreError
from tests.core.helpers import decode_one


@pytest.mark.parametrize("type_name, order, value, scale, words", [
    ("u16", "ABCD", 85.0, 0.1, [850]),
    ("s32", "ABCD", 120.0, 0.001, [0x0001, 0xD4C0]),
    ("s32", "ABCD", -3.0, 0.001, [0xFFFF, 0xF448]),
    ("s16", "ABCD", -5.0, 0.1, [0xFFCE]),
    ("u32", "CDAB", 177.0, 1.0, [177, 0]),
    ("f32", "ABCD", 123456.0, 1.0, [0x47F1, 0x2000]),
    ("f32", "BADC", 123456.0, 1.0, [0xF147, 0x0020]),
    ("f32", "CDAB", 123456.0, 1.0, [0x2000, 0x47F1]),
    ("f32", "DCBA", 123456.0, 1.0, [0x0020, 0xF147]),
    ("f64", "ABCD", 1234.5, 1.0, [0x4093, 0x4A00, 0, 0]),
    ("u64", "CDAB", 4295098371.0, 1.0, [3, 2, 1, 0]),
    ("s64", "ABCD", -2.0, 1.0, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]),
    ("sunssf", "ABCD", -2.0, 1.0, [0xFFFE]),
    ("u16", "BADC", 4660.0, 1.0, [0x3412]),
])
def test_encode_known_answer(type_name, order, value, scale, words):
    assert encode(type_name, order, value, scale=scale) == words


def test_encode_with_offset():
    assert encode("u16", "ABCD", -173.15, scale=0.1, offset=-273.15) == [1000]


def test_encode_rounds_to_nearest():
    assert encode("u16", "ABCD", 85.04, scale=0.1) == [850]
    assert encode("u16", "ABCD", 85.06, scale=0.1) == [851]


@pytest.mark.parametrize("type_name, value", [
    ("u16", 65536.0), ("u16", -1.0), ("s16", 32768.0), ("s16", -32769.0),
    ("u32", 4294967296.0), ("s32", 2147483648.0), ("acc32", -1.0), ("u64", 2.0 ** 64),
    ("f32", 1e39), ("u16", math.nan), ("s32", math.inf),
])
def test_encode_rejects_value_outside_type(type_name, value):
    with pytest.raises(CoreError, match="does not fit the type"):
        encode(type_name, "ABCD", value)


def test_encode_float_nan_is_sentinel():
    value, quality = decode_one("f32", "ABCD", encode("f32", "ABCD", math.nan))
    assert quality == 1
    assert math.isnan(value)


def test_encode_string_pads_with_nul():
    assert encode("str", "ABCD", "SUN", length=3) == [0x5355, 0x4E00, 0x0000]
    assert encode("str", "BADC", "SUN", length=2) == [0x5553, 0x004E]


def test_encode_rejects_string_longer_than_registers():
    with pytest.raises(CoreError, match="5 bytes into 2 words"):
        encode("str", "ABCD", "SUN20", length=2)


def test_encode_rejects_non_ascii_string():
    with pytest.raises(CoreError, match="not ASCII"):
        encode("str", "ABCD", "año", length=4)


def test_encode_rejects_wrong_length_for_type():
    with pytest.raises(CoreError, match="length"):
        encode("u32", "ABCD", 1.0, length=1)


def test_encode_rejects_zero_scale():
    with pytest.raises(CoreError, match="non-zero scale"):
        encode("u16", "ABCD", 1.0, scale=0.0)


def test_encode_rejects_unknown_type_and_order():
    with pytest.raises(CoreError, match="unknown type"):
        encode("int16", "ABCD", 1.0)
    with pytest.raises(CoreError, match="'little'"):
        encode("u16", "little", 1.0)


@pytest.mark.parametrize("type_name, words", [
    ("u16", [0xFFFF]), ("s16", [0x8000]), ("u32", [0xFFFF, 0xFFFF]), ("s32", [0x8000, 0]),
    ("u64", [0xFFFF] * 4), ("s64", [0x8000, 0, 0, 0]), ("f32", [0x7FC0, 0]),
    ("f64", [0x7FF8, 0, 0, 0]), ("bitfield16", [0xFFFF]), ("bitfield32", [0xFFFF, 0xFFFF]),
    ("enum16", [0xFFFF]), ("acc32", [0, 0]), ("acc64", [0, 0, 0, 0]), ("sunssf", [0x8000]),
])
def test_not_available_words_default(type_name, words):
    assert not_available_words(type_name) == words
    value, quality = decode_one(type_name, "ABCD", words)
    assert quality == 1


def test_not_available_words_in_order_and_string():
    assert not_available_words("s32", order="CDAB") == [0, 0x8000]
    assert not_available_words("str", length=3) == [0, 0, 0]


@pytest.mark.parametrize("order", ["ABCD", "BADC", "CDAB", "DCBA"])
@pytest.mark.parametrize("type_name", [name for name in TYPES if name != "str"])
def test_not_available_words_decode_not_available(type_name, order):
    words = not_available_words(type_name, order=order)
    value, quality = decode_one(type_name, order, words)
    assert quality == 1
