#include "agent/link/slot.h"

#include <string.h>

uint16_t pos_slot_crc16(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint16_t crc = 0;

    /* Bit by bit rather than a 512-byte table: keys are short, and the
     * binary's size counts on a till. */
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t pos_slot_of(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        /* "{}" is no tag: the whole key is hashed. */
        if (close != NULL && close > open + 1) {
            return pos_slot_crc16(open + 1, (size_t)(close - open - 1)) & (POS_SLOT_COUNT - 1);
        }
    }
    return pos_slot_crc16(key, len) & (POS_SLOT_COUNT - 1);
}
