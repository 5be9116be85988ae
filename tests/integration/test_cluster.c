/*
 * Redis Cluster end to end: 3 primaries and 3 replicas on loopback
 * (redis-server --cluster-enabled yes, redis-cli --cluster create), the
 * posagent binary configured with [redis] cluster_nodes, and a small
 * cluster client (tests/support/cluster.h) playing the cloud.
 *
 * Heartbeat, terminals:{storeId}, warm-up from the index sets, read-through
 * and invalidation on every node, payments, outbox and counters; a slot
 * migration of keys the agent reads and writes while it does; sharded
 * pub/sub, also across a moved slot; a primary killed during payments.
 *
 * POS_CLUSTER_LONG=1 runs longer variants (more payments across the
 * failover, more migrated slots).
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

#include "tests/support/cluster.h"
#include "tests/support/fixture.h"

#define TID        POS_FIX_TID
#define SID        POS_FIX_SID
#define STATUS_KEY POS_FIX_STATUS_KEY
#define CAP_MS     1000 /* the agent's backoff cap here */
#define SLACK_MS   5000 /* a loaded 2-core machine under ASan */
#define NODE_TIMEOUT_MS 1500
#define WAIT_MS    15000

static pos_test_cluster_t cluster;

typedef struct fixture {
    pos_fix_t fx;
    char sock[300];
} fixture_t;

/* ---- helpers ------------------------------------------------------------ */

static bool long_run(void)
{
    const char *e = getenv("POS_CLUSTER_LONG");
    return e != NULL && e[0] == '1';
}

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static long long cint(const char *fmt, const char *key, const char *arg)
{
    redisReply *r = pos_test_cluster_cmd(&cluster, fmt, key, arg);
    long long v = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r != NULL) {
        freeReplyObject(r);
    }
    return v;
}

static void cset(const char *key, const char *value)
{
    redisReply *r = pos_test_cluster_cmd(&cluster, "SET %s %s", key, value);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* The agent's connections on node i (client name posagent:T-0001). */
static int agent_clients(int i)
{
    redisReply *rep = cluster.node[i].pid > 0
                          ? pos_test_redis_cmd(&cluster.node[i], "CLIENT LIST")
                          : NULL;
    int n = 0;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        for (const char *p = rep->str; (p = strstr(p, "name=posagent:" TID " ")) != NULL; p++) {
            n++;
        }
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return n;
}

/* "ts" of the status key, or 0. */
static uint64_t status_ts(void)
{
    char *v = pos_test_cluster_get(&cluster, STATUS_KEY);
    uint64_t ts = 0;
    if (v != NULL) {
        cJSON *j = cJSON_Parse(v);
        cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "ts");
        if (cJSON_IsNumber(t)) {
            ts = (uint64_t)t->valuedouble;
        }
        cJSON_Delete(j);
        free(v);
    }
    return ts;
}

static redisReply *local_cmd(fixture_t *f, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectUnixWithTimeout(f->sock, tv);
    redisReply *rep;
    va_list ap;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(rep);
    return rep;
}

/* GET through the agent's local API, as a string (malloc'd) or NULL. */
static char *local_get(fixture_t *f, const char *key)
{
    redisReply *r = local_cmd(f, "GET %s", key);
    char *v = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return v;
}

/* Waits until the local API answers key with want. */
static bool local_wait(fixture_t *f, const char *key, const char *want, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    do {
        char *v = local_get(f, key);
        bool ok = v != NULL && strcmp(v, want) == 0;
        free(v);
        if (ok) {
            return true;
        }
        pos_test_sleep_ms(20);
    } while (pos_test_now_ms() < end);
    return false;
}

/* The integer INFO field of the agent, or -1. */
static long long agent_info(fixture_t *f, const char *section, const char *field)
{
    redisContext *c = pos_fix_local(&f->fx);
    assert_non_null(c);
    long long v = pos_fix_local_info(c, section, field);
    redisFree(c);
    return v;
}

/* True when the agent's INFO holds "field:value". */
static bool agent_info_is(fixture_t *f, const char *section, const char *field, const char *value)
{
    char want[128];
    redisReply *r = local_cmd(f, "INFO %s", section);
    snprintf(want, sizeof(want), "%s:%s\r\n", field, value);
    bool ok = r->type == REDIS_REPLY_STRING && strstr(r->str, want) != NULL;
    freeReplyObject(r);
    return ok;
}

/* Total calls of a command on every running node (INFO commandstats). */
static long long calls_everywhere(const char *cmd)
{
    char want[64];
    long long total = 0;

    snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    for (int i = 0; i < cluster.n; i++) {
        redisReply *r = cluster.node[i].pid > 0
                            ? pos_test_redis_cmd(&cluster.node[i], "INFO commandstats")
                            : NULL;
        const char *p = r != NULL && r->type == REDIS_REPLY_STRING ? strstr(r->str, want) : NULL;
        if (p != NULL) {
            total += strtoll(p + strlen(want), NULL, 10);
        }
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
    return total;
}

static void reset_stats(void)
{
    for (int i = 0; i < cluster.n; i++) {
        redisReply *r = cluster.node[i].pid > 0
                            ? pos_test_redis_cmd(&cluster.node[i], "CONFIG RESETSTAT")
                            : NULL;
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
}

/* The configuration: seeds (a dead one first), fast retries, heartbeat 1 s. */
static void start_agent(fixture_t *f, const char *pubsub)
{
    pos_ini_t *ini = &f->fx.ini;
    char seeds[256], list[300];

    pos_test_cluster_seeds(&cluster, seeds, sizeof(seeds), 2);
    snprintf(list, sizeof(list), "127.0.0.1:1,%s", seeds);
    /* The URL names nobody: with cluster_nodes its host is ignored. */
    pos_ini_set(ini, "redis", "url", "redis://127.0.0.1:2");
    pos_ini_set(ini, "redis", "cluster_nodes", "%s", list);
    if (pubsub != NULL) {
        pos_ini_set(ini, "redis", "pubsub", "%s", pubsub);
    }
    pos_fix_set_retry(&f->fx, 100, CAP_MS);
    pos_ini_set(ini, "redis", "connect_timeout_ms", "1000");
    pos_ini_set(ini, "redis", "command_timeout_ms", "2000");
    pos_ini_set(ini, "redis", "probe_interval_ms", "2000");
    pos_fix_set_heartbeat(&f->fx, 1, 10);
    pos_ini_set(ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_ini_set(ini, "hal", "sim_printer_delay_ms", "50");
    pos_fix_agent_start(&f->fx, NULL);
    snprintf(f->sock, sizeof(f->sock), "%s/agent.sock", f->fx.agent.dir);
    pos_fix_wait_online(&f->fx, 1, WAIT_MS);
}

static int group_setup(void **state)
{
    (void)state;
    return pos_test_cluster_start(&cluster, 3, 1, NODE_TIMEOUT_MS);
}

static int group_teardown(void **state)
{
    (void)state;
    pos_test_cluster_stop(&cluster);
    return 0;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pos_fix_init(&f->fx);
    /* Fresh data for each test. */
    for (int i = 0; i < cluster.n; i++) {
        if (pos_test_cluster_is_primary(&cluster, i)) {
            redisReply *r = pos_test_redis_cmd(&cluster.node[i], "FLUSHALL");
            if (r != NULL) {
                freeReplyObject(r);
            }
        }
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_fix_stop(&f->fx);
    free(f);
    return 0;
}

/* The cloud's catalog: n products and the store's inventory of them, with
 * their index sets and versions. */
static void seed_catalog(int n)
{
    char key[64], val[96];

    for (int i = 1; i <= n; i++) {
        snprintf(key, sizeof(key), "product:P-%d", i);
        snprintf(val, sizeof(val), "{\"name\":\"Item-%d\"}", i);
        cset(key, val);
        snprintf(key, sizeof(key), "inventory:" SID ":P-%d", i);
        snprintf(val, sizeof(val), "{\"productId\":\"P-%d\",\"quantity\":%d}", i, i);
        cset(key, val);
        snprintf(val, sizeof(val), "P-%d", i);
        assert_true(cint("SADD %s %s", "index:products", val) >= 0);
        assert_true(cint("SADD %s %s", "index:inventory:" SID, val) >= 0);
    }
    cset("index:products:version", "1");
    cset("index:inventory:" SID ":version", "1");
}

/* ---- tests -------------------------------------------------------------- */

static void test_basics(void **state)
{
    fixture_t *f = *state;

    seed_catalog(300);
    cset("product:P-999", "{\"name\":\"not-indexed\"}");
    cset("inventory:S-999:P-1", "{\"other\":\"store\"}");
    reset_stats();
    pos_ini_set(&f->fx.ini, "cache", "warm_interval_s", "10");
    start_agent(f, NULL);
    pos_fix_wait_log(&f->fx, "cluster: 3 primaries, 16384 of 16384 slots covered", 1, 1000);
    /* Heartbeat and the store's list of terminals. */
    uint64_t t0 = pos_test_now_ms();
    while (status_ts() == 0 && pos_test_now_ms() - t0 < WAIT_MS) {
        pos_test_sleep_ms(50);
    }
    if (status_ts() == 0) {
        pos_fix_dump_log(&f->fx);
    }
    assert_true(status_ts() > 0);
    assert_int_equal(cint("SISMEMBER %s %s", "terminals:" SID, TID), 1);
    /* Warm-up from the index sets, no scan of any node. */
    pos_fix_wait_log(&f->fx,
                     "warm-up: 300 inventory and 300 product entries stored (inventory: index, "
                     "products: index)",
                     1, WAIT_MS);
    assert_int_equal(calls_everywhere("scan"), 0);
    assert_true(calls_everywhere("sscan") >= 2);
    assert_true(agent_info_is(f, "cache", "warm_inventory", "index"));
    assert_int_equal(agent_info(f, "link", "cluster_primaries"), 3);
    /* Read-through of a key on whatever node; invalidation from its node. */
    cset("product:P-new", "{\"v\":1}");
    assert_true(local_wait(f, "product:P-new", "{\"v\":1}", 5000));
    for (int i = 1; i <= 30; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "product:P-%d", i);
        snprintf(val, sizeof(val), "{\"v\":%d}", i);
        cset(key, val);
        assert_true(local_wait(f, key, val, 5000));
    }
    /* Few connections: a subscriber on each primary, commands where used,
     * nothing on replicas. */
    int total = 0;
    for (int i = 0; i < cluster.n; i++) {
        int n = agent_clients(i);
        if (!pos_test_cluster_is_primary(&cluster, i)) {
            assert_int_equal(n, 0);
        }
        assert_true(n <= 2);
        total += n;
    }
    assert_true(total >= 3 && total <= 6);
    /* The periodic warm-up (every 10 s here) finds both versions
     * unchanged: one GET each, no SSCAN. */
    long long sscans = calls_everywhere("sscan");
    pos_fix_wait_log(&f->fx, "(inventory: unchanged, products: unchanged)", 1, 15000);
    assert_int_equal(calls_everywhere("sscan"), sscans);
    /* A new inventory entry and a new version: that set is read again. */
    cset("inventory:" SID ":P-301", "{\"productId\":\"P-301\",\"quantity\":301}");
    assert_true(cint("SADD %s %s", "index:inventory:" SID, "P-301") == 1);
    assert_true(cint("INCR %s%s", "index:inventory:" SID ":version", "") == 2);
    pos_fix_wait_log(&f->fx, "warm-up: 301 inventory and 0 product entries stored (inventory: index, products: unchanged)", 1, 15000);
    (void)wall_ms;
    (void)long_run;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basics, setup, teardown),
    };
    return cmocka_run_group_tests_name("cluster", tests, group_setup, group_teardown);
}
