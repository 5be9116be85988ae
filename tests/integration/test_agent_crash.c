/*
 * kill -9 of the agent itself, at random moments, 200 times in a loop,
 * while it writes hard to its store: the POS application publishes through
 * the local API (outbox appends) and reads products (read-through cache
 * writes), and the cloud sends inventory updates (cache writes). Every
 * other round the agent is cut off from Redis, so the outbox grows.
 *
 * A PUBLISH is "acknowledged" when its reply reached the client, even if
 * the kill came right after. Checked:
 *   - the store opens every time (never moved aside as corrupt);
 *   - kills that land between a group's write-ahead log record and its
 *     LMDB commit happen (the store applies the record again at the next
 *     start: docs/offline.md), and lose nothing either;
 *   - once the agent runs undisturbed, a subscriber has received every
 *     acknowledged message (at-least-once: repeats allowed), and messages
 *     first arrived in the order they were published.
 *
 * test_store_crash does the same against the store alone (a forked child);
 * this one goes through the whole agent. POS_CRASH_ROUNDS and
 * POS_CRASH_SEED override the round count and the random seed.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/support/fixture.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID
#define CHANNEL                                                                                    \
    "transaction:" SID /* the till's own store channel: the only one the local API publishes on */
#define PRODUCTS 2000
#define MAX_SEQ  (1u << 20)
#define BATCH    20 /* PUBLISH + GET pairs per pipelined batch */

typedef struct fixture {
    pos_fix_t fx;
    redisContext *cloud; /* as user "cloud": unaffected by the cut-off */
    redisContext *sub;
    char sock[400];
    uint8_t *acked;      /* per sequence number: 1 when its PUBLISH was answered */
    uint8_t *received;   /* per sequence number: 1 once the subscriber saw it */
    uint32_t next_seq;   /* next sequence number to publish */
    uint32_t last_first; /* highest sequence number seen for the first time */
    uint32_t out_of_order;
    uint32_t repeats;
} fixture_t;

static unsigned rand_below(unsigned n)
{
    return (unsigned)(rand() % (int)n);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_start(&f->fx) != 0) {
        free(f);
        return -1;
    }
    f->acked = calloc(MAX_SEQ, 1);
    f->received = calloc(MAX_SEQ, 1);
    f->cloud = pos_test_cloud_connect(&f->fx.redis);
    f->sub = pos_test_cloud_connect(&f->fx.redis);
    assert_non_null(f->acked);
    assert_non_null(f->received);
    assert_non_null(f->cloud);
    assert_non_null(f->sub);
    redisReply *r = redisCommand(f->sub, "SUBSCRIBE " CHANNEL);
    assert_non_null(r);
    freeReplyObject(r);
    f->next_seq = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    redisFree(f->cloud);
    redisFree(f->sub);
    pos_fix_stop(&f->fx);
    free(f->acked);
    free(f->received);
    free(f);
    return 0;
}

/* Takes in whatever the subscriber has, waiting at most wait_ms for more. */
static unsigned drain(fixture_t *f, int wait_ms)
{
    unsigned n = 0;
    for (;;) {
        void *reply = NULL;
        assert_int_equal(redisReaderGetReply(f->sub->reader, &reply), REDIS_OK);
        if (reply == NULL) {
            struct pollfd p = {.fd = f->sub->fd, .events = POLLIN};
            if (poll(&p, 1, wait_ms) <= 0) {
                return n;
            }
            assert_int_equal(redisBufferRead(f->sub), REDIS_OK);
            continue;
        }
        redisReply *r = reply;
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        /* {"type":"POS_EVENT","seq":N,...} as stamped by the agent */
        const char *at = strstr(r->element[2]->str, "\"seq\":");
        unsigned long seq = at != NULL ? strtoul(at + 6, NULL, 10) : 0;
        assert_true(seq > 0 && seq < MAX_SEQ);
        if (f->received[seq]) {
            f->repeats++; /* a redelivery: the crash cut off its acknowledgement */
        } else {
            f->received[seq] = 1;
            if (seq < f->last_first) {
                f->out_of_order++;
            }
            f->last_first = (uint32_t)seq;
        }
        n++;
        freeReplyObject(r);
    }
}

/* Fast retries, a store big enough for every round's outbox, and only
 * info lines: the agent is started 200 times. */
static void configure(fixture_t *f)
{
    pos_ini_t *ini = &f->fx.ini;
    pos_fix_set_retry(&f->fx, 20, 100);
    pos_ini_set(ini, "store", "path", "%s/store", f->fx.agent.dir);
    pos_ini_set(ini, "store", "map_size_mb", "256");
    pos_ini_set(ini, "store", "outbox_max_entries", "1000000");
    pos_ini_set(ini, "store", "outbox_max_mb", "128");
    pos_ini_set(ini, "log", "level", "info");
}

/* Connects to the local API, retrying until the agent listens. */
static redisContext *local_connect(fixture_t *f)
{
    uint64_t until = pos_test_now_ms() + 10000;
    struct timeval tv = {5, 0};
    for (;;) {
        redisContext *c = redisConnectUnixWithTimeout(f->sock, tv);
        if (c != NULL && c->err == 0) {
            redisSetTimeout(c, tv);
            return c;
        }
        redisFree(c);
        assert_true(pos_test_now_ms() < until);
        pos_test_sleep_ms(2);
    }
}

/* Sends one batch; returns the first sequence number it used. */
static uint32_t send_batch(fixture_t *f, redisContext *c)
{
    uint32_t first = f->next_seq;
    for (unsigned i = 0; i < BATCH; i++) {
        uint32_t seq = f->next_seq++;
        assert_true(seq < MAX_SEQ);
        redisAppendCommand(c, "PUBLISH " CHANNEL " {\"type\":\"POS_EVENT\",\"seq\":%u}",
                           (unsigned)seq);
        redisAppendCommand(c, "GET product:P-%u", rand_below(PRODUCTS));
    }
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            break; /* the agent is gone: what was answered still counts */
        }
    }
    return first;
}

/* Reads the batch's replies; stops at the first missing one (agent killed).
 * Returns how many PUBLISHes were acknowledged. */
static unsigned read_batch(fixture_t *f, redisContext *c, uint32_t first)
{
    unsigned acked = 0;
    for (unsigned i = 0; i < 2 * BATCH; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) {
            break;
        }
        redisReply *r = reply;
        if (i % 2 == 0) {
            /* PUBLISH: the place in the outbox. An error is a refusal (the
             * message was not taken), which must not happen here. */
            assert_int_equal(r->type, REDIS_REPLY_INTEGER);
            f->acked[first + i / 2] = 1;
            acked++;
        } else {
            assert_true(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
        }
        freeReplyObject(r);
    }
    return acked;
}

static void cloud_inventory_updates(fixture_t *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        unsigned p = rand_below(PRODUCTS);
        redisAppendCommand(f->cloud,
                           "PUBLISH inventory:" SID
                           " {\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID
                           "\",\"productId\":\"P-%u\",\"quantity\":%u,\"lowStockThreshold\":5}",
                           p, rand_below(100));
    }
    for (unsigned i = 0; i < n; i++) {
        void *r = NULL;
        assert_int_equal(redisGetReply(f->cloud, &r), REDIS_OK);
        freeReplyObject(r);
    }
}

static void test_kill9_loop(void **state)
{
    fixture_t *f = *state;
    const char *env_rounds = getenv("POS_CRASH_ROUNDS");
    const char *env_seed = getenv("POS_CRASH_SEED");
    unsigned rounds = env_rounds != NULL ? (unsigned)strtoul(env_rounds, NULL, 10) : 200;
    unsigned seed = env_seed != NULL ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
    unsigned acked = 0, kills_unanswered = 0;

    print_message("agent crash loop: %u rounds, seed %u (POS_CRASH_SEED)\n", rounds, seed);
    srand(seed);
    for (unsigned i = 0; i < PRODUCTS; i++) {
        redisAppendCommand(f->cloud, "SET product:P-%u {\"id\":\"P-%u\",\"price\":%u}", i, i, i);
    }
    for (unsigned i = 0; i < PRODUCTS; i++) {
        void *r = NULL;
        assert_int_equal(redisGetReply(f->cloud, &r), REDIS_OK);
        freeReplyObject(r);
    }

    /* The agent's directory exists before its first start: the ini names
     * the store in it (the harness keeps a directory it is given). */
    snprintf(f->fx.agent.dir, sizeof(f->fx.agent.dir), "/tmp/posagent-crash.XXXXXX");
    assert_non_null(mkdtemp(f->fx.agent.dir));
    snprintf(f->sock, sizeof(f->sock), "%s/agent.sock", f->fx.agent.dir);
    configure(f);

    for (unsigned round = 0; round < rounds; round++) {
        bool offline = round % 2 == 1;
        pos_test_cut_off(f->cloud, offline);
        pos_fix_agent_start(&f->fx, NULL);
        redisContext *c = local_connect(f);
        if (!offline) {
            cloud_inventory_updates(f, 20);
        }
        /* Whole batches for a while, then one cut short by the kill. */
        uint64_t until = pos_test_now_ms() + rand_below(100);
        while (pos_test_now_ms() < until) {
            acked += read_batch(f, c, send_batch(f, c));
        }
        /* Each PUBLISH is a durable commit: a batch takes tens of ms, so a
         * kill within 40 ms lands before, inside or after it. */
        uint32_t first = send_batch(f, c);
        struct timespec ts = {0, (long)rand_below(40000) * 1000};
        nanosleep(&ts, NULL);
        assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGKILL, 2000), 128 + SIGKILL);
        unsigned got = read_batch(f, c, first);
        acked += got;
        kills_unanswered += got < BATCH; /* killed while (or before) writing it */
        redisFree(c);
        drain(f, 0);
    }

    /* Undisturbed now: everything acknowledged must come out, in order. */
    pos_test_cut_off(f->cloud, false);
    pos_fix_agent_start(&f->fx, NULL);
    redisContext *c = local_connect(f);
    uint64_t until = pos_test_now_ms() + 120000;
    long long left;
    while ((left = pos_fix_local_info(c, "outbox", "outbox_entries")) != 0) {
        assert_true(pos_test_now_ms() < until);
        drain(f, 100);
    }
    redisFree(c);
    while (drain(f, 1000) > 0) {
    }
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);

    unsigned lost = 0, delivered = 0;
    for (uint32_t s = 1; s < f->next_seq; s++) {
        lost += f->acked[s] && !f->received[s];
        delivered += f->received[s];
    }
    char *log = pos_test_agent_log_read(&f->fx.agent);
    assert_non_null(log);
    bool corrupt = strstr(log, "unusable") != NULL || strstr(log, "moved aside") != NULL;
    free(log);
    int replays = pos_test_agent_log_count(&f->fx.agent, "applied again from the write-ahead log");
    print_message("agent crash loop: %d starts applied commits again from the write-ahead log\n",
                  replays);
    /* LMDB's own short file (free pages at its end), kept, not moved aside. */
    print_message("agent crash loop: %d starts found data.mdb ending in free pages\n",
                  pos_test_agent_log_count(&f->fx.agent, "free page"));
    print_message(
        "agent crash loop: %u published, %u acknowledged, %u delivered "
        "(%u redelivered), %u kills before a batch was answered, %u lost, %u out of order\n",
        (unsigned)(f->next_seq - 1), acked, delivered, (unsigned)f->repeats, kills_unanswered, lost,
        (unsigned)f->out_of_order);
    assert_false(corrupt);
    assert_int_equal(lost, 0);
    assert_int_equal(f->out_of_order, 0);
    assert_true(acked > rounds); /* the loop did real work */
    /* The log's path was taken: most kills land while LMDB lags behind it. */
    assert_true(rounds < 20 || replays > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_loop, setup, teardown),
    };
    return cmocka_run_group_tests_name("agent_crash", tests, NULL, NULL);
}
