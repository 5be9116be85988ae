#ifndef AGENT_API_API_H
#define AGENT_API_API_H

/*
 * The agent's commands on the local API socket (agent/api/localapi.c speaks the
 * protocol): GET, MGET, EXISTS, TTL, PTTL from the offline cache (read-through
 * while online), PUBLISH through the outbox, the application's writes
 * (agent/api/api_kv.c: SET, SETEX, EXPIRE, PEXPIRE, DEL on session:* and
 * temp:*, INCR/INCRBY on counter:* but the agent's own counter:terminal:*),
 * INFO, and on shared state RATELIMIT, SMEMBERS
 * active_transactions:{storeId}, TERMINALS and CACHE.CLEAR
 * (agent/api/api_shared.c). See docs/local-api.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/api/localapi.h"
#include "agent/api/ratelimit.h"
#include "agent/link/link.h"
#include "agent/sync/cachesvc.h"
#include "agent/sync/delivery.h"

#define POS_API_INFO_MAX 4096 /* bytes of an INFO reply */

/* What the command handlers are given; pointers must outlive the API. */
typedef struct pos_api_options {
    uv_loop_t *loop;
    const char *socket_path;        /* [local] socket */
    const char *socket_group;       /* [local] socket_group; "" or NULL: our own */
    uint32_t max_clients;           /* [local] max_clients; 0: the default */
    pos_localapi_admission_t admit; /* [local] client_rate, ..., idle_timeout_s */
    const char *password;           /* [local] password / password_file; NULL: none */
    pos_cachesvc_t *cache;          /* reads */
    pos_delivery_t *delivery;       /* writes (the outbox) */
    /*
     * Writes the INFO text for "section" ("all", "server", ...: matched
     * case-insensitively by the writer) into buf, at most cap bytes, and
     * returns its length. The agent owns what INFO says.
     */
    size_t (*info)(void *ctx, const char *section, char *buf, size_t cap);
    void *info_ctx;
    /* RATELIMIT, SMEMBERS, TERMINALS, CACHE.CLEAR (agent/api/api_shared.c). */
    pos_link_t *link;        /* shared decisions and reads while online; NULL: never */
    const char *terminal_id; /* this till (stamped on what the application publishes) */
    const char *store_id;    /* and its store: the only one SMEMBERS serves, and the only
                              * channels the application may publish on */
    /* This till's payment in progress (its transaction id), or NULL. */
    const char *(*own_active)(void *ctx);
    /* True when tx is a payment of this till that has ended. */
    bool (*own_ended)(void *ctx, const char *tx);
    void *own_ctx;
} pos_api_options_t;

/* What the shared-state commands counted (INFO). */
typedef struct pos_api_shared_stats {
    uint64_t ratelimit_redis;    /* RATELIMIT decided by Redis */
    uint64_t ratelimit_local;    /* decided by the till's own window */
    uint64_t ratelimit_fallback; /* of those: online, but Redis did not answer */
    uint64_t snapshots_served;   /* SMEMBERS / TERMINALS answered from the last known copy */
    uint64_t cache_cleared;      /* entries dropped by CACHE.CLEAR */
} pos_api_shared_stats_t;

typedef struct pos_api {
    pos_api_options_t opt;
    pos_localapi_t server;
    bool running;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    char info_buf[POS_API_INFO_MAX];
    pos_ratelimit_t ratelimit; /* RATELIMIT's local window */
    uint64_t ratelimit_nonce;  /* makes this run's request ids unique */
    uint64_t ratelimit_seq;
    uint64_t ratelimit_warned_ms; /* monotonic ms of the last "decided locally" warning */
    void *terminals_inflight;     /* the TERMINALS listing waiting for Redis, or NULL */
    pos_api_shared_stats_t shared;
} pos_api_t;

/* Starts the server on opt->socket_path. Returns 0 or -errno (the agent
 * runs on without a local API then; nothing is left to close). */
int pos_api_start(pos_api_t *api, const pos_api_options_t *opt);

/* Closes the server when it runs; done(arg) (done may be NULL) runs once
 * it has closed, at once when it never started. */
void pos_api_close(pos_api_t *api, void (*done)(void *arg), void *arg);

/* The server's counters (zero when it never started). */
void pos_api_stats(const pos_api_t *api, pos_localapi_stats_t *st);

#endif /* AGENT_API_API_H */
