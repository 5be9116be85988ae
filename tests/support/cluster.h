#ifndef TESTS_SUPPORT_CLUSTER_H
#define TESTS_SUPPORT_CLUSTER_H

/*
 * A Redis Cluster on loopback for the tests: N redis-server processes
 * with --cluster-enabled yes (free ports, own directories), joined by
 * "redis-cli --cluster create ... --cluster-replicas R", and a small
 * cluster client for the test's own commands (it follows -MOVED and
 * -ASK, as the cloud's ioredis would).
 *
 *     pos_test_cluster_t c;
 *     pos_test_cluster_start(&c, 3, 1, 1500);     3 primaries, 1 replica each
 *     pos_test_cluster_cmd(&c, "SET %s %s", k, v);  routed by the key's slot
 *     pos_test_cluster_move_slot(&c, slot, to, 0);  a live migration
 *     pos_test_cluster_stop(&c);
 */

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "tests/support/harness.h"

#define POS_TEST_CLUSTER_MAX 8

typedef struct pos_test_cluster {
    pos_test_redis_t node[POS_TEST_CLUSTER_MAX];
    int n;
    char timeout[16];                       /* cluster-node-timeout, ms */
    char bus_port[POS_TEST_CLUSTER_MAX][8]; /* cluster-port of each node (not port + 10000,
                                             * which may be taken or past 65535) */
} pos_test_cluster_t;

/*
 * Starts primaries x (1 + replicas) nodes with cluster-node-timeout
 * node_timeout_ms, creates the cluster and waits until every node says
 * cluster_state:ok and every replica is in sync. Returns 0, or -1 after
 * printing why (nothing is left running).
 */
int pos_test_cluster_start(pos_test_cluster_t *c, int primaries, int replicas, int node_timeout_ms);

/* Stops every node and removes their directories. */
void pos_test_cluster_stop(pos_test_cluster_t *c);

/* Restarts node i (after a kill) on its port and directory: it rejoins
 * with its nodes.conf. Returns 0 or -1. */
int pos_test_cluster_restart(pos_test_cluster_t *c, int i);

/* Waits until every running node reports cluster_state:ok and agrees on
 * who owns every slot. Returns the ms waited or -1. */
long pos_test_cluster_wait_ok(const pos_test_cluster_t *c, int timeout_ms);

/* "127.0.0.1:p1,127.0.0.1:p2,..." of the first count nodes (0: all). */
void pos_test_cluster_seeds(const pos_test_cluster_t *c, char *buf, size_t cap, int count);

/* The slot of key (CLUSTER KEYSLOT), or -1. */
int pos_test_cluster_slot(const pos_test_cluster_t *c, const char *key);

/* The index of the node that a running node says owns slot, or -1. */
int pos_test_cluster_owner(const pos_test_cluster_t *c, int slot);

/* True when node i runs and ROLE says "master". */
bool pos_test_cluster_is_primary(const pos_test_cluster_t *c, int i);

/* A primary other than node "not" (-1: any), or -1. */
int pos_test_cluster_other_primary(const pos_test_cluster_t *c, int not );

/*
 * One command routed like a cluster client (by asking a running node and
 * following -MOVED / -ASK up to 5 times); NULL when no node answers.
 * Free the reply.
 */
redisReply *pos_test_cluster_cmd(const pos_test_cluster_t *c, const char *fmt, ...);

/* GET key through pos_test_cluster_cmd (malloc'd) or NULL. */
char *pos_test_cluster_get(const pos_test_cluster_t *c, const char *key);

/*
 * Moves slot to node "to" the way redis-cli --cluster reshard does:
 * IMPORTING on "to", MIGRATING on the owner, MIGRATE of its keys in
 * batches, then SETSLOT NODE on every primary. When pause_ms > 0, waits
 * that long after the first half of the keys has moved (the slot is then
 * half here, half there: -ASK). Returns 0 or -1.
 */
int pos_test_cluster_move_slot(pos_test_cluster_t *c, int slot, int to, int pause_ms);

#endif /* TESTS_SUPPORT_CLUSTER_H */
