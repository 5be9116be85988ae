#include "agent/acl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

/*
 * What the agent does in Redis, command by command, and why (docs/acl.md
 * has the same list for the cloud's review). {t} is the terminal id, {s}
 * the store id.
 */
static const char *const acl_commands[] = {
    /* Both connections' handshake (AUTH needs no permission). */
    "+select", "+client|setname",
    /* The subscriber: its id for tracking, and the channels. */
    "+client|id", "+subscribe",
    /* The lease on the terminal id (agent/instance.c): one script. */
    "+eval",
    /* Heartbeat, outbox delivery, probes, status changes. */
    "+set", "+publish", "+sadd", "+srem", "+expire", "+incrby",
    /* Reads: read-through, revalidation, warm-up. */
    "+get", "+mget", "+scan", "+sscan",
    /* Server-assisted invalidation (broadcast, redirected to the subscriber). */
    "+client|tracking", "+client|trackinginfo",
    /* With Sentinel: the master is checked with ROLE. */
    "+role",
    /* Fleet visibility (agent/fleet.c): the metrics hash written with its
     * TTL by one script (EVAL above); the clock check's TIME is below. */
    "+hset",
    /* ---- Local API writes (issue 14): sessions, temporary values, rate
     * limits. Their commands (SET/EXPIRE/DEL on session:, temp:; EVALSHA
     * or MULTI/EXEC and ZADD/ZREMRANGEBYSCORE/ZCARD/PEXPIRE on
     * rate_limit:) are added here with them. ---- */
    /* RATELIMIT: one script (TIME, ZREMRANGEBYSCORE, ZCARD, ZADD, PEXPIRE,
     * ZRANGE on rate_limit:*); SMEMBERS of the store's sets; the probe's
     * INFO memory (INFO health). */
    "+zremrangebyscore", "+zcard", "+zadd", "+pexpire", "+zrange", "+time", "+smembers", "+info",
    /* Sessions and temporary data are written through with SET ... PX and
     * PEXPIRE (a DEL is sent as PEXPIRE key 0: no +del in the rule). */
};

/* With [redis] cluster_nodes (docs/cluster.md): the map, the -ASK
 * redirections, the subscribers' probe. */
static const char *const acl_cluster_commands[] = {"+cluster|slots", "+asking", "+ping"};

/* With pubsub = sharded: payment:{t} and inventory:{s} subscribed, and
 * the outbox's payment:, inventory: and transaction: messages published,
 * on their slot's owner. The channel patterns are the same. */
static const char *const acl_sharded_commands[] = {"+ssubscribe", "+spublish"};

typedef struct acl_key {
    const char *perm;    /* "%R", "%W", "%RW" */
    const char *pattern; /* with {t}, {s} */
} acl_key_t;

static const acl_key_t acl_keys[] = {
    {"%W", "terminal:{t}:status"},      /* SET ... EX: the heartbeat */
    {"%RW", "terminal:{t}:metrics"},    /* EVAL (HSET, EXPIRE): a script's key is read-write */
    {"%RW", "posagent:lease:{t}"},      /* the lease script's GET, SET, DEL */
    {"%RW", "active_transactions:{s}"}, /* SADD, EXPIRE, SREM; SMEMBERS (local API) */
    {"%RW", "terminals:{s}"},           /* SADD at connect (CONTRACT.md); TERMINALS */
    {"%RW", "counter:*"},               /* INCRBY, EXPIRE NX: the agent's and the app's */
    {"%R", "product:*"},                /* read-through, warm-up, tracking */
    {"%R", "inventory:{s}:*"},          /* this store's only */
    {"%R", "user:*"},
    {"%RW", "session:*"},     /* read-through; the app's sessions and KEY:origin written through */
    {"%RW", "temp:*"},        /* the app's temporary data, written through */
    {"%R", "index:products"}, /* warm-up by index (CONTRACT.md) */
    {"%R", "index:products:version"},
    {"%R", "index:inventory:{s}"},
    {"%R", "index:inventory:{s}:version"},
    /* ---- Local API writes (issue 14): session:*, temp:*, rate_limit:*
     * with write permission, added here with them. ---- */
    {"%RW", "rate_limit:*"},     /* RATELIMIT's script: every till and the cloud share them */
    {"%R", "terminal:*:status"}, /* TERMINALS: the store's terminals' heartbeats */
};

static const char *const acl_channels[] = {
    "payment:{t}",          /* requests in, outcomes out */
    "inventory:{s}",        /* updates in; the app's out */
    "system:alerts",        /* in */
    "system:terminals",     /* TERMINAL_STATUS out */
    "transaction:{s}",      /* TRANSACTION_COMPLETED and the app's out */
    "posagent:probe:{t}",   /* the end-to-end probe, out and in */
    "__redis__:invalidate", /* tracking's invalidations, in */
    "diag:{t}",             /* diagnostics requests, in */
    "diag:reply:{t}:*",     /* diagnostics reports, out */
};

typedef struct acl_buf {
    char *buf;
    size_t len;
    size_t n;
    bool full;
} acl_buf_t;

__attribute__((format(printf, 2, 3))) static void acl_add(acl_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (b->full) {
        return;
    }
    va_start(ap, fmt);
    w = vsnprintf(b->buf + b->n, b->len - b->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= b->len - b->n) {
        b->full = true;
        return;
    }
    b->n += (size_t)w;
}

/* A pattern with {t} and {s} replaced, added after prefix. */
static void acl_add_pattern(acl_buf_t *b, const char *prefix, const char *pattern,
                            const pos_config_t *cfg)
{
    acl_add(b, " %s", prefix);
    for (const char *p = pattern; *p != '\0'; p++) {
        if (strncmp(p, "{t}", 3) == 0) {
            acl_add(b, "%s", cfg->terminal_id);
            p += 2;
        } else if (strncmp(p, "{s}", 3) == 0) {
            acl_add(b, "%s", cfg->store_id);
            p += 2;
        } else {
            acl_add(b, "%c", *p);
        }
    }
}

static void acl_add_user(acl_buf_t *b, const char *user, const char *password,
                         const char *fallback_user)
{
    acl_add(b, "ACL SETUSER %s reset on", user[0] != '\0' ? user : fallback_user);
    if (password[0] != '\0') {
        unsigned char sum[32];
        /* The hash, never the password: the rule may end up in a ticket. */
#if MBEDTLS_VERSION_MAJOR >= 3
        mbedtls_sha256((const unsigned char *)password, strlen(password), sum, 0);
#else
        mbedtls_sha256_ret((const unsigned char *)password, strlen(password), sum, 0);
#endif
        acl_add(b, " #");
        for (size_t i = 0; i < sizeof(sum); i++) {
            acl_add(b, "%02x", sum[i]);
        }
        memset(sum, 0, sizeof(sum));
    } else {
        acl_add(b, " >CHANGE-ME");
    }
}

int pos_acl_rule(const pos_config_t *cfg, char *buf, size_t len)
{
    acl_buf_t b = {buf, len, 0, len == 0};
    char fallback[POS_ID_MAX + 16];

    snprintf(fallback, sizeof(fallback), "posagent-%s", cfg->terminal_id);
    acl_add_user(&b, cfg->redis.user, cfg->redis.password, fallback);
    acl_add(&b, " resetkeys resetchannels nocommands");
    for (size_t i = 0; i < sizeof(acl_commands) / sizeof(acl_commands[0]); i++) {
        acl_add(&b, " %s", acl_commands[i]);
    }
    for (size_t i = 0; cfg->ncluster_nodes > 0 &&
                       i < sizeof(acl_cluster_commands) / sizeof(acl_cluster_commands[0]);
         i++) {
        acl_add(&b, " %s", acl_cluster_commands[i]);
    }
    for (size_t i = 0; cfg->redis_pubsub == POS_PUBSUB_SHARDED &&
                       i < sizeof(acl_sharded_commands) / sizeof(acl_sharded_commands[0]);
         i++) {
        acl_add(&b, " %s", acl_sharded_commands[i]);
    }
    for (size_t i = 0; i < sizeof(acl_keys) / sizeof(acl_keys[0]); i++) {
        char prefix[8];
        snprintf(prefix, sizeof(prefix), "%s~", acl_keys[i].perm);
        acl_add_pattern(&b, prefix, acl_keys[i].pattern, cfg);
    }
    for (size_t i = 0; i < sizeof(acl_channels) / sizeof(acl_channels[0]); i++) {
        acl_add_pattern(&b, "&", acl_channels[i], cfg);
    }
    return b.full ? -ENOSPC : (int)b.n;
}

int pos_acl_sentinel_rule(const pos_config_t *cfg, char *buf, size_t len)
{
    acl_buf_t b = {buf, len, 0, len == 0};

    if (cfg->nsentinels == 0) {
        return 0;
    }
    /* The agent authenticates to the sentinels with a password only (their
     * default user): what that user needs, no more. */
    acl_add_user(&b, "default", cfg->redis_sentinel_password, "default");
    acl_add(&b, " resetkeys resetchannels nocommands +client|setname "
                "+sentinel|get-master-addr-by-name +subscribe &+switch-master");
    return b.full ? -ENOSPC : (int)b.n;
}
