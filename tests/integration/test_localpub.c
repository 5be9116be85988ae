/*
 * What the POS application may publish through the local API (issue 13
 * item 1, CONTRACT.md "Messages from the POS application"), each tested as
 * the attack it stops, through the whole agent against a real Redis:
 * PUBLISH payment:T-0001 PAYMENT_REQUESTED must not charge; a forged
 * origin reaches the cloud stamped "pos-app" with this till's ids;
 * another terminal's or store's channel, system:alerts (CACHE_INVALIDATE,
 * SYSTEM_ALERT) and inventory poisoning are refused with an error naming
 * the rule; a flood of refused publishes queues nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/timing.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

static void start(pos_fix_t *f)
{
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    pos_fix_wait_log(f, "hal: pinpad: ready", 1, 5000);
    const char *channels[] = {"payment:" TID,
                              "payment:T-0002",
                              "transaction:" SID,
                              "inventory:" SID,
                              "system:alerts",
                              "transaction:S-999",
                              NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, channels), 0);
}

/* PUBLISH through the local API: the reply (freeReplyObject it). */
static redisReply *local_publish(redisContext *c, const char *channel, const char *json)
{
    redisReply *r = redisCommand(c, "PUBLISH %s %s", channel, json);
    assert_non_null(r);
    return r;
}

/* The publish is refused with an error containing "needle". */
static void refused(redisContext *c, const char *channel, const char *json, const char *needle)
{
    redisReply *r = local_publish(c, channel, json);
    if (r->type != REDIS_REPLY_ERROR || strstr(r->str, needle) == NULL) {
        fprintf(stderr, "PUBLISH %s: type %d %s, wanted an error with '%s'\n", channel, r->type,
                r->str != NULL ? r->str : "", needle);
    }
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, needle));
    freeReplyObject(r);
}

static void accepted(redisContext *c, const char *channel, const char *json)
{
    redisReply *r = local_publish(c, channel, json);
    if (r->type != REDIS_REPLY_INTEGER) {
        fprintf(stderr, "PUBLISH %s: %s\n", channel, r->str != NULL ? r->str : "");
    }
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* Nothing arrives on the subscribed channels for ms (but what "allowed" is
 * on, skipped: NULL for none). */
static void nothing_published(pos_fix_t *f, int ms)
{
    char channel[128];
    char *m = pos_test_sub_next(&f->sub, ms, channel, sizeof(channel));
    if (m != NULL) {
        fprintf(stderr, "unexpected message on %s: %s\n", channel, m);
    }
    assert_null(m);
}

/* Issue 13 item 1: a local PAYMENT_REQUESTED on payment:T-0001 charged the
 * till's own pinpad. Now refused, nothing reaches Redis, nothing charged. */
static void test_payment_request_from_local_api_refused(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    long long delivered = pos_fix_info(f, "outbox", "delivered");

    refused(c, "payment:" TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-local-1\",\"amount\":1.00,"
            "\"currency\":\"EUR\"}",
            "payment:* and system:* are never published from the till");
    refused(c, "payment:" TID,
            "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\",\"transactionId\":\"tx-9\"}",
            "payment:* and system:*");
    refused(c, "payment:T-0002",
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-local-2\",\"amount\":1.00,"
            "\"currency\":\"EUR\"}",
            "only on this till's store channels transaction:" SID " and inventory:" SID);
    /* Payment outcomes forged on the store's transaction channel: the
     * wrong type for the application. */
    refused(c, "transaction:" SID,
            "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\",\"transactionId\":\"tx-9\"}",
            "type PAYMENT_APPROVED is not the POS application's to publish");
    nothing_published(f, 1500);
    assert_int_equal(pos_fix_charges(f), 0);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "PAYMENT_PROCESSING"), 0);
    assert_int_equal(pos_fix_info(f, "outbox", "entries"), 0);
    assert_int_equal(pos_fix_info(f, "outbox", "delivered"), delivered);
    redisFree(c);
}

/* A forged origin and forged ids: the agent's stamp wins. */
static void test_forged_origin_is_stamped(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    uint64_t before = (uint64_t)time(NULL) * 1000u;

    accepted(c, "transaction:" SID,
             "{\"type\":\"TRANSACTION_COMPLETED\",\"origin\":\"terminal\",\"terminalId\":"
             "\"T-9999\",\"storeId\":\"S-999\",\"ts\":1,\"sig\":\"00\",\"outboxId\":7,"
             "\"transactionId\":\"cash-1\",\"amount\":3.5}");
    char channel[128];
    char *m = pos_test_sub_next(&f->sub, 5000, channel, sizeof(channel));
    assert_non_null(m);
    assert_string_equal(channel, "transaction:" SID);
    cJSON *j = cJSON_Parse(m);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "origin")->valuestring, "pos-app");
    assert_string_equal(cJSON_GetObjectItem(j, "terminalId")->valuestring, TID);
    assert_string_equal(cJSON_GetObjectItem(j, "storeId")->valuestring, SID);
    assert_true(cJSON_GetObjectItem(j, "ts")->valuedouble >= (double)before - 1000);
    assert_null(cJSON_GetObjectItem(j, "sig")); /* no key configured: unsigned */
    assert_true(cJSON_GetObjectItem(j, "outboxId")->valuedouble > 7 ||
                cJSON_GetObjectItem(j, "outboxId")->valuedouble < 7);
    assert_string_equal(cJSON_GetObjectItem(j, "transactionId")->valuestring, "cash-1");
    /* Each stamped member once. */
    assert_int_equal(strstr(strstr(m, "\"origin\"") + 1, "\"origin\"") == NULL, 1);
    cJSON_Delete(j);
    free(m);
    redisFree(c);
}

/* system:alerts and other stores' channels: refused, naming the rule; the
 * display never shows the alert, the cache is not dropped. */
static void test_system_and_other_store_refused(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_redis_set(f, "product:P-1", "{\"name\":\"Espresso\"}");
    start(f);
    char *v = pos_fix_local_get(f, "product:P-1");
    assert_non_null(v);
    free(v);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);

    refused(c, "system:alerts", "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"*\"}",
            "payment:* and system:* are never published from the till");
    refused(c, "system:alerts",
            "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"warning\",\"message\":\"Card reader "
            "broken - pay cash\"}",
            "payment:* and system:*");
    refused(c, "system:terminals", "{\"type\":\"TERMINAL_STATUS\"}", "payment:* and system:*");
    refused(c, "transaction:S-999", "{\"type\":\"TRANSACTION_COMPLETED\"}",
            "only on this till's store channels");
    refused(c, "inventory:S-999",
            "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-9\",\"quantity\":0}",
            "only on this till's store channels");
    refused(c, "transaction:" SID "x", "{\"type\":\"X\"}", "only on this till's store channels");
    /* A system message's type on an allowed channel. */
    refused(c, "transaction:" SID, "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"*\"}",
            "type CACHE_INVALIDATE is not the POS application's");
    refused(c, "inventory:" SID, "{\"type\":\"SYSTEM_ALERT\",\"message\":\"pay cash\"}",
            "type SYSTEM_ALERT is not the POS application's");
    nothing_published(f, 1500);
    char *screen = pos_fix_sim_text(f, "display.txt");
    assert_null(strstr(screen, "Card reader"));
    free(screen);
    v = pos_fix_local_get(f, "product:P-1");
    assert_non_null(v);
    free(v);
    redisFree(c);
}

/* Inventory poisoning: the application may publish its own store's
 * inventory updates (other tills apply them), but never about another
 * store, never malformed; what it says about the store is stamped. */
static void test_inventory_poisoning(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);

    /* Body naming another store: stamped with ours, so it can never be
     * cached as inventory:S-999:P-9 (by this till or another). */
    accepted(c, "inventory:" SID,
             "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-999\",\"productId\":\"P-9\","
             "\"quantity\":4}");
    char channel[128];
    char *m = pos_test_sub_next(&f->sub, 5000, channel, sizeof(channel));
    assert_non_null(m);
    assert_string_equal(channel, "inventory:" SID);
    assert_non_null(strstr(m, "\"storeId\":\"" SID "\""));
    assert_null(strstr(m, "S-999"));
    assert_non_null(strstr(m, "\"origin\":\"pos-app\""));
    free(m);
    /* Its own echo is applied like the cloud's (the contract), under our
     * store only. */
    pos_fix_wait_log(f, "INVENTORY_UPDATED from the POS application of " TID, 1, 5000);
    assert_null(pos_fix_local_get(f, "inventory:S-999:P-9"));

    /* Malformed for the receivers: refused here. */
    refused(c, "inventory:" SID, "{\"type\":\"INVENTORY_UPDATED\",\"quantity\":0}",
            "PUBLISH refused: ");
    refused(c, "inventory:" SID,
            "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-1\",\"quantity\":\"zero\"}",
            "PUBLISH refused: ");
    refused(c, "inventory:" SID, "not json", "must be a JSON object");
    refused(c, "inventory:" SID, "[1,2]", "must be a JSON object");
    refused(c, "transaction:" SID, "{\"type\":7}", "needs a string \"type\"");
    refused(c, "transaction:" SID, "{\"amount\":1}", "needs a string \"type\"");
    refused(c, "transaction:" SID, "{\"type\":\"a b\"}", "needs a string \"type\"");
    refused(c, "transaction:" SID, "{\"type\":\"X\",\"type\":\"PAYMENT_APPROVED\"}", "named twice");
    refused(c, "transaction:" SID, "{\"type\":\"INVENTORY_UPDATED\"}", "not the POS application");
    nothing_published(f, 1000);
    redisFree(c);
}

/*
 * The application's inventory updates come back to its own agent (Redis
 * delivers a PUBLISH to the publisher's subscriber too), which applies
 * them like the cloud's. Each took a token of inventory:{storeId}'s
 * budget: a few updates in a row went over it, and the agent marked its
 * whole cache stale because of its own messages. They cost none now, and
 * are still applied.
 */
static void test_own_inventory_echoes_cost_no_budget(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "inbound", "inventory_rate", "1");
    pos_ini_set(&f->ini, "inbound", "inventory_burst", "2");
    start(f);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    char json[128], key[64];

    enum { N = 5 }; /* over the burst, well within a second */
    for (int i = 0; i < N; i++) {
        snprintf(json, sizeof(json),
                 "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-%d\",\"quantity\":%d}", i,
                 10 + i);
        accepted(c, "inventory:" SID, json);
    }
    pos_fix_wait_log(f, "INVENTORY_UPDATED from the POS application of " TID, N, 5000);
    assert_int_equal(pos_fix_info(f, "inbound", "inventory_own_echoes"), N);
    assert_int_equal(pos_fix_info(f, "inbound", "inventory_over_budget"), 0);
    assert_int_equal(pos_fix_info(f, "inbound", "cache_marked_stale_over_budget"), 0);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "inventory:" SID ":P-%d", i);
        snprintf(json, sizeof(json), "\"quantity\":%d", 10 + i);
        char *v = pos_fix_local_get(f, key);
        assert_non_null(v);
        assert_non_null(strstr(v, json));
        free(v);
    }
    redisFree(c);
}

/* Flood: thousands of pipelined refused publishes queue nothing, publish
 * nothing, and the agent keeps answering. */
static void test_flood_of_refused_publishes(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    const int n = 2000;
    long long delivered = pos_fix_info(f, "outbox", "delivered");

    for (int i = 0; i < n; i++) {
        redisAppendCommand(c, "PUBLISH %s %s", i % 2 ? "payment:" TID : "system:alerts",
                           "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-f\","
                           "\"amount\":1,\"currency\":\"EUR\"}");
    }
    int errors = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        /* Refused, or told to slow down: never queued. */
        errors += r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    assert_int_equal(errors, n);
    redisReply *r = redisCommand(c, "PING");
    assert_non_null(r);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    nothing_published(f, 1000);
    assert_int_equal(pos_fix_charges(f), 0);
    assert_int_equal(pos_fix_info(f, "outbox", "entries"), 0);
    assert_int_equal(pos_fix_info(f, "outbox", "delivered"), delivered);
    redisFree(c);
}

/*
 * The chain the contract allows, end to end: the application on T-0001
 * publishes an inventory update; its agent stamps and signs it; T-0002 of
 * the same store (same key) verifies it and applies it like the cloud's,
 * so an offline read there sees the new quantity.
 */
static void test_signed_update_applied_by_other_till(void **state)
{
    pos_fix_t *f = *state;
    char key[400], sock2[400];
    pos_test_agent_t second;

    memset(&second, 0, sizeof(second));
    snprintf(key, sizeof(key), "%s.hmac", f->redis.dir);
    pos_fix_private_file(key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    pos_ini_set(&f->ini, "payment", "hmac_key_file", "%s", key);
    start(f);
    static pos_ini_t ini2;
    ini2 = f->ini;
    pos_ini_set(&ini2, "terminal", "id", "T-0002");
    assert_int_equal(pos_test_agent_start(&second, pos_ini_text(&ini2), NULL), 0);
    assert_true(pos_test_agent_wait_log(&second, "link: online", 1, 10000));

    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    accepted(c, "inventory:" SID,
             "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-5\",\"quantity\":7}");
    char channel[128];
    char *m = pos_test_sub_next(&f->sub, 5000, channel, sizeof(channel));
    assert_non_null(m);
    assert_non_null(strstr(m, "\"origin\":\"pos-app\""));
    assert_non_null(strstr(m, "\"sig\":\""));
    free(m);
    redisFree(c);

    bool applied = pos_test_agent_wait_log(
        &second, "INVENTORY_UPDATED from the POS application of " TID, 1, 5000);
    if (!applied) {
        char *log = pos_test_agent_log_read(&second);
        fprintf(stderr, "second agent:\n%s\n", log != NULL ? log : "");
        free(log);
    }
    assert_true(applied);
    snprintf(sock2, sizeof(sock2), "%s/agent.sock", second.dir);
    struct timeval tv = {5, 0};
    redisContext *c2 = redisConnectUnixWithTimeout(sock2, tv);
    assert_non_null(c2);
    assert_int_equal(c2->err, 0);
    redisReply *r = redisCommand(c2, "GET inventory:" SID ":P-5");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "\"quantity\":7"));
    freeReplyObject(r);
    redisFree(c2);
    pos_test_agent_stop(&second, SIGKILL, 2000);
    pos_test_agent_cleanup(&second);
    unlink(key);
}

/* n PUBLISHes one after another: each answered once durable in the
 * outbox. Prints p50/p99 of the round trip in microseconds. */
static void measure(redisContext *c, const char *what, int n)
{
    uint64_t *us = calloc((size_t)n, sizeof(*us));
    assert_non_null(us);
    for (int i = 0; i < n; i++) {
        uint64_t t0 = pos_test_now_ns();
        redisReply *r = redisCommand(
            c, "PUBLISH transaction:" SID " {\"type\":\"CART_UPDATED\",\"seq\":%d}", i);
        us[i] = (pos_test_now_ns() - t0) / 1000;
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    pos_test_pct_t p = pos_test_percentiles(us, (size_t)n);
    printf("[ MEASURED ] local PUBLISH (checked, stamped, durable in the outbox) %s: n=%d p50 %.2f "
           "ms p99 %.2f ms\n",
           what, n, p.p50 / 1000.0, p.p99 / 1000.0);
    free(us);
}

/*
 * Online and offline (the agent cut off from Redis), a publish is answered
 * once durable; what was published offline reaches the cloud, stamped and
 * in order, when the link returns.
 */
static void test_publish_offline_delivered_in_order(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *sub = pos_test_cloud_connect(&f->redis);
    assert_non_null(cloud);
    assert_non_null(sub);
    redisReply *r = redisCommand(sub, "SUBSCRIBE transaction:" SID);
    assert_non_null(r);
    freeReplyObject(r);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);

    measure(c, "online", 300);
    pos_test_cut_off(cloud, true);
    pos_fix_wait_log(f, "link: offline", 1, 5000);
    measure(c, "offline", 300);
    for (int i = 0; i < 5; i++) {
        accepted(c, "transaction:" SID, "{\"type\":\"OFFLINE_SALE\",\"origin\":\"terminal\"}");
    }
    assert_true(pos_fix_info(f, "outbox", "entries") >= 305);
    pos_test_cut_off(cloud, false);
    /* Everything arrives: the 300 online ones first, then the offline ones
     * in order, the 5 stamped pos-app. */
    int seen = 0, offline_seen = 0, last_seq = -1;
    bool ordered = true;
    while (seen < 605) {
        redisReply *m = NULL;
        if (redisGetReply(sub, (void **)&m) != REDIS_OK || m == NULL) {
            break;
        }
        const char *body = m->element[2]->str;
        const char *seq = strstr(body, "\"seq\":");
        if (seq != NULL) {
            int v = atoi(seq + 6);
            if (seen >= 300 && v != (last_seq + 1) % 300) {
                ordered = false;
            }
            last_seq = v;
        } else if (strstr(body, "OFFLINE_SALE") != NULL) {
            offline_seen++;
            assert_non_null(strstr(body, "\"origin\":\"pos-app\""));
            assert_null(strstr(body, "\"origin\":\"terminal\""));
        }
        seen++;
        freeReplyObject(m);
    }
    assert_int_equal(seen, 605);
    assert_int_equal(offline_seen, 5);
    assert_true(ordered);
    redisFree(c);
    redisFree(sub);
    redisFree(cloud);
}

/*
 * Publishes are bounded like the application's writes (docs/local-api.md
 * "Bounds"): offline, past 90 % of [store] outbox_max_entries a PUBLISH is
 * answered -BUSY, so a flood of them never makes the outbox drop what was
 * queued before it (here a session write) for room.
 */
static void test_publish_flood_offline_drops_nothing(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "store", "outbox_max_entries", "100");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    assert_non_null(cloud);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);

    pos_test_cut_off(cloud, true);
    pos_fix_wait_log(f, "link: offline", 1, 5000);
    redisReply *r = redisCommand(c, "SET session:keep v1 EX 600");
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STATUS) {
        fprintf(stderr, "SET: %s\n", r->str != NULL ? r->str : "");
    }
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    int ok = 0, busy = 0;
    for (int i = 0; i < 150; i++) {
        r = local_publish(c, "transaction:" SID, "{\"type\":\"OFFLINE_SALE\"}");
        if (r->type == REDIS_REPLY_INTEGER) {
            ok++;
        } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSY", 4) == 0) {
            busy++;
        }
        freeReplyObject(r);
    }
    printf("offline flood: %d publishes taken, %d BUSY, %lld outbox entries dropped\n", ok, busy,
           pos_fix_info(f, "outbox", "dropped"));
    assert_true(busy > 0);
    assert_int_equal(pos_fix_info(f, "outbox", "dropped"), 0);

    pos_test_cut_off(cloud, false);
    char *v = NULL;
    for (int i = 0; i < 100 && v == NULL; i++) {
        pos_test_sleep_ms(100);
        v = pos_test_get(&f->redis, "session:keep");
    }
    assert_non_null(v);
    assert_string_equal(v, "v1");
    free(v);
    redisFree(c);
    redisFree(cloud);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_payment_request_from_local_api_refused),
        POS_FIX_TEST(test_forged_origin_is_stamped),
        POS_FIX_TEST(test_system_and_other_store_refused),
        POS_FIX_TEST(test_inventory_poisoning),
        POS_FIX_TEST(test_own_inventory_echoes_cost_no_budget),
        POS_FIX_TEST(test_flood_of_refused_publishes),
        POS_FIX_TEST(test_publish_flood_offline_drops_nothing),
        POS_FIX_TEST(test_signed_update_applied_by_other_till),
        POS_FIX_TEST(test_publish_offline_delivered_in_order),
    };
    pos_fix_filters_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
