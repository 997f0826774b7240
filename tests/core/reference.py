"""Plain-Python reference decoder: the oracle the compiled core is checked against.

It works on bytes and ``struct`` rather than on shifts, so it shares no logic with
native/bessai_core.c.
"""

import math
import struct

QUALITY_OK = 0
QUALITY_NOT_AVAILABLE = 1
QUALITY_COMM_ERROR = 2
QUALITY_INVALID = 3

# struct format, words, default sentinel (raw unsigned) per type; None: no default sentinel.
FORMATS = {
    "u16": (">H", 1, 0xFFFF),
    "s16": (">h", 1, 0x8000),
    "u32": (">I", 2, 0xFFFFFFFF),
    "s32": (">i", 2, 0x80000000),
    "u64": (">Q", 4, 0xFFFFFFFFFFFFFFFF),
    "s64": (">q", 4, 0x8000000000000000),
    "f32": (">f", 2, None),
    "f64": (">d", 4, None),
    "bitfield16": (">H", 1, 0xFFFF),
    "bitfield32": (">I", 2, 0xFFFFFFFF),
    "enum16": (">H", 1, 0xFFFF),
    "acc32": (">I", 2, 0),
    "acc64": (">Q", 4, 0),
    "sunssf": (">h", 1, 0x8000),
}
ORDERS = ("ABCD", "BADC", "CDAB", "DCBA")


def words_to_bytes(words, order):
    """Return the big-endian bytes of a value stored in words with the given byte order."""
    if order in ("CDAB", "DCBA"):
        words = list(reversed(words))
    byteorder = "little" if order in ("BADC", "DCBA") else "big"
    return b"".join(word.to_bytes(2, byteorder) for word in words)


def bytes_to_words(data, order):
    """Return the words that store big-endian bytes with the given byte order."""
    byteorder = "little" if order in ("BADC", "DCBA") else "big"
    words = [int.from_bytes(data[i:i + 2], byteorder) for i in range(0, len(data), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    return words


def reorder(words_abcd, order):
    """Return ABCD-ordered words rewritten in another byte order."""
    return bytes_to_words(words_to_bytes(list(words_abcd), "ABCD"), order)


def decode_scale_factor(word, order="ABCD"):
    """Return (sf, quality) for one sunssf word."""
    raw = int.from_bytes(words_to_bytes([word], order), "big")
    if raw == 0x8000:
        return None, QUALITY_NOT_AVAILABLE
    sf = struct.unpack(">h", raw.to_bytes(2, "big"))[0]
    if not -10 <= sf <= 10:
        return None, QUALITY_INVALID
    return sf, QUALITY_OK


def decode(type_name, order, words, scale=1.0, offset=0.0, sentinels=(),
           default_sentinel=True, sf_word=None):
    """Return (value, quality) for one numeric point; value is NaN unless quality is ok."""
    fmt, count, default = FORMATS[type_name]
    data = words_to_bytes(list(words[:count]), order)
    raw = int.from_bytes(data, "big")
    if default_sentinel and default is not None and raw == default:
        return math.nan, QUALITY_NOT_AVAILABLE
    for sentinel in sentinels:
        if isinstance(sentinel, float):
            if data == struct.pack(fmt, sentinel):
                return math.nan, QUALITY_NOT_AVAILABLE
        elif raw == sentinel % (1 << (16 * count)):
            return math.nan, QUALITY_NOT_AVAILABLE
    number = struct.unpack(fmt, data)[0]
    if math.isnan(number):
        return math.nan, QUALITY_NOT_AVAILABLE if default_sentinel else QUALITY_INVALID
    if type_name == "sunssf":
        if not -10 <= number <= 10:
            return math.nan, QUALITY_INVALID
        return float(number), QUALITY_OK
    number = float(number)
    if sf_word is not None:
        sf, sf_quality = decode_scale_factor(sf_word, order)
        if sf_quality != QUALITY_OK:
            return math.nan, sf_quality
        number = number * 10.0 ** sf if sf >= 0 else number / 10.0 ** -sf
    try:
        number = number * scale + offset
    except OverflowError:
        return math.nan, QUALITY_INVALID
    if not math.isfinite(number):
        return math.nan, QUALITY_INVALID
    return number, QUALITY_OK


def encode_raw(type_name, order, raw):
    """Return the words of a raw integer (or float for f32/f64) of a type."""
    fmt = FORMATS[type_name][0]
    return bytes_to_words(struct.pack(fmt, raw), order)


def decode_string(words, order="ABCD"):
    """Return the text of a string point, or None when every word is zero."""
    if not any(words):
        return None
    data = words_to_bytes(list(words), "BADC" if order == "BADC" else "ABCD")
    data = data.split(b"\0", 1)[0]
    return data.decode("ascii", "replace").rstrip(" ")
