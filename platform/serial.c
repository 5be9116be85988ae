/*
 * Character devices on the loop: serial lines (termios set up here) and USB
 * printer class devices (opened in usblp.c) share one engine: a
 * non-blocking fd under uv_poll, readable always, writable only while
 * output is queued, partial writes resumed where they stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "platform/log.h"
#include "platform/stream_impl.h"

/* ---- Serial line setup ---- */

static int serial_speed(uint32_t baud, speed_t *out)
{
    switch (baud) {
    case 1200:
        *out = B1200;
        return 0;
    case 2400:
        *out = B2400;
        return 0;
    case 4800:
        *out = B4800;
        return 0;
    case 9600:
        *out = B9600;
        return 0;
    case 19200:
        *out = B19200;
        return 0;
    case 38400:
        *out = B38400;
        return 0;
    case 57600:
        *out = B57600;
        return 0;
    case 115200:
        *out = B115200;
        return 0;
    case 230400:
        *out = B230400;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Closes fd and returns "err", keeping errno out of the way. */
static int serial_fail(int fd, int err)
{
    close(fd);
    return err;
}

int pos_stream_serial_open(const char *path, uint32_t baud)
{
    struct termios t;
    struct stat st;
    speed_t speed;
    int fd;

    if (serial_speed(baud, &speed) != 0) {
        return -EINVAL;
    }
    /* O_NONBLOCK: neither the open (modem lines) nor any later read or
     * write may wait. O_NOCTTY: a printer must never become our terminal. */
    fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        return serial_fail(fd, -errno);
    }
    if (!S_ISCHR(st.st_mode)) {
        return serial_fail(fd, -ENOTTY);
    }
    if (tcgetattr(fd, &t) != 0) {
        return serial_fail(fd, -errno);
    }
    /* Raw 8N1 (what cfmakeraw does, spelt out): no input or output
     * processing, no echo, no signals, no parity, one stop bit, no flow
     * control, modem lines ignored, receiver on; reads return what is there. */
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON |
                             IXOFF | IXANY | INPCK);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | CRTSCTS);
    t.c_cflag |= CS8 | CLOCAL | CREAD;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (cfsetispeed(&t, speed) != 0 || cfsetospeed(&t, speed) != 0) {
        return serial_fail(fd, -EINVAL);
    }
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        return serial_fail(fd, -errno);
    }
    /* tcsetattr succeeds if any part was applied: read back what matters. */
    if (tcgetattr(fd, &t) != 0) {
        return serial_fail(fd, -errno);
    }
    if (cfgetospeed(&t) != speed || cfgetispeed(&t) != speed || (t.c_cflag & CSIZE) != CS8 ||
        (t.c_lflag & ICANON) != 0) {
        return serial_fail(fd, -EINVAL);
    }
    /* Whatever was queued before we came (line noise, a previous session's
     * leftovers) is not ours. */
    if (tcflush(fd, TCIOFLUSH) != 0) {
        return serial_fail(fd, -errno);
    }
    return fd;
}

/* ---- The fd engine ---- */

static void fd_poll_cb(uv_poll_t *p, int status, int events);

/* Polls for what is needed now: reads unless refused by the device, writes
 * only while something is queued (a writable fd would otherwise wake the
 * loop continuously). */
static int fd_update_events(pos_stream_t *s)
{
    int want = (s->no_read ? 0 : UV_READABLE) | (s->wq_head != NULL ? UV_WRITABLE : 0);

    s->poll_writable = (want & UV_WRITABLE) != 0;
    if (want == 0) {
        return pos_uv_errno(uv_poll_stop(&s->io.poll));
    }
    return pos_uv_errno(uv_poll_start(&s->io.poll, want, fd_poll_cb));
}

static void fd_read(pos_stream_t *s)
{
    ssize_t n = read(s->fd, s->rbuf, sizeof(s->rbuf));

    if (n > 0) {
        pos_stream_io_data(s, s->rbuf, (size_t)n);
        return;
    }
    if (n == 0) {
        /* Hangup (the far end of a tty went away). */
        pos_stream_io_failed(s, -ECONNRESET);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    }
    if (errno == EINVAL && s->spec.kind == POS_STREAM_USBLP) {
        /* usblp refuses reads on unidirectional printers: write only. */
        POS_INFO("stream", "%s: printer is not bidirectional, not reading", s->spec.path);
        s->no_read = true;
        return;
    }
    pos_stream_io_failed(s, -errno);
}

/* Writes queued bytes until the queue is empty or the device is full. */
static void fd_flush(pos_stream_t *s)
{
    while (s->wq_head != NULL) {
        pos_stream_wreq_t *w = s->wq_head;
        ssize_t n = write(s->fd, w->bytes + w->off, w->len - w->off);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            pos_stream_io_failed(s, -errno);
            return;
        }
        if (n == 0) {
            return; /* nothing taken; wait for the next writable event */
        }
        w->off += (size_t)n;
        if (w->off == w->len) {
            pos_stream_io_write_done(s, false);
            if (s->state != POS_STREAM_ST_OPEN) {
                return;
            }
        }
    }
}

static void fd_poll_cb(uv_poll_t *p, int status, int events)
{
    pos_stream_t *s = p->data;
    int rc;

    if (s->state != POS_STREAM_ST_OPEN) {
        return;
    }
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF; for a device that means the
         * device failed, not that our fd is bad. */
        pos_stream_io_failed(s, status == UV_EBADF ? -EIO : pos_uv_errno(status));
        return;
    }
    if ((events & UV_READABLE) != 0 && !s->no_read) {
        fd_read(s);
        if (s->state != POS_STREAM_ST_OPEN) {
            return;
        }
    }
    if ((events & UV_WRITABLE) != 0) {
        fd_flush(s);
        if (s->state != POS_STREAM_ST_OPEN) {
            return;
        }
    }
    rc = fd_update_events(s);
    if (rc != 0) {
        pos_stream_io_failed(s, rc);
    }
}

static void fd_closed(uv_handle_t *h)
{
    pos_stream_t *s = h->data;

    /* Closed only now that the poll handle is gone: libuv must not watch a
     * descriptor number that may already be reused. */
    close(s->fd);
    s->fd = -1;
    s->io_open = false;
    pos_stream_io_closed(s);
}

static int fd_attempt(pos_stream_t *s)
{
    int fd, rc;

    if (s->spec.kind == POS_STREAM_SERIAL) {
        fd = pos_stream_serial_open(s->spec.path, s->spec.baud);
    } else {
        fd = pos_stream_usblp_open(s->spec.path);
    }
    if (fd < 0) {
        return fd;
    }
    /* Fails with -EPERM for descriptors epoll cannot watch (regular files). */
    rc = uv_poll_init(s->loop, &s->io.poll, fd);
    if (rc != 0) {
        close(fd);
        return pos_uv_errno(rc);
    }
    s->io.poll.data = s;
    s->fd = fd;
    s->io_open = true;
    s->no_read = false;
    s->poll_writable = false;
    rc = fd_update_events(s);
    if (rc != 0) {
        pos_stream_io_failed(s, rc); /* closes the handle, then retries */
        return 0;
    }
    pos_stream_io_opened(s);
    return 0;
}

static int fd_kick(pos_stream_t *s, pos_stream_wreq_t *w)
{
    (void)w;
    /* Written from the poll callback, never from inside pos_stream_write():
     * completion callbacks must not run inside the caller's call. */
    if (s->poll_writable) {
        return 0;
    }
    return fd_update_events(s);
}

static void fd_teardown(pos_stream_t *s)
{
    if (!s->io_open || uv_is_closing((uv_handle_t *)&s->io.poll)) {
        return;
    }
    if (s->spec.kind == POS_STREAM_SERIAL) {
        /* Discard unsent output: close() on a tty waits for it to drain
         * (closing_wait, up to 30 s on a UART), which would block the loop
         * behind a stuck printer. */
        (void)tcflush(s->fd, TCIOFLUSH);
    }
    uv_close((uv_handle_t *)&s->io.poll, fd_closed);
}

const pos_stream_backend_t pos_stream_fd_backend = {
    .attempt = fd_attempt,
    .kick = fd_kick,
    .teardown = fd_teardown,
};
