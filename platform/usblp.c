/*
 * USB printer class devices (/dev/usb/lpN, the Linux usblp driver). No
 * termios: the device is a plain character device. Reads return status bytes
 * on bidirectional printers and EINVAL on unidirectional ones (serial.c then
 * stops reading); an unplugged printer fails with ENODEV. The I/O itself is
 * the fd engine in serial.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/stream_impl.h"

int pos_stream_usblp_open(const char *path)
{
    struct stat st;
    int fd, err;

    /* O_NONBLOCK: usblp's write otherwise waits for the printer (paper out,
     * offline) with no bound. */
    fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    if (!S_ISCHR(st.st_mode)) {
        /* A typo that names a regular file or a directory is refused here,
         * not written to. */
        close(fd);
        return -ENODEV;
    }
    return fd;
}
