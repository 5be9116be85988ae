#include "agent/store/cache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform/clock.h"
#include "platform/endian.h"
#include "platform/hash.h"
#include "platform/log.h"
#include "platform/mem.h"

/*
 * Record layout (little-endian, 32-byte header, then the value):
 *   0 version (1)  1 family  2 flags (bit 0: stale)  3 reserved
 *   4 value length (u32)  8 fetched_at_ms  16 verified_at_ms  24 last_access
 * The LRU index maps be64(last_access) -> key; each entry has exactly one.
 */
#define REC_VERSION 1u
#define FLAG_STALE  1u

/* Changes a write transaction makes, applied to the counters once it committed. */
typedef struct delta {
    long long bytes;
    long long entries;
    uint64_t evictions;
} delta_t;

/* ---- pure parts ------------------------------------------------------- */

int pos_cache_record_parse(const void *rec, size_t len, pos_cache_meta_t *meta, const void **value)
{
    const unsigned char *p = rec;
    if (rec == NULL || len < POS_CACHE_HDR_SIZE || p[0] != REC_VERSION ||
        p[1] >= POS_CACHE_FAMILY_COUNT || (p[2] & ~FLAG_STALE) != 0) {
        return -EBADMSG;
    }
    uint32_t vlen = pos_endian_get_le32(p + 4);
    if ((size_t)vlen != len - POS_CACHE_HDR_SIZE) {
        return -EBADMSG;
    }
    meta->family = (pos_cache_family_t)p[1];
    meta->stale = (p[2] & FLAG_STALE) != 0;
    meta->value_len = vlen;
    meta->fetched_at_ms = pos_endian_get_le64(p + 8);
    meta->verified_at_ms = pos_endian_get_le64(p + 16);
    meta->last_access = pos_endian_get_le64(p + 24);
    if (value != NULL) {
        *value = p + POS_CACHE_HDR_SIZE;
    }
    return 0;
}

static void encode_header(unsigned char *p, const pos_cache_meta_t *m)
{
    p[0] = REC_VERSION;
    p[1] = (unsigned char)m->family;
    p[2] = m->stale ? FLAG_STALE : 0;
    p[3] = 0;
    pos_endian_put_le32(p + 4, m->value_len);
    pos_endian_put_le64(p + 8, m->fetched_at_ms);
    pos_endian_put_le64(p + 16, m->verified_at_ms);
    pos_endian_put_le64(p + 24, m->last_access);
}

bool pos_cache_expired(const pos_cache_meta_t *meta, uint64_t now_ms,
                       const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT])
{
    uint64_t ttl = ttl_ms[meta->family < POS_CACHE_FAMILY_COUNT ? meta->family : 0];
    if (now_ms < meta->verified_at_ms) {
        return ttl == 0;
    }
    return now_ms - meta->verified_at_ms >= ttl;
}

int pos_cache_evict_cmp(const pos_cache_meta_t *a, const pos_cache_meta_t *b, uint64_t now_ms,
                        const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT])
{
    bool ea = pos_cache_expired(a, now_ms, ttl_ms);
    bool eb = pos_cache_expired(b, now_ms, ttl_ms);
    if (ea != eb) {
        return ea ? -1 : 1;
    }
    if (ea) {
        /* Both expired: the one that expired earlier goes first. */
        uint64_t xa = a->verified_at_ms + ttl_ms[a->family];
        uint64_t xb = b->verified_at_ms + ttl_ms[b->family];
        if (xa != xb) {
            return xa < xb ? -1 : 1;
        }
    }
    if (a->last_access != b->last_access) {
        return a->last_access < b->last_access ? -1 : 1;
    }
    return 0;
}

pos_cache_family_t pos_cache_family_of(const char *key, size_t key_len)
{
    static const struct {
        const char *prefix;
        pos_cache_family_t family;
    } map[] = {
        {"product:", POS_CACHE_PRODUCT},
        {"inventory:", POS_CACHE_INVENTORY},
        {"user:", POS_CACHE_USER},
        {"session:", POS_CACHE_SESSION},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        size_t n = strlen(map[i].prefix);
        if (key != NULL && key_len > n && memcmp(key, map[i].prefix, n) == 0) {
            return map[i].family;
        }
    }
    return POS_CACHE_OTHER;
}

static uint64_t hash_key(const char *key, size_t len)
{
    return pos_fnv1a64(key, len);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int check_key(const char *key, size_t len)
{
    if (key == NULL || len == 0) {
        return -EINVAL;
    }
    return len > POS_CACHE_KEY_MAX ? -ENAMETOOLONG : 0;
}

/* ---- record helpers inside a write transaction ------------------------ */

static int lru_del(pos_cache_t *c, MDB_txn *txn, uint64_t counter)
{
    unsigned char kb[8];
    pos_endian_put_be64(kb, counter);
    MDB_val k = {sizeof(kb), kb};
    int rc = pos_store_del(c->st, txn, POS_DB_CACHE_LRU, &k);
    return rc == MDB_NOTFOUND ? 0 : pos_store_errno(rc);
}

static int lru_put(pos_cache_t *c, MDB_txn *txn, uint64_t counter, const char *key, size_t len)
{
    unsigned char kb[8];
    pos_endian_put_be64(kb, counter);
    MDB_val k = {sizeof(kb), kb};
    MDB_val v = {len, (void *)key};
    return pos_store_errno(pos_store_put(c->st, txn, POS_DB_CACHE_LRU, &k, &v, 0));
}

/* Reads a key's metadata inside txn. Returns 0, -ENOENT or a negative errno. */
static int read_meta(pos_cache_t *c, MDB_txn *txn, const char *key, size_t len, pos_cache_meta_t *m,
                     MDB_val *raw)
{
    MDB_val k = {len, (void *)key};
    int rc = mdb_get(txn, c->st->dbi[POS_DB_CACHE], &k, raw);
    if (rc != 0) {
        return pos_store_errno(rc);
    }
    return pos_cache_record_parse(raw->mv_data, raw->mv_size, m, NULL) == 0 ? 0 : -EIO;
}

/* Deletes one entry and its LRU record; adds what it freed to *d. */
static int del_entry(pos_cache_t *c, MDB_txn *txn, const char *key, size_t len, delta_t *d)
{
    pos_cache_meta_t m;
    MDB_val raw;
    int rc = read_meta(c, txn, key, len, &m, &raw);
    if (rc != 0) {
        return rc;
    }
    size_t size = len + raw.mv_size;
    rc = lru_del(c, txn, m.last_access);
    if (rc == 0) {
        MDB_val k = {len, (void *)key};
        rc = pos_store_errno(pos_store_del(c->st, txn, POS_DB_CACHE, &k));
    }
    if (rc == 0) {
        d->bytes -= (long long)size;
        d->entries--;
    }
    return rc;
}

/*
 * A malloc'd copy of the record raw with its header encoded from m (stale
 * flag, last_access), or NULL. The record is copied out first: a pointer
 * into the map is not valid across a write.
 */
static unsigned char *copy_with_header(const MDB_val *raw, const pos_cache_meta_t *m)
{
    unsigned char *copy = malloc(raw->mv_size);
    if (copy != NULL) {
        memcpy(copy, raw->mv_data, raw->mv_size);
        encode_header(copy, m);
    }
    return copy;
}

/* Rewrites an entry's header (stale flag, last_access) keeping its value. */
static int rewrite_header(pos_cache_t *c, MDB_txn *txn, const char *key, size_t len,
                          const MDB_val *raw, const pos_cache_meta_t *m)
{
    unsigned char *copy = copy_with_header(raw, m);
    if (copy == NULL) {
        return -ENOMEM;
    }
    MDB_val k = {len, (void *)key};
    MDB_val v = {raw->mv_size, copy};
    int rc = pos_store_errno(pos_store_put(c->st, txn, POS_DB_CACHE, &k, &v, 0));
    free(copy);
    return rc;
}

/* Writes LRU touches into txn (a touch older than the entry's counter is passed over). */
static int apply_touches(pos_cache_t *c, MDB_txn *txn, const pos_cache_pending_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pos_cache_pending_t *p = &t[i];
        pos_cache_meta_t m = {0};
        MDB_val raw;
        int rc = read_meta(c, txn, p->key, p->key_len, &m, &raw);
        if (rc == -ENOENT || (rc == 0 && m.last_access >= p->counter)) {
            continue; /* deleted or rewritten since the read */
        }
        uint64_t old_counter = m.last_access;
        if (rc == 0) {
            /* Rewrite first: raw points into the map and is only valid until a write. */
            m.last_access = p->counter;
            rc = rewrite_header(c, txn, p->key, p->key_len, &raw, &m);
        }
        if (rc == 0) {
            rc = lru_del(c, txn, old_counter);
        }
        if (rc == 0) {
            rc = lru_put(c, txn, p->counter, p->key, p->key_len);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void free_touches(pos_cache_pending_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].key);
    }
}

/* ---- eviction --------------------------------------------------------- */

typedef struct victim {
    pos_cache_meta_t meta;
    size_t key_len;
    char *key;
} victim_t;

/* Keys a walk of the cache collects, to delete once the walk is over. */
typedef struct collect {
    const pos_cache_t *c;
    uint64_t now_ms;                         /* collect_expired(): expired at this time */
    uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT]; /* and with these TTLs */
    victim_t *v;     /* growing array */
    size_t n, cap;
} collect_t;

/* Appends a copy of key k (and meta m, if given) to a->v. Returns 0 or -ENOMEM. */
static int victims_push(collect_t *a, const MDB_val *k, const pos_cache_meta_t *m)
{
    victim_t *nv = pos_mem_grow(a->v, a->n, &a->cap, sizeof(*a->v), 64);
    if (nv == NULL) {
        return -ENOMEM;
    }
    a->v = nv;
    victim_t *e = &a->v[a->n];
    e->key = malloc(k->mv_size);
    if (e->key == NULL) {
        return -ENOMEM;
    }
    memcpy(e->key, k->mv_data, k->mv_size);
    e->key_len = k->mv_size;
    if (m != NULL) {
        e->meta = *m;
    }
    a->n++;
    return 0;
}

static void victims_free(collect_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].key);
    }
    free(a->v);
}

static int collect_expired(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *val)
{
    collect_t *a = ctx;
    pos_cache_meta_t m;

    (void)cur;
    if (pos_cache_record_parse(val->mv_data, val->mv_size, &m, NULL) != 0 ||
        !pos_cache_expired(&m, a->now_ms, a->ttl_ms)) {
        return 0;
    }
    return victims_push(a, k, &m);
}

/* The TTLs now: pos_cache_set_ttl() changes them on the loop while the
 * writer thread evicts, so each reads them whole, atomically per family. */
static void ttl_snapshot(const pos_cache_t *c, uint64_t out[POS_CACHE_FAMILY_COUNT])
{
    for (size_t i = 0; i < POS_CACHE_FAMILY_COUNT; i++) {
        out[i] = __atomic_load_n(&c->cfg.ttl_ms[i], __ATOMIC_RELAXED);
    }
}

void pos_cache_set_ttl(pos_cache_t *c, const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT])
{
    for (size_t i = 0; i < POS_CACHE_FAMILY_COUNT; i++) {
        __atomic_store_n(&c->cfg.ttl_ms[i], ttl_ms[i], __ATOMIC_RELAXED);
    }
}

uint64_t pos_cache_ttl_ms(const pos_cache_t *c, pos_cache_family_t family)
{
    return family < POS_CACHE_FAMILY_COUNT
               ? __atomic_load_n(&c->cfg.ttl_ms[family], __ATOMIC_RELAXED)
               : 0;
}

/* qsort() has no context argument; evictions run in the writer thread and,
 * without one, in the caller's, so the comparison's is per thread. */
static _Thread_local uint64_t sort_now;
static _Thread_local const uint64_t *sort_ttl;

static int victim_cmp(const void *a, const void *b)
{
    const victim_t *va = a, *vb = b;
    return pos_cache_evict_cmp(&va->meta, &vb->meta, sort_now, sort_ttl);
}

/* Evicts expired entries, longest-expired first, until need bytes went. */
static int evict_expired(pos_cache_t *c, MDB_txn *txn, size_t need, uint64_t now_ms, delta_t *d,
                         size_t *freed)
{
    collect_t a = {.c = c, .now_ms = now_ms};
    ttl_snapshot(c, a.ttl_ms);
    int result = pos_store_each(c->st, txn, POS_DB_CACHE, collect_expired, &a);
    victim_t *v = a.v;
    size_t n = a.n;
    if (result == 0) {
        sort_now = now_ms;
        sort_ttl = a.ttl_ms;
        if (n > 1) {
            qsort(v, n, sizeof(*v), victim_cmp);
        }
        for (size_t i = 0; i < n && *freed < need; i++) {
            long long before = d->bytes;
            result = del_entry(c, txn, v[i].key, v[i].key_len, d);
            if (result != 0) {
                break;
            }
            *freed += (size_t)(before - d->bytes);
            d->evictions++;
        }
    }
    victims_free(&a);
    return result;
}

/* Evicts the least recently used entries until need bytes went. */
static int evict_lru(pos_cache_t *c, MDB_txn *txn, size_t need, delta_t *d, size_t *freed)
{
    char key[POS_CACHE_KEY_MAX];
    while (*freed < need) {
        MDB_cursor *cur;
        int rc = mdb_cursor_open(txn, c->st->dbi[POS_DB_CACHE_LRU], &cur);
        if (rc != 0) {
            return pos_store_errno(rc);
        }
        MDB_val k, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && (v.mv_size == 0 || v.mv_size > sizeof(key))) {
            rc = pos_store_cursor_del(c->st, cur, POS_DB_CACHE_LRU); /* no entry can match */
            mdb_cursor_close(cur);
            if (rc != 0) {
                return pos_store_errno(rc);
            }
            continue;
        }
        size_t len = v.mv_size;
        if (rc == 0) {
            memcpy(key, v.mv_data, len);
        }
        uint64_t counter = rc == 0 ? pos_endian_get_be64(k.mv_data) : 0;
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND) {
            return 0;
        }
        if (rc != 0) {
            return pos_store_errno(rc);
        }
        long long before = d->bytes;
        rc = del_entry(c, txn, key, len, d);
        if (rc == -ENOENT) {
            rc = lru_del(c, txn, counter); /* an orphan: drop it and go on */
        } else if (rc == 0) {
            *freed += (size_t)(before - d->bytes);
            d->evictions++;
            /* del_entry removed the LRU record of the entry's own counter. */
            rc = lru_del(c, txn, counter);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int evict_txn(pos_cache_t *c, MDB_txn *txn, size_t need, uint64_t now_ms, delta_t *d,
                     size_t *freed)
{
    *freed = 0;
    int rc = evict_expired(c, txn, need, now_ms, d, freed);
    if (rc == 0 && *freed < need) {
        rc = evict_lru(c, txn, need, d, freed);
    }
    return rc;
}

typedef struct evict_args {
    pos_cache_t *c;
    size_t need; /* bytes */
    uint64_t now_ms;
    size_t freed; /* bytes */
    delta_t d;
} evict_args_t;

static int evict_fn(void *ctx, MDB_txn *txn)
{
    evict_args_t *a = ctx;
    return evict_txn(a->c, txn, a->need, a->now_ms, &a->d, &a->freed);
}

/* The smallest step of an eviction on a full map, bytes: a few entries. */
#define EVICT_STEP_MIN 4096u

/* One eviction transaction of its own; what it freed goes to the writing
 * side's counts and to the reclaimed ones the loop adds to its own. */
static long long evict_once(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted)
{
    evict_args_t a = {c, bytes, now_ms, 0, {0}};
    int rc = pos_store_txn_run(c->st, 0, evict_fn, &a);
    if (rc != 0) {
        return rc;
    }
    atomic_fetch_add(&c->wbytes, a.d.bytes);
    atomic_fetch_add(&c->wentries, a.d.entries);
    atomic_fetch_add(&c->reclaimed_bytes, a.d.bytes);
    atomic_fetch_add(&c->reclaimed_entries, a.d.entries);
    atomic_fetch_add(&c->reclaimed_evictions, a.d.evictions);
    if (evicted != NULL) {
        *evicted = (size_t)a.d.evictions;
    }
    return (long long)a.freed;
}

/*
 * Evicts about bytes in transactions of their own, in steps that fit in
 * the room the map has: the oldest entries lie all over the tree and each
 * leaf a deletion touches needs a new page (copy on write), so one large
 * eviction can need more pages than are free. A step refused for room is
 * tried again once the pages the steps before it freed are reusable (LMDB
 * hands them out only two commits later: pos_store_settle()), then cut to a
 * quarter, down to EVICT_STEP_MIN. Returns the bytes freed, 0 when there
 * was nothing to evict, or the error of the step that failed first
 * (-ENOSPC: not even the smallest step fits).
 */
static long long evict_steps(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted)
{
    long long total = 0, rc = 0;
    size_t count = 0, step = bytes;
    bool settled = true;

    while (total < (long long)bytes) {
        size_t n = 0;
        rc = evict_once(c, step, now_ms, &n);
        if (rc == -ENOSPC && !settled) {
            settled = true;
            if (pos_store_settle(c->st) == 0) {
                continue;
            }
        }
        if (rc == -ENOSPC && step > EVICT_STEP_MIN) {
            step = step / 4 > EVICT_STEP_MIN ? step / 4 : EVICT_STEP_MIN;
            continue;
        }
        if (rc <= 0) {
            break;
        }
        total += rc;
        count += n;
        settled = false;
        if (step < bytes) {
            step = step * 2 < bytes ? step * 2 : bytes; /* a step that fits: larger again */
        }
    }
    *evicted = count;
    return total > 0 ? total : rc;
}

long long pos_cache_evict(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    size_t count = 0;
    long long rc = evict_steps(c, bytes, now_ms, &count);
    if (rc == -ENOSPC && atomic_load(&c->wentries) > 0 && pos_store_reserve_begin(c->st) == 0) {
        /* Not even the smallest step fits: the map is full to its last
         * page. Only now borrow the reserve: the pages a deletion takes
         * there stay in the file for good. */
        rc = evict_steps(c, bytes, now_ms, &count);
        pos_store_reserve_end(c->st);
    }
    if (evicted != NULL) {
        *evicted = rc > 0 ? count : 0;
    }
    return rc;
}

/* The store's reclaimer: in the writer thread (or the caller's, without
 * one). Touches only the store and the atomic counters. */
static long long cache_reclaim(void *ctx, size_t bytes)
{
    pos_cache_t *c = ctx;
    /* Free more than asked: LMDB needs some spare pages for the retry itself;
     * and enough for the puts that were refused for room. */
    size_t want = bytes * 2 + 64u * 1024u;
    uint64_t refused = atomic_exchange(&c->want_room, 0);
    if (refused * 2 > want) {
        want = (size_t)refused * 2;
    }
    long long freed = pos_cache_evict(c, want, wall_ms(), NULL);
    if (freed > 0 && pos_store_short_of_room(c->st)) {
        /* The room just made is the other writes' (the reserve is gone or
         * was never there): the cache's own puts must not take it back. */
        long long held = atomic_load(&c->wbytes);
        uint64_t cap = held > 0 ? (uint64_t)held : 1;
        if (c->room_cap == 0) {
            if (c->room_floor == 0) {
                c->room_floor = cap / 2 > 0 ? cap / 2 : 1;
            }
            POS_INFO("cache",
                     "the store is short of room: the cache keeps to %" PRIu64
                     " bytes (at least %" PRIu64
                     "), evicting for new entries, until the disk has room again "
                     "(after a full map: until the agent restarts)",
                     cap > c->room_floor ? cap : c->room_floor, c->room_floor);
        }
        if (cap < c->room_floor) {
            cap = c->room_floor;
        }
        if (c->room_cap == 0 || cap < c->room_cap) {
            c->room_cap = cap;
        }
    }
    return freed;
}

/* ---- requests: what the writer applies --------------------------------- */

typedef enum req_kind {
    REQ_PUT = 0, /* nodes: the items */
    REQ_DEL,     /* one node */
    REQ_STALE,   /* one node */
    REQ_BULK,    /* bulk: in slices */
    REQ_TOUCH,   /* the touches only */
} req_kind_t;

typedef enum bulk_kind {
    BULK_DELETE_IF = 0,
    BULK_MARK_BEFORE, /* since_ms UINT64_MAX: everything */
} bulk_kind_t;

/* One key's change in the overlay. */
struct pos_cache_node {
    pos_cache_node_t *next; /* in its bucket, oldest first */
    pos_cache_req_t *req;
    uint64_t seq;
    uint64_t hash;
    const char *key;
    size_t key_len;
    pos_cache_meta_t meta;      /* REQ_PUT: the record as submitted */
    const unsigned char *value; /* REQ_PUT */
};

/* A bulk request: the loop owns the cursor, a slice reports where it stopped. */
typedef struct cache_bulk {
    bulk_kind_t kind;
    pos_cache_match_t match; /* BULK_DELETE_IF */
    uint64_t since_ms;       /* BULK_MARK_BEFORE */
    bool escalated;
    bool paused;  /* loop: a slice came back while the writer was going away */
    bool started; /* loop: cursor holds the last key visited */
    size_t total; /* loop: entries changed by the slices so far */
    size_t cursor_len;
    char cursor[POS_CACHE_KEY_MAX];
    /* A slice's results (the writer's, read on the loop after hand-back). */
    bool finished;
    bool visited;
    size_t next_len;
    char next[POS_CACHE_KEY_MAX];
} cache_bulk_t;

struct pos_cache_req {
    pos_store_op_t op; /* first: the writer hands back &op */
    pos_cache_t *c;
    pos_cache_req_t *next;      /* c->head list */
    pos_cache_req_t *bulk_next; /* c->bulks list */
    req_kind_t kind;
    uint64_t seq; /* REQ_BULK: its place among the changes */
    uint64_t now_ms;
    bool submitted, applied;
    bool lazy;   /* its commit may wait for company (pos_cache_put_lazy) */
    bool failed; /* applied with an error: the overlay no longer counts it */
    pos_cache_done_fn done;
    void *done_arg;
    /* Synchronous callers: where the result goes, while they wait. */
    int *sync_status;
    size_t *sync_count;
    bool *sync_completed;
    bool *more; /* a synchronous bulk: set when another slice is due */
    /* The writer's results. */
    delta_t delta;
    size_t count;
    bool counted;       /* delta went into the writing side's counts */
    uint64_t put_bytes; /* REQ_PUT: key + header + value bytes of the items */
    size_t nnodes;
    pos_cache_node_t *nodes;
    uint64_t node_bytes; /* what the nodes hold, for the overlay's bound */
    cache_bulk_t *bulk;
    size_t ntouches;
    pos_cache_pending_t *touches; /* carried along: written before the request's work */
};

static bool req_sync(const pos_cache_t *c)
{
    return c->cfg.writer == NULL;
}

/* Stores one item (a put node) inside txn, replacing any previous entry of the key. */
static int put_one(pos_cache_t *c, MDB_txn *txn, const pos_cache_node_t *it, delta_t *d)
{
    pos_cache_meta_t old;
    MDB_val raw;
    int rc = read_meta(c, txn, it->key, it->key_len, &old, &raw);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    pos_cache_meta_t m = it->meta;
    if (rc == 0) {
        if (old.value_len == m.value_len &&
            memcmp((const unsigned char *)raw.mv_data + POS_CACHE_HDR_SIZE, it->value,
                   m.value_len) == 0) {
            m.fetched_at_ms = old.fetched_at_ms; /* the same value, verified again */
        }
        d->bytes -= (long long)(it->key_len + raw.mv_size);
        d->entries--;
        rc = lru_del(c, txn, old.last_access);
        if (rc != 0) {
            return rc;
        }
    }
    MDB_val k = {it->key_len, (void *)it->key};
    MDB_val v = {POS_CACHE_HDR_SIZE + m.value_len, NULL};
    /* MDB_RESERVE: LMDB hands out the space and we fill it, saving a copy. */
    rc = pos_store_errno(pos_store_put(c->st, txn, POS_DB_CACHE, &k, &v, MDB_RESERVE));
    if (rc != 0) {
        return rc;
    }
    encode_header(v.mv_data, &m);
    if (m.value_len != 0) {
        memcpy((unsigned char *)v.mv_data + POS_CACHE_HDR_SIZE, it->value, m.value_len);
    }
    rc = pos_store_errno(pos_store_redo_put(c->st, POS_DB_CACHE, &k, &v));
    if (rc != 0) {
        return rc;
    }
    rc = lru_put(c, txn, m.last_access, it->key, it->key_len);
    if (rc != 0) {
        return rc;
    }
    d->bytes += (long long)(it->key_len + POS_CACHE_HDR_SIZE + m.value_len);
    d->entries++;
    return 0;
}

/*
 * The most bytes the cache may hold after a put (0: no bound): the byte
 * budget, or while the store is short of room what the cache held when it
 * last gave room back, whichever is less. *slack: how much more to evict
 * than the put needs, so that the next puts do not each evict.
 */
static uint64_t put_bound(pos_cache_t *c, uint64_t *slack)
{
    uint64_t bound = c->cfg.max_bytes;

    *slack = bound / 16;
    if (c->room_cap != 0 && !pos_store_short_of_room(c->st)) {
        c->room_cap = 0; /* the store has room again */
        POS_INFO("cache", "the store has room again: the cache may grow");
    }
    if (c->room_cap != 0 && (bound == 0 || c->room_cap < bound)) {
        bound = c->room_cap;
        *slack = 0; /* each put evicts what it needs: no more pages than that */
    }
    return bound;
}

/* Evicts for the byte bound if the batch needs it, then stores the batch. */
static int apply_put(pos_cache_t *c, MDB_txn *txn, pos_cache_req_t *r)
{
    int rc = 0;
    uint64_t slack, bound = put_bound(c, &slack);
    if (bound != 0) {
        long long now_bytes = atomic_load(&c->wbytes) + r->delta.bytes;
        uint64_t held = now_bytes > 0 ? (uint64_t)now_bytes : 0;
        if (held + r->put_bytes > bound) {
            uint64_t need = held + r->put_bytes - bound + slack;
            size_t freed;
            rc = evict_txn(c, txn, (size_t)need, r->now_ms, &r->delta, &freed);
        }
    }
    for (size_t i = 0; rc == 0 && i < r->nnodes; i++) {
        rc = put_one(c, txn, &r->nodes[i], &r->delta);
    }
    if (rc == 0) {
        r->count = r->nnodes;
    }
    return rc;
}

static int apply_del(pos_cache_t *c, MDB_txn *txn, pos_cache_req_t *r)
{
    const pos_cache_node_t *n = &r->nodes[0];
    int rc = del_entry(c, txn, n->key, n->key_len, &r->delta);
    if (rc == -ENOENT) {
        return 0; /* count 0: it was not there */
    }
    r->count = rc == 0;
    return rc;
}

static int apply_stale(pos_cache_t *c, MDB_txn *txn, pos_cache_req_t *r)
{
    const pos_cache_node_t *n = &r->nodes[0];
    pos_cache_meta_t m;
    MDB_val raw;
    int rc = read_meta(c, txn, n->key, n->key_len, &m, &raw);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc == 0 && !m.stale) {
        m.stale = true;
        rc = rewrite_header(c, txn, n->key, n->key_len, &raw, &m);
    }
    r->count = rc == 0;
    return rc;
}

/* Positions cur on the first key after the bulk's cursor (or the first key). */
static int slice_start(const cache_bulk_t *b, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    if (!b->started) {
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    }
    k->mv_size = b->cursor_len;
    k->mv_data = (void *)b->cursor;
    int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == b->cursor_len &&
        memcmp(k->mv_data, b->cursor, b->cursor_len) == 0) {
        rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    }
    return rc;
}

/* Marks the record under cur stale if the bulk wants it; counts it. */
static int slice_mark(pos_cache_t *c, const cache_bulk_t *b, MDB_cursor *cur, MDB_val *k,
                      MDB_val *v, size_t *n)
{
    pos_cache_meta_t m;

    if (pos_cache_record_parse(v->mv_data, v->mv_size, &m, NULL) != 0 || m.stale ||
        m.verified_at_ms >= b->since_ms) {
        return 0;
    }
    m.stale = true;
    unsigned char *copy = copy_with_header(v, &m);
    if (copy == NULL) {
        return -ENOMEM;
    }
    MDB_val nv = {v->mv_size, copy};
    /* Same key, same size: replaced in place, the cursor keeps its position. */
    int rc = pos_store_errno(pos_store_cursor_put(c->st, cur, POS_DB_CACHE, k, &nv, MDB_CURRENT));
    free(copy);
    *n += rc == 0;
    return rc;
}

/*
 * One slice of a bulk request: up to POS_CACHE_SLICE_KEYS keys after the
 * cursor, or POS_CACHE_SLICE_US of work, whichever comes first. Reads the
 * cursor, writes only its results: a retried slice starts over.
 */
static int apply_slice(pos_cache_t *c, MDB_txn *txn, pos_cache_req_t *r)
{
    cache_bulk_t *b = r->bulk;
    collect_t found = {.c = c};
    uint64_t t0 = pos_clock_mono_us();
    size_t seen = 0;
    MDB_cursor *cur;
    MDB_val k, v;

    b->finished = false;
    b->visited = false;
    int mrc = mdb_cursor_open(txn, c->st->dbi[POS_DB_CACHE], &cur);
    if (mrc != 0) {
        return pos_store_errno(mrc);
    }
    int rc = 0; /* a negative errno; mrc: LMDB's walk */
    for (mrc = slice_start(b, cur, &k, &v); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        memcpy(b->next, k.mv_data, k.mv_size); /* before any write moves it */
        b->next_len = k.mv_size;
        b->visited = true;
        if (b->kind == BULK_DELETE_IF) {
            if (b->match.match(b->match.ctx, k.mv_data, k.mv_size)) {
                rc = victims_push(&found, &k, NULL);
            }
        } else {
            rc = slice_mark(c, b, cur, &k, &v, &r->count);
        }
        if (rc != 0) {
            break;
        }
        if (++seen >= POS_CACHE_SLICE_KEYS ||
            (seen % 32 == 0 && pos_clock_mono_us() - t0 >= POS_CACHE_SLICE_US)) {
            break; /* mrc 0: more to come */
        }
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc == MDB_NOTFOUND) {
        b->finished = true;
    } else if (rc == 0 && mrc != 0) {
        rc = pos_store_errno(mrc);
    }
    /* Collected first, deleted after: a write invalidates the cursor's data pointers. */
    for (size_t i = 0; rc == 0 && i < found.n; i++) {
        rc = del_entry(c, txn, found.v[i].key, found.v[i].key_len, &r->delta);
        r->count += rc == 0;
    }
    victims_free(&found);
    return rc;
}

/* The writer's side of every request: its touches, then its work, in txn. */
static int req_apply(pos_store_op_t *op, MDB_txn *txn)
{
    pos_cache_req_t *r = (pos_cache_req_t *)op;
    pos_cache_t *c = r->c;
    int rc = 0;

    if (r->counted) {
        /* Applied before and then undone (the group's commit was refused): start over. */
        atomic_fetch_sub(&c->wbytes, r->delta.bytes);
        atomic_fetch_sub(&c->wentries, r->delta.entries);
        r->counted = false;
    }
    memset(&r->delta, 0, sizeof(r->delta));
    r->count = 0;
    if (r->ntouches > 0) {
        rc = apply_touches(c, txn, r->touches, r->ntouches);
    }
    if (rc == 0) {
        switch (r->kind) {
        case REQ_PUT:
            rc = apply_put(c, txn, r);
            break;
        case REQ_DEL:
            rc = apply_del(c, txn, r);
            break;
        case REQ_STALE:
            rc = apply_stale(c, txn, r);
            break;
        case REQ_BULK:
            rc = apply_slice(c, txn, r);
            break;
        case REQ_TOUCH:
            break;
        }
    }
    if (rc == 0) {
        atomic_fetch_add(&c->wbytes, r->delta.bytes);
        atomic_fetch_add(&c->wentries, r->delta.entries);
        r->counted = true;
    } else if (rc == -ENOSPC && r->kind == REQ_PUT) {
        /* The writer asks the reclaimer once for every put of its group that
         * was refused for room: it must free what they all need. */
        atomic_fetch_add(&c->want_room, r->put_bytes);
    }
    return rc;
}

/*
 * The requests the cache has with the writer: one operation at a time,
 * carrying every request that waited meanwhile (up to CARRIER_NODES keys'
 * changes or CARRIER_BYTES, and at least one request) in one nested
 * transaction. The writer groups operations anyway (one nested transaction
 * a group; one an operation when one of them fails: LMDB allocates about
 * 2.5 MiB of lists for each); this bounds the writer's queue for the cache
 * to one operation. Small, as
 * LMDB keeps the dirty pages of its largest write transaction for reuse. A
 * bulk request's slices go alone.
 */
#define CARRIER_NODES 64
#define CARRIER_BYTES (256u * 1024u)

struct pos_cache_carrier {
    pos_store_op_t op;
    pos_cache_t *c;
    pos_cache_req_t *first; /* n requests in order from here (their next links) */
    size_t n;
};

static int carrier_apply(pos_store_op_t *op, MDB_txn *txn)
{
    pos_cache_carrier_t *k = op->ctx;
    pos_cache_req_t *r = k->first;
    int rc = 0;

    for (size_t i = 0; i < k->n && rc == 0; i++) {
        rc = req_apply(&r->op, txn);
        if (i + 1 < k->n) {
            r = r->next; /* never past the last: the loop may be appending there */
        }
    }
    if (rc == -ENOSPC) {
        /* All of them go again after the reclaimer made room: ask for theirs. */
        r = k->first;
        for (size_t i = 0; i < k->n; i++) {
            atomic_fetch_add(&k->c->want_room, r->put_bytes);
            if (i + 1 < k->n) {
                r = r->next;
            }
        }
    }
    return rc;
}

/* ---- the overlay (loop thread) ----------------------------------------- */

static pos_cache_node_t **bucket_of(const pos_cache_t *c, uint64_t hash)
{
    return &c->buckets[hash & (POS_CACHE_BUCKETS - 1)];
}

/* The last node of each bucket, for appending in order. */
static pos_cache_node_t **bucket_tail_of(const pos_cache_t *c, uint64_t hash)
{
    return &c->buckets[POS_CACHE_BUCKETS + (hash & (POS_CACHE_BUCKETS - 1))];
}

static bool node_is(const pos_cache_node_t *n, uint64_t hash, const char *key, size_t len)
{
    return n->hash == hash && n->key_len == len && memcmp(n->key, key, len) == 0;
}

/* The first node of key at or after n in its bucket, or NULL. */
static const pos_cache_node_t *node_next(const pos_cache_node_t *n, uint64_t hash, const char *key,
                                         size_t len)
{
    while (n != NULL && !node_is(n, hash, key, len)) {
        n = n->next;
    }
    return n;
}

/* A key's state as the replay carries it along. */
typedef struct replay {
    bool present;
    pos_cache_meta_t meta;
    const void *value;
} replay_t;

static void replay_node(replay_t *st, const pos_cache_node_t *n)
{
    switch (n->req->kind) {
    case REQ_PUT: {
        /* As put_one() will: the same bytes again keep fetched_at. */
        bool same = st->present && st->meta.value_len == n->meta.value_len &&
                    (n->meta.value_len == 0 || memcmp(st->value, n->value, n->meta.value_len) == 0);
        uint64_t fetched = same ? st->meta.fetched_at_ms : n->meta.fetched_at_ms;
        st->meta = n->meta;
        st->meta.fetched_at_ms = fetched;
        st->value = n->value;
        st->present = true;
        break;
    }
    case REQ_DEL:
        st->present = false;
        break;
    default:
        if (st->present) {
            st->meta.stale = true;
        }
        break;
    }
}

static void replay_bulk(replay_t *st, const cache_bulk_t *b, const char *key, size_t len)
{
    if (!st->present) {
        return;
    }
    if (b->kind == BULK_DELETE_IF) {
        if (b->match.match(b->match.ctx, key, len)) {
            st->present = false;
        }
    } else if (!st->meta.stale && st->meta.verified_at_ms < b->since_ms) {
        st->meta.stale = true;
    }
}

/*
 * Replays every change and bulk request of the overlay that concerns key,
 * in order, over *st (what the store holds now). The store may hold some
 * of them already (applied, not yet retired): a change either sets the key
 * (put, delete, a matching delete_if) or marks it stale, so replaying one
 * the store holds changes nothing. And since the cache's requests reach
 * the store in order, a bulk one holding the later ones back, what the
 * store holds is always a prefix of the overlay's order.
 */
static void overlay_replay(const pos_cache_t *c, const char *key, size_t len, replay_t *st)
{
    if (c->head == NULL) {
        return;
    }
    uint64_t hash = hash_key(key, len);
    const pos_cache_node_t *n = node_next(*bucket_of(c, hash), hash, key, len);
    const pos_cache_req_t *b = c->bulks;

    while (n != NULL || b != NULL) {
        if (b == NULL || (n != NULL && n->seq < b->seq)) {
            if (!n->req->failed) {
                replay_node(st, n);
            }
            n = node_next(n->next, hash, key, len);
        } else {
            if (!b->failed) {
                replay_bulk(st, b->bulk, key, len);
            }
            b = b->bulk_next;
        }
    }
}

static void overlay_add(pos_cache_t *c, pos_cache_req_t *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        pos_cache_node_t *n = &r->nodes[i];
        pos_cache_node_t **tail = bucket_tail_of(c, n->hash);
        n->req = r;
        n->seq = ++c->seq;
        n->next = NULL;
        if (*tail != NULL) {
            (*tail)->next = n;
        } else {
            *bucket_of(c, n->hash) = n;
        }
        *tail = n;
    }
    if (r->bulk != NULL) {
        r->seq = ++c->seq;
        r->bulk_next = NULL;
        if (c->bulks_tail != NULL) {
            c->bulks_tail->bulk_next = r;
        } else {
            c->bulks = r;
        }
        c->bulks_tail = r;
        c->stats.overlay_bulks++;
    }
    c->stats.overlay_ops += r->nnodes;
    c->stats.overlay_bytes += r->node_bytes;
}

static void overlay_remove(pos_cache_t *c, pos_cache_req_t *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        pos_cache_node_t *n = &r->nodes[i];
        pos_cache_node_t **pp = bucket_of(c, n->hash), *prev = NULL;
        /* Retired in order: the oldest node of its bucket, so the first. */
        while (*pp != n) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = n->next;
        if (*bucket_tail_of(c, n->hash) == n) {
            *bucket_tail_of(c, n->hash) = prev;
        }
    }
    if (r->bulk != NULL) {
        pos_cache_req_t **pp = &c->bulks, *prev = NULL;
        while (*pp != r) {
            prev = *pp;
            pp = &(*pp)->bulk_next;
        }
        *pp = r->bulk_next;
        if (c->bulks_tail == r) {
            c->bulks_tail = prev;
        }
        c->stats.overlay_bulks--;
    }
    c->stats.overlay_ops -= r->nnodes;
    c->stats.overlay_bytes -= r->node_bytes;
}

/* ---- requests (loop thread) -------------------------------------------- */

static void req_applied(pos_store_op_t *op);
static void carrier_applied(pos_store_op_t *op);

/*
 * A request of kind with room for nnodes nodes, a bulk part if bulk, and
 * extra bytes (returned in *storage) for the nodes' keys and values.
 */
static pos_cache_req_t *req_new(pos_cache_t *c, req_kind_t kind, size_t nnodes, bool bulk,
                                size_t extra, unsigned char **storage)
{
    size_t size = sizeof(pos_cache_req_t) + nnodes * sizeof(pos_cache_node_t) +
                  (bulk ? sizeof(cache_bulk_t) : 0) + extra;
    pos_cache_req_t *r = calloc(1, size);
    if (r == NULL) {
        return NULL;
    }
    r->c = c;
    r->kind = kind;
    r->op.apply = req_apply;
    r->op.applied = req_applied;
    r->op.ctx = r;
    r->nodes = (pos_cache_node_t *)(r + 1);
    r->nnodes = nnodes;
    unsigned char *p = (unsigned char *)(r->nodes + nnodes);
    if (bulk) {
        r->bulk = (cache_bulk_t *)p;
        p += sizeof(cache_bulk_t);
    }
    if (storage != NULL) {
        *storage = p;
    }
    r->node_bytes = nnodes * sizeof(pos_cache_node_t) + extra;
    return r;
}

static void req_free(pos_cache_req_t *r)
{
    if (r->bulk != NULL && r->bulk->match.release != NULL) {
        r->bulk->match.release(r->bulk->match.ctx);
    }
    if (r->touches != NULL) {
        free_touches(r->touches, r->ntouches);
        free(r->touches);
    }
    free(r);
}

/* The writer is closing or closed: requests wait for pos_cache_close(). */
static bool writer_gone(const pos_cache_t *c)
{
    return c->detached || (c->cfg.writer != NULL && !c->cfg.writer->running);
}

/*
 * Hands r to the writer, or without one runs it here and now: every slice
 * of a bulk request, and then its callbacks, which free r.
 */
static void req_submit(pos_cache_t *c, pos_cache_req_t *r)
{
    if (!req_sync(c)) {
        c->inflight++;
        pos_store_writer_submit(c->cfg.writer, &r->op);
        pos_store_writer_commit_soon(c->cfg.writer); /* a bulk slice: the next waits for it */
        return;
    }
    bool more;
    do {
        more = false;
        r->more = &more;
        (void)pos_store_op_run_now(c->st, &r->op);
    } while (more);
}

/* Hands the waiting requests from c->unsubmitted to the writer as one
 * carrier: up to the first bulk request, CARRIER_NODES or CARRIER_BYTES. */
static void carrier_submit(pos_cache_t *c)
{
    pos_cache_carrier_t *k = c->carrier;
    pos_cache_req_t *r = c->unsubmitted;
    uint64_t bytes = 0;
    size_t nodes = 0;
    bool lazy = true;

    k->first = r;
    k->n = 0;
    while (r != NULL && r->kind != REQ_BULK &&
           (k->n == 0 ||
            (nodes + r->nnodes <= CARRIER_NODES && bytes + r->node_bytes <= CARRIER_BYTES))) {
        r->submitted = true;
        lazy &= r->lazy;
        bytes += r->node_bytes;
        nodes += r->nnodes;
        k->n++;
        r = r->next;
    }
    c->unsubmitted = r;
    c->inflight++;
    c->inflight_lazy = lazy;
    k->op.weight = (size_t)bytes;
    pos_store_writer_submit_ex(c->cfg.writer, &k->op, lazy);
    if (!lazy) {
        /* Its requests are answered, and the next carrier leaves, once it
         * is applied: not worth holding back for the writer's next batch. */
        pos_store_writer_commit_soon(c->cfg.writer);
    }
}

/*
 * Submits the waiting requests in order: without a writer each at once;
 * with one, a carrier when nothing of the cache is with the writer. A bulk
 * request goes alone and holds the rest back until its last slice.
 */
static void cache_pump(pos_cache_t *c)
{
    if (c->pumping) {
        return; /* a synchronous run further up the stack goes on with the rest */
    }
    c->pumping = true;
    while (c->unsubmitted != NULL && c->bulk_running == NULL && !writer_gone(c) &&
           (req_sync(c) || c->inflight == 0)) {
        pos_cache_req_t *r = c->unsubmitted;
        if (r->kind != REQ_BULK && !req_sync(c)) {
            carrier_submit(c);
            continue;
        }
        c->unsubmitted = r->next;
        r->submitted = true;
        if (r->kind == REQ_BULK) {
            c->bulk_running = r;
        }
        req_submit(c, r);
    }
    c->pumping = false;
}

/* Frees the applied requests at the head, in order. */
static void cache_retire(pos_cache_t *c)
{
    while (c->head != NULL && c->head->applied) {
        pos_cache_req_t *r = c->head;
        c->head = r->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        overlay_remove(c, r);
        req_free(r);
    }
}

/* The pending touches go with r (the next write carries them). */
static void req_take_touches(pos_cache_t *c, pos_cache_req_t *r)
{
    if (c->pending_count == 0) {
        return;
    }
    r->touches = malloc(c->pending_count * sizeof(*r->touches));
    if (r->touches == NULL) {
        return; /* they wait for the next one */
    }
    memcpy(r->touches, c->pending, c->pending_count * sizeof(*r->touches));
    r->ntouches = c->pending_count;
    c->pending_count = 0;
}

/* Appends r to the requests and the overlay, and submits what may go. */
static void cache_issue(pos_cache_t *c, pos_cache_req_t *r)
{
    req_take_touches(c, r);
    overlay_add(c, r);
    r->next = NULL;
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    if (c->unsubmitted == NULL) {
        c->unsubmitted = r;
    }
    if (r->kind == REQ_TOUCH) {
        c->touching = true;
    }
    bool eager = !r->lazy;
    cache_pump(c); /* may free r */
    if (c->unsubmitted != NULL && c->inflight > 0 && !writer_gone(c)) {
        /* Requests wait for the one with the writer to come back applied. */
        if (eager && c->inflight_lazy) {
            pos_store_writer_hurry(c->cfg.writer); /* a lazy one, waiting for company */
        }
        if (eager) {
            /* Someone waits for it: no waiting for the writer's batch. A
             * lazy one (a counter's value) waits with it, or an LMDB
             * commit would follow every payment's counters and stand in
             * front of the next payment's record. */
            pos_store_writer_commit_soon(c->cfg.writer);
        }
    }
}

/*
 * Issues r and, without a writer, waits for it: returns its status and
 * *count; with one (or when a synchronous run further up the stack will
 * carry it out) returns 0 at once, *completed telling which.
 */
static int req_run(pos_cache_t *c, pos_cache_req_t *r, size_t *count, bool *completed)
{
    int status = 0;
    size_t n = 0;
    bool done = false;

    r->sync_status = &status;
    r->sync_count = &n;
    r->sync_completed = &done;
    cache_issue(c, r);
    if (!done) {
        /* r lives on until it is applied: forget the caller's stack. */
        r->sync_status = NULL;
        r->sync_count = NULL;
        r->sync_completed = NULL;
    }
    if (count != NULL) {
        *count = n;
    }
    if (completed != NULL) {
        *completed = done;
    }
    return status;
}

/* A request the store refused: counted, and logged at most once a minute. */
static void req_refused(pos_cache_t *c, const pos_cache_req_t *r, int status)
{
    static const char *const what[] = {"put", "delete", "stale mark", "bulk", "touch"};
    uint64_t now = pos_clock_mono_ms();

    c->stats.write_errors++;
    if (c->stats.write_errors > 1 && now - c->err_log_ms < 60000u) {
        return;
    }
    c->err_log_ms = now;
    POS_WARN("cache", "a cache %s was refused by the store: %s (%llu refused so far)",
             what[r->kind], strerror(-status), (unsigned long long)c->stats.write_errors);
}

/* r is over: its result to whoever waits, then retired in order. */
static void req_finish(pos_cache_t *c, pos_cache_req_t *r, int status)
{
    size_t count = r->kind == REQ_BULK ? r->bulk->total : r->count;

    if (status != 0) {
        r->failed = true;
        req_refused(c, r, status);
    }
    if (r->kind == REQ_BULK) {
        c->bulk_running = NULL;
    }
    if (r->kind == REQ_TOUCH) {
        c->touching = false;
    }
    r->applied = true;
    if (r->sync_completed != NULL) {
        *r->sync_completed = true;
        *r->sync_status = status;
        *r->sync_count = count;
    }
    if (r->done != NULL) {
        r->done(r->done_arg, status, count);
    }
    cache_retire(c);
    cache_pump(c);
}

/* A bulk request's slice came back applied: the next one, or the end. */
static bool bulk_next_slice(pos_cache_t *c, pos_cache_req_t *r)
{
    cache_bulk_t *b = r->bulk;

    b->total += r->count;
    if (b->visited) {
        memcpy(b->cursor, b->next, b->next_len);
        b->cursor_len = b->next_len;
        b->started = true;
    }
    if (b->finished) {
        return false;
    }
    if (req_sync(c)) {
        *r->more = true; /* req_submit() runs the next one */
    } else if (writer_gone(c)) {
        b->paused = true; /* pos_cache_close() goes on with it */
    } else {
        c->inflight++;
        pos_store_writer_submit(c->cfg.writer, &r->op);
        pos_store_writer_commit_soon(c->cfg.writer);
    }
    return true;
}

/* The writer's hand-back (or pos_store_op_run_now()'s), on the loop thread. */
static void req_handback(pos_cache_t *c, pos_cache_req_t *r, int status)
{
    if (r->counted && status != 0) {
        /* Undone by the group's commit: the writing side's counts go back too. */
        atomic_fetch_sub(&c->wbytes, r->delta.bytes);
        atomic_fetch_sub(&c->wentries, r->delta.entries);
    }
    r->counted = false; /* final: a next slice starts its own counts */
    if (r->touches != NULL) {
        /* Written (or lost with a failed request: recency hints only). */
        free_touches(r->touches, r->ntouches);
        free(r->touches);
        r->touches = NULL;
        r->ntouches = 0;
    }
    if (status == 0) {
        c->stats.bytes = (uint64_t)((long long)c->stats.bytes + r->delta.bytes);
        c->stats.entries = (uint64_t)((long long)c->stats.entries + r->delta.entries);
        c->stats.evictions += r->delta.evictions;
        if (r->kind == REQ_BULK && bulk_next_slice(c, r)) {
            return;
        }
    }
    req_finish(c, r, status);
}

/* A request's own operation back (a bulk request's slice, or any request
 * without a writer). */
static void req_applied(pos_store_op_t *op)
{
    pos_cache_req_t *r = op->ctx;
    pos_cache_t *c = r->c;

    if (!req_sync(c)) {
        c->inflight--;
    }
    req_handback(c, r, op->status);
}

/* The carrier back: each request it carried, in order, with its status. */
static void carrier_applied(pos_store_op_t *op)
{
    pos_cache_carrier_t *k = op->ctx;
    pos_cache_t *c = k->c;
    pos_cache_req_t *r = k->first;
    size_t n = k->n;
    int status = op->status;

    /* The next carrier may leave while these are handed back (a done() that
     * writes again): it takes the requests after them. */
    c->inflight--;
    c->inflight_lazy = false;
    for (size_t i = 0; i < n; i++) {
        pos_cache_req_t *next = i + 1 < n ? r->next : NULL;
        req_handback(c, r, status);
        r = next;
    }
}

/* ---- bounds ------------------------------------------------------------ */

/* Would nodes more changes of bytes bytes take the overlay past a bound? */
static bool overlay_full(const pos_cache_t *c, size_t nodes, uint64_t bytes)
{
    return c->stats.overlay_ops + nodes > c->cfg.overlay_max_ops ||
           c->stats.overlay_bytes + bytes > c->cfg.overlay_max_bytes ||
           c->stats.overlay_bulks >= POS_CACHE_BULK_MAX;
}

static bool is_mark_all(const pos_cache_req_t *r)
{
    return r != NULL && r->kind == REQ_BULK && r->bulk->kind == BULK_MARK_BEFORE &&
           r->bulk->since_ms == UINT64_MAX;
}

/*
 * An invalidation the overlay cannot take as asked: everything is marked
 * stale instead (still served offline, refetched online), unless the last
 * request does that already: nothing else is appended while the overlay
 * is full, so bulk requests stay within POS_CACHE_BULK_MAX + 1.
 */
static void cache_escalate(pos_cache_t *c)
{
    c->stats.escalated++;
    if (is_mark_all(c->tail)) {
        return;
    }
    if (c->stats.escalated == 1 || c->stats.escalated % 1000 == 0) {
        POS_WARN("cache",
                 "too many cache writes waiting for the store: marking every entry "
                 "stale instead of the invalidation asked (%llu so far)",
                 (unsigned long long)c->stats.escalated);
    }
    pos_cache_req_t *r = req_new(c, REQ_BULK, 0, true, 0, NULL);
    if (r == NULL) {
        POS_ERR("cache", "out of memory: an invalidation is lost");
        return;
    }
    r->bulk->kind = BULK_MARK_BEFORE;
    r->bulk->since_ms = UINT64_MAX;
    r->bulk->escalated = true;
    (void)req_run(c, r, NULL, NULL);
}

/* ---- the calls --------------------------------------------------------- */

static int check_item(const pos_cache_t *c, const pos_cache_item_t *it)
{
    int rc = check_key(it->key, it->key_len);
    if (rc != 0) {
        return rc;
    }
    if ((unsigned)it->family >= POS_CACHE_FAMILY_COUNT ||
        (it->value == NULL && it->value_len != 0)) {
        return -EINVAL;
    }
    uint64_t size = (uint64_t)it->key_len + POS_CACHE_HDR_SIZE + it->value_len;
    if (it->value_len > POS_CACHE_VALUE_MAX || (c->cfg.max_bytes != 0 && size > c->cfg.max_bytes)) {
        return -EMSGSIZE;
    }
    return 0;
}

static int cache_put_items(pos_cache_t *c, const pos_cache_item_t *items, size_t n,
                           uint64_t now_ms, pos_cache_done_fn done, void *arg, bool lazy)
{
    if (c == NULL || c->st == NULL || (items == NULL && n != 0)) {
        return -EINVAL;
    }
    size_t extra = 0;
    uint64_t put_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_item(c, &items[i]);
        if (rc != 0) {
            return rc;
        }
        extra += items[i].key_len + items[i].value_len;
        put_bytes += items[i].key_len + POS_CACHE_HDR_SIZE + items[i].value_len;
    }
    if (overlay_full(c, n, extra + n * sizeof(pos_cache_node_t))) {
        c->stats.shed += n;
        return -EBUSY;
    }
    unsigned char *p;
    pos_cache_req_t *r = req_new(c, REQ_PUT, n, false, extra, &p);
    if (r == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const pos_cache_item_t *it = &items[i];
        pos_cache_node_t *node = &r->nodes[i];
        memcpy(p, it->key, it->key_len);
        node->key = (const char *)p;
        node->key_len = it->key_len;
        p += it->key_len;
        if (it->value_len != 0) {
            memcpy(p, it->value, it->value_len);
        }
        node->value = p;
        p += it->value_len;
        node->hash = hash_key(it->key, it->key_len);
        node->meta = (pos_cache_meta_t){
            .family = it->family,
            .stale = false,
            .fetched_at_ms = now_ms,
            .verified_at_ms = now_ms,
            .last_access = atomic_fetch_add(&c->clock, 1) + 1,
            .value_len = (uint32_t)it->value_len,
        };
    }
    r->put_bytes = put_bytes;
    r->now_ms = now_ms;
    r->done = done;
    r->done_arg = arg;
    r->lazy = lazy;
    return req_run(c, r, NULL, NULL);
}

int pos_cache_put_batch(pos_cache_t *c, const pos_cache_item_t *items, size_t n, uint64_t now_ms,
                        pos_cache_done_fn done, void *arg)
{
    return cache_put_items(c, items, n, now_ms, done, arg, false);
}

int pos_cache_put(pos_cache_t *c, const char *key, size_t key_len, const void *value,
                  size_t value_len, pos_cache_family_t family, uint64_t now_ms)
{
    pos_cache_item_t it = {key, key_len, value, value_len, family};
    return cache_put_items(c, &it, 1, now_ms, NULL, NULL, false);
}

int pos_cache_put_lazy(pos_cache_t *c, const char *key, size_t key_len, const void *value,
                       size_t value_len, pos_cache_family_t family, uint64_t now_ms,
                       pos_cache_done_fn done, void *arg)
{
    pos_cache_item_t it = {key, key_len, value, value_len, family};
    return cache_put_items(c, &it, 1, now_ms, done, arg, true);
}

/* A delete or a stale mark of one key. */
static int key_request(pos_cache_t *c, req_kind_t kind, const char *key, size_t key_len)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    int rc = check_key(key, key_len);
    if (rc != 0) {
        return rc;
    }
    if (overlay_full(c, 1, key_len + sizeof(pos_cache_node_t))) {
        cache_escalate(c);
        return -EBUSY;
    }
    unsigned char *p;
    pos_cache_req_t *r = req_new(c, kind, 1, false, key_len, &p);
    if (r == NULL) {
        return -ENOMEM;
    }
    memcpy(p, key, key_len);
    r->nodes[0].key = (const char *)p;
    r->nodes[0].key_len = key_len;
    r->nodes[0].hash = hash_key(key, key_len);
    size_t count;
    bool completed;
    rc = req_run(c, r, &count, &completed);
    return rc == 0 && completed && count == 0 ? -ENOENT : rc;
}

int pos_cache_mark_stale(pos_cache_t *c, const char *key, size_t key_len)
{
    return key_request(c, REQ_STALE, key, key_len);
}

int pos_cache_delete(pos_cache_t *c, const char *key, size_t key_len)
{
    return key_request(c, REQ_DEL, key, key_len);
}

/* A bulk request; m (delete_if only) is owned from here on. */
static int bulk_request(pos_cache_t *c, bulk_kind_t kind, const pos_cache_match_t *m,
                        uint64_t since_ms, pos_cache_done_fn done, void *arg)
{
    if (c->stats.overlay_bulks >= POS_CACHE_BULK_MAX) {
        if (m != NULL && m->release != NULL) {
            m->release(m->ctx);
        }
        cache_escalate(c);
        return -EBUSY;
    }
    pos_cache_req_t *r = req_new(c, REQ_BULK, 0, true, 0, NULL);
    if (r == NULL) {
        if (m != NULL && m->release != NULL) {
            m->release(m->ctx);
        }
        return -ENOMEM;
    }
    r->bulk->kind = kind;
    if (m != NULL) {
        r->bulk->match = *m;
    }
    r->bulk->since_ms = since_ms;
    r->done = done;
    r->done_arg = arg;
    return req_run(c, r, NULL, NULL);
}

int pos_cache_mark_stale_before(pos_cache_t *c, uint64_t since_ms, pos_cache_done_fn done,
                                void *arg)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    return bulk_request(c, BULK_MARK_BEFORE, NULL, since_ms, done, arg);
}

int pos_cache_mark_all_stale(pos_cache_t *c, pos_cache_done_fn done, void *arg)
{
    return pos_cache_mark_stale_before(c, UINT64_MAX, done, arg);
}

int pos_cache_delete_if(pos_cache_t *c, const pos_cache_match_t *m, pos_cache_done_fn done,
                        void *arg)
{
    if (m == NULL || m->match == NULL) {
        return -EINVAL;
    }
    if (c == NULL || c->st == NULL) {
        if (m->release != NULL) {
            m->release(m->ctx);
        }
        return -EINVAL;
    }
    return bulk_request(c, BULK_DELETE_IF, m, 0, done, arg);
}

int pos_cache_flush(pos_cache_t *c)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    if (c->pending_count == 0 || c->touching) {
        return 0; /* nothing to write, or a flush under way (the next one takes the rest) */
    }
    if (overlay_full(c, 1, 0)) {
        return -EBUSY; /* as if it were one more change: nothing is appended to a full overlay */
    }
    pos_cache_req_t *r = req_new(c, REQ_TOUCH, 0, false, 0, NULL);
    if (r == NULL) {
        return -ENOMEM;
    }
    return req_run(c, r, NULL, NULL);
}

/* ---- get -------------------------------------------------------------- */

/* Queues an LRU touch; past the bound, a touch of a new key is dropped. */
static void touch(pos_cache_t *c, const char *key, size_t len)
{
    uint64_t h = hash_key(key, len);
    uint64_t counter = atomic_fetch_add(&c->clock, 1) + 1;
    for (size_t i = 0; i < c->pending_count; i++) {
        pos_cache_pending_t *p = &c->pending[i];
        if (p->hash == h && p->key_len == len && memcmp(p->key, key, len) == 0) {
            p->counter = counter;
            return;
        }
    }
    if (c->pending_count == POS_CACHE_PENDING_MAX) {
        /* Reads never write: past the bound a touch is dropped (counted) until the next
         * write or pos_cache_flush(). A lost touch only makes the LRU order less exact. */
        c->stats.touches_dropped++;
        return;
    }
    char *copy = malloc(len);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, key, len);
    c->pending[c->pending_count++] = (pos_cache_pending_t){h, counter, len, copy};
}

int pos_cache_get(pos_cache_t *c, const char *key, size_t key_len, uint64_t now_ms, void *buf,
                  size_t buf_len, pos_cache_info_t *info)
{
    if (c == NULL || c->st == NULL || info == NULL || (buf == NULL && buf_len != 0)) {
        return -EINVAL;
    }
    int rc = check_key(key, key_len);
    if (rc != 0) {
        return rc;
    }
    if (c->rtxn == NULL) {
        rc = pos_store_txn_begin(c->st, MDB_RDONLY, &c->rtxn);
    } else {
        rc = pos_store_read_renew(c->st, c->rtxn);
    }
    if (rc != 0) {
        c->rtxn = NULL;
        return rc;
    }
    MDB_val k = {key_len, (void *)key};
    MDB_val v;
    replay_t st = {false, {0}, NULL};
    rc = mdb_get(c->rtxn, c->st->dbi[POS_DB_CACHE], &k, &v);
    if (rc == 0) {
        st.present = true;
        rc = pos_cache_record_parse(v.mv_data, v.mv_size, &st.meta, &st.value) == 0 ? 0 : -EIO;
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    } else {
        rc = pos_store_errno(rc);
    }
    if (rc == 0) {
        /* What the store will hold once what was submitted is applied. */
        overlay_replay(c, key, key_len, &st);
        if (!st.present) {
            rc = -ENOENT;
        }
    }
    if (rc == 0) {
        info->meta = st.meta;
        if (st.meta.value_len > buf_len) {
            rc = -ENOBUFS;
        } else if (st.meta.value_len != 0) {
            memcpy(buf, st.value, st.meta.value_len);
        }
    }
    pos_store_read_reset(c->st, c->rtxn);
    if (rc == -ENOENT) {
        c->stats.misses++;
    }
    if (rc != 0) {
        return rc;
    }
    info->age_ms = now_ms > info->meta.verified_at_ms ? now_ms - info->meta.verified_at_ms : 0;
    uint64_t ttl[POS_CACHE_FAMILY_COUNT];
    ttl_snapshot(c, ttl);
    info->fresh = !info->meta.stale && !pos_cache_expired(&info->meta, now_ms, ttl);
    if (info->fresh) {
        c->stats.hits++;
    } else {
        c->stats.stale_hits++;
    }
    touch(c, key, key_len);
    return 0;
}

/* ---- scan and stats --------------------------------------------------- */

int pos_cache_scan(pos_cache_t *c, pos_cache_cursor_t *cur, size_t max, pos_cache_visit_fn visit,
                   void *ctx)
{
    if (c == NULL || c->st == NULL || cur == NULL || visit == NULL) {
        return -EINVAL;
    }
    if (cur->done || max == 0) {
        return 0;
    }
    MDB_txn *txn;
    int rc = pos_store_txn_begin(c->st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }
    MDB_cursor *mc;
    rc = mdb_cursor_open(txn, c->st->dbi[POS_DB_CACHE], &mc);
    if (rc != 0) {
        pos_store_read_end(c->st, txn);
        return pos_store_errno(rc);
    }
    MDB_val k, v;
    if (!cur->started) {
        rc = mdb_cursor_get(mc, &k, &v, MDB_FIRST);
    } else {
        k.mv_size = cur->last_len;
        k.mv_data = cur->last_key;
        rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == cur->last_len &&
            memcmp(k.mv_data, cur->last_key, cur->last_len) == 0) {
            rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
        }
    }
    size_t visited = 0, examined = 0;
    bool stop = false;
    while (rc == 0 && visited < max && !stop) {
        replay_t st = {true, {0}, NULL};
        if (pos_cache_record_parse(v.mv_data, v.mv_size, &st.meta, &st.value) == 0 &&
            k.mv_size <= sizeof(cur->last_key)) {
            memcpy(cur->last_key, k.mv_data, k.mv_size);
            cur->last_len = k.mv_size;
            cur->started = true;
            overlay_replay(c, k.mv_data, k.mv_size, &st);
            if (st.present) {
                visited++;
                stop = visit(ctx, k.mv_data, k.mv_size, &st.meta) != 0;
            }
        }
        /* Bounded work per call, even when the overlay deletes every key it meets. */
        if (!stop && visited < max && ++examined < 4 * max) {
            rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
        } else {
            stop = true;
        }
    }
    if (rc == 0 && !stop) {
        /* Peek whether anything follows, so the caller learns "done" without an empty batch. */
        rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
        rc = rc == MDB_NOTFOUND ? MDB_NOTFOUND : 0;
    }
    mdb_cursor_close(mc);
    pos_store_read_end(c->st, txn);
    if (rc == MDB_NOTFOUND) {
        cur->done = true;
        rc = 0;
    }
    return rc != 0 ? pos_store_errno(rc) : (int)visited;
}

void pos_cache_stats(const pos_cache_t *c, pos_cache_stats_t *out)
{
    *out = c->stats;
    /* What the store's reclaimer evicted in the writer thread. */
    out->bytes = (uint64_t)((long long)out->bytes + atomic_load(&c->reclaimed_bytes));
    out->entries = (uint64_t)((long long)out->entries + atomic_load(&c->reclaimed_entries));
    out->evictions += atomic_load(&c->reclaimed_evictions);
}

/* ---- tenant, open / close ---------------------------------------------- */

/* Judges and counts one record of cache or cache_lru (pos_store_check_fn). */
static int cache_check(void *census, pos_store_db_t db, const MDB_val *k, const MDB_val *v)
{
    pos_cache_census_t *cs = census;
    if (db == POS_DB_CACHE) {
        pos_cache_meta_t m;
        if (k->mv_size == 0 || pos_cache_record_parse(v->mv_data, v->mv_size, &m, NULL) != 0) {
            return -EBADMSG;
        }
        if (cs != NULL) {
            cs->entries++;
            cs->bytes += k->mv_size + v->mv_size;
            if (m.last_access > cs->clock) {
                cs->clock = m.last_access;
            }
        }
        return 0;
    }
    /* cache_lru: be64 counter -> key */
    if (k->mv_size != 8 || v->mv_size == 0) {
        return -EBADMSG;
    }
    uint64_t counter = pos_endian_get_be64(k->mv_data);
    if (cs != NULL && counter > cs->clock) {
        cs->clock = counter;
    }
    return 0;
}

void pos_cache_tenant(pos_store_tenant_t *t, pos_cache_census_t *census)
{
    *t = (pos_store_tenant_t){POS_STORE_DB_BIT(POS_DB_CACHE) | POS_STORE_DB_BIT(POS_DB_CACHE_LRU),
                              cache_check, census, sizeof(*census)};
}

int pos_cache_open(pos_cache_t *c, pos_store_t *st, const pos_cache_config_t *cfg)
{
    if (c == NULL || st == NULL || st->env == NULL || cfg == NULL) {
        return -EINVAL;
    }
    pos_cache_census_t counted;
    const pos_cache_census_t *cs = cfg->census;
    if (cs == NULL) {
        pos_store_tenant_t t;
        pos_cache_tenant(&t, &counted);
        int rc = pos_store_count(st, &t);
        if (rc != 0) {
            return rc;
        }
        cs = &counted;
    }
    pos_cache_node_t **buckets = calloc(2 * POS_CACHE_BUCKETS, sizeof(*buckets));
    pos_cache_carrier_t *carrier = calloc(1, sizeof(*carrier));
    if (buckets == NULL || carrier == NULL) {
        free(buckets);
        free(carrier);
        return -ENOMEM;
    }
    pos_mem_zero(c, sizeof(*c));
    c->st = st;
    c->cfg = *cfg;
    c->cfg.census = NULL;
    if (c->cfg.overlay_max_ops == 0) {
        c->cfg.overlay_max_ops = POS_CACHE_OVERLAY_OPS;
    }
    if (c->cfg.overlay_max_bytes == 0) {
        c->cfg.overlay_max_bytes = POS_CACHE_OVERLAY_BYTES;
    }
    c->buckets = buckets;
    c->carrier = carrier;
    carrier->c = c;
    carrier->op.apply = carrier_apply;
    carrier->op.applied = carrier_applied;
    carrier->op.ctx = carrier;
    atomic_init(&c->clock, cs->clock);
    atomic_init(&c->wbytes, (long long)cs->bytes);
    atomic_init(&c->wentries, (long long)cs->entries);
    atomic_init(&c->want_room, 0);
    atomic_init(&c->reclaimed_bytes, 0);
    atomic_init(&c->reclaimed_entries, 0);
    atomic_init(&c->reclaimed_evictions, 0);
    c->stats.entries = cs->entries;
    c->stats.bytes = cs->bytes;
    st->reclaim = cache_reclaim;
    st->reclaim_ctx = c;
    return 0;
}

void pos_cache_detach(pos_cache_t *c)
{
    if (c != NULL) {
        c->detached = true;
    }
}

void pos_cache_close(pos_cache_t *c)
{
    if (c == NULL || c->st == NULL) {
        return;
    }
    if (c->inflight > 0) {
        /* The writer still holds requests that point here: freeing would be worse. */
        POS_ERR("cache", "closed with %zu requests still with the store writer; left as they are",
                c->inflight);
        return;
    }
    /* From here on synchronous: the rest of a bulk request, what waits, the touches. */
    c->cfg.writer = NULL;
    c->detached = false;
    if (c->bulk_running != NULL && c->bulk_running->bulk->paused) {
        c->bulk_running->bulk->paused = false;
        c->pumping = true;
        req_submit(c, c->bulk_running);
        c->pumping = false;
    }
    cache_pump(c);
    (void)pos_cache_flush(c);
    free_touches(c->pending, c->pending_count);
    c->pending_count = 0;
    while (c->head != NULL) {
        /* Only what could not run (a bulk request still with a writer): dropped. */
        pos_cache_req_t *r = c->head;
        c->head = r->next;
        req_free(r);
    }
    c->tail = c->unsubmitted = c->bulk_running = c->bulks = c->bulks_tail = NULL;
    free(c->buckets);
    c->buckets = NULL;
    free(c->carrier);
    c->carrier = NULL;
    if (c->rtxn != NULL) {
        mdb_txn_abort(c->rtxn); /* reset: it holds neither a snapshot nor the map */
        c->rtxn = NULL;
    }
    if (c->st->reclaim_ctx == c) {
        c->st->reclaim = NULL;
        c->st->reclaim_ctx = NULL;
    }
    c->st = NULL;
}
