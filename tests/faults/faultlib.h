#ifndef TESTS_FAULTS_FAULTLIB_H
#define TESTS_FAULTS_FAULTLIB_H

/*
 * Helpers shared by the fault-injection tests (tests/faults), on top of
 * the shared fixture (tests/support/fixture.h): what the cloud sees
 * (status key, messages on channels, the agent's Redis clients) and what a
 * till sends (the local API socket).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "tests/support/fixture.h"

#define FL_TID        POS_FIX_TID
#define FL_SID        POS_FIX_SID
#define FL_STATUS_KEY POS_FIX_STATUS_KEY
#define FL_CHANNEL                                                                                 \
    "transaction:" FL_SID /* what the outbox tests publish on (the local API                       \
                           * publishes on its store's channels only) */

/* True when POS_FAULTS_LONG=1: long variants (minutes) run. */
bool fl_long(void);

/* POS_FAULTS_FILTER=pattern runs only the matching tests (cmocka filter). */
void fl_filter(void);

/* Milliseconds until the log holds n lines with needle, or -1. */
long fl_wait_log_ms(const pos_test_agent_t *a, const char *needle, int n, int timeout_ms);

/* The agent's Redis clients (name posagent:<id>): how many, and the ids of
 * the command and subscriber connections (0 when absent). */
int fl_agent_clients(const pos_test_redis_t *r, long long *cmd_id, long long *sub_id);

/* PUBLISH channel {"type":"FAULT_SEQ","seq":seq} through the local API;
 * true when the agent accepted it into the outbox. */
bool fl_local_publish_seq(redisContext *c, const char *channel, int seq);

/* The messages seen on a channel: seq and outboxId, in arrival order. */
typedef struct fl_seen {
    int n;
    int seq[4096];
    long long outbox_id[4096];
} fl_seen_t;

/* Reads FAULT_SEQ messages from s into seen until "want" distinct seqs
 * arrived or timeout. Returns the number of distinct seqs. */
int fl_collect(pos_test_sub_t *s, fl_seen_t *seen, int want, int timeout_ms);

/*
 * The at-least-once check: every seq 1..k arrived, first arrivals are in
 * order (1, 2, ..., k), outboxIds grow with seq, and a repeat is only ever
 * a redelivery of a message already seen (duplicates are allowed by the
 * contract: the cloud de-duplicates on (terminalId, outboxId); a repeat must
 * carry the outboxId of its first arrival). Returns
 * the number of duplicates, or -1 (with the reason on stderr).
 */
int fl_check_order(const fl_seen_t *seen, int k);

/* Count of open file descriptors of a process (-1 if unknown). */
int fl_fd_count(pid_t pid);

#endif /* TESTS_FAULTS_FAULTLIB_H */
