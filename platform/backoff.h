#ifndef PLATFORM_BACKOFF_H
#define PLATFORM_BACKOFF_H

/*
 * Reconnect backoff: exponential growth with full jitter (pure; no clock,
 * no randomness of its own). The caller owns the state and passes a random
 * value in, so tests are deterministic.
 *
 *   delay = random % (min(cap, base * 2^attempt) + 1)    (milliseconds)
 *
 * The doubling saturates at the cap, so a long outage cannot overflow it.
 */

#include <stdint.h>

typedef struct pos_backoff {
    uint32_t base_ms;  /* first delay's upper bound, ms (>= 1) */
    uint32_t cap_ms;   /* largest delay, ms; wins over base when smaller */
    uint32_t attempts; /* failed attempts since the last reset */
} pos_backoff_t;

/* Initialises the state. base_ms 0 is treated as 1. */
void pos_backoff_init(pos_backoff_t *b, uint32_t base_ms, uint32_t cap_ms);

/* Upper bound of the next delay in ms: min(cap, base * 2^attempts). */
uint32_t pos_backoff_ceiling(const pos_backoff_t *b);

/*
 * Returns the next delay in ms, drawn uniformly from [0, ceiling] with
 * "random" (any 32-bit value), and counts the attempt.
 */
uint32_t pos_backoff_next(pos_backoff_t *b, uint32_t random);

/*
 * Returns the cap itself: used after fatal errors (bad password, ACL denied)
 * so that they are retried slowly, without a tight loop. Counts the attempt.
 */
uint32_t pos_backoff_at_cap(pos_backoff_t *b);

/* Forgets the failed attempts (call once the link has been stable). */
void pos_backoff_reset(pos_backoff_t *b);

#endif /* PLATFORM_BACKOFF_H */
