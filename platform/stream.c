/*
 * Device byte streams: the spec parser (pure) and the transport-independent
 * core (state, write queue, deadlines, re-open backoff). The device I/O
 * lives in serial.c (fd engine, termios), usblp.c and tcpdev.c.
 */
#include "platform/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/jitter.h"
#include "platform/log.h"
#include "platform/stream_impl.h"

/* An open that lasted this long counts as stable: the next failure starts
 * the backoff from the base again. Shorter sessions keep growing it, so a
 * device that opens and drops at once cannot make us spin. */
#define STREAM_STABLE_MS 1000u

/* ------------------------------------------------------------------------ */
/* Spec strings (pure: no I/O, no allocation)                               */
/* ------------------------------------------------------------------------ */

static const uint32_t stream_bauds[] = {1200,  2400,  4800,   9600,  19200,
                                        38400, 57600, 115200, 230400};

bool pos_stream_baud_supported(uint32_t baud)
{
    for (size_t i = 0; i < sizeof(stream_bauds) / sizeof(stream_bauds[0]); i++) {
        if (stream_bauds[i] == baud) {
            return true;
        }
    }
    return false;
}

static int spec_fail(pos_stream_spec_t *out, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int spec_fail(pos_stream_spec_t *out, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    memset(out, 0, sizeof(*out));
    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Copies at most 32 bytes of s[0..n) for an error message, with anything
 * unprintable replaced, so that the message stays one readable line. */
static const char *spec_excerpt(char *buf, size_t buflen, const char *s, size_t n)
{
    size_t i, max = buflen - 4;

    for (i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (i < n) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int spec_path(const char *what, const char *p, size_t n, pos_stream_spec_t *out, char *err,
                     size_t errlen)
{
    if (n == 0) {
        return spec_fail(out, err, errlen, "%s: missing device path", what);
    }
    if (n > POS_STREAM_PATH_MAX) {
        return spec_fail(out, err, errlen, "%s: device path longer than %d bytes", what,
                         POS_STREAM_PATH_MAX);
    }
    if (p[0] != '/') {
        return spec_fail(out, err, errlen, "%s: device path must be absolute (start with '/')",
                         what);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f) {
            return spec_fail(out, err, errlen,
                             "%s: device path has a space, control or non-ASCII byte", what);
        }
    }
    for (size_t i = 0; i < n; i++) {
        /* A ".." component: "/.." at i, followed by '/' or the end. */
        if (p[i] == '/' && i + 2 < n && p[i + 1] == '.' && p[i + 2] == '.' &&
            (i + 3 == n || p[i + 3] == '/')) {
            return spec_fail(out, err, errlen, "%s: device path must not contain '..'", what);
        }
    }
    if (p[n - 1] == '/') {
        return spec_fail(out, err, errlen, "%s: device path must not end with '/'", what);
    }
    memcpy(out->path, p, n);
    out->path[n] = '\0';
    return 0;
}

/* Parses 1..max_digits decimal digits (nothing else) into *v. */
static bool spec_number(const char *s, size_t n, size_t max_digits, uint32_t *v)
{
    uint32_t x = 0;

    if (n == 0 || n > max_digits) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10u + (uint32_t)(s[i] - '0');
    }
    *v = x;
    return true;
}

static int spec_serial_options(const char *q, pos_stream_spec_t *out, char *err, size_t errlen)
{
    char ex[40];
    bool have_baud = false;

    if (*q == '\0') {
        return spec_fail(out, err, errlen, "serial: empty option list after '?'");
    }
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        size_t n = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        size_t klen, vlen;
        uint32_t baud;

        if (n == 0) {
            return spec_fail(out, err, errlen, "serial: empty option");
        }
        if (eq == NULL) {
            return spec_fail(out, err, errlen, "serial: option '%s' is not key=value",
                             spec_excerpt(ex, sizeof(ex), q, n));
        }
        klen = (size_t)(eq - q);
        vlen = n - klen - 1;
        if (klen != 4 || memcmp(q, "baud", 4) != 0) {
            return spec_fail(out, err, errlen, "serial: unknown option '%s' (only 'baud')",
                             spec_excerpt(ex, sizeof(ex), q, klen));
        }
        if (have_baud) {
            return spec_fail(out, err, errlen, "serial: option 'baud' given twice");
        }
        if (!spec_number(eq + 1, vlen, 7, &baud)) {
            return spec_fail(out, err, errlen, "serial: baud '%s' is not a number",
                             spec_excerpt(ex, sizeof(ex), eq + 1, vlen));
        }
        if (!pos_stream_baud_supported(baud)) {
            return spec_fail(out, err, errlen,
                             "serial: baud %" PRIu32 " not supported (1200, 2400, 4800, 9600, "
                             "19200, 38400, 57600, 115200, 230400)",
                             baud);
        }
        out->baud = baud;
        have_baud = true;
        if (amp == NULL) {
            break;
        }
        q = amp + 1;
        if (*q == '\0') {
            return spec_fail(out, err, errlen, "serial: empty option");
        }
    }
    return 0;
}

static bool spec_is_hostname(const char *h, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > POS_STREAM_HOST_MAX) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? h[i] : '.';
        if (c == '.') {
            /* Labels: 1..63 bytes, no '-' at either end (RFC 1123). */
            if (label == 0 || label > 63 || h[i - 1] == '-' || h[i - label] == '-') {
                return false;
            }
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

static int spec_tcp(const char *rest, pos_stream_spec_t *out, char *err, size_t errlen)
{
    char ex[40], tmp[64];
    const char *host, *port = NULL;
    size_t hlen, plen = 0;
    uint32_t v;

    if (*rest == '\0') {
        return spec_fail(out, err, errlen, "tcp: missing host");
    }
    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (close == NULL) {
            return spec_fail(out, err, errlen, "tcp: missing ']' after IPv6 address");
        }
        host = rest + 1;
        hlen = (size_t)(close - host);
        if (hlen == 0 || hlen >= sizeof(tmp)) {
            return spec_fail(out, err, errlen, "tcp: bad IPv6 address");
        }
        memcpy(tmp, host, hlen);
        tmp[hlen] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, tmp, &a6) != 1) {
            return spec_fail(out, err, errlen, "tcp: bad IPv6 address '%s'",
                             spec_excerpt(ex, sizeof(ex), host, hlen));
        }
        if (close[1] == ':') {
            port = close + 2;
            plen = strlen(port);
        } else if (close[1] != '\0') {
            return spec_fail(out, err, errlen, "tcp: expected ':port' after ']'");
        }
    } else {
        const char *colon = strchr(rest, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            return spec_fail(out, err, errlen,
                             "tcp: IPv6 addresses need brackets, e.g. tcp:[::1]:9100");
        }
        host = rest;
        hlen = colon != NULL ? (size_t)(colon - rest) : strlen(rest);
        if (colon != NULL) {
            port = colon + 1;
            plen = strlen(port);
        }
        if (hlen == 0) {
            return spec_fail(out, err, errlen, "tcp: missing host");
        }
        if (strspn(host, "0123456789.") >= hlen) {
            /* Looks numeric: it must be a dotted quad, not a name, so that
             * "10.1" or "999.1.1.1" never reach the resolver. */
            struct in_addr a4;
            if (hlen >= sizeof(tmp)) {
                return spec_fail(out, err, errlen, "tcp: bad IPv4 address");
            }
            memcpy(tmp, host, hlen);
            tmp[hlen] = '\0';
            if (inet_pton(AF_INET, tmp, &a4) != 1) {
                return spec_fail(out, err, errlen, "tcp: bad IPv4 address '%s'",
                                 spec_excerpt(ex, sizeof(ex), host, hlen));
            }
        } else if (!spec_is_hostname(host, hlen)) {
            return spec_fail(out, err, errlen, "tcp: bad host name '%s'",
                             spec_excerpt(ex, sizeof(ex), host, hlen));
        }
    }
    if (port != NULL) {
        if (plen == 0) {
            return spec_fail(out, err, errlen, "tcp: missing port after ':'");
        }
        if (!spec_number(port, plen, 5, &v) || v < 1 || v > 65535) {
            return spec_fail(out, err, errlen, "tcp: bad port '%s' (1..65535)",
                             spec_excerpt(ex, sizeof(ex), port, plen));
        }
    } else {
        v = POS_STREAM_TCP_DEFAULT_PORT;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (uint16_t)v;
    return 0;
}

int pos_stream_spec_parse_kind(pos_stream_kind_t kind, const char *rest, pos_stream_spec_t *out,
                               char *err, size_t errlen)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (rest == NULL) {
        return spec_fail(out, err, errlen, "no device spec");
    }
    switch (kind) {
    case POS_STREAM_SERIAL: {
        const char *q = strchr(rest, '?');
        size_t n = q != NULL ? (size_t)(q - rest) : strlen(rest);
        rc = spec_path("serial", rest, n, out, err, errlen);
        if (rc != 0) {
            return rc;
        }
        out->baud = POS_STREAM_DEFAULT_BAUD;
        if (q != NULL) {
            rc = spec_serial_options(q + 1, out, err, errlen);
            if (rc != 0) {
                return rc;
            }
        }
        break;
    }
    case POS_STREAM_USBLP:
        if (strchr(rest, '?') != NULL) {
            return spec_fail(out, err, errlen, "usblp: takes no options");
        }
        rc = spec_path("usblp", rest, strlen(rest), out, err, errlen);
        if (rc != 0) {
            return rc;
        }
        break;
    case POS_STREAM_TCP:
        rc = spec_tcp(rest, out, err, errlen);
        if (rc != 0) {
            return rc;
        }
        break;
    default:
        return spec_fail(out, err, errlen, "unknown transport kind %d", (int)kind);
    }
    out->kind = kind;
    return 0;
}

int pos_stream_spec_parse(const char *spec, pos_stream_spec_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *prefix;
        pos_stream_kind_t kind;
    } kinds[] = {
        {"serial:", POS_STREAM_SERIAL},
        {"usblp:", POS_STREAM_USBLP},
        {"tcp:", POS_STREAM_TCP},
    };
    const char *colon;
    char ex[40];

    if (spec == NULL || *spec == '\0') {
        return spec_fail(out, err, errlen, "empty device spec");
    }
    if (spec[0] == '/') {
        return pos_stream_spec_parse_kind(POS_STREAM_SERIAL, spec, out, err, errlen);
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(spec, kinds[i].prefix, n) == 0) {
            return pos_stream_spec_parse_kind(kinds[i].kind, spec + n, out, err, errlen);
        }
    }
    colon = strchr(spec, ':');
    if (colon == NULL) {
        return spec_fail(out, err, errlen,
                         "device spec needs serial:, usblp: or tcp:, or an absolute path");
    }
    return spec_fail(out, err, errlen, "unknown transport '%s' (serial, usblp, tcp)",
                     spec_excerpt(ex, sizeof(ex), spec, (size_t)(colon - spec)));
}

int pos_stream_spec_format(const pos_stream_spec_t *spec, char *buf, size_t len)
{
    switch (spec->kind) {
    case POS_STREAM_SERIAL:
        return snprintf(buf, len, "serial:%s?baud=%" PRIu32, spec->path, spec->baud);
    case POS_STREAM_USBLP:
        return snprintf(buf, len, "usblp:%s", spec->path);
    case POS_STREAM_TCP:
        if (strchr(spec->host, ':') != NULL) {
            return snprintf(buf, len, "tcp:[%s]:%u", spec->host, (unsigned)spec->port);
        }
        return snprintf(buf, len, "tcp:%s:%u", spec->host, (unsigned)spec->port);
    default:
        return -EINVAL;
    }
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Core                                                                      */
/* ------------------------------------------------------------------------ */

static const pos_stream_backend_t *stream_backend(const pos_stream_t *s)
{
    return s->spec.kind == POS_STREAM_TCP ? &pos_stream_tcp_backend : &pos_stream_fd_backend;
}

static const char *stream_name(const pos_stream_t *s)
{
    return s->spec.kind == POS_STREAM_TCP ? s->spec.host : s->spec.path;
}

static void stream_maybe_finish(pos_stream_t *s)
{
    if (s->state != POS_STREAM_ST_FINAL || s->finished || s->timer_open || s->wtimer_open ||
        s->io_open || s->gai_pending) {
        return;
    }
    s->finished = true;
    if (s->final_cb != NULL) {
        s->final_cb(s); /* may free s */
    }
}

static void stream_timer_closed(uv_handle_t *h)
{
    pos_stream_t *s = h->data;
    s->timer_open = false;
    stream_maybe_finish(s);
}

static void stream_wtimer_closed(uv_handle_t *h)
{
    pos_stream_t *s = h->data;
    s->wtimer_open = false;
    stream_maybe_finish(s);
}

static void stream_wtimer_cb(uv_timer_t *t);
static void stream_timer_cb(uv_timer_t *t);

/* Arms the write timer for the earliest deadline in the queue. */
static void stream_arm_wtimer(pos_stream_t *s)
{
    uint64_t now = uv_now(s->loop), first = UINT64_MAX;

    for (const pos_stream_wreq_t *w = s->wq_head; w != NULL; w = w->next) {
        if (w->deadline_ms < first) {
            first = w->deadline_ms;
        }
    }
    s->wq_deadline = first;
    if (first == UINT64_MAX) {
        uv_timer_stop(&s->wtimer);
        return;
    }
    uv_timer_start(&s->wtimer, stream_wtimer_cb, first > now ? first - now : 0, 0);
}

/* Fails every queued write with "err", each exactly once. The list is
 * detached first: a callback may write (refused) or close (finds it empty). */
static void stream_fail_all(pos_stream_t *s, int err)
{
    pos_stream_wreq_t *w = s->wq_head;

    s->wq_head = s->wq_tail = NULL;
    s->queued = 0;
    s->wq_deadline = UINT64_MAX;
    if (s->wtimer_open) {
        uv_timer_stop(&s->wtimer);
    }
    while (w != NULL) {
        pos_stream_wreq_t *next = w->next;
        void *ctx = w->ctx;
        if (w->in_flight) {
            w->orphan = true; /* libuv still holds it; tcpdev.c frees it */
        } else {
            free(w);
        }
        if (s->cb.on_write_done != NULL) {
            s->cb.on_write_done(s, ctx, err);
        }
        w = next;
    }
}

/* Closes the device handles, if any; returns true if a close is under way
 * (pos_stream_io_closed() follows), false if nothing was open. */
static bool stream_teardown(pos_stream_t *s)
{
    if (!s->io_open && !s->gai_pending) {
        return false;
    }
    stream_backend(s)->teardown(s);
    return true;
}

/* The device is closed and the stream not final: schedule the next attempt. */
static void stream_schedule_retry(pos_stream_t *s)
{
    uint64_t now = uv_now(s->loop);
    int err = s->pending_err;
    bool was_open = s->was_open;
    uint32_t delay;

    if (was_open && now - s->opened_at_ms >= STREAM_STABLE_MS) {
        pos_backoff_reset(&s->backoff);
    }
    delay = pos_backoff_next(&s->backoff, pos_jitter_next(&s->rng));
    s->state = POS_STREAM_ST_WAIT;
    s->was_open = false;
    s->pending_err = 0;
    uv_timer_start(&s->timer, stream_timer_cb, delay, 0);
    if (was_open) {
        return; /* on_down has told the owner already */
    }
    /* Every attempt of a long outage at debug, a sample at info. */
    pos_log(s->backoff.attempts <= 5 || s->backoff.attempts % 20 == 0 ? POS_LOG_INFO
                                                                      : POS_LOG_DEBUG,
            "stream", "%s: cannot open: %s; retry in %" PRIu32 " ms (attempt %" PRIu32 ")",
            stream_name(s), strerror(-err), delay, s->backoff.attempts);
    if (s->cb.on_open_failed != NULL) {
        s->cb.on_open_failed(s, err, delay);
    }
}

void pos_stream_io_closed(pos_stream_t *s)
{
    if (s->state == POS_STREAM_ST_FINAL) {
        stream_maybe_finish(s);
        return;
    }
    if (s->state == POS_STREAM_ST_CLOSING) {
        stream_schedule_retry(s);
    }
}

void pos_stream_io_opened(pos_stream_t *s)
{
    if (s->state != POS_STREAM_ST_OPENING) {
        return;
    }
    s->state = POS_STREAM_ST_OPEN;
    uv_timer_stop(&s->timer);
    s->opened_at_ms = uv_now(s->loop);
    POS_INFO("stream", "%s: open", stream_name(s));
    if (s->cb.on_open != NULL) {
        s->cb.on_open(s);
    }
}

void pos_stream_io_failed(pos_stream_t *s, int err)
{
    if (err >= 0) {
        err = -EIO;
    }
    if (s->state == POS_STREAM_ST_OPENING) {
        s->state = POS_STREAM_ST_CLOSING;
        s->pending_err = err;
        s->was_open = false;
        uv_timer_stop(&s->timer);
        if (!stream_teardown(s)) {
            stream_schedule_retry(s);
        }
        return;
    }
    if (s->state != POS_STREAM_ST_OPEN) {
        return; /* already going down, or final */
    }
    POS_WARN("stream", "%s: down: %s", stream_name(s), strerror(-err));
    s->state = POS_STREAM_ST_CLOSING;
    s->pending_err = err;
    s->was_open = true;
    /* The device is let go of first, so that nothing a callback does can
     * touch it; the retry is scheduled from the close callback. */
    if (!stream_teardown(s)) {
        stream_schedule_retry(s);
    }
    stream_fail_all(s, err);
    if (s->state != POS_STREAM_ST_FINAL && s->cb.on_down != NULL) {
        s->cb.on_down(s, err);
    }
}

void pos_stream_io_data(pos_stream_t *s, const uint8_t *buf, size_t len)
{
    if (s->state == POS_STREAM_ST_OPEN && s->cb.on_data != NULL) {
        s->cb.on_data(s, buf, len);
    }
    /* The read buffer may have held card data (a pinpad reply): wipe it
     * once the owner has seen it, with stores the compiler cannot drop. */
    if (buf >= s->rbuf && buf + len <= s->rbuf + sizeof(s->rbuf)) {
        volatile uint8_t *p = s->rbuf + (buf - s->rbuf);
        while (len-- > 0) {
            *p++ = 0;
        }
    }
}

void pos_stream_io_write_done(pos_stream_t *s, bool keep)
{
    pos_stream_wreq_t *w = s->wq_head;
    void *ctx;

    if (w == NULL) {
        return;
    }
    s->wq_head = w->next;
    if (s->wq_head == NULL) {
        s->wq_tail = NULL;
        s->wq_deadline = UINT64_MAX;
        uv_timer_stop(&s->wtimer);
    }
    /* Later deadlines stay armed lazily: the timer rescans when it fires. */
    s->queued -= w->len;
    ctx = w->ctx;
    if (!keep) {
        free(w);
    }
    if (s->cb.on_write_done != NULL) {
        s->cb.on_write_done(s, ctx, 0);
    }
}

static void stream_timer_cb(uv_timer_t *t)
{
    pos_stream_t *s = t->data;
    int rc;

    if (s->state == POS_STREAM_ST_OPENING) {
        POS_WARN("stream", "%s: connect timed out after %" PRIu32 " ms", stream_name(s),
                 s->connect_timeout_ms);
        pos_stream_io_failed(s, -ETIMEDOUT);
        return;
    }
    if (s->state != POS_STREAM_ST_WAIT) {
        return;
    }
    s->state = POS_STREAM_ST_OPENING;
    s->was_open = false;
    rc = stream_backend(s)->attempt(s);
    if (rc < 0) {
        pos_stream_io_failed(s, rc); /* nothing open: schedules the retry */
        return;
    }
    if (s->state == POS_STREAM_ST_OPENING) {
        /* Still in the background (TCP): bound the lookup and connect. */
        uv_timer_start(&s->timer, stream_timer_cb, s->connect_timeout_ms, 0);
    }
}

static void stream_wtimer_cb(uv_timer_t *t)
{
    pos_stream_t *s = t->data;
    uint64_t now = uv_now(s->loop);

    if (s->deferred_err != 0) {
        int err = s->deferred_err;
        s->deferred_err = 0;
        pos_stream_io_failed(s, err);
        return;
    }
    if (s->state != POS_STREAM_ST_OPEN) {
        return;
    }
    for (const pos_stream_wreq_t *w = s->wq_head; w != NULL; w = w->next) {
        if (w->deadline_ms <= now) {
            POS_WARN("stream", "%s: write of %zu bytes not done in time (%zu written)",
                     stream_name(s), w->len, w->off);
            pos_stream_io_failed(s, -ETIMEDOUT);
            return;
        }
    }
    stream_arm_wtimer(s);
}

int pos_stream_init(uv_loop_t *loop, pos_stream_t *s, const pos_stream_spec_t *spec,
                    const pos_stream_callbacks_t *cb, uint32_t reopen_base_ms,
                    uint32_t reopen_cap_ms)
{
    int rc;

    if (loop == NULL || s == NULL || spec == NULL || reopen_cap_ms == 0) {
        return -EINVAL;
    }
    if (spec->kind != POS_STREAM_SERIAL && spec->kind != POS_STREAM_USBLP &&
        spec->kind != POS_STREAM_TCP) {
        return -EINVAL;
    }
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->spec = *spec;
    if (cb != NULL) {
        s->cb = *cb;
    }
    s->fd = -1;
    s->queue_max = POS_STREAM_DEFAULT_QUEUE_MAX;
    s->connect_timeout_ms = POS_STREAM_DEFAULT_CONNECT_TIMEOUT_MS;
    s->wq_deadline = UINT64_MAX;
    pos_backoff_init(&s->backoff, reopen_base_ms, reopen_cap_ms);
    /* Seeded from the clock and the address, not getrandom(): that may
     * block early at boot, and the jitter only has to differ per device. */
    s->rng = (uint32_t)uv_hrtime() ^ (uint32_t)(uintptr_t)s;
    if (s->rng == 0) {
        s->rng = 0x9e3779b9u;
    }

    rc = uv_timer_init(loop, &s->timer);
    if (rc != 0) {
        goto fail_timer;
    }
    s->timer.data = s;
    s->timer_open = true;
    rc = uv_timer_init(loop, &s->wtimer);
    if (rc != 0) {
        goto fail_wtimer;
    }
    s->wtimer.data = s;
    s->wtimer_open = true;
    s->state = POS_STREAM_ST_IDLE;
    return 0;

fail_wtimer:
    /* uv_timer_init cannot fail in current libuv; if it ever does, the first
     * timer is closed without a callback into memory the caller may free. */
    uv_close((uv_handle_t *)&s->timer, NULL);
    s->timer_open = false;
fail_timer:
    return pos_uv_errno(rc);
}

int pos_stream_set_queue_limit(pos_stream_t *s, size_t bytes)
{
    if (bytes == 0 || bytes > POS_STREAM_QUEUE_MAX_LIMIT) {
        return -EINVAL;
    }
    s->queue_max = bytes;
    return 0;
}

int pos_stream_set_connect_timeout(pos_stream_t *s, uint32_t timeout_ms)
{
    if (timeout_ms == 0) {
        return -EINVAL;
    }
    s->connect_timeout_ms = timeout_ms;
    return 0;
}

int pos_stream_start(pos_stream_t *s)
{
    if (s->state != POS_STREAM_ST_IDLE) {
        return -EBUSY;
    }
    /* The first attempt runs from the loop, so on_open never fires inside
     * this call. */
    s->state = POS_STREAM_ST_WAIT;
    uv_timer_start(&s->timer, stream_timer_cb, 0, 0);
    return 0;
}

int pos_stream_write(pos_stream_t *s, const uint8_t *buf, size_t len, uint32_t timeout_ms,
                     void *ctx)
{
    pos_stream_wreq_t *w;
    int rc;

    if (buf == NULL || len == 0 || timeout_ms == 0) {
        return -EINVAL;
    }
    if (s->state != POS_STREAM_ST_OPEN || s->deferred_err != 0) {
        return -ENOTCONN;
    }
    if (len > s->queue_max || s->queued > s->queue_max - len) {
        return -ENOBUFS;
    }
    w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        return -ENOMEM;
    }
    memset(w, 0, sizeof(*w));
    memcpy(w->bytes, buf, len);
    w->s = s;
    w->ctx = ctx;
    w->len = len;
    w->deadline_ms = uv_now(s->loop) + timeout_ms;

    if (s->wq_tail != NULL) {
        s->wq_tail->next = w;
    } else {
        s->wq_head = w;
    }
    s->wq_tail = w;
    s->queued += len;

    rc = stream_backend(s)->kick(s, w);
    if (rc != 0) {
        /* Not accepted: unlink it again. The device is unusable; it is taken
         * down from the loop, not inside the caller's call. */
        pos_stream_wreq_t **pp = &s->wq_head;
        while (*pp != w) {
            pp = &(*pp)->next;
        }
        *pp = NULL;
        s->wq_tail = NULL;
        for (pos_stream_wreq_t *p = s->wq_head; p != NULL; p = p->next) {
            s->wq_tail = p;
        }
        s->queued -= len;
        free(w);
        s->deferred_err = rc;
        uv_timer_start(&s->wtimer, stream_wtimer_cb, 0, 0);
        return rc;
    }
    if (w->deadline_ms < s->wq_deadline) {
        s->wq_deadline = w->deadline_ms;
        uv_timer_start(&s->wtimer, stream_wtimer_cb, timeout_ms, 0);
    }
    return 0;
}

bool pos_stream_is_open(const pos_stream_t *s)
{
    return s->state == POS_STREAM_ST_OPEN;
}

size_t pos_stream_queued(const pos_stream_t *s)
{
    return s->queued;
}

void pos_stream_close(pos_stream_t *s, void (*done)(pos_stream_t *s))
{
    if (s->state == POS_STREAM_ST_FINAL) {
        return;
    }
    s->final_cb = done;
    s->state = POS_STREAM_ST_FINAL;
    if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->timer)) {
        uv_close((uv_handle_t *)&s->timer, stream_timer_closed);
    }
    if (s->wtimer_open && !uv_is_closing((uv_handle_t *)&s->wtimer)) {
        uv_close((uv_handle_t *)&s->wtimer, stream_wtimer_closed);
    }
    stream_teardown(s);
    stream_fail_all(s, -ECANCELED);
    stream_maybe_finish(s);
}
