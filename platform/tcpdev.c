/*
 * Raw TCP printer ports (9100): uv_tcp_t, literal addresses parsed in place,
 * names resolved on libuv's thread pool. The core bounds lookup plus
 * connect with its timer and every write with its deadline.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "platform/log.h"
#include "platform/stream_impl.h"

/* Dead-peer detection while idle: probes after 10 s, every 5 s, 3 of them.
 * A busy stream is covered by the write deadlines instead. */
#define TCPDEV_KEEPIDLE_S  10
#define TCPDEV_KEEPINTVL_S 5
#define TCPDEV_KEEPCNT     3

static void tcpdev_check_closed(pos_stream_t *s)
{
    if (!s->io_open && !s->gai_pending) {
        pos_stream_io_closed(s);
    }
}

static void tcpdev_closed(uv_handle_t *h)
{
    pos_stream_t *s = h->data;

    /* libuv has called back every write before it closes the handle. */
    s->io_open = false;
    tcpdev_check_closed(s);
}

static void tcpdev_options(pos_stream_t *s)
{
    uv_os_fd_t fd;
    int intvl = TCPDEV_KEEPINTVL_S, cnt = TCPDEV_KEEPCNT;

    /* Receipts are written in small pieces and should leave at once. */
    (void)uv_tcp_nodelay(&s->io.tcp, 1);
    (void)uv_tcp_keepalive(&s->io.tcp, 1, TCPDEV_KEEPIDLE_S);
    if (uv_fileno((uv_handle_t *)&s->io.tcp, &fd) != 0) {
        return;
    }
    /* Best effort: without them a dead idle printer is found later. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0) {
        POS_DEBUG("stream", "%s: keepalive options not set", s->spec.host);
    }
}

static void tcpdev_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pos_stream_t *s = h->data;

    (void)suggested;
    /* Reads are handed up synchronously: one buffer per stream suffices. */
    *buf = uv_buf_init((char *)s->rbuf, sizeof(s->rbuf));
}

static void tcpdev_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    pos_stream_t *s = st->data;

    if (nread > 0) {
        pos_stream_io_data(s, (const uint8_t *)buf->base, (size_t)nread);
    } else if (nread < 0) {
        pos_stream_io_failed(s, pos_uv_errno((int)nread));
    }
}

static void tcpdev_connect_cb(uv_connect_t *req, int status)
{
    pos_stream_t *s = req->data;
    int rc;

    if (s->state != POS_STREAM_ST_OPENING) {
        return; /* cancelled by a close; that close finishes the job */
    }
    if (status != 0) {
        pos_stream_io_failed(s, pos_uv_errno(status));
        return;
    }
    tcpdev_options(s);
    rc = uv_read_start((uv_stream_t *)&s->io.tcp, tcpdev_alloc_cb, tcpdev_read_cb);
    if (rc != 0) {
        pos_stream_io_failed(s, pos_uv_errno(rc));
        return;
    }
    pos_stream_io_opened(s);
}

/* Starts a connect to "addr". Failures go through pos_stream_io_failed(). */
static void tcpdev_connect(pos_stream_t *s, const struct sockaddr *addr)
{
    int rc = uv_tcp_init(s->loop, &s->io.tcp);

    if (rc != 0) {
        pos_stream_io_failed(s, pos_uv_errno(rc));
        return;
    }
    s->io.tcp.data = s;
    s->io_open = true;
    s->connect_req.data = s;
    rc = uv_tcp_connect(&s->connect_req, &s->io.tcp, addr, tcpdev_connect_cb);
    if (rc != 0) {
        pos_stream_io_failed(s, pos_uv_errno(rc));
    }
}

static void tcpdev_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pos_stream_t *s = req->data;

    s->gai_pending = false;
    if (s->state != POS_STREAM_ST_OPENING) {
        uv_freeaddrinfo(res);
        tcpdev_check_closed(s); /* timed out or closed meanwhile */
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        pos_stream_io_failed(s, status != 0 ? pos_uv_errno(status) : -EHOSTUNREACH);
        return;
    }
    /* The first address only; the retry loop tries again. */
    tcpdev_connect(s, res->ai_addr);
    uv_freeaddrinfo(res);
}

static int tcpdev_attempt(pos_stream_t *s)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct addrinfo hints;
    char port[8];
    int rc;

    if (uv_ip4_addr(s->spec.host, s->spec.port, &a4) == 0) {
        tcpdev_connect(s, (const struct sockaddr *)&a4);
        return 0;
    }
    if (uv_ip6_addr(s->spec.host, s->spec.port, &a6) == 0) {
        tcpdev_connect(s, (const struct sockaddr *)&a6);
        return 0;
    }
    /* A name: resolved on the thread pool, the loop never waits for DNS. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof(port), "%u", (unsigned)s->spec.port);
    s->gai.data = s;
    rc = uv_getaddrinfo(s->loop, &s->gai, tcpdev_gai_cb, s->spec.host, port, &hints);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    s->gai_pending = true;
    return 0;
}

static void tcpdev_write_cb(uv_write_t *req, int status)
{
    pos_stream_wreq_t *w = req->data;
    pos_stream_t *s = w->s;

    w->in_flight = false;
    s->tcp_writes_in_flight--;
    if (w->orphan) {
        free(w); /* already failed to the owner when the stream went down */
        return;
    }
    if (status != 0) {
        /* Still queued: the failure reports (and frees) it with the rest. */
        pos_stream_io_failed(s, pos_uv_errno(status));
        return;
    }
    /* Writes complete in order, so this is the head of the queue. */
    pos_stream_io_write_done(s, true);
    free(w);
}

static int tcpdev_kick(pos_stream_t *s, pos_stream_wreq_t *w)
{
    uv_buf_t b = uv_buf_init((char *)w->bytes, (unsigned int)w->len);
    int rc;

    w->uw.data = w;
    rc = uv_write(&w->uw, (uv_stream_t *)&s->io.tcp, &b, 1, tcpdev_write_cb);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    w->in_flight = true;
    s->tcp_writes_in_flight++;
    return 0;
}

static void tcpdev_teardown(pos_stream_t *s)
{
    if (s->gai_pending) {
        /* Fails if the lookup is already running; its callback then sees
         * that the stream is no longer opening and reports the close. */
        (void)uv_cancel((uv_req_t *)&s->gai);
    }
    if (s->io_open && !uv_is_closing((uv_handle_t *)&s->io.tcp)) {
        uv_close((uv_handle_t *)&s->io.tcp, tcpdev_closed);
    }
}

const pos_stream_backend_t pos_stream_tcp_backend = {
    .attempt = tcpdev_attempt,
    .kick = tcpdev_kick,
    .teardown = tcpdev_teardown,
};
