/*
 * The payment journal on a real LMDB store in a temporary directory:
 * put/replace/get, listing in first-recorded order across reopen (what
 * pos_payment_sm_restore() is fed), pruning of finished records (live
 * ones never go), the seen-id set and its time window, the record codec, and a full
 * store reported as -ENOSPC.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/payment/journal.h"
#include "platform/clock.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "tests/support/fs.h"
#include "tests/support/store.h"

#define MB (1024u * 1024u)

static pos_store_t st;
static pos_journal_t jn;

static void open_default(void);
static void close_all(void);
static pos_test_store_fixture_t fx = {"test_journal", open_default, close_all, ""};

static void open_all(uint64_t map, size_t max_final, size_t max_seen)
{
    pos_test_store_open(&st, fx.dir, map);
    pos_journal_config_t jc = {.max_final = max_final, .max_seen = max_seen};
    assert_int_equal(pos_journal_open(&jn, &st, &jc), 0);
}

static void close_all(void)
{
    pos_journal_close(&jn);
    pos_store_close(&st);
}

/* The store and the module at their default sizes, for each test. */
static void open_default(void)
{
    open_all(8 * MB, 0, 0);
}

static pos_payment_record_t record(const char *tx, pos_payment_state_t state)
{
    pos_payment_record_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.transaction_id, sizeof(r.transaction_id), "%s", tx);
    r.state = state;
    r.amount_minor = 1234;
    memcpy(r.currency.alpha, "EUR", 4);
    r.currency.numeric = 978;
    r.currency.digits = 2;
    return r;
}

static void assert_record_equal(const pos_payment_record_t *a, const pos_payment_record_t *b)
{
    assert_string_equal(a->transaction_id, b->transaction_id);
    assert_int_equal(a->state, b->state);
    assert_true(a->amount_minor == b->amount_minor);
    assert_string_equal(a->currency.alpha, b->currency.alpha);
    assert_int_equal(a->currency.numeric, b->currency.numeric);
    assert_int_equal(a->currency.digits, b->currency.digits);
    assert_string_equal(a->auth_code, b->auth_code);
    assert_string_equal(a->masked_pan, b->masked_pan);
    assert_string_equal(a->card_brand, b->card_brand);
    assert_string_equal(a->reason, b->reason);
    assert_int_equal(a->receipt_printed, b->receipt_printed);
}

typedef struct listing {
    int count;
    pos_payment_record_t recs[256];
} listing_t;

static int collect(void *ctx, const pos_payment_record_t *rec)
{
    listing_t *l = ctx;
    if (l->count < 256) {
        l->recs[l->count] = *rec;
    }
    l->count++;
    return 0;
}

static void test_put_replace_get(void **state)
{
    (void)state;
    pos_payment_record_t r = record("tx-1001", POS_PAY_STARTING);
    assert_int_equal(pos_journal_put(&jn, &r), 0);
    pos_payment_record_t got;
    assert_int_equal(pos_journal_get(&jn, "tx-1001", &got), 0);
    assert_record_equal(&got, &r);

    /* The state moves on: the record is replaced, not added. */
    r.state = POS_PAY_DONE;
    snprintf(r.auth_code, sizeof(r.auth_code), "A1B2C3");
    snprintf(r.masked_pan, sizeof(r.masked_pan), "411111******1111");
    snprintf(r.card_brand, sizeof(r.card_brand), "VISA");
    r.receipt_printed = true;
    assert_int_equal(pos_journal_put(&jn, &r), 0);
    assert_int_equal(pos_journal_get(&jn, "tx-1001", &got), 0);
    assert_record_equal(&got, &r);
    assert_int_equal(pos_journal_count(&jn), 1);

    /* A put also remembers the id as seen. */
    assert_true(pos_journal_seen_has(&jn, "tx-1001"));
    assert_int_equal(pos_journal_seen_count(&jn), 1);

    assert_int_equal(pos_journal_get(&jn, "tx-nope", &got), -ENOENT);
    assert_int_equal(pos_journal_delete(&jn, "tx-1001"), 0);
    assert_int_equal(pos_journal_delete(&jn, "tx-1001"), -ENOENT);
    assert_int_equal(pos_journal_get(&jn, "tx-1001", &got), -ENOENT);
    assert_int_equal(pos_journal_count(&jn), 0);
    assert_true(pos_journal_seen_has(&jn, "tx-1001")); /* seen outlives the record */
}

static void test_invalid_records(void **state)
{
    (void)state;
    pos_payment_record_t r = record("bad id with spaces", POS_PAY_STARTING);
    assert_int_equal(pos_journal_put(&jn, &r), -EINVAL);
    r = record("tx-1", POS_PAY_IDLE);
    assert_int_equal(pos_journal_put(&jn, &r), -EINVAL);
    r = record("tx-1", POS_PAY_STATE_COUNT);
    assert_int_equal(pos_journal_put(&jn, &r), -EINVAL);
    r = record("tx-1", POS_PAY_DONE);
    memset(r.reason, 'r', sizeof(r.reason)); /* not NUL-terminated */
    assert_int_equal(pos_journal_put(&jn, &r), -EINVAL);
    assert_int_equal(pos_journal_put(&jn, NULL), -EINVAL);
    assert_int_equal(pos_journal_seen_add(&jn, ""), -EINVAL);
    assert_false(pos_journal_seen_has(&jn, "tx-1"));
    assert_int_equal(pos_journal_count(&jn), 0);
}

static void test_list_order_across_reopen(void **state)
{
    (void)state;
    /* Recorded in this order; tx-c's later update keeps its place. */
    const char *ids[] = {"tx-c", "tx-a", "tx-b"};
    for (int i = 0; i < 3; i++) {
        pos_payment_record_t r = record(ids[i], POS_PAY_DECLINED);
        snprintf(r.reason, sizeof(r.reason), "declined");
        assert_int_equal(pos_journal_put(&jn, &r), 0);
    }
    pos_payment_record_t live = record("tx-c", POS_PAY_PROCESSING);
    assert_int_equal(pos_journal_put(&jn, &live), 0);

    close_all();
    open_all(8 * MB, 0, 0);
    listing_t l = {0};
    assert_int_equal(pos_journal_list(&jn, collect, &l), 3);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.recs[0].transaction_id, "tx-c");
    assert_int_equal(l.recs[0].state, POS_PAY_PROCESSING);
    assert_string_equal(l.recs[1].transaction_id, "tx-a");
    assert_string_equal(l.recs[1].reason, "declined");
    assert_string_equal(l.recs[2].transaction_id, "tx-b");
    assert_int_equal(pos_journal_count(&jn), 3);
    assert_int_equal(pos_journal_seen_count(&jn), 3);

    /* New records after a reopen come after the old ones. */
    pos_payment_record_t r = record("tx-0", POS_PAY_STARTING);
    assert_int_equal(pos_journal_put(&jn, &r), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(pos_journal_list(&jn, collect, &l), 4);
    assert_string_equal(l.recs[3].transaction_id, "tx-0");
}

/* What the agent does at start-up: feed every record to the state machine. */
static int restore_one(void *ctx, const pos_payment_record_t *rec)
{
    pos_payment_sm_t *sm = ctx;
    pos_payment_actions_t out;
    assert_int_equal(pos_payment_sm_restore(sm, rec, &out), 0);
    return 0;
}

static void test_restore_into_state_machine(void **state)
{
    (void)state;
    pos_payment_record_t done = record("tx-1", POS_PAY_DONE);
    done.receipt_printed = true;
    snprintf(done.auth_code, sizeof(done.auth_code), "OK1");
    snprintf(done.masked_pan, sizeof(done.masked_pan), "411111******1111");
    assert_int_equal(pos_journal_put(&jn, &done), 0);
    pos_payment_record_t inflight = record("tx-2", POS_PAY_PROCESSING);
    assert_int_equal(pos_journal_put(&jn, &inflight), 0);
    close_all();
    open_all(8 * MB, 0, 0);
    static pos_payment_sm_t sm;
    pos_payment_sm_init(&sm, NULL);
    assert_int_equal(pos_journal_list(&jn, restore_one, &sm), 2);
    pos_payment_state_t s;
    assert_int_equal(pos_payment_sm_lookup(&sm, "tx-1", &s), 0);
    assert_int_equal(s, POS_PAY_DONE);
    assert_int_equal(pos_payment_sm_lookup(&sm, "tx-2", &s), 0);
    assert_int_equal(s, POS_PAY_UNKNOWN); /* interrupted: never charged again */
}

static void test_prune_keeps_live(void **state)
{
    (void)state;
    close_all();
    open_all(8 * MB, 10, 0);
    pos_payment_record_t live = record("tx-live", POS_PAY_PROCESSING);
    assert_int_equal(pos_journal_put(&jn, &live), 0);
    for (int i = 0; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof(id), "tx-%03d", i);
        pos_payment_record_t r = record(id, POS_PAY_DONE);
        assert_int_equal(pos_journal_put(&jn, &r), 0);
    }
    /* Pruned in chunks: never more than max_final + 64 finished records, + the live one. */
    assert_true(pos_journal_count(&jn) <= 10 + 64 + 1);
    listing_t l = {0};
    assert_true(pos_journal_list(&jn, collect, &l) > 0);
    assert_string_equal(l.recs[0].transaction_id, "tx-live");
    /* The newest finished one is kept, the oldest went. */
    pos_payment_record_t got;
    assert_int_equal(pos_journal_get(&jn, "tx-099", &got), 0);
    assert_int_equal(pos_journal_get(&jn, "tx-000", &got), -ENOENT);
    assert_int_equal(pos_journal_get(&jn, "tx-live", &got), 0);
    /* All ids are still remembered as seen. */
    assert_true(pos_journal_seen_has(&jn, "tx-000"));
    close_all();
    open_all(8 * MB, 10, 0);
    assert_int_equal(pos_journal_count(&jn), (uint64_t)l.count);
}

/* What the state machine records for a cancel of an id never requested
 * here: cancelled, no money. */
static pos_payment_record_t early_cancel(const char *tx)
{
    pos_payment_record_t r = record(tx, POS_PAY_CANCELLED);
    r.amount_minor = 0;
    memset(&r.currency, 0, sizeof(r.currency));
    return r;
}

/*
 * Cancels of ids never requested are not requests: with dedup_max_ids
 * 1000, 1000 of them for made-up ids filled the seen set and the next
 * genuine PAYMENT_REQUESTED was refused "unavailable". They are recorded
 * (a request that comes after its cancel is answered from the record) but
 * take no room in the seen set.
 */
static void test_early_cancels_not_seen(void **state)
{
    (void)state;
    close_all();
    open_all(8 * MB, 0, 20);
    for (int i = 0; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof(id), "c-%03d", i);
        pos_payment_record_t c = early_cancel(id);
        assert_int_equal(pos_journal_put(&jn, &c), 0);
    }
    assert_int_equal(pos_journal_seen_count(&jn), 0);
    assert_false(pos_journal_seen_has(&jn, "c-099"));
    pos_payment_record_t got;
    assert_int_equal(pos_journal_get(&jn, "c-099", &got), 0);
    assert_int_equal(got.state, POS_PAY_CANCELLED);
    assert_true(pos_journal_seen_room(&jn, pos_clock_wall_ms()));
    /* The payments still have the whole set. */
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof(id), "tx-%02d", i);
        pos_payment_record_t r = record(id, POS_PAY_STARTING);
        assert_int_equal(pos_journal_put(&jn, &r), 0);
    }
    assert_int_equal(pos_journal_seen_count(&jn), 20);
    /* A payment's own cancel (it has an amount) is a payment's record. */
    pos_payment_record_t paid = record("tx-00", POS_PAY_CANCELLED);
    assert_int_equal(pos_journal_put(&jn, &paid), 0);
    assert_true(pos_journal_seen_has(&jn, "tx-00"));
}

/*
 * They are kept to a bound of their own (POS_JOURNAL_DEFAULT_CANCELS, the
 * newest): a flood of them neither grows the journal without end nor
 * pushes out the records of finished payments, which answer a repeated
 * request or cancel with the payment's state.
 */
static void test_early_cancels_bounded_apart(void **state)
{
    (void)state;
    close_all();
    open_all(8 * MB, 10, 0);
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof(id), "tx-%d", i);
        pos_payment_record_t r = record(id, POS_PAY_DONE);
        assert_int_equal(pos_journal_put(&jn, &r), 0);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 400; i++) {
            char id[32];
            snprintf(id, sizeof(id), "c-%d-%03d", round, i);
            pos_payment_record_t c = early_cancel(id);
            assert_int_equal(pos_journal_put(&jn, &c), 0);
        }
        pos_payment_record_t got;
        for (int i = 0; i < 5; i++) {
            char id[32];
            snprintf(id, sizeof(id), "tx-%d", i);
            assert_int_equal(pos_journal_get(&jn, id, &got), 0);
            assert_int_equal(got.state, POS_PAY_DONE);
        }
        /* Pruned in chunks, as the payments' records are. */
        assert_true(pos_journal_count(&jn) <= 5 + POS_JOURNAL_DEFAULT_CANCELS + 64);
        char newest[32];
        snprintf(newest, sizeof(newest), "c-%d-399", round);
        assert_int_equal(pos_journal_get(&jn, newest, &got), 0);
        assert_int_equal(pos_journal_get(&jn, "c-0-000", &got), -ENOENT);
        /* The counts hold across a reopen (the second round prunes by them). */
        close_all();
        open_all(8 * MB, 10, 0);
    }
    /* And the payments keep their own bound against each other. */
    for (int i = 5; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof(id), "tx-%d", i);
        pos_payment_record_t r = record(id, POS_PAY_DONE);
        assert_int_equal(pos_journal_put(&jn, &r), 0);
    }
    pos_payment_record_t got;
    assert_int_equal(pos_journal_get(&jn, "tx-0", &got), -ENOENT);
    assert_int_equal(pos_journal_get(&jn, "tx-99", &got), 0);
    assert_int_equal(pos_journal_get(&jn, "c-1-399", &got), 0);
    assert_true(pos_journal_count(&jn) <= 10 + 64 + POS_JOURNAL_DEFAULT_CANCELS + 64);
}

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

#define HOUR_MS (3600ull * 1000u)
#define DAY_MS  (24u * HOUR_MS)

static void open_clocked(size_t max_seen)
{
    close_all();
    pos_test_store_open(&st, fx.dir, 8 * MB);
    pos_journal_config_t jc = {.max_seen = max_seen, .now_ms = fake_clock};
    assert_int_equal(pos_journal_open(&jn, &st, &jc), 0);
}

static void add_ids(const char *prefix, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%02d", prefix, i);
        assert_int_equal(pos_journal_seen_add(&jn, id), 0);
    }
}

static void expect_ids(const char *prefix, int from, int to, bool seen)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%02d", prefix, i);
        assert_int_equal(pos_journal_seen_has(&jn, id), seen);
    }
}

/* Within the window an id is never forgotten, whatever comes after it:
 * a full set refuses a new id instead. */
static void test_seen_window_never_forgets_inside(void **state)
{
    uint64_t first;

    (void)state;
    fake_now = 1764412800000ull;
    open_clocked(10);
    add_ids("tx-", 0, 10);
    /* A known id keeps its first time. */
    fake_now += HOUR_MS;
    assert_int_equal(pos_journal_seen_add(&jn, "tx-00"), 0);
    assert_int_equal(pos_journal_seen_at(&jn, "tx-00", &first), 0);
    assert_true(first == fake_now - HOUR_MS);
    /* Full of ids inside the window: a new one is refused, none forgotten. */
    assert_false(pos_journal_seen_room(&jn, fake_now));
    assert_int_equal(pos_journal_seen_add(&jn, "tx-new"), -EOVERFLOW);
    assert_false(pos_journal_seen_has(&jn, "tx-new"));
    expect_ids("tx-", 0, 10, true);
    assert_int_equal(pos_journal_seen_count(&jn), 10);
    /* Still so a minute before the window ends, and across a reopen. */
    fake_now += POS_JOURNAL_DEFAULT_WINDOW_MS - HOUR_MS - 60000u;
    open_clocked(10);
    assert_false(pos_journal_seen_room(&jn, fake_now));
    assert_int_equal(pos_journal_seen_add(&jn, "tx-new"), -EOVERFLOW);
    expect_ids("tx-", 0, 10, true);
    /* Past the window: room again, and only the expired go. */
    fake_now += 60001u;
    assert_true(pos_journal_seen_room(&jn, fake_now));
    assert_int_equal(pos_journal_seen_add(&jn, "tx-new"), 0);
    expect_ids("tx-", 0, 10, false);
    assert_true(pos_journal_seen_has(&jn, "tx-new"));
    assert_int_equal(pos_journal_seen_count(&jn), 1);
}

/* Ids of different ages: a prune forgets exactly those past the window. */
static void test_seen_window_prune_by_age(void **state)
{
    (void)state;
    fake_now = 1764412800000ull;
    open_clocked(0);
    add_ids("old-", 0, 5);
    fake_now += 3 * DAY_MS;
    add_ids("mid-", 0, 5);
    fake_now += 4 * DAY_MS + 1; /* the "old-" ids are now 7 days and 1 ms old */
    assert_int_equal(pos_journal_prune(&jn), 0);
    expect_ids("old-", 0, 5, false);
    expect_ids("mid-", 0, 5, true);
    assert_int_equal(pos_journal_seen_count(&jn), 5);
    /* A payment's record keeps its id seen as well (put = record + seen). */
    pos_payment_record_t r = record("tx-pay", POS_PAY_DONE);
    assert_int_equal(pos_journal_put(&jn, &r), 0);
    assert_true(pos_journal_seen_has(&jn, "tx-pay"));
    /* The defaults: a busy till's week (10,000 payments a day) fits. */
    assert_true(POS_JOURNAL_DEFAULT_SEEN >= 70000u);
    assert_true(POS_JOURNAL_DEFAULT_WINDOW_MS == 168u * HOUR_MS);
}

/* A store written before the window (seen ids without a time) is
 * converted at open: every id is kept a whole window from then. */
static void test_seen_old_layout_converted(void **state)
{
    MDB_txn *txn;

    (void)state;
    fake_now = 1764412800000ull;
    open_clocked(0);
    assert_int_equal(pos_store_txn_begin(&st, 0, &txn), 0);
    for (int i = 0; i < 3; i++) {
        unsigned char ik[32] = "i", ok[9] = "o", seq[8] = {0};
        char id[24];
        snprintf(id, sizeof(id), "tx-o%d", i);
        memcpy(ik + 1, id, strlen(id));
        seq[7] = (unsigned char)(i + 1);
        memcpy(ok + 1, seq, 8);
        MDB_val k1 = {1 + strlen(id), ik}, v1 = {8, seq};
        MDB_val k2 = {9, ok}, v2 = {strlen(id), id};
        assert_int_equal(mdb_put(txn, st.dbi[POS_DB_SEEN], &k1, &v1, 0), 0);
        assert_int_equal(mdb_put(txn, st.dbi[POS_DB_SEEN], &k2, &v2, 0), 0);
    }
    assert_int_equal(pos_store_txn_commit(txn), 0);
    fake_now += DAY_MS;
    open_clocked(0);
    assert_int_equal(pos_journal_seen_count(&jn), 3);
    for (int i = 0; i < 3; i++) {
        char id[24];
        uint64_t first = 0;
        snprintf(id, sizeof(id), "tx-o%d", i);
        assert_int_equal(pos_journal_seen_at(&jn, id, &first), 0);
        assert_true(first == fake_now);
    }
    /* Kept a whole window from the conversion, gone after it. */
    fake_now += POS_JOURNAL_DEFAULT_WINDOW_MS - 1;
    assert_int_equal(pos_journal_prune(&jn), 0);
    assert_true(pos_journal_seen_has(&jn, "tx-o0"));
    fake_now += 2;
    assert_int_equal(pos_journal_prune(&jn), 0);
    assert_false(pos_journal_seen_has(&jn, "tx-o0"));
}

static void test_codec(void **state)
{
    (void)state;
    pos_payment_record_t r = record("tx-9:z.Y_", POS_PAY_APPROVED);
    snprintf(r.auth_code, sizeof(r.auth_code), "0123456789abcdef");
    snprintf(r.masked_pan, sizeof(r.masked_pan), "411111*********1111");
    memset(r.card_brand, 'B', POS_MSG_BRAND_MAX); /* the longest brand */
    r.card_brand[POS_MSG_BRAND_MAX] = '\0';
    snprintf(r.reason, sizeof(r.reason), "x");
    r.amount_minor = -5;
    unsigned char buf[POS_JOURNAL_RECORD_MAX];
    int n = pos_journal_encode(&r, 77, buf, sizeof(buf));
    assert_true(n > 0 && n <= POS_JOURNAL_RECORD_MAX);
    pos_payment_record_t back;
    uint64_t seq;
    assert_int_equal(pos_journal_decode(buf, (size_t)n, &back, &seq), 0);
    assert_int_equal(seq, 77);
    assert_record_equal(&back, &r);
    /* Truncated, extended, wrong version, bad state, NUL in a string. */
    assert_int_equal(pos_journal_decode(buf, (size_t)n - 1, &back, &seq), -EBADMSG);
    assert_int_equal(pos_journal_decode(buf, (size_t)n + 1, &back, &seq), -EBADMSG);
    buf[0] = 9;
    assert_int_equal(pos_journal_decode(buf, (size_t)n, &back, &seq), -EBADMSG);
    buf[0] = 1;
    buf[1] = POS_PAY_STATE_COUNT;
    assert_int_equal(pos_journal_decode(buf, (size_t)n, &back, &seq), -EBADMSG);
    buf[1] = POS_PAY_APPROVED;
    buf[27] = '\0'; /* first byte of the transaction id */
    assert_int_equal(pos_journal_decode(buf, (size_t)n, &back, &seq), -EBADMSG);
    /* A record of a cancel never requested: no currency. */
    pos_payment_record_t c = record("tx-c", POS_PAY_CANCELLED);
    memset(&c.currency, 0, sizeof(c.currency));
    c.amount_minor = 0;
    n = pos_journal_encode(&c, 1, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(pos_journal_decode(buf, (size_t)n, &back, NULL), 0);
    assert_string_equal(back.currency.alpha, "");
    assert_true(pos_payment_state_final(POS_PAY_CANCELLED));
    assert_false(pos_payment_state_final(POS_PAY_PRINTING));
}

static void test_full_store_is_enospc(void **state)
{
    (void)state;
    close_all();
    open_all(1 * MB, 0, 0);
    /* Payment outcomes in the outbox fill the map; nothing may give way. */
    pos_outbox_t ob;
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    pos_test_store_fill(&ob);
    /* Small records still fit in partly filled pages for a while; then -ENOSPC. */
    int rc = 0;
    int stored = 0;
    for (int i = 0; i < 10000 && rc == 0; i++) {
        char tx[32];
        snprintf(tx, sizeof(tx), "tx-%05d", i);
        pos_payment_record_t r = record(tx, POS_PAY_STARTING);
        rc = pos_journal_put(&jn, &r);
        stored += rc == 0;
    }
    assert_int_equal(rc, -ENOSPC);
    /* Everything that was acknowledged is there. */
    listing_t l = {0};
    assert_int_equal(pos_journal_list(&jn, collect, &l), stored);
    pos_outbox_close(&ob);
}

int main(void)
{
#define T(f)                                                                                       \
    cmocka_unit_test_prestate_setup_teardown(f, pos_test_store_setup, pos_test_store_teardown, &fx)
    const struct CMUnitTest tests[] = {
        T(test_put_replace_get),
        T(test_invalid_records),
        T(test_list_order_across_reopen),
        T(test_restore_into_state_machine),
        T(test_prune_keeps_live),
        T(test_early_cancels_not_seen),
        T(test_early_cancels_bounded_apart),
        T(test_seen_window_never_forgets_inside),
        T(test_seen_window_prune_by_age),
        T(test_seen_old_layout_converted),
        cmocka_unit_test(test_codec),
        T(test_full_store_is_enospc),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
