/*
 * Daemon conventions: systemd notification over $NOTIFY_SOCKET (READY=1
 * once the agent serves locally, whether or not Redis answers; the link's
 * state in STATUS=; WATCHDOG=1, STOPPING=1) and SIGHUP applying what can
 * change while running, naming what needs a restart; the local API's
 * stall bound ([local] stall_timeout_s) through the agent and a reload;
 * [store] cpu pinning every thread of the agent, and refused for a CPU the
 * agent may not use.
 */
#define _GNU_SOURCE /* strchrnul, sched_getaffinity */
#include <dirent.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"

/* Terminal T-D of store S-D, logging at "level". */
static void configure(pos_fix_t *f, const char *level)
{
    pos_ini_set(&f->ini, "terminal", "id", "T-D");
    pos_ini_set(&f->ini, "terminal", "store_id", "S-D");
    pos_ini_set(&f->ini, "log", "level", "%s", level);
}

/* Reads datagrams until one contains "want" or the time is up. */
static bool wait_datagram(int fd, const char *want, int timeout_ms, char *all, size_t alllen)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    char buf[512];
    while (pos_test_now_ms() < end) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = '\0';
            strncat(all, buf, alllen - strlen(all) - 2);
            strcat(all, "\n");
            if (strstr(buf, want) != NULL) {
                return true;
            }
            continue;
        }
        pos_test_sleep_ms(10);
    }
    return false;
}

static void test_sd_notify(void **state)
{
    pos_fix_t *f = *state;
    struct sockaddr_un sa;
    char path[108], env_sock[160], seen[4096] = "";

    snprintf(path, sizeof(path), "/tmp/posagent-notify-%d", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", path);
    const char *env[] = {env_sock, "WATCHDOG_USEC=200000", NULL};

    /* An offline till: Redis is down when the agent starts. It is ready
     * all the same (a unit ordered after it starts, systemctl start
     * returns), says in STATUS= that it is connecting, and serves. */
    pos_test_redis_kill(&f->redis);
    configure(f, "info");
    pos_fix_set_retry(f, 100, 500);
    pos_fix_agent_start(f, env);
    assert_true(wait_datagram(fd, "READY=1", 10000, seen, sizeof(seen)));
    assert_non_null(strstr(seen, "READY=1\nSTATUS=serving locally; connecting to Redis"));
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 0);
    redisContext *local = pos_fix_local(f);
    assert_non_null(local);
    redisReply *r = redisCommand(local, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(local);
    assert_true(wait_datagram(fd, "WATCHDOG=1", 2000, seen, sizeof(seen)));

    /* Redis back: the link's state changes STATUS=, nothing else. */
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_true(wait_datagram(fd, "STATUS=online", 15000, seen, sizeof(seen)));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 1000));

    /* READY=1 only once: not again after a reconnect. */
    pos_test_int(&f->redis, "CLIENT KILL TYPE pubsub");
    assert_true(wait_datagram(fd, "STATUS=offline", 10000, seen, sizeof(seen)));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    assert_true(wait_datagram(fd, "STATUS=online", 2000, seen, sizeof(seen)));
    const char *first = strstr(seen, "READY=1");
    assert_null(strstr(first + 1, "READY=1"));

    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    assert_true(wait_datagram(fd, "STOPPING=1", 1000, seen, sizeof(seen)));
    close(fd);
    unlink(path);
}

static void test_sighup_reload(void **state)
{
    pos_fix_t *f = *state;
    const char *echo = "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\"}";

    configure(f, "info");
    pos_fix_agent_start(f, NULL);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 10000));

    /* Debug lines are not logged at level info. */
    pos_test_int(&f->redis, "PUBLISH payment:T-D %s", echo);
    pos_test_sleep_ms(300);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "terminal-originated"), 0);

    /* A broken file is refused and the agent keeps running as it was. */
    FILE *fp = fopen(f->agent.conf, "w");
    fputs("[log]\nlevel = chatty\n", fp);
    fclose(fp);
    kill(f->agent.pid, SIGHUP);
    assert_true(pos_test_agent_wait_log(&f->agent, "reload failed", 1, 3000));
    assert_true(pos_test_agent_alive(&f->agent));

    configure(f, "debug");
    assert_int_equal(pos_ini_write(&f->ini, f->agent.conf), 0);
    kill(f->agent.pid, SIGHUP);
    assert_true(pos_test_agent_wait_log(&f->agent, "reloaded: log level debug", 1, 3000));
    pos_test_int(&f->redis, "PUBLISH payment:T-D %s", echo);
    assert_true(pos_test_agent_wait_log(&f->agent, "terminal-originated", 1, 3000));

    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Replaces the first "from" in the agent's configuration file with "to". */
static void conf_replace(pos_fix_t *f, const char *from, const char *to)
{
    static char text[64 * 1024];
    FILE *fp = fopen(f->agent.conf, "r");
    assert_non_null(fp);
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    char *at = strstr(text, from);
    assert_non_null(at);
    fp = fopen(f->agent.conf, "w");
    assert_non_null(fp);
    fprintf(fp, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    fclose(fp);
}

/* TTL of the status key, once it is at least "above" (the next heartbeat
 * after a reload), or what it last was after 5 s. */
static long long status_ttl_above(pos_fix_t *f, long long above)
{
    long long ttl = -1;
    for (int i = 0; i < 100 && ttl <= above; i++) {
        ttl = pos_test_int(&f->redis, "TTL %s", POS_FIX_STATUS_KEY);
        if (ttl <= above) {
            pos_test_sleep_ms(50);
        }
    }
    return ttl;
}

/* The local API's TTL of a cached key: what [cache] *_ttl_s leaves of it. */
static long long local_ttl(pos_fix_t *f, const char *key)
{
    redisContext *c = pos_fix_local(f);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "TTL %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/*
 * SIGHUP applies a reloadable setting at once (heartbeat TTL, cache
 * freshness), names a changed one that needs a restart and keeps its
 * running value, and refuses an invalid file with the reason.
 */
static void test_sighup_applies_reloadable(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_set_heartbeat(f, 1, 30);
    pos_ini_set(&f->ini, "redis", "connect_timeout_ms", "2000");
    pos_ini_set(&f->ini, "cache", "product_ttl_s", "300");
    /* [local] by hand (the harness writes it only when absent), in the
     * agent's directory made now: idle clients are never closed. */
    snprintf(f->agent.dir, sizeof(f->agent.dir), "/tmp/posagent-agent-XXXXXX");
    assert_non_null(mkdtemp(f->agent.dir));
    pos_ini_set(&f->ini, "local", "socket", "%s/agent.sock", f->agent.dir);
    pos_ini_set(&f->ini, "local", "idle_timeout_s", "0");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    long long ttl = pos_test_int(&f->redis, "TTL %s", POS_FIX_STATUS_KEY);
    assert_true(ttl > 0 && ttl <= 30);
    pos_fix_redis_set(f, "product:reload", "{\"name\":\"tea\"}");
    char *v = pos_fix_local_get(f, "product:reload");
    assert_non_null(v);
    free(v);
    ttl = local_ttl(f, "product:reload");
    assert_true(ttl > 250 && ttl <= 300);

    redisContext *idle = pos_fix_local(f); /* connected before the reload */
    assert_non_null(idle);
    conf_replace(f, "idle_timeout_s = 0", "idle_timeout_s = 1");
    conf_replace(f, "ttl_s = 30", "ttl_s = 90");
    conf_replace(f, "product_ttl_s = 300", "product_ttl_s = 900");
    conf_replace(f, "connect_timeout_ms = 2000", "connect_timeout_ms = 3000");
    kill(f->agent.pid, SIGHUP);
    pos_fix_wait_log(f, "reloaded: log level debug; 3 setting(s) applied, 1 need a restart", 1,
                     5000);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "reload: [heartbeat] ttl_s changed: "
                                                         "applied"),
                     1);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "reload: [cache] product_ttl_s "
                                                         "changed: applied"),
                     1);
    assert_int_equal(pos_test_agent_log_count(&f->agent,
                                              "reload: [redis] connect_timeout_ms changed: needs "
                                              "a restart (systemctl restart posagent)"),
                     1);
    /* Unchanged settings are not named. */
    assert_int_equal(pos_test_agent_log_count(&f->agent, "reload: [heartbeat] interval_s"), 0);
    /* In effect: the next heartbeat carries the new TTL, the cached copy
     * is fresh for the new time. */
    ttl = status_ttl_above(f, 30);
    assert_true(ttl > 30 && ttl <= 90);
    /* The terminal's lease, renewed with the heartbeat, lives as long as
     * the status key: otherwise a longer interval leaves it lapsed between
     * renewals, free for another till with this id. */
    ttl = -1;
    for (int i = 0; i < 100 && ttl <= 30; i++) {
        ttl = pos_test_int(&f->redis, "TTL posagent:lease:%s", POS_FIX_TID);
        if (ttl <= 30) {
            pos_test_sleep_ms(50);
        }
    }
    assert_true(ttl > 30 && ttl <= 90);
    ttl = local_ttl(f, "product:reload");
    assert_true(ttl > 800 && ttl <= 900);
    /* The connected client now counts as idle after 1 s: closed. */
    pos_fix_wait_log(f, "no command for 1 s, closed", 1, 5000);
    signal(SIGPIPE, SIG_IGN); /* writing to the closed connection */
    redisReply *gone = redisCommand(idle, "PING");
    assert_null(gone);
    redisFree(idle);

    /* An invalid file: refused with the reason, the running values stay. */
    conf_replace(f, "ttl_s = 90", "ttl_s = 1");
    kill(f->agent.pid, SIGHUP);
    pos_fix_wait_log(f, "reload failed, keeping the running settings:", 1, 5000);
    char *log = pos_test_agent_log_read(&f->agent);
    assert_non_null(log);
    char *line = strstr(log, "reload failed, keeping the running settings:");
    assert_non_null(line);
    *strchrnul(line, '\n') = '\0';
    assert_non_null(strstr(line, "ttl_s")); /* the reason names the key */
    free(log);
    pos_test_sleep_ms(1500); /* a heartbeat or more */
    ttl = pos_test_int(&f->redis, "TTL %s", POS_FIX_STATUS_KEY);
    assert_true(ttl > 30 && ttl <= 90);
    assert_true(pos_test_agent_alive(&f->agent));
}

/*
 * A local client that pipelines reads and stops reading its replies is
 * paused, then closed once none of them was read for [local]
 * stall_timeout_s; a reload changes the bound for the next one. Returns
 * how long, ms, from its last write to the agent's INFO counting the drop
 * (output_drops reaching "drops").
 */
static long stalled_client_cut(pos_fix_t *f, long long drops)
{
    redisContext *c = pos_fix_local_connect(f);
    for (int i = 0; i < 256; i++) {
        redisAppendCommand(c, "GET session:stall-big");
    }
    int done = 0;
    while (!done) {
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
    }
    uint64_t t0 = pos_test_now_ms();
    long waited = -1;
    for (int i = 0; i < 300; i++) {
        if (pos_fix_info(f, "clients", "output_drops") >= drops) {
            waited = (long)(pos_test_now_ms() - t0);
            break;
        }
        pos_test_sleep_ms(50);
    }
    redisFree(c); /* never read: its replies go with it */
    assert_true(waited >= 0);
    return waited;
}

static void test_stall_timeout(void **state)
{
    pos_fix_t *f = *state;

    pos_ini_set(&f->ini, "local", "stall_timeout_s", "1");
    pos_fix_start_online(f);
    /* 256 replies of 60 KB (a session value is at most 65,024 bytes):
     * 15 MB, far past the 512 KiB that pauses a client and the socket
     * buffers. */
    static char big[60 * 1000 + 1];
    memset(big, 'x', sizeof(big) - 1);
    redisContext *c = pos_fix_local_connect(f);
    redisReply *r = redisCommand(c, "SET session:stall-big %s EX 600", big);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);

    long ms = stalled_client_cut(f, 1);
    print_message("stall_timeout_s = 1: closed %ld ms after its last write\n", ms);
    assert_true(ms >= 900 && ms <= 4000);
    pos_fix_wait_log(f, "bytes of replies not read for 1 s, disconnecting", 1, 2000);

    conf_replace(f, "stall_timeout_s = 1", "stall_timeout_s = 4");
    kill(f->agent.pid, SIGHUP);
    pos_fix_wait_log(f, "reload: [local] stall_timeout_s changed: applied", 1, 5000);
    ms = stalled_client_cut(f, 2);
    print_message("stall_timeout_s = 4: closed %ld ms after its last write\n", ms);
    assert_true(ms >= 3900 && ms <= 8000);
    /* Another client was served all along, and the agent is whole. */
    char *v = pos_fix_local_get(f, "session:stall-big");
    assert_non_null(v);
    assert_int_equal(strlen(v), sizeof(big) - 1);
    free(v);
    assert_true(pos_test_agent_alive(&f->agent));
}

/* Threads of pid whose Cpus_allowed_list is "want"; *all gets how many
 * threads there are. */
static int threads_on(pid_t pid, const char *want, int *all)
{
    char dir[64], path[384], line[256];
    int on = 0;

    *all = 0;
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL) {
            continue; /* ended meanwhile */
        }
        (*all)++;
        while (fgets(line, sizeof(line), fp) != NULL) {
            if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
                char *v = line + 18;
                v += strspn(v, " \t");
                v[strcspn(v, "\n")] = '\0';
                on += strcmp(v, want) == 0;
            }
        }
        fclose(fp);
    }
    closedir(d);
    return on;
}

static void test_cpu_pin(void **state)
{
    pos_fix_t *f = *state;
    cpu_set_t set;
    int first = -1, outside = -1;
    char want[16];

    CPU_ZERO(&set);
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    for (int c = 0; c < 1024 && (first < 0 || outside < 0); c++) {
        if (CPU_ISSET(c, &set) && first < 0) {
            first = c;
        } else if (!CPU_ISSET(c, &set) && outside < 0) {
            outside = c;
        }
    }
    assert_true(first >= 0);
    snprintf(want, sizeof(want), "%d", first);

    /* Pinned: every thread it runs (the loop, the store writer, libuv's
     * pool once used) is on that CPU, and it serves. */
    configure(f, "info");
    pos_ini_set(&f->ini, "store", "cpu", "%d", first);
    pos_fix_start_online(f);
    pos_fix_wait_log(f, "running on CPU", 1, 2000);
    redisReply *r = pos_fix_local_cmd(f, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    int all, on = threads_on(f->agent.pid, want, &all);
    print_message("[store] cpu = %d: %d of %d threads on it\n", first, on, all);
    assert_true(on >= 2); /* the loop and the writer at least */
    if (getenv("POSAGENT_WRAPPER") == NULL) {
        assert_int_equal(on, all); /* under qemu-user its own threads are not the agent's */
    }
    /* A change waits for a restart, and says so. */
    char from[32], to[32];
    snprintf(from, sizeof(from), "cpu = %d", first);
    snprintf(to, sizeof(to), "cpu = %d", first == 0 ? 1 : 0);
    conf_replace(f, from, to);
    kill(f->agent.pid, SIGHUP);
    pos_fix_wait_log(f, "reload: [store] cpu changed: needs a restart", 1, 5000);
    assert_int_equal(threads_on(f->agent.pid, want, &all), on);

    /* A CPU the agent may not run on is a configuration error, before
     * anything is opened (so before the running agent's lock is met). */
    if (outside < 0) {
        print_message("every CPU below 1024 is allowed: no refusal to check\n");
        return;
    }
    snprintf(from, sizeof(from), "%s", to);
    snprintf(to, sizeof(to), "cpu = %d", outside);
    conf_replace(f, from, to);
    const char *argv[] = {getenv("POSAGENT_BIN"), "--config", f->agent.conf, NULL};
    char *out = NULL;
    assert_non_null(argv[0]);
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    char expect[96];
    snprintf(expect, sizeof(expect),
             "[store] cpu = %d: not a CPU this agent may run on (allowed: ", outside);
    assert_non_null(strstr(out, expect));
    free(out);
    const char *check[] = {argv[0], "--check-config", "--config", f->agent.conf, NULL};
    assert_int_equal(pos_test_run(check, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, expect));
    free(out);
    assert_true(pos_test_agent_alive(&f->agent));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_sd_notify),
        POS_FIX_TEST(test_sighup_reload),
        POS_FIX_TEST(test_sighup_applies_reloadable),
        POS_FIX_TEST(test_stall_timeout),
        POS_FIX_TEST(test_cpu_pin),
    };
    pos_fix_filters_from_env();
    return cmocka_run_group_tests_name("daemon", tests, NULL, NULL);
}
