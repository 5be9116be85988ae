#ifndef PLATFORM_HASH_H
#define PLATFORM_HASH_H

/*
 * FNV-1a, 64 bits (pure): the one hash behind the agent's in-memory
 * tables by key (the cache's overlay, the GETs in flight, the delivery's
 * keys, the rate limiter). Nothing stored on disk or sent depends on it.
 */

#include <stddef.h>
#include <stdint.h>

#define POS_FNV1A64_BASIS 14695981039346656037ull

/* h carried on over len more bytes of data (h: POS_FNV1A64_BASIS to start). */
static inline uint64_t pos_fnv1a64_add(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* The hash of len bytes of data. */
static inline uint64_t pos_fnv1a64(const void *data, size_t len)
{
    return pos_fnv1a64_add(POS_FNV1A64_BASIS, data, len);
}

#endif /* PLATFORM_HASH_H */
