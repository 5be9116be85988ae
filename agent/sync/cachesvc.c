#include "agent/sync/cachesvc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/sync/glob.h"
#include "platform/clock.h"
#include "platform/hash.h"
#include "platform/uverr.h"
#include "platform/log.h"
#include "platform/mem.h"

#define CACHE_FLUSH_MS 5000u
#define WARM_PUT_CHUNK 50u /* entries per write transaction during warm-up */

typedef struct cache_waiter {
    pos_cachesvc_cb cb;
    void *ctx;
    struct cache_waiter *next;
} cache_waiter_t;

/*
 * What happened to a key while its GET was in flight. The reply was read
 * in Redis before that, so it must not overwrite what came after: a nil
 * answer would delete a newer INVENTORY_UPDATED, a value would bring back
 * what was just invalidated.
 */
/* In order: a later state replaces an earlier one, never the reverse. */
typedef enum {
    FETCH_CURRENT,     /* nothing: the reply goes into the cache */
    FETCH_SUSPECT,     /* a tracking invalidation: kept, but stale (read again next time) */
    FETCH_INVALIDATED, /* CACHE_INVALIDATE or a local clear: served, not kept */
    FETCH_OVERWRITTEN  /* a message wrote a newer value here: that one is served */
} fetch_state_t;

struct pos_cache_fetch {
    pos_cachesvc_t *svc;
    char *key;
    size_t len;
    fetch_state_t state;
    cache_waiter_t *waiters, *waiters_tail; /* in the order they asked */
    pos_cache_fetch_t *next;                /* in its bucket */
};

/* The bucket of s->fetches that holds key's GET. */
static pos_cache_fetch_t **fetch_bucket(pos_cachesvc_t *s, const char *key, size_t len)
{
    return &s->fetches[pos_fnv1a64(key, len) % POS_CACHESVC_FETCH_BUCKETS];
}

/* An MGET in flight (the warm-up's, the revalidation's): the same, a state
 * a key. Its keys are copies: a caller may ask from an array of its stack. */
struct pos_cache_mget {
    pos_cachesvc_t *svc;
    pos_reply_cb cb; /* the caller's, with ctx */
    void *ctx;
    char **keys;  /* n pointers, then the bytes they point to (one block) */
    size_t *lens; /* n */
    size_t n;
    pos_cache_mget_t *next;
    unsigned char state[]; /* fetch_state_t of keys[i] */
};

bool pos_cachesvc_cacheable(const char *key, size_t len)
{
    return len > 0 && len <= 511 && pos_cache_family_of(key, len) != POS_CACHE_OTHER;
}

static void warm_timer_cb(uv_timer_t *t);

static void cache_flush_cb(uv_timer_t *t)
{
    pos_cachesvc_t *s = t->data;
    if (s->open) {
        pos_cache_flush(&s->cache);
    }
}

int pos_cachesvc_init(pos_cachesvc_t *s, const pos_cachesvc_options_t *opt)
{
    int rc;

    pos_mem_zero(s, sizeof(*s));
    s->link = opt->link;
    s->max_value_bytes = opt->max_value_bytes;
    if (s->max_value_bytes == 0 || s->max_value_bytes > POS_CACHE_VALUE_MAX) {
        s->max_value_bytes = POS_CACHE_VALUE_MAX;
    }
    snprintf(s->store_id, sizeof(s->store_id), "%s", opt->store_id);
    rc = uv_timer_init(opt->loop, &s->flush_timer);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    s->flush_timer.data = s;
    rc = uv_timer_init(opt->loop, &s->warm_timer);
    if (rc != 0) {
        goto fail_warm_timer;
    }
    s->warm_timer.data = s;
    rc = uv_timer_init(opt->loop, &s->reval_timer);
    if (rc != 0) {
        goto fail_reval_timer;
    }
    s->reval_timer.data = s;
    if (opt->store == NULL) {
        return 0;
    }
    pos_cache_config_t cc = opt->cache;
    cc.writer = opt->writer;
    if (pos_cache_open(&s->cache, opt->store, &cc) != 0) {
        POS_ERR("cache", "cannot open the cache; reads go to Redis only");
        return 0;
    }
    s->open = true;
    uv_timer_start(&s->warm_timer, warm_timer_cb, (uint64_t)opt->warm_interval_s * 1000u,
                   (uint64_t)opt->warm_interval_s * 1000u);
    return 0;

    /* Not yet known to anyone: closed without a callback, the memory is
     * the caller's and untouched by libuv once the loop has run. */
fail_reval_timer:
    uv_close((uv_handle_t *)&s->warm_timer, NULL);
fail_warm_timer:
    uv_close((uv_handle_t *)&s->flush_timer, NULL);
    return pos_uv_errno(rc);
}

/* The local copy, whatever its age. Returns 0, -ENOENT or an error. */
static int cache_local(pos_cachesvc_t *s, const char *key, size_t len, pos_cachesvc_cb cb,
                       void *ctx, bool only_fresh)
{
    pos_cache_info_t info;
    int rc;

    if (!s->open) {
        return -ENOENT;
    }
    rc = pos_cache_get(&s->cache, key, len, pos_clock_wall_ms(), s->value_buf, sizeof(s->value_buf),
                       &info);
    if (rc < 0) {
        return rc;
    }
    if (s->cache.pending_count > 0 && !uv_is_active((uv_handle_t *)&s->flush_timer)) {
        uv_timer_start(&s->flush_timer, cache_flush_cb, CACHE_FLUSH_MS, 0);
    }
    if (only_fresh && !info.fresh) {
        return -ESTALE;
    }
    cb(ctx, 0, s->value_buf, info.meta.value_len, info.age_ms, info.fresh);
    return 0;
}

/* The local copy whatever its age, or -ENOENT, to cb. */
static void cache_local_or_miss(pos_cachesvc_t *s, const char *key, size_t len, pos_cachesvc_cb cb,
                                void *ctx)
{
    if (cache_local(s, key, len, cb, ctx, false) != 0) {
        cb(ctx, -ENOENT, NULL, 0, 0, false);
    }
}

/* ---- keys whose value is over max_value_bytes ---------------------------- */

/* The slot remembering key, or NULL. */
static pos_cache_oversize_t *oversize_find(pos_cachesvc_t *s, const char *key, size_t len)
{
    uint64_t now = pos_clock_mono_ms();

    for (size_t i = 0; i < POS_CACHESVC_OVERSIZE_MAX; i++) {
        pos_cache_oversize_t *o = &s->oversize[i];
        if (o->until_ms > now && o->len == len && memcmp(o->key, key, len) == 0) {
            return o;
        }
    }
    return NULL;
}

static void oversize_add(pos_cachesvc_t *s, const char *key, size_t len)
{
    pos_cache_oversize_t *o = oversize_find(s, key, len);

    if (len > POS_CACHE_KEY_MAX) {
        return; /* not a cached key: never asked for */
    }
    if (o == NULL) {
        /* A free or expired slot, else the one that expires first. */
        o = &s->oversize[0];
        for (size_t i = 1; i < POS_CACHESVC_OVERSIZE_MAX; i++) {
            if (s->oversize[i].until_ms < o->until_ms) {
                o = &s->oversize[i];
            }
        }
        memcpy(o->key, key, len);
        o->len = len;
    }
    o->until_ms = pos_clock_mono_ms() + POS_CACHESVC_OVERSIZE_MS;
}

typedef struct glob_ctx {
    const char *pattern;
    size_t len;
} glob_ctx_t;

/* Forgets the keys match() accepts (all when match is NULL): their value
 * may have changed. */
static void oversize_forget(pos_cachesvc_t *s,
                            bool (*match)(void *ctx, const char *key, size_t len), void *ctx)
{
    for (size_t i = 0; i < POS_CACHESVC_OVERSIZE_MAX; i++) {
        pos_cache_oversize_t *o = &s->oversize[i];
        if (o->until_ms != 0 && (match == NULL || match(ctx, o->key, o->len))) {
            o->until_ms = 0;
        }
    }
}

static bool oversize_is(void *ctx, const char *key, size_t len)
{
    const glob_ctx_t *k = ctx;
    return k->len == len && memcmp(k->pattern, key, len) == 0;
}

/* Answers cb that key's value is over the limit. */
static void oversize_answer(pos_cachesvc_t *s, const char *key, size_t len, pos_cachesvc_cb cb,
                            void *ctx)
{
    char msg[POS_CACHE_KEY_MAX + 80];
    int n = snprintf(msg, sizeof(msg), "value of %.*s exceeds [cache] max_value_bytes (%u bytes)",
                     (int)len, key, (unsigned)s->max_value_bytes);

    s->oversize_refused++;
    cb(ctx, -EMSGSIZE, msg, n > 0 ? strnlen(msg, sizeof(msg)) : 0, 0, false);
}

/* The value of f's key is too large: refused, never cached, remembered. */
static void cache_fetch_oversize(pos_cache_fetch_t *f)
{
    pos_cachesvc_t *s = f->svc;
    char shown[POS_CACHE_KEY_MAX + 1];

    /* A session id may be a credential: its key is not logged. A key is
     * the till's to choose: no control bytes reach the log. */
    if (pos_cache_family_of(f->key, f->len) == POS_CACHE_SESSION) {
        snprintf(shown, sizeof(shown), "a session: key");
    } else {
        size_t n = f->len < sizeof(shown) - 1 ? f->len : sizeof(shown) - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)f->key[i];
            shown[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
        shown[n] = '\0';
    }
    POS_WARN("cache", "%s: value over [cache] max_value_bytes (%u bytes): refused, not cached",
             shown, (unsigned)s->max_value_bytes);
    oversize_add(s, f->key, f->len);
    if (s->open) {
        /* Redis holds something else now: the older copy is no answer. */
        pos_cache_delete(&s->cache, f->key, f->len);
    }
    for (cache_waiter_t *w = f->waiters; w != NULL; w = w->next) {
        oversize_answer(s, f->key, f->len, w->cb, w->ctx);
    }
}

static void cache_fetch_done(void *ctx, const redisReply *r, int err)
{
    pos_cache_fetch_t *f = ctx;
    pos_cachesvc_t *s = f->svc;
    cache_waiter_t *w, *next;

    /* Unlink first: callbacks may start new reads of the same key. */
    for (pos_cache_fetch_t **pp = fetch_bucket(s, f->key, f->len); *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    if (f->state != FETCH_CURRENT) {
        s->fetches_raced++;
    }
    if (f->state == FETCH_OVERWRITTEN) {
        /* The local copy is newer than anything the reply can say. */
        for (w = f->waiters; w != NULL; w = w->next) {
            cache_local_or_miss(s, f->key, f->len, w->cb, w->ctx);
        }
    } else if (err == -EMSGSIZE ||
               (err == 0 && r->type == REDIS_REPLY_STRING && r->len > s->max_value_bytes)) {
        /* Over the limit: the link dropped the connection on it, or it
         * came in under the link's headroom. */
        cache_fetch_oversize(f);
    } else if (err == 0 && r->type == REDIS_REPLY_STRING) {
        if (s->open && f->state <= FETCH_SUSPECT) {
            pos_cache_put(&s->cache, f->key, f->len, r->str, r->len,
                          pos_cache_family_of(f->key, f->len), pos_clock_wall_ms());
            if (f->state == FETCH_SUSPECT) {
                /* Redis may have changed it after it answered: the next
                 * read asks again (the overlay keeps the order). */
                pos_cache_mark_stale(&s->cache, f->key, f->len);
            }
        }
        for (w = f->waiters; w != NULL; w = w->next) {
            w->cb(w->ctx, 0, r->str, r->len, 0, true);
        }
    } else if (err == 0 && r->type == REDIS_REPLY_NIL) {
        /* Gone from Redis: gone here too. */
        if (s->open && f->state <= FETCH_SUSPECT) {
            pos_cache_delete(&s->cache, f->key, f->len);
        }
        for (w = f->waiters; w != NULL; w = w->next) {
            w->cb(w->ctx, -ENOENT, NULL, 0, 0, true);
        }
    } else {
        /* Redis did not answer (or refused): serve what we have. */
        for (w = f->waiters; w != NULL; w = w->next) {
            if (cache_local(s, f->key, f->len, w->cb, w->ctx, false) != 0) {
                w->cb(w->ctx, err != 0 ? err : -EIO, NULL, 0, 0, false);
            }
        }
    }
    for (w = f->waiters; w != NULL; w = next) {
        next = w->next;
        free(w);
    }
    free(f->key);
    free(f);
}

/* Tells the GETs in flight for key (every one with a NULL key) that it
 * changed since they were sent. */
static void fetches_mark(pos_cachesvc_t *s, const char *key, size_t len, fetch_state_t state)
{
    /* key's bucket, or all of them */
    pos_cache_fetch_t **first = key != NULL ? fetch_bucket(s, key, len) : s->fetches;
    pos_cache_fetch_t **end = key != NULL ? first + 1 : s->fetches + POS_CACHESVC_FETCH_BUCKETS;
    for (pos_cache_fetch_t **b = first; b < end; b++) {
        for (pos_cache_fetch_t *f = *b; f != NULL; f = f->next) {
            if ((key == NULL || (f->len == len && memcmp(f->key, key, len) == 0)) &&
                state > f->state) {
                f->state = state;
            }
        }
    }
    for (pos_cache_mget_t *m = s->mgets; m != NULL; m = m->next) {
        for (size_t i = 0; i < m->n; i++) {
            if (state > m->state[i] &&
                (key == NULL || (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0))) {
                m->state[i] = (unsigned char)state;
            }
        }
    }
}

/* The same for the GETs whose key matches a compiled glob. */
static void fetches_mark_glob(pos_cachesvc_t *s, const pos_glob_t *g)
{
    for (size_t b = 0; b < POS_CACHESVC_FETCH_BUCKETS; b++) {
        for (pos_cache_fetch_t *f = s->fetches[b]; f != NULL; f = f->next) {
            if (f->state < FETCH_INVALIDATED && pos_glob_test(g, f->key, f->len)) {
                f->state = FETCH_INVALIDATED;
            }
        }
    }
    for (pos_cache_mget_t *m = s->mgets; m != NULL; m = m->next) {
        for (size_t i = 0; i < m->n; i++) {
            if (m->state[i] < FETCH_INVALIDATED && pos_glob_test(g, m->keys[i], m->lens[i])) {
                m->state[i] = FETCH_INVALIDATED;
            }
        }
    }
}

void pos_cachesvc_read(pos_cachesvc_t *s, const char *key, size_t len, pos_cachesvc_cb cb,
                       void *ctx)
{
    pos_cache_fetch_t *f;
    cache_waiter_t *w;

    if (cache_local(s, key, len, cb, ctx, true) == 0) {
        return; /* fresh */
    }
    if (oversize_find(s, key, len) != NULL) {
        oversize_answer(s, key, len, cb, ctx); /* not asked again so soon */
        return;
    }
    if (!pos_link_is_online(s->link)) {
        cache_local_or_miss(s, key, len, cb, ctx);
        return;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        cb(ctx, -ENOMEM, NULL, 0, 0, false);
        return;
    }
    w->cb = cb;
    w->ctx = ctx;
    pos_cache_fetch_t **bucket = fetch_bucket(s, key, len);
    for (f = *bucket; f != NULL; f = f->next) {
        if (f->len == len && memcmp(f->key, key, len) == 0) {
            /* One GET serves every concurrent miss, answered in the order
             * they came: a client's pipelined reads complete in its order,
             * its replies go straight out and none waits held behind a
             * later one (localapi.c bounds both). */
            f->waiters_tail->next = w;
            f->waiters_tail = w;
            s->fetches_shared++;
            return;
        }
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL || (f->key = malloc(len + 1)) == NULL) {
        free(f);
        free(w);
        cb(ctx, -ENOMEM, NULL, 0, 0, false);
        return;
    }
    memcpy(f->key, key, len);
    f->key[len] = '\0';
    f->len = len;
    f->svc = s;
    f->waiters = f->waiters_tail = w;
    const char *argv[] = {"GET", f->key};
    size_t lens[] = {3, len};
    /* On the link's spare room: a client's reads may be many (a GET per
     * key of an MGET), the heartbeat must still get through. */
    if (pos_link_command_spare(s->link, cache_fetch_done, f, 2, argv, lens) != 0) {
        free(f->key);
        free(f);
        free(w);
        cache_local_or_miss(s, key, len, cb, ctx);
        return;
    }
    f->next = *bucket;
    *bucket = f;
}

void pos_cachesvc_inventory(pos_cachesvc_t *s, const pos_msg_inventory_t *inv, const char *json,
                            size_t len)
{
    char key[160];
    cJSON *root;
    char *value;

    if (!s->open) {
        return;
    }
    snprintf(key, sizeof(key), "inventory:%s:%s", inv->store_id, inv->product_id);
    /* The body minus "type" becomes the cached value (CONTRACT.md). The
     * decoder validated it, so it parses. */
    root = cJSON_ParseWithLength(json, len);
    if (root == NULL) {
        POS_WARN("cache", "%s not updated: the message does not parse", key);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "type");
    value = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (value == NULL) {
        return;
    }
    int rc = pos_cache_put(&s->cache, key, strlen(key), value, strlen(value), POS_CACHE_INVENTORY,
                           pos_clock_wall_ms());
    if (rc == 0) {
        fetches_mark(s, key, strlen(key), FETCH_OVERWRITTEN);
    }
    if (rc != 0) {
        POS_WARN("cache", "%s not updated: %s", key, strerror(-rc));
    }
    cJSON_free(value);
}

static void tracking_flushed(void *arg, int status, size_t n)
{
    (void)arg;
    if (status == 0) {
        POS_INFO("cache", "Redis flushed: %zu entries marked stale", n);
    }
}

void pos_cachesvc_tracking(pos_cachesvc_t *s, const redisReply *keys)
{
    /* A GET in flight for an invalidated key: the invalidation travels on
     * another connection and may overtake the GET's answer, read before the
     * write. The answer is served and kept, but stale, so that the next read
     * asks Redis again. Not dropped: tracking broadcasts every write to the
     * prefixes, and the invalidation of a write Redis made before it read
     * the key arrives after the GET was sent just as often; a session the
     * cloud had just created must stay on the till (a local EXPIRE refreshes
     * it). */
    if (keys == NULL) {
        oversize_forget(s, NULL, NULL);
        fetches_mark(s, NULL, 0, FETCH_SUSPECT);
    }
    for (size_t i = 0; keys != NULL && i < keys->elements; i++) {
        if (keys->element[i]->type == REDIS_REPLY_STRING) {
            glob_ctx_t k = {keys->element[i]->str, keys->element[i]->len};
            oversize_forget(s, oversize_is, &k);
            fetches_mark(s, k.pattern, k.len, FETCH_SUSPECT);
        }
    }
    if (!s->open) {
        return;
    }
    if (keys == NULL) {
        /* FLUSHALL / FLUSHDB */
        if (pos_cache_mark_all_stale(&s->cache, tracking_flushed, NULL) != 0) {
            POS_INFO("cache", "Redis flushed: every entry marked stale");
        }
        return;
    }
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type == REDIS_REPLY_STRING) {
            /* Refetched at the next read. */
            pos_cache_mark_stale(&s->cache, k->str, k->len);
        }
    }
}

static bool cache_glob(void *ctx, const char *key, size_t key_len)
{
    /* The application's own writes are no copy of Redis's keys: "*" does
     * not take them (their delivery is still to come). */
    if (key_len > 0 && key[0] == POS_CACHE_LOCAL_PREFIX) {
        return false;
    }
    return pos_glob_test(ctx, key, key_len);
}

static void cache_glob_free(void *ctx)
{
    pos_glob_free(ctx);
}

static void invalidate_done(void *arg, int status, size_t n)
{
    (void)arg;
    if (status == 0) {
        POS_INFO("cache", "invalidated %zu entries", n);
    }
}

int pos_cachesvc_clear(pos_cachesvc_t *s, const char *pattern, size_t plen, pos_cache_done_fn done,
                       void *arg)
{
    pos_cache_match_t m = {cache_glob, cache_glob_free, NULL};
    pos_glob_t *g;
    int rc;

    if (pos_glob_compile(pattern, plen, &g) != 0) {
        /* Out of memory: at least nothing matching is served as fresh. */
        oversize_forget(s, NULL, NULL);
        fetches_mark(s, NULL, 0, FETCH_INVALIDATED);
        if (s->open) {
            POS_ERR("cache", "cannot compile an invalidation pattern: marking every entry stale");
            (void)pos_cache_mark_all_stale(&s->cache, NULL, NULL);
        }
        return -ENOMEM;
    }
    /* Compiled first: the oversized keys and the GETs in flight are
     * matched with the same glob. */
    oversize_forget(s, cache_glob, g);
    fetches_mark_glob(s, g);
    if (!s->open) {
        pos_glob_free(g);
        return -ENODEV;
    }
    m.ctx = g;
    rc = pos_cache_delete_if(&s->cache, &m, done, arg);
    if (rc == -EBUSY) {
        POS_INFO("cache", "invalidation turned into marking every entry stale (cache busy)");
    }
    return rc;
}

void pos_cachesvc_invalidate(pos_cachesvc_t *s, const char *pattern)
{
    if (pos_cachesvc_clear(s, pattern, strlen(pattern), invalidate_done, NULL) != -ENODEV) {
        s->invalidations++;
    }
}

/*
 * MGET keys[0..n) (lens[i] bytes each; NULL lens: NUL-terminated) with cb
 * and ctx. Returns 0, or a negative errno (nothing sent, cb not called).
 */
static void cache_mget_free(pos_cache_mget_t *m)
{
    if (m != NULL) {
        free(m->keys);
        free(m->lens);
        free(m);
    }
}

/* Unlinks m, then the caller's callback runs with s->mget telling what
 * happened to each key meanwhile (mget_state_of()). */
static void cache_mget_done(void *ctx, const redisReply *r, int err)
{
    pos_cache_mget_t *m = ctx;
    pos_cachesvc_t *s = m->svc;

    for (pos_cache_mget_t **pp = &s->mgets; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    const pos_cache_mget_t *outer = s->mget;
    s->mget = m;
    m->cb(m->ctx, r, err);
    s->mget = outer;
    cache_mget_free(m);
}

/*
 * In an MGET's callback: what happened to its key i meanwhile, as for a
 * GET. CURRENT: the answer is stored (or, nil, deleted). SUSPECT (a
 * tracking invalidation): stored, then marked stale. INVALIDATED,
 * OVERWRITTEN: the answer may be older than the change and is neither
 * stored nor deleted; the entry stays as the change left it.
 */
static fetch_state_t mget_state_of(const pos_cachesvc_t *s, size_t i)
{
    return s->mget == NULL ? FETCH_CURRENT : (fetch_state_t)s->mget->state[i];
}

/* In an MGET's callback, after its values are submitted: marks stale those
 * a tracking invalidation overtook. */
static void mget_mark_suspects(pos_cachesvc_t *s, const redisReply *r)
{
    const pos_cache_mget_t *m = s->mget;

    for (size_t i = 0; m != NULL && i < m->n && i < r->elements; i++) {
        if (m->state[i] == FETCH_SUSPECT && r->element[i]->type == REDIS_REPLY_STRING) {
            pos_cache_mark_stale(&s->cache, m->keys[i], m->lens[i]);
            s->fetches_raced++;
        }
    }
}

static int cache_mget(pos_cachesvc_t *s, char *const *keys, const size_t *lens, size_t n,
                      pos_reply_cb cb, void *ctx)
{
    const char **argv = calloc(n + 1, sizeof(*argv));
    size_t *alens = calloc(n + 1, sizeof(*alens));
    pos_cache_mget_t *m = calloc(1, sizeof(*m) + n);
    size_t bytes = 0;
    int rc = -ENOMEM;

    if (argv == NULL || alens == NULL || m == NULL) {
        goto out;
    }
    argv[0] = "MGET";
    alens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
        alens[i + 1] = lens != NULL ? lens[i] : strlen(keys[i]);
        bytes += alens[i + 1];
    }
    *m = (pos_cache_mget_t){
        s, cb, ctx, malloc(n * sizeof(char *) + bytes), malloc(n * sizeof(size_t)), n, s->mgets};
    if (m->keys == NULL || m->lens == NULL) {
        goto out;
    }
    char *at = (char *)(m->keys + n);
    for (size_t i = 0; i < n; i++) {
        m->keys[i] = at;
        m->lens[i] = alens[i + 1];
        memcpy(at, keys[i], m->lens[i]);
        at += m->lens[i];
    }
    rc = pos_link_command(s->link, cache_mget_done, m, (int)n + 1, argv, alens);
    if (rc == 0) {
        s->mgets = m;
        m = NULL;
    }
out:
    free(argv);
    free(alens);
    cache_mget_free(m);
    return rc;
}

/* The cache item for key (len bytes) holding v, a string element of an MGET reply. */
static pos_cache_item_t mget_item(const char *key, size_t len, const redisReply *v)
{
    return (pos_cache_item_t){
        .key = key,
        .key_len = len,
        .value = v->str,
        .value_len = v->len,
        .family = pos_cache_family_of(key, len),
    };
}

#define REVAL_BATCH 100
/* Bytes of local values per batch: the MGET's reply stays far below what
 * the link accepts in one reply (POS_RESP_GUARD_REPLY_BYTES). */
#define REVAL_BATCH_BYTES (1024u * 1024u)

typedef struct reval_batch {
    pos_cachesvc_t *svc;
    uint64_t epoch;
    size_t n;
    uint64_t bytes; /* of the local copies of keys[0..n) */
    char *keys[REVAL_BATCH];
    size_t lens[REVAL_BATCH];
} reval_batch_t;

static void reval_next(pos_cachesvc_t *s);

static int reval_visit(void *ctx, const char *key, size_t key_len, const pos_cache_meta_t *meta)
{
    reval_batch_t *b = ctx;

    if (!meta->stale || b->n >= REVAL_BATCH) {
        return 0; /* verified since the disconnect (or the batch is full) */
    }
    if (meta->family == POS_CACHE_OTHER) {
        /* The local API's last known sets (SMEMBERS, TERMINALS): not string
         * values MGET could confirm; refreshed by their next online read. */
        return 0;
    }
    b->keys[b->n] = malloc(key_len + 1);
    if (b->keys[b->n] == NULL) {
        return -ENOMEM;
    }
    memcpy(b->keys[b->n], key, key_len);
    b->keys[b->n][key_len] = '\0';
    b->lens[b->n] = key_len;
    b->n++;
    b->bytes += meta->value_len;
    return b->bytes >= REVAL_BATCH_BYTES; /* full: the rest in the next batch */
}

static void reval_free(reval_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->keys[i]);
    }
    free(b);
}

/* The batch's values are applied (or were refused): the walk goes on. */
static void reval_stored(void *arg, int status, size_t n)
{
    reval_batch_t *b = arg;
    pos_cachesvc_t *s = b->svc;
    bool current = b->epoch == s->reval_epoch && s->open;

    reval_free(b);
    if (!current) {
        return; /* a newer reconnect walks again */
    }
    if (status == 0) {
        s->revalidated += n;
    }
    reval_next(s);
}

static void reval_reply(void *ctx, const redisReply *r, int err)
{
    reval_batch_t *b = ctx;
    pos_cachesvc_t *s = b->svc;
    pos_cache_item_t items[REVAL_BATCH];
    size_t n = 0;

    if (err == -EMSGSIZE && s->open) {
        /* One of the values grew past the limit and the link dropped the
         * connection on it. Which one is unknown; were the batch kept, the
         * next reconnect would ask for it again and drop again. Its local
         * copies go: read-through fetches the others again one by one. */
        for (size_t i = 0; i < b->n; i++) {
            if (mget_state_of(s, i) != FETCH_OVERWRITTEN) {
                pos_cache_delete(&s->cache, b->keys[i], b->lens[i]);
            }
        }
        POS_WARN("cache", "revalidation: a value over the limit; %zu entries dropped", b->n);
    }
    if (err != 0 || b->epoch != s->reval_epoch || !s->open) {
        reval_free(b); /* link gone: the next reconnect starts again */
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == b->n) {
        for (size_t i = 0; i < b->n; i++) {
            const redisReply *v = r->element[i];
            if (mget_state_of(s, i) > FETCH_SUSPECT) {
                s->fetches_raced++;
            } else if (v->type == REDIS_REPLY_STRING && v->len <= s->max_value_bytes) {
                items[n++] = mget_item(b->keys[i], b->lens[i], v);
            } else if (v->type == REDIS_REPLY_NIL || v->type == REDIS_REPLY_STRING) {
                /* Gone, or grown past the limit: either way not kept. */
                pos_cache_delete(&s->cache, b->keys[i], b->lens[i]);
            }
        }
    }
    if (n == 0) {
        reval_free(b);
        reval_next(s);
        return;
    }
    /* One request for the whole batch; the next MGET once it is applied, so
     * the walk goes at the writer's pace. */
    int rc = pos_cache_put_batch(&s->cache, items, n, pos_clock_wall_ms(), reval_stored, b);
    if (rc == 0) {
        mget_mark_suspects(s, r);
    }
    if (rc != 0) {
        reval_free(b);
        /* The entries stay stale: a read refetches them. */
        POS_WARN("cache", "revalidation stopped: %s", strerror(-rc));
        s->revalidating = false;
    }
}

/* Scan calls per loop turn: the walk yields to the loop in between. */
#define REVAL_SCANS_PER_TURN 4

static void reval_timer_cb(uv_timer_t *t)
{
    reval_next(t->data);
}

static void reval_next(pos_cachesvc_t *s)
{
    reval_batch_t *b;
    int scans = 0;

    while (!s->reval.done && s->revalidating) {
        if (scans++ == REVAL_SCANS_PER_TURN) {
            uv_timer_start(&s->reval_timer, reval_timer_cb, 0, 0);
            return;
        }
        b = calloc(1, sizeof(*b));
        if (b == NULL) {
            break;
        }
        b->svc = s;
        b->epoch = s->reval_epoch;
        if (pos_cache_scan(&s->cache, &s->reval, REVAL_BATCH, reval_visit, b) < 0) {
            reval_free(b);
            break;
        }
        if (b->n == 0) {
            reval_free(b);
            continue; /* nothing stale in this stretch of keys */
        }
        if (cache_mget(s, b->keys, b->lens, b->n, reval_reply, b) != 0) {
            reval_free(b);
            break;
        }
        return; /* one batch in flight at a time: the loop stays responsive */
    }
    if (s->reval.done && s->revalidating) {
        s->revalidating = false;
        POS_INFO("cache", "revalidated after reconnect: %" PRIu64 " entries refreshed",
                 s->revalidated);
    }
}

static void online_marked(void *arg, int status, size_t n)
{
    (void)arg;
    if (status == 0) {
        POS_DEBUG("cache", "%zu entries marked stale for revalidation", n);
    }
}

void pos_cachesvc_online(pos_cachesvc_t *s, uint64_t since_ms)
{
    if (!s->open) {
        return;
    }
    /* Submitted, not yet applied: the walk below sees the marks through the
     * cache's overlay all the same. An entry verified in the millisecond
     * the link went down may predate a change made after: stale too. */
    (void)pos_cache_mark_stale_before(&s->cache, since_ms + 1, online_marked, NULL);
    memset(&s->reval, 0, sizeof(s->reval));
    s->reval_epoch++;
    s->revalidating = true;
    s->revalidated = 0;
    uv_timer_stop(&s->reval_timer);
    reval_next(s);
}

/*
 * Warm-up (CONTRACT.md "Indexes for warm-up"): the products, then the
 * store's inventory. Each set's version is read first and the set skipped
 * when it is the version of its last complete warm-up; else SSCAN of the
 * index set and MGET of the values. Without index:inventory:{storeId} the
 * inventory falls back to SCAN MATCH (the whole keyspace); without
 * index:products the products are those the store's inventory names
 * (MGET with each inventory page, as before the index sets existed), not
 * a second walk of the keyspace. Either is logged and shown in INFO.
 * One command in flight at a time.
 */
#define WARM_COUNT    "500" /* SSCAN / SCAN COUNT */
#define WARM_MGET_MAX 128u  /* keys per MGET */

enum { WARM_PRODUCTS = 0, WARM_INVENTORY = 1, WARM_SETS = 2 };

typedef struct warm_step {
    pos_cachesvc_t *svc;
    uint64_t epoch;
    int set;             /* WARM_PRODUCTS, then WARM_INVENTORY */
    bool scan;           /* this set by SCAN MATCH: its index set does not exist */
    bool first;          /* the set's first page */
    bool named_products; /* no index:products: the inventory's products instead */
    bool chunk_products; /* the current chunk's product keys are being read */
    bool waiting;        /* the page's values are all asked: it waits for its puts */
    bool refused;        /* the cache shed a put: the warm-up stops after this page */
    bool aborted;        /* over; the last put's completion frees it */
    unsigned storing;    /* put requests of this step not yet applied */
    char cursor[32];
    char version[WARM_SETS][POS_CACHESVC_VERSION_MAX]; /* read at the start; "": none */
    char **keys;                                       /* this page's keys */
    char **pkeys; /* with named_products: product:{id} of each inventory key */
    size_t n;     /* keys */
    size_t done;  /* keys read so far */
} warm_step_t;

static void warm_page(warm_step_t *w);
static void warm_set_begin(warm_step_t *w);

/* index:inventory:{storeId} or index:products, then suffix. */
static void warm_index_key(const pos_cachesvc_t *s, int set, const char *suffix, char *buf,
                           size_t cap)
{
    if (set == WARM_INVENTORY) {
        snprintf(buf, cap, "index:inventory:%s%s", s->store_id, suffix);
    } else {
        snprintf(buf, cap, "index:products%s", suffix);
    }
}

/* The prefix of the set's keys: inventory:{storeId}: or product:. */
static void warm_key_prefix(const pos_cachesvc_t *s, int set, char *buf, size_t cap)
{
    if (set == WARM_INVENTORY) {
        snprintf(buf, cap, "inventory:%s:", s->store_id);
    } else {
        snprintf(buf, cap, "product:");
    }
}

static void warm_keys_free(warm_step_t *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->keys[i]);
        if (w->pkeys != NULL) {
            free(w->pkeys[i]);
        }
    }
    free(w->keys);
    free(w->pkeys);
    w->keys = w->pkeys = NULL;
    w->n = w->done = 0;
    w->chunk_products = false;
}

/* Frees w now, or marks it for the last of its puts still in the writer. */
static void warm_release(warm_step_t *w)
{
    warm_keys_free(w);
    if (w->storing == 0) {
        free(w);
    } else {
        w->aborted = true;
    }
}

/* The warm-up stops here: nothing more is asked. */
static void warm_abort(warm_step_t *w)
{
    w->svc->warming = false;
    warm_release(w);
}

/* True when the reply to w came with an error or for a warm-up that is over. */
static bool warm_gone(const warm_step_t *w, int err)
{
    return err != 0 || w->epoch != w->svc->warm_epoch || !w->svc->open;
}

static void warm_finish(warm_step_t *w)
{
    pos_cachesvc_t *s = w->svc;

    warm_release(w);
    s->warming = false;
#ifdef __GLIBC__
    /* The replies of a big warm-up grew the heap; give it back, the agent
     * spends most of its life idle. */
    malloc_trim(0);
#endif
    POS_INFO("cache",
             "warm-up: %" PRIu64 " inventory and %" PRIu64
             " product entries stored (inventory: %s, products: %s)",
             s->warmed_inventory, s->warmed_products, s->warm_source[WARM_INVENTORY],
             s->warm_source[WARM_PRODUCTS]);
}

/* The page's values are applied: the next page, the next set, or the end. */
static void warm_page_done(warm_step_t *w)
{
    pos_cachesvc_t *s = w->svc;

    w->waiting = false;
    if (w->refused) {
        POS_WARN("cache", "warm-up stopped: the cache is busy");
        warm_abort(w);
        return;
    }
    warm_keys_free(w);
    if (strcmp(w->cursor, "0") != 0) {
        warm_page(w);
        return;
    }
    /* The set is complete: its version is the one to compare next time,
     * if it came through its index. */
    snprintf(s->warm_version[w->set], sizeof(s->warm_version[0]), "%s",
             w->scan ? "" : w->version[w->set]);
    s->warm_source[w->set] = w->scan ? "scan" : "index";
    w->set++;
    warm_set_begin(w);
}

/* One of the step's puts is applied: once all of the page's are, the next
 * page (the store writer sets the pace, not Redis). */
static void warm_stored(warm_step_t *w, int status, size_t n, uint64_t *counter)
{
    bool current = !w->aborted && !warm_gone(w, 0);

    if (status == 0 && current) {
        *counter += n;
    }
    w->storing--;
    if (w->storing > 0) {
        return;
    }
    if (w->aborted) {
        free(w); /* abandoned while its puts were in the writer */
    } else if (w->waiting && current) {
        warm_page_done(w);
    } else if (w->waiting) {
        warm_keys_free(w); /* a warm-up that is over (a newer one, or closed) */
        free(w);
    }
    /* else an MGET of the page is still to come back */
}

static void warm_inventory_stored(void *arg, int status, size_t n)
{
    warm_step_t *w = arg;
    warm_stored(w, status, n, &w->svc->warmed_inventory);
}

static void warm_products_stored(void *arg, int status, size_t n)
{
    warm_step_t *w = arg;
    warm_stored(w, status, n, &w->svc->warmed_products);
}

/* Submits the values of an MGET whose keys are keys[0..n), in chunks. */
static void warm_store(warm_step_t *w, char **keys, size_t n, const redisReply *r,
                       pos_cache_done_fn done)
{
    pos_cachesvc_t *s = w->svc;
    pos_cache_item_t *items;
    size_t m = 0;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != n || n == 0) {
        return;
    }
    items = calloc(n, sizeof(*items));
    if (items == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *v = r->element[i];
        if (mget_state_of(s, i) > FETCH_SUSPECT) {
            s->fetches_raced++;
        } else if (v->type == REDIS_REPLY_STRING && v->len <= s->max_value_bytes) {
            items[m++] = mget_item(keys[i], strlen(keys[i]), v);
        }
    }
    /* In chunks: LMDB keeps the dirty pages of its largest write
     * transaction allocated for reuse, so one 500-entry transaction would
     * hold on to about a megabyte for the agent's whole life. */
    for (size_t i = 0; i < m && !w->refused; i += WARM_PUT_CHUNK) {
        size_t k = m - i < WARM_PUT_CHUNK ? m - i : WARM_PUT_CHUNK;
        w->storing++;
        int rc = pos_cache_put_batch(&s->cache, items + i, k, pos_clock_wall_ms(), done, w);
        if (rc != 0) {
            w->storing--;
            w->refused = rc == -EBUSY;
        }
    }
    mget_mark_suspects(s, r);
    free(items);
}

static void warm_mget_next(warm_step_t *w);

static void warm_values_reply(void *ctx, const redisReply *r, int err)
{
    warm_step_t *w = ctx;
    size_t k = w->n - w->done < WARM_MGET_MAX ? w->n - w->done : WARM_MGET_MAX;

    if (warm_gone(w, err)) {
        warm_abort(w);
        return;
    }
    if (w->chunk_products) {
        warm_store(w, w->pkeys + w->done, k, r, warm_products_stored);
        w->chunk_products = false;
        w->done += k;
    } else if (w->set == WARM_INVENTORY) {
        warm_store(w, w->keys + w->done, k, r, warm_inventory_stored);
        /* The products this chunk names, when there is no index of them. */
        w->chunk_products = w->pkeys != NULL;
        w->done += w->chunk_products ? 0 : k;
    } else {
        warm_store(w, w->keys + w->done, k, r, warm_products_stored);
        w->done += k;
    }
    warm_mget_next(w);
}

/* The page's values, WARM_MGET_MAX keys at a time (not waiting for their
 * puts); then, once they are applied, the next page or set. A shed put
 * stops the page's reads. */
static void warm_mget_next(warm_step_t *w)
{
    pos_cachesvc_t *s = w->svc;

    if (w->done < w->n && !w->refused) {
        size_t k = w->n - w->done < WARM_MGET_MAX ? w->n - w->done : WARM_MGET_MAX;
        char **keys = w->chunk_products ? w->pkeys : w->keys;
        if (cache_mget(s, keys + w->done, NULL, k, warm_values_reply, w) != 0) {
            warm_abort(w);
        }
        return;
    }
    w->waiting = true;
    if (w->storing == 0) {
        warm_page_done(w);
    }
}

/* A member of an index set: a product id (no blanks nor control bytes)
 * that makes a key of at most POS_CACHE_KEY_MAX bytes with its prefix. */
static bool warm_member_ok(const redisReply *m, size_t prefix_len)
{
    if (m->type != REDIS_REPLY_STRING || m->len == 0 || prefix_len + m->len > POS_CACHE_KEY_MAX) {
        return false;
    }
    for (size_t i = 0; i < m->len; i++) {
        if ((unsigned char)m->str[i] <= ' ' || (unsigned char)m->str[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* prefix + id[0..len), malloc'd. */
static char *warm_join(const char *prefix, const char *id, size_t len)
{
    size_t plen = strlen(prefix);
    char *k = malloc(plen + len + 1);

    if (k != NULL) {
        memcpy(k, prefix, plen);
        memcpy(k + plen, id, len);
        k[plen + len] = '\0';
    }
    return k;
}

/* The first page of an index set came back empty: Redis keeps no empty
 * set, so there is no index. */
static void warm_no_index(warm_step_t *w)
{
    pos_cachesvc_t *s = w->svc;
    char prefix[96], index[128];

    warm_index_key(s, w->set, "", index, sizeof(index));
    /* Warned once a run; every later warm-up finds the same (INFO cache
     * warm_products / warm_inventory say it all along). */
    pos_log_level_t level = s->warm_told[w->set] ? POS_LOG_DEBUG : POS_LOG_WARN;
    s->warm_told[w->set] = true;
    if (w->set == WARM_PRODUCTS) {
        pos_log(level, "cache",
                "warm-up: no %s (CONTRACT.md \"Indexes for warm-up\"): warming the products "
                "the store's inventory names",
                index);
        w->named_products = true;
        s->warm_source[WARM_PRODUCTS] = "inventory";
        s->warm_version[WARM_PRODUCTS][0] = '\0';
        w->set++;
        warm_set_begin(w);
        return;
    }
    warm_key_prefix(s, w->set, prefix, sizeof(prefix));
    pos_log(level, "cache",
            "warm-up: no %s (CONTRACT.md \"Indexes for warm-up\"): falling back to SCAN MATCH "
            "%s*, which walks the whole keyspace",
            index, prefix);
    s->warm_scans++;
    w->scan = true;
    warm_page(w);
}

static void warm_page_reply(void *ctx, const redisReply *r, int err)
{
    warm_step_t *w = ctx;
    pos_cachesvc_t *s = w->svc;
    char prefix[96];
    size_t plen, ilen = strlen("inventory:") + strlen(s->store_id) + 1;

    if (warm_gone(w, err) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(w->cursor) ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        if (err == 0 && !warm_gone(w, 0)) {
            POS_WARN("cache", "warm-up %s refused or malformed: %.*s", w->scan ? "SCAN" : "SSCAN",
                     r->type == REDIS_REPLY_ERROR ? pos_conn_log_len(r) : 0,
                     r->type == REDIS_REPLY_ERROR ? r->str : "");
        }
        warm_abort(w);
        return;
    }
    const redisReply *items = r->element[1];
    snprintf(w->cursor, sizeof(w->cursor), "%.*s", (int)r->element[0]->len, r->element[0]->str);
    if (!w->scan && w->first && strcmp(w->cursor, "0") == 0 && items->elements == 0) {
        warm_no_index(w);
        return;
    }
    w->first = false;
    w->keys = calloc(items->elements ? items->elements : 1, sizeof(char *));
    if (w->named_products && w->set == WARM_INVENTORY) {
        w->pkeys = calloc(items->elements ? items->elements : 1, sizeof(char *));
    }
    if (w->keys == NULL || (w->named_products && w->set == WARM_INVENTORY && w->pkeys == NULL)) {
        warm_abort(w);
        return;
    }
    warm_key_prefix(s, w->set, prefix, sizeof(prefix));
    plen = strlen(prefix);
    for (size_t i = 0; i < items->elements; i++) {
        const redisReply *m = items->element[i];
        char *key = NULL;
        if (w->scan && m->type == REDIS_REPLY_STRING && pos_cachesvc_cacheable(m->str, m->len)) {
            key = strndup(m->str, m->len);
        } else if (!w->scan && warm_member_ok(m, plen)) {
            key = warm_join(prefix, m->str, m->len);
        } else if (!w->scan) {
            s->warm_members_refused++;
        }
        if (key == NULL) {
            continue;
        }
        if (w->pkeys != NULL) {
            /* inventory:{storeId}:{productId} -> product:{productId} */
            const char *id = strlen(key) > ilen ? key + ilen : "";
            w->pkeys[w->n] = warm_join("product:", id, strlen(id));
            if (w->pkeys[w->n] == NULL) {
                free(key);
                continue;
            }
        }
        w->keys[w->n++] = key;
    }
    warm_mget_next(w);
}

/* The next page of the current set (from w->cursor). */
static void warm_page(warm_step_t *w)
{
    pos_cachesvc_t *s = w->svc;
    char name[128];
    int rc;

    if (w->scan) {
        warm_key_prefix(s, w->set, name, sizeof(name) - 1);
        strcat(name, "*");
        const char *argv[] = {"SCAN", w->cursor, "MATCH", name, "COUNT", WARM_COUNT};
        rc = pos_link_commandv(s->link, warm_page_reply, w, 6, argv);
    } else {
        warm_index_key(s, w->set, "", name, sizeof(name));
        const char *argv[] = {"SSCAN", name, w->cursor, "COUNT", WARM_COUNT};
        rc = pos_link_commandv(s->link, warm_page_reply, w, 5, argv);
    }
    if (rc != 0) {
        warm_abort(w);
    }
}

/* The next set not skipped as unchanged, from its first page; or the end. */
static void warm_set_begin(warm_step_t *w)
{
    pos_cachesvc_t *s = w->svc;

    while (w->set < WARM_SETS && w->version[w->set][0] != '\0' &&
           strcmp(w->version[w->set], s->warm_version[w->set]) == 0) {
        /* Unchanged since its last complete warm-up: invalidations have
         * kept its values fresh meanwhile. */
        s->warm_source[w->set] = "unchanged";
        s->warm_skipped++;
        w->set++;
    }
    if (w->set == WARM_SETS) {
        warm_finish(w);
        return;
    }
    w->scan = false;
    w->first = true;
    snprintf(w->cursor, sizeof(w->cursor), "0");
    warm_page(w);
}

static void warm_versions_reply(void *ctx, const redisReply *r, int err)
{
    warm_step_t *w = ctx;

    if (warm_gone(w, err)) {
        warm_abort(w);
        return;
    }
    /* Without versions (nil, or a server that refused) every set is read. */
    for (int i = 0; r->type == REDIS_REPLY_ARRAY && r->elements == WARM_SETS && i < WARM_SETS;
         i++) {
        const redisReply *v = r->element[i];
        if (v->type == REDIS_REPLY_STRING && v->len > 0 && v->len < sizeof(w->version[0])) {
            memcpy(w->version[i], v->str, v->len);
            w->version[i][v->len] = '\0';
        }
    }
    warm_set_begin(w);
}

void pos_cachesvc_warm(pos_cachesvc_t *s)
{
    char prod[128], inv[128];
    char *keys[WARM_SETS] = {prod, inv};
    warm_step_t *w;

    if (!s->open || s->warming || !pos_link_is_online(s->link)) {
        return;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return;
    }
    s->warming = true;
    s->warm_epoch++;
    s->warmed_inventory = s->warmed_products = 0;
    w->svc = s;
    w->epoch = s->warm_epoch;
    warm_index_key(s, WARM_PRODUCTS, ":version", prod, sizeof(prod));
    warm_index_key(s, WARM_INVENTORY, ":version", inv, sizeof(inv));
    if (cache_mget(s, keys, NULL, WARM_SETS, warm_versions_reply, w) != 0) {
        warm_abort(w);
    }
}

static void warm_timer_cb(uv_timer_t *t)
{
    pos_cachesvc_warm(t->data);
}

uint64_t pos_cachesvc_ttl_ms(const pos_cachesvc_t *s, pos_cache_family_t family)
{
    return s->open ? pos_cache_ttl_ms(&s->cache, family) : 0;
}

void pos_cachesvc_set_freshness(pos_cachesvc_t *s, const uint64_t ttl_ms[POS_CACHE_FAMILY_COUNT],
                                unsigned warm_interval_s)
{
    if (!s->open) {
        return;
    }
    pos_cache_set_ttl(&s->cache, ttl_ms);
    if (uv_timer_get_repeat(&s->warm_timer) != (uint64_t)warm_interval_s * 1000u) {
        /* The next warm-up one new interval from now. */
        uv_timer_start(&s->warm_timer, warm_timer_cb, (uint64_t)warm_interval_s * 1000u,
                       (uint64_t)warm_interval_s * 1000u);
    }
}

static void cachesvc_timer_closed(uv_handle_t *h)
{
    pos_cachesvc_t *s = h->data;

    if (--s->open_handles == 0 && s->closed_cb != NULL) {
        s->closed_cb(s->closed_arg);
    }
}

void pos_cachesvc_close(pos_cachesvc_t *s, void (*done)(void *arg), void *arg)
{
    s->closed_cb = done;
    s->closed_arg = arg;
    s->open_handles = 3;
    if (s->open) {
        pos_cache_detach(&s->cache); /* the writer closes next: what waits is for dispose */
    }
    uv_close((uv_handle_t *)&s->flush_timer, cachesvc_timer_closed);
    uv_close((uv_handle_t *)&s->warm_timer, cachesvc_timer_closed);
    uv_close((uv_handle_t *)&s->reval_timer, cachesvc_timer_closed);
}

void pos_cachesvc_dispose(pos_cachesvc_t *s)
{
    if (s->open) {
        /* Closed first: the completions of what still runs now ask Redis nothing. */
        s->open = false;
        pos_cache_close(&s->cache);
    }
}
