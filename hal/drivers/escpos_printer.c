/*
 * ESC/POS receipt printer over a byte stream (usblp, serial or raw TCP).
 *
 * Status: DLE EOT 1..4, one query at a time, each answered by one byte.
 * The printer answers in order, so a reply that comes after its query
 * timed out is still that query's: it is dropped, never read as the
 * answer to a later query.
 * Queries run at open (which also tells whether the link is bidirectional),
 * before and after each job, and every PRN_POLL_MS while a fault is pending
 * (paper out, cover open, error, a status printer gone silent). An idle,
 * healthy printer is never polled, so an idle agent does not wake up.
 *
 * Jobs are rendered at once into a buffer owned by the driver, written with
 * a deadline and never resent: if the stream fails during a job, the job
 * fails and its bytes are dropped (see docs/drivers.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hal/buf.h"
#include "hal/charset.h"
#include "hal/drivers/drivers.h"
#include "hal/escpos.h"
#include "hal/printer.h"
#include "hal/receipt.h"
#include "platform/log.h"
#include "platform/stream.h"

/* Wait for the reply byte of one DLE EOT n query, ms. A printer that does
 * not answer the first query after open within this time is taken as
 * having no bidirectional status (usblp/tcp printers often do not answer). */
#define PRN_STATUS_REPLY_MS 500u
/* Status poll interval while a fault is pending, ms. */
#define PRN_POLL_MS 1000u
/* Write deadline of a status query, ms. */
#define PRN_QUERY_DEADLINE_MS 1000u
/* Write deadline of a job: a base plus twice the line time on serial, ms. */
#define PRN_JOB_DEADLINE_MS 10000u
/* Most replies owed by timed-out queries that are waited for. */
#define PRN_OWED_MAX 4u
/* Largest rendered job, bytes. */
#define PRN_JOB_MAX (64u * 1024u)

typedef enum prn_bidi {
    PRN_BIDI_UNKNOWN = 0, /* probing after open */
    PRN_BIDI_NO,          /* the printer never answered: no status */
    PRN_BIDI_YES,         /* the printer answers DLE EOT */
} prn_bidi_t;

typedef enum prn_job_phase {
    PRN_JOB_NONE = 0,
    PRN_JOB_PRECHECK, /* waiting for a status cycle before sending */
    PRN_JOB_WRITING,  /* bytes handed to the stream */
    PRN_JOB_POSTCHECK /* written; waiting for the status after the cut */
} prn_job_phase_t;

typedef struct escpos_printer {
    pos_drv_port_t port; /* its timer: status reply deadline, or the poll interval */
    const pos_escpos_model_t *model;
    pos_codepage_t cp;
    bool up; /* stream open */

    prn_bidi_t bidi;
    pos_printer_status_t cyc; /* being assembled */
    uint8_t query_n;          /* 1..4: reply awaited; 0: no query in flight */
    /* Replies still owed by queries that timed out: the printer sends
     * them before the reply to any later query, so the next status bytes
     * to come are theirs. */
    uint8_t owed;
    bool owed_dropped;        /* an owed reply came while query_n waited */
    pos_dev_state_t state;    /* last known printer state (not BUSY) */

    prn_job_phase_t phase;
    uint32_t job_id;
    pos_buf_t job;
    int job_tag; /* its address tags the job's write */
} escpos_printer_t;

static void prn_cycle_start(escpos_printer_t *p);

static bool prn_is_fault(pos_dev_state_t st)
{
    return st == POS_DEV_PAPER_OUT || st == POS_DEV_COVER_OPEN || st == POS_DEV_ERROR ||
           st == POS_DEV_OFFLINE;
}

/* The job result a printer state stands for (0 when a job may go on). */
static int prn_state_error(pos_dev_state_t st)
{
    switch (st) {
    case POS_DEV_PAPER_OUT:
        return -ENOSPC;
    case POS_DEV_COVER_OPEN:
    case POS_DEV_ERROR:
        return -EIO;
    case POS_DEV_OFFLINE:
        return -ENODEV;
    default:
        return 0;
    }
}

static pos_dev_state_t prn_map(const pos_printer_status_t *st)
{
    const char *s = pos_escpos_status_state(st);

    if (strcmp(s, "ready") == 0) {
        return POS_DEV_READY;
    }
    if (strcmp(s, "paper_low") == 0) {
        return POS_DEV_PAPER_LOW;
    }
    if (strcmp(s, "paper_out") == 0) {
        return POS_DEV_PAPER_OUT;
    }
    if (strcmp(s, "cover_open") == 0) {
        return POS_DEV_COVER_OPEN;
    }
    if (strcmp(s, "error") == 0) {
        return POS_DEV_ERROR;
    }
    return POS_DEV_OFFLINE;
}

static void prn_job_finish(escpos_printer_t *p, int result)
{
    uint32_t job = p->job_id;

    p->phase = PRN_JOB_NONE;
    pos_buf_free(&p->job);
    pos_hal_output_complete(p->port.dev, job, result);
}

static void prn_poll_cb(uv_timer_t *t)
{
    prn_cycle_start(t->data);
}

/* Polls again later only while a fault is pending on a status printer. */
static void prn_schedule_poll(escpos_printer_t *p)
{
    if (p->up && p->bidi == PRN_BIDI_YES && p->query_n == 0 && p->phase == PRN_JOB_NONE &&
        prn_is_fault(p->state)) {
        uv_timer_start(&p->port.timer, prn_poll_cb, PRN_POLL_MS, 0);
    }
}

static void prn_write_job(escpos_printer_t *p)
{
    uint32_t deadline = PRN_JOB_DEADLINE_MS;
    int rc;

    if (p->port.spec.kind == POS_STREAM_SERIAL && p->port.spec.baud > 0) {
        /* 10 bits a byte on the line, twice that for slack. */
        deadline += (uint32_t)(((uint64_t)p->job.len * 20u * 1000u) / p->port.spec.baud);
    }
    rc = pos_stream_write(&p->port.stream, p->job.data, p->job.len, deadline, &p->job_tag);
    if (rc != 0) {
        prn_job_finish(p, rc == -ENOTCONN ? -ENODEV : rc);
        return;
    }
    p->phase = PRN_JOB_WRITING;
    pos_hal_set_status(p->port.dev, POS_DEV_BUSY);
}

/* A status cycle ended: ok when all four replies came. */
static void prn_cycle_done(escpos_printer_t *p, bool ok)
{
    p->query_n = 0;
    uv_timer_stop(&p->port.timer);
    if (ok) {
        p->bidi = PRN_BIDI_YES;
        p->state = prn_map(&p->cyc);
    } else if (p->bidi == PRN_BIDI_YES) {
        /* It used to answer and stopped: off-line, jammed or switched off. */
        p->state = POS_DEV_OFFLINE;
    } else {
        /* Never answered since open: a link without status, not a fault. */
        if (p->bidi == PRN_BIDI_UNKNOWN) {
            POS_INFO("hal", "printer: no status reply, printing without status");
        }
        p->bidi = PRN_BIDI_NO;
        p->state = POS_DEV_READY;
    }

    switch (p->phase) {
    case PRN_JOB_PRECHECK: {
        int err = prn_state_error(p->state);
        if (err != 0) {
            /* Refused before a single byte of the receipt left. */
            pos_hal_set_status(p->port.dev, p->state);
            prn_job_finish(p, err);
        } else {
            prn_write_job(p);
        }
        break;
    }
    case PRN_JOB_POSTCHECK: {
        int err = prn_state_error(p->state);
        pos_hal_set_status(p->port.dev, p->state);
        /* Silent after the job: the bytes left, whether they printed is unknown. */
        prn_job_finish(p, err == -ENODEV ? -ETIMEDOUT : err);
        break;
    }
    case PRN_JOB_WRITING:
        break; /* not reached: no query runs during a write */
    case PRN_JOB_NONE:
        pos_hal_set_status(p->port.dev, p->state);
        break;
    }
    prn_schedule_poll(p);
}

static void prn_reply_timeout(uv_timer_t *t)
{
    escpos_printer_t *p = t->data;

    if (p->owed_dropped) {
        /* An owed reply came and this one did not: the printer lost the
         * earlier queries (switched off and on, the line kept open) more
         * likely than it is late twice. Owing on would take each reply
         * for a late one, cycle after cycle. */
        p->owed = 0;
    } else if (p->owed < PRN_OWED_MAX) {
        p->owed++; /* it may still come, ahead of the next query's */
    }
    prn_cycle_done(p, false);
}

static void prn_query(escpos_printer_t *p)
{
    uint8_t q[3];
    pos_buf_t b;
    int rc;

    pos_buf_init_fixed(&b, q, sizeof(q));
    pos_escpos_status_query(&b, p->query_n);
    rc = pos_stream_write(&p->port.stream, q, b.len, PRN_QUERY_DEADLINE_MS, NULL);
    if (rc != 0) {
        prn_cycle_done(p, false);
        return;
    }
    p->owed_dropped = false;
    uv_timer_start(&p->port.timer, prn_reply_timeout, PRN_STATUS_REPLY_MS, 0);
}

/* Starts DLE EOT 1..4 unless a cycle already runs (its end serves). */
static void prn_cycle_start(escpos_printer_t *p)
{
    if (!p->up || p->query_n != 0) {
        return;
    }
    uv_timer_stop(&p->port.timer);
    pos_escpos_status_clear(&p->cyc);
    p->query_n = 1;
    prn_query(p);
}

static void prn_on_data(pos_stream_t *s, const uint8_t *buf, size_t len)
{
    escpos_printer_t *p = s->data;

    for (size_t i = 0; i < len; i++) {
        /* A byte that breaks the fixed bits is no reply at all: skip it. */
        if (!pos_escpos_status_is_reply(buf[i])) {
            continue;
        }
        if (p->owed > 0) {
            /* The late reply to a query that timed out, even when it comes
             * after the next query went out: not the answer to that one. */
            p->owed--;
            if (p->query_n != 0) {
                p->owed_dropped = true;
            }
            continue;
        }
        if (p->query_n == 0 || pos_escpos_status_parse(p->query_n, buf[i], &p->cyc) != 0) {
            continue; /* automatic status or noise: nothing asked */
        }
        if (p->query_n == 4) {
            prn_cycle_done(p, true);
        } else {
            p->query_n++;
            prn_query(p);
        }
    }
}

static void prn_on_open(pos_stream_t *s)
{
    escpos_printer_t *p = s->data;
    static const uint8_t init[] = {0x1b, 0x40}; /* ESC @ */

    p->up = true;
    p->bidi = PRN_BIDI_UNKNOWN;
    p->owed = 0; /* what the printer owed went with the old link */
    if (pos_stream_write(&p->port.stream, init, sizeof(init), PRN_QUERY_DEADLINE_MS, NULL) != 0) {
        return; /* the stream is going down again; on_down follows */
    }
    prn_cycle_start(p);
}

static void prn_on_down(pos_stream_t *s, int err)
{
    escpos_printer_t *p = s->data;

    POS_WARN("hal", "printer: link down: %s", strerror(-err));
    p->up = false;
    p->query_n = 0;
    uv_timer_stop(&p->port.timer);
    p->state = POS_DEV_OFFLINE;
    pos_hal_set_status(p->port.dev, POS_DEV_OFFLINE);
    if (p->phase != PRN_JOB_NONE) {
        /* Part of the receipt may be on the paper: fail it, never resend. */
        prn_job_finish(p, err == -ETIMEDOUT ? -ETIMEDOUT : -ENODEV);
    }
}

static void prn_on_write_done(pos_stream_t *s, void *ctx, int status)
{
    escpos_printer_t *p = s->data;

    if (p->port.closed || ctx != &p->job_tag || p->phase != PRN_JOB_WRITING) {
        return;
    }
    if (status != 0) {
        prn_job_finish(p, status == -ETIMEDOUT ? -ETIMEDOUT : -ENODEV);
        return;
    }
    pos_buf_free(&p->job);
    if (p->bidi == PRN_BIDI_YES) {
        p->phase = PRN_JOB_POSTCHECK;
        prn_cycle_start(p);
        return;
    }
    p->state = POS_DEV_READY;
    pos_hal_set_status(p->port.dev, POS_DEV_READY);
    prn_job_finish(p, 0);
}

static const pos_stream_callbacks_t prn_stream_cb = {
    .on_open = prn_on_open,
    .on_data = prn_on_data,
    .on_down = prn_on_down,
    .on_write_done = prn_on_write_done,
};

static int prn_open(pos_hal_device_t *dev)
{
    escpos_printer_t *p = dev->driver_data;

    return pos_drv_port_open(&p->port, &prn_stream_cb, true);
}

static int prn_print(pos_hal_device_t *dev, const pos_receipt_doc_t *doc, uint32_t job)
{
    escpos_printer_t *p = dev->driver_data;
    int rc;

    if (doc == NULL) {
        return -EINVAL;
    }
    if (p->phase != PRN_JOB_NONE) {
        return -EBUSY;
    }
    if (!p->up) {
        return -ENODEV;
    }
    /* No job is started while the printer is known unable to finish it. */
    if (p->bidi == PRN_BIDI_YES && (rc = prn_state_error(p->state)) != 0) {
        return rc;
    }
    pos_buf_init(&p->job, PRN_JOB_MAX);
    rc = pos_receipt_render_escpos(doc, p->model, p->cp, p->model->has_qr, &p->job);
    if (rc != 0) {
        pos_buf_free(&p->job);
        return rc;
    }
    p->job_id = job;
    dev->state = POS_HAL_BUSY;
    if (p->bidi == PRN_BIDI_NO) {
        prn_write_job(p);
        return 0;
    }
    /* Bidirectional or still probing: the next status cycle decides. */
    p->phase = PRN_JOB_PRECHECK;
    pos_hal_set_status(dev, POS_DEV_BUSY);
    prn_cycle_start(p);
    return 0;
}

static void prn_release(void *owner)
{
    escpos_printer_t *p = owner;

    pos_buf_free(&p->job);
    free(p);
}

static void prn_close(pos_hal_device_t *dev)
{
    escpos_printer_t *p = dev->driver_data;

    pos_drv_port_close(&p->port, prn_release);
}

static const struct pos_printer_api escpos_printer_api = {
    .lc = {.driver = "escpos", .open = prn_open, .close = prn_close},
    .print = prn_print,
};

static int prn_check(pos_stream_kind_t kind, const char *args, char *err, size_t errlen)
{
    pos_stream_spec_t sp;

    return pos_stream_spec_parse_kind(kind, args, &sp, err, errlen);
}

int pos_escpos_check_usblp(const char *args, char *err, size_t errlen)
{
    return prn_check(POS_STREAM_USBLP, args, err, errlen);
}

int pos_escpos_check_serial(const char *args, char *err, size_t errlen)
{
    return prn_check(POS_STREAM_SERIAL, args, err, errlen);
}

int pos_escpos_check_tcp(const char *args, char *err, size_t errlen)
{
    return prn_check(POS_STREAM_TCP, args, err, errlen);
}

static int prn_create(pos_hal_device_t *dev, pos_stream_kind_t kind, const char *args,
                      const pos_hal_options_t *o)
{
    escpos_printer_t *p;
    const pos_escpos_model_t *model;
    int cp;

    model = pos_escpos_model_find(o != NULL ? o->printer_model : NULL);
    cp = pos_drv_codepage(o);
    if (model == NULL || cp < 0) {
        return -EINVAL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    if (pos_drv_port_init(&p->port, p, dev, kind, args, o) != 0) {
        free(p);
        return -EINVAL;
    }
    p->model = model;
    p->cp = (pos_codepage_t)cp;
    p->state = POS_DEV_OFFLINE;
    pos_buf_init(&p->job, PRN_JOB_MAX);
    dev->api = &escpos_printer_api;
    dev->driver_data = p;
    return 0;
}

int pos_escpos_create_usblp(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    return prn_create(dev, POS_STREAM_USBLP, args, o);
}

int pos_escpos_create_serial(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    return prn_create(dev, POS_STREAM_SERIAL, args, o);
}

int pos_escpos_create_tcp(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    return prn_create(dev, POS_STREAM_TCP, args, o);
}
