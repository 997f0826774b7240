"""The C library on its own, loaded through cffi, checked with the same vectors.

test_sanitized.py runs this file again with the library built under AddressSanitizer.
"""

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core import reference
from tests.core.vectors import expanded

CASES = expanded()
QUALITY_NAMES = {0: "ok", 1: "not_available", 2: "comm_error", 3: "invalid"}


def type_code(c_core, name):
    return getattr(c_core.lib, f"BESSAI_TYPE_{name.upper()}")


def order_code(c_core, name):
    return getattr(c_core.lib, f"BESSAI_ORDER_{name}")


def raw_sentinel(type_name, value):
    """Return a sentinel as the raw unsigned value of its type, as the binding packs it."""
    fmt, count, _ = reference.FORMATS[type_name]
    if isinstance(value, float):
        return int.from_bytes(struct.pack(fmt, value), "big")
    return value % (1 << (16 * count))


class CTable:
    """A decode table built in C memory; keeps every buffer it points to alive."""

    def __init__(self, c_core, points, buffer_words, block_count=1, sentinels=()):
        ffi = c_core.ffi
        self.c_core = c_core
        self.points = c_core.new("bessai_point[]", max(1, len(points)))
        for i, fields in enumerate(points):
            point = self.points[i]
            point.sf_index = -1
            point.scale = 1.0
            for key, value in fields.items():
                setattr(point, key, value)
        self.sentinels = c_core.new("uint64_t[]", list(sentinels) or [0])
        self.table = c_core.new("bessai_decode_table *")
        self.table.points = self.points
        self.table.point_count = len(points)
        self.table.sentinels = self.sentinels
        self.table.sentinel_count = len(sentinels)
        self.table.buffer_words = buffer_words
        self.table.block_count = block_count
        self.bad = ffi.new("uint32_t *")

    def check(self):
        return self.c_core.lib.bessai_decode_table_check(self.table, self.bad)

    def decode(self, words, block_status=b"\0"):
        count = self.table.point_count
        word_buffer = self.c_core.new("uint16_t[]", list(words) or [0])
        status_buffer = self.c_core.new("uint8_t[]", list(block_status) or [0])
        values = self.c_core.new("double[]", max(1, count))
        quality = self.c_core.new("uint8_t[]", max(1, count))
        rc = self.c_core.lib.bessai_decode(self.table, word_buffer, len(words), status_buffer,
                                           len(block_status), values, quality)
        return rc, list(values)[:count], list(quality)[:count]


def c_decode_one(c_core, case):
    """Decode one vector with the C library; return (value, quality)."""
    point = dict(type=type_code(c_core, case.type), order=order_code(c_core, case.order),
                 index=0, length=len(case.words), scale=case.scale, offset=case.offset,
                 sentinel_count=len(case.sentinels),
                 flags=0 if case.default_sentinel else
                 c_core.defines["BESSAI_POINT_NO_DEFAULT_SENTINEL"])
    points = [point]
    words = list(case.words)
    if case.sf_word is not None:
        point["sf_index"] = 1
        points.append(dict(type=c_core.lib.BESSAI_TYPE_SUNSSF,
                           order=order_code(c_core, case.order), index=len(words), length=1))
        words.append(case.sf_word)
    table = CTable(c_core, points, len(words),
                   sentinels=[raw_sentinel(case.type, value) for value in case.sentinels])
    assert table.check() == 0
    rc, values, quality = table.decode(words)
    assert rc == 0
    return values[0], quality[0]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_c_decode_known_answer(c_core, case):
    value, quality = c_decode_one(c_core, case)
    if isinstance(case.expected, str):
        assert QUALITY_NAMES[quality] == case.expected
        assert math.isnan(value)
    else:
        assert QUALITY_NAMES[quality] == "ok"
        assert math.isclose(value, case.expected, rel_tol=1e-12, abs_tol=1e-12)


def test_c_table_check_names_bad_point(c_core):
    lib = c_core.lib
    points = [dict(type=lib.BESSAI_TYPE_U16, index=0, length=1),
              dict(type=lib.BESSAI_TYPE_U16, index=1, length=1),
              dict(type=lib.BESSAI_TYPE_U32, index=9, length=2)]
    table = CTable(c_core, points, 10)
    assert table.check() == lib.BESSAI_E_OUTSIDE
    assert table.bad[0] == 2


@pytest.mark.parametrize("fields, status", [
    (dict(type=15, index=0, length=1), "BESSAI_E_TYPE"),
    (dict(type=0, order=4, index=0, length=1), "BESSAI_E_ORDER"),
    (dict(type=2, index=0, length=1), "BESSAI_E_LENGTH"),
    (dict(type=14, index=0, length=0), "BESSAI_E_LENGTH"),
    (dict(type=14, order=2, index=0, length=1), "BESSAI_E_ORDER"),
    (dict(type=0, index=0xFFFFFFFF, length=1), "BESSAI_E_OUTSIDE"),
    (dict(type=0, index=0, length=1, block=1), "BESSAI_E_BLOCK"),
    (dict(type=0, index=0, length=1, sf_index=0), "BESSAI_E_SCALE_FACTOR"),
    (dict(type=0, index=0, length=1, sf_index=-2), "BESSAI_E_SCALE_FACTOR"),
    (dict(type=0, index=0, length=1, scale=0.0), "BESSAI_E_SCALE"),
    (dict(type=13, index=0, length=1, scale=10.0), "BESSAI_E_SCALE"),
    (dict(type=0, index=0, length=1, sentinel_first=0, sentinel_count=1), "BESSAI_E_SENTINEL"),
])
def test_c_table_check_status(c_core, fields, status):
    table = CTable(c_core, [fields], 4)
    assert table.check() == getattr(c_core.lib, status)
    assert table.bad[0] == 0


def test_c_decode_rejects_wrong_sizes(c_core):
    lib = c_core.lib
    table = CTable(c_core, [dict(type=lib.BESSAI_TYPE_U16, index=0, length=1, block=1)], 2,
                   block_count=2)
    assert table.check() == 0
    assert table.decode([1, 2, 3], b"\0\0")[0] == lib.BESSAI_E_SIZE
    assert table.decode([1, 2], b"\0")[0] == lib.BESSAI_E_SIZE
    assert table.decode([1, 2], b"\0\0")[0] == 0


def test_c_decode_rejects_null(c_core):
    ffi, lib = c_core.ffi, c_core.lib
    table = CTable(c_core, [dict(type=lib.BESSAI_TYPE_U16, index=0, length=1)], 1)
    values = ffi.new("double[]", 1)
    quality = ffi.new("uint8_t[]", 1)
    status = ffi.new("uint8_t[]", 1)
    assert lib.bessai_decode(table.table, ffi.NULL, 1, status, 1, values, quality) \
        == lib.BESSAI_E_NULL
    assert lib.bessai_decode(ffi.NULL, ffi.NULL, 0, ffi.NULL, 0, values, quality) \
        == lib.BESSAI_E_NULL


def test_c_status_messages_cover_every_status(c_core):
    ffi, lib = c_core.ffi, c_core.lib
    for status in range(0, lib.BESSAI_E_PERIODS - 1, -1):
        message = ffi.string(lib.bessai_status_message(status)).decode()
        assert message != "unknown status", status
    assert ffi.string(lib.bessai_status_message(-99)) == b"unknown status"


@pytest.mark.parametrize("type_name, order, value, scale, words", [
    ("u16", "ABCD", 85.0, 0.1, [850]),
    ("s32", "ABCD", -3.0, 0.001, [0xFFFF, 0xF448]),
    ("u32", "CDAB", 177.0, 1.0, [177, 0]),
    ("f32", "DCBA", 123456.0, 1.0, [0x0020, 0xF147]),
    ("u64", "BADC", 4295098371.0, 1.0, [0x0000, 0x0100, 0x0200, 0x0300]),
])
def test_c_encode_known_answer(c_core, type_name, order, value, scale, words):
    out = c_core.new("uint16_t[]", len(words))
    rc = c_core.lib.bessai_encode(type_code(c_core, type_name), order_code(c_core, order), value,
                                  scale, 0.0, out, len(words))
    assert rc == 0
    assert list(out) == words


def test_c_encode_rejects_out_of_range(c_core):
    lib = c_core.lib
    out = c_core.new("uint16_t[]", 1)
    assert lib.bessai_encode(lib.BESSAI_TYPE_U16, 0, 65536.0, 1.0, 0.0, out, 1) \
        == lib.BESSAI_E_RANGE
    assert lib.bessai_encode(lib.BESSAI_TYPE_U16, 0, 1.0, 1.0, 0.0, out, 2) \
        == lib.BESSAI_E_LENGTH
    assert lib.bessai_encode(lib.BESSAI_TYPE_STR, 0, 1.0, 1.0, 0.0, out, 1) == lib.BESSAI_E_TYPE


def test_c_decode_string_respects_sizes(c_core):
    ffi, lib = c_core.ffi, c_core.lib
    point = ffi.new("bessai_point *")
    point.type = lib.BESSAI_TYPE_STR
    point.index = 1
    point.length = 2
    words = c_core.new("uint16_t[]", [0, 0x4142, 0x4300])
    out = c_core.new("char[]", 4)
    length = ffi.new("size_t *")
    assert lib.bessai_decode_string(point, words, 3, out, 4, length) == 0
    assert ffi.unpack(out, length[0]) == b"ABC"
    assert lib.bessai_decode_string(point, words, 3, out, 3, length) == lib.BESSAI_E_SIZE
    assert lib.bessai_decode_string(point, words, 2, out, 4, length) == lib.BESSAI_E_OUTSIDE


def test_c_encode_string_rejects_long_text(c_core):
    lib = c_core.lib
    out = c_core.new("uint16_t[]", 2)
    assert lib.bessai_encode_string(0, b"ABCDE", 5, out, 2) == lib.BESSAI_E_LENGTH
    assert lib.bessai_encode_string(0, b"ABCD", 4, out, 2) == 0
    assert list(out) == [0x4142, 0x4344]


def test_c_limits_hysteresis_and_capacity(c_core):
    ffi, lib = c_core.ffi, c_core.lib
    limits = c_core.new("bessai_limit[]", 1)
    limits[0].threshold = [math.nan, math.nan, 95.0, math.nan]
    limits[0].hysteresis = 1.0
    bad = ffi.new("uint32_t *")
    assert lib.bessai_limit_table_check(limits, 1, bad) == 0
    states = c_core.new("bessai_limit_state[]", 1)
    ffi.memmove(states, bytes(ffi.sizeof("bessai_limit_state")), ffi.sizeof("bessai_limit_state"))
    transitions = c_core.new("bessai_transition[]", 5)
    values = c_core.new("double[]", 1)
    quality = c_core.new("uint8_t[]", 1)
    count = ffi.new("size_t *")
    seen = []
    for value in (95.0, 94.0, 93.5):
        values[0] = value
        assert lib.bessai_limits_evaluate(limits, states, 1, values, quality, 1, transitions, 5,
                                          count) == 0
        seen.append([(t.level, t.raised) for t in transitions[0:count[0]]])
    assert seen == [[(lib.BESSAI_LEVEL_HIGH_WARN, 1)], [], [(lib.BESSAI_LEVEL_HIGH_WARN, 0)]]
    assert lib.bessai_limits_evaluate(limits, states, 1, values, quality, 1, transitions, 4,
                                      count) == lib.BESSAI_E_SIZE
    assert lib.bessai_limits_evaluate(limits, states, 1, values, quality, 0, transitions, 5,
                                      count) == lib.BESSAI_E_OUTSIDE


def test_c_limits_stale_counts_periods_and_saturates(c_core):
    ffi, lib = c_core.ffi, c_core.lib
    limits = c_core.new("bessai_limit[]", 1)
    limits[0].threshold = [math.nan] * 4
    limits[0].stale_cycles = 10
    states = c_core.new("bessai_limit_state[]", 1)
    ffi.memmove(states, bytes(ffi.sizeof("bessai_limit_state")), ffi.sizeof("bessai_limit_state"))
    transitions = c_core.new("bessai_transition[]", 5)
    values = c_core.new("double[]", [math.nan])
    quality = c_core.new("uint8_t[]", [lib.BESSAI_QUALITY_COMM_ERROR])
    count = ffi.new("size_t *")
    seen = []
    for periods in (3, 6, 1, 0xFFFFFFFF, 0xFFFFFFFF):
        assert lib.bessai_limits_evaluate_periods(limits, states, 1, values, quality, 1, periods,
                                                  transitions, 5, count) == 0
        seen.append([(t.level, t.raised) for t in transitions[0:count[0]]])
    assert seen == [[], [], [(lib.BESSAI_LEVEL_STALE, 1)], [], []]
    assert states[0].bad_periods == 0xFFFFFFFF
    assert lib.bessai_limits_evaluate_periods(limits, states, 1, values, quality, 1, 0,
                                              transitions, 5, count) == lib.BESSAI_E_PERIODS
    assert count[0] == 0


@st.composite
def arbitrary_tables(draw):
    """A random table over a random buffer: valid or not, it must never be read past."""
    buffer_words = draw(st.integers(1, 24))
    points = []
    for _ in range(draw(st.integers(1, 6))):
        points.append(dict(type=draw(st.integers(0, 15)), order=draw(st.integers(0, 4)),
                           index=draw(st.integers(0, 26)), length=draw(st.integers(0, 5)),
                           block=draw(st.integers(0, 2)), sf_index=draw(st.integers(-2, 6)),
                           flags=draw(st.integers(0, 1)),
                           scale=draw(st.sampled_from([1.0, 0.1, 1e308, -1e-308, 0.0])),
                           sentinel_first=draw(st.integers(0, 2)),
                           sentinel_count=draw(st.integers(0, 2))))
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=buffer_words, max_size=buffer_words))
    return points, words, draw(st.binary(min_size=2, max_size=2))


@settings(max_examples=600, deadline=None)
@given(arbitrary_tables())
def test_c_decode_arbitrary_tables_and_words(c_core, case):
    points, words, block_status = case
    table = CTable(c_core, points, len(words), block_count=2, sentinels=[0xFFFF, 0x7FFF])
    if table.check() != 0:
        assert table.bad[0] < len(points)
        return
    rc, values, quality = table.decode(words, block_status)
    assert rc == 0
    for value, q in zip(values, quality):
        assert q in QUALITY_NAMES
        assert math.isfinite(value) if q == 0 else math.isnan(value)
