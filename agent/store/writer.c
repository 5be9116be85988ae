#include "agent/store/writer.h"

#include <errno.h>
#include <string.h>

#include "platform/clock.h"
#include "platform/log.h"
#include "platform/uverr.h"

#define WRITER_RECLAIM_HINT (64u * 1024u) /* bytes asked of the cache when the map is full */
#define WRITER_TRIES        4u          /* retries of an operation refused for room */

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

/* Runs one operation in a nested transaction of txn: its changes stay only
 * when it succeeds. */
static void writer_apply(pos_store_t *st, MDB_txn *txn, pos_store_op_t *op)
{
    MDB_txn *nested;
    int rc = mdb_txn_begin(st->env, txn, 0, &nested);

    if (rc != 0) {
        op->status = pos_store_errno(rc);
        return;
    }
    rc = op->apply(op, nested);
    if (rc != 0) {
        mdb_txn_abort(nested);
        op->status = rc;
        return;
    }
    op->status = pos_store_errno(mdb_txn_commit(nested));
}

/*
 * Runs ops (linked by next) as one write transaction and splits them, in
 * order, into *kept (final status) and *retry (refused for room on their
 * first try: status cleared, to run again once room was made).
 */
static void writer_group(pos_store_t *st, pos_store_op_t *ops, pos_store_op_t **kept,
                         pos_store_op_t **retry)
{
    pos_store_op_t *khead = NULL, *ktail = NULL, *rhead = NULL, *rtail = NULL;
    MDB_txn *txn;
    int rc = pos_store_txn_begin(st, 0, &txn);

    pos_store_op_t *undo = NULL;
    for (pos_store_op_t *op = ops; op != NULL; op = op->next) {
        op->status = rc;
        if (rc == 0) {
            writer_apply(st, txn, op);
            if (op->status == 0) {
                op->undo_prev = undo;
                undo = op;
            }
        }
    }
    if (rc == 0) {
        rc = pos_store_txn_commit(txn);
        for (pos_store_op_t *op = undo; rc != 0 && op != NULL; op = op->undo_prev) {
            if (op->undo != NULL) {
                op->undo(op); /* nothing of the group was written */
            }
        }
    }
    for (pos_store_op_t *op = ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->status == 0 && rc != 0) {
            op->status = rc; /* the commit failed: nothing of the group is written */
        }
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

/* Hands ops (linked by next) back to the loop. */
static void writer_hand_back(pos_store_writer_t *w, pos_store_op_t *ops, uint64_t commit_us)
{
    uint64_t n = 0;

    uv_mutex_lock(&w->lock);
    for (pos_store_op_t *op = ops; op != NULL; op = op->next) {
        list_append(&w->done_head, &w->done_tail, op, LINK_DONE);
        list_append(&w->applied_head, &w->applied_tail, op, LINK_APPLIED);
        w->stats.ops++;
        w->stats.failed += op->status != 0;
        w->stats.queued--;
        n++;
    }
    w->stats.groups++;
    if (n > w->stats.largest) {
        w->stats.largest = n;
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
static void writer_run_group(pos_store_t *st, pos_store_op_t *group,
                             void (*hand_back)(void *arg, pos_store_op_t *ops, uint64_t us),
                             void *arg)
{
    pos_store_op_t *kept, *retry;
    uint64_t t0 = pos_clock_mono_us();

    writer_group(st, group, &kept, &retry);
    if (kept != NULL) {
        hand_back(arg, kept, pos_clock_mono_us() - t0);
    }
    while (retry != NULL) {
        if (!writer_recover(st, retry)) {
            POS_WARN("store", "the store is full and nothing more could be freed");
            for (pos_store_op_t *op = retry; op != NULL; op = op->next) {
                op->status = -ENOSPC;
            }
            hand_back(arg, retry, 0);
            return;
        }
        t0 = pos_clock_mono_us();
        writer_group(st, retry, &kept, &retry);
        if (kept != NULL) {
            hand_back(arg, kept, pos_clock_mono_us() - t0);
        }
    }
}

static void writer_hand_back_cb(void *arg, pos_store_op_t *ops, uint64_t us)
{
    writer_hand_back(arg, ops, us);
}

/* True when the queue holds work to commit now: anything not lazy, or a
 * lazy operation that has waited long enough (under the lock). */
static bool writer_due(const pos_store_writer_t *w, uint64_t now_ms, uint64_t *wait_ms)
{
    *wait_ms = 0;
    if (w->head == NULL || w->plugged > 0) {
        return false;
    }
    if (w->eager > 0) {
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
    return first;
}

static void writer_thread(void *arg)
{
    pos_store_writer_t *w = arg;

    for (;;) {
        uint64_t wait_ms;
        uv_mutex_lock(&w->lock);
        while (!writer_due(w, pos_clock_mono_ms(), &wait_ms) && !w->stop) {
            if (wait_ms > 0) {
                (void)uv_cond_timedwait(&w->cond, &w->lock, wait_ms * 1000000u);
            } else {
                uv_cond_wait(&w->cond, &w->lock);
            }
        }
        pos_store_op_t *group = writer_take_group(w);
        bool stop = w->stop && group == NULL;
        uv_mutex_unlock(&w->lock);
        if (stop) {
            break;
        }
        writer_run_group(w->st, group, writer_hand_back_cb, w);
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
    if (last != NULL) {
        *(pos_store_op_t **)((char *)last + link) = NULL;
    }
    return first;
}

/*
 * On the loop: the operations the writer handed back, in order, at most
 * POS_STORE_WRITER_TURN of each kind a loop turn (a burst of writes must
 * not hold the loop: the rest come back on the next turns).
 */
static void writer_async_cb(uv_async_t *h)
{
    pos_store_writer_t *w = h->data;
    pos_store_op_t *done, *applied;
    size_t ndone, napplied;
    bool more;

    uv_mutex_lock(&w->lock);
    done = writer_take(&w->done_head, &w->done_tail, LINK_DONE, POS_STORE_WRITER_TURN, &ndone);
    /* Both lists get every operation in the same order, so the same count
     * off each keeps an operation's applied() after its done(). */
    applied = writer_take(&w->applied_head, &w->applied_tail, LINK_APPLIED, POS_STORE_WRITER_TURN,
                          &napplied);
    more = w->done_head != NULL || w->applied_head != NULL;
    uv_mutex_unlock(&w->lock);
    for (pos_store_op_t *op = done, *next; op != NULL; op = next) {
        next = op->done_next;
        if (op->done != NULL) {
            op->done(op);
        }
    }
    for (pos_store_op_t *op = applied, *next; op != NULL; op = next) {
        next = op->applied_next;
        w->outstanding--;
        if (op->applied != NULL) {
            op->applied(op);
        }
    }
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

static void run_now_hand_back(void *arg, pos_store_op_t *ops, uint64_t us)
{
    (void)arg;
    (void)ops;
    (void)us;
}

int pos_store_op_run_now(pos_store_t *st, pos_store_op_t *op)
{
    op->next = NULL;
    op->tries = 0;
    writer_run_group(st, op, run_now_hand_back, NULL);
    if (op->done != NULL) {
        op->done(op);
    }
    int status = op->status;
    if (op->applied != NULL) {
        op->applied(op);
    }
    return status;
}
