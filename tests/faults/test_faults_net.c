/*
 * Network faults between the agent and Redis (docs/faults.md): the agent
 * runs in its own network namespace behind a veth pair, Redis in the root
 * namespace; nftables drops packets on the veth (blackhole, 30 % loss, a
 * flapping link) and a userspace proxy adds delay (the kernel here has no
 * netem). The test's own clients use loopback and are never faulted, so
 * they watch what the cloud would see.
 *
 * Needs root; without it (or without nftables) every test is skipped with
 * exit code 77 and the reason.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/faults/faultlib.h"
#include "tests/faults/netfault.h"

static pos_nf_t nf;

typedef struct fixture {
    pos_fix_t fx;
    pos_nf_proxy_t *proxy;
} fixture_t;

static fixture_t *current;

/* At exit or on a signal (a ctest timeout): no agent or Redis left behind. */
static void kill_children(void)
{
    if (current != NULL) {
        if (current->fx.agent.pid > 0) {
            kill(current->fx.agent.pid, SIGKILL);
        }
        if (current->fx.redis.pid > 0) {
            kill(current->fx.redis.pid, SIGKILL);
        }
    }
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    current = f;
    pos_fix_init(&f->fx);
    pos_nf_redis_extra(&nf, &f->fx.redis);
    if (pos_fix_redis_start(&f->fx) != 0) {
        current = NULL;
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_nf_set(&nf, POS_NF_NONE, 0);
    if (f->fx.agent.pid > 0) {
        pos_test_agent_stop(&f->fx.agent, SIGKILL, 2000);
    }
    pos_nf_proxy_stop(f->proxy);
    pos_fix_stop(&f->fx);
    current = NULL;
    free(f);
    return 0;
}

/* The agent in its namespace, talking to Redis at port (Redis's own, or
 * the proxy's) on the veth; further settings are in f->fx.ini already.
 * Defaults for the link's timeouts (command 2 s, probe 10 s) unless those
 * set them. */
static void start_agent(fixture_t *f, uint16_t port, unsigned pinpad_ms)
{
    pos_ini_set(&f->fx.ini, "redis", "url", "redis://%s:%u", nf.root_ip, (unsigned)port);
    pos_fix_set_retry(&f->fx, 100, 1000);
    pos_ini_set(&f->fx.ini, "hal", "sim_pinpad_delay_ms", "%u", pinpad_ms);
    f->fx.agent.wrapper = pos_nf_wrapper(&nf);
    pos_fix_agent_start(&f->fx, NULL);
}

static unsigned charges(fixture_t *f)
{
    return pos_fix_charges(&f->fx);
}

/* The next message from the agent with an outboxId above *last (repeats,
 * allowed by at-least-once delivery, are skipped and counted). */
static cJSON *next_new(fixture_t *f, long long *last, int *dups, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    while (pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&f->fx.sub, (int)(end - pos_test_now_ms()) + 1, NULL, 0);
        if (m == NULL) {
            return NULL;
        }
        cJSON *j = cJSON_Parse(m);
        free(m);
        cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "origin");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "outboxId");
        if (cJSON_IsString(o) && strcmp(o->valuestring, "terminal") == 0 && cJSON_IsNumber(id)) {
            if ((long long)id->valuedouble > *last) {
                *last = (long long)id->valuedouble;
                return j;
            }
            (*dups)++;
        }
        cJSON_Delete(j);
    }
    return NULL;
}

static const char *type_of(cJSON *j)
{
    cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

/* ---- blackhole --------------------------------------------------------------- */

/* Every packet dropped both ways on an idle link: both TCP connections are
 * left half-open (Redis still lists them); the agent must notice on its
 * own within 30 s (probe every 10 s, command timeout 2 s), and be back
 * online with its status rewritten soon after the link returns. */
static void test_blackhole_detected(void **state)
{
    fixture_t *f = *state;

    start_agent(f, f->fx.redis.port, 300);
    pos_fix_wait_online(&f->fx, 1, 10000);
    assert_true(pos_fix_wait_status(&f->fx.redis, "online", 5000, NULL) >= 0);
    pos_test_sleep_ms(500);

    assert_int_equal(pos_nf_set(&nf, POS_NF_BLACKHOLE, 0), 0);
    uint64_t t0 = pos_test_now_ms();
    long detect = fl_wait_log_ms(&f->fx.agent, "link: offline", 1, 30000);
    if (detect < 0) {
        pos_fix_dump_log(&f->fx);
    }
    assert_true(detect >= 0);
    detect = (long)(pos_test_now_ms() - t0);
    /* Half-open: nothing reached Redis, which still holds both clients. */
    long long cmd_id, sub_id;
    assert_int_equal(fl_agent_clients(&f->fx.redis, &cmd_id, &sub_id), 2);
    assert_true(cmd_id > 0 && sub_id > 0);
    fprintf(stderr,
            "blackhole: dead link detected after %ld ms (limit 30000); "
            "Redis still lists both half-open clients\n",
            detect);
    pos_test_sleep_ms(3000); /* reconnect attempts fail meanwhile */
    assert_true(pos_test_agent_log_count(&f->fx.agent, "reconnecting in") >= 2);

    redisReply *r = pos_test_redis_cmd(&f->fx.redis, "DEL %s", FL_STATUS_KEY);
    freeReplyObject(r);
    assert_int_equal(pos_nf_set(&nf, POS_NF_NONE, 0), 0);
    uint64_t t1 = pos_test_now_ms();
    pos_fix_wait_online(&f->fx, 2, 10000);
    long back = pos_fix_wait_status(&f->fx.redis, "online", 5000, NULL);
    assert_true(back >= 0);
    fprintf(stderr, "blackhole: online and status rewritten %llu ms after the link returned\n",
            (unsigned long long)(pos_test_now_ms() - t1));
    assert_true(pos_test_now_ms() - t1 <= 5000);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

/* A payment in flight when the link goes black: the customer pays, the
 * outcome waits in the outbox, and once the link returns the cloud gets
 * PAYMENT_APPROVED, RECEIPT_PRINTED, TRANSACTION_COMPLETED in that order;
 * the card is charged once and the transaction leaves
 * active_transactions (CONTRACT.md). */
static void test_blackhole_payment_in_flight(void **state)
{
    fixture_t *f = *state;
    long long last = 0;
    int dups = 0;

    start_agent(f, f->fx.redis.port, 2500);
    pos_fix_wait_online(&f->fx, 1, 10000);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "hal: pinpad: ready", 1, 5000));
    const char *ch[] = {"payment:" FL_TID, "transaction:" FL_SID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->fx.sub, &f->fx.redis, ch), 0);
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH payment:" FL_TID " %s",
                                  "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-bh-1\","
                                  "\"amount\":9.90,\"currency\":\"EUR\"}"),
                     2);
    cJSON *j = next_new(f, &last, &dups, 5000);
    assert_non_null(j);
    assert_string_equal(type_of(j), "PAYMENT_PROCESSING");
    cJSON_Delete(j);

    assert_int_equal(pos_nf_set(&nf, POS_NF_BLACKHOLE, 0), 0);
    uint64_t t0 = pos_test_now_ms();
    assert_true(fl_wait_log_ms(&f->fx.agent, "link: offline", 1, 30000) >= 0);
    assert_true(pos_test_now_ms() - t0 <= 30000);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "TRANSACTION_COMPLETED tx-bh-1", 1, 10000));
    assert_int_equal(pos_nf_set(&nf, POS_NF_NONE, 0), 0);
    uint64_t t1 = pos_test_now_ms();

    const char *want[] = {"PAYMENT_APPROVED", "RECEIPT_PRINTED", "TRANSACTION_COMPLETED"};
    for (int i = 0; i < 3; i++) {
        j = next_new(f, &last, &dups, 15000);
        if (j == NULL) {
            pos_fix_dump_log(&f->fx);
        }
        assert_non_null(j);
        assert_string_equal(type_of(j), want[i]);
        cJSON_Delete(j);
    }
    fprintf(stderr,
            "blackhole+payment: outcome delivered %llu ms after the link returned, "
            "%d duplicate(s)\n",
            (unsigned long long)(pos_test_now_ms() - t1), dups);
    assert_int_equal(charges(f), 1);
    uint64_t end = pos_test_now_ms() + 5000;
    while (pos_test_int(&f->fx.redis, "SISMEMBER active_transactions:" FL_SID " tx-bh-1") != 0 &&
           pos_test_now_ms() < end) {
        pos_test_sleep_ms(50);
    }
    assert_int_equal(pos_test_int(&f->fx.redis, "SISMEMBER active_transactions:" FL_SID " tx-bh-1"),
                     0);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

/* ---- loss -------------------------------------------------------------------- */

/* 30 % of packets lost in both directions while the till publishes 40
 * messages through the local API: all 40 reach the cloud, first arrivals
 * in order (repeats allowed: at-least-once). */
static void test_loss_outbox_in_order(void **state)
{
    fixture_t *f = *state;
    static fl_seen_t seen;
    const int k = 40;

    start_agent(f, f->fx.redis.port, 300);
    pos_fix_wait_online(&f->fx, 1, 10000);
    assert_int_equal(pos_test_sub_open(&f->fx.sub, &f->fx.redis, FL_CHANNEL), 0);
    redisContext *local = pos_fix_local(&f->fx);
    assert_non_null(local);

    assert_int_equal(pos_nf_set(&nf, POS_NF_LOSS, 30), 0);
    uint64_t t0 = pos_test_now_ms();
    for (int i = 1; i <= k; i++) {
        assert_true(fl_local_publish_seq(local, FL_CHANNEL, i));
        pos_test_sleep_ms(200);
    }
    memset(&seen, 0, sizeof(seen));
    int during = fl_collect(&f->fx.sub, &seen, k, 4000);
    long dropped = pos_nf_dropped(&nf);
    assert_true(dropped > 0); /* the fault was real */
    assert_int_equal(pos_nf_set(&nf, POS_NF_NONE, 0), 0);
    int got = fl_collect(&f->fx.sub, &seen, k, 30000);
    int offline = pos_test_agent_log_count(&f->fx.agent, "link: offline");
    fprintf(stderr,
            "loss 30%%: %ld packets dropped; %d/%d delivered during the loss, %d/%d in "
            "the end after %llu ms; link dropped %d time(s)\n",
            dropped, during, k, got, k, (unsigned long long)(pos_test_now_ms() - t0), offline);
    if (got != k) {
        pos_fix_dump_log(&f->fx);
    }
    assert_int_equal(got, k);
    int dups = fl_check_order(&seen, k);
    assert_true(dups >= 0);
    fprintf(stderr, "loss 30%%: in order, %d duplicate(s)\n", dups);
    assert_true(pos_test_agent_alive(&f->fx.agent));
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

/* ---- delay (userspace proxy; see docs/faults.md for why not netem) ---------- */

/* 500 ms added to everything the agent sends: the link stays up (command
 * timeout 2 s), messages arrive in order, a payment completes. */
static void test_delay_500ms(void **state)
{
    fixture_t *f = *state;
    static fl_seen_t seen;
    const int k = 20;
    long long last = 0;
    int dups = 0;

    f->proxy = pos_nf_proxy_start(nf.root_ip, f->fx.redis.port, 500, 0);
    assert_non_null(f->proxy);
    start_agent(f, pos_nf_proxy_port(f->proxy), 300);
    pos_fix_wait_online(&f->fx, 1, 15000);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "hal: pinpad: ready", 1, 5000));
    const char *ch[] = {FL_CHANNEL, "payment:" FL_TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->fx.sub, &f->fx.redis, ch), 0);
    redisContext *local = pos_fix_local(&f->fx);
    assert_non_null(local);
    uint64_t t0 = pos_test_now_ms();
    for (int i = 1; i <= k; i++) {
        assert_true(fl_local_publish_seq(local, FL_CHANNEL, i));
    }
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(fl_collect(&f->fx.sub, &seen, k, 15000), k);
    fprintf(stderr, "delay 500 ms: %d messages delivered in %llu ms\n", k,
            (unsigned long long)(pos_test_now_ms() - t0));
    assert_int_equal(fl_check_order(&seen, k), 0);

    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH payment:" FL_TID " %s",
                                  "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-d-1\","
                                  "\"amount\":1.50,\"currency\":\"EUR\"}"),
                     2);
    cJSON *j = NULL;
    for (;;) {
        j = next_new(f, &last, &dups, 10000);
        assert_non_null(j);
        if (strcmp(type_of(j), "PAYMENT_APPROVED") == 0) {
            break;
        }
        cJSON_Delete(j);
    }
    cJSON_Delete(j);
    assert_int_equal(charges(f), 1);
    /* The link never dropped under 500 ms. */
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: offline"), 0);
    assert_int_equal(pos_nf_proxy_accepted(f->proxy), 2);
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

/* 2 s added to everything the agent sends (2 s round trip): the status key
 * never expires. Sampled every 50 ms from a loopback client for 30 s. */
static void test_latency_2s_heartbeat(void **state)
{
    fixture_t *f = *state;
    const char *cfg = getenv("POS_FAULTS_LATENCY_CFG");

    f->proxy = pos_nf_proxy_start(nf.root_ip, f->fx.redis.port, 2000, 0);
    assert_non_null(f->proxy);
    if (cfg != NULL) {
        assert_int_equal(pos_ini_merge(&f->fx.ini, cfg), 0);
    } else {
        pos_fix_set_heartbeat(&f->fx, 2, 6);
    }
    start_agent(f, pos_nf_proxy_port(f->proxy), 300);
    pos_fix_wait_online(&f->fx, 1, 30000);
    assert_true(pos_fix_wait_status(&f->fx.redis, "online", 10000, NULL) >= 0);

    redisContext *c = pos_test_redis_connect(&f->fx.redis);
    assert_non_null(c);
    long long min_pttl = 1LL << 40;
    int missing = 0, samples = 0;
    uint64_t end = pos_test_now_ms() + (fl_long() ? 300000 : 30000);
    while (pos_test_now_ms() < end) {
        redisReply *r = redisCommand(c, "PTTL %s", FL_STATUS_KEY);
        assert_non_null(r);
        samples++;
        if (r->integer < 0) {
            missing++;
        } else if (r->integer < min_pttl) {
            min_pttl = r->integer;
        }
        freeReplyObject(r);
        pos_test_sleep_ms(50);
    }
    redisFree(c);
    int drops = pos_test_agent_log_count(&f->fx.agent, "link: offline");
    fprintf(stderr,
            "latency 2 s: %d samples, key missing in %d, lowest PTTL %lld ms, "
            "link dropped %d time(s)\n",
            samples, missing, min_pttl, drops);
    if (missing > 0) {
        pos_fix_dump_log(&f->fx);
    }
    assert_int_equal(missing, 0);
    assert_true(pos_test_agent_alive(&f->fx.agent));
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 10000), 0);
}

/* ---- flapping ---------------------------------------------------------------- */

/* The link goes black and comes back again and again, for blackouts both
 * shorter than the detection time (TCP rides them out) and longer (the
 * agent reconnects), while the till publishes twice a second: every
 * message arrives, in order; no descriptors leak; the agent ends online
 * with its status written. POS_FAULTS_LONG=1: 10 minutes. */
static void test_flapping(void **state)
{
    fixture_t *f = *state;
    static fl_seen_t seen;
    static const unsigned downs[] = {2000, 12000, 1000, 4000, 12000};
    uint32_t rng = 12345;
    int seq = 0;

    pos_fix_set_heartbeat(&f->fx, 5, 30);
    start_agent(f, f->fx.redis.port, 300);
    pos_fix_wait_online(&f->fx, 1, 10000);
    pos_test_sleep_ms(1000);
    int fds0 = fl_fd_count(f->fx.agent.pid);
    assert_true(fds0 > 0);
    assert_int_equal(pos_test_sub_open(&f->fx.sub, &f->fx.redis, FL_CHANNEL), 0);
    redisContext *local = pos_fix_local(&f->fx);
    assert_non_null(local);

    uint64_t t_end = pos_test_now_ms() + (fl_long() ? 600000 : 0);
    int cycles = 0;
    for (size_t i = 0;; i++) {
        unsigned down, up;
        if (fl_long()) {
            if (pos_test_now_ms() >= t_end) {
                break;
            }
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            down = 500 + rng % 15000;
            up = 500 + (rng >> 8) % 10000;
        } else {
            if (i >= sizeof(downs) / sizeof(downs[0])) {
                break;
            }
            down = downs[i];
            up = 3000;
        }
        for (int phase = 0; phase < 2; phase++) {
            assert_int_equal(pos_nf_set(&nf, phase == 0 ? POS_NF_BLACKHOLE : POS_NF_NONE, 0), 0);
            uint64_t until = pos_test_now_ms() + (phase == 0 ? down : up);
            while (pos_test_now_ms() < until) {
                assert_true(fl_local_publish_seq(local, FL_CHANNEL, ++seq));
                pos_test_sleep_ms(500);
            }
        }
        cycles++;
        assert_true(pos_test_agent_alive(&f->fx.agent));
    }
    assert_int_equal(pos_nf_set(&nf, POS_NF_NONE, 0), 0);
    memset(&seen, 0, sizeof(seen));
    int got = fl_collect(&f->fx.sub, &seen, seq, 30000);
    int drops = pos_test_agent_log_count(&f->fx.agent, "link: offline");
    int onl = pos_test_agent_log_count(&f->fx.agent, "link: online");
    fprintf(stderr,
            "flapping: %d cycles, %d messages, %d delivered, link dropped %d time(s), "
            "online %d time(s)\n",
            cycles, seq, got, drops, onl);
    if (got != seq) {
        pos_fix_dump_log(&f->fx);
    }
    assert_int_equal(got, seq);
    int dups = fl_check_order(&seen, seq);
    assert_true(dups >= 0);
    assert_true(drops >= 2); /* the 12 s blackouts were noticed */
    assert_true(onl == drops + 1);
    /* Back to normal: online, status written, no descriptor leak. */
    redisReply *r = pos_test_redis_cmd(&f->fx.redis, "DEL %s", FL_STATUS_KEY);
    freeReplyObject(r);
    assert_true(pos_fix_wait_status(&f->fx.redis, "online", 7000, NULL) >= 0);
    int fds1 = fl_fd_count(f->fx.agent.pid);
    fprintf(stderr, "flapping: %d duplicate(s); agent fds %d before, %d after\n", dups, fds0, fds1);
    assert_true(fds1 <= fds0 + 1); /* +1: the test's local API connection */
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

int main(void)
{
    char why[512];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blackhole_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blackhole_payment_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_outbox_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_500ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_2s_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flapping, setup, teardown),
    };

    if (pos_nf_setup(&nf, why, sizeof(why)) != 0) {
        fprintf(stderr, "SKIP: %s\n", why);
        return 77;
    }
    pos_nf_on_exit(kill_children);
    fl_filter();
    fprintf(stderr, "netns %s: agent %s <-> Redis %s; netem %s (delay uses the proxy)\n", nf.ns,
            nf.ns_ip, nf.root_ip,
            pos_nf_netem_available(&nf) ? "available" : "not available on this kernel");
    int rc = cmocka_run_group_tests_name("faults_net", tests, NULL, NULL);
    pos_nf_teardown(&nf);
    return rc;
}
