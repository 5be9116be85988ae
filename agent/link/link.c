#include "agent/link/link.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/link/tls.h"
#include "platform/clock.h"
#include "platform/jitter.h"
#include "platform/log.h"
#include "platform/mem.h"

#define LINK_PROBE_INTERVAL_MS 10000u
#define LINK_INVALIDATE_CHANNEL "__redis__:invalidate"
#define LINK_STABLE_AFTER_MS   10000u

static void link_conn_open(pos_conn_t *c);
static void link_conn_push(pos_conn_t *c, const redisReply *r);
static void link_conn_closed(pos_conn_t *c, int err);

/* Error replies are logged with their first line, which never holds a
 * secret: Redis does not echo passwords back. */
static void link_log_reply_error(const pos_link_side_t *s, const char *what, const redisReply *r)
{
    POS_ERR("link", "%s: %s refused: %.*s", s->conn.opt.name, what, pos_conn_log_len(r), r->str);
}

/* Where this attempt connects: the sentinels' answer, or the URL's host. */
static const char *link_host(const pos_link_t *l)
{
    uint16_t port;

    if (l->cluster != NULL) {
        return pos_cluster_home(l->cluster, &port);
    }
    return l->use_sentinel ? l->master_host : l->opt.endpoint->host;
}

static uint16_t link_port(const pos_link_t *l)
{
    uint16_t port = 0;

    if (l->cluster != NULL) {
        pos_cluster_home(l->cluster, &port);
        return port;
    }
    return l->use_sentinel ? l->master_port : l->opt.endpoint->port;
}

static void link_fail(pos_link_t *l, int err)
{
    /* Taking one connection down takes the other down from link_conn_closed. */
    pos_conn_abort(&l->cmd.conn, err);
    pos_conn_abort(&l->sub.conn, err);
}

static void link_step_done(pos_link_side_t *s);

static void link_auth_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;
    pos_link_t *l = s->link;

    if (err != 0) {
        return; /* the connection is going down; link_conn_closed handles it */
    }
    if (pos_link_auth_check(s->conn.opt.name, r) == 0) {
        link_step_done(s);
        return;
    }
    link_log_reply_error(s, "AUTH", r);
    POS_ERR("link",
            "authentication failed: check the password and ACL user "
            "(REDIS_URL, REDIS_PASSWORD); retrying every %u ms",
            l->opt.reach.max_retry_delay_ms);
    l->fatal = true;
    pos_conn_abort(&s->conn, -EACCES);
}

static void link_select_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;
    int cls;

    if (err != 0) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        link_log_reply_error(s, "SELECT", r);
        cls = pos_link_classify_error(r->str, r->len);
        s->link->fatal = cls == -EACCES || cls == -EINVAL;
        pos_conn_abort(&s->conn, cls);
        return;
    }
    link_step_done(s);
}

static void link_setname_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;

    if (err != 0) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int cls = pos_link_classify_error(r->str, r->len);
        if (cls == -EACCES) {
            link_log_reply_error(s, "CLIENT SETNAME", r);
            s->link->fatal = true;
            pos_conn_abort(&s->conn, cls);
            return;
        }
        /* A server with CLIENT renamed or restricted still works. */
        POS_WARN("link", "%s: CLIENT SETNAME refused: %.*s", s->conn.opt.name, pos_conn_log_len(r),
                 r->str);
    }
    link_step_done(s);
}

static void link_subscribe_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;

    if (err != 0) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        link_log_reply_error(s, "SUBSCRIBE", r);
        int cls = pos_link_classify_error(r->str, r->len);
        s->link->fatal = cls == -EACCES;
        pos_conn_abort(&s->conn, cls);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len != 9 ||
        memcmp(r->element[0]->str, "subscribe", 9) != 0) {
        POS_WARN("link", "%s: unexpected reply to SUBSCRIBE", s->conn.opt.name);
        pos_conn_abort(&s->conn, -EPROTO);
        return;
    }
    link_step_done(s);
}

/* ROLE, with Sentinel only: a sentinel's answer may be stale (a failover
 * in progress, an old master back as a replica); writing to a replica
 * fails, so anything but a master is a transient failure: back off and ask
 * the sentinels again. */
static void link_role_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;
    pos_link_t *l = s->link;

    if (err != 0) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int cls = pos_link_classify_error(r->str, r->len);
        if (cls == -EAGAIN || cls == -EPROTO) {
            link_log_reply_error(s, "ROLE", r);
            pos_conn_abort(&s->conn, -EAGAIN);
            return;
        }
        /* ROLE denied by an ACL: the role cannot be checked, but the
         * server still works; +switch-master is followed regardless. */
        POS_WARN("link", "%s: ROLE refused (%.*s); the master's role is not verified",
                 s->conn.opt.name, pos_conn_log_len(r), r->str);
        link_step_done(s);
        return;
    }
    if (!pos_sentinel_role_is_master(r)) {
        POS_WARN("link", "%s:%u is not a master (ROLE); asking the sentinels again", link_host(l),
                 (unsigned)link_port(l));
        if (l->use_sentinel) {
            pos_sentinel_distrust_first(&l->sentinel); /* the others first next time */
        }
        pos_conn_abort(&s->conn, -EAGAIN);
        return;
    }
    link_step_done(s);
}

static int link_send_subscribe(pos_link_side_t *s);

/* The gate's reply: SUBSCRIBE only once it passed (link.h). */
static void link_gate_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;
    pos_link_t *l = s->link;
    int rc;

    if (err != 0) {
        return;
    }
    rc = l->opt.gate->check(l->opt.gate->ctx, r);
    if (rc == 0) {
        /* Its steps join before this one is counted done. */
        rc = link_send_subscribe(s);
    }
    if (rc != 0) {
        l->fatal = rc == -EPERM || rc == -EACCES;
        pos_conn_abort(&s->conn, rc);
        return;
    }
    link_step_done(s);
}

static void link_clientid_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_side_t *s = ctx;

    if (err != 0) {
        return;
    }
    /* Without an id (a restricted server) tracking is simply not set up. */
    s->link->sub_client_id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    link_step_done(s);
}

static void link_probe_timer_cb(uv_timer_t *t);
static void link_stable_timer_cb(uv_timer_t *t);

#define LINK_MEMORY_EVERY 6u /* probes per INFO memory */

static void link_go_online(pos_link_t *l)
{
    uint64_t now = uv_now(l->loop);

    l->state = POS_LINK_ONLINE;
    l->online_count++;
    l->probe_pending = false;
    l->probes_online = 0;
    l->down_err = 0;
    l->fatal = false;
    POS_INFO("link", "online (%s:%u db %d%s) after %" PRIu64 " ms", link_host(l),
             (unsigned)link_port(l), l->opt.endpoint->db, l->use_sentinel ? ", master" : "",
             now - l->last_attempt_ms);
    uv_timer_start(&l->probe_timer, link_probe_timer_cb, l->opt.probe_interval_ms,
                   l->opt.probe_interval_ms);
    uv_timer_start(&l->stable_timer, link_stable_timer_cb, l->opt.stable_after_ms, 0);
    if (l->cb.on_online != NULL) {
        l->cb.on_online(l);
    }
}

static void link_step_done(pos_link_side_t *s)
{
    pos_link_t *l = s->link;

    if (s->steps_left > 0 && --s->steps_left > 0) {
        return;
    }
    s->ready = true;
    if (l->state == POS_LINK_CONNECTING && l->cmd.ready && l->sub.ready) {
        link_go_online(l);
    }
}

static int link_send_handshake(pos_link_side_t *s, bool subscriber)
{
    pos_link_t *l = s->link;
    const pos_redis_url_t *ep = l->opt.endpoint;
    char db[16];
    int rc;

    s->ready = false;
    s->steps_left = 0;
    /* Pipelined: all handshake commands go out at once; replies come back in
     * order, and the first refusal takes the connection down. */
    if (ep->password[0] != '\0') {
        if (ep->user[0] != '\0') {
            const char *argv[] = {"AUTH", ep->user, ep->password};
            rc = pos_conn_commandv(&s->conn, link_auth_cb, s, 3, argv);
        } else {
            const char *argv[] = {"AUTH", ep->password};
            rc = pos_conn_commandv(&s->conn, link_auth_cb, s, 2, argv);
        }
        if (rc != 0) {
            return rc;
        }
        s->steps_left++;
    }
    if (ep->db > 0) {
        snprintf(db, sizeof(db), "%d", ep->db);
        const char *argv[] = {"SELECT", db};
        rc = pos_conn_commandv(&s->conn, link_select_cb, s, 2, argv);
        if (rc != 0) {
            return rc;
        }
        s->steps_left++;
    }
    {
        const char *argv[] = {"CLIENT", "SETNAME", l->opt.reach.client_name};
        rc = pos_conn_commandv(&s->conn, link_setname_cb, s, 3, argv);
        if (rc != 0) {
            return rc;
        }
        s->steps_left++;
    }
    if (!subscriber && l->use_sentinel) {
        const char *argv[] = {"ROLE"};
        rc = pos_conn_commandv(&s->conn, link_role_cb, s, 1, argv);
        if (rc != 0) {
            return rc;
        }
        s->steps_left++;
    }
    if (subscriber) {
        {
            const char *id[] = {"CLIENT", "ID"};
            rc = pos_conn_commandv(&s->conn, link_clientid_cb, s, 2, id);
            if (rc != 0) {
                return rc;
            }
            s->steps_left++;
        }
        if (l->opt.gate != NULL) {
            /* SUBSCRIBE waits for the gate's answer (link_gate_cb). */
            rc = pos_conn_commandv(&s->conn, link_gate_cb, s, l->opt.gate->argc,
                                   (const char **)l->opt.gate->argv);
            if (rc != 0) {
                return rc;
            }
            s->steps_left++;
            return 0;
        }
        return link_send_subscribe(s);
    }
    return 0;
}

static int link_send_subscribe(pos_link_side_t *s)
{
    pos_link_t *l = s->link;
    const char *argv[POS_LINK_MAX_CHANNELS + 3];
    size_t lens[POS_LINK_MAX_CHANNELS + 3];
    int argc = 0, rc;

    argv[argc++] = "SUBSCRIBE";
    for (size_t i = 0; i < l->opt.nchannels; i++) {
        argv[argc++] = l->opt.channels[i];
    }
    argv[argc++] = l->opt.probe_channel;
    argv[argc++] = LINK_INVALIDATE_CHANNEL;
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    rc = pos_conn_command(&s->conn, link_subscribe_cb, s, (uint32_t)(argc - 1), argc, argv, lens);
    if (rc != 0) {
        return rc;
    }
    s->steps_left += (uint32_t)(argc - 1);
    return 0;
}

static void link_conn_open(pos_conn_t *c)
{
    pos_link_side_t *s = c->data;
    int rc;

    POS_DEBUG("link", "%s: connected", c->opt.name);
    rc = link_send_handshake(s, s == &s->link->sub);
    if (rc != 0) {
        pos_conn_abort(c, rc);
    }
}

static void link_probe_reply_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_t *l = ctx;

    if (err != 0 || l->state != POS_LINK_ONLINE) {
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        /* Nobody heard the probe: our subscriber is gone even if its socket
         * still looks open. */
        POS_WARN("link", "probe: the subscriber connection is no longer subscribed");
        link_fail(l, -ENOTCONN);
    }
}

/* INFO memory, read with every probe: used_memory is what the health
 * check reports as Redis's memory. A refusal (an ACL without +info) only
 * leaves it unknown; the link's health is the probe's business. */
static void link_memory_reply_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_t *l = ctx;
    const char *p;

    if (err != 0 || r->type != REDIS_REPLY_STRING) {
        return;
    }
    p = strstr(r->str, "used_memory:");
    if (p != NULL) {
        char *end;
        unsigned long long v = strtoull(p + 12, &end, 10);
        if (end != p + 12) {
            l->redis_used_memory = v;
            l->redis_memory_at_ms = pos_clock_wall_ms();
        }
    }
}

static void link_probe_timer_cb(uv_timer_t *t)
{
    pos_link_t *l = t->data;
    char seq[24];
    int rc;

    if (l->state != POS_LINK_ONLINE) {
        return;
    }
    if (l->cluster != NULL) {
        pos_cluster_stats_t cs;
        pos_cluster_probe(l->cluster);
        /* Health: home's PING round trip, and home's INFO memory as often
         * as with one server. */
        pos_cluster_stats(l->cluster, &cs, NULL);
        l->probe_rtt_us = cs.probe_rtt_us;
        if (l->state == POS_LINK_ONLINE && l->probes_online++ % LINK_MEMORY_EVERY == 0) {
            const char *info[] = {"INFO", "memory"};
            (void)pos_link_commandv(l, link_memory_reply_cb, l, 2, info);
        }
        return;
    }
    if (l->probe_pending && pos_conn_busy(&l->sub.conn)) {
        /* Messages are coming in faster than they are handled: the
         * subscriber is alive, the probe is queued behind them. */
        return;
    }
    if (l->probe_pending) {
        POS_WARN("link", "probe %" PRIu64 " not heard back within %u ms, reconnecting",
                 l->probe_seq, l->opt.probe_interval_ms);
        link_fail(l, -ETIMEDOUT);
        return;
    }
    l->probe_seq++;
    snprintf(seq, sizeof(seq), "%" PRIu64, l->probe_seq);
    const char *argv[] = {"PUBLISH", l->opt.probe_channel, seq};
    rc = pos_conn_commandv(&l->cmd.conn, link_probe_reply_cb, l, 3, argv);
    if (rc != 0) {
        link_fail(l, rc);
        return;
    }
    l->probe_pending = true;
    l->probe_sent_us = pos_clock_mono_us();
    if (l->probes_online++ % LINK_MEMORY_EVERY == 0) {
        /* Redis's memory with the first probe of a connect, then with every
         * LINK_MEMORY_EVERY-th: a fleet pays one INFO per till a minute. */
        const char *info[] = {"INFO", "memory"};
        (void)pos_conn_commandv(&l->cmd.conn, link_memory_reply_cb, l, 2, info);
    }
}

static void link_stable_timer_cb(uv_timer_t *t)
{
    pos_link_t *l = t->data;

    if (l->state == POS_LINK_ONLINE) {
        pos_backoff_reset(&l->backoff);
    }
}

static void link_conn_push(pos_conn_t *c, const redisReply *r)
{
    pos_link_side_t *s = c->data;
    pos_link_t *l = s->link;
    const redisReply *ch, *payload;

    /* ["message", channel, payload]: the connection drops "pmessage". */
    ch = r->element[1];
    payload = r->element[2];
    if (ch->type == REDIS_REPLY_STRING && ch->len == strlen(LINK_INVALIDATE_CHANNEL) &&
        memcmp(ch->str, LINK_INVALIDATE_CHANNEL, ch->len) == 0) {
        /* Redis sends an array of keys, or a nil for a flush; a string is
         * someone's PUBLISH on the channel, not an invalidation. */
        if (payload->type != REDIS_REPLY_ARRAY && payload->type != REDIS_REPLY_NIL) {
            POS_DEBUG("link", "%s: a PUBLISH on %s ignored", c->opt.name, LINK_INVALIDATE_CHANNEL);
            return;
        }
        if (l->state == POS_LINK_ONLINE && l->cb.on_invalidate != NULL) {
            l->cb.on_invalidate(l, payload->type == REDIS_REPLY_ARRAY ? payload : NULL);
        }
        return;
    }
    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) {
        POS_WARN("link", "%s: malformed pub/sub message dropped", c->opt.name);
        return;
    }
    if (ch->len == strlen(l->opt.probe_channel) &&
        memcmp(ch->str, l->opt.probe_channel, ch->len) == 0) {
        char seq[24];
        int n = snprintf(seq, sizeof(seq), "%" PRIu64, l->probe_seq);
        if (n > 0 && (size_t)n == payload->len && memcmp(seq, payload->str, payload->len) == 0) {
            l->probe_pending = false;
            l->probe_rtt_us = pos_clock_mono_us() - l->probe_sent_us;
        }
        return;
    }
    if (l->state == POS_LINK_ONLINE && l->cb.on_message != NULL) {
        l->cb.on_message(l, ch->str, ch->len, payload->str, payload->len);
    }
}

static void link_schedule_retry(pos_link_t *l);

static void link_connect_both(pos_link_t *l)
{
    /* Both connections go to the same address, held in the link for the
     * whole attempt. */
    pos_conn_connect(&l->cmd.conn, link_host(l), link_port(l));
    /* The first connect may already have failed synchronously and brought
     * the link down again; connect the subscriber only if still trying. */
    if (l->state == POS_LINK_CONNECTING) {
        pos_conn_connect(&l->sub.conn, link_host(l), link_port(l));
    }
}

static void link_use_hint(pos_link_t *l)
{
    memcpy(l->master_host, l->hint_host, sizeof(l->master_host));
    l->master_port = l->hint_port;
    l->have_hint = false;
    l->switch_pending = false; /* this attempt is the immediate one */
}

static void link_resolved(pos_sentinel_t *st, int err, const char *host, uint16_t port)
{
    pos_link_t *l = st->data;

    if (l->state != POS_LINK_CONNECTING) {
        return;
    }
    if (l->have_hint) {
        /* A failover was announced while we were asking: the announcement
         * is newer than any answer. */
        link_use_hint(l);
    } else if (err != 0) {
        l->down_err = err;
        /* A refused sentinel password is a configuration problem: retried
         * at the backoff cap, like a refused Redis password. */
        l->fatal = err == -EACCES;
        l->master_host[0] = '\0';
        l->master_port = 0;
        link_schedule_retry(l);
        return;
    } else {
        snprintf(l->master_host, sizeof(l->master_host), "%s", host);
        l->master_port = port;
    }
    link_connect_both(l);
}

static void link_retry_timer_cb(uv_timer_t *t)
{
    pos_link_t *l = t->data;
    int rc;

    if (l->state != POS_LINK_DOWN) {
        return;
    }
    l->state = POS_LINK_CONNECTING;
    l->last_attempt_ms = uv_now(l->loop);
    l->cmd.ready = l->sub.ready = false;
    l->down_err = 0;
    l->fatal = false;
    if (l->cluster != NULL) {
        pos_cluster_connect(l->cluster);
        return;
    }
    if (!l->use_sentinel) {
        link_connect_both(l);
        return;
    }
    if (l->have_hint) {
        link_use_hint(l);
        link_connect_both(l);
        return;
    }
    rc = pos_sentinel_resolve(&l->sentinel, link_resolved);
    if (rc != 0 && l->state == POS_LINK_CONNECTING) {
        l->down_err = rc;
        link_schedule_retry(l);
    }
}

static void link_schedule_retry(pos_link_t *l)
{
    char where[POS_URL_HOST_MAX + 96];
    uint32_t delay;

    if (l->switch_pending) {
        /* A failover was announced: the new master is up now. */
        l->switch_pending = false;
        delay = 0;
    } else if (l->fatal) {
        delay = pos_backoff_at_cap(&l->backoff);
    } else {
        delay = pos_backoff_next(&l->backoff, pos_jitter_next(&l->rng));
    }
    l->state = POS_LINK_DOWN;
    /* One line per attempt early in an outage, then one in twenty, so that
     * a long outage does not flood the log. */
    if (l->use_sentinel && l->master_host[0] == '\0') {
        snprintf(where, sizeof(where), "sentinels of '%s'", l->sentinel.opt.master_name);
    } else {
        snprintf(where, sizeof(where), "%s:%u", link_host(l), (unsigned)link_port(l));
    }
    pos_log(l->backoff.attempts <= 5 || l->backoff.attempts % 20 == 0 ? POS_LOG_INFO
                                                                      : POS_LOG_DEBUG,
            "link", "%s: %s; reconnecting in %u ms (attempt %u)", where, strerror(-l->down_err),
            delay, l->backoff.attempts);
    uv_timer_start(&l->retry_timer, link_retry_timer_cb, delay, 0);
}

/* The first error of a failure is why the link is down; an online link
 * goes offline. */
static void link_going_down(pos_link_t *l, int err)
{
    if (l->down_err == 0) {
        l->down_err = err;
        /* A rejected certificate or a refused TLS handshake will not fix
         * itself in a second: retry at the cap, like a wrong password. The
         * TLS layer has logged the reason. */
        if (err == POS_TLS_EREJECTED || err == POS_TLS_EHANDSHAKE) {
            l->fatal = true;
        }
    }
    if (l->state == POS_LINK_ONLINE) {
        l->state = POS_LINK_CONNECTING; /* neither online nor yet waiting */
        l->went_down_ms = uv_now(l->loop);
        uv_timer_stop(&l->probe_timer);
        uv_timer_stop(&l->stable_timer);
        POS_WARN("link", "offline: %s", strerror(-err));
        if (l->cb.on_offline != NULL) {
            l->cb.on_offline(l, err);
        }
    }
}

static void link_conn_closed(pos_conn_t *c, int err)
{
    pos_link_side_t *s = c->data;
    pos_link_t *l = s->link;

    s->ready = false;
    if (l->state == POS_LINK_STOPPING || l->state == POS_LINK_STOPPED || l->cluster != NULL) {
        return;
    }
    link_going_down(l, err);
    /* Bring the other connection down too; the retry waits for both. */
    pos_conn_abort(&l->cmd.conn, err);
    pos_conn_abort(&l->sub.conn, err);
    if (l->cmd.conn.state == POS_CONN_IDLE && l->sub.conn.state == POS_CONN_IDLE &&
        l->state == POS_LINK_CONNECTING) {
        link_schedule_retry(l);
    }
}

/* Sentinel announced a failover of our master. */
static void link_on_switch(pos_sentinel_t *st, const char *host, uint16_t port)
{
    pos_link_t *l = st->data;
    bool same = port == l->master_port && strcmp(host, l->master_host) == 0;
    uint64_t now = uv_now(l->loop);
    /* A real failover is announced once; a sentinel announcing one after
     * another (lying, or flapping) would have the link reconnect without
     * any delay, AUTH and all, as fast as it publishes. One is acted on at
     * once per max_retry_delay_ms; later ones wait for the backoff. */
    bool at_once = l->switch_at_ms == 0 || now - l->switch_at_ms >= l->opt.reach.max_retry_delay_ms;

    l->failovers++;
    switch (l->state) {
    case POS_LINK_ONLINE:
    case POS_LINK_CONNECTING:
        if (same && (l->cmd.conn.state != POS_CONN_IDLE || l->sub.conn.state != POS_CONN_IDLE)) {
            return; /* already there */
        }
        snprintf(l->hint_host, sizeof(l->hint_host), "%s", host);
        l->hint_port = port;
        l->have_hint = true;
        l->switch_pending = at_once;
        if (at_once) {
            l->switch_at_ms = now;
        }
        /* Idle connections (the sentinels are being asked): link_resolved
         * takes the hint. Otherwise tear down; the retry is immediate
         * (or after the backoff, see above). */
        link_fail(l, -ECONNRESET);
        return;
    case POS_LINK_DOWN:
        snprintf(l->hint_host, sizeof(l->hint_host), "%s", host);
        l->hint_port = port;
        l->have_hint = true;
        if (at_once) {
            l->switch_at_ms = now;
            uv_timer_stop(&l->retry_timer);
            uv_timer_start(&l->retry_timer, link_retry_timer_cb, 0, 0);
        }
        return;
    default:
        return;
    }
}

static void link_role_check_cb(void *ctx, const redisReply *r, int err)
{
    pos_link_t *l = ctx;

    if (err != 0 || l->state != POS_LINK_ONLINE) {
        return;
    }
    if (r->type != REDIS_REPLY_ERROR && !pos_sentinel_role_is_master(r)) {
        POS_WARN("link", "%s:%u is no longer a master (ROLE); asking the sentinels again",
                 link_host(l), (unsigned)link_port(l));
        link_fail(l, -EAGAIN);
    }
}

/* The sentinel subscription came back after a gap: a failover may have
 * been missed, so check that the server we use is still a master. */
static void link_on_watch(pos_sentinel_t *st, bool again)
{
    pos_link_t *l = st->data;
    const char *argv[] = {"ROLE"};

    if (again && l->state == POS_LINK_ONLINE) {
        pos_conn_commandv(&l->cmd.conn, link_role_check_cb, l, 1, argv);
    }
}

/* ---- Redis Cluster: the cluster client's events ---------------------------- */

static void link_cluster_ready(pos_cluster_t *c)
{
    pos_link_t *l = pos_cluster_data(c);

    if (l->state == POS_LINK_CONNECTING) {
        link_go_online(l);
    }
}

static void link_cluster_failing(pos_cluster_t *c, int err)
{
    pos_link_t *l = pos_cluster_data(c);

    if (l->state == POS_LINK_ONLINE || l->state == POS_LINK_CONNECTING) {
        link_going_down(l, err);
    }
}

static void link_cluster_down(pos_cluster_t *c, int err, bool fatal)
{
    pos_link_t *l = pos_cluster_data(c);

    if (l->state != POS_LINK_ONLINE && l->state != POS_LINK_CONNECTING) {
        return;
    }
    link_going_down(l, err);
    l->fatal = l->fatal || fatal;
    link_schedule_retry(l);
}

static void link_cluster_message(pos_cluster_t *c, const char *channel, size_t chlen,
                                 const char *payload, size_t len)
{
    pos_link_t *l = pos_cluster_data(c);

    if (l->state == POS_LINK_ONLINE && l->cb.on_message != NULL) {
        l->cb.on_message(l, channel, chlen, payload, len);
    }
}

static void link_cluster_invalidate(pos_cluster_t *c, const redisReply *keys)
{
    pos_link_t *l = pos_cluster_data(c);

    if (l->state == POS_LINK_ONLINE && l->cb.on_invalidate != NULL) {
        l->cb.on_invalidate(l, keys);
    }
}

static int link_cluster_init(uv_loop_t *loop, pos_link_t *l, const pos_cluster_options_t *copt)
{
    static const pos_cluster_callbacks_t ccb = {
        .on_ready = link_cluster_ready,
        .on_failing = link_cluster_failing,
        .on_down = link_cluster_down,
        .on_message = link_cluster_message,
        .on_invalidate = link_cluster_invalidate,
    };
    pos_cluster_options_t co = *copt;

    co.endpoint = l->opt.endpoint;
    co.reach = l->opt.reach;
    co.channels = l->opt.channels;
    co.nchannels = l->opt.nchannels;
    if (l->opt.gate != NULL) {
        /* No subscription before the gate passed, as with one server. */
        co.gate_argc = l->opt.gate->argc;
        co.gate_argv = l->opt.gate->argv;
        co.gate_check = l->opt.gate->check;
        co.gate_ctx = l->opt.gate->ctx;
    }
    l->opt.cluster = NULL; /* the copy lives in the cluster client */
    return pos_cluster_init(loop, &l->cluster, &co, &ccb, l);
}

bool pos_link_track_prefixes(pos_link_t *l, const char *const *prefixes, size_t n)
{
    if (l->cluster == NULL) {
        return false;
    }
    pos_cluster_track(l->cluster, prefixes, n);
    return true;
}

int pos_link_init(uv_loop_t *loop, pos_link_t *l, const pos_link_options_t *opt,
                  const pos_link_callbacks_t *cb)
{
    static const pos_conn_callbacks_t conn_cb = {
        .on_open = link_conn_open,
        .on_push = link_conn_push,
        .on_closed = link_conn_closed,
    };
    pos_conn_options_t co;
    int rc;

    pos_mem_zero(l, sizeof(*l));
    l->loop = loop;
    l->opt = *opt;
    l->cb = *cb;
    if (l->opt.probe_interval_ms == 0) {
        l->opt.probe_interval_ms = LINK_PROBE_INTERVAL_MS;
    }
    if (l->opt.stable_after_ms == 0) {
        l->opt.stable_after_ms = LINK_STABLE_AFTER_MS;
    }
    if (l->opt.nchannels > POS_LINK_MAX_CHANNELS - 1) {
        return -EINVAL;
    }
    pos_backoff_init(&l->backoff, l->opt.reach.retry_delay_ms, l->opt.reach.max_retry_delay_ms);
    l->rng = l->opt.random_seed;
    if (l->rng == 0) {
        /* Distinct per terminal and per start, without getrandom(), which
         * can block early at boot: the client name (has the terminal id),
         * the high-resolution clock and the pid. */
        uint32_t h = 2166136261u;
        for (const char *p = l->opt.reach.client_name; p != NULL && *p != '\0'; p++) {
            h = (h ^ (uint8_t)*p) * 16777619u;
        }
        uint64_t t = uv_hrtime();
        l->rng = h ^ (uint32_t)t ^ (uint32_t)(t >> 32) ^ ((uint32_t)uv_os_getpid() << 16);
    }
    if (l->rng == 0) {
        l->rng = 0x9e3779b9u;
    }

    pos_conn_options_for(&co, &l->opt.reach, "cmd");
    co.max_pending = 4096;
    rc = pos_conn_init(loop, &l->cmd.conn, &co, &conn_cb);
    if (rc != 0) {
        return rc;
    }
    co.name = "sub";
    co.subscriber = true;
    co.max_pending = 64;
    rc = pos_conn_init(loop, &l->sub.conn, &co, &conn_cb);
    if (rc != 0) {
        return rc;
    }
    l->cmd.link = l->sub.link = l;
    l->cmd.conn.data = &l->cmd;
    l->sub.conn.data = &l->sub;

    if (opt->cluster != NULL) {
        if (opt->sentinel != NULL) {
            return -EINVAL;
        }
        rc = link_cluster_init(loop, l, opt->cluster);
        if (rc != 0) {
            return rc;
        }
    }
    if (opt->sentinel != NULL) {
        static const pos_sentinel_callbacks_t sentinel_cb = {
            .on_switch = link_on_switch,
            .on_watch = link_on_watch,
        };
        pos_sentinel_options_t so = *opt->sentinel;
        if (so.random_seed == 0) {
            so.random_seed = pos_jitter_next(&l->rng);
        }
        if (so.reach.transport == NULL) {
            so.reach.transport = l->opt.reach.transport;
            so.reach.transport_arg = l->opt.reach.transport_arg;
        }
        rc = pos_sentinel_init(loop, &l->sentinel, &so, &sentinel_cb);
        if (rc != 0) {
            return rc;
        }
        l->sentinel.data = l;
        l->use_sentinel = true;
        l->opt.sentinel = NULL; /* the copy lives in l->sentinel */
    }

    uv_timer_init(loop, &l->retry_timer);
    uv_timer_init(loop, &l->probe_timer);
    uv_timer_init(loop, &l->stable_timer);
    l->retry_timer.data = l->probe_timer.data = l->stable_timer.data = l;
    l->state = POS_LINK_DOWN;
    return 0;
}

void pos_link_start(pos_link_t *l)
{
    if (l->use_sentinel) {
        pos_sentinel_start(&l->sentinel);
    }
    if (l->state == POS_LINK_DOWN) {
        uv_timer_stop(&l->retry_timer);
        link_retry_timer_cb(&l->retry_timer);
    }
}

static void link_handle_closed(uv_handle_t *h)
{
    pos_link_t *l = h->data;

    if (--l->open_handles == 0) {
        l->state = POS_LINK_STOPPED;
        if (l->stopped_cb != NULL) {
            l->stopped_cb(l);
        }
    }
}

static void link_conn_final(pos_conn_t *c)
{
    pos_link_side_t *s = c->data;
    link_handle_closed((uv_handle_t *)&s->link->retry_timer);
}

static void link_sentinel_closed(pos_sentinel_t *st)
{
    pos_link_t *l = st->data;
    link_handle_closed((uv_handle_t *)&l->retry_timer);
}

static void link_cluster_closed(pos_cluster_t *c)
{
    pos_link_t *l = pos_cluster_data(c);

    l->cluster = NULL; /* freed once this returns */
    link_handle_closed((uv_handle_t *)&l->retry_timer);
}

void pos_link_stop(pos_link_t *l, void (*done)(pos_link_t *l))
{
    if (l->state == POS_LINK_STOPPING || l->state == POS_LINK_STOPPED) {
        return;
    }
    l->state = POS_LINK_STOPPING;
    l->stopped_cb = done;
    l->open_handles = 5; /* three timers, two connections */
    if (l->use_sentinel) {
        l->open_handles++;
        pos_sentinel_close(&l->sentinel, link_sentinel_closed);
    }
    if (l->cluster != NULL) {
        l->open_handles++;
        pos_cluster_close(l->cluster, link_cluster_closed);
    }
    uv_close((uv_handle_t *)&l->retry_timer, link_handle_closed);
    uv_close((uv_handle_t *)&l->probe_timer, link_handle_closed);
    uv_close((uv_handle_t *)&l->stable_timer, link_handle_closed);
    pos_conn_close(&l->cmd.conn, link_conn_final);
    pos_conn_close(&l->sub.conn, link_conn_final);
}

const char *pos_link_server(const pos_link_t *l, uint16_t *port)
{
    *port = link_port(l);
    return link_host(l);
}

void pos_link_stats(const pos_link_t *l, pos_conn_stats_t *st)
{
    const pos_conn_stats_t *a = &l->cmd.conn.stats, *b = &l->sub.conn.stats;

    if (l->cluster != NULL) {
        pos_cluster_stats_t cs;
        pos_cluster_stats(l->cluster, &cs, st);
        return;
    }

    st->refused = a->refused + b->refused;
    st->pauses = a->pauses + b->pauses;
    st->pushes_dropped = a->pushes_dropped + b->pushes_dropped;
}

bool pos_link_is_online(const pos_link_t *l)
{
    return l->state == POS_LINK_ONLINE;
}

int pos_link_command(pos_link_t *l, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                     const size_t *argvlen)
{
    if (l->state != POS_LINK_ONLINE) {
        return -ENOTCONN;
    }
    if (l->cluster != NULL) {
        return pos_cluster_command(l->cluster, cb, ctx, argc, argv, argvlen);
    }
    return pos_conn_command(&l->cmd.conn, cb, ctx, 1, argc, argv, argvlen);
}

int pos_link_command_spare(pos_link_t *l, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                           const size_t *argvlen)
{
    if (l->state != POS_LINK_ONLINE) {
        return -ENOTCONN;
    }
    if (l->cluster != NULL ? !pos_cluster_has_spare(l->cluster)
                           : !pos_conn_has_spare(&l->cmd.conn)) {
        return -ENOBUFS;
    }
    return pos_link_command(l, cb, ctx, argc, argv, argvlen);
}

int pos_link_commandv(pos_link_t *l, pos_reply_cb cb, void *ctx, int argc, const char **argv)
{
    size_t lens[16];

    if (l->state != POS_LINK_ONLINE) {
        return -ENOTCONN;
    }
    if (l->cluster != NULL) {
        if (argc < 1 || argc > 16) {
            return -EINVAL;
        }
        for (int i = 0; i < argc; i++) {
            lens[i] = strlen(argv[i]);
        }
        return pos_cluster_command(l->cluster, cb, ctx, argc, argv, lens);
    }
    return pos_conn_commandv(&l->cmd.conn, cb, ctx, argc, argv);
}
