/*
 * The cache table on a real LMDB store in a temporary directory: put/get,
 * freshness and age, stale marks, deletes by predicate, batched scans,
 * eviction order (expired first, then least recently used), statistics,
 * persistence across reopen, and a full map (-ENOSPC, then eviction; the
 * room evictions make stays for payment outcomes).
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/store/cache.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "tests/support/fs.h"
#include "tests/support/store.h"

#define S  1000ull
#define MB (1024u * 1024u)

static pos_store_t st;
static pos_cache_t cache;
static const pos_cache_config_t default_cfg = {
    .ttl_ms = {7200 * S, 300 * S, 3600 * S, 86400 * S, 60 * S},
    .max_bytes = 0,
};

static void open_default(void);
static void close_all(void);
static pos_test_store_fixture_t fx = {"test_cache", open_default, close_all, ""};

static void open_all(uint64_t map_size, const pos_cache_config_t *cfg)
{
    pos_test_store_open(&st, fx.dir, map_size);
    assert_int_equal(pos_cache_open(&cache, &st, cfg), 0);
}

static void close_all(void)
{
    pos_cache_close(&cache);
    pos_store_close(&st);
}

/* The store and the module at their default sizes, for each test. */
static void open_default(void)
{
    open_all(8 * MB, &default_cfg);
}

static int put(const char *key, const char *value, uint64_t now)
{
    return pos_cache_put(&cache, key, strlen(key), value, strlen(value),
                         pos_cache_family_of(key, strlen(key)), now);
}

/* Gets key into a static buffer (NUL-terminated); returns the rc. */
static char got[4096];
static pos_cache_info_t info;
static int get(const char *key, uint64_t now)
{
    memset(got, 0, sizeof(got));
    return pos_cache_get(&cache, key, strlen(key), now, got, sizeof(got) - 1, &info);
}

static void test_put_get_fresh_and_age(void **state)
{
    (void)state;
    uint64_t t0 = 1764412800000ull;
    assert_int_equal(put("product:P-7", "{\"name\":\"Espresso\"}", t0), 0);
    assert_int_equal(get("product:P-7", t0 + 5 * S), 0);
    assert_string_equal(got, "{\"name\":\"Espresso\"}");
    assert_true(info.fresh);
    assert_false(info.meta.stale);
    assert_int_equal(info.age_ms, 5 * S);
    assert_int_equal(info.meta.family, POS_CACHE_PRODUCT);
    assert_true(info.meta.fetched_at_ms == t0);
    assert_true(info.meta.verified_at_ms == t0);
    assert_int_equal(info.meta.value_len, 19);

    /* Past the family's TTL: still returned (offline reads), but not fresh. */
    assert_int_equal(get("product:P-7", t0 + 7200 * S), 0);
    assert_false(info.fresh);
    assert_int_equal(info.age_ms, 7200 * S);
    /* Inventory has a shorter TTL. */
    assert_int_equal(put("inventory:S-042:P-7", "{\"quantity\":41}", t0), 0);
    assert_int_equal(get("inventory:S-042:P-7", t0 + 299 * S), 0);
    assert_true(info.fresh);
    assert_int_equal(get("inventory:S-042:P-7", t0 + 300 * S), 0);
    assert_false(info.fresh);
    /* A clock that went back gives age 0, not a huge number. */
    assert_int_equal(get("product:P-7", t0 - 10 * S), 0);
    assert_int_equal(info.age_ms, 0);

    /* Miss. */
    assert_int_equal(get("product:nope", t0), -ENOENT);

    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.hits, 3);
    assert_int_equal(s.stale_hits, 2);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.bytes, (11 + 32 + 19) + (19 + 32 + 15));
    assert_int_equal(s.evictions, 0);
}

static void test_replace_and_reverify(void **state)
{
    (void)state;
    assert_int_equal(put("user:u1", "v1", 1000), 0);
    /* Same value again later: fetched_at stays, verified_at moves. */
    assert_int_equal(put("user:u1", "v1", 5000), 0);
    assert_int_equal(get("user:u1", 6000), 0);
    assert_int_equal(info.meta.fetched_at_ms, 1000);
    assert_int_equal(info.meta.verified_at_ms, 5000);
    assert_int_equal(info.age_ms, 1000);
    /* A new value: both move. */
    assert_int_equal(put("user:u1", "v22", 7000), 0);
    assert_int_equal(get("user:u1", 7000), 0);
    assert_string_equal(got, "v22");
    assert_int_equal(info.meta.fetched_at_ms, 7000);
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, 7 + 32 + 3);
    /* An empty value is a value. */
    assert_int_equal(pos_cache_put(&cache, "k", 1, NULL, 0, POS_CACHE_OTHER, 1), 0);
    assert_int_equal(get("k", 1), 0);
    assert_int_equal(info.meta.value_len, 0);
}

static void test_arguments(void **state)
{
    (void)state;
    char key[POS_CACHE_KEY_MAX + 2];
    memset(key, 'k', sizeof(key));
    assert_int_equal(pos_cache_put(&cache, key, POS_CACHE_KEY_MAX, "v", 1, POS_CACHE_OTHER, 1), 0);
    assert_int_equal(pos_cache_put(&cache, key, POS_CACHE_KEY_MAX + 1, "v", 1, POS_CACHE_OTHER, 1),
                     -ENAMETOOLONG);
    assert_int_equal(pos_cache_put(&cache, key, 0, "v", 1, POS_CACHE_OTHER, 1), -EINVAL);
    assert_int_equal(pos_cache_put(&cache, "k", 1, "v", 1, POS_CACHE_FAMILY_COUNT, 1), -EINVAL);
    assert_int_equal(pos_cache_put(&cache, "k", 1, NULL, 3, POS_CACHE_OTHER, 1), -EINVAL);
    static char big[POS_CACHE_VALUE_MAX + 1];
    assert_int_equal(pos_cache_put(&cache, "k", 1, big, sizeof(big), POS_CACHE_OTHER, 1),
                     -EMSGSIZE);
    assert_int_equal(pos_cache_get(&cache, key, POS_CACHE_KEY_MAX + 1, 1, got, 10, &info),
                     -ENAMETOOLONG);
    assert_int_equal(pos_cache_get(&cache, "k", 1, 1, NULL, 10, &info), -EINVAL);

    /* A buffer too small: -ENOBUFS with the length needed, nothing counted. */
    assert_int_equal(put("product:x", "0123456789", 1), 0);
    pos_cache_stats_t before, after;
    pos_cache_stats(&cache, &before);
    char small[4];
    assert_int_equal(pos_cache_get(&cache, "product:x", 9, 1, small, sizeof(small), &info),
                     -ENOBUFS);
    assert_int_equal(info.meta.value_len, 10);
    assert_int_equal(pos_cache_get(&cache, "product:x", 9, 1, NULL, 0, &info), -ENOBUFS);
    pos_cache_stats(&cache, &after);
    assert_int_equal(after.hits, before.hits);
}

static void test_family_of(void **state)
{
    (void)state;
    assert_int_equal(pos_cache_family_of("product:P-1", 11), POS_CACHE_PRODUCT);
    assert_int_equal(pos_cache_family_of("inventory:S:P", 13), POS_CACHE_INVENTORY);
    assert_int_equal(pos_cache_family_of("user:u", 6), POS_CACHE_USER);
    assert_int_equal(pos_cache_family_of("session:s", 9), POS_CACHE_SESSION);
    assert_int_equal(pos_cache_family_of("product:", 8), POS_CACHE_OTHER); /* no id */
    assert_int_equal(pos_cache_family_of("counter:x", 9), POS_CACHE_OTHER);
    assert_int_equal(pos_cache_family_of("prod", 4), POS_CACHE_OTHER);
}

/* A request's completion, as the last one reported it. */
static size_t done_count;
static int done_status;
static void record_done(void *arg, int status, size_t n)
{
    (void)arg;
    done_status = status;
    done_count = n;
}

static void test_mark_stale(void **state)
{
    (void)state;
    assert_int_equal(put("product:a", "A", 1000), 0);
    assert_int_equal(put("product:b", "B", 2000), 0);
    assert_int_equal(put("product:c", "C", 3000), 0);

    assert_int_equal(pos_cache_mark_stale(&cache, "product:a", 9), 0);
    assert_int_equal(pos_cache_mark_stale(&cache, "product:zz", 10), -ENOENT);
    assert_int_equal(get("product:a", 1500), 0);
    assert_true(info.meta.stale);
    assert_false(info.fresh);
    assert_string_equal(got, "A"); /* the value stays for offline reads */

    done_count = 99;
    assert_int_equal(pos_cache_mark_stale_before(&cache, 2500, record_done, NULL), 0);
    assert_int_equal(done_status, 0);
    assert_int_equal(done_count, 1); /* b; a was stale already, c verified at 3000 */
    assert_int_equal(get("product:b", 2500), 0);
    assert_true(info.meta.stale);
    assert_int_equal(get("product:c", 3000), 0);
    assert_false(info.meta.stale);

    /* Revalidation clears the flag. */
    assert_int_equal(put("product:b", "B", 4000), 0);
    assert_int_equal(get("product:b", 4000), 0);
    assert_false(info.meta.stale);
    assert_true(info.fresh);
    assert_int_equal(info.meta.fetched_at_ms, 2000);

    assert_int_equal(pos_cache_mark_all_stale(&cache, record_done, NULL), 0);
    assert_int_equal(done_count, 2); /* b and c */
    for (const char *const *k = (const char *const[]){"product:a", "product:b", "product:c", NULL};
         *k != NULL; k++) {
        assert_int_equal(get(*k, 4000), 0);
        assert_true(info.meta.stale);
    }
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 3);
}

/* A prefix "glob" standing in for the Redis matcher the agent passes. */
static bool starts_with(void *ctx, const char *key, size_t len)
{
    const char *prefix = ctx;
    size_t n = strlen(prefix);
    return len >= n && memcmp(key, prefix, n) == 0;
}

static void test_delete_and_delete_if(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        char k[40];
        snprintf(k, sizeof(k), "inventory:S-042:P-%d", i);
        assert_int_equal(put(k, "{}", 1), 0);
        snprintf(k, sizeof(k), "product:P-%d", i);
        assert_int_equal(put(k, "{}", 1), 0);
    }
    assert_int_equal(pos_cache_delete(&cache, "product:P-0", 11), 0);
    assert_int_equal(pos_cache_delete(&cache, "product:P-0", 11), -ENOENT);
    pos_cache_match_t m = {starts_with, NULL, (void *)"inventory:S-042:"};
    assert_int_equal(pos_cache_delete_if(&cache, &m, record_done, NULL), 0);
    assert_int_equal(done_count, 20);
    assert_int_equal(get("inventory:S-042:P-3", 1), -ENOENT);
    assert_int_equal(get("product:P-3", 1), 0);
    m.ctx = (void *)"nothing:";
    assert_int_equal(pos_cache_delete_if(&cache, &m, record_done, NULL), 0);
    assert_int_equal(done_count, 0);
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 19);
    assert_int_equal(s.bytes, 19 * (32 + 2) + 9 * 11 + 10 * 12);
    /* The LRU index shrank with them: only 19 records left. */
    MDB_txn *txn;
    MDB_stat ms;
    assert_int_equal(pos_store_txn_begin(&st, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, st.dbi[POS_DB_CACHE_LRU], &ms), 0);
    mdb_txn_abort(txn);
    assert_int_equal(ms.ms_entries, 19);
}

typedef struct scan_seen {
    int count;
    char keys[64][32];
    int stale;
} scan_seen_t;

static int collect(void *ctx, const char *key, size_t len, const pos_cache_meta_t *meta)
{
    scan_seen_t *s = ctx;
    snprintf(s->keys[s->count], sizeof(s->keys[0]), "%.*s", (int)len, key);
    s->count++;
    s->stale += meta->stale;
    return 0;
}

static void test_scan_in_batches(void **state)
{
    (void)state;
    for (int i = 0; i < 25; i++) {
        char k[32];
        snprintf(k, sizeof(k), "product:%02d", i);
        assert_int_equal(put(k, "x", 1), 0);
    }
    assert_int_equal(pos_cache_mark_stale(&cache, "product:07", 10), 0);
    pos_cache_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    scan_seen_t seen = {0};
    int batches = 0;
    while (!cur.done) {
        int n = pos_cache_scan(&cache, &cur, 10, collect, &seen);
        assert_true(n >= 0 && n <= 10);
        batches++;
        /* Writes between batches are fine: the next batch starts after the last key. */
        if (batches == 1) {
            assert_int_equal(put("product:15b", "new", 2), 0); /* after the cursor */
            assert_int_equal(put("product:05b", "new", 2), 0); /* behind it: not seen */
        }
    }
    assert_int_equal(batches, 3);
    assert_int_equal(seen.count, 26);
    assert_int_equal(seen.stale, 1);
    for (int i = 1; i < seen.count; i++) {
        assert_true(strcmp(seen.keys[i - 1], seen.keys[i]) < 0);
    }
    assert_int_equal(pos_cache_scan(&cache, &cur, 10, collect, &seen), 0);
}

static void test_evict_cmp_pure(void **state)
{
    (void)state;
    const uint64_t ttl[POS_CACHE_FAMILY_COUNT] = {100, 10, 100, 100, 100};
    pos_cache_meta_t fresh_old = {
        .family = POS_CACHE_PRODUCT, .verified_at_ms = 950, .last_access = 1};
    pos_cache_meta_t fresh_new = {
        .family = POS_CACHE_PRODUCT, .verified_at_ms = 950, .last_access = 9};
    pos_cache_meta_t exp_recent = {.family = POS_CACHE_INVENTORY,
                                   .verified_at_ms = 980,
                                   .last_access = 50}; /* expired at 990 */
    pos_cache_meta_t exp_long = {
        .family = POS_CACHE_PRODUCT, .verified_at_ms = 100, .last_access = 99}; /* expired at 200 */
    uint64_t now = 1000;
    assert_true(pos_cache_expired(&exp_recent, now, ttl));
    assert_false(pos_cache_expired(&fresh_old, now, ttl));
    /* Expired before fresh, however recently used. */
    assert_true(pos_cache_evict_cmp(&exp_recent, &fresh_old, now, ttl) < 0);
    assert_true(pos_cache_evict_cmp(&fresh_old, &exp_long, now, ttl) > 0);
    /* Among expired: the longest expired first. */
    assert_true(pos_cache_evict_cmp(&exp_long, &exp_recent, now, ttl) < 0);
    /* Among fresh: least recently used first. */
    assert_true(pos_cache_evict_cmp(&fresh_old, &fresh_new, now, ttl) < 0);
    assert_int_equal(pos_cache_evict_cmp(&fresh_old, &fresh_old, now, ttl), 0);
    /* The stale flag does not make an entry expired: it is still the last known value. */
    pos_cache_meta_t stale = fresh_new;
    stale.stale = true;
    assert_false(pos_cache_expired(&stale, now, ttl));
}

static void test_eviction_order_expired_then_lru(void **state)
{
    (void)state;
    close_all();
    /* Budget for about 10 entries of 100-byte values. */
    pos_cache_config_t cfg = default_cfg;
    char value[101];
    memset(value, 'v', 100);
    value[100] = '\0';
    size_t one = 12 + 32 + 100; /* "product:NNNN" */
    cfg.max_bytes = 10 * one + one / 2;
    open_all(8 * MB, &cfg);
    uint64_t t = 1000000;
    /* Ten entries: 0..7 products, 8..9 inventory fetched long ago (expired at t). */
    for (int i = 0; i < 10; i++) {
        char k[32];
        if (i < 8) {
            snprintf(k, sizeof(k), "product:%04d", i);
        } else {
            snprintf(k, sizeof(k), "inventory:%02d", i); /* same length as product:NNNN */
        }
        assert_int_equal(put(k, value, i < 8 ? t : t - 301 * S), 0);
    }
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 10);
    assert_int_equal(s.evictions, 0);
    /* Read 0..2 so that 3 becomes the least recently used fresh entry. */
    for (int i = 0; i < 3; i++) {
        char k[32];
        snprintf(k, sizeof(k), "product:%04d", i);
        assert_int_equal(get(k, t), 0);
    }
    /* One more entry: over budget; the two expired ones go first. */
    assert_int_equal(put("product:0010", value, t), 0);
    pos_cache_stats(&cache, &s);
    assert_true(s.bytes <= cfg.max_bytes);
    assert_int_equal(get("inventory:08", t), -ENOENT);
    assert_int_equal(get("inventory:09", t), -ENOENT);
    for (int i = 0; i < 8; i++) {
        char k[32];
        snprintf(k, sizeof(k), "product:%04d", i);
        assert_int_equal(get(k, t), 0);
    }
    assert_int_equal(s.evictions, 2);
    /* Now no expired entry is left: recency decides. Order of use now:
     * 0,1,2 (read twice), 3..7 read once just above in that order, 10 put. */
    assert_int_equal(put("product:0011", value, t), 0);
    assert_int_equal(put("product:0012", value, t), 0);
    pos_cache_stats(&cache, &s);
    /* Over budget by half an entry, plus a sixteenth of slack: two go. The
     * least recently used were product:0010 (put before the reads of 0..7),
     * then product:0000. */
    assert_int_equal(s.evictions, 4);
    assert_int_equal(s.entries, 9);
    assert_int_equal(get("product:0010", t), -ENOENT);
    assert_int_equal(get("product:0000", t), -ENOENT);
    assert_int_equal(get("product:0001", t), 0);
    assert_int_equal(get("product:0003", t), 0);

    /* The LRU order persists: touches are flushed at close. */
    close_all();
    open_all(8 * MB, &cfg);
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 9);
    /* product:0002 is now the least recently used (1 and 3 were read since). */
    size_t evicted = 0;
    long long freed = pos_cache_evict(&cache, 1, t, &evicted);
    assert_int_equal(freed, (long long)one);
    assert_int_equal(evicted, 1);
    assert_int_equal(get("product:0002", t), -ENOENT);
    assert_int_equal(get("product:0004", t), 0);
    assert_int_equal(get("product:0001", t), 0);
}

static void test_touches_are_batched(void **state)
{
    (void)state;
    assert_int_equal(put("product:a", "A", 1), 0);
    MDB_envinfo before, after;
    mdb_env_info(st.env, &before);
    for (int i = 0; i < POS_CACHE_PENDING_MAX - 1; i++) {
        assert_int_equal(get("product:a", 2), 0);
    }
    mdb_env_info(st.env, &after);
    /* Reads wrote nothing: same last transaction id. */
    assert_int_equal(after.me_last_txnid, before.me_last_txnid);
    assert_int_equal(cache.pending_count, 1); /* one key, touched many times */
    assert_int_equal(pos_cache_flush(&cache), 0);
    assert_int_equal(cache.pending_count, 0);
    mdb_env_info(st.env, &after);
    assert_int_equal(after.me_last_txnid, before.me_last_txnid + 1);

    /* Past the bound, reads still write nothing: further touches are dropped and counted. */
    pos_cache_item_t *items = calloc(POS_CACHE_PENDING_MAX + 5, sizeof(*items));
    char(*keys)[32] = calloc(POS_CACHE_PENDING_MAX + 5, 32);
    assert_non_null(items);
    assert_non_null(keys);
    for (int i = 0; i < POS_CACHE_PENDING_MAX + 5; i++) {
        int n = snprintf(keys[i], 32, "user:%d", i);
        items[i] = (pos_cache_item_t){keys[i], (size_t)n, "u", 1, POS_CACHE_USER};
    }
    assert_int_equal(pos_cache_put_batch(&cache, items, POS_CACHE_PENDING_MAX + 5, 1, NULL, NULL),
                     0);
    mdb_env_info(st.env, &before);
    for (int i = 0; i < POS_CACHE_PENDING_MAX + 5; i++) {
        assert_int_equal(get(keys[i], 1), 0);
    }
    mdb_env_info(st.env, &after);
    assert_int_equal(after.me_last_txnid, before.me_last_txnid);
    assert_int_equal(cache.pending_count, POS_CACHE_PENDING_MAX);
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.touches_dropped, 5);
    /* The next write carries them all, in its own transaction. */
    assert_int_equal(put("user:new", "n", 2), 0);
    assert_int_equal(cache.pending_count, 0);
    mdb_env_info(st.env, &after);
    assert_int_equal(after.me_last_txnid, before.me_last_txnid + 1);
    free(items);
    free(keys);
}

static void test_put_batch(void **state)
{
    (void)state;
    pos_cache_item_t items[100];
    char keys[100][32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(keys[i], sizeof(keys[i]), "inventory:S:P-%d", i);
        items[i] =
            (pos_cache_item_t){keys[i], (size_t)n, "{\"quantity\":1}", 14, POS_CACHE_INVENTORY};
    }
    MDB_envinfo before, after;
    mdb_env_info(st.env, &before);
    assert_int_equal(pos_cache_put_batch(&cache, items, 100, 5000, NULL, NULL), 0);
    mdb_env_info(st.env, &after);
    assert_int_equal(after.me_last_txnid, before.me_last_txnid + 1);
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 100);
    assert_int_equal(get("inventory:S:P-42", 5000), 0);
    assert_string_equal(got, "{\"quantity\":1}");
    /* One bad item: nothing of the batch is stored. */
    items[50].key_len = POS_CACHE_KEY_MAX + 1;
    assert_int_equal(pos_cache_put_batch(&cache, items, 100, 6000, NULL, NULL), -ENAMETOOLONG);
    assert_int_equal(get("inventory:S:P-42", 6000), 0);
    assert_int_equal(info.meta.verified_at_ms, 5000);
}

static void test_persists_across_reopen(void **state)
{
    (void)state;
    assert_int_equal(put("session:s1", "{\"user\":\"u1\"}", 1000), 0);
    assert_int_equal(pos_cache_mark_stale(&cache, "session:s1", 10), 0);
    close_all();
    open_all(8 * MB, &default_cfg);
    assert_int_equal(get("session:s1", 2000), 0);
    assert_string_equal(got, "{\"user\":\"u1\"}");
    assert_true(info.meta.stale);
    assert_int_equal(info.meta.fetched_at_ms, 1000);
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, 10 + 32 + 13);
    assert_int_equal(s.hits + s.stale_hits, 1); /* hit counters restart with the process */
}

static void test_map_full_then_eviction(void **state)
{
    (void)state;
    close_all();
    /* A 1 MiB map and no byte budget: only the map bounds the cache. */
    open_all(1 * MB, &default_cfg);
    static char value[8000];
    memset(value, 'x', sizeof(value));
    int stored = 0;
    for (int i = 0; i < 400; i++) {
        char k[32];
        snprintf(k, sizeof(k), "product:%d", i);
        int rc = pos_cache_put(&cache, k, strlen(k), value, sizeof(value), POS_CACHE_PRODUCT,
                               1000 + (uint64_t)i);
        assert_int_equal(rc, 0); /* never -ENOSPC while there is something to evict */
        stored++;
    }
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    assert_int_equal(stored, 400);
    assert_true(s.evictions > 0);
    assert_true(s.entries < 400);
    assert_true(s.bytes < 1 * MB);
    /* The newest is there, the oldest went (LRU). */
    assert_int_equal(get("product:399", 2000), -ENOBUFS); /* got[] is 4 KiB: exists */
    assert_int_equal(get("product:0", 2000), -ENOENT);
    printf("    1 MiB map: %d puts of 8 KB, %llu entries kept, %llu evicted\n", stored,
           (unsigned long long)s.entries, (unsigned long long)s.evictions);
}

static void test_map_full_of_other_data_is_enospc(void **state)
{
    (void)state;
    close_all();
    open_all(1 * MB, &default_cfg);
    /* Fill the map with payment outcomes in the outbox: nothing the cache may evict. */
    pos_outbox_t ob;
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    pos_test_store_fill(&ob);
    /* 64 KiB cannot fit, and the cache has (next to) nothing to evict. */
    static char big[64 * 1024];
    assert_int_equal(pos_cache_put(&cache, "product:1", 9, big, sizeof(big), POS_CACHE_PRODUCT, 1),
                     -ENOSPC);
    /* Space comes back once the outbox drains; then the cache works again. */
    pos_outbox_batch_t b;
    assert_true(pos_outbox_peek(&ob, 100, &b) > 0);
    for (size_t i = 0; i < b.count; i++) {
        assert_int_equal(pos_outbox_ack(&ob, b.entries[i].id), 0);
    }
    pos_outbox_batch_free(&b);
    static char payload[4000];
    memset(payload, 'p', sizeof(payload));
    assert_int_equal(
        pos_cache_put(&cache, "product:1", 9, payload, sizeof(payload), POS_CACHE_PRODUCT, 1), 0);
    pos_outbox_close(&ob);
}

/*
 * A map full of small entries, as read-through fills it: the oldest lie
 * all over the tree, so evicting them takes a fresh page per leaf, and
 * the reserve a deletion borrows beyond the map stays in the file once
 * used. The cache must neither take back the room its evictions made nor
 * wedge the store: no put refused while it holds entries, and the
 * payment outcomes that come next find room.
 */
static void test_full_map_of_small_entries_keeps_room(void **state)
{
    (void)state;
    close_all();
    open_all(1 * MB, &default_cfg);
    pos_outbox_t ob;
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    static char value[400];
    memset(value, 'v', sizeof(value));
    unsigned refused = 0;
    for (unsigned i = 0; i < 6000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "product:P-%u", i);
        refused += pos_cache_put(&cache, k, strlen(k), value, sizeof(value), POS_CACHE_PRODUCT,
                                 1000 + (uint64_t)i) != 0;
    }
    pos_cache_stats_t s;
    pos_cache_stats(&cache, &s);
    printf("    1 MiB map: 6000 puts of 400 B, %u refused, %llu entries kept, %llu evicted\n",
           refused, (unsigned long long)s.entries, (unsigned long long)s.evictions);
    assert_int_equal(refused, 0);
    assert_true(s.entries > 0);
    assert_true(pos_store_short_of_room(&st)); /* the reserve was dipped into */

    static char payload[300];
    memset(payload, 'p', sizeof(payload));
    pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                            .is_payment = true,
                            .channel = "payment:T-1",
                            .channel_len = 11,
                            .payload = payload,
                            .payload_len = sizeof(payload)};
    for (int i = 0; i < 40; i++) {
        uint64_t id;
        assert_int_equal(pos_outbox_append(&ob, &e, &id), 0);
    }
    pos_outbox_close(&ob);
}

int main(void)
{
#define T(f)                                                                                       \
    cmocka_unit_test_prestate_setup_teardown(f, pos_test_store_setup, pos_test_store_teardown, &fx)
    const struct CMUnitTest tests[] = {
        T(test_put_get_fresh_and_age),
        T(test_replace_and_reverify),
        T(test_arguments),
        cmocka_unit_test(test_family_of),
        T(test_mark_stale),
        T(test_delete_and_delete_if),
        T(test_scan_in_batches),
        cmocka_unit_test(test_evict_cmp_pure),
        T(test_eviction_order_expired_then_lru),
        T(test_touches_are_batched),
        T(test_put_batch),
        T(test_persists_across_reopen),
        T(test_map_full_then_eviction),
        T(test_map_full_of_other_data_is_enospc),
        T(test_full_map_of_small_entries_keeps_room),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
