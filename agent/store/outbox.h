#ifndef AGENT_STORE_OUTBOX_H
#define AGENT_STORE_OUTBOX_H

/*
 * The outbox: a durable FIFO of everything the agent must deliver to Redis
 * (publishes, counter increments). Store-and-forward, at least once:
 * append before sending, ack (delete) only after Redis confirmed. Entries
 * are keyed by a 64-bit id that grows monotonically across restarts (the
 * counter is persisted in the same transaction as the entry) and is never
 * reused, so the id the agent adds to a published message ("outboxId")
 * lets the cloud drop a redelivery. See docs/offline.md.
 *
 * Bounds: at most max_entries entries and max_bytes of channel + payload.
 * An append that would exceed them drops the oldest entries that are not
 * payment outcomes (counted in dropped); payment outcomes are never
 * dropped: if they alone fill the outbox the append fails with -ENOSPC.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/store/store.h"

#define POS_OUTBOX_HDR_SIZE    24u           /* bytes of header before channel + payload */
#define POS_OUTBOX_CHANNEL_MAX 511           /* channel or key bytes */
#define POS_OUTBOX_PAYLOAD_MAX (64u * 1024u) /* payload bytes */

typedef enum pos_outbox_kind {
    POS_OUTBOX_PUBLISH = 0, /* PUBLISH channel payload */
    POS_OUTBOX_INCRBY,      /* INCRBY key n (payload: the agent's encoding of n and the ttl) */
    POS_OUTBOX_OTHER,       /* anything else the agent defines */
    POS_OUTBOX_KIND_COUNT
} pos_outbox_kind_t;

typedef struct pos_outbox_config {
    uint64_t max_entries; /* 0: unbounded */
    uint64_t max_bytes;   /* channel + payload bytes; 0: unbounded */
} pos_outbox_config_t;

/* One entry as appended or peeked. */
typedef struct pos_outbox_entry {
    uint64_t id;
    pos_outbox_kind_t kind;
    bool is_payment;     /* a payment outcome: never dropped */
    bool sign;           /* the agent's own message: "sig" added when it is sent */
    uint64_t created_ms; /* epoch ms passed to append */
    const char *channel; /* channel or key, channel_len bytes (not NUL-terminated) */
    size_t channel_len;
    const void *payload;
    size_t payload_len;
} pos_outbox_entry_t;

typedef struct pos_outbox_stats {
    uint64_t entries;
    uint64_t bytes;   /* channel + payload bytes */
    uint64_t payment; /* entries that are payment outcomes */
    uint64_t dropped; /* non-payment entries dropped for room, ever (persisted) */
    uint64_t next_id; /* the id the next append gets */
} pos_outbox_stats_t;

/* What a walk counted in the outbox database (see pos_outbox_tenant()). */
typedef struct pos_outbox_census {
    uint64_t entries;
    uint64_t bytes;   /* channel + payload bytes */
    uint64_t payment; /* entries flagged as payment outcomes */
    uint64_t last_id; /* highest id present, 0: empty */
} pos_outbox_census_t;

typedef struct pos_store_writer pos_store_writer_t;
typedef struct pos_outbox_op pos_outbox_op_t;

/* An append's outcome, on the loop: status 0 once the entry is durable (it
 * may be sent), or a negative errno (-ENOSPC: no room, nothing kept). e is
 * the entry (its id set), valid during the call only. */
typedef void (*pos_outbox_cb)(void *ctx, int status, const pos_outbox_entry_t *e);

/* The outbox; embed it in a long-lived struct. Fields are private. */
typedef struct pos_outbox {
    pos_store_t *st;
    pos_store_writer_t *writer; /* NULL: writes run at once in the caller's thread */
    pos_outbox_config_t cfg;
    pos_outbox_stats_t stats;   /* as of the last applied write (loop thread) */
    pos_outbox_stats_t w;       /* the writes' own counters (writer thread) */
    uint64_t next_id;           /* the id the next append gets (loop thread) */
    uint64_t w_seq;             /* writes applied by the writer (writer thread) */
    uint64_t stats_seq;         /* the write "stats" are as of (loop thread) */
    pos_outbox_op_t *pending;   /* queued, not yet applied; oldest first */
    pos_outbox_op_t *pending_tail;
    pos_outbox_stats_t queued;  /* the appends among them (loop thread) */
} pos_outbox_t;

/*
 * A batch of peeked entries: the entries point into buf and extra, which
 * the batch owns (free it with pos_outbox_batch_free()).
 */
typedef struct pos_outbox_batch {
    size_t count;
    pos_outbox_entry_t *entries;
    unsigned char *buf;
    unsigned char *extra; /* copies of durable appends LMDB has not committed yet */
} pos_outbox_batch_t;

/*
 * Describes the outbox as a tenant of the store (database outbox) into *t,
 * counting into *census (NULL: judge only). For pos_store_config_t.tenants,
 * so that the walk at open judges the outbox's records (a malformed one
 * moves the store aside); census must then live until pos_store_open()
 * returns.
 */
void pos_outbox_tenant(pos_store_tenant_t *t, pos_outbox_census_t *census);

/*
 * Opens the outbox on an open store, counting its entries now (the store
 * may have been written since it opened). Returns 0 or a negative errno.
 */
int pos_outbox_open(pos_outbox_t *ob, pos_store_t *st, const pos_outbox_config_t *cfg);

/* Forgets the store (after the writer has finished). */
void pos_outbox_close(pos_outbox_t *ob);

/* From now on writes go through w (NULL: at once, in the caller's thread). */
void pos_outbox_set_writer(pos_outbox_t *ob, pos_store_writer_t *w);

/*
 * Queues one entry (e->id is ignored; channel and payload are copied) and
 * gives its id in *id (may be NULL) at once: ids grow in the order of
 * these calls. The write drops the oldest non-payment entries if the
 * bounds or the map would otherwise be exceeded (after asking the store's
 * reclaimer, i.e. the cache, to free map space first). cb(ctx, status, id)
 * (may be NULL) runs on the loop once the entry is durable, or with
 * -ENOSPC when only payment outcomes are left to drop (nothing appended;
 * logged) or another negative errno. Without a writer it runs now and cb
 * is called before return.
 * Returns 0 (cb will be or was called), or -EINVAL (bad kind, empty
 * channel), -EMSGSIZE (channel or payload too long, or larger than the
 * byte bound) or -ENOMEM with nothing queued and cb not called.
 */
int pos_outbox_append_async(pos_outbox_t *ob, const pos_outbox_entry_t *e, uint64_t *id,
                            pos_outbox_cb cb, void *ctx);

/* pos_outbox_append_async() without a callback, for when no writer serves
 * the store (start-up, tests): durable on return, the write's status;
 * -EDEADLK when a writer serves it. */
int pos_outbox_append(pos_outbox_t *ob, const pos_outbox_entry_t *e, uint64_t *id);

/*
 * Copies up to max of the oldest entries, in id order, into *batch.
 * Returns the count (0 when empty) or a negative errno (-ENOMEM).
 */
int pos_outbox_peek(pos_outbox_t *ob, size_t max, pos_outbox_batch_t *batch);

/* Same, from the entry with id "from" (or the next one there is) on. */
int pos_outbox_peek_from(pos_outbox_t *ob, uint64_t from, size_t max, pos_outbox_batch_t *batch);

/* Frees a batch filled by pos_outbox_peek(); safe on a zeroed batch. */
void pos_outbox_batch_free(pos_outbox_batch_t *batch);

/*
 * Deletes the entry with this id once Redis confirmed it (queued on the
 * writer: from now on pos_outbox_peek() leaves it out). Without a writer
 * it is durable on return, and -ENOENT says it was not there (acked or
 * dropped before: harmless). Returns 0 or a negative errno.
 */
int pos_outbox_ack(pos_outbox_t *ob, uint64_t id);

/* Copies the counters into *out. */
void pos_outbox_stats(const pos_outbox_t *ob, pos_outbox_stats_t *out);

/*
 * Pure helper: copies the JSON object json (len bytes, ending in '}') into
 * out with ,"outboxId":<id> inserted before the closing brace. Returns the
 * length written (NUL-terminated), -EINVAL if json is not an object text,
 * -ENOSPC if out is too small.
 */
int pos_outbox_stamp(const char *json, size_t len, uint64_t id, char *out, size_t out_len);

/*
 * Record codec (pure): parses a stored value of len bytes into *e (id
 * left 0; pointers into rec). Returns 0 or -EBADMSG.
 */
int pos_outbox_record_parse(const void *rec, size_t len, pos_outbox_entry_t *e);

#endif /* AGENT_STORE_OUTBOX_H */
