#ifndef AGENT_LINK_TOPOLOGY_H
#define AGENT_LINK_TOPOLOGY_H

/*
 * Redis Cluster topology (pure): which primary owns each of the 16384
 * slots, from a CLUSTER SLOTS reply, updated by -MOVED redirections; and
 * the parser of -MOVED / -ASK errors. Replicas are not recorded: the agent
 * reads and writes on primaries only.
 *
 * A node's address in CLUSTER SLOTS may be empty or nil ("the address you
 * asked"): the asking node's host is used. "?" (no usable endpoint) leaves
 * its slots without an owner.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "agent/link/slot.h"
#include "conf/redis_url.h"

#define POS_TOPOLOGY_NODES_MAX 64 /* primaries a map holds */

typedef struct pos_topology_addr {
    char host[POS_URL_HOST_MAX];
    uint16_t port;
} pos_topology_addr_t;

typedef struct pos_topology {
    uint8_t owner[POS_SLOT_COUNT]; /* index + 1 into nodes; 0: no owner known */
    pos_topology_addr_t nodes[POS_TOPOLOGY_NODES_MAX];
    size_t nnodes;
} pos_topology_t;

/* A -MOVED or -ASK error. An empty host means "the node that replied". */
typedef struct pos_topology_redirect {
    bool ask;
    uint16_t slot;
    char host[POS_URL_HOST_MAX];
    uint16_t port;
} pos_topology_redirect_t;

/* Empties the map (no slot has an owner). */
void pos_topology_clear(pos_topology_t *t);

/*
 * Fills t (cleared first) from a CLUSTER SLOTS reply r received from a node
 * reached as asked_host. Returns 0, or -EPROTO for a malformed reply /
 * -ENOSPC for more than POS_TOPOLOGY_NODES_MAX primaries, with a one-line
 * reason in why (t is then empty).
 */
int pos_topology_from_slots(pos_topology_t *t, const redisReply *r, const char *asked_host,
                            char *why, size_t whylen);

/* Index of host:port among t's nodes, or -1. */
int pos_topology_find(const pos_topology_t *t, const char *host, uint16_t port);

/*
 * Records that host:port owns slot (a -MOVED), adding the node when new.
 * Returns the node's index, or -ENOSPC when the map is full.
 */
int pos_topology_set(pos_topology_t *t, uint16_t slot, const char *host, uint16_t port);

/* The node owning slot, or NULL when none is known. */
const pos_topology_addr_t *pos_topology_owner(const pos_topology_t *t, uint16_t slot);

/* Number of slots with an owner. */
size_t pos_topology_covered(const pos_topology_t *t);

/*
 * Parses a Redis error reply's text (without the leading '-'):
 * "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>". Returns 0,
 * -ENOENT when it is neither, or -EPROTO when it is one but malformed.
 */
int pos_topology_parse_redirect(const char *msg, size_t len, pos_topology_redirect_t *out);

#endif /* AGENT_LINK_TOPOLOGY_H */
