#include "agent/sync/delivery.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/clock.h"
#include "platform/hash.h"
#include "platform/log.h"
#include "platform/uverr.h"

typedef struct delivery_ctx {
    pos_delivery_t *d;
    uint64_t id;
    uint64_t epoch;
    bool last; /* the reply that completes the entry (INCRBY sends two) */
    /* Bookkeeping (pos_delivery_key_t): DELIVERY_NOTE_INCR on the INCRBY's
     * reply, DELIVERY_NOTE_KEEP on the EXPIRE's after it (the counter's
     * value is kept, then the entry deleted), DELIVERY_NOTE_WRITE on a
     * write-through's last one; key malloc'd. */
    int note;
    long long by;
    char *key;
    /* INCRBY's: the EXPIRE's context, told when the INCRBY is refused
     * (refused: DELIVERY_REFUSED_* on the EXPIRE's, whose reply completes
     * the entry). */
    struct delivery_ctx *then;
    int refused;
    uint32_t bytes; /* last: the entry's share of the window (d->inflight_bytes) */
} delivery_ctx_t;

enum { DELIVERY_NOTE_NONE = 0, DELIVERY_NOTE_INCR, DELIVERY_NOTE_KEEP, DELIVERY_NOTE_WRITE };

/* What became of the INCRBY before an EXPIRE (delivery_ctx_t.refused). */
enum {
    DELIVERY_APPLIED = 0,
    DELIVERY_REFUSED_NOW,     /* for a while (OOM, LOADING, READONLY, ...): sent again */
    DELIVERY_REFUSED_FOR_GOOD /* the key's type is another, it is no integer, an overflow */
};

/* An answered INCRBY entry whose deletion waits for its counter's value to
 * be kept (pos_delivery_t.on_confirmed); it is not sent again meanwhile. */
typedef struct pos_delivery_keeping {
    struct pos_delivery_keeping *next;
    pos_delivery_t *d;
    uint64_t id;
} delivery_keeping_t;

/* A held message the outbox could not take: its copy, until released. */
typedef struct pos_delivery_unkept {
    struct pos_delivery_unkept *next;
    uint64_t id;
    bool sign;
    size_t len;
    char *channel;
    char json[];
} delivery_unkept_t;

static int delivery_drop(pos_delivery_t *d, uint64_t id, const char *why);
static int delivery_direct(pos_delivery_t *d, const char *channel, const char *json, size_t len,
                           bool sign);

/* ---- per-key bookkeeping --------------------------------------------------- */

static size_t key_hash(const char *key, size_t len)
{
    return (size_t)(pos_fnv1a64(key, len) % POS_DELIVERY_KEYS);
}

static pos_delivery_key_t *key_find(const pos_delivery_t *d, const char *key, size_t len,
                                    size_t *bucket)
{
    size_t b = key_hash(key, len);
    if (bucket != NULL) {
        *bucket = b;
    }
    for (pos_delivery_key_t *k = d->bykey[b]; k != NULL; k = k->next) {
        if (k->len == len && memcmp(k->key, key, len) == 0) {
            return k;
        }
    }
    return NULL;
}

/* The key's bookkeeping, created when missing (NULL: out of memory). */
static pos_delivery_key_t *key_get(pos_delivery_t *d, const char *key, size_t len)
{
    size_t b;
    pos_delivery_key_t *k = key_find(d, key, len, &b);
    if (k != NULL) {
        return k;
    }
    k = calloc(1, sizeof(*k) + len + 1);
    if (k != NULL) {
        memcpy(k->key, key, len);
        k->len = len;
        k->next = d->bykey[b];
        d->bykey[b] = k;
    }
    return k;
}

/* The entries the outbox held at start are of no more use once the key
 * has a confirmed value. */
static void key_restored_free(pos_delivery_key_t *k)
{
    free(k->restored);
    k->restored = NULL;
    k->nrestored = 0;
    k->restored_cap = 0;
}

/* Forgets a session or temp key with nothing pending (counters stay: their
 * confirmed value is what the till knows). */
static void key_settle(pos_delivery_t *d, pos_delivery_key_t *k)
{
    if (k->pending_writes != 0 || k->pending_sum != 0 || k->has_confirmed || k->nrestored != 0) {
        return;
    }
    for (pos_delivery_key_t **pp = &d->bykey[key_hash(k->key, k->len)]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            free(k);
            return;
        }
    }
}

static void keys_free(pos_delivery_t *d)
{
    for (size_t b = 0; b < POS_DELIVERY_KEYS; b++) {
        while (d->bykey[b] != NULL) {
            pos_delivery_key_t *k = d->bykey[b];
            d->bykey[b] = k->next;
            key_restored_free(k);
            free(k);
        }
    }
}

const pos_delivery_key_t *pos_delivery_key(const pos_delivery_t *d, const char *key, size_t len)
{
    return key_find(d, key, len, NULL);
}

void pos_delivery_confirm(pos_delivery_t *d, const char *key, size_t len, long long value,
                          uint64_t upto)
{
    pos_delivery_key_t *k = key_get(d, key, len);
    if (k == NULL) {
        return;
    }
    k->confirmed = value;
    k->has_confirmed = true;
    /* The value includes these already: not pending on top of it (sent
     * again, their replies do not count: see key_note_reply()). */
    for (size_t i = 0; i < k->nrestored; i++) {
        if (k->restored[i].id > k->incr_done_id && k->restored[i].id <= upto) {
            k->pending_sum = pos_delivery_unsum(k->pending_sum, k->restored[i].by);
        }
    }
    if (upto > k->incr_done_id) {
        k->incr_done_id = upto;
    }
    key_restored_free(k);
}

/* An INCRBY entry's amount into *by. Returns false when it has none. */
static bool entry_incr_by(const pos_outbox_entry_t *e, long long *by)
{
    char text[64];

    snprintf(text, sizeof(text), "%.*s", (int)(e->payload_len < 63 ? e->payload_len : 63),
             (const char *)e->payload);
    return sscanf(text, "%lld", by) == 1;
}

/* What an entry adds to its key's bookkeeping (sign: +1 queued, -1 undone). */
static void key_note_entry(pos_delivery_t *d, const pos_outbox_entry_t *e, int sign)
{
    pos_delivery_key_t *k;
    long long by = 0;

    if (e->kind == POS_OUTBOX_INCRBY) {
        if (entry_incr_by(e, &by) && (k = key_get(d, e->channel, e->channel_len))) {
            k->pending_sum = sign > 0 ? pos_delivery_sum(k->pending_sum, by)
                                      : pos_delivery_unsum(k->pending_sum, by);
            key_settle(d, k);
        }
    } else if (e->kind == POS_OUTBOX_OTHER && e->payload_len > 1 &&
               ((const char *)e->payload)[0] == 'K' &&
               (k = key_get(d, e->channel, e->channel_len)) != NULL) {
        if (sign > 0) {
            k->pending_writes++;
        } else if (k->pending_writes > 0) {
            k->pending_writes--;
        }
        key_settle(d, k);
    }
}

/* An INCRBY entry the outbox held at start: pending, and remembered for
 * the confirmed value kept on the local store (pos_delivery_confirm()). */
static int key_restore(pos_delivery_t *d, const pos_outbox_entry_t *e)
{
    pos_delivery_key_t *k;
    long long by = 0;

    if (!entry_incr_by(e, &by)) {
        return 0; /* sent as it is: dropped as a bad increment */
    }
    if ((k = key_get(d, e->channel, e->channel_len)) == NULL) {
        return -ENOMEM;
    }
    if (k->nrestored == k->restored_cap) {
        size_t cap = k->restored_cap != 0 ? 2 * k->restored_cap : 4;
        pos_delivery_incr_t *r = realloc(k->restored, cap * sizeof(*r));
        if (r == NULL) {
            return -ENOMEM;
        }
        k->restored = r;
        k->restored_cap = cap;
    }
    k->restored[k->nrestored++] = (pos_delivery_incr_t){e->id, by};
    k->pending_sum = pos_delivery_sum(k->pending_sum, by);
    return 0;
}

int pos_delivery_rebuild(pos_delivery_t *d)
{
    uint64_t from = 1;
    size_t total = 0;
    int rc = 0;

    if (d->ob == NULL) {
        return 0;
    }
    for (;;) {
        pos_outbox_batch_t batch;
        int n = pos_outbox_peek_from(d->ob, from, 512, &batch);
        if (n < 0) {
            return n;
        }
        for (int i = 0; i < n && rc == 0; i++) {
            if (batch.entries[i].kind == POS_OUTBOX_INCRBY) {
                rc = key_restore(d, &batch.entries[i]);
            } else {
                key_note_entry(d, &batch.entries[i], +1);
            }
            from = batch.entries[i].id + 1;
        }
        total += (size_t)n;
        pos_outbox_batch_free(&batch);
        if (rc != 0) {
            return rc;
        }
        if (n < 512) {
            break;
        }
    }
    POS_DEBUG("outbox", "per-key bookkeeping rebuilt from %zu entries", total);
    return 0;
}

/* A reply that counts for the key's bookkeeping. */
static void key_note_reply(pos_delivery_t *d, const delivery_ctx_t *c, const redisReply *r)
{
    pos_delivery_key_t *k = key_find(d, c->key, strlen(c->key), NULL);

    if (k == NULL) {
        return;
    }
    if (c->note == DELIVERY_NOTE_INCR && r->type == REDIS_REPLY_INTEGER) {
        k->confirmed = r->integer;
        k->has_confirmed = true;
        if (c->id > k->incr_done_id) { /* a redelivery is not subtracted twice */
            k->pending_sum = pos_delivery_unsum(k->pending_sum, c->by);
            k->incr_done_id = c->id;
        }
        /* Redis's word from now on: what the local store kept is not read. */
        key_restored_free(k);
    } else if (c->note == DELIVERY_NOTE_WRITE && c->id > k->write_done_id) {
        k->write_done_id = c->id;
        if (k->pending_writes > 0) {
            k->pending_writes--;
        }
        key_settle(d, k);
    }
}

/*
 * An INCRBY Redis refused for good: the key holds no integer, or the sum
 * would overflow. Sending it again can never apply it, so it leaves the
 * key's pending sum (a GET no longer counts it) and its entry is dropped.
 */
static void key_note_refused(pos_delivery_t *d, const delivery_ctx_t *c)
{
    pos_delivery_key_t *k = key_find(d, c->key, strlen(c->key), NULL);

    if (k != NULL && c->id > k->incr_done_id) {
        k->pending_sum = pos_delivery_unsum(k->pending_sum, c->by);
        k->incr_done_id = c->id;
        key_restored_free(k);
    }
}

static void delivery_idle_cb(uv_idle_t *h)
{
    pos_delivery_t *d = h->data;

    uv_idle_stop(h);
    pos_delivery_pump(d);
}

int pos_delivery_init(pos_delivery_t *d, uv_loop_t *loop, pos_link_t *link, pos_outbox_t *ob,
                      const pos_sign_keys_t *keys)
{
    memset(d, 0, sizeof(*d));
    d->link = link;
    d->ob = ob;
    d->keys = keys;
    int rc = uv_idle_init(loop, &d->pump_idle);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    d->pump_idle.data = d;
    return 0;
}

/* Sends what may go once this loop turn's replies and appends are in:
 * one outbox read for a burst of them, not one each. */
static void delivery_pump_soon(pos_delivery_t *d)
{
    if (!d->closing && !uv_is_active((uv_handle_t *)&d->pump_idle)) {
        uv_idle_start(&d->pump_idle, delivery_idle_cb);
    }
}

/* Sends (send) or drops every held message the outbox could not take; the
 * one with discard_id is dropped either way. */
static void unkept_flush(pos_delivery_t *d, bool send, uint64_t discard_id)
{
    while (d->unkept != NULL) {
        delivery_unkept_t *u = d->unkept;
        d->unkept = u->next;
        if (send && u->id != discard_id) {
            /* Without a copy in the outbox: at most once. */
            (void)delivery_direct(d, u->channel, u->json, u->len, u->sign);
        }
        free(u->channel);
        free(u);
    }
}

static void delivery_closed(uv_handle_t *h)
{
    pos_delivery_t *d = h->data;

    keys_free(d);
    unkept_flush(d, false, 0);
    if (d->closed_cb != NULL) {
        d->closed_cb(d->closed_arg);
    }
}

void pos_delivery_close(pos_delivery_t *d, void (*done)(void *arg), void *arg)
{
    d->closing = true;
    d->closed_cb = done;
    d->closed_arg = arg;
    uv_close((uv_handle_t *)&d->pump_idle, delivery_closed);
}

/* True when the entry "id" is answered and its deletion waits for kept. */
static bool delivery_keeping(const pos_delivery_t *d, uint64_t id)
{
    for (const delivery_keeping_t *w = d->keeping; w != NULL; w = w->next) {
        if (w->id == id) {
            return true;
        }
    }
    return false;
}

static void keeping_remove(pos_delivery_t *d, delivery_keeping_t *w)
{
    for (delivery_keeping_t **pp = &d->keeping; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

/* The counter's value is on the local store: its entry may go now. Not
 * kept (the store refused it), it goes all the same: Redis has it. */
static void delivery_kept(void *arg, int status)
{
    delivery_keeping_t *w = arg;
    pos_delivery_t *d = w->d;

    (void)status; /* the store's refusal is logged by the cache */
    keeping_remove(d, w);
    if (d->ob != NULL) {
        (void)pos_outbox_ack(d->ob, w->id);
    }
    free(w);
    delivery_pump_soon(d); /* a pump may have passed over it, with nothing else in flight */
}

/*
 * Keeps the value of the counter of INCRBY entry c->id (answered), with the
 * last id it includes, through d->on_confirmed. ack: the entry's deletion
 * follows once the value is kept (true returned), so that a restart never
 * finds the increment in neither; false: the caller deletes it (or not).
 */
static bool delivery_keep(pos_delivery_t *d, const delivery_ctx_t *c, bool ack)
{
    pos_delivery_key_t *k = key_find(d, c->key, strlen(c->key), NULL);
    delivery_keeping_t *w = NULL;

    if (k == NULL || !k->has_confirmed || d->on_confirmed == NULL) {
        return false;
    }
    if (ack && d->ob != NULL && (w = malloc(sizeof(*w))) != NULL) {
        *w = (delivery_keeping_t){d->keeping, d, c->id};
        d->keeping = w;
    }
    /* kept may run before this returns (a store without a writer). */
    if (d->on_confirmed(d->confirmed_ctx, k->key, k->confirmed, k->incr_done_id,
                        w != NULL ? delivery_kept : NULL, w) != 0) {
        if (w != NULL) {
            keeping_remove(d, w);
            free(w);
        }
        return false;
    }
    return w != NULL;
}

static void delivery_reply(void *ctx, const redisReply *r, int err)
{
    delivery_ctx_t *c = ctx;
    pos_delivery_t *d = c->d;
    bool current = c->epoch == d->epoch;
    bool keep = c->note == DELIVERY_NOTE_KEEP && !d->closing;

    if (current && c->last && d->inflight > 0) {
        d->inflight--;
        d->inflight_bytes -= c->bytes < d->inflight_bytes ? c->bytes : d->inflight_bytes;
    }
    if (c->then != NULL && err == 0 && r->type == REDIS_REPLY_ERROR) {
        /* The EXPIRE after it may succeed all the same (it is allowed when
         * Redis is out of memory, INCRBY is not): it must not complete the
         * entry as if the increment had been applied. */
        bool for_good = pos_link_error_for_good(r->str, r->len);
        c->then->refused = for_good ? DELIVERY_REFUSED_FOR_GOOD : DELIVERY_REFUSED_NOW;
        if (for_good && c->note == DELIVERY_NOTE_INCR && !d->closing) {
            key_note_refused(d, c);
        }
    }
    if (err == 0 && c->refused == DELIVERY_REFUSED_FOR_GOOD) {
        d->refused++;
        (void)delivery_drop(d, c->id, "Redis refuses it whatever is tried again");
    } else if (err == 0 && c->refused == DELIVERY_REFUSED_NOW) {
        /* Kept, the increment unapplied: sent again at the next reconnect. */
    } else if (err == 0 && r->type == REDIS_REPLY_ERROR) {
        /* Kept: it is sent again at the next reconnect; say why now. */
        POS_ERR("outbox", "entry %" PRIu64 " refused by Redis: %.*s", c->id, pos_conn_log_len(r),
                r->str);
        if (keep) {
            /* The counter's value all the same: it includes the increment,
             * which the outbox still holds (upto tells them apart). */
            (void)delivery_keep(d, c, false);
        }
    } else if (err == 0 && c->last) {
        if (!(keep && delivery_keep(d, c, true)) && d->ob != NULL) {
            pos_outbox_ack(d->ob, c->id);
        }
        d->delivered++;
    }
    if (err == 0 && r->type != REDIS_REPLY_ERROR &&
        (c->note == DELIVERY_NOTE_INCR || c->note == DELIVERY_NOTE_WRITE) && !d->closing) {
        key_note_reply(d, c, r);
    }
    free(c->key);
    free(c);
    if (current && err == 0) {
        delivery_pump_soon(d);
    }
}

/* Adds "sig" to the JSON object in buf (len bytes, cap the buffer's size)
 * when the agent has a key. Returns the new length; on failure the message
 * goes out unsigned (the cloud refuses it) rather than not at all. */
static int delivery_sign(pos_delivery_t *d, char *buf, size_t len, size_t cap)
{
    const pos_sign_keys_t *k = d->keys;

    if (k == NULL || k->count == 0) {
        return (int)len;
    }
    int n = pos_sign_append(k, buf, len, buf, cap);
    if (n < 0) {
        POS_ERR("outbox", "cannot sign a message: %s; sent unsigned", strerror(-n));
        return (int)len;
    }
    return n;
}

int pos_delivery_sign(pos_delivery_t *d, char *buf, size_t len, size_t cap)
{
    return delivery_sign(d, buf, len, cap);
}

/*
 * Sends first (argc1 arguments), then, unless NULL, second (argc2). With an
 * id, the reply to the last one sent completes outbox entry *id; without,
 * nobody waits for the replies. Returns 0 or a negative errno.
 */
static void ctx_free(delivery_ctx_t *c)
{
    if (c != NULL) {
        free(c->key);
        free(c);
    }
}

/* A command's arguments: lens NULL for NUL-terminated ones. */
typedef struct delivery_cmd {
    int argc;
    const char **argv;
    const size_t *lens;
} delivery_cmd_t;

static int delivery_send_cmd(pos_delivery_t *d, pos_reply_cb cb, delivery_ctx_t *c,
                             const delivery_cmd_t *cmd)
{
    if (cmd->lens != NULL) {
        return pos_link_command(d->link, cb, c, cmd->argc, cmd->argv, cmd->lens);
    }
    return pos_link_commandv(d->link, cb, c, cmd->argc, cmd->argv);
}

/*
 * Sends first, then, unless NULL, second. With an id, the reply to the
 * last one sent completes outbox entry *id; without, nobody waits for the
 * replies. key (may be NULL): the key whose bookkeeping the replies update
 * (note1 on first's reply, note2 on second's). Returns 0 or a negative errno.
 */
static int delivery_cmds(pos_delivery_t *d, const uint64_t *id, const delivery_cmd_t *first,
                         const delivery_cmd_t *second, const char *key, int note1, int note2,
                         long long by)
{
    pos_reply_cb cb = NULL;
    delivery_ctx_t *c1 = NULL, *c2 = NULL;
    int rc;

    if (id != NULL) {
        cb = delivery_reply;
        c1 = calloc(1, sizeof(*c1));
        c2 = second != NULL ? calloc(1, sizeof(*c2)) : NULL;
        if (c1 == NULL || (second != NULL && c2 == NULL)) {
            free(c1);
            free(c2);
            return -ENOMEM;
        }
        *c1 = (delivery_ctx_t){d, *id, d->epoch, second == NULL, 0, by, NULL, NULL, 0, 0};
        c1->bytes = second == NULL ? d->sending_bytes : 0;
        if (key != NULL && note1 != DELIVERY_NOTE_NONE) {
            c1->note = note1;
            c1->key = strdup(key);
        }
        if (c2 != NULL) {
            *c2 = (delivery_ctx_t){d, *id, d->epoch, true, 0, by, NULL, NULL, 0, 0};
            c2->bytes = d->sending_bytes;
            /* Only an increment: sent again after later entries, it still
             * counts the same. A SADD of active_transactions sent again
             * after its SREM would list a finished payment for 30 min. */
            if (note1 == DELIVERY_NOTE_INCR) {
                c1->then = c2;
            }
            if (key != NULL && note2 != DELIVERY_NOTE_NONE) {
                c2->note = note2;
                c2->key = strdup(key);
            }
        }
        if ((c1->note != 0 && c1->key == NULL) ||
            (c2 != NULL && c2->note != 0 && c2->key == NULL)) {
            ctx_free(c1);
            ctx_free(c2);
            return -ENOMEM;
        }
    }
    rc = delivery_send_cmd(d, cb, c1, first);
    if (rc != 0) {
        ctx_free(c1);
        ctx_free(c2);
        return rc;
    }
    if (second == NULL) {
        return 0;
    }
    rc = delivery_send_cmd(d, cb, c2, second);
    if (rc != 0) {
        if (c1 != NULL) {
            c1->then = NULL; /* its reply may still come */
        }
        ctx_free(c2);
    }
    return rc;
}

static int delivery_commands(pos_delivery_t *d, const uint64_t *id, int argc1, const char **first,
                             int argc2, const char **second)
{
    delivery_cmd_t c1 = {argc1, first, NULL}, c2 = {argc2, second, NULL};
    return delivery_cmds(d, id, &c1, second != NULL ? &c2 : NULL, NULL, 0, 0, 0);
}

/* INCRBY key by, then EXPIRE key ttl_s NX: the counter keeps its first expiry. */
static int send_incrby(pos_delivery_t *d, const uint64_t *id, const char *key, long long by,
                       unsigned ttl_s)
{
    char n[24], ttl[16];

    snprintf(n, sizeof(n), "%lld", by);
    snprintf(ttl, sizeof(ttl), "%u", ttl_s);
    const char *incr[] = {"INCRBY", key, n};
    const char *expire[] = {"EXPIRE", key, ttl, "NX"};
    delivery_cmd_t c1 = {3, incr, NULL}, c2 = {4, expire, NULL};
    return delivery_cmds(d, id, &c1, &c2, key, DELIVERY_NOTE_INCR, DELIVERY_NOTE_KEEP, by);
}

/*
 * A write-through entry (payload "KSET <expiry_ms>\n<origin>\n<value>",
 * "KPEXPIRE <expiry_ms>\n" or "KDEL\n"): the remaining time is what is left
 * now of the absolute expiry; past it, the entry goes as DEL.
 */
static int send_kv(pos_delivery_t *d, const pos_outbox_entry_t *e, const char *key)
{
    const char *p = e->payload;
    size_t len = e->payload_len;
    const char *nl = memchr(p, '\n', len);
    char head[64], px[24], okey[POS_OUTBOX_CHANNEL_MAX + 16];
    unsigned long long expiry = 0;
    long long rem = 0;

    if (nl == NULL || (size_t)(nl - p) >= sizeof(head)) {
        return delivery_drop(d, e->id, "bad write-through");
    }
    memcpy(head, p, (size_t)(nl - p));
    head[nl - p] = '\0';
    snprintf(okey, sizeof(okey), "%s:origin", key);
    bool set = strncmp(head, "KSET ", 5) == 0, pexp = strncmp(head, "KPEXPIRE ", 9) == 0;
    if (set || pexp) {
        if (sscanf(head + (set ? 5 : 9), "%llu", &expiry) != 1) {
            return delivery_drop(d, e->id, "bad write-through expiry");
        }
        uint64_t now = pos_clock_wall_ms();
        rem = expiry == 0 ? 0 : (expiry > now ? (long long)(expiry - now) : -1);
    } else if (strcmp(head, "KDEL") != 0) {
        return delivery_drop(d, e->id, "unknown write-through");
    }
    if (rem < 0 || (!set && !pexp) || (pexp && expiry == 0)) {
        /* Deleted, or expired before it could be delivered: gone in Redis
         * too. As PEXPIRE ... 0 (Redis deletes at once), which the till's ACL rule has (not DEL):
         * Redis never answers the key again. */
        const char *del[] = {"PEXPIRE", key, "0"};
        const char *del2[] = {"PEXPIRE", okey, "0"};
        delivery_cmd_t c1 = {3, del, NULL}, c2 = {3, del2, NULL};
        return delivery_cmds(d, &e->id, &c1, &c2, key, 0, DELIVERY_NOTE_WRITE, 0);
    }
    snprintf(px, sizeof(px), "%lld", rem);
    if (pexp) {
        const char *pe[] = {"PEXPIRE", key, px};
        const char *pe2[] = {"PEXPIRE", okey, px};
        delivery_cmd_t c1 = {3, pe, NULL}, c2 = {3, pe2, NULL};
        return delivery_cmds(d, &e->id, &c1, &c2, key, 0, DELIVERY_NOTE_WRITE, 0);
    }
    const char *orig = nl + 1;
    const char *nl2 = memchr(orig, '\n', len - (size_t)(orig - p));
    if (nl2 == NULL) {
        return delivery_drop(d, e->id, "bad write-through value");
    }
    size_t olen = (size_t)(nl2 - orig), cap = olen + POS_SIGN_APPEND + 1;
    char *ojson = malloc(cap);
    if (ojson == NULL) {
        return -ENOMEM;
    }
    memcpy(ojson, orig, olen);
    olen = (size_t)delivery_sign(d, ojson, olen, cap);
    const char *value = nl2 + 1;
    size_t vlen = len - (size_t)(value - p);
    const char *sv[] = {"SET", key, value, "PX", px};
    size_t svl[] = {3, strlen(key), vlen, 2, strlen(px)};
    const char *so[] = {"SET", okey, ojson, "PX", px};
    size_t sol[] = {3, strlen(okey), olen, 2, strlen(px)};
    delivery_cmd_t c1 = {expiry == 0 ? 3 : 5, sv, svl}, c2 = {expiry == 0 ? 3 : 5, so, sol};
    int rc = delivery_cmds(d, &e->id, &c1, &c2, key, 0, DELIVERY_NOTE_WRITE, 0);
    free(ojson);
    return rc;
}

/* SADD key member, then EXPIRE key ttl_s; or SREM key member alone. */
static int send_set_member(pos_delivery_t *d, const uint64_t *id, const char *key, bool add,
                           const char *member, unsigned ttl_s)
{
    char ttl[16];

    snprintf(ttl, sizeof(ttl), "%u", ttl_s);
    const char *argv[] = {add ? "SADD" : "SREM", key, member};
    const char *expire[] = {"EXPIRE", key, ttl};
    return delivery_commands(d, id, 3, argv, 3, add ? expire : NULL);
}

/* An entry that cannot be sent: logged and acknowledged, so that it goes. */
static int delivery_drop(pos_delivery_t *d, uint64_t id, const char *why)
{
    POS_ERR("outbox", "entry %" PRIu64 ": %s, dropped", id, why);
    if (d->ob != NULL) {
        pos_outbox_ack(d->ob, id);
    }
    return 0;
}

/* A PUBLISH is on its way: the bytes Redis will deliver, its echo to the
 * agent's own subscriber included. */
static void delivery_published(pos_delivery_t *d, const char *channel, const char *msg, size_t len)
{
    if (d->on_published != NULL) {
        d->on_published(d->published_ctx, channel, msg, len);
    }
}

static int delivery_send(pos_delivery_t *d, const pos_outbox_entry_t *e)
{
    char channel[POS_OUTBOX_CHANNEL_MAX + 1];
    int rc;

    snprintf(channel, sizeof(channel), "%.*s", (int)e->channel_len, e->channel);
    if (e->kind == POS_OUTBOX_PUBLISH) {
        size_t cap = e->payload_len + 48 + POS_SIGN_APPEND + 1;
        char *json = malloc(cap);
        delivery_ctx_t *c = malloc(sizeof(*c));
        if (json == NULL || c == NULL) {
            free(json);
            free(c);
            return -ENOMEM;
        }
        int n = pos_outbox_stamp(e->payload, e->payload_len, e->id, json, cap);
        if (n < 0) {
            /* Not an object: send it as it is rather than lose it. */
            memcpy(json, e->payload, e->payload_len);
            n = (int)e->payload_len;
        } else if (e->sign) {
            /* Signed last, so that "outboxId" is covered too. */
            n = delivery_sign(d, json, (size_t)n, cap);
        }
        *c = (delivery_ctx_t){d, e->id, d->epoch, true, 0, 0, NULL, NULL, 0, 0};
        c->bytes = d->sending_bytes;
        const char *argv[] = {"PUBLISH", channel, json};
        size_t lens[] = {7, strlen(channel), (size_t)n};
        rc = pos_link_command(d->link, delivery_reply, c, 3, argv, lens);
        if (rc == 0) {
            delivery_published(d, channel, json, (size_t)n);
        }
        free(json);
        if (rc != 0) {
            free(c);
        }
        return rc;
    }
    if (e->kind == POS_OUTBOX_INCRBY) {
        char text[64];
        long long by = 0;
        unsigned t = 0;
        snprintf(text, sizeof(text), "%.*s", (int)(e->payload_len < 63 ? e->payload_len : 63),
                 (const char *)e->payload);
        if (sscanf(text, "%lld %u", &by, &t) != 2) {
            return delivery_drop(d, e->id, "bad increment");
        }
        return send_incrby(d, &e->id, channel, by, t);
    }
    if (e->kind == POS_OUTBOX_OTHER && e->payload_len > 1 && ((const char *)e->payload)[0] == 'K') {
        return send_kv(d, e, channel);
    }
    if (e->kind == POS_OUTBOX_OTHER) {
        /* Set membership: "SADD member ttl_s" or "SREM member" on the key. */
        char text[POS_OUTBOX_CHANNEL_MAX + 32], op[8], member[POS_OUTBOX_CHANNEL_MAX + 1];
        unsigned t = 0;
        int k;
        snprintf(text, sizeof(text), "%.*s",
                 (int)(e->payload_len < sizeof(text) - 1 ? e->payload_len : sizeof(text) - 1),
                 (const char *)e->payload);
        k = sscanf(text, "%7s %511s %u", op, member, &t);
        bool add = k == 3 && strcmp(op, "SADD") == 0;
        if (!add && !(k == 2 && strcmp(op, "SREM") == 0)) {
            return delivery_drop(d, e->id, "bad set operation");
        }
        return send_set_member(d, &e->id, channel, add, member, t);
    }
    return delivery_drop(d, e->id, "unknown kind");
}

void pos_delivery_pump(pos_delivery_t *d)
{
    pos_outbox_batch_t batch;
    int n;

    if (d->ob == NULL || !pos_link_is_online(d->link) || d->inflight >= POS_DELIVERY_WINDOW) {
        return;
    }
    memset(&batch, 0, sizeof(batch));
    /* The oldest entries not yet sent on this connection, in id order
     * (those sent are in flight: their acks come as Redis answers). */
again:
    n = pos_outbox_peek_from(d->ob, d->sent_upto + 1, POS_DELIVERY_WINDOW, &batch);
    bool all_kept = n == POS_DELIVERY_WINDOW; /* a full batch, every entry waiting for its keep */
    for (int i = 0; i < n && d->inflight < POS_DELIVERY_WINDOW; i++) {
        const pos_outbox_entry_t *e = &batch.entries[i];
        if (e->id <= d->sent_upto) {
            continue;
        }
        if (d->hold_id != 0 && e->id >= d->hold_id) {
            break; /* held back until the payment releases it, and what follows too */
        }
        if (delivery_keeping(d, e->id)) {
            /* Answered already: deleted once its counter's value is kept. */
            d->sent_upto = e->id;
            continue;
        }
        all_kept = false;
        /* What the connection's write queue takes is bounded (1 MiB, then
         * it is dropped): entries of up to 64 KiB each would pass that long
         * before the window's count, on an uplink that drains slowly. */
        uint32_t bytes = (uint32_t)(e->payload_len + e->channel_len + 64u);
        if (d->inflight > 0 && d->inflight_bytes + bytes > POS_DELIVERY_WINDOW_BYTES) {
            break; /* a reply frees room and pumps again */
        }
        d->sending_bytes = bytes;
        int rc = delivery_send(d, e);
        d->sending_bytes = 0;
        if (rc != 0) {
            break; /* the link went down: the next online resends */
        }
        d->sent_upto = e->id;
        d->inflight++;
        d->inflight_bytes += bytes;
    }
    pos_outbox_batch_free(&batch);
    if (all_kept) {
        memset(&batch, 0, sizeof(batch));
        goto again; /* nothing sent: the entries behind them must not wait */
    }
}

void pos_delivery_hold(pos_delivery_t *d, uint64_t id)
{
    d->hold_id = id;
}

void pos_delivery_release(pos_delivery_t *d, uint64_t id, bool discard)
{
    if (d->hold_id != id || id == 0) {
        return;
    }
    d->hold_id = 0;
    if (discard) {
        d->discarded_id = id;
    }
    if (discard && d->ob != NULL) {
        (void)pos_outbox_ack(d->ob, id); /* never sent: as if delivered */
    }
    pos_delivery_pump(d);
    unkept_flush(d, true, discard ? id : 0); /* after what the outbox holds before them */
    if (!discard && d->sent_upto < id) {
        d->urgent_id = id; /* not durable yet, or behind others */
    }
}

void pos_delivery_online(pos_delivery_t *d)
{
    d->epoch++;
    d->sent_upto = 0;
    d->inflight = 0;
    d->inflight_bytes = 0;
    pos_delivery_pump(d);
}

/* Without a store: straight to Redis, or lost (and counted) when offline. */
static int delivery_direct(pos_delivery_t *d, const char *channel, const char *json, size_t len,
                           bool sign)
{
    char *copy = NULL;
    int rc;

    if (sign && d->keys != NULL && d->keys->count > 0) {
        size_t cap = len + POS_SIGN_APPEND + 1;
        copy = malloc(cap);
        if (copy == NULL) {
            return -ENOMEM;
        }
        memcpy(copy, json, len);
        len = (size_t)delivery_sign(d, copy, len, cap);
        json = copy;
    }
    const char *argv[] = {"PUBLISH", channel, json};
    size_t lens[] = {7, strlen(channel), len};
    rc = pos_link_command(d->link, NULL, NULL, 3, argv, lens);
    if (rc == 0) {
        delivery_published(d, channel, json, len);
    }
    free(copy);
    if (rc != 0) {
        d->lost++;
        POS_WARN("outbox", "no store and no link: message on %s lost", channel);
    }
    return rc;
}

/*
 * A message the outbox refused: better delivered without a copy than not
 * at all, so sent now; but one a payment holds (PAYMENT_PROCESSING until
 * its journal record is durable) only once released, and never when the
 * payment discards it (its record failed: the request is refused instead,
 * and gets that one first answer).
 */
static void delivery_unqueued(pos_delivery_t *d, const char *channel, const pos_outbox_entry_t *e)
{
    if (e->id != 0 && e->id == d->discarded_id) {
        return;
    }
    if (d->hold_id == 0 || e->id < d->hold_id) {
        (void)delivery_direct(d, channel, (const char *)e->payload, e->payload_len, e->sign);
        return;
    }
    delivery_unkept_t *u = malloc(sizeof(*u) + e->payload_len);
    if (u == NULL || (u->channel = strdup(channel)) == NULL) {
        free(u);
        d->lost++;
        POS_WARN("outbox", "a held message on %s could not be kept: lost", channel);
        return;
    }
    u->next = NULL;
    u->id = e->id;
    u->sign = e->sign;
    u->len = e->payload_len;
    memcpy(u->json, e->payload, e->payload_len);
    delivery_unkept_t **pp = &d->unkept;
    while (*pp != NULL) {
        pp = &(*pp)->next;
    }
    *pp = u;
}

/* What an append hands back to its caller. */
typedef struct delivery_queued {
    pos_delivery_t *d;
    pos_delivery_cb cb;
    void *ctx;
} delivery_queued_t;

/* The entry is durable (or could not be kept): send what may go now. */
static void delivery_appended(void *ctx, int status, const pos_outbox_entry_t *e)
{
    delivery_queued_t *q = ctx;
    pos_delivery_t *d = q->d;

    if (status != 0) {
        key_note_entry(d, e, -1); /* not queued after all */
    }
    if (status != 0) {
        char channel[POS_OUTBOX_CHANNEL_MAX + 1];
        snprintf(channel, sizeof(channel), "%.*s", (int)e->channel_len, e->channel);
        POS_ERR("outbox", "cannot queue %s of %s: %s",
                e->kind == POS_OUTBOX_PUBLISH ? "a message" : "a command", channel,
                strerror(-status));
        if (e->kind == POS_OUTBOX_PUBLISH) {
            delivery_unqueued(d, channel, e);
        }
    }
    if (q->cb != NULL) {
        q->cb(q->ctx, status, e->id);
    }
    if (status == 0 && d->urgent_id != 0 && e->id >= d->urgent_id) {
        /* What a payment released: on its way now (PAYMENT_PROCESSING). */
        d->urgent_id = 0;
        pos_delivery_pump(d);
    } else if (status == 0) {
        delivery_pump_soon(d);
    }
    free(q);
}

/*
 * Queues an entry of kind in the outbox (the payload len bytes); cb(ctx,
 * status, id) (may be NULL) once it is durable or failed. Returns 0, or
 * an error with nothing queued (cb not called).
 */
static int delivery_queue(pos_delivery_t *d, pos_outbox_kind_t kind, bool payment, bool sign,
                          const char *channel, const void *payload, size_t len, pos_delivery_cb cb,
                          void *ctx, uint64_t *id)
{
    pos_outbox_entry_t e;
    delivery_queued_t *q = malloc(sizeof(*q));

    if (q == NULL) {
        return -ENOMEM;
    }
    *q = (delivery_queued_t){d, cb, ctx};
    memset(&e, 0, sizeof(e));
    e.kind = kind;
    e.is_payment = payment;
    e.sign = sign;
    e.created_ms = pos_clock_wall_ms();
    e.channel = channel;
    e.channel_len = strlen(channel);
    e.payload = payload;
    e.payload_len = len;
    /* Counted before the append: its callback may run before it returns. */
    key_note_entry(d, &e, +1);
    int rc = pos_outbox_append_async(d->ob, &e, id, delivery_appended, q);
    if (rc != 0) {
        key_note_entry(d, &e, -1);
        free(q); /* nothing queued: the callback does not run */
    }
    return rc;
}

int pos_delivery_publish_now(pos_delivery_t *d, const char *channel, const char *json, size_t len)
{
    return delivery_direct(d, channel, json, len, true);
}

int pos_delivery_publish(pos_delivery_t *d, const char *channel, const char *json, size_t len,
                         bool payment, uint64_t *id)
{
    return pos_delivery_publish_ex(d, channel, json, len, payment, true, NULL, NULL, id);
}

int pos_delivery_publish_ex(pos_delivery_t *d, const char *channel, const char *json, size_t len,
                            bool payment, bool sign, pos_delivery_cb cb, void *ctx, uint64_t *id)
{
    if (id != NULL) {
        *id = 0;
    }
    if (d->ob == NULL) {
        int rc = delivery_direct(d, channel, json, len, sign);
        if (cb != NULL) {
            cb(ctx, rc, 0);
        }
        return 0;
    }
    int rc = delivery_queue(d, POS_OUTBOX_PUBLISH, payment, sign, channel, json, len, cb, ctx, id);
    if (rc != 0) {
        POS_ERR("outbox", "cannot queue a message on %s: %s", channel, strerror(-rc));
        if (cb != NULL) {
            /* Its caller waits for the callback, which will not run: it
             * hears the error instead (a local client is answered it). */
            return rc;
        }
        /* Still try to send it now: better delivered without a copy. */
        return delivery_direct(d, channel, json, len, sign);
    }
    return 0;
}

int pos_delivery_incrby(pos_delivery_t *d, const char *key, long long n, unsigned ttl_s,
                        pos_delivery_cb cb, void *ctx)
{
    char payload[48];
    int rc;

    int plen = snprintf(payload, sizeof(payload), "%lld %u", n, ttl_s);
    if (d->ob == NULL) {
        rc = send_incrby(d, NULL, key, n, ttl_s);
        if (rc != 0) {
            d->lost++;
        }
        if (cb != NULL) {
            cb(ctx, rc, 0);
        }
        return 0;
    }
    rc = delivery_queue(d, POS_OUTBOX_INCRBY, false, false, key, payload, (size_t)plen, cb, ctx,
                        NULL);
    if (rc != 0) {
        POS_ERR("outbox", "cannot queue an increment of %s: %s", key, strerror(-rc));
    }
    return rc;
}

int pos_delivery_set_member(pos_delivery_t *d, const char *key, bool add, const char *member,
                            unsigned ttl_s)
{
    char payload[POS_OUTBOX_CHANNEL_MAX + 32];
    int rc;

    if (strlen(member) == 0 || strlen(member) > POS_OUTBOX_CHANNEL_MAX ||
        strpbrk(member, " \t\r\n") != NULL) {
        return -EINVAL;
    }
    if (d->ob == NULL) {
        rc = send_set_member(d, NULL, key, add, member, ttl_s);
        if (rc != 0) {
            d->lost++;
        }
        return rc;
    }
    int plen = add ? snprintf(payload, sizeof(payload), "SADD %s %u", member, ttl_s)
                   : snprintf(payload, sizeof(payload), "SREM %s", member);
    /* Payment bookkeeping: never dropped for room. */
    rc = delivery_queue(d, POS_OUTBOX_OTHER, true, false, key, payload, (size_t)plen, NULL, NULL,
                        NULL);
    if (rc != 0) {
        POS_ERR("outbox", "cannot queue %s of %s: %s", add ? "SADD" : "SREM", key, strerror(-rc));
    }
    return rc;
}

int pos_delivery_kv(pos_delivery_t *d, pos_delivery_kv_op_t op, const char *key, const char *value,
                    size_t vlen, uint64_t expiry_ms, const char *origin, pos_delivery_cb cb,
                    void *ctx)
{
    char head[64];
    int hlen;
    char *payload;
    size_t olen = origin != NULL ? strlen(origin) : 0, plen;
    int rc;

    if (d->ob == NULL) {
        return -ENODEV; /* a write the till answers for must be kept */
    }
    switch (op) {
    case POS_DELIVERY_KV_SET:
        hlen = snprintf(head, sizeof(head), "KSET %" PRIu64 "\n", expiry_ms);
        break;
    case POS_DELIVERY_KV_PEXPIRE:
        hlen = snprintf(head, sizeof(head), "KPEXPIRE %" PRIu64 "\n", expiry_ms);
        break;
    default:
        hlen = snprintf(head, sizeof(head), "KDEL\n");
        break;
    }
    plen = (size_t)hlen + (op == POS_DELIVERY_KV_SET ? olen + 1 + vlen : 0);
    if (plen > POS_OUTBOX_PAYLOAD_MAX) {
        return -EMSGSIZE;
    }
    payload = malloc(plen);
    if (payload == NULL) {
        return -ENOMEM;
    }
    memcpy(payload, head, (size_t)hlen);
    if (op == POS_DELIVERY_KV_SET) {
        memcpy(payload + hlen, origin, olen);
        payload[(size_t)hlen + olen] = '\n';
        if (vlen != 0) {
            memcpy(payload + hlen + olen + 1, value, vlen);
        }
    }
    rc = delivery_queue(d, POS_OUTBOX_OTHER, false, false, key, payload, plen, cb, ctx, NULL);
    free(payload);
    return rc;
}
