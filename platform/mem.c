#include "platform/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEM_PAGE 4096u /* the smallest page size of our targets */

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

void pos_mem_zero(void *p, size_t n)
{
    unsigned char *b = p;

    while (n > 0) {
        size_t chunk = MEM_PAGE - ((uintptr_t)b & (MEM_PAGE - 1u));
        if (chunk > n) {
            chunk = n;
        }
        if (!all_zero(b, chunk)) {
            memset(b, 0, chunk);
        }
        b += chunk;
        n -= chunk;
    }
}

void *pos_mem_grow(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap) {
        return v;
    }
    size_t ncap = *cap != 0 ? *cap * 2 : first;
    if (ncap < *cap || ncap > SIZE_MAX / size) {
        return NULL;
    }
    void *nv = realloc(v, ncap * size);
    if (nv != NULL) {
        *cap = ncap;
    }
    return nv;
}
