/*
 * Least privilege on Redis (issue 13, docs/acl.md): the rule "posagent acl"
 * prints is applied to a real redis-server, the agent's whole flow runs
 * under that user (heartbeat, the lease, payments, read-through, tracking,
 * warm-up, the outbox, counters), and a client holding the same
 * credentials cannot publish on another terminal's payment channel, write
 * another terminal's status key, read another store's inventory, or run
 * FLUSHALL, CONFIG or KEYS.
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

#include "tests/support/fixture.h"

#define TID  POS_FIX_TID
#define SID  POS_FIX_SID
#define USER "posagent-" TID
#define PASS "till-s3cret"

/* Runs "posagent --config <the fixture's ini> acl" and applies its rule
 * on the fixture's Redis (as the cloud's administrator would). */
static void apply_rule(pos_fix_t *f)
{
    char dir[] = "/tmp/posagent-acl-XXXXXX", conf[64], *out = NULL;
    assert_non_null(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/posagent.ini", dir);
    assert_int_equal(pos_ini_write(&f->ini, conf), 0);
    const char *argv[] = {getenv("POSAGENT_BIN"), "--config", conf, "acl", NULL};
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 0);
    unlink(conf);
    rmdir(dir);
    print_message("%s", out);
    assert_null(strstr(out, PASS)); /* the hash only */

    char *line = strstr(out, "ACL SETUSER ");
    assert_non_null(line);
    line[strcspn(line, "\n")] = '\0';
    const char *words[128];
    size_t n = 0;
    for (char *w = strtok(line, " "); w != NULL && n < 128; w = strtok(NULL, " ")) {
        words[n++] = w;
    }
    redisContext *c = pos_test_redis_connect(&f->redis);
    assert_non_null(c);
    redisReply *r = redisCommandArgv(c, (int)n, words, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        fail_msg("ACL SETUSER refused: %s", r->str);
    }
    freeReplyObject(r);
    redisFree(c);
    free(out);
}

/* A client with the till's credentials. */
static redisContext *as_till(pos_fix_t *f)
{
    redisContext *c = redisConnect("127.0.0.1", f->redis.port);
    assert_true(c != NULL && c->err == 0);
    redisReply *r = redisCommand(c, "AUTH %s %s", USER, PASS);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return c;
}

static void expect_noperm(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOPERM", 6) != 0) {
        fail_msg("\"%s\" was not refused (reply type %d)", fmt, r->type);
    }
    freeReplyObject(r);
}

/* A counter's value once it reached want (waiting up to 5 s), or what it is. */
static long counter(pos_fix_t *f, const char *key, long want)
{
    long v = -1;
    for (int i = 0; i < 100 && v != want; i++) {
        char *s = pos_test_get(&f->redis, key);
        v = s != NULL ? strtol(s, NULL, 10) : -1;
        free(s);
        if (v != want) {
            pos_test_sleep_ms(50);
        }
    }
    return v;
}

static void test_flow_under_the_rule(void **state)
{
    pos_fix_t *f = *state;

    pos_ini_set(&f->ini, "redis", "url", "redis://%s:%s@127.0.0.1:%u", USER, PASS,
                (unsigned)f->redis.port);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_ini_set(&f->ini, "redis", "probe_interval_ms", "1000");
    pos_fix_set_heartbeat(f, 1, 10);
    apply_rule(f);
    /* What the warm-up finds, written before the agent starts. */
    for (int i = 1; i <= 3; i++) {
        char key[64];
        snprintf(key, sizeof(key), "inventory:" SID ":P-%d", i);
        pos_fix_redis_set(f, key, "{\"quantity\":5}");
    }
    pos_fix_redis_set(f, "product:P-1", "{\"name\":\"Espresso\"}");
    const char *channels[] = {"payment:" TID, "transaction:" SID, "system:terminals", NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, channels), 0);

    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    pos_fix_wait_log(f, "hal: pinpad: ready", 1, 5000);
    pos_fix_wait_log(f, "warm-up: 3 inventory", 1, 10000);
    pos_fix_wait_log(f, "server-assisted invalidation on", 1, 5000);
    redisReply *r = pos_test_redis_cmd(&f->redis, "CLIENT LIST");
    assert_non_null(strstr(r->str, "user=" USER));
    freeReplyObject(r);

    /* Heartbeat and the lease. */
    assert_true(pos_fix_wait_status(&f->redis, "online", 5000, NULL) >= 0);
    char *lease = pos_test_get(&f->redis, "posagent:lease:" TID);
    assert_non_null(lease);
    free(lease);
    pos_test_sleep_ms(1500);
    assert_true(pos_test_int(&f->redis, "TTL terminal:" TID ":status") > 8);

    /* A payment: outcomes, the transaction, active_transactions, counters. */
    assert_true(
        pos_test_int(&f->redis,
                     "PUBLISH payment:" TID " {\"type\":\"PAYMENT_REQUESTED\","
                     "\"transactionId\":\"tx-acl\",\"amount\":3.20,\"currency\":\"EUR\"}") >= 1);
    cJSON_Delete(pos_test_sub_expect(&f->sub, "PAYMENT_APPROVED", "tx-acl", 10000, NULL));
    cJSON *j = pos_test_sub_expect(&f->sub, "TRANSACTION_COMPLETED", "tx-acl", 10000, NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    assert_int_equal(counter(f, "counter:terminal:" TID ":payments_approved", 1), 1);
    assert_int_equal(pos_test_int(&f->redis, "SCARD active_transactions:" SID), 0);

    /* Read-through, and tracking telling the agent a value changed. */
    char *v = pos_fix_local_get(f, "product:P-1");
    assert_string_equal(v, "{\"name\":\"Espresso\"}");
    free(v);
    pos_fix_redis_set(f, "product:P-1", "{\"name\":\"Ristretto\"}");
    bool fresh = false;
    for (int i = 0; i < 100 && !fresh; i++) {
        v = pos_fix_local_get(f, "product:P-1");
        fresh = v != NULL && strstr(v, "Ristretto") != NULL;
        free(v);
        pos_test_sleep_ms(20);
    }
    assert_true(fresh);
    v = pos_fix_local_get(f, "inventory:" SID ":P-2");
    assert_non_null(v);
    free(v);

    /* The outbox: the application's publish and counter go out. */
    redisContext *local = pos_fix_local(f);
    r = redisCommand(local, "PUBLISH transaction:" SID " {\"type\":\"SALE\"}");
    assert_non_null(r);
    freeReplyObject(r);
    /* (An application's counter: counter:terminal:* are the agent's own,
     * which the local API does not write.) */
    r = redisCommand(local, "INCRBY counter:pos:" TID ":sales 2");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    redisFree(local);
    bool sale = false;
    for (int i = 0; i < 20 && !sale; i++) {
        char *m = pos_test_sub_next(&f->sub, 500, NULL, 0);
        sale = m != NULL && strstr(m, "\"SALE\"") != NULL;
        free(m);
    }
    assert_true(sale);
    assert_int_equal(counter(f, "counter:pos:" TID ":sales", 2), 2);

    /* A session written through under the rule: SET ... PX with its
     * :origin companion, then the logout (PEXPIRE 0, no DEL in the rule). */
    local = pos_fix_local(f);
    r = redisCommand(local, "SET session:acl-1 %s EX 60", "{\"cashierId\":\"C-1\"}");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    bool written = false;
    for (int i = 0; i < 100 && !written; i++) {
        written = pos_test_int(&f->redis, "EXISTS session:acl-1 session:acl-1:origin") == 2;
        pos_test_sleep_ms(50);
    }
    assert_true(written);
    r = redisCommand(local, "DEL session:acl-1");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = pos_test_int(&f->redis, "EXISTS session:acl-1 session:acl-1:origin") == 0;
        pos_test_sleep_ms(50);
    }
    assert_true(gone);
    redisFree(local);

    /* The local API's shared-state commands: Redis decides under the rule. */
    local = pos_fix_local(f);
    r = redisCommand(local, "RATELIMIT acl-check 60000 5");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    assert_string_equal(r->element[3]->str, "redis");
    freeReplyObject(r);
    assert_int_equal(pos_test_int(&f->redis, "ZCARD rate_limit:acl-check:60000"), 1);
    r = redisCommand(local, "SMEMBERS active_transactions:" SID);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    r = redisCommand(local, "TERMINALS");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    assert_int_equal(r->element[0]->element[1]->type, REDIS_REPLY_STRING); /* its status */
    freeReplyObject(r);
    /* INFO memory with the probe (+info). */
    long long used = -1;
    for (int i = 0; i < 30 && used <= 0; i++) {
        used = pos_fix_local_info(local, "health", "redis_used_memory");
        pos_test_sleep_ms(100);
    }
    assert_true(used > 0);
    redisFree(local);

    /* Fleet visibility: the clock check, the metrics hash with its TTL,
     * and a diagnostics report on this terminal's reply channel. */
    pos_fix_wait_log(f, "clock: offset", 1, 5000);
    assert_true(pos_test_int(&f->redis, "TTL terminal:" TID ":metrics") > 0);
    pos_test_sub_close(&f->sub);
    const char *diag[] = {"diag:reply:" TID ":acl", NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, diag), 0);
    assert_true(pos_test_int(&f->redis, "PUBLISH diag:" TID " %s",
                             "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"acl-1\","
                             "\"replyTo\":\"diag:reply:" TID ":acl\"}") >= 1);
    char *report = pos_test_sub_next(&f->sub, 5000, NULL, 0);
    assert_non_null(report);
    assert_non_null(strstr(report, "\"DIAG_REPORT\""));
    free(report);

    /* Nothing the agent does was refused. */
    assert_int_equal(pos_test_agent_log_count(&f->agent, "NOPERM"), 0);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "refused by Redis"), 0);

    /* A clean stop writes offline and gives the lease up. */
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 10000), 0);
    assert_true(pos_fix_wait_status(&f->redis, "offline", 2000, NULL) >= 0);
    assert_null(pos_test_get(&f->redis, "posagent:lease:" TID));
    assert_int_equal(pos_test_agent_log_count(&f->agent, "NOPERM"), 0);
}

/* The same credentials, used as an attacker on the till would. */
static void test_credentials_cannot(void **state)
{
    pos_fix_t *f = *state;

    pos_ini_set(&f->ini, "redis", "url", "redis://%s:%s@127.0.0.1:%u", USER, PASS,
                (unsigned)f->redis.port);
    apply_rule(f);
    pos_fix_redis_set(f, "inventory:S-999:P-1", "{\"quantity\":7}");
    pos_fix_redis_set(f, "product:P-1", "{\"name\":\"Espresso\"}");
    redisContext *c = as_till(f);

    /* Another terminal's diagnostics: neither its requests nor its replies. */
    expect_noperm(c, "SUBSCRIBE diag:reply:T-0002:x");
    expect_noperm(c, "HSET terminal:T-0002:metrics link_up 1");
    expect_noperm(c, "PUBLISH payment:T-0002 %s",
                  "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-x\",\"amount\":9,"
                  "\"currency\":\"EUR\"}");
    /* (system:alerts is the till's to subscribe to, and Redis 7's channel
     * rules do not tell publishing from subscribing: docs/acl.md.) */
    expect_noperm(c, "SET terminal:T-0002:status %s", "{\"status\":\"offline\"}");
    expect_noperm(c, "SET posagent:lease:T-0002 x");
    expect_noperm(c, "GET inventory:S-999:P-1");
    expect_noperm(c, "MGET inventory:S-999:P-1");
    expect_noperm(c, "SET product:P-1 x");
    expect_noperm(c, "FLUSHALL");
    expect_noperm(c, "FLUSHDB");
    expect_noperm(c, "CONFIG GET *");
    expect_noperm(c, "CONFIG SET maxmemory 1");
    expect_noperm(c, "KEYS *");
    expect_noperm(c, "DEL terminal:" TID ":status");
    expect_noperm(c, "ACL LIST");
    expect_noperm(c, "EVAL %s 1 terminal:T-0002:status", "return redis.call('SET', KEYS[1], 'x')");
    expect_noperm(c, "SUBSCRIBE payment:T-0002");
    /* What the till may do still works for it. */
    redisFree(c);
    c = as_till(f);
    redisReply *r = redisCommand(c, "GET product:P-1");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    r = redisCommand(c, "SET terminal:" TID ":status x EX 5");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_flow_under_the_rule),
        POS_FIX_TEST(test_credentials_cannot),
    };
    return cmocka_run_group_tests_name("acl", tests, NULL, NULL);
}
