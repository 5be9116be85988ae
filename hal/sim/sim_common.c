#include "hal/sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int pos_sim_check(const char *args, char *err, size_t errlen)
{
    if (args != NULL && args[0] != '\0') {
        snprintf(err, errlen, "the sim driver takes no arguments");
        return -EINVAL;
    }
    return 0;
}

int pos_sim_mkdirs(const char *dir)
{
    char path[512];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof(path)) {
        errno = EINVAL;
        return -EINVAL;
    }
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0750) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Small local files written synchronously: these are the simulator's
 * "devices", a few hundred bytes at a time. */
int pos_sim_write_file(const char *dir, const char *name, const char *data, size_t len,
                       int append)
{
    char path[512], tmp[520];
    int fd, rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (append) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            return -errno;
        }
        rc = write_all(fd, data, len);
        close(fd);
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -errno;
    }
    rc = write_all(fd, data, len);
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}

void pos_sim_read_word(const char *dir, const char *name, char *out, size_t cap)
{
    char path[512], buf[64];
    ssize_t n;
    size_t i = 0;
    int fd;

    out[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    /* first word: [a-z_] only, anything else ends it */
    while (i + 1 < cap && i < (size_t)n && ((buf[i] >= 'a' && buf[i] <= 'z') || buf[i] == '_')) {
        out[i] = buf[i];
        i++;
    }
    out[i] = '\0';
}
