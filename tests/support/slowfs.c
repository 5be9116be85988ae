/*
 * slowfs: the slow-disk fault, an LD_PRELOAD shim. Every call that waits
 * for the disk returns POS_SLOWFS_DELAY_MS later than it would:
 *
 *   fsync, fdatasync, syncfs         always
 *   msync                            with MS_SYNC (MS_ASYNC waits for nothing)
 *   sync_file_range                  with a SYNC_FILE_RANGE_WAIT_* flag
 *   write, pwrite, pwrite64,         on a descriptor opened with O_DSYNC or
 *   writev, pwritev, pwritev64       O_SYNC (LMDB writes its meta page so)
 *
 * and nothing else: reads, sockets, pipes, ordinary writes pass untouched
 * (but for the failures below).
 * Whether a descriptor is synchronous is asked of the kernel at each write
 * (fcntl F_GETFL), so it holds however the descriptor was opened (open,
 * open64, openat, the fortified __open_2, dup) without tracking them.
 *
 * Environment, read once at load:
 *   POS_SLOWFS_DELAY_MS  the delay in milliseconds (unset or 0: no delay)
 *   POS_SLOWFS_PREFIX    only files at or under this directory (resolved
 *                        with realpath when it exists); unset: every file
 *   POS_SLOWFS_LOG       a file to which each delayed call appends one
 *                        line, "<call> <path>", so a test can tell the
 *                        fault was really applied (pwrite64 and pwritev64
 *                        are logged as pwrite and pwritev: ASan's
 *                        interceptor for one may call the other)
 *   POS_SLOWFS_FAIL_FLAG a file: while it exists, every write (write,
 *                        pwrite, writev, pwritev and their 64-bit forms)
 *                        to a file under POS_SLOWFS_PREFIX (required)
 *                        fails with ENOSPC and writes nothing, as on a
 *                        full disk; the test creates and removes it
 *   POS_SLOWFS_DELAY_FLAG a file: the delay applies only while it exists
 *                        (a slow disk at a moment of the test's choosing)
 *   POS_SLOWFS_FAIL_NAME with the flag: only files of this name (the last
 *                        component of the path) fail, e.g. "data.mdb" for
 *                        LMDB's data file and not the write-ahead log beside it
 *   POS_SLOWFS_SNDBUF    bytes: every TCP socket the process connects gets
 *                        this send buffer (SO_SNDBUF, so no autotuning), as
 *                        a slow uplink keeps it small; loopback's would
 *                        grow to megabytes and hide a writer's backlog
 *   POS_SLOWFS_EIO_FLAG  a file: when it exists, the next pread or pread64
 *                        of a file named POS_SLOWFS_EIO_NAME (required)
 *                        under POS_SLOWFS_PREFIX (required) fails with EIO
 *                        and the shim removes the flag: one read error, as
 *                        a disk gives now and then; other calls pass
 *
 * The delay is slept in the calling thread after the real call, so a
 * program that syncs on its event loop stalls its loop, and one that syncs
 * on a writer thread stalls only that thread: which is what a slow disk
 * does. Calls glibc makes internally (stdio's own writes) do not pass
 * through here; the agent's store (LMDB) calls these functions directly.
 *
 * Built without sanitizers (tests/CMakeLists.txt), so the same shim loads
 * into a release and an ASan binary. An ASan binary wants its runtime first
 * in the initial library list: put it before the shim in LD_PRELOAD
 * (tests/support/slowfs_env.c does; docs/faults.md).
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/preload.h"

typedef int (*msync_fn)(void *, size_t, int);
typedef int (*sfr_fn)(int, off64_t, off64_t, unsigned int);

static unsigned slowfs_delay_ms;
static char slowfs_prefix[PATH_MAX];
static size_t slowfs_prefix_len;
static int slowfs_log_fd = -1;
static char slowfs_fail_flag[PATH_MAX];
static char slowfs_fail_name[NAME_MAX + 1];
static char slowfs_delay_flag[PATH_MAX];
static int slowfs_sndbuf;
static char slowfs_eio_flag[PATH_MAX];
static char slowfs_eio_name[NAME_MAX + 1];

/* path is at or under the prefix (always true without one). */
static int slowfs_under_prefix(const char *path)
{
    if (slowfs_prefix_len == 0) {
        return 1;
    }
    return strncmp(path, slowfs_prefix, slowfs_prefix_len) == 0 &&
           (path[slowfs_prefix_len] == '/' || path[slowfs_prefix_len] == '\0');
}

/* The file behind a descriptor, "?" when it cannot be named. */
static void slowfs_fd_path(int fd, char *out, size_t cap)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, out, cap - 1);
    if (n < 0) {
        n = 0;
        out[n++] = '?';
    }
    out[n] = '\0';
}

/*
 * The file mapped at addr, from /proc/self/maps ("?" for an anonymous or
 * unknown mapping). Reads with open/read, which this shim leaves alone.
 */
static void slowfs_map_path(const void *addr, char *out, size_t cap)
{
    static const char *const maps = "/proc/self/maps";
    char buf[8192];
    size_t have = 0;
    uintptr_t a = (uintptr_t)addr;
    int fd = open(maps, O_RDONLY | O_CLOEXEC);

    snprintf(out, cap, "?");
    if (fd < 0) {
        return;
    }
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            unsigned long lo, hi;
            int path_at = 0;
            *nl = '\0';
            if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path_at) >= 2 && a >= lo &&
                a < hi) {
                if (path_at > 0 && line[path_at] == '/') {
                    snprintf(out, cap, "%s", line + path_at);
                }
                close(fd);
                return;
            }
            line = nl + 1;
        }
        /* Keep the unfinished line; a line longer than the buffer is dropped. */
        have = strlen(line);
        memmove(buf, line, have);
        if (have == sizeof(buf) - 1) {
            have = 0;
        }
    }
    close(fd);
}

/* Sleeps the configured delay, whatever signals arrive meanwhile. */
static void slowfs_sleep(void)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(slowfs_delay_ms / 1000u);
    until.tv_nsec += (long)(slowfs_delay_ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
}

/* Delays a call on path when it is under the prefix, and logs it. */
static void slowfs_apply(const char *call, const char *path)
{
    if (!slowfs_under_prefix(path) ||
        (slowfs_delay_flag[0] != '\0' && access(slowfs_delay_flag, F_OK) != 0)) {
        return;
    }
    if (slowfs_log_fd >= 0) {
        NEXT(write_fn, write);
        char line[PATH_MAX + 64];
        int n = snprintf(line, sizeof(line), "%s %s\n", call, path);
        if (n > 0 && (size_t)n < sizeof(line)) {
            /* O_APPEND: whole lines, also from several threads. */
            if (real_write(slowfs_log_fd, line, (size_t)n) < 0) {
                /* nothing to report it to */
            }
        }
    }
    slowfs_sleep();
}

/* After a call on fd that waited for the disk. */
static void slowfs_after_fd(const char *call, int fd)
{
    char path[PATH_MAX];
    int saved = errno;

    if (slowfs_delay_ms == 0) {
        return;
    }
    slowfs_fd_path(fd, path, sizeof(path));
    slowfs_apply(call, path);
    errno = saved;
}

/* After a write on fd: delayed only when fd is synchronous. */
static void slowfs_after_write(const char *call, int fd)
{
    int saved = errno;
    int fl;

    if (slowfs_delay_ms == 0) {
        return;
    }
    fl = fcntl(fd, F_GETFL);
    /* O_SYNC is O_DSYNC plus a bit on Linux: one test covers both. */
    if (fl >= 0 && (fl & O_DSYNC) == O_DSYNC) {
        slowfs_after_fd(call, fd);
    }
    errno = saved;
}

__attribute__((constructor)) static void slowfs_init(void)
{
    const char *d = getenv("POS_SLOWFS_DELAY_MS");
    const char *p = getenv("POS_SLOWFS_PREFIX");
    const char *log = getenv("POS_SLOWFS_LOG");
    char *end = NULL;

    if (d != NULL) {
        unsigned long v = strtoul(d, &end, 10);
        if (end != d && *end == '\0' && v <= 600000u) {
            slowfs_delay_ms = (unsigned)v;
        }
    }
    if (p != NULL && p[0] != '\0') {
        if (realpath(p, slowfs_prefix) == NULL) {
            snprintf(slowfs_prefix, sizeof(slowfs_prefix), "%s", p);
        }
        slowfs_prefix_len = strlen(slowfs_prefix);
        while (slowfs_prefix_len > 1 && slowfs_prefix[slowfs_prefix_len - 1] == '/') {
            slowfs_prefix[--slowfs_prefix_len] = '\0';
        }
    }
    const char *flag = getenv("POS_SLOWFS_FAIL_FLAG");
    if (flag != NULL) {
        snprintf(slowfs_fail_flag, sizeof(slowfs_fail_flag), "%s", flag);
    }
    const char *dflag = getenv("POS_SLOWFS_DELAY_FLAG");
    if (dflag != NULL) {
        snprintf(slowfs_delay_flag, sizeof(slowfs_delay_flag), "%s", dflag);
    }
    const char *name = getenv("POS_SLOWFS_FAIL_NAME");
    if (name != NULL) {
        snprintf(slowfs_fail_name, sizeof(slowfs_fail_name), "%s", name);
    }
    const char *sb = getenv("POS_SLOWFS_SNDBUF");
    if (sb != NULL) {
        unsigned long v = strtoul(sb, &end, 10);
        if (end != sb && *end == '\0' && v > 0 && v <= 64ul * 1024 * 1024) {
            slowfs_sndbuf = (int)v;
        }
    }
    const char *eflag = getenv("POS_SLOWFS_EIO_FLAG");
    const char *ename = getenv("POS_SLOWFS_EIO_NAME");
    if (eflag != NULL && ename != NULL) {
        snprintf(slowfs_eio_flag, sizeof(slowfs_eio_flag), "%s", eflag);
        snprintf(slowfs_eio_name, sizeof(slowfs_eio_name), "%s", ename);
    }
    if (log != NULL && log[0] != '\0' && slowfs_delay_ms > 0) {
        slowfs_log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    }
}

/* ---- the calls that wait for the disk ------------------------------------------------ */

int fsync(int fd)
{
    NEXT(fd_fn, fsync);
    int rc = real_fsync(fd);
    slowfs_after_fd("fsync", fd);
    return rc;
}

int fdatasync(int fd)
{
    NEXT(fd_fn, fdatasync);
    int rc = real_fdatasync(fd);
    slowfs_after_fd("fdatasync", fd);
    return rc;
}

int syncfs(int fd)
{
    NEXT(fd_fn, syncfs);
    int rc = real_syncfs(fd);
    slowfs_after_fd("syncfs", fd);
    return rc;
}

int msync(void *addr, size_t len, int flags)
{
    NEXT(msync_fn, msync);
    int rc = real_msync(addr, len, flags);
    if (slowfs_delay_ms > 0 && (flags & MS_SYNC) != 0) {
        int saved = errno;
        char path[PATH_MAX];
        slowfs_map_path(addr, path, sizeof(path));
        slowfs_apply("msync", path);
        errno = saved;
    }
    return rc;
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
    NEXT(sfr_fn, sync_file_range);
    int rc = real_sync_file_range(fd, offset, nbytes, flags);
    /* SYNC_FILE_RANGE_WRITE alone only starts the write-back. */
    if ((flags & (SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER)) != 0) {
        slowfs_after_fd("sync_file_range", fd);
    }
    return rc;
}

/* ---- writes, slow only on synchronous descriptors ------------------------------------ */

/* True when a write to fd is to fail (POS_SLOWFS_FAIL_FLAG); errno kept. */
static int slowfs_full(int fd)
{
    char path[PATH_MAX];
    int saved = errno, full = 0;

    if (slowfs_fail_flag[0] != '\0' && slowfs_prefix_len > 0 &&
        access(slowfs_fail_flag, F_OK) == 0) {
        slowfs_fd_path(fd, path, sizeof(path));
        full = slowfs_under_prefix(path);
        if (full && slowfs_fail_name[0] != '\0') {
            const char *base = strrchr(path, '/');
            full = strcmp(base != NULL ? base + 1 : path, slowfs_fail_name) == 0;
        }
    }
    errno = saved;
    return full;
}

#define FAIL_IF_FULL(fd)                                                                           \
    do {                                                                                           \
        if (slowfs_full(fd)) {                                                                     \
            errno = ENOSPC;                                                                        \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
    NEXT(write_fn, write);
    FAIL_IF_FULL(fd);
    ssize_t rc = real_write(fd, buf, n);
    slowfs_after_write("write", fd);
    return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    NEXT(pwrite_fn, pwrite);
    FAIL_IF_FULL(fd);
    ssize_t rc = real_pwrite(fd, buf, n, off);
    slowfs_after_write("pwrite", fd);
    return rc;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    NEXT(pwrite64_fn, pwrite64);
    FAIL_IF_FULL(fd);
    ssize_t rc = real_pwrite64(fd, buf, n, off);
    slowfs_after_write("pwrite", fd); /* one name: which one is reached depends on the runtime */
    return rc;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    NEXT(writev_fn, writev);
    FAIL_IF_FULL(fd);
    ssize_t rc = real_writev(fd, iov, cnt);
    slowfs_after_write("writev", fd);
    return rc;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    NEXT(pwritev_fn, pwritev);
    FAIL_IF_FULL(fd);
    ssize_t rc = real_pwritev(fd, iov, cnt, off);
    slowfs_after_write("pwritev", fd);
    return rc;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    NEXT(pwritev64_fn, pwritev64);
    FAIL_IF_FULL(fd);
    ssize_t rc = real_pwritev64(fd, iov, cnt, off);
    slowfs_after_write("pwritev", fd);
    return rc;
}

/* ---- reads, failed on request -------------------------------------------------------- */

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*pread64_fn)(int, void *, size_t, off64_t);

/* True when this read of fd is the one to fail (POS_SLOWFS_EIO_FLAG); errno kept. */
static int slowfs_eio(int fd)
{
    char path[PATH_MAX];
    int saved = errno, fail = 0;

    if (slowfs_eio_flag[0] != '\0' && slowfs_prefix_len > 0 && access(slowfs_eio_flag, F_OK) == 0) {
        slowfs_fd_path(fd, path, sizeof(path));
        const char *base = strrchr(path, '/');
        fail = slowfs_under_prefix(path) &&
               strcmp(base != NULL ? base + 1 : path, slowfs_eio_name) == 0 &&
               unlink(slowfs_eio_flag) == 0; /* once: the first to remove it */
    }
    errno = saved;
    return fail;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    NEXT(pread_fn, pread);
    if (slowfs_eio(fd)) {
        errno = EIO;
        return -1;
    }
    return real_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    NEXT(pread64_fn, pread64);
    if (slowfs_eio(fd)) {
        errno = EIO;
        return -1;
    }
    return real_pread64(fd, buf, n, off);
}

/* ---- sockets: a small send buffer on request ------------------------------------------ */

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    NEXT(connect_fn, connect);
    if (slowfs_sndbuf > 0 && addr != NULL &&
        (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
        int saved = errno, type = 0;
        socklen_t tl = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM) {
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &slowfs_sndbuf, sizeof(slowfs_sndbuf));
        }
        errno = saved;
    }
    return real_connect(fd, addr, len);
}
