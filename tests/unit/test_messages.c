/* Unit tests for agent/messages: decoding every cloud message, encoding every agent message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/msg/messages.h"

#define MAX_MINOR 10000000 /* 100 000.00 in a two-digit currency */

static const pos_msg_limits_t limits = {65536, MAX_MINOR, NULL, NULL};

static pos_msg_t msg;
static char why[128];

static int dec(pos_msg_channel_t ch, const char *json)
{
    memset(why, 'Z', sizeof(why)); /* so that a missing reason shows */
    return pos_msg_decode(ch, json, strlen(json), &limits, &msg, why, sizeof(why));
}

static int pay(const char *json)
{
    return dec(POS_MSG_CH_PAYMENT, json);
}

/* A payment request with the given amount and currency JSON values. */
static int pay_amount(const char *amount, const char *currency)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-1\",\"amount\":%s,"
             "\"currency\":%s}",
             amount, currency);
    return pay(json);
}

/* ---- PAYMENT_REQUESTED ------------------------------------------------ */

static void test_payment_contract_example(void **state)
{
    (void)state;
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-1001\","
                         "\"amount\":12.34,\"currency\":\"EUR\",\n \"lines\":["
                         "{\"name\":\"Espresso\",\"qty\":2,\"amount\":5.00},"
                         "{\"name\":\"Croissant\",\"qty\":1,\"amount\":2.34}]}"),
                     0);
    assert_int_equal(msg.type, POS_MSG_PAYMENT_REQUESTED);
    assert_string_equal(msg.reject_transaction_id, "");
    assert_string_equal(msg.u.payment.transaction_id, "tx-1001");
    assert_true(msg.u.payment.amount_minor == 1234);
    assert_string_equal(msg.u.payment.amount_text, "12.34");
    assert_string_equal(msg.u.payment.currency.alpha, "EUR");
    assert_int_equal(msg.u.payment.currency.numeric, 978);
    assert_int_equal(msg.u.payment.currency.digits, 2);
    assert_int_equal(msg.u.payment.line_count, 2);
    assert_string_equal(msg.u.payment.lines[0].name, "Espresso");
    assert_int_equal(msg.u.payment.lines[0].qty, 2);
    assert_true(msg.u.payment.lines[0].unit_minor == 500);
    assert_string_equal(msg.u.payment.lines[1].name, "Croissant");
    assert_int_equal(msg.u.payment.lines[1].qty, 1);
    assert_true(msg.u.payment.lines[1].unit_minor == 234);
    assert_false(msg.u.payment.has_ts);
    assert_string_equal(msg.u.payment.sig, "");
}

static void test_payment_amount_forms(void **state)
{
    static const struct {
        const char *amount, *currency;
        int64_t minor;
        const char *text;
    } ok[] = {
        {"12.30", "\"EUR\"", 1230, "12.30"},    {"\"12.30\"", "\"EUR\"", 1230, "12.30"},
        {"12.3", "\"EUR\"", 1230, "12.3"},      {"\"12\"", "\"EUR\"", 1200, "12"},
        {"0.01", "\"USD\"", 1, "0.01"},         {"500", "\"JPY\"", 500, "500"},
        {"\"1.234\"", "\"KWD\"", 1234, "1.234"}, {"100000", "\"EUR\"", MAX_MINOR, "100000"},
        {"0.1", "\"GBP\"", 10, "0.1"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(pay_amount(ok[i].amount, ok[i].currency), 0);
        assert_true(msg.u.payment.amount_minor == ok[i].minor);
        assert_string_equal(msg.u.payment.amount_text, ok[i].text);
    }
}

static void test_payment_bad_amount_keeps_id(void **state)
{
    static const char *const bad[] = {
        "0",        "0.00",      "\"0\"",     "-1",        "-12.34",   "\"-1\"",     "\"abc\"",
        "1e2",      "1E2",       "1.5e1",     "\"1e2\"",   "12.345",   "\"12,00\"",  "\"1,00\"",
        "\" 12\"",  "\"12 \"",   "\"+12\"",   "\"12.3.4\"", "012",     "\"\"",       "true",
        "null",     "{}",        "[12]",      "100000.01", "9223372036854775807",
        "\"9223372036854775807\"", "1.0000000000000000000000000000000001",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pay_amount(bad[i], "\"EUR\""), -EINVAL);
        assert_int_equal(msg.type, POS_MSG_PAYMENT_REQUESTED);
        assert_string_equal(msg.reject_transaction_id, "tx-1");
        assert_non_null(strstr(why, "amount"));
    }
    /* JPY has no minor unit. */
    assert_int_equal(pay_amount("12.5", "\"JPY\""), -EINVAL);
    assert_string_equal(msg.reject_transaction_id, "tx-1");
    /* Missing amount. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-1\","
                         "\"currency\":\"EUR\"}"),
                     -EINVAL);
    assert_string_equal(msg.reject_transaction_id, "tx-1");
    assert_string_equal(why, "PAYMENT_REQUESTED: field amount: missing");
}

static void test_payment_bad_currency(void **state)
{
    static const char *const bad[] = {"\"XXX\"", "\"eur\"", "978", "\"EURO\"", "null", "\"\""};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pay_amount("12.34", bad[i]), -EINVAL);
        assert_string_equal(msg.reject_transaction_id, "tx-1");
        assert_non_null(strstr(why, "currency"));
    }
}

static void test_payment_bad_transaction_id(void **state)
{
    static const char *const bad[] = {
        "\"\"", "\"tx 1\"", "\"tx/1\"", "\"tx\\u00e9\"", "1001", "null", "[\"tx\"]",
        "\"0123456789012345678901234567890123456789012345678901234567890123X\"",
    };
    char json[256];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":%s,\"amount\":1,"
                 "\"currency\":\"EUR\"}",
                 bad[i]);
        assert_int_equal(pay(json), -EINVAL);
        assert_string_equal(msg.reject_transaction_id, ""); /* nobody to answer */
    }
    /* 64 characters of every allowed class are fine. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":"
                         "\"Az09._:-Az09._:-Az09._:-Az09._:-Az09._:-Az09._:-Az09._:-Az09._:-\","
                         "\"amount\":1,\"currency\":\"EUR\"}"),
                     0);
    assert_int_equal(strlen(msg.u.payment.transaction_id), 64);
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"amount\":1,\"currency\":\"EUR\"}"),
                     -EINVAL);
    assert_string_equal(why, "PAYMENT_REQUESTED: field transactionId: missing");
}

/* A request whose "lines" value is the given JSON. */
static int pay_lines(const char *lines)
{
    size_t n = strlen(lines) + 256;
    char *json = malloc(n);
    int rc;
    assert_non_null(json);
    snprintf(json, n,
             "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-1\",\"amount\":\"9.99\","
             "\"currency\":\"EUR\",\"lines\":%s}",
             lines);
    rc = pay(json);
    free(json);
    return rc;
}

static char *many_lines(size_t count)
{
    size_t cap = count * 48 + 8, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[len++] = '[';
    for (size_t i = 0; i < count; i++) {
        len += (size_t)snprintf(s + len, cap - len, "%s{\"name\":\"L%zu\",\"qty\":1,\"amount\":1}",
                                i ? "," : "", i);
    }
    snprintf(s + len, cap - len, "]");
    return s;
}

static void test_payment_lines(void **state)
{
    char *fifty = many_lines(50), *fifty_one = many_lines(51);
    (void)state;

    assert_int_equal(pay_lines("[]"), 0);
    assert_int_equal(msg.u.payment.line_count, 0);
    assert_int_equal(pay_lines(fifty), 0);
    assert_int_equal(msg.u.payment.line_count, 50);
    assert_string_equal(msg.u.payment.lines[49].name, "L49");
    assert_int_equal(pay_lines(fifty_one), -EINVAL);
    assert_string_equal(msg.reject_transaction_id, "tx-1");
    free(fifty);
    free(fifty_one);

    /* Zero-priced lines are allowed (a free refill); 9999 is the largest qty. */
    assert_int_equal(pay_lines("[{\"name\":\"Refill\",\"qty\":9999,\"amount\":0}]"), 0);
    assert_int_equal(msg.u.payment.lines[0].qty, 9999);
    assert_true(msg.u.payment.lines[0].unit_minor == 0);
    assert_int_equal(pay_lines("[{\"name\":\"Tea\",\"qty\":1,\"amount\":\"0.00\"}]"), 0);
    /* 20 two-byte characters are 40 bytes: the limit is in bytes. */
    assert_int_equal(pay_lines("[{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"qty\":1,"
                               "\"amount\":1}]"),
                     0);
    assert_int_equal(strlen(msg.u.payment.lines[0].name), 40);

    static const char *const bad[] = {
        "{}",
        "[1]",
        "[\"Espresso\"]",
        "[{\"qty\":1,\"amount\":1}]",
        "[{\"name\":\"\",\"qty\":1,\"amount\":1}]",
        "[{\"name\":\"x\",\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":1}]",
        "[{\"name\":\"x\",\"qty\":0,\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":10000,\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":-1,\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":2.0,\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":2e0,\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":\"2\",\"amount\":1}]",
        "[{\"name\":\"x\",\"qty\":1,\"amount\":-1}]",
        "[{\"name\":\"x\",\"qty\":1,\"amount\":1.001}]",
        "[{\"name\":\"x\",\"qty\":1,\"amount\":100000.01}]",
        "[{\"name\":\"\\u001b[2J\",\"qty\":1,\"amount\":1}]",
        "[{\"name\":\"a\\nb\",\"qty\":1,\"amount\":1}]",
        "[{\"name\":\"\xc2\x9b\",\"qty\":1,\"amount\":1}]",
        "[{\"name\":\"12345678901234567890123456789012345678901\",\"qty\":1,\"amount\":1}]",
        "[{\"name\":7,\"qty\":1,\"amount\":1}]",
        "null",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pay_lines(bad[i]), -EINVAL);
        assert_string_equal(msg.reject_transaction_id, "tx-1");
    }
}

static void test_payment_ts_sig(void **state)
{
    (void)state;
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"ts\":1764412800000,\"sig\":\"c2lnbmF0dXJl+/=\"}"),
                     0);
    assert_true(msg.u.payment.has_ts);
    assert_true(msg.u.payment.ts_ms == 1764412800000LL);
    assert_string_equal(msg.u.payment.sig, "c2lnbmF0dXJl+/=");

    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"ts\":\"1764412800000\"}"),
                     -EINVAL);
    assert_string_equal(msg.reject_transaction_id, "t");
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"ts\":-1}"),
                     -EINVAL);
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"sig\":\"has space\"}"),
                     -EINVAL);
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"sig\":\"\"}"),
                     -EINVAL);
}

static void test_payment_raw_numbers_survive_noise(void **state)
{
    (void)state;
    /* Numbers before "amount", nested, in strings with escaped quotes, and
     * an exponent elsewhere: the amount's own text must still be found. */
    assert_int_equal(pay("{\"meta\":{\"a\":[1,2.5,{\"b\":-3e4}],\"s\":\"12 \\\"34\\\" 5\\\\\"},"
                         "\"x\":7,\"type\":\"PAYMENT_REQUESTED\",\"n\":[[[[0.5]]]],"
                         "\"transactionId\":\"t\",\"amount\":12.30,\"currency\":\"EUR\","
                         "\"lines\":[{\"w\":1e5,\"name\":\"n\",\"qty\":3,\"amount\":0.5}],"
                         "\"tail\":99}"),
                     0);
    assert_true(msg.u.payment.amount_minor == 1230);
    assert_string_equal(msg.u.payment.amount_text, "12.30");
    assert_int_equal(msg.u.payment.lines[0].qty, 3);
    assert_true(msg.u.payment.lines[0].unit_minor == 50);
    /* Whitespace around tokens, BOM-free, CRLF. */
    assert_int_equal(pay(" \r\n{ \"type\" : \"PAYMENT_REQUESTED\" , \"transactionId\" : \"t\" ,"
                         " \"amount\" :  7.5 , \"currency\" : \"EUR\" } \r\n"),
                     0);
    assert_true(msg.u.payment.amount_minor == 750);
}

/* ---- other payment-channel messages ------------------------------------- */

static void test_cancel_and_reprint(void **state)
{
    (void)state;
    assert_int_equal(pay("{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-1001\"}"), 0);
    assert_int_equal(msg.type, POS_MSG_PAYMENT_CANCELLED);
    assert_string_equal(msg.u.tx.transaction_id, "tx-1001");
    assert_int_equal(pay("{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-1001\"}"), 0);
    assert_int_equal(msg.type, POS_MSG_RECEIPT_REPRINT);
    assert_string_equal(msg.u.tx.transaction_id, "tx-1001");

    assert_int_equal(pay("{\"type\":\"PAYMENT_CANCELLED\"}"), -EINVAL);
    assert_int_equal(msg.type, POS_MSG_PAYMENT_CANCELLED);
    assert_string_equal(msg.reject_transaction_id, "");
    assert_int_equal(pay("{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":5}"), -EINVAL);
    assert_int_equal(pay("{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"a b\"}"), -EINVAL);
}

static void test_display_message(void **state)
{
    (void)state;
    assert_int_equal(pay("{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Welcome\","
                         "\"Next customer please\"]}"),
                     0);
    assert_int_equal(msg.type, POS_MSG_DISPLAY_MESSAGE);
    assert_int_equal(msg.u.display.line_count, 2);
    assert_string_equal(msg.u.display.lines[0], "Welcome");
    assert_string_equal(msg.u.display.lines[1], "Next customer please");
    assert_int_equal(pay("{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Caf\\u00e9\"]}"), 0);
    assert_int_equal(msg.u.display.line_count, 1);
    assert_string_equal(msg.u.display.lines[0], "Caf\xc3\xa9");
    assert_int_equal(pay("{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"\",\"x\"]}"), 0);
    assert_int_equal(pay("{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"12345678901234567890123456789"
                         "012345678901234567890123456789012345678901234567890\"]}"),
                     0);

    static const char *const bad[] = {
        "{\"type\":\"DISPLAY_MESSAGE\"}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[]}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"a\",\"b\",\"c\"]}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":\"Welcome\"}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[1]}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[null]}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"\\u001b[2J\"]}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"a\\u007f\"]}",
        ("{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"1234567890123456789012345678901234567890"
         "12345678901234567890123456789012345678901\"]}"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pay(bad[i]), -EINVAL);
        assert_int_equal(msg.type, POS_MSG_DISPLAY_MESSAGE);
    }
}

/* ---- inventory ------------------------------------------------------------ */

static void test_inventory(void **state)
{
    (void)state;
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-042\","
                         "\"productId\":\"P-7\",\"quantity\":41,\"lowStockThreshold\":5}"),
                     0);
    assert_int_equal(msg.type, POS_MSG_INVENTORY_UPDATED);
    assert_string_equal(msg.u.inventory.store_id, "S-042");
    assert_string_equal(msg.u.inventory.product_id, "P-7");
    assert_true(msg.u.inventory.quantity == 41);
    assert_true(msg.u.inventory.low_stock_threshold == 5);
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"LOW_STOCK_ALERT\",\"storeId\":\"S-042\","
                         "\"productId\":\"P-7\",\"quantity\":3,\"lowStockThreshold\":5}"),
                     0);
    assert_int_equal(msg.type, POS_MSG_LOW_STOCK_ALERT);
    assert_true(msg.u.inventory.quantity == 3);
    /* Oversold stock is negative; zero threshold means "never low". */
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S\",\"productId\":\"P\","
                         "\"quantity\":-2,\"lowStockThreshold\":0}"),
                     0);
    assert_true(msg.u.inventory.quantity == -2);

    static const char *const bad[] = {
        "\"storeId\":\"S\",\"quantity\":1,\"lowStockThreshold\":1",
        "\"storeId\":\"S\",\"productId\":\"P\",\"lowStockThreshold\":1",
        "\"storeId\":\"S\",\"productId\":\"P 7\",\"quantity\":1,\"lowStockThreshold\":1",
        "\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":3.5,\"lowStockThreshold\":1",
        "\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":\"3\",\"lowStockThreshold\":1",
        "\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":1,\"lowStockThreshold\":-1",
        "\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":1e3,\"lowStockThreshold\":1",
        ("\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":99999999999999999,"
         "\"lowStockThreshold\":1"),
        "\"storeId\":7,\"productId\":\"P\",\"quantity\":1,\"lowStockThreshold\":1",
        "\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":1,\"lowStockThreshold\":\"1\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), "{\"type\":\"LOW_STOCK_ALERT\",%s}", bad[i]);
        assert_int_equal(dec(POS_MSG_CH_INVENTORY, json), -EINVAL);
        assert_int_equal(msg.type, POS_MSG_LOW_STOCK_ALERT);
    }
}

/* Issue 13 item 8: a valid update without lowStockThreshold (or storeId)
 * was dropped. Required are productId and quantity; the rest is optional. */
static void test_inventory_required_fields_only(void **state)
{
    static const pos_msg_limits_t scoped = {65536, 1, "S-042", NULL};
    (void)state;
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-042\","
                         "\"productId\":\"P-7\",\"quantity\":41}"),
                     0);
    assert_true(msg.u.inventory.quantity == 41);
    assert_false(msg.u.inventory.has_threshold);
    assert_true(msg.u.inventory.low_stock_threshold == 0);
    /* No storeId: the channel's store is the one meant. */
    const char *bare = "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-7\",\"quantity\":3,"
                       "\"unit\":\"pcs\",\"location\":{\"aisle\":4}}";
    assert_int_equal(pos_msg_decode(POS_MSG_CH_INVENTORY, bare, strlen(bare), &scoped, &msg, why,
                                    sizeof(why)),
                     0);
    assert_string_equal(msg.u.inventory.store_id, "S-042");
    assert_string_equal(msg.u.inventory.product_id, "P-7");
    assert_true(msg.u.inventory.quantity == 3);
    /* Without a scope, nothing to fill in. */
    assert_int_equal(dec(POS_MSG_CH_INVENTORY, bare), 0);
    assert_string_equal(msg.u.inventory.store_id, "");
    /* The threshold, when given, is kept. */
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"LOW_STOCK_ALERT\",\"productId\":\"P-7\",\"quantity\":3,"
                         "\"lowStockThreshold\":5}"),
                     0);
    assert_true(msg.u.inventory.has_threshold);
    assert_true(msg.u.inventory.low_stock_threshold == 5);
}

/* Issue 13 item 2: an INVENTORY_UPDATED on inventory:S-042 whose body
 * said "storeId":"S-999" was cached as inventory:S-999:P-9. */
static void test_scope_other_store_refused(void **state)
{
    static const pos_msg_limits_t inv = {65536, 1, "S-042", NULL};
    static const pos_msg_limits_t pay_scope = {65536, MAX_MINOR, "S-042", "T-0001"};
    static const struct {
        pos_msg_channel_t ch;
        const pos_msg_limits_t *lim;
        const char *json;
        int rc;
    } cases[] = {
        {POS_MSG_CH_INVENTORY, &inv,
         "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-999\",\"productId\":\"P-9\","
         "\"quantity\":0}",
         -EPERM},
        {POS_MSG_CH_INVENTORY, &inv,
         "{\"type\":\"LOW_STOCK_ALERT\",\"storeId\":\"S-0420\",\"productId\":\"P-9\","
         "\"quantity\":0}",
         -EPERM},
        {POS_MSG_CH_INVENTORY, &inv,
         "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-042\",\"productId\":\"P-9\","
         "\"quantity\":0}",
         0},
        /* The payment channel belongs to one terminal of one store. */
        {POS_MSG_CH_PAYMENT, &pay_scope,
         "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
         "\"currency\":\"EUR\",\"terminalId\":\"T-0002\"}",
         -EPERM},
        {POS_MSG_CH_PAYMENT, &pay_scope,
         "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
         "\"currency\":\"EUR\",\"storeId\":\"S-999\"}",
         -EPERM},
        {POS_MSG_CH_PAYMENT, &pay_scope,
         "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-9\",\"terminalId\":\"T-0002\"}",
         -EPERM},
        {POS_MSG_CH_PAYMENT, &pay_scope,
         "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"x\"],\"storeId\":\"S-999\"}", -EPERM},
        {POS_MSG_CH_PAYMENT, &pay_scope,
         "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
         "\"currency\":\"EUR\",\"terminalId\":\"T-0001\",\"storeId\":\"S-042\"}",
         0},
        /* Not an id at all: malformed. */
        {POS_MSG_CH_PAYMENT, &pay_scope,
         "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-9\",\"terminalId\":7}",
         -EINVAL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(why, 'Z', sizeof(why));
        int rc = pos_msg_decode(cases[i].ch, cases[i].json, strlen(cases[i].json), cases[i].lim,
                                &msg, why, sizeof(why));
        if (rc != cases[i].rc) {
            print_error("case %zu: rc %d, want %d (%s)\n", i, rc, cases[i].rc, why);
        }
        assert_int_equal(rc, cases[i].rc);
        if (rc == -EPERM) {
            /* The reason names the field, never the value. */
            assert_null(strstr(why, "S-999"));
            assert_null(strstr(why, "T-0002"));
            assert_non_null(strstr(why, "another"));
        }
    }
    /* A refused request can still be answered. */
    const char *req = cases[3].json;
    assert_int_equal(
        pos_msg_decode(POS_MSG_CH_PAYMENT, req, strlen(req), &pay_scope, &msg, why, sizeof(why)),
        -EPERM);
    assert_int_equal(msg.type, POS_MSG_PAYMENT_REQUESTED);
    assert_string_equal(msg.reject_transaction_id, "tx-9");
    /* So is one whose terminalId or storeId is no id at all: it was left
     * with no answer (the contract: every request gets one). */
    static const char *const bad_scope[] = {
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-8\",\"amount\":1,"
        "\"currency\":\"EUR\",\"terminalId\":\"\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-8\",\"amount\":1,"
        "\"currency\":\"EUR\",\"storeId\":42}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-8\",\"amount\":1,"
        "\"currency\":\"EUR\",\"terminalId\":\"T 1\"}",
    };
    for (size_t i = 0; i < sizeof(bad_scope) / sizeof(bad_scope[0]); i++) {
        memset(&msg, 0, sizeof(msg));
        int rc = pos_msg_decode(POS_MSG_CH_PAYMENT, bad_scope[i], strlen(bad_scope[i]), &pay_scope,
                                &msg, why, sizeof(why));
        assert_true(rc == -EINVAL || rc == -EBADMSG);
        assert_string_equal(msg.reject_transaction_id, "tx-8");
    }
}

/* CONTRACT.md: what a POS application publishes carries "origin":"pos-app";
 * an agent takes inventory updates from other tills' applications and
 * nothing of theirs on the payment or system channels. */
static void test_pos_app_origin(void **state)
{
    static const pos_msg_limits_t inv = {65536, 1, "S-042", NULL};
    const char *update = "{\"type\":\"INVENTORY_UPDATED\",\"origin\":\"pos-app\","
                         "\"terminalId\":\"T-0002\",\"storeId\":\"S-042\",\"productId\":\"P-7\","
                         "\"quantity\":40,\"ts\":1764412800000}";
    (void)state;
    assert_int_equal(pos_msg_decode(POS_MSG_CH_INVENTORY, update, strlen(update), &inv, &msg, why,
                                    sizeof(why)),
                     0);
    assert_int_equal(msg.origin, POS_MSG_FROM_POS_APP);
    assert_string_equal(msg.origin_terminal, "T-0002");
    assert_true(msg.u.inventory.quantity == 40);
    /* The cloud's own messages say nothing of an origin. */
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"INVENTORY_UPDATED\",\"productId\":\"P-7\",\"quantity\":4}"),
                     0);
    assert_int_equal(msg.origin, POS_MSG_FROM_CLOUD);
    /* Stamped by an agent: the till's id is always there. */
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"INVENTORY_UPDATED\",\"origin\":\"pos-app\","
                         "\"productId\":\"P-7\",\"quantity\":4}"),
                     -EINVAL);
    /* Another store's application, on our channel: refused like the cloud's. */
    const char *other = "{\"type\":\"INVENTORY_UPDATED\",\"origin\":\"pos-app\","
                        "\"terminalId\":\"T-0002\",\"storeId\":\"S-999\",\"productId\":\"P-7\","
                        "\"quantity\":40}";
    assert_int_equal(pos_msg_decode(POS_MSG_CH_INVENTORY, other, strlen(other), &inv, &msg, why,
                                    sizeof(why)),
                     -EPERM);
    /* Payment and system channels: never a POS application's. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"origin\":\"pos-app\","
                         "\"terminalId\":\"T-0002\",\"transactionId\":\"tx\",\"amount\":1,"
                         "\"currency\":\"EUR\"}"),
                     -EALREADY);
    assert_int_equal(msg.origin, POS_MSG_FROM_POS_APP);
    assert_string_equal(msg.reject_transaction_id, "");
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"SYSTEM_ALERT\",\"origin\":\"pos-app\","
                                            "\"terminalId\":\"T-0002\",\"severity\":\"info\","
                                            "\"message\":\"Card reader broken - pay cash\"}"),
                     -EALREADY);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"CACHE_INVALIDATE\",\"origin\":"
                                            "\"pos-app\",\"terminalId\":\"T-0002\",\"pattern\":\"*\"}"),
                     -EALREADY);
}

/* ---- system ---------------------------------------------------------------- */

static void test_system_alert(void **state)
{
    (void)state;
    assert_int_equal(dec(POS_MSG_CH_SYSTEM,
                         "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"warning\","
                         "\"message\":\"Store closes in 10 minutes\",\"storeId\":\"S-042\"}"),
                     0);
    assert_int_equal(msg.type, POS_MSG_SYSTEM_ALERT);
    assert_int_equal(msg.u.alert.severity, POS_MSG_SEV_WARNING);
    assert_string_equal(msg.u.alert.message, "Store closes in 10 minutes");
    assert_string_equal(msg.u.alert.store_id, "S-042");
    assert_string_equal(msg.u.alert.terminal_id, "");
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\","
                                            "\"message\":\"hi\"}"),
                     0);
    assert_int_equal(msg.u.alert.severity, POS_MSG_SEV_INFO);
    assert_string_equal(msg.u.alert.store_id, "");
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"critical\","
                                            "\"message\":\"m\",\"terminalId\":\"T-0001\"}"),
                     0);
    assert_int_equal(msg.u.alert.severity, POS_MSG_SEV_CRITICAL);
    assert_string_equal(msg.u.alert.terminal_id, "T-0001");

    char m200[201], json[512];
    memset(m200, 'm', 200);
    m200[200] = '\0';
    snprintf(json, sizeof(json),
             "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"%s\"}", m200);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, json), 0);
    snprintf(json, sizeof(json),
             "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"%sm\"}", m200);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, json), -EINVAL);

    static const char *const bad[] = {
        "{\"type\":\"SYSTEM_ALERT\",\"message\":\"m\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"fatal\",\"message\":\"m\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"INFO\",\"message\":\"m\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":1,\"message\":\"m\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"m\",\"storeId\":42}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"m\",\"storeId\":\"\"}",
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\",\"message\":\"m\",\"terminalId\":null}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dec(POS_MSG_CH_SYSTEM, bad[i]), -EINVAL);
        assert_int_equal(msg.type, POS_MSG_SYSTEM_ALERT);
    }
}

static void test_cache_invalidate(void **state)
{
    char p256[257], json[512];
    (void)state;
    assert_int_equal(dec(POS_MSG_CH_SYSTEM,
                         "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"inventory:S-042:*\"}"),
                     0);
    assert_int_equal(msg.type, POS_MSG_CACHE_INVALIDATE);
    assert_string_equal(msg.u.invalidate.pattern, "inventory:S-042:*");
    assert_int_equal(dec(POS_MSG_CH_SYSTEM,
                         "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"p\\\\[x\\\\]?\"}"),
                     0);
    assert_string_equal(msg.u.invalidate.pattern, "p\\[x\\]?");

    memset(p256, '*', 256);
    p256[256] = '\0';
    snprintf(json, sizeof(json), "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"%s\"}", p256);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, json), 0);
    snprintf(json, sizeof(json), "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"%s?\"}", p256);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, json), -EINVAL);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"\"}"),
                     -EINVAL);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"CACHE_INVALIDATE\"}"), -EINVAL);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":[]}"),
                     -EINVAL);
}

/* ---- generic rules --------------------------------------------------------- */

static void test_echoes(void **state)
{
    (void)state;
    /* The agent's own publication, heard back on payment:{terminalId}. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\","
                         "\"terminalId\":\"T-0001\",\"transactionId\":\"tx\"}"),
                     -EALREADY);
    assert_int_equal(msg.type, POS_MSG_NONE);
    /* Even a valid request type is ignored when it claims a terminal origin. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"origin\":\"terminal\","
                         "\"transactionId\":\"tx\",\"amount\":1,\"currency\":\"EUR\"}"),
                     -EALREADY);
    assert_int_equal(dec(POS_MSG_CH_SYSTEM, "{\"origin\":\"terminal\",\"type\":\"TERMINAL_STATUS\""
                                            ",\"status\":\"busy\"}"),
                     -EALREADY);
    /* Another origin is an ordinary message. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_CANCELLED\",\"origin\":\"cloud\","
                         "\"transactionId\":\"tx\"}"),
                     0);
    assert_int_equal(pay("{\"type\":\"PAYMENT_CANCELLED\",\"origin\":7,\"transactionId\":\"tx\"}"),
                     0);
    /* Two origins: which one is meant? Neither. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_CANCELLED\",\"origin\":\"cloud\","
                         "\"origin\":\"terminal\",\"transactionId\":\"tx\"}"),
                     -EBADMSG);
}

static void test_malformed(void **state)
{
    static const struct {
        const char *json;
        size_t len; /* 0: strlen */
        int rc;
    } cases[] = {
        {"", 0, -EBADMSG},
        {"{", 0, -EBADMSG},
        {"[]", 0, -EBADMSG},
        {"\"PAYMENT_REQUESTED\"", 0, -EBADMSG},
        {"null", 0, -EBADMSG},
        {"42", 0, -EBADMSG},
        {"{} x", 0, -EBADMSG},
        {"{}{}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"t\"", 0, -EBADMSG},
        {"{'type':'PAYMENT_CANCELLED'}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"\xff\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"\xc0\xaf\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"\xed\xa0\x80\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"\xf4\x90\x80\x80\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"\xe2\x82\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"t\\u0000x\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"\\ud800\"}", 0, -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"t\",\"transactionId\":\"u\"}", 0,
         -EBADMSG},
        {"{\"type\":\"PAYMENT_CANCELLED\",\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"t\"}", 0,
         -EBADMSG},
        {"{\"transactionId\":\"t\"}", 0, -ENOMSG},
        {"{\"type\":null,\"transactionId\":\"t\"}", 0, -ENOMSG},
        {"{\"type\":7}", 0, -ENOMSG},
        {"{\"type\":\"PAYMENT_EXPLODED\"}", 0, -ENOMSG},
        {"{\"type\":\"payment_requested\"}", 0, -ENOMSG},
        {"{\"type\":\"TERMINAL_STATUS\"}", 0, -ENOMSG},
        /* Right type, wrong channel: never acted on. */
        {"{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S\",\"productId\":\"P\",\"quantity\":1,"
         "\"lowStockThreshold\":1}",
         0, -ENOMSG},
        {"{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"*\"}", 0, -ENOMSG},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].json);
        memset(why, 'Z', sizeof(why));
        int rc = pos_msg_decode(POS_MSG_CH_PAYMENT, cases[i].json, len, &limits, &msg, why,
                                sizeof(why));
        if (rc != cases[i].rc) {
            print_error("case %zu: rc %d, want %d (%s)\n", i, rc, cases[i].rc, why);
        }
        assert_int_equal(rc, cases[i].rc);
        assert_true(strlen(why) > 0 && strlen(why) < sizeof(why));
        assert_string_equal(msg.reject_transaction_id, "");
    }
    /* A NUL byte after the object, inside len. */
    const char *nul = "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"t\"}\0";
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, nul, strlen(nul) + 1, &limits, &msg, why,
                                    sizeof(why)),
                     -EBADMSG);
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, nul, strlen(nul), &limits, &msg, why,
                                    sizeof(why)),
                     0);
    /* A payment message on the inventory channel. */
    assert_int_equal(dec(POS_MSG_CH_INVENTORY,
                         "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"t\"}"),
                     -ENOMSG);
    /* Arguments. */
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, NULL, 0, &limits, &msg, why, sizeof(why)),
                     -EINVAL);
    assert_int_equal(pos_msg_decode(POS_MSG_CH_COUNT, "{}", 2, &limits, &msg, why, sizeof(why)),
                     -EINVAL);
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, "{}", 2, &limits, NULL, why, sizeof(why)),
                     -EINVAL);
    /* NULL limits mean defaults; a NULL reason buffer is fine. */
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, "{\"type\":\"RECEIPT_REPRINT\","
                                                        "\"transactionId\":\"t\"}",
                                    46, NULL, &msg, NULL, 0),
                     0);
    /* Only "len" bytes are read: what follows is not part of the message. */
    const char *two = "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"t\"}garbage";
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, two, 46, &limits, &msg, why, sizeof(why)),
                     0);
}

static void test_duplicate_field_in_payment_keeps_id(void **state)
{
    (void)state;
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
                         "\"amount\":1000,\"currency\":\"EUR\"}"),
                     -EBADMSG);
    assert_int_equal(msg.type, POS_MSG_PAYMENT_REQUESTED);
    assert_string_equal(msg.reject_transaction_id, "tx-9");
    assert_string_equal(why, "PAYMENT_REQUESTED: field amount: duplicated");
}

/*
 * An escaped NUL cuts a string short in cJSON: never acted on, but a
 * request whose own id is clean is still named for its PAYMENT_REJECTED,
 * and one whose id holds it ("tx-1\u0000x", which cJSON reads "tx-1") is
 * never taken for another id.
 */
static void test_escaped_nul_keeps_clean_id(void **state)
{
    (void)state;
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"lines\":[{\"name\":\"a\\u0000\",\"qty\":1,"
                         "\"amount\":1}]}"),
                     -EBADMSG);
    assert_string_equal(msg.reject_transaction_id, "tx-9");
    assert_string_equal(why, "PAYMENT_REQUESTED: a string holds \\u0000");
    /* In a field nobody reads: still refused, still answered. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"note\":\"\\u0000\"}"),
                     -EBADMSG);
    assert_string_equal(msg.reject_transaction_id, "tx-9");
    /* In the id itself, or in a key: nothing to name. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-1\\u0000x\","
                         "\"amount\":1,\"currency\":\"EUR\"}"),
                     -EBADMSG);
    assert_string_equal(msg.reject_transaction_id, "");
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\\u0000\":\"tx-1\","
                         "\"amount\":1,\"currency\":\"EUR\"}"),
                     -EBADMSG);
    assert_string_equal(msg.reject_transaction_id, "");
    /* An escaped backslash before u0000 is no NUL. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
                         "\"currency\":\"EUR\",\"note\":\"\\\\u0000\"}"),
                     0);
    /* An echo stays an echo; an inventory message is refused all the same. */
    assert_int_equal(pay("{\"type\":\"PAYMENT_CANCELLED\",\"origin\":\"terminal\","
                         "\"transactionId\":\"tx\",\"x\":\"\\u0000\"}"),
                     -EALREADY);
    assert_int_equal(dec(POS_MSG_CH_INVENTORY, "{\"type\":\"INVENTORY_UPDATED\",\"productId\":"
                                               "\"P\",\"quantity\":1,\"x\":\"\\u0000\"}"),
                     -EBADMSG);
}

/* A valid request padded with a filler field to exactly "size" bytes. */
static char *padded_request(size_t size)
{
    const char *head = "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-big\","
                       "\"amount\":1,\"currency\":\"EUR\",\"pad\":\"";
    size_t head_len = strlen(head);
    char *s = malloc(size + 1);
    assert_non_null(s);
    memcpy(s, head, head_len);
    memset(s + head_len, 'x', size - head_len - 2);
    memcpy(s + size - 2, "\"}", 3);
    return s;
}

static void test_oversized(void **state)
{
    const size_t mib = 1024 * 1024;
    char *big = padded_request(mib);
    pos_msg_limits_t roomy = {2 * mib, MAX_MINOR, NULL, NULL};
    pos_msg_limits_t exact = {mib, MAX_MINOR, NULL, NULL};
    (void)state;

    assert_int_equal(strlen(big), mib);
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, big, mib, &limits, &msg, why, sizeof(why)),
                     -EMSGSIZE);
    assert_string_equal(why, "message: too large");
    assert_string_equal(msg.reject_transaction_id, ""); /* never parsed */
    /* The limit is inclusive and is the only thing wrong with it. */
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, big, mib, &exact, &msg, why, sizeof(why)),
                     0);
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, big, mib, &roomy, &msg, why, sizeof(why)),
                     0);
    assert_string_equal(msg.u.payment.transaction_id, "tx-big");
    free(big);
}

static void test_reason_never_carries_values(void **state)
{
    static const char *const pan = "4111111111111111";
    static const char *const bad[] = {
        "{\"type\":\"4111111111111111\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"4111111111111111 \",\"amount\":1,"
        "\"currency\":\"EUR\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":\"4111111111111111\","
        "\"currency\":\"EUR\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":4111111111111111,"
        "\"currency\":\"EUR\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"t\",\"amount\":1,"
        "\"currency\":\"4111111111111111\"}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"4111111111111111\\u0007\"]}",
        "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"4111111111111111\xff\"}",
        "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"4111111111111111\"",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_true(pay(bad[i]) < 0);
        assert_true(strlen(why) > 0);
        assert_null(strstr(why, "4111"));
        assert_null(strstr(why, pan));
    }
}

/* ---- encoders --------------------------------------------------------------- */

static char out[1024];

static pos_msg_out_t out_msg(pos_msg_out_type_t type)
{
    pos_msg_out_t m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    strcpy(m.transaction_id, "tx-1001");
    m.amount_minor = 1234;
    assert_int_equal(pos_amount_currency("EUR", &m.currency), 0);
    strcpy(m.auth_code, "A1B2C3");
    strcpy(m.masked_pan, "411111******1111");
    strcpy(m.card_brand, "VISA");
    return m;
}

static int enc(const pos_msg_out_t *m)
{
    return pos_msg_encode(m, "T-0001", "S-042", 1764412800000ULL, out, sizeof(out));
}

#define HEAD "\"origin\":\"terminal\",\"terminalId\":\"T-0001\",\"storeId\":\"S-042\","
#define TS   ",\"ts\":1764412800000}"

static void expect(const pos_msg_out_t *m, const char *want)
{
    int n = enc(m);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
}

static void test_encode_each_type(void **state)
{
    pos_msg_out_t m;
    (void)state;

    m = out_msg(POS_MSG_OUT_PAYMENT_PROCESSING);
    expect(&m, "{\"type\":\"PAYMENT_PROCESSING\"," HEAD "\"transactionId\":\"tx-1001\"" TS);

    m = out_msg(POS_MSG_OUT_PAYMENT_APPROVED);
    m.amount_minor = 1230;
    expect(&m, "{\"type\":\"PAYMENT_APPROVED\"," HEAD
               "\"transactionId\":\"tx-1001\",\"amount\":12.30,\"currency\":\"EUR\","
               "\"authCode\":\"A1B2C3\",\"maskedPan\":\"411111******1111\","
               "\"cardBrand\":\"VISA\"" TS);

    m = out_msg(POS_MSG_OUT_PAYMENT_DECLINED);
    strcpy(m.reason, "timeout");
    expect(&m, "{\"type\":\"PAYMENT_DECLINED\"," HEAD
               "\"transactionId\":\"tx-1001\",\"reason\":\"timeout\"" TS);

    m = out_msg(POS_MSG_OUT_PAYMENT_CANCELLED);
    expect(&m, "{\"type\":\"PAYMENT_CANCELLED\"," HEAD "\"transactionId\":\"tx-1001\"" TS);

    m = out_msg(POS_MSG_OUT_PAYMENT_REJECTED);
    strcpy(m.reason, "busy");
    expect(&m, "{\"type\":\"PAYMENT_REJECTED\"," HEAD
               "\"transactionId\":\"tx-1001\",\"reason\":\"busy\"" TS);

    m = out_msg(POS_MSG_OUT_RECEIPT_PRINTED);
    expect(&m, "{\"type\":\"RECEIPT_PRINTED\"," HEAD "\"transactionId\":\"tx-1001\"" TS);

    m = out_msg(POS_MSG_OUT_RECEIPT_FAILED);
    strcpy(m.reason, "paper_out");
    expect(&m, "{\"type\":\"RECEIPT_FAILED\"," HEAD
               "\"transactionId\":\"tx-1001\",\"reason\":\"paper_out\"" TS);

    /* Byte for byte the contract's example, whitespace removed. */
    m = out_msg(POS_MSG_OUT_TRANSACTION_COMPLETED);
    m.receipt_printed = true;
    expect(&m, "{\"type\":\"TRANSACTION_COMPLETED\",\"origin\":\"terminal\",\"terminalId\":"
               "\"T-0001\",\"storeId\":\"S-042\",\"transactionId\":\"tx-1001\",\"amount\":12.34,"
               "\"currency\":\"EUR\",\"authCode\":\"A1B2C3\",\"receipt\":\"printed\","
               "\"ts\":1764412800000}");
    m.receipt_printed = false;
    expect(&m, "{\"type\":\"TRANSACTION_COMPLETED\"," HEAD
               "\"transactionId\":\"tx-1001\",\"amount\":12.34,\"currency\":\"EUR\","
               "\"authCode\":\"A1B2C3\",\"receipt\":\"failed\"" TS);
}

static void test_encode_amount_digits(void **state)
{
    pos_msg_out_t m = out_msg(POS_MSG_OUT_TRANSACTION_COMPLETED);
    (void)state;
    assert_int_equal(pos_amount_currency("JPY", &m.currency), 0);
    m.amount_minor = 500;
    assert_true(enc(&m) > 0);
    assert_non_null(strstr(out, "\"amount\":500,\"currency\":\"JPY\""));
    assert_int_equal(pos_amount_currency("KWD", &m.currency), 0);
    m.amount_minor = 1230;
    assert_true(enc(&m) > 0);
    assert_non_null(strstr(out, "\"amount\":1.230,\"currency\":\"KWD\""));
    assert_int_equal(pos_amount_currency("EUR", &m.currency), 0);
    m.amount_minor = 1;
    assert_true(enc(&m) > 0);
    assert_non_null(strstr(out, "\"amount\":0.01,"));
    /* Large amounts stay exact where a %g double would not. */
    m.amount_minor = 900719925474099123LL;
    assert_true(enc(&m) > 0);
    assert_non_null(strstr(out, "\"amount\":9007199254740991.23,"));
}

static void test_encode_escapes_strings(void **state)
{
    pos_msg_out_t m = out_msg(POS_MSG_OUT_PAYMENT_APPROVED);
    (void)state;
    strcpy(m.card_brand, "Carte \"B\"");
    assert_true(enc(&m) > 0);
    assert_non_null(strstr(out, "\"cardBrand\":\"Carte \\\"B\\\"\""));
}

static void test_encode_rejects(void **state)
{
    static const char *const unmasked[] = {
        "4111111111111111", "4111111*****1111", "411111******11111", "411111***1111",
        "411111******1111 ", "4111-11**-****-1111", "", "41111X1111111111",
    };
    pos_msg_out_t m;
    (void)state;

    for (size_t i = 0; i < sizeof(unmasked) / sizeof(unmasked[0]); i++) {
        m = out_msg(POS_MSG_OUT_PAYMENT_APPROVED);
        strcpy(m.masked_pan, unmasked[i]);
        strcpy(out, "untouched");
        assert_int_equal(enc(&m), -EINVAL);
        assert_null(strstr(out, "4111")); /* a rejected PAN is never written */
    }
    m = out_msg(POS_MSG_OUT_PAYMENT_APPROVED);
    m.amount_minor = 0;
    assert_int_equal(enc(&m), -EINVAL);
    m = out_msg(POS_MSG_OUT_TRANSACTION_COMPLETED);
    m.amount_minor = -5;
    assert_int_equal(enc(&m), -EINVAL);
    m = out_msg(POS_MSG_OUT_TRANSACTION_COMPLETED);
    m.currency.digits = 3; /* EUR has two */
    assert_int_equal(enc(&m), -EINVAL);
    m = out_msg(POS_MSG_OUT_PAYMENT_APPROVED);
    strcpy(m.auth_code, "A1 B2");
    assert_int_equal(enc(&m), -EINVAL);

    static const char *const reasons[] = {"", "Busy", "paper out", "x\"y", "a-b"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        m = out_msg(POS_MSG_OUT_PAYMENT_REJECTED);
        strcpy(m.reason, reasons[i]);
        assert_int_equal(enc(&m), -EINVAL);
    }
    m = out_msg(POS_MSG_OUT_PAYMENT_PROCESSING);
    strcpy(m.transaction_id, "tx 1");
    assert_int_equal(enc(&m), -EINVAL);
    m = out_msg(POS_MSG_OUT_PAYMENT_PROCESSING);
    m.type = POS_MSG_OUT_COUNT;
    assert_int_equal(enc(&m), -EINVAL);
    m = out_msg(POS_MSG_OUT_PAYMENT_PROCESSING);
    assert_int_equal(pos_msg_encode(&m, "T 1", "S-042", 1, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_msg_encode(&m, "T-1", NULL, 1, out, sizeof(out)), -EINVAL);
    /* Unterminated field arrays are refused, not over-read. */
    m = out_msg(POS_MSG_OUT_PAYMENT_PROCESSING);
    memset(m.transaction_id, 'a', sizeof(m.transaction_id));
    assert_int_equal(enc(&m), -EINVAL);
}

static void test_encode_buffer_size(void **state)
{
    pos_msg_out_t m = out_msg(POS_MSG_OUT_PAYMENT_PROCESSING);
    char small[200];
    int n;
    (void)state;
    n = enc(&m);
    assert_true(n > 0);
    /* cJSON wants a few bytes of slack; far too small must fail cleanly. */
    assert_int_equal(pos_msg_encode(&m, "T-0001", "S-042", 1764412800000ULL, small, 40),
                     -ENOSPC);
    assert_string_equal(small, "");
    assert_int_equal(pos_msg_encode(&m, "T-0001", "S-042", 1764412800000ULL, small, 0), -ENOSPC);
    assert_int_equal(pos_msg_encode(&m, "T-0001", "S-042", 1764412800000ULL, small,
                                    (size_t)n + 8),
                     n);
}

static void test_pan_masking_rule(void **state)
{
    static const char *const ok[] = {
        "411111******1111", "************1111", "******", "4111******", "******1111",
        "411111XXXXXX1111", "411111*********1111",
    };
    static const char *const bad[] = {
        "4111111111111111", "4111111******1111", "411111******11111", "411111*****1111",
        "41111*1*****1111", "411111 ****** 1111", "411111-******-1111", "", "*****",
        "411111**********1111", /* 20 bytes */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(pos_msg_pan_is_masked(ok[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(pos_msg_pan_is_masked(bad[i]));
    }
    assert_false(pos_msg_pan_is_masked(NULL));
}

static void test_encoded_is_an_echo(void **state)
{
    pos_msg_out_t m = out_msg(POS_MSG_OUT_PAYMENT_APPROVED);
    int n;
    (void)state;
    n = enc(&m);
    assert_true(n > 0);
    assert_int_equal(pos_msg_decode(POS_MSG_CH_PAYMENT, out, (size_t)n, &limits, &msg, why,
                                    sizeof(why)),
                     -EALREADY);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(pos_msg_type_name(POS_MSG_PAYMENT_REQUESTED), "PAYMENT_REQUESTED");
    assert_string_equal(pos_msg_type_name(POS_MSG_CACHE_INVALIDATE), "CACHE_INVALIDATE");
    assert_string_equal(pos_msg_type_name(POS_MSG_NONE), "");
    assert_string_equal(pos_msg_out_type_name(POS_MSG_OUT_TRANSACTION_COMPLETED),
                        "TRANSACTION_COMPLETED");
    assert_string_equal(pos_msg_out_type_name(POS_MSG_OUT_COUNT), "");
    assert_true(pos_msg_id_valid("tx-1001"));
    assert_false(pos_msg_id_valid(""));
    assert_false(pos_msg_id_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payment_contract_example),
        cmocka_unit_test(test_payment_amount_forms),
        cmocka_unit_test(test_payment_bad_amount_keeps_id),
        cmocka_unit_test(test_payment_bad_currency),
        cmocka_unit_test(test_payment_bad_transaction_id),
        cmocka_unit_test(test_payment_lines),
        cmocka_unit_test(test_payment_ts_sig),
        cmocka_unit_test(test_payment_raw_numbers_survive_noise),
        cmocka_unit_test(test_cancel_and_reprint),
        cmocka_unit_test(test_display_message),
        cmocka_unit_test(test_inventory),
        cmocka_unit_test(test_inventory_required_fields_only),
        cmocka_unit_test(test_scope_other_store_refused),
        cmocka_unit_test(test_pos_app_origin),
        cmocka_unit_test(test_system_alert),
        cmocka_unit_test(test_cache_invalidate),
        cmocka_unit_test(test_echoes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_duplicate_field_in_payment_keeps_id),
        cmocka_unit_test(test_escaped_nul_keeps_clean_id),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_reason_never_carries_values),
        cmocka_unit_test(test_encode_each_type),
        cmocka_unit_test(test_encode_amount_digits),
        cmocka_unit_test(test_encode_escapes_strings),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_encode_buffer_size),
        cmocka_unit_test(test_pan_masking_rule),
        cmocka_unit_test(test_encoded_is_an_echo),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
