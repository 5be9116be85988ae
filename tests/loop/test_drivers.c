/*
 * Real drivers against device emulators, in-process on one libuv loop:
 * each driver is created through pos_hal_create() with a real driver
 * string pointing at a pty (behind a symlink, for unplug and replug) or a
 * loopback TCP port, and the emulator on the far side sees only bytes.
 * A 10 ms ticker runs through every test: no device may hold up the loop.
 * Every test closes everything and ends with uv_loop_close() == 0.
 *
 * The device tests are a table (main): each names its device, driver
 * string and emulator behaviour (drv_case_t), and drv_setup and
 * drv_teardown start and close them around the test's body.
 */
#define _GNU_SOURCE /* memmem */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "hal/display.h"
#include "hal/pinpad.h"
#include "hal/printer.h"
#include "hal/receipt.h"
#include "hal/registry.h"
#include "platform/stream.h"
#include "tests/support/emulators.h"
#include "tests/support/loop.h"

#define TEST_PAN        "4970101234561234"
#define TEST_PAN_MASKED "497010XXXXXX1234"

typedef struct fx {
    uv_loop_t loop;
    pos_hal_device_t dev;
    pos_hal_options_t opt;
    bool dev_created;
    int closed;

    int statuses;
    pos_dev_state_t status;
    unsigned status_seen; /* bit (1 << status) for each status reported */
    int completes, last_result;
    uint32_t last_job;
    int results;
    pos_pinpad_result_t pinpad;
    bool pan_leaked;

    pos_test_ticker_t tick;
} fx_t;

static fx_t *fx_new(void)
{
    fx_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->opt.reopen_base_ms = 20;
    f->opt.reopen_cap_ms = 200;
    f->opt.paper_width = 42;
    f->opt.printer_model = "tm-t88";
    f->opt.codepage = "cp858";
    f->status = POS_DEV_OFFLINE;
    pos_test_ticker_start(&f->tick, &f->loop);
    return f;
}

static void on_event(pos_hal_device_t *dev, const pos_hal_event_t *ev)
{
    fx_t *f = dev->user;

    /* The full card number must never reach an event, anywhere in it. */
    if (memmem(ev, sizeof(*ev), TEST_PAN, strlen(TEST_PAN)) != NULL) {
        f->pan_leaked = true;
    }
    switch (ev->type) {
    case POS_HAL_EV_STATUS:
        f->statuses++;
        f->status = ev->status;
        f->status_seen |= 1u << ev->status;
        break;
    case POS_HAL_EV_OUTPUT_COMPLETE:
        f->completes++;
        f->last_result = ev->error;
        f->last_job = ev->job_id;
        break;
    case POS_HAL_EV_PINPAD_RESULT:
        f->results++;
        f->pinpad = ev->pinpad;
        break;
    case POS_HAL_EV_ERROR:
        break;
    }
}

static void run_for(fx_t *f, uint32_t ms)
{
    pos_test_loop_for(&f->loop, ms);
}

static bool wait_int(fx_t *f, const int *counter, int at_least, uint32_t ms)
{
    return pos_test_loop_until_int(&f->loop, counter, at_least, ms);
}

static bool wait_unsigned(fx_t *f, const unsigned *counter, unsigned at_least, uint32_t ms)
{
    return pos_test_loop_until_unsigned(&f->loop, counter, at_least, ms);
}

typedef struct status_arg {
    const fx_t *f;
    pos_dev_state_t want;
} status_arg_t;

static bool pred_status(const void *arg)
{
    const status_arg_t *a = arg;
    return a->f->status == a->want;
}

static bool wait_status(fx_t *f, pos_dev_state_t st, uint32_t ms)
{
    status_arg_t a = {f, st};
    return pos_test_loop_until(&f->loop, pred_status, &a, ms);
}

static void dev_create(fx_t *f, pos_hal_kind_t kind, const char *spec)
{
    char err[200];

    if (pos_hal_create(&f->dev, &f->loop, kind, spec, &f->opt, on_event, f, err, sizeof(err)) !=
        0) {
        fail_msg("create %s: %s", spec, err);
    }
    f->dev_created = true;
    assert_int_equal(pos_hal_start(&f->dev), 0);
}

static void dev_closed(pos_hal_device_t *dev)
{
    fx_t *f = dev->user;
    f->closed++;
}

/* Closes the device and the ticker, checks the loop's largest gap, and
 * leaves the emulators to the caller (closed before fx_free). */
static void fx_close_dev(fx_t *f)
{
    if (f->dev_created) {
        pos_hal_close(&f->dev, dev_closed);
        assert_true(wait_int(f, &f->closed, 1, 2000));
    }
    pos_test_ticker_stop(&f->tick);
    print_message("    loop: %d ticks of 10 ms, largest gap %.1f ms\n", f->tick.ticks,
                  (double)f->tick.max_gap_ns / 1e6);
    /* A blocking call in a driver (a write waiting on a stalled line, a
     * sleep between retries) would stall the loop for its timeout, a
     * second or more. 250 ms leaves room for a loaded 2-core machine to
     * deschedule the test (105 ms was seen under load average 5). */
    assert_true(f->tick.max_gap_ns < 250u * 1000000u);
}

static void fx_free(fx_t *f)
{
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

/* ---- one device on its emulator: what a table entry starts with ---- */

typedef struct drv_case {
    pos_hal_kind_t kind;
    const char *driver;          /* the driver string up to the device path */
    const char *query;           /* and after it ("" for none) */
    pos_dev_state_t ready;       /* the status to wait for once started */
    bool tcp;                    /* printer: a loopback TCP listener, not a pty */
    const char *model;           /* printer model (NULL: fx_new's tm-t88) */
    bool silent;                 /* printer: answers no status query */
    pos_emu_prn_state_t paper;   /* printer: its state when the driver opens it */
    pos_display_cmdset_t cmdset; /* display: the command set it decodes */
    pos_emu_telium_mode_t mode;  /* pinpad: how the terminal behaves */
    uint32_t delay_ms;           /* pinpad: the customer's time */
} drv_case_t;

typedef struct drv {
    const drv_case_t *c;
    fx_t *f;
    pos_emu_printer_t *prn;
    pos_emu_display_t *dsp;
    pos_emu_telium_t *tel;
    uint32_t ready_ms; /* from pos_hal_start to c->ready */
} drv_t;

/* cmocka setup: the case's emulator, the driver on it, waited until ready. */
static int drv_setup(void **state)
{
    const drv_case_t *c = *state;
    drv_t *d = calloc(1, sizeof(*d));
    const char *path = NULL;
    char spec[256];

    assert_non_null(d);
    d->c = c;
    d->f = fx_new();
    switch (c->kind) {
    case POS_HAL_PRINTER:
        d->prn = calloc(1, sizeof(*d->prn));
        assert_non_null(d->prn);
        assert_int_equal(pos_emu_printer_start(d->prn, &d->f->loop, c->tcp, 42, "cp858"), 0);
        d->prn->state = c->paper;
        d->prn->silent = c->silent;
        path = d->prn->port.path;
        break;
    case POS_HAL_DISPLAY:
        d->dsp = calloc(1, sizeof(*d->dsp));
        assert_non_null(d->dsp);
        assert_int_equal(pos_emu_display_start(d->dsp, &d->f->loop, c->cmdset), 0);
        path = d->dsp->port.path;
        break;
    case POS_HAL_PINPAD:
        d->tel = calloc(1, sizeof(*d->tel));
        assert_non_null(d->tel);
        assert_int_equal(pos_emu_telium_start(d->tel, &d->f->loop, c->mode, TEST_PAN, c->delay_ms),
                         0);
        path = d->tel->port.path;
        break;
    }
    assert_non_null(path);
    if (c->model != NULL) {
        d->f->opt.printer_model = c->model;
    }
    snprintf(spec, sizeof(spec), "%s%s%s", c->driver, path, c->query);
    dev_create(d->f, c->kind, spec);
    uint64_t t0 = uv_hrtime();
    assert_true(wait_status(d->f, c->ready, 3000));
    d->ready_ms = (uint32_t)((uv_hrtime() - t0) / 1000000u);
    *state = d;
    return 0;
}

/* cmocka teardown: no card number in any event, the device and the ticker
 * closed (the loop never held up), the emulator closed, the loop empty. */
static int drv_teardown(void **state)
{
    drv_t *d = *state;

    assert_false(d->f->pan_leaked);
    fx_close_dev(d->f);
    if (d->prn != NULL) {
        pos_emu_printer_close(d->prn);
    }
    if (d->dsp != NULL) {
        pos_emu_port_close(&d->dsp->port);
    }
    if (d->tel != NULL) {
        pos_emu_telium_close(d->tel);
    }
    fx_free(d->f);
    free(d->prn);
    free(d->dsp);
    free(d->tel);
    free(d);
    return 0;
}

/* ---- receipts ---- */

static void make_doc(pos_receipt_doc_t *doc, unsigned width)
{
    static const pos_receipt_item_t items[] = {
        {"Espresso", 2, 500},
        {"Croissant au beurre", 1, 234},
        {"Café crème", 1, 390},
    };
    pos_receipt_input_t in = {
        .store_id = "S-042",
        .terminal_id = "T-0001",
        .transaction_id = "tx-1001",
        .items = items,
        .n_items = 3,
        .total_minor = 1124,
        .currency = "EUR",
        .minor_digits = 2,
        .masked_pan = TEST_PAN_MASKED,
        .card_brand = "VISA",
        .auth_code = "A1B2C3",
        .time_s = 1764412800,
        .width = width,
    };
    assert_int_equal(pos_receipt_layout(&in, doc), 0);
}

static char *doc_text(const pos_receipt_doc_t *doc)
{
    pos_buf_t b;
    char *s;

    pos_buf_init(&b, 0);
    assert_int_equal(pos_receipt_render_text(doc, &b), 0);
    s = calloc(1, b.len + 1);
    assert_non_null(s);
    memcpy(s, b.data, b.len);
    pos_buf_free(&b);
    return s;
}

/* ---- printer ---- */

/* Compares the paper with the expected text, showing both in full when they differ. */
static void check_paper(const pos_emu_printer_t *e, const pos_receipt_doc_t *doc)
{
    char *want = doc_text(doc);

    if (strcmp(e->text, want) != 0) {
        /* Line by line: cmocka cuts long messages. */
        const char *a = e->text, *b = want;
        while (*a != '\0' && *a == *b) {
            a++;
            b++;
        }
        while (a > e->text && a[-1] != '\n') {
            a--;
            b--;
        }
        print_message("first difference, paper [%.60s] expected [%.60s]\n", a, b);
    }
    assert_string_equal(e->text, want);
    free(want);
}

static void test_printer_receipt(void **state)
{
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    /* ESC @ and one status cycle at open. */
    assert_int_equal(e->inits, 1);
    assert_int_equal(e->queries, 4);

    make_doc(&doc, 42);
    assert_int_equal(pos_printer_print(&f->dev, &doc, 7), 0);
    assert_int_equal(pos_printer_print(&f->dev, &doc, 8), -EBUSY);
    assert_true(wait_int(f, &f->completes, 1, 3000));
    assert_int_equal(f->last_job, 7);
    assert_int_equal(f->last_result, 0);
    assert_int_equal(f->status, POS_DEV_READY);

    /* What came out is what the text renderer says is on the paper. */
    check_paper(e, &doc);
    assert_int_equal(e->cuts, 1);
    assert_int_equal(e->qr_prints, 1); /* tm-t88 prints the QR code */
    /* A status cycle before and after the job. */
    assert_int_equal(e->queries, 12);

    /* Idle and healthy: nothing wakes the printer up. */
    run_for(f, 2500);
    assert_int_equal(e->queries, 12);
    assert_int_equal(f->completes, 1);
}

static void test_printer_paper_out(void **state)
{
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    make_doc(&doc, 42);

    /* The roll runs out while idle: the driver does not poll, so it learns
     * it from the query before the next job, and sends nothing of it. */
    e->state = POS_EMU_PRN_PAPER_OUT;
    run_for(f, 1500);
    assert_int_equal(f->status, POS_DEV_READY);
    uint64_t before = e->print_bytes;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 1), 0);
    assert_true(wait_int(f, &f->completes, 1, 3000));
    assert_int_equal(f->last_result, -ENOSPC);
    assert_int_equal(f->status, POS_DEV_PAPER_OUT);
    assert_int_equal(e->print_bytes, before);
    assert_int_equal(e->cuts, 0);

    /* Known out of paper: the next job is refused at once. */
    assert_int_equal(pos_printer_print(&f->dev, &doc, 2), -ENOSPC);
    assert_int_equal(e->print_bytes, before);

    /* A fault is pending: the driver polls until it clears. */
    unsigned q = e->queries;
    run_for(f, 2300);
    assert_true(e->queries >= q + 8);
    e->state = POS_EMU_PRN_PAPER_LOW;
    assert_true(wait_status(f, POS_DEV_PAPER_LOW, 3000));
    /* ... and then stops polling. */
    run_for(f, 100);
    q = e->queries;
    run_for(f, 2500);
    assert_int_equal(e->queries, q);

    /* Paper low still prints. */
    assert_int_equal(pos_printer_print(&f->dev, &doc, 3), 0);
    assert_true(wait_int(f, &f->completes, 2, 3000));
    assert_int_equal(f->last_result, 0);
    assert_int_equal(e->cuts, 1);
    assert_int_equal(f->status, POS_DEV_PAPER_LOW);
}

static void test_printer_cover_open(void **state)
{
    /* Opened with the cover open: drv_setup waited for POS_DEV_COVER_OPEN. */
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    make_doc(&doc, 42);
    uint64_t before = e->print_bytes;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 1), -EIO);
    e->state = POS_EMU_PRN_READY;
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    assert_int_equal(e->print_bytes, before);
    assert_int_equal(f->completes, 0);
}

/*
 * The reply to the paper sensor query (DLE EOT 4) before a job comes
 * late_ms late, after the roll ran out. The cycle times out at 500 ms, so
 * the printer is offline and the job refused with nothing of it sent;
 * the driver polls 1 s later. Whenever the late byte comes, it answers the
 * query that timed out and no other: the next reading is "paper_out",
 * never a reading made of bytes shifted by one query (here the paper
 * sensor byte read as status 1 and the paper-end byte of status 2 as an
 * unrecoverable error of status 3, which reads "error").
 */
static void printer_late_reply(drv_t *d, uint32_t late_ms)
{
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    make_doc(&doc, 42);
    assert_int_equal(e->queries, 4); /* the cycle at open */
    e->state = POS_EMU_PRN_PAPER_OUT;
    e->late_query = 8; /* DLE EOT 4 of the cycle before the job */
    e->late_ms = late_ms;
    f->status_seen = 0;
    uint64_t before = e->print_bytes;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 1), 0);
    assert_true(wait_int(f, &f->completes, 1, 3000));
    assert_int_equal(f->last_result, -ENODEV);
    assert_true(wait_status(f, POS_DEV_PAPER_OUT, 5000));
    run_for(f, 1200); /* a poll more: it reads the same */
    assert_int_equal(f->status, POS_DEV_PAPER_OUT);
    assert_int_equal(e->held_len, 0);
    assert_int_equal(e->print_bytes, before);
    if (f->status_seen !=
        ((1u << POS_DEV_BUSY) | (1u << POS_DEV_OFFLINE) | (1u << POS_DEV_PAPER_OUT))) {
        fail_msg("statuses seen 0x%x: busy, offline and paper_out only (0x%x); error is 0x%x",
                 f->status_seen,
                 (1u << POS_DEV_BUSY) | (1u << POS_DEV_OFFLINE) | (1u << POS_DEV_PAPER_OUT),
                 1u << POS_DEV_ERROR);
    }
}

/* The late reply comes before the next query (dropped: nothing asked). */
static void test_printer_late_reply(void **state)
{
    printer_late_reply(*state, 750);
}

/* The late reply comes after the next cycle's first query went out (1.5 s
 * after the late one: 500 ms timeout, 1 s poll), before that query's own
 * reply, which the printer sends after it, in order. */
static void test_printer_late_reply_next_cycle(void **state)
{
    printer_late_reply(*state, 1750);
}

/* A printer that loses queries (e.g. switched off and on, on a serial line
 * that stays open) and then answers again: the replies it never sent are
 * not waited for for ever, the driver is back in step within a few polls. */
static void test_printer_lost_replies(void **state)
{
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    make_doc(&doc, 42);
    e->silent = true;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 1), 0);
    assert_true(wait_int(f, &f->completes, 1, 3000));
    assert_int_equal(f->last_result, -ENODEV);
    assert_int_equal(f->status, POS_DEV_OFFLINE);
    unsigned q = e->queries;
    run_for(f, 2600);
    assert_true(e->queries >= q + 2); /* polled, unanswered */
    e->silent = false;
    assert_true(wait_status(f, POS_DEV_READY, 6000));
    run_for(f, 1200);
    assert_int_equal(f->status, POS_DEV_READY);
    assert_int_equal(pos_printer_print(&f->dev, &doc, 2), 0);
    assert_true(wait_int(f, &f->completes, 2, 3000));
    assert_int_equal(f->last_result, 0);
    assert_int_equal(e->cuts, 1);
}

static bool pred_bytes(const void *arg)
{
    const pos_emu_printer_t *e = arg;
    return e->cuts > 0;
}

static void test_printer_unplug_mid_job(void **state)
{
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    make_doc(&doc, 42);

    /* The printer takes the job (its ESC @ is the second) and then hangs:
     * no status after the cut; the cable is pulled while the driver waits. */
    e->silent_at_init = 2;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 5), 0);
    assert_true(pos_test_loop_until(&f->loop, pred_bytes, e, 3000));
    assert_int_equal(f->completes, 0);
    pos_emu_port_unplug(&e->port);
    assert_true(wait_int(f, &f->completes, 1, 3000));
    assert_int_equal(f->last_job, 5);
    assert_true(f->last_result == -ENODEV || f->last_result == -EIO);
    assert_true(wait_status(f, POS_DEV_OFFLINE, 1000));

    /* Replug: the driver re-initialises and asks for status, and nothing of
     * the failed receipt is sent again. */
    size_t text_len = e->text_len;
    e->silent = false;
    e->silent_at_init = 0;
    uint64_t bytes = e->print_bytes;
    assert_int_equal(pos_emu_port_replug(&e->port), 0);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    run_for(f, 1500);
    assert_int_equal(f->completes, 1);
    assert_int_equal(e->text_len, text_len);
    assert_int_equal(e->cuts, 1);
    assert_int_equal(e->inits, 3);
    assert_int_equal(e->print_bytes - bytes, 2); /* ESC @ only */
}

static void test_printer_tcp_without_status(void **state)
{
    /* A network printer (model generic) that never answers DLE EOT. */
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_printer_t *e = d->prn;
    static pos_receipt_doc_t doc;

    print_message("    silent tcp printer ready after %u ms\n", (unsigned)d->ready_ms);
    assert_int_equal(e->queries, 1); /* the first query went unanswered */

    make_doc(&doc, 42);
    assert_int_equal(pos_printer_print(&f->dev, &doc, 9), 0);
    assert_true(wait_int(f, &f->completes, 1, 3000));
    assert_int_equal(f->last_result, 0);
    assert_true(wait_unsigned(f, &e->cuts, 1, 2000));
    check_paper(e, &doc);
    assert_int_equal(e->qr_prints, 1);
    run_for(f, 1500);
    assert_int_equal(e->queries, 1); /* no polling without status */
    assert_int_equal(e->port.connections, 1);
}

/* ---- display ---- */

static void check_glass(const pos_emu_display_t *e, const char *l1, const char *l2)
{
    char got[21], want[21];

    snprintf(want, sizeof(want), "%-20s", l1);
    pos_emu_display_line(e, 0, got);
    assert_string_equal(got, want);
    snprintf(want, sizeof(want), "%-20s", l2);
    pos_emu_display_line(e, 1, got);
    assert_string_equal(got, want);
}

static bool pred_rx(const void *arg)
{
    const uint64_t *const *a = arg;
    return *a[0] >= *a[1];
}

/* Both command sets (table entries test_display_dmd, test_display_cd5220). */
static void test_display(void **state)
{
    drv_t *d = *state;
    fx_t *f = d->f;
    pos_emu_display_t *e = d->dsp;
    /* one line rewritten: DM-D US $ 1 m + 20; CD5220 ESC Q A/B + 20 + CR */
    const uint64_t line_bytes = 24;

    run_for(f, 50);
    check_glass(e, "", "");

    uint64_t b0 = e->port.rx_total;
    assert_int_equal(pos_display_show(&f->dev, "Welcome", "Next customer"), 0);
    assert_true(wait_int(f, &f->completes, 1, 2000));
    assert_int_equal(f->last_result, 0);
    uint64_t want = b0 + 2 * line_bytes;
    const uint64_t *a[2] = {&e->port.rx_total, &want};
    assert_true(pos_test_loop_until(&f->loop, pred_rx, a, 2000));
    check_glass(e, "Welcome", "Next customer");

    /* Only the second line changed: only it is sent. */
    assert_int_equal(pos_display_show(&f->dev, "Welcome", "EUR 12.34"), 0);
    assert_true(wait_int(f, &f->completes, 2, 2000));
    want += line_bytes;
    assert_true(pos_test_loop_until(&f->loop, pred_rx, a, 2000));
    run_for(f, 50);
    assert_int_equal(e->port.rx_total, want);
    check_glass(e, "Welcome", "EUR 12.34");

    /* Nothing changed: nothing is sent, the completion still comes. */
    assert_int_equal(pos_display_show(&f->dev, "Welcome", "EUR 12.34"), 0);
    assert_true(wait_int(f, &f->completes, 3, 2000));
    assert_int_equal(f->last_result, 0);
    run_for(f, 50);
    assert_int_equal(e->port.rx_total, want);

    /* Unplugged: offline, the lines are kept for later. */
    pos_emu_port_unplug(&e->port);
    assert_true(wait_status(f, POS_DEV_OFFLINE, 2000));
    assert_int_equal(pos_display_show(&f->dev, "Thank you", "Goodbye"), -ENODEV);

    /* Replugged (a fresh display, blank glass): the whole screen is sent. */
    pos_display_decoder_init(&e->dec, d->c->cmdset);
    assert_int_equal(pos_emu_port_replug(&e->port), 0);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    run_for(f, 100);
    check_glass(e, "Thank you", "Goodbye");
    assert_int_equal(e->dec.unknown, 0);
}

/* ---- Telium ---- */

static pos_pinpad_request_t tel_request(uint32_t timeout_ms)
{
    pos_pinpad_request_t r;

    memset(&r, 0, sizeof(r));
    snprintf(r.transaction_id, sizeof(r.transaction_id), "tx-1001");
    r.amount_minor = 1234;
    snprintf(r.currency, sizeof(r.currency), "EUR");
    r.currency_numeric = 978;
    r.digits = 2;
    r.timeout_ms = timeout_ms;
    return r;
}

static void tel_pay(drv_t *t, uint32_t timeout_ms, uint32_t wait_ms)
{
    pos_pinpad_request_t r = tel_request(timeout_ms);

    assert_int_equal(pos_pinpad_start(&t->f->dev, &r), 0);
    assert_int_equal(pos_pinpad_start(&t->f->dev, &r), -EBUSY);
    assert_true(wait_int(t->f, &t->f->results, 1, wait_ms));
    run_for(t->f, 200);
    assert_int_equal(t->f->results, 1); /* exactly one result */
}

static void test_telium_approve(void **state)
{
    drv_t *t = *state;

    tel_pay(t, 5000, 5000);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_int_equal(t->f->pinpad.amount_minor, 1234);
    assert_string_equal(t->f->pinpad.masked_pan, TEST_PAN_MASKED);
    assert_string_equal(t->f->pinpad.card_brand, "VISA");
    assert_string_equal(t->f->pinpad.auth_code, "tx-1001");
    assert_false(t->f->pan_leaked);
    assert_int_equal(t->tel->requests, 1);
    assert_int_equal(t->tel->req.amount_minor, 1234);
    assert_int_equal(t->tel->req.currency_numeric, 978);
    assert_int_equal(t->tel->replies_acked, 1);
    assert_int_equal(t->tel->charges, 1);
    assert_int_equal(t->f->status, POS_DEV_READY);
}

static void test_telium_decline(void **state)
{
    drv_t *t = *state;

    tel_pay(t, 5000, 5000);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_DECLINED);
    assert_string_equal(t->f->pinpad.reason, "declined");
    assert_string_equal(t->f->pinpad.masked_pan, "");
    assert_int_equal(t->tel->charges, 0);
}

static void test_telium_nak_once(void **state)
{
    drv_t *t = *state;

    tel_pay(t, 5000, 5000);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_int_equal(t->tel->naks_sent, 1);
    assert_int_equal(t->tel->requests, 2); /* the same frame, resent once */
    assert_int_equal(t->tel->enqs, 1);
    assert_int_equal(t->tel->charges, 1);
}

static void test_telium_bad_lrc(void **state)
{
    drv_t *t = *state;

    tel_pay(t, 5000, 5000);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_string_equal(t->f->pinpad.masked_pan, TEST_PAN_MASKED);
    assert_int_equal(t->tel->naks_received, 1); /* the driver NAKed the bad frame */
    assert_int_equal(t->tel->replies_acked, 1);
    assert_int_equal(t->tel->charges, 1);
}

static void test_telium_silence_unknown(void **state)
{
    drv_t *t = *state;

    uint64_t t0 = uv_hrtime();
    tel_pay(t, 400, 3000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_true(ms >= 400);
    /* The card was charged on the terminal; the driver must not retry. */
    run_for(t->f, 1000);
    assert_int_equal(t->tel->requests, 1);
    assert_int_equal(t->tel->enqs, 1);
    assert_int_equal(t->tel->charges, 1);
}

static void test_telium_no_ack_error(void **state)
{
    drv_t *t = *state;

    uint64_t t0 = uv_hrtime();
    tel_pay(t, 5000, 20000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    print_message("    no ACK to ENQ: ERROR after %u ms, %u ENQs\n", (unsigned)ms, t->tel->enqs);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_ERROR);
    assert_int_equal(t->tel->enqs, 1 + POS_TELIUM_MAX_RETRIES);
    assert_int_equal(t->tel->requests, 0);
    assert_true(ms >= (1 + POS_TELIUM_MAX_RETRIES) * POS_TELIUM_ACK_TIMEOUT_MS - 50);
}

static void test_telium_abort_before_ack(void **state)
{
    drv_t *t = *state;
    pos_pinpad_request_t r = tel_request(5000);

    assert_int_equal(pos_pinpad_abort(&t->f->dev), -EALREADY);
    assert_int_equal(pos_pinpad_start(&t->f->dev, &r), 0);
    run_for(t->f, 100);
    assert_int_equal(pos_pinpad_abort(&t->f->dev), 0);
    assert_true(wait_int(t->f, &t->f->results, 1, 1000));
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_CANCELLED);
    run_for(t->f, 3500);
    assert_int_equal(t->f->results, 1);
    assert_int_equal(t->tel->enqs, 1);
    assert_int_equal(t->tel->requests, 0);
}

static void test_telium_abort_after_ack(void **state)
{
    drv_t *t = *state;
    pos_pinpad_request_t r = tel_request(5000);

    assert_int_equal(pos_pinpad_start(&t->f->dev, &r), 0);
    assert_true(wait_unsigned(t->f, &t->tel->requests, 1, 2000));
    run_for(t->f, 100);
    /* The terminal runs the payment: the abort cannot stop it, the real
     * result arrives. */
    assert_int_equal(pos_pinpad_abort(&t->f->dev), 0);
    assert_true(wait_int(t->f, &t->f->results, 1, 3000));
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_int_equal(t->tel->charges, 1);
}

static void test_telium_unplug_mid_payment(void **state)
{
    drv_t *t = *state;
    pos_pinpad_request_t r = tel_request(5000);

    assert_int_equal(pos_pinpad_start(&t->f->dev, &r), 0);
    assert_true(wait_unsigned(t->f, &t->tel->requests, 1, 2000));
    run_for(t->f, 100);
    pos_emu_port_unplug(&t->tel->port);
    assert_true(wait_int(t->f, &t->f->results, 1, 2000));
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_true(wait_status(t->f, POS_DEV_OFFLINE, 1000));
    assert_int_equal(pos_pinpad_start(&t->f->dev, &r), -ENODEV);

    /* Back again: ready, and nothing was resent on its own. */
    assert_int_equal(pos_emu_port_replug(&t->tel->port), 0);
    assert_true(wait_status(t->f, POS_DEV_READY, 3000));
    run_for(t->f, 1500);
    assert_int_equal(t->tel->requests, 1);
    assert_int_equal(t->f->results, 1);
}

/* A reply must be this payment's: the terminal echoes the register number,
 * the amount and our private data (the transaction reference). An approval
 * that echoes anything else is not this payment's approval; the terminal
 * did charge a card for something, so the outcome is UNKNOWN (to be
 * resolved), never APPROVED. */
static void tel_expect_mismatch(drv_t *t)
{
    tel_pay(t, 5000, 5000);
    assert_int_equal(t->tel->charges, 1);
    assert_int_equal(t->tel->replies_acked, 1); /* it was read, and acknowledged */
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_string_equal(t->f->pinpad.reason, "mismatch");
    assert_string_equal(t->f->pinpad.auth_code, "");
    assert_int_equal(t->f->status, POS_DEV_READY);
}

static void test_telium_approval_for_another_tx(void **state)
{
    drv_t *t = *state;

    t->tel->reply_private = "tx-0999"; /* an earlier payment's reference */
    tel_expect_mismatch(t);
}

static void test_telium_approval_other_amount(void **state)
{
    drv_t *t = *state;

    t->tel->reply_amount = 1; /* 0.01 approved for a 12.34 request */
    tel_expect_mismatch(t);
}

static void test_telium_approval_other_register(void **state)
{
    drv_t *t = *state;

    t->tel->reply_pos = 2;
    tel_expect_mismatch(t);
}

/* The terminal calls back, then its reply frame never ends: bytes keep
 * coming at line speed, no ETX. The frame's byte timer must not be
 * re-armed for ever: the payment ends UNKNOWN (the request was accepted),
 * and the loop keeps its 10 ms ticks (checked in teardown). */
static void test_telium_endless_reply(void **state)
{
    drv_t *t = *state;

    uint64_t t0 = uv_hrtime();
    tel_pay(t, 5000, 12000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    print_message("    endless frame: result after %u ms, %llu bytes of it sent\n", (unsigned)ms,
                  (unsigned long long)t->tel->flood_bytes);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_true(t->tel->flood_bytes > 2 * POS_TELIUM_MAX_PAYLOAD);
    assert_true(ms < POS_TELIUM_ACK_TIMEOUT_MS + 2000);
    assert_int_equal(t->tel->requests, 1);
}

/* The terminal calls back and, every time it is acknowledged, asks again
 * (ENQ) instead of sending its reply: repeated ENQs are answered as often
 * as a frame may be resent, then the payment ends UNKNOWN. */
static void test_telium_enq_loop(void **state)
{
    drv_t *t = *state;

    uint64_t t0 = uv_hrtime();
    tel_pay(t, 5000, 12000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    print_message("    ENQ loop: result after %u ms, %u ENQs again\n", (unsigned)ms,
                  t->tel->enq_repeats);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_string_equal(t->f->pinpad.reason, "bad_reply");
    assert_int_equal(t->tel->enq_repeats, POS_TELIUM_MAX_RETRIES + 1);
    assert_int_equal(t->tel->requests, 1);
}

/* The terminal takes the request but its ACK never arrives (a bit flipped
 * on the line): the driver hears nothing, sends the frame again and gives
 * up, and the terminal, which had it, charges the card once the session
 * ends. Silence after a written request is not "never reached the card":
 * the outcome is UNKNOWN, never ERROR (which the agent reports as a failed,
 * uncharged payment, inviting the cashier to charge again). */
static void test_telium_request_ack_lost(void **state)
{
    drv_t *t = *state;

    tel_pay(t, 5000, 4 * POS_TELIUM_ACK_TIMEOUT_MS + 3000);
    run_for(t->f, 500); /* the customer pays after our EOT */
    print_message("    ACK lost: outcome %d, %u charges\n", (int)t->f->pinpad.outcome,
                  t->tel->charges);
    assert_int_equal(t->tel->requests, 1); /* the terminal accepted the first send */
    assert_int_equal(t->tel->charges, 1);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_UNKNOWN);
}

/* The terminal answers the first request frame with four NAKs at once (a
 * burst, line noise) and accepts the frame sent again. One NAK answers one
 * frame: the driver must not use up its tries on the burst and report
 * ERROR (not charged) while the terminal charges the card it then
 * accepted once the session ended. */
static void test_telium_nak_burst(void **state)
{
    drv_t *t = *state;

    tel_pay(t, 5000, 8000);
    print_message("    NAK burst: outcome %d (%s), %u sends taken, %u charges\n",
                  (int)t->f->pinpad.outcome, t->f->pinpad.reason, t->tel->requests,
                  t->tel->charges);
    assert_int_equal(t->tel->naks_sent, 4);
    assert_int_equal(t->tel->requests, 2);
    assert_int_equal(t->tel->charges, 1);
    assert_int_equal(t->f->pinpad.outcome, POS_PINPAD_APPROVED);
}

/* ---- the stream's read buffer ---- */

typedef struct rx_probe {
    fx_t *f;
    size_t got;
    bool seen_pan;
} rx_probe_t;

static void probe_open(pos_stream_t *s)
{
    (void)s;
}

static void probe_data(pos_stream_t *s, const uint8_t *buf, size_t len)
{
    rx_probe_t *r = s->data;
    if (memmem(buf, len, TEST_PAN, strlen(TEST_PAN)) != NULL) {
        r->seen_pan = true;
    }
    r->got += len;
}

static bool pred_probe(const void *arg)
{
    return ((const rx_probe_t *)arg)->got >= strlen(TEST_PAN) + 2;
}

static void stream_closed(pos_stream_t *s)
{
    rx_probe_t *r = s->data;
    r->f->closed++;
}

/* A pinpad reply carries the full card number through the stream's read
 * buffer: the stream must not keep it after handing it over. */
static void test_stream_wipes_read_buffer(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pos_emu_port_t *port = calloc(1, sizeof(*port));
    pos_stream_t *s = calloc(1, sizeof(*s));
    pos_stream_spec_t sp;
    pos_stream_callbacks_t cb = {.on_open = probe_open, .on_data = probe_data};
    rx_probe_t r = {.f = f};

    assert_int_equal(pos_emu_port_pty(port, &f->loop), 0);
    assert_int_equal(pos_stream_spec_parse_kind(POS_STREAM_SERIAL, port->path, &sp, NULL, 0), 0);
    assert_int_equal(pos_stream_init(&f->loop, s, &sp, &cb, 20, 200), 0);
    s->data = &r;
    assert_int_equal(pos_stream_start(s), 0);
    run_for(f, 100);
    assert_int_equal(pos_emu_port_send(port, "\x02" TEST_PAN "\x03", strlen(TEST_PAN) + 2), 0);
    assert_true(pos_test_loop_until(&f->loop, pred_probe, &r, 2000));
    assert_true(r.seen_pan);
    assert_null(memmem(s->rbuf, sizeof(s->rbuf), TEST_PAN, strlen(TEST_PAN)));
    assert_null(memmem(s->rbuf, sizeof(s->rbuf), "1234", 4));

    pos_stream_close(s, stream_closed);
    assert_true(wait_int(f, &f->closed, 1, 2000));
    f->dev_created = false;
    fx_close_dev(f);
    pos_emu_port_close(port);
    fx_free(f);
    free(s);
    free(port);
}

/* ---- driver strings ---- */

static void test_driver_strings(void **state)
{
    (void)state;
    static const struct {
        pos_hal_kind_t kind;
        const char *spec;
        int rc;
    } cases[] = {
        {POS_HAL_PRINTER, "escpos:/dev/usb/lp0", 0},
        {POS_HAL_PRINTER, "escpos-serial:/dev/ttyUSB0?baud=19200", 0},
        {POS_HAL_PRINTER, "escpos-tcp:127.0.0.1:9100", 0},
        {POS_HAL_PRINTER, "escpos-tcp:127.0.0.1", 0},
        {POS_HAL_DISPLAY, "epson-display:/dev/ttyS1?baud=9600", 0},
        {POS_HAL_DISPLAY, "cd5220:/dev/ttyS1?baud=9600", 0},
        {POS_HAL_PINPAD, "telium:/dev/ttyACM0?baud=9600", 0},
        {POS_HAL_PRINTER, "sim", 0},
        {POS_HAL_PRINTER, "escpos", -EINVAL},
        {POS_HAL_PRINTER, "escpos:/dev/usb/lp0?baud=9600", -EINVAL},
        {POS_HAL_PRINTER, "escpos-serial:/dev/ttyUSB0?baud=12345", -EINVAL},
        {POS_HAL_PRINTER, "escpos-tcp:10.1:9100", -EINVAL},
        {POS_HAL_PRINTER, "escpos-serial:relative/path", -EINVAL},
        {POS_HAL_DISPLAY, "cd5220:/dev/../etc/passwd", -EINVAL},
        {POS_HAL_PINPAD, "telium:", -EINVAL},
        {POS_HAL_PINPAD, "escpos:/dev/usb/lp0", -EINVAL},
        {POS_HAL_DISPLAY, "telium:/dev/ttyACM0", -EINVAL},
    };
    char err[200];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc = pos_hal_spec_validate(cases[i].kind, cases[i].spec, err, sizeof(err));
        if (rc != cases[i].rc) {
            fail_msg("%s: %d, want %d (%s)", cases[i].spec, rc, cases[i].rc, err);
        }
        if (rc != 0) {
            assert_true(err[0] != '\0');
        }
    }
}

/* ---- the table ---- */

#define DISPLAY(drv, set)                                                                          \
    {                                                                                              \
        .kind = POS_HAL_DISPLAY, .driver = (drv), .query = "?baud=9600", .ready = POS_DEV_READY,   \
        .cmdset = (set)                                                                            \
    }
#define TELIUM(m, ms)                                                                              \
    {                                                                                              \
        .kind = POS_HAL_PINPAD, .driver = "telium:", .query = "?baud=9600",                        \
        .ready = POS_DEV_READY, .mode = (m), .delay_ms = (ms)                                      \
    }

static const drv_case_t printer_115200 = {.kind = POS_HAL_PRINTER,
                                          .driver = "escpos-serial:",
                                          .query = "?baud=115200",
                                          .ready = POS_DEV_READY};
static const drv_case_t printer_19200 = {.kind = POS_HAL_PRINTER,
                                         .driver = "escpos-serial:",
                                         .query = "?baud=19200",
                                         .ready = POS_DEV_READY};
static const drv_case_t printer_cover_open = {.kind = POS_HAL_PRINTER,
                                              .driver = "escpos-serial:",
                                              .query = "",
                                              .ready = POS_DEV_COVER_OPEN,
                                              .paper = POS_EMU_PRN_COVER_OPEN};
static const drv_case_t printer_tcp_silent = {.kind = POS_HAL_PRINTER,
                                              .driver = "escpos-tcp:",
                                              .query = "",
                                              .ready = POS_DEV_READY,
                                              .tcp = true,
                                              .model = "generic",
                                              .silent = true};
static const drv_case_t display_dmd = DISPLAY("epson-display:", POS_DISPLAY_EPSON_DMD);
static const drv_case_t display_cd5220 = DISPLAY("cd5220:", POS_DISPLAY_CD5220);
static const drv_case_t telium_approve = TELIUM(POS_EMU_TEL_APPROVE, 50);
static const drv_case_t telium_decline = TELIUM(POS_EMU_TEL_DECLINE, 50);
static const drv_case_t telium_nak_once = TELIUM(POS_EMU_TEL_NAK_ONCE, 50);
static const drv_case_t telium_bad_lrc = TELIUM(POS_EMU_TEL_BAD_LRC, 50);
static const drv_case_t telium_silent = TELIUM(POS_EMU_TEL_SILENT, 50);
static const drv_case_t telium_no_ack = TELIUM(POS_EMU_TEL_NO_ACK, 50);
static const drv_case_t telium_endless = TELIUM(POS_EMU_TEL_ENDLESS, 50);
static const drv_case_t telium_enq_loop = TELIUM(POS_EMU_TEL_ENQ_LOOP, 50);
static const drv_case_t telium_ack_lost = TELIUM(POS_EMU_TEL_ACK_LOST, 50);
static const drv_case_t telium_nak_burst = TELIUM(POS_EMU_TEL_NAK_BURST, 50);
static const drv_case_t telium_slow = TELIUM(POS_EMU_TEL_APPROVE, 500);
static const drv_case_t telium_slower = TELIUM(POS_EMU_TEL_APPROVE, 1000);

/* A test body run on one device, started and closed around it. */
#define ON_DEVICE(name, body, c)                                                                   \
    {                                                                                              \
        name, body, drv_setup, drv_teardown, (void *)&(c)                                          \
    }

/*
 * The cases that wait out the protocols' own timers (Telium's three ACK
 * timeouts per retry, a printer's polls while a fault lasts or a reply is
 * late): about 35 of the run's 65 s. The cross builds' run under qemu
 * skips them (POS_DRIVERS_QUICK, tests/CMakeLists.txt): what they check
 * is timing, the same on every architecture, and runs natively under the
 * sanitizers; the other cases cover the other ABIs' framing and parsing.
 */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_driver_strings),
        cmocka_unit_test(test_stream_wipes_read_buffer),
        ON_DEVICE("test_printer_receipt", test_printer_receipt, printer_115200),
        ON_DEVICE("test_printer_cover_open", test_printer_cover_open, printer_cover_open),
        ON_DEVICE("test_printer_unplug_mid_job", test_printer_unplug_mid_job, printer_115200),
        ON_DEVICE("test_printer_late_reply", test_printer_late_reply, printer_115200),
        ON_DEVICE("test_printer_tcp_without_status", test_printer_tcp_without_status,
                  printer_tcp_silent),
        ON_DEVICE("test_display_dmd", test_display, display_dmd),
        ON_DEVICE("test_display_cd5220", test_display, display_cd5220),
        ON_DEVICE("test_telium_approve", test_telium_approve, telium_approve),
        ON_DEVICE("test_telium_decline", test_telium_decline, telium_decline),
        ON_DEVICE("test_telium_nak_once", test_telium_nak_once, telium_nak_once),
        ON_DEVICE("test_telium_bad_lrc", test_telium_bad_lrc, telium_bad_lrc),
        ON_DEVICE("test_telium_silence_unknown", test_telium_silence_unknown, telium_silent),
        ON_DEVICE("test_telium_abort_before_ack", test_telium_abort_before_ack, telium_no_ack),
        ON_DEVICE("test_telium_abort_after_ack", test_telium_abort_after_ack, telium_slow),
        ON_DEVICE("test_telium_unplug_mid_payment", test_telium_unplug_mid_payment, telium_slower),
        ON_DEVICE("test_telium_approval_for_another_tx", test_telium_approval_for_another_tx,
                  telium_approve),
        ON_DEVICE("test_telium_approval_other_amount", test_telium_approval_other_amount,
                  telium_approve),
        ON_DEVICE("test_telium_approval_other_register", test_telium_approval_other_register,
                  telium_approve),
        ON_DEVICE("test_telium_endless_reply", test_telium_endless_reply, telium_endless),
        ON_DEVICE("test_telium_enq_loop", test_telium_enq_loop, telium_enq_loop),
        ON_DEVICE("test_telium_nak_burst", test_telium_nak_burst, telium_nak_burst),
    };
    const struct CMUnitTest timers[] = {
        ON_DEVICE("test_printer_paper_out", test_printer_paper_out, printer_19200),
        ON_DEVICE("test_printer_late_reply_next_cycle", test_printer_late_reply_next_cycle,
                  printer_115200),
        ON_DEVICE("test_printer_lost_replies", test_printer_lost_replies, printer_115200),
        ON_DEVICE("test_telium_no_ack_error", test_telium_no_ack_error, telium_no_ack),
        ON_DEVICE("test_telium_request_ack_lost", test_telium_request_ack_lost, telium_ack_lost),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    const char *quick = getenv("POS_DRIVERS_QUICK");
    if (quick == NULL || strcmp(quick, "1") != 0) {
        failed += cmocka_run_group_tests(timers, NULL, NULL);
    }
    return failed;
}
