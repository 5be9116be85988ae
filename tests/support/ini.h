#ifndef TESTS_SUPPORT_INI_H
#define TESTS_SUPPORT_INI_H

/*
 * An agent configuration built in code instead of written by hand: a list
 * of (section, key, value), rendered as INI text with the sections in the
 * order they first appeared and each key where it was first set. Setting a
 * key again replaces its value in place, so a test can start from the
 * fixture's defaults and change only what it is about.
 *
 * Sizes are fixed. Going past one (too many keys, a value too long) is a
 * mistake in the test: it aborts with a message instead of truncating a
 * configuration silently.
 *
 * Tests whose point is malformed text (config parser tests, fuzz corpora)
 * write that text themselves.
 */

#include <stddef.h>

#define POS_INI_MAX_ENTRIES 64
#define POS_INI_SECTION_MAX 32
#define POS_INI_KEY_MAX     48
#define POS_INI_VALUE_MAX   512
#define POS_INI_TEXT_MAX    8192

typedef struct pos_ini_entry {
    char section[POS_INI_SECTION_MAX];
    char key[POS_INI_KEY_MAX]; /* "": only the section header (pos_ini_section) */
    char value[POS_INI_VALUE_MAX];
} pos_ini_entry_t;

typedef struct pos_ini {
    size_t n;
    pos_ini_entry_t entry[POS_INI_MAX_ENTRIES];
    char text[POS_INI_TEXT_MAX]; /* the last rendering (pos_ini_text) */
} pos_ini_t;

/* Empties the configuration. */
void pos_ini_init(pos_ini_t *ini);

/*
 * Sets [section] key to the printf-formatted value (an empty value is
 * allowed: "key ="). Replaces an earlier value of the same key in place.
 */
void pos_ini_set(pos_ini_t *ini, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Removes [section] key; with key NULL, the whole section (header included). */
void pos_ini_unset(pos_ini_t *ini, const char *section, const char *key);

/* The value of section/key, or NULL when it is not set. */
const char *pos_ini_get(const pos_ini_t *ini, const char *section, const char *key);

/* Makes sure [section] is rendered, even with no key in it. */
void pos_ini_section(pos_ini_t *ini, const char *section);

/*
 * Sets every "key = value" of an INI fragment, under the "[section]" lines
 * before it: for configuration that comes from outside the test (an
 * environment variable). Blank lines and ';' or '#' comments are skipped.
 * Returns 0, or -EINVAL for a key outside any section or a line that is
 * neither a header nor "key = value".
 */
int pos_ini_merge(pos_ini_t *ini, const char *text);

/* The configuration as INI text (valid until the next call on ini). */
const char *pos_ini_text(pos_ini_t *ini);

/* Writes the INI text to path (created or truncated). Returns 0 or -errno. */
int pos_ini_write(pos_ini_t *ini, const char *path);

#endif /* TESTS_SUPPORT_INI_H */
