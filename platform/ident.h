#ifndef PLATFORM_IDENT_H
#define PLATFORM_IDENT_H

#include <stdbool.h>
#include <string.h>

/*
 * Plain identifiers (pure; no locale): letters, digits, '.', '_' and '-',
 * the characters of terminal and store ids, and nothing JSON, a
 * Prometheus label or a log line would need escaped. The one test behind
 * the configuration's id check, the status value, the metrics labels and
 * the diagnostics request's fields.
 */

/* True when c is [A-Za-z0-9._-]. */
static inline bool pos_ident_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* True when s is non-empty and each of its characters is pos_ident_char()
 * or one of extra (NULL: none). */
static inline bool pos_ident_plain(const char *s, const char *extra)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!pos_ident_char(*s) && (extra == NULL || strchr(extra, *s) == NULL)) {
            return false;
        }
    }
    return true;
}

#endif /* PLATFORM_IDENT_H */
