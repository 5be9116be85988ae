/*
 * Fuzz target: the __redis__:invalidate channel (server-assisted cache
 * invalidation: CLIENT TRACKING redirected to the subscriber). Its messages
 * are not JSON but RESP: the third element of the pub/sub array is an
 * array of keys, or nil when Redis flushed everything. The input is that
 * element as the server sends it; hiredis's redisReader parses it, the
 * link's rule picks the keys (an array, else "everything"), and the agent's
 * handler (pos_cachesvc_tracking, agent/sync/cachesvc.c) marks entries stale in a
 * real LMDB store holding a fixed set of keys.
 *
 * Invariants: every key the array names (as a string) is stale afterwards
 * and every other key keeps its state; "everything" marks all stale;
 * nothing is deleted.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "platform/clock.h"
#include "platform/log.h"
#include "tests/fuzz/fuzz_cache.h"
#include "tests/support/fuzz.h"

static const char *const keys[] = {
    "product:P-7", "product:P-8", "inventory:S-042:P-7", "user:u1", "session:s1",
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static bool named(const redisReply *arr, const char *key, size_t n)
{
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *k = arr->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len == n && memcmp(k->str, key, n) == 0) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_cache_info_t info;
    void *reply = NULL;
    uint64_t now;

    pos_log_set_level(POS_LOG_ERROR);
    redisReader *rd = redisReaderCreate();
    POS_FUZZ_CHECK(rd != NULL);
    if (redisReaderFeed(rd, (const char *)data, size) != REDIS_OK ||
        redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL) {
        redisReaderFree(rd);
        return 0; /* the connection would have been dropped: protocol error */
    }
    const redisReply *r = reply;
    /* As link_conn_push(): an array is the keys, anything else "all". */
    const redisReply *arr = r->type == REDIS_REPLY_ARRAY ? r : NULL;

    pos_cachesvc_t *cs = fuzz_cache();
    now = pos_clock_wall_ms();
    for (size_t i = 0; i < NKEYS; i++) { /* all present and fresh */
        size_t n = strlen(keys[i]);
        POS_FUZZ_CHECK(pos_cache_put(&cs->cache, keys[i], n, "{\"v\":1}", 7,
                            pos_cache_family_of(keys[i], n), now) == 0);
    }
    pos_cachesvc_tracking(cs, arr);
    for (size_t i = 0; i < NKEYS; i++) {
        size_t n = strlen(keys[i]);
        char buf[16];
        POS_FUZZ_CHECK(pos_cache_get(&cs->cache, keys[i], n, now, buf, sizeof(buf), &info) == 0);
        POS_FUZZ_CHECK(info.meta.stale == (arr == NULL || named(arr, keys[i], n)));
    }
    freeReplyObject(reply);
    redisReaderFree(rd);
    return 0;
}
