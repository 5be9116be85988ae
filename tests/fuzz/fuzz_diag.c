/*
 * Fuzz target: remote diagnostics' input path (agent/metrics/diag.c) and
 * the warning ring's scrubber (agent/metrics/ring.c), whose output leaves
 * the till.
 *
 * Invariants: a request is accepted only with a requestId of 1..64 plain
 * characters and a reply channel under diag:reply:T-0001: with a plain
 * suffix; a refusal gives a short reason; a report built from the decoded
 * request is valid JSON. The scrubber keeps the length, only ever writes
 * '*', and leaves no run of 12 digits behind.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/metrics/diag.h"
#include "agent/metrics/ring.h"
#include "tests/support/fuzz.h"

static int plain_char(char c, const char *extra)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || (c != '\0' && strchr(extra, c) != NULL);
}

static void scrub_check(const uint8_t *data, size_t size)
{
    char in[POS_RING_LINE_MAX], out[POS_RING_LINE_MAX];
    size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;

    memcpy(in, data, n);
    in[n] = '\0';
    memcpy(out, in, n + 1);
    pos_ring_scrub(out);
    POS_FUZZ_CHECK(strlen(out) == strlen(in));
    size_t digits = 0;
    for (size_t i = 0; out[i] != '\0'; i++) {
        POS_FUZZ_CHECK(out[i] == in[i] || out[i] == '*');
        digits = (out[i] >= '0' && out[i] <= '9') ? digits + 1 : 0;
        POS_FUZZ_CHECK(digits < 12);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_diag_request_t req;
    char why[160];

    scrub_check(data, size);
    int rc = pos_diag_decode((const char *)data, size, "T-0001", &req, why, sizeof(why));
    if (rc != 0) {
        POS_FUZZ_CHECK(rc == -EINVAL || rc == -EPERM || rc == -E2BIG || rc == -EALREADY);
        POS_FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
        return 0;
    }
    size_t idl = strlen(req.request_id);
    POS_FUZZ_CHECK(idl >= 1 && idl <= POS_DIAG_ID_MAX);
    for (size_t i = 0; i < idl; i++) {
        POS_FUZZ_CHECK(plain_char(req.request_id[i], ""));
    }
    const char *prefix = POS_DIAG_PREFIX "T-0001:";
    POS_FUZZ_CHECK(strncmp(req.reply_to, prefix, strlen(prefix)) == 0);
    const char *suffix = req.reply_to + strlen(prefix);
    POS_FUZZ_CHECK(strlen(suffix) >= 1 && strlen(suffix) <= POS_DIAG_SUFFIX_MAX);
    for (const char *p = suffix; *p != '\0'; p++) {
        POS_FUZZ_CHECK(plain_char(*p, ":"));
    }
    pos_diag_line_t line = {1, 'W', why};
    char *json = NULL;
    size_t len = 0;
    POS_FUZZ_CHECK(pos_diag_report("T-0001", "S-042", 1, req.request_id, "# server\r\n", &line, 1,
                                   &json, &len) == 0);
    cJSON *j = cJSON_Parse(json);
    POS_FUZZ_CHECK(j != NULL);
    cJSON_Delete(j);
    free(json);
    return 0;
}
