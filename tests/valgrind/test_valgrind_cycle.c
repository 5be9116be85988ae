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

#include "tests/support/fixture.h"
#include "tests/support/fs.h"

/* The agent under memcheck, and what some tests add around it. */
typedef struct vg {
    pos_fix_t fx;
    char vglog[400];  /* memcheck's report, in the agent's directory */
    char logopt[420]; /* --log-file=<vglog> */
    const char *wrapper[8];
    pos_test_redis_t sentinel; /* test_cycle_sentinel */
    char certs[64];            /* test_cycle_tls: generated certificates */
} vg_t;

static void assert_memcheck_clean(const char *vglog, int st);

/* The agent (T-VG of S-VG, fast retries, a heartbeat every second) runs
 * under valgrind, its report kept with its files; nothing runs yet. */
static int setup(void **state)
{
    vg_t *v = calloc(1, sizeof(*v));
    pos_fix_t *f;

    if (v == NULL) {
        return -1;
    }
    f = &v->fx;
    pos_fix_init(f);
    snprintf(f->agent.dir, sizeof(f->agent.dir), "/tmp/posagent-vg-XXXXXX");
    if (mkdtemp(f->agent.dir) == NULL) {
        free(v);
        return -1;
    }
    snprintf(v->vglog, sizeof(v->vglog), "%s/valgrind.log", f->agent.dir);
    snprintf(v->logopt, sizeof(v->logopt), "--log-file=%s", v->vglog);
    const char *wrapper[] = {"valgrind",
                             "--leak-check=full",
                             "--show-leak-kinds=all",
                             "--errors-for-leak-kinds=all",
                             "--error-exitcode=99",
                             "--track-fds=no",
                             v->logopt,
                             NULL};
    memcpy(v->wrapper, wrapper, sizeof(wrapper));
    f->agent.wrapper = v->wrapper;
    pos_ini_set(&f->ini, "terminal", "id", "T-VG");
    pos_ini_set(&f->ini, "terminal", "store_id", "S-VG");
    pos_fix_set_retry(f, 100, 500);
    pos_fix_set_heartbeat(f, 1, 5);
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    vg_t *v = *state;

    pos_fix_stop(&v->fx);
    pos_test_redis_stop(&v->sentinel);
    if (v->certs[0] != '\0') {
        pos_test_rm_tree(v->certs);
    }
    free(v);
    return 0;
}

static void test_cycle(void **state)
{
    vg_t *v = *state;
    pos_fix_t *f = &v->fx;
    static const char *const payloads[] = {
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Hello\"]}",
        "garbage",
        "{\"type\":1}",
        "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\"}",
    };

    assert_int_equal(pos_fix_redis_start(f), 0);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_fix_agent_start(f, NULL);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 30000));
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        pos_test_int(&f->redis, "PUBLISH payment:T-VG %s", payloads[i]);
        pos_test_int(&f->redis, "PUBLISH system:alerts %s", payloads[i]);
    }
    /* A whole payment: display, pinpad, printer, publishes, counters. */
    pos_test_int(&f->redis, "PUBLISH payment:T-VG %s",
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-vg\",\"amount\":1.50,"
                 "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Tea\",\"qty\":1,\"amount\":1.50}]}");
    assert_true(pos_test_agent_wait_log(&f->agent, "TRANSACTION_COMPLETED tx-vg", 1, 30000));
    pos_test_sleep_ms(1500);
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 10000));
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 30000));
    pos_test_sleep_ms(1500);
    int st = pos_test_agent_stop(&f->agent, SIGTERM, 30000);
    assert_memcheck_clean(v->vglog, st);
}

/*
 * The same over TLS (rediss://, mutual TLS): full handshakes, a dropped
 * link that resumes its session, a Redis restart (full again), SIGTERM.
 * Every mbedTLS context, the session and the key material must be freed.
 */
static void test_cycle_tls(void **state)
{
    vg_t *v = *state;
    pos_fix_t *f = &v->fx;
    char script[512], port_s[8], cert[128], key[128], ca[128];
    const char *src = getenv("POS_SOURCE_DIR");

    assert_non_null(src);
    snprintf(v->certs, sizeof(v->certs), "/tmp/posagent-vgtls-XXXXXX");
    assert_non_null(mkdtemp(v->certs));
    snprintf(script, sizeof(script), "%s/tests/support/tls_certs.sh", src);
    const char *gen[] = {"/bin/bash", script, v->certs, NULL};
    char *out = NULL;
    assert_int_equal(pos_test_run(gen, NULL, &out, 60000), 0);
    free(out);

    snprintf(cert, sizeof(cert), "%s/server.crt", v->certs);
    snprintf(key, sizeof(key), "%s/server.key", v->certs);
    snprintf(ca, sizeof(ca), "%s/ca.crt", v->certs);
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
    memcpy(f->redis.extra, extra, sizeof(extra));
    assert_int_equal(pos_fix_redis_start(f), 0);
    assert_true(f->redis.pid > 0);

    /* Handshakes are slow under valgrind: a long connect timeout. */
    pos_ini_set(&f->ini, "redis", "url", "rediss://localhost:%s", port_s);
    pos_ini_set(&f->ini, "redis", "connect_timeout_ms", "20000");
    pos_ini_set(&f->ini, "tls", "ca_file", "%s", ca);
    pos_ini_set(&f->ini, "tls", "cert_file", "%s/client.crt", v->certs);
    pos_ini_set(&f->ini, "tls", "key_file", "%s/client.key", v->certs);
    pos_fix_agent_start(f, NULL);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 60000));
    char laddr[32];
    snprintf(laddr, sizeof(laddr), "127.0.0.1:%s", port_s);
    assert_int_equal(pos_test_int(&f->redis, "CLIENT KILL LADDR %s", laddr), 2);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 60000));
    assert_true(pos_test_agent_wait_log(&f->agent, "TLS resumed handshake", 2, 1000));
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 2, 10000));
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 3, 60000));
    pos_test_sleep_ms(1500);
    int st = pos_test_agent_stop(&f->agent, SIGTERM, 30000);
    assert_memcheck_clean(v->vglog, st);
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
    vg_t *v = *state;
    pos_fix_t *f = &v->fx;
    char conf[256];

    assert_int_equal(pos_fix_redis_start(f), 0);
    snprintf(conf, sizeof(conf), "sentinel monitor vgmaster 127.0.0.1 %u 1\n",
             (unsigned)f->redis.port);
    assert_int_equal(pos_test_sentinel_start(&v->sentinel, conf), 0);
    pos_ini_unset(&f->ini, "redis", "url"); /* the sentinels say where the master is */
    pos_ini_set(&f->ini, "redis", "sentinels", "127.0.0.1:1,127.0.0.1:%u",
                (unsigned)v->sentinel.port);
    pos_ini_set(&f->ini, "redis", "master_name", "vgmaster");
    pos_fix_agent_start(f, NULL);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 30000));
    assert_true(pos_test_agent_wait_log(&f->agent, "sentinel: watching", 1, 30000));

    /* The watched sentinel goes away and comes back on the same port. */
    pos_test_redis_stop(&v->sentinel);
    v->sentinel.dir[0] = '\0';
    assert_true(pos_test_agent_wait_log(&f->agent, "watch connection lost", 2, 10000));
    assert_int_equal(pos_test_sentinel_start(&v->sentinel, conf), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "sentinel: watching", 2, 30000));

    /* The master restarts: offline, resolved again, online. */
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 10000));
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 30000));
    pos_test_sleep_ms(1000);
    int st = pos_test_agent_stop(&f->agent, SIGTERM, 30000);
    assert_memcheck_clean(v->vglog, st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycle_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycle_sentinel, setup, teardown),
    };
    return cmocka_run_group_tests_name("valgrind", tests, NULL, NULL);
}
