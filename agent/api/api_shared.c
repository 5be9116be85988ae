/*
 * The local API's commands on shared state: rate limits decided in Redis
 * (or on the till's own window offline), the store's active transactions
 * and terminals (read through online, the last known copy offline), and
 * dropping local cache entries by pattern. See docs/local-api.md.
 */
#include "agent/api/api_shared.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "platform/clock.h"
#include "platform/log.h"

#define API_TERMINALS_MAX   256u  /* members of terminals:{storeId} listed */
#define API_SET_MEMBERS_MAX 4096u /* members of a set kept as the last known copy */
#define API_TID_MAX         64u   /* bytes of a terminal id taken from the set */

/*
 * CONTRACT.md "Rate limits", one atomic step: drop what left the window,
 * count, admit below max (ZADD, PEXPIRE), answer allowed, remaining and
 * the oldest member's score + window. The time is Redis's own (TIME), so
 * every till and the cloud share one clock whatever their skew. A member
 * scored exactly now - window has left the window: its reset time is now.
 */
static const char api_ratelimit_lua[] =
    "local key = KEYS[1]\n"
    "local window = tonumber(ARGV[1])\n"
    "local max = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)\n"
    "local count = redis.call('ZCARD', key)\n"
    "local allowed = 0\n"
    "if count < max then\n"
    "  redis.call('ZADD', key, now, ARGV[3])\n"
    "  redis.call('PEXPIRE', key, window)\n"
    "  count = count + 1\n"
    "  allowed = 1\n"
    "end\n"
    "local reset = now + window\n"
    "local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')\n"
    "if oldest[2] then reset = tonumber(oldest[2]) + window end\n"
    "return {allowed, math.max(0, max - count), reset}\n";

static bool api_online(const pos_api_t *api)
{
    return api->opt.link != NULL && pos_link_is_online(api->opt.link);
}

/* A decimal number lo..hi with nothing else around it. */
static bool api_parse_u32(const char *s, size_t len, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 10) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10u + (uint64_t)(s[i] - '0');
    }
    if (v < lo || v > hi) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

int pos_api_shared_init(pos_api_t *api)
{
    api->ratelimit_nonce = pos_clock_wall_ms() ^ ((uint64_t)uv_hrtime() << 20);
    api->ratelimit_seq = 0;
    api->terminals_inflight = NULL;
    api->ratelimit_warned_ms = 0;
    memset(&api->shared, 0, sizeof(api->shared));
    return pos_ratelimit_init(&api->ratelimit, 0);
}

void pos_api_shared_free(pos_api_t *api)
{
    pos_ratelimit_free(&api->ratelimit);
}

/* ---- requests waiting for Redis ------------------------------------------------- */

/* What each pending request of RATELIMIT, SMEMBERS and CACHE.CLEAR holds
 * first: the API and the client's reply. */
typedef struct api_req {
    pos_api_t *api;
    pos_localapi_reply_t *r;
} api_req_t;

/* A zeroed request of size bytes (a struct whose first member is an
 * api_req_t) for r, or NULL. */
static void *api_req_new(size_t size, pos_api_t *api, pos_localapi_reply_t *r)
{
    api_req_t *q = calloc(1, size);

    if (q != NULL) {
        q->api = api;
        q->r = r;
    }
    return q;
}

/* ---- RATELIMIT ------------------------------------------------------------------ */

typedef struct api_rl_req {
    api_req_t req; /* first */
    uint32_t window_ms;
    uint32_t max;
    size_t len;
    char id[POS_RL_IDENT_MAX + 1];
} api_rl_req_t;

static void api_rl_answer(pos_localapi_reply_t *r, bool allowed, uint64_t remaining,
                          uint64_t reset_ms, const char *source)
{
    pos_localapi_reply_array_begin(r, 4);
    pos_localapi_reply_int(r, allowed ? 1 : 0);
    pos_localapi_reply_int(r, (long long)remaining);
    pos_localapi_reply_int(r, (long long)reset_ms);
    pos_localapi_reply_bulk(r, source, strlen(source));
}

/* Decides on the till's own window; the reset time in epoch ms. */
static void api_rl_local(pos_api_t *api, pos_localapi_reply_t *r, const char *id, size_t len,
                         uint32_t window_ms, uint32_t max)
{
    pos_rl_result_t res;
    uint64_t mono = pos_clock_mono_ms();
    uint64_t wall = pos_clock_wall_ms();

    if (pos_ratelimit_check(&api->ratelimit, id, len, window_ms, max, mono, &res) != 0) {
        pos_localapi_reply_error(r, "ERR rate limit window unavailable");
        return;
    }
    api->shared.ratelimit_local++;
    api_rl_answer(r, res.allowed, res.remaining, wall + (res.reset_ms - mono), "local");
}

static bool api_rl_reply_ok(const redisReply *rep)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        return false;
    }
    for (size_t i = 0; i < 3; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0) {
            return false;
        }
    }
    return rep->element[0]->integer <= 1;
}

static void api_rl_reply(void *ctx, const redisReply *rep, int err)
{
    api_rl_req_t *q = ctx;
    pos_api_t *api = q->req.api;

    if (err == 0 && api_rl_reply_ok(rep)) {
        bool allowed = rep->element[0]->integer == 1;
        if (allowed) {
            /* Counted locally too: offline goes on from what this till did. */
            (void)pos_ratelimit_record(&api->ratelimit, q->id, q->len, q->window_ms,
                                       pos_clock_mono_ms());
        }
        api->shared.ratelimit_redis++;
        api_rl_answer(q->req.r, allowed, (uint64_t)rep->element[1]->integer,
                      (uint64_t)rep->element[2]->integer, "redis");
    } else {
        /* Redis did not decide (the link went, a timeout, a refusal): the
         * application still gets an answer, and is told whose. Logged at
         * most once a minute: a refusal repeats with every check. */
        uint64_t now = pos_clock_mono_ms();
        bool quiet = api->ratelimit_warned_ms != 0 && now - api->ratelimit_warned_ms < 60000u;
        if (!quiet) {
            api->ratelimit_warned_ms = now;
        }
        if (!quiet && err != 0) {
            POS_WARN("api", "RATELIMIT: Redis did not answer (%s); decided locally",
                     strerror(-err));
        } else if (!quiet) {
            POS_WARN("api", "RATELIMIT: unexpected answer from Redis%s%.*s; decided locally",
                     rep->type == REDIS_REPLY_ERROR ? ": " : "",
                     rep->type == REDIS_REPLY_ERROR ? pos_conn_log_len(rep) : 0,
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        }
        api->shared.ratelimit_fallback++;
        api_rl_local(api, q->req.r, q->id, q->len, q->window_ms, q->max);
    }
    pos_localapi_reply_done(q->req.r);
    free(q);
}

int pos_api_cmd_ratelimit(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens)
{
    pos_api_t *api = owner;
    uint32_t window_ms, max;
    api_rl_req_t *q;

    (void)argc;
    if (!pos_ratelimit_valid_id(argv[1], lens[1])) {
        pos_localapi_reply_error(r, "ERR RATELIMIT identifier must be 1 to 128 bytes of letters, "
                                    "digits and ._-:@+=/");
        return 0;
    }
    if (!api_parse_u32(argv[2], lens[2], 1, POS_RL_WINDOW_MAX, &window_ms)) {
        pos_localapi_reply_error(r, "ERR RATELIMIT windowMs must be an integer from 1 to 86400000");
        return 0;
    }
    if (!api_parse_u32(argv[3], lens[3], 1, POS_RL_MAX_MAX, &max)) {
        pos_localapi_reply_error(r, "ERR RATELIMIT max must be an integer from 1 to 1000000");
        return 0;
    }
    if (!api_online(api)) {
        api_rl_local(api, r, argv[1], lens[1], window_ms, max);
        return 0;
    }
    q = api_req_new(sizeof(*q), api, r);
    if (q == NULL) {
        return -ENOMEM;
    }
    q->window_ms = window_ms;
    q->max = max;
    q->len = lens[1];
    memcpy(q->id, argv[1], lens[1]);
    q->id[lens[1]] = '\0';
    {
        char key[sizeof("rate_limit:") + POS_RL_IDENT_MAX + 16];
        char member[160];
        int klen = snprintf(key, sizeof(key), "rate_limit:%s:%" PRIu32, q->id, window_ms);
        /* Unique across tills (terminal id), runs (nonce) and requests. */
        int mlen = snprintf(member, sizeof(member), "%s:%" PRIx64 ":%" PRIu64,
                            api->opt.terminal_id != NULL ? api->opt.terminal_id : "till",
                            api->ratelimit_nonce, ++api->ratelimit_seq);
        const char *cargv[] = {"EVAL", api_ratelimit_lua, "1", key, argv[2], argv[3], member};
        size_t clens[] = {
            4, sizeof(api_ratelimit_lua) - 1, 1, (size_t)klen, lens[2], lens[3], (size_t)mlen};
        if (pos_link_command_spare(api->opt.link, api_rl_reply, q, 7, cargv, clens) != 0) {
            free(q);
            api->shared.ratelimit_fallback++;
            api_rl_local(api, r, argv[1], lens[1], window_ms, max);
            return 0;
        }
    }
    return POS_LOCALAPI_PENDING;
}

/* ---- last known copies in the local cache ------------------------------------------- */

/* Stores text as the last known copy of key (best effort: a full or absent
 * cache keeps the older copy or none). */
static void api_snapshot_put(pos_api_t *api, const char *key, const char *text)
{
    pos_cachesvc_t *svc = api->opt.cache;
    size_t len = strlen(text);

    if (svc == NULL || !svc->open || len > svc->max_value_bytes) {
        return;
    }
    (void)pos_cache_put(&svc->cache, key, strlen(key), text, len, POS_CACHE_OTHER,
                        pos_clock_wall_ms());
}

/* The last known copy of key parsed (cJSON_Delete it), or NULL. */
static cJSON *api_snapshot_get(pos_api_t *api, const char *key)
{
    pos_cachesvc_t *svc = api->opt.cache;
    pos_cache_info_t info;
    char one, *buf;
    cJSON *j;
    int rc;

    if (svc == NULL || !svc->open) {
        return NULL;
    }
    memset(&info, 0, sizeof(info));
    rc = pos_cache_get(&svc->cache, key, strlen(key), pos_clock_wall_ms(), &one, 0, &info);
    if (rc != -ENOBUFS && rc != 0) {
        return NULL;
    }
    buf = malloc(info.meta.value_len + 1);
    if (buf == NULL) {
        return NULL;
    }
    rc = pos_cache_get(&svc->cache, key, strlen(key), pos_clock_wall_ms(), buf, info.meta.value_len,
                       &info);
    if (rc != 0) {
        free(buf);
        return NULL;
    }
    buf[info.meta.value_len] = '\0';
    j = cJSON_Parse(buf);
    free(buf);
    api->shared.snapshots_served++;
    return j;
}

static bool api_printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- SMEMBERS active_transactions:{storeId} ------------------------------------------- */

typedef struct api_set_req {
    api_req_t req; /* first */
    char key[160];
} api_set_req_t;

static bool api_json_has(const cJSON *arr, const char *s)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0) {
            return true;
        }
    }
    return false;
}

/* Offline: the last known members, less this till's payments that have
 * ended since, plus its payment in progress. */
static void api_active_offline(pos_api_t *api, pos_localapi_reply_t *r, const char *key)
{
    cJSON *arr = api_snapshot_get(api, key);
    const char *own = api->opt.own_active != NULL ? api->opt.own_active(api->opt.own_ctx) : NULL;
    const cJSON *it;
    long long n = 0;

    if (arr != NULL && !cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        arr = NULL;
    }
    cJSON_ArrayForEach(it, arr)
    {
        n += cJSON_IsString(it) &&
             (api->opt.own_ended == NULL || !api->opt.own_ended(api->opt.own_ctx, it->valuestring));
    }
    bool add_own = own != NULL && own[0] != '\0' && (arr == NULL || !api_json_has(arr, own));
    pos_localapi_reply_array_begin(r, n + (add_own ? 1 : 0));
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && (api->opt.own_ended == NULL ||
                                   !api->opt.own_ended(api->opt.own_ctx, it->valuestring))) {
            pos_localapi_reply_bulk(r, it->valuestring, strlen(it->valuestring));
        }
    }
    if (add_own) {
        pos_localapi_reply_bulk(r, own, strlen(own));
    }
    cJSON_Delete(arr);
}

static void api_active_reply(void *ctx, const redisReply *rep, int err)
{
    api_set_req_t *q = ctx;

    if (err == 0 && rep->type == REDIS_REPLY_ARRAY) {
        cJSON *arr = cJSON_CreateArray();
        pos_localapi_reply_array_begin(q->req.r, (long long)rep->elements);
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *m = rep->element[i];
            if (m->type != REDIS_REPLY_STRING) {
                pos_localapi_reply_nil(q->req.r);
                continue;
            }
            pos_localapi_reply_bulk(q->req.r, m->str, m->len);
            if (arr != NULL && i < API_SET_MEMBERS_MAX && memchr(m->str, '\0', m->len) == NULL) {
                cJSON_AddItemToArray(arr, cJSON_CreateString(m->str));
            }
        }
        char *text = arr != NULL ? cJSON_PrintUnformatted(arr) : NULL;
        if (text != NULL) {
            api_snapshot_put(q->req.api, q->key, text);
        }
        free(text);
        cJSON_Delete(arr);
    } else if (err == 0 && rep->type == REDIS_REPLY_ERROR && rep->len >= 9 &&
               memcmp(rep->str, "WRONGTYPE", 9) == 0) {
        pos_localapi_reply_error(q->req.r, rep->str); /* Redis's own answer */
    } else {
        api_active_offline(q->req.api, q->req.r, q->key);
    }
    pos_localapi_reply_done(q->req.r);
    free(q);
}

int pos_api_cmd_smembers(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens)
{
    pos_api_t *api = owner;
    api_set_req_t *q;
    char want[160];
    int n;

    (void)argc;
    n = snprintf(want, sizeof(want), "active_transactions:%s",
                 api->opt.store_id != NULL ? api->opt.store_id : "");
    if (n < 0 || (size_t)n >= sizeof(want) || lens[1] != (size_t)n ||
        memcmp(argv[1], want, (size_t)n) != 0) {
        char msg[240];
        if (lens[1] > 20 && memcmp(argv[1], "active_transactions:", 20) == 0) {
            snprintf(msg, sizeof(msg), "ERR only this till's store is served here: SMEMBERS %s",
                     want);
        } else {
            snprintf(msg, sizeof(msg), "ERR SMEMBERS serves only %s here", want);
        }
        pos_localapi_reply_error(r, msg);
        return 0;
    }
    if (!api_online(api)) {
        api_active_offline(api, r, want);
        return 0;
    }
    q = api_req_new(sizeof(*q), api, r);
    if (q == NULL) {
        return -ENOMEM;
    }
    memcpy(q->key, want, (size_t)n + 1);
    const char *cargv[] = {"SMEMBERS", q->key};
    const size_t clens[] = {8, (size_t)n};
    if (pos_link_command_spare(api->opt.link, api_active_reply, q, 2, cargv, clens) != 0) {
        free(q);
        api_active_offline(api, r, want);
        return 0;
    }
    return POS_LOCALAPI_PENDING;
}

/* ---- TERMINALS ------------------------------------------------------------------------ */

/* Replies waiting on one listing in flight at most: a pipelined flood of
 * TERMINALS costs Redis one SMEMBERS and one GET per terminal, not that
 * many times over. */
#define API_TERMINALS_WAITERS 1024u

typedef struct api_term_req {
    pos_api_t *api;
    pos_localapi_reply_t **waiters; /* every reply this listing answers */
    size_t nwait;
    char key[160];
    size_t n;      /* terminals listed */
    size_t left;   /* status reads still out */
    bool failed;   /* a read failed: the last known list is answered instead */
    char **ids;    /* n terminal ids */
    char **status; /* their status values, NULL where none */
} api_term_req_t;

typedef struct api_term_slot {
    api_term_req_t *q;
    size_t i;
} api_term_slot_t;

static void api_term_free(api_term_req_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->ids[i]);
        free(q->status[i]);
    }
    free(q->ids);
    free(q->status);
    free(q->waiters);
    free(q);
}

/* Offline: the last known list, as it was stored. */
static void api_terminals_offline(pos_api_t *api, pos_localapi_reply_t *r, const char *key)
{
    cJSON *arr = api_snapshot_get(api, key);
    const cJSON *list = cJSON_IsArray(arr) ? arr : NULL;
    const cJSON *it;
    long long n = 0;

    cJSON_ArrayForEach(it, list)
    {
        n += cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
             cJSON_IsString(cJSON_GetArrayItem(it, 0));
    }
    pos_localapi_reply_array_begin(r, n);
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *id = cJSON_GetArrayItem(it, 0), *st = cJSON_GetArrayItem(it, 1);
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2 || !cJSON_IsString(id)) {
            continue;
        }
        pos_localapi_reply_array_begin(r, 2);
        pos_localapi_reply_bulk(r, id->valuestring, strlen(id->valuestring));
        if (cJSON_IsString(st)) {
            pos_localapi_reply_bulk(r, st->valuestring, strlen(st->valuestring));
        } else {
            pos_localapi_reply_nil(r);
        }
    }
    cJSON_Delete(arr);
}

static void api_terminals_finish(api_term_req_t *q)
{
    if (q->api->terminals_inflight == q) {
        q->api->terminals_inflight = NULL; /* later requests ask Redis afresh */
    }
    if (q->failed) {
        for (size_t w = 0; w < q->nwait; w++) {
            api_terminals_offline(q->api, q->waiters[w], q->key);
        }
    } else {
        cJSON *arr = cJSON_CreateArray();
        for (size_t w = 0; w < q->nwait; w++) {
            pos_localapi_reply_t *r = q->waiters[w];
            pos_localapi_reply_array_begin(r, (long long)q->n);
            for (size_t i = 0; i < q->n; i++) {
                pos_localapi_reply_array_begin(r, 2);
                pos_localapi_reply_bulk(r, q->ids[i], strlen(q->ids[i]));
                if (q->status[i] != NULL) {
                    pos_localapi_reply_bulk(r, q->status[i], strlen(q->status[i]));
                } else {
                    pos_localapi_reply_nil(r);
                }
            }
        }
        for (size_t i = 0; arr != NULL && i < q->n; i++) {
            cJSON *pair = cJSON_CreateArray();
            if (pair == NULL) {
                break;
            }
            cJSON_AddItemToArray(pair, cJSON_CreateString(q->ids[i]));
            cJSON_AddItemToArray(pair, q->status[i] != NULL ? cJSON_CreateString(q->status[i])
                                                            : cJSON_CreateNull());
            cJSON_AddItemToArray(arr, pair);
        }
        char *text = arr != NULL ? cJSON_PrintUnformatted(arr) : NULL;
        if (text != NULL) {
            api_snapshot_put(q->api, q->key, text);
        }
        free(text);
        cJSON_Delete(arr);
    }
    for (size_t w = 0; w < q->nwait; w++) {
        pos_localapi_reply_done(q->waiters[w]);
    }
    api_term_free(q);
}

static void api_status_reply(void *ctx, const redisReply *rep, int err)
{
    api_term_slot_t *s = ctx;
    api_term_req_t *q = s->q;

    if (err != 0 || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL)) {
        q->failed = true;
    } else if (rep->type == REDIS_REPLY_STRING && memchr(rep->str, '\0', rep->len) == NULL) {
        q->status[s->i] = strndup(rep->str, rep->len);
    }
    free(s);
    if (--q->left == 0) {
        api_terminals_finish(q);
    }
}

static void api_members_reply(void *ctx, const redisReply *rep, int err)
{
    api_term_req_t *q = ctx;
    size_t n = 0;

    if (err != 0 || rep->type != REDIS_REPLY_ARRAY) {
        q->failed = true;
        api_terminals_finish(q);
        return;
    }
    q->ids = calloc(API_TERMINALS_MAX, sizeof(*q->ids));
    q->status = calloc(API_TERMINALS_MAX, sizeof(*q->status));
    if (q->ids == NULL || q->status == NULL) {
        q->failed = true;
        api_terminals_finish(q);
        return;
    }
    for (size_t i = 0; i < rep->elements && n < API_TERMINALS_MAX; i++) {
        const redisReply *m = rep->element[i];
        /* Terminal ids only: nothing that would make an odd key. */
        if (m->type == REDIS_REPLY_STRING && m->len > 0 && m->len <= API_TID_MAX &&
            memchr(m->str, '\0', m->len) == NULL && api_printable(m->str, m->len) &&
            memchr(m->str, ' ', m->len) == NULL) {
            q->ids[n] = strndup(m->str, m->len);
            if (q->ids[n] == NULL) {
                break;
            }
            n++;
        }
    }
    if (rep->elements > API_TERMINALS_MAX) {
        POS_WARN("api", "TERMINALS: %s has %zu members; the first %u are listed", q->key,
                 rep->elements, API_TERMINALS_MAX);
    }
    q->n = n;
    if (n == 0) {
        api_terminals_finish(q);
        return;
    }
    /* One GET per terminal: single-key commands, so a cluster routes them. */
    q->left = n + 1; /* held until every GET is sent */
    for (size_t i = 0; i < n; i++) {
        char skey[API_TID_MAX + 24];
        api_term_slot_t *s = malloc(sizeof(*s));
        if (s == NULL) {
            q->failed = true;
            q->left--;
            continue;
        }
        *s = (api_term_slot_t){q, i};
        snprintf(skey, sizeof(skey), "terminal:%s:status", q->ids[i]);
        const char *cargv[] = {"GET", skey};
        if (pos_link_commandv(q->api->opt.link, api_status_reply, s, 2, cargv) != 0) {
            free(s);
            q->failed = true;
            q->left--;
        }
    }
    if (--q->left == 0) {
        api_terminals_finish(q);
    }
}

int pos_api_cmd_terminals(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens)
{
    pos_api_t *api = owner;
    api_term_req_t *q = api->terminals_inflight;
    char key[160];

    (void)argc;
    (void)argv;
    (void)lens;
    snprintf(key, sizeof(key), "terminals:%s", api->opt.store_id != NULL ? api->opt.store_id : "");
    if (!api_online(api)) {
        api_terminals_offline(api, r, key);
        return 0;
    }
    if (q != NULL) {
        /* A listing is in flight: its answer is this one's too. */
        if (q->nwait >= API_TERMINALS_WAITERS) {
            api_terminals_offline(api, r, key);
            return 0;
        }
        q->waiters[q->nwait++] = r;
        return POS_LOCALAPI_PENDING;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL || (q->waiters = calloc(API_TERMINALS_WAITERS, sizeof(*q->waiters))) == NULL) {
        free(q);
        return -ENOMEM;
    }
    q->api = api;
    q->waiters[q->nwait++] = r;
    memcpy(q->key, key, sizeof(key));
    /* The listing's own GETs follow on the link's room (one listing at
     * a time, at most API_TERMINALS_MAX of them); a new one waits for
     * spare room. */
    const char *cargv[] = {"SMEMBERS", q->key};
    const size_t clens[] = {8, strlen(q->key)};
    if (pos_link_command_spare(api->opt.link, api_members_reply, q, 2, cargv, clens) != 0) {
        api_terminals_offline(api, r, key);
        api_term_free(q);
        return 0;
    }
    api->terminals_inflight = q;
    return POS_LOCALAPI_PENDING;
}

/* ---- CACHE.CLEAR pattern ---------------------------------------------------------------- */

typedef struct api_clear_req {
    api_req_t req;   /* first */
    bool in_handler; /* a cache without a writer answers before the handler returns */
    bool answered;
} api_clear_req_t;

static void api_clear_done(void *arg, int status, size_t count)
{
    api_clear_req_t *q = arg;

    if (status != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "ERR cache not cleared: %s", strerror(-status));
        pos_localapi_reply_error(q->req.r, msg);
    } else {
        q->req.api->shared.cache_cleared += count;
        POS_INFO("api", "CACHE.CLEAR dropped %zu entries", count);
        pos_localapi_reply_int(q->req.r, (long long)count);
    }
    if (q->in_handler) {
        q->answered = true;
        return;
    }
    pos_localapi_reply_done(q->req.r);
    free(q);
}

int pos_api_cmd_cache_clear(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                            const size_t *lens)
{
    pos_api_t *api = owner;
    api_clear_req_t *q;
    int rc;

    (void)argc;
    if (lens[1] == 0 || lens[1] > 256 || memchr(argv[1], '\0', lens[1]) != NULL) {
        pos_localapi_reply_error(r, "ERR CACHE.CLEAR pattern must be 1 to 256 bytes, no NUL");
        return 0;
    }
    if (api->opt.cache == NULL || !api->opt.cache->open) {
        pos_localapi_reply_int(r, 0); /* no local cache: nothing to drop */
        return 0;
    }
    q = api_req_new(sizeof(*q), api, r);
    if (q == NULL) {
        return -ENOMEM;
    }
    q->in_handler = true;
    q->answered = false;
    rc = pos_cachesvc_clear(api->opt.cache, argv[1], lens[1], api_clear_done, q);
    if (rc == 0 && q->answered) {
        free(q);
        return 0;
    }
    if (rc == 0) {
        q->in_handler = false;
        return POS_LOCALAPI_PENDING; /* answered once the last slice is applied */
    }
    free(q);
    if (rc == -EBUSY) {
        pos_localapi_reply_error(r, "BUSY posagent: the cache is busy; every entry was marked "
                                    "stale instead (read through again online)");
        return 0;
    }
    return rc;
}
