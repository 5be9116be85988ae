#include "agent/metrics/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "platform/ident.h"

/* The name after this one in a row's names (POS_METRIC). */
static const char *next_name(const char *name)
{
    return name + strlen(name) + 1;
}

const char *pos_metric_key(const pos_metric_t *m)
{
    const char *key = next_name(m->names);
    return key[0] != '\0' ? key : m->names;
}

void pos_metrics_read(const pos_metric_t *t, size_t n, pos_metric_get_fn get, const void *src,
                      int64_t *vals)
{
    for (size_t i = 0; i < n; i++) {
        vals[i] = get(src, t[i].id);
    }
}

size_t pos_metrics_info(const pos_metric_t *t, size_t n, const int64_t *vals, char *buf, size_t cap)
{
    size_t len = 0;
    int w;

    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    w = snprintf(buf, cap, "# metrics\r\n");
    if (w < 0 || (size_t)w >= cap) {
        buf[0] = '\0';
        return 0;
    }
    len = (size_t)w;
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            w = snprintf(buf + len, cap - len, "%s:%" PRId64 "\r\n", pos_metric_key(&t[i]),
                         vals[i]);
        } else {
            w = snprintf(buf + len, cap - len, "\r\n");
        }
        if (w < 0 || (size_t)w >= cap - len) {
            buf[len] = '\0'; /* left out whole */
            continue;
        }
        len += (size_t)w;
    }
    return len;
}

/* Nothing a Prometheus label value would need escaped. */
static bool plain(const char *s)
{
    return pos_ident_plain(s, NULL);
}

int pos_metrics_prom(const pos_metric_t *t, size_t n, const int64_t *vals, const char *terminal_id,
                     const char *store_id, char *buf, size_t cap)
{
    size_t len = 0;
    int w;

    if (!plain(terminal_id) || !plain(store_id)) {
        return -EINVAL;
    }
    if (cap == 0) {
        return -ENOSPC;
    }
    buf[0] = '\0';
    const char *family = NULL;
    for (size_t i = 0; i < n; i++) {
        const pos_metric_t *m = &t[i];
        const char *suffix = m->type == POS_METRIC_COUNTER ? "_total" : "";
        const char *label = next_name(next_name(m->names));
        if (m->names[0] != '\0' || family == NULL) {
            family = m->names[0] != '\0' ? m->names : "unnamed";
            w = snprintf(buf + len, cap - len, "# HELP posagent_%s%s %s\n# TYPE posagent_%s%s %s\n",
                         family, suffix, next_name(label), family, suffix,
                         m->type == POS_METRIC_COUNTER ? "counter" : "gauge");
            if (w < 0 || (size_t)w >= cap - len) {
                return -ENOSPC;
            }
            len += (size_t)w;
        }
        w = snprintf(buf + len, cap - len,
                     "posagent_%s%s{terminal=\"%s\",store=\"%s\"%s%s} %" PRId64 "\n", family,
                     suffix, terminal_id, store_id, label[0] != '\0' ? "," : "", label, vals[i]);
        if (w < 0 || (size_t)w >= cap - len) {
            return -ENOSPC;
        }
        len += (size_t)w;
    }
    return (int)len;
}

int pos_metrics_fields(const pos_metric_t *t, size_t n, const int64_t *vals, char *text,
                       size_t text_cap, const char **argv, size_t *lens)
{
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        int w = snprintf(text + used, text_cap - used, "%" PRId64, vals[i]);
        if (w < 0 || (size_t)w >= text_cap - used) {
            return -ENOSPC;
        }
        argv[2 * i] = pos_metric_key(&t[i]);
        lens[2 * i] = strlen(argv[2 * i]);
        argv[2 * i + 1] = text + used;
        lens[2 * i + 1] = (size_t)w;
        used += (size_t)w + 1;
    }
    return (int)(2 * n);
}
