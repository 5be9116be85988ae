#ifndef PLATFORM_LOG_H
#define PLATFORM_LOG_H

/*
 * Logging: one line per event, to stderr with an ISO-8601 UTC timestamp and
 * level, or to syslog. When stderr is the systemd journal (systemd sets
 * $JOURNAL_STREAM to its device and inode), lines start with a syslog
 * priority instead ("<4>link: ...", sd-daemon(3)) and carry no timestamp:
 * the journal keeps both, and `journalctl -p warning` finds warnings.
 * Never pass card numbers, PIN data, passwords or keys to these functions.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef enum pos_log_level {
    POS_LOG_ERROR = 0,
    POS_LOG_WARN = 1,
    POS_LOG_INFO = 2,
    POS_LOG_DEBUG = 3,
} pos_log_level_t;

/* Sets the threshold; messages above it are discarded. Also looks at
 * whether stderr is the journal, if not done yet. */
void pos_log_set_level(pos_log_level_t level);

/* Routes output to syslog (ident "posagent", facility daemon) instead of stderr. */
void pos_log_use_syslog(bool on);

/* Parses "error", "warn", "info" or "debug". Returns the level, or -EINVAL. */
int pos_log_level_parse(const char *name);

/* Returns the lower-case name of a level. */
const char *pos_log_level_name(pos_log_level_t level);

/*
 * Decides, from $JOURNAL_STREAM and stderr's device and inode, whether
 * lines on stderr go to the journal. Done once by the first pos_log() or
 * pos_log_set_level() (from the main thread, before any other thread
 * logs); call again after redirecting stderr. Returns the decision.
 */
bool pos_log_detect_journal(void);

/* True when journal_stream (the value of $JOURNAL_STREAM: "DEV:INO" in
 * decimal, or NULL) names the file with device dev and inode ino. Pure. */
bool pos_log_is_journal_stream(const char *journal_stream, dev_t dev, ino_t ino);

/*
 * Formats one line for stderr, newline included, into buf: with journal,
 * "<N>module: msg" (N the syslog priority: 3 error, 4 warn, 6 info,
 * 7 debug); else "YYYY-MM-DDTHH:MM:SS.mmmZ level module: msg" at
 * wall-clock time sec.usec. A message too long for buf is cut, the newline
 * kept. Returns the length written (without the NUL). Pure.
 */
size_t pos_log_format(char *buf, size_t len, bool journal, long long sec, long usec,
                      pos_log_level_t level, const char *module, const char *msg);

/*
 * A tap: fn gets every error and warning (whatever the level threshold),
 * from whichever thread logs it, after the line was formatted (module and
 * message separately, no timestamp). One tap; NULL removes it. Set it
 * before other threads log, remove it after they stopped.
 */
typedef void (*pos_log_tap_fn)(void *ctx, pos_log_level_t level, const char *module,
                               const char *msg);
void pos_log_set_tap(pos_log_tap_fn fn, void *ctx);

/* Emits one log line. "module" is a short tag such as "link". */
void pos_log(pos_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define POS_ERR(mod, ...)   pos_log(POS_LOG_ERROR, mod, __VA_ARGS__)
#define POS_WARN(mod, ...)  pos_log(POS_LOG_WARN, mod, __VA_ARGS__)
#define POS_INFO(mod, ...)  pos_log(POS_LOG_INFO, mod, __VA_ARGS__)
#define POS_DEBUG(mod, ...) pos_log(POS_LOG_DEBUG, mod, __VA_ARGS__)

#endif /* PLATFORM_LOG_H */
