#ifndef TESTS_SUPPORT_LOOP_H
#define TESTS_SUPPORT_LOOP_H

/*
 * Driving an in-process libuv loop from a test (tests/loop, and unit tests
 * of loop-based code): run it until a condition over the test's own state
 * holds or a time limit passes, and a 10 ms ticker that measures how long
 * the loop was ever held up (no device may block it).
 */

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* A condition over the test's own state. */
typedef bool (*pos_test_loop_pred_t)(const void *arg);

/*
 * Runs loop until pred(arg) holds or timeout_ms pass. A 2 ms timer ends
 * every loop turn early, so pred is checked at least that often whatever
 * else the loop waits on (an inotify watch, a silent device). Returns
 * pred(arg) as last checked. The timer is closed again before returning.
 */
bool pos_test_loop_until(uv_loop_t *loop, pos_test_loop_pred_t pred, const void *arg,
                         uint32_t timeout_ms);

/* Runs loop for ms milliseconds. */
void pos_test_loop_for(uv_loop_t *loop, uint32_t ms);

/* Runs loop until *counter >= at_least or timeout_ms pass; true if it got there. */
bool pos_test_loop_until_int(uv_loop_t *loop, const int *counter, int at_least,
                             uint32_t timeout_ms);
bool pos_test_loop_until_unsigned(uv_loop_t *loop, const unsigned *counter, unsigned at_least,
                                  uint32_t timeout_ms);

/* A 10 ms timer on the loop that records the largest gap between its ticks. */
typedef struct pos_test_ticker {
    uv_timer_t timer;
    uint64_t last_ns;    /* uv_hrtime() of the last tick */
    uint64_t max_gap_ns; /* largest time between two ticks */
    int ticks;
} pos_test_ticker_t;

/* Starts the ticker on loop. */
void pos_test_ticker_start(pos_test_ticker_t *t, uv_loop_t *loop);
/* Stops it for good (closes the timer; the loop must run for the close to
 * complete). Its figures stay readable. */
void pos_test_ticker_stop(pos_test_ticker_t *t);

#endif /* TESTS_SUPPORT_LOOP_H */
