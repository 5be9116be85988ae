#ifndef TESTS_SUPPORT_GLOB_ORACLE_H
#define TESTS_SUPPORT_GLOB_ORACLE_H

/*
 * The reference Redis glob matcher for tests (tests/support/glob_oracle.c):
 * slow but simple, the answer pos_glob_test() must give.
 */

#include <stdbool.h>
#include <stddef.h>

/* True when the "slen" bytes at "str" match the "plen" bytes of "pattern". */
bool pos_test_glob_oracle(const char *pattern, size_t plen, const char *str, size_t slen);

#endif /* TESTS_SUPPORT_GLOB_ORACLE_H */
