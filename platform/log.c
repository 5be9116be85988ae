#include "platform/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

static pos_log_level_t log_level = POS_LOG_INFO;
static bool log_syslog;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void pos_log_set_level(pos_log_level_t level)
{
    log_level = level;
}

pos_log_level_t pos_log_get_level(void)
{
    return log_level;
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

void pos_log(pos_log_level_t level, const char *module, const char *fmt, ...)
{
    static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[1024];
    va_list ap;

    if (level > log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (log_syslog) {
        syslog(syslog_prio[level], "%s: %s", module, msg);
        return;
    }

    struct timeval tv;
    struct tm tm;
    char stamp[32];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so that concurrent writers do not interleave. */
    fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", stamp, (long)(tv.tv_usec / 1000),
            level_names[level], module, msg);
}
