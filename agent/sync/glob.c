#include "agent/sync/glob.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Redis gives up on a match path after this many nested '*' runs. */
#define GLOB_MAX_STAR_RUNS 1000
/* Automaton words kept on the stack; longer patterns allocate per test. */
#define GLOB_STACK_WORDS 16

/*
 * The elements between the '*' after element h and the next '*': m of
 * them, and the most selective one (the fewest bytes), "anchor" elements
 * in: a match of the run has a byte of that element's set at offset
 * anchor - 1 from its start, so where the automaton tracks nothing but
 * the '*' the string can be searched for such a byte (memchr() when it is
 * one byte) instead of stepped through.
 */
typedef struct glob_run {
    size_t m;
    size_t anchor; /* 1..m, 0: every element takes any byte */
    int byte;      /* the anchor's only byte, or -1 */
} glob_run_t;

/*
 * Elements are numbered 1..n; automaton state j means "elements 1..j
 * matched". Bit j of table[c * words + j / 64] says byte c satisfies
 * element j (bit 0 is never set: state 0 is only ever the start). Bit j of
 * star[] says a '*' run follows element j (bit 0: the pattern starts with
 * one).
 */
struct pos_glob {
    size_t plen;  /* bytes of the pattern (only an empty one matches "") */
    size_t n;     /* elements */
    size_t words; /* 64-bit words per table row: states 0..n */
    size_t head;  /* elements before the first '*' (n when there is none) */
    size_t tail;  /* elements after the last '*' */
    bool has_star;
    bool too_deep; /* Redis's nesting limit: never matches a non-empty string */
    uint64_t *star;
    uint64_t *table;  /* 256 rows */
    glob_run_t *runs; /* indexed by '*' state (n + 1 entries; others unused) */
};

typedef struct byte_set {
    uint64_t w[4];
} byte_set_t;

static void set_add(byte_set_t *s, unsigned char c)
{
    s->w[c >> 6] |= 1ull << (c & 63);
}

static void set_add_range(byte_set_t *s, unsigned char lo, unsigned char hi)
{
    if (lo > hi) {
        unsigned char t = lo;
        lo = hi;
        hi = t;
    }
    for (unsigned c = lo; c <= hi; c++) {
        set_add(s, (unsigned char)c);
    }
}

/*
 * The bracket expression opening at p[i] == '[', as Redis reads it: its
 * bytes into *s and the index just past it into *next.
 */
static void parse_set(const unsigned char *p, size_t plen, size_t i, byte_set_t *s, size_t *next)
{
    bool negate;

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
            set_add(s, p[i + 1]);
            i += 2;
        } else if (p[i] == ']') {
            i++;
            break;
        } else if (plen - i >= 3 && p[i + 1] == '-') {
            set_add_range(s, p[i], p[i + 2]);
            i += 3;
        } else {
            set_add(s, p[i]);
            i++;
        }
    }
    if (negate) {
        for (int k = 0; k < 4; k++) {
            s->w[k] = ~s->w[k];
        }
    }
    *next = i;
}

/* One single-byte element (not '*') at p[i]: its bytes, and where the next
 * element starts. */
static void parse_one(const unsigned char *p, size_t plen, size_t i, byte_set_t *s, size_t *next)
{
    memset(s, 0, sizeof(*s));
    switch (p[i]) {
    case '?':
        memset(s, 0xff, sizeof(*s));
        *next = i + 1;
        return;
    case '[':
        parse_set(p, plen, i, s, next);
        return;
    case '\\':
        if (plen - i >= 2) {
            i++; /* a trailing backslash stands for itself */
        }
        break;
    default:
        break;
    }
    set_add(s, p[i]);
    *next = i + 1;
}

static size_t skip_stars(const unsigned char *p, size_t plen, size_t i)
{
    while (i < plen && p[i] == '*') {
        i++;
    }
    return i;
}

/* Counts the elements and '*' runs of p, and whether Redis's nesting limit
 * makes it unmatchable. */
static size_t count_elements(const unsigned char *p, size_t plen, bool *too_deep)
{
    size_t i = 0, runs = 0, n = 0;
    byte_set_t s;

    *too_deep = false;
    while (i < plen) {
        if (p[i] == '*') {
            i = skip_stars(p, plen, i);
            if (runs >= GLOB_MAX_STAR_RUNS && i < plen) {
                *too_deep = true;
            }
            runs++;
        } else {
            parse_one(p, plen, i, &s, &i);
            n++;
        }
    }
    return n;
}

static void bit_set(uint64_t *v, size_t j)
{
    v[j >> 6] |= 1ull << (j & 63);
}

static bool bit_get(const uint64_t *v, size_t j)
{
    return (v[j >> 6] >> (j & 63)) & 1u;
}

/* The bytes element j takes, and the one byte when there is only one (else -1). */
static unsigned element_bytes(const pos_glob_t *g, size_t j, int *only)
{
    unsigned count = 0;

    *only = -1;
    for (unsigned c = 0; c < 256; c++) {
        if (bit_get(g->table + c * g->words, j)) {
            count++;
            *only = (int)c;
        }
    }
    if (count != 1) {
        *only = -1;
    }
    return count;
}

/* Fills g->runs for every '*' state before the last one. */
static void plan_runs(pos_glob_t *g)
{
    const size_t target = g->n - g->tail;

    for (size_t h = g->head; h < target;) {
        glob_run_t *r = &g->runs[h];
        unsigned fewest = 256;
        size_t j = h + 1;

        for (;; j++) {
            int only;
            unsigned count = element_bytes(g, j, &only);
            if (count < 256 && count <= fewest) {
                fewest = count;
                r->anchor = j - h; /* the last of the most selective: the longest skip */
                r->byte = only;
            }
            if (bit_get(g->star, j)) {
                break;
            }
        }
        r->m = j - h;
        h = j;
    }
}

int pos_glob_compile(const char *pattern, size_t plen, pos_glob_t **out)
{
    const unsigned char *p = (const unsigned char *)pattern;
    pos_glob_t *g = calloc(1, sizeof(*g));
    byte_set_t s;
    size_t i = 0, n = 0;

    *out = NULL;
    if (g == NULL) {
        return -ENOMEM;
    }
    g->plen = plen;
    g->n = count_elements(p, plen, &g->too_deep);
    g->words = g->n / 64 + 1;
    g->star = calloc(g->words, sizeof(uint64_t));
    g->table = calloc(256 * g->words, sizeof(uint64_t));
    g->runs = calloc(g->n + 1, sizeof(*g->runs));
    if (g->star == NULL || g->table == NULL || g->runs == NULL) {
        pos_glob_free(g);
        return -ENOMEM;
    }
    g->head = SIZE_MAX;
    while (i < plen) {
        if (p[i] == '*') {
            i = skip_stars(p, plen, i);
            bit_set(g->star, n);
            if (g->head == SIZE_MAX) {
                g->head = n;
            }
            g->tail = 0;
            g->has_star = true;
            continue;
        }
        parse_one(p, plen, i, &s, &i);
        n++;
        g->tail++;
        for (unsigned c = 0; c < 256; c++) {
            if ((s.w[c >> 6] >> (c & 63)) & 1u) {
                bit_set(g->table + c * g->words, n);
            }
        }
    }
    if (!g->has_star) {
        g->head = g->n;
        g->tail = 0;
    }
    plan_runs(g);
    *out = g;
    return 0;
}

void pos_glob_free(pos_glob_t *g)
{
    if (g != NULL) {
        free(g->runs);
        free(g->star);
        free(g->table);
        free(g);
    }
}

/* Element first + k matches s[k] for k in [0, len). */
static bool anchored(const pos_glob_t *g, size_t first, const unsigned char *s, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        if (!bit_get(g->table + (size_t)s[k] * g->words, first + k)) {
            return false;
        }
    }
    return true;
}

/* As anchored(), from the last byte back: strings that share a prefix
 * (keys of one family) differ soonest at their end. */
static bool anchored_back(const pos_glob_t *g, size_t first, const unsigned char *s, size_t len)
{
    for (size_t k = len; k-- > 0;) {
        if (!bit_get(g->table + (size_t)s[k] * g->words, first + k)) {
            return false;
        }
    }
    return true;
}

static unsigned top_bit(uint64_t x)
{
    return 63u - (unsigned)__builtin_clzll(x);
}

/*
 * The first byte of the anchor's set at or after offset anchor - 1 from
 * start, where the run of the '*' state h still fits before "to", into
 * *found (stored as position + 1). Returns false when there is none: the
 * run, and so the pattern, cannot match.
 */
static bool find_anchor(const pos_glob_t *g, size_t h, const unsigned char *s, size_t start,
                        size_t to, size_t *found)
{
    const glob_run_t *r = &g->runs[h];
    size_t first = start + r->anchor - 1;

    if (to - start < r->m) {
        return false;
    }
    size_t last = to - r->m + r->anchor - 1; /* inclusive */
    if (r->byte >= 0) {
        const unsigned char *p = memchr(s + first, r->byte, last - first + 1);
        if (p == NULL) {
            return false;
        }
        *found = (size_t)(p - s) + 1;
        return true;
    }
    for (size_t k = first; k <= last; k++) {
        if (bit_get(g->table + (size_t)s[k] * g->words, h + r->anchor)) {
            *found = k + 1;
            return true;
        }
    }
    return false;
}

/*
 * The elements between the first and the last '*' run against s[from,
 * to): true when the automaton, started in state head (a '*' follows it),
 * reaches the last '*' (state n - tail). S: g->words zeroed words.
 */
static bool run_middle(const pos_glob_t *g, const unsigned char *s, size_t from, size_t to,
                       uint64_t *S)
{
    const size_t target = g->n - g->tail;
    const size_t words = g->words;
    size_t h = g->head; /* the highest '*' state reached: always active */
    size_t lo, hi;

    if (h == target) {
        return true;
    }
    if (to - from < target - h) {
        return false;
    }
    bit_set(S, h);
    lo = hi = h >> 6;
    size_t found = 0; /* where the last anchor search found a byte (0: none yet) */
    for (size_t i = from; i < to; i++) {
        if (hi == lo && S[lo] == 1ull << (h & 63)) {
            /* Only the '*' is tracked: the run's leftmost match is all that counts. */
            const glob_run_t *r = &g->runs[h];
            if (r->anchor == 0) {
                /* Every element takes any byte: the run matches right here. */
                if (to - i < r->m) {
                    return false;
                }
                S[lo] = 0;
                h += r->m;
                if (h == target) {
                    return true;
                }
                bit_set(S, h);
                lo = hi = h >> 6;
                i += r->m - 1;
                continue;
            }
            if (found < i + r->anchor) {
                if (!find_anchor(g, h, s, i, to, &found)) {
                    return false;
                }
            }
            i = found - r->anchor; /* where the run could start first */
        }
        const uint64_t *t = g->table + (size_t)s[i] * words;
        size_t top = hi + 1 < words ? hi + 1 : hi;
        uint64_t carry = 0;

        for (size_t w = lo; w <= top; w++) {
            uint64_t x = S[w];
            S[w] = (((x << 1) | carry) & t[w]) | (x & g->star[w]);
            carry = x >> 63;
        }
        while (top > lo && S[top] == 0) {
            top--;
        }
        hi = top;
        /* The highest '*' state now active (h is, at least: its self-loop). */
        size_t w = hi;
        uint64_t m;
        while ((m = S[w] & g->star[w]) == 0) {
            w--;
        }
        size_t nh = w * 64 + top_bit(m);
        if (nh != h) {
            h = nh;
            found = 0;
            if (h == target) {
                return true;
            }
            /* Whatever can follow from a state below h can follow from h. */
            for (size_t k = lo; k < (h >> 6); k++) {
                S[k] = 0;
            }
            S[h >> 6] &= ~((1ull << (h & 63)) - 1);
            lo = h >> 6;
        }
        /* Too few bytes left for even the most advanced state: give up. */
        if (target - (hi * 64 + top_bit(S[hi])) > to - i - 1) {
            return false;
        }
    }
    return false;
}

bool pos_glob_test(const pos_glob_t *g, const char *str, size_t slen)
{
    const unsigned char *s = (const unsigned char *)str;

    if (slen == 0) {
        return g->plen == 0;
    }
    if (g->too_deep || slen < g->n) {
        return false;
    }
    if (!g->has_star) {
        return slen == g->n && anchored(g, 1, s, slen);
    }
    if (!anchored(g, 1, s, g->head) ||
        !anchored_back(g, g->n - g->tail + 1, s + slen - g->tail, g->tail)) {
        return false;
    }
    uint64_t stack[GLOB_STACK_WORDS] = {0};
    uint64_t *S = stack;
    if (g->words > GLOB_STACK_WORDS) {
        S = calloc(g->words, sizeof(uint64_t));
        if (S == NULL) {
            return false;
        }
    }
    bool m = run_middle(g, s, g->head, slen - g->tail, S);
    if (S != stack) {
        free(S);
    }
    return m;
}

bool pos_glob_match(const char *pattern, size_t plen, const char *str, size_t slen)
{
    pos_glob_t *g;

    if (pos_glob_compile(pattern, plen, &g) != 0) {
        return false;
    }
    bool m = pos_glob_test(g, str, slen);
    pos_glob_free(g);
    return m;
}
