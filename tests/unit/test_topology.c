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

#include "agent/link/topology.h"

/* A reply built by hiredis's reader from RESP text (freeReplyObject it). */
static redisReply *parse(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, len), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static redisReply *parse_str(const char *resp)
{
    return parse(resp, strlen(resp));
}

static pos_topology_t *new_map(void)
{
    pos_topology_t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    return t;
}

/* Three primaries with replicas, Redis 7's fourth field (metadata) and a
 * nil / empty host meaning "the node you asked". */
static void test_slots(void **state)
{
    (void)state;
    static const char resp[] =
        "*3\r\n"
        "*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nid0\r\n*0\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\nid3\r\n*0\r\n"
        "*3\r\n:5461\r\n:10922\r\n*3\r\n$-1\r\n:7001\r\n$3\r\nid1\r\n"
        "*3\r\n:10923\r\n:16383\r\n*2\r\n$0\r\n\r\n:7002\r\n";
    pos_topology_t *t = new_map();
    redisReply *r = parse_str(resp);
    char why[160] = "";

    assert_int_equal(pos_topology_from_slots(t, r, "seed.example", why, sizeof(why)), 0);
    assert_int_equal(t->nnodes, 3);
    assert_int_equal(pos_topology_covered(t), POS_SLOT_COUNT);
    assert_string_equal(pos_topology_owner(t, 0)->host, "127.0.0.1");
    assert_int_equal(pos_topology_owner(t, 5460)->port, 7000);
    assert_string_equal(pos_topology_owner(t, 5461)->host, "seed.example");
    assert_int_equal(pos_topology_owner(t, 10922)->port, 7001);
    assert_string_equal(pos_topology_owner(t, 16383)->host, "seed.example");
    assert_int_equal(pos_topology_owner(t, 16383)->port, 7002);
    assert_int_equal(pos_topology_find(t, "127.0.0.1", 7003), -1); /* a replica */
    freeReplyObject(r);

    /* -MOVED: one slot changes hands, a new node is added. */
    assert_int_equal(pos_topology_set(t, 100, "10.0.0.9", 7100), 3);
    assert_int_equal(pos_topology_owner(t, 100)->port, 7100);
    assert_int_equal(pos_topology_owner(t, 99)->port, 7000);
    assert_int_equal(pos_topology_set(t, 101, "127.0.0.1", 7000), 0);
    assert_int_equal(t->nnodes, 4);
    free(t);
}

/* "?" (no endpoint yet) leaves the slots without owner; gaps stay gaps. */
static void test_partial(void **state)
{
    (void)state;
    static const char resp[] = "*2\r\n"
                               "*3\r\n:0\r\n:99\r\n*2\r\n$1\r\n?\r\n:7000\r\n"
                               "*3\r\n:200\r\n:200\r\n*2\r\n$1\r\nh\r\n:7001\r\n";
    pos_topology_t *t = new_map();
    redisReply *r = parse_str(resp);
    char why[160];

    assert_int_equal(pos_topology_from_slots(t, r, "x", why, sizeof(why)), 0);
    assert_int_equal(pos_topology_covered(t), 1);
    assert_null(pos_topology_owner(t, 0));
    assert_null(pos_topology_owner(t, 199));
    assert_non_null(pos_topology_owner(t, 200));
    freeReplyObject(r);
    free(t);
}

/* Malformed replies: refused with one line, the map left empty. */
static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "+OK\r\n",
        "-ERR This instance has cluster support disabled\r\n",
        "*1\r\n:5\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:10\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:-1\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\nh\r\n:0\r\n",
        "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\nh\r\n:65536\r\n",
        "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n:5\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:9\r\n*1\r\n$1\r\nh\r\n",
        "*1\r\n*3\r\n:0\r\n:9\r\n$1\r\nh\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$3\r\na b\r\n:1\r\n", /* a blank in the host */
        "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$3\r\na\nb\r\n:1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pos_topology_t *t = new_map();
        redisReply *r = parse_str(bad[i]);
        char why[160] = "";
        assert_int_equal(pos_topology_from_slots(t, r, "x", why, sizeof(why)), -EPROTO);
        assert_non_null(strstr(why, "CLUSTER SLOTS: "));
        assert_null(strchr(why, '\n'));
        assert_int_equal(t->nnodes, 0);
        assert_int_equal(pos_topology_covered(t), 0);
        freeReplyObject(r);
        free(t);
    }
    /* A host that does not fit. */
    char big[600];
    char host[400];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(big, sizeof(big), "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$%zu\r\n%s\r\n:1\r\n", strlen(host),
             host);
    pos_topology_t *t = new_map();
    redisReply *r = parse_str(big);
    char why[160];
    assert_int_equal(pos_topology_from_slots(t, r, "x", why, sizeof(why)), -EPROTO);
    freeReplyObject(r);
    free(t);
}

/* A flood: 16384 ranges of one slot each, over the most primaries a map
 * holds; one more primary is refused. */
static void test_flood(void **state)
{
    (void)state;
    size_t cap = 16384 * 64 + 64, len = 0;
    char *resp = malloc(cap);
    pos_topology_t *t = new_map();
    char why[160];

    assert_non_null(resp);
    len += (size_t)snprintf(resp + len, cap - len, "*16384\r\n");
    for (int s = 0; s < 16384; s++) {
        len += (size_t)snprintf(resp + len, cap - len,
                                "*3\r\n:%d\r\n:%d\r\n*2\r\n$8\r\n10.0.0.1\r\n:%d\r\n", s, s,
                                7000 + s % POS_TOPOLOGY_NODES_MAX);
    }
    redisReply *r = parse(resp, len);
    assert_int_equal(pos_topology_from_slots(t, r, "x", why, sizeof(why)), 0);
    assert_int_equal(t->nnodes, POS_TOPOLOGY_NODES_MAX);
    assert_int_equal(pos_topology_covered(t), POS_SLOT_COUNT);
    freeReplyObject(r);

    len = (size_t)snprintf(resp, cap, "*%d\r\n", POS_TOPOLOGY_NODES_MAX + 1);
    for (int s = 0; s <= POS_TOPOLOGY_NODES_MAX; s++) {
        len +=
            (size_t)snprintf(resp + len, cap - len,
                             "*3\r\n:%d\r\n:%d\r\n*2\r\n$8\r\n10.0.0.1\r\n:%d\r\n", s, s, 7000 + s);
    }
    r = parse(resp, len);
    assert_int_equal(pos_topology_from_slots(t, r, "x", why, sizeof(why)), -ENOSPC);
    assert_non_null(strstr(why, "too many primaries"));
    assert_int_equal(t->nnodes, 0);
    freeReplyObject(r);
    /* The same bound for -MOVED. */
    for (int i = 0; i < POS_TOPOLOGY_NODES_MAX; i++) {
        assert_int_equal(pos_topology_set(t, (uint16_t)i, "10.0.0.2", (uint16_t)(8000 + i)), i);
    }
    assert_int_equal(pos_topology_set(t, 5, "10.0.0.3", 1), -ENOSPC);
    assert_int_equal(pos_topology_owner(t, 5)->port, 8005);
    free(resp);
    free(t);
}

static int redirect(const char *msg, pos_topology_redirect_t *rd)
{
    return pos_topology_parse_redirect(msg, strlen(msg), rd);
}

static void test_redirects(void **state)
{
    (void)state;
    pos_topology_redirect_t rd;

    assert_int_equal(redirect("MOVED 3999 127.0.0.1:6381", &rd), 0);
    assert_false(rd.ask);
    assert_int_equal(rd.slot, 3999);
    assert_string_equal(rd.host, "127.0.0.1");
    assert_int_equal(rd.port, 6381);
    assert_int_equal(redirect("ASK 16383 node-b.example:7000", &rd), 0);
    assert_true(rd.ask);
    assert_int_equal(rd.slot, 16383);
    assert_string_equal(rd.host, "node-b.example");
    /* IPv6 without brackets, and no host at all (the node that replied). */
    assert_int_equal(redirect("MOVED 0 ::1:7002", &rd), 0);
    assert_string_equal(rd.host, "::1");
    assert_int_equal(rd.port, 7002);
    assert_int_equal(redirect("MOVED 12 :7003", &rd), 0);
    assert_string_equal(rd.host, "");
    assert_int_equal(rd.port, 7003);

    /* Other errors are not redirections. */
    assert_int_equal(redirect("ERR unknown command", &rd), -ENOENT);
    assert_int_equal(redirect("TRYAGAIN Multiple keys request during rehashing of slot", &rd),
                     -ENOENT);
    assert_int_equal(redirect("CLUSTERDOWN The cluster is down", &rd), -ENOENT);
    assert_int_equal(redirect("MOVEDX 1 h:1", &rd), -ENOENT);
    /* Malformed ones. */
    static const char *const bad[] = {
        "MOVED ",          "MOVED 1",         "MOVED 1 ",
        "MOVED x h:1",     "MOVED 16384 h:1", "MOVED 99999999999999999 h:1",
        "MOVED 1 h",       "MOVED 1 h:",      "MOVED 1 h:0",
        "MOVED 1 h:65536", "MOVED 1 h:12a",   "ASK 1 h\x01:1",
        "MOVED -1 h:1",    "MOVED 1  h:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(redirect(bad[i], &rd), -EPROTO);
    }
    /* Not NUL-terminated: only len bytes are read. */
    assert_int_equal(pos_topology_parse_redirect("MOVED 7 h:12345", 13, &rd), 0);
    assert_int_equal(rd.port, 123);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots),     cmocka_unit_test(test_partial),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_flood),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
