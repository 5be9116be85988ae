/* Unit tests for agent/acl: the Redis ACL rule of a terminal (docs/acl.md). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/acl.h"
#include "conf/config.h"

static void load(pos_config_t *cfg, const char *text)
{
    pos_config_error_t err;
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(in);
    if (pos_config_load_stream(cfg, in, "test.ini", NULL, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    fclose(in);
}

/* True when the rule holds word as a whole word. */
static bool has_word(const char *rule, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(rule, word); p != NULL; p = strstr(p + 1, word)) {
        if ((p == rule || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static void test_rule_is_this_tills_only(void **state)
{
    (void)state;
    pos_config_t cfg;
    char rule[4096];
    load(&cfg, "[terminal]\nid = T-7\nstore_id = S-3\n"
               "[redis]\nurl = redis://till-7:s3cret@redis.example:6379\n");
    int n = pos_acl_rule(&cfg, rule, sizeof(rule));
    assert_true(n > 0 && (size_t)n == strlen(rule));
    assert_non_null(strstr(rule, "ACL SETUSER till-7 reset on "));
    /* The password's SHA-256, never the password. */
    assert_true(
        has_word(rule, "#1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"));
    assert_null(strstr(rule, "s3cret"));
    static const char *const must[] = {
        "resetkeys",
        "resetchannels",
        "nocommands",
        "+eval",
        "+subscribe",
        "+publish",
        "+client|tracking",
        "+client|trackinginfo",
        "+scan",
        "+sscan",
        "+mget",
        "+role",
        "%W~terminal:T-7:status",
        "%RW~posagent:lease:T-7",
        "%R~inventory:S-3:*",
        "%RW~active_transactions:S-3",
        "%RW~terminals:S-3",
        "%RW~rate_limit:*",
        "%RW~session:*",
        "%RW~temp:*",
        "+pexpire",
        "%R~terminal:*:status",
        "+smembers",
        "+zadd",
        "&payment:T-7",
        "&inventory:S-3",
        "&transaction:S-3",
        "&system:alerts",
        "&system:terminals",
        "&posagent:probe:T-7",
        "&__redis__:invalidate",
        "+time",
        "+hset",
        "%RW~terminal:T-7:metrics",
        "&diag:T-7",
        "&diag:reply:T-7:*",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
        if (!has_word(rule, must[i])) {
            fail_msg("the rule lacks %s: %s", must[i], rule);
        }
    }
    /* Nothing of everyone's, nothing dangerous. */
    static const char *const never[] = {"~*",
                                        "&*",
                                        "+@all",
                                        "allkeys",
                                        "allchannels",
                                        "+flushall",
                                        "+config",
                                        "+keys",
                                        "+del",
                                        "+acl",
                                        "nopass",
                                        "%R~inventory:*",
                                        "&payment:*",
                                        "&diag:*",
                                        "&diag:reply:*",
                                        "%W~terminal:*:metrics",
                                        "%RW~terminal:*:metrics"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        if (has_word(rule, never[i])) {
            fail_msg("the rule holds %s: %s", never[i], rule);
        }
    }
    assert_int_equal(pos_acl_rule(&cfg, rule, 100), -ENOSPC);
    /* No sentinels: no sentinel rule. */
    assert_int_equal(pos_acl_sentinel_rule(&cfg, rule, sizeof(rule)), 0);
    pos_config_wipe(&cfg);
}

static void test_rule_without_user_or_password(void **state)
{
    (void)state;
    pos_config_t cfg;
    char rule[4096];
    load(&cfg, "[terminal]\nid = T-8\nstore_id = S-3\n"
               "[redis]\nurl = redis://127.0.0.1:6379\nsentinels = s1:26379\n"
               "master_name = mymaster\nsentinel_password = sent-pw\n");
    assert_true(pos_acl_rule(&cfg, rule, sizeof(rule)) > 0);
    assert_non_null(strstr(rule, "ACL SETUSER posagent-T-8 reset on >CHANGE-ME "));
    assert_true(pos_acl_sentinel_rule(&cfg, rule, sizeof(rule)) > 0);
    assert_non_null(strstr(rule, "ACL SETUSER default reset on #"));
    assert_true(has_word(rule, "+sentinel|get-master-addr-by-name"));
    assert_true(has_word(rule, "&+switch-master"));
    assert_null(strstr(rule, "sent-pw"));
    pos_config_wipe(&cfg);
}

/* On a cluster the rule adds the map, -ASK and the subscribers' PING;
 * with sharded pub/sub the sharded commands (docs/cluster.md). */
static void test_rule_on_a_cluster(void **state)
{
    (void)state;
    pos_config_t cfg;
    char rule[4096];
    static const char *const cluster[] = {"+cluster|slots", "+asking", "+ping"};
    static const char *const sharded[] = {"+ssubscribe", "+spublish"};

    load(&cfg, "[terminal]\nid = T-9\nstore_id = S-3\n[redis]\nurl = redis://till-9:pw@x:6379\n");
    assert_true(pos_acl_rule(&cfg, rule, sizeof(rule)) > 0);
    for (size_t i = 0; i < 3; i++) {
        assert_false(has_word(rule, cluster[i]));
    }
    for (size_t i = 0; i < 2; i++) {
        assert_false(has_word(rule, sharded[i]));
    }
    pos_config_wipe(&cfg);

    load(&cfg, "[terminal]\nid = T-9\nstore_id = S-3\n[redis]\nurl = redis://till-9:pw@x:6379\n"
               "cluster_nodes = n1:7000,n2:7001\n");
    assert_true(pos_acl_rule(&cfg, rule, sizeof(rule)) > 0);
    for (size_t i = 0; i < 3; i++) {
        if (!has_word(rule, cluster[i])) {
            fail_msg("the rule lacks %s: %s", cluster[i], rule);
        }
    }
    for (size_t i = 0; i < 2; i++) {
        assert_false(has_word(rule, sharded[i]));
    }
    assert_true(has_word(rule, "%RW~posagent:lease:T-9"));
    assert_false(has_word(rule, "+cluster"));
    pos_config_wipe(&cfg);

    load(&cfg, "[terminal]\nid = T-9\nstore_id = S-3\n[redis]\nurl = redis://till-9:pw@x:6379\n"
               "cluster_nodes = n1:7000\npubsub = sharded\n");
    assert_true(pos_acl_rule(&cfg, rule, sizeof(rule)) > 0);
    for (size_t i = 0; i < 2; i++) {
        if (!has_word(rule, sharded[i])) {
            fail_msg("the rule lacks %s: %s", sharded[i], rule);
        }
    }
    assert_true(has_word(rule, "&payment:T-9") && has_word(rule, "&inventory:S-3"));
    assert_false(has_word(rule, "&payment:*"));
    pos_config_wipe(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_is_this_tills_only),
        cmocka_unit_test(test_rule_without_user_or_password),
        cmocka_unit_test(test_rule_on_a_cluster),
    };
    return cmocka_run_group_tests_name("acl", tests, NULL, NULL);
}
