/*
 * libFuzzer target for the decode entry point of native/bessai_core.c.
 *
 * The input describes a decode table, its block statuses and the register words, so
 * the fuzzer explores both table checking and decoding. Bytes past the end of a short
 * input read as zero. The layout:
 * - byte 0: point count - 1 (mod 16)
 * - byte 1: buffer words (mod 65)
 * - byte 2: block count - 1 (mod 4)
 * - 10 bytes per point: type, order, index, length, block, sf_index + 1, flags,
 *   sentinel_first, sentinel_count, then the scale (low nibble) and offset (high nibble)
 * - one status byte per block
 * - the words, big-endian, two bytes each
 * Every buffer handed to the core is a malloc block of the exact size, so AddressSanitizer
 * reports any read or write past it. Broken invariants abort().
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bessai_core.h"

#define MAX_POINTS 16
#define POINT_BYTES 10

static const double SCALES[8] = {1.0, 0.1, 0.001, 10.0, -1.0, 1e308, 1e-300, 0.0};
static const double OFFSETS[4] = {0.0, -273.15, 1e308, -1e308};
static const uint64_t SENTINELS[2] = {0x7FFFu, 0x7FFFFFFFu};

/* Return byte i of the input, or 0 past its end. */
static uint8_t byte_at(const uint8_t *data, size_t size, size_t i)
{
    return i < size ? data[i] : 0;
}

/* Abort unless a condition holds, so libFuzzer records the input. */
static void require(int condition)
{
    if (!condition) {
        abort();
    }
}

/* Check that an ok integer value encodes back to the words it came from. */
static void check_round_trip(const bessai_point *point, const uint16_t *words, double value)
{
    uint16_t out[4];
    int type = point->type;

    if (point->sf_index != -1 || point->scale != 1.0 || point->offset != 0.0
        || type == BESSAI_TYPE_STR || type == BESSAI_TYPE_F32 || type == BESSAI_TYPE_F64
        || fabs(value) >= 9007199254740992.0) { /* 2^53: larger integers lose bits */
        return;
    }
    require(bessai_encode(type, point->order, value, 1.0, 0.0, out, point->length) == BESSAI_OK);
    require(memcmp(out, words + point->index, point->length * sizeof *out) == 0);
}

/* Evaluate one limit per decoded value for a few cycles and check the transitions. */
static void check_limits(const double *values, const uint8_t *quality, uint32_t count)
{
    bessai_limit *limits = calloc(count, sizeof *limits);
    bessai_limit_state *states = calloc(count, sizeof *states);
    size_t capacity = (size_t)count * BESSAI_LEVEL_COUNT;
    bessai_transition *transitions = malloc(capacity * sizeof *transitions);
    uint32_t bad_limit = 0;
    uint32_t i;
    int cycle;

    require(limits != NULL && states != NULL && transitions != NULL);
    for (i = 0; i < count; i++) {
        limits[i].value_index = i;
        limits[i].threshold[0] = -10.0;
        limits[i].threshold[1] = 0.0;
        limits[i].threshold[2] = 100.0;
        limits[i].threshold[3] = 1000.0;
        limits[i].hysteresis = 1.0;
        limits[i].debounce = i % 3;
        limits[i].stale_cycles = i % 2 + 1;
    }
    require(bessai_limit_table_check(limits, count, &bad_limit) == BESSAI_OK);
    for (cycle = 0; cycle < 3; cycle++) {
        size_t transition_count = 0;
        require(bessai_limits_evaluate(limits, states, count, values, quality, count,
                                       transitions, capacity, &transition_count) == BESSAI_OK);
        require(transition_count <= capacity);
        for (i = 0; i < transition_count; i++) {
            require(transitions[i].limit < count && transitions[i].level < BESSAI_LEVEL_COUNT);
        }
    }
    free(limits);
    free(states);
    free(transitions);
}

/* Decode one table from the input and check the core's invariants. */
static void run_table(bessai_decode_table *table, bessai_point *points, const uint8_t *status,
                      const uint16_t *words)
{
    uint32_t i;
    double *values = malloc(table->point_count * sizeof *values);
    uint8_t *quality = malloc(table->point_count);

    require(values != NULL && quality != NULL);
    require(bessai_decode(table, words, table->buffer_words, status, table->block_count,
                          values, quality) == BESSAI_OK);
    for (i = 0; i < table->point_count; i++) {
        require(quality[i] <= BESSAI_QUALITY_INVALID);
        require(quality[i] == BESSAI_QUALITY_OK ? isfinite(values[i]) : isnan(values[i]));
        if (quality[i] == BESSAI_QUALITY_OK) {
            check_round_trip(&points[i], words, values[i]);
        }
        if (points[i].type == BESSAI_TYPE_STR) {
            size_t length = 0;
            char *text = malloc(2u * points[i].length);
            require(text != NULL);
            require(bessai_decode_string(&points[i], words, table->buffer_words, text,
                                         2u * points[i].length, &length) == BESSAI_OK);
            require(length <= 2u * points[i].length);
            free(text);
        }
    }
    check_limits(values, quality, table->point_count);
    free(values);
    free(quality);
}

/* Build a table from the input; check it, then decode it when the check passes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t point_count = (uint32_t)(byte_at(data, size, 0) % MAX_POINTS) + 1;
    uint32_t buffer_words = byte_at(data, size, 1) % 65u;
    uint32_t block_count = (uint32_t)(byte_at(data, size, 2) % 4) + 1;
    size_t cursor = 3;
    bessai_point *points = calloc(point_count, sizeof *points);
    uint8_t *status = malloc(block_count);
    uint16_t *words = malloc(buffer_words > 0 ? buffer_words * sizeof *words : 1);
    uint64_t *sentinels = malloc(sizeof SENTINELS);
    bessai_decode_table table;
    uint32_t bad_point = UINT32_MAX;
    uint32_t i;

    require(points != NULL && status != NULL && words != NULL && sentinels != NULL);
    memcpy(sentinels, SENTINELS, sizeof SENTINELS);
    for (i = 0; i < point_count; i++, cursor += POINT_BYTES) {
        uint8_t selector = byte_at(data, size, cursor + 9);
        points[i].type = byte_at(data, size, cursor) % (BESSAI_TYPE_COUNT + 1);
        points[i].order = byte_at(data, size, cursor + 1) % (BESSAI_ORDER_COUNT + 1);
        points[i].index = byte_at(data, size, cursor + 2) % (buffer_words + 4);
        points[i].length = byte_at(data, size, cursor + 3) % 6u;
        points[i].block = byte_at(data, size, cursor + 4) % (block_count + 1);
        points[i].sf_index = (int32_t)(byte_at(data, size, cursor + 5) % (point_count + 2)) - 1;
        points[i].flags = byte_at(data, size, cursor + 6) & 1u;
        points[i].sentinel_first = byte_at(data, size, cursor + 7) % 3u;
        points[i].sentinel_count = byte_at(data, size, cursor + 8) % 3u;
        points[i].scale = SCALES[selector & 7u];
        points[i].offset = OFFSETS[(selector >> 4) & 3u];
    }
    for (i = 0; i < block_count; i++, cursor++) {
        status[i] = byte_at(data, size, cursor) & 1u ? byte_at(data, size, cursor) : 0;
    }
    for (i = 0; i < buffer_words; i++, cursor += 2) {
        words[i] = (uint16_t)((byte_at(data, size, cursor) << 8) | byte_at(data, size, cursor + 1));
    }
    table.points = points;
    table.point_count = point_count;
    table.sentinels = sentinels;
    table.sentinel_count = 2;
    table.buffer_words = buffer_words;
    table.block_count = block_count;
    if (bessai_decode_table_check(&table, &bad_point) == BESSAI_OK) {
        run_table(&table, points, status, words);
    } else {
        require(bad_point < point_count);
    }
    free(points);
    free(status);
    free(words);
    free(sentinels);
    return 0;
}
