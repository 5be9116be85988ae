#ifndef AGENT_LINK_SLOT_H
#define AGENT_LINK_SLOT_H

/*
 * Redis Cluster key slots (pure): CRC16-CCITT (XMODEM: polynomial 0x1021,
 * initial value 0) of the key, modulo 16384. When the key holds a '{'
 * followed later by a '}' with at least one byte between them, only those
 * bytes (the first such "hash tag") are hashed, so "{user1000}.following"
 * and "user1000" share a slot. Sharded channel names hash the same way.
 */

#include <stddef.h>
#include <stdint.h>

#define POS_SLOT_COUNT 16384u

/* CRC16-CCITT (XMODEM) of buf[0..len). "123456789" gives 0x31C3. */
uint16_t pos_slot_crc16(const void *buf, size_t len);

/* The slot of key[0..len) (binary-safe), 0..16383, hash tags honoured. */
uint16_t pos_slot_of(const char *key, size_t len);

#endif /* AGENT_LINK_SLOT_H */
