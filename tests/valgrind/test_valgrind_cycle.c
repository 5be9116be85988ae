/*
 * The agent's start, run and stop cycle under valgrind memcheck: online,
 * heartbeats, messages on every channel (good and bad), a payment through
 * the simulated devices, a Redis restart and reconnect, then SIGTERM; and
 * the same link over TLS. Passes only with no memcheck error and no leak.
 * Built and registered for non-sanitizer builds (valgrind and ASan do not
 * mix).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/fs.h"
#include "tests/support/harness.h"

static void assert_memcheck_clean(const char *vglog, int st);

static void test_cycle(void **state)
{
    (void)state;
    pos_test_redis_t redis = {0};
    pos_test_agent_t agent = {0};
    char ini[1024], vglog[400], logopt[420];
    static const char *const payloads[] = {
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Hello\"]}",
        "garbage",
        "{\"type\":1}",
        "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\"}",
    };

    assert_int_equal(pos_test_redis_start(&redis), 0);
    snprintf(agent.dir, sizeof(agent.dir), "/tmp/posagent-vg-XXXXXX");
    assert_non_null(mkdtemp(agent.dir));
    snprintf(vglog, sizeof(vglog), "%s/valgrind.log", agent.dir);
    snprintf(logopt, sizeof(logopt), "--log-file=%s", vglog);
    const char *wrapper[] = {"valgrind",
                             "--leak-check=full",
                             "--show-leak-kinds=all",
                             "--errors-for-leak-kinds=all",
                             "--error-exitcode=99",
                             "--track-fds=no",
                             logopt,
                             NULL};
    agent.wrapper = wrapper;
    snprintf(ini, sizeof(ini),
             "[terminal]\nid = T-VG\nstore_id = S-VG\n[redis]\nurl = redis://127.0.0.1:%u\n"
             "retry_delay_ms = 100\nmax_retry_delay_ms = 500\n"
             "[heartbeat]\ninterval_s = 1\nttl_s = 5\n[hal]\nsim_pinpad_delay_ms = 100\n"
             "[log]\nlevel = debug\n",
             (unsigned)redis.port);
    assert_int_equal(pos_test_agent_start(&agent, ini, NULL), 0);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 1, 30000));
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        pos_test_int(&redis, "PUBLISH payment:T-VG %s", payloads[i]);
        pos_test_int(&redis, "PUBLISH system:alerts %s", payloads[i]);
    }
    /* A whole payment: display, pinpad, printer, publishes, counters. */
    pos_test_int(&redis, "PUBLISH payment:T-VG %s",
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-vg\",\"amount\":1.50,"
                 "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Tea\",\"qty\":1,\"amount\":1.50}]}");
    assert_true(pos_test_agent_wait_log(&agent, "TRANSACTION_COMPLETED tx-vg", 1, 30000));
    pos_test_sleep_ms(1500);
    pos_test_redis_kill(&redis);
    assert_true(pos_test_agent_wait_log(&agent, "link: offline", 1, 10000));
    assert_int_equal(pos_test_redis_start(&redis), 0);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 2, 30000));
    pos_test_sleep_ms(1500);
    int st = pos_test_agent_stop(&agent, SIGTERM, 30000);
    assert_memcheck_clean(vglog, st);
    pos_test_agent_cleanup(&agent);
    pos_test_redis_stop(&redis);
}

/*
 * The same over TLS (rediss://, mutual TLS): full handshakes, a dropped
 * link that resumes its session, a Redis restart (full again), SIGTERM.
 * Every mbedTLS context, the session and the key material must be freed.
 */
static void test_cycle_tls(void **state)
{
    (void)state;
    pos_test_redis_t redis = {0};
    pos_test_agent_t agent = {0};
    char ini[2048], vglog[400], logopt[420], certs[64], script[512];
    char port_s[8], cert[128], key[128], ca[128];
    const char *src = getenv("POS_SOURCE_DIR");

    assert_non_null(src);
    snprintf(certs, sizeof(certs), "/tmp/posagent-vgtls-XXXXXX");
    assert_non_null(mkdtemp(certs));
    snprintf(script, sizeof(script), "%s/tests/support/tls_certs.sh", src);
    const char *gen[] = {"/bin/bash", script, certs, NULL};
    char *out = NULL;
    assert_int_equal(pos_test_run(gen, NULL, &out, 60000), 0);
    free(out);

    snprintf(cert, sizeof(cert), "%s/server.crt", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    snprintf(port_s, sizeof(port_s), "%u", (unsigned)pos_test_free_port());
    const char *extra[] = {"--tls-port",
                           port_s,
                           "--tls-cert-file",
                           cert,
                           "--tls-key-file",
                           key,
                           "--tls-ca-cert-file",
                           ca,
                           "--tls-auth-clients",
                           "yes",
                           NULL};
    memcpy(redis.extra, extra, sizeof(extra));
    assert_int_equal(pos_test_redis_start(&redis), 0);
    assert_true(redis.pid > 0);

    snprintf(agent.dir, sizeof(agent.dir), "/tmp/posagent-vg-XXXXXX");
    assert_non_null(mkdtemp(agent.dir));
    snprintf(vglog, sizeof(vglog), "%s/valgrind.log", agent.dir);
    snprintf(logopt, sizeof(logopt), "--log-file=%s", vglog);
    const char *wrapper[] = {"valgrind",
                             "--leak-check=full",
                             "--show-leak-kinds=all",
                             "--errors-for-leak-kinds=all",
                             "--error-exitcode=99",
                             "--track-fds=no",
                             logopt,
                             NULL};
    agent.wrapper = wrapper;
    /* Handshakes are slow under valgrind: a long connect timeout. */
    snprintf(ini, sizeof(ini),
             "[terminal]\nid = T-VG\nstore_id = S-VG\n[redis]\nurl = rediss://localhost:%s\n"
             "retry_delay_ms = 100\nmax_retry_delay_ms = 500\nconnect_timeout_ms = 20000\n"
             "[tls]\nca_file = %s\ncert_file = %s/client.crt\nkey_file = %s/client.key\n"
             "[heartbeat]\ninterval_s = 1\nttl_s = 5\n[log]\nlevel = debug\n",
             port_s, ca, certs, certs);
    assert_int_equal(pos_test_agent_start(&agent, ini, NULL), 0);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 1, 60000));
    char laddr[32];
    snprintf(laddr, sizeof(laddr), "127.0.0.1:%s", port_s);
    assert_int_equal(pos_test_int(&redis, "CLIENT KILL LADDR %s", laddr), 2);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 2, 60000));
    assert_true(pos_test_agent_wait_log(&agent, "TLS resumed handshake", 2, 1000));
    pos_test_redis_kill(&redis);
    assert_true(pos_test_agent_wait_log(&agent, "link: offline", 2, 10000));
    assert_int_equal(pos_test_redis_start(&redis), 0);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 3, 60000));
    pos_test_sleep_ms(1500);
    int st = pos_test_agent_stop(&agent, SIGTERM, 30000);
    assert_memcheck_clean(vglog, st);
    pos_test_agent_cleanup(&agent);
    pos_test_redis_stop(&redis);
    pos_test_rm_tree(certs);
}

static void assert_memcheck_clean(const char *vglog, int st)
{
    FILE *f = fopen(vglog, "r");
    assert_non_null(f);
    char line[512];
    bool clean_errors = false, no_leaks = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
        if (strstr(line, "ERROR SUMMARY: 0 errors") != NULL) {
            clean_errors = true;
        }
        if (strstr(line, "All heap blocks were freed -- no leaks are possible") != NULL) {
            no_leaks = true;
        }
    }
    fclose(f);
    assert_int_equal(st, 0);
    assert_true(clean_errors);
    assert_true(no_leaks);
}

/* With Redis Sentinel: resolution (a dead sentinel first), the ROLE check,
 * the +switch-master watch, the watch reconnecting after its sentinel
 * restarts, re-resolution after the master restarts, then SIGTERM. */
static void test_cycle_sentinel(void **state)
{
    (void)state;
    pos_test_redis_t redis = {0}, sentinel = {0};
    pos_test_agent_t agent = {0};
    char ini[1024], conf[256], vglog[400], logopt[420];

    assert_int_equal(pos_test_redis_start(&redis), 0);
    snprintf(conf, sizeof(conf), "sentinel monitor vgmaster 127.0.0.1 %u 1\n",
             (unsigned)redis.port);
    assert_int_equal(pos_test_sentinel_start(&sentinel, conf), 0);
    snprintf(agent.dir, sizeof(agent.dir), "/tmp/posagent-vg-XXXXXX");
    assert_non_null(mkdtemp(agent.dir));
    snprintf(vglog, sizeof(vglog), "%s/valgrind.log", agent.dir);
    snprintf(logopt, sizeof(logopt), "--log-file=%s", vglog);
    const char *wrapper[] = {"valgrind", "--leak-check=full", "--show-leak-kinds=all",
                             "--errors-for-leak-kinds=all", "--error-exitcode=99",
                             "--track-fds=no", logopt, NULL};
    agent.wrapper = wrapper;
    snprintf(ini, sizeof(ini),
             "[terminal]\nid = T-VG\nstore_id = S-VG\n[redis]\n"
             "sentinels = 127.0.0.1:1,127.0.0.1:%u\nmaster_name = vgmaster\n"
             "retry_delay_ms = 100\nmax_retry_delay_ms = 500\n"
             "[heartbeat]\ninterval_s = 1\nttl_s = 5\n[log]\nlevel = debug\n",
             (unsigned)sentinel.port);
    assert_int_equal(pos_test_agent_start(&agent, ini, NULL), 0);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 1, 30000));
    assert_true(pos_test_agent_wait_log(&agent, "sentinel: watching", 1, 30000));

    /* The watched sentinel goes away and comes back on the same port. */
    pos_test_redis_stop(&sentinel);
    sentinel.dir[0] = '\0';
    assert_true(pos_test_agent_wait_log(&agent, "watch connection lost", 2, 10000));
    assert_int_equal(pos_test_sentinel_start(&sentinel, conf), 0);
    assert_true(pos_test_agent_wait_log(&agent, "sentinel: watching", 2, 30000));

    /* The master restarts: offline, resolved again, online. */
    pos_test_redis_kill(&redis);
    assert_true(pos_test_agent_wait_log(&agent, "link: offline", 1, 10000));
    assert_int_equal(pos_test_redis_start(&redis), 0);
    assert_true(pos_test_agent_wait_log(&agent, "link: online", 2, 30000));
    pos_test_sleep_ms(1000);
    int st = pos_test_agent_stop(&agent, SIGTERM, 30000);
    assert_memcheck_clean(vglog, st);
    pos_test_agent_cleanup(&agent);
    pos_test_redis_stop(&sentinel);
    pos_test_redis_stop(&redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cycle),
                                       cmocka_unit_test(test_cycle_tls),
                                       cmocka_unit_test(test_cycle_sentinel)};
    return cmocka_run_group_tests_name("valgrind", tests, NULL, NULL);
}
