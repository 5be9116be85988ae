#ifndef AGENT_LINK_SENTINEL_H
#define AGENT_LINK_SENTINEL_H

/*
 * Redis Sentinel client: finds the current master of a named group and
 * watches for failovers, following the Sentinel client guidelines.
 *
 * - Resolution: the sentinels are asked in order, one connection at a time
 *   (each with its own connect and command timeouts), with
 *   SENTINEL get-master-addr-by-name; the first one that answers with an
 *   address is moved to the front of the list for next time. When none
 *   answers, the caller's callback gets the error and the caller backs off.
 * - Watch: a subscriber connection to one sentinel listens on
 *   +switch-master; a switch of our master is reported at once. When that
 *   connection drops it is rebuilt, on the next sentinel, after a backoff
 *   delay.
 *
 * The caller verifies the role of the address it connects to (ROLE): a
 * sentinel's answer may be stale.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/link/conn.h"
#include "conf/sentinel_list.h"
#include "platform/backoff.h"

typedef struct pos_sentinel pos_sentinel_t;

/* Result of pos_sentinel_resolve(): err 0 and the master's address, or a
 * negative errno (host NULL) when no sentinel gave one. */
typedef void (*pos_sentinel_resolve_cb)(pos_sentinel_t *s, int err, const char *host,
                                        uint16_t port);

typedef struct pos_sentinel_callbacks {
    /* A sentinel announced that our master is now host:port. */
    void (*on_switch)(pos_sentinel_t *s, const char *host, uint16_t port);
    /* The +switch-master subscription is in place; "again" is true when it
     * had been lost before (a switch may have been missed meanwhile). May
     * be NULL. */
    void (*on_watch)(pos_sentinel_t *s, bool again);
} pos_sentinel_callbacks_t;

typedef struct pos_sentinel_options {
    const pos_sentinel_addr_t *addrs;     /* copied */
    size_t naddrs;                        /* 1..POS_SENTINEL_MAX */
    const char *master_name;              /* must outlive the client */
    const char *password;                 /* sentinel AUTH, NULL or "" for none; must outlive */
    /* CLIENT SETNAME on the sentinels (NULL: none), the connect timeout per
     * sentinel, the watcher's reconnect backoff, the transport. */
    pos_conn_reach_t reach;
    uint32_t random_seed; /* jitter; 0 is replaced by a constant */
} pos_sentinel_options_t;

struct pos_sentinel {
    void *data; /* owner's pointer */

    uv_loop_t *loop;
    pos_sentinel_options_t opt;
    pos_sentinel_callbacks_t cb;
    pos_sentinel_addr_t addrs[POS_SENTINEL_MAX]; /* the one that answered last first */
    size_t naddrs;

    /* Resolution: one query connection, sentinels tried in turn. */
    pos_conn_t query;
    pos_sentinel_resolve_cb resolve_cb; /* non-NULL while resolving */
    size_t tried;                       /* sentinels tried in this round */
    size_t asking;                      /* index of the one being asked */
    int resolve_err;                    /* first failure of this round */
    bool found;
    pos_sentinel_addr_t master; /* the answer */
    uint32_t failed_rounds;     /* rounds in a row without an answer */

    /* Watch: one subscriber connection on +switch-master. */
    pos_conn_t watch;
    size_t watch_index;
    uv_timer_t watch_timer;
    pos_backoff_t watch_backoff;
    uint32_t rng;
    bool started;
    bool watched_before;
    uint64_t watch_since_ms; /* loop time the watch's SUBSCRIBE was confirmed; 0: not up */

    bool closing;
    unsigned open_handles;
    void (*closed_cb)(pos_sentinel_t *s);
};

/* Initialises the client (no I/O). Returns 0 or -EINVAL (no sentinel,
 * too many, no master name). */
int pos_sentinel_init(uv_loop_t *loop, pos_sentinel_t *s, const pos_sentinel_options_t *opt,
                      const pos_sentinel_callbacks_t *cb);

/* Starts watching for +switch-master. */
void pos_sentinel_start(pos_sentinel_t *s);

/*
 * Asks the sentinels for the master's address; "cb" runs exactly once
 * (possibly before this returns, when no connection can even be started).
 * Returns 0 (cb will run), or -EBUSY when a resolution is already running,
 * or -ECANCELED when closing (cb will not run).
 */
int pos_sentinel_resolve(pos_sentinel_t *s, pos_sentinel_resolve_cb cb);

/*
 * The master the first sentinel named is not one (ROLE), or cannot be
 * reached: that sentinel goes last, so that the next resolution asks the
 * others first. A sentinel that lies or lags is not asked first for ever.
 */
void pos_sentinel_distrust_first(pos_sentinel_t *s);

/* Closes every connection and timer; "done" runs when the memory may be
 * freed. A pending resolution's callback is not called. */
void pos_sentinel_close(pos_sentinel_t *s, void (*done)(pos_sentinel_t *s));

/*
 * Pure: parses a +switch-master message
 * "<name> <old-ip> <old-port> <new-ip> <new-port>" (exactly five fields
 * separated by single spaces). Returns 0 with the new address in host
 * (NUL-terminated) and *port when it is about "name"; -ENOENT when it is
 * about another master; -EINVAL when malformed (bad field count, empty or
 * oversized field, a host character outside [A-Za-z0-9.:_%-], a port not
 * in 1..65535).
 */
int pos_sentinel_parse_switch(const char *msg, size_t len, const char *name, char *host,
                              size_t hostlen, uint16_t *port);

/*
 * Pure: parses the reply to SENTINEL get-master-addr-by-name: a two-string
 * array [ip, port]. Returns 0, -ENOENT for a nil (unknown master) or
 * -EPROTO for anything else (including an error reply).
 */
int pos_sentinel_parse_master_reply(const redisReply *r, char *host, size_t hostlen,
                                    uint16_t *port);

/* Pure: true when a ROLE reply says "master". */
bool pos_sentinel_role_is_master(const redisReply *r);

#endif /* AGENT_LINK_SENTINEL_H */
