/*
 * Server faults (docs/faults.md): Redis itself misbehaves while the agent
 * is connected on loopback: DEBUG SLEEP past the command timeout, CLIENT
 * KILL of either connection, a subscriber disconnected by
 * client-output-buffer-limit, FLUSHALL, a restart with an empty dataset,
 * maxclients reached. The test's own clients play the cloud.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/faults/faultlib.h"

/* The fixture, with DEBUG allowed on its Redis (DEBUG SLEEP). */
static int setup(void **state)
{
    pos_fix_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    pos_fix_init(f);
    f->redis.extra[0] = "--enable-debug-command";
    f->redis.extra[1] = "yes";
    if (pos_fix_redis_start(f) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Heartbeat every 2 s (ttl 6 s), command timeout 1 s, backoff 100 ms to
 * 1 s. */
static void start_agent(pos_fix_t *f)
{
    pos_fix_set_retry(f, 100, 1000);
    pos_ini_set(&f->ini, "redis", "command_timeout_ms", "1000");
    pos_fix_set_heartbeat(f, 2, 6);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "300");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
}

static void del_status(pos_fix_t *f)
{
    redisReply *r = pos_test_redis_cmd(&f->redis, "DEL %s", FL_STATUS_KEY);
    assert_non_null(r);
    freeReplyObject(r);
}

/* The status key is written again within one heartbeat interval (2 s)
 * plus scheduling slack. */
static void assert_status_rewritten(pos_fix_t *f, const char *what)
{
    long ms = pos_fix_wait_status(&f->redis, "online", 2500, NULL);
    fprintf(stderr, "%s: status key rewritten after %ld ms (interval 2000)\n", what, ms);
    if (ms < 0) {
        pos_fix_dump_log(f);
    }
    assert_true(ms >= 0);
}

/* A payment request reaches the agent and is approved. */
static void assert_payment_works(pos_fix_t *f, const char *tx)
{
    char req[256], want[64];
    pos_test_sub_t s = {0};
    snprintf(req, sizeof(req),
             "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":2.00,"
             "\"currency\":\"EUR\"}",
             tx);
    snprintf(want, sizeof(want), "\"transactionId\":\"%s\"", tx);
    assert_int_equal(pos_test_sub_open(&s, &f->redis, "payment:" FL_TID), 0);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" FL_TID " %s", req), 2);
    bool approved = false;
    uint64_t end = pos_test_now_ms() + 5000;
    while (!approved && pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&s, 1000, NULL, 0);
        approved = m != NULL && strstr(m, "PAYMENT_APPROVED") != NULL && strstr(m, want) != NULL;
        free(m);
    }
    pos_test_sub_close(&s);
    assert_true(approved);
}

typedef struct read_wait {
    pos_fix_t *f;
    const char *key, *want;
} read_wait_t;

static bool read_is(void *arg)
{
    const read_wait_t *w = arg;
    char *v = pos_fix_local_get(w->f, w->key);
    bool ok = w->want == NULL ? v == NULL : (v != NULL && strcmp(v, w->want) == 0);
    free(v);
    return ok;
}

/* Polls a local read until it returns want (NULL: nil); ms or -1. */
static long lget_until(pos_fix_t *f, const char *key, const char *want, int timeout_ms)
{
    read_wait_t w = {f, key, want};
    return pos_test_poll(read_is, &w, 20, timeout_ms);
}

/* DEBUG SLEEP 4 with a 1 s command timeout: the agent gives up on the
 * heartbeat in flight (one is sent every 2 s, so one goes out in the first
 * 2 s of the sleep and waits over 1 s), drops the link, and is back when
 * Redis wakes. */
static void test_debug_sleep(void **state)
{
    pos_fix_t *f = *state;
    struct timeval tv = {10, 0};

    start_agent(f);
    redisContext *c = pos_test_redis_connect(&f->redis);
    assert_non_null(c);
    redisSetTimeout(c, tv);
    uint64_t t0 = pos_test_now_ms();
    redisReply *r = redisCommand(c, "DEBUG SLEEP 4");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
    if (!pos_test_agent_wait_log(&f->agent, "no reply within 1000 ms", 1, 1000)) {
        pos_fix_dump_log(f);
        fail_msg("no command timeout logged");
    }
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 1000));
    pos_fix_wait_online(f, 2, 5000);
    fprintf(stderr, "debug sleep: online again %llu ms after DEBUG SLEEP 4 began\n",
            (unsigned long long)(pos_test_now_ms() - t0));
    del_status(f);
    assert_status_rewritten(f, "debug sleep");
    assert_payment_works(f, "tx-sleep-1");
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* CLIENT KILL of the command connection, then of the subscriber: each
 * time both connections are rebuilt (new ids, both named), the heartbeat
 * goes on and messages reach the agent. */
static void test_client_kill_each(void **state)
{
    pos_fix_t *f = *state;
    const char *which[] = {"cmd", "sub"};

    start_agent(f);
    for (int i = 0; i < 2; i++) {
        long long cmd_id, sub_id, cmd2, sub2;
        assert_int_equal(fl_agent_clients(&f->redis, &cmd_id, &sub_id), 2);
        assert_true(cmd_id > 0 && sub_id > 0);
        assert_int_equal(pos_test_int(&f->redis, "CLIENT KILL ID %lld", i == 0 ? cmd_id : sub_id),
                         1);
        uint64_t t0 = pos_test_now_ms();
        assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", i + 1, 3000));
        pos_fix_wait_online(f, i + 2, 5000);
        fprintf(stderr, "client kill %s: online again after %llu ms\n", which[i],
                (unsigned long long)(pos_test_now_ms() - t0));
        assert_int_equal(fl_agent_clients(&f->redis, &cmd2, &sub2), 2);
        assert_true(cmd2 > cmd_id && sub2 > sub_id);
        del_status(f);
        assert_status_rewritten(f, which[i]);
        char alert[128];
        snprintf(alert, sizeof(alert),
                 "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"kill %d\"}", i);
        assert_int_equal(pos_test_int(&f->redis, "PUBLISH system:alerts %s", alert), 1);
        assert_true(pos_test_agent_wait_log(&f->agent, "system:alerts: SYSTEM_ALERT", i + 1, 2000));
    }
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/*
 * client-output-buffer-limit pubsub 1kb 0 0, then 200 messages of 4 KiB
 * on the agent's probe channel in one pipeline: Redis closes the agent's
 * subscriber. The agent notices and resubscribes; a payment request
 * published the moment Redis counts the subscription again is not missed
 * (the cloud sees it delivered, so the agent must act on it).
 */
static void test_pubsub_buffer_limit(void **state)
{
    pos_fix_t *f = *state;
    static char big[4097];

    start_agent(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "hal: pinpad: ready", 1, 5000));
    redisReply *r = pos_test_redis_cmd(&f->redis, "CONFIG SET client-output-buffer-limit %s",
                                       "pubsub 1024 0 0");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    memset(big, 'x', sizeof(big) - 1);
    redisContext *c = pos_test_redis_connect(&f->redis);
    assert_non_null(c);
    for (int i = 0; i < 200; i++) {
        redisAppendCommand(c, "PUBLISH posagent:probe:" FL_TID " %s", big);
    }
    for (int i = 0; i < 200; i++) {
        void *rep = NULL;
        assert_int_equal(redisGetReply(c, &rep), REDIS_OK);
        freeReplyObject(rep);
    }
    redisFree(c);
    uint64_t t0 = pos_test_now_ms();
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 3000));
    /* Redis itself closed the agent's subscriber for its buffer. */
    char path[400], line[1024];
    bool closed = false;
    snprintf(path, sizeof(path), "%s/redis.log", f->redis.dir);
    FILE *lf = fopen(path, "r");
    assert_non_null(lf);
    while (fgets(line, sizeof(line), lf) != NULL) {
        closed = closed || (strstr(line, "overcoming of output buffer limits") != NULL &&
                            strstr(line, "name=posagent:" FL_TID) != NULL);
    }
    fclose(lf);
    assert_true(closed);
    r = pos_test_redis_cmd(&f->redis, "CONFIG SET client-output-buffer-limit %s",
                           "pubsub 33554432 8388608 60");
    freeReplyObject(r);

    /* The moment the subscription is back, the cloud publishes. */
    pos_test_sub_t s = {0};
    assert_int_equal(pos_test_sub_open(&s, &f->redis, "payment:" FL_TID), 0);
    long long n = 0;
    uint64_t end = pos_test_now_ms() + 5000;
    while (pos_test_now_ms() < end) {
        r = pos_test_redis_cmd(&f->redis, "PUBSUB NUMSUB payment:" FL_TID);
        n = r != NULL && r->type == REDIS_REPLY_ARRAY ? r->element[1]->integer : 0;
        freeReplyObject(r);
        if (n == 2) {
            break;
        }
    }
    assert_int_equal(n, 2);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" FL_TID " %s",
                                  "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-obl-1\","
                                  "\"amount\":3.00,\"currency\":\"EUR\"}"),
                     2);
    bool answered = false;
    end = pos_test_now_ms() + 5000;
    while (!answered && pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&s, 1000, NULL, 0);
        answered =
            m != NULL && strstr(m, "PAYMENT_APPROVED") != NULL && strstr(m, "tx-obl-1") != NULL;
        free(m);
    }
    pos_test_sub_close(&s);
    if (!answered) {
        pos_fix_dump_log(f);
    }
    assert_true(answered);
    fprintf(stderr,
            "pubsub limit: subscriber closed by Redis, request published on "
            "resubscription approved %llu ms after the flood\n",
            (unsigned long long)(pos_test_now_ms() - t0));
    pos_fix_wait_online(f, 2, 5000);
    /* One payment at a time: the next once the first is complete. */
    assert_true(pos_test_agent_wait_log(&f->agent, "TRANSACTION_COMPLETED tx-obl-1", 1, 5000));
    assert_true(pos_fix_wait_status(&f->redis, "online", 3000, NULL) >= 0);
    assert_payment_works(f, "tx-obl-2");
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* FLUSHALL: the status key is back within one heartbeat; cached entries
 * are marked stale, so the next read goes to Redis (nil: the key is
 * gone) and a new value is seen at once. */
static void test_flushall(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_redis_set(f, "product:P-1", "v1");
    start_agent(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 1, 5000));
    char *v = pos_fix_local_get(f, "product:P-1");
    assert_non_null(v);
    assert_string_equal(v, "v1");
    free(v);
    redisReply *r = pos_test_redis_cmd(&f->redis, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    assert_status_rewritten(f, "flushall");
    assert_true(pos_test_agent_wait_log(&f->agent, "Redis flushed", 1, 2000));
    assert_true(lget_until(f, "product:P-1", NULL, 1000) >= 0);
    pos_fix_redis_set(f, "product:P-1", "v2");
    assert_true(lget_until(f, "product:P-1", "v2", 1000) >= 0);
    assert_int_equal(pos_test_int(&f->redis, "EXISTS %s", FL_STATUS_KEY), 1);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Redis restarted with an empty dataset (no persistence): the status key
 * is rewritten, the cache does not serve the pre-restart value as fresh,
 * and tracking is set up again on the new server (a change is seen
 * although the product TTL is 2 h). */
static void test_restart_empty(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_redis_set(f, "product:P-1", "v1");
    start_agent(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 1, 5000));
    char *v = pos_fix_local_get(f, "product:P-1");
    assert_string_equal(v, "v1");
    free(v);
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 3000));
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_int_equal(pos_test_int(&f->redis, "EXISTS product:P-1"), 0); /* empty */
    pos_fix_redis_set(f, "product:P-1", "v2");
    pos_fix_wait_online(f, 2, 5000);
    assert_status_rewritten(f, "restart");
    assert_true(lget_until(f, "product:P-1", "v2", 3000) >= 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 2, 5000));
    pos_fix_redis_set(f, "product:P-1", "v3");
    long ms = lget_until(f, "product:P-1", "v3", 3000);
    fprintf(stderr, "restart: tracking back, change seen after %ld ms\n", ms);
    assert_true(ms >= 0);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* maxclients reached: every reconnect is refused with "max number of
 * clients reached"; the agent backs off (no tight loop) and is back once
 * the limit is raised. */
static void test_maxclients(void **state)
{
    pos_fix_t *f = *state;
    long long cmd_id, sub_id;

    start_agent(f);
    redisContext *adm = pos_test_redis_connect(&f->redis);
    assert_non_null(adm);
    redisReply *r = redisCommand(adm, "CONFIG SET maxclients 1");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_int_equal(fl_agent_clients(&f->redis, &cmd_id, &sub_id), -1); /* refused too */
    r = redisCommand(adm, "CLIENT KILL SKIPME yes");
    freeReplyObject(r);
    (void)cmd_id;
    (void)sub_id;
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 3000));
    assert_true(pos_test_agent_wait_log(&f->agent, "max number of clients reached", 1, 3000));
    int a0 = pos_test_agent_log_count(&f->agent, "reconnecting in");
    pos_test_sleep_ms(5000);
    int attempts = pos_test_agent_log_count(&f->agent, "reconnecting in") - a0;
    fprintf(stderr, "maxclients: %d reconnect attempts in 5 s (backoff 100 ms..1 s)\n", attempts);
    /* Full jitter: delays are uniform in [0, backoff], 1 s at the cap, so
     * about 10 attempts in 5 s; a tight loop would make thousands. */
    assert_true(attempts >= 3 && attempts <= 25);
    assert_true(pos_test_agent_alive(&f->agent));
    r = redisCommand(adm, "CONFIG SET maxclients 10000");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(adm);
    uint64_t t0 = pos_test_now_ms();
    pos_fix_wait_online(f, 2, 3000);
    fprintf(stderr, "maxclients: online %llu ms after the limit was raised\n",
            (unsigned long long)(pos_test_now_ms() - t0));
    del_status(f);
    assert_status_rewritten(f, "maxclients");
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_debug_sleep, setup, pos_fix_teardown),
        cmocka_unit_test_setup_teardown(test_client_kill_each, setup, pos_fix_teardown),
        cmocka_unit_test_setup_teardown(test_pubsub_buffer_limit, setup, pos_fix_teardown),
        cmocka_unit_test_setup_teardown(test_flushall, setup, pos_fix_teardown),
        cmocka_unit_test_setup_teardown(test_restart_empty, setup, pos_fix_teardown),
        cmocka_unit_test_setup_teardown(test_maxclients, setup, pos_fix_teardown),
    };
    fl_filter();
    return cmocka_run_group_tests_name("faults_server", tests, NULL, NULL);
}
