/* The RESP command parser: framing, inline quoting, every split point of
 * the input, limits and garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/api/resp_parse.h"

/* Collected commands, each flattened as "arg|arg|arg" with lengths kept. */
typedef struct collected {
    char text[16384];
    size_t len;
    int count;
    int rc; /* last non-1 return of pos_resp_next */
} collected_t;

static void collect_into(pos_resp_parser_t *p, collected_t *out)
{
    pos_resp_cmd_t cmd;
    int rc;

    while ((rc = pos_resp_next(p, &cmd)) == 1) {
        out->count++;
        for (int i = 0; i < cmd.argc; i++) {
            assert_int_equal(cmd.argv[i][cmd.lens[i]], '\0');
            assert_true(out->len + cmd.lens[i] + 2 < sizeof(out->text));
            memcpy(out->text + out->len, cmd.argv[i], cmd.lens[i]);
            out->len += cmd.lens[i];
            out->text[out->len++] = i + 1 < cmd.argc ? '|' : '\n';
        }
    }
    out->rc = rc;
}

/* Feeds "in" in pieces cut at "cuts" (ascending offsets) and collects. */
static void parse_cut(const char *in, size_t len, const size_t *cuts, int ncuts, collected_t *out)
{
    pos_resp_parser_t p;
    size_t at = 0;

    memset(out, 0, sizeof(*out));
    pos_resp_init(&p, NULL);
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        int rc = pos_resp_feed(&p, in + at, to - at);
        if (rc != 0) {
            out->rc = rc;
            break;
        }
        collect_into(&p, out);
        if (out->rc < 0) {
            break;
        }
        at = to;
    }
    pos_resp_free(&p);
}

static void parse_all(const char *in, size_t len, collected_t *out)
{
    parse_cut(in, len, NULL, 0, out);
}

static void test_multibulk(void **state)
{
    static const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
                             "*1\r\n$4\r\nPING\r\n";
    collected_t c;

    (void)state;
    parse_all(in, sizeof(in) - 1, &c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.len, strlen("SET|k|hello\nPING\n"));
    assert_memory_equal(c.text, "SET|k|hello\nPING\n", c.len);
}

static void test_binary_bulk(void **state)
{
    static const char in[] = "*2\r\n$3\r\nGET\r\n$6\r\na\0\r\nb\n\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n";
    collected_t c;

    (void)state;
    parse_all(in, sizeof(in) - 1, &c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.len, 16);
    assert_memory_equal(c.text, "GET|a\0\r\nb\n\nGET|\n", 16);
}

static void test_inline(void **state)
{
    static const char in[] = "PING\r\n"
                             "  set   a    b  \n"
                             "\r\n"
                             "\n"
                             "SET k \"hello world\\n\\x41\\t\\\"q\\\"\" 'it\\'s' \"\"\r\n"
                             "GET a\"b c\"\n"
                             "x\r\n";
    const char *want = "PING\nset|a|b\nSET|k|hello world\nA\t\"q\"|it's|\nGET|ab c\nx\n";
    collected_t c;

    (void)state;
    parse_all(in, sizeof(in) - 1, &c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.count, 5);
    assert_int_equal(c.len, strlen(want));
    assert_memory_equal(c.text, want, c.len);
}

static void test_inline_unbalanced(void **state)
{
    static const char *const bad[] = {
        "SET k \"abc\r\n",  "SET k 'abc\n",    "SET k \"abc\"def\n",
        "SET k 'abc'def\n", "GET a\"b c\"d\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        collected_t c;
        parse_all(bad[i], strlen(bad[i]), &c);
        assert_int_equal(c.rc, -EPROTO);
        assert_int_equal(c.count, 0);
    }
}

static void test_empty_multibulk_ignored(void **state)
{
    static const char in[] = "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n";
    collected_t c;

    (void)state;
    parse_all(in, sizeof(in) - 1, &c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.count, 1);
}

/* The same stream cut at every byte, and at every pair of bytes, gives the
 * same commands as in one piece; byte by byte too. */
static void test_every_split(void **state)
{
    static const char in[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$10\r\n0123456789\r\n"
                             "GET 'a b' \"c\\x00d\"\r\n"
                             "*0\r\n"
                             "\n"
                             "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
                             "PING\n";
    size_t n = sizeof(in) - 1;
    collected_t whole, part;
    size_t *cuts = malloc(n * sizeof(*cuts));

    (void)state;
    assert_non_null(cuts);
    parse_all(in, n, &whole);
    assert_int_equal(whole.rc, 0);
    assert_int_equal(whole.count, 4);
    for (size_t i = 1; i < n; i++) {
        cuts[0] = i;
        parse_cut(in, n, cuts, 1, &part);
        assert_int_equal(part.rc, 0);
        assert_int_equal(part.count, whole.count);
        assert_int_equal(part.len, whole.len);
        assert_memory_equal(part.text, whole.text, whole.len);
        for (size_t j = i + 1; j < n; j++) {
            cuts[1] = j;
            parse_cut(in, n, cuts, 2, &part);
            assert_int_equal(part.count, whole.count);
            assert_memory_equal(part.text, whole.text, whole.len);
        }
    }
    for (size_t i = 0; i + 1 < n; i++) {
        cuts[i] = i + 1;
    }
    parse_cut(in, n, cuts, (int)n - 1, &part);
    assert_int_equal(part.count, whole.count);
    assert_memory_equal(part.text, whole.text, whole.len);
    free(cuts);
}

static void test_pipeline_1000(void **state)
{
    static const char one[] = "*2\r\n$3\r\nGET\r\n$4\r\nk000\r\n";
    size_t n = sizeof(one) - 1;
    char *in = malloc(n * 1000);
    pos_resp_parser_t p;
    pos_resp_cmd_t cmd;
    int count = 0, rc;

    (void)state;
    assert_non_null(in);
    for (int i = 0; i < 1000; i++) {
        memcpy(in + (size_t)i * n, one, n);
        char num[16];
        snprintf(num, sizeof(num), "%03d", i);
        memcpy(in + (size_t)i * n + 18, num, 3);
    }
    pos_resp_init(&p, NULL);
    assert_int_equal(pos_resp_feed(&p, in, n * 1000), 0);
    while ((rc = pos_resp_next(&p, &cmd)) == 1) {
        char want[16];
        snprintf(want, sizeof(want), "k%03d", count);
        assert_int_equal(cmd.argc, 2);
        assert_string_equal(cmd.argv[1], want);
        count++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(count, 1000);
    /* Everything handed out: the large buffer is released. */
    assert_true(pos_resp_memory(&p) < 4096 + 1024);
    pos_resp_free(&p);
    free(in);
}

typedef struct bad_case {
    const char *in;
    size_t len;
    int rc;
    const char *msg;
} bad_case_t;

#define BAD(s, rc, msg)                                                                            \
    {                                                                                              \
        s, sizeof(s) - 1, rc, msg                                                                  \
    }

static void test_garbage(void **state)
{
    static const bad_case_t bad[] = {
        BAD("*2\r\n:5\r\n", -EPROTO, "Protocol error: expected '$', got ':'"),
        BAD("*1\r\n$\x01\r\n", -EPROTO, "Protocol error: invalid bulk length"),
        BAD("*1\r\n$-1\r\n", -EMSGSIZE, "Protocol error: invalid bulk length"),
        BAD("*1\r\n$12a\r\n", -EPROTO, "Protocol error: invalid bulk length"),
        BAD("*1\r\n$\r\n", -EPROTO, "Protocol error: invalid bulk length"),
        BAD("*1\r\n$+3\r\nabc\r\n", -EPROTO, "Protocol error: invalid bulk length"),
        BAD("*1\r\n$99999999999999999999\r\n", -EPROTO, "Protocol error: invalid bulk length"),
        BAD("*1\r\n$1111111111111111111111111111111111111111\r\n", -EPROTO,
            "Protocol error: too big bulk count string"),
        BAD("*x\r\n", -EPROTO, "Protocol error: invalid multibulk length"),
        BAD("*1025\r\n", -EMSGSIZE, "Protocol error: invalid multibulk length"),
        BAD("*1\n$1\r\na\r\n", -EPROTO, "Protocol error: invalid multibulk length"),
        BAD("*1\rx", -EPROTO, "Protocol error: expected CRLF after multibulk length"),
        BAD("*1\r\n$3\r\nabcXY", -EPROTO, "Protocol error: bad bulk string terminator"),
        BAD("*1\r\n$3\r\nabc\n\r", -EPROTO, "Protocol error: bad bulk string terminator"),
        BAD("*1\r\n$524289\r\n", -EMSGSIZE, "Protocol error: invalid bulk length"),
        BAD("*2\r\n$3\r\nabc\r\n\x80\r\n", -EPROTO, "Protocol error: expected '$', got '?'"),
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pos_resp_parser_t p;
        pos_resp_cmd_t cmd;
        pos_resp_init(&p, NULL);
        assert_int_equal(pos_resp_feed(&p, bad[i].in, bad[i].len), 0);
        int rc = pos_resp_next(&p, &cmd);
        if (rc != bad[i].rc || strcmp(pos_resp_error(&p), bad[i].msg) != 0) {
            print_error("case %zu: rc %d msg \"%s\"\n", i, rc, pos_resp_error(&p));
        }
        assert_int_equal(rc, bad[i].rc);
        assert_string_equal(pos_resp_error(&p), bad[i].msg);
        /* Sticky, for feed and next alike. */
        assert_int_equal(pos_resp_next(&p, &cmd), bad[i].rc);
        assert_int_equal(pos_resp_feed(&p, "PING\r\n", 6), bad[i].rc);
        pos_resp_free(&p);
    }
}

/* An oversized bulk is refused at its header, before any of its bytes. */
static void test_oversized_bulk_refused_early(void **state)
{
    pos_resp_parser_t p;
    pos_resp_cmd_t cmd;
    static const char head[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000\r\n";

    (void)state;
    pos_resp_init(&p, NULL);
    assert_int_equal(pos_resp_feed(&p, head, sizeof(head) - 1), 0);
    assert_int_equal(pos_resp_next(&p, &cmd), -EMSGSIZE);
    pos_resp_free(&p);
}

/* Many arguments near the bulk limit exceed the pending limit at a header. */
static void test_command_larger_than_pending(void **state)
{
    pos_resp_limits_t lim = {.max_pending = 4096, .max_bulk = 3000};
    pos_resp_parser_t p;
    pos_resp_cmd_t cmd;
    char in[64];
    int n = snprintf(in, sizeof(in), "*3\r\n$2000\r\n");

    (void)state;
    pos_resp_init(&p, &lim);
    assert_int_equal(pos_resp_feed(&p, in, (size_t)n), 0);
    assert_int_equal(pos_resp_next(&p, &cmd), 0);
    char *junk = malloc(2002);
    assert_non_null(junk);
    memset(junk, 'x', 2000);
    memcpy(junk + 2000, "\r\n", 2);
    assert_int_equal(pos_resp_feed(&p, junk, 2002), 0);
    n = snprintf(in, sizeof(in), "$2500\r\n");
    assert_int_equal(pos_resp_feed(&p, in, (size_t)n), 0);
    assert_int_equal(pos_resp_next(&p, &cmd), -EMSGSIZE);
    assert_string_equal(pos_resp_error(&p), "Protocol error: request too large");
    pos_resp_free(&p);
    free(junk);
}

static void test_inline_too_long(void **state)
{
    pos_resp_parser_t p;
    pos_resp_cmd_t cmd;
    char *line = malloc(POS_RESP_MAX_INLINE + 2);
    size_t fed = 0;
    int rc = 0;

    (void)state;
    assert_non_null(line);
    memset(line, 'a', POS_RESP_MAX_INLINE + 2);
    pos_resp_init(&p, NULL);
    /* Exactly at the limit is fine. */
    line[POS_RESP_MAX_INLINE] = '\n';
    assert_int_equal(pos_resp_feed(&p, line, POS_RESP_MAX_INLINE + 1), 0);
    assert_int_equal(pos_resp_next(&p, &cmd), 1);
    assert_int_equal(cmd.lens[0], POS_RESP_MAX_INLINE);
    /* Two more bytes without a newline (one could be the CR) fail as soon
     * as they have arrived. */
    line[POS_RESP_MAX_INLINE] = 'a';
    while (fed < POS_RESP_MAX_INLINE + 2) {
        size_t n = POS_RESP_MAX_INLINE + 2 - fed < 1000 ? POS_RESP_MAX_INLINE + 2 - fed : 1000;
        assert_int_equal(pos_resp_feed(&p, line + fed, n), 0);
        fed += n;
        rc = pos_resp_next(&p, &cmd);
        if (fed < POS_RESP_MAX_INLINE + 2) {
            assert_int_equal(rc, 0);
        }
    }
    assert_int_equal(rc, -EMSGSIZE);
    assert_string_equal(pos_resp_error(&p), "Protocol error: too big inline request");
    pos_resp_free(&p);
    free(line);
}

static void test_inline_too_many_args(void **state)
{
    pos_resp_limits_t lim = {.max_args = 3};
    pos_resp_parser_t p;
    pos_resp_cmd_t cmd;

    (void)state;
    pos_resp_init(&p, &lim);
    assert_int_equal(pos_resp_feed(&p, "a b c\nd e f g\n", 14), 0);
    assert_int_equal(pos_resp_next(&p, &cmd), 1);
    assert_int_equal(cmd.argc, 3);
    assert_int_equal(pos_resp_next(&p, &cmd), -EMSGSIZE);
    pos_resp_free(&p);
}

static void test_pending_limit(void **state)
{
    pos_resp_limits_t lim = {.max_pending = 100};
    pos_resp_parser_t p;
    char junk[60];

    (void)state;
    memset(junk, 'x', sizeof(junk));
    pos_resp_init(&p, &lim);
    assert_int_equal(pos_resp_feed(&p, junk, sizeof(junk)), 0);
    assert_int_equal(pos_resp_feed(&p, junk, sizeof(junk)), -EMSGSIZE);
    assert_string_equal(pos_resp_error(&p), "Protocol error: request too large");
    pos_resp_free(&p);
}

static void test_max_args_ok(void **state)
{
    pos_resp_parser_t p;
    pos_resp_cmd_t cmd;
    char head[16];
    int n = snprintf(head, sizeof(head), "*%u\r\n", POS_RESP_MAX_ARGS);

    (void)state;
    pos_resp_init(&p, NULL);
    assert_int_equal(pos_resp_feed(&p, head, (size_t)n), 0);
    for (unsigned i = 0; i < POS_RESP_MAX_ARGS; i++) {
        assert_int_equal(pos_resp_feed(&p, "$1\r\nx\r\n", 7), 0);
        assert_int_equal(pos_resp_next(&p, &cmd), i + 1 == POS_RESP_MAX_ARGS ? 1 : 0);
    }
    assert_int_equal(cmd.argc, POS_RESP_MAX_ARGS);
    pos_resp_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk),
        cmocka_unit_test(test_binary_bulk),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_inline_unbalanced),
        cmocka_unit_test(test_empty_multibulk_ignored),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_pipeline_1000),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_oversized_bulk_refused_early),
        cmocka_unit_test(test_command_larger_than_pending),
        cmocka_unit_test(test_inline_too_long),
        cmocka_unit_test(test_inline_too_many_args),
        cmocka_unit_test(test_pending_limit),
        cmocka_unit_test(test_max_args_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
