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

#endif /* PLATFORM_MEM_H */
