/*
 * Offline reads and the local API end to end: the POS application's view.
 * Values read while online are served while Redis is down and after the
 * agent restarts offline; inventory messages update the local copy at once;
 * CACHE_INVALIDATE drops entries by glob; messages published through the
 * local API while offline arrive, all and in order, after a restart.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/proxy.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

static void test_reads_survive_outage_and_restart(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_redis_set(f, "product:P-1", "{\"name\":\"Espresso\",\"price\":2.50}");
    pos_fix_redis_set(f, "user:U-9", "{\"name\":\"Ann\"}");
    pos_fix_start_online(f);

    char *v = pos_fix_local_get(f, "product:P-1");
    assert_string_equal(v, "{\"name\":\"Espresso\",\"price\":2.50}");
    free(v);
    assert_null(pos_fix_local_get(f, "product:NOPE"));
    /* MGET, EXISTS, TTL */
    redisContext *c = pos_fix_local_connect(f);
    redisReply *r = redisCommand(c, "MGET product:P-1 user:U-9 product:NOPE");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[1]->str, "{\"name\":\"Ann\"}");
    assert_int_equal(r->element[2]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS product:P-1 user:U-9 product:NOPE");
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    r = redisCommand(c, "TTL product:P-1");
    assert_true(r->integer > 7100 && r->integer <= 7200);
    freeReplyObject(r);
    /* AGE: how long ago Redis confirmed the copy (ms), -2 for none. */
    r = redisCommand(c, "AGE product:P-1");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_in_range(r->integer, 0, 2000);
    freeReplyObject(r);
    r = redisCommand(c, "AGE product:NOPE");
    assert_int_equal(r->integer, -2);
    freeReplyObject(r);
    r = redisCommand(c, "GET terminal:" TID ":status"); /* not a cached family */
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);

    /* Redis down: the same values. */
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    v = pos_fix_local_get(f, "product:P-1");
    assert_string_equal(v, "{\"name\":\"Espresso\",\"price\":2.50}");
    free(v);
    /* ... and the caller can tell how old they are: the age keeps growing. */
    pos_test_sleep_ms(1200);
    c = pos_fix_local_connect(f);
    r = redisCommand(c, "AGE product:P-1");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer >= 1200);
    long long age_offline = r->integer;
    freeReplyObject(r);
    redisFree(c);

    /* The agent restarts with Redis still down: still served. */
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    pos_fix_start_local(f);
    v = pos_fix_local_get(f, "product:P-1");
    assert_string_equal(v, "{\"name\":\"Espresso\",\"price\":2.50}");
    free(v);
    v = pos_fix_local_get(f, "user:U-9");
    assert_string_equal(v, "{\"name\":\"Ann\"}");
    free(v);

    /* The technician's CLI on the same socket. */
    const char *bin = getenv("POSAGENT_BIN");
    char *out = NULL;
    const char *get[] = {bin, "--config", f->agent.conf, "cache", "get", "product:P-1", NULL};
    assert_int_equal(pos_test_run(get, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, "Espresso"));
    assert_non_null(strstr(out, "confirmed by Redis"));
    free(out);
    c = pos_fix_local_connect(f);
    r = redisCommand(c, "AGE product:P-1");
    assert_true(r->integer > age_offline); /* kept across the restart */
    freeReplyObject(r);
    redisFree(c);
    const char *status[] = {bin, "--config", f->agent.conf, "status", NULL};
    assert_int_equal(pos_test_run(status, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, TID));
    free(out);
    const char *outbox[] = {bin, "--config", f->agent.conf, "outbox", NULL};
    assert_int_equal(pos_test_run(outbox, NULL, &out, 10000), 0);
    free(out);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    assert_int_equal(pos_test_run(status, NULL, &out, 10000), 69); /* agent not running */
    free(out);
}

static void test_inventory_messages_and_invalidation(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_start_online(f);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH inventory:" SID " %s",
                                  "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID "\","
                                  "\"productId\":\"P-7\",\"quantity\":41,"
                                  "\"lowStockThreshold\":5}"),
                     1);
    assert_true(pos_test_agent_wait_log(&f->agent, "INVENTORY_UPDATED", 1, 3000));
    pos_test_sleep_ms(100);
    /* Offline right after: the new quantity, from the message itself. */
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    char *v = pos_fix_local_get(f, "inventory:" SID ":P-7");
    assert_non_null(v);
    assert_non_null(strstr(v, "\"quantity\":41"));
    assert_null(strstr(v, "\"type\""));
    free(v);

    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    /* Redis came back empty: revalidation found P-7 gone and dropped it. */
    assert_true(pos_test_agent_wait_log(&f->agent, "revalidated after reconnect", 2, 5000));
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH inventory:" SID " %s",
                                  "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID "\","
                                  "\"productId\":\"P-7\",\"quantity\":40,"
                                  "\"lowStockThreshold\":5}"),
                     1);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH inventory:" SID " %s",
                                  "{\"type\":\"LOW_STOCK_ALERT\",\"storeId\":\"" SID "\","
                                  "\"productId\":\"P-8\",\"quantity\":3,\"lowStockThreshold\":5}"),
                     1);
    assert_true(pos_test_agent_wait_log(&f->agent, "LOW_STOCK_ALERT", 1, 3000));
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH system:alerts %s",
                                  "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"inventory:" SID
                                  ":P-[7]\"}"),
                     1);
    assert_true(pos_test_agent_wait_log(&f->agent, "invalidated 1 entries", 1, 3000));
    /* Counted, nothing left waiting for the store, nothing shed. */
    redisContext *local = pos_fix_local(f);
    assert_int_equal(pos_fix_local_info(local, "cache", "invalidate_messages"), 1);
    assert_int_equal(pos_fix_local_info(local, "cache", "pending_writes"), 0);
    assert_int_equal(pos_fix_local_info(local, "cache", "writes_shed"), 0);
    redisFree(local);
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 2, 5000));
    assert_null(pos_fix_local_get(f, "inventory:" SID ":P-7")); /* dropped */
    v = pos_fix_local_get(f, "inventory:" SID ":P-8");          /* kept */
    assert_non_null(strstr(v, "\"quantity\":3"));
    free(v);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Sends a command on c without reading its reply. */
static void send_only(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    int done = 0;
    va_start(ap, fmt);
    assert_int_equal(redisvAppendCommand(c, fmt, ap), REDIS_OK);
    va_end(ap);
    while (!done) {
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
    }
}

/*
 * Stops the agent and waits until it is stopped (state T): a SIGSTOP
 * takes effect a moment after kill() returns. local is first answered a
 * PING, so that the agent has accepted that connection: accepted after
 * the stop, it would be read a loop turn after whatever else came.
 */
static void agent_freeze(pos_fix_t *f, redisContext *local)
{
    char path[64], stat[256];
    redisReply *pong = redisCommand(local, "PING");
    assert_non_null(pong);
    freeReplyObject(pong);
    assert_int_equal(kill(f->agent.pid, SIGSTOP), 0);
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)f->agent.pid);
    for (int i = 0; i < 500; i++) {
        FILE *fp = fopen(path, "r");
        size_t n = fp != NULL ? fread(stat, 1, sizeof(stat) - 1, fp) : 0;
        if (fp != NULL) {
            fclose(fp);
        }
        stat[n] = '\0';
        const char *p = strrchr(stat, ')');
        if (p != NULL && p[1] == ' ' && p[2] == 'T') {
            return;
        }
        pos_test_sleep_ms(2);
    }
    fail_msg("the agent did not stop");
}

/*
 * A read-through GET in flight when an INVENTORY_UPDATED for its key
 * arrives: Redis read the key (nil) after the message was published, but
 * the agent took the message first, so the nil is older than the value
 * the message put and must not delete it. It did: every later read missed
 * (test_signing's test_every_channel_signed failed one run in three on
 * it). The agent is stopped while the read and the message reach its
 * sockets, so that it takes them in one turn: the read first (it came
 * first), then the message, then Redis's answer to the read.
 */
static void test_inventory_message_during_read(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_start_online(f);
    redisContext *local = pos_fix_local_connect(f);
    for (int i = 0; i < 10; i++) {
        char key[64], msg[256], want[32];
        snprintf(key, sizeof(key), "inventory:" SID ":R-%d", i);
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID "\","
                 "\"productId\":\"R-%d\",\"quantity\":%d}",
                 i, 100 + i);
        snprintf(want, sizeof(want), "\"quantity\":%d", 100 + i);
        agent_freeze(f, local);
        send_only(local, "GET %s", key);
        pos_test_sleep_ms(10);
        assert_int_equal(pos_test_int(&f->redis, "PUBLISH inventory:" SID " %s", msg), 1);
        pos_test_sleep_ms(10);
        assert_int_equal(kill(f->agent.pid, SIGCONT), 0);
        redisReply *r;
        assert_int_equal(redisGetReply(local, (void **)&r), REDIS_OK);
        /* The message's value, or nil when the read was answered first. */
        assert_true(r->type == REDIS_REPLY_NIL ||
                    (r->type == REDIS_REPLY_STRING && strstr(r->str, want) != NULL));
        freeReplyObject(r);
        assert_true(pos_test_agent_wait_log(&f->agent, "inventory:" SID ": INVENTORY_UPDATED",
                                            i + 1, 3000));
        /* Either way, the message's value stays. */
        char *v = pos_fix_local_get(f, key);
        assert_non_null(v);
        assert_non_null(strstr(v, want));
        free(v);
    }
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/*
 * A read-through GET in flight when a CACHE_INVALIDATE matching its key
 * arrives: the answer may have been read before the cloud changed the
 * key, so it is served to the reader but not kept as fresh. The next read
 * goes to Redis again.
 */
static void test_invalidation_during_read(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_redis_set(f, "product:I-1", "v1");
    pos_fix_start_online(f);
    redisContext *local = pos_fix_local_connect(f);
    agent_freeze(f, local);
    send_only(local, "GET %s", "product:I-1");
    pos_test_sleep_ms(10);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH system:alerts %s",
                                  "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"product:I-*\"}"),
                     1);
    pos_test_sleep_ms(10);
    assert_int_equal(kill(f->agent.pid, SIGCONT), 0);
    redisReply *r;
    assert_int_equal(redisGetReply(local, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "v1");
    freeReplyObject(r);
    assert_true(pos_test_agent_wait_log(&f->agent, "invalidated 0 entries", 1, 3000));
    long long gets = pos_fix_redis_gets(f);
    char *v = pos_fix_local_get(f, "product:I-1");
    assert_string_equal(v, "v1");
    free(v);
    assert_int_equal(pos_fix_redis_gets(f), gets + 1); /* not served from the cache */
    /* That answer is kept: the next read is local. */
    v = pos_fix_local_get(f, "product:I-1");
    assert_string_equal(v, "v1");
    free(v);
    assert_int_equal(pos_fix_redis_gets(f), gets + 1);
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/*
 * A tracking invalidation taken while a read-through GET is in flight. It
 * travels on another connection than the GET's answer and may overtake
 * it, and the answer may then be older than the write it is for: cached
 * as fresh, it would stay until the key's next write or its TTL. It is
 * served and kept, but stale, so the next read asks Redis again. The agent
 * is stopped while the read and the invalidation reach its sockets, so
 * that it takes them in one turn: the read (sent on to Redis), then the
 * invalidation, then Redis's answer. Here the write came first, so the
 * answer is the new value (the invalidation cannot tell): kept all the
 * same, a read online asks once more, and offline it would still answer.
 */
static void test_tracking_during_read(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_redis_set(f, "product:T-1", "v1");
    pos_fix_start_online(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 1, 10000));
    redisContext *local = pos_fix_local_connect(f);
    assert_int_equal(pos_fix_local_info(local, "cache", "raced_fetches"), 0);
    agent_freeze(f, local);
    send_only(local, "GET %s", "product:T-1");
    pos_test_sleep_ms(10);
    pos_fix_redis_set(f, "product:T-1", "v2");
    pos_test_sleep_ms(10);
    assert_int_equal(kill(f->agent.pid, SIGCONT), 0);
    redisReply *r;
    assert_int_equal(redisGetReply(local, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "v2");
    freeReplyObject(r);
    assert_int_equal(pos_fix_local_info(local, "cache", "raced_fetches"), 1);
    /* Kept, but stale: the next read goes to Redis, the one after is local. */
    long long gets = pos_fix_redis_gets(f);
    char *v = pos_fix_local_get(f, "product:T-1");
    assert_string_equal(v, "v2");
    free(v);
    assert_int_equal(pos_fix_redis_gets(f), gets + 1);
    v = pos_fix_local_get(f, "product:T-1");
    assert_string_equal(v, "v2");
    free(v);
    assert_int_equal(pos_fix_redis_gets(f), gets + 1);
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Waits up to ms for cond(px), failing the test after. */
static void proxy_wait(pos_test_proxy_t *px, bool (*cond)(pos_test_proxy_t *), int ms,
                       const char *what)
{
    for (int waited = 0; !cond(px); waited += 5) {
        if (waited >= ms) {
            fail_msg("proxy: %s did not happen within %d ms", what, ms);
        }
        pos_test_sleep_ms(5);
    }
}

static const char *passed_needle;

static bool proxy_passed(pos_test_proxy_t *px)
{
    return pos_test_proxy_passed(px, passed_needle);
}

/* The agent has taken what reached its sockets so far: a PING on a
 * connection of its own is answered a loop turn after, at the earliest. */
static void agent_turn(pos_fix_t *f)
{
    redisContext *c = pos_fix_local_connect(f);
    redisReply *r = redisCommand(c, "PING");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

/*
 * The race itself, through a proxy that holds Redis's answer back: the
 * agent's GET is answered v1, then the cloud writes v2, and the tracking
 * invalidation reaches the agent before the answer. The answer is served
 * (it was true when Redis read it) and kept stale: the next read asks
 * Redis and gets v2. Kept as fresh, v1 was the answer until the key's next
 * write or its TTL.
 */
static void test_tracking_overtakes_answer(void **state)
{
    pos_fix_t *f = *state;
    pos_test_proxy_t *px = pos_test_proxy_start(f->redis.port);
    assert_non_null(px);
    pos_ini_set(&f->ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)pos_test_proxy_port(px));
    pos_fix_redis_set(f, "product:X-1", "v1");
    pos_fix_start_online(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 1, 10000));
    redisContext *local = pos_fix_local_connect(f);

    pos_test_proxy_hold(px, "product:X-1");
    send_only(local, "GET %s", "product:X-1");
    proxy_wait(px, pos_test_proxy_holding, 5000, "the GET's answer held");
    pos_fix_redis_set(f, "product:X-1", "v2");
    passed_needle = "product:X-1";
    proxy_wait(px, proxy_passed, 5000, "the invalidation");
    agent_turn(f);
    pos_test_proxy_release(px);

    redisReply *r;
    assert_int_equal(redisGetReply(local, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "v1");
    freeReplyObject(r);
    assert_int_equal(pos_fix_local_info(local, "cache", "raced_fetches"), 1);
    char *v = pos_fix_local_get(f, "product:X-1");
    assert_string_equal(v, "v2");
    free(v);
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    pos_test_proxy_stop(px);
}

/*
 * The same race for the MGETs after a reconnect (the revalidation, or the
 * warm-up's SCAN fallback): an INVENTORY_UPDATED for a key the MGET asked
 * for, taken before its answer, which Redis read before the message. The
 * message's quantity stays; before, the MGET's older value replaced it.
 */
static void test_message_during_revalidation(void **state)
{
    pos_fix_t *f = *state;
    pos_test_proxy_t *px = pos_test_proxy_start(f->redis.port);
    assert_non_null(px);
    pos_ini_set(&f->ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)pos_test_proxy_port(px));
    pos_fix_redis_set(f, "inventory:" SID ":P-9", "{\"quantity\":1}");
    pos_fix_start_online(f);
    char *v = pos_fix_local_get(f, "inventory:" SID ":P-9");
    assert_non_null(v);
    free(v);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    assert_non_null(cloud);
    pos_fix_cut_off(f, cloud, 1);
    redisReply *r = redisCommand(cloud, "SET %s %s", "inventory:" SID ":P-9", "{\"quantity\":2}");
    assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);

    pos_test_proxy_hold(px, "inventory:" SID ":P-9");
    pos_test_cut_off(cloud, false);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    proxy_wait(px, pos_test_proxy_holding, 5000, "the MGET's answer held");
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH inventory:" SID " %s",
                                  "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID "\","
                                  "\"productId\":\"P-9\",\"quantity\":7}"),
                     1);
    assert_true(
        pos_test_agent_wait_log(&f->agent, "inventory:" SID ": INVENTORY_UPDATED", 1, 3000));
    pos_test_proxy_release(px);
    /* The held answer reaches the agent, which does not keep it. */
    redisContext *local = pos_fix_local_connect(f);
    long long raced = 0;
    for (int i = 0; i < 500 && (raced = pos_fix_local_info(local, "cache", "raced_fetches")) < 1;
         i++) {
        pos_test_sleep_ms(10);
    }
    assert_true(raced >= 1);
    redisFree(local);
    /* Offline, so that the answer is the till's copy and nothing else. */
    pos_fix_cut_off(f, cloud, 2);
    v = pos_fix_local_get(f, "inventory:" SID ":P-9");
    assert_non_null(v);
    assert_non_null(strstr(v, "\"quantity\":7"));
    free(v);
    redisFree(cloud);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    pos_test_proxy_stop(px);
}

static void test_publish_while_offline_across_restart(void **state)
{
    pos_fix_t *f = *state;
    redisReply *r;
    pos_fix_start_online(f);
    /* The cloud listens as its own user; the agent is cut off. */
    redisContext *sub = pos_test_cloud_connect(&f->redis);
    assert_non_null(sub);
    r = redisCommand(sub, "SUBSCRIBE transaction:" SID);
    freeReplyObject(r);
    redisContext *adm = pos_test_cloud_connect(&f->redis);
    assert_non_null(adm);
    pos_test_cut_off(adm, true);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));

    /* 1,000 messages through the local API, the agent restarted half way. */
    redisContext *c = pos_fix_local_connect(f);
    for (int i = 0; i < 1000; i++) {
        if (i == 500) {
            redisFree(c);
            assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
            pos_fix_start_local(f);
            c = pos_fix_local_connect(f);
        }
        r = redisCommand(c, "PUBLISH transaction:" SID " {\"type\":\"POS_EVENT\",\"seq\":%d}", i);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    redisFree(c);
    pos_test_cut_off(adm, false);

    for (int i = 0; i < 1000; i++) {
        void *reply = NULL;
        assert_int_equal(redisGetReply(sub, &reply), REDIS_OK);
        r = reply;
        /* In order, stamped by the agent, with its outbox id. */
        cJSON *j = cJSON_Parse(r->element[2]->str);
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
        const cJSON *origin = cJSON_GetObjectItemCaseSensitive(j, "origin");
        if (!cJSON_IsNumber(seq) || seq->valueint != i || !cJSON_IsString(origin) ||
            strcmp(origin->valuestring, "pos-app") != 0 ||
            !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "outboxId"))) {
            fail_msg("message %d: got %s", i, r->element[2]->str);
        }
        cJSON_Delete(j);
        freeReplyObject(r);
    }
    redisFree(sub);
    redisFree(adm);

    /* INFO sections */
    c = pos_fix_local_connect(f);
    r = redisCommand(c, "INFO");
    const char *sections[] = {"# server", "# link",    "# cache",
                              "# outbox", "# payment", "# devices"};
    for (int i = 0; i < 6; i++) {
        assert_non_null(strstr(r->str, sections[i]));
    }
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* A value changed in Redis while the agent was cut off is served within a
 * few seconds of the link coming back: entries not verified since the
 * disconnect are revalidated with MGET. */
static void test_revalidation_after_reconnect(void **state)
{
    pos_fix_t *f = *state;
    redisReply *r;
    pos_fix_redis_set(f, "product:P-2", "old");
    pos_fix_start_online(f);
    char *v = pos_fix_local_get(f, "product:P-2");
    assert_string_equal(v, "old");
    free(v);

    redisContext *adm = pos_test_cloud_connect(&f->redis);
    assert_non_null(adm);
    pos_test_cut_off(adm, true);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    r = redisCommand(adm, "SET product:P-2 new");
    freeReplyObject(r);
    v = pos_fix_local_get(f, "product:P-2"); /* offline: the last known value */
    assert_string_equal(v, "old");
    free(v);
    pos_test_cut_off(adm, false);
    redisFree(adm);
    /* the first line comes from the first connect */
    assert_true(pos_test_agent_wait_log(&f->agent, "revalidated after reconnect", 2, 5000));
    v = pos_fix_local_get(f, "product:P-2");
    assert_string_equal(v, "new");
    free(v);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* A key changed on the server while online: CLIENT TRACKING tells the
 * agent, and the next read returns the new value. */
static void test_tracking_invalidates(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_redis_set(f, "session:S-1", "v1");
    pos_fix_start_local(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 1, 10000));
    char *v = pos_fix_local_get(f, "session:S-1");
    assert_string_equal(v, "v1");
    free(v);
    pos_fix_redis_set(f, "session:S-1", "v2"); /* session TTL is 24 h: only tracking explains v2 */
    v = pos_fix_local_get_until(f, "session:S-1", "v2", 3000);
    assert_string_equal(v, "v2");
    free(v);
    /* A flush marks everything stale: the next read goes to Redis. */
    redisReply *r = pos_test_redis_cmd(&f->redis, "FLUSHALL");
    freeReplyObject(r);
    assert_true(pos_test_agent_wait_log(&f->agent, "Redis flushed", 1, 3000));
    assert_null(pos_fix_local_get(f, "session:S-1"));
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* [inbound] invalidation_rate counts keys Redis reports changed, not its
 * messages: Redis sends one message per turn with every key written in it
 * (an MSET of 50 keys is one), and that one takes 50 from the budget. */
static void test_tracking_budget_counts_keys(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "inbound", "invalidation_rate", "1");
    pos_ini_set(&f->ini, "inbound", "invalidation_burst", "10");
    pos_fix_start_local(f);
    assert_true(pos_test_agent_wait_log(&f->agent, "server-assisted invalidation on", 1, 10000));
    char cmd[2048];
    size_t o = (size_t)snprintf(cmd, sizeof(cmd), "MSET");
    for (int i = 0; i < 50; i++) {
        o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, " product:B-%d v", i);
    }
    redisReply *r = pos_test_redis_cmd(&f->redis, cmd);
    assert_non_null(r);
    freeReplyObject(r);
    assert_true(
        pos_test_agent_wait_log(&f->agent, "tracking invalidations over its budget", 1, 3000));
    assert_true(pos_fix_info(f, "inbound", "invalidation_over_budget") >= 1);
    assert_int_equal(pos_fix_info(f, "inbound", "cache_marked_stale_over_budget"), 1);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Warm-up at the first connect: the store's inventory (SCAN, never KEYS)
 * and the products it references are cached before anyone reads them. */
static void test_warm_up(void **state)
{
    pos_fix_t *f = *state;
    char key[64], val[64];
    for (int i = 0; i < 1200; i++) { /* more than one SCAN page */
        snprintf(key, sizeof(key), "inventory:" SID ":P-%d", i);
        snprintf(val, sizeof(val), "{\"quantity\":%d}", i);
        pos_fix_redis_set(f, key, val);
        if (i % 100 == 0) {
            snprintf(key, sizeof(key), "product:P-%d", i);
            snprintf(val, sizeof(val), "{\"name\":\"Item %d\"}", i);
            pos_fix_redis_set(f, key, val);
        }
    }
    pos_fix_redis_set(f, "inventory:S-999:P-1", "{\"other\":\"store\"}");
    pos_fix_start_local(f);
    assert_true(pos_test_agent_wait_log(
        &f->agent, "warm-up: 1200 inventory and 12 product entries stored", 1, 20000));
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    char *v = pos_fix_local_get(f, "inventory:" SID ":P-1199");
    assert_string_equal(v, "{\"quantity\":1199}");
    free(v);
    v = pos_fix_local_get(f, "product:P-700");
    assert_string_equal(v, "{\"name\":\"Item 700\"}");
    free(v);
    assert_null(pos_fix_local_get(f, "inventory:S-999:P-1")); /* another store's: not warmed */
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_reads_survive_outage_and_restart),
        POS_FIX_TEST(test_inventory_messages_and_invalidation),
        POS_FIX_TEST(test_inventory_message_during_read),
        POS_FIX_TEST(test_invalidation_during_read),
        POS_FIX_TEST(test_tracking_budget_counts_keys),
        POS_FIX_TEST(test_tracking_during_read),
        POS_FIX_TEST(test_tracking_overtakes_answer),
        POS_FIX_TEST(test_message_during_revalidation),
        POS_FIX_TEST(test_publish_while_offline_across_restart),
        POS_FIX_TEST(test_revalidation_after_reconnect),
        POS_FIX_TEST(test_tracking_invalidates),
        POS_FIX_TEST(test_warm_up),
    };
    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
