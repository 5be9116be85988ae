#ifndef AGENT_LINK_LINK_H
#define AGENT_LINK_LINK_H

/*
 * The Redis link: two connections (commands, and subscriptions, since a
 * RESP2 subscriber cannot send other commands), their handshake (AUTH,
 * SELECT, CLIENT SETNAME, SUBSCRIBE), an end-to-end probe, and reconnection
 * with exponential backoff and full jitter.
 *
 * "Online" means both connections are up, authenticated, on the right
 * database, and every subscription is confirmed. Any failure of either
 * connection takes the whole link down; it is rebuilt after a backoff
 * delay. Fatal errors (wrong password, ACL denial, bad database) are retried
 * at the backoff cap, never in a tight loop.
 *
 * With Redis Sentinel (opt.sentinel set) each attempt first asks the
 * sentinels for the master's address, then checks with ROLE that the
 * server is a master; a +switch-master for our master takes the link down
 * and rebuilds it on the new master at once, without a backoff delay.
 *
 * With Redis Cluster (opt.cluster set) the connections are the cluster
 * client's (agent/link/cluster.h): commands are routed by key slot
 * underneath pos_link_command(), "online" means every subscription is in
 * place, and any connection lost takes the link down as with one server.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "platform/backoff.h"
#include "agent/link/cluster.h"
#include "agent/link/conn.h"
#include "agent/link/errors.h"
#include "agent/link/sentinel.h"
#include "conf/redis_url.h"

#define POS_LINK_MAX_CHANNELS 8

typedef struct pos_link pos_link_t;

typedef struct pos_link_callbacks {
    /* The link is online (first time or after a reconnect). */
    void (*on_online)(pos_link_t *l);
    /* The link left the online state; err is why (negative errno). */
    void (*on_offline)(pos_link_t *l, int err);
    /* A message arrived on a subscribed channel. Neither pointer outlives
     * the call; payload is not NUL-terminated. */
    void (*on_message)(pos_link_t *l, const char *channel, size_t chlen, const char *payload,
                       size_t len);
    /* Server-assisted cache invalidation (CLIENT TRACKING redirected to the
     * subscriber): "keys" is an array of key strings, or NULL when Redis
     * flushed everything. May be NULL. */
    void (*on_invalidate)(pos_link_t *l, const redisReply *keys);
} pos_link_callbacks_t;

/*
 * A check made on every connect before subscribing (e.g. that no other
 * agent holds this terminal's id): "argv" is sent on the subscriber
 * connection once its handshake is through, and SUBSCRIBE only after
 * check() accepted the reply. check() returns 0 to go on, or a negative
 * errno that takes the connection down (-EPERM is retried at the backoff
 * cap, like a refused password): a refused gate never subscribes.
 */
typedef struct pos_link_gate {
    int argc;
    const char *const *argv; /* must outlive the link (the values may change between connects) */
    int (*check)(void *ctx, const redisReply *r);
    void *ctx;
} pos_link_gate_t;

typedef struct pos_link_options {
    const pos_redis_url_t *endpoint; /* host, port, user, password, db (>= 0) */
    /* Client name (required here), timeouts, backoff and transport of both
     * connections. */
    pos_conn_reach_t reach;
    const char *channels[POS_LINK_MAX_CHANNELS]; /* to subscribe to */
    size_t nchannels;
    const char *probe_channel;  /* published by cmd, heard by sub */
    uint32_t probe_interval_ms; /* 0: 10000 */
    uint32_t stable_after_ms;   /* 0: 10000; backoff resets after this online */
    uint32_t random_seed;       /* 0: seeded from the OS */
    /* Redis Sentinel: NULL to connect to endpoint->host:port; else the
     * master is resolved through the sentinels (endpoint's user, password
     * and db still apply). Copied; its strings must outlive the link. A
     * sentinel reach without a transport takes the link's. */
    const pos_sentinel_options_t *sentinel;
    /* Redis Cluster: NULL for one server (or Sentinel); else its seeds and
     * pub/sub mode (copied; its endpoint, reach, channels and
     * probe are taken from here). Exclusive with sentinel. */
    const pos_cluster_options_t *cluster;
    /* Checked before subscribing (see pos_link_gate_t); NULL: none. Must
     * outlive the link. */
    const pos_link_gate_t *gate;
} pos_link_options_t;

typedef enum pos_link_state {
    POS_LINK_DOWN = 0,   /* waiting for the retry timer */
    POS_LINK_CONNECTING, /* connections and handshakes in flight */
    POS_LINK_ONLINE,
    POS_LINK_STOPPING,
    POS_LINK_STOPPED,
} pos_link_state_t;

typedef struct pos_link_side {
    pos_conn_t conn;
    pos_link_t *link;
    bool ready;          /* handshake (and subscriptions) complete */
    uint32_t steps_left; /* handshake replies still expected */
} pos_link_side_t;

struct pos_link {
    void *data; /* owner's pointer */

    uv_loop_t *loop;
    pos_link_options_t opt;
    pos_link_callbacks_t cb;
    pos_link_state_t state;

    pos_link_side_t cmd;
    pos_link_side_t sub;
    uv_timer_t retry_timer;
    uv_timer_t probe_timer;
    uv_timer_t stable_timer;
    unsigned open_handles;
    void (*stopped_cb)(pos_link_t *l);

    pos_backoff_t backoff;
    uint32_t rng;
    int down_err;       /* first error of the current failure */
    bool fatal;         /* that error is a configuration/auth problem */
    uint64_t probe_seq;
    bool probe_pending; /* a probe was published and not yet heard back */
    uint64_t online_count;
    long long sub_client_id; /* CLIENT ID of the subscriber, for tracking redirects */
    uint64_t went_down_ms;   /* loop time the link last failed, for stats */
    uint64_t last_attempt_ms;

    /* Redis Sentinel (use_sentinel): where the current attempt connects. */
    bool use_sentinel;
    pos_sentinel_t sentinel;
    char master_host[POS_URL_HOST_MAX];
    uint16_t master_port;
    bool switch_pending; /* a failover was announced: retry at once */
    uint64_t switch_at_ms; /* loop time of the last announcement acted on at once */
    bool have_hint;      /* hint_host:hint_port came with the announcement */
    char hint_host[POS_URL_HOST_MAX];
    uint16_t hint_port;
    uint64_t failovers;  /* +switch-master announcements for our master received */

    pos_cluster_t *cluster; /* Redis Cluster: the connections are its; else NULL */

    /* Health (INFO): the probe's round trip and Redis's memory, as last seen. */
    uint64_t probe_sent_us;      /* monotonic us the pending probe was published */
    uint64_t probes_online;      /* probes sent since the link came online */
    uint64_t probe_rtt_us;       /* the last probe's round trip, us; 0: none yet */
    uint64_t redis_used_memory;  /* INFO memory used_memory, bytes; 0: not read yet */
    uint64_t redis_memory_at_ms; /* wall clock ms it was read; 0: never */
};

/* Initialises the link (no I/O). Strings in opt must outlive the link. */
int pos_link_init(uv_loop_t *loop, pos_link_t *l, const pos_link_options_t *opt,
                  const pos_link_callbacks_t *cb);

/* Starts connecting at once. */
void pos_link_start(pos_link_t *l);

/* Stops for good: closes both connections and every timer, then "done". */
void pos_link_stop(pos_link_t *l, void (*done)(pos_link_t *l));

/* The server this link connects (or last connected) to: the sentinels'
 * master when Sentinel is used ("" before the first answer), else the
 * URL's host. *port receives its port. */
const char *pos_link_server(const pos_link_t *l, uint16_t *port);

/* The counters of both connections (every connection of a cluster),
 * added up. */
void pos_link_stats(const pos_link_t *l, pos_conn_stats_t *st);

/*
 * Redis Cluster only: the key prefixes to track (CLIENT TRACKING BCAST) on
 * every primary, with each node's invalidations redirected to a
 * subscriber on that node (copied; call before pos_link_start). Returns
 * true when the link tracks them itself (a cluster), false when the
 * caller sets tracking up on the command connection as with one server.
 */
bool pos_link_track_prefixes(pos_link_t *l, const char *const *prefixes, size_t n);

/* True when online (see above). */
bool pos_link_is_online(const pos_link_t *l);

/*
 * Sends a command on the command connection. Returns 0, or -ENOTCONN when
 * the link is not online (nothing is queued: callers that must not lose
 * data keep it themselves), or -ENOBUFS / -ENOMEM.
 */
int pos_link_command(pos_link_t *l, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                     const size_t *argvlen);

/* Same with NUL-terminated arguments. */
int pos_link_commandv(pos_link_t *l, pos_reply_cb cb, void *ctx, int argc, const char **argv);

/*
 * As pos_link_command(), for a command the agent can do without: what a
 * local client asks for (a read through the cache, RATELIMIT, SMEMBERS),
 * which the client can multiply (one MGET is a GET per key) faster than
 * the link takes replies. Sent only into spare room (pos_conn_has_spare()),
 * else -ENOBUFS with nothing sent and the caller answers as when Redis is
 * unreachable: the heartbeat, the outbox and payment messages always find
 * room, and a flood never drops the connection.
 */
int pos_link_command_spare(pos_link_t *l, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                           const size_t *argvlen);

#endif /* AGENT_LINK_LINK_H */
