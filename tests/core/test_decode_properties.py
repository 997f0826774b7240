"""Property tests: the compiled core against the plain-Python reference decoder."""

import math
import struct
from array import array

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bessai_edge.core import QUALITY_OK, DecodeTable, PointSpec, encode
from tests.core import reference
from tests.core.helpers import decode_one

NUMERIC_TYPES = sorted(reference.FORMATS)
INTEGER_TYPES = [name for name in NUMERIC_TYPES if name not in ("f32", "f64")]
ORDERS = st.sampled_from(reference.ORDERS)
SCALES = st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0, -1.0, 1e300, 1e-300])
OFFSETS = st.sampled_from([0.0, -273.15, 1000.0, 1e308])
WORD = st.integers(0, 0xFFFF)


@st.composite
def arbitrary_points(draw):
    type_name = draw(st.sampled_from(NUMERIC_TYPES))
    words = draw(st.lists(WORD, min_size=reference.FORMATS[type_name][1],
                          max_size=reference.FORMATS[type_name][1]))
    sf_word = None
    if type_name != "sunssf" and draw(st.booleans()):
        sf_word = draw(st.one_of(WORD, st.integers(0xFFF5, 0xFFFF), st.integers(0, 11)))
    scale, offset = (1.0, 0.0) if type_name == "sunssf" else (draw(SCALES), draw(OFFSETS))
    return dict(type_name=type_name, order=draw(ORDERS), words=words, scale=scale,
                offset=offset, default_sentinel=draw(st.booleans()), sf_word=sf_word)


@settings(max_examples=1500, deadline=None)
@given(arbitrary_points())
def test_decode_arbitrary_words_match_reference(point):
    value, quality = decode_one(point["type_name"], point["order"], point["words"],
                                point["scale"], point["offset"],
                                default_sentinel=point["default_sentinel"],
                                sf_word=point["sf_word"])
    expected_value, expected_quality = reference.decode(
        point["type_name"], point["order"], point["words"], point["scale"], point["offset"],
        default_sentinel=point["default_sentinel"], sf_word=point["sf_word"])
    assert quality == expected_quality
    if quality == QUALITY_OK:
        assert math.isfinite(value)
        assert value == expected_value
    else:
        assert math.isnan(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, min_size=120, max_size=120), st.binary(min_size=4, max_size=4))
def test_decode_mixed_block_never_ok_with_nan(words, block_status):
    types = ["u16", "s16", "u32", "s32", "f32", "u64", "f64", "acc32", "sunssf", "bitfield16"]
    points = []
    index = 0
    while True:
        type_name = types[len(points) % len(types)]
        size = reference.FORMATS[type_name][1]
        if index + size > 120:
            break
        points.append(PointSpec(f"p{len(points)}", type_name, reference.ORDERS[index % 4], index,
                                block=len(points) % 4,
                                scale=1.0 if type_name == "sunssf" else [1.0, 1e308][index % 2]))
        index += size
    table = DecodeTable(points, 120)
    values, quality = table.decode(array("H", words), block_status)
    for i, point in enumerate(points):
        if block_status[point.block]:
            assert quality[i] == 2
        if quality[i] == QUALITY_OK:
            assert math.isfinite(values[i])
        else:
            assert math.isnan(values[i])


def raw_in_range(type_name):
    """Return a strategy of raw integers of an integer type, sentinels excluded."""
    fmt, count, default = reference.FORMATS[type_name]
    bits = 16 * count
    signed = fmt[1].islower()
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if bits == 64:
        low, high = max(low, -(1 << 52)), min(high, 1 << 52)  # exact in a double
    if type_name == "sunssf":
        low, high = -10, 10
    sentinel = default
    if signed and default is not None and default >> (bits - 1):
        sentinel = default - (1 << bits)  # the raw sentinel as a negative integer
    return st.integers(low, high).filter(lambda raw: raw != sentinel)


@st.composite
def integer_round_trips(draw):
    type_name = draw(st.sampled_from(INTEGER_TYPES))
    return type_name, draw(ORDERS), draw(raw_in_range(type_name))


@settings(max_examples=1500, deadline=None)
@given(integer_round_trips(), st.sampled_from([(1.0, 0.0), (0.1, 0.0), (0.001, 0.0),
                                               (0.1, -273.15), (10.0, 5.0)]))
def test_encode_decode_round_trip_integers(case, scale_offset):
    type_name, order, raw = case
    scale, offset = scale_offset
    if type_name == "sunssf":
        scale, offset = 1.0, 0.0  # a scale factor is an exponent and takes no scale
    assume(scale == 1.0 or abs(raw) < (1 << 40))
    value = raw * scale + offset
    words = encode(type_name, order, value, scale=scale, offset=offset)
    assert words == reference.encode_raw(type_name, order, raw)
    decoded, quality = decode_one(type_name, order, words, scale, offset)
    assert quality == QUALITY_OK
    assert decoded == value


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(["f32", "f64"]), ORDERS, st.data())
def test_encode_decode_round_trip_floats(type_name, order, data):
    width = 32 if type_name == "f32" else 64
    value = data.draw(st.floats(width=width, allow_nan=False, allow_infinity=False))
    words = encode(type_name, order, value)
    assert words == reference.encode_raw(type_name, order, value)
    decoded, quality = decode_one(type_name, order, words)
    assert quality == QUALITY_OK
    assert decoded == value  # -0.0 decodes as 0.0: adding the 0.0 offset drops the sign


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
       st.integers(1, 12), st.sampled_from(["ABCD", "BADC"]))
def test_encode_decode_round_trip_strings(text, length, order):
    assume(len(text) <= 2 * length)
    words = encode("str", order, text, length=length)
    table = DecodeTable([PointSpec("text", "str", order, 0, length=length)], length)
    decoded = table.decode_strings(array("H", words))["text"]
    assert decoded == (text or None)
    assert decoded == reference.decode_string(words, order)


def test_reference_packs_like_struct():
    assert reference.encode_raw("f32", "CDAB", 123456.0) == [0x2000, 0x47F1]
    assert struct.pack(">f", 123456.0) == bytes([0x47, 0xF1, 0x20, 0x00])
