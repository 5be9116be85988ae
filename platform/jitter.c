#include "platform/jitter.h"

#define JITTER_NONZERO 0x9e3779b9u /* 2^32 / golden ratio: any odd constant would do */

uint32_t pos_jitter_next(uint32_t *state)
{
    uint32_t x = *state != 0 ? *state : JITTER_NONZERO;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}
