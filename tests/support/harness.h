#ifndef TESTS_SUPPORT_HARNESS_H
#define TESTS_SUPPORT_HARNESS_H

/*
 * Integration-test harness: a real redis-server on a free loopback port,
 * the posagent binary as a child process, and small helpers to talk to both
 * the way the cloud side would (an ordinary hiredis client).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

typedef struct pos_test_redis {
    pid_t pid;
    uint16_t port;
    char dir[256];         /* working directory and log */
    char password[64];     /* requirepass, "" for none */
    const char *extra[16]; /* extra "--option value" words, NULL-terminated */
} pos_test_redis_t;

/* A loopback TCP port free right now (e.g. for --tls-port), or 0. */
uint16_t pos_test_free_port(void);
/* Starts redis-server (port 0: pick a free one). Returns 0 or -1. */
int pos_test_redis_start(pos_test_redis_t *r);
/*
 * Starts a Redis Sentinel ("redis-server CONF --sentinel"; port 0: pick a
 * free one). "conf" holds the sentinel lines ("sentinel monitor ...");
 * port, bind, dir and logfile are added, and requirepass when r->password
 * is set. Stop it like a server.
 * Returns 0 or -1.
 */
int pos_test_sentinel_start(pos_test_redis_t *r, const char *conf);
/* Sends a signal to the server (SIGSTOP, SIGCONT, SIGKILL...). */
void pos_test_redis_signal(pos_test_redis_t *r, int sig);
/* SIGKILL and reap. */
void pos_test_redis_kill(pos_test_redis_t *r);
/* SIGTERM, reap and remove the directory. */
void pos_test_redis_stop(pos_test_redis_t *r);
/* A client connection (authenticated when a password is set), or NULL. */
redisContext *pos_test_redis_connect(const pos_test_redis_t *r);
/* One command on a fresh connection; the reply must be freed. */
redisReply *pos_test_redis_cmd(const pos_test_redis_t *r, const char *fmt, ...);

typedef struct pos_test_agent {
    pid_t pid;
    char dir[256];
    char conf[300];
    char log[300];
    int exit_status;            /* after stop: exit code, or 128+signal */
    const char *const *wrapper; /* e.g. {"valgrind", "--leak-check=full", NULL} */
} pos_test_agent_t;

/*
 * Writes "ini" to a config file (adding [hal] sim_dir = DIR/sim unless the
 * text sets sim_dir, [store] path, [local] socket, [payment]
 * allow_unsigned = true unless it names hmac_key_file or allow_unsigned,
 * and [security] allow_root = true unless it has those sections) and starts $POSAGENT_BIN --config
 * it, with the test's environment minus REDIS_* / POSAGENT_* / NOTIFY_SOCKET, plus "env"
 * (NULL-terminated "NAME=value" strings, may be NULL; each replaces an inherited variable of the
 * same name). Output goes to a log file. When a->wrapper is NULL and $POSAGENT_WRAPPER is set
 * (space-separated words, e.g. "qemu-aarch64 -L /"
 * for a cross-built agent), those words are put before the binary (and
 * before $POSAGENT_BIN when pos_test_run() runs it).
 * Returns 0 or -1.
 */
int pos_test_agent_start(pos_test_agent_t *a, const char *ini, const char *const *env);
/* Sends sig and waits up to timeout_ms; returns the exit status or -1. */
int pos_test_agent_stop(pos_test_agent_t *a, int sig, int timeout_ms);
/* True while the process runs. */
bool pos_test_agent_alive(pos_test_agent_t *a);
/* Number of log lines containing needle. */
int pos_test_agent_log_count(const pos_test_agent_t *a, const char *needle);
/* Waits until the log holds at least n lines containing needle. */
bool pos_test_agent_wait_log(const pos_test_agent_t *a, const char *needle, int n, int timeout_ms);
/* The whole log (malloc'd, NUL-terminated) for scanning. */
char *pos_test_agent_log_read(const pos_test_agent_t *a);
/* Removes the agent's directory. */
void pos_test_agent_cleanup(pos_test_agent_t *a);

/* Runs a program to completion with output captured (malloc'd into *out).
 * Returns its exit status, or -1. */
int pos_test_run(const char *const *argv, const char *const *env, char **out, int timeout_ms);

/* Monotonic milliseconds. */
uint64_t pos_test_now_ms(void);
/* Wall-clock time in Unix epoch milliseconds: a message's "ts", the status
 * key's. */
uint64_t pos_test_wall_ms(void);
/* Sleeps. */
void pos_test_sleep_ms(int ms);
/*
 * Calls done(arg) every interval_ms until it returns true or timeout_ms
 * have passed (it is called at least once). Returns the milliseconds it
 * took, or -1 on timeout.
 */
long pos_test_poll(bool (*done)(void *arg), void *arg, int interval_ms, int timeout_ms);

/* A subscriber connection for watching what the agent publishes. */
typedef struct pos_test_sub {
    redisContext *c;
} pos_test_sub_t;

int pos_test_sub_open(pos_test_sub_t *s, const pos_test_redis_t *r, const char *channel);
/* Subscribes to a NULL-terminated list of channels (all confirmed). */
int pos_test_sub_open_many(pos_test_sub_t *s, const pos_test_redis_t *r,
                           const char *const *channels);
/* Next message payload on any subscribed channel (malloc'd), or NULL when
 * none came within timeout_ms; the connection stays usable after that. */
char *pos_test_sub_next(pos_test_sub_t *s, int timeout_ms, char *channel, size_t chlen);
void pos_test_sub_close(pos_test_sub_t *s);
/*
 * The next message from the agent (origin "terminal") of the given type for
 * transaction tx (NULL: any), skipping all others, within timeout_ms. The
 * parsed message (cJSON_Delete it), its text in *text when text is not NULL
 * (malloc'd); NULL on timeout.
 */
cJSON *pos_test_sub_expect(pos_test_sub_t *s, const char *type, const char *tx, int timeout_ms,
                           char **text);

/*
 * Cutting the agent off while the test's own clients stay connected: the
 * agent logs in as Redis's default user, the test as "cloud".
 * pos_test_cloud_connect() creates that user (once) and returns a
 * connection as it; pos_test_cut_off() disables the default user and kills
 * its clients (off = true) or lets it back (off = false).
 */
redisContext *pos_test_cloud_connect(const pos_test_redis_t *r);
void pos_test_cut_off(redisContext *cloud, bool off);

/* How many of r's clients are named "posagent:<tid>" (CLIENT LIST): the
 * agent's connections. 0 when r does not run or does not answer. */
int pos_test_agent_clients(const pos_test_redis_t *r, const char *tid);

/* Reads a string key (malloc'd) or NULL. */
char *pos_test_get(const pos_test_redis_t *r, const char *key);
/* Integer reply of a command, or LLONG_MIN on error. */
long long pos_test_int(const pos_test_redis_t *r, const char *fmt, ...);

#endif /* TESTS_SUPPORT_HARNESS_H */
