#ifndef AGENT_METRICS_CLOCKCHECK_H
#define AGENT_METRICS_CLOCKCHECK_H

/*
 * The till's clock against Redis's (pure). The agent sends TIME at every
 * connect and every [redis] clock_check_s; the offset is Redis's time minus
 * the local wall clock at the midpoint of the round trip, so a symmetric
 * network delay cancels out and the error is at most half the round trip.
 * Signed messages are refused outside a window around the local clock
 * (docs/signing.md), so an offset near the window refuses the cloud's
 * messages as stale: the agent warns above half of it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_CLOCK_UNKNOWN INT64_MIN /* no offset measured yet */

/*
 * Parses a TIME reply's two elements (seconds and microseconds, decimal
 * text, sec_len and usec_len bytes) into Unix epoch microseconds.
 * Returns 0, or -EINVAL for anything but plain digits in range.
 */
int pos_clock_parse_time(const char *sec, size_t sec_len, const char *usec, size_t usec_len,
                         uint64_t *epoch_us);

/*
 * The offset in milliseconds (rounded towards zero) of the server's clock
 * against ours: server_us - (sent_wall_us + rtt_us / 2), where
 * sent_wall_us is the local wall clock when TIME was sent and rtt_us the
 * round trip measured on the monotonic clock (so a wall clock step during
 * the round trip does not count twice). Positive: the till is behind.
 */
int64_t pos_clock_offset_ms(uint64_t sent_wall_us, uint64_t rtt_us, uint64_t server_us);

/*
 * Whether to warn: true once when |offset_ms| goes above limit_ms, and
 * again only after it went back to limit_ms or below (*above keeps the
 * state; a POS_CLOCK_UNKNOWN offset changes nothing). Sets *cleared when
 * it just went back below (for an "ok again" line).
 */
bool pos_clock_crossed(bool *above, int64_t offset_ms, uint64_t limit_ms, bool *cleared);

#endif /* AGENT_METRICS_CLOCKCHECK_H */
