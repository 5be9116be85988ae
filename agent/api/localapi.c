#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include "agent/api/localapi.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform/bucket.h"
#include "platform/dirs.h"
#include "platform/lockfile.h"
#include "platform/log.h"
#include "platform/mem.h"
#include "platform/uverr.h"

#define LAPI_BACKLOG  128
#define LAPI_NAME_MAX 64 /* bytes of a command name quoted in an error */
/* Output is handed to libuv in pieces of about this size, so a slow reader
 * costs exact-size write buffers, not one buffer doubling past the bound. */
#define LAPI_WRITE_CHUNK (64u * 1024u)
/* Commands one client runs before the next queued client gets its turn. */
#define LAPI_QUANTUM 32u
/* A client over its budget, or connections closed to make room, are
 * logged at most this often. */
#define LAPI_LOG_EVERY_MS 60000u

enum {
    SLOT_DISPATCH, /* its handler is running */
    SLOT_PENDING,  /* deferred: the owner answers later */
    SLOT_DONE,     /* complete, waiting for the replies before it */
};

typedef struct lapi_buf {
    char *data;
    size_t len, cap;
} lapi_buf_t;

struct pos_localapi_reply {
    pos_localapi_reply_t *next;    /* the client's reply queue */
    pos_localapi_client_t *client; /* NULL once the client has gone */
    pos_localapi_t *server;
    lapi_buf_t buf; /* bytes written while replies before it are incomplete */
    int state;
    bool wrote;       /* something was written */
    bool done_called; /* pos_localapi_reply_done() ran during its handler */
};

typedef struct lapi_write {
    uv_write_t req;
    char *data;
    size_t len;
} lapi_write_t;

/* A command taken from the parser and held back: an AUTH whose peer must
 * wait (client_process). One allocation: this, the argument pointers, the
 * lengths, then the bytes, each argument NUL-terminated as the parser
 * gives them. It holds a password: wiped before it is freed. */
typedef struct lapi_held {
    pos_resp_cmd_t cmd;
    size_t size; /* bytes of the allocation */
} lapi_held_t;

struct pos_localapi_client {
    uv_pipe_t pipe; /* data points back here */
    pos_localapi_t *server;
    pos_localapi_client_t *prev, *next;
    pos_localapi_client_t *ready_next; /* the server's queue of clients with commands left */
    uint64_t id;
    uid_t uid;            /* the peer's, from SO_PEERCRED; (uid_t)-1 when unknown */
    pid_t pid;            /* the peer's at connect time; 0 when unknown */
    pos_bucket_t bucket;  /* its budget, when the server has a client_rate */
    uint64_t last_active; /* uv_now() of its last command, or of its connect */
    uint64_t drained_at;  /* uv_now() its replies last moved, or it was paused on them */
    size_t wq_seen;       /* its write queue's size then (stall_timer_cb) */
    uint64_t turn;        /* the loop turn turn_used counts in */
    uint32_t turn_used;   /* commands it ran in that turn as its input arrived */
    uint32_t round_left;  /* commands left of a round a turn's end cut short */
    uint64_t busy_count;  /* its commands answered -BUSY */
    uint64_t busy_logged; /* busy_count when last logged */
    uint64_t busy_log_ms; /* uv_now() when last logged; 0: never */
    pos_resp_parser_t parser;
    lapi_buf_t out;         /* replies, in order, not yet handed to libuv */
    size_t inflight;        /* bytes in writes libuv has not finished */
    uint32_t inflight_reqs; /* those writes */
    pos_localapi_reply_t *head, *tail;
    uint32_t nslots;
    size_t queued;   /* reply bytes not yet written: out, in flight and slots */
    size_t held;     /* of them, in slots behind a reply not complete yet */
    size_t slot_mem; /* heap bytes of the slots */
    size_t mem_seen; /* this client's share of server->memory */
    bool reading, closing, quitting, eof, in_process, ready;
    bool paused;                          /* its commands wait for its replies (client_paused) */
    bool authed;                          /* AUTH succeeded (or no password is set) */
    lapi_held_t *auth_held;               /* an AUTH its peer's wait holds back; NULL: none */
    uint8_t auth_fails;                   /* wrong passwords on this connection */
    char name[POS_LOCALAPI_NAME_MAX + 1]; /* CLIENT SETNAME; "" none */
};

static void client_close(pos_localapi_client_t *c);
static void client_flush(pos_localapi_client_t *c);
static void client_start_write(pos_localapi_client_t *c);
static void client_account(pos_localapi_client_t *c);
static void client_process(pos_localapi_client_t *c, uint32_t allow);
static bool turn_spent(pos_localapi_t *s);
static void client_queue(pos_localapi_client_t *c, bool front);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void held_free(lapi_held_t *h);

/* ---- memory accounting -------------------------------------------------- */

static size_t client_memory(const pos_localapi_client_t *c)
{
    return sizeof(*c) + pos_resp_memory(&c->parser) + c->out.cap + c->slot_mem + c->inflight +
           c->inflight_reqs * sizeof(lapi_write_t) +
           (c->auth_held != NULL ? c->auth_held->size : 0);
}

static void client_account(pos_localapi_client_t *c)
{
    pos_localapi_t *s = c->server;
    size_t now = c->closing ? 0 : client_memory(c);

    s->st.memory = s->st.memory - c->mem_seen + now;
    c->mem_seen = now;
    if (s->st.memory > s->st.memory_peak) {
        s->st.memory_peak = s->st.memory;
    }
}

/* Reply bytes the client has not read and that are not held behind a
 * reply still pending: in the output, or written and not taken yet. */
static size_t client_unread(const pos_localapi_client_t *c)
{
    return c->queued - c->held;
}

/*
 * True while the client's commands must wait for its replies: it has
 * max_inflight of them outstanding, or half the output bound of them it
 * has not read (held behind a pending one: they all become readable at
 * once when it completes; or written and not read). Its socket is not
 * read meanwhile, so a client that writes faster than it reads is slowed
 * down to its own pace, never over the bound for that.
 */
static bool client_paused(const pos_localapi_client_t *c)
{
    const pos_localapi_t *s = c->server;
    size_t half = s->opt.max_output / 2;

    return c->nslots >= s->opt.max_inflight || c->held >= half || client_unread(c) >= half;
}

/* True while the client is paused on replies it does not read (not on
 * ones held for the disk, which it cannot read yet). */
static bool client_stalling(const pos_localapi_client_t *c)
{
    return !c->closing && c->paused && client_unread(c) >= c->server->opt.max_output / 2;
}

void pos_localapi_get_stats(const pos_localapi_t *s, pos_localapi_stats_t *st)
{
    *st = s->st;
}

static void idle_timer_cb(uv_timer_t *t);

/* Sweeps for idle clients every tenth of the timeout (10 ms to 5 s): a
 * client is closed at most that late. */
static void idle_timer_arm(pos_localapi_t *s)
{
    uint64_t every = s->opt.admit.idle_timeout_ms / 10u;

    every = every < 10 ? 10 : every > 5000 ? 5000 : every;
    uv_timer_start(&s->idle_timer, idle_timer_cb, every, every);
}

static void stall_timer_cb(uv_timer_t *t);

/* Checks the clients paused on replies they do not read every quarter of
 * the stall bound, only while there are some (client_process). */
static void stall_watch(pos_localapi_t *s)
{
    if (!uv_is_active((uv_handle_t *)&s->stall_timer)) {
        uint64_t every = s->opt.admit.stall_ms / 4u;
        every = every < 10 ? 10 : every;
        uv_timer_start(&s->stall_timer, stall_timer_cb, every, every);
    }
}

/* The admission's zero fields get their defaults. */
static void admission_defaults(pos_localapi_admission_t *a)
{
    if (a->turn_budget == 0) {
        a->turn_budget = POS_LOCALAPI_TURN_BUDGET;
    }
    if (a->turn_slice_us == 0) {
        a->turn_slice_us = POS_LOCALAPI_TURN_SLICE_US;
    }
    if (a->stall_ms == 0) {
        a->stall_ms = POS_LOCALAPI_STALL_MS;
    }
}

void pos_localapi_set_admission(pos_localapi_t *s, uint32_t max_clients,
                                const pos_localapi_admission_t *admit)
{
    uint64_t now = uv_now(s->loop);
    uint32_t old_idle = s->opt.admit.idle_timeout_ms;
    uint32_t old_stall = s->opt.admit.stall_ms;

    s->opt.max_clients = max_clients != 0 ? max_clients : POS_LOCALAPI_DEFAULT_CLIENTS;
    s->opt.admit = *admit;
    admission_defaults(&s->opt.admit);
    /* Connected clients get the new budget too, full. */
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        if (s->opt.admit.client_rate != 0) {
            pos_bucket_init(&c->bucket, s->opt.admit.client_rate, s->opt.admit.client_burst, now);
        }
    }
    /* The idle sweep follows the new timeout (restarted by the next
     * connection when none is connected now). */
    if (s->listening && old_idle != s->opt.admit.idle_timeout_ms) {
        uv_timer_stop(&s->idle_timer);
        if (s->opt.admit.idle_timeout_ms != 0 && s->live > 0) {
            idle_timer_arm(s);
        }
    }
    /* The stall check too, when it runs (clients are paused now). */
    if (old_stall != s->opt.admit.stall_ms && uv_is_active((uv_handle_t *)&s->stall_timer)) {
        uv_timer_stop(&s->stall_timer);
        stall_watch(s);
    }
}

void pos_localapi_add_commands(pos_localapi_t *s, const pos_localapi_command_t *cmds, size_t n,
                               void *owner)
{
    s->extra = cmds;
    s->nextra = n;
    s->extra_owner = owner;
}

int pos_localapi_reply_peer_uid(const pos_localapi_reply_t *r, uid_t *uid)
{
    if (r->client == NULL || r->client->uid == (uid_t)-1) {
        return -ENOTCONN;
    }
    *uid = r->client->uid;
    return 0;
}

/* ---- buffers and reply encoding ----------------------------------------- */

static int buf_append(lapi_buf_t *b, const char *data, size_t len)
{
    if (len > b->cap - b->len) {
        size_t ncap = b->cap != 0 ? b->cap : 256;
        char *n;
        while (ncap - b->len < len) {
            ncap *= 2;
        }
        n = realloc(b->data, ncap);
        if (n == NULL) {
            return -ENOMEM;
        }
        b->data = n;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_free(lapi_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void reply_append(pos_localapi_reply_t *r, const char *data, size_t len)
{
    pos_localapi_client_t *c = r->client;
    int rc;

    assert(r->state != SLOT_DONE);
    r->wrote = true;
    if (c == NULL || c->closing) {
        return;
    }
    if (r == c->head) {
        rc = buf_append(&c->out, data, len); /* next in line: straight out */
    } else {
        size_t before = r->buf.cap;
        rc = buf_append(&r->buf, data, len);
        c->slot_mem += r->buf.cap - before;
        c->held += rc == 0 ? len : 0;
    }
    if (rc != 0) {
        POS_WARN("localapi", "client %llu: out of memory for a reply, disconnecting",
                 (unsigned long long)c->id);
        client_close(c);
        return;
    }
    c->queued += len;
    if (r == c->head && c->out.len >= LAPI_WRITE_CHUNK) {
        client_start_write(c);
    }
    client_account(c);
    if (c->queued > c->server->opt.max_output) {
        /* Over the bound although its commands pause at half of it: one
         * reply larger than the half left, or replies of commands already
         * taken that completed behind a pending one (held: they count as
         * much, they are all readable at once when it completes). Cut it
         * off before it costs everybody else memory. */
        c->server->st.output_drops++;
        POS_WARN("localapi",
                 "client %llu: %zu bytes of replies unread (%zu of them held), "
                 "disconnecting",
                 (unsigned long long)c->id, c->queued, c->held);
        client_close(c);
    }
}

/* Appends text with CR and LF replaced, so a line reply stays one line. */
static void reply_line(pos_localapi_reply_t *r, char kind, const char *text)
{
    size_t start = 0, i;

    reply_append(r, &kind, 1);
    for (i = 0; text[i] != '\0'; i++) {
        if (text[i] == '\r' || text[i] == '\n') {
            reply_append(r, text + start, i - start);
            reply_append(r, " ", 1);
            start = i + 1;
        }
    }
    reply_append(r, text + start, i - start);
    reply_append(r, "\r\n", 2);
}

void pos_localapi_reply_bulk(pos_localapi_reply_t *r, const char *data, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "$%zu\r\n", len);

    reply_append(r, head, (size_t)n);
    reply_append(r, data, len);
    reply_append(r, "\r\n", 2);
}

void pos_localapi_reply_nil(pos_localapi_reply_t *r)
{
    reply_append(r, "$-1\r\n", 5);
}

void pos_localapi_reply_int(pos_localapi_reply_t *r, long long v)
{
    char line[32];
    int n = snprintf(line, sizeof(line), ":%lld\r\n", v);

    reply_append(r, line, (size_t)n);
}

void pos_localapi_reply_status(pos_localapi_reply_t *r, const char *text)
{
    reply_line(r, '+', text);
}

void pos_localapi_reply_error(pos_localapi_reply_t *r, const char *text)
{
    reply_line(r, '-', text);
}

void pos_localapi_reply_array_begin(pos_localapi_reply_t *r, long long n)
{
    char line[32];
    int len = snprintf(line, sizeof(line), "*%lld\r\n", n < 0 ? -1LL : n);

    reply_append(r, line, (size_t)len);
}

bool pos_localapi_reply_alive(const pos_localapi_reply_t *r)
{
    return r->client != NULL && !r->client->closing;
}

/* ---- reply queue -------------------------------------------------------- */

static pos_localapi_reply_t *slot_new(pos_localapi_client_t *c)
{
    pos_localapi_reply_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->client = c;
    r->server = c->server;
    r->state = SLOT_DISPATCH;
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    c->nslots++;
    c->slot_mem += sizeof(*r);
    return r;
}

static void server_maybe_done(pos_localapi_t *s)
{
    if (!s->closing || s->open_handles != 0 || s->clients != NULL || s->orphans != 0) {
        return;
    }
    if (s->done != NULL) {
        s->done(s->done_arg);
    }
}

void pos_localapi_reply_done(pos_localapi_reply_t *r)
{
    pos_localapi_client_t *c = r->client;

    if (r->state == SLOT_DISPATCH) {
        r->done_called = true; /* the dispatcher finishes it */
        return;
    }
    assert(r->state == SLOT_PENDING);
    if (c == NULL) {
        pos_localapi_t *s = r->server;
        buf_free(&r->buf);
        free(r);
        s->orphans--;
        server_maybe_done(s);
        return;
    }
    if (!r->wrote) {
        pos_localapi_reply_error(r, "ERR internal error: no reply");
    }
    r->state = SLOT_DONE;
    client_flush(c);
    /* New commands run in the queued clients' turn, never inside the
     * owner's own callback that completed this reply. */
    client_queue(c, false);
    client_account(c);
}

static void write_cb(uv_write_t *req, int status)
{
    lapi_write_t *w = (lapi_write_t *)req;
    pos_localapi_client_t *c = req->data;

    c->queued -= w->len;
    c->inflight -= w->len;
    c->inflight_reqs--;
    free(w->data);
    free(w);
    if (status != 0) {
        if (status != UV_ECANCELED) {
            POS_DEBUG("localapi", "client %llu: write failed: %s", (unsigned long long)c->id,
                      uv_strerror(status));
            client_close(c);
        }
        return;
    }
    c->drained_at = uv_now(c->server->loop);
    client_flush(c);
    if (c->paused && !c->closing && !client_paused(c)) {
        /* Its replies moved: its commands go on, in the queued clients'
         * turn. */
        c->paused = false;
        client_queue(c, false);
    }
    client_account(c);
}

static void client_start_write(pos_localapi_client_t *c)
{
    lapi_write_t *w;
    uv_buf_t b;
    int rc;

    if (c->out.len == 0 || c->closing) {
        return;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        client_close(c);
        return;
    }
    /* The write takes the buffer as it is; later replies gather in a fresh
     * one. libuv keeps the writes in order. */
    w->data = c->out.data;
    w->len = c->out.len;
    if (c->out.cap - c->out.len > 4096) {
        /* Held until the peer reads it: give back the doubling slack. */
        char *shrunk = realloc(w->data, w->len);
        if (shrunk != NULL) {
            w->data = shrunk;
        }
    }
    c->out.data = NULL;
    c->out.len = c->out.cap = 0;
    w->req.data = c;
    b = uv_buf_init(w->data, (unsigned int)w->len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
    if (rc != 0) {
        c->queued -= w->len;
        free(w->data);
        free(w);
        client_close(c);
        return;
    }
    c->inflight += w->len;
    c->inflight_reqs++;
}

/* Releases the complete replies at the head of the queue; their bytes are
 * in the output already. */
static void client_pop_done(pos_localapi_client_t *c)
{
    if (c->head != NULL && c->head->state == SLOT_DONE) {
        /* Idle from its last answer on, not from its command: a reply that
         * took longer than the idle timeout must leave it time to close. */
        c->last_active = uv_now(c->server->loop);
    }
    while (c->head != NULL && c->head->state == SLOT_DONE) {
        pos_localapi_reply_t *r = c->head;
        c->head = r->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->nslots--;
        c->slot_mem -= sizeof(*r) + r->buf.cap;
        buf_free(&r->buf);
        free(r);
        r = c->head;
        if (r != NULL && r->buf.len != 0) {
            /* The new head's early bytes go first; it now writes straight
             * to the output. */
            if (buf_append(&c->out, r->buf.data, r->buf.len) != 0) {
                client_close(c);
                return;
            }
            c->held -= r->buf.len;
            c->slot_mem -= r->buf.cap;
            buf_free(&r->buf);
        }
    }
}

static void client_flush(pos_localapi_client_t *c)
{
    client_pop_done(c);
    client_start_write(c);
    if (c->quitting && c->head == NULL && c->out.len == 0 && c->inflight_reqs == 0) {
        client_close(c);
    }
}

/* ---- commands ----------------------------------------------------------- */

/* Copies a client-supplied name for an error message: printable ASCII
 * only, no quotes, at most LAPI_NAME_MAX bytes. */
static void sanitize_name(char *out, size_t outlen, const char *name, size_t len, bool lower)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 4 < outlen && i < LAPI_NAME_MAX; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch > 0x7e || ch == '\'') {
            ch = '?';
        } else if (lower && ch >= 'A' && ch <= 'Z') {
            ch = (unsigned char)(ch - 'A' + 'a');
        }
        out[n++] = (char)ch;
    }
    if (len > LAPI_NAME_MAX) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static int builtin_ping(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                        const size_t *lens)
{
    (void)owner;
    if (argc == 2) {
        pos_localapi_reply_bulk(r, argv[1], lens[1]);
    } else {
        pos_localapi_reply_status(r, "PONG");
    }
    return 0;
}

static int builtin_quit(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                        const size_t *lens)
{
    (void)owner;
    (void)argc;
    (void)argv;
    (void)lens;
    pos_localapi_reply_status(r, "OK");
    if (r->client != NULL) {
        r->client->quitting = true;
    }
    return 0;
}

#define LAPI_BUILTINS 9 /* entries of builtins[], below */
static const pos_localapi_command_t builtins[LAPI_BUILTINS];

/* A table's entry that an earlier table does not shadow. */
static bool command_shadowed(const pos_localapi_command_t *const *tables, const size_t *sizes,
                             size_t t, const char *name)
{
    for (size_t u = 0; u < t; u++) {
        for (size_t i = 0; i < sizes[u]; i++) {
            if (strcasecmp(tables[u][i].name, name) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* Counts the commands served (each name once), answering each name in
 * lower case on r unless r is NULL. */
static size_t command_list(const pos_localapi_t *s, pos_localapi_reply_t *r)
{
    const pos_localapi_command_t *tables[3] = {s->opt.commands, s->extra, builtins};
    const size_t sizes[3] = {s->opt.commands != NULL ? s->opt.ncommands : 0,
                             s->extra != NULL ? s->nextra : 0,
                             sizeof(builtins) / sizeof(builtins[0])};
    size_t n = 0;

    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
            char name[LAPI_NAME_MAX + 1];
            size_t len = 0;
            if (command_shadowed(tables, sizes, t, tables[t][i].name)) {
                continue;
            }
            n++;
            if (r == NULL) {
                continue;
            }
            for (const char *p = tables[t][i].name; *p != '\0' && len < LAPI_NAME_MAX; p++) {
                name[len++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            }
            pos_localapi_reply_bulk(r, name, len);
        }
    }
    return n;
}

/* redis-cli 7 asks "COMMAND DOCS" when it starts interactively, for its
 * hints; an empty answer makes it fall back to its built-in help. */
static int builtin_command(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                           const size_t *lens)
{
    (void)owner;
    if (argc == 2 && lens[1] == 5 && strncasecmp(argv[1], "COUNT", 5) == 0) {
        pos_localapi_reply_int(r, (long long)command_list(r->server, NULL));
    } else if (argc == 2 && lens[1] == 4 && strncasecmp(argv[1], "LIST", 4) == 0) {
        /* What this agent serves, from its tables: the README's list is
         * checked against it (tests/package/test_readme.sh). */
        pos_localapi_reply_array_begin(r, (long long)command_list(r->server, NULL));
        command_list(r->server, r);
    } else {
        pos_localapi_reply_array_begin(r, 0);
    }
    return 0;
}

/* ---- connecting like to any Redis -------------------------------------- */

static bool arg_is(const char *arg, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

/* Whether "password" (len bytes) is the configured one: digests under a
 * random key compared in constant time, so neither its bytes nor its
 * length show in the time taken. */
static bool auth_check(const pos_localapi_t *s, const char *password, size_t len)
{
    char hex[POS_SIGN_HEX_LEN + 1];
    bool ok;

    if (pos_sign_hmac_hex(&s->auth_key, password, len, hex) != 0) {
        return false;
    }
    ok = pos_sign_ct_equal(hex, s->auth_digest, POS_SIGN_HEX_LEN);
    pos_mem_zero(hex, sizeof(hex));
    return ok;
}

/* AUTH or HELLO ... AUTH: user (NULL: none given) and password. Answers
 * nothing on success (the caller does); an error and true-for-failed
 * otherwise. Without a password set, anything is accepted. */
static bool auth_try(pos_localapi_reply_t *r, const char *user, size_t ulen, const char *pw,
                     size_t pwlen)
{
    pos_localapi_client_t *c = r->client;
    pos_localapi_t *s = r->server;

    if (!s->auth_required) {
        if (c != NULL) {
            c->authed = true;
        }
        return true;
    }
    /* Only the default user: the agent has no others. */
    bool ok = (user == NULL || arg_is(user, ulen, "default")) && auth_check(s, pw, pwlen);
    if (c == NULL) {
        return ok;
    }
    if (ok) {
        c->authed = true;
        pos_authdelay_ok(&s->auth_delay, c->uid);
        return true;
    }
    s->st.auth_failures++;
    uint64_t now = uv_now(s->loop);
    /* The peer's next password, on whatever connection, waits for this
     * (client_process holds it): reconnecting does not make guessing
     * faster. */
    uint32_t wait = pos_authdelay_fail(&s->auth_delay, c->uid, now);
    /* Never the password; a guessing client must not flood the log. */
    if (s->auth_log_ms == 0 || now - s->auth_log_ms >= LAPI_LOG_EVERY_MS) {
        POS_WARN("localapi",
                 "client %llu (uid %d, pid %d): wrong password (%llu since the last "
                 "such line); the next password of uid %d waits %u ms",
                 (unsigned long long)c->id, (int)c->uid, (int)c->pid,
                 (unsigned long long)(s->st.auth_failures - s->auth_logged), (int)c->uid,
                 (unsigned)wait);
        s->auth_log_ms = now;
        s->auth_logged = s->st.auth_failures;
    }
    pos_localapi_reply_error(r, "WRONGPASS invalid username-password pair or user is disabled.");
    if (++c->auth_fails >= POS_LOCALAPI_AUTH_TRIES) {
        c->quitting = true; /* disconnected once the reply is out */
    }
    return false;
}

static int builtin_auth(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                        const size_t *lens)
{
    (void)owner;
    if (argc == 2 ? auth_try(r, NULL, 0, argv[1], lens[1])
                  : auth_try(r, argv[1], lens[1], argv[2], lens[2])) {
        pos_localapi_reply_status(r, "OK");
    }
    return 0;
}

/* A name as Redis allows it: printable ASCII without spaces. */
static bool name_ok(const char *name, size_t len)
{
    if (len > POS_LOCALAPI_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] > '~') {
            return false;
        }
    }
    return true;
}

static void client_set_name(pos_localapi_reply_t *r, const char *name, size_t len)
{
    if (r->client != NULL) {
        memcpy(r->client->name, name, len);
        r->client->name[len] = '\0';
    }
}

/* HELLO [protover [AUTH user password] [SETNAME name]]: RESP2 only; the
 * answer is Redis's map, as the flat array RESP2 gives it. */
static int builtin_hello(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens)
{
    int setname = 0;

    (void)owner;
    if (argc >= 2) {
        char *end;
        errno = 0;
        long v = strtol(argv[1], &end, 10);
        if (errno != 0 || end == argv[1] || *end != '\0' || v < 1 || v > 1000) {
            pos_localapi_reply_error(r, "ERR Protocol version is not an integer or out of range");
            return 0;
        }
        if (v != 2) {
            pos_localapi_reply_error(r, "NOPROTO sorry, this protocol version is not supported.");
            return 0;
        }
    }
    for (int i = 2; i < argc; i++) {
        if (arg_is(argv[i], lens[i], "AUTH") && i + 2 < argc) {
            if (!auth_try(r, argv[i + 1], lens[i + 1], argv[i + 2], lens[i + 2])) {
                return 0;
            }
            i += 2;
        } else if (arg_is(argv[i], lens[i], "SETNAME") && i + 1 < argc) {
            setname = ++i;
        } else {
            char opt[LAPI_NAME_MAX + 8], msg[LAPI_NAME_MAX + 64];
            sanitize_name(opt, sizeof(opt), argv[i], lens[i], false);
            snprintf(msg, sizeof(msg), "ERR Syntax error in HELLO option '%s'", opt);
            pos_localapi_reply_error(r, msg);
            return 0;
        }
    }
    if (r->server->auth_required && (r->client == NULL || !r->client->authed)) {
        pos_localapi_reply_error(r, "NOAUTH HELLO must be called with the client already "
                                    "authenticated, otherwise the HELLO <proto> AUTH <user> "
                                    "<pass> option can be used to authenticate the client and "
                                    "select the RESP protocol version at the same time");
        return 0;
    }
    if (setname != 0) {
        if (!name_ok(argv[setname], lens[setname])) {
            pos_localapi_reply_error(r, "ERR Client names cannot contain spaces, newlines or "
                                        "special characters.");
            return 0;
        }
        client_set_name(r, argv[setname], lens[setname]);
    }
    /* Field, then its text; NULL text: the integer below. */
    static const char *const map[][2] = {{"server", "redis"},    {"version", "7.0.0"},
                                         {"proto", NULL},        {"id", NULL},
                                         {"mode", "standalone"}, {"role", "master"}};
    pos_localapi_reply_array_begin(r, 2 * (long long)(sizeof(map) / sizeof(map[0])) + 2);
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        pos_localapi_reply_bulk(r, map[i][0], strlen(map[i][0]));
        if (map[i][1] != NULL) {
            pos_localapi_reply_bulk(r, map[i][1], strlen(map[i][1]));
        } else {
            pos_localapi_reply_int(r, i == 2              ? 2
                                      : r->client != NULL ? (long long)r->client->id
                                                          : 0);
        }
    }
    pos_localapi_reply_bulk(r, "modules", 7);
    pos_localapi_reply_array_begin(r, 0);
    return 0;
}

/* SELECT 0: the agent has one keyspace. */
static int builtin_select(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens)
{
    char *end;

    (void)owner;
    (void)argc;
    (void)lens;
    errno = 0;
    long long db = strtoll(argv[1], &end, 10);
    if (errno != 0 || end == argv[1] || *end != '\0' || (size_t)(end - argv[1]) != lens[1]) {
        pos_localapi_reply_error(r, "ERR value is not an integer or out of range");
    } else if (db != 0) {
        pos_localapi_reply_error(r, "ERR DB index is out of range");
    } else {
        pos_localapi_reply_status(r, "OK");
    }
    return 0;
}

/* CLIENT SETNAME name | GETNAME | ID | SETINFO LIB-NAME|LIB-VER value. */
static int builtin_client(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens)
{
    pos_localapi_client_t *c = r->client;
    char sub[LAPI_NAME_MAX + 8], msg[LAPI_NAME_MAX + 96];

    (void)owner;
    if (arg_is(argv[1], lens[1], "SETNAME") && argc == 3) {
        if (!name_ok(argv[2], lens[2])) {
            pos_localapi_reply_error(r, "ERR Client names cannot contain spaces, newlines or "
                                        "special characters.");
        } else {
            client_set_name(r, argv[2], lens[2]);
            pos_localapi_reply_status(r, "OK");
        }
    } else if (arg_is(argv[1], lens[1], "GETNAME") && argc == 2) {
        if (c == NULL || c->name[0] == '\0') {
            pos_localapi_reply_nil(r);
        } else {
            pos_localapi_reply_bulk(r, c->name, strlen(c->name));
        }
    } else if (arg_is(argv[1], lens[1], "ID") && argc == 2) {
        pos_localapi_reply_int(r, c != NULL ? (long long)c->id : 0);
    } else if (arg_is(argv[1], lens[1], "SETINFO") && argc == 4) {
        /* What redis-py and ioredis send about themselves: nothing to keep. */
        if (!arg_is(argv[2], lens[2], "LIB-NAME") && !arg_is(argv[2], lens[2], "LIB-VER")) {
            sanitize_name(sub, sizeof(sub), argv[2], lens[2], false);
            snprintf(msg, sizeof(msg), "ERR Unrecognized option '%s'", sub);
            pos_localapi_reply_error(r, msg);
        } else if (!name_ok(argv[3], lens[3])) {
            pos_localapi_reply_error(r, "ERR LIB-NAME or LIB-VER cannot contain spaces, "
                                        "newlines or special characters.");
        } else {
            pos_localapi_reply_status(r, "OK");
        }
    } else {
        sanitize_name(sub, sizeof(sub), argv[1], lens[1], false);
        snprintf(msg, sizeof(msg),
                 "ERR unknown subcommand or wrong number of arguments for '%s'. Try CLIENT HELP.",
                 sub);
        pos_localapi_reply_error(r, msg);
    }
    return 0;
}

static int builtin_echo(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                        const size_t *lens)
{
    (void)owner;
    (void)argc;
    pos_localapi_reply_bulk(r, argv[1], lens[1]);
    return 0;
}

/* RESET: the connection as it was at connect (name gone, and no longer
 * authenticated when a password is set). */
static int builtin_reset(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens)
{
    pos_localapi_client_t *c = r->client;

    (void)owner;
    (void)argc;
    (void)argv;
    (void)lens;
    if (c != NULL) {
        c->name[0] = '\0';
        c->authed = !r->server->auth_required;
    }
    pos_localapi_reply_status(r, "RESET");
    return 0;
}

static const pos_localapi_command_t builtins[LAPI_BUILTINS] = {
    {"PING", builtin_ping, 1, 2},        {"QUIT", builtin_quit, 1, -1},
    {"COMMAND", builtin_command, 1, -1}, {"AUTH", builtin_auth, 2, 3},
    {"HELLO", builtin_hello, 1, 7},      {"SELECT", builtin_select, 2, 2},
    {"CLIENT", builtin_client, 2, 4},    {"ECHO", builtin_echo, 2, 2},
    {"RESET", builtin_reset, 1, 1},
};

/* What a client may send before it has authenticated. */
static bool noauth_allowed(const pos_localapi_command_t *def)
{
    return def != NULL && (def->fn == builtin_auth || def->fn == builtin_hello ||
                           def->fn == builtin_quit || def->fn == builtin_reset);
}

static const pos_localapi_command_t *lookup(const pos_localapi_command_t *table, size_t n,
                                            const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(table[i].name) == len && strncasecmp(table[i].name, name, len) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

/* The command named name (len bytes): the owner's table, then the
 * operator's, then the built-ins; *owner gets the first argument of its
 * handler. NULL when there is none. */
static const pos_localapi_command_t *command_find(const pos_localapi_t *s, const char *name,
                                                  size_t len, void **owner)
{
    const pos_localapi_command_t *def = lookup(s->opt.commands, s->opt.ncommands, name, len);

    *owner = s->opt.owner;
    if (def == NULL && s->extra != NULL && (def = lookup(s->extra, s->nextra, name, len)) != NULL) {
        *owner = s->extra_owner;
    }
    if (def == NULL) {
        def = lookup(builtins, sizeof(builtins) / sizeof(builtins[0]), name, len);
    }
    return def;
}

/* Whether cmd checks the password: AUTH, or HELLO with an AUTH option. */
static bool auth_attempt(const pos_localapi_t *s, const pos_resp_cmd_t *cmd)
{
    void *owner;
    const pos_localapi_command_t *def;

    if (!s->auth_required) {
        return false;
    }
    def = command_find(s, cmd->argv[0], cmd->lens[0], &owner);
    if (def != NULL && def->fn == builtin_hello) {
        for (int i = 2; i < cmd->argc; i++) {
            if (arg_is(cmd->argv[i], cmd->lens[i], "AUTH")) {
                return true;
            }
        }
    }
    return def != NULL && def->fn == builtin_auth;
}

/* Takes one command from the client's budget. Returns 0, or the ms until
 * it may send another (it is answered -BUSY then). */
static uint32_t client_over_budget(pos_localapi_client_t *c)
{
    pos_localapi_t *s = c->server;
    uint64_t now = uv_now(s->loop);
    uint32_t wait;

    if (s->opt.admit.client_rate == 0) {
        return 0;
    }
    wait = pos_bucket_take(&c->bucket, now);
    if (wait == 0) {
        return 0;
    }
    s->st.busy++;
    c->busy_count++;
    /* Named once, then at most once a minute with what it was refused
     * since: a runaway client must not flood the log as well. */
    if (c->busy_log_ms == 0 || now - c->busy_log_ms >= LAPI_LOG_EVERY_MS) {
        POS_WARN("localapi",
                 "client %llu (uid %d, pid %d) over its budget (%u commands/s, burst %u): "
                 "%llu command(s) answered BUSY",
                 (unsigned long long)c->id, (int)c->uid, (int)c->pid, s->opt.admit.client_rate,
                 c->bucket.burst, (unsigned long long)(c->busy_count - c->busy_logged));
        c->busy_log_ms = now;
        c->busy_logged = c->busy_count;
    }
    return wait;
}

static void client_dispatch(pos_localapi_client_t *c, const pos_resp_cmd_t *cmd)
{
    pos_localapi_t *s = c->server;
    const pos_localapi_command_t *def;
    pos_localapi_reply_t *r = slot_new(c);
    char name[LAPI_NAME_MAX + 8], msg[LAPI_NAME_MAX + 96];
    uint32_t wait;
    int rc = 0;

    if (r == NULL) {
        client_close(c);
        return;
    }
    c->last_active = uv_now(s->loop);
    void *owner;
    def = command_find(s, cmd->argv[0], cmd->lens[0], &owner);
    /* Every command costs one token but QUIT: a client told to slow down
     * may always leave. */
    if ((def == NULL || def->fn != builtin_quit) && (wait = client_over_budget(c)) != 0) {
        snprintf(msg, sizeof(msg), "BUSY posagent: over the local request budget, retry in %u ms",
                 wait);
        pos_localapi_reply_error(r, msg);
        r->state = SLOT_DONE;
        return;
    }
    s->st.commands++;
    if (!c->authed && !noauth_allowed(def)) {
        /* Unknown commands too: nothing is told before the password. */
        s->st.noauth++;
        pos_localapi_reply_error(r, "NOAUTH Authentication required.");
    } else if (def == NULL) {
        sanitize_name(name, sizeof(name), cmd->argv[0], cmd->lens[0], false);
        snprintf(msg, sizeof(msg), "ERR unknown command '%s'", name);
        pos_localapi_reply_error(r, msg);
    } else if (cmd->argc < def->min_argc || (def->max_argc >= 0 && cmd->argc > def->max_argc)) {
        sanitize_name(name, sizeof(name), cmd->argv[0], cmd->lens[0], true);
        snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command", name);
        pos_localapi_reply_error(r, msg);
    } else {
        rc = def->fn(owner, r, cmd->argc, cmd->argv, cmd->lens);
    }
    if (rc == POS_LOCALAPI_PENDING && !r->done_called) {
        r->state = SLOT_PENDING;
        return;
    }
    if (rc < 0 && !r->wrote) {
        snprintf(msg, sizeof(msg), "ERR %s", strerror(-rc));
        pos_localapi_reply_error(r, msg);
    } else if (!r->wrote) {
        pos_localapi_reply_error(r, "ERR internal error: no reply");
    }
    r->state = SLOT_DONE;
}

/* Holds cmd back (its bytes copied: the parser's are gone at the next
 * command) until its peer's wait is over. Returns 0 or -ENOMEM. */
static int held_take(pos_localapi_client_t *c, const pos_resp_cmd_t *cmd)
{
    size_t argc = (size_t)cmd->argc, size = sizeof(lapi_held_t);
    lapi_held_t *h;

    for (size_t i = 0; i < argc; i++) {
        size += sizeof(char *) + sizeof(size_t) + cmd->lens[i] + 1;
    }
    if ((h = malloc(size)) == NULL) {
        return -ENOMEM;
    }
    const char **argv = (const char **)(h + 1);
    size_t *lens = (size_t *)(argv + argc);
    char *p = (char *)(lens + argc);
    for (size_t i = 0; i < argc; i++) {
        argv[i] = p;
        lens[i] = cmd->lens[i];
        memcpy(p, cmd->argv[i], lens[i]);
        p[lens[i]] = '\0';
        p += lens[i] + 1;
    }
    h->cmd.argc = cmd->argc;
    h->cmd.argv = argv;
    h->cmd.lens = lens;
    h->size = size;
    c->auth_held = h;
    return 0;
}

static void held_free(lapi_held_t *h)
{
    if (h != NULL) {
        pos_mem_zero(h, h->size);
        free(h);
    }
}

/* What the client's peer must still wait before its next password, ms. */
static uint64_t client_auth_wait(const pos_localapi_client_t *c)
{
    const pos_localapi_t *s = c->server;

    return pos_authdelay_wait(&s->auth_delay, c->uid, uv_now(s->loop));
}

static void auth_timer_cb(uv_timer_t *t);

/* The held AUTHs are looked at again in wait_ms, or sooner when the timer
 * is set sooner already. One timer for all: a client closed while its AUTH
 * waits leaves nothing armed behind. */
static void auth_watch(pos_localapi_t *s, uint64_t wait_ms)
{
    uint64_t due = uv_now(s->loop) + wait_ms;

    if (s->closing) {
        return;
    }
    if (!uv_is_active((uv_handle_t *)&s->auth_timer) || due < s->auth_due) {
        s->auth_due = due;
        uv_timer_start(&s->auth_timer, auth_timer_cb, wait_ms, 0);
    }
}

/* Clients whose peer's wait is over go in the queued clients' turn, their
 * held AUTH first. Of several of one peer, the first checked sets the
 * wait again when it is wrong: the others stay held, so a peer gets one
 * guess per wait however many connections it holds. */
static void auth_timer_cb(uv_timer_t *t)
{
    pos_localapi_t *s = t->data;

    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        if (c->auth_held == NULL || c->closing) {
            continue;
        }
        uint64_t wait = client_auth_wait(c);
        if (wait == 0) {
            client_queue(c, false);
        } else {
            auth_watch(s, wait);
        }
    }
}

static void client_update_reading(pos_localapi_client_t *c)
{
    /* A queued client has commands left in its parser: more input waits in
     * the socket until they have run, so the parser never fills up. One
     * with a held AUTH is not read either: what it sends after waits. */
    bool want = !c->closing && !c->quitting && !c->eof && !c->ready && c->auth_held == NULL &&
                !client_paused(c);

    if (want && !c->reading) {
        c->reading = true;
        if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) != 0) {
            c->reading = false;
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = false;
    }
}

/* Answers "-ERR <why>" after the replies already queued, then closes. */
static void client_protocol_error(pos_localapi_client_t *c, const char *why)
{
    pos_localapi_reply_t *r;
    char msg[160];

    c->server->st.protocol_errors++;
    POS_WARN("localapi", "client %llu: %s; disconnecting", (unsigned long long)c->id, why);
    c->quitting = true;
    r = slot_new(c);
    if (r == NULL) {
        client_close(c);
        return;
    }
    snprintf(msg, sizeof(msg), "ERR %s", why);
    pos_localapi_reply_error(r, msg);
    r->state = SLOT_DONE;
}

/*
 * Runs the client's complete commands: at most "allow", and no more than
 * the loop turn has left. With commands possibly left over, the client is
 * queued for the next round (client_queue).
 */
static void client_process(pos_localapi_client_t *c, uint32_t allow)
{
    pos_localapi_t *s = c->server;
    pos_resp_cmd_t cmd;
    int rc = 1; /* 0 below means: every complete command has been taken */
    bool more = false, cut = false;
    uint32_t ran = 0;

    if (c->in_process) {
        return; /* the outer call carries on */
    }
    c->in_process = true;
    bool was_stalling = client_stalling(c);
    c->paused = false;
    while (!c->closing && !c->quitting) {
        if (client_paused(c)) {
            client_pop_done(c);
            if (client_paused(c)) {
                /* Queued again when a reply completes or a write is done;
                 * a stall on unread replies is timed from now on. */
                c->paused = true;
                if (client_stalling(c) && !was_stalling) {
                    s->st.output_pauses++;
                    c->drained_at = uv_now(s->loop);
                    c->wq_seen = uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
                    stall_watch(s);
                }
                break;
            }
        }
        if (allow == 0 || turn_spent(s)) {
            more = true;
            cut = allow != 0 && ran > 0; /* its round had begun */
            break;
        }
        if (c->auth_held != NULL) {
            uint64_t wait = client_auth_wait(c);
            if (wait != 0) {
                /* auth_timer_cb queues it again; nothing after it runs
                 * meanwhile, so its replies stay in order. */
                auth_watch(s, wait);
                rc = 1;
                break;
            }
            lapi_held_t *h = c->auth_held;
            c->auth_held = NULL; /* the client's no more, even if it closes during the command */
            allow--;
            ran++;
            s->turn_left--;
            c->turn_used++;
            client_dispatch(c, &h->cmd);
            held_free(h);
            client_pop_done(c);
            continue;
        }
        rc = pos_resp_next(&c->parser, &cmd);
        if (rc <= 0) {
            break;
        }
        /* Cheapest test first: most peers never wait. */
        if (s->auth_required && client_auth_wait(c) != 0 && auth_attempt(s, &cmd)) {
            /* Its peer got a password wrong moments ago: this one is
             * checked when the wait is over, whichever connection it
             * comes on (the wait is the peer's). */
            if (held_take(c, &cmd) != 0) {
                POS_WARN("localapi", "client %llu: out of memory for a command, disconnecting",
                         (unsigned long long)c->id);
                client_close(c);
                break;
            }
            s->st.auth_delayed++;
            continue;
        }
        allow--;
        ran++;
        s->turn_left--;
        c->turn_used++;
        client_dispatch(c, &cmd);
        /* A synchronous reply at the head leaves the queue now, so the next
         * one writes straight to the output instead of into its slot. */
        client_pop_done(c);
    }
    if (more && !c->closing && !c->quitting) {
        /* A round cut short by the turn's end is first in line in the
         * next turn, for what is left of it only: a client whose commands
         * each outlast the turn's time would otherwise stay first for good,
         * and the others would wait for its whole pipeline. Otherwise the
         * client waits behind the others. */
        c->round_left = cut ? allow : 0;
        client_queue(c, cut);
        if (s->turn_left == 0 && !s->turn_full) {
            s->turn_full = true;
            s->st.turns_full++;
        }
    }
    if (rc < 0 && !c->closing && !c->quitting) {
        client_protocol_error(c, pos_resp_error(&c->parser));
    }
    if (c->eof && rc == 0 && !c->closing) {
        c->quitting = true; /* the peer is done sending: answer, then close */
    }
    c->in_process = false;
    client_flush(c);
    client_update_reading(c);
    client_account(c);
}

/* ---- turns: the per-turn budget and the queue of clients ------------------ */

/* What the client may still run in this loop turn as its input arrives. */
static uint32_t client_turn_allow(pos_localapi_client_t *c)
{
    pos_localapi_t *s = c->server;

    if (c->turn != s->turn) {
        c->turn = s->turn;
        c->turn_used = 0;
    }
    return c->turn_used < LAPI_QUANTUM ? LAPI_QUANTUM - c->turn_used : 0;
}

static void keep_turning_cb(uv_idle_t *h)
{
    (void)h; /* only there so that poll does not wait while clients are queued */
}

/* Queues the client for a round of its commands after this turn's I/O: at
 * the back (round-robin), or at the front. A queued client is not read
 * meanwhile. */
static void client_queue(pos_localapi_client_t *c, bool front)
{
    pos_localapi_t *s = c->server;

    if (c->ready || c->closing || s->closing) {
        return;
    }
    c->ready = true;
    if (front) {
        c->ready_next = s->ready_head;
        s->ready_head = c;
        if (s->ready_tail == NULL) {
            s->ready_tail = c;
        }
    } else {
        c->ready_next = NULL;
        if (s->ready_tail != NULL) {
            s->ready_tail->ready_next = c;
        } else {
            s->ready_head = c;
        }
        s->ready_tail = c;
    }
    client_update_reading(c);
    uv_idle_start(&s->keep_turning, keep_turning_cb);
}

static void client_unqueue(pos_localapi_client_t *c)
{
    pos_localapi_t *s = c->server;
    pos_localapi_client_t **p = &s->ready_head, *prev = NULL;

    if (!c->ready) {
        return;
    }
    while (*p != c) {
        prev = *p;
        p = &(*p)->ready_next;
    }
    *p = c->ready_next;
    if (s->ready_tail == c) {
        s->ready_tail = prev;
    }
    c->ready = false;
}

static void turn_start_cb(uv_prepare_t *h)
{
    pos_localapi_t *s = h->data;

    s->turn++;
    s->turn_left = s->opt.admit.turn_budget;
    s->turn_t0 = 0;
    s->turn_full = false;
}

/* Whether this turn's budget is used up: its commands, or its time. The
 * time counts from the turn's first command (poll may have waited long
 * before it), so one command always runs. */
static bool turn_spent(pos_localapi_t *s)
{
    uint64_t now;

    if (s->turn_left == 0) {
        return true;
    }
    now = uv_hrtime();
    if (s->turn_t0 == 0) {
        s->turn_t0 = now;
    } else if (now - s->turn_t0 >= (uint64_t)s->opt.admit.turn_slice_us * 1000u) {
        s->turn_left = 0; /* spent: the cheap test above from now on */
        return true;
    }
    return false;
}

/* After this turn's I/O: the queued clients, LAPI_QUANTUM commands each in
 * turn, while the turn budget (commands and time) lasts. What is left waits for the next turn,
 * after the timers and everybody else's I/O. */
static void turn_end_cb(uv_check_t *h)
{
    pos_localapi_t *s = h->data;

    while (s->ready_head != NULL && !turn_spent(s)) {
        pos_localapi_client_t *c = s->ready_head;
        uint32_t allow = c->round_left != 0 ? c->round_left : LAPI_QUANTUM;
        c->round_left = 0;
        client_unqueue(c);
        client_process(c, allow);
    }
    if (s->ready_head == NULL) {
        uv_idle_stop(&s->keep_turning);
    }
}

/* ---- connections -------------------------------------------------------- */

static void client_closed_cb(uv_handle_t *h)
{
    pos_localapi_client_t *c = h->data;
    pos_localapi_t *s = c->server;
    pos_localapi_reply_t *r, *next;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->clients = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->st.clients--;
    s->st.memory -= c->mem_seen;
    for (r = c->head; r != NULL; r = next) {
        next = r->next;
        buf_free(&r->buf);
        if (r->state == SLOT_PENDING) {
            /* The owner still holds it: it is freed by reply_done. */
            r->client = NULL;
            r->next = NULL;
            s->orphans++;
        } else {
            free(r);
        }
    }
    pos_resp_free(&c->parser);
    buf_free(&c->out);
    held_free(c->auth_held);
    free(c);
    server_maybe_done(s);
}

static void client_close(pos_localapi_client_t *c)
{
    if (c->closing) {
        return;
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = false;
    }
    client_unqueue(c);
    c->closing = true;
    c->server->live--;
    uv_close((uv_handle_t *)&c->pipe, client_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pos_localapi_client_t *c = h->data;
    size_t room = pos_resp_room(&c->parser);

    (void)suggested;
    /* Never read more than the parser may hold: a zero-length buffer makes
     * libuv report UV_ENOBUFS, handled as "request too large". */
    if (room > POS_LOCALAPI_READ_SIZE) {
        room = POS_LOCALAPI_READ_SIZE;
    }
    *buf = uv_buf_init(c->server->rbuf, (unsigned int)room);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    pos_localapi_client_t *c = stream->data;

    if (nread == 0 || c->closing) {
        return;
    }
    if (nread == UV_EOF) {
        c->eof = true;
        client_process(c, client_turn_allow(c));
        return;
    }
    if (nread == UV_ENOBUFS) {
        /* The parser is full of one unfinished command. */
        client_protocol_error(c, "Protocol error: request too large");
        client_flush(c);
        client_update_reading(c);
        return;
    }
    if (nread < 0) {
        POS_DEBUG("localapi", "client %llu: read failed: %s", (unsigned long long)c->id,
                  uv_strerror((int)nread));
        client_close(c);
        return;
    }
    /* Cannot exceed the room offered in alloc_cb; an error is sticky and
     * reported by the parse below. */
    (void)pos_resp_feed(&c->parser, buf->base, (size_t)nread);
    client_process(c, client_turn_allow(c));
}

/* ---- idle clients and the room for new ones ----------------------------- */

/* True while the client has work in progress: replies it waits for or
 * commands not yet run, or bytes sent that the server has not read yet
 * (the loop itself was held up: the client is not the one idling). */
static bool client_working(const pos_localapi_client_t *c)
{
    uv_os_fd_t fd;
    int unread = 0;

    if (c->nslots > 0 || c->ready || c->auth_held != NULL) {
        return true;
    }
    return uv_fileno((const uv_handle_t *)&c->pipe, &fd) == 0 &&
           ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}

static void idle_timer_cb(uv_timer_t *t)
{
    pos_localapi_t *s = t->data;
    uint64_t now = uv_now(s->loop);

    if (s->live == 0) {
        uv_timer_stop(t); /* started again by the next connection */
        return;
    }
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        if (c->closing || now - c->last_active < s->opt.admit.idle_timeout_ms ||
            client_working(c)) {
            continue;
        }
        s->st.idle_closed++;
        POS_INFO("localapi", "client %llu (uid %d, pid %d): no command for %llu s, closed",
                 (unsigned long long)c->id, (int)c->uid, (int)c->pid,
                 (unsigned long long)((now - c->last_active) / 1000u));
        client_close(c);
    }
}

static void stall_timer_cb(uv_timer_t *t)
{
    pos_localapi_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    bool any = false;

    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        if (!client_stalling(c)) {
            continue;
        }
        /* Part of a write taken counts as reading: a write is done only
         * once all of it is. */
        size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
        if (wq != c->wq_seen) {
            c->wq_seen = wq;
            c->drained_at = now;
        }
        if (now - c->drained_at < s->opt.admit.stall_ms) {
            any = true;
            continue;
        }
        /* None of its replies were taken for stall_ms: it is not slow, it
         * has stopped reading. */
        s->st.output_drops++;
        POS_WARN("localapi",
                 "client %llu (uid %d, pid %d): %zu bytes of replies not read for %llu s, "
                 "disconnecting",
                 (unsigned long long)c->id, (int)c->uid, (int)c->pid, client_unread(c),
                 (unsigned long long)((now - c->drained_at) / 1000u));
        client_close(c);
    }
    if (!any) {
        uv_timer_stop(t); /* started again by the next client paused so */
    }
}

static int uid_cmp(const void *a, const void *b)
{
    uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * The connection to close so that "newc" may stay: among the peers (user
 * ids) holding the most connections, counting newc, the one that has gone
 * longest without a command, idle ones first. A peer that floods the
 * socket with connections therefore only ever recycles its own, while a
 * peer with fewer connections (the POS application) keeps them. NULL when
 * there is nobody else to close, or no memory to count with.
 */
static pos_localapi_client_t *pick_victim(pos_localapi_t *s, pos_localapi_client_t *newc)
{
    pos_localapi_client_t *best = NULL;
    uid_t *uids = malloc(sizeof(uid_t) * (s->live + 1u));
    uid_t *heavy;
    size_t n = 0, nheavy = 0, most = 0;
    bool best_working = true;

    if (uids == NULL) {
        return NULL;
    }
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        if (!c->closing && n <= s->live) {
            uids[n++] = c->uid;
        }
    }
    qsort(uids, n, sizeof(uids[0]), uid_cmp);
    /* The heaviest peers: compacted to the front of the same array. */
    heavy = uids;
    for (size_t i = 0, run; i < n; i += run) {
        for (run = 1; i + run < n && uids[i + run] == uids[i]; run++) {
        }
        if (run > most) {
            most = run;
            nheavy = 0;
        }
        if (run == most) {
            heavy[nheavy++] = uids[i];
        }
    }
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        bool working;
        if (c == newc || c->closing ||
            bsearch(&c->uid, heavy, nheavy, sizeof(heavy[0]), uid_cmp) == NULL) {
            continue;
        }
        working = client_working(c);
        /* Idle first, then the least recent; the first connected of those
         * accepted in the same millisecond. */
        if (best == NULL || (best_working && !working) ||
            (best_working == working &&
             (c->last_active < best->last_active ||
              (c->last_active == best->last_active && c->id < best->id)))) {
            best = c;
            best_working = working;
        }
    }
    free(uids);
    return best;
}

/* Who is at the other end (for the room-keeping and the log). */
static void client_peer(pos_localapi_client_t *c)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;

    c->uid = (uid_t)-1;
    if (uv_fileno((const uv_handle_t *)&c->pipe, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        c->uid = cred.uid;
        c->pid = cred.pid;
    }
}

static void connection_cb(uv_stream_t *listener, int status)
{
    pos_localapi_t *s = listener->data;
    pos_localapi_client_t *c, *victim;

    if (status != 0) {
        POS_WARN("localapi", "accept failed: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        POS_WARN("localapi", "out of memory for a new client");
        return; /* the connection stays in the backlog until memory frees up */
    }
    c->server = s;
    c->id = ++s->next_id;
    c->authed = !s->auth_required;
    c->last_active = uv_now(s->loop);
    c->drained_at = c->last_active;
    pos_resp_init(&c->parser, &s->opt.limits);
    if (uv_pipe_init(s->loop, &c->pipe, 0) != 0) {
        free(c);
        return;
    }
    c->pipe.data = c;
    c->next = s->clients;
    if (s->clients != NULL) {
        s->clients->prev = c;
    }
    s->clients = c;
    s->st.clients++;
    s->live++;
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c);
        return;
    }
    s->st.accepted++;
    client_peer(c);
    if (s->opt.admit.client_rate != 0) {
        pos_bucket_init(&c->bucket, s->opt.admit.client_rate, s->opt.admit.client_burst,
                        c->last_active);
    }
    if (s->live > s->opt.max_clients && (victim = pick_victim(s, c)) != NULL) {
        s->st.evicted++;
        /* The first, then at most one line a minute: a peer churning
         * connections must not flood the log as well. */
        if (s->evict_log_ms == 0 || c->last_active - s->evict_log_ms >= LAPI_LOG_EVERY_MS) {
            POS_WARN("localapi",
                     "%u clients connected: closed client %llu (uid %d, pid %d, no command for "
                     "%llu ms) to let client %llu (uid %d, pid %d) in (%llu closed this way "
                     "since the last such line)",
                     s->opt.max_clients, (unsigned long long)victim->id, (int)victim->uid,
                     (int)victim->pid, (unsigned long long)(c->last_active - victim->last_active),
                     (unsigned long long)c->id, (int)c->uid, (int)c->pid,
                     (unsigned long long)(s->st.evicted - s->evict_logged));
            s->evict_log_ms = c->last_active;
            s->evict_logged = s->st.evicted;
        }
        client_close(victim);
    }
    if (s->opt.admit.idle_timeout_ms != 0 && !uv_is_active((uv_handle_t *)&s->idle_timer)) {
        idle_timer_arm(s);
    }
    client_update_reading(c);
    client_account(c);
}

/* ---- socket file -------------------------------------------------------- */

/* Whether members of group gid may pass through the directory st. */
static bool dir_lets_through(const struct stat *st, gid_t gid)
{
    return (st->st_mode & S_IXOTH) != 0 || (st->st_gid == gid && (st->st_mode & S_IXGRP) != 0);
}

/* Whether the directory open as dfd (st) is the agent's own, made for the
 * socket: owned by our user, writable by nobody else, not sticky, and
 * holding nothing but a file named "name" (a stale socket). systemd's
 * RuntimeDirectory= is such a one; /run or /tmp never are. */
static bool dir_is_ours(int dfd, const struct stat *st, const char *name)
{
    struct dirent *e;
    bool only = true;
    int fd;
    DIR *d;

    if (st->st_uid != geteuid() || (st->st_mode & (S_IWGRP | S_IWOTH | S_ISVTX)) != 0) {
        return false;
    }
    fd = dup(dfd);
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    while (only && (e = readdir(d)) != NULL) {
        size_t n = strlen(name);
        /* The socket and its own lock file (pos_localapi_lock()). */
        only = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
               strcmp(e->d_name, name) == 0 ||
               (strncmp(e->d_name, name, n) == 0 && strcmp(e->d_name + n, ".lock") == 0);
    }
    closedir(d);
    return only;
}

/*
 * The socket's directory must let the socket's group through (docs/
 * hardening.md): created if missing, 0750 with the group; an existing one
 * of the agent's own (systemd creates /run/posagent 0750 posagent:posagent
 * before the agent starts) is given to the group; any other is left as it
 * is, with a warning naming what to change.
 */
static int socket_dir(const char *path, const char *group, gid_t gid)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat st;
    char *slash;
    int dfd, rc = 0;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        return 0;
    }
    *slash = '\0';
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) {
            return -errno;
        }
        /* Clients need search permission on the directory: the socket's
         * group gets it, others do not. */
        rc = pos_dirs_make(dir, 0755, 0750);
        if (rc != 0) {
            return rc;
        }
        if (group != NULL && chown(dir, (uid_t)-1, gid) != 0) {
            return -errno;
        }
        POS_INFO("localapi", "created %s", dir);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return -ENOTDIR;
    }
    if (group == NULL || dir_lets_through(&st, gid)) {
        return 0;
    }
    /* Opened without following a link, so what is checked is what is
     * changed. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0 || fstat(dfd, &st) != 0 || !dir_is_ours(dfd, &st, slash + 1)) {
        POS_WARN("localapi",
                 "%s (uid %u, gid %u, mode %04o) does not let group %s through, so its members "
                 "cannot reach the socket: give the directory to the group (chgrp %s; chmod "
                 "g+x) or leave it to the agent to create",
                 dir, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777),
                 group, group);
        if (dfd >= 0) {
            close(dfd);
        }
        return 0;
    }
    /* Owner's bits as they were; the group may list and pass; others
     * nothing. */
    if (fchown(dfd, (uid_t)-1, gid) != 0 ||
        fchmod(dfd, (st.st_mode & S_IRWXU) | S_IRGRP | S_IXGRP) != 0) {
        rc = -errno;
        POS_ERR("localapi",
                "cannot give %s to group %s: %s (the agent's user must be a member of the "
                "group)",
                dir, group, strerror(-rc));
    } else {
        POS_INFO("localapi", "%s: group %s may now pass (it was created without it)", dir, group);
    }
    close(dfd);
    return rc;
}

/* Removes a socket file left by an agent that died, never a live one. */
static int clear_stale(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc, err;

    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (!S_ISSOCK(st.st_mode)) {
        return -EEXIST;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -errno;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    rc = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
        return -EADDRINUSE; /* somebody answers there */
    }
    if (err != ECONNREFUSED) {
        return -err;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        return -errno;
    }
    POS_INFO("localapi", "removed stale socket %s", path);
    return 0;
}

int pos_localapi_lookup_group(const char *name, gid_t *gid)
{
    struct group gr, *res = NULL;
    char buf[4096];
    int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &res);

    if (rc != 0) {
        return -rc;
    }
    if (res == NULL) {
        return -ENOENT;
    }
    *gid = gr.gr_gid;
    return 0;
}

/* ---- server ------------------------------------------------------------- */

static void server_handle_closed(uv_handle_t *h)
{
    pos_localapi_t *s = h->data;

    s->open_handles--;
    server_maybe_done(s);
}

/* A handle's init returned rc: when it is made, it points back at the
 * server and counts among the handles to close. */
static int server_adopt(pos_localapi_t *s, void *handle, int rc)
{
    uv_handle_t *h = handle;

    if (rc == 0) {
        h->data = s;
        s->open_handles++;
    }
    return rc;
}

/* The server's own handles. Closed by server_close_handles also when only
 * some of them were made. */
static int server_init_handles(pos_localapi_t *s)
{
    uv_loop_t *loop = s->loop;
    int rc;

    if ((rc = server_adopt(s, &s->keep_turning, uv_idle_init(loop, &s->keep_turning))) != 0 ||
        (rc = server_adopt(s, &s->idle_timer, uv_timer_init(loop, &s->idle_timer))) != 0 ||
        (rc = server_adopt(s, &s->stall_timer, uv_timer_init(loop, &s->stall_timer))) != 0 ||
        (rc = server_adopt(s, &s->auth_timer, uv_timer_init(loop, &s->auth_timer))) != 0 ||
        (rc = server_adopt(s, &s->turn_start, uv_prepare_init(loop, &s->turn_start))) != 0 ||
        (rc = server_adopt(s, &s->turn_end, uv_check_init(loop, &s->turn_end))) != 0 ||
        (rc = server_adopt(s, &s->listener, uv_pipe_init(loop, &s->listener, 0))) != 0) {
        return rc;
    }
    /* Every loop turn, but they alone do not keep the loop alive. */
    uv_prepare_start(&s->turn_start, turn_start_cb);
    uv_unref((uv_handle_t *)&s->turn_start);
    uv_check_start(&s->turn_end, turn_end_cb);
    uv_unref((uv_handle_t *)&s->turn_end);
    return 0;
}

static void server_close_handles(pos_localapi_t *s)
{
    uv_handle_t *h[] = {
        (uv_handle_t *)&s->keep_turning, (uv_handle_t *)&s->idle_timer,
        (uv_handle_t *)&s->stall_timer,  (uv_handle_t *)&s->auth_timer,
        (uv_handle_t *)&s->turn_start,   (uv_handle_t *)&s->turn_end,
        (uv_handle_t *)&s->listener,
    };

    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        if (h[i]->data == s && !uv_is_closing(h[i])) { /* made: server_adopt */
            uv_close(h[i], server_handle_closed);
        }
    }
}

int pos_localapi_start(pos_localapi_t *s, uv_loop_t *loop, const pos_localapi_options_t *opt)
{
    const char *path = opt->path != NULL ? opt->path : POS_LOCALAPI_DEFAULT_SOCKET;
    const char *group = opt->group != NULL && opt->group[0] != '\0' ? opt->group : NULL;
    gid_t gid = 0;
    int rc;

    pos_mem_zero(s, sizeof(*s));
    if (strlen(path) >= sizeof(s->path)) {
        return -ENAMETOOLONG;
    }
    if (path[0] == '\0') {
        return -EINVAL;
    }
    if (group != NULL && (rc = pos_localapi_lookup_group(group, &gid)) != 0) {
        POS_ERR("localapi", "socket group %s: %s", group, strerror(-rc));
        return rc;
    }
    rc = socket_dir(path, group, gid);
    if (rc != 0) {
        POS_ERR("localapi", "the directory of %s: %s", path, strerror(-rc));
        return rc;
    }
    rc = clear_stale(path);
    if (rc != 0) {
        POS_ERR("localapi", "%s: %s", path,
                rc == -EADDRINUSE ? "another agent is listening there"
                : rc == -EEXIST   ? "exists and is not a socket"
                                  : strerror(-rc));
        return rc;
    }
    s->loop = loop;
    s->opt = *opt;
    s->opt.path = s->path;
    s->opt.group = NULL;    /* not kept: the caller's string */
    s->opt.password = NULL; /* only its digest is kept */
    if (opt->password != NULL && opt->password[0] != '\0') {
        s->auth_key.len = POS_SIGN_KEY_MIN;
        if (getrandom(s->auth_key.bytes, s->auth_key.len, 0) != (ssize_t)s->auth_key.len ||
            pos_sign_hmac_hex(&s->auth_key, opt->password, strlen(opt->password), s->auth_digest) !=
                0) {
            POS_ERR("localapi", "cannot prepare the password check");
            return -EIO;
        }
        s->auth_required = true;
    }
    if (s->opt.max_clients == 0) {
        s->opt.max_clients = POS_LOCALAPI_DEFAULT_CLIENTS;
    }
    if (s->opt.max_output == 0) {
        s->opt.max_output = POS_LOCALAPI_MAX_OUTPUT;
    }
    if (s->opt.max_inflight == 0) {
        s->opt.max_inflight = POS_LOCALAPI_MAX_INFLIGHT;
    }
    admission_defaults(&s->opt.admit);
    s->turn_left = s->opt.admit.turn_budget;
    snprintf(s->path, sizeof(s->path), "%s", path);

    rc = server_init_handles(s);
    if (rc != 0) {
        goto fail_handles;
    }
    rc = uv_pipe_bind(&s->listener, s->path);
    if (rc != 0) {
        goto fail_handles;
    }
    /* Nobody can connect before listen(), so the mode and group are right
     * before the first client arrives. Without a group, only the agent's
     * user (and root) may connect: the agent's own group is the one that
     * may read its configuration. */
    if (chmod(s->path, group != NULL ? 0660 : 0600) != 0 ||
        (group != NULL && chown(s->path, (uid_t)-1, gid) != 0)) {
        rc = -errno;
        goto fail_perm;
    }
    rc = uv_listen((uv_stream_t *)&s->listener, LAPI_BACKLOG, connection_cb);
    if (rc != 0) {
        goto fail_perm;
    }
    s->listening = true;
    POS_INFO("localapi", "listening on %s", s->path);
    return 0;

fail_perm:
    unlink(s->path);
fail_handles:
    /* The handles close when the loop runs; s stays the caller's till then. */
    s->closing = true;
    server_close_handles(s);
    POS_ERR("localapi", "cannot listen on %s: %s", path, strerror(-pos_uv_errno(rc)));
    return pos_uv_errno(rc);
}

void pos_localapi_close(pos_localapi_t *s, void (*done)(void *arg), void *arg)
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    s->done = done;
    s->done_arg = arg;
    if (s->listening) {
        unlink(s->path);
    }
    server_close_handles(s);
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        client_close(c);
    }
}

int pos_localapi_lock(const char *path, const char *group, int *fd, char *why, size_t len)
{
    char lock[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    gid_t gid = 0;
    pid_t holder = 0;
    int rc;

    group = group != NULL && group[0] != '\0' ? group : NULL;
    if (group != NULL && (rc = pos_localapi_lookup_group(group, &gid)) != 0) {
        snprintf(why, len, "socket group %s: %s", group, strerror(-rc));
        return rc;
    }
    rc = socket_dir(path, group, gid);
    if (rc != 0) {
        snprintf(why, len, "the directory of %s: %s", path, strerror(-rc));
        return rc;
    }
    if ((size_t)snprintf(lock, sizeof(lock), "%s.lock", path) >= sizeof(lock)) {
        snprintf(why, len, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    rc = pos_lockfile_take(lock, fd, &holder);
    if (rc == -EBUSY) {
        snprintf(why, len,
                 "another agent serves the local socket %s (it holds %s, pid %ld): one agent "
                 "per till",
                 path, lock, (long)holder);
        return -EADDRINUSE;
    }
    if (rc != 0) {
        snprintf(why, len, "cannot lock %s: %s", lock, strerror(-rc));
    }
    return rc;
}

int pos_localapi_check_private(const char *group, const char *path, char *why, size_t len)
{
    struct stat st;
    gid_t gid;

    if (group == NULL || group[0] == '\0' || path == NULL ||
        pos_localapi_lookup_group(group, &gid) != 0 || stat(path, &st) != 0) {
        return 0;
    }
    if (st.st_gid == gid && (st.st_mode & S_IRGRP) != 0) {
        snprintf(why, len,
                 "%s belongs to group %s, the [local] socket_group, and the group may read it: "
                 "the POS application could read the configuration; give the socket a group "
                 "of its own, or the file another group (root:posagent 0640 as packaged)",
                 path, group);
        return -EACCES;
    }
    if ((st.st_mode & S_IROTH) != 0) {
        snprintf(why, len,
                 "%s may be read by everybody, the [local] socket_group %s too: chmod o-r it "
                 "(root:posagent 0640 as packaged)",
                 path, group);
        return -EACCES;
    }
    return 0;
}
