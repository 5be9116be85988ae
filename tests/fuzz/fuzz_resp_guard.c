/*
 * Fuzz target: the RESP guard (agent/link/resp_guard.c), the bound in
 * front of hiredis on every Redis connection.
 *
 * Input: byte 0 picks the limits (small ones, so the fuzzer reaches their
 * edges: bits 0-1 the bulk limit, 2-3 the element limit, 4-6 the depth,
 * bit 7 small line and reply limits), byte 1 seeds how the stream is cut
 * into feeds, the rest is what the server sends.
 *
 * Invariants:
 * - the verdict, the bytes accepted and the replies counted are the same
 *   whether the stream comes whole or in pieces;
 * - hiredis 0.14 reads the accepted prefix without an error, into exactly
 *   as many replies as the guard counted, and holds no partial reply when
 *   the guard is between replies;
 * - no reply hiredis builds from the accepted bytes has a bulk string, an
 *   array or a nesting over the limits;
 * - a refusal is sticky, -EMSGSIZE or -EPROTO, and described in one line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agent/link/resp_guard.h"
#include "tests/support/fuzz.h"

static void limits_from(uint8_t b, pos_resp_guard_limits_t *lim)
{
    static const uint64_t bulk[] = {0, 8, 64, 1024};
    static const uint32_t elements[] = {0, 1, 3, 16};

    memset(lim, 0, sizeof(*lim)); /* zero: the defaults */
    lim->bulk_bytes = bulk[b & 3];
    lim->elements = elements[(b >> 2) & 3];
    lim->depth = 1u + ((b >> 4) & 7); /* 1..8 */
    if (b & 0x80) {
        lim->line_bytes = 16;
        lim->reply_bytes = 512;
    }
}

/* Every reply within the limits the guard enforced. */
static void check_reply(const redisReply *r, const pos_resp_guard_t *g, uint32_t depth)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
        POS_FUZZ_CHECK(r->len <= g->lim.bulk_bytes);
        break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        POS_FUZZ_CHECK(r->len <= g->lim.line_bytes);
        break;
    case REDIS_REPLY_ARRAY:
        POS_FUZZ_CHECK(depth < g->lim.depth);
        POS_FUZZ_CHECK(r->elements <= g->lim.elements);
        for (size_t i = 0; i < r->elements; i++) {
            check_reply(r->element[i], g, depth + 1);
        }
        break;
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_resp_guard_limits_t lim;
    pos_resp_guard_t whole, parts;
    size_t used_whole, used_parts = 0, used, at;
    int rc_whole, rc_parts = 0;
    uint32_t seed;
    const char *s;
    size_t len;

    if (size < 2 || size > 64 * 1024) {
        return 0;
    }
    limits_from(data[0], &lim);
    seed = data[1] * 2654435761u + 1u;
    s = (const char *)data + 2;
    len = size - 2;

    pos_resp_guard_init(&whole, &lim);
    rc_whole = pos_resp_guard_feed(&whole, s, len, &used_whole);
    POS_FUZZ_CHECK(rc_whole == 0 || rc_whole == -EMSGSIZE || rc_whole == -EPROTO);
    POS_FUZZ_CHECK(used_whole <= len);
    POS_FUZZ_CHECK(rc_whole != 0 || used_whole == len);

    /* In pieces of 1..16 bytes. */
    pos_resp_guard_init(&parts, &lim);
    for (at = 0; at < len && rc_parts == 0;) {
        size_t n;
        seed = seed * 1103515245u + 12345u;
        n = 1 + ((seed >> 16) & 15);
        if (n > len - at) {
            n = len - at;
        }
        rc_parts = pos_resp_guard_feed(&parts, s + at, n, &used);
        POS_FUZZ_CHECK(used <= n);
        used_parts += used;
        at += n;
    }
    POS_FUZZ_CHECK(rc_parts == rc_whole);
    POS_FUZZ_CHECK(used_parts == used_whole);
    POS_FUZZ_CHECK(parts.replies == whole.replies);
    POS_FUZZ_CHECK(parts.what == whole.what);

    if (rc_whole != 0) {
        char why[160];
        POS_FUZZ_CHECK(whole.what != POS_RESP_GUARD_OK);
        pos_resp_guard_describe(&whole, why, sizeof(why));
        POS_FUZZ_CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
        POS_FUZZ_CHECK(pos_resp_guard_feed(&whole, "+OK\r\n", 5, &used) == rc_whole && used == 0);
    }

    /* hiredis reads what the guard let through, and agrees. */
    redisReader *rd = redisReaderCreate();
    uint64_t n = 0;
    POS_FUZZ_CHECK(rd != NULL);
    if (used_whole > 0) {
        POS_FUZZ_CHECK(redisReaderFeed(rd, s, used_whole) == REDIS_OK);
    }
    for (;;) {
        void *reply = NULL;
        POS_FUZZ_CHECK(redisReaderGetReply(rd, &reply) == REDIS_OK);
        if (reply == NULL) {
            break;
        }
        check_reply(reply, &whole, 0);
        freeReplyObject(reply);
        n++;
    }
    POS_FUZZ_CHECK(n == whole.replies);
    if (rc_whole == 0 && pos_resp_guard_idle(&whole)) {
        POS_FUZZ_CHECK(rd->pos == rd->len); /* nothing half read */
    }
    redisReaderFree(rd);
    return 0;
}
