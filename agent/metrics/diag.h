#ifndef AGENT_METRICS_DIAG_H
#define AGENT_METRICS_DIAG_H

/*
 * Remote diagnostics (pure): the cloud's DIAG_REQUEST on diag:{terminalId}
 * and the terminal's DIAG_REPORT on the reply channel the request names
 * (docs/contract.md "Remote diagnostics"). The reply channel is confined
 * to diag:reply:{terminalId}:*, so a request can never make the agent
 * publish on a payment, inventory, system or transaction channel, nor on
 * another terminal's replies (the till's Redis ACL allows exactly that
 * pattern, docs/acl.md).
 */

#include <stddef.h>
#include <stdint.h>

#define POS_DIAG_MAX_BYTES  1024 /* a request; anything longer is refused unread */
#define POS_DIAG_ID_MAX     64   /* bytes of requestId */
#define POS_DIAG_PREFIX     "diag:reply:"
#define POS_DIAG_SUFFIX_MAX 64 /* bytes after the prefix and "{terminalId}:" */
#define POS_DIAG_TID_MAX    63 /* bytes of a terminal id (conf's limit) */

typedef struct pos_diag_request {
    char request_id[POS_DIAG_ID_MAX + 1];
    char reply_to[sizeof(POS_DIAG_PREFIX) + POS_DIAG_TID_MAX + 1 + POS_DIAG_SUFFIX_MAX];
} pos_diag_request_t;

/*
 * Decodes a request: a JSON object of at most POS_DIAG_MAX_BYTES with
 * "type":"DIAG_REQUEST", "requestId" (1..64 of [A-Za-z0-9._-]) and
 * "replyTo" (diag:reply:{terminal_id}: then 1..64 of [A-Za-z0-9._:-]);
 * a "terminalId",
 * when present, must be terminal_id. Returns 0; -EALREADY for a message
 * with "origin":"terminal" (ignored); -EPERM when it names another
 * terminal or a reply channel outside diag:reply:{terminal_id}:*;
 * -EINVAL (malformed)
 * or -E2BIG. "why" gets the reason, never the content.
 */
int pos_diag_decode(const char *json, size_t len, const char *terminal_id, pos_diag_request_t *req,
                    char *why, size_t whylen);

/* One warning line for the report. */
typedef struct pos_diag_line {
    uint64_t ts_ms;
    char level; /* 'E' or 'W' */
    const char *text;
} pos_diag_line_t;

/*
 * Writes the DIAG_REPORT into a malloc'd string (*out, *out_len; free()
 * it): type, origin "terminal", terminalId, storeId, ts, requestId, "info"
 * (the INFO text) and "warnings" (oldest first: ts, level "error" or
 * "warn", text). Returns 0, -EINVAL or -ENOMEM.
 */
int pos_diag_report(const char *terminal_id, const char *store_id, uint64_t ts_ms,
                    const char *request_id, const char *info, const pos_diag_line_t *lines,
                    size_t nlines, char **out, size_t *out_len);

#endif /* AGENT_METRICS_DIAG_H */
