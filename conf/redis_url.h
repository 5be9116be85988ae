#ifndef CONF_REDIS_URL_H
#define CONF_REDIS_URL_H

/*
 * Redis URL parser (pure): redis://[[user]:pass@]host[:port][/db] and
 * rediss:// for TLS. Hosts may be names, IPv4 literals or bracketed IPv6
 * literals ([::1]). User and password are percent-decoded.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_URL_HOST_MAX 256
#define POS_URL_USER_MAX 128
#define POS_URL_PASS_MAX 256

typedef struct pos_redis_url {
    bool tls;                         /* rediss:// */
    char host[POS_URL_HOST_MAX];      /* without brackets */
    uint16_t port;                    /* default 6379 */
    char user[POS_URL_USER_MAX];      /* ACL user, "" when absent */
    char password[POS_URL_PASS_MAX];  /* "" when absent; secret */
    int db;                           /* -1 when the URL has no /db */
} pos_redis_url_t;

/*
 * Parses "url" into "out". On error returns -EINVAL and writes a short
 * human-readable reason (never containing the password, nor any other part
 * of the URL) into err, and leaves "out" zeroed except port 6379 and db -1.
 *
 * Details: the scheme is matched case-insensitively; the last '@' before the
 * path ends the user info, which must contain ':' ("secret@host" is refused
 * so that a password is never mistaken for a user name and logged); port
 * 1..65535; "/N" with N in 0..1023, "" or "/" for none; query strings,
 * fragments, spaces, control characters, bad %XX escapes and fields that
 * do not fit their buffers are errors (nothing is truncated).
 */
int pos_redis_url_parse(const char *url, pos_redis_url_t *out, char *err, size_t errlen);

/*
 * Writes the URL back with the password masked as "****", for logs and
 * --check-config: scheme://[user[:****]@]host:port[/db], the user
 * percent-encoded, an IPv6 host in brackets, "/db" only when db >= 0.
 * buf may be NULL when len is 0. Returns the length that snprintf would
 * (the output is truncated, and NUL-terminated, when it does not fit).
 */
int pos_redis_url_format_masked(const pos_redis_url_t *url, char *buf, size_t len);

#endif /* CONF_REDIS_URL_H */
