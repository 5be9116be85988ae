#include "agent/link/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/link/errors.h"
#include "agent/link/route.h"
#include "agent/link/slot.h"
#include "platform/clock.h"
#include "platform/log.h"

#define CL_INVALIDATE  "__redis__:invalidate"
#define CL_NODES_MAX   (2 * POS_TOPOLOGY_NODES_MAX) /* node records, primaries or not */
#define CL_PREFIX_MAX  96
#define CL_RESUB_TRIES 5 /* SSUBSCRIBE redirected this often: give up until the next probe */
#define CL_UNSUB_TICKS 3 /* probes a sharded channel may stay unsubscribed */
#define CL_ASKING      "*1\r\n$6\r\nASKING\r\n"
#define CL_GATE_ARGS   16 /* arguments of the gate's command */

typedef struct cl_node cl_node_t;
typedef struct cl_cmd cl_cmd_t;

/* One connection of a node: its command connection, or its subscriber
 * (which also anchors CLIENT TRACKING for the node). */
typedef struct cl_side {
    pos_conn_t conn;
    cl_node_t *node;
    bool sub;
    bool ready;     /* handshake complete */
    bool quiet;     /* closed on purpose: not a failure */
    uint32_t steps; /* handshake replies still expected */
} cl_side_t;

struct cl_node {
    pos_cluster_t *cl;
    cl_node_t *next;
    char host[POS_URL_HOST_MAX];
    uint16_t port;
    char name[2][POS_URL_HOST_MAX + 16]; /* "cmd host:port", "sub host:port", for logs */
    cl_side_t cmd, sub;
    bool primary;  /* in the current map */
    bool want_sub; /* tracking, the home node's channels, or sharded channels here */
    bool dying;    /* being freed */
    unsigned finals;
    long long sub_id;
    cl_cmd_t *wait_head, *wait_tail; /* commands waiting for the node to be ready */
    size_t nwait;                    /* how many */
    uint64_t used_ms;                /* loop time a command was last sent here */
};

/* A routed command, kept until its reply so that it can be resent. */
struct cl_cmd {
    pos_cluster_t *cl;
    cl_cmd_t *next;
    pos_reply_cb cb;
    void *ctx;
    cl_node_t *at; /* where it was last sent */
    char *buf;     /* RESP form */
    size_t len;
    int slot;      /* -1: no key */
    int scan_node; /* SCAN: index of the primary in the map, else -1 */
    bool asking;   /* send ASKING before it */
    uint8_t redirects;
    uint8_t tries;
};

/* A subscribed channel's bookkeeping. */
typedef struct cl_chan {
    pos_cluster_t *cl;
    size_t index;
    bool sharded;
    cl_node_t *at; /* where it is subscribed (or being subscribed); NULL: nowhere */
    unsigned tries;
    unsigned unsub_ticks;
} cl_chan_t;

typedef enum cl_phase {
    CL_IDLE = 0,    /* between attempts */
    CL_BOOT,        /* asking a seed for the map */
    CL_GATE,        /* the map is known; the gate is being checked */
    CL_SUBSCRIBING, /* the map is known; subscribers are coming up */
    CL_READY,
    CL_FAILING, /* everything is closing after a failure */
    CL_CLOSED,
} cl_phase_t;

struct pos_cluster {
    void *data;
    uv_loop_t *loop;
    pos_cluster_options_t opt;
    pos_cluster_callbacks_t cb;
    pos_sentinel_addr_t seeds[POS_CLUSTER_SEEDS_MAX];
    cl_chan_t chan[POS_CLUSTER_CHANNELS_MAX];
    char track[POS_CLUSTER_PREFIXES_MAX][CL_PREFIX_MAX];
    size_t ntrack;
    cl_phase_t phase;

    pos_topology_t maps[2];
    pos_topology_t *map; /* the current one; the other is scratch for a refresh */
    cl_node_t *idx_node[POS_TOPOLOGY_NODES_MAX]; /* the map's nodes' records, filled lazily */
    cl_node_t *nodes;
    size_t nnodes;
    unsigned dying; /* node records still closing */
    cl_node_t *home;
    cl_node_t *boot;
    cl_node_t *gate;   /* where the gate's command went (CL_GATE) */
    size_t seed_first; /* the seed asked first (the last one that answered) */
    size_t tried;      /* addresses asked in this attempt */
    int fail_err;
    bool fatal;
    bool in_fail; /* pos_cluster_fail is taking connections down */

    bool refreshing;
    bool refresh_again;
    unsigned ticks;
    uv_timer_t retry_timer; /* -TRYAGAIN resends */
    bool timer_open;
    cl_cmd_t *retry_head, *retry_tail;
    bool tracking_warned;
    uint64_t ping_sent_us; /* monotonic us home's last PING left; 0: none pending */
    pos_cluster_stats_t stats;
    void (*closed_cb)(pos_cluster_t *c);
};

static void cl_side_open(pos_conn_t *c);
static void cl_side_push(pos_conn_t *c, const redisReply *r);
static void cl_side_closed(pos_conn_t *c, int err);
static void cl_check_ready(pos_cluster_t *cl);
static void cl_sync_shards(pos_cluster_t *cl);
static void cl_refresh(pos_cluster_t *cl);
static void cl_maybe_down(pos_cluster_t *cl);
static void cl_boot_next(pos_cluster_t *cl);
static void cl_gate_begin(pos_cluster_t *cl);

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool cl_is_sharded(const pos_cluster_t *cl, const char *ch, size_t len)
{
    for (size_t i = 0; cl->opt.sharded && i < cl->opt.nsharded_prefixes; i++) {
        if (has_prefix(ch, len, cl->opt.sharded_prefixes[i])) {
            return true;
        }
    }
    return false;
}

static uint16_t cl_chan_slot(const pos_cluster_t *cl, size_t i)
{
    const char *ch = cl->opt.channels[i];
    return pos_slot_of(ch, strlen(ch));
}

/* ---- commands ------------------------------------------------------------ */

static void cmd_free(cl_cmd_t *m)
{
    if (m->buf != NULL) {
        /* A session's value may pass through here. */
        explicit_bzero(m->buf, m->len);
        redisFreeCommand(m->buf);
    }
    free(m);
}

static cl_cmd_t *cmd_new(pos_cluster_t *cl, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                         const size_t *lens)
{
    cl_cmd_t *m = calloc(1, sizeof(*m));
    int n;

    if (m == NULL) {
        return NULL;
    }
    n = redisFormatCommandArgv(&m->buf, argc, argv, lens);
    if (n < 0 || m->buf == NULL) {
        free(m);
        return NULL;
    }
    m->len = (size_t)n;
    m->cl = cl;
    m->cb = cb;
    m->ctx = ctx;
    m->slot = -1;
    m->scan_node = -1;
    return m;
}

/* Answers a SCAN routed to primary k: the node's cursor becomes "k:c",
 * and the end of one node's keys "k+1:0", the end of the last one "0". */
static void cmd_scan_answer(cl_cmd_t *m, const redisReply *r)
{
    const pos_cluster_t *cl = m->cl;
    char cursor[48];
    redisReply cur, top, *els[2];

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len > 24) {
        m->cb(m->ctx, r, 0);
        return;
    }
    if (r->element[0]->len == 1 && r->element[0]->str[0] == '0') {
        if ((size_t)m->scan_node + 1 < cl->map->nnodes) {
            snprintf(cursor, sizeof(cursor), "%d:0", m->scan_node + 1);
        } else {
            snprintf(cursor, sizeof(cursor), "0");
        }
    } else {
        snprintf(cursor, sizeof(cursor), "%d:%.*s", m->scan_node, (int)r->element[0]->len,
                 r->element[0]->str);
    }
    memset(&cur, 0, sizeof(cur));
    memset(&top, 0, sizeof(top));
    cur.type = REDIS_REPLY_STRING;
    cur.str = cursor;
    cur.len = strlen(cursor);
    els[0] = &cur;
    els[1] = r->element[1];
    top.type = REDIS_REPLY_ARRAY;
    top.elements = 2;
    top.element = els;
    m->cb(m->ctx, &top, 0);
}

/* The command is over: its callback gets the reply or the error. */
static void cmd_finish(cl_cmd_t *m, const redisReply *r, int err)
{
    if (m->cb != NULL) {
        if (err == 0 && m->scan_node >= 0) {
            cmd_scan_answer(m, r);
        } else {
            m->cb(m->ctx, r, err);
        }
    }
    cmd_free(m);
}

static void list_push(cl_cmd_t **head, cl_cmd_t **tail, cl_cmd_t *m)
{
    m->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = m;
    } else {
        *head = m;
    }
    *tail = m;
}

/* Fails every command of a list with err. */
static void list_fail(cl_cmd_t **head, cl_cmd_t **tail, int err)
{
    cl_cmd_t *m = *head;

    *head = *tail = NULL;
    while (m != NULL) {
        cl_cmd_t *next = m->next;
        cmd_finish(m, NULL, err);
        m = next;
    }
}

/* ---- nodes --------------------------------------------------------------- */

static bool node_usable(const cl_node_t *n)
{
    return !n->dying && n->cmd.ready && (!n->want_sub || n->sub.ready);
}

static void side_connect(cl_side_t *s)
{
    if (s->node->dying || s->conn.state != POS_CONN_IDLE) {
        return;
    }
    s->ready = false;
    s->quiet = false;
    s->steps = 0;
    pos_conn_connect(&s->conn, s->node->host, s->node->port);
}

/* Closes a connection on purpose (idle, or no longer needed). */
static void side_close_quiet(cl_side_t *s)
{
    if (s->conn.state != POS_CONN_IDLE) {
        s->quiet = true;
        s->ready = false;
        pos_conn_abort(&s->conn, -ECANCELED);
    }
}

static void node_final(pos_conn_t *c)
{
    cl_side_t *s = c->data;
    cl_node_t *n = s->node;
    pos_cluster_t *cl = n->cl;

    if (--n->finals > 0) {
        return;
    }
    free(n);
    cl->dying--;
    if (cl->phase == CL_CLOSED && cl->dying == 0 && !cl->timer_open && cl->closed_cb != NULL) {
        void (*done)(pos_cluster_t * c) = cl->closed_cb;
        cl->closed_cb = NULL;
        done(cl);
        free(cl);
    }
}

/* Unlinks n and closes both its connections; the memory goes once both
 * have closed. Its waiting commands fail with err. */
static void node_free(pos_cluster_t *cl, cl_node_t *n, int err)
{
    for (cl_node_t **pp = &cl->nodes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            break;
        }
    }
    cl->nnodes--;
    for (size_t i = 0; i < POS_TOPOLOGY_NODES_MAX; i++) {
        if (cl->idx_node[i] == n) {
            cl->idx_node[i] = NULL;
        }
    }
    for (size_t i = 0; i < cl->opt.nchannels; i++) {
        if (cl->chan[i].at == n) {
            cl->chan[i].at = NULL;
        }
    }
    if (cl->home == n) {
        cl->home = NULL;
    }
    if (cl->boot == n) {
        cl->boot = NULL;
    }
    if (cl->gate == n) {
        cl->gate = NULL;
    }
    n->dying = true;
    n->finals = 2;
    cl->dying++;
    n->nwait = 0; /* the list is detached before its callbacks run */
    list_fail(&n->wait_head, &n->wait_tail, err);
    n->cmd.quiet = n->sub.quiet = true;
    pos_conn_close(&n->cmd.conn, node_final);
    pos_conn_close(&n->sub.conn, node_final);
}

static int node_side_init(pos_cluster_t *cl, cl_node_t *n, cl_side_t *s, bool sub)
{
    static const pos_conn_callbacks_t conn_cb = {
        .on_open = cl_side_open,
        .on_push = cl_side_push,
        .on_closed = cl_side_closed,
    };
    pos_conn_options_t co;
    int rc;

    snprintf(n->name[sub], sizeof(n->name[sub]), "%s %s:%u", sub ? "sub" : "cmd", n->host,
             (unsigned)n->port);
    pos_conn_options_for(&co, &cl->opt.reach, n->name[sub]);
    co.subscriber = sub;
    co.max_pending = sub ? 64 : 4096;
    rc = pos_conn_init(cl->loop, &s->conn, &co, &conn_cb);
    s->conn.data = s;
    s->node = n;
    s->sub = sub;
    return rc;
}

/* The record of host:port, created when asked and new; NULL when there
 * is none (or no memory, or too many). */
static cl_node_t *node_get(pos_cluster_t *cl, const char *host, uint16_t port, bool create)
{
    cl_node_t *n;

    for (n = cl->nodes; n != NULL; n = n->next) {
        if (n->port == port && strcmp(n->host, host) == 0) {
            return n;
        }
    }
    if (!create || cl->nnodes >= CL_NODES_MAX || (n = calloc(1, sizeof(*n))) == NULL) {
        return NULL;
    }
    n->cl = cl;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    if (node_side_init(cl, n, &n->cmd, false) != 0) {
        free(n);
        return NULL;
    }
    if (node_side_init(cl, n, &n->sub, true) != 0) {
        /* The first connection's handles are open: close it like a node. */
        n->next = cl->nodes;
        cl->nodes = n;
        cl->nnodes++;
        node_free(cl, n, -ENOMEM);
        return NULL;
    }
    n->used_ms = uv_now(cl->loop);
    n->next = cl->nodes;
    cl->nodes = n;
    cl->nnodes++;
    return n;
}

/* A subscriber on n from now on (connected now if the attempt is past
 * the map). */
static void node_want_sub(pos_cluster_t *cl, cl_node_t *n)
{
    n->want_sub = true;
    if (cl->phase == CL_SUBSCRIBING || cl->phase == CL_READY) {
        side_connect(&n->sub);
    }
}

/* The record of the map's node i. */
static cl_node_t *node_of_index(pos_cluster_t *cl, int i)
{
    if (i < 0 || (size_t)i >= cl->map->nnodes) {
        return NULL;
    }
    if (cl->idx_node[i] == NULL) {
        const pos_topology_addr_t *a = &cl->map->nodes[i];
        cl->idx_node[i] = node_get(cl, a->host, a->port, true);
        if (cl->idx_node[i] != NULL && !cl->idx_node[i]->primary) {
            /* Learnt from a -MOVED: a primary we have not heard of. */
            cl->idx_node[i]->primary = true;
            if (cl->ntrack > 0) {
                node_want_sub(cl, cl->idx_node[i]);
            }
        }
    }
    return cl->idx_node[i];
}

/* Sends what waited for n, in order, while n stays usable. */
static void node_flush(cl_node_t *n);

/* Where m goes: its slot's owner, the SCAN's node, or home. */
static cl_node_t *cl_route(pos_cluster_t *cl, const cl_cmd_t *m)
{
    if (m->scan_node >= 0) {
        return node_of_index(cl, m->scan_node);
    }
    if (m->slot < 0) {
        return cl->home;
    }
    return node_of_index(cl, (int)cl->map->owner[m->slot] - 1);
}

static void cl_cmd_reply(void *ctx, const redisReply *r, int err);

/* Sends m on usable n now. Returns 0 or a negative errno (m is still
 * the caller's). */
static int cl_send(cl_cmd_t *m, cl_node_t *n)
{
    int rc;

    if (m->asking) {
        rc = pos_conn_send(&n->cmd.conn, NULL, NULL, 1, CL_ASKING, strlen(CL_ASKING));
        if (rc != 0) {
            return rc;
        }
    }
    m->at = n;
    return pos_conn_send(&n->cmd.conn, cl_cmd_reply, m, 1, m->buf, m->len);
}

/* Sends m on n, or queues it (behind what already waits) until n is
 * usable. Returns 0 (m is the cluster's now) or a negative errno (m is
 * still the caller's). */
static int cl_dispatch(pos_cluster_t *cl, cl_cmd_t *m, cl_node_t *n)
{
    if (n == NULL || n->dying) {
        return -ENOTCONN;
    }
    n->used_ms = uv_now(cl->loop);
    if (!node_usable(n) || n->wait_head != NULL) {
        list_push(&n->wait_head, &n->wait_tail, m);
        n->nwait++;
        side_connect(&n->cmd);
        if (n->want_sub) {
            side_connect(&n->sub);
        }
        return 0;
    }
    return cl_send(m, n);
}

static void node_flush(cl_node_t *n)
{
    while (n->wait_head != NULL && node_usable(n)) {
        cl_cmd_t *m = n->wait_head;
        n->wait_head = m->next;
        n->nwait--;
        if (n->wait_head == NULL) {
            n->wait_tail = NULL;
        }
        int rc = cl_send(m, n);
        if (rc != 0) {
            cmd_finish(m, NULL, rc);
        }
    }
}

/* ---- redirections -------------------------------------------------------- */

static void cl_retry_timer_cb(uv_timer_t *t)
{
    pos_cluster_t *cl = t->data;
    cl_cmd_t *m = cl->retry_head;

    cl->retry_head = cl->retry_tail = NULL;
    while (m != NULL) {
        cl_cmd_t *next = m->next;
        int rc = cl->phase == CL_READY ? cl_dispatch(cl, m, cl_route(cl, m)) : -ENOTCONN;
        if (rc != 0) {
            cmd_finish(m, NULL, rc);
        }
        m = next;
    }
}

/* -MOVED / -ASK: to the node named; a -MOVED also updates the map. */
static void cl_redirect(cl_cmd_t *m, const pos_topology_redirect_t *rd, const redisReply *r)
{
    pos_cluster_t *cl = m->cl;
    const char *host = rd->host[0] != '\0' ? rd->host : m->at->host;
    cl_node_t *n;
    int rc;

    m->redirects++;
    m->asking = rd->ask;
    if (rd->ask) {
        cl->stats.asked++;
        n = node_get(cl, host, rd->port, true);
        if (n != NULL && cl->ntrack > 0 && !n->want_sub) {
            node_want_sub(cl, n); /* reads there are tracked there */
        }
    } else {
        cl->stats.moved++;
        POS_DEBUG("link", "slot %u moved to %s:%u", (unsigned)rd->slot, host, (unsigned)rd->port);
        rc = pos_topology_set(cl->map, rd->slot, host, rd->port);
        n = rc >= 0 ? node_of_index(cl, rc) : NULL;
        cl_refresh(cl);
    }
    rc = cl_dispatch(cl, m, n);
    if (rc != 0) {
        cmd_finish(m, r, 0); /* the redirection is the answer */
    }
}

static void cl_cmd_reply(void *ctx, const redisReply *r, int err)
{
    cl_cmd_t *m = ctx;
    pos_cluster_t *cl = m->cl;
    pos_topology_redirect_t rd;

    if (err == 0 && r->type == REDIS_REPLY_ERROR) {
        if (pos_topology_parse_redirect(r->str, r->len, &rd) == 0 &&
            m->redirects < POS_CLUSTER_REDIRECTS && cl->phase == CL_READY) {
            cl_redirect(m, &rd, r);
            return;
        }
        if (has_prefix(r->str, r->len, "TRYAGAIN") && m->tries < POS_CLUSTER_TRYAGAIN_MAX &&
            cl->phase == CL_READY) {
            /* A multi-key command while its slot migrates: again soon. */
            cl->stats.tryagain++;
            m->tries++;
            m->asking = false;
            list_push(&cl->retry_head, &cl->retry_tail, m);
            if (!uv_is_active((uv_handle_t *)&cl->retry_timer)) {
                uv_timer_start(&cl->retry_timer, cl_retry_timer_cb, POS_CLUSTER_TRYAGAIN_MS, 0);
            }
            return;
        }
        if (has_prefix(r->str, r->len, "CLUSTERDOWN")) {
            /* Slots without a primary: a failover is under way. */
            POS_WARN("link", "%s: %.*s", m->at != NULL ? m->at->name[0] : "cluster",
                     pos_conn_log_len(r), r->str);
            cmd_finish(m, NULL, -EAGAIN);
            pos_cluster_fail(cl, -EAGAIN);
            return;
        }
    }
    cmd_finish(m, r, err);
}

/* ---- MGET split by slot --------------------------------------------------- */

typedef struct cl_mget {
    pos_reply_cb cb;
    void *ctx;
    size_t n;       /* keys */
    size_t pending; /* parts not yet answered */
    int err;
    redisReply *error; /* the first error reply, copied */
    redisReply **vals; /* the values, by the key's position */
} cl_mget_t;

typedef struct cl_part {
    cl_mget_t *g;
    size_t n;
    size_t idx[]; /* positions of the part's keys in the whole MGET */
} cl_part_t;

typedef struct cl_key {
    uint16_t slot;
    size_t idx;
} cl_key_t;

static void reply_free(redisReply *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; r->element != NULL && i < r->elements; i++) {
        reply_free(r->element[i]);
    }
    free(r->element);
    free(r->str);
    free(r);
}

/* A deep copy of r (strings, integers, nil, nested arrays), or NULL. */
static redisReply *reply_copy(const redisReply *r)
{
    redisReply *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->type = r->type;
    c->integer = r->integer;
    if (r->str != NULL) {
        c->str = malloc(r->len + 1);
        if (c->str == NULL) {
            free(c);
            return NULL;
        }
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        c->element = calloc(r->elements, sizeof(*c->element));
        if (c->element == NULL) {
            reply_free(c);
            return NULL;
        }
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++) {
            if ((c->element[i] = reply_copy(r->element[i])) == NULL) {
                reply_free(c);
                return NULL;
            }
        }
    }
    return c;
}

static void mget_done(cl_mget_t *g)
{
    if (g->err != 0) {
        g->cb(g->ctx, NULL, g->err);
    } else if (g->error != NULL) {
        g->cb(g->ctx, g->error, 0);
    } else {
        redisReply top, nil;
        memset(&top, 0, sizeof(top));
        memset(&nil, 0, sizeof(nil));
        nil.type = REDIS_REPLY_NIL;
        for (size_t i = 0; i < g->n; i++) {
            if (g->vals[i] == NULL) {
                g->vals[i] = &nil; /* only if a part's answer was short: never */
            }
        }
        top.type = REDIS_REPLY_ARRAY;
        top.elements = g->n;
        top.element = g->vals;
        g->cb(g->ctx, &top, 0);
        for (size_t i = 0; i < g->n; i++) {
            if (g->vals[i] == &nil) {
                g->vals[i] = NULL;
            }
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        reply_free(g->vals[i]);
    }
    reply_free(g->error);
    free(g->vals);
    free(g);
}

static void mget_part_reply(void *ctx, const redisReply *r, int err)
{
    cl_part_t *p = ctx;
    cl_mget_t *g = p->g;

    if (err != 0) {
        g->err = g->err != 0 ? g->err : err;
    } else if (r->type == REDIS_REPLY_ERROR) {
        if (g->error == NULL && (g->error = reply_copy(r)) == NULL) {
            g->err = -ENOMEM;
        }
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == p->n) {
        for (size_t i = 0; i < p->n && g->err == 0; i++) {
            if ((g->vals[p->idx[i]] = reply_copy(r->element[i])) == NULL) {
                g->err = -ENOMEM;
            }
        }
    } else {
        g->err = g->err != 0 ? g->err : -EPROTO;
    }
    free(p);
    if (--g->pending == 0) {
        mget_done(g);
    }
}

static int key_cmp(const void *a, const void *b)
{
    const cl_key_t *x = a, *y = b;
    if (x->slot != y->slot) {
        return x->slot < y->slot ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sends keys[from..to) of ks (one slot) as one MGET part of g. */
static int mget_send_part(pos_cluster_t *cl, cl_mget_t *g, const cl_key_t *ks, size_t from,
                          size_t to, const char **argv, const size_t *lens)
{
    size_t n = to - from;
    cl_part_t *p = malloc(sizeof(*p) + n * sizeof(p->idx[0]));
    const char **pargv = malloc((n + 1) * sizeof(*pargv));
    size_t *plens = malloc((n + 1) * sizeof(*plens));
    cl_cmd_t *m = NULL;
    int rc = -ENOMEM;

    if (p != NULL && pargv != NULL && plens != NULL) {
        p->g = g;
        p->n = n;
        pargv[0] = argv[0];
        plens[0] = lens[0];
        for (size_t i = 0; i < n; i++) {
            p->idx[i] = ks[from + i].idx;
            pargv[i + 1] = argv[ks[from + i].idx + 1];
            plens[i + 1] = lens[ks[from + i].idx + 1];
        }
        m = cmd_new(cl, mget_part_reply, p, (int)n + 1, pargv, plens);
    }
    if (m != NULL) {
        m->slot = ks[from].slot;
        rc = cl_dispatch(cl, m, cl_route(cl, m));
        if (rc != 0) {
            cmd_free(m);
        }
    }
    if (rc != 0) {
        free(p);
    }
    free(pargv);
    free(plens);
    return rc;
}

/* MGET over several slots. Returns 0, 1 when every key is in one slot
 * (route it as it is), or a negative errno. */
static int cl_mget(pos_cluster_t *cl, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                   const size_t *lens)
{
    size_t n = (size_t)argc - 1, parts = 0, sent = 0;
    cl_key_t *ks = malloc(n * sizeof(*ks));
    cl_mget_t *g;
    int rc = 0;

    if (ks == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ks[i].slot = pos_slot_of(argv[i + 1], lens[i + 1]);
        ks[i].idx = i;
        parts += i == 0 || ks[i].slot != ks[0].slot;
    }
    if (parts == 1) {
        free(ks);
        return 1;
    }
    qsort(ks, n, sizeof(*ks), key_cmp);
    parts = 0;
    for (size_t i = 0; i < n; i++) {
        parts += i == 0 || ks[i].slot != ks[i - 1].slot;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL || (g->vals = calloc(n, sizeof(*g->vals))) == NULL) {
        free(g);
        free(ks);
        return -ENOMEM;
    }
    g->cb = cb;
    g->ctx = ctx;
    g->n = n;
    /* One more than the parts while they are sent: a part's reply may come
     * at once (its connection failing under the write), and g must
     * outlive the loop and be finished by whoever is last. */
    g->pending = parts + 1;
    for (size_t from = 0; from < n;) {
        size_t to = from + 1;
        while (to < n && ks[to].slot == ks[from].slot) {
            to++;
        }
        rc = mget_send_part(cl, g, ks, from, to, argv, lens);
        if (rc != 0) {
            break;
        }
        sent++;
        from = to;
    }
    free(ks);
    cl->stats.split++;
    if (rc != 0 && sent == 0) {
        free(g->vals); /* nothing went out: no reply can come */
        free(g);
        return rc;
    }
    if (rc != 0) {
        /* Some parts are out: the answer is the error, once they are back
         * (or now, if they all came back already). */
        g->err = rc;
        g->pending -= parts - sent;
    }
    if (--g->pending == 0) {
        mget_done(g);
    }
    return 0;
}

/* ---- routing -------------------------------------------------------------- */

/* "0" or "k:c" (primary k, its cursor c). Returns k or -1. */
static int scan_cursor(const char *s, size_t len, const char **node_cursor, size_t *nclen)
{
    const char *colon = memchr(s, ':', len);
    int k = 0;

    if (colon == NULL) {
        if (len != 1 || s[0] != '0') {
            return -1;
        }
        *node_cursor = s;
        *nclen = 1;
        return 0;
    }
    if (colon == s || colon - s > 3 || colon + 1 == s + len) {
        return -1;
    }
    for (const char *p = s; p < colon; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        k = k * 10 + (*p - '0');
    }
    *node_cursor = colon + 1;
    *nclen = (size_t)(s + len - colon - 1);
    return k;
}

/* Commands a connecting node may hold waiting before the cluster has no
 * spare room: a few (the agent's own at start) are its connect, not a
 * flood; past this many, local clients' reads wait for it no more. */
#define CL_WAIT_SPARE_MAX 64u

bool pos_cluster_has_spare(const pos_cluster_t *cl)
{
    if (cl->phase != CL_READY) {
        return false;
    }
    for (const cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        if (n->dying) {
            continue;
        }
        if (n->nwait >= CL_WAIT_SPARE_MAX ||
            (pos_conn_is_open(&n->cmd.conn) && !pos_conn_has_spare(&n->cmd.conn))) {
            return false;
        }
    }
    return true;
}

int pos_cluster_command(pos_cluster_t *cl, pos_reply_cb cb, void *ctx, int argc, const char **argv,
                        const size_t *lens)
{
    pos_route_t rt = pos_route_classify(argc, argv, lens);
    const char *av[4];
    size_t al[4];
    int slot = -1, scan_node = -1, rc;
    cl_cmd_t *m;

    if (cl->phase != CL_READY) {
        return -ENOTCONN;
    }
    switch (rt.kind) {
    case POS_ROUTE_REFUSED:
        return -EINVAL;
    case POS_ROUTE_MGET:
        rc = cl_mget(cl, cb, ctx, argc, argv, lens);
        if (rc != 1) {
            return rc;
        }
        slot = pos_slot_of(argv[1], lens[1]);
        break;
    case POS_ROUTE_SCAN:
        if (argc > 8 || (scan_node = scan_cursor(argv[1], lens[1], &av[1], &al[1])) < 0 ||
            (size_t)scan_node >= cl->map->nnodes) {
            return -EINVAL;
        }
        {
            /* The same SCAN with the node's own cursor. */
            const char *sargv[8];
            size_t slens[8];
            for (int i = 0; i < argc; i++) {
                sargv[i] = i == 1 ? av[1] : argv[i];
                slens[i] = i == 1 ? al[1] : lens[i];
            }
            m = cmd_new(cl, cb, ctx, argc, sargv, slens);
        }
        if (m == NULL) {
            return -ENOMEM;
        }
        m->scan_node = scan_node;
        goto send;
    case POS_ROUTE_PUBLISH:
        if (argc == 3 && cl_is_sharded(cl, argv[1], lens[1])) {
            av[0] = "SPUBLISH";
            al[0] = 8;
            av[1] = argv[1];
            al[1] = lens[1];
            av[2] = argv[2];
            al[2] = lens[2];
            argv = av;
            lens = al;
            slot = pos_slot_of(argv[1], lens[1]);
        }
        break;
    case POS_ROUTE_ANY:
        break;
    case POS_ROUTE_KEY:
        slot = pos_slot_of(argv[rt.key], lens[rt.key]);
        break;
    }
    m = cmd_new(cl, cb, ctx, argc, argv, lens);
    if (m == NULL) {
        return -ENOMEM;
    }
    m->slot = slot;
send:;
    cl_node_t *n = cl_route(cl, m);
    if (n == NULL && m->slot >= 0) {
        /* No primary for that slot right now: a failover under way. */
        cl_refresh(cl);
    }
    rc = cl_dispatch(cl, m, n);
    if (rc != 0) {
        cmd_free(m);
    }
    return rc;
}

/* ---- the map ------------------------------------------------------------ */

/* Sharded channels not subscribed anywhere are subscribed on their slot's
 * owner: now when its subscriber is up, else by its handshake. */
static void cl_resub_reply(void *ctx, const redisReply *r, int err);

static void cl_sync_shards(pos_cluster_t *cl)
{
    for (size_t i = 0; i < cl->opt.nchannels; i++) {
        cl_chan_t *ch = &cl->chan[i];
        cl_node_t *n;

        if (!ch->sharded || ch->at != NULL) {
            continue;
        }
        n = node_of_index(cl, (int)cl->map->owner[cl_chan_slot(cl, i)] - 1);
        if (n == NULL) {
            continue; /* no owner known: the next refresh */
        }
        if (!n->sub.ready) {
            node_want_sub(cl, n); /* its handshake takes the channel, or the next sync */
            continue;
        }
        const char *argv[] = {"SSUBSCRIBE", cl->opt.channels[i]};
        if (pos_conn_commandv(&n->sub.conn, cl_resub_reply, ch, 2, argv) == 0) {
            ch->at = n;
        }
    }
}

static void cl_resub_reply(void *ctx, const redisReply *r, int err)
{
    cl_chan_t *ch = ctx;
    pos_cluster_t *cl = ch->cl;
    pos_topology_redirect_t rd;

    if (err != 0) {
        return; /* the connection is going down */
    }
    if (r->type == REDIS_REPLY_ERROR) {
        cl_node_t *at = ch->at;
        ch->at = NULL;
        if (pos_topology_parse_redirect(r->str, r->len, &rd) == 0 && !rd.ask &&
            ++ch->tries <= CL_RESUB_TRIES) {
            /* Our map was behind: the owner it names is newer. */
            pos_topology_set(cl->map, rd.slot, rd.host[0] != '\0' ? rd.host : at->host, rd.port);
            cl_sync_shards(cl);
            return;
        }
        POS_WARN("link", "SSUBSCRIBE %s refused: %.*s", cl->opt.channels[ch->index],
                 pos_conn_log_len(r), r->str);
        return;
    }
    ch->tries = 0;
    ch->unsub_ticks = 0;
    cl->stats.resubscribed++;
    POS_INFO("link", "%s: subscribed again on %s:%u (its slot moved)", cl->opt.channels[ch->index],
             ch->at != NULL ? ch->at->host : "?", ch->at != NULL ? (unsigned)ch->at->port : 0u);
}

/* True when every subscriber wanted is up and no node waits to go. */
static bool cl_subs_ready(const pos_cluster_t *cl)
{
    for (const cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        if (n->want_sub && n->primary && !n->sub.ready) {
            return false;
        }
    }
    return true;
}

/* Nodes no longer primaries are let go once every primary's subscriber is
 * up (a demoted primary still tells of its keys until then), and so are
 * records with nothing open. The home node stays: classic channels work
 * on a replica too. */
static void cl_retire(pos_cluster_t *cl)
{
    bool subs = cl_subs_ready(cl);
    uint64_t now = uv_now(cl->loop);
    cl_node_t *n = cl->nodes, *next;

    for (; n != NULL; n = next) {
        next = n->next;
        bool busy = n->wait_head != NULL || pos_cmdq_pending(&n->cmd.conn.q) > 0;
        if (n == cl->home || busy) {
            continue;
        }
        if (!n->primary && subs) {
            node_free(cl, n, -ECANCELED);
        } else if (n->cmd.ready && now - n->used_ms >= POS_CLUSTER_IDLE_MS) {
            cl->stats.idle_closed++;
            POS_DEBUG("link", "%s: idle, closed", n->name[0]);
            if (n->want_sub) {
                side_close_quiet(&n->cmd);
            } else {
                node_free(cl, n, -ECANCELED);
            }
        } else if (!n->want_sub && n->cmd.conn.state == POS_CONN_IDLE) {
            node_free(cl, n, -ECANCELED);
        }
    }
}

/* A new map is in: mark primaries, want subscribers where needed. */
static void cl_apply_map(pos_cluster_t *cl)
{
    pos_topology_t *t = cl->map;

    memset(cl->idx_node, 0, sizeof(cl->idx_node));
    for (cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        n->primary = false;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        cl_node_t *n = node_of_index(cl, (int)i);
        if (n != NULL) {
            n->primary = true;
            if (cl->ntrack > 0) {
                node_want_sub(cl, n);
            }
        }
    }
    if (cl->home == NULL) {
        cl->home = node_of_index(cl, (int)t->owner[cl_chan_slot(cl, 0)] - 1);
        if (cl->home != NULL) {
            node_want_sub(cl, cl->home);
        }
    }
    /* A sharded channel whose slot moved stays where it is until the old
     * owner's "sunsubscribe" says the move is done. */
    cl_sync_shards(cl);
}

static void cl_refresh_reply(void *ctx, const redisReply *r, int err)
{
    pos_cluster_t *cl = ctx;
    pos_topology_t *spare = cl->map == &cl->maps[0] ? &cl->maps[1] : &cl->maps[0];
    char why[160];

    cl->refreshing = false;
    if (err != 0 || cl->phase != CL_READY) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        POS_WARN("link", "CLUSTER SLOTS refused: %.*s", pos_conn_log_len(r), r->str);
        return;
    }
    if (pos_topology_from_slots(spare, r, cl->home != NULL ? cl->home->host : "", why,
                                sizeof(why)) != 0) {
        POS_WARN("link", "%s; keeping the map", why);
        return;
    }
    if (spare->nnodes != cl->map->nnodes ||
        memcmp(spare->owner, cl->map->owner, sizeof(spare->owner)) != 0) {
        POS_INFO("link", "cluster map changed: %zu primaries, %zu of %u slots covered",
                 spare->nnodes, pos_topology_covered(spare), POS_SLOT_COUNT);
    }
    cl->map = spare;
    cl->stats.refreshes++;
    cl_apply_map(cl);
    if (cl->refresh_again) {
        cl->refresh_again = false;
        cl_refresh(cl);
    }
}

/* Asks home for CLUSTER SLOTS (one at a time; asked again after it when
 * something asked meanwhile). */
static void cl_refresh(pos_cluster_t *cl)
{
    const char *argv[] = {"CLUSTER", "SLOTS"};
    const size_t lens[] = {7, 5};
    cl_cmd_t *m;

    if (cl->phase != CL_READY) {
        return;
    }
    if (cl->refreshing) {
        cl->refresh_again = true;
        return;
    }
    m = cmd_new(cl, cl_refresh_reply, cl, 2, argv, lens);
    if (m == NULL) {
        return;
    }
    cl->refreshing = true;
    if (cl_dispatch(cl, m, cl->home) != 0) {
        cl->refreshing = false;
        cmd_free(m);
    }
}

/* ---- handshakes ----------------------------------------------------------- */

static void side_step(cl_side_t *s);

static void cl_auth_cb(void *ctx, const redisReply *r, int err)
{
    cl_side_t *s = ctx;

    if (err != 0) {
        return; /* going down: cl_side_closed decides */
    }
    if (pos_link_auth_check(s->conn.opt.name, r) == 0) {
        side_step(s);
        return;
    }
    POS_ERR("link",
            "%s: AUTH refused: %.*s; check the password and ACL user (REDIS_URL, "
            "REDIS_PASSWORD)",
            s->conn.opt.name, pos_conn_log_len(r), r->str);
    s->node->cl->fatal = true;
    pos_conn_abort(&s->conn, -EACCES);
}

/* A handshake step whose refusal is fatal only when it is an ACL's:
 * otherwise logged ("what" refused), and on we go. Returns true to go on. */
static bool cl_soft_step(cl_side_t *s, const redisReply *r, const char *what)
{
    pos_cluster_t *cl = s->node->cl;

    if (r->type != REDIS_REPLY_ERROR) {
        return true;
    }
    if (pos_link_classify_error(r->str, r->len) == -EACCES) {
        POS_ERR("link", "%s: %s refused by an ACL: %.*s", s->conn.opt.name, what,
                pos_conn_log_len(r), r->str);
        cl->fatal = true;
        pos_conn_abort(&s->conn, -EACCES);
        return false;
    }
    if (strcmp(what, "CLIENT TRACKING") != 0 || !cl->tracking_warned) {
        cl->tracking_warned = cl->tracking_warned || strcmp(what, "CLIENT TRACKING") == 0;
        POS_WARN("link", "%s: %s refused (%.*s)%s", s->conn.opt.name, what, pos_conn_log_len(r),
                 r->str,
                 what[7] == 'T' ? ": cached entries rely on their TTL and the reconnect "
                                  "revalidation"
                                : "");
    }
    return true;
}

static void cl_setname_cb(void *ctx, const redisReply *r, int err)
{
    if (err == 0 && cl_soft_step(ctx, r, "CLIENT SETNAME")) {
        side_step(ctx);
    }
}

static void cl_track_cb(void *ctx, const redisReply *r, int err)
{
    if (err == 0 && cl_soft_step(ctx, r, "CLIENT TRACKING")) {
        side_step(ctx);
    }
}

/* A (S)SUBSCRIBE confirmation in a handshake. */
static void cl_subscribe_cb(void *ctx, const redisReply *r, int err)
{
    cl_side_t *s = ctx;
    pos_cluster_t *cl = s->node->cl;

    if (err != 0) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int cls = pos_link_classify_error(r->str, r->len);
        POS_ERR("link", "%s: subscription refused: %.*s", s->conn.opt.name, pos_conn_log_len(r),
                r->str);
        cl->fatal = cls == -EACCES;
        /* A stale map (-MOVED) is fixed by the next attempt's. */
        pos_conn_abort(&s->conn, cls == -EACCES ? cls : -EAGAIN);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        (strcmp(r->element[0]->str, "subscribe") != 0 &&
         strcmp(r->element[0]->str, "ssubscribe") != 0)) {
        POS_WARN("link", "%s: unexpected reply to a subscription", s->conn.opt.name);
        pos_conn_abort(&s->conn, -EPROTO);
        return;
    }
    side_step(s);
}

/* The subscriber knows its id: tracking redirected to itself, then the
 * subscriptions this node carries. */
static void cl_id_cb(void *ctx, const redisReply *r, int err)
{
    cl_side_t *s = ctx;
    cl_node_t *n = s->node;
    pos_cluster_t *cl = n->cl;
    const char *argv[3 + 2 * POS_CLUSTER_PREFIXES_MAX + POS_CLUSTER_CHANNELS_MAX];
    size_t lens[3 + 2 * POS_CLUSTER_PREFIXES_MAX + POS_CLUSTER_CHANNELS_MAX];
    char id[24];
    int argc = 0, rc = 0;

    if (err != 0) {
        return;
    }
    n->sub_id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    if (cl->ntrack > 0 && n->sub_id > 0) {
        snprintf(id, sizeof(id), "%lld", n->sub_id);
        argv[argc++] = "CLIENT";
        argv[argc++] = "TRACKING";
        argv[argc++] = "on";
        argv[argc++] = "REDIRECT";
        argv[argc++] = id;
        argv[argc++] = "BCAST";
        for (size_t i = 0; i < cl->ntrack; i++) {
            argv[argc++] = "PREFIX";
            argv[argc++] = cl->track[i];
        }
        for (int i = 0; i < argc; i++) {
            lens[i] = strlen(argv[i]);
        }
        rc = pos_conn_command(&s->conn, cl_track_cb, s, 1, argc, argv, lens);
        s->steps++;
    }
    /* Classic channels on home, and the invalidations. */
    argc = 0;
    argv[argc++] = "SUBSCRIBE";
    if (cl->ntrack > 0) {
        argv[argc++] = CL_INVALIDATE;
    }
    for (size_t i = 0; n == cl->home && i < cl->opt.nchannels; i++) {
        if (!cl->chan[i].sharded) {
            argv[argc++] = cl->opt.channels[i];
            cl->chan[i].at = n;
        }
    }
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    if (rc == 0 && argc > 1) {
        rc = pos_conn_command(&s->conn, cl_subscribe_cb, s, (uint32_t)(argc - 1), argc, argv, lens);
        s->steps += (uint32_t)(argc - 1);
    }
    /* Sharded channels whose slot this node owns. */
    for (size_t i = 0; rc == 0 && i < cl->opt.nchannels; i++) {
        cl_chan_t *ch = &cl->chan[i];
        if (ch->sharded && ch->at == NULL && cl->map->owner[cl_chan_slot(cl, i)] != 0 &&
            node_of_index(cl, (int)cl->map->owner[cl_chan_slot(cl, i)] - 1) == n) {
            const char *sargv[] = {"SSUBSCRIBE", cl->opt.channels[i]};
            rc = pos_conn_commandv(&s->conn, cl_subscribe_cb, s, 2, sargv);
            s->steps++;
            ch->at = n;
        }
    }
    if (rc != 0) {
        pos_conn_abort(&s->conn, rc);
        return;
    }
    side_step(s);
}

static void cl_boot_slots_cb(void *ctx, const redisReply *r, int err);
static void cl_gate_send(pos_cluster_t *cl);

/* A handshake reply is in; the last one makes the connection ready. */
static void side_step(cl_side_t *s)
{
    cl_node_t *n = s->node;
    pos_cluster_t *cl = n->cl;

    if (s->steps > 0 && --s->steps > 0) {
        return;
    }
    s->ready = true;
    if (!s->sub && cl->phase == CL_BOOT && n == cl->boot) {
        const char *argv[] = {"CLUSTER", "SLOTS"};
        if (pos_conn_commandv(&s->conn, cl_boot_slots_cb, n, 2, argv) != 0) {
            pos_conn_abort(&s->conn, -ENOMEM);
        }
        return;
    }
    if (!s->sub && cl->phase == CL_GATE && n == cl->gate) {
        cl_gate_send(cl);
        return;
    }
    if (s->sub) {
        cl_sync_shards(cl); /* channels assigned to it while it came up */
    }
    cl_check_ready(cl);
    if (cl->phase == CL_READY) {
        node_flush(n);
    }
}

static void cl_side_open(pos_conn_t *c)
{
    cl_side_t *s = c->data;
    const pos_redis_url_t *ep = s->node->cl->opt.endpoint;
    const char *name = s->node->cl->opt.reach.client_name;
    int rc = 0;

    s->steps = 0;
    /* Pipelined; the first refusal takes the connection down. */
    if (ep->password[0] != '\0') {
        const char *a3[] = {"AUTH", ep->user, ep->password};
        const char *a2[] = {"AUTH", ep->password};
        rc = ep->user[0] != '\0' ? pos_conn_commandv(c, cl_auth_cb, s, 3, a3)
                                 : pos_conn_commandv(c, cl_auth_cb, s, 2, a2);
        s->steps++;
    }
    if (rc == 0 && name != NULL) {
        const char *argv[] = {"CLIENT", "SETNAME", name};
        rc = pos_conn_commandv(c, cl_setname_cb, s, 3, argv);
        s->steps++;
    }
    if (rc == 0 && s->sub) {
        const char *argv[] = {"CLIENT", "ID"};
        rc = pos_conn_commandv(c, cl_id_cb, s, 2, argv);
        s->steps++;
    }
    if (rc != 0) {
        pos_conn_abort(c, rc);
    } else if (s->steps == 0) {
        side_step(s);
    }
}

/* ---- attempts and failures ------------------------------------------------- */

static void cl_check_ready(pos_cluster_t *cl)
{
    if (cl->phase != CL_SUBSCRIBING || !cl_subs_ready(cl) || cl->home == NULL ||
        !cl->home->sub.ready) {
        return;
    }
    for (size_t i = 0; i < cl->opt.nchannels; i++) {
        if (cl->chan[i].at == NULL || !cl->chan[i].at->sub.ready) {
            return;
        }
    }
    cl->phase = CL_READY;
    cl->ticks = 0;
    if (cl->boot != NULL && !cl->boot->primary && cl->boot != cl->home) {
        node_free(cl, cl->boot, -ECANCELED); /* a seed that is no primary */
    }
    cl->boot = NULL;
    {
        uint16_t port;
        const char *host = pos_cluster_home(cl, &port);
        POS_INFO("link", "cluster: %zu primaries, %zu of %u slots covered, home %s:%u%s",
                 cl->map->nnodes, pos_topology_covered(cl->map), POS_SLOT_COUNT, host,
                 (unsigned)port, cl->opt.sharded ? ", sharded pub/sub" : "");
    }
    if (cl->cb.on_ready != NULL) {
        cl->cb.on_ready(cl);
    }
}

/* Every connection is closed: the attempt or the session is over. */
static void cl_down(pos_cluster_t *cl)
{
    int err = cl->fail_err != 0 ? cl->fail_err : -ECONNREFUSED;
    bool fatal = cl->fatal;

    cl->phase = CL_IDLE;
    cl->gate = NULL;
    while (cl->nodes != NULL) {
        node_free(cl, cl->nodes, err);
    }
    for (size_t i = 0; i < cl->opt.nchannels; i++) {
        cl->chan[i].at = NULL;
        cl->chan[i].tries = cl->chan[i].unsub_ticks = 0;
    }
    if (cl->cb.on_down != NULL) {
        cl->cb.on_down(cl, err, fatal);
    }
}

static void cl_maybe_down(pos_cluster_t *cl)
{
    if (cl->phase != CL_FAILING || cl->in_fail) {
        return;
    }
    for (const cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        if (n->cmd.conn.state != POS_CONN_IDLE || n->sub.conn.state != POS_CONN_IDLE) {
            return;
        }
    }
    cl_down(cl);
}

void pos_cluster_fail(pos_cluster_t *cl, int err)
{
    if (cl->phase != CL_BOOT && cl->phase != CL_GATE && cl->phase != CL_SUBSCRIBING &&
        cl->phase != CL_READY) {
        return;
    }
    cl->phase = CL_FAILING;
    if (cl->fail_err == 0) {
        cl->fail_err = err;
    }
    if (cl->cb.on_failing != NULL) {
        cl->cb.on_failing(cl, err);
    }
    cl->in_fail = true;
    list_fail(&cl->retry_head, &cl->retry_tail, err);
    for (cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        n->nwait = 0; /* the list is detached before its callbacks run */
        list_fail(&n->wait_head, &n->wait_tail, err);
        pos_conn_abort(&n->cmd.conn, err);
        pos_conn_abort(&n->sub.conn, err);
    }
    cl->in_fail = false;
    cl_maybe_down(cl);
}

static void cl_boot_slots_cb(void *ctx, const redisReply *r, int err)
{
    cl_node_t *n = ctx;
    pos_cluster_t *cl = n->cl;
    pos_topology_t *spare = cl->map == &cl->maps[0] ? &cl->maps[1] : &cl->maps[0];
    char why[160];
    int rc;

    if (err != 0 || cl->phase != CL_BOOT) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = pos_link_classify_error(r->str, r->len);
        POS_ERR("link", "%s: CLUSTER SLOTS refused: %.*s%s", n->name[0], pos_conn_log_len(r),
                r->str, rc == -EACCES ? " (the ACL must allow CLUSTER SLOTS)" : "");
        /* Not a cluster node, or not allowed to ask: the configuration's
         * problem, not the network's. */
        cl->fatal = rc == -EACCES || strstr(r->str, "cluster support disabled") != NULL;
        cl->fail_err = rc == -EAGAIN ? -EAGAIN : -EPROTO;
        side_close_quiet(&n->cmd);
        if (cl->fatal) {
            pos_cluster_fail(cl, cl->fail_err);
        } else {
            cl_boot_next(cl);
        }
        return;
    }
    rc = pos_topology_from_slots(spare, r, n->host, why, sizeof(why));
    if (rc == 0 && spare->owner[cl_chan_slot(cl, 0)] == 0) {
        snprintf(why, sizeof(why), "no primary owns the slot of %s yet", cl->opt.channels[0]);
        rc = -EAGAIN;
    }
    if (rc != 0) {
        POS_WARN("link", "%s: %s", n->name[0], why);
        cl->fail_err = rc == -ENOSPC ? -ENOSPC : -EAGAIN;
        side_close_quiet(&n->cmd);
        cl_boot_next(cl);
        return;
    }
    cl->map = spare;
    cl->stats.refreshes++;
    for (size_t i = 0; i < cl->opt.nseeds; i++) {
        if (cl->seeds[i].port == n->port && strcmp(cl->seeds[i].host, n->host) == 0) {
            cl->seed_first = i; /* asked first next time */
        }
    }
    if (cl->opt.gate_argc > 0) {
        cl_gate_begin(cl);
        return;
    }
    cl->phase = CL_SUBSCRIBING;
    cl_apply_map(cl);
    cl_check_ready(cl);
}

/* ---- the gate ---------------------------------------------------------------- */

/* The gate's answer: the subscribers come up only when it passed. */
static void cl_gate_cb(void *ctx, const redisReply *r, int err)
{
    cl_node_t *n = ctx;
    pos_cluster_t *cl = n->cl;
    pos_topology_redirect_t rd;
    int rc;

    if (err != 0 || cl->phase != CL_GATE || n != cl->gate) {
        return; /* going down: cl_side_closed decides */
    }
    if (r->type == REDIS_REPLY_ERROR &&
        (pos_topology_parse_redirect(r->str, r->len, &rd) == 0 ||
         has_prefix(r->str, r->len, "TRYAGAIN") || has_prefix(r->str, r->len, "CLUSTERDOWN"))) {
        /* The slot is moving or has no primary: the next attempt's map. */
        POS_WARN("link", "%s: the check before subscribing was answered %.*s; trying again",
                 n->name[0], pos_conn_log_len(r), r->str);
        pos_cluster_fail(cl, -EAGAIN);
        return;
    }
    rc = cl->opt.gate_check(cl->opt.gate_ctx, r);
    if (rc != 0) {
        cl->fatal = rc == -EPERM || rc == -EACCES;
        pos_cluster_fail(cl, rc);
        return;
    }
    cl->gate = NULL;
    cl->phase = CL_SUBSCRIBING;
    cl_apply_map(cl);
    cl_check_ready(cl);
}

/* Sends the gate's command on its node's command connection (ready). */
static void cl_gate_send(pos_cluster_t *cl)
{
    cl_node_t *n = cl->gate;
    int rc = pos_conn_commandv(&n->cmd.conn, cl_gate_cb, n, cl->opt.gate_argc,
                               (const char **)cl->opt.gate_argv);

    if (rc != 0) {
        pos_conn_abort(&n->cmd.conn, rc);
    }
}

/* The map is in: the gate's command goes to the owner of its key's slot
 * (home's for a command without a key). */
static void cl_gate_begin(pos_cluster_t *cl)
{
    size_t lens[CL_GATE_ARGS];
    int argc = cl->opt.gate_argc;
    uint16_t slot = cl_chan_slot(cl, 0);
    pos_route_t rt;
    cl_node_t *n;

    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(cl->opt.gate_argv[i]);
    }
    rt = pos_route_classify(argc, (const char **)cl->opt.gate_argv, lens);
    if (rt.kind == POS_ROUTE_KEY) {
        slot = pos_slot_of(cl->opt.gate_argv[rt.key], lens[rt.key]);
    }
    cl->phase = CL_GATE;
    n = cl->map->owner[slot] != 0 ? node_of_index(cl, (int)cl->map->owner[slot] - 1) : NULL;
    if (n == NULL) {
        POS_WARN("link", "cluster: no primary owns slot %u yet (the check before subscribing)",
                 (unsigned)slot);
        pos_cluster_fail(cl, -EAGAIN);
        return;
    }
    cl->gate = n;
    if (n->cmd.ready) {
        cl_gate_send(cl);
    } else {
        side_connect(&n->cmd);
    }
}

/* Asks the next address (seeds first, then the last map's primaries). */
static void cl_boot_next(pos_cluster_t *cl)
{
    size_t total = cl->opt.nseeds + cl->map->nnodes;

    while (cl->phase == CL_BOOT && cl->tried < total) {
        size_t i = cl->tried++;
        const char *host;
        uint16_t port;
        cl_node_t *n;

        if (i < cl->opt.nseeds) {
            const pos_sentinel_addr_t *a = &cl->seeds[(cl->seed_first + i) % cl->opt.nseeds];
            host = a->host;
            port = a->port;
        } else {
            host = cl->map->nodes[i - cl->opt.nseeds].host;
            port = cl->map->nodes[i - cl->opt.nseeds].port;
        }
        n = node_get(cl, host, port, true);
        if (n == NULL || n->cmd.conn.state != POS_CONN_IDLE) {
            continue; /* asked already (a seed also in the map) */
        }
        cl->boot = n;
        side_connect(&n->cmd);
        return;
    }
    if (cl->phase == CL_BOOT) {
        /* Nobody gave a map: the attempt failed. */
        cl->phase = CL_FAILING;
        cl_maybe_down(cl);
    }
}

void pos_cluster_connect(pos_cluster_t *cl)
{
    if (cl->phase != CL_IDLE) {
        return;
    }
    cl->phase = CL_BOOT;
    cl->fail_err = 0;
    cl->fatal = false;
    cl->tried = 0;
    cl->home = cl->boot = NULL;
    cl->refreshing = cl->refresh_again = false;
    cl_boot_next(cl);
}

static void cl_side_closed(pos_conn_t *c, int err)
{
    cl_side_t *s = c->data;
    cl_node_t *n = s->node;
    pos_cluster_t *cl = n->cl;

    s->ready = false;
    if (s->quiet) {
        s->quiet = false;
        if (cl->phase == CL_GATE && n == cl->gate && !s->sub && !n->dying) {
            /* A seed closed after a refused map, now the gate's node. */
            side_connect(s);
        }
        cl_maybe_down(cl);
        return;
    }
    if (n->dying) {
        return;
    }
    switch (cl->phase) {
    case CL_BOOT:
        if (n == cl->boot) {
            if (cl->fail_err == 0 || !cl->fatal) {
                cl->fail_err = err;
            }
            if (cl->fatal) {
                cl->phase = CL_FAILING;
                cl_maybe_down(cl);
            } else {
                cl_boot_next(cl);
            }
        }
        return;
    case CL_GATE:
    case CL_SUBSCRIBING:
    case CL_READY:
        POS_WARN("link", "%s: connection lost (%s)", c->opt.name, strerror(-err));
        pos_cluster_fail(cl, err);
        return;
    case CL_FAILING:
        cl_maybe_down(cl);
        return;
    default:
        return;
    }
}

/* ---- pub/sub --------------------------------------------------------------- */

static int cl_chan_index(const pos_cluster_t *cl, const redisReply *ch)
{
    for (size_t i = 0; i < cl->opt.nchannels; i++) {
        if (strlen(cl->opt.channels[i]) == ch->len &&
            memcmp(cl->opt.channels[i], ch->str, ch->len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void cl_side_push(pos_conn_t *c, const redisReply *r)
{
    cl_side_t *s = c->data;
    cl_node_t *n = s->node;
    pos_cluster_t *cl = n->cl;
    const redisReply *kind = r->element[0], *ch = r->element[1], *payload = r->element[2];

    if (ch->type != REDIS_REPLY_STRING) {
        POS_WARN("link", "%s: malformed pub/sub message dropped", c->opt.name);
        return;
    }
    if (kind->len == 12 && memcmp(kind->str, "sunsubscribe", 12) == 0) {
        /* The slot of a sharded channel moved. */
        int i = cl_chan_index(cl, ch);
        if (i >= 0 && cl->chan[i].sharded && cl->chan[i].at == n) {
            POS_INFO("link", "%s: %s no longer owns its slot; subscribing on the new owner",
                     cl->opt.channels[i], c->opt.name);
            cl->chan[i].at = NULL;
            cl_refresh(cl);
        }
        return;
    }
    if (ch->len == strlen(CL_INVALIDATE) && memcmp(ch->str, CL_INVALIDATE, ch->len) == 0) {
        /* Redis sends an array of keys, or a nil for a flush; a string is
         * someone's PUBLISH on the channel, not an invalidation. */
        if (payload->type != REDIS_REPLY_ARRAY && payload->type != REDIS_REPLY_NIL) {
            POS_DEBUG("link", "%s: a PUBLISH on %s ignored", c->opt.name, CL_INVALIDATE);
            return;
        }
        if (cl->phase == CL_READY && cl->cb.on_invalidate != NULL) {
            cl->cb.on_invalidate(cl, payload->type == REDIS_REPLY_ARRAY ? payload : NULL);
        }
        return;
    }
    if (payload->type != REDIS_REPLY_STRING) {
        POS_WARN("link", "%s: malformed pub/sub message dropped", c->opt.name);
        return;
    }
    if (cl->phase == CL_READY && cl->cb.on_message != NULL) {
        cl->cb.on_message(cl, ch->str, ch->len, payload->str, payload->len);
    }
}

/* Home's PING came back: the probe's round trip (INFO health). */
static void cl_home_ping_cb(void *ctx, const redisReply *r, int err)
{
    pos_cluster_t *cl = ctx;

    (void)r;
    if (err == 0 && cl->ping_sent_us != 0) {
        cl->stats.probe_rtt_us = pos_clock_mono_us() - cl->ping_sent_us;
    }
    cl->ping_sent_us = 0;
}

void pos_cluster_probe(pos_cluster_t *cl)
{
    const char *ping[] = {"PING"};

    if (cl->phase != CL_READY) {
        return;
    }
    /* An unanswered PING fails at the command timeout: the connection and
     * with it the session go down. Subscribers that carry channels are
     * asked every probe; those that only carry a node's invalidations
     * every POS_CLUSTER_REFRESH_TICKS probes (TCP keepalive watches them
     * meanwhile): at 100,000 terminals each PING is 10,000 a second on
     * every primary. */
    ++cl->ticks;
    for (cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        bool channels = n == cl->home;
        for (size_t i = 0; i < cl->opt.nchannels; i++) {
            channels = channels || cl->chan[i].at == n;
        }
        if (n->sub.ready && !pos_conn_busy(&n->sub.conn) &&
            (channels || cl->ticks % POS_CLUSTER_REFRESH_TICKS == 0)) {
            bool home = n == cl->home && cl->ping_sent_us == 0;
            if (pos_conn_commandv(&n->sub.conn, home ? cl_home_ping_cb : NULL, home ? cl : NULL, 1,
                                  ping) == 0 &&
                home) {
                cl->ping_sent_us = pos_clock_mono_us();
            }
        }
    }
    for (size_t i = 0; i < cl->opt.nchannels; i++) {
        cl_chan_t *ch = &cl->chan[i];
        ch->unsub_ticks = ch->at == NULL ? ch->unsub_ticks + 1 : 0;
        if (ch->unsub_ticks >= CL_UNSUB_TICKS) {
            POS_WARN("link", "%s: not subscribed anywhere for %u probes; reconnecting",
                     cl->opt.channels[i], ch->unsub_ticks);
            pos_cluster_fail(cl, -ENOTCONN);
            return;
        }
        if (ch->at == NULL) {
            ch->tries = 0;
        }
    }
    cl_sync_shards(cl);
    cl_retire(cl);
    if (cl->ticks % POS_CLUSTER_REFRESH_TICKS == 0) {
        cl_refresh(cl);
    }
}

/* ---- life ------------------------------------------------------------------ */

int pos_cluster_init(uv_loop_t *loop, pos_cluster_t **out, const pos_cluster_options_t *opt,
                     const pos_cluster_callbacks_t *cb, void *data)
{
    pos_cluster_t *cl;
    int rc;

    if (opt->nseeds < 1 || opt->nseeds > POS_CLUSTER_SEEDS_MAX || opt->nchannels < 1 ||
        opt->nchannels > POS_CLUSTER_CHANNELS_MAX ||
        opt->nsharded_prefixes > POS_CLUSTER_PREFIXES_MAX || opt->gate_argc < 0 ||
        opt->gate_argc > CL_GATE_ARGS ||
        (opt->gate_argc > 0 && (opt->gate_argv == NULL || opt->gate_check == NULL))) {
        return -EINVAL;
    }
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return -ENOMEM;
    }
    cl->data = data;
    cl->loop = loop;
    cl->opt = *opt;
    cl->cb = *cb;
    memcpy(cl->seeds, opt->seeds, opt->nseeds * sizeof(cl->seeds[0]));
    cl->opt.seeds = cl->seeds;
    cl->map = &cl->maps[0];
    for (size_t i = 0; i < opt->nchannels; i++) {
        cl->chan[i].cl = cl;
        cl->chan[i].index = i;
        cl->chan[i].sharded = cl_is_sharded(cl, opt->channels[i], strlen(opt->channels[i]));
    }
    rc = uv_timer_init(loop, &cl->retry_timer);
    if (rc != 0) {
        free(cl);
        return -ENOMEM;
    }
    cl->retry_timer.data = cl;
    cl->timer_open = true;
    *out = cl;
    return 0;
}

void *pos_cluster_data(const pos_cluster_t *cl)
{
    return cl->data;
}

void pos_cluster_track(pos_cluster_t *cl, const char *const *prefixes, size_t n)
{
    cl->ntrack = 0;
    for (size_t i = 0; i < n && i < POS_CLUSTER_PREFIXES_MAX; i++) {
        if (strlen(prefixes[i]) < CL_PREFIX_MAX) {
            snprintf(cl->track[cl->ntrack++], CL_PREFIX_MAX, "%s", prefixes[i]);
        }
    }
}

const char *pos_cluster_home(const pos_cluster_t *cl, uint16_t *port)
{
    const pos_sentinel_addr_t *seed = &cl->seeds[cl->seed_first % cl->opt.nseeds];

    if (cl->home != NULL) {
        *port = cl->home->port;
        return cl->home->host;
    }
    *port = seed->port;
    return seed->host;
}

void pos_cluster_stats(const pos_cluster_t *cl, pos_cluster_stats_t *st, pos_conn_stats_t *cs)
{
    *st = cl->stats;
    st->primaries = (unsigned)cl->map->nnodes;
    st->connections = st->subscribers = 0;
    if (cs != NULL) {
        memset(cs, 0, sizeof(*cs));
    }
    for (const cl_node_t *n = cl->nodes; n != NULL; n = n->next) {
        const cl_side_t *sides[] = {&n->cmd, &n->sub};
        for (size_t i = 0; i < 2; i++) {
            const pos_conn_t *c = &sides[i]->conn;
            if (c->state != POS_CONN_IDLE) {
                st->connections++;
                st->subscribers += sides[i]->sub;
            }
            if (cs != NULL) {
                cs->refused += c->stats.refused;
                cs->pauses += c->stats.pauses;
                cs->pushes_dropped += c->stats.pushes_dropped;
            }
        }
    }
}

static void cl_timer_closed(uv_handle_t *h)
{
    pos_cluster_t *cl = h->data;

    cl->timer_open = false;
    if (cl->dying == 0 && cl->closed_cb != NULL) {
        void (*done)(pos_cluster_t * c) = cl->closed_cb;
        cl->closed_cb = NULL;
        done(cl);
        free(cl);
    }
}

void pos_cluster_close(pos_cluster_t *cl, void (*done)(pos_cluster_t *c))
{
    if (cl->phase == CL_CLOSED) {
        return;
    }
    cl->phase = CL_CLOSED;
    cl->closed_cb = done;
    list_fail(&cl->retry_head, &cl->retry_tail, -ECANCELED);
    while (cl->nodes != NULL) {
        node_free(cl, cl->nodes, -ECANCELED);
    }
    uv_close((uv_handle_t *)&cl->retry_timer, cl_timer_closed);
}
