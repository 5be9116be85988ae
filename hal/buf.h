#ifndef HAL_BUF_H
#define HAL_BUF_H

/*
 * Byte buffer for encoders: either growable (heap, up to a hard maximum) or
 * fixed on caller storage (no allocation at all). Errors are sticky: the
 * first failed append records a negative errno in "error" and every later
 * append is a no-op, so an encoder can emit a whole document and check once.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct pos_buf {
    uint8_t *data; /* bytes written so far (not NUL-terminated) */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes available in data */
    size_t max;    /* hard limit on len, bytes */
    int error;     /* 0, or the first failure: -ENOMEM, -ENOSPC */
    int fixed;     /* 1 when data is caller storage that must not grow */
} pos_buf_t;

/* Default hard limit of a growable buffer, bytes. */
#define POS_BUF_DEFAULT_MAX ((size_t)1 << 20)

/*
 * Initialises an empty growable buffer that allocates on first use and
 * never holds more than max bytes (0 means POS_BUF_DEFAULT_MAX).
 */
void pos_buf_init(pos_buf_t *b, size_t max);

/* Initialises a buffer on caller storage of cap bytes; it never allocates. */
void pos_buf_init_fixed(pos_buf_t *b, uint8_t *storage, size_t cap);

/*
 * Appends len bytes. Returns 0, -ENOSPC past the maximum or the fixed
 * capacity, -ENOMEM when allocation fails, or the earlier sticky error.
 */
int pos_buf_append(pos_buf_t *b, const void *data, size_t len);

/* Appends one byte. Returns as pos_buf_append(). */
int pos_buf_put(pos_buf_t *b, uint8_t byte);

/* Appends count copies of byte. Returns as pos_buf_append(). */
int pos_buf_fill(pos_buf_t *b, uint8_t byte, size_t count);

/* Forgets the content and the sticky error; keeps the storage. */
void pos_buf_reset(pos_buf_t *b);

/* Overwrites the whole storage with zeros (not optimised away), then resets. */
void pos_buf_wipe(pos_buf_t *b);

/* Wipes, then frees a growable buffer's storage; the buffer stays usable. */
void pos_buf_free(pos_buf_t *b);

/* Zeroes len bytes at p in a way the compiler may not elide (secrets). */
void pos_buf_wipe_mem(void *p, size_t len);

#endif /* HAL_BUF_H */
