/*
 * The posagent command line: exit codes, messages and --check-config,
 * run as a user or a deployment script would.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/harness.h"

static const char *bin(void)
{
    const char *b = getenv("POSAGENT_BIN");
    assert_non_null(b);
    return b;
}

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/posagent-cli-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_conf(const char *name, const char *text)
{
    static char path[160];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int run(const char *const *argv, const char *const *env, char **out)
{
    return pos_test_run(argv, env, out, 10000);
}

static void test_version_and_help(void **state)
{
    (void)state;
    char *out = NULL;
    const char *v[] = {bin(), "--version", NULL};
    assert_int_equal(run(v, NULL, &out), 0);
    /* The version itself is checked against the heartbeat's (test_link). */
    assert_true(strncmp(out, "posagent ", 9) == 0 && out[9] >= '0' && out[9] <= '9');
    assert_non_null(strstr(out, " (build "));
    assert_non_null(strstr(out, "libuv"));
    assert_non_null(strstr(out, "hiredis"));
    free(out);
    const char *h[] = {bin(), "--help", NULL};
    assert_int_equal(run(h, NULL, &out), 0);
    assert_non_null(strstr(out, "--check-config"));
    free(out);
    const char *bad[] = {bin(), "--no-such-option", NULL};
    assert_int_equal(run(bad, NULL, &out), 64);
    free(out);
    const char *extra[] = {bin(), "stray", NULL};
    assert_int_equal(run(extra, NULL, &out), 64);
    free(out);
}

static void test_config_errors_exit_78(void **state)
{
    (void)state;
    char *out = NULL;
    const char *path = write_conf("bad.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                             "[redis]\ncommand_timeout_ms = 5\n");
    const char *a[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(a, NULL, &out), 78);
    /* one clear line: file, line, key and what is allowed */
    assert_non_null(strstr(out, path));
    assert_non_null(strstr(out, ":5:"));
    assert_non_null(strstr(out, "command_timeout_ms"));
    assert_non_null(strstr(out, "100"));
    free(out);

    path = write_conf("unknown.ini", "[terminal]\nid = T-1\nstore_id = S-1\nidd = x\n");
    const char *b[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(b, NULL, &out), 78);
    assert_non_null(strstr(out, ":4:"));
    assert_non_null(strstr(out, "idd"));
    free(out);

    path = write_conf("noid.ini", "[terminal]\nstore_id = S-1\n");
    const char *c[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(c, NULL, &out), 78);
    assert_non_null(strstr(out, "POSAGENT_TERMINAL_ID"));
    free(out);

    /* Issue 13 item 13: a FIFO with no writer hung the agent for ever. */
    char fifo[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo.ini", tmpdir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *ff[] = {bin(), "--config", fifo, NULL};
    assert_int_equal(run(ff, NULL, &out), 78);
    assert_non_null(strstr(out, "not a regular file (a FIFO)"));
    free(out);
    const char *fc[] = {bin(), "--check-config", "--config", fifo, NULL};
    assert_int_equal(run(fc, NULL, &out), 78);
    free(out);

    /* ... and a relative store path said "is must be an absolute path". */
    path = write_conf("rel.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                 "[store]\npath = relative/store\n");
    const char *rl[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(rl, NULL, &out), 78);
    assert_non_null(strstr(out, ":5: [store] path: \"relative/store\": a relative path: it must "
                                "start with '/'"));
    assert_null(strstr(out, "is must"));
    free(out);

    const char *d[] = {bin(), "--config", "/nonexistent/posagent.ini", NULL};
    assert_int_equal(run(d, NULL, &out), 78);
    assert_non_null(strstr(out, "/nonexistent/posagent.ini"));
    free(out);

    /* A driver string the HAL cannot use is a configuration error. */
    path = write_conf("drv.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                 "[hal]\nprinter = escpos-serial:/dev/ttyUSB0?baud=12345\n");
    const char *g[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(g, NULL, &out), 78);
    assert_non_null(strstr(out, ":5:"));
    assert_non_null(strstr(out, "[hal] printer"));
    assert_non_null(strstr(out, "baud"));
    free(out);
    path = write_conf("drv2.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                  "[hal]\npinpad = ingenico:/dev/ttyACM0\n");
    const char *h[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(h, NULL, &out), 78);
    assert_non_null(strstr(out, "telium"));
    free(out);

    path = write_conf("ok.ini", "[terminal]\nid = T-1\nstore_id = S-1\n");
    const char *e[] = {bin(), "--config", path, NULL};
    const char *bad_env[] = {"REDIS_DB=abc", NULL};
    assert_int_equal(run(e, bad_env, &out), 78);
    assert_non_null(strstr(out, "REDIS_DB"));
    free(out);
    const char *bad_url[] = {"REDIS_URL=http://example:6379", NULL};
    assert_int_equal(run(e, bad_url, &out), 78);
    assert_non_null(strstr(out, "REDIS_URL"));
    free(out);
}

/*
 * Issue 13 item 4: unsigned payment commands were accepted by default (a
 * till installed and left as it was took a card for anyone who could
 * publish on its channel). Without a key file the agent now refuses to
 * start unless allow_unsigned says so on purpose.
 */
static void test_unsigned_refused_by_default(void **state)
{
    (void)state;
    char *out = NULL;
    const char *path = write_conf("nokey.ini", "[terminal]\nid = T-1\nstore_id = S-1\n");
    const char *a[] = {bin(), "--config", path, NULL};
    const char *c[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(a, NULL, &out), 78);
    assert_non_null(strstr(out, "[payment] hmac_key_file is not set"));
    assert_non_null(strstr(out, "payment:T-1"));
    assert_non_null(strstr(out, "allow_unsigned = true"));
    free(out);
    assert_int_equal(run(c, NULL, &out), 78);
    free(out);
    const char *no[] = {"POSAGENT_ALLOW_UNSIGNED=false", NULL};
    assert_int_equal(run(c, no, &out), 78);
    free(out);

    /* Said on purpose, in the file or the environment. */
    const char *yes[] = {"POSAGENT_ALLOW_UNSIGNED=1", NULL};
    assert_int_equal(run(c, yes, &out), 0);
    assert_non_null(strstr(out, "allow_unsigned = true"));
    free(out);
    path = write_conf("unsigned.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                      "[payment]\nallow_unsigned = true\n");
    const char *u[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(u, NULL, &out), 0);
    free(out);
}

/*
 * [payment] hmac_key_file is checked as the agent reads it: --check-config
 * said "configuration OK" for a key file that is a directory, a FIFO or
 * open to other users (the agent then refused to start), and a FIFO with
 * no writer hung the agent at start for ever (its open blocked).
 */
static void test_key_file_checked(void **state)
{
    (void)state;
    char *out = NULL, conf[512], key[160], fifo[160];
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    static const char fmt[] = "[terminal]\nid = T-1\nstore_id = S-1\n"
                              "[payment]\nhmac_key_file = %s\n";

    snprintf(key, sizeof(key), "%s", write_conf("hmac.key", hex));
    snprintf(fifo, sizeof(fifo), "%s/hmac.fifo", tmpdir);
    assert_int_equal(mkfifo(fifo, 0600), 0);

    /* A good key file: OK. */
    assert_int_equal(chmod(key, 0600), 0);
    snprintf(conf, sizeof(conf), fmt, key);
    const char *path = write_conf("key-ok.ini", conf);
    const char *ok[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(ok, NULL, &out), 0);
    free(out);

    /* Readable by others: the agent refuses it, so must --check-config. */
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(run(ok, NULL, &out), 78);
    assert_non_null(strstr(out, "hmac_key_file"));
    assert_null(strstr(out, hex + 8)); /* the key is never quoted */
    free(out);

    /* A directory. */
    snprintf(conf, sizeof(conf), fmt, tmpdir);
    path = write_conf("key-dir.ini", conf);
    const char *dir[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(dir, NULL, &out), 78);
    assert_non_null(strstr(out, "not a regular file"));
    free(out);

    /* A FIFO with no writer: refused at once, by both. */
    snprintf(conf, sizeof(conf), fmt, fifo);
    path = write_conf("key-fifo.ini", conf);
    const char *fc[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(fc, NULL, &out), 78);
    assert_non_null(strstr(out, "not a regular file"));
    free(out);
    const char *fr[] = {bin(), "--config", path, NULL};
    assert_int_equal(run(fr, NULL, &out), 78);
    assert_non_null(strstr(out, "not a regular file"));
    free(out);
}

/*
 * An account named in the configuration must exist: the agent refuses to
 * start without it ([security] user: exit 78; [local] socket_group: "cannot
 * start", exit 1), and --check-config said "configuration OK" for both.
 */
static void test_accounts_checked(void **state)
{
    (void)state;
    char *out = NULL;
    const char *path = write_conf("nouser.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                                "[payment]\nallow_unsigned = true\n"
                                                "[security]\nuser = posagent-no-such-user\n");
    const char *u[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(u, NULL, &out), 78);
    assert_non_null(strstr(out, "[security] user posagent-no-such-user: no such user"));
    free(out);

    path = write_conf("nogroup.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                     "[payment]\nallow_unsigned = true\n"
                                     "[local]\nsocket_group = posagent-no-such-group\n");
    const char *g[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(g, NULL, &out), 78);
    assert_non_null(strstr(out, "[local] socket_group posagent-no-such-group: no such group"));
    free(out);

    /* An existing user passes. */
    path = write_conf("accounts.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                      "[payment]\nallow_unsigned = true\n"
                                      "[security]\nuser = root\n");
    const char *ok[] = {bin(), "--check-config", "--config", path, NULL};
    assert_int_equal(run(ok, NULL, &out), 0);
    free(out);
}

/*
 * Issue 13 item 3: the shipped example set id = T-0001 and store_id = S-042
 * and --check-config said "configuration OK", so every till installed from
 * the package and left so spoke for one terminal. The shipped file has no
 * ids now; each till's own come from a drop-in, and --check-config names
 * the file and line that set each value.
 */
static void test_identity_from_dropins(void **state)
{
    (void)state;
    char *out = NULL, conf[160], dir[160], want[512];
    const char *src = getenv("POS_SOURCE_DIR");
    assert_non_null(src);

    snprintf(conf, sizeof(conf), "%s/posagent.ini", tmpdir);
    snprintf(dir, sizeof(dir), "%s/posagent.d", tmpdir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp '%s/conf/posagent.ini' '%s'", src, conf);
    assert_int_equal(system(cmd), 0);
    const char *check[] = {bin(), "--check-config", "--config", conf, NULL};
    assert_int_equal(run(check, NULL, &out), 78);
    assert_non_null(strstr(out, "this till's identity is not set"));
    assert_non_null(strstr(out, "posagent.d/10-identity.ini"));
    assert_non_null(strstr(out, "POSAGENT_TERMINAL_ID"));
    free(out);

    assert_int_equal(mkdir(dir, 0755), 0);
    write_conf("posagent.d/10-identity.ini", "[terminal]\nid = T-42\nstore_id = S-7\n");
    write_conf("posagent.d/20-payment.ini", "[payment]\nallow_unsigned = true\n");
    assert_int_equal(run(check, NULL, &out), 0);
    snprintf(want, sizeof(want), "\nid = T-42  ; %s/10-identity.ini:2\n", dir);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "\nallow_unsigned = true  ; %s/20-payment.ini:2\n", dir);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "and drop-ins %s/10-identity.ini, %s/20-payment.ini", dir, dir);
    assert_non_null(strstr(out, want));
    free(out);

    /* Named on the command line or in the environment; "" for none. */
    const char *none[] = {bin(), "--check-config", "--config", conf, "--config-dir", "", NULL};
    assert_int_equal(run(none, NULL, &out), 78);
    free(out);
    const char *named[] = {bin(), "--check-config", "--config-dir", dir, NULL};
    assert_int_equal(run(named, NULL, &out), 0);
    assert_non_null(strstr(out, "T-42"));
    free(out);
    const char *env[] = {"POSAGENT_CONFIG_DIR=", NULL};
    assert_int_equal(run(check, env, &out), 78);
    free(out);

    /* A drop-in anybody may change is refused. */
    char open_one[200];
    snprintf(open_one, sizeof(open_one), "%s/30-open.ini", dir);
    write_conf("posagent.d/30-open.ini", "[log]\nlevel = debug\n");
    assert_int_equal(chmod(open_one, 0666), 0);
    assert_int_equal(run(check, NULL, &out), 78);
    assert_non_null(strstr(out, "30-open.ini: writable by everybody"));
    free(out);
    unlink(open_one);
}

/* --check-config prints the effective settings with secrets masked. */
static void test_check_config_masks_secrets(void **state)
{
    (void)state;
    char *out = NULL;
    const char *path = write_conf("check.ini", "[terminal]\nid = T-1\nstore_id = S-1\n"
                                               "[redis]\nurl = redis://till:UrlS3cret@db:6380/2\n"
                                               "[payment]\nallow_unsigned = true\n");
    const char *a[] = {bin(), "--check-config", "--config", path, NULL};
    const char *env[] = {"REDIS_PASSWORD=EnvS3cret", "POSAGENT_STORE_ID=S-9", NULL};
    assert_int_equal(run(a, env, &out), 0);
    assert_null(strstr(out, "UrlS3cret"));
    assert_null(strstr(out, "EnvS3cret"));
    assert_non_null(strstr(out, "****"));
    assert_non_null(strstr(out, "S-9")); /* the environment wins over the file */
    assert_non_null(strstr(out, "till"));
    free(out);
}

/* Environment only, no file: what the acceptance suite may do. */
static void test_environment_only(void **state)
{
    (void)state;
    char *out = NULL;
    const char *a[] = {bin(), "--check-config", NULL};
    const char *env[] = {
        "POSAGENT_TERMINAL_ID=T-7",           "POSAGENT_STORE_ID=S-7",
        "REDIS_URL=redis://127.0.0.1:6399",   "REDIS_DB=4",
        "REDIS_RETRY_DELAY_ON_FAILURE_MS=50", "REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS=2000",
        "POSAGENT_ALLOW_UNSIGNED=1",          NULL};
    if (access("/etc/posagent/posagent.ini", F_OK) == 0) {
        skip(); /* an installed default file would be read first */
    }
    assert_int_equal(run(a, env, &out), 0);
    assert_non_null(strstr(out, "T-7"));
    assert_non_null(strstr(out, "6399"));
    assert_non_null(strstr(out, "2000"));
    assert_non_null(strstr(out, "50"));
    free(out);
}

/* The example file and the README reference come from the schema. */
static void test_docs_match_schema(void **state)
{
    (void)state;
    char *out = NULL, path[512];
    const char *src = getenv("POS_SOURCE_DIR");
    assert_non_null(src);

    const char *a[] = {bin(), "--print-config-reference", NULL};
    assert_int_equal(run(a, NULL, &out), 0);
    snprintf(path, sizeof(path), "%s/README.md", src);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char readme[256 * 1024];
    size_t n = fread(readme, 1, sizeof(readme) - 1, f);
    readme[n] = '\0';
    fclose(f);
    bool found = strstr(readme, out) != NULL;
    free(out);
    if (!found) {
        fprintf(stderr, "README.md's configuration reference is out of date; regenerate it "
                        "with: posagent --print-config-reference\n");
        fail();
    }
}

/* ---- the technician's commands against a running agent ---------------------- */

#define SETPRIV "/usr/bin/setpriv"
#define NOBODY  "65534"

static char sock_path[400];

/* Starts Redis and the agent (simulated devices, a pinpad that takes
 * pinpad_ms to answer) and waits until it serves locally. */
static void cli_agent_start(pos_fix_t *f, unsigned pinpad_ms)
{
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "%u", pinpad_ms);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", f->agent.dir);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    redisFree(c);
}

/* posagent WORDS... --socket SOCK; its stdout and stderr in *out. */
static int cli(char **out, const char *w1, const char *w2, const char *w3, const char *w4)
{
    const char *argv[10] = {bin()};
    int n = 1;
    const char *w[] = {w1, w2, w3, w4};
    for (size_t i = 0; i < 4 && w[i] != NULL; i++) {
        argv[n++] = w[i];
    }
    argv[n++] = "--socket";
    argv[n++] = sock_path;
    argv[n] = NULL;
    return run(argv, NULL, out);
}

/* The same as user nobody (setpriv), for what only the socket's owner may
 * do: root passes every permission check. */
static int cli_as_nobody(char **out, const char *w1, const char *w2)
{
    const char *argv[] = {SETPRIV,
                          "--reuid=" NOBODY,
                          "--regid=" NOBODY,
                          "--clear-groups",
                          "--",
                          bin(),
                          w1,
                          w2,
                          "--socket",
                          sock_path,
                          NULL};
    if (w2 == NULL) {
        argv[7] = "--socket";
        argv[8] = sock_path;
        argv[9] = NULL;
    }
    return run(argv, NULL, out);
}

/* Root, with setpriv, and the binary reachable by nobody (a build under
 * a private home is not): the steps as another user can run. */
static bool as_nobody_works(void)
{
    static int works = -1;
    if (works < 0) {
        char *out = NULL;
        const char *argv[] = {SETPRIV,
                              "--reuid=" NOBODY,
                              "--regid=" NOBODY,
                              "--clear-groups",
                              "--",
                              bin(),
                              "--version",
                              NULL};
        works = geteuid() == 0 && access(SETPRIV, X_OK) == 0 && run(argv, NULL, &out) == 0;
        free(out);
        if (!works) {
            fprintf(stderr, "cannot run %s as uid " NOBODY ": those steps are skipped\n", bin());
        }
    }
    return works;
}

/* out parsed as one JSON document (the whole output: nothing else may be
 * printed with --json); fails the test otherwise. */
static cJSON *json_of(char *out)
{
    cJSON *j = cJSON_Parse(out);
    if (j == NULL) {
        fprintf(stderr, "not one JSON document: \"%s\"\n", out);
    }
    assert_non_null(j);
    return j;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void test_cli_status_outbox_cache_json(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL;

    cli_agent_start(f, 100);
    /* Text: sections as headers, fields indented. */
    assert_int_equal(cli(&out, "status", NULL, NULL, NULL), 0);
    assert_true(strncmp(out, "server\n  posagent_version: ", 27) == 0);
    free(out);

    /* JSON: {"section": {"field": value}}, numbers as numbers; the option
     * before the command works as after it. */
    for (int before = 0; before < 2; before++) {
        const char *b[] = {bin(), "--json", "--socket", sock_path, "status", NULL};
        assert_int_equal(before ? run(b, NULL, &out) : cli(&out, "status", "--json", NULL, NULL),
                         0);
        cJSON *j = json_of(out);
        const cJSON *server = cJSON_GetObjectItemCaseSensitive(j, "server");
        assert_true(cJSON_IsObject(server));
        assert_true(strlen(jstr(server, "posagent_version")) > 0);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(server, "uptime_in_seconds")));
        assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "link")));
        cJSON_Delete(j);
        free(out);
    }

    assert_int_equal(cli(&out, "outbox", "--json", NULL, NULL), 0);
    cJSON *j = json_of(out);
    const cJSON *ob = cJSON_GetObjectItemCaseSensitive(j, "outbox");
    assert_true(cJSON_IsObject(ob));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "server")); /* that section only */
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(ob, "outbox_entries")));
    cJSON_Delete(j);
    free(out);

    /* cache get: the value, null (exit 1) when not cached. */
    assert_int_equal(cli(&out, "cache", "get", "product:cli-none", "--json"), 1);
    j = json_of(out);
    assert_string_equal(jstr(j, "key"), "product:cli-none");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "value")));
    cJSON_Delete(j);
    free(out);
    pos_fix_redis_set(f, "product:cli-1", "{\"name\":\"tea\"}");
    assert_int_equal(cli(&out, "cache", "get", "product:cli-1", "--json"), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "value"), "{\"name\":\"tea\"}");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "age_ms")));
    cJSON_Delete(j);
    free(out);
    assert_int_equal(cli(&out, "cache", "get", "product:cli-1", NULL), 0);
    /* The value on stdout, its age on stderr (both land in out here). */
    assert_non_null(strstr(out, "{\"name\":\"tea\"}\n"));
    assert_non_null(strstr(out, "(local copy, confirmed by Redis "));
    free(out);

    /* Options the command does not know are a usage error. */
    assert_int_equal(cli(&out, "status", "--bogus", NULL, NULL), 64);
    free(out);
    assert_int_equal(cli(&out, "outbox", "--all", NULL, NULL), 64);
    free(out);
}

/* "Permission denied" said as such, apart from "not running". */
static void test_cli_not_running_vs_permission(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL, want[600];

    /* No socket at all. */
    snprintf(sock_path, sizeof(sock_path), "%s/posagent-none.sock", tmpdir);
    assert_int_equal(cli(&out, "status", NULL, NULL, NULL), 69);
    snprintf(want, sizeof(want), "posagent is not running (no socket at %s)", sock_path);
    assert_non_null(strstr(out, want));
    free(out);
    /* A socket file nobody listens on (an agent that crashed). */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(sock_path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(cli(&out, "journal", "--json", NULL, NULL), 69);
    assert_non_null(strstr(out, "posagent is not running (no socket at"));
    free(out);

    /* The agent runs, but the socket is not for this user. */
    cli_agent_start(f, 100);
    assert_int_equal(chmod(f->agent.dir, 0711), 0);
    assert_int_equal(chmod(sock_path, 0600), 0);
    snprintf(want, sizeof(want), "permission denied on %s (is your user in [local] socket_group?)",
             sock_path);
    if (geteuid() != 0) {
        assert_int_equal(chmod(sock_path, 0), 0); /* the owner needs write permission too */
        assert_int_equal(cli(&out, "status", NULL, NULL, NULL), 77);
    } else if (as_nobody_works()) {
        assert_int_equal(cli_as_nobody(&out, "status", NULL), 77);
    } else {
        skip(); /* root passes every permission check, and nobody cannot run the binary */
    }
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "not running"));
    free(out);
    /* ... nor is its directory. */
    if (as_nobody_works()) {
        assert_int_equal(chmod(f->agent.dir, 0700), 0);
        assert_int_equal(cli_as_nobody(&out, "devices", NULL), 77);
        assert_non_null(strstr(out, want));
        free(out);
    }
    assert_int_equal(chmod(sock_path, 0600), 0);
    assert_int_equal(chmod(f->agent.dir, 0700), 0);
    assert_int_equal(cli(&out, "status", NULL, NULL, NULL), 0);
    free(out);
}

/* What a simulated device's file must come to show. */
typedef struct sim_wait {
    pos_fix_t *f;
    const char *file, *needle;
} sim_wait_t;

static bool sim_has(void *arg)
{
    sim_wait_t *w = arg;
    char *text = pos_fix_sim_text(w->f, w->file);
    bool found = strstr(text, w->needle) != NULL;
    free(text);
    return found;
}

/* True once the simulated device's file holds needle (within 5 s). */
static bool sim_shows(pos_fix_t *f, const char *file, const char *needle)
{
    sim_wait_t w = {f, file, needle};
    return pos_test_poll(sim_has, &w, 50, 5000) >= 0;
}

static void test_cli_devices(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL;

    cli_agent_start(f, 100);
    assert_int_equal(cli(&out, "devices", "--json", NULL, NULL), 0);
    cJSON *j = json_of(out);
    assert_string_equal(jstr(j, "display"), "ready");
    assert_string_equal(jstr(j, "printer"), "ready");
    assert_string_equal(jstr(j, "pinpad"), "ready");
    cJSON_Delete(j);
    free(out);
    assert_int_equal(cli(&out, "devices", NULL, NULL, NULL), 0);
    assert_string_equal(out, "display: ready\nprinter: ready\npinpad: ready\n");
    free(out);

    /* The tests make the till act: somebody else on the socket (the POS
     * application's group) is refused, and nothing is printed. */
    if (as_nobody_works()) {
        assert_int_equal(chmod(f->agent.dir, 0711), 0);
        assert_int_equal(chmod(sock_path, 0666), 0);
        assert_int_equal(cli_as_nobody(&out, "devices", "test-print"), 77);
        assert_non_null(strstr(out, "permission denied: a test print makes the till act"));
        free(out);
        assert_int_equal(cli_as_nobody(&out, "devices", "test-display"), 77);
        free(out);
        assert_int_equal(cli_as_nobody(&out, "devices", NULL), 0); /* reading is allowed */
        free(out);
        pos_fix_wait_log(f, "a test print refused: the peer (uid 65534)", 1, 5000);
        char *paper = pos_fix_sim_text(f, "receipts.txt");
        assert_null(strstr(paper, "posagent test print"));
        free(paper);
        assert_int_equal(chmod(sock_path, 0600), 0);
        assert_int_equal(chmod(f->agent.dir, 0700), 0);
    } else {
        fprintf(stderr, "not root, or nobody cannot run the binary: the refusal of another "
                        "user is not tried\n");
    }

    /* The owner may: a receipt and a message come out. */
    assert_int_equal(cli(&out, "devices", "test-print", "--json", NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "device"), "printer");
    cJSON_Delete(j);
    free(out);
    pos_fix_wait_log(f, "a test print on the printer", 1, 5000);
    assert_true(sim_shows(f, "receipts.txt", "posagent test print"));
    assert_true(sim_shows(f, "receipts.txt", "terminal " POS_FIX_TID));
    assert_int_equal(cli(&out, "devices", "test-display", NULL, NULL), 0);
    assert_non_null(strstr(out, "test sent to the display"));
    free(out);
    assert_true(sim_shows(f, "display.txt", "test display"));
    assert_int_equal(cli(&out, "devices", "test-scan", NULL, NULL), 64);
    free(out);
}

static bool journal_has_tx(void *arg)
{
    (void)arg;
    char *out = NULL;
    cli(&out, "journal", "--all", "--json", NULL);
    bool found = out != NULL && strstr(out, "\"transaction_id\":\"tx-cli\"") != NULL;
    free(out);
    return found;
}

/* Payments to reconcile: what a crash mid-payment leaves. */
static void test_cli_journal(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL;

    cli_agent_start(f, 60000); /* the customer takes their time at the pinpad */
    assert_int_equal(cli(&out, "journal", NULL, NULL, NULL), 0);
    assert_string_equal(out, "no payment needs reconciliation\n");
    free(out);
    assert_int_equal(cli(&out, "journal", "--json", NULL, NULL), 0);
    assert_string_equal(out, "[]\n");
    free(out);

    redisReply *r = pos_test_redis_cmd(&f->redis, "PUBLISH payment:" POS_FIX_TID " %s",
                                       "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":"
                                       "\"tx-cli\",\"amount\":9.99,\"currency\":\"EUR\"}");
    assert_non_null(r);
    freeReplyObject(r);
    /* Live: in the journal, not (yet) to reconcile. */
    assert_true(pos_test_poll(journal_has_tx, NULL, 50, 10000) >= 0);
    assert_int_equal(cli(&out, "journal", "--json", NULL, NULL), 0);
    assert_string_equal(out, "[]\n");
    free(out);

    /* Power lost while the customer is at the pinpad. */
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGKILL, 2000), 128 + SIGKILL);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_log(f, "was interrupted", 1, 10000);
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    redisFree(c);

    assert_int_equal(cli(&out, "journal", "--json", NULL, NULL), 0);
    cJSON *j = json_of(out);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    const cJSON *rec = cJSON_GetArrayItem(j, 0);
    assert_string_equal(jstr(rec, "transaction_id"), "tx-cli");
    assert_string_equal(jstr(rec, "state"), "UNKNOWN");
    assert_string_equal(jstr(rec, "amount"), "9.99");
    assert_string_equal(jstr(rec, "currency"), "EUR");
    assert_non_null(strstr(jstr(rec, "reconcile"), "ask the acquirer"));
    cJSON_Delete(j);
    free(out);
    assert_int_equal(cli(&out, "journal", NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, "tx-cli  UNKNOWN  EUR 9.99\n"));
    assert_non_null(strstr(out, "  reconcile: outcome unknown"));
    free(out);

    /* The journal holds card data (masked PANs, authorisation codes):
     * somebody else on the socket (the POS application's group) is
     * refused as for the device tests, and is shown none of it. */
    if (as_nobody_works()) {
        assert_int_equal(chmod(f->agent.dir, 0711), 0);
        assert_int_equal(chmod(sock_path, 0666), 0);
        const char *words[][2] = {{"journal", NULL}, {"journal", "--all"}, {"journal", "--json"}};
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
            assert_int_equal(cli_as_nobody(&out, words[i][0], words[i][1]), 77);
            assert_non_null(strstr(out, "permission denied: the payment journal"));
            assert_null(strstr(out, "tx-cli"));
            assert_null(strstr(out, "EUR"));
            free(out);
        }
        assert_int_equal(cli_as_nobody(&out, "devices", NULL), 0); /* the socket itself works */
        free(out);
        pos_fix_wait_log(f, "the payment journal refused: the peer (uid 65534)", 3, 5000);
        assert_int_equal(chmod(sock_path, 0600), 0);
        assert_int_equal(chmod(f->agent.dir, 0700), 0);
    } else {
        fprintf(stderr, "not root, or nobody cannot run the binary: the refusal of another "
                        "user is not tried\n");
    }
    /* The owner still may. */
    assert_int_equal(cli(&out, "journal", "--all", "--json", NULL), 0);
    assert_non_null(strstr(out, "\"transaction_id\":\"tx-cli\""));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_config_errors_exit_78),
        cmocka_unit_test(test_unsigned_refused_by_default),
        cmocka_unit_test(test_key_file_checked),
        cmocka_unit_test(test_accounts_checked),
        cmocka_unit_test(test_identity_from_dropins),
        cmocka_unit_test(test_check_config_masks_secrets),
        cmocka_unit_test(test_environment_only),
        cmocka_unit_test(test_docs_match_schema),
        POS_FIX_TEST(test_cli_status_outbox_cache_json),
        POS_FIX_TEST(test_cli_not_running_vs_permission),
        POS_FIX_TEST(test_cli_devices),
        POS_FIX_TEST(test_cli_journal),
    };
    pos_fix_filters_from_env();
    return cmocka_run_group_tests_name("cli", tests, setup, teardown);
}
