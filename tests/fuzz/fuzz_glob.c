/*
 * Fuzz target for the glob matcher (agent/sync/glob.c). Input: one length
 * byte n, then the pattern (the next n bytes, fewer if the input is
 * short), then the string. Besides memory safety it checks that the
 * compiled matcher answers as the first one (tests/support/glob_oracle.c),
 * for the string and for each of its prefixes, and two invariants: a
 * pattern without special bytes matches exactly itself, and then
 * "*" + pattern + "*" also matches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sync/glob.h"
#include "tests/support/fuzz.h"
#include "tests/support/glob_oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *pat, *str;
    size_t plen, slen;
    bool special = false, m;
    char *wrapped;

    if (size == 0) {
        return 0;
    }
    plen = data[0];
    if (plen > size - 1) {
        plen = size - 1;
    }
    pat = (const char *)data + 1;
    str = pat + plen;
    slen = size - 1 - plen;

    m = pos_glob_match(pat, plen, str, slen);
    if (m != pos_test_glob_oracle(pat, plen, str, slen)) {
        abort();
    }
    pos_glob_t *g;
    if (pos_glob_compile(pat, plen, &g) != 0) {
        return 0;
    }
    for (size_t n = 0; n <= slen; n++) {
        if (pos_glob_test(g, str, n) != pos_test_glob_oracle(pat, plen, str, n)) {
            abort();
        }
    }
    pos_glob_free(g);
    for (size_t i = 0; i < plen; i++) {
        if (strchr("*?[\\", pat[i]) != NULL && pat[i] != '\0') {
            special = true;
        }
    }
    if (!special && slen > 0 && m != (plen == slen && memcmp(pat, str, plen) == 0)) {
        abort();
    }
    if (m && !special && slen > 0) {
        wrapped = malloc(plen + 2);
        if (wrapped == NULL) {
            return 0;
        }
        wrapped[0] = '*';
        memcpy(wrapped + 1, pat, plen);
        wrapped[plen + 1] = '*';
        if (!pos_glob_match(wrapped, plen + 2, str, slen)) {
            abort();
        }
        free(wrapped);
    }
    return 0;
}
