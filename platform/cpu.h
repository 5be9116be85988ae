#ifndef PLATFORM_CPU_H
#define PLATFORM_CPU_H

/*
 * CPU placement ([store] cpu, docs/latency.md "One CPU for the loop and
 * the writer"): every durable write crosses from the event loop to the
 * store writer and back. On two CPUs each crossing wakes the other one
 * (an inter-processor interrupt, and on a virtual machine a halted vCPU
 * to schedule); on one CPU it is a context switch.
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * True when the calling thread may run on CPU cpu (its affinity mask, as
 * the service manager or taskset left it), or when the mask cannot be
 * read (the pin then says why). Otherwise false, with "allowed" set to
 * the CPUs it may run on as a list ("0-1,4").
 */
bool pos_cpu_allowed(int cpu, char *allowed, size_t len);

/*
 * Pins the calling thread to CPU cpu; the threads it starts afterwards
 * inherit that (so: before any is started). Returns 0 or a negative errno.
 */
int pos_cpu_pin(int cpu);

#endif /* PLATFORM_CPU_H */
