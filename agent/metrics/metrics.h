#ifndef AGENT_METRICS_METRICS_H
#define AGENT_METRICS_METRICS_H

/*
 * Metrics (pure): one table of rows {family, key, label, type, help,
 * id} (POS_METRIC) is read once, through one getter, into an array of values, and that array is
 * written three ways: INFO lines ("key:value"), the Prometheus text exposition format for
 * node_exporter's textfile collector, and the field/value pairs of the Redis hash
 * terminal:{terminalId}:metrics (docs/contract.md "Metrics"). Nothing here does I/O.
 */

#include <stddef.h>
#include <stdint.h>

typedef enum pos_metric_type {
    POS_METRIC_COUNTER = 0, /* only grows (since the agent started, or for ever when persisted) */
    POS_METRIC_GAUGE,       /* a value now */
} pos_metric_type_t;

/*
 * One row. Rows of one Prometheus family are adjacent: the first names the
 * family and its help, the others leave both empty ("as above") and differ
 * in their label. A row's four names are one string (POS_METRIC): one
 * pointer, so one relocation, a row instead of four, and no function
 * pointer (docs/footprint.md).
 */
typedef struct pos_metric {
    const char *names; /* "family\0key\0label\0help", as POS_METRIC makes it */
    unsigned id;       /* what the reader's getter is asked for */
    uint8_t type;      /* pos_metric_type_t: the same for a family's rows */
} pos_metric_t;

/*
 * A row: family, the Prometheus name without "posagent_" and "_total",
 * [a-z_], "" as above; key, the INFO key and hash field, [a-z_], unique in
 * the table, "" the family's name; label, one extra Prometheus label, e.g.
 * "outcome=\"approved\"", or ""; type; help, one line, no backslash or
 * newline, "" as above; id. All but type and id string literals.
 */
#define POS_METRIC(family, key, label, type, help, id)                                             \
    {                                                                                              \
        family "\0" key "\0" label "\0" help, (id), (type)                                         \
    }

/* The row's key (its INFO key and hash field). */
const char *pos_metric_key(const pos_metric_t *m);

/* Reads one metric's value now. */
typedef int64_t (*pos_metric_get_fn)(const void *src, unsigned id);

/* Reads every row's value, get(src, row.id), into vals[0..n). */
void pos_metrics_read(const pos_metric_t *t, size_t n, pos_metric_get_fn get, const void *src,
                      int64_t *vals);

/*
 * INFO text: "# metrics\r\n", then "key:value\r\n" per row and a blank
 * line. Returns the length written into buf (cap bytes, NUL-terminated; a
 * line that does not fit is left out whole).
 */
size_t pos_metrics_info(const pos_metric_t *t, size_t n, const int64_t *vals, char *buf,
                        size_t cap);

/*
 * The Prometheus text format (version 0.0.4): per family "# HELP", "# TYPE"
 * and one sample per row, named posagent_<family> (counters
 * posagent_<family>_total), labelled terminal="<terminal_id>",
 * store="<store_id>" and the row's label. The ids must be plain
 * ([A-Za-z0-9._-]). Returns the length (without the NUL), -EINVAL or
 * -ENOSPC (buf is then not a whole document).
 */
int pos_metrics_prom(const pos_metric_t *t, size_t n, const int64_t *vals, const char *terminal_id,
                     const char *store_id, char *buf, size_t cap);

/*
 * The hash fields: argv[i*2] = key, argv[i*2+1] = the value's decimal text
 * (written into text, which needs n * 21 bytes), for i in 0..n. argv and
 * lens need 2 * n entries. Returns the number of entries filled (2 * n) or
 * -ENOSPC.
 */
int pos_metrics_fields(const pos_metric_t *t, size_t n, const int64_t *vals, char *text,
                       size_t text_cap, const char **argv, size_t *lens);

#endif /* AGENT_METRICS_METRICS_H */
