/*
 * Fleet visibility end to end (issue 15): the metrics from one table in
 * INFO, the Prometheus text file and the hash terminal:{id}:metrics; the
 * clock check against Redis TIME; remote diagnostics on diag:{id}, with
 * its malformed, flood and abuse cases, unsigned and signed.
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
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/fs.h"
#include "tests/support/sign.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

#define KEY_HEX                                                                                    \
    "4b31"                                                                                         \
    "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"

typedef struct fixture {
    pos_fix_signed_t s; /* its directory holds the text file too */
    char prom[128];     /* the text file */
} fixture_t;

static int setup(void **state)
{
    /* The key never reaches the log. */
    static const char *const secrets[] = {KEY_HEX, NULL};
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_signed_start(&f->s, "fleet", secrets) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->prom, sizeof(f->prom), "%s/posagent.prom", f->s.dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int rc = pos_fix_signed_stop(&f->s);
    free(f);
    return rc;
}

static void start(fixture_t *f)
{
    pos_fix_t *fx = &f->s.fx;
    pos_ini_set(&fx->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_ini_set(&fx->ini, "metrics", "textfile", "%s", f->prom);
    pos_ini_set(&fx->ini, "metrics", "interval_s", "1");
    pos_fix_set_heartbeat(fx, 1, 10);
    pos_fix_agent_start(fx, NULL);
    pos_fix_wait_online(fx, 1, 10000);
    pos_fix_wait_log(fx, "hal: pinpad: ready", 1, 5000);
    pos_fix_wait_log(fx, "clock: offset", 1, 5000);
}

static void publish(fixture_t *f, const char *channel, const char *json)
{
    assert_true(pos_test_int(&f->s.fx.redis, "PUBLISH %s %s", channel, json) >= 1);
}

/* The text file's content (malloc'd), "" when it is not there yet. */
static char *prom_text(const fixture_t *f)
{
    FILE *fp = fopen(f->prom, "r");
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    if (fp != NULL) {
        size_t n = fread(buf, 1, 65535, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

typedef struct prom_wait {
    const fixture_t *f;
    const char *line;
} prom_wait_t;

static bool prom_has(void *arg)
{
    prom_wait_t *w = arg;
    char *t = prom_text(w->f);
    bool ok = strstr(t, w->line) != NULL;
    free(t);
    return ok;
}

static char *hget(const fixture_t *f, const char *field)
{
    redisReply *r = pos_test_redis_cmd(&f->s.fx.redis, "HGET terminal:" TID ":metrics %s", field);
    assert_non_null(r);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

typedef struct hash_wait {
    const fixture_t *f;
    const char *field;
    const char *want;
} hash_wait_t;

static bool hash_is(void *arg)
{
    hash_wait_t *w = arg;
    char *v = hget(w->f, w->field);
    bool ok = v != NULL && strcmp(v, w->want) == 0;
    free(v);
    return ok;
}

static bool status_has_clock(void *arg)
{
    fixture_t *f = arg;
    char *raw = pos_test_get(&f->s.fx.redis, POS_FIX_STATUS_KEY);
    cJSON *j = raw != NULL ? cJSON_Parse(raw) : NULL;
    cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "clockOffsetMs");
    bool ok = cJSON_IsNumber(o) && o->valuedouble > -1000 && o->valuedouble < 1000;
    cJSON_Delete(j);
    free(raw);
    return ok;
}

typedef struct info_wait {
    const fixture_t *f;
    const char *field;
    long long want;
} info_wait_t;

static bool info_is(void *arg)
{
    info_wait_t *w = arg;
    return pos_fix_info(&w->f->s.fx, "metrics", w->field) == w->want;
}

/* Waits up to 5 s for INFO's metrics field to read want. */
static void wait_metric(const fixture_t *f, const char *field, long long want)
{
    info_wait_t w = {f, field, want};
    if (pos_test_poll(info_is, &w, 50, 5000) < 0) {
        fail_msg("metrics %s is %lld, not %lld", field, pos_fix_info(&f->s.fx, "metrics", field),
                 want);
    }
}

/* Every key of INFO's metrics section appears in no other section, and in
 * docs/contract.md's list of the hash's fields. */
static void assert_metrics_keys_unique(redisContext *local)
{
    redisReply *r = redisCommand(local, "INFO all");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *text = strdup(r->str);
    freeReplyObject(r);
    char *metrics = strstr(text, "# metrics\r\n");
    assert_non_null(metrics);
    char path[512], *contract = NULL;
    snprintf(path, sizeof(path), "%s/docs/contract.md", getenv("POS_SOURCE_DIR"));
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    contract = calloc(1, 65536);
    assert_non_null(contract);
    assert_true(fread(contract, 1, 65535, fp) > 0);
    fclose(fp);
    int keys = 0;
    for (char *line = metrics + 11; *line != '\0' && *line != '\r';) {
        char *colon = strchr(line, ':');
        char *end = strstr(line, "\r\n");
        assert_non_null(colon);
        assert_non_null(end);
        char key[80];
        snprintf(key, sizeof(key), "\n%.*s:", (int)(colon - line), line);
        /* Only here: the first occurrence is in the metrics section. */
        char *first = strstr(text, key);
        if (first != line - 1 || strstr(end, key) != NULL) {
            fail_msg("INFO key %s is in another section too", key + 1);
        }
        /* ... and documented for the backend team, as `key`. */
        char quoted[80];
        snprintf(quoted, sizeof(quoted), "`%.*s`", (int)(colon - line), line);
        if (contract != NULL && strstr(contract, quoted) == NULL) {
            fail_msg("docs/contract.md does not list the metric %s", quoted);
        }
        keys++;
        line = end + 2;
    }
    free(contract);
    free(text);
    assert_true(keys >= 40);
}

/*
 * Issue 15 "Metrics": one table, three ways. INFO's metrics section, the
 * text file for node_exporter (HELP, TYPE, the terminal label, written
 * atomically, refreshed every interval_s) and the hash in Redis with its
 * TTL; a payment moves payments by outcome in all three.
 */
static void test_metrics_three_ways(void **state)
{
    fixture_t *f = *state;
    start(f);
    const char *channels[] = {"payment:" TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->s.fx.sub, &f->s.fx.redis, channels), 0);

    /* INFO: online, a clock offset measured and small against a local Redis. */
    redisContext *local = pos_fix_local(&f->s.fx);
    assert_non_null(local);
    assert_int_equal(pos_fix_local_info(local, "metrics", "link_up"), 1);
    assert_int_equal(pos_fix_local_info(local, "metrics", "link_connects"), 1);
    assert_true(pos_fix_local_info(local, "metrics", "clock_checks") >= 1);
    long long rtt = pos_fix_local_info(local, "metrics", "link_rtt_ms");
    assert_true(rtt >= 0 && rtt < 1000);
    redisReply *r = redisCommand(local, "INFO metrics");
    assert_non_null(r);
    char *off = strstr(r->str, "clock_offset_ms:");
    assert_non_null(off);
    long long offset = strtoll(off + 16, NULL, 10);
    assert_true(offset > -1000 && offset < 1000);
    freeReplyObject(r);
    assert_int_equal(pos_fix_local_info(local, "metrics", "payments_approved"), 0);
    assert_metrics_keys_unique(local);

    /* The status value carries the offset too (from the first heartbeat
     * after the first TIME came back). */
    assert_true(pos_test_poll(status_has_clock, f, 100, 5000) >= 0);

    /* The text file: HELP and TYPE, labelled samples, no temporary left. */
    prom_wait_t pw = {f, "posagent_link_up{terminal=\"" TID "\",store=\"" SID "\"} 1\n"};
    assert_true(pos_test_poll(prom_has, &pw, 50, 5000) >= 0);
    char *t = prom_text(f);
    assert_non_null(strstr(t, "# HELP posagent_payments_total "));
    assert_non_null(strstr(t, "# TYPE posagent_payments_total counter\n"));
    assert_non_null(strstr(t, "# TYPE posagent_link_up gauge\n"));
    assert_non_null(strstr(t, "posagent_payments_total{terminal=\"" TID "\",store=\"" SID
                              "\",outcome=\"approved\"} 0\n"));
    assert_non_null(strstr(t, "posagent_clock_offset_ms{terminal=\"" TID "\""));
    assert_non_null(strstr(t, "posagent_store_used_bytes{"));
    free(t);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s/.posagent.prom.tmp", f->s.dir);
    struct stat sb;
    assert_int_not_equal(stat(tmp, &sb), 0);
    assert_int_equal(stat(f->prom, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);

    /* The hash: every field, a ts, and a TTL of three intervals at most. */
    hash_wait_t hw = {f, "link_up", "1"};
    assert_true(pos_test_poll(hash_is, &hw, 50, 5000) >= 0);
    long long ttl = pos_test_int(&f->s.fx.redis, "TTL terminal:" TID ":metrics");
    assert_true(ttl > 0 && ttl <= 180);
    long long fields = pos_test_int(&f->s.fx.redis, "HLEN terminal:" TID ":metrics");
    assert_true(fields >= 41);
    char *ts = hget(f, "ts");
    assert_non_null(ts);
    assert_true(strtoull(ts, NULL, 10) > 1700000000000ull);
    free(ts);
    /* The connect's snapshot waited for the clock check. */
    char *checks = hget(f, "clock_checks");
    assert_non_null(checks);
    assert_string_equal(checks, "1");
    free(checks);
    char *hrtt = hget(f, "link_rtt_ms");
    assert_non_null(hrtt);
    assert_true(strtoll(hrtt, NULL, 10) >= 0);
    free(hrtt);
    char *approved = hget(f, "payments_approved");
    assert_non_null(approved);
    assert_string_equal(approved, "0");
    free(approved);

    /* A payment moves payments by outcome: INFO and the file at once. */
    publish(f, "payment:" TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-fleet-1\",\"amount\":1.50,"
            "\"currency\":\"EUR\"}");
    cJSON *j = pos_test_sub_expect(&f->s.fx.sub, "PAYMENT_APPROVED", "tx-fleet-1", 10000, NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    assert_int_equal(pos_fix_local_info(local, "metrics", "payments_approved"), 1);
    prom_wait_t pa = {f, "outcome=\"approved\"} 1\n"};
    assert_true(pos_test_poll(prom_has, &pa, 50, 5000) >= 0);
    /* An invalid request is rejected, counted by outcome and by reason. */
    publish(f, "payment:" TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-fleet-bad\",\"amount\":-1,"
            "\"currency\":\"EUR\"}");
    j = pos_test_sub_expect(&f->s.fx.sub, "PAYMENT_REJECTED", "tx-fleet-bad", 5000, NULL);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "reason")->valuestring, "invalid");
    cJSON_Delete(j);
    wait_metric(f, "payments_rejected", 1);
    wait_metric(f, "rejected_invalid", 1);
    wait_metric(f, "payments_approved", 1);
    prom_wait_t pr = {f, "reason=\"invalid\"} 1\n"};
    assert_true(pos_test_poll(prom_has, &pr, 50, 5000) >= 0);
    redisFree(local);
}

/*
 * The hash is refreshed at most once a minute ([metrics] redis_interval_s,
 * at least 60): a payment shows there at the next refresh, not before.
 */
static void test_metrics_hash_refresh(void **state)
{
    fixture_t *f = *state;
    start(f);
    const char *channels[] = {"payment:" TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->s.fx.sub, &f->s.fx.redis, channels), 0);
    hash_wait_t hw = {f, "link_up", "1"};
    assert_true(pos_test_poll(hash_is, &hw, 50, 5000) >= 0);
    char *ts0 = hget(f, "ts");
    publish(f, "payment:" TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-fleet-2\",\"amount\":2.00,"
            "\"currency\":\"EUR\"}");
    cJSON *j = pos_test_sub_expect(&f->s.fx.sub, "PAYMENT_APPROVED", "tx-fleet-2", 10000, NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    /* Not yet: the last snapshot is younger than a minute. */
    char *now = hget(f, "payments_approved");
    assert_string_equal(now, "0");
    free(now);
    char *ts1 = hget(f, "ts");
    assert_string_equal(ts0, ts1);
    free(ts1);
    /* Within the minute after it: there. */
    hash_wait_t pw = {f, "payments_approved", "1"};
    long waited = pos_test_poll(hash_is, &pw, 200, 70000);
    assert_true(waited >= 0);
    char *ts2 = hget(f, "ts");
    assert_true(strtoull(ts2, NULL, 10) >= strtoull(ts0, NULL, 10) + 59000);
    free(ts2);
    free(ts0);
}

/* ---- remote diagnostics -------------------------------------------------------- */

static cJSON *expect_report(fixture_t *f, const char *reply_to, const char *id, int timeout_ms)
{
    char channel[128];
    char *m = pos_test_sub_next(&f->s.fx.sub, timeout_ms, channel, sizeof(channel));
    if (m == NULL) {
        return NULL;
    }
    assert_string_equal(channel, reply_to);
    cJSON *j = cJSON_Parse(m);
    free(m);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "DIAG_REPORT");
    assert_string_equal(cJSON_GetObjectItem(j, "origin")->valuestring, "terminal");
    assert_string_equal(cJSON_GetObjectItem(j, "terminalId")->valuestring, TID);
    assert_string_equal(cJSON_GetObjectItem(j, "requestId")->valuestring, id);
    return j;
}

static void request(char *out, size_t len, const char *id, const char *reply_to, uint64_t ts)
{
    /* Canonical already (members sorted, no blanks): signable as it is. */
    snprintf(out, len,
             "{\"replyTo\":\"%s\",\"requestId\":\"%s\",\"ts\":%llu,\"type\":\"DIAG_REQUEST\"}",
             reply_to, id, (unsigned long long)ts);
}

/*
 * A request is answered with INFO and the last warnings on the reply
 * channel it names; malformed ones, a reply channel outside
 * diag:reply:{terminalId}:* (abuse: making the agent publish on a payment
 * channel, or on another terminal's replies), a second one
 * within 10 s and a flood are refused, counted, logged sparingly, and
 * never stop the agent.
 */
static void test_diag_unsigned(void **state)
{
    fixture_t *f = *state;
    start(f);
    const char *channels[] = {"diag:reply:" TID ":ops-1", "payment:" TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->s.fx.sub, &f->s.fx.redis, channels), 0);
    char msg[512];

    /* Malformed: not JSON, another type, no replyTo, a bad id, oversized. */
    publish(f, "diag:" TID, "not json");
    publish(f, "diag:" TID, "{\"type\":\"PAYMENT_REQUESTED\"}");
    publish(f, "diag:" TID, "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r-0\"}");
    publish(f, "diag:" TID,
            "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r 0\",\"replyTo\":\"diag:reply:" TID
            ":ops-1\"}");
    char *big = malloc(4096);
    memset(big, ' ', 4095);
    big[4095] = '\0';
    memcpy(big,
           "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r-0\",\"replyTo\":\"diag:reply:" TID
           ":ops-1\"",
           strlen("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r-0\",\"replyTo\":\"diag:reply:" TID
                  ":ops-1\""));
    big[4094] = '}';
    publish(f, "diag:" TID, big);
    free(big);
    /* Abuse: the reply channel is another (a payment channel, a glob). */
    request(msg, sizeof(msg), "r-abuse", "payment:" TID, pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    request(msg, sizeof(msg), "r-abuse2", "diag:reply:" TID ":*", pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    request(msg, sizeof(msg), "r-abuse3", "diag:reply:T-0002:ops-1", pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    publish(f, "diag:" TID,
            "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r-x\",\"replyTo\":\"diag:reply:" TID
            ":ops-1\","
            "\"terminalId\":\"T-0002\"}");
    /* Then a good one: the first thing on either channel is its answer. */
    request(msg, sizeof(msg), "r-1", "diag:reply:" TID ":ops-1", pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    cJSON *j = expect_report(f, "diag:reply:" TID ":ops-1", "r-1", 5000);
    assert_non_null(j);
    const char *info = cJSON_GetObjectItem(j, "info")->valuestring;
    assert_non_null(strstr(info, "# metrics\r\n"));
    assert_non_null(strstr(info, "# link\r\n"));
    assert_non_null(strstr(info, "diag_refused:9\r\n"));
    cJSON *w = cJSON_GetObjectItem(j, "warnings");
    assert_true(cJSON_IsArray(w));
    assert_true(cJSON_GetArraySize(w) >= 1);
    /* The refusals' warning (logged once for the nine) is among them. */
    bool seen = false;
    cJSON *it;
    cJSON_ArrayForEach(it, w)
    {
        seen = seen || strstr(cJSON_GetObjectItem(it, "text")->valuestring,
                              "diagnostics request refused") != NULL;
    }
    assert_true(seen);
    cJSON_Delete(j);
    assert_int_equal(pos_test_agent_log_count(&f->s.fx.agent, "diagnostics request refused"), 1);

    /* A second within 10 s: refused. Then a flood: dropped, mostly unread. */
    request(msg, sizeof(msg), "r-2", "diag:reply:" TID ":ops-1", pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    for (int i = 0; i < 500; i++) {
        request(msg, sizeof(msg), "r-flood", "diag:reply:" TID ":ops-1", pos_test_wall_ms());
        publish(f, "diag:" TID, msg);
    }
    /* The agent still works and answers nothing more. */
    wait_metric(f, "diag_refused", 9 + 1 + 500);
    assert_int_equal(pos_fix_info(&f->s.fx, "metrics", "diag_answered"), 1);
    assert_true(pos_test_agent_alive(&f->s.fx.agent));
    assert_true(pos_test_agent_log_count(&f->s.fx.agent, "diagnostics request refused") <= 3);
    assert_int_equal(pos_fix_info(&f->s.fx, "metrics", "link_up"), 1);
    /* After 10 s one is answered again. */
    pos_test_sleep_ms(10100);
    request(msg, sizeof(msg), "r-3", "diag:reply:" TID ":ops-1", pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    j = expect_report(f, "diag:reply:" TID ":ops-1", "r-3", 5000);
    assert_non_null(j);
    cJSON_Delete(j);
}

/* [metrics] diagnostics = off: the agent does not even subscribe. */
static void test_diag_off(void **state)
{
    fixture_t *f = *state;
    pos_ini_set(&f->s.fx.ini, "metrics", "diagnostics", "off");
    start(f);
    assert_int_equal(pos_test_int(&f->s.fx.redis, "PUBLISH diag:" TID " x"), 0);
}

/*
 * With a key set, a request must be signed and fresh like every cloud
 * message: unsigned, tampered and stale ones are refused (the stale one
 * with the till's clock offset in the log); a signed one is answered, and
 * the answer is signed and carries no key.
 */
static void test_diag_signed(void **state)
{
    fixture_t *f = *state;
    pos_fix_signed_key(&f->s, KEY_HEX "\n", 0600);
    pos_ini_set(&f->s.fx.ini, "payment", "hmac_key_file", "%s", f->s.key);
    pos_ini_set(&f->s.fx.ini, "payment", "signature_window_s", "30");
    start(f);
    const char *channels[] = {"diag:reply:" TID ":ops-2", NULL};
    assert_int_equal(pos_test_sub_open_many(&f->s.fx.sub, &f->s.fx.redis, channels), 0);
    char msg[512];

    request(msg, sizeof(msg), "s-unsigned", "diag:reply:" TID ":ops-2", pos_test_wall_ms());
    publish(f, "diag:" TID, msg);
    request(msg, sizeof(msg), "s-tampered", "diag:reply:" TID ":ops-2", pos_test_wall_ms());
    pos_test_sign(msg, sizeof(msg), KEY_HEX);
    msg[strlen("{\"replyTo\":\"diag:reply:" TID ":ops-")] = '3';
    publish(f, "diag:" TID, msg);
    request(msg, sizeof(msg), "s-stale", "diag:reply:" TID ":ops-2", pos_test_wall_ms() - 120000);
    pos_test_sign(msg, sizeof(msg), KEY_HEX);
    publish(f, "diag:" TID, msg);
    request(msg, sizeof(msg), "s-1", "diag:reply:" TID ":ops-2", pos_test_wall_ms());
    pos_test_sign(msg, sizeof(msg), KEY_HEX);
    publish(f, "diag:" TID, msg);

    char *text = NULL;
    char channel[64];
    text = pos_test_sub_next(&f->s.fx.sub, 5000, channel, sizeof(channel));
    assert_non_null(text);
    assert_non_null(strstr(text, "\"requestId\":\"s-1\""));
    assert_non_null(strstr(text, "\"sig\":\""));
    assert_null(strstr(text, KEY_HEX));
    assert_null(strstr(text, "0102030405060708090a0b0c0d0e0f10"));
    free(text);
    wait_metric(f, "diag_refused", 3);
    assert_int_equal(pos_fix_info(&f->s.fx, "metrics", "diag_answered"), 1);
    /* Counted with the other channels' refusals too (contract.md "Signed
     * messages": on every channel, DIAG_REQUEST included). */
    assert_int_equal(pos_fix_info(&f->s.fx, "metrics", "msg_refused_unsigned"), 1);
    assert_int_equal(pos_fix_info(&f->s.fx, "metrics", "msg_refused_bad_signature"), 1);
    assert_int_equal(pos_fix_info(&f->s.fx, "metrics", "msg_refused_stale"), 1);
    assert_int_equal(pos_fix_info(&f->s.fx, "security", "refused_unsigned"), 1);
    /* Refusals are logged once per 10 s (the first, unsigned), the others
     * at debug level; the stale one with the till's clock offset. */
    pos_fix_wait_log(&f->s.fx, "unsigned: diagnostics request refused", 1, 2000);
    pos_fix_wait_log(&f->s.fx, "refused again: bad_signature", 1, 2000);
    pos_fix_wait_log(&f->s.fx, "refused again: stale (this till's clock: ", 1, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_three_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diag_unsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diag_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diag_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_hash_refresh, setup, teardown),
    };
    /* test_metrics_hash_refresh waits out the minute: a ctest entry of its
     * own (label "minute", tests/CMakeLists.txt). */
    pos_fix_filters_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
