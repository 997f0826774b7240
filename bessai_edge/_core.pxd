# Declarations of the C core in native/bessai_core.h, shared by _core.pyx.

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "bessai_core.h" nogil:
    enum:
        BESSAI_TYPE_U16
        BESSAI_TYPE_S16
        BESSAI_TYPE_U32
        BESSAI_TYPE_S32
        BESSAI_TYPE_U64
        BESSAI_TYPE_S64
        BESSAI_TYPE_F32
        BESSAI_TYPE_F64
        BESSAI_TYPE_BITFIELD16
        BESSAI_TYPE_BITFIELD32
        BESSAI_TYPE_ENUM16
        BESSAI_TYPE_ACC32
        BESSAI_TYPE_ACC64
        BESSAI_TYPE_SUNSSF
        BESSAI_TYPE_STR
        BESSAI_TYPE_COUNT

    enum:
        BESSAI_ORDER_ABCD
        BESSAI_ORDER_BADC
        BESSAI_ORDER_CDAB
        BESSAI_ORDER_DCBA
        BESSAI_ORDER_COUNT

    enum:
        BESSAI_QUALITY_OK
        BESSAI_QUALITY_NOT_AVAILABLE
        BESSAI_QUALITY_COMM_ERROR
        BESSAI_QUALITY_INVALID

    enum:
        BESSAI_OK
        BESSAI_E_TYPE
        BESSAI_E_ORDER
        BESSAI_E_LENGTH
        BESSAI_E_OUTSIDE
        BESSAI_E_BLOCK
        BESSAI_E_SCALE_FACTOR
        BESSAI_E_SCALE
        BESSAI_E_SENTINEL
        BESSAI_E_RANGE
        BESSAI_E_SIZE
        BESSAI_E_LIMIT
        BESSAI_E_NULL
        BESSAI_E_PERIODS

    enum:
        BESSAI_LEVEL_LOW_TRIP
        BESSAI_LEVEL_LOW_WARN
        BESSAI_LEVEL_HIGH_WARN
        BESSAI_LEVEL_HIGH_TRIP
        BESSAI_LEVEL_STALE
        BESSAI_LEVEL_COUNT

    unsigned int BESSAI_POINT_NO_DEFAULT_SENTINEL
    int BESSAI_SF_MIN
    int BESSAI_SF_MAX

    ctypedef struct bessai_point:
        uint32_t index
        uint32_t length
        uint32_t block
        int32_t sf_index
        uint32_t sentinel_first
        uint32_t sentinel_count
        uint8_t type
        uint8_t order
        uint8_t flags
        double scale
        double offset

    ctypedef struct bessai_decode_table:
        const bessai_point *points
        uint32_t point_count
        const uint64_t *sentinels
        uint32_t sentinel_count
        uint32_t buffer_words
        uint32_t block_count

    ctypedef struct bessai_limit:
        uint32_t value_index
        double threshold[4]
        double hysteresis
        uint32_t debounce
        uint32_t stale_cycles

    ctypedef struct bessai_limit_state:
        uint32_t pending[4]
        uint32_t bad_periods
        uint8_t active

    ctypedef struct bessai_transition:
        uint32_t limit
        uint8_t level
        uint8_t raised

    unsigned bessai_type_words(int type)
    const char *bessai_status_message(int status)
    int bessai_decode_table_check(const bessai_decode_table *table, uint32_t *bad_point)
    int bessai_decode(const bessai_decode_table *table, const uint16_t *words, size_t word_count,
                      const uint8_t *block_status, size_t block_count, double *values,
                      uint8_t *quality)
    int bessai_decode_string(const bessai_point *point, const uint16_t *words,
                             size_t word_count, char *out, size_t out_size,
                             size_t *out_length)
    int bessai_encode(int type, int order, double value, double scale, double offset,
                      uint16_t *out, size_t length)
    int bessai_encode_string(int order, const char *text, size_t text_length, uint16_t *out,
                             size_t length)
    int bessai_not_available_words(int type, int order, uint16_t *out, size_t length)
    int bessai_limit_table_check(const bessai_limit *limits, uint32_t limit_count,
                                 uint32_t *bad_limit)
    int bessai_limits_evaluate(const bessai_limit *limits, bessai_limit_state *states,
                               uint32_t limit_count, const double *values,
                               const uint8_t *quality, size_t value_count,
                               bessai_transition *transitions, size_t transition_capacity,
                               size_t *transition_count)
    int bessai_limits_evaluate_periods(const bessai_limit *limits, bessai_limit_state *states,
                                       uint32_t limit_count, const double *values,
                                       const uint8_t *quality, size_t value_count,
                                       uint32_t periods, bessai_transition *transitions,
                                       size_t transition_capacity, size_t *transition_count)
