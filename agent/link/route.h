#ifndef AGENT_LINK_ROUTE_H
#define AGENT_LINK_ROUTE_H

/*
 * Where a command goes in a Redis Cluster (pure): by the slot of its key,
 * anywhere, or nowhere. The rule for commands not named here is "argv[1]
 * is the key" (GET, SET, INCRBY, SADD, SSCAN, ZADD, ...); a multi-key
 * command other than MGET is routed by its first key and Redis itself
 * answers -CROSSSLOT when its keys do not share a slot.
 */

#include <stddef.h>

typedef enum pos_route_kind {
    POS_ROUTE_KEY = 0, /* argv[key]'s slot */
    POS_ROUTE_MGET,    /* MGET: argv[1..argc) split by slot, the answer put back together */
    POS_ROUTE_ANY,     /* no key (PING, CLIENT, CLUSTER, EVAL with no keys, ...): any node */
    POS_ROUTE_SCAN,    /* SCAN: every primary in turn, behind one cursor */
    POS_ROUTE_PUBLISH, /* PUBLISH argv[1]: any node, or SPUBLISH on its slot when sharded */
    POS_ROUTE_REFUSED, /* cannot be routed (SELECT, MULTI, SUBSCRIBE, KEYS, ...) */
} pos_route_kind_t;

typedef struct pos_route {
    pos_route_kind_t kind;
    int key; /* POS_ROUTE_KEY: index of the key in argv */
} pos_route_t;

/* Classifies argv[0..argc) (lens[i] bytes each). Returns the route; a
 * command with no name (argc < 1) is POS_ROUTE_REFUSED. */
pos_route_t pos_route_classify(int argc, const char **argv, const size_t *lens);

#endif /* AGENT_LINK_ROUTE_H */
