#ifndef AGENT_FLEET_H
#define AGENT_FLEET_H

/*
 * What a fleet operator sees of this till (docs/contract.md "Metrics",
 * "Clock" and "Remote diagnostics"):
 *
 *  - the metrics, from one table (fleet.c) read through INFO's sources and
 *    written three ways: INFO's "# metrics" section, the Prometheus text
 *    file ([metrics] textfile, every interval_s) and the hash
 *    terminal:{terminalId}:metrics in Redis (every redis_interval_s, at
 *    most once a minute, with a TTL of three intervals);
 *  - the clock check: TIME at every connect and every [redis]
 *    clock_check_s, the offset in INFO, the metrics and the status value,
 *    a warning once per crossing of half the signature window;
 *  - remote diagnostics: a DIAG_REQUEST on diag:{terminalId} (signed when
 *    a key is set, one every 10 s) is answered with a DIAG_REPORT (the
 *    INFO text and the last warnings) on the diag:reply:{terminalId}:* channel it names.
 *
 * It lives with the wiring because it reads every subsystem's counters;
 * the pure parts are in agent/metrics/.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/info.h"
#include "agent/metrics/ring.h"
#include "agent/metrics/textfile.h"
#include "agent/msg/sign.h"
#include "conf/config.h"
#include "platform/bucket.h"

#define POS_FLEET_DIAG_INTERVAL_MS 10000u /* one diagnostics request answered per 10 s */

typedef struct pos_fleet_options {
    uv_loop_t *loop;
    const pos_config_t *cfg; /* must outlive the fleet */
    pos_link_t *link;
    pos_delivery_t *delivery; /* signs what is published */
    const pos_sign_keys_t *keys;
    const pos_info_sources_t *info; /* what the metrics and the report read */
    pos_info_trust_t *trust;        /* counts a request refused for its signature, or NULL */
} pos_fleet_options_t;

typedef struct pos_fleet {
    pos_fleet_options_t opt;
    uv_timer_t textfile_timer;
    uv_timer_t snapshot_timer;
    uv_timer_t clock_timer;
    unsigned open_parts; /* while closing */
    void (*closed_cb)(void *ctx);
    void *closed_ctx;
    bool textfile_on;
    pos_textfile_t textfile;
    pos_ring_t ring; /* the last warnings and errors */
    char metrics_key[96];
    char diag_channel[96];

    /* Clock (agent/metrics/clockcheck.h). */
    int64_t clock_offset_ms; /* POS_CLOCK_UNKNOWN until measured */
    int64_t rtt_ms;          /* of the last TIME, -1: none yet */
    uint64_t clock_checks;
    bool clock_above; /* the offset is over half the signature window */
    bool time_pending;
    uint64_t time_sent_wall_us;
    uint64_t time_sent_mono_us;
    uint64_t link_epoch; /* counts connects: a reply from an older one is ignored */

    /* Counters the subsystems do not keep. */
    uint64_t link_downs;
    uint64_t device_errors[POS_DEV_COUNT];
    uint64_t snapshots;   /* hashes written */
    uint64_t snapshot_ms; /* monotonic ms of the last one sent, 0: none */
    bool snapshot_after_clock; /* the connect's snapshot waits for TIME's answer */

    /* Diagnostics. */
    pos_bucket_t diag_bucket; /* what diag:{id} may bring before it is dropped unread */
    uint64_t diag_last_ms;    /* monotonic ms of the last answered request, 0: none */
    uint64_t diag_answered;
    uint64_t diag_refused;
    uint64_t diag_refused_logged_ms;
} pos_fleet_t;

/* Sets up (no I/O yet); installs the log tap feeding the warning ring.
 * Returns 0 or a negative errno (nothing left to close then). */
int pos_fleet_init(pos_fleet_t *f, const pos_fleet_options_t *opt);

/* Starts the text file's timer (when configured). */
void pos_fleet_start(pos_fleet_t *f);

/* The link came online: clock check and snapshot now, then periodically. */
void pos_fleet_online(pos_fleet_t *f);

/* The link went down. */
void pos_fleet_offline(pos_fleet_t *f);

/* A device changed state: counts the changes into a fault state. */
void pos_fleet_device(pos_fleet_t *f, unsigned which, pos_dev_state_t before,
                      pos_dev_state_t after);

/* A message on diag:{terminalId}. */
void pos_fleet_on_diag(pos_fleet_t *f, const char *payload, size_t len);

/* INFO's "# metrics" section into buf; returns its length. */
size_t pos_fleet_info(const pos_fleet_t *f, char *buf, size_t cap);

/* Redis's clock minus ours in ms, and whether it was measured. */
bool pos_fleet_clock(const pos_fleet_t *f, int64_t *offset_ms);

/* The Prometheus text now (what the file holds), for tests and the CLI:
 * length or a negative errno. */
int pos_fleet_prom(const pos_fleet_t *f, char *buf, size_t cap);

/* Closes the timers and the text file writer, then done(ctx); removes the
 * log tap. */
void pos_fleet_close(pos_fleet_t *f, void (*done)(void *ctx), void *ctx);

/* Frees what is left (the ring); after the loop ran the close. */
void pos_fleet_dispose(pos_fleet_t *f);

#endif /* AGENT_FLEET_H */
