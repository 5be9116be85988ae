/*
 * One agent per till (issue 13 item 10, CONTRACT.md "One agent per
 * terminal"): a second agent on the same store directory, on the same
 * local socket, or with the same terminal id on another till refuses to
 * start (exit 75) and never subscribes; the same till restarted after a
 * kill -9 takes its lease back at once.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"

#define TID        POS_FIX_TID
#define SID        POS_FIX_SID
#define LEASE_KEY  "posagent:lease:" TID
#define EX_ANOTHER 75

typedef struct fixture {
    pos_fix_t fx;
    pos_test_agent_t second;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_start(&f->fx) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->second.pid > 0) {
        pos_test_agent_stop(&f->second, SIGKILL, 2000);
    }
    pos_test_agent_cleanup(&f->second);
    pos_fix_stop(&f->fx);
    free(f);
    return 0;
}

static long long numsub(fixture_t *f)
{
    redisReply *r = pos_test_redis_cmd(&f->fx.redis, "PUBSUB NUMSUB payment:" TID);
    long long n = -1;
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        n = r->element[1]->integer;
    }
    freeReplyObject(r);
    return n;
}

/* The first agent, online with a long lease (the status key's TTL). */
static void start_first(fixture_t *f)
{
    pos_fix_set_heartbeat(&f->fx, 2, 60);
    pos_ini_set(&f->fx.ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_fix_agent_start(&f->fx, NULL);
    pos_fix_wait_online(&f->fx, 1, 10000);
    pos_fix_wait_log(&f->fx, "hal: pinpad: ready", 1, 5000);
    assert_int_equal(numsub(f), 1);
}

/*
 * Starts the second agent from the first one's configuration plus "extra"
 * (an INI fragment: what the two share), and waits for it to exit,
 * checking all along that the payment channel never has two subscribers.
 * Returns its exit status.
 */
static int second_exits(fixture_t *f, const char *extra)
{
    static char ini[POS_INI_TEXT_MAX + 512];
    snprintf(ini, sizeof(ini), "%s\n%s", pos_ini_text(&f->fx.ini), extra);
    assert_int_equal(pos_test_agent_start(&f->second, ini, NULL), 0);
    uint64_t end = pos_test_now_ms() + 15000;
    while (pos_test_agent_alive(&f->second)) {
        assert_true(numsub(f) <= 1);
        assert_true(pos_test_now_ms() < end);
        pos_test_sleep_ms(5);
    }
    assert_int_equal(numsub(f), 1);
    return f->second.exit_status;
}

static void second_log_has(fixture_t *f, const char *needle)
{
    if (pos_test_agent_log_count(&f->second, needle) == 0) {
        char *log = pos_test_agent_log_read(&f->second);
        fail_msg("the second agent's log lacks \"%s\":\n%s", needle, log);
    }
}

/* Two agents on one store directory (each with a socket of its own). */
static void test_two_agents_one_store(void **state)
{
    fixture_t *f = *state;
    char extra[400];
    start_first(f);

    snprintf(extra, sizeof(extra), "[store]\npath = %s/store\n", f->fx.agent.dir);
    assert_int_equal(second_exits(f, extra), EX_ANOTHER);
    second_log_has(f, "another agent runs on the store");
    assert_int_equal(pos_test_agent_log_count(&f->second, "link: online"), 0);
    /* The first one goes on. */
    assert_true(pos_test_agent_alive(&f->fx.agent));
}

/* Two agents on one local socket (each with a store of its own). */
static void test_two_agents_one_socket(void **state)
{
    fixture_t *f = *state;
    char extra[400];
    start_first(f);

    snprintf(extra, sizeof(extra), "[local]\nsocket = %s/agent.sock\n", f->fx.agent.dir);
    assert_int_equal(second_exits(f, extra), EX_ANOTHER);
    second_log_has(f, "another agent serves the local socket");
    assert_int_equal(pos_test_agent_log_count(&f->second, "link: online"), 0);
    /* The first one still answers there. */
    redisContext *c = pos_fix_local(&f->fx);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "PING");
    assert_non_null(r);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
}

/*
 * Two tills (stores and sockets of their own) configured with one
 * terminal id against one Redis: the second refuses before subscribing,
 * and a payment is charged once, by the first.
 */
static void test_two_tills_one_id(void **state)
{
    fixture_t *f = *state;
    start_first(f);
    char *lease = pos_test_get(&f->fx.redis, LEASE_KEY);
    assert_non_null(lease);
    free(lease);

    assert_int_equal(second_exits(f, ""), EX_ANOTHER);
    second_log_has(f, "terminal " TID " is held by another agent");
    assert_int_equal(pos_test_agent_log_count(&f->second, "link: online"), 0);
    /* Its token never reaches the other's log, only where it runs. */
    second_log_has(f, " pid ");

    const char *channels[] = {"payment:" TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->fx.sub, &f->fx.redis, channels), 0);
    assert_int_equal(pos_test_int(&f->fx.redis,
                                  "PUBLISH payment:" TID " {\"type\":\"PAYMENT_REQUESTED\","
                                  "\"transactionId\":\"tx-one\",\"amount\":1.00,\"currency\":"
                                  "\"EUR\"}"),
                     2); /* the first agent and this test's subscriber */
    cJSON *j = pos_test_sub_expect(&f->fx.sub, "PAYMENT_APPROVED", "tx-one", 10000, NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    assert_int_equal(pos_fix_charges(&f->fx), 1);
    char path[400];
    snprintf(path, sizeof(path), "%s/sim/pinpad.charges", f->second.dir);
    FILE *fp = fopen(path, "r");
    assert_null(fp); /* the second till's pinpad was never asked */
}

/*
 * kill -9, then the same till again: it takes its lease back at once (its
 * instance token is kept in its store directory), where another till must
 * wait for the lease to lapse. A clean stop gives the lease up.
 */
static void test_kill9_restart_is_immediate(void **state)
{
    fixture_t *f = *state;
    start_first(f);
    assert_true(pos_test_agent_log_count(&f->fx.agent, "link: online") == 1);

    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGKILL, 5000), 128 + SIGKILL);
    char *lease = pos_test_get(&f->fx.redis, LEASE_KEY);
    assert_non_null(lease); /* still there: it lapses in 60 s */
    free(lease);
    uint64_t t0 = pos_test_now_ms();
    pos_fix_agent_start(&f->fx, NULL);
    pos_fix_wait_online(&f->fx, 2, 10000);
    uint64_t took = pos_test_now_ms() - t0;
    print_message("kill -9 then restart: online again after %llu ms (lease TTL 60 s)\n",
                  (unsigned long long)took);
    assert_true(took < 8000); /* far from the 60 s the lease would need to lapse */
    assert_int_equal(numsub(f), 1);

    /* Meanwhile another till is still refused. */
    assert_int_equal(second_exits(f, ""), EX_ANOTHER);

    /* A clean stop gives the lease up: a replacement till starts at once. */
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
    assert_null(pos_test_get(&f->fx.redis, LEASE_KEY));
    pos_test_agent_cleanup(&f->second);
    memset(&f->second, 0, sizeof(f->second));
    assert_int_equal(pos_test_agent_start(&f->second, pos_ini_text(&f->fx.ini), NULL), 0);
    assert_true(pos_test_agent_wait_log(&f->second, "link: online", 1, 10000));
    assert_int_equal(numsub(f), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_agents_one_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_agents_one_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_tills_one_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_restart_is_immediate, setup, teardown),
    };
    return cmocka_run_group_tests_name("single", tests, NULL, NULL);
}
