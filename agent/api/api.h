#ifndef AGENT_API_API_H
#define AGENT_API_API_H

/*
 * The agent's commands on the local API socket (agent/api/localapi.c speaks the
 * protocol): GET, MGET, EXISTS, TTL from the offline cache (read-through
 * while online), PUBLISH and INCR/INCRBY (counter:* only) through the
 * outbox, and INFO with sections server, link, cache, outbox, payment,
 * devices. See docs/local-api.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/api/localapi.h"
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
    const char *terminal_id;        /* stamped on what the application publishes */
    const char *store_id;           /* its store: the only channels it may publish on */
    pos_cachesvc_t *cache;          /* reads */
    pos_delivery_t *delivery;       /* writes (the outbox) */
    /*
     * Writes the INFO text for "section" ("all", "server", ...: matched
     * case-insensitively by the writer) into buf, at most cap bytes, and
     * returns its length. The agent owns what INFO says.
     */
    size_t (*info)(void *ctx, const char *section, char *buf, size_t cap);
    void *info_ctx;
} pos_api_options_t;

typedef struct pos_api {
    pos_api_options_t opt;
    pos_localapi_t server;
    bool running;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    char info_buf[POS_API_INFO_MAX];
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
