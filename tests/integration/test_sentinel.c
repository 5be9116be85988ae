/*
 * Redis Sentinel end to end: a master, a replica and three sentinels
 * (redis-server --sentinel) on free loopback ports, the posagent binary
 * configured with [redis] sentinels, and plain hiredis clients playing the
 * cloud. The master is SIGKILLed; the agent must follow the failover to
 * the promoted replica (heartbeat, payments, outbox) within the failover
 * time plus the backoff cap.
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

#include "tests/support/fixture.h"

#define TID         POS_FIX_TID
#define SID         POS_FIX_SID
#define STATUS_KEY  "terminal:" TID ":status"
#define MASTER_NAME "mymaster"
#define TEST_PAN    "4111111111111111"

/* The agent's backoff cap in this test: the bound on how late it may
 * follow a failover it was not told about. */
#define CAP_MS 1000
/* Slack for a loaded 2-core machine (sanitizers, parallel builds). */
#define SLACK_MS 5000
/* The sentinels' own failover (down-after 1000 ms, election, promotion)
 * takes 2-3 s here; this bound is for a loaded machine. */
#define FAILOVER_MAX_MS 30000

typedef struct fixture {
    pos_fix_t fx;             /* the agent and its configuration (fx.redis unused) */
    pos_test_redis_t node[2]; /* node[0] the first master, node[1] its replica */
    pos_test_redis_t sentinel[3];
    char replicaof_port[2][8];
} fixture_t;

/* ---- small helpers ------------------------------------------------------ */

/* ROLE's first element is "role". */
static bool role_is(const pos_test_redis_t *r, const char *role)
{
    redisReply *rep = pos_test_redis_cmd(r, "ROLE");
    bool ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(rep->element[0]->str, role) == 0;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

static bool replica_synced(const pos_test_redis_t *r)
{
    redisReply *rep = pos_test_redis_cmd(r, "INFO replication");
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STRING &&
              strstr(rep->str, "master_link_status:up") != NULL;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

/* The port a sentinel gives for our master, or 0. */
static unsigned sentinel_master_port(const pos_test_redis_t *s)
{
    redisReply *rep = pos_test_redis_cmd(s, "SENTINEL get-master-addr-by-name " MASTER_NAME);
    unsigned port = 0;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        port = (unsigned)strtoul(rep->element[1]->str, NULL, 10);
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return port;
}

/* In a flat [k, v, k, v...] array, the value of key k, or NULL. */
static const char *kv(const redisReply *a, const char *k)
{
    if (a->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        if (a->element[i]->type == REDIS_REPLY_STRING && strcmp(a->element[i]->str, k) == 0 &&
            a->element[i + 1]->type == REDIS_REPLY_STRING) {
            return a->element[i + 1]->str;
        }
    }
    return NULL;
}

/* The sentinel sees the master at master_port, the replica at replica_port
 * as a healthy replica, and both other sentinels: a failover can happen. */
static bool sentinel_ready(const pos_test_redis_t *s, unsigned master_port, unsigned replica_port)
{
    bool ok = sentinel_master_port(s) == master_port;
    redisReply *rep;

    rep = ok ? pos_test_redis_cmd(s, "SENTINEL replicas " MASTER_NAME) : NULL;
    ok = false;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            const char *port = kv(rep->element[i], "port");
            const char *flags = kv(rep->element[i], "flags");
            const char *link = kv(rep->element[i], "master-link-status");
            if (port != NULL && strtoul(port, NULL, 10) == replica_port && flags != NULL &&
                strcmp(flags, "slave") == 0 && link != NULL && strcmp(link, "ok") == 0) {
                ok = true;
            }
        }
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    if (!ok) {
        return false;
    }
    rep = pos_test_redis_cmd(s, "SENTINEL sentinels " MASTER_NAME);
    ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

/* What sentinel s thinks, on one line, for a failure's log. */
static void sentinel_show(const pos_test_redis_t *s)
{
    redisReply *rep = pos_test_redis_cmd(s, "SENTINEL replicas " MASTER_NAME);

    printf("[ SENTINEL ] %u: master port %u;", (unsigned)s->port, sentinel_master_port(s));
    for (size_t i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const char *port = kv(rep->element[i], "port");
        const char *flags = kv(rep->element[i], "flags");
        const char *link = kv(rep->element[i], "master-link-status");
        printf(" replica %s flags %s link %s;", port != NULL ? port : "?",
               flags != NULL ? flags : "?", link != NULL ? link : "?");
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    rep = pos_test_redis_cmd(s, "SENTINEL sentinels " MASTER_NAME);
    printf(" %zu other sentinels\n",
           rep != NULL && rep->type == REDIS_REPLY_ARRAY ? rep->elements : (size_t)0);
    if (rep != NULL) {
        freeReplyObject(rep);
    }
}

/* True when every sentinel sees node[master] as the master and the other
 * node as a synced replica, and both other sentinels. *ready gets which
 * sentinels do. */
static bool sentinels_agree(fixture_t *f, int master, bool ready[3])
{
    int ok = 0;

    for (int i = 0; i < 3; i++) {
        ready[i] = sentinel_ready(&f->sentinel[i], f->node[master].port, f->node[1 - master].port);
        ok += ready[i];
    }
    return ok == 3 && replica_synced(&f->node[1 - master]);
}

/*
 * Waits until the sentinels agree on a master (node[want], or either node
 * when want is -1) with the other node as a synced replica; returns its
 * index, or -1 after timeout_ms. Their view converges within about 2 s
 * here (hello messages every 2 s, a replica's INFO every 10 s at most).
 * A sentinel that has not converged after half the time is told SENTINEL
 * RESET, which makes it rediscover the replicas and the other sentinels
 * from the master; a failure prints what each sentinel sees and the end
 * of every log.
 */
static int sentinels_settle(fixture_t *f, int want, int timeout_ms)
{
    uint64_t start = pos_test_now_ms();
    uint64_t end = start + (uint64_t)timeout_ms;
    bool nudged = false;

    while (pos_test_now_ms() < end) {
        bool ready[3], other[3];
        for (int master = 0; master < 2; master++) {
            if ((want < 0 || want == master) && sentinels_agree(f, master, ready)) {
                printf("[ MEASURED ] sentinels ready (master %u, replica %u) after %u ms%s\n",
                       (unsigned)f->node[master].port, (unsigned)f->node[1 - master].port,
                       (unsigned)(pos_test_now_ms() - start), nudged ? ", after a reset" : "");
                return master;
            }
            if (want < 0 && master == 0) {
                memcpy(other, ready, sizeof(other));
            }
        }
        if (!nudged && pos_test_now_ms() - start > (uint64_t)timeout_ms / 2) {
            nudged = true;
            printf("[ SENTINEL ] not settled after %d ms: resetting the sentinels that have not "
                   "converged\n",
                   timeout_ms / 2);
            for (int i = 0; i < 3; i++) {
                sentinel_show(&f->sentinel[i]);
                if (!ready[i] && (want >= 0 || !other[i])) {
                    redisReply *rep =
                        pos_test_redis_cmd(&f->sentinel[i], "SENTINEL RESET " MASTER_NAME);
                    if (rep != NULL) {
                        freeReplyObject(rep);
                    }
                }
            }
        }
        pos_test_sleep_ms(100);
    }
    printf("[ SENTINEL ] not settled after %d ms (nodes %u and %u; wanted master: %d)\n",
           timeout_ms, (unsigned)f->node[0].port, (unsigned)f->node[1].port, want);
    for (int i = 0; i < 3; i++) {
        sentinel_show(&f->sentinel[i]);
        pos_fix_dump_redis_log(&f->sentinel[i]);
    }
    for (int i = 0; i < 2; i++) {
        pos_fix_dump_redis_log(&f->node[i]);
    }
    return -1;
}

/* "ts" of the status key on r, or 0. */
static uint64_t status_ts(const pos_test_redis_t *r)
{
    char *v = pos_test_get(r, STATUS_KEY);
    uint64_t ts = pos_fix_status_ts(v);
    free(v);
    return ts;
}

static void start_node(pos_test_redis_t *r, const char *replicaof_port)
{
    int n = 0;
    r->extra[n++] = "--repl-diskless-sync";
    r->extra[n++] = "yes";
    r->extra[n++] = "--repl-diskless-sync-delay";
    r->extra[n++] = "0";
    if (replicaof_port != NULL) {
        r->extra[n++] = "--replicaof";
        r->extra[n++] = "127.0.0.1";
        r->extra[n++] = replicaof_port;
    }
    r->extra[n] = NULL;
    assert_int_equal(pos_test_redis_start(r), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char conf[512];

    assert_non_null(f);
    pos_fix_init(&f->fx);
    start_node(&f->node[0], NULL);
    snprintf(f->replicaof_port[1], sizeof(f->replicaof_port[1]), "%u", (unsigned)f->node[0].port);
    start_node(&f->node[1], f->replicaof_port[1]);
    /* Short timeouts so that a failover takes seconds: down after 1 s,
     * quorum 2 of 3. */
    snprintf(conf, sizeof(conf),
             "sentinel monitor " MASTER_NAME " 127.0.0.1 %u 2\n"
             "sentinel down-after-milliseconds " MASTER_NAME " 1000\n"
             "sentinel failover-timeout " MASTER_NAME " 6000\n"
             "sentinel parallel-syncs " MASTER_NAME " 1\n",
             (unsigned)f->node[0].port);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pos_test_sentinel_start(&f->sentinel[i], conf), 0);
    }
    /* Sentinels find the replica and each other through the master (hello
     * messages every 2 s). */
    assert_int_equal(sentinels_settle(f, 0, 30000), 0);
    *state = f;
    return 0;
}

/* Just a master: for tests that start their own sentinel. */
static int setup_master(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pos_fix_init(&f->fx);
    start_node(&f->node[0], NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_fix_stop(&f->fx);
    for (int i = 0; i < 3; i++) {
        pos_test_redis_stop(&f->sentinel[i]);
    }
    for (int i = 0; i < 2; i++) {
        pos_test_redis_stop(&f->node[i]);
    }
    free(f);
    return 0;
}

/* The agent with the three sentinels (and sentinel_password, unless NULL). */
static void start_agent(fixture_t *f, const char *sentinel_password)
{
    pos_ini_t *ini = &f->fx.ini;
    /* The URL points at the replica: with sentinels its host and port must
     * be ignored. The first sentinel is a port nobody listens on: the next
     * ones must be asked (the list's odd spacing is on purpose). */
    pos_ini_set(ini, "redis", "url", "redis://127.0.0.1:%u",
                (unsigned)(f->node[1].port != 0 ? f->node[1].port : f->node[0].port));
    pos_ini_set(ini, "redis", "sentinels", "127.0.0.1:1, 127.0.0.1:%u,127.0.0.1:%u , 127.0.0.1:%u",
                (unsigned)f->sentinel[0].port, (unsigned)f->sentinel[1].port,
                (unsigned)f->sentinel[2].port);
    pos_ini_set(ini, "redis", "master_name", MASTER_NAME);
    if (sentinel_password != NULL) {
        pos_ini_set(ini, "redis", "sentinel_password", "%s", sentinel_password);
    }
    pos_fix_set_retry(&f->fx, 100, CAP_MS);
    pos_ini_set(ini, "redis", "connect_timeout_ms", "1000");
    pos_ini_set(ini, "redis", "command_timeout_ms", "1000");
    pos_fix_set_heartbeat(&f->fx, 1, 10);
    pos_ini_set(ini, "hal", "sim_pinpad_delay_ms", "200");
    pos_ini_set(ini, "hal", "sim_card_number", TEST_PAN);
    pos_fix_agent_start(&f->fx, NULL);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 15000));
}

/* The agent with only the given sentinel, fast retries up to cap_ms, and
 * sentinel_password unless NULL. */
static void start_agent_one(fixture_t *f, unsigned cap_ms, const char *sentinel_password)
{
    pos_ini_t *ini = &f->fx.ini;
    pos_ini_set(ini, "redis", "sentinels", "127.0.0.1:%u", (unsigned)f->sentinel[0].port);
    pos_ini_set(ini, "redis", "master_name", MASTER_NAME);
    if (sentinel_password != NULL) {
        pos_ini_set(ini, "redis", "sentinel_password", "%s", sentinel_password);
    }
    pos_fix_set_retry(&f->fx, 100, cap_ms);
    pos_fix_agent_start(&f->fx, NULL);
}

/* Milliseconds of the day of the first agent log line containing needle
 * (lines start "2026-11-29T14:21:38.409Z"), or -1. */
static long log_time_ms(fixture_t *f, const char *needle)
{
    char *log = pos_test_agent_log_read(&f->fx.agent);
    char *hit = log != NULL ? strstr(log, needle) : NULL;
    long ms = -1;
    unsigned h, m, sec, milli;

    if (hit != NULL) {
        while (hit > log && hit[-1] != '\n') {
            hit--;
        }
        if (sscanf(hit, "%*10[0-9-]T%2u:%2u:%2u.%3uZ", &h, &m, &sec, &milli) == 4) {
            ms = (long)(((h * 60u + m) * 60u + sec) * 1000u + milli);
        }
    }
    free(log);
    return ms;
}

static bool log_has(fixture_t *f, const char *needle)
{
    return pos_test_agent_log_count(&f->fx.agent, needle) > 0;
}

#define REQ(tx)                                                                                    \
    "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"" tx "\",\"amount\":4.20"                 \
    ",\"currency\":\"EUR\",\"lines\":[{\"name\":\"Espresso\",\"qty\":2,\"amount\":2.10}]}"

/* A payment on the given master, approved end to end. */
static void pay(const pos_test_redis_t *master, const char *tx, const char *req)
{
    pos_test_sub_t sub = {0};
    const char *channels[] = {"payment:" TID, "transaction:" SID, NULL};

    assert_int_equal(pos_test_sub_open_many(&sub, master, channels), 0);
    /* Two listeners: the agent, and this test's subscriber. */
    assert_int_equal(pos_test_int(master, "PUBLISH payment:" TID " %s", req), 2);
    cJSON *j = pos_test_sub_expect(&sub, "PAYMENT_APPROVED", tx, 15000, NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    j = pos_test_sub_expect(&sub, "TRANSACTION_COMPLETED", tx, 15000, NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    pos_test_sub_close(&sub);
}

/* ---- tests -------------------------------------------------------------- */

static void test_failover(void **state)
{
    fixture_t *f = *state;
    pos_test_redis_t *m = &f->node[0], *r = &f->node[1];
    char want[128];

    start_agent(f, NULL);
    /* On the master (not the URL's replica), both connections. */
    snprintf(want, sizeof(want), "online (127.0.0.1:%u db 0, master)", (unsigned)m->port);
    assert_true(log_has(f, want));
    assert_int_equal(pos_test_agent_clients(m, TID), 2);
    assert_int_equal(pos_test_agent_clients(r, TID), 0);
    assert_true(status_ts(m) > 0);
    pay(m, "tx-before", REQ("tx-before"));

    /* Kill the master; time the agent until its heartbeat (a status write
     * newer than the kill) is on the promoted replica. */
    uint64_t kill_wall = pos_test_wall_ms();
    uint64_t t0 = pos_test_now_ms(), t_promoted = 0, t_agent = 0;
    pos_test_redis_kill(m);
    while (pos_test_now_ms() - t0 < FAILOVER_MAX_MS) {
        if (t_promoted == 0 && role_is(r, "master")) {
            t_promoted = pos_test_now_ms();
        }
        if (t_promoted != 0 && status_ts(r) >= kill_wall) {
            t_agent = pos_test_now_ms();
            break;
        }
        pos_test_sleep_ms(20);
    }
    assert_true(t_promoted != 0);
    assert_true(t_agent != 0);
    printf("[ MEASURED ] failover: replica promoted %u ms after the master was killed; "
           "agent's heartbeat on the new master after %u ms (%u ms after the promotion)\n",
           (unsigned)(t_promoted - t0), (unsigned)(t_agent - t0), (unsigned)(t_agent - t_promoted));
    /* Promptly after the promotion: at worst one backoff delay. */
    assert_true(t_agent - t_promoted <= CAP_MS + SLACK_MS);
    /* It followed the announcement, and checked the new master's role. */
    snprintf(want, sizeof(want), "failover: master '" MASTER_NAME "' is now 127.0.0.1:%u",
             (unsigned)r->port);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, want, 1, 5000));
    snprintf(want, sizeof(want), "online (127.0.0.1:%u db 0, master)", (unsigned)r->port);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, want, 1, 5000));
    assert_int_equal(pos_test_agent_clients(r, TID), 2);
    /* The agent's own part: from the announcement to online on the new
     * master, without waiting for its backoff timer. */
    long t_told = log_time_ms(f, "sentinel: failover: master");
    long t_online = log_time_ms(f, want);
    assert_true(t_told >= 0 && t_online >= 0);
    long d = t_online - t_told;
    if (d < -43200000L) {
        d += 86400000L; /* across midnight */
    }
    if (d < 0) {
        /* Online before the announcement arrived: the link's own retry
         * asked the sentinels and already got the new master (seen under
         * qemu, 14 ms ahead). The agent's share is then nothing. */
        printf("[ MEASURED ] agent online on the new master %ld ms before +switch-master "
               "reached it (its own re-resolution)\n",
               -d);
        d = 0;
    } else {
        printf("[ MEASURED ] agent online on the new master %ld ms after +switch-master "
               "reached it\n",
               d);
    }
    assert_true(d <= SLACK_MS);

    /* The local API says where the agent is, and that it followed one
     * failover. */
    redisReply *info = pos_fix_local_cmd(&f->fx, "INFO link");
    assert_int_equal(info->type, REDIS_REPLY_STRING);
    snprintf(want, sizeof(want), "redis:127.0.0.1:%u\r\n", (unsigned)r->port);
    assert_non_null(strstr(info->str, want));
    assert_non_null(strstr(info->str, "sentinel_master_name:" MASTER_NAME "\r\n"));
    assert_non_null(strstr(info->str, "sentinel_failovers:1\r\n"));
    freeReplyObject(info);

    /* Payments work on the new master. */
    pay(r, "tx-after", REQ("tx-after"));
}

/* A planned failover (SENTINEL FAILOVER): the old master stays up and is
 * demoted to a replica; the agent must leave it for the promoted one and
 * not linger on a server that now refuses writes. */
static void test_planned_failover(void **state)
{
    fixture_t *f = *state;
    pos_test_redis_t *m = &f->node[0], *r = &f->node[1];
    char want[128];

    start_agent(f, NULL);
    assert_int_equal(pos_test_agent_clients(m, TID), 2);
    redisReply *rep = pos_test_redis_cmd(&f->sentinel[1], "SENTINEL FAILOVER " MASTER_NAME);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);

    snprintf(want, sizeof(want), "online (127.0.0.1:%u db 0, master)", (unsigned)r->port);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, want, 1, FAILOVER_MAX_MS));
    assert_int_equal(pos_test_agent_clients(r, TID), 2);
    /* The old master becomes a replica; the agent is not on it. */
    uint64_t end = pos_test_now_ms() + FAILOVER_MAX_MS;
    while (!role_is(m, "slave") && pos_test_now_ms() < end) {
        pos_test_sleep_ms(50);
    }
    assert_true(role_is(m, "slave"));
    assert_int_equal(pos_test_agent_clients(m, TID), 0);
    /* Heartbeats go on on the new master. */
    uint64_t ts = status_ts(r);
    assert_true(ts > 0);
    uint64_t t_ts = pos_test_now_ms();
    while (status_ts(r) == ts && pos_test_now_ms() - t_ts < 5000) {
        pos_test_sleep_ms(100);
    }
    assert_true(status_ts(r) > ts);
    pay(r, "tx-planned", REQ("tx-planned"));
}

/* Failover and back: the old master returns as a replica, then the new
 * master dies. What the agent queued while no master was reachable (its
 * outbox) is delivered on the one promoted next. */
static void test_outbox_across_failover(void **state)
{
    fixture_t *f = *state;
    pos_test_redis_t *m = &f->node[0], *r = &f->node[1];
    pos_test_sub_t sub = {0};
    const char *channels[] = {"transaction:" SID, NULL};
    char want[128];
    redisReply *rep;

    start_agent(f, NULL);
    /* First failover: node[1] becomes the master. */
    pos_test_redis_kill(m);
    snprintf(want, sizeof(want), "online (127.0.0.1:%u db 0, master)", (unsigned)r->port);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, want, 1, FAILOVER_MAX_MS));

    /* node[0] back, as a replica of node[1], known to every sentinel. The
     * sentinels may fail over once more on their own first: in a CI run
     * under load they found node[1] silent for a second right after its
     * promotion and promoted node[0] back. The test goes on with the roles
     * they settle on, once the agent is on that master. */
    snprintf(f->replicaof_port[0], sizeof(f->replicaof_port[0]), "%u", (unsigned)r->port);
    m->pid = 0;
    start_node(m, f->replicaof_port[0]);
    int master = sentinels_settle(f, -1, 40000);
    assert_true(master >= 0);
    if (master == 0) {
        pos_test_redis_t *t = m;
        m = r;
        r = t;
        /* node[0] was the agent's master at the start too: once more. */
        snprintf(want, sizeof(want), "online (127.0.0.1:%u db 0, master)", (unsigned)r->port);
        assert_true(pos_test_agent_wait_log(&f->fx.agent, want, 2, FAILOVER_MAX_MS));
    }

    /* Second failover. While no master is reachable, queue a message and a
     * counter increment through the local API. */
    int offline = pos_test_agent_log_count(&f->fx.agent, "link: offline");
    pos_test_redis_kill(r);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: offline", offline + 1, 10000));
    rep =
        pos_fix_local_cmd(&f->fx, "PUBLISH transaction:" SID
                                  " {\"type\":\"POS_EVENT\",\"note\":\"queued-during-failover\"}");
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    rep = pos_fix_local_cmd(&f->fx, "INCR counter:test:failover");
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);

    /* Freeze the agent until the new master is in place and this test
     * listens on it: Sentinel kills every client of a replica it promotes,
     * so a subscriber opened earlier would not survive, and one opened
     * later could miss the delivery. */
    kill(f->fx.agent.pid, SIGSTOP);
    uint64_t end = pos_test_now_ms() + FAILOVER_MAX_MS;
    bool moved = false;
    while (!moved && pos_test_now_ms() < end) {
        moved = role_is(m, "master");
        for (int i = 0; i < 3 && moved; i++) {
            moved = sentinel_master_port(&f->sentinel[i]) == m->port;
        }
        if (!moved) {
            pos_test_sleep_ms(50);
        }
    }
    assert_true(moved);
    assert_int_equal(pos_test_sub_open_many(&sub, m, channels), 0);
    uint64_t t_cont = pos_test_now_ms();
    kill(f->fx.agent.pid, SIGCONT);

    char channel[64];
    char *msg = pos_test_sub_next(&sub, CAP_MS + SLACK_MS, channel, sizeof(channel));
    assert_non_null(msg);
    assert_string_equal(channel, "transaction:" SID);
    assert_non_null(strstr(msg, "queued-during-failover"));
    free(msg);
    printf("[ MEASURED ] outbox delivered on the new master %u ms after the agent resumed\n",
           (unsigned)(pos_test_now_ms() - t_cont));
    pos_test_sub_close(&sub);
    /* The increment was queued after the message, and follows it. */
    char *v = NULL;
    for (int i = 0; i < 100 && v == NULL; i++) {
        v = pos_test_get(m, "counter:test:failover");
        if (v == NULL) {
            pos_test_sleep_ms(50);
        }
    }
    assert_non_null(v);
    assert_string_equal(v, "1");
    free(v);
    assert_true(status_ts(m) > 0);

    /* A clean stop writes the offline status on the current master. */
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 10000), 0);
    f->fx.agent.pid = 0;
    char *st = pos_test_get(m, STATUS_KEY);
    assert_non_null(st);
    assert_non_null(strstr(st, "\"status\":\"offline\""));
    free(st);
}

/* One sentinel, with the password "s3ntinel-pw", watching node[0]; the
 * other two entries refuse connections. */
static void start_sentinel_with_password(fixture_t *f)
{
    char conf[512];

    f->sentinel[1].port = 2; /* nobody listens */
    f->sentinel[2].port = 3;
    snprintf(conf, sizeof(conf), "sentinel monitor " MASTER_NAME " 127.0.0.1 %u 2\n",
             (unsigned)f->node[0].port);
    snprintf(f->sentinel[0].password, sizeof(f->sentinel[0].password), "s3ntinel-pw");
    assert_int_equal(pos_test_sentinel_start(&f->sentinel[0], conf), 0);
}

/* Sentinels with a password: the agent authenticates with
 * sentinel_password, and never logs it. */
static void test_sentinel_password(void **state)
{
    fixture_t *f = *state;

    start_sentinel_with_password(f);
    assert_true(sentinel_master_port(&f->sentinel[0]) == f->node[0].port);

    start_agent(f, "s3ntinel-pw");
    assert_int_equal(pos_test_agent_clients(&f->node[0], TID), 2);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "sentinel: watching", 1, 5000));
    char *log = pos_test_agent_log_read(&f->fx.agent);
    assert_null(strstr(log, "s3ntinel-pw"));
    free(log);
}

/* Without the sentinels' password the agent stays offline and says why. */
static void test_sentinel_password_wrong(void **state)
{
    fixture_t *f = *state;

    start_sentinel_with_password(f);
    start_agent_one(f, 500, "wr0ng-pw");
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "AUTH refused", 2, 10000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "no sentinel gave the address", 2, 10000));
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
    assert_int_equal(pos_test_agent_clients(&f->node[0], TID), 0);
    char *log = pos_test_agent_log_read(&f->fx.agent);
    assert_null(strstr(log, "wr0ng-pw"));
    assert_null(strstr(log, "s3ntinel-pw"));
    free(log);
}

/* A sentinel's answer is checked: here the only sentinel monitors a
 * replica as if it were the master, and the agent must refuse it (ROLE)
 * instead of going online on a read-only server. */
static void test_role_check(void **state)
{
    fixture_t *f = *state;
    char conf[512];

    snprintf(f->replicaof_port[1], sizeof(f->replicaof_port[1]), "%u", (unsigned)f->node[0].port);
    start_node(&f->node[1], f->replicaof_port[1]);
    snprintf(conf, sizeof(conf), "sentinel monitor " MASTER_NAME " 127.0.0.1 %u 1\n",
             (unsigned)f->node[1].port);
    assert_int_equal(pos_test_sentinel_start(&f->sentinel[0], conf), 0);
    assert_true(sentinel_master_port(&f->sentinel[0]) == f->node[1].port);
    f->sentinel[1].port = 2; /* nobody listens */
    f->sentinel[2].port = 3;

    char want[96];
    start_agent_one(f, 300, NULL);
    snprintf(want, sizeof(want), "127.0.0.1:%u is not a master (ROLE)", (unsigned)f->node[1].port);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, want, 3, 15000));
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
    /* Nothing was written to the replica through the agent (it is
     * read-only anyway), and nothing reached the master either. */
    assert_null(pos_test_get(&f->node[0], STATUS_KEY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planned_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_across_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sentinel_password, setup_master, teardown),
        cmocka_unit_test_setup_teardown(test_sentinel_password_wrong, setup_master, teardown),
        cmocka_unit_test_setup_teardown(test_role_check, setup_master, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
