#ifndef AGENT_MSG_CANON_H
#define AGENT_MSG_CANON_H

/*
 * RFC 8785 (JCS) canonical JSON, what a signature is computed over
 * (docs/signing.md): object members sorted by their UTF-16 code units,
 * numbers as ECMAScript writes them, strings minimally escaped. Pure.
 */

#include <stddef.h>

#include <cjson/cJSON.h>

/* ---- canonical JSON (RFC 8785) ------------------------------------------- */

/*
 * Writes the finite double d as ECMAScript's Number.prototype.toString()
 * does (shortest digits that read back as d; -0 is "0"; exponent form
 * below 1e-6 and from 1e21). buf gets at most 32 bytes with the NUL.
 * Returns the length, -EINVAL for NaN or an infinity, -ENOSPC if len < 32.
 */
int pos_canon_number(double d, char *buf, size_t len);

/*
 * Canonicalizes the JSON text json[0..len) (one value, whitespace around
 * it allowed). When "omit" is not NULL and the value is an object, its
 * top-level member of that name is left out. *out gets a malloc'd,
 * NUL-terminated string (free it), *outlen its length.
 * Returns 0, -EBADMSG for text that is not JSON or not canonicalizable
 * (invalid UTF-8, an escaped NUL, a duplicated key, a number out of the
 * double range), -ENOMEM.
 */
int pos_canon_json(const char *json, size_t len, const char *omit, char **out, size_t *outlen);

/*
 * Parses exactly json[0..len) (one value, whitespace around it allowed),
 * refusing an escaped NUL (cJSON would cut the string there). Returns the
 * tree (cJSON_Delete it) or NULL.
 */
cJSON *pos_canon_parse(const char *json, size_t len);

/* Canonicalizes a parsed tree, as pos_canon_json() does its text. */
int pos_canon_tree(const cJSON *root, const char *omit, char **out, size_t *outlen);

#endif /* AGENT_MSG_CANON_H */
