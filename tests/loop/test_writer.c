/*
 * The store writer (agent/store/writer.c) with the outbox and the payment
 * journal on a real LMDB store and a real libuv loop: results come back in
 * submission order, plugged submissions share one commit, reads on the
 * loop see what is queued, the loop cannot write itself, one failing
 * write leaves the rest of its group alone, and closing loses nothing.
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

#include <cmocka.h>
#include <uv.h>

#include "agent/payment/journal.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "agent/store/writer.h"
#include "tests/support/fs.h"
#include "tests/support/loop.h"
#include "tests/support/store.h"

#define MB (1024u * 1024u)

static pos_store_t st;
static pos_outbox_t ob;
static pos_journal_t jn;
static pos_store_writer_t w;
static uv_loop_t loop;
static bool writer_on;

static void open_all(void);
static void close_all(void);
static pos_test_store_fixture_t fx = {"test_writer", open_all, close_all, ""};

static void open_all(void)
{
    pos_test_store_open(&st, fx.dir, 16 * MB);
}

/* The outbox and the journal on a started writer, with outbox bounds. */
static void start(uint64_t max_entries)
{
    pos_outbox_config_t oc = {.max_entries = max_entries};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pos_outbox_open(&ob, &st, &oc), 0);
    assert_int_equal(pos_journal_open(&jn, &st, NULL), 0);
    assert_int_equal(pos_store_writer_start(&w, &loop, &st), 0);
    pos_outbox_set_writer(&ob, &w);
    pos_journal_set_writer(&jn, &w);
    writer_on = true;
}

static void stop(void)
{
    if (!writer_on) {
        return;
    }
    writer_on = false;
    pos_outbox_set_writer(&ob, NULL);
    pos_journal_set_writer(&jn, NULL);
    pos_store_writer_close(&w, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    pos_journal_close(&jn);
    pos_outbox_close(&ob);
}

static void close_all(void)
{
    stop();
    pos_store_close(&st);
}

/* What the callbacks saw. */
typedef struct seen {
    int calls;
    int failed;
    uint64_t ids[4096];
    int status[4096];
} seen_t;

static seen_t seen;

static void on_appended(void *ctx, int status, const pos_outbox_entry_t *e)
{
    seen_t *s = ctx;
    if (s->calls < 4096) {
        s->ids[s->calls] = e->id;
        s->status[s->calls] = status;
    }
    s->calls++;
    s->failed += status != 0;
}

/* Every write submitted has come back applied (its last call). Through
 * the write-ahead log that is a commit after done(). */
static bool all_applied(const void *arg)
{
    return pos_store_writer_outstanding(arg) == 0;
}

static void wait_applied(void)
{
    assert_true(pos_test_loop_until(&loop, all_applied, &w, 10000));
}

static uint64_t append(const char *payload, bool payment)
{
    pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                            .is_payment = payment,
                            .channel = "ch",
                            .channel_len = 2,
                            .payload = payload,
                            .payload_len = strlen(payload)};
    uint64_t id = 0;
    assert_int_equal(pos_outbox_append_async(&ob, &e, &id, on_appended, &seen), 0);
    return id;
}

static void test_order_and_grouping(void **state)
{
    pos_store_writer_stats_t ws;

    (void)state;
    memset(&seen, 0, sizeof(seen));
    start(0);
    /* The loop may not write on its own once the writer serves the store. */
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(&st, 0, &txn), -EDEADLK);
    uint64_t first = append("m0", false);
    for (int i = 1; i < 1000; i++) {
        char p[16];
        snprintf(p, sizeof(p), "m%d", i);
        assert_true(append(p, false) == first + (uint64_t)i); /* ids at once, in order */
    }
    assert_true(pos_test_loop_until_int(&loop, &seen.calls, 1000, 10000));
    wait_applied();
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(seen.status[i], 0);
        assert_true(seen.ids[i] == first + (uint64_t)i);
    }
    pos_store_writer_stats(&w, &ws);
    printf("    1,000 appends: %llu commits, largest %llu\n", (unsigned long long)ws.groups,
           (unsigned long long)ws.largest);
    assert_true(ws.groups < 1000); /* grouped while a commit ran */
    /* Plugged: one commit for the lot. */
    uint64_t groups = ws.groups;
    pos_store_writer_plug(&w);
    for (int i = 0; i < 50; i++) {
        append("plugged", false);
    }
    pos_store_writer_unplug(&w);
    assert_true(pos_test_loop_until_int(&loop, &seen.calls, 1050, 10000));
    wait_applied();
    pos_store_writer_stats(&w, &ws);
    assert_true(ws.groups == groups + 1);
    assert_true(ws.largest >= 50);
    /* Everything is there, in order. */
    pos_outbox_batch_t b;
    assert_int_equal(pos_outbox_peek(&ob, 2000, &b), 1050);
    assert_int_equal(b.entries[999].payload_len, 4);
    assert_memory_equal(b.entries[999].payload, "m999", 4);
    assert_memory_equal(b.entries[1000].payload, "plugged", 7);
    pos_outbox_batch_free(&b);
}

/* Writes queued and not yet applied already count for reads on the loop. */
static bool journal_applied(const void *arg)
{
    return pos_journal_count(arg) == 1;
}

static void test_reads_see_queued_writes(void **state)
{
    pos_payment_record_t r, got;

    (void)state;
    start(0);
    memset(&r, 0, sizeof(r));
    snprintf(r.transaction_id, sizeof(r.transaction_id), "tx-q");
    r.state = POS_PAY_STARTING;
    r.amount_minor = 100;
    memcpy(r.currency.alpha, "EUR", 4);
    r.currency.digits = 2;
    r.currency.numeric = 978;
    pos_store_writer_plug(&w); /* held back: nothing is applied yet */
    assert_int_equal(pos_journal_put_async(&jn, &r, NULL, NULL), 0);
    assert_true(pos_journal_seen_has(&jn, "tx-q"));
    assert_int_equal(pos_journal_get(&jn, "tx-q", &got), 0);
    assert_int_equal(got.state, POS_PAY_STARTING);
    assert_int_equal(pos_journal_count(&jn), 0); /* counted once applied */
    pos_store_writer_unplug(&w);
    assert_true(pos_test_loop_until(&loop, journal_applied, &jn, 10000));
    assert_true(pos_journal_seen_has(&jn, "tx-q"));
}

/* One write refused (the outbox's bound is all payment outcomes) fails
 * alone: the rest of its commit stands. */
/* Ends the plugged group that holds "P1", "P2" and "P3" (with an outbox
 * bound of 2) and checks that the third alone was refused. */
static void three_one_refused(void)
{
    pos_store_writer_unplug(&w);
    assert_true(pos_test_loop_until_int(&loop, &seen.calls, 3, 10000));
    wait_applied();
    assert_int_equal(seen.status[0], 0);
    assert_int_equal(seen.status[1], 0);
    assert_int_equal(seen.status[2], -ENOSPC);
}

static void test_one_failure_in_a_group(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof(seen));
    start(2);
    pos_store_writer_plug(&w);
    append("P1", true);
    append("P2", true);
    append("P3", true); /* over the bound, nothing to drop */
    three_one_refused();
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 2); /* the refused one is not counted, applied or not */
}

/* The group runs in one nested transaction; when an operation in its
 * middle fails, the group runs again one operation at a time: those
 * before it stand once (their counters not counted twice), it fails
 * alone, those after it stand. Read back after a reopen as well. */
static void test_failure_in_the_middle_of_a_group(void **state)
{
    pos_payment_record_t r, got;

    (void)state;
    memset(&seen, 0, sizeof(seen));
    memset(&r, 0, sizeof(r));
    snprintf(r.transaction_id, sizeof(r.transaction_id), "tx-mid");
    r.state = POS_PAY_STARTING;
    r.amount_minor = 250;
    memcpy(r.currency.alpha, "EUR", 4);
    r.currency.digits = 2;
    r.currency.numeric = 978;
    start(2);
    pos_store_writer_plug(&w);
    uint64_t id1 = append("P1", true);
    uint64_t id2 = append("P2", true);
    append("P3", true); /* over the bound, nothing to drop: refused */
    assert_int_equal(pos_journal_put_async(&jn, &r, NULL, NULL), 0);
    three_one_refused();
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.payment, 2);
    assert_int_equal(pos_journal_count(&jn), 1);
    assert_int_equal(pos_journal_get(&jn, "tx-mid", &got), 0);

    /* What the store holds, read afresh. */
    stop();
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    assert_int_equal(pos_journal_open(&jn, &st, NULL), 0);
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 2);
    pos_outbox_batch_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(pos_outbox_peek_from(&ob, 0, 8, &b), 2);
    assert_int_equal(b.entries[0].id, id1);
    assert_int_equal(b.entries[1].id, id2);
    pos_outbox_batch_free(&b);
    assert_int_equal(pos_journal_count(&jn), 1);
    assert_int_equal(pos_journal_get(&jn, "tx-mid", &got), 0);
    assert_int_equal(got.amount_minor, 250);
    pos_journal_close(&jn);
    pos_outbox_close(&ob);
}

/* Closing finishes what is queued; what its callbacks queue runs at once. */
static int requeued;

static void on_appended_requeue(void *ctx, int status, const pos_outbox_entry_t *e)
{
    (void)e;
    on_appended(ctx, status, e);
    if (requeued == 0) {
        requeued = 1;
        pos_outbox_entry_t more = {.kind = POS_OUTBOX_PUBLISH,
                                   .channel = "ch",
                                   .channel_len = 2,
                                   .payload = "late",
                                   .payload_len = 4};
        uint64_t id;
        assert_int_equal(pos_outbox_append_async(&ob, &more, &id, on_appended, ctx), 0);
    }
}

static void test_close_loses_nothing(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof(seen));
    requeued = 0;
    start(0);
    for (int i = 0; i < 200; i++) {
        pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                                .channel = "ch",
                                .channel_len = 2,
                                .payload = "x",
                                .payload_len = 1};
        uint64_t id;
        assert_int_equal(
            pos_outbox_append_async(&ob, &e, &id, i == 199 ? on_appended_requeue : on_appended,
                                    &seen),
            0);
    }
    stop(); /* without running the loop first */
    assert_int_equal(seen.calls, 201);
    assert_int_equal(seen.failed, 0);
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 201);
}

/* Ordered operations (as the outbox's appends are) that record the order in
 * which they took effect; refuse, the first times, for room. */
typedef struct order_op {
    pos_store_op_t op;
    int n;      /* its place in submission order */
    int refuse; /* refusals for room left */
    int status; /* what done() said; 1: not yet */
} order_op_t;

static int order_seq[8];
static int order_len;

static int order_apply(pos_store_op_t *op, MDB_txn *txn)
{
    order_op_t *o = op->ctx;
    (void)txn;
    if (o->refuse > 0) {
        o->refuse--;
        return -ENOSPC;
    }
    order_seq[order_len++] = o->n; /* the writer thread; read once both are done */
    return 0;
}

static void order_undo(pos_store_op_t *op)
{
    (void)op;
    order_len--; /* undone: its effect never was */
}

static int order_recover(pos_store_op_t *op)
{
    (void)op;
    return 1; /* room made */
}

static void order_done(pos_store_op_t *op)
{
    order_op_t *o = op->ctx;
    o->status = op->status;
}

static bool order_both_done(const void *arg)
{
    const order_op_t *o = arg;
    return o[0].status != 1 && o[1].status != 1;
}

/*
 * Two ordered appends in one group, the first refused for room: the second
 * must not take effect alone before it. It did: run alone, it was durable
 * (and sent) first, and the first's retry then found a larger key in place
 * (MDB_APPEND: EEXIST), so an earlier outbox message was lost for good.
 */
static void test_room_refusal_keeps_order(void **state)
{
    order_op_t o[2];

    (void)state;
    start(0);
    order_len = 0;
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 2; i++) {
        o[i].n = i;
        o[i].status = 1;
        o[i].op.apply = order_apply;
        o[i].op.undo = order_undo;
        o[i].op.recover = order_recover;
        o[i].op.done = order_done;
        o[i].op.ctx = &o[i];
        o[i].op.ordered = true;
    }
    o[0].refuse = 1;
    pos_store_writer_plug(&w);
    pos_store_writer_submit(&w, &o[0].op);
    pos_store_writer_submit(&w, &o[1].op);
    pos_store_writer_unplug(&w);
    assert_true(pos_test_loop_until(&loop, order_both_done, o, 10000));
    wait_applied();
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[1].status, 0);
    assert_int_equal(order_len, 2);
    assert_int_equal(order_seq[0], 0);
    assert_int_equal(order_seq[1], 1);
}

/* A put of a value of fill_size bytes under a key of its own. */
typedef struct fill_op {
    pos_store_op_t op;
    unsigned key;
    int status; /* what done() said; 1: not yet */
} fill_op_t;

static size_t fill_size;

static int fill_apply(pos_store_op_t *op, MDB_txn *txn)
{
    fill_op_t *o = op->ctx;
    static unsigned char value[16384];
    char key[16];
    snprintf(key, sizeof(key), "k%08u", o->key);
    MDB_val k = {strlen(key), key};
    MDB_val v = {fill_size, value};
    return pos_store_errno(pos_store_put(&st, txn, POS_DB_CACHE, &k, &v, 0));
}

static int fill_recover(pos_store_op_t *op)
{
    (void)op;
    return 0; /* no room to make */
}

static void fill_done(pos_store_op_t *op)
{
    fill_op_t *o = op->ctx;
    o->status = op->status;
}

/*
 * A store filled to the last page, one put a group, with values of
 * several sizes: the group that meets the end is refused for room, and
 * the write-ahead log stays on. The first logged group of a batch also
 * rewrites walseq, which takes a page of its own: refused there, the
 * batch broke and the log was turned off for the rest of the run (every
 * commit flushed twice).
 */
static bool fill_all_done(const void *arg)
{
    const fill_op_t *o = arg;
    for (int i = 0; i < 8; i++) {
        if (o[i].status == 1) {
            return false;
        }
    }
    return true;
}

static void test_full_map_keeps_log(void **state)
{
    (void)state;
    stop();
    pos_store_close(&st);
    for (unsigned i = 0; i < 40; i++) {
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/full-%u", fx.dir, i);
        assert_int_equal(mkdir(dir, 0700), 0);
        pos_test_store_open(&st, dir, 1 * MB);
        assert_true(st.wal_on);
        start(0);
        fill_size = 500 + i * 297;
        int refused = 0;
        for (unsigned n = 0; n < 4096 && refused == 0; n += 8) {
            fill_op_t o[8];
            memset(o, 0, sizeof(o));
            for (int j = 0; j < 8; j++) {
                o[j].key = n + (unsigned)j;
                o[j].status = 1;
                o[j].op.apply = fill_apply;
                o[j].op.recover = fill_recover;
                o[j].op.done = fill_done;
                o[j].op.ctx = &o[j];
                pos_store_writer_submit(&w, &o[j].op); /* eight groups, one batch */
            }
            assert_true(pos_test_loop_until(&loop, fill_all_done, o, 10000));
            wait_applied();
            for (int j = 0; j < 8; j++) {
                if (o[j].status == -ENOSPC) {
                    refused++;
                } else {
                    assert_int_equal(o[j].status, 0);
                }
            }
        }
        assert_true(refused > 0);
        assert_true(st.wal_on);
        assert_string_equal(st.wal_error, "");
        assert_int_equal(st.stuck_seq, 0);
        stop();
        pos_store_close(&st);
    }
    pos_test_store_open(&st, fx.dir, 16 * MB); /* for close_all */
}

int main(void)
{
#define T(f)                                                                                       \
    cmocka_unit_test_prestate_setup_teardown(f, pos_test_store_setup, pos_test_store_teardown, &fx)
    const struct CMUnitTest tests[] = {
        T(test_order_and_grouping),     T(test_reads_see_queued_writes),
        T(test_one_failure_in_a_group), T(test_failure_in_the_middle_of_a_group),
        T(test_close_loses_nothing),    T(test_room_refusal_keeps_order),
        T(test_full_map_keeps_log),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
