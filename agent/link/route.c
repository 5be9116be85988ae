#include "agent/link/route.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Commands without a key: they go to whichever node. (Lists of names are
 * one string, each name ended by its NUL and the list by an empty name:
 * no pointers to relocate, docs/footprint.md.) */
static const char keyless[] =
    "PING\0ECHO\0INFO\0CLIENT\0CLUSTER\0COMMAND\0CONFIG\0TIME\0ROLE\0ASKING\0HELLO\0WAIT\0SCRIPT\0"
    "FUNCTION\0LATENCY\0MEMORY\0SLOWLOG\0DBSIZE\0LASTSAVE\0READONLY\0READWRITE\0RESET\0QUIT\0";

/* Commands that make no sense through a router: connection state (SELECT,
 * a MULTI block, a subscription) or the whole keyspace (KEYS). */
static const char refused[] =
    "SELECT\0MULTI\0EXEC\0DISCARD\0WATCH\0UNWATCH\0SUBSCRIBE\0PSUBSCRIBE\0SSUBSCRIBE\0"
    "UNSUBSCRIBE\0PUNSUBSCRIBE\0SUNSUBSCRIBE\0KEYS\0MONITOR\0SWAPDB\0MOVE\0FLUSHALL\0FLUSHDB\0"
    "AUTH\0SHUTDOWN\0SYNC\0PSYNC\0";

static bool is(const char *name, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(name, word, len) == 0;
}

static bool in(const char *name, size_t len, const char *list)
{
    for (const char *w = list; *w != '\0'; w += strlen(w) + 1) {
        if (is(name, len, w)) {
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
    if (in(name, len, refused)) {
        r.kind = POS_ROUTE_REFUSED;
    } else if (argc < 2 || in(name, len, keyless)) {
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
