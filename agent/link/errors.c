#include "agent/link/errors.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "platform/log.h"

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

static bool contains(const char *s, size_t len, const char *needle)
{
    size_t nlen = strlen(needle);
    for (size_t i = 0; i + nlen <= len; i++) {
        if (memcmp(s + i, needle, nlen) == 0) {
            return true;
        }
    }
    return false;
}

int pos_link_classify_error(const char *msg, size_t len)
{
    if (has_prefix(msg, len, "NOAUTH") || has_prefix(msg, len, "WRONGPASS") ||
        has_prefix(msg, len, "NOPERM") || contains(msg, len, "invalid password") ||
        contains(msg, len, "invalid username-password")) {
        return -EACCES;
    }
    if (contains(msg, len, "DB index is out of range") || contains(msg, len, "invalid DB index")) {
        return -EINVAL;
    }
    if (has_prefix(msg, len, "LOADING") || has_prefix(msg, len, "BUSY") ||
        has_prefix(msg, len, "TRYAGAIN") || has_prefix(msg, len, "MASTERDOWN")) {
        return -EAGAIN;
    }
    return -EPROTO;
}

bool pos_link_error_for_good(const char *msg, size_t len)
{
    return contains(msg, len, "WRONGTYPE") || contains(msg, len, "not an integer") ||
           contains(msg, len, "would overflow");
}

int pos_link_auth_check(const char *name, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR) {
        return 0;
    }
    if (contains(r->str, r->len, "without any password configured") ||
        contains(r->str, r->len, "no password is set")) {
        /* The server needs no password: go on, but say so once. */
        POS_WARN("link", "%s: a password is configured but the server has none", name);
        return 0;
    }
    return -EACCES;
}
