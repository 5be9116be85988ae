#ifndef CONF_SCHEMA_H
#define CONF_SCHEMA_H

/*
 * Private to conf/: the configuration schema. One table of rows
 * (pos_schema_items[], conf/schema.c) drives everything: the inih handler,
 * the defaults, range and format checks, environment overrides, the dump
 * (conf/config.c), the example file and the Markdown reference
 * (conf/config_doc.c). A new section is a row in pos_schema_sections[]
 * plus one row per key in pos_schema_items[]; conf/schema_value.c reads
 * and writes a row's field in pos_config_t.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

typedef enum pos_schema_type {
    CT_STR,  /* char[size]; length min..max; optional check callback */
    CT_U32,  /* uint32_t; min..max */
    CT_INT,  /* int; min..max; -1 when the row has no default ("not set") */
    CT_BOOL, /* bool; true/false/yes/no/on/off/1/0 */
    CT_ENUM, /* int; names through enum_parse/enum_name */
} pos_schema_type_t;

enum {
    F_REQUIRED = 1u << 0, /* a string that must be non-empty after file and environment */
    F_SECRET = 1u << 1,   /* masked in the dump, never quoted in errors */
    F_NOECHO = 1u << 2,   /* never quoted in errors (may embed a secret) */
    F_URL = 1u << 3,      /* dumped through pos_redis_url_format_masked() */
    F_RELOAD = 1u << 4,   /* applied by a running agent on SIGHUP; else at the next start */
};

/* Checks a string value; writes the problem (without the value) into why. */
typedef int (*pos_schema_check_fn)(const char *value, char *why, size_t whylen);

/*
 * The documents' text (descriptions, examples, how a missing default reads):
 * only the writers in conf/config_doc.c read it, in posagent-tools. The
 * daemon compiles this table with POS_SCHEMA_NO_DOCS (agent/CMakeLists.txt),
 * where it is NULL: 10 KB it never shows (docs/footprint.md). What errors
 * and --check-config print (key, allowed, def) stays.
 */
#ifdef POS_SCHEMA_NO_DOCS
#define POS_DOC(text) NULL
#else
#define POS_DOC(text) text
#endif

/* The sections, in file order: an index into pos_schema_sections. */
typedef enum pos_schema_sec {
    POS_SEC_TERMINAL,
    POS_SEC_REDIS,
    POS_SEC_TLS,
    POS_SEC_HEARTBEAT,
    POS_SEC_HAL,
    POS_SEC_PAYMENT,
    POS_SEC_STORE,
    POS_SEC_CACHE,
    POS_SEC_LOCAL,
    POS_SEC_INBOUND,
    POS_SEC_METRICS,
    POS_SEC_LOG,
    POS_SEC_SECURITY,
} pos_schema_sec_t;

#define POS_SCHEMA_NAME_MAX 10 /* bytes of a section's name with its NUL */
#define POS_SCHEMA_KEY_MAX  21 /* bytes of a key with its NUL */

typedef struct pos_schema_item {
    /* Pointers first, the small numbers last, and the names in the row:
     * every pointer here is relocated data in the daemon (24 bytes of
     * relocation each on aarch64, docs/footprint.md), and the names are
     * short and in every row. */
    const char *def;           /* default, as it would be written in the file; NULL: none */
    const char *env;           /* environment variable, or NULL */
    pos_schema_check_fn check; /* CT_STR: extra validation, or NULL */
    int (*enum_parse)(const char *name);
    const char *(*enum_name)(int value);
    const char *allowed; /* text for the docs and errors; NULL: "min..max" */
    const char *def_doc; /* how to describe a NULL default; POS_DOC */
    const char *example; /* value shown in the example file when def is NULL; POS_DOC */
    const char *desc;    /* one sentence or two; POS_DOC */
    long long min, max;  /* numbers: range; strings: length in bytes */
    uint16_t offset;     /* of the field in pos_config_t */
    uint16_t size;       /* of the field */
    uint16_t set_offset; /* of a bool "was set" field, or 0 for none */
    uint8_t type;        /* pos_schema_type_t */
    uint8_t flags;       /* F_* */
    uint8_t sec;         /* pos_schema_sec_t: its section (pos_schema_section_of) */
    char key[POS_SCHEMA_KEY_MAX];
} pos_schema_item_t;

/* offset, size and set_offset are 16 bits. */
_Static_assert(sizeof(pos_config_t) <= UINT16_MAX, "pos_config_t outgrew the schema's offsets");

typedef struct pos_schema_section {
    char name[POS_SCHEMA_NAME_MAX];
    const char *desc; /* POS_DOC */
} pos_schema_section_t;

/* The sections in file order, and the rows grouped by section in the same order. */
extern const pos_schema_section_t pos_schema_sections[];
extern const size_t pos_schema_nsections;
extern const pos_schema_item_t pos_schema_items[];
extern const size_t pos_schema_nitems;

/* The name of an item's section. */
static inline const char *pos_schema_section_of(const pos_schema_item_t *it)
{
    return pos_schema_sections[it->sec].name;
}

/* ---- lookups (conf/schema.c) ---- */

/* The section called name, or NULL. */
const pos_schema_section_t *pos_schema_find_section(const char *name);

/* Index in pos_schema_items[] of [section] key, or -1. */
int pos_schema_find_item(const char *section, const char *key);

/* Writes "terminal, redis, ..." (all section names) into buf[0..len). */
void pos_schema_list_sections(char *buf, size_t len);

/* Writes the keys of section, comma-separated, into buf[0..len). */
void pos_schema_list_keys(const char *section, char *buf, size_t len);

/* The row's allowed values as text: its "allowed", else "min..max" written
 * into buf[0..len). Returns one of the two. */
const char *pos_schema_allowed(const pos_schema_item_t *it, char *buf, size_t len);

/* ---- values (conf/schema_value.c) ---- */

/*
 * Validates "value" (file syntax) against the row and stores it in cfg,
 * marking it set. Returns 0, or a negative errno with the problem (never
 * the value) in why[0..whylen); cfg is then unchanged.
 */
int pos_schema_set(pos_config_t *cfg, const pos_schema_item_t *it, const char *value, char *why,
                   size_t whylen);

/* Stores the row's built-in default in cfg (-1 for a CT_INT row without
 * one); cfg must have been zeroed. */
void pos_schema_set_default(pos_config_t *cfg, const pos_schema_item_t *it);

/* Formats the row's current value in cfg into buf[0..len) for the dump,
 * secrets masked. Returns buf. */
const char *pos_schema_format(const pos_config_t *cfg, const pos_schema_item_t *it, char *buf,
                              size_t len);

/* True when the row holds a value in cfg (a row without default may be
 * "not set"). */
bool pos_schema_is_set(const pos_config_t *cfg, const pos_schema_item_t *it);

/* ---- comparing rows (conf/schema_value.c) ---- */

/* True when the row's value (or its "was set") differs between a and b. */
bool pos_schema_differs(const pos_config_t *a, const pos_config_t *b, const pos_schema_item_t *it);

/* Copies the row's value (and its "was set") from src into dst. */
void pos_schema_copy(pos_config_t *dst, const pos_config_t *src, const pos_schema_item_t *it);

#endif /* CONF_SCHEMA_H */
