/*
 * Fuzz target: the system:alerts channel's message decoder
 * (agent/msg/messages.c) and, for CACHE_INVALIDATE, what the agent does with
 * it: the offline cache drops every entry matching the Redis glob
 * (pos_cachesvc_invalidate, agent/sync/cachesvc.c) on a real LMDB store that holds
 * a fixed set of keys. Decoding uses the agent's limits for this channel.
 *
 * Invariants: only SYSTEM_ALERT and CACHE_INVALIDATE decode here; an
 * alert's ids are valid or empty and its message is non-empty; after an
 * invalidation a key is gone exactly when the pattern matches it; a
 * refusal gives a short reason.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/msg/messages.h"
#include "agent/sync/glob.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "tests/fuzz/fuzz_cache.h"
#include "tests/support/fuzz.h"

static const char *const keys[] = {
    "product:P-7", "product:P-8", "inventory:S-042:P-7", "inventory:S-043:P-7",
    "user:u1",     "session:s[1]*?\\x",
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void fill(pos_cachesvc_t *cs)
{
    uint64_t now = pos_clock_wall_ms();
    pos_cache_info_t info;

    for (size_t i = 0; i < NKEYS; i++) {
        size_t n = strlen(keys[i]);
        if (pos_cache_get(&cs->cache, keys[i], n, now, NULL, 0, &info) == -ENOENT) {
            POS_FUZZ_CHECK(pos_cache_put(&cs->cache, keys[i], n, "{\"v\":1}", 7,
                                pos_cache_family_of(keys[i], n), now) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As agent_decode() in agent/agent.c: 64 KiB, no amounts on this channel. */
    static const pos_msg_limits_t lim = {64u * 1024u, 1, NULL, NULL};
    static pos_msg_t msg;
    char why[128];
    pos_cache_info_t info;

    pos_log_set_level(POS_LOG_ERROR);
    int rc = pos_msg_decode(POS_MSG_CH_SYSTEM, (const char *)data, size, &lim, &msg, why,
                            sizeof(why));
    if (rc != 0) {
        POS_FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
        return 0;
    }
    if (msg.type == POS_MSG_SYSTEM_ALERT) {
        const pos_msg_alert_t *al = &msg.u.alert;
        POS_FUZZ_CHECK(al->severity >= POS_MSG_SEV_INFO && al->severity <= POS_MSG_SEV_CRITICAL);
        POS_FUZZ_CHECK(memchr(al->message, '\0', sizeof(al->message)) != NULL &&
                       al->message[0] != '\0');
        POS_FUZZ_CHECK(al->store_id[0] == '\0' || pos_msg_id_valid(al->store_id));
        POS_FUZZ_CHECK(al->terminal_id[0] == '\0' || pos_msg_id_valid(al->terminal_id));
        return 0;
    }
    POS_FUZZ_CHECK(msg.type == POS_MSG_CACHE_INVALIDATE);
    const char *pat = msg.u.invalidate.pattern;
    size_t plen = strlen(pat);
    POS_FUZZ_CHECK(plen >= 1 && plen <= POS_MSG_PATTERN_MAX);

    pos_cachesvc_t *cs = fuzz_cache();
    fill(cs);
    pos_cachesvc_invalidate(cs, pat);
    for (size_t i = 0; i < NKEYS; i++) {
        size_t n = strlen(keys[i]);
        bool gone = pos_cache_get(&cs->cache, keys[i], n, pos_clock_wall_ms(), NULL, 0, &info) ==
                    -ENOENT;
        POS_FUZZ_CHECK(gone == pos_glob_match(pat, plen, keys[i], n));
    }
    return 0;
}
