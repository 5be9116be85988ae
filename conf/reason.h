#ifndef CONF_REASON_H
#define CONF_REASON_H

/*
 * Private to conf/: the one way the pure parsers (redis_url.c,
 * sentinel_list.c) report why they refuse a value.
 */

#include <stddef.h>

/*
 * Formats the reason into err[0..errlen) like snprintf (truncated, always
 * NUL-terminated; nothing is written when err is NULL or errlen is 0).
 * Returns -EINVAL, so that a parser can "return pos_reason_fail(...)".
 */
int pos_reason_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CONF_REASON_H */
