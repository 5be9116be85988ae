#include "agent/api/api.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform/clock.h"
#include "platform/log.h"

#define API_COUNTER_TTL_S 86400u

/* ---- reads through the cache --------------------------------------------- */

/* One GET, MGET or EXISTS in progress: slots filled as the cache answers,
 * the reply written once all are in. */
typedef enum api_read_kind {
    API_READ_GET,    /* one bulk value, nil or an error */
    API_READ_MGET,   /* an array of values, nil where absent */
    API_READ_EXISTS, /* how many of the keys exist */
} api_read_kind_t;

typedef struct api_read {
    pos_localapi_reply_t *r;
    api_read_kind_t kind;
    size_t n;
    size_t left;
    bool in_handler; /* still inside the handler: answer synchronously */
    bool answered;
    struct {
        char *value;
        size_t len;
        int status;
    } slot[];
} api_read_t;

typedef struct api_slot_ctx {
    api_read_t *rd;
    size_t i;
} api_slot_ctx_t;

static void api_read_reply(api_read_t *rd)
{
    if (rd->kind == API_READ_EXISTS) {
        long long found = 0;
        for (size_t i = 0; i < rd->n; i++) {
            /* A value too large to serve exists all the same. */
            found += rd->slot[i].status == 0 || rd->slot[i].status == -EMSGSIZE;
        }
        pos_localapi_reply_int(rd->r, found);
    } else {
        if (rd->kind == API_READ_MGET) {
            pos_localapi_reply_array_begin(rd->r, (long long)rd->n);
        }
        for (size_t i = 0; i < rd->n; i++) {
            if (rd->slot[i].status == 0) {
                pos_localapi_reply_bulk(rd->r, rd->slot[i].value, rd->slot[i].len);
            } else if (rd->slot[i].status == -EMSGSIZE) {
                /* Said plainly, in MGET's array too: nil would claim the
                 * key does not exist. */
                char msg[600];
                snprintf(msg, sizeof(msg), "ERR %s", rd->slot[i].value);
                pos_localapi_reply_error(rd->r, msg);
            } else if (rd->slot[i].status == -ENOENT || rd->kind == API_READ_MGET) {
                pos_localapi_reply_nil(rd->r);
            } else {
                pos_localapi_reply_error(rd->r, "ERR cache unavailable and Redis unreachable");
            }
        }
    }
    rd->answered = true;
}

static void api_read_free(api_read_t *rd)
{
    for (size_t i = 0; i < rd->n; i++) {
        free(rd->slot[i].value);
    }
    free(rd);
}

static void api_slot_done(void *ctx, int status, const char *value, size_t len, uint64_t age_ms,
                          bool fresh)
{
    api_slot_ctx_t *sc = ctx;
    api_read_t *rd = sc->rd;
    size_t i = sc->i;

    (void)age_ms;
    (void)fresh;
    free(sc);
    rd->slot[i].status = status;
    /* A value, or the message saying why it is not served. */
    if (status == 0 || status == -EMSGSIZE) {
        rd->slot[i].value = malloc(len + 1);
        if (rd->slot[i].value == NULL) {
            rd->slot[i].status = -ENOMEM;
        } else {
            memcpy(rd->slot[i].value, value, len);
            rd->slot[i].value[len] = '\0';
            rd->slot[i].len = len;
        }
    }
    if (--rd->left > 0) {
        return;
    }
    api_read_reply(rd);
    if (!rd->in_handler) {
        pos_localapi_reply_done(rd->r);
        api_read_free(rd);
    }
}

static int api_read(pos_api_t *api, pos_localapi_reply_t *r, api_read_kind_t kind, int argc,
                    const char **argv, const size_t *lens)
{
    size_t n = (size_t)argc - 1;
    api_read_t *rd;

    for (size_t i = 1; i <= n; i++) {
        if (!pos_cachesvc_cacheable(argv[i], lens[i])) {
            pos_localapi_reply_error(r, "ERR only product:, inventory:, user: and session: keys "
                                        "are served here");
            return 0;
        }
    }
    rd = calloc(1, sizeof(*rd) + n * sizeof(rd->slot[0]));
    if (rd == NULL) {
        return -ENOMEM;
    }
    rd->r = r;
    rd->kind = kind;
    rd->n = n;
    rd->left = n;
    rd->in_handler = true;
    for (size_t i = 0; i < n; i++) {
        api_slot_ctx_t *sc = malloc(sizeof(*sc));
        if (sc == NULL) {
            rd->slot[i].status = -ENOMEM;
            rd->left--;
            continue;
        }
        sc->rd = rd;
        sc->i = i;
        pos_cachesvc_read(api->opt.cache, argv[i + 1], lens[i + 1], api_slot_done, sc);
    }
    rd->in_handler = false;
    if (rd->answered) {
        api_read_free(rd);
        return 0;
    }
    if (rd->left == 0) { /* only allocation failures */
        api_read_reply(rd);
        api_read_free(rd);
        return 0;
    }
    return POS_LOCALAPI_PENDING;
}

static int api_get(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    return api_read(owner, r, API_READ_GET, argc, argv, lens);
}

static int api_mget(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    return api_read(owner, r, API_READ_MGET, argc, argv, lens);
}

static int api_exists(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                      const size_t *lens)
{
    return api_read(owner, r, API_READ_EXISTS, argc, argv, lens);
}

/* The local entry's header (its age and freshness), without Redis.
 * Returns 0, -ENOENT when there is none, or a negative errno. */
static int api_entry_info(pos_api_t *api, const char *key, size_t len, pos_cache_info_t *info)
{
    pos_cachesvc_t *svc = api->opt.cache;
    char one;
    int rc;

    if (!pos_cachesvc_cacheable(key, len) || !svc->open) {
        return -ENOENT;
    }
    memset(info, 0, sizeof(*info));
    rc = pos_cache_get(&svc->cache, key, len, pos_clock_wall_ms(), &one, 0, info);
    if (rc == -ENOBUFS) {
        /* Only the length came back: read the entry for its age. */
        char *buf = malloc(info->meta.value_len ? info->meta.value_len : 1);
        if (buf == NULL) {
            return -ENOMEM;
        }
        rc = pos_cache_get(&svc->cache, key, len, pos_clock_wall_ms(), buf,
                           info->meta.value_len, info);
        free(buf);
    }
    return rc;
}

/*
 * Answers with what value() makes of key's local entry, or -2 when there
 * is none (Redis's answer for a missing key). Returns 0 or a negative errno.
 */
static int api_entry_reply(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len,
                           long long (*value)(const pos_api_t *api, const pos_cache_info_t *info))
{
    pos_cache_info_t info;
    int rc = api_entry_info(api, key, len, &info);

    if (rc == -ENOENT) {
        pos_localapi_reply_int(r, -2);
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    pos_localapi_reply_int(r, value(api, &info));
    return 0;
}

/* Seconds the local copy stays fresh (0: stale or expired, still served
 * while offline). */
static long long api_ttl_s(const pos_api_t *api, const pos_cache_info_t *info)
{
    uint64_t ttl = pos_cachesvc_ttl_ms(api->opt.cache, info->meta.family);
    return info->fresh && ttl > info->age_ms ? (long long)((ttl - info->age_ms) / 1000u) : 0;
}

static int api_ttl(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    (void)argc;
    return api_entry_reply(owner, r, argv[1], lens[1], api_ttl_s);
}

static long long api_age_ms(const pos_api_t *api, const pos_cache_info_t *info)
{
    (void)api;
    return info->age_ms > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)info->age_ms;
}

/* AGE key: milliseconds since Redis last confirmed the local copy (what an
 * offline read is worth), or -2 when there is none. Not a Redis command:
 * the agent's own, for the POS application and the CLI. */
static int api_age(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    (void)argc;
    return api_entry_reply(owner, r, argv[1], lens[1], api_age_ms);
}

/* ---- writes through the outbox --------------------------------------------- */

static long long api_queue_position(const pos_api_t *api)
{
    pos_outbox_stats_t st;

    if (api->opt.delivery->ob == NULL) {
        return 0;
    }
    pos_outbox_stats(api->opt.delivery->ob, &st);
    return (long long)st.entries;
}

/* A write handed to the delivery: answered once it is durable. */
typedef struct api_write {
    pos_api_t *api;
    pos_localapi_reply_t *r;
} api_write_t;

/*
 * The write is durable (or refused): answer with its place in the outbox.
 * Without a store the write was sent at once or counted as lost, which the
 * client is not told either: only an outbox that refused it is an error.
 */
static void api_write_done(void *ctx, int status, uint64_t id)
{
    api_write_t *w = ctx;
    pos_api_t *api = w->api;

    (void)id;
    if (status != 0 && api->opt.delivery->ob != NULL) {
        char msg[128];
        snprintf(msg, sizeof(msg), "ERR not queued: %s", strerror(-status));
        pos_localapi_reply_error(w->r, msg);
    } else {
        pos_localapi_reply_int(w->r, api_queue_position(api));
    }
    pos_localapi_reply_done(w->r);
    free(w);
}

/* Starts a write: w for the callback, or an error answered now. */
static api_write_t *api_write_new(pos_api_t *api, pos_localapi_reply_t *r)
{
    api_write_t *w = malloc(sizeof(*w));

    if (w != NULL) {
        *w = (api_write_t){api, r};
    }
    return w;
}

/* The result of handing w to the delivery (rc): pending until durable. */
static int api_write_queued(api_write_t *w, int rc)
{
    if (rc != 0) {
        free(w);
        return rc;
    }
    return POS_LOCALAPI_PENDING;
}

static int api_publish(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens)
{
    pos_api_t *api = owner;
    api_write_t *w;

    (void)argc;
    if (lens[1] == 0 || lens[1] > 256 || memchr(argv[1], '\0', lens[1]) != NULL) {
        pos_localapi_reply_error(r, "ERR bad channel name");
        return 0;
    }
    if ((w = api_write_new(api, r)) == NULL) {
        return -ENOMEM;
    }
    /* Not signed: the agent does not vouch for what the application says.
     * Redis answers PUBLISH with a receiver count; the agent cannot know it
     * and answers with the message's place in the outbox instead. */
    return api_write_queued(w, pos_delivery_publish_ex(api->opt.delivery, argv[1], argv[2],
                                                       lens[2], false, false, api_write_done, w,
                                                       NULL));
}

static int api_incr(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    pos_api_t *api = owner;
    long long by = 1;
    char *end;
    api_write_t *w;

    if (lens[1] < 9 || strncmp(argv[1], "counter:", 8) != 0 ||
        memchr(argv[1], '\0', lens[1]) != NULL) {
        pos_localapi_reply_error(r, "ERR only counter:* keys can be incremented here");
        return 0;
    }
    if (argc == 3) {
        errno = 0;
        by = strtoll(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0') {
            pos_localapi_reply_error(r, "ERR value is not an integer or out of range");
            return 0;
        }
    }
    if ((w = api_write_new(api, r)) == NULL) {
        return -ENOMEM;
    }
    /* The new value is Redis's to know: answer the queue position. */
    return api_write_queued(
        w, pos_delivery_incrby(api->opt.delivery, argv[1], by, API_COUNTER_TTL_S, api_write_done, w));
}

/* ---- INFO ----------------------------------------------------------------------- */

static int api_info(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    pos_api_t *api = owner;
    size_t n;

    (void)lens;
    n = api->opt.info(api->opt.info_ctx, argc > 1 ? argv[1] : "all", api->info_buf,
                      sizeof(api->info_buf));
    pos_localapi_reply_bulk(r, api->info_buf, n);
    return 0;
}

static const pos_localapi_command_t api_commands[] = {
    {"GET", api_get, 2, 2},         {"MGET", api_mget, 2, -1},   {"EXISTS", api_exists, 2, -1},
    {"TTL", api_ttl, 2, 2},         {"AGE", api_age, 2, 2},      {"PUBLISH", api_publish, 3, 3},
    {"INCR", api_incr, 2, 2},       {"INCRBY", api_incr, 3, 3},  {"INFO", api_info, 1, 2},
};

int pos_api_start(pos_api_t *api, const pos_api_options_t *opt)
{
    pos_localapi_options_t o;
    int rc;

    api->opt = *opt;
    api->running = false;
    memset(&o, 0, sizeof(o));
    o.path = opt->socket_path;
    o.group = opt->socket_group;
    o.max_clients = opt->max_clients;
    o.admit = opt->admit;
    o.password = opt->password;
    o.commands = api_commands;
    o.ncommands = sizeof(api_commands) / sizeof(api_commands[0]);
    o.owner = api;
    rc = pos_localapi_start(&api->server, opt->loop, &o);
    if (rc != 0) {
        POS_ERR("api", "local API not started on %s: %s", opt->socket_path, strerror(-rc));
        return rc;
    }
    api->running = true;
    POS_INFO("api", "local API on %s", opt->socket_path);
    return 0;
}

static void api_server_closed(void *arg)
{
    pos_api_t *api = arg;

    if (api->closed_cb != NULL) {
        api->closed_cb(api->closed_arg);
    }
}

void pos_api_close(pos_api_t *api, void (*done)(void *arg), void *arg)
{
    api->closed_cb = done;
    api->closed_arg = arg;
    if (!api->running) {
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    api->running = false;
    pos_localapi_close(&api->server, api_server_closed, api);
}

void pos_api_stats(const pos_api_t *api, pos_localapi_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    if (api->running) {
        pos_localapi_get_stats(&api->server, st);
    }
}
