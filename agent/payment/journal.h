#ifndef AGENT_PAYMENT_JOURNAL_H
#define AGENT_PAYMENT_JOURNAL_H

/*
 * The payment journal: the last pos_payment_record_t of each transaction,
 * written durably before the caller performs the next action (a RECORD
 * action of the payment state machine must be on disk before the pinpad is
 * asked), and read back at start-up for pos_payment_sm_restore().
 *
 * Records of finished payments are kept up to max_final (oldest dropped
 * first); a record in a live state is never dropped. Besides the journal,
 * a bounded set of seen transaction ids (the last max_seen, oldest
 * forgotten first) answers "was this id ever requested here?" across
 * restarts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/payment/payment_sm.h"
#include "agent/store/store.h"

#define POS_JOURNAL_DEFAULT_FINAL 1024  /* finished records kept */
#define POS_JOURNAL_DEFAULT_SEEN  10000 /* transaction ids remembered */
#define POS_JOURNAL_RECORD_MAX    256   /* bytes of an encoded record, at most */

typedef struct pos_journal_config {
    size_t max_final; /* 0: POS_JOURNAL_DEFAULT_FINAL */
    size_t max_seen;  /* 0: POS_JOURNAL_DEFAULT_SEEN */
} pos_journal_config_t;

/* What a walk counted in the journal's databases (see pos_journal_tenant()). */
typedef struct pos_journal_census {
    uint64_t records;    /* journal records */
    uint64_t rec_next;   /* one past the highest record sequence number, 0: none */
    uint64_t seen_ids;   /* transaction ids remembered */
    uint64_t seen_first; /* oldest remembered sequence number, 0: none */
    uint64_t seen_next;  /* one past the newest, 0: none */
} pos_journal_census_t;

/* The journal; embed it in a long-lived struct. Fields are private. */
typedef struct pos_journal {
    pos_store_t *st;
    pos_journal_config_t cfg;
    uint64_t records;    /* records stored */
    uint64_t seen;       /* ids remembered */
    uint64_t seen_next;  /* sequence number of the next new seen id */
    uint64_t seen_first; /* oldest remembered sequence number */
    uint64_t rec_next;   /* sequence number of the next new journal record */
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
 * now. Returns 0 or a negative errno.
 */
int pos_journal_open(pos_journal_t *j, pos_store_t *st, const pos_journal_config_t *cfg);

/* Forgets the store. */
void pos_journal_close(pos_journal_t *j);

/*
 * Stores rec as the last record of its transaction (replacing the previous
 * one) and remembers its id as seen, in one transaction, durable before
 * return. Prunes the oldest finished records beyond max_final.
 * Returns 0; -EINVAL (invalid id or state, over-long strings); -ENOSPC
 * when the store is full even after the cache gave up space (the caller
 * must not perform the action that needed this record); another negative
 * errno.
 */
int pos_journal_put(pos_journal_t *j, const pos_payment_record_t *rec);

/* Reads the last record of a transaction. Returns 0, -ENOENT, or a negative errno. */
int pos_journal_get(pos_journal_t *j, const char *transaction_id, pos_payment_record_t *rec);

/*
 * Visits every record in the order the transactions were first recorded
 * (oldest first), e.g. to hand each to pos_payment_sm_restore().
 * Returns the number visited or a negative errno.
 */
int pos_journal_list(pos_journal_t *j, pos_journal_visit_fn visit, void *ctx);

/* Deletes a transaction's record (e.g. after reconciliation). Returns 0, -ENOENT, or <0. */
int pos_journal_delete(pos_journal_t *j, const char *transaction_id);

/*
 * Remembers a transaction id as seen (idempotent: a known id keeps its
 * place), forgetting the oldest beyond max_seen. Durable on return.
 * Returns 0, -EINVAL for an invalid id, or a negative errno.
 */
int pos_journal_seen_add(pos_journal_t *j, const char *transaction_id);

/* True when the id is remembered (false on any error). */
bool pos_journal_seen_has(pos_journal_t *j, const char *transaction_id);

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
