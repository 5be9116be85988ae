/*
 * Fuzz target: the RESP reply path as fed by the network. The agent's real
 * Redis link (agent/link/link.c) runs on a libuv loop with both connections on
 * an in-memory transport (pos_transport_ops_t.connect: no socket); the
 * input is what "the server" sends, cut into records that go to the
 * command or the subscriber connection through pos_conn_feed(), exactly
 * where a socket read would deliver them. So the fuzzed path is hiredis's
 * redisReader, the in-order reply queue (agent/link/cmdq.c), the subscriber's
 * push routing (agent/link/conn.c), the handshake callbacks, the pub/sub and
 * tracking-invalidation dispatch (agent/link/link.c), and then, as the agent
 * does, each channel's message decoder (agent/msg/messages.c).
 *
 * Input: byte 0 picks the endpoint (bit 0: password, bit 1: ACL user,
 * bit 2: a database > 0, so AUTH and SELECT are in the handshake). Then
 * records: a header byte h, bit 7 = subscriber (else command) connection,
 * (h & 0x7f) + 1 bytes follow (fewer at the end); h & 0x7f == 0x7f carries
 * no bytes and restarts the link if it is down (a reconnect, without
 * waiting for the backoff).
 *
 * Invariants: every command's callback runs exactly once per reply or
 * exactly once with an error, and never both; a channel message or an
 * invalidation arrives only while online, on a channel of ours; every
 * reply handed out is well formed; decoded messages hold NUL-terminated
 * fields; nothing leaks once the link is stopped.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent/link/link.h"
#include "agent/msg/messages.h"
#include "platform/log.h"
#include "tests/support/fuzz.h"

#define CH_PAYMENT   "payment:T-0001"
#define CH_INVENTORY "inventory:S-042"
#define CH_SYSTEM    "system:alerts"
#define CH_PROBE     "posagent:probe:T-0001"
#define MAX_CMDS     64

typedef struct fuzz_cmd {
    int replies; /* callbacks with a reply */
    int errors;  /* callbacks with an error */
} fuzz_cmd_t;

typedef struct fuzz_state {
    pos_link_t link;
    fuzz_cmd_t cmds[MAX_CMDS];
    int ncmds;
    uint64_t hash;
    bool stopped;
} fuzz_state_t;

static fuzz_state_t *fs;
static pos_msg_t msg;

/* ---- the in-memory transport: commands go nowhere, replies come from the input */

static int mem_connect(pos_conn_t *c, const char *host, uint16_t port)
{
    (void)host;
    (void)port;
    pos_conn_transport_ready(c);
    return 0;
}

static int mem_start(pos_conn_t *c)
{
    (void)c;
    return -EPROTO; /* never called: connect() replaces TCP + start */
}

static int mem_write(pos_conn_t *c, const char *buf, size_t len)
{
    (void)c;
    (void)buf;
    (void)len;
    return 0;
}

static const pos_transport_ops_t mem_transport = {
    .start = mem_start,
    .write = mem_write,
    .on_read = pos_conn_feed,
    .reset = NULL,
    .connect = mem_connect,
};

/* ---- what the agent does with replies and messages ------------------------ */

static void walk(const redisReply *r, int depth)
{
    POS_FUZZ_CHECK(r != NULL && depth < 64);
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        POS_FUZZ_CHECK(r->str != NULL && r->str[r->len] == '\0');
        for (size_t i = 0; i < r->len; i++) {
            fs->hash = (fs->hash ^ (uint8_t)r->str[i]) * 1099511628211ull;
        }
        break;
    case REDIS_REPLY_ARRAY:
        POS_FUZZ_CHECK(r->elements == 0 || r->element != NULL);
        for (size_t i = 0; i < r->elements; i++) {
            walk(r->element[i], depth + 1);
        }
        break;
    case REDIS_REPLY_INTEGER:
        fs->hash ^= (uint64_t)r->integer;
        break;
    case REDIS_REPLY_NIL:
        break;
    default:
        abort(); /* RESP2 has no other type */
    }
}

static void cmd_cb(void *ctx, const redisReply *r, int err)
{
    fuzz_cmd_t *c = ctx;

    POS_FUZZ_CHECK((r == NULL) == (err != 0));
    POS_FUZZ_CHECK(c->errors == 0); /* nothing after a failure */
    if (err != 0) {
        POS_FUZZ_CHECK(err < 0);
        c->errors++;
        return;
    }
    c->replies++;
    POS_FUZZ_CHECK(c->replies == 1); /* one reply per command */
    walk(r, 0);
}

static void send_cmd(const char *a0, const char *a1)
{
    const char *argv[] = {a0, a1};
    fuzz_cmd_t *c;

    if (fs->ncmds >= MAX_CMDS) {
        return;
    }
    c = &fs->cmds[fs->ncmds];
    memset(c, 0, sizeof(*c));
    if (pos_link_commandv(&fs->link, cmd_cb, c, a1 != NULL ? 2 : 1, argv) == 0) {
        fs->ncmds++;
    }
}

static void on_online(pos_link_t *l)
{
    POS_FUZZ_CHECK(pos_link_is_online(l));
    /* As the agent does at once: a status write and a tracking request. */
    send_cmd("GET", "terminal:T-0001:status");
    send_cmd("CLIENT", "TRACKINGINFO");
}

static void on_offline(pos_link_t *l, int err)
{
    (void)l;
    POS_FUZZ_CHECK(err < 0);
}

static void check_str(const char *s, size_t cap)
{
    POS_FUZZ_CHECK(memchr(s, '\0', cap) != NULL);
}

static void decode(pos_msg_channel_t ch, const char *payload, size_t len)
{
    static const pos_msg_limits_t lim = {64 * 1024, 100000000, NULL, NULL};
    char why[128];

    int rc = pos_msg_decode(ch, payload, len, &lim, &msg, why, sizeof(why));
    if (rc != 0) {
        POS_FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
        return;
    }
    switch (msg.type) {
    case POS_MSG_PAYMENT_REQUESTED:
        POS_FUZZ_CHECK(ch == POS_MSG_CH_PAYMENT);
        POS_FUZZ_CHECK(pos_msg_id_valid(msg.u.payment.transaction_id));
        POS_FUZZ_CHECK(msg.u.payment.line_count <= POS_MSG_LINES_MAX);
        break;
    case POS_MSG_PAYMENT_CANCELLED:
    case POS_MSG_RECEIPT_REPRINT:
        POS_FUZZ_CHECK(ch == POS_MSG_CH_PAYMENT && pos_msg_id_valid(msg.u.tx.transaction_id));
        break;
    case POS_MSG_DISPLAY_MESSAGE:
        POS_FUZZ_CHECK(ch == POS_MSG_CH_PAYMENT);
        break;
    case POS_MSG_INVENTORY_UPDATED:
    case POS_MSG_LOW_STOCK_ALERT:
        POS_FUZZ_CHECK(ch == POS_MSG_CH_INVENTORY);
        /* storeId is optional: without a scope, "" when left out. */
        POS_FUZZ_CHECK(msg.u.inventory.store_id[0] == '\0' ||
                       pos_msg_id_valid(msg.u.inventory.store_id));
        POS_FUZZ_CHECK(pos_msg_id_valid(msg.u.inventory.product_id));
        break;
    case POS_MSG_SYSTEM_ALERT:
        POS_FUZZ_CHECK(ch == POS_MSG_CH_SYSTEM);
        check_str(msg.u.alert.message, sizeof(msg.u.alert.message));
        break;
    case POS_MSG_CACHE_INVALIDATE:
        POS_FUZZ_CHECK(ch == POS_MSG_CH_SYSTEM);
        POS_FUZZ_CHECK(msg.u.invalidate.pattern[0] != '\0');
        break;
    default:
        abort();
    }
}

static void on_message(pos_link_t *l, const char *channel, size_t chlen, const char *payload,
                       size_t len)
{
    static const struct {
        const char *name;
        pos_msg_channel_t ch;
    } chans[] = {{CH_PAYMENT, POS_MSG_CH_PAYMENT},
                 {CH_INVENTORY, POS_MSG_CH_INVENTORY},
                 {CH_SYSTEM, POS_MSG_CH_SYSTEM}};

    POS_FUZZ_CHECK(pos_link_is_online(l));
    POS_FUZZ_CHECK(channel != NULL && payload != NULL);
    /* The probe channel is the link's own business. */
    POS_FUZZ_CHECK(!(chlen == strlen(CH_PROBE) && memcmp(channel, CH_PROBE, chlen) == 0));
    for (size_t i = 0; i < sizeof(chans) / sizeof(chans[0]); i++) {
        if (chlen == strlen(chans[i].name) && memcmp(channel, chans[i].name, chlen) == 0) {
            decode(chans[i].ch, payload, len);
            /* A handled message usually makes the agent send something. */
            send_cmd("PUBLISH", chans[i].name);
            return;
        }
    }
    /* Another channel: the agent logs and drops it. */
}

static void on_invalidate(pos_link_t *l, const redisReply *keys)
{
    POS_FUZZ_CHECK(pos_link_is_online(l));
    if (keys == NULL) {
        return; /* FLUSHALL */
    }
    POS_FUZZ_CHECK(keys->type == REDIS_REPLY_ARRAY);
    walk(keys, 0);
}

static void on_stopped(pos_link_t *l)
{
    (void)l;
    fs->stopped = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const pos_link_callbacks_t cb = {
        .on_online = on_online,
        .on_offline = on_offline,
        .on_message = on_message,
        .on_invalidate = on_invalidate,
    };
    pos_redis_url_t ep;
    pos_link_options_t lo;
    static uv_loop_t loop; /* one for the process: every input leaves it empty */
    static bool loop_ready;

    if (size < 1 || size > 64 * 1024) {
        return 0;
    }
    pos_log_set_level(POS_LOG_DEBUG); /* the log lines' formatting is on the path too */

    memset(&ep, 0, sizeof(ep));
    strcpy(ep.host, "redis.invalid");
    ep.port = 6379;
    if (data[0] & 1) {
        strcpy(ep.password, "s3cret");
        if (data[0] & 2) {
            strcpy(ep.user, "till");
        }
    }
    ep.db = (data[0] & 4) ? 3 : 0;

    memset(&lo, 0, sizeof(lo));
    lo.endpoint = &ep;
    lo.reach.client_name = "posagent:T-0001";
    lo.channels[0] = CH_PAYMENT;
    lo.channels[1] = CH_INVENTORY;
    lo.channels[2] = CH_SYSTEM;
    lo.nchannels = 3;
    lo.probe_channel = CH_PROBE;
    lo.reach.connect_timeout_ms = 5000;
    lo.reach.command_timeout_ms = 5000;
    lo.reach.retry_delay_ms = 100;
    lo.reach.max_retry_delay_ms = 1000;
    lo.random_seed = 1;
    lo.reach.transport = &mem_transport;

    fs = calloc(1, sizeof(*fs));
    POS_FUZZ_CHECK(fs != NULL);
    fs->hash = 14695981039346656037ull;
    if (!loop_ready) {
        POS_FUZZ_CHECK(uv_loop_init(&loop) == 0);
        loop_ready = true;
    }
    POS_FUZZ_CHECK(pos_link_init(&loop, &fs->link, &lo, &cb) == 0);
    pos_link_start(&fs->link);
    /* Both connections are open and their handshakes sent. */
    POS_FUZZ_CHECK(pos_conn_is_open(&fs->link.cmd.conn) && pos_conn_is_open(&fs->link.sub.conn));

    for (size_t at = 1; at < size;) {
        uint8_t h = data[at++];
        pos_conn_t *c = (h & 0x80) ? &fs->link.sub.conn : &fs->link.cmd.conn;
        size_t n = (size_t)(h & 0x7f) + 1;

        if ((h & 0x7f) == 0x7f) {
            pos_link_start(&fs->link); /* no-op unless down */
            continue;
        }
        if (n > size - at) {
            n = size - at;
        }
        /* What conn_read_cb does with bytes off the socket. */
        int rc = c->opt.transport->on_read(c, (const char *)data + at, n);
        if (rc != 0) {
            POS_FUZZ_CHECK(rc == -ENOMEM);
            pos_conn_abort(c, rc);
        }
        at += n;
    }

    pos_link_stop(&fs->link, on_stopped);
    POS_FUZZ_CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    POS_FUZZ_CHECK(fs->stopped);
    POS_FUZZ_CHECK(uv_loop_alive(&loop) == 0); /* every handle closed */
    /* Every command heard back exactly once. */
    for (int i = 0; i < fs->ncmds; i++) {
        POS_FUZZ_CHECK(fs->cmds[i].replies + fs->cmds[i].errors == 1);
    }
    free(fs);
    fs = NULL;
    return 0;
}
