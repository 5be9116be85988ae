/*
 * The store never loses queued data silently, and no journal means no
 * payment (issue 13 items 7 and 12), each tested as what went wrong on
 * main: a store moved aside without trace while messages were queued, a
 * zero-length data.mdb started empty without a log line, a store that
 * could not be opened left the till reporting "online" and charging, and a
 * replayed approved transaction charged again in each case.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agent/store/store.h"
#include "tests/support/fixture.h"
#include "tests/support/store.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

#define REQ(tx)                                                                                    \
    "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"" tx "\",\"amount\":2.50,"                \
    "\"currency\":\"EUR\"}"

static char *bin(void)
{
    char *b = getenv("POSAGENT_BIN");
    assert_non_null(b);
    return b;
}

/* The store directory of the fixture's agent (made now if need be). */
static const char *store_dir(pos_fix_t *f)
{
    static char path[400];
    if (f->agent.dir[0] == '\0') {
        snprintf(f->agent.dir, sizeof(f->agent.dir), "/tmp/posagent-agent-XXXXXX");
        assert_non_null(mkdtemp(f->agent.dir));
    }
    snprintf(path, sizeof(path), "%s/store", f->agent.dir);
    return path;
}

static void start(pos_fix_t *f)
{
    /* The subscriber first (what waited in the outbox goes out at once),
     * and afresh: a cut-off (below) closes the default user's connections. */
    pos_test_sub_close(&f->sub);
    const char *channels[] = {"payment:" TID, "transaction:" SID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, channels), 0);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, f->starts, 10000);
    pos_fix_wait_log(f, "hal: pinpad: ready", f->starts, 5000);
}

static void stop(pos_fix_t *f)
{
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 10000), 0);
}

static void publish(pos_fix_t *f, const char *json)
{
    assert_true(pos_test_int(&f->redis, "PUBLISH payment:" TID " %s", json) >= 1);
}

/* The first answer to a request for tx: its type (static). */
static const char *answer(pos_fix_t *f, const char *tx, char *reason, size_t len)
{
    static char type[32];
    uint64_t end = pos_test_now_ms() + 10000;
    type[0] = '\0';
    while (pos_test_now_ms() < end && type[0] == '\0') {
        char *m = pos_test_sub_next(&f->sub, 500, NULL, 0);
        cJSON *j = m != NULL ? cJSON_Parse(m) : NULL;
        cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "transactionId");
        cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reason");
        cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "origin");
        if (cJSON_IsString(o) && strcmp(o->valuestring, "terminal") == 0 && cJSON_IsString(t) &&
            cJSON_IsString(id) && strcmp(id->valuestring, tx) == 0 &&
            strncmp(t->valuestring, "PAYMENT_", 8) == 0) {
            snprintf(type, sizeof(type), "%s", t->valuestring);
            snprintf(reason, len, "%s", cJSON_IsString(r) ? r->valuestring : "");
        }
        cJSON_Delete(j);
        free(m);
    }
    if (type[0] == '\0') {
        pos_fix_dump_log(f);
        fail_msg("no answer to %s", tx);
    }
    return type;
}

static void expect_rejected_unavailable(pos_fix_t *f, const char *json, const char *tx)
{
    char reason[32];
    publish(f, json);
    assert_string_equal(answer(f, tx, reason, sizeof(reason)), "PAYMENT_REJECTED");
    assert_string_equal(reason, "unavailable");
}

/* The status key's "store" object: its journal state and reason. */
static void expect_status(pos_fix_t *f, const char *status, const char *journal, const char *reason)
{
    cJSON *st = NULL;
    assert_true(pos_fix_wait_status(&f->redis, status, 10000, &st) >= 0);
    cJSON *store = cJSON_GetObjectItemCaseSensitive(st, "store");
    assert_non_null(store);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(store, "journal")->valuestring, journal);
    cJSON *r = cJSON_GetObjectItemCaseSensitive(store, "reason");
    if (reason == NULL) {
        assert_null(r);
    } else {
        assert_non_null(r);
        assert_string_equal(r->valuestring, reason);
    }
    cJSON_Delete(st);
}


/* The first store moved aside in the agent's store directory (static). */
static const char *moved_aside(pos_fix_t *f)
{
    static char path[600];
    char names[1][POS_STORE_NAME_MAX];
    assert_int_equal(pos_store_moved_aside(store_dir(f), names, 1), 1);
    snprintf(path, sizeof(path), "%s/%s", store_dir(f), names[0]);
    return path;
}

static int run(const char *const *argv, char **out)
{
    return pos_test_run(argv, NULL, out, 30000);
}

/*
 * A store found corrupt is moved aside with its queued messages and its
 * journal: until the operator deals with it no payment is taken (a
 * replayed one could not be told from a new one), the status says why, and
 * "posagent store salvage" puts back what can be read: the queued messages
 * go out, and the replayed approved payment is never charged again.
 */
static void test_moved_aside_salvaged(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL;
    start(f);
    publish(f, REQ("tx-r1"));
    char reason[32];
    assert_string_equal(answer(f, "tx-r1", reason, sizeof(reason)), "PAYMENT_PROCESSING");
    cJSON_Delete(pos_test_sub_expect(&f->sub, "TRANSACTION_COMPLETED", "tx-r1", 10000, NULL));
    assert_int_equal(pos_fix_charges(f), 1);

    /* Three messages queued while Redis refuses the till. */
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    pos_test_cut_off(cloud, true);
    pos_fix_wait_log(f, "reconnecting in", 1, 10000);
    redisContext *local = pos_fix_local(f);
    for (int i = 0; i < 3; i++) {
        redisReply *r =
            redisCommand(local, "PUBLISH transaction:" SID " {\"type\":\"SALE\",\"n\":%d}", i);
        assert_non_null(r);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
        freeReplyObject(r);
    }
    redisFree(local);
    assert_true(pos_fix_info(f, "outbox", "outbox_entries") >= 3);
    stop(f);
    pos_test_cut_off(cloud, false);

    /* A record the store cannot read: the store is moved aside at start. */
    pos_store_t st;
    pos_test_store_open(&st, store_dir(f), 64u << 20);
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(&st, 0, &txn), 0);
    MDB_val k = {9, "product:1"}, v = {5, "short"};
    assert_int_equal(mdb_put(txn, st.dbi[POS_DB_CACHE], &k, &v, 0), 0);
    assert_int_equal(pos_store_txn_commit(txn), 0);
    pos_store_close(&st);
    start(f);
    pos_fix_wait_log(f, "moved aside to", 1, 5000);
    pos_fix_wait_log(f, "wait for the operator", 1, 5000);
    expect_status(f, "degraded", "unavailable", "store_recovered");
    assert_int_equal(pos_fix_info(f, "store", "recovered_stores"), 1);
    assert_int_equal(pos_fix_info(f, "outbox", "outbox_entries"), 0);
    /* Neither the replay nor a new payment touches the card. */
    expect_rejected_unavailable(f, REQ("tx-r1"), "tx-r1");
    expect_rejected_unavailable(f, REQ("tx-r2"), "tx-r2");
    assert_int_equal(pos_fix_charges(f), 1);

    /* Never beside a running agent. */
    const char *path = moved_aside(f);
    char file[600];
    snprintf(file, sizeof(file), "%s", path);
    const char *salvage[] = {bin(), "--config", f->agent.conf, "store", "salvage", file, NULL};
    assert_int_equal(run(salvage, &out), 75);
    assert_non_null(strstr(out, "stop it first"));
    free(out);
    stop(f);

    const char *dry[] = {bin(),     "--config",  f->agent.conf, "store",
                         "salvage", "--dry-run", file,          NULL};
    assert_int_equal(run(dry, &out), 0);
    assert_non_null(strstr(out, "journal tx-r1: DONE"));
    assert_non_null(strstr(out, "PUBLISH transaction:" SID));
    free(out);
    int src = run(salvage, &out);
    print_message("%s", out);
    assert_int_equal(src, 0);
    assert_non_null(strstr(out, "3 outbox entries, 1 journal records readable"));
    assert_non_null(strstr(out, "journal records put back: 1"));
    free(out);
    assert_int_not_equal(access(file, F_OK), 0); /* renamed .salvaged */

    /* Back to normal: the queued messages go out, the replay is answered
     * from the journal, never charged. */
    start(f);
    expect_status(f, "online", "ok", NULL);
    int sales = 0;
    uint64_t end = pos_test_now_ms() + 10000;
    while (sales < 3 && pos_test_now_ms() < end) {
        char ch[64];
        char *m = pos_test_sub_next(&f->sub, 500, ch, sizeof(ch));
        sales += m != NULL && strstr(m, "\"SALE\"") != NULL;
        free(m);
    }
    assert_int_equal(sales, 3);
    publish(f, REQ("tx-r1"));
    const char *t = answer(f, "tx-r1", reason, sizeof(reason));
    assert_true(strcmp(t, "PAYMENT_APPROVED") == 0 ||
                (strcmp(t, "PAYMENT_REJECTED") == 0 && strcmp(reason, "duplicate") == 0));
    pos_test_sleep_ms(300);
    assert_int_equal(pos_fix_charges(f), 1);
    redisFree(cloud);
}

/*
 * A zero-length data.mdb (and a data.mdb of garbage) started empty without
 * a log line: now it is a recovery like any other, shown until cleared,
 * and "posagent store clear-recovered" lets a running agent take payments
 * again at once.
 */
static void test_zero_length_and_garbage(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL, data[500];

    for (int round = 0; round < 2; round++) {
        start(f);
        stop(f);
        snprintf(data, sizeof(data), "%s/data.mdb", store_dir(f));
        if (round == 0) {
            assert_int_equal(truncate(data, 0), 0);
        } else {
            FILE *fp = fopen(data, "r+");
            assert_non_null(fp);
            for (int i = 0; i < 65536; i++) {
                fputc((i * 7919) & 0xff, fp);
            }
            fclose(fp);
        }
        start(f);
        pos_fix_wait_log(f, round == 0 ? "file is empty (0 bytes)" : "MDB_INVALID", 1, 5000);
        expect_status(f, "degraded", "unavailable", "store_recovered");
        char tx[32], req[160];
        snprintf(tx, sizeof(tx), "tx-z%d", round);
        snprintf(req, sizeof(req),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":2.50,"
                 "\"currency\":\"EUR\"}",
                 tx);
        expect_rejected_unavailable(f, req, tx);
        unsigned before = pos_fix_charges(f);

        const char *clear[] = {bin(), "--config", f->agent.conf, "store", "clear-recovered", NULL};
        assert_int_equal(run(clear, &out), 0);
        assert_non_null(strstr(out, "cleared"));
        assert_non_null(strstr(out, "told the running agent"));
        free(out);
        expect_status(f, "online", "ok", NULL);
        assert_int_equal(pos_fix_info(f, "store", "recovered_stores"), 0);
        snprintf(tx, sizeof(tx), "tx-y%d", round);
        snprintf(req, sizeof(req),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":2.50,"
                 "\"currency\":\"EUR\"}",
                 tx);
        publish(f, req);
        char reason[32];
        assert_string_equal(answer(f, tx, reason, sizeof(reason)), "PAYMENT_PROCESSING");
        cJSON_Delete(pos_test_sub_expect(&f->sub, "PAYMENT_APPROVED", tx, 10000, NULL));
        assert_int_equal(pos_fix_charges(f), before + 1);
        stop(f);
    }
}

/* A store that cannot be opened (data.mdb is not a file): the till used to
 * report "online" and charge without a journal. */
static void test_store_cannot_be_opened(void **state)
{
    pos_fix_t *f = *state;
    char data[500];

    assert_int_equal(mkdir(store_dir(f), 0700), 0);
    snprintf(data, sizeof(data), "%s/data.mdb", store_dir(f));
    assert_int_equal(mkdir(data, 0700), 0);
    start(f);
    pos_fix_wait_log(f, "payments are refused", 1, 5000);
    expect_status(f, "degraded", "unavailable", "store_unavailable");
    redisContext *c = pos_fix_local(f);
    redisReply *r = redisCommand(c, "INFO store");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "journal:unavailable"));
    assert_non_null(strstr(r->str, "store_error:"));
    assert_non_null(strstr(r->str, "not a regular file"));
    freeReplyObject(r);
    redisFree(c);
    expect_rejected_unavailable(f, REQ("tx-n1"), "tx-n1");
    pos_fix_dump_log(f);
    assert_int_equal(pos_fix_charges(f), 0);
}

/* A store of a newer format is neither moved aside nor used: the agent
 * says why and exits. */
static void test_newer_format_refused(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    stop(f);
    pos_store_t st;
    pos_test_store_open(&st, store_dir(f), 64u << 20);
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(&st, 0, &txn), 0);
    assert_int_equal(pos_store_meta_put(&st, txn, "format", POS_STORE_FORMAT + 1), 0);
    assert_int_equal(pos_store_txn_commit(txn), 0);
    pos_store_close(&st);

    pos_fix_agent_start(f, NULL);
    uint64_t end = pos_test_now_ms() + 10000;
    while (pos_test_agent_alive(&f->agent) && pos_test_now_ms() < end) {
        pos_test_sleep_ms(20);
    }
    assert_false(pos_test_agent_alive(&f->agent));
    assert_int_not_equal(f->agent.exit_status, 0);
    pos_fix_wait_log(f, "written by a newer posagent", 1, 1000);
    char names[1][POS_STORE_NAME_MAX];
    assert_int_equal(pos_store_moved_aside(store_dir(f), names, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_moved_aside_salvaged),
        POS_FIX_TEST(test_zero_length_and_garbage),
        POS_FIX_TEST(test_store_cannot_be_opened),
        POS_FIX_TEST(test_newer_format_refused),
    };
    return cmocka_run_group_tests_name("recovery", tests, NULL, NULL);
}
