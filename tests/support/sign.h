#ifndef TESTS_SUPPORT_SIGN_H
#define TESTS_SUPPORT_SIGN_H

/*
 * The cloud's side of signed messages in tests (docs/signing.md): HMAC-
 * SHA256 computed here with mbedTLS, independently of the agent's code,
 * over text the test writes in canonical form already (members sorted, no
 * blanks), so the signed bytes are the text itself. Failures fail the
 * running cmocka test.
 */

#include <stddef.h>

/* Wall-clock time in Unix epoch milliseconds, for a message's "ts". */
unsigned long long pos_test_wall_ms(void);

/* HMAC-SHA256 under key_hex (the key file's line: 64 hex digits) of data,
 * as 64 lowercase hex digits and a NUL. */
void pos_test_hmac_hex(const char *key_hex, const char *data, char hex[65]);

/* Appends ,"sig":"<HMAC of the text under key_hex>" to the JSON object in
 * msg (len: its buffer's size). */
void pos_test_sign(char *msg, size_t len, const char *key_hex);

#endif /* TESTS_SUPPORT_SIGN_H */
