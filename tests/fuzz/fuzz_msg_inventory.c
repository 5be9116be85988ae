/*
 * Fuzz target: the inventory:{storeId} channel's message decoder
 * (agent/msg/messages.c) and what the agent does with a decoded message: the
 * offline cache's local update (pos_cachesvc_inventory, agent/sync/cachesvc.c) on
 * a real LMDB store. Decoding uses the agent's limits for this channel.
 *
 * Invariants: only INVENTORY_UPDATED and LOW_STOCK_ALERT decode here, with
 * valid ids and a threshold >= 0; after the update the cache holds
 * inventory:{storeId}:{productId} and its value is a JSON object with the
 * message's productId and without "type"; a refusal gives a short reason.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/msg/messages.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "tests/fuzz/fuzz_cache.h"
#include "tests/support/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As agent_decode() in agent/agent.c: 64 KiB, no amounts on this channel. */
    static const pos_msg_limits_t lim = {64u * 1024u, 1, "S-042", NULL};
    static pos_msg_t msg;
    static char value[POS_MSG_DEFAULT_MAX_LEN + 1];
    char why[128], key[160];
    pos_cache_info_t info;

    pos_log_set_level(POS_LOG_ERROR);
    int rc = pos_msg_decode(POS_MSG_CH_INVENTORY, (const char *)data, size, &lim, &msg, why,
                            sizeof(why));
    if (rc != 0) {
        POS_FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
        return 0;
    }
    POS_FUZZ_CHECK(msg.type == POS_MSG_INVENTORY_UPDATED || msg.type == POS_MSG_LOW_STOCK_ALERT);
    const pos_msg_inventory_t *inv = &msg.u.inventory;
    /* Only the channel's store, named or implied. */
    POS_FUZZ_CHECK(strcmp(inv->store_id, "S-042") == 0 && pos_msg_id_valid(inv->product_id));
    POS_FUZZ_CHECK(inv->low_stock_threshold >= 0 &&
                   (inv->has_threshold || inv->low_stock_threshold == 0));

    pos_cachesvc_t *cs = fuzz_cache();
    pos_cachesvc_inventory(cs, inv, (const char *)data, size);
    int n = snprintf(key, sizeof(key), "inventory:%s:%s", inv->store_id, inv->product_id);
    POS_FUZZ_CHECK(n > 0 && (size_t)n < sizeof(key));
    rc = pos_cache_get(&cs->cache, key, (size_t)n, pos_clock_wall_ms(), value, sizeof(value) - 1,
                       &info);
    /* The value (<= 64 KiB) is well within the cache's limits: it is there. */
    POS_FUZZ_CHECK(rc == 0 && info.meta.value_len < sizeof(value) && !info.meta.stale);
    value[info.meta.value_len] = '\0';
    cJSON *root = cJSON_ParseWithLength(value, info.meta.value_len);
    POS_FUZZ_CHECK(root != NULL && cJSON_IsObject(root));
    POS_FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(root, "type") == NULL);
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(root, "productId");
    POS_FUZZ_CHECK(cJSON_IsString(pid) && strcmp(pid->valuestring, inv->product_id) == 0);
    cJSON_Delete(root);
    pos_cache_delete(&cs->cache, key, (size_t)n); /* keep the store small */
    return 0;
}
