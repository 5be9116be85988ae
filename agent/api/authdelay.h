#ifndef AGENT_API_AUTHDELAY_H
#define AGENT_API_AUTHDELAY_H

/*
 * How long a peer of the local API (a user id, from SO_PEERCRED) must wait
 * before its next password is checked (agent/api/localapi.c): each wrong
 * password doubles the wait of the next one, from POS_AUTHDELAY_BASE_MS up
 * to POS_AUTHDELAY_MAX_MS, and a right one clears it. The budget is the
 * user id's, not the connection's, so a process that reconnects for each
 * guess gains nothing, and it is that user id's alone, so a guesser never
 * slows the POS application running as another one.
 *
 * Pure: time comes in as an argument (any monotonic millisecond clock), no
 * I/O. The table is fixed (POS_AUTHDELAY_UIDS user ids); a new user id's
 * failure replaces the entry whose wait ended longest ago. A zeroed
 * pos_authdelay_t is an empty table.
 */

#include <stdint.h>
#include <sys/types.h>

#define POS_AUTHDELAY_UIDS      32u     /* user ids remembered */
#define POS_AUTHDELAY_BASE_MS   100u    /* wait after one wrong password, ms */
#define POS_AUTHDELAY_MAX_MS    5000u   /* the longest wait, ms */
#define POS_AUTHDELAY_FORGET_MS 600000u /* no wrong password this long after a wait: forgotten */

typedef struct pos_authdelay_entry {
    uid_t uid;
    uint32_t fails;   /* wrong passwords in a row; 0: a free entry */
    uint64_t next_ms; /* no password of this user id is checked before then */
} pos_authdelay_entry_t;

typedef struct pos_authdelay {
    pos_authdelay_entry_t e[POS_AUTHDELAY_UIDS];
    uint64_t evicted; /* entries replaced to make room */
} pos_authdelay_t;

/* The wait after "fails" wrong passwords in a row, ms (0 for none). */
uint32_t pos_authdelay_delay(uint32_t fails);

/* Milliseconds "uid" must still wait at now_ms before its next password
 * is checked; 0: it may be checked now. */
uint64_t pos_authdelay_wait(const pos_authdelay_t *d, uid_t uid, uint64_t now_ms);

/* A wrong password of "uid" checked at now_ms: its next one waits longer.
 * Returns that wait, ms. */
uint32_t pos_authdelay_fail(pos_authdelay_t *d, uid_t uid, uint64_t now_ms);

/* A right password of "uid": it waits no more. */
void pos_authdelay_ok(pos_authdelay_t *d, uid_t uid);

#endif /* AGENT_API_AUTHDELAY_H */
