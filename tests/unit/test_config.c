/*
 * Unit tests for the configuration loader (conf/config.c): defaults, every
 * key's range edges, the environment, error messages, secrets, and the
 * checked-in example conf/posagent.ini.
 *
 * Run with POS_REGENERATE=1 to rewrite conf/posagent.ini from
 * pos_config_write_example().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/version.h>

#include <cmocka.h>

#include "conf/config.h"
#include "platform/log.h"

#define EXAMPLE_PATH POS_SOURCE_DIR "/conf/posagent.ini"
#define IDS          "[terminal]\nid = T-1\nstore_id = S-1\n"

static char *const no_env[] = {NULL};

/* ---- helpers ------------------------------------------------------------ */

/* Writes text to a new file under /tmp; the caller unlinks and frees the path. */
static char *write_tmp(const char *text, size_t len)
{
    char *path = strdup("/tmp/test_config-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

typedef struct result {
    int rc;
    pos_config_t cfg;
    pos_config_error_t err;
    char path[64];
} result_t;

/* Loads "text" from a temp file with the environment "envp". */
static int load_bytes(result_t *r, const char *text, size_t len, char *const *envp)
{
    char *path = write_tmp(text, len);
    snprintf(r->path, sizeof(r->path), "%s", path);
    memset(&r->err, 0, sizeof(r->err));
    r->rc = pos_config_load(&r->cfg, path, envp, &r->err);
    unlink(path);
    free(path);
    return r->rc;
}

static int load(result_t *r, const char *text, char *const *envp)
{
    return load_bytes(r, text, strlen(text), envp);
}

static void must_load(result_t *r, const char *text, char *const *envp)
{
    if (load(r, text, envp) != 0) {
        fail_msg("load failed (%d): %s\n--- file ---\n%s", r->rc, r->err.msg, text);
    }
}

/*
 * Expects -EINVAL with a one-line message that starts with "prefix" (a
 * line number, with the file name put in front when prefix starts with ':',
 * or NULL) and contains each of the NULL-terminated needles.
 */
static void expect_error(const result_t *r, const char *prefix, ...)
{
    char want[128];
    va_list ap;

    if (r->rc != -EINVAL) {
        fail_msg("expected -EINVAL, got %d: %s", r->rc, r->err.msg);
    }
    assert_null(strchr(r->err.msg, '\n'));
    if (prefix != NULL) {
        snprintf(want, sizeof(want), "%s%s", prefix[0] == ':' ? r->path : "", prefix);
        if (strncmp(r->err.msg, want, strlen(want)) != 0) {
            fail_msg("message \"%s\" does not start with \"%s\"", r->err.msg, want);
        }
    }
    va_start(ap, prefix);
    for (const char *n = va_arg(ap, const char *); n != NULL; n = va_arg(ap, const char *)) {
        if (strstr(r->err.msg, n) == NULL) {
            va_end(ap);
            fail_msg("message \"%s\" lacks \"%s\"", r->err.msg, n);
        }
    }
    va_end(ap);
}

static char *dump_to_string(const pos_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pos_config_dump(cfg, f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static char *example_to_string(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pos_config_write_example(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    int c;
    while ((c = getc(f)) != EOF) {
        fputc(c, m);
    }
    fclose(f);
    fclose(m);
    return buf;
}

/* ---- defaults ------------------------------------------------------------ */

static void check_defaults_except_password_db(const pos_config_t *c)
{
    assert_string_equal(c->redis_url, "redis://localhost:6379");
    assert_int_equal(c->retry_delay_ms, 100);
    assert_int_equal(c->max_retry_delay_ms, 3000);
    assert_int_equal(c->connect_timeout_ms, 2000);
    assert_int_equal(c->command_timeout_ms, 5000);
    assert_int_equal(c->heartbeat_interval_s, 20);
    assert_int_equal(c->heartbeat_ttl_s, 60);
    assert_int_equal(c->log_level, POS_LOG_INFO);
    assert_false(c->log_syslog);
    assert_false(c->redis.tls);
    assert_string_equal(c->redis.host, "localhost");
    assert_int_equal(c->redis.port, 6379);
    assert_string_equal(c->redis.user, "");
    assert_int_equal(c->redis.db, 0);
}

static void check_defaults(const pos_config_t *c)
{
    check_defaults_except_password_db(c);
    assert_string_equal(c->redis_password, "");
    assert_false(c->redis_password_set);
    assert_int_equal(c->redis_db, -1);
    assert_string_equal(c->redis.password, "");
}

static void test_defaults(void **state)
{
    (void)state;
    pos_config_t c;
    memset(&c, 0x5a, sizeof(c));
    pos_config_defaults(&c);
    check_defaults(&c);
    assert_string_equal(c.terminal_id, "");
    assert_string_equal(c.store_id, "");
    /* The local API's admission: a busy POS application never meets it. */
    assert_int_equal(c.local_client_rate, 1000);
    assert_int_equal(c.local_client_burst, 10000);
    assert_int_equal(c.local_commands_per_turn, 256);
    assert_int_equal(c.local_idle_timeout_s, 300);
    assert_int_equal(c.local_stall_timeout_s, 10);
}

static void test_minimal_file(void **state)
{
    (void)state;
    result_t r;
    must_load(&r, IDS, no_env);
    check_defaults(&r.cfg);
    assert_string_equal(r.cfg.terminal_id, "T-1");
    assert_string_equal(r.cfg.store_id, "S-1");
}

static void test_no_file_env_only(void **state)
{
    (void)state;
    char *env[] = {"POSAGENT_TERMINAL_ID=T-9", "POSAGENT_STORE_ID=S-9", "PATH=/bin", NULL};
    pos_config_t c;
    pos_config_error_t e;
    assert_int_equal(pos_config_load(&c, NULL, env, &e), 0);
    check_defaults(&c);
    assert_string_equal(c.terminal_id, "T-9");
    assert_string_equal(c.store_id, "S-9");
}

/* ---- numbers: every key, every edge --------------------------------------- */

typedef struct num_key {
    const char *section;
    const char *key;
    long min, max;
    size_t offset;
    bool is_int;       /* int rather than uint32_t */
    const char *extra; /* lines that keep the cross-field checks happy at the edges */
} num_key_t;

#define OFF(f) offsetof(pos_config_t, f)

static const num_key_t num_keys[] = {
    {"redis", "db", 0, 1023, OFF(redis_db), true, ""},
    {"redis", "retry_delay_ms", 1, 60000, OFF(retry_delay_ms), false,
     "max_retry_delay_ms = 600000\n"},
    {"redis", "max_retry_delay_ms", 1, 600000, OFF(max_retry_delay_ms), false,
     "retry_delay_ms = 1\n"},
    {"redis", "connect_timeout_ms", 100, 60000, OFF(connect_timeout_ms), false, ""},
    {"redis", "command_timeout_ms", 100, 60000, OFF(command_timeout_ms), false, ""},
    {"heartbeat", "interval_s", 1, 3600, OFF(heartbeat_interval_s), false, "ttl_s = 86400\n"},
    {"heartbeat", "ttl_s", 2, 86400, OFF(heartbeat_ttl_s), false, "interval_s = 1\n"},
};

static long get_num(const pos_config_t *c, const num_key_t *k)
{
    if (k->is_int) {
        int v;
        memcpy(&v, (const char *)c + k->offset, sizeof(v));
        return v;
    }
    uint32_t v;
    memcpy(&v, (const char *)c + k->offset, sizeof(v));
    return (long)v;
}

/* The key is on line 5: IDS is 3 lines, then the section header. */
static int load_num(result_t *r, const num_key_t *k, const char *value)
{
    char text[512];
    snprintf(text, sizeof(text), IDS "[%s]\n%s = %s\n%s", k->section, k->key, value, k->extra);
    return load(r, text, no_env);
}

static void test_number_edges(void **state)
{
    (void)state;
    static const char *const not_numbers[] = {"abc", "12abc", "+5",  "0x10", "1e3",
                                              "5.0", "-",     "--1", "1 2",  "\"5\""};
    for (size_t i = 0; i < sizeof(num_keys) / sizeof(num_keys[0]); i++) {
        const num_key_t *k = &num_keys[i];
        char v[64], head[64], allowed[64];
        result_t r;

        snprintf(head, sizeof(head), ":5: [%s] %s: ", k->section, k->key);
        snprintf(allowed, sizeof(allowed), "(allowed: %ld..%ld)", k->min, k->max);

        snprintf(v, sizeof(v), "%ld", k->min);
        if (load_num(&r, k, v) != 0) {
            fail_msg("[%s] %s = %s: %s", k->section, k->key, v, r.err.msg);
        }
        assert_int_equal(get_num(&r.cfg, k), k->min);

        snprintf(v, sizeof(v), "%ld", k->max);
        if (load_num(&r, k, v) != 0) {
            fail_msg("[%s] %s = %s: %s", k->section, k->key, v, r.err.msg);
        }
        assert_int_equal(get_num(&r.cfg, k), k->max);

        snprintf(v, sizeof(v), "%ld", k->min - 1);
        load_num(&r, k, v);
        expect_error(&r, head, "out of range", allowed, NULL);

        snprintf(v, sizeof(v), "%ld", k->max + 1);
        load_num(&r, k, v);
        expect_error(&r, head, "out of range", allowed, v, NULL);

        load_num(&r, k, "99999999999999999999999");
        expect_error(&r, head, "out of range", NULL);

        load_num(&r, k, "-0");
        expect_error(&r, head, "out of range", NULL);

        for (size_t j = 0; j < sizeof(not_numbers) / sizeof(not_numbers[0]); j++) {
            load_num(&r, k, not_numbers[j]);
            expect_error(&r, head, "\": not a number", allowed, NULL);
        }
        load_num(&r, k, "");
        expect_error(&r, head, "not a number", NULL);
    }
}

/* ---- booleans, levels, ids ------------------------------------------------ */

static void test_bool_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool value;
    } cases[] = {{"true", true}, {"false", false}, {"yes", true}, {"no", false},  {"on", true},
                 {"off", false}, {"1", true},      {"0", false},  {"TRUE", true}, {"Off", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        result_t r;
        snprintf(text, sizeof(text), IDS "[log]\nsyslog = %s\n", cases[i].text);
        must_load(&r, text, no_env);
        assert_int_equal(r.cfg.log_syslog, cases[i].value);
    }
    result_t r;
    load(&r, IDS "[log]\nsyslog = maybe\n", no_env);
    expect_error(&r, ":5: [log] syslog: ", "\"maybe\": not a boolean", "true, false", NULL);
    load(&r, IDS "[log]\nsyslog = 2\n", no_env);
    expect_error(&r, ":5: [log] syslog: ", NULL);
}

static void test_log_levels(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int level;
    } cases[] = {{"error", POS_LOG_ERROR},
                 {"warn", POS_LOG_WARN},
                 {"info", POS_LOG_INFO},
                 {"debug", POS_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        result_t r;
        snprintf(text, sizeof(text), IDS "[log]\nlevel = %s\n", cases[i].name);
        must_load(&r, text, no_env);
        assert_int_equal(r.cfg.log_level, cases[i].level);
    }
    result_t r;
    load(&r, IDS "[log]\nlevel = verbose\n", no_env);
    expect_error(&r, ":5: [log] level: ", "verbose", "error, warn, info, debug", NULL);
}

static void test_ids(void **state)
{
    (void)state;
    result_t r;
    char text[512], id63[64];

    memset(id63, 'a', 63);
    id63[63] = '\0';
    snprintf(text, sizeof(text), "[terminal]\nid = %s\nstore_id = Az09._-\n", id63);
    must_load(&r, text, no_env);
    assert_string_equal(r.cfg.terminal_id, id63);
    assert_string_equal(r.cfg.store_id, "Az09._-");

    snprintf(text, sizeof(text), "[terminal]\nid = %sa\nstore_id = S\n", id63);
    load(&r, text, no_env);
    expect_error(&r, ":2: [terminal] id: ", "too long", "1..63 characters", NULL);

    /* Characters that would break Redis key, channel or pattern names. */
    static const char *const bad[] = {"T*1", "T?1",  "T[1]", "T:1",       "T 1",   "T{1}",
                                      "T/1", "T\\1", "T@1",  "T\xc3\xa9", "\"T1\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "[terminal]\nid = T\nstore_id = %s\n", bad[i]);
        load(&r, text, no_env);
        expect_error(&r, ":3: [terminal] store_id: ", "\": invalid", "(allowed: 1..63", NULL);
    }

    load(&r, "[terminal]\nid =\nstore_id = S\n", no_env);
    expect_error(&r, ":2: [terminal] id: ", "empty", NULL);
}

static void test_missing_required(void **state)
{
    (void)state;
    result_t r;
    /* Issue 13 item 3: the message says how to provision the ids. */
    load(&r, "[terminal]\nstore_id = S-1\n", no_env);
    expect_error(&r, ": this till's identity is not set ([terminal] id is required): give each till "
                     "its own ids in a drop-in, ",
                 r.path, ".d/10-identity.ini", "POSAGENT_TERMINAL_ID", NULL);

    load(&r, "[terminal]\nid = T-1\n", no_env);
    expect_error(&r, ": this till's identity is not set ([terminal] store_id is required)",
                 "POSAGENT_STORE_ID", NULL);

    load(&r, "", no_env);
    expect_error(&r, ": this till's identity is not set ([terminal] id is required)", NULL);

    pos_config_t c;
    pos_config_error_t e;
    assert_int_equal(pos_config_load(&c, NULL, NULL, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "(no configuration file): this till's identity is not set"));
    assert_non_null(strstr(e.msg, "/etc/posagent/posagent.d/10-identity.ini"));

    /* The environment satisfies the requirement. */
    char *env[] = {"POSAGENT_TERMINAL_ID=T-7", NULL};
    must_load(&r, "[terminal]\nstore_id = S-1\n", env);
    assert_string_equal(r.cfg.terminal_id, "T-7");
}

/* ---- structure errors ----------------------------------------------------- */

static void test_unknown_and_duplicate(void **state)
{
    (void)state;
    result_t r;

    load(&r, IDS "[redis]\nurll = redis://h\n", no_env);
    expect_error(&r, ":5: [redis] urll: unknown key", "allowed: url, password, db", NULL);

    load(&r, IDS "[redis]\nURL = redis://h\n", no_env);
    expect_error(&r, ":5: [redis] URL: unknown key", NULL);

    load(&r, IDS "[hall]\n", no_env);
    expect_error(
        &r, ":4: [hall]: unknown section",
        "terminal, redis, tls, heartbeat, hal, payment, store, cache, local, inbound, metrics, log",
        NULL);

    load(&r, IDS "; comment\n[ redis ]\nurl = redis://h\n", no_env);
    expect_error(&r, ":5: [ redis ]: unknown section", NULL);

    load(&r, "id = T-1\n" IDS, no_env);
    expect_error(&r, ":1: id: key outside any section", NULL);

    load(&r, IDS "[redis]\ndb = 1\n\n# x\ndb = 2\n", no_env);
    expect_error(&r, ":8: [redis] db: duplicate key (first set on line 5)", NULL);

    /* A repeated section is fine; a key repeated across its blocks is not. */
    load(&r, IDS "[terminal]\nid = T-2\n", no_env);
    expect_error(&r, ":5: [terminal] id: duplicate key (first set on line 2)", NULL);
    must_load(&r, "[terminal]\nid = T-1\n[log]\nlevel = warn\n[terminal]\nstore_id = S\n", no_env);
    assert_int_equal(r.cfg.log_level, POS_LOG_WARN);

    load(&r, IDS "[redis]\nthis line has no equals sign\n", no_env);
    expect_error(&r, ":5: syntax error", NULL);

    load(&r, IDS "[redis\nurl = redis://h\n", no_env);
    expect_error(&r, ":4: syntax error", NULL);
}

static void test_file_syntax(void **state)
{
    (void)state;
    result_t r;

    /* Indentation, comments, CRLF, BOM, and ':' as in Python's configparser. */
    must_load(&r,
              "\xef\xbb\xbf; leading comment\r\n"
              "# another\r\n"
              "  [terminal]\r\n"
              "\tid = T-1 ; inline comment\r\n"
              "    store_id=S-1\r\n"
              "[heartbeat]\n"
              "  interval_s = 5\n"
              "  ttl_s: 30\n",
              no_env);
    assert_string_equal(r.cfg.terminal_id, "T-1");
    assert_string_equal(r.cfg.store_id, "S-1");
    assert_int_equal(r.cfg.heartbeat_interval_s, 5);
    assert_int_equal(r.cfg.heartbeat_ttl_s, 30);

    /* Control characters and NUL bytes are refused with the line number. */
    load(&r,
         IDS "[log]\nlevel = in\x01"
             "fo\n",
         no_env);
    expect_error(&r, ":5: control character 0x01", NULL);
    static const char with_nul[] = IDS "[log]\nlevel = in\0fo\n";
    load_bytes(&r, with_nul, sizeof(with_nul) - 1, no_env);
    expect_error(&r, ":5: control character 0x00", NULL);
    load(&r,
         IDS "[log]\nlevel = in\x1f"
             "fo\n",
         no_env);
    expect_error(&r, ":5: control character 0x1f", NULL);
    load(&r,
         IDS "[log]\nlevel = in\x7f"
             "fo\n",
         no_env);
    expect_error(&r, ":5: control character 0x7f", NULL);
    load(&r, IDS "[log]\nlevel = info\rsyslog = on\n", no_env);
    expect_error(&r, ":5: control character 0x0d", NULL);
}

static void test_long_lines(void **state)
{
    (void)state;
    char text[1024];
    result_t r;

    /* "password = " is 11 characters: 188 more make a line of 199, the most inih holds. */
    int n = snprintf(text, sizeof(text), IDS "[redis]\npassword = ");
    memset(text + n, 'p', 188);
    strcpy(text + n + 188, "\n[log]\nlevel = debug\n");
    must_load(&r, text, no_env);
    assert_int_equal(strlen(r.cfg.redis_password), 188);
    assert_int_equal(r.cfg.log_level, POS_LOG_DEBUG);

    /* One more is refused, never truncated nor split into two lines. */
    memset(text + n, 'p', 189);
    strcpy(text + n + 189, "\n[log]\nlevel = debug\n");
    load(&r, text, no_env);
    expect_error(&r, ":5: line too long (max 199 characters", NULL);
    assert_null(strstr(r.err.msg, "ppp"));
}

static void test_unreadable(void **state)
{
    (void)state;
    pos_config_t c;
    pos_config_error_t e;
    const char *path = "/tmp/test_config-does-not-exist/posagent.ini";
    assert_int_equal(pos_config_load(&c, path, no_env, &e), -ENOENT);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "No such file"));

    /* A directory is not a configuration file. */
    int rc = pos_config_load(&c, "/tmp", no_env, &e);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(e.msg, "/tmp: not a regular file (a directory)"));
}

/* Issue 13 item 13: a configuration file that was a FIFO with no writer
 * hung the agent for ever. It is refused at once, as any file that is not
 * a regular one. */
static void test_fifo_refused_at_once(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_config-XXXXXX", path[64];
    pos_config_t c;
    pos_config_error_t e;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/posagent.ini", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(pos_config_load(&c, path, no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "not a regular file (a FIFO)"));
    unlink(path);
    rmdir(dir);
    /* A device too. */
    assert_int_equal(pos_config_load(&c, "/dev/null", no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "/dev/null: not a regular file (a device)"));
}

/* Issue 13 item 13: "\"relative/store\" is must be an absolute path". */
static void test_relative_path_message(void **state)
{
    (void)state;
    result_t r;
    load(&r, IDS "[store]\npath = relative/store\n", no_env);
    expect_error(&r, ":5: [store] path: ",
                 "\"relative/store\": a relative path: it must start with '/' (allowed: an "
                 "absolute path)",
                 NULL);
    load(&r, IDS "[store]\npath = /var/lib/../tmp\n", no_env);
    expect_error(&r, ":5: [store] path: ", "a path with '..' in it", NULL);
}

/* ---- drop-ins ----------------------------------------------------------- */

static void put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/*
 * Issue 13 item 3: an image ships one posagent.ini without ids; each till
 * carries its identity and secrets in small files of its own beside it,
 * read in name order after it, and --check-config says which file and
 * line set each value.
 */
static void test_dropins(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_config-dropin-XXXXXX", main_path[128], dropins[128], out[8192];
    pos_config_t c;
    pos_config_error_t e;

    assert_non_null(mkdtemp(dir));
    snprintf(main_path, sizeof(main_path), "%s/posagent.ini", dir);
    snprintf(dropins, sizeof(dropins), "%s/posagent.d", dir);
    put_file(dir, "posagent.ini", "[redis]\nurl = redis://cache:6379\n[log]\nlevel = warn\n", 0640);
    /* Without its drop-ins, the image's file alone is no till. */
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "this till's identity is not set"));
    assert_non_null(strstr(e.msg, dropins));

    assert_int_equal(mkdir(dropins, 0755), 0);
    put_file(dropins, "10-identity.ini", "[terminal]\nid = T-9\nstore_id = S-0\n", 0644);
    put_file(dropins, "20-secrets.ini", "[redis]\npassword = dropin-s3cr3t\n", 0600);
    put_file(dropins, "30-store.ini", "[terminal]\nstore_id = S-9\n", 0644);
    put_file(dropins, "README", "not ini at all\n", 0644);
    put_file(dropins, ".hidden.ini", "not ini at all\n", 0644);
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), 0);
    assert_string_equal(c.terminal_id, "T-9");
    assert_string_equal(c.store_id, "S-9"); /* the later drop-in wins */
    assert_string_equal(c.redis.password, "dropin-s3cr3t");
    assert_int_equal(c.log_level, POS_LOG_WARN); /* the main file's still */
    assert_int_equal(c.nfiles, 4);
    assert_string_equal(c.files[0].path, main_path);
    assert_false(c.files[0].dropin);
    assert_true(c.files[1].dropin);
    assert_false(c.files[1].secrets);
    assert_true(c.files[2].secrets);
    assert_non_null(strstr(c.files[3].path, "/30-store.ini"));

    /* Which file and line set each value; secrets still masked. */
    FILE *m = fmemopen(out, sizeof(out), "w");
    assert_non_null(m);
    pos_config_dump(&c, m);
    fclose(m);
    char want[256];
    snprintf(want, sizeof(want), "\nid = T-9  ; %s/10-identity.ini:2\n", dropins);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "\nstore_id = S-9  ; %s/30-store.ini:2\n", dropins);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "\nlevel = warn  ; %s:4\n", main_path);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "\nttl_s = 60\n")); /* a default: no origin */
    snprintf(want, sizeof(want), "; read %s/20-secrets.ini (drop-in)\n", dropins);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "s3cr3t"));
    pos_config_wipe(&c);
    /* The environment still wins, and says so. */
    char *env[] = {"POSAGENT_STORE_ID=S-E", NULL};
    assert_int_equal(pos_config_load(&c, main_path, env, &e), 0);
    assert_string_equal(c.store_id, "S-E");
    m = fmemopen(out, sizeof(out), "w");
    pos_config_dump(&c, m);
    fclose(m);
    assert_non_null(strstr(out, "\nstore_id = S-E  ; environment POSAGENT_STORE_ID\n"));

    /* Named elsewhere, or none at all. */
    assert_int_equal(pos_config_load_dir(&c, main_path, "", no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "identity is not set"));
    assert_int_equal(pos_config_load_dir(&c, main_path, dropins, no_env, &e), 0);
    assert_int_equal(pos_config_load_dir(&c, NULL, dropins, no_env, &e), 0);
    assert_string_equal(c.terminal_id, "T-9");

    /* Twice in one drop-in is a mistake, named with its file and line. */
    put_file(dropins, "40-twice.ini", "[log]\nlevel = info\nlevel = debug\n", 0644);
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EINVAL);
    snprintf(want, sizeof(want), "%s/40-twice.ini:3: [log] level: duplicate key", dropins);
    assert_non_null(strstr(e.msg, want));
    put_file(dropins, "40-twice.ini", "[log]\nlevel = debug\n", 0644);

    /* Writable by others than its owner: refused. */
    put_file(dropins, "50-open.ini", "[log]\nlevel = debug\n", 0664);
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EPERM);
    assert_non_null(strstr(e.msg, "50-open.ini: writable by its group"));
    put_file(dropins, "50-open.ini", "[log]\nlevel = debug\n", 0646);
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EPERM);
    assert_non_null(strstr(e.msg, "writable by everybody"));
    put_file(dropins, "50-open.ini", "[log]\nlevel = debug\n", 0644);

    /* A link or a FIFO is not a drop-in (and a FIFO never hangs the load). */
    char link[256], fifo[256];
    snprintf(link, sizeof(link), "%s/60-link.ini", dropins);
    assert_int_equal(symlink(main_path, link), 0);
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "60-link.ini: a symbolic link"));
    unlink(link);
    snprintf(fifo, sizeof(fifo), "%s/70-fifo.ini", dropins);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "70-fifo.ini: not a regular file (a FIFO)"));
    unlink(fifo);

    /* Someone else's file: refused (root can give it away to check). */
    if (geteuid() == 0) {
        char other[256];
        snprintf(other, sizeof(other), "%s/80-other.ini", dropins);
        put_file(dropins, "80-other.ini", "[log]\nlevel = debug\n", 0644);
        assert_int_equal(chown(other, 4242, 4242), 0);
        assert_int_equal(pos_config_load(&c, main_path, no_env, &e), -EPERM);
        assert_non_null(strstr(e.msg, "80-other.ini: owned by uid 4242"));
    }
    pos_config_wipe(&c);
    rm_rf(dir);
}

/* ---- environment ---------------------------------------------------------- */

static void test_env_precedence(void **state)
{
    (void)state;
    static const char file[] = IDS "[redis]\n"
                                   "url = redis://file-host:1111/1\n"
                                   "password = file-pw\n"
                                   "db = 2\n"
                                   "retry_delay_ms = 200\n"
                                   "max_retry_delay_ms = 4000\n";
    result_t r;

    must_load(&r, file, no_env);
    assert_string_equal(r.cfg.redis.host, "file-host");
    assert_int_equal(r.cfg.redis.port, 1111);
    assert_string_equal(r.cfg.redis.password, "file-pw");
    assert_int_equal(r.cfg.redis.db, 2);
    assert_int_equal(r.cfg.retry_delay_ms, 200);
    assert_int_equal(r.cfg.max_retry_delay_ms, 4000);

    char *env[] = {"POSAGENT_TERMINAL_ID=T-env",
                   "POSAGENT_STORE_ID=S-env",
                   "REDIS_URL=rediss://env-host:2222/3",
                   "POSAGENT_TLS_CA_FILE=" POS_SOURCE_DIR "/README.md", /* any readable file */
                   "REDIS_PASSWORD=env-pw",
                   "REDIS_DB=4",
                   "REDIS_RETRY_DELAY_ON_FAILURE_MS=300",
                   "REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS=5000",
                   "REDIS_DB=9", /* like getenv(), the first one wins */
                   NULL};
    must_load(&r, file, env);
    assert_string_equal(r.cfg.terminal_id, "T-env");
    assert_string_equal(r.cfg.store_id, "S-env");
    assert_string_equal(r.cfg.redis_url, "rediss://env-host:2222/3");
    assert_true(r.cfg.redis.tls);
    assert_string_equal(r.cfg.redis.host, "env-host");
    assert_int_equal(r.cfg.redis.port, 2222);
    assert_string_equal(r.cfg.redis.password, "env-pw");
    assert_int_equal(r.cfg.redis_db, 4);
    assert_int_equal(r.cfg.redis.db, 4);
    assert_int_equal(r.cfg.retry_delay_ms, 300);
    assert_int_equal(r.cfg.max_retry_delay_ms, 5000);

    /* Names must match exactly. */
    char *near[] = {"REDIS_DBX=7", "REDIS_D=7", "redis_db=7", NULL};
    must_load(&r, file, near);
    assert_int_equal(r.cfg.redis.db, 2);
}

/* [cache] max_value_bytes: the default, the file, the environment, the range. */
static void test_max_value_bytes(void **state)
{
    (void)state;
    result_t r;
    char *env[] = {"POSAGENT_CACHE_MAX_VALUE_BYTES=65536", NULL};
    char *env_big[] = {"POSAGENT_CACHE_MAX_VALUE_BYTES=524289", NULL};

    must_load(&r, IDS, no_env);
    assert_int_equal(r.cfg.cache_max_value_bytes, 262144);
    must_load(&r, IDS "[cache]\nmax_value_bytes = 100000\n", no_env);
    assert_int_equal(r.cfg.cache_max_value_bytes, 100000);
    must_load(&r, IDS "[cache]\nmax_value_bytes = 100000\n", env);
    assert_int_equal(r.cfg.cache_max_value_bytes, 65536);
    load(&r, IDS "[cache]\nmax_value_bytes = 1023\n", no_env);
    expect_error(&r, NULL, "max_value_bytes", "1024..524288", NULL);
    load(&r, IDS, env_big);
    expect_error(&r, NULL, "POSAGENT_CACHE_MAX_VALUE_BYTES", NULL);
}

static void test_url_password_db_overrides(void **state)
{
    (void)state;
    result_t r;
    const char *url = IDS "[redis]\nurl = redis://u:url-pw@h/5\n";
    char text[256];

    must_load(&r, url, no_env);
    assert_string_equal(r.cfg.redis.user, "u");
    assert_string_equal(r.cfg.redis.password, "url-pw");
    assert_int_equal(r.cfg.redis.db, 5);
    assert_int_equal(r.cfg.redis_db, -1);

    snprintf(text, sizeof(text), "%spassword = file-pw\ndb = 6\n", url);
    must_load(&r, text, no_env);
    assert_string_equal(r.cfg.redis.password, "file-pw");
    assert_int_equal(r.cfg.redis.db, 6);

    char *env_pw[] = {"REDIS_PASSWORD=env-pw", "REDIS_DB=0", NULL};
    must_load(&r, text, env_pw);
    assert_string_equal(r.cfg.redis.password, "env-pw");
    assert_int_equal(r.cfg.redis.db, 0);

    /* Empty counts as set: no password at all, even though the URL has one. */
    char *env_empty[] = {"REDIS_PASSWORD=", NULL};
    must_load(&r, url, env_empty);
    assert_true(r.cfg.redis_password_set);
    assert_string_equal(r.cfg.redis.password, "");
    must_load(&r, IDS "[redis]\nurl = redis://:url-pw@h\npassword =\n", no_env);
    assert_string_equal(r.cfg.redis.password, "");

    /* No /db anywhere: 0. */
    must_load(&r, IDS "[redis]\nurl = redis://h/\n", no_env);
    assert_int_equal(r.cfg.redis.db, 0);
}

static void test_env_bad_values(void **state)
{
    (void)state;
    result_t r;

    char *db_abc[] = {"REDIS_DB=abc", NULL};
    load(&r, IDS, db_abc);
    expect_error(&r, NULL, NULL);
    assert_string_equal(r.err.msg, "environment REDIS_DB=\"abc\": not a number (allowed: 0..1023)");

    char *db_empty[] = {"REDIS_DB=", NULL};
    load(&r, IDS, db_empty);
    expect_error(&r, "environment REDIS_DB=\"\": not a number", NULL);

    char *db_big[] = {"REDIS_DB=1024", NULL};
    load(&r, IDS, db_big);
    expect_error(&r, "environment REDIS_DB=\"1024\": out of range (allowed: 0..1023)", NULL);

    char *retry[] = {"REDIS_RETRY_DELAY_ON_FAILURE_MS=0", NULL};
    load(&r, IDS, retry);
    expect_error(&r, "environment REDIS_RETRY_DELAY_ON_FAILURE_MS=\"0\": out of range", NULL);

    char *maxr[] = {"REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS= 5000", NULL};
    load(&r, IDS, maxr);
    expect_error(&r, "environment REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS=\" 5000\": not a number",
                 NULL);

    char *id[] = {"POSAGENT_TERMINAL_ID=T:1\n", NULL};
    load(&r, IDS, id);
    expect_error(&r, "environment POSAGENT_TERMINAL_ID=\"T:1\\x0a\": invalid", NULL);

    char *id_empty[] = {"POSAGENT_STORE_ID=", NULL};
    load(&r, IDS, id_empty);
    expect_error(&r, "environment POSAGENT_STORE_ID=\"\": empty", NULL);

    char *url[] = {"REDIS_URL=redis://:hunter2@h:0", NULL};
    load(&r, IDS, url);
    expect_error(&r, "environment REDIS_URL: invalid: port", NULL);
    assert_null(strstr(r.err.msg, "hunter2"));

    char long_pw[POS_URL_PASS_MAX + 32];
    snprintf(long_pw, sizeof(long_pw), "REDIS_PASSWORD=");
    memset(long_pw + 15, 'h', POS_URL_PASS_MAX);
    long_pw[15 + POS_URL_PASS_MAX] = '\0';
    char *pw[] = {long_pw, NULL};
    load(&r, IDS, pw);
    expect_error(&r, "environment REDIS_PASSWORD: too long (256 bytes, max 255)", NULL);
    assert_null(strstr(r.err.msg, "hhhh"));
    long_pw[15 + POS_URL_PASS_MAX - 1] = '\0';
    must_load(&r, IDS, pw);
    assert_int_equal(strlen(r.cfg.redis.password), POS_URL_PASS_MAX - 1);

    /* The environment is checked after the file: a bad file wins. */
    load(&r, IDS "[redis]\ndb = x\n", db_abc);
    expect_error(&r, ":5: [redis] db: ", NULL);
}

/* ---- URL, secrets --------------------------------------------------------- */

static void test_url_errors_hide_password(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "redis://:topsecret@h:99999", "http://:topsecret@h",     "redis://topsecret@h",
        "redis://:topsecret@h?x=1",   "redis://:top%zzsecret@h", "redis://:topsecret@[::1",
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        char text[256];
        result_t r;
        snprintf(text, sizeof(text), IDS "[redis]\nurl = %s\n", urls[i]);
        load(&r, text, no_env);
        expect_error(&r, ":5: [redis] url: invalid: ", "(allowed: redis://", NULL);
        if (strstr(r.err.msg, "secret") != NULL) {
            fail_msg("%s leaks the password: %s", urls[i], r.err.msg);
        }
    }
    result_t r;
    load(&r, IDS "[redis]\nurl =\n", no_env);
    expect_error(&r, ":5: [redis] url: empty", NULL);
}

static void test_password_errors_hide_password(void **state)
{
    (void)state;
    char text[1024];
    result_t r;
    /* A password line that is fine, then a cross-field error: the message names keys only. */
    snprintf(text, sizeof(text), IDS "[redis]\npassword = s3cr3t\nretry_delay_ms = 5000\n");
    load(&r, text, no_env);
    expect_error(&r, ": [redis] max_retry_delay_ms: 3000 must not be less than",
                 "retry_delay_ms = 5000", ":6)", NULL);
    assert_null(strstr(r.err.msg, "s3cr3t"));
    /* A failed load leaves no secret behind in the scratch config. */
    assert_string_equal(r.cfg.redis_password, "");
    assert_string_equal(r.cfg.redis.password, "");
}

static void test_dump_masks_secrets(void **state)
{
    (void)state;
    result_t r;
    must_load(&r,
              IDS "[redis]\nurl = rediss://alice:url-s3cr3t@cache:6380/3\n"
                  "password = file-s3cr3t\n[tls]\nca_file = " POS_SOURCE_DIR "/README.md\n",
              no_env);
    char *d = dump_to_string(&r.cfg);
    assert_null(strstr(d, "s3cr3t"));
    assert_non_null(strstr(d, "\nid = T-1  ; "));
    assert_non_null(strstr(d, "\nstore_id = S-1  ; "));
    assert_non_null(strstr(d, "\nurl = rediss://alice:****@cache:6380/3  ; "));
    assert_non_null(strstr(d, "\npassword = ****  ; "));
    assert_non_null(strstr(d, "\n; db = (not set)\n"));
    assert_non_null(strstr(d, "\nlevel = info\n"));
    assert_non_null(strstr(d, "\nsyslog = false\n"));
    assert_non_null(strstr(d, "\nttl_s = 60\n"));
    assert_non_null(strstr(d, "effective Redis endpoint: rediss://alice:****@cache:6380/3\n"));
    free(d);

    /* Without any password, nothing pretends there is one. */
    must_load(&r, IDS, no_env);
    d = dump_to_string(&r.cfg);
    assert_null(strstr(d, "****"));
    assert_non_null(strstr(d, "\n; password = (not set)\n"));
    free(d);
}

static void test_dump_reloads(void **state)
{
    (void)state;
    result_t r, again;
    must_load(&r,
              IDS "[redis]\ndb = 7\nconnect_timeout_ms = 150\n[heartbeat]\ninterval_s = 9\n"
                  "[log]\nsyslog = yes\nlevel = error\n",
              no_env);
    char *d = dump_to_string(&r.cfg);
    must_load(&again, d, no_env);
    free(d);
    assert_int_equal(again.cfg.redis_db, 7);
    assert_int_equal(again.cfg.connect_timeout_ms, 150);
    assert_int_equal(again.cfg.heartbeat_interval_s, 9);
    assert_true(again.cfg.log_syslog);
    assert_int_equal(again.cfg.log_level, POS_LOG_ERROR);
}

/* A reload's comparison: what changed, and whether a running agent applies it. */
typedef struct change_log {
    char text[512];
    size_t reloadable;
} change_log_t;

static void note_change(void *ctx, const char *section, const char *key, bool reloadable)
{
    change_log_t *l = ctx;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof(l->text) - n, "[%s] %s %s\n", section, key,
             reloadable ? "reload" : "restart");
    l->reloadable += reloadable;
}

static void test_reload_changes(void **state)
{
    (void)state;
    result_t a, b;
    change_log_t l = {"", 0};
    must_load(&a, IDS "[heartbeat]\nttl_s = 30\n[redis]\npassword = one\n", no_env);
    must_load(&b,
              IDS "[heartbeat]\nttl_s = 90\n[redis]\npassword = two\nconnect_timeout_ms = 2000\n"
                  "[local]\nidle_timeout_s = 7\n[log]\nlevel = error\n",
              no_env);
    /* connect_timeout_ms = its default: set, but not a change. */
    assert_int_equal(pos_config_changes(&a.cfg, &b.cfg, note_change, &l), 4);
    assert_string_equal(l.text, "[redis] password restart\n"
                                "[heartbeat] ttl_s reload\n"
                                "[local] idle_timeout_s reload\n"
                                "[log] level reload\n");
    assert_null(strstr(l.text, "one")); /* names only, never values */
    pos_config_apply_reloadable(&a.cfg, &b.cfg);
    assert_int_equal(a.cfg.heartbeat_ttl_s, 90);
    assert_int_equal(a.cfg.local_idle_timeout_s, 7);
    assert_int_equal(a.cfg.log_level, POS_LOG_ERROR);
    assert_string_equal(a.cfg.redis_password, "one"); /* waits for a restart */
    l = (change_log_t){"", 0};
    assert_int_equal(pos_config_changes(&a.cfg, &b.cfg, note_change, &l), 1);
    assert_int_equal(l.reloadable, 0);

    /* Which keys apply at once: the documented ones, and no string (the
     * subsystems keep pointers to those). */
    assert_true(pos_config_reloadable("heartbeat", "interval_s"));
    assert_true(pos_config_reloadable("inbound", "payment_rate"));
    assert_true(pos_config_reloadable("cache", "product_ttl_s"));
    assert_false(pos_config_reloadable("redis", "url"));
    assert_false(pos_config_reloadable("local", "socket"));
    assert_false(pos_config_reloadable("store", "path"));
    assert_false(pos_config_reloadable("terminal", "id"));
    assert_false(pos_config_reloadable("no", "such"));
    char *ex = NULL;
    size_t exlen = 0;
    FILE *f = open_memstream(&ex, &exlen);
    pos_config_write_example(f);
    fclose(f);
    assert_non_null(strstr(ex, "; Applied on reload (SIGHUP).\n; interval_s = 20\n"));
    assert_null(strstr(ex, "; Applied on reload (SIGHUP).\n; url = "));
    free(ex);
}

static void test_wipe(void **state)
{
    (void)state;
    result_t r;
    must_load(&r, IDS "[redis]\nurl = redis://:a@h\npassword = b\n", no_env);
    assert_string_equal(r.cfg.redis.password, "b");
    pos_config_wipe(&r.cfg);
    static const char zeros[POS_URL_PASS_MAX];
    assert_memory_equal(r.cfg.redis_password, zeros, sizeof(r.cfg.redis_password));
    assert_memory_equal(r.cfg.redis.password, zeros, sizeof(r.cfg.redis.password));
    assert_memory_equal(r.cfg.redis_url, zeros, sizeof(zeros));
    assert_string_equal(r.cfg.terminal_id, "T-1");
}

/* ---- cross-field checks --------------------------------------------------- */

static void test_sentinels(void **state)
{
    (void)state;
    result_t r;

    /* No Sentinel by default. */
    must_load(&r, IDS, no_env);
    assert_int_equal(r.cfg.nsentinels, 0);

    must_load(&r,
              IDS "[redis]\nurl = redis://:url-pw@ignored:1/2\n"
                  "sentinels = 10.0.0.5:26379, s-b ,[fd00::7]:1\n"
                  "master_name = mymaster\nsentinel_password = sent-s3cr3t\n",
              no_env);
    assert_int_equal(r.cfg.nsentinels, 3);
    assert_string_equal(r.cfg.sentinels[0].host, "10.0.0.5");
    assert_int_equal(r.cfg.sentinels[0].port, 26379);
    assert_string_equal(r.cfg.sentinels[1].host, "s-b");
    assert_int_equal(r.cfg.sentinels[1].port, 26379);
    assert_string_equal(r.cfg.sentinels[2].host, "fd00::7");
    assert_int_equal(r.cfg.sentinels[2].port, 1);
    assert_string_equal(r.cfg.redis_master_name, "mymaster");
    /* The URL's password and db still apply. */
    assert_string_equal(r.cfg.redis.password, "url-pw");
    assert_int_equal(r.cfg.redis.db, 2);
    char *d = dump_to_string(&r.cfg);
    assert_null(strstr(d, "s3cr3t"));
    assert_non_null(strstr(d, "\nsentinel_password = ****  ; "));
    assert_non_null(strstr(d, "\nmaster_name = mymaster  ; "));
    free(d);
    pos_config_wipe(&r.cfg);
    static const char zeros[POS_URL_PASS_MAX];
    assert_memory_equal(r.cfg.redis_sentinel_password, zeros, sizeof(zeros));

    /* From the environment. */
    char *env[] = {"REDIS_SENTINELS=a:1,b:2", "REDIS_MASTER_NAME=m1",
                   "REDIS_SENTINEL_PASSWORD=env-s3cr3t", NULL};
    must_load(&r, IDS, env);
    assert_int_equal(r.cfg.nsentinels, 2);
    assert_string_equal(r.cfg.sentinels[1].host, "b");
    assert_string_equal(r.cfg.redis_sentinel_password, "env-s3cr3t");

    /* Bad lists, one line each, naming the entry. */
    load(&r, IDS "[redis]\nsentinels = a:1,,b:2\nmaster_name = m\n", no_env);
    expect_error(&r, ":5: [redis] sentinels", "entry 2 is empty", NULL);
    load(&r, IDS "[redis]\nsentinels = a:99999\nmaster_name = m\n", no_env);
    expect_error(&r, ":5: [redis] sentinels", "entry 1", NULL);
    load(&r, IDS "[redis]\nsentinels = a,b,c,d,e,f,g,h,i\nmaster_name = m\n", no_env);
    expect_error(&r, ":5: [redis] sentinels", "more than 8", NULL);
    load(&r, IDS "[redis]\nsentinels = u:pw@a:1\nmaster_name = m\n", no_env);
    expect_error(&r, ":5: [redis] sentinels", NULL);
    assert_null(strstr(r.err.msg, "pw@")); /* never quoted */
    load(&r, IDS "[redis]\nsentinels = a\nmaster_name = my master\n", no_env);
    expect_error(&r, ":6: [redis] master_name", NULL);

    /* One without the other. */
    load(&r, IDS "[redis]\nsentinels = a\n", no_env);
    expect_error(&r, ":5: [redis] sentinels: needs [redis] master_name", NULL);
    load(&r, IDS "[redis]\nmaster_name = m\n", no_env);
    expect_error(&r, ":5: [redis] master_name: needs [redis] sentinels", NULL);
    /* Explicitly empty: no Sentinel. */
    must_load(&r, IDS "[redis]\nsentinels =\nmaster_name =\n", no_env);
    assert_int_equal(r.cfg.nsentinels, 0);
}

static void test_cluster_nodes(void **state)
{
    (void)state;
    result_t r;

    /* Not a cluster by default; classic pub/sub. */
    must_load(&r, IDS, no_env);
    assert_int_equal(r.cfg.ncluster_nodes, 0);
    assert_int_equal(r.cfg.redis_pubsub, POS_PUBSUB_CLASSIC);

    /* Seeds with and without ports (6379 by default); the URL's password
     * still applies. */
    must_load(&r,
              IDS "[redis]\nurl = redis://:url-pw@ignored:1\n"
                  "cluster_nodes = 10.0.1.1:7000, node-b ,[fd00::7]:7002\npubsub = sharded\n",
              no_env);
    assert_int_equal(r.cfg.ncluster_nodes, 3);
    assert_string_equal(r.cfg.cluster_nodes[0].host, "10.0.1.1");
    assert_int_equal(r.cfg.cluster_nodes[0].port, 7000);
    assert_string_equal(r.cfg.cluster_nodes[1].host, "node-b");
    assert_int_equal(r.cfg.cluster_nodes[1].port, 6379);
    assert_string_equal(r.cfg.cluster_nodes[2].host, "fd00::7");
    assert_int_equal(r.cfg.redis_pubsub, POS_PUBSUB_SHARDED);
    assert_string_equal(r.cfg.redis.password, "url-pw");
    char *d = dump_to_string(&r.cfg);
    assert_non_null(strstr(d, "\npubsub = sharded  ; "));
    free(d);

    /* From the environment. */
    char *env[] = {"REDIS_CLUSTER_NODES=a:1,b:2", NULL};
    must_load(&r, IDS, env);
    assert_int_equal(r.cfg.ncluster_nodes, 2);
    assert_string_equal(r.cfg.cluster_nodes[1].host, "b");

    /* Bad lists, one line each, naming the entry. */
    load(&r, IDS "[redis]\ncluster_nodes = a:1,,b:2\n", no_env);
    expect_error(&r, ":5: [redis] cluster_nodes", "entry 2 is empty", NULL);
    load(&r, IDS "[redis]\ncluster_nodes = a:0\n", no_env);
    expect_error(&r, ":5: [redis] cluster_nodes", "entry 1", NULL);
    load(&r, IDS "[redis]\ncluster_nodes = a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n", no_env);
    expect_error(&r, ":5: [redis] cluster_nodes", "more than 16 cluster nodes", NULL);
    load(&r, IDS "[redis]\ncluster_nodes = u:pw@a:1\n", no_env);
    expect_error(&r, ":5: [redis] cluster_nodes", NULL);
    assert_null(strstr(r.err.msg, "pw@")); /* never quoted */
    load(&r, IDS "[redis]\npubsub = fanout\n", no_env);
    expect_error(&r, ":5: [redis] pubsub", NULL);

    /* What a cluster cannot be: with Sentinel, on a database other than 0,
     * sharded pub/sub without it. */
    load(&r, IDS "[redis]\ncluster_nodes = a\nsentinels = s\nmaster_name = m\n", no_env);
    expect_error(&r, ":5: [redis] cluster_nodes: not with [redis] sentinels", NULL);
    load(&r, IDS "[redis]\ncluster_nodes = a\ndb = 3\n", no_env);
    expect_error(&r, ":6: [redis] db: database 3, but a Redis Cluster has database 0 only",
                 NULL);
    load(&r, IDS "[redis]\nurl = redis://h/2\ncluster_nodes = a\n", no_env);
    expect_error(&r, ":5: [redis] url: database 2", NULL);
    load(&r, IDS "[redis]\npubsub = sharded\n", no_env);
    expect_error(&r, ":5: [redis] pubsub: sharded needs [redis] cluster_nodes", NULL);
    /* Explicitly empty: not a cluster. */
    must_load(&r, IDS "[redis]\ncluster_nodes =\n", no_env);
    assert_int_equal(r.cfg.ncluster_nodes, 0);
}

static void test_interval_vs_ttl(void **state)
{
    (void)state;
    result_t r;
    load(&r, IDS "[heartbeat]\ninterval_s = 60\n", no_env);
    expect_error(&r, ":5: [heartbeat] interval_s: 60 must be less than ttl_s = 60", NULL);

    load(&r, IDS "[heartbeat]\nttl_s = 10\n", no_env);
    expect_error(&r, ": [heartbeat] interval_s: 20 must be less than ttl_s = 10", "(from ", ":5)",
                 NULL);

    load(&r, IDS "[heartbeat]\ninterval_s = 61\nttl_s = 60\n", no_env);
    expect_error(&r, ":5: [heartbeat] interval_s", NULL);

    must_load(&r, IDS "[heartbeat]\ninterval_s = 59\n", no_env);
    assert_int_equal(r.cfg.heartbeat_interval_s, 59);
}

static void test_retry_vs_max(void **state)
{
    (void)state;
    result_t r;
    char *env[] = {"REDIS_RETRY_DELAY_ON_FAILURE_MS=3001", NULL};
    load(&r, IDS, env);
    expect_error(&r,
                 ": [redis] max_retry_delay_ms: 3000 must not be less than retry_delay_ms = 3001",
                 "environment REDIS_RETRY_DELAY_ON_FAILURE_MS", NULL);
    char *env2[] = {"REDIS_RETRY_DELAY_ON_FAILURE_MS=3000", NULL};
    must_load(&r, IDS, env2);
    assert_int_equal(r.cfg.retry_delay_ms, 3000);
}

/* ---- example file and reference ------------------------------------------- */

static const char *const all_keys[][3] = {
    {"terminal", "id", "POSAGENT_TERMINAL_ID"},
    {"terminal", "store_id", "POSAGENT_STORE_ID"},
    {"redis", "url", "REDIS_URL"},
    {"redis", "password", "REDIS_PASSWORD"},
    {"redis", "db", "REDIS_DB"},
    {"redis", "retry_delay_ms", "REDIS_RETRY_DELAY_ON_FAILURE_MS"},
    {"redis", "max_retry_delay_ms", "REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS"},
    {"redis", "connect_timeout_ms", NULL},
    {"redis", "command_timeout_ms", NULL},
    {"redis", "probe_interval_ms", NULL},
    {"redis", "clock_check_s", NULL},
    {"redis", "sentinels", "REDIS_SENTINELS"},
    {"redis", "master_name", "REDIS_MASTER_NAME"},
    {"redis", "sentinel_password", "REDIS_SENTINEL_PASSWORD"},
    {"redis", "cluster_nodes", "REDIS_CLUSTER_NODES"},
    {"redis", "pubsub", NULL},
    {"redis", "password_file", NULL},
    {"tls", "ca_file", "POSAGENT_TLS_CA_FILE"},
    {"tls", "cert_file", NULL},
    {"tls", "key_file", NULL},
    {"tls", "server_name", NULL},
    {"tls", "min_version", NULL},
    {"heartbeat", "interval_s", NULL},
    {"heartbeat", "ttl_s", NULL},
    {"hal", "display", NULL},
    {"hal", "printer", NULL},
    {"hal", "pinpad", NULL},
    {"hal", "sim_dir", NULL},
    {"hal", "sim_pinpad_delay_ms", NULL},
    {"hal", "sim_printer_delay_ms", NULL},
    {"hal", "sim_decline_ending", NULL},
    {"hal", "sim_card_number", NULL},
    {"hal", "paper_width", NULL},
    {"hal", "printer_model", NULL},
    {"hal", "codepage", NULL},
    {"payment", "max_amount", NULL},
    {"payment", "pinpad_timeout_s", NULL},
    {"payment", "hmac_key_file", NULL},
    {"payment", "allow_unsigned", "POSAGENT_ALLOW_UNSIGNED"},
    {"payment", "signature_window_s", NULL},
    {"payment", "dedup_window_h", NULL},
    {"payment", "dedup_max_ids", NULL},
    {"inbound", "payment_rate", NULL},
    {"inbound", "payment_burst", NULL},
    {"inbound", "inventory_rate", NULL},
    {"inbound", "inventory_burst", NULL},
    {"inbound", "system_rate", NULL},
    {"inbound", "system_burst", NULL},
    {"inbound", "invalidation_rate", NULL},
    {"inbound", "invalidation_burst", NULL},
    {"store", "path", NULL},
    {"store", "map_size_mb", NULL},
    {"store", "outbox_max_entries", NULL},
    {"store", "outbox_max_mb", NULL},
    {"store", "cache_max_mb", NULL},
    {"store", "cpu", NULL},
    {"cache", "product_ttl_s", NULL},
    {"cache", "inventory_ttl_s", NULL},
    {"cache", "user_ttl_s", NULL},
    {"cache", "session_ttl_s", NULL},
    {"cache", "warm_interval_s", NULL},
    {"cache", "tracking", NULL},
    {"cache", "max_value_bytes", "POSAGENT_CACHE_MAX_VALUE_BYTES"},
    {"local", "socket", NULL},
    {"local", "socket_group", NULL},
    {"local", "max_clients", NULL},
    {"local", "client_rate", NULL},
    {"local", "client_burst", NULL},
    {"local", "commands_per_turn", NULL},
    {"local", "idle_timeout_s", NULL},
    {"local", "stall_timeout_s", NULL},
    {"local", "password", "POSAGENT_LOCAL_PASSWORD"},
    {"local", "password_file", NULL},
    {"metrics", "textfile", NULL},
    {"metrics", "interval_s", NULL},
    {"metrics", "redis_interval_s", NULL},
    {"metrics", "diagnostics", NULL},
    {"log", "level", NULL},
    {"log", "syslog", NULL},
    {"security", "user", NULL},
    {"security", "allow_root", "POSAGENT_ALLOW_ROOT"},
};

static void test_example_file_matches(void **state)
{
    (void)state;
    char *want = example_to_string();
    const char *regen = getenv("POS_REGENERATE");
    if (regen != NULL && strcmp(regen, "1") == 0) {
        FILE *f = fopen(EXAMPLE_PATH, "w");
        assert_non_null(f);
        fputs(want, f);
        assert_int_equal(fclose(f), 0);
        fprintf(stderr, "regenerated %s\n", EXAMPLE_PATH);
    }
    char *have = read_file(EXAMPLE_PATH);
    if (have == NULL || strcmp(have, want) != 0) {
        fprintf(stderr,
                "%s differs from pos_config_write_example(); regenerate with:\n"
                "  POS_REGENERATE=1 %s/tests/test_config\n",
                EXAMPLE_PATH, POS_BINARY_DIR);
        free(have);
        free(want);
        fail();
    }
    /* Every key (set, or commented out with its default) and its env var. */
    for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
        char set[96], commented[96];
        snprintf(set, sizeof(set), "\n[%s]\n", all_keys[i][0]);
        assert_non_null(strstr(have, set));
        snprintf(set, sizeof(set), "\n%s = ", all_keys[i][1]);
        snprintf(commented, sizeof(commented), "\n; %s = ", all_keys[i][1]);
        if (strstr(have, set) == NULL && strstr(have, commented) == NULL) {
            fail_msg("example lacks key %s", all_keys[i][1]);
        }
        if (all_keys[i][2] != NULL) {
            snprintf(set, sizeof(set), "; Environment: %s ", all_keys[i][2]);
            assert_non_null(strstr(have, set));
        }
    }
    /* 100 columns, which is also well within inih's line limit. */
    for (const char *p = have; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        assert_true(len <= 99);
        p += len + (p[len] == '\n');
    }
    free(have);
    free(want);
}

static void test_example_loads(void **state)
{
    (void)state;
    pos_config_t c;
    pos_config_error_t e;
    /* Issue 13 item 3: the shipped file sets no working ids, so a till
     * left with it does not start as every other till. */
    assert_int_equal(pos_config_load(&c, EXAMPLE_PATH, no_env, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "this till's identity is not set"));
    /* Provisioned (here from the environment), it loads with the defaults. */
    char *ids[] = {"POSAGENT_TERMINAL_ID=T-0001", "POSAGENT_STORE_ID=S-042", NULL};
    int rc = pos_config_load(&c, EXAMPLE_PATH, ids, &e);
    if (rc != 0) {
        fail_msg("%s", e.msg);
    }
    assert_string_equal(c.terminal_id, "T-0001");
    assert_string_equal(c.store_id, "S-042");
    check_defaults(&c);
}

/* Uncommenting every "; key = value" line must load and give the documented defaults. */
static void test_example_defaults_are_valid(void **state)
{
    (void)state;
    char *ex = example_to_string();
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    assert_non_null(m);
    int uncommented = 0;
    /* Keys whose example names a file that must exist, or that only go
     * with rediss:// or instead of password, or that excludes the
     * sentinels (cluster_nodes), stay commented. */
    static const char *const keep[] = {"password_file", "ca_file",  "cert_file",
                                       "key_file",      "server_name", "id",
                                       "store_id",      "cluster_nodes"};
    for (char *line = strtok(ex, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        bool is_key = false;
        for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
            char prefix[64];
            bool kept = false;
            for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
                kept = kept || strcmp(all_keys[i][1], keep[k]) == 0;
            }
            snprintf(prefix, sizeof(prefix), "; %s = ", all_keys[i][1]);
            is_key = is_key || (!kept && strncmp(line, prefix, strlen(prefix)) == 0);
        }
        fprintf(m, "%s\n", is_key ? line + 2 : line);
        uncommented += is_key;
    }
    fclose(m);
    /* every key but the ones kept commented */
    assert_int_equal(uncommented, 72);
    result_t r;
    /* Uncommented, the ids' example lines are no ids: refused. */
    char *again = example_to_string();
    assert_non_null(strstr(again, "\n; id = <this till's terminal id>\n"));
    assert_non_null(strstr(again, "\n; store_id = <this till's store id>\n"));
    free(again);
    load(&r, "[terminal]\nid = <this till's terminal id>\nstore_id = S-1\n", no_env);
    expect_error(&r, ":2: [terminal] id: ", "invalid", NULL);
    char *ids[] = {"POSAGENT_TERMINAL_ID=T-0001", "POSAGENT_STORE_ID=S-042", NULL};
    must_load(&r, out, ids);
    assert_int_equal(r.cfg.nsentinels, 3);
    assert_string_equal(r.cfg.redis_master_name, "mymaster");
    check_defaults_except_password_db(&r.cfg);
    assert_string_equal(r.cfg.redis_password, "change-me");
    assert_string_equal(r.cfg.redis.password, "change-me");
    assert_int_equal(r.cfg.redis_db, 0);
    free(out);
    free(ex);
}

static void test_hal_and_payment(void **state)
{
    (void)state;
    result_t r;

    must_load(&r, IDS, no_env);
    assert_string_equal(r.cfg.hal_display, "sim");
    assert_string_equal(r.cfg.hal_printer, "sim");
    assert_string_equal(r.cfg.hal_pinpad, "sim");
    assert_int_equal(r.cfg.hal_paper_width, 42);
    assert_int_equal(r.cfg.payment_max_amount, 10000);
    assert_int_equal(r.cfg.payment_pinpad_timeout_s, 120);
    assert_int_equal(r.cfg.probe_interval_ms, 10000);

    /* The simulated devices' delays: defaults, and 0 (benchmarks) allowed. */
    assert_int_equal(r.cfg.hal_sim_pinpad_delay_ms, 1500);
    assert_int_equal(r.cfg.hal_sim_printer_delay_ms, 20);
    must_load(&r, IDS "[hal]\nsim_pinpad_delay_ms = 0\nsim_printer_delay_ms = 0\n", no_env);
    assert_int_equal(r.cfg.hal_sim_pinpad_delay_ms, 0);
    assert_int_equal(r.cfg.hal_sim_printer_delay_ms, 0);
    load(&r, IDS "[hal]\nsim_printer_delay_ms = -1\n", no_env);
    expect_error(&r, ":5: [hal] sim_printer_delay_ms", NULL);
    load(&r, IDS "[hal]\nsim_printer_delay_ms = 60001\n", no_env);
    expect_error(&r, ":5: [hal] sim_printer_delay_ms", "0..60000", NULL);

    load(&r, IDS "[hal]\nprinter = laser:/dev/lp9\n", no_env);
    expect_error(&r, ":5: [hal] printer", "unknown printer driver", "sim", NULL);
    load(&r, IDS "[hal]\ndisplay = sim:extra\n", no_env);
    expect_error(&r, ":5: [hal] display", "no arguments", NULL);
    load(&r, IDS "[hal]\nsim_dir = relative/dir\n", no_env);
    expect_error(&r, ":5: [hal] sim_dir", "absolute", NULL);
    load(&r, IDS "[hal]\nsim_dir = /var/../etc\n", no_env);
    expect_error(&r, ":5: [hal] sim_dir", NULL);
    load(&r, IDS "[hal]\nsim_card_number = 4111-1111-1111-1111\n", no_env);
    expect_error(&r, ":5: [hal] sim_card_number", NULL);
    /* a rejected card-like value is never echoed */
    assert_null(strstr(r.err.msg, "4111"));
    load(&r, IDS "[hal]\nprinter_model = tm-x\n", no_env);
    expect_error(&r, ":5: [hal] printer_model", "unknown printer model", NULL);
    load(&r, IDS "[hal]\ncodepage = utf-8\n", no_env);
    expect_error(&r, ":5: [hal] codepage", NULL);
    load(&r, IDS "[hal]\npaper_width = 80\n", no_env);
    expect_error(&r, ":5: [hal] paper_width", "20..48", NULL);
    load(&r, IDS "[payment]\nmax_amount = 0\n", no_env);
    expect_error(&r, ":5: [payment] max_amount", NULL);
    load(&r, IDS "[payment]\nhmac_key_file = hmac.key\n", no_env);
    expect_error(&r, ":5: [payment] hmac_key_file", "absolute", NULL);
    load(&r, IDS "[payment]\nsignature_window_s = 0\n", no_env);
    expect_error(&r, ":5: [payment] signature_window_s", "1..3600", NULL);
    load(&r, IDS "[security]\nuser = -rf\n", no_env);
    expect_error(&r, ":5: [security] user", NULL);
    load(&r, IDS "[security]\nallow_root = maybe\n", no_env);
    expect_error(&r, ":5: [security] allow_root", NULL);
    load(&r, IDS "[redis]\nprobe_interval_ms = 20000\n", no_env);
    expect_error(&r, ":5: [redis] probe_interval_ms", "1000..15000", NULL);
}

static void test_reference(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pos_config_write_reference(f);
    fclose(f);
    assert_true(strncmp(buf, "| section | key | env var | default | allowed | meaning |\n", 57) ==
                0);
    int rows = 0;
    for (const char *p = buf; (p = strchr(p, '\n')) != NULL; p++) {
        rows++;
    }
    assert_int_equal(rows, 2 + (int)(sizeof(all_keys) / sizeof(all_keys[0])));
    for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
        char needle[96];
        snprintf(needle, sizeof(needle), "| `%s` | `%s` |", all_keys[i][0], all_keys[i][1]);
        assert_non_null(strstr(buf, needle));
        if (all_keys[i][2] != NULL) {
            snprintf(needle, sizeof(needle), "| `%s` |", all_keys[i][2]);
            assert_non_null(strstr(buf, needle));
        }
    }
    assert_non_null(strstr(buf, "| `redis://localhost:6379` |"));
    assert_non_null(strstr(buf, "| 1..3600 |"));
    free(buf);
}

/* posagent.ini(5): every key and environment variable, hyphens and
 * backslashes escaped for roff, no text line read as a roff request. */
static void test_man_page(void **state)
{
    (void)state;
    char *buf = NULL, needle[128];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pos_config_write_man(f, "0.2.0~git7.abc-dirty");
    fclose(f);
    assert_non_null(strstr(buf, "\n.TH POSAGENT.INI 5 \"\" \"posagent 0.2.0~git7.abc\\-dirty\""));
    for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
        snprintf(needle, sizeof(needle), "\n.TP\n.B %s\n", all_keys[i][1]);
        assert_non_null(strstr(buf, needle));
        if (all_keys[i][2] != NULL) {
            snprintf(needle, sizeof(needle), "\n.B %s\n", all_keys[i][2]);
            assert_non_null(strstr(buf, needle));
        }
    }
    /* A value with hyphens, as the reader must type it. */
    assert_non_null(strstr(buf, "epson\\-display:/dev/ttyS1?baud=9600"));
    const char *known[] = {".TH", ".SH", ".SS", ".TP", ".B",  ".BR", ".RB", ".IR",
                           ".I",  ".br", ".PP", ".nf", ".fi", ".nh", ".ad", ".\\\""};
    for (const char *line = buf; *line != '\0'; line = strchr(line, '\n') + 1) {
        size_t n = strcspn(line, " \n");
        bool ok = line[0] != '.' && line[0] != '\'';
        for (size_t k = 0; !ok && k < sizeof(known) / sizeof(known[0]); k++) {
            ok = n == strlen(known[k]) && strncmp(line, known[k], n) == 0;
        }
        if (!ok) {
            fail_msg("unexpected request: %.*s", (int)strcspn(line, "\n"), line);
        }
        /* Every '-' and '\\' in text is escaped: no bare '-' follows
         * anything but a backslash. */
        for (const char *p = line; strncmp(line, ".\\\"", 3) != 0 && *p != '\n'; p++) {
            if (*p == '-' && (p == line || p[-1] != '\\')) {
                fail_msg("bare '-': %.*s", (int)strcspn(line, "\n"), line);
            }
        }
        if (strchr(line, '\n') == NULL) {
            break;
        }
    }
    free(buf);
}

/* Writes text to a temp file with the given mode; returns the path (free it). */
static char *write_tmp_mode(const char *text, mode_t mode)
{
    char *path = write_tmp(text, strlen(text));
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_password_file(void **state)
{
    (void)state;
    result_t r;
    char text[512];
    char *pw = write_tmp_mode("pf-s3cr3t\n", 0600);

    /* A private file: its first line is the password, replacing the URL's. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = redis://bob:url-pw@h:6379\npassword_file = %s\n", pw);
    must_load(&r, text, no_env);
    assert_string_equal(r.cfg.redis.password, "pf-s3cr3t");
    assert_string_equal(r.cfg.redis.user, "bob");
    char *d = dump_to_string(&r.cfg);
    assert_null(strstr(d, "s3cr3t"));
    assert_non_null(strstr(d, pw));
    free(d);
    pos_config_wipe(&r.cfg);
    assert_string_equal(r.cfg.redis.password, "");

    /* CRLF is not part of it either; group-readable is fine. */
    char *crlf = write_tmp_mode("pf-s3cr3t\r\n", 0640);
    snprintf(text, sizeof(text), IDS "[redis]\npassword_file = %s\n", crlf);
    must_load(&r, text, no_env);
    assert_string_equal(r.cfg.redis.password, "pf-s3cr3t");

    /* Readable by other users: refused, without quoting the password. */
    assert_int_equal(chmod(pw, 0644), 0);
    snprintf(text, sizeof(text), IDS "[redis]\npassword_file = %s\n", pw);
    load(&r, text, no_env);
    expect_error(&r, ":5: [redis] password_file: ", "open to other users", "0644", NULL);
    assert_null(strstr(r.err.msg, "s3cr3t"));
    assert_string_equal(r.cfg.redis.password, "");

    /* Together with a password: ambiguous, refused. */
    assert_int_equal(chmod(pw, 0600), 0);
    char *env[] = {"REDIS_PASSWORD=env-pw", NULL};
    load(&r, text, env);
    expect_error(&r, ":5: [redis] password_file: ", "not together with a password",
                 "environment REDIS_PASSWORD", NULL);

    /* Missing, empty, or more than one line. */
    snprintf(text, sizeof(text), IDS "[redis]\npassword_file = /nonexistent/pw\n");
    load(&r, text, no_env);
    expect_error(&r, ":5: [redis] password_file: ", "cannot read /nonexistent/pw", "No such file",
                 NULL);
    char *empty = write_tmp_mode("", 0600);
    snprintf(text, sizeof(text), IDS "[redis]\npassword_file = %s\n", empty);
    load(&r, text, no_env);
    expect_error(&r, ":5: [redis] password_file: ", "one non-empty line", NULL);
    char *two = write_tmp_mode("line1-s3cr3t\nline2\n", 0600);
    snprintf(text, sizeof(text), IDS "[redis]\npassword_file = %s\n", two);
    load(&r, text, no_env);
    expect_error(&r, ":5: [redis] password_file: ", "one non-empty line", NULL);
    assert_null(strstr(r.err.msg, "s3cr3t"));

    unlink(pw);
    unlink(crlf);
    unlink(empty);
    unlink(two);
    free(pw);
    free(crlf);
    free(empty);
    free(two);
}

static void test_tls_settings(void **state)
{
    (void)state;
    result_t r;
    char text[1024];
    char *ca = write_tmp_mode("not parsed here\n", 0644);
    char *key = write_tmp_mode("key\n", 0600);

    /* rediss:// needs a CA; the message names the key. */
    load(&r, IDS "[redis]\nurl = rediss://h:6380\n", no_env);
    expect_error(&r, ":5: [tls] ca_file is required for a rediss:// URL", NULL);

    /* With one: the server name defaults to the URL's host; 1.2 by default. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://cache.example:6380\n[tls]\nca_file = %s\n", ca);
    must_load(&r, text, no_env);
    assert_true(r.cfg.redis.tls);
    assert_string_equal(r.cfg.tls_ca_file, ca);
    assert_string_equal(r.cfg.tls_server_name, "cache.example");
    assert_string_equal(r.cfg.tls_min_version, "1.2");

    /* An explicit server name wins. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://10.0.0.5:6380\n[tls]\nca_file = %s\n"
                 "server_name = redis.example\n",
             ca);
    must_load(&r, text, no_env);
    assert_string_equal(r.cfg.tls_server_name, "redis.example");

    /* cert_file without key_file, and the reverse. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://h\n[tls]\nca_file = %s\ncert_file = %s\n", ca, ca);
    load(&r, text, no_env);
    expect_error(&r, ":8: [tls] cert_file is set but key_file is not", NULL);
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://h\n[tls]\nca_file = %s\nkey_file = %s\n", ca, key);
    load(&r, text, no_env);
    expect_error(&r, ":8: [tls] key_file is set but cert_file is not", NULL);

    /* Both: fine while the key is private, refused once others may read it. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://h\n[tls]\nca_file = %s\ncert_file = %s\n"
                 "key_file = %s\n",
             ca, ca, key);
    must_load(&r, text, no_env);
    assert_int_equal(chmod(key, 0604), 0);
    load(&r, text, no_env);
    expect_error(&r, ":9: [tls] key_file: ", "open to other users", NULL);

    /* Unreadable files are errors at load, not at the first connection. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://h\n[tls]\nca_file = /nonexistent/ca.pem\n");
    load(&r, text, no_env);
    expect_error(&r, ":7: [tls] ca_file: cannot read /nonexistent/ca.pem", NULL);

    /* [tls] with a plain URL is a mistake, not silently ignored. */
    snprintf(text, sizeof(text), IDS "[redis]\nurl = redis://h\n[tls]\nca_file = %s\n", ca);
    load(&r, text, no_env);
    expect_error(&r, ":7: [tls] ca_file is set but [redis] url is redis://", NULL);

    /* Versions: 1.2; 1.3 only where mbedTLS has it; nothing else. */
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://h\n[tls]\nca_file = %s\nmin_version = 1.1\n", ca);
    load(&r, text, no_env);
    expect_error(&r, ":8: [tls] min_version: \"1.1\": not a TLS version", NULL);
#if MBEDTLS_VERSION_MAJOR < 3
    snprintf(text, sizeof(text),
             IDS "[redis]\nurl = rediss://h\n[tls]\nca_file = %s\nmin_version = 1.3\n", ca);
    load(&r, text, no_env);
    expect_error(&r, ":8: [tls] min_version: \"1.3\": not supported: TLS 1.3 needs mbedTLS 3.x",
                 NULL);
#endif
    load(&r, IDS "[tls]\nserver_name = bad name\n", no_env);
    expect_error(&r, ":5: [tls] server_name: ", "not a host name", NULL);

    unlink(ca);
    unlink(key);
    free(ca);
    free(key);
}

static void test_load_stream(void **state)
{
    (void)state;
    static char text[] = IDS "[redis]\nurl = redis://[::1]:7000\n";
    FILE *f = fmemopen(text, strlen(text), "r");
    assert_non_null(f);
    pos_config_t c;
    pos_config_error_t e;
    assert_int_equal(pos_config_load_stream(&c, f, "mem", no_env, &e), 0);
    fclose(f);
    assert_string_equal(c.redis.host, "::1");
    assert_int_equal(c.redis.port, 7000);

    static char bad[] = IDS "[redis]\nport = 1\n";
    f = fmemopen(bad, strlen(bad), "r");
    assert_int_equal(pos_config_load_stream(&c, f, "mem", no_env, NULL), -EINVAL);
    fclose(f);
    f = fmemopen(bad, strlen(bad), "r");
    assert_int_equal(pos_config_load_stream(&c, f, "mem", no_env, &e), -EINVAL);
    fclose(f);
    assert_string_equal(
        e.msg, "mem:5: [redis] port: unknown key (allowed: url, password, db, "
               "retry_delay_ms, max_retry_delay_ms, connect_timeout_ms, "
               "command_timeout_ms, probe_interval_ms, clock_check_s, sentinels, master_name, "
               "sentinel_password, cluster_nodes, pubsub, password_file)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimal_file),
        cmocka_unit_test(test_no_file_env_only),
        cmocka_unit_test(test_number_edges),
        cmocka_unit_test(test_bool_values),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_unknown_and_duplicate),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_fifo_refused_at_once),
        cmocka_unit_test(test_relative_path_message),
        cmocka_unit_test(test_dropins),
        cmocka_unit_test(test_env_precedence),
        cmocka_unit_test(test_url_password_db_overrides),
        cmocka_unit_test(test_env_bad_values),
        cmocka_unit_test(test_url_errors_hide_password),
        cmocka_unit_test(test_password_errors_hide_password),
        cmocka_unit_test(test_dump_masks_secrets),
        cmocka_unit_test(test_dump_reloads),
        cmocka_unit_test(test_reload_changes),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_interval_vs_ttl),
        cmocka_unit_test(test_retry_vs_max),
        cmocka_unit_test(test_example_file_matches),
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_example_defaults_are_valid),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_man_page),
        cmocka_unit_test(test_hal_and_payment),
        cmocka_unit_test(test_sentinels),
        cmocka_unit_test(test_cluster_nodes),
        cmocka_unit_test(test_load_stream),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_tls_settings),
        cmocka_unit_test(test_max_value_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
