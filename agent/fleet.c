/*
 * Fleet visibility (agent/fleet.h): the metrics table, read through INFO's
 * sources and written to INFO, the Prometheus text file and the Redis
 * hash; the clock check; remote diagnostics. The pure parts are in
 * agent/metrics/.
 */

#include "agent/fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "agent/metrics/clockcheck.h"
#include "agent/metrics/diag.h"
#include "agent/metrics/metrics.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/uverr.h"

#define FLEET_PROM_CAP   16384u /* the text file's document */
#define FLEET_INFO_CAP   16384u /* INFO "all", for a diagnostics report */
#define FLEET_DIAG_RATE  5u     /* diag:{id} messages looked at per second ... */
#define FLEET_DIAG_BURST 10u    /* ... and at once; beyond, dropped unread */

/* ---- the table ------------------------------------------------------------ */

static const pos_info_sources_t *src_info(const void *src)
{
    return ((const pos_fleet_t *)src)->opt.info;
}

static int64_t get_link_up(const void *src, unsigned arg)
{
    (void)arg;
    return pos_link_is_online(src_info(src)->link) ? 1 : 0;
}

static int64_t get_link(const void *src, unsigned arg)
{
    const pos_fleet_t *f = src;
    const pos_link_t *l = f->opt.info->link;
    switch (arg) {
    case 0:
        return (int64_t)l->online_count;
    case 1:
        return (int64_t)f->link_downs;
    case 2:
        return (int64_t)l->backoff.attempts;
    default:
        return f->rtt_ms;
    }
}

static int64_t get_clock(const void *src, unsigned arg)
{
    const pos_fleet_t *f = src;
    if (arg == 0) {
        return f->clock_offset_ms == POS_CLOCK_UNKNOWN ? 0 : f->clock_offset_ms;
    }
    return (int64_t)f->clock_checks;
}

static int64_t get_cache(const void *src, unsigned arg)
{
    const pos_info_sources_t *i = src_info(src);
    pos_cache_stats_t cs;

    if (!i->cache->open) {
        return 0;
    }
    pos_cache_stats(&i->cache->cache, &cs);
    const uint64_t v[] = {cs.hits, cs.stale_hits, cs.misses, cs.evictions, cs.entries, cs.bytes};
    return arg < sizeof(v) / sizeof(v[0]) ? (int64_t)v[arg] : 0;
}

/* Age in seconds of the oldest entry waiting in the outbox, 0: empty. */
static int64_t outbox_oldest_age_s(pos_outbox_t *ob)
{
    pos_outbox_batch_t batch;
    int64_t age = 0;

    memset(&batch, 0, sizeof(batch));
    if (pos_outbox_peek(ob, 1, &batch) > 0) {
        uint64_t now = pos_clock_wall_ms(), created = batch.entries[0].created_ms;
        age = created != 0 && now > created ? (int64_t)((now - created) / 1000u) : 0;
    }
    pos_outbox_batch_free(&batch);
    return age;
}

static int64_t get_outbox(const void *src, unsigned arg)
{
    const pos_info_sources_t *i = src_info(src);
    pos_outbox_stats_t os;

    memset(&os, 0, sizeof(os));
    if (i->outbox != NULL) {
        pos_outbox_stats(i->outbox, &os);
    }
    switch (arg) {
    case 0:
        return (int64_t)os.entries;
    case 1:
        return i->outbox != NULL && os.entries > 0 ? outbox_oldest_age_s(i->outbox) : 0;
    case 2:
        return (int64_t)i->delivery->delivered;
    case 3:
        return (int64_t)os.dropped;
    default:
        return (int64_t)i->delivery->lost;
    }
}

static int64_t get_payments(const void *src, unsigned arg)
{
    return (int64_t)src_info(src)->payment->published[arg];
}

static int64_t get_rejections(const void *src, unsigned arg)
{
    return (int64_t)src_info(src)->payment->rejections[arg];
}

/* Cloud messages refused on every channel, by why (as INFO's security section). */
static int64_t get_refused(const void *src, unsigned arg)
{
    const pos_info_sources_t *i = src_info(src);
    const pos_info_trust_t *t = i->trust;
    const pos_payment_t *p = i->payment;

    if (t == NULL) {
        return 0;
    }
    if (arg == 0) {
        return (int64_t)(t->other_scope + p->other_scope);
    }
    return (int64_t)(t->unverified[arg] + p->unverified_by[arg]);
}

static int64_t get_device_errors(const void *src, unsigned arg)
{
    return (int64_t)((const pos_fleet_t *)src)->device_errors[arg];
}

static int64_t get_store(const void *src, unsigned arg)
{
    const pos_info_sources_t *i = src_info(src);
    MDB_envinfo info;
    MDB_stat st;

    if (i->store == NULL) {
        return 0;
    }
    switch (arg) {
    case 0:
        if (mdb_env_info(i->store->env, &info) != 0 || mdb_env_stat(i->store->env, &st) != 0) {
            return 0;
        }
        return (int64_t)(((uint64_t)info.me_last_pgno + 1u) * st.ms_psize);
    case 1:
        return (int64_t)(i->store->map_limit != 0 ? i->store->map_limit : i->store->map_size);
    default:
        return (int64_t)i->store->disk_full;
    }
}

static int64_t get_agent(const void *src, unsigned arg)
{
    const pos_fleet_t *f = src;
    const pos_info_sources_t *i = f->opt.info;
    switch (arg) {
    case 0:
        return (int64_t)((pos_clock_mono_ms() - *i->started_ms) / 1000u);
    case 1:
        return (int64_t)*i->heartbeats_sent;
    case 2:
        return (int64_t)f->diag_answered;
    default:
        return (int64_t)f->diag_refused;
    }
}

/* A row's id: which reader (below) and its argument. */
enum {
    G_LINK_UP = 0,
    G_LINK,
    G_CLOCK,
    G_CACHE,
    G_OUTBOX,
    G_PAYMENTS,
    G_REJECTIONS,
    G_REFUSED,
    G_DEVICE_ERRORS,
    G_STORE,
    G_AGENT,
};
#define ID(group, arg) (((unsigned)(group) << 8) | (unsigned)(arg))

static int64_t fleet_get(const void *src, unsigned id)
{
    static int64_t (*const readers[])(const void *src, unsigned arg) = {
        get_link_up,    get_link,    get_clock,         get_cache, get_outbox, get_payments,
        get_rejections, get_refused, get_device_errors, get_store, get_agent,
    };
    unsigned group = id >> 8;
    return group < sizeof(readers) / sizeof(readers[0]) ? readers[group](src, id & 0xffu) : 0;
}

#define C POS_METRIC_COUNTER
#define G POS_METRIC_GAUGE

/* The one table: INFO, the text file and the Redis hash all come from it.
 * Keys are unique here and unlike every other INFO section's. */
static const pos_metric_t fleet_metrics[] = {
    POS_METRIC("link_up", "", "", G, "1 when the link to Redis is online", ID(G_LINK_UP, 0)),
    POS_METRIC("link_connects", "", "", C, "Times the link came online", ID(G_LINK, 0)),
    POS_METRIC("link_downs", "", "", C, "Times the link went down", ID(G_LINK, 1)),
    POS_METRIC("link_reconnect_attempts", "", "", G,
               "Connection attempts that failed since the link was last stable", ID(G_LINK, 2)),
    POS_METRIC("link_rtt_ms", "", "", G,
               "Round trip of the last TIME command to Redis in ms (-1: none yet)", ID(G_LINK, 3)),
    POS_METRIC("clock_offset_ms", "", "", G,
               "Redis's clock minus this till's in ms at the last check (0 before the first)",
               ID(G_CLOCK, 0)),
    POS_METRIC("clock_checks", "", "", C, "Clock checks against Redis TIME", ID(G_CLOCK, 1)),
    POS_METRIC("cache_lookups", "cache_hits", "result=\"hit\"", C, "Cache reads by what they found",
               ID(G_CACHE, 0)),
    POS_METRIC("", "cache_stale_hits", "result=\"stale\"", C, "", ID(G_CACHE, 1)),
    POS_METRIC("", "cache_misses", "result=\"miss\"", C, "", ID(G_CACHE, 2)),
    POS_METRIC("cache_evictions", "", "", C, "Cache entries evicted for room", ID(G_CACHE, 3)),
    POS_METRIC("cache_entries", "", "", G, "Entries in the local cache", ID(G_CACHE, 4)),
    POS_METRIC("cache_bytes", "", "", G, "Bytes of the local cache", ID(G_CACHE, 5)),
    POS_METRIC("outbox_depth", "", "", G, "Entries waiting in the outbox", ID(G_OUTBOX, 0)),
    POS_METRIC("outbox_oldest_age_seconds", "outbox_oldest_age_s", "", G,
               "Age of the oldest entry waiting in the outbox in seconds (0: empty)",
               ID(G_OUTBOX, 1)),
    POS_METRIC("outbox_delivered", "", "", C, "Outbox entries delivered", ID(G_OUTBOX, 2)),
    POS_METRIC("outbox_dropped", "", "", C,
               "Outbox entries dropped for room (never payment outcomes)", ID(G_OUTBOX, 3)),
    POS_METRIC("outbox_lost", "", "", C, "Messages lost with no store and no link",
               ID(G_OUTBOX, 4)),
    POS_METRIC("payments", "payments_approved", "outcome=\"approved\"", C,
               "Payment outcome messages published, by outcome",
               ID(G_PAYMENTS, POS_MSG_OUT_PAYMENT_APPROVED)),
    POS_METRIC("", "payments_declined", "outcome=\"declined\"", C, "",
               ID(G_PAYMENTS, POS_MSG_OUT_PAYMENT_DECLINED)),
    POS_METRIC("", "payments_cancelled", "outcome=\"cancelled\"", C, "",
               ID(G_PAYMENTS, POS_MSG_OUT_PAYMENT_CANCELLED)),
    POS_METRIC("", "payments_rejected", "outcome=\"rejected\"", C, "",
               ID(G_PAYMENTS, POS_MSG_OUT_PAYMENT_REJECTED)),
    POS_METRIC("payment_rejections", "rejected_busy", "reason=\"busy\"", C,
               "Payment requests rejected, by reason", ID(G_REJECTIONS, POS_PAY_REJ_BUSY)),
    POS_METRIC("", "rejected_invalid", "reason=\"invalid\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_INVALID)),
    POS_METRIC("", "rejected_duplicate", "reason=\"duplicate\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_DUPLICATE)),
    POS_METRIC("", "rejected_unsigned", "reason=\"unsigned\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_UNSIGNED)),
    POS_METRIC("", "rejected_bad_signature", "reason=\"bad_signature\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_BAD_SIGNATURE)),
    POS_METRIC("", "rejected_stale", "reason=\"stale\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_STALE)),
    POS_METRIC("", "rejected_unavailable", "reason=\"unavailable\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_UNAVAILABLE)),
    POS_METRIC("", "rejected_other", "reason=\"other\"", C, "",
               ID(G_REJECTIONS, POS_PAY_REJ_OTHER)),
    POS_METRIC("messages_refused", "msg_refused_unsigned", "reason=\"unsigned\"", C,
               "Cloud messages refused on every channel, by reason",
               ID(G_REFUSED, POS_SIGN_UNSIGNED)),
    POS_METRIC("", "msg_refused_bad_signature", "reason=\"bad_signature\"", C, "",
               ID(G_REFUSED, POS_SIGN_BAD)),
    POS_METRIC("", "msg_refused_stale", "reason=\"stale\"", C, "", ID(G_REFUSED, POS_SIGN_STALE)),
    POS_METRIC("", "msg_refused_other_scope", "reason=\"other_scope\"", C, "", ID(G_REFUSED, 0)),
    POS_METRIC("device_errors", "device_errors_display", "device=\"display\"", C,
               "Times a device went into a fault state", ID(G_DEVICE_ERRORS, POS_DEV_DISPLAY)),
    POS_METRIC("", "device_errors_printer", "device=\"printer\"", C, "",
               ID(G_DEVICE_ERRORS, POS_DEV_PRINTER)),
    POS_METRIC("", "device_errors_pinpad", "device=\"pinpad\"", C, "",
               ID(G_DEVICE_ERRORS, POS_DEV_PINPAD)),
    POS_METRIC("store_used_bytes", "", "", G,
               "Bytes of the local store in use (LMDB's high-water mark)", ID(G_STORE, 0)),
    POS_METRIC("store_size_bytes", "", "", G, "Bytes the local store may use", ID(G_STORE, 1)),
    POS_METRIC("store_disk_full", "store_full_refusals", "", C,
               "Store commits refused by a full file system", ID(G_STORE, 2)),
    POS_METRIC("uptime_seconds", "uptime_s", "", G, "Seconds since the agent started",
               ID(G_AGENT, 0)),
    POS_METRIC("status_writes", "", "", C, "Status key writes (heartbeats)", ID(G_AGENT, 1)),
    POS_METRIC("diag_requests", "diag_answered", "result=\"answered\"", C,
               "Diagnostics requests, by what became of them", ID(G_AGENT, 2)),
    POS_METRIC("", "diag_refused", "result=\"refused\"", C, "", ID(G_AGENT, 3)),
};

#undef C
#undef G
#undef ID

#define FLEET_NMETRICS (sizeof(fleet_metrics) / sizeof(fleet_metrics[0]))

size_t pos_fleet_info(const pos_fleet_t *f, char *buf, size_t cap)
{
    int64_t vals[FLEET_NMETRICS];

    pos_metrics_read(fleet_metrics, FLEET_NMETRICS, fleet_get, f, vals);
    return pos_metrics_info(fleet_metrics, FLEET_NMETRICS, vals, buf, cap);
}

int pos_fleet_prom(const pos_fleet_t *f, char *buf, size_t cap)
{
    int64_t vals[FLEET_NMETRICS];

    pos_metrics_read(fleet_metrics, FLEET_NMETRICS, fleet_get, f, vals);
    return pos_metrics_prom(fleet_metrics, FLEET_NMETRICS, vals, f->opt.cfg->terminal_id,
                            f->opt.cfg->store_id, buf, cap);
}

bool pos_fleet_clock(const pos_fleet_t *f, int64_t *offset_ms)
{
    *offset_ms = f->clock_offset_ms == POS_CLOCK_UNKNOWN ? 0 : f->clock_offset_ms;
    return f->clock_offset_ms != POS_CLOCK_UNKNOWN;
}

/* ---- the text file ---------------------------------------------------------- */

static void fleet_textfile_cb(uv_timer_t *t)
{
    pos_fleet_t *f = t->data;
    size_t cap;
    char *buf = pos_textfile_buffer(&f->textfile, &cap);
    int n;

    if (buf == NULL) {
        return; /* the last one is still being written: skip a round */
    }
    n = pos_fleet_prom(f, buf, cap);
    if (n < 0) {
        POS_WARN("metrics", "cannot format the text file: %s", strerror(-n));
        return;
    }
    n = pos_textfile_commit(&f->textfile, (size_t)n);
    if (n != 0 && n != -EBUSY) {
        POS_WARN("metrics", "cannot write %s: %s", f->textfile.path, strerror(-n));
    }
}

/* ---- the snapshot in Redis ---------------------------------------------------- */

static void fleet_snapshot_reply(void *ctx, const redisReply *r, int err)
{
    pos_fleet_t *f = ctx;

    if (err != 0) {
        POS_DEBUG("metrics", "snapshot not confirmed: %s", strerror(-err));
    } else if (r->type != REDIS_REPLY_INTEGER) {
        POS_WARN("metrics", "snapshot %s refused: %.*s", f->metrics_key,
                 r->type == REDIS_REPLY_ERROR ? pos_conn_log_len(r) : 0,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    } else {
        f->snapshots++;
    }
}

/* The hash and its TTL in one script: never one without the other, on
 * a Redis Cluster too (MULTI/EXEC are refused there, being per
 * connection), and nothing left half open on the connection should a
 * part of a MULTI block not be sent. KEYS[1] the hash, ARGV[1] its TTL,
 * then field value pairs. */
static const char fleet_snapshot_lua[] = "redis.call('HSET', KEYS[1], unpack(ARGV, 2)) "
                                         "return redis.call('EXPIRE', KEYS[1], ARGV[1])";

/* EVAL: HSET key ts <ms> field value ..., EXPIRE key 3 * interval. */
static void fleet_snapshot(pos_fleet_t *f)
{
    int64_t vals[FLEET_NMETRICS];
    char text[FLEET_NMETRICS * 21], ts[24], ttl[16];
    const char *argv[2 * FLEET_NMETRICS + 7];
    size_t lens[2 * FLEET_NMETRICS + 7];
    int n;

    if (!pos_link_is_online(f->opt.link)) {
        return;
    }
    f->snapshot_ms = pos_clock_mono_ms();
    pos_metrics_read(fleet_metrics, FLEET_NMETRICS, fleet_get, f, vals);
    snprintf(ttl, sizeof(ttl), "%u", f->opt.cfg->metrics_redis_interval_s * 3u);
    snprintf(ts, sizeof(ts), "%" PRIu64, pos_clock_wall_ms());
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = fleet_snapshot_lua;
    lens[1] = sizeof(fleet_snapshot_lua) - 1;
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = f->metrics_key;
    lens[3] = strlen(f->metrics_key);
    argv[4] = ttl;
    lens[4] = strlen(ttl);
    argv[5] = "ts";
    lens[5] = 2;
    argv[6] = ts;
    lens[6] = strlen(ts);
    n = pos_metrics_fields(fleet_metrics, FLEET_NMETRICS, vals, text, sizeof(text), argv + 7,
                           lens + 7);
    if (n < 0) {
        return;
    }
    if (pos_link_command(f->opt.link, fleet_snapshot_reply, f, n + 7, argv, lens) != 0) {
        POS_DEBUG("metrics", "snapshot not sent: the link went down");
    }
}

static void fleet_snapshot_cb(uv_timer_t *t)
{
    fleet_snapshot(t->data);
}

/* ---- the clock ------------------------------------------------------------------ */

static void fleet_time_reply(void *ctx, const redisReply *r, int err)
{
    pos_fleet_t *f = ctx;
    uint64_t rtt_us = pos_clock_mono_us() - f->time_sent_mono_us, server_us;
    bool cleared;

    f->time_pending = false;
    if (f->snapshot_after_clock) {
        /* The connect's snapshot waited for this, so that it carries the
         * clock offset and the round trip (also when TIME failed). */
        f->snapshot_after_clock = false;
        uint64_t snap_ms = (uint64_t)f->opt.cfg->metrics_redis_interval_s * 1000u;
        uv_timer_start(&f->snapshot_timer, fleet_snapshot_cb, 0, snap_ms);
    }
    if (err != 0) {
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        pos_clock_parse_time(r->element[0]->str, r->element[0]->len, r->element[1]->str,
                             r->element[1]->len, &server_us) != 0) {
        POS_WARN("clock", "TIME answered with something else than a time: clock not checked");
        return;
    }
    int64_t before = f->clock_offset_ms;
    f->clock_offset_ms = pos_clock_offset_ms(f->time_sent_wall_us, rtt_us, server_us);
    f->rtt_ms = (int64_t)(rtt_us / 1000u);
    f->clock_checks++;
    if (before == POS_CLOCK_UNKNOWN) {
        POS_INFO("clock", "offset %" PRId64 " ms against Redis (round trip %" PRId64 " ms)",
                 f->clock_offset_ms, f->rtt_ms);
    } else {
        POS_DEBUG("clock", "offset %" PRId64 " ms against Redis (round trip %" PRId64 " ms)",
                  f->clock_offset_ms, f->rtt_ms);
    }
    uint64_t limit_ms = (uint64_t)f->opt.cfg->payment_signature_window_s * 500u;
    if (pos_clock_crossed(&f->clock_above, f->clock_offset_ms, limit_ms, &cleared)) {
        POS_WARN("clock",
                 "this till's clock is %" PRId64 " ms off Redis's, over half the %u s "
                 "signature window: signed messages will be refused as stale; check its time "
                 "synchronisation (NTP)",
                 -f->clock_offset_ms, f->opt.cfg->payment_signature_window_s);
    } else if (cleared) {
        POS_INFO("clock", "this till's clock is within %" PRId64 " ms of Redis's again",
                 f->clock_offset_ms < 0 ? -f->clock_offset_ms : f->clock_offset_ms);
    }
}

static void fleet_clock_check(pos_fleet_t *f)
{
    const char *argv[] = {"TIME"};

    if (f->time_pending || !pos_link_is_online(f->opt.link)) {
        return;
    }
    f->time_sent_wall_us = (uint64_t)pos_clock_wall_ms() * 1000u;
    f->time_sent_mono_us = pos_clock_mono_us();
    if (pos_link_commandv(f->opt.link, fleet_time_reply, f, 1, argv) == 0) {
        f->time_pending = true;
    }
}

static void fleet_clock_cb(uv_timer_t *t)
{
    fleet_clock_check(t->data);
}

/* ---- diagnostics ------------------------------------------------------------------ */

typedef struct fleet_lines {
    pos_diag_line_t line[POS_RING_LINES];
    char text[POS_RING_LINES][POS_RING_LINE_MAX];
    size_t n;
} fleet_lines_t;

static void fleet_copy_line(void *ctx, uint64_t ts_ms, char level, const char *text)
{
    fleet_lines_t *l = ctx;

    if (l->n < POS_RING_LINES) {
        snprintf(l->text[l->n], sizeof(l->text[l->n]), "%s", text);
        l->line[l->n] = (pos_diag_line_t){ts_ms, level, l->text[l->n]};
        l->n++;
    }
}

/* A refusal: counted, and logged at most once per interval (a flood of
 * them must not flood the log, nor the ring the report carries). */
static void fleet_diag_refuse(pos_fleet_t *f, const char *why)
{
    uint64_t now = pos_clock_mono_ms();

    f->diag_refused++;
    if (f->diag_refused_logged_ms == 0 ||
        now - f->diag_refused_logged_ms >= POS_FLEET_DIAG_INTERVAL_MS) {
        f->diag_refused_logged_ms = now;
        POS_WARN("diag", "%s: diagnostics request refused (%" PRIu64 " so far)", why,
                 f->diag_refused);
    } else {
        POS_DEBUG("diag", "refused again: %s", why);
    }
}

void pos_fleet_on_diag(pos_fleet_t *f, const char *payload, size_t len)
{
    const pos_config_t *cfg = f->opt.cfg;
    pos_diag_request_t req;
    char why[160];
    int rc;

    if (!cfg->metrics_diagnostics) {
        fleet_diag_refuse(f, "off ([metrics] diagnostics)");
        return;
    }
    /* A flood is dropped unread: nothing is parsed or hashed for it. */
    if (pos_bucket_take(&f->diag_bucket, pos_clock_mono_ms()) != 0) {
        fleet_diag_refuse(f, "over its budget");
        return;
    }
    rc = pos_diag_decode(payload, len, cfg->terminal_id, &req, why, sizeof(why));
    if (rc == -EALREADY) {
        return;
    }
    if (rc != 0) {
        fleet_diag_refuse(f, why);
        return;
    }
    /* Signed like every cloud message when keys are set (docs/signing.md). */
    if (f->opt.keys != NULL && f->opt.keys->count > 0) {
        pos_sign_verdict_t v = pos_sign_verify(f->opt.keys, payload, len, pos_clock_wall_ms(),
                                               (uint64_t)cfg->payment_signature_window_s * 1000u);
        if (v != POS_SIGN_OK) {
            if (f->opt.trust != NULL) {
                f->opt.trust->unverified[v]++; /* with every channel's refusals */
            }
            if (v == POS_SIGN_STALE && f->clock_offset_ms != POS_CLOCK_UNKNOWN) {
                snprintf(why, sizeof(why),
                         "stale (this till's clock: %" PRId64 " ms against Redis's)",
                         -f->clock_offset_ms);
            } else {
                snprintf(why, sizeof(why), "%s", pos_sign_verdict_reason(v));
            }
            fleet_diag_refuse(f, why);
            return;
        }
    }
    uint64_t now = pos_clock_mono_ms();
    if (f->diag_last_ms != 0 && now - f->diag_last_ms < POS_FLEET_DIAG_INTERVAL_MS) {
        fleet_diag_refuse(f, "one answered every 10 s");
        return;
    }
    f->diag_last_ms = now;

    char *info = malloc(FLEET_INFO_CAP);
    fleet_lines_t *lines = malloc(sizeof(*lines));
    char *json = NULL;
    size_t json_len = 0;
    if (info == NULL || lines == NULL) {
        rc = -ENOMEM;
    } else {
        pos_info_write(f->opt.info, "all", info, FLEET_INFO_CAP);
        lines->n = 0;
        pos_ring_each(&f->ring, fleet_copy_line, lines);
        rc = pos_diag_report(cfg->terminal_id, cfg->store_id, pos_clock_wall_ms(), req.request_id,
                             info, lines->line, lines->n, &json, &json_len);
    }
    if (rc == 0) {
        rc = pos_delivery_publish_now(f->opt.delivery, req.reply_to, json, json_len);
    }
    if (rc == 0) {
        f->diag_answered++;
        POS_INFO("diag", "request %s answered on %s", req.request_id, req.reply_to);
    } else {
        POS_WARN("diag", "request %s not answered: %s", req.request_id, strerror(-rc));
    }
    free(json);
    free(lines);
    free(info);
}

/* ---- life ------------------------------------------------------------------------ */

static void fleet_log_tap(void *ctx, pos_log_level_t level, const char *module, const char *msg)
{
    pos_fleet_t *f = ctx;
    pos_ring_add(&f->ring, pos_clock_wall_ms(), level == POS_LOG_ERROR ? 'E' : 'W', module, msg);
}

int pos_fleet_init(pos_fleet_t *f, const pos_fleet_options_t *opt)
{
    const pos_config_t *cfg = opt->cfg;
    uv_timer_t *timers[] = {&f->textfile_timer, &f->snapshot_timer, &f->clock_timer};
    int rc;

    memset(f, 0, sizeof(*f));
    f->opt = *opt;
    f->clock_offset_ms = POS_CLOCK_UNKNOWN;
    f->rtt_ms = -1;
    snprintf(f->metrics_key, sizeof(f->metrics_key), "terminal:%s:metrics", cfg->terminal_id);
    snprintf(f->diag_channel, sizeof(f->diag_channel), "diag:%s", cfg->terminal_id);
    pos_bucket_init(&f->diag_bucket, FLEET_DIAG_RATE, FLEET_DIAG_BURST, pos_clock_mono_ms());
    rc = pos_ring_init(&f->ring);
    if (rc != 0) {
        return rc;
    }
    if (cfg->metrics_textfile[0] != '\0') {
        rc = pos_textfile_init(&f->textfile, opt->loop, cfg->metrics_textfile, FLEET_PROM_CAP);
        if (rc != 0) {
            goto fail_textfile;
        }
        f->textfile_on = true;
    }
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        /* uv_timer_init cannot fail on Linux; the handles are closed at close. */
        uv_timer_init(opt->loop, timers[i]);
        timers[i]->data = f;
    }
    pos_log_set_tap(fleet_log_tap, f);
    return 0;

fail_textfile:
    pos_ring_close(&f->ring);
    return rc;
}

void pos_fleet_start(pos_fleet_t *f)
{
    if (f->textfile_on) {
        uint64_t ms = (uint64_t)f->opt.cfg->metrics_interval_s * 1000u;
        uv_timer_start(&f->textfile_timer, fleet_textfile_cb, 0, ms);
    }
}

void pos_fleet_online(pos_fleet_t *f)
{
    uint64_t clock_ms = (uint64_t)f->opt.cfg->redis_clock_check_s * 1000u;
    uint64_t snap_ms = (uint64_t)f->opt.cfg->metrics_redis_interval_s * 1000u;
    uint64_t now = pos_clock_mono_ms();

    f->time_pending = false;
    fleet_clock_check(f);
    uv_timer_start(&f->clock_timer, fleet_clock_cb, clock_ms, clock_ms);
    /* At every connect, but at most once an interval: a link that flaps
     * must not write the hash more often (the timer keeps running while
     * offline and skips its rounds then). It goes out once TIME answered. */
    if (f->snapshot_ms == 0 || now - f->snapshot_ms >= snap_ms) {
        if (f->time_pending) {
            f->snapshot_after_clock = true;
        } else {
            uv_timer_start(&f->snapshot_timer, fleet_snapshot_cb, 0, snap_ms);
        }
    }
}

void pos_fleet_offline(pos_fleet_t *f)
{
    f->link_downs++;
    f->time_pending = false;
    f->snapshot_after_clock = false;
    uv_timer_stop(&f->clock_timer);
}

void pos_fleet_device(pos_fleet_t *f, unsigned which, pos_dev_state_t before, pos_dev_state_t after)
{
    if (which < POS_DEV_COUNT && pos_dev_state_is_fault(after) && !pos_dev_state_is_fault(before)) {
        f->device_errors[which]++;
    }
}

static void fleet_part_closed(pos_fleet_t *f)
{
    if (f->open_parts > 0 && --f->open_parts == 0 && f->closed_cb != NULL) {
        f->closed_cb(f->closed_ctx);
    }
}

static void fleet_timer_closed(uv_handle_t *h)
{
    fleet_part_closed(h->data);
}

static void fleet_textfile_closed(pos_textfile_t *t)
{
    fleet_part_closed((pos_fleet_t *)((char *)t - offsetof(pos_fleet_t, textfile)));
}

void pos_fleet_close(pos_fleet_t *f, void (*done)(void *ctx), void *ctx)
{
    uv_timer_t *timers[] = {&f->textfile_timer, &f->snapshot_timer, &f->clock_timer};

    pos_log_set_tap(NULL, NULL);
    f->closed_cb = done;
    f->closed_ctx = ctx;
    f->open_parts = 3u + (f->textfile_on ? 1u : 0u);
    for (size_t i = 0; i < 3; i++) {
        uv_close((uv_handle_t *)timers[i], fleet_timer_closed);
    }
    if (f->textfile_on) {
        pos_textfile_close(&f->textfile, fleet_textfile_closed);
    }
}

void pos_fleet_dispose(pos_fleet_t *f)
{
    pos_ring_close(&f->ring);
}
