#ifndef AGENT_PAYMENT_JOURNAL_H
#define AGENT_PAYMENT_JOURNAL_H

/*
 * The payment journal: the last pos_payment_record_t of each transaction,
 * written durably before the caller performs the next action (a RECORD
 * action of the payment state machine must be durable before the pinpad
 * is asked), and read back at start-up for pos_payment_sm_restore().
 *
 * Records of finished payments are kept up to max_final (oldest dropped
 * first); a record in a live state is never dropped. Besides the journal,
 * the set of seen transaction ids answers "was this id requested here
 * within the window?" whatever came in between and across restarts: an id
 * is remembered at least window_ms (7 days by default) from when it was
 * first seen, and forgotten only after. The set is bounded by max_seen;
 * when every id it holds is still inside the window a new one is refused
 * (-EOVERFLOW), never an old one forgotten early (docs/payment-flow.md has
 * the sizes: 100,000 ids, about 15 MB of store at most).
 *
 * A cancel of an id never requested here (a CANCELLED record without an
 * amount) is recorded, so that a request arriving after its cancel is
 * answered from the record and never charged, but it is not a request:
 * its id does not enter the seen set, and such records are kept to a bound
 * of their own (max_cancels, the newest), so that a flood of cancels for
 * made-up ids can neither refuse payments for want of room nor push out
 * the records of finished payments.
 *
 * While the agent runs, writes go through the store writer (they are
 * queued, and a callback says when they are durable); reads on the loop
 * see the writes queued but not yet applied.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/payment/payment_sm.h"
#include "agent/store/store.h"
#include "agent/store/writer.h"

#define POS_JOURNAL_DEFAULT_FINAL     1024   /* finished records kept */
#define POS_JOURNAL_DEFAULT_SEEN      100000 /* transaction ids remembered at most */
#define POS_JOURNAL_DEFAULT_WINDOW_MS (7ull * 24u * 3600u * 1000u) /* 168 h */
#define POS_JOURNAL_DEFAULT_CANCELS   256    /* records of cancels of ids never requested */
#define POS_JOURNAL_RECORD_MAX        256    /* bytes of an encoded record, at most */

typedef struct pos_journal_config {
    size_t max_final;          /* 0: POS_JOURNAL_DEFAULT_FINAL */
    size_t max_seen;           /* 0: POS_JOURNAL_DEFAULT_SEEN */
    uint64_t window_ms;        /* 0: POS_JOURNAL_DEFAULT_WINDOW_MS */
    size_t max_cancels;        /* 0: POS_JOURNAL_DEFAULT_CANCELS */
    uint64_t (*now_ms)(void);  /* epoch ms; NULL: the wall clock (tests pass their own) */
} pos_journal_config_t;

/* What a walk counted in the journal's databases (see pos_journal_tenant()). */
typedef struct pos_journal_census {
    uint64_t records;        /* journal records */
    uint64_t cancels;        /* of them, cancels of ids never requested */
    uint64_t rec_next;       /* one past the highest record sequence number, 0: none */
    uint64_t seen_ids;       /* transaction ids remembered */
    uint64_t seen_first;     /* oldest remembered sequence number, 0: none */
    uint64_t seen_next;      /* one past the newest, 0: none */
    uint64_t seen_oldest_ms; /* first-seen time of the oldest, 0: none */
    uint64_t old_seen;       /* ids in the layout before the window (converted at open) */
} pos_journal_census_t;

/* The counters the writes keep (in the writer thread while one runs). */
typedef struct pos_journal_counters {
    uint64_t records;
    uint64_t cancels; /* records of cancels of ids never requested */
    uint64_t rec_next;
    uint64_t seen;
    uint64_t seen_next;
    uint64_t oldest_ms;
} pos_journal_counters_t;

typedef struct pos_journal_op pos_journal_op_t;

/* A write's outcome, on the loop: 0 once durable, or a negative errno. */
typedef void (*pos_journal_cb)(void *ctx, int status);

/* The journal; embed it in a long-lived struct. Fields are private. */
typedef struct pos_journal {
    pos_store_t *st;
    pos_store_writer_t *writer; /* NULL: writes run at once in the caller's thread */
    pos_journal_config_t cfg;
    pos_journal_counters_t w;   /* the writes' own (writer thread) */
    uint64_t w_seq;             /* writes applied (writer thread) */
    uint64_t counters_seq;      /* the write the counters below are as of (loop thread) */
    uint64_t records;           /* as of the last applied write (loop thread) */
    uint64_t seen;
    uint64_t oldest_ms;
    pos_journal_op_t *pending;  /* queued, not yet applied; newest first */
} pos_journal_t;

/* Visits one record of pos_journal_list(); return nonzero to stop. */
typedef int (*pos_journal_visit_fn)(void *ctx, const pos_payment_record_t *rec);

/*
 * Describes the journal as a tenant of the store (databases journal and
 * seen) into *t, counting into *census (NULL: judge only). For
 * pos_store_config_t.tenants, so that the walk at open judges the
 * journal's records (a malformed one moves the store aside); census must
 * then live until pos_store_open() returns.
 */
void pos_journal_tenant(pos_store_tenant_t *t, pos_journal_census_t *census);

/*
 * Opens the journal on an open store, counting its records and seen ids
 * now, and converting seen ids stored before the time window (they count
 * as first seen at this open). Returns 0 or a negative errno.
 */
int pos_journal_open(pos_journal_t *j, pos_store_t *st, const pos_journal_config_t *cfg);

/* From now on writes go through w (NULL: at once, in the caller's thread). */
void pos_journal_set_writer(pos_journal_t *j, pos_store_writer_t *w);

/* Forgets the store (after the writer has finished). */
void pos_journal_close(pos_journal_t *j);

/*
 * Queues rec as the last record of its transaction (replacing the previous
 * one), remembering its id as seen (not for a cancel of an id never
 * requested), in one write; prunes the oldest finished records of payments
 * beyond max_final, and of such cancels beyond max_cancels. cb(ctx, status)
 * (may be NULL) runs on the loop once it is durable (0) or failed: -ENOSPC
 * when the store is full even after the cache gave up space, -EOVERFLOW
 * when the id is new and the seen set is full of ids inside the window; the
 * caller must not perform the action that needed the record then. Without
 * a writer the write runs now and cb is called before return.
 * Returns 0, or -EINVAL (invalid id or state, over-long strings) or
 * -ENOMEM with nothing queued and cb not called.
 */
int pos_journal_put_async(pos_journal_t *j, const pos_payment_record_t *rec, pos_journal_cb cb,
                          void *ctx);

/* pos_journal_put_async() without a callback, for when no writer serves the
 * store (start-up, tests): durable on return. Returns the write's status;
 * -EDEADLK when a writer serves it (use the asynchronous form). */
int pos_journal_put(pos_journal_t *j, const pos_payment_record_t *rec);

/* Reads the last record of a transaction. Returns 0, -ENOENT, or a negative errno. */
int pos_journal_get(pos_journal_t *j, const char *transaction_id, pos_payment_record_t *rec);

/*
 * Visits every record in the order the transactions were first recorded
 * (oldest first), e.g. to hand each to pos_payment_sm_restore().
 * Returns the number visited or a negative errno.
 */
int pos_journal_list(pos_journal_t *j, pos_journal_visit_fn visit, void *ctx);

/* Deletes a transaction's record (e.g. after reconciliation). Returns 0,
 * -ENOENT (without a writer), or a negative errno. */
int pos_journal_delete(pos_journal_t *j, const char *transaction_id);

/*
 * Remembers a transaction id as seen now (idempotent: a known id keeps its
 * first time). Returns 0, -EINVAL for an invalid id, -EOVERFLOW (without
 * a writer) when the set is full of ids inside the window, or a negative
 * errno.
 */
int pos_journal_seen_add(pos_journal_t *j, const char *transaction_id);

/* Forgets ids past the window (a bounded step; the writes also do it as
 * they go). Returns 0 or a negative errno. */
int pos_journal_prune(pos_journal_t *j);

/*
 * When the id was first seen (epoch ms in *first_ms, may be NULL): 0, or
 * -ENOENT when it is not remembered, or a negative errno. Counts writes
 * queued but not yet applied.
 */
int pos_journal_seen_at(pos_journal_t *j, const char *transaction_id, uint64_t *first_ms);

/* True when the id is remembered (false on any error). */
bool pos_journal_seen_has(pos_journal_t *j, const char *transaction_id);

/* True when a new id can be remembered at now_ms without forgetting one
 * inside the window (counting queued writes). */
bool pos_journal_seen_room(const pos_journal_t *j, uint64_t now_ms);

/* Ids remembered now. */
uint64_t pos_journal_seen_count(const pos_journal_t *j);

/* Records stored now. */
uint64_t pos_journal_count(const pos_journal_t *j);

/*
 * Record codec (pure). Encodes rec with sequence number seq into out
 * (POS_JOURNAL_RECORD_MAX bytes); returns the length or -EINVAL. Decodes
 * len bytes into *rec and *seq; returns 0 or -EBADMSG.
 */
int pos_journal_encode(const pos_payment_record_t *rec, uint64_t seq, unsigned char *out,
                       size_t out_len);
int pos_journal_decode(const void *buf, size_t len, pos_payment_record_t *rec, uint64_t *seq);

#endif /* AGENT_PAYMENT_JOURNAL_H */
