#define _GNU_SOURCE /* sched_getaffinity, CPU_* */
#include "platform/cpu.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* The CPUs in set as ranges, "0-1,4" ("" when none fit). */
static void cpu_list(const cpu_set_t *set, char *out, size_t len)
{
    size_t used = 0;

    out[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, set)) {
            continue;
        }
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set)) {
            last++;
        }
        int n = last == c
                    ? snprintf(out + used, len - used, "%s%d", used > 0 ? "," : "", c)
                    : snprintf(out + used, len - used, "%s%d-%d", used > 0 ? "," : "", c, last);
        if (n < 0 || (size_t)n >= len - used) {
            out[used] = '\0'; /* what fitted */
            return;
        }
        used += (size_t)n;
        c = last;
    }
}

bool pos_cpu_allowed(int cpu, char *allowed, size_t len)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        snprintf(allowed, len, "unknown (%s)", strerror(errno));
        return true;
    }
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set)) {
        return true;
    }
    cpu_list(&set, allowed, len);
    return false;
}

int pos_cpu_pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        return -EINVAL;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}
