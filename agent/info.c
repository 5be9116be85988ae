/*
 * INFO: what the agent tells about itself on the local API. It reads every
 * subsystem's counters, so it lives with the wiring, not in the API.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agent/info.h"
#include "platform/clock.h"
#include "platform/version.h"

typedef struct info_buf {
    char *buf;
    size_t cap;
    size_t len;
} info_buf_t;

/* Appends formatted text; what does not fit is left out whole. */
__attribute__((format(printf, 2, 3))) static void info_add(info_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
    } else if (b->len < b->cap) {
        b->buf[b->len] = '\0';
    }
}

/* The agent's resident memory, bytes (/proc/self/statm: procfs, never blocks); 0 unknown. */
static uint64_t info_rss(void)
{
    unsigned long long pages_total = 0, pages_rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    long page = sysconf(_SC_PAGESIZE);

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%llu %llu", &pages_total, &pages_rss) != 2) {
        pages_rss = 0;
    }
    fclose(f);
    return (uint64_t)pages_rss * (uint64_t)(page > 0 ? page : 4096);
}

static bool info_want(const char *want, const char *name)
{
    return strcasecmp(want, "all") == 0 || strcasecmp(want, name) == 0;
}

size_t pos_info_write(const pos_info_sources_t *a, const char *want, char *buf, size_t cap)
{
    info_buf_t b = {buf, cap, 0};

    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    if (info_want(want, "server")) {
        info_add(&b,
                 "# server\r\nposagent_version:%s\r\nposagent_build:%s\r\n"
                 "terminal_id:%s\r\nstore_id:%s\r\n"
                 "uptime_in_seconds:%" PRIu64 "\r\nstatus:%s\r\n\r\n",
                 POS_VERSION, POS_BUILD_ID, a->terminal_id, a->store_id,
                 (pos_clock_mono_ms() - *a->started_ms) / 1000u,
                 pos_term_status_name(pos_link_is_online(a->link) ? a->status(a->ctx)
                                                                  : POS_TERM_OFFLINE));
    }
    if (info_want(want, "link")) {
        uint16_t port;
        const char *host = pos_link_server(a->link, &port);
        info_add(&b,
                 "# link\r\nonline:%d\r\nredis:%s:%u\r\nconnects:%" PRIu64 "\r\n"
                 "reconnect_attempts:%u\r\nheartbeats_sent:%" PRIu64 "\r\n",
                 pos_link_is_online(a->link), host, (unsigned)port, a->link->online_count,
                 a->link->backoff.attempts, *a->heartbeats_sent);
        {
            /* What the servers sent that the agent would not take. */
            pos_conn_stats_t ls;
            pos_link_stats(a->link, &ls);
            info_add(&b,
                     "replies_refused:%" PRIu64 "\r\nread_pauses:%" PRIu64
                     "\r\npmessages_dropped:%" PRIu64 "\r\n",
                     ls.refused, ls.pauses, ls.pushes_dropped);
        }
        if (a->link->cluster != NULL) {
            /* Redis Cluster: the map, the connections, the redirections. */
            pos_cluster_stats_t cs;
            pos_cluster_stats(a->link->cluster, &cs, NULL);
            info_add(&b,
                     "cluster_primaries:%u\r\ncluster_connections:%u\r\n"
                     "cluster_subscribers:%u\r\ncluster_pubsub:%s\r\ncluster_moved:%" PRIu64
                     "\r\ncluster_asked:%" PRIu64 "\r\ncluster_tryagain:%" PRIu64
                     "\r\ncluster_refreshes:%" PRIu64 "\r\ncluster_resubscribed:%" PRIu64
                     "\r\ncluster_idle_closed:%" PRIu64 "\r\ncluster_mget_split:%" PRIu64 "\r\n",
                     cs.primaries, cs.connections, cs.subscribers,
                     a->sharded ? "sharded" : "classic", cs.moved, cs.asked, cs.tryagain,
                     cs.refreshes, cs.resubscribed, cs.idle_closed, cs.split);
        }
        if (a->link->use_sentinel) {
            /* Where the master is comes from the sentinels. */
            info_add(&b, "sentinel_master_name:%s\r\nsentinel_failovers:%" PRIu64 "\r\n",
                     a->master_name, a->link->failovers);
        }
        info_add(&b, "\r\n");
    }
    if (info_want(want, "cache")) {
        pos_cache_stats_t cs;
        memset(&cs, 0, sizeof(cs));
        if (a->cache->open) {
            pos_cache_stats(&a->cache->cache, &cs);
        }
        info_add(&b,
                 "# cache\r\ncache_open:%d\r\nhits:%" PRIu64 "\r\nstale_hits:%" PRIu64
                 "\r\nmisses:%" PRIu64 "\r\nentries:%" PRIu64 "\r\nbytes:%" PRIu64
                 "\r\nevictions:%" PRIu64 "\r\nshared_fetches:%" PRIu64 "\r\nraced_fetches:%" PRIu64
                 "\r\nstore_disk_full:%" PRIu64 "\r\noversize_refused:%" PRIu64 "\r\n",
                 a->cache->open, cs.hits, cs.stale_hits, cs.misses, cs.entries, cs.bytes,
                 cs.evictions, a->cache->fetches_shared, a->cache->fetches_raced,
                 a->store != NULL ? a->store->disk_full : 0, a->cache->oversize_refused);
        /* How the warm-up found the keys: index sets, or a SCAN fallback. */
        info_add(&b,
                 "warm_inventory:%s\r\nwarm_products:%s\r\nwarm_scan_fallbacks:%" PRIu64
                 "\r\nwarm_skipped_unchanged:%" PRIu64 "\r\nwarm_members_refused:%" PRIu64
                 "\r\n",
                 a->cache->warm_source[1] != NULL ? a->cache->warm_source[1] : "none",
                 a->cache->warm_source[0] != NULL ? a->cache->warm_source[0] : "none",
                 a->cache->warm_scans, a->cache->warm_skipped, a->cache->warm_members_refused);
        /* The cache's writes waiting for the store writer, and what pressure cost. */
        info_add(&b,
                 "pending_writes:%" PRIu64 "\r\npending_bulk:%" PRIu64
                 "\r\nwrites_shed:%" PRIu64 "\r\ninvalidations_escalated:%" PRIu64
                 "\r\nwrites_refused:%" PRIu64 "\r\ninvalidate_messages:%" PRIu64 "\r\n\r\n",
                 cs.overlay_ops, cs.overlay_bulks, cs.shed, cs.escalated, cs.write_errors,
                 a->cache->invalidations);
    }
    if (info_want(want, "outbox")) {
        pos_outbox_stats_t os;
        memset(&os, 0, sizeof(os));
        if (a->outbox != NULL) {
            pos_outbox_stats(a->outbox, &os);
        }
        info_add(&b,
                 "# outbox\r\noutbox_open:%d\r\noutbox_entries:%" PRIu64 "\r\noutbox_bytes:%" PRIu64
                 "\r\npayment_entries:%" PRIu64 "\r\ndropped:%" PRIu64 "\r\ndelivered:%" PRIu64
                 "\r\nin_flight:%u\r\nlost_without_store:%" PRIu64 "\r\nrefused_for_good:%" PRIu64
                 "\r\n\r\n",
                 a->outbox != NULL, os.entries, os.bytes, os.payment, os.dropped,
                 a->delivery->delivered, a->delivery->inflight, a->delivery->lost,
                 a->delivery->refused);
    }
    if (info_want(want, "store")) {
        pos_store_writer_stats_t ws;
        memset(&ws, 0, sizeof(ws));
        if (a->writer != NULL) {
            pos_store_writer_stats(a->writer, &ws);
        }
        /* No journal, no payment: whether payments can be recorded, and why not. */
        const char *why = a->journal_reason != NULL ? a->journal_reason(a->ctx) : NULL;
        info_add(&b, "# store\r\njournal:%s\r\n", why == NULL ? "ok" : "unavailable");
        if (why != NULL) {
            info_add(&b, "journal_reason:%s\r\n", why);
        }
        if (a->store_error != NULL && a->store_error[0] != '\0') {
            info_add(&b, "store_error:%s\r\n", a->store_error);
        }
        if (a->recovered != NULL) {
            info_add(&b, "recovered_stores:%d\r\n", *a->recovered);
            if (*a->recovered > 0) {
                info_add(&b, "recovered_store:%s\r\n", a->recovered_name);
            }
        }
        /* Every write goes through the writer: its durable commits are
         * write-ahead log records (or LMDB commits flushed in full); LMDB
         * commits several of them at once (docs/offline.md). */
        info_add(&b,
                 "store_commits:%" PRIu64 "\r\nstore_writes:%" PRIu64
                 "\r\nstore_writes_failed:%" PRIu64 "\r\nstore_writes_queued:%" PRIu64
                 "\r\nstore_largest_commit:%" PRIu64 "\r\nstore_wal:%s\r\nstore_wal_records:%" PRIu64
                 "\r\nstore_wal_checkpoints:%" PRIu64 "\r\nstore_lmdb_commits:%" PRIu64
                 "\r\nstore_slowest_commit_us:%" PRIu64 "\r\n\r\n",
                 ws.groups, ws.ops, ws.failed, ws.queued, ws.largest, ws.wal_on ? "on" : "off",
                 ws.wal_records, ws.wal_checkpoints, ws.lmdb_commits, ws.commit_us_max);
    }
    if (info_want(want, "payment")) {
        info_add(&b,
                 "# payment\r\nstate:%s\r\nmessages_handled:%" PRIu64
                 "\r\nmessages_rejected:%" PRIu64 "\r\njournal_entries:%" PRIu64
                 "\r\nrecords_request:%" PRIu64 "\r\nrecord_commits_request:%" PRIu64
                 "\r\nrecord_commits_request_max:%" PRIu64 "\r\nrecords_outcome:%" PRIu64
                 "\r\nrecord_commits_outcome:%" PRIu64 "\r\nrecord_commits_outcome_max:%" PRIu64
                 "\r\n\r\n",
                 pos_payment_state_name(pos_payment_sm_state(&a->payment->sm)), a->payment->handled,
                 a->payment->rejected, a->journal != NULL ? pos_journal_count(a->journal) : 0,
                 a->payment->records_timed[POS_PAY_REC_REQUEST],
                 a->payment->record_commits[POS_PAY_REC_REQUEST],
                 a->payment->record_commits_max[POS_PAY_REC_REQUEST],
                 a->payment->records_timed[POS_PAY_REC_OUTCOME],
                 a->payment->record_commits[POS_PAY_REC_OUTCOME],
                 a->payment->record_commits_max[POS_PAY_REC_OUTCOME]);
    }
    if (info_want(want, "inbound") && a->admitted != NULL) {
        static const char names[][13] = {"payment", "inventory", "system", "invalidation"};
        info_add(&b, "# inbound\r\n");
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            info_add(&b, "%s_admitted:%" PRIu64 "\r\n%s_over_budget:%" PRIu64 "\r\n", names[i],
                     a->admitted[i], names[i], a->over_budget[i]);
        }
        /* Only the channels the agent publishes on bring its own back
         * (payment and inventory: the first two sources). */
        if (a->own_echoes != NULL) {
            info_add(&b, "payment_own_echoes:%" PRIu64 "\r\ninventory_own_echoes:%" PRIu64 "\r\n",
                     a->own_echoes[0], a->own_echoes[1]);
        }
        info_add(&b,
                 "payment_refused_busy:%" PRIu64 "\r\npayment_dropped_over_budget:%" PRIu64
                 "\r\ncache_marked_stale_over_budget:%" PRIu64 "\r\n\r\n",
                 a->payment->over_budget, a->payment->dropped, *a->degraded_to_stale);
    }
    if (info_want(want, "security") && a->trust != NULL) {
        const pos_info_trust_t *t = a->trust;
        const pos_payment_t *p = a->payment;
        /* Refused on every channel: the payment module's and the others'. */
        info_add(&b,
                 "# security\r\nsigning:%s\r\nrefused_unsigned:%" PRIu64
                 "\r\nrefused_bad_signature:%" PRIu64 "\r\nrefused_stale:%" PRIu64
                 "\r\nrefused_payment_unverified:%" PRIu64 "\r\nrefused_payment_unanswered:%" PRIu64
                 "\r\nrefused_other_scope:%" PRIu64 "\r\npos_app_applied:%" PRIu64
                 "\r\npos_app_ignored:%" PRIu64 "\r\n\r\n",
                 a->signing ? "on" : "off",
                 t->unverified[POS_SIGN_UNSIGNED] + p->unverified_by[POS_SIGN_UNSIGNED],
                 t->unverified[POS_SIGN_BAD] + p->unverified_by[POS_SIGN_BAD],
                 t->unverified[POS_SIGN_STALE] + p->unverified_by[POS_SIGN_STALE], p->unverified,
                 p->unverified_unanswered, t->other_scope + p->other_scope, t->pos_app_applied,
                 t->pos_app_ignored + p->pos_app_ignored);
    }
    if (info_want(want, "devices")) {
        info_add(&b, "# devices\r\ndisplay:%s\r\nprinter:%s\r\npinpad:%s\r\n\r\n",
                 pos_dev_state_name(a->devices[POS_DEV_DISPLAY]),
                 pos_dev_state_name(a->devices[POS_DEV_PRINTER]),
                 pos_dev_state_name(a->devices[POS_DEV_PINPAD]));
    }
    /* ---- health (the seed's healthCheck) and the shared-state commands ---- */
    if (info_want(want, "health")) {
        const pos_link_t *l = a->link;
        uint64_t now = pos_clock_wall_ms();
        info_add(&b,
                 "# health\r\nconnected:%d\r\nterminal_status:%s\r\n"
                 "latency_ms:%" PRIu64 ".%03" PRIu64 "\r\nagent_memory_rss:%" PRIu64
                 "\r\nredis_used_memory:%" PRIu64 "\r\nredis_memory_age_s:%" PRId64 "\r\n\r\n",
                 pos_link_is_online(l), pos_term_status_name(a->status(a->ctx)),
                 l->probe_rtt_us / 1000u, l->probe_rtt_us % 1000u, info_rss(), l->redis_used_memory,
                 l->redis_memory_at_ms != 0 && now >= l->redis_memory_at_ms
                     ? (int64_t)((now - l->redis_memory_at_ms) / 1000u)
                     : (int64_t)-1);
    }
    if (info_want(want, "shared") && a->api != NULL) {
        const pos_api_shared_stats_t *sh = &a->api->shared;
        info_add(&b,
                 "# shared\r\nratelimit_redis:%" PRIu64 "\r\nratelimit_local:%" PRIu64
                 "\r\nratelimit_fallback:%" PRIu64 "\r\nratelimit_identifiers:%zu"
                 "\r\nratelimit_evicted:%" PRIu64 "\r\nsnapshots_served:%" PRIu64
                 "\r\ncache_cleared:%" PRIu64 "\r\n\r\n",
                 sh->ratelimit_redis, sh->ratelimit_local, sh->ratelimit_fallback,
                 a->api->ratelimit.used, a->api->ratelimit.evicted, sh->snapshots_served,
                 sh->cache_cleared);
    }
    if (info_want(want, "clients") && a->api != NULL) {
        pos_localapi_stats_t ls;
        pos_api_stats(a->api, &ls);
        info_add(&b,
                 "# clients\r\nconnected_clients:%u\r\nclients_accepted:%" PRIu64
                 "\r\nclients_evicted:%" PRIu64 "\r\nclients_idle_closed:%" PRIu64
                 "\r\ncommands_processed:%" PRIu64 "\r\ncommands_busy:%" PRIu64
                 "\r\nturns_full:%" PRIu64 "\r\nprotocol_errors:%" PRIu64
                 "\r\noutput_pauses:%" PRIu64 "\r\noutput_drops:%" PRIu64
                 "\r\nauth_failures:%" PRIu64 "\r\nauth_delayed:%" PRIu64
                 "\r\ncommands_noauth:%" PRIu64 "\r\nclients_memory:%zu\r\n\r\n",
                 ls.clients, ls.accepted, ls.evicted, ls.idle_closed, ls.commands, ls.busy,
                 ls.turns_full, ls.protocol_errors, ls.output_pauses, ls.output_drops,
                 ls.auth_failures, ls.auth_delayed, ls.noauth, ls.memory);
    }
    if (info_want(want, "metrics") && a->metrics != NULL && b.len < b.cap) {
        /* The fleet's metrics table (agent/fleet.c): the same values as the
         * Prometheus text file and the terminal:{id}:metrics hash. */
        b.len += a->metrics(a->metrics_ctx, b.buf + b.len, b.cap - b.len);
    }
    return b.len;
}
