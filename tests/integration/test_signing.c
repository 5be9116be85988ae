/*
 * Signed payment messages end to end (docs/signing.md): with [payment]
 * hmac_key_file set, a plain Redis client playing the cloud signs its
 * messages (HMAC-SHA256 computed here with mbedTLS over a canonical form
 * written by hand), and checks that unsigned, tampered and stale ones are
 * refused without touching the card, that the second key of a rotation is
 * accepted, and that what the agent publishes carries a signature that
 * verifies.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/fs.h"
#include "tests/support/sign.h"

#define TID POS_FIX_TID
#define SID POS_FIX_SID

/* 32-byte keys as in the key file (hex) and as bytes. */
#define KEY1_HEX                                                                                   \
    "4b31"                                                                                         \
    "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
#define KEY2_HEX                                                                                   \
    "4b32"                                                                                         \
    "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbe"

typedef pos_fix_signed_t fixture_t;

/* A PAYMENT_REQUESTED in canonical form already (keys sorted, no spaces,
 * the amount a string), so the signed bytes are the text itself. */
static void request(char *out, size_t len, const char *tx, const char *amount, uint64_t ts)
{
    snprintf(out, len,
             "{\"amount\":\"%s\",\"currency\":\"EUR\",\"transactionId\":\"%s\",\"ts\":%llu,"
             "\"type\":\"PAYMENT_REQUESTED\"}",
             amount, tx, (unsigned long long)ts);
}

static int child_cmp(const void *x, const void *y)
{
    return strcmp((*(cJSON *const *)x)->string, (*(cJSON *const *)y)->string);
}

/*
 * The canonical form of an agent message, done independently of the
 * agent's code: cJSON's unformatted output with the members sorted. That
 * is RFC 8785's for what the agent sends (ASCII keys and strings without
 * escapes, integers and short decimals).
 */
static void sort_members(cJSON *v)
{
    for (cJSON *c = v->child; c != NULL; c = c->next) {
        sort_members(c);
    }
    if (!cJSON_IsObject(v)) {
        return;
    }
    cJSON *items[64];
    size_t n = 0;
    while (v->child != NULL && n < 64) {
        items[n++] = cJSON_DetachItemViaPointer(v, v->child);
    }
    qsort(items, n, sizeof(items[0]), child_cmp);
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToObject(v, items[i]->string, items[i]);
    }
}

static char *canonical(cJSON *obj)
{
    sort_members(obj);
    return cJSON_PrintUnformatted(obj);
}

/* True when the agent's message text carries a "sig" that verifies under key. */
static bool verifies(const char *text, const char *key_hex)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    cJSON *sig = cJSON_DetachItemFromObjectCaseSensitive(j, "sig");
    if (!cJSON_IsString(sig)) {
        cJSON_Delete(sig);
        cJSON_Delete(j);
        return false;
    }
    char *c = canonical(j);
    char hex[65];
    pos_test_hmac_hex(key_hex, c, hex);
    bool ok = strcmp(hex, sig->valuestring) == 0;
    free(c);
    cJSON_Delete(sig);
    cJSON_Delete(j);
    return ok;
}

/* The agent with the key file "keys"; the simulated customer takes
 * pinpad_ms at the pinpad. */
static void start_delay(fixture_t *f, const char *keys, unsigned pinpad_ms)
{
    pos_fix_t *fx = &f->fx;
    pos_fix_signed_key(f, keys, 0600);
    pos_ini_set(&fx->ini, "hal", "sim_pinpad_delay_ms", "%u", pinpad_ms);
    pos_ini_set(&fx->ini, "payment", "hmac_key_file", "%s", f->key);
    pos_ini_set(&fx->ini, "payment", "signature_window_s", "30");
    pos_fix_agent_start(fx, NULL);
    assert_true(pos_test_agent_wait_log(&fx->agent, "link: online", 1, 10000));
    assert_true(pos_test_agent_wait_log(&fx->agent, "hal: pinpad: ready", 1, 5000));
    const char *channels[] = {"payment:" TID, "transaction:" SID, "system:terminals", NULL};
    assert_int_equal(pos_test_sub_open_many(&fx->sub, &fx->redis, channels), 0);
}

static void start(fixture_t *f, const char *keys)
{
    start_delay(f, keys, 200);
}

static int setup(void **state)
{
    /* Neither key ever reaches the log. */
    static const char *const secrets[] = {KEY1_HEX, KEY2_HEX, NULL};
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || pos_fix_signed_start(f, "sign", secrets) != 0) {
        free(f);
        return -1;
    }
    f->fx.stop_signal = SIGTERM; /* a clean stop */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int rc = pos_fix_signed_stop(f);
    free(f);
    return rc;
}

static void publish(fixture_t *f, const char *json)
{
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH payment:" TID " %s", json), 2);
}

/* A PAYMENT_REQUESTED for tx (amount EUR, timestamp ts) signed with
 * key_hex, published; its text stays in msg (to be sent again). */
static void publish_signed(fixture_t *f, char *msg, size_t len, const char *tx, const char *amount,
                           uint64_t ts, const char *key_hex)
{
    request(msg, len, tx, amount, ts);
    pos_test_sign(msg, len, key_hex);
    publish(f, msg);
}

/* The next agent message of "type" for tx; its text in *text (malloc'd). */
static cJSON *expect_msg(fixture_t *f, const char *type, const char *tx, int timeout_ms,
                         char **text)
{
    cJSON *j = pos_test_sub_expect(&f->fx.sub, type, tx, timeout_ms, text);
    if (j == NULL) {
        fail_msg("no %s for %s within %d ms", type, tx ? tx : "(any)", timeout_ms);
    }
    return j;
}

static unsigned charges(fixture_t *f)
{
    return pos_fix_charges(&f->fx);
}

/* The next answer for tx must be PAYMENT_REJECTED with "reason", signed. */
static void expect_rejected(fixture_t *f, const char *tx, const char *reason)
{
    char *text = NULL;
    cJSON *j = expect_msg(f, "PAYMENT_REJECTED", tx, 5000, &text);
    cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reason");
    assert_true(cJSON_IsString(r));
    assert_string_equal(r->valuestring, reason);
    assert_true(verifies(text, KEY1_HEX));
    free(text);
    cJSON_Delete(j);
}

static void test_signed_payment_approved(void **state)
{
    fixture_t *f = *state;
    char msg[512], *text = NULL;
    start(f, KEY1_HEX "\n");

    publish_signed(f, msg, sizeof(msg), "tx-s1", "12.34", pos_test_wall_ms(), KEY1_HEX);
    cJSON *j = expect_msg(f, "PAYMENT_PROCESSING", "tx-s1", 5000, &text);
    assert_true(verifies(text, KEY1_HEX));
    assert_false(verifies(text, KEY2_HEX));
    free(text);
    cJSON_Delete(j);
    j = expect_msg(f, "PAYMENT_APPROVED", "tx-s1", 10000, &text);
    assert_true(verifies(text, KEY1_HEX));
    /* The outbox id the agent stamps is covered too. */
    assert_non_null(strstr(text, "\"outboxId\":"));
    /* Changing any byte of what was signed breaks it. */
    char *amt = strstr(text, "12.34");
    assert_non_null(amt);
    amt[0] = '9';
    assert_false(verifies(text, KEY1_HEX));
    free(text);
    cJSON_Delete(j);
    j = expect_msg(f, "TRANSACTION_COMPLETED", "tx-s1", 10000, &text);
    assert_true(verifies(text, KEY1_HEX));
    free(text);
    cJSON_Delete(j);
    assert_int_equal(charges(f), 1);

    /* TERMINAL_STATUS and the status key are signed too. */
    j = expect_msg(f, "TERMINAL_STATUS", NULL, 5000, &text);
    assert_true(verifies(text, KEY1_HEX));
    free(text);
    cJSON_Delete(j);
    char *st = pos_test_get(&f->fx.redis, "terminal:" TID ":status");
    assert_non_null(st);
    assert_true(verifies(st, KEY1_HEX));
    free(st);

    /* A signed replay inside the window is a duplicate: no second charge. */
    publish(f, msg);
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-s1", 5000, NULL));
    pos_test_sleep_ms(400);
    assert_int_equal(charges(f), 1);
}

static void test_refused_without_charge(void **state)
{
    fixture_t *f = *state;
    char msg[512];
    start(f, KEY1_HEX "\n");
    unsigned before = charges(f);

    /* No signature at all (the contract's own example). */
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-u1\",\"amount\":12.34,"
               "\"currency\":\"EUR\"}");
    expect_rejected(f, "tx-u1", "unsigned");

    /* Signed, then the amount changed on the way. */
    request(msg, sizeof(msg), "tx-b1", "12.34", pos_test_wall_ms());
    pos_test_sign(msg, sizeof(msg), KEY1_HEX);
    char *amt = strstr(msg, "12.34");
    amt[0] = '9';
    publish(f, msg);
    expect_rejected(f, "tx-b1", "bad_signature");

    /* Signed with a key the agent does not have. */
    publish_signed(f, msg, sizeof(msg), "tx-b2", "1.00", pos_test_wall_ms(), KEY2_HEX);
    expect_rejected(f, "tx-b2", "bad_signature");

    /* A garbage signature. */
    request(msg, sizeof(msg), "tx-b3", "1.00", pos_test_wall_ms());
    snprintf(msg + strlen(msg) - 1, 64, ",\"sig\":\"00ff\"}");
    publish(f, msg);
    expect_rejected(f, "tx-b3", "bad_signature");

    /* Good signatures, but too old or too far ahead (window 30 s); the
     * refusal says where the till's clock stands against Redis's. */
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "clock: offset", 1, 5000));
    publish_signed(f, msg, sizeof(msg), "tx-o1", "1.00", pos_test_wall_ms() - 120000, KEY1_HEX);
    expect_rejected(f, "tx-o1", "stale");
    assert_true(pos_test_agent_wait_log(
        &f->fx.agent, "PAYMENT_REQUESTED stale, refused (this till's clock: ", 1, 5000));
    publish_signed(f, msg, sizeof(msg), "tx-o2", "1.00", pos_test_wall_ms() + 120000, KEY1_HEX);
    expect_rejected(f, "tx-o2", "stale");

    /* A signed request without ts cannot be placed in time: stale. */
    snprintf(msg, sizeof(msg),
             "{\"amount\":\"1.00\",\"currency\":\"EUR\",\"transactionId\":\"tx-o3\","
             "\"type\":\"PAYMENT_REQUESTED\"}");
    pos_test_sign(msg, sizeof(msg), KEY1_HEX);
    publish(f, msg);
    expect_rejected(f, "tx-o3", "stale");

    /* Unsigned cancel and reprint are refused the same way. */
    publish(f, "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-u2\"}");
    expect_rejected(f, "tx-u2", "unsigned");
    publish(f, "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-u3\"}");
    expect_rejected(f, "tx-u3", "unsigned");

    /* An unsigned DISPLAY_MESSAGE names no transaction: logged, dropped,
     * not shown. */
    publish(f, "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"FORGED\",\"x\"]}");
    assert_true(
        pos_test_agent_wait_log(&f->fx.agent, "DISPLAY_MESSAGE unsigned, refused", 1, 5000));
    char path[400];
    snprintf(path, sizeof(path), "%s/sim/display.txt", f->fx.agent.dir);
    FILE *fp = fopen(path, "r");
    if (fp != NULL) {
        char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        buf[n] = '\0';
        fclose(fp);
        assert_null(strstr(buf, "FORGED"));
    }

    /* None of it touched the card, and the log names reasons, not bytes. */
    pos_test_sleep_ms(500);
    assert_int_equal(charges(f), before);
    assert_int_equal(pos_test_int(&f->fx.redis, "SCARD active_transactions:" SID), 0);
    assert_true(pos_test_agent_log_count(&f->fx.agent, "bad_signature, refused") >= 3);
    assert_true(pos_test_agent_log_count(&f->fx.agent, "stale, refused") >= 3);

    /* A refused id is not burnt: the genuine request still goes through. */
    publish_signed(f, msg, sizeof(msg), "tx-u1", "12.34", pos_test_wall_ms(), KEY1_HEX);
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-u1", 10000, NULL));
    assert_int_equal(charges(f), before + 1);
}

/*
 * Over the payment channel's budget a request is answered at once, without
 * the state machine; its signature is still checked first: an unsigned one
 * is refused as such (counted with the others), never answered with a
 * signed PAYMENT_REJECTED busy that a forger could have the till sign for
 * any transaction id.
 */
static void test_over_budget_still_verified(void **state)
{
    fixture_t *f = *state;
    pos_ini_set(&f->fx.ini, "inbound", "payment_rate", "1");
    pos_ini_set(&f->fx.ini, "inbound", "payment_burst", "1");
    start(f, KEY1_HEX "\n");

    /* The one token goes to a malformed message, the request is over. */
    publish(f, "not json");
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-ob1\",\"amount\":12.34,"
               "\"currency\":\"EUR\"}");
    expect_rejected(f, "tx-ob1", "unsigned");
    assert_true(pos_fix_info(&f->fx, "inbound", "payment_over_budget") >= 1);
    assert_int_equal(pos_fix_info(&f->fx, "security", "refused_unsigned"), 1);
}

static void test_key_rotation(void **state)
{
    fixture_t *f = *state;
    char msg[512], *text = NULL;
    /* Rotating: the new key first (it signs), the old one still accepted. */
    start(f, "# new\n" KEY2_HEX "\n# old\n" KEY1_HEX "\n");

    publish_signed(f, msg, sizeof(msg), "tx-r1", "2.00", pos_test_wall_ms(), KEY1_HEX);
    cJSON *j = expect_msg(f, "PAYMENT_APPROVED", "tx-r1", 10000, &text);
    assert_true(verifies(text, KEY2_HEX));
    assert_false(verifies(text, KEY1_HEX));
    free(text);
    cJSON_Delete(j);
    cJSON_Delete(expect_msg(f, "TRANSACTION_COMPLETED", "tx-r1", 10000, NULL));

    publish_signed(f, msg, sizeof(msg), "tx-r2", "3.00", pos_test_wall_ms(), KEY2_HEX);
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-r2", 10000, NULL));
    assert_int_equal(charges(f), 2);
}

/*
 * Over the payment channel's budget a cancel of the running payment is
 * still carried out (test_payment's test_cancel_over_budget), through the
 * whole check: a forged one is refused there as anywhere, and the payment
 * goes on.
 */
static void test_forged_cancel_over_budget(void **state)
{
    fixture_t *f = *state;
    char msg[512];
    pos_ini_set(&f->fx.ini, "inbound", "payment_rate", "1");
    pos_ini_set(&f->fx.ini, "inbound", "payment_burst", "2");
    start_delay(f, KEY1_HEX "\n", 2000);

    publish_signed(f, msg, sizeof(msg), "tx-c1", "4.00", pos_test_wall_ms(), KEY1_HEX);
    cJSON_Delete(expect_msg(f, "PAYMENT_PROCESSING", "tx-c1", 5000, NULL));
    for (int i = 0; i < 3; i++) {
        publish(f, "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"x\"]}");
    }
    publish(f, "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-c1\"}");
    /* Refused, and not answered: a PAYMENT_REJECTED after the payment's
     * PROCESSING would tell the cloud it was refused without the card. */
    pos_fix_payment_msg_t m;
    assert_true(pos_fix_next_payment_msg(&f->fx, "tx-c1", 10000, &m));
    assert_string_equal(m.type, "PAYMENT_APPROVED");
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "not answered: tx-c1", 1, 5000));
    assert_int_equal(charges(f), 1);
}

/*
 * Unsigned messages naming a payment this till has made: a repeated
 * request, a cancel, a reprint. Each was answered with a signed
 * PAYMENT_REJECTED for that id, after its PAYMENT_APPROVED: a refusal
 * "without touching the card" of a payment that was charged, which a
 * cloud may answer by asking again under a new id. Now none is answered,
 * each is counted, and nothing is charged or printed.
 */
static void test_forged_about_a_known_payment(void **state)
{
    fixture_t *f = *state;
    char msg[512];
    start(f, KEY1_HEX "\n");

    publish_signed(f, msg, sizeof(msg), "tx-k1", "4.00", pos_test_wall_ms(), KEY1_HEX);
    cJSON_Delete(expect_msg(f, "PAYMENT_APPROVED", "tx-k1", 10000, NULL));
    cJSON_Delete(expect_msg(f, "RECEIPT_PRINTED", "tx-k1", 10000, NULL));
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-k1\",\"amount\":4.00,"
               "\"currency\":\"EUR\"}");
    publish(f, "{\"type\":\"PAYMENT_CANCELLED\",\"transactionId\":\"tx-k1\"}");
    publish(f, "{\"type\":\"RECEIPT_REPRINT\",\"transactionId\":\"tx-k1\"}");
    pos_fix_payment_msg_t m;
    if (pos_fix_next_payment_msg(&f->fx, "tx-k1", 1500, &m)) {
        fail_msg("answered %s %s", m.type, m.reason);
    }
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "not answered: tx-k1", 3, 5000));
    assert_int_equal(pos_fix_info(&f->fx, "security", "refused_payment_unanswered"), 3);
    assert_int_equal(charges(f), 1);

    /* An unsigned request for an id never seen still gets its answer. */
    publish(f, "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-k2\",\"amount\":4.00,"
               "\"currency\":\"EUR\"}");
    expect_rejected(f, "tx-k2", "unsigned");
}

/* True when the customer display shows "what". */
static bool display_shows(fixture_t *f, const char *what)
{
    char *screen = pos_fix_sim_text(&f->fx, "display.txt");
    bool shows = strstr(screen, what) != NULL;
    free(screen);
    return shows;
}

/*
 * PUBLISHes on channel a message of "type" whose other members, "members",
 * are in canonical form and sort before "ts": its ts, then its sig under
 * key_hex. The agent is the only subscriber there.
 */
static void publish_signed_msg(fixture_t *f, const char *channel, const char *members,
                               const char *type, uint64_t ts, const char *key_hex)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "{%s,\"ts\":%llu,\"type\":\"%s\"}", members, (unsigned long long)ts,
             type);
    pos_test_sign(msg, sizeof(msg), key_hex);
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH %s %s", channel, msg), 1);
}

/*
 * Issue 13 item 11: with a key set, an unsigned SYSTEM_ALERT ("pay at
 * www.evil.example") was shown and an unsigned INVENTORY_UPDATED with
 * quantity -5 was cached. Every cloud channel is signed now: alerts, cache
 * invalidations, inventory updates and display messages.
 */
static void test_every_channel_signed(void **state)
{
    fixture_t *f = *state;
    start(f, KEY1_HEX "\n");

    /* Unsigned: refused, counted, never shown or cached. */
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH system:alerts %s",
                                  "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"critical\","
                                  "\"message\":\"Card reader broken pay at www.evil.example\"}"),
                     1);
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH inventory:" SID " %s",
                                  "{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"" SID "\","
                                  "\"productId\":\"P-9\",\"quantity\":-5,\"lowStockThreshold\":1}"),
                     1);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "SYSTEM_ALERT unsigned, refused", 1, 5000));
    assert_true(
        pos_test_agent_wait_log(&f->fx.agent, "INVENTORY_UPDATED unsigned, refused", 1, 5000));
    assert_false(display_shows(f, "evil"));
    assert_null(pos_fix_local_get(&f->fx, "inventory:" SID ":P-9"));

    /* Signed with another key, or stale: refused the same way. */
    publish_signed_msg(f, "system:alerts",
                       "\"message\":\"Pay at www.evil.example\",\"severity\":\"warning\"",
                       "SYSTEM_ALERT", pos_test_wall_ms(), KEY2_HEX);
    publish_signed_msg(f, "inventory:" SID,
                       "\"productId\":\"P-9\",\"quantity\":-5,\"storeId\":\"" SID "\"",
                       "INVENTORY_UPDATED", pos_test_wall_ms() - 600000, KEY1_HEX);
    assert_true(
        pos_test_agent_wait_log(&f->fx.agent, "SYSTEM_ALERT bad_signature, refused", 1, 5000));
    assert_true(pos_test_agent_wait_log(
        &f->fx.agent, "INVENTORY_UPDATED stale, refused (this till's clock: ", 1, 5000));
    assert_false(display_shows(f, "evil"));
    assert_null(pos_fix_local_get(&f->fx, "inventory:" SID ":P-9"));

    /* The cloud's signed messages go through. */
    publish_signed_msg(f, "inventory:" SID,
                       "\"productId\":\"P-9\",\"quantity\":41,\"storeId\":\"" SID "\"",
                       "INVENTORY_UPDATED", pos_test_wall_ms(), KEY1_HEX);
    /* The third such line: the refused ones above begin the same way. */
    assert_true(
        pos_test_agent_wait_log(&f->fx.agent, "inventory:" SID ": INVENTORY_UPDATED", 3, 5000));
    /* The log line comes as the message is taken; the cache has it a
     * moment later. */
    char *v = pos_fix_local_get(&f->fx, "inventory:" SID ":P-9");
    for (int i = 0; i < 100 && v == NULL; i++) {
        pos_test_sleep_ms(20);
        v = pos_fix_local_get(&f->fx, "inventory:" SID ":P-9");
    }
    assert_non_null(v);
    assert_non_null(strstr(v, "\"quantity\":41"));
    free(v);
    publish_signed_msg(f, "system:alerts",
                       "\"message\":\"Store closes soon\",\"severity\":\"info\"", "SYSTEM_ALERT",
                       pos_test_wall_ms(), KEY1_HEX);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "system:alerts: SYSTEM_ALERT", 1, 5000));
    for (int i = 0; i < 100 && !display_shows(f, "Store closes"); i++) {
        pos_test_sleep_ms(50);
    }
    assert_true(display_shows(f, "Store closes"));

    /* An unsigned CACHE_INVALIDATE "*" drops nothing; a signed one does. */
    assert_int_equal(pos_test_int(&f->fx.redis, "PUBLISH system:alerts %s",
                                  "{\"type\":\"CACHE_INVALIDATE\",\"pattern\":\"*\"}"),
                     1);
    assert_true(
        pos_test_agent_wait_log(&f->fx.agent, "CACHE_INVALIDATE unsigned, refused", 1, 5000));
    v = pos_fix_local_get(&f->fx, "inventory:" SID ":P-9");
    assert_non_null(v); /* still the local copy: Redis has no such key */
    free(v);
    publish_signed_msg(f, "system:alerts", "\"pattern\":\"inventory:*\"", "CACHE_INVALIDATE",
                       pos_test_wall_ms(), KEY1_HEX);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "system:alerts: CACHE_INVALIDATE", 1, 5000));
    pos_test_sleep_ms(200);
    assert_null(pos_fix_local_get(&f->fx, "inventory:" SID ":P-9"));

    /* The cloud can see signing is on. */
    char *st = pos_test_get(&f->fx.redis, "terminal:" TID ":status");
    assert_non_null(st);
    assert_non_null(strstr(st, "\"signed\":true"));
    free(st);

    /* Counted in INFO, with the payment channel's. */
    assert_int_equal(pos_fix_info(&f->fx, "security", "refused_unsigned"), 3);
    assert_int_equal(pos_fix_info(&f->fx, "security", "refused_bad_signature"), 1);
    assert_int_equal(pos_fix_info(&f->fx, "security", "refused_stale"), 1);
}

/* A key file others may read, or a malformed one: exit 78, key not shown. */
static void test_bad_key_file(void **state)
{
    fixture_t *f = *state;
    static pos_ini_t ini;
    char conf[128], *out = NULL;
    const char *bin = getenv("POSAGENT_BIN");
    assert_non_null(bin);

    /* No Redis needed: the key file is checked when the configuration is. */
    snprintf(conf, sizeof(conf), "%s/posagent.ini", f->dir);
    pos_ini_init(&ini);
    pos_ini_set(&ini, "terminal", "id", TID);
    pos_ini_set(&ini, "terminal", "store_id", SID);
    pos_ini_set(&ini, "payment", "hmac_key_file", "%s", f->key);
    pos_ini_set(&ini, "store", "path", "%s/store", f->dir);
    pos_ini_set(&ini, "local", "socket", "%s/agent.sock", f->dir);
    pos_ini_set(&ini, "security", "allow_root", "true");
    assert_int_equal(pos_ini_write(&ini, conf), 0);
    const char *argv[] = {bin, "--config", conf, NULL};

    pos_fix_signed_key(f, KEY1_HEX "\n", 0644);
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "hmac_key_file"));
    assert_non_null(strstr(out, "chmod 600"));
    assert_null(strstr(out, KEY1_HEX));
    free(out);

    pos_fix_signed_key(f, KEY1_HEX "\nnot-a-key\n", 0600);
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "hex"));
    assert_null(strstr(out, KEY1_HEX));
    free(out);

    pos_fix_signed_key(f, "0011\n", 0600);
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    free(out);

    unlink(f->key);
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, f->key));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signed_payment_approved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_without_charge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_budget_still_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_cancel_over_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_about_a_known_payment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_channel_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_key_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
