#include "agent/link/route.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Commands without a key: they go to whichever node. */
static const char *const keyless[] = {
    "PING",    "ECHO",   "INFO",     "CLIENT",   "CLUSTER",   "COMMAND",  "CONFIG",  "TIME",
    "ROLE",    "ASKING", "HELLO",    "WAIT",     "SCRIPT",    "FUNCTION", "LATENCY", "MEMORY",
    "SLOWLOG", "DBSIZE", "LASTSAVE", "READONLY", "READWRITE", "RESET",    "QUIT",
};

/* Commands that make no sense through a router: connection state (SELECT,
 * a MULTI block, a subscription) or the whole keyspace (KEYS). */
static const char *const refused[] = {
    "SELECT",    "MULTI",      "EXEC",       "DISCARD",     "WATCH",        "UNWATCH",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "KEYS",      "MONITOR",    "SWAPDB",     "MOVE",        "FLUSHALL",     "FLUSHDB",
    "AUTH",      "SHUTDOWN",   "SYNC",       "PSYNC",
};

static bool is(const char *name, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(name, word, len) == 0;
}

static bool in(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (is(name, len, list[i])) {
            return true;
        }
    }
    return false;
}

/* numkeys of EVAL/EVALSHA/FCALL (argv[2]), or -1 when it is not a number. */
static long numkeys(const char *s, size_t len)
{
    long n = 0;

    if (len == 0 || len > 6) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        n = n * 10 + (s[i] - '0');
    }
    return n;
}

pos_route_t pos_route_classify(int argc, const char **argv, const size_t *lens)
{
    pos_route_t r = {POS_ROUTE_KEY, 1};
    const char *name;
    size_t len;

    if (argc < 1) {
        r.kind = POS_ROUTE_REFUSED;
        return r;
    }
    name = argv[0];
    len = lens[0];
    if (in(name, len, refused, sizeof(refused) / sizeof(refused[0]))) {
        r.kind = POS_ROUTE_REFUSED;
    } else if (argc < 2 || in(name, len, keyless, sizeof(keyless) / sizeof(keyless[0]))) {
        r.kind = POS_ROUTE_ANY;
    } else if (is(name, len, "MGET")) {
        r.kind = POS_ROUTE_MGET;
    } else if (is(name, len, "SCAN")) {
        r.kind = POS_ROUTE_SCAN;
    } else if (is(name, len, "PUBLISH")) {
        r.kind = POS_ROUTE_PUBLISH;
    } else if (is(name, len, "EVAL") || is(name, len, "EVALSHA") || is(name, len, "EVAL_RO") ||
               is(name, len, "EVALSHA_RO") || is(name, len, "FCALL") || is(name, len, "FCALL_RO")) {
        long n = argc >= 3 ? numkeys(argv[2], lens[2]) : -1;
        if (n < 0 || 3 + n > argc) {
            r.kind = POS_ROUTE_REFUSED; /* Redis would refuse it too */
        } else if (n == 0) {
            r.kind = POS_ROUTE_ANY;
        } else {
            r.key = 3;
        }
    }
    return r;
}
