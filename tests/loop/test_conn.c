/*
 * One Redis connection (agent/link/conn.c) on a real libuv loop, with a
 * loopback socket or an in-memory transport standing in for the server:
 * the replies handed out per loop turn are bounded (POS_CONN_TURN_REPLIES)
 * and the loop's other handles run in between; the RESP guard drops the
 * connection on a reply over a limit after handing out the replies before
 * it, and blames the right command; pmessage arrays are dropped and
 * counted. Every test closes everything and ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agent/link/conn.h"
#include "tests/support/loop.h"

#define MSG "*3\r\n$7\r\nmessage\r\n$9\r\nchannel:1\r\n$5\r\nhello\r\n"

/* What one command heard back. */
typedef struct cmd_seen {
    int replies;
    int err;
} cmd_seen_t;

typedef struct fx {
    uv_loop_t loop;
    pos_conn_t c;
    uv_check_t turn; /* once per loop turn, after polling */
    bool opened, closed, final;
    int close_err;
    int pushes;
    int turn_start;   /* pushes when the current turn began */
    int max_per_turn; /* most pushes handed out in one turn */
    int turns_with_pushes;
    int want; /* pushes to wait for */
    cmd_seen_t cmds[8];
} fx_t;

static void on_open(pos_conn_t *c)
{
    ((fx_t *)c->data)->opened = true;
}

static void on_push(pos_conn_t *c, const redisReply *r)
{
    fx_t *f = c->data;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    f->pushes++;
}

static void on_closed(pos_conn_t *c, int err)
{
    fx_t *f = c->data;
    f->closed = true;
    f->close_err = err;
}

static void turn_cb(uv_check_t *h)
{
    fx_t *f = h->data;
    int n = f->pushes - f->turn_start;

    if (n > f->max_per_turn) {
        f->max_per_turn = n;
    }
    f->turns_with_pushes += n > 0;
    f->turn_start = f->pushes;
}

static void cmd_cb(void *ctx, const redisReply *r, int err)
{
    cmd_seen_t *seen = ctx;

    if (err != 0) {
        assert_null(r);
        seen->err = err;
    } else {
        assert_non_null(r);
        seen->replies++;
    }
}

/* ---- the in-memory transport: the test hands bytes to pos_conn_feed() ---- */

static int mem_connect(pos_conn_t *c, const char *host, uint16_t port)
{
    (void)host;
    (void)port;
    pos_conn_transport_ready(c);
    return 0;
}

static int mem_start(pos_conn_t *c)
{
    (void)c;
    return -EPROTO;
}

static int mem_write(pos_conn_t *c, const char *buf, size_t len)
{
    (void)c;
    (void)buf;
    (void)len;
    return 0;
}

static const pos_transport_ops_t mem_transport = {
    .start = mem_start,
    .write = mem_write,
    .on_read = pos_conn_feed,
    .connect = mem_connect,
};

static void fx_init_timeout(fx_t *f, bool subscriber, const pos_transport_ops_t *transport,
                            uint32_t command_timeout_ms)
{
    static const pos_conn_callbacks_t cb = {
        .on_open = on_open,
        .on_push = on_push,
        .on_closed = on_closed,
    };
    pos_conn_options_t o = {
        .name = subscriber ? "sub" : "cmd",
        .connect_timeout_ms = 2000,
        .command_timeout_ms = command_timeout_ms,
        .subscriber = subscriber,
        .transport = transport,
    };

    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(pos_conn_init(&f->loop, &f->c, &o, &cb), 0);
    f->c.data = f;
    assert_int_equal(uv_check_init(&f->loop, &f->turn), 0);
    f->turn.data = f;
    assert_int_equal(uv_check_start(&f->turn, turn_cb), 0);
}

static void fx_init(fx_t *f, bool subscriber, const pos_transport_ops_t *transport)
{
    fx_init_timeout(f, subscriber, transport, 5000);
}

static void conn_final(pos_conn_t *c)
{
    ((fx_t *)c->data)->final = true;
}

static void fx_close(fx_t *f)
{
    pos_conn_close(&f->c, conn_final);
    uv_close((uv_handle_t *)&f->turn, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_true(f->final);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static bool pushes_reached(const void *arg)
{
    const fx_t *f = arg;
    return f->pushes >= f->want;
}

static bool is_open(const void *arg)
{
    return ((const fx_t *)arg)->opened;
}

static bool is_closed(const void *arg)
{
    return ((const fx_t *)arg)->closed;
}

/* 20,000 messages from a real socket at once: never more than the budget
 * in one turn, all of them in order, and reading resumes after each pause. */
static void test_turn_budget_on_a_socket(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int lfd, fd, n = 20000;
    size_t len = strlen(MSG) * (size_t)n;
    char *all = malloc(len);

    (void)state;
    assert_non_null(f);
    assert_non_null(all);
    for (int i = 0; i < n; i++) {
        memcpy(all + strlen(MSG) * (size_t)i, MSG, strlen(MSG));
    }
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);

    fx_init(f, true, NULL);
    assert_int_equal(pos_conn_connect(&f->c, "127.0.0.1", ntohs(sa.sin_port)), 0);
    assert_true(pos_test_loop_until(&f->loop, is_open, f, 5000));
    fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    /* About 1.1 MB: the loop must run to take it, so the writing is done
     * a piece at a time between turns. */
    f->want = n;
    size_t off = 0;
    uint64_t t0 = uv_hrtime();
    while (f->pushes < n && uv_hrtime() - t0 < 20000000000ull) {
        if (off < len) {
            ssize_t w = send(fd, all + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
            }
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    fprintf(stderr, "%d messages: at most %d per turn, in %d turns; %llu pauses\n", f->pushes,
            f->max_per_turn, f->turns_with_pushes, (unsigned long long)f->c.stats.pauses);
    assert_int_equal(f->pushes, n);
    assert_true(f->max_per_turn <= (int)POS_CONN_TURN_REPLIES);
    assert_true(f->turns_with_pushes >= n / (int)POS_CONN_TURN_REPLIES);
    assert_true(f->c.stats.pauses > 0);
    assert_false(f->c.paused); /* drained: reading again */
    assert_true(pos_conn_is_open(&f->c));

    /* Still reading after all those pauses: one more arrives. */
    assert_int_equal(send(fd, MSG, strlen(MSG), MSG_NOSIGNAL), (ssize_t)strlen(MSG));
    f->want = n + 1;
    assert_true(pos_test_loop_until(&f->loop, pushes_reached, f, 5000));
    close(fd);
    close(lfd);
    free(all);
    fx_close(f);
    free(f);
}

/* Fed at once, the replies come out a budget per turn, timers in between. */
static int timer_seen_at = -1;

static void timer_cb(uv_timer_t *t)
{
    fx_t *f = t->data;
    timer_seen_at = f->pushes;
}

static void test_turn_budget_lets_timers_run(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    int n = 1000;
    uv_timer_t timer;

    (void)state;
    assert_non_null(f);
    fx_init(f, true, &mem_transport);
    assert_int_equal(pos_conn_connect(&f->c, "mem", 0), 0);
    assert_true(f->opened);
    for (int i = 0; i < n; i++) {
        assert_int_equal(pos_conn_feed(&f->c, MSG, strlen(MSG)), 0);
    }
    /* The first budget went out within the feeds (its count, or less if
     * its time ran out first); the rest waits. */
    int first = f->pushes;
    assert_true(first > 0 && first <= (int)POS_CONN_TURN_REPLIES);
    assert_true(f->c.paused);
    uv_timer_init(&f->loop, &timer);
    timer.data = f;
    uv_timer_start(&timer, timer_cb, 0, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    /* The timer ran before the next budget was handed out. */
    assert_int_equal(timer_seen_at, first);
    assert_true(f->pushes > first && f->pushes <= first + (int)POS_CONN_TURN_REPLIES);
    /* Then at most a budget per turn until none is left. */
    int runs = 0, left = n - f->pushes;
    while (f->pushes < n && runs < n) {
        int before = f->pushes;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_true(f->pushes - before > 0 && f->pushes - before <= (int)POS_CONN_TURN_REPLIES);
        runs++;
    }
    assert_int_equal(f->pushes, n);
    assert_true(runs >= (left + (int)POS_CONN_TURN_REPLIES - 1) / (int)POS_CONN_TURN_REPLIES);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* drained: reading again */
    assert_false(f->c.paused);
    uv_close((uv_handle_t *)&timer, NULL);
    fx_close(f);
    free(f);
}

/* A command's reply that has arrived but waits behind a flood for its turn
 * is not a timeout: the server answered in time, the agent is behind. */
static void test_deadline_not_judged_while_behind(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    const char *argv[] = {"CLIENT", "ID"};
    int n = 2000;

    (void)state;
    assert_non_null(f);
    fx_init_timeout(f, true, &mem_transport, 20);
    assert_int_equal(pos_conn_connect(&f->c, "mem", 0), 0);
    assert_int_equal(pos_conn_commandv(&f->c, cmd_cb, &f->cmds[0], 2, argv), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(pos_conn_feed(&f->c, MSG, strlen(MSG)), 0);
    }
    assert_int_equal(pos_conn_feed(&f->c, ":7\r\n", 4), 0);
    assert_true(pos_conn_busy(&f->c));
    usleep(40 * 1000); /* the deadline passes while the replies wait */
    f->want = n;
    assert_true(pos_test_loop_until(&f->loop, pushes_reached, f, 5000));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->cmds[0].replies, 1);
    assert_int_equal(f->cmds[0].err, 0);
    assert_false(f->closed);
    assert_false(pos_conn_busy(&f->c));

    /* Once nothing waits, a late reply is a timeout again. */
    assert_int_equal(pos_conn_commandv(&f->c, cmd_cb, &f->cmds[1], 2, argv), 0);
    assert_true(pos_test_loop_until(&f->loop, is_closed, f, 2000));
    assert_int_equal(f->cmds[1].err, -ETIMEDOUT);
    fx_close(f);
    free(f);
}

/* The guard refuses the third reply: the first two are answered, the
 * third command fails with -EMSGSIZE, the fourth with -ECONNRESET. */
static void test_refused_reply_blames_its_command(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    const char *argv[] = {"GET", "k"};

    (void)state;
    assert_non_null(f);
    fx_init(f, false, &mem_transport);
    assert_int_equal(pos_conn_connect(&f->c, "mem", 0), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pos_conn_commandv(&f->c, cmd_cb, &f->cmds[i], 2, argv), 0);
    }
    /* Two replies and the header of a 300 KB bulk, in one read. */
    static const char in[] = "$1\r\na\r\n$-1\r\n$300000\r\nxxxx";
    assert_int_equal(pos_conn_feed(&f->c, in, sizeof(in) - 1), 0);
    assert_true(pos_test_loop_until(&f->loop, is_closed, f, 2000));
    assert_int_equal(f->cmds[0].replies, 1);
    assert_int_equal(f->cmds[1].replies, 1);
    assert_int_equal(f->cmds[2].replies, 0);
    assert_int_equal(f->cmds[2].err, -EMSGSIZE);
    assert_int_equal(f->cmds[3].err, -ECONNRESET);
    assert_int_equal(f->close_err, -EMSGSIZE);
    assert_int_equal(f->c.stats.refused, 1);
    /* A new connection starts with a clean guard. */
    f->closed = false;
    assert_int_equal(pos_conn_connect(&f->c, "mem", 0), 0);
    assert_int_equal(pos_conn_commandv(&f->c, cmd_cb, &f->cmds[4], 2, argv), 0);
    assert_int_equal(pos_conn_feed(&f->c, "+OK\r\n", 5), 0);
    assert_int_equal(f->cmds[4].replies, 1);
    fx_close(f);
    free(f);
}

/* A malformed reply is every command's protocol error. */
static void test_malformed_reply_fails_all(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    const char *argv[] = {"PING"};

    (void)state;
    assert_non_null(f);
    fx_init(f, false, &mem_transport);
    assert_int_equal(pos_conn_connect(&f->c, "mem", 0), 0);
    assert_int_equal(pos_conn_commandv(&f->c, cmd_cb, &f->cmds[0], 1, argv), 0);
    assert_int_equal(pos_conn_commandv(&f->c, cmd_cb, &f->cmds[1], 1, argv), 0);
    assert_int_equal(pos_conn_feed(&f->c, "%1\r\n", 4), 0); /* a RESP3 map */
    assert_true(pos_test_loop_until(&f->loop, is_closed, f, 2000));
    assert_int_equal(f->cmds[0].err, -EPROTO);
    assert_int_equal(f->cmds[1].err, -EPROTO);
    assert_int_equal(f->close_err, -EPROTO);
    fx_close(f);
    free(f);
}

/* On a subscriber, a pmessage is dropped and counted; a message over the
 * bulk limit drops the connection after the messages before it. */
static void test_subscriber_pmessage_and_oversize(void **state)
{
    fx_t *f = malloc(sizeof(*f));

    (void)state;
    assert_non_null(f);
    fx_init(f, true, &mem_transport);
    assert_int_equal(pos_conn_connect(&f->c, "mem", 0), 0);
    static const char in[] = "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nx\r\n" MSG
                             "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2147483648\r\n";
    assert_int_equal(pos_conn_feed(&f->c, in, sizeof(in) - 1), 0);
    assert_true(pos_test_loop_until(&f->loop, is_closed, f, 2000));
    assert_int_equal(f->c.stats.pushes_dropped, 1);
    assert_int_equal(f->pushes, 1);
    assert_int_equal(f->close_err, -EMSGSIZE);
    fx_close(f);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turn_budget_on_a_socket),
        cmocka_unit_test(test_turn_budget_lets_timers_run),
        cmocka_unit_test(test_deadline_not_judged_while_behind),
        cmocka_unit_test(test_refused_reply_blames_its_command),
        cmocka_unit_test(test_malformed_reply_fails_all),
        cmocka_unit_test(test_subscriber_pmessage_and_oversize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
