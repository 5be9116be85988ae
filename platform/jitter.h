#ifndef PLATFORM_JITTER_H
#define PLATFORM_JITTER_H

/*
 * Jitter for reconnect delays (pos_backoff_next() takes it): xorshift32,
 * pure, with the state owned by the caller, one uint32_t per thing that
 * backs off. Seeded apart, two links or devices do not retry in step; seeded
 * alike (a test), they draw the same delays every run.
 *
 * Spread, not secrecy: never use it for keys, nonces or anything else that
 * must not be guessed.
 */

#include <stdint.h>

/*
 * Advances *state by one xorshift32 step (shifts 13, 17, 5; period
 * 2^32 - 1) and returns the new state: any 32-bit value but 0. A zero state,
 * the one value xorshift never leaves, is first replaced by a fixed nonzero
 * constant.
 */
uint32_t pos_jitter_next(uint32_t *state);

#endif /* PLATFORM_JITTER_H */
