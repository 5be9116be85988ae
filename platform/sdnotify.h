#ifndef PLATFORM_SDNOTIFY_H
#define PLATFORM_SDNOTIFY_H

/*
 * systemd notification over $NOTIFY_SOCKET (the datagram protocol; no
 * libsystemd). All functions are no-ops returning 0 when the agent is not
 * run by systemd.
 */

#include <stdint.h>

/* Sends one notification such as "READY=1" or "STATUS=online".
 * Returns 0, or a negative errno. */
int pos_sd_notify(const char *state);

/* Sends a formatted notification. */
int pos_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Returns the watchdog period in microseconds from $WATCHDOG_USEC (checking
 * $WATCHDOG_PID when set), or 0 when the watchdog is not enabled.
 */
uint64_t pos_sd_watchdog_usec(void);

#endif /* PLATFORM_SDNOTIFY_H */
