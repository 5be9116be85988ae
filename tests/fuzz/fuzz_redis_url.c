/*
 * Fuzz target for pos_redis_url_parse() and pos_redis_url_format_masked().
 * Besides memory safety it checks: errors are one non-empty line; a parsed
 * URL is in range; the masked form never carries the password and parses
 * back to the same endpoint.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/redis_url.h"
#include "tests/support/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char url[4096];
    pos_redis_url_t u, back;
    char err[256], masked[1024];

    if (size >= sizeof(url)) {
        return 0;
    }
    memcpy(url, data, size);
    url[size] = '\0';

    if (pos_redis_url_parse(url, &u, err, sizeof(err)) != 0) {
        POS_FUZZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        POS_FUZZ_CHECK(u.password[0] == '\0' && u.host[0] == '\0');
        return 0;
    }
    POS_FUZZ_CHECK(err[0] == '\0');
    POS_FUZZ_CHECK(u.host[0] != '\0' && strlen(u.host) < sizeof(u.host));
    POS_FUZZ_CHECK(u.port >= 1);
    POS_FUZZ_CHECK(u.db >= -1 && u.db <= 1023);
    POS_FUZZ_CHECK(strlen(u.user) < sizeof(u.user) && strlen(u.password) < sizeof(u.password));

    int n = pos_redis_url_format_masked(&u, masked, sizeof(masked));
    POS_FUZZ_CHECK(n > 0 && (size_t)n == strlen(masked));
    POS_FUZZ_CHECK(pos_redis_url_format_masked(&u, NULL, 0) == n);
    if (u.password[0] != '\0') {
        POS_FUZZ_CHECK(strstr(masked, ":****@") != NULL);
    }
    if (u.user[0] != '\0' && u.password[0] == '\0') {
        return 0; /* "user@host" is refused on purpose */
    }
    POS_FUZZ_CHECK(pos_redis_url_parse(masked, &back, err, sizeof(err)) == 0);
    POS_FUZZ_CHECK(back.tls == u.tls && back.port == u.port && back.db == u.db);
    POS_FUZZ_CHECK(strcmp(back.host, u.host) == 0 && strcmp(back.user, u.user) == 0);
    POS_FUZZ_CHECK(strcmp(back.password, u.password[0] != '\0' ? "****" : "") == 0);
    return 0;
}
