#ifndef AGENT_API_RESP_PARSE_H
#define AGENT_API_RESP_PARSE_H

/*
 * Incremental parser for the commands a Redis client sends: arrays of bulk
 * strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline commands
 * ("GET k\r\n", with redis-cli style quoting: "a b", 'a b', \n, \xHH).
 * Pure: bytes in, complete commands out, no I/O, so it is unit tested and
 * fuzzed on its own.
 *
 * Usage: pos_resp_feed() whatever arrived, then call pos_resp_next() until
 * it returns 0 (needs more bytes) or an error. Errors are sticky: the
 * connection is beyond repair, answer "-ERR <pos_resp_error()>" and close.
 *
 * Hard limits (pos_resp_limits_t) bound what one client can make the agent
 * hold: arguments per command, bytes per bulk string, bytes per inline line
 * and bytes buffered but not yet handed out. A declared bulk length over a
 * limit fails as soon as its header is read, before its bytes arrive.
 * "*0" and "*-1" headers and blank inline lines are ignored, as Redis does.
 */

#include <stddef.h>
#include <stdint.h>

#define POS_RESP_MAX_ARGS    1024u
#define POS_RESP_MAX_BULK    (512u * 1024u)
#define POS_RESP_MAX_INLINE  (64u * 1024u)
#define POS_RESP_MAX_PENDING (1024u * 1024u)

typedef struct pos_resp_limits {
    uint32_t max_args;    /* arguments per command */
    uint32_t max_bulk;    /* bytes per bulk string */
    uint32_t max_inline;  /* bytes per inline command line, terminator excluded */
    uint32_t max_pending; /* bytes buffered and not yet handed out as commands */
} pos_resp_limits_t;

/* One complete command. argv[i] points at lens[i] bytes followed by a NUL
 * (the bytes may contain NULs too; lens is authoritative). Valid until the
 * next pos_resp_feed(), pos_resp_next() or pos_resp_free(). */
typedef struct pos_resp_cmd {
    int argc; /* >= 1 */
    const char **argv;
    const size_t *lens;
} pos_resp_cmd_t;

typedef struct pos_resp_parser {
    pos_resp_limits_t lim;
    char *buf;
    size_t cap, len; /* allocated and filled bytes of buf */
    size_t pos;      /* start of the command being parsed */
    size_t scan;     /* where parsing resumes inside it */
    int state;
    long long want;    /* multibulk: declared argument count */
    long long bulklen; /* multibulk: length of the argument being read */
    int argc;          /* arguments complete so far */
    int argcap;        /* entries allocated in off/lens/argv */
    size_t *off;
    size_t *lens;
    const char **argv;
    int err; /* sticky: 0 or negative errno */
    char errmsg[96];
} pos_resp_parser_t;

/* Default limits (POS_RESP_MAX_*). */
void pos_resp_default_limits(pos_resp_limits_t *lim);

/* Initialises p with "lim" (NULL: the defaults; zero fields: their default).
 * Allocates nothing until bytes arrive. */
void pos_resp_init(pos_resp_parser_t *p, const pos_resp_limits_t *lim);

/* Frees what p holds; p may be initialised again. */
void pos_resp_free(pos_resp_parser_t *p);

/*
 * Appends "len" bytes. Returns 0; -EMSGSIZE when the bytes held would exceed
 * max_pending (sticky error); -ENOMEM; or the sticky error of an earlier call.
 */
int pos_resp_feed(pos_resp_parser_t *p, const char *data, size_t len);

/*
 * Parses the next complete command into *cmd. Returns 1 with *cmd set, 0
 * when more bytes are needed, or a sticky negative errno: -EPROTO for
 * malformed input, -EMSGSIZE for a limit exceeded, -ENOMEM.
 */
int pos_resp_next(pos_resp_parser_t *p, pos_resp_cmd_t *cmd);

/* The sticky error as text for an "-ERR" reply ("Protocol error: ..."; no
 * CR/LF, printable ASCII only), or "" when there is none. */
const char *pos_resp_error(const pos_resp_parser_t *p);

/* Bytes pos_resp_feed() accepts right now without exceeding max_pending
 * (0 once an error is set). Reading at most this much never overflows. */
size_t pos_resp_room(const pos_resp_parser_t *p);

/* Heap bytes p holds right now (buffer and argument arrays). */
size_t pos_resp_memory(const pos_resp_parser_t *p);

#endif /* AGENT_API_RESP_PARSE_H */
