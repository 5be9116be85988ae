#ifndef PLATFORM_STREAM_H
#define PLATFORM_STREAM_H

/*
 * Device byte streams on the libuv loop: one interface for a serial line
 * (termios, raw 8N1), a USB printer class device (/dev/usb/lpN) and a raw
 * TCP printer port (9100).
 *
 * Spec strings (pos_stream_spec_parse(), pure, no I/O):
 *
 *   serial:/dev/ttyS1?baud=9600   baud from 1200, 2400, 4800, 9600, 19200, 38400,
 *   /dev/ttyS1                    57600, 115200, 230400; default 9600
 *   usblp:/dev/usb/lp0            no options
 *   tcp:192.0.2.7:9100            IPv4 literal, [IPv6] literal or a host name;
 *   tcp:[::1]:9100                the port defaults to 9100
 *
 * Paths are absolute, at most POS_STREAM_PATH_MAX bytes, printable ASCII,
 * without ".." components. Unknown options are errors.
 *
 * Lifecycle: pos_stream_init(); pos_stream_start() opens asynchronously and
 * keeps the device open: any failure (missing device, refused connection,
 * unplug, EOF, I/O error, a write past its deadline) closes the device and
 * retries with exponential backoff and full jitter (platform/backoff.h).
 * pos_stream_close() is final; free the memory only in its "done" callback.
 *
 * Callbacks are only ever called from the loop, never from inside a
 * pos_stream_* call. Any pos_stream_* function may be called from a callback,
 * pos_stream_close() included.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "platform/uverr.h"

#include "platform/backoff.h"

/* Longest device path accepted by the parser, bytes (without the NUL). */
#define POS_STREAM_PATH_MAX 200
/* Longest host name accepted by the parser, bytes (without the NUL). */
#define POS_STREAM_HOST_MAX 253
/* Port used when a tcp: spec has none (raw printing, "JetDirect"). */
#define POS_STREAM_TCP_DEFAULT_PORT 9100
/* Baud used when a serial spec has none. */
#define POS_STREAM_DEFAULT_BAUD 9600
/* Default bound on bytes accepted but not yet written. */
#define POS_STREAM_DEFAULT_QUEUE_MAX (64u * 1024u)
/* Largest settable queue bound, bytes (one write must fit a uv_buf_t). */
#define POS_STREAM_QUEUE_MAX_LIMIT (16u * 1024u * 1024u)
/* Default TCP connect timeout (name lookup included), ms. */
#define POS_STREAM_DEFAULT_CONNECT_TIMEOUT_MS 3000u

typedef enum pos_stream_kind {
    POS_STREAM_NONE = 0,
    POS_STREAM_SERIAL, /* tty: raw 8N1, no flow control */
    POS_STREAM_USBLP,  /* USB printer class character device, no termios */
    POS_STREAM_TCP,    /* raw TCP */
} pos_stream_kind_t;

typedef struct pos_stream_spec {
    pos_stream_kind_t kind;
    char path[POS_STREAM_PATH_MAX + 1]; /* serial, usblp: absolute device path */
    uint32_t baud;                      /* serial: bits per second; 0 otherwise */
    char host[POS_STREAM_HOST_MAX + 1]; /* tcp: literal (no brackets) or name */
    uint16_t port;                      /* tcp: 1..65535; 0 otherwise */
} pos_stream_spec_t;

typedef struct pos_stream pos_stream_t;

typedef struct pos_stream_callbacks {
    /* The device is open (connected); writes are accepted from now on. */
    void (*on_open)(pos_stream_t *s);
    /* Bytes read from the device; "buf" is valid during the call only and
     * is wiped after it (it may hold card data). */
    void (*on_data)(pos_stream_t *s, const uint8_t *buf, size_t len);
    /* An open stream was lost: -ECONNRESET (EOF, hangup), -EIO/-ENXIO/-ENODEV
     * (unplug, I/O error), -ETIMEDOUT (a write missed its deadline), ...
     * Pending writes have been failed just before. Re-opening with backoff
     * is already scheduled; on_open follows once the device is back. */
    void (*on_down)(pos_stream_t *s, int err);
    /* Optional: an open attempt failed with "err"; the next one starts in
     * "retry_ms" milliseconds. For status displays and tests. */
    void (*on_open_failed)(pos_stream_t *s, int err, uint32_t retry_ms);
    /* Each accepted write completes exactly once: 0 once all its bytes are
     * handed to the kernel, or a negative errno: -ETIMEDOUT (its deadline
     * passed), the on_down error, or -ECANCELED (pos_stream_close()). */
    void (*on_write_done)(pos_stream_t *s, void *ctx, int status);
} pos_stream_callbacks_t;

typedef enum pos_stream_state {
    POS_STREAM_ST_IDLE = 0, /* initialised, not started */
    POS_STREAM_ST_WAIT,     /* waiting for the next open attempt */
    POS_STREAM_ST_OPENING,  /* TCP name lookup or connect in flight */
    POS_STREAM_ST_OPEN,     /* writes accepted */
    POS_STREAM_ST_CLOSING,  /* device handles closing; a retry follows */
    POS_STREAM_ST_FINAL,    /* pos_stream_close() called */
} pos_stream_state_t;

typedef struct pos_stream_wreq pos_stream_wreq_t;

/* Private: fields below are for platform/stream*.c and serial/tcpdev/usblp.c. */
struct pos_stream {
    void *data; /* the owner's; never touched by the stream */

    uv_loop_t *loop;
    pos_stream_spec_t spec;
    pos_stream_callbacks_t cb;
    pos_stream_state_t state;
    void (*final_cb)(pos_stream_t *s);

    pos_backoff_t backoff; /* re-open delays */
    uint32_t rng;          /* jitter state (platform/jitter.h) */
    uint64_t opened_at_ms; /* uv_now() at the last on_open */
    uint32_t connect_timeout_ms;

    uv_timer_t timer;  /* open retry and TCP connect deadline */
    uv_timer_t wtimer; /* earliest write deadline */
    bool timer_open, wtimer_open;

    /* Write queue, oldest first. */
    pos_stream_wreq_t *wq_head, *wq_tail;
    size_t queued, queue_max;          /* bytes accepted and not yet completed; bound */
    uint64_t wq_deadline;              /* wtimer's due time, uv_now() ms; UINT64_MAX: off */
    uint32_t tcp_writes_in_flight;     /* uv_write requests libuv still holds */
    int deferred_err;                  /* a failure to report from the loop, not the caller */

    /* Device I/O: an fd under uv_poll (serial, usblp) or a uv_tcp_t. */
    union {
        uv_poll_t poll;
        uv_tcp_t tcp;
    } io;
    bool io_open;       /* io handle initialised and its close callback not yet run */
    bool gai_pending;   /* uv_getaddrinfo in flight */
    bool poll_writable; /* uv_poll currently asks for UV_WRITABLE */
    bool no_read;       /* usblp: unidirectional printer, reads refused */
    int fd;             /* serial, usblp: the device, -1 when closed */
    int pending_err;    /* why the current close happened */
    bool was_open;      /* the closing device had been open (on_down already sent) */
    bool finished;      /* final_cb called */
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uint8_t rbuf[1024];
};

/* ---- Spec strings (pure) ---- */

/*
 * Parses a full spec ("serial:...", "usblp:...", "tcp:..." or a bare absolute
 * path, which means serial) into "out". Returns 0, or -EINVAL with a one-line
 * reason in "err" (truncated to errlen; err may be NULL when errlen is 0).
 * On failure "out" is zeroed.
 */
int pos_stream_spec_parse(const char *spec, pos_stream_spec_t *out, char *err, size_t errlen);

/*
 * Parses the part after the kind prefix, for callers that have their own
 * prefixes (the HAL's "escpos-serial:/dev/ttyUSB0?baud=19200" hands over
 * POS_STREAM_SERIAL and "/dev/ttyUSB0?baud=19200"). Returns as
 * pos_stream_spec_parse().
 */
int pos_stream_spec_parse_kind(pos_stream_kind_t kind, const char *rest, pos_stream_spec_t *out,
                               char *err, size_t errlen);

/*
 * Writes the canonical spec string ("serial:/dev/ttyS1?baud=9600") to buf.
 * Returns the length it needs without the NUL (like snprintf), or -EINVAL
 * for an invalid kind.
 */
int pos_stream_spec_format(const pos_stream_spec_t *spec, char *buf, size_t len);

/* Returns true if "baud" is one of the supported serial speeds. */
bool pos_stream_baud_supported(uint32_t baud);

/* ---- Streams on the loop ---- */

/*
 * Initialises "s" (caller-allocated, usually embedded in its owner; set
 * s->data after this call). Re-open delays grow from reopen_base_ms to
 * reopen_cap_ms (ms, full jitter). Callbacks are copied; all are optional.
 * Returns 0, or -EINVAL (bad spec, cap 0). Nothing needs closing after a
 * failure; after success pos_stream_close() must be called.
 */
int pos_stream_init(uv_loop_t *loop, pos_stream_t *s, const pos_stream_spec_t *spec,
                    const pos_stream_callbacks_t *cb, uint32_t reopen_base_ms,
                    uint32_t reopen_cap_ms);

/*
 * Bounds the bytes accepted but not yet written (default
 * POS_STREAM_DEFAULT_QUEUE_MAX; at most POS_STREAM_QUEUE_MAX_LIMIT). Applies
 * to later writes. Returns 0 or -EINVAL.
 */
int pos_stream_set_queue_limit(pos_stream_t *s, size_t bytes);

/*
 * Sets the TCP connect timeout in ms (name lookup included; default
 * POS_STREAM_DEFAULT_CONNECT_TIMEOUT_MS). Applies to later attempts.
 * Returns 0 or -EINVAL for 0.
 */
int pos_stream_set_connect_timeout(pos_stream_t *s, uint32_t timeout_ms);

/*
 * Starts opening the device in the background; on_open or on_open_failed
 * follows. Returns 0, or -EBUSY if already started or closed.
 */
int pos_stream_start(pos_stream_t *s);

/*
 * Queues a copy of buf[0..len) for the device. The write must complete
 * within timeout_ms (ms, counted from this call, time in the queue
 * included); if it does not, it fails with -ETIMEDOUT and the stream goes
 * down and re-opens. on_write_done(ctx) follows exactly once when this
 * returns 0. Returns 0, -ENOTCONN (not open), -ENOBUFS (queue bound
 * exceeded), -EINVAL (len 0 or timeout 0) or -ENOMEM.
 */
int pos_stream_write(pos_stream_t *s, const uint8_t *buf, size_t len, uint32_t timeout_ms,
                     void *ctx);

/* Returns true while the device is open and writes are accepted. */
bool pos_stream_is_open(const pos_stream_t *s);

/* Returns the bytes accepted by pos_stream_write() and not yet completed. */
size_t pos_stream_queued(const pos_stream_t *s);

/*
 * Closes the stream for good: pending writes fail with -ECANCELED, on_down
 * is not called, no callback but "done" follows. "done" (may be NULL) runs
 * once every handle is closed; then "s" may be freed. A second call is
 * ignored.
 */
void pos_stream_close(pos_stream_t *s, void (*done)(pos_stream_t *s));


#endif /* PLATFORM_STREAM_H */
