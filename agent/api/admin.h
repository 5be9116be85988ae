#ifndef AGENT_API_ADMIN_H
#define AGENT_API_ADMIN_H

/*
 * The operator's commands on the local API socket, for the technician's
 * CLI (agent/api/cli.h), served beside the POS application's
 * (pos_localapi_add_commands):
 *
 *   JOURNAL [ALL]        the payment journal's records that need
 *                        reconciliation with the acquirer (ALL: every one)
 *   DEVICES              each device's state
 *   DEVICES TEST PRINTER a test receipt on the printer
 *   DEVICES TEST DISPLAY a test message on the customer display
 *
 * Records and devices are answered as arrays of flat field/value arrays
 * (as HGETALL answers), so that a client renders them as it likes.
 *
 * The tests make the till act and the journal holds card data (masked
 * PANs, authorisation codes), so only root or the user owning the socket
 * (the agent's) may ask for them: the caller's id comes from SO_PEERCRED,
 * and anybody else, the POS application included, is answered
 * "-NOPERM ..." (DEVICES without TEST stays open to every client).
 * Reading the journal runs on the loop in the agent's own read
 * transaction: the CLI never opens the store.
 */

#include <stddef.h>
#include <sys/types.h>

#include "agent/api/localapi.h"
#include "agent/msg/status.h"
#include "agent/payment/journal.h"
#include "hal/device.h"

/* At most this many journal records are answered (the journal keeps 1,024
 * finished ones by default, far less than the 1 MiB reply limit). */
#define POS_ADMIN_JOURNAL_MAX 2048

/* What the commands are given; the agent fills it. */
typedef struct pos_admin_options {
    const char *socket_path; /* its owner may drive the devices and read the journal */
    /* The journal to read; NULL when the agent has none (no store). */
    pos_journal_t *(*journal)(void *ctx);
    /* The devices' states, POS_DEV_COUNT of them in pos_dev_slot_t order. */
    void (*devices)(void *ctx, pos_dev_state_t *states);
    /* Drives one device (POS_DEV_PRINTER or POS_DEV_DISPLAY) for a test.
     * Returns 0 once the driver took it, -EBUSY while a payment owns the
     * devices, or another negative errno (-EPERM: the device is not usable). */
    int (*device_test)(void *ctx, pos_dev_slot_t which);
    void *ctx;
} pos_admin_options_t;

typedef struct pos_admin {
    pos_admin_options_t opt;
} pos_admin_t;

/* Serves the commands on s, an API server that runs (admin must outlive it). */
void pos_admin_attach(pos_admin_t *admin, pos_localapi_t *s, const pos_admin_options_t *opt);

/*
 * True when the peer uid may make the till act or read the journal: root,
 * the agent's own effective user (self) or the socket's owner (owner).
 */
bool pos_admin_may_drive(uid_t peer, uid_t self, uid_t owner);

/* Why a record in "state" needs reconciliation, or NULL when it does not. */
const char *pos_admin_reconcile_why(pos_payment_state_t state);

#endif /* AGENT_API_ADMIN_H */
