#include "agent/api/resp_parse.h"
#include "platform/hex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    RS_START,   /* at the first byte of a command */
    RS_ARGHEAD, /* multibulk: expecting "$<len>\r\n" */
    RS_ARGDATA, /* multibulk: expecting <len> bytes and "\r\n" */
    RS_INLINE,  /* inline: looking for the end of the line */
};

/* "*<count>\r\n" and "$<len>\r\n": longer number lines are garbage. */
#define RESP_MAX_NUMBER_LINE 32
/* The buffer starts at this size and is released again when idle above it. */
#define RESP_MIN_BUF 4096u

void pos_resp_default_limits(pos_resp_limits_t *lim)
{
    lim->max_args = POS_RESP_MAX_ARGS;
    lim->max_bulk = POS_RESP_MAX_BULK;
    lim->max_inline = POS_RESP_MAX_INLINE;
    lim->max_pending = POS_RESP_MAX_PENDING;
}

void pos_resp_init(pos_resp_parser_t *p, const pos_resp_limits_t *lim)
{
    pos_resp_limits_t def;

    memset(p, 0, sizeof(*p));
    pos_resp_default_limits(&def);
    p->lim = def;
    if (lim != NULL) {
        p->lim.max_args = lim->max_args != 0 ? lim->max_args : def.max_args;
        p->lim.max_bulk = lim->max_bulk != 0 ? lim->max_bulk : def.max_bulk;
        p->lim.max_inline = lim->max_inline != 0 ? lim->max_inline : def.max_inline;
        p->lim.max_pending = lim->max_pending != 0 ? lim->max_pending : def.max_pending;
    }
    p->state = RS_START;
}

void pos_resp_free(pos_resp_parser_t *p)
{
    free(p->buf);
    free(p->off);
    free(p->lens);
    free(p->argv);
    p->buf = NULL;
    p->off = NULL;
    p->lens = NULL;
    p->argv = NULL;
    p->cap = p->len = p->pos = p->scan = 0;
    p->argcap = p->argc = 0;
}

static int resp_fail(pos_resp_parser_t *p, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int resp_fail(pos_resp_parser_t *p, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    p->err = err;
    return err;
}

const char *pos_resp_error(const pos_resp_parser_t *p)
{
    return p->err != 0 ? p->errmsg : "";
}

size_t pos_resp_room(const pos_resp_parser_t *p)
{
    size_t held = p->len - p->pos;

    if (p->err != 0 || held >= p->lim.max_pending) {
        return 0;
    }
    return p->lim.max_pending - held;
}

size_t pos_resp_memory(const pos_resp_parser_t *p)
{
    return p->cap + (size_t)p->argcap * (sizeof(*p->off) + sizeof(*p->lens) + sizeof(*p->argv));
}

/* Drops the bytes of commands already handed out. */
static void resp_compact(pos_resp_parser_t *p)
{
    if (p->pos == 0) {
        return;
    }
    if (p->pos < p->len) {
        memmove(p->buf, p->buf + p->pos, p->len - p->pos);
    }
    p->len -= p->pos;
    p->scan -= p->pos;
    for (int i = 0; i < p->argc; i++) {
        p->off[i] -= p->pos;
    }
    p->pos = 0;
    if (p->len == 0 && p->cap > RESP_MIN_BUF) {
        /* An idle client keeps no large buffer. */
        free(p->buf);
        p->buf = NULL;
        p->cap = 0;
    }
}

int pos_resp_feed(pos_resp_parser_t *p, const char *data, size_t len)
{
    if (p->err != 0) {
        return p->err;
    }
    if (len == 0) {
        return 0;
    }
    resp_compact(p);
    if (len > p->lim.max_pending || p->len > p->lim.max_pending - len) {
        return resp_fail(p, -EMSGSIZE, "Protocol error: request too large");
    }
    if (p->len + len > p->cap) {
        size_t ncap = p->cap != 0 ? p->cap : RESP_MIN_BUF;
        char *nbuf;
        while (ncap < p->len + len) {
            ncap *= 2;
        }
        if (ncap > p->lim.max_pending) {
            ncap = p->lim.max_pending; /* >= p->len + len, checked above */
        }
        nbuf = realloc(p->buf, ncap);
        if (nbuf == NULL) {
            return resp_fail(p, -ENOMEM, "out of memory");
        }
        p->buf = nbuf;
        p->cap = ncap;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    return 0;
}

static int resp_reserve_args(pos_resp_parser_t *p, long long n)
{
    size_t *noff, *nlens;
    const char **nargv;
    int ncap;

    if (n <= p->argcap) {
        return 0;
    }
    ncap = p->argcap != 0 ? p->argcap : 8;
    while (ncap < n) {
        ncap *= 2;
    }
    noff = realloc(p->off, (size_t)ncap * sizeof(*noff));
    if (noff == NULL) {
        return resp_fail(p, -ENOMEM, "out of memory");
    }
    p->off = noff;
    nlens = realloc(p->lens, (size_t)ncap * sizeof(*nlens));
    if (nlens == NULL) {
        return resp_fail(p, -ENOMEM, "out of memory");
    }
    p->lens = nlens;
    nargv = realloc(p->argv, (size_t)ncap * sizeof(*nargv));
    if (nargv == NULL) {
        return resp_fail(p, -ENOMEM, "out of memory");
    }
    p->argv = nargv;
    p->argcap = ncap;
    return 0;
}

/*
 * Reads "<marker><number>\r\n" at p->scan. Returns 1 with *out set and
 * p->scan past the line, 0 when the line is incomplete, or an error.
 */
static int resp_number_line(pos_resp_parser_t *p, const char *what, long long *out)
{
    const char *s = p->buf + p->scan + 1;
    size_t avail = p->len - p->scan - 1;
    size_t n = 0;
    long long v = 0;
    bool neg = false;

    while (n < avail && s[n] != '\r') {
        if (n >= RESP_MAX_NUMBER_LINE) {
            return resp_fail(p, -EPROTO, "Protocol error: too big %s count string", what);
        }
        n++;
    }
    if (n >= RESP_MAX_NUMBER_LINE) {
        return resp_fail(p, -EPROTO, "Protocol error: too big %s count string", what);
    }
    if (n + 1 >= avail) {
        return 0; /* no '\r' yet, or no byte after it yet */
    }
    if (s[n + 1] != '\n') {
        return resp_fail(p, -EPROTO, "Protocol error: expected CRLF after %s length", what);
    }
    size_t i = 0;
    if (n > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || n - i > 18) {
        return resp_fail(p, -EPROTO, "Protocol error: invalid %s length", what);
    }
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return resp_fail(p, -EPROTO, "Protocol error: invalid %s length", what);
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    p->scan += 1 + n + 2;
    return 1;
}

static char resp_printable(char c)
{
    return (c >= 0x21 && c <= 0x7e) ? c : '?';
}

static bool resp_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Decodes the escape at s (avail bytes) inside a quoted argument: \xHH,
 * \n, \r, \t, \b, \a or \<any> between double quotes, \' between
 * single ones. Returns the bytes it consumed, with the decoded byte in
 * *out, or 0 when s holds no escape (then *out is untouched).
 */
static size_t resp_unescape(const char *s, size_t avail, int quote, char *out)
{
    if (avail < 2 || s[0] != '\\') {
        return 0;
    }
    if (quote == '\'') {
        if (s[1] != '\'') {
            return 0;
        }
        *out = '\'';
        return 2;
    }
    if (s[1] == 'x' && avail > 3 && pos_hex_byte(s[2], s[3]) >= 0) {
        *out = (char)pos_hex_byte(s[2], s[3]);
        return 4;
    }
    char c = s[1];
    *out = c == 'n'   ? '\n'
           : c == 'r' ? '\r'
           : c == 't' ? '\t'
           : c == 'b' ? '\b'
           : c == 'a' ? '\a'
                      : c;
    return 2;
}

/*
 * Splits the inline line buf[start, end) into arguments, decoding quotes and
 * escapes in place (the decoded form is never longer than the raw one) and
 * NUL-terminating each. Returns 0 with p->argc set, or an error.
 */
static int resp_split_inline(pos_resp_parser_t *p, size_t start, size_t end)
{
    char *b = p->buf;
    size_t r = start;

    p->argc = 0;
    for (;;) {
        size_t w, arg;
        int quote = 0; /* 0, '"' or '\'' */
        bool done = false;

        while (r < end && resp_space(b[r])) {
            r++;
        }
        if (r >= end) {
            return 0;
        }
        if ((unsigned)p->argc >= p->lim.max_args) {
            return resp_fail(p, -EMSGSIZE, "Protocol error: too many arguments");
        }
        arg = w = r;
        while (!done) {
            if (r >= end) {
                if (quote != 0) {
                    return resp_fail(p, -EPROTO, "Protocol error: unbalanced quotes in request");
                }
                done = true;
            } else if (quote != 0) {
                size_t used = resp_unescape(b + r, end - r, quote, &b[w]);
                if (used > 0) {
                    w++;
                    r += used;
                } else if (b[r] == quote) {
                    r++;
                    quote = 0;
                    /* A closing quote must end the argument. */
                    if (r < end && !resp_space(b[r])) {
                        return resp_fail(p, -EPROTO,
                                         "Protocol error: unbalanced quotes in request");
                    }
                    done = true;
                } else {
                    b[w++] = b[r++];
                }
            } else if (resp_space(b[r])) {
                done = true;
            } else if (b[r] == '"' || b[r] == '\'') {
                quote = b[r++];
            } else {
                b[w++] = b[r++];
            }
        }
        if (r < end) {
            r++; /* step over the separator before the NUL may land on it */
        }
        if (resp_reserve_args(p, p->argc + 1) != 0) {
            return p->err;
        }
        p->off[p->argc] = arg;
        p->lens[p->argc] = w - arg;
        b[w] = '\0'; /* w < the line's end: a separator, CR or LF was there */
        p->argc++;
    }
}

/* Hands out the command that ends at p->scan. */
static int resp_emit(pos_resp_parser_t *p, pos_resp_cmd_t *cmd)
{
    for (int i = 0; i < p->argc; i++) {
        p->argv[i] = p->buf + p->off[i];
    }
    cmd->argc = p->argc;
    cmd->argv = p->argv;
    cmd->lens = p->lens;
    p->pos = p->scan;
    p->argc = 0;
    p->state = RS_START;
    return 1;
}

static int resp_inline(pos_resp_parser_t *p, pos_resp_cmd_t *cmd)
{
    const char *nl = memchr(p->buf + p->scan, '\n', p->len - p->scan);
    size_t end;
    int rc;

    if (nl == NULL) {
        p->scan = p->len; /* do not search these bytes again */
        /* + 1: the line's CR may be here before its LF. */
        if (p->len - p->pos > p->lim.max_inline + 1u) {
            return resp_fail(p, -EMSGSIZE, "Protocol error: too big inline request");
        }
        return 0;
    }
    end = (size_t)(nl - p->buf);
    if (end > p->pos && p->buf[end - 1] == '\r') {
        end--; /* CRLF or LF alike; the CR is not part of the line */
    }
    if (end - p->pos > p->lim.max_inline) {
        return resp_fail(p, -EMSGSIZE, "Protocol error: too big inline request");
    }
    rc = resp_split_inline(p, p->pos, end);
    if (rc != 0) {
        return rc;
    }
    p->scan = (size_t)(nl - p->buf) + 1;
    if (p->argc == 0) {
        p->pos = p->scan; /* a blank line */
        p->state = RS_START;
        return 0;
    }
    return resp_emit(p, cmd);
}

static int resp_next(pos_resp_parser_t *p, pos_resp_cmd_t *cmd)
{
    int rc;

    if (p->err != 0) {
        return p->err;
    }
    for (;;) {
        if (p->scan >= p->len && p->state != RS_ARGDATA) {
            return 0;
        }
        switch (p->state) {
        case RS_START:
            if (p->buf[p->scan] != '*') {
                p->state = RS_INLINE;
                break;
            }
            rc = resp_number_line(p, "multibulk", &p->want);
            if (rc <= 0) {
                return rc;
            }
            if (p->want > (long long)p->lim.max_args) {
                return resp_fail(p, -EMSGSIZE, "Protocol error: invalid multibulk length");
            }
            if (p->want <= 0) {
                p->pos = p->scan; /* "*0" and "*-1": nothing to do */
                break;
            }
            if (resp_reserve_args(p, p->want) != 0) {
                return p->err;
            }
            p->argc = 0;
            p->state = RS_ARGHEAD;
            break;
        case RS_ARGHEAD:
            if (p->buf[p->scan] != '$') {
                return resp_fail(p, -EPROTO, "Protocol error: expected '$', got '%c'",
                                 resp_printable(p->buf[p->scan]));
            }
            rc = resp_number_line(p, "bulk", &p->bulklen);
            if (rc <= 0) {
                return rc;
            }
            if (p->bulklen < 0 || p->bulklen > (long long)p->lim.max_bulk) {
                return resp_fail(p, -EMSGSIZE, "Protocol error: invalid bulk length");
            }
            /* Refuse now a command that cannot fit, not after its bytes. */
            if (p->scan - p->pos + (size_t)p->bulklen + 2 > p->lim.max_pending) {
                return resp_fail(p, -EMSGSIZE, "Protocol error: request too large");
            }
            p->state = RS_ARGDATA;
            break;
        case RS_ARGDATA:
            if (p->len - p->scan < (size_t)p->bulklen + 2) {
                return 0;
            }
            if (p->buf[p->scan + p->bulklen] != '\r' || p->buf[p->scan + p->bulklen + 1] != '\n') {
                return resp_fail(p, -EPROTO, "Protocol error: bad bulk string terminator");
            }
            p->buf[p->scan + p->bulklen] = '\0';
            p->off[p->argc] = p->scan;
            p->lens[p->argc] = (size_t)p->bulklen;
            p->argc++;
            p->scan += (size_t)p->bulklen + 2;
            if (p->argc == p->want) {
                return resp_emit(p, cmd);
            }
            p->state = RS_ARGHEAD;
            break;
        case RS_INLINE:
        default:
            rc = resp_inline(p, cmd);
            if (rc != 0 || p->err != 0) {
                return rc;
            }
            if (p->state == RS_INLINE) {
                return 0; /* waiting for the end of the line */
            }
            break;
        }
    }
}

int pos_resp_next(pos_resp_parser_t *p, pos_resp_cmd_t *cmd)
{
    int rc = resp_next(p, cmd);

    if (rc == 0 && p->pos == p->len) {
        resp_compact(p); /* everything handed out: release a large buffer */
    }
    return rc;
}
