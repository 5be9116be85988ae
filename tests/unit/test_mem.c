/*
 * pos_mem_zero(): zeroes like memset, and leaves untouched pages of static
 * storage unbacked (which is why it exists: see platform/mem.h).
 * pos_mem_grow(): room for one more element, doubling.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <cmocka.h>

#include "platform/mem.h"

#define BIG (8u << 20)

/* Zero-filled and not yet backed, as static storage is: an anonymous
 * private mapping, which is what .bss is. (Not a static array: 8 MiB of
 * .bss would not fit the aarch64 build's tiny code model, whose image must
 * stay within 1 MiB.) */
static unsigned char *big;

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
    void *map = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    big = map;
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
    munmap(map, BIG);
}

static void test_grow_doubles_when_full(void **state)
{
    (void)state;
    int *v = NULL;
    size_t cap = 0;

    for (size_t n = 0; n < 40; n++) {
        int *nv = pos_mem_grow(v, n, &cap, sizeof(*v), 4);
        assert_non_null(nv);
        v = nv;
        v[n] = (int)n; /* the slot is there */
        assert_true(cap > n);
        /* 4, then doubled only when full: 8, 16, 32, 64. */
        assert_int_equal(cap, n < 4 ? 4 : n < 8 ? 8 : n < 16 ? 16 : n < 32 ? 32 : 64);
    }
    for (size_t n = 0; n < 40; n++) {
        assert_int_equal(v[n], (int)n); /* kept across the reallocations */
    }
    /* Room left: the same array back, cap untouched. */
    assert_ptr_equal(pos_mem_grow(v, 40, &cap, sizeof(*v), 4), v);
    assert_int_equal(cap, 64);
    /* No size that fits: NULL, and v and cap as they were. */
    size_t huge = SIZE_MAX / 2 + 1;
    assert_null(pos_mem_grow(v, 64, &cap, huge, 4));
    assert_int_equal(cap, 64);
    assert_int_equal(v[39], 39);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroes_like_memset),
        cmocka_unit_test(test_untouched_pages_stay_unbacked),
        cmocka_unit_test(test_grow_doubles_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
