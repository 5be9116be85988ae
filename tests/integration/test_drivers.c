/*
 * Real drivers against device emulators, in-process on one libuv loop:
 * each driver is created through pos_hal_create() with a real driver
 * string pointing at a pty (behind a symlink, for unplug and replug) or a
 * loopback TCP port, and the emulator on the far side sees only bytes.
 * A 10 ms ticker runs through every test: no device may hold up the loop.
 * Every test closes everything and ends with uv_loop_close() == 0.
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

#include "emulators.h"
#include "hal/display.h"
#include "hal/pinpad.h"
#include "hal/printer.h"
#include "hal/receipt.h"
#include "hal/registry.h"
#include "platform/stream.h"

#define TEST_PAN "4970101234561234"
#define TEST_PAN_MASKED "497010XXXXXX1234"

typedef struct fx {
    uv_loop_t loop;
    pos_hal_device_t dev;
    pos_hal_options_t opt;
    bool dev_created;
    int closed;

    int statuses;
    pos_dev_state_t status;
    int completes, last_result;
    uint32_t last_job;
    int results;
    pos_pinpad_result_t pinpad;
    bool pan_leaked;

    uv_timer_t tick;
    uint64_t last_tick_ns, max_gap_ns;
    int ticks;
} fx_t;

static void tick_cb(uv_timer_t *t)
{
    fx_t *f = t->data;
    uint64_t now = uv_hrtime();

    if (f->ticks > 0 && now - f->last_tick_ns > f->max_gap_ns) {
        f->max_gap_ns = now - f->last_tick_ns;
    }
    f->last_tick_ns = now;
    f->ticks++;
}

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
    uv_timer_init(&f->loop, &f->tick);
    f->tick.data = f;
    uv_timer_start(&f->tick, tick_cb, 10, 10);
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

static void pump_cb(uv_timer_t *t)
{
    (void)t;
}

typedef bool (*pred_t)(fx_t *f, const void *arg);

static bool run_until(fx_t *f, pred_t pred, const void *arg, uint32_t ms)
{
    uv_timer_t pump;
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    bool ok;

    uv_timer_init(&f->loop, &pump);
    uv_timer_start(&pump, pump_cb, 2, 2);
    while (!(ok = pred(f, arg)) && uv_hrtime() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&pump, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return ok;
}

static bool pred_never(fx_t *f, const void *arg)
{
    (void)f;
    (void)arg;
    return false;
}

static void run_for(fx_t *f, uint32_t ms)
{
    run_until(f, pred_never, NULL, ms);
}

static bool pred_int(fx_t *f, const void *arg)
{
    const int *const *a = arg;
    (void)f;
    return *a[0] >= *a[1];
}

static bool wait_int(fx_t *f, const int *counter, int at_least, uint32_t ms)
{
    const int *a[2] = {counter, &at_least};
    return run_until(f, pred_int, a, ms);
}

static bool pred_unsigned(fx_t *f, const void *arg)
{
    const unsigned *const *a = arg;
    (void)f;
    return *a[0] >= *a[1];
}

static bool wait_unsigned(fx_t *f, const unsigned *counter, unsigned at_least, uint32_t ms)
{
    const unsigned *a[2] = {counter, &at_least};
    return run_until(f, pred_unsigned, a, ms);
}

static bool pred_status(fx_t *f, const void *arg)
{
    return f->status == *(const pos_dev_state_t *)arg;
}

static bool wait_status(fx_t *f, pos_dev_state_t st, uint32_t ms)
{
    return run_until(f, pred_status, &st, ms);
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
    uv_timer_stop(&f->tick);
    print_message("    loop: %d ticks of 10 ms, largest gap %.1f ms\n", f->ticks,
                  (double)f->max_gap_ns / 1e6);
    /* A blocking call in a driver (a write waiting on a stalled line, a
     * sleep between retries) would stall the loop for its timeout, a
     * second or more. 250 ms leaves room for a loaded 2-core machine to
     * deschedule the test (105 ms was seen under load average 5). */
    assert_true(f->max_gap_ns < 250u * 1000000u);
    uv_close((uv_handle_t *)&f->tick, NULL);
}

static void fx_free(fx_t *f)
{
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
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
    (void)state;
    fx_t *f = fx_new();
    pos_emu_printer_t *e = calloc(1, sizeof(*e));
    static pos_receipt_doc_t doc;
    char spec[256];

    assert_int_equal(pos_emu_printer_start(e, &f->loop, false, 42, "cp858"), 0);
    snprintf(spec, sizeof(spec), "escpos-serial:%s?baud=115200", e->port.path);
    dev_create(f, POS_HAL_PRINTER, spec);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
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

    fx_close_dev(f);
    pos_emu_port_close(&e->port);
    fx_free(f);
    free(e);
}

static void test_printer_paper_out(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pos_emu_printer_t *e = calloc(1, sizeof(*e));
    static pos_receipt_doc_t doc;
    char spec[256];

    assert_int_equal(pos_emu_printer_start(e, &f->loop, false, 42, "cp858"), 0);
    snprintf(spec, sizeof(spec), "escpos-serial:%s?baud=19200", e->port.path);
    dev_create(f, POS_HAL_PRINTER, spec);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
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

    fx_close_dev(f);
    pos_emu_port_close(&e->port);
    fx_free(f);
    free(e);
}

static void test_printer_cover_open(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pos_emu_printer_t *e = calloc(1, sizeof(*e));
    static pos_receipt_doc_t doc;
    char spec[256];

    assert_int_equal(pos_emu_printer_start(e, &f->loop, false, 42, "cp858"), 0);
    e->state = POS_EMU_PRN_COVER_OPEN;
    snprintf(spec, sizeof(spec), "escpos-serial:%s", e->port.path);
    dev_create(f, POS_HAL_PRINTER, spec);
    assert_true(wait_status(f, POS_DEV_COVER_OPEN, 3000));
    make_doc(&doc, 42);
    uint64_t before = e->print_bytes;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 1), -EIO);
    e->state = POS_EMU_PRN_READY;
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    assert_int_equal(e->print_bytes, before);
    assert_int_equal(f->completes, 0);

    fx_close_dev(f);
    pos_emu_port_close(&e->port);
    fx_free(f);
    free(e);
}

static bool pred_bytes(fx_t *f, const void *arg)
{
    const pos_emu_printer_t *e = arg;
    (void)f;
    return e->cuts > 0;
}

static void test_printer_unplug_mid_job(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pos_emu_printer_t *e = calloc(1, sizeof(*e));
    static pos_receipt_doc_t doc;
    char spec[256];

    assert_int_equal(pos_emu_printer_start(e, &f->loop, false, 42, "cp858"), 0);
    snprintf(spec, sizeof(spec), "escpos-serial:%s?baud=115200", e->port.path);
    dev_create(f, POS_HAL_PRINTER, spec);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    make_doc(&doc, 42);

    /* The printer takes the job (its ESC @ is the second) and then hangs:
     * no status after the cut; the cable is pulled while the driver waits. */
    e->silent_at_init = 2;
    assert_int_equal(pos_printer_print(&f->dev, &doc, 5), 0);
    assert_true(run_until(f, pred_bytes, e, 3000));
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

    fx_close_dev(f);
    pos_emu_port_close(&e->port);
    fx_free(f);
    free(e);
}

static void test_printer_tcp_without_status(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    pos_emu_printer_t *e = calloc(1, sizeof(*e));
    static pos_receipt_doc_t doc;
    char spec[256];

    f->opt.printer_model = "generic";
    assert_int_equal(pos_emu_printer_start(e, &f->loop, true, 42, "cp858"), 0);
    e->silent = true; /* a network printer that never answers DLE EOT */
    snprintf(spec, sizeof(spec), "escpos-tcp:%s", e->port.path);
    dev_create(f, POS_HAL_PRINTER, spec);
    uint64_t t0 = uv_hrtime();
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    uint64_t ready_ms = (uv_hrtime() - t0) / 1000000u;
    print_message("    silent tcp printer ready after %u ms\n", (unsigned)ready_ms);
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

    fx_close_dev(f);
    pos_emu_port_close(&e->port);
    fx_free(f);
    free(e);
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

static bool pred_rx(fx_t *f, const void *arg)
{
    const uint64_t *const *a = arg;
    (void)f;
    return *a[0] >= *a[1];
}

static void display_case(pos_display_cmdset_t set, const char *name)
{
    fx_t *f = fx_new();
    pos_emu_display_t *e = calloc(1, sizeof(*e));
    char spec[256];
    /* one line rewritten: DM-D US $ 1 m + 20; CD5220 ESC Q A/B + 20 + CR */
    const uint64_t line_bytes = 24;

    assert_int_equal(pos_emu_display_start(e, &f->loop, set), 0);
    snprintf(spec, sizeof(spec), "%s:%s?baud=9600", name, e->port.path);
    dev_create(f, POS_HAL_DISPLAY, spec);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    run_for(f, 50);
    check_glass(e, "", "");

    uint64_t b0 = e->port.rx_total;
    assert_int_equal(pos_display_show(&f->dev, "Welcome", "Next customer"), 0);
    assert_true(wait_int(f, &f->completes, 1, 2000));
    assert_int_equal(f->last_result, 0);
    uint64_t want = b0 + 2 * line_bytes;
    const uint64_t *a[2] = {&e->port.rx_total, &want};
    assert_true(run_until(f, pred_rx, a, 2000));
    check_glass(e, "Welcome", "Next customer");

    /* Only the second line changed: only it is sent. */
    assert_int_equal(pos_display_show(&f->dev, "Welcome", "EUR 12.34"), 0);
    assert_true(wait_int(f, &f->completes, 2, 2000));
    want += line_bytes;
    assert_true(run_until(f, pred_rx, a, 2000));
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
    pos_display_decoder_init(&e->dec, set);
    assert_int_equal(pos_emu_port_replug(&e->port), 0);
    assert_true(wait_status(f, POS_DEV_READY, 3000));
    run_for(f, 100);
    check_glass(e, "Thank you", "Goodbye");
    assert_int_equal(e->dec.unknown, 0);

    fx_close_dev(f);
    pos_emu_port_close(&e->port);
    fx_free(f);
    free(e);
}

static void test_display_dmd(void **state)
{
    (void)state;
    display_case(POS_DISPLAY_EPSON_DMD, "epson-display");
}

static void test_display_cd5220(void **state)
{
    (void)state;
    display_case(POS_DISPLAY_CD5220, "cd5220");
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

typedef struct tel_fx {
    fx_t *f;
    pos_emu_telium_t *e;
} tel_fx_t;

static tel_fx_t tel_setup(pos_emu_telium_mode_t mode, uint32_t delay_ms)
{
    tel_fx_t t;
    char spec[256];

    t.f = fx_new();
    t.e = calloc(1, sizeof(*t.e));
    assert_non_null(t.e);
    assert_int_equal(pos_emu_telium_start(t.e, &t.f->loop, mode, TEST_PAN, delay_ms), 0);
    snprintf(spec, sizeof(spec), "telium:%s?baud=9600", t.e->port.path);
    dev_create(t.f, POS_HAL_PINPAD, spec);
    assert_true(wait_status(t.f, POS_DEV_READY, 3000));
    return t;
}

static void tel_teardown(tel_fx_t *t)
{
    assert_false(t->f->pan_leaked);
    fx_close_dev(t->f);
    pos_emu_telium_close(t->e);
    fx_free(t->f);
    free(t->e);
}

static void tel_pay(tel_fx_t *t, uint32_t timeout_ms, uint32_t wait_ms)
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
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_APPROVE, 50);

    tel_pay(&t, 5000, 5000);
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_int_equal(t.f->pinpad.amount_minor, 1234);
    assert_string_equal(t.f->pinpad.masked_pan, TEST_PAN_MASKED);
    assert_string_equal(t.f->pinpad.card_brand, "VISA");
    assert_string_equal(t.f->pinpad.auth_code, "tx-1001");
    assert_false(t.f->pan_leaked);
    assert_int_equal(t.e->requests, 1);
    assert_int_equal(t.e->req.amount_minor, 1234);
    assert_int_equal(t.e->req.currency_numeric, 978);
    assert_int_equal(t.e->replies_acked, 1);
    assert_int_equal(t.e->charges, 1);
    assert_int_equal(t.f->status, POS_DEV_READY);
    tel_teardown(&t);
}

static void test_telium_decline(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_DECLINE, 50);

    tel_pay(&t, 5000, 5000);
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_DECLINED);
    assert_string_equal(t.f->pinpad.reason, "declined");
    assert_string_equal(t.f->pinpad.masked_pan, "");
    assert_int_equal(t.e->charges, 0);
    tel_teardown(&t);
}

static void test_telium_nak_once(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_NAK_ONCE, 50);

    tel_pay(&t, 5000, 5000);
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_int_equal(t.e->naks_sent, 1);
    assert_int_equal(t.e->requests, 2); /* the same frame, resent once */
    assert_int_equal(t.e->enqs, 1);
    assert_int_equal(t.e->charges, 1);
    tel_teardown(&t);
}

static void test_telium_bad_lrc(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_BAD_LRC, 50);

    tel_pay(&t, 5000, 5000);
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_string_equal(t.f->pinpad.masked_pan, TEST_PAN_MASKED);
    assert_int_equal(t.e->naks_received, 1); /* the driver NAKed the bad frame */
    assert_int_equal(t.e->replies_acked, 1);
    assert_int_equal(t.e->charges, 1);
    tel_teardown(&t);
}

static void test_telium_silence_unknown(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_SILENT, 50);

    uint64_t t0 = uv_hrtime();
    tel_pay(&t, 400, 3000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_true(ms >= 400);
    /* The card was charged on the terminal; the driver must not retry. */
    run_for(t.f, 1000);
    assert_int_equal(t.e->requests, 1);
    assert_int_equal(t.e->enqs, 1);
    assert_int_equal(t.e->charges, 1);
    tel_teardown(&t);
}

static void test_telium_no_ack_error(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_NO_ACK, 50);

    uint64_t t0 = uv_hrtime();
    tel_pay(&t, 5000, 20000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    print_message("    no ACK to ENQ: ERROR after %u ms, %u ENQs\n", (unsigned)ms, t.e->enqs);
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_ERROR);
    assert_int_equal(t.e->enqs, 1 + POS_TELIUM_MAX_RETRIES);
    assert_int_equal(t.e->requests, 0);
    assert_true(ms >= (1 + POS_TELIUM_MAX_RETRIES) * POS_TELIUM_ACK_TIMEOUT_MS - 50);
    tel_teardown(&t);
}

static void test_telium_abort_before_ack(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_NO_ACK, 50);
    pos_pinpad_request_t r = tel_request(5000);

    assert_int_equal(pos_pinpad_abort(&t.f->dev), -EALREADY);
    assert_int_equal(pos_pinpad_start(&t.f->dev, &r), 0);
    run_for(t.f, 100);
    assert_int_equal(pos_pinpad_abort(&t.f->dev), 0);
    assert_true(wait_int(t.f, &t.f->results, 1, 1000));
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_CANCELLED);
    run_for(t.f, 3500);
    assert_int_equal(t.f->results, 1);
    assert_int_equal(t.e->enqs, 1);
    assert_int_equal(t.e->requests, 0);
    tel_teardown(&t);
}

static void test_telium_abort_after_ack(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_APPROVE, 500);
    pos_pinpad_request_t r = tel_request(5000);

    assert_int_equal(pos_pinpad_start(&t.f->dev, &r), 0);
    assert_true(wait_unsigned(t.f, &t.e->requests, 1, 2000));
    run_for(t.f, 100);
    /* The terminal runs the payment: the abort cannot stop it, the real
     * result arrives. */
    assert_int_equal(pos_pinpad_abort(&t.f->dev), 0);
    assert_true(wait_int(t.f, &t.f->results, 1, 3000));
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_int_equal(t.e->charges, 1);
    tel_teardown(&t);
}

static void test_telium_unplug_mid_payment(void **state)
{
    (void)state;
    tel_fx_t t = tel_setup(POS_EMU_TEL_APPROVE, 1000);
    pos_pinpad_request_t r = tel_request(5000);

    assert_int_equal(pos_pinpad_start(&t.f->dev, &r), 0);
    assert_true(wait_unsigned(t.f, &t.e->requests, 1, 2000));
    run_for(t.f, 100);
    pos_emu_port_unplug(&t.e->port);
    assert_true(wait_int(t.f, &t.f->results, 1, 2000));
    assert_int_equal(t.f->pinpad.outcome, POS_PINPAD_UNKNOWN);
    assert_true(wait_status(t.f, POS_DEV_OFFLINE, 1000));
    assert_int_equal(pos_pinpad_start(&t.f->dev, &r), -ENODEV);

    /* Back again: ready, and nothing was resent on its own. */
    assert_int_equal(pos_emu_port_replug(&t.e->port), 0);
    assert_true(wait_status(t.f, POS_DEV_READY, 3000));
    run_for(t.f, 1500);
    assert_int_equal(t.e->requests, 1);
    assert_int_equal(t.f->results, 1);
    tel_teardown(&t);
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

static bool pred_probe(fx_t *f, const void *arg)
{
    (void)f;
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
    assert_true(run_until(f, pred_probe, &r, 2000));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_driver_strings),
        cmocka_unit_test(test_stream_wipes_read_buffer),
        cmocka_unit_test(test_printer_receipt),
        cmocka_unit_test(test_printer_paper_out),
        cmocka_unit_test(test_printer_cover_open),
        cmocka_unit_test(test_printer_unplug_mid_job),
        cmocka_unit_test(test_printer_tcp_without_status),
        cmocka_unit_test(test_display_dmd),
        cmocka_unit_test(test_display_cd5220),
        cmocka_unit_test(test_telium_approve),
        cmocka_unit_test(test_telium_decline),
        cmocka_unit_test(test_telium_nak_once),
        cmocka_unit_test(test_telium_bad_lrc),
        cmocka_unit_test(test_telium_silence_unknown),
        cmocka_unit_test(test_telium_no_ack_error),
        cmocka_unit_test(test_telium_abort_before_ack),
        cmocka_unit_test(test_telium_abort_after_ack),
        cmocka_unit_test(test_telium_unplug_mid_payment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
