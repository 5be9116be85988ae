/*
 * The trust boundaries of what the agent hears (issue 13), each tested as
 * the attack it stops: a message naming another store or terminal than
 * its channel's, a POS application's message where none publishes, and
 * the inventory messages the contract allows (required fields only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

static void start(pos_fix_t *f)
{
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    pos_fix_wait_log(f, "hal: pinpad: ready", 1, 5000);
    const char *channels[] = {"payment:" TID, "transaction:" SID, NULL};
    assert_int_equal(pos_test_sub_open_many(&f->sub, &f->redis, channels), 0);
}

/* PUBLISH on the fixture's Redis; the agent is the only subscriber there. */
static void publish(pos_fix_t *f, const char *channel, const char *json)
{
    assert_true(pos_test_int(&f->redis, "PUBLISH %s %s", channel, json) >= 1);
}


/*
 * Issue 13 item 2: an INVENTORY_UPDATED on inventory:S-042 whose body said
 * "storeId":"S-999" was cached as inventory:S-999:P-9. Now it is refused
 * and counted; a payment message naming another terminal too.
 */
static void test_other_store_refused(void **state)
{
    pos_fix_t *f = *state;
    start(f);

    publish(f, "inventory:" SID,
            "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-999\",\"productId\":\"P-9\","
            "\"quantity\":0,\"lowStockThreshold\":5}");
    pos_fix_wait_log(f, "field storeId: names another than the channel's, refused", 1, 5000);
    /* Neither the other store's key nor ours holds it (Redis has neither). */
    assert_null(pos_fix_local_get(f, "inventory:S-999:P-9"));
    assert_null(pos_fix_local_get(f, "inventory:" SID ":P-9"));

    /* A request on our channel that says it is for another till: answered
     * (every request is), never charged. */
    publish(f, "payment:" TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-other\",\"amount\":1.00,"
            "\"currency\":\"EUR\",\"terminalId\":\"T-0002\"}");
    cJSON *j = pos_test_sub_expect(&f->sub, "PAYMENT_REJECTED", "tx-other", 5000, NULL);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "reason")->valuestring, "invalid");
    cJSON_Delete(j);
    publish(f, "payment:" TID,
            "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"OTHER STORE\"],\"storeId\":\"S-999\"}");
    pos_fix_wait_log(f, "DISPLAY_MESSAGE: field storeId: names another", 1, 5000);
    char *screen = pos_fix_sim_text(f, "display.txt");
    assert_null(strstr(screen, "OTHER STORE"));
    free(screen);

    assert_int_equal(pos_fix_info(f, "security", "refused_other_scope"), 3);
    /* Run with allow_unsigned (the harness's): the status value says so. */
    char *st = pos_test_get(&f->redis, POS_FIX_STATUS_KEY);
    assert_non_null(st);
    assert_non_null(strstr(st, "\"signed\":false"));
    free(st);
    assert_int_equal(pos_fix_charges(f), 0);

    /* Our own store's update, named or implied, still applies. */
    publish(f, "inventory:" SID,
            "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID "\",\"productId\":\"P-9\","
            "\"quantity\":7}");
    pos_fix_wait_log(f, "inventory:" SID ": INVENTORY_UPDATED", 1, 5000);
    char *v = pos_fix_local_get(f, "inventory:" SID ":P-9");
    assert_non_null(v);
    assert_non_null(strstr(v, "\"quantity\":7"));
    free(v);
}

/*
 * Issue 13 item 8: a valid update without lowStockThreshold was dropped
 * ("field lowStockThreshold: missing"). Required are productId and
 * quantity; what else the cloud sends is kept in the cached value.
 */
static void test_inventory_required_fields(void **state)
{
    pos_fix_t *f = *state;
    start(f);

    publish(f, "inventory:" SID,
            "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-7\",\"quantity\":41}");
    pos_fix_wait_log(f, "inventory:" SID ": INVENTORY_UPDATED", 1, 5000);
    char *v = pos_fix_local_get(f, "inventory:" SID ":P-7");
    assert_non_null(v);
    cJSON *j = cJSON_Parse(v);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "quantity")->valueint, 41);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "type"));
    cJSON_Delete(j);
    free(v);

    publish(f, "inventory:" SID,
            "{\"type\":\"LOW_STOCK_ALERT\",\"storeId\":\"" SID "\",\"productId\":\"P-7\","
            "\"quantity\":3,\"lowStockThreshold\":5,\"reorderQty\":24}");
    pos_fix_wait_log(f, "inventory:" SID ": LOW_STOCK_ALERT", 1, 5000);
    v = pos_fix_local_get(f, "inventory:" SID ":P-7");
    assert_non_null(v);
    assert_non_null(strstr(v, "\"quantity\":3"));
    assert_non_null(strstr(v, "\"lowStockThreshold\":5"));
    assert_non_null(strstr(v, "\"reorderQty\":24"));
    free(v);
    /* Without a quantity it is not an update. */
    publish(f, "inventory:" SID, "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-7\"}");
    pos_fix_wait_log(f, "field quantity: missing, dropped", 1, 5000);
}

/*
 * CONTRACT.md "Messages from the POS application": another till's
 * application updating the store's inventory is applied like the cloud's;
 * a message claiming to come from a POS application on the payment or
 * system channels (where none publishes) never drives the till.
 */
static void test_pos_app_messages_of_other_tills(void **state)
{
    pos_fix_t *f = *state;
    start(f);

    publish(f, "inventory:" SID,
            "{\"type\":\"INVENTORY_UPDATED\",\"origin\":\"pos-app\",\"terminalId\":\"T-0002\","
            "\"storeId\":\"" SID "\",\"productId\":\"P-5\",\"quantity\":12,\"ts\":1764412800000}");
    pos_fix_wait_log(f, "INVENTORY_UPDATED from the POS application of T-0002", 1, 5000);
    char *v = pos_fix_local_get(f, "inventory:" SID ":P-5");
    assert_non_null(v);
    assert_non_null(strstr(v, "\"quantity\":12"));
    free(v);

    publish(f, "system:alerts",
            "{\"type\":\"SYSTEM_ALERT\",\"origin\":\"pos-app\",\"terminalId\":\"T-0002\","
            "\"severity\":\"critical\",\"message\":\"Card reader broken - pay cash\"}");
    publish(f, "system:alerts",
            "{\"type\":\"CACHE_INVALIDATE\",\"origin\":\"pos-app\",\"terminalId\":\"T-0002\","
            "\"pattern\":\"*\"}");
    publish(f, "payment:" TID,
            "{\"type\":\"PAYMENT_REQUESTED\",\"origin\":\"pos-app\",\"terminalId\":\"T-0002\","
            "\"transactionId\":\"tx-app\",\"amount\":1.00,\"currency\":\"EUR\"}");
    /* A marker after them: when it is handled, so were they. */
    publish(f, "payment:" TID, "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"marker\"]}");
    pos_fix_wait_log(f, "payment:" TID ": DISPLAY_MESSAGE", 1, 5000);
    assert_int_equal(pos_fix_info(f, "security", "pos_app_ignored"), 3);
    assert_int_equal(pos_fix_info(f, "security", "pos_app_applied"), 1);
    char *screen = pos_fix_sim_text(f, "display.txt");
    assert_null(strstr(screen, "Card reader"));
    free(screen);
    /* Not invalidated, not charged, not answered. */
    v = pos_fix_local_get(f, "inventory:" SID ":P-5");
    assert_non_null(v);
    free(v);
    assert_int_equal(pos_fix_charges(f), 0);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "PAYMENT_REJECTED tx-app"), 0);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "PAYMENT_PROCESSING tx-app"), 0);
}

/*
 * __redis__:invalidate is an ordinary channel: anyone who may publish
 * there (each till's own ACL user may: docs/acl.md) reaches every till of
 * the fleet at once. Redis's own invalidations carry an array of keys, or
 * a nil for a flush; a PUBLISH carries a string. The agent took any
 * payload that was not an array for a flush and marked its whole cache
 * stale, so one PUBLISH sent every till back to Redis for every key.
 */
static void test_forged_tracking_flush(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_redis_set(f, "product:F-1", "v1");
    start(f);
    pos_fix_wait_log(f, "server-assisted invalidation on", 1, 10000);
    char *v = pos_fix_local_get(f, "product:F-1");
    assert_string_equal(v, "v1");
    free(v);
    long long gets = pos_fix_redis_gets(f);

    publish(f, "__redis__:invalidate", "x");
    publish(f, "__redis__:invalidate", "product:F-1");
    /* A marker on the same subscriber connection: handled after them. */
    publish(f, "payment:" TID, "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"marker\"]}");
    pos_fix_wait_log(f, "payment:" TID ": DISPLAY_MESSAGE", 1, 5000);

    assert_int_equal(pos_test_agent_log_count(&f->agent, "Redis flushed"), 0);
    v = pos_fix_local_get(f, "product:F-1");
    assert_string_equal(v, "v1");
    free(v);
    assert_int_equal(pos_fix_redis_gets(f), gets); /* still served from the till's copy */

    /* Redis's own invalidation still works: a write marks the key stale. */
    pos_fix_redis_set(f, "product:F-1", "v2");
    v = pos_fix_local_get_until(f, "product:F-1", "v2", 3000);
    assert_string_equal(v, "v2");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_other_store_refused),
        POS_FIX_TEST(test_inventory_required_fields),
        POS_FIX_TEST(test_pos_app_messages_of_other_tills),
        POS_FIX_TEST(test_forged_tracking_flush),
    };
    return cmocka_run_group_tests_name("trust", tests, NULL, NULL);
}
