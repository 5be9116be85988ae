#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

/*
 * The agent: ties the Redis link, the heartbeat, the channel handlers,
 * signals and systemd notification together on one libuv loop.
 */

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "agent/api/admin.h"
#include "agent/api/api.h"
#include "agent/fleet.h"
#include "agent/info.h"
#include "agent/instance.h"
#include "agent/link/link.h"
#include "agent/link/tls.h"
#include "agent/msg/sign.h"
#include "agent/msg/status.h"
#include "agent/payment/journal.h"
#include "agent/payment/payment.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "agent/store/writer.h"
#include "agent/sync/cachesvc.h"
#include "agent/sync/delivery.h"
#include "agent/sync/echo.h"
#include "conf/config.h"
#include "platform/bucket.h"

typedef struct pos_agent pos_agent_t;

/* A channel handler: payload is the message body (not NUL-terminated). */
typedef void (*pos_channel_handler_t)(pos_agent_t *a, const char *payload, size_t len);

/* The inbound sources with a budget ([inbound]). */
typedef enum pos_inbound {
    POS_IN_PAYMENT = 0, /* payment:{terminalId} */
    POS_IN_INVENTORY,   /* inventory:{storeId} */
    POS_IN_SYSTEM,      /* system:alerts */
    POS_IN_INVALIDATION,/* keys Redis reports changed */
    POS_IN_COUNT
} pos_inbound_t;

typedef struct pos_channel {
    char name[96];
    pos_channel_handler_t handler;
    pos_inbound_t source;
    /* What the agent published on it, known when Redis delivers it back:
     * its own messages cost no token of the channel's budget. */
    pos_echo_t echo;
    /* Its own messages come back to be handled (the till's application's
     * inventory updates are applied like the cloud's), not dropped. */
    bool echo_handled;
} pos_channel_t;

struct pos_agent {
    uv_loop_t *loop;
    pos_config_t cfg;
    pos_instance_t *instance; /* the till's locks and Redis lease; NULL: no lease */
    int exit_code;            /* what main returns: 0, or POS_EX_ANOTHER */
    uv_timer_t refuse_timer;  /* stops the agent outside the link's callback */
    const char *config_path; /* for SIGHUP; may be NULL */
    const char *config_dir;  /* its drop-in directory: NULL beside it, "" none */

    pos_link_t link;
    pos_payment_t payment; /* the devices and the payment flow */

    /* The local store (LMDB): outbox and payment journal. store_ok is false
     * when it could not be opened; the agent then runs without them. */
    pos_store_t store;
    pos_store_writer_t writer; /* every write to the store, off the loop */
    bool writer_ok;
    pos_outbox_t outbox;
    pos_journal_t journal;
    bool store_ok;
    /* No journal, no payment (docs/offline.md): why payments cannot be
     * recorded now, if they cannot. */
    char store_error[320];         /* why the store could not be opened, "" */
    int journal_err;               /* the last journal write's status (0: durable) */
    int recovered;                 /* stores moved aside, waiting for the operator */
    char recovered_name[POS_STORE_NAME_MAX]; /* the first of them */
    pos_delivery_t delivery;
    pos_cachesvc_t cache;  /* offline reads */
    pos_api_t api;         /* the local socket */
    pos_admin_t admin;     /* the operator's commands on it */
    pos_info_sources_t info; /* what INFO reads */
    pos_channel_t channels[3]; /* payment, inventory, system */
    pos_fleet_t fleet;         /* metrics, clock check, remote diagnostics */
    char diag_channel[96];     /* diag:{terminalId}: diagnostics requests */
    pos_sign_keys_t sign;      /* count 0: messages are not signed */
    char probe_channel[96];
    char client_name[96];
    char status_key[96];
    char terminals_key[96]; /* terminals:{storeId} */

    uv_timer_t heartbeat_timer;
    uv_timer_t watchdog_timer;
    uv_timer_t shutdown_timer;
    pos_store_op_t barrier_op;    /* orders a status write after what came with it */
    bool status_barrier;          /* barrier_op is with the writer */
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup;

    pos_term_status_t published;  /* last status announced on system:terminals */
    pos_term_status_t written_status;             /* in the status key's last write */
    pos_dev_state_t written_devices[POS_DEV_COUNT];
    pos_dev_state_t devices[POS_DEV_COUNT];
    bool payment_active;
    uint64_t started_ms;          /* monotonic */
    uint64_t unverified_since_ms; /* wall clock: the start, then each disconnect */
    bool stopping;
    bool closing;                 /* agent_close_all() ran */
    unsigned shutdown_waits;      /* offline-status replies still expected */
    unsigned open_parts;          /* handles and subsystems still closing */
    uint64_t heartbeats_sent;
    uint64_t messages_dropped;
    pos_info_trust_t trust;             /* inventory, system and diag messages refused or ignored */
    pos_bucket_t inbound[POS_IN_COUNT]; /* admission per source */
    uint64_t admitted[POS_IN_COUNT];    /* let in */
    uint64_t over_budget[POS_IN_COUNT]; /* turned away (answered or handled cheaply) */
    uint64_t own_echoes[POS_IN_COUNT];  /* its own messages come back: no token spent */
    uint64_t degraded_to_stale;         /* over-budget invalidations: all marked stale */
    uint64_t last_all_stale_ms;         /* monotonic ms of the last of those */
};

/*
 * Initialises the agent on "loop" with a validated configuration (copied)
 * and the payment signing keys (copied; NULL: none). "tls" is the
 * initialised TLS context for a rediss:// URL (see
 * pos_tls_options_from_config), NULL for redis://; it must outlive the
 * agent. "instance" is the till's claim (pos_instance_claim(): its locks
 * held, the lease to take before subscribing), or NULL; it must outlive
 * the agent. Returns 0 or a negative errno; on failure what was set up is
 * closed again (run the loop once to let its handles close) and the agent
 * must not be started.
 */
int pos_agent_init(pos_agent_t *a, uv_loop_t *loop, const pos_config_t *cfg,
                   const char *config_path, const pos_sign_keys_t *keys, pos_tls_t *tls,
                   pos_instance_t *instance);

/* Starts connecting, the heartbeat, the signal handlers and the watchdog. */
void pos_agent_start(pos_agent_t *a);

/*
 * Begins a clean shutdown: writes status "offline" and publishes it if the
 * link is online (bounded wait), then closes every handle so that uv_run()
 * returns.
 */
void pos_agent_shutdown(pos_agent_t *a);

/*
 * Why payments cannot be recorded durably now: a [a-z_] code
 * ("store_unavailable", "writer_unavailable", "store_recovered",
 * "store_full", "journal_write_failed"), or NULL when they can.
 */
const char *pos_agent_journal_reason(const pos_agent_t *a);

/* The terminal's current status. */
static inline pos_term_status_t pos_agent_status(const pos_agent_t *a)
{
    return a->stopping ? POS_TERM_OFFLINE
                       : pos_status_compute(a->payment_active, pos_agent_journal_reason(a) == NULL,
                                            a->devices);
}

/* Wipes secrets held by the agent. Call after uv_run() has returned. */
void pos_agent_dispose(pos_agent_t *a);

#endif /* AGENT_AGENT_H */
