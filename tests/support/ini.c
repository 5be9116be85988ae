#include "tests/support/ini.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A test asked for more than the fixed sizes hold: stop, say what. */
static void too_big(const char *what, const char *section, const char *key)
{
    fprintf(stderr, "pos_ini: %s: [%s] %s\n", what, section, key != NULL ? key : "");
    abort();
}

static void copy_name(char *dst, size_t cap, const char *src, const char *what, const char *section,
                      const char *key)
{
    if (strlen(src) >= cap) {
        too_big(what, section, key);
    }
    memcpy(dst, src, strlen(src) + 1);
}

void pos_ini_init(pos_ini_t *ini)
{
    memset(ini, 0, sizeof(*ini));
}

static pos_ini_entry_t *find(pos_ini_t *ini, const char *section, const char *key)
{
    for (size_t i = 0; i < ini->n; i++) {
        if (strcmp(ini->entry[i].section, section) == 0 && strcmp(ini->entry[i].key, key) == 0) {
            return &ini->entry[i];
        }
    }
    return NULL;
}

static pos_ini_entry_t *add(pos_ini_t *ini, const char *section, const char *key)
{
    pos_ini_entry_t *e = find(ini, section, key);

    if (e != NULL) {
        return e;
    }
    if (ini->n == POS_INI_MAX_ENTRIES) {
        too_big("too many keys", section, key);
    }
    e = &ini->entry[ini->n++];
    memset(e, 0, sizeof(*e));
    copy_name(e->section, sizeof(e->section), section, "section name too long", section, key);
    copy_name(e->key, sizeof(e->key), key, "key too long", section, key);
    return e;
}

static void set_value(pos_ini_t *ini, const char *section, const char *key, const char *fmt,
                      va_list ap)
{
    pos_ini_entry_t *e = add(ini, section, key);
    int n = vsnprintf(e->value, sizeof(e->value), fmt, ap);

    if (n < 0 || (size_t)n >= sizeof(e->value)) {
        too_big("value too long", section, key);
    }
}

void pos_ini_set(pos_ini_t *ini, const char *section, const char *key, const char *fmt, ...)
{
    va_list ap;

    if (key[0] == '\0') {
        too_big("empty key", section, key);
    }
    va_start(ap, fmt);
    set_value(ini, section, key, fmt, ap);
    va_end(ap);
}

void pos_ini_unset(pos_ini_t *ini, const char *section, const char *key)
{
    size_t k = 0;

    for (size_t i = 0; i < ini->n; i++) {
        bool drop = strcmp(ini->entry[i].section, section) == 0 &&
                    (key == NULL || strcmp(ini->entry[i].key, key) == 0);
        if (!drop) {
            ini->entry[k++] = ini->entry[i];
        }
    }
    ini->n = k;
}

const char *pos_ini_get(const pos_ini_t *ini, const char *section, const char *key)
{
    const pos_ini_entry_t *e = find((pos_ini_t *)ini, section, key);
    return e != NULL ? e->value : NULL;
}

void pos_ini_section(pos_ini_t *ini, const char *section)
{
    add(ini, section, "");
}

/* Trims blanks at both ends of [s, *end) in place; returns the new start. */
static char *trim(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s)) {
        s++;
    }
    while (end > s && isspace((unsigned char)end[-1])) {
        end--;
    }
    *end = '\0';
    return s;
}

static void set_plain(pos_ini_t *ini, const char *section, const char *key, const char *value)
{
    pos_ini_set(ini, section, key, "%s", value);
}

int pos_ini_merge(pos_ini_t *ini, const char *text)
{
    char *copy = strdup(text), *save = NULL;
    char section[POS_INI_SECTION_MAX] = "";
    int rc = 0;

    if (copy == NULL) {
        return -ENOMEM;
    }
    for (char *line = strtok_r(copy, "\n", &save); line != NULL && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        char *s = trim(line, line + strlen(line));
        char *eq = strchr(s, '=');
        if (s[0] == '\0' || s[0] == ';' || s[0] == '#') {
            continue;
        }
        if (s[0] == '[' && s[strlen(s) - 1] == ']') {
            char *name = trim(s + 1, s + strlen(s) - 1);
            copy_name(section, sizeof(section), name, "section name too long", name, NULL);
            pos_ini_section(ini, section);
        } else if (eq != NULL && section[0] != '\0' && eq != s) {
            char *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
            set_plain(ini, section, trim(s, eq), value);
        } else {
            rc = -EINVAL;
        }
    }
    free(copy);
    return rc;
}

static size_t append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t append(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + len, POS_INI_TEXT_MAX - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= POS_INI_TEXT_MAX - len) {
        too_big("configuration text too long", "", NULL);
    }
    return len + (size_t)n;
}

const char *pos_ini_text(pos_ini_t *ini)
{
    size_t len = 0;

    ini->text[0] = '\0';
    for (size_t i = 0; i < ini->n; i++) {
        const char *section = ini->entry[i].section;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = strcmp(ini->entry[k].section, section) == 0;
        }
        if (seen) {
            continue; /* rendered with its first entry */
        }
        len = append(ini->text, len, "[%s]\n", section);
        for (size_t k = i; k < ini->n; k++) {
            const pos_ini_entry_t *e = &ini->entry[k];
            if (strcmp(e->section, section) == 0 && e->key[0] != '\0') {
                len = append(ini->text, len, "%s = %s\n", e->key, e->value);
            }
        }
    }
    return ini->text;
}

int pos_ini_write(pos_ini_t *ini, const char *path)
{
    const char *text = pos_ini_text(ini);
    /* Readable by its owner only, as a configuration holding a password
     * should be (the agent refuses one its socket's group could read). */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f;
    int rc = 0;

    if (fd < 0 || fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL) {
        rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    if (fputs(text, f) == EOF) {
        rc = -EIO;
    }
    if (fclose(f) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}
