#include "agent/api/authdelay.h"

#include <stddef.h>

uint32_t pos_authdelay_delay(uint32_t fails)
{
    uint32_t d = POS_AUTHDELAY_BASE_MS;

    if (fails == 0) {
        return 0;
    }
    /* Doubling, stopped at the cap before it could overflow. */
    for (uint32_t i = 1; i < fails && d < POS_AUTHDELAY_MAX_MS; i++) {
        d *= 2;
    }
    return d < POS_AUTHDELAY_MAX_MS ? d : POS_AUTHDELAY_MAX_MS;
}

static pos_authdelay_entry_t *find(const pos_authdelay_t *d, uid_t uid)
{
    for (size_t i = 0; i < POS_AUTHDELAY_UIDS; i++) {
        if (d->e[i].fails != 0 && d->e[i].uid == uid) {
            return (pos_authdelay_entry_t *)&d->e[i];
        }
    }
    return NULL;
}

uint64_t pos_authdelay_wait(const pos_authdelay_t *d, uid_t uid, uint64_t now_ms)
{
    const pos_authdelay_entry_t *e = find(d, uid);

    return e != NULL && e->next_ms > now_ms ? e->next_ms - now_ms : 0;
}

uint32_t pos_authdelay_fail(pos_authdelay_t *d, uid_t uid, uint64_t now_ms)
{
    pos_authdelay_entry_t *e = find(d, uid);

    if (e != NULL && now_ms >= e->next_ms && now_ms - e->next_ms >= POS_AUTHDELAY_FORGET_MS) {
        e->fails = 0; /* a mistake long ago does not add to today's */
    }
    if (e == NULL) {
        /* A free entry, else the one whose wait ended longest ago: the one
         * whose loss lets its user id guess sooner by the least. */
        for (size_t i = 0; i < POS_AUTHDELAY_UIDS; i++) {
            if (d->e[i].fails == 0) {
                e = &d->e[i];
                break;
            }
            if (e == NULL || d->e[i].next_ms < e->next_ms) {
                e = &d->e[i];
            }
        }
        if (e->fails != 0) {
            d->evicted++;
        }
        e->uid = uid;
        e->fails = 0;
    }
    if (e->fails < UINT32_MAX) {
        e->fails++;
    }
    uint32_t wait = pos_authdelay_delay(e->fails);
    e->next_ms = now_ms + wait;
    return wait;
}

void pos_authdelay_ok(pos_authdelay_t *d, uid_t uid)
{
    pos_authdelay_entry_t *e = find(d, uid);

    if (e != NULL) {
        e->fails = 0;
        e->next_ms = 0;
    }
}
