#include "agent/msg/canon.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- output buffer ---------------------------------------------------------- */

typedef struct canon_buf {
    char *p;
    size_t len, cap;
    int err; /* first error; later writes are no-ops */
} canon_buf_t;

static void buf_put(canon_buf_t *b, const char *s, size_t n)
{
    if (b->err != 0) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->err = -ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_putc(canon_buf_t *b, char c)
{
    buf_put(b, &c, 1);
}

/* ---- numbers ---------------------------------------------------------------- */

int pos_canon_number(double d, char *buf, size_t len)
{
    char e[40], digits[20];
    size_t k = 0, o = 0;
    int n, exp10;

    if (!isfinite(d)) {
        return -EINVAL;
    }
    if (len < 32) {
        return -ENOSPC;
    }
    if (d == 0) { /* and -0 */
        buf[0] = '0';
        buf[1] = '\0';
        return 1;
    }
    if (d < 0) {
        buf[o++] = '-';
        d = -d;
    }
    /* The fewest significant digits that read back as d: %.*e rounds
     * correctly, so the first precision that round-trips is the shortest,
     * and among those digits the nearest to d (what ECMAScript asks).
     * Once a precision round-trips, every larger one does: a binary search
     * (5 tries, not up to 17; a signed message may hold thousands). */
    int lo = 0, hi = 16; /* 17 significant digits always round-trip */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        snprintf(e, sizeof(e), "%.*e", mid, d);
        if (strtod(e, NULL) == d) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    snprintf(e, sizeof(e), "%.*e", lo, d);
    /* e is "D[.DDDD]e[+-]XX": split it into digits and exponent. */
    const char *s = e;
    for (; *s != 'e'; s++) {
        if (*s >= '0' && *s <= '9' && k < sizeof(digits) - 1) {
            digits[k++] = *s;
        }
    }
    exp10 = atoi(s + 1);
    while (k > 1 && digits[k - 1] == '0') {
        k--;
    }
    digits[k] = '\0';
    n = exp10 + 1; /* value = 0.digits x 10^n */

    if ((int)k <= n && n <= 21) {
        /* Integer: the digits, then n - k zeros. */
        memcpy(buf + o, digits, k);
        o += k;
        for (int i = 0; i < n - (int)k; i++) {
            buf[o++] = '0';
        }
    } else if (0 < n && n <= 21) {
        memcpy(buf + o, digits, (size_t)n);
        o += (size_t)n;
        buf[o++] = '.';
        memcpy(buf + o, digits + n, k - (size_t)n);
        o += k - (size_t)n;
    } else if (-6 < n && n <= 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = 0; i < -n; i++) {
            buf[o++] = '0';
        }
        memcpy(buf + o, digits, k);
        o += k;
    } else {
        buf[o++] = digits[0];
        if (k > 1) {
            buf[o++] = '.';
            memcpy(buf + o, digits + 1, k - 1);
            o += k - 1;
        }
        o += (size_t)snprintf(buf + o, len - o, "e%c%d", n - 1 < 0 ? '-' : '+',
                              n - 1 < 0 ? -(n - 1) : n - 1);
    }
    buf[o] = '\0';
    return (int)o;
}

/* ---- strings ---------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s (NUL-terminated), or 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        return 0;
    }
    *cp = v;
    return n;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    while (*p != '\0') {
        size_t n = utf8_seq(p, &cp);
        if (n == 0) {
            return false;
        }
        p += n;
    }
    return true;
}

static void put_string(canon_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    if (s == NULL || !utf8_valid(s)) {
        b->err = b->err ? b->err : -EBADMSG;
        return;
    }
    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            break;
        }
        if (esc != NULL) {
            buf_put(b, esc, 2);
        } else if (*p < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            buf_put(b, u, sizeof(u));
        } else {
            buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, '"');
}

/* The next UTF-16 code unit of a valid UTF-8 string, -1 at its end;
 * *pending carries a low surrogate between calls. */
static int32_t utf16_next(const unsigned char **p, uint32_t *pending)
{
    uint32_t cp;
    if (*pending != 0) {
        int32_t u = (int32_t)*pending;
        *pending = 0;
        return u;
    }
    if (**p == '\0') {
        return -1;
    }
    size_t n = utf8_seq(*p, &cp);
    *p += n ? n : 1;
    if (cp >= 0x10000) {
        cp -= 0x10000;
        *pending = 0xDC00 | (cp & 0x3FF);
        return (int32_t)(0xD800 | (cp >> 10));
    }
    return (int32_t)cp;
}

/* RFC 8785 3.2.3: members sorted by their names' UTF-16 code units. */
static int key_cmp(const void *x, const void *y)
{
    const unsigned char *a = (const unsigned char *)(*(const cJSON *const *)x)->string;
    const unsigned char *b = (const unsigned char *)(*(const cJSON *const *)y)->string;
    uint32_t pa = 0, pb = 0;
    for (;;) {
        int32_t ua = utf16_next(&a, &pa), ub = utf16_next(&b, &pb);
        if (ua != ub) {
            return ua < ub ? -1 : 1;
        }
        if (ua < 0) {
            return 0;
        }
    }
}

/* ---- values ----------------------------------------------------------------- */

static void put_value(canon_buf_t *b, const cJSON *v, const char *omit);

static void put_object(canon_buf_t *b, const cJSON *obj, const char *omit)
{
    size_t n = 0, k = 0, omitted = 0;
    const cJSON *c;

    for (c = obj->child; c != NULL; c = c->next) {
        n++;
    }
    const cJSON **m = calloc(n ? n : 1, sizeof(*m));
    if (m == NULL) {
        b->err = b->err ? b->err : -ENOMEM;
        return;
    }
    for (c = obj->child; c != NULL; c = c->next) {
        if (c->string == NULL || !utf8_valid(c->string)) {
            b->err = b->err ? b->err : -EBADMSG;
            free(m);
            return;
        }
        if (omit != NULL && strcmp(c->string, omit) == 0) {
            omitted++;
            continue;
        }
        m[k++] = c;
    }
    if (omitted > 1) { /* two "sig" members: which one was meant? */
        b->err = b->err ? b->err : -EBADMSG;
        free(m);
        return;
    }
    qsort(m, k, sizeof(*m), key_cmp);
    buf_putc(b, '{');
    for (size_t i = 0; i < k; i++) {
        /* I-JSON (RFC 7493), which JCS requires: member names are unique. */
        if (i > 0 && strcmp(m[i - 1]->string, m[i]->string) == 0) {
            b->err = b->err ? b->err : -EBADMSG;
            break;
        }
        if (i > 0) {
            buf_putc(b, ',');
        }
        put_string(b, m[i]->string);
        buf_putc(b, ':');
        put_value(b, m[i], NULL);
    }
    buf_putc(b, '}');
    free(m);
}

static void put_value(canon_buf_t *b, const cJSON *v, const char *omit)
{
    char num[32];

    if (b->err != 0) {
        return;
    }
    switch (v->type & 0xFF) {
    case cJSON_False:
        buf_put(b, "false", 5);
        break;
    case cJSON_True:
        buf_put(b, "true", 4);
        break;
    case cJSON_NULL:
        buf_put(b, "null", 4);
        break;
    case cJSON_Number: {
        int n = pos_canon_number(v->valuedouble, num, sizeof(num));
        if (n < 0) {
            b->err = -EBADMSG; /* 1e400 parses as an infinity: not a JSON number */
            return;
        }
        buf_put(b, num, (size_t)n);
        break;
    }
    case cJSON_String:
        put_string(b, v->valuestring);
        break;
    case cJSON_Array:
        buf_putc(b, '[');
        for (const cJSON *c = v->child; c != NULL; c = c->next) {
            if (c != v->child) {
                buf_putc(b, ',');
            }
            put_value(b, c, NULL);
        }
        buf_putc(b, ']');
        break;
    case cJSON_Object:
        put_object(b, v, omit);
        break;
    default:
        b->err = -EBADMSG;
        break;
    }
}

/* cJSON ends its strings at a NUL, so an escaped one (\u0000) would
 * silently cut a string short: refuse it. */
static bool has_escaped_nul(const char *json, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (json[i] != '\\') {
            continue;
        }
        size_t run = 0;
        while (i < len && json[i] == '\\') {
            run++;
            i++;
        }
        if (run % 2 == 1 && len - i >= 5 && json[i] == 'u' &&
            memcmp(json + i + 1, "0000", 4) == 0) {
            return true;
        }
    }
    return false;
}

cJSON *pos_canon_parse(const char *json, size_t len)
{
    const char *end = NULL;
    if (json == NULL || len == 0 || memchr(json, '\0', len) != NULL || has_escaped_nul(json, len)) {
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root == NULL) {
        return NULL;
    }
    while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (end != json + len) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int pos_canon_tree(const cJSON *root, const char *omit, char **out, size_t *outlen)
{
    canon_buf_t b = {0};

    put_value(&b, root, omit);
    if (b.err == 0 && b.p == NULL) {
        b.err = -EBADMSG;
    }
    if (b.err != 0) {
        free(b.p);
        return b.err;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}

int pos_canon_json(const char *json, size_t len, const char *omit, char **out, size_t *outlen)
{
    if (out == NULL || outlen == NULL) {
        return -EINVAL;
    }
    cJSON *root = pos_canon_parse(json, len);
    if (root == NULL) {
        return -EBADMSG;
    }
    int rc = pos_canon_tree(root, omit, out, outlen);
    cJSON_Delete(root);
    return rc;
}
