#include "agent/metrics/diag.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "platform/ident.h"

/* 1..max bytes of [A-Za-z0-9._-] and of extra. */
static bool plain(const char *s, size_t max, const char *extra)
{
    return strlen(s) <= max && pos_ident_plain(s, extra);
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : NULL;
}

int pos_diag_decode(const char *json, size_t len, const char *terminal_id, pos_diag_request_t *req,
                    char *why, size_t whylen)
{
    cJSON *o;
    const char *type, *origin, *id, *reply, *tid;
    int rc = -EINVAL;

    memset(req, 0, sizeof(*req));
    if (len > POS_DIAG_MAX_BYTES) {
        snprintf(why, whylen, "request of %zu bytes, over %d", len, POS_DIAG_MAX_BYTES);
        return -E2BIG;
    }
    o = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(o)) {
        snprintf(why, whylen, "not a JSON object");
        goto out;
    }
    origin = str_field(o, "origin");
    if (origin != NULL && strcmp(origin, "terminal") == 0) {
        snprintf(why, whylen, "a terminal's message");
        rc = -EALREADY;
        goto out;
    }
    type = str_field(o, "type");
    if (type == NULL || strcmp(type, "DIAG_REQUEST") != 0) {
        snprintf(why, whylen, "type is not DIAG_REQUEST");
        goto out;
    }
    id = str_field(o, "requestId");
    if (id == NULL || !plain(id, POS_DIAG_ID_MAX, "")) {
        snprintf(why, whylen, "field requestId: missing or not 1..%d of [A-Za-z0-9._-]",
                 POS_DIAG_ID_MAX);
        goto out;
    }
    reply = str_field(o, "replyTo");
    if (reply == NULL) {
        snprintf(why, whylen, "field replyTo: missing or not a string");
        goto out;
    }
    size_t plen = sizeof(POS_DIAG_PREFIX) - 1, tlen = strlen(terminal_id);
    if (tlen == 0 || tlen > POS_DIAG_TID_MAX || strncmp(reply, POS_DIAG_PREFIX, plen) != 0 ||
        strncmp(reply + plen, terminal_id, tlen) != 0 || reply[plen + tlen] != ':' ||
        !plain(reply + plen + tlen + 1, POS_DIAG_SUFFIX_MAX, ":")) {
        snprintf(why, whylen,
                 "field replyTo: not a channel " POS_DIAG_PREFIX "%.63s:<1..%d of "
                 "[A-Za-z0-9._:-]>",
                 terminal_id, POS_DIAG_SUFFIX_MAX);
        rc = -EPERM;
        goto out;
    }
    tid = str_field(o, "terminalId");
    if (cJSON_GetObjectItemCaseSensitive(o, "terminalId") != NULL &&
        (tid == NULL || strcmp(tid, terminal_id) != 0)) {
        snprintf(why, whylen, "field terminalId: names another terminal");
        rc = -EPERM;
        goto out;
    }
    snprintf(req->request_id, sizeof(req->request_id), "%s", id);
    snprintf(req->reply_to, sizeof(req->reply_to), "%s", reply);
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

int pos_diag_report(const char *terminal_id, const char *store_id, uint64_t ts_ms,
                    const char *request_id, const char *info, const pos_diag_line_t *lines,
                    size_t nlines, char **out, size_t *out_len)
{
    cJSON *o = cJSON_CreateObject(), *w = NULL;
    bool ok = o != NULL;

    *out = NULL;
    *out_len = 0;
    if (terminal_id == NULL || store_id == NULL || request_id == NULL || info == NULL) {
        cJSON_Delete(o);
        return -EINVAL;
    }
    ok = ok && cJSON_AddStringToObject(o, "type", "DIAG_REPORT") != NULL;
    ok = ok && cJSON_AddStringToObject(o, "origin", "terminal") != NULL;
    ok = ok && cJSON_AddStringToObject(o, "terminalId", terminal_id) != NULL;
    ok = ok && cJSON_AddStringToObject(o, "storeId", store_id) != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "ts", (double)ts_ms) != NULL;
    ok = ok && cJSON_AddStringToObject(o, "requestId", request_id) != NULL;
    ok = ok && cJSON_AddStringToObject(o, "info", info) != NULL;
    ok = ok && (w = cJSON_AddArrayToObject(o, "warnings")) != NULL;
    for (size_t i = 0; ok && i < nlines; i++) {
        cJSON *l = cJSON_CreateObject();
        ok = l != NULL && cJSON_AddItemToArray(w, l);
        ok = ok && cJSON_AddNumberToObject(l, "ts", (double)lines[i].ts_ms) != NULL;
        ok = ok &&
             cJSON_AddStringToObject(l, "level", lines[i].level == 'E' ? "error" : "warn") != NULL;
        ok = ok && cJSON_AddStringToObject(l, "text", lines[i].text) != NULL;
    }
    if (ok) {
        *out = cJSON_PrintUnformatted(o);
        ok = *out != NULL;
    }
    cJSON_Delete(o);
    if (!ok) {
        return -ENOMEM;
    }
    *out_len = strlen(*out);
    return 0;
}
