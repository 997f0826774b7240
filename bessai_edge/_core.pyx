# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Cython binding of the C decode and safety core in native/bessai_core.c.

Import it through ``bessai_edge.core``, which exits with a clear message when this
compiled module is missing. Tables are checked and packed into C arrays once; the scan
loop then makes one ``DecodeTable.decode`` and one ``LimitTable.evaluate`` call per cycle.
C status codes become ``CoreError`` in one function, ``_raise_for_status``.
"""

from array import array
import math
import struct

from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython cimport array as c_array
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport Py_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport copysign, fabs, floor, fma, isfinite, isnan, log10, nearbyint
from libc.string cimport memset, strcmp

from bessai_edge.errors import CoreError

TYPES = ("u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "bitfield16", "bitfield32",
         "enum16", "acc32", "acc64", "sunssf", "str")
ORDERS = ("ABCD", "BADC", "CDAB", "DCBA")
LEVELS = ("low_trip", "low_warn", "high_warn", "high_trip", "stale")

QUALITY_OK = BESSAI_QUALITY_OK
QUALITY_NOT_AVAILABLE = BESSAI_QUALITY_NOT_AVAILABLE
QUALITY_COMM_ERROR = BESSAI_QUALITY_COMM_ERROR
QUALITY_INVALID = BESSAI_QUALITY_INVALID
QUALITY_NAMES = {
    QUALITY_OK: "ok",
    QUALITY_NOT_AVAILABLE: "not_available",
    QUALITY_COMM_ERROR: "comm_error",
    QUALITY_INVALID: "invalid",
}

# Words per type; None for strings, whose length the point gives.
TYPE_WORDS = {name: (bessai_type_words(code) or None) for code, name in enumerate(TYPES)}

SF_MIN = BESSAI_SF_MIN
SF_MAX = BESSAI_SF_MAX

_TYPE_CODES = {name: code for code, name in enumerate(TYPES)}
_ORDER_CODES = {name: code for code, name in enumerate(ORDERS)}
_SIGNED = {"s16": 16, "sunssf": 16, "s32": 32, "s64": 64}
_UNSIGNED = {"u16": 16, "enum16": 16, "bitfield16": 16, "u32": 32, "bitfield32": 32,
             "acc32": 32, "u64": 64, "acc64": 64}
_FIXES = {
    BESSAI_E_TYPE: f"use one of: {', '.join(TYPES)}",
    BESSAI_E_ORDER: "use ABCD, BADC, CDAB or DCBA (strings: ABCD or BADC)",
    BESSAI_E_LENGTH: "give the length the type needs, or a longer string point",
    BESSAI_E_OUTSIDE: "fix the point's address or length, or the read plan's buffer size",
    BESSAI_E_BLOCK: "give the index of the request that reads the point",
    BESSAI_E_SCALE_FACTOR: "point sf_index at a sunssf point read by the same request",
    BESSAI_E_SCALE: "use a finite, non-zero scale and a finite offset (sunssf: scale 1, "
                    "offset 0)",
    BESSAI_E_SENTINEL: "give sentinels as raw values that fit the type",
    BESSAI_E_RANGE: "give a value inside the type's range after scale and offset",
    BESSAI_E_SIZE: "pass buffers of the sizes the table was built for",
    BESSAI_E_LIMIT: "order the levels low_trip <= low_warn <= high_warn <= high_trip "
                    "and use a finite hysteresis >= 0",
    BESSAI_E_PERIODS: "pass the scan periods since the previous cycle, 1 or more",
}


def _raise_for_status(int status, str subject):
    """Raise CoreError for a failed C status code, naming the subject and the fix."""
    if status == BESSAI_OK:
        return
    message = bessai_status_message(status).decode("ascii")
    fix = _FIXES.get(status)
    raise CoreError(f"{subject}: {message}" + (f"; {fix}" if fix else ""))


def _type_code(type_name, str subject):
    """Return the C code of a type name, or raise naming the subject."""
    code = _TYPE_CODES.get(type_name)
    if code is None:
        _raise_for_status(BESSAI_E_TYPE, f"{subject}: type {type_name!r}")
    return code


def _order_code(order_name, str subject):
    """Return the C code of a byte-order name, or raise naming the subject."""
    code = _ORDER_CODES.get(order_name)
    if code is None:
        _raise_for_status(BESSAI_E_ORDER, f"{subject}: order {order_name!r}")
    return code


def _raw_sentinel(str type_name, value, str subject):
    """Return a sentinel as the raw unsigned value the C core compares against."""
    if type_name in ("f32", "f64"):
        try:
            packed = struct.pack(">f" if type_name == "f32" else ">d", float(value))
        except (TypeError, ValueError, OverflowError):
            _raise_for_status(BESSAI_E_SENTINEL, f"{subject}: sentinel {value!r}")
        return int.from_bytes(packed, "big")
    bits = _SIGNED.get(type_name) or _UNSIGNED.get(type_name)
    if bits is None or isinstance(value, bool) or not isinstance(value, int):
        _raise_for_status(BESSAI_E_SENTINEL, f"{subject}: sentinel {value!r} for type {type_name}")
    low = -(1 << (bits - 1)) if type_name in _SIGNED else 0
    if not low <= value < (1 << bits):
        _raise_for_status(BESSAI_E_SENTINEL, f"{subject}: sentinel {value!r} for type {type_name}")
    return value & ((1 << bits) - 1)


def _describe_point(point, buffer_words):
    """Return a description of a point and the words it reads, for error messages."""
    length = TYPE_WORDS.get(point.type) if point.length is None else point.length
    words = f"words {point.index}..{point.index + length - 1}" if length else "no words"
    return (f"point {point.name!r} (type {point.type}, order {point.order}, block {point.block}) "
            f"reads {words} of a {buffer_words}-word buffer")


cdef int _acquire(object obj, Py_buffer *view, const char *item_format, str what) except -1:
    """Point view.buf and view.len at obj's items of one format ("H", "B" or "d").

    Return 1 when a buffer was exported, which the caller releases with
    PyBuffer_Release(), and 0 for the direct paths: array.array, bytes and bytearray
    are read without an export, which would cost more than decoding a small block.
    The caller uses the pointer before any Python code can run.
    """
    if type(obj) is array:
        if (<c_array.array>obj).ob_descr.typecode == item_format[0]:
            view.buf = (<c_array.array>obj).data.as_voidptr
            view.len = Py_SIZE(obj) * (<c_array.array>obj).ob_descr.itemsize
            return 0
    elif item_format[0] == c'B' and type(obj) is bytes:
        view.buf = PyBytes_AS_STRING(obj)
        view.len = PyBytes_GET_SIZE(obj)
        return 0
    elif item_format[0] == c'B' and type(obj) is bytearray:
        view.buf = PyByteArray_AS_STRING(obj)
        view.len = PyByteArray_GET_SIZE(obj)
        return 0
    PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    cdef const char *fmt = view.format
    if fmt[0] == c'@' or fmt[0] == c'=':
        fmt += 1
    if strcmp(fmt, item_format) != 0:
        found = view.format.decode("ascii", "replace")
        PyBuffer_Release(view)
        raise TypeError(f"{what} must be a buffer of format {item_format.decode()!r}, "
                        f"such as array({item_format.decode()!r}), not format {found!r}")
    return 1


cdef class DecodeTable:
    """Points packed into C arrays over one cycle buffer of ``buffer_words`` words.

    ``decode`` returns the same ``array('d')`` and ``bytearray`` on every call, so a
    caller that keeps them must copy them before the next cycle.
    """

    cdef bessai_decode_table table
    cdef bessai_point *points
    cdef uint64_t *sentinels
    cdef double *value_pointer
    cdef uint8_t *quality_pointer
    cdef readonly object values
    cdef readonly object quality
    cdef double empty_value
    cdef tuple result
    cdef object exports  # buffer exports that keep values and quality from being resized
    cdef readonly tuple point_specs
    cdef readonly uint32_t buffer_words
    cdef readonly uint32_t block_count
    cdef list string_points

    def __cinit__(self):
        self.points = NULL
        self.sentinels = NULL

    def __init__(self, points, buffer_words):
        specs = tuple(points)
        self.point_specs = specs
        if not 0 <= buffer_words < (1 << 32):
            _raise_for_status(BESSAI_E_SIZE, f"decode table: buffer_words {buffer_words!r}")
        self.buffer_words = buffer_words
        sentinel_total = sum(len(point.sentinels) for point in specs)
        self.points = <bessai_point *>PyMem_Malloc(max(1, len(specs)) * sizeof(bessai_point))
        self.sentinels = <uint64_t *>PyMem_Malloc(max(1, sentinel_total) * sizeof(uint64_t))
        if self.points == NULL or self.sentinels == NULL:
            raise MemoryError()
        memset(self.points, 0, max(1, len(specs)) * sizeof(bessai_point))
        self.string_points = []
        sentinel_next = 0
        block_count = 0
        for i, point in enumerate(specs):
            try:
                sentinel_next = self._pack_point(i, point, sentinel_next)
            except (TypeError, OverflowError) as error:  # a field of the wrong Python type
                raise CoreError(f"point {getattr(point, 'name', i)!r}: {error}; give index, "
                                f"length, block and sf_index as integers and scale and "
                                f"offset as numbers") from None
            block_count = max(block_count, self.points[i].block + 1)
        self.block_count = block_count
        self.table.points = self.points
        self.table.point_count = len(specs)
        self.table.sentinels = self.sentinels
        self.table.sentinel_count = sentinel_next
        self.table.buffer_words = buffer_words
        self.table.block_count = block_count

        cdef uint32_t bad_point = 0
        status = bessai_decode_table_check(&self.table, &bad_point)
        if status != BESSAI_OK:
            _raise_for_status(status, _describe_point(specs[bad_point], buffer_words))
        self.values = array("d", [math.nan]) * len(specs)
        self.quality = bytearray(len(specs))
        self.exports = (memoryview(self.values), memoryview(self.quality))
        self.value_pointer = (<c_array.array>self.values).data.as_doubles
        if self.value_pointer == NULL:  # an empty array has no storage
            self.value_pointer = &self.empty_value
        self.quality_pointer = <uint8_t *>PyByteArray_AS_STRING(self.quality)
        self.result = (self.values, self.quality)

    cdef uint32_t _pack_point(self, Py_ssize_t i, point, uint32_t sentinel_next) except? 0xFFFFFFFF:
        """Fill the C point i from a PointSpec and return the next free sentinel slot."""
        subject = f"point {point.name!r}"
        type_code = _type_code(point.type, subject)
        words = TYPE_WORDS[point.type]
        length = words if point.length is None else point.length
        if type_code == BESSAI_TYPE_STR and point.length is None:
            _raise_for_status(BESSAI_E_LENGTH, f"{subject}: a str point needs a length")
        if not (0 <= point.index < (1 << 32) and 0 <= length < (1 << 32)):
            _raise_for_status(BESSAI_E_OUTSIDE, _describe_point(point, self.buffer_words))
        if not 0 <= point.block < (1 << 31):
            _raise_for_status(BESSAI_E_BLOCK, _describe_point(point, self.buffer_words))
        if not -1 <= point.sf_index < (1 << 31):
            _raise_for_status(BESSAI_E_SCALE_FACTOR, f"{subject}: sf_index {point.sf_index!r}")
        if point.sentinels and type_code == BESSAI_TYPE_STR:
            _raise_for_status(BESSAI_E_SENTINEL, f"{subject}: str points take no sentinels")
        cdef bessai_point *c_point = &self.points[i]
        c_point.type = type_code
        c_point.order = _order_code(point.order, subject)
        c_point.index = point.index
        c_point.length = length
        c_point.block = point.block
        c_point.sf_index = point.sf_index
        c_point.scale = point.scale
        c_point.offset = point.offset
        c_point.flags = 0 if point.default_sentinel else BESSAI_POINT_NO_DEFAULT_SENTINEL
        c_point.sentinel_first = sentinel_next
        c_point.sentinel_count = len(point.sentinels)
        for value in point.sentinels:
            self.sentinels[sentinel_next] = _raw_sentinel(point.type, value, subject)
            sentinel_next += 1
        if type_code == BESSAI_TYPE_STR:
            self.string_points.append(i)
        return sentinel_next

    def __dealloc__(self):
        PyMem_Free(self.points)
        PyMem_Free(self.sentinels)

    def __len__(self):
        return self.table.point_count

    def decode(self, words, block_status):
        """Decode the cycle buffer; return ``(values, quality)``, one entry per point."""
        cdef Py_buffer word_view
        cdef Py_buffer status_view
        cdef uint16_t no_words = 0
        cdef uint8_t no_status = 0
        cdef int status
        cdef int words_exported = _acquire(words, &word_view, b"H", "words")
        cdef int status_exported = 0
        try:
            status_exported = _acquire(block_status, &status_view, b"B", "block_status")
            try:
                status = bessai_decode(
                    &self.table,
                    <const uint16_t *>word_view.buf if word_view.buf != NULL else &no_words,
                    <size_t>(word_view.len // 2),
                    <const uint8_t *>status_view.buf if status_view.buf != NULL else &no_status,
                    <size_t>status_view.len, self.value_pointer, self.quality_pointer)
            finally:
                if status_exported:
                    PyBuffer_Release(&status_view)
        finally:
            if words_exported:
                PyBuffer_Release(&word_view)
        if status != BESSAI_OK:
            _raise_for_status(
                status,
                f"decode: {len(words)} words and {len(block_status)} block statuses "
                f"for a table of {self.buffer_words} words and {self.block_count} blocks")
        return self.result

    def decode_strings(self, const uint16_t[::1] words not None, block_status=None):
        """Return ``{point name: text}`` for the str points, None where not available.

        The text ends at the first NUL byte, with trailing spaces removed; bytes outside
        ASCII become U+FFFD. An all-zero string (SunSpec "not implemented") and a string
        whose block failed in ``block_status`` give None.
        """
        cdef size_t length = 0
        cdef bytearray scratch
        cdef int status
        texts = {}
        for i in self.string_points:
            spec = self.point_specs[i]
            if block_status is not None and block_status[self.points[i].block] != 0:
                texts[spec.name] = None
                continue
            scratch = bytearray(2 * self.points[i].length)
            status = bessai_decode_string(&self.points[i], &words[0] if words.shape[0] else NULL,
                                          words.shape[0], scratch, len(scratch), &length)
            _raise_for_status(status, f"decode_strings: {_describe_point(spec, words.shape[0])}")
            if not any(words[self.points[i].index:self.points[i].index + self.points[i].length]):
                texts[spec.name] = None
                continue
            texts[spec.name] = bytes(scratch[:length]).decode("ascii", "replace").rstrip(" ")
        return texts


def encode(type, order, value, scale=1.0, offset=0.0, length=None):
    """Return the words, as a list, that decode to ``value`` with this scale and offset.

    ``length`` is the number of words of a str point; for other types it may be omitted.
    A str value is ASCII text padded with NUL bytes.
    """
    subject = f"encode {type} {order} {value!r}"
    cdef int type_code = _type_code(type, subject)
    cdef int order_code = _order_code(order, subject)
    cdef int status
    words_needed = TYPE_WORDS[type]
    if length is None:
        length = words_needed
    if length is None or not 0 < length <= 65535:
        _raise_for_status(BESSAI_E_LENGTH, f"{subject}: length {length!r}")
    out = array("H", bytes(2 * length))
    cdef uint16_t[::1] out_view = out
    if type_code == BESSAI_TYPE_STR:
        if not isinstance(value, str):
            raise TypeError(f"{subject}: a str point encodes a str value")
        try:
            text = value.encode("ascii")
        except UnicodeEncodeError:
            _raise_for_status(BESSAI_E_RANGE, f"{subject}: text is not ASCII")
        status = bessai_encode_string(order_code, text, len(text), &out_view[0], length)
        _raise_for_status(status, f"{subject}: {len(text)} bytes into {length} words")
    else:
        status = bessai_encode(type_code, order_code, value, scale, offset, &out_view[0], length)
        _raise_for_status(status, f"{subject} (scale {scale!r}, offset {offset!r})")
    return out.tolist()


def not_available_words(type, length=None, order="ABCD"):
    """Return the type's default "not available" words as a list."""
    subject = f"not_available_words {type}"
    cdef int type_code = _type_code(type, subject)
    cdef int order_code = _order_code(order, subject)
    if length is None:
        length = TYPE_WORDS[type]
    if length is None or not 0 < length <= 65535:
        _raise_for_status(BESSAI_E_LENGTH, f"{subject}: length {length!r}")
    out = array("H", bytes(2 * length))
    cdef uint16_t[::1] out_view = out
    status = bessai_not_available_words(type_code, order_code, &out_view[0], length)
    _raise_for_status(status, f"{subject}: length {length!r}")
    return out.tolist()


cdef class LimitTable:
    """Safety limits packed into C arrays, with their state between cycles."""

    cdef bessai_limit *limits
    cdef bessai_limit_state *states
    cdef bessai_transition *transitions
    cdef uint32_t limit_count
    cdef size_t transition_capacity
    cdef readonly tuple limit_specs
    cdef tuple transition_tuples
    cdef uint32_t max_value_index

    def __cinit__(self):
        self.limits = NULL
        self.states = NULL
        self.transitions = NULL

    def __init__(self, limits):
        specs = tuple(limits)
        self.limit_specs = specs
        count = len(specs)
        self.limit_count = count
        self.transition_capacity = count * BESSAI_LEVEL_COUNT
        self.limits = <bessai_limit *>PyMem_Malloc(max(1, count) * sizeof(bessai_limit))
        self.states = <bessai_limit_state *>PyMem_Malloc(max(1, count) * sizeof(bessai_limit_state))
        self.transitions = <bessai_transition *>PyMem_Malloc(
            max(<size_t>1, self.transition_capacity) * sizeof(bessai_transition))
        if self.limits == NULL or self.states == NULL or self.transitions == NULL:
            raise MemoryError()
        memset(self.states, 0, max(1, count) * sizeof(bessai_limit_state))
        tuples = []
        for i, spec in enumerate(specs):
            self._pack_limit(i, spec)
            for level in LEVELS:
                tuples.append((spec.name, level, False))
                tuples.append((spec.name, level, True))
        self.transition_tuples = tuple(tuples)

        cdef uint32_t bad_limit = 0
        status = bessai_limit_table_check(self.limits, count, &bad_limit)
        if status != BESSAI_OK:
            _raise_for_status(status, f"limit {specs[bad_limit].name!r} ({specs[bad_limit]!r})")

    cdef int _pack_limit(self, Py_ssize_t i, spec) except -1:
        """Fill the C limit i from a LimitSpec."""
        subject = f"limit {spec.name!r}"
        if not 0 <= spec.value_index < (1 << 32):
            _raise_for_status(BESSAI_E_OUTSIDE, f"{subject}: value_index {spec.value_index!r}")
        if not (0 <= spec.debounce < (1 << 32) and 0 <= spec.stale_cycles < (1 << 32)):
            _raise_for_status(BESSAI_E_LIMIT, f"{subject}: debounce {spec.debounce!r}, "
                                              f"stale_cycles {spec.stale_cycles!r}")
        cdef bessai_limit *limit = &self.limits[i]
        limit.value_index = spec.value_index
        limit.threshold[0] = spec.low_trip
        limit.threshold[1] = spec.low_warn
        limit.threshold[2] = spec.high_warn
        limit.threshold[3] = spec.high_trip
        limit.hysteresis = spec.hysteresis
        limit.debounce = spec.debounce
        limit.stale_cycles = spec.stale_cycles
        self.max_value_index = max(self.max_value_index, limit.value_index)
        return 0

    def __dealloc__(self):
        PyMem_Free(self.limits)
        PyMem_Free(self.states)
        PyMem_Free(self.transitions)

    def __len__(self):
        return self.limit_count

    def evaluate(self, values, quality, periods=1):
        """Update every limit with this cycle's values; return ``(name, level, raised)`` tuples.

        ``periods`` is the number of scan periods since the previous call: 1 for a cycle
        on time, more after an overrun skipped start times. A value that is not good adds
        it to the stale count, so ``stale_cycles`` measures periods, not calls. Counts
        past 2**32 - 1 saturate.
        """
        cdef Py_buffer value_view
        cdef Py_buffer quality_view
        cdef double no_value = 0.0
        cdef uint8_t no_quality = 0
        cdef size_t count = 0
        cdef size_t i
        cdef size_t value_count
        cdef int status
        cdef int values_exported
        cdef int quality_exported = 0
        cdef uint32_t period_count
        if not isinstance(periods, int) or periods < 1:
            _raise_for_status(BESSAI_E_PERIODS, f"evaluate: periods {periods!r}")
        period_count = <uint32_t>min(periods, 0xFFFFFFFF)
        if self.limit_count == 0:
            return []
        values_exported = _acquire(values, &value_view, b"d", "values")
        try:
            quality_exported = _acquire(quality, &quality_view, b"B", "quality")
            try:
                value_count = <size_t>min(value_view.len // 8, quality_view.len)
                status = bessai_limits_evaluate_periods(
                    self.limits, self.states, self.limit_count,
                    <const double *>value_view.buf if value_view.buf != NULL else &no_value,
                    <const uint8_t *>quality_view.buf if quality_view.buf != NULL
                    else &no_quality,
                    value_count, period_count, self.transitions, self.transition_capacity,
                    &count)
            finally:
                if quality_exported:
                    PyBuffer_Release(&quality_view)
        finally:
            if values_exported:
                PyBuffer_Release(&value_view)
        if status != BESSAI_OK:
            _raise_for_status(status, f"evaluate: {len(values)} values and {len(quality)} "
                                      f"qualities for limits up to index {self.max_value_index}")
        result = []
        for i in range(count):
            transition = self.transitions[i]
            result.append(self.transition_tuples[
                (transition.limit * BESSAI_LEVEL_COUNT + transition.level) * 2 + transition.raised])
        return result

    def restore(self, pairs):
        """Mark ``(limit_name, level)`` pairs active without reporting a transition.

        For the alarm state a previous run left in the spool. Pairs whose limit or level
        this table does not have, or has turned off (a NaN threshold, or no stale check),
        are skipped. Debounce and stale counts start from zero, so an alarm whose
        condition has gone clears after ``debounce`` good cycles. Returns the pairs
        restored, in ``active()`` order.
        """
        cdef Py_ssize_t i
        cdef int level
        wanted = set(pairs)
        for i in range(self.limit_count):
            for level in range(BESSAI_LEVEL_COUNT):
                if (self.limit_specs[i].name, LEVELS[level]) not in wanted:
                    continue
                if level == BESSAI_LEVEL_STALE:
                    if self.limits[i].stale_cycles == 0:
                        continue
                elif isnan(self.limits[i].threshold[level]):
                    continue
                else:
                    self.states[i].pending[level] = 0
                self.states[i].active |= <uint8_t>(1 << level)
        return [pair for pair in self.active() if pair in wanted]

    def active(self):
        """Return the active ``(limit_name, level)`` pairs, by limit then level."""
        cdef Py_ssize_t i
        cdef int level
        pairs = []
        for i in range(self.limit_count):
            for level in range(BESSAI_LEVEL_COUNT):
                if self.states[i].active & (1 << level):
                    pairs.append((self.limit_specs[i].name, LEVELS[level]))
        return pairs


cdef double[23] _POWERS_OF_TEN  # 1e0 to 1e22: every one is an exact double
for _exponent in range(23):
    _POWERS_OF_TEN[_exponent] = 10.0 ** _exponent
cdef double _TWO_TO_52 = 4503599627370496.0


cdef bint _round_decimal(double x, int places, double *rounded) noexcept:
    """Round ``x`` to ``places`` decimals exactly as Python's ``round(x, places)`` does.

    Returns False, leaving ``rounded`` alone, for the cases this shortcut does not
    cover (``places`` outside 0..22, or ``x * 10**places`` at or beyond 2**52 or not
    finite); the caller then calls ``round()``. Python rounds the exact binary value of
    ``x``, halves to even. Here ``y = x * 10**places`` is that value rounded once, and
    ``fma`` gives the rounding error exactly. The error can change the result only when
    ``y`` lands exactly halfway between two integers, and then its sign decides.
    Dividing the integer by the exact power of ten gives the double nearest to the
    decimal, as Python's string round trip does.
    """
    if places < 0 or places > 22:
        return False
    cdef double power = _POWERS_OF_TEN[places]
    cdef double scaled = x * power
    if not isfinite(scaled) or fabs(scaled) >= _TWO_TO_52:
        return False
    cdef double error = fma(x, power, -scaled)
    cdef double whole = nearbyint(scaled)  # the default rounding mode: halves to even
    cdef double below = floor(scaled)
    # below + 0.5 is exact below 2**52, while scaled - below can round: for
    # scaled = -0.49999999999999994 it gives 0.5, a halfway point that is not there.
    if scaled == below + 0.5 and error != 0.0:
        whole = below + 1.0 if error > 0.0 else below
        # -1.0 + 1.0 is +0.0, while round() keeps the sign of a negative x that
        # rounds to zero.
        whole = copysign(whole, x) if whole == 0.0 else whole
    rounded[0] = whole / power
    return True


cdef enum:
    _ROUND_NONE = 0
    _ROUND_PLACES = 1
    _ROUND_SIGNIFICANT = 2


cdef class FieldMap:
    """Builds one record's ``values`` and ``quality`` maps from a decoded cycle, in C.

    ``fields`` maps each canonical field to its entry in the decoded arrays, in record
    order. ``places`` and ``significant`` map a field to the decimals, or significant
    digits, that its value is rounded to (``records.field_rounding`` works them out);
    the others are taken as decoded, as is a value that rounding would carry past the
    largest float. A value whose quality is not ok becomes None, and -0.0 becomes 0.0. ``build`` gives the same maps as the Python steps it replaces:
    one dict pass per field, then ``records.round_values``.
    """

    cdef tuple names
    cdef tuple quality_names
    cdef object round_function
    cdef Py_ssize_t count
    cdef Py_ssize_t *slots
    cdef int *kinds
    cdef int *digits
    cdef double *gathered_values  # this cycle's value and quality of each field
    cdef uint8_t *gathered_quality

    def __cinit__(self):
        self.slots = NULL
        self.kinds = NULL
        self.digits = NULL
        self.gathered_values = NULL
        self.gathered_quality = NULL

    def __init__(self, fields, places=(), significant=()):
        places = dict(places)
        significant = dict(significant)
        self.names = tuple(fields)
        self.count = len(self.names)
        size = max(1, self.count)
        self.slots = <Py_ssize_t *>PyMem_Malloc(size * sizeof(Py_ssize_t))
        self.kinds = <int *>PyMem_Malloc(size * sizeof(int))
        self.digits = <int *>PyMem_Malloc(size * sizeof(int))
        self.gathered_values = <double *>PyMem_Malloc(size * sizeof(double))
        self.gathered_quality = <uint8_t *>PyMem_Malloc(size * sizeof(uint8_t))
        if (self.slots == NULL or self.kinds == NULL or self.digits == NULL
                or self.gathered_values == NULL or self.gathered_quality == NULL):
            raise MemoryError()
        for i, name in enumerate(self.names):
            self.slots[i] = fields[name]
            if self.slots[i] < 0:
                raise CoreError(f"field {name!r}: entry {self.slots[i]} is negative")
            if name in significant:
                self.kinds[i], self.digits[i] = _ROUND_SIGNIFICANT, significant[name]
            elif name in places:
                self.kinds[i], self.digits[i] = _ROUND_PLACES, places[name]
            else:
                self.kinds[i], self.digits[i] = _ROUND_NONE, 0
        self.quality_names = tuple(QUALITY_NAMES[code] for code in sorted(QUALITY_NAMES))
        self.round_function = round  # Python's round: the same correctly rounded result

    cdef int _gather(self, values, quality) except -1:
        """Copy each field's value and quality out of the buffers, before any Python runs."""
        cdef Py_buffer value_view
        cdef Py_buffer quality_view
        cdef Py_ssize_t i, slot, value_count, quality_count
        cdef int values_exported = _acquire(values, &value_view, b"d", "values")
        cdef int quality_exported = 0
        try:
            quality_exported = _acquire(quality, &quality_view, b"B", "quality")
            value_count = value_view.len // sizeof(double)
            quality_count = quality_view.len
            for i in range(self.count):
                slot = self.slots[i]
                if slot >= value_count or slot >= quality_count:
                    raise CoreError(
                        f"field {self.names[i]!r}: entry {slot} is outside the "
                        f"{min(value_count, quality_count)} decoded values; build the map "
                        f"from the same plan as the table")
                self.gathered_values[i] = (<const double *>value_view.buf)[slot]
                self.gathered_quality[i] = (<const uint8_t *>quality_view.buf)[slot]
        finally:
            if quality_exported:
                PyBuffer_Release(&quality_view)
            if values_exported:
                PyBuffer_Release(&value_view)
        return 0

    def __dealloc__(self):
        PyMem_Free(self.slots)
        PyMem_Free(self.kinds)
        PyMem_Free(self.digits)
        PyMem_Free(self.gathered_values)
        PyMem_Free(self.gathered_quality)

    def build(self, values, quality):
        """Return ``(values, quality)`` dicts, field -> number or None, field -> quality name.

        ``values`` is a buffer of doubles (the decode table's ``array('d')``) and
        ``quality`` one of bytes (its ``bytearray``).
        """
        cdef dict value_map = {}
        cdef dict quality_map = {}
        cdef Py_ssize_t i
        cdef double value
        cdef double rounded
        cdef uint8_t code
        cdef int places
        self._gather(values, quality)
        for i in range(self.count):
            name = self.names[i]
            code = self.gathered_quality[i]
            quality_map[name] = (self.quality_names[code] if code < len(self.quality_names)
                                 else QUALITY_NAMES.get(code, "invalid"))
            if code != BESSAI_QUALITY_OK:
                value_map[name] = None
                continue
            value = self.gathered_values[i]
            if self.kinds[i] == _ROUND_NONE or not isfinite(value):
                value_map[name] = value + 0.0  # + 0.0 turns -0.0 into 0.0
                continue
            places = self.digits[i]
            if self.kinds[i] == _ROUND_SIGNIFICANT:
                if value == 0.0:
                    value_map[name] = 0.0
                    continue
                places = places - 1 - <int>floor(log10(fabs(value)))
            if _round_decimal(value, places, &rounded):
                value_map[name] = rounded + 0.0  # + 0.0 turns -0.0 into 0.0
                continue
            try:
                value_map[name] = self.round_function(value, places) + 0.0
            except OverflowError:  # 1.79e308 to 15 digits rounds past the largest float
                value_map[name] = value
        return value_map, quality_map


def round_places(double value, int places):
    """Return ``round(value, places)``: the same float, without Python's decimal string."""
    cdef double rounded
    if _round_decimal(value, places, &rounded):
        return rounded
    return round(value, places)
