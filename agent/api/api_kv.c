#include "agent/api/api_kv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform/clock.h"
#include "platform/endian.h"
#include "platform/log.h"

/*
 * The local copy of a session:* or temp:* key the application wrote is a
 * cache entry under "\x01" (POS_CACHE_LOCAL_PREFIX) + key (family OTHER:
 * never revalidated, warmed or tracked, so Redis's older copy cannot
 * overwrite it before the write is delivered; never dropped by an
 * invalidation), holding an envelope:
 *   0 version (1)  1 flags (bit 0: deleted)  2 expiry_ms (le64, 0: none)
 *   10 written_ms (le64)  18 the value as the application gave it
 * A record of another version is ignored (treated as no local copy).
 */
#define KV_REC_VERSION   1u
#define KV_REC_HDR       18u
#define KV_FLAG_DELETED  1u
#define KV_ORIGIN_SUFFIX ":origin"
/* The longest key the application may write: its companion key:origin and
 * the local copy's "\x01" + key must both fit a Redis key of the store. */
#define KV_KEY_MAX (POS_CACHE_KEY_MAX - (sizeof(KV_ORIGIN_SUFFIX) - 1))
/* The outbox refuses these writes past this share of its entries (per
 * cent): the rest stays for the agent's own messages, and nothing the
 * application writes is dropped for room. */
#define KV_OUTBOX_SHARE 90u

/* The agent's own counters (CONTRACT.md "Keys the agent writes":
 * counter:terminal:{terminalId}:payments_approved ...): read only here. */
#define KV_AGENT_COUNTERS "counter:terminal:"

#define API_COUNTER_TTL_S  86400u
#define KV_EXPIRY_GRACE_MS 1000u    /* kv_known(): after the till's expiry, Redis's too */
#define KV_NOT_SENT        (-10000) /* kv_read_redis(): the link took nothing */

typedef enum kv_class {
    KV_WRITABLE, /* session:*, temp:* */
    KV_COUNTER,  /* counter:* */
    KV_CLOUD,    /* product:*, inventory:*, user:* */
    KV_REFUSED,  /* anything else */
} kv_class_t;

static bool has_prefix(const char *key, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len > n && memcmp(key, p, n) == 0;
}

static kv_class_t kv_class(const char *key, size_t len)
{
    if (has_prefix(key, len, "session:") || has_prefix(key, len, "temp:")) {
        return KV_WRITABLE;
    }
    if (has_prefix(key, len, "counter:")) {
        return KV_COUNTER;
    }
    if (has_prefix(key, len, "product:") || has_prefix(key, len, "inventory:") ||
        has_prefix(key, len, "user:")) {
        return KV_CLOUD;
    }
    return KV_REFUSED;
}

bool pos_api_kv_handles(const char *key, size_t len)
{
    kv_class_t c = kv_class(key, len);
    return c == KV_WRITABLE || c == KV_COUNTER;
}

/* Checks a key the application writes; answers the error and returns false. */
static bool kv_key_ok(pos_localapi_reply_t *r, const char *key, size_t len, bool counter)
{
    char msg[256];

    if (len == 0 || memchr(key, '\0', len) != NULL) {
        pos_localapi_reply_error(r, "ERR bad key: empty or holding a NUL byte");
        return false;
    }
    if (len > KV_KEY_MAX) {
        snprintf(msg, sizeof(msg), "ERR key too long: at most %zu bytes", (size_t)KV_KEY_MAX);
        pos_localapi_reply_error(r, msg);
        return false;
    }
    if (len >= sizeof(KV_AGENT_COUNTERS) - 1 &&
        memcmp(key, KV_AGENT_COUNTERS, sizeof(KV_AGENT_COUNTERS) - 1) == 0) {
        /* The agent's payment metrics, this terminal's and (by name) any
         * other's: whoever moved them would speak for a till. The agent
         * counts them itself (pos_delivery_incrby), not through here. */
        pos_localapi_reply_error(r, "ERR counter:terminal:* keys are the agent's own payment "
                                    "counters: the local API only reads them");
        return false;
    }
    switch (kv_class(key, len)) {
    case KV_WRITABLE:
        if (counter) {
            break;
        }
        if (len >= sizeof(KV_ORIGIN_SUFFIX) - 1 &&
            memcmp(key + len - (sizeof(KV_ORIGIN_SUFFIX) - 1), KV_ORIGIN_SUFFIX,
                   sizeof(KV_ORIGIN_SUFFIX) - 1) == 0) {
            /* The agent writes it with every SET of key (who wrote it,
             * signed): the application must not speak for the till, nor
             * unsay it. */
            pos_localapi_reply_error(r, "ERR KEY:origin is the agent's stamp of KEY: the local "
                                        "API does not write it");
            return false;
        }
        return true;
    case KV_COUNTER:
        if (counter) {
            return true;
        }
        pos_localapi_reply_error(r, "ERR counter:* keys are written with INCR and INCRBY only");
        return false;
    case KV_CLOUD:
        pos_localapi_reply_error(r, "ERR product:*, inventory:* and user:* keys are owned by the "
                                    "cloud: the till only reads them");
        return false;
    default:
        break;
    }
    pos_localapi_reply_error(r, counter ? "ERR only counter:* keys can be incremented here"
                                        : "ERR the local API writes only session:* and temp:* "
                                          "keys (SET, SETEX, EXPIRE, PEXPIRE, DEL) and counter:* "
                                          "keys (INCR, INCRBY)");
    return false;
}

bool pos_api_kv_room(pos_api_t *api, pos_localapi_reply_t *r, uint64_t entries, uint64_t bytes)
{
    pos_outbox_t *ob = api->opt.delivery->ob;
    pos_outbox_stats_t st;

    if (ob == NULL) {
        pos_localapi_reply_error(r, "ERR no local store: writes cannot be kept, refused");
        return false;
    }
    pos_outbox_stats(ob, &st);
    if ((ob->cfg.max_entries != 0 &&
         (st.entries + entries) * 100u > (uint64_t)ob->cfg.max_entries * KV_OUTBOX_SHARE) ||
        (ob->cfg.max_bytes != 0 &&
         (st.bytes + bytes) * 100u > (uint64_t)ob->cfg.max_bytes * KV_OUTBOX_SHARE)) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "BUSY outbox nearly full (%" PRIu64 " entries waiting for Redis): write "
                 "refused, try again later",
                 st.entries);
        pos_localapi_reply_error(r, msg);
        return false;
    }
    return true;
}

/* ---- the local copy ------------------------------------------------------------- */

typedef struct kv_rec {
    bool found;   /* a local copy written by the application */
    bool deleted; /* a DEL not yet delivered (or not yet followed by a read online) */
    uint64_t expiry_ms;
    uint64_t written_ms;
    char *value; /* malloc'd */
    size_t len;
} kv_rec_t;

static void kv_rec_free(kv_rec_t *rec)
{
    free(rec->value);
    memset(rec, 0, sizeof(*rec));
}

static bool kv_rec_live(const kv_rec_t *rec, uint64_t now)
{
    return rec->found && !rec->deleted && (rec->expiry_ms == 0 || rec->expiry_ms > now);
}

/* The local copy's key of key into out (POS_CACHE_KEY_MAX + 1 bytes): its
 * length, or 0 for a key too long to be one the application may write
 * (there is no such copy: TTL and PTTL ask with any key). */
static size_t kv_local_key(const char *key, size_t len, char *out)
{
    if (len > KV_KEY_MAX) {
        return 0;
    }
    out[0] = POS_CACHE_LOCAL_PREFIX;
    memcpy(out + 1, key, len);
    return len + 1;
}

/* Reads a cache entry's value (malloc'd into *out). Returns 0, -ENOENT or a negative errno. */
static int kv_cache_read(pos_api_t *api, const char *key, size_t len, char **out, size_t *olen)
{
    pos_cachesvc_t *svc = api->opt.cache;
    pos_cache_info_t info;
    char one;
    uint64_t now = pos_clock_wall_ms();

    *out = NULL;
    if (!svc->open) {
        return -ENOENT;
    }
    memset(&info, 0, sizeof(info));
    int rc = pos_cache_get(&svc->cache, key, len, now, &one, 0, &info);
    if (rc != 0 && rc != -ENOBUFS) {
        return rc;
    }
    char *buf = malloc(info.meta.value_len + 1u);
    if (buf == NULL) {
        return -ENOMEM;
    }
    rc = pos_cache_get(&svc->cache, key, len, now, buf, info.meta.value_len, &info);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[info.meta.value_len] = '\0';
    *out = buf;
    *olen = info.meta.value_len;
    return 0;
}

static void kv_local_get(pos_api_t *api, const char *key, size_t len, kv_rec_t *rec)
{
    char lkey[POS_CACHE_KEY_MAX + 1];
    size_t llen = kv_local_key(key, len, lkey);
    char *buf;
    size_t blen;

    memset(rec, 0, sizeof(*rec));
    if (llen == 0 || kv_cache_read(api, lkey, llen, &buf, &blen) != 0) {
        return;
    }
    const unsigned char *p = (const unsigned char *)buf;
    if (blen < KV_REC_HDR || p[0] != KV_REC_VERSION) {
        free(buf);
        return; /* not ours to read: as if absent */
    }
    rec->found = true;
    rec->deleted = (p[1] & KV_FLAG_DELETED) != 0;
    rec->expiry_ms = pos_endian_get_le64(p + 2);
    rec->written_ms = pos_endian_get_le64(p + 10);
    rec->len = blen - KV_REC_HDR;
    memmove(buf, buf + KV_REC_HDR, rec->len);
    buf[rec->len] = '\0';
    rec->value = buf;
}

/* Stores the local copy (submitted to the writer; reads see it at once). */
static int kv_local_put(pos_api_t *api, const char *key, size_t len, const char *value, size_t vlen,
                        uint64_t expiry_ms, bool deleted, uint64_t now)
{
    char lkey[POS_CACHE_KEY_MAX + 1];
    size_t llen = kv_local_key(key, len, lkey);
    pos_cachesvc_t *svc = api->opt.cache;
    unsigned char *rec;
    int rc;

    if (!svc->open) {
        return -ENODEV;
    }
    if (llen == 0) {
        return -ENAMETOOLONG;
    }
    rec = malloc(KV_REC_HDR + vlen);
    if (rec == NULL) {
        return -ENOMEM;
    }
    rec[0] = KV_REC_VERSION;
    rec[1] = deleted ? KV_FLAG_DELETED : 0;
    pos_endian_put_le64(rec + 2, expiry_ms);
    pos_endian_put_le64(rec + 10, now);
    if (vlen != 0) {
        memcpy(rec + KV_REC_HDR, value, vlen);
    }
    rc = pos_cache_put(&svc->cache, lkey, llen, rec, KV_REC_HDR + vlen, POS_CACHE_OTHER, now);
    free(rec);
    if (rc == 0) {
        /* A copy read from Redis before this write is outdated by it: once
         * the till's copy ends, the next read goes to Redis, not to it. */
        (void)pos_cache_delete(&svc->cache, key, len);
    }
    return rc;
}

static void kv_local_drop(pos_api_t *api, const char *key, size_t len)
{
    char lkey[POS_CACHE_KEY_MAX + 1];
    size_t llen = kv_local_key(key, len, lkey);

    if (api->opt.cache->open && llen != 0) {
        (void)pos_cache_delete(&api->opt.cache->cache, lkey, llen);
    }
}

static bool kv_online(const pos_api_t *api)
{
    return api->opt.link != NULL && pos_link_is_online(api->opt.link);
}

static unsigned kv_pending_writes(const pos_api_t *api, const char *key, size_t len)
{
    const pos_delivery_key_t *k = pos_delivery_key(api->opt.delivery, key, len);
    return k != NULL ? k->pending_writes : 0;
}

/* ---- writes ---------------------------------------------------------------------- */

typedef struct kv_write {
    pos_localapi_reply_t *r;
    bool integer; /* answer value (INCR) or OK */
    long long value;
} kv_write_t;

static void kv_write_done(void *ctx, int status, uint64_t id)
{
    kv_write_t *w = ctx;

    (void)id;
    if (status != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "ERR not queued for Redis: %s", strerror(-status));
        pos_localapi_reply_error(w->r, msg);
    } else if (w->integer) {
        pos_localapi_reply_int(w->r, w->value);
    } else {
        pos_localapi_reply_status(w->r, "OK");
    }
    pos_localapi_reply_done(w->r);
    free(w);
}

/* The companion written to key:origin: who wrote the value, and when. */
static void kv_origin(const pos_api_t *api, uint64_t now, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"origin\":\"pos-app\",\"terminalId\":\"%s\",\"storeId\":\"%s\",\"ts\":%" PRIu64 "}",
             api->opt.terminal_id != NULL ? api->opt.terminal_id : "",
             api->opt.store_id != NULL ? api->opt.store_id : "", now);
}

/* The write w (rc from queueing it): answered once durable, or refused now. */
static int kv_queued(pos_localapi_reply_t *r, kv_write_t *w, int rc)
{
    if (rc != 0) {
        free(w);
        char msg[128];
        snprintf(msg, sizeof(msg), "ERR not queued for Redis: %s", strerror(-rc));
        pos_localapi_reply_error(r, msg);
        return 0;
    }
    return POS_LOCALAPI_PENDING;
}

/* Queues op for key; the reply follows once it is durable (OK, or *answer when given). */
static int kv_queue(pos_api_t *api, pos_localapi_reply_t *r, pos_delivery_kv_op_t op,
                    const char *key, const char *value, size_t vlen, uint64_t expiry_ms,
                    uint64_t now)
{
    char origin[256];
    kv_write_t *w = malloc(sizeof(*w));
    int rc;

    if (w == NULL) {
        return -ENOMEM;
    }
    *w = (kv_write_t){r, false, 0};
    kv_origin(api, now, origin, sizeof(origin));
    rc = pos_delivery_kv(api->opt.delivery, op, key, value, vlen, expiry_ms, origin, kv_write_done,
                         w);
    return kv_queued(r, w, rc);
}

/* An integer argument as Redis reads one: an optional '-' and digits,
 * nothing around them (strtoll alone takes spaces and '+' too). */
static bool kv_ll_arg(const char *s, size_t len, long long *out)
{
    char *end;

    if (len == 0 || (s[0] != '-' && (s[0] < '0' || s[0] > '9'))) {
        return false;
    }
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && (size_t)(end - s) == len;
}

/* Parses a positive TTL; answers the error and returns false when bad. */
static bool kv_ttl_arg(pos_localapi_reply_t *r, const char *s, size_t len, bool ms, uint64_t *out)
{
    long long v;

    if (!kv_ll_arg(s, len, &v)) {
        pos_localapi_reply_error(r, "ERR value is not an integer or out of range");
        return false;
    }
    if (v <= 0 || v > (ms ? 100LL * 365 * 86400 * 1000 : 100LL * 365 * 86400)) {
        pos_localapi_reply_error(r, ms ? "ERR invalid expire time in 'set' command: PX must be "
                                         "1 ms .. 100 years"
                                       : "ERR invalid expire time: EX must be 1 s .. 100 years");
        return false;
    }
    *out = (uint64_t)v * (ms ? 1u : 1000u);
    return true;
}

/* SET key value [EX s | PX ms] and SETEX key s value, on session:* and temp:*. */
static int kv_set(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t klen,
                  const char *value, size_t vlen, uint64_t ttl_ms)
{
    uint64_t now = pos_clock_wall_ms();
    uint64_t max = api->opt.cache->max_value_bytes;
    uint64_t expiry = ttl_ms != 0 ? now + ttl_ms : 0;
    int rc;

    if (!kv_key_ok(r, key, klen, false)) {
        return 0;
    }
    if (max == 0 || max > POS_API_KV_VALUE_MAX) {
        max = POS_API_KV_VALUE_MAX;
    }
    if (vlen > max) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "ERR value too large: at most %" PRIu64 " bytes "
                 "([cache] max_value_bytes, and what the outbox keeps)",
                 max);
        pos_localapi_reply_error(r, msg);
        return 0;
    }
    if (!pos_api_kv_room(api, r, 1, klen + vlen)) {
        return 0;
    }
    rc = kv_local_put(api, key, klen, value, vlen, expiry, false, now);
    if (rc == -EBUSY) {
        pos_localapi_reply_error(r, "BUSY local store busy: write refused, try again later");
        return 0;
    }
    if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "ERR local copy not kept: %s", strerror(-rc));
        pos_localapi_reply_error(r, msg);
        return 0;
    }
    return kv_queue(api, r, POS_DELIVERY_KV_SET, key, value, vlen, expiry, now);
}

int pos_api_kv_cmd_set(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens)
{
    uint64_t ttl = 0;

    if (argc == 5) {
        bool ex = strcasecmp(argv[3], "EX") == 0, px = strcasecmp(argv[3], "PX") == 0;
        if (!ex && !px) {
            pos_localapi_reply_error(r, "ERR syntax error: only SET key value [EX s | PX ms] "
                                        "is served here");
            return 0;
        }
        if (!kv_ttl_arg(r, argv[4], lens[4], px, &ttl)) {
            return 0;
        }
    } else if (argc != 3) {
        pos_localapi_reply_error(r, "ERR syntax error: only SET key value [EX s | PX ms] is "
                                    "served here");
        return 0;
    }
    return kv_set(owner, r, argv[1], lens[1], argv[2], lens[2], ttl);
}

int pos_api_kv_cmd_setex(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens)
{
    uint64_t ttl;

    (void)argc;
    if (!kv_ttl_arg(r, argv[2], lens[2], false, &ttl)) {
        return 0;
    }
    return kv_set(owner, r, argv[1], lens[1], argv[3], lens[3], ttl);
}

/* EXPIRE key s / PEXPIRE key ms: 1 when the key is known on the till, else 0. */
static int kv_expire(void *owner, pos_localapi_reply_t *r, const char **argv, const size_t *lens,
                     bool ms)
{
    pos_api_t *api = owner;
    uint64_t now = pos_clock_wall_ms(), ttl;
    kv_rec_t rec;
    int rc;

    if (!kv_key_ok(r, argv[1], lens[1], false) || !kv_ttl_arg(r, argv[2], lens[2], ms, &ttl)) {
        return 0;
    }
    kv_local_get(api, argv[1], lens[1], &rec);
    if (!kv_rec_live(&rec, now)) {
        /* Not written here: a copy read from Redis (a session the cloud
         * created) is refreshed all the same. Ended here: nothing to refresh. */
        bool ended = rec.found;
        kv_rec_free(&rec);
        if (!ended && kv_cache_read(api, argv[1], lens[1], &rec.value, &rec.len) == 0) {
            rec.found = true;
        } else {
            kv_rec_free(&rec);
            pos_localapi_reply_int(r, 0);
            return 0;
        }
    }
    if (!pos_api_kv_room(api, r, 1, lens[1])) {
        kv_rec_free(&rec);
        return 0;
    }
    rc = kv_local_put(api, argv[1], lens[1], rec.value, rec.len, now + ttl, false, now);
    kv_rec_free(&rec);
    if (rc != 0) {
        pos_localapi_reply_error(r, rc == -EBUSY ? "BUSY local store busy: try again later"
                                                 : "ERR local copy not kept");
        return 0;
    }
    kv_write_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    *w = (kv_write_t){r, true, 1};
    rc = pos_delivery_kv(api->opt.delivery, POS_DELIVERY_KV_PEXPIRE, argv[1], NULL, 0, now + ttl,
                         NULL, kv_write_done, w);
    if (rc != 0) {
        free(w);
        pos_localapi_reply_error(r, "ERR not queued for Redis");
        return 0;
    }
    return POS_LOCALAPI_PENDING;
}

int pos_api_kv_cmd_expire(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens)
{
    (void)argc;
    return kv_expire(owner, r, argv, lens, false);
}

int pos_api_kv_cmd_pexpire(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                           const size_t *lens)
{
    (void)argc;
    return kv_expire(owner, r, argv, lens, true);
}

/* A DEL of several keys: answered once every one is durable. */
typedef struct kv_del {
    pos_localapi_reply_t *r;
    size_t left;
    long long found;
    int status;
} kv_del_t;

static void kv_del_done(void *ctx, int status, uint64_t id)
{
    kv_del_t *d = ctx;

    (void)id;
    if (status != 0) {
        d->status = status;
    }
    if (--d->left > 0) {
        return;
    }
    if (d->status != 0) {
        pos_localapi_reply_error(d->r, "ERR not queued for Redis");
    } else {
        pos_localapi_reply_int(d->r, d->found);
    }
    pos_localapi_reply_done(d->r);
    free(d);
}

int pos_api_kv_cmd_del(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens)
{
    pos_api_t *api = owner;
    uint64_t now = pos_clock_wall_ms();
    kv_del_t *d;

    uint64_t bytes = 0;
    for (int i = 1; i < argc; i++) {
        if (!kv_key_ok(r, argv[i], lens[i], false)) {
            return 0;
        }
        bytes += lens[i];
    }
    /* One outbox entry per key. */
    if (!pos_api_kv_room(api, r, (uint64_t)argc - 1, bytes)) {
        return 0;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    d->r = r;
    d->left = (size_t)argc; /* one more than the keys: released below */
    for (int i = 1; i < argc; i++) {
        kv_rec_t rec;
        char *cached = NULL;
        size_t clen;
        kv_local_get(api, argv[i], lens[i], &rec);
        if (kv_rec_live(&rec, now) ||
            (!rec.found && kv_cache_read(api, argv[i], lens[i], &cached, &clen) == 0)) {
            d->found++;
        }
        free(cached);
        kv_rec_free(&rec);
        /* A tombstone: nil on the till until Redis has the DEL too. */
        int lrc = kv_local_put(api, argv[i], lens[i], NULL, 0, 0, true, now);
        if (lrc == -EBUSY && i == 1) {
            /* Nothing done yet: refused whole, as SET is. */
            free(d);
            pos_localapi_reply_error(r, "BUSY local store busy: write refused, try again later");
            return 0;
        }
        if (lrc != 0) {
            /* No tombstone: at least the live copy goes, never served again. */
            kv_local_drop(api, argv[i], lens[i]);
        }
        if (api->opt.cache->open) {
            (void)pos_cache_delete(&api->opt.cache->cache, argv[i], lens[i]);
        }
        int rc = pos_delivery_kv(api->opt.delivery, POS_DELIVERY_KV_DEL, argv[i], NULL, 0, 0, NULL,
                                 kv_del_done, d);
        if (rc != 0) {
            d->status = rc;
            d->left--;
        }
    }
    if (--d->left == 0) {
        if (d->status != 0) {
            pos_localapi_reply_error(r, "ERR not queued for Redis");
        } else {
            pos_localapi_reply_int(r, d->found);
        }
        free(d);
        return 0;
    }
    return POS_LOCALAPI_PENDING;
}

/* ---- reads ----------------------------------------------------------------------- */

/*
 * What the till knows of a written key: 1 with the live local copy in
 * *rec, 0 when it is gone on the till (deleted or expired, and Redis may
 * not know yet, or the link is down), -1 when the till has no say (no
 * local copy, or its end has been delivered and the link is up: Redis
 * answers).
 */
static int kv_known(pos_api_t *api, const char *key, size_t len, kv_rec_t *rec)
{
    uint64_t now = pos_clock_wall_ms();

    kv_local_get(api, key, len, rec);
    if (!rec->found) {
        return -1;
    }
    if (kv_rec_live(rec, now)) {
        return 1;
    }
    /* An expiry needs a moment to pass in Redis too (the TTL was sent as
     * a remaining time and took the network's time to arrive): read
     * before, Redis could still answer the value, cached as fresh. */
    if (kv_online(api) && kv_pending_writes(api, key, len) == 0 &&
        (rec->deleted || now >= rec->expiry_ms + KV_EXPIRY_GRACE_MS)) {
        /* Over on the till and in Redis: Redis's word from now on (the
         * cloud's later write wins). */
        kv_local_drop(api, key, len);
        kv_rec_free(rec);
        return -1;
    }
    kv_rec_free(rec);
    return 0;
}

typedef struct kv_read {
    pos_api_t *api;
    pos_localapi_reply_t *r;
    bool counter;
    bool incr;    /* an INCR waiting for the counter's value in Redis */
    long long by; /* and its step */
    size_t len;
    char key[];
} kv_read_t;

static int kv_incr_queue(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len,
                         long long by);

/*
 * The local copy of a counter's confirmed value (key counter:NAME):
 * "<value> <upto>", upto the last outbox id whose increment the value
 * includes (written before that entry leaves the outbox), or "<value>"
 * as kept before (upto unknown: 0). Returns false when it is not one.
 */
static bool kv_counter_parse(const char *text, long long *value, uint64_t *upto)
{
    char *end;

    errno = 0;
    *value = strtoll(text, &end, 10);
    if (errno != 0 || end == text) {
        return false;
    }
    *upto = 0;
    if (*end == ' ' && end[1] >= '0' && end[1] <= '9') {
        const char *u = end + 1;
        unsigned long long x = strtoull(u, &end, 10);
        if (errno != 0) {
            return false;
        }
        *upto = (uint64_t)x;
    }
    return *end == '\0';
}

/* The counter's last confirmed value: in memory, else the local copy
 * (the increments it includes are no longer pending from then on). */
static bool kv_counter_confirmed(pos_api_t *api, const char *key, size_t len, long long *v)
{
    const pos_delivery_key_t *k = pos_delivery_key(api->opt.delivery, key, len);
    char *buf;
    size_t blen;
    long long x;
    uint64_t upto;

    if (k != NULL && k->has_confirmed) {
        *v = k->confirmed;
        return true;
    }
    if (kv_cache_read(api, key, len, &buf, &blen) == 0) {
        bool ok = kv_counter_parse(buf, &x, &upto);
        free(buf);
        if (ok) {
            pos_delivery_confirm(api->opt.delivery, key, len, x, upto);
            *v = x;
            return true;
        }
    }
    return false;
}

/* The increments of the counter not yet confirmed (the local copy of its
 * value read first: it may include some the outbox still holds). */
static long long kv_counter_pending(pos_api_t *api, const char *key, size_t len)
{
    long long c;
    (void)kv_counter_confirmed(api, key, len, &c);
    const pos_delivery_key_t *k = pos_delivery_key(api->opt.delivery, key, len);
    return k != NULL ? k->pending_sum : 0;
}

static void kv_counter_reply(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len)
{
    long long c = 0;
    bool known = kv_counter_confirmed(api, key, len, &c);
    long long p = kv_counter_pending(api, key, len);
    char text[32];

    if (!known && p == 0) {
        pos_localapi_reply_nil(r);
        return;
    }
    int n = snprintf(text, sizeof(text), "%lld", pos_delivery_sum(c, p));
    pos_localapi_reply_bulk(r, text, (size_t)n);
}

/* A keep under way: its caller's callback, and what the cache said while
 * the put was being submitted (without a writer it is done by then). */
typedef struct kv_keeping {
    pos_delivery_kept_cb kept;
    void *arg;
    bool submitting;
    bool called;
    int status;
} kv_keeping_t;

static void kv_counter_kept(void *arg, int status, size_t count)
{
    kv_keeping_t *w = arg;

    (void)count;
    if (w->submitting) {
        w->called = true; /* kv_counter_keep() answers it */
        w->status = status;
        return;
    }
    w->kept(w->arg, status);
    free(w);
}

/*
 * Keeps a counter's confirmed value on the local store (survives a
 * restart), with upto, the last outbox id whose increment it includes;
 * kept(arg, status) (kept may be NULL) once it is durable. Returns 0 when
 * kept was or will be called, else a negative errno (pos_delivery_t's
 * on_confirmed).
 */
static int kv_counter_keep(void *ctx, const char *key, long long value, uint64_t upto,
                           pos_delivery_kept_cb kept, void *arg)
{
    pos_api_t *api = ctx;
    char text[48];
    int n = snprintf(text, sizeof(text), "%lld %" PRIu64, value, upto);
    kv_keeping_t *w = NULL;
    int rc;

    if (!api->opt.cache->open) {
        return -ENODEV;
    }
    if (kept != NULL && (w = malloc(sizeof(*w))) == NULL) {
        return -ENOMEM;
    }
    if (w != NULL) {
        *w = (kv_keeping_t){kept, arg, true, false, 0};
    }
    /* Lazily: a value Redis can tell again, not worth an fsync of its own
     * (one per payment for the sales counters). */
    rc = pos_cache_put_lazy(&api->opt.cache->cache, key, strlen(key), text, (size_t)n,
                            POS_CACHE_OTHER, pos_clock_wall_ms(),
                            w != NULL ? kv_counter_kept : NULL, w);
    if (w == NULL) {
        return rc;
    }
    w->submitting = false;
    if (w->called) {
        kept(arg, w->status);
        rc = 0;
    }
    if (rc != 0 || w->called) {
        free(w);
    }
    return rc;
}

/* Keeps the counter's value as the till knows it now (read from Redis). */
static void kv_counter_keep_now(pos_api_t *api, const char *key, size_t len)
{
    const pos_delivery_key_t *k = pos_delivery_key(api->opt.delivery, key, len);

    if (k != NULL && k->has_confirmed) {
        (void)kv_counter_keep(api, k->key, k->confirmed, k->incr_done_id, NULL, NULL);
    }
}

static void kv_read_reply(void *ctx, const redisReply *rep, int err)
{
    kv_read_t *q = ctx;
    pos_api_t *api = q->api;

    if (q->counter) {
        if (q->incr && err == 0 && rep->type == REDIS_REPLY_NIL &&
            kv_counter_pending(api, q->key, q->len) == 0) {
            pos_delivery_confirm(api->opt.delivery, q->key, q->len, 0, 0); /* none yet */
        }
        if (err == 0 && rep->type == REDIS_REPLY_STRING) {
            char *end;
            errno = 0;
            long long v = strtoll(rep->str, &end, 10);
            if (errno == 0 && end != rep->str && *end == '\0' &&
                kv_counter_pending(api, q->key, q->len) == 0) {
                pos_delivery_confirm(api->opt.delivery, q->key, q->len, v, 0);
                kv_counter_keep_now(api, q->key, q->len);
            }
        }
        if (q->incr) {
            /* Whatever Redis said (or not): the increment is queued now. */
            if (kv_incr_queue(api, q->r, q->key, q->len, q->by) == POS_LOCALAPI_PENDING) {
                free(q);
                return;
            }
        } else {
            kv_counter_reply(api, q->r, q->key, q->len);
        }
    } else if (err == 0 && rep->type == REDIS_REPLY_STRING) {
        pos_localapi_reply_bulk(q->r, rep->str, rep->len);
    } else if (err == 0 && rep->type == REDIS_REPLY_NIL) {
        pos_localapi_reply_nil(q->r);
    } else {
        pos_localapi_reply_error(q->r, "ERR Redis did not answer");
    }
    pos_localapi_reply_done(q->r);
    free(q);
}

/* GET straight from Redis (not cached), answered by kv_read_reply(). */
static int kv_read_redis(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len,
                         bool counter)
{
    kv_read_t *q = malloc(sizeof(*q) + len + 1);
    if (q == NULL) {
        return -ENOMEM;
    }
    q->api = api;
    q->r = r;
    q->counter = counter;
    q->incr = false;
    q->by = 0;
    q->len = len;
    memcpy(q->key, key, len);
    q->key[len] = '\0';
    const char *argv[] = {"GET", q->key};
    size_t lens[] = {3, len};
    if (pos_link_command_spare(api->opt.link, kv_read_reply, q, 2, argv, lens) != 0) {
        free(q);
        return KV_NOT_SENT; /* the caller answers locally */
    }
    return POS_LOCALAPI_PENDING;
}

int pos_api_kv_get(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len,
                   int (*read_through)(pos_api_t *api, pos_localapi_reply_t *r, const char *key,
                                       size_t len))
{
    kv_rec_t rec;
    int k;

    if (memchr(key, '\0', len) != NULL || len > KV_KEY_MAX) {
        pos_localapi_reply_error(r, "ERR bad key");
        return 0;
    }
    if (kv_class(key, len) == KV_COUNTER) {
        /* Online with nothing pending: Redis's value, kept as confirmed. */
        if (kv_online(api) && kv_counter_pending(api, key, len) == 0) {
            int rc = kv_read_redis(api, r, key, len, true);
            if (rc != KV_NOT_SENT) {
                return rc;
            }
        }
        kv_counter_reply(api, r, key, len);
        return 0;
    }
    k = kv_known(api, key, len, &rec);
    if (k == 1) {
        pos_localapi_reply_bulk(r, rec.value, rec.len);
        kv_rec_free(&rec);
        return 0;
    }
    if (k == 0) {
        pos_localapi_reply_nil(r);
        return 0;
    }
    if (has_prefix(key, len, "session:")) {
        return read_through(api, r, key, len); /* the cloud's sessions: the cache */
    }
    if (kv_online(api)) {
        int rc = kv_read_redis(api, r, key, len, false);
        if (rc != KV_NOT_SENT) {
            return rc;
        }
    }
    pos_localapi_reply_nil(r);
    return 0;
}

int pos_api_kv_ttl(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len, bool ms)
{
    kv_rec_t rec;
    int k = kv_known(api, key, len, &rec);
    uint64_t now = pos_clock_wall_ms();

    if (k != 1) {
        return 1; /* not the till's to say */
    }
    if (rec.expiry_ms == 0) {
        pos_localapi_reply_int(r, -1);
    } else {
        uint64_t left = rec.expiry_ms > now ? rec.expiry_ms - now : 0;
        pos_localapi_reply_int(r, ms ? (long long)left : (long long)((left + 999u) / 1000u));
    }
    kv_rec_free(&rec);
    return 0;
}

/* ---- counters -------------------------------------------------------------------- */

int pos_api_kv_cmd_incr(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                        const size_t *lens)
{
    pos_api_t *api = owner;
    long long by = 1, c = 0;

    if (!kv_key_ok(r, argv[1], lens[1], true)) {
        return 0;
    }
    if (argc == 3 && !kv_ll_arg(argv[2], lens[2], &by)) {
        pos_localapi_reply_error(r, "ERR value is not an integer or out of range");
        return 0;
    }
    if (!pos_api_kv_room(api, r, 1, lens[1])) {
        return 0;
    }
    if (!kv_counter_confirmed(api, argv[1], lens[1], &c) &&
        kv_counter_pending(api, argv[1], lens[1]) == 0 && kv_online(api)) {
        /* A counter the till has not seen yet: Redis's value first, so
         * the answer is the counter's and not the till's increments alone. */
        kv_read_t *q = malloc(sizeof(*q) + lens[1] + 1);
        if (q == NULL) {
            return -ENOMEM;
        }
        *q = (kv_read_t){api, r, true, true, by, lens[1]};
        memcpy(q->key, argv[1], lens[1]);
        q->key[lens[1]] = '\0';
        const char *cargv[] = {"GET", q->key};
        size_t clens[] = {3, lens[1]};
        if (pos_link_command_spare(api->opt.link, kv_read_reply, q, 2, cargv, clens) == 0) {
            return POS_LOCALAPI_PENDING;
        }
        free(q); /* the link took nothing: go on from what the till knows */
    }
    return kv_incr_queue(api, r, argv[1], lens[1], by);
}

/* Queues the increment and answers confirmed + pending once it is durable.
 * Returns POS_LOCALAPI_PENDING, or 0 with an error answered. */
static int kv_incr_queue(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len,
                         long long by)
{
    long long c = 0, value;
    kv_write_t *w;

    (void)kv_counter_confirmed(api, key, len, &c);
    /* Modulo 2^64, as the pending sum is kept: the value itself. */
    if (__builtin_add_overflow(pos_delivery_sum(c, kv_counter_pending(api, key, len)), by,
                               &value)) {
        pos_localapi_reply_error(r, "ERR increment or decrement would overflow");
        return 0;
    }
    if ((w = malloc(sizeof(*w))) == NULL) {
        pos_localapi_reply_error(r, "ERR out of memory");
        return 0;
    }
    /* The value as the till knows it: Redis's last answer plus what is
     * still on its way, this increment included. */
    *w = (kv_write_t){r, true, value};
    int rc = pos_delivery_incrby(api->opt.delivery, key, by, API_COUNTER_TTL_S, kv_write_done, w);
    return kv_queued(r, w, rc);
}

void pos_api_kv_init(pos_api_t *api)
{
    api->opt.delivery->on_confirmed = kv_counter_keep;
    api->opt.delivery->confirmed_ctx = api;
}

void pos_api_kv_free(pos_api_t *api)
{
    if (api->opt.delivery->confirmed_ctx == api) {
        api->opt.delivery->on_confirmed = NULL;
        api->opt.delivery->confirmed_ctx = NULL;
    }
}
