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
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/store/cache.h"
#include "agent/msg/messages.h"

typedef struct pos_agent pos_agent_t;

/* Result of a read. status: 0 found, -ENOENT not found, or an error.
 * value is only valid during the call. */
typedef void (*pos_cachesvc_cb)(void *ctx, int status, const char *value, size_t len,
                                uint64_t age_ms, bool fresh);

typedef struct pos_cache_fetch pos_cache_fetch_t;

typedef struct pos_cachesvc {
    pos_agent_t *agent;
    pos_cache_t cache;
    bool open;
    uv_timer_t flush_timer; /* writes LRU touches out now and then */
    bool timer_open;
    pos_cache_fetch_t *fetches; /* GETs in flight, by key */
    uint64_t fetches_shared;    /* reads that joined a GET already in flight */
    pos_cache_cursor_t reval;   /* revalidation walk after a reconnect */
    bool revalidating;
    uint64_t reval_epoch;       /* bumped per reconnect: stale batches stop */
    uint64_t revalidated;       /* entries confirmed or refreshed by MGET */
    uv_timer_t warm_timer;      /* periodic warm-up ([cache] warm_interval_s) */
    bool warm_timer_open;
    bool warming;
    uint64_t warm_epoch;
    uint64_t warmed_inventory;  /* entries stored by the current warm-up */
    uint64_t warmed_products;
} pos_cachesvc_t;

/* Opens the cache on the agent's store (if the store is open). */
void pos_cachesvc_init(pos_cachesvc_t *s, pos_agent_t *a);

/* True for keys of a cached family. */
bool pos_cachesvc_cacheable(const char *key, size_t len);

/* Reads key; cb runs now or after a GET (never twice). */
void pos_cachesvc_read(pos_cachesvc_t *s, const char *key, size_t len, pos_cachesvc_cb cb,
                       void *ctx);

/*
 * The link is online again: entries not verified since since_ms (epoch ms;
 * the disconnect, or the agent's start) are marked stale and revalidated
 * with MGET in batches, never dropped while the link is down.
 */
void pos_cachesvc_online(pos_cachesvc_t *s, uint64_t since_ms);

/*
 * Warm-up: SCAN MATCH inventory:{storeId}:* COUNT 500, MGET each batch,
 * then MGET the product: keys they reference; one command in flight at a
 * time, never KEYS. Runs at the first connect and every warm_interval_s.
 */
void pos_cachesvc_warm(pos_cachesvc_t *s);

/* An inventory message: the body minus "type" becomes the cached value. */
void pos_cachesvc_inventory(pos_cachesvc_t *s, const pos_msg_inventory_t *inv,
                            const char *json, size_t len);

/*
 * Server-assisted invalidation (a push on __redis__:invalidate): "keys" is
 * the array of keys that changed, each marked stale (refetched at the next
 * read), or NULL when Redis flushed everything (all marked stale).
 */
void pos_cachesvc_tracking(pos_cachesvc_t *s, const redisReply *keys);

/* CACHE_INVALIDATE: drops the entries matching the glob. */
void pos_cachesvc_invalidate(pos_cachesvc_t *s, const char *pattern);

/* Writes pending touches and closes the cache (after the loop ends; the
 * agent closes flush_timer with its other handles). */
void pos_cachesvc_dispose(pos_cachesvc_t *s);

#endif /* AGENT_SYNC_CACHESVC_H */
