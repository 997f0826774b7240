/*
 * bessai_core: decode, encode and safety limits over Modbus register words.
 *
 * Portable C99 with no Python headers. Words are host-order uint16_t values as a
 * Modbus read returns them. Byte orders are named ABCD, BADC, CDAB and DCBA, A being
 * the high byte of the first register. For 64-bit values ABCD is all big-endian, CDAB
 * reverses the word order (lowest word first), BADC swaps the bytes inside each word
 * and DCBA is fully little-endian.
 *
 * Functions return BESSAI_OK (0) or a negative bessai_status, and none of them
 * allocates or prints. Tables are checked once with bessai_decode_table_check() or
 * bessai_limit_table_check(). The per-cycle calls, bessai_decode() and
 * bessai_limits_evaluate(), check only the sizes of the buffers they are given and
 * trust the table, so passing them an unchecked table is undefined behavior.
 */
#ifndef BESSAI_CORE_H
#define BESSAI_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Register types. The numbers are part of the ABI shared with the Cython binding. */
enum bessai_type {
    BESSAI_TYPE_U16 = 0,
    BESSAI_TYPE_S16 = 1,
    BESSAI_TYPE_U32 = 2,
    BESSAI_TYPE_S32 = 3,
    BESSAI_TYPE_U64 = 4,
    BESSAI_TYPE_S64 = 5,
    BESSAI_TYPE_F32 = 6,
    BESSAI_TYPE_F64 = 7,
    BESSAI_TYPE_BITFIELD16 = 8,
    BESSAI_TYPE_BITFIELD32 = 9,
    BESSAI_TYPE_ENUM16 = 10,
    BESSAI_TYPE_ACC32 = 11,
    BESSAI_TYPE_ACC64 = 12,
    BESSAI_TYPE_SUNSSF = 13,
    BESSAI_TYPE_STR = 14,
    BESSAI_TYPE_COUNT = 15
};

enum bessai_order {
    BESSAI_ORDER_ABCD = 0,
    BESSAI_ORDER_BADC = 1,
    BESSAI_ORDER_CDAB = 2,
    BESSAI_ORDER_DCBA = 3,
    BESSAI_ORDER_COUNT = 4
};

/* Per-value quality. A value whose quality is not OK is written as NaN. */
enum bessai_quality {
    BESSAI_QUALITY_OK = 0,
    BESSAI_QUALITY_NOT_AVAILABLE = 1,
    BESSAI_QUALITY_COMM_ERROR = 2,
    BESSAI_QUALITY_INVALID = 3
};

enum bessai_status {
    BESSAI_OK = 0,
    BESSAI_E_TYPE = -1,          /* unknown type */
    BESSAI_E_ORDER = -2,         /* unknown byte order, or one a string cannot use */
    BESSAI_E_LENGTH = -3,        /* length wrong for the type, or text too long for a string */
    BESSAI_E_OUTSIDE = -4,       /* point reads words outside the buffer */
    BESSAI_E_BLOCK = -5,         /* block index not below the block count */
    BESSAI_E_SCALE_FACTOR = -6,  /* sf_index is not a sunssf point of the same block */
    BESSAI_E_SCALE = -7,         /* scale zero or not finite, offset not finite, sunssf scaled */
    BESSAI_E_SENTINEL = -8,      /* sentinel does not fit the type, or lies outside the pool */
    BESSAI_E_RANGE = -9,         /* value to encode does not fit the type */
    BESSAI_E_SIZE = -10,         /* buffer passed to a call has the wrong size */
    BESSAI_E_LIMIT = -11,        /* limit levels out of order, bad hysteresis or index */
    BESSAI_E_NULL = -12,         /* a required pointer is NULL */
    BESSAI_E_PERIODS = -13       /* zero scan periods passed to an evaluation */
};

/* Point flag: the type's default "not available" value is an ordinary value. */
#define BESSAI_POINT_NO_DEFAULT_SENTINEL 0x01u

/* Smallest and largest SunSpec scale factor accepted. Others make the values invalid. */
#define BESSAI_SF_MIN (-10)
#define BESSAI_SF_MAX 10

/* One point of a decode table, resolved at load time. */
typedef struct {
    uint32_t index;          /* first word in the cycle buffer */
    uint32_t length;         /* words read, fixed by the type except for strings */
    uint32_t block;          /* request that reads the point, index into block_status */
    int32_t sf_index;        /* point index of its sunssf point, or -1 */
    uint32_t sentinel_first; /* first extra sentinel in the table's pool */
    uint32_t sentinel_count; /* number of extra sentinels */
    uint8_t type;            /* enum bessai_type */
    uint8_t order;           /* enum bessai_order */
    uint8_t flags;           /* BESSAI_POINT_* */
    double scale;            /* multiplier applied to the raw value */
    double offset;           /* added after scaling */
} bessai_point;

/* A decode table: points over one cycle buffer of buffer_words words. */
typedef struct {
    const bessai_point *points;
    uint32_t point_count;
    const uint64_t *sentinels; /* raw values: unsigned, sign bits as read, float bits */
    uint32_t sentinel_count;
    uint32_t buffer_words;
    uint32_t block_count;
} bessai_decode_table;

/* Safety levels, also the bit numbers of bessai_limit_state.active. */
enum bessai_level {
    BESSAI_LEVEL_LOW_TRIP = 0,
    BESSAI_LEVEL_LOW_WARN = 1,
    BESSAI_LEVEL_HIGH_WARN = 2,
    BESSAI_LEVEL_HIGH_TRIP = 3,
    BESSAI_LEVEL_STALE = 4,
    BESSAI_LEVEL_COUNT = 5
};

/* One safety limit over one decoded value, where a NaN threshold disables its level. */
typedef struct {
    uint32_t value_index;  /* index in the decoded values */
    double threshold[4];   /* low_trip, low_warn, high_warn, high_trip */
    double hysteresis;     /* distance past the threshold needed to clear */
    uint32_t debounce;     /* good cycles in a row before a raise or a clear (0 acts as 1) */
    uint32_t stale_cycles; /* scan periods without a good value that raise "stale" (0: never) */
} bessai_limit;

/* State kept between cycles for one limit. */
typedef struct {
    uint32_t pending[4]; /* consecutive cycles the opposite condition of each level held */
    uint32_t bad_periods; /* scan periods since the last good value, saturating */
    uint8_t active;      /* bit set per active level */
} bessai_limit_state;

/* One alarm transition reported by bessai_limits_evaluate(). */
typedef struct {
    uint32_t limit;
    uint8_t level;
    uint8_t raised; /* 1 raised, 0 cleared */
} bessai_transition;

/* Return the number of words a type occupies, or 0 for strings and unknown types. */
unsigned bessai_type_words(int type);

/* Return a static English description of a status code. */
const char *bessai_status_message(int status);

/* Check a decode table once, storing the index of the first invalid point in *bad_point. */
int bessai_decode_table_check(const bessai_decode_table *table, uint32_t *bad_point);

/* Decode every point of a checked table from one cycle buffer into values and qualities. */
int bessai_decode(const bessai_decode_table *table, const uint16_t *words, size_t word_count,
                  const uint8_t *block_status, size_t block_count, double *values,
                  uint8_t *quality);

/* Copy a string point's bytes up to the first NUL into out and their count into *out_length. */
int bessai_decode_string(const bessai_point *point, const uint16_t *words, size_t word_count,
                         char *out, size_t out_size, size_t *out_length);

/* Encode an engineering value of a numeric type into length words. */
int bessai_encode(int type, int order, double value, double scale, double offset,
                  uint16_t *out, size_t length);

/* Encode bytes as a string of length words, padding with NUL bytes. */
int bessai_encode_string(int order, const char *text, size_t text_length, uint16_t *out,
                         size_t length);

/* Write the default "not available" words of a type. */
int bessai_not_available_words(int type, int order, uint16_t *out, size_t length);

/* Check a limit table once, storing the index of the first invalid limit in *bad_limit. */
int bessai_limit_table_check(const bessai_limit *limits, uint32_t limit_count,
                             uint32_t *bad_limit);

/*
 * Evaluate checked limits for one cycle and write this cycle's transitions.
 *
 * periods is the number of scan periods (grid points of the cycle clock) since the
 * previous evaluation: 1 normally, more when cycles overran and start times were skipped.
 * A value that is not good adds it to the limit's stale count, so "stale" raises once
 * stale_cycles periods have passed since the last good value however many evaluations
 * ran in between. A good value clears "stale" at once. Threshold levels and their
 * debounce count evaluations, whatever periods is. Zero periods is BESSAI_E_PERIODS.
 */
int bessai_limits_evaluate_periods(const bessai_limit *limits, bessai_limit_state *states,
                                   uint32_t limit_count, const double *values,
                                   const uint8_t *quality, size_t value_count,
                                   uint32_t periods, bessai_transition *transitions,
                                   size_t transition_capacity, size_t *transition_count);

/* Evaluate with periods 1: bessai_limits_evaluate_periods() for a cycle on time. */
int bessai_limits_evaluate(const bessai_limit *limits, bessai_limit_state *states,
                           uint32_t limit_count, const double *values,
                           const uint8_t *quality, size_t value_count,
                           bessai_transition *transitions, size_t transition_capacity,
                           size_t *transition_count);

#ifdef __cplusplus
}
#endif

#endif /* BESSAI_CORE_H */
