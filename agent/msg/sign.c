#include "agent/msg/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "agent/msg/canon.h"
#include "platform/hex.h"

/* ---- keys -------------------------------------------------------------------- */

static void why_set(char *why, size_t whylen, const char *msg)
{
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen, "%s", msg);
    }
}

int pos_sign_keys_parse(const char *text, size_t len, pos_sign_keys_t *keys, char *why,
                        size_t whylen)
{
    size_t i = 0;

    if (text == NULL || keys == NULL) {
        return -EINVAL;
    }
    memset(keys, 0, sizeof(*keys));
    while (i < len) {
        size_t b = i, e;
        while (i < len && text[i] != '\n') {
            i++;
        }
        e = i;
        i++; /* past the newline */
        while (b < e && (text[b] == ' ' || text[b] == '\t')) {
            b++;
        }
        while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r')) {
            e--;
        }
        if (b == e || text[b] == '#') {
            continue;
        }
        if (keys->count == POS_SIGN_KEYS_MAX) {
            why_set(why, whylen, "more than two keys");
            goto fail;
        }
        size_t digits = e - b;
        if (digits % 2 != 0 || digits < 2 * POS_SIGN_KEY_MIN || digits > 2 * POS_SIGN_KEY_MAX) {
            why_set(why, whylen, "a key must be 64 to 128 hex digits (32 to 64 bytes)");
            goto fail;
        }
        pos_sign_key_t *k = &keys->key[keys->count];
        for (size_t j = 0; j < digits; j += 2) {
            int v = pos_hex_byte(text[b + j], text[b + j + 1]);
            if (v < 0) {
                why_set(why, whylen, "a key line holds something other than hex digits");
                goto fail;
            }
            k->bytes[j / 2] = (unsigned char)v;
        }
        k->len = digits / 2;
        keys->count++;
    }
    if (keys->count == 0) {
        why_set(why, whylen, "no key in the file");
        return -EINVAL;
    }
    return 0;
fail:
    pos_sign_keys_wipe(keys);
    return -EINVAL;
}

int pos_sign_keys_load(const char *path, pos_sign_keys_t *keys, char *why, size_t whylen)
{
    char text[POS_SIGN_FILE_MAX + 1];
    char reason[128];
    struct stat st;
    size_t got = 0;
    int fd, rc;

    if (path == NULL || keys == NULL) {
        return -EINVAL;
    }
    memset(keys, 0, sizeof(*keys));
    /* O_NONBLOCK: a FIFO with no writer must be refused (not a regular
     * file), not wait for one for ever; regular files ignore it. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(why, whylen, "%s: not a regular file", path);
        goto fail_fd;
    }
    if ((st.st_mode & 077) != 0) {
        rc = -EPERM;
        snprintf(why, whylen, "%s: group or others may access it (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
        goto fail_fd;
    }
    if (st.st_size > POS_SIGN_FILE_MAX) {
        rc = -EFBIG;
        snprintf(why, whylen, "%s: larger than %d bytes", path, POS_SIGN_FILE_MAX);
        goto fail_fd;
    }
    for (;;) {
        ssize_t n = read(fd, text + got, sizeof(text) - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            snprintf(why, whylen, "%s: %s", path, strerror(errno));
            goto fail_text;
        }
        if (n == 0 || got + (size_t)n == sizeof(text) - 1) {
            got += (size_t)n;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    fd = -1;
    rc = pos_sign_keys_parse(text, got, keys, reason, sizeof(reason));
    if (rc != 0) {
        snprintf(why, whylen, "%s: %s", path, reason);
    }
    mbedtls_platform_zeroize(text, sizeof(text));
    return rc;

fail_text:
    mbedtls_platform_zeroize(text, sizeof(text));
fail_fd:
    close(fd);
    return rc;
}

void pos_sign_keys_wipe(pos_sign_keys_t *keys)
{
    if (keys != NULL) {
        mbedtls_platform_zeroize(keys, sizeof(*keys));
    }
}

/* ---- HMAC --------------------------------------------------------------------- */

bool pos_sign_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;

    for (size_t i = 0; i < len; i++) {
        diff |= (unsigned char)(x[i] ^ y[i]);
    }
    return diff == 0;
}

static int hmac_raw(const pos_sign_key_t *key, const void *data, size_t len, unsigned char mac[32])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

    if (key == NULL || key->len == 0 || md == NULL) {
        return -EINVAL;
    }
    if (mbedtls_md_hmac(md, key->bytes, key->len, data, len, mac) != 0) {
        return -EINVAL;
    }
    return 0;
}

int pos_sign_hmac_hex(const pos_sign_key_t *key, const void *data, size_t len,
                      char hex[POS_SIGN_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char mac[32];

    int rc = hmac_raw(key, data, len, mac);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < sizeof(mac); i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[POS_SIGN_HEX_LEN] = '\0';
    return 0;
}

int pos_sign_append(const pos_sign_keys_t *keys, const char *json, size_t len, char *out,
                    size_t outlen)
{
    char hex[POS_SIGN_HEX_LEN + 1];
    char *canon = NULL;
    size_t clen = 0, e = len;
    int rc;

    if (keys == NULL || keys->count == 0 || out == NULL) {
        return -EINVAL;
    }
    cJSON *root = pos_canon_parse(json, len);
    if (root == NULL || !cJSON_IsObject(root) || cJSON_GetObjectItemCaseSensitive(root, "sig")) {
        cJSON_Delete(root);
        return -EINVAL;
    }
    bool empty = root->child == NULL;
    rc = pos_canon_tree(root, NULL, &canon, &clen);
    cJSON_Delete(root);
    if (rc != 0) {
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    rc = pos_sign_hmac_hex(&keys->key[0], canon, clen, hex);
    free(canon);
    if (rc != 0) {
        return rc;
    }
    /* The object parsed, so past trailing whitespace its last byte is '}'. */
    while (e > 0 && json[e - 1] != '}') {
        e--;
    }
    size_t need = (e - 1) + (empty ? 0 : 1) + 7 + POS_SIGN_HEX_LEN + 2;
    if (need + 1 > outlen || need > INT32_MAX) {
        return -ENOSPC;
    }
    memmove(out, json, e - 1);
    snprintf(out + e - 1, outlen - (e - 1), "%s\"sig\":\"%s\"}", empty ? "" : ",", hex);
    return (int)need;
}

static bool hex_to_mac(const char *s, unsigned char mac[32])
{
    if (s == NULL || strlen(s) != POS_SIGN_HEX_LEN) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        int v = pos_hex_byte(s[2 * i], s[2 * i + 1]);
        if (v < 0) {
            return false;
        }
        mac[i] = (unsigned char)v;
    }
    return true;
}

pos_sign_verdict_t pos_sign_verify(const pos_sign_keys_t *keys, const char *json, size_t len,
                                   uint64_t now_ms, uint64_t window_ms)
{
    pos_sign_verdict_t v = POS_SIGN_BAD;
    unsigned char want[32], got[32];
    char *canon = NULL;
    size_t clen = 0;
    bool match = false;

    if (keys == NULL || keys->count == 0) {
        return POS_SIGN_BAD; /* nothing can verify */
    }
    cJSON *root = pos_canon_parse(json, len);
    if (root == NULL) {
        /* JCS cannot take it (an escaped NUL, say): signed, it is a bad
         * signature, as docs/signing.md says; unsigned stays unsigned. */
        cJSON *any = cJSON_ParseWithLength(json, len);
        v = cJSON_IsObject(any) && cJSON_GetObjectItemCaseSensitive(any, "sig") != NULL
                ? POS_SIGN_BAD
                : POS_SIGN_UNSIGNED;
        cJSON_Delete(any);
        return v;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return POS_SIGN_UNSIGNED;
    }
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(root, "sig");
    if (sig == NULL) {
        v = POS_SIGN_UNSIGNED;
        goto done;
    }
    if (!cJSON_IsString(sig) || !hex_to_mac(sig->valuestring, want) ||
        pos_canon_tree(root, "sig", &canon, &clen) != 0) {
        goto done;
    }
    /* Every key is tried, whatever the outcome, so timing does not say
     * which key (if any) matched. */
    for (size_t i = 0; i < keys->count && i < POS_SIGN_KEYS_MAX; i++) {
        if (hmac_raw(&keys->key[i], canon, clen, got) == 0 && pos_sign_ct_equal(got, want, 32)) {
            match = true;
        }
    }
    if (!match) {
        goto done;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "ts");
    v = POS_SIGN_STALE;
    if (ts != NULL && cJSON_IsNumber(ts) && ts->valuedouble >= 0 &&
        ts->valuedouble < 9007199254740992.0 &&
        ts->valuedouble == (double)(uint64_t)ts->valuedouble) {
        uint64_t t = (uint64_t)ts->valuedouble;
        uint64_t age = now_ms > t ? now_ms - t : t - now_ms;
        if (age <= window_ms) {
            v = POS_SIGN_OK;
        }
    }
done:
    mbedtls_platform_zeroize(got, sizeof(got));
    free(canon);
    cJSON_Delete(root);
    return v;
}

const char *pos_sign_verdict_reason(pos_sign_verdict_t v)
{
    switch (v) {
    case POS_SIGN_UNSIGNED:
        return "unsigned";
    case POS_SIGN_BAD:
        return "bad_signature";
    case POS_SIGN_STALE:
        return "stale";
    default:
        return "";
    }
}
