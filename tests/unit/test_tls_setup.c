/*
 * agent/link/tls.c without a network (the end-to-end tests are
 * tests/integration/test_tls.c): the verify-flag wording, and what
 * pos_tls_init() says about bad settings and files (no I/O beyond reading
 * the files it is given).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/link/tls.h"

static void test_verify_reason(void **state)
{
    (void)state;
    char buf[256];

    assert_string_equal(pos_tls_verify_reason(MBEDTLS_X509_BADCERT_EXPIRED, buf, sizeof(buf)),
                        "certificate expired");
    assert_string_equal(pos_tls_verify_reason(MBEDTLS_X509_BADCERT_NOT_TRUSTED, buf, sizeof(buf)),
                        "unknown CA (not signed by a CA in [tls] ca_file)");
    assert_string_equal(pos_tls_verify_reason(MBEDTLS_X509_BADCERT_CN_MISMATCH, buf, sizeof(buf)),
                        "name mismatch (not issued for [tls] server_name)");
    /* Several at once, in a fixed order; unknown bits in hex. */
    pos_tls_verify_reason(MBEDTLS_X509_BADCERT_CN_MISMATCH | MBEDTLS_X509_BADCERT_EXPIRED, buf,
                          sizeof(buf));
    assert_string_equal(buf, "certificate expired, name mismatch (not issued for [tls] "
                             "server_name)");
    pos_tls_verify_reason(0x40000000u, buf, sizeof(buf));
    assert_string_equal(buf, "flags 0x40000000");
    assert_string_equal(pos_tls_verify_reason(0, buf, sizeof(buf)), "unknown reason");
    /* A short buffer is truncated, never overrun. */
    char tiny[8];
    pos_tls_verify_reason(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_NOT_TRUSTED, tiny,
                          sizeof(tiny));
    assert_true(strlen(tiny) < sizeof(tiny));
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/test_tls-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void expect_init_error(const pos_tls_options_t *o, int rc, const char *want)
{
    pos_tls_t t;
    char why[512] = "";
    assert_int_equal(pos_tls_init(&t, o, why, sizeof(why)), rc);
    if (strstr(why, want) == NULL) {
        fail_msg("\"%s\" lacks \"%s\"", why, want);
    }
    assert_false(t.ready);
    pos_tls_dispose(&t); /* harmless after a failed init */
}

static void test_init_errors(void **state)
{
    (void)state;
    char *garbage = write_tmp("-----BEGIN CERTIFICATE-----\nnot base64\n"
                              "-----END CERTIFICATE-----\n");
    pos_tls_options_t o = {.ca_file = garbage, .server_name = "localhost"};

    expect_init_error(&o, -EINVAL, "[tls] ca_file: cannot load ");

    o.ca_file = "";
    expect_init_error(&o, -EINVAL, "[tls] ca_file is required");
    o.ca_file = "/nonexistent/ca.pem";
    expect_init_error(&o, -EINVAL, "[tls] ca_file: cannot load /nonexistent/ca.pem");

    o.ca_file = garbage;
    o.server_name = "";
    expect_init_error(&o, -EINVAL, "[tls] server_name");

    o.server_name = "localhost";
    o.cert_file = garbage;
    expect_init_error(&o, -EINVAL, "[tls] cert_file is set but key_file is not");
    o.cert_file = NULL;
    o.key_file = garbage;
    expect_init_error(&o, -EINVAL, "[tls] key_file is set but cert_file is not");

    unlink(garbage);
    free(garbage);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_reason),
        cmocka_unit_test(test_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
