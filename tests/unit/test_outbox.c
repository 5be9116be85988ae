/*
 * The outbox on a real LMDB store in a temporary directory: FIFO order,
 * ack, ids monotonic across reopen, bounds by count and bytes, the drop
 * policy (oldest non-payment first, payment outcomes never), a full map,
 * and the "outboxId" stamp.
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

#include "agent/store/cache.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "tests/support/fs.h"
#include "tests/support/store.h"

#define MB (1024u * 1024u)

static pos_store_t st;
static pos_outbox_t ob;

static void open_default(void);
static void close_all(void);
static pos_test_store_fixture_t fx = {"test_outbox", open_default, close_all, ""};

static void open_all(uint64_t map, uint64_t max_entries, uint64_t max_bytes)
{
    pos_test_store_open(&st, fx.dir, map);
    pos_outbox_config_t oc = {.max_entries = max_entries, .max_bytes = max_bytes};
    assert_int_equal(pos_outbox_open(&ob, &st, &oc), 0);
}

static void close_all(void)
{
    pos_outbox_close(&ob);
    pos_store_close(&st);
}

/* The store and the module at their default sizes, for each test. */
static void open_default(void)
{
    open_all(8 * MB, 0, 0);
}

static uint64_t append(const char *channel, const char *payload, bool payment, int want_rc)
{
    pos_outbox_entry_t e = {
        .kind = POS_OUTBOX_PUBLISH,
        .is_payment = payment,
        .created_ms = 1764412800000ull,
        .channel = channel,
        .channel_len = strlen(channel),
        .payload = payload,
        .payload_len = strlen(payload),
    };
    uint64_t id = 0;
    assert_int_equal(pos_outbox_append(&ob, &e, &id), want_rc);
    return id;
}

/* Peeks everything and returns the payloads joined with ',' in buf. */
static size_t peek_all(char *buf, size_t len, uint64_t *ids)
{
    pos_outbox_batch_t b;
    int n = pos_outbox_peek(&ob, 100000, &b);
    assert_true(n >= 0);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < b.count; i++) {
        o += (size_t)snprintf(buf + o, len - o, "%s%.*s", i ? "," : "",
                              (int)b.entries[i].payload_len, (const char *)b.entries[i].payload);
        if (ids != NULL) {
            ids[i] = b.entries[i].id;
        }
        if (i > 0) {
            assert_true(b.entries[i].id > b.entries[i - 1].id);
        }
    }
    pos_outbox_batch_free(&b);
    return (size_t)n;
}

static void test_fifo_peek_ack(void **state)
{
    (void)state;
    uint64_t a = append("payment:T-0001", "m1", true, 0);
    uint64_t b = append("transaction:S-042", "m2", false, 0);
    pos_outbox_entry_t inc = {.kind = POS_OUTBOX_INCRBY,
                              .channel = "counter:x",
                              .channel_len = 9,
                              .payload = "1",
                              .payload_len = 1};
    uint64_t c;
    assert_int_equal(pos_outbox_append(&ob, &inc, &c), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    assert_int_equal(c, 3);

    pos_outbox_batch_t batch;
    assert_int_equal(pos_outbox_peek(&ob, 2, &batch), 2);
    assert_int_equal(batch.entries[0].id, 1);
    assert_true(batch.entries[0].is_payment);
    assert_int_equal(batch.entries[0].kind, POS_OUTBOX_PUBLISH);
    assert_int_equal(batch.entries[0].channel_len, 14);
    assert_memory_equal(batch.entries[0].channel, "payment:T-0001", 14);
    assert_memory_equal(batch.entries[0].payload, "m1", 2);
    assert_true(batch.entries[0].created_ms == 1764412800000ull);
    assert_int_equal(batch.entries[1].id, 2);
    assert_false(batch.entries[1].is_payment);
    pos_outbox_batch_free(&batch);
    pos_outbox_batch_free(&batch); /* twice is harmless */

    /* Ack out of order is allowed (by id); peek still returns the rest in order. */
    assert_int_equal(pos_outbox_ack(&ob, 2), 0);
    assert_int_equal(pos_outbox_ack(&ob, 2), -ENOENT);
    char buf[256];
    uint64_t ids[8];
    assert_int_equal(peek_all(buf, sizeof(buf), ids), 2);
    assert_string_equal(buf, "m1,1");
    assert_int_equal(ids[1], 3);
    assert_int_equal(pos_outbox_peek(&ob, 0, &batch), 0);

    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.bytes, 14 + 2 + 9 + 1);
    assert_int_equal(s.payment, 1);
    assert_int_equal(s.next_id, 4);
    assert_int_equal(s.dropped, 0);

    assert_int_equal(pos_outbox_ack(&ob, 1), 0);
    assert_int_equal(pos_outbox_ack(&ob, 3), 0);
    assert_int_equal(peek_all(buf, sizeof(buf), NULL), 0);
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.payment, 0);
}

static void test_arguments(void **state)
{
    (void)state;
    uint64_t id;
    pos_outbox_entry_t e = {.kind = POS_OUTBOX_KIND_COUNT, .channel = "c", .channel_len = 1};
    assert_int_equal(pos_outbox_append(&ob, &e, &id), -EINVAL);
    e.kind = POS_OUTBOX_OTHER;
    e.channel_len = 0;
    assert_int_equal(pos_outbox_append(&ob, &e, &id), -EINVAL);
    e.channel_len = POS_OUTBOX_CHANNEL_MAX + 1;
    assert_int_equal(pos_outbox_append(&ob, &e, &id), -EMSGSIZE);
    e.channel_len = 1;
    e.payload_len = 5;
    assert_int_equal(pos_outbox_append(&ob, &e, &id), -EINVAL); /* NULL payload */
    static char big[POS_OUTBOX_PAYLOAD_MAX + 1];
    e.payload = big;
    e.payload_len = sizeof(big);
    assert_int_equal(pos_outbox_append(&ob, &e, &id), -EMSGSIZE);
    e.payload_len = 0;
    assert_int_equal(pos_outbox_append(&ob, &e, &id), 0); /* an empty payload is fine */
    assert_int_equal(pos_outbox_append(&ob, &e, NULL), -EINVAL);
}

static void test_order_and_ids_across_reopen(void **state)
{
    (void)state;
    char p[16];
    for (int i = 0; i < 50; i++) {
        snprintf(p, sizeof(p), "m%02d", i);
        assert_int_equal(append("ch", p, i % 7 == 0, 0), (uint64_t)i + 1);
    }
    /* Deliver the first ten. */
    for (uint64_t id = 1; id <= 10; id++) {
        assert_int_equal(pos_outbox_ack(&ob, id), 0);
    }
    close_all();
    open_all(8 * MB, 0, 0);
    char buf[1024];
    uint64_t ids[64];
    assert_int_equal(peek_all(buf, sizeof(buf), ids), 40);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[39], 50);
    assert_true(strncmp(buf, "m10,m11,m12,", 12) == 0);
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 40);
    assert_int_equal(s.payment, 6); /* 14, 21, 28, 35, 42, 49 */
    assert_int_equal(s.next_id, 51);

    /* Ack everything, reopen: ids are never reused. */
    for (size_t i = 0; i < 40; i++) {
        assert_int_equal(pos_outbox_ack(&ob, ids[i]), 0);
    }
    close_all();
    open_all(8 * MB, 0, 0);
    assert_int_equal(append("ch", "after", false, 0), 51);
}

static void test_bound_by_count_drops_oldest_non_payment(void **state)
{
    (void)state;
    close_all();
    open_all(8 * MB, 5, 0);
    append("ch", "n1", false, 0);
    append("ch", "P2", true, 0);
    append("ch", "n3", false, 0);
    append("ch", "n4", false, 0);
    append("ch", "P5", true, 0);
    char buf[256];
    assert_int_equal(peek_all(buf, sizeof(buf), NULL), 5);
    /* Full: the next append drops n1 (the oldest non-payment), then n3. */
    append("ch", "n6", false, 0);
    assert_int_equal(peek_all(buf, sizeof(buf), NULL), 5);
    assert_string_equal(buf, "P2,n3,n4,P5,n6");
    append("ch", "P7", true, 0);
    assert_int_equal(peek_all(buf, sizeof(buf), NULL), 5);
    assert_string_equal(buf, "P2,n4,P5,n6,P7");
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.payment, 3);

    /* The drop count is persisted. */
    close_all();
    open_all(8 * MB, 5, 0);
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.entries, 5);
}

static void test_full_of_payments_is_enospc(void **state)
{
    (void)state;
    close_all();
    open_all(8 * MB, 3, 0);
    append("ch", "P1", true, 0);
    append("ch", "P2", true, 0);
    append("ch", "P3", true, 0);
    /* Nothing may be dropped: a payment and a non-payment are both refused. */
    append("ch", "P4", true, -ENOSPC);
    append("ch", "n5", false, -ENOSPC);
    char buf[256];
    assert_int_equal(peek_all(buf, sizeof(buf), NULL), 3);
    assert_string_equal(buf, "P1,P2,P3");
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.next_id, 4); /* a refused append takes no id */
    /* Once one is delivered there is room again. */
    assert_int_equal(pos_outbox_ack(&ob, 1), 0);
    assert_int_equal(append("ch", "P4", true, 0), 4);
}

static void test_bound_by_bytes(void **state)
{
    (void)state;
    close_all();
    /* 100 bytes of channel + payload. */
    open_all(8 * MB, 0, 100);
    char p[64];
    memset(p, 'x', 38);
    p[38] = '\0';
    append("ch", p, false, 0); /* 40 bytes */
    p[0] = 'P';
    append("ch", p, true, 0); /* 40 */
    p[0] = 'y';
    append("ch", p, false, 0); /* 40: over 100, the first non-payment goes */
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.bytes, 80);
    assert_int_equal(s.dropped, 1);
    /* An entry larger than the whole bound is refused outright. */
    char big[128];
    memset(big, 'b', 120);
    big[120] = '\0';
    append("ch", big, true, -EMSGSIZE);
}

static void test_map_full_drops_then_enospc(void **state)
{
    (void)state;
    close_all();
    /* No bounds, a 1 MiB map: the map is what fills. */
    open_all(1 * MB, 0, 0);
    static char payload[4000];
    memset(payload, 'n', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    /* Every tenth is a payment outcome. */
    int appended = 0;
    for (int i = 0; i < 600; i++) {
        payload[0] = i % 10 == 0 ? 'P' : 'n';
        pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                                .is_payment = i % 10 == 0,
                                .channel = "ch",
                                .channel_len = 2,
                                .payload = payload,
                                .payload_len = strlen(payload)};
        uint64_t id;
        int rc = pos_outbox_append(&ob, &e, &id);
        if (rc == -ENOSPC) {
            break;
        }
        assert_int_equal(rc, 0);
        appended++;
    }
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    printf("    1 MiB map: %d appended, %llu kept (%llu payment), %llu dropped\n", appended,
           (unsigned long long)s.entries, (unsigned long long)s.payment,
           (unsigned long long)s.dropped);
    assert_true(s.dropped > 0);
    /* Every payment outcome appended is still there. */
    pos_outbox_batch_t b;
    assert_true(pos_outbox_peek(&ob, 100000, &b) >= 0);
    uint64_t payments = 0;
    for (size_t i = 0; i < b.count; i++) {
        payments += b.entries[i].is_payment;
        if (b.entries[i].is_payment) {
            assert_int_equal(((const char *)b.entries[i].payload)[0], 'P');
        }
    }
    pos_outbox_batch_free(&b);
    assert_int_equal(payments, (uint64_t)(appended + 9) / 10);
    assert_int_equal(s.payment, payments);
}

static void test_map_full_evicts_cache_first(void **state)
{
    (void)state;
    close_all();
    open_all(1 * MB, 0, 0);
    pos_cache_t c;
    pos_cache_config_t cc = {.ttl_ms = {1, 1, 1, 1, 1}};
    assert_int_equal(pos_cache_open(&c, &st, &cc), 0);
    static char value[8000];
    memset(value, 'v', sizeof(value));
    /* Fill the map with the cache. */
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "product:%d", i);
        assert_int_equal(
            pos_cache_put(&c, k, strlen(k), value, sizeof(value), POS_CACHE_PRODUCT, 1), 0);
    }
    pos_cache_stats_t cs;
    pos_cache_stats(&c, &cs);
    uint64_t before = cs.evictions;
    /* Outbox appends still succeed without dropping: the cache gives way. */
    for (int i = 0; i < 20; i++) {
        append("ch", "an outbox message that must not be dropped", false, 0);
    }
    static char big[8000];
    memset(big, 'o', sizeof(big) - 1);
    for (int i = 0; i < 80; i++) {
        append("ch", big, false, 0);
    }
    pos_outbox_stats_t s;
    pos_outbox_stats(&ob, &s);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.entries, 100);
    pos_cache_stats(&c, &cs);
    assert_true(cs.evictions > before);
    pos_cache_close(&c);
}

static void test_stamp(void **state)
{
    (void)state;
    char out[128];
    const char *j = "{\"type\":\"PAYMENT_APPROVED\",\"ts\":1}";
    int n = pos_outbox_stamp(j, strlen(j), 42, out, sizeof(out));
    assert_int_equal(n, (int)strlen("{\"type\":\"PAYMENT_APPROVED\",\"ts\":1,\"outboxId\":42}"));
    assert_string_equal(out, "{\"type\":\"PAYMENT_APPROVED\",\"ts\":1,\"outboxId\":42}");
    assert_int_equal(pos_outbox_stamp("{}", 2, 7, out, sizeof(out)), 14);
    assert_string_equal(out, "{\"outboxId\":7}");
    assert_true(pos_outbox_stamp(" { } \n", 6, 18446744073709551615ull, out, sizeof(out)) > 0);
    assert_string_equal(out, "{ \"outboxId\":18446744073709551615}");
    assert_int_equal(pos_outbox_stamp("[1]", 3, 1, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_outbox_stamp("{", 1, 1, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_outbox_stamp("", 0, 1, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_outbox_stamp(j, strlen(j), 42, out, 20), -ENOSPC);
    /* Exactly enough room. */
    assert_int_equal(pos_outbox_stamp("{}", 2, 7, out, 15), 14);
    assert_int_equal(pos_outbox_stamp("{}", 2, 7, out, 14), -ENOSPC);
}

static void test_record_parse(void **state)
{
    (void)state;
    pos_outbox_entry_t e;
    unsigned char rec[POS_OUTBOX_HDR_SIZE + 4] = {1, POS_OUTBOX_PUBLISH, 1, 0, 2, 0, 0, 0, 2, 0, 0,
                                                  0};
    memcpy(rec + POS_OUTBOX_HDR_SIZE, "chPL", 4);
    assert_int_equal(pos_outbox_record_parse(rec, sizeof(rec), &e), 0);
    assert_true(e.is_payment);
    assert_memory_equal(e.payload, "PL", 2);
    assert_int_equal(pos_outbox_record_parse(rec, sizeof(rec) - 1, &e), -EBADMSG);
    rec[0] = 2;
    assert_int_equal(pos_outbox_record_parse(rec, sizeof(rec), &e), -EBADMSG);
    rec[0] = 1;
    rec[1] = POS_OUTBOX_KIND_COUNT;
    assert_int_equal(pos_outbox_record_parse(rec, sizeof(rec), &e), -EBADMSG);
    rec[1] = 0;
    rec[4] = 0; /* empty channel */
    assert_int_equal(pos_outbox_record_parse(rec, sizeof(rec), &e), -EBADMSG);
}

int main(void)
{
#define T(f)                                                                                       \
    cmocka_unit_test_prestate_setup_teardown(f, pos_test_store_setup, pos_test_store_teardown, &fx)
    const struct CMUnitTest tests[] = {
        T(test_fifo_peek_ack),
        T(test_arguments),
        T(test_order_and_ids_across_reopen),
        T(test_bound_by_count_drops_oldest_non_payment),
        T(test_full_of_payments_is_enospc),
        T(test_bound_by_bytes),
        T(test_map_full_drops_then_enospc),
        T(test_map_full_evicts_cache_first),
        cmocka_unit_test(test_stamp),
        cmocka_unit_test(test_record_parse),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
