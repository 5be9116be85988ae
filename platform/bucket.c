#include "platform/bucket.h"

#define MILLI 1000u

void pos_bucket_init(pos_bucket_t *b, uint32_t rate, uint32_t burst, uint64_t now_ms)
{
    b->rate = rate != 0 ? rate : 1;
    b->burst = burst != 0 ? burst : b->rate;
    b->milli = (uint64_t)b->burst * MILLI;
    b->last_ms = now_ms;
}

static void bucket_refill(pos_bucket_t *b, uint64_t now_ms)
{
    uint64_t full = (uint64_t)b->burst * MILLI;
    uint64_t elapsed;

    if (now_ms <= b->last_ms) {
        return;
    }
    elapsed = now_ms - b->last_ms;
    b->last_ms = now_ms;
    /* rate tokens a second is rate thousandths a millisecond; past the time
     * it takes to fill up, the product could only overflow. */
    if (elapsed >= full / b->rate + 1) {
        b->milli = full;
        return;
    }
    b->milli += elapsed * b->rate;
    if (b->milli > full) {
        b->milli = full;
    }
}

uint32_t pos_bucket_take(pos_bucket_t *b, uint64_t now_ms)
{
    uint64_t missing;

    bucket_refill(b, now_ms);
    if (b->milli >= MILLI) {
        b->milli -= MILLI;
        return 0;
    }
    missing = MILLI - b->milli;
    return (uint32_t)((missing + b->rate - 1) / b->rate);
}
