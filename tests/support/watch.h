#ifndef TESTS_SUPPORT_WATCH_H
#define TESTS_SUPPORT_WATCH_H

/*
 * Watching an agent from outside while a test loads it (the burst and
 * slow-disk tests). Threads sample, from pos_watch_start until
 * pos_watch_stop:
 *
 *   - the status key's PTTL on Redis, every 100 ms: the lowest seen, and
 *     how often the key was missing;
 *   - the local API: a PING (or a GET of a given key) every
 *     local_interval_ms on a connection of its own, each answer's latency;
 *   - the agent's VmRSS and RssAnon (/proc/PID/status), every 100 ms: the
 *     first and the highest of each (RssAnon is the agent's own memory;
 *     VmRSS adds the store's mapped file pages, which the page cache can
 *     reclaim);
 *   - with status_writes, Redis's MONITOR: the server's timestamp of every
 *     SET of the status key, hence the longest time the key went without
 *     being rewritten. Each heartbeat is due one interval after the one
 *     before, which came no later than the write before it: a gap longer
 *     than interval + X between two writes means a heartbeat was more than
 *     X late (a status write in between can hide a late heartbeat, never
 *     invent one). Server timestamps: the test's own scheduling does not
 *     count.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "tests/support/fixture.h"

typedef struct pos_watch_opts {
    const char *local_key;      /* NULL: PING; else GET this key through the local API */
    unsigned local_interval_ms; /* between two local requests (0: 10 ms) */
    bool status_writes;         /* watch the status key's SETs with MONITOR */
} pos_watch_opts_t;

typedef struct pos_watch_series {
    double *v;
    size_t n, cap;
} pos_watch_series_t;

typedef struct pos_watch {
    pos_fix_t *f;
    pos_watch_opts_t opt;
    pthread_t th[3];
    bool running[3];
    int stop; /* set by pos_watch_stop (atomically) */
    pthread_mutex_t lock;

    /* status key */
    long long min_pttl_ms; /* lowest PTTL seen, -1 before any sample */
    int pttl_samples;
    int key_missing; /* samples where the key did not exist */
    /* local API */
    pos_watch_series_t local_ms; /* latency of each answer */
    int local_errors;            /* error replies, timeouts, lost connections */
    /* memory */
    long rss_first_kib, rss_max_kib;
    long anon_first_kib, anon_max_kib;
    /* status writes (Redis's clock, seconds) */
    pos_watch_series_t set_s;
    double stopped_s; /* Redis's clock when pos_watch_stop ran */
} pos_watch_t;

/* What the agent answers on payment:{terminalId} and transaction:{storeId},
 * counted per transaction id and type (messages with origin "terminal"), as
 * the cloud would: a redelivery (an "outboxId" already seen for that
 * transaction; delivery is at least once) is counted apart, not as a
 * second answer. */
enum pos_answer_type {
    POS_ANS_PROCESSING,
    POS_ANS_REJECTED,
    POS_ANS_APPROVED,
    POS_ANS_DECLINED,
    POS_ANS_CANCELLED,
    POS_ANS_COMPLETED, /* TRANSACTION_COMPLETED */
    POS_ANS_NTYPES
};

#define POS_ANS_IDS 4 /* outbox ids remembered per transaction */

typedef struct pos_answer_slot {
    char tx[64]; /* "" for a free slot */
    unsigned count[POS_ANS_NTYPES];
    double outbox_id[POS_ANS_IDS]; /* the last ones seen, to drop redeliveries */
    unsigned next_id;
} pos_answer_slot_t;

typedef struct pos_answers {
    pos_fix_t *f;
    redisContext *c;
    pthread_t th;
    bool running;
    int stop;
    pthread_mutex_t lock;
    pos_answer_slot_t *slot;
    size_t cap; /* a power of two */
    size_t used;
    unsigned long total[POS_ANS_NTYPES];
    unsigned long first;       /* transactions with a first answer */
    unsigned long lost;        /* answers for which the table had no room */
    unsigned long redelivered; /* messages dropped as redeliveries */
} pos_answers_t;

/*
 * Subscribes (confirmed before it returns) and counts in a thread. Room
 * for about expected_tx transactions. Returns 0 or -1.
 */
int pos_answers_start(pos_answers_t *a, pos_fix_t *f, size_t expected_tx);
/* Stops counting and frees everything. */
void pos_answers_stop(pos_answers_t *a);
/* Answers of type for tx so far. */
unsigned pos_answers_count(pos_answers_t *a, const char *tx, enum pos_answer_type type);
/* Transactions that got a first answer (PAYMENT_PROCESSING or PAYMENT_REJECTED) so far. */
unsigned long pos_answers_first(pos_answers_t *a);
/* Transactions that got more than one first answer so far. */
unsigned long pos_answers_repeated(pos_answers_t *a);
/* Waits until n transactions have a first answer; true when they do. */
bool pos_answers_wait_first(pos_answers_t *a, unsigned long n, int timeout_ms);
/* Waits until tx has at least n answers of type; true when it has. */
bool pos_answers_wait(pos_answers_t *a, const char *tx, enum pos_answer_type type, unsigned n,
                      int timeout_ms);

/*
 * Budgets checked after everything is measured: each check prints one
 * line, "ok" or "FAILED", and pos_watch_verdict fails the running test if
 * any failed, so a test shows all its figures even when an early budget
 * is already missed.
 */
typedef struct pos_watch_checks {
    int total, failed;
} pos_watch_checks_t;

void pos_watch_check(pos_watch_checks_t *c, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fails the running test (at the caller's line) when a check failed. */
#define pos_watch_verdict(c) pos_watch_verdict_at((c), __FILE__, __LINE__)
void pos_watch_verdict_at(const pos_watch_checks_t *c, const char *file, int line);

/* true when POS_BURST_FULL=1: the full-size burst and slow-disk runs. */
bool pos_watch_full(void);

/*
 * Starts watching f's agent (running) and Redis. Returns 0, or -1 when a
 * connection cannot be made (nothing left running).
 */
int pos_watch_start(pos_watch_t *w, pos_fix_t *f, const pos_watch_opts_t *opt);

/* Stops the threads; the results stay until pos_watch_free. */
void pos_watch_stop(pos_watch_t *w);

/* Frees the results. */
void pos_watch_free(pos_watch_t *w);

/* The pct-th percentile (0..100) of the local latencies in ms, -1 when none. */
double pos_watch_local_pct(pos_watch_t *w, double pct);

/* The longest time between two SETs of the status key seen while
 * watching, in ms, the last one to the stop included; -1 with none. */
double pos_watch_status_gap_ms(const pos_watch_t *w);

/* Prints the figures, one line each, prefixed with title. */
void pos_watch_print(pos_watch_t *w, const char *title);

/*
 * The next reply on c within timeout_ms, without spoiling c on a timeout
 * (hiredis's own timeout leaves the context unusable). Returns 1 with
 * *reply set (freeReplyObject it), 0 on timeout, -1 when the connection
 * failed.
 */
int pos_watch_next_reply(redisContext *c, int timeout_ms, redisReply **reply);

/* The pct-th percentile of v[0..n) (sorted in place), -1 when n is 0. */
double pos_watch_pct(double *v, size_t n, double pct);

/* A "field: N kB" line of /proc/PID/status (VmRSS, RssAnon, ...) in KiB,
 * -1 when it cannot be read. */
long pos_watch_proc_kib(int pid, const char *field);

#endif /* TESTS_SUPPORT_WATCH_H */
