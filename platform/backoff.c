#include "platform/backoff.h"

void pos_backoff_init(pos_backoff_t *b, uint32_t base_ms, uint32_t cap_ms)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->cap_ms = cap_ms;
    b->attempts = 0;
}

uint32_t pos_backoff_ceiling(const pos_backoff_t *b)
{
    uint64_t ceiling = b->base_ms;

    /* Double at most until the cap is reached: no shift past 63 bits and no
     * overflow however many attempts have failed. */
    for (uint32_t i = 0; i < b->attempts && ceiling < b->cap_ms; i++) {
        ceiling <<= 1;
    }
    return ceiling < b->cap_ms ? (uint32_t)ceiling : b->cap_ms;
}

uint32_t pos_backoff_next(pos_backoff_t *b, uint32_t random)
{
    uint32_t ceiling = pos_backoff_ceiling(b);
    uint32_t delay;

    if (ceiling == UINT32_MAX) {
        delay = random;
    } else {
        delay = random % (ceiling + 1);
    }
    if (b->attempts < UINT32_MAX) {
        b->attempts++;
    }
    return delay;
}

uint32_t pos_backoff_at_cap(pos_backoff_t *b)
{
    if (b->attempts < UINT32_MAX) {
        b->attempts++;
    }
    return b->cap_ms;
}

void pos_backoff_reset(pos_backoff_t *b)
{
    b->attempts = 0;
}
