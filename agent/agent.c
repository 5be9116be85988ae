#include "agent/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "hal/charset.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/mem.h"
#include "platform/sdnotify.h"
#include "platform/uverr.h"
#include "platform/version.h"

#define SHUTDOWN_WAIT_MS 2000u

static void agent_track(pos_agent_t *a);
static void agent_recovered_log(const pos_agent_t *a);

/* ---- status and heartbeat ---------------------------------------------- */

static void agent_reply_logged(void *ctx, const redisReply *r, int err)
{
    const char *what = ctx;

    if (err != 0) {
        POS_WARN("status", "%s not confirmed: %s", what, strerror(-err));
    } else if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("status", "%s refused: %.*s", what, pos_conn_log_len(r), r->str);
    }
}

static void agent_shutdown_reply(void *ctx, const redisReply *r, int err);

/* Writes terminal:{id}:status now. Heartbeats are never queued: when the
 * link is down the write is skipped and the next connect writes afresh. */
static int agent_write_status(pos_agent_t *a, pos_term_status_t status, pos_reply_cb cb)
{
    pos_status_report_t r;
    char json[512 + POS_SIGN_APPEND], ttl[16];
    int n;

    memset(&r, 0, sizeof(r));
    r.terminal_id = a->cfg.terminal_id;
    r.store_id = a->cfg.store_id;
    r.status = status;
    r.ts_ms = pos_clock_wall_ms();
    r.version = POS_VERSION;
    r.build = POS_BUILD_ID;
    r.uptime_s = (pos_clock_mono_ms() - a->started_ms) / 1000u;
    memcpy(r.devices, a->devices, sizeof(r.devices));
    if (a->store_ok) {
        pos_outbox_stats_t os;
        pos_outbox_stats(&a->outbox, &os);
        r.outbox = os.entries > UINT32_MAX ? UINT32_MAX : (uint32_t)os.entries;
    }
    r.clock_known = pos_fleet_clock(&a->fleet, &r.clock_offset_ms);
    r.signing = a->sign.count > 0;
    r.journal_reason = pos_agent_journal_reason(a);
    r.journal_ok = r.journal_reason == NULL;
    r.recovered = a->recovered > 0 ? (uint32_t)a->recovered : 0;
    if (status != POS_TERM_OFFLINE) {
        a->written_status = status;
        memcpy(a->written_devices, a->devices, sizeof(a->written_devices));
    }
    n = pos_status_json(&r, json, sizeof(json) - POS_SIGN_APPEND);
    if (n < 0) {
        POS_ERR("status", "cannot encode status: %s", strerror(-n));
        return n;
    }
    n = pos_delivery_sign(&a->delivery, json, (size_t)n, sizeof(json));
    snprintf(ttl, sizeof(ttl), "%u", a->cfg.heartbeat_ttl_s);
    const char *argv[] = {"SET", a->status_key, json, "EX", ttl};
    size_t lens[] = {3, strlen(a->status_key), (size_t)n, 2, strlen(ttl)};
    n = pos_link_command(&a->link, cb, cb == agent_shutdown_reply ? (void *)a : "heartbeat", 5,
                         argv, lens);
    if (n == 0) {
        a->heartbeats_sent++;
    }
    return n;
}

static int agent_publish_status_change(pos_agent_t *a, pos_term_status_t status,
                                       pos_term_status_t previous, pos_reply_cb cb)
{
    char json[384 + POS_SIGN_APPEND];
    int n = pos_status_change_json(a->cfg.terminal_id, a->cfg.store_id, status, previous,
                                   pos_clock_wall_ms(), json, sizeof(json) - POS_SIGN_APPEND);
    if (n < 0) {
        return n;
    }
    n = pos_delivery_sign(&a->delivery, json, (size_t)n, sizeof(json));
    const char *argv[] = {"PUBLISH", "system:terminals", json};
    size_t lens[] = {7, 16, (size_t)n};
    return pos_link_command(&a->link, cb, cb == agent_shutdown_reply ? (void *)a : "TERMINAL_STATUS",
                            3, argv, lens);
}

/* A device's state as far as a status write goes: busy and back is no
 * change worth a write (it is shown when the key is written anyway). */
static pos_dev_state_t agent_settled(pos_dev_state_t s)
{
    return s == POS_DEV_BUSY ? POS_DEV_READY : s;
}

/* True when the status value differs from the one last written in more
 * than its time, uptime and busy devices. */
static bool agent_status_differs(const pos_agent_t *a, pos_term_status_t now)
{
    if (now != a->written_status) {
        return true;
    }
    for (int i = 0; i < POS_DEV_COUNT; i++) {
        if (agent_settled(a->devices[i]) != agent_settled(a->written_devices[i])) {
            return true;
        }
    }
    return false;
}

/*
 * Writes the status key (and TERMINAL_STATUS when the terminal's status
 * changed) if the value changed: "force" at a connect, where it is always
 * written.
 */
static void agent_status_write(pos_agent_t *a, bool force)
{
    pos_term_status_t now = pos_agent_status(a);

    if (!pos_link_is_online(&a->link) || a->stopping || a->exit_code == POS_EX_ANOTHER) {
        return; /* announced at the next connect */
    }
    if (!force && !agent_status_differs(a, now)) {
        return;
    }
    agent_write_status(a, now, agent_reply_logged);
    if (now != a->published) {
        POS_INFO("status", "%s -> %s", pos_term_status_name(a->published),
                 pos_term_status_name(now));
        if (agent_publish_status_change(a, now, a->published, agent_reply_logged) == 0) {
            a->published = now;
        }
    }
}

static int agent_barrier_apply(pos_store_op_t *op, MDB_txn *txn)
{
    (void)op;
    (void)txn;
    return 0;
}

static void agent_barrier_done(pos_store_op_t *op)
{
    pos_agent_t *a = op->ctx;

    a->status_barrier = false;
    /* What came with the change goes out first (delivery would otherwise
     * send it later this turn). */
    pos_delivery_pump(&a->delivery);
    agent_status_write(a, false);
}

/*
 * A device or the payment state changed; the status key and
 * TERMINAL_STATUS follow, and only if the value really changed (a device
 * busy and back is none). A payment starting is announced at once, before
 * its PAYMENT_PROCESSING. Anything else waits for what came with it to be
 * durable and on its way (a payment's TRANSACTION_COMPLETED goes out before
 * the terminal says it is online again): the writer hands operations back
 * in order, so an empty one queued now comes back after them. Changes
 * made meanwhile are announced together.
 */
static void agent_status_changed(pos_agent_t *a)
{
    if (a->closing) {
        return;
    }
    if (!a->writer_ok || pos_agent_status(a) == POS_TERM_BUSY) {
        agent_status_write(a, false);
        return;
    }
    if (!a->status_barrier) {
        a->status_barrier = true;
        a->barrier_op = (pos_store_op_t){.apply = agent_barrier_apply,
                                         .done = agent_barrier_done,
                                         .ctx = a};
        pos_store_writer_submit(&a->writer, &a->barrier_op);
    }
}

/* ---- the lease: one agent per terminal id (agent/instance.h) ---------------- */

static void agent_refuse_timer_cb(uv_timer_t *t)
{
    pos_agent_t *a = t->data;

    pos_agent_shutdown(a);
}

/* Another till holds this terminal's lease: stop, without subscribing
 * (the gate) or after the link went down (a renewal). */
static void agent_lease_lost(void *ctx, const char *holder)
{
    pos_agent_t *a = ctx;

    if (a->exit_code == POS_EX_ANOTHER) {
        return;
    }
    a->exit_code = POS_EX_ANOTHER;
    POS_ERR("agent",
            "terminal %s is held by another agent (%s holds %s): two tills configured with one "
            "id? This one stops without taking payments (exit %d)",
            a->cfg.terminal_id, holder[0] != '\0' ? holder : "someone", a->instance->key,
            POS_EX_ANOTHER);
    pos_sd_notifyf("STATUS=refused: terminal %s is held by another agent", a->cfg.terminal_id);
    /* Not from inside the link's callback. */
    uv_timer_start(&a->refuse_timer, agent_refuse_timer_cb, 0, 0);
}

static void agent_lease_reply(void *ctx, const redisReply *r, int err)
{
    pos_agent_t *a = ctx;
    char holder[sizeof(a->instance->value)];
    int rc;

    if (err != 0) {
        return; /* taken again at the next connect, before subscribing */
    }
    rc = pos_instance_lease_reply(r, holder, sizeof(holder));
    if (rc == -EPERM) {
        /* Only when ours lapsed (this till cut off longer than its TTL):
         * from now on nothing that arrives is acted on. */
        agent_lease_lost(a, holder);
    } else if (rc != 0) {
        POS_WARN("agent", "lease %s not renewed: %.*s", a->instance->key,
                 r->type == REDIS_REPLY_ERROR ? pos_conn_log_len(r) : 0,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
}

/* Renews the lease with the heartbeat: its TTL is the status key's. */
static void agent_lease_renew(pos_agent_t *a)
{
    if (a->instance == NULL || a->exit_code != 0) {
        return;
    }
    pos_link_commandv(&a->link, agent_lease_reply, a, 7, a->instance->acquire);
}

static void agent_heartbeat_cb(uv_timer_t *t)
{
    pos_agent_t *a = t->data;

    pos_payment_flush_counters(&a->payment);
    if (pos_link_is_online(&a->link) && a->exit_code == 0) {
        agent_write_status(a, pos_agent_status(a), agent_reply_logged);
        agent_lease_renew(a);
    }
}

/* ---- link events --------------------------------------------------------- */

static void agent_on_online(pos_link_t *l)
{
    pos_agent_t *a = l->data;

    /* Status at once on every (re)connect, then every interval from now. */
    agent_status_write(a, true);
    uv_timer_start(&a->heartbeat_timer, agent_heartbeat_cb, a->cfg.heartbeat_interval_s * 1000u,
                   a->cfg.heartbeat_interval_s * 1000u);
    {
        uint16_t port;
        const char *host = pos_link_server(&a->link, &port);
        pos_sd_notifyf("STATUS=online: %s:%u", host, (unsigned)port);
    }
    agent_track(a);
    {
        /* The store's list of terminals (CONTRACT.md "Keys the agent
         * writes"), so the store's terminals are found without a scan; at
         * every connect. Sent directly, not through the outbox: it is idempotent and
         * repeated at each connect, so one lost with the link is sent
         * again by the next, and a durable copy would cost a store commit
         * per connect for nothing. */
        const char *argv[] = {"SADD", a->terminals_key, a->cfg.terminal_id};
        (void)pos_link_commandv(&a->link, agent_reply_logged, "terminals SADD", 3, argv);
    }
    agent_recovered_log(a);
    /* What waited in the outbox goes out now, oldest first; cached entries
     * not verified since the link went down are checked against Redis. */
    pos_delivery_online(&a->delivery);
    pos_cachesvc_online(&a->cache, a->unverified_since_ms);
    if (a->link.online_count == 1) {
        pos_cachesvc_warm(&a->cache); /* then every [cache] warm_interval_s */
    }
    pos_fleet_online(&a->fleet); /* clock check, metrics snapshot */
}

/* Is one more unit of src within its budget now? */
static bool agent_admit(pos_agent_t *a, pos_inbound_t src)
{
    if (pos_bucket_take(&a->inbound[src], pos_clock_mono_ms()) == 0) {
        a->admitted[src]++;
        return true;
    }
    a->over_budget[src]++;
    return false;
}

/*
 * What changes the cache came faster than its budget: rather than apply
 * it item by item (and fall behind), every cached entry is marked stale,
 * at most once a second, so reads ask Redis again. Nothing stale is
 * served as fresh; only the offline copy's age says "not verified".
 */
static void agent_cache_over_budget(pos_agent_t *a, const char *what)
{
    uint64_t now = pos_clock_mono_ms();

    if (a->last_all_stale_ms != 0 && now - a->last_all_stale_ms < 1000u) {
        return;
    }
    a->last_all_stale_ms = now;
    a->degraded_to_stale++;
    POS_WARN("cache", "%s over its budget: every cached entry marked stale instead", what);
    pos_cachesvc_tracking(&a->cache, NULL);
}

static void agent_on_invalidate(pos_link_t *l, const redisReply *keys)
{
    pos_agent_t *a = l->data;
    /* The budget is of keys: Redis puts every key written in one of its
     * turns into one message (a FLUSHALL, with none, counts one). */
    size_t n = keys != NULL && keys->elements > 0 ? keys->elements : 1;

    for (size_t i = 0; i < n; i++) {
        if (!agent_admit(a, POS_IN_INVALIDATION)) {
            agent_cache_over_budget(a, "tracking invalidations");
            return;
        }
    }
    pos_cachesvc_tracking(&a->cache, keys);
}

/* CLIENT TRACKINGINFO: the redirect must point at our subscriber; a broken
 * redirect would silently stop invalidations, so the link is rebuilt. */
static void agent_trackinfo_reply(void *ctx, const redisReply *r, int err)
{
    pos_agent_t *a = ctx;
    long long redirect = -2;

    if (err != 0 || r->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && k->len == 8 && memcmp(k->str, "redirect", 8) == 0 &&
            v->type == REDIS_REPLY_INTEGER) {
            redirect = v->integer;
        }
    }
    if (redirect != a->link.sub_client_id) {
        POS_WARN("cache", "tracking redirect is %lld, not our subscriber %lld: reconnecting",
                 redirect, a->link.sub_client_id);
        pos_conn_abort(&a->link.cmd.conn, -EPROTO);
        return;
    }
    POS_DEBUG("cache", "server-assisted invalidation on");
}

static void agent_track_reply(void *ctx, const redisReply *r, int err)
{
    pos_agent_t *a = ctx;

    if (err == 0 && r->type == REDIS_REPLY_ERROR) {
        POS_WARN("cache",
                 "CLIENT TRACKING refused (%.*s): cached entries rely on their TTL "
                 "and the reconnect revalidation",
                 pos_conn_log_len(r), r->str);
    } else if (err == 0) {
        const char *argv[] = {"CLIENT", "TRACKINGINFO"};
        pos_link_commandv(&a->link, agent_trackinfo_reply, a, 2, argv);
    }
}

/* Redis tells the subscriber when a cached family's key changes: broadcast
 * mode, by prefix, redirected to the subscriber connection (RESP2). Issued
 * at every connect, since both connections are new then. */
static void agent_track(pos_agent_t *a)
{
    char id[24], inventory[96];

    if (!a->cache.open || !a->cfg.cache_tracking || a->link.sub_client_id <= 0 ||
        a->link.cluster != NULL) {
        return; /* a cluster link tracks on every node itself (agent_track_cluster) */
    }
    snprintf(id, sizeof(id), "%lld", a->link.sub_client_id);
    snprintf(inventory, sizeof(inventory), "inventory:%s:", a->cfg.store_id);
    const char *argv[] = {"CLIENT", "TRACKING", "on",       "REDIRECT", id,     "BCAST",
                          "PREFIX", "product:", "PREFIX",   inventory,  "PREFIX", "user:",
                          "PREFIX", "session:"};
    pos_link_commandv(&a->link, agent_track_reply, a, 14, argv);
}

/* With Redis Cluster the link tracks the same prefixes on every primary,
 * each node's invalidations going to a subscriber on that node. */
static void agent_track_cluster(pos_agent_t *a)
{
    char inventory[96];
    const char *prefixes[] = {"product:", inventory, "user:", "session:"};

    snprintf(inventory, sizeof(inventory), "inventory:%s:", a->cfg.store_id);
    if (a->cache.open && a->cfg.cache_tracking) {
        pos_link_track_prefixes(&a->link, prefixes, 4); /* copied */
    }
}

static void agent_on_offline(pos_link_t *l, int err)
{
    pos_agent_t *a = l->data;

    uv_timer_stop(&a->heartbeat_timer);
    pos_fleet_offline(&a->fleet);
    a->unverified_since_ms = pos_clock_wall_ms();
    pos_sd_notifyf("STATUS=offline: %s, reconnecting", strerror(-err));
}

/* ---- the payment flow's port ----------------------------------------------- */

static void agent_port_batch(void *ctx, bool begin)
{
    pos_agent_t *a = ctx;

    if (!a->writer_ok) {
        return;
    }
    if (begin) {
        pos_store_writer_plug(&a->writer);
    } else {
        pos_store_writer_unplug(&a->writer);
    }
}

static int agent_port_publish(void *ctx, const char *channel, const char *json, size_t len,
                              bool held, uint64_t *id)
{
    pos_agent_t *a = ctx;
    int rc = pos_delivery_publish(&a->delivery, channel, json, len, true, id);

    if (rc == 0 && held && *id != 0) {
        pos_delivery_hold(&a->delivery, *id);
    }
    return rc;
}

static void agent_port_release(void *ctx, uint64_t id, bool discard)
{
    pos_agent_t *a = ctx;
    pos_delivery_release(&a->delivery, id, discard);
}

static int agent_port_publish_now(void *ctx, const char *channel, const char *json, size_t len)
{
    pos_agent_t *a = ctx;
    return pos_delivery_publish_now(&a->delivery, channel, json, len);
}

static int agent_port_set_member(void *ctx, const char *key, bool add, const char *member,
                                 unsigned ttl_s)
{
    pos_agent_t *a = ctx;
    return pos_delivery_set_member(&a->delivery, key, add, member, ttl_s);
}

static int agent_port_incrby(void *ctx, const char *key, long long n, unsigned ttl_s)
{
    pos_agent_t *a = ctx;
    return pos_delivery_incrby(&a->delivery, key, n, ttl_s, NULL, NULL);
}

static void agent_port_device_status(void *ctx, pos_dev_slot_t which, pos_dev_state_t st)
{
    pos_agent_t *a = ctx;

    if (which >= POS_DEV_COUNT || a->devices[which] == st) {
        return;
    }
    pos_fleet_device(&a->fleet, which, a->devices[which], st);
    a->devices[which] = st;
    agent_status_changed(a);
}

static void agent_port_busy(void *ctx, bool busy)
{
    pos_agent_t *a = ctx;

    a->payment_active = busy;
    agent_status_changed(a);
}

/* The store's commits so far: log records and LMDB commits, each a flush
 * a record queued behind it waits for. */
static uint64_t agent_port_commits(void *ctx)
{
    pos_agent_t *a = ctx;
    pos_store_writer_stats_t ws;

    if (!a->writer_ok) {
        return 0;
    }
    pos_store_writer_stats(&a->writer, &ws);
    return ws.groups + ws.lmdb_commits;
}

/* A journal write's outcome: the terminal is degraded while they fail, and
 * well again at the first that is durable. */
static void agent_port_journal(void *ctx, int status)
{
    pos_agent_t *a = ctx;

    if (status == a->journal_err) {
        return;
    }
    if (status != 0) {
        POS_ERR("store",
                "the payment journal cannot be written (%s): payments are refused until "
                "it can (status degraded)",
                strerror(-status));
    } else {
        POS_INFO("store", "the payment journal is written again");
    }
    a->journal_err = status;
    agent_status_changed(a);
}

const char *pos_agent_journal_reason(const pos_agent_t *a)
{
    if (!a->store_ok) {
        return "store_unavailable";
    }
    if (!a->writer_ok && !a->closing) {
        return "writer_unavailable";
    }
    if (a->recovered > 0) {
        return "store_recovered";
    }
    if (a->journal_err == -ENOSPC) {
        return "store_full";
    }
    if (a->journal_err != 0) {
        return "journal_write_failed";
    }
    return NULL;
}

/*
 * Stores moved aside (found corrupt at some start) wait for the operator:
 * their journal may hold transactions this store does not know, so no
 * payment is taken until each is salvaged or cleared (docs/offline.md).
 * Returns true when that changed.
 */
static bool agent_recovered_scan(pos_agent_t *a)
{
    char names[1][POS_STORE_NAME_MAX];
    int n = pos_store_moved_aside(a->cfg.store_path, names, 1);
    int before = a->recovered;

    if (n < 0) {
        POS_WARN("store", "cannot look for stores moved aside in %s: %s", a->cfg.store_path,
                 strerror(-n));
        return false;
    }
    a->recovered = n;
    snprintf(a->recovered_name, sizeof(a->recovered_name), "%s", n > 0 ? names[0] : "");
    if (a->store_ok && a->store.wal_held) {
        /* A log that had to be set aside and could not be: in place. */
        if (a->recovered++ == 0) {
            snprintf(a->recovered_name, sizeof(a->recovered_name), "%s", POS_WAL_FILE);
        }
    }
    return (before > 0) != (n > 0) || before != n;
}

/* Says, in the log, what waits for the operator (at start, at every
 * connect, at every reload, until it is dealt with). */
static void agent_recovered_log(const pos_agent_t *a)
{
    if (a->recovered == 0) {
        return;
    }
    if (strcmp(a->recovered_name, POS_WAL_FILE) == 0) {
        POS_ERR("store",
                "the write-ahead log in %s had to be set aside and could not be (see the "
                "store's error at start): payments are refused until a start sets it aside",
                a->cfg.store_path);
        return;
    }
    if (strncmp(a->recovered_name, POS_WAL_FILE ".", strlen(POS_WAL_FILE) + 1) == 0) {
        /* A log set aside: its records are not in this store, and salvage
         * reads stores, not logs. */
        POS_ERR("store",
                "%d store(s) or write-ahead log(s) set aside in %s wait for the operator "
                "(first: %s, commits this store lacks): payments are refused until the "
                "payments of that time are reconciled with the cloud and it is cleared "
                "(posagent store clear-recovered)",
                a->recovered, a->cfg.store_path, a->recovered_name);
        return;
    }
    POS_ERR("store",
            "%d store(s) moved aside in %s wait for the operator (first: %s): payments are "
            "refused until each is salvaged (posagent store salvage %s/%s, with the agent "
            "stopped) or cleared (posagent store clear-recovered)",
            a->recovered, a->cfg.store_path, a->recovered_name, a->cfg.store_path,
            a->recovered_name);
}

/* Hands the payment flow the journal, or takes it away, as the store's
 * health says (no journal, no payment). */
static void agent_journal_gate(pos_agent_t *a)
{
    bool usable = a->store_ok && a->writer_ok && a->recovered == 0;
    pos_payment_set_journal(&a->payment, usable ? &a->journal : NULL);
}

/*
 * With a key set, a cloud message must carry a valid signature and a fresh
 * ts on every channel (CONTRACT.md "Signed messages"). Returns true when it
 * may be acted on; otherwise it is counted and logged (the verdict only).
 */
static bool agent_verified(pos_agent_t *a, const char *channel, const pos_msg_t *msg,
                           const char *payload, size_t len)
{
    pos_sign_verdict_t v;

    if (a->sign.count == 0) {
        return true;
    }
    v = pos_sign_verify(&a->sign, payload, len, pos_clock_wall_ms(),
                        (uint64_t)a->cfg.payment_signature_window_s * 1000u);
    if (v == POS_SIGN_OK) {
        return true;
    }
    a->trust.unverified[v]++;
    int64_t offset;
    if (v == POS_SIGN_STALE && pos_fleet_clock(&a->fleet, &offset)) {
        /* Whose clock is off: the offset against Redis says. */
        POS_WARN("msg", "%s: %s stale, refused (this till's clock: %" PRId64 " ms against Redis's)",
                 channel, msg->type != POS_MSG_NONE ? pos_msg_type_name(msg->type) : "message",
                 -offset);
        return false;
    }
    POS_WARN("msg", "%s: %s %s, refused", channel,
             msg->type != POS_MSG_NONE ? pos_msg_type_name(msg->type) : "message",
             pos_sign_verdict_reason(v));
    return false;
}

/*
 * Decodes a message on an inventory or system channel, checks its
 * signature (when keys are set) and its scope (an inventory message must
 * be about this store). Returns 0 with *msg filled, or a negative errno
 * after logging why (never the content, which is not ours to log).
 */
static int agent_decode(pos_agent_t *a, pos_msg_channel_t ch, const char *channel,
                        const char *payload, size_t len, pos_msg_t *msg)
{
    pos_msg_limits_t lim;
    char why[128];
    int rc;

    memset(&lim, 0, sizeof(lim));
    lim.max_len = POS_MSG_MAX_BYTES;
    lim.max_amount_minor = 1;
    /* On system:alerts, storeId and terminalId say whom an alert is for. */
    lim.store_id = ch == POS_MSG_CH_INVENTORY ? a->cfg.store_id : NULL;
    rc = pos_msg_decode(ch, payload, len, &lim, msg, why, sizeof(why));
    if (rc == -EALREADY) {
        if (msg->origin == POS_MSG_FROM_POS_APP) {
            a->trust.pos_app_ignored++;
            POS_DEBUG("msg", "%s: a POS application's message ignored (not the cloud's channel)",
                      channel);
        } else {
            POS_DEBUG("msg", "%s: terminal-originated message ignored", channel);
        }
        return rc;
    }
    /* Malformed is dropped as such; what parsed is judged by its signature
     * before anything it says (its scope included) is looked at. */
    if ((rc == 0 || rc == -EPERM) && !agent_verified(a, channel, msg, payload, len)) {
        a->messages_dropped++;
        return -EACCES;
    }
    if (rc == -EPERM) {
        a->trust.other_scope++;
        a->messages_dropped++;
        POS_WARN("msg", "%s: %s, refused", channel, why);
    } else if (rc != 0) {
        a->messages_dropped++;
        POS_WARN("msg", "%s: %s, dropped", channel, why);
    } else if (msg->origin == POS_MSG_FROM_POS_APP) {
        a->trust.pos_app_applied++;
        POS_INFO("msg", "%s: %s from the POS application of %s", channel,
                 pos_msg_type_name(msg->type), msg->origin_terminal);
    } else {
        POS_INFO("msg", "%s: %s", channel, pos_msg_type_name(msg->type));
    }
    return rc;
}

static void agent_on_payment(pos_agent_t *a, const char *payload, size_t len)
{
    pos_payment_on_message(&a->payment, payload, len);
}

static void agent_on_inventory(pos_agent_t *a, const char *payload, size_t len)
{
    pos_msg_t msg;

    if (agent_decode(a, POS_MSG_CH_INVENTORY, a->channels[1].name, payload, len, &msg) == 0) {
        /* The local copy changes at once: an offline read right after sees it. */
        pos_cachesvc_inventory(&a->cache, &msg.u.inventory, payload, len);
    }
}

static void agent_on_system(pos_agent_t *a, const char *payload, size_t len)
{
    pos_msg_t msg;

    if (agent_decode(a, POS_MSG_CH_SYSTEM, a->channels[2].name, payload, len, &msg) != 0) {
        return;
    }
    if (msg.type == POS_MSG_CACHE_INVALIDATE) {
        pos_cachesvc_invalidate(&a->cache, msg.u.invalidate.pattern);
        return;
    }
    if (msg.type == POS_MSG_SYSTEM_ALERT) {
        const pos_msg_alert_t *al = &msg.u.alert;
        /* For every till, for this store, or for this terminal only. */
        if ((al->store_id[0] != '\0' && strcmp(al->store_id, a->cfg.store_id) != 0) ||
            (al->terminal_id[0] != '\0' && strcmp(al->terminal_id, a->cfg.terminal_id) != 0)) {
            POS_DEBUG("msg", "system alert for another till ignored");
            return;
        }
        /* Two lines of 20 columns: the message wraps onto the second, at the
         * last space that fits when there is one. */
        size_t mlen = strlen(al->message);
        size_t cut = pos_charset_prefix(al->message, mlen, 20);
        if (cut < mlen && al->message[cut] != ' ') {
            for (size_t i = cut; i > 0; i--) {
                if (al->message[i - 1] == ' ') {
                    cut = i - 1;
                    break;
                }
            }
        }
        char first[128];
        snprintf(first, sizeof(first), "%.*s", (int)cut, al->message);
        const char *rest = al->message + cut;
        while (*rest == ' ') {
            rest++;
        }
        if (pos_payment_show(&a->payment, first, rest) == -EBUSY) {
            POS_INFO("msg", "system alert not shown: a payment owns the display");
        }
    }
}

static bool agent_mentions(const char *payload, size_t len, const char *word)
{
    size_t n = strlen(word);

    for (size_t i = 0; i + n <= len; i++) {
        if (payload[i] == word[0] && memcmp(payload + i, word, n) == 0) {
            return true;
        }
    }
    return false;
}

/* A message over its channel's budget: answered or handled cheaply. */
static void agent_over_budget(pos_agent_t *a, pos_inbound_t src, const char *payload, size_t len)
{
    switch (src) {
    case POS_IN_PAYMENT:
        pos_payment_refuse_busy(&a->payment, payload, len);
        break;
    case POS_IN_INVENTORY:
        agent_cache_over_budget(a, "inventory updates");
        break;
    default:
        /* An alert is dropped; an invalidation among them costs the whole cache. */
        a->messages_dropped++;
        if (agent_mentions(payload, len, "CACHE_INVALIDATE")) {
            agent_cache_over_budget(a, "cache invalidations");
        }
        break;
    }
}

/* The delivery sent a message: noted when it is on a channel the agent
 * listens to, to know its echo. */
static void agent_on_published(void *ctx, const char *channel, const char *msg, size_t len)
{
    pos_agent_t *a = ctx;

    for (size_t i = 0; i < sizeof(a->channels) / sizeof(a->channels[0]); i++) {
        if (strcmp(a->channels[i].name, channel) == 0) {
            pos_echo_note(&a->channels[i].echo, msg, len, pos_clock_mono_ms());
            return;
        }
    }
}

static void agent_on_message(pos_link_t *l, const char *channel, size_t chlen, const char *payload,
                             size_t len)
{
    pos_agent_t *a = l->data;

    if (a->exit_code == POS_EX_ANOTHER) {
        return; /* another till holds this terminal: it is theirs to answer */
    }
    if (strlen(a->diag_channel) == chlen && memcmp(a->diag_channel, channel, chlen) == 0) {
        pos_fleet_on_diag(&a->fleet, payload, len); /* its own budget */
        return;
    }

    for (size_t i = 0; i < sizeof(a->channels) / sizeof(a->channels[0]); i++) {
        pos_channel_t *ch = &a->channels[i];
        if (strlen(ch->name) == chlen && memcmp(ch->name, channel, chlen) == 0) {
            if (pos_echo_take(&ch->echo, payload, len, pos_clock_mono_ms())) {
                /* The agent's own message, byte for byte: the budget is for
                 * what others send. On payment:* it is one of its answers,
                 * which the handler would only ignore. */
                a->own_echoes[ch->source]++;
                if (ch->echo_handled) {
                    ch->handler(a, payload, len);
                }
                return;
            }
            if (agent_admit(a, ch->source)) {
                ch->handler(a, payload, len);
            } else {
                agent_over_budget(a, ch->source, payload, len);
            }
            return;
        }
    }
    POS_WARN("msg", "message on an unexpected channel dropped");
}

/* ---- signals, watchdog, shutdown ------------------------------------------ */

static void agent_watchdog_cb(uv_timer_t *t)
{
    (void)t;
    pos_sd_notify("WATCHDOG=1");
}

/* What a reload found changed: each setting named, none of its values
 * (the file holds secrets). */
typedef struct agent_reload_count {
    size_t applied, restart;
} agent_reload_count_t;

static void agent_reload_change(void *ctx, const char *section, const char *key, bool reloadable)
{
    agent_reload_count_t *n = ctx;

    if (reloadable) {
        n->applied++;
        POS_INFO("config", "reload: [%s] %s changed: applied", section, key);
    } else {
        n->restart++;
        POS_WARN("config",
                 "reload: [%s] %s changed: needs a restart (systemctl restart posagent); "
                 "the running value stays until then",
                 section, key);
    }
}

/* Hands the reloadable settings now in a->cfg to what uses them. */
static void agent_apply_settings(pos_agent_t *a)
{
    const pos_config_t *c = &a->cfg;
    uint64_t now = pos_clock_mono_ms();
    uint64_t ttl[POS_CACHE_FAMILY_COUNT];

    pos_log_set_level((pos_log_level_t)c->log_level);
    /* Heartbeat: the next write carries the new TTL, and so does the
     * lease's renewal with it; the timer, when it runs (online), ticks at
     * the new interval from now. */
    if (a->instance != NULL) {
        pos_instance_set_lease_ttl(a->instance, c->heartbeat_ttl_s);
    }
    if (uv_is_active((uv_handle_t *)&a->heartbeat_timer)) {
        uv_timer_start(&a->heartbeat_timer, agent_heartbeat_cb, c->heartbeat_interval_s * 1000u,
                       c->heartbeat_interval_s * 1000u);
    }
    a->payment.opt.max_amount = c->payment_max_amount;
    a->payment.opt.signature_window_s = c->payment_signature_window_s;
    for (size_t i = 0; i < POS_CACHE_FAMILY_COUNT; i++) {
        ttl[i] = pos_cachesvc_ttl_ms(&a->cache, (pos_cache_family_t)i);
    }
    ttl[POS_CACHE_PRODUCT] = (uint64_t)c->cache_product_ttl_s * 1000u;
    ttl[POS_CACHE_INVENTORY] = (uint64_t)c->cache_inventory_ttl_s * 1000u;
    ttl[POS_CACHE_USER] = (uint64_t)c->cache_user_ttl_s * 1000u;
    ttl[POS_CACHE_SESSION] = (uint64_t)c->cache_session_ttl_s * 1000u;
    pos_cachesvc_set_freshness(&a->cache, ttl, c->cache_warm_interval_s);
    if (a->api.running) {
        pos_localapi_admission_t admit = {
            .client_rate = c->local_client_rate,
            .client_burst = c->local_client_burst,
            .turn_budget = c->local_commands_per_turn,
            .idle_timeout_ms = c->local_idle_timeout_s * 1000u,
            .stall_ms = c->local_stall_timeout_s * 1000u,
        };
        pos_localapi_set_admission(&a->api.server, c->local_max_clients, &admit);
    }
    /* Inbound budgets start full at the new rates. */
    pos_bucket_init(&a->inbound[POS_IN_PAYMENT], c->inbound_payment_rate, c->inbound_payment_burst,
                    now);
    pos_bucket_init(&a->inbound[POS_IN_INVENTORY], c->inbound_inventory_rate,
                    c->inbound_inventory_burst, now);
    pos_bucket_init(&a->inbound[POS_IN_SYSTEM], c->inbound_system_rate, c->inbound_system_burst,
                    now);
    pos_bucket_init(&a->inbound[POS_IN_INVALIDATION], c->inbound_invalidation_rate,
                    c->inbound_invalidation_burst, now);
}

static void agent_reload(pos_agent_t *a)
{
    pos_config_t scratch;
    pos_config_error_t err;
    agent_reload_count_t n = {0, 0};
    extern char **environ;

    /* Parse into a scratch copy; apply only when the whole file is valid,
     * and only what can change while running (conf/schema.c's F_RELOAD
     * rows). The rest is named and waits for a restart. */
    if (pos_config_load_dir(&scratch, a->config_path, a->config_dir, environ, &err) != 0) {
        POS_ERR("config", "reload failed, keeping the running settings: %s", err.msg);
        pos_config_wipe(&scratch);
        return;
    }
    pos_config_changes(&a->cfg, &scratch, agent_reload_change, &n);
    pos_config_apply_reloadable(&a->cfg, &scratch);
    agent_apply_settings(a);
    POS_INFO("config", "reloaded: log level %s; %zu setting(s) applied, %zu need a restart",
             pos_log_level_name((pos_log_level_t)a->cfg.log_level), n.applied, n.restart);
    pos_config_wipe(&scratch);
}

/* What an operator cleared (posagent store clear-recovered signals us). */
static void agent_recovered_rescan(pos_agent_t *a)
{
    if (a->store_ok && agent_recovered_scan(a)) {
        if (a->recovered == 0) {
            POS_INFO("store", "no store moved aside waits any more: payments are taken again");
        }
        agent_recovered_log(a);
        agent_journal_gate(a);
        agent_status_changed(a);
    }
}

static void agent_signal_cb(uv_signal_t *s, int signum)
{
    pos_agent_t *a = s->data;

    if (signum == SIGHUP) {
        agent_reload(a);
        agent_recovered_rescan(a);
        return;
    }
    if (a->stopping) {
        POS_WARN("agent", "second signal: stopping without waiting");
        uv_timer_stop(&a->shutdown_timer);
        a->shutdown_waits = 0;
    }
    POS_INFO("agent", "signal %d: shutting down", signum);
    pos_agent_shutdown(a);
}

static void agent_close_all(pos_agent_t *a);
static void agent_writer_close(pos_agent_t *a);

static void agent_shutdown_reply(void *ctx, const redisReply *r, int err)
{
    pos_agent_t *a = ctx;

    if (err != 0) {
        POS_WARN("agent", "offline status not confirmed: %s", strerror(-err));
    } else if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("agent", "offline status refused: %.*s", pos_conn_log_len(r), r->str);
    }
    if (a->shutdown_waits > 0 && --a->shutdown_waits == 0) {
        POS_INFO("agent", "offline status written and published");
        agent_close_all(a);
    }
}

static void agent_shutdown_timer_cb(uv_timer_t *t)
{
    pos_agent_t *a = t->data;

    POS_WARN("agent", "offline status not confirmed within %u ms, closing anyway",
             SHUTDOWN_WAIT_MS);
    a->shutdown_waits = 0;
    agent_close_all(a);
}

/* Each closed handle or subsystem counts down; uv_run() returns once the
 * last is closed (nothing else keeps the loop alive). */
static void agent_part_closed(pos_agent_t *a)
{
    if (a->open_parts > 0 && --a->open_parts == 0) {
        POS_DEBUG("agent", "everything closed");
    }
}

static void agent_handle_closed(uv_handle_t *h)
{
    agent_part_closed(h->data);
}

static void agent_link_stopped(pos_link_t *l)
{
    agent_part_closed(l->data);
}

static void agent_payment_closed(pos_payment_t *p)
{
    agent_part_closed(p->opt.port.ctx);
}

static void agent_subsystem_closed(void *arg)
{
    agent_part_closed(arg);
}

static void agent_close_all(pos_agent_t *a)
{
    uv_handle_t *handles[] = {
        (uv_handle_t *)&a->heartbeat_timer, (uv_handle_t *)&a->watchdog_timer,
        (uv_handle_t *)&a->shutdown_timer,  (uv_handle_t *)&a->refuse_timer,
        (uv_handle_t *)&a->sig_term,        (uv_handle_t *)&a->sig_int,
        (uv_handle_t *)&a->sig_hup,
    };
    size_t n = sizeof(handles) / sizeof(handles[0]);

    if (a->closing) {
        return;
    }
    a->closing = true;
    /* + link, payment, cache service, local API, delivery, fleet */
    a->open_parts = (unsigned)n + 6;
    pos_fleet_close(&a->fleet, agent_subsystem_closed, a);
    /* The cache stops submitting (what it still holds is written at
     * dispose); then what the store writer holds is finished, while
     * everything its callbacks may reach is still open. */
    pos_cachesvc_close(&a->cache, agent_subsystem_closed, a);
    agent_writer_close(a);
    for (size_t i = 0; i < n; i++) {
        uv_close(handles[i], agent_handle_closed);
    }
    pos_api_close(&a->api, agent_subsystem_closed, a);
    pos_delivery_close(&a->delivery, agent_subsystem_closed, a);
    /* Stopping the link fails pending reads, which answers their clients. */
    pos_link_stop(&a->link, agent_link_stopped);
    pos_payment_close(&a->payment, agent_payment_closed);
}

void pos_agent_shutdown(pos_agent_t *a)
{
    bool online = pos_link_is_online(&a->link);

    if (a->stopping) {
        if (a->shutdown_waits == 0) {
            agent_close_all(a);
        }
        return;
    }
    a->stopping = true;
    uv_timer_stop(&a->heartbeat_timer);
    pos_payment_stop(&a->payment);
    pos_payment_flush_counters(&a->payment);
    pos_sd_notify("STOPPING=1");
    if (!online) {
        POS_INFO("agent", "link offline: stopping without writing the offline status");
        agent_close_all(a);
        return;
    }
    if (a->exit_code == POS_EX_ANOTHER) {
        /* The status key is the other till's now: not ours to write. */
        agent_close_all(a);
        return;
    }
    /* Status "offline" and TERMINAL_STATUS, then close; bounded wait. */
    a->shutdown_waits = 0;
    if (agent_write_status(a, POS_TERM_OFFLINE, agent_shutdown_reply) == 0) {
        a->shutdown_waits++;
    }
    if (agent_publish_status_change(a, POS_TERM_OFFLINE, a->published, agent_shutdown_reply) ==
        0) {
        a->shutdown_waits++;
        a->published = POS_TERM_OFFLINE;
    }
    /* The lease goes too, so a replacement till may start at once. */
    if (a->instance != NULL && a->exit_code == 0 &&
        pos_link_commandv(&a->link, agent_shutdown_reply, a, 5, a->instance->release) == 0) {
        a->shutdown_waits++;
    }
    if (a->shutdown_waits == 0) {
        agent_close_all(a);
        return;
    }
    uv_timer_start(&a->shutdown_timer, agent_shutdown_timer_cb, SHUTDOWN_WAIT_MS, 0);
}

/* ---- setup ------------------------------------------------------------------ */

static int agent_store_open(pos_agent_t *a)
{
    pos_store_config_t sc;
    pos_store_tenant_t tenants[3];
    pos_outbox_config_t oc;
    pos_journal_config_t jc;
    int rc;

    /* The walk at open judges each record through its owner; the cache,
     * the outbox and the journal count theirs when they open. */
    pos_cache_tenant(&tenants[0], NULL);
    pos_outbox_tenant(&tenants[1], NULL);
    pos_journal_tenant(&tenants[2], NULL);
    memset(&sc, 0, sizeof(sc));
    sc.path = a->cfg.store_path;
    sc.map_size = (uint64_t)a->cfg.store_map_size_mb << 20;
    sc.tenants = tenants;
    sc.tenant_count = 3;
    rc = pos_store_open(&a->store, &sc);
    if (rc == 0) {
        memset(&oc, 0, sizeof(oc));
        oc.max_entries = a->cfg.store_outbox_max_entries;
        oc.max_bytes = (uint64_t)a->cfg.store_outbox_max_mb << 20;
        rc = pos_outbox_open(&a->outbox, &a->store, &oc);
        if (rc == 0) {
            memset(&jc, 0, sizeof(jc));
            jc.window_ms = (uint64_t)a->cfg.payment_dedup_window_h * 3600u * 1000u;
            jc.max_seen = a->cfg.payment_dedup_max_ids;
            rc = pos_journal_open(&a->journal, &a->store, &jc);
            if (rc != 0) {
                pos_outbox_close(&a->outbox);
            }
        }
        if (rc != 0) {
            pos_store_close(&a->store);
        }
    }
    if (rc == -EPROTONOSUPPORT) {
        /* A store of a format this agent cannot use is left as it is: the
         * agent does not start rather than run beside it (docs/offline.md). */
        snprintf(a->store_error, sizeof(a->store_error), "%s", a->store.error);
        return rc;
    }
    if (rc != 0) {
        /* Messages still work online; nothing survives a restart, what is
         * sent while offline is lost (and counted), and no payment is
         * taken: there is no journal to record it in. */
        snprintf(a->store_error, sizeof(a->store_error), "%s",
                 a->store.error[0] != '\0' ? a->store.error : strerror(-rc));
        POS_ERR("store",
                "cannot open the local store in %s: %s; running without it: payments are "
                "refused (status degraded, store_unavailable)",
                a->cfg.store_path, a->store_error);
        a->store_ok = false;
        return 0;
    }
    a->store_ok = true;
    agent_recovered_scan(a);
    agent_recovered_log(a);
    {
        pos_outbox_stats_t st;
        pos_outbox_stats(&a->outbox, &st);
        POS_INFO("store", "opened %s: %" PRIu64 " outbox entries waiting, %" PRIu64
                          " payments in the journal",
                 a->cfg.store_path, st.entries, pos_journal_count(&a->journal));
    }
    return 0;
}

static size_t agent_info_cb(void *ctx, const char *section, char *buf, size_t cap)
{
    return pos_info_write(ctx, section, buf, cap);
}

static pos_term_status_t agent_status_cb(void *ctx)
{
    return pos_agent_status(ctx);
}

static const char *agent_journal_reason_cb(void *ctx)
{
    return pos_agent_journal_reason(ctx);
}

static size_t agent_metrics_cb(const void *ctx, char *buf, size_t cap)
{
    return pos_fleet_info(ctx, buf, cap);
}

static void agent_info_sources(pos_agent_t *a)
{
    pos_info_sources_t *i = &a->info;

    i->terminal_id = a->cfg.terminal_id;
    i->store_id = a->cfg.store_id;
    i->master_name = a->cfg.redis_master_name;
    i->sharded = a->cfg.redis_pubsub == POS_PUBSUB_SHARDED;
    i->started_ms = &a->started_ms;
    i->heartbeats_sent = &a->heartbeats_sent;
    i->devices = a->devices;
    i->status = agent_status_cb;
    i->ctx = a;
    i->link = &a->link;
    i->cache = &a->cache;
    i->delivery = &a->delivery;
    i->payment = &a->payment;
    i->store = a->store_ok ? &a->store : NULL;
    i->outbox = a->store_ok ? &a->outbox : NULL;
    i->journal = a->store_ok ? &a->journal : NULL;
    i->writer = a->writer_ok ? &a->writer : NULL;
    i->admitted = a->admitted;
    i->over_budget = a->over_budget;
    i->own_echoes = a->own_echoes;
    i->degraded_to_stale = &a->degraded_to_stale;
    i->api = &a->api;
    i->trust = &a->trust;
    i->signing = a->sign.count > 0;
    i->journal_reason = agent_journal_reason_cb;
    i->store_error = a->store_error;
    i->recovered = &a->recovered;
    i->recovered_name = a->recovered_name;
    i->metrics = agent_metrics_cb;
    i->metrics_ctx = &a->fleet;
}

static void agent_link_options(pos_agent_t *a, pos_link_options_t *lo, pos_sentinel_options_t *so,
                               pos_cluster_options_t *clo)
{
    /* The contract's sharded channels (CONTRACT.md "Redis Cluster"). */
    static const char *const sharded[] = {"payment:", "inventory:", "transaction:"};
    const pos_config_t *cfg = &a->cfg;

    memset(lo, 0, sizeof(*lo));
    lo->endpoint = &a->cfg.redis;
    lo->reach.client_name = a->client_name;
    lo->reach.connect_timeout_ms = cfg->connect_timeout_ms;
    lo->reach.command_timeout_ms = cfg->command_timeout_ms;
    lo->reach.retry_delay_ms = cfg->retry_delay_ms;
    lo->reach.max_retry_delay_ms = cfg->max_retry_delay_ms;
    /* No server may send a longer bulk string than the largest value or
     * channel message the agent accepts (the sentinels included). */
    lo->reach.max_bulk_bytes =
        pos_resp_guard_bulk_limit(cfg->cache_max_value_bytes, POS_MSG_MAX_BYTES);
    for (size_t i = 0; i < 3; i++) {
        lo->channels[i] = a->channels[i].name;
    }
    lo->nchannels = 3;
    if (cfg->metrics_diagnostics) {
        lo->channels[lo->nchannels++] = a->diag_channel;
    }
    lo->probe_channel = a->probe_channel;
    lo->probe_interval_ms = cfg->probe_interval_ms;
    /* No subscription before the terminal's lease is ours (instance.h). */
    lo->gate = a->instance != NULL ? &a->instance->gate : NULL;
    if (cfg->nsentinels > 0) {
        /* Strings from a->cfg, which outlives the link. The sentinels are
         * reached as Redis is (the transport is added by the link). */
        memset(so, 0, sizeof(*so));
        so->addrs = cfg->sentinels;
        so->naddrs = cfg->nsentinels;
        so->master_name = cfg->redis_master_name;
        so->password = cfg->redis_sentinel_password;
        so->reach = lo->reach;
        lo->sentinel = so;
    }
    if (cfg->ncluster_nodes > 0) {
        /* Endpoint, reach and channels are the link's. */
        memset(clo, 0, sizeof(*clo));
        clo->seeds = cfg->cluster_nodes;
        clo->nseeds = cfg->ncluster_nodes;
        clo->sharded = cfg->redis_pubsub == POS_PUBSUB_SHARDED;
        clo->sharded_prefixes = sharded;
        clo->nsharded_prefixes = sizeof(sharded) / sizeof(sharded[0]);
        lo->cluster = clo;
    }
}

static void agent_payment_options(pos_agent_t *a, pos_payment_options_t *po)
{
    const pos_config_t *c = &a->cfg;

    memset(po, 0, sizeof(*po));
    po->loop = a->loop;
    po->terminal_id = c->terminal_id;
    po->store_id = c->store_id;
    po->max_amount = c->payment_max_amount;
    po->pinpad_timeout_s = c->payment_pinpad_timeout_s;
    po->journal = a->store_ok ? &a->journal : NULL;
    po->keys = &a->sign;
    po->signature_window_s = c->payment_signature_window_s;
    po->display = c->hal_display;
    po->printer = c->hal_printer;
    po->pinpad = c->hal_pinpad;
    po->hal.sim_dir = c->hal_sim_dir;
    po->hal.sim_pinpad_delay_ms = c->hal_sim_pinpad_delay_ms;
    po->hal.sim_printer_delay_ms = c->hal_sim_printer_delay_ms;
    po->hal.sim_decline_ending = c->hal_sim_decline_ending;
    po->hal.sim_card_number = c->hal_sim_card_number;
    po->hal.paper_width = c->hal_paper_width;
    po->hal.printer_model = c->hal_printer_model;
    po->hal.codepage = c->hal_codepage;
    po->port.ctx = a;
    po->port.batch = agent_port_batch;
    po->port.publish = agent_port_publish;
    po->port.release = agent_port_release;
    po->port.publish_now = agent_port_publish_now;
    po->port.set_member = agent_port_set_member;
    po->port.incrby = agent_port_incrby;
    po->port.device_status = agent_port_device_status;
    po->port.busy = agent_port_busy;
    po->port.journal = agent_port_journal;
    po->port.commits = agent_port_commits;
}

static void agent_cache_options(pos_agent_t *a, pos_cachesvc_options_t *co)
{
    const pos_config_t *c = &a->cfg;

    memset(co, 0, sizeof(*co));
    co->loop = a->loop;
    co->link = &a->link;
    co->store = a->store_ok ? &a->store : NULL;
    co->store_id = c->store_id;
    co->cache.ttl_ms[POS_CACHE_PRODUCT] = (uint64_t)c->cache_product_ttl_s * 1000u;
    co->cache.ttl_ms[POS_CACHE_INVENTORY] = (uint64_t)c->cache_inventory_ttl_s * 1000u;
    co->cache.ttl_ms[POS_CACHE_USER] = (uint64_t)c->cache_user_ttl_s * 1000u;
    co->cache.ttl_ms[POS_CACHE_SESSION] = (uint64_t)c->cache_session_ttl_s * 1000u;
    co->cache.max_bytes = (uint64_t)c->store_cache_max_mb << 20;
    co->warm_interval_s = c->cache_warm_interval_s;
    co->max_value_bytes = c->cache_max_value_bytes;
    co->writer = a->writer_ok ? &a->writer : NULL;
}

/* Finishes what the writer holds (its callbacks run now), then stops it. */
static void agent_writer_close(pos_agent_t *a)
{
    if (a->writer_ok) {
        a->writer_ok = false;
        pos_outbox_set_writer(&a->outbox, NULL);
        pos_journal_set_writer(&a->journal, NULL);
        a->info.writer = NULL;
        pos_store_writer_close(&a->writer, NULL, NULL);
    }
}

static void agent_store_close(pos_agent_t *a)
{
    if (a->store_ok) {
        pos_journal_close(&a->journal);
        pos_outbox_close(&a->outbox);
        pos_store_close(&a->store);
        a->store_ok = false;
    }
}

int pos_agent_init(pos_agent_t *a, uv_loop_t *loop, const pos_config_t *cfg,
                   const char *config_path, const pos_sign_keys_t *keys, pos_tls_t *tls,
                   pos_instance_t *instance)
{
    pos_link_options_t lo;
    pos_sentinel_options_t so;
    pos_cluster_options_t clo;
    pos_payment_options_t po;
    pos_cachesvc_options_t co;
    static const pos_link_callbacks_t link_cb = {
        .on_online = agent_on_online,
        .on_offline = agent_on_offline,
        .on_message = agent_on_message,
        .on_invalidate = agent_on_invalidate,
    };
    uv_handle_t *own[7];
    size_t nown = 0;
    char err[256];
    int rc;

    pos_mem_zero(a, sizeof(*a));
    a->loop = loop;
    a->cfg = *cfg;
    if (keys != NULL) {
        a->sign = *keys;
    }
    a->config_path = config_path;
    a->instance = instance;
    if (instance != NULL) {
        instance->on_lost = agent_lease_lost;
        instance->ctx = a;
    }
    a->published = POS_TERM_OFFLINE;
    a->started_ms = pos_clock_mono_ms();
    a->unverified_since_ms = pos_clock_wall_ms();
    for (int i = 0; i < POS_DEV_COUNT; i++) {
        a->devices[i] = POS_DEV_OFFLINE; /* until the driver says otherwise */
    }

    snprintf(a->channels[0].name, sizeof(a->channels[0].name), "payment:%s", cfg->terminal_id);
    a->channels[0].handler = agent_on_payment;
    a->channels[0].source = POS_IN_PAYMENT;
    snprintf(a->channels[1].name, sizeof(a->channels[1].name), "inventory:%s", cfg->store_id);
    a->channels[1].handler = agent_on_inventory;
    a->channels[1].source = POS_IN_INVENTORY;
    a->channels[1].echo_handled = true;
    snprintf(a->channels[2].name, sizeof(a->channels[2].name), "system:alerts");
    a->channels[2].handler = agent_on_system;
    a->channels[2].source = POS_IN_SYSTEM;
    {
        /* The echo rings' key: never blocks start-up for entropy (at early
         * boot the clock and pid still differ per start and till). */
        uint64_t key = 0;
        if (getrandom(&key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
            key = pos_clock_mono_us() ^ pos_clock_wall_ms() ^ ((uint64_t)getpid() << 40);
        }
        for (size_t i = 0; i < sizeof(a->channels) / sizeof(a->channels[0]); i++) {
            pos_echo_init(&a->channels[i].echo, key);
        }
    }
    {
        uint64_t now = pos_clock_mono_ms();
        pos_bucket_init(&a->inbound[POS_IN_PAYMENT], cfg->inbound_payment_rate,
                        cfg->inbound_payment_burst, now);
        pos_bucket_init(&a->inbound[POS_IN_INVENTORY], cfg->inbound_inventory_rate,
                        cfg->inbound_inventory_burst, now);
        pos_bucket_init(&a->inbound[POS_IN_SYSTEM], cfg->inbound_system_rate,
                        cfg->inbound_system_burst, now);
        pos_bucket_init(&a->inbound[POS_IN_INVALIDATION], cfg->inbound_invalidation_rate,
                        cfg->inbound_invalidation_burst, now);
    }
    snprintf(a->probe_channel, sizeof(a->probe_channel), "posagent:probe:%s", cfg->terminal_id);
    snprintf(a->client_name, sizeof(a->client_name), "posagent:%s", cfg->terminal_id);
    snprintf(a->status_key, sizeof(a->status_key), "terminal:%s:status", cfg->terminal_id);
    snprintf(a->terminals_key, sizeof(a->terminals_key), "terminals:%s", cfg->store_id);
    snprintf(a->diag_channel, sizeof(a->diag_channel), "diag:%s", cfg->terminal_id);

    agent_link_options(a, &lo, &so, &clo);
    if (cfg->redis.tls) {
        /* Never a plain connection for a rediss:// URL. */
        if (tls == NULL || !tls->ready) {
            rc = -EINVAL;
            goto fail_link;
        }
        lo.reach.transport = &pos_tls_transport;
        lo.reach.transport_arg = tls;
    }
    rc = pos_link_init(loop, &a->link, &lo, &link_cb);
    if (rc != 0) {
        goto fail_link;
    }
    a->link.data = a;

    rc = agent_store_open(a); /* without a store the agent runs on, see there */
    if (rc != 0) {
        POS_ERR("store", "cannot start: %s", a->store_error);
        goto fail_writer;
    }
    if (a->store_ok) {
        rc = pos_store_writer_start(&a->writer, loop, &a->store);
        if (rc != 0) {
            POS_ERR("store", "cannot start the store writer: %s", strerror(-rc));
            goto fail_writer;
        }
        a->writer_ok = true;
        pos_outbox_set_writer(&a->outbox, &a->writer);
        pos_journal_set_writer(&a->journal, &a->writer);
    }
    rc = pos_delivery_init(&a->delivery, loop, &a->link, a->store_ok ? &a->outbox : NULL,
                           &a->sign);
    if (rc != 0) {
        goto fail_delivery;
    }
    a->delivery.on_published = agent_on_published;
    a->delivery.published_ctx = a;
    /* What the local API answers for counters and written-through keys
     * includes what the outbox still holds from before a restart. */
    rc = pos_delivery_rebuild(&a->delivery);
    if (rc != 0) {
        POS_WARN("outbox", "per-key bookkeeping not rebuilt: %s", strerror(-rc));
    }
    agent_cache_options(a, &co);
    rc = pos_cachesvc_init(&a->cache, &co);
    if (rc != 0) {
        POS_ERR("cache", "cannot set up the cache service: %s", strerror(-rc));
        goto fail_cache;
    }
    agent_track_cluster(a);
    agent_payment_options(a, &po);
    rc = pos_payment_init(&a->payment, &po, err, sizeof(err));
    if (rc != 0) {
        POS_ERR("hal", "cannot set up the devices: %s", err);
        goto fail_payment;
    }
    agent_journal_gate(a);
    {
        pos_fleet_options_t fo;
        memset(&fo, 0, sizeof(fo));
        fo.loop = loop;
        fo.cfg = &a->cfg;
        fo.link = &a->link;
        fo.delivery = &a->delivery;
        fo.keys = &a->sign;
        fo.info = &a->info;
        fo.trust = &a->trust;
        rc = pos_fleet_init(&a->fleet, &fo);
        if (rc != 0) {
            POS_ERR("metrics", "cannot set up the metrics: %s", strerror(-rc));
            goto fail_fleet;
        }
        a->payment.clock_offset_ms = &a->fleet.clock_offset_ms;
    }

    own[nown++] = (uv_handle_t *)&a->heartbeat_timer;
    own[nown++] = (uv_handle_t *)&a->watchdog_timer;
    own[nown++] = (uv_handle_t *)&a->shutdown_timer;
    own[nown++] = (uv_handle_t *)&a->refuse_timer;
    rc = uv_timer_init(loop, &a->heartbeat_timer);
    rc = rc ? rc : uv_timer_init(loop, &a->watchdog_timer);
    rc = rc ? rc : uv_timer_init(loop, &a->shutdown_timer);
    rc = rc ? rc : uv_timer_init(loop, &a->refuse_timer);
    own[nown++] = (uv_handle_t *)&a->sig_term;
    own[nown++] = (uv_handle_t *)&a->sig_int;
    own[nown++] = (uv_handle_t *)&a->sig_hup;
    rc = rc ? rc : uv_signal_init(loop, &a->sig_term);
    rc = rc ? rc : uv_signal_init(loop, &a->sig_int);
    rc = rc ? rc : uv_signal_init(loop, &a->sig_hup);
    if (rc != 0) {
        rc = pos_uv_errno(rc);
        goto fail_handles;
    }
    for (size_t i = 0; i < nown; i++) {
        own[i]->data = a;
    }
    return 0;

    /* Undone in reverse; handles close on the loop's next turn. */
fail_handles:
    for (size_t i = 0; i < nown; i++) {
        if (own[i]->type != UV_UNKNOWN_HANDLE && !uv_is_closing(own[i])) {
            uv_close(own[i], NULL);
        }
    }
    pos_fleet_close(&a->fleet, NULL, NULL);
    pos_fleet_dispose(&a->fleet);
fail_fleet:
    pos_payment_close(&a->payment, NULL);
fail_payment:
    pos_cachesvc_close(&a->cache, NULL, NULL);
    pos_cachesvc_dispose(&a->cache);
fail_cache:
    pos_delivery_close(&a->delivery, NULL, NULL);
fail_delivery:
    agent_writer_close(a);
fail_writer:
    agent_store_close(a);
    pos_link_stop(&a->link, NULL);
fail_link:
    pos_sign_keys_wipe(&a->sign);
    pos_config_wipe(&a->cfg);
    return rc;
}

/* The local API's SMEMBERS active_transactions offline: this till's
 * payment in progress, and whether a transaction of its own has ended. */
static const char *agent_own_active(void *ctx)
{
    pos_agent_t *a = ctx;

    return pos_payment_sm_state(&a->payment.sm) != POS_PAY_IDLE ? a->payment.sm.cur.transaction_id
                                                                : NULL;
}

static bool agent_own_ended(void *ctx, const char *tx)
{
    pos_agent_t *a = ctx;
    pos_payment_state_t st;

    return pos_payment_sm_lookup(&a->payment.sm, tx, &st) == 0 &&
           !(pos_payment_sm_state(&a->payment.sm) != POS_PAY_IDLE &&
             strcmp(a->payment.sm.cur.transaction_id, tx) == 0);
}

/* ---- the operator's commands (agent/api/admin.h) ----------------------------- */

static pos_journal_t *agent_admin_journal(void *ctx)
{
    pos_agent_t *a = ctx;
    return a->store_ok ? &a->journal : NULL;
}

static void agent_admin_devices(void *ctx, pos_dev_state_t *states)
{
    pos_agent_t *a = ctx;
    memcpy(states, a->devices, sizeof(a->devices));
}

static int agent_admin_device_test(void *ctx, pos_dev_slot_t which)
{
    pos_agent_t *a = ctx;

    if (which == POS_DEV_PRINTER) {
        return pos_payment_test_print(&a->payment);
    }
    return pos_payment_show(&a->payment, "posagent", "test display");
}

void pos_agent_start(pos_agent_t *a)
{
    uint64_t wd_usec = pos_sd_watchdog_usec();

    uv_signal_start(&a->sig_term, agent_signal_cb, SIGTERM);
    uv_signal_start(&a->sig_int, agent_signal_cb, SIGINT);
    uv_signal_start(&a->sig_hup, agent_signal_cb, SIGHUP);
    if (wd_usec > 0) {
        /* Ping at half the period; a stuck loop stops pinging and systemd
         * restarts us. */
        uint64_t ms = wd_usec / 2000u;
        uv_timer_start(&a->watchdog_timer, agent_watchdog_cb, ms ? ms : 1, ms ? ms : 1);
    }
    pos_payment_start(&a->payment);
    pos_payment_restore(&a->payment);
    agent_info_sources(a);
    pos_fleet_start(&a->fleet); /* the metrics text file, when configured */
    {
        pos_api_options_t ao;
        memset(&ao, 0, sizeof(ao));
        ao.loop = a->loop;
        ao.socket_path = a->cfg.local_socket;
        ao.socket_group = a->cfg.local_socket_group;
        ao.max_clients = a->cfg.local_max_clients;
        ao.admit.client_rate = a->cfg.local_client_rate;
        ao.admit.client_burst = a->cfg.local_client_burst;
        ao.admit.turn_budget = a->cfg.local_commands_per_turn;
        ao.admit.idle_timeout_ms = a->cfg.local_idle_timeout_s * 1000u;
        ao.admit.stall_ms = a->cfg.local_stall_timeout_s * 1000u;
        ao.password = a->cfg.local_password_set ? a->cfg.local_password : NULL;
        ao.cache = &a->cache;
        ao.delivery = &a->delivery;
        agent_info_sources(a);
        ao.info = agent_info_cb;
        ao.info_ctx = &a->info;
        ao.link = &a->link;
        ao.terminal_id = a->cfg.terminal_id;
        ao.store_id = a->cfg.store_id;
        ao.own_active = agent_own_active;
        ao.own_ended = agent_own_ended;
        ao.own_ctx = a;
        if (pos_api_start(&a->api, &ao) == 0) { /* logged; the agent runs on without it */
            pos_admin_options_t adm = {
                .socket_path = a->cfg.local_socket,
                .journal = agent_admin_journal,
                .devices = agent_admin_devices,
                .device_test = agent_admin_device_test,
                .ctx = a,
            };
            pos_admin_attach(&a->admin, &a->api.server, &adm);
        }
    }
    /* Serving locally (devices opened, local API listening): ready, also on
     * a till that starts offline. The link's state goes in STATUS=. */
    pos_sd_notify("READY=1\nSTATUS=serving locally; connecting to Redis");
    pos_link_start(&a->link);
}

void pos_agent_dispose(pos_agent_t *a)
{
    pos_fleet_dispose(&a->fleet);
    pos_cachesvc_dispose(&a->cache);
    agent_store_close(a);
    pos_config_wipe(&a->cfg);
    pos_sign_keys_wipe(&a->sign);
}
