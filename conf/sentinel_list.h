#ifndef CONF_SENTINEL_LIST_H
#define CONF_SENTINEL_LIST_H

/*
 * Parser (pure) for the [redis] sentinels value: a comma-separated list of
 * host[:port] entries, e.g. "10.0.0.5:26379, sentinel-b:26379, [fd00::7]";
 * and for [redis] cluster_nodes, the same with 6379 as the default port.
 */

#include <stddef.h>
#include <stdint.h>

#include "conf/redis_url.h"

#define POS_SENTINEL_MAX          8     /* entries in the list */
#define POS_SENTINEL_DEFAULT_PORT 26379 /* when an entry has no :port */
#define POS_CLUSTER_NODES_MAX     16    /* [redis] cluster_nodes entries */

typedef struct pos_sentinel_addr {
    char host[POS_URL_HOST_MAX]; /* without brackets */
    uint16_t port;
} pos_sentinel_addr_t;

/*
 * Parses "list" into out[0..max-1] and sets *n. Entries are separated by
 * ',' with optional blanks around each; a host is a name, an IPv4 literal
 * or a bracketed IPv6 literal (same rules as the REDIS_URL host); the port
 * is 1..65535 and defaults to 26379. An empty list, an empty entry, more
 * than "max" entries, a duplicate entry, user info, a path or any other
 * character are errors: returns -EINVAL with a one-line reason in err
 * (err may be NULL when errlen is 0) and *n = 0.
 */
int pos_sentinel_list_parse(const char *list, pos_sentinel_addr_t *out, size_t max, size_t *n,
                            char *err, size_t errlen);

/*
 * The same rules for any list of servers: entries without a port get
 * default_port, and errors name them as "what" ("cluster node"):
 * [redis] cluster_nodes uses it with 6379.
 */
int pos_addr_list_parse(const char *list, uint16_t default_port, const char *what,
                        pos_sentinel_addr_t *out, size_t max, size_t *n, char *err, size_t errlen);

#endif /* CONF_SENTINEL_LIST_H */
