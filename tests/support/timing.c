#include "tests/support/timing.h"

#include <assert.h>
#include <stdlib.h>
#include <time.h>

uint64_t pos_test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

pos_test_pct_t pos_test_percentiles(uint64_t *v, size_t n)
{
    pos_test_pct_t p;
    double sum = 0;

    assert(n > 0);
    qsort(v, n, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < n; i++) {
        sum += (double)v[i];
    }
    p.p50 = v[n / 2];
    p.p90 = v[n * 90 / 100];
    p.p99 = v[n * 99 / 100];
    p.max = v[n - 1];
    p.mean = sum / (double)n;
    return p;
}
