#include "agent/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hal/charset.h"

#include "agent/api/api.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/mem.h"
#include "platform/sdnotify.h"

#define SHUTDOWN_WAIT_MS 2000u

static void agent_handle_closed(uv_handle_t *h);
static void agent_track(pos_agent_t *a);

/* ---- status and heartbeat ---------------------------------------------- */

pos_term_status_t pos_agent_status(const pos_agent_t *a)
{
    if (a->stopping) {
        return POS_TERM_OFFLINE;
    }
    return pos_status_compute(a->payment_active, a->devices);
}

static void agent_reply_logged(void *ctx, const redisReply *r, int err)
{
    const char *what = ctx;

    if (err != 0) {
        POS_WARN("status", "%s not confirmed: %s", what, strerror(-err));
    } else if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("status", "%s refused: %.*s", what, (int)(r->len > 200 ? 200 : r->len), r->str);
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
    r.uptime_s = (pos_clock_mono_ms() - a->started_ms) / 1000u;
    memcpy(r.devices, a->devices, sizeof(r.devices));
    r.outbox = 0;
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

void pos_agent_status_changed(pos_agent_t *a)
{
    pos_term_status_t now = pos_agent_status(a);

    if (!pos_link_is_online(&a->link) || a->stopping) {
        return; /* announced at the next connect */
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

static void agent_heartbeat_cb(uv_timer_t *t)
{
    pos_agent_t *a = t->data;

    if (pos_link_is_online(&a->link)) {
        agent_write_status(a, pos_agent_status(a), agent_reply_logged);
    }
}

/* ---- link events --------------------------------------------------------- */

static void agent_on_online(pos_link_t *l)
{
    pos_agent_t *a = l->data;

    /* Status at once on every (re)connect, then every interval from now. */
    pos_agent_status_changed(a);
    uv_timer_start(&a->heartbeat_timer, agent_heartbeat_cb, a->cfg.heartbeat_interval_s * 1000u,
                   a->cfg.heartbeat_interval_s * 1000u);
    if (!a->ready_notified) {
        pos_sd_notify("READY=1");
        a->ready_notified = true;
    }
    {
        uint16_t port;
        const char *host = pos_link_server(&a->link, &port);
        pos_sd_notifyf("STATUS=online: %s:%u", host, (unsigned)port);
    }
    agent_track(a);
    /* What waited in the outbox goes out now, oldest first; cached entries
     * not verified since the link went down are checked against Redis. */
    pos_delivery_online(&a->delivery);
    pos_cachesvc_online(&a->cache, a->unverified_since_ms);
    if (a->link.online_count == 1) {
        pos_cachesvc_warm(&a->cache); /* then every [cache] warm_interval_s */
    }
}

static void agent_on_invalidate(pos_link_t *l, const redisReply *keys)
{
    pos_agent_t *a = l->data;

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
        POS_WARN("cache", "CLIENT TRACKING refused (%.*s): cached entries rely on their TTL "
                          "and the reconnect revalidation",
                 (int)(r->len > 200 ? 200 : r->len), r->str);
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

    if (!a->cache.open || a->link.sub_client_id <= 0) {
        return;
    }
    snprintf(id, sizeof(id), "%lld", a->link.sub_client_id);
    snprintf(inventory, sizeof(inventory), "inventory:%s:", a->cfg.store_id);
    const char *argv[] = {"CLIENT", "TRACKING", "on",       "REDIRECT", id,     "BCAST",
                          "PREFIX", "product:", "PREFIX",   inventory,  "PREFIX", "user:",
                          "PREFIX", "session:"};
    pos_link_commandv(&a->link, agent_track_reply, a, 14, argv);
}

static void agent_on_offline(pos_link_t *l, int err)
{
    pos_agent_t *a = l->data;

    uv_timer_stop(&a->heartbeat_timer);
    a->unverified_since_ms = pos_clock_wall_ms();
    pos_sd_notifyf("STATUS=offline: %s, reconnecting", strerror(-err));
}

static void agent_reply_checked(void *ctx, const redisReply *r, int err)
{
    const char *what = ctx;

    if (err != 0) {
        POS_WARN("agent", "%s not confirmed: %s", what, strerror(-err));
    } else if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("agent", "%s refused: %.*s", what, (int)(r->len > 200 ? 200 : r->len), r->str);
    }
}

int pos_agent_commandv(pos_agent_t *a, const char *what, int argc, const char **argv)
{
    int rc = pos_link_commandv(&a->link, agent_reply_checked, (void *)what, argc, argv);

    if (rc != 0) {
        POS_WARN("agent", "%s not sent: %s", what, strerror(-rc));
    }
    return rc;
}

int pos_agent_publish(pos_agent_t *a, const char *channel, const char *json, size_t len,
                      bool payment)
{
    return pos_delivery_publish(&a->delivery, channel, json, len, payment);
}

void pos_agent_device_status(pos_agent_t *a, int which, pos_dev_state_t st)
{
    if (which < 0 || which >= POS_DEV_COUNT || a->devices[which] == st) {
        return;
    }
    a->devices[which] = st;
    pos_agent_status_changed(a);
}

/*
 * Decodes a message on an inventory or system channel. Returns 0 with *msg
 * filled, or a negative errno after logging why (never the content, which
 * is not ours to log).
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
    rc = pos_msg_decode(ch, payload, len, &lim, msg, why, sizeof(why));
    if (rc == -EALREADY) {
        POS_DEBUG("msg", "%s: terminal-originated message ignored", channel);
    } else if (rc != 0) {
        a->messages_dropped++;
        POS_WARN("msg", "%s: %s, dropped", channel, why);
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

static void agent_on_message(pos_link_t *l, const char *channel, size_t chlen, const char *payload,
                             size_t len)
{
    pos_agent_t *a = l->data;

    for (size_t i = 0; i < sizeof(a->channels) / sizeof(a->channels[0]); i++) {
        pos_channel_t *ch = &a->channels[i];
        if (strlen(ch->name) == chlen && memcmp(ch->name, channel, chlen) == 0) {
            ch->handler(a, payload, len);
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

static void agent_reload(pos_agent_t *a)
{
    pos_config_t scratch;
    pos_config_error_t err;
    extern char **environ;

    /* Parse into a scratch copy; only the log level is applied at run time,
     * and only when the whole file is valid. */
    if (pos_config_load(&scratch, a->config_path, environ, &err) != 0) {
        POS_ERR("config", "reload failed, keeping the running settings: %s", err.msg);
        pos_config_wipe(&scratch);
        return;
    }
    if (scratch.log_level != a->cfg.log_level) {
        a->cfg.log_level = scratch.log_level;
        pos_log_set_level((pos_log_level_t)scratch.log_level);
    }
    POS_INFO("config", "reloaded: log level %s (other settings apply at restart)",
             pos_log_level_name((pos_log_level_t)a->cfg.log_level));
    pos_config_wipe(&scratch);
}

static void agent_signal_cb(uv_signal_t *s, int signum)
{
    pos_agent_t *a = s->data;

    if (signum == SIGHUP) {
        agent_reload(a);
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

static void agent_shutdown_reply(void *ctx, const redisReply *r, int err)
{
    pos_agent_t *a = ctx;

    if (err != 0) {
        POS_WARN("agent", "offline status not confirmed: %s", strerror(-err));
    } else if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("agent", "offline status refused: %.*s", (int)(r->len > 200 ? 200 : r->len),
                 r->str);
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

static void agent_link_stopped(pos_link_t *l)
{
    agent_handle_closed((uv_handle_t *)&((pos_agent_t *)l->data)->heartbeat_timer);
}

static void agent_payment_closed(pos_payment_t *p)
{
    agent_handle_closed((uv_handle_t *)&p->agent->heartbeat_timer);
}

static void agent_api_closed(void *arg)
{
    pos_agent_t *a = arg;
    agent_handle_closed((uv_handle_t *)&a->heartbeat_timer);
}

static void agent_handle_closed(uv_handle_t *h)
{
    pos_agent_t *a = h->data;
    if (a->open_handles > 0) {
        a->open_handles--;
    }
}

static void agent_close_all(pos_agent_t *a)
{
    uv_handle_t *handles[] = {
        (uv_handle_t *)&a->heartbeat_timer, (uv_handle_t *)&a->watchdog_timer,
        (uv_handle_t *)&a->shutdown_timer,  (uv_handle_t *)&a->sig_term,
        (uv_handle_t *)&a->sig_int,         (uv_handle_t *)&a->sig_hup,
        (uv_handle_t *)&a->cache.flush_timer, (uv_handle_t *)&a->cache.warm_timer,
    };

    if (uv_is_closing((uv_handle_t *)&a->heartbeat_timer)) {
        return;
    }
    a->open_handles = sizeof(handles) / sizeof(handles[0]) + 2; /* + link, payment */
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        uv_close(handles[i], agent_handle_closed);
    }
    if (a->api != NULL) {
        a->open_handles++;
        pos_localapi_close(a->api, agent_api_closed, a);
        a->api = NULL;
    }
    /* Stopping the link fails pending reads, which answers their clients. */
    pos_link_stop(&a->link, agent_link_stopped);
    pos_payment_close(&a->payment, agent_payment_closed);
}

void pos_agent_shutdown(pos_agent_t *a)
{
    pos_term_status_t previous = pos_agent_status(a);
    bool online = pos_link_is_online(&a->link);

    if (a->stopping) {
        if (a->shutdown_waits == 0) {
            agent_close_all(a);
        }
        return;
    }
    a->stopping = true;
    uv_timer_stop(&a->heartbeat_timer);
    pos_sd_notify("STOPPING=1");
    if (!online) {
        POS_INFO("agent", "link offline: stopping without writing the offline status");
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
    (void)previous;
    if (a->shutdown_waits == 0) {
        agent_close_all(a);
        return;
    }
    uv_timer_start(&a->shutdown_timer, agent_shutdown_timer_cb, SHUTDOWN_WAIT_MS, 0);
}

/* ---- setup ------------------------------------------------------------------ */

static void agent_store_open(pos_agent_t *a)
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
            rc = pos_journal_open(&a->journal, &a->store, &jc);
            if (rc != 0) {
                pos_outbox_close(&a->outbox);
            }
        }
        if (rc != 0) {
            pos_store_close(&a->store);
        }
    }
    if (rc != 0) {
        /* Payments and messages still work online; nothing survives a
         * restart, and what is sent while offline is lost (and counted). */
        POS_ERR("store", "cannot open the local store in %s: %s; running without it",
                a->cfg.store_path, strerror(-rc));
        a->store_ok = false;
        pos_delivery_init(&a->delivery, a, NULL);
        return;
    }
    a->store_ok = true;
    pos_delivery_init(&a->delivery, a, &a->outbox);
    {
        pos_outbox_stats_t st;
        pos_outbox_stats(&a->outbox, &st);
        POS_INFO("store", "opened %s: %" PRIu64 " outbox entries waiting, %" PRIu64
                          " payments in the journal",
                 a->cfg.store_path, st.entries, pos_journal_count(&a->journal));
    }
}

void pos_tls_options_from_config(const pos_config_t *cfg, pos_tls_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->ca_file = cfg->tls_ca_file;
    opt->cert_file = cfg->tls_cert_file;
    opt->key_file = cfg->tls_key_file;
    opt->server_name = cfg->tls_server_name[0] != '\0' ? cfg->tls_server_name : cfg->redis.host;
    opt->min_version = cfg->tls_min_version;
}

int pos_agent_init(pos_agent_t *a, uv_loop_t *loop, const pos_config_t *cfg,
                   const char *config_path, pos_tls_t *tls)
{
    pos_link_options_t lo;
    pos_sentinel_options_t so;
    static const pos_link_callbacks_t link_cb = {
        .on_online = agent_on_online,
        .on_offline = agent_on_offline,
        .on_message = agent_on_message,
        .on_invalidate = agent_on_invalidate,
    };
    int rc;

    pos_mem_zero(a, sizeof(*a));
    a->loop = loop;
    a->cfg = *cfg;
    a->config_path = config_path;
    a->published = POS_TERM_OFFLINE;
    a->started_ms = pos_clock_mono_ms();
    a->unverified_since_ms = pos_clock_wall_ms();
    for (int i = 0; i < POS_DEV_COUNT; i++) {
        a->devices[i] = POS_DEV_OFFLINE; /* until the driver says otherwise */
    }

    snprintf(a->channels[0].name, sizeof(a->channels[0].name), "payment:%s", cfg->terminal_id);
    a->channels[0].handler = agent_on_payment;
    snprintf(a->channels[1].name, sizeof(a->channels[1].name), "inventory:%s", cfg->store_id);
    a->channels[1].handler = agent_on_inventory;
    snprintf(a->channels[2].name, sizeof(a->channels[2].name), "system:alerts");
    a->channels[2].handler = agent_on_system;
    snprintf(a->probe_channel, sizeof(a->probe_channel), "posagent:probe:%s", cfg->terminal_id);
    snprintf(a->client_name, sizeof(a->client_name), "posagent:%s", cfg->terminal_id);
    snprintf(a->status_key, sizeof(a->status_key), "terminal:%s:status", cfg->terminal_id);

    memset(&lo, 0, sizeof(lo));
    lo.endpoint = &a->cfg.redis;
    lo.client_name = a->client_name;
    for (size_t i = 0; i < 3; i++) {
        lo.channels[i] = a->channels[i].name;
    }
    lo.nchannels = 3;
    lo.probe_channel = a->probe_channel;
    lo.connect_timeout_ms = cfg->connect_timeout_ms;
    lo.command_timeout_ms = cfg->command_timeout_ms;
    lo.retry_delay_ms = cfg->retry_delay_ms;
    lo.max_retry_delay_ms = cfg->max_retry_delay_ms;
    lo.probe_interval_ms = cfg->probe_interval_ms;
    if (a->cfg.nsentinels > 0) {
        /* Strings from a->cfg, which outlives the link. */
        memset(&so, 0, sizeof(so));
        so.addrs = a->cfg.sentinels;
        so.naddrs = a->cfg.nsentinels;
        so.master_name = a->cfg.redis_master_name;
        so.password = a->cfg.redis_sentinel_password;
        so.client_name = a->client_name;
        so.connect_timeout_ms = cfg->connect_timeout_ms;
        so.command_timeout_ms = cfg->command_timeout_ms;
        so.retry_delay_ms = cfg->retry_delay_ms;
        so.max_retry_delay_ms = cfg->max_retry_delay_ms;
        lo.sentinel = &so;
    }
    if (cfg->redis.tls) {
        /* Never a plain connection for a rediss:// URL. */
        if (tls == NULL || !tls->ready) {
            return -EINVAL;
        }
        lo.transport = &pos_tls_transport;
        lo.transport_arg = tls;
    }
    rc = pos_link_init(loop, &a->link, &lo, &link_cb);
    if (rc != 0) {
        return rc;
    }
    a->link.data = a;
    agent_store_open(a);
    pos_cachesvc_init(&a->cache, a);
    {
        char err[256];
        rc = pos_payment_init(&a->payment, a, err, sizeof(err));
        if (rc != 0) {
            POS_ERR("hal", "cannot set up the devices: %s", err);
            return rc;
        }
    }

    uv_timer_init(loop, &a->heartbeat_timer);
    uv_timer_init(loop, &a->watchdog_timer);
    uv_timer_init(loop, &a->shutdown_timer);
    uv_signal_init(loop, &a->sig_term);
    uv_signal_init(loop, &a->sig_int);
    uv_signal_init(loop, &a->sig_hup);
    a->heartbeat_timer.data = a->watchdog_timer.data = a->shutdown_timer.data = a;
    a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
    return 0;
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
    pos_api_start(a);
    pos_sd_notify("STATUS=connecting");
    pos_link_start(&a->link);
}

void pos_agent_dispose(pos_agent_t *a)
{
    pos_cachesvc_dispose(&a->cache);
    if (a->store_ok) {
        pos_journal_close(&a->journal);
        pos_outbox_close(&a->outbox);
        pos_store_close(&a->store);
        a->store_ok = false;
    }
    pos_config_wipe(&a->cfg);
    pos_sign_keys_wipe(&a->sign);
}
