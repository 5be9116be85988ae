/*
 * The local API's commands on shared state, end to end through the agent
 * process and a real redis-server: RATELIMIT decided in Redis (shared by
 * two agents and a direct client) and on the till's own window offline;
 * SMEMBERS active_transactions:{storeId} and TERMINALS read through online
 * and answered from the last known copy offline and after a restart
 * offline; CACHE.CLEAR; INFO's health section and unique keys. Each input
 * path also gets malformed arguments and a flood.
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
#include <time.h>

#include <cmocka.h>

#include "tests/support/fixture.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

/* RATELIMIT id window max: checks the reply's shape and returns it. */
static redisReply *ratelimit(redisContext *c, const char *id, unsigned window, unsigned max)
{
    redisReply *r = redisCommand(c, "RATELIMIT %s %u %u", id, window, max);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ARRAY) {
        fail_msg("RATELIMIT answered type %d: %s", r->type, r->str != NULL ? r->str : "");
    }
    assert_int_equal(r->elements, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->element[i]->type, REDIS_REPLY_INTEGER);
    }
    assert_int_equal(r->element[3]->type, REDIS_REPLY_STRING);
    return r;
}

static void expect_rl(redisContext *c, const char *id, unsigned window, unsigned max,
                      long long allowed, long long remaining, const char *source)
{
    redisReply *r = ratelimit(c, id, window, max);
    if (r->element[0]->integer != allowed || r->element[1]->integer != remaining ||
        strcmp(r->element[3]->str, source) != 0) {
        fail_msg("RATELIMIT %s: got [%lld, %lld, %lld, %s], wanted [%lld, %lld, _, %s]", id,
                 r->element[0]->integer, r->element[1]->integer, r->element[2]->integer,
                 r->element[3]->str, allowed, remaining, source);
    }
    freeReplyObject(r);
}

static void expect_error(redisContext *c, const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, prefix, strlen(prefix)) != 0) {
        fail_msg("%s: wanted an error starting \"%s\", got type %d %s", fmt, prefix, r->type,
                 r->str != NULL ? r->str : "");
    }
    freeReplyObject(r);
}

/* ---- RATELIMIT ------------------------------------------------------------------------ */

/* Two agents and the cloud (a direct client following CONTRACT.md) share
 * one identifier's window in Redis. */
static void test_ratelimit_shared_by_two_agents_and_cloud(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_t f2;

    pos_fix_start_online(f);
    pos_fix_init(&f2);
    f2.ini = f->ini;
    pos_ini_set(&f2.ini, "terminal", "id", "T-0002");
    pos_fix_start_online(&f2);

    redisContext *a = pos_fix_local_connect(f), *b = pos_fix_local_connect(&f2);
    expect_rl(a, "login:cashier-7", 60000, 5, 1, 4, "redis");
    expect_rl(b, "login:cashier-7", 60000, 5, 1, 3, "redis");
    expect_rl(a, "login:cashier-7", 60000, 5, 1, 2, "redis");
    /* The cloud checks the same limit its own way: one member, scored now. */
    redisReply *r = pos_test_redis_cmd(&f->redis, "ZADD rate_limit:login:cashier-7:60000 %llu %s",
                                       (unsigned long long)pos_test_wall_ms(), "cloud-req-1");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    expect_rl(b, "login:cashier-7", 60000, 5, 1, 0, "redis");
    /* Full: both agents are refused, with the oldest member's reset time. */
    uint64_t t0 = pos_test_wall_ms();
    r = ratelimit(a, "login:cashier-7", 60000, 5);
    assert_int_equal(r->element[0]->integer, 0);
    assert_int_equal(r->element[1]->integer, 0);
    assert_string_equal(r->element[3]->str, "redis");
    assert_true((uint64_t)r->element[2]->integer > t0 + 50000);
    assert_true((uint64_t)r->element[2]->integer <= t0 + 60000 + 1000);
    freeReplyObject(r);
    expect_rl(b, "login:cashier-7", 60000, 5, 0, 0, "redis");
    /* What Redis holds is what the contract says: 5 members, a TTL of the window. */
    assert_int_equal(pos_test_int(&f->redis, "ZCARD rate_limit:login:cashier-7:60000"), 5);
    long long pttl = pos_test_int(&f->redis, "PTTL rate_limit:login:cashier-7:60000");
    assert_true(pttl > 50000 && pttl <= 60000);
    /* Each till's members are its own and unique. */
    assert_int_equal(pos_test_int(&f->redis, "ZCOUNT rate_limit:login:cashier-7:60000 -inf +inf"),
                     5);
    /* Another window is another key. */
    expect_rl(a, "login:cashier-7", 1000, 5, 1, 4, "redis");
    assert_int_equal(pos_fix_local_info(a, "shared", "ratelimit_redis"), 4);
    redisFree(a);
    redisFree(b);
    pos_fix_agent_forget(&f2);
}

/* Offline the till decides on its own window, going on from what Redis
 * admitted for it, and says so; across the link's return Redis decides again. */
static void test_ratelimit_offline_local_window(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    expect_rl(c, "pin:till", 60000, 3, 1, 2, "redis");
    expect_rl(c, "pin:till", 60000, 3, 1, 1, "redis");
    pos_fix_cut_off(f, cloud, 1);
    uint64_t t0 = pos_test_wall_ms();
    redisReply *r = ratelimit(c, "pin:till", 60000, 3);
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, 0);
    assert_string_equal(r->element[3]->str, "local");
    /* The reset time is epoch ms: a window after the first request, at most one bucket more. */
    assert_true((uint64_t)r->element[2]->integer >= t0 + 55000);
    assert_true((uint64_t)r->element[2]->integer <= t0 + 60000 + 60000 / 32 + 1000);
    freeReplyObject(r);
    expect_rl(c, "pin:till", 60000, 3, 0, 0, "local");
    expect_rl(c, "other", 60000, 3, 1, 2, "local");
    /* A short window frees up offline too. */
    expect_rl(c, "short", 200, 1, 1, 0, "local");
    expect_rl(c, "short", 200, 1, 0, 0, "local");
    pos_test_sleep_ms(300);
    expect_rl(c, "short", 200, 1, 1, 0, "local");
    assert_true(pos_fix_local_info(c, "shared", "ratelimit_local") >= 6);
    /* A restart offline starts the local window afresh (docs/local-api.md:
     * it is kept in memory only). */
    redisFree(c);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    expect_rl(c, "pin:till", 60000, 3, 1, 2, "local");
    /* Online again: Redis decides (it saw only the two online requests). */
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    expect_rl(c, "pin:till", 60000, 3, 1, 0, "redis");
    expect_rl(c, "pin:till", 60000, 3, 0, 0, "redis");
    redisFree(c);
    redisFree(cloud);
}

/* Bad arguments are refused with a clear error and touch nothing in Redis;
 * an identifier naming another family stays inside rate_limit:. */
static void test_ratelimit_malformed_and_abuse(void **state)
{
    pos_fix_t *f = *state;
    char big[300];

    pos_fix_start_online(f);
    redisContext *c = pos_fix_local_connect(f);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_error(c, "ERR wrong number", "RATELIMIT id 1000");
    expect_error(c, "ERR wrong number", "RATELIMIT id 1000 5 6");
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %s 1000 5", big);
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %b 1000 5", "", (size_t)0);
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %b 1000 5", "a\0b", (size_t)3);
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %s 1000 5", "a*");
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %s 1000 5", "a b");
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %s 1000 5", "x\r\nFLUSHALL");
    expect_error(c, "ERR RATELIMIT identifier", "RATELIMIT %s 1000 5", "{S-042}");
    expect_error(c, "ERR RATELIMIT windowMs", "RATELIMIT id 0 5");
    expect_error(c, "ERR RATELIMIT windowMs", "RATELIMIT id -1 5");
    expect_error(c, "ERR RATELIMIT windowMs", "RATELIMIT id 1.5 5");
    expect_error(c, "ERR RATELIMIT windowMs", "RATELIMIT id 86400001 5");
    expect_error(c, "ERR RATELIMIT windowMs", "RATELIMIT id 99999999999999999999 5");
    expect_error(c, "ERR RATELIMIT windowMs", "RATELIMIT id %s 5", " 100");
    expect_error(c, "ERR RATELIMIT max", "RATELIMIT id 1000 0");
    expect_error(c, "ERR RATELIMIT max", "RATELIMIT id 1000 1000001");
    expect_error(c, "ERR RATELIMIT max", "RATELIMIT id 1000 five");
    redisReply *r = pos_test_redis_cmd(&f->redis, "KEYS rate_limit:*");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    /* An identifier that looks like another family's key. */
    expect_rl(c, "session:S1", 1000, 5, 1, 4, "redis");
    assert_int_equal(pos_test_int(&f->redis, "EXISTS session:S1"), 0);
    assert_int_equal(pos_test_int(&f->redis, "EXISTS rate_limit:session:S1:1000"), 1);
    /* A window key poisoned with another type: Redis refuses the script,
     * the till still answers, on its own window, and says so. */
    pos_fix_redis_set(f, "rate_limit:poisoned:1000", "not a sorted set");
    expect_rl(c, "poisoned", 1000, 5, 1, 4, "local");
    assert_int_equal(pos_fix_local_info(c, "shared", "ratelimit_fallback"), 1);
    assert_true(pos_test_agent_wait_log(&f->agent, "WRONGTYPE", 1, 2000));
    for (int i = 0; i < 50; i++) {
        redisAppendCommand(c, "RATELIMIT poisoned 1000 1000");
    }
    for (int i = 0; i < 50; i++) {
        redisReply *p = NULL;
        assert_int_equal(redisGetReply(c, (void **)&p), REDIS_OK);
        assert_string_equal(p->element[3]->str, "local");
        freeReplyObject(p);
    }
    assert_int_equal(pos_fix_local_info(c, "shared", "ratelimit_fallback"), 51);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "WRONGTYPE"), 1); /* not 51 lines */
    r = redisCommand(c, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
}

/* Distinct identifiers by the thousand, pipelined, online then offline:
 * every one answered, the local table stays at its bound, the agent's
 * memory does not follow the flood, and another client is served. */
static void test_ratelimit_flood_of_identifiers(void **state)
{
    pos_fix_t *f = *state;
    enum { N = 4000 };

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    long long rss0 = pos_fix_local_info(c, "health", "agent_memory_rss");
    for (int round = 0; round < 2; round++) {
        const char *source = round == 0 ? "redis" : "local";
        if (round == 1) {
            pos_fix_cut_off(f, cloud, 1);
        }
        for (int i = 0; i < N; i++) {
            redisAppendCommand(c, "RATELIMIT flood-%d-%d 60000 10", round, i);
        }
        for (int i = 0; i < N; i++) {
            redisReply *r = NULL;
            assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
            assert_int_equal(r->type, REDIS_REPLY_ARRAY);
            assert_int_equal(r->element[0]->integer, 1);
            assert_string_equal(r->element[3]->str, source);
            freeReplyObject(r);
        }
        redisContext *other = pos_fix_local_connect(f);
        redisReply *r = redisCommand(other, "PING");
        assert_string_equal(r->str, "PONG");
        freeReplyObject(r);
        redisFree(other);
    }
    assert_int_equal(pos_fix_local_info(c, "shared", "ratelimit_identifiers"), 1024);
    assert_true(pos_fix_local_info(c, "shared", "ratelimit_evicted") >= 2 * N - 1024);
    long long rss1 = pos_fix_local_info(c, "health", "agent_memory_rss");
    print_message("agent RSS %lld -> %lld bytes after %d identifiers\n", rss0, rss1, 2 * N);
    /* The table is bounded (above); RSS is a gross check: under ASan its
     * quarantine of freed memory (replies, requests) counts too. */
    assert_true(rss1 - rss0 < 64ll * 1024 * 1024);
    redisFree(c);
    redisFree(cloud);
}

static redisReply *send_ratelimit(redisContext *c, int i, void *arg)
{
    (void)arg;
    return redisCommand(c, "RATELIMIT user:%d 60000 100", i % 50);
}

static void check_ratelimit(const redisReply *r, bool offline, void *arg)
{
    (void)arg;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[3]->str, offline ? "local" : "redis");
}

/* One RATELIMIT at a time, as a till does: its round trip through the
 * socket, online (one EVAL in Redis) and offline (the local window).
 * Prints p50/p99; fails only when the p99 is absurd for a till. */
static void test_ratelimit_latency(void **state)
{
    const pos_fix_latency_t l = {
        .what = "RATELIMIT",
        .round = {"online (redis)", "offline (local)"},
        .n = 2000,
        .max_p99_ms = 100,
        .send = send_ratelimit,
        .check = check_ratelimit,
    };
    pos_fix_latency_run(*state, &l);
}

/* ---- SMEMBERS active_transactions:{storeId} ----------------------------------------------- */

static void expect_members(redisContext *c, const char *key, const char *const *want, size_t n)
{
    redisReply *r = redisCommand(c, "SMEMBERS %s", key);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ARRAY) {
        fail_msg("SMEMBERS %s: type %d %s", key, r->type, r->str != NULL ? r->str : "");
    }
    if (r->elements != n) {
        fail_msg("SMEMBERS %s: %zu members, wanted %zu", key, r->elements, n);
    }
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < r->elements; k++) {
            found = found || strcmp(r->element[k]->str, want[i]) == 0;
        }
        if (!found) {
            fail_msg("SMEMBERS %s lacks %s", key, want[i]);
        }
    }
    freeReplyObject(r);
}

/* Pipelined SMEMBERS by the thousand: every one answered in full. */
static void smembers_flood(redisContext *c, const char *key, size_t n)
{
    for (int i = 0; i < 2000; i++) {
        redisAppendCommand(c, "SMEMBERS %s", key);
    }
    for (int i = 0; i < 2000; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, n);
        freeReplyObject(r);
    }
}

static void test_active_transactions(void **state)
{
    pos_fix_t *f = *state;
    const char *key = "active_transactions:" SID;
    const char *const ab[] = {"tx-a", "tx-b"};
    const char *const abc[] = {"tx-a", "tx-b", "tx-c"};

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    expect_members(c, key, NULL, 0);
    freeReplyObject(redisCommand(cloud, "SADD %s tx-a tx-b", key));
    expect_members(c, key, ab, 2); /* read through */
    freeReplyObject(redisCommand(cloud, "SADD %s tx-c", key));
    expect_members(c, key, abc, 3);
    /* Another store, another key: refused plainly. */
    expect_error(c, "ERR only this till's store", "SMEMBERS active_transactions:S-999");
    expect_error(c, "ERR SMEMBERS serves only active_transactions:" SID, "SMEMBERS terminals:" SID);
    expect_error(c, "ERR only this till's store", "SMEMBERS %b", "active_transactions:" SID "\0x",
                 strlen(key) + 2);
    expect_error(c, "ERR wrong number", "SMEMBERS");
    /* Offline: the last known members, though the cloud changed them since. */
    freeReplyObject(redisCommand(cloud, "SREM %s tx-c", key));
    pos_fix_cut_off(f, cloud, 1);
    freeReplyObject(redisCommand(cloud, "SADD %s tx-z", key));
    expect_members(c, key, abc, 3);
    /* After a restart offline: the same, from the local store. */
    redisFree(c);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    expect_members(c, key, abc, 3);
    smembers_flood(c, key, 3);
    /* Online again: Redis's members. */
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    const char *const abz[] = {"tx-a", "tx-b", "tx-z"};
    expect_members(c, key, abz, 3);
    smembers_flood(c, key, 3);
    redisFree(c);
    redisFree(cloud);
}

/* This till's own payment in progress is among the members offline, and
 * goes once it has ended, though the last known copy predates both. */
static void test_active_transactions_own_payment_offline(void **state)
{
    pos_fix_t *f = *state;
    const char *key = "active_transactions:" SID;
    const char *const a[] = {"tx-a"};
    const char *const a_own[] = {"tx-a", "tx-own-1"};

    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "%u", 4000); /* room for the cut-off */
    pos_fix_start_online(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "hal: pinpad: ready", 1, 5000));
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    freeReplyObject(redisCommand(cloud, "SADD %s tx-a", key));
    expect_members(c, key, a, 1); /* the last known copy: tx-a only */
    freeReplyObject(redisCommand(
        cloud, "PUBLISH payment:" TID " %s",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-own-1\",\"amount\":1.50,"
        "\"currency\":\"EUR\"}"));
    assert_true(pos_test_agent_wait_log(&f->agent, "PAYMENT_PROCESSING", 1, 5000));
    pos_fix_cut_off(f, cloud, 1);
    expect_members(c, key, a_own, 2);
    /* The pinpad answers after its delay: the payment ends, offline. */
    assert_true(pos_fix_charges(f) == 0);
    long waited = 0;
    while (pos_fix_charges(f) == 0 && waited < 10000) {
        pos_test_sleep_ms(100);
        waited += 100;
    }
    assert_int_equal(pos_fix_charges(f), 1);
    pos_test_sleep_ms(500);
    expect_members(c, key, a, 1);
    redisFree(c);
    redisFree(cloud);
}

/* ---- TERMINALS -------------------------------------------------------------------------- */

/* The pairs of a TERMINALS reply: finds id's status (NULL: nil), fails
 * when id is not listed. */
static const char *terminal_status(const redisReply *r, const char *id)
{
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *p = r->element[i];
        assert_int_equal(p->type, REDIS_REPLY_ARRAY);
        assert_int_equal(p->elements, 2);
        if (strcmp(p->element[0]->str, id) == 0) {
            return p->element[1]->type == REDIS_REPLY_NIL ? NULL : p->element[1]->str;
        }
    }
    fail_msg("TERMINALS does not list %s", id);
    return NULL;
}

static void test_terminals(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    /* The agent puts itself in the store's set at connect (CONTRACT.md):
     * the SADD is sent as the link comes up, so it may land a moment after
     * "link: online" is logged (slowly, under qemu-arm). */
    long waited = 0;
    while (pos_test_int(&f->redis, "SISMEMBER terminals:" SID " " TID) != 1 && waited < 5000) {
        pos_test_sleep_ms(20);
        waited += 20;
    }
    assert_int_equal(pos_test_int(&f->redis, "SISMEMBER terminals:" SID " " TID), 1);
    assert_true(pos_fix_wait_status(&f->redis, "online", 5000, NULL) >= 0);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    freeReplyObject(redisCommand(cloud, "SADD terminals:" SID " T-0002 T-0003"));
    freeReplyObject(
        redisCommand(cloud, "SET terminal:T-0002:status %s EX 60", "{\"status\":\"busy\"}"));
    redisReply *r = redisCommand(c, "TERMINALS");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_non_null(strstr(terminal_status(r, TID), "\"status\":\"online\""));
    assert_string_equal(terminal_status(r, "T-0002"), "{\"status\":\"busy\"}");
    assert_null(terminal_status(r, "T-0003")); /* no heartbeat: not active */
    freeReplyObject(r);
    expect_error(c, "ERR wrong number", "TERMINALS S-999");
    /* Offline, and after a restart offline: the last known list. */
    pos_fix_cut_off(f, cloud, 1);
    freeReplyObject(redisCommand(cloud, "SADD terminals:" SID " T-0004"));
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            redisFree(c);
            pos_test_agent_stop(&f->agent, SIGTERM, 5000);
            pos_fix_start_local(f);
            c = pos_fix_local_connect(f);
        }
        r = redisCommand(c, "TERMINALS");
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        assert_string_equal(terminal_status(r, "T-0002"), "{\"status\":\"busy\"}");
        assert_null(terminal_status(r, "T-0003"));
        freeReplyObject(r);
    }
    redisFree(c);
    redisFree(cloud);
}

/* GET calls Redis has served (INFO commandstats). */
static long long get_calls(pos_fix_t *f)
{
    redisReply *r = pos_test_redis_cmd(&f->redis, "INFO commandstats");
    const char *p = strstr(r->str, "cmdstat_get:calls=");
    long long n = p != NULL ? strtoll(p + 18, NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

/* A store set full of junk: only plausible ids are listed, at most 256,
 * and the agent stays responsive. */
static void test_terminals_flood_and_junk(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    for (int i = 0; i < 1000; i++) {
        freeReplyObject(redisCommand(cloud, "SADD terminals:" SID " T-%04d", 1000 + i));
    }
    freeReplyObject(redisCommand(cloud, "SADD terminals:" SID " %b", "bad\0id", (size_t)6));
    freeReplyObject(redisCommand(cloud, "SADD terminals:" SID " %s", "has space"));
    freeReplyObject(redisCommand(cloud, "SADD terminals:" SID " %s", "ctl\x01"));
    redisContext *c = pos_fix_local_connect(f);
    long long gets0 = get_calls(f);
    for (int i = 0; i < 20; i++) {
        redisAppendCommand(c, "TERMINALS");
    }
    for (int i = 0; i < 20; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 256);
        for (size_t k = 0; k < r->elements; k++) {
            const char *id = r->element[k]->element[0]->str;
            assert_null(strchr(id, ' '));
            assert_null(strchr(id, '\x01'));
        }
        freeReplyObject(r);
    }
    /* The pipelined listings shared the ones in flight: not 20 x 256 GETs. */
    long long gets = get_calls(f) - gets0;
    print_message("20 pipelined TERMINALS of 256 terminals: %lld GETs in Redis\n", gets);
    assert_true(gets >= 256 && gets <= 3 * 256);
    redisReply *r = redisCommand(c, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
    redisFree(cloud);
}

/* ---- CACHE.CLEAR ------------------------------------------------------------------------- */

static void test_cache_clear(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_redis_set(f, "product:P-1", "{\"price\":1}");
    pos_fix_redis_set(f, "product:P-2", "{\"price\":2}");
    pos_fix_redis_set(f, "inventory:" SID ":P-1", "{\"quantity\":3}");
    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    free(pos_fix_local_get(f, "product:P-1"));
    free(pos_fix_local_get(f, "product:P-2"));
    free(pos_fix_local_get(f, "inventory:" SID ":P-1"));
    pos_fix_cut_off(f, cloud, 1);
    /* Offline, the local copies answer until cleared. */
    char *v = pos_fix_local_get(f, "product:P-1");
    assert_string_equal(v, "{\"price\":1}");
    free(v);
    redisReply *r = redisCommand(c, "CACHE.CLEAR product:*");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS product:P-1 product:P-2 inventory:" SID ":P-1");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    v = pos_fix_local_get(f, "inventory:" SID ":P-1");
    assert_string_equal(v, "{\"quantity\":3}");
    free(v);
    r = redisCommand(c, "CACHE.CLEAR nothing:*");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* Redis is not touched: the cloud's values stay. */
    pos_test_cut_off(cloud, false);
    v = pos_test_get(&f->redis, "product:P-1");
    assert_string_equal(v, "{\"price\":1}");
    free(v);
    assert_true(pos_fix_local_info(c, "shared", "cache_cleared") == 2);
    redisFree(c);
    redisFree(cloud);
}

static void test_cache_clear_malformed_and_flood(void **state)
{
    pos_fix_t *f = *state;
    char big[300];

    pos_fix_start_online(f);
    redisContext *c = pos_fix_local_connect(f);
    memset(big, '*', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_error(c, "ERR CACHE.CLEAR pattern", "CACHE.CLEAR %s", big);
    expect_error(c, "ERR CACHE.CLEAR pattern", "CACHE.CLEAR %b", "", (size_t)0);
    expect_error(c, "ERR CACHE.CLEAR pattern", "CACHE.CLEAR %b", "a\0*", (size_t)3);
    expect_error(c, "ERR wrong number", "CACHE.CLEAR a b");
    /* A costly pattern, many times over, pipelined: every one answered. */
    for (int i = 0; i < 500; i++) {
        redisAppendCommand(c, "CACHE.CLEAR %s", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
    }
    for (int i = 0; i < 500; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        /* Dropped nothing, or the cache was too busy and marked all stale. */
        assert_true(r->type == REDIS_REPLY_INTEGER ||
                    (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSY", 4) == 0));
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(c, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
}

/* ---- INFO ------------------------------------------------------------------------------- */

/* No field appears twice in INFO, across all sections. */
static void expect_unique_info(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *text = strdup(r->str), *save = NULL;
    char *seen[512];
    size_t n = 0;
    for (char *line = strtok_r(text, "\r\n", &save); line != NULL;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (line[0] == '#' || colon == NULL) {
            continue;
        }
        *colon = '\0';
        for (size_t i = 0; i < n; i++) {
            if (strcmp(seen[i], line) == 0) {
                fail_msg("INFO repeats the field \"%s\"", line);
            }
        }
        assert_true(n < 512);
        seen[n++] = line;
    }
    assert_true(n > 50);
    free(text);
    freeReplyObject(r);
}

static char *info_field(redisContext *c, const char *section, const char *field)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    char want[64], *out = NULL;
    snprintf(want, sizeof(want), "\r\n%s:", field);
    const char *p = strstr(r->str, want);
    if (p != NULL) {
        p += strlen(want);
        out = strndup(p, strcspn(p, "\r\n"));
    }
    freeReplyObject(r);
    return out;
}

static void expect_info(redisContext *c, const char *section, const char *field, const char *want)
{
    char *v = info_field(c, section, field);
    if (v == NULL || strcmp(v, want) != 0) {
        fail_msg("INFO %s %s: \"%s\", wanted \"%s\"", section, field, v != NULL ? v : "(none)",
                 want);
    }
    free(v);
}

static void test_info_health(void **state)
{
    pos_fix_t *f = *state;

    pos_ini_set(&f->ini, "redis", "probe_interval_ms", "%u", 1000);
    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    expect_unique_info(c);
    expect_info(c, "server", "status", "online");
    expect_info(c, "health", "connected", "1");
    /* The probe's round trip and Redis's memory come with the next probes. */
    pos_test_sleep_ms(2500);
    char *lat = info_field(c, "health", "latency_ms");
    assert_non_null(lat);
    double ms = strtod(lat, NULL);
    print_message("health: latency_ms %s\n", lat);
    assert_true(ms > 0.0 && ms < 1000.0);
    free(lat);
    long long used = pos_fix_local_info(c, "health", "redis_used_memory");
    assert_true(used > 100000); /* a redis-server uses about 1 MB */
    assert_true(pos_fix_local_info(c, "health", "redis_memory_age_s") >= 0);
    assert_true(pos_fix_local_info(c, "health", "agent_memory_rss") > 1000000);
    /* Cut off: status says so, health says not connected, Redis's memory as last seen. */
    pos_fix_cut_off(f, cloud, 1);
    expect_info(c, "server", "status", "offline");
    expect_info(c, "health", "connected", "0");
    expect_info(c, "health", "terminal_status", "online");
    used = pos_fix_local_info(c, "health", "redis_used_memory");
    assert_true(used > 100000);
    pos_test_sleep_ms(500);
    assert_int_equal(pos_fix_local_info(c, "health", "redis_used_memory"), used);
    expect_unique_info(c);
    redisFree(c);
    redisFree(cloud);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_ratelimit_shared_by_two_agents_and_cloud),
        POS_FIX_TEST(test_ratelimit_offline_local_window),
        POS_FIX_TEST(test_ratelimit_malformed_and_abuse),
        POS_FIX_TEST(test_ratelimit_flood_of_identifiers),
        POS_FIX_TEST(test_ratelimit_latency),
        POS_FIX_TEST(test_active_transactions),
        POS_FIX_TEST(test_active_transactions_own_payment_offline),
        POS_FIX_TEST(test_terminals),
        POS_FIX_TEST(test_terminals_flood_and_junk),
        POS_FIX_TEST(test_cache_clear),
        POS_FIX_TEST(test_cache_clear_malformed_and_flood),
        POS_FIX_TEST(test_info_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
