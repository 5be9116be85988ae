/*
 * What a Redis server may make the agent hold (agent/link/resp_guard.h):
 * a real redis-server holding a 200 MB product: value read through the
 * local API, and a fake server in this test that, once the agent is
 * online, sends a 2 GB pub/sub message (streamed, never allocated here) or
 * an endless array (*2147483647 then :1 forever). In every case the
 * agent's RSS stays under 16 MiB, the log names the
 * limit, the agent reconnects and its heartbeat goes on; a value over
 * [cache] max_value_bytes is answered with a clear error and not cached.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

#define MIB          (1024L * 1024L)
#define RSS_LIMIT_KB (16L * 1024L) /* the bound: 16 MiB */
#define BIG_BYTES    (200L * MIB)  /* the 200 MB value */

/* ---- the agent's memory ------------------------------------------------------ */

/* VmRSS of pid in KiB, or -1. */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Samples the agent's RSS every 10 ms in a thread, keeping the highest. */
typedef struct rss_watch {
    pid_t pid;
    pthread_t thread;
    atomic_bool stop;
    atomic_long peak_kb;
} rss_watch_t;

static void *rss_main(void *arg)
{
    rss_watch_t *w = arg;

    while (!atomic_load(&w->stop)) {
        long kb = rss_kb(w->pid);
        if (kb > atomic_load(&w->peak_kb)) {
            atomic_store(&w->peak_kb, kb);
        }
        pos_test_sleep_ms(10);
    }
    return NULL;
}

static void rss_start(rss_watch_t *w, pid_t pid)
{
    memset(w, 0, sizeof(*w));
    w->pid = pid;
    atomic_store(&w->peak_kb, rss_kb(pid));
    assert_int_equal(pthread_create(&w->thread, NULL, rss_main, w), 0);
}

static long rss_stop(rss_watch_t *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    return atomic_load(&w->peak_kb);
}

/*
 * The bound: the agent's RSS stays under 16 MiB. An instrumented agent
 * (this test is built with ASan, and so is the agent beside it) starts
 * near or above that on its own, ASan's shadow memory and quarantine
 * counted; it is held to 4 MiB of growth instead, a quarter of the bound,
 * which a 200 MB value or a 2 GB message would break as surely.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_INSTRUMENTED 1
#else
#define RSS_INSTRUMENTED 0
#endif
#define RSS_GROWTH_INSTRUMENTED_KB (4L * 1024L)

static void assert_rss_bounded(const char *what, long before_kb, long peak_kb)
{
    fprintf(stderr, "%s: agent RSS %ld KiB before, peak %ld KiB (+%ld KiB)\n", what, before_kb,
            peak_kb, peak_kb - before_kb);
    assert_true(before_kb > 0);
    if (RSS_INSTRUMENTED) {
        assert_true(peak_kb - before_kb < RSS_GROWTH_INSTRUMENTED_KB);
    } else if (before_kb < RSS_LIMIT_KB) {
        assert_true(peak_kb < RSS_LIMIT_KB);
    } else {
        assert_true(peak_kb - before_kb < RSS_LIMIT_KB);
    }
}

/* ---- helpers --------------------------------------------------------------- */

/* GET key through the local API: must be an error containing want. */
static void expect_get_error(pos_fix_t *f, const char *key, const char *want)
{
    redisContext *c = pos_fix_local_connect(f);
    redisReply *r = redisCommand(c, "GET %s", key);

    assert_non_null(r);
    if (r->type != REDIS_REPLY_ERROR || strstr(r->str, want) == NULL) {
        fail_msg("GET %s: type %d \"%s\", wanted an error with \"%s\"", key, r->type,
                 r->str != NULL ? r->str : "", want);
    }
    freeReplyObject(r);
    redisFree(c);
}

static long long local_info(pos_fix_t *f, const char *section, const char *field)
{
    redisContext *c = pos_fix_local_connect(f);
    long long v = pos_fix_local_info(c, section, field);
    redisFree(c);
    return v;
}

/* ---- (a) a real redis-server with a 200 MB value ------------------------------ */

static void test_big_value_from_real_redis(void **state)
{
    pos_fix_t *f = *state;
    char want[160];
    rss_watch_t w;
    long before;

    /* 200 MB made by Redis itself (SETRANGE pads with zeros): nothing that
     * large crosses this process. */
    assert_int_equal(pos_test_int(&f->redis, "SETRANGE product:BIG %ld x", BIG_BYTES - 1),
                     BIG_BYTES);
    pos_fix_set_retry(f, 100, 500);
    pos_fix_set_heartbeat(f, 1, 3);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    pos_test_sleep_ms(300); /* warm-up, revalidation: the agent settles */

    before = rss_kb(f->agent.pid);
    rss_start(&w, f->agent.pid);
    snprintf(want, sizeof(want), "value of product:BIG exceeds [cache] max_value_bytes (%d bytes)",
             262144);
    expect_get_error(f, "product:BIG", want);
    /* The connection that carried it was dropped at the header... */
    pos_fix_wait_log(f, "bulk string of 209715200 bytes exceeds the limit of 266240 bytes", 1,
                     5000);
    pos_fix_wait_log(f, "link: offline: Message too long", 1, 5000);
    /* ... and the link came back. */
    pos_fix_wait_online(f, 2, 10000);
    assert_rss_bounded("200 MB value", before, rss_stop(&w));

    /* Not cached: no local entry, and offline it is still no answer. */
    redisContext *c = pos_fix_local_connect(f);
    redisReply *r = redisCommand(c, "AGE product:BIG");
    assert_int_equal(r->integer, -2);
    freeReplyObject(r);

    /* Asked again at once: the same error without asking Redis (no drop). */
    expect_get_error(f, "product:BIG", want);
    r = redisCommand(c, "MGET product:NOPE product:BIG");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->element[1]->str, want));
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS product:BIG product:NOPE");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(pos_fix_local_info(c, "cache", "oversize_refused"), 4);
    assert_int_equal(pos_fix_local_info(c, "link", "replies_refused"), 1);
    redisFree(c);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 2);

    /* The heartbeat goes on: the status key is rewritten within 1 s. */
    redisReply *del = pos_test_redis_cmd(&f->redis, "DEL %s", POS_FIX_STATUS_KEY);
    freeReplyObject(del);
    assert_true(pos_fix_wait_status(&f->redis, "online", 2500, NULL) >= 0);

    /* A value just over the limit, under the link's headroom, reaches the
     * cache, which refuses it: an error, no reconnect. */
    assert_int_equal(pos_test_int(&f->redis, "SETRANGE product:OVER 262144 x"), 262145);
    expect_get_error(f, "product:OVER",
                     "value of product:OVER exceeds [cache] max_value_bytes (262144 bytes)");
    /* At the limit: served and cached. */
    assert_int_equal(pos_test_int(&f->redis, "SETRANGE product:MAX 262143 x"), 262144);
    char *v = pos_fix_local_get(f, "product:MAX");
    assert_non_null(v);
    free(v);
    c = pos_fix_local_connect(f);
    r = redisCommand(c, "GET product:MAX");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 262144);
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 2);

    /* The cloud shrinks the value: tracking invalidates the key, the
     * remembered refusal goes with it, and the next read asks Redis. */
    redisReply *set = pos_test_redis_cmd(&f->redis, "SET product:BIG %s", "{\"name\":\"small\"}");
    freeReplyObject(set);
    long ms = -1;
    for (uint64_t t0 = pos_test_now_ms(); pos_test_now_ms() - t0 < 3000;) {
        c = pos_fix_local_connect(f);
        r = redisCommand(c, "GET product:BIG");
        bool ok = r->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
        redisFree(c);
        if (ok) {
            ms = (long)(pos_test_now_ms() - t0);
            break;
        }
        pos_test_sleep_ms(20);
    }
    fprintf(stderr, "the shrunk value was served after %ld ms\n", ms);
    assert_true(ms >= 0);
    v = pos_fix_local_get(f, "product:BIG");
    assert_string_equal(v, "{\"name\":\"small\"}");
    free(v);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 2);
}

/* ---- (b) a fake server ---------------------------------------------------------- */

typedef enum fake_attack {
    FAKE_BULK,  /* a 2 GB message on the subscriber */
    FAKE_ARRAY, /* an endless array in reply to the status write */
} fake_attack_t;

#define FAKE_CONNS 8

typedef struct fake_conn {
    int fd; /* -1: free */
    redisReader *rd;
    bool sub;
} fake_conn_t;

typedef struct fake {
    int lfd;
    uint16_t port;
    fake_attack_t attack;
    pthread_t thread;
    atomic_bool stop;
    atomic_int accepted;    /* connections */
    atomic_int status_sets; /* writes of the status key */
    atomic_int sets_seen;   /* by the attack's clock: 1 pmessage, 2 attack */
    atomic_llong streamed;  /* attack bytes the agent took before it hung up */
    fake_conn_t conns[FAKE_CONNS];
} fake_t;

static int fake_send(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fake_sendf(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return fake_send(fd, buf, (size_t)n);
}

static bool arg_is(const redisReply *cmd, size_t i, const char *s)
{
    return i < cmd->elements && cmd->element[i]->len == strlen(s) &&
           strncasecmp(cmd->element[i]->str, s, cmd->element[i]->len) == 0;
}

/* Streams "unit" (len bytes) over fd until the peer hangs up, 2 GiB went, or
 * 60 s passed. Returns the bytes sent. */
static long long fake_stream(fake_t *fk, int fd, const char *unit, size_t len)
{
    static char chunk[65536];
    size_t n = sizeof(chunk) / len * len;
    long long sent = 0;
    uint64_t t0 = pos_test_now_ms();

    for (size_t i = 0; i < n; i += len) {
        memcpy(chunk + i, unit, len);
    }
    while (sent < (2LL << 30) && pos_test_now_ms() - t0 < 60000 && !atomic_load(&fk->stop)) {
        if (fake_send(fd, chunk, n) != 0) {
            break;
        }
        sent += (long long)n;
    }
    return sent;
}

static int fake_sub_fd(fake_t *fk)
{
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (fk->conns[i].fd >= 0 && fk->conns[i].sub) {
            return fk->conns[i].fd;
        }
    }
    return -1;
}

/* Answers one command the way Redis would, enough for the agent. */
static void fake_command(fake_t *fk, fake_conn_t *c, const redisReply *cmd)
{
    int fd = c->fd;

    if (cmd->type != REDIS_REPLY_ARRAY || cmd->elements == 0) {
        return;
    }
    if (arg_is(cmd, 0, "SUBSCRIBE")) {
        c->sub = true;
        for (size_t i = 1; i < cmd->elements; i++) {
            fake_sendf(fd, "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:%zu\r\n", cmd->element[i]->len,
                       cmd->element[i]->str, i);
        }
    } else if (arg_is(cmd, 0, "CLIENT") && arg_is(cmd, 1, "ID")) {
        fake_sendf(fd, ":7\r\n");
    } else if (arg_is(cmd, 0, "CLIENT") && arg_is(cmd, 1, "TRACKING")) {
        fake_sendf(fd, "-ERR no tracking here\r\n");
    } else if (arg_is(cmd, 0, "PUBLISH") && cmd->elements == 3) {
        /* The link's probe, and the agent's own messages: to the
         * subscriber when it listens (it listens to the probe only). */
        int sub = fake_sub_fd(fk);
        bool probe = strncmp(cmd->element[1]->str, "posagent:probe:", 15) == 0;
        if (probe && sub >= 0) {
            fake_sendf(sub, "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
                       cmd->element[1]->len, cmd->element[1]->str, cmd->element[2]->len,
                       cmd->element[2]->str);
        }
        fake_sendf(fd, ":%d\r\n", probe && sub >= 0);
    } else if (arg_is(cmd, 0, "EVAL")) {
        fake_sendf(fd, ":1\r\n"); /* the terminal id's lease: ours */
    } else if (arg_is(cmd, 0, "SCAN")) {
        fake_sendf(fd, "*2\r\n$1\r\n0\r\n*0\r\n");
    } else if (arg_is(cmd, 0, "GET")) {
        fake_sendf(fd, "$-1\r\n");
    } else if (arg_is(cmd, 0, "SET") && cmd->elements > 1 &&
               strcmp(cmd->element[1]->str, POS_FIX_STATUS_KEY) == 0) {
        int n = atomic_fetch_add(&fk->status_sets, 1) + 1;
        int sub = fake_sub_fd(fk);
        if (n == 1 && sub >= 0) {
            /* Online: first a pmessage the agent never asked for. */
            fake_sendf(sub,
                       "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$14\r\npayment:" TID "\r\n$2\r\n{}\r\n");
        }
        if (n != 2 || sub < 0) {
            fake_sendf(fd, "+OK\r\n");
            return;
        }
        /* The next heartbeat: the attack. */
        if (fk->attack == FAKE_BULK) {
            fake_sendf(fd, "+OK\r\n");
            fake_sendf(sub, "*3\r\n$7\r\nmessage\r\n$14\r\npayment:" TID "\r\n$2147483648\r\n");
            atomic_store(&fk->streamed, fake_stream(fk, sub, "x", 1));
        } else {
            fake_sendf(fd, "*2147483647\r\n");
            atomic_store(&fk->streamed, fake_stream(fk, fd, ":1\r\n", 4));
        }
    } else {
        fake_sendf(fd, "+OK\r\n");
    }
}

static void fake_close(fake_conn_t *c)
{
    close(c->fd);
    redisReaderFree(c->rd);
    c->fd = -1;
    c->rd = NULL;
    c->sub = false;
}

static void *fake_main(void *arg)
{
    fake_t *fk = arg;
    char buf[16384];

    while (!atomic_load(&fk->stop)) {
        struct pollfd p[FAKE_CONNS + 1];
        p[0] = (struct pollfd){.fd = fk->lfd, .events = POLLIN};
        for (int i = 0; i < FAKE_CONNS; i++) {
            p[i + 1] = (struct pollfd){.fd = fk->conns[i].fd, .events = POLLIN};
        }
        if (poll(p, FAKE_CONNS + 1, 50) <= 0) {
            continue;
        }
        if (p[0].revents & POLLIN) {
            int fd = accept(fk->lfd, NULL, NULL);
            for (int i = 0; fd >= 0 && i < FAKE_CONNS; i++) {
                if (fk->conns[i].fd < 0) {
                    fk->conns[i].fd = fd;
                    fk->conns[i].rd = redisReaderCreate();
                    fd = -1;
                    atomic_fetch_add(&fk->accepted, 1);
                }
            }
            if (fd >= 0) {
                close(fd);
            }
        }
        for (int i = 0; i < FAKE_CONNS; i++) {
            fake_conn_t *c = &fk->conns[i];
            if (c->fd < 0 || p[i + 1].fd != c->fd || !(p[i + 1].revents & (POLLIN | POLLHUP))) {
                continue;
            }
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                fake_close(c);
                continue;
            }
            redisReaderFeed(c->rd, buf, (size_t)n);
            for (;;) {
                void *cmd = NULL;
                if (redisReaderGetReply(c->rd, &cmd) != REDIS_OK || cmd == NULL) {
                    break;
                }
                fake_command(fk, c, cmd);
                freeReplyObject(cmd);
                if (c->fd < 0) {
                    break;
                }
            }
        }
    }
    return NULL;
}

static fake_t *fake_start(fake_attack_t attack)
{
    fake_t *fk = calloc(1, sizeof(*fk));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int one = 1;

    assert_non_null(fk);
    fk->attack = attack;
    for (int i = 0; i < FAKE_CONNS; i++) {
        fk->conns[i].fd = -1;
    }
    fk->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fk->lfd >= 0);
    setsockopt(fk->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fk->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fk->lfd, 8), 0);
    assert_int_equal(getsockname(fk->lfd, (struct sockaddr *)&sa, &sl), 0);
    fk->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
    return fk;
}

static void fake_stop(fake_t *fk)
{
    atomic_store(&fk->stop, true);
    pthread_join(fk->thread, NULL);
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (fk->conns[i].fd >= 0) {
            fake_close(&fk->conns[i]);
        }
    }
    close(fk->lfd);
    free(fk);
}

static int fake_setup(void **state)
{
    pos_fix_t *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    pos_fix_init(f);
    *state = f;
    return 0;
}

/* Against the fake server: online, the attack, the drop, the reconnect. */
static void run_attack(pos_fix_t *f, fake_attack_t attack, const char *limit_line)
{
    fake_t *fk = fake_start(attack);
    rss_watch_t w;
    long before;

    pos_ini_set(&f->ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)fk->port);
    pos_fix_set_retry(f, 100, 500);
    pos_fix_set_heartbeat(f, 1, 3);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    /* The attack comes with the next heartbeat, a second from now. */
    before = rss_kb(f->agent.pid);
    rss_start(&w, f->agent.pid);
    pos_fix_wait_log(f, limit_line, 1, 10000);
    pos_fix_wait_online(f, 2, 10000);
    long peak = rss_stop(&w);
    fprintf(stderr, "the agent took %lld bytes of the attack before it hung up\n",
            (long long)atomic_load(&fk->streamed));
    assert_rss_bounded(attack == FAKE_BULK ? "2 GB message" : "endless array", before, peak);
    /* Far less than what was on offer: read no further than the header
     * and what the socket buffers held. */
    assert_true(atomic_load(&fk->streamed) < 64LL * MIB);
    /* The heartbeat goes on on the new connection. */
    int sets = atomic_load(&fk->status_sets);
    pos_test_sleep_ms(2500);
    assert_true(atomic_load(&fk->status_sets) >= sets + 2);
    /* The pmessage was dropped and counted, the refusal counted too. */
    assert_int_equal(local_info(f, "link", "pmessages_dropped"), 1);
    assert_int_equal(local_info(f, "link", "replies_refused"), 1);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    fake_stop(fk);
}

static void test_fake_server_2gb_message(void **state)
{
    run_attack(*state, FAKE_BULK,
               "sub: bulk string of 2147483648 bytes exceeds the limit of 266240 bytes; "
               "dropping the connection");
}

static void test_fake_server_endless_array(void **state)
{
    run_attack(*state, FAKE_ARRAY,
               "cmd: array of 2147483647 elements exceeds the limit of 65536 elements; "
               "dropping the connection");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_big_value_from_real_redis),
        cmocka_unit_test_setup_teardown(test_fake_server_2gb_message, fake_setup, pos_fix_teardown),
        cmocka_unit_test_setup_teardown(test_fake_server_endless_array, fake_setup,
                                        pos_fix_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
