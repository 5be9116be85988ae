#include "agent/metrics/ring.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "platform/uverr.h"

int pos_ring_init(pos_ring_t *r)
{
    memset(r, 0, sizeof(*r));
    int rc = uv_mutex_init(&r->lock);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    r->lock_ok = true;
    return 0;
}

void pos_ring_close(pos_ring_t *r)
{
    if (r->lock_ok) {
        uv_mutex_destroy(&r->lock);
        r->lock_ok = false;
    }
}

static bool is_sep(char c)
{
    return c == ' ' || c == '-' || c == '.' || c == '/';
}

/* Masks [from, to) with '*'. */
static void mask(char *s, size_t from, size_t to)
{
    memset(s + from, '*', to - from);
}

/* A run starting at i of digits (with up to two separators between
 * them: "4111  1111", "4111.1111", "4111/1111"): its end and its digit
 * count. */
static size_t digit_run(const char *s, size_t i, size_t *digits)
{
    size_t end = i;

    *digits = 0;
    while (s[i] != '\0') {
        if (isdigit((unsigned char)s[i])) {
            (*digits)++;
            i++;
            end = i;
        } else if (*digits > 0 && is_sep(s[i]) && isdigit((unsigned char)s[i + 1])) {
            i++;
        } else if (*digits > 0 && is_sep(s[i]) && is_sep(s[i + 1]) &&
                   isdigit((unsigned char)s[i + 2])) {
            i += 2;
        } else {
            break;
        }
    }
    return end;
}

void pos_ring_scrub(char *s)
{
    static const char words[][9] = {"password", "pass", "secret", "key", "token"};
    size_t i = 0;

    while (s[i] != '\0') {
        /* A word that announces a secret: mask what follows up to a blank. */
        bool masked = false;
        for (size_t w = 0; w < sizeof(words) / sizeof(words[0]) && !masked; w++) {
            size_t n = strlen(words[w]);
            /* password=x, password: x, and JSON's "password":"x"; the
             * bytes after the word are read only once the word matched
             * (then they are the line's, its NUL at the latest). */
            if (strncasecmp(s + i, words[w], n) != 0) {
                continue;
            }
            size_t q = s[i + n] == '"' ? 1 : 0;
            if (s[i + n + q] == '=' || s[i + n + q] == ':') {
                size_t from = i + n + q + 1, to = from;
                while (s[to] == ' ' || s[to] == '"') {
                    from = ++to;
                }
                while (s[to] != '\0' && s[to] != ' ' && s[to] != ',' && s[to] != ')' &&
                       s[to] != '"') {
                    to++;
                }
                mask(s, from, to);
                i = to;
                masked = true;
            }
        }
        if (masked) {
            continue;
        }
        if (isxdigit((unsigned char)s[i])) {
            size_t digits, end = digit_run(s, i, &digits);
            size_t hex = i;
            while (isxdigit((unsigned char)s[hex])) {
                hex++;
            }
            if (digits >= 12) {
                mask(s, i, end);
                i = end;
                continue;
            }
            if (hex - i >= 32) {
                mask(s, i, hex);
                i = hex;
                continue;
            }
            /* One step only: a digit run may start inside a shorter hex
             * run ("x" then a card number). Lines are short. */
            i++;
            continue;
        }
        i++;
    }
}

void pos_ring_add(pos_ring_t *r, uint64_t ts_ms, char level, const char *module, const char *msg)
{
    char whole[1024], text[POS_RING_LINE_MAX];

    /* Scrubbed whole, then cut: cut first, a card number at the cut kept
     * fewer digits than the scrubber looks for. */
    snprintf(whole, sizeof(whole), "%s: %s", module, msg);
    pos_ring_scrub(whole);
    size_t cut = strnlen(whole, sizeof(text) - 1);
    memcpy(text, whole, cut);
    text[cut] = '\0';
    /* A run of digits the cut (of whole, or of text) ends may be a part
     * of one: hidden too. */
    size_t from = cut;
    while (from > 0 && (isdigit((unsigned char)text[from - 1]) || is_sep(text[from - 1]))) {
        from--;
    }
    size_t digits = 0;
    for (size_t k = from; k < cut; k++) {
        digits += isdigit((unsigned char)text[k]) != 0;
    }
    if (cut == sizeof(text) - 1 && digits >= 6) {
        mask(text, from, cut);
    }
    if (!r->lock_ok) {
        return;
    }
    uv_mutex_lock(&r->lock);
    r->line[r->next].ts_ms = ts_ms;
    r->line[r->next].level = level;
    memcpy(r->line[r->next].text, text, sizeof(text));
    r->next = (r->next + 1u) % POS_RING_LINES;
    if (r->count < POS_RING_LINES) {
        r->count++;
    }
    r->total++;
    uv_mutex_unlock(&r->lock);
}

unsigned pos_ring_each(pos_ring_t *r,
                       void (*fn)(void *ctx, uint64_t ts_ms, char level, const char *text),
                       void *ctx)
{
    unsigned n;

    if (!r->lock_ok) {
        return 0;
    }
    uv_mutex_lock(&r->lock);
    n = r->count;
    for (unsigned k = 0; k < n; k++) {
        unsigned at = (r->next + POS_RING_LINES - n + k) % POS_RING_LINES;
        fn(ctx, r->line[at].ts_ms, r->line[at].level, r->line[at].text);
    }
    uv_mutex_unlock(&r->lock);
    return n;
}
