/*
 * The local API server on an in-process libuv loop. The loop runs on the
 * test's main thread; clients (hiredis, raw sockets, redis-cli) run on
 * other threads and wake the loop with a uv_async when they are done.
 * Every test closes everything and ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/api/cli.h"
#include "agent/api/localapi.h"

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t wake;
    pos_localapi_t srv;
    bool started;
    char dir[64];
    char path[128];
    int deferred_open; /* deferred requests not yet completed */
    int closed;
    /* the example "cache" */
    char kv_key[8][32];
    char kv_val[8][64];
    int kv_n;
} fixture_t;

static void wake_cb(uv_async_t *a)
{
    uv_stop(a->loop);
}

/* A deferred request: answered by a timer, like a cache read-through
 * waiting for Redis. */
typedef struct slow_req {
    uv_timer_t timer;
    fixture_t *fx;
    pos_localapi_reply_t *r;
    size_t len;
    char value[64];
} slow_req_t;

static void slow_closed(uv_handle_t *h)
{
    free(h->data);
}

static void slow_fire(uv_timer_t *t)
{
    slow_req_t *q = t->data;

    if (pos_localapi_reply_alive(q->r)) {
        pos_localapi_reply_bulk(q->r, q->value, q->len);
    }
    pos_localapi_reply_done(q->r);
    q->fx->deferred_open--;
    uv_close((uv_handle_t *)&q->timer, slow_closed);
}

/* SLOW <ms> <value>: replies <value> after <ms> milliseconds. */
static int h_slow(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                  const size_t *lens)
{
    fixture_t *fx = owner;
    slow_req_t *q = calloc(1, sizeof(*q));

    (void)argc;
    if (q == NULL || lens[2] >= sizeof(q->value)) {
        free(q);
        return -ENOMEM;
    }
    q->fx = fx;
    q->r = r;
    q->len = lens[2];
    memcpy(q->value, argv[2], lens[2]);
    uv_timer_init(&fx->loop, &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, slow_fire, strtoull(argv[1], NULL, 10), 0);
    fx->deferred_open++;
    return POS_LOCALAPI_PENDING;
}

static int h_get(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                 const size_t *lens)
{
    fixture_t *fx = owner;

    (void)argc;
    for (int i = 0; i < fx->kv_n; i++) {
        if (strlen(fx->kv_key[i]) == lens[1] && memcmp(fx->kv_key[i], argv[1], lens[1]) == 0) {
            pos_localapi_reply_bulk(r, fx->kv_val[i], strlen(fx->kv_val[i]));
            return 0;
        }
    }
    pos_localapi_reply_nil(r);
    return 0;
}

static int h_mget(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                  const size_t *lens)
{
    pos_localapi_reply_array_begin(r, argc - 1);
    for (int i = 1; i < argc; i++) {
        const char *a[2] = {"GET", argv[i]};
        size_t l[2] = {3, lens[i]};
        h_get(owner, r, 2, a, l);
    }
    return 0;
}

static int h_echo(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                  const size_t *lens)
{
    (void)owner;
    (void)argc;
    pos_localapi_reply_bulk(r, argv[1], lens[1]);
    return 0;
}

static char big_value[256 * 1024];

/* BIG <n>: a bulk of n bytes (n <= 256 KiB). */
static int h_big(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                 const size_t *lens)
{
    size_t n = strtoull(argv[1], NULL, 10);

    (void)owner;
    (void)argc;
    (void)lens;
    if (n > sizeof(big_value)) {
        pos_localapi_reply_error(r, "ERR too big");
        return 0;
    }
    pos_localapi_reply_bulk(r, big_value, n);
    return 0;
}

static int h_info(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                  const size_t *lens)
{
    static const char server[] = "# Server\r\nposagent_version:0.1.0\r\nuptime_in_seconds:42\r\n";
    static const char outbox[] = "# Outbox\r\noutbox_entries:3\r\noutbox_dropped:0\r\n";

    (void)owner;
    (void)lens;
    if (argc == 2 && strcasecmp(argv[1], "outbox") == 0) {
        pos_localapi_reply_bulk(r, outbox, sizeof(outbox) - 1);
    } else {
        char all[256];
        int n = snprintf(all, sizeof(all), "%s\r\n%s", server, outbox);
        pos_localapi_reply_bulk(r, all, (size_t)n);
    }
    return 0;
}

static int h_incrby(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    static long long counter;

    (void)owner;
    (void)lens;
    counter += argc == 3 ? strtoll(argv[2], NULL, 10) : 1;
    pos_localapi_reply_int(r, counter);
    return 0;
}

/* How the agent registers its commands: one table, names, arity, handlers. */
static const pos_localapi_command_t commands[] = {
    {"GET", h_get, 2, 2},     {"MGET", h_mget, 2, -1},    {"ECHO", h_echo, 2, 2},
    {"SLOW", h_slow, 3, 3},   {"BIG", h_big, 2, 2},       {"INFO", h_info, 1, 2},
    {"INCR", h_incrby, 2, 2}, {"INCRBY", h_incrby, 3, 3},
};

static void fx_options(fixture_t *fx, pos_localapi_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->path = fx->path;
    opt->max_clients = 128;
    opt->commands = commands;
    opt->ncommands = sizeof(commands) / sizeof(commands[0]);
    opt->owner = fx;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    pos_localapi_options_t opt;

    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/posapi-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/run/agent.sock", fx->dir);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_async_init(&fx->loop, &fx->wake, wake_cb), 0);
    snprintf(fx->kv_key[0], 32, "product:P-7");
    snprintf(fx->kv_val[0], 64, "{\"name\":\"Espresso\",\"price\":2.5}");
    snprintf(fx->kv_key[1], 32, "greeting");
    snprintf(fx->kv_val[1], 64, "hello");
    fx->kv_n = 2;
    memset(big_value, 'v', sizeof(big_value));
    fx_options(fx, &opt);
    assert_int_equal(pos_localapi_start(&fx->srv, &fx->loop, &opt), 0);
    fx->started = true;
    *state = fx;
    return 0;
}

static void on_server_closed(void *arg)
{
    ((fixture_t *)arg)->closed = 1;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[160];

    if (fx->started) {
        pos_localapi_close(&fx->srv, on_server_closed, fx);
    }
    uv_close((uv_handle_t *)&fx->wake, NULL);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(fx->closed, fx->started ? 1 : 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Runs fn(arg) on a thread while the loop serves; returns when it is done. */
typedef struct client_run {
    fixture_t *fx;
    void *(*fn)(void *);
    void *arg;
    void *result;
} client_run_t;

static void *client_thread(void *p)
{
    client_run_t *run = p;

    run->result = run->fn(run->arg);
    uv_async_send(&run->fx->wake);
    return NULL;
}

static void *serve_while(fixture_t *fx, void *(*fn)(void *), void *arg)
{
    client_run_t run = {fx, fn, arg, NULL};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, client_thread, &run), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* until the thread's wake-up */
    assert_int_equal(pthread_join(t, NULL), 0);
    return run.result;
}

/* ---- client helpers (run on client threads) ----------------------------- */

static int raw_connect(const char *path)
{
    struct sockaddr_un sa;
    struct timeval tv = {10, 0};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int raw_send(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return -1;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until EOF (returns the length) or timeout/error (returns -1). */
static ssize_t raw_read_to_eof(int fd, char *buf, size_t cap)
{
    size_t len = 0;

    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n == 0) {
            buf[len] = '\0';
            return (ssize_t)len;
        }
        if (n < 0) {
            return -1;
        }
        len += (size_t)n;
        if (len + 1 >= cap) {
            return -1;
        }
    }
}

static int expect_status(redisContext *c, const char *cmd, const char *want)
{
    redisReply *r = redisCommand(c, cmd);
    int ok = r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
             strcmp(r->str, want) == 0;
    if (!ok) {
        fprintf(stderr, "%s: got type %d \"%s\"\n", cmd, r ? r->type : -1, r ? r->str : "?");
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* ---- tests -------------------------------------------------------------- */

static void *basic_client(void *arg)
{
    fixture_t *fx = arg;
    redisContext *c = redisConnectUnix(fx->path);
    redisReply *r;
    intptr_t fails = 0;

    if (c == NULL || c->err) {
        return (void *)1;
    }
    fails += expect_status(c, "PING", "PONG") != 0;
    fails += expect_status(c, "ping hello", "hello") != 0;
    fails += expect_status(c, "GET greeting", "hello") != 0;
    r = redisCommand(c, "GET nothing");
    fails += r == NULL || r->type != REDIS_REPLY_NIL;
    freeReplyObject(r);
    r = redisCommand(c, "MGET greeting nothing product:P-7");
    fails += r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
             r->element[1]->type != REDIS_REPLY_NIL || strcmp(r->element[0]->str, "hello") != 0;
    freeReplyObject(r);
    r = redisCommand(c, "INCRBY counter:x 5");
    fails += r == NULL || r->type != REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    r = redisCommand(c, "FLUSHALL");
    fails += r == NULL || r->type != REDIS_REPLY_ERROR ||
             strcmp(r->str, "ERR unknown command 'FLUSHALL'") != 0;
    freeReplyObject(r);
    r = redisCommand(c, "GET");
    fails += r == NULL || r->type != REDIS_REPLY_ERROR ||
             strcmp(r->str, "ERR wrong number of arguments for 'get' command") != 0;
    freeReplyObject(r);
    /* A hostile name is quoted sanitised and truncated. */
    r = redisCommand(
        c, "%b", "x'\r\n\x01yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
        (size_t)72);
    fails += r == NULL || r->type != REDIS_REPLY_ERROR || strchr(r->str, '\n') != NULL ||
             strstr(r->str, "'x????yyy") == NULL || strstr(r->str, "...'") == NULL;
    freeReplyObject(r);
    r = redisCommand(c, "COMMAND DOCS");
    fails += r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 0;
    freeReplyObject(r);
    fails += expect_status(c, "QUIT", "OK") != 0;
    redisFree(c);
    return (void *)fails;
}

static void test_basic_commands(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal((intptr_t)serve_while(fx, basic_client, fx), 0);
}

static void test_socket_mode_and_dir(void **state)
{
    fixture_t *fx = *state;
    struct stat st;
    char dir[160];

    assert_int_equal(stat(fx->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    snprintf(dir, sizeof(dir), "%s/run", fx->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0750);
}

static void test_stale_and_live_socket(void **state)
{
    fixture_t *fx = *state;
    pos_localapi_options_t opt;
    pos_localapi_t second;
    struct sockaddr_un sa;
    char path[160];
    int fd;

    /* A live agent on the path: refused, and its socket stays. */
    fx_options(fx, &opt);
    assert_int_equal(pos_localapi_start(&second, &fx->loop, &opt), -EADDRINUSE);
    assert_int_equal(access(fx->path, F_OK), 0);

    /* A socket file nobody listens on: replaced. */
    snprintf(path, sizeof(path), "%s/stale.sock", fx->dir);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(access(path, F_OK), 0);
    opt.path = path;
    assert_int_equal(pos_localapi_start(&second, &fx->loop, &opt), 0);
    fd = raw_connect(path);
    assert_true(fd >= 0);
    close(fd);
    pos_localapi_close(&second, NULL, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(access(path, F_OK), -1); /* removed at close */

    /* A regular file is never removed. */
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(pos_localapi_start(&second, &fx->loop, &opt), -EEXIST);
    assert_int_equal(access(path, F_OK), 0);

    /* Too long for sun_path. */
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(pos_localapi_start(&second, &fx->loop, &opt), -ENAMETOOLONG);
}

/* Garbage and an oversized bulk: "-ERR Protocol error" then EOF, while a
 * well-behaved client on another connection keeps working. */
typedef struct bad_input {
    fixture_t *fx;
    const char *send;
    size_t len;
    const char *want_prefix;
} bad_input_t;

static void *bad_client(void *arg)
{
    bad_input_t *b = arg;
    redisContext *good = redisConnectUnix(b->fx->path);
    char buf[4096];
    ssize_t n;
    intptr_t fails = 0;
    int fd = raw_connect(b->fx->path);

    if (good == NULL || good->err || fd < 0) {
        return (void *)100;
    }
    fails += expect_status(good, "PING", "PONG") != 0;
    fails += raw_send(fd, b->send, b->len) != 0;
    n = raw_read_to_eof(fd, buf, sizeof(buf));
    if (n < 0 || strncmp(buf, b->want_prefix, strlen(b->want_prefix)) != 0) {
        fprintf(stderr, "bad client got %zd \"%s\"\n", n, n >= 0 ? buf : "");
        fails++;
    }
    close(fd);
    fails += expect_status(good, "GET greeting", "hello") != 0;
    redisFree(good);
    return (void *)fails;
}

static void test_garbage_disconnects(void **state)
{
    fixture_t *fx = *state;
    static const char garbage[] = "*1\r\n$abc\r\n";
    bad_input_t b = {fx, garbage, sizeof(garbage) - 1,
                     "-ERR Protocol error: invalid bulk length\r\n"};
    pos_localapi_stats_t st;

    assert_int_equal((intptr_t)serve_while(fx, bad_client, &b), 0);
    pos_localapi_get_stats(&fx->srv, &st);
    assert_int_equal(st.protocol_errors, 1);
}

static void test_oversized_bulk_disconnects(void **state)
{
    fixture_t *fx = *state;
    /* Earlier replies still come first. */
    static const char big[] = "PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000\r\nxxxx";
    bad_input_t b = {fx, big, sizeof(big) - 1,
                     "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"};

    assert_int_equal((intptr_t)serve_while(fx, bad_client, &b), 0);
}

static void test_inline_and_quit(void **state)
{
    fixture_t *fx = *state;
    static const char in[] = "PING\r\nECHO \"a b\"\nQUIT\r\nPING\r\n";
    bad_input_t b = {fx, in, sizeof(in) - 1, "+PONG\r\n$3\r\na b\r\n+OK\r\n"};

    assert_int_equal((intptr_t)serve_while(fx, bad_client, &b), 0);
}

typedef struct pipeline {
    fixture_t *fx;
    int n;
    double seconds;
} pipeline_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *pipeline_client(void *arg)
{
    pipeline_t *p = arg;
    redisContext *c = redisConnectUnix(p->fx->path);
    intptr_t fails = 0;
    double t0;

    if (c == NULL || c->err) {
        return (void *)1;
    }
    t0 = now_s();
    /* Batches of 1000: a pipeline whose replies exceed the 1 MiB output
     * bound must read as it goes. */
    for (int base = 0; base < p->n; base += 1000) {
        int end = base + 1000 < p->n ? base + 1000 : p->n;
        for (int i = base; i < end; i++) {
            redisAppendCommand(c, "ECHO %d", i);
        }
        for (int i = base; i < end; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type != REDIS_REPLY_STRING ||
                atoi(r->str) != i) {
                fails++;
            }
            freeReplyObject(r);
        }
    }
    p->seconds = now_s() - t0;
    redisFree(c);
    return (void *)fails;
}

static void test_pipeline_1000_in_order(void **state)
{
    fixture_t *fx = *state;
    pipeline_t p = {fx, 1000, 0};

    assert_int_equal((intptr_t)serve_while(fx, pipeline_client, &p), 0);
    p.n = 100000;
    assert_int_equal((intptr_t)serve_while(fx, pipeline_client, &p), 0);
    print_message("pipelined ECHO: %d in %.3f s = %.0f commands/s\n", p.n, p.seconds,
                  p.n / p.seconds);
}

typedef struct many {
    fixture_t *fx;
    atomic_int fails;
    atomic_int next;
    pthread_barrier_t barrier;
} many_t;

static void *one_of_many(void *arg)
{
    many_t *m = arg;
    redisContext *c = redisConnectUnix(m->fx->path);
    int me = atomic_fetch_add(&m->next, 1);

    if (c == NULL || c->err) {
        m->fails++;
        pthread_barrier_wait(&m->barrier);
        return NULL;
    }
    pthread_barrier_wait(&m->barrier); /* all 100 connected at once */
    for (int i = 0; i < 50; i++) {
        char want[32];
        redisReply *r;
        snprintf(want, sizeof(want), "client%d-%d", me, i);
        r = redisCommand(c, "ECHO %s", want);
        if (r == NULL || r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0) {
            m->fails++;
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void *many_clients(void *arg)
{
    many_t *m = arg;
    pthread_t t[100];

    pthread_barrier_init(&m->barrier, NULL, 100);
    for (int i = 0; i < 100; i++) {
        pthread_create(&t[i], NULL, one_of_many, m);
    }
    for (int i = 0; i < 100; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&m->barrier);
    return NULL;
}

static void test_100_concurrent_clients(void **state)
{
    fixture_t *fx = *state;
    many_t m = {.fx = fx};
    pos_localapi_stats_t st;

    serve_while(fx, many_clients, &m);
    assert_int_equal(m.fails, 0);
    pos_localapi_get_stats(&fx->srv, &st);
    assert_int_equal(st.accepted, 100);
    assert_int_equal(st.commands, 5000);
    print_message("100 clients: peak memory %zu bytes (%zu per client)\n", st.memory_peak,
                  st.memory_peak / 100);
}

/* A client that sends and never reads: cut off at 1 MiB of unsent replies;
 * the server's memory stays bounded and another client is unaffected. */
typedef struct lazy {
    fixture_t *fx;
    int sent;
    int got_eof;
} lazy_t;

static void *lazy_client(void *arg)
{
    lazy_t *l = arg;
    int fd = raw_connect(l->fx->path);
    int small = 4096;
    redisContext *good;
    char buf[65536];
    intptr_t fails = 0;

    if (fd < 0) {
        return (void *)1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* 64 KiB per reply; 200 of them is 12.5 MiB if nobody intervened. */
    for (l->sent = 0; l->sent < 200; l->sent++) {
        if (raw_send(fd, "BIG 65536\r\n", 11) != 0) {
            break;
        }
    }
    good = redisConnectUnix(l->fx->path);
    fails += good == NULL || good->err || expect_status(good, "PING", "PONG") != 0;
    redisFree(good);
    /* Now drain: some replies, then EOF (the server gave up on us). */
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0) {
            l->got_eof = 1;
            break;
        }
        if (n < 0) {
            break; /* ECONNRESET also means cut off */
        }
    }
    if (!l->got_eof) {
        l->got_eof = errno == ECONNRESET ? 1 : 0;
    }
    close(fd);
    return (void *)fails;
}

static void test_client_that_never_reads(void **state)
{
    fixture_t *fx = *state;
    lazy_t l = {.fx = fx};
    pos_localapi_stats_t st;

    assert_int_equal((intptr_t)serve_while(fx, lazy_client, &l), 0);
    assert_true(l.got_eof);
    pos_localapi_get_stats(&fx->srv, &st);
    assert_int_equal(st.output_drops, 1);
    print_message("never-reading client: peak memory %zu bytes\n", st.memory_peak);
    /* 1 MiB of replies plus one reply, write chunking and the parser. */
    assert_true(st.memory_peak > 1024 * 1024);
    assert_true(st.memory_peak < 1024 * 1024 + 512 * 1024);
}

/* Deferred replies complete out of order but leave in command order. */
static void *deferred_client(void *arg)
{
    fixture_t *fx = arg;
    int fd = raw_connect(fx->path);
    static const char in[] = "SLOW 60 first\r\nPING\r\nSLOW 5 second\r\nGET greeting\r\n"
                             "SLOW 0 third\r\nSLOW 30 fourth\r\nQUIT\r\n";
    static const char want[] = "$5\r\nfirst\r\n+PONG\r\n$6\r\nsecond\r\n$5\r\nhello\r\n"
                               "$5\r\nthird\r\n$6\r\nfourth\r\n+OK\r\n";
    char buf[1024];
    ssize_t n;

    if (fd < 0 || raw_send(fd, in, sizeof(in) - 1) != 0) {
        return (void *)1;
    }
    n = raw_read_to_eof(fd, buf, sizeof(buf));
    close(fd);
    if (n != (ssize_t)sizeof(want) - 1 || memcmp(buf, want, sizeof(want) - 1) != 0) {
        fprintf(stderr, "deferred: got %zd \"%s\"\n", n, n > 0 ? buf : "");
        return (void *)1;
    }
    return NULL;
}

static void test_deferred_replies_in_order(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal((intptr_t)serve_while(fx, deferred_client, fx), 0);
    assert_int_equal(fx->deferred_open, 0);
}

/* A client leaves while its reply is deferred: the owner completes it
 * later, and closing the server waits for that. */
static void *leaving_client(void *arg)
{
    fixture_t *fx = arg;
    int fd = raw_connect(fx->path);

    if (fd < 0 || raw_send(fd, "SLOW 100 late\r\n", 15) != 0) {
        return (void *)1;
    }
    usleep(20000);
    close(fd);
    return NULL;
}

static void test_deferred_reply_for_gone_client(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal((intptr_t)serve_while(fx, leaving_client, fx), 0);
    assert_int_equal(fx->deferred_open, 1); /* still waiting */
    /* teardown closes the server: done only after the timer completes it */
}

static void *rejected_client(void *arg)
{
    fixture_t *fx = arg;
    redisContext *a = redisConnectUnix(fx->path);
    redisContext *b = redisConnectUnix(fx->path);
    int fd;
    char buf[256];
    ssize_t n;
    intptr_t fails = 0;

    fails += expect_status(a, "PING", "PONG") != 0;
    fails += expect_status(b, "PING", "PONG") != 0;
    fd = raw_connect(fx->path);
    n = raw_read_to_eof(fd, buf, sizeof(buf));
    fails += n < 0 || strcmp(buf, "-ERR max number of clients reached\r\n") != 0;
    close(fd);
    fails += expect_status(a, "PING", "PONG") != 0;
    redisFree(a);
    redisFree(b);
    return (void *)fails;
}

static void test_max_clients(void **state)
{
    fixture_t *fx = *state;
    pos_localapi_options_t opt;

    pos_localapi_close(&fx->srv, NULL, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* its handles close in this turn */
    fx_options(fx, &opt);
    opt.max_clients = 2;
    assert_int_equal(pos_localapi_start(&fx->srv, &fx->loop, &opt), 0);
    fx->started = true;
    assert_int_equal((intptr_t)serve_while(fx, rejected_client, fx), 0);
}

/* redis-cli itself, as the POS application's developers would use it. */
static void *cli_client(void *arg)
{
    fixture_t *fx = arg;
    char cmd[512], out[256];
    FILE *p;
    intptr_t fails = 0;

    snprintf(cmd, sizeof(cmd), "redis-cli -s '%s' PING 2>&1", fx->path);
    p = popen(cmd, "r");
    fails += p == NULL || fgets(out, sizeof(out), p) == NULL || strcmp(out, "PONG\n") != 0;
    fails += p == NULL || pclose(p) != 0;
    snprintf(cmd, sizeof(cmd), "redis-cli -s '%s' GET product:P-7 2>&1", fx->path);
    p = popen(cmd, "r");
    fails += p == NULL || fgets(out, sizeof(out), p) == NULL ||
             strcmp(out, "{\"name\":\"Espresso\",\"price\":2.5}\n") != 0;
    fails += p == NULL || pclose(p) != 0;
    /* Interactive start-up path ("COMMAND DOCS" first), fed from a pipe. */
    snprintf(cmd, sizeof(cmd), "printf 'GET greeting\\n' | redis-cli -s '%s' 2>&1", fx->path);
    p = popen(cmd, "r");
    fails += p == NULL || fgets(out, sizeof(out), p) == NULL || strcmp(out, "hello\n") != 0;
    fails += p == NULL || pclose(p) != 0;
    return (void *)fails;
}

static void test_redis_cli(void **state)
{
    fixture_t *fx = *state;

    if (system("redis-cli --version >/dev/null 2>&1") != 0) {
        skip();
    }
    assert_int_equal((intptr_t)serve_while(fx, cli_client, fx), 0);
}

/* The technician's CLI against the server. */
typedef struct cli_case {
    int argc;
    const char *argv[4];
    int rc;
    const char *out; /* expected stdout, or NULL: not checked */
} cli_case_t;

static void *cli_cases(void *arg)
{
    fixture_t *fx = arg;
    static const cli_case_t cases[] = {
        {1,
         {"status"},
         0,
         "Server\n  posagent_version: 0.1.0\n  uptime_in_seconds: 42\n\n"
         "Outbox\n  outbox_entries: 3\n  outbox_dropped: 0\n"},
        {1, {"outbox"}, 0, "Outbox\n  outbox_entries: 3\n  outbox_dropped: 0\n"},
        {3, {"cache", "get", "greeting"}, 0, "hello\n"},
        {3, {"cache", "get", "nothing"}, POS_CLI_EX_NOTFOUND, ""},
        {2, {"cache", "get"}, POS_CLI_EX_USAGE, ""},
        {1, {"bogus"}, POS_CLI_EX_USAGE, ""},
    };
    intptr_t fails = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL, *err = NULL;
        size_t outlen = 0, errlen = 0;
        FILE *o = open_memstream(&out, &outlen), *e = open_memstream(&err, &errlen);
        int rc = pos_cli_run(cases[i].argc, (char **)cases[i].argv, fx->path, o, e);
        fclose(o);
        fclose(e);
        if (rc != cases[i].rc || (cases[i].out != NULL && strcmp(out, cases[i].out) != 0)) {
            fprintf(stderr, "cli case %zu: rc %d out \"%s\" err \"%s\"\n", i, rc, out, err);
            fails++;
        }
        free(out);
        free(err);
    }
    return (void *)fails;
}

static void test_cli(void **state)
{
    fixture_t *fx = *state;
    char *argv[] = {"status"};
    char path[160];
    FILE *null = fopen("/dev/null", "w");

    assert_int_equal((intptr_t)serve_while(fx, cli_cases, fx), 0);
    /* No agent on the path: EX_UNAVAILABLE. */
    snprintf(path, sizeof(path), "%s/none.sock", fx->dir);
    assert_int_equal(pos_cli_run(1, argv, path, null, null), POS_CLI_EX_UNAVAILABLE);
    fclose(null);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode_and_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_and_live_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_bulk_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_and_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_1000_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100_concurrent_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_that_never_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_replies_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_reply_for_gone_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
