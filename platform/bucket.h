#ifndef PLATFORM_BUCKET_H
#define PLATFORM_BUCKET_H

/*
 * A token bucket (pure: the caller passes the time in, so tests are
 * deterministic). It holds at most "burst" tokens and gains "rate" tokens
 * per second; each unit of work takes one. Tokens are counted in
 * thousandths, so a rate below 1000/s still refills smoothly from one
 * millisecond to the next.
 */

#include <stdint.h>

typedef struct pos_bucket {
    uint32_t rate;    /* tokens gained per second (>= 1) */
    uint32_t burst;   /* most tokens held (>= 1) */
    uint64_t milli;   /* tokens held now, in thousandths */
    uint64_t last_ms; /* time of the last refill, caller's clock, ms */
} pos_bucket_t;

/* Initialises a full bucket at now_ms. rate 0 is treated as 1, burst 0 as
 * the rate (one second's worth). */
void pos_bucket_init(pos_bucket_t *b, uint32_t rate, uint32_t burst, uint64_t now_ms);

/*
 * Takes one token at now_ms (a monotonic clock in ms; a time earlier than
 * the last one counts as no time passed). Returns 0 when a token was taken,
 * or the milliseconds (>= 1) until one will be there; nothing is taken then.
 */
uint32_t pos_bucket_take(pos_bucket_t *b, uint64_t now_ms);

#endif /* PLATFORM_BUCKET_H */
