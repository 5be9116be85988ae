#include "conf/redis_url.h"
#include "conf/reason.h"
#include "platform/hex.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Error texts built here never quote any part of the URL: before the URL is
 * split we cannot tell which bytes belong to the password, so every message
 * names only the part that is wrong.
 */

#define QUOTE_HINT "percent-encode '/', '?', '#' and '@' in the user name and password"

/* A wipe the optimiser cannot drop: the stores go through a volatile pointer. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n-- > 0) {
        *v++ = 0;
    }
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/*
 * Percent-decodes src[0..n) into dst (capacity cap, NUL-terminated).
 * Returns 0, or a static reason on a bad escape, a control character after
 * decoding, or a result that does not fit (no truncation).
 */
static const char *pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= n) {
                return "bad percent escape (expected %XX)";
            }
            int v = pos_hex_byte(src[i + 1], src[i + 2]);
            if (v < 0) {
                return "bad percent escape (expected %XX)";
            }
            c = (unsigned char)v;
            i += 2;
        }
        if (is_ctl(c)) {
            return "control character";
        }
        if (o + 1 >= cap) {
            return "too long";
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return NULL;
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* Parses an all-digit decimal string of length n into [min, max]. */
static bool parse_dec(const char *s, size_t n, long min, long max, long *out)
{
    char buf[16];
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || end != buf + n || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int parse_userinfo(const char *s, size_t n, pos_redis_url_t *out, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) {
        /* A lone "secret@host" is ambiguous (user or password?); refusing it
         * keeps a password from being logged as a user name. */
        return pos_reason_fail(err, errlen,
                               "user info without ':' (write redis://:password@host or "
                               "redis://user:password@host)");
    }
    size_t ulen = (size_t)(colon - s);
    const char *why = pct_decode(s, ulen, out->user, sizeof(out->user));
    if (why != NULL) {
        return pos_reason_fail(err, errlen, "user name: %s", why);
    }
    why = pct_decode(colon + 1, n - ulen - 1, out->password, sizeof(out->password));
    if (why != NULL) {
        return pos_reason_fail(err, errlen, "password: %s", why);
    }
    return 0;
}

static int parse_hostport(const char *s, size_t n, pos_redis_url_t *out, char *err, size_t errlen)
{
    const char *host;
    size_t hlen;
    const char *rest;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL) {
            return pos_reason_fail(err, errlen, "IPv6 address without closing ']'");
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        rest = close + 1;
        if (hlen == 0) {
            return pos_reason_fail(err, errlen, "empty host");
        }
        if (hlen >= sizeof(out->host)) {
            return pos_reason_fail(err, errlen, "host too long");
        }
        memcpy(out->host, host, hlen);
        out->host[hlen] = '\0';
        unsigned char addr[16];
        if (inet_pton(AF_INET6, out->host, addr) != 1) {
            return pos_reason_fail(err, errlen, "bad IPv6 address in brackets");
        }
    } else {
        const char *colon = memchr(s, ':', n);
        host = s;
        hlen = colon != NULL ? (size_t)(colon - s) : n;
        rest = s + hlen;
        if (hlen == 0) {
            return pos_reason_fail(err, errlen, "empty host");
        }
        if (hlen >= sizeof(out->host)) {
            return pos_reason_fail(err, errlen, "host too long (max %zu characters)",
                                   sizeof(out->host) - 1);
        }
        for (size_t i = 0; i < hlen; i++) {
            if (!host_char_ok(host[i])) {
                return pos_reason_fail(
                    err, errlen,
                    "bad character in host (allowed: letters, digits, '.', '-', '_'; "
                    "IPv6 in brackets)");
            }
        }
        if (host[0] == '-' || host[0] == '.') {
            return pos_reason_fail(err, errlen, "host must start with a letter or digit");
        }
        memcpy(out->host, host, hlen);
        out->host[hlen] = '\0';
    }

    size_t rlen = n - (size_t)(rest - s);
    if (rlen == 0) {
        return 0;
    }
    if (rest[0] != ':') {
        return pos_reason_fail(err, errlen, "unexpected characters after host");
    }
    long port;
    if (rlen == 1) {
        return pos_reason_fail(err, errlen, "empty port");
    }
    if (!parse_dec(rest + 1, rlen - 1, 1, 65535, &port)) {
        return pos_reason_fail(err, errlen, "port is not a number in 1..65535");
    }
    out->port = (uint16_t)port;
    return 0;
}

static int parse(const char *url, pos_redis_url_t *out, char *err, size_t errlen)
{
    const char *p;

    for (p = url; *p != '\0'; p++) {
        if (is_ctl((unsigned char)*p)) {
            return pos_reason_fail(err, errlen, "control character in URL");
        }
        if (*p == ' ') {
            return pos_reason_fail(err, errlen, "space in URL (percent-encode it as %%20)");
        }
    }
    if (strncasecmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncasecmp(url, "rediss://", 9) == 0) {
        out->tls = true;
        p = url + 9;
    } else {
        return pos_reason_fail(err, errlen, "scheme must be redis:// or rediss://");
    }

    /* The authority ends at the first '/', '?' or '#' (RFC 3986). */
    size_t alen = strcspn(p, "/?#");
    const char *tail = p + alen;
    const char *query = strpbrk(tail, "?#");
    if (query != NULL) {
        return pos_reason_fail(err, errlen, "%s are not supported (%s)",
                               *query == '?' ? "query strings" : "fragments", QUOTE_HINT);
    }

    /* The last '@' separates the user info, so an unencoded '@' in a
     * password still parses. */
    const char *at = NULL;
    for (const char *q = p; q < tail; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    const char *hp = p;
    if (at != NULL) {
        int rc = parse_userinfo(p, (size_t)(at - p), out, err, errlen);
        if (rc != 0) {
            return rc;
        }
        hp = at + 1;
    }
    int rc = parse_hostport(hp, (size_t)(tail - hp), out, err, errlen);
    if (rc != 0) {
        return rc;
    }

    /* Path: "", "/" (no database) or "/N". */
    if (*tail == '/' && tail[1] != '\0') {
        long db;
        if (!parse_dec(tail + 1, strlen(tail + 1), 0, 1023, &db)) {
            return pos_reason_fail(err, errlen, "database is not a number in 0..1023 (%s)",
                                   QUOTE_HINT);
        }
        out->db = (int)db;
    }
    return 0;
}

int pos_redis_url_parse(const char *url, pos_redis_url_t *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (out == NULL) {
        return pos_reason_fail(err, errlen, "no output");
    }
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    out->db = -1;
    if (url == NULL) {
        return pos_reason_fail(err, errlen, "no URL");
    }
    int rc = parse(url, out, err, errlen);
    if (rc != 0) {
        /* Leave no half-parsed secret behind. */
        wipe(out, sizeof(*out));
        out->port = 6379;
        out->db = -1;
    }
    return rc;
}

/* Appends to buf like snprintf, but keeps counting past the end. */
typedef struct appender {
    char *buf;
    size_t len;
    size_t used; /* what would have been written */
} appender_t;

static void app_putc(appender_t *a, char c)
{
    if (a->used + 1 < a->len) {
        a->buf[a->used] = c;
        a->buf[a->used + 1] = '\0';
    }
    a->used++;
}

static void app_puts(appender_t *a, const char *s)
{
    while (*s != '\0') {
        app_putc(a, *s++);
    }
}

/* Percent-encodes everything outside RFC 3986's unreserved set. */
static void app_encoded(appender_t *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            app_putc(a, (char)c);
        } else {
            app_putc(a, '%');
            app_putc(a, hex[c >> 4]);
            app_putc(a, hex[c & 15]);
        }
    }
}

int pos_redis_url_format_masked(const pos_redis_url_t *url, char *buf, size_t len)
{
    appender_t a = {buf, len, 0};
    char num[16];

    if (buf != NULL && len > 0) {
        buf[0] = '\0';
    } else {
        a.len = 0;
    }
    app_puts(&a, url->tls ? "rediss://" : "redis://");
    if (url->user[0] != '\0' || url->password[0] != '\0') {
        app_encoded(&a, url->user);
        if (url->password[0] != '\0') {
            app_puts(&a, ":****");
        }
        app_putc(&a, '@');
    }
    if (strchr(url->host, ':') != NULL) {
        app_putc(&a, '[');
        app_puts(&a, url->host);
        app_putc(&a, ']');
    } else {
        app_puts(&a, url->host);
    }
    snprintf(num, sizeof(num), ":%u", (unsigned)url->port);
    app_puts(&a, num);
    if (url->db >= 0) {
        snprintf(num, sizeof(num), "/%d", url->db);
        app_puts(&a, num);
    }
    return (int)a.used;
}
