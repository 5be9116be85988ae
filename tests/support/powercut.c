/*
 * powercut: a power cut at any moment, an LD_PRELOAD shim. The process
 * writes its files as usual; beside them the shim keeps a *shadow* copy
 * of one directory that holds only what the disk would hold after the
 * power went: what was flushed, and whatever else the kernel happened to
 * write back early. Kill the process with SIGKILL at any moment, and the
 * shadow directory is the store a till finds when the power comes back.
 *
 *   a write (write, pwrite, writev, pwritev, their 64-bit forms), an
 *   ftruncate or an open with O_TRUNC of a file under the directory is
 *   kept pending, per file;
 *   fsync, fdatasync (of that file), syncfs and sync move the file's
 *   pending writes, in order, into its shadow;
 *   a write through an O_DSYNC or O_SYNC descriptor (LMDB's meta page
 *   when it flushes it so) goes into the shadow at once;
 *   rename and unlink under the directory are done in the shadow too,
 *   at once (the agent syncs the directory after the ones it relies on).
 *
 * The kernel writes dirty pages back in any order and at any time: with
 * POS_POWERCUT_EARLY set, each 4 KiB piece of each pending write goes to
 * the shadow at once with that probability (per mille), as well as later
 * with its flush. So a cut may keep any subset of what was not flushed,
 * later writes without earlier ones, and half of a multi-page write.
 *
 * What the shadow does not model: a block torn inside 4 KiB; files
 * created, renamed or unlinked without a flush of their directory
 * vanishing or coming back (names change at once; LMDB never flushes
 * the directory after creating data.mdb); mmap writes (the agent's store
 * does not write through its map); renameat, unlinkat, truncate,
 * pwritev2, copy_file_range and fallocate's hole punching, which neither
 * LMDB 0.9 nor the agent uses on the store. Writes are recorded after the
 * real call, so two threads writing the same file at once could be
 * recorded out of order: the store has one writer thread.
 *
 * Environment, read once at load:
 *   POS_POWERCUT_DIR     the directory (required; resolved with realpath)
 *   POS_POWERCUT_SHADOW  the shadow directory (required; must exist, and
 *                        hold a copy of DIR's files as they are at start)
 *   POS_POWERCUT_EARLY   per mille of 4 KiB pieces written back early (0)
 *   POS_POWERCUT_SEED    the seed of that choice (1)
 *
 * The shadow is written with plain pwrite: the test machine's own power
 * is not cut. Writes are handled after the real call succeeds, and a
 * flush's pending writes go to the shadow before the flush returns, so a
 * SIGKILL between them leaves the shadow as if the flush had not been
 * made: which is sound, the process had not yet acted on it.
 *
 * Built without sanitizers, like slowfs.c, and preloaded after an ASan
 * runtime when the agent has one (tests/support/slowfs_env.c).
 */
#define _GNU_SOURCE
/* Both the off_t and the off64_t entry points are defined below: on a
 * 32-bit target the headers must not redirect one to the other. */
#undef _FILE_OFFSET_BITS
#undef _TIME_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tests/support/preload.h"

typedef void (*void_fn)(void);
typedef int (*ftruncate_fn)(int, off_t);
typedef int (*ftruncate64_fn)(int, off64_t);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*unlink_fn)(const char *);

#define PC_PIECE 4096u
#define PC_FILES 16 /* files under the directory with pending writes, at most */

/* One write or truncation not yet flushed. */
typedef struct pc_op {
    struct pc_op *next;
    uint64_t off;   /* truncation: the new length */
    size_t len;     /* bytes in data; truncation: 0 */
    int truncate;   /* 1: ftruncate(off) */
    uint8_t data[]; /* len bytes */
} pc_op_t;

typedef struct pc_file {
    char rel[PATH_MAX]; /* its path under the directory, "" for a free slot */
    pc_op_t *head, *tail;
} pc_file_t;

static char pc_dir[PATH_MAX];
static size_t pc_dir_len;
static char pc_shadow[PATH_MAX];
static unsigned pc_early;
static uint64_t pc_rand = 1;
static pthread_mutex_t pc_lock = PTHREAD_MUTEX_INITIALIZER;
static pc_file_t pc_files[PC_FILES];

/* A fault shim that fails silently would make a test that cannot fail:
 * anything it cannot do kills the process, loudly. */
static void pc_die(const char *what, const char *path)
{
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof(msg), "powercut: %s %s: %s\n", what, path, strerror(errno));
    NEXT(write_fn, write);
    if (n > 0 && real_write(2, msg, (size_t)n) < 0) {
        /* nothing left to tell it to */
    }
    abort();
}

/* xorshift64*: the choice of early write-backs, repeatable from the seed. */
static unsigned pc_random_permille(void)
{
    pc_rand ^= pc_rand >> 12;
    pc_rand ^= pc_rand << 25;
    pc_rand ^= pc_rand >> 27;
    return (unsigned)((pc_rand * 2685821657736338717ull) >> 33) % 1000u;
}

/* The part of path under the directory ("" for the directory itself), or
 * NULL when path is elsewhere. */
static const char *pc_rel(const char *path)
{
    if (pc_dir_len == 0 || strncmp(path, pc_dir, pc_dir_len) != 0) {
        return NULL;
    }
    if (path[pc_dir_len] == '\0') {
        return "";
    }
    return path[pc_dir_len] == '/' ? path + pc_dir_len + 1 : NULL;
}

/* The file behind fd, relative to the directory; NULL when elsewhere. */
static const char *pc_fd_rel(int fd, char *buf, size_t cap)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, buf, cap - 1);
    if (n < 0) {
        return NULL;
    }
    buf[n] = '\0';
    /* An open file already unlinked: its name is gone (so is its shadow). */
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof(deleted) - 1;
    if ((size_t)n > dl && strcmp(buf + n - dl, deleted) == 0) {
        return NULL;
    }
    return pc_rel(buf);
}

/* An absolute path (made absolute against the working directory) under
 * the directory, relative to it; NULL when elsewhere. */
static const char *pc_path_rel(const char *path, char *buf, size_t cap)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    /* Resolve the directory part (the file may not exist yet). */
    if (slash == NULL) {
        if (getcwd(dir, sizeof(dir)) == NULL) {
            return NULL;
        }
        if ((size_t)snprintf(buf, cap, "%s/%s", dir, path) >= cap) {
            return NULL; /* too long to be one of the store's */
        }
    } else {
        char part[PATH_MAX];
        snprintf(part, sizeof(part), "%.*s", (int)(slash - path), path);
        if (realpath(part[0] != '\0' ? part : "/", dir) == NULL) {
            return NULL;
        }
        if ((size_t)snprintf(buf, cap, "%s/%s", dir, slash + 1) >= cap) {
            return NULL;
        }
    }
    return pc_rel(buf);
}

static pc_file_t *pc_file(const char *rel, int create)
{
    pc_file_t *free_slot = NULL;

    for (int i = 0; i < PC_FILES; i++) {
        if (strcmp(pc_files[i].rel, rel) == 0) {
            return &pc_files[i];
        }
        if (pc_files[i].rel[0] == '\0' && free_slot == NULL) {
            free_slot = &pc_files[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (free_slot == NULL) {
        errno = EMFILE;
        pc_die("more files with pending writes than it tracks under", pc_dir);
    }
    snprintf(free_slot->rel, sizeof(free_slot->rel), "%s", rel);
    return free_slot;
}

/* Writes len bytes at off, or truncates, in rel's shadow. */
static void pc_shadow_apply(const char *rel, const pc_op_t *op)
{
    char path[PATH_MAX * 2];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", pc_shadow, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        pc_die("cannot open the shadow", path);
    }
    if (op->truncate) {
        NEXT(ftruncate_fn, ftruncate);
        if (real_ftruncate(fd, (off_t)op->off) != 0) {
            pc_die("cannot truncate the shadow", path);
        }
    } else {
        NEXT(pwrite_fn, pwrite);
        size_t done = 0;
        while (done < op->len) {
            ssize_t n = real_pwrite(fd, op->data + done, op->len - done, (off_t)(op->off + done));
            if (n <= 0) {
                pc_die("cannot write the shadow", path);
            }
            done += (size_t)n;
        }
    }
    close(fd);
}

/* Moves the file's pending operations into its shadow, in order. */
static void pc_flush(pc_file_t *pf)
{
    pc_op_t *op = pf->head, *next;

    for (; op != NULL; op = next) {
        next = op->next;
        pc_shadow_apply(pf->rel, op);
        free(op);
    }
    pf->head = pf->tail = NULL;
    pf->rel[0] = '\0';
}

/* Some of a pending write's 4 KiB pieces reach the disk early. */
static void pc_write_back_early(const char *rel, const pc_op_t *op)
{
    if (pc_early == 0) {
        return;
    }
    uint64_t at = op->off;
    uint64_t end = op->off + op->len;
    while (at < end) {
        uint64_t piece_end = (at / PC_PIECE + 1) * PC_PIECE;
        if (piece_end > end) {
            piece_end = end;
        }
        if (pc_random_permille() < pc_early) {
            /* This piece alone, as the kernel may write one page back. */
            size_t len = (size_t)(piece_end - at);
            pc_op_t *piece = malloc(sizeof(*piece) + len);
            if (piece == NULL) {
                pc_die("out of memory for", rel);
            }
            piece->next = NULL;
            piece->truncate = 0;
            piece->off = at;
            piece->len = len;
            memcpy(piece->data, op->data + (at - op->off), len);
            pc_shadow_apply(rel, piece);
            free(piece);
        }
        at = piece_end;
    }
}

/* After a successful write of n bytes (from iov) at off to the file rel. */
static void pc_record(const char *rel, int fd, const struct iovec *iov, int cnt, uint64_t off,
                      size_t n)
{
    pc_op_t *op;
    size_t have = 0;
    int fl = fcntl(fd, F_GETFL);

    if (rel[0] == '\0' || n == 0) {
        return;
    }
    op = malloc(sizeof(*op) + n);
    if (op == NULL) {
        pc_die("out of memory for", rel);
    }
    op->next = NULL;
    op->truncate = 0;
    op->off = off;
    op->len = n;
    for (int i = 0; i < cnt && have < n; i++) {
        size_t take = iov[i].iov_len < n - have ? iov[i].iov_len : n - have;
        memcpy(op->data + have, iov[i].iov_base, take);
        have += take;
    }
    pthread_mutex_lock(&pc_lock);
    if (fl >= 0 && (fl & O_DSYNC) == O_DSYNC) {
        /* Synchronous: on the disk when the call returns. Pending writes
         * to the same file stay pending: ordering across them is the
         * kernel's, and this one is the newest. */
        pc_shadow_apply(rel, op);
        free(op);
    } else {
        pc_file_t *pf = pc_file(rel, 1);
        pc_write_back_early(rel, op);
        if (pf->tail != NULL) {
            pf->tail->next = op;
        } else {
            pf->head = op;
        }
        pf->tail = op;
    }
    pthread_mutex_unlock(&pc_lock);
}

static void pc_after_write(int fd, const struct iovec *iov, int cnt, int64_t off, ssize_t n)
{
    char buf[PATH_MAX];
    const char *rel;
    int saved = errno;

    if (n <= 0 || pc_dir_len == 0 || (rel = pc_fd_rel(fd, buf, sizeof(buf))) == NULL) {
        errno = saved;
        return;
    }
    if (off < 0) {
        /* write/writev: the file position has moved past what was written. */
        off_t now = lseek(fd, 0, SEEK_CUR);
        if (now < 0) {
            pc_die("cannot tell the position in", rel);
        }
        off = (int64_t)now - (int64_t)n;
    }
    pc_record(rel, fd, iov, cnt, (uint64_t)off, (size_t)n);
    errno = saved;
}

static void pc_after_flush(int fd, int rc)
{
    char buf[PATH_MAX];
    const char *rel;
    int saved = errno;

    if (rc == 0 && pc_dir_len > 0 && (rel = pc_fd_rel(fd, buf, sizeof(buf))) != NULL &&
        rel[0] != '\0') {
        pthread_mutex_lock(&pc_lock);
        pc_file_t *pf = pc_file(rel, 0);
        if (pf != NULL) {
            pc_flush(pf);
        }
        pthread_mutex_unlock(&pc_lock);
    }
    errno = saved;
}

static void pc_flush_all(void)
{
    pthread_mutex_lock(&pc_lock);
    for (int i = 0; i < PC_FILES; i++) {
        if (pc_files[i].rel[0] != '\0') {
            pc_flush(&pc_files[i]);
        }
    }
    pthread_mutex_unlock(&pc_lock);
}

__attribute__((constructor)) static void pc_init(void)
{
    const char *d = getenv("POS_POWERCUT_DIR");
    const char *s = getenv("POS_POWERCUT_SHADOW");
    const char *e = getenv("POS_POWERCUT_EARLY");
    const char *seed = getenv("POS_POWERCUT_SEED");

    if (d == NULL || s == NULL || d[0] == '\0' || s[0] == '\0') {
        return; /* loaded into a process that is not under the fault */
    }
    /* The directory may not exist yet (a first start creates it). */
    if (realpath(d, pc_dir) == NULL) {
        char *slash;
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", d);
        slash = strrchr(parent, '/');
        if (slash == NULL || slash == parent) {
            errno = EINVAL;
            pc_die("POS_POWERCUT_DIR must be an absolute path:", d);
        }
        *slash = '\0';
        if (realpath(parent, pc_dir) == NULL) {
            pc_die("cannot resolve", parent);
        }
        size_t len = strlen(pc_dir);
        snprintf(pc_dir + len, sizeof(pc_dir) - len, "/%s", slash + 1);
    }
    pc_dir_len = strlen(pc_dir);
    if (realpath(s, pc_shadow) == NULL) {
        pc_die("cannot resolve the shadow directory", s);
    }
    if (e != NULL) {
        pc_early = (unsigned)strtoul(e, NULL, 10);
        if (pc_early > 1000u) {
            pc_early = 1000u;
        }
    }
    if (seed != NULL && strtoull(seed, NULL, 10) != 0) {
        pc_rand = strtoull(seed, NULL, 10);
    }
}

/* ---- flushes ------------------------------------------------------------------------- */

int fsync(int fd)
{
    NEXT(fd_fn, fsync);
    int rc = real_fsync(fd);
    pc_after_flush(fd, rc);
    return rc;
}

int fdatasync(int fd)
{
    NEXT(fd_fn, fdatasync);
    int rc = real_fdatasync(fd);
    pc_after_flush(fd, rc);
    return rc;
}

int syncfs(int fd)
{
    NEXT(fd_fn, syncfs);
    int rc = real_syncfs(fd);
    if (rc == 0 && pc_dir_len > 0) {
        pc_flush_all();
    }
    return rc;
}

void sync(void)
{
    NEXT(void_fn, sync);
    real_sync();
    if (pc_dir_len > 0) {
        pc_flush_all();
    }
}

/* ---- writes -------------------------------------------------------------------------- */

ssize_t write(int fd, const void *buf, size_t n)
{
    NEXT(write_fn, write);
    ssize_t rc = real_write(fd, buf, n);
    struct iovec v = {(void *)buf, n};
    pc_after_write(fd, &v, 1, -1, rc);
    return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    NEXT(pwrite_fn, pwrite);
    ssize_t rc = real_pwrite(fd, buf, n, off);
    struct iovec v = {(void *)buf, n};
    pc_after_write(fd, &v, 1, (int64_t)off, rc);
    return rc;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    NEXT(pwrite64_fn, pwrite64);
    ssize_t rc = real_pwrite64(fd, buf, n, off);
    struct iovec v = {(void *)buf, n};
    pc_after_write(fd, &v, 1, (int64_t)off, rc);
    return rc;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    NEXT(writev_fn, writev);
    ssize_t rc = real_writev(fd, iov, cnt);
    pc_after_write(fd, iov, cnt, -1, rc);
    return rc;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    NEXT(pwritev_fn, pwritev);
    ssize_t rc = real_pwritev(fd, iov, cnt, off);
    pc_after_write(fd, iov, cnt, (int64_t)off, rc);
    return rc;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    NEXT(pwritev64_fn, pwritev64);
    ssize_t rc = real_pwritev64(fd, iov, cnt, off);
    pc_after_write(fd, iov, cnt, (int64_t)off, rc);
    return rc;
}

static void pc_after_truncate(int fd, int64_t len, int rc)
{
    char buf[PATH_MAX];
    const char *rel;
    int saved = errno;

    if (rc == 0 && pc_dir_len > 0 && (rel = pc_fd_rel(fd, buf, sizeof(buf))) != NULL &&
        rel[0] != '\0') {
        pc_op_t *op = malloc(sizeof(*op));
        if (op == NULL) {
            pc_die("out of memory for", rel);
        }
        op->next = NULL;
        op->truncate = 1;
        op->off = (uint64_t)len;
        op->len = 0;
        pthread_mutex_lock(&pc_lock);
        pc_file_t *pf = pc_file(rel, 1);
        if (pf->tail != NULL) {
            pf->tail->next = op;
        } else {
            pf->head = op;
        }
        pf->tail = op;
        pthread_mutex_unlock(&pc_lock);
    }
    errno = saved;
}

int ftruncate(int fd, off_t len)
{
    NEXT(ftruncate_fn, ftruncate);
    int rc = real_ftruncate(fd, len);
    pc_after_truncate(fd, (int64_t)len, rc);
    return rc;
}

int ftruncate64(int fd, off64_t len)
{
    NEXT(ftruncate64_fn, ftruncate64);
    int rc = real_ftruncate64(fd, len);
    pc_after_truncate(fd, (int64_t)len, rc);
    return rc;
}

/* ---- opens that truncate ------------------------------------------------------------- */

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

/* The mode argument, present with O_CREAT or O_TMPFILE. */
#define PC_MODE(flags, mode)                                                                       \
    do {                                                                                           \
        if (((flags)&O_CREAT) != 0 || ((flags)&O_TMPFILE) == O_TMPFILE) {                          \
            va_list ap;                                                                            \
            va_start(ap, flags);                                                                   \
            mode = va_arg(ap, int);                                                                \
            va_end(ap);                                                                            \
        }                                                                                          \
    } while (0)

/* An open that truncated is a pending truncation. */
static int pc_opened(int fd, int flags)
{
    if (fd >= 0 && (flags & O_TRUNC) != 0) {
        pc_after_truncate(fd, 0, 0);
    }
    return fd;
}

int open(const char *path, int flags, ...)
{
    NEXT(open_fn, open);
    int mode = 0;
    PC_MODE(flags, mode);
    return pc_opened(real_open(path, flags, mode), flags);
}

int open64(const char *path, int flags, ...)
{
    NEXT(open_fn, open64);
    int mode = 0;
    PC_MODE(flags, mode);
    return pc_opened(real_open64(path, flags, mode), flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    NEXT(openat_fn, openat);
    int mode = 0;
    PC_MODE(flags, mode);
    return pc_opened(real_openat(dirfd, path, flags, mode), flags);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    NEXT(openat_fn, openat64);
    int mode = 0;
    PC_MODE(flags, mode);
    return pc_opened(real_openat64(dirfd, path, flags, mode), flags);
}

/* ---- names --------------------------------------------------------------------------- */

int rename(const char *from, const char *to)
{
    NEXT(rename_fn, rename);
    char fb[PATH_MAX], tb[PATH_MAX];
    const char *frel = pc_dir_len > 0 ? pc_path_rel(from, fb, sizeof(fb)) : NULL;
    const char *trel = pc_dir_len > 0 ? pc_path_rel(to, tb, sizeof(tb)) : NULL;
    int rc = real_rename(from, to);
    int saved = errno;

    if (rc == 0 && frel != NULL && frel[0] != '\0') {
        char sf[PATH_MAX * 2], st[PATH_MAX * 2];
        pthread_mutex_lock(&pc_lock);
        pc_file_t *pf = pc_file(frel, 0);
        if (trel != NULL && trel[0] != '\0') {
            snprintf(sf, sizeof(sf), "%s/%s", pc_shadow, frel);
            snprintf(st, sizeof(st), "%s/%s", pc_shadow, trel);
            if (real_rename(sf, st) != 0) {
                /* Nothing of the source was flushed yet: the name now
                 * points to a file with nothing durable in it. */
                int tfd = open(st, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (tfd < 0) {
                    pc_die("cannot empty the shadow", st);
                }
                close(tfd);
            }
            pc_file_t *old = pc_file(trel, 0);
            if (old != NULL) { /* replaced: its pending writes went with it */
                for (pc_op_t *op = old->head, *next; op != NULL; op = next) {
                    next = op->next;
                    free(op);
                }
                old->head = old->tail = NULL;
                old->rel[0] = '\0';
            }
            if (pf != NULL) {
                snprintf(pf->rel, sizeof(pf->rel), "%s", trel);
            }
        } else if (pf != NULL) { /* moved out of the directory: forget it */
            pc_flush(pf);
            snprintf(sf, sizeof(sf), "%s/%s", pc_shadow, frel);
            NEXT(unlink_fn, unlink);
            (void)real_unlink(sf);
        }
        pthread_mutex_unlock(&pc_lock);
    }
    errno = saved;
    return rc;
}

int unlink(const char *path)
{
    NEXT(unlink_fn, unlink);
    char buf[PATH_MAX];
    const char *rel = pc_dir_len > 0 ? pc_path_rel(path, buf, sizeof(buf)) : NULL;
    int rc = real_unlink(path);
    int saved = errno;

    if (rc == 0 && rel != NULL && rel[0] != '\0') {
        char sp[PATH_MAX * 2];
        pthread_mutex_lock(&pc_lock);
        pc_file_t *pf = pc_file(rel, 0);
        if (pf != NULL) {
            for (pc_op_t *op = pf->head, *next; op != NULL; op = next) {
                next = op->next;
                free(op);
            }
            pf->head = pf->tail = NULL;
            pf->rel[0] = '\0';
        }
        snprintf(sp, sizeof(sp), "%s/%s", pc_shadow, rel);
        (void)real_unlink(sp);
        pthread_mutex_unlock(&pc_lock);
    }
    errno = saved;
    return rc;
}
