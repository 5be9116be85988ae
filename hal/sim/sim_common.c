#include "hal/sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal/buf.h"
#include "platform/dirs.h"
#include "platform/files.h"
#include "platform/log.h"

int pos_sim_check(const char *args, char *err, size_t errlen)
{
    if (args != NULL && args[0] != '\0') {
        snprintf(err, errlen, "the sim driver takes no arguments");
        return -EINVAL;
    }
    return 0;
}

void *pos_sim_dev_create(pos_hal_device_t *dev, size_t size, const void *api,
                         const pos_hal_options_t *o)
{
    pos_sim_dev_t *s = calloc(1, size);

    if (s == NULL) {
        return NULL;
    }
    snprintf(s->dir, sizeof(s->dir), "%s", o->sim_dir);
    s->size = size;
    s->watch.dev = dev; /* close may run without open */
    dev->api = api;
    dev->driver_data = s;
    return s;
}

int pos_sim_dev_open(pos_hal_device_t *dev, void (*changed)(pos_sim_watch_t *w))
{
    pos_sim_dev_t *s = dev->driver_data;
    char fault[32];
    int rc;

    rc = pos_sim_mkdirs(s->dir);
    if (rc != 0) {
        POS_ERR("hal", "%s: cannot create %s: %s", dev->kind, s->dir, strerror(-rc));
        return rc;
    }
    snprintf(fault, sizeof(fault), "%s.fault", dev->kind);
    rc = pos_sim_watch_start(&s->watch, dev, s->dir, fault, changed);
    if (rc != 0) {
        return rc;
    }
    changed(&s->watch);
    return 0;
}

static void sim_dev_closed(pos_sim_watch_t *w)
{
    pos_hal_device_t *dev = w->dev;
    pos_sim_dev_t *s = dev->driver_data;

    if (s->release != NULL) {
        s->release(s);
    }
    /* The pinpad's held a card number; the others' are wiped alike. */
    pos_buf_wipe_mem(s, s->size);
    free(s);
    dev->driver_data = NULL;
    pos_hal_driver_closed(dev);
}

void pos_sim_dev_close(pos_hal_device_t *dev)
{
    pos_sim_dev_t *s = dev->driver_data;
    pos_sim_watch_close(&s->watch, sim_dev_closed);
}

int pos_sim_inject_fault(pos_hal_device_t *dev, const char *fault)
{
    const pos_sim_dev_t *s = dev->driver_data;
    char name[48], data[40];
    int n;

    if (s == NULL) {
        return -EINVAL;
    }
    snprintf(name, sizeof(name), "%s.fault", dev->kind);
    n = snprintf(data, sizeof(data), "%s\n", fault);
    return pos_sim_write_file(s->dir, name, data, (size_t)n, 0);
}

int pos_sim_mkdirs(const char *dir)
{
    /* The simulator's file names are made below dir in 512-byte buffers. */
    if (strlen(dir) == 0 || strlen(dir) >= 512) {
        errno = EINVAL;
        return -EINVAL;
    }
    return pos_dirs_make(dir, 0750, 0750);
}

int pos_sim_open_read(const char *dir, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return pos_file_open(path, O_RDONLY, 0);
}

/* Small local files written synchronously: these are the simulator's
 * "devices", a few hundred bytes at a time. Never through a link planted in
 * the directory (an agent started as root would write cloud-supplied text
 * wherever it points), never into a FIFO or a device. */
int pos_sim_write_file(const char *dir, const char *name, const char *data, size_t len, int append)
{
    char path[512];
    int fd, rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!append) {
        return pos_file_replace(path, data, len, 0640, false);
    }
    fd = pos_file_open(path, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (fd < 0) {
        return fd;
    }
    rc = pos_file_write_all(fd, data, len);
    close(fd);
    return rc;
}

void pos_sim_read_word(const char *dir, const char *name, char *out, size_t cap)
{
    char buf[64];
    ssize_t n;
    size_t i = 0;
    int fd;

    out[0] = '\0';
    fd = pos_sim_open_read(dir, name);
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
