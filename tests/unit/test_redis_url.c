/* Unit tests for the Redis URL parser and its masked formatter (conf/redis_url.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/redis_url.h"

typedef struct good_case {
    const char *url;
    bool tls;
    const char *host;
    unsigned port;
    const char *user;
    const char *password;
    int db;
} good_case_t;

static const good_case_t good[] = {
    {"redis://localhost:6379", false, "localhost", 6379, "", "", -1},
    {"redis://localhost", false, "localhost", 6379, "", "", -1},
    {"rediss://cache.example.com:6380/2", true, "cache.example.com", 6380, "", "", 2},
    {"redis://:secret@h", false, "h", 6379, "", "secret", -1},
    {"redis://alice:secret@h:1/0", false, "h", 1, "alice", "secret", 0},
    {"redis://alice:@h", false, "h", 6379, "alice", "", -1},
    {"redis://:@h", false, "h", 6379, "", "", -1},
    {"redis://[::1]:6380/3", false, "::1", 6380, "", "", 3},
    {"redis://[::1]", false, "::1", 6379, "", "", -1},
    {"rediss://u:p@[2001:db8::7]/5", true, "2001:db8::7", 6379, "u", "p", 5},
    {"redis://h/", false, "h", 6379, "", "", -1},
    {"redis://h:65535/1023", false, "h", 65535, "", "", 1023},
    {"redis://h:1/0", false, "h", 1, "", "", 0},
    {"redis://:p%40ss%3Aw%2Fd%25@h", false, "h", 6379, "", "p@ss:w/d%", -1},
    {"redis://us%65r%20x:x@h", false, "h", 6379, "user x", "x", -1},
    {"REDIS://h", false, "h", 6379, "", "", -1},
    {"RediSS://h", true, "h", 6379, "", "", -1},
    {"redis://:a@b@h", false, "h", 6379, "", "a@b", -1},
    {"redis://:pa:ss@h", false, "h", 6379, "", "pa:ss", -1},
    {"redis://127.0.0.1:6379/0", false, "127.0.0.1", 6379, "", "", 0},
    {"redis://redis_1:6379", false, "redis_1", 6379, "", "", -1},
    {"redis://h:06379", false, "h", 6379, "", "", -1},
};

static void test_good_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const good_case_t *g = &good[i];
        pos_redis_url_t u;
        char err[200] = "untouched";
        int rc = pos_redis_url_parse(g->url, &u, err, sizeof(err));
        if (rc != 0) {
            fail_msg("%s: %d %s", g->url, rc, err);
        }
        assert_string_equal(err, "");
        assert_int_equal(u.tls, g->tls);
        assert_string_equal(u.host, g->host);
        assert_int_equal(u.port, g->port);
        assert_string_equal(u.user, g->user);
        assert_string_equal(u.password, g->password);
        assert_int_equal(u.db, g->db);
    }
}

typedef struct bad_case {
    const char *url;
    const char *needle; /* expected in the error text */
} bad_case_t;

/* Every password in these URLs contains "secret", which must never appear in an error. */
static const bad_case_t bad[] = {
    {"http://h", "scheme"},
    {"redis:/h", "scheme"},
    {"redis//h", "scheme"},
    {"", "scheme"},
    {"unix:///tmp/redis.sock", "scheme"},
    {"redis://", "empty host"},
    {"redis://:6379", "empty host"},
    {"redis://:secret@", "empty host"},
    {"redis://:secret@:6379", "empty host"},
    {"redis://:secret@/0", "empty host"},
    {"redis://h:0", "port"},
    {"redis://h:65536", "port"},
    {"redis://h:99999999999999999999", "port"},
    {"redis://h:", "empty port"},
    {"redis://h:63x9", "port"},
    {"redis://h:+6379", "port"},
    {"redis://h:-1", "port"},
    {"redis://h:6379x", "port"},
    {"redis://h:6379:1", "port"},
    {"redis://h/1024", "database"},
    {"redis://h/-1", "database"},
    {"redis://h/01x", "database"},
    {"redis://h/1/2", "database"},
    {"redis://h/abc", "database"},
    {"redis://h//", "database"},
    {"redis://h?db=1", "query"},
    {"redis://h/0?timeout=1", "query"},
    {"redis://:secret@h/0?x", "query"},
    {"redis://:sec?ret@h", "query"},
    {"redis://h#frag", "fragment"},
    {"redis://:sec#ret@h", "fragment"},
    {"redis://[::1", "']'"},
    {"redis://[]", "empty host"},
    {"redis://[::1]x", "after host"},
    {"redis://[zz::1]", "IPv6"},
    {"redis://[127.0.0.1]", "IPv6"},
    {"redis://::1", "empty host"},
    {"redis://secret@h", "':'"},
    {"redis://:%4@h", "escape"},
    {"redis://:%zzsecret@h", "escape"},
    {"redis://:secret%@h", "escape"},
    {"redis://:secret%4@h", "escape"},
    {"redis://:%00secret@h", "control"},
    {"redis://:%0asecret@h", "control"},
    {"redis://%7Fsecret:x@h", "control"},
    {"redis://h\n", "control"},
    {"redis://h\t:1", "control"},
    {"redis://:se\x01"
     "cret@h",
     "control"},
    {"redis://:se\x7f"
     "cret@h",
     "control"},
    {" redis://h", "space"},
    {"redis://h x", "space"},
    {"redis://:sec ret@h", "space"},
    {"redis://h*st", "bad character"},
    {"redis://h%41", "bad character"},
    {"redis://-h", "start"},
    {"redis://.h", "start"},
};

static void test_bad_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const bad_case_t *b = &bad[i];
        pos_redis_url_t u;
        char err[200] = "";
        memset(&u, 0x55, sizeof(u));
        int rc = pos_redis_url_parse(b->url, &u, err, sizeof(err));
        if (rc != -EINVAL) {
            fail_msg("%s: expected -EINVAL, got %d (host \"%s\")", b->url, rc, u.host);
        }
        if (strstr(err, b->needle) == NULL) {
            fail_msg("%s: error \"%s\" lacks \"%s\"", b->url, err, b->needle);
        }
        if (strstr(err, "secret") != NULL || strstr(err, "cret") != NULL) {
            fail_msg("%s: error \"%s\" leaks the password", b->url, err);
        }
        assert_null(strchr(err, '\n'));
        /* No half-parsed secret is left in the output. */
        assert_string_equal(u.password, "");
        assert_string_equal(u.host, "");
        assert_int_equal(u.port, 6379);
        assert_int_equal(u.db, -1);
    }
}

static void test_null_and_small_err(void **state)
{
    (void)state;
    pos_redis_url_t u;
    char err[8];
    assert_int_equal(pos_redis_url_parse(NULL, &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(pos_redis_url_parse("redis://h", NULL, err, sizeof(err)), -EINVAL);
    /* A tiny or absent error buffer is fine. */
    assert_int_equal(pos_redis_url_parse("http://h", &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(pos_redis_url_parse("http://h", &u, NULL, 0), -EINVAL);
}

/* Builds a string of n copies of c into a malloc'd buffer. */
static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    assert_non_null(s);
    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

static void expect_len(const char *prefix, char c, size_t n, const char *suffix, int want)
{
    pos_redis_url_t u;
    char err[200] = "";
    char *url = repeat(prefix, c, n, suffix);
    int rc = pos_redis_url_parse(url, &u, err, sizeof(err));
    if (rc != want) {
        fail_msg("%s... (%zu): expected %d, got %d: %s", prefix, n, want, rc, err);
    }
    if (want != 0) {
        assert_non_null(strstr(err, "too long"));
        assert_null(strstr(err, "xxxx"));
    }
    free(url);
}

static void test_field_lengths(void **state)
{
    (void)state;
    /* Fields that fit exactly are taken whole; one byte more is an error, never truncated. */
    expect_len("redis://", 'h', POS_URL_HOST_MAX - 1, "", 0);
    expect_len("redis://", 'h', POS_URL_HOST_MAX, "", -EINVAL);
    expect_len("redis://", 'h', POS_URL_HOST_MAX * 4, ":1/0", -EINVAL);
    expect_len("redis://:", 'x', POS_URL_PASS_MAX - 1, "@h", 0);
    expect_len("redis://:", 'x', POS_URL_PASS_MAX, "@h", -EINVAL);
    expect_len("redis://", 'x', POS_URL_USER_MAX - 1, ":p@h", 0);
    expect_len("redis://", 'x', POS_URL_USER_MAX, ":p@h", -EINVAL);

    /* Decoded length counts: 255 escapes decode to 255 bytes. */
    size_t n = POS_URL_PASS_MAX - 1;
    char *url = malloc(16 + 3 * (n + 1));
    assert_non_null(url);
    strcpy(url, "redis://:");
    for (size_t i = 0; i < n; i++) {
        strcat(url, "%41");
    }
    strcat(url, "@h");
    pos_redis_url_t u;
    char err[200];
    assert_int_equal(pos_redis_url_parse(url, &u, err, sizeof(err)), 0);
    assert_int_equal(strlen(u.password), n);
    assert_int_equal(u.password[0], 'A');
    url[strlen(url) - 2] = '\0';
    strcat(url, "%41@h");
    assert_int_equal(pos_redis_url_parse(url, &u, err, sizeof(err)), -EINVAL);
    free(url);
}

static pos_redis_url_t mk(bool tls, const char *host, unsigned port, const char *user,
                          const char *pass, int db)
{
    pos_redis_url_t u;
    memset(&u, 0, sizeof(u));
    u.tls = tls;
    snprintf(u.host, sizeof(u.host), "%s", host);
    u.port = (uint16_t)port;
    snprintf(u.user, sizeof(u.user), "%s", user);
    snprintf(u.password, sizeof(u.password), "%s", pass);
    u.db = db;
    return u;
}

static void expect_masked(pos_redis_url_t u, const char *want)
{
    char buf[600];
    int n = pos_redis_url_format_masked(&u, buf, sizeof(buf));
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format_masked(void **state)
{
    (void)state;
    expect_masked(mk(false, "h", 6379, "", "", -1), "redis://h:6379");
    expect_masked(mk(false, "h", 6379, "", "hunter2", -1), "redis://:****@h:6379");
    expect_masked(mk(false, "h", 6380, "alice", "hunter2", 2), "redis://alice:****@h:6380/2");
    expect_masked(mk(false, "h", 6379, "alice", "", -1), "redis://alice@h:6379");
    expect_masked(mk(true, "::1", 6379, "", "", 0), "rediss://[::1]:6379/0");
    expect_masked(mk(false, "h", 1, "a@b:c d", "x", 1023), "redis://a%40b%3Ac%20d:****@h:1/1023");
}

static void test_format_truncates(void **state)
{
    (void)state;
    pos_redis_url_t u = mk(false, "example.com", 6379, "", "hunter2", 3);
    const char *full = "redis://:****@example.com:6379/3";
    char buf[10];
    memset(buf, 'Z', sizeof(buf));
    int n = pos_redis_url_format_masked(&u, buf, sizeof(buf));
    assert_int_equal(n, strlen(full));
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
    assert_memory_equal(buf, full, sizeof(buf) - 1);
    assert_int_equal(pos_redis_url_format_masked(&u, NULL, 0), strlen(full));
}

static void test_round_trip(void **state)
{
    (void)state;
    /* What the formatter writes parses back to the same endpoint (password masked). */
    const char *urls[] = {"rediss://al%40ice:pw@[2001:db8::1]:7000/9", "redis://h",
                          "redis://u:@h/0"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        pos_redis_url_t a, b;
        char buf[600], err[200];
        assert_int_equal(pos_redis_url_parse(urls[i], &a, err, sizeof(err)), 0);
        pos_redis_url_format_masked(&a, buf, sizeof(buf));
        assert_null(strstr(buf, ":pw@"));
        if (a.user[0] != '\0' && a.password[0] == '\0') {
            /* "user@host" is deliberately not accepted back. */
            assert_int_equal(pos_redis_url_parse(buf, &b, err, sizeof(err)), -EINVAL);
            continue;
        }
        assert_int_equal(pos_redis_url_parse(buf, &b, err, sizeof(err)), 0);
        assert_int_equal(a.tls, b.tls);
        assert_string_equal(a.host, b.host);
        assert_string_equal(a.user, b.user);
        assert_int_equal(a.port, b.port);
        assert_int_equal(a.db < 0 ? -1 : a.db, b.db);
        if (a.password[0] != '\0') {
            assert_string_equal(b.password, "****");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),          cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_null_and_small_err), cmocka_unit_test(test_field_lengths),
        cmocka_unit_test(test_format_masked),      cmocka_unit_test(test_format_truncates),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
