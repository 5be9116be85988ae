#include "agent/msg/status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "platform/ident.h"

static const char term_names[][9] = {"online", "busy", "degraded", "offline"};
static const char dev_names[][11] = {"ready",     "busy",      "offline",   "error",
                                     "paper_low", "paper_out", "cover_open"};

const char *pos_term_status_name(pos_term_status_t s)
{
    return (unsigned)s < sizeof(term_names) / sizeof(term_names[0]) ? term_names[s] : "offline";
}

const char *pos_dev_state_name(pos_dev_state_t s)
{
    return (unsigned)s < sizeof(dev_names) / sizeof(dev_names[0]) ? dev_names[s] : "error";
}

bool pos_dev_state_is_fault(pos_dev_state_t s)
{
    return s == POS_DEV_ERROR || s == POS_DEV_OFFLINE || s == POS_DEV_PAPER_OUT ||
           s == POS_DEV_COVER_OPEN;
}

pos_term_status_t pos_status_compute(bool payment_active, bool journal_ok,
                                     const pos_dev_state_t devices[POS_DEV_COUNT])
{
    if (payment_active) {
        return POS_TERM_BUSY;
    }
    if (!journal_ok) {
        return POS_TERM_DEGRADED;
    }
    for (int i = 0; i < POS_DEV_COUNT; i++) {
        if (pos_dev_state_is_fault(devices[i])) {
            return POS_TERM_DEGRADED;
        }
    }
    return POS_TERM_ONLINE;
}

/* Non-empty, and only letters, digits, '.', '_', '-' and the characters of
 * extra: nothing JSON would need escaped. */
static bool plain_chars(const char *s, const char *extra)
{
    return pos_ident_plain(s, extra);
}

static bool plain_id(const char *s)
{
    return plain_chars(s, "");
}

/* Versions such as 0.2.0~git231.1a2b3c4d5e6f or 0.2.0+git240.1a2b3c4d5e6f. */
static bool plain_version(const char *s)
{
    return plain_chars(s, "+~");
}

static int finish(int n, size_t len)
{
    if (n < 0) {
        return -EINVAL;
    }
    return (size_t)n >= len ? -ENOSPC : n;
}

int pos_status_json(const pos_status_report_t *r, char *buf, size_t len)
{
    char store[128];

    if (!plain_id(r->terminal_id) || !plain_id(r->store_id) || !plain_version(r->version) ||
        (r->build != NULL && !plain_version(r->build)) ||
        (!r->journal_ok && !plain_id(r->journal_reason))) {
        return -EINVAL;
    }
    if (r->journal_ok) {
        snprintf(store, sizeof(store), "{\"journal\":\"ok\",\"recovered\":%" PRIu32 "}",
                 r->recovered);
    } else {
        snprintf(store, sizeof(store),
                 "{\"journal\":\"unavailable\",\"reason\":\"%.40s\",\"recovered\":%" PRIu32 "}",
                 r->journal_reason, r->recovered);
    }
    char clock[40] = "";
    if (r->clock_known) {
        snprintf(clock, sizeof(clock), ",\"clockOffsetMs\":%" PRId64, r->clock_offset_ms);
    }
    int n =
        snprintf(buf, len,
                 "{\"terminalId\":\"%s\",\"storeId\":\"%s\",\"status\":\"%s\","
                 "\"ts\":%" PRIu64 ",\"version\":\"%s\"%s%s%s,\"uptimeS\":%" PRIu64 ","
                 "\"devices\":{\"display\":\"%s\",\"printer\":\"%s\",\"pinpad\":\"%s\"},"
                 "\"outbox\":%" PRIu32 ",\"signed\":%s,\"store\":%s%s}",
                 r->terminal_id, r->store_id, pos_term_status_name(r->status), r->ts_ms, r->version,
                 r->build ? ",\"build\":\"" : "", r->build ? r->build : "", r->build ? "\"" : "",
                 r->uptime_s, pos_dev_state_name(r->devices[POS_DEV_DISPLAY]),
                 pos_dev_state_name(r->devices[POS_DEV_PRINTER]),
                 pos_dev_state_name(r->devices[POS_DEV_PINPAD]), r->outbox,
                 r->signing ? "true" : "false", store, clock);
    return finish(n, len);
}

int pos_status_change_json(const char *terminal_id, const char *store_id, pos_term_status_t status,
                           pos_term_status_t previous, uint64_t ts_ms, char *buf, size_t len)
{
    if (!plain_id(terminal_id) || !plain_id(store_id)) {
        return -EINVAL;
    }
    int n = snprintf(buf, len,
                     "{\"type\":\"TERMINAL_STATUS\",\"origin\":\"terminal\",\"terminalId\":\"%s\","
                     "\"storeId\":\"%s\",\"status\":\"%s\",\"previous\":\"%s\",\"ts\":%" PRIu64 "}",
                     terminal_id, store_id, pos_term_status_name(status),
                     pos_term_status_name(previous), ts_ms);
    return finish(n, len);
}
