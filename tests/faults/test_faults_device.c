#define _GNU_SOURCE /* memmem */
/*
 * A device unplugged and replugged mid-receipt, through the agent
 * (docs/faults.md): the agent drives a real ESC/POS printer driver
 * (escpos-serial) whose far end is the printer emulator of
 * tests/support/emulators.c on a pseudo-terminal, served by a libuv loop
 * on a thread of this test. The printer takes the receipt's bytes and then
 * hangs; the cable is pulled while the driver waits for it.
 *
 * Expectation (CONTRACT.md): the payment stands (approved, charged once),
 * the cloud gets RECEIPT_FAILED (reason offline) and TRANSACTION_COMPLETED
 * with receipt "failed", the printer shows as offline in the status key;
 * after the replug it is ready again, a RECEIPT_REPRINT prints the
 * receipt, and the next payment prints normally.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <uv.h>

#include "tests/faults/faultlib.h"
#include "tests/support/emulators.h"

enum { ACT_NONE, ACT_UNPLUG, ACT_REPLUG, ACT_QUIT };

typedef struct fixture {
    pos_fix_t fx;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thread;
    pthread_mutex_t mu;
    int action;
    unsigned done;
    pos_emu_printer_t emu;
    bool telium; /* the emulator is the pinpad's (tel), not the printer */
    pos_emu_telium_t tel;
} fixture_t;

/* ---- the emulator's thread ---------------------------------------------------- */

static void on_wake(uv_async_t *h)
{
    fixture_t *f = h->data;
    pthread_mutex_lock(&f->mu);
    int act = f->action;
    f->action = ACT_NONE;
    pthread_mutex_unlock(&f->mu);
    switch (act) {
    case ACT_UNPLUG:
        pos_emu_port_unplug(&f->emu.port);
        break;
    case ACT_REPLUG:
        f->emu.silent = false;
        f->emu.silent_at_init = 0;
        if (pos_emu_port_replug(&f->emu.port) != 0) {
            fprintf(stderr, "replug failed\n");
        }
        break;
    case ACT_QUIT:
        if (f->telium) {
            pos_emu_telium_close(&f->tel);
        } else {
            pos_emu_port_close(&f->emu.port);
        }
        uv_close((uv_handle_t *)&f->wake, NULL);
        break;
    default:
        break;
    }
    pthread_mutex_lock(&f->mu);
    f->done++;
    pthread_mutex_unlock(&f->mu);
}

static void *emu_main(void *arg)
{
    fixture_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs an action on the emulator's loop and waits until it is done. */
static void emu_do(fixture_t *f, int act)
{
    pthread_mutex_lock(&f->mu);
    unsigned before = f->done;
    f->action = act;
    pthread_mutex_unlock(&f->mu);
    uv_async_send(&f->wake);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&f->mu);
        unsigned now = f->done;
        pthread_mutex_unlock(&f->mu);
        if (now != before) {
            return;
        }
        pos_test_sleep_ms(10);
    }
    fail_msg("emulator action %d not carried out", act);
}

/* Polls what the emulator recorded. The loop thread appends to these
 * without taking the lock (emulators.c knows nothing of threads): the
 * values only grow, and a poll that reads one a moment early just polls
 * again. */
static unsigned emu_cuts(fixture_t *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->emu.cuts;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static bool emu_text_has(fixture_t *f, const char *needle)
{
    pthread_mutex_lock(&f->mu);
    bool has = memmem(f->emu.text, f->emu.text_len, needle, strlen(needle)) != NULL;
    pthread_mutex_unlock(&f->mu);
    return has;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_start(&f->fx) != 0) {
        free(f);
        return -1;
    }
    pthread_mutex_init(&f->mu, NULL);
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->wake, on_wake);
    f->wake.data = f;
    if (pos_emu_printer_start(&f->emu, &f->loop, false, 42, "cp858") != 0 ||
        pthread_create(&f->thread, NULL, emu_main, f) != 0) {
        return -1;
    }
    /* The agent is forked from this process: it must not inherit the pty,
     * or closing the master here would not hang the line up. */
    fcntl(f->emu.port.master, F_SETFD, FD_CLOEXEC);
    fcntl(f->emu.port.slave, F_SETFD, FD_CLOEXEC);
    *state = f;
    return 0;
}

/* The same with a Telium terminal emulator: approves, the customer taking
 * 10.5 s after the request. */
static int setup_telium(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_start(&f->fx) != 0) {
        free(f);
        return -1;
    }
    f->telium = true;
    pthread_mutex_init(&f->mu, NULL);
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->wake, on_wake);
    f->wake.data = f;
    if (pos_emu_telium_start(&f->tel, &f->loop, POS_EMU_TEL_APPROVE, "4970101234561234", 10500) !=
            0 ||
        pthread_create(&f->thread, NULL, emu_main, f) != 0) {
        return -1;
    }
    fcntl(f->tel.port.master, F_SETFD, FD_CLOEXEC);
    fcntl(f->tel.port.slave, F_SETFD, FD_CLOEXEC);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_fix_stop(&f->fx); /* the agent first: it holds the printer's pty */
    emu_do(f, ACT_QUIT);
    pthread_join(f->thread, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    pthread_mutex_destroy(&f->mu);
    free(f);
    return 0;
}

static unsigned charges(fixture_t *f)
{
    return pos_fix_charges(&f->fx);
}

/* The next terminal message of this type for tx; fails the test after
 * timeout_ms without one. */
static cJSON *expect(fixture_t *f, const char *type, const char *tx, int timeout_ms)
{
    cJSON *j = pos_test_sub_expect(&f->fx.sub, type, tx, timeout_ms, NULL);
    if (j == NULL) {
        pos_fix_dump_log(&f->fx);
        fail_msg("no %s for %s within %d ms", type, tx, timeout_ms);
    }
    return j;
}

static const char *str(cJSON *j, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

typedef struct printer_wait {
    const pos_test_redis_t *r;
    char needle[64];
} printer_wait_t;

static bool printer_is(void *arg)
{
    const printer_wait_t *w = arg;
    char *v = pos_test_get(w->r, FL_STATUS_KEY);
    bool ok = v != NULL && strstr(v, w->needle) != NULL;
    free(v);
    return ok;
}

/* The printer's state in the status key becomes want; ms or -1. */
static long wait_printer(fixture_t *f, const char *want, int timeout_ms)
{
    printer_wait_t w = {.r = &f->fx.redis};
    snprintf(w.needle, sizeof(w.needle), "\"printer\":\"%s\"", want);
    return pos_test_poll(printer_is, &w, 20, timeout_ms);
}

static void pay(fixture_t *f, const char *tx)
{
    char req[256];
    snprintf(req, sizeof(req),
             "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":4.20,"
             "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Tea\",\"qty\":1,\"amount\":4.20}]}",
             tx);
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH payment:" FL_TID " %s", req), 2);
}

static void test_printer_unplug_mid_receipt(void **state)
{
    fixture_t *f = *state;
    pos_ini_t *ini = &f->fx.ini;

    /* Its second ESC @ is the receipt's: it takes the job and goes quiet. */
    pthread_mutex_lock(&f->mu);
    f->emu.silent_at_init = 2;
    pthread_mutex_unlock(&f->mu);
    pos_ini_set(ini, "hal", "printer", "escpos-serial:%s?baud=115200", f->emu.port.path);
    pos_ini_set(ini, "hal", "sim_pinpad_delay_ms", "300");
    pos_fix_set_heartbeat(&f->fx, 2, 6);
    pos_fix_agent_start(&f->fx, NULL);
    pos_fix_wait_online(&f->fx, 1, 10000);
    assert_true(wait_printer(f, "ready", 5000) >= 0);
    const char *ch[] = {"payment:" FL_TID, "transaction:" FL_SID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->fx.sub, &f->fx.redis, ch), 0);

    pay(f, "tx-plug-1");
    cJSON_Delete(expect(f, "PAYMENT_APPROVED", "tx-plug-1", 5000));
    /* The receipt went out and the printer hangs: pull the cable. */
    uint64_t end = pos_test_now_ms() + 5000;
    while (!emu_text_has(f, "tx-plug-1") && pos_test_now_ms() < end) {
        pos_test_sleep_ms(5);
    }
    /* Now the driver waits for the status after the cut (500 ms). */
    emu_do(f, ACT_UNPLUG);
    uint64_t t0 = pos_test_now_ms();
    cJSON *j = expect(f, "RECEIPT_FAILED", "tx-plug-1", 35000);
    fprintf(stderr, "unplug: RECEIPT_FAILED (%s) %llu ms after the unplug\n", str(j, "reason"),
            (unsigned long long)(pos_test_now_ms() - t0));
    assert_string_equal(str(j, "reason"), "offline");
    cJSON_Delete(j);
    /* It failed because the cable went, not because the printer was quiet. */
    char *log = pos_test_agent_log_read(&f->fx.agent);
    const char *down = strstr(log, "hal: printer: link down");
    const char *failed = strstr(log, "payment: RECEIPT_FAILED tx-plug-1");
    assert_non_null(down);
    assert_non_null(failed);
    assert_true(down < failed);
    free(log);
    j = expect(f, "TRANSACTION_COMPLETED", "tx-plug-1", 5000);
    assert_string_equal(str(j, "receipt"), "failed");
    cJSON_Delete(j);
    assert_int_equal(charges(f), 1); /* the payment stands */
    assert_true(wait_printer(f, "offline", 3000) >= 0);

    /* Replugged: ready again, the receipt can be reprinted. */
    unsigned cuts = emu_cuts(f);
    emu_do(f, ACT_REPLUG);
    long ms = wait_printer(f, "ready", 10000);
    fprintf(stderr, "replug: printer ready in the status key after %ld ms\n", ms);
    assert_true(ms >= 0);
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH payment:" FL_TID " %s",
                                  "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-plug-1\"}"),
                     2);
    cJSON_Delete(expect(f, "RECEIPT_PRINTED", "tx-plug-1", 10000));
    assert_true(emu_cuts(f) > cuts);
    cuts = emu_cuts(f);

    pay(f, "tx-plug-2");
    cJSON_Delete(expect(f, "RECEIPT_PRINTED", "tx-plug-2", 10000));
    j = expect(f, "TRANSACTION_COMPLETED", "tx-plug-2", 5000);
    assert_string_equal(str(j, "receipt"), "printed");
    cJSON_Delete(j);
    assert_true(emu_text_has(f, "tx-plug-2"));
    assert_true(emu_cuts(f) > cuts);
    assert_int_equal(charges(f), 2);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

static unsigned tel_charges(fixture_t *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->tel.charges;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/*
 * [payment] pinpad_timeout_s runs out while the Telium terminal still has
 * the customer: E+ cannot stop a terminal that took the request (abort()
 * only waits), and the customer pays just after. The cloud must not be
 * told the payment was declined for a timeout (not charged) while the card
 * is charged: the outcome is unknown (or approved), never "timeout".
 */
static void test_pinpad_timeout_terminal_charges(void **state)
{
    fixture_t *f = *state;
    pos_ini_t *ini = &f->fx.ini;

    pos_ini_set(ini, "hal", "pinpad", "telium:%s?baud=9600", f->tel.port.path);
    pos_ini_set(ini, "payment", "pinpad_timeout_s", "10");
    pos_fix_agent_start(&f->fx, NULL);
    pos_fix_wait_online(&f->fx, 1, 10000);
    const char *ch[] = {"payment:" FL_TID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->fx.sub, &f->fx.redis, ch), 0);

    pay(f, "tx-late-1");
    cJSON *j = expect(f, "PAYMENT_DECLINED", "tx-late-1", 25000);
    uint64_t end = pos_test_now_ms() + 3000;
    while (tel_charges(f) == 0 && pos_test_now_ms() < end) {
        pos_test_sleep_ms(20);
    }
    fprintf(stderr, "pinpad timeout: PAYMENT_DECLINED reason %s; the terminal charged %u\n",
            str(j, "reason"), tel_charges(f));
    assert_int_equal(tel_charges(f), 1);
    assert_string_not_equal(str(j, "reason"), "timeout");
    cJSON_Delete(j);
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_printer_unplug_mid_receipt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinpad_timeout_terminal_charges, setup_telium,
                                        teardown),
    };
    fl_filter();
    return cmocka_run_group_tests_name("faults_device", tests, NULL, NULL);
}
