#include "tests/support/sign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <mbedtls/md.h>

unsigned long long pos_test_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

static void key_bytes(const char *hex, unsigned char out[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

void pos_test_hmac_hex(const char *key_hex, const char *data, char hex[65])
{
    unsigned char key[32], mac[32];
    key_bytes(key_hex, key);
    assert_int_equal(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, 32,
                                     (const unsigned char *)data, strlen(data), mac),
                     0);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
}

void pos_test_sign(char *msg, size_t len, const char *key_hex)
{
    char hex[65];
    pos_test_hmac_hex(key_hex, msg, hex);
    size_t n = strlen(msg);
    assert_true(n + 80 < len);
    snprintf(msg + n - 1, len - (n - 1), ",\"sig\":\"%s\"}", hex);
}
