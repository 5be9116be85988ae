/*
 * Fuzz target for what the Sentinel client reads from outside: the
 * [redis] sentinels list (pos_sentinel_list_parse), +switch-master messages
 * (pos_sentinel_parse_switch) and replies to SENTINEL
 * get-master-addr-by-name and ROLE, built by hiredis's reader from the
 * input bytes. Besides memory safety it checks: errors are one non-empty
 * line; every parsed address is a non-empty host with a port in 1..65535;
 * a switch is reported only for the name asked about.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agent/link/sentinel.h"
#include "conf/sentinel_list.h"
#include "tests/support/fuzz.h"

static void fuzz_list(const char *s)
{
    pos_sentinel_addr_t a[POS_SENTINEL_MAX];
    size_t n = 99;
    char err[160];

    err[0] = '\0';
    if (pos_sentinel_list_parse(s, a, POS_SENTINEL_MAX, &n, err, sizeof(err)) != 0) {
        POS_FUZZ_CHECK(n == 0 && err[0] != '\0' && strchr(err, '\n') == NULL);
        return;
    }
    POS_FUZZ_CHECK(n >= 1 && n <= POS_SENTINEL_MAX);
    for (size_t i = 0; i < n; i++) {
        POS_FUZZ_CHECK(a[i].host[0] != '\0' && a[i].port != 0);
    }
}

static void fuzz_switch(const uint8_t *data, size_t size)
{
    char host[64];
    uint16_t port = 0;
    int rc =
        pos_sentinel_parse_switch((const char *)data, size, "mymaster", host, sizeof(host), &port);
    POS_FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
    if (rc == 0) {
        POS_FUZZ_CHECK(size > 9 && memcmp(data, "mymaster ", 9) == 0);
        POS_FUZZ_CHECK(host[0] != '\0' && strlen(host) < sizeof(host) && port != 0);
        POS_FUZZ_CHECK(memchr(host, ' ', strlen(host)) == NULL);
    }
}

/* One reply to SENTINEL get-master-addr-by-name or ROLE. */
static void fuzz_reply(const redisReply *reply, void *arg)
{
    char host[POS_URL_HOST_MAX];
    uint16_t port = 0;
    int rc = pos_sentinel_parse_master_reply(reply, host, sizeof(host), &port);

    (void)arg;
    POS_FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EPROTO);
    if (rc == 0) {
        POS_FUZZ_CHECK(host[0] != '\0' && port != 0);
    }
    (void)pos_sentinel_role_is_master(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[1024];

    /* The first byte picks the parser, so one corpus covers all three. */
    if (size == 0 || size >= sizeof(s)) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        fuzz_list(s);
        break;
    case 1:
        fuzz_switch(data + 1, size - 1);
        break;
    default:
        pos_fuzz_replies(data + 1, size - 1, fuzz_reply, NULL);
        break;
    }
    return 0;
}
