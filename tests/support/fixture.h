#ifndef TESTS_SUPPORT_FIXTURE_H
#define TESTS_SUPPORT_FIXTURE_H

/*
 * The fixture shared by the integration and fault tests: one redis-server
 * on a free loopback port, one agent process started from a configuration
 * built in code (tests/support/ini.h), a subscriber for the test's use,
 * and the teardown of all of them.
 *
 *     pos_fix_start(f);                            redis-server, default ini
 *     pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "%u", 300);
 *     pos_fix_agent_start(f, NULL);                the agent, from f->ini
 *     pos_fix_wait_online(f, 1, 10000);
 *     ...
 *     pos_fix_stop(f);                             whatever still runs
 *
 * Failures are loud: a Redis that does not start makes pos_fix_start
 * return -1 after printing its log (a cmocka setup then fails the test);
 * an agent that cannot be started, or a log line that does not come,
 * fails the running test with the reason and the agent's log.
 *
 * A test with more state embeds a pos_fix_t in its own fixture.
 */

#include <stdbool.h>

#include "tests/support/harness.h"
#include "tests/support/ini.h"
#include "tests/support/slowfs_env.h"

/* The terminal and store of the default configuration, and its status key. */
#define POS_FIX_TID        "T-0001"
#define POS_FIX_SID        "S-042"
#define POS_FIX_STATUS_KEY "terminal:" POS_FIX_TID ":status"

typedef struct pos_fix {
    pos_test_redis_t redis;
    pos_test_agent_t agent;
    pos_ini_t ini;      /* what the next pos_fix_agent_start starts from */
    pos_test_sub_t sub; /* the test's subscriber, if it opens one */
    int starts;         /* agent starts so far (its log accumulates across them) */
    int stop_signal;    /* what pos_fix_stop sends a running agent: 0 is SIGKILL;
                         * SIGTERM for a clean stop (SIGKILL after 5 s) */
    pos_slowfs_env_t slowfs; /* pos_fix_slowfs's environment */
    char slowfs_log[300];    /* and the log of the calls it delayed */
} pos_fix_t;

/*
 * Clears f and fills f->ini with the defaults: [terminal] id POS_FIX_TID,
 * store_id POS_FIX_SID, [redis] (its url once Redis runs), [log] level
 * debug. Starts nothing.
 */
void pos_fix_init(pos_fix_t *f);

/*
 * Starts f->redis (its password and extra words, set before, are used)
 * and points [redis] url at it. Returns 0, or -1 after printing why and
 * redis-server's log (nothing is left running).
 */
int pos_fix_redis_start(pos_fix_t *f);

/* pos_fix_init, then pos_fix_redis_start. Returns 0 or -1. */
int pos_fix_start(pos_fix_t *f);

/* [redis] retry_delay_ms and max_retry_delay_ms: reconnects back off from
 * base_ms to cap_ms. */
void pos_fix_set_retry(pos_fix_t *f, unsigned base_ms, unsigned cap_ms);

/* [heartbeat] interval_s and ttl_s: the status key's refresh and lifetime. */
void pos_fix_set_heartbeat(pos_fix_t *f, unsigned interval_s, unsigned ttl_s);

/*
 * Starts the agent from f->ini with "env" (NULL-terminated "NAME=value"
 * strings, may be NULL) added to its environment. A later start, after a
 * stop, uses the same directory (same store, log appended). Fails the
 * running test, with the configuration, when the process cannot be started.
 * (A macro, like the waits below: a failure is reported at the caller's
 * line, the _at function does the work.)
 */
#define pos_fix_agent_start(f, env) pos_fix_agent_start_at((f), (env), __FILE__, __LINE__)
void pos_fix_agent_start_at(pos_fix_t *f, const char *const *env, const char *file, int line);

/*
 * The slow-disk fault (tests/support/slowfs.c) for the next agent start:
 * returns the environment to pass to pos_fix_agent_start, under which every
 * fsync, fdatasync, syncfs, msync(MS_SYNC), waiting sync_file_range and
 * write through an O_DSYNC/O_SYNC descriptor of the agent returns delay_ms
 * later, for files under prefix (NULL: every file). Works for a release
 * and an ASan agent (tests/support/slowfs_env.h). Each delayed call is
 * logged in the agent's directory (pos_fix_slowfs_delays); the directory
 * is created now if the agent has none yet. Fails the running test when
 * the shim was not built.
 */
const char *const *pos_fix_slowfs(pos_fix_t *f, unsigned delay_ms, const char *prefix);

/* How many calls named call (NULL: any) the slow-disk fault has delayed. */
int pos_fix_slowfs_delays(const pos_fix_t *f, const char *call);

/*
 * For an agent whose memory a test measures: in an ASan build the
 * environment that shrinks ASan's quarantine of freed memory from 256 MiB
 * to 4 MiB (which still catches a use after a recent free), so that RSS
 * measures the agent, not ASan; NULL in other builds. Static storage.
 */
const char *const *pos_fix_small_quarantine_env(void);

/* Prints the last 16 KiB of the agent's log to stderr. */
void pos_fix_dump_log(const pos_fix_t *f);

/* The same for the log of a redis-server or Sentinel of the harness. */
void pos_fix_dump_redis_log(const pos_test_redis_t *r);

/*
 * Waits up to timeout_ms for the log to hold n lines containing needle;
 * otherwise fails the running test, saying whether the agent still runs,
 * with the tail of its log.
 */
#define pos_fix_wait_log(f, needle, n, timeout_ms)                                                 \
    pos_fix_wait_log_at((f), (needle), (n), (timeout_ms), __FILE__, __LINE__)
void pos_fix_wait_log_at(pos_fix_t *f, const char *needle, int n, int timeout_ms, const char *file,
                         int line);

/* pos_fix_wait_log for the n-th "link: online". */
#define pos_fix_wait_online(f, n, timeout_ms)                                                      \
    pos_fix_wait_log_at((f), "link: online", (n), (timeout_ms), __FILE__, __LINE__)

/*
 * For tests of the local API: starts (or restarts: same store, log
 * appended) the agent from f->ini with reconnects backing off from 100 ms
 * to 500 ms, and waits up to 5 s for this start's "local API on".
 * pos_fix_start_online also waits up to 10 s for the first "link: online"
 * (a first start). Fail the running test, with the agent's log, otherwise.
 */
#define pos_fix_start_local(f)  pos_fix_start_local_at((f), false, __FILE__, __LINE__)
#define pos_fix_start_online(f) pos_fix_start_local_at((f), true, __FILE__, __LINE__)
void pos_fix_start_local_at(pos_fix_t *f, bool online, const char *file, int line);

/*
 * Cuts the agent off Redis (pos_test_cut_off(cloud, true); cloud is a
 * pos_test_cloud_connect connection) and waits up to 5 s for the nth
 * "link: offline" in its log; fails the running test otherwise.
 */
#define pos_fix_cut_off(f, cloud, nth) pos_fix_cut_off_at((f), (cloud), (nth), __FILE__, __LINE__)
void pos_fix_cut_off_at(pos_fix_t *f, redisContext *cloud, int nth, const char *file, int line);

/*
 * Stops the agent (SIGTERM, up to 5 s, then SIGKILL), removes its files and
 * forgets it: the next start is a fresh agent (new directory and store).
 */
void pos_fix_agent_forget(pos_fix_t *f);

/*
 * Tears down what still runs: the subscriber, the agent (SIGCONT in case
 * it was stopped, then f->stop_signal) and its files, redis-server and its
 * files. Safe on a fixture where nothing was started.
 */
void pos_fix_stop(pos_fix_t *f);

/* cmocka setup and teardown for a test whose state is a bare pos_fix_t
 * (allocated, pos_fix_start; pos_fix_stop, freed). */
int pos_fix_setup(void **state);
int pos_fix_teardown(void **state);
/* A cmocka test entry with them. */
#define POS_FIX_TEST(fn) cmocka_unit_test_setup_teardown(fn, pos_fix_setup, pos_fix_teardown)

/*
 * Which of a test program's cases run, from the environment (before
 * cmocka_run_group_tests): POS_TEST_FILTER runs only the cases it names,
 * POS_TEST_SKIP skips them (cmocka patterns, `*` and `?`). tests/CMakeLists.txt
 * uses them to put a long case under a label of its own.
 */
void pos_fix_filters_from_env(void);

/*
 * A connection to the agent's local API socket (DIR/agent.sock), with 5 s
 * timeouts, retried for up to 5 s while the agent starts; NULL when none.
 */
redisContext *pos_fix_local(const pos_fix_t *f);

/* pos_fix_local(), failing the running test (with the agent's log) when
 * there is no connection. Free it with redisFree. */
#define pos_fix_local_connect(f) pos_fix_local_connect_at((f), __FILE__, __LINE__)
redisContext *pos_fix_local_connect_at(const pos_fix_t *f, const char *file, int line);

/*
 * Waits until POS_FIX_STATUS_KEY on r holds a status "want" (NULL: any).
 * Returns the milliseconds waited, or -1 on timeout; when status is not
 * NULL, *status is the parsed key (cJSON_Delete it), or NULL on timeout.
 */
long pos_fix_wait_status(const pos_test_redis_t *r, const char *want, int timeout_ms,
                         cJSON **status);

/* The "ts" (epoch ms) of a status key's text; 0 when text is NULL or has
 * no numeric "ts". */
uint64_t pos_fix_status_ts(const char *text);

/* A PAYMENT_* message the agent published about one transaction. */
typedef struct pos_fix_payment_msg {
    char type[32];
    char reason[32];  /* "" when it has none */
    double outbox_id; /* -1 when it has none */
} pos_fix_payment_msg_t;

/*
 * The next PAYMENT_* message with "origin":"terminal" about tx that the
 * test's subscriber (f->sub, opened on the payment channel) receives
 * within timeout_ms, into *out; other messages are skipped. False when
 * none came.
 */
bool pos_fix_next_payment_msg(pos_fix_t *f, const char *tx, int timeout_ms,
                              pos_fix_payment_msg_t *out);

/*
 * One command through a fresh connection to the agent's local API; the
 * reply (free it). Fails the running test, at the caller's line, when
 * there is no connection or no reply.
 */
#define pos_fix_local_cmd(f, ...) pos_fix_local_cmd_at((f), __FILE__, __LINE__, __VA_ARGS__)
redisReply *pos_fix_local_cmd_at(const pos_fix_t *f, const char *file, int line, const char *fmt,
                                 ...);

/*
 * A latency test of the local API, as a till sees it: one call at a time
 * on one connection, first online, then with the agent cut off Redis.
 */
typedef struct pos_fix_latency {
    const char *what;     /* printed before each round's figures */
    const char *round[2]; /* the rounds' names: {"online", "offline"} when NULL */
    int n;                /* calls per round */
    unsigned max_p99_ms;  /* a round whose p99 reaches this fails the test */
    /* Sends call i on c and returns its reply (only this is timed). */
    redisReply *(*send)(redisContext *c, int i, void *arg);
    /* Checks a reply, failing the running test; offline in the second round. */
    void (*check)(const redisReply *r, bool offline, void *arg);
    void *arg;
} pos_fix_latency_t;

/*
 * Runs l: pos_fix_start_online, l->n timed calls, pos_fix_cut_off, l->n
 * more. Prints each round's p50, p99 and max in ms; fails the running test
 * when a call gets no reply or a round's p99 reaches l->max_p99_ms.
 */
void pos_fix_latency_run(pos_fix_t *f, const pos_fix_latency_t *l);

/* SET key value on the fixture's Redis (a cloud write); fails the running
 * test unless Redis says OK. */
void pos_fix_redis_set(pos_fix_t *f, const char *key, const char *value);

/* GET key through the agent's local API: the value (malloc'd) or NULL
 * for nil; fails the running test on any other answer. */
char *pos_fix_local_get(const pos_fix_t *f, const char *key);

/* pos_fix_local_get until it answers want or timeout_ms passed: the last
 * value read (malloc'd), NULL for nil. */
char *pos_fix_local_get_until(const pos_fix_t *f, const char *key, const char *want,
                              int timeout_ms);

/* How many GETs the fixture's Redis has served so far (INFO commandstats):
 * whether a read through the agent went to Redis or stayed local. */
long long pos_fix_redis_gets(const pos_fix_t *f);

/*
 * The integer "field" of INFO "section" through a local API connection
 * (the agent's INFO lines are "field:value"), or -1 when it is not there.
 * Fails the running test when INFO itself fails.
 */
long long pos_fix_local_info(redisContext *local, const char *section, const char *field);

/* pos_fix_local_info() on a connection of its own. */
long long pos_fix_info(const pos_fix_t *f, const char *section, const char *field);

/* Writes text to path with mode 0600 (a password or key file, which the
 * agent refuses when others may read it); fails the running test if it
 * cannot. */
void pos_fix_private_file(const char *path, const char *text);

/* The text of a simulated device's file (DIR/sim/NAME: "display.txt",
 * "receipts.txt"), malloc'd; "" when it does not exist yet. */
char *pos_fix_sim_text(const pos_fix_t *f, const char *name);

/* The simulated pinpad's charge count (DIR/sim/pinpad.charges), 0 when
 * nothing was charged yet. */
unsigned pos_fix_charges(const pos_fix_t *f);

#endif /* TESTS_SUPPORT_FIXTURE_H */
