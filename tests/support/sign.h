#ifndef TESTS_SUPPORT_SIGN_H
#define TESTS_SUPPORT_SIGN_H

/*
 * The cloud's side of signed messages in tests (docs/signing.md): HMAC-
 * SHA256 computed here with mbedTLS, independently of the agent's code,
 * over text the test writes in canonical form already (members sorted, no
 * blanks), so the signed bytes are the text itself. Failures fail the
 * running cmocka test.
 *
 * And the fixture of the tests that give the agent a key file: the shared
 * fixture (tests/support/fixture.h), a private directory for the key file,
 * and the check, at teardown, that no key ever reached the agent's log.
 */

#include <stddef.h>
#include <sys/types.h>

#include "tests/support/fixture.h"

/* HMAC-SHA256 under key_hex (the key file's line: 64 hex digits) of data,
 * as 64 lowercase hex digits and a NUL. */
void pos_test_hmac_hex(const char *key_hex, const char *data, char hex[65]);

/* Appends ,"sig":"<HMAC of the text under key_hex>" to the JSON object in
 * msg (len: its buffer's size). */
void pos_test_sign(char *msg, size_t len, const char *key_hex);

#define POS_FIX_SIGNED_SECRETS 4

typedef struct pos_fix_signed {
    pos_fix_t fx;
    char dir[64];  /* a private directory (the key file, the test's own files) */
    char key[128]; /* DIR/hmac.key: where pos_fix_signed_key writes */
    /* The keys (hex) that must never appear in the agent's log, NULL-terminated. */
    const char *secrets[POS_FIX_SIGNED_SECRETS];
} pos_fix_signed_t;

/*
 * pos_fix_start (Redis runs, the agent not yet), then a fresh directory
 * /tmp/posagent-<name>-XXXXXX. secrets: NULL-terminated, at most
 * POS_FIX_SIGNED_SECRETS - 1 strings that must outlive f. Returns 0, or
 * -1 with nothing left running.
 */
int pos_fix_signed_start(pos_fix_signed_t *f, const char *name, const char *const *secrets);

/*
 * Stops what runs (pos_fix_stop) and removes the directory. Returns 0, or
 * -1 after saying why when the agent was started and its log holds one of
 * the secrets (or cannot be read): a cmocka teardown returns it, which
 * fails the test.
 */
int pos_fix_signed_stop(pos_fix_signed_t *f);

/* Writes text to the key file (f->key) with the given mode (the agent
 * refuses a key file that others may read); fails the running test if it
 * cannot. */
void pos_fix_signed_key(const pos_fix_signed_t *f, const char *text, mode_t mode);

#endif /* TESTS_SUPPORT_SIGN_H */
