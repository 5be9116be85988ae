/*
 * Payments end to end: a plain Redis client plays the cloud on
 * payment:{terminalId}, the agent drives the simulated display, pinpad and
 * printer, and the test checks every published answer, the
 * active_transactions set, counters, the receipt and the display.
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

#include "agent/payment/journal.h"
#include "tests/support/fixture.h"
#include "tests/support/store.h"

#define TID      POS_FIX_TID
#define SID      POS_FIX_SID
#define TEST_PAN "4111111111111111"

/* Starts the agent; the simulated customer takes delay_ms at the pinpad;
 * further settings are in f->ini already. */
static void start_delay(pos_fix_t *f, unsigned delay_ms)
{
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "%u", delay_ms);
    pos_ini_set(&f->ini, "hal", "sim_card_number", TEST_PAN);
    pos_fix_agent_start(f, NULL);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->agent, "hal: pinpad: ready", 1, 5000));
    const char *channels[] = {"payment:" TID, "transaction:" SID, "system:terminals", NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, channels), 0);
}

static void start(pos_fix_t *f)
{
    start_delay(f, 300);
}

/* A file of the simulated devices (malloc'd; empty when there is none). */
static char *read_file(const pos_fix_t *f, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sim/%s", f->agent.dir, name);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return calloc(1, 1);
    }
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return strdup(buf);
}

/* No file the agent wrote and no log line holds the full card number. */
static void assert_no_pan(pos_fix_t *f)
{
    const char *files[] = {"display.txt", "receipts.txt", "pinpad.charges", NULL};
    char *log = pos_test_agent_log_read(&f->agent);
    assert_null(strstr(log, TEST_PAN));
    free(log);
    for (int i = 0; files[i] != NULL; i++) {
        char *c = read_file(f, files[i]);
        assert_null(strstr(c, TEST_PAN));
        free(c);
    }
}

static int teardown(void **state)
{
    pos_fix_t *f = *state;
    if (f->agent.pid > 0) {
        assert_no_pan(f);
        pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    }
    return pos_fix_teardown(state);
}

static void publish(pos_fix_t *f, const char *json)
{
    /* two listeners: the agent, and this test's own subscriber */
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" TID " %s", json), 2);
}

/* The next message from the agent (origin terminal) of the given type for
 * tx (NULL: any), skipping others; NULL on timeout. */
static cJSON *expect_msg(pos_fix_t *f, const char *type, const char *tx, int timeout_ms)
{
    cJSON *j = pos_test_sub_expect(&f->sub, type, tx, timeout_ms, NULL);
    if (j == NULL) {
        fail_msg("no %s for %s within %d ms", type, tx ? tx : "(any)", timeout_ms);
    }
    return j;
}

static const char *str(cJSON *j, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

#define REQ(tx, amount)                                                                            \
    "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"" tx "\",\"amount\":" amount              \
    ",\"currency\":\"EUR\",\"lines\":[{\"name\":\"Espresso\",\"qty\":2,\"amount\":5.00},"          \
    "{\"name\":\"Croissant\",\"qty\":1,\"amount\":2.34}]}"

static void test_approved_payment(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    publish(f, REQ("tx-1001", "12.34"));

    cJSON *j = expect_msg(f, "PAYMENT_PROCESSING", "tx-1001", 10000);
    assert_string_equal(str(j, "terminalId"), TID);
    assert_string_equal(str(j, "storeId"), SID);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "ts")));
    cJSON_Delete(j);
    /* While the customer is at the pinpad: in the active set, terminal busy,
     * amount on the display. */
    assert_int_equal(pos_test_int(&f->redis, "SISMEMBER active_transactions:" SID " tx-1001"), 1);
    long long ttl = pos_test_int(&f->redis, "TTL active_transactions:" SID);
    assert_true(ttl > 1790 && ttl <= 1800);
    char *st = pos_test_get(&f->redis, "terminal:" TID ":status");
    assert_non_null(strstr(st, "\"status\":\"busy\""));
    free(st);
    char *disp = read_file(f, "display.txt");
    assert_non_null(strstr(disp, "Total"));
    assert_non_null(strstr(disp, "EUR 12.34"));
    free(disp);

    j = expect_msg(f, "PAYMENT_APPROVED", "tx-1001", 10000);
    char *amount = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "amount"));
    assert_string_equal(amount, "12.34"); /* a number with the currency's two decimals */
    free(amount);
    assert_string_equal(str(j, "currency"), "EUR");
    assert_string_equal(str(j, "maskedPan"), "411111XXXXXX1111");
    assert_string_equal(str(j, "cardBrand"), "VISA");
    char auth[32];
    snprintf(auth, sizeof(auth), "%s", str(j, "authCode"));
    assert_true(strlen(auth) > 0);
    cJSON_Delete(j);

    cJSON_Delete(expect_msg(f, "RECEIPT_PRINTED", "tx-1001", 3000));
    j = expect_msg(f, "TRANSACTION_COMPLETED", "tx-1001", 10000);
    assert_string_equal(str(j, "receipt"), "printed");
    assert_string_equal(str(j, "authCode"), auth);
    assert_string_equal(str(j, "storeId"), SID);
    cJSON_Delete(j);

    assert_int_equal(pos_test_int(&f->redis, "SISMEMBER active_transactions:" SID " tx-1001"), 0);
    assert_int_equal(pos_fix_charges(f), 1);
    char *rc = pos_test_get(&f->redis, "counter:terminal:" TID ":payments_approved");
    assert_string_equal(rc, "1");
    free(rc);
    ttl = pos_test_int(&f->redis, "TTL counter:terminal:" TID ":payments_approved");
    assert_true(ttl > 86300 && ttl <= 86400);

    char *receipt = read_file(f, "receipts.txt");
    assert_non_null(strstr(receipt, "Espresso"));
    assert_non_null(strstr(receipt, "Croissant"));
    assert_non_null(strstr(receipt, "12.34"));
    assert_non_null(strstr(receipt, "10.00")); /* 2 x 5.00 */
    assert_non_null(strstr(receipt, "411111XXXXXX1111"));
    assert_non_null(strstr(receipt, auth));
    assert_non_null(strstr(receipt, "tx-1001"));
    assert_non_null(strstr(receipt, "cut"));
    free(receipt);
    disp = read_file(f, "display.txt");
    assert_non_null(strstr(disp, "Approved"));
    free(disp);

    /* Back to online, announced. */
    j = expect_msg(f, "TERMINAL_STATUS", NULL, 100);
    cJSON_Delete(j);
    st = pos_test_get(&f->redis, "terminal:" TID ":status");
    assert_non_null(strstr(st, "\"status\":\"online\""));
    free(st);

    /* Its request's record and its outcome's were each timed for the
     * durable commits they waited for, their own included (INFO payment;
     * tests/bench/payment_latency.sh checks they are one each). */
    assert_int_equal(pos_fix_info(f, "payment", "records_request"), 1);
    assert_int_equal(pos_fix_info(f, "payment", "records_outcome"), 1);
    assert_true(pos_fix_info(f, "payment", "record_commits_request_max") >= 1);
    assert_true(pos_fix_info(f, "payment", "record_commits_outcome_max") >= 1);
    assert_true(pos_fix_info(f, "payment", "record_commits_request") >= 1);

    /* The same request again never touches the card. */
    publish(f, REQ("tx-1001", "12.34"));
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-1001", 3000));
    pos_test_sleep_ms(500);
    assert_int_equal(pos_fix_charges(f), 1);

    /* A reprint prints a second copy. */
    publish(f, "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-1001\"}");
    cJSON_Delete(expect_msg(f, "RECEIPT_PRINTED", "tx-1001", 3000));
    receipt = read_file(f, "receipts.txt");
    const char *second = strstr(strstr(receipt, "tx-1001") + 1, "tx-1001");
    assert_non_null(second);
    free(receipt);
    assert_int_equal(pos_fix_charges(f), 1);
}

/*
 * A reprint of a payment older than the state machine's history (256
 * finished ids) but still in the journal: printed from its record. It
 * was answered RECEIPT_FAILED "not_found", although a repeated request
 * for the same id was answered from the journal.
 */
static void test_reprint_from_journal(void **state)
{
    pos_fix_t *f = *state;
    char tx[32], msg[256];

    pos_ini_set(&f->ini, "hal", "sim_printer_delay_ms", "0");
    pos_ini_set(&f->ini, "inbound", "payment_rate", "1000");
    start_delay(f, 0);
    for (int i = 0; i <= 256; i++) {
        snprintf(tx, sizeof(tx), "tx-r%d", i);
        snprintf(msg, sizeof(msg), REQ("%s", "1.00"), tx);
        publish(f, msg);
        cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", tx, 10000));
        cJSON_Delete(expect_msg(f, "RECEIPT_PRINTED", tx, 10000));
    }
    assert_int_equal(pos_fix_charges(f), 257);

    publish(f, "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-r0\"}");
    cJSON_Delete(expect_msg(f, "RECEIPT_PRINTED", "tx-r0", 3000));
    /* The copy is the file's last receipt (read_file reads 64 KiB only). */
    char path[512], tail[2048];
    snprintf(path, sizeof(path), "%s/sim/receipts.txt", f->agent.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, -(long)(sizeof(tail) - 1), SEEK_END), 0);
    size_t n = fread(tail, 1, sizeof(tail) - 1, fp);
    fclose(fp);
    tail[n] = '\0';
    const char *copy = strstr(tail, "tx-r0");
    assert_non_null(copy);
    assert_null(strstr(copy, "tx-r256")); /* nothing printed after it */

    publish(f, "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-never\"}");
    cJSON *j = expect_msg(f, "RECEIPT_FAILED", "tx-never", 3000);
    assert_string_equal(str(j, "reason"), "not_found");
    cJSON_Delete(j);
    assert_int_equal(pos_fix_charges(f), 257);
}

static void test_declined_and_rejected(void **state)
{
    pos_fix_t *f = *state;
    start(f);

    publish(f, REQ("tx-2001", "12.13"));
    cJSON_Delete(expect_msg(f, "PAYMENT_PROCESSING", "tx-2001", 3000));
    cJSON *j = expect_msg(f, "PAYMENT_DECLINED", "tx-2001", 10000);
    assert_string_equal(str(j, "reason"), "declined");
    cJSON_Delete(j);
    pos_test_sleep_ms(200);
    assert_int_equal(pos_test_int(&f->redis, "SISMEMBER active_transactions:" SID " tx-2001"), 0);
    assert_int_equal(pos_fix_charges(f), 0);
    char *receipt = read_file(f, "receipts.txt");
    assert_null(strstr(receipt, "tx-2001"));
    free(receipt);

    /* Amounts that cannot be honoured: rejected, nothing driven. */
    static const char *const bad[] = {"-5.00",     "0",        "0.00",
                                      "\"abc\"",   "12.345",   "1e2",
                                      "\"12,34\"", "10000.01", "99999999999999999999"};
    char msg[512], tx[32];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(tx, sizeof(tx), "tx-bad-%zu", i);
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":%s,"
                 "\"currency\":\"EUR\"}",
                 tx, bad[i]);
        publish(f, msg);
        j = expect_msg(f, "PAYMENT_REJECTED", tx, 10000);
        assert_string_equal(str(j, "reason"), "invalid");
        cJSON_Delete(j);
    }
    /* A request whose receipt line holds an escaped NUL (a fixed-width
     * name from a catalog, say) cannot be honoured either: answered, not
     * dropped unanswered. One whose id holds it cannot be named: dropped. */
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-nul-1\",\"amount\":1.00,"
               "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Espresso\\u0000\\u0000\","
               "\"qty\":1,\"amount\":1.00}]}");
    j = expect_msg(f, "PAYMENT_REJECTED", "tx-nul-1", 5000);
    assert_string_equal(str(j, "reason"), "invalid");
    cJSON_Delete(j);
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-nul-2\\u0000\","
               "\"amount\":1.00,\"currency\":\"EUR\"}");
    pos_fix_wait_log(f, "PAYMENT_REQUESTED: a string holds \\u0000, dropped", 2, 5000);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "tx-nul-2"), 0);
    assert_int_equal(pos_fix_charges(f), 0);
    char *disp = read_file(f, "display.txt");
    assert_null(strstr(disp, "Total"));
    free(disp);
    assert_true(pos_test_agent_alive(&f->agent));
}

static void test_busy_and_cancel(void **state)
{
    pos_fix_t *f = *state;
    start_delay(f, 3000);

    publish(f, REQ("tx-3001", "20.00"));
    cJSON_Delete(expect_msg(f, "PAYMENT_PROCESSING", "tx-3001", 3000));
    publish(f, REQ("tx-3002", "5.00"));
    cJSON *j = expect_msg(f, "PAYMENT_REJECTED", "tx-3002", 10000);
    assert_string_equal(str(j, "reason"), "busy");
    cJSON_Delete(j);

    publish(f, "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-3001\"}");
    cJSON_Delete(expect_msg(f, "PAYMENT_CANCELLED", "tx-3001", 3000));
    pos_test_sleep_ms(3500); /* past the simulated customer's delay */
    assert_int_equal(pos_fix_charges(f), 0);
    assert_int_equal(pos_test_int(&f->redis, "SISMEMBER active_transactions:" SID " tx-3001"), 0);

    /* The terminal takes the next payment. */
    publish(f, REQ("tx-3002", "5.00"));
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-3002", 6000));
    assert_int_equal(pos_fix_charges(f), 1);
}

/* The first message from the agent about tx, whatever its type (NULL on
 * timeout); others are skipped. */
static cJSON *next_about(pos_fix_t *f, const char *tx, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    while (pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&f->sub, (int)(end - pos_test_now_ms()) + 1, NULL, 0);
        if (m == NULL) {
            break;
        }
        cJSON *j = cJSON_Parse(m);
        free(m);
        cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "origin");
        cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "transactionId");
        if (cJSON_IsString(o) && strcmp(o->valuestring, "terminal") == 0 && cJSON_IsString(t) &&
            strcmp(t->valuestring, tx) == 0) {
            return j;
        }
        cJSON_Delete(j);
    }
    fail_msg("nothing about %s within %d ms", tx, timeout_ms);
    return NULL;
}

/*
 * A cancel for a finished payment the state machine's history (256 ids)
 * has forgotten but the journal still holds is answered with its state,
 * as a repeated request is: an approved payment is never reported
 * cancelled, and its record is not overwritten.
 */
static void test_cancel_after_history(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "inbound", "payment_rate", "100000");
    pos_ini_set(&f->ini, "inbound", "payment_burst", "100000");
    pos_ini_set(&f->ini, "hal", "sim_printer_delay_ms", "0");
    pos_ini_set(&f->ini, "log", "level", "info");
    start_delay(f, 0);

    publish(f, REQ("tx-5001", "12.34"));
    cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", "tx-5001", 10000));
    /* 256 cancels of ids never seen: each is remembered as cancelled, in
     * the history's ring, which then no longer holds tx-5001. */
    char msg[128], tx[32];
    for (int i = 0; i < 256; i++) {
        snprintf(msg, sizeof(msg), "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"c-%d\"}",
                 i);
        publish(f, msg);
    }
    snprintf(tx, sizeof(tx), "c-%d", 255);
    cJSON_Delete(expect_msg(f, "PAYMENT_CANCELLED", tx, 20000));

    publish(f, "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-5001\"}");
    cJSON *j = next_about(f, "tx-5001", 5000);
    assert_string_equal(str(j, "type"), "PAYMENT_APPROVED");
    cJSON_Delete(j);
    /* And its record still says approved. */
    publish(f, REQ("tx-5001", "12.34"));
    j = next_about(f, "tx-5001", 5000);
    assert_string_equal(str(j, "type"), "PAYMENT_APPROVED");
    cJSON_Delete(j);
    pos_test_sleep_ms(300);
    assert_int_equal(pos_fix_charges(f), 1);
}

#define CANCEL(tx) "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"" tx "\"}"

/* The journal in the store of the stopped agent, opened for fn(j, tx). */
static int journal_do(pos_fix_t *f, int (*fn)(pos_journal_t *j, const char *tx), const char *tx)
{
    pos_store_t st;
    pos_journal_t j;
    char dir[400];

    assert_int_equal(f->agent.pid, 0);
    snprintf(dir, sizeof(dir), "%s/store", f->agent.dir);
    pos_test_store_open(&st, dir, 64u << 20);
    assert_int_equal(pos_journal_open(&j, &st, NULL), 0);
    int rc = fn(&j, tx);
    pos_journal_close(&j);
    pos_store_close(&st);
    return rc;
}

static int seen_has(pos_journal_t *j, const char *tx)
{
    return pos_journal_seen_has(j, tx);
}

/*
 * Cancels of ids never requested here took the room the seen set keeps
 * for payment requests: with dedup_max_ids 1000, 1000 of them for made-up
 * ids had the next genuine request refused "unavailable". A cancel that
 * comes before its request still keeps that request off the card.
 */
static void test_unknown_cancels_leave_room(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "payment", "dedup_max_ids", "1000");
    pos_ini_set(&f->ini, "inbound", "payment_rate", "100000");
    pos_ini_set(&f->ini, "inbound", "payment_burst", "100000");
    pos_ini_set(&f->ini, "hal", "sim_printer_delay_ms", "0");
    pos_ini_set(&f->ini, "log", "level", "info");
    start_delay(f, 0);

    char msg[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(msg, sizeof(msg), "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"c-%d\"}",
                 i);
        publish(f, msg);
    }
    cJSON_Delete(expect_msg(f, "PAYMENT_CANCELLED", "c-999", 30000));

    publish(f, REQ("tx-9001", "12.34"));
    cJSON *j = next_about(f, "tx-9001", 5000);
    assert_string_equal(str(j, "type"), "PAYMENT_PROCESSING");
    cJSON_Delete(j);
    cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", "tx-9001", 10000));
    assert_int_equal(pos_fix_charges(f), 1);

    /* A cancel before its request (reordered, retried) keeps it off the card. */
    publish(f, CANCEL("tx-9002"));
    cJSON_Delete(expect_msg(f, "PAYMENT_CANCELLED", "tx-9002", 5000));
    publish(f, REQ("tx-9002", "5.00"));
    j = next_about(f, "tx-9002", 5000);
    assert_string_equal(str(j, "type"), "PAYMENT_CANCELLED");
    cJSON_Delete(j);
    pos_test_sleep_ms(300);
    assert_int_equal(pos_fix_charges(f), 1);

    /* In the store: both requests are seen ids, kept a week (a replay of
     * tx-9002 after its cancel's record is gone is still never charged);
     * the cancels of made-up ids are not. */
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 10000), 0);
    assert_true(journal_do(f, seen_has, "tx-9001"));
    assert_true(journal_do(f, seen_has, "tx-9002"));
    assert_false(journal_do(f, seen_has, "c-0"));
    assert_false(journal_do(f, seen_has, "c-999"));
}

/*
 * A cancel of a finished payment whose journal record is gone (the journal
 * keeps the last 1,024 finished payments) while its id is still in the
 * seen set was answered PAYMENT_CANCELLED, "a cancel was carried out", for
 * a payment that was approved, and recorded as cancelled. It is answered
 * as a repeated request for that id is: PAYMENT_REJECTED "duplicate";
 * nothing is recorded and the card is not touched.
 */
static void test_cancel_after_record_pruned(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "hal", "sim_printer_delay_ms", "0");
    start_delay(f, 0);
    publish(f, REQ("tx-5101", "12.34"));
    cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", "tx-5101", 10000));
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 10000), 0);

    /* What 1,024 later payments would do, without the wait: the record
     * goes, the id stays seen. */
    assert_int_equal(journal_do(f, pos_journal_delete, "tx-5101"), 0);
    assert_true(journal_do(f, seen_has, "tx-5101"));
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 2, 10000);
    pos_fix_wait_log(f, "hal: pinpad: ready", 2, 5000);

    publish(f, CANCEL("tx-5101"));
    cJSON *j = next_about(f, "tx-5101", 5000);
    assert_string_equal(str(j, "type"), "PAYMENT_REJECTED");
    assert_string_equal(str(j, "reason"), "duplicate");
    cJSON_Delete(j);
    /* Nothing was recorded: the request's replay is still a duplicate,
     * not a cancelled payment. */
    publish(f, REQ("tx-5101", "12.34"));
    j = next_about(f, "tx-5101", 5000);
    assert_string_equal(str(j, "type"), "PAYMENT_REJECTED");
    assert_string_equal(str(j, "reason"), "duplicate");
    cJSON_Delete(j);
    pos_test_sleep_ms(300);
    assert_int_equal(pos_fix_charges(f), 1);
}

static void test_paper_out_after_approval(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    char path[400];
    snprintf(path, sizeof(path), "%s/sim/printer.fault", f->agent.dir);
    FILE *fp = fopen(path, "w");
    fputs("paper_out\n", fp);
    fclose(fp);
    assert_true(pos_test_agent_wait_log(&f->agent, "hal: printer: paper_out", 1, 3000));
    /* A device fault makes the terminal degraded, announced. */
    uint64_t end = pos_test_now_ms() + 3000;
    bool degraded = false;
    while (!degraded && pos_test_now_ms() < end) {
        char *st = pos_test_get(&f->redis, "terminal:" TID ":status");
        degraded = st != NULL && strstr(st, "\"status\":\"degraded\"") != NULL &&
                   strstr(st, "\"printer\":\"paper_out\"") != NULL;
        free(st);
        pos_test_sleep_ms(20);
    }
    assert_true(degraded);

    publish(f, REQ("tx-4001", "7.50"));
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-4001", 3000));
    cJSON *j = expect_msg(f, "RECEIPT_FAILED", "tx-4001", 10000);
    assert_string_equal(str(j, "reason"), "paper_out");
    cJSON_Delete(j);
    j = expect_msg(f, "TRANSACTION_COMPLETED", "tx-4001", 10000);
    assert_string_equal(str(j, "receipt"), "failed");
    cJSON_Delete(j);
    assert_int_equal(pos_fix_charges(f), 1); /* the payment stands */
    char *receipt = read_file(f, "receipts.txt");
    assert_null(strstr(receipt, "tx-4001")); /* nothing was sent to a printer without paper */
    free(receipt);
    /* The log says why. */
    pos_fix_wait_log(f, "receipt for tx-4001 not printed: ", 1, 1000);
}

/*
 * Issue 13 item 13: a link planted where the simulated printer writes made
 * an agent running as root append a receipt (with cloud-supplied lines) to
 * whatever it pointed at, and a receipt that failed said nothing of why.
 */
static void test_receipt_not_written_through_a_link(void **state)
{
    pos_fix_t *f = *state;
    char sim[300], link[340], target[340];

    snprintf(f->agent.dir, sizeof(f->agent.dir), "/tmp/posagent-agent-XXXXXX");
    assert_non_null(mkdtemp(f->agent.dir));
    snprintf(sim, sizeof(sim), "%s/sim", f->agent.dir);
    assert_int_equal(mkdir(sim, 0750), 0);
    snprintf(target, sizeof(target), "%s/root-only", f->agent.dir);
    FILE *fp = fopen(target, "w");
    assert_non_null(fp);
    fputs("root only\n", fp);
    fclose(fp);
    snprintf(link, sizeof(link), "%s/receipts.txt", sim);
    assert_int_equal(symlink(target, link), 0);
    start(f);

    publish(f, REQ("tx-4002", "7.50"));
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-4002", 5000));
    cJSON *j = expect_msg(f, "RECEIPT_FAILED", "tx-4002", 10000);
    cJSON_Delete(j);
    pos_fix_wait_log(f, "receipt for tx-4002 not printed: Too many levels of symbolic links", 1,
                     1000);
    pos_fix_wait_log(f, "printer: cannot write", 1, 1000);
    fp = fopen(target, "r");
    assert_non_null(fp);
    char buf[256];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    assert_string_equal(buf, "root only\n");
}

static void test_pinpad_timeout(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "payment", "pinpad_timeout_s", "10");
    start(f);
    char path[400];
    snprintf(path, sizeof(path), "%s/sim/pinpad.fault", f->agent.dir);
    FILE *fp = fopen(path, "w");
    fputs("timeout\n", fp);
    fclose(fp);
    pos_test_sleep_ms(200);

    publish(f, REQ("tx-5001", "3.00"));
    cJSON_Delete(expect_msg(f, "PAYMENT_PROCESSING", "tx-5001", 3000));
    cJSON *j = expect_msg(f, "PAYMENT_DECLINED", "tx-5001", 13000);
    assert_string_equal(str(j, "reason"), "timeout");
    cJSON_Delete(j);
    assert_int_equal(pos_fix_charges(f), 0);
    assert_int_equal(pos_test_int(&f->redis, "SISMEMBER active_transactions:" SID " tx-5001"), 0);
}

/*
 * A repeated request over the payment channel's budget. The contract
 * answers a repeated transaction id with its state or PAYMENT_REJECTED
 * "duplicate"; "busy" (over the budget: try again later) tells a cloud
 * that an approved payment was refused. Over the budget the agent answered
 * every request "busy", an approved one's replay included.
 */
static void test_replay_over_budget(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "inbound", "payment_rate", "1");
    pos_ini_set(&f->ini, "inbound", "payment_burst", "2");
    pos_fix_set_heartbeat(f, 1, 3);
    start(f);

    publish(f, REQ("tx-6001", "4.20"));
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-6001", 10000));
    cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", "tx-6001", 10000));
    pos_test_sleep_ms(2100); /* the bucket full again: 2 */

    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        publish(f, REQ("tx-6001", "4.20"));
    }
    /* A new id over the budget is busy, as before. */
    publish(f, REQ("tx-6002", "1.00"));

    int approved = 0, duplicate = 0, busy = 0, other_busy = 0;
    uint64_t end = pos_test_now_ms() + 1500;
    while (pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&f->sub, 200, NULL, 0);
        cJSON *j = m != NULL ? cJSON_Parse(m) : NULL;
        free(m);
        cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "transactionId");
        cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
        if (cJSON_IsString(type) && cJSON_IsString(tx)) {
            bool rejected = strcmp(type->valuestring, "PAYMENT_REJECTED") == 0;
            bool is_busy = rejected && strcmp(reason->valuestring, "busy") == 0;
            if (strcmp(tx->valuestring, "tx-6002") == 0) {
                other_busy += is_busy;
            } else if (strcmp(type->valuestring, "PAYMENT_APPROVED") == 0) {
                approved++;
            } else if (rejected) {
                duplicate += strcmp(reason->valuestring, "duplicate") == 0;
                busy += is_busy;
            }
        }
        cJSON_Delete(j);
    }
    printf("replays of an approved payment: %d approved, %d duplicate, %d busy\n", approved,
           duplicate, busy);
    assert_int_equal(busy, 0);
    assert_int_equal(approved + duplicate, N);
    assert_true(approved >= 1);
    assert_int_equal(other_busy, 1);
    assert_int_equal(pos_fix_charges(f), 1);
    /* Every refusal in the till's counter, those over the budget too (one
     * increment with the next heartbeat). */
    long long want = duplicate + other_busy, got = -1;
    uint64_t until = pos_test_now_ms() + 4000;
    while (pos_test_now_ms() < until) {
        char *v = pos_test_get(&f->redis, "counter:terminal:" TID ":payments_rejected");
        got = v != NULL ? atoll(v) : 0;
        free(v);
        if (got == want) {
            break;
        }
        pos_test_sleep_ms(100);
    }
    printf("payments_rejected in Redis: %lld (refusals seen: %lld)\n", got, want);
    assert_int_equal(got, want);
}

/*
 * A replay of an approved payment with fields the agent cannot honour (an
 * amount with more decimals than the currency has, another terminal named,
 * a line without a name). Same id, other money is "duplicate" by the state
 * machine; these were answered "invalid", a refusal of a payment that was
 * charged, because the decoder refused them before anyone looked the id up.
 */
static void test_invalid_replay_of_known_id(void **state)
{
    pos_fix_t *f = *state;
    start(f);

    publish(f, REQ("tx-7001", "3.10"));
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-7001", 10000));
    cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", "tx-7001", 10000));

    static const char *const replays[] = {
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-7001\",\"amount\":3.105,"
        "\"currency\":\"EUR\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-7001\",\"amount\":3.10,"
        "\"currency\":\"EUR\",\"terminalId\":\"T-0002\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-7001\",\"amount\":3.10,"
        "\"currency\":\"EUR\",\"lines\":[{\"qty\":1,\"amount\":3.10}]}",
    };
    for (size_t i = 0; i < sizeof(replays) / sizeof(replays[0]); i++) {
        publish(f, replays[i]);
        cJSON *j = expect_msg(f, "PAYMENT_REJECTED", "tx-7001", 5000);
        assert_string_equal(str(j, "reason"), "duplicate");
        cJSON_Delete(j);
    }
    /* A new id with the same faults is still invalid. */
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-7002\",\"amount\":3.105,"
               "\"currency\":\"EUR\"}");
    cJSON *j = expect_msg(f, "PAYMENT_REJECTED", "tx-7002", 5000);
    assert_string_equal(str(j, "reason"), "invalid");
    cJSON_Delete(j);
    assert_int_equal(pos_fix_charges(f), 1);
}

/*
 * A cancel of the running payment that comes over the payment channel's
 * budget (other traffic used it up: a flood of display messages, retries).
 * It was dropped with the rest, and the customer at the pinpad was charged
 * for a payment the cloud had cancelled.
 */
static void test_cancel_over_budget(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "inbound", "payment_rate", "1");
    pos_ini_set(&f->ini, "inbound", "payment_burst", "2");
    start_delay(f, 3000);

    publish(f, REQ("tx-8001", "9.99"));
    cJSON_Delete(expect_msg(f, "PAYMENT_PROCESSING", "tx-8001", 5000));
    /* The request left one token (its PAYMENT_PROCESSING's echo takes
     * none), the burst is 2: six are over it whatever the timing. */
    for (int i = 0; i < 6; i++) {
        publish(f, "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Welcome\"]}");
    }
    publish(f, "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-8001\"}");
    cJSON *j = pos_test_sub_expect(&f->sub, "PAYMENT_CANCELLED", "tx-8001", 5000, NULL);
    bool cancelled = j != NULL;
    cJSON_Delete(j);
    pos_test_sleep_ms(3500); /* past the simulated customer's delay */
    printf("cancel over the budget: %s, %u charge(s)\n", cancelled ? "carried out" : "dropped",
           pos_fix_charges(f));
    assert_true(cancelled);
    assert_int_equal(pos_fix_charges(f), 0);
    /* The display messages went over the budget, and were counted. */
    assert_true(pos_fix_info(f, "inbound", "payment_over_budget") >= 5);
}

/*
 * The agent's own answers on payment:{terminalId} come back to its own
 * subscriber (Redis delivers a PUBLISH to every subscriber). Each took a
 * token of the channel's budget before its handler ignored it: a
 * payment's PAYMENT_PROCESSING and PAYMENT_APPROVED cost two more, and
 * requests well within the budget were refused "busy". Its own echoes now
 * cost nothing; a copy of one published again by someone else is an
 * ordinary message: it costs a token and drives nothing.
 */
static void test_own_echoes_cost_no_budget(void **state)
{
    pos_fix_t *f = *state;
    pos_ini_set(&f->ini, "inbound", "payment_rate", "1");
    pos_ini_set(&f->ini, "inbound", "payment_burst", "2");
    start_delay(f, 50);

    /* 1 a second, 2 at once: requests at 0, 0.5 and 1.5 s find 2, 1.5 and
     * 1.5 tokens. Each payment ends before the next request. */
    static const char *const reqs[] = {REQ("tx-9001", "1.00"), REQ("tx-9002", "2.00"),
                                       REQ("tx-9003", "3.00")};
    static const char *const txs[] = {"tx-9001", "tx-9002", "tx-9003"};
    static const unsigned at_ms[] = {0, 500, 1500};
    char *copy = NULL;
    uint64_t t0 = pos_test_now_ms();
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        while (pos_test_now_ms() < t0 + at_ms[i]) {
            pos_test_sleep_ms(5);
        }
        publish(f, reqs[i]);
        /* Its outcome (the first answer of a refused one). */
        const char *outcome = NULL;
        uint64_t end = pos_test_now_ms() + 5000;
        while (outcome == NULL && pos_test_now_ms() < end) {
            char *m = pos_test_sub_next(&f->sub, 200, NULL, 0);
            cJSON *j = m != NULL ? cJSON_Parse(m) : NULL;
            cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
            cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "transactionId");
            if (cJSON_IsString(type) && cJSON_IsString(tx) &&
                strcmp(tx->valuestring, txs[i]) == 0 &&
                (strcmp(type->valuestring, "PAYMENT_APPROVED") == 0 ||
                 strcmp(type->valuestring, "PAYMENT_REJECTED") == 0)) {
                outcome = type->valuestring[8] == 'A' ? "approved" : "rejected";
                printf("%s %s: %s\n", txs[i], outcome, m);
                free(copy);
                copy = m; /* the last approval, as Redis delivered it */
                m = NULL;
            }
            free(m);
            cJSON_Delete(j);
        }
        if (outcome == NULL || strcmp(outcome, "approved") != 0) {
            free(copy);
            fail_msg("%s within the budget: %s", txs[i], outcome != NULL ? outcome : "no outcome");
        }
        cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", txs[i], 5000));
    }
    assert_int_equal(pos_fix_charges(f), 3);
    long long echoes = pos_fix_info(f, "inbound", "payment_own_echoes");
    long long admitted = pos_fix_info(f, "inbound", "payment_admitted");
    long long over = pos_fix_info(f, "inbound", "payment_over_budget");
    printf("own echoes %lld, admitted %lld, over budget %lld\n", echoes, admitted, over);
    assert_true(echoes >= 6); /* each payment's PROCESSING and APPROVED */
    assert_int_equal(admitted, 3);
    assert_int_equal(over, 0);

    /* A third party publishes a byte-identical copy of the agent's last
     * approval: not its echo (that came already), so it costs a token. */
    assert_non_null(copy);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" TID " %s", copy), 2);
    long long spent = 0;
    uint64_t end = pos_test_now_ms() + 3000;
    while (pos_test_now_ms() < end && spent == 0) {
        spent = pos_fix_info(f, "inbound", "payment_admitted") - admitted +
                pos_fix_info(f, "inbound", "payment_over_budget") - over;
        pos_test_sleep_ms(20);
    }
    assert_int_equal(spent, 1);
    assert_int_equal(pos_fix_info(f, "inbound", "payment_own_echoes"), echoes);
    /* An approval from outside drives nothing: no charge, no answer. */
    uint64_t quiet = pos_test_now_ms() + 500;
    int heard = 0;
    while (pos_test_now_ms() < quiet) {
        char *m = pos_test_sub_next(&f->sub, 100, NULL, 0);
        if (m != NULL && strstr(m, "tx-9003") != NULL) {
            assert_string_equal(m, copy); /* the copy itself: this subscriber hears it too */
            heard++;
        }
        free(m);
    }
    assert_int_equal(heard, 1);
    assert_int_equal(pos_fix_charges(f), 3);
    free(copy);
}

/* Publishes a SYSTEM_ALERT on system:alerts (the agent listens), waits for
 * the n-th one in the log, and returns the display then (malloc'd). */
static char *alert_then_display(pos_fix_t *f, const char *json, int n)
{
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH system:alerts %s", json), 1);
    assert_true(pos_test_agent_wait_log(&f->agent, "SYSTEM_ALERT", n, 3000));
    pos_test_sleep_ms(100);
    return read_file(f, "display.txt");
}

static void test_display_and_alerts(void **state)
{
    pos_fix_t *f = *state;
    start(f);
    publish(f, "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Welcome\",\"Next customer please\"]}");
    assert_true(pos_test_agent_wait_log(&f->agent, "DISPLAY_MESSAGE", 1, 3000));
    pos_test_sleep_ms(100);
    char *disp = read_file(f, "display.txt");
    assert_string_equal(disp, "Welcome             \nNext customer please\n");
    free(disp);

    disp = alert_then_display(f,
                              "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"warning\","
                              "\"message\":\"Store closes in 10 minutes\",\"storeId\":\"" SID "\"}",
                              1);
    assert_string_equal(disp, "Store closes in 10  \nminutes             \n");
    free(disp);
    disp = alert_then_display(f,
                              "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\","
                              "\"message\":\"Lane 4 closes now, please use lane 5\"}",
                              2);
    assert_string_equal(disp, "Lane 4 closes now,  \nplease use lane 5   \n");
    free(disp);

    /* For another store: not shown. */
    disp = alert_then_display(f,
                              "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\","
                              "\"message\":\"Elsewhere\",\"storeId\":\"S-999\"}",
                              3);
    assert_null(strstr(disp, "Elsewhere"));
    free(disp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_approved_payment, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_reprint_from_journal, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_declined_and_rejected, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_and_cancel, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_paper_out_after_approval, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_not_written_through_a_link, pos_fix_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pinpad_timeout, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_display_and_alerts, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_after_history, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_cancels_leave_room, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_after_record_pruned, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_over_budget, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_replay_of_known_id, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_over_budget, pos_fix_setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_echoes_cost_no_budget, pos_fix_setup, teardown),
    };
    pos_fix_filters_from_env();
    return cmocka_run_group_tests_name("payment", tests, NULL, NULL);
}
