#include "platform/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pos_file_open(const char *path, int flags, mode_t mode)
{
    struct stat st;
    int e, fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK, mode);

    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* write() or read() of exactly len bytes. */
static int file_all(int fd, char *p, size_t len, bool writing)
{
    while (len > 0) {
        ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int pos_file_write_all(int fd, const void *buf, size_t len)
{
    return file_all(fd, (char *)buf, len, true);
}

int pos_file_read_all(int fd, void *buf, size_t len)
{
    return file_all(fd, buf, len, false);
}

/* fsync of the directory holding path, so a rename in it is durable. */
static void sync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd;

    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int pos_file_replace_via(const char *path, const char *tmp, const void *data, size_t len,
                         mode_t mode, bool durable)
{
    int fd, rc;

    fd = pos_file_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        return fd;
    }
    /* The mode asked for, whatever the umask. */
    rc = fchmod(fd, mode) != 0 ? -errno : 0;
    if (rc == 0) {
        rc = pos_file_write_all(fd, data, len);
    }
    if (rc == 0 && durable && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    if (durable) {
        sync_dir_of(path);
    }
    return 0;
}

int pos_file_replace(const char *path, const void *data, size_t len, mode_t mode, bool durable)
{
    char tmp[4096];

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    return pos_file_replace_via(path, tmp, data, len, mode, durable);
}
