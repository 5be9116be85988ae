#include "agent/link/sentinel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "platform/jitter.h"
#include "platform/log.h"
#include "platform/mem.h"

#define SENTINEL_SWITCH_CHANNEL "+switch-master"
/* A watch up this long was a good one: the next loss starts the backoff
 * afresh (as the link's own stable_after_ms). */
#define SENTINEL_WATCH_STABLE_MS 10000u

static void query_open(pos_conn_t *c);
static void query_closed(pos_conn_t *c, int err);
static void watch_open(pos_conn_t *c);
static void watch_push(pos_conn_t *c, const redisReply *r);
static void watch_closed(pos_conn_t *c, int err);

/* ---- pure parsers ------------------------------------------------------ */

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '%';
}

static int copy_host(const char *s, size_t len, char *host, size_t hostlen)
{
    if (len == 0 || len >= hostlen) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!host_char_ok(s[i])) {
            return -EINVAL;
        }
    }
    memcpy(host, s, len);
    host[len] = '\0';
    return 0;
}

static int parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned long v = 0;

    if (len == 0 || len > 5) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -EINVAL;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535) {
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

int pos_sentinel_parse_switch(const char *msg, size_t len, const char *name, char *host,
                              size_t hostlen, uint16_t *port)
{
    const char *field[5];
    size_t flen[5];
    size_t nf = 0, start = 0;
    uint16_t p;
    int rc;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && msg[i] != ' ') {
            continue;
        }
        if (nf == 5 || i == start) {
            return -EINVAL; /* too many fields, or an empty one */
        }
        field[nf] = msg + start;
        flen[nf] = i - start;
        nf++;
        start = i + 1;
    }
    if (nf != 5) {
        return -EINVAL;
    }
    /* The old address is checked too: a message that is wrong anywhere is
     * not trusted anywhere. */
    {
        char old[POS_URL_HOST_MAX];
        if (copy_host(field[1], flen[1], old, sizeof(old)) != 0 ||
            parse_port(field[2], flen[2], &p) != 0) {
            return -EINVAL;
        }
    }
    rc = copy_host(field[3], flen[3], host, hostlen);
    if (rc != 0) {
        return rc;
    }
    if (parse_port(field[4], flen[4], &p) != 0) {
        host[0] = '\0';
        return -EINVAL;
    }
    if (flen[0] != strlen(name) || memcmp(field[0], name, flen[0]) != 0) {
        host[0] = '\0';
        return -ENOENT;
    }
    *port = p;
    return 0;
}

int pos_sentinel_parse_master_reply(const redisReply *r, char *host, size_t hostlen, uint16_t *port)
{
    if (r->type == REDIS_REPLY_NIL) {
        return -ENOENT;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        return -EPROTO;
    }
    if (copy_host(r->element[0]->str, r->element[0]->len, host, hostlen) != 0) {
        return -EPROTO;
    }
    if (parse_port(r->element[1]->str, r->element[1]->len, port) != 0) {
        host[0] = '\0';
        return -EPROTO;
    }
    return 0;
}

bool pos_sentinel_role_is_master(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           (r->element[0]->type == REDIS_REPLY_STRING ||
            r->element[0]->type == REDIS_REPLY_STATUS) &&
           r->element[0]->len == 6 && memcmp(r->element[0]->str, "master", 6) == 0;
}

/* ---- client ------------------------------------------------------------ */

static const char *addr_text(const pos_sentinel_addr_t *a, char *buf, size_t len)
{
    snprintf(buf, len, strchr(a->host, ':') != NULL ? "[%s]:%u" : "%s:%u", a->host,
             (unsigned)a->port);
    return buf;
}

int pos_sentinel_init(uv_loop_t *loop, pos_sentinel_t *s, const pos_sentinel_options_t *opt,
                      const pos_sentinel_callbacks_t *cb)
{
    static const pos_conn_callbacks_t query_cb = {
        .on_open = query_open,
        .on_closed = query_closed,
    };
    static const pos_conn_callbacks_t watch_cb = {
        .on_open = watch_open,
        .on_push = watch_push,
        .on_closed = watch_closed,
    };
    pos_conn_options_t co;
    int rc;

    pos_mem_zero(s, sizeof(*s));
    if (opt->naddrs == 0 || opt->naddrs > POS_SENTINEL_MAX || opt->master_name == NULL ||
        opt->master_name[0] == '\0') {
        return -EINVAL;
    }
    s->loop = loop;
    s->opt = *opt;
    s->cb = *cb;
    memcpy(s->addrs, opt->addrs, opt->naddrs * sizeof(s->addrs[0]));
    s->naddrs = opt->naddrs;
    s->opt.addrs = s->addrs;
    s->rng = opt->random_seed != 0 ? opt->random_seed : 0x2545f491u;
    pos_backoff_init(&s->watch_backoff, opt->reach.retry_delay_ms, opt->reach.max_retry_delay_ms);

    pos_conn_options_for(&co, &opt->reach, "sentinel");
    co.max_pending = 8;
    rc = pos_conn_init(loop, &s->query, &co, &query_cb);
    if (rc != 0) {
        return rc;
    }
    co.name = "sentinel-watch";
    co.subscriber = true;
    rc = pos_conn_init(loop, &s->watch, &co, &watch_cb);
    if (rc != 0) {
        return rc; /* NOTE: the query connection's timer stays initialised */
    }
    s->query.data = s->watch.data = s;
    rc = uv_timer_init(loop, &s->watch_timer);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    s->watch_timer.data = s;
    return 0;
}

/* AUTH (when the sentinels have a password) and CLIENT SETNAME, pipelined
 * before the real command; a refusal takes the connection down. */
static void auth_cb(void *ctx, const redisReply *r, int err)
{
    pos_conn_t *c = ctx;

    if (err != 0) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        POS_ERR("sentinel", "%s: AUTH refused: %.*s (check [redis] sentinel_password)", c->opt.name,
                pos_conn_log_len(r), r->str);
        pos_conn_abort(c, -EACCES);
    }
}

static void ignore_cb(void *ctx, const redisReply *r, int err)
{
    (void)ctx;
    (void)r;
    (void)err;
}

static int send_preamble(pos_sentinel_t *s, pos_conn_t *c)
{
    int rc;

    if (s->opt.password != NULL && s->opt.password[0] != '\0') {
        const char *argv[] = {"AUTH", s->opt.password};
        rc = pos_conn_commandv(c, auth_cb, c, 2, argv);
        if (rc != 0) {
            return rc;
        }
    }
    if (s->opt.reach.client_name != NULL) {
        /* Best effort: it only helps whoever reads CLIENT LIST. */
        const char *argv[] = {"CLIENT", "SETNAME", s->opt.reach.client_name};
        rc = pos_conn_commandv(c, ignore_cb, NULL, 3, argv);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* A connection opened: the preamble, then the command it is for; a
 * failure to send takes the connection down. */
static void send_opening(pos_sentinel_t *s, pos_conn_t *c, pos_reply_cb cb, int argc,
                         const char **argv)
{
    int rc = send_preamble(s, c);
    if (rc == 0) {
        rc = pos_conn_commandv(c, cb, s, argc, argv);
    }
    if (rc != 0) {
        pos_conn_abort(c, rc);
    }
}

/* -- resolution -- */

static void resolve_finish(pos_sentinel_t *s, int err)
{
    pos_sentinel_resolve_cb cb = s->resolve_cb;

    s->resolve_cb = NULL;
    if (err == 0) {
        cb(s, 0, s->master.host, s->master.port);
    } else {
        cb(s, err, NULL, 0);
    }
}

/* Asks the next sentinel of this round, or ends the round. */
static void resolve_next(pos_sentinel_t *s)
{
    int rc;

    while (s->tried < s->naddrs) {
        s->asking = s->tried++;
        rc = pos_conn_connect(&s->query, s->addrs[s->asking].host, s->addrs[s->asking].port);
        if (rc == 0) {
            return; /* query_open or query_closed follows (maybe already ran) */
        }
        if (s->resolve_err == 0) {
            s->resolve_err = rc;
        }
    }
    /* Once per round; a long outage is logged early, then one in twenty. */
    s->failed_rounds++;
    pos_log(s->failed_rounds <= 3 || s->failed_rounds % 20 == 0 ? POS_LOG_WARN : POS_LOG_DEBUG,
            "sentinel", "no sentinel gave the address of master '%s' (%zu asked): %s",
            s->opt.master_name, s->naddrs, strerror(-s->resolve_err));
    resolve_finish(s, s->resolve_err != 0 ? s->resolve_err : -EHOSTUNREACH);
}

static void master_reply_cb(void *ctx, const redisReply *r, int err)
{
    pos_sentinel_t *s = ctx;
    char where[POS_URL_HOST_MAX + 16];
    int rc;

    if (err != 0) {
        return; /* query_closed handles it */
    }
    rc =
        pos_sentinel_parse_master_reply(r, s->master.host, sizeof(s->master.host), &s->master.port);
    addr_text(&s->addrs[s->asking], where, sizeof(where));
    if (rc == 0) {
        s->found = true;
        pos_conn_abort(&s->query, -ECANCELED); /* done with this sentinel */
        return;
    }
    if (rc == -ENOENT) {
        POS_WARN("sentinel", "%s does not know master '%s'", where, s->opt.master_name);
    } else if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("sentinel", "%s: SENTINEL get-master-addr-by-name refused: %.*s", where,
                 pos_conn_log_len(r), r->str);
    } else {
        POS_WARN("sentinel", "%s: malformed reply to SENTINEL get-master-addr-by-name", where);
    }
    pos_conn_abort(&s->query, rc);
}

void pos_sentinel_distrust_first(pos_sentinel_t *s)
{
    if (s->naddrs < 2) {
        return;
    }
    pos_sentinel_addr_t first = s->addrs[0];
    memmove(&s->addrs[0], &s->addrs[1], (s->naddrs - 1) * sizeof(s->addrs[0]));
    s->addrs[s->naddrs - 1] = first;
    s->watch_index = s->watch_index == 0 ? s->naddrs - 1 : s->watch_index - 1;
}

static void query_open(pos_conn_t *c)
{
    pos_sentinel_t *s = c->data;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->opt.master_name};

    send_opening(s, c, master_reply_cb, 3, argv);
}

static void query_closed(pos_conn_t *c, int err)
{
    pos_sentinel_t *s = c->data;
    char where[POS_URL_HOST_MAX + 16];

    if (s->closing || s->resolve_cb == NULL) {
        return;
    }
    if (s->found) {
        /* Rotate the sentinel that answered to the front: it is asked
         * first next time (the Sentinel client guidelines). */
        if (s->asking > 0) {
            pos_sentinel_addr_t first = s->addrs[s->asking];
            memmove(&s->addrs[1], &s->addrs[0], s->asking * sizeof(s->addrs[0]));
            s->addrs[0] = first;
            if (s->watch_index < s->asking) {
                s->watch_index++;
            } else if (s->watch_index == s->asking) {
                s->watch_index = 0;
            }
        }
        POS_DEBUG("sentinel", "%s says master '%s' is %s:%u",
                  addr_text(&s->addrs[0], where, sizeof(where)), s->opt.master_name, s->master.host,
                  (unsigned)s->master.port);
        s->failed_rounds = 0;
        resolve_finish(s, 0);
        return;
    }
    POS_DEBUG("sentinel", "%s: %s", addr_text(&s->addrs[s->asking], where, sizeof(where)),
              strerror(-err));
    /* The first failure says why, except that a refused password wins:
     * it is the one the operator must fix. */
    if (s->resolve_err == 0 || s->resolve_err == -ECANCELED || err == -EACCES) {
        s->resolve_err = err;
    }
    resolve_next(s);
}

int pos_sentinel_resolve(pos_sentinel_t *s, pos_sentinel_resolve_cb cb)
{
    if (s->closing) {
        return -ECANCELED;
    }
    if (s->resolve_cb != NULL || s->query.state != POS_CONN_IDLE) {
        return -EBUSY;
    }
    s->resolve_cb = cb;
    s->tried = 0;
    s->resolve_err = 0;
    s->found = false;
    resolve_next(s);
    return 0;
}

/* -- watch -- */

static void watch_connect(pos_sentinel_t *s)
{
    const pos_sentinel_addr_t *a;

    if (s->closing || s->watch.state != POS_CONN_IDLE) {
        return;
    }
    a = &s->addrs[s->watch_index % s->naddrs];
    pos_conn_connect(&s->watch, a->host, a->port);
}

static void watch_timer_cb(uv_timer_t *t)
{
    watch_connect(t->data);
}

static void watch_subscribed_cb(void *ctx, const redisReply *r, int err)
{
    pos_sentinel_t *s = ctx;
    char where[POS_URL_HOST_MAX + 16];
    bool again;

    if (err != 0) {
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len != 9 ||
        memcmp(r->element[0]->str, "subscribe", 9) != 0) {
        POS_WARN("sentinel", "unexpected reply to SUBSCRIBE " SENTINEL_SWITCH_CHANNEL);
        pos_conn_abort(&s->watch, -EPROTO);
        return;
    }
    /* The backoff is reset only once the watch has stayed up a while
     * (watch_closed): a sentinel that confirms and then closes would have
     * it reconnect every few milliseconds, a ROLE to the master each time. */
    s->watch_since_ms = uv_now(s->loop);
    again = s->watched_before;
    s->watched_before = true;
    POS_INFO("sentinel", "watching %s for failovers of master '%s'",
             addr_text(&s->addrs[s->watch_index % s->naddrs], where, sizeof(where)),
             s->opt.master_name);
    if (s->cb.on_watch != NULL) {
        s->cb.on_watch(s, again);
    }
}

static void watch_open(pos_conn_t *c)
{
    pos_sentinel_t *s = c->data;
    const char *argv[] = {"SUBSCRIBE", SENTINEL_SWITCH_CHANNEL};

    send_opening(s, c, watch_subscribed_cb, 2, argv);
}

static void watch_push(pos_conn_t *c, const redisReply *r)
{
    pos_sentinel_t *s = c->data;
    const redisReply *ch, *payload;
    char host[POS_URL_HOST_MAX];
    uint16_t port = 0;
    int rc;

    if (r->elements != 3) {
        return; /* not the ["message", channel, payload] Sentinel sends */
    }
    ch = r->element[1];
    payload = r->element[2];
    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING ||
        ch->len != strlen(SENTINEL_SWITCH_CHANNEL) ||
        memcmp(ch->str, SENTINEL_SWITCH_CHANNEL, ch->len) != 0) {
        return;
    }
    rc = pos_sentinel_parse_switch(payload->str, payload->len, s->opt.master_name, host,
                                   sizeof(host), &port);
    if (rc == -ENOENT) {
        return; /* another master monitored by the same sentinels */
    }
    if (rc != 0) {
        POS_WARN("sentinel", "malformed " SENTINEL_SWITCH_CHANNEL " message dropped");
        return;
    }
    POS_INFO("sentinel", "failover: master '%s' is now %s:%u", s->opt.master_name, host,
             (unsigned)port);
    if (s->cb.on_switch != NULL) {
        s->cb.on_switch(s, host, port);
    }
}

static void watch_closed(pos_conn_t *c, int err)
{
    pos_sentinel_t *s = c->data;
    uint32_t delay;

    if (s->closing) {
        return;
    }
    /* The next sentinel, after a backoff delay: a dead sentinel must not be
     * hammered, and a failover is still caught by the link's own checks. */
    s->watch_index = (s->watch_index + 1) % s->naddrs;
    if (s->watch_since_ms != 0 && uv_now(s->loop) - s->watch_since_ms >= SENTINEL_WATCH_STABLE_MS) {
        pos_backoff_reset(&s->watch_backoff);
    }
    s->watch_since_ms = 0;
    delay = pos_backoff_next(&s->watch_backoff, pos_jitter_next(&s->rng));
    POS_INFO("sentinel", "watch connection lost (%s); next sentinel in %u ms", strerror(-err),
             delay);
    uv_timer_start(&s->watch_timer, watch_timer_cb, delay, 0);
}

void pos_sentinel_start(pos_sentinel_t *s)
{
    if (!s->started) {
        s->started = true;
        watch_connect(s);
    }
}

static void sentinel_part_closed(pos_sentinel_t *s)
{
    if (--s->open_handles == 0 && s->closed_cb != NULL) {
        s->closed_cb(s);
    }
}

static void conn_final(pos_conn_t *c)
{
    sentinel_part_closed(c->data);
}

static void timer_closed(uv_handle_t *h)
{
    sentinel_part_closed(h->data);
}

void pos_sentinel_close(pos_sentinel_t *s, void (*done)(pos_sentinel_t *s))
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    s->closed_cb = done;
    s->resolve_cb = NULL;
    s->open_handles = 3;
    uv_close((uv_handle_t *)&s->watch_timer, timer_closed);
    pos_conn_close(&s->query, conn_final);
    pos_conn_close(&s->watch, conn_final);
}
