#ifndef AGENT_STORE_CACHE_H
#define AGENT_STORE_CACHE_H

/*
 * The cache table in the local store: Redis key -> the last value the
 * agent saw, with when it was fetched and last verified, its TTL family,
 * a stale flag and an LRU access counter. Values survive restarts; an
 * offline read returns the last known value however old, with its age.
 *
 * Writes go through the store writer (agent/store/writer.h) when the cache
 * is given one: each write is a request queued for the writer thread, and
 * the loop never waits on the disk. Until the writer has applied it, a
 * request lives in the overlay, an in-memory list of the changes submitted
 * and not yet applied, by key (a put with its record, a delete, a stale
 * mark) and in order with the bulk ones (mark everything stale, mark stale
 * what was not verified since T, delete what a matcher accepts). Reads
 * (pos_cache_get(), pos_cache_scan()) replay the overlay over what the
 * store holds, so they answer what the store will hold once everything
 * submitted so far is applied: read-your-writes. The replay is exact
 * because requests are applied in order and a bulk request, which the
 * writer runs in slices of at most POS_CACHE_SLICE_KEYS keys (so other
 * work, payments' journal commits included, goes in between), holds the
 * cache's later requests back until its last slice is applied.
 * The cache has one operation with the writer at a time, carrying the
 * requests that waited meanwhile (a few dozen keys' changes) in one nested
 * transaction. Without a writer (unit tests, tools) each write runs and
 * commits in the calling thread before it returns, through the same code.
 *
 * The overlay is bounded (overlay_max_ops changes, overlay_max_bytes of
 * records, POS_CACHE_BULK_MAX bulk requests). The cache is best effort:
 * past a bound a put is shed (-EBUSY, counted in "shed"), and an
 * invalidation (delete, stale mark, bulk) becomes one "mark everything
 * stale", coalesced with the last request when it is one already (counted
 * in "escalated"), so nothing is ever served as fresh that should not be.
 *
 * LRU without a write per read: a hit only bumps the access clock (an
 * atomic counter: both threads read it) and queues (key, counter) in a
 * bounded pending set (one slot per distinct key); the pending touches go
 * to the store with the next write request or pos_cache_flush(), which
 * the agent calls on a timer (every few seconds). Reads never do I/O;
 * when the set is full further touches of new keys are dropped (counted)
 * until the next flush. A crash, or a failed write, loses at most those
 * recency updates, never a value.
 *
 * Eviction (when the byte budget is exceeded, or the map is full): expired
 * entries first (oldest verification first), then least recently used.
 * The order is decided by the pure pos_cache_evict_cmp(). The store calls
 * the cache's reclaimer from the writer thread when the map is full; it
 * touches only the store and atomic counters. The room it gives back is
 * for the store's other writes (payments, the outbox): while the store is
 * short of room (pos_store_short_of_room()), the cache does not grow back
 * into it, its puts evicting least recently used entries to stay within
 * what it held after the last eviction for room.
 *
 * Threads: the functions below are for the loop thread (the one that
 * owns the cache), except pos_cache_evict(), which runs where the store's
 * writes run. What runs in the writer thread touches only the store, the
 * request it applies and the atomic counters.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/store/store.h"
#include "agent/store/writer.h"

#define POS_CACHE_KEY_MAX       511            /* bytes; LMDB's MDB_MAXKEYSIZE */
#define POS_CACHE_VALUE_MAX     (512u * 1024u) /* bytes */
#define POS_CACHE_HDR_SIZE      32u            /* bytes of header before each value */
#define POS_CACHE_PENDING_MAX   1024           /* distinct keys' touches held in memory */
#define POS_CACHE_OVERLAY_OPS   4096           /* default bound: keys' changes not yet applied */
#define POS_CACHE_OVERLAY_BYTES (8u << 20)     /* default bound: bytes of their records */
#define POS_CACHE_BULK_MAX      32             /* bulk requests not yet applied */
#define POS_CACHE_SLICE_KEYS    512            /* keys a bulk request visits per writer op */
#define POS_CACHE_SLICE_US      2000           /* and microseconds it spends on them, about */
#define POS_CACHE_BUCKETS       1024           /* the overlay's hash table */
/* First byte of the keys of the till's own records (what the POS
 * application wrote, agent/api/api_kv.c): never a Redis key, so never a
 * copy that an invalidation drops (pos_cachesvc_clear()). */
#define POS_CACHE_LOCAL_PREFIX '\x01'

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
    /* The store's writer, started on the loop that calls the cache; NULL: every write runs
     * and commits in the calling thread before it returns. */
    pos_store_writer_t *writer;
    size_t overlay_max_ops;     /* keys' changes submitted and not applied; 0: the default */
    uint64_t overlay_max_bytes; /* bytes of their keys and values; 0: the default */
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
    uint64_t entries;         /* entries stored now (as applied) */
    uint64_t bytes;           /* key + header + value bytes stored now (as applied) */
    uint64_t evictions;       /* entries evicted (since open) */
    uint64_t touches_dropped; /* LRU touches lost to a full pending set (since open) */
    uint64_t shed;            /* puts refused, the overlay being full (since open) */
    uint64_t escalated;       /* invalidations turned into "mark all stale" (since open) */
    uint64_t write_errors;    /* write requests the store refused (since open) */
    uint64_t overlay_ops;     /* keys' changes submitted and not yet applied (now) */
    uint64_t overlay_bytes;   /* bytes they hold (now) */
    uint64_t overlay_bulks;   /* bulk requests not yet applied (now) */
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

/*
 * What a write request reports, on the loop thread, once the store holds
 * it (or refused it): status 0 or a negative errno, and count, the entries
 * it changed (stored, deleted, marked stale). Called only when the call
 * that submitted the request returned 0; without a writer, before that
 * call returns.
 */
typedef void (*pos_cache_done_fn)(void *arg, int status, size_t count);

/* Decides whether a key goes (pos_cache_delete_if); e.g. a Redis glob matcher. */
typedef bool (*pos_cache_match_fn)(void *ctx, const char *key, size_t key_len);

/*
 * A matcher handed to pos_cache_delete_if(), which owns ctx from then on:
 * match(ctx, ...) runs in the writer thread and on the loop (reads), so it
 * must not change ctx; release(ctx) (may be NULL) runs on the loop once
 * the request is over, or at once when it is refused.
 */
typedef struct pos_cache_match {
    pos_cache_match_fn match;
    void (*release)(void *ctx);
    void *ctx;
} pos_cache_match_t;

typedef struct pos_cache_req pos_cache_req_t;
typedef struct pos_cache_node pos_cache_node_t;
typedef struct pos_cache_carrier pos_cache_carrier_t;

/* The cache; embed it in a long-lived struct. Fields are private. */
typedef struct pos_cache {
    pos_store_t *st;
    MDB_txn *rtxn; /* a reset read transaction, renewed by each get (saves a reader slot setup) */
    pos_cache_config_t cfg;
    _Atomic uint64_t clock;  /* last access counter handed out */
    pos_cache_stats_t stats; /* loop thread */
    /* The writing side's own counts (writer thread, or the caller without one): what the
     * store holds plus what its transaction in progress adds; for the byte budget. */
    _Atomic long long wbytes, wentries;
    _Atomic uint64_t want_room; /* bytes of the puts refused for room, for the reclaimer */
    /* The writing side's: while the store is short of room, the most bytes the cache may
     * hold: what it held when it last gave room back (0: no such bound), never below
     * room_floor, half of what it held the first time (so that repeated reclaims, an
     * outbox filling the map, cannot leave the cache a single entry). */
    uint64_t room_cap, room_floor;
    /* Evictions the store's reclaimer made outside any request (writer thread). */
    _Atomic long long reclaimed_bytes, reclaimed_entries;
    _Atomic uint64_t reclaimed_evictions;
    /* Requests (loop thread): every one not yet retired, in order; the first not yet
     * handed to the writer; the bulk one being applied, which holds the rest back. */
    pos_cache_req_t *head, *tail, *unsubmitted, *bulk_running;
    pos_cache_req_t *bulks, *bulks_tail; /* the bulk ones among them, in order */
    pos_cache_node_t **buckets;          /* the overlay by key: 2 * POS_CACHE_BUCKETS */
    uint64_t seq;                        /* order of changes and bulk requests */
    pos_cache_carrier_t *carrier;        /* the one operation carrying requests to the writer */
    size_t inflight;                     /* operations with the writer now (0 or 1) */
    bool inflight_lazy;                  /* and it may wait for company (all it carries is lazy) */
    uint64_t err_log_ms;                 /* monotonic ms of the last refusal logged */
    bool pumping;
    bool touching; /* a flush of the touches is under way */
    bool detached; /* the writer is going away: requests wait for pos_cache_close() */
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
 * first). Takes its counts from cfg->census, or counts them now. With
 * cfg->writer, every write goes through that writer (started on the loop
 * that calls the cache). Returns 0, -EINVAL, -ENOMEM, or a negative errno
 * from the count.
 */
int pos_cache_open(pos_cache_t *c, pos_store_t *st, const pos_cache_config_t *cfg);

/*
 * The writer is about to close: from now on requests wait (reads still
 * see them) and are carried out by pos_cache_close(). Call it before
 * pos_store_writer_close(). (Requests also stop going to a writer found
 * closed.)
 */
void pos_cache_detach(pos_cache_t *c);

/*
 * Carries out, in the calling thread, what is still waiting (the rest of
 * a bulk request included), writes the pending touches (best effort),
 * frees the overlay and forgets the store. With a writer, call it once
 * the writer is closed: a request still with the writer is left alone
 * (logged, its memory not freed).
 */
void pos_cache_close(pos_cache_t *c);

/* The family of a key by its prefix (product:, inventory:, user:, session:), else OTHER. */
pos_cache_family_t pos_cache_family_of(const char *key, size_t key_len);

/*
 * Stores value under key with fetched_at = verified_at = now_ms (epoch ms),
 * clearing the stale flag. Storing the same bytes again keeps fetched_at
 * and only refreshes verified_at. Evicts first if the byte budget would be
 * exceeded; on MDB_MAP_FULL the store's reclaimer evicts and the write is
 * tried once more. With a writer: returns 0 once submitted (pos_cache_get()
 * sees it at once; a later refusal by the store is counted in write_errors
 * and logged) or -EBUSY (shed: the overlay is full). Without one: durable
 * on return; 0, -ENOSPC (nothing left to evict) or another negative errno.
 * Either way -EINVAL (empty key, bad family), -ENAMETOOLONG (key over
 * POS_CACHE_KEY_MAX), -EMSGSIZE (value over POS_CACHE_VALUE_MAX or the
 * budget) come back at once.
 */
int pos_cache_put(pos_cache_t *c, const char *key, size_t key_len, const void *value,
                  size_t value_len, pos_cache_family_t family, uint64_t now_ms);

/*
 * Same, for a value the till can learn again (a counter's value as Redis
 * confirmed it): with a writer, its commit may wait for company, up to
 * POS_STORE_LAZY_MS, so that it costs no fsync of its own. Visible to
 * pos_cache_get() at once all the same; a write that may not wait, queued
 * after it, takes it along at once. done(arg, status, 1) (done may be
 * NULL) follows once applied, as for pos_cache_put_batch().
 */
int pos_cache_put_lazy(pos_cache_t *c, const char *key, size_t key_len, const void *value,
                       size_t value_len, pos_cache_family_t family, uint64_t now_ms,
                       pos_cache_done_fn done, void *arg);

/*
 * Stores n items in one request, as pos_cache_put() does each; all or
 * nothing. done(arg, status, n) (done may be NULL) follows
 * once applied. Returns as pos_cache_put() (the first invalid item's error,
 * nothing submitted).
 */
int pos_cache_put_batch(pos_cache_t *c, const pos_cache_item_t *items, size_t n, uint64_t now_ms,
                        pos_cache_done_fn done, void *arg);

/*
 * Looks key up at now_ms, the overlay replayed over the store. On success
 * copies the value into buf (buf_len bytes; may be NULL/0 to ask for the
 * length), sets *info and counts a hit (fresh) or a stale hit, and queues
 * an LRU touch. Returns 0, -ENOENT (a miss), -ENOBUFS (buf too small:
 * info->meta.value_len is the length needed; nothing counted),
 * -ENAMETOOLONG, or another negative errno. Never writes.
 */
int pos_cache_get(pos_cache_t *c, const char *key, size_t key_len, uint64_t now_ms, void *buf,
                  size_t buf_len, pos_cache_info_t *info);

/*
 * Marks one key stale. With a writer: 0 once submitted, -EBUSY when it was
 * escalated (everything marked stale instead). Without one: 0, -ENOENT if
 * absent, or a negative errno.
 */
int pos_cache_mark_stale(pos_cache_t *c, const char *key, size_t key_len);

/*
 * Marks every entry stale (a tracking flush); done(arg, status, count
 * changed) follows. Returns 0 (submitted, or done already without a
 * writer), -EBUSY (coalesced into an escalation already queued: done is
 * not called), or a negative errno.
 */
int pos_cache_mark_all_stale(pos_cache_t *c, pos_cache_done_fn done, void *arg);

/*
 * Marks stale every entry with verified_at_ms < since_ms (entries not
 * verified since a disconnect); done as for pos_cache_mark_all_stale().
 */
int pos_cache_mark_stale_before(pos_cache_t *c, uint64_t since_ms, pos_cache_done_fn done,
                                void *arg);

/* Deletes one key. Returns as pos_cache_mark_stale(). */
int pos_cache_delete(pos_cache_t *c, const char *key, size_t key_len);

/*
 * Deletes every entry whose key m->match() accepts, in slices of the
 * keys (other requests of the store go in between, the cache's own wait),
 * taking ownership of m->ctx; done(arg, status, count deleted) follows
 * the last slice. Returns 0, -EBUSY (escalated: everything marked stale
 * instead, m->ctx released, done not called), -EINVAL.
 */
int pos_cache_delete_if(pos_cache_t *c, const pos_cache_match_t *m, pos_cache_done_fn done,
                        void *arg);

/*
 * Visits up to max keys in key order after cur's position (a read
 * transaction per call, so other calls may run between batches) and
 * advances cur; cur->done is set after the last key. Each key's metadata
 * is the overlay's answer; a key the overlay deletes is not visited (nor
 * counted), a key only the overlay holds is not either. Returns the
 * number of keys visited (0..max) or a negative errno.
 */
int pos_cache_scan(pos_cache_t *c, pos_cache_cursor_t *cur, size_t max, pos_cache_visit_fn visit,
                   void *ctx);

/*
 * Evicts, in transactions of the calling thread, until at least "bytes"
 * are freed or nothing is left: expired entries first, then least
 * recently used. On a full map it deletes in smaller steps that fit in
 * the free pages, and borrows the store's reserve only when not even the
 * smallest step fits. *evicted (may be NULL) gets the count. For the
 * thread that writes the store: the writer (the store's reclaimer calls
 * it there) or, without a writer, the caller. Returns the bytes freed or
 * a negative errno.
 */
long long pos_cache_evict(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted);

/*
 * Writes the pending LRU touches (one request; none when one is already
 * under way or the overlay is full). Returns 0, -EBUSY, or (without a
 * writer) a negative errno.
 */
int pos_cache_flush(pos_cache_t *c);

/* Copies the counters into *out. */
void pos_cache_stats(const pos_cache_t *c, pos_cache_stats_t *out);

/* Sets the freshness per family (ms), e.g. at a configuration reload: the
 * next read and eviction use them (safe while the writer thread runs). */
void pos_cache_set_ttl(pos_cache_t *c, const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT]);

/* A family's freshness now, ms (0 for an unknown family). */
uint64_t pos_cache_ttl_ms(const pos_cache_t *c, pos_cache_family_t family);

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
