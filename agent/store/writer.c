#include "agent/store/writer.h"

#include <errno.h>
#include <string.h>

#include "platform/clock.h"
#include "platform/log.h"
#include "platform/uverr.h"

#define WRITER_RECLAIM_HINT (64u * 1024u) /* bytes asked of the cache when the map is full */
#define WRITER_TRIES        4u            /* retries of an operation refused for room */

static void list_append(pos_store_op_t **head, pos_store_op_t **tail, pos_store_op_t *op,
                        size_t link)
{
    pos_store_op_t **next = (pos_store_op_t **)((char *)op + link);

    *next = NULL;
    if (*tail != NULL) {
        *(pos_store_op_t **)((char *)*tail + link) = op;
    } else {
        *head = op;
    }
    *tail = op;
}

#define LINK_NEXT    offsetof(pos_store_op_t, next)
#define LINK_DONE    offsetof(pos_store_op_t, done_next)
#define LINK_APPLIED offsetof(pos_store_op_t, applied_next)

/* Where a group's operations go back: done() once durable, applied() once
 * committed (both at once when the group is not in the log). */
typedef struct writer_sink {
    /* ops linked by next, the group's (or a retry's) in order; the writer
     * touches none without an applied() after this call: the loop may
     * submit such an operation again in its done(). */
    void (*done)(void *arg, pos_store_op_t *ops, bool flushed);
    /* Those of them with an applied(), linked by applied_next from chain to
     * tail (both NULL when none); n: all of them. */
    void (*applied)(void *arg, pos_store_op_t *chain, pos_store_op_t *tail, uint64_t n,
                    uint64_t commit_us);
    void *arg;
    bool log; /* the group may go through the write-ahead log (the writer thread) */
} writer_sink_t;

/* Runs one operation in a nested transaction of txn: its changes stay only
 * when it succeeds (its redo too). */
static void writer_apply(pos_store_t *st, MDB_txn *txn, pos_store_op_t *op)
{
    MDB_txn *nested;
    size_t mark = st->redo.len;
    int rc = mdb_txn_begin(st->env, txn, 0, &nested);

    if (rc != 0) {
        op->status = pos_store_errno(rc);
        return;
    }
    rc = op->apply(op, nested);
    if (rc == 0) {
        rc = pos_store_errno(mdb_txn_commit(nested));
    } else {
        mdb_txn_abort(nested);
    }
    op->status = rc;
    if (rc != 0) {
        st->redo.len = mark;
    }
}

/*
 * Runs the group's operations ops (linked by next) in one nested
 * transaction of txn: LMDB allocates about 3 MiB of page lists for each
 * nested transaction, so one for the group, not one per operation. When
 * all succeed, their changes stay, *undo is the chain of them (newest
 * first) and it returns true. Otherwise nothing of the group stays: the
 * ones that succeeded are undone, *failed is the one that did not (its
 * status set; NULL when the nested transaction itself failed), and it
 * returns false: the caller runs the group one operation at a time.
 */
static bool writer_apply_all(pos_store_t *st, MDB_txn *txn, pos_store_op_t *ops,
                             pos_store_op_t **undo, pos_store_op_t **failed)
{
    MDB_txn *nested;
    size_t mark = st->redo.len;
    pos_store_op_t *chain = NULL;
    int rc = mdb_txn_begin(st->env, txn, 0, &nested);

    *undo = NULL;
    *failed = NULL;
    if (rc != 0) {
        return false;
    }
    for (pos_store_op_t *op = ops; op != NULL && rc == 0; op = op->next) {
        rc = op->apply(op, nested);
        op->status = rc;
        if (rc == 0) {
            op->undo_prev = chain;
            chain = op;
        } else {
            *failed = op;
        }
    }
    if (rc == 0) {
        rc = mdb_txn_commit(nested);
        if (rc == 0) {
            *undo = chain;
            return true;
        }
    } else {
        mdb_txn_abort(nested);
    }
    for (pos_store_op_t *op = chain; op != NULL; op = op->undo_prev) {
        if (op->undo != NULL) {
            op->undo(op); /* its changes went with the nested transaction */
        }
    }
    st->redo.len = mark;
    return false;
}

/* Splits ops (linked by next), in order, into *kept (final status) and
 * *retry (refused for room on their first tries: status cleared, to run
 * again once room was made). */
static void writer_split(pos_store_op_t *ops, pos_store_op_t **kept, pos_store_op_t **retry)
{
    pos_store_op_t *khead = NULL, *ktail = NULL, *rhead = NULL, *rtail = NULL;

    for (pos_store_op_t *op = ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->status == -ENOSPC && op->tries < WRITER_TRIES) {
            op->tries++;
            op->status = 0;
            list_append(&rhead, &rtail, op, LINK_NEXT);
        } else {
            list_append(&khead, &ktail, op, LINK_NEXT);
        }
    }
    *kept = khead;
    *retry = rhead;
}

/* Links the operations of ops (by next) that have an applied() into
 * *chain by applied_next, in order; returns how many ops there are. */
static uint64_t writer_chain(pos_store_op_t *ops, pos_store_op_t **chain)
{
    pos_store_op_t *head = NULL, *tail = NULL;
    uint64_t n = 0;

    for (pos_store_op_t *op = ops; op != NULL; op = op->next) {
        n++;
        if (op->applied != NULL) {
            list_append(&head, &tail, op, LINK_APPLIED);
        }
    }
    *chain = head;
    return n;
}

/* The log failed under the writer: the store goes on without it. */
static void writer_log_off(pos_store_t *st, int rc)
{
    POS_ERR("store",
            "%s: the write-ahead log failed (%s): every commit is flushed twice from "
            "now on",
            st->path, strerror(-rc));
    snprintf(st->wal_error, sizeof(st->wal_error), "%s", strerror(-rc));
    /* Every later commit flushes its meta page too, whether or not this
     * flush of the last one works: left set, with no log and no flush of
     * our own after each commit, a power cut could undo an answered one. */
    int src = mdb_env_sync(st->env, 1);
    if (src != 0) {
        POS_ERR("store", "%s: flushing LMDB's last commit failed too (%s)", st->path,
                mdb_strerror(src));
    }
    (void)mdb_env_set_flags(st->env, MDB_NOMETASYNC, 0);
    st->wal_on = false;
    pos_wal_close(&st->wal);
}

/*
 * The writer's open LMDB transaction. Through the log, groups are durable
 * once their record is flushed; their LMDB commit waits until the writer
 * has nothing else to do (WRITER_IDLE_US), or the batch is large, so that
 * the next group's record is not held up by it: several groups, one LMDB
 * commit. st->redo holds the redo of all of them (replayed should the
 * commit fail).
 */
typedef struct writer_batch {
    MDB_txn *txn;
    pos_store_op_t *chain, *chain_tail; /* their operations with an applied(), by applied_next */
    uint64_t ops;                       /* their operations, all */
    unsigned groups;                    /* logged groups in it */
    uint64_t t0;                        /* monotonic us: its commit began */
    uint64_t last_seq;                  /* the last record it holds (0: none) */
} writer_batch_t;

/* An open batch waits this long for more before its LMDB commit, us,
 * unless a submitter waits for an applied() (pos_store_writer_commit_soon()). */
#define WRITER_IDLE_US      20000u
#define WRITER_BATCH_GROUPS 8u            /* logged groups in one LMDB commit, at most */
#define WRITER_BATCH_BYTES  (64u * 1024u) /* redo bytes in one LMDB commit, at most */

static int batch_begin(pos_store_t *st, writer_batch_t *b)
{
    if (b->txn != NULL) {
        return 0;
    }
    /* Groups logged and not yet in LMDB go in first (pos_store_txn_begin):
     * while they cannot, no batch begins. */
    int rc = pos_store_txn_begin(st, 0, &b->txn);
    if (rc != 0) {
        b->txn = NULL;
        return rc;
    }
    if (st->wal_on) {
        /* walseq rewritten now, as it is: its page is then the batch's
         * own, and writer_log()'s puts of it need no new one. One of
         * those refused for room would break the batch and turn the log
         * off; refused here it is a room refusal like any other. */
        uint64_t seq = 0;
        rc = pos_store_meta_get(st, b->txn, "walseq", &seq);
        if (rc == 0) {
            rc = pos_store_meta_put(st, b->txn, "walseq", seq);
        }
        if (rc != 0) {
            mdb_txn_abort(b->txn);
            b->txn = NULL;
            return rc;
        }
    }
    st->redo.len = 0;
    st->redo.overflow = false;
    return 0;
}

static void batch_add_chain(writer_batch_t *b, pos_store_op_t *chain, uint64_t n)
{
    if (chain != NULL) {
        if (b->chain_tail != NULL) {
            b->chain_tail->applied_next = chain;
        } else {
            b->chain = chain;
        }
        b->chain_tail = chain;
        while (b->chain_tail->applied_next != NULL) {
            b->chain_tail = b->chain_tail->applied_next;
        }
    }
    b->ops += n;
}

/* Hands the batch's operations back as applied and forgets it. */
static void batch_hand_back(writer_batch_t *b, const writer_sink_t *sink)
{
    if (b->ops > 0) {
        sink->applied(sink->arg, b->chain, b->chain_tail, b->ops, pos_clock_mono_us() - b->t0);
    }
    b->chain = b->chain_tail = NULL;
    b->ops = 0;
    b->groups = 0;
    b->last_seq = 0;
}

/*
 * Commits the batch (its groups are durable already: no full flush) and
 * hands its operations back applied. A commit that fails is tried again
 * from the redo; should that fail too, the log still holds the groups and
 * the next start applies them.
 */
static void batch_commit(pos_store_t *st, writer_batch_t *b, const writer_sink_t *sink)
{
    if (b->txn == NULL) {
        return;
    }
    b->t0 = pos_clock_mono_us();
    st->wal_covered = true;
    int rc = pos_store_txn_commit(b->txn);
    st->wal_covered = false;
    b->txn = NULL;
    if (rc != 0 && b->last_seq != 0) {
        rc = pos_store_redo_reapply(st, b->last_seq);
        if (rc != 0) {
            pos_store_redo_keep(st, b->last_seq);
        }
    }
    st->redo.len = 0;
    batch_hand_back(b, sink);
    /* A new generation only once LMDB holds all of the log (not after a
     * commit that failed twice: the next start needs those records). */
    if (rc == 0 && st->wal_on && st->wal.offset > POS_WAL_SIZE / 4 * 3) {
        rc = pos_store_checkpoint(st); /* no transaction open: not in a group's way */
        if (rc != 0) {
            writer_log_off(st, rc);
        }
    }
}

/*
 * Writes the redo of the group that starts at st->redo offset start as one
 * log record and flushes it. Returns true once the group is durable that
 * way, false when it must commit the LMDB way (too large, no room left in
 * the log, or the log failed).
 */
static bool writer_log(pos_store_t *st, writer_batch_t *b, size_t start)
{
    size_t len = st->redo.len - start;

    if (st->redo.overflow || !pos_wal_fits(&st->wal, len)) {
        return false;
    }
    if (len == 0) {
        return true; /* no change: nothing to make durable */
    }
    uint64_t seq = st->wal.next_seq;
    int rc = pos_store_meta_put(st, b->txn, "walseq", seq);
    if (rc == 0) {
        rc = pos_wal_append(&st->wal, seq, st->redo.buf + start, len);
    }
    if (rc != 0) {
        writer_log_off(st, rc);
        return false;
    }
    b->last_seq = seq;
    return true;
}

/*
 * Runs ops (linked by next) in the batch's transaction. Through the log:
 * handed back done once their record is flushed; applied comes with the
 * batch's commit. Otherwise the batch is committed now, flushed in full
 * (and the log, all of it in LMDB then, starts afresh), and the group is
 * handed back done and applied. Operations refused for room come back in
 * *retry, with the batch committed (room is made outside a transaction).
 */
static void writer_group(pos_store_t *st, writer_batch_t *b, pos_store_op_t *ops,
                         const writer_sink_t *sink, pos_store_op_t **retry)
{
    pos_store_op_t *kept, *chain, *undo = NULL;
    int rc = batch_begin(st, b);
    bool logging = rc == 0 && sink->log && st->wal_on;
    size_t start = st->redo.len;

    st->redo.on = logging;
    st->redo.start = start;
    pos_store_op_t *failed = NULL;
    if (rc != 0 || !writer_apply_all(st, b->txn, ops, &undo, &failed)) {
        /* One failed (or none could run together): each alone, so that a
         * failing one is undone alone. The one that failed already keeps
         * its result: its apply() ran once. An ordered append after one
         * refused for room waits for its retry: run alone now it would take
         * a key the refused one must come before (an outbox message
         * overtaking, then losing, an earlier one). */
        bool held_back = false;
        for (pos_store_op_t *op = ops; op != NULL; op = op->next) {
            if (op == failed) {
                held_back |= op->ordered && op->status == -ENOSPC;
                continue;
            }
            if (held_back && op->ordered) {
                op->status = -ENOSPC;
                continue;
            }
            op->status = rc;
            if (rc == 0) {
                writer_apply(st, b->txn, op);
                if (op->status == 0) {
                    op->undo_prev = undo;
                    undo = op;
                }
                held_back |= op->ordered && op->status == -ENOSPC;
            }
        }
    }
    st->redo.on = false;
    if (logging && writer_log(st, b, start)) {
        /* Durable now: the loop may answer while LMDB commits later. */
        writer_split(ops, &kept, retry);
        uint64_t n = writer_chain(kept, &chain);
        if (kept != NULL) {
            sink->done(sink->arg, kept, st->redo.len > start); /* a record, or nothing to write */
        }
        batch_add_chain(b, chain, n);
        b->groups++;
        if (*retry != NULL) {
            batch_commit(st, b, sink);
        }
        return;
    }
    /* The LMDB way: this group and the logged ones before it, flushed in full. */
    if (b->txn != NULL) {
        b->t0 = pos_clock_mono_us();
        rc = pos_store_txn_commit(b->txn);
        b->txn = NULL;
        if (rc != 0 && b->last_seq != 0) {
            /* The logged groups of the batch stand: they are durable. */
            st->redo.len = start;
            if (pos_store_redo_reapply(st, b->last_seq) != 0) {
                pos_store_redo_keep(st, b->last_seq);
            }
        }
        if (rc == 0 && st->wal_on && st->wal.offset > POS_WAL_SIZE / 4 * 3) {
            int r2 = pos_wal_reset(&st->wal); /* everything is in LMDB: a new generation */
            if (r2 != 0) {
                writer_log_off(st, r2);
            }
        }
        st->redo.len = 0;
    }
    for (pos_store_op_t *op = undo; rc != 0 && op != NULL; op = op->undo_prev) {
        if (op->undo != NULL) {
            op->undo(op); /* nothing of the group was written */
        }
    }
    for (pos_store_op_t *op = ops; op != NULL; op = op->next) {
        if (op->status == 0 && rc != 0) {
            op->status = rc; /* the commit failed: nothing of the group is written */
        }
    }
    writer_split(ops, &kept, retry);
    uint64_t n = writer_chain(kept, &chain);
    if (kept != NULL) {
        sink->done(sink->arg, kept, true);
    }
    batch_add_chain(b, chain, n);
    batch_hand_back(b, sink);
}

static void writer_count(pos_store_writer_t *w, const pos_store_op_t *op)
{
    w->stats.ops++;
    w->stats.failed += op->status != 0;
    w->stats.queued--;
}

/* Hands ops (linked by next) back to the loop as durable; those without an
 * applied() are over then. flushed: it took a flush (a log record, or an
 * LMDB commit flushed in full), not a group that wrote nothing. */
static void writer_hand_done(void *arg, pos_store_op_t *ops, bool flushed)
{
    pos_store_writer_t *w = arg;
    uint64_t n = 0;

    uv_mutex_lock(&w->lock);
    for (pos_store_op_t *op = ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->applied == NULL) {
            writer_count(w, op);
        }
        list_append(&w->done_head, &w->done_tail, op, LINK_DONE);
        n++;
    }
    w->stats.groups += flushed; /* the durable commits */
    w->stats.wal_records = w->st->wal.records;
    w->stats.wal_checkpoints = w->st->wal.checkpoints;
    w->stats.wal_on = w->st->wal_on;
    if (n > w->stats.largest) {
        w->stats.largest = n;
    }
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->async);
}

/* Hands the chain (linked by applied_next) back as committed to LMDB:
 * their last call. n: all the operations the commit held. */
static void writer_hand_applied(void *arg, pos_store_op_t *chain, pos_store_op_t *tail, uint64_t n,
                                uint64_t commit_us)
{
    pos_store_writer_t *w = arg;

    (void)n;
    uv_mutex_lock(&w->lock);
    w->stats.lmdb_commits++;
    w->stats.wal_checkpoints = w->st->wal.checkpoints;
    w->stats.wal_on = w->st->wal_on;
    for (pos_store_op_t *op = chain; op != NULL; op = op->applied_next) {
        writer_count(w, op);
    }
    if (chain != NULL) {
        if (w->applied_tail != NULL) {
            w->applied_tail->applied_next = chain;
        } else {
            w->applied_head = chain;
        }
        w->applied_tail = tail;
    }
    if (commit_us > w->stats.commit_us_max) {
        w->stats.commit_us_max = commit_us;
    }
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->async);
}

/*
 * The map or the disk was full. Cached entries give up their room first
 * (they can be fetched again); only when that frees nothing may each
 * refused operation make room its own way (the outbox drops its oldest
 * ordinary messages, never payment outcomes). Returns true when some room
 * was made.
 */
static bool writer_recover(pos_store_t *st, pos_store_op_t *retry)
{
    bool made = pos_store_reclaim(st, WRITER_RECLAIM_HINT) > 0;

    for (pos_store_op_t *op = retry; !made && op != NULL; op = op->next) {
        if (op->recover != NULL) {
            made |= op->recover(op) > 0;
        }
    }
    return made;
}

/* Runs group; operations refused for room are retried while room is made. */
static void writer_run_group(pos_store_t *st, writer_batch_t *b, pos_store_op_t *group,
                             const writer_sink_t *sink)
{
    pos_store_op_t *retry;

    writer_group(st, b, group, sink, &retry);
    while (retry != NULL) {
        if (!writer_recover(st, retry)) {
            POS_WARN("store", "the store is full and nothing more could be freed");
            for (pos_store_op_t *op = retry; op != NULL; op = op->next) {
                op->status = -ENOSPC;
            }
            pos_store_op_t *chain;
            uint64_t n = writer_chain(retry, &chain);
            sink->done(sink->arg, retry, false);
            batch_add_chain(b, chain, n);
            batch_hand_back(b, sink);
            return;
        }
        writer_group(st, b, retry, sink, &retry);
    }
}

/* True when the queue holds work to commit now: anything not lazy, or a
 * lazy operation that has waited long enough (under the lock). */
static bool writer_due(const pos_store_writer_t *w, uint64_t now_ms, uint64_t *wait_ms)
{
    *wait_ms = 0;
    if (w->head == NULL || w->plugged > 0) {
        return false;
    }
    if (w->eager > 0 || w->hurry) {
        return true;
    }
    uint64_t due = w->lazy_since_ms + POS_STORE_LAZY_MS;
    if (now_ms >= due) {
        return true;
    }
    *wait_ms = due - now_ms;
    return false;
}

/*
 * Takes the next group off the queue (under the lock): operations in order
 * until their weight passes POS_STORE_GROUP_BYTES, at least one.
 */
static pos_store_op_t *writer_take_group(pos_store_writer_t *w)
{
    pos_store_op_t *first = w->head, *last = NULL, *op = w->head;
    size_t bytes = 0;
    unsigned eager = 0;

    while (op != NULL && (last == NULL || bytes < POS_STORE_GROUP_BYTES)) {
        bytes += op->weight != 0 ? op->weight : 64u;
        eager += !op->lazy;
        last = op;
        op = op->next;
    }
    w->head = op;
    if (op == NULL) {
        w->tail = NULL;
    } else {
        w->lazy_since_ms = pos_clock_mono_ms(); /* the rest waits its turn afresh */
    }
    if (last != NULL) {
        last->next = NULL;
    }
    w->eager -= eager < w->eager ? eager : w->eager;
    w->hurry = false;
    return first;
}

static void writer_thread(void *arg)
{
    pos_store_writer_t *w = arg;
    const writer_sink_t sink = {writer_hand_done, writer_hand_applied, w, true};
    writer_batch_t batch;

    memset(&batch, 0, sizeof(batch));
    for (;;) {
        uint64_t wait_ms, idle_from = 0;
        bool due;
        uv_mutex_lock(&w->lock);
        for (;;) {
            due = writer_due(w, pos_clock_mono_ms(), &wait_ms);
            if (due || w->stop) {
                break;
            }
            if (batch.txn != NULL) {
                /* Nothing to do: the open batch commits once it stayed so. */
                uint64_t now = pos_clock_mono_us();
                if (w->commit_soon) {
                    break;
                }
                if (idle_from == 0) {
                    idle_from = now;
                } else if (now - idle_from >= WRITER_IDLE_US) {
                    break;
                }
                uint64_t left_ns = (WRITER_IDLE_US - (now - idle_from)) * 1000u;
                if (wait_ms > 0 && wait_ms * 1000000u < left_ns) {
                    left_ns = wait_ms * 1000000u;
                }
                (void)uv_cond_timedwait(&w->cond, &w->lock, left_ns);
            } else if (wait_ms > 0) {
                (void)uv_cond_timedwait(&w->cond, &w->lock, wait_ms * 1000000u);
            } else {
                uv_cond_wait(&w->cond, &w->lock);
            }
        }
        pos_store_op_t *group = due || w->stop ? writer_take_group(w) : NULL;
        bool stop = w->stop && group == NULL;
        if (group == NULL) {
            w->commit_soon = false; /* the batch commits now */
        }
        uv_mutex_unlock(&w->lock);
        if (group == NULL) {
            batch_commit(w->st, &batch, &sink);
            if (stop) {
                break;
            }
            continue;
        }
        if (batch.groups >= WRITER_BATCH_GROUPS || w->st->redo.len >= WRITER_BATCH_BYTES) {
            batch_commit(w->st, &batch, &sink);
        }
        writer_run_group(w->st, &batch, group, &sink);
    }
}

/*
 * Takes up to max operations off the front of a hand-back list (under the
 * lock), keeping their order. Returns the first; *n gets how many.
 */
static pos_store_op_t *writer_take(pos_store_op_t **head, pos_store_op_t **tail, size_t link,
                                   size_t max, size_t *n)
{
    pos_store_op_t *first = *head, *last = NULL, *op = *head;

    *n = 0;
    while (op != NULL && *n < max) {
        last = op;
        op = *(pos_store_op_t **)((char *)op + link);
        (*n)++;
    }
    *head = op;
    if (op == NULL) {
        *tail = NULL;
    }
    if (last == NULL) {
        return NULL; /* max 0: nothing taken */
    }
    *(pos_store_op_t **)((char *)last + link) = NULL;
    return first;
}

/* Results handed back at a time, of each kind; and the loop time a turn
 * spends on them before the rest wait for the next turn, us. */
#define WRITER_HAND_CHUNK 32u
#define WRITER_HAND_US    2000u

/*
 * On the loop: up to max operations of each kind the writer handed back,
 * in order. Returns how many it took; *more when some are left.
 */
static size_t writer_hand_back(pos_store_writer_t *w, size_t max, bool *more)
{
    pos_store_op_t *done, *applied;
    size_t ndone, napplied;

    uv_mutex_lock(&w->lock);
    done = writer_take(&w->done_head, &w->done_tail, LINK_DONE, max, &ndone);
    for (pos_store_op_t *op = done; op != NULL; op = op->done_next) {
        op->handed = true; /* its done() runs below, before any applied() */
    }
    /* An operation's applied() follows its done(), a whole commit later
     * through the log: the applied ones whose done() is not taken yet wait. */
    size_t nmax = 0;
    for (pos_store_op_t *op = w->applied_head; op != NULL && op->handed && nmax < max;
         op = op->applied_next) {
        nmax++;
    }
    applied = writer_take(&w->applied_head, &w->applied_tail, LINK_APPLIED, nmax, &napplied);
    *more = w->done_head != NULL || (w->applied_head != NULL && w->applied_head->handed);
    uv_mutex_unlock(&w->lock);
    for (pos_store_op_t *op = done, *next; op != NULL; op = next) {
        next = op->done_next;
        if (op->applied == NULL) {
            w->outstanding--; /* over: it may be submitted again in its done() */
        }
        if (op->done != NULL) {
            op->done(op);
        }
    }
    for (pos_store_op_t *op = applied, *next; op != NULL; op = next) {
        next = op->applied_next;
        w->outstanding--;
        op->applied(op);
    }
    return ndone + napplied;
}

/*
 * On the loop: the operations the writer handed back, in order, at most
 * POS_STORE_WRITER_TURN of each kind a loop turn and no more than about
 * WRITER_HAND_US of its time (a burst of writes must not hold the loop:
 * the rest come back on the next turns). In chunks, so that a slow turn
 * (a sanitizer build, a busy CPU) stops early.
 */
static void writer_async_cb(uv_async_t *h)
{
    pos_store_writer_t *w = h->data;
    uint64_t t0 = pos_clock_mono_us();
    size_t taken = 0;
    bool more;

    do {
        taken += writer_hand_back(w, WRITER_HAND_CHUNK, &more);
    } while (more && taken < 2u * POS_STORE_WRITER_TURN &&
             pos_clock_mono_us() - t0 < WRITER_HAND_US);
    if (more) {
        uv_async_send(&w->async); /* the rest on the next turn */
    }
}

int pos_store_writer_start(pos_store_writer_t *w, uv_loop_t *loop, pos_store_t *st)
{
    int rc;

    memset(w, 0, sizeof(*w));
    w->st = st;
    w->loop = loop;
    w->stats.wal_on = st->wal_on;
    rc = uv_mutex_init(&w->lock);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    rc = uv_cond_init(&w->cond);
    if (rc != 0) {
        goto fail_cond;
    }
    rc = uv_async_init(loop, &w->async, writer_async_cb);
    if (rc != 0) {
        goto fail_async;
    }
    w->async.data = w;
    rc = uv_thread_create(&w->thread, writer_thread, w);
    if (rc != 0) {
        goto fail_thread;
    }
    w->running = true;
    pos_store_set_writer_thread(st, &w->thread);
    return 0;

fail_thread:
    uv_close((uv_handle_t *)&w->async, NULL);
fail_async:
    uv_cond_destroy(&w->cond);
fail_cond:
    uv_mutex_destroy(&w->lock);
    return pos_uv_errno(rc);
}

void pos_store_writer_submit(pos_store_writer_t *w, pos_store_op_t *op)
{
    pos_store_writer_submit_ex(w, op, false);
}

void pos_store_writer_submit_ex(pos_store_writer_t *w, pos_store_op_t *op, bool lazy)
{
    op->status = 0;
    op->tries = 0;
    op->handed = false;
    if (!w->running) {
        /* Closed (a callback of the last group queued more): run it here. */
        (void)pos_store_op_run_now(w->st, op);
        return;
    }
    w->outstanding++;
    uv_mutex_lock(&w->lock);
    bool first = w->head == NULL;
    if (first) {
        w->lazy_since_ms = pos_clock_mono_ms();
    }
    list_append(&w->head, &w->tail, op, LINK_NEXT);
    w->stats.queued++;
    op->lazy = lazy;
    w->eager += !lazy;
    /* A lazy operation first in line wakes the writer too: it then waits
     * POS_STORE_LAZY_MS for company instead of for ever. */
    if (w->plugged == 0 && (!lazy || first)) {
        uv_cond_signal(&w->cond);
    }
    uv_mutex_unlock(&w->lock);
}

void pos_store_writer_hurry(pos_store_writer_t *w)
{
    uv_mutex_lock(&w->lock);
    if (w->head != NULL && !w->hurry) {
        w->hurry = true;
        if (w->plugged == 0) {
            uv_cond_signal(&w->cond);
        }
    }
    uv_mutex_unlock(&w->lock);
}

void pos_store_writer_commit_soon(pos_store_writer_t *w)
{
    uv_mutex_lock(&w->lock);
    if (!w->commit_soon) {
        w->commit_soon = true;
        uv_cond_signal(&w->cond);
    }
    uv_mutex_unlock(&w->lock);
}

void pos_store_writer_plug(pos_store_writer_t *w)
{
    uv_mutex_lock(&w->lock);
    w->plugged++;
    uv_mutex_unlock(&w->lock);
}

void pos_store_writer_unplug(pos_store_writer_t *w)
{
    uv_mutex_lock(&w->lock);
    if (w->plugged > 0 && --w->plugged == 0 && w->head != NULL) {
        uv_cond_signal(&w->cond);
    }
    uv_mutex_unlock(&w->lock);
}

uint64_t pos_store_writer_outstanding(const pos_store_writer_t *w)
{
    return w->outstanding;
}

void pos_store_writer_stats(pos_store_writer_t *w, pos_store_writer_stats_t *out)
{
    uv_mutex_lock(&w->lock);
    *out = w->stats;
    uv_mutex_unlock(&w->lock);
}

static void writer_closed(uv_handle_t *h)
{
    pos_store_writer_t *w = h->data;

    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->lock);
    if (w->closed_cb != NULL) {
        w->closed_cb(w->closed_arg);
    }
}

void pos_store_writer_close(pos_store_writer_t *w, void (*done)(void *arg), void *arg)
{
    w->closed_cb = done;
    w->closed_arg = arg;
    if (!w->running) {
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    uv_mutex_lock(&w->lock);
    w->stop = true;
    w->plugged = 0;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    /* The queue is finished first: a shutdown loses nothing it accepted. */
    uv_thread_join(&w->thread);
    w->running = false;
    pos_store_set_writer_thread(w->st, NULL);
    /* What the thread handed back last; what its callbacks queue runs now. */
    bool left;
    do {
        writer_async_cb(&w->async);
        uv_mutex_lock(&w->lock);
        left = w->done_head != NULL || w->applied_head != NULL;
        uv_mutex_unlock(&w->lock);
    } while (left);
    uv_close((uv_handle_t *)&w->async, writer_closed);
}

static void run_now_done(void *arg, pos_store_op_t *ops, bool flushed)
{
    (void)arg;
    (void)ops;
    (void)flushed;
}

static void run_now_applied(void *arg, pos_store_op_t *chain, pos_store_op_t *tail, uint64_t n,
                            uint64_t us)
{
    (void)arg;
    (void)chain;
    (void)tail;
    (void)n;
    (void)us;
}

int pos_store_op_run_now(pos_store_t *st, pos_store_op_t *op)
{
    /* Not through the log: the caller waits for the flushed commit anyway. */
    const writer_sink_t sink = {run_now_done, run_now_applied, NULL, false};

    writer_batch_t batch;

    memset(&batch, 0, sizeof(batch));
    op->next = NULL;
    op->tries = 0;
    writer_run_group(st, &batch, op, &sink);
    if (op->done != NULL) {
        op->done(op);
    }
    int status = op->status;
    if (op->applied != NULL) {
        op->applied(op);
    }
    return status;
}
