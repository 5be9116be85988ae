#include "agent/link/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "platform/log.h"
#include "platform/mem.h"

/* TCP-level dead-peer detection: keepalive probes after 10 s idle, every
 * 5 s, 3 of them; unacknowledged data gives up after 20 s. Together with the
 * agent's end-to-end probe a dead link is found within 30 s. */
#define CONN_KEEPIDLE_S      10
#define CONN_KEEPINTVL_S     5
#define CONN_KEEPCNT         3
#define CONN_USER_TIMEOUT_MS 20000

/* A command past its deadline while the connection's replies wait for a
 * later turn is looked at again this much later. */
#define CONN_PAUSED_RECHECK_MS 50u

/* A writer that outruns the socket by this much is failed instead of
 * growing memory without bound. */
#define CONN_MAX_WRITE_QUEUE (1024u * 1024u)

typedef struct conn_write_req {
    uv_write_t req;
    size_t len;
    char data[]; /* the bytes being written */
} conn_write_req_t;

static const pos_transport_ops_t plain_transport;

static void conn_arm_timer(pos_conn_t *c, uint64_t deadline_ms);

/* A socket error: while the transport is still starting it may know better
 * what the error means (a TLS server hanging up on a handshake). */
static int conn_io_error(pos_conn_t *c, int err)
{
    if (c->state == POS_CONN_CONNECTING && c->opt.transport->start_failed != NULL) {
        return c->opt.transport->start_failed(c, err);
    }
    return err;
}

static void conn_finish_close(pos_conn_t *c)
{
    if (c->gai_pending || c->tcp_open) {
        return; /* wait for the remaining handle callbacks */
    }
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    if (c->state == POS_CONN_FINAL) {
        if (c->timer_open || c->resume_open) {
            return; /* their close callbacks complete the close */
        }
        if (c->final_cb != NULL) {
            c->final_cb(c);
        }
        return;
    }
    c->state = POS_CONN_IDLE;
    if (c->cb.on_closed != NULL) {
        c->cb.on_closed(c, c->close_err);
    }
}

static void conn_tcp_closed(uv_handle_t *h)
{
    pos_conn_t *c = h->data;
    c->tcp_open = false;
    conn_finish_close(c);
}

static void conn_timer_closed(uv_handle_t *h)
{
    pos_conn_t *c = h->data;
    c->timer_open = false;
    conn_finish_close(c);
}

static void conn_resume_closed(uv_handle_t *h)
{
    pos_conn_t *c = h->data;
    c->resume_open = false;
    conn_finish_close(c);
}

/* Tears down because of err (on_closed gets it); the oldest pending
 * command's callback gets head_err, the others err_rest. */
static void conn_teardown(pos_conn_t *c, int err, int head_err, int err_rest)
{
    if (c->state != POS_CONN_RESOLVING && c->state != POS_CONN_CONNECTING &&
        c->state != POS_CONN_OPEN) {
        return;
    }
    c->state = POS_CONN_CLOSING;
    c->close_err = err;
    uv_timer_stop(&c->timer);
    if (c->paused) {
        uv_idle_stop(&c->resume);
        c->paused = false;
    }
    if (c->opt.transport->reset != NULL) {
        c->opt.transport->reset(c);
    }
    if (c->gai_pending) {
        /* May fail if the lookup is already running; its callback then sees
         * the CLOSING state and finishes the close. */
        uv_cancel((uv_req_t *)&c->gai);
    }
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, conn_tcp_closed);
    }
    /* Every pending callback learns of the failure exactly once. */
    pos_cmdq_fail_all_head(&c->q, head_err, err_rest);
    conn_finish_close(c);
}

void pos_conn_abort(pos_conn_t *c, int err)
{
    conn_teardown(c, err, err, err);
}

static void conn_timer_cb(uv_timer_t *t)
{
    pos_conn_t *c = t->data;
    uint64_t now = uv_now(c->loop);

    if (c->state == POS_CONN_RESOLVING || c->state == POS_CONN_CONNECTING) {
        POS_WARN("link", "%s: connect timed out after %u ms", c->opt.name,
                 c->opt.connect_timeout_ms);
        pos_conn_abort(c, conn_io_error(c, -ETIMEDOUT));
        return;
    }
    if (c->state != POS_CONN_OPEN) {
        return;
    }
    if (pos_cmdq_expired(&c->q, now) && c->paused) {
        /* Replies have come in and wait for a turn of their own: the
         * delay is ours, not the server's. Judged once they are out. */
        uv_timer_start(&c->timer, conn_timer_cb, CONN_PAUSED_RECHECK_MS, 0);
        return;
    }
    if (pos_cmdq_expired(&c->q, now)) {
        POS_WARN("link", "%s: no reply within %u ms, dropping the connection", c->opt.name,
                 c->opt.command_timeout_ms);
        pos_conn_abort(c, -ETIMEDOUT);
        return;
    }
    conn_arm_timer(c, pos_cmdq_next_deadline(&c->q));
}

static void conn_arm_timer(pos_conn_t *c, uint64_t deadline_ms)
{
    uint64_t now = uv_now(c->loop);

    if (deadline_ms == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, conn_timer_cb, deadline_ms > now ? deadline_ms - now : 0, 0);
}

int pos_conn_init(uv_loop_t *loop, pos_conn_t *c, const pos_conn_options_t *opt,
                  const pos_conn_callbacks_t *cb)
{
    int rc;

    pos_mem_zero(c, sizeof(*c));
    c->loop = loop;
    c->opt = *opt;
    if (c->opt.transport == NULL) {
        c->opt.transport = &plain_transport;
    }
    if (c->opt.max_pending == 0) {
        c->opt.max_pending = 1024;
    }
    c->cb = *cb;
    pos_cmdq_init(&c->q, c->opt.max_pending);
    pos_resp_guard_init(&c->guard, &c->opt.limits);
    rc = uv_timer_init(loop, &c->timer);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    c->timer.data = c;
    rc = uv_idle_init(loop, &c->resume);
    if (rc != 0) {
        goto fail_resume;
    }
    c->resume.data = c;
    c->timer_open = true;
    c->resume_open = true;
    c->state = POS_CONN_IDLE;
    return 0;

fail_resume:
    /* Known to no one yet: closed without a callback. */
    uv_close((uv_handle_t *)&c->timer, NULL);
    return pos_uv_errno(rc);
}

static void conn_set_socket_options(pos_conn_t *c)
{
    uv_os_fd_t fd;
    int on = 1, idle = CONN_KEEPIDLE_S, intvl = CONN_KEEPINTVL_S, cnt = CONN_KEEPCNT;
    unsigned int user_timeout = CONN_USER_TIMEOUT_MS;

    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
        return;
    }
    /* Best effort: a kernel without one of these still works, just with
     * slower dead-peer detection (the end-to-end probe still applies). */
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout)) !=
            0) {
        POS_WARN("link", "%s: could not set TCP keepalive options: %s", c->opt.name,
                 strerror(errno));
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pos_conn_t *c = h->data;
    (void)suggested;
    /* Reads are consumed synchronously in conn_read_cb, so one buffer per
     * connection is enough. */
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pos_conn_t *c = s->data;
    int rc;

    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        int err = pos_uv_errno((int)nread);
        if (nread == UV_EOF) {
            POS_WARN("link", "%s: server closed the connection", c->opt.name);
        } else {
            POS_WARN("link", "%s: read failed: %s", c->opt.name, uv_strerror((int)nread));
        }
        pos_conn_abort(c, conn_io_error(c, err));
        return;
    }
    rc = c->opt.transport->on_read(c, buf->base, (size_t)nread);
    if (rc != 0) {
        pos_conn_abort(c, rc);
    }
}

/* What a reply is: for a command, a channel message, or a push nothing
 * asked for. */
typedef enum conn_reply_kind {
    CONN_REPLY = 0,
    CONN_MESSAGE,
    CONN_UNASKED,
} conn_reply_kind_t;

static conn_reply_kind_t conn_reply_kind(const pos_conn_t *c, const redisReply *r)
{
    const redisReply *kind;

    if (!c->opt.subscriber || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        return CONN_REPLY;
    }
    kind = r->element[0];
    if (kind->type != REDIS_REPLY_STRING) {
        return CONN_REPLY;
    }
    if ((kind->len == 7 && memcmp(kind->str, "message", 7) == 0) ||
        (kind->len == 8 && memcmp(kind->str, "smessage", 8) == 0) ||
        (kind->len == 12 && memcmp(kind->str, "sunsubscribe", 12) == 0)) {
        /* A sharded channel's message, and the server ending a sharded
         * subscription because its slot moved (never asked for: nothing
         * here sends SUNSUBSCRIBE). */
        return CONN_MESSAGE;
    }
    if (kind->len == 8 && memcmp(kind->str, "pmessage", 8) == 0) {
        return CONN_UNASKED; /* the agent never PSUBSCRIBEs */
    }
    return CONN_REPLY;
}

static void conn_stop_reading(pos_conn_t *c)
{
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void conn_dispatch(pos_conn_t *c);

static void conn_resume_cb(uv_idle_t *h)
{
    pos_conn_t *c = h->data;

    /* A new turn: timers and the other handles have had theirs. */
    c->turn_replies = 0;
    conn_dispatch(c);
}

/* The turn's budget is spent: stop reading, go on at a later turn. */
static void conn_pause(pos_conn_t *c)
{
    c->stats.pauses++;
    if (!c->paused) {
        c->paused = true;
        conn_stop_reading(c);
        uv_idle_start(&c->resume, conn_resume_cb);
    }
}

/* Every complete reply is out. */
static void conn_drained(pos_conn_t *c)
{
    int rc;

    if (c->guard_err == -EMSGSIZE) {
        /* Replies come in order and every one before the refused one has
         * been handed out: on a command connection the refused reply is
         * the oldest command's. A subscriber's may be a message: nobody
         * to blame there. */
        conn_teardown(c, -EMSGSIZE, c->opt.subscriber ? -ECONNRESET : -EMSGSIZE, -ECONNRESET);
        return;
    }
    if (c->guard_err != 0) {
        pos_conn_abort(c, c->guard_err);
        return;
    }
    if (!c->paused) {
        return;
    }
    c->paused = false;
    uv_idle_stop(&c->resume);
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
        if (rc != 0) {
            pos_conn_abort(c, pos_uv_errno(rc));
        }
    }
}

/* Hands one reply to its command or to on_push; frees it. Returns 0, or
 * -EPROTO when it had nowhere to go (the connection is aborted). */
static int conn_deliver(pos_conn_t *c, redisReply *r)
{
    switch (conn_reply_kind(c, r)) {
    case CONN_MESSAGE:
        if (c->cb.on_push != NULL) {
            c->cb.on_push(c, r);
        }
        break;
    case CONN_UNASKED:
        c->stats.pushes_dropped++;
        POS_DEBUG("link", "%s: pmessage dropped: nothing was PSUBSCRIBEd", c->opt.name);
        break;
    case CONN_REPLY:
        if (pos_cmdq_deliver(&c->q, r) != 0) {
            POS_WARN("link", "%s: reply with no command waiting for it", c->opt.name);
            freeReplyObject(r);
            pos_conn_abort(c, -EPROTO);
            return -EPROTO;
        }
        if (c->state == POS_CONN_OPEN) {
            conn_arm_timer(c, pos_cmdq_next_deadline(&c->q));
        }
        break;
    }
    freeReplyObject(r);
    return 0;
}

/* Hands out complete replies, at most the turn's budget. */
static void conn_dispatch(pos_conn_t *c)
{
    /* A callback may tear the connection down; the reader is still
     * allocated (it is freed after the handles close) but must not be used
     * for this connection any more. */
    while (c->state == POS_CONN_OPEN) {
        void *reply = NULL;

        if (c->turn_replies >= POS_CONN_TURN_REPLIES ||
            (c->turn_replies > 0 && uv_hrtime() - c->turn_start_ns > POS_CONN_TURN_NS)) {
            conn_pause(c);
            return;
        }
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            POS_WARN("link", "%s: protocol error from server: %s", c->opt.name,
                     c->reader->errstr);
            pos_conn_abort(c, -EPROTO);
            return;
        }
        if (reply == NULL) {
            conn_drained(c);
            return;
        }
        if (c->turn_replies++ == 0) {
            c->turn_start_ns = uv_hrtime();
        }
        if (conn_deliver(c, reply) != 0) {
            return;
        }
    }
}

int pos_conn_feed(pos_conn_t *c, const char *buf, size_t len)
{
    size_t used;

    if (c->state != POS_CONN_OPEN || c->reader == NULL || c->guard_err != 0) {
        return 0;
    }
    /* The guard first: hiredis buffers only what it accepts. */
    if (pos_resp_guard_feed(&c->guard, buf, len, &used) != 0) {
        char why[160];
        pos_resp_guard_describe(&c->guard, why, sizeof(why));
        POS_WARN("link", "%s: %s; dropping the connection", c->opt.name, why);
        c->guard_err = c->guard.err;
        c->stats.refused++;
        conn_stop_reading(c); /* not one byte more */
    }
    if (used > 0 && redisReaderFeed(c->reader, buf, used) != REDIS_OK) {
        return -ENOMEM;
    }
    if (!c->paused) {
        conn_dispatch(c);
    }
    return 0;
}

void pos_conn_transport_ready(pos_conn_t *c)
{
    if (c->state != POS_CONN_CONNECTING) {
        return;
    }
    c->state = POS_CONN_OPEN;
    uv_timer_stop(&c->timer);
    if (c->cb.on_open != NULL) {
        c->cb.on_open(c);
    }
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
    pos_conn_t *c = req->data;
    int rc;

    if (c->state != POS_CONN_CONNECTING) {
        return; /* aborted meanwhile; the close is already under way */
    }
    if (status != 0) {
        POS_DEBUG("link", "%s: connect failed: %s", c->opt.name, uv_strerror(status));
        pos_conn_abort(c, pos_uv_errno(status));
        return;
    }
    conn_set_socket_options(c);
    rc = pos_uv_errno(uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb));
    if (rc == 0) {
        rc = c->opt.transport->start(c);
    }
    if (rc != 0) {
        pos_conn_abort(c, rc);
    }
}

static void conn_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pos_conn_t *c = req->data;
    int rc;

    c->gai_pending = false;
    if (c->state != POS_CONN_RESOLVING) {
        uv_freeaddrinfo(res);
        conn_finish_close(c);
        return;
    }
    if (status != 0) {
        POS_DEBUG("link", "%s: cannot resolve host: %s", c->opt.name, uv_strerror(status));
        uv_freeaddrinfo(res);
        pos_conn_abort(c, pos_uv_errno(status));
        return;
    }
    rc = uv_tcp_init(c->loop, &c->tcp);
    if (rc != 0) {
        uv_freeaddrinfo(res);
        pos_conn_abort(c, pos_uv_errno(rc));
        return;
    }
    c->tcp.data = c;
    c->tcp_open = true;
    c->connect_req.data = c;
    c->state = POS_CONN_CONNECTING;
    /* The first address only: with a connect timeout per attempt, a second
     * address would double the worst case; the reconnect loop retries. */
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, conn_connect_cb);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        POS_DEBUG("link", "%s: connect failed: %s", c->opt.name, uv_strerror(rc));
        pos_conn_abort(c, pos_uv_errno(rc));
    }
}

int pos_conn_connect(pos_conn_t *c, const char *host, uint16_t port)
{
    struct addrinfo hints;
    int rc;

    if (c->state != POS_CONN_IDLE) {
        return -EBUSY;
    }
    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        return -ENOMEM;
    }
    pos_resp_guard_reset(&c->guard);
    c->guard_err = 0;
    c->turn_replies = 0;
    snprintf(c->port, sizeof(c->port), "%u", (unsigned)port);
    if (c->opt.transport->connect != NULL) {
        /* No socket: the transport brings the session up itself. */
        c->state = POS_CONN_CONNECTING;
        c->close_err = 0;
        uv_timer_start(&c->timer, conn_timer_cb, c->opt.connect_timeout_ms, 0);
        rc = c->opt.transport->connect(c, host, port);
        if (rc != 0) {
            pos_conn_abort(c, rc);
        }
        return 0; /* reported through on_open or on_closed */
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_ADDRCONFIG;
    c->gai.data = c;
    c->state = POS_CONN_RESOLVING;
    c->close_err = 0;
    uv_timer_start(&c->timer, conn_timer_cb, c->opt.connect_timeout_ms, 0);
    /* Resolution runs on libuv's thread pool: the loop never blocks on DNS. */
    rc = uv_getaddrinfo(c->loop, &c->gai, conn_gai_cb, host, c->port, &hints);
    if (rc != 0) {
        POS_DEBUG("link", "%s: cannot resolve host: %s", c->opt.name, uv_strerror(rc));
        pos_conn_abort(c, pos_uv_errno(rc));
        return 0; /* reported through on_closed */
    }
    c->gai_pending = true;
    return 0;
}

static void conn_write_cb(uv_write_t *req, int status)
{
    conn_write_req_t *w = (conn_write_req_t *)req;
    pos_conn_t *c = req->data;

    /* The bytes may have been an AUTH with the password in it. */
    explicit_bzero(w->data, w->len);
    free(w);
    if (status != 0 && status != UV_ECANCELED) {
        POS_WARN("link", "%s: write failed: %s", c->opt.name, uv_strerror(status));
        pos_conn_abort(c, conn_io_error(c, pos_uv_errno(status)));
    }
}

int pos_conn_raw_write(pos_conn_t *c, const char *buf, size_t len)
{
    conn_write_req_t *w;
    uv_buf_t b;
    int rc;

    if (!c->tcp_open || uv_is_closing((uv_handle_t *)&c->tcp)) {
        return -ENOTCONN;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > CONN_MAX_WRITE_QUEUE) {
        return -ENOBUFS;
    }
    w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        return -ENOMEM;
    }
    memcpy(w->data, buf, len);
    w->len = len;
    w->req.data = c;
    b = uv_buf_init(w->data, (unsigned int)len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
    if (rc != 0) {
        explicit_bzero(w->data, len);
        free(w);
        return pos_uv_errno(rc);
    }
    return 0;
}

int pos_conn_send(pos_conn_t *c, pos_reply_cb cb, void *ctx, uint32_t replies, const char *cmd,
                  size_t len)
{
    bool was_empty;
    int rc;

    if (c->state != POS_CONN_OPEN) {
        return -ENOTCONN;
    }
    was_empty = pos_cmdq_pending(&c->q) == 0;
    rc = pos_cmdq_push(&c->q, cb, ctx, uv_now(c->loop) + c->opt.command_timeout_ms, replies);
    if (rc != 0) {
        return rc;
    }
    rc = c->opt.transport->write(c, cmd, len);
    if (rc != 0) {
        /* The command never left: the link is unusable. The pending
         * callbacks (this one included) fail through the abort, so the
         * caller is told by the callback, not by the return value. */
        pos_conn_abort(c, rc);
        return 0;
    }
    if (was_empty) {
        conn_arm_timer(c, pos_cmdq_next_deadline(&c->q));
    }
    return 0;
}

int pos_conn_command(pos_conn_t *c, pos_reply_cb cb, void *ctx, uint32_t replies, int argc,
                     const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len, rc;

    if (c->state != POS_CONN_OPEN) {
        return -ENOTCONN;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0 || cmd == NULL) {
        return -ENOMEM;
    }
    rc = pos_conn_send(c, cb, ctx, replies, cmd, (size_t)len);
    /* Wiped like every buffer that may have held a password (AUTH). */
    explicit_bzero(cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int pos_conn_commandv(pos_conn_t *c, pos_reply_cb cb, void *ctx, int argc, const char **argv)
{
    size_t lens[16];

    if (argc < 1 || argc > 16) {
        return -EINVAL;
    }
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    return pos_conn_command(c, cb, ctx, 1, argc, argv, lens);
}

void pos_conn_close(pos_conn_t *c, void (*done)(pos_conn_t *c))
{
    if (c->state == POS_CONN_FINAL) {
        return;
    }
    c->final_cb = done;
    pos_conn_abort(c, -ECANCELED);
    c->state = POS_CONN_FINAL;
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
    }
    if (c->resume_open && !uv_is_closing((uv_handle_t *)&c->resume)) {
        uv_close((uv_handle_t *)&c->resume, conn_resume_closed);
    }
    pos_cmdq_free(&c->q);
    conn_finish_close(c);
}

bool pos_conn_is_open(const pos_conn_t *c)
{
    return c->state == POS_CONN_OPEN;
}

bool pos_conn_busy(const pos_conn_t *c)
{
    return c->state == POS_CONN_OPEN && c->paused;
}

bool pos_conn_has_spare(const pos_conn_t *c)
{
    return c->state == POS_CONN_OPEN && c->tcp_open &&
           pos_cmdq_pending(&c->q) < c->opt.max_pending - c->opt.max_pending / 4 &&
           uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) < CONN_MAX_WRITE_QUEUE / 2;
}

void pos_conn_options_for(pos_conn_options_t *co, const pos_conn_reach_t *r, const char *name)
{
    memset(co, 0, sizeof(*co));
    co->name = name;
    co->connect_timeout_ms = r->connect_timeout_ms;
    co->command_timeout_ms = r->command_timeout_ms;
    co->transport = r->transport;
    co->transport_arg = r->transport_arg;
    co->limits.bulk_bytes = r->max_bulk_bytes;
}

int pos_conn_log_len(const redisReply *r)
{
    return (int)(r->len > POS_CONN_LOG_REPLY_MAX ? POS_CONN_LOG_REPLY_MAX : r->len);
}

/* The plain transport: bytes pass straight through. */
static int plain_start(pos_conn_t *c)
{
    pos_conn_transport_ready(c);
    return 0;
}

static const pos_transport_ops_t plain_transport = {
    .start = plain_start,
    .write = pos_conn_raw_write,
    .on_read = pos_conn_feed,
    .reset = NULL,
};
