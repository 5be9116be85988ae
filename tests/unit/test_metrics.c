/*
 * The pure parts of fleet visibility (agent/metrics/): the table's three
 * formatters, the clock offset and its warning, the warning ring's
 * scrubbing, the diagnostics request and report, and the text file's
 * atomic write.
 */
#include <ctype.h>
#include <setjmp.h>
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

#include "agent/metrics/clockcheck.h"
#include "agent/metrics/diag.h"
#include "agent/metrics/metrics.h"
#include "agent/metrics/ring.h"
#include "agent/metrics/textfile.h"

/* ---- the table and its formatters ----------------------------------------------- */

static int64_t get_arg(const void *src, unsigned arg)
{
    const int64_t *v = src;
    return v[arg];
}

static const pos_metric_t table[] = {
    POS_METRIC("link_up", "", "", POS_METRIC_GAUGE, "1 when online", 0),
    POS_METRIC("payments", "payments_approved", "outcome=\"approved\"", POS_METRIC_COUNTER,
               "By outcome", 1),
    POS_METRIC("", "payments_declined", "outcome=\"declined\"", POS_METRIC_COUNTER, "", 2),
    POS_METRIC("clock_offset_ms", "", "", POS_METRIC_GAUGE, "Offset", 3),
};
#define N (sizeof(table) / sizeof(table[0]))

static void test_read_and_info(void **state)
{
    (void)state;
    int64_t src[] = {1, 7, 0, -42}, vals[N];
    char buf[256];

    pos_metrics_read(table, N, get_arg, src, vals);
    assert_int_equal(vals[1], 7);
    assert_int_equal(vals[3], -42);
    size_t n = pos_metrics_info(table, N, vals, buf, sizeof(buf));
    assert_string_equal(buf, "# metrics\r\nlink_up:1\r\npayments_approved:7\r\n"
                             "payments_declined:0\r\nclock_offset_ms:-42\r\n\r\n");
    assert_int_equal(n, strlen(buf));
    /* Too small: whole lines only, never half of one. */
    n = pos_metrics_info(table, N, vals, buf, 30);
    assert_string_equal(buf, "# metrics\r\nlink_up:1\r\n\r\n");
    assert_int_equal(n, strlen(buf));
    assert_int_equal(pos_metrics_info(table, N, vals, buf, 0), 0);
}

static void test_prom(void **state)
{
    (void)state;
    int64_t src[] = {1, 7, 0, -42}, vals[N];
    char buf[1024];

    pos_metrics_read(table, N, get_arg, src, vals);
    int n = pos_metrics_prom(table, N, vals, "T-0001", "S-042", buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    assert_string_equal(
        buf, "# HELP posagent_link_up 1 when online\n"
             "# TYPE posagent_link_up gauge\n"
             "posagent_link_up{terminal=\"T-0001\",store=\"S-042\"} 1\n"
             "# HELP posagent_payments_total By outcome\n"
             "# TYPE posagent_payments_total counter\n"
             "posagent_payments_total{terminal=\"T-0001\",store=\"S-042\",outcome=\"approved\"} 7\n"
             "posagent_payments_total{terminal=\"T-0001\",store=\"S-042\",outcome=\"declined\"} 0\n"
             "# HELP posagent_clock_offset_ms Offset\n"
             "# TYPE posagent_clock_offset_ms gauge\n"
             "posagent_clock_offset_ms{terminal=\"T-0001\",store=\"S-042\"} -42\n");
    /* Label values that would need escaping are refused, not escaped. */
    assert_int_equal(pos_metrics_prom(table, N, vals, "T\"1", "S", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(pos_metrics_prom(table, N, vals, "", "S", buf, sizeof(buf)), -EINVAL);
    /* Never a partial document. */
    for (size_t cap = 0; cap < (size_t)n + 1; cap += 37) {
        assert_int_equal(pos_metrics_prom(table, N, vals, "T-0001", "S-042", buf, cap), -ENOSPC);
    }
}

static void test_fields(void **state)
{
    (void)state;
    int64_t src[] = {1, 7, 0, INT64_MIN}, vals[N];
    char text[N * 21];
    const char *argv[2 * N];
    size_t lens[2 * N];

    pos_metrics_read(table, N, get_arg, src, vals);
    assert_int_equal(pos_metrics_fields(table, N, vals, text, sizeof(text), argv, lens), 2 * N);
    assert_string_equal(argv[0], "link_up");
    assert_memory_equal(argv[1], "1", lens[1]);
    assert_string_equal(argv[2], "payments_approved");
    assert_memory_equal(argv[3], "7", lens[3]);
    assert_int_equal(lens[7], 20);
    assert_memory_equal(argv[7], "-9223372036854775808", 20);
    assert_int_equal(pos_metrics_fields(table, N, vals, text, 10, argv, lens), -ENOSPC);
}

/* ---- the clock ----------------------------------------------------------------------- */

static void test_clock_parse(void **state)
{
    (void)state;
    uint64_t us = 0;
    assert_int_equal(pos_clock_parse_time("1764412800", 10, "123456", 6, &us), 0);
    assert_true(us == 1764412800123456ull);
    assert_int_equal(pos_clock_parse_time("1764412800", 10, "5", 1, &us), 0);
    assert_true(us == 1764412800000005ull);
    assert_int_equal(pos_clock_parse_time("", 0, "1", 1, &us), -EINVAL);
    assert_int_equal(pos_clock_parse_time("17644a2800", 10, "1", 1, &us), -EINVAL);
    assert_int_equal(pos_clock_parse_time("-1", 2, "1", 1, &us), -EINVAL);
    assert_int_equal(pos_clock_parse_time("1", 1, "1000000", 7, &us), -EINVAL);
    assert_int_equal(pos_clock_parse_time("1234567890123", 13, "0", 1, &us), -EINVAL);
}

static void test_clock_offset(void **state)
{
    (void)state;
    const uint64_t t = 1764412800000000ull;
    /* Same clocks, symmetric 10 ms round trip: the server answered at the
     * midpoint, no offset. */
    assert_int_equal(pos_clock_offset_ms(t, 10000, t + 5000), 0);
    /* The till 2.5 s behind Redis: positive. */
    assert_int_equal(pos_clock_offset_ms(t, 10000, t + 2505000), 2500);
    /* The till 90 s ahead: negative. */
    assert_int_equal(pos_clock_offset_ms(t, 0, t - 90000000), -90000);
    /* The error is at most half the round trip: an answer at either end
     * of a 2 s trip reads as 1 s either way. */
    assert_int_equal(pos_clock_offset_ms(t, 2000000, t), -1000);
    assert_int_equal(pos_clock_offset_ms(t, 2000000, t + 2000000), 1000);
    /* Sub-millisecond rounds towards zero. */
    assert_int_equal(pos_clock_offset_ms(t, 0, t + 999), 0);
    assert_int_equal(pos_clock_offset_ms(t, 0, t - 999), 0);
}

static void test_clock_crossed(void **state)
{
    (void)state;
    bool above = false, cleared = false;
    /* Half a 60 s window. */
    assert_false(pos_clock_crossed(&above, 29000, 30000, &cleared));
    assert_false(pos_clock_crossed(&above, 30000, 30000, &cleared));
    assert_true(pos_clock_crossed(&above, 30001, 30000, &cleared));
    assert_false(cleared);
    /* Once per crossing, whichever way the clock is off. */
    assert_false(pos_clock_crossed(&above, 45000, 30000, &cleared));
    assert_false(pos_clock_crossed(&above, -45000, 30000, &cleared));
    assert_false(pos_clock_crossed(&above, POS_CLOCK_UNKNOWN, 30000, &cleared));
    assert_true(above);
    assert_false(pos_clock_crossed(&above, -100, 30000, &cleared));
    assert_true(cleared);
    assert_true(pos_clock_crossed(&above, -30001, 30000, &cleared));
    assert_true(pos_clock_crossed(&above, INT64_MIN + 1, 30000, &cleared) == false);
}

/* ---- the warning ring ----------------------------------------------------------------- */

static void scrubbed(const char *in, const char *want)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", in);
    pos_ring_scrub(buf);
    assert_string_equal(buf, want);
}

static void test_scrub(void **state)
{
    (void)state;
    scrubbed("link: online 127.0.0.1:6379 after 3 attempts",
             "link: online 127.0.0.1:6379 after 3 attempts");
    scrubbed("card 4111111111111111 declined", "card **************** declined");
    scrubbed("card 4111 1111 1111 1111 declined", "card ******************* declined");
    scrubbed("pan 4111-1111-1111-1111.", "pan *******************.");
    scrubbed("tx-1001 amount 1250", "tx-1001 amount 1250");
    scrubbed("key 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 bad",
             "key **************************************************************** bad");
    scrubbed("AUTH password=hunter2 refused", "AUTH password=******* refused");
    scrubbed("token: abc, next", "token: ***, next");
    scrubbed("ref=a4111111111111111", "ref=a****************");
    scrubbed("", "");
    /* Found by a review: other groupings, and JSON. */
    scrubbed("pan 4111.1111.1111.1111 x", "pan ******************* x");
    scrubbed("pan 4111/1111/1111/1111 x", "pan ******************* x");
    scrubbed("pan 4111  1111  1111  1111 x", "pan ********************** x");
    scrubbed("{\"password\":\"hunter2\"}", "{\"password\":\"*******\"}");
    scrubbed("{\"token\": \"abc\", \"n\":1}", "{\"token\": \"***\", \"n\":1}");
    scrubbed("link: 10.0.0.1:6379 down since 2026-12-08",
             "link: 10.0.0.1:6379 down since 2026-12-08");
    /* A line ending in the start of a keyword, in a buffer of its own
     * size: nothing is read past its end (the fuzzer found a read past it,
     * under ASan, in the JSON quote's look-ahead). */
    static const char *const tails[] = {"x pa",       "x passwor", "x pass", "x key",
                                        "password\"", "token\"",   "p",      ""};
    for (size_t k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
        char *t = strdup(tails[k]);
        assert_non_null(t);
        pos_ring_scrub(t);
        assert_string_equal(t, tails[k]);
        free(t);
    }
}

typedef struct collected {
    char text[POS_RING_LINES + 2][POS_RING_LINE_MAX];
    char level[POS_RING_LINES + 2];
    unsigned n;
} collected_t;

static void collect(void *ctx, uint64_t ts_ms, char level, const char *text)
{
    collected_t *c = ctx;
    (void)ts_ms;
    snprintf(c->text[c->n], POS_RING_LINE_MAX, "%s", text);
    c->level[c->n++] = level;
}

static void test_ring(void **state)
{
    (void)state;
    pos_ring_t *r = malloc(sizeof(*r));
    collected_t *c = calloc(1, sizeof(*c));
    assert_int_equal(pos_ring_init(r), 0);
    assert_int_equal(pos_ring_each(r, collect, c), 0);
    pos_ring_add(r, 1, 'W', "msg", "card 5555555555554444 refused");
    assert_int_equal(pos_ring_each(r, collect, c), 1);
    assert_string_equal(c->text[0], "msg: card **************** refused");
    /* The last POS_RING_LINES, oldest first; long lines cut. */
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        char m[24];
        snprintf(m, sizeof(m), "line %d", i);
        pos_ring_add(r, (uint64_t)i, i % 2 ? 'E' : 'W', "t", i == 19 ? big : m);
    }
    c->n = 0;
    assert_int_equal(pos_ring_each(r, collect, c), POS_RING_LINES);
    assert_string_equal(c->text[0], "t: line 4");
    assert_int_equal(c->level[0], 'W');
    assert_int_equal(c->level[1], 'E');
    assert_int_equal(strlen(c->text[POS_RING_LINES - 1]), POS_RING_LINE_MAX - 1);

    assert_true(r->total == 21);
    /* A card number at the cut: scrubbed before cutting, and a part of
     * one left by the cut hidden too (no run of 6 digits survives). */
    char longmsg[400];
    for (int off = 170; off < 200; off++) {
        memset(longmsg, 'a', (size_t)off);
        snprintf(longmsg + off, sizeof(longmsg) - (size_t)off, "4111111111111111 tail");
        pos_ring_add(r, 2, 'W', "t", longmsg);
        memset(c, 0, sizeof(*c));
        unsigned n = pos_ring_each(r, collect, c);
        const char *t = c->text[n - 1];
        int run = 0, most = 0;
        for (const char *q = t; *q != '\0'; q++) {
            run = isdigit((unsigned char)*q) ? run + 1 : 0;
            most = run > most ? run : most;
        }
        if (most >= 6) {
            fail_msg("offset %d: %d digits left: %s", off, most, t);
        }
    }
    pos_ring_close(r);
    free(c);
    free(r);
}

/* ---- diagnostics ----------------------------------------------------------------------- */

static int decode(const char *json, pos_diag_request_t *req)
{
    char why[160];
    return pos_diag_decode(json, strlen(json), "T-0001", req, why, sizeof(why));
}

static void test_diag_decode(void **state)
{
    (void)state;
    pos_diag_request_t req;

    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r-1\","
                            "\"replyTo\":\"diag:reply:T-0001:ops:7\",\"ts\":1,\"sig\":\"00\"}",
                            &req),
                     0);
    assert_string_equal(req.request_id, "r-1");
    assert_string_equal(req.reply_to, "diag:reply:T-0001:ops:7");
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r-1\","
                            "\"replyTo\":\"diag:reply:T-0001:x\",\"terminalId\":\"T-0001\"}",
                            &req),
                     0);
    /* Malformed. */
    assert_int_equal(decode("", &req), -EINVAL);
    assert_int_equal(decode("[1]", &req), -EINVAL);
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\"", &req), -EINVAL);
    assert_int_equal(decode("{\"type\":\"SYSTEM_ALERT\",\"requestId\":\"r\","
                            "\"replyTo\":\"diag:reply:T-0001:x\"}",
                            &req),
                     -EINVAL);
    assert_int_equal(
        decode("{\"type\":\"DIAG_REQUEST\",\"replyTo\":\"diag:reply:T-0001:x\"}", &req), -EINVAL);
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":7,"
                            "\"replyTo\":\"diag:reply:T-0001:x\"}",
                            &req),
                     -EINVAL);
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"a b\","
                            "\"replyTo\":\"diag:reply:T-0001:x\"}",
                            &req),
                     -EINVAL);
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r\"}", &req), -EINVAL);
    /* Abuse: a reply channel outside diag:reply:*, or a pattern. */
    static const char *const bad_reply[] = {
        "payment:T-0001",     "transaction:S-042",  "system:terminals",    "diag:reply:",
        "diag:reply:*",       "diag:reply:a b",     "diag:replyx",         "DIAG:REPLY:x",
        "xdiag:reply:abc",    "diag:reply:a\\nb",   "diag:reply:x",        "diag:reply:T-0002:x",
        "diag:reply:T-0001",  "diag:reply:T-0001:", "diag:reply:T-0001:*", "diag:reply:T-00011:x",
        "diag:reply:T-0001x",
    };
    for (size_t i = 0; i < sizeof(bad_reply) / sizeof(bad_reply[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r\",\"replyTo\":\"%s\"}",
                 bad_reply[i]);
        assert_int_equal(decode(json, &req), -EPERM);
    }
    char json[256], suffix[70];
    memset(suffix, 'a', 65);
    suffix[65] = '\0';
    snprintf(json, sizeof(json),
             "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r\",\"replyTo\":\"diag:reply:T-0001:%s\"}",
             suffix);
    assert_int_equal(decode(json, &req), -EPERM);
    suffix[64] = '\0';
    snprintf(json, sizeof(json),
             "{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r\",\"replyTo\":\"diag:reply:T-0001:%s\"}",
             suffix);
    assert_int_equal(decode(json, &req), 0);
    /* Another terminal's, or a terminal's own echo. */
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r\","
                            "\"replyTo\":\"diag:reply:T-0001:x\",\"terminalId\":\"T-0002\"}",
                            &req),
                     -EPERM);
    assert_int_equal(decode("{\"type\":\"DIAG_REQUEST\",\"requestId\":\"r\","
                            "\"replyTo\":\"diag:reply:T-0001:x\",\"terminalId\":5}",
                            &req),
                     -EPERM);
    assert_int_equal(decode("{\"type\":\"DIAG_REPORT\",\"origin\":\"terminal\"}", &req), -EALREADY);
    /* Oversized: refused unread. */
    char *big = malloc(POS_DIAG_MAX_BYTES + 2);
    memset(big, ' ', POS_DIAG_MAX_BYTES + 1);
    big[POS_DIAG_MAX_BYTES + 1] = '\0';
    assert_int_equal(decode(big, &req), -E2BIG);
    free(big);
}

static void test_diag_report(void **state)
{
    (void)state;
    pos_diag_line_t lines[] = {{10, 'W', "link: \"quoted\"\ttab"}, {20, 'E', "store: full"}};
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(pos_diag_report("T-0001", "S-042", 1764412800000ull, "r-1",
                                     "# server\r\nstatus:online\r\n", lines, 2, &out, &len),
                     0);
    assert_int_equal(len, strlen(out));
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "DIAG_REPORT");
    assert_string_equal(cJSON_GetObjectItem(j, "origin")->valuestring, "terminal");
    assert_string_equal(cJSON_GetObjectItem(j, "terminalId")->valuestring, "T-0001");
    assert_string_equal(cJSON_GetObjectItem(j, "storeId")->valuestring, "S-042");
    assert_string_equal(cJSON_GetObjectItem(j, "requestId")->valuestring, "r-1");
    assert_true(cJSON_GetObjectItem(j, "ts")->valuedouble == 1764412800000.0);
    assert_string_equal(cJSON_GetObjectItem(j, "info")->valuestring,
                        "# server\r\nstatus:online\r\n");
    cJSON *w = cJSON_GetObjectItem(j, "warnings");
    assert_int_equal(cJSON_GetArraySize(w), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "text")->valuestring,
                        "link: \"quoted\"\ttab");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "level")->valuestring,
                        "warn");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 1), "level")->valuestring,
                        "error");
    cJSON_Delete(j);
    free(out);
    assert_int_equal(pos_diag_report(NULL, "S", 1, "r", "", NULL, 0, &out, &len), -EINVAL);
}

/* ---- the text file ---------------------------------------------------------------------- */

static void test_textfile_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/posagent-textfile-XXXXXX", path[96], tmp[96], other[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/posagent.prom", dir);
    snprintf(tmp, sizeof(tmp), "%s/.posagent.prom.tmp", dir);
    snprintf(other, sizeof(other), "%s/victim", dir);

    assert_int_equal(pos_textfile_write_now(path, tmp, "a 1\n", 4), 0);
    FILE *f = fopen(path, "r");
    char buf[32] = "";
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "a 1\n");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_not_equal(access(tmp, F_OK), 0);

    /* A symlink planted as the temporary file is removed, never followed. */
    f = fopen(other, "w");
    assert_non_null(f);
    fputs("keep", f);
    fclose(f);
    assert_int_equal(symlink(other, tmp), 0);
    assert_int_equal(pos_textfile_write_now(path, tmp, "b 2\n", 4), 0);
    f = fopen(other, "r");
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "keep");
    /* A symlink as the file itself is replaced, not written through. */
    unlink(path);
    assert_int_equal(symlink(other, path), 0);
    assert_int_equal(pos_textfile_write_now(path, tmp, "c 3\n", 4), 0);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    f = fopen(other, "r");
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "keep");
    /* A directory that does not exist: an error, nothing left behind. */
    assert_int_equal(
        pos_textfile_write_now("/nonexistent-dir/x.prom", "/nonexistent-dir/.x.tmp", "d\n", 2),
        -ENOENT);

    pos_textfile_t t;
    assert_int_equal(pos_textfile_init(&t, NULL, "relative.prom", 64), -EINVAL);
    assert_int_equal(pos_textfile_init(&t, NULL, "/dir/", 64), -EINVAL);
    assert_int_equal(pos_textfile_init(&t, NULL, path, 64), 0);
    assert_string_equal(t.tmp, tmp);
    pos_textfile_close(&t, NULL);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_and_info),  cmocka_unit_test(test_prom),
        cmocka_unit_test(test_fields),         cmocka_unit_test(test_clock_parse),
        cmocka_unit_test(test_clock_offset),   cmocka_unit_test(test_clock_crossed),
        cmocka_unit_test(test_scrub),          cmocka_unit_test(test_ring),
        cmocka_unit_test(test_diag_decode),    cmocka_unit_test(test_diag_report),
        cmocka_unit_test(test_textfile_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
