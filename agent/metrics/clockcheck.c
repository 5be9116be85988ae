#include "agent/metrics/clockcheck.h"

#include <errno.h>

/* Plain decimal digits, at most max_digits of them. */
static int parse_digits(const char *s, size_t len, size_t max_digits, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > max_digits) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -EINVAL;
        }
        v = v * 10u + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int pos_clock_parse_time(const char *sec, size_t sec_len, const char *usec, size_t usec_len,
                         uint64_t *epoch_us)
{
    uint64_t s, us;

    /* 12 digits of seconds reach the year 33658: no overflow below. */
    if (parse_digits(sec, sec_len, 12, &s) != 0 || parse_digits(usec, usec_len, 6, &us) != 0 ||
        us > 999999u) {
        return -EINVAL;
    }
    *epoch_us = s * 1000000u + us;
    return 0;
}

int64_t pos_clock_offset_ms(uint64_t sent_wall_us, uint64_t rtt_us, uint64_t server_us)
{
    uint64_t mid = sent_wall_us + rtt_us / 2u;

    if (server_us >= mid) {
        return (int64_t)((server_us - mid) / 1000u);
    }
    return -(int64_t)((mid - server_us) / 1000u);
}

bool pos_clock_crossed(bool *above, int64_t offset_ms, uint64_t limit_ms, bool *cleared)
{
    bool now_above;

    *cleared = false;
    if (offset_ms == POS_CLOCK_UNKNOWN) {
        return false;
    }
    now_above =
        (offset_ms < 0 ? (uint64_t)(-(offset_ms + 1)) + 1u : (uint64_t)offset_ms) > limit_ms;
    if (now_above == *above) {
        return false;
    }
    *above = now_above;
    *cleared = !now_above;
    return now_above;
}
