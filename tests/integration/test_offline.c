/*
 * Nothing is lost: payment outcomes produced while the agent cannot reach
 * Redis wait in the durable outbox and arrive, in order, once it can; they
 * survive an agent restart; a payment interrupted by kill -9 is settled
 * from the journal and never charged again.
 *
 * To keep the test's own subscriber connected while the agent is cut off,
 * the agent logs in as Redis's default user and the test as "cloud": the
 * agent is cut off by disabling the default user and killing its clients.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

typedef struct fixture {
    pos_fix_t fx;
    redisContext *cloud; /* commands, as user "cloud" */
    redisContext *sub;   /* subscriber, as user "cloud" */
    char mnt[32];        /* a tmpfs mounted by the test, "" for none */
} fixture_t;

static void cmd(fixture_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(f->cloud, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    freeReplyObject(r);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_start(&f->fx) != 0) {
        free(f);
        return -1;
    }
    f->cloud = pos_test_cloud_connect(&f->fx.redis);
    f->sub = pos_test_cloud_connect(&f->fx.redis);
    assert_non_null(f->cloud);
    assert_non_null(f->sub);
    redisReply *r = redisCommand(f->sub, "SUBSCRIBE payment:" TID);
    freeReplyObject(r);
    r = redisCommand(f->sub, "SUBSCRIBE transaction:" SID);
    freeReplyObject(r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    redisFree(f->cloud);
    redisFree(f->sub);
    pos_fix_stop(&f->fx); /* the agent first: it holds the store on the tmpfs */
    if (f->mnt[0] != '\0') {
        umount(f->mnt);
        rmdir(f->mnt);
    }
    free(f);
    return 0;
}

/* Fast retries (100 ms to 500 ms); the simulated customer takes pinpad_ms. */
static void link_and_pinpad(fixture_t *f, unsigned pinpad_ms)
{
    pos_fix_set_retry(&f->fx, 100, 500);
    pos_ini_set(&f->fx.ini, "hal", "sim_pinpad_delay_ms", "%u", pinpad_ms);
}

static void start_agent(fixture_t *f, unsigned pinpad_ms)
{
    link_and_pinpad(f, pinpad_ms);
    pos_fix_agent_start(&f->fx, NULL);
}

/* The first start, waited until online. */
static void start_online(fixture_t *f, unsigned pinpad_ms)
{
    start_agent(f, pinpad_ms);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 10000));
}

static void cut_off(fixture_t *f)
{
    pos_test_cut_off(f->cloud, true);
}

static void reconnect(fixture_t *f)
{
    pos_test_cut_off(f->cloud, false);
}

/* The next agent message on the subscribed channels (NULL on timeout). */
static cJSON *next_msg(fixture_t *f)
{
    void *reply = NULL;
    for (;;) {
        if (redisGetReply(f->sub, &reply) != REDIS_OK || reply == NULL) {
            return NULL;
        }
        redisReply *r = reply;
        cJSON *j = NULL;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            j = cJSON_Parse(r->element[2]->str);
        }
        freeReplyObject(r);
        cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "origin");
        if (cJSON_IsString(o) && strcmp(o->valuestring, "terminal") == 0) {
            return j;
        }
        cJSON_Delete(j);
    }
}

static const char *type_of(cJSON *j)
{
    return cJSON_GetObjectItemCaseSensitive(j, "type")->valuestring;
}

static double outbox_id(cJSON *j)
{
    cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "outboxId");
    if (!cJSON_IsNumber(id)) {
        char *text = cJSON_PrintUnformatted(j);
        print_error("no outboxId in %s\n", text != NULL ? text : "?");
        free(text);
    }
    assert_true(cJSON_IsNumber(id));
    return id->valuedouble;
}

/* The outcomes of an approved payment, in order, each after "last". A
 * message whose outboxId is not above the last one seen is a redelivery
 * (at least once: its PUBLISH was sent, its reply lost with the link), which
 * the cloud drops by outboxId, and so does this. */
static void expect_outcomes(fixture_t *f, double last)
{
    const char *want[] = {"PAYMENT_APPROVED", "RECEIPT_PRINTED", "TRANSACTION_COMPLETED"};
    for (int i = 0; i < 3; i++) {
        cJSON *j = next_msg(f);
        assert_non_null(j);
        if (outbox_id(j) <= last) {
            cJSON_Delete(j);
            i--;
            continue;
        }
        assert_string_equal(type_of(j), want[i]);
        last = outbox_id(j);
        cJSON_Delete(j);
    }
}

/* The cloud asks for a payment (tx of amount EUR); the agent's first
 * answer is PAYMENT_PROCESSING: its outboxId. */
static double request_payment(fixture_t *f, const char *tx, const char *amount)
{
    cmd(f,
        "PUBLISH payment:" TID " {\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\","
        "\"amount\":%s,\"currency\":\"EUR\"}",
        tx, amount);
    cJSON *j = next_msg(f);
    assert_non_null(j);
    assert_string_equal(type_of(j), "PAYMENT_PROCESSING");
    double id = outbox_id(j);
    cJSON_Delete(j);
    return id;
}

static void test_outcomes_wait_for_the_link(void **state)
{
    fixture_t *f = *state;
    start_online(f, 1500);
    double last = request_payment(f, "tx-off-1", "4.20");

    /* The customer pays while the uplink is gone. */
    cut_off(f);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: offline", 1, 5000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "TRANSACTION_COMPLETED tx-off-1", 1, 5000));
    pos_test_sleep_ms(300);
    reconnect(f);

    expect_outcomes(f, last);
    /* The counter increment waited too. */
    redisReply *r = redisCommand(f->cloud, "GET counter:terminal:" TID ":payments_approved");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

static void test_outbox_survives_a_restart(void **state)
{
    fixture_t *f = *state;
    start_online(f, 1000);
    double processing = request_payment(f, "tx-off-2", "1.00");
    cut_off(f);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "TRANSACTION_COMPLETED tx-off-2", 1, 5000));
    /* Stopped while offline, started again: the outbox is on disk. */
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
    start_agent(f, 1000); /* same directory: same store */
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "outbox entries waiting", 2, 5000));
    reconnect(f);
    expect_outcomes(f, processing);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

static unsigned charges(const fixture_t *f)
{
    return pos_fix_charges(&f->fx);
}

/* The next message not seen before: at-least-once delivery may repeat one
 * whose acknowledgement a crash cut off, and the cloud drops it by its
 * outboxId, as this does. */
static cJSON *next_new_msg(fixture_t *f, double *seen)
{
    for (;;) {
        cJSON *j = next_msg(f);
        if (j == NULL || outbox_id(j) > *seen) {
            if (j != NULL) {
                *seen = outbox_id(j);
            }
            return j;
        }
        cJSON_Delete(j);
    }
}

static void test_kill9_mid_payment(void **state)
{
    fixture_t *f = *state;
    double seen = 0;
    start_online(f, 3000);
    const char *req = "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-crash\","
                      "\"amount\":9.99,\"currency\":\"EUR\"}";
    cmd(f, "PUBLISH payment:" TID " %s", req);
    cJSON *j = next_new_msg(f, &seen);
    assert_string_equal(type_of(j), "PAYMENT_PROCESSING");
    cJSON_Delete(j);
    /* Power lost while the customer is at the pinpad. */
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGKILL, 2000), 128 + SIGKILL);
    start_agent(f, 3000);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "was interrupted", 1, 5000));
    j = next_new_msg(f, &seen);
    assert_non_null(j);
    assert_string_equal(type_of(j), "PAYMENT_DECLINED");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "reason")->valuestring, "interrupted");
    cJSON_Delete(j);
    /* The cloud asks again: answered from the journal, never charged. */
    cmd(f, "PUBLISH payment:" TID " %s", req);
    j = next_new_msg(f, &seen);
    assert_non_null(j);
    assert_string_equal(type_of(j), "PAYMENT_DECLINED");
    cJSON_Delete(j);
    pos_test_sleep_ms(3500);
    assert_int_equal(charges(f), 0);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

/* ---- a store on a filesystem that fills up ---------------------------------- */

#define FULL_FS_KIB   2048
#define FULL_PRODUCTS 6000
#define FULL_VALUE    400

static void product_value(char *buf, unsigned i)
{
    int n = snprintf(buf, FULL_VALUE + 1, "{\"id\":\"P-%u\",\"name\":\"", i);
    memset(buf + n, 'a' + (char)(i % 26), (size_t)(FULL_VALUE - n - 2));
    memcpy(buf + FULL_VALUE - 2, "\"}", 3);
}

/*
 * The store lives on a 2 MiB tmpfs and the map (16 MiB) is far larger,
 * so the disk fills before LMDB's own limit: reads keep being answered
 * from Redis, the cache stops growing (evicting to make room), the agent
 * logs why, stays up, and a payment's outcomes are still queued and
 * delivered while less important messages are dropped.
 */
static void test_store_full(void **state)
{
    fixture_t *f = *state;
    char *mnt = f->mnt;
    char value[FULL_VALUE + 1], sock[400];

    snprintf(mnt, sizeof(f->mnt), "/tmp/posfull.XXXXXX");
    assert_non_null(mkdtemp(mnt));
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2048k,mode=0700") != 0) {
        rmdir(mnt);
        mnt[0] = '\0';
        skip(); /* needs root (CI runs as root) */
    }

    for (unsigned i = 0; i < FULL_PRODUCTS; i++) {
        product_value(value, i);
        redisAppendCommand(f->cloud, "SET product:P-%u %s", i, value);
    }
    for (unsigned i = 0; i < FULL_PRODUCTS; i++) {
        void *r = NULL;
        assert_int_equal(redisGetReply(f->cloud, &r), REDIS_OK);
        freeReplyObject(r);
    }

    link_and_pinpad(f, 1500);
    pos_ini_set(&f->fx.ini, "log", "level", "info");
    pos_ini_set(&f->fx.ini, "store", "path", "%s", mnt);
    pos_ini_set(&f->fx.ini, "store", "map_size_mb", "16");
    pos_fix_agent_start(&f->fx, NULL);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 10000));
    snprintf(sock, sizeof(sock), "%s/agent.sock", f->fx.agent.dir);
    redisContext *local = redisConnectUnix(sock);
    assert_true(local != NULL && local->err == 0);

    /* Every read is answered (read-through) although most cannot be kept. */
    for (unsigned i = 0; i < FULL_PRODUCTS; i++) {
        redisAppendCommand(local, "GET product:P-%u", i);
        if (i % 100 != 99) {
            continue;
        }
        for (unsigned k = i - 99; k <= i; k++) {
            redisReply *r = NULL;
            assert_int_equal(redisGetReply(local, (void **)&r), REDIS_OK);
            assert_int_equal(r->type, REDIS_REPLY_STRING);
            product_value(value, k);
            assert_string_equal(r->str, value);
            freeReplyObject(r);
        }
    }
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "No space left on device", 1, 5000));
    assert_true(pos_test_agent_alive(&f->fx.agent));
    long long entries = pos_fix_local_info(local, "cache", "entries");
    long long evictions = pos_fix_local_info(local, "cache", "evictions");
    print_message("store full: %lld entries kept, %lld evicted\n", entries, evictions);
    assert_true(entries > 0 && entries < FULL_PRODUCTS);
    assert_true(evictions > 0);
    assert_true(pos_fix_local_info(local, "cache", "store_disk_full") > 0);
    /* It stopped growing: more reads do not add entries beyond the disk. */
    for (unsigned i = 0; i < 300; i++) {
        redisReply *r = redisCommand(local, "GET product:P-%u", i);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    assert_true(pos_fix_local_info(local, "cache", "entries") < FULL_PRODUCTS);

    /* A payment whose outcomes must wait: the uplink goes during the pinpad. */
    double processing = request_payment(f, "tx-full", "3.10");
    cut_off(f);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: offline", 1, 5000));
    /* Meanwhile the POS application queues far more than the disk holds. */
    char big[4001];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    unsigned refused = 0;
    for (unsigned i = 0; i < 600; i++) {
        redisReply *r = redisCommand(
            local, "PUBLISH transaction:" SID " {\"type\":\"FILL\",\"pad\":\"%s\"}", big);
        assert_non_null(r);
        if (r->type == REDIS_REPLY_ERROR && refused++ == 0) {
            print_message("store full: first refusal: %s\n", r->str);
        }
        freeReplyObject(r);
    }
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "TRANSACTION_COMPLETED tx-full", 1, 5000));
    long long dropped = pos_fix_local_info(local, "outbox", "dropped");
    print_message("store full: %u local publishes refused (of 600), %lld dropped\n", refused,
                  dropped);
    assert_true(pos_test_agent_alive(&f->fx.agent));
    /* More than the disk holds was never taken in silently: refused at the
     * door (an error the application sees), or room made by dropping the
     * oldest ordinary messages (counted); never the payment's outcomes. */
    assert_true(dropped > 0 || refused > 0);
    assert_true(pos_fix_local_info(local, "outbox", "payment_entries") >= 3);
    char *log = pos_test_agent_log_read(&f->fx.agent);
    for (char *l = strtok(log, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        if (strstr(l, "store") != NULL || strstr(l, "outbox") != NULL) {
            print_message("  agent: %s\n", l);
        }
    }
    free(log);

    struct statvfs vfs;
    assert_int_equal(statvfs(mnt, &vfs), 0);
    assert_true((unsigned long long)vfs.f_blocks * vfs.f_frsize <= FULL_FS_KIB * 1024ull);

    reconnect(f);
    expect_outcomes(f, processing);
    redisFree(local);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
    assert_int_equal(umount(mnt), 0);
    assert_int_equal(rmdir(mnt), 0);
    mnt[0] = '\0';
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outcomes_wait_for_the_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_survives_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_mid_payment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_full, setup, teardown),
    };
    return cmocka_run_group_tests_name("offline", tests, NULL, NULL);
}
