#ifndef AGENT_INFO_H
#define AGENT_INFO_H

/*
 * INFO: what the agent tells about itself on the local API, read from the
 * subsystems' own counters. The wiring fills in where to look; this module
 * only reads (pointers must outlive it, NULL where a part is absent).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/api/api.h"
#include "agent/link/link.h"
#include "agent/msg/status.h"
#include "agent/payment/journal.h"
#include "agent/payment/payment.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "agent/store/writer.h"
#include "agent/sync/cachesvc.h"
#include "agent/sync/delivery.h"

/* What the trust checks turned away on the inventory and system channels
 * (the payment channel's are the payment module's own). */
typedef struct pos_info_trust {
    uint64_t unverified[4];   /* by pos_sign_verdict_t: unsigned, bad signature, stale */
    uint64_t other_scope;     /* naming another store than the channel's */
    uint64_t pos_app_applied; /* other tills' applications' inventory updates applied */
    uint64_t pos_app_ignored; /* POS applications' messages where none publishes */
} pos_info_trust_t;

typedef struct pos_info_sources {
    const char *terminal_id;
    const char *store_id;
    const char *master_name;    /* Sentinel master name */
    bool sharded;               /* Redis Cluster with sharded pub/sub */
    const uint64_t *started_ms; /* monotonic ms at start */
    const uint64_t *heartbeats_sent;
    const pos_dev_state_t *devices;         /* POS_DEV_COUNT states */
    pos_term_status_t (*status)(void *ctx); /* the terminal's status now */
    void *ctx;
    const pos_link_t *link;
    const pos_cachesvc_t *cache;
    const pos_delivery_t *delivery;
    const pos_payment_t *payment;
    pos_store_t *store;     /* NULL: no store */
    pos_outbox_t *outbox;   /* NULL: no store */
    pos_journal_t *journal; /* NULL: no store */
    pos_store_writer_t *writer; /* NULL: no store */
    const uint64_t *admitted;    /* per inbound source (pos_inbound_t order), or NULL */
    const uint64_t *over_budget;
    const uint64_t *own_echoes; /* the agent's own messages delivered back, per source */
    const uint64_t *degraded_to_stale;
    const pos_api_t *api;   /* the local API (its counters are zero when it is not running) */
    const pos_info_trust_t *trust; /* or NULL */
    /* Why payments cannot be recorded durably now ([a-z_] code), NULL when
     * they can; may be NULL itself. */
    const char *(*journal_reason)(void *ctx);
    const char *store_error;    /* why the store could not be opened, or "" */
    const int *recovered;       /* stores moved aside waiting for the operator, or NULL */
    const char *recovered_name; /* the first of them */
    bool signing;                  /* cloud messages must be signed ([payment] hmac_key_file) */
    /* The "metrics" section (the fleet's table, agent/fleet.c), written
     * into buf; NULL: none. */
    size_t (*metrics)(const void *ctx, char *buf, size_t cap);
    const void *metrics_ctx;
} pos_info_sources_t;

/*
 * Writes the INFO text of "section" ("all" or one of server, link, cache,
 * outbox, store, payment, inbound, security, devices, health, shared, clients, metrics;
 * case-insensitive) into buf (cap bytes; what does not fit is left out). Returns its length.
 */
size_t pos_info_write(const pos_info_sources_t *src, const char *section, char *buf, size_t cap);

#endif /* AGENT_INFO_H */
