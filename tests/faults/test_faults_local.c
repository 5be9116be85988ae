/*
 * Local faults (docs/faults.md): the agent process itself is frozen.
 * SIGSTOP for longer than the heartbeat TTL, then SIGCONT: the status key
 * lapses while the agent is stopped (the cloud is right to see it gone),
 * and is written again at once after SIGCONT; the connections recover, a
 * message the till sent during the freeze is delivered, a payment works,
 * and the agent stops cleanly.
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

#include "tests/faults/faultlib.h"

static void test_sigstop_sigcont(void **state)
{
    pos_fix_t *f = *state;
    static fl_seen_t seen;
    const int stop_ms = fl_long() ? 120000 : 8000;

    pos_fix_set_retry(f, 100, 1000);
    pos_fix_set_heartbeat(f, 2, 4);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "300");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    assert_true(pos_fix_wait_status(&f->redis, "online", 3000, NULL) >= 0);
    const char *ch[] = {FL_CHANNEL, "payment:" FL_TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, ch), 0);
    redisContext *local = pos_fix_local(f);
    assert_non_null(local);

    assert_int_equal(kill(f->agent.pid, SIGSTOP), 0);
    /* The till writes while the agent is frozen: the request waits in the
     * socket (sent, reply read after SIGCONT). */
    assert_int_equal(redisAppendCommand(local, "PUBLISH %s %s", FL_CHANNEL,
                                        "{\"type\":\"FAULT_SEQ\",\"seq\":1}"),
                     REDIS_OK);
    int done = 0;
    while (!done) {
        assert_int_equal(redisBufferWrite(local, &done), REDIS_OK);
    }
    pos_test_sleep_ms(stop_ms);
    /* Longer than the TTL: the key lapsed, as the cloud should see. */
    assert_int_equal(pos_test_int(&f->redis, "EXISTS %s", FL_STATUS_KEY), 0);
    assert_int_equal(kill(f->agent.pid, SIGCONT), 0);
    long ms = pos_fix_wait_status(&f->redis, "online", 3000, NULL);
    fprintf(stderr, "sigstop %d ms: status key back %ld ms after SIGCONT\n", stop_ms, ms);
    if (ms < 0) {
        pos_fix_dump_log(f);
    }
    assert_true(ms >= 0 && ms <= 1000);

    void *reply = NULL;
    assert_int_equal(redisGetReply(local, &reply), REDIS_OK);
    assert_int_equal(((redisReply *)reply)->type, REDIS_REPLY_INTEGER);
    freeReplyObject(reply);
    redisFree(local);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(fl_collect(&f->sub, &seen, 1, 5000), 1);
    assert_true(fl_check_order(&seen, 1) >= 0);

    /* Still online (or back online) with both connections, and working. */
    pos_test_sleep_ms(2500);
    int offline = pos_test_agent_log_count(&f->agent, "link: offline");
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), offline + 1);
    long long cmd_id, sub_id;
    assert_int_equal(fl_agent_clients(&f->redis, &cmd_id, &sub_id), 2);
    fprintf(stderr, "sigstop: link dropped %d time(s) after SIGCONT\n", offline);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" FL_TID " %s",
                                  "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-ss-1\","
                                  "\"amount\":1.00,\"currency\":\"EUR\"}"),
                     2);
    bool approved = false;
    uint64_t end = pos_test_now_ms() + 5000;
    while (!approved && pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&f->sub, 1000, NULL, 0);
        approved = m != NULL && strstr(m, "PAYMENT_APPROVED") != NULL;
        free(m);
    }
    assert_true(approved);
    assert_true(pos_test_agent_alive(&f->agent));
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_sigstop_sigcont),
    };
    fl_filter();
    return cmocka_run_group_tests_name("faults_local", tests, NULL, NULL);
}
