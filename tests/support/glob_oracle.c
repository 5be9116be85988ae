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
