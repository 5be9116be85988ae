#ifndef PLATFORM_ENDIAN_H
#define PLATFORM_ENDIAN_H

/*
 * Fixed byte order in unaligned buffers, whatever the CPU's: records on
 * disk and keys in the store are read back by another build, or another
 * ABI, of the agent. Pure and inline: a byte at a time, so any alignment
 * is fine and no host byte order is assumed.
 *
 * Big-endian for keys (memcmp order is then numeric order, which LMDB's
 * default comparison relies on); little-endian for fields inside records.
 */

#include <stdint.h>

/* Writes v into out[0..1], least significant byte first. */
static inline void pos_endian_put_le16(unsigned char out[2], uint16_t v)
{
    out[0] = (unsigned char)(v & 0xffu);
    out[1] = (unsigned char)(v >> 8);
}

/* Reads a u16 stored least significant byte first. */
static inline uint16_t pos_endian_get_le16(const unsigned char in[2])
{
    return (uint16_t)(in[0] | (unsigned)in[1] << 8);
}

/* Writes v into out[0..3], least significant byte first. */
static inline void pos_endian_put_le32(unsigned char out[4], uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        out[i] = (unsigned char)(v >> (8 * i));
    }
}

/* Reads a u32 stored least significant byte first. */
static inline uint32_t pos_endian_get_le32(const unsigned char in[4])
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

/* Writes v into out[0..7], least significant byte first. */
static inline void pos_endian_put_le64(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(v >> (8 * i));
    }
}

/* Reads a u64 stored least significant byte first. */
static inline uint64_t pos_endian_get_le64(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | in[i];
    }
    return v;
}

/* Writes v into out[0..7], most significant byte first. */
static inline void pos_endian_put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xffu);
        v >>= 8;
    }
}

/* Reads a u64 stored most significant byte first. */
static inline uint64_t pos_endian_get_be64(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

#endif /* PLATFORM_ENDIAN_H */
