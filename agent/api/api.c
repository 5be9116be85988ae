#include "agent/api/api.h"
#include "agent/api/api_kv.h"
#include "agent/api/api_shared.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "agent/msg/messages.h"
#include "platform/clock.h"
#include "platform/log.h"

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
    bool too_large; /* its values came to more than API_READ_MAX_BYTES */
    size_t bytes;   /* of the values held in its slots */
    struct {
        char *value;
        size_t len;
        int status;
    } slot[];
} api_read_t;

/* Values one MGET holds before its reply is written: no more than the
 * local API lets a client have unsent (POS_LOCALAPI_MAX_OUTPUT), so that
 * one command naming the same large key a thousand times cannot make the
 * agent hold a thousand copies. */
#define API_READ_MAX_BYTES POS_LOCALAPI_MAX_OUTPUT

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
    } else if (rd->too_large) {
        char msg[96];
        snprintf(msg, sizeof(msg), "ERR MGET reply over %u bytes: ask for fewer keys",
                 (unsigned)API_READ_MAX_BYTES);
        pos_localapi_reply_error(rd->r, msg);
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
    /* A value, or the message saying why it is not served; EXISTS only
     * counts them, and an MGET stops holding values past its bound. A
     * client gone (cut off for the replies it left unread, say) is sent
     * nothing: no copy. */
    if (!pos_localapi_reply_alive(rd->r)) {
        rd->slot[i].status = -ENOENT;
    } else if (rd->kind == API_READ_MGET && (status == 0 || status == -EMSGSIZE) &&
               (rd->too_large || len > API_READ_MAX_BYTES - rd->bytes)) {
        rd->too_large = true;
    } else if (rd->kind != API_READ_EXISTS && (status == 0 || status == -EMSGSIZE)) {
        rd->bytes += len;
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

/* A GET of a session the till did not write: the cache, read-through. */
static int api_get_cached(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len)
{
    const char *argv[] = {"GET", key};
    const size_t lens[] = {3, len};
    return api_read(api, r, API_READ_GET, 2, argv, lens);
}

static int api_get(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                   const size_t *lens)
{
    if (pos_api_kv_handles(argv[1], lens[1])) {
        return pos_api_kv_get(owner, r, argv[1], lens[1], api_get_cached);
    }
    return api_read(owner, r, API_READ_GET, argc, argv, lens);
}

/* MGET and EXISTS read the cached families only: the till's own writes
 * (session:*, temp:*) are read with GET, which sees them; a wrong answer
 * would be worse than this error. */
static bool api_multi_refused(pos_localapi_reply_t *r, const char *cmd, int argc, const char **argv,
                              const size_t *lens)
{
    for (int i = 1; i < argc; i++) {
        if (pos_api_kv_handles(argv[i], lens[i])) {
            char msg[96];
            snprintf(msg, sizeof(msg), "ERR %s does not read session: or temp: keys here: use GET",
                     cmd);
            pos_localapi_reply_error(r, msg);
            return true;
        }
    }
    return false;
}

static int api_mget(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    if (api_multi_refused(r, "MGET", argc, argv, lens)) {
        return 0;
    }
    return api_read(owner, r, API_READ_MGET, argc, argv, lens);
}

static int api_exists(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                      const size_t *lens)
{
    if (api_multi_refused(r, "EXISTS", argc, argv, lens)) {
        return 0;
    }
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
        rc = pos_cache_get(&svc->cache, key, len, pos_clock_wall_ms(), buf, info->meta.value_len,
                           info);
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
    if (pos_api_kv_handles(argv[1], lens[1]) &&
        pos_api_kv_ttl(owner, r, argv[1], lens[1], false) == 0) {
        return 0;
    }
    return api_entry_reply(owner, r, argv[1], lens[1], api_ttl_s);
}

static long long api_pttl_ms(const pos_api_t *api, const pos_cache_info_t *info)
{
    uint64_t ttl = pos_cachesvc_ttl_ms(api->opt.cache, info->meta.family);
    return info->fresh && ttl > info->age_ms ? (long long)(ttl - info->age_ms) : 0;
}

/* PTTL: as TTL, in milliseconds. */
static int api_pttl(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                    const size_t *lens)
{
    (void)argc;
    if (pos_api_kv_handles(argv[1], lens[1]) &&
        pos_api_kv_ttl(owner, r, argv[1], lens[1], true) == 0) {
        return 0;
    }
    return api_entry_reply(owner, r, argv[1], lens[1], api_pttl_ms);
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

/* ---- PUBLISH (CONTRACT.md "Messages from the POS application") ---------- */

#define API_PUB_MEMBERS_MAX 256 /* top-level members of a published message */

/* Types the POS application may not publish: the cloud's and the agent's
 * own (payment, system and status messages), whatever the channel. */
static bool api_pub_type_reserved(const char *type)
{
    static const char prefixes[][9] = {"PAYMENT_", "RECEIPT_"};
    static const char names[][17] = {"DISPLAY_MESSAGE", "SYSTEM_ALERT", "CACHE_INVALIDATE",
                                     "TERMINAL_STATUS"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(type, prefixes[i], strlen(prefixes[i])) == 0) {
            return true;
        }
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(type, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A type as the contract spells them: A-Z, 0-9 and '_', 1..64 bytes. */
static bool api_pub_type_ok(const char *type)
{
    size_t n = strlen(type);

    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = type[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) {
            return false;
        }
    }
    return true;
}

/* Whether the object has a member name twice (receivers refuse that). */
static bool api_pub_duplicates(const cJSON *root, size_t *members)
{
    size_t n = 0;

    for (const cJSON *a = root->child; a != NULL; a = a->next, n++) {
        for (const cJSON *b = a->next; b != NULL; b = b->next) {
            if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0) {
                return true;
            }
        }
        if (n > API_PUB_MEMBERS_MAX) {
            break;
        }
    }
    *members = n;
    return false;
}

/* Replaces every member "name" with the agent's value. */
static bool api_pub_stamp(cJSON *root, const char *name, cJSON *value)
{
    if (value == NULL) {
        return false;
    }
    while (cJSON_GetObjectItemCaseSensitive(root, name) != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, name);
    }
    return cJSON_AddItemToObject(root, name, value) != 0;
}

/*
 * Checks and stamps what the application publishes: the channel must be
 * its own store's transaction or inventory channel, the message a JSON
 * object with a type the application may publish there; "origin",
 * "terminalId", "storeId" and "ts" are the agent's (overwriting the
 * application's), "sig" and "outboxId" are dropped (the agent adds its
 * own when it sends). Returns the stamped text (malloc'd) or NULL with
 * the error for the client in err.
 */
static char *api_pub_check(const pos_api_t *api, const char *channel, size_t chlen,
                           const char *json, size_t len, char *err, size_t errlen)
{
    const char *sid = api->opt.store_id != NULL ? api->opt.store_id : "";
    const char *tid = api->opt.terminal_id != NULL ? api->opt.terminal_id : "";
    char own_tx[96], own_inv[96], why[128];
    bool inventory;
    cJSON *root, *type;
    char *out = NULL;
    size_t members = 0;

    snprintf(own_tx, sizeof(own_tx), "transaction:%s", sid);
    snprintf(own_inv, sizeof(own_inv), "inventory:%s", sid);
    if (chlen == strlen(own_tx) && memcmp(channel, own_tx, chlen) == 0) {
        inventory = false;
    } else if (chlen == strlen(own_inv) && memcmp(channel, own_inv, chlen) == 0) {
        inventory = true;
    } else {
        bool cloud = (chlen >= 8 && memcmp(channel, "payment:", 8) == 0) ||
                     (chlen >= 7 && memcmp(channel, "system:", 7) == 0);
        snprintf(err, errlen,
                 "ERR PUBLISH refused: %sthe local API publishes only on this till's store "
                 "channels %s and %s (CONTRACT.md \"Messages from the POS application\")",
                 cloud ? "payment:* and system:* are never published from the till; " : "", own_tx,
                 own_inv);
        return NULL;
    }
    if (len > POS_MSG_MAX_BYTES) {
        snprintf(err, errlen, "ERR PUBLISH refused: message over %u bytes", POS_MSG_MAX_BYTES);
        return NULL;
    }
    root = cJSON_ParseWithLength(json, len);
    if (root == NULL || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "ERR PUBLISH refused: the message must be a JSON object");
        goto done;
    }
    if (api_pub_duplicates(root, &members) || members > API_PUB_MEMBERS_MAX) {
        snprintf(err, errlen, "ERR PUBLISH refused: a member named twice, or over %d members",
                 API_PUB_MEMBERS_MAX);
        goto done;
    }
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (!cJSON_IsString(type) || type->valuestring == NULL || !api_pub_type_ok(type->valuestring)) {
        snprintf(err, errlen,
                 "ERR PUBLISH refused: the message needs a string \"type\" of "
                 "A-Z, 0-9 and _ (1..64)");
        goto done;
    }
    if (api_pub_type_reserved(type->valuestring) ||
        (inventory && strcmp(type->valuestring, "INVENTORY_UPDATED") != 0 &&
         strcmp(type->valuestring, "LOW_STOCK_ALERT") != 0) ||
        (!inventory && (strcmp(type->valuestring, "INVENTORY_UPDATED") == 0 ||
                        strcmp(type->valuestring, "LOW_STOCK_ALERT") == 0))) {
        snprintf(err, errlen,
                 "ERR PUBLISH refused: type %s is not the POS application's to publish on %.*s "
                 "(inventory: INVENTORY_UPDATED, LOW_STOCK_ALERT; transaction: its own events, "
                 "never payment, receipt, display, system or status messages)",
                 type->valuestring, (int)chlen, channel);
        goto done;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "sig");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "outboxId");
    if (!api_pub_stamp(root, "origin", cJSON_CreateString("pos-app")) ||
        !api_pub_stamp(root, "terminalId", cJSON_CreateString(tid)) ||
        !api_pub_stamp(root, "storeId", cJSON_CreateString(sid)) ||
        !api_pub_stamp(root, "ts", cJSON_CreateNumber((double)pos_clock_wall_ms()))) {
        snprintf(err, errlen, "ERR out of memory");
        goto done;
    }
    out = cJSON_PrintUnformatted(root);
    if (out == NULL) {
        snprintf(err, errlen, "ERR out of memory");
        goto done;
    }
    if (inventory) {
        /* What the other tills of the store will make of it: refused here
         * rather than dropped by each of them. */
        pos_msg_limits_t lim;
        pos_msg_t msg;
        memset(&lim, 0, sizeof(lim));
        lim.max_len = POS_MSG_MAX_BYTES;
        lim.max_amount_minor = 1;
        lim.store_id = sid;
        if (pos_msg_decode(POS_MSG_CH_INVENTORY, out, strlen(out), &lim, &msg, why, sizeof(why)) !=
            0) {
            snprintf(err, errlen, "ERR PUBLISH refused: %s", why);
            free(out);
            out = NULL;
        }
    } else if (strlen(out) > POS_MSG_MAX_BYTES) {
        snprintf(err, errlen, "ERR PUBLISH refused: message over %u bytes once stamped",
                 POS_MSG_MAX_BYTES);
        free(out);
        out = NULL;
    }
done:
    cJSON_Delete(root);
    return out;
}

static int api_publish(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens)
{
    pos_api_t *api = owner;
    api_write_t *w;
    char err[512];
    char *json;
    int rc;

    (void)argc;
    if (lens[1] == 0 || lens[1] > 256 || memchr(argv[1], '\0', lens[1]) != NULL) {
        pos_localapi_reply_error(r, "ERR bad channel name");
        return 0;
    }
    json = api_pub_check(api, argv[1], lens[1], argv[2], lens[2], err, sizeof(err));
    if (json == NULL) {
        pos_localapi_reply_error(r, err);
        return 0;
    }
    /* Bounded like the writes: a flood of publishes must not make the
     * outbox drop what was queued before it. */
    if (!pos_api_kv_room(api, r, 1, lens[1] + strlen(json))) {
        free(json);
        return 0;
    }
    if ((w = api_write_new(api, r)) == NULL) {
        free(json);
        return -ENOMEM;
    }
    /* Signed when a key is set (CONTRACT.md "Signed messages": what the
     * agent publishes is signed): the signature vouches that this till's
     * application said it ("origin":"pos-app"), not that the cloud did.
     * Redis answers PUBLISH with a receiver count; the agent cannot know it
     * and answers with the message's place in the outbox instead. */
    rc = api_write_queued(w, pos_delivery_publish_ex(api->opt.delivery, argv[1], json, strlen(json),
                                                     false, true, api_write_done, w, NULL));
    free(json);
    return rc;
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
    {"GET", api_get, 2, 2},
    {"MGET", api_mget, 2, -1},
    {"EXISTS", api_exists, 2, -1},
    {"TTL", api_ttl, 2, 2},
    {"AGE", api_age, 2, 2},
    {"PUBLISH", api_publish, 3, 3},
    {"INCR", pos_api_kv_cmd_incr, 2, 2},
    {"INCRBY", pos_api_kv_cmd_incr, 3, 3},
    {"SET", pos_api_kv_cmd_set, 3, 5},
    {"SETEX", pos_api_kv_cmd_setex, 4, 4},
    {"EXPIRE", pos_api_kv_cmd_expire, 3, 3},
    {"PEXPIRE", pos_api_kv_cmd_pexpire, 3, 3},
    {"DEL", pos_api_kv_cmd_del, 2, -1},
    {"PTTL", api_pttl, 2, 2},
    {"INFO", api_info, 1, 2},
    {"RATELIMIT", pos_api_cmd_ratelimit, 4, 4},
    {"SMEMBERS", pos_api_cmd_smembers, 2, 2},
    {"TERMINALS", pos_api_cmd_terminals, 1, 1},
    {"CACHE.CLEAR", pos_api_cmd_cache_clear, 2, 2},
};

int pos_api_start(pos_api_t *api, const pos_api_options_t *opt)
{
    pos_localapi_options_t o;
    int rc;

    api->opt = *opt;
    api->running = false;
    rc = pos_api_shared_init(api);
    if (rc != 0) {
        return rc;
    }
    pos_api_kv_init(api);
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
        pos_api_kv_free(api);
        pos_api_shared_free(api);
        return rc;
    }
    api->running = true;
    POS_INFO("api", "local API on %s", opt->socket_path);
    return 0;
}

static void api_server_closed(void *arg)
{
    pos_api_t *api = arg;

    pos_api_kv_free(api);
    pos_api_shared_free(api);
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
