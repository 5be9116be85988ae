#ifndef TESTS_SUPPORT_TIMING_H
#define TESTS_SUPPORT_TIMING_H

/*
 * Timing what a test or benchmark measures: a monotonic clock in
 * nanoseconds, and the percentiles of a set of samples.
 *
 *     uint64_t t0 = pos_test_now_ns();
 *     ...one call...
 *     us[i] = (pos_test_now_ns() - t0) / 1000;
 *     pos_test_pct_t p = pos_test_percentiles(us, n);
 */

#include <stddef.h>
#include <stdint.h>

/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
uint64_t pos_test_now_ns(void);

/* Percentiles of samples, in the samples' own unit. */
typedef struct pos_test_pct {
    uint64_t p50, p90, p99, max;
    double mean;
} pos_test_pct_t;

/* Sorts v[0..n) ascending and returns its p50 (v[n/2]), p90, p99
 * (v[n*99/100]), max and mean. n must be at least 1. */
pos_test_pct_t pos_test_percentiles(uint64_t *v, size_t n);

#endif /* TESTS_SUPPORT_TIMING_H */
