#include "platform/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static pos_log_level_t log_level = POS_LOG_INFO;
static bool log_syslog;
static int log_journal = -1; /* -1: not looked at yet */
static pos_log_tap_fn log_tap; /* errors and warnings also go here */
static void *log_tap_ctx;

static const char level_names[][6] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

/* Reads decimal digits (at least one) at *s into *v; false on overflow. */
static bool parse_decimal(const char **s, uintmax_t *v)
{
    const char *p = *s;

    *v = 0;
    if (*p < '0' || *p > '9') {
        return false;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (*v > (UINTMAX_MAX - d) / 10u) {
            return false;
        }
        *v = *v * 10u + d;
    }
    *s = p;
    return true;
}

bool pos_log_is_journal_stream(const char *journal_stream, dev_t dev, ino_t ino)
{
    const char *p = journal_stream;
    uintmax_t d, i;

    if (p == NULL || !parse_decimal(&p, &d) || *p++ != ':' || !parse_decimal(&p, &i) ||
        *p != '\0') {
        return false;
    }
    return d == (uintmax_t)dev && i == (uintmax_t)ino;
}

bool pos_log_detect_journal(void)
{
    struct stat st;

    /* systemd sets JOURNAL_STREAM for the service's own stderr; a child
     * or a redirection inherits the variable, not the stream: compare. */
    log_journal = fstat(STDERR_FILENO, &st) == 0 &&
                  pos_log_is_journal_stream(getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
    return log_journal;
}

void pos_log_set_level(pos_log_level_t level)
{
    log_level = level;
    if (log_journal < 0) {
        pos_log_detect_journal();
    }
}

void pos_log_use_syslog(bool on)
{
    if (on && !log_syslog) {
        openlog("posagent", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    } else if (!on && log_syslog) {
        closelog();
    }
    log_syslog = on;
}

int pos_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return (int)i;
        }
    }
    return -EINVAL;
}

const char *pos_log_level_name(pos_log_level_t level)
{
    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0])) {
        return "?";
    }
    return level_names[level];
}

size_t pos_log_format(char *buf, size_t len, bool journal, long long sec, long usec,
                      pos_log_level_t level, const char *module, const char *msg)
{
    int n;

    if (len < 2) {
        if (len == 1) {
            buf[0] = '\0';
        }
        return 0;
    }
    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0])) {
        level = POS_LOG_ERROR;
    }
    if (journal) {
        n = snprintf(buf, len, "<%d>%s: %s\n", syslog_prio[level], module, msg);
    } else {
        time_t t = (time_t)sec;
        struct tm tm;
        char stamp[32];
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(buf, len, "%s.%03ldZ %-5s %s: %s\n", stamp, usec / 1000, level_names[level],
                     module, msg);
    }
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    if ((size_t)n >= len) {
        /* Cut: the line still ends, so the next one starts on its own. */
        buf[len - 2] = '\n';
        return len - 1;
    }
    return (size_t)n;
}

void pos_log_set_tap(pos_log_tap_fn fn, void *ctx)
{
    log_tap_ctx = ctx;
    log_tap = fn;
}

void pos_log(pos_log_level_t level, const char *module, const char *fmt, ...)
{
    char msg[1024], line[1024 + 128];
    va_list ap;
    pos_log_tap_fn tap = log_tap;

    if (level > log_level && (tap == NULL || level > POS_LOG_WARN)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (tap != NULL && level <= POS_LOG_WARN) {
        tap(log_tap_ctx, level, module, msg);
    }
    if (level > log_level) {
        return;
    }

    if (log_syslog) {
        syslog(syslog_prio[level], "%s: %s", module, msg);
        return;
    }
    if (log_journal < 0) {
        pos_log_detect_journal();
    }

    struct timeval tv;
    gettimeofday(&tv, NULL);
    size_t n = pos_log_format(line, sizeof(line), log_journal == 1, (long long)tv.tv_sec,
                              (long)tv.tv_usec, level, module, msg);
    /* One write per line so that concurrent writers do not interleave. */
    fwrite(line, 1, n, stderr);
}
