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

#include "tests/support/fs.h"
#include "tests/support/harness.h"

#define TID        "T-0001"
#define SID        "S-042"
#define STATUS_KEY "terminal:" TID ":status"
#define PASSWORD   "tls-s3cr3t-pw"

static char certs[256]; /* generated once for the whole file */

typedef struct fixture {
    pos_test_redis_t redis;
    pos_test_agent_t agent;
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
    memcpy(f->redis.extra, extra, sizeof(extra));
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->agent.pid > 0) {
        pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    }
    pos_test_agent_cleanup(&f->agent);
    if (f->redis.pid > 0) {
        pos_test_redis_stop(&f->redis);
    }
    free(f);
    return 0;
}

/* The agent's configuration for the TLS port; "host" is the URL's host,
 * "tls" more [tls] keys, "extra" further sections. */
static char *ini_for(const fixture_t *f, const char *host, const char *ca, const char *tls,
                     const char *extra)
{
    static char ini[4096];
    snprintf(ini, sizeof(ini),
             "[terminal]\nid = " TID "\nstore_id = " SID "\n"
             "[redis]\nurl = rediss://%s:%u\n"
             "retry_delay_ms = 100\nmax_retry_delay_ms = 1000\n"
             "connect_timeout_ms = 2000\ncommand_timeout_ms = 2000\n"
             "%s\n"
             "[tls]\nca_file = %s/%s.crt\n%s\n"
             "[heartbeat]\ninterval_s = 1\nttl_s = 5\n"
             "[hal]\nsim_pinpad_delay_ms = 200\n"
             "[log]\nlevel = debug\n",
             host, (unsigned)f->tls_port, extra ? extra : "", certs, ca, tls ? tls : "");
    return ini;
}

static void dump_log(const fixture_t *f)
{
    char *log = pos_test_agent_log_read(&f->agent);
    fprintf(stderr, "agent log:\n%s\n", log ? log : "(none)");
    free(log);
}

static void wait_log(fixture_t *f, const char *needle, int n, int timeout_ms)
{
    if (!pos_test_agent_wait_log(&f->agent, needle, n, timeout_ms)) {
        bool alive = pos_test_agent_alive(&f->agent);
        dump_log(f);
        fail_msg("no %d× \"%s\" in the agent log (agent %s, exit status %d)", n, needle,
                 alive ? "running" : "gone", f->agent.exit_status);
    }
}

/* Ids of the clients connected to the TLS port, i.e. the agent's. */
static int tls_clients(const fixture_t *f, bool named_only)
{
    redisReply *r = pos_test_redis_cmd(&f->redis, "CLIENT LIST");
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
    redisReply *r = pos_test_redis_cmd(&f->redis, "CLIENT LIST");
    assert_non_null(r);
    /* Nothing of the agent's on the plain port, ever. */
    snprintf(needle, sizeof(needle), "laddr=127.0.0.1:%u ", (unsigned)f->redis.port);
    for (char *line = strtok(r->str, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strstr(line, needle) != NULL) {
            assert_null(strstr(line, "name=posagent:"));
        }
    }
    freeReplyObject(r);
}

static cJSON *wait_status(const fixture_t *f, const char *status, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    while (pos_test_now_ms() < end) {
        char *v = pos_test_get(&f->redis, STATUS_KEY);
        if (v != NULL) {
            cJSON *j = cJSON_Parse(v);
            free(v);
            cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status");
            if (cJSON_IsString(s) && strcmp(s->valuestring, status) == 0) {
                return j;
            }
            cJSON_Delete(j);
        }
        pos_test_sleep_ms(50);
    }
    return NULL;
}

/* ---- tests ------------------------------------------------------------------ */

/* Online over TLS on both connections; heartbeats and a payment go through. */
static void test_connect_heartbeat_payment(void **state)
{
    fixture_t *f = *state;
    pos_test_sub_t sub = {0};

    redis_start(f, "server", false);
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", NULL, NULL), NULL), 0);
    wait_log(f, "link: online", 1, 15000);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "TLS full handshake"), 2);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "(TLSv1.2, "), 2);
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
    assert_int_equal(pos_test_sub_open_many(&sub, &f->redis, channels), 0);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" TID " %s",
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
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: offline"), 0);
}

/* A dropped link comes back with an abbreviated handshake (the session is
 * resumed), and it is the same TLS clients' count. */
static void test_session_resumption(void **state)
{
    fixture_t *f = *state;

    redis_start(f, "server", false);
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", NULL, NULL), NULL), 0);
    wait_log(f, "link: online", 1, 15000);
    int full = pos_test_agent_log_count(&f->agent, "TLS full handshake");
    int resumed = pos_test_agent_log_count(&f->agent, "TLS resumed handshake");
    assert_int_equal(full + resumed, 2);
    assert_true(full >= 1);

    for (int round = 1; round <= 2; round++) {
        /* Kill the agent's connections (only its are on the TLS port). */
        char laddr[32];
        snprintf(laddr, sizeof(laddr), "127.0.0.1:%u", (unsigned)f->tls_port);
        assert_int_equal(pos_test_int(&f->redis, "CLIENT KILL LADDR %s", laddr), 2);
        wait_log(f, "link: online", 1 + round, 15000);
        /* Both connections resumed: no new full handshake. */
        wait_log(f, "TLS resumed handshake", resumed + 2 * round, 5000);
        assert_int_equal(pos_test_agent_log_count(&f->agent, "TLS full handshake"), full);
    }
    assert_int_equal(tls_clients(f, true), 2);
}

/* Mutual TLS: refused without a client certificate, online with one. */
static void test_mutual_tls(void **state)
{
    fixture_t *f = *state;
    char tls[700];

    redis_start(f, "server", true);
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", NULL, NULL), NULL), 0);
    wait_log(f, "TLS handshake refused by the server", 1, 15000);
    pos_test_sleep_ms(1500);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 0);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_test_agent_cleanup(&f->agent);

    snprintf(tls, sizeof(tls), "cert_file = %s/client.crt\nkey_file = %s/client.key\n", certs,
             certs);
    memset(&f->agent, 0, sizeof(f->agent));
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", tls, NULL), NULL), 0);
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
    assert_int_equal(pos_test_agent_log_count(&f->agent, "reconnecting in"),
                     pos_test_agent_log_count(&f->agent, "reconnecting in 1000 ms"));
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 0);
    assert_int_equal(tls_clients(f, true), 0);
    assert_no_plain_fallback(f);
    assert_true(pos_test_agent_alive(&f->agent));
    cJSON *j = wait_status(f, "online", 10);
    assert_null(j);
}

static void test_wrong_ca(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "other-ca", NULL, NULL), NULL), 0);
    expect_rejected(f, "rejected: unknown CA");
}

static void test_expired_certificate(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "expired", false);
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", NULL, NULL), NULL), 0);
    expect_rejected(f, "rejected: certificate expired");
}

static void test_wrong_hostname(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    /* Connect to 127.0.0.1 (in the certificate) but expect another name. */
    assert_int_equal(pos_test_agent_start(
                         &f->agent,
                         ini_for(f, "127.0.0.1", "ca", "server_name = redis.example.com\n", NULL),
                         NULL),
                     0);
    expect_rejected(f, "rejected: name mismatch");
    assert_true(pos_test_agent_wait_log(&f->agent, "(server_name redis.example.com)", 1, 10));
}

/* Connecting by IP address: mbedTLS 2.28 matches DNS names only (not the
 * certificate's IP SAN), so it is refused with a hint, and works with
 * server_name set to a DNS name of the certificate. */
static void test_ip_address_name(void **state)
{
    fixture_t *f = *state;
    redis_start(f, "server", false);
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "127.0.0.1", "ca", NULL, NULL), NULL), 0);
    if (pos_test_agent_wait_log(&f->agent, "link: online", 1, 3000)) {
        /* An mbedTLS that matches IP SANs (3.5 and later). */
        return;
    }
    wait_log(f, "rejected: name mismatch", 1, 5000);
    wait_log(f, "cannot match IP addresses: set [tls] server_name", 1, 10);
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_test_agent_cleanup(&f->agent);
    memset(&f->agent, 0, sizeof(f->agent));
    assert_int_equal(
        pos_test_agent_start(
            &f->agent, ini_for(f, "127.0.0.1", "ca", "server_name = localhost\n", NULL), NULL),
        0);
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
    f->tls_port = f->redis.port;
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", NULL, NULL), NULL), 0);
    f->tls_port = tls_port;
    wait_log(f, "no TLS handshake within the connect timeout: is the port a TLS port", 2, 15000);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 0);
    /* The agent's half-open connections never named themselves. */
    redisReply *r = pos_test_redis_cmd(&f->redis, "CLIENT LIST");
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
    assert_int_equal(
        pos_test_agent_start(&f->agent, ini_for(f, "localhost", "ca", NULL, NULL), NULL), 0);
    wait_log(f, "link: online", 1, 15000);
    int full = pos_test_agent_log_count(&f->agent, "TLS full handshake");

    pos_test_redis_kill(&f->redis);
    wait_log(f, "link: offline", 1, 10000);
    uint64_t t0 = pos_test_now_ms();
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    wait_log(f, "link: online", 2, 15000);
    uint64_t ms = pos_test_now_ms() - t0;
    fprintf(stderr, "reconnected over TLS %llu ms after the restart began\n",
            (unsigned long long)ms);
    assert_true(ms < 5000);
    assert_true(pos_test_agent_log_count(&f->agent, "TLS full handshake") >= full + 1);
    assert_int_equal(tls_clients(f, true), 2);
    cJSON *j = wait_status(f, "online", 5000);
    assert_non_null(j);
    cJSON_Delete(j);
}

/* ACL user and a password from a private file, over TLS; never logged,
 * never in --check-config. A world-readable file: refused at start. */
static void test_password_file(void **state)
{
    fixture_t *f = *state;
    char pwfile[300], extra[400], conf[300];

    snprintf(f->redis.password, sizeof(f->redis.password), "%s", PASSWORD);
    redis_start(f, "server", false);
    redisReply *r =
        pos_test_redis_cmd(&f->redis, "ACL SETUSER term on >%s ~* &* +@all", PASSWORD "-acl");
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
    static char ini[4096];
    snprintf(extra, sizeof(extra), "password_file = %s\n", pwfile);
    snprintf(ini, sizeof(ini), "%s", ini_for(f, "localhost", "ca", NULL, extra));
    char *u = strstr(ini, "rediss://");
    assert_non_null(u);
    char rest[4096];
    snprintf(rest, sizeof(rest), "%s", u + strlen("rediss://"));
    snprintf(u, sizeof(ini) - (size_t)(u - ini), "rediss://term:@%s", rest);
    assert_int_equal(pos_test_agent_start(&f->agent, ini, NULL), 0);
    wait_log(f, "link: online", 1, 15000);
    r = pos_test_redis_cmd(&f->redis, "CLIENT LIST");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "name=posagent:" TID " "));
    assert_non_null(strstr(r->str, "user=term"));
    freeReplyObject(r);

    /* --check-config: the file is named, the password is not there. */
    snprintf(conf, sizeof(conf), "%s", f->agent.conf);
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

    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    char *log = pos_test_agent_log_read(&f->agent);
    assert_non_null(log);
    assert_null(strstr(log, PASSWORD));
    free(log);
    unlink(pwfile);
}

/* TLS configuration problems stop the agent at start with exit 78. */
static void test_config_errors(void **state)
{
    fixture_t *f = *state;
    char ini[1024], path[300], bad[300];
    char *out = NULL;

    f->tls_port = 6390; /* not used: nothing connects */
    snprintf(path, sizeof(path), "%s/bad.ini", certs);
    snprintf(bad, sizeof(bad), "%s/garbage.pem", certs);
    FILE *fp = fopen(bad, "w");
    assert_non_null(fp);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", fp);
    fclose(fp);
    const char *argv[] = {getenv("POSAGENT_BIN"), "--check-config", "--config", path, NULL};
    const struct {
        const char *tls;
        const char *want;
    } cases[] = {
        {"", "[tls] ca_file is required for a rediss:// URL"},
        {"ca_file = /nonexistent/ca.pem\n", "[tls] ca_file: cannot read /nonexistent/ca.pem"},
        {"ca_file = BAD\n", "[tls] ca_file: cannot load"},
        {"ca_file = CA\ncert_file = CLIENT\n", "[tls] cert_file is set but key_file is not"},
        {"ca_file = CA\nmin_version = 1.3\n", "TLS 1.3 needs mbedTLS 3.x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char tls[600];
        const char *s = cases[i].tls;
        size_t o = 0;
        /* Expand the placeholders into paths under the certificate dir. */
        while (*s != '\0' && o + 300 < sizeof(tls)) {
            if (strncmp(s, "BAD", 3) == 0) {
                o += (size_t)snprintf(tls + o, sizeof(tls) - o, "%s", bad);
                s += 3;
            } else if (strncmp(s, "CA", 2) == 0 && s[2] == '\n') {
                o += (size_t)snprintf(tls + o, sizeof(tls) - o, "%s/ca.crt", certs);
                s += 2;
            } else if (strncmp(s, "CLIENT", 6) == 0) {
                o += (size_t)snprintf(tls + o, sizeof(tls) - o, "%s/client.crt", certs);
                s += 6;
            } else {
                tls[o++] = *s++;
            }
        }
        tls[o] = '\0';
        snprintf(ini, sizeof(ini),
                 "[terminal]\nid = " TID "\nstore_id = " SID "\n"
                 "[redis]\nurl = rediss://localhost:6390\n[tls]\n%s",
                 tls);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(ini, fp);
        fclose(fp);
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
        cmocka_unit_test_setup_teardown(test_password_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
