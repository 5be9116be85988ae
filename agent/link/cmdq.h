#ifndef AGENT_LINK_CMDQ_H
#define AGENT_LINK_CMDQ_H

/*
 * Pending-command queue (pure): Redis answers commands in the order they
 * were sent, so each reply belongs to the oldest pending command. Every
 * entry carries a deadline; the queue tells its owner when the oldest one
 * has passed. Every callback is called exactly once per reply it expects,
 * or exactly once with an error when the queue is failed.
 */

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/*
 * Reply callback. On success err is 0 and reply is the server's reply (owned
 * by the caller: do not keep it past the call). On failure err is a negative
 * errno (-ETIMEDOUT, -ECONNRESET, -ECANCELED, ...) and reply is NULL.
 * A Redis error reply (-ERR ...) is delivered with err 0: the command
 * reached the server.
 */
typedef void (*pos_reply_cb)(void *ctx, const redisReply *reply, int err);

typedef struct pos_cmdq_entry {
    pos_reply_cb cb;       /* may be NULL: the reply is read and dropped */
    void *ctx;
    uint64_t deadline_ms;  /* in the owner's monotonic clock */
    uint32_t replies_left; /* SUBSCRIBE a b c expects three replies */
} pos_cmdq_entry_t;

typedef struct pos_cmdq {
    pos_cmdq_entry_t *ring;
    uint32_t cap;   /* allocated slots, a power of two */
    uint32_t head;  /* index of the oldest entry */
    uint32_t count; /* entries in use */
    uint32_t limit; /* most entries ever allowed */
} pos_cmdq_t;

/* Initialises an empty queue that holds at most "limit" commands. */
void pos_cmdq_init(pos_cmdq_t *q, uint32_t limit);

/* Frees the ring. The queue must be empty (fail it first). */
void pos_cmdq_free(pos_cmdq_t *q);

/*
 * Appends a command expecting "replies" (>= 1) replies.
 * Returns 0, -ENOBUFS when the limit is reached, or -ENOMEM.
 */
int pos_cmdq_push(pos_cmdq_t *q, pos_reply_cb cb, void *ctx, uint64_t deadline_ms,
                  uint32_t replies);

/*
 * Hands one reply to the oldest command; removes the command once all its
 * replies have arrived (before calling back, so the callback may push).
 * Returns 0, or -EPROTO when no command is waiting (an unsolicited reply).
 */
int pos_cmdq_deliver(pos_cmdq_t *q, const redisReply *reply);

/* Deadline of the oldest command, or UINT64_MAX when the queue is empty. */
uint64_t pos_cmdq_next_deadline(const pos_cmdq_t *q);

/* True when the oldest command's deadline is at or before now_ms. */
bool pos_cmdq_expired(const pos_cmdq_t *q, uint64_t now_ms);

/*
 * Empties the queue and calls every callback once, oldest first: the oldest
 * with head_err, the others with err (both < 0; the reply being read when
 * the connection was refused was the oldest one's). Callbacks may push onto
 * the (now empty) queue.
 */
void pos_cmdq_fail_all_head(pos_cmdq_t *q, int head_err, int err);

/* Number of commands waiting for replies. */
uint32_t pos_cmdq_pending(const pos_cmdq_t *q);

#endif /* AGENT_LINK_CMDQ_H */
