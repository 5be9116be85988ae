#include "agent/payment/journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/clock.h"
#include "platform/endian.h"
#include "platform/log.h"
#include "platform/mem.h"

/*
 * Record layout (little-endian):
 *   0 version (1)  1 state  2 receipt_printed  3 currency digits
 *   4 currency numeric (u16)  6 currency alpha (3 bytes, zeros when none)
 *   9 reserved  10 seq (u64)  18 amount_minor (i64 as u64)
 *   26 five strings, each a length byte then the bytes: transaction_id,
 *      auth_code, masked_pan, card_brand, reason.
 * Explicit encoding, not the struct's bytes: the layout of
 * pos_payment_record_t may change between versions or ABIs, the journal
 * must still read.
 *
 * Seen ids (database "seen"), by when they were first seen:
 *   'I' + id -> be64(seq) be64(first seen, epoch ms)
 *   'T' + be64(seq) -> be64(first seen, epoch ms) id
 * The 'T' records in key order are the ids from oldest to newest, so the
 * ones past the window are forgotten from the front. Stores written before
 * the window existed hold 'i' + id -> be64(seq) and 'o' + be64(seq) -> id:
 * pos_journal_open() converts them, counting them as seen at that moment
 * (they are then kept a whole window, never less).
 */
#define REC_VERSION 1u
#define REC_FIXED   26u
#define PRUNE_SLACK 64u /* finished records allowed over max_final before a prune */
#define SEEN_PRUNE_STEP 256u /* expired ids forgotten per write at most */

/* ---- pure parts ------------------------------------------------------- */

static int put_str(unsigned char *out, size_t out_len, size_t *off, const char *s, size_t cap,
                   size_t max)
{
    size_t n = strnlen(s, cap);
    if (n == cap || n > max || *off + 1 + n > out_len) {
        return -EINVAL;
    }
    out[(*off)++] = (unsigned char)n;
    memcpy(out + *off, s, n);
    *off += n;
    return 0;
}

int pos_journal_encode(const pos_payment_record_t *rec, uint64_t seq, unsigned char *out,
                       size_t out_len)
{
    if (rec == NULL || out == NULL || out_len < REC_FIXED ||
        (unsigned)rec->state >= POS_PAY_STATE_COUNT || rec->state == POS_PAY_IDLE ||
        !pos_msg_id_valid(rec->transaction_id)) {
        return -EINVAL;
    }
    memset(out, 0, REC_FIXED);
    out[0] = REC_VERSION;
    out[1] = (unsigned char)rec->state;
    out[2] = rec->receipt_printed ? 1 : 0;
    out[3] = rec->currency.digits;
    pos_endian_put_le16(out + 4, rec->currency.numeric);
    memcpy(out + 6, rec->currency.alpha, strnlen(rec->currency.alpha, 3));
    pos_endian_put_le64(out + 10, seq);
    pos_endian_put_le64(out + 18, (uint64_t)rec->amount_minor);
    size_t off = REC_FIXED;
    int rc = put_str(out, out_len, &off, rec->transaction_id, sizeof(rec->transaction_id),
                     POS_MSG_ID_MAX);
    if (rc == 0) {
        rc = put_str(out, out_len, &off, rec->auth_code, sizeof(rec->auth_code), POS_MSG_AUTH_MAX);
    }
    if (rc == 0) {
        rc = put_str(out, out_len, &off, rec->masked_pan, sizeof(rec->masked_pan), POS_MSG_PAN_MAX);
    }
    if (rc == 0) {
        rc = put_str(out, out_len, &off, rec->card_brand, sizeof(rec->card_brand),
                     POS_MSG_BRAND_MAX);
    }
    if (rc == 0) {
        rc = put_str(out, out_len, &off, rec->reason, sizeof(rec->reason), POS_MSG_REASON_MAX);
    }
    return rc == 0 ? (int)off : rc;
}

static int get_str(const unsigned char *in, size_t len, size_t *off, char *dst, size_t max)
{
    if (*off >= len) {
        return -EBADMSG;
    }
    size_t n = in[(*off)++];
    if (n > max || *off + n > len || memchr(in + *off, '\0', n) != NULL) {
        return -EBADMSG;
    }
    memcpy(dst, in + *off, n);
    dst[n] = '\0';
    *off += n;
    return 0;
}

int pos_journal_decode(const void *buf, size_t len, pos_payment_record_t *rec, uint64_t *seq)
{
    const unsigned char *in = buf;
    if (buf == NULL || rec == NULL || len < REC_FIXED || in[0] != REC_VERSION ||
        in[1] >= POS_PAY_STATE_COUNT || in[1] == POS_PAY_IDLE || in[2] > 1) {
        return -EBADMSG;
    }
    memset(rec, 0, sizeof(*rec));
    rec->state = (pos_payment_state_t)in[1];
    rec->receipt_printed = in[2] != 0;
    rec->currency.digits = in[3];
    rec->currency.numeric = pos_endian_get_le16(in + 4);
    for (int i = 0; i < 3; i++) {
        if (in[6 + i] != 0 && (in[6 + i] < 'A' || in[6 + i] > 'Z')) {
            return -EBADMSG;
        }
        rec->currency.alpha[i] = (char)in[6 + i];
    }
    if (seq != NULL) {
        *seq = pos_endian_get_le64(in + 10);
    }
    rec->amount_minor = (int64_t)pos_endian_get_le64(in + 18);
    size_t off = REC_FIXED;
    int rc = get_str(in, len, &off, rec->transaction_id, POS_MSG_ID_MAX);
    if (rc == 0) {
        rc = get_str(in, len, &off, rec->auth_code, POS_MSG_AUTH_MAX);
    }
    if (rc == 0) {
        rc = get_str(in, len, &off, rec->masked_pan, POS_MSG_PAN_MAX);
    }
    if (rc == 0) {
        rc = get_str(in, len, &off, rec->card_brand, POS_MSG_BRAND_MAX);
    }
    if (rc == 0) {
        rc = get_str(in, len, &off, rec->reason, POS_MSG_REASON_MAX);
    }
    if (rc == 0 && (off != len || !pos_msg_id_valid(rec->transaction_id))) {
        rc = -EBADMSG;
    }
    return rc;
}

/* ---- configuration ----------------------------------------------------- */

static size_t max_final(const pos_journal_t *j)
{
    return j->cfg.max_final != 0 ? j->cfg.max_final : POS_JOURNAL_DEFAULT_FINAL;
}

static uint64_t max_seen(const pos_journal_t *j)
{
    return j->cfg.max_seen != 0 ? j->cfg.max_seen : POS_JOURNAL_DEFAULT_SEEN;
}

static uint64_t window_ms(const pos_journal_t *j)
{
    return j->cfg.window_ms != 0 ? j->cfg.window_ms : POS_JOURNAL_DEFAULT_WINDOW_MS;
}

static uint64_t max_cancels(const pos_journal_t *j)
{
    return j->cfg.max_cancels != 0 ? j->cfg.max_cancels : POS_JOURNAL_DEFAULT_CANCELS;
}

/*
 * The state machine's record of a cancel of an id never requested here
 * (the only record without an amount): no payment was started, so its id
 * takes no room in the seen set, and its records have a bound of their own.
 */
static bool rec_early_cancel(const pos_payment_record_t *rec)
{
    return rec->state == POS_PAY_CANCELLED && rec->amount_minor == 0;
}

static uint64_t journal_now(const pos_journal_t *j)
{
    return j->cfg.now_ms != NULL ? j->cfg.now_ms() : pos_clock_wall_ms();
}

/* ---- the seen database's keys --------------------------------------------- */

enum { SEEN_ID = 'I', SEEN_TIME = 'T', OLD_ID = 'i', OLD_ORDER = 'o' };

/* 'I' + id, built in buf. */
static MDB_val seen_id_key(unsigned char buf[1 + POS_MSG_ID_MAX], const void *id, size_t n)
{
    buf[0] = SEEN_ID;
    memcpy(buf + 1, id, n);
    return (MDB_val){1 + n, buf};
}

/* 'T' + be64(seq), built in buf. */
static MDB_val seen_time_key(unsigned char buf[9], uint64_t seq)
{
    buf[0] = SEEN_TIME;
    pos_endian_put_be64(buf + 1, seq);
    return (MDB_val){9, buf};
}

/* Judges and counts one record of journal or seen (pos_store_check_fn). */
static int journal_check(void *census, pos_store_db_t db, const MDB_val *k, const MDB_val *v)
{
    pos_journal_census_t *cs = census;
    const unsigned char *kp = k->mv_data;

    if (db == POS_DB_JOURNAL) {
        pos_payment_record_t r;
        uint64_t seq;
        bool ok = pos_journal_decode(v->mv_data, v->mv_size, &r, &seq) == 0;
        if (cs != NULL) {
            cs->records++;
            cs->cancels += ok && rec_early_cancel(&r);
            if (ok && seq >= cs->rec_next) {
                cs->rec_next = seq + 1;
            }
        }
        /* Keyed by its own transaction id. */
        if (!ok || strlen(r.transaction_id) != k->mv_size ||
            memcmp(r.transaction_id, k->mv_data, k->mv_size) != 0) {
            return -EBADMSG;
        }
        return 0;
    }
    if (k->mv_size == 9 && kp[0] == SEEN_TIME) {
        if (v->mv_size <= 8 || v->mv_size > 8 + POS_MSG_ID_MAX) {
            return -EBADMSG;
        }
        if (cs != NULL) {
            uint64_t seq = pos_endian_get_be64(kp + 1);
            if (cs->seen_first == 0) {
                cs->seen_first = seq;
                cs->seen_oldest_ms = pos_endian_get_be64(v->mv_data);
            }
            cs->seen_next = seq + 1;
        }
        return 0;
    }
    if (k->mv_size > 1 && kp[0] == SEEN_ID) {
        if (cs != NULL) {
            cs->seen_ids++;
        }
        return v->mv_size != 16 ? -EBADMSG : 0;
    }
    /* The layout before the window (converted at open). */
    if (k->mv_size == 9 && kp[0] == OLD_ORDER) {
        if (cs != NULL) {
            cs->old_seen++;
        }
        return v->mv_size == 0 ? -EBADMSG : 0;
    }
    if (k->mv_size > 1 && kp[0] == OLD_ID) {
        return v->mv_size != 8 ? -EBADMSG : 0;
    }
    return -EBADMSG;
}

void pos_journal_tenant(pos_store_tenant_t *t, pos_journal_census_t *census)
{
    *t = (pos_store_tenant_t){POS_STORE_DB_BIT(POS_DB_JOURNAL) | POS_STORE_DB_BIT(POS_DB_SEEN),
                              journal_check, census, sizeof(*census)};
}

/* ---- the writes, as the writer runs them ------------------------------------ */

typedef enum journal_op_kind {
    JOP_PUT,    /* rec as the transaction's last record; its id seen */
    JOP_SEEN,   /* only the id seen */
    JOP_DELETE, /* the transaction's record deleted */
    JOP_PRUNE,  /* ids past the window forgotten */
} journal_op_kind_t;

struct pos_journal_op {
    pos_store_op_t op;
    pos_journal_t *j;
    journal_op_kind_t kind;
    pos_payment_record_t rec; /* PUT: the record; SEEN, DELETE: rec.transaction_id */
    uint64_t now_ms;          /* when it was submitted: the id's first-seen time */
    pos_journal_cb cb;
    void *ctx;
    /* The journal's counters once this write is applied, and before it. */
    uint64_t records, seen, oldest_ms;
    uint64_t w_seq; /* their age: later writes' counters replace them */
    pos_journal_counters_t before;
    uint64_t forgotten; /* ids past the window forgotten by this write */
    pos_journal_op_t *pending_next;
};

/* The writer's view of the counters: changed only by the writes themselves. */
static void counters_out(const pos_journal_t *j, pos_journal_op_t *o)
{
    o->records = j->w.records;
    o->seen = j->w.seen;
    o->oldest_ms = j->w.oldest_ms;
}

/* Forgets the oldest id (which must be past the window when "expired_only").
 * Returns 1 when one went, 0 when none may, or a negative errno. */
static int seen_forget_oldest(pos_journal_t *j, MDB_txn *txn, uint64_t now_ms, bool expired_only)
{
    MDB_dbi dbi = j->st->dbi[POS_DB_SEEN];
    unsigned char tk[9] = {SEEN_TIME}, ik[1 + POS_MSG_ID_MAX];
    MDB_val key = {9, tk}, val;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    if (rc != 0) {
        return pos_store_errno(rc);
    }
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND || (rc == 0 && ((unsigned char *)key.mv_data)[0] != SEEN_TIME)) {
        mdb_cursor_close(cur);
        j->w.oldest_ms = 0;
        return 0;
    }
    if (rc != 0 || key.mv_size != 9 || val.mv_size <= 8 || val.mv_size > 8 + POS_MSG_ID_MAX) {
        mdb_cursor_close(cur);
        return rc != 0 ? pos_store_errno(rc) : -EIO;
    }
    uint64_t first = pos_endian_get_be64(val.mv_data);
    if (expired_only && first + window_ms(j) > now_ms) {
        mdb_cursor_close(cur);
        j->w.oldest_ms = first;
        return 0; /* inside the window: never forgotten */
    }
    MDB_val idk = seen_id_key(ik, (const char *)val.mv_data + 8, val.mv_size - 8);
    rc = pos_store_cursor_del(j->st, cur, POS_DB_SEEN);
    mdb_cursor_close(cur);
    if (rc == 0) {
        rc = pos_store_del(j->st, txn, POS_DB_SEEN, &idk);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (rc != 0) {
        return pos_store_errno(rc);
    }
    j->w.seen--;
    return 1;
}

/* Forgets ids past the window, at most "step" of them; *n counts them. */
static int seen_prune(pos_journal_t *j, MDB_txn *txn, uint64_t now_ms, size_t step, uint64_t *n)
{
    for (size_t i = 0; i < step; i++) {
        int rc = seen_forget_oldest(j, txn, now_ms, true);
        if (rc <= 0) {
            return rc;
        }
        (*n)++;
    }
    /* Where the oldest now stands (for pos_journal_seen_room()). */
    return seen_forget_oldest(j, txn, 0, true) < 0 ? -EIO : 0;
}

/*
 * Remembers id as seen at now_ms (a known id keeps its first time). An id
 * past the window is forgotten first when room is short; one inside it
 * never is: then -EOVERFLOW (nothing written).
 */
static int seen_add(pos_journal_t *j, MDB_txn *txn, const char *id, uint64_t now_ms, uint64_t *n)
{
    MDB_dbi dbi = j->st->dbi[POS_DB_SEEN];
    unsigned char ik[1 + POS_MSG_ID_MAX], tk[9], tv[8 + POS_MSG_ID_MAX], iv[16];
    size_t len = strlen(id);
    MDB_val k = seen_id_key(ik, id, len), v;
    int rc = mdb_get(txn, dbi, &k, &v);

    if (rc == 0) {
        return 0; /* known: keeps its place and its time */
    }
    if (rc != MDB_NOTFOUND) {
        return pos_store_errno(rc);
    }
    rc = seen_prune(j, txn, now_ms, SEEN_PRUNE_STEP, n);
    if (rc != 0) {
        return rc;
    }
    if (j->w.seen >= max_seen(j)) {
        return -EOVERFLOW; /* every id remembered is inside the window */
    }
    uint64_t seq = j->w.seen_next;
    pos_endian_put_be64(iv, seq);
    pos_endian_put_be64(iv + 8, now_ms);
    v = (MDB_val){16, iv};
    rc = pos_store_put(j->st, txn, POS_DB_SEEN, &k, &v, 0);
    if (rc == 0) {
        MDB_val tkey = seen_time_key(tk, seq);
        pos_endian_put_be64(tv, now_ms);
        memcpy(tv + 8, id, len);
        MDB_val tval = {8 + len, tv};
        rc = pos_store_put(j->st, txn, POS_DB_SEEN, &tkey, &tval, 0);
    }
    if (rc != 0) {
        return pos_store_errno(rc);
    }
    if (j->w.seen == 0) {
        j->w.oldest_ms = now_ms;
    }
    j->w.seen_next++;
    j->w.seen++;
    return 0;
}

/* ---- records ------------------------------------------------------------ */

typedef struct listed {
    uint64_t seq;
    pos_payment_record_t rec;
} listed_t;

static int listed_cmp(const void *a, const void *b)
{
    const listed_t *la = a, *lb = b;
    return la->seq < lb->seq ? -1 : la->seq > lb->seq;
}

/* The records read_all() gathers. */
typedef struct gather {
    listed_t *v;
    size_t n, cap;
} gather_t;

static int gather_one(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *val)
{
    gather_t *g = ctx;

    (void)cur;
    (void)k;
    listed_t *nv = pos_mem_grow(g->v, g->n, &g->cap, sizeof(*g->v), 32);
    if (nv == NULL) {
        return -ENOMEM;
    }
    g->v = nv;
    if (pos_journal_decode(val->mv_data, val->mv_size, &g->v[g->n].rec, &g->v[g->n].seq) != 0) {
        return -EIO;
    }
    g->n++;
    return 0;
}

/* Reads every record of txn into a malloc'd array sorted by seq. */
static int read_all(pos_journal_t *j, MDB_txn *txn, listed_t **out, size_t *count)
{
    gather_t g = {NULL, 0, 0};
    *out = NULL;
    *count = 0;
    int rc = pos_store_each(j->st, txn, POS_DB_JOURNAL, gather_one, &g);
    if (rc != 0) {
        free(g.v);
        return rc;
    }
    if (g.n > 1) {
        qsort(g.v, g.n, sizeof(*g.v), listed_cmp);
    }
    *out = g.v;
    *count = g.n;
    return 0;
}

/*
 * Deletes the oldest finished records of payments beyond max_final, and
 * the oldest cancels of ids never requested beyond max_cancels: each kind
 * makes room only among its own, so cancels never push out a payment's.
 */
static int prune_records(pos_journal_t *j, MDB_txn *txn)
{
    listed_t *all;
    size_t n;
    int rc = read_all(j, txn, &all, &n);
    if (rc != 0) {
        return rc;
    }
    size_t finals = 0, cancels = 0;
    for (size_t i = 0; i < n; i++) {
        if (rec_early_cancel(&all[i].rec)) {
            cancels++;
        } else {
            finals += pos_payment_state_final(all[i].rec.state);
        }
    }
    for (size_t i = 0; i < n && (finals > max_final(j) || cancels > max_cancels(j)); i++) {
        bool early = rec_early_cancel(&all[i].rec);
        if (early ? cancels <= max_cancels(j)
                  : !pos_payment_state_final(all[i].rec.state) || finals <= max_final(j)) {
            continue; /* within its bound; a live payment's record is never dropped */
        }
        MDB_val k = {strlen(all[i].rec.transaction_id), all[i].rec.transaction_id};
        rc = pos_store_errno(pos_store_del(j->st, txn, POS_DB_JOURNAL, &k));
        if (rc != 0) {
            break;
        }
        if (early) {
            cancels--;
            j->w.cancels--;
        } else {
            finals--;
        }
        j->w.records--;
    }
    free(all);
    return rc;
}

/* Stores o->rec, remembers its id as seen (a payment's), and prunes if needed. */
static int put_apply(pos_journal_op_t *o, MDB_txn *txn)
{
    pos_journal_t *j = o->j;
    const pos_payment_record_t *rec = &o->rec;
    MDB_dbi dbi = j->st->dbi[POS_DB_JOURNAL];
    MDB_val k = {strlen(rec->transaction_id), (void *)rec->transaction_id};
    MDB_val v;
    uint64_t seq = j->w.rec_next;
    bool added = false, early = rec_early_cancel(rec);
    int rc = early ? 0 : seen_add(j, txn, rec->transaction_id, o->now_ms, &o->forgotten);

    if (rc != 0) {
        return rc;
    }
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0) {
        pos_payment_record_t old;
        /* A replacement keeps the transaction's place in the order. */
        if (pos_journal_decode(v.mv_data, v.mv_size, &old, &seq) != 0) {
            seq = j->w.rec_next++;
        } else if (rec_early_cancel(&old)) {
            j->w.cancels--; /* counted again below if it still is one */
        }
    } else if (rc == MDB_NOTFOUND) {
        j->w.rec_next++;
        added = true;
    } else {
        return pos_store_errno(rc);
    }
    unsigned char buf[POS_JOURNAL_RECORD_MAX];
    int len = pos_journal_encode(rec, seq, buf, sizeof(buf));
    if (len < 0) {
        return len;
    }
    MDB_val val = {(size_t)len, buf};
    rc = pos_store_errno(pos_store_put(j->st, txn, POS_DB_JOURNAL, &k, &val, 0));
    if (rc != 0) {
        return rc;
    }
    j->w.records += added;
    j->w.cancels += early;
    if (j->w.records - j->w.cancels > max_final(j) + PRUNE_SLACK ||
        j->w.cancels > max_cancels(j) + PRUNE_SLACK) {
        rc = prune_records(j, txn);
    }
    return rc;
}

static int delete_apply(pos_journal_op_t *o, MDB_txn *txn)
{
    MDB_val k = {strlen(o->rec.transaction_id), o->rec.transaction_id}, v;
    pos_payment_record_t old;
    /* Which count it leaves (a record that does not decode was counted as neither). */
    int rc = pos_store_errno(mdb_get(txn, o->j->st->dbi[POS_DB_JOURNAL], &k, &v));
    bool early = rc == 0 && pos_journal_decode(v.mv_data, v.mv_size, &old, NULL) == 0 &&
                 rec_early_cancel(&old);

    if (rc == 0) {
        rc = pos_store_errno(pos_store_del(o->j->st, txn, POS_DB_JOURNAL, &k));
    }
    if (rc == 0) {
        o->j->w.records--;
        o->j->w.cancels -= early;
    }
    return rc;
}

/*
 * The writer's entry. Its counters change only when the write commits:
 * they are copied first and put back when the write fails, since the
 * nested transaction undoes the store's side then.
 */
static int journal_apply(pos_store_op_t *op, MDB_txn *txn)
{
    pos_journal_op_t *o = op->ctx;
    pos_journal_t *j = o->j;
    int rc;

    o->before = j->w;
    switch (o->kind) {
    case JOP_PUT:
        rc = put_apply(o, txn);
        break;
    case JOP_SEEN:
        rc = seen_add(j, txn, o->rec.transaction_id, o->now_ms, &o->forgotten);
        break;
    case JOP_DELETE:
        rc = delete_apply(o, txn);
        break;
    case JOP_PRUNE:
        rc = seen_prune(j, txn, o->now_ms, SEEN_PRUNE_STEP * 4u, &o->forgotten);
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc != 0) {
        j->w = o->before;
        o->forgotten = 0;
    }
    counters_out(j, o);
    o->w_seq = ++j->w_seq;
    return rc;
}

static void journal_undo(pos_store_op_t *op)
{
    pos_journal_op_t *o = op->ctx;

    o->j->w = o->before;
}

/* ---- on the loop ------------------------------------------------------------- */

static void pending_remove(pos_journal_t *j, pos_journal_op_t *o)
{
    for (pos_journal_op_t **pp = &j->pending; *pp != NULL; pp = &(*pp)->pending_next) {
        if (*pp == o) {
            *pp = o->pending_next;
            break;
        }
    }
}

static void journal_done(pos_store_op_t *op)
{
    pos_journal_op_t *o = op->ctx;

    if (o->cb != NULL) {
        o->cb(o->ctx, op->status);
    }
}

static void journal_applied(pos_store_op_t *op)
{
    pos_journal_op_t *o = op->ctx;
    pos_journal_t *j = o->j;

    pending_remove(j, o);
    if (op->status == 0 && o->w_seq > j->counters_seq) {
        j->counters_seq = o->w_seq;
        j->records = o->records;
        j->seen = o->seen;
        j->oldest_ms = o->oldest_ms;
        if (o->forgotten > 0) {
            POS_DEBUG("journal", "%" PRIu64 " transaction ids past the window forgotten",
                      o->forgotten);
        }
    }
    memset(&o->rec, 0, sizeof(o->rec)); /* held a masked PAN and an auth code */
    free(o);
}

/* Queues (or, without a writer, runs) one write. Returns 0 (cb will be or
 * was called), or a negative errno with nothing queued and cb not called. */
static int journal_submit(pos_journal_t *j, journal_op_kind_t kind, const pos_payment_record_t *rec,
                          const char *id, pos_journal_cb cb, void *ctx)
{
    pos_journal_op_t *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        return -ENOMEM;
    }
    o->j = j;
    o->kind = kind;
    if (rec != NULL) {
        o->rec = *rec;
    } else if (id != NULL) {
        snprintf(o->rec.transaction_id, sizeof(o->rec.transaction_id), "%s", id);
    }
    o->now_ms = journal_now(j);
    o->cb = cb;
    o->ctx = ctx;
    o->op.apply = journal_apply;
    o->op.undo = journal_undo;
    o->op.done = journal_done;
    o->op.applied = journal_applied;
    o->op.ctx = o;
    if (j->writer == NULL) {
        (void)pos_store_op_run_now(j->st, &o->op); /* o is freed by now, cb has run */
        return 0;
    }
    /* Newest first: lookups find the latest write of an id first. */
    o->pending_next = j->pending;
    j->pending = o;
    pos_store_writer_submit(j->writer, &o->op);
    return 0;
}

/* ---- open: counts, and the layout before the window converted -------------------- */

typedef struct convert {
    pos_journal_t *j;
    uint64_t now_ms;
    uint64_t converted;
} convert_t;

/* Collects the old 'o' records (seq order) to rewrite them. */
typedef struct old_seen {
    uint64_t seq;
    char id[POS_MSG_ID_MAX + 1];
} old_seen_t;

typedef struct old_list {
    old_seen_t *v;
    size_t n, cap;
} old_list_t;

static int old_collect(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    old_list_t *l = ctx;
    const unsigned char *kp = k->mv_data;

    (void)cur;
    if (k->mv_size != 9 || kp[0] != OLD_ORDER || v->mv_size == 0 || v->mv_size > POS_MSG_ID_MAX) {
        return 0;
    }
    old_seen_t *nv = pos_mem_grow(l->v, l->n, &l->cap, sizeof(*l->v), 64);
    if (nv == NULL) {
        return -ENOMEM;
    }
    l->v = nv;
    l->v[l->n].seq = pos_endian_get_be64(kp + 1);
    memcpy(l->v[l->n].id, v->mv_data, v->mv_size);
    l->v[l->n].id[v->mv_size] = '\0';
    l->n++;
    return 0;
}

static int convert_txn(void *ctx, MDB_txn *txn)
{
    convert_t *c = ctx;
    pos_journal_t *j = c->j;
    old_list_t l = {NULL, 0, 0};
    int rc = pos_store_each(j->st, txn, POS_DB_SEEN, old_collect, &l);

    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        unsigned char ok[9] = {OLD_ORDER}, oi[1 + POS_MSG_ID_MAX];
        pos_endian_put_be64(ok + 1, l.v[i].seq);
        MDB_val okey = {9, ok};
        oi[0] = OLD_ID;
        memcpy(oi + 1, l.v[i].id, strlen(l.v[i].id));
        MDB_val ikey = {1 + strlen(l.v[i].id), oi};
        rc = pos_store_errno(pos_store_del(j->st, txn, POS_DB_SEEN, &okey));
        if (rc == 0) {
            int r2 = pos_store_del(j->st, txn, POS_DB_SEEN, &ikey);
            rc = r2 == MDB_NOTFOUND ? 0 : pos_store_errno(r2);
        }
        if (rc == 0) {
            uint64_t forgotten = 0;
            /* Seen "now": kept a whole window from the conversion on. */
            rc = seen_add(j, txn, l.v[i].id, c->now_ms, &forgotten);
            rc = rc == -EOVERFLOW ? 0 : rc; /* over the bound: the oldest stay old-only */
        }
        c->converted += rc == 0;
    }
    free(l.v);
    return rc;
}

int pos_journal_open(pos_journal_t *j, pos_store_t *st, const pos_journal_config_t *cfg)
{
    if (j == NULL || st == NULL || st->env == NULL) {
        return -EINVAL;
    }
    memset(j, 0, sizeof(*j));
    j->st = st;
    if (cfg != NULL) {
        j->cfg = *cfg;
    }
    pos_journal_census_t cs;
    pos_store_tenant_t t;
    pos_journal_tenant(&t, &cs);
    int rc = pos_store_count(st, &t);
    if (rc != 0) {
        j->st = NULL;
        return rc;
    }
    j->w.records = cs.records;
    j->w.cancels = cs.cancels;
    j->w.rec_next = cs.rec_next != 0 ? cs.rec_next : 1;
    j->w.seen = cs.seen_ids;
    j->w.seen_next = cs.seen_next != 0 ? cs.seen_next : 1;
    j->w.oldest_ms = cs.seen_oldest_ms;
    if (cs.old_seen > 0) {
        convert_t c = {j, journal_now(j), 0};
        pos_journal_counters_t saved = j->w;
        rc = pos_store_txn_run(st, 0, convert_txn, &c);
        if (rc != 0) {
            j->w = saved;
            POS_ERR("journal", "cannot convert %" PRIu64 " seen transaction ids: %s", cs.old_seen,
                    strerror(-rc));
            j->st = NULL;
            return rc;
        }
        POS_INFO("journal", "%" PRIu64 " seen transaction ids converted to the time window",
                 c.converted);
    }
    j->records = j->w.records;
    j->seen = j->w.seen;
    j->oldest_ms = j->w.oldest_ms;
    return 0;
}

void pos_journal_set_writer(pos_journal_t *j, pos_store_writer_t *w)
{
    j->writer = w;
}

void pos_journal_close(pos_journal_t *j)
{
    if (j != NULL) {
        j->st = NULL;
        j->writer = NULL;
    }
}

uint64_t pos_journal_seen_count(const pos_journal_t *j)
{
    return j->seen;
}

uint64_t pos_journal_count(const pos_journal_t *j)
{
    return j->records;
}

/* ---- writes ------------------------------------------------------------------- */

int pos_journal_put_async(pos_journal_t *j, const pos_payment_record_t *rec, pos_journal_cb cb,
                          void *ctx)
{
    unsigned char probe[POS_JOURNAL_RECORD_MAX];

    if (j == NULL || j->st == NULL || rec == NULL ||
        pos_journal_encode(rec, 0, probe, sizeof(probe)) < 0) {
        return -EINVAL;
    }
    return journal_submit(j, JOP_PUT, rec, NULL, cb, ctx);
}

static void journal_capture(void *ctx, int status)
{
    *(int *)ctx = status;
}

/* A write whose outcome the caller learns: at once without a writer. */
static int journal_write(pos_journal_t *j, journal_op_kind_t kind, const pos_payment_record_t *rec,
                         const char *id)
{
    int status = 0;
    int rc = journal_submit(j, kind, rec, id, j->writer == NULL ? journal_capture : NULL,
                            j->writer == NULL ? &status : NULL);
    return rc != 0 ? rc : status;
}

int pos_journal_put(pos_journal_t *j, const pos_payment_record_t *rec)
{
    unsigned char probe[POS_JOURNAL_RECORD_MAX];

    if (j != NULL && j->writer != NULL) {
        return -EDEADLK; /* the loop never waits on the disk: use pos_journal_put_async() */
    }
    if (j == NULL || j->st == NULL || rec == NULL ||
        pos_journal_encode(rec, 0, probe, sizeof(probe)) < 0) {
        return -EINVAL;
    }
    return journal_write(j, JOP_PUT, rec, NULL);
}

int pos_journal_seen_add(pos_journal_t *j, const char *transaction_id)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL ||
        !pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
    }
    return journal_write(j, JOP_SEEN, NULL, transaction_id);
}

int pos_journal_delete(pos_journal_t *j, const char *transaction_id)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL || !pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
    }
    return journal_write(j, JOP_DELETE, NULL, transaction_id);
}

int pos_journal_prune(pos_journal_t *j)
{
    if (j == NULL || j->st == NULL) {
        return -EINVAL;
    }
    return journal_write(j, JOP_PRUNE, NULL, NULL);
}

/* ---- reads --------------------------------------------------------------------- */

/* Whether a write not yet applied will remember its id as seen. */
static bool op_adds_seen(const pos_journal_op_t *o)
{
    return o->kind == JOP_SEEN || (o->kind == JOP_PUT && !rec_early_cancel(&o->rec));
}

/* The newest write of id not yet applied, or NULL. */
static const pos_journal_op_t *pending_find(const pos_journal_t *j, const char *id,
                                            bool records_only)
{
    for (const pos_journal_op_t *o = j->pending; o != NULL; o = o->pending_next) {
        if (o->kind == JOP_PRUNE || (records_only && o->kind == JOP_SEEN)) {
            continue;
        }
        if (strcmp(o->rec.transaction_id, id) == 0) {
            return o;
        }
    }
    return NULL;
}

int pos_journal_seen_at(pos_journal_t *j, const char *transaction_id, uint64_t *first_ms)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL || !pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
    }
    /* A write not yet applied already counts: it will be, in order. The
     * oldest such write gives the first-seen time. */
    const pos_journal_op_t *found = NULL;
    for (const pos_journal_op_t *o = j->pending; o != NULL; o = o->pending_next) {
        if (op_adds_seen(o) && strcmp(o->rec.transaction_id, transaction_id) == 0) {
            found = o;
        }
    }
    MDB_txn *txn;
    int rc = pos_store_txn_begin(j->st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }
    unsigned char ik[1 + POS_MSG_ID_MAX];
    MDB_val k = seen_id_key(ik, transaction_id, strlen(transaction_id));
    MDB_val v;
    rc = mdb_get(txn, j->st->dbi[POS_DB_SEEN], &k, &v);
    if (rc == 0 && v.mv_size == 16) {
        if (first_ms != NULL) {
            *first_ms = pos_endian_get_be64((const unsigned char *)v.mv_data + 8);
        }
        rc = 0;
    } else if (rc == MDB_NOTFOUND || rc == 0) {
        /* Not yet converted (never: the conversion runs at open) or absent. */
        rc = -ENOENT;
    } else {
        rc = pos_store_errno(rc);
    }
    pos_store_read_end(j->st, txn);
    if (rc == -ENOENT && found != NULL) {
        if (first_ms != NULL) {
            *first_ms = found->now_ms;
        }
        rc = 0;
    }
    return rc;
}

bool pos_journal_seen_has(pos_journal_t *j, const char *transaction_id)
{
    return pos_journal_seen_at(j, transaction_id, NULL) == 0;
}

bool pos_journal_seen_room(const pos_journal_t *j, uint64_t now_ms)
{
    uint64_t pending = 0;

    for (const pos_journal_op_t *o = j->pending; o != NULL; o = o->pending_next) {
        pending += op_adds_seen(o);
    }
    if (j->seen + pending < max_seen(j)) {
        return true;
    }
    /* Full: only an id past the window may make room. */
    return j->oldest_ms != 0 && j->oldest_ms + window_ms(j) <= now_ms;
}

int pos_journal_get(pos_journal_t *j, const char *transaction_id, pos_payment_record_t *rec)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL || rec == NULL ||
        !pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
    }
    const pos_journal_op_t *p = pending_find(j, transaction_id, true);
    if (p != NULL) {
        if (p->kind == JOP_DELETE) {
            return -ENOENT;
        }
        *rec = p->rec;
        return 0;
    }
    MDB_txn *txn;
    int rc = pos_store_txn_begin(j->st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }
    MDB_val k = {strlen(transaction_id), (void *)transaction_id};
    MDB_val v;
    rc = pos_store_errno(mdb_get(txn, j->st->dbi[POS_DB_JOURNAL], &k, &v));
    if (rc == 0) {
        rc = pos_journal_decode(v.mv_data, v.mv_size, rec, NULL) == 0 ? 0 : -EIO;
    }
    pos_store_read_end(j->st, txn);
    return rc;
}

int pos_journal_list(pos_journal_t *j, pos_journal_visit_fn visit, void *ctx)
{
    if (j == NULL || j->st == NULL || visit == NULL) {
        return -EINVAL;
    }
    MDB_txn *txn;
    int rc = pos_store_txn_begin(j->st, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }
    listed_t *all;
    size_t n;
    rc = read_all(j, txn, &all, &n);
    pos_store_read_end(j->st, txn);
    if (rc != 0) {
        return rc;
    }
    size_t visited = 0;
    for (size_t i = 0; i < n; i++) {
        visited++;
        if (visit(ctx, &all[i].rec) != 0) {
            break;
        }
    }
    if (all != NULL) {
        memset(all, 0, n * sizeof(*all)); /* held masked PANs and auth codes */
    }
    free(all);
    return (int)visited;
}
