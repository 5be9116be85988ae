/*
 * Device streams against real kernel objects, in-process on a libuv loop:
 * pseudo-terminals stand in for serial lines (and, see test_usblp_over_pty,
 * for the usblp path), loopback sockets for network printers. Nothing leaves
 * the machine. Every test counts callbacks, closes everything and ends with
 * uv_loop_close() == 0.
 */
#define _GNU_SOURCE /* openpty, cfmakeraw */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "platform/stream.h"
#include "tests/support/loop.h"

#define MAX_RETRIES_KEPT 16

typedef struct fx {
    uv_loop_t loop;
    pos_stream_t s;

    int opens, downs, open_fails, closes;
    int last_down_err, last_fail_err;
    bool fail_errs_same; /* every on_open_failed had the same error */
    uint32_t retry_ms[MAX_RETRIES_KEPT], max_retry_ms;
    uint64_t first_fail_ns, down_ns, open_ns;

    int wdone_ok, wdone_err, last_wstatus;
    void *last_wctx;
    bool close_in_write_done;

    int data_calls;
    uint8_t rx[256 * 1024];
    size_t rxlen;

    /* A 10 ms ticker: the loop must keep serving it whatever a device does. */
    pos_test_ticker_t tick;

    /* Slow reader on a pty master. */
    uv_timer_t reader;
    int reader_fd;
    uint8_t *mrx;
    size_t mrxlen, mrxcap;
} fx_t;

static fx_t *fx_new(void)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->fail_errs_same = true;
    f->reader_fd = -1;
    return f;
}

static void fx_free(fx_t *f)
{
    /* Everything must be closed: no handle may be left on the loop. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->mrx);
    free(f);
}

/* ---- stream callbacks ---- */

static void on_open(pos_stream_t *s)
{
    fx_t *f = s->data;
    f->opens++;
    f->open_ns = uv_hrtime();
}

static void on_data(pos_stream_t *s, const uint8_t *buf, size_t len)
{
    fx_t *f = s->data;
    assert_true(len > 0 && len <= sizeof(f->rx) - f->rxlen);
    memcpy(f->rx + f->rxlen, buf, len);
    f->rxlen += len;
    f->data_calls++;
}

static void on_down(pos_stream_t *s, int err)
{
    fx_t *f = s->data;
    assert_true(err < 0);
    assert_false(pos_stream_is_open(s));
    f->downs++;
    f->last_down_err = err;
    f->down_ns = uv_hrtime();
}

static void on_open_failed(pos_stream_t *s, int err, uint32_t retry_ms)
{
    fx_t *f = s->data;
    assert_true(err < 0);
    if (f->open_fails > 0 && err != f->last_fail_err) {
        f->fail_errs_same = false;
    }
    if (f->open_fails == 0) {
        f->first_fail_ns = uv_hrtime();
    }
    if (f->open_fails < MAX_RETRIES_KEPT) {
        f->retry_ms[f->open_fails] = retry_ms;
    }
    if (retry_ms > f->max_retry_ms) {
        f->max_retry_ms = retry_ms;
    }
    f->open_fails++;
    f->last_fail_err = err;
}

static void on_closed(pos_stream_t *s)
{
    fx_t *f = s->data;
    f->closes++;
}

static void on_write_done(pos_stream_t *s, void *ctx, int status)
{
    fx_t *f = s->data;
    f->last_wstatus = status;
    f->last_wctx = ctx;
    if (status == 0) {
        f->wdone_ok++;
    } else {
        f->wdone_err++;
        if (f->close_in_write_done) {
            pos_stream_close(s, on_closed);
        }
    }
}

static const pos_stream_callbacks_t callbacks = {
    .on_open = on_open,
    .on_data = on_data,
    .on_down = on_down,
    .on_open_failed = on_open_failed,
    .on_write_done = on_write_done,
};

static void stream_setup(fx_t *f, const char *spec, uint32_t base_ms, uint32_t cap_ms)
{
    pos_stream_spec_t sp;
    char err[160];

    if (pos_stream_spec_parse(spec, &sp, err, sizeof(err)) != 0) {
        fail_msg("spec %s: %s", spec, err);
    }
    assert_int_equal(pos_stream_init(&f->loop, &f->s, &sp, &callbacks, base_ms, cap_ms), 0);
    f->s.data = f;
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"x", 1, 100, NULL), -ENOTCONN);
    assert_int_equal(pos_stream_start(&f->s), 0);
    assert_int_equal(pos_stream_start(&f->s), -EBUSY);
}

/* ---- loop driving ---- */

static void run_for(fx_t *f, uint32_t ms)
{
    pos_test_loop_for(&f->loop, ms);
}

static bool wait_count(fx_t *f, const int *counter, int at_least, uint32_t ms)
{
    return pos_test_loop_until_int(&f->loop, counter, at_least, ms);
}

/* A byte count reaching a mark. */
typedef struct size_arg {
    const size_t *len;
    size_t at_least;
} size_arg_t;

static bool pred_size(const void *arg)
{
    const size_arg_t *a = arg;
    return *a->len >= a->at_least;
}

static bool wait_rx(fx_t *f, size_t n, uint32_t ms)
{
    size_arg_t a = {&f->rxlen, n};
    return pos_test_loop_until(&f->loop, pred_size, &a, ms);
}

static void close_stream(fx_t *f)
{
    int closes = f->closes;
    pos_stream_close(&f->s, on_closed);
    pos_stream_close(&f->s, on_closed); /* ignored */
    assert_true(wait_count(f, &f->closes, closes + 1, 2000));
    run_for(f, 20);
    assert_int_equal(f->closes, closes + 1);
}

/* ---- pty helpers ---- */

typedef struct pty {
    int master, slave;
    char name[64];
} pty_t;

static void pty_open(pty_t *p)
{
    assert_int_equal(openpty(&p->master, &p->slave, NULL, NULL, NULL), 0);
    assert_int_equal(ttyname_r(p->slave, p->name, sizeof(p->name)), 0);
    int fl = fcntl(p->master, F_GETFL);
    assert_int_equal(fcntl(p->master, F_SETFL, fl | O_NONBLOCK), 0);
}

static void pty_close(pty_t *p)
{
    if (p->master >= 0) {
        close(p->master);
    }
    if (p->slave >= 0) {
        close(p->slave);
    }
    p->master = p->slave = -1;
}

static void write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        assert_true(n > 0);
        b += n;
        len -= (size_t)n;
    }
}

/* Reads what the device side wrote, while the loop runs. */
typedef struct master_arg {
    int fd;
    uint8_t *buf;
    size_t want, *got;
} master_arg_t;

static bool pred_master(const void *arg)
{
    const master_arg_t *a = arg;
    while (*a->got < a->want) {
        ssize_t n = read(a->fd, a->buf + *a->got, a->want - *a->got);
        if (n <= 0) {
            break;
        }
        *a->got += (size_t)n;
    }
    return *a->got >= a->want;
}

static size_t read_master(fx_t *f, int fd, uint8_t *buf, size_t want, uint32_t ms)
{
    size_t got = 0;
    master_arg_t a = {fd, buf, want, &got};
    pos_test_loop_until(&f->loop, pred_master, &a, ms);
    return got;
}

static void drain_fd(int fd)
{
    uint8_t junk[4096];
    while (read(fd, junk, sizeof(junk)) > 0) {
    }
}

/* ---- serial over a pty ---- */

static void test_serial_pty_roundtrip(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pty_t p;
    char spec[128];
    uint8_t all[256], back[256];
    int tag = 7;
    struct termios t;

    pty_open(&p);
    snprintf(spec, sizeof(spec), "serial:%s?baud=19200", p.name);
    stream_setup(f, spec, 20, 200);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    assert_true(pos_stream_is_open(&f->s));

    /* The line discipline was set up as asked: raw 8N1 at 19200 baud. */
    assert_int_equal(tcgetattr(p.slave, &t), 0);
    assert_int_equal(cfgetospeed(&t), B19200);
    assert_int_equal(cfgetispeed(&t), B19200);
    assert_int_equal(t.c_cflag & CSIZE, CS8);
    assert_int_equal(t.c_cflag & (PARENB | CSTOPB), 0);
    assert_int_equal(t.c_cflag & (CLOCAL | CREAD), CLOCAL | CREAD);
    assert_int_equal(t.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), 0);
    assert_int_equal(t.c_oflag & OPOST, 0);
    assert_int_equal(t.c_iflag & (IXON | IXOFF | ICRNL | INLCR | ISTRIP), 0);
    assert_int_equal(t.c_cc[VMIN], 1);

    /* Device to host: every byte value, in pieces, arrives unchanged. */
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
    }
    write_all(p.master, all, 100);
    assert_true(wait_rx(f, 100, 2000));
    write_all(p.master, all + 100, 156);
    assert_true(wait_rx(f, 256, 2000));
    assert_memory_equal(f->rx, all, 256);

    /* A burst bigger than the read buffer comes up in several reads. */
    uint8_t burst[3000];
    for (size_t i = 0; i < sizeof(burst); i++) {
        burst[i] = (uint8_t)(i * 13 + 1);
    }
    int calls = f->data_calls;
    write_all(p.master, burst, sizeof(burst));
    assert_true(wait_rx(f, 256 + sizeof(burst), 2000));
    assert_memory_equal(f->rx + 256, burst, sizeof(burst));
    assert_true(f->data_calls - calls >= 3);

    /* Host to device. */
    assert_int_equal(pos_stream_write(&f->s, all, 0, 100, NULL), -EINVAL);
    assert_int_equal(pos_stream_write(&f->s, all, 1, 0, NULL), -EINVAL);
    assert_int_equal(pos_stream_write(&f->s, all, sizeof(all), 2000, &tag), 0);
    assert_int_equal(pos_stream_queued(&f->s), 256);
    assert_int_equal(f->wdone_ok, 0); /* never completes inside the call */
    assert_int_equal(read_master(f, p.master, back, sizeof(back), 2000), sizeof(back));
    assert_memory_equal(back, all, sizeof(all));
    assert_true(wait_count(f, &f->wdone_ok, 1, 2000));
    assert_ptr_equal(f->last_wctx, &tag);
    assert_int_equal(f->last_wstatus, 0);
    assert_int_equal(pos_stream_queued(&f->s), 0);

    /* The queue is bounded (64 KiB by default). */
    static uint8_t big[60 * 1024];
    static uint8_t big_back[60 * 1024];
    memset(big, 0xa5, sizeof(big));
    assert_int_equal(pos_stream_write(&f->s, big, sizeof(big), 5000, NULL), 0);
    assert_int_equal(pos_stream_write(&f->s, big, 8 * 1024, 5000, NULL), -ENOBUFS);
    assert_int_equal(pos_stream_write(&f->s, big, 4 * 1024, 5000, NULL), 0);
    assert_int_equal(pos_stream_queued(&f->s), 64 * 1024);
    assert_int_equal(pos_stream_write(&f->s, big, 1, 5000, NULL), -ENOBUFS);
    assert_int_equal(read_master(f, p.master, big_back, sizeof(big_back), 5000), sizeof(big_back));
    assert_int_equal(read_master(f, p.master, big_back, 4 * 1024, 5000), 4 * 1024);
    assert_true(wait_count(f, &f->wdone_ok, 3, 2000));

    close_stream(f);
    assert_int_equal(f->opens, 1);
    assert_int_equal(f->downs, 0);
    assert_int_equal(f->open_fails, 0);
    assert_int_equal(f->wdone_ok, 3);
    assert_int_equal(f->wdone_err, 0);
    pty_close(&p);
    fx_free(f);
}

static void reader_cb(uv_timer_t *t)
{
    fx_t *f = t->data;
    size_t room = f->mrxcap - f->mrxlen;
    /* At most 1 KiB per 5 ms: about 200 KiB/s, slower than the writer. */
    ssize_t n = read(f->reader_fd, f->mrx + f->mrxlen, room < 1024 ? room : 1024);
    if (n > 0) {
        f->mrxlen += (size_t)n;
    }
}

static void test_serial_large_write_slow_reader(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pty_t p;
    char spec[128];
    const size_t len = 100 * 1024;
    uint8_t *data = malloc(len);

    assert_non_null(data);
    for (size_t i = 0; i < len; i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    pty_open(&p);
    snprintf(spec, sizeof(spec), "serial:%s?baud=115200", p.name);
    stream_setup(f, spec, 20, 200);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    assert_int_equal(pos_stream_set_queue_limit(&f->s, 0), -EINVAL);
    assert_int_equal(pos_stream_set_queue_limit(&f->s, 256 * 1024), 0);

    f->mrx = malloc(len);
    f->mrxcap = len;
    f->reader_fd = p.master;
    uv_timer_init(&f->loop, &f->reader);
    f->reader.data = f;
    uv_timer_start(&f->reader, reader_cb, 5, 5);

    uint64_t t0 = uv_hrtime();
    assert_int_equal(pos_stream_write(&f->s, data, len, 20000, data), 0);
    size_arg_t mrx = {&f->mrxlen, len};
    assert_true(pos_test_loop_until(&f->loop, pred_size, &mrx, 20000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_true(wait_count(f, &f->wdone_ok, 1, 2000));
    assert_memory_equal(f->mrx, data, len);
    assert_ptr_equal(f->last_wctx, data);
    print_message("    100 KiB through a pty with a 1 KiB/5 ms reader: %u ms\n", (unsigned)ms);

    uv_close((uv_handle_t *)&f->reader, NULL);
    close_stream(f);
    assert_int_equal(f->wdone_ok, 1);
    assert_int_equal(f->wdone_err, 0);
    assert_int_equal(f->downs, 0);
    pty_close(&p);
    free(data);
    fx_free(f);
}

static void test_serial_write_deadline(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pty_t p;
    char spec[128];
    const size_t len = 200 * 1024;
    uint8_t *data = calloc(1, len);
    int a = 1, b = 2;

    assert_non_null(data);
    pty_open(&p);
    snprintf(spec, sizeof(spec), "serial:%s", p.name);
    stream_setup(f, spec, 20, 200);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    assert_int_equal(pos_stream_set_queue_limit(&f->s, 256 * 1024), 0);
    pos_test_ticker_start(&f->tick, &f->loop);
    run_for(f, 50);

    /* Nobody reads the master: the pty fills up and the write sticks. */
    uint64_t t0 = uv_hrtime();
    assert_int_equal(pos_stream_write(&f->s, data, len, 300, &a), 0);
    assert_int_equal(pos_stream_write(&f->s, data, 10, 5000, &b), 0);
    assert_true(wait_count(f, &f->downs, 1, 3000));
    uint64_t down_ms = (f->down_ns - t0) / 1000000u;
    assert_int_equal(f->last_down_err, -ETIMEDOUT);
    assert_int_equal(f->wdone_err, 2); /* both, exactly once each */
    assert_int_equal(f->wdone_ok, 0);
    assert_int_equal(f->last_wstatus, -ETIMEDOUT);
    assert_ptr_equal(f->last_wctx, &b);
    assert_true(down_ms >= 290 && down_ms <= 600);
    assert_int_equal(pos_stream_queued(&f->s), 0);
    assert_int_equal(pos_stream_write(&f->s, data, 1, 100, NULL), -ENOTCONN);

    /* It re-opens by itself (the pty is still there) within the cap. */
    assert_true(wait_count(f, &f->opens, 2, 2000));
    uint64_t reopen_ms = (f->open_ns - f->down_ns) / 1000000u;
    assert_true(reopen_ms <= 200 + 100);
    run_for(f, 100);

    /* And works: a fresh write goes through once the master is read. */
    drain_fd(p.master);
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"ok", 2, 2000, NULL), 0);
    assert_true(wait_count(f, &f->wdone_ok, 1, 2000));
    uint8_t got[2];
    assert_int_equal(read_master(f, p.master, got, 2, 2000), 2);
    assert_memory_equal(got, "ok", 2);

    pos_test_ticker_stop(&f->tick);
    print_message("    write deadline: down after %u ms, re-open after %u ms, "
                  "max loop gap %.1f ms over %d ticks\n",
                  (unsigned)down_ms, (unsigned)reopen_ms, (double)f->tick.max_gap_ns / 1e6,
                  f->tick.ticks);
    /* The 10 ms ticker never waited for the stuck device. */
    assert_true(f->tick.ticks >= 30);
    assert_true(f->tick.max_gap_ns < 100u * 1000000u);

    close_stream(f);
    assert_int_equal(f->downs, 1);
    assert_int_equal(f->opens, 2);
    pty_close(&p);
    free(data);
    fx_free(f);
}

static void test_close_from_write_done(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pty_t p;
    char spec[128];
    static uint8_t data[128 * 1024];

    pty_open(&p);
    snprintf(spec, sizeof(spec), "serial:%s", p.name);
    stream_setup(f, spec, 20, 200);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    assert_int_equal(pos_stream_set_queue_limit(&f->s, sizeof(data) + 16), 0);

    /* The owner closes from inside the first failure callback: the other
     * write still fails exactly once, on_down is not called, nothing re-opens. */
    f->close_in_write_done = true;
    assert_int_equal(pos_stream_write(&f->s, data, sizeof(data), 100, NULL), 0);
    assert_int_equal(pos_stream_write(&f->s, data, 16, 100, NULL), 0);
    assert_true(wait_count(f, &f->closes, 1, 2000));
    run_for(f, 300);
    assert_int_equal(f->wdone_err, 2);
    assert_int_equal(f->last_wstatus, -ETIMEDOUT);
    assert_int_equal(f->downs, 0);
    assert_int_equal(f->opens, 1);
    assert_int_equal(f->closes, 1);

    /* Closing with writes pending fails them with -ECANCELED. */
    fx_t *g = fx_new();
    drain_fd(p.master);
    stream_setup(g, spec, 20, 200);
    assert_true(wait_count(g, &g->opens, 1, 2000));
    assert_int_equal(pos_stream_set_queue_limit(&g->s, sizeof(data)), 0);
    assert_int_equal(pos_stream_write(&g->s, data, sizeof(data) / 2, 5000, NULL), 0);
    run_for(g, 50);
    assert_int_equal(pos_stream_write(&g->s, data, 1, 5000, NULL), 0);
    close_stream(g);
    assert_int_equal(g->wdone_err, 2);
    assert_int_equal(g->last_wstatus, -ECANCELED);
    assert_int_equal(g->downs, 0);
    fx_free(g);

    pty_close(&p);
    fx_free(f);
}

static void test_serial_unplug_replug(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pty_t p1, p2;
    char dir[] = "/tmp/pos-stream-XXXXXX";
    char link[96], spec[160];
    uint8_t c;
    const uint32_t cap = 300;

    assert_non_null(mkdtemp(dir));
    snprintf(link, sizeof(link), "%s/printer", dir);
    pty_open(&p1);
    close(p1.slave); /* only the stream holds the device side */
    p1.slave = -1;
    assert_int_equal(symlink(p1.name, link), 0);

    snprintf(spec, sizeof(spec), "serial:%s?baud=9600", link);
    stream_setup(f, spec, 20, cap);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    write_all(p1.master, "x", 1);
    assert_true(wait_rx(f, 1, 2000));
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"y", 1, 1000, NULL), 0);
    assert_int_equal(read_master(f, p1.master, &c, 1, 2000), 1);
    assert_int_equal(c, 'y');

    /* Unplug: the far end goes away and so does the device node. */
    close(p1.master);
    p1.master = -1;
    assert_int_equal(unlink(link), 0);
    assert_true(wait_count(f, &f->downs, 1, 2000));
    assert_true(f->last_down_err == -EIO || f->last_down_err == -ECONNRESET);
    assert_false(pos_stream_is_open(&f->s));
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"z", 1, 1000, NULL), -ENOTCONN);

    /* While it is gone: periodic attempts, each delay within the cap. */
    run_for(f, 3 * cap);
    assert_true(f->open_fails >= 2);
    assert_int_equal(f->last_fail_err, -ENOENT);
    assert_true(f->fail_errs_same);
    assert_true(f->max_retry_ms <= cap);
    assert_int_equal(f->opens, 1);

    /* Replug: a new pty behind the same name. */
    pty_open(&p2);
    close(p2.slave);
    p2.slave = -1;
    uint64_t t0 = uv_hrtime();
    assert_int_equal(symlink(p2.name, link), 0);
    assert_true(wait_count(f, &f->opens, 2, 2000));
    uint64_t back_ms = (f->open_ns - t0) / 1000000u;
    print_message("    replug: open again %u ms after the device came back (cap %u ms), "
                  "%d failed attempts\n",
                  (unsigned)back_ms, (unsigned)cap, f->open_fails);
    assert_true(back_ms <= cap + 100);

    write_all(p2.master, "A", 1);
    assert_true(wait_rx(f, 2, 2000));
    assert_memory_equal(f->rx, "xA", 2);
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"B", 1, 1000, NULL), 0);
    assert_int_equal(read_master(f, p2.master, &c, 1, 2000), 1);
    assert_int_equal(c, 'B');

    close_stream(f);
    assert_int_equal(f->downs, 1);
    assert_int_equal(f->wdone_ok, 2);
    assert_int_equal(f->wdone_err, 0);
    pty_close(&p2);
    unlink(link);
    rmdir(dir);
    fx_free(f);
}

/*
 * There is no /dev/usb/lpN to create in a test. What can be tested honestly
 * is the usblp code path up to the kernel driver: the open (no termios, a
 * character device is required) and the shared fd engine, with a pty as the
 * character device. The driver's own behaviour (ENODEV on unplug, EINVAL on
 * reads from unidirectional printers, status bytes) is not exercised here.
 */
static void test_usblp_over_pty(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pty_t p;
    char spec[128];
    struct termios t;
    uint8_t back[5];

    pty_open(&p);
    /* Make the "printer" raw ourselves, at a marker speed the usblp path
     * must leave alone. */
    assert_int_equal(tcgetattr(p.slave, &t), 0);
    cfmakeraw(&t);
    cfsetispeed(&t, B2400);
    cfsetospeed(&t, B2400);
    assert_int_equal(tcsetattr(p.slave, TCSANOW, &t), 0);

    snprintf(spec, sizeof(spec), "usblp:%s", p.name);
    stream_setup(f, spec, 20, 200);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    assert_int_equal(tcgetattr(p.slave, &t), 0);
    assert_int_equal(cfgetospeed(&t), B2400);

    write_all(p.master, "\x10\x04\x01", 3); /* what a DLE EOT status reply looks like */
    assert_true(wait_rx(f, 3, 2000));
    assert_memory_equal(f->rx, "\x10\x04\x01", 3);
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"\x1b@hi\n", 5, 1000, NULL), 0);
    assert_int_equal(read_master(f, p.master, back, 5, 2000), 5);
    assert_memory_equal(back, "\x1b@hi\n", 5);
    assert_true(wait_count(f, &f->wdone_ok, 1, 2000));

    close_stream(f);
    pty_close(&p);
    fx_free(f);
}

/* Devices that cannot be used are retried with backoff, each with its error. */
static void test_refused_devices(void **state)
{
    (void)state;
    char dir[] = "/tmp/pos-stream-XXXXXX";
    char file[96], spec[160];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/regular", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);

    const struct {
        const char *kind;
        bool in_dir;
        const char *path;
        int err;
    } cases[] = {
        {"serial", true, "/missing", -ENOENT},   /* not plugged in */
        {"serial", false, "/dev/null", -ENOTTY}, /* not a tty */
        {"usblp", true, "/regular", -ENODEV},    /* not a character device */
        {"usblp", false, "/dev/null", -EPERM},   /* a character device epoll cannot watch */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fx_t *f = fx_new();
        snprintf(spec, sizeof(spec), "%s:%s%s", cases[i].kind, cases[i].in_dir ? dir : "",
                 cases[i].path);
        stream_setup(f, spec, 5, 40);
        assert_true(wait_count(f, &f->open_fails, 3, 2000));
        if (f->last_fail_err != cases[i].err) {
            fail_msg("%s: error %d, expected %d", spec, f->last_fail_err, cases[i].err);
        }
        assert_true(f->fail_errs_same);
        assert_int_equal(f->opens, 0);
        assert_true(f->max_retry_ms <= 40);
        close_stream(f);
        assert_int_equal(f->downs, 0);
        fx_free(f);
    }

    /* Closing a stream that was never started. */
    fx_t *f = fx_new();
    pos_stream_spec_t sp;
    assert_int_equal(pos_stream_spec_parse("tcp:127.0.0.1:9", &sp, NULL, 0), 0);
    assert_int_equal(pos_stream_init(&f->loop, &f->s, &sp, &callbacks, 10, 0), -EINVAL);
    assert_int_equal(pos_stream_init(&f->loop, &f->s, &sp, NULL, 10, 100), 0);
    f->s.data = f;
    close_stream(f);
    fx_free(f);

    unlink(file);
    rmdir(dir);
}

/* ---- TCP ---- */

typedef struct srv {
    fx_t *f;
    uv_tcp_t listener;
    uv_tcp_t client;
    bool listening, client_open;
    int accepts;
    char rbuf[4096];
} srv_t;

static void srv_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void srv_write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void srv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    srv_t *sv = h->data;
    (void)suggested;
    *buf = uv_buf_init(sv->rbuf, sizeof(sv->rbuf));
}

static void srv_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    srv_t *sv = st->data;
    if (nread < 0) {
        sv->client_open = false;
        uv_close((uv_handle_t *)&sv->client, srv_handle_closed);
        return;
    }
    if (nread == 0) {
        return;
    }
    /* Echo: what the printer port receives goes back as "status". */
    uv_write_t *req = malloc(sizeof(*req) + (size_t)nread);
    assert_non_null(req);
    memcpy(req + 1, buf->base, (size_t)nread);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned int)nread);
    assert_int_equal(uv_write(req, st, &b, 1, srv_write_cb), 0);
}

static void srv_connection_cb(uv_stream_t *l, int status)
{
    srv_t *sv = l->data;
    assert_int_equal(status, 0);
    assert_false(sv->client_open);
    uv_tcp_init(l->loop, &sv->client);
    sv->client.data = sv;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sv->client), 0);
    sv->client_open = true;
    sv->accepts++;
    uv_read_start((uv_stream_t *)&sv->client, srv_alloc_cb, srv_read_cb);
}

/* Listens on addr:port (port 0: any); returns the port, or -errno. */
static int srv_listen(srv_t *sv, const char *addr, int port)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } a;
    int len = sizeof(a), rc;

    if (strchr(addr, ':') != NULL) {
        uv_ip6_addr(addr, port, &a.in6);
    } else {
        uv_ip4_addr(addr, port, &a.in);
    }
    uv_tcp_init(&sv->f->loop, &sv->listener);
    sv->listener.data = sv;
    rc = uv_tcp_bind(&sv->listener, &a.sa, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&sv->listener, 4, srv_connection_cb);
    }
    if (rc != 0) {
        uv_close((uv_handle_t *)&sv->listener, srv_handle_closed);
        return rc;
    }
    sv->listening = true;
    uv_tcp_getsockname(&sv->listener, &a.sa, &len);
    return ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in.sin_port);
}

static void srv_close(srv_t *sv)
{
    if (sv->client_open) {
        sv->client_open = false;
        uv_close((uv_handle_t *)&sv->client, srv_handle_closed);
    }
    if (sv->listening) {
        sv->listening = false;
        uv_close((uv_handle_t *)&sv->listener, srv_handle_closed);
    }
}

static void echo_check(fx_t *f, const char *msg)
{
    size_t before = f->rxlen, n = strlen(msg);
    int ok = f->wdone_ok;
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)msg, n, 2000, NULL), 0);
    assert_true(wait_rx(f, before + n, 2000));
    assert_memory_equal(f->rx + before, msg, n);
    assert_true(wait_count(f, &f->wdone_ok, ok + 1, 2000));
}

static void test_tcp_echo_down_relisten(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    srv_t *sv = calloc(1, sizeof(*sv));
    char spec[64];
    const uint32_t cap = 200;

    sv->f = f;
    int port = srv_listen(sv, "127.0.0.1", 0);
    assert_true(port > 0);
    snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", port);
    stream_setup(f, spec, 10, cap);
    assert_true(wait_count(f, &f->opens, 1, 2000));
    assert_true(wait_count(f, &sv->accepts, 1, 2000));
    echo_check(f, "hello printer");

    /* The printer goes away: its end closes, nothing listens any more. */
    srv_close(sv);
    assert_true(wait_count(f, &f->downs, 1, 2000));
    assert_int_equal(f->last_down_err, -ECONNRESET);
    assert_true(wait_count(f, &f->open_fails, 2, 2000));
    assert_int_equal(f->last_fail_err, -ECONNREFUSED);
    assert_true(f->max_retry_ms <= cap);

    /* It comes back on the same port. */
    uint64_t t0 = uv_hrtime();
    assert_int_equal(srv_listen(sv, "127.0.0.1", port), port);
    assert_true(wait_count(f, &f->opens, 2, 2000));
    uint64_t back_ms = (f->open_ns - t0) / 1000000u;
    assert_true(back_ms <= cap + 100);
    assert_true(wait_count(f, &sv->accepts, 2, 2000));
    echo_check(f, "again");

    /* Closing with a write libuv still holds: failed once, freed later. */
    assert_int_equal(pos_stream_write(&f->s, (const uint8_t *)"bye", 3, 2000, NULL), 0);
    int ok = f->wdone_ok;
    close_stream(f);
    assert_int_equal(f->wdone_ok, ok);
    assert_int_equal(f->wdone_err, 1);
    assert_int_equal(f->last_wstatus, -ECANCELED);
    assert_int_equal(f->downs, 1);
    assert_int_equal(f->opens, 2);
    srv_close(sv);
    fx_free(f);
    free(sv);
}

static int free_tcp_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_tcp_refused_backoff(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    char spec[64];
    const uint32_t base = 10, cap = 80;

    snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", free_tcp_port());
    stream_setup(f, spec, base, cap);
    run_for(f, 800);
    assert_int_equal(f->opens, 0);
    assert_int_equal(f->downs, 0);
    assert_true(f->open_fails >= 5);
    assert_true(f->open_fails < 400); /* backing off, not spinning */
    assert_int_equal(f->last_fail_err, -ECONNREFUSED);
    assert_true(f->fail_errs_same);
    /* Full jitter under a doubling ceiling: delay k <= min(cap, base * 2^k). */
    uint32_t ceiling = base;
    for (int k = 0; k < f->open_fails && k < MAX_RETRIES_KEPT; k++) {
        assert_true(f->retry_ms[k] <= ceiling);
        ceiling = ceiling * 2 < cap ? ceiling * 2 : cap;
    }
    print_message("    refused: %d attempts in 800 ms (base %u, cap %u ms)\n", f->open_fails,
                  (unsigned)base, (unsigned)cap);
    close_stream(f);
    fx_free(f);
}

static void test_tcp_connect_timeout(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    char spec[64];
    int l, fill[2];

    /* A listener that never accepts, with its queue full: Linux drops
     * further SYNs, so a connect neither succeeds nor fails. */
    l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fill[i] >= 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    run_for(f, 50);

    snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", ntohs(a.sin_port));
    pos_stream_spec_t sp;
    assert_int_equal(pos_stream_spec_parse(spec, &sp, NULL, 0), 0);
    assert_int_equal(pos_stream_init(&f->loop, &f->s, &sp, &callbacks, 10, 50), 0);
    f->s.data = f;
    assert_int_equal(pos_stream_set_connect_timeout(&f->s, 0), -EINVAL);
    assert_int_equal(pos_stream_set_connect_timeout(&f->s, 200), 0);
    pos_test_ticker_start(&f->tick, &f->loop);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(pos_stream_start(&f->s), 0);
    assert_true(wait_count(f, &f->open_fails, 2, 3000));
    uint64_t first_ms = (f->first_fail_ns - t0) / 1000000u;
    assert_int_equal(f->last_fail_err, -ETIMEDOUT);
    assert_true(f->fail_errs_same);
    assert_int_equal(f->opens, 0);
    assert_true(first_ms >= 190 && first_ms <= 400);
    assert_true(f->tick.max_gap_ns < 100u * 1000000u);
    print_message("    connect timeout: first attempt gave up after %u ms, max loop gap %.1f ms\n",
                  (unsigned)first_ms, (double)f->tick.max_gap_ns / 1e6);

    pos_test_ticker_stop(&f->tick);
    close_stream(f);
    close(fill[0]);
    close(fill[1]);
    close(l);
    fx_free(f);
}

static void test_tcp_name_and_ipv6(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    srv_t *sv = calloc(1, sizeof(*sv));
    char spec[64];

    sv->f = f;
    /* "::" takes IPv4-mapped connections too, so "localhost" works whichever
     * family the resolver lists first. */
    int port = srv_listen(sv, "::", 0);
    if (port < 0) {
        free(sv);
        fx_free(f);
        skip(); /* no IPv6 in this environment */
    }
    snprintf(spec, sizeof(spec), "tcp:localhost:%d", port);
    stream_setup(f, spec, 10, 100);
    assert_true(wait_count(f, &f->opens, 1, 3000));
    echo_check(f, "by name");
    close_stream(f);
    srv_close(sv);
    run_for(f, 20);

    fx_t *g = fx_new();
    sv->f = g;
    sv->accepts = 0;
    port = srv_listen(sv, "::1", 0);
    assert_true(port > 0);
    snprintf(spec, sizeof(spec), "tcp:[::1]:%d", port);
    stream_setup(g, spec, 10, 100);
    assert_true(wait_count(g, &g->opens, 1, 2000));
    echo_check(g, "over IPv6");
    close_stream(g);
    srv_close(sv);
    fx_free(g);
    fx_free(f);
    free(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_pty_roundtrip),
        cmocka_unit_test(test_serial_large_write_slow_reader),
        cmocka_unit_test(test_serial_write_deadline),
        cmocka_unit_test(test_close_from_write_done),
        cmocka_unit_test(test_serial_unplug_replug),
        cmocka_unit_test(test_usblp_over_pty),
        cmocka_unit_test(test_refused_devices),
        cmocka_unit_test(test_tcp_echo_down_relisten),
        cmocka_unit_test(test_tcp_refused_backoff),
        cmocka_unit_test(test_tcp_connect_timeout),
        cmocka_unit_test(test_tcp_name_and_ipv6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
