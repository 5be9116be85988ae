#include "agent/store/outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/endian.h"
#include "platform/log.h"
#include "agent/store/writer.h"

/*
 * Record layout (little-endian, 24-byte header, then channel, then payload):
 *   0 version (1)  1 kind  2 flags (bit 0: payment outcome, bit 1: sign when sent)  3 reserved
 *   4 channel length (u32)  8 payload length (u32)  12 reserved (u32)
 *   16 created_ms (u64)
 * Keyed by be64(id), so LMDB's key order is FIFO order.
 */
#define REC_VERSION  1u
#define FLAG_PAYMENT 1u
#define FLAG_SIGN    2u

#define META_NEXT    "outbox_next"
#define META_DROPPED "outbox_dropped"

/* ---- pure parts ------------------------------------------------------- */

int pos_outbox_record_parse(const void *rec, size_t len, pos_outbox_entry_t *e)
{
    const unsigned char *p = rec;
    if (rec == NULL || len < POS_OUTBOX_HDR_SIZE || p[0] != REC_VERSION ||
        p[1] >= POS_OUTBOX_KIND_COUNT || (p[2] & ~(FLAG_PAYMENT | FLAG_SIGN)) != 0) {
        return -EBADMSG;
    }
    uint32_t clen = pos_endian_get_le32(p + 4);
    uint32_t plen = pos_endian_get_le32(p + 8);
    if (clen == 0 || clen > POS_OUTBOX_CHANNEL_MAX || plen > POS_OUTBOX_PAYLOAD_MAX ||
        (size_t)clen + plen != len - POS_OUTBOX_HDR_SIZE) {
        return -EBADMSG;
    }
    memset(e, 0, sizeof(*e));
    e->kind = (pos_outbox_kind_t)p[1];
    e->is_payment = (p[2] & FLAG_PAYMENT) != 0;
    e->sign = (p[2] & FLAG_SIGN) != 0;
    e->created_ms = pos_endian_get_le64(p + 16);
    e->channel = (const char *)p + POS_OUTBOX_HDR_SIZE;
    e->channel_len = clen;
    e->payload = p + POS_OUTBOX_HDR_SIZE + clen;
    e->payload_len = plen;
    return 0;
}

int pos_outbox_stamp(const char *json, size_t len, uint64_t id, char *out, size_t out_len)
{
    if (json == NULL || out == NULL) {
        return -EINVAL;
    }
    size_t b = 0;
    while (b < len && (json[b] == ' ' || json[b] == '\t' || json[b] == '\r' || json[b] == '\n')) {
        b++;
    }
    size_t e = len;
    while (e > b && (json[e - 1] == ' ' || json[e - 1] == '\t' || json[e - 1] == '\r' ||
                     json[e - 1] == '\n')) {
        e--;
    }
    if (e - b < 2 || json[b] != '{' || json[e - 1] != '}') {
        return -EINVAL;
    }
    /* Is the object empty ("{ }")? Then no comma before the new member. */
    size_t i = b + 1;
    while (i < e - 1 && (json[i] == ' ' || json[i] == '\t' || json[i] == '\r' || json[i] == '\n')) {
        i++;
    }
    bool empty = i == e - 1;
    char tail[48];
    int n = snprintf(tail, sizeof(tail), "%s\"outboxId\":%" PRIu64 "}", empty ? "" : ",", id);
    size_t need = (e - 1 - b) + (size_t)n;
    if (need + 1 > out_len || need > INT32_MAX) {
        return -ENOSPC;
    }
    memcpy(out, json + b, e - 1 - b);
    memcpy(out + (e - 1 - b), tail, (size_t)n + 1);
    return (int)need;
}

/* ---- tenant, open / stats ---------------------------------------------- */

/* Judges and counts one record of the outbox (pos_store_check_fn). */
static int outbox_check(void *census, pos_store_db_t db, const MDB_val *k, const MDB_val *v)
{
    pos_outbox_census_t *cs = census;
    pos_outbox_entry_t e;

    (void)db;
    if (k->mv_size != 8 || pos_outbox_record_parse(v->mv_data, v->mv_size, &e) != 0) {
        return -EBADMSG;
    }
    if (cs != NULL) {
        cs->entries++;
        cs->bytes += e.channel_len + e.payload_len;
        cs->payment += e.is_payment;
        cs->last_id = pos_endian_get_be64(k->mv_data); /* key order is id order */
    }
    return 0;
}

void pos_outbox_tenant(pos_store_tenant_t *t, pos_outbox_census_t *census)
{
    *t = (pos_store_tenant_t){POS_STORE_DB_BIT(POS_DB_OUTBOX), outbox_check, census,
                              sizeof(*census)};
}

/* Reads the persisted id counter and drop counter into ob->stats. */
static int read_counters(void *ctx, MDB_txn *txn)
{
    pos_outbox_t *ob = ctx;
    int rc = pos_store_meta_get(ob->st, txn, META_NEXT, &ob->stats.next_id);
    if (rc == 0) {
        rc = pos_store_meta_get(ob->st, txn, META_DROPPED, &ob->stats.dropped);
    }
    return rc;
}

int pos_outbox_open(pos_outbox_t *ob, pos_store_t *st, const pos_outbox_config_t *cfg)
{
    if (ob == NULL || st == NULL || st->env == NULL) {
        return -EINVAL;
    }
    memset(ob, 0, sizeof(*ob));
    ob->st = st;
    if (cfg != NULL) {
        ob->cfg = *cfg;
    }
    pos_outbox_census_t cs;
    pos_store_tenant_t t;
    pos_outbox_tenant(&t, &cs);
    int rc = pos_store_txn_run(st, MDB_RDONLY, read_counters, ob);
    /* Recount: a census of the walk at open may be older than this call. */
    if (rc == 0) {
        rc = pos_store_count(st, &t);
    }
    if (rc == 0) {
        ob->stats.entries = cs.entries;
        ob->stats.bytes = cs.bytes;
        ob->stats.payment = cs.payment;
        if (cs.entries > 0 && cs.last_id >= ob->stats.next_id) {
            ob->stats.next_id = cs.last_id + 1;
        }
    }
    if (ob->stats.next_id == 0) {
        ob->stats.next_id = 1;
    }
    if (rc != 0) {
        ob->st = NULL;
    }
    ob->w = ob->stats;
    ob->next_id = ob->stats.next_id;
    return rc;
}

void pos_outbox_set_writer(pos_outbox_t *ob, pos_store_writer_t *w)
{
    ob->writer = w;
}

void pos_outbox_close(pos_outbox_t *ob)
{
    if (ob != NULL) {
        ob->st = NULL;
    }
}

/* ---- append ----------------------------------------------------------- */

typedef struct drop {
    uint64_t id;
    size_t bytes;
} drop_t;

#define DROP_BATCH 64 /* entries drop_oldest() deletes per pass */

/* True when entries and bytes break the configured bounds (0: no bound). */
static bool over_bounds(const pos_outbox_config_t *cfg, uint64_t entries, uint64_t bytes)
{
    return (cfg->max_entries != 0 && entries > cfg->max_entries) ||
           (cfg->max_bytes != 0 && bytes > cfg->max_bytes);
}

/* One pass of drop_oldest(): the entries it picks, oldest first. */
typedef struct drop_pass {
    const pos_outbox_config_t *cfg;
    uint64_t entries, bytes; /* what the outbox holds once the picked ones went */
    uint64_t add_entries, add_bytes;
    size_t min_drops;
    drop_t ids[DROP_BATCH];
    size_t n;
} drop_pass_t;

static int drop_pick(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    drop_pass_t *p = ctx;
    pos_outbox_entry_t e;

    (void)cur;
    if ((!over_bounds(p->cfg, p->entries + p->add_entries, p->bytes + p->add_bytes) &&
         p->n >= p->min_drops) ||
        p->n == DROP_BATCH) {
        return 1; /* enough for this pass */
    }
    if (k->mv_size != 8 || pos_outbox_record_parse(v->mv_data, v->mv_size, &e) != 0 ||
        e.is_payment) {
        return 0;
    }
    p->ids[p->n].id = pos_endian_get_be64(k->mv_data);
    p->ids[p->n].bytes = e.channel_len + e.payload_len;
    p->entries--;
    p->bytes -= p->ids[p->n].bytes;
    p->n++;
    return 0;
}

/*
 * Deletes, inside txn, the oldest non-payment entries until the outbox
 * holds at most max_entries - add_entries entries and max_bytes -
 * add_bytes bytes (0 bounds: ignored), or at least min_drops went.
 * Returns 0 with the counts in dropped and freed, -ENOSPC if only payment outcomes
 * stand in the way, or a negative errno.
 */
static int drop_oldest(pos_outbox_t *ob, MDB_txn *txn, uint64_t add_entries, uint64_t add_bytes,
                       size_t min_drops, uint64_t *dropped, uint64_t *freed)
{
    drop_pass_t p = {.cfg = &ob->cfg,
                     .entries = ob->w.entries,
                     .bytes = ob->w.bytes,
                     .add_entries = add_entries,
                     .add_bytes = add_bytes,
                     .min_drops = min_drops};
    *dropped = 0;
    *freed = 0;
    int rc = pos_store_each(ob->st, txn, POS_DB_OUTBOX, drop_pick, &p);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < p.n; i++) {
        unsigned char kb[8];
        pos_endian_put_be64(kb, p.ids[i].id);
        MDB_val key = {sizeof(kb), kb};
        rc = pos_store_del(ob->st, txn, POS_DB_OUTBOX, &key);
        if (rc != 0) {
            return pos_store_errno(rc);
        }
        *dropped += 1;
        *freed += p.ids[i].bytes;
    }
    if (over_bounds(&ob->cfg, p.entries + add_entries, p.bytes + add_bytes)) {
        /* DROP_BATCH drops per pass: go round again while it helps. */
        if (p.n == DROP_BATCH) {
            uint64_t d2, f2;
            pos_outbox_t view = *ob;
            view.w.entries = p.entries;
            view.w.bytes = p.bytes;
            rc = drop_oldest(&view, txn, add_entries, add_bytes, 0, &d2, &f2);
            *dropped += d2;
            *freed += f2;
            return rc;
        }
        return -ENOSPC;
    }
    return p.n < min_drops ? -ENOSPC : 0;
}

static int write_drops(pos_outbox_t *ob, MDB_txn *txn, uint64_t dropped)
{
    if (dropped == 0) {
        return 0;
    }
    return pos_store_meta_put(ob->st, txn, META_DROPPED, ob->w.dropped + dropped);
}

static void apply_drops(pos_outbox_t *ob, uint64_t dropped, uint64_t freed)
{
    ob->w.entries -= dropped;
    ob->w.bytes -= freed;
    ob->w.dropped += dropped;
}

/* ---- the writes, as the writer runs them ------------------------------------ */

typedef enum outbox_op_kind {
    OOP_APPEND, /* e under id */
    OOP_ACK,    /* id deleted */
} outbox_op_kind_t;

struct pos_outbox_op {
    pos_store_op_t op;
    pos_outbox_t *ob;
    outbox_op_kind_t kind;
    uint64_t id;
    pos_outbox_entry_t e; /* APPEND: channel and payload point into data */
    pos_outbox_cb cb;
    void *ctx;
    unsigned drop_rounds;      /* map-full recoveries so far */
    pos_outbox_stats_t w;      /* the writer's counters once this write is applied */
    uint64_t w_seq;            /* their age: later writes' counters replace them */
    pos_outbox_stats_t before; /* and before it (for an undo) */
    pos_outbox_op_t *pending_next;
    bool durable;         /* APPEND: done (its log record flushed), maybe not yet applied */
    unsigned char data[]; /* APPEND: channel then payload */
};

/* Drops for the bounds if needed, then appends under o->id. */
static int append_apply(pos_outbox_op_t *o, MDB_txn *txn)
{
    pos_outbox_t *ob = o->ob;
    const pos_outbox_entry_t *e = &o->e;
    uint64_t dropped = 0, freed = 0;
    int rc = 0;
    size_t size = e->channel_len + e->payload_len;
    if (over_bounds(&ob->cfg, ob->w.entries + 1, ob->w.bytes + size)) {
        rc = drop_oldest(ob, txn, 1, size, 0, &dropped, &freed);
        if (rc == -ENOSPC) {
            POS_ERR("outbox",
                    "full of payment outcomes (%" PRIu64 " entries, %" PRIu64
                    " bytes): a %s entry could not be queued",
                    ob->w.entries, ob->w.bytes, e->is_payment ? "payment" : "non-payment");
            return -EDQUOT; /* our bounds, not the map: the writer must not evict for it */
        }
    }
    unsigned char kb[8];
    pos_endian_put_be64(kb, o->id);
    MDB_val k = {sizeof(kb), kb};
    MDB_val v = {POS_OUTBOX_HDR_SIZE + size, NULL};
    if (rc == 0) {
        /* Ids only grow, so MDB_APPEND holds and keeps the pages full. */
        rc = pos_store_errno(
            pos_store_put(ob->st, txn, POS_DB_OUTBOX, &k, &v, MDB_APPEND | MDB_RESERVE));
    }
    if (rc == 0) {
        unsigned char *p = v.mv_data;
        memset(p, 0, POS_OUTBOX_HDR_SIZE);
        p[0] = REC_VERSION;
        p[1] = (unsigned char)e->kind;
        p[2] = (unsigned char)((e->is_payment ? FLAG_PAYMENT : 0) | (e->sign ? FLAG_SIGN : 0));
        pos_endian_put_le32(p + 4, (uint32_t)e->channel_len);
        pos_endian_put_le32(p + 8, (uint32_t)e->payload_len);
        pos_endian_put_le64(p + 16, e->created_ms);
        memcpy(p + POS_OUTBOX_HDR_SIZE, e->channel, e->channel_len);
        if (e->payload_len != 0) {
            memcpy(p + POS_OUTBOX_HDR_SIZE + e->channel_len, e->payload, e->payload_len);
        }
        rc = pos_store_errno(pos_store_redo_put(ob->st, POS_DB_OUTBOX, &k, &v));
    }
    if (rc == 0) {
        rc = pos_store_meta_put(ob->st, txn, META_NEXT, o->id + 1);
    }
    if (rc == 0) {
        rc = write_drops(ob, txn, dropped);
    }
    if (rc != 0) {
        return rc;
    }
    apply_drops(ob, dropped, freed);
    ob->w.entries++;
    ob->w.bytes += size;
    ob->w.payment += e->is_payment;
    ob->w.next_id = o->id + 1;
    return 0;
}

static int ack_apply(pos_outbox_op_t *o, MDB_txn *txn)
{
    pos_outbox_t *ob = o->ob;
    MDB_dbi dbi = ob->st->dbi[POS_DB_OUTBOX];
    unsigned char kb[8];
    pos_outbox_entry_t e;
    pos_endian_put_be64(kb, o->id);
    MDB_val k = {sizeof(kb), kb};
    MDB_val v;
    int rc = pos_store_errno(mdb_get(txn, dbi, &k, &v));
    if (rc == 0) {
        rc = pos_outbox_record_parse(v.mv_data, v.mv_size, &e) == 0 ? 0 : -EIO;
    }
    if (rc == 0) {
        rc = pos_store_errno(pos_store_del(ob->st, txn, POS_DB_OUTBOX, &k));
    }
    if (rc == 0) {
        ob->w.entries--;
        ob->w.bytes -= e.channel_len + e.payload_len;
        ob->w.payment -= e.is_payment;
    }
    return rc;
}

static int outbox_apply(pos_store_op_t *op, MDB_txn *txn)
{
    pos_outbox_op_t *o = op->ctx;
    int rc;

    o->before = o->ob->w;
    rc = o->kind == OOP_APPEND ? append_apply(o, txn) : ack_apply(o, txn);
    if (rc != 0) {
        o->ob->w = o->before; /* the nested transaction undid the store's side */
    }
    o->w = o->ob->w;
    o->w_seq = ++o->ob->w_seq;
    return rc;
}

static void outbox_undo(pos_store_op_t *op)
{
    pos_outbox_op_t *o = op->ctx;

    o->ob->w = o->before;
}

typedef struct drop_args {
    pos_outbox_t *ob;
    size_t count;     /* entries to drop, at least */
    uint64_t dropped; /* entries dropped */
    uint64_t freed;   /* their bytes */
} drop_args_t;

static int drop_txn(void *ctx, MDB_txn *txn)
{
    drop_args_t *a = ctx;
    pos_outbox_t unbounded = *a->ob;
    unbounded.cfg.max_entries = 0;
    unbounded.cfg.max_bytes = 0;
    int rc = drop_oldest(&unbounded, txn, 0, 0, a->count, &a->dropped, &a->freed);
    if (rc == -ENOSPC && a->dropped > 0) {
        rc = 0; /* fewer than asked, but some */
    }
    if (rc == 0) {
        rc = write_drops(a->ob, txn, a->dropped);
    }
    return rc;
}

/* Map full: drops a few of the oldest non-payment entries in their own transaction. */
static int drop_for_map_once(pos_outbox_t *ob, size_t count)
{
    drop_args_t a = {ob, count, 0, 0};
    int rc = pos_store_txn_run(ob->st, 0, drop_txn, &a);
    if (rc == 0) {
        apply_drops(ob, a.dropped, a.freed);
    }
    return rc;
}

static int drop_for_map(pos_outbox_t *ob, size_t count)
{
    int rc = drop_for_map_once(ob, count);
    if (rc == -ENOSPC && ob->w.entries > ob->w.payment && pos_store_reserve_begin(ob->st) == 0) {
        /* Even the delete needs pages: borrow the reserve for it. */
        rc = drop_for_map_once(ob, count);
        pos_store_reserve_end(ob->st);
    }
    return rc;
}

/*
 * The map or the disk is full (the bounds report -EDQUOT, never retried):
 * the cache gives up space first, then the oldest non-payment entries go,
 * more each round (a delete needs free pages too, so leave some slack).
 */
static int outbox_recover(pos_store_op_t *op)
{
    pos_outbox_op_t *o = op->ctx;
    pos_outbox_t *ob = o->ob;
    size_t size = o->e.channel_len + o->e.payload_len;

    if (o->drop_rounds == 0 && pos_store_reclaim(ob->st, POS_OUTBOX_HDR_SIZE + size) > 0) {
        o->drop_rounds++;
        return 1;
    }
    int rc = drop_for_map(ob, (size_t)16 << (o->drop_rounds < 6 ? o->drop_rounds : 6));
    o->drop_rounds++;
    if (rc != 0) {
        POS_ERR("outbox",
                "store full (map or disk) and dropping older non-payment entries did not make "
                "room: a %s entry could not be queued",
                o->e.is_payment ? "payment" : "non-payment");
        return 0;
    }
    (void)pos_store_settle(ob->st);
    return 1;
}

/* ---- on the loop ------------------------------------------------------------- */

static void outbox_done(pos_store_op_t *op)
{
    pos_outbox_op_t *o = op->ctx;
    int status = op->status == -EDQUOT ? -ENOSPC : op->status;

    if (status != 0 && o->kind == OOP_APPEND && o->id + 1 == o->ob->next_id) {
        o->ob->next_id = o->id; /* nothing took an id since: a refused append takes none */
    }
    o->durable = status == 0 && o->kind == OOP_APPEND;
    if (o->cb != NULL) {
        o->cb(o->ctx, status, &o->e);
    }
}

static void outbox_applied(pos_store_op_t *op)
{
    pos_outbox_op_t *o = op->ctx;
    pos_outbox_t *ob = o->ob;

    /* Oldest first, and applied in order: o is nearly always the first. */
    pos_outbox_op_t *prev = NULL;
    for (pos_outbox_op_t **pp = &ob->pending; *pp != NULL; prev = *pp, pp = &(*pp)->pending_next) {
        if (*pp == o) {
            *pp = o->pending_next;
            if (ob->pending_tail == o) {
                ob->pending_tail = prev;
            }
            if (o->kind == OOP_APPEND) {
                ob->queued.entries--;
                ob->queued.bytes -= o->e.channel_len + o->e.payload_len;
                ob->queued.payment -= o->e.is_payment;
            }
            break;
        }
    }
    /* The writer's counters as of this write, unless a later write's came
     * first (a write run at once while the writer closes). */
    if (o->w_seq > ob->stats_seq) {
        uint64_t next = ob->stats.next_id;
        ob->stats = o->w;
        ob->stats.next_id = next > o->w.next_id ? next : o->w.next_id;
        ob->stats_seq = o->w_seq;
    }
    free(o);
}

static pos_outbox_op_t *outbox_op_new(pos_outbox_t *ob, outbox_op_kind_t kind, size_t extra)
{
    pos_outbox_op_t *o = calloc(1, sizeof(*o) + extra);

    if (o != NULL) {
        o->ob = ob;
        o->kind = kind;
        o->op.apply = outbox_apply;
        o->op.recover = kind == OOP_APPEND ? outbox_recover : NULL;
        o->op.ordered = kind == OOP_APPEND; /* ids only grow: MDB_APPEND */
        o->op.undo = outbox_undo;
        o->op.done = outbox_done;
        o->op.applied = outbox_applied;
        o->op.ctx = o;
    }
    return o;
}

/* Queues o (or runs it now without a writer: its callback has then run).
 * An ack may wait for company: lost in a crash, the entry is sent again. */
static int outbox_submit(pos_outbox_t *ob, pos_outbox_op_t *o)
{
    if (ob->writer == NULL) {
        (void)pos_store_op_run_now(ob->st, &o->op); /* o is freed by now */
        return 0;
    }
    o->pending_next = NULL;
    if (ob->pending_tail != NULL) {
        ob->pending_tail->pending_next = o;
    } else {
        ob->pending = o;
    }
    ob->pending_tail = o;
    if (o->kind == OOP_APPEND) {
        ob->queued.entries++;
        ob->queued.bytes += o->e.channel_len + o->e.payload_len;
        ob->queued.payment += o->e.is_payment;
    }
    pos_store_writer_submit_ex(ob->writer, &o->op, o->kind == OOP_ACK);
    return 0;
}

int pos_outbox_append_async(pos_outbox_t *ob, const pos_outbox_entry_t *e, uint64_t *id,
                            pos_outbox_cb cb, void *ctx)
{
    if (ob == NULL || ob->st == NULL || e == NULL || (unsigned)e->kind >= POS_OUTBOX_KIND_COUNT ||
        e->channel == NULL || e->channel_len == 0 || (e->payload == NULL && e->payload_len != 0)) {
        return -EINVAL;
    }
    size_t size = e->channel_len + e->payload_len;
    if (e->channel_len > POS_OUTBOX_CHANNEL_MAX || e->payload_len > POS_OUTBOX_PAYLOAD_MAX ||
        (ob->cfg.max_bytes != 0 && size > ob->cfg.max_bytes)) {
        return -EMSGSIZE;
    }
    pos_outbox_op_t *o = outbox_op_new(ob, OOP_APPEND, size);
    if (o == NULL) {
        return -ENOMEM;
    }
    o->e = *e;
    memcpy(o->data, e->channel, e->channel_len);
    if (e->payload_len != 0) {
        memcpy(o->data + e->channel_len, e->payload, e->payload_len);
    }
    o->e.channel = (const char *)o->data;
    o->e.payload = o->data + e->channel_len;
    /* The id is the caller's at once: ids only grow, in submission order. */
    o->id = ob->next_id++;
    o->e.id = o->id;
    o->op.weight = POS_OUTBOX_HDR_SIZE + size + 64u;
    o->cb = cb;
    o->ctx = ctx;
    if (id != NULL) {
        *id = o->id;
    }
    return outbox_submit(ob, o);
}

static void outbox_capture(void *ctx, int status, const pos_outbox_entry_t *e)
{
    (void)e;
    *(int *)ctx = status;
}

int pos_outbox_append(pos_outbox_t *ob, const pos_outbox_entry_t *e, uint64_t *id)
{
    int status = -EIO;

    if (id == NULL) {
        return -EINVAL;
    }
    if (ob != NULL && ob->writer != NULL) {
        return -EDEADLK; /* the loop never waits on the disk: pos_outbox_append_async() */
    }
    int rc = pos_outbox_append_async(ob, e, id, outbox_capture, &status);
    return rc != 0 ? rc : status;
}

/* ---- peek / ack ------------------------------------------------------- */

void pos_outbox_batch_free(pos_outbox_batch_t *batch)
{
    if (batch == NULL) {
        return;
    }
    free(batch->entries);
    free(batch->buf);
    free(batch->extra);
    memset(batch, 0, sizeof(*batch));
}

/* pos_outbox_peek() reads in two passes: how many and how many bytes, then the copy. */
typedef struct peek_walk {
    pos_outbox_t *ob;
    uint64_t from; /* the first id wanted */
    pos_outbox_batch_t *batch;
    size_t max;   /* entries at most */
    size_t n;     /* pass 1: entries counted; pass 2: entries copied */
    size_t bytes; /* pass 1: their bytes; pass 2: bytes copied */
} peek_walk_t;

static int peek_count(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    peek_walk_t *w = ctx;

    (void)cur;
    (void)k;
    w->n++;
    w->bytes += v->mv_size;
    return w->n < w->max ? 0 : 1;
}

static int peek_copy(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    peek_walk_t *w = ctx;
    pos_outbox_batch_t *batch = w->batch;

    (void)cur;
    if (w->n == w->max) {
        return 1;
    }
    memcpy(batch->buf + w->bytes, v->mv_data, v->mv_size);
    if (k->mv_size != 8 ||
        pos_outbox_record_parse(batch->buf + w->bytes, v->mv_size, &batch->entries[w->n]) != 0) {
        return -EIO;
    }
    batch->entries[w->n].id = pos_endian_get_be64(k->mv_data);
    w->bytes += v->mv_size;
    w->n++;
    return 0;
}

static int peek_txn(void *ctx, MDB_txn *txn)
{
    peek_walk_t *w = ctx;
    unsigned char from[8];
    pos_endian_put_be64(from, w->from);
    int rc = pos_store_each_from(w->ob->st, txn, POS_DB_OUTBOX, from, sizeof(from), peek_count, w);
    if (rc < 0) {
        return rc;
    }
    if (w->n == 0) {
        return 0;
    }
    w->batch->entries = calloc(w->n, sizeof(*w->batch->entries));
    w->batch->buf = malloc(w->bytes);
    if (w->batch->entries == NULL || w->batch->buf == NULL) {
        return -ENOMEM;
    }
    w->max = w->n;
    w->n = 0;
    w->bytes = 0;
    rc = pos_store_each_from(w->ob->st, txn, POS_DB_OUTBOX, from, sizeof(from), peek_copy, w);
    return rc < 0 ? rc : 0;
}

/* A durable append LMDB has not committed yet, from id from on and past after. */
static bool durable_since(const pos_outbox_op_t *o, uint64_t from, uint64_t after)
{
    return o->durable && o->id >= from && o->id > after;
}

/*
 * Adds to the n entries LMDB gave the appends that are durable and not
 * yet committed to LMDB (through the store's log, done() comes a commit
 * before applied()), oldest first, up to max in all: they may be sent.
 */
static int peek_durable(const pos_outbox_t *ob, uint64_t from, size_t max,
                        pos_outbox_batch_t *batch, size_t *n)
{
    uint64_t after = *n > 0 ? batch->entries[*n - 1].id : 0;
    size_t more = 0, bytes = 0;

    for (const pos_outbox_op_t *o = ob->pending; o != NULL && *n + more < max;
         o = o->pending_next) {
        if (durable_since(o, from, after)) {
            more++;
            bytes += o->e.channel_len + o->e.payload_len;
        }
    }
    if (more == 0) {
        return 0;
    }
    pos_outbox_entry_t *entries = realloc(batch->entries, (*n + more) * sizeof(*entries));
    if (entries == NULL) {
        return -ENOMEM;
    }
    batch->entries = entries;
    batch->extra = malloc(bytes != 0 ? bytes : 1);
    if (batch->extra == NULL) {
        return -ENOMEM;
    }
    unsigned char *p = batch->extra;
    for (const pos_outbox_op_t *o = ob->pending; o != NULL && more > 0; o = o->pending_next) {
        if (!durable_since(o, from, after)) {
            continue;
        }
        pos_outbox_entry_t *e = &batch->entries[(*n)++];
        *e = o->e;
        e->id = o->id;
        memcpy(p, o->e.channel, o->e.channel_len);
        e->channel = (const char *)p;
        p += o->e.channel_len;
        if (o->e.payload_len != 0) {
            memcpy(p, o->e.payload, o->e.payload_len);
        }
        e->payload = p;
        p += o->e.payload_len;
        more--;
    }
    return 0;
}

int pos_outbox_peek(pos_outbox_t *ob, size_t max, pos_outbox_batch_t *batch)
{
    return pos_outbox_peek_from(ob, 0, max, batch);
}

int pos_outbox_peek_from(pos_outbox_t *ob, uint64_t from, size_t max, pos_outbox_batch_t *batch)
{
    if (ob == NULL || ob->st == NULL || batch == NULL) {
        return -EINVAL;
    }
    memset(batch, 0, sizeof(*batch));
    if (max == 0) {
        return 0;
    }
    peek_walk_t w = {ob, from, batch, max, 0, 0};
    int rc = pos_store_txn_run(ob->st, MDB_RDONLY, peek_txn, &w);
    if (rc == 0) {
        rc = peek_durable(ob, from, max, batch, &w.n);
    }
    if (rc != 0) {
        pos_outbox_batch_free(batch);
        return rc;
    }
    /* An entry whose ack is queued is as good as gone. */
    size_t kept = 0;
    for (size_t i = 0; i < w.n; i++) {
        bool acked = false;
        for (const pos_outbox_op_t *o = ob->pending; o != NULL && !acked; o = o->pending_next) {
            acked = o->kind == OOP_ACK && o->id == batch->entries[i].id;
        }
        if (!acked) {
            batch->entries[kept++] = batch->entries[i];
        }
    }
    batch->count = kept;
    return (int)kept;
}

int pos_outbox_ack(pos_outbox_t *ob, uint64_t id)
{
    int status = 0;

    if (ob == NULL || ob->st == NULL) {
        return -EINVAL;
    }
    pos_outbox_op_t *o = outbox_op_new(ob, OOP_ACK, 0);
    if (o == NULL) {
        return -ENOMEM;
    }
    o->id = id;
    if (ob->writer == NULL) {
        o->cb = outbox_capture; /* without a writer the caller learns the outcome */
        o->ctx = &status;
    }
    int rc = outbox_submit(ob, o);
    return rc != 0 ? rc : status;
}

void pos_outbox_stats(const pos_outbox_t *ob, pos_outbox_stats_t *out)
{
    *out = ob->stats;
    /* Queued appends count as held: they are, once durable. */
    out->entries += ob->queued.entries;
    out->bytes += ob->queued.bytes;
    out->payment += ob->queued.payment;
    out->next_id = ob->next_id;
}
