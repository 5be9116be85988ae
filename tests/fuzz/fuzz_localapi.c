/*
 * Fuzz target: the local API server (agent/api/localapi.c) above its parser:
 * framing, dispatch by name and arity, built-in commands, deferred replies
 * kept in command order, the in-flight and output limits, protocol errors
 * and disconnects. The server runs for real on a Unix socket in a temporary
 * directory (one per process) with a table of stub commands (the agent's
 * own handlers need the whole agent: cache, outbox, link). Each input is
 * one client connection: the bytes are sent, the client half-closes, and
 * everything the server answers is read until it closes.
 *
 * Stub commands: ECHO x (bulk x), DEFER [err] (answered later, from a
 * timer), BIG n (a bulk of n bytes, up to 256 KiB: the output limit is
 * 64 KiB), ARR ... (an array of the arguments), ERRNO (returns -EINVAL
 * without a reply), NOREPLY (returns 0 without a reply), STATUS text (CR/LF
 * inside), INT.
 *
 * Admission is on and tight, so its paths are fuzzed too: a budget of 64
 * commands (then 1 a second) answers the rest -BUSY, and a turn budget of
 * 5 commands (or 50 us) queues the client across loop turns
 * (QUANTUM-sized rounds cut short, deferred replies resuming a queued
 * client).
 *
 * Invariants: the output is well-formed RESP; one reply per dispatched
 * command, per command answered -BUSY and per protocol error (fewer only
 * when the client was dropped for its output); once the client is gone
 * the server holds no memory for it and every deferred reply was
 * completed; no loop turn ran more commands than the turn budget.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/api/localapi.h"
#include "platform/log.h"
#include "tests/support/fs.h"
#include "tests/support/fuzz.h"

#define MAX_DEFERRED 4096

static uv_loop_t loop;
static pos_localapi_t srv;
static char dir[64], path[96];
static uv_timer_t defer_timer;
static pos_localapi_reply_t *deferred[MAX_DEFERRED];
static bool deferred_err[MAX_DEFERRED];
static size_t ndeferred;

/* ---- stub commands -------------------------------------------------------- */

static void defer_cb(uv_timer_t *t)
{
    (void)t;
    /* Completing one may let the server read more and defer again. */
    while (ndeferred > 0) {
        size_t i = --ndeferred;
        pos_localapi_reply_t *r = deferred[i];
        if (pos_localapi_reply_alive(r)) {
            if (deferred_err[i]) {
                pos_localapi_reply_error(r, "ERR later\r\nand broken");
            } else {
                pos_localapi_reply_bulk(r, "later", 5);
            }
        }
        pos_localapi_reply_done(r);
    }
}

/* Commands run in the current loop turn, and the most in any turn. */
static uint64_t turn_seen;
static uint32_t turn_count, turn_most;

static void count_turn(void)
{
    if (srv.turn != turn_seen) {
        turn_seen = srv.turn;
        turn_count = 0;
    }
    turn_count++;
    if (turn_count > turn_most) {
        turn_most = turn_count;
    }
}

static int cmd_echo(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    (void)owner;
    count_turn();
    (void)argc;
    pos_localapi_reply_bulk(r, argv[1], lens[1]);
    return 0;
}

static int cmd_defer(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                     const size_t *lens)
{
    (void)owner;
    (void)lens;
    count_turn();
    if (ndeferred >= MAX_DEFERRED) {
        return -ENOBUFS;
    }
    deferred_err[ndeferred] = argc > 1 && strcmp(argv[1], "err") == 0;
    deferred[ndeferred++] = r;
    uv_timer_start(&defer_timer, defer_cb, 0, 0);
    return POS_LOCALAPI_PENDING;
}

static int cmd_big(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    static char big[256 * 1024];
    unsigned long n = strtoul(argv[1], NULL, 10);

    (void)owner;
    (void)argc;
    (void)lens;
    count_turn();
    if (n > sizeof(big)) {
        n = sizeof(big);
    }
    memset(big, 'b', n);
    pos_localapi_reply_bulk(r, big, n);
    return 0;
}

static int cmd_arr(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    (void)owner;
    count_turn();
    pos_localapi_reply_array_begin(r, argc - 1);
    for (int i = 1; i < argc; i++) {
        pos_localapi_reply_bulk(r, argv[i], lens[i]);
    }
    return 0;
}

static int cmd_errno(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                     const size_t *lens)
{
    (void)owner;
    (void)r;
    (void)argc;
    (void)argv;
    (void)lens;
    count_turn();
    return -EINVAL;
}

static int cmd_noreply(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens)
{
    (void)owner;
    (void)r;
    (void)argc;
    (void)argv;
    (void)lens;
    count_turn();
    return 0;
}

static int cmd_status(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                      const size_t *lens)
{
    (void)owner;
    (void)argc;
    (void)lens;
    count_turn();
    pos_localapi_reply_status(r, argv[1]);
    return 0;
}

static int cmd_int(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    (void)owner;
    (void)argv;
    (void)lens;
    count_turn();
    pos_localapi_reply_int(r, -(long long)argc);
    return 0;
}

static const pos_localapi_command_t commands[] = {
    {"ECHO", cmd_echo, 2, 2},     {"DEFER", cmd_defer, 1, 2},     {"BIG", cmd_big, 2, 2},
    {"ARR", cmd_arr, 1, -1},      {"ERRNO", cmd_errno, 1, -1},    {"NOREPLY", cmd_noreply, 1, 1},
    {"STATUS", cmd_status, 2, 2}, {"INT", cmd_int, 1, 3},
};

/* ---- the client ----------------------------------------------------------- */

typedef struct client {
    uv_pipe_t pipe;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uv_buf_t in;
    char *out;
    size_t len, cap;
    bool closed;
} client_t;

static void client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    c->closed = true;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    (void)suggested;
    if (c->cap - c->len < 65536) {
        c->cap = c->cap * 2 + 65536;
        c->out = realloc(c->out, c->cap);
        POS_FUZZ_CHECK(c->out != NULL);
    }
    *buf = uv_buf_init(c->out + c->len, (unsigned)(c->cap - c->len));
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = s->data;
    (void)buf;
    if (nread > 0) {
        c->len += (size_t)nread;
    } else if (nread < 0 && !uv_is_closing((uv_handle_t *)&c->pipe)) {
        uv_close((uv_handle_t *)&c->pipe, client_closed); /* EOF or reset */
    }
}

static void client_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status; /* EPIPE when the server dropped us early: fine */
}

static void client_shut(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void client_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;

    POS_FUZZ_CHECK(status == 0);
    POS_FUZZ_CHECK(uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read) == 0);
    if (c->in.len > 0) {
        uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &c->in, 1, client_written);
    }
    uv_shutdown(&c->sreq, (uv_stream_t *)&c->pipe, client_shut);
}

static void setup(void)
{
    pos_localapi_options_t opt;

    signal(SIGPIPE, SIG_IGN); /* as the agent does */
    pos_log_set_level(POS_LOG_ERROR);
    snprintf(dir, sizeof(dir), "%s/posfuzz-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    POS_FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/api.sock", dir);
    POS_FUZZ_CHECK(uv_loop_init(&loop) == 0);
    POS_FUZZ_CHECK(uv_timer_init(&loop, &defer_timer) == 0);
    memset(&opt, 0, sizeof(opt));
    opt.path = path;
    opt.max_clients = 4;
    opt.max_output = 64 * 1024;
    opt.max_inflight = 8;
    opt.limits.max_args = 16;
    opt.limits.max_bulk = 4096;
    opt.limits.max_inline = 1024;
    opt.limits.max_pending = 8192;
    opt.admit.client_rate = 1;
    opt.admit.client_burst = 64;
    opt.admit.turn_budget = 5;
    opt.admit.turn_slice_us = 50;
    opt.commands = commands;
    opt.ncommands = sizeof(commands) / sizeof(commands[0]);
    POS_FUZZ_CHECK(pos_localapi_start(&srv, &loop, &opt) == 0);
}

static void cleanup(void)
{
    pos_test_rm_tree(dir);
}

/* Counts the replies in out[0..len), which must be well-formed RESP. */
static size_t count_replies(const char *out, size_t len)
{
    redisReader *rd = redisReaderCreate();
    size_t n = 0;
    void *reply;

    POS_FUZZ_CHECK(rd != NULL);
    rd->maxbuf = 0;
    POS_FUZZ_CHECK(redisReaderFeed(rd, out, len) == REDIS_OK);
    for (;;) {
        reply = NULL;
        POS_FUZZ_CHECK(redisReaderGetReply(rd, &reply) == REDIS_OK);
        if (reply == NULL) {
            break;
        }
        freeReplyObject(reply);
        n++;
    }
    /* Nothing left over: the server never sends half a reply before closing,
     * except when it dropped the client for its output. */
    POS_FUZZ_CHECK(rd->pos == rd->len || rd->len == 0);
    redisReaderFree(rd);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    pos_localapi_stats_t before, after;
    client_t c;

    if (!ready) {
        setup();
        atexit(cleanup);
        ready = true;
    }
    if (size > 64 * 1024) {
        return 0;
    }
    pos_localapi_get_stats(&srv, &before);
    memset(&c, 0, sizeof(c));
    c.in = uv_buf_init((char *)data, (unsigned)size);
    POS_FUZZ_CHECK(uv_pipe_init(&loop, &c.pipe, 0) == 0);
    c.pipe.data = &c;
    c.creq.data = &c;
    uv_pipe_connect(&c.creq, &c.pipe, path, client_connected);

    /* Until our side has closed, the server has freed its client and every
     * deferred reply is completed. */
    do {
        uv_run(&loop, UV_RUN_ONCE);
        pos_localapi_get_stats(&srv, &after);
    } while (!c.closed || after.clients > 0 || ndeferred > 0);

    POS_FUZZ_CHECK(after.memory == 0);
    uint64_t cmds = after.commands - before.commands;
    uint64_t busy = after.busy - before.busy;
    uint64_t perr = after.protocol_errors - before.protocol_errors;
    uint64_t drops = after.output_drops - before.output_drops;
    POS_FUZZ_CHECK(perr <= 1 && drops <= 1);
    POS_FUZZ_CHECK(turn_most <= 5);
    if (getenv("POS_FUZZ_DEBUG") != NULL) {
        fprintf(stderr,
                "commands %llu, busy %llu, protocol errors %llu, output drops %llu, %zu "
                "bytes:\n%.*s\n",
                (unsigned long long)cmds, (unsigned long long)busy, (unsigned long long)perr,
                (unsigned long long)drops, c.len, (int)(c.len > 400 ? 400 : c.len), c.out);
    }
    if (drops == 0) {
        POS_FUZZ_CHECK(count_replies(c.out, c.len) == cmds + busy + perr);
    }
    free(c.out);
    return 0;
}
