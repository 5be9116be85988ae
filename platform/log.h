#ifndef PLATFORM_LOG_H
#define PLATFORM_LOG_H

/*
 * Logging: one line per event, to stderr with an ISO-8601 UTC timestamp and
 * level, or to syslog. Never pass card numbers, PIN data, passwords or keys
 * to these functions.
 */

#include <stdbool.h>

typedef enum pos_log_level {
    POS_LOG_ERROR = 0,
    POS_LOG_WARN = 1,
    POS_LOG_INFO = 2,
    POS_LOG_DEBUG = 3,
} pos_log_level_t;

/* Sets the threshold; messages above it are discarded. */
void pos_log_set_level(pos_log_level_t level);
pos_log_level_t pos_log_get_level(void);

/* Routes output to syslog (ident "posagent", facility daemon) instead of stderr. */
void pos_log_use_syslog(bool on);

/* Parses "error", "warn", "info" or "debug". Returns the level, or -EINVAL. */
int pos_log_level_parse(const char *name);

/* Returns the lower-case name of a level. */
const char *pos_log_level_name(pos_log_level_t level);

/* Emits one log line. "module" is a short tag such as "link". */
void pos_log(pos_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define POS_ERR(mod, ...)   pos_log(POS_LOG_ERROR, mod, __VA_ARGS__)
#define POS_WARN(mod, ...)  pos_log(POS_LOG_WARN, mod, __VA_ARGS__)
#define POS_INFO(mod, ...)  pos_log(POS_LOG_INFO, mod, __VA_ARGS__)
#define POS_DEBUG(mod, ...) pos_log(POS_LOG_DEBUG, mod, __VA_ARGS__)

#endif /* PLATFORM_LOG_H */
