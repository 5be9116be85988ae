#ifndef AGENT_METRICS_TEXTFILE_H
#define AGENT_METRICS_TEXTFILE_H

/*
 * The Prometheus text file for node_exporter's textfile collector, written
 * atomically off the loop (libuv's thread pool): the text goes into a
 * temporary file in the same directory (".<name>.tmp", which the collector
 * ignores: it reads only *.prom), opened with O_NOFOLLOW after any old one
 * is removed, then rename() replaces the file in one step, so
 * the collector reads either the previous document or the new one, never
 * half of one (platform/files.h's pos_file_replace_via(), mode 0644
 * whatever the umask: 0027 under the unit would keep the collector out).
 *
 * No fsync: the file holds values of this moment and is rewritten every
 * interval; it usually lives on a tmpfs or a collector directory nobody
 * keeps across a power cut, and an fsync every few seconds would wear the
 * till's flash and stall the thread pool the store shares. After a crash
 * the previous complete file, or none, is what the collector finds.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define POS_TEXTFILE_PATH_MAX 200

typedef struct pos_textfile {
    uv_loop_t *loop;
    uv_work_t work;
    bool busy;    /* a write is in the thread pool; buf belongs to it */
    bool closing; /* pos_textfile_close() was called */
    void (*closed_cb)(struct pos_textfile *t);
    char path[POS_TEXTFILE_PATH_MAX + 1];
    char tmp[POS_TEXTFILE_PATH_MAX + 16];
    char *buf;
    size_t len;
    size_t cap;
    int result;       /* of the last write: 0 or a negative errno */
    int logged;       /* the last result logged (a failure is logged once until it changes) */
    uint64_t written; /* files written */
    uint64_t failed;  /* writes that failed */
} pos_textfile_t;

/*
 * Sets up a writer of "path" (absolute, at most POS_TEXTFILE_PATH_MAX
 * bytes) with a buffer of cap bytes. Returns 0, -EINVAL or -ENOMEM.
 */
int pos_textfile_init(pos_textfile_t *t, uv_loop_t *loop, const char *path, size_t cap);

/*
 * The buffer to format the next document into (cap bytes), or NULL while
 * the previous write is still in progress (skip this round).
 */
char *pos_textfile_buffer(pos_textfile_t *t, size_t *cap);

/* Writes buf[0..len) (from pos_textfile_buffer()) as the file. Returns 0,
 * -EBUSY or a negative errno from uv_queue_work. */
int pos_textfile_commit(pos_textfile_t *t, size_t len);

/* Frees the buffer once no write is in progress, then calls done (may be
 * NULL; called at once when idle). */
void pos_textfile_close(pos_textfile_t *t, void (*done)(pos_textfile_t *t));

/* The synchronous write itself (what the thread pool runs), for tests:
 * returns 0 or a negative errno. */
int pos_textfile_write_now(const char *path, const char *tmp, const char *buf, size_t len);

#endif /* AGENT_METRICS_TEXTFILE_H */
