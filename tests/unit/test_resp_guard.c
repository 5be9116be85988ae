/*
 * The RESP guard (agent/link/resp_guard.c): what it lets through, where it
 * stops a stream and why, whole or byte by byte, and that what it lets
 * through hiredis 0.14 reads as the same replies.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "agent/link/resp_guard.h"

/* Everything the agent may be sent on its connections, RESP2 only. */
static const char *const valid_streams[] = {
    "+OK\r\n",
    "+PONG\r\n",
    "-ERR unknown command 'FOO', with args beginning with: \r\n",
    "-NOAUTH Authentication required.\r\n",
    ":0\r\n",
    ":42\r\n",
    ":-1\r\n",
    ":9223372036854775807\r\n",
    ":-9223372036854775808\r\n",
    "$5\r\nhello\r\n",
    "$0\r\n\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "*0\r\n",
    /* a bulk whose payload holds CRLF and looks like headers */
    "$11\r\n*3\r\n$1\r\n$\r\n\r\n",
    /* MGET */
    "*3\r\n$3\r\nfoo\r\n$-1\r\n$0\r\n\r\n",
    /* subscribe confirmation, message, tracking invalidation, flush */
    "*3\r\n$9\r\nsubscribe\r\n$14\r\npayment:T-0001\r\n:1\r\n",
    "*3\r\n$7\r\nmessage\r\n$14\r\npayment:T-0001\r\n$2\r\n{}\r\n",
    "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$5\r\nuser:\r\n$3\r\nk:1\r\n",
    "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*-1\r\n",
    /* SCAN page */
    "*2\r\n$4\r\n1234\r\n*2\r\n$3\r\na:1\r\n$3\r\na:2\r\n",
    /* ROLE of a master with one replica (3 levels) */
    "*3\r\n$6\r\nmaster\r\n:3129659\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$"
    "7\r\n3129242\r\n",
    /* CLUSTER SLOTS (4 levels) */
    "*1\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:30001\r\n$3\r\nabc\r\n*0\r\n",
    /* an error inside an array (EXEC) */
    "*2\r\n+OK\r\n-ERR no\r\n",
    /* a lone CR inside a status line is text, as hiredis reads it */
    "+a\rb\r\n",
    /* several replies back to back */
    "+OK\r\n:1\r\n$1\r\nx\r\n*1\r\n:2\r\n",
};

/* Complete replies hiredis reads from s; -1 when it fails. */
static int hiredis_count(const char *s, size_t len)
{
    redisReader *r = redisReaderCreate();
    int n = 0;

    assert_non_null(r);
    assert_int_equal(redisReaderFeed(r, s, len), REDIS_OK);
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(r, &reply) != REDIS_OK) {
            n = -1;
            break;
        }
        if (reply == NULL) {
            break;
        }
        freeReplyObject(reply);
        n++;
    }
    redisReaderFree(r);
    return n;
}

static pos_resp_guard_t *guard_new(const pos_resp_guard_limits_t *lim)
{
    pos_resp_guard_t *g = malloc(sizeof(*g));
    assert_non_null(g);
    pos_resp_guard_init(g, lim);
    return g;
}

/* Feeds s whole; returns the verdict, *used the bytes accepted. */
static int feed_all(pos_resp_guard_t *g, const char *s, size_t len, size_t *used)
{
    return pos_resp_guard_feed(g, s, len, used);
}

/* Feeds s one byte at a time; returns the verdict and, in *used, the bytes
 * accepted before it. */
static int feed_bytes(pos_resp_guard_t *g, const char *s, size_t len, size_t *used)
{
    size_t u;

    *used = 0;
    for (size_t i = 0; i < len; i++) {
        int rc = pos_resp_guard_feed(g, s + i, 1, &u);
        *used += u;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void test_accepts_what_the_agent_sees(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid_streams) / sizeof(valid_streams[0]); i++) {
        const char *s = valid_streams[i];
        size_t len = strlen(s), used;
        int want = hiredis_count(s, len);
        pos_resp_guard_t *g = guard_new(NULL);

        if (want < 1) {
            fail_msg("hiredis cannot read stream %zu", i);
        }
        assert_int_equal(feed_all(g, s, len, &used), 0);
        assert_int_equal(used, len);
        assert_int_equal((int)g->replies, want);
        assert_true(pos_resp_guard_idle(g));

        /* The same, a byte at a time. */
        pos_resp_guard_reset(g);
        assert_int_equal(feed_bytes(g, s, len, &used), 0);
        assert_int_equal(used, len);
        assert_int_equal((int)g->replies, want);
        assert_true(pos_resp_guard_idle(g));

        /* A prefix is not a reply yet. */
        pos_resp_guard_reset(g);
        assert_int_equal(feed_all(g, s, len - 1, &used), 0);
        assert_int_equal((int)g->replies, want - 1);
        assert_false(pos_resp_guard_idle(g));
        free(g);
    }
}

/* s is refused with err/what at byte "at" (the offending byte), whole or
 * byte by byte, and stays refused. */
static void expect_refused(const pos_resp_guard_limits_t *lim, const char *s, size_t len, int err,
                           pos_resp_guard_what_t what, size_t at)
{
    pos_resp_guard_t *g = guard_new(lim);
    size_t used;

    assert_int_equal(feed_all(g, s, len, &used), err);
    assert_int_equal(g->what, what);
    assert_int_equal(used, at);
    /* sticky */
    assert_int_equal(pos_resp_guard_feed(g, "+OK\r\n", 5, &used), err);
    assert_int_equal(used, 0);

    pos_resp_guard_reset(g);
    assert_int_equal(feed_bytes(g, s, len, &used), err);
    assert_int_equal(g->what, what);
    assert_int_equal(used, at);

    /* A new connection starts clean. */
    pos_resp_guard_reset(g);
    assert_int_equal(pos_resp_guard_feed(g, "+OK\r\n", 5, &used), 0);
    assert_int_equal(g->replies, 1);
    free(g);
}

/* Feeds a string literal whole. */
#define FEED(g, lit, used) feed_all((g), (lit), sizeof(lit) - 1, (used))

#define REFUSED(lim, lit, err, what, at)                                                           \
    expect_refused((lim), (lit), sizeof(lit) - 1, err, what, at)

static void test_bulk_limit(void **state)
{
    pos_resp_guard_limits_t lim = {.bulk_bytes = 10};
    pos_resp_guard_t *g = guard_new(&lim);
    size_t used;

    (void)state;
    /* At the limit: fine. */
    assert_int_equal(FEED(g, "$10\r\n0123456789\r\n", &used), 0);
    assert_int_equal(g->replies, 1);
    free(g);
    /* One over: refused at the header's LF, before any payload. */
    REFUSED(&lim, "$11\r\n01234567890\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_BULK, 4);
    /* Inside an array, after a complete reply. */
    REFUSED(&lim, "+OK\r\n*2\r\n$1\r\na\r\n$11\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_BULK, 20);

    /* The 2 GB bulk of the issue, with the default limits. */
    g = guard_new(NULL);
    assert_int_equal(FEED(g, "$2147483648\r\n", &used), -EMSGSIZE);
    assert_int_equal(g->seen, 2147483648u);
    char why[160];
    pos_resp_guard_describe(g, why, sizeof(why));
    assert_string_equal(why, "bulk string of 2147483648 bytes exceeds the limit of 266240 bytes");
    free(g);

    assert_int_equal(pos_resp_guard_bulk_limit(262144, 65536), 262144 + POS_RESP_GUARD_HEADROOM);
    assert_int_equal(pos_resp_guard_bulk_limit(1024, 65536), 65536 + POS_RESP_GUARD_HEADROOM);
}

static void test_element_limit(void **state)
{
    pos_resp_guard_limits_t lim = {.elements = 3};
    pos_resp_guard_t *g;
    size_t used;
    char why[160];

    (void)state;
    g = guard_new(&lim);
    assert_int_equal(FEED(g, "*3\r\n:1\r\n:2\r\n:3\r\n", &used), 0);
    assert_int_equal(g->replies, 1);
    free(g);
    REFUSED(&lim, "*4\r\n:1\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_ELEMENTS, 3);
    REFUSED(&lim, "*1\r\n*4\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_ELEMENTS, 7);

    /* The endless array of the issue, and one hiredis would try to allocate. */
    g = guard_new(NULL);
    assert_int_equal(FEED(g, "*2147483647\r\n:1\r\n:1\r\n", &used), -EMSGSIZE);
    assert_int_equal(used, 12);
    pos_resp_guard_describe(g, why, sizeof(why));
    assert_string_equal(why, "array of 2147483647 elements exceeds the limit of 65536 elements");
    pos_resp_guard_reset(g);
    assert_int_equal(FEED(g, "*8888888888\r\n", &used), -EMSGSIZE);
    assert_int_equal(g->what, POS_RESP_GUARD_LIMIT_ELEMENTS);
    free(g);
}

static void test_depth_limit(void **state)
{
    pos_resp_guard_limits_t lim = {.depth = 2};
    pos_resp_guard_t *g;
    size_t used;

    (void)state;
    g = guard_new(&lim);
    assert_int_equal(FEED(g, "*1\r\n*2\r\n:1\r\n*0\r\n", &used), -EMSGSIZE);
    assert_int_equal(g->what, POS_RESP_GUARD_LIMIT_DEPTH);
    assert_int_equal(g->seen, 3);
    free(g);
    g = guard_new(&lim);
    assert_int_equal(FEED(g, "*2\r\n*1\r\n:1\r\n*1\r\n$1\r\nx\r\n", &used), 0);
    assert_int_equal(g->replies, 1);
    free(g);
    /* A nil or empty array counts as a level too: hiredis refuses it 8 deep. */
    REFUSED(&lim, "*1\r\n*1\r\n*-1\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_DEPTH, 8);

    /* The default (6) and its ceiling (hiredis's 8). */
    g = guard_new(NULL);
    assert_int_equal(g->lim.depth, POS_RESP_GUARD_DEPTH);
    assert_int_equal(FEED(g, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", &used), 0);
    assert_int_equal(g->replies, 1);
    assert_int_equal(FEED(g, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n", &used), -EMSGSIZE);
    free(g);
    lim.depth = 100;
    g = guard_new(&lim);
    assert_int_equal(g->lim.depth, POS_RESP_GUARD_DEPTH_MAX);
    const char *nine = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
    assert_int_equal(feed_all(g, nine, strlen(nine), &used), -EMSGSIZE);
    assert_int_equal(used, 8 * 4); /* at the ninth '*', where hiredis stops too */
    assert_int_equal(hiredis_count(nine, strlen(nine)), -1); /* hiredis refuses it too */
    free(g);
}

static void test_line_limit(void **state)
{
    pos_resp_guard_limits_t lim = {.line_bytes = 4};
    pos_resp_guard_t *g = guard_new(&lim);
    size_t used;

    (void)state;
    assert_int_equal(FEED(g, "+abcd\r\n-ab\rd\r\n", &used), 0);
    assert_int_equal(g->replies, 2);
    free(g);
    REFUSED(&lim, "+abcde\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_LINE, 5);
    /* A CR that turns out to be text counts. */
    REFUSED(&lim, "-abcd\rx\r\n", -EMSGSIZE, POS_RESP_GUARD_LIMIT_LINE, 6);
    /* An endless line with no CRLF at all. */
    g = guard_new(NULL);
    char *big = malloc(20000);
    assert_non_null(big);
    big[0] = '-';
    memset(big + 1, 'x', 19999);
    assert_int_equal(feed_all(g, big, 20000, &used), -EMSGSIZE);
    assert_int_equal(used, 1 + POS_RESP_GUARD_LINE_BYTES);
    free(big);
    free(g);
}

static void test_reply_budget(void **state)
{
    /* Each limit alone allows it; together they would not. */
    pos_resp_guard_limits_t lim = {.bulk_bytes = 1000, .elements = 1000, .reply_bytes = 10000};
    pos_resp_guard_t *g = guard_new(&lim);
    char buf[64];
    size_t used;
    int rc = 0, n = 0;
    char why[160];

    (void)state;
    assert_int_equal(FEED(g, "*1000\r\n", &used), 0);
    while (rc == 0 && n < 1000) {
        rc = FEED(g, "$1000\r\n", &used);
        if (rc == 0) {
            memset(buf, 'v', sizeof(buf));
            for (int k = 0; k < 1000 / 50 && rc == 0; k++) {
                rc = feed_all(g, buf, 50, &used);
            }
            rc = rc == 0 ? FEED(g, "\r\n", &used) : rc;
            n++;
        }
    }
    assert_int_equal(rc, -EMSGSIZE);
    assert_int_equal(g->what, POS_RESP_GUARD_LIMIT_REPLY);
    /* 80 + 8000 for the array, then 1081 per element: the second one is too much. */
    assert_int_equal(n, 1);
    pos_resp_guard_describe(g, why, sizeof(why));
    assert_non_null(strstr(why, "exceeds the limit of 10000 bytes per reply"));
    free(g);

    /* The budget is per reply: many small replies are fine. */
    g = guard_new(&lim);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(FEED(g, "*2\r\n$900\r\n", &used), 0);
        memset(buf, 'v', sizeof(buf));
        for (int k = 0; k < 900 / 50; k++) {
            assert_int_equal(feed_all(g, buf, 50, &used), 0);
        }
        assert_int_equal(FEED(g, "\r\n:1\r\n", &used), 0);
    }
    assert_int_equal(g->replies, 1000);
    free(g);

    /* Arrays of the largest size in an array of the largest size, with the
     * default limits: 2 inner arrays at most, far from 65536 x 65536. */
    g = guard_new(NULL);
    rc = FEED(g, "*65536\r\n", &used);
    for (n = 0; rc == 0 && n < 65536; n++) {
        rc = FEED(g, "*65536\r\n", &used);
        for (int k = 0; rc == 0 && k < 65536; k++) {
            rc = FEED(g, ":1\r\n", &used);
        }
    }
    assert_int_equal(rc, -EMSGSIZE);
    assert_int_equal(g->what, POS_RESP_GUARD_LIMIT_REPLY);
    assert_int_equal(n, 2);
    free(g);
}

static void test_resp3_and_unknown_types(void **state)
{
    static const char resp3[] = "%~>_,#!=(|";

    (void)state;
    for (size_t i = 0; i < sizeof(resp3) - 1; i++) {
        char s[8];
        snprintf(s, sizeof(s), "%c1\r\n", resp3[i]);
        expect_refused(NULL, s, strlen(s), -EPROTO, POS_RESP_GUARD_BAD_TYPE, 0);
        /* ... and as an element, after the array header */
        snprintf(s, sizeof(s), "*1\r\n%c", resp3[i]);
        expect_refused(NULL, s, strlen(s), -EPROTO, POS_RESP_GUARD_BAD_TYPE, 4);
    }
    REFUSED(NULL, "\r\n", -EPROTO, POS_RESP_GUARD_BAD_TYPE, 0);
    REFUSED(NULL, "OK\r\n", -EPROTO, POS_RESP_GUARD_BAD_TYPE, 0);

    pos_resp_guard_t *g = guard_new(NULL);
    size_t used;
    char why[160];
    assert_int_equal(FEED(g, "%2\r\n", &used), -EPROTO);
    pos_resp_guard_describe(g, why, sizeof(why));
    assert_string_equal(why, "type byte '%' is not RESP2");
    pos_resp_guard_reset(g);
    assert_int_equal(FEED(g, "\x01", &used), -EPROTO);
    pos_resp_guard_describe(g, why, sizeof(why));
    assert_string_equal(why, "type byte 0x01 is not RESP2");
    free(g);
}

static void test_malformed_headers(void **state)
{
    (void)state;
    REFUSED(NULL, "$abc\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 1);
    REFUSED(NULL, "$\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 2);
    REFUSED(NULL, ":\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 2);
    REFUSED(NULL, ":-\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 3);
    REFUSED(NULL, "$-2\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 4);
    REFUSED(NULL, "*-5\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 4);
    REFUSED(NULL, ":01\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 2);
    REFUSED(NULL, ":-0\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 4);
    REFUSED(NULL, "$+5\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 1);
    REFUSED(NULL, ": 5\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 1);
    REFUSED(NULL, ":5-\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 2);
    REFUSED(NULL, ":1\rX", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 3);
    REFUSED(NULL, ":1\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 2);
    /* Past 64 bits, and past int64 (hiredis refuses both). */
    REFUSED(NULL, ":99999999999999999999\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 20);
    REFUSED(NULL, ":9223372036854775808\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 21);
    REFUSED(NULL, ":-9223372036854775809\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 22);
    /* An over-long header line: 21 bytes, whatever they are. */
    REFUSED(NULL, "*000000000000000000001\r\n", -EPROTO, POS_RESP_GUARD_BAD_NUMBER, 2);
    REFUSED(NULL, ":-12345678901234567890\r\n", -EPROTO, POS_RESP_GUARD_BAD_HEADER, 21);
    /* A bulk string not followed by CRLF. */
    REFUSED(NULL, "$3\r\nabcX\r\n", -EPROTO, POS_RESP_GUARD_BAD_CRLF, 7);
    REFUSED(NULL, "$3\r\nabc\rX", -EPROTO, POS_RESP_GUARD_BAD_CRLF, 8);
    REFUSED(NULL, "$0\r\n\n", -EPROTO, POS_RESP_GUARD_BAD_CRLF, 4);

    pos_resp_guard_t *g = guard_new(NULL);
    char why[160];
    size_t used;
    assert_int_equal(FEED(g, ":-12345678901234567890", &used), -EPROTO);
    pos_resp_guard_describe(g, why, sizeof(why));
    assert_string_equal(why, "header line after ':' longer than 20 bytes");
    free(g);
}

/* What the guard accepts hiredis reads as the same number of replies, and
 * what hiredis cannot read the guard does not accept: random streams built
 * from valid pieces, with a byte flipped now and then. */
static void test_agrees_with_hiredis(void **state)
{
    static const char *const pieces[] = {
        "+OK\r\n", "-ERR x\r\n", ":1\r\n", ":-7\r\n", "$3\r\nabc\r\n", "$-1\r\n",
        "*-1\r\n", "*0\r\n",     "*2\r\n", "*1\r\n",  "$0\r\n\r\n",    "+a\rb\r\n",
    };
    char buf[512];
    uint32_t seed = 12345;
    int accepted = 0, refused = 0;

    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        int npieces;

        seed = seed * 1103515245u + 12345u;
        npieces = 1 + (int)((seed >> 16) % 12);
        for (int p = 0; p < npieces; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *piece = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t n = strlen(piece);
            if (len + n > sizeof(buf)) {
                break;
            }
            memcpy(buf + len, piece, n);
            len += n;
        }
        seed = seed * 1103515245u + 12345u;
        if (len > 0 && (seed >> 16) % 4 == 0) {
            seed = seed * 1103515245u + 12345u;
            buf[(seed >> 8) % len] = (char)(seed >> 24);
        }
        pos_resp_guard_limits_t lim = {.depth = POS_RESP_GUARD_DEPTH_MAX};
        pos_resp_guard_t g;
        size_t used;
        pos_resp_guard_init(&g, &lim);
        int rc = pos_resp_guard_feed(&g, buf, len, &used);
        /* hiredis over the accepted prefix: no error, the same replies. */
        int n = hiredis_count(buf, used);
        assert_int_equal(n, (int)g.replies);
        if (rc == 0) {
            assert_int_equal(used, len);
            accepted++;
        } else {
            refused++;
        }
    }
    /* Both sides of the comparison were exercised. */
    assert_true(accepted > 5000 && refused > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_what_the_agent_sees),
        cmocka_unit_test(test_bulk_limit),
        cmocka_unit_test(test_element_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_reply_budget),
        cmocka_unit_test(test_resp3_and_unknown_types),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_agrees_with_hiredis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
