/*
 * pos_mem_zero(): zeroes like memset, and leaves untouched pages of static
 * storage unbacked (which is why it exists: see platform/mem.h).
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "platform/mem.h"

#define BIG (8u << 20)

static unsigned char big[BIG]; /* static: zero-filled, not yet backed */

/* Resident anonymous memory of this process, KiB (/proc/self/status). */
static long rss_anon_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "RssAnon:", 8) == 0) {
            kib = strtol(line + 8, NULL, 10);
        }
    }
    fclose(f);
    return kib;
}

static void test_zeroes_like_memset(void **state)
{
    (void)state;
    unsigned char buf[3 * 4096 + 123];
    for (size_t off = 0; off < 64; off += 7) {
        memset(buf, 0xa5, sizeof(buf));
        pos_mem_zero(buf + off, sizeof(buf) - 2 * off);
        for (size_t i = 0; i < sizeof(buf); i++) {
            bool inside = i >= off && i < sizeof(buf) - off;
            assert_int_equal(buf[i], inside ? 0 : 0xa5);
        }
    }
    pos_mem_zero(buf, 0); /* nothing at all */
    assert_int_equal(buf[0], 0xa5);
}

static void test_untouched_pages_stay_unbacked(void **state)
{
    (void)state;
    long before = rss_anon_kib();
    pos_mem_zero(big, BIG);
    long after = rss_anon_kib();
    /* memset would have made all 8 MiB resident. */
    assert_true(after - before < 512);

    /* Pages with data are zeroed, the others still left alone. */
    big[5] = 1;
    big[BIG / 2 + 17] = 2;
    big[BIG - 1] = 3;
    pos_mem_zero(big, BIG);
    assert_int_equal(big[5], 0);
    assert_int_equal(big[BIG / 2 + 17], 0);
    assert_int_equal(big[BIG - 1], 0);
    assert_true(rss_anon_kib() - before < 512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroes_like_memset),
        cmocka_unit_test(test_untouched_pages_stay_unbacked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
