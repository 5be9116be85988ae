/* Unit tests for agent/sign: RFC 8785 canonical JSON, HMAC signatures, keys. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/msg/canon.h"
#include "agent/msg/sign.h"

/* The worked example of docs/signing.md (checked against the file below). */
#define EX_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define EX_MSG                                                                                     \
    "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-1001\",\"amount\":12.34,"              \
    "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Espresso\",\"qty\":2,\"amount\":5.00},"           \
    "{\"name\":\"Croissant\",\"qty\":1,\"amount\":2.34}],\"ts\":1764412800000}"
#define EX_CANON                                                                                   \
    "{\"amount\":12.34,\"currency\":\"EUR\",\"lines\":[{\"amount\":5,\"name\":\"Espresso\","       \
    "\"qty\":2},{\"amount\":2.34,\"name\":\"Croissant\",\"qty\":1}],\"transactionId\":"            \
    "\"tx-1001\",\"ts\":1764412800000,\"type\":\"PAYMENT_REQUESTED\"}"
/* Computed independently: python3 hmac and `openssl dgst -sha256 -mac HMAC`. */
#define EX_SIG "19b5c3f8f33201d9891dc2b9faa2ebd0ed212761d049d0835bad82599f6fbf07"

#define KEY2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static char *canon(const char *json)
{
    char *out = NULL;
    size_t len = 0;
    int rc = pos_canon_json(json, strlen(json), "sig", &out, &len);
    if (rc != 0) {
        return NULL;
    }
    assert_int_equal(strlen(out), len);
    return out;
}

static void expect_canon(const char *json, const char *want)
{
    char *got = canon(json);
    if (got == NULL) {
        fail_msg("not canonicalized: %s", json);
    }
    assert_string_equal(got, want);
    free(got);
}

static void expect_refused(const char *json)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pos_canon_json(json, strlen(json), NULL, &out, &len), -EBADMSG);
    assert_null(out);
}

static void expect_num(double d, const char *want)
{
    char buf[32];
    int n = pos_canon_number(d, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
}

static void test_numbers(void **state)
{
    (void)state;
    expect_num(12.34, "12.34");
    expect_num(0.1, "0.1");
    expect_num(0.1 + 0.2, "0.30000000000000004");
    expect_num(-0.0, "0");
    expect_num(0.0, "0");
    expect_num(5.0, "5");
    expect_num(-1.5, "-1.5");
    expect_num(4.50, "4.5");
    expect_num(2e-3, "0.002");
    expect_num(1764412800000.0, "1764412800000");
    expect_num(1e20, "100000000000000000000");
    expect_num(1e21, "1e+21");
    expect_num(1e30, "1e+30");
    expect_num(1.5e300, "1.5e+300");
    expect_num(123456789012345680000.0, "123456789012345680000");
    expect_num(0.000001, "0.000001");
    expect_num(1e-7, "1e-7");
    expect_num(-1.5e-7, "-1.5e-7");
    expect_num(1e-27, "1e-27");
    expect_num(333333333.33333329, "333333333.3333333");
    expect_num(9007199254740993.0, "9007199254740992"); /* rounds on parsing */
    expect_num(5e-324, "5e-324");
    expect_num(1.7976931348623157e308, "1.7976931348623157e+308");
    expect_num(-9007199254740991.0, "-9007199254740991");

    char buf[32];
    assert_int_equal(pos_canon_number(1.0 / 0.0, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(pos_canon_number(0.0 / 0.0, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(pos_canon_number(1.0, buf, 8), -ENOSPC);
}

/* The significant digits of a number's text, without sign, point, exponent
 * or leading and trailing zeros ("-0.00120e-5" -> "12"). */
static void sig_digits(const char *text, char *out, size_t len)
{
    size_t k = 0;
    for (const char *c = text; *c != '\0' && *c != 'e' && *c != 'E'; c++) {
        if (*c >= '0' && *c <= '9' && (k > 0 || *c != '0') && k + 1 < len) {
            out[k++] = *c;
        }
    }
    while (k > 1 && out[k - 1] == '0') {
        k--;
    }
    out[k] = '\0';
}

/* The shortest round trip, searched one precision at a time (the reference). */
static void shortest_linear(double d, char *out, size_t len)
{
    char e[40];
    for (int p = 0; p <= 16; p++) {
        snprintf(e, sizeof(e), "%.*e", p, d);
        if (strtod(e, NULL) == d) {
            break;
        }
    }
    sig_digits(e, out, len);
}

/* The binary search for the shortest digits finds what the linear one did. */
static void test_numbers_shortest_digits(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        if (i % 2 == 0) {
            uint64_t bits = x;
            memcpy(&d, &bits, sizeof(d)); /* any double */
        } else {
            d = (double)(x % 100000000u) / 100.0; /* amounts with cents */
        }
        if (!isfinite(d)) {
            continue;
        }
        char buf[32], want[24], got[24];
        int n = pos_canon_number(d, buf, sizeof(buf));
        assert_true(n > 0);
        assert_true(strtod(buf, NULL) == d);
        shortest_linear(d, want, sizeof(want));
        sig_digits(buf, got, sizeof(got));
        if (d == 0) {
            continue;
        }
        if (strcmp(want, got) != 0) {
            fail_msg("%.17g: canon %s, shortest digits %s", d, buf, want);
        }
    }
}

static void test_canon_order_and_nesting(void **state)
{
    (void)state;
    expect_canon(" { \"b\" : 1, \"a\" : 2, \"c\" : { \"z\" : 0, \"y\" : [ 3, { \"b\" : 1, "
                 "\"a\" : 0 } ] } }\n",
                 "{\"a\":2,\"b\":1,\"c\":{\"y\":[3,{\"a\":0,\"b\":1}],\"z\":0}}");
    expect_canon("{\"aa\":1,\"a\":2,\"B\":3,\"_\":4}", "{\"B\":3,\"_\":4,\"a\":2,\"aa\":1}");
    expect_canon("{}", "{}");
    expect_canon("[]", "[]");
    expect_canon("[true,false,null,{}]", "[true,false,null,{}]");
    /* Only the top-level "sig" is left out; a nested one is data. */
    expect_canon("{\"sig\":\"x\",\"a\":{\"sig\":1}}", "{\"a\":{\"sig\":1}}");
    /* Arrays keep their order. */
    expect_canon("[3,1,2]", "[3,1,2]");
}

static void test_canon_rfc8785_example(void **state)
{
    (void)state;
    /* RFC 8785, section 3.2.2's example input and its canonical form. */
    expect_canon("{\"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, "
                 "0.000000000000000000000000001],\n"
                 " \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
                 " \"literals\": [null, true, false]}",
                 "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,"
                 "1e-27],\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

static void test_canon_strings(void **state)
{
    (void)state;
    /* Short escapes where JSON has them, \u00xx (lowercase) for the other
     * controls, everything else (DEL, U+2028, non-ASCII) as UTF-8. */
    expect_canon("[\"\\b\\f\\n\\r\\t\\u0001\\u001F\\u007f\\u2028\xc3\xa9\\u00e9\"]",
                 "[\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xe2\x80\xa8\xc3\xa9\xc3\xa9\"]");
    expect_canon("[\"\\ud83d\\ude00\"]", "[\"\xf0\x9f\x98\x80\"]");
    /* An escaped backslash before u0000 is not an escaped NUL. */
    expect_canon("[\"\\\\u0000\"]", "[\"\\\\u0000\"]");
    /* Keys sort by UTF-16 code units: U+1F600 (D83D DE00) before U+FB01. */
    expect_canon("{\"\xef\xac\x81\":1,\"\xf0\x9f\x98\x80\":2,\"\xc3\xa9\":3,\"z\":4}",
                 "{\"z\":4,\"\xc3\xa9\":3,\"\xf0\x9f\x98\x80\":2,\"\xef\xac\x81\":1}");
}

static void test_canon_refused(void **state)
{
    (void)state;
    expect_refused("");
    expect_refused("{");
    expect_refused("{} x");
    expect_refused("{\"a\":1,\"a\":2}");
    expect_refused("{\"a\":{\"b\":1,\"b\":1}}");
    expect_refused("[\"\\u0000\"]");
    expect_refused("[\"a\\u0000b\"]");
    expect_refused("[\"\xff\"]");
    expect_refused("[\"\xc0\xaf\"]");     /* overlong */
    expect_refused("[\"\xed\xa0\x80\"]"); /* an encoded surrogate */
    expect_refused("{\"\xfe\":1}");
    expect_refused("[1e400]");
    char nul[] = "[\"a\"]";
    nul[2] = '\0';
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pos_canon_json(nul, 5, NULL, &out, &len), -EBADMSG);
    /* Two top-level "sig" members: which one would count? */
    assert_int_equal(pos_canon_json("{\"sig\":\"a\",\"sig\":\"b\"}", 21, "sig", &out, &len),
                     -EBADMSG);
}

static void load_keys(pos_sign_keys_t *k, const char *text)
{
    char why[128];
    assert_int_equal(pos_sign_keys_parse(text, strlen(text), k, why, sizeof(why)), 0);
}

static void test_worked_example(void **state)
{
    pos_sign_keys_t k;
    char hex[POS_SIGN_HEX_LEN + 1];
    (void)state;

    char *c = canon(EX_MSG);
    assert_non_null(c);
    assert_string_equal(c, EX_CANON);
    load_keys(&k, EX_KEY "\n");
    assert_int_equal(pos_sign_hmac_hex(&k.key[0], c, strlen(c), hex), 0);
    assert_string_equal(hex, EX_SIG);
    free(c);

    /* Signing the message adds exactly that "sig", and it verifies. */
    char out[1024];
    int n = pos_sign_append(&k, EX_MSG, strlen(EX_MSG), out, sizeof(out));
    assert_int_equal(n, (int)(strlen(EX_MSG) + POS_SIGN_APPEND));
    assert_memory_equal(out, EX_MSG, strlen(EX_MSG) - 1);
    assert_string_equal(out + strlen(EX_MSG) - 1, ",\"sig\":\"" EX_SIG "\"}");
    assert_int_equal(pos_sign_verify(&k, out, (size_t)n, 1764412800000ull, 60000), POS_SIGN_OK);
    pos_sign_keys_wipe(&k);
    assert_int_equal(k.count, 0);
}

/* The docs quote the example's key, canonical form and signature. */
static void test_worked_example_in_docs(void **state)
{
    (void)state;
    FILE *f = fopen(POS_SOURCE_DIR "/docs/signing.md", "r");
    assert_non_null(f);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    assert_non_null(strstr(doc, EX_KEY));
    assert_non_null(strstr(doc, EX_MSG));
    assert_non_null(strstr(doc, EX_CANON));
    assert_non_null(strstr(doc, EX_SIG));
}

/* Cross-check with an independent HMAC implementation when there is one. */
static void test_worked_example_openssl(void **state)
{
    (void)state;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        skip();
    }
    FILE *p = popen("printf '%s' '" EX_CANON
                    "' | openssl dgst -sha256 -mac HMAC -macopt hexkey:" EX_KEY " 2>/dev/null",
                    "r");
    assert_non_null(p);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    assert_non_null(strstr(line, EX_SIG));
}

static void test_ct_equal(void **state)
{
    (void)state;
    unsigned char a[32], b[32];
    memset(a, 7, sizeof(a));
    memcpy(b, a, sizeof(b));
    assert_true(pos_sign_ct_equal(a, b, sizeof(a)));
    for (size_t i = 0; i < sizeof(a); i++) {
        b[i] ^= 0x80;
        assert_false(pos_sign_ct_equal(a, b, sizeof(a)));
        b[i] ^= 0x80;
    }
    b[31] ^= 1;
    assert_false(pos_sign_ct_equal(a, b, sizeof(a)));
    assert_true(pos_sign_ct_equal(a, b, 31));
    assert_true(pos_sign_ct_equal(a, b, 0));
}

static void test_keys_parse(void **state)
{
    pos_sign_keys_t k;
    char why[128];
    (void)state;

    load_keys(&k, "# current\n" EX_KEY "\r\n\n  " KEY2 "  \n");
    assert_int_equal(k.count, 2);
    assert_int_equal(k.key[0].len, 32);
    assert_int_equal(k.key[0].bytes[31], 0x1f);
    assert_int_equal(k.key[1].bytes[0], 0xff);
    /* 64 bytes (128 digits) is the longest. */
    load_keys(&k, EX_KEY EX_KEY);
    assert_int_equal(k.count, 1);
    assert_int_equal(k.key[0].len, 64);
    load_keys(&k, "ABCDEF0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d");
    assert_int_equal(k.key[0].bytes[0], 0xab);

    static const char *const bad[] = {
        "",
        "\n# only a comment\n",
        "0001020304",       /* too short (5 bytes) */
        EX_KEY "0",         /* odd digit count */
        EX_KEY EX_KEY "00", /* 65 bytes */
        "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        EX_KEY "\n" KEY2 "\n" EX_KEY "\n", /* three keys */
        "key = " EX_KEY,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(why, 0, sizeof(why));
        assert_int_equal(pos_sign_keys_parse(bad[i], strlen(bad[i]), &k, why, sizeof(why)),
                         -EINVAL);
        assert_int_equal(k.count, 0);
        assert_true(why[0] != '\0');
        /* The reason never quotes the file. */
        assert_null(strstr(why, "0001"));
    }
}

static void test_keys_load(void **state)
{
    pos_sign_keys_t k;
    char path[] = "/tmp/posagent-sign-XXXXXX";
    char why[256];
    (void)state;

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, EX_KEY "\n", 65), 65);
    close(fd);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(pos_sign_keys_load(path, &k, why, sizeof(why)), 0);
    assert_int_equal(k.count, 1);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(pos_sign_keys_load(path, &k, why, sizeof(why)), 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(pos_sign_keys_load(path, &k, why, sizeof(why)), -EPERM);
    assert_non_null(strstr(why, "chmod 600"));
    assert_null(strstr(why, "000102"));
    assert_int_equal(k.count, 0);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(pos_sign_keys_load(path, &k, why, sizeof(why)), -EPERM);
    unlink(path);
    assert_int_equal(pos_sign_keys_load(path, &k, why, sizeof(why)), -ENOENT);
    assert_int_equal(pos_sign_keys_load("/tmp", &k, why, sizeof(why)) < 0, 1);
}

/* A message signed with key, at ts (or without ts when ts is 0). */
static int signed_msg(const pos_sign_keys_t *k, const char *amount, uint64_t ts, char *out,
                      size_t len)
{
    char json[512];
    if (ts != 0) {
        snprintf(json, sizeof(json),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":%s,"
                 "\"currency\":\"EUR\",\"ts\":%llu}",
                 amount, (unsigned long long)ts);
    } else {
        snprintf(json, sizeof(json),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":%s,"
                 "\"currency\":\"EUR\"}",
                 amount);
    }
    return pos_sign_append(k, json, strlen(json), out, len);
}

static void test_verify(void **state)
{
    pos_sign_keys_t cur, both, other;
    char m[1024], t[1024];
    const uint64_t now = 1764412800000ull;
    (void)state;

    load_keys(&cur, EX_KEY);
    load_keys(&other, KEY2);
    load_keys(&both, KEY2 "\n" EX_KEY "\n");

    int n = signed_msg(&cur, "12.34", now, m, sizeof(m));
    assert_true(n > 0);
    assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now, 60000), POS_SIGN_OK);
    /* Rotation: the second key of a pair is accepted too. */
    assert_int_equal(pos_sign_verify(&both, m, (size_t)n, now, 60000), POS_SIGN_OK);
    assert_int_equal(pos_sign_verify(&other, m, (size_t)n, now, 60000), POS_SIGN_BAD);
    /* Whitespace and member order do not matter; values do. */
    assert_int_equal(
        pos_sign_verify(&cur, t, (size_t)snprintf(t, sizeof(t), " %s ", m), now, 60000),
        POS_SIGN_OK);
    /* The window, both ways, inclusive. */
    assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now + 60000, 60000), POS_SIGN_OK);
    assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now - 60000, 60000), POS_SIGN_OK);
    assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now + 60001, 60000), POS_SIGN_STALE);
    assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now - 60001, 60000), POS_SIGN_STALE);

    /* Tampered amount (12.34 -> 99.34). */
    memcpy(t, m, (size_t)n + 1);
    char *a = strstr(t, "12.34");
    assert_non_null(a);
    a[0] = '9', a[1] = '9';
    assert_int_equal(pos_sign_verify(&cur, t, (size_t)n, now, 60000), POS_SIGN_BAD);
    /* The same number written differently is the same message. */
    memcpy(t, m, (size_t)n + 1);
    a = strstr(t, "12.34");
    char u[1024];
    snprintf(u, sizeof(u), "%.*s12.340%s", (int)(a - t), t, a + 5);
    assert_int_equal(pos_sign_verify(&cur, u, strlen(u), now, 60000), POS_SIGN_OK);

    /* No sig at all. */
    static const char unsigned_msg[] =
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"tx-9\",\"amount\":1,"
        "\"currency\":\"EUR\",\"ts\":1764412800000}";
    assert_int_equal(pos_sign_verify(&cur, unsigned_msg, strlen(unsigned_msg), now, 60000),
                     POS_SIGN_UNSIGNED);
    assert_int_equal(pos_sign_verify(&cur, "nope", 4, now, 60000), POS_SIGN_UNSIGNED);
    /* What JCS cannot take (an escaped NUL) is a bad signature when signed. */
    static const char nul_signed[] =
        "{\"ts\":1764412800000,\"x\":\"a\\u0000\",\"sig\":\"" EX_SIG "\"}";
    assert_int_equal(pos_sign_verify(&cur, nul_signed, strlen(nul_signed), now, 60000),
                     POS_SIGN_BAD);
    static const char nul_unsigned[] = "{\"ts\":1764412800000,\"x\":\"a\\u0000\"}";
    assert_int_equal(pos_sign_verify(&cur, nul_unsigned, strlen(nul_unsigned), now, 60000),
                     POS_SIGN_UNSIGNED);
    /* Malformed sig values. */
    static const char *const badsig[] = {
        "{\"ts\":1764412800000,\"sig\":\"\"}",
        "{\"ts\":1764412800000,\"sig\":12}",
        "{\"ts\":1764412800000,\"sig\":\"zz\"}",
        "{\"ts\":1764412800000,\"sig\":\"" EX_SIG "00\"}",
        "{\"ts\":1764412800000,\"sig\":\"" EX_SIG "\"}",
    };
    for (size_t i = 0; i < sizeof(badsig) / sizeof(badsig[0]); i++) {
        assert_int_equal(pos_sign_verify(&cur, badsig[i], strlen(badsig[i]), now, 60000),
                         POS_SIGN_BAD);
    }
    /* A good signature without a usable ts is stale. */
    n = signed_msg(&cur, "1", 0, m, sizeof(m));
    assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now, 60000), POS_SIGN_STALE);
    static const char *const badts[] = {"{\"ts\":\"1764412800000\"}", "{\"ts\":1764412800000.5}",
                                        "{\"ts\":-1}", "{\"ts\":null}"};
    for (size_t i = 0; i < sizeof(badts) / sizeof(badts[0]); i++) {
        n = pos_sign_append(&cur, badts[i], strlen(badts[i]), m, sizeof(m));
        assert_true(n > 0);
        assert_int_equal(pos_sign_verify(&cur, m, (size_t)n, now, 60000), POS_SIGN_STALE);
    }

    assert_string_equal(pos_sign_verdict_reason(POS_SIGN_UNSIGNED), "unsigned");
    assert_string_equal(pos_sign_verdict_reason(POS_SIGN_BAD), "bad_signature");
    assert_string_equal(pos_sign_verdict_reason(POS_SIGN_STALE), "stale");
    pos_sign_keys_wipe(&cur);
    pos_sign_keys_wipe(&other);
    pos_sign_keys_wipe(&both);
}

static void test_append(void **state)
{
    pos_sign_keys_t k, none;
    char out[256];
    (void)state;

    load_keys(&k, EX_KEY);
    memset(&none, 0, sizeof(none));
    /* An empty object gets no comma; trailing whitespace goes. */
    int n = pos_sign_append(&k, "{ }\n", 4, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(strncmp(out, "{ \"sig\":\"", 9), 0);
    assert_int_equal(pos_sign_verify(&k, out, (size_t)n, 0, 0), POS_SIGN_STALE);
    assert_int_equal(pos_sign_append(&none, "{}", 2, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_sign_append(&k, "[1]", 3, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_sign_append(&k, "{\"sig\":\"a\"}", 11, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_sign_append(&k, "{\"a\":1,\"a\":1}", 13, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_sign_append(&k, "{\"a\":1}", 7, out, 70), -ENOSPC);
    pos_sign_keys_wipe(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_numbers_shortest_digits),
        cmocka_unit_test(test_canon_order_and_nesting),
        cmocka_unit_test(test_canon_rfc8785_example),
        cmocka_unit_test(test_canon_strings),
        cmocka_unit_test(test_canon_refused),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_worked_example_in_docs),
        cmocka_unit_test(test_worked_example_openssl),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_keys_parse),
        cmocka_unit_test(test_keys_load),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_append),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
