#include "tests/support/sign.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <mbedtls/md.h>

#include "tests/support/fs.h"

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

int pos_fix_signed_start(pos_fix_signed_t *f, const char *name, const char *const *secrets)
{
    char prefix[64];
    int n = 0;

    if (pos_fix_start(&f->fx) != 0) {
        return -1;
    }
    snprintf(prefix, sizeof(prefix), "posagent-%s", name);
    if (pos_test_mkdtemp(f->dir, sizeof(f->dir), prefix) != 0) {
        goto fail_dir;
    }
    snprintf(f->key, sizeof(f->key), "%s/hmac.key", f->dir);
    for (; secrets != NULL && secrets[n] != NULL; n++) {
        if (n == POS_FIX_SIGNED_SECRETS - 1) {
            fprintf(stderr, "pos_fix_signed_start: more than %d secrets\n", n);
            goto fail_secrets;
        }
        f->secrets[n] = secrets[n];
    }
    f->secrets[n] = NULL;
    return 0;

fail_secrets:
    pos_test_rm_tree(f->dir);
fail_dir:
    pos_fix_stop(&f->fx);
    return -1;
}

int pos_fix_signed_stop(pos_fix_signed_t *f)
{
    bool started = f->fx.agent.pid > 0;
    char *log = started ? pos_test_agent_log_read(&f->fx.agent) : NULL;
    bool unreadable = started && log == NULL;
    int leaked = -1;

    for (int i = 0; log != NULL && f->secrets[i] != NULL && leaked < 0; i++) {
        if (strstr(log, f->secrets[i]) != NULL) {
            leaked = i;
        }
    }
    free(log);
    /* Everything stopped and removed before a failure is reported. */
    pos_fix_stop(&f->fx);
    pos_test_rm_tree(f->dir);
    if (unreadable) {
        print_error("ERROR: the agent's log could not be read\n");
        return -1;
    }
    if (leaked >= 0) {
        print_error("ERROR: a key (secret %d) reached the agent's log\n", leaked);
        return -1;
    }
    return 0;
}

void pos_fix_signed_key(const pos_fix_signed_t *f, const char *text, mode_t mode)
{
    FILE *fp = fopen(f->key, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(f->key, mode), 0);
}
