#include "agent/link/resp_guard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Where the guard is in the stream. */
enum {
    GUARD_TYPE = 0,   /* at the type byte of the next item */
    GUARD_NUMBER,     /* in a length or integer line (':', '$', '*') */
    GUARD_TEXT,       /* in a status or error line ('+', '-') */
    GUARD_PAYLOAD,    /* skipping a bulk string's bytes */
    GUARD_PAYLOAD_CR, /* at the CR after them */
    GUARD_PAYLOAD_LF, /* at the LF after that */
};

/* Bytes of a hiredis array's element slot (a pointer). */
#define GUARD_SLOT_COST 8u

void pos_resp_guard_default_limits(pos_resp_guard_limits_t *lim)
{
    lim->bulk_bytes = POS_RESP_GUARD_BULK_BYTES;
    lim->elements = POS_RESP_GUARD_ELEMENTS;
    lim->depth = POS_RESP_GUARD_DEPTH;
    lim->line_bytes = POS_RESP_GUARD_LINE_BYTES;
    lim->reply_bytes = POS_RESP_GUARD_REPLY_BYTES;
}

uint64_t pos_resp_guard_bulk_limit(uint64_t value_bytes, uint64_t message_bytes)
{
    return (value_bytes > message_bytes ? value_bytes : message_bytes) + POS_RESP_GUARD_HEADROOM;
}

void pos_resp_guard_init(pos_resp_guard_t *g, const pos_resp_guard_limits_t *lim)
{
    pos_resp_guard_limits_t def;

    pos_resp_guard_default_limits(&def);
    memset(g, 0, sizeof(*g));
    g->lim = lim != NULL ? *lim : def;
    if (g->lim.bulk_bytes == 0) {
        g->lim.bulk_bytes = def.bulk_bytes;
    }
    if (g->lim.elements == 0) {
        g->lim.elements = def.elements;
    }
    if (g->lim.depth == 0) {
        g->lim.depth = def.depth;
    }
    if (g->lim.depth > POS_RESP_GUARD_DEPTH_MAX) {
        g->lim.depth = POS_RESP_GUARD_DEPTH_MAX;
    }
    if (g->lim.line_bytes == 0) {
        g->lim.line_bytes = def.line_bytes;
    }
    if (g->lim.reply_bytes == 0) {
        g->lim.reply_bytes = def.reply_bytes;
    }
}

void pos_resp_guard_reset(pos_resp_guard_t *g)
{
    pos_resp_guard_limits_t lim = g->lim;

    memset(g, 0, sizeof(*g));
    g->lim = lim;
}

bool pos_resp_guard_idle(const pos_resp_guard_t *g)
{
    return g->err == 0 && g->state == GUARD_TYPE && g->depth == 0;
}

/* Refuses the stream. Returns err for the caller to pass on. */
static int guard_fail(pos_resp_guard_t *g, int err, pos_resp_guard_what_t what, uint64_t seen)
{
    g->err = err;
    g->what = what;
    g->seen = seen;
    return err;
}

/* Adds to the cost of the reply being read; -EMSGSIZE past the limit. */
static int guard_charge(pos_resp_guard_t *g, uint64_t bytes)
{
    g->cost += bytes;
    if (g->cost > g->lim.reply_bytes) {
        return guard_fail(g, -EMSGSIZE, POS_RESP_GUARD_LIMIT_REPLY, g->cost);
    }
    return 0;
}

/* An item is complete: so are the arrays it completes, and perhaps the reply. */
static void guard_item_done(pos_resp_guard_t *g)
{
    g->state = GUARD_TYPE;
    while (g->depth > 0) {
        if (--g->left[g->depth - 1] > 0) {
            return;
        }
        g->depth--;
    }
    g->replies++;
    g->cost = 0;
}

static int guard_type(pos_resp_guard_t *g, char c)
{
    switch (c) {
    case '+':
    case '-':
        g->state = GUARD_TEXT;
        break;
    case '*':
        /* hiredis refuses an array 8 deep at its type byte, whatever
         * follows ("*0" and "*-1" too); so does the guard at its limit. */
        if (g->depth >= g->lim.depth) {
            return guard_fail(g, -EMSGSIZE, POS_RESP_GUARD_LIMIT_DEPTH, g->depth + 1u);
        }
        /* fall through */
    case ':':
    case '$':
        g->state = GUARD_NUMBER;
        g->neg = false;
        g->ndigits = 0;
        g->num = 0;
        break;
    default:
        /* RESP3's types (%, ~, >, _, ',', #, !, =, (, |) included: the
         * agent speaks RESP2 and hiredis 0.14 knows nothing else. */
        return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_TYPE, (uint8_t)c);
    }
    g->type = c;
    g->cr = false;
    g->line_len = 0;
    return guard_charge(g, POS_RESP_GUARD_ITEM_COST);
}

/* One byte of a number line before its CR: '-' first, then digits, in the
 * canonical form hiredis's string2ll() accepts (no '+', no leading zero,
 * no "-0"), within 64 bits. */
static int guard_digit(pos_resp_guard_t *g, char c)
{
    if (++g->line_len > POS_RESP_GUARD_HEADER_MAX) {
        return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_HEADER, g->line_len);
    }
    if (c == '-' && g->line_len == 1) {
        g->neg = true;
        return 0;
    }
    if (c < '0' || c > '9') {
        return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_NUMBER, (uint8_t)c);
    }
    if (g->ndigits > 0 && g->num == 0) {
        return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_NUMBER, (uint8_t)c); /* leading zero */
    }
    uint64_t d = (uint64_t)(c - '0');
    if (g->num > (UINT64_MAX - d) / 10u) {
        return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_NUMBER, (uint8_t)c);
    }
    g->num = g->num * 10u + d;
    g->ndigits++;
    return 0;
}

/* A number line is complete: what it declares. */
static int guard_header(pos_resp_guard_t *g)
{
    uint64_t n = g->num;

    if (g->ndigits == 0 || (g->neg && n == 0) || (!g->neg && n > (uint64_t)INT64_MAX) ||
        (g->neg && n > (uint64_t)INT64_MAX + 1u)) {
        return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_NUMBER, n);
    }
    if (g->type == ':') {
        guard_item_done(g);
        return 0;
    }
    if (g->neg) {
        /* "$-1" and "*-1" are nil; nothing else below zero is a length. */
        if (n != 1) {
            return guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_NUMBER, n);
        }
        guard_item_done(g);
        return 0;
    }
    if (g->type == '$') {
        if (n > g->lim.bulk_bytes) {
            return guard_fail(g, -EMSGSIZE, POS_RESP_GUARD_LIMIT_BULK, n);
        }
        g->bulk_left = n;
        g->state = n > 0 ? GUARD_PAYLOAD : GUARD_PAYLOAD_CR;
        return guard_charge(g, n + 1u); /* hiredis adds a NUL */
    }
    /* '*' (its depth was checked at its type byte) */
    if (n > g->lim.elements) {
        return guard_fail(g, -EMSGSIZE, POS_RESP_GUARD_LIMIT_ELEMENTS, n);
    }
    if (n == 0) {
        guard_item_done(g);
        return 0;
    }
    g->left[g->depth++] = n;
    g->state = GUARD_TYPE;
    return guard_charge(g, n * GUARD_SLOT_COST);
}

int pos_resp_guard_feed(pos_resp_guard_t *g, const char *buf, size_t len, size_t *used)
{
    size_t i = 0;
    int rc = 0;

    *used = 0;
    if (g->err != 0) {
        return g->err;
    }
    while (i < len && rc == 0) {
        char c = buf[i];

        switch (g->state) {
        case GUARD_TYPE:
            rc = guard_type(g, c);
            break;
        case GUARD_NUMBER:
            if (g->cr) {
                /* A CR inside a number line is not a number either. */
                rc = c == '\n' ? guard_header(g)
                               : guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_NUMBER, (uint8_t)c);
            } else if (c == '\r') {
                g->cr = true;
            } else {
                rc = guard_digit(g, c);
            }
            break;
        case GUARD_TEXT:
            if (g->cr && c == '\n') {
                /* hiredis copies the line: it costs its length. */
                rc = guard_charge(g, g->line_len);
                if (rc == 0) {
                    guard_item_done(g);
                }
                break;
            }
            if (g->cr) {
                /* The CR was text: the line ends at the first CRLF, as
                 * hiredis's seekNewline() decides. */
                g->line_len++;
            }
            g->cr = c == '\r'; /* counted once we know it is text */
            if (!g->cr) {
                g->line_len++;
            }
            if (g->line_len > g->lim.line_bytes) {
                rc = guard_fail(g, -EMSGSIZE, POS_RESP_GUARD_LIMIT_LINE, g->line_len);
            }
            break;
        case GUARD_PAYLOAD: {
            /* The payload is skipped whole, not looked at. */
            size_t n = len - i;
            if (n > g->bulk_left) {
                n = (size_t)g->bulk_left;
            }
            g->bulk_left -= n;
            i += n;
            if (g->bulk_left == 0) {
                g->state = GUARD_PAYLOAD_CR;
            }
            continue;
        }
        case GUARD_PAYLOAD_CR:
            if (c != '\r') {
                rc = guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_CRLF, (uint8_t)c);
            } else {
                g->state = GUARD_PAYLOAD_LF;
            }
            break;
        case GUARD_PAYLOAD_LF:
            if (c != '\n') {
                rc = guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_CRLF, (uint8_t)c);
            } else {
                guard_item_done(g);
            }
            break;
        default:
            rc = guard_fail(g, -EPROTO, POS_RESP_GUARD_BAD_TYPE, 0);
            break;
        }
        if (rc == 0) {
            i++;
        }
    }
    *used = i;
    return rc;
}

void pos_resp_guard_describe(const pos_resp_guard_t *g, char *buf, size_t len)
{
    const pos_resp_guard_limits_t *l = &g->lim;

    if (len == 0) {
        return;
    }
    switch (g->what) {
    case POS_RESP_GUARD_LIMIT_BULK:
        snprintf(buf, len,
                 "bulk string of %" PRIu64 " bytes exceeds the limit of %" PRIu64 " bytes", g->seen,
                 l->bulk_bytes);
        break;
    case POS_RESP_GUARD_LIMIT_ELEMENTS:
        snprintf(buf, len,
                 "array of %" PRIu64 " elements exceeds the limit of %" PRIu32 " elements", g->seen,
                 l->elements);
        break;
    case POS_RESP_GUARD_LIMIT_DEPTH:
        snprintf(buf, len, "arrays nested %" PRIu64 " deep exceed the limit of %" PRIu32 " levels",
                 g->seen, l->depth);
        break;
    case POS_RESP_GUARD_LIMIT_LINE:
        snprintf(buf, len,
                 "status or error line of over %" PRIu64 " bytes exceeds the limit of %" PRIu32
                 " bytes",
                 g->seen - 1u, l->line_bytes);
        break;
    case POS_RESP_GUARD_LIMIT_REPLY:
        snprintf(buf, len,
                 "reply of at least %" PRIu64 " bytes exceeds the limit of %" PRIu64
                 " bytes per reply",
                 g->seen, l->reply_bytes);
        break;
    case POS_RESP_GUARD_BAD_TYPE:
        if (g->seen > 0x20 && g->seen < 0x7f) {
            snprintf(buf, len, "type byte '%c' is not RESP2", (char)g->seen);
        } else {
            snprintf(buf, len, "type byte 0x%02" PRIx64 " is not RESP2", g->seen);
        }
        break;
    case POS_RESP_GUARD_BAD_NUMBER:
        snprintf(buf, len, "malformed length or integer after '%c'", g->type);
        break;
    case POS_RESP_GUARD_BAD_HEADER:
        snprintf(buf, len, "header line after '%c' longer than %u bytes", g->type,
                 (unsigned)POS_RESP_GUARD_HEADER_MAX);
        break;
    case POS_RESP_GUARD_BAD_CRLF:
        snprintf(buf, len, "bulk string not followed by CRLF");
        break;
    default:
        buf[0] = '\0';
        break;
    }
}
