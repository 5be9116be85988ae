/*
 * Fuzz target for the RESP command parser. The input is parsed twice: in one
 * piece, and in pieces whose sizes come from the input's own bytes. Both
 * runs must hand out the same commands and end in the same state, and every
 * argument must be NUL-terminated within the limits.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/api/resp_parse.h"
#include "tests/support/fuzz.h"

typedef struct digest {
    uint64_t hash;
    int count;
    int rc;
} digest_t;

static void drain(pos_resp_parser_t *p, digest_t *d)
{
    pos_resp_cmd_t cmd;
    int rc;

    while ((rc = pos_resp_next(p, &cmd)) == 1) {
        if (cmd.argc < 1 || (unsigned)cmd.argc > p->lim.max_args) {
            abort();
        }
        d->count++;
        for (int i = 0; i < cmd.argc; i++) {
            if (cmd.lens[i] > p->lim.max_bulk && cmd.lens[i] > p->lim.max_inline) {
                abort();
            }
            if (cmd.argv[i][cmd.lens[i]] != '\0') {
                abort();
            }
            for (size_t j = 0; j < cmd.lens[i]; j++) {
                d->hash = (d->hash ^ (uint8_t)cmd.argv[i][j]) * 1099511628211ull;
            }
            d->hash = (d->hash ^ 0x100u) * 1099511628211ull;
        }
    }
    d->rc = rc;
}

static void run(const uint8_t *data, size_t size, bool split, digest_t *d)
{
    pos_resp_limits_t lim = {
        .max_args = 16, .max_bulk = 256, .max_inline = 512, .max_pending = 2048};
    pos_resp_parser_t p;
    size_t at = 0;

    memset(d, 0, sizeof(*d));
    d->hash = 14695981039346656037ull;
    pos_resp_init(&p, &lim);
    while (at < size) {
        size_t n = split ? 1u + (size_t)(data[at] % 7u) : size - at;
        if (n > size - at) {
            n = size - at;
        }
        d->rc = pos_resp_feed(&p, (const char *)data + at, n);
        if (d->rc != 0) {
            break;
        }
        drain(&p, d);
        if (d->rc < 0) {
            break;
        }
        at += n;
    }
    if (pos_resp_memory(&p) > lim.max_pending + 16 * 3 * sizeof(void *) + 4096) {
        abort();
    }
    pos_resp_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    digest_t whole, parts;

    run(data, size, false, &whole);
    run(data, size, true, &parts);
    /* Input that fits the pending limit in one piece must parse the same way
     * however it is cut: same commands, same final result. (A longer input
     * fails in one piece but may pass in small pieces parsed as they come.) */
    if (size <= 2048 &&
        (whole.count != parts.count || whole.hash != parts.hash || whole.rc != parts.rc)) {
        abort();
    }
    return 0;
}
