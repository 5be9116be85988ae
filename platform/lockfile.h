#ifndef PLATFORM_LOCKFILE_H
#define PLATFORM_LOCKFILE_H

/*
 * Lock files: an exclusive advisory lock (flock) held for as long as the
 * descriptor stays open, released by the kernel when the process ends
 * however it ends (a kill -9 or a power cut leaves no stale lock behind).
 * Used so that one agent at a time runs on a store directory and on a local
 * socket (docs/hardening.md "One agent per till").
 */

#include <sys/types.h>

/*
 * Takes the lock on "path", creating the file (mode 0600) if missing; never
 * through a symbolic link, and only on a regular file. On success *fd holds
 * it (close it, or exit, to release it) and the file holds this process's
 * pid as text. Returns 0, -EBUSY when another process holds it (*holder:
 * that process's pid as it wrote it, 0 when unknown; may be NULL), or a
 * negative errno (-ELOOP for a link, -EINVAL for a non-regular file).
 */
int pos_lockfile_take(const char *path, int *fd, pid_t *holder);

/*
 * Whether "path" is locked by a process now (without taking it): 0 when it
 * is free or absent, -EBUSY (with *holder as above) when it is held, or a
 * negative errno.
 */
int pos_lockfile_probe(const char *path, pid_t *holder);

#endif /* PLATFORM_LOCKFILE_H */
