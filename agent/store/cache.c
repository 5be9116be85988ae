#include "agent/store/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform/endian.h"
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
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    }
    return h;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- record helpers inside a write transaction ------------------------ */

static int lru_del(pos_cache_t *c, MDB_txn *txn, uint64_t counter)
{
    unsigned char kb[8];
    pos_endian_put_be64(kb, counter);
    MDB_val k = {sizeof(kb), kb};
    int rc = mdb_del(txn, c->st->dbi[POS_DB_CACHE_LRU], &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : pos_store_errno(rc);
}

static int lru_put(pos_cache_t *c, MDB_txn *txn, uint64_t counter, const char *key, size_t len)
{
    unsigned char kb[8];
    pos_endian_put_be64(kb, counter);
    MDB_val k = {sizeof(kb), kb};
    MDB_val v = {len, (void *)key};
    return pos_store_errno(mdb_put(txn, c->st->dbi[POS_DB_CACHE_LRU], &k, &v, 0));
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
        rc = pos_store_errno(mdb_del(txn, c->st->dbi[POS_DB_CACHE], &k, NULL));
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
    int rc = pos_store_errno(mdb_put(txn, c->st->dbi[POS_DB_CACHE], &k, &v, 0));
    free(copy);
    return rc;
}

/* Writes the pending touches into txn (they are cleared once it commits). */
static int apply_pending(pos_cache_t *c, MDB_txn *txn)
{
    for (size_t i = 0; i < c->pending_count; i++) {
        pos_cache_pending_t *p = &c->pending[i];
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

static void clear_pending(pos_cache_t *c)
{
    for (size_t i = 0; i < c->pending_count; i++) {
        free(c->pending[i].key);
    }
    c->pending_count = 0;
}

/* What one cache write does inside its transaction, after the pending touches. */
typedef int (*cache_op_fn)(pos_cache_t *c, MDB_txn *txn, void *arg, delta_t *d);

typedef struct cache_write {
    pos_cache_t *c;
    cache_op_fn op; /* NULL: the pending touches only */
    void *arg;
    delta_t d;
} cache_write_t;

static int cache_write_txn(void *ctx, MDB_txn *txn)
{
    cache_write_t *w = ctx;
    int rc = apply_pending(w->c, txn);
    if (rc == 0 && w->op != NULL) {
        rc = w->op(w->c, txn, w->arg, &w->d);
    }
    return rc;
}

/*
 * One write transaction: the pending touches, then op(c, txn, arg, d).
 * Once it committed, drops the applied touches and applies the delta to
 * the counters (and copies it into *d, may be NULL).
 */
static int cache_write(pos_cache_t *c, cache_op_fn op, void *arg, delta_t *d)
{
    cache_write_t w = {c, op, arg, {0}};
    int rc = pos_store_txn_run(c->st, 0, cache_write_txn, &w);
    if (rc != 0) {
        return rc;
    }
    clear_pending(c);
    c->stats.bytes = (uint64_t)((long long)c->stats.bytes + w.d.bytes);
    c->stats.entries = (uint64_t)((long long)c->stats.entries + w.d.entries);
    c->stats.evictions += w.d.evictions;
    if (d != NULL) {
        *d = w.d;
    }
    return 0;
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
    uint64_t now_ms;          /* collect_expired(): expired at this time */
    pos_cache_match_fn match; /* collect_matching(): the keys it accepts */
    void *match_ctx;
    victim_t *v; /* growing array */
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
        !pos_cache_expired(&m, a->now_ms, a->c->cfg.ttl_ms)) {
        return 0;
    }
    return victims_push(a, k, &m);
}

static int collect_matching(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *val)
{
    collect_t *a = ctx;

    (void)cur;
    (void)val;
    if (!a->match(a->match_ctx, k->mv_data, k->mv_size)) {
        return 0;
    }
    return victims_push(a, k, NULL);
}

static uint64_t sort_now;
static const uint64_t *sort_ttl;

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
    int result = pos_store_each(c->st, txn, POS_DB_CACHE, collect_expired, &a);
    victim_t *v = a.v;
    size_t n = a.n;
    if (result == 0) {
        sort_now = now_ms;
        sort_ttl = c->cfg.ttl_ms;
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
            rc = mdb_cursor_del(cur, 0); /* a record no entry can match */
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

static long long evict_once(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted);

long long pos_cache_evict(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    long long rc = evict_once(c, bytes, now_ms, evicted);
    if (rc == -ENOSPC && c->stats.entries > 0 && pos_store_reserve_begin(c->st) == 0) {
        /* A full map cannot even delete: borrow the reserve for it. */
        rc = evict_once(c, bytes, now_ms, evicted);
        pos_store_reserve_end(c->st);
    }
    return rc;
}

typedef struct evict_args {
    size_t need; /* bytes */
    uint64_t now_ms;
    size_t freed; /* bytes */
} evict_args_t;

static int evict_op(pos_cache_t *c, MDB_txn *txn, void *arg, delta_t *d)
{
    evict_args_t *a = arg;
    return evict_txn(c, txn, a->need, a->now_ms, d, &a->freed);
}

static long long evict_once(pos_cache_t *c, size_t bytes, uint64_t now_ms, size_t *evicted)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    evict_args_t a = {bytes, now_ms, 0};
    delta_t d;
    int rc = cache_write(c, evict_op, &a, &d);
    if (rc != 0) {
        return rc;
    }
    if (evicted != NULL) {
        *evicted = (size_t)d.evictions;
    }
    return (long long)a.freed;
}

static long long cache_reclaim(void *ctx, size_t bytes)
{
    pos_cache_t *c = ctx;
    /* Free more than asked: LMDB needs some spare pages for the retry itself. */
    size_t want = bytes * 2 + 64u * 1024u;
    return pos_cache_evict(c, want, wall_ms(), NULL);
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
    pos_mem_zero(c, sizeof(*c));
    c->st = st;
    c->cfg = *cfg;
    c->cfg.census = NULL;
    c->clock = cs->clock;
    c->stats.entries = cs->entries;
    c->stats.bytes = cs->bytes;
    st->reclaim = cache_reclaim;
    st->reclaim_ctx = c;
    return 0;
}

void pos_cache_close(pos_cache_t *c)
{
    if (c == NULL || c->st == NULL) {
        return;
    }
    (void)pos_cache_flush(c);
    clear_pending(c);
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

int pos_cache_flush(pos_cache_t *c)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    if (c->pending_count == 0) {
        return 0;
    }
    return cache_write(c, NULL, NULL, NULL);
}

/* ---- put -------------------------------------------------------------- */

static int check_key(const char *key, size_t len)
{
    if (key == NULL || len == 0) {
        return -EINVAL;
    }
    return len > POS_CACHE_KEY_MAX ? -ENAMETOOLONG : 0;
}

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

/* Stores one item inside txn, replacing any previous entry of the key. */
static int put_one(pos_cache_t *c, MDB_txn *txn, const pos_cache_item_t *it, uint64_t now_ms,
                   delta_t *d)
{
    pos_cache_meta_t old;
    MDB_val raw;
    int rc = read_meta(c, txn, it->key, it->key_len, &old, &raw);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    pos_cache_meta_t m = {
        .family = it->family,
        .stale = false,
        .fetched_at_ms = now_ms,
        .verified_at_ms = now_ms,
        .last_access = ++c->clock,
        .value_len = (uint32_t)it->value_len,
    };
    if (rc == 0) {
        if (old.value_len == it->value_len &&
            memcmp((const unsigned char *)raw.mv_data + POS_CACHE_HDR_SIZE, it->value,
                   it->value_len) == 0) {
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
    MDB_val v = {POS_CACHE_HDR_SIZE + it->value_len, NULL};
    /* MDB_RESERVE: LMDB hands out the space and we fill it, saving a copy. */
    rc = pos_store_errno(mdb_put(txn, c->st->dbi[POS_DB_CACHE], &k, &v, MDB_RESERVE));
    if (rc != 0) {
        return rc;
    }
    encode_header(v.mv_data, &m);
    if (it->value_len != 0) {
        memcpy((unsigned char *)v.mv_data + POS_CACHE_HDR_SIZE, it->value, it->value_len);
    }
    rc = lru_put(c, txn, m.last_access, it->key, it->key_len);
    if (rc != 0) {
        return rc;
    }
    d->bytes += (long long)(it->key_len + POS_CACHE_HDR_SIZE + it->value_len);
    d->entries++;
    return 0;
}

typedef struct put_args {
    const pos_cache_item_t *items;
    size_t n;
    uint64_t now_ms;
} put_args_t;

/* Evicts for the byte budget if the batch needs it, then stores the batch. */
static int put_op(pos_cache_t *c, MDB_txn *txn, void *arg, delta_t *d)
{
    put_args_t *a = arg;
    int rc = 0;
    if (c->cfg.max_bytes != 0) {
        uint64_t add = 0;
        for (size_t i = 0; i < a->n; i++) {
            add += a->items[i].key_len + POS_CACHE_HDR_SIZE + a->items[i].value_len;
        }
        if (c->stats.bytes + add > c->cfg.max_bytes) {
            /* Evict a sixteenth more than needed so the next puts do not each evict. */
            uint64_t need = c->stats.bytes + add - c->cfg.max_bytes + c->cfg.max_bytes / 16;
            size_t freed;
            rc = evict_txn(c, txn, (size_t)need, a->now_ms, d, &freed);
        }
    }
    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        rc = put_one(c, txn, &a->items[i], a->now_ms, d);
    }
    return rc;
}

/* One attempt at storing the batch, evicting for the byte budget first. */
static int put_attempt(pos_cache_t *c, const pos_cache_item_t *items, size_t n, uint64_t now_ms)
{
    put_args_t a = {items, n, now_ms};
    uint64_t clock = c->clock;
    int rc = cache_write(c, put_op, &a, NULL);
    if (rc != 0) {
        c->clock = clock; /* the counters handed out went with the transaction */
    }
    return rc;
}

int pos_cache_put_batch(pos_cache_t *c, const pos_cache_item_t *items, size_t n, uint64_t now_ms)
{
    if (c == NULL || c->st == NULL || (items == NULL && n != 0)) {
        return -EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_item(c, &items[i]);
        if (rc != 0) {
            return rc;
        }
        total += items[i].key_len + POS_CACHE_HDR_SIZE + items[i].value_len;
    }
    int rc = put_attempt(c, items, n, now_ms);
    /* Map (or disk) full: evict a growing amount and retry a few times. */
    for (int tries = 0; rc == -ENOSPC && tries < 4; tries++) {
        size_t want = (total + 64u * 1024u) << tries;
        long long freed = pos_cache_evict(c, want, now_ms, NULL);
        if (freed < 0) {
            return freed == -ENOSPC ? -ENOSPC : (int)freed;
        }
        if (freed == 0) {
            return -ENOSPC;
        }
        (void)pos_store_settle(c->st);
        rc = put_attempt(c, items, n, now_ms);
    }
    return rc;
}

int pos_cache_put(pos_cache_t *c, const char *key, size_t key_len, const void *value,
                  size_t value_len, pos_cache_family_t family, uint64_t now_ms)
{
    pos_cache_item_t it = {key, key_len, value, value_len, family};
    return pos_cache_put_batch(c, &it, 1, now_ms);
}

/* ---- get -------------------------------------------------------------- */

/* Queues an LRU touch; flushes when the pending set is full. */
static void touch(pos_cache_t *c, const char *key, size_t len)
{
    uint64_t h = hash_key(key, len);
    uint64_t counter = ++c->clock;
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
    const void *value = NULL;
    rc = mdb_get(c->rtxn, c->st->dbi[POS_DB_CACHE], &k, &v);
    if (rc == 0) {
        rc = pos_cache_record_parse(v.mv_data, v.mv_size, &info->meta, &value) == 0 ? 0 : -EIO;
    } else {
        rc = pos_store_errno(rc);
    }
    if (rc == 0) {
        if (info->meta.value_len > buf_len) {
            rc = -ENOBUFS;
        } else if (info->meta.value_len != 0) {
            memcpy(buf, value, info->meta.value_len);
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
    info->fresh = !info->meta.stale && !pos_cache_expired(&info->meta, now_ms, c->cfg.ttl_ms);
    if (info->fresh) {
        c->stats.hits++;
    } else {
        c->stats.stale_hits++;
    }
    touch(c, key, key_len);
    return 0;
}

/* ---- stale marks and deletes ------------------------------------------ */

/* What a write on one key does (del_entry(), mark_stale_op()). */
typedef int (*key_op_fn)(pos_cache_t *c, MDB_txn *txn, const char *key, size_t key_len, delta_t *d);

typedef struct key_args {
    const char *key;
    size_t key_len;
    key_op_fn op;
} key_args_t;

static int key_op(pos_cache_t *c, MDB_txn *txn, void *arg, delta_t *d)
{
    key_args_t *a = arg;
    return a->op(c, txn, a->key, a->key_len, d);
}

/* One write transaction on one key: pending touches first, then op. */
static int key_txn(pos_cache_t *c, const char *key, size_t key_len, key_op_fn op)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    int rc = check_key(key, key_len);
    if (rc != 0) {
        return rc;
    }
    key_args_t a = {key, key_len, op};
    return cache_write(c, key_op, &a, NULL);
}

static int mark_stale_op(pos_cache_t *c, MDB_txn *txn, const char *key, size_t key_len, delta_t *d)
{
    pos_cache_meta_t m;
    MDB_val raw;

    (void)d;
    int rc = read_meta(c, txn, key, key_len, &m, &raw);
    if (rc == 0 && !m.stale) {
        m.stale = true;
        rc = rewrite_header(c, txn, key, key_len, &raw, &m);
    }
    return rc;
}

int pos_cache_mark_stale(pos_cache_t *c, const char *key, size_t key_len)
{
    return key_txn(c, key, key_len, mark_stale_op);
}

typedef struct stale_args {
    uint64_t since_ms;
    size_t changed;
} stale_args_t;

static int mark_stale_record(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    stale_args_t *a = ctx;
    pos_cache_meta_t m;

    if (pos_cache_record_parse(v->mv_data, v->mv_size, &m, NULL) != 0 || m.stale ||
        m.verified_at_ms >= a->since_ms) {
        return 0;
    }
    m.stale = true;
    unsigned char *copy = copy_with_header(v, &m);
    if (copy == NULL) {
        return -ENOMEM;
    }
    MDB_val nv = {v->mv_size, copy};
    /* Same key, same size: replaced in place, the cursor keeps its position. */
    int rc = pos_store_errno(mdb_cursor_put(cur, k, &nv, MDB_CURRENT));
    free(copy);
    if (rc == 0) {
        a->changed++;
    }
    return rc;
}

/* Marks stale every entry not verified since a->since_ms. */
static int mark_stale_before_op(pos_cache_t *c, MDB_txn *txn, void *arg, delta_t *d)
{
    (void)d;
    return pos_store_each(c->st, txn, POS_DB_CACHE, mark_stale_record, arg);
}

int pos_cache_mark_stale_before(pos_cache_t *c, uint64_t since_ms, size_t *count)
{
    if (c == NULL || c->st == NULL) {
        return -EINVAL;
    }
    stale_args_t a = {since_ms, 0};
    int rc = cache_write(c, mark_stale_before_op, &a, NULL);
    if (rc == 0 && count != NULL) {
        *count = a.changed;
    }
    return rc;
}

int pos_cache_mark_all_stale(pos_cache_t *c, size_t *count)
{
    return pos_cache_mark_stale_before(c, UINT64_MAX, count);
}

int pos_cache_delete(pos_cache_t *c, const char *key, size_t key_len)
{
    return key_txn(c, key, key_len, del_entry);
}

typedef struct delete_args {
    pos_cache_match_fn match;
    void *ctx;
    size_t deleted;
} delete_args_t;

/* Deletes every entry whose key a->match accepts. */
static int delete_if_op(pos_cache_t *c, MDB_txn *txn, void *arg, delta_t *d)
{
    delete_args_t *a = arg;
    /* Collect first, delete after: a write invalidates the cursor's data pointers. */
    collect_t found = {.c = c, .match = a->match, .match_ctx = a->ctx};
    int rc = pos_store_each(c->st, txn, POS_DB_CACHE, collect_matching, &found);
    for (size_t i = 0; rc == 0 && i < found.n; i++) {
        rc = del_entry(c, txn, found.v[i].key, found.v[i].key_len, d);
        a->deleted++;
    }
    victims_free(&found);
    return rc;
}

int pos_cache_delete_if(pos_cache_t *c, pos_cache_match_fn match, void *ctx, size_t *count)
{
    if (c == NULL || c->st == NULL || match == NULL) {
        return -EINVAL;
    }
    delete_args_t a = {match, ctx, 0};
    int rc = cache_write(c, delete_if_op, &a, NULL);
    if (rc == 0 && count != NULL) {
        *count = a.deleted;
    }
    return rc;
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
    int visited = 0;
    bool stop = false;
    while (rc == 0 && (size_t)visited < max && !stop) {
        pos_cache_meta_t m;
        if (pos_cache_record_parse(v.mv_data, v.mv_size, &m, NULL) == 0 &&
            k.mv_size <= sizeof(cur->last_key)) {
            memcpy(cur->last_key, k.mv_data, k.mv_size);
            cur->last_len = k.mv_size;
            cur->started = true;
            visited++;
            stop = visit(ctx, k.mv_data, k.mv_size, &m) != 0;
        }
        if (!stop && (size_t)visited < max) {
            rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
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
    return rc != 0 ? pos_store_errno(rc) : visited;
}

void pos_cache_stats(const pos_cache_t *c, pos_cache_stats_t *out)
{
    *out = c->stats;
}
