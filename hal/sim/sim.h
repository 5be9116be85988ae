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
 *   printer.fault    "", paper_low, paper_out, cover_open or offline
 *   pinpad.fault     "", timeout, offline, decline or error
 *   display.fault    "" or offline
 *
 * Fault files are watched (inotify through uv_fs_event), not polled.
 */

#include "hal/device.h"
#include "hal/registry.h"

int pos_sim_display_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_sim_printer_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_sim_pinpad_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);

/* The "sim" driver takes no arguments. */
int pos_sim_check(const char *args, char *err, size_t errlen);

/* Test-only side door, in process: charges so far, and a fault to inject
 * ("" clears it). */
unsigned pos_sim_pinpad_charges(const pos_hal_device_t *dev);
int pos_sim_inject_fault(pos_hal_device_t *dev, const char *fault);

/* Shared by the simulated drivers: writes "len" bytes to dir/name
 * atomically (temporary file + rename) or appends them. */
int pos_sim_write_file(const char *dir, const char *name, const char *data, size_t len,
                       int append);
/* Creates dir and its missing parents (mode 0750). Returns 0 or -errno. */
int pos_sim_mkdirs(const char *dir);

/* Reads the first word of dir/name into out ("" when absent). */
void pos_sim_read_word(const char *dir, const char *name, char *out, size_t cap);

#endif /* HAL_SIM_SIM_H */
