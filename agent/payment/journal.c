#include "agent/payment/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/endian.h"
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
 * Seen ids (database "seen"): 'i' + id -> be64(seq) and 'o' + be64(seq) ->
 * id; the 'o' records in key order are the ids from oldest to newest.
 */
#define REC_VERSION 1u
#define REC_FIXED   26u
#define PRUNE_SLACK 64u /* finished records allowed over max_final before a prune */

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

/* ---- open ------------------------------------------------------------- */

static size_t max_final(const pos_journal_t *j)
{
    return j->cfg.max_final != 0 ? j->cfg.max_final : POS_JOURNAL_DEFAULT_FINAL;
}

static size_t max_seen(const pos_journal_t *j)
{
    return j->cfg.max_seen != 0 ? j->cfg.max_seen : POS_JOURNAL_DEFAULT_SEEN;
}

/* Judges and counts one record of journal or seen (pos_store_check_fn). */
static int journal_check(void *census, pos_store_db_t db, const MDB_val *k, const MDB_val *v)
{
    pos_journal_census_t *cs = census;
    if (db == POS_DB_JOURNAL) {
        pos_payment_record_t r;
        uint64_t seq;
        bool ok = pos_journal_decode(v->mv_data, v->mv_size, &r, &seq) == 0;
        if (cs != NULL) {
            cs->records++;
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
    /* seen: 'o' + be64 seq -> id (oldest first in key order), 'i' + id -> be64 seq */
    const unsigned char *kp = k->mv_data;
    if (k->mv_size == 9 && kp[0] == 'o') {
        uint64_t seq = pos_endian_get_be64(kp + 1);
        if (cs != NULL) {
            if (cs->seen_first == 0) {
                cs->seen_first = seq;
            }
            cs->seen_next = seq + 1;
        }
        return v->mv_size == 0 ? -EBADMSG : 0;
    }
    if (k->mv_size > 1 && kp[0] == 'i') {
        if (cs != NULL) {
            cs->seen_ids++;
        }
        return v->mv_size != 8 ? -EBADMSG : 0;
    }
    return -EBADMSG;
}

void pos_journal_tenant(pos_store_tenant_t *t, pos_journal_census_t *census)
{
    *t = (pos_store_tenant_t){POS_STORE_DB_BIT(POS_DB_JOURNAL) | POS_STORE_DB_BIT(POS_DB_SEEN),
                              journal_check, census, sizeof(*census)};
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
    j->records = cs.records;
    j->rec_next = cs.rec_next != 0 ? cs.rec_next : 1;
    j->seen = cs.seen_ids;
    j->seen_first = cs.seen_first;
    j->seen_next = cs.seen_next != 0 ? cs.seen_next : 1;
    return 0;
}

void pos_journal_close(pos_journal_t *j)
{
    if (j != NULL) {
        j->st = NULL;
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

/* ---- seen ids ----------------------------------------------------------- */

/* The seen database's key for the id of n bytes: 'i' + id, built in buf. */
static MDB_val seen_id_key(unsigned char buf[1 + POS_MSG_ID_MAX], const void *id, size_t n)
{
    buf[0] = 'i';
    memcpy(buf + 1, id, n);
    return (MDB_val){1 + n, buf};
}

/* Adds id inside txn, updating the seen counters *next, *count and *first. */
static int seen_add_txn(pos_journal_t *j, MDB_txn *txn, const char *id, uint64_t *next,
                        uint64_t *count, uint64_t *first)
{
    MDB_dbi dbi = j->st->dbi[POS_DB_SEEN];
    unsigned char ik[1 + POS_MSG_ID_MAX];
    size_t n = strlen(id);
    MDB_val k = seen_id_key(ik, id, n);
    MDB_val v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0) {
        return 0; /* known: keeps its place */
    }
    if (rc != MDB_NOTFOUND) {
        return pos_store_errno(rc);
    }
    unsigned char sb[8], ok[9];
    pos_endian_put_be64(sb, *next);
    ok[0] = 'o';
    memcpy(ok + 1, sb, 8);
    v = (MDB_val){8, sb};
    rc = mdb_put(txn, dbi, &k, &v, 0);
    if (rc == 0) {
        MDB_val okey = {9, ok};
        MDB_val oval = {n, (void *)id};
        rc = mdb_put(txn, dbi, &okey, &oval, 0);
    }
    if (rc != 0) {
        return pos_store_errno(rc);
    }
    if (*first == 0) {
        *first = *next;
    }
    (*next)++;
    (*count)++;
    /* Forget the oldest while over the bound. */
    while (*count > max_seen(j)) {
        unsigned char lo[9] = {'o'};
        MDB_val okey = {9, lo};
        MDB_cursor *cur;
        rc = mdb_cursor_open(txn, dbi, &cur);
        if (rc != 0) {
            return pos_store_errno(rc);
        }
        rc = mdb_cursor_get(cur, &okey, &v, MDB_SET_RANGE);
        if (rc != 0 || okey.mv_size != 9 || ((unsigned char *)okey.mv_data)[0] != 'o' ||
            v.mv_size > POS_MSG_ID_MAX) {
            mdb_cursor_close(cur);
            return rc != 0 ? pos_store_errno(rc) : -EIO;
        }
        MDB_val ikey = seen_id_key(ik, v.mv_data, v.mv_size);
        *first = pos_endian_get_be64((unsigned char *)okey.mv_data + 1) + 1;
        rc = mdb_cursor_del(cur, 0);
        mdb_cursor_close(cur);
        if (rc == 0) {
            rc = mdb_del(txn, dbi, &ikey, NULL);
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        }
        if (rc != 0) {
            return pos_store_errno(rc);
        }
        (*count)--;
    }
    return 0;
}

/* A write of the journal, with its counters as they will be once it committed. */
typedef struct journal_write {
    pos_journal_t *j;
    const char *id;                  /* the transaction id */
    const pos_payment_record_t *rec; /* the record to put, or NULL */
    uint64_t records, rec_next, seen, seen_next, seen_first;
} journal_write_t;

/*
 * Runs fn in one write transaction on a copy of j's counters, which
 * replace j's once it committed. Returns 0 or a negative errno.
 */
static int journal_write(pos_journal_t *j, pos_store_txn_fn fn, const char *id,
                         const pos_payment_record_t *rec)
{
    journal_write_t w = {j, id, rec, j->records, j->rec_next, j->seen, j->seen_next, j->seen_first};
    int rc = pos_store_txn_run(j->st, 0, fn, &w);
    if (rc == 0) {
        j->records = w.records;
        j->rec_next = w.rec_next;
        j->seen = w.seen;
        j->seen_next = w.seen_next;
        j->seen_first = w.seen_first;
    }
    return rc;
}

static int seen_add_write(void *ctx, MDB_txn *txn)
{
    journal_write_t *w = ctx;
    return seen_add_txn(w->j, txn, w->id, &w->seen_next, &w->seen, &w->seen_first);
}

int pos_journal_seen_add(pos_journal_t *j, const char *transaction_id)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL) {
        return -EINVAL;
    }
    if (!pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
    }
    return journal_write(j, seen_add_write, transaction_id, NULL);
}

bool pos_journal_seen_has(pos_journal_t *j, const char *transaction_id)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL || !pos_msg_id_valid(transaction_id)) {
        return false;
    }
    MDB_txn *txn;
    if (pos_store_txn_begin(j->st, MDB_RDONLY, &txn) != 0) {
        return false;
    }
    unsigned char ik[1 + POS_MSG_ID_MAX];
    MDB_val k = seen_id_key(ik, transaction_id, strlen(transaction_id));
    MDB_val v;
    bool found = mdb_get(txn, j->st->dbi[POS_DB_SEEN], &k, &v) == 0;
    pos_store_read_end(j->st, txn);
    return found;
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

/* Deletes the oldest finished records beyond max_final; *removed counts them. */
static int prune(pos_journal_t *j, MDB_txn *txn, uint64_t *removed)
{
    listed_t *all;
    size_t n;
    int rc = read_all(j, txn, &all, &n);
    if (rc != 0) {
        return rc;
    }
    size_t finals = 0;
    for (size_t i = 0; i < n; i++) {
        finals += pos_payment_state_final(all[i].rec.state);
    }
    for (size_t i = 0; i < n && finals > max_final(j); i++) {
        if (!pos_payment_state_final(all[i].rec.state)) {
            continue; /* a live payment's record is never dropped */
        }
        MDB_val k = {strlen(all[i].rec.transaction_id), all[i].rec.transaction_id};
        rc = pos_store_errno(mdb_del(txn, j->st->dbi[POS_DB_JOURNAL], &k, NULL));
        if (rc != 0) {
            break;
        }
        finals--;
        (*removed)++;
    }
    free(all);
    return rc;
}

/* Stores w->rec, remembers its id as seen, and prunes if needed. */
static int put_write(void *ctx, MDB_txn *txn)
{
    journal_write_t *w = ctx;
    const pos_payment_record_t *rec = w->rec;
    MDB_dbi dbi = w->j->st->dbi[POS_DB_JOURNAL];
    MDB_val k = {strlen(rec->transaction_id), (void *)rec->transaction_id};
    MDB_val v;
    uint64_t seq = w->rec_next;
    int mrc = mdb_get(txn, dbi, &k, &v);
    if (mrc == 0) {
        pos_payment_record_t old;
        /* A replacement keeps the transaction's place in the order. */
        if (pos_journal_decode(v.mv_data, v.mv_size, &old, &seq) != 0) {
            seq = w->rec_next++;
        }
    } else if (mrc == MDB_NOTFOUND) {
        w->rec_next++;
        w->records++;
    } else {
        return pos_store_errno(mrc);
    }
    unsigned char buf[POS_JOURNAL_RECORD_MAX];
    int len = pos_journal_encode(rec, seq, buf, sizeof(buf));
    int rc = len < 0 ? len : 0;
    if (rc == 0) {
        MDB_val val = {(size_t)len, buf};
        rc = pos_store_errno(mdb_put(txn, dbi, &k, &val, 0));
    }
    if (rc == 0) {
        rc = seen_add_txn(w->j, txn, rec->transaction_id, &w->seen_next, &w->seen, &w->seen_first);
    }
    uint64_t removed = 0;
    if (rc == 0 && w->records > max_final(w->j) + PRUNE_SLACK) {
        rc = prune(w->j, txn, &removed);
    }
    w->records -= removed;
    return rc;
}

static int put_attempt(pos_journal_t *j, const pos_payment_record_t *rec)
{
    return journal_write(j, put_write, rec->transaction_id, rec);
}

int pos_journal_put(pos_journal_t *j, const pos_payment_record_t *rec)
{
    if (j == NULL || j->st == NULL || rec == NULL) {
        return -EINVAL;
    }
    unsigned char probe[POS_JOURNAL_RECORD_MAX];
    if (pos_journal_encode(rec, 0, probe, sizeof(probe)) < 0) {
        return -EINVAL;
    }
    int rc = put_attempt(j, rec);
    if (rc == -ENOSPC && pos_store_reclaim(j->st, 64u * 1024u) > 0) {
        /* The map was full: the cache gave up space, try once more. */
        rc = put_attempt(j, rec);
    }
    return rc;
}

int pos_journal_get(pos_journal_t *j, const char *transaction_id, pos_payment_record_t *rec)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL || rec == NULL ||
        !pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
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
    free(all);
    return (int)visited;
}

static int delete_write(void *ctx, MDB_txn *txn)
{
    journal_write_t *w = ctx;
    MDB_val k = {strlen(w->id), (void *)w->id};
    int rc = pos_store_errno(mdb_del(txn, w->j->st->dbi[POS_DB_JOURNAL], &k, NULL));
    if (rc == 0) {
        w->records--;
    }
    return rc;
}

int pos_journal_delete(pos_journal_t *j, const char *transaction_id)
{
    if (j == NULL || j->st == NULL || transaction_id == NULL || !pos_msg_id_valid(transaction_id)) {
        return -EINVAL;
    }
    return journal_write(j, delete_write, transaction_id, NULL);
}
