/*
 * Fuzz target for the RFC 8785 canonicalizer and the signatures built on
 * it (agent/msg/sign.c). Besides memory safety it checks:
 *   - canonicalizing is idempotent: the canonical form of a canonical form
 *     is itself;
 *   - an object that can be signed verifies under the same key (never
 *     "bad_signature" or "unsigned");
 *   - an 8-byte input read as a double is written as text that reads back
 *     as the same double.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/msg/canon.h"
#include "agent/msg/sign.h"
#include "tests/support/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    char *c1 = NULL, *c2 = NULL;
    size_t l1 = 0, l2 = 0;

    if (size == sizeof(double)) {
        double d;
        char num[32];
        memcpy(&d, data, sizeof(d));
        int n = pos_canon_number(d, num, sizeof(num));
        if (isfinite(d) != (n > 0) || (n > 0 && strtod(num, NULL) != d && d == d)) {
            abort();
        }
    }
    if (size > 65536) {
        return 0;
    }
    if (pos_canon_json(json, size, "sig", &c1, &l1) != 0) {
        return 0;
    }
    if (pos_canon_json(c1, l1, "sig", &c2, &l2) != 0 || l1 != l2 || memcmp(c1, c2, l1) != 0) {
        abort();
    }
    free(c2);
    free(c1);

    pos_sign_keys_t keys;
    memset(&keys, 0, sizeof(keys));
    keys.count = 1;
    keys.key[0].len = POS_SIGN_KEY_MIN;
    memset(keys.key[0].bytes, 0x5a, POS_SIGN_KEY_MIN);
    char *out = malloc(size + POS_SIGN_APPEND + 1);
    if (out == NULL) {
        return 0;
    }
    int n = pos_sign_append(&keys, json, size, out, size + POS_SIGN_APPEND + 1);
    if (n > 0) {
        pos_sign_verdict_t v = pos_sign_verify(&keys, out, (size_t)n, 0, UINT64_MAX);
        if (v != POS_SIGN_OK && v != POS_SIGN_STALE) {
            abort();
        }
    }
    free(out);
    return 0;
}
