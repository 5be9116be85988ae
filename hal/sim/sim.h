#ifndef HAL_SIM_SIM_H
#define HAL_SIM_SIM_H

/*
 * Simulated devices: complete drivers behind the same ops tables as the
 * real ones, used on x86 and in CI. They keep their state in files under
 * [hal] sim_dir, which is also their test-only side door:
 *
 *   display.txt      the two lines on the customer display (rewritten)
 *   receipts.txt     every receipt, as the text on the paper (appended)
 *   pinpad.charges   how many times a card was charged (decimal)
 *   pinpad.charged   the transaction id of each charge, a line each (appended)
 *   printer.fault    "", paper_low, paper_out, cover_open or offline
 *   pinpad.fault     "", timeout, offline, decline or error
 *   display.fault    "" or offline
 *
 * Fault files are watched (inotify through uv_fs_event), not polled.
 */

#include <stddef.h>

#include "hal/device.h"
#include "hal/registry.h"
#include "hal/sim/sim_watch.h"

int pos_sim_display_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_sim_printer_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_sim_pinpad_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);

/* The "sim" driver takes no arguments. */
int pos_sim_check(const char *args, char *err, size_t errlen);

/* Test-only side door, in process: charges so far, and a fault to inject
 * ("" clears it). */
unsigned pos_sim_pinpad_charges(const pos_hal_device_t *dev);
int pos_sim_inject_fault(pos_hal_device_t *dev, const char *fault);

/*
 * What every simulated driver's data starts with (its struct embeds this
 * first), and the open and close they share.
 */
typedef struct pos_sim_dev pos_sim_dev_t;
struct pos_sim_dev {
    pos_sim_watch_t watch; /* the fault file, and the driver's timer */
    char dir[256];         /* [hal] sim_dir: the device's files */
    size_t size;           /* of the driver's whole struct, wiped when freed */
    /* Optional: releases what the driver holds besides its memory (a file
     * descriptor); runs once, on close, before the memory is wiped. */
    void (*release)(pos_sim_dev_t *s);
};

/*
 * Allocates a simulated driver's data: "size" bytes (>= sizeof(pos_sim_dev_t)),
 * zeroed, with dir from o->sim_dir; attaches it and the ops table "api" to
 * dev. Returns the data (the driver's struct), or NULL when out of memory.
 */
void *pos_sim_dev_create(pos_hal_device_t *dev, size_t size, const void *api,
                         const pos_hal_options_t *o);

/*
 * Opens a simulated device: creates its directory, starts watching its fault
 * file (<dev->kind>.fault) and reads it once through changed(). Returns 0 or
 * -errno (the directory cannot be created).
 */
int pos_sim_dev_open(pos_hal_device_t *dev, void (*changed)(pos_sim_watch_t *w));

/*
 * The close of every simulated driver (its lifecycle .close): closes the
 * watch, then calls release(), wipes and frees the data and calls
 * pos_hal_driver_closed(). Safe whether or not open ran.
 */
void pos_sim_dev_close(pos_hal_device_t *dev);

/* Shared by the simulated drivers: writes "len" bytes to dir/name
 * atomically (temporary file + rename) or appends them. A symbolic link,
 * FIFO or device in their place is refused (-ELOOP, -EINVAL), never
 * written through. Returns 0 or -errno. */
int pos_sim_write_file(const char *dir, const char *name, const char *data, size_t len, int append);
/* Creates dir and its missing parents (mode 0750). Returns 0 or -errno. */
int pos_sim_mkdirs(const char *dir);

/* Opens dir/name for reading: a regular file, not through a symbolic
 * link, without blocking. Returns the descriptor or -errno. */
int pos_sim_open_read(const char *dir, const char *name);

/* Reads the first word of dir/name into out ("" when absent or not a
 * regular file). */
void pos_sim_read_word(const char *dir, const char *name, char *out, size_t cap);

#endif /* HAL_SIM_SIM_H */
