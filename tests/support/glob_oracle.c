/*
 * The agent's first Redis glob matcher, kept as the oracle the compiled one
 * (agent/sync/glob.c) is checked against: the classic two-pointer matcher,
 * which remembers only the latest '*' and is O(plen * slen) in the worst
 * case (why it was replaced: a 256-byte pattern against 20,000 keys of 500
 * bytes took 2.4 s). Same dialect and edge cases (agent/sync/glob.h); its
 * answers were checked against a real redis-server (tests/unit/test_glob.c).
 */
#include "tests/support/glob_oracle.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Redis gives up on a match path after this many nested '*' runs. */
#define GLOB_MAX_STAR_RUNS 1000

/*
 * The bracket expression opening at p[i] == '['. Returns whether byte c is
 * in it and stores the index just past it in *next. The extent does not
 * depend on c, so the caller can also use this to step over a set.
 */
static bool glob_set(const unsigned char *p, size_t plen, size_t i, unsigned char c, size_t *next)
{
    bool negate, hit = false;

    i++;
    negate = i < plen && p[i] == '^';
    if (negate) {
        i++;
    }
    for (;;) {
        if (i >= plen) {
            break; /* unterminated: the set runs to the end of the pattern */
        }
        if (p[i] == '\\' && plen - i >= 2) {
            hit = hit || p[i + 1] == c;
            i += 2;
        } else if (p[i] == ']') {
            i++;
            break;
        } else if (plen - i >= 3 && p[i + 1] == '-') {
            unsigned char lo = p[i], hi = p[i + 2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            hit = hit || (c >= lo && c <= hi);
            i += 3;
        } else {
            hit = hit || p[i] == c;
            i++;
        }
    }
    *next = i;
    return hit != negate;
}

/* One single-byte element (not '*') at p[i]: does it match c, and where does
 * the next element start. */
static bool glob_one(const unsigned char *p, size_t plen, size_t i, unsigned char c, size_t *next)
{
    switch (p[i]) {
    case '?':
        *next = i + 1;
        return true;
    case '[':
        return glob_set(p, plen, i, c, next);
    case '\\':
        if (plen - i >= 2) {
            i++; /* a trailing backslash stands for itself */
        }
        break;
    default:
        break;
    }
    *next = i + 1;
    return p[i] == c;
}

static size_t glob_skip_stars(const unsigned char *p, size_t plen, size_t i)
{
    while (i < plen && p[i] == '*') {
        i++;
    }
    return i;
}

/* True when a '*' run beyond Redis's nesting limit is followed by more
 * pattern: Redis can never match such a pattern, so neither do we. */
static bool glob_too_deep(const unsigned char *p, size_t plen)
{
    size_t i = 0, runs = 0;

    while (i < plen) {
        if (p[i] == '*') {
            i = glob_skip_stars(p, plen, i);
            if (runs >= GLOB_MAX_STAR_RUNS && i < plen) {
                return true;
            }
            runs++;
        } else {
            (void)glob_one(p, plen, i, 0, &i);
        }
    }
    return false;
}

bool pos_test_glob_oracle(const char *pattern, size_t plen, const char *str, size_t slen)
{
    const unsigned char *p = (const unsigned char *)pattern;
    const unsigned char *s = (const unsigned char *)str;
    size_t pi = 0, si = 0, next;
    size_t star_p = SIZE_MAX, star_s = 0;

    if (slen == 0) {
        return plen == 0;
    }
    if (glob_too_deep(p, plen)) {
        return false;
    }
    /*
     * Classic two-pointer matching: remember only the latest '*'. When the
     * elements after it fail, let that '*' swallow one more byte and retry.
     * Earlier stars never need revisiting (any extent they could take is
     * covered by the latest one), which bounds the work to plen * slen.
     */
    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            pi = glob_skip_stars(p, plen, pi);
            if (pi == plen) {
                return true;
            }
            star_p = pi;
            star_s = si;
            continue;
        }
        if (pi < plen && glob_one(p, plen, pi, s[si], &next)) {
            pi = next;
            si++;
            continue;
        }
        if (star_p == SIZE_MAX) {
            return false;
        }
        star_s++;
        si = star_s;
        pi = star_p;
    }
    return glob_skip_stars(p, plen, pi) == plen;
}

/* pattern repeated until n more bytes would pass 256; returns the new length. */
static size_t repeat_into(char *p, size_t len, const char *unit, size_t limit)
{
    size_t n = strlen(unit);
    while (len + n <= limit) {
        memcpy(p + len, unit, n);
        len += n;
    }
    return len;
}

void pos_test_glob_worst(pos_test_glob_case_t cases[POS_TEST_GLOB_WORST])
{
    pos_test_glob_case_t *c = cases;

    memset(cases, 0, sizeof(pos_test_glob_case_t) * POS_TEST_GLOB_WORST);
    /* The issue's: a prefix, '*', 238 'a' and a 'b'. */
    c[0].name = "issue: prefix * 238 a b";
    c[0].len = (size_t)snprintf(c[0].pattern, sizeof(c[0].pattern), "inventory:S-042:*");
    memset(c[0].pattern + c[0].len, 'a', 238);
    c[0].pattern[c[0].len + 238] = 'b';
    c[0].len += 239;
    /* "*a" 127 times then "*b": 128 '*' runs. */
    c[1].name = "128 stars: *a*a*...*b";
    c[1].len = repeat_into(c[1].pattern, 0, "*a", 254);
    c[1].len = repeat_into(c[1].pattern, c[1].len, "*b", 256);
    /* One run of 254 elements between two stars, failing only at its end. */
    c[2].name = "one 254-element run: *a..ab*";
    c[2].pattern[0] = '*';
    memset(c[2].pattern + 1, 'a', 253);
    memcpy(c[2].pattern + 254, "b*", 2);
    c[2].len = 256;
    /* Sets and '?' that every 'a' satisfies, in runs between stars. */
    c[3].name = "sets: *[a-c]?[^b]...*";
    c[3].len = repeat_into(c[3].pattern, 0, "*[a-c]?[^b]?[!a]", 256);
    /* Escaped literals and '?' between two stars, failing at the end. */
    c[4].name = "escapes and ? run: *\\a?..*";
    c[4].pattern[0] = '*';
    c[4].len = repeat_into(c[4].pattern, 1, "\\a?", 254);
    c[4].len = repeat_into(c[4].pattern, c[4].len, "b*", c[4].len + 2);
    /* No star at all: anchored both ways, the length decides at once. */
    c[5].name = "no star, 256 ?";
    c[5].len = repeat_into(c[5].pattern, 0, "?", 256);
    /* A run of '?' between stars: no byte to search for, every state alive. */
    c[6].name = "254 ? between stars";
    c[6].pattern[0] = '*';
    c[6].len = repeat_into(c[6].pattern, 1, "?", 255);
    c[6].len = repeat_into(c[6].pattern, c[6].len, "*", 256);
    /* Sets of 255 bytes, the rarest element last: little to skip. */
    c[7].name = "*[^b] x 50 then b*";
    c[7].pattern[0] = '*';
    c[7].len = repeat_into(c[7].pattern, 1, "[^b]", 201);
    c[7].len = repeat_into(c[7].pattern, c[7].len, "b*", c[7].len + 2);
    /* The worst we found: nothing to skip (the anchor 'a' is everywhere),
     * every state alive, the run failing only at its next-to-last element. */
    c[8].name = "252 ? then ba between stars";
    c[8].pattern[0] = '*';
    c[8].len = repeat_into(c[8].pattern, 1, "?", 253);
    c[8].len = repeat_into(c[8].pattern, c[8].len, "ba*", 256);
}

void pos_test_glob_key(char *key, int i)
{
    int n = snprintf(key, POS_TEST_GLOB_KEY_LEN, "inventory:S-042:%05d:", i);
    memset(key + n, 'a', POS_TEST_GLOB_KEY_LEN - (size_t)n);
    key[POS_TEST_GLOB_KEY_LEN - 1 - i % 7] = (char)('a' + i % 3);
    if (i % 2 == 0) {
        key[100 + i % 300] = 'b'; /* a mismatch somewhere in the middle */
    }
}
