#ifndef AGENT_LINK_CONN_H
#define AGENT_LINK_CONN_H

/*
 * One Redis connection on the libuv loop, owned by the agent (not hiredis's
 * async context): uv_getaddrinfo -> uv_tcp_t -> transport -> hiredis
 * redisReader -> replies matched in order to per-command callbacks.
 *
 * The byte path has one seam, pos_transport_ops: the plain transport passes
 * bytes straight through; a TLS transport slots in there without anything
 * above it changing.
 *
 * Every byte from the server passes a RESP guard (agent/link/resp_guard.h)
 * before hiredis buffers it: a reply over a limit, or malformed, drops the
 * connection at once; the command it answered fails with -EMSGSIZE, the
 * others with -ECONNRESET, and on_closed gets -EMSGSIZE (-EPROTO for a
 * malformed one, for every command).
 *
 * At most POS_CONN_TURN_REPLIES replies, or POS_CONN_TURN_NS of their
 * handlers' time, are handed out per loop turn: then
 * reading stops and resumes on a later turn (a uv_idle_t), once timers and
 * other handles have had theirs, so a flood on one connection cannot hold
 * the loop.
 *
 * Lifecycle: init once; connect; ...; abort (on any error) -> all pending
 * callbacks fail exactly once -> handles closed -> on_closed; connect again;
 * finally pos_conn_close() and wait for its callback before freeing.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "platform/uverr.h"

#include "agent/link/cmdq.h"
#include "agent/link/resp_guard.h"

/* Replies (pushes included) handed out per connection per loop turn. 64:
 * a flood of 50,000 small messages is handled as fast as with 256 or with
 * no bound (about 0.55 s, ASan build), and a local PING waits behind at
 * most 64 handlers (p99 2-4 ms against 5-7 ms with 256). */
#define POS_CONN_TURN_REPLIES 64u
/* ... and at most 2 ms of their handlers' time, whatever each costs (a
 * payment request refused over budget is decoded and answered). */
#define POS_CONN_TURN_NS 2000000u

typedef struct pos_conn pos_conn_t;

/* Transport between the TCP socket and the RESP reader. */
typedef struct pos_transport_ops {
    /* TCP is connected: start the session (e.g. a TLS handshake), then call
     * pos_conn_transport_ready(). Returns 0 or a negative errno. */
    int (*start)(pos_conn_t *c);
    /* Sends application bytes; raw bytes go out with pos_conn_raw_write(). */
    int (*write)(pos_conn_t *c, const char *buf, size_t len);
    /* Raw bytes arrived from the socket; application bytes go up with
     * pos_conn_feed(). Returns 0 or a negative errno (tears the link down). */
    int (*on_read)(pos_conn_t *c, const char *buf, size_t len);
    /* The connection is being torn down: forget per-session state. */
    void (*reset)(pos_conn_t *c);
    /* Optional: the socket failed (read error, EOF, write error) or the
     * connect deadline passed (-ETIMEDOUT) while the transport was still
     * starting. Returns the error to report instead (e.g. "TLS handshake
     * refused"); may log what it means. */
    int (*start_failed)(pos_conn_t *c, int err);
    /* Optional, NULL for real transports. A transport without a socket
     * (the fuzz targets' and tests' in-memory one) sets it: then
     * pos_conn_connect() neither resolves nor connects but calls this in
     * place of TCP connect + start; it calls pos_conn_transport_ready()
     * (now or later) and returns 0, or returns a negative errno. Bytes then
     * arrive only through pos_conn_feed(). */
    int (*connect)(pos_conn_t *c, const char *host, uint16_t port);
} pos_transport_ops_t;

typedef enum pos_conn_state {
    POS_CONN_IDLE = 0,  /* no socket */
    POS_CONN_RESOLVING, /* uv_getaddrinfo in flight */
    POS_CONN_CONNECTING,/* TCP connect or transport start in flight */
    POS_CONN_OPEN,      /* commands may be sent */
    POS_CONN_CLOSING,   /* handles closing; on_closed follows */
    POS_CONN_FINAL,     /* pos_conn_close() called */
} pos_conn_state_t;

typedef struct pos_conn_callbacks {
    /* The connection is open; commands may be sent. */
    void (*on_open)(pos_conn_t *c);
    /* A reply no command asked for, on a subscriber connection: a pub/sub
     * "message" or "smessage" array, or a "sunsubscribe" (the server ended
     * a sharded subscription); at least 3 elements, element 0 a string.
     * "pmessage" arrays are dropped and counted: nothing here PSUBSCRIBEs. */
    void (*on_push)(pos_conn_t *c, const redisReply *reply);
    /* The connection is down and every handle is closed; "err" says why
     * (a negative errno). pos_conn_connect() may be called from here. */
    void (*on_closed)(pos_conn_t *c, int err);
} pos_conn_callbacks_t;

typedef struct pos_conn_options {
    const char *name;            /* "cmd" or "sub", for logs */
    uint32_t connect_timeout_ms; /* resolve + connect + transport start */
    uint32_t command_timeout_ms; /* per command, from send to reply */
    uint32_t max_pending;        /* pending commands allowed */
    bool subscriber;             /* route message arrays to on_push */
    const pos_transport_ops_t *transport; /* NULL: plain TCP */
    void *transport_arg;                  /* shared transport context (e.g. the TLS config) */
    pos_resp_guard_limits_t limits;       /* what a reply may be; zero fields: defaults */
} pos_conn_options_t;

/*
 * How a client reaches its servers: what the link (to Redis) and the
 * Sentinel client (to the sentinels) share, filled from the configuration.
 */
typedef struct pos_conn_reach {
    const char *client_name;              /* CLIENT SETNAME value; NULL: none */
    uint32_t connect_timeout_ms;          /* resolve + connect + transport start */
    uint32_t command_timeout_ms;          /* per command, from send to reply */
    uint32_t retry_delay_ms;              /* reconnect backoff base */
    uint32_t max_retry_delay_ms;          /* and cap */
    const pos_transport_ops_t *transport; /* NULL: plain TCP */
    void *transport_arg;                  /* handed to the transport (the TLS context) */
    /* Longest bulk string a server may send, bytes (see
     * pos_resp_guard_bulk_limit()); 0: POS_RESP_GUARD_BULK_BYTES. */
    uint64_t max_bulk_bytes;
} pos_conn_reach_t;

/*
 * Fills *co (zeroed first) for connection "name" of a client that reaches
 * its servers as r: the timeouts, the transport and the bulk limit. The caller sets
 * max_pending and subscriber.
 */
void pos_conn_options_for(pos_conn_options_t *co, const pos_conn_reach_t *r, const char *name);

/* What a connection counted, since init. */
typedef struct pos_conn_stats {
    uint64_t refused;        /* times the RESP guard dropped the connection */
    uint64_t pauses;         /* turns that ended with the reply budget spent */
    uint64_t pushes_dropped; /* pushes of a kind never asked for ("pmessage") */
} pos_conn_stats_t;

struct pos_conn {
    void *data; /* owner's pointer */

    uv_loop_t *loop;
    pos_conn_options_t opt;
    pos_conn_callbacks_t cb;
    pos_conn_state_t state;

    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect deadline, then command deadlines */
    bool gai_pending;
    bool tcp_open;    /* tcp initialised and not yet closed */
    bool timer_open;
    uv_idle_t resume; /* hands out buffered replies on later turns */
    bool resume_open;
    bool paused;           /* the turn's budget is spent: not reading, resume is active */
    uint32_t turn_replies; /* replies handed out since reading last resumed */
    uint64_t turn_start_ns; /* uv_hrtime() of this turn's first reply */
    int close_err;    /* reason handed to on_closed */
    void (*final_cb)(pos_conn_t *c);

    char port[8];
    redisReader *reader;
    pos_resp_guard_t guard; /* in front of the reader */
    int guard_err;          /* the guard refused: dropped once earlier replies are out */
    pos_conn_stats_t stats;
    pos_cmdq_t q;
    void *transport_state; /* owned by the transport */
    char rbuf[16384];      /* socket reads land here */
};

/* Initialises the connection (no I/O). Returns 0 or a negative errno. */
int pos_conn_init(uv_loop_t *loop, pos_conn_t *c, const pos_conn_options_t *opt,
                  const pos_conn_callbacks_t *cb);

/*
 * Starts resolving and connecting to host:port. on_open or on_closed
 * follows. Returns 0, or -EBUSY when not idle.
 */
int pos_conn_connect(pos_conn_t *c, const char *host, uint16_t port);

/*
 * Sends one command (argv form, binary-safe) expecting "replies" replies.
 * The callback is called once per reply, or once with an error.
 * Returns 0, or -ENOTCONN / -ENOBUFS / -ENOMEM (the callback is then NOT
 * called).
 */
int pos_conn_command(pos_conn_t *c, pos_reply_cb cb, void *ctx, uint32_t replies, int argc,
                     const char **argv, const size_t *argvlen);

/*
 * Sends a command already in RESP form (cmd[0..len), e.g. from
 * redisFormatCommandArgv; copied) expecting "replies" replies, as
 * pos_conn_command() does.
 */
int pos_conn_send(pos_conn_t *c, pos_reply_cb cb, void *ctx, uint32_t replies, const char *cmd,
                  size_t len);

/* Convenience: command from NUL-terminated strings. */
int pos_conn_commandv(pos_conn_t *c, pos_reply_cb cb, void *ctx, int argc, const char **argv);

/*
 * Tears the connection down because of "err": pending callbacks fail with
 * it, handles close, then on_closed(err). No-op unless resolving,
 * connecting or open.
 */
void pos_conn_abort(pos_conn_t *c, int err);

/*
 * Final close: aborts with -ECANCELED if needed and closes every handle;
 * "done" runs when the memory may be freed. on_closed is not called.
 */
void pos_conn_close(pos_conn_t *c, void (*done)(pos_conn_t *c));

/* True when commands may be sent. */
bool pos_conn_is_open(const pos_conn_t *c);

/*
 * True while replies that have arrived wait for a later loop turn (the
 * turn's budget is spent): the server has answered, the agent is behind.
 * A command's deadline is not judged meanwhile, and neither should a
 * caller's own liveness check be.
 */
bool pos_conn_busy(const pos_conn_t *c);

/*
 * True when the connection is open and a command that can do without
 * (pos_link_command_spare()) may be sent: less than three quarters of its
 * pending commands and half its write queue are in use. The rest is the
 * agent's own, so that whatever those commands add up to, its own always
 * find room and the connection is never dropped for a full write queue.
 */
bool pos_conn_has_spare(const pos_conn_t *c);

/* The most bytes of a reply's text (an error, say) that a log line shows. */
#define POS_CONN_LOG_REPLY_MAX 200

/*
 * How many bytes of r->str a log line shows, for "%.*s": r->len, at most
 * POS_CONN_LOG_REPLY_MAX. Redis does not echo secrets in its errors, but
 * an error may quote a long argument.
 */
int pos_conn_log_len(const redisReply *r);

/* For transports: TCP-level write of raw bytes. Returns 0 or -errno. */
int pos_conn_raw_write(pos_conn_t *c, const char *buf, size_t len);

/* For transports: application bytes for the RESP reader (through the
 * guard). Returns 0 or -errno; the connection may have been aborted on
 * return. While the turn's reply budget is spent the bytes are buffered and
 * handed out on later turns. */
int pos_conn_feed(pos_conn_t *c, const char *buf, size_t len);

/* For transports: the session is established (plain: right after TCP). */
void pos_conn_transport_ready(pos_conn_t *c);


#endif /* AGENT_LINK_CONN_H */
