#ifndef AGENT_STORE_CACHE_H
#define AGENT_STORE_CACHE_H

/*
 * The cache table in the local store: Redis key -> the last value the
 * agent saw, with when it was fetched and last verified, its TTL family,
 * a stale flag and an LRU access counter. Values survive restarts; an
 * offline read returns the last known value however old, with its age.
 *
 * LRU without a write per read: a hit only bumps an in-memory access
 * clock and queues (key, counter) in a bounded pending set (one slot per
 * distinct key); the pending touches are written into the next write
 * transaction (put, delete, eviction) or by pos_cache_flush(), which the
 * agent calls on a timer (every few seconds). Reads never do I/O; when the
 * set is full further touches of new keys are dropped (counted) until the
 * next flush. A crash loses at most those recency updates, never a value.
 *
 * Eviction (when the byte budget is exceeded, or the map is full): expired
 * entries first (oldest verification first), then least recently used.
 * The order is decided by the pure pos_cache_evict_cmp().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/store/store.h"

#define POS_CACHE_KEY_MAX     511            /* bytes; LMDB's MDB_MAXKEYSIZE */
#define POS_CACHE_VALUE_MAX   (512u * 1024u) /* bytes */
#define POS_CACHE_HDR_SIZE    32u            /* bytes of header before each value */
#define POS_CACHE_PENDING_MAX 1024           /* distinct keys' touches held in memory */

typedef enum pos_cache_family {
    POS_CACHE_PRODUCT = 0, /* product:{productId} */
    POS_CACHE_INVENTORY,   /* inventory:{storeId}:{productId} */
    POS_CACHE_USER,        /* user:{userId} */
    POS_CACHE_SESSION,     /* session:{sessionId} */
    POS_CACHE_OTHER,       /* anything else: TTL from ttl_ms[POS_CACHE_OTHER] */
    POS_CACHE_FAMILY_COUNT
} pos_cache_family_t;

/* What a walk counted in the cache's databases (see pos_cache_tenant()). */
typedef struct pos_cache_census {
    uint64_t entries;
    uint64_t bytes; /* key + header + value bytes */
    uint64_t clock; /* highest access counter in use */
} pos_cache_census_t;

typedef struct pos_cache_config {
    uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT]; /* freshness per family, ms; 0: never fresh */
    uint64_t max_bytes; /* budget for key + header + value bytes; 0: only the map bounds it */
    /* What the walk at pos_store_open() counted, if nothing wrote the cache since; NULL: the
     * cache counts at pos_cache_open() (one more walk of its databases). Not kept. */
    const pos_cache_census_t *census;
} pos_cache_config_t;

/* Entry metadata, as stored. */
typedef struct pos_cache_meta {
    pos_cache_family_t family;
    bool stale;              /* marked stale (invalidated, or not verified after a reconnect) */
    uint64_t fetched_at_ms;  /* epoch ms when this value was first stored */
    uint64_t verified_at_ms; /* epoch ms when Redis last confirmed it */
    uint64_t last_access;    /* LRU counter (not a time) */
    uint32_t value_len;      /* bytes */
} pos_cache_meta_t;

/* What pos_cache_get() returns besides the value. */
typedef struct pos_cache_info {
    pos_cache_meta_t meta;
    uint64_t age_ms; /* now_ms - verified_at_ms (0 if the clock went back) */
    bool fresh;      /* not stale and age_ms < the family's TTL */
} pos_cache_info_t;

typedef struct pos_cache_stats {
    uint64_t hits;            /* gets that found a fresh entry (since open) */
    uint64_t stale_hits;      /* gets that found a stale or expired entry (since open) */
    uint64_t misses;          /* gets that found nothing (since open) */
    uint64_t entries;         /* entries stored now */
    uint64_t bytes;           /* key + header + value bytes stored now */
    uint64_t evictions;       /* entries evicted (since open) */
    uint64_t touches_dropped; /* LRU touches lost to a full pending set (since open) */
} pos_cache_stats_t;

/* One item of pos_cache_put_batch(). */
typedef struct pos_cache_item {
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    pos_cache_family_t family;
} pos_cache_item_t;

typedef struct pos_cache_pending {
    uint64_t hash;
    uint64_t counter;
    size_t key_len;
    char *key; /* malloc'd copy */
} pos_cache_pending_t;

/* The cache; embed it in a long-lived struct. Fields are private. */
typedef struct pos_cache {
    pos_store_t *st;
    MDB_txn *rtxn; /* a reset read transaction, renewed by each get (saves a reader slot setup) */
    pos_cache_config_t cfg;
    uint64_t clock; /* last access counter handed out */
    pos_cache_stats_t stats;
    size_t pending_count;
    pos_cache_pending_t pending[POS_CACHE_PENDING_MAX];
} pos_cache_t;

/* Iteration state for pos_cache_scan(); zero it to start from the first key. */
typedef struct pos_cache_cursor {
    char last_key[POS_CACHE_KEY_MAX];
    size_t last_len;
    bool started;
    bool done; /* set when the last key has been visited */
} pos_cache_cursor_t;

/* Visits one key; return 0 to go on, nonzero to stop the batch early. */
typedef int (*pos_cache_visit_fn)(void *ctx, const char *key, size_t key_len,
                                  const pos_cache_meta_t *meta);

/* Decides whether a key goes (pos_cache_delete_if); e.g. a Redis glob matcher. */
typedef bool (*pos_cache_match_fn)(void *ctx, const char *key, size_t key_len);

/*
 * Describes the cache as a tenant of the store (databases cache and
 * cache_lru) into *t, counting into *census (NULL: judge only). For
 * pos_store_config_t.tenants, so that the walk at open judges the cache's
 * records (a malformed one moves the store aside) and counts them; census
 * must then live until pos_store_open() returns.
 */
void pos_cache_tenant(pos_store_tenant_t *t, pos_cache_census_t *census);

/*
 * Opens the cache on an open store and registers it as the store's
 * reclaimer (MDB_MAP_FULL in the outbox or journal evicts cache entries
 * first). Takes its counts from cfg->census, or counts them now.
 * Returns 0, -EINVAL, or a negative errno from the count.
 */
int pos_cache_open(pos_cache_t *c, pos_store_t *st, const pos_cache_config_t *cfg);

/* Writes pending touches (best effort) and forgets the store. */
void pos_cache_close(pos_cache_t *c);

/* The family of a key by its prefix (product:, inventory:, user:, session:), else OTHER. */
pos_cache_family_t pos_cache_family_of(const char *key, size_t key_len);

/*
 * Stores value under key with fetched_at = verified_at = now_ms (epoch ms),
 * clearing the stale flag. Storing the same bytes again keeps fetched_at
 * and only refreshes verified_at. Evicts first if the byte budget would be
 * exceeded; on MDB_MAP_FULL evicts and retries. Durable on return.
 * Returns 0; -EINVAL (empty key, bad family), -ENAMETOOLONG (key over
 * POS_CACHE_KEY_MAX), -EMSGSIZE (value over POS_CACHE_VALUE_MAX or the
 * budget), -ENOSPC (nothing left to evict), or another negative errno.
 */
int pos_cache_put(pos_cache_t *c, const char *key, size_t key_len, const void *value,
                  size_t value_len, pos_cache_family_t family, uint64_t now_ms);

/*
 * Stores n items in one transaction (one fsync), as pos_cache_put() does
 * each. Returns 0 or the first error (then nothing of the batch is stored).
 */
int pos_cache_put_batch(pos_cache_t *c, const pos_cache_item_t *items, size_t n, uint64_t now_ms);

/*
 * Looks key up at now_ms. On success copies the value into buf (buf_len
 * bytes; may be NULL/0 to ask for the length), sets *info and counts a hit
 * (fresh) or a stale hit, and queues an LRU touch. Returns 0, -ENOENT (a
 * miss), -ENOBUFS (buf too small: info->meta.value_len is the length
 * needed; nothing counted), -ENAMETOOLONG, or another negative errno.
 */
int pos_cache_get(pos_cache_t *c, const char *key, size_t key_len, uint64_t now_ms, void *buf,
                  size_t buf_len, pos_cache_info_t *info);

/* Marks one key stale. Returns 0, -ENOENT if absent, or a negative errno. */
int pos_cache_mark_stale(pos_cache_t *c, const char *key, size_t key_len);

/* Marks every entry stale (a tracking flush). *count (may be NULL) gets how many changed. */
int pos_cache_mark_all_stale(pos_cache_t *c, size_t *count);

/*
 * Marks stale every entry with verified_at_ms < since_ms (entries not
 * verified since a disconnect). *count (may be NULL) gets how many changed.
 */
int pos_cache_mark_stale_before(pos_cache_t *c, uint64_t since_ms, size_t *count);

/* Deletes one key. Returns 0, -ENOENT if absent, or a negative errno. */
int pos_cache_delete(pos_cache_t *c, const char *key, size_t key_len);

/*
 * Deletes, in one transaction, every entry whose key match() accepts.
 * *count (may be NULL) gets how many went. Returns 0 or a negative errno.
 */
int pos_cache_delete_if(pos_cache_t *c, pos_cache_match_fn match, void *ctx, size_t *count);

/*
 * Visits up to max keys in key order after cur's position (a read
 * transaction per call, so other calls may run between batches) and
 * advances cur; cur->done is set after the last key. Returns the number
 * of keys visited (0..max) or a negative errno.
 */
int pos_cache_scan(pos_cache_t *c, pos_cache_cursor_t *cur, size_t max, pos_cache_visit_fn visit,
                   void *ctx);

/*
 * Evicts, in one transaction, until at least "bytes" are freed or nothing
 * is left: expired entries first, then least recently used. *evicted (may
 * be NULL) gets the count. Returns the bytes freed or a negative errno.
 */
long long pos_cache_evict(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted);

/* Writes the pending LRU touches now. Returns 0 or a negative errno. */
int pos_cache_flush(pos_cache_t *c);

/* Copies the counters into *out. */
void pos_cache_stats(const pos_cache_t *c, pos_cache_stats_t *out);

/*
 * Pure eviction order: negative if entry a should go before b at now_ms
 * with the given TTLs (ms per family). Expired entries come first, the
 * longest-expired first; then the rest by last_access, lowest first.
 */
int pos_cache_evict_cmp(const pos_cache_meta_t *a, const pos_cache_meta_t *b, uint64_t now_ms,
                        const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT]);

/* True when meta is past its family's TTL at now_ms (a stale flag does not count). */
bool pos_cache_expired(const pos_cache_meta_t *meta, uint64_t now_ms,
                       const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT]);

/*
 * Record codec (pure): parses a stored value of len bytes into *meta and
 * points *value (may be NULL) at its bytes. Returns 0 or -EBADMSG.
 */
int pos_cache_record_parse(const void *rec, size_t len, pos_cache_meta_t *meta, const void **value);

#endif /* AGENT_STORE_CACHE_H */
