#ifndef AGENT_API_RATELIMIT_H
#define AGENT_API_RATELIMIT_H

/*
 * The till's own sliding window for RATELIMIT while Redis cannot decide
 * (docs/local-api.md, CONTRACT.md "Rate limits"). Pure: time comes in as an
 * argument (any monotonic millisecond clock), no I/O.
 *
 * One entry per (identifier, windowMs), as Redis has one key
 * rate_limit:{identifier}:{windowMs}. An entry counts requests in
 * POS_RL_BUCKETS buckets of ceil(windowMs / POS_RL_BUCKETS) ms, so its
 * memory is fixed whatever "max" is. Counts are exact; a request stops
 * counting when the last millisecond of its bucket is windowMs old, i.e.
 * between windowMs and windowMs + windowMs / POS_RL_BUCKETS after it was
 * made: never earlier, so the local window never admits more than "max"
 * within any windowMs.
 *
 * The table holds at most "cap" entries (fixed memory, allocated at init);
 * a new identifier beyond that replaces the least recently used one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_RL_BUCKETS     32u
#define POS_RL_SLOTS       (POS_RL_BUCKETS + 2u) /* live buckets at most */
#define POS_RL_IDENT_MAX   128u                  /* bytes of an identifier */
#define POS_RL_WINDOW_MAX  86400000u             /* ms: one day */
#define POS_RL_MAX_MAX     1000000u              /* requests per window */
#define POS_RL_DEFAULT_CAP 1024u                 /* entries */

typedef struct pos_rl_entry {
    uint64_t hash;      /* of identifier and window; 0: a free entry */
    uint64_t last_used; /* the table's use counter at the last check */
    uint32_t window_ms;
    uint32_t id_len;
    char id[POS_RL_IDENT_MAX];
    uint64_t bucket[POS_RL_SLOTS]; /* bucket number held by each slot */
    uint32_t count[POS_RL_SLOTS];  /* requests admitted in it */
} pos_rl_entry_t;

typedef struct pos_ratelimit {
    pos_rl_entry_t *entries;
    size_t cap;
    size_t used;
    uint64_t uses;    /* checks so far: the LRU clock */
    uint64_t evicted; /* entries replaced to make room */
} pos_ratelimit_t;

/* What a check answers. */
typedef struct pos_rl_result {
    bool allowed;
    uint32_t remaining; /* requests still admitted in the window after this one */
    uint64_t reset_ms;  /* when the oldest counted request stops counting (the clock's time) */
} pos_rl_result_t;

/* Allocates room for cap entries (0: POS_RL_DEFAULT_CAP). Returns 0 or -ENOMEM. */
int pos_ratelimit_init(pos_ratelimit_t *rl, size_t cap);

/* Frees the table (a zeroed one too). */
void pos_ratelimit_free(pos_ratelimit_t *rl);

/*
 * True for an identifier RATELIMIT takes: 1..POS_RL_IDENT_MAX bytes of
 * letters, digits and . _ - : @ + = / (no spaces, control bytes or glob
 * characters: it becomes part of a Redis key the cloud reads too).
 */
bool pos_ratelimit_valid_id(const char *id, size_t len);

/*
 * Checks one request against the window at now_ms and, when allowed,
 * counts it. window_ms 1..POS_RL_WINDOW_MAX, max 1..POS_RL_MAX_MAX.
 * Returns 0 with *out filled, or -EINVAL (bad arguments; nothing counted).
 */
int pos_ratelimit_check(pos_ratelimit_t *rl, const char *id, size_t len, uint32_t window_ms,
                        uint32_t max, uint64_t now_ms, pos_rl_result_t *out);

/*
 * Counts a request Redis admitted (the shared window decided), so that
 * the local window goes on from what this till did if the link drops.
 * Returns 0 or -EINVAL.
 */
int pos_ratelimit_record(pos_ratelimit_t *rl, const char *id, size_t len, uint32_t window_ms,
                         uint64_t now_ms);

#endif /* AGENT_API_RATELIMIT_H */
