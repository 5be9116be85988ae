/*
 * The HAL device model with the simulated drivers, on a real libuv loop:
 * lifecycle rules, in-order asynchronous events, the simulators' files and
 * fault injection, and closing in every state (loop test style: count the
 * callbacks, run the loop, end with uv_loop_close() == 0).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "hal/display.h"
#include "hal/pinpad.h"
#include "hal/printer.h"
#include "hal/registry.h"
#include "hal/sim/sim.h"
#include "tests/support/loop.h"

typedef struct rec {
    int n;
    pos_hal_event_t ev[32];
    int in_call; /* set while the test is inside a HAL call */
    int reentered;
} rec_t;

static char dir[64];
static uv_loop_t loop;
static rec_t rec;
static int closed;

static void on_event(pos_hal_device_t *dev, const pos_hal_event_t *ev)
{
    (void)dev;
    if (rec.in_call) {
        rec.reentered++;
    }
    if (rec.n < 32) {
        rec.ev[rec.n++] = *ev;
    }
}

static void on_closed(pos_hal_device_t *dev)
{
    (void)dev;
    closed++;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/posagent-hal-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    memset(&rec, 0, sizeof(rec));
    closed = 0;
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(uv_loop_close(&loop), 0);
    return system(cmd) == 0 ? 0 : -1;
}

static pos_hal_options_t opts(void)
{
    pos_hal_options_t o;
    memset(&o, 0, sizeof(o));
    o.sim_dir = dir;
    o.sim_pinpad_delay_ms = 10;
    o.sim_printer_delay_ms = 20;
    o.sim_decline_ending = "13";
    o.sim_card_number = "4111111111111111";
    o.paper_width = 32;
    o.printer_model = "generic";
    o.codepage = "cp858";
    return o;
}

static void create(pos_hal_device_t *d, pos_hal_kind_t kind)
{
    char err[128];
    pos_hal_options_t o = opts();
    assert_int_equal(pos_hal_create(d, &loop, kind, "sim", &o, on_event, NULL, err, sizeof(err)),
                     0);
}

/* The waits below run the loop until their condition holds or 3 s pass
 * (pos_test_loop_until: never a blocking run, which an active inotify
 * watch would make wait forever). */
#define WAIT_MS 3000

static bool events_reached(const void *arg)
{
    return rec.n >= *(const int *)arg;
}

static void run_until(int events)
{
    pos_test_loop_until(&loop, events_reached, &events, WAIT_MS);
}

typedef struct status_arg {
    const pos_hal_device_t *d;
    pos_dev_state_t want;
} status_arg_t;

static bool status_reached(const void *arg)
{
    const status_arg_t *a = arg;
    return a->d->status == a->want;
}

static void run_until_status(const pos_hal_device_t *d, pos_dev_state_t want)
{
    status_arg_t a = {d, want};
    pos_test_loop_until(&loop, status_reached, &a, WAIT_MS);
}

/* The last event is an output completion, of job (0: of any job). */
static bool completed(const void *arg)
{
    uint32_t job = *(const uint32_t *)arg;
    return rec.n > 0 && rec.ev[rec.n - 1].type == POS_HAL_EV_OUTPUT_COMPLETE &&
           (job == 0 || rec.ev[rec.n - 1].job_id == job);
}

static void run_until_complete(uint32_t job)
{
    pos_test_loop_until(&loop, completed, &job, WAIT_MS);
}

static void close_and_drain(pos_hal_device_t *d, int expect_closed)
{
    pos_hal_close(d, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, expect_closed);
}

static char *slurp(const char *name)
{
    static char buf[8192];
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        buf[0] = '\0';
        return buf;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_lifecycle_rules(void **state)
{
    (void)state;
    pos_hal_device_t d;
    create(&d, POS_HAL_DISPLAY);
    assert_int_equal(pos_display_show(&d, "a", "b"), -EPERM); /* closed */
    assert_int_equal(pos_hal_claim(&d), -EPERM);
    assert_int_equal(pos_hal_enable(&d), -EPERM);
    assert_int_equal(pos_hal_open(&d), 0);
    assert_int_equal(pos_hal_open(&d), -EBUSY);
    assert_int_equal(pos_display_show(&d, "a", "b"), -EPERM); /* not enabled */
    assert_int_equal(pos_hal_enable(&d), -EPERM);             /* not claimed */
    assert_int_equal(pos_hal_claim(&d), 0);
    assert_int_equal(pos_hal_enable(&d), 0);
    assert_int_equal(pos_hal_release(&d), -EBUSY); /* still enabled */
    rec.in_call = 1;
    assert_int_equal(pos_display_show(&d, "Hello", "World"), 0);
    rec.in_call = 0;
    assert_int_equal(rec.n, 0); /* nothing delivered inside the call */
    run_until(2);
    assert_int_equal(rec.reentered, 0);
    /* in order: the status from open, then the output */
    assert_int_equal(rec.ev[0].type, POS_HAL_EV_STATUS);
    assert_int_equal(rec.ev[0].status, POS_DEV_READY);
    assert_int_equal(rec.ev[1].type, POS_HAL_EV_OUTPUT_COMPLETE);
    assert_int_equal(rec.ev[1].error, 0);
    assert_string_equal(slurp("display.txt"), "Hello               \nWorld               \n");
    assert_int_equal(pos_hal_disable(&d), 0);
    assert_int_equal(pos_display_show(&d, "a", "b"), -EPERM);
    assert_int_equal(pos_hal_release(&d), 0);
    close_and_drain(&d, 1);
}

static void test_display_fits_and_faults(void **state)
{
    (void)state;
    pos_hal_device_t d;
    create(&d, POS_HAL_DISPLAY);
    assert_int_equal(pos_hal_start(&d), 0);
    assert_int_equal(pos_display_show(&d,
                                      "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbb"
                                      "l\xc3\xa9"
                                      "e extra long",
                                      "tab\there"),
                     0);
    run_until(2);
    /* cut at 20 columns on a character boundary; control characters replaced */
    assert_string_equal(slurp("display.txt"), "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbb"
                                              "l\xc3\xa9"
                                              "e ex\ntab?here            \n");
    put("display.fault", "offline\n");
    run_until(3);
    assert_int_equal(rec.ev[2].type, POS_HAL_EV_STATUS);
    assert_int_equal(rec.ev[2].status, POS_DEV_OFFLINE);
    assert_int_equal(pos_display_show(&d, "x", "y"), -ENODEV);
    put("display.fault", "\n");
    run_until(4);
    assert_int_equal(rec.ev[3].status, POS_DEV_READY);
    close_and_drain(&d, 1);
}

/* A request for 12.34 EUR under transaction tx. */
static void pinpad_request(pos_pinpad_request_t *req, const char *tx)
{
    memset(req, 0, sizeof(*req));
    snprintf(req->transaction_id, sizeof(req->transaction_id), "%s", tx);
    req->amount_minor = 1234;
    req->digits = 2;
    snprintf(req->currency, sizeof(req->currency), "EUR");
    req->currency_numeric = 978;
}

static void test_pinpad_outcomes(void **state)
{
    (void)state;
    pos_hal_device_t d;
    pos_pinpad_request_t req;
    create(&d, POS_HAL_PINPAD);
    assert_int_equal(pos_hal_start(&d), 0);
    pinpad_request(&req, "tx-1");
    assert_int_equal(pos_pinpad_start(&d, &req), 0);
    assert_int_equal(pos_pinpad_start(&d, &req), -EBUSY);
    run_until(4); /* ready, busy, ready, result */
    const pos_hal_event_t *res = &rec.ev[rec.n - 1];
    assert_int_equal(res->type, POS_HAL_EV_PINPAD_RESULT);
    assert_int_equal(res->pinpad.outcome, POS_PINPAD_APPROVED);
    assert_string_equal(res->pinpad.masked_pan, "411111XXXXXX1111");
    assert_string_equal(res->pinpad.card_brand, "VISA");
    assert_int_equal(pos_sim_pinpad_charges(&d), 1);
    assert_string_equal(slurp("pinpad.charges"), "1\n");

    int before = rec.n;
    req.amount_minor = 713; /* 7.13: the decline rule */
    assert_int_equal(pos_pinpad_start(&d, &req), 0);
    run_until(before + 3);
    assert_int_equal(rec.ev[rec.n - 1].pinpad.outcome, POS_PINPAD_DECLINED);
    assert_int_equal(pos_sim_pinpad_charges(&d), 1);

    before = rec.n;
    assert_int_equal(pos_sim_inject_fault(&d, "timeout"), 0);
    run_until(before + 0);
    req.amount_minor = 500;
    assert_int_equal(pos_pinpad_start(&d, &req), 0);
    for (int i = 0; i < 20; i++) { /* well past the 10 ms the customer would take */
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(pos_pinpad_abort(&d), 0);
    run_until(rec.n + 1);
    assert_int_equal(rec.ev[rec.n - 1].type, POS_HAL_EV_PINPAD_RESULT);
    assert_int_equal(rec.ev[rec.n - 1].pinpad.outcome, POS_PINPAD_CANCELLED);
    assert_int_equal(pos_pinpad_abort(&d), -EALREADY);
    assert_int_equal(pos_sim_pinpad_charges(&d), 1);

    assert_int_equal(pos_sim_inject_fault(&d, "offline"), 0);
    run_until_status(&d, POS_DEV_OFFLINE);
    assert_int_equal(d.status, POS_DEV_OFFLINE);
    assert_int_equal(pos_pinpad_start(&d, &req), -ENODEV);
    close_and_drain(&d, 1);
    /* The full test card number was never written to a file. */
    assert_null(strstr(slurp("pinpad.charges"), "4111111111111111"));
}

/*
 * A payment's result queued on the loop when the next payment starts (the
 * pinpad idle again by then) is delivered after that start: it carries
 * its own run, not the next one's, so it can never be taken for the next
 * payment's (an approval of A published as B's, B never charged).
 */
static void test_pinpad_result_keeps_its_run(void **state)
{
    (void)state;
    pos_hal_device_t d;
    pos_pinpad_request_t req;
    create(&d, POS_HAL_PINPAD);
    assert_int_equal(pos_hal_start(&d), 0);
    run_until(1); /* ready */
    pinpad_request(&req, "tx-a");
    assert_int_equal(pos_pinpad_start(&d, &req), 0);
    uint32_t run_a = d.run;
    /* A's result, then the pinpad idle, nothing delivered yet. */
    assert_int_equal(pos_pinpad_abort(&d), 0);
    int before = rec.n;
    snprintf(req.transaction_id, sizeof(req.transaction_id), "tx-b");
    assert_int_equal(pos_pinpad_start(&d, &req), 0);
    uint32_t run_b = d.run;
    assert_true(run_b != run_a);
    assert_int_equal(rec.n, before);
    int results = 0, cancelled_a = 0, approved_b = 0;
    for (int tries = 0; tries < 300 && results < 2; tries++) {
        run_until(rec.n + 1);
        results = cancelled_a = approved_b = 0;
        for (int i = before; i < rec.n; i++) {
            if (rec.ev[i].type == POS_HAL_EV_PINPAD_RESULT) {
                results++;
                cancelled_a +=
                    rec.ev[i].pinpad.outcome == POS_PINPAD_CANCELLED && rec.ev[i].job_id == run_a;
                approved_b +=
                    rec.ev[i].pinpad.outcome == POS_PINPAD_APPROVED && rec.ev[i].job_id == run_b;
            }
        }
    }
    assert_int_equal(results, 2);
    assert_int_equal(cancelled_a, 1);
    assert_int_equal(approved_b, 1);
    close_and_drain(&d, 1);
}

/* A receipt for the printer tests. */
static void receipt_doc(pos_receipt_doc_t *doc)
{
    pos_receipt_input_t in;

    memset(&in, 0, sizeof(in));
    in.store_id = "S-1";
    in.terminal_id = "T-1";
    in.transaction_id = "tx-9";
    in.total_minor = 250;
    in.currency = "EUR";
    in.minor_digits = 2;
    in.time_s = 1764412800;
    in.width = 32;
    assert_int_equal(pos_receipt_layout(&in, doc), 0);
}

static void test_printer_faults(void **state)
{
    (void)state;
    pos_hal_device_t d;
    static pos_receipt_doc_t doc;
    create(&d, POS_HAL_PRINTER);
    assert_int_equal(pos_hal_start(&d), 0);
    receipt_doc(&doc);
    assert_int_equal(pos_printer_print(&d, &doc, 7), 0);
    assert_int_equal(pos_printer_print(&d, &doc, 8), -EBUSY);
    run_until_complete(0);
    assert_int_equal(rec.ev[rec.n - 1].type, POS_HAL_EV_OUTPUT_COMPLETE);
    assert_int_equal(rec.ev[rec.n - 1].job_id, 7);
    assert_int_equal(rec.ev[rec.n - 1].error, 0);
    assert_non_null(strstr(slurp("receipts.txt"), "tx-9"));
    assert_non_null(strstr(slurp("receipts.txt"), "cut"));

    put("printer.fault", "paper_out\n");
    run_until_status(&d, POS_DEV_PAPER_OUT);
    assert_int_equal(d.status, POS_DEV_PAPER_OUT);
    assert_int_equal(pos_printer_print(&d, &doc, 9), -ENOSPC);
    put("printer.fault", "cover_open\n");
    run_until_status(&d, POS_DEV_COVER_OPEN);
    assert_int_equal(pos_printer_print(&d, &doc, 9), -EIO);

    /* Paper runs out half way: what came out stays, the job fails, the
     * printer reports paper_out and the job is not resent. */
    put("printer.fault", "paper_out_mid\n");
    run_until_status(&d, POS_DEV_READY);
    size_t before = strlen(slurp("receipts.txt"));
    assert_int_equal(pos_printer_print(&d, &doc, 10), 0);
    run_until_complete(10);
    assert_int_equal(rec.ev[rec.n - 1].error, -ENOSPC);
    size_t after = strlen(slurp("receipts.txt"));
    assert_true(after > before);
    assert_null(strstr(slurp("receipts.txt") + before, "cut"));
    run_until_status(&d, POS_DEV_PAPER_OUT);
    assert_int_equal(d.status, POS_DEV_PAPER_OUT);
    close_and_drain(&d, 1);
}

/*
 * Issue 13 item 9: a U+202E (RIGHT-TO-LEFT OVERRIDE) or U+200B (ZERO WIDTH
 * SPACE) in a cloud-supplied text reached the display and the paper, so a
 * line could read differently from what it holds. Neither device shows
 * them now; the text around them is kept.
 */
static void test_invisible_text_never_shown(void **state)
{
    (void)state;
    pos_hal_device_t d, p;
    static pos_receipt_doc_t doc;
    pos_receipt_item_t item = {"Tea\xe2\x80\xae"
                               "00.99\xe2\x80\x8b",
                               1, 250};
    pos_receipt_input_t in;

    create(&d, POS_HAL_DISPLAY);
    assert_int_equal(pos_hal_start(&d), 0);
    assert_int_equal(
        pos_display_show(&d, "Pay\xe2\x81\xa6 here\xe2\x81\xa9", "\xef\xbb\xbfnow\xe2\x80\x8f"), 0);
    run_until(2);
    assert_string_equal(slurp("display.txt"), "Pay here            \nnow                 \n");
    close_and_drain(&d, 1);

    memset(&in, 0, sizeof(in));
    in.store_id = "S-1";
    in.terminal_id = "T-1";
    in.transaction_id = "tx-9";
    in.items = &item;
    in.n_items = 1;
    in.total_minor = 250;
    in.currency = "EUR";
    in.minor_digits = 2;
    in.time_s = 1764412800;
    in.width = 32;
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    create(&p, POS_HAL_PRINTER);
    assert_int_equal(pos_hal_start(&p), 0);
    assert_int_equal(pos_printer_print(&p, &doc, 1), 0);
    run_until_complete(1);
    assert_int_equal(rec.ev[rec.n - 1].error, 0);
    const char *paper = slurp("receipts.txt");
    assert_non_null(strstr(paper, "Tea00.99"));
    assert_null(strstr(paper, "\xe2\x80\xae"));
    assert_null(strstr(paper, "\xe2\x80\x8b"));
    close_and_drain(&p, 2);
}

/*
 * Issue 13 item 13: the simulated devices followed symbolic links planted
 * in their directory, so an agent running as root appended a receipt
 * (with a cloud-supplied line) to a root-only file. They never write
 * through a link, a FIFO or a device now.
 */
static void test_planted_links_not_followed(void **state)
{
    (void)state;
    pos_hal_device_t d, p;
    static pos_receipt_doc_t doc;
    char target[128], link[128];

    snprintf(target, sizeof(target), "%s/secret", dir);
    put("secret", "root only\n");
    snprintf(link, sizeof(link), "%s/receipts.txt", dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/display.txt", dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/display.txt.tmp", dir);
    assert_int_equal(symlink(target, link), 0);

    create(&p, POS_HAL_PRINTER);
    assert_int_equal(pos_hal_start(&p), 0);
    run_until_status(&p, POS_DEV_READY);
    receipt_doc(&doc);
    assert_int_equal(pos_printer_print(&p, &doc, 1), -ELOOP);
    assert_string_equal(slurp("secret"), "root only\n");

    /* The screen cannot be written through either link: not shown. */
    create(&d, POS_HAL_DISPLAY);
    assert_int_equal(pos_hal_start(&d), 0);
    assert_int_equal(pos_display_show(&d, "cloud text", ""), 0);
    run_until_complete(0);
    assert_int_equal(rec.ev[rec.n - 1].error, -ELOOP);
    assert_string_equal(slurp("secret"), "root only\n");
    /* Once the planted temporary link is gone, the screen replaces the
     * link at display.txt (rename), still without writing through it. */
    assert_int_equal(unlink(link), 0);
    assert_int_equal(pos_display_show(&d, "cloud text", ""), 0);
    run_until_complete(0);
    assert_int_equal(rec.ev[rec.n - 1].error, 0);
    assert_string_equal(slurp("secret"), "root only\n");
    assert_non_null(strstr(slurp("display.txt"), "cloud text"));

    /* A FIFO in a fault file's place does not hang the loop. */
    snprintf(link, sizeof(link), "%s/printer.fault", dir);
    assert_int_equal(mkfifo(link, 0600), 0);
    put("pinpad.fault", "\n"); /* any event: the loop goes on */
    pos_test_loop_until(&loop, events_reached, &(int){rec.n + 1}, 300);
    pos_hal_close(&p, on_closed);
    close_and_drain(&d, 2);
}

/* Prints job 1 on a simulated printer taking delay_ms per receipt; returns
 * the milliseconds from print to its completion. */
static uint64_t print_took_ms(uint32_t delay_ms)
{
    pos_hal_device_t d;
    static pos_receipt_doc_t doc;
    char err[128];
    pos_hal_options_t o = opts();

    o.sim_printer_delay_ms = delay_ms;
    assert_int_equal(
        pos_hal_create(&d, &loop, POS_HAL_PRINTER, "sim", &o, on_event, NULL, err, sizeof(err)), 0);
    assert_int_equal(pos_hal_start(&d), 0);
    receipt_doc(&doc);
    run_until_status(&d, POS_DEV_READY);
    int before = rec.n;
    /* The driver's timer counts from the loop's time: make it now. */
    uv_update_time(&loop);
    uint64_t t0 = uv_hrtime();
    rec.in_call = 1;
    assert_int_equal(pos_printer_print(&d, &doc, 1), 0);
    rec.in_call = 0;
    /* Never completed inside the call, whatever the delay. */
    for (int i = before; i < rec.n; i++) {
        assert_int_not_equal(rec.ev[i].type, POS_HAL_EV_OUTPUT_COMPLETE);
    }
    assert_int_equal(pos_printer_print(&d, &doc, 2), -EBUSY);
    run_until_complete(1);
    uint64_t took = (uv_hrtime() - t0) / 1000000u; /* whole ms, rounded down */
    assert_int_equal(rec.ev[rec.n - 1].error, 0);
    assert_int_equal(d.status, POS_DEV_READY);
    int expect = closed + 1;
    close_and_drain(&d, expect);
    return took;
}

/* [hal] sim_printer_delay_ms: the time a receipt takes, 0 included. */
static void test_printer_delay(void **state)
{
    (void)state;
    /* A lower bound only: a timer never fires early (libuv counts whole
     * milliseconds: up to 1 ms less by a finer clock); how late it fires
     * depends on the machine. */
    uint64_t slow = print_took_ms(300);
    print_message("printer delay 300: completed after %llu ms\n", (unsigned long long)slow);
    assert_true(slow >= 299);
    uint64_t zero = print_took_ms(0);
    print_message("printer delay 0: completed after %llu ms\n", (unsigned long long)zero);
    /* Well under the old fixed 20 ms unless the machine stalls the test. */
    assert_true(zero < 300);
}

/* Closing a device that never opened (its directory cannot be created)
 * or was never started frees everything. */
static void test_close_without_open(void **state)
{
    (void)state;
    pos_hal_device_t a, b;
    char err[128];
    pos_hal_options_t o = opts();
    o.sim_dir = "/proc/posagent-cannot-exist/sim";
    assert_int_equal(
        pos_hal_create(&a, &loop, POS_HAL_PINPAD, "sim", &o, on_event, NULL, err, sizeof(err)), 0);
    assert_true(pos_hal_start(&a) < 0);
    create(&b, POS_HAL_PRINTER);
    pos_hal_close(&a, on_closed);
    pos_hal_close(&b, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 2);
}

static void test_bad_driver_strings(void **state)
{
    (void)state;
    char err[256];
    pos_hal_device_t d;
    pos_hal_options_t o = opts();
    assert_int_equal(pos_hal_spec_validate(POS_HAL_PRINTER, "laser", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown printer driver"));
    assert_non_null(strstr(err, "escpos"));
    assert_int_equal(pos_hal_spec_validate(POS_HAL_DISPLAY, "sim:x", err, sizeof(err)), -EINVAL);
    assert_int_equal(pos_hal_spec_validate(POS_HAL_PINPAD, "escpos:/dev/usb/lp0", err, sizeof(err)),
                     -EINVAL); /* a printer driver is not a pinpad */
    assert_int_equal(
        pos_hal_create(&d, &loop, POS_HAL_PINPAD, "nope", &o, on_event, NULL, err, sizeof(err)),
        -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_display_fits_and_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinpad_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinpad_result_keeps_its_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_printer_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invisible_text_never_shown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted_links_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_printer_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_without_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_driver_strings, setup, teardown),
    };
    return cmocka_run_group_tests_name("hal_sim", tests, NULL, NULL);
}
