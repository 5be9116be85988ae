#ifndef AGENT_LINK_CLUSTER_H
#define AGENT_LINK_CLUSTER_H

/*
 * Redis Cluster underneath the link (docs/cluster.md): the topology, one
 * set of connections per node, commands routed by key slot, redirections
 * followed, pub/sub and server-assisted invalidation per node.
 *
 * - An attempt (pos_cluster_connect) asks the seeds, then the primaries of
 *   the last map, in turn for CLUSTER SLOTS, and opens a subscriber
 *   connection on each node that needs one: the "home" node (the owner of
 *   the first channel's slot) for the classic channels, the owner of each
 *   sharded channel's slot (SSUBSCRIBE), and, when key prefixes are
 *   tracked, every primary: that subscriber turns CLIENT TRACKING on with
 *   its own id as the redirect, so each node tells about its own keys on
 *   one connection. The attempt succeeds (on_ready) once all of them are
 *   subscribed. With a gate (below) nothing is subscribed before the gate
 *   passed.
 * - Command connections open when a command is routed to a node, and a
 *   node's command connection idle for POS_CLUSTER_IDLE_MS closes (a node
 *   with neither subscriber nor traffic keeps no connection at all).
 *   Commands wait in the node's queue, in order, until its connections are
 *   up (and its tracking is on: a value read there is then always
 *   covered by an invalidation).
 * - -MOVED updates the map, asks for a refresh and resends on the owner;
 *   -ASK sends ASKING and the command to the target once; -TRYAGAIN resends
 *   after POS_CLUSTER_TRYAGAIN_MS; at most POS_CLUSTER_REDIRECTS
 *   redirections per command. MGET is split by slot and its answer put
 *   back together in order; SCAN walks every primary in turn behind one
 *   cursor; with sharded pub/sub, PUBLISH on a sharded channel becomes
 *   SPUBLISH on its slot's owner. The map is also refreshed every
 *   POS_CLUSTER_REFRESH_TICKS probes.
 * - A "sunsubscribe" (the slot of a sharded channel moved) refreshes the
 *   map and subscribes again on the new owner.
 * - Any connection lost, a node answering -CLUSTERDOWN, or a subscriber's
 *   PING (each probe) unanswered within the command timeout takes
 *   everything down (on_failing, then on_down once every connection is
 *   closed): the link's backoff, reconnect, resend and revalidation then
 *   apply as with one server.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/link/conn.h"
#include "agent/link/topology.h"
#include "conf/redis_url.h"
#include "conf/sentinel_list.h"

#define POS_CLUSTER_SEEDS_MAX     16     /* seed nodes */
#define POS_CLUSTER_CHANNELS_MAX  8      /* subscribed channels */
#define POS_CLUSTER_PREFIXES_MAX  8      /* tracked key prefixes, and sharded channel prefixes */
#define POS_CLUSTER_IDLE_MS       60000u /* a command connection unused this long closes */
#define POS_CLUSTER_REDIRECTS     5      /* -MOVED / -ASK followed per command */
#define POS_CLUSTER_TRYAGAIN_MS   100u   /* wait before resending after -TRYAGAIN */
#define POS_CLUSTER_TRYAGAIN_MAX  50     /* ... at most this many times per command */
#define POS_CLUSTER_REFRESH_TICKS 6      /* probes between two CLUSTER SLOTS (60 s by default) */

typedef struct pos_cluster pos_cluster_t;

typedef struct pos_cluster_options {
    const pos_redis_url_t *endpoint;  /* user and password (the database is 0) */
    pos_conn_reach_t reach;           /* client name, timeouts, transport, bulk limit */
    const pos_sentinel_addr_t *seeds; /* host:port of seed nodes, copied */
    size_t nseeds;                    /* 1..POS_CLUSTER_SEEDS_MAX */
    /* Channels to subscribe to (the strings must outlive the cluster); the
     * first one's slot picks the home node. */
    const char *const *channels;
    size_t nchannels; /* up to POS_CLUSTER_CHANNELS_MAX */
    /* Sharded pub/sub: channels (subscribed or published) starting with
     * one of these prefixes use SSUBSCRIBE / SPUBLISH. */
    bool sharded;
    const char *const *sharded_prefixes; /* must outlive the cluster */
    size_t nsharded_prefixes;
    /* A check made at every attempt before any channel is subscribed
     * (pos_link_gate_t, link.h): gate_argv (gate_argc strings, read anew at
     * each attempt) is sent to the owner of its key's slot once the map is
     * known, and the subscribers come up only after gate_check() returned
     * 0; anything else ends the attempt (fatal for -EPERM and -EACCES). A
     * redirection ends it too: the next attempt's map is fresher.
     * gate_argc 0: none. */
    int gate_argc;
    const char *const *gate_argv;
    int (*gate_check)(void *ctx, const redisReply *r);
    void *gate_ctx;
} pos_cluster_options_t;

typedef struct pos_cluster_callbacks {
    /* The attempt succeeded: every subscription is in place. */
    void (*on_ready)(pos_cluster_t *c);
    /* A failure: everything is being taken down (commands are refused). */
    void (*on_failing)(pos_cluster_t *c, int err);
    /* The attempt failed, or the failure is complete: every connection is
     * closed. fatal: a configuration or authentication problem. */
    void (*on_down)(pos_cluster_t *c, int err, bool fatal);
    /* A message on a subscribed channel (classic or sharded). */
    void (*on_message)(pos_cluster_t *c, const char *channel, size_t chlen, const char *payload,
                       size_t len);
    /* Keys a node reports changed, or NULL when it flushed everything. */
    void (*on_invalidate)(pos_cluster_t *c, const redisReply *keys);
} pos_cluster_callbacks_t;

/* What the cluster client counted since init. */
typedef struct pos_cluster_stats {
    uint64_t moved;        /* -MOVED followed */
    uint64_t asked;        /* -ASK followed */
    uint64_t tryagain;     /* -TRYAGAIN resent */
    uint64_t refreshes;    /* CLUSTER SLOTS answered */
    uint64_t resubscribed; /* sharded channels subscribed again after their slot moved */
    uint64_t idle_closed;  /* command connections closed for idleness */
    uint64_t split;        /* MGETs split by slot */
    unsigned primaries;    /* in the current map */
    unsigned connections;  /* open or opening now */
    unsigned subscribers;  /* of those, subscriber connections */
    uint64_t probe_rtt_us; /* the home subscriber's last PING round trip; 0: none yet */
} pos_cluster_stats_t;

/*
 * Allocates and initialises a cluster client (no I/O) into *out. Returns 0
 * or a negative errno (-EINVAL for options out of range).
 */
int pos_cluster_init(uv_loop_t *loop, pos_cluster_t **out, const pos_cluster_options_t *opt,
                     const pos_cluster_callbacks_t *cb, void *data);

/* The owner's pointer given at init. */
void *pos_cluster_data(const pos_cluster_t *c);

/*
 * Key prefixes to track (CLIENT TRACKING BCAST) on every primary, copied;
 * n 0: none. Takes effect at the next attempt (call before the first).
 */
void pos_cluster_track(pos_cluster_t *c, const char *const *prefixes, size_t n);

/* Starts an attempt; on_ready or on_down follows. */
void pos_cluster_connect(pos_cluster_t *c);

/* Takes everything down with err (on_failing, then on_down); no-op unless
 * an attempt is under way or it is ready. */
void pos_cluster_fail(pos_cluster_t *c, int err);

/* Called every probe interval: PINGs each subscriber (home's answer times
 * probe_rtt_us), closes idle command connections, refreshes the map now
 * and then. */
void pos_cluster_probe(pos_cluster_t *c);

/*
 * Routes a command (see above). Returns 0 (cb is called once, with the
 * reply or an error), -ENOTCONN when not ready, -EINVAL for a command that
 * cannot be routed (SELECT, MULTI, SUBSCRIBE, KEYS...), -ENOBUFS or
 * -ENOMEM (cb is then not called).
 */
int pos_cluster_command(pos_cluster_t *c, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                        const size_t *lens);

/* True when ready and every node's command connection has spare room
 * (pos_conn_has_spare()), and no node has many commands waiting for it
 * to connect. */
bool pos_cluster_has_spare(const pos_cluster_t *c);

/* The home node's address (a seed before the first map), *port its port. */
const char *pos_cluster_home(const pos_cluster_t *c, uint16_t *port);

/* Counters, and the connections' own (added up) into *cs when not NULL. */
void pos_cluster_stats(const pos_cluster_t *c, pos_cluster_stats_t *st, pos_conn_stats_t *cs);

/*
 * Closes every connection and timer; done(c) runs once all are closed,
 * then the memory is freed (do not use c after done returns).
 */
void pos_cluster_close(pos_cluster_t *c, void (*done)(pos_cluster_t *c));

#endif /* AGENT_LINK_CLUSTER_H */
