#include "platform/lockfile.h"
#include "platform/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pid a holder wrote into the file, 0 when unreadable. */
static pid_t lockfile_holder(int fd)
{
    char buf[24];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long v;
    char *end;

    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    v = strtol(buf, &end, 10);
    return v > 0 && (end == buf + n || *end == '\n') ? (pid_t)v : 0;
}

int pos_lockfile_take(const char *path, int *fd, pid_t *holder)
{
    char pid[24];
    int n, lfd = pos_file_open(path, O_RDWR | O_CREAT, 0600);

    if (holder != NULL) {
        *holder = 0;
    }
    if (lfd < 0) {
        return lfd;
    }
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK && holder != NULL) {
            *holder = lockfile_holder(lfd);
        }
        close(lfd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    /* For the message of whoever comes second; the lock is what counts. */
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(lfd, 0) != 0 || pwrite(lfd, pid, (size_t)n, 0) != n) {
        /* A lock without its note still locks. */
    }
    *fd = lfd;
    return 0;
}

int pos_lockfile_probe(const char *path, pid_t *holder)
{
    int rc = 0, lfd = pos_file_open(path, O_RDONLY, 0);

    if (holder != NULL) {
        *holder = 0;
    }
    if (lfd == -ENOENT) {
        return 0;
    }
    if (lfd < 0) {
        return lfd;
    }
    /* A shared lock is refused while an exclusive one is held. */
    if (flock(lfd, LOCK_SH | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY && holder != NULL) {
            *holder = lockfile_holder(lfd);
        }
    }
    close(lfd);
    return rc;
}
