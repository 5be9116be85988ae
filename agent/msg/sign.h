#ifndef AGENT_MSG_SIGN_H
#define AGENT_MSG_SIGN_H

/*
 * Signed messages (docs/signing.md).
 *
 * A message's signature is "sig": lowercase hex of HMAC-SHA256(key, C),
 * where C is the RFC 8785 (JCS) canonical form of the message object
 * without its "sig" member: members sorted by key (UTF-16 code units), no
 * whitespace, strings escaped minimally, numbers as ECMAScript writes them.
 *
 * Everything here is pure (bytes and time in, bytes out) except
 * pos_sign_keys_load(), which reads the key file.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_SIGN_KEY_MIN  32   /* bytes of a key (64 hex digits) */
#define POS_SIGN_KEY_MAX  64   /* bytes of a key (128 hex digits): SHA-256's block */
#define POS_SIGN_KEYS_MAX 2    /* current key, plus one more during a rotation */
#define POS_SIGN_HEX_LEN  64   /* hex digits of a signature */
#define POS_SIGN_FILE_MAX 4096 /* bytes of a key file */
#define POS_SIGN_APPEND   (sizeof(",\"sig\":\"\"") - 1 + POS_SIGN_HEX_LEN) /* growth */

/* ---- keys ------------------------------------------------------------------ */

typedef struct pos_sign_key {
    unsigned char bytes[POS_SIGN_KEY_MAX];
    size_t len; /* POS_SIGN_KEY_MIN..POS_SIGN_KEY_MAX */
} pos_sign_key_t;

/* key[0] signs what the agent sends; every key is accepted on receipt.
 * count 0: signing is off. */
typedef struct pos_sign_keys {
    size_t count;
    pos_sign_key_t key[POS_SIGN_KEYS_MAX];
} pos_sign_keys_t;

/*
 * Parses a key file's text: one or two lines of 64..128 hex digits (32..64
 * bytes), the first being the current key. Blank lines and lines starting
 * with '#' are skipped; spaces and a CR at the ends of a line are ignored.
 * Returns 0, or -EINVAL with "why" set (never quoting the text).
 */
int pos_sign_keys_parse(const char *text, size_t len, pos_sign_keys_t *keys, char *why,
                        size_t whylen);

/*
 * Reads and parses the key file at "path". Refuses a file that is not a
 * regular file or that its group or others may read or write (mode & 077).
 * Returns 0, or a negative errno with "why" set (the path, never the key).
 */
int pos_sign_keys_load(const char *path, pos_sign_keys_t *keys, char *why, size_t whylen);

/* Overwrites the key material with zeros (mbedtls_platform_zeroize). */
void pos_sign_keys_wipe(pos_sign_keys_t *keys);

/* ---- signing and checking --------------------------------------------------- */

/* Constant-time comparison of len bytes: true when equal. */
bool pos_sign_ct_equal(const void *a, const void *b, size_t len);

/*
 * HMAC-SHA256(key, data) as 64 lowercase hex digits plus NUL in hex.
 * Returns 0 or -EINVAL.
 */
int pos_sign_hmac_hex(const pos_sign_key_t *key, const void *data, size_t len,
                      char hex[POS_SIGN_HEX_LEN + 1]);

/*
 * Signs the JSON object json[0..len) with keys->key[0]: writes it into out
 * with ,"sig":"<hex>" added as its last member (the other bytes are kept
 * as they are). out needs len + POS_SIGN_APPEND + 1 bytes.
 * Returns the new length, -EINVAL (no key, not an object, a "sig" already
 * there, not canonicalizable), -ENOSPC, -ENOMEM.
 */
int pos_sign_append(const pos_sign_keys_t *keys, const char *json, size_t len, char *out,
                    size_t outlen);

typedef enum pos_sign_verdict {
    POS_SIGN_OK = 0,
    POS_SIGN_UNSIGNED, /* no "sig" member (or not a JSON object at all) */
    POS_SIGN_BAD,      /* "sig" does not match under any key, or is malformed */
    POS_SIGN_STALE,    /* signature good, but "ts" missing or outside the window */
} pos_sign_verdict_t;

/*
 * Checks the message json[0..len): its "sig" against every key, then its
 * "ts" (epoch ms) against now_ms: |now_ms - ts| <= window_ms.
 */
pos_sign_verdict_t pos_sign_verify(const pos_sign_keys_t *keys, const char *json, size_t len,
                                   uint64_t now_ms, uint64_t window_ms);

/* The PAYMENT_REJECTED reason for a verdict: "unsigned", "bad_signature",
 * "stale"; "" for POS_SIGN_OK. */
const char *pos_sign_verdict_reason(pos_sign_verdict_t v);

#endif /* AGENT_MSG_SIGN_H */
