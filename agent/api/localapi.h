#ifndef AGENT_API_LOCALAPI_H
#define AGENT_API_LOCALAPI_H

/*
 * The local API: a Unix socket on the terminal that speaks RESP, so the POS
 * application can use any Redis client (or redis-cli -s PATH) to read the
 * agent's cache, queue messages and read its state.
 *
 * The server owns framing, ordering and limits; what each command does comes
 * from a table supplied by the owner (the agent). Every command gets a reply
 * slot, and replies leave in command order even when a handler answers later
 * (deferred replies, e.g. a cache read-through waiting for Redis).
 *
 * Built in (the owner's table may override them): PING [msg], QUIT,
 * COMMAND LIST (every command's name, lower case, as Redis 7 answers it),
 * COMMAND COUNT, and COMMAND [...] otherwise (an empty array: enough for
 * redis-cli's start-up "COMMAND DOCS"), and what any Redis client sends
 * while connecting: AUTH [user] password, HELLO [2 [AUTH user password]
 * [SETNAME name]] (3 is answered -NOPROTO), SELECT 0 (no other database),
 * CLIENT SETNAME/GETNAME/ID/SETINFO, ECHO, RESET. Anything else unknown:
 * "-ERR unknown command '<name>'".
 *
 * With a password (options.password), a client's commands but AUTH,
 * HELLO, QUIT and RESET are answered "-NOAUTH Authentication required."
 * until it has authenticated; a wrong password is "-WRONGPASS ...", and a
 * client is disconnected after POS_LOCALAPI_AUTH_TRIES of them. After a
 * wrong password, the next AUTH of the same peer (user id), on any
 * connection, is held until its wait is over (agent/api/authdelay.h:
 * doubling from 100 ms to 5 s, cleared by a right password), with what
 * that connection sent after it: guessing is slow per user id, and other
 * user ids are not slowed. The password is compared in constant time (HMAC
 * digests under a key drawn at start) and is never logged or kept in the
 * server.
 *
 * A client that sends garbage or breaks a parser limit gets
 * "-ERR Protocol error: ..." after its earlier replies and is disconnected;
 * a client with max_inflight replies outstanding, or half of max_output
 * bytes of replies it has not read (written, or held behind a reply not
 * complete yet), is not read until they drain: a client that pipelines
 * faster than it reads is slowed down, not cut off. One whose replies have
 * not moved for admit.stall_ms while it is paused so, or whose unsent replies
 * exceed max_output (one reply larger than the half left), is
 * disconnected. Memory per client is therefore bounded by about
 * max_output + the parser's max_pending (twice that with an AUTH held
 * back: its copy, at most one command).
 *
 * Admission (pos_localapi_admission_t): each client has a token bucket, and
 * a command over it is answered "-BUSY ..., retry in N ms" instead of run;
 * at most turn_budget commands, and no more than turn_slice_us of loop
 * time, per loop turn, all clients together, taken round-robin a few at a
 * time, so a pipelining client cannot hold the loop, however much each of
 * its commands costs. A client without a complete command for idle_timeout_ms is
 * closed. When max_clients are connected, a new connection is let in by
 * closing the least recently active connection of the peer (user id) that
 * holds the most connections: a flood of connections only recycles its
 * own, and the POS application is never locked out.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "agent/api/authdelay.h"
#include "agent/api/resp_parse.h"
#include "agent/msg/sign.h"

/* Handler return value: the reply will come later (pos_localapi_reply_done). */
#define POS_LOCALAPI_PENDING 1

#define POS_LOCALAPI_DEFAULT_SOCKET  "/run/posagent/agent.sock"
#define POS_LOCALAPI_MAX_OUTPUT      (1024u * 1024u)
#define POS_LOCALAPI_MAX_INFLIGHT    1024u
#define POS_LOCALAPI_STALL_MS        10000u /* paused on its unread replies, none read */
#define POS_LOCALAPI_DEFAULT_CLIENTS 64u
#define POS_LOCALAPI_READ_SIZE       (64u * 1024u) /* one read buffer for all clients */
/* Commands run per loop turn, all clients together, by default. */
#define POS_LOCALAPI_TURN_BUDGET 256u
/* Failed AUTH attempts after which a client is disconnected. */
#define POS_LOCALAPI_AUTH_TRIES 5u
/* Bytes of a client name (CLIENT SETNAME). */
#define POS_LOCALAPI_NAME_MAX 64u
/* Loop time the local API may use per turn by default, microseconds. */
#define POS_LOCALAPI_TURN_SLICE_US 2000u

typedef struct pos_localapi pos_localapi_t;
typedef struct pos_localapi_client pos_localapi_client_t;
typedef struct pos_localapi_reply pos_localapi_reply_t;

/*
 * A command handler. argv[0] is the command name as sent; every argv[i] is
 * NUL-terminated but may contain NULs (lens[i] is its length). argv is valid
 * only during the call: copy what a deferred reply needs.
 *
 * Answer synchronously with the pos_localapi_reply_*() helpers on "r" and
 * return 0. Or keep "r", return POS_LOCALAPI_PENDING, answer later and call
 * pos_localapi_reply_done(r) exactly once (also when the client has gone:
 * "r" stays valid until then). A negative errno return without a reply
 * answers "-ERR <strerror>".
 */
typedef int (*pos_localapi_handler)(void *owner, pos_localapi_reply_t *r, int argc,
                                    const char **argv, const size_t *lens);

#define POS_LOCALAPI_CMD_MAX 16 /* bytes of a command's name with its NUL */

typedef struct pos_localapi_command {
    /* matched case-insensitively; in the row, not a pointer: a table of
     * pointers is relocated data in the daemon (docs/footprint.md) */
    char name[POS_LOCALAPI_CMD_MAX];
    pos_localapi_handler fn;
    int min_argc; /* including the name; checked before the handler runs */
    int max_argc; /* -1: no maximum */
} pos_localapi_command_t;

/* How much each client may ask, and the loop may do, at once. */
typedef struct pos_localapi_admission {
    uint32_t client_rate;     /* commands a second one client may sustain; 0: no limit */
    uint32_t client_burst;    /* commands it may send at once on top; 0: client_rate */
    uint32_t turn_budget;     /* commands run per loop turn, all clients; 0: the default */
    uint32_t turn_slice_us;   /* loop time they may take per turn, us; 0: the default */
    uint32_t idle_timeout_ms; /* close a client without a command this long; 0: never */
    uint32_t stall_ms;        /* paused on unread replies this long: cut off; 0: the default */
} pos_localapi_admission_t;

typedef struct pos_localapi_options {
    const char *path;         /* socket path, < 108 bytes; NULL: the default */
    const char *group;        /* group that may connect; NULL or "": nobody but our user */
    uint32_t max_clients;     /* 0: POS_LOCALAPI_DEFAULT_CLIENTS */
    uint32_t max_output;      /* bytes of unsent replies per client; 0: default */
    uint32_t max_inflight;    /* outstanding replies before reading pauses; 0: default */
    pos_resp_limits_t limits; /* zero fields: the parser's defaults */
    pos_localapi_admission_t admit;
    const pos_localapi_command_t *commands; /* owner's table, may be NULL */
    size_t ncommands;
    void *owner; /* first argument of every handler */
    /* The password clients must AUTH with, NUL-terminated; NULL or "": none
     * (AUTH then accepts any). Only its digest is kept. */
    const char *password;
} pos_localapi_options_t;

typedef struct pos_localapi_stats {
    uint64_t accepted;        /* connections accepted */
    uint64_t evicted;         /* closed to let a new connection in (max_clients) */
    uint64_t idle_closed;     /* closed after idle_timeout_ms without a command */
    uint64_t commands;        /* commands dispatched to a handler (built-ins too) */
    uint64_t busy;            /* commands answered -BUSY: over the client's budget */
    uint64_t turns_full;      /* loop turns that used the whole turn budget */
    uint64_t protocol_errors; /* clients dropped for garbage or limits */
    uint64_t output_drops;    /* clients dropped for not reading their replies */
    uint64_t output_pauses;   /* times a client was paused on replies it had not read */
    uint64_t auth_failures;   /* AUTH (or HELLO ... AUTH) with a wrong password */
    uint64_t auth_delayed;    /* AUTH (or HELLO ... AUTH) held until its peer's wait was over */
    uint64_t noauth;          /* commands refused -NOAUTH */
    uint32_t clients;         /* connected now */
    size_t memory;            /* heap bytes held for clients now */
    size_t memory_peak;       /* highest "memory" seen */
} pos_localapi_stats_t;

/* The server; the caller allocates it and keeps it until close's "done"
 * (fields are private to agent/api/localapi.c). */
struct pos_localapi {
    uv_loop_t *loop;
    uv_pipe_t listener;
    uv_prepare_t turn_start; /* a new loop turn: a fresh turn budget */
    uv_check_t turn_end;     /* after I/O: the queued clients' turn */
    uv_idle_t keep_turning;  /* while clients are queued, poll does not block */
    uv_timer_t idle_timer;   /* closes idle clients */
    uv_timer_t stall_timer;  /* closes clients that stopped reading, while one is paused */
    uv_timer_t auth_timer;   /* lets held AUTHs go when their peer's wait is over */
    pos_localapi_options_t opt;
    char path[108]; /* sun_path */
    pos_localapi_client_t *clients;
    /* Clients with commands left, in the order they are served. */
    pos_localapi_client_t *ready_head, *ready_tail;
    uint32_t live;         /* clients connected and not closing */
    uint32_t turn_left;    /* commands this loop turn may still run */
    uint64_t turn_t0;      /* uv_hrtime() of its first command, ns; 0: none yet */
    uint64_t turn;         /* loop turns seen */
    bool turn_full;        /* this turn's budget has run out */
    uint64_t evict_log_ms; /* uv_now() when an eviction was last logged; 0: never */
    uint64_t evict_logged; /* st.evicted then */
    size_t orphans;        /* deferred replies of gone clients not yet done */
    unsigned open_handles;
    bool listening, closing;
    void (*done)(void *arg);
    void *done_arg;
    pos_localapi_stats_t st;
    /* A second table (pos_localapi_add_commands): the operator's commands. */
    const pos_localapi_command_t *extra;
    size_t nextra;
    void *extra_owner;
    uint64_t next_id;
    bool auth_required;                     /* a password is set */
    pos_sign_key_t auth_key;                /* random, drawn at start: digests of passwords */
    char auth_digest[POS_SIGN_HEX_LEN + 1]; /* HMAC of the password under auth_key */
    uint64_t auth_log_ms;                   /* uv_now() when a failure was last logged; 0: never */
    uint64_t auth_logged;                   /* st.auth_failures then */
    uint64_t auth_due;                      /* uv_now() auth_timer fires at, while active */
    pos_authdelay_t auth_delay;             /* each peer's wait before its next password */
    char rbuf[POS_LOCALAPI_READ_SIZE];      /* reads are consumed at once, so one will do */
};

/*
 * Creates the server on "loop" and starts listening. Creates the socket's
 * parent directory if missing (0750, with the group); gives an existing one
 * that the group cannot pass through to the group when it is the agent's
 * own (owned by its user, writable by nobody else, holding nothing but the
 * socket: systemd's RuntimeDirectory=), and warns about any other. Removes
 * a stale socket file only when nothing answers on it, binds, sets mode
 * 0660 and the group (0600 without a group), then listens. Runs before the
 * loop serves anything (it does blocking file system calls and a group
 * lookup). Returns 0, -ENAMETOOLONG, -EADDRINUSE (an agent answers there),
 * -EEXIST (the path is not a socket), -ENOENT (no such group), -EPERM (the
 * group cannot be set: the agent's user is not a member) or another
 * negative errno. On failure the server is not listening; handles it had
 * created close on the loop's next turn, so "s" stays the caller's until
 * then.
 */
int pos_localapi_start(pos_localapi_t *s, uv_loop_t *loop, const pos_localapi_options_t *opt);

/*
 * Takes the socket's own lock file, "<path>.lock" beside it (the directory
 * made ready for "group" as pos_localapi_start() would, if missing), so
 * that one agent at a time serves a socket whatever its store: the lock
 * holds while *fd stays open and goes with the process however it ends.
 * Returns 0, -EADDRINUSE when another process holds it (why says which
 * pid), or a negative errno with why set.
 */
int pos_localapi_lock(const char *path, const char *group, int *fd, char *why, size_t len);

/*
 * Checks that members of "group" (the socket's group; NULL or "": none)
 * cannot read the file at "path" (the configuration, which may hold the
 * Redis password): neither through the file's group nor as others.
 * Returns 0, or -EACCES with the reason and the fix in why (len bytes).
 * A group or file that does not exist is not this check's error: 0.
 */
int pos_localapi_check_private(const char *group, const char *path, char *why, size_t len);

/* Looks up a group by name: 0 with *gid, -ENOENT when there is none, or
 * another negative errno. */
int pos_localapi_lookup_group(const char *name, gid_t *gid);

/*
 * Stops listening, disconnects every client and removes the socket file.
 * "done" (may be NULL) runs once every handle has closed and every
 * deferred reply has been completed by the owner; the caller may free "s"
 * from then on.
 */
void pos_localapi_close(pos_localapi_t *s, void (*done)(void *arg), void *arg);

/*
 * New limits for a running server (a configuration reload): max_clients
 * and the admission as pos_localapi_options_t has them (0: the defaults).
 * Connected clients get the new per-client budget at once (full); fewer
 * max_clients closes nobody now, only when the next one connects.
 */
void pos_localapi_set_admission(pos_localapi_t *s, uint32_t max_clients,
                                const pos_localapi_admission_t *admit);

/*
 * Adds a second command table, looked up after the owner's and before the
 * built-ins, whose handlers get "owner" as their first argument: commands
 * of another part of the agent (the operator's, agent/api/admin.h) on the
 * same socket. One such table; a later call replaces it. "cmds" must
 * outlive the server.
 */
void pos_localapi_add_commands(pos_localapi_t *s, const pos_localapi_command_t *cmds, size_t n,
                               void *owner);

/*
 * The user id of the process at the other end of r's connection, from
 * SO_PEERCRED when it connected. Returns 0, or -ENOTCONN when the client
 * has gone or its credentials are unknown.
 */
int pos_localapi_reply_peer_uid(const pos_localapi_reply_t *r, uid_t *uid);

/* Counters and the memory held for clients. */
void pos_localapi_get_stats(const pos_localapi_t *s, pos_localapi_stats_t *st);

/* Reply helpers: append one RESP value to the reply in "r". A reply is one
 * value (an array counts as one, followed by its "n" elements). On a client
 * that has gone they do nothing. */
void pos_localapi_reply_bulk(pos_localapi_reply_t *r, const char *data, size_t len);
void pos_localapi_reply_nil(pos_localapi_reply_t *r);
void pos_localapi_reply_int(pos_localapi_reply_t *r, long long v);
/* "+<text>": CR and LF in text are replaced by spaces. */
void pos_localapi_reply_status(pos_localapi_reply_t *r, const char *text);
/* "-<text>": text should start with an error code ("ERR ..."); CR and LF
 * are replaced by spaces. */
void pos_localapi_reply_error(pos_localapi_reply_t *r, const char *text);
/* "*<n>": n elements follow; n < 0 writes a nil array. */
void pos_localapi_reply_array_begin(pos_localapi_reply_t *r, long long n);

/* Completes a reply whose handler returned POS_LOCALAPI_PENDING; "r" is
 * invalid afterwards. */
void pos_localapi_reply_done(pos_localapi_reply_t *r);

/* False when the client of "r" has disconnected (its reply goes nowhere:
 * the owner may skip the work, but must still call done). */
bool pos_localapi_reply_alive(const pos_localapi_reply_t *r);

#endif /* AGENT_API_LOCALAPI_H */
