#ifndef AGENT_LINK_RESP_GUARD_H
#define AGENT_LINK_RESP_GUARD_H

/*
 * A bound on what a Redis server may make the agent hold, checked before
 * hiredis buffers anything. hiredis 0.14's reader has no limit of its own:
 * it allocates whatever a header declares ("$2147483648", "*8888888888")
 * and keeps reading. The guard sits in front of it on every connection
 * (commands, subscriber, Sentinel) and reads the same bytes as they
 * arrive, parsing only the RESP2 headers (type byte and number line),
 * skipping bulk payloads without looking at them, and tracking the
 * nesting of arrays on a small stack. It refuses, at the header:
 *
 * - a bulk string longer than limits.bulk_bytes (the largest value or
 *   channel message the agent accepts, plus headroom);
 * - an array with more than limits.elements elements;
 * - arrays nested deeper than limits.depth;
 * - a status or error line longer than limits.line_bytes;
 * - one reply that would cost more than limits.reply_bytes in all (its bulk
 *   bytes, plus POS_RESP_GUARD_ITEM_COST per item and 8 bytes per array
 *   slot, about what hiredis allocates for it): many small limits do not
 *   multiply into a large allocation;
 * - anything malformed: a type byte that is not RESP2 (RESP3 types
 *   included: the agent never asks for RESP3), a length or integer line
 *   that is not a canonical number, a header line over
 *   POS_RESP_GUARD_HEADER_MAX bytes, a bulk string not followed by CRLF.
 *
 * Pure: bytes in, a verdict out, no I/O and no allocation, so it is unit
 * tested and fuzzed on its own. What it accepts, hiredis 0.14 parses into
 * the same replies (the fuzz target checks this), so the two never
 * disagree on where a reply ends.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting hiredis 0.14 itself allows (arrays in arrays); a deeper limit
 * would never be reached. */
#define POS_RESP_GUARD_DEPTH_MAX 8u
/* Defaults. Depth: CLUSTER SLOTS and CLUSTER SHARDS nest 4 deep, the
 * agent's own replies (ROLE, tracking pushes) at most 3. */
#define POS_RESP_GUARD_DEPTH 6u
/* Elements of one array: an MGET batch or a SCAN page holds hundreds, a
 * large cluster's CLUSTER SLOTS up to 16,384 slot ranges; room for them. */
#define POS_RESP_GUARD_ELEMENTS 65536u
/* A status or error line ("+OK", "-ERR ..."): Redis's are short. */
#define POS_RESP_GUARD_LINE_BYTES 8192u
/* Added to the largest value or message to give the bulk limit: a value a
 * little over [cache] max_value_bytes reaches the cache, which refuses it
 * with a clear error instead of a dropped connection. */
#define POS_RESP_GUARD_HEADROOM 4096u
/* Bulk limit when none is given: the default [cache] max_value_bytes. */
#define POS_RESP_GUARD_BULK_BYTES (256u * 1024u + POS_RESP_GUARD_HEADROOM)
/* What one whole reply may cost (bytes). An MGET of many large values is
 * the agent's largest; the cache's batches stay well under it. */
#define POS_RESP_GUARD_REPLY_BYTES (8u * 1024u * 1024u)
/* Bytes charged per item of a reply: hiredis's redisReply with its malloc
 * overhead and the parent's pointer to it. */
#define POS_RESP_GUARD_ITEM_COST 80u
/* Longest length or integer line ("-9223372036854775808"), CRLF excluded. */
#define POS_RESP_GUARD_HEADER_MAX 20u

typedef struct pos_resp_guard_limits {
    uint64_t bulk_bytes;  /* longest bulk string, bytes */
    uint32_t elements;    /* most elements of one array */
    uint32_t depth;       /* most arrays open at once (1: no nesting), <= DEPTH_MAX */
    uint32_t line_bytes;  /* longest status or error line, bytes, CRLF excluded */
    uint64_t reply_bytes; /* most one reply may cost, bytes (see above) */
} pos_resp_guard_limits_t;

/* Which limit or rule a refused stream broke. */
typedef enum pos_resp_guard_what {
    POS_RESP_GUARD_OK = 0,
    POS_RESP_GUARD_LIMIT_BULK,     /* -EMSGSIZE: seen = declared length */
    POS_RESP_GUARD_LIMIT_ELEMENTS, /* -EMSGSIZE: seen = declared element count */
    POS_RESP_GUARD_LIMIT_DEPTH,    /* -EMSGSIZE: seen = nesting the array would reach */
    POS_RESP_GUARD_LIMIT_LINE,     /* -EMSGSIZE: seen = bytes of the line so far */
    POS_RESP_GUARD_LIMIT_REPLY,    /* -EMSGSIZE: seen = cost of the reply so far */
    POS_RESP_GUARD_BAD_TYPE,       /* -EPROTO: seen = the type byte */
    POS_RESP_GUARD_BAD_NUMBER,     /* -EPROTO: a length or integer line that is not a number */
    POS_RESP_GUARD_BAD_HEADER,     /* -EPROTO: a header line over POS_RESP_GUARD_HEADER_MAX */
    POS_RESP_GUARD_BAD_CRLF,       /* -EPROTO: a bulk string not ended by CRLF */
} pos_resp_guard_what_t;

/* The guard's state; embed it. Fields are private but for the counters. */
typedef struct pos_resp_guard {
    pos_resp_guard_limits_t lim;
    uint8_t state;
    char type;                               /* type byte of the header being read */
    bool cr;                                 /* the last byte of a line was CR */
    bool neg;                                /* the number line started with '-' */
    uint32_t line_len;                       /* bytes of the line so far */
    uint32_t ndigits;                        /* digits of the number so far */
    uint64_t num;                            /* value of those digits */
    uint64_t bulk_left;                      /* payload bytes still to skip */
    uint32_t depth;                          /* arrays open */
    uint64_t left[POS_RESP_GUARD_DEPTH_MAX]; /* elements each open array still expects */
    uint64_t cost;                           /* of the reply being read */
    uint64_t replies;                        /* complete replies accepted since the last reset */
    int err;                                 /* sticky: 0, -EMSGSIZE or -EPROTO */
    pos_resp_guard_what_t what;
    uint64_t seen; /* the value that broke the limit */
} pos_resp_guard_t;

/* The default limits (the POS_RESP_GUARD_* values above). */
void pos_resp_guard_default_limits(pos_resp_guard_limits_t *lim);

/*
 * The bulk limit for an agent that accepts values of up to value_bytes and
 * channel messages of up to message_bytes: the larger plus
 * POS_RESP_GUARD_HEADROOM, in bytes.
 */
uint64_t pos_resp_guard_bulk_limit(uint64_t value_bytes, uint64_t message_bytes);

/*
 * Initialises g for a new stream with "lim" (NULL: the defaults; a zero
 * field: its default; a depth over POS_RESP_GUARD_DEPTH_MAX is lowered to it).
 */
void pos_resp_guard_init(pos_resp_guard_t *g, const pos_resp_guard_limits_t *lim);

/* Starts a new stream (a new connection) with the same limits. */
void pos_resp_guard_reset(pos_resp_guard_t *g);

/*
 * Reads the next len bytes of the stream. Returns 0 when all of them are
 * acceptable (*used = len), or the refusal: -EMSGSIZE (a limit) or -EPROTO
 * (malformed), with *used the bytes before the offending one (those may be
 * handed to the reader: they complete earlier replies, or start the one
 * refused). The refusal is sticky: every later call returns it, *used 0.
 */
int pos_resp_guard_feed(pos_resp_guard_t *g, const char *buf, size_t len, size_t *used);

/* True between replies: every reply accepted so far is complete. */
bool pos_resp_guard_idle(const pos_resp_guard_t *g);

/*
 * Describes the refusal for a log line ("bulk string of 2147483648 bytes
 * exceeds the limit of 266240 bytes"): the limit broken and the value seen.
 * Writes at most len bytes (NUL-terminated); "" when nothing was refused.
 */
void pos_resp_guard_describe(const pos_resp_guard_t *g, char *buf, size_t len);

#endif /* AGENT_LINK_RESP_GUARD_H */
