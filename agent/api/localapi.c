#include "agent/api/localapi.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform/dirs.h"
#include "platform/log.h"
#include "platform/mem.h"
#include "platform/uverr.h"

#define LAPI_BACKLOG   128
#define LAPI_NAME_MAX  64 /* bytes of a command name quoted in an error */
/* Output is handed to libuv in pieces of about this size, so a slow reader
 * costs exact-size write buffers, not one buffer doubling past the bound. */
#define LAPI_WRITE_CHUNK (64u * 1024u)

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

struct pos_localapi_client {
    uv_pipe_t pipe; /* data points back here */
    pos_localapi_t *server;
    pos_localapi_client_t *prev, *next;
    uint64_t id;
    pos_resp_parser_t parser;
    lapi_buf_t out;         /* replies, in order, not yet handed to libuv */
    size_t inflight;        /* bytes in writes libuv has not finished */
    uint32_t inflight_reqs; /* those writes */
    pos_localapi_reply_t *head, *tail;
    uint32_t nslots;
    size_t queued;   /* reply bytes not yet written: out, in flight and slots */
    size_t slot_mem; /* heap bytes of the slots */
    size_t mem_seen; /* this client's share of server->memory */
    bool reading, closing, quitting, eof, in_process, resume;
};


static void client_close(pos_localapi_client_t *c);
static void client_flush(pos_localapi_client_t *c);
static void client_start_write(pos_localapi_client_t *c);
static void client_account(pos_localapi_client_t *c);
static void client_process(pos_localapi_client_t *c);
static void resume_cb(uv_idle_t *h);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* ---- memory accounting -------------------------------------------------- */

static size_t client_memory(const pos_localapi_client_t *c)
{
    return sizeof(*c) + pos_resp_memory(&c->parser) + c->out.cap + c->slot_mem + c->inflight +
           c->inflight_reqs * sizeof(lapi_write_t);
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

void pos_localapi_get_stats(const pos_localapi_t *s, pos_localapi_stats_t *st)
{
    *st = s->st;
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
        /* It does not read what it asked for: cut it off before it costs
         * everybody else memory. */
        c->server->st.output_drops++;
        POS_WARN("localapi", "client %llu: %zu bytes of replies unread, disconnecting",
                 (unsigned long long)c->id, c->queued);
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

static void client_schedule_resume(pos_localapi_client_t *c)
{
    pos_localapi_t *s = c->server;

    if (c->resume || c->closing || s->closing) {
        return;
    }
    c->resume = true;
    uv_idle_start(&s->resume_idle, resume_cb);
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
    /* New commands run on the next loop turn, never inside the owner's own
     * callback that completed this reply. */
    client_schedule_resume(c);
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
    client_flush(c);
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

/* redis-cli 7 asks "COMMAND DOCS" when it starts interactively, for its
 * hints; an empty answer makes it fall back to its built-in help. */
static int builtin_command(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                           const size_t *lens)
{
    (void)owner;
    if (argc == 2 && lens[1] == 5 && strncasecmp(argv[1], "COUNT", 5) == 0) {
        pos_localapi_reply_int(r, 0);
    } else {
        pos_localapi_reply_array_begin(r, 0);
    }
    return 0;
}

static const pos_localapi_command_t builtins[] = {
    {"PING", builtin_ping, 1, 2},
    {"QUIT", builtin_quit, 1, -1},
    {"COMMAND", builtin_command, 1, -1},
};

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

static void client_dispatch(pos_localapi_client_t *c, const pos_resp_cmd_t *cmd)
{
    pos_localapi_t *s = c->server;
    const pos_localapi_command_t *def;
    pos_localapi_reply_t *r = slot_new(c);
    char name[LAPI_NAME_MAX + 8], msg[LAPI_NAME_MAX + 96];
    int rc = 0;

    if (r == NULL) {
        client_close(c);
        return;
    }
    s->st.commands++;
    def = lookup(s->opt.commands, s->opt.ncommands, cmd->argv[0], cmd->lens[0]);
    if (def == NULL) {
        def = lookup(builtins, sizeof(builtins) / sizeof(builtins[0]), cmd->argv[0], cmd->lens[0]);
    }
    if (def == NULL) {
        sanitize_name(name, sizeof(name), cmd->argv[0], cmd->lens[0], false);
        snprintf(msg, sizeof(msg), "ERR unknown command '%s'", name);
        pos_localapi_reply_error(r, msg);
    } else if (cmd->argc < def->min_argc || (def->max_argc >= 0 && cmd->argc > def->max_argc)) {
        sanitize_name(name, sizeof(name), cmd->argv[0], cmd->lens[0], true);
        snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command", name);
        pos_localapi_reply_error(r, msg);
    } else {
        rc = def->fn(s->opt.owner, r, cmd->argc, cmd->argv, cmd->lens);
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

static void client_update_reading(pos_localapi_client_t *c)
{
    bool want = !c->closing && !c->quitting && !c->eof && c->nslots < c->server->opt.max_inflight;

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

static void client_process(pos_localapi_client_t *c)
{
    pos_resp_cmd_t cmd;
    int rc = 1; /* 0 below means: every complete command has been taken */

    if (c->in_process) {
        return; /* the outer call carries on */
    }
    c->in_process = true;
    while (!c->closing && !c->quitting) {
        if (c->nslots >= c->server->opt.max_inflight) {
            client_pop_done(c);
            if (c->nslots >= c->server->opt.max_inflight) {
                break; /* resumed when deferred replies complete */
            }
        }
        rc = pos_resp_next(&c->parser, &cmd);
        if (rc <= 0) {
            break;
        }
        client_dispatch(c, &cmd);
        /* A synchronous reply at the head leaves the queue now, so the next
         * one writes straight to the output instead of into its slot. */
        client_pop_done(c);
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

static void resume_cb(uv_idle_t *h)
{
    pos_localapi_t *s = h->data;

    uv_idle_stop(h);
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        if (c->resume) {
            c->resume = false;
            if (!c->closing) {
                client_process(c);
            }
        }
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
    c->closing = true;
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
        client_process(c);
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
    client_process(c);
}

static void connection_cb(uv_stream_t *listener, int status)
{
    pos_localapi_t *s = listener->data;
    pos_localapi_client_t *c;
    pos_localapi_reply_t *r;

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
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c);
        return;
    }
    s->st.accepted++;
    if (s->st.clients > s->opt.max_clients) {
        s->st.rejected++;
        POS_WARN("localapi", "%u clients connected already, refusing another", s->opt.max_clients);
        c->quitting = true;
        r = slot_new(c);
        if (r == NULL) {
            client_close(c);
            return;
        }
        pos_localapi_reply_error(r, "ERR max number of clients reached");
        r->state = SLOT_DONE;
        client_flush(c);
        return;
    }
    client_update_reading(c);
    client_account(c);
}

/* ---- socket file -------------------------------------------------------- */

static int make_parent(const char *path, bool set_gid, gid_t gid)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat st;
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        return 0;
    }
    *slash = '\0';
    if (stat(dir, &st) == 0) {
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    }
    /* Clients need search permission on the directory: the socket's group
     * gets it, others do not. */
    int rc = pos_dirs_make(dir, 0755, 0750);
    if (rc != 0) {
        return rc;
    }
    if (set_gid && chown(dir, (uid_t)-1, gid) != 0) {
        return -errno;
    }
    POS_INFO("localapi", "created %s", dir);
    return 0;
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

static int lookup_group(const char *name, gid_t *gid)
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

int pos_localapi_start(pos_localapi_t *s, uv_loop_t *loop, const pos_localapi_options_t *opt)
{
    const char *path = opt->path != NULL ? opt->path : POS_LOCALAPI_DEFAULT_SOCKET;
    bool set_gid = opt->group != NULL && opt->group[0] != '\0';
    gid_t gid = 0;
    int rc;

    pos_mem_zero(s, sizeof(*s));
    if (strlen(path) >= sizeof(s->path)) {
        return -ENAMETOOLONG;
    }
    if (path[0] == '\0') {
        return -EINVAL;
    }
    if (set_gid && (rc = lookup_group(opt->group, &gid)) != 0) {
        POS_ERR("localapi", "socket group %s: %s", opt->group, strerror(-rc));
        return rc;
    }
    rc = make_parent(path, set_gid, gid);
    if (rc != 0) {
        POS_ERR("localapi", "cannot create the directory of %s: %s", path, strerror(-rc));
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
    s->opt.group = NULL; /* not kept: the caller's string */
    if (s->opt.max_clients == 0) {
        s->opt.max_clients = POS_LOCALAPI_DEFAULT_CLIENTS;
    }
    if (s->opt.max_output == 0) {
        s->opt.max_output = POS_LOCALAPI_MAX_OUTPUT;
    }
    if (s->opt.max_inflight == 0) {
        s->opt.max_inflight = POS_LOCALAPI_MAX_INFLIGHT;
    }
    snprintf(s->path, sizeof(s->path), "%s", path);

    rc = uv_idle_init(loop, &s->resume_idle);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    s->resume_idle.data = s;
    s->open_handles++;
    rc = uv_pipe_init(loop, &s->listener, 0);
    if (rc != 0) {
        goto fail_pipe;
    }
    s->listener.data = s;
    s->open_handles++;
    rc = uv_pipe_bind(&s->listener, s->path);
    if (rc != 0) {
        goto fail_bind;
    }
    /* Nobody can connect before listen(), so the mode and group are right
     * before the first client arrives. */
    if (chmod(s->path, 0660) != 0 || (set_gid && chown(s->path, (uid_t)-1, gid) != 0)) {
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
fail_bind:
    uv_close((uv_handle_t *)&s->listener, server_handle_closed);
fail_pipe:
    /* The handles close when the loop runs; s stays the caller's till then. */
    s->closing = true;
    uv_close((uv_handle_t *)&s->resume_idle, server_handle_closed);
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
    uv_close((uv_handle_t *)&s->listener, server_handle_closed);
    uv_close((uv_handle_t *)&s->resume_idle, server_handle_closed);
    for (pos_localapi_client_t *c = s->clients; c != NULL; c = c->next) {
        client_close(c);
    }
}
