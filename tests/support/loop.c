#include "tests/support/loop.h"

#define PUMP_MS 2u
#define TICK_MS 10u

static void pump_cb(uv_timer_t *t)
{
    (void)t; /* only there so that UV_RUN_ONCE returns regularly */
}

bool pos_test_loop_until(uv_loop_t *loop, pos_test_loop_pred_t pred, const void *arg,
                         uint32_t timeout_ms)
{
    uv_timer_t pump;
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    bool ok;

    uv_timer_init(loop, &pump);
    uv_timer_start(&pump, pump_cb, PUMP_MS, PUMP_MS);
    while (!(ok = pred(arg)) && uv_hrtime() < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&pump, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* lets the pump's close complete */
    return ok;
}

static bool never(const void *arg)
{
    (void)arg;
    return false;
}

void pos_test_loop_for(uv_loop_t *loop, uint32_t ms)
{
    pos_test_loop_until(loop, never, NULL, ms);
}

typedef struct int_at_least {
    const int *counter;
    int at_least;
} int_at_least_t;

static bool int_reached(const void *arg)
{
    const int_at_least_t *a = arg;
    return *a->counter >= a->at_least;
}

bool pos_test_loop_until_int(uv_loop_t *loop, const int *counter, int at_least, uint32_t timeout_ms)
{
    int_at_least_t a = {counter, at_least};
    return pos_test_loop_until(loop, int_reached, &a, timeout_ms);
}

typedef struct unsigned_at_least {
    const unsigned *counter;
    unsigned at_least;
} unsigned_at_least_t;

static bool unsigned_reached(const void *arg)
{
    const unsigned_at_least_t *a = arg;
    return *a->counter >= a->at_least;
}

bool pos_test_loop_until_unsigned(uv_loop_t *loop, const unsigned *counter, unsigned at_least,
                                  uint32_t timeout_ms)
{
    unsigned_at_least_t a = {counter, at_least};
    return pos_test_loop_until(loop, unsigned_reached, &a, timeout_ms);
}

static void tick_cb(uv_timer_t *timer)
{
    pos_test_ticker_t *t = timer->data;
    uint64_t now = uv_hrtime();

    if (t->ticks > 0 && now - t->last_ns > t->max_gap_ns) {
        t->max_gap_ns = now - t->last_ns;
    }
    t->last_ns = now;
    t->ticks++;
}

void pos_test_ticker_start(pos_test_ticker_t *t, uv_loop_t *loop)
{
    t->last_ns = 0;
    t->max_gap_ns = 0;
    t->ticks = 0;
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, tick_cb, TICK_MS, TICK_MS);
}

void pos_test_ticker_stop(pos_test_ticker_t *t)
{
    uv_close((uv_handle_t *)&t->timer, NULL);
}
