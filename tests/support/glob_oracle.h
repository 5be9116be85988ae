#ifndef TESTS_SUPPORT_GLOB_ORACLE_H
#define TESTS_SUPPORT_GLOB_ORACLE_H

/*
 * The reference Redis glob matcher for tests (tests/support/glob_oracle.c):
 * slow but simple, the answer pos_glob_test() must give; and the worst
 * cases CACHE_INVALIDATE is timed with (tests/unit/test_glob.c for the
 * matcher alone, tests/loop/test_cache_writer.c through the cache).
 */

#include <stdbool.h>
#include <stddef.h>

/* True when the "slen" bytes at "str" match the "plen" bytes of "pattern". */
bool pos_test_glob_oracle(const char *pattern, size_t plen, const char *str, size_t slen);

#define POS_TEST_GLOB_WORST   9     /* patterns */
#define POS_TEST_GLOB_KEYS    20000 /* keys they are timed against */
#define POS_TEST_GLOB_KEY_LEN 500   /* bytes of each */

typedef struct pos_test_glob_case {
    const char *name;
    char pattern[260]; /* NUL-terminated */
    size_t len;        /* <= 256, the CACHE_INVALIDATE limit */
} pos_test_glob_case_t;

/* The worst patterns we could build for the compiled matcher. */
void pos_test_glob_worst(pos_test_glob_case_t cases[POS_TEST_GLOB_WORST]);

/*
 * Key i (< POS_TEST_GLOB_KEYS) of POS_TEST_GLOB_KEY_LEN bytes into key:
 * the store prefix and the index, then 'a's (what the patterns'
 * runs want), a varying byte near the end and, for every other key, a
 * 'b' somewhere in the middle.
 */
void pos_test_glob_key(char *key, int i);

#endif /* TESTS_SUPPORT_GLOB_ORACLE_H */
