#include "tests/support/fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <cmocka.h>

#include "tests/support/timing.h"

#define LOG_TAIL (16 * 1024)

void pos_fix_init(pos_fix_t *f)
{
    memset(f, 0, sizeof(*f));
    pos_ini_init(&f->ini);
    pos_ini_set(&f->ini, "terminal", "id", "%s", POS_FIX_TID);
    pos_ini_set(&f->ini, "terminal", "store_id", "%s", POS_FIX_SID);
    pos_ini_section(&f->ini, "redis"); /* the url once Redis runs */
    pos_ini_set(&f->ini, "log", "level", "debug");
}

/* Prints a file of the fixture's (a log) to stderr, its last LOG_TAIL bytes. */
static void dump_tail(const char *what, const char *path)
{
    FILE *fp = fopen(path, "rb");
    static char buf[LOG_TAIL + 1];
    bool readable = fp != NULL;
    size_t n = 0;

    if (readable) {
        if (fseek(fp, 0, SEEK_END) == 0 && ftell(fp) > LOG_TAIL) {
            fseek(fp, -LOG_TAIL, SEEK_END);
        } else {
            fseek(fp, 0, SEEK_SET);
        }
        n = fread(buf, 1, LOG_TAIL, fp);
        fclose(fp);
    }
    buf[n] = '\0';
    fprintf(stderr, "---- %s (%s) ----\n%s\n----\n", what, path,
            readable ? buf : "(cannot be read)");
}

void pos_fix_set_retry(pos_fix_t *f, unsigned base_ms, unsigned cap_ms)
{
    pos_ini_set(&f->ini, "redis", "retry_delay_ms", "%u", base_ms);
    pos_ini_set(&f->ini, "redis", "max_retry_delay_ms", "%u", cap_ms);
}

void pos_fix_set_heartbeat(pos_fix_t *f, unsigned interval_s, unsigned ttl_s)
{
    pos_ini_set(&f->ini, "heartbeat", "interval_s", "%u", interval_s);
    pos_ini_set(&f->ini, "heartbeat", "ttl_s", "%u", ttl_s);
}

void pos_fix_dump_redis_log(const pos_test_redis_t *r)
{
    char log[300];

    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    dump_tail("redis-server log", log);
}

int pos_fix_redis_start(pos_fix_t *f)
{
    if (pos_test_redis_start(&f->redis) != 0) {
        fprintf(stderr, "fixture: redis-server did not start (port %u)\n", (unsigned)f->redis.port);
        pos_fix_dump_redis_log(&f->redis);
        pos_test_redis_kill(&f->redis);
        pos_test_redis_stop(&f->redis);
        return -1;
    }
    pos_ini_set(&f->ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)f->redis.port);
    return 0;
}

int pos_fix_start(pos_fix_t *f)
{
    pos_fix_init(f);
    return pos_fix_redis_start(f);
}

void pos_fix_agent_start_at(pos_fix_t *f, const char *const *env, const char *file, int line)
{
    const char *bin = getenv("POSAGENT_BIN");
    const char *cpu = getenv("POS_TEST_AGENT_CPU");

    /* The whole suite with the agent pinned ([store] cpu), on request. */
    if (cpu != NULL && cpu[0] != '\0' && pos_ini_get(&f->ini, "store", "cpu") == NULL) {
        pos_ini_set(&f->ini, "store", "cpu", "%s", cpu);
    }
    const char *text = pos_ini_text(&f->ini);

    errno = 0;
    if (pos_test_agent_start(&f->agent, text, env) != 0) {
        int err = errno;
        fprintf(stderr, "fixture: configuration:\n%s\n", text);
        print_error("ERROR: the agent could not be started ($POSAGENT_BIN %s)%s%s\n",
                    bin != NULL ? bin : "not set", err != 0 ? ": " : "",
                    err != 0 ? strerror(err) : "");
        _fail(file, line);
    }
    f->starts++;
}

const char *const *pos_fix_slowfs(pos_fix_t *f, unsigned delay_ms, const char *prefix)
{
    const char *const *env;

    if (f->agent.dir[0] == '\0') {
        snprintf(f->agent.dir, sizeof(f->agent.dir), "/tmp/posagent-agent-XXXXXX");
        if (mkdtemp(f->agent.dir) == NULL) {
            fail_msg("fixture: cannot create the agent's directory: %s", strerror(errno));
        }
    }
    snprintf(f->slowfs_log, sizeof(f->slowfs_log), "%s/slowfs.log", f->agent.dir);
    env = pos_slowfs_env(&f->slowfs, delay_ms, prefix, f->slowfs_log);
    if (env == NULL) {
        fail_msg("fixture: the slow-disk shim is not built (POS_SLOWFS_LIB %s)",
                 getenv("POS_SLOWFS_LIB") != NULL ? getenv("POS_SLOWFS_LIB") : "not set");
    }
    return env;
}

bool pos_fix_next_payment_msg(pos_fix_t *f, const char *tx, int timeout_ms,
                              pos_fix_payment_msg_t *out)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    bool match = false;

    while (!match && pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(&f->sub, 200, NULL, 0);
        cJSON *j = m != NULL ? cJSON_Parse(m) : NULL;
        cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "transactionId");
        cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reason");
        cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "origin");
        cJSON *ob = cJSON_GetObjectItemCaseSensitive(j, "outboxId");
        match = cJSON_IsString(o) && strcmp(o->valuestring, "terminal") == 0 && cJSON_IsString(t) &&
                strncmp(t->valuestring, "PAYMENT_", 8) == 0 && cJSON_IsString(id) &&
                strcmp(id->valuestring, tx) == 0;
        if (match) {
            snprintf(out->type, sizeof(out->type), "%s", t->valuestring);
            snprintf(out->reason, sizeof(out->reason), "%s",
                     cJSON_IsString(r) ? r->valuestring : "");
            out->outbox_id = cJSON_IsNumber(ob) ? ob->valuedouble : -1.0;
        }
        cJSON_Delete(j);
        free(m);
    }
    return match;
}

const char *const *pos_fix_small_quarantine_env(void)
{
#if defined(__SANITIZE_ADDRESS__)
    static char asan[512];
    static const char *env[2];
    const char *inherited = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%squarantine_size_mb=4",
             inherited != NULL ? inherited : "",
             inherited != NULL && inherited[0] != '\0' ? ":" : "");
    env[0] = asan;
    env[1] = NULL;
    return env;
#else
    return NULL;
#endif
}

int pos_fix_slowfs_delays(const pos_fix_t *f, const char *call)
{
    return f->slowfs_log[0] != '\0' ? pos_slowfs_log_count(f->slowfs_log, call, NULL) : 0;
}

void pos_fix_dump_log(const pos_fix_t *f)
{
    dump_tail("agent log", f->agent.log);
}

void pos_fix_wait_log_at(pos_fix_t *f, const char *needle, int n, int timeout_ms, const char *file,
                         int line)
{
    if (!pos_test_agent_wait_log(&f->agent, needle, n, timeout_ms)) {
        bool alive = pos_test_agent_alive(&f->agent);
        fprintf(stderr, "fixture: agent %s (exit status %d)\n",
                alive ? "still running" : "has exited", f->agent.exit_status);
        pos_fix_dump_log(f);
        print_error("ERROR: no %d \"%s\" in the agent's log within %d ms\n", n, needle, timeout_ms);
        _fail(file, line);
    }
}

void pos_fix_start_local_at(pos_fix_t *f, bool online, const char *file, int line)
{
    pos_fix_set_retry(f, 100, 500);
    pos_fix_agent_start_at(f, NULL, file, line);
    pos_fix_wait_log_at(f, "local API on", f->starts, 5000, file, line);
    if (online) {
        pos_fix_wait_log_at(f, "link: online", 1, 10000, file, line);
    }
}

void pos_fix_cut_off_at(pos_fix_t *f, redisContext *cloud, int nth, const char *file, int line)
{
    pos_test_cut_off(cloud, true);
    pos_fix_wait_log_at(f, "link: offline", nth, 5000, file, line);
}

void pos_fix_agent_forget(pos_fix_t *f)
{
    pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    pos_test_agent_cleanup(&f->agent);
    memset(&f->agent, 0, sizeof(f->agent));
    f->starts = 0;
}

void pos_fix_stop(pos_fix_t *f)
{
    if (f->agent.pid > 0) {
        kill(f->agent.pid, SIGCONT);
        if (f->stop_signal != 0) {
            pos_test_agent_stop(&f->agent, f->stop_signal, 5000);
        } else {
            pos_test_agent_stop(&f->agent, SIGKILL, 2000);
        }
    }
    pos_test_sub_close(&f->sub);
    pos_test_agent_cleanup(&f->agent);
    pos_test_redis_stop(&f->redis);
}

void pos_fix_filters_from_env(void)
{
    const char *run = getenv("POS_TEST_FILTER"), *skip = getenv("POS_TEST_SKIP");

    if (run != NULL && run[0] != '\0') {
        cmocka_set_test_filter(run);
    }
    if (skip != NULL && skip[0] != '\0') {
        cmocka_set_skip_filter(skip);
    }
}

int pos_fix_setup(void **state)
{
    pos_fix_t *f = calloc(1, sizeof(*f));

    if (f == NULL || pos_fix_start(f) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int pos_fix_teardown(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_stop(f);
    free(f);
    return 0;
}

redisContext *pos_fix_local(const pos_fix_t *f)
{
    char path[400];
    struct timeval tv = {5, 0};

    snprintf(path, sizeof(path), "%s/agent.sock", f->agent.dir);
    for (int i = 0; i < 100; i++) {
        redisContext *c = redisConnectUnixWithTimeout(path, tv);
        if (c != NULL && c->err == 0) {
            redisSetTimeout(c, tv);
            return c;
        }
        if (c != NULL) {
            redisFree(c);
        }
        pos_test_sleep_ms(50);
    }
    return NULL;
}

redisContext *pos_fix_local_connect_at(const pos_fix_t *f, const char *file, int line)
{
    redisContext *c = pos_fix_local(f);
    if (c == NULL) {
        pos_fix_dump_log(f);
        print_error("ERROR: no connection to the agent's local API (%s/agent.sock)\n",
                    f->agent.dir);
        _fail(file, line);
    }
    return c;
}

redisReply *pos_fix_local_cmd_at(const pos_fix_t *f, const char *file, int line, const char *fmt,
                                 ...)
{
    redisContext *c = pos_fix_local_connect_at(f, file, line);
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        print_error("ERROR: no reply to \"%s\" from the local API: %s\n", fmt,
                    c->errstr[0] != '\0' ? c->errstr : "?");
        redisFree(c);
        pos_fix_dump_log(f);
        _fail(file, line);
    }
    redisFree(c);
    return r;
}

void pos_fix_latency_run(pos_fix_t *f, const pos_fix_latency_t *l)
{
    uint64_t *us = calloc((size_t)l->n, sizeof(*us));
    uint64_t p99[2];

    assert_non_null(us);
    pos_fix_start_online(f);
    redisContext *cloud = pos_test_cloud_connect(&f->redis);
    redisContext *c = pos_fix_local_connect(f);
    assert_non_null(cloud);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            pos_fix_cut_off(f, cloud, 1);
        }
        for (int i = 0; i < l->n; i++) {
            uint64_t t0 = pos_test_now_ns();
            redisReply *r = l->send(c, i, l->arg);
            us[i] = (pos_test_now_ns() - t0) / 1000;
            if (r == NULL) {
                pos_fix_dump_log(f);
                fail_msg("%s: no reply to call %d (%s)", l->what, i, c->errstr);
            }
            l->check(r, round == 1, l->arg);
            freeReplyObject(r);
        }
        pos_test_pct_t p = pos_test_percentiles(us, (size_t)l->n);
        const char *name =
            l->round[round] != NULL ? l->round[round] : (round == 0 ? "online" : "offline");
        print_message("%s %s: p50 %.3f ms, p99 %.3f ms, max %.3f ms (%d sequential calls)\n",
                      l->what, name, p.p50 / 1000.0, p.p99 / 1000.0, p.max / 1000.0, l->n);
        p99[round] = p.p99;
    }
    redisFree(c);
    redisFree(cloud);
    free(us);
    /* Checked once both rounds have printed their figures. */
    assert_true(p99[0] < (uint64_t)l->max_p99_ms * 1000u);
    assert_true(p99[1] < (uint64_t)l->max_p99_ms * 1000u);
}

uint64_t pos_fix_status_ts(const char *text)
{
    cJSON *j = text != NULL ? cJSON_Parse(text) : NULL;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "ts");
    uint64_t ts = cJSON_IsNumber(t) && t->valuedouble > 0 ? (uint64_t)t->valuedouble : 0;

    cJSON_Delete(j);
    return ts;
}

typedef struct status_wait {
    const pos_test_redis_t *r;
    const char *want;
    cJSON *found;
} status_wait_t;

static bool status_is(void *arg)
{
    status_wait_t *w = arg;
    char *v = pos_test_get(w->r, POS_FIX_STATUS_KEY);
    cJSON *j = v != NULL ? cJSON_Parse(v) : NULL;
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status");
    bool ok = j != NULL &&
              (w->want == NULL || (cJSON_IsString(s) && strcmp(s->valuestring, w->want) == 0));

    free(v);
    if (ok) {
        w->found = j;
    } else {
        cJSON_Delete(j);
    }
    return ok;
}

long pos_fix_wait_status(const pos_test_redis_t *r, const char *want, int timeout_ms,
                         cJSON **status)
{
    status_wait_t w = {r, want, NULL};
    long ms = pos_test_poll(status_is, &w, 10, timeout_ms);

    if (status != NULL) {
        *status = w.found;
    } else {
        cJSON_Delete(w.found);
    }
    return ms;
}

void pos_fix_redis_set(pos_fix_t *f, const char *key, const char *value)
{
    redisReply *r = pos_test_redis_cmd(&f->redis, "SET %s %s", key, value);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

char *pos_fix_local_get(const pos_fix_t *f, const char *key)
{
    redisContext *c = pos_fix_local(f);
    char *v = NULL;

    assert_non_null(c);
    redisReply *r = redisCommand(c, "GET %s", key);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING) {
        v = strndup(r->str, r->len);
    } else {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    }
    freeReplyObject(r);
    redisFree(c);
    return v;
}

char *pos_fix_local_get_until(const pos_fix_t *f, const char *key, const char *want, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        char *v = pos_fix_local_get(f, key);
        if ((v != NULL && strcmp(v, want) == 0) || pos_test_now_ms() > end) {
            return v;
        }
        free(v);
        pos_test_sleep_ms(20);
    }
}

long long pos_fix_redis_gets(const pos_fix_t *f)
{
    redisReply *r = pos_test_redis_cmd(&f->redis, "INFO commandstats");
    const char *p =
        r != NULL && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_get:calls=") : NULL;
    long long n = p != NULL ? strtoll(p + strlen("cmdstat_get:calls="), NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

long long pos_fix_local_info(redisContext *local, const char *section, const char *field)
{
    redisReply *r = redisCommand(local, "INFO %s", section);
    long long v = -1;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, field);
    if (p != NULL && p[strlen(field)] == ':') {
        v = strtoll(p + strlen(field) + 1, NULL, 10);
    }
    freeReplyObject(r);
    return v;
}

long long pos_fix_info(const pos_fix_t *f, const char *section, const char *field)
{
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    long long v = pos_fix_local_info(c, section, field);
    redisFree(c);
    return v;
}

char *pos_fix_sim_text(const pos_fix_t *f, const char *name)
{
    char path[400];
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    FILE *fp;

    assert_non_null(out);
    snprintf(path, sizeof(path), "%s/sim/%s", f->agent.dir, name);
    fp = fopen(path, "r");
    if (fp != NULL) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
            fwrite(buf, 1, n, out);
        }
        fclose(fp);
    }
    fclose(out);
    return text;
}

unsigned pos_fix_charges(const pos_fix_t *f)
{
    char path[400];
    unsigned n = 0;

    snprintf(path, sizeof(path), "%s/sim/pinpad.charges", f->agent.dir);
    FILE *fp = fopen(path, "r");
    if (fp != NULL) {
        if (fscanf(fp, "%u", &n) != 1) {
            n = 0;
        }
        fclose(fp);
    }
    return n;
}

void pos_fix_private_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0600), 0);
}
