/*
 * Bursts (issue 12): a flood from the cloud or from the POS application
 * must not stall the agent, cost it its link or its heartbeat, grow its
 * memory without bound, or ever charge a card twice.
 *
 *   payment burst   N distinct PAYMENT_REQUESTED sent at once (as
 *                   redis-cli --pipe would) while the first holds the
 *                   pinpad: one charge, every request answered exactly once
 *   local burst     N PUBLISH through the local API while the cloud sends
 *                   DISPLAY_MESSAGEs: each publish queued or refused, every
 *                   cloud message handled
 *   double charge   pay tx-A, flood the agent with other traffic, kill -9,
 *                   restart, replay tx-A: still one charge
 *
 * and during the bursts (tests/support/watch.h): the status key's TTL never
 * below ttl_s - interval_s - 1 s, the link never dropped, a local PING
 * p99 under 10 ms, the agent's RSS within a bound.
 *
 * CI runs reduced sizes (below); POS_BURST_FULL=1 runs the issue's
 * (docs/latency.md). Every check prints its figure before the verdict.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/watch.h"

/* A heartbeat short enough that a stall shows in the status key's TTL
 * within the test: the key must never fall below TTL - INTERVAL - 1 s. */
#define HB_INTERVAL_S 2
#define HB_TTL_S      10
#define TTL_FLOOR_MS  ((HB_TTL_S - HB_INTERVAL_S - 1) * 1000)
/*
 * The budget for a local PING during a burst, 10 ms, holds the
 * product build to it: CI runs this test in the Release build too (p99
 * 2-3.5 ms there). Under ASan the agent is several times slower, and its
 * profile shows the allocator's quarantine and cross-CPU TLB flushes (slow
 * on a paravirtualised 2-core machine): single PINGs of 10-20 ms were seen
 * there with nothing else running.
 * The Sanitize run keeps a bound twice the budget, which still catches a
 * loop that stalls (the agent before this work, Sanitize build at CI size:
 * p99 0.04 to 5.2 s).
 */
#if defined(__SANITIZE_ADDRESS__)
#define PING_P99_MS 20.0
#else
#define PING_P99_MS 10.0
#endif
/*
 * VmRSS growth allowed over the agent's VmRSS before the burst. 16 MiB is
 * the bound for a whole agent facing a hostile server. The full
 * payment burst is about 5 MB of requests and the full local burst about
 * 7 MB: an agent that buffers a burst whole, or keeps a record per request
 * in memory, goes past it; today's agent grows by 1.5-5 MiB (release, full
 * sizes), most of it the store's mapped pages. The check discriminates at
 * full size in a release build; at CI size under ASan it guards against a
 * runaway only. Under ASan every freed block waits in a quarantine
 * (256 MiB by default) and carries redzones: the agent runs with a 4 MiB
 * quarantine (pos_fix_small_quarantine_env), and the bound is tripled.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_GROWTH_KIB (3 * 16 * 1024L)
#else
#define RSS_GROWTH_KIB (16 * 1024L)
#endif

/* ---- sizes: CI and full ------------------------------------------------------------- */

typedef struct burst_sizes {
    int payments;           /* distinct PAYMENT_REQUESTED in the payment burst */
    int answer_deadline_ms; /* for all of them to be answered */
    int publishes;          /* local PUBLISH in the local burst */
    int displays;           /* DISPLAY_MESSAGEs the cloud sends meanwhile */
    int others;             /* other messages in the double-charge test */
} burst_sizes_t;

/*
 * CI: a tenth of the payment and local bursts; 15,000 other
 * messages, 10,500 of them requests for other ids: past every bound the
 * agent has had on what it remembers (256 ids in a ring, 1,024 finished
 * journal records, 10,000 seen ids), where the 20,000 is the full
 * size. An agent that admits work in bounded amounts answers 5,000 requests
 * under ASan in a few seconds on two busy cores: 20 s leaves a wide margin,
 * and keeps the test under a minute.
 */
static burst_sizes_t sizes(void)
{
    if (pos_watch_full()) {
        return (burst_sizes_t){50000, 60000, 100000, 40, 20000};
    }
    return (burst_sizes_t){5000, 20000, 10000, 40, 15000};
}

/* ---- the agent's configuration and environment --------------------------------------- */

static void burst_config(pos_fix_t *f)
{
    pos_fix_set_heartbeat(f, HB_INTERVAL_S, HB_TTL_S);
    /* One line per message at info; debug would add several. */
    pos_ini_set(&f->ini, "log", "level", "info");
}

static void start_agent(pos_fix_t *f)
{
    pos_fix_agent_start(f, pos_fix_small_quarantine_env());
    pos_fix_wait_online(f, f->starts, 30000);
    assert_true(pos_fix_wait_status(&f->redis, NULL, 10000, NULL) >= 0);
}

/* An INFO field through a fresh local connection, -1 when the agent does
 * not answer (a stalled agent is a figure here, not a crash of the test). */
static long long info_int(const pos_fix_t *f, const char *section, const char *field)
{
    redisContext *c = pos_fix_local(f);
    long long v = -1;

    if (c == NULL) {
        return -1;
    }
    redisReply *r = redisCommand(c, "INFO %s", section);
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, field);
        if (p != NULL && p[strlen(field)] == ':') {
            v = strtoll(p + strlen(field) + 1, NULL, 10);
        }
    }
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---- pipelines ------------------------------------------------------------------------ */

typedef struct cmdbuf {
    char *buf;
    size_t len, cap;
    int n; /* commands */
} cmdbuf_t;

__attribute__((format(printf, 2, 3))) static void cmd_add(cmdbuf_t *b, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;

    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    assert_true(len > 0);
    if (b->len + (size_t)len > b->cap) {
        b->cap = (b->cap + (size_t)len) * 2;
        b->buf = realloc(b->buf, b->cap);
        assert_non_null(b->buf);
    }
    memcpy(b->buf + b->len, cmd, (size_t)len);
    b->len += (size_t)len;
    b->n++;
    free(cmd);
}

typedef struct pipe_result {
    double send_ms; /* from the first byte to the last written (0: not all written) */
    size_t unsent;  /* bytes never written (the peer stopped reading) */
    double all_ms;  /* to the last reply */
    int integers, errors, others, missing;
} pipe_result_t;

/*
 * Writes b on c at once, reading replies meanwhile (a peer that stops
 * reading until its replies are read must not deadlock us), until all
 * b->n replies came or timeout_ms passed.
 */
static void pipe_run(redisContext *c, const cmdbuf_t *b, int timeout_ms, pipe_result_t *res)
{
    int fl = fcntl(c->fd, F_GETFL);
    uint64_t t0 = pos_test_now_ms(), end = t0 + (uint64_t)timeout_ms;
    size_t off = 0;
    int got = 0;

    memset(res, 0, sizeof(*res));
    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    while (got < b->n && pos_test_now_ms() < end) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN | (off < b->len ? POLLOUT : 0)};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        if ((p.revents & POLLOUT) != 0) {
            ssize_t w = write(c->fd, b->buf + off, b->len - off);
            if (w > 0) {
                off += (size_t)w;
                if (off == b->len) {
                    res->send_ms = (double)(pos_test_now_ms() - t0);
                }
            }
        }
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            void *r = NULL;
            /* Everything there is (hiredis reads 16 KiB a call): a client
             * that writes faster than it reads is paused by the agent
             * once 512 KiB of its replies wait, which slows the burst
             * down to this reader's pace. */
            int rc = REDIS_OK;
            for (int i = 0; i < 256 && rc == REDIS_OK; i++) {
                struct pollfd in = {.fd = c->fd, .events = POLLIN};
                rc = redisBufferRead(c);
                if (poll(&in, 1, 0) != 1 || (in.revents & POLLIN) == 0) {
                    break;
                }
            }
            if (rc != REDIS_OK) {
                break;
            }
            while (redisGetReplyFromReader(c, &r) == REDIS_OK && r != NULL) {
                int t = ((redisReply *)r)->type;
                res->integers += t == REDIS_REPLY_INTEGER;
                res->errors += t == REDIS_REPLY_ERROR;
                res->others += t != REDIS_REPLY_INTEGER && t != REDIS_REPLY_ERROR;
                freeReplyObject(r);
                got++;
            }
        }
    }
    res->all_ms = (double)(pos_test_now_ms() - t0);
    res->missing = b->n - got;
    res->unsent = b->len - off;
    fcntl(c->fd, F_SETFL, fl);
}

/* ---- what every burst must keep --------------------------------------------------------- */

typedef struct link_before {
    long long connects;
} link_before_t;

/* The link held, the heartbeat kept the status key alive, a local PING
 * stayed quick and memory bounded. */
static void check_held(pos_watch_checks_t *c, pos_fix_t *f, pos_watch_t *w,
                       const link_before_t *before)
{
    long long connects = info_int(f, "link", "connects");
    int offline = pos_test_agent_log_count(&f->agent, "link: offline");
    double p99 = pos_watch_local_pct(w, 99);

    pos_watch_check(c, connects == before->connects && offline == 0,
                    "link never dropped: INFO connects %lld -> %lld, %d \"link: offline\" in the "
                    "log",
                    before->connects, connects, offline);
    pos_watch_check(c, w->key_missing == 0 && w->min_pttl_ms >= TTL_FLOOR_MS,
                    "status key TTL (every 100 ms, %d samples): lowest %lld ms, missing %d times "
                    "(floor %d ms = ttl_s %d - interval_s %d - 1)",
                    w->pttl_samples, w->min_pttl_ms, w->key_missing, TTL_FLOOR_MS, HB_TTL_S,
                    HB_INTERVAL_S);
    pos_watch_check(c, p99 >= 0 && p99 < PING_P99_MS && w->local_errors == 0,
                    "local PING during the burst: %zu answers, p99 %.3f ms, max %.3f ms, %d "
                    "failed (budget p99 < %.0f ms)",
                    w->local_ms.n, p99, pos_watch_local_pct(w, 100), w->local_errors, PING_P99_MS);
    pos_watch_check(c, w->rss_max_kib - w->rss_first_kib <= RSS_GROWTH_KIB,
                    "agent VmRSS %ld KiB before, highest %ld KiB: +%ld KiB (bound +%ld KiB; "
                    "RssAnon +%ld KiB)",
                    w->rss_first_kib, w->rss_max_kib, w->rss_max_kib - w->rss_first_kib,
                    RSS_GROWTH_KIB, w->anon_max_kib - w->anon_first_kib);
}

/* ---- (a) the payment burst ------------------------------------------------------------- */

static void test_payment_burst(void **state)
{
    pos_fix_t *f = *state;
    burst_sizes_t sz = sizes();
    /* The first request holds the pinpad until after the deadline: every
     * other request answered in time finds the terminal busy. */
    unsigned pinpad_ms = (unsigned)sz.answer_deadline_ms + 2000u;
    pos_answers_t ans;
    pos_watch_t w;
    pos_watch_checks_t c = {0};
    cmdbuf_t b = {0};
    pipe_result_t res;
    link_before_t before;

    burst_config(f);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "%u", pinpad_ms);
    pos_ini_set(&f->ini, "hal", "sim_decline_ending", "%s", ""); /* the one accepted is charged */
    start_agent(f);
    assert_int_equal(pos_answers_start(&ans, f, (size_t)sz.payments), 0);
    for (int i = 0; i < sz.payments; i++) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"b-%d\",\"amount\":%d.%02d,"
                 "\"currency\":\"EUR\"}",
                 i, 1 + i % 90, i % 100);
        cmd_add(&b, "PUBLISH payment:%s %s", POS_FIX_TID, msg);
    }
    before.connects = info_int(f, "link", "connects");
    assert_int_equal(pos_watch_start(&w, f, NULL), 0);
    pos_test_sleep_ms(300); /* the RSS before */

    uint64_t t0 = pos_test_now_ms();
    redisContext *cloud = pos_test_redis_connect(&f->redis);
    assert_non_null(cloud);
    pipe_run(cloud, &b, 30000, &res);
    bool all = pos_answers_wait_first(&ans, (unsigned long)sz.payments,
                                      sz.answer_deadline_ms - (int)(pos_test_now_ms() - t0));
    uint64_t answered_ms = pos_test_now_ms() - t0;
    pos_test_sleep_ms(1000); /* a second answer to anything would show now */
    pos_watch_stop(&w);

    /* The one accepted payment is charged when the pinpad decides. */
    while (pos_fix_charges(f) == 0 && pos_test_now_ms() < t0 + pinpad_ms + 15000u) {
        pos_test_sleep_ms(100);
    }
    pos_test_sleep_ms(500);

    printf("payment burst: %d requests sent in %.0f ms (Redis confirmed all in %.0f ms, %d "
           "missing); %lu answered after %llu ms; %lu redelivered answers dropped\n",
           sz.payments, res.send_ms, res.all_ms, res.missing, pos_answers_first(&ans),
           (unsigned long long)answered_ms, ans.redelivered);
    pos_watch_check(&c, all, "every request answered within %d ms: %lu of %d (last at %llu ms)",
                    sz.answer_deadline_ms, pos_answers_first(&ans), sz.payments,
                    (unsigned long long)answered_ms);
    pos_watch_check(&c, pos_answers_repeated(&ans) == 0 && ans.lost == 0,
                    "no request answered twice: %lu were", pos_answers_repeated(&ans));
    pos_watch_check(&c, ans.total[POS_ANS_PROCESSING] == 1,
                    "exactly one PAYMENT_PROCESSING: %lu (and %lu PAYMENT_REJECTED)",
                    ans.total[POS_ANS_PROCESSING], ans.total[POS_ANS_REJECTED]);
    pos_watch_check(&c, pos_fix_charges(f) == 1, "exactly one charge: %u", pos_fix_charges(f));
    check_held(&c, f, &w, &before);
    pos_watch_free(&w);
    pos_answers_stop(&ans);
    redisFree(cloud);
    free(b.buf);
    pos_watch_verdict(&c);
}

/* ---- (b) the local burst -------------------------------------------------------------- */

typedef struct displays {
    pos_fix_t *f;
    int n;
    int spacing_ms;
    int sent;
} displays_t;

/* The cloud's DISPLAY_MESSAGEs, one every spacing_ms. */
static void *send_displays(void *arg)
{
    displays_t *d = arg;
    redisContext *c = pos_test_redis_connect(&d->f->redis);

    for (int i = 0; c != NULL && i < d->n; i++) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Burst\",\"message %d\"]}", i);
        redisReply *r = redisCommand(c, "PUBLISH payment:%s %s", POS_FIX_TID, msg);
        d->sent += r != NULL && r->type == REDIS_REPLY_INTEGER;
        freeReplyObject(r);
        pos_test_sleep_ms(d->spacing_ms);
    }
    if (c != NULL) {
        redisFree(c);
    }
    return NULL;
}

static bool display_shows_last(const pos_fix_t *f, int last)
{
    char path[400], want[32], buf[512];
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/sim/display.txt", f->agent.dir);
    snprintf(want, sizeof(want), "message %d", last);
    FILE *fp = fopen(path, "r");
    if (fp != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
    return strstr(buf, want) != NULL;
}

static void test_local_burst(void **state)
{
    pos_fix_t *f = *state;
    burst_sizes_t sz = sizes();
    pos_watch_t w;
    pos_watch_checks_t c = {0};
    cmdbuf_t b = {0};
    pipe_result_t res;
    link_before_t before;
    pthread_t th;
    displays_t d = {f, sz.displays, 25, 0};
    const char *needle = "payment:" POS_FIX_TID ": DISPLAY_MESSAGE";

    burst_config(f);
    start_agent(f);
    for (int i = 0; i < sz.publishes; i++) {
        cmd_add(&b, "PUBLISH transaction:%s {\"type\":\"SALE\",\"seq\":%d,\"amount\":%d.50}",
                POS_FIX_SID, i, 1 + i % 20);
    }
    redisContext *app = pos_fix_local(f);
    assert_non_null(app);
    before.connects = info_int(f, "link", "connects");
    assert_int_equal(pos_watch_start(&w, f, NULL), 0);
    pos_test_sleep_ms(300);

    uint64_t t0 = pos_test_now_ms();
    assert_int_equal(pthread_create(&th, NULL, send_displays, &d), 0);
    pipe_run(app, &b, 60000, &res);
    pthread_join(th, NULL);
    bool handled = pos_test_agent_wait_log(&f->agent, needle, sz.displays,
                                           60000 - (int)(pos_test_now_ms() - t0));
    uint64_t handled_ms = pos_test_now_ms() - t0;
    pos_test_sleep_ms(1000);
    pos_watch_stop(&w);

    int shown = pos_test_agent_log_count(&f->agent, needle);
    printf("local burst: %d PUBLISH written in %.0f ms (%zu bytes never taken), answered in %.0f "
           "ms: %d queued, %d refused, %d other, %d missing; %d DISPLAY_MESSAGE sent over %d ms\n",
           sz.publishes, res.send_ms, res.unsent, res.all_ms, res.integers, res.errors, res.others,
           res.missing, d.sent, sz.displays * d.spacing_ms);
    pos_watch_check(&c, res.integers + res.errors == sz.publishes && res.others == 0,
                    "each publish queued (integer) or refused (error): %d + %d of %d, %d "
                    "missing, %d other replies",
                    res.integers, res.errors, sz.publishes, res.missing, res.others);
    pos_watch_check(&c,
                    d.sent == sz.displays && handled && shown == sz.displays &&
                        display_shows_last(f, sz.displays - 1),
                    "every DISPLAY_MESSAGE handled: %d of %d sent were (after %llu ms), the "
                    "display %s the last",
                    shown, d.sent, (unsigned long long)handled_ms,
                    display_shows_last(f, sz.displays - 1) ? "shows" : "does not show");
    check_held(&c, f, &w, &before);
    pos_watch_free(&w);
    redisFree(app);
    free(b.buf);
    pos_watch_verdict(&c);
}

/* ---- (d) never charge twice ------------------------------------------------------------ */

#define TX_A_REQUEST                                                                               \
    "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-A\",\"amount\":12.34,"                 \
    "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Espresso\",\"qty\":2,\"amount\":5.00},"           \
    "{\"name\":\"Croissant\",\"qty\":1,\"amount\":2.34}]}"

static void publish_payment(pos_fix_t *f, const char *msg)
{
    /* The agent and the test's own subscriber hear it. */
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:%s %s", POS_FIX_TID, msg), 2);
}

static unsigned tx_a_answers(pos_answers_t *a)
{
    unsigned n = 0;
    for (int t = 0; t < POS_ANS_NTYPES; t++) {
        n += pos_answers_count(a, "tx-A", (enum pos_answer_type)t);
    }
    return n;
}

static void test_never_charge_twice(void **state)
{
    pos_fix_t *f = *state;
    burst_sizes_t sz = sizes();
    pos_answers_t ans;
    pos_watch_checks_t c = {0};
    cmdbuf_t b = {0};
    pipe_result_t res;

    burst_config(f);
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "0");
    start_agent(f);
    assert_int_equal(pos_answers_start(&ans, f, (size_t)sz.others + 16), 0);

    publish_payment(f, TX_A_REQUEST);
    assert_true(pos_answers_wait(&ans, "tx-A", POS_ANS_COMPLETED, 1, 30000));
    assert_int_equal(pos_fix_charges(f), 1);

    /* Other traffic: 7 in 10 are requests for other ids (amounts ending in
     * .13, which the simulated pinpad declines: processed, journaled, never
     * charged; or, arriving while one is at the pinpad, refused busy), then
     * cancels for other ids, invalid requests and malformed JSON. */
    for (int i = 0; i < sz.others; i++) {
        char msg[256];
        switch (i % 10) {
        case 7:
            snprintf(msg, sizeof(msg),
                     "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"c-%d\"}", i);
            break;
        case 8:
            snprintf(msg, sizeof(msg),
                     "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"v-%d\",\"amount\":-1,"
                     "\"currency\":\"EUR\"}",
                     i);
            break;
        case 9:
            snprintf(msg, sizeof(msg), "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":");
            break;
        default:
            snprintf(msg, sizeof(msg),
                     "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"o-%d\",\"amount\":%d.13,"
                     "\"currency\":\"EUR\"}",
                     i, 1 + i % 50);
            break;
        }
        cmd_add(&b, "PUBLISH payment:%s %s", POS_FIX_TID, msg);
    }
    /* Messages are handled in order: once this one is answered, so are all. */
    cmd_add(&b, "PUBLISH payment:%s %s", POS_FIX_TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"m-end\",\"amount\":3.13,"
            "\"currency\":\"EUR\"}");
    redisContext *cloud = pos_test_redis_connect(&f->redis);
    assert_non_null(cloud);
    uint64_t t0 = pos_test_now_ms();
    pipe_run(cloud, &b, 60000, &res);
    uint64_t end = pos_test_now_ms() + 120000;
    while (pos_answers_count(&ans, "m-end", POS_ANS_PROCESSING) +
                   pos_answers_count(&ans, "m-end", POS_ANS_REJECTED) ==
               0 &&
           pos_test_now_ms() < end) {
        pos_test_sleep_ms(20);
    }
    bool end_answered = pos_answers_count(&ans, "m-end", POS_ANS_PROCESSING) +
                            pos_answers_count(&ans, "m-end", POS_ANS_REJECTED) >
                        0;
    /* Settled (declined, or refused) before the kill, so the restart has
     * nothing to recover but the records. */
    bool end_settled = pos_answers_count(&ans, "m-end", POS_ANS_REJECTED) > 0 ||
                       pos_answers_wait(&ans, "m-end", POS_ANS_DECLINED, 1, 30000);
    printf("double charge: %d other messages handled in %llu ms\n", sz.others,
           (unsigned long long)(pos_test_now_ms() - t0));

    assert_int_equal(pos_test_agent_stop(&f->agent, SIGKILL, 5000), 128 + SIGKILL);
    start_agent(f);
    unsigned seen = tx_a_answers(&ans);
    publish_payment(f, TX_A_REQUEST);
    /* The replay is answered (its recorded state or duplicate) ... */
    end = pos_test_now_ms() + 10000;
    while (tx_a_answers(&ans) == seen && pos_test_now_ms() < end) {
        pos_test_sleep_ms(20);
    }
    unsigned replay_answers = tx_a_answers(&ans) - seen;
    printf("double charge: tx-A answers in all: %u PROCESSING, %u REJECTED, %u APPROVED, %u "
           "DECLINED, %u COMPLETED\n",
           pos_answers_count(&ans, "tx-A", POS_ANS_PROCESSING),
           pos_answers_count(&ans, "tx-A", POS_ANS_REJECTED),
           pos_answers_count(&ans, "tx-A", POS_ANS_APPROVED),
           pos_answers_count(&ans, "tx-A", POS_ANS_DECLINED),
           pos_answers_count(&ans, "tx-A", POS_ANS_COMPLETED));
    /* ... and with the pinpad answering at once, a charge would be here by now. */
    pos_test_sleep_ms(2000);

    pos_watch_check(&c, end_answered && end_settled && res.missing == 0,
                    "the %d other messages were all sent and handled before the kill", sz.others);
    pos_watch_check(&c, replay_answers > 0, "the replay of tx-A was answered (%u messages)",
                    replay_answers);
    pos_watch_check(&c, pos_answers_count(&ans, "tx-A", POS_ANS_PROCESSING) == 1,
                    "tx-A went to the pinpad once: %u PAYMENT_PROCESSING",
                    pos_answers_count(&ans, "tx-A", POS_ANS_PROCESSING));
    pos_watch_check(&c, pos_fix_charges(f) == 1, "one charge in all: %u", pos_fix_charges(f));
    pos_answers_stop(&ans);
    redisFree(cloud);
    free(b.buf);
    pos_watch_verdict(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_payment_burst),
        POS_FIX_TEST(test_local_burst),
        POS_FIX_TEST(test_never_charge_twice),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* POS_TEST_FILTER=test_local_burst runs one of them. */
    pos_fix_filters_from_env();
    return cmocka_run_group_tests_name("burst", tests, NULL, NULL);
}
