/*
 * Reading a store's data.mdb without LMDB (agent/store/scan.h), for the
 * salvage of a file cut short: a whole file read through its index as
 * LMDB reads it, values on overflow pages too, and a file cut short read
 * without a fault, only what is left of it.
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

#include "agent/store/outbox.h"
#include "agent/store/scan.h"
#include "agent/store/store.h"
#include "platform/endian.h"
#include "tests/support/fs.h"
#include "tests/support/store.h"

#define ENTRIES 300
#define BIG     10000 /* bytes: a value on overflow pages */

static char dir[64];
static char data[128];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pos_test_mkdtemp(dir, sizeof(dir), "test_scan"), 0);
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pos_test_rm_tree(dir);
    return 0;
}

/* Entries 1..ENTRIES, one commit each; every tenth one BIG bytes long. */
static void populate(void)
{
    pos_store_t st;
    pos_outbox_t ob;
    static char payload[BIG];
    pos_test_store_open(&st, dir, 16u << 20);
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    for (int i = 0; i < ENTRIES; i++) {
        pos_outbox_entry_t e;
        memset(&e, 0, sizeof(e));
        memset(payload, 'a' + i % 26, sizeof(payload));
        e.kind = POS_OUTBOX_PUBLISH;
        e.channel = "transaction:S-1";
        e.channel_len = strlen(e.channel);
        e.payload = payload;
        e.payload_len = i % 10 == 0 ? BIG : 100;
        uint64_t id;
        assert_int_equal(pos_outbox_append(&ob, &e, &id), 0);
    }
    pos_outbox_close(&ob);
    pos_store_close(&st);
}

typedef struct seen {
    int n;
    uint8_t ids[ENTRIES + 1];
} seen_t;

/* Each outbox entry checked against what populate() wrote. */
static int visit(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len)
{
    seen_t *s = ctx;
    pos_outbox_entry_t e;
    if (key_len != 8 || pos_outbox_record_parse(value, value_len, &e) != 0) {
        return 0; /* another database's */
    }
    uint64_t id = pos_endian_get_be64(key);
    assert_true(id >= 1 && id <= ENTRIES);
    int i = (int)id - 1;
    assert_int_equal(e.payload_len, i % 10 == 0 ? BIG : 100);
    for (size_t b = 0; b < e.payload_len; b++) {
        assert_int_equal(((const char *)e.payload)[b], 'a' + i % 26);
    }
    s->ids[id] = 1;
    s->n++;
    return 0;
}

static void test_whole_file_read_through_its_index(void **state)
{
    (void)state;
    populate();
    pos_scan_t sc;
    pos_scan_stats_t stats;
    seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(pos_scan_open(&sc, data), 0);
    assert_false(pos_scan_short(&sc));
    assert_int_equal(pos_scan_db(&sc, "outbox", visit, &s, &stats), 0);
    assert_int_equal(stats.entries, ENTRIES);
    assert_int_equal(stats.read, ENTRIES);
    assert_int_equal(stats.missing, 0);
    assert_int_equal(stats.bad, 0);
    assert_int_equal(s.n, ENTRIES);
    assert_int_equal(pos_scan_db(&sc, "nothing", visit, &s, &stats), -ENOENT);
    pos_scan_close(&sc);
}

/* Cut at half its length: no fault, each entry read is whole, the count
 * of pages missing right. */
static void test_short_file_read_without_fault(void **state)
{
    (void)state;
    populate();
    struct stat sb;
    assert_int_equal(stat(data, &sb), 0);
    off_t cut = sb.st_size / 2 / 4096 * 4096;
    assert_int_equal(truncate(data, cut), 0);

    pos_scan_t sc;
    pos_scan_stats_t stats;
    seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(pos_scan_open(&sc, data), 0);
    assert_true(pos_scan_short(&sc));
    assert_int_equal(sc.pages, (uint64_t)cut / sc.psize);
    int rc = pos_scan_db(&sc, "outbox", visit, &s, &stats);
    assert_true(rc == 0 || rc == -ENODATA);
    assert_true(rc == -ENODATA || stats.missing > 0);
    int indexed = s.n;
    assert_int_equal(pos_scan_unreached(&sc, visit, &s, &stats), 0);
    assert_true(s.n > indexed);
    int distinct = 0;
    for (int i = 1; i <= ENTRIES; i++) {
        distinct += s.ids[i];
    }
    assert_true(distinct > 0 && distinct < ENTRIES);
    pos_scan_close(&sc);
    /* Only read. */
    assert_int_equal(stat(data, &sb), 0);
    assert_int_equal(sb.st_size, cut);
}

/* Not a store, or its meta pages gone: refused, never walked. */
static void test_not_a_store(void **state)
{
    (void)state;
    pos_scan_t sc;
    FILE *fp = fopen(data, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 3 * 4096; i++) {
        fputc(i % 251, fp);
    }
    fclose(fp);
    assert_int_equal(pos_scan_open(&sc, data), -EBADMSG);
    assert_int_equal(truncate(data, 100), 0);
    assert_int_equal(pos_scan_open(&sc, data), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_file_read_through_its_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_file_read_without_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
