#include "conf/sentinel_list.h"
#include "conf/reason.h"

#include <stdbool.h>
#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One entry, s[0..len) without surrounding blanks. The host rules are the
 * URL parser's: the entry is checked as "redis://<entry>", after refusing
 * what a URL may hold but a sentinel address may not. */
static int parse_entry(const char *s, size_t len, size_t index, uint16_t default_port,
                       pos_sentinel_addr_t *out, char *err, size_t errlen)
{
    char url[8 + POS_URL_HOST_MAX + 16];
    char why[160];
    pos_redis_url_t u;
    bool has_port;
    const char *close;

    if (len == 0) {
        return pos_reason_fail(err, errlen, "entry %zu is empty", index + 1);
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '@' || s[i] == '/' || s[i] == '?' || s[i] == '#' || is_blank(s[i])) {
            return pos_reason_fail(err, errlen, "entry %zu: only host[:port] is allowed",
                                   index + 1);
        }
    }
    if (len + 8 >= sizeof(url)) {
        return pos_reason_fail(err, errlen, "entry %zu is too long", index + 1);
    }
    memcpy(url, "redis://", 8);
    memcpy(url + 8, s, len);
    url[8 + len] = '\0';
    if (pos_redis_url_parse(url, &u, why, sizeof(why)) != 0) {
        return pos_reason_fail(err, errlen, "entry %zu: %s", index + 1, why);
    }
    /* The URL parser defaults to 6379; a sentinel listens on 26379. */
    if (s[0] == '[') {
        close = memchr(s, ']', len);
        has_port = close != NULL && close + 1 < s + len && close[1] == ':';
    } else {
        has_port = memchr(s, ':', len) != NULL;
    }
    memcpy(out->host, u.host, sizeof(out->host));
    out->port = has_port ? u.port : default_port;
    return 0;
}

int pos_sentinel_list_parse(const char *list, pos_sentinel_addr_t *out, size_t max, size_t *n,
                            char *err, size_t errlen)
{
    return pos_addr_list_parse(list, POS_SENTINEL_DEFAULT_PORT, "sentinel", out, max, n, err,
                               errlen);
}

int pos_addr_list_parse(const char *list, uint16_t default_port, const char *what,
                        pos_sentinel_addr_t *out, size_t max, size_t *n, char *err, size_t errlen)
{
    const char *p = list;
    size_t count = 0;
    int rc;

    *n = 0;
    if (list == NULL) {
        return pos_reason_fail(err, errlen, "no %s given", what);
    }
    for (;;) {
        const char *start, *end, *comma;

        while (is_blank(*p)) {
            p++;
        }
        comma = strchr(p, ',');
        end = comma != NULL ? comma : p + strlen(p);
        start = p;
        while (end > start && is_blank(end[-1])) {
            end--;
        }
        if (count == 0 && comma == NULL && end == start) {
            return pos_reason_fail(err, errlen, "no %s given", what);
        }
        if (count == max) {
            return pos_reason_fail(err, errlen, "more than %zu %ss", max, what);
        }
        rc = parse_entry(start, (size_t)(end - start), count, default_port, &out[count], err,
                         errlen);
        if (rc != 0) {
            return rc;
        }
        for (size_t i = 0; i < count; i++) {
            if (out[i].port == out[count].port && strcmp(out[i].host, out[count].host) == 0) {
                return pos_reason_fail(err, errlen, "entry %zu repeats entry %zu", count + 1,
                                       i + 1);
            }
        }
        count++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    *n = count;
    return 0;
}
