#ifndef AGENT_METRICS_RING_H
#define AGENT_METRICS_RING_H

/*
 * The last warnings and errors the agent logged, for remote diagnostics: a
 * small ring of lines, fed by the log's tap (platform/log.h) from any
 * thread. Log lines never carry secrets by the house rules; a line is
 * scrubbed again on its way in (pos_ring_scrub()), since this copy leaves
 * the till.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define POS_RING_LINES    16
#define POS_RING_LINE_MAX 200 /* bytes of a line, NUL included; longer ones are cut */

typedef struct pos_ring {
    uv_mutex_t lock;
    bool lock_ok;
    unsigned next;  /* where the next line goes */
    unsigned count; /* lines held, up to POS_RING_LINES */
    uint64_t total; /* lines ever added */
    struct {
        uint64_t ts_ms; /* epoch ms */
        char level;     /* 'E' or 'W' */
        char text[POS_RING_LINE_MAX];
    } line[POS_RING_LINES];
} pos_ring_t;

/* Returns 0 or a negative errno. */
int pos_ring_init(pos_ring_t *r);
void pos_ring_close(pos_ring_t *r);

/* Adds a line ("module: msg", scrubbed) at ts_ms; level 'E' or 'W'.
 * Safe from any thread. */
void pos_ring_add(pos_ring_t *r, uint64_t ts_ms, char level, const char *module, const char *msg);

/*
 * Calls fn for each line held, oldest first, under the ring's lock (fn
 * must not log). Returns the number of lines.
 */
unsigned pos_ring_each(pos_ring_t *r,
                       void (*fn)(void *ctx, uint64_t ts_ms, char level, const char *text),
                       void *ctx);

/*
 * Masks, in place, what looks like a secret that slipped into a line: runs
 * of 12 or more digits (card numbers, also with spaces or dashes between
 * groups) and of 32 or more hex digits (keys, signatures) become '*'; so
 * does the value after "password", "pass", "secret", "key" or "token"
 * followed by '=' or ':'. Pure.
 */
void pos_ring_scrub(char *s);

#endif /* AGENT_METRICS_RING_H */
