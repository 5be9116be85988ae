#define _GNU_SOURCE /* execvpe */
#include "tests/support/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/args.h"

extern char **environ;

uint64_t pos_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pos_test_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void pos_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

long pos_test_poll(bool (*done)(void *arg), void *arg, int interval_ms, int timeout_ms)
{
    uint64_t t0 = pos_test_now_ms(), end = t0 + (uint64_t)timeout_ms;

    do {
        if (done(arg)) {
            return (long)(pos_test_now_ms() - t0);
        }
        pos_test_sleep_ms(interval_ms);
    } while (pos_test_now_ms() < end);
    return -1;
}

static uint16_t free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

uint16_t pos_test_free_port(void)
{
    return free_port();
}

/* A connection to 127.0.0.1:port, connect and command timeouts tv, logged
 * in with "AUTH [user] password" unless password is empty; NULL when
 * either fails. */
static redisContext *connect_as(uint16_t port, struct timeval tv, const char *user,
                                const char *password)
{
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c == NULL || c->err) {
        if (c != NULL) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (password[0] != '\0') {
        redisReply *rep = user != NULL ? redisCommand(c, "AUTH %s %s", user, password)
                                       : redisCommand(c, "AUTH %s", password);
        bool ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

redisContext *pos_test_redis_connect(const pos_test_redis_t *r)
{
    struct timeval tv = {2, 0};
    return connect_as(r->port, tv, NULL, r->password);
}

/* One command on a fresh connection, closed again; NULL without one. */
static redisReply *redis_vcmd(const pos_test_redis_t *r, const char *fmt, va_list ap)
{
    redisContext *c = pos_test_redis_connect(r);
    redisReply *rep;

    if (c == NULL) {
        return NULL;
    }
    rep = redisvCommand(c, fmt, ap);
    redisFree(c);
    return rep;
}

redisReply *pos_test_redis_cmd(const pos_test_redis_t *r, const char *fmt, ...)
{
    redisReply *rep;
    va_list ap;

    va_start(ap, fmt);
    rep = redis_vcmd(r, fmt, ap);
    va_end(ap);
    return rep;
}

static bool redis_ready(void *arg)
{
    redisReply *rep = pos_test_redis_cmd(arg, "PING");
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

/* A free port unless one was chosen, and a fresh directory unless one was
 * given ("kind": redis, sentinel). Returns 0 or -1. */
static int redis_prepare(pos_test_redis_t *r, const char *kind)
{
    if (r->port == 0) {
        r->port = free_port();
        if (r->port == 0) {
            return -1;
        }
    }
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof(r->dir), "/tmp/posagent-%s-XXXXXX", kind);
        if (mkdtemp(r->dir) == NULL) {
            return -1;
        }
    }
    return 0;
}

/* Forks a redis-server with argv (in its own process group) and waits up
 * to 5 s for it to answer PING. Returns 0 or -1 (the process may still
 * run: the caller decides). */
static int redis_spawn(pos_test_redis_t *r, const char *const *argv, const char *what)
{
    r->pid = fork();
    if (r->pid < 0) {
        return -1;
    }
    if (r->pid == 0) {
        setpgid(0, 0);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    if (pos_test_poll(redis_ready, r, 50, 5000) >= 0) {
        return 0;
    }
    fprintf(stderr, "%s on port %u did not come up\n", what, (unsigned)r->port);
    return -1;
}

int pos_test_redis_start(pos_test_redis_t *r)
{
    char port[8], logfile[300];
    const char *argv[64];
    int argc = 0;

    if (redis_prepare(r, "redis") != 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%u", (unsigned)r->port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", r->dir);
    argv[argc++] = "redis-server";
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--dir";
    argv[argc++] = r->dir;
    argv[argc++] = "--logfile";
    argv[argc++] = logfile;
    if (r->password[0] != '\0') {
        argv[argc++] = "--requirepass";
        argv[argc++] = r->password;
    }
    for (int i = 0; r->extra[i] != NULL && argc < 62; i++) {
        argv[argc++] = r->extra[i];
    }
    argv[argc] = NULL;
    return redis_spawn(r, argv, "redis-server");
}

int pos_test_sentinel_start(pos_test_redis_t *r, const char *conf)
{
    char path[300];
    FILE *fp;

    if (redis_prepare(r, "sentinel") != 0) {
        return -1;
    }
    /* Sentinel rewrites its configuration file, so it must be a file of
     * its own in a writable directory. */
    snprintf(path, sizeof(path), "%s/sentinel.conf", r->dir);
    fp = fopen(path, "w");
    if (fp == NULL) {
        return -1;
    }
    fprintf(fp, "port %u\nbind 127.0.0.1\ndir %s\nlogfile %s/redis.log\n%s\n", (unsigned)r->port,
            r->dir, r->dir, conf);
    if (r->password[0] != '\0') {
        fprintf(fp, "requirepass %s\n", r->password);
    }
    if (fclose(fp) != 0) {
        return -1;
    }
    const char *argv[] = {"redis-server", path, "--sentinel", NULL};
    if (redis_spawn(r, argv, "sentinel") != 0) {
        pos_test_redis_kill(r); /* a stray child would hold ctest's output open */
        return -1;
    }
    return 0;
}

void pos_test_redis_signal(pos_test_redis_t *r, int sig)
{
    if (r->pid > 0) {
        kill(r->pid, sig);
    }
}

void pos_test_redis_kill(pos_test_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

static void remove_dir(const char *dir)
{
    char cmd[400];
    if (dir[0] == '\0' || strncmp(dir, "/tmp/posagent-", 14) != 0) {
        return;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

void pos_test_redis_stop(pos_test_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
    if (getenv("POS_TEST_KEEP") == NULL) {
        remove_dir(r->dir);
    }
}

static bool env_skipped(const char *e)
{
    static const char *const prefixes[] = {"REDIS_", "POSAGENT_", "NOTIFY_SOCKET=", "WATCHDOG_",
                                           NULL};
    for (int i = 0; prefixes[i] != NULL; i++) {
        if (strncmp(e, prefixes[i], strlen(prefixes[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* One of the "NAME=value" strings in extra sets the same NAME as e. */
static bool env_replaced(const char *e, const char *const *extra)
{
    const char *eq = strchr(e, '=');
    size_t len = eq != NULL ? (size_t)(eq - e) + 1 : strlen(e);

    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (strncmp(extra[i], e, len) == 0) {
            return true;
        }
    }
    return false;
}

/* The test's environment for a child, without what env_skipped names and
 * with extra added; an extra variable replaces an inherited one of the
 * same name (getenv would see only the first of two). */
static char **build_env(const char *const *extra)
{
    size_t n = 0, m = 0, k = 0;
    char **env;

    while (environ[n] != NULL) {
        n++;
    }
    while (extra != NULL && extra[m] != NULL) {
        m++;
    }
    env = calloc(n + m + 1, sizeof(*env));
    if (env == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!env_skipped(environ[i]) && !env_replaced(environ[i], extra)) {
            env[k++] = environ[i];
        }
    }
    for (size_t i = 0; i < m; i++) {
        env[k++] = (char *)extra[i];
    }
    env[k] = NULL;
    return env;
}

/* Splits $POSAGENT_WRAPPER ("qemu-aarch64 -L /": space
 * separated words, no quoting) into words[] (NULL-terminated, pointing into
 * buf). Returns words, or NULL when the variable is unset or blank. */
static const char *const *wrapper_from_env(const char **words, size_t nwords, char *buf,
                                           size_t buflen)
{
    const char *w = getenv("POSAGENT_WRAPPER");
    size_t n = 0;
    char *save = NULL;

    if (w == NULL || strlen(w) >= buflen) {
        return NULL;
    }
    memcpy(buf, w, strlen(w) + 1);
    for (char *t = strtok_r(buf, " \t", &save); t != NULL && n + 1 < nwords;
         t = strtok_r(NULL, " \t", &save)) {
        words[n++] = t;
    }
    words[n] = NULL;
    return n > 0 ? words : NULL;
}

int pos_test_agent_start(pos_test_agent_t *a, const char *ini, const char *const *env)
{
    const char *bin = getenv("POSAGENT_BIN");
    char **envp;
    FILE *f;
    int cfd;

    if (bin == NULL) {
        fprintf(stderr, "POSAGENT_BIN is not set\n");
        return -1;
    }
    if (a->dir[0] == '\0') {
        snprintf(a->dir, sizeof(a->dir), "/tmp/posagent-agent-XXXXXX");
        if (mkdtemp(a->dir) == NULL) {
            return -1;
        }
    }
    snprintf(a->conf, sizeof(a->conf), "%s/posagent.ini", a->dir);
    snprintf(a->log, sizeof(a->log), "%s/agent.log", a->dir);
    /* Owner-only, as a configuration holding a password should be (the
     * agent refuses one its socket's group could read). */
    cfd = open(a->conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (cfd < 0 || fchmod(cfd, 0600) != 0 || (f = fdopen(cfd, "w")) == NULL) {
        if (cfd >= 0) {
            close(cfd);
        }
        return -1;
    }
    fputs(ini, f);
    /* Simulated devices keep their files with the agent's, unless the test
     * chose a place (a repeated [hal] section is allowed). */
    if (strstr(ini, "sim_dir") == NULL) {
        fprintf(f, "\n[hal]\nsim_dir = %s/sim\n", a->dir);
    }
    /* Also when [store] sets something else: a test must never open the
     * system's store (path is the only key of that name). */
    if (strstr(ini, "[store]") == NULL || strstr(ini, "\npath =") == NULL) {
        fprintf(f, "\n[store]\npath = %s/store\n", a->dir);
    }
    /* Also when [local] sets something else (a password): a repeated
     * section is allowed, and the agent must never fall back to /run. */
    if (strstr(ini, "[local]") == NULL || strstr(ini, "\nsocket =") == NULL) {
        fprintf(f, "\n[local]\nsocket = %s/agent.sock\n", a->dir);
    }
    /* Unsigned messages are refused by default: tests that are about
     * signing set hmac_key_file (or allow_unsigned themselves). */
    if (strstr(ini, "hmac_key_file") == NULL && strstr(ini, "allow_unsigned") == NULL) {
        fprintf(f, "\n[payment]\nallow_unsigned = true\n");
    }
    /* CI runs as root, and the agent refuses root unless told: tests that
     * are about privileges write their own [security] section. */
    if (strstr(ini, "[security]") == NULL) {
        fprintf(f, "\n[security]\nallow_root = true\n");
    }
    fclose(f);
    envp = build_env(env);
    if (envp == NULL) {
        return -1;
    }
    fflush(NULL);
    a->pid = fork();
    if (a->pid < 0) {
        free(envp);
        return -1;
    }
    if (a->pid == 0) {
        int fd = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[32];
        const char *env_words[16];
        char env_buf[512];
        const char *const *wrapper = a->wrapper;
        int argc = 0;
        /* A test's own wrapper (valgrind) wins over the environment's
         * (qemu-user, for a cross-built agent). */
        if (wrapper == NULL) {
            wrapper = wrapper_from_env(env_words, 16, env_buf, sizeof(env_buf));
        }
        for (int i = 0; wrapper != NULL && wrapper[i] != NULL && argc < 28; i++) {
            argv[argc++] = wrapper[i];
        }
        argv[argc++] = bin;
        argv[argc++] = "--config";
        argv[argc++] = a->conf;
        argv[argc] = NULL;
        if (wrapper != NULL) {
            execvpe(argv[0], (char *const *)argv, envp);
        } else {
            execve(bin, (char *const *)argv, envp);
        }
        _exit(127);
    }
    free(envp);
    return 0;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    int st;

    for (;;) {
        pid_t p = waitpid(pid, &st, WNOHANG);
        if (p == pid) {
            if (WIFEXITED(st)) {
                return WEXITSTATUS(st);
            }
            return 128 + WTERMSIG(st);
        }
        if (p < 0 || pos_test_now_ms() > end) {
            return -1;
        }
        pos_test_sleep_ms(10);
    }
}

int pos_test_agent_stop(pos_test_agent_t *a, int sig, int timeout_ms)
{
    int st;

    if (a->pid <= 0) {
        return a->exit_status;
    }
    kill(a->pid, sig);
    st = wait_exit(a->pid, timeout_ms);
    if (st < 0) {
        kill(a->pid, SIGKILL);
        waitpid(a->pid, NULL, 0);
    }
    a->pid = 0;
    a->exit_status = st;
    return st;
}

bool pos_test_agent_alive(pos_test_agent_t *a)
{
    int st;
    if (a->pid <= 0) {
        return false;
    }
    pid_t p = waitpid(a->pid, &st, WNOHANG);
    if (p == a->pid) {
        a->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        a->pid = 0;
        return false;
    }
    return true;
}

char *pos_test_agent_log_read(const pos_test_agent_t *a)
{
    FILE *f = fopen(a->log, "rb");
    char *buf;
    long n;

    if (f == NULL) {
        return calloc(1, 1);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int pos_test_agent_log_count(const pos_test_agent_t *a, const char *needle)
{
    char *log = pos_test_agent_log_read(a), *line, *save = NULL;
    int count = 0;

    if (log == NULL) {
        return 0;
    }
    for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, needle) != NULL) {
            count++;
        }
    }
    free(log);
    return count;
}

typedef struct log_wait {
    const pos_test_agent_t *a;
    const char *needle;
    int n;
} log_wait_t;

static bool log_has(void *arg)
{
    const log_wait_t *w = arg;
    return pos_test_agent_log_count(w->a, w->needle) >= w->n;
}

bool pos_test_agent_wait_log(const pos_test_agent_t *a, const char *needle, int n, int timeout_ms)
{
    log_wait_t w = {a, needle, n};
    return pos_test_poll(log_has, &w, 20, timeout_ms) >= 0;
}

void pos_test_agent_cleanup(pos_test_agent_t *a)
{
    if (a->pid > 0) {
        pos_test_agent_stop(a, SIGKILL, 2000);
    }
    if (getenv("POS_TEST_KEEP") == NULL) {
        remove_dir(a->dir);
    } else {
        fprintf(stderr, "agent files kept in %s\n", a->dir);
    }
}

/*
 * Whether posagent would execute posagent-tools for argv: asked of
 * posagent's own parser (agent/args.h). Under $POSAGENT_WRAPPER (qemu-user)
 * an emulated posagent cannot execute another binary of its architecture,
 * so the harness runs posagent-tools, beside it, itself; natively the
 * tests go through posagent. Called in the child, just before its exec.
 */
static bool runs_tools(const char *const *argv)
{
    pos_args_t a;
    int argc = 0;

    while (argv[argc] != NULL) {
        argc++;
    }
    pos_args_parse(&a, argc, (char **)argv, true);
    /* All but running and --version (posagent's own). */
    return a.action != POS_ARGS_RUN && a.action != POS_ARGS_VERSION;
}

int pos_test_run(const char *const *argv, const char *const *env, char **out, int timeout_ms)
{
    char path[] = "/tmp/posagent-run-XXXXXX";
    int fd = mkstemp(path), st;
    char **envp = build_env(env);
    pid_t pid;

    if (fd < 0 || envp == NULL) {
        free(envp);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        const char *bin = getenv("POSAGENT_BIN");
        const char *words[16], *wargv[48];
        char buf[512];
        const char *const *wrapper = wrapper_from_env(words, 16, buf, sizeof(buf));
        dup2(fd, 1);
        dup2(fd, 2);
        /* The agent binary runs under $POSAGENT_WRAPPER here too. */
        if (wrapper != NULL && bin != NULL && strcmp(argv[0], bin) == 0) {
            size_t n = 0;
            char tools[PATH_MAX];
            const char *slash = strrchr(bin, '/');
            for (size_t i = 0; wrapper[i] != NULL; i++) {
                wargv[n++] = wrapper[i];
            }
            if (runs_tools(argv) && slash != NULL &&
                (size_t)snprintf(tools, sizeof(tools), "%.*s/posagent-tools", (int)(slash - bin),
                                 bin) < sizeof(tools)) {
                wargv[n++] = tools;
            } else {
                wargv[n++] = argv[0];
            }
            for (size_t i = 1; argv[i] != NULL && n + 1 < 48; i++) {
                wargv[n++] = argv[i];
            }
            wargv[n] = NULL;
            execvpe(wargv[0], (char *const *)wargv, envp);
            _exit(127);
        }
        /* A bare name (an emulator, an interpreter) is looked up in PATH. */
        execvpe(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    free(envp);
    st = pid > 0 ? wait_exit(pid, timeout_ms) : -1;
    if (st < 0 && pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (out != NULL) {
        off_t n = lseek(fd, 0, SEEK_END);
        *out = malloc((size_t)n + 1);
        if (*out != NULL) {
            ssize_t got = pread(fd, *out, (size_t)n, 0);
            (*out)[got > 0 ? got : 0] = '\0';
        }
    }
    close(fd);
    unlink(path);
    return st;
}

int pos_test_sub_open(pos_test_sub_t *s, const pos_test_redis_t *r, const char *channel)
{
    redisReply *rep;

    s->c = pos_test_redis_connect(r);
    if (s->c == NULL) {
        return -1;
    }
    rep = redisCommand(s->c, "SUBSCRIBE %s", channel);
    if (rep == NULL) {
        return -1;
    }
    freeReplyObject(rep);
    return 0;
}

int pos_test_sub_open_many(pos_test_sub_t *s, const pos_test_redis_t *r,
                           const char *const *channels)
{
    int n = 0;

    s->c = pos_test_redis_connect(r);
    if (s->c == NULL) {
        return -1;
    }
    for (; channels[n] != NULL; n++) {
        if (redisAppendCommand(s->c, "SUBSCRIBE %s", channels[n]) != REDIS_OK) {
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(s->c, &reply) != REDIS_OK) {
            return -1;
        }
        freeReplyObject(reply);
    }
    return 0;
}

char *pos_test_sub_next(pos_test_sub_t *s, int timeout_ms, char *channel, size_t chlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    void *reply = NULL;
    char *payload = NULL;

    /* A reply already read waits in the reader. Else wait for the socket
     * here: a read timeout inside hiredis leaves the context in an error
     * state, and every later call would fail at once (a test collecting
     * in two rounds saw nothing in the second). */
    if (s->c->err != 0 || redisGetReplyFromReader(s->c, &reply) != REDIS_OK) {
        return NULL;
    }
    if (reply == NULL) {
        struct pollfd pfd = {s->c->fd, POLLIN, 0};
        int n;
        do {
            n = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : 0);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            return NULL; /* nothing arrived; the context stays usable */
        }
        redisSetTimeout(s->c, tv);
        if (redisGetReply(s->c, &reply) != REDIS_OK || reply == NULL) {
            return NULL;
        }
    }
    redisReply *r = reply;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        payload = strndup(r->element[2]->str, r->element[2]->len);
        if (channel != NULL) {
            snprintf(channel, chlen, "%.*s", (int)r->element[1]->len, r->element[1]->str);
        }
    }
    freeReplyObject(r);
    return payload;
}

static bool json_str_is(const cJSON *j, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

cJSON *pos_test_sub_expect(pos_test_sub_t *s, const char *type, const char *tx, int timeout_ms,
                           char **text)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;

    while (pos_test_now_ms() < end) {
        char *m = pos_test_sub_next(s, (int)(end - pos_test_now_ms()) + 1, NULL, 0);
        if (m == NULL) {
            break;
        }
        cJSON *j = cJSON_Parse(m);
        if (json_str_is(j, "origin", "terminal") && json_str_is(j, "type", type) &&
            (tx == NULL || json_str_is(j, "transactionId", tx))) {
            if (text != NULL) {
                *text = m;
            } else {
                free(m);
            }
            return j;
        }
        free(m);
        cJSON_Delete(j);
    }
    return NULL;
}

void pos_test_sub_close(pos_test_sub_t *s)
{
    if (s->c != NULL) {
        redisFree(s->c);
        s->c = NULL;
    }
}

redisContext *pos_test_cloud_connect(const pos_test_redis_t *r)
{
    struct timeval tv = {15, 0}; /* waits for arrivals, does not time them */
    redisReply *rep = pos_test_redis_cmd(r, "ACL SETUSER cloud on >cloud-pw ~* &* +@all");

    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return connect_as(r->port, tv, "cloud", "cloud-pw");
}

void pos_test_cut_off(redisContext *cloud, bool off)
{
    redisReply *rep =
        redisCommand(cloud, off ? "ACL SETUSER default off" : "ACL SETUSER default on");
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    if (off) {
        rep = redisCommand(cloud, "CLIENT KILL USER default");
        if (rep != NULL) {
            freeReplyObject(rep);
        }
    }
}

char *pos_test_get(const pos_test_redis_t *r, const char *key)
{
    redisReply *rep = pos_test_redis_cmd(r, "GET %s", key);
    char *v = NULL;

    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        v = strndup(rep->str, rep->len);
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return v;
}

long long pos_test_int(const pos_test_redis_t *r, const char *fmt, ...)
{
    redisReply *rep;
    long long v = LLONG_MIN;
    va_list ap;

    va_start(ap, fmt);
    rep = redis_vcmd(r, fmt, ap);
    va_end(ap);
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
        v = rep->integer;
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return v;
}

int pos_test_agent_clients(const pos_test_redis_t *r, const char *tid)
{
    redisReply *rep = r->pid > 0 ? pos_test_redis_cmd(r, "CLIENT LIST") : NULL;
    char needle[96];
    int n = 0;

    snprintf(needle, sizeof(needle), "name=posagent:%s ", tid);
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        for (const char *p = rep->str; (p = strstr(p, needle)) != NULL; p++) {
            n++;
        }
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return n;
}
