/* bessai_core: decode, encode and safety limits over Modbus register words (C99). */
#include "bessai_core.h"

#include <math.h>
#include <string.h>

/* Powers of ten for SunSpec scale factors -10..10, exact in double. */
static const double POW10[BESSAI_SF_MAX + 1] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10
};

/* Return the number of words a type occupies, or 0 for strings and unknown types. */
unsigned bessai_type_words(int type)
{
    switch (type) {
    case BESSAI_TYPE_U16:
    case BESSAI_TYPE_S16:
    case BESSAI_TYPE_BITFIELD16:
    case BESSAI_TYPE_ENUM16:
    case BESSAI_TYPE_SUNSSF:
        return 1;
    case BESSAI_TYPE_U32:
    case BESSAI_TYPE_S32:
    case BESSAI_TYPE_F32:
    case BESSAI_TYPE_BITFIELD32:
    case BESSAI_TYPE_ACC32:
        return 2;
    case BESSAI_TYPE_U64:
    case BESSAI_TYPE_S64:
    case BESSAI_TYPE_F64:
    case BESSAI_TYPE_ACC64:
        return 4;
    default:
        return 0;
    }
}

/* Return a static English description of a status code. */
const char *bessai_status_message(int status)
{
    switch (status) {
    case BESSAI_OK: return "ok";
    case BESSAI_E_TYPE: return "unknown type";
    case BESSAI_E_ORDER: return "unknown byte order, or one the type cannot use";
    case BESSAI_E_LENGTH: return "length does not match the type, or the string does not fit its words";
    case BESSAI_E_OUTSIDE: return "words outside the buffer";
    case BESSAI_E_BLOCK: return "block index not below the block count";
    case BESSAI_E_SCALE_FACTOR: return "scale factor index is not a sunssf point of the same block";
    case BESSAI_E_SCALE:
        return "scale is zero or not finite, offset is not finite, or a sunssf point is scaled";
    case BESSAI_E_SENTINEL: return "sentinel does not fit the type, or lies outside the sentinel pool";
    case BESSAI_E_RANGE: return "value does not fit the type";
    case BESSAI_E_SIZE: return "buffer has the wrong size";
    case BESSAI_E_LIMIT: return "limit levels out of order, or hysteresis negative or not finite";
    case BESSAI_E_NULL: return "required pointer is NULL";
    case BESSAI_E_PERIODS: return "scan periods since the previous evaluation is zero";
    default: return "unknown status";
    }
}

/* Default "not available" raw value per type, indexed by enum bessai_type. */
static const uint64_t DEFAULT_SENTINELS[BESSAI_TYPE_COUNT] = {
    0xFFFFu,                            /* u16 */
    0x8000u,                            /* s16 */
    0xFFFFFFFFu,                        /* u32 */
    0x80000000u,                        /* s32 */
    UINT64_MAX,                         /* u64 */
    UINT64_C(0x8000000000000000),       /* s64 */
    0x7FC00000u,                        /* f32 quiet NaN (decode treats any NaN the same) */
    UINT64_C(0x7FF8000000000000),       /* f64 quiet NaN */
    0xFFFFu,                            /* bitfield16 */
    0xFFFFFFFFu,                        /* bitfield32 */
    0xFFFFu,                            /* enum16 */
    0,                                  /* acc32: a counter that reads 0 is not implemented */
    0,                                  /* acc64 */
    0x8000u,                            /* sunssf */
    0                                   /* str: unused, an all-zero string is not available */
};

/* Swap the two bytes of a word. */
static uint16_t swap16(uint16_t word)
{
    return (uint16_t)((word >> 8) | (word << 8));
}

/*
 * Read n (1, 2 or 4) words as one unsigned integer, where order bit 0 swaps the bytes of
 * each word (BADC, DCBA) and bit 1 reverses the words (CDAB, DCBA).
 */
static inline uint64_t read_raw(const uint16_t *words, unsigned n, int order)
{
    unsigned swap_bytes = (unsigned)order & 1u;
    unsigned last = ((unsigned)order & 2u) ? n - 1 : 0; /* XOR-ing i with it reverses i */
    uint64_t raw = 0;
    unsigned i;

    if (n == 1) {
        return swap_bytes ? swap16(words[0]) : words[0];
    }
    for (i = 0; i < n; i++) {
        uint16_t word = words[i ^ last];
        raw = (raw << 16) | (swap_bytes ? swap16(word) : word);
    }
    return raw;
}

/* Write one unsigned integer as n (1, 2 or 4) words in the given order. */
static void write_raw(uint64_t raw, unsigned n, int order, uint16_t *out)
{
    int swap_words = (order == BESSAI_ORDER_CDAB || order == BESSAI_ORDER_DCBA);
    int swap_bytes = (order == BESSAI_ORDER_BADC || order == BESSAI_ORDER_DCBA);
    unsigned i;

    for (i = 0; i < n; i++) {
        uint16_t word = (uint16_t)(raw >> (16u * (n - 1 - i)));
        if (swap_bytes) {
            word = (uint16_t)((word >> 8) | (word << 8));
        }
        out[swap_words ? n - 1 - i : i] = word;
    }
}

/* Return a two's complement raw value of the given width as a signed integer. */
static int64_t to_signed(uint64_t raw, unsigned bits)
{
    uint64_t sign = UINT64_C(1) << (bits - 1);

    if (raw < sign) {
        return (int64_t)raw;
    }
    /* Both steps stay inside int64_t, so no conversion is implementation-defined. */
    return (int64_t)(raw - sign) + (bits == 64 ? INT64_MIN : -(int64_t)sign);
}

/* Return the float whose IEEE 754 single-precision bits are the low 32 bits of raw. */
static double f32_from_bits(uint64_t raw)
{
    uint32_t bits = (uint32_t)raw;
    float f;

    memcpy(&f, &bits, sizeof f);
    return (double)f;
}

/* Return the double whose IEEE 754 bits are raw. */
static double f64_from_bits(uint64_t raw)
{
    double d;

    memcpy(&d, &raw, sizeof d);
    return d;
}

/* Return 1 when a point's raw value is its type's default or one of its extra sentinels. */
static int is_sentinel(const bessai_decode_table *table, const bessai_point *point, uint64_t raw)
{
    uint32_t i;

    if (raw == DEFAULT_SENTINELS[point->type]
        && !(point->flags & BESSAI_POINT_NO_DEFAULT_SENTINEL)) {
        return 1;
    }
    for (i = 0; i < point->sentinel_count; i++) {
        if (table->sentinels[point->sentinel_first + i] == raw) {
            return 1;
        }
    }
    return 0;
}

/* Return 1 for a finite non-zero scale and a finite offset, or scale 1 and offset 0 for sunssf. */
static int scale_is_valid(int type, double scale, double offset)
{
    if (type == BESSAI_TYPE_SUNSSF) {
        return scale == 1.0 && offset == 0.0;
    }
    return isfinite(scale) && scale != 0.0 && isfinite(offset);
}

/* Check one point of a table against the buffer, the blocks and the sentinel pool. */
static int check_point(const bessai_decode_table *table, uint32_t i)
{
    const bessai_point *point = &table->points[i];
    unsigned words;

    if (point->type >= BESSAI_TYPE_COUNT) {
        return BESSAI_E_TYPE;
    }
    if (point->order >= BESSAI_ORDER_COUNT) {
        return BESSAI_E_ORDER;
    }
    words = bessai_type_words(point->type);
    if (point->type == BESSAI_TYPE_STR) {
        if (point->order != BESSAI_ORDER_ABCD && point->order != BESSAI_ORDER_BADC) {
            return BESSAI_E_ORDER;
        }
        if (point->length == 0) {
            return BESSAI_E_LENGTH;
        }
    } else if (point->length != words) {
        return BESSAI_E_LENGTH;
    }
    if (point->index > table->buffer_words
        || point->length > table->buffer_words - point->index) {
        return BESSAI_E_OUTSIDE;
    }
    if (point->block >= table->block_count) {
        return BESSAI_E_BLOCK;
    }
    if (!scale_is_valid(point->type, point->scale, point->offset)) {
        return BESSAI_E_SCALE;
    }
    if (point->sentinel_first > table->sentinel_count
        || point->sentinel_count > table->sentinel_count - point->sentinel_first) {
        return BESSAI_E_SENTINEL;
    }
    if (point->sf_index != -1) {
        const bessai_point *sf;
        if (point->sf_index < 0 || (uint32_t)point->sf_index >= table->point_count) {
            return BESSAI_E_SCALE_FACTOR;
        }
        sf = &table->points[point->sf_index];
        if (sf->type != BESSAI_TYPE_SUNSSF || sf->block != point->block
            || point->type == BESSAI_TYPE_SUNSSF || point->type == BESSAI_TYPE_STR) {
            return BESSAI_E_SCALE_FACTOR;
        }
    }
    return BESSAI_OK;
}

/* Check a decode table once, storing the index of the first invalid point in *bad_point. */
int bessai_decode_table_check(const bessai_decode_table *table, uint32_t *bad_point)
{
    uint32_t i;

    if (table == NULL || bad_point == NULL) {
        return BESSAI_E_NULL;
    }
    if (table->point_count > 0 && table->points == NULL) {
        return BESSAI_E_NULL;
    }
    if (table->sentinel_count > 0 && table->sentinels == NULL) {
        return BESSAI_E_NULL;
    }
    for (i = 0; i < table->point_count; i++) {
        int status = check_point(table, i);
        if (status != BESSAI_OK) {
            *bad_point = i;
            return status;
        }
    }
    return BESSAI_OK;
}

/* Decode a sunssf point into *sf and return its quality. */
static uint8_t decode_scale_factor(const bessai_decode_table *table, const bessai_point *sf_point,
                                   const uint16_t *words, int *sf)
{
    uint64_t raw = read_raw(words + sf_point->index, 1, sf_point->order);
    int value;

    if (is_sentinel(table, sf_point, raw)) {
        return BESSAI_QUALITY_NOT_AVAILABLE;
    }
    value = (int)to_signed(raw, 16);
    if (value < BESSAI_SF_MIN || value > BESSAI_SF_MAX) {
        return BESSAI_QUALITY_INVALID;
    }
    *sf = value;
    return BESSAI_QUALITY_OK;
}

/* Return 1 when every word of a string point is zero (SunSpec "not implemented"). */
static int string_is_empty(const uint16_t *words, uint32_t length)
{
    uint32_t i;

    for (i = 0; i < length; i++) {
        if (words[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* Read and convert a point's raw value, returning QUALITY_OK or why it is not usable. */
static uint8_t read_number(const bessai_decode_table *table, const bessai_point *point,
                           const uint16_t *words, double *number)
{
    const uint16_t *first = words + point->index;
    uint64_t raw;

    /* One switch on the type, whose constant widths let read_raw unroll in each case. */
    switch (point->type) {
    case BESSAI_TYPE_U16:
    case BESSAI_TYPE_BITFIELD16:
    case BESSAI_TYPE_ENUM16:
        raw = read_raw(first, 1, point->order);
        *number = (double)raw;
        break;
    case BESSAI_TYPE_S16:
    case BESSAI_TYPE_SUNSSF:
        raw = read_raw(first, 1, point->order);
        *number = (double)to_signed(raw, 16);
        break;
    case BESSAI_TYPE_U32:
    case BESSAI_TYPE_BITFIELD32:
    case BESSAI_TYPE_ACC32:
        raw = read_raw(first, 2, point->order);
        *number = (double)raw;
        break;
    case BESSAI_TYPE_S32:
        raw = read_raw(first, 2, point->order);
        *number = (double)to_signed(raw, 32);
        break;
    case BESSAI_TYPE_F32:
        raw = read_raw(first, 2, point->order);
        *number = f32_from_bits(raw);
        break;
    case BESSAI_TYPE_S64:
        raw = read_raw(first, 4, point->order);
        *number = (double)to_signed(raw, 64);
        break;
    case BESSAI_TYPE_F64:
        raw = read_raw(first, 4, point->order);
        *number = f64_from_bits(raw);
        break;
    default: /* u64, acc64 */
        raw = read_raw(first, 4, point->order);
        *number = (double)raw;
        break;
    }
    if (is_sentinel(table, point, raw)) {
        return BESSAI_QUALITY_NOT_AVAILABLE;
    }
    if (isnan(*number)) { /* f32/f64 only: any NaN is the default sentinel */
        return (point->flags & BESSAI_POINT_NO_DEFAULT_SENTINEL)
            ? BESSAI_QUALITY_INVALID : BESSAI_QUALITY_NOT_AVAILABLE;
    }
    return BESSAI_QUALITY_OK;
}

/* Decode one point of a checked table into *value and return its quality. */
static uint8_t decode_point(const bessai_decode_table *table, const bessai_point *point,
                            const uint16_t *words, double *value)
{
    double number;
    uint8_t quality;
    int sf = 0;

    if (point->type == BESSAI_TYPE_STR) {
        /* The text comes from bessai_decode_string(), so the value only carries quality. */
        *value = 0.0;
        return string_is_empty(words + point->index, point->length)
            ? BESSAI_QUALITY_NOT_AVAILABLE : BESSAI_QUALITY_OK;
    }
    quality = read_number(table, point, words, &number);
    if (quality != BESSAI_QUALITY_OK) {
        return quality;
    }
    if (point->type == BESSAI_TYPE_SUNSSF) {
        if (number < BESSAI_SF_MIN || number > BESSAI_SF_MAX) {
            return BESSAI_QUALITY_INVALID;
        }
        *value = number;
        return BESSAI_QUALITY_OK;
    }
    if (point->sf_index >= 0) {
        quality = decode_scale_factor(table, &table->points[point->sf_index], words, &sf);
        if (quality != BESSAI_QUALITY_OK) {
            return quality;
        }
        /* Dividing by an exact power of ten keeps 60000 x 10^-2 at exactly 600. */
        number = sf >= 0 ? number * POW10[sf] : number / POW10[-sf];
    }
    number = number * point->scale + point->offset;
    if (!isfinite(number)) {
        return BESSAI_QUALITY_INVALID;
    }
    *value = number;
    return BESSAI_QUALITY_OK;
}

/* Decode every point of a checked table from one cycle buffer into values and qualities. */
int bessai_decode(const bessai_decode_table *table, const uint16_t *words, size_t word_count,
                  const uint8_t *block_status, size_t block_count, double *values,
                  uint8_t *quality)
{
    const bessai_point *points;
    uint32_t point_count;
    uint32_t i;

    if (table == NULL || words == NULL || values == NULL || quality == NULL
        || (block_status == NULL && table->block_count > 0)) {
        return BESSAI_E_NULL;
    }
    if (word_count != table->buffer_words || block_count < table->block_count) {
        return BESSAI_E_SIZE;
    }
    /* Locals, because every byte store to quality may alias the table for the compiler. */
    points = table->points;
    point_count = table->point_count;
    for (i = 0; i < point_count; i++) {
        const bessai_point *point = &points[i];
        double value = NAN;
        uint8_t q;

        if (block_status[point->block] != 0) {
            q = BESSAI_QUALITY_COMM_ERROR;
        } else {
            q = decode_point(table, point, words, &value);
        }
        values[i] = q == BESSAI_QUALITY_OK ? value : NAN;
        quality[i] = q;
    }
    return BESSAI_OK;
}

/* Copy a string point's bytes up to the first NUL into out and their count into *out_length. */
int bessai_decode_string(const bessai_point *point, const uint16_t *words, size_t word_count,
                         char *out, size_t out_size, size_t *out_length)
{
    int swap_bytes;
    size_t n = 0;
    uint32_t i;

    if (point == NULL || words == NULL || out == NULL || out_length == NULL) {
        return BESSAI_E_NULL;
    }
    if (point->type != BESSAI_TYPE_STR) {
        return BESSAI_E_TYPE;
    }
    if (point->order != BESSAI_ORDER_ABCD && point->order != BESSAI_ORDER_BADC) {
        return BESSAI_E_ORDER;
    }
    if (point->index > word_count || point->length > word_count - point->index) {
        return BESSAI_E_OUTSIDE;
    }
    if (out_size < 2u * (size_t)point->length) {
        return BESSAI_E_SIZE;
    }
    swap_bytes = point->order == BESSAI_ORDER_BADC;
    for (i = 0; i < point->length; i++) {
        uint16_t word = words[point->index + i];
        char first = (char)(swap_bytes ? word & 0xFFu : word >> 8);
        char second = (char)(swap_bytes ? word >> 8 : word & 0xFFu);
        if (first == '\0') {
            break;
        }
        out[n++] = first;
        if (second == '\0') {
            break;
        }
        out[n++] = second;
    }
    *out_length = n;
    return BESSAI_OK;
}

/* Round a value to the raw integer of an integer type, or fail when it does not fit. */
static int encode_integer(int type, double raw_value, uint64_t *raw)
{
    double rounded = round(raw_value);
    double low;
    double high; /* exclusive */

    switch (type) {
    case BESSAI_TYPE_S16:
    case BESSAI_TYPE_SUNSSF:
        low = -32768.0; high = 32768.0; break;
    case BESSAI_TYPE_S32:
        low = -2147483648.0; high = 2147483648.0; break;
    case BESSAI_TYPE_S64:
        low = -9223372036854775808.0; high = 9223372036854775808.0; break;
    case BESSAI_TYPE_U32:
    case BESSAI_TYPE_BITFIELD32:
    case BESSAI_TYPE_ACC32:
        low = 0.0; high = 4294967296.0; break;
    case BESSAI_TYPE_U64:
    case BESSAI_TYPE_ACC64:
        low = 0.0; high = 18446744073709551616.0; break;
    default:
        low = 0.0; high = 65536.0; break;
    }
    if (!(rounded >= low && rounded < high)) { /* also rejects NaN */
        return BESSAI_E_RANGE;
    }
    if (rounded < 0.0) {
        *raw = (uint64_t)(int64_t)rounded; /* two's complement bits of the negative value */
    } else {
        *raw = (uint64_t)rounded;
    }
    return BESSAI_OK;
}

/* Encode an engineering value of a numeric type into length words. */
int bessai_encode(int type, int order, double value, double scale, double offset,
                  uint16_t *out, size_t length)
{
    unsigned words = bessai_type_words(type);
    double raw_value;
    uint64_t raw;

    if (out == NULL) {
        return BESSAI_E_NULL;
    }
    if (words == 0) {
        return BESSAI_E_TYPE;
    }
    if (order < 0 || order >= BESSAI_ORDER_COUNT) {
        return BESSAI_E_ORDER;
    }
    if (length != words) {
        return BESSAI_E_LENGTH;
    }
    if (!scale_is_valid(type, scale, offset)) {
        return BESSAI_E_SCALE;
    }
    raw_value = (value - offset) / scale;
    if (type == BESSAI_TYPE_F32) {
        float f = (float)raw_value;
        uint32_t bits;
        if (isfinite(raw_value) && !isfinite(f)) {
            return BESSAI_E_RANGE;
        }
        memcpy(&bits, &f, sizeof bits);
        raw = bits;
    } else if (type == BESSAI_TYPE_F64) {
        memcpy(&raw, &raw_value, sizeof raw);
    } else {
        int status = encode_integer(type, raw_value, &raw);
        if (status != BESSAI_OK) {
            return status;
        }
    }
    write_raw(raw, words, order, out);
    return BESSAI_OK;
}

/* Encode bytes as a string of length words, padding with NUL bytes. */
int bessai_encode_string(int order, const char *text, size_t text_length, uint16_t *out,
                         size_t length)
{
    size_t i;

    if (out == NULL || (text == NULL && text_length > 0)) {
        return BESSAI_E_NULL;
    }
    if (order != BESSAI_ORDER_ABCD && order != BESSAI_ORDER_BADC) {
        return BESSAI_E_ORDER;
    }
    if (length == 0 || text_length > 2 * length) {
        return BESSAI_E_LENGTH;
    }
    for (i = 0; i < length; i++) {
        unsigned char first = 2 * i < text_length ? (unsigned char)text[2 * i] : 0;
        unsigned char second = 2 * i + 1 < text_length ? (unsigned char)text[2 * i + 1] : 0;
        unsigned high = order == BESSAI_ORDER_BADC ? second : first;
        unsigned low = order == BESSAI_ORDER_BADC ? first : second;
        out[i] = (uint16_t)((high << 8) | low);
    }
    return BESSAI_OK;
}

/* Write the default "not available" words of a type. */
int bessai_not_available_words(int type, int order, uint16_t *out, size_t length)
{
    unsigned words;

    if (out == NULL) {
        return BESSAI_E_NULL;
    }
    if (type < 0 || type >= BESSAI_TYPE_COUNT) {
        return BESSAI_E_TYPE;
    }
    if (order < 0 || order >= BESSAI_ORDER_COUNT) {
        return BESSAI_E_ORDER;
    }
    if (type == BESSAI_TYPE_STR) {
        if (length == 0) {
            return BESSAI_E_LENGTH;
        }
        memset(out, 0, length * sizeof *out);
        return BESSAI_OK;
    }
    words = bessai_type_words(type);
    if (length != words) {
        return BESSAI_E_LENGTH;
    }
    write_raw(DEFAULT_SENTINELS[type], words, order, out);
    return BESSAI_OK;
}

/* Return 1 when a value lies past a level's threshold in the direction that raises it. */
static int beyond(int level, double value, double threshold)
{
    return level < BESSAI_LEVEL_HIGH_WARN ? value <= threshold : value >= threshold;
}

/* Return 1 when a value is back inside a level's threshold by more than the hysteresis. */
static int back_inside(int level, double value, double threshold, double hysteresis)
{
    return level < BESSAI_LEVEL_HIGH_WARN ? value > threshold + hysteresis
                                          : value < threshold - hysteresis;
}

/* Check a limit table once, storing the index of the first invalid limit in *bad_limit. */
int bessai_limit_table_check(const bessai_limit *limits, uint32_t limit_count,
                             uint32_t *bad_limit)
{
    uint32_t i;
    int level;

    if (bad_limit == NULL || (limits == NULL && limit_count > 0)) {
        return BESSAI_E_NULL;
    }
    for (i = 0; i < limit_count; i++) {
        const bessai_limit *limit = &limits[i];
        double previous = -INFINITY;
        int ok = isfinite(limit->hysteresis) && limit->hysteresis >= 0.0;

        for (level = 0; level < 4 && ok; level++) {
            double threshold = limit->threshold[level];
            if (isnan(threshold)) {
                continue;
            }
            ok = isfinite(threshold) && threshold >= previous;
            previous = threshold;
        }
        if (!ok) {
            *bad_limit = i;
            return BESSAI_E_LIMIT;
        }
    }
    return BESSAI_OK;
}

/* Append a transition if there is room, so writes stay inside the caller's array. */
static void push_transition(bessai_transition *transitions, size_t capacity, size_t *count,
                            uint32_t limit, int level, int raised)
{
    if (*count < capacity) {
        transitions[*count].limit = limit;
        transitions[*count].level = (uint8_t)level;
        transitions[*count].raised = (uint8_t)raised;
        (*count)++;
    }
}

/*
 * Advance the stale count of one limit by the periods elapsed and report a raise or a
 * clear. A good value is a fact, not a noisy reading, so it clears "stale" at once.
 */
static void evaluate_stale(const bessai_limit *limit, bessai_limit_state *state, int good,
                           uint32_t periods, uint32_t index, bessai_transition *transitions,
                           size_t capacity, size_t *count)
{
    const uint8_t bit = (uint8_t)(1u << BESSAI_LEVEL_STALE);

    if (good) {
        state->bad_periods = 0;
        if (state->active & bit) {
            state->active &= (uint8_t)~bit;
            push_transition(transitions, capacity, count, index, BESSAI_LEVEL_STALE, 0);
        }
        return;
    }
    state->bad_periods = periods > UINT32_MAX - state->bad_periods ? UINT32_MAX
                                                                   : state->bad_periods + periods;
    if (limit->stale_cycles > 0 && state->bad_periods >= limit->stale_cycles
        && !(state->active & bit)) {
        state->active |= bit;
        push_transition(transitions, capacity, count, index, BESSAI_LEVEL_STALE, 1);
    }
}

/* Advance one threshold level of a limit with a good value and report a raise or a clear. */
static inline void evaluate_level(const bessai_limit *limit, bessai_limit_state *state,
                                  int level, double value, uint32_t debounce, uint32_t index,
                                  bessai_transition *transitions, size_t capacity,
                                  size_t *count)
{
    double threshold = limit->threshold[level];
    uint8_t bit = (uint8_t)(1u << level);
    int active = (state->active & bit) != 0;
    int change;

    if (isnan(threshold)) {
        return;
    }
    change = active ? back_inside(level, value, threshold, limit->hysteresis)
                    : beyond(level, value, threshold);
    if (!change) {
        state->pending[level] = 0;
        return;
    }
    state->pending[level]++;
    if (state->pending[level] >= debounce) {
        state->pending[level] = 0;
        state->active ^= bit;
        push_transition(transitions, capacity, count, index, level, !active);
    }
}

/* Evaluate checked limits for one cycle, periods scan periods after the previous one. */
int bessai_limits_evaluate_periods(const bessai_limit *limits, bessai_limit_state *states,
                                   uint32_t limit_count, const double *values,
                                   const uint8_t *quality, size_t value_count,
                                   uint32_t periods, bessai_transition *transitions,
                                   size_t transition_capacity, size_t *transition_count)
{
    uint32_t i;

    if (transition_count == NULL) {
        return BESSAI_E_NULL;
    }
    *transition_count = 0;
    if (periods == 0) {
        return BESSAI_E_PERIODS;
    }
    if (limit_count == 0) {
        return BESSAI_OK;
    }
    if (limits == NULL || states == NULL || values == NULL || quality == NULL
        || transitions == NULL) {
        return BESSAI_E_NULL;
    }
    if (transition_capacity < (size_t)limit_count * BESSAI_LEVEL_COUNT) {
        return BESSAI_E_SIZE;
    }
    for (i = 0; i < limit_count; i++) {
        if (limits[i].value_index >= value_count) {
            return BESSAI_E_OUTSIDE;
        }
    }
    for (i = 0; i < limit_count; i++) {
        const bessai_limit *limit = &limits[i];
        bessai_limit_state *state = &states[i];
        double value = values[limit->value_index];
        uint32_t debounce = limit->debounce > 0 ? limit->debounce : 1;
        int good = quality[limit->value_index] == BESSAI_QUALITY_OK && isfinite(value);

        evaluate_stale(limit, state, good, periods, i, transitions, transition_capacity,
                       transition_count);
        if (!good) {
            continue; /* a value that is not good leaves levels and counters as they are */
        }
        /* Constant levels let the compiler specialize each call. */
        evaluate_level(limit, state, BESSAI_LEVEL_LOW_TRIP, value, debounce, i, transitions,
                       transition_capacity, transition_count);
        evaluate_level(limit, state, BESSAI_LEVEL_LOW_WARN, value, debounce, i, transitions,
                       transition_capacity, transition_count);
        evaluate_level(limit, state, BESSAI_LEVEL_HIGH_WARN, value, debounce, i, transitions,
                       transition_capacity, transition_count);
        evaluate_level(limit, state, BESSAI_LEVEL_HIGH_TRIP, value, debounce, i, transitions,
                       transition_capacity, transition_count);
    }
    return BESSAI_OK;
}

/* Evaluate checked limits for one cycle on time: one scan period after the previous one. */
int bessai_limits_evaluate(const bessai_limit *limits, bessai_limit_state *states,
                           uint32_t limit_count, const double *values,
                           const uint8_t *quality, size_t value_count,
                           bessai_transition *transitions, size_t transition_capacity,
                           size_t *transition_count)
{
    return bessai_limits_evaluate_periods(limits, states, limit_count, values, quality,
                                          value_count, 1u, transitions, transition_capacity,
                                          transition_count);
}
