/*
 * A Redis Cluster node that misbehaves (a fake server in this test,
 * tests/support/fake_redis.h), against the agent's cluster client:
 *
 * - a malformed CLUSTER SLOTS: refused with one line, never online, retried
 *   at the backoff pace, not in a loop;
 * - -MOVED to itself forever: each command gives up after 5 redirections
 *   with the error, and the agent stays online;
 * - the lease script (taken before subscribing) answered with -MOVED or
 *   a malformed reply: never online, nothing subscribed, retried at the
 *   backoff pace;
 * - -CLUSTERDOWN: the link goes down and comes back at the backoff pace;
 * - a flood of "sunsubscribe" pushes (for channels it never had, for a
 *   classic channel) and of malformed "smessage" pushes: ignored, the
 *   agent stays online and its heartbeat goes on.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/fake_redis.h"
#include "tests/support/fixture.h"

typedef enum mode {
    MODE_OK = 0,    /* a one-node cluster that answers */
    MODE_BAD_SLOTS, /* CLUSTER SLOTS malformed */
    MODE_LOOP,      /* keyed commands: -MOVED to itself */
    MODE_DOWN,      /* keyed commands: -CLUSTERDOWN */
    MODE_GATE_LOOP, /* the lease script: -MOVED to itself */
    MODE_GATE_JUNK, /* the lease script: an array */
} mode_t_;

typedef struct node {
    pos_fake_redis_t *fk;
    atomic_int mode;
    atomic_int sets;  /* SET commands seen */
    atomic_int slots; /* CLUSTER SLOTS asked */
    atomic_int sub;   /* the connection that subscribed, or -1 */
    atomic_int evals; /* EVAL commands seen (the lease) */
} node_t;

/* The fake node's answers. */
static void node_cmd(pos_fake_redis_t *fk, int c, const redisReply *cmd, void *arg)
{
    node_t *n = arg;
    uint16_t port = pos_fake_redis_port(fk);
    int mode = atomic_load(&n->mode);

    if (cmd->type != REDIS_REPLY_ARRAY || cmd->elements == 0) {
        return;
    }
    if (pos_fake_redis_arg_is(cmd, 0, "CLUSTER")) {
        atomic_fetch_add(&n->slots, 1);
        if (mode == MODE_BAD_SLOTS) {
            pos_fake_redis_sendf(fk, c,
                                 "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$9\r\n127.0.0.1\r\n:%u\r\n",
                                 (unsigned)port);
        } else {
            pos_fake_redis_sendf(fk, c,
                                 "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%u\r\n",
                                 (unsigned)port);
        }
    } else if (pos_fake_redis_arg_is(cmd, 0, "CLIENT") && pos_fake_redis_arg_is(cmd, 1, "ID")) {
        pos_fake_redis_sendf(fk, c, ":%d\r\n", c + 1);
    } else if (pos_fake_redis_arg_is(cmd, 0, "SUBSCRIBE") ||
               pos_fake_redis_arg_is(cmd, 0, "SSUBSCRIBE")) {
        const char *kind = cmd->element[0]->len == 9 ? "subscribe" : "ssubscribe";
        atomic_store(&n->sub, c);
        for (size_t i = 1; i < cmd->elements; i++) {
            pos_fake_redis_sendf(fk, c, "*3\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n:%zu\r\n", strlen(kind),
                                 kind, cmd->element[i]->len, cmd->element[i]->str, i);
        }
    } else if (pos_fake_redis_arg_is(cmd, 0, "PING")) {
        pos_fake_redis_sendf(
            fk, c, atomic_load(&n->sub) == c ? "*2\r\n$4\r\npong\r\n$0\r\n\r\n" : "+PONG\r\n");
    } else if (pos_fake_redis_arg_is(cmd, 0, "AUTH") || pos_fake_redis_arg_is(cmd, 0, "CLIENT")) {
        pos_fake_redis_sendf(fk, c, "+OK\r\n");
    } else if (pos_fake_redis_arg_is(cmd, 0, "EVAL")) {
        /* The lease on the terminal id, taken before subscribing. */
        atomic_fetch_add(&n->evals, 1);
        if (mode == MODE_GATE_LOOP) {
            pos_fake_redis_sendf(fk, c, "-MOVED 7 127.0.0.1:%u\r\n", (unsigned)port);
        } else if (mode == MODE_GATE_JUNK) {
            pos_fake_redis_sendf(fk, c, "*2\r\n:1\r\n$1\r\nx\r\n");
        } else {
            pos_fake_redis_sendf(fk, c, ":1\r\n");
        }
    } else if (mode == MODE_LOOP) {
        atomic_fetch_add(&n->sets, pos_fake_redis_arg_is(cmd, 0, "SET"));
        pos_fake_redis_sendf(fk, c, "-MOVED 7 127.0.0.1:%u\r\n", (unsigned)port);
    } else if (mode == MODE_DOWN) {
        pos_fake_redis_sendf(fk, c, "-CLUSTERDOWN The cluster is down\r\n");
    } else if (pos_fake_redis_arg_is(cmd, 0, "SET")) {
        atomic_fetch_add(&n->sets, 1);
        pos_fake_redis_sendf(fk, c, "+OK\r\n");
    } else if (pos_fake_redis_arg_is(cmd, 0, "MGET")) {
        char buf[64];
        int k = snprintf(buf, sizeof(buf), "*%zu\r\n", cmd->elements - 1);
        pos_fake_redis_send(fk, c, buf, (size_t)k);
        for (size_t i = 1; i < cmd->elements; i++) {
            pos_fake_redis_sendf(fk, c, "$-1\r\n");
        }
    } else if (pos_fake_redis_arg_is(cmd, 0, "SSCAN") || pos_fake_redis_arg_is(cmd, 0, "SCAN")) {
        pos_fake_redis_sendf(fk, c, "*2\r\n$1\r\n0\r\n*0\r\n");
    } else if (pos_fake_redis_arg_is(cmd, 0, "GET")) {
        pos_fake_redis_sendf(fk, c, "$-1\r\n");
    } else {
        pos_fake_redis_sendf(fk, c, ":1\r\n");
    }
}

typedef struct fixture {
    pos_fix_t fx;
    node_t node;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    pos_fix_init(&f->fx);
    atomic_store(&f->node.sub, -1);
    f->node.fk = pos_fake_redis_start(node_cmd, &f->node);
    if (f->node.fk == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_fix_stop(&f->fx);
    pos_fake_redis_stop(f->node.fk);
    free(f);
    return 0;
}

static void start_agent(fixture_t *f, int mode)
{
    atomic_store(&f->node.mode, mode);
    pos_ini_set(&f->fx.ini, "redis", "url", "redis://127.0.0.1:1");
    pos_ini_set(&f->fx.ini, "redis", "cluster_nodes", "127.0.0.1:%u",
                (unsigned)pos_fake_redis_port(f->node.fk));
    pos_fix_set_retry(&f->fx, 100, 500);
    pos_fix_set_heartbeat(&f->fx, 1, 10);
    pos_fix_agent_start(&f->fx, NULL);
}

/* A malformed map: refused, said once per attempt, retried at the backoff
 * pace; never online. */
static void test_bad_slots(void **state)
{
    fixture_t *f = *state;

    start_agent(f, MODE_BAD_SLOTS);
    pos_fix_wait_log(&f->fx, "CLUSTER SLOTS: slot out of range (entry 1)", 3, 10000);
    uint64_t t0 = pos_test_now_ms();
    int asked = atomic_load(&f->node.slots);
    pos_test_sleep_ms(2000);
    int per_2s = atomic_load(&f->node.slots) - asked;
    fprintf(stderr, "malformed map: asked %d times in %u ms\n", per_2s,
            (unsigned)(pos_test_now_ms() - t0));
    /* The cap is 500 ms: about 4-8 asks in 2 s, never a loop. */
    assert_true(per_2s >= 1 && per_2s <= 25);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
}

/* -MOVED to itself: every command gives up after its redirections, the
 * heartbeat says why, the link stays up. */
static void test_redirect_loop(void **state)
{
    fixture_t *f = *state;

    start_agent(f, MODE_LOOP);
    pos_fix_wait_online(&f->fx, 1, 10000);
    pos_fix_wait_log(&f->fx, "heartbeat refused: MOVED 7", 2, 10000);
    int sets0 = atomic_load(&f->node.sets);
    pos_test_sleep_ms(3000);
    int sets = atomic_load(&f->node.sets) - sets0;
    fprintf(stderr, "redirect loop: %d SETs in 3 s (heartbeat 1 s, 6 tries each)\n", sets);
    assert_true(sets >= 6 && sets <= 6 * 5);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 1);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: offline"), 0);
    /* The local API still answers (from the cache, or with the error). */
    redisContext *c = pos_fix_local(&f->fx);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "GET product:P-1");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

/*
 * The lease script (the check before subscribing) answered with -MOVED to
 * the node itself, then with a malformed reply: never online, nothing
 * subscribed, retried at the backoff pace (not in a loop), one line per
 * attempt; a good answer later brings the link up.
 */
static void test_gate_abuse(void **state)
{
    fixture_t *f = *state;

    start_agent(f, MODE_GATE_LOOP);
    pos_fix_wait_log(&f->fx, "the check before subscribing was answered MOVED 7", 3, 10000);
    int evals = atomic_load(&f->node.evals);
    pos_test_sleep_ms(2000);
    evals = atomic_load(&f->node.evals) - evals;
    fprintf(stderr, "lease answered -MOVED: asked %d times in 2 s\n", evals);
    /* Full jitter up to the 500 ms cap: about 8 in 2 s, never hundreds. */
    assert_true(evals >= 1 && evals <= 40);
    assert_int_equal(atomic_load(&f->node.sub), -1);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);

    atomic_store(&f->node.mode, MODE_GATE_JUNK);
    evals = atomic_load(&f->node.evals);
    pos_test_sleep_ms(2000);
    evals = atomic_load(&f->node.evals) - evals;
    fprintf(stderr, "lease answered with an array: asked %d times in 2 s\n", evals);
    assert_true(evals >= 1 && evals <= 40);
    assert_int_equal(atomic_load(&f->node.sub), -1);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
    assert_true(pos_test_agent_alive(&f->fx.agent));

    atomic_store(&f->node.mode, MODE_OK);
    pos_fix_wait_online(&f->fx, 1, 5000);
    assert_true(atomic_load(&f->node.sub) >= 0);
}

/* -CLUSTERDOWN: down, back at the backoff pace, then up for good once the
 * node answers again. */
static void test_clusterdown(void **state)
{
    fixture_t *f = *state;

    start_agent(f, MODE_OK);
    pos_fix_wait_online(&f->fx, 1, 10000);
    atomic_store(&f->node.mode, MODE_DOWN);
    pos_fix_wait_log(&f->fx, "link: offline", 1, 5000);
    pos_test_sleep_ms(3000);
    int onlines = pos_test_agent_log_count(&f->fx.agent, "link: online");
    fprintf(stderr, "cluster down: %d sessions in 3 s\n", onlines);
    /* Each retry waits its backoff delay (full jitter up to the 500 ms cap
     * here, about 250 ms on average): a dozen sessions, not hundreds. */
    assert_true(onlines <= 40);
    atomic_store(&f->node.mode, MODE_OK);
    pos_fix_wait_online(&f->fx, onlines + 1, 5000);
    int sets = atomic_load(&f->node.sets);
    pos_test_sleep_ms(2500);
    assert_true(atomic_load(&f->node.sets) > sets); /* heartbeats again */
}

/* Pushes nobody asked for, by the thousand. */
static void test_push_flood(void **state)
{
    fixture_t *f = *state;
    static char flood[64 * 1024];
    size_t len = 0;

    start_agent(f, MODE_OK);
    pos_fix_wait_online(&f->fx, 1, 10000);
    int sub = atomic_load(&f->node.sub);
    assert_true(sub >= 0);
    for (int i = 0; len + 200 < sizeof(flood); i++) {
        switch (i % 4) {
        case 0: /* a classic channel: not a sharded subscription */
            len += (size_t)snprintf(flood + len, sizeof(flood) - len,
                                    "*3\r\n$12\r\nsunsubscribe\r\n$14\r\npayment:" POS_FIX_TID
                                    "\r\n:0\r\n");
            break;
        case 1: /* a channel never subscribed */
            len +=
                (size_t)snprintf(flood + len, sizeof(flood) - len,
                                 "*3\r\n$12\r\nsunsubscribe\r\n$6\r\nx:%04d\r\n:0\r\n", i % 10000);
            break;
        case 2: /* malformed: not a string */
            len += (size_t)snprintf(flood + len, sizeof(flood) - len,
                                    "*3\r\n$8\r\nsmessage\r\n:5\r\n$2\r\n{}\r\n");
            break;
        default:
            len += (size_t)snprintf(flood + len, sizeof(flood) - len,
                                    "*3\r\n$8\r\nsmessage\r\n$8\r\nsystem:x\r\n*0\r\n");
            break;
        }
    }
    for (int round = 0; round < 20; round++) {
        assert_int_equal(pos_fake_redis_send(f->node.fk, sub, flood, len), 0);
    }
    int sets = atomic_load(&f->node.sets);
    pos_test_sleep_ms(2500);
    assert_true(atomic_load(&f->node.sets) > sets); /* heartbeats go on */
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 1);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "subscribing on the new owner"), 0);
    assert_true(pos_test_agent_alive(&f->fx.agent));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_abuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clusterdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_flood, setup, teardown),
    };
    return cmocka_run_group_tests_name("cluster abuse", tests, NULL, NULL);
}
