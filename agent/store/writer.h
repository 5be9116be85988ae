#ifndef AGENT_STORE_WRITER_H
#define AGENT_STORE_WRITER_H

/*
 * The store writer: every write to the store while the agent runs goes
 * through one thread, so the event loop never waits on the disk (no write
 * transaction, no fsync on the loop thread).
 *
 * The loop submits operations; the writer takes everything queued since
 * its last commit as one group, runs each operation in a nested
 * transaction of one write transaction (an operation that fails is undone
 * alone), commits the group once, and hands the operations back to the
 * loop, in submission order, with their status:
 *
 *   done(op)     once the group is durable (or failed); for the caller's
 *                answer (a client's reply, the pinpad, an outbox entry
 *                that may now be sent)
 *   applied(op)  once the group is committed to the store and visible to
 *                readers on the loop; the last call, op may be freed here
 *
 * Both run on the loop thread, done before applied, in submission order
 * across operations. Through the store's write-ahead log (agent/store/wal.h)
 * done comes once the group's log record is flushed, and applied once LMDB
 * committed it, a little later; a group the log does not take (too large,
 * or no log) gets both once its LMDB commit is flushed. Submissions between pos_store_writer_plug() and
 * pos_store_writer_unplug() go into one group (one commit), e.g. a
 * payment's journal record and the outbox entries that go with it.
 *
 * What an operation's apply() runs in the writer thread must touch only the
 * store and the operation itself: everything it reports back goes in the
 * operation and is read in done()/applied() on the loop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>
#include <uv.h>

#include "agent/store/store.h"

#define POS_STORE_WRITER_TURN 256 /* results handed back per loop turn, of each kind */
#define POS_STORE_LAZY_MS     250 /* a lazy operation waits at most this for company, ms */
/* A group takes operations until their weight passes this, bytes: one
 * commit never grows the file past the reserve the store keeps allocated
 * beyond its end (docs/offline.md, "A full file system"). */
#define POS_STORE_GROUP_BYTES (256u * 1024u)

typedef struct pos_store_op pos_store_op_t;

/* The operation's work, in the writer thread, in txn; 0 or a negative errno
 * (the operation's changes are then undone). */
typedef int (*pos_store_apply_fn)(pos_store_op_t *op, MDB_txn *txn);
/* A stage of the operation reached, on the loop thread; op->status holds the result. */
typedef void (*pos_store_op_cb)(pos_store_op_t *op);

/* Makes room after the operation was refused for it (-ENOSPC), in the
 * writer thread with no transaction open (it may run its own with
 * pos_store_txn_run()); a retry follows when it returns > 0 (room made),
 * up to a few times. */
typedef int (*pos_store_recover_fn)(pos_store_op_t *op);

/* Takes back what a successful apply() changed outside the store (its
 * counters) when the group's commit then failed; writer thread, in reverse
 * order of the group. */
typedef void (*pos_store_undo_fn)(pos_store_op_t *op);

struct pos_store_op {
    pos_store_apply_fn apply;
    pos_store_recover_fn recover; /* may be NULL: the store's reclaimer (the cache) is asked */
    pos_store_undo_fn undo;       /* may be NULL: apply() changes nothing outside the store */
    pos_store_op_cb done;    /* may be NULL */
    pos_store_op_cb applied; /* may be NULL; the last call */
    void *ctx;               /* the submitter's */
    size_t weight;           /* bytes it may write, about (0: a small record) */
    int status;              /* 0, or the apply's or the commit's error */
    /* The writer's: links in its queue, the group, and the two hand-backs. */
    pos_store_op_t *next;
    pos_store_op_t *done_next;
    pos_store_op_t *applied_next;
    pos_store_op_t *undo_prev; /* the group's successful operations, newest first */
    unsigned tries; /* retries for room so far */
    bool lazy;      /* may wait for company (pos_store_writer_submit_ex) */
    /* An append whose key must follow those of the ordered operations
     * submitted before it (the outbox's, MDB_APPEND): when one of a group
     * is refused for room, the ordered ones after it are not run alone but
     * retried with it, in order. */
    bool ordered;
    bool handed;    /* loop, under the lock: its done() is taken, its applied() may follow */
};

typedef struct pos_store_writer_stats {
    uint64_t ops;         /* operations completed */
    uint64_t groups;      /* durable commits: log records, or LMDB commits flushed in full */
    uint64_t lmdb_commits; /* LMDB commits (through the log: one for several groups) */
    uint64_t failed;      /* operations that failed */
    uint64_t largest;     /* most operations in one group */
    uint64_t queued;      /* operations waiting now (submitted, not yet done) */
    uint64_t commit_us_max; /* slowest LMDB commit, microseconds */
    uint64_t wal_records;     /* write-ahead log records flushed */
    uint64_t wal_checkpoints; /* log generations begun (LMDB flushed in full) */
    bool wal_on;              /* the store has its write-ahead log */
} pos_store_writer_stats_t;

typedef struct pos_store_writer {
    pos_store_t *st;
    uv_loop_t *loop;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    uv_async_t async;
    bool running;     /* the thread was started */
    bool stop;        /* under lock: the thread finishes the queue and ends */
    unsigned plugged; /* under lock: > 0 keeps the writer from taking the queue */
    unsigned eager;   /* under lock: queued operations that are not lazy */
    bool hurry;       /* under lock: commit what is queued now (pos_store_writer_hurry) */
    bool commit_soon; /* under lock: an applied() is awaited (pos_store_writer_commit_soon) */
    uint64_t lazy_since_ms; /* under lock: when the oldest queued operation came */
    pos_store_op_t *head, *tail;                 /* under lock: submitted */
    pos_store_op_t *done_head, *done_tail;       /* under lock: durable */
    pos_store_op_t *applied_head, *applied_tail; /* under lock: committed */
    pos_store_writer_stats_t stats;              /* under lock */
    uint64_t outstanding;                        /* loop thread: submitted, not yet applied */
    void (*closed_cb)(void *arg);
    void *closed_arg;
} pos_store_writer_t;

/*
 * Starts the writer thread for the open store "st", handing results back
 * on "loop". From then on, only the writer writes to the store.
 * Returns 0 or a negative errno (nothing left to close).
 */
int pos_store_writer_start(pos_store_writer_t *w, uv_loop_t *loop, pos_store_t *st);

/*
 * Queues an operation (op->apply set; the other fields but ctx and the
 * callbacks are the writer's). It joins the next group. The operation must
 * stay valid until its applied() call (or its done() call when it has no
 * applied()).
 */
void pos_store_writer_submit(pos_store_writer_t *w, pos_store_op_t *op);

/*
 * Same, for an operation that may wait: it is committed with the next
 * operation that may not, or after POS_STORE_LAZY_MS, whichever comes
 * first (an outbox entry's deletion once Redis confirmed it: lost in a
 * crash it is only sent again). Saves a commit each.
 */
void pos_store_writer_submit_ex(pos_store_writer_t *w, pos_store_op_t *op, bool lazy);

/* Makes what is queued due now, lazy or not: for a submitter whose next
 * operation waits behind a lazy one it submitted. */
void pos_store_writer_hurry(pos_store_writer_t *w);

/* Someone waits for an applied(): the open batch is committed to LMDB as
 * soon as the writer has nothing else to do, not after WRITER_IDLE_US. */
void pos_store_writer_commit_soon(pos_store_writer_t *w);

/* Holds submissions back until the matching unplug, so they share one
 * group. Calls nest. */
void pos_store_writer_plug(pos_store_writer_t *w);
void pos_store_writer_unplug(pos_store_writer_t *w);

/* Operations submitted and not yet applied (loop thread). */
uint64_t pos_store_writer_outstanding(const pos_store_writer_t *w);

/* A copy of the counters. */
void pos_store_writer_stats(pos_store_writer_t *w, pos_store_writer_stats_t *out);

/*
 * Lets the writer finish what is queued (every operation still gets its
 * callbacks, on the loop), ends the thread and closes the handle; done(arg)
 * (may be NULL) runs when all is closed. Operations submitted after (e.g.
 * by those callbacks) run at once in the calling thread. Blocks while the
 * last group commits: for shutdown.
 */
void pos_store_writer_close(pos_store_writer_t *w, void (*done)(void *arg), void *arg);

/*
 * Runs one operation in the calling thread now, as the writer would (its
 * own transaction, committed; done then applied are called before return).
 * For start-up, shutdown and tests, never on a loop the writer serves.
 * Returns op->status.
 */
int pos_store_op_run_now(pos_store_t *st, pos_store_op_t *op);

#endif /* AGENT_STORE_WRITER_H */
