/*
 * Fuzz target for pos_stream_spec_parse() and pos_stream_spec_format().
 * Besides memory safety it checks: an error is one printable line and
 * leaves the spec zeroed; a parsed spec obeys the documented limits (absolute
 * path without "..", baud from the table, port 1..65535); its canonical form
 * parses back to the same spec.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/stream.h"
#include "tests/support/fuzz.h"

static void check_path(const char *p)
{
    size_t n = strlen(p);

    POS_FUZZ_CHECK(n >= 2 && n <= POS_STREAM_PATH_MAX && p[0] == '/' && p[n - 1] != '/');
    POS_FUZZ_CHECK(strstr(p, "/../") == NULL && (n < 3 || strcmp(p + n - 3, "/..") != 0));
    for (size_t i = 0; i < n; i++) {
        POS_FUZZ_CHECK(p[i] > 0x20 && p[i] < 0x7f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char spec[1024], err[256], canon[600];
    pos_stream_spec_t sp, back, zero;

    if (size >= sizeof(spec)) {
        return 0;
    }
    memcpy(spec, data, size);
    spec[size] = '\0';
    memset(&zero, 0, sizeof(zero));

    if (pos_stream_spec_parse(spec, &sp, err, sizeof(err)) != 0) {
        POS_FUZZ_CHECK(err[0] != '\0');
        for (const char *p = err; *p != '\0'; p++) {
            POS_FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
        }
        POS_FUZZ_CHECK(memcmp(&sp, &zero, sizeof(sp)) == 0);
        return 0;
    }
    POS_FUZZ_CHECK(err[0] == '\0');
    switch (sp.kind) {
    case POS_STREAM_SERIAL:
        check_path(sp.path);
        POS_FUZZ_CHECK(pos_stream_baud_supported(sp.baud));
        POS_FUZZ_CHECK(sp.host[0] == '\0' && sp.port == 0);
        break;
    case POS_STREAM_USBLP:
        check_path(sp.path);
        POS_FUZZ_CHECK(sp.baud == 0 && sp.host[0] == '\0' && sp.port == 0);
        break;
    case POS_STREAM_TCP:
        POS_FUZZ_CHECK(sp.host[0] != '\0' && strlen(sp.host) <= POS_STREAM_HOST_MAX);
        POS_FUZZ_CHECK(sp.port >= 1 && sp.path[0] == '\0' && sp.baud == 0);
        break;
    default:
        POS_FUZZ_CHECK(0);
    }
    int n = pos_stream_spec_format(&sp, canon, sizeof(canon));
    POS_FUZZ_CHECK(n > 0 && (size_t)n < sizeof(canon) && (size_t)n == strlen(canon));
    POS_FUZZ_CHECK(pos_stream_spec_parse(canon, &back, err, sizeof(err)) == 0);
    POS_FUZZ_CHECK(memcmp(&back, &sp, sizeof(sp)) == 0);
    return 0;
}
