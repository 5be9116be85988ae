#ifndef AGENT_SYNC_DELIVERY_H
#define AGENT_SYNC_DELIVERY_H

/*
 * Store-and-forward delivery: what the agent publishes or increments (all
 * but heartbeats and status announcements) goes into the durable outbox
 * first and leaves it only when Redis has acknowledged it. Entries are
 * sent in id order on the command connection; after a reconnect or a
 * restart, everything not yet acknowledged is sent again from the oldest
 * (at-least-once: each published message carries "outboxId" so the cloud
 * can drop a redelivery).
 *
 * Without a store (it could not be opened) delivery degrades to sending at
 * once while online and logging what is lost while offline.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/link/link.h"
#include "agent/msg/sign.h"
#include "agent/store/outbox.h"

#define POS_DELIVERY_WINDOW 64  /* entries in flight at once */
/* Their bytes, about (one entry at least, whatever its size): well under
 * the connection's 1 MiB write queue, whatever else shares it. */
#define POS_DELIVERY_WINDOW_BYTES (256u * 1024u)
#define POS_DELIVERY_KEYS   256 /* buckets of the per-key bookkeeping */

/* An INCRBY entry of the outbox: its id and amount. */
typedef struct pos_delivery_incr {
    uint64_t id;
    long long by;
} pos_delivery_incr_t;

/*
 * a + b modulo 2^64. A counter's pending increments are summed so: each
 * INCRBY keeps the till's value (confirmed + pending) within a long long,
 * but the pending sum alone may leave it (a confirmed -5 and pending
 * increments of LLONG_MAX and 5), and increments are added and taken off
 * in different orders. Modulo 2^64 the sum never overflows, and
 * confirmed + pending taken the same way is exact whenever the value fits.
 */
static inline long long pos_delivery_sum(long long a, long long b)
{
    return (long long)((unsigned long long)a + (unsigned long long)b);
}

/* a - b modulo 2^64 (an increment taken off the sum). */
static inline long long pos_delivery_unsum(long long a, long long b)
{
    return (long long)((unsigned long long)a - (unsigned long long)b);
}

/*
 * What the outbox holds for one key that the agent writes through it
 * (counter:*, session:*, temp:*), kept in memory and rebuilt from the
 * outbox at start: the increments not yet confirmed by Redis, the writes
 * not yet acknowledged, and the counter's last value Redis answered.
 */
typedef struct pos_delivery_key {
    struct pos_delivery_key *next;
    long long pending_sum;   /* INCRBY amounts not yet answered by Redis, modulo 2^64 */
    unsigned pending_writes; /* SET / PEXPIRE / DEL queued, not yet acknowledged */
    /* The last INCRBY entry whose reply counted: "confirmed" includes the
     * till's increments of the key up to this id, and pending_sum those
     * after it. */
    uint64_t incr_done_id;
    uint64_t write_done_id;  /* the last write entry whose ack counted */
    long long confirmed;     /* the counter's value in Redis's last answer */
    bool has_confirmed;
    /* Until the key has a confirmed value: its INCRBY entries the outbox
     * held at start, oldest first (counted in pending_sum), for the value
     * kept on the local store, which may include some of them
     * (pos_delivery_confirm()). */
    pos_delivery_incr_t *restored;
    size_t nrestored;
    size_t restored_cap;
    size_t len;
    char key[];
} pos_delivery_key_t;

/* A keeper's word that a counter's value it was handed is on the local
 * store (status 0) or could not be kept (a negative errno). */
typedef void (*pos_delivery_kept_cb)(void *arg, int status);

struct pos_delivery_keeping; /* private */
struct pos_delivery_unkept;  /* private */

/* The written-through operations on session:* and temp:* keys. */
typedef enum pos_delivery_kv_op {
    POS_DELIVERY_KV_SET,     /* SET key value [PX remaining], SET key:origin origin [PX ..] */
    POS_DELIVERY_KV_PEXPIRE, /* PEXPIRE key remaining, PEXPIRE key:origin remaining */
    POS_DELIVERY_KV_DEL, /* PEXPIRE key 0, PEXPIRE key:origin 0 (gone at once; no DEL in the ACL) */
} pos_delivery_kv_op_t;

typedef struct pos_delivery {
    pos_link_t *link;
    pos_outbox_t *ob;            /* NULL: no store */
    const pos_sign_keys_t *keys; /* NULL or none: the agent's messages go unsigned */
    uint64_t sent_upto;          /* highest id sent on the current connection */
    unsigned inflight;
    uint64_t inflight_bytes; /* their bytes (POS_DELIVERY_WINDOW_BYTES) */
    uint32_t sending_bytes;  /* the entry being sent: its share, for its reply's context */
    uint64_t epoch; /* bumped at each reconnect: late replies are ignored */
    uint64_t delivered;
    uint64_t lost;    /* sent without a store while offline */
    uint64_t refused; /* increments Redis refuses for good (pos_link_error_for_good): dropped */
    uint64_t hold_id; /* entries from this id on wait for pos_delivery_release(); 0: none */
    /* Released before it was durable (the payment's record comes back
     * first in the same hand-back): sent as soon as it is, not a loop turn
     * later. 0: none. */
    uint64_t urgent_id;
    uv_idle_t pump_idle; /* one send pass per loop turn for a burst of appends and acks */
    pos_delivery_key_t *bykey[POS_DELIVERY_KEYS]; /* per-key bookkeeping, by hash */
    /*
     * Keeps a counter's value Redis answered to a delivered INCRBY on the
     * local store (may be NULL: nothing kept), with upto, the last outbox
     * id whose increment of the key the value includes; kept(arg, status)
     * (kept may be NULL) once it is durable. Returns 0 when kept was or
     * will be called, else a negative errno (nothing kept). The entry's
     * deletion from the outbox waits for kept: a restart finds the
     * increment in the kept value, in the outbox, or in both (upto tells
     * them apart), never in neither unless the store refused the value.
     */
    int (*on_confirmed)(void *ctx, const char *key, long long value, uint64_t upto,
                        pos_delivery_kept_cb kept, void *arg);
    void *confirmed_ctx;
    /* Told of every message handed to Redis, as sent (signed, stamped),
     * so that the agent knows its own when Redis delivers it back (may be
     * NULL). */
    void (*on_published)(void *ctx, const char *channel, const char *msg, size_t len);
    void *published_ctx;
    struct pos_delivery_keeping *keeping; /* answered entries whose deletion waits for kept */
    /* Held messages the outbox could not take (a full store): sent as
     * they are once released, dropped when discarded; in id order. */
    struct pos_delivery_unkept *unkept;
    uint64_t discarded_id; /* the last held entry discarded (its append may fail after) */
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
} pos_delivery_t;

/*
 * Delivers through "link" from "ob" (NULL: no store), signing the agent's
 * own messages with "keys" (NULL or empty: unsigned). All three must
 * outlive the delivery. Returns 0 or a negative errno (nothing to close).
 */
int pos_delivery_init(pos_delivery_t *d, uv_loop_t *loop, pos_link_t *link, pos_outbox_t *ob,
                      const pos_sign_keys_t *keys);

/* Closes its handle; done(arg) (may be NULL) once closed. */
void pos_delivery_close(pos_delivery_t *d, void (*done)(void *arg), void *arg);

/* A queued entry's outcome, on the loop: 0 once durable, or a negative
 * errno (nothing kept); id is the outbox id (0 without a store). */
typedef void (*pos_delivery_cb)(void *ctx, int status, uint64_t id);

/* PUBLISH json on channel, durably (queued on the store writer; sent once
 * durable). payment: a payment outcome (never dropped when the outbox is
 * full). The agent's own message: signed when a key is set
 * (docs/signing.md). *id (may be NULL) gets the outbox id (0 without a
 * store). Returns 0 or a negative errno. */
int pos_delivery_publish(pos_delivery_t *d, const char *channel, const char *json, size_t len,
                         bool payment, uint64_t *id);

/* Same, choosing whether it is signed (sign false for what others hand the
 * agent to publish: the local API, which the agent must not vouch for), and
 * with cb(ctx, status, id) (may be NULL) once it is durable or failed. With
 * a cb, a message that cannot be queued returns the error and cb is not
 * called (without one it is sent at once, undurably, if it can be). */
int pos_delivery_publish_ex(pos_delivery_t *d, const char *channel, const char *json, size_t len,
                            bool payment, bool sign, pos_delivery_cb cb, void *ctx, uint64_t *id);

/*
 * Holds back the entry "id" and everything after it until
 * pos_delivery_release(d, id, discard): a payment queues PAYMENT_PROCESSING
 * with its journal record (one commit) and lets it go once the pinpad has
 * been asked. discard: it is never sent (acked as if delivered). One hold
 * at a time; a restart forgets it (the entry is then sent).
 */
void pos_delivery_hold(pos_delivery_t *d, uint64_t id);
void pos_delivery_release(pos_delivery_t *d, uint64_t id, bool discard);

/* Adds "sig" to the JSON object in buf (len bytes; cap: the buffer's size,
 * at least len + POS_SIGN_APPEND + 1) when a key is set. Returns the new
 * length (len unchanged without a key or on failure, logged). */
int pos_delivery_sign(pos_delivery_t *d, char *buf, size_t len, size_t cap);

/* INCRBY key n, then EXPIRE key ttl_s NX, durably; cb as for
 * pos_delivery_publish_ex() (may be NULL). Returns 0 or a negative errno
 * (nothing queued, cb not called). */
int pos_delivery_incrby(pos_delivery_t *d, const char *key, long long n, unsigned ttl_s,
                        pos_delivery_cb cb, void *ctx);

/*
 * A write-through of the local API (session:* and temp:*), durably and in
 * order: SET (value, vlen bytes; origin: the companion JSON written to
 * key:origin), PEXPIRE or DEL. expiry_ms is absolute (epoch ms; 0: none):
 * the remaining time is computed when the entry is sent, and an entry
 * whose expiry has passed by then is sent as a delete (PEXPIRE 0) of key and key:origin.
 * cb as for pos_delivery_publish_ex(). Returns 0 or a negative errno
 * (nothing queued, cb not called; -ENODEV without a store).
 */
int pos_delivery_kv(pos_delivery_t *d, pos_delivery_kv_op_t op, const char *key, const char *value,
                    size_t vlen, uint64_t expiry_ms, const char *origin, pos_delivery_cb cb,
                    void *ctx);

/* The key's bookkeeping, or NULL when nothing is pending or known for it. */
const pos_delivery_key_t *pos_delivery_key(const pos_delivery_t *d, const char *key, size_t len);

/* Records a counter's value as read from Redis or the local copy (GET
 * read-through, the value kept across a restart). upto: the last outbox
 * id whose increment of the key the value includes, as kept with it (0:
 * none beyond those whose reply counted already); the entries the outbox
 * held at start up to it are no longer pending. */
void pos_delivery_confirm(pos_delivery_t *d, const char *key, size_t len, long long value,
                          uint64_t upto);

/* Rebuilds the per-key bookkeeping from what the outbox holds (at start,
 * on the loop; a read transaction). Returns 0 or a negative errno. */
int pos_delivery_rebuild(pos_delivery_t *d);

/* SADD key member then EXPIRE key ttl_s (add), or SREM key member,
 * durably and in order with the messages around it (member: no blanks).
 * For active_transactions: a membership change lost with the link would
 * leave a finished payment listed as active. */
int pos_delivery_set_member(pos_delivery_t *d, const char *key, bool add, const char *member,
                            unsigned ttl_s);

/* PUBLISH json on channel now (signed when a key is set), not through the
 * outbox: for answers that may be lost with the link (nothing was done).
 * Returns 0, or a negative errno (counted as lost). */
int pos_delivery_publish_now(pos_delivery_t *d, const char *channel, const char *json, size_t len);

/* The link came online: resend from the oldest unacknowledged entry. */
void pos_delivery_online(pos_delivery_t *d);

/* Sends what the window allows (called after appends and replies). */
void pos_delivery_pump(pos_delivery_t *d);

#endif /* AGENT_SYNC_DELIVERY_H */
