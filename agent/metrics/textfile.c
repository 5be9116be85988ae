#include "agent/metrics/textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/files.h"
#include "platform/log.h"
#include "platform/uverr.h"

int pos_textfile_init(pos_textfile_t *t, uv_loop_t *loop, const char *path, size_t cap)
{
    const char *slash;
    size_t n = strlen(path);

    memset(t, 0, sizeof(*t));
    slash = strrchr(path, '/');
    if (path[0] != '/' || n > POS_TEXTFILE_PATH_MAX || slash == NULL || slash[1] == '\0') {
        return -EINVAL;
    }
    t->buf = malloc(cap);
    if (t->buf == NULL) {
        return -ENOMEM;
    }
    t->cap = cap;
    t->loop = loop;
    memcpy(t->path, path, n + 1);
    /* Beside it, hidden, and not *.prom: the collector never reads it. */
    snprintf(t->tmp, sizeof(t->tmp), "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
    t->work.data = t;
    return 0;
}

char *pos_textfile_buffer(pos_textfile_t *t, size_t *cap)
{
    if (t->busy || t->closing || t->buf == NULL) {
        return NULL;
    }
    *cap = t->cap;
    return t->buf;
}

int pos_textfile_write_now(const char *path, const char *tmp, const char *buf, size_t len)
{
    /* A leftover (or something planted) is removed, never written through;
     * 0644: node_exporter runs as another user; no fsync (textfile.h). */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        return -errno;
    }
    return pos_file_replace_via(path, tmp, buf, len, 0644, false);
}

static void textfile_work(uv_work_t *w)
{
    pos_textfile_t *t = w->data;
    t->result = pos_textfile_write_now(t->path, t->tmp, t->buf, t->len);
}

static void textfile_free(pos_textfile_t *t)
{
    free(t->buf);
    t->buf = NULL;
    if (t->closed_cb != NULL) {
        t->closed_cb(t);
    }
}

static void textfile_after(uv_work_t *w, int status)
{
    pos_textfile_t *t = w->data;

    t->busy = false;
    if (status != 0) {
        t->result = pos_uv_errno(status);
    }
    if (t->result == 0) {
        t->written++;
        if (t->logged != 0) {
            POS_INFO("metrics", "%s written again", t->path);
        }
    } else {
        t->failed++;
        if (t->logged != t->result) {
            POS_WARN("metrics", "cannot write %s: %s", t->path, strerror(-t->result));
        }
    }
    t->logged = t->result;
    if (t->closing) {
        textfile_free(t);
    }
}

int pos_textfile_commit(pos_textfile_t *t, size_t len)
{
    int rc;

    if (t->busy || t->closing || t->buf == NULL || len > t->cap) {
        return -EBUSY;
    }
    t->len = len;
    rc = uv_queue_work(t->loop, &t->work, textfile_work, textfile_after);
    if (rc != 0) {
        return pos_uv_errno(rc);
    }
    t->busy = true;
    return 0;
}

void pos_textfile_close(pos_textfile_t *t, void (*done)(pos_textfile_t *t))
{
    t->closing = true;
    t->closed_cb = done;
    if (!t->busy) {
        textfile_free(t);
    }
}
