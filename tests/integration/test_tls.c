/*
 * rediss:// end to end: Debian's redis-server (built with TLS) listens on a
 * plain port, which this test's own hiredis client uses, and on a TLS port
 * for the agent. Certificates come from tests/support/tls_certs.sh (the
 * openssl CLI) in a temp dir: a CA, a server certificate for localhost and
 * 127.0.0.1, an expired one, a client certificate, and an unrelated CA.
 */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
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

#include "tests/support/fixture.h"
#include "tests/support/fs.h"

#define TID        POS_FIX_TID
#define SID        POS_FIX_SID
#define STATUS_KEY POS_FIX_STATUS_KEY
#define PASSWORD   "tls-s3cr3t-pw"

static char certs[256]; /* generated once for the whole file */

typedef struct fixture {
    pos_fix_t fx;
    uint16_t tls_port;
    char tls_port_s[8];
    char cert[300], key[300], ca[300];
} fixture_t;

static int group_setup(void **state)
{
    (void)state;
    const char *src = getenv("POS_SOURCE_DIR");
    char script[512];
    char *out = NULL;

    snprintf(certs, sizeof(certs), "/tmp/posagent-tls-XXXXXX");
    if (src == NULL || mkdtemp(certs) == NULL) {
        fprintf(stderr, "POS_SOURCE_DIR not set or no temp dir\n");
        return -1;
    }
    snprintf(script, sizeof(script), "%s/tests/support/tls_certs.sh", src);
    const char *argv[] = {"/bin/bash", script, certs, NULL};
    int rc = pos_test_run(argv, NULL, &out, 60000);
    if (rc != 0) {
        fprintf(stderr, "tls_certs.sh failed (%d):\n%s\n", rc, out ? out : "");
    }
    free(out);
    return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pos_test_rm_tree(certs);
    return 0;
}

/* Starts redis-server with a TLS port serving DIR/<server>.crt; "auth" is
 * tls-auth-clients (yes: mutual TLS). The TLS port survives restarts. */
static void redis_start(fixture_t *f, const char *server, bool auth)
{
    if (f->tls_port == 0) {
        f->tls_port = pos_test_free_port();
        snprintf(f->tls_port_s, sizeof(f->tls_port_s), "%u", (unsigned)f->tls_port);
    }
    snprintf(f->cert, sizeof(f->cert), "%s/%s.crt", certs, server);
    snprintf(f->key, sizeof(f->key), "%s/%s.key", certs, server);
    snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", certs);
    const char *extra[] = {"--tls-port",
                           f->tls_port_s,
                           "--tls-cert-file",
                           f->cert,
                           "--tls-key-file",
                           f->key,
                           "--tls-ca-cert-file",
                           f->ca,
                           "--tls-auth-clients",
                           auth ? "yes" : "no",
                           NULL};
    memcpy(f->fx.redis.extra, extra, sizeof(extra));
    assert_int_equal(pos_fix_redis_start(&f->fx), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    pos_fix_init(&f->fx);
    f->fx.stop_signal = SIGTERM;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_fix_stop(&f->fx);
    free(f);
    return 0;
}

/* Starts the agent on the TLS port: "host" is the URL's host, DIR/<ca>.crt
 * the CA file; more [tls] or [redis] keys are in f->fx.ini already. */
static void start_agent(fixture_t *f, const char *host, const char *ca)
{
    pos_ini_t *ini = &f->fx.ini;
    pos_ini_set(ini, "redis", "url", "rediss://%s:%u", host, (unsigned)f->tls_port);
    pos_fix_set_retry(&f->fx, 100, 1000);
    pos_ini_set(ini, "redis", "connect_timeout_ms", "2000");
    pos_ini_set(ini, "redis", "command_timeout_ms", "2000");
    pos_ini_set(ini, "tls", "ca_file", "%s/%s.crt", certs, ca);
    pos_fix_set_heartbeat(&f->fx, 1, 5);
    pos_ini_set(ini, "hal", "sim_pinpad_delay_ms", "200");
    pos_fix_agent_start(&f->fx, NULL);
}

static void dump_log(const fixture_t *f)
{
    pos_fix_dump_log(&f->fx);
}

static void wait_log(fixture_t *f, const char *needle, int n, int timeout_ms)
{
    pos_fix_wait_log(&f->fx, needle, n, timeout_ms);
}

/* Ids of the clients connected to the TLS port, i.e. the agent's. */
static int tls_clients(const fixture_t *f, bool named_only)
{
    redisReply *r = pos_test_redis_cmd(&f->fx.redis, "CLIENT LIST");
    char needle[64];
    int n = 0;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(needle, sizeof(needle), "laddr=127.0.0.1:%u ", (unsigned)f->tls_port);
    for (char *line = strtok(r->str, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strstr(line, needle) != NULL &&
            (!named_only || strstr(line, "name=posagent:" TID " ") != NULL)) {
            n++;
        }
    }
    freeReplyObject(r);
    return n;
}

static void assert_no_plain_fallback(const fixture_t *f)
{
    char needle[64];
    redisReply *r = pos_test_redis_cmd(&f->fx.redis, "CLIENT LIST");
    assert_non_null(r);
    /* Nothing of the agent's on the plain port, ever. */
    snprintf(needle, sizeof(needle), "laddr=127.0.0.1:%u ", (unsigned)f->fx.redis.port);
    for (char *line = strtok(r->str, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strstr(line, needle) != NULL) {
            assert_null(strstr(line, "name=posagent:"));
        }
    }
    freeReplyObject(r);
}

/* The status key once it holds the given status (NULL on timeout). */
static cJSON *wait_status(const fixture_t *f, const char *status, int timeout_ms)
{
    cJSON *j = NULL;
    pos_fix_wait_status(&f->fx.redis, status, timeout_ms, &j);
    return j;
}

/* ---- tests ------------------------------------------------------------------ */

/* Online over TLS on both connections; heartbeats and a payment go through. */
static void test_connect_heartbeat_payment(void **state)
{
    fixture_t *f = *state;
    pos_test_sub_t sub = {0};

    redis_start(f, "server", false);
    start_agent(f, "localhost", "ca");
    wait_log(f, "link: online", 1, 15000);
    /* Each connection logs its handshake as it completes, which under
     * emulation may come just after the link says online. The first is a
     * full one; the second is full too when both connections start
     * together, or resumes the first's session when it starts after that
     * one is through (seen under qemu-aarch64 in CI). */
    wait_log(f, "handshake in ", 2, 15000);
    int full = pos_test_agent_log_count(&f->fx.agent, "TLS full handshake");
    int resumed = pos_test_agent_log_count(&f->fx.agent, "TLS resumed handshake");
    assert_true(full >= 1);
    assert_int_equal(full + resumed, 2);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "(TLSv1.2, "), 2);
    assert_int_equal(tls_clients(f, true), 2);
    assert_no_plain_fallback(f);

    /* Heartbeat: the status key is refreshed (interval 1 s). */
    cJSON *j = wait_status(f, "online", 5000);
    assert_non_null(j);
    long long ts1 = (long long)cJSON_GetObjectItemCaseSensitive(j, "ts")->valuedouble;
    cJSON_Delete(j);
    pos_test_sleep_ms(2200);
    j = wait_status(f, "online", 5000);
    assert_non_null(j);
    assert_true((long long)cJSON_GetObjectItemCaseSensitive(j, "ts")->valuedouble > ts1);
    cJSON_Delete(j);

    /* A payment, requested and answered over the TLS link. */
    wait_log(f, "hal: pinpad: ready", 1, 5000);
    const char *channels[] = {"payment:" TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&sub, &f->fx.redis, channels), 0);
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH payment:" TID " %s",
                                  "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-tls-1\","
                                  "\"amount\":12.34,\"currency\":\"EUR\",\"lines\":[{\"name\":"
                                  "\"Espresso\",\"qty\":2,\"amount\":5.00},{\"name\":"
                                  "\"Croissant\",\"qty\":1,\"amount\":2.34}]}"),
                     2);
    bool approved = false;
    uint64_t end = pos_test_now_ms() + 15000;
    while (!approved && pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&sub, 1000, NULL, 0);
        if (m != NULL) {
            approved =
                strstr(m, "\"PAYMENT_APPROVED\"") != NULL && strstr(m, "\"tx-tls-1\"") != NULL;
            free(m);
        }
    }
    pos_test_sub_close(&sub);
    if (!approved) {
        dump_log(f);
    }
    assert_true(approved);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: offline"), 0);
}

/* A dropped link comes back with an abbreviated handshake (the session is
 * resumed), and it is the same TLS clients' count. */
static void test_session_resumption(void **state)
{
    fixture_t *f = *state;

    redis_start(f, "server", false);
    start_agent(f, "localhost", "ca");
    wait_log(f, "link: online", 1, 15000);
    wait_log(f, "handshake in ", 2, 15000); /* may be logged just after "online" */
    int full = pos_test_agent_log_count(&f->fx.agent, "TLS full handshake");
    int resumed = pos_test_agent_log_count(&f->fx.agent, "TLS resumed handshake");
    assert_int_equal(full + resumed, 2);
    assert_true(full >= 1);

    for (int round = 1; round <= 2; round++) {
        /* Kill the agent's connections (only its are on the TLS port). */
        char laddr[32];
        snprintf(laddr, sizeof(laddr), "127.0.0.1:%u", (unsigned)f->tls_port);
        assert_int_equal(pos_test_int(&f->fx.redis, "CLIENT KILL LADDR %s", laddr), 2);
        wait_log(f, "link: online", 1 + round, 15000);
        /* Both connections resumed: no new full handshake. */
        wait_log(f, "TLS resumed handshake", resumed + 2 * round, 5000);
        assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "TLS full handshake"), full);
    }
    assert_int_equal(tls_clients(f, true), 2);
}

/* Mutual TLS: refused without a client certificate, online with one. */
static void test_mutual_tls(void **state)
{
    fixture_t *f = *state;

    redis_start(f, "server", true);
    start_agent(f, "localhost", "ca");
    wait_log(f, "TLS handshake refused by the server", 1, 15000);
    pos_test_sleep_ms(1500);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
    pos_fix_agent_forget(&f->fx);

    pos_ini_set(&f->fx.ini, "tls", "cert_file", "%s/client.crt", certs);
    pos_ini_set(&f->fx.ini, "tls", "key_file", "%s/client.key", certs);
    start_agent(f, "localhost", "ca");
    wait_log(f, "link: online", 1, 15000);
    assert_int_equal(tls_clients(f, true), 2);
}

/* Expects the agent to stay offline, logging the reason, retrying at the
 * backoff cap (1000 ms) and never trying the plain port. */
static void expect_rejected(fixture_t *f, const char *reason)
{
    wait_log(f, reason, 1, 30000);
    /* Fatal: every retry waits for the cap, not the 100 ms base. */
    wait_log(f, "reconnecting in 1000 ms (attempt 1)", 1, 5000);
    uint64_t t0 = pos_test_now_ms();
    wait_log(f, "reconnecting in 1000 ms (attempt 2)", 1, 5000);
    assert_true(pos_test_now_ms() - t0 >= 800);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "reconnecting in"),
                     pos_test_agent_log_count(&f->fx.agent, "reconnecting in 1000 ms"));
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
    assert_int_equal(tls_clients(f, true), 0);
    assert_no_plain_fallback(f);
    assert_true(pos_test_agent_alive(&f->fx.agent));
    cJSON *j = wait_status(f, "online", 10);
    assert_null(j);
}

static void test_wrong_ca(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    start_agent(f, "localhost", "other-ca");
    expect_rejected(f, "rejected: unknown CA");
}

static void test_expired_certificate(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "expired", false);
    start_agent(f, "localhost", "ca");
    expect_rejected(f, "rejected: certificate expired");
}

static void test_wrong_hostname(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    /* Connect to 127.0.0.1 (in the certificate) but expect another name. */
    pos_ini_set(&f->fx.ini, "tls", "server_name", "redis.example.com");
    start_agent(f, "127.0.0.1", "ca");
    expect_rejected(f, "rejected: name mismatch");
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "(server_name redis.example.com)", 1, 10));
}

/* Connecting by IP address: mbedTLS 2.28 matches DNS names only (not the
 * certificate's IP SAN), so it is refused with a hint, and works with
 * server_name set to a DNS name of the certificate. */
static void test_ip_address_name(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    start_agent(f, "127.0.0.1", "ca");
    if (pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 3000)) {
        /* An mbedTLS that matches IP SANs (3.5 and later). */
        return;
    }
    wait_log(f, "rejected: name mismatch", 1, 5000);
    wait_log(f, "cannot match IP addresses: set [tls] server_name", 1, 10);
    pos_fix_agent_forget(&f->fx);
    pos_ini_set(&f->fx.ini, "tls", "server_name", "localhost");
    start_agent(f, "127.0.0.1", "ca");
    wait_log(f, "link: online", 1, 15000);
}

/* rediss:// to a plain port: Redis waits for a newline that a ClientHello
 * never sends; the connect timeout says what to check, nothing is sent in
 * clear, and the agent never comes online. */
static void test_plain_port(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    uint16_t tls_port = f->tls_port;
    f->tls_port = f->fx.redis.port;
    start_agent(f, "localhost", "ca");
    f->tls_port = tls_port;
    wait_log(f, "no TLS handshake within the connect timeout: is the port a TLS port", 2, 15000);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 0);
    /* The agent's half-open connections never named themselves. */
    redisReply *r = pos_test_redis_cmd(&f->fx.redis, "CLIENT LIST");
    assert_non_null(r);
    assert_null(strstr(r->str, "name=posagent:"));
    freeReplyObject(r);
}

/* After a Redis restart the agent reconnects over TLS (a full handshake:
 * the new server process has no session cache). */
static void test_reconnect_after_restart(void **state)
{
    fixture_t *f = *state;

    redis_start(f, "server", false);
    start_agent(f, "localhost", "ca");
    wait_log(f, "link: online", 1, 15000);
    int full = pos_test_agent_log_count(&f->fx.agent, "TLS full handshake");

    pos_test_redis_kill(&f->fx.redis);
    wait_log(f, "link: offline", 1, 10000);
    uint64_t t0 = pos_test_now_ms();
    assert_int_equal(pos_test_redis_start(&f->fx.redis), 0);
    wait_log(f, "link: online", 2, 15000);
    uint64_t ms = pos_test_now_ms() - t0;
    fprintf(stderr, "reconnected over TLS %llu ms after the restart began\n",
            (unsigned long long)ms);
    assert_true(ms < 5000);
    assert_true(pos_test_agent_log_count(&f->fx.agent, "TLS full handshake") >= full + 1);
    assert_int_equal(tls_clients(f, true), 2);
    cJSON *j = wait_status(f, "online", 5000);
    assert_non_null(j);
    cJSON_Delete(j);
}

/*
 * The CA file is read when a server certificate must be verified, not kept:
 * with it gone, resumed handshakes (Redis up, connections dropped) still
 * work, a full one (a new Redis process has no session cache) fails saying
 * why, and the file back lets the link come back without a restart.
 */
static void test_ca_file_read_per_full_handshake(void **state)
{
    fixture_t *f = *state;
    char ca[300], away[300], laddr[32];

    redis_start(f, "server", false);
    snprintf(ca, sizeof(ca), "%s/ca-copy.crt", certs);
    snprintf(away, sizeof(away), "%s/ca-copy.away", certs);
    unlink(ca);
    assert_int_equal(link(f->ca, ca), 0);
    start_agent(f, "localhost", "ca-copy");
    wait_log(f, "link: online", 1, 15000);
    assert_int_equal(rename(ca, away), 0);

    snprintf(laddr, sizeof(laddr), "127.0.0.1:%u", (unsigned)f->tls_port);
    assert_int_equal(pos_test_int(&f->fx.redis, "CLIENT KILL LADDR %s", laddr), 2);
    wait_log(f, "link: online", 2, 15000);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "cannot verify the server"), 0);

    pos_test_redis_kill(&f->fx.redis);
    wait_log(f, "link: offline", 2, 10000);
    assert_int_equal(pos_test_redis_start(&f->fx.redis), 0);
    wait_log(f, "TLS: cannot verify the server: [tls] ca_file: cannot load", 1, 15000);
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "link: online"), 2);
    assert_true(pos_test_agent_alive(&f->fx.agent));

    assert_int_equal(rename(away, ca), 0);
    wait_log(f, "link: online", 3, 15000);
    assert_int_equal(tls_clients(f, true), 2);
    unlink(ca);
}

/* ACL user and a password from a private file, over TLS; never logged,
 * never in --check-config. A world-readable file: refused at start. */
static void test_password_file(void **state)
{
    fixture_t *f = *state;
    char pwfile[300], conf[300];

    snprintf(f->fx.redis.password, sizeof(f->fx.redis.password), "%s", PASSWORD);
    redis_start(f, "server", false);
    redisReply *r =
        pos_test_redis_cmd(&f->fx.redis, "ACL SETUSER term on >%s ~* &* +@all", PASSWORD "-acl");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    snprintf(pwfile, sizeof(pwfile), "%s/redis.password", certs);
    FILE *fp = fopen(pwfile, "w");
    assert_non_null(fp);
    fputs(PASSWORD "-acl\n", fp);
    fclose(fp);
    assert_int_equal(chmod(pwfile, 0600), 0);

    /* The URL names the ACL user; the password comes from the file. */
    pos_ini_set(&f->fx.ini, "redis", "password_file", "%s", pwfile);
    start_agent(f, "term:@localhost", "ca");
    wait_log(f, "link: online", 1, 15000);
    r = pos_test_redis_cmd(&f->fx.redis, "CLIENT LIST");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "name=posagent:" TID " "));
    assert_non_null(strstr(r->str, "user=term"));
    freeReplyObject(r);

    /* --check-config: the file is named, the password is not there. */
    snprintf(conf, sizeof(conf), "%s", f->fx.agent.conf);
    const char *argv[] = {getenv("POSAGENT_BIN"), "--check-config", "--config", conf, NULL};
    char *out = NULL;
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, pwfile));
    assert_null(strstr(out, PASSWORD));
    free(out);

    /* World-readable: a configuration error, exit 78, password not shown. */
    assert_int_equal(chmod(pwfile, 0644), 0);
    out = NULL;
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "[redis] password_file:"));
    assert_non_null(strstr(out, "open to other users"));
    assert_null(strstr(out, PASSWORD));
    free(out);

    pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000);
    char *log = pos_test_agent_log_read(&f->fx.agent);
    assert_non_null(log);
    assert_null(strstr(log, PASSWORD));
    free(log);
    unlink(pwfile);
}

/* TLS configuration problems stop the agent at start with exit 78. */
static void test_config_errors(void **state)
{
    fixture_t *f = *state;
    static pos_ini_t ini;
    char path[300], bad[300], ca[300], client[300];
    char *out = NULL;

    f->tls_port = 6390; /* not used: nothing connects */
    snprintf(path, sizeof(path), "%s/bad.ini", certs);
    snprintf(bad, sizeof(bad), "%s/garbage.pem", certs);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    snprintf(client, sizeof(client), "%s/client.crt", certs);
    FILE *fp = fopen(bad, "w");
    assert_non_null(fp);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", fp);
    fclose(fp);
    const char *argv[] = {getenv("POSAGENT_BIN"), "--check-config", "--config", path, NULL};
    /* [tls] keys (NULL: not set), and what the error must say. */
    const struct {
        const char *ca_file, *cert_file, *min_version;
        const char *want;
    } cases[] = {
        {NULL, NULL, NULL, "[tls] ca_file is required for a rediss:// URL"},
        {"/nonexistent/ca.pem", NULL, NULL, "[tls] ca_file: cannot read /nonexistent/ca.pem"},
        {bad, NULL, NULL, "[tls] ca_file: cannot load"},
        {ca, client, NULL, "[tls] cert_file is set but key_file is not"},
        {ca, NULL, "1.3", "TLS 1.3 needs mbedTLS 3.x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pos_ini_init(&ini);
        pos_ini_set(&ini, "terminal", "id", TID);
        pos_ini_set(&ini, "terminal", "store_id", SID);
        pos_ini_set(&ini, "redis", "url", "rediss://localhost:6390");
        pos_ini_section(&ini, "tls");
        if (cases[i].ca_file != NULL) {
            pos_ini_set(&ini, "tls", "ca_file", "%s", cases[i].ca_file);
        }
        if (cases[i].cert_file != NULL) {
            pos_ini_set(&ini, "tls", "cert_file", "%s", cases[i].cert_file);
        }
        if (cases[i].min_version != NULL) {
            pos_ini_set(&ini, "tls", "min_version", "%s", cases[i].min_version);
        }
        assert_int_equal(pos_ini_write(&ini, path), 0);
        out = NULL;
        int rc = pos_test_run(argv, NULL, &out, 10000);
        if (rc != 78 || strstr(out, cases[i].want) == NULL) {
            fail_msg("case %zu: exit %d, output: %s", i, rc, out ? out : "");
        }
        free(out);
    }
    unlink(path);
    unlink(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_heartbeat_payment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_resumption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutual_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_hostname, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ip_address_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_file_read_per_full_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
