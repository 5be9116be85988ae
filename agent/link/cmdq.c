#include "agent/link/cmdq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CMDQ_MIN_CAP 8u

void pos_cmdq_init(pos_cmdq_t *q, uint32_t limit)
{
    memset(q, 0, sizeof(*q));
    q->limit = limit;
}

void pos_cmdq_free(pos_cmdq_t *q)
{
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = q->count = 0;
}

static int cmdq_grow(pos_cmdq_t *q)
{
    uint32_t ncap = q->cap ? q->cap * 2 : CMDQ_MIN_CAP;
    pos_cmdq_entry_t *n = malloc((size_t)ncap * sizeof(*n));

    if (n == NULL) {
        return -ENOMEM;
    }
    /* Unwrap the ring into the new array, oldest first. */
    for (uint32_t i = 0; i < q->count; i++) {
        n[i] = q->ring[(q->head + i) & (q->cap - 1)];
    }
    free(q->ring);
    q->ring = n;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int pos_cmdq_push(pos_cmdq_t *q, pos_reply_cb cb, void *ctx, uint64_t deadline_ms,
                  uint32_t replies)
{
    if (q->count >= q->limit) {
        return -ENOBUFS;
    }
    if (q->count == q->cap) {
        int rc = cmdq_grow(q);
        if (rc != 0) {
            return rc;
        }
    }
    pos_cmdq_entry_t *e = &q->ring[(q->head + q->count) & (q->cap - 1)];
    e->cb = cb;
    e->ctx = ctx;
    e->deadline_ms = deadline_ms;
    e->replies_left = replies ? replies : 1;
    q->count++;
    return 0;
}

int pos_cmdq_deliver(pos_cmdq_t *q, const redisReply *reply)
{
    if (q->count == 0) {
        return -EPROTO;
    }
    pos_cmdq_entry_t *e = &q->ring[q->head];
    pos_reply_cb cb = e->cb;
    void *ctx = e->ctx;

    if (--e->replies_left == 0) {
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
    }
    if (cb != NULL) {
        cb(ctx, reply, 0);
    }
    return 0;
}

uint64_t pos_cmdq_next_deadline(const pos_cmdq_t *q)
{
    return q->count ? q->ring[q->head].deadline_ms : UINT64_MAX;
}

bool pos_cmdq_expired(const pos_cmdq_t *q, uint64_t now_ms)
{
    return q->count != 0 && q->ring[q->head].deadline_ms <= now_ms;
}

void pos_cmdq_fail_all_head(pos_cmdq_t *q, int head_err, int err)
{
    pos_cmdq_t old = *q;

    /* Detach the entries first: a callback may push onto the fresh queue. */
    q->ring = NULL;
    q->cap = q->head = q->count = 0;
    for (uint32_t i = 0; i < old.count; i++) {
        pos_cmdq_entry_t *e = &old.ring[(old.head + i) & (old.cap - 1)];
        if (e->cb != NULL) {
            e->cb(e->ctx, NULL, i == 0 ? head_err : err);
        }
    }
    free(old.ring);
}

uint32_t pos_cmdq_pending(const pos_cmdq_t *q)
{
    return q->count;
}
