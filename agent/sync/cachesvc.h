#ifndef AGENT_SYNC_CACHESVC_H
#define AGENT_SYNC_CACHESVC_H

/*
 * The offline cache as the agent uses it (over agent/store/cache.c):
 * read-through while online (a miss or an expired entry is fetched with GET,
 * stored with its fetch time and returned; concurrent misses of one key
 * share one GET), the last known value while offline however old, local
 * updates from INVENTORY_UPDATED / LOW_STOCK_ALERT, and CACHE_INVALIDATE by
 * Redis glob. Only the contract's families are cached: product:,
 * inventory:, user:, session:.
 *
 * A value over max_value_bytes ([cache] max_value_bytes) is never cached:
 * the read fails with -EMSGSIZE, whether the value reached the agent or the
 * link dropped the connection on it (agent/link/resp_guard.h), and any
 * older local copy is dropped. The key is remembered for
 * POS_CACHESVC_OVERSIZE_MS (at most POS_CACHESVC_OVERSIZE_MAX keys) and
 * refused at once meanwhile, unless an invalidation names it, so a till
 * asking again and again does not make the link reconnect again and again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/link/link.h"
#include "agent/msg/messages.h"
#include "agent/store/cache.h"

/* Result of a read. status: 0 found, -ENOENT not found, -EMSGSIZE the value
 * is over max_value_bytes (value then holds the message to show, "value of
 * <key> exceeds [cache] max_value_bytes (<n> bytes)"), or an error.
 * value is only valid during the call. */
typedef void (*pos_cachesvc_cb)(void *ctx, int status, const char *value, size_t len,
                                uint64_t age_ms, bool fresh);

typedef struct pos_cache_fetch pos_cache_fetch_t;
typedef struct pos_cache_mget pos_cache_mget_t;

#define POS_CACHESVC_OVERSIZE_MAX 16     /* oversized keys remembered */
#define POS_CACHESVC_VERSION_MAX  32     /* bytes of an index set's version kept */
#define POS_CACHESVC_OVERSIZE_MS  60000u /* for how long, ms */
/* Buckets of the GETs in flight by key: a local client may keep thousands
 * in flight (an MGET is a GET per key), each read looks its key up. */
#define POS_CACHESVC_FETCH_BUCKETS 1024u

/* A key whose value was over max_value_bytes. */
typedef struct pos_cache_oversize {
    uint64_t until_ms; /* monotonic; 0: a free slot */
    size_t len;
    char key[POS_CACHE_KEY_MAX];
} pos_cache_oversize_t;

/* What the cache service is given at init. */
typedef struct pos_cachesvc_options {
    uv_loop_t *loop;
    pos_link_t *link;   /* reads through it while online; must outlive the service */
    pos_store_t *store; /* NULL: no local store, every read goes to Redis */
    /* The store's writer, started on loop: every cache write goes through it (the loop
     * never waits on the disk). NULL: writes run and commit on the loop (tests, tools). */
    pos_store_writer_t *writer;
    const char *store_id; /* the till's store: its inventory is warmed up (copied) */
    pos_cache_config_t cache;
    unsigned warm_interval_s; /* periodic warm-up, seconds */
    uint32_t max_value_bytes; /* largest value accepted, bytes; 0: POS_CACHE_VALUE_MAX */
} pos_cachesvc_options_t;

typedef struct pos_cachesvc {
    pos_link_t *link;
    char store_id[64];
    pos_cache_t cache;
    bool open;
    uv_timer_t flush_timer;     /* writes LRU touches out now and then */
    uv_timer_t reval_timer;     /* the revalidation walk goes on at the next loop turn */
    /* GETs in flight, by key (hashed: POS_CACHESVC_FETCH_BUCKETS) */
    pos_cache_fetch_t *fetches[POS_CACHESVC_FETCH_BUCKETS];
    uint64_t fetches_shared;    /* reads that joined a GET already in flight */
    uint64_t fetches_raced;     /* answers a change overtook: GET kept stale, MGET not kept */
    pos_cache_mget_t *mgets;    /* MGETs in flight (warm-up, revalidation) */
    const pos_cache_mget_t *mget; /* in an MGET's callback: its keys and their fetch states */
    pos_cache_cursor_t reval;   /* revalidation walk after a reconnect */
    bool revalidating;
    uint64_t reval_epoch;  /* bumped per reconnect: stale batches stop */
    uint64_t revalidated;  /* entries confirmed or refreshed by MGET */
    uv_timer_t warm_timer; /* periodic warm-up ([cache] warm_interval_s) */
    bool warm_timer_open;
    bool warming;
    uint64_t warm_epoch;
    uint64_t warmed_inventory; /* entries stored by the current warm-up */
    uint64_t warmed_products;
    /* Warm-up by index sets, [0] products and [1] inventory: each set's
     * version at its last complete warm-up through its index ("": none),
     * how it was last warmed ("index", "unchanged", "scan" for the
     * inventory, "inventory" for products named by it; NULL before the
     * first), the inventory warm-ups that fell back to SCAN, the sets
     * skipped as unchanged, and index members refused as malformed. */
    char warm_version[2][POS_CACHESVC_VERSION_MAX];
    const char *warm_source[2];
    uint64_t warm_scans;
    bool warm_told[2]; /* a missing index set was logged as a warning (once) */
    uint64_t warm_skipped;
    uint64_t warm_members_refused;
    uint32_t max_value_bytes;
    pos_cache_oversize_t oversize[POS_CACHESVC_OVERSIZE_MAX];
    uint64_t oversize_refused; /* reads refused as over max_value_bytes */
    uint64_t invalidations;    /* CACHE_INVALIDATE requests taken (since start) */
    unsigned open_handles;     /* while closing */
    void (*closed_cb)(void *arg);
    void *closed_arg;
    char value_buf[POS_CACHE_VALUE_MAX]; /* a local read's value, during its callback */
} pos_cachesvc_t;

/*
 * Sets up the service's timers and opens the cache on opt->store (when
 * there is one; a cache that cannot be opened is logged and reads go to
 * Redis only), writing through opt->writer. Returns 0 or a negative errno
 * (nothing left to close).
 */
int pos_cachesvc_init(pos_cachesvc_t *s, const pos_cachesvc_options_t *opt);

/* True for keys of a cached family. */
bool pos_cachesvc_cacheable(const char *key, size_t len);

/* Reads key; cb runs now or after a GET (never twice). */
void pos_cachesvc_read(pos_cachesvc_t *s, const char *key, size_t len, pos_cachesvc_cb cb,
                       void *ctx);

/*
 * The link is online again: entries not verified since since_ms (epoch ms;
 * the disconnect, or the agent's start) are marked stale and revalidated
 * with MGET in batches (one in flight, the next once the previous one's
 * values are applied), never dropped while the link is down.
 */
void pos_cachesvc_online(pos_cachesvc_t *s, uint64_t since_ms);

/*
 * Warm-up (CONTRACT.md "Indexes for warm-up"): the products
 * (index:products), then the store's inventory (index:inventory:{storeId}).
 * Each set's version (<set>:version) is read first and the set skipped
 * when it is the version of its last complete warm-up; else SSCAN ...
 * COUNT 500 of the set and MGET of the values (128 keys at a time).
 * Without the inventory's index set the inventory falls back to SCAN MATCH
 * inventory:{storeId}:* COUNT 500; without index:products the products
 * are those the inventory names. Both are logged and shown in INFO cache.
 * One command in flight at a time, never KEYS, and the next page only
 * once the last chunk's values are applied (the store writer sets the
 * pace). Runs at the first connect and every warm_interval_s.
 */
void pos_cachesvc_warm(pos_cachesvc_t *s);

/* An inventory message: the body minus "type" becomes the cached value. */
void pos_cachesvc_inventory(pos_cachesvc_t *s, const pos_msg_inventory_t *inv, const char *json,
                            size_t len);

/*
 * Server-assisted invalidation (a push on __redis__:invalidate): "keys" is
 * the array of keys that changed, each marked stale (refetched at the next
 * read), or NULL when Redis flushed everything (all marked stale).
 */
void pos_cachesvc_tracking(pos_cachesvc_t *s, const redisReply *keys);

/*
 * CACHE_INVALIDATE: drops the entries matching the glob (compiled once;
 * the writer tests the keys in slices, reads on the loop see them gone at
 * once). Logs how many went once done.
 */
void pos_cachesvc_invalidate(pos_cachesvc_t *s, const char *pattern);

/*
 * The same for the plen bytes of pattern, with done(arg, status, count
 * dropped) once the last slice is applied (the local API's CACHE.CLEAR).
 * Returns 0 (done follows), -EBUSY (escalated: every entry marked stale
 * instead, done not called), -ENODEV (no local cache) or -ENOMEM.
 */
int pos_cachesvc_clear(pos_cachesvc_t *s, const char *pattern, size_t plen, pos_cache_done_fn done,
                       void *arg);

/* How long a local copy of "family" stays fresh, ms (0: no cache). */
uint64_t pos_cachesvc_ttl_ms(const pos_cachesvc_t *s, pos_cache_family_t family);

/* Applies new freshness per family (ms) and a new warm-up interval (s), as
 * a configuration reload asks; nothing without an open cache. */
void pos_cachesvc_set_freshness(pos_cachesvc_t *s, const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT],
                                unsigned warm_interval_s);

/*
 * Closes the service's timers and stops the cache from handing requests
 * to the writer (pos_cache_detach()): call it before the writer is
 * closed. done(arg) (done may be NULL) runs once the timers are closed.
 */
void pos_cachesvc_close(pos_cachesvc_t *s, void (*done)(void *arg), void *arg);

/* Carries out what is still waiting, writes pending touches and closes the
 * cache: after the loop has ended and the writer is closed. */
void pos_cachesvc_dispose(pos_cachesvc_t *s);

#endif /* AGENT_SYNC_CACHESVC_H */
