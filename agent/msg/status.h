#ifndef AGENT_MSG_STATUS_H
#define AGENT_MSG_STATUS_H

/*
 * Terminal status (pure): the value of terminal:{id}:status and the
 * TERMINAL_STATUS message, exactly as CONTRACT.md shows them, and the rule
 * that derives the terminal's status from its parts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/device.h"

typedef enum pos_term_status {
    POS_TERM_ONLINE = 0,
    POS_TERM_BUSY,     /* a payment is in progress */
    POS_TERM_DEGRADED, /* a peripheral reports an error */
    POS_TERM_OFFLINE,  /* clean shutdown (or not yet connected) */
} pos_term_status_t;

/* pos_dev_state_t (device status) comes from the HAL. */

typedef enum pos_dev_slot {
    POS_DEV_DISPLAY = 0,
    POS_DEV_PRINTER,
    POS_DEV_PINPAD,
    POS_DEV_COUNT
} pos_dev_slot_t;

typedef struct pos_status_report {
    const char *terminal_id;
    const char *store_id;
    pos_term_status_t status;
    uint64_t ts_ms;    /* Unix epoch milliseconds */
    const char *version;
    const char *build; /* build id; NULL: no "build" field */
    uint64_t uptime_s;
    pos_dev_state_t devices[POS_DEV_COUNT];
    uint32_t outbox;   /* entries waiting for delivery */
    bool signing;      /* cloud messages must be signed, and ours are ("signed") */
    bool journal_ok;   /* payments can be recorded durably ("store":{"journal":"ok"}) */
    const char *journal_reason; /* [a-z_] code when not ok ("reason"), else NULL */
    uint32_t recovered; /* stores moved aside that wait for the operator */
    bool clock_known;   /* clock_offset_ms was measured ("clockOffsetMs") */
    int64_t clock_offset_ms; /* Redis's TIME minus the till's clock, ms */
} pos_status_report_t;

/* Lower-case contract names. */
const char *pos_term_status_name(pos_term_status_t s);
const char *pos_dev_state_name(pos_dev_state_t s);

/* True for device states that make the terminal "degraded". */
bool pos_dev_state_is_fault(pos_dev_state_t s);

/*
 * The terminal's status from its parts: busy while a payment runs (it tells
 * the cloud not to send another), else degraded while payments cannot be
 * recorded durably (!journal_ok: none is taken then) or any device is
 * faulty (error, offline, paper_out, cover_open; paper_low is only a
 * warning), else online.
 */
pos_term_status_t pos_status_compute(bool payment_active, bool journal_ok,
                                     const pos_dev_state_t devices[POS_DEV_COUNT]);

/*
 * Writes the status value JSON into buf: CONTRACT.md's fields in its
 * order, then this agent's own (docs/redis-link.md "Status"): "signed"
 * (true when cloud messages must be signed) and "store": {"journal": "ok"
 * or "unavailable", "reason" when unavailable, "recovered": the count of
 * stores moved aside}, and "clockOffsetMs" (Redis's clock minus the
 * till's, ms) once measured. Identifiers and the reason must be plain
 * ([A-Za-z0-9._-]); anything else is refused rather than escaped.
 * Returns the length written (without the NUL), -EINVAL or -ENOSPC.
 */
int pos_status_json(const pos_status_report_t *r, char *buf, size_t len);

/* Writes the TERMINAL_STATUS message. Same returns as pos_status_json(). */
int pos_status_change_json(const char *terminal_id, const char *store_id,
                           pos_term_status_t status, pos_term_status_t previous, uint64_t ts_ms,
                           char *buf, size_t len);

#endif /* AGENT_MSG_STATUS_H */
