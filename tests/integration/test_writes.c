/*
 * The local API's writes, end to end through the agent process and a real
 * redis-server: counters (INCR/INCRBY counter:*) answer the value as the
 * till knows it (Redis's last answer plus increments not yet delivered),
 * online, offline and across a restart offline; sessions and temporary
 * data (SET/SETEX/EXPIRE/DEL on session:* and temp:*) are applied to the
 * local copy at once and written through to Redis in order with their
 * remaining TTL, also after an offline period and a restart; writes to
 * the cloud's keys and malformed arguments are refused; a flood is
 * bounded. See docs/local-api.md "Sessions, temporary data and counters".
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/proxy.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

static pos_fix_t *g_fix; /* for the agent's log when a reply does not come */

/* A reply that must come: else the agent's log, and the test fails. */
#define must(r)                                                                                    \
    do {                                                                                           \
        if ((r) == NULL) {                                                                         \
            pos_fix_dump_log(g_fix);                                                               \
            fail_msg("no reply");                                                                  \
        }                                                                                          \
    } while (0)

/* A command through the local API that must answer an integer. */
static long long lint(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    must(r);
    if (r->type != REDIS_REPLY_INTEGER) {
        fail_msg("%s: answered type %d: %s", fmt, r->type, r->str != NULL ? r->str : "");
    }
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A command that must answer +OK. */
static void lok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    must(r);
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0) {
        fail_msg("%s: answered type %d: %s", fmt, r->type, r->str != NULL ? r->str : "");
    }
    freeReplyObject(r);
}

/* A command that must answer an error containing want. */
static void lerr(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    must(r);
    if (r->type != REDIS_REPLY_ERROR || strstr(r->str, want) == NULL) {
        fail_msg("%s: wanted an error with \"%s\", got type %d: %s", fmt, want, r->type,
                 r->str != NULL ? r->str : "");
    }
    freeReplyObject(r);
}

/* GET key on c: the value (malloc'd) or NULL for nil. */
static char *get(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    must(r);
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) {
        fail_msg("GET %s: type %d: %s", key, r->type, r->str != NULL ? r->str : "");
    }
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

static void expect_get(redisContext *c, const char *key, const char *want)
{
    char *v = get(c, key);
    if (want == NULL ? v != NULL : (v == NULL || strcmp(v, want) != 0)) {
        fail_msg("GET %s: wanted %s, got %s", key, want != NULL ? want : "(nil)",
                 v != NULL ? v : "(nil)");
    }
    free(v);
}

/* Waits up to timeout_ms for GET key on Redis to answer want (NULL: nil). */
static void wait_redis(redisContext *cloud, const char *key, const char *want, int timeout_ms)
{
    char *v = NULL;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        v = get(cloud, key);
        if (want == NULL ? v == NULL : (v != NULL && strcmp(v, want) == 0)) {
            free(v);
            return;
        }
        free(v);
        pos_test_sleep_ms(50);
    }
    v = get(cloud, key);
    fail_msg("Redis %s: wanted %s, still %s", key, want != NULL ? want : "(nil)",
             v != NULL ? v : "(nil)");
}

/* ---- counters --------------------------------------------------------------------------- */

static void test_counter_online_and_another_client(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    /* The value, not a queue position. */
    assert_int_equal(lint(c, "INCRBY counter:daily_sales 5"), 5);
    assert_int_equal(lint(c, "INCR counter:daily_sales"), 6);
    wait_redis(cloud, "counter:daily_sales", "6", 5000);
    expect_get(c, "counter:daily_sales", "6");
    /* The seed's TTL, set once (EXPIRE ... NX). */
    long long ttl = lint(cloud, "TTL counter:daily_sales");
    assert_true(ttl > 86000 && ttl <= 86400);
    freeReplyObject(redisCommand(cloud, "EXPIRE counter:daily_sales 500"));
    /* Another client increments in Redis: a GET online with nothing
     * pending answers Redis's value, and the next INCR goes on from it. */
    assert_int_equal(lint(cloud, "INCRBY counter:daily_sales 100"), 106);
    expect_get(c, "counter:daily_sales", "106");
    assert_int_equal(lint(c, "INCR counter:daily_sales"), 107);
    wait_redis(cloud, "counter:daily_sales", "107", 5000);
    ttl = lint(cloud, "TTL counter:daily_sales");
    assert_true(ttl > 0 && ttl <= 500); /* NX: the first expiry stays */
    /* A counter the till has never seen: Redis's value first. */
    pos_fix_redis_set(f, "counter:pre", "40");
    assert_int_equal(lint(c, "INCR counter:pre"), 41);
    assert_int_equal(lint(c, "INCRBY counter:pre 2"), 43);
    wait_redis(cloud, "counter:pre", "43", 5000);
    /* Negative steps and an unknown counter. */
    assert_int_equal(lint(c, "INCRBY counter:daily_sales -7"), 100);
    expect_get(c, "counter:never", NULL);
    wait_redis(cloud, "counter:daily_sales", "100", 5000);
    redisFree(c);
    redisFree(cloud);
}

static void test_counter_offline_and_restart(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    assert_int_equal(lint(c, "INCR counter:tickets"), 1);
    wait_redis(cloud, "counter:tickets", "1", 5000);
    /* Its entry is deleted too: cut off before that, the increment is
     * sent again after the restart and counts twice in Redis (at least
     * once, docs/local-api.md "Counters"; the till's own count stays 6:
     * test_counter_restart_answered_not_acked). */
    for (int i = 0; i < 250 && pos_fix_info(f, "outbox", "outbox_entries") != 0; i++) {
        pos_test_sleep_ms(20);
    }
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), 0);
    pos_fix_cut_off(f, cloud, 1);
    /* Offline: answered on the till, from the last confirmed value. */
    assert_int_equal(lint(c, "INCRBY counter:tickets 4"), 5);
    assert_int_equal(lint(c, "INCR counter:tickets"), 6);
    expect_get(c, "counter:tickets", "6");
    /* Meanwhile another till adds 10 in Redis: the till cannot know it. */
    assert_int_equal(lint(cloud, "INCRBY counter:tickets 10"), 11);
    expect_get(c, "counter:tickets", "6");
    /* A restart offline: the confirmed value is on the local store, the
     * pending increments in the outbox. */
    redisFree(c);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    expect_get(c, "counter:tickets", "6");
    assert_int_equal(lint(c, "INCR counter:tickets"), 7);
    /* Online again: delivered once each, Redis ends with every increment. */
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    wait_redis(cloud, "counter:tickets", "17", 10000);
    pos_test_sleep_ms(200);
    expect_get(c, "counter:tickets", "17");
    assert_int_equal(lint(c, "INCR counter:tickets"), 18);
    wait_redis(cloud, "counter:tickets", "18", 5000);
    redisFree(c);
    redisFree(cloud);
}

/* Waits up to 5 s for the outbox to be empty: every entry acknowledged by
 * Redis and its deletion on the local store. */
static void wait_outbox_empty(pos_fix_t *f)
{
    for (int i = 0; i < 2500 && pos_fix_info(f, "outbox", "outbox_entries") != 0; i++) {
        pos_test_sleep_ms(2);
    }
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), 0);
}

/*
 * Redis applied an INCRBY and the agent took its answer, but the entry
 * stayed in the outbox: here Redis refuses the EXPIRE that completes it
 * (the state a link cut off between the two replies leaves too). The
 * till's own count takes the increment once across a restart: the
 * confirmed value kept on the local store includes it, so the outbox's
 * copy is not pending on top of it (Redis gets it again when it is sent
 * again: at least once).
 */
static void test_counter_restart_answered_not_acked(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    assert_int_equal(lint(c, "INCR counter:tickets"), 1);
    wait_redis(cloud, "counter:tickets", "1", 5000);
    wait_outbox_empty(f);
    lok(cloud, "ACL SETUSER default -expire");
    assert_int_equal(lint(c, "INCR counter:tickets"), 2);
    wait_redis(cloud, "counter:tickets", "2", 5000);
    pos_fix_wait_log(f, "refused by Redis", 1, 5000);
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), 1);
    pos_fix_cut_off(f, cloud, 1);
    assert_int_equal(lint(c, "INCRBY counter:tickets 4"), 6);
    assert_int_equal(lint(c, "INCR counter:tickets"), 7);
    redisFree(c);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    expect_get(c, "counter:tickets", "7");
    assert_int_equal(lint(c, "INCR counter:tickets"), 8);
    /* Online again: the refused entry goes again and counts twice in
     * Redis (at least once); the till takes Redis's word once delivered. */
    lok(cloud, "ACL SETUSER default +expire");
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    wait_redis(cloud, "counter:tickets", "9", 10000);
    wait_outbox_empty(f);
    expect_get(c, "counter:tickets", "9");
    redisFree(c);
    redisFree(cloud);
}

/*
 * Killed just after Redis's answers to two increments were acknowledged
 * on the local store (nothing left in the outbox): the confirmed values
 * are on the local store too, so a restart offline answers both counters
 * with their last increment.
 */
static void test_counter_killed_once_acked(void **state)
{
    pos_fix_t *f = *state;
    redisReply *r;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    assert_int_equal(lint(c, "INCR counter:a"), 1);
    assert_int_equal(lint(c, "INCR counter:b"), 1);
    wait_redis(cloud, "counter:b", "1", 5000);
    wait_outbox_empty(f);
    pos_test_sleep_ms(1000); /* the confirmed values are on the store by now */
    /* Both in one go: Redis answers them together. */
    redisAppendCommand(c, "INCR counter:a");
    redisAppendCommand(c, "INCR counter:b");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, 2);
        freeReplyObject(r);
    }
    wait_outbox_empty(f);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGKILL, 2000), 128 + SIGKILL);
    redisFree(c);
    wait_redis(cloud, "counter:a", "2", 5000);
    wait_redis(cloud, "counter:b", "2", 5000);
    pos_test_cut_off(cloud, true);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    expect_get(c, "counter:a", "2");
    expect_get(c, "counter:b", "2");
    redisFree(c);
    redisFree(cloud);
}

/*
 * Killed once Redis's answer to an increment is on the local store but
 * before the entry's deletion is (it waits for the answer to be kept):
 * the restart finds the increment both in the kept value and in the
 * outbox, and counts it once. That moment lasts a lazy commit (up to
 * POS_STORE_LAZY_MS); another write of the store can end it early, so a
 * counter of its own is tried again until one is caught.
 */
static void test_counter_killed_before_ack(void **state)
{
    pos_fix_t *f = *state;
    long long entries, outbox = -1;
    char key[32];
    int tries;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    assert_int_equal(lint(c, "INCR counter:tickets"), 1);
    wait_outbox_empty(f);
    pos_test_sleep_ms(1000); /* its value is on the store by now */
    for (tries = 1; tries <= 10; tries++) {
        entries = pos_fix_info(f, "cache", "entries");
        /* A counter the till has not kept yet: its value is one more
         * entry of the local store once Redis answered and it is kept. */
        snprintf(key, sizeof(key), "counter:fresh%d", tries);
        assert_int_equal(lint(c, "INCRBY %s 3", key), 3);
        for (int i = 0; i < 2500 && pos_fix_info(f, "cache", "entries") == entries; i++) {
            pos_test_sleep_ms(2);
        }
        outbox = pos_fix_info(f, "outbox", "outbox_entries");
        if (outbox == 1) {
            break; /* the moment this test is about: the entry is still there */
        }
        wait_outbox_empty(f);
    }
    print_message("caught after %d tries\n", tries);
    assert_int_equal(outbox, 1);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGKILL, 2000), 128 + SIGKILL);
    redisFree(c);
    pos_test_cut_off(cloud, true);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), 1);
    expect_get(c, key, "3");
    assert_int_equal(lint(c, "INCR %s", key), 4);
    expect_get(c, "counter:tickets", "1");
    /* Online again: the entry goes again (twice in Redis: at least once). */
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    wait_redis(cloud, key, "7", 10000);
    redisFree(c);
    redisFree(cloud);
}

/* ---- sessions and temporary data ------------------------------------------------------------ */

static void test_session_online(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    lok(c, "SET session:s1 %s EX 60", "{\"cashierId\":\"C-7\"}");
    expect_get(c, "session:s1", "{\"cashierId\":\"C-7\"}");
    wait_redis(cloud, "session:s1", "{\"cashierId\":\"C-7\"}", 5000);
    long long ttl = lint(cloud, "TTL session:s1");
    assert_true(ttl > 55 && ttl <= 60);
    /* The companion key says who wrote it. */
    char *origin = get(cloud, "session:s1:origin");
    assert_non_null(origin);
    assert_non_null(strstr(origin, "\"terminalId\":\"" TID "\""));
    assert_non_null(strstr(origin, "\"storeId\":\"" SID "\""));
    assert_non_null(strstr(origin, "\"origin\":\"pos-app\""));
    free(origin);
    ttl = lint(cloud, "TTL session:s1:origin");
    assert_true(ttl > 55 && ttl <= 60);
    /* refreshSession */
    assert_int_equal(lint(c, "EXPIRE session:s1 600"), 1);
    ttl = lint(c, "TTL session:s1");
    assert_true(ttl > 595 && ttl <= 600);
    assert_true(lint(c, "PTTL session:s1") > 595000);
    for (int i = 0; i < 100 && lint(cloud, "TTL session:s1") <= 60; i++) {
        pos_test_sleep_ms(50);
    }
    assert_true(lint(cloud, "TTL session:s1") > 595);
    /* A session the cloud created is refreshed too. */
    pos_fix_redis_set(f, "session:cloud1", "{\"cashierId\":\"C-9\"}");
    expect_get(c, "session:cloud1", "{\"cashierId\":\"C-9\"}");
    assert_int_equal(lint(c, "EXPIRE session:cloud1 300"), 1);
    expect_get(c, "session:cloud1", "{\"cashierId\":\"C-9\"}");
    for (int i = 0; i < 100 && lint(cloud, "TTL session:cloud1") < 0; i++) {
        pos_test_sleep_ms(50);
    }
    ttl = lint(cloud, "TTL session:cloud1");
    assert_true(ttl > 295 && ttl <= 300);
    assert_int_equal(lint(c, "EXPIRE session:nobody 300"), 0);
    /* Logout */
    assert_int_equal(lint(c, "DEL session:s1 session:nobody"), 1);
    expect_get(c, "session:s1", NULL);
    assert_int_equal(lint(c, "TTL session:s1"), -2);
    assert_int_equal(lint(c, "EXPIRE session:s1 60"), 0); /* ended: not revived */
    expect_get(c, "session:s1", NULL);
    wait_redis(cloud, "session:s1", NULL, 5000);
    wait_redis(cloud, "session:s1:origin", NULL, 5000);
    /* Temporary data expires on the till by itself; SETEX and PX too. */
    lok(c, "SETEX temp:cart-1 1 %s", "[1,2,3]");
    lok(c, "SET temp:cart-2 x PX 600000");
    expect_get(c, "temp:cart-1", "[1,2,3]");
    wait_redis(cloud, "temp:cart-2", "x", 5000);
    pos_test_sleep_ms(1200);
    expect_get(c, "temp:cart-1", NULL);
    expect_get(cloud, "temp:cart-1", NULL);
    /* Later writes win, in order. */
    for (int i = 0; i < 50; i++) {
        lok(c, "SET temp:last %d EX 60", i);
    }
    expect_get(c, "temp:last", "49");
    wait_redis(cloud, "temp:last", "49", 5000);
    redisFree(c);
    redisFree(cloud);
}

static void test_session_offline_and_restart(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    pos_fix_redis_set(f, "session:old", "{\"cashierId\":\"C-1\"}");
    pos_fix_redis_set(f, "temp:gone", "old");
    expect_get(c, "session:old", "{\"cashierId\":\"C-1\"}");
    pos_fix_cut_off(f, cloud, 1);
    /* A cashier logs in and another out while the uplink is down. */
    lok(c, "SET session:off %s EX 30", "{\"cashierId\":\"C-2\"}");
    expect_get(c, "session:off", "{\"cashierId\":\"C-2\"}");
    assert_int_equal(lint(c, "DEL session:old"), 1);
    expect_get(c, "session:old", NULL);
    /* Expires before it can be delivered: sent as DEL. */
    lok(c, "SET temp:gone new PX 300");
    lok(c, "SET temp:keep v EX 1000");
    assert_int_equal(lint(c, "EXPIRE temp:keep 2000"), 1);
    /* A restart offline keeps the local copies and the outbox. */
    redisFree(c);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_fix_start_local(f);
    c = pos_fix_local_connect(f);
    expect_get(c, "session:off", "{\"cashierId\":\"C-2\"}");
    long long ttl = lint(c, "TTL session:off");
    assert_true(ttl > 0 && ttl <= 30);
    expect_get(c, "session:old", NULL);
    pos_test_sleep_ms(400);
    expect_get(c, "temp:gone", NULL);
    expect_get(c, "temp:keep", "v");
    /* Online again: everything arrives, with what is left of the TTL. */
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    wait_redis(cloud, "session:off", "{\"cashierId\":\"C-2\"}", 10000);
    wait_redis(cloud, "session:old", NULL, 5000);
    wait_redis(cloud, "temp:gone", NULL, 5000);
    wait_redis(cloud, "temp:keep", "v", 5000);
    for (int i = 0; i < 100 && lint(cloud, "TTL temp:keep") < 1000; i++) {
        pos_test_sleep_ms(50);
    }
    ttl = lint(cloud, "TTL session:off");
    assert_true(ttl > 0 && ttl < 30);
    ttl = lint(cloud, "TTL temp:keep");
    assert_true(ttl > 1000 && ttl <= 2000);
    /* A session read from Redis, then written and ended by the till: the
     * old copy read before is not served again. */
    pos_fix_redis_set(f, "session:reread", "cloud-v1");
    expect_get(c, "session:reread", "cloud-v1");
    lok(c, "SET session:reread till-v2 PX 300");
    expect_get(c, "session:reread", "till-v2");
    wait_redis(cloud, "session:reread", "till-v2", 5000);
    pos_test_sleep_ms(400);
    expect_get(c, "session:reread", NULL);
    /* Delivered: the cloud's later write wins once the till's is over. */
    pos_test_sleep_ms(300);
    pos_fix_redis_set(f, "session:old", "{\"cashierId\":\"C-3\"}");
    expect_get(c, "session:old", "{\"cashierId\":\"C-3\"}");
    redisFree(c);
    redisFree(cloud);
}

/* ---- refusals, malformed arguments, flood ------------------------------------------------------
 */

static void test_refused_and_malformed(void **state)
{
    pos_fix_t *f = *state;
    char big[70000], longkey[600];

    pos_fix_start_online(f);
    redisContext *c = pos_fix_local_connect(f);
    lerr(c, "owned by the cloud", "SET user:1 x");
    lerr(c, "owned by the cloud", "SET product:P-1 x EX 10");
    lerr(c, "owned by the cloud", "DEL inventory:" SID ":P-1");
    lerr(c, "owned by the cloud", "EXPIRE user:1 10");
    lerr(c, "owned by the cloud", "INCR product:1");
    lerr(c, "only session:* and temp:*", "SET foo x");
    lerr(c, "only session:* and temp:*", "SET terminal:" TID ":status x");
    lerr(c, "only session:* and temp:*", "DEL session:a payment:x");
    lerr(c, "only counter:*", "INCR session:a");
    lerr(c, "INCR and INCRBY only", "SET counter:x 5");
    lerr(c, "use GET", "MGET product:P-1 session:a");
    lerr(c, "use GET", "EXISTS temp:a");
    lerr(c, "invalid expire", "SET session:a v EX -1");
    lerr(c, "invalid expire", "SET session:a v EX 0");
    lerr(c, "not an integer", "SET session:a v EX abc");
    lerr(c, "not an integer", "SET session:a v EX 10x");
    lerr(c, "syntax error", "SET session:a v EX");
    lerr(c, "syntax error", "SET session:a v NX");
    lerr(c, "syntax error", "SET session:a v KEEPTTL x");
    lerr(c, "wrong number", "SET session:a");
    lerr(c, "invalid expire", "SETEX session:a -5 v");
    lerr(c, "not an integer", "EXPIRE session:a 1.5");
    lerr(c, "not an integer", "INCRBY counter:x abc");
    lerr(c, "not an integer", "INCRBY counter:x 99999999999999999999");
    lerr(c, "NUL", "SET %b v", "session:a\0b", (size_t)11);
    memset(longkey, 'k', sizeof(longkey));
    memcpy(longkey, "session:", 8);
    lerr(c, "key too long", "SET %b v", longkey, sizeof(longkey));
    memset(big, 'v', sizeof(big));
    lerr(c, "value too large", "SET session:big %b", big, sizeof(big));
    /* TTL and PTTL of a key too long to be one the till wrote: none
     * (it once overflowed the local copy's key buffer on the stack). */
    assert_int_equal(lint(c, "TTL %b", longkey, sizeof(longkey)), -2);
    assert_int_equal(lint(c, "PTTL %b", longkey, sizeof(longkey)), -2);
    memcpy(longkey, "counter:", 8);
    assert_int_equal(lint(c, "TTL %b", longkey, sizeof(longkey)), -2);
    /* key:origin is the agent's stamp of key: the application neither
     * writes nor deletes it (it would speak for the till, or unsay it). */
    lerr(c, "stamp", "SET session:a:origin {\"origin\":\"cloud\"}");
    lerr(c, "stamp", "SETEX temp:a:origin 60 x");
    lerr(c, "stamp", "EXPIRE session:a:origin 60");
    lerr(c, "stamp", "PEXPIRE session:a:origin 60");
    lerr(c, "stamp", "DEL session:b session:a:origin");
    /* Integers as Redis reads them: no sign but '-', no spaces. */
    lerr(c, "not an integer", "SET session:a v EX %s", " 5");
    lerr(c, "not an integer", "SET session:a v EX %s", "+5");
    lerr(c, "not an integer", "INCRBY counter:x %s", " 5");
    lerr(c, "not an integer", "INCRBY counter:x %s", "+5");
    /* Nothing of it reached the local copy. */
    expect_get(c, "session:a", NULL);
    expect_get(c, "session:big", NULL);
    /* Still serving. */
    lok(c, "SET session:a v");
    assert_int_equal(lint(c, "TTL session:a"), -1);
    redisFree(c);
}

/*
 * counter:terminal:* are the agent's own payment counters (CONTRACT.md
 * "Keys the agent writes"): an application, or anything else on the
 * socket, that moved them would speak for the till. The local API reads
 * them and refuses every write, for this terminal and any other; the
 * application's own counters still count, and the agent's own increments
 * (a payment) still reach Redis.
 */
static void test_agent_counters_refused(void **state)
{
    pos_fix_t *f = *state;
    const char *mine = "counter:terminal:" TID ":payments_approved";
    const char *other = "counter:terminal:T-0002:payments_approved";

    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    assert_true(pos_test_int(&f->redis, "PUBLISH payment:" TID " %s",
                             "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-ctr\","
                             "\"amount\":2.50,\"currency\":\"EUR\"}") >= 1);
    wait_redis(cloud, mine, "1", 10000);

    lerr(c, "agent's own", "INCR %s", mine);
    lerr(c, "agent's own", "INCRBY %s 1000", mine);
    lerr(c, "agent's own", "INCRBY %s -1", mine);
    lerr(c, "agent's own", "INCR %s", other);
    lerr(c, "agent's own", "INCRBY counter:terminal:T-0002:payments_declined 3");
    lerr(c, "agent's own", "SET %s 99", mine);
    lerr(c, "agent's own", "SETEX %s 60 99", mine);
    lerr(c, "agent's own", "EXPIRE %s 1", mine);
    lerr(c, "agent's own", "PEXPIRE %s 1", mine);
    lerr(c, "agent's own", "DEL session:x %s", mine);
    /* Reads stay. */
    expect_get(c, mine, "1");
    /* The application's counters still count; delivered in order after
     * anything the refusals could have queued, so once it is in Redis
     * nothing of them is on its way. */
    assert_int_equal(lint(c, "INCR counter:pos:" SID ":tickets"), 1);
    wait_redis(cloud, "counter:pos:" SID ":tickets", "1", 5000);
    expect_get(cloud, mine, "1");
    expect_get(cloud, other, NULL);
    expect_get(cloud, "counter:terminal:T-0002:payments_declined", NULL);
    expect_get(c, mine, "1");
    redisFree(c);
    redisFree(cloud);
}

/*
 * A counter's increments not yet delivered are summed on the till; with a
 * negative confirmed value, two increments whose value fits a long long
 * once had a pending sum that did not (signed overflow: UBSan stopped the
 * agent, a release build answered garbage).
 */
static void test_counter_near_the_limits(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    /* Redis's value, confirmed by a GET online with nothing pending. */
    pos_fix_redis_set(f, "counter:edge", "-5");
    expect_get(c, "counter:edge", "-5");
    /* Pipelined: both pending at once. */
    redisAppendCommand(c, "INCRBY counter:edge 9223372036854775807");
    redisAppendCommand(c, "INCRBY counter:edge 5");
    redisAppendCommand(c, "GET counter:edge");
    redisAppendCommand(c, "INCR counter:edge");
    redisReply *r = NULL;
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer == 9223372036854775802LL);
    freeReplyObject(r);
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer == 9223372036854775807LL);
    freeReplyObject(r);
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "9223372036854775807");
    freeReplyObject(r);
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "overflow"));
    freeReplyObject(r);
    wait_redis(cloud, "counter:edge", "9223372036854775807", 5000);
    expect_get(c, "counter:edge", "9223372036854775807");
    /* And down to the other end. */
    pos_fix_redis_set(f, "counter:low", "5");
    expect_get(c, "counter:low", "5");
    redisAppendCommand(c, "INCRBY counter:low -9223372036854775808");
    redisAppendCommand(c, "INCRBY counter:low -5");
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_true(r->type == REDIS_REPLY_INTEGER && r->integer == -9223372036854775803LL);
    freeReplyObject(r);
    assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
    assert_true(r->type == REDIS_REPLY_INTEGER && r->integer == (-9223372036854775807LL - 1));
    freeReplyObject(r);
    wait_redis(cloud, "counter:low", "-9223372036854775808", 5000);
    redisFree(c);
    redisFree(cloud);
}

/* INCRBY key by on the local API: its integer answer. */
static long long local_incrby(redisContext *c, const char *key, long long by)
{
    redisReply *r = redisCommand(c, "INCRBY %s %lld", key, by);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/*
 * Review: an increment Redis refused stayed pending. The INCRBY's refusal
 * was logged, but the EXPIRE sent after it succeeded and completed the
 * entry: for good (the sum would overflow) the till's GET counted the
 * increment for ever; for a while (Redis out of memory) the increment was
 * lost, although the outbox had taken it.
 */
static void test_counter_refused_increments(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);

    /* For good: the cloud moved the counter where the till's increment overflows. */
    pos_fix_redis_set(f, "counter:refused", "-5");
    expect_get(c, "counter:refused", "-5");
    pos_fix_redis_set(f, "counter:refused", "9223372036854775800");
    assert_true(local_incrby(c, "counter:refused", 100) == 95); /* the till's view */
    uint64_t until = pos_test_now_ms() + 5000;
    while (pos_fix_local_info(c, "outbox", "refused_for_good") != 1) {
        assert_true(pos_test_now_ms() < until);
        pos_test_sleep_ms(50);
    }
    while (pos_fix_local_info(c, "outbox", "outbox_entries") != 0) { /* the ack is a commit */
        assert_true(pos_test_now_ms() < until);
        pos_test_sleep_ms(50);
    }
    expect_get(c, "counter:refused", "9223372036854775800"); /* nothing pending */
    assert_true(pos_test_agent_wait_log(&f->agent, "refuses it whatever is tried again", 1, 1000));

    /* For a while: Redis out of memory refuses the INCRBY, not the EXPIRE. */
    pos_fix_redis_set(f, "counter:later", "10");
    expect_get(c, "counter:later", "10");
    redisReply *r = redisCommand(cloud, "CONFIG SET maxmemory 1");
    assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_int_equal(local_incrby(c, "counter:later", 7), 17);
    assert_true(pos_test_agent_wait_log(&f->agent, "OOM", 1, 5000));
    pos_test_sleep_ms(300); /* the EXPIRE's answer too */
    assert_int_equal(pos_fix_local_info(c, "outbox", "outbox_entries"), 1); /* kept */
    r = redisCommand(cloud, "CONFIG SET maxmemory 0");
    assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    /* Sent again at the next connect: applied once. */
    pos_test_int(&f->redis, "CLIENT KILL TYPE pubsub");
    wait_redis(cloud, "counter:later", "17", 10000);
    until = pos_test_now_ms() + 5000;
    while (pos_fix_local_info(c, "outbox", "outbox_entries") != 0) {
        assert_true(pos_test_now_ms() < until);
        pos_test_sleep_ms(50);
    }
    expect_get(c, "counter:later", "17");
    redisFree(c);
    redisFree(cloud);
}

/* DEL of n keys session:<prefix><i> on c: the reply (must come). */
static redisReply *del_keys(redisContext *c, const char *prefix, int n)
{
    const char **argv = calloc((size_t)n + 1, sizeof(*argv));
    size_t *lens = calloc((size_t)n + 1, sizeof(*lens));
    char *keys = calloc((size_t)n, 32);

    assert_true(argv != NULL && lens != NULL && keys != NULL);
    argv[0] = "DEL";
    lens[0] = 3;
    for (int i = 0; i < n; i++) {
        argv[i + 1] = keys + (size_t)i * 32;
        lens[i + 1] = (size_t)snprintf(keys + (size_t)i * 32, 32, "session:%s%d", prefix, i);
    }
    redisReply *r = redisCommandArgv(c, n + 1, argv, lens);
    must(r);
    free(argv);
    free(lens);
    free(keys);
    return r;
}

/*
 * The application's share of the outbox holds for a DEL of many keys (one
 * entry each): it once checked the room for one, so a DEL at the edge of
 * the share overfilled the outbox, which then dropped the oldest entries.
 */
static void test_del_many_keys_within_share(void **state)
{
    pos_fix_t *f = *state;
    enum { MAX = 2000, SHARE = MAX * 9 / 10, KEYS = 1000 };

    /* A [store] section of the test's own: its path too (the agent's
     * directory, made now; the fixture removes it). */
    snprintf(f->agent.dir, sizeof(f->agent.dir), "/tmp/posagent-agent-XXXXXX");
    assert_non_null(mkdtemp(f->agent.dir));
    pos_ini_set(&f->ini, "store", "path", "%s/store", f->agent.dir);
    pos_ini_set(&f->ini, "store", "outbox_max_entries", "%d", MAX);
    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    pos_fix_cut_off(f, cloud, 1);
    /* Up to one entry short of the share, then a DEL of 1,000 keys. */
    redisReply *r = del_keys(c, "a", KEYS);
    if (r->type != REDIS_REPLY_INTEGER) {
        fail_msg("DEL of %d keys: type %d %s", KEYS, r->type, r->str != NULL ? r->str : "");
    }
    freeReplyObject(r);
    r = del_keys(c, "b", SHARE - 1 - KEYS);
    if (r->type != REDIS_REPLY_INTEGER) {
        fail_msg("DEL of %d keys: type %d %s", SHARE - 1 - KEYS, r->type,
                 r->str != NULL ? r->str : "");
    }
    freeReplyObject(r);
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), SHARE - 1);
    r = del_keys(c, "c", KEYS);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSY", 4) != 0) {
        fail_msg("DEL of %d keys with %d entries queued: type %d %s", KEYS, SHARE - 1, r->type,
                 r->str != NULL ? r->str : "");
    }
    freeReplyObject(r);
    /* Nothing was dropped for it, and a single write still fits. */
    assert_int_equal(pos_fix_info(f, "outbox", "dropped"), 0);
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), SHARE - 1);
    /* The outbox's share has room for it. The local store may still be
     * applying the 1,799 tombstones (two changes each) on a loaded
     * machine: "local store busy" says try again, and is retried; "outbox
     * nearly full" would be the failure this test is about. */
    for (int i = 0;; i++) {
        r = redisCommand(c, "SET session:last v EX 600");
        must(r);
        bool busy = r->type == REDIS_REPLY_ERROR && strstr(r->str, "local store busy") != NULL;
        if (!busy) {
            if (r->type != REDIS_REPLY_STATUS) {
                fail_msg("SET after the DELs: type %d %s", r->type, r->str != NULL ? r->str : "");
            }
            freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
        assert_true(i < 200);
        pos_test_sleep_ms(50);
    }
    redisFree(c);
    redisFree(cloud);
}

/*
 * CACHE.CLEAR (and the cloud's CACHE_INVALIDATE) drop copies of Redis
 * keys; what the application wrote on the till is not one: offline, a
 * session written and then a CACHE.CLEAR * still reads as written.
 */
static void test_cache_clear_keeps_writes(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    pos_fix_redis_set(f, "product:P-cc", "{\"name\":\"Tea\"}");
    expect_get(c, "product:P-cc", "{\"name\":\"Tea\"}");
    pos_fix_cut_off(f, cloud, 1);
    lok(c, "SET session:cc v1 EX 600");
    lok(c, "SET temp:cc t1");
    lok(c, "SET session:gone v EX 600");
    assert_int_equal(lint(c, "DEL session:gone"), 1);
    /* The copy of the cloud's product goes; the till's writes stay. */
    assert_int_equal(lint(c, "CACHE.CLEAR *"), 1);
    expect_get(c, "product:P-cc", NULL);
    expect_get(c, "session:cc", "v1");
    expect_get(c, "temp:cc", "t1");
    expect_get(c, "session:gone", NULL);
    assert_true(lint(c, "TTL session:cc") > 590);
    assert_int_equal(lint(c, "CACHE.CLEAR ?session:*"), 0);
    expect_get(c, "session:cc", "v1");
    /* Delivered as written once the link is back. */
    pos_test_cut_off(cloud, false);
    wait_redis(cloud, "session:cc", "v1", 10000);
    wait_redis(cloud, "temp:cc", "t1", 10000);
    redisFree(c);
    redisFree(cloud);
}

static void test_flood_bounded(void **state)
{
    pos_fix_t *f = *state;
    enum { N = 20000, CHUNK = 1000 };
    int ok = 0, busy = 0, last_ok = -1;

    pos_fix_set_heartbeat(f, 1, 3);
    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    pos_fix_cut_off(f, cloud, 1);
    /* Pipelined in chunks of 1,000, each chunk's replies read before the
     * next is sent: a client that does not read its replies is paused once
     * 512 KiB of them wait, and disconnected when it reads none for
     * [local] stall_timeout_s (docs/local-api.md), which is not what this
     * test is about. */
    for (int i = 0; i < N; i++) {
        if (i % CHUNK == 0) {
            for (int j = i; j < N && j < i + CHUNK; j++) {
                redisAppendCommand(c, "SET session:f%d v%d EX 600", j, j);
            }
        }
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        if (r->type == REDIS_REPLY_STATUS) {
            ok++;
            last_ok = i;
        } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSY", 4) == 0) {
            busy++;
        } else {
            fail_msg("SET %d: type %d: %s", i, r->type, r->str != NULL ? r->str : "");
        }
        freeReplyObject(r);
    }
    print_message("flood offline: %d SET accepted, %d refused BUSY\n", ok, busy);
    assert_int_equal(ok + busy, N);
    assert_true(busy > 0);
    assert_true(ok > 1000 && ok <= 9000);
    redisReply *r = redisCommand(c, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    /* The flood may have spent this client's request budget: a read is
     * then refused BUSY with a retry time, and answered once retried. */
    for (int i = 0; i < 400; i++) {
        r = redisCommand(c, "GET session:f0");
        must(r);
        bool refused = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSY", 4) == 0;
        if (!refused) {
            assert_int_equal(r->type, REDIS_REPLY_STRING);
            assert_string_equal(r->str, "v0");
            freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
        assert_true(i < 399);
        pos_test_sleep_ms(5);
    }
    /* Online: the accepted ones arrive, the heartbeat goes on. */
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    wait_redis(cloud, "session:f0", "v0", 20000);
    for (int i = 0; i < 600 && lint(cloud, "EXISTS session:f%d", last_ok) == 0; i++) {
        pos_test_sleep_ms(100);
    }
    assert_int_equal(lint(cloud, "EXISTS session:f%d", last_ok), 1);
    long long ttl = lint(cloud, "TTL " POS_FIX_STATUS_KEY);
    assert_true(ttl > 0 && ttl <= 3);
    /* The refusals were for the moment only: a write goes through again
     * once the backlog has drained. */
    int tries = 0;
    for (;; tries++) {
        r = redisCommand(c, "SET session:after v EX 60");
        must(r);
        bool done = r->type == REDIS_REPLY_STATUS;
        if (!done && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSY", 4) != 0)) {
            fail_msg("SET after the flood: %s", r->str != NULL ? r->str : "?");
        }
        freeReplyObject(r);
        if (done) {
            break;
        }
        assert_true(tries < 200);
        pos_test_sleep_ms(100);
    }
    print_message("flood: a write accepted again after %d retries\n", tries);
    wait_redis(cloud, "session:after", "v", 10000);
    redisFree(c);
    redisFree(cloud);
}

static redisReply *send_session_set(redisContext *c, int i, void *arg)
{
    (void)i;
    (void)arg;
    return redisCommand(c, "SET session:x v EX 60");
}

static void check_session_set(const redisReply *r, bool offline, void *arg)
{
    (void)offline;
    (void)arg;
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
}

static void test_session_write_latency(void **state)
{
    const pos_fix_latency_t l = {
        .what = "MEASURED SET session:x v EX 60",
        .n = 1000,
        .max_p99_ms = 200,
        .send = send_session_set,
        .check = check_session_set,
    };
    pos_fix_latency_run(*state, &l);
}

/* The fixture's setup, and g_fix for must(). */
/*
 * The uplink takes nothing for 2 s (a proxy that stops reading, small
 * socket buffers on both sides, as on a slow cellular link) while the POS
 * application writes 60 session values of 60,000 bytes. The outbox's
 * window counted entries, not bytes: 64 of these queued about 3.8 MB for
 * the connection, past its 1 MiB write queue, which dropped the link;
 * the next connect resent the same burst and could drop it again. The
 * window now holds at most 256 KiB of entries (one at least): the link
 * stays up, and every value arrives once the uplink flows again.
 */
static void test_large_writes_keep_the_link(void **state)
{
    pos_fix_t *f = *state;
    enum { N = 60, LEN = 60000 };
    char *value = malloc(LEN + 1);
    pos_test_proxy_t *px = pos_test_proxy_start(f->redis.port);

    assert_non_null(value);
    assert_non_null(px);
    memset(value, 'x', LEN);
    value[LEN] = '\0';
    pos_test_proxy_tight(px);
    pos_ini_set(&f->ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)pos_test_proxy_port(px));
    /* The agent's sockets keep a 64 KiB send buffer (the kernel doubles
     * it), as on a slow uplink: on loopback it would grow to 4 MB and hold
     * the whole burst itself. */
    const char *const *env = pos_slowfs_env_sndbuf(&f->slowfs, 32 * 1024);
    assert_non_null(env);
    pos_fix_agent_start(f, env);
    pos_fix_wait_online(f, 1, 10000);
    redisContext *c = pos_fix_local_connect(f);
    pos_test_proxy_stall(px, true);
    for (int i = 0; i < N; i++) {
        value[0] = (char)('a' + i % 26);
        lok(c, "SET session:big%d %s EX 600", i, value);
    }
    pos_test_sleep_ms(2000);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    assert_int_equal(lint(cloud, "EXISTS session:big0"), 0); /* nothing went through */
    pos_test_proxy_stall(px, false);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "session:big%d", i);
        value[0] = (char)('a' + i % 26);
        wait_redis(cloud, key, value, 20000);
    }
    if (pos_test_agent_wait_log(&f->agent, "link: offline", 1, 10)) {
        pos_fix_dump_log(f);
        fail_msg("the link dropped under the burst");
    }
    free(value);
    redisFree(c);
    redisFree(cloud);
    pos_test_agent_stop(&f->agent, SIGTERM, 10000);
    pos_test_proxy_stop(px);
}

static int setup(void **state)
{
    int rc = pos_fix_setup(state);
    g_fix = rc == 0 ? *state : NULL;
    return rc;
}
#define WRITES_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, pos_fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WRITES_TEST(test_counter_online_and_another_client),
        WRITES_TEST(test_counter_offline_and_restart),
        WRITES_TEST(test_counter_restart_answered_not_acked),
        WRITES_TEST(test_counter_killed_once_acked),
        WRITES_TEST(test_counter_killed_before_ack),
        WRITES_TEST(test_session_online),
        WRITES_TEST(test_session_offline_and_restart),
        WRITES_TEST(test_refused_and_malformed),
        WRITES_TEST(test_agent_counters_refused),
        WRITES_TEST(test_counter_near_the_limits),
        WRITES_TEST(test_counter_refused_increments),
        WRITES_TEST(test_del_many_keys_within_share),
        WRITES_TEST(test_cache_clear_keeps_writes),
        WRITES_TEST(test_flood_bounded),
        WRITES_TEST(test_session_write_latency),
        WRITES_TEST(test_large_writes_keep_the_link),
    };
    pos_fix_filters_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
