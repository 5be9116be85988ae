/*
 * Pure parts of the Sentinel client: the [redis] sentinels list, the
 * +switch-master message, the reply to SENTINEL get-master-addr-by-name
 * and the ROLE check.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/link/sentinel.h"
#include "conf/sentinel_list.h"

static void test_list_ok(void **state)
{
    (void)state;
    pos_sentinel_addr_t a[POS_SENTINEL_MAX];
    size_t n = 99;
    char err[160] = "";

    assert_int_equal(pos_sentinel_list_parse("10.0.0.5:26379, sentinel-b ,[fd00::7]:1234,"
                                             "[::1]\t, s.example.com:1",
                                             a, POS_SENTINEL_MAX, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 5);
    assert_string_equal(a[0].host, "10.0.0.5");
    assert_int_equal(a[0].port, 26379);
    assert_string_equal(a[1].host, "sentinel-b");
    assert_int_equal(a[1].port, 26379); /* the Sentinel default, not 6379 */
    assert_string_equal(a[2].host, "fd00::7");
    assert_int_equal(a[2].port, 1234);
    assert_string_equal(a[3].host, "::1");
    assert_int_equal(a[3].port, 26379);
    assert_string_equal(a[4].host, "s.example.com");
    assert_int_equal(a[4].port, 1);

    assert_int_equal(pos_sentinel_list_parse("h", a, POS_SENTINEL_MAX, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
}

static void test_list_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"", "no sentinel"},
        {"   ", "no sentinel"},
        {"a:1,", "entry 2 is empty"},
        {",a:1", "entry 1 is empty"},
        {"a:1,,b:2", "entry 2 is empty"},
        {"a:0", "entry 1"},
        {"a:65536", "entry 1"},
        {"a:", "entry 1"},
        {"a:x", "entry 1"},
        {"a b:1", "only host[:port]"},
        {"user:pw@a:1", "only host[:port]"},
        {"a:1/0", "only host[:port]"},
        {"redis://a:1", "only host[:port]"},
        {"[fe80::1", "entry 1"},
        {"-a:1", "entry 1"},
        {"a:1,b:1,a:1", "entry 3 repeats entry 1"},
        {"a,a:26379", "entry 2 repeats entry 1"},
        {"a\x01", "entry 1"},
    };
    pos_sentinel_addr_t a[POS_SENTINEL_MAX];
    size_t n;
    char err[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 7;
        err[0] = '\0';
        assert_int_equal(
            pos_sentinel_list_parse(bad[i].in, a, POS_SENTINEL_MAX, &n, err, sizeof(err)), -EINVAL);
        assert_int_equal(n, 0);
        if (strstr(err, bad[i].why) == NULL) {
            fail_msg("'%s': error '%s' lacks '%s'", bad[i].in, err, bad[i].why);
        }
    }
    /* Nine entries with room for eight. */
    assert_int_equal(
        pos_sentinel_list_parse("a,b,c,d,e,f,g,h,i", a, POS_SENTINEL_MAX, &n, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "more than 8"));
    assert_int_equal(
        pos_sentinel_list_parse("a,b,c,d,e,f,g,h", a, POS_SENTINEL_MAX, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 8);
    /* No error buffer. */
    assert_int_equal(pos_sentinel_list_parse("", a, POS_SENTINEL_MAX, &n, NULL, 0), -EINVAL);
}

static int parse_switch(const char *msg, const char *name, char *host, size_t hostlen,
                        uint16_t *port)
{
    return pos_sentinel_parse_switch(msg, strlen(msg), name, host, hostlen, port);
}

static void test_switch_ok(void **state)
{
    (void)state;
    char host[POS_URL_HOST_MAX];
    uint16_t port = 0;

    assert_int_equal(
        parse_switch("mymaster 10.0.0.1 6379 10.0.0.2 6380", "mymaster", host, sizeof(host), &port),
        0);
    assert_string_equal(host, "10.0.0.2");
    assert_int_equal(port, 6380);
    assert_int_equal(parse_switch("m fd00::1 6379 fd00::2 65535", "m", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "fd00::2");
    assert_int_equal(port, 65535);
    /* Another master of the same sentinels. */
    port = 7;
    assert_int_equal(
        parse_switch("other 10.0.0.1 6379 10.0.0.2 6380", "mymaster", host, sizeof(host), &port),
        -ENOENT);
    assert_int_equal(port, 7);
    /* A prefix of our name is another name. */
    assert_int_equal(
        parse_switch("mymaste 10.0.0.1 6379 10.0.0.2 6380", "mymaster", host, sizeof(host), &port),
        -ENOENT);
    assert_int_equal(parse_switch("mymaster2 10.0.0.1 6379 10.0.0.2 6380", "mymaster", host,
                                  sizeof(host), &port),
                     -ENOENT);
}

static void test_switch_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "mymaster",
        "mymaster 10.0.0.1 6379 10.0.0.2",
        "mymaster 10.0.0.1 6379 10.0.0.2 6380 extra",
        "mymaster 10.0.0.1 6379 10.0.0.2 6380 ",
        " mymaster 10.0.0.1 6379 10.0.0.2 6380",
        "mymaster  10.0.0.1 6379 10.0.0.2 6380",
        "mymaster 10.0.0.1 6379 10.0.0.2 0",
        "mymaster 10.0.0.1 6379 10.0.0.2 65536",
        "mymaster 10.0.0.1 6379 10.0.0.2 123456",
        "mymaster 10.0.0.1 6379 10.0.0.2 63x0",
        "mymaster 10.0.0.1 6379 10.0.0.2 -1",
        "mymaster 10.0.0.1 x 10.0.0.2 6380",
        "mymaster 10.0.0.1 6379 10.0.0/2 6380",
        "mymaster 10.0.0.1 6379 10.0.0.2\t6380",
        "mymaster 10.0.0.1 6379 10.0.0.2\n 6380",
        "mymaster 10.0.0.1 6379 ho$t 6380",
        "mymaster 10.0.0\x01 6379 10.0.0.2 6380",
    };
    char host[POS_URL_HOST_MAX];
    uint16_t port;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_switch(bad[i], "mymaster", host, sizeof(host), &port) != -EINVAL) {
            fail_msg("accepted: '%s'", bad[i]);
        }
    }
    /* A host longer than the caller's buffer. */
    char small[8];
    assert_int_equal(parse_switch("m a 1 abcdefgh 2", "m", small, sizeof(small), &port), -EINVAL);
    assert_int_equal(parse_switch("m a 1 abcdefg 2", "m", small, sizeof(small), &port), 0);
    assert_string_equal(small, "abcdefg");
    /* Not NUL-terminated: the length rules. */
    assert_int_equal(pos_sentinel_parse_switch("m a 1 b 23456", 11, "m", host, sizeof(host), &port),
                     0);
    assert_int_equal(port, 234);
}

static redisReply str_reply(const char *s)
{
    redisReply r;
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_STRING;
    r.str = (char *)s;
    r.len = strlen(s);
    return r;
}

static void test_master_reply(void **state)
{
    (void)state;
    redisReply ip = str_reply("10.1.2.3"), port = str_reply("6379"), bad = str_reply("http");
    redisReply *two[] = {&ip, &port}, *badport[] = {&ip, &bad}, *one[] = {&ip};
    redisReply arr, nil, err;
    char host[POS_URL_HOST_MAX];
    uint16_t p = 0;

    memset(&arr, 0, sizeof(arr));
    arr.type = REDIS_REPLY_ARRAY;
    arr.elements = 2;
    arr.element = two;
    assert_int_equal(pos_sentinel_parse_master_reply(&arr, host, sizeof(host), &p), 0);
    assert_string_equal(host, "10.1.2.3");
    assert_int_equal(p, 6379);

    arr.element = badport;
    assert_int_equal(pos_sentinel_parse_master_reply(&arr, host, sizeof(host), &p), -EPROTO);
    arr.element = one;
    arr.elements = 1;
    assert_int_equal(pos_sentinel_parse_master_reply(&arr, host, sizeof(host), &p), -EPROTO);

    memset(&nil, 0, sizeof(nil));
    nil.type = REDIS_REPLY_NIL;
    assert_int_equal(pos_sentinel_parse_master_reply(&nil, host, sizeof(host), &p), -ENOENT);
    err = str_reply("ERR unknown command");
    err.type = REDIS_REPLY_ERROR;
    assert_int_equal(pos_sentinel_parse_master_reply(&err, host, sizeof(host), &p), -EPROTO);
}

static void test_role(void **state)
{
    (void)state;
    redisReply master = str_reply("master"), slave = str_reply("slave"),
               sentinel = str_reply("sentinel");
    redisReply *e[1];
    redisReply arr;

    memset(&arr, 0, sizeof(arr));
    arr.type = REDIS_REPLY_ARRAY;
    arr.elements = 1;
    arr.element = e;
    e[0] = &master;
    assert_true(pos_sentinel_role_is_master(&arr));
    e[0] = &slave;
    assert_false(pos_sentinel_role_is_master(&arr));
    e[0] = &sentinel;
    assert_false(pos_sentinel_role_is_master(&arr));
    arr.elements = 0;
    assert_false(pos_sentinel_role_is_master(&arr));
    assert_false(pos_sentinel_role_is_master(&master)); /* not an array */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_ok),      cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_switch_ok),    cmocka_unit_test(test_switch_malformed),
        cmocka_unit_test(test_master_reply), cmocka_unit_test(test_role),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
