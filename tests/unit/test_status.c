#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/link/link.h"
#include "agent/msg/status.h"

static pos_status_report_t sample(void)
{
    pos_status_report_t r;
    memset(&r, 0, sizeof(r));
    r.terminal_id = "T-0001";
    r.store_id = "S-042";
    r.status = POS_TERM_ONLINE;
    r.ts_ms = 1764412800000ull;
    r.version = "0.1.0";
    r.uptime_s = 3600;
    r.devices[POS_DEV_DISPLAY] = POS_DEV_READY;
    r.devices[POS_DEV_PRINTER] = POS_DEV_PAPER_LOW;
    r.devices[POS_DEV_PINPAD] = POS_DEV_READY;
    r.outbox = 0;
    r.journal_ok = true;
    return r;
}

/* Byte for byte the example in CONTRACT.md, then the agent's own fields. */
static void test_status_json_contract_example(void **state)
{
    (void)state;
    char buf[512];
    pos_status_report_t r = sample();
    int n = pos_status_json(&r, buf, sizeof(buf));
    const char *contract =
        "{\"terminalId\":\"T-0001\",\"storeId\":\"S-042\",\"status\":\"online\","
        "\"ts\":1764412800000,\"version\":\"0.1.0\",\"uptimeS\":3600,"
        "\"devices\":{\"display\":\"ready\",\"printer\":\"paper_low\",\"pinpad\":\"ready\"},"
        "\"outbox\":0";
    const char *expect = ",\"signed\":false,\"store\":{\"journal\":\"ok\",\"recovered\":0}}";
    assert_int_equal(n, (int)(strlen(contract) + strlen(expect)));
    assert_memory_equal(buf, contract, strlen(contract));
    assert_string_equal(buf + strlen(contract), expect);
    /* Whether the cloud's messages must be signed, and ours are. */
    r.signing = true;
    n = pos_status_json(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf + strlen(contract),
                        ",\"signed\":true,\"store\":{\"journal\":\"ok\",\"recovered\":0}}");
    /* No journal, no payment: the cloud sees why. */
    r.journal_ok = false;
    r.journal_reason = "store_recovered";
    r.recovered = 1;
    n = pos_status_json(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf + strlen(contract),
                        ",\"signed\":true,\"store\":{\"journal\":\"unavailable\",\"reason\":"
                        "\"store_recovered\",\"recovered\":1}}");
    r.journal_reason = "bad\"reason";
    assert_int_equal(pos_status_json(&r, buf, sizeof(buf)), -EINVAL);
}

/* The clock offset against Redis, once measured, after the contract's fields. */
static void test_status_json_clock_offset(void **state)
{
    (void)state;
    char buf[512];
    pos_status_report_t r = sample();
    int n = pos_status_json(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_null(strstr(buf, "clockOffsetMs"));
    r.clock_known = true;
    r.clock_offset_ms = -1234;
    n = pos_status_json(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_non_null(strstr(buf, "\"outbox\":0,"));
    assert_non_null(strstr(buf, ",\"recovered\":0},\"clockOffsetMs\":-1234}"));
    r.clock_offset_ms = 0;
    n = pos_status_json(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_non_null(strstr(buf, ",\"clockOffsetMs\":0}"));
}

static void test_status_json_limits(void **state)
{
    (void)state;
    char buf[512];
    pos_status_report_t r = sample();
    assert_int_equal(pos_status_json(&r, buf, 50), -ENOSPC);
    r.terminal_id = "T\"0001"; /* would break the JSON: refused, not escaped */
    assert_int_equal(pos_status_json(&r, buf, sizeof(buf)), -EINVAL);
    r.terminal_id = "";
    assert_int_equal(pos_status_json(&r, buf, sizeof(buf)), -EINVAL);
}

/* The build id follows the version; both may carry '~' and '+' (Debian
 * version syntax), nothing that JSON would need escaped. */
static void test_status_json_version_and_build(void **state)
{
    (void)state;
    char buf[512];
    pos_status_report_t r = sample();
    r.version = "0.2.0~git231.1a2b3c4d5e6f";
    r.build = "1a2b3c4d5e6f-dirty";
    assert_true(pos_status_json(&r, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, ",\"version\":\"0.2.0~git231.1a2b3c4d5e6f\","
                                "\"build\":\"1a2b3c4d5e6f-dirty\",\"uptimeS\":3600,"));
    r.version = "0.2.0+git240.1a2b3c4d5e6f";
    assert_true(pos_status_json(&r, buf, sizeof(buf)) > 0);
    const char *bad[] = {"1.0\"", "1.0\\", "1.0 x", "", "1.0\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r.version = bad[i];
        r.build = "1a2b";
        assert_int_equal(pos_status_json(&r, buf, sizeof(buf)), -EINVAL);
        r.version = "0.2.0";
        r.build = bad[i];
        assert_int_equal(pos_status_json(&r, buf, sizeof(buf)), -EINVAL);
    }
    r.terminal_id = "T~1"; /* ids stay [A-Za-z0-9._-] */
    r.build = NULL;
    assert_int_equal(pos_status_json(&r, buf, sizeof(buf)), -EINVAL);
}

static void test_status_change_json(void **state)
{
    (void)state;
    char buf[384];
    int n = pos_status_change_json("T-0001", "S-042", POS_TERM_DEGRADED, POS_TERM_ONLINE,
                                   1764412800000ull, buf, sizeof(buf));
    const char *expect = "{\"type\":\"TERMINAL_STATUS\",\"origin\":\"terminal\","
                         "\"terminalId\":\"T-0001\",\"storeId\":\"S-042\",\"status\":\"degraded\","
                         "\"previous\":\"online\",\"ts\":1764412800000}";
    assert_int_equal(n, (int)strlen(expect));
    assert_string_equal(buf, expect);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(pos_term_status_name(POS_TERM_ONLINE), "online");
    assert_string_equal(pos_term_status_name(POS_TERM_BUSY), "busy");
    assert_string_equal(pos_term_status_name(POS_TERM_DEGRADED), "degraded");
    assert_string_equal(pos_term_status_name(POS_TERM_OFFLINE), "offline");
    assert_string_equal(pos_dev_state_name(POS_DEV_COVER_OPEN), "cover_open");
    assert_string_equal(pos_dev_state_name(POS_DEV_PAPER_OUT), "paper_out");
    assert_string_equal(pos_dev_state_name((pos_dev_state_t)99), "error");
}

static void test_compute(void **state)
{
    (void)state;
    pos_dev_state_t d[POS_DEV_COUNT] = {POS_DEV_READY, POS_DEV_READY, POS_DEV_READY};
    assert_int_equal(pos_status_compute(false, true, d), POS_TERM_ONLINE);
    assert_int_equal(pos_status_compute(true, true, d), POS_TERM_BUSY);
    d[POS_DEV_PRINTER] = POS_DEV_PAPER_LOW; /* a warning, not a fault */
    assert_int_equal(pos_status_compute(false, true, d), POS_TERM_ONLINE);
    const pos_dev_state_t faults[] = {POS_DEV_ERROR, POS_DEV_OFFLINE, POS_DEV_PAPER_OUT,
                                      POS_DEV_COVER_OPEN};
    for (size_t i = 0; i < 4; i++) {
        d[POS_DEV_PRINTER] = faults[i];
        assert_int_equal(pos_status_compute(false, true, d), POS_TERM_DEGRADED);
        assert_int_equal(pos_status_compute(true, true, d), POS_TERM_BUSY);
    }
    d[POS_DEV_PRINTER] = POS_DEV_BUSY;
    assert_int_equal(pos_status_compute(false, true, d), POS_TERM_ONLINE);
    /* No journal, no payment: degraded, whatever the devices say. */
    assert_int_equal(pos_status_compute(false, false, d), POS_TERM_DEGRADED);
}

static void test_classify_error(void **state)
{
    (void)state;
#define CLS(s) pos_link_classify_error(s, strlen(s))
    assert_int_equal(CLS("WRONGPASS invalid username-password pair or user is disabled."),
                     -EACCES);
    assert_int_equal(CLS("ERR invalid password"), -EACCES);
    assert_int_equal(CLS("NOAUTH Authentication required."), -EACCES);
    assert_int_equal(CLS("NOPERM this user has no permissions to access one of the channels"),
                     -EACCES);
    assert_int_equal(CLS("ERR DB index is out of range"), -EINVAL);
    assert_int_equal(CLS("LOADING Redis is loading the dataset in memory"), -EAGAIN);
    assert_int_equal(CLS("BUSY Redis is busy running a script."), -EAGAIN);
    assert_int_equal(CLS("ERR unknown command"), -EPROTO);
    assert_int_equal(pos_link_classify_error("NOAUTH", 3), -EPROTO); /* length respected */
#undef CLS
#define GOOD(s) pos_link_error_for_good(s, strlen(s))
    assert_true(GOOD("WRONGTYPE Operation against a key holding the wrong kind of value"));
    assert_true(GOOD("ERR value is not an integer or out of range"));
    assert_true(GOOD("ERR increment or decrement would overflow"));
    assert_false(GOOD("OOM command not allowed when used memory > 'maxmemory'."));
    assert_false(GOOD("LOADING Redis is loading the dataset in memory"));
    assert_false(GOOD("READONLY You can't write against a read only replica."));
    assert_false(pos_link_error_for_good("WRONGTYPE", 5)); /* length respected */
#undef GOOD
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_json_contract_example),
        cmocka_unit_test(test_status_json_clock_offset),
        cmocka_unit_test(test_status_json_limits),
        cmocka_unit_test(test_status_json_version_and_build),
        cmocka_unit_test(test_status_change_json),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_compute),
        cmocka_unit_test(test_classify_error),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
