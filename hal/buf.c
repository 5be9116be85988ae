#include "hal/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void pos_buf_init(pos_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : POS_BUF_DEFAULT_MAX;
    b->error = 0;
    b->fixed = 0;
}

void pos_buf_init_fixed(pos_buf_t *b, uint8_t *storage, size_t cap)
{
    b->data = storage;
    b->len = 0;
    b->cap = storage ? cap : 0;
    b->max = b->cap;
    b->error = 0;
    b->fixed = 1;
}

static int buf_reserve(pos_buf_t *b, size_t extra)
{
    if (extra > b->max - b->len) {
        return -ENOSPC;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    if (b->fixed) {
        return -ENOSPC;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        /* Doubling cannot overflow here: need <= max, and we stop at max. */
        cap = cap > b->max / 2 ? b->max : cap * 2;
    }
    uint8_t *n = malloc(cap);
    if (n == NULL) {
        return -ENOMEM;
    }
    /* Copy and wipe instead of realloc: a receipt or a pinpad frame may
     * hold data we do not want left behind in freed heap blocks. */
    if (b->len) {
        memcpy(n, b->data, b->len);
    }
    if (b->data) {
        pos_buf_wipe_mem(b->data, b->cap);
        free(b->data);
    }
    b->data = n;
    b->cap = cap;
    return 0;
}

int pos_buf_append(pos_buf_t *b, const void *data, size_t len)
{
    if (b->error) {
        return b->error;
    }
    if (len == 0) {
        return 0;
    }
    int rc = buf_reserve(b, len);
    if (rc < 0) {
        b->error = rc;
        return rc;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int pos_buf_put(pos_buf_t *b, uint8_t byte)
{
    return pos_buf_append(b, &byte, 1);
}

int pos_buf_fill(pos_buf_t *b, uint8_t byte, size_t count)
{
    if (b->error) {
        return b->error;
    }
    int rc = buf_reserve(b, count);
    if (rc < 0) {
        b->error = rc;
        return rc;
    }
    if (count) {
        memset(b->data + b->len, byte, count);
        b->len += count;
    }
    return 0;
}

void pos_buf_reset(pos_buf_t *b)
{
    b->len = 0;
    b->error = 0;
}

void pos_buf_wipe(pos_buf_t *b)
{
    if (b->data) {
        pos_buf_wipe_mem(b->data, b->cap);
    }
    pos_buf_reset(b);
}

void pos_buf_free(pos_buf_t *b)
{
    pos_buf_wipe(b);
    if (!b->fixed) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void pos_buf_wipe_mem(void *p, size_t len)
{
    /* Stores through a volatile pointer are observable behaviour, so the
     * compiler cannot drop them as dead stores (unlike a final memset). */
    volatile uint8_t *v = p;
    while (len--) {
        *v++ = 0;
    }
}
