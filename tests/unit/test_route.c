#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/link/route.h"

/* Classifies a NULL-terminated argument list. */
static pos_route_t route(const char *const *args)
{
    size_t lens[16];
    int argc = 0;

    while (args[argc] != NULL) {
        lens[argc] = strlen(args[argc]);
        argc++;
    }
    return pos_route_classify(argc, (const char **)args, lens);
}

#define ROUTE(...) route((const char *const[]){__VA_ARGS__, NULL})

static void test_keys(void **state)
{
    (void)state;
    /* What the agent sends: the key is argv[1]. */
    static const char *const keyed[] = {"GET",  "SET",   "set", "INCRBY", "EXPIRE",  "SADD",
                                        "SREM", "SSCAN", "DEL", "ZADD",   "PEXPIRE", "SPUBLISH"};
    for (size_t i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++) {
        pos_route_t r = ROUTE(keyed[i], "k", "v");
        assert_int_equal(r.kind, POS_ROUTE_KEY);
        assert_int_equal(r.key, 1);
    }
    assert_int_equal(ROUTE("MGET", "a", "b").kind, POS_ROUTE_MGET);
    assert_int_equal(ROUTE("mget", "a").kind, POS_ROUTE_MGET);
    assert_int_equal(ROUTE("SCAN", "0", "MATCH", "x*").kind, POS_ROUTE_SCAN);
    assert_int_equal(ROUTE("PUBLISH", "payment:T", "{}").kind, POS_ROUTE_PUBLISH);
}

static void test_keyless_and_scripts(void **state)
{
    (void)state;
    assert_int_equal(ROUTE("PING").kind, POS_ROUTE_ANY);
    assert_int_equal(ROUTE("CLUSTER", "SLOTS").kind, POS_ROUTE_ANY);
    assert_int_equal(ROUTE("client", "tracking", "on").kind, POS_ROUTE_ANY);
    assert_int_equal(ROUTE("INFO").kind, POS_ROUTE_ANY);
    /* EVAL's keys follow numkeys. */
    pos_route_t r = ROUTE("EVAL", "return 1", "2", "rate_limit:a:1000", "x", "arg");
    assert_int_equal(r.kind, POS_ROUTE_KEY);
    assert_int_equal(r.key, 3);
    assert_int_equal(ROUTE("EVALSHA", "abc", "0").kind, POS_ROUTE_ANY);
    assert_int_equal(ROUTE("FCALL", "f", "1", "k").key, 3);
    /* numkeys that is not a number, or more keys than arguments. */
    assert_int_equal(ROUTE("EVAL", "s", "x", "k").kind, POS_ROUTE_REFUSED);
    assert_int_equal(ROUTE("EVAL", "s", "3", "k").kind, POS_ROUTE_REFUSED);
    assert_int_equal(ROUTE("EVAL", "s").kind, POS_ROUTE_REFUSED);
    assert_int_equal(ROUTE("EVAL", "s", "9999999", "k").kind, POS_ROUTE_REFUSED);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const no[] = {"SELECT",     "MULTI", "exec",     "WATCH",   "SUBSCRIBE",
                                     "SSUBSCRIBE", "KEYS",  "FLUSHALL", "MONITOR", "AUTH"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_int_equal(ROUTE(no[i], "x").kind, POS_ROUTE_REFUSED);
    }
    assert_int_equal(pos_route_classify(0, NULL, NULL).kind, POS_ROUTE_REFUSED);
    /* A name is compared whole, not as a prefix. */
    assert_int_equal(ROUTE("GETX", "k").kind, POS_ROUTE_KEY);
    assert_int_equal(ROUTE("MGETS", "k").kind, POS_ROUTE_KEY);
    assert_int_equal(ROUTE("SELECTED", "k").kind, POS_ROUTE_KEY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keyless_and_scripts),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
