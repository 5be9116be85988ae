/* Simulated customer display: the screen is the file display.txt. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "hal/charset.h"
#include "hal/display.h"
#include "hal/sim/sim.h"
#include "hal/sim/sim_watch.h"
#include "platform/files.h"
#include "platform/log.h"

#define SIM_DISPLAY_COLS 20

typedef struct sim_display {
    pos_sim_dev_t sim; /* first */
    bool offline;
    int fd; /* display.txt, kept open: a screen update is one pwrite */
} sim_display_t;

static void sim_display_fault(pos_sim_watch_t *w)
{
    pos_hal_device_t *dev = w->dev;
    sim_display_t *d = dev->driver_data;
    char word[32];

    pos_sim_read_word(d->sim.dir, "display.fault", word, sizeof(word));
    d->offline = strcmp(word, "offline") == 0;
    pos_hal_set_status(dev, d->offline ? POS_DEV_OFFLINE : POS_DEV_READY);
}

static int sim_display_write(sim_display_t *d, const char *l1, const char *l2)
{
    char a[SIM_DISPLAY_COLS * 4 + 1], b[SIM_DISPLAY_COLS * 4 + 1], screen[sizeof(a) * 2 + 2];
    size_t la = 0, lb = 0;

    char s1[256], s2[256];
    size_t n1 = 0, n2 = 0;

    /* The glass shows exactly 20 columns per line: control characters and
     * invalid UTF-8 replaced, then padded or cut on a character boundary. */
    if (pos_charset_sanitize(l1, strlen(l1), '?', s1, sizeof(s1), &n1) < 0 ||
        pos_charset_sanitize(l2, strlen(l2), '?', s2, sizeof(s2), &n2) < 0 ||
        pos_charset_fit(s1, n1, SIM_DISPLAY_COLS, POS_ALIGN_LEFT, a, sizeof(a), &la) < 0 ||
        pos_charset_fit(s2, n2, SIM_DISPLAY_COLS, POS_ALIGN_LEFT, b, sizeof(b), &lb) < 0) {
        return -EINVAL;
    }
    int n = snprintf(screen, sizeof(screen), "%s\n%s\n", a, b);
    if (d->fd < 0) {
        return pos_sim_write_file(d->sim.dir, "display.txt", screen, (size_t)n, 0);
    }
    /* In place, like the glass: the payment path stays free of file
     * creation and renames. Readers may catch a half-written screen. */
    if (pwrite(d->fd, screen, (size_t)n, 0) != n || ftruncate(d->fd, n) != 0) {
        return -EIO;
    }
    return 0;
}

static int sim_display_open(pos_hal_device_t *dev)
{
    sim_display_t *d = dev->driver_data;
    int rc;

    rc = pos_sim_dev_open(dev, sim_display_fault);
    if (rc != 0) {
        return rc;
    }
    char path[300];
    snprintf(path, sizeof(path), "%s/display.txt", d->sim.dir);
    /* Not through a link planted there, not into a FIFO or a device. */
    d->fd = pos_file_open(path, O_RDWR | O_CREAT, 0640);
    if (d->fd < 0) {
        /* Each screen is then written whole and renamed into place, which
         * replaces what is there and never writes through it. */
        POS_WARN("hal", "display: cannot open %s (%s): the screen replaces it instead", path,
                 strerror(-d->fd));
        d->fd = -1;
    }
    /* A blank screen to start with; a failure here fails each show too,
     * where it is reported. */
    rc = sim_display_write(d, "", "");
    if (rc != 0) {
        POS_WARN("hal", "display: cannot write %s: %s", path, strerror(-rc));
    }
    return 0;
}

static int sim_display_show(pos_hal_device_t *dev, const char *line1, const char *line2)
{
    sim_display_t *d = dev->driver_data;
    int rc;

    if (d->offline) {
        return -ENODEV;
    }
    rc = sim_display_write(d, line1, line2);
    pos_hal_output_complete(dev, 0, rc);
    return 0;
}

static void sim_display_release(pos_sim_dev_t *s)
{
    sim_display_t *d = (sim_display_t *)s;
    if (d->fd >= 0) {
        close(d->fd);
    }
}

static const struct pos_display_api sim_display_api = {
    .lc = {.driver = "sim", .open = sim_display_open, .close = pos_sim_dev_close},
    .show = sim_display_show,
};

int pos_sim_display_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    sim_display_t *d;

    (void)args;
    d = pos_sim_dev_create(dev, sizeof(*d), &sim_display_api, o);
    if (d == NULL) {
        return -ENOMEM;
    }
    d->fd = -1;
    d->sim.release = sim_display_release;
    return 0;
}
