#ifndef PLATFORM_FILES_H
#define PLATFORM_FILES_H

/*
 * Small files the agent writes or reads back: never through a symbolic
 * link planted where they go, never blocking on a FIFO, and only regular
 * files (docs/hardening.md).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Opens path with flags (O_RDONLY, O_WRONLY | O_CREAT | O_APPEND, ...;
 * O_CLOEXEC and O_NOCTTY are added) and mode, never through a symbolic
 * link and without waiting on a FIFO; the descriptor is blocking again on
 * return. Returns it, or -ELOOP (a link), -EINVAL (not a regular file) or
 * another negative errno.
 */
int pos_file_open(const char *path, int flags, mode_t mode);

/*
 * Replaces path with len bytes of data as a whole: written to
 * "<path>.tmp" (opened as pos_file_open() does; exactly mode, whatever the
 * umask), then renamed over path;
 * with "durable", the file and then its directory are fsync'd, so a crash
 * leaves the old content or the new, never a part. Returns 0 or a negative
 * errno (the temporary file removed).
 */
int pos_file_replace(const char *path, const void *data, size_t len, mode_t mode, bool durable);

/* pos_file_replace() through the temporary file tmp (in path's directory). */
int pos_file_replace_via(const char *path, const char *tmp, const void *data, size_t len,
                         mode_t mode, bool durable);

/* Writes or reads exactly len bytes (retried on EINTR). Returns 0 or a
 * negative errno (-EIO when the file or pipe ended first). */
int pos_file_write_all(int fd, const void *buf, size_t len);
int pos_file_read_all(int fd, void *buf, size_t len);

#endif /* PLATFORM_FILES_H */
