#include "conf/schema.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * A row's value: text in the file's syntax in, the typed field of
 * pos_config_t out (and back, for the dump). Strings are checked for length
 * and by the row's callback, numbers by parse_number(), never atoi.
 */

static void *field(pos_config_t *cfg, const pos_schema_item_t *it)
{
    return (char *)cfg + it->offset;
}

static const void *cfield(const pos_config_t *cfg, const pos_schema_item_t *it)
{
    return (const char *)cfg + it->offset;
}

/* Decimal with full-string, sign and range checks. */
static int parse_number(const char *s, long long min, long long max, long long *out, char *why,
                        size_t whylen)
{
    const char *p = s;
    if (*p == '-') {
        p++;
    }
    /* strtoll would also take leading blanks, '+' and nothing at all. */
    if (*p < '0' || *p > '9') {
        snprintf(why, whylen, "not a number");
        return -EINVAL;
    }
    if (*s == '-' && min >= 0) {
        snprintf(why, whylen, "out of range");
        return -EINVAL;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0') {
        snprintf(why, whylen, "not a number");
        return -EINVAL;
    }
    if (errno == ERANGE || v < min || v > max) {
        snprintf(why, whylen, "out of range");
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char yes[][5] = {"true", "yes", "on", "1"};
    static const char no[][6] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int pos_schema_set(pos_config_t *cfg, const pos_schema_item_t *it, const char *value, char *why,
                   size_t whylen)
{
    long long n;
    int rc;

    switch (it->type) {
    case CT_STR: {
        size_t len = strlen(value);
        assert(it->max >= 0 && (size_t)it->max < it->size);
        if (len == 0 && it->min > 0) {
            snprintf(why, whylen, "empty");
            return -EINVAL;
        }
        if (len > (size_t)it->max) {
            snprintf(why, whylen, "too long (%zu bytes, max %lld)", len, it->max);
            return -EINVAL;
        }
        if (it->check != NULL && (rc = it->check(value, why, whylen)) != 0) {
            return rc;
        }
        char *dst = field(cfg, it);
        explicit_bzero(dst, it->size);
        memcpy(dst, value, len + 1);
        break;
    }
    case CT_U32: {
        assert(it->size == sizeof(uint32_t) && it->min >= 0 && it->max <= UINT32_MAX);
        if ((rc = parse_number(value, it->min, it->max, &n, why, whylen)) != 0) {
            return rc;
        }
        uint32_t v = (uint32_t)n;
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    case CT_INT: {
        assert(it->size == sizeof(int) && it->min >= 0 && it->max <= INT32_MAX);
        if ((rc = parse_number(value, it->min, it->max, &n, why, whylen)) != 0) {
            return rc;
        }
        int v = (int)n;
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    case CT_BOOL: {
        bool v;
        assert(it->size == sizeof(bool));
        if (parse_bool(value, &v) != 0) {
            snprintf(why, whylen, "not a boolean");
            return -EINVAL;
        }
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    case CT_ENUM: {
        assert(it->size == sizeof(int) && it->enum_parse != NULL);
        int v = it->enum_parse(value);
        if (v < 0) {
            snprintf(why, whylen, "not one of the allowed values");
            return -EINVAL;
        }
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    }
    if (it->set_offset != 0) {
        bool set = true;
        memcpy((char *)cfg + it->set_offset, &set, sizeof(set));
    }
    return 0;
}

void pos_schema_set_default(pos_config_t *cfg, const pos_schema_item_t *it)
{
    char why[128];

    if (it->def != NULL) {
        int rc = pos_schema_set(cfg, it, it->def, why, sizeof(why));
        assert(rc == 0 && "built-in default must pass its own checks");
        (void)rc;
    } else if (it->type == CT_INT) {
        int unset = -1;
        memcpy(field(cfg, it), &unset, sizeof(unset));
    }
}

const char *pos_schema_format(const pos_config_t *cfg, const pos_schema_item_t *it, char *buf,
                              size_t len)
{
    const void *f = cfield(cfg, it);
    switch (it->type) {
    case CT_STR:
        if (it->flags & F_SECRET) {
            snprintf(buf, len, "****");
        } else if (it->flags & F_URL) {
            pos_redis_url_t url;
            if (pos_redis_url_parse(f, &url, NULL, 0) == 0) {
                pos_redis_url_format_masked(&url, buf, len);
            } else {
                snprintf(buf, len, "(invalid)");
            }
            explicit_bzero(&url, sizeof(url));
        } else {
            snprintf(buf, len, "%s", (const char *)f);
        }
        break;
    case CT_U32: {
        uint32_t v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%lu", (unsigned long)v);
        break;
    }
    case CT_INT: {
        int v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%d", v);
        break;
    }
    case CT_BOOL: {
        bool v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%s", v ? "true" : "false");
        break;
    }
    case CT_ENUM: {
        int v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%s", it->enum_name(v));
        break;
    }
    }
    return buf;
}

bool pos_schema_is_set(const pos_config_t *cfg, const pos_schema_item_t *it)
{
    if (it->set_offset != 0) {
        bool set;
        memcpy(&set, (const char *)cfg + it->set_offset, sizeof(set));
        return set;
    }
    if (it->type == CT_INT && it->def == NULL) {
        int v;
        memcpy(&v, cfield(cfg, it), sizeof(v));
        return v >= 0;
    }
    if (it->type == CT_STR) {
        return ((const char *)cfield(cfg, it))[0] != '\0';
    }
    return true;
}

bool pos_schema_differs(const pos_config_t *a, const pos_config_t *b, const pos_schema_item_t *it)
{
    if (it->set_offset != 0 && *(const bool *)((const char *)a + it->set_offset) !=
                                   *(const bool *)((const char *)b + it->set_offset)) {
        return true;
    }
    if (it->type == CT_STR) {
        return strncmp(cfield(a, it), cfield(b, it), it->size) != 0;
    }
    return memcmp(cfield(a, it), cfield(b, it), it->size) != 0;
}

void pos_schema_copy(pos_config_t *dst, const pos_config_t *src, const pos_schema_item_t *it)
{
    memcpy(field(dst, it), cfield(src, it), it->size);
    if (it->set_offset != 0) {
        *(bool *)((char *)dst + it->set_offset) =
            *(const bool *)((const char *)src + it->set_offset);
    }
}
