#ifndef AGENT_SYNC_ECHO_H
#define AGENT_SYNC_ECHO_H

/*
 * The agent's own messages, recognised when Redis hands them back (pure).
 * Redis delivers a PUBLISH to every subscriber of the channel, the
 * publisher's own subscriber connection included: what the agent
 * publishes on a channel it listens to (its answers on
 * payment:{terminalId}, the POS application's messages it relays to
 * inventory:{storeId}) comes back to it. Those echoes must not spend the
 * channel's inbound budget, or the agent's own traffic refuses the
 * cloud's requests.
 *
 * One per channel: the length and hash of each message sent (the exact
 * bytes, signature included), in a ring of POS_ECHO_SLOTS; a message that
 * matches one is the echo, and takes the entry, so a copy of it published
 * again by anyone is an ordinary message. A full ring overwrites its
 * oldest entry, and an entry older than POS_ECHO_MAX_AGE_MS no longer
 * matches (its echo was lost with a connection): an echo not recognised
 * only costs a token, as every message does.
 *
 * FNV-1a is no cryptographic hash, and need not be: a message taken for an
 * echo by a collision is one of the same length and hash as one the agent
 * sent in the last seconds, which a third party can only craft to have its
 * own message ignored; each entry lets one message through, once. Even
 * that needs the ring's key: the hash starts from a basis drawn at random
 * when the agent starts (pos_echo_init), so a collision worked out against
 * plain FNV-1a, or against another till's key, does not hold here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_ECHO_SLOTS      128 /* over the outbox's window (64 in flight) and the direct answers */
#define POS_ECHO_MAX_AGE_MS 10000u /* an echo comes back within a round trip */

typedef struct pos_echo_slot {
    uint64_t hash;  /* FNV-1a of the message from the ring's basis */
    uint64_t at_ms; /* monotonic ms it was sent */
    size_t len;
    bool used;
} pos_echo_slot_t;

typedef struct pos_echo {
    pos_echo_slot_t slot[POS_ECHO_SLOTS];
    uint64_t basis; /* FNV-1a's starting value: the key, secret to the agent */
    unsigned next; /* the slot the next message takes: the oldest once all are used */
    unsigned used; /* slots in use (none: a message is not even hashed) */
} pos_echo_t;

/* An empty ring hashing with key (any value; random per start in the
 * agent, so that nobody outside can work out a collision). */
void pos_echo_init(pos_echo_t *e, uint64_t key);

/* The hash a message gets in e's ring (for tests). */
uint64_t pos_echo_hash(const pos_echo_t *e, const void *msg, size_t len);

/* The message (len bytes, exactly as published) was sent at now_ms
 * (monotonic). */
void pos_echo_note(pos_echo_t *e, const void *msg, size_t len, uint64_t now_ms);

/*
 * Is the message (len bytes, as received at now_ms) the echo of one noted
 * within POS_ECHO_MAX_AGE_MS? True takes that entry; false leaves the ring
 * as it was, but for the entries found too old, which go.
 */
bool pos_echo_take(pos_echo_t *e, const void *msg, size_t len, uint64_t now_ms);

#endif /* AGENT_SYNC_ECHO_H */
