#ifndef PLATFORM_STREAM_IMPL_H
#define PLATFORM_STREAM_IMPL_H

/*
 * Private seam between the stream core (platform/stream.c: state, write
 * queue, deadlines, backoff) and the device backends: the fd engine for
 * serial lines and USB printers (platform/serial.c, platform/usblp.c) and
 * TCP (platform/tcpdev.c). Not for use outside platform/.
 *
 * A backend opens the device (attempt), pushes queued bytes out (kick) and
 * closes its handles (teardown). It reports back through the
 * pos_stream_io_*() functions below. All of them return 0 or a negative errno.
 */

#include "platform/stream.h"

/* One accepted write. The core owns it while it is queued; a TCP write that
 * libuv still holds is "orphaned" when failed early and freed by tcpdev.c. */
struct pos_stream_wreq {
    pos_stream_wreq_t *next;
    pos_stream_t *s;
    void *ctx;
    uint64_t deadline_ms; /* uv_now() ms */
    size_t len, off;      /* bytes, and how many have been written */
    bool in_flight;       /* TCP: handed to uv_write, not yet called back */
    bool orphan;          /* TCP: already reported; the uv_write callback frees */
    uv_write_t uw;        /* TCP only */
    uint8_t bytes[];
};

typedef struct pos_stream_backend {
    /* Starts an open attempt. Returns 0 when the device is open (after
     * pos_stream_io_opened()) or the attempt runs in the background;
     * a negative errno when it failed and no handle is left open. */
    int (*attempt)(pos_stream_t *s);
    /* A write was appended to the queue while open. Returns 0 or a negative
     * errno (the stream then goes down). */
    int (*kick)(pos_stream_t *s, pos_stream_wreq_t *w);
    /* Closes the device handles; pos_stream_io_closed() follows from a close
     * callback. Only called while s->io_open or s->gai_pending. */
    void (*teardown)(pos_stream_t *s);
} pos_stream_backend_t;

extern const pos_stream_backend_t pos_stream_fd_backend;
extern const pos_stream_backend_t pos_stream_tcp_backend;

/* serial.c: opens and configures a tty (raw 8N1, "baud", flushed).
 * Returns a non-blocking fd, or a negative errno. */
int pos_stream_serial_open(const char *path, uint32_t baud);

/* usblp.c: opens a USB printer class character device without touching
 * termios. Returns a non-blocking fd, or a negative errno. */
int pos_stream_usblp_open(const char *path);

/* The backend reached the open state. */
void pos_stream_io_opened(pos_stream_t *s);
/* An open stream broke, or an attempt in progress failed: "err" < 0. */
void pos_stream_io_failed(pos_stream_t *s, int err);
/* Every device handle is closed (after teardown). */
void pos_stream_io_closed(pos_stream_t *s);
/* Bytes from the device. */
void pos_stream_io_data(pos_stream_t *s, const uint8_t *buf, size_t len);
/* The oldest queued write is complete: unlinks it, reports 0 and frees it
 * unless "keep" (tcpdev.c frees its own). */
void pos_stream_io_write_done(pos_stream_t *s, bool keep);

#endif /* PLATFORM_STREAM_IMPL_H */
