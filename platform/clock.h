#ifndef PLATFORM_CLOCK_H
#define PLATFORM_CLOCK_H

#include <stdint.h>

/* Wall-clock time in Unix epoch milliseconds (for message "ts" fields). */
uint64_t pos_clock_wall_ms(void);

/* Monotonic time in milliseconds (for uptime; never goes back). */
uint64_t pos_clock_mono_ms(void);

/* Monotonic time in microseconds (for measuring short work). */
uint64_t pos_clock_mono_us(void);

#endif /* PLATFORM_CLOCK_H */
