/*
 * The store never loses queued data silently, and no journal means no
 * payment (issue 13 items 7 and 12), each tested as what went wrong on
 * main: a store moved aside without trace while messages were queued, a
 * zero-length data.mdb started empty without a log line, a store that
 * could not be opened left the till reporting "online" and charging, and a
 * replayed approved transaction charged again in each case.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agent/payment/journal.h"
#include "agent/store/outbox.h"
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

static void start_env(pos_fix_t *f, const char *const *env);

static void start(pos_fix_t *f)
{
    start_env(f, NULL);
}

static void start_env(pos_fix_t *f, const char *const *env)
{
    /* The subscriber first (what waited in the outbox goes out at once),
     * and afresh: a cut-off (below) closes the default user's connections. */
    pos_test_sub_close(&f->sub);
    const char *channels[] = {"payment:" TID, "transaction:" SID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, channels), 0);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_fix_agent_start(f, env);
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
    static pos_fix_payment_msg_t msg;
    if (!pos_fix_next_payment_msg(f, tx, 10000, &msg)) {
        pos_fix_dump_log(f);
        fail_msg("no answer to %s", tx);
    }
    snprintf(reason, len, "%s", msg.reason);
    return msg.type;
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

/* The whole of file, malloc'd, its length in *len. */
static unsigned char *slurp(const char *file, size_t *len)
{
    FILE *fp = fopen(file, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Lines of out that begin with prefix. */
static int lines_with(const char *out, const char *prefix)
{
    int n = 0;
    for (const char *l = out; l != NULL && *l != '\0';) {
        n += strncmp(l, prefix, strlen(prefix)) == 0;
        l = strchr(l, '\n');
        l = l != NULL ? l + 1 : NULL;
    }
    return n;
}

/* What salvage printed but the listing of each entry (too long to show). */
static void show_summary(const char *out)
{
    for (const char *l = out; l != NULL && *l != '\0';) {
        const char *end = strchr(l, '\n');
        int len = end != NULL ? (int)(end - l) : (int)strlen(l);
        if (strncmp(l, "outbox ", 7) != 0 && strncmp(l, "journal tx-", 11) != 0) {
            print_message("%.*s\n", len, l);
        }
        l = end != NULL ? end + 1 : NULL;
    }
}

/* How many of the outbox entries (journal false) or journal records
 * numbered 0..n-1 are in the used part of one of the first leaf pages of
 * buf (from a page's upper bound on: LMDB leaves old bytes in the free
 * part). */
static int count_in_pages(const unsigned char *buf, size_t pages, bool journal, int n)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        char pat[64];
        int len = journal ? snprintf(pat, sizeof(pat), "tx-s%03d", i)
                          : snprintf(pat, sizeof(pat), "{\"type\":\"SALE\",\"n\":%d,", i);
        bool in = false;
        for (size_t pg = 0; pg < pages && !in; pg++) {
            uint16_t flags, upper;
            memcpy(&flags, buf + pg * 4096 + sizeof(size_t) + 2, sizeof(flags));
            memcpy(&upper, buf + pg * 4096 + sizeof(size_t) + 6, sizeof(upper));
            /* A leaf page (P_LEAF): a branch page holds keys only; and for
             * the journal one with records in it (their auth code), not
             * the seen-id set's, whose keys are the same ids. */
            const unsigned char *used = buf + pg * 4096 + upper;
            in = (flags & 0x02) != 0 && upper < 4096 &&
                 memmem(used, 4096 - upper, pat, (size_t)len) != NULL &&
                 (!journal || memmem(used, 4096 - upper, "A1B2C3", 6) != NULL);
        }
        found += in;
    }
    return found;
}

/*
 * A data.mdb cut short, pages in use missing, is moved aside as it was
 * found. Salvage read it through LMDB's map, where the first missing page
 * faults: the reader died of SIGBUS and nothing came back, not even the
 * entries whose pages are all there. Each readable entry must be listed
 * and queued again, a line per database must say how much was read and
 * that pages were missing, no card data may show, and the file moved aside
 * must stay byte for byte as it was found.
 */
static void test_short_file_salvaged(void **state)
{
    enum { ENTRIES = 400, RECORDS = 100 };
    pos_fix_t *f = *state;
    char *out = NULL;
    start(f);
    stop(f);

    /* Outbox entries and payment records, interleaved over many commits:
     * the pages of both spread over the file. */
    pos_store_t st;
    pos_outbox_t ob;
    pos_journal_t j;
    pos_test_store_open(&st, store_dir(f), 64u << 20);
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    assert_int_equal(pos_journal_open(&j, &st, NULL), 0);
    const char *channel = "transaction:" SID;
    for (int i = 0; i < ENTRIES; i++) {
        char payload[300];
        int n = snprintf(payload, sizeof(payload),
                         "{\"type\":\"SALE\",\"n\":%d,\"pad\":\"%0200d\"}", i, 0);
        pos_outbox_entry_t e;
        memset(&e, 0, sizeof(e));
        e.kind = POS_OUTBOX_PUBLISH;
        e.channel = channel;
        e.channel_len = strlen(channel);
        e.payload = payload;
        e.payload_len = (size_t)n;
        uint64_t id;
        assert_int_equal(pos_outbox_append(&ob, &e, &id), 0);
        if (i % (ENTRIES / RECORDS) == 0) {
            pos_payment_record_t r;
            memset(&r, 0, sizeof(r));
            snprintf(r.transaction_id, sizeof(r.transaction_id), "tx-s%03d", i);
            r.state = i % 8 == 0 ? POS_PAY_STARTING : POS_PAY_DONE;
            r.amount_minor = 250;
            memcpy(r.currency.alpha, "EUR", 4);
            r.currency.numeric = 978;
            r.currency.digits = 2;
            snprintf(r.auth_code, sizeof(r.auth_code), "A1B2C3");
            snprintf(r.masked_pan, sizeof(r.masked_pan), "411111******1111");
            assert_int_equal(pos_journal_put(&j, &r), 0);
        }
    }
    pos_journal_close(&j);
    pos_outbox_close(&ob);
    pos_store_close(&st);

    /* About half of it gone; the agent moves it aside at start. Where the
     * two databases' pages fall depends on the layout (32-bit builds
     * differ): the cut is the page boundary nearest the middle with some
     * of each database's entries on either side of it. */
    char data[500];
    snprintf(data, sizeof(data), "%s/data.mdb", store_dir(f));
    size_t whole_len;
    unsigned char *whole = slurp(data, &whole_len);
    size_t pages = whole_len / 4096;
    off_t cut = 0;
    for (size_t d = 0; d < pages && cut == 0; d++) {
        for (int side = 0; side < 2 && cut == 0; side++) {
            size_t c = side == 0 ? pages / 2 + d : pages / 2 - d;
            if (c == 0 || c >= pages || (side == 1 && d == 0) || d > pages / 2) {
                continue;
            }
            int ob_before = count_in_pages(whole, c, false, ENTRIES);
            int jn_before = count_in_pages(whole, c, true, ENTRIES);
            if (ob_before > 0 && ob_before < ENTRIES && jn_before > 0 && jn_before < RECORDS) {
                cut = (off_t)c * 4096;
            }
        }
    }
    free(whole);
    assert_true(cut > 0);
    assert_int_equal(truncate(data, cut), 0);
    start(f);
    pos_fix_wait_log(f, "moved aside to", 1, 5000);
    stop(f);
    char file[600];
    snprintf(file, sizeof(file), "%s", moved_aside(f));
    size_t before_len;
    unsigned char *before = slurp(file, &before_len);
    assert_int_equal(before_len, (size_t)cut);

    const char *dry[] = {bin(),     "--config",  f->agent.conf, "store",
                         "salvage", "--dry-run", file,          NULL};
    int drc = run(dry, &out);
    show_summary(out);
    assert_int_equal(drc, 0);
    assert_null(strstr(out, "crashed"));
    assert_null(strstr(out, "411111"));
    assert_null(strstr(out, "A1B2C3"));
    /* Some of each read, not all, and said so once per database. */
    int listed = lines_with(out, "outbox "), records = lines_with(out, "journal tx-s");
    assert_true(listed > 0 && listed < ENTRIES);
    /* Every entry whose bytes are in what is left of the file, no fewer:
     * in a page's used part, from the upper bound of its free space on (the
     * header's last word, after the page number, pad, flags and lower
     * bound). LMDB leaves old bytes in the free part. */
    assert_int_equal(listed, count_in_pages(before, before_len / 4096, false, ENTRIES));
    assert_true(records > 0 && records < RECORDS);
    char line[160];
    snprintf(line, sizeof(line), "\noutbox: %d entries read, ", listed);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "\njournal: %d records read, ", records);
    assert_non_null(strstr(out, line));
    assert_int_equal(lines_with(out, "outbox: "), 1);
    assert_int_equal(lines_with(out, "journal: "), 1);
    assert_int_equal(lines_with(out, "stopped"), 0);
    /* Each entry once, however many copies of its page the file holds. */
    for (const char *l = strstr(out, "\noutbox "); l != NULL; l = strstr(l + 1, "\noutbox ")) {
        char id[32];
        snprintf(id, sizeof(id), "\noutbox %lu:", strtoul(l + 8, NULL, 10));
        assert_ptr_equal(strstr(out, id), l);
    }
    assert_non_null(strstr(out, "missing"));
    free(out);

    const char *salvage[] = {bin(), "--config", f->agent.conf, "store", "salvage", file, NULL};
    int src = run(salvage, &out);
    show_summary(out);
    assert_int_equal(src, 0);
    snprintf(line, sizeof(line), "queued again: %d outbox entries", listed);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof(line), "journal records put back: %d ", records);
    assert_non_null(strstr(out, line));
    free(out);

    /* The evidence untouched: renamed, never extended or written. */
    char done[700];
    snprintf(done, sizeof(done), "%s.salvaged", file);
    size_t after_len;
    unsigned char *after = slurp(done, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(after);
    free(before);
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

/*
 * A write-ahead log set aside at start (its records could not be applied,
 * or one was damaged) holds commits this store lacks: payment records and
 * seen ids among them, so a replay could not be told from a new payment.
 * As with a store moved aside, no payment is taken until the operator
 * clears it (after reconciling that time with the cloud); then payments
 * are taken again at once.
 */
static void test_log_set_aside_holds_payments(void **state)
{
    pos_fix_t *f = *state;
    char path[600], *out = NULL;

    snprintf(path, sizeof(path), "%s", store_dir(f));
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/wal.failed-1764412800", store_dir(f));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    start(f);
    expect_rejected_unavailable(f, REQ("tx-w1"), "tx-w1");
    assert_int_equal(pos_fix_charges(f), 0);
    expect_status(f, "degraded", "unavailable", "store_recovered");
    pos_fix_wait_log(f, "write-ahead log(s) set aside", 1, 5000);

    const char *clear[] = {bin(), "--config", f->agent.conf, "store", "clear-recovered", NULL};
    assert_int_equal(run(clear, &out), 0);
    assert_non_null(strstr(out, "wal.failed-1764412800"));
    free(out);
    expect_status(f, "online", "ok", NULL);
    char reason[32];
    publish(f, REQ("tx-w2"));
    assert_string_equal(answer(f, "tx-w2", reason, sizeof(reason)), "PAYMENT_PROCESSING");
    cJSON_Delete(pos_test_sub_expect(&f->sub, "TRANSACTION_COMPLETED", "tx-w2", 10000, NULL));
    assert_int_equal(pos_fix_charges(f), 1);
    stop(f);
}

/*
 * The disk fails the one read of the write-ahead log's header at a start
 * (EIO). The log used to be taken for "not one of ours" and written over
 * with zeros: records LMDB lacked would be gone. It is now set aside as it
 * was (wal.unreadable-<epoch>, byte for byte), a new log is begun, and
 * payments wait for the operator as for any log set aside.
 */
static void test_unreadable_log_set_aside(void **state)
{
    pos_fix_t *f = *state;
    char path[600], flag[600], *out = NULL;
    char reason[32];
    size_t before_len = 0, after_len = 0;

    start(f);
    publish(f, REQ("tx-u1"));
    assert_string_equal(answer(f, "tx-u1", reason, sizeof(reason)), "PAYMENT_PROCESSING");
    cJSON_Delete(pos_test_sub_expect(&f->sub, "TRANSACTION_COMPLETED", "tx-u1", 10000, NULL));
    stop(f);
    assert_int_equal(pos_fix_charges(f), 1);

    snprintf(path, sizeof(path), "%s/wal", store_dir(f));
    unsigned char *before = slurp(path, &before_len);
    assert_non_null(before);
    snprintf(flag, sizeof(flag), "%s/eio.flag", f->agent.dir);
    const char *const *env = pos_slowfs_env_eio_name(&f->slowfs, store_dir(f), flag, "wal");
    assert_non_null(env);
    FILE *fp = fopen(flag, "w");
    assert_non_null(fp);
    fclose(fp);
    start_env(f, env);
    assert_int_equal(access(flag, F_OK), -1); /* the shim did fail a read */
    pos_fix_wait_log(f, "the write-ahead log could not be read", 1, 5000);

    char names[2][POS_STORE_NAME_MAX];
    assert_int_equal(pos_store_moved_aside(store_dir(f), names, 2), 1);
    assert_non_null(strstr(names[0], "wal.unreadable-"));
    snprintf(path, sizeof(path), "%s/%s", store_dir(f), names[0]);
    unsigned char *after = slurp(path, &after_len);
    assert_non_null(after);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);

    expect_rejected_unavailable(f, REQ("tx-u2"), "tx-u2");
    expect_status(f, "degraded", "unavailable", "store_recovered");
    publish(f, REQ("tx-u1")); /* the paid one: never charged again */
    assert_string_not_equal(answer(f, "tx-u1", reason, sizeof(reason)), "PAYMENT_PROCESSING");
    assert_int_equal(pos_fix_charges(f), 1);

    const char *clear[] = {bin(), "--config", f->agent.conf, "store", "clear-recovered", NULL};
    assert_int_equal(run(clear, &out), 0);
    assert_non_null(strstr(out, "wal.unreadable-"));
    free(out);
    expect_status(f, "online", "ok", NULL);
    publish(f, REQ("tx-u3"));
    assert_string_equal(answer(f, "tx-u3", reason, sizeof(reason)), "PAYMENT_PROCESSING");
    cJSON_Delete(pos_test_sub_expect(&f->sub, "TRANSACTION_COMPLETED", "tx-u3", 10000, NULL));
    assert_int_equal(pos_fix_charges(f), 2);
    stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_moved_aside_salvaged),
        POS_FIX_TEST(test_short_file_salvaged),
        POS_FIX_TEST(test_zero_length_and_garbage),
        POS_FIX_TEST(test_store_cannot_be_opened),
        POS_FIX_TEST(test_newer_format_refused),
        POS_FIX_TEST(test_log_set_aside_holds_payments),
        POS_FIX_TEST(test_unreadable_log_set_aside),
    };
    return cmocka_run_group_tests_name("recovery", tests, NULL, NULL);
}
