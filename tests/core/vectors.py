"""Known-answer vectors for the decode core, shared by the Cython and the cffi tests.

Each base vector is written by hand in ABCD order. ``expanded()`` rewrites it in all
four byte orders: BADC swaps the bytes of each word, CDAB reverses the words and DCBA
does both. So every type is checked in every order with the same expected result.
"""

from typing import NamedTuple

from tests.core.reference import ORDERS, reorder

NA = "not_available"
INVALID = "invalid"


class Vector(NamedTuple):
    name: str
    type: str
    words: tuple          # in ABCD order
    expected: object      # a float, NA or INVALID
    scale: float = 1.0
    offset: float = 0.0
    sentinels: tuple = ()
    default_sentinel: bool = True
    sf_word: int | None = None  # raw word of the sunssf point, in ABCD order


BASE_VECTORS = (
    # Values named in the design of the core.
    Vector("u16_scaled", "u16", (850,), 85.0, scale=0.1),
    Vector("s32_positive_milli", "s32", (0x0001, 0xD4C0), 120.0, scale=0.001),
    Vector("s32_negative_milli", "s32", (0xFFFF, 0xF448), -3.0, scale=0.001),
    Vector("s16_negative_deci", "s16", (0xFFCE,), -5.0, scale=0.1),
    Vector("s32_sentinel", "s32", (0x8000, 0x0000), NA),
    Vector("u32_sentinel", "u32", (0xFFFF, 0xFFFF), NA),
    Vector("sunssf_sentinel_scales_na", "u16", (1234,), NA, sf_word=0x8000),
    Vector("sunssf_minus_two", "u16", (60000,), 600.0, sf_word=0xFFFE),
    # Plain values per type.
    Vector("u16_plain", "u16", (0x1234,), 4660.0),
    Vector("u16_offset", "u16", (1000,), -173.15, scale=0.1, offset=-273.15),
    Vector("s16_max", "s16", (0x7FFF,), 32767.0),
    Vector("s16_min_plus_one", "s16", (0x8001,), -32767.0),
    Vector("u32_plain", "u32", (0x0001, 0xD4C0), 120000.0),
    Vector("s32_max", "s32", (0x7FFF, 0xFFFF), 2147483647.0),
    Vector("u64_plain", "u64", (0x0000, 0x0001, 0x0002, 0x0003), 4295098371.0),
    Vector("s64_minus_two", "s64", (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE), -2.0),
    Vector("f32_plain", "f32", (0x47F1, 0x2000), 123456.0),
    Vector("f32_negative", "f32", (0xC0A0, 0x0000), -5.0),
    Vector("f32_zero", "f32", (0x0000, 0x0000), 0.0),
    Vector("f64_plain", "f64", (0x4093, 0x4A00, 0x0000, 0x0000), 1234.5),
    Vector("f64_negative", "f64", (0xC004, 0x0000, 0x0000, 0x0000), -2.5),
    Vector("bitfield16_plain", "bitfield16", (0x0005,), 5.0),
    Vector("bitfield32_plain", "bitfield32", (0x8000, 0x0001), 2147483649.0),
    Vector("enum16_plain", "enum16", (0x0003,), 3.0),
    Vector("acc32_plain", "acc32", (0x0001, 0x0000), 65536.0),
    Vector("acc64_plain", "acc64", (0x0000, 0x0000, 0x0000, 0x0007), 7.0),
    Vector("sunssf_plain", "sunssf", (0xFFFE,), -2.0),
    Vector("sunssf_plus_ten", "sunssf", (0x000A,), 10.0),
    Vector("sunssf_scales_up", "s16", (0xFFFF,), -1000.0, sf_word=0x0003),
    Vector("sunssf_with_scale", "u16", (250,), 25.0, scale=10.0, sf_word=0xFFFE),
    # Default sentinels per type.
    Vector("u16_sentinel", "u16", (0xFFFF,), NA),
    Vector("s16_sentinel", "s16", (0x8000,), NA),
    Vector("u64_sentinel", "u64", (0xFFFF,) * 4, NA),
    Vector("s64_sentinel", "s64", (0x8000, 0, 0, 0), NA),
    Vector("f32_sentinel_quiet_nan", "f32", (0x7FC0, 0x0000), NA),
    Vector("f32_sentinel_other_nan", "f32", (0xFF80, 0x0001), NA),
    Vector("f64_sentinel_nan", "f64", (0x7FF8, 0, 0, 0), NA),
    Vector("bitfield16_sentinel", "bitfield16", (0xFFFF,), NA),
    Vector("bitfield32_sentinel", "bitfield32", (0xFFFF, 0xFFFF), NA),
    Vector("enum16_sentinel", "enum16", (0xFFFF,), NA),
    Vector("acc32_sentinel", "acc32", (0, 0), NA),
    Vector("acc64_sentinel", "acc64", (0, 0, 0, 0), NA),
    Vector("sunssf_sentinel", "sunssf", (0x8000,), NA),
    # Extra sentinels a profile adds (Huawei uses 0x7FFF and 0x7FFFFFFF).
    Vector("s16_extra_sentinel", "s16", (0x7FFF,), NA, sentinels=(0x7FFF,)),
    Vector("s16_extra_sentinel_negative_form", "s16", (0xFFFF,), NA, sentinels=(-1,)),
    Vector("s32_extra_sentinel", "s32", (0x7FFF, 0xFFFF), NA, sentinels=(0x7FFFFFFF,)),
    Vector("u16_extra_sentinel", "u16", (0x0000,), NA, sentinels=(0,)),
    Vector("f32_extra_sentinel", "f32", (0xBF80, 0x0000), NA, sentinels=(-1.0,)),
    Vector("u16_extra_sentinel_miss", "u16", (0x0001,), 1.0, sentinels=(0,)),
    # Default sentinel switched off: the value is an ordinary reading.
    Vector("bitfield16_no_default", "bitfield16", (0xFFFF,), 65535.0, default_sentinel=False),
    Vector("bitfield32_no_default", "bitfield32", (0xFFFF, 0xFFFF), 4294967295.0,
           default_sentinel=False),
    Vector("u16_no_default", "u16", (0xFFFF,), 65535.0, default_sentinel=False),
    Vector("acc32_no_default", "acc32", (0, 0), 0.0, default_sentinel=False),
    Vector("bitfield16_no_default_extra", "bitfield16", (0x8000,), NA,
           sentinels=(0x8000,), default_sentinel=False),
    Vector("f32_no_default_nan", "f32", (0x7FC0, 0x0000), INVALID, default_sentinel=False),
    # Values that cannot be reported as ok.
    Vector("sunssf_too_large", "sunssf", (0x000B,), INVALID),
    Vector("sunssf_too_small", "sunssf", (0xFFF5,), INVALID),
    Vector("sunssf_out_of_range_scales_invalid", "u16", (100,), INVALID, sf_word=0x0020),
    Vector("f32_infinity", "f32", (0x7F80, 0x0000), INVALID),
    Vector("f64_negative_infinity", "f64", (0xFFF0, 0, 0, 0), INVALID),
    Vector("f64_scaled_overflow", "f64", (0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF), INVALID, scale=10.0),
)

# The byte order matters here: CDAB reads the low word first.
ORDERED_VECTORS = (
    ("u32_cdab_low_word_first", "u32", "CDAB", (177, 0), 177.0),
    ("f32_abcd", "f32", "ABCD", (0x47F1, 0x2000), 123456.0),
    ("f32_badc", "f32", "BADC", (0xF147, 0x0020), 123456.0),
    ("f32_cdab", "f32", "CDAB", (0x2000, 0x47F1), 123456.0),
    ("f32_dcba", "f32", "DCBA", (0x0020, 0xF147), 123456.0),
    ("s32_cdab", "s32", "CDAB", (0xF448, 0xFFFF), -3000.0),
    ("u64_cdab", "u64", "CDAB", (0x0003, 0x0002, 0x0001, 0x0000), 4295098371.0),
    ("u64_badc", "u64", "BADC", (0x0000, 0x0100, 0x0200, 0x0300), 4295098371.0),
    ("u64_dcba", "u64", "DCBA", (0x0300, 0x0200, 0x0100, 0x0000), 4295098371.0),
    ("u16_badc", "u16", "BADC", (0x3412,), 4660.0),
)


class Case(NamedTuple):
    id: str
    type: str
    order: str
    words: tuple
    expected: object
    scale: float
    offset: float
    sentinels: tuple
    default_sentinel: bool
    sf_word: int | None


def expanded():
    """Return every base vector in every byte order, plus the hand-ordered vectors."""
    cases = []
    for vector in BASE_VECTORS:
        for order in ORDERS:
            sf_word = None if vector.sf_word is None else reorder([vector.sf_word], order)[0]
            cases.append(Case(f"{vector.name}-{order}", vector.type, order,
                              tuple(reorder(vector.words, order)), vector.expected, vector.scale,
                              vector.offset, vector.sentinels, vector.default_sentinel, sf_word))
    for name, type_name, order, words, expected in ORDERED_VECTORS:
        cases.append(Case(name, type_name, order, words, expected, 1.0, 0.0, (), True, None))
    return cases
