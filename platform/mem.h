#ifndef PLATFORM_MEM_H
#define PLATFORM_MEM_H

#include <stddef.h>

/*
 * Zeroes n bytes at p like memset(p, 0, n), but leaves alone every page
 * that already reads as zero. The agent's big state objects (the agent,
 * its connections, the payment state machine, hundreds of KiB together)
 * live in static storage, which the loader zero-fills without backing it
 * with memory; a plain memset in their init functions would write every
 * page and make all of it resident. Reading an untouched page maps the
 * kernel's shared zero page and costs nothing.
 */
void pos_mem_zero(void *p, size_t n);

/*
 * Room for one more element in the array v, which holds n elements of size
 * bytes in *cap slots: returns v itself while n < *cap; otherwise v
 * reallocated to twice *cap slots (first slots when *cap is 0), *cap
 * updated, or NULL when out of memory (v and *cap then left as they were,
 * v still the caller's to free).
 */
void *pos_mem_grow(void *v, size_t n, size_t *cap, size_t size, size_t first);

#endif /* PLATFORM_MEM_H */
