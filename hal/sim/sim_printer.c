/* Simulated receipt printer: the paper is the file receipts.txt. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hal/printer.h"
#include "hal/sim/sim.h"
#include "hal/sim/sim_watch.h"
#include "platform/log.h"

#define SIM_CUT_LINE "------------------------ cut ------------------------\n"

typedef struct sim_printer {
    pos_sim_dev_t sim; /* first */
    char fault[32];
    bool busy;
    uint32_t delay_ms; /* [hal] sim_printer_delay_ms: time the paper takes to come out */
    uint32_t job;
    int result;
} sim_printer_t;

static pos_dev_state_t sim_printer_state(const sim_printer_t *p)
{
    if (strcmp(p->fault, "paper_low") == 0) {
        return POS_DEV_PAPER_LOW;
    }
    if (strcmp(p->fault, "paper_out") == 0) {
        return POS_DEV_PAPER_OUT;
    }
    if (strcmp(p->fault, "cover_open") == 0) {
        return POS_DEV_COVER_OPEN;
    }
    if (strcmp(p->fault, "offline") == 0) {
        return POS_DEV_OFFLINE;
    }
    return p->busy ? POS_DEV_BUSY : POS_DEV_READY;
}

static void sim_printer_fault(pos_sim_watch_t *w)
{
    sim_printer_t *p = w->dev->driver_data;

    pos_sim_read_word(p->sim.dir, "printer.fault", p->fault, sizeof(p->fault));
    /* "paper_out_mid" runs out during the next job; until then all is well. */
    pos_hal_set_status(w->dev, strcmp(p->fault, "paper_out_mid") == 0
                                   ? (p->busy ? POS_DEV_BUSY : POS_DEV_READY)
                                   : sim_printer_state(p));
}

static void sim_printer_done(uv_timer_t *t)
{
    pos_sim_watch_t *w = t->data;
    pos_hal_device_t *dev = w->dev;
    sim_printer_t *p = dev->driver_data;

    p->busy = false;
    if (p->result == -ENOSPC) {
        pos_sim_write_file(p->sim.dir, "printer.fault", "paper_out\n", 10, 0);
        snprintf(p->fault, sizeof(p->fault), "paper_out");
    }
    pos_hal_set_status(dev, sim_printer_state(p));
    pos_hal_output_complete(dev, p->job, p->result);
}

static int sim_printer_print(pos_hal_device_t *dev, const pos_receipt_doc_t *doc, uint32_t job)
{
    sim_printer_t *p = dev->driver_data;
    pos_dev_state_t st = sim_printer_state(p);
    pos_buf_t text;
    int rc;

    if (p->busy) {
        return -EBUSY;
    }
    /* No job is started while the printer cannot finish it. */
    if (st == POS_DEV_PAPER_OUT) {
        return -ENOSPC;
    }
    if (st == POS_DEV_COVER_OPEN) {
        return -EIO;
    }
    if (st == POS_DEV_OFFLINE) {
        return -ENODEV;
    }
    pos_buf_init(&text, 64 * 1024);
    rc = pos_receipt_render_text(doc, &text);
    if (rc == 0) {
        size_t len = text.len;
        p->result = 0;
        if (strcmp(p->fault, "paper_out_mid") == 0) {
            /* The paper ends half way: what came out stays on the paper. */
            len /= 2;
            p->result = -ENOSPC;
        }
        rc = pos_sim_write_file(p->sim.dir, "receipts.txt", (const char *)text.data, len, 1);
        if (rc == 0 && p->result == 0) {
            rc = pos_sim_write_file(p->sim.dir, "receipts.txt", SIM_CUT_LINE, strlen(SIM_CUT_LINE),
                                    1);
        }
    }
    pos_buf_free(&text);
    if (rc != 0) {
        POS_WARN("hal", "printer: cannot write %s/receipts.txt: %s", p->sim.dir, strerror(-rc));
        return rc;
    }
    p->busy = true;
    p->job = job;
    dev->state = POS_HAL_BUSY;
    pos_hal_set_status(dev, POS_DEV_BUSY);
    /* Even with no delay the job completes from the loop, never inside print. */
    uv_timer_start(&p->sim.watch.timer, sim_printer_done, p->delay_ms, 0);
    return 0;
}

static int sim_printer_open(pos_hal_device_t *dev)
{
    return pos_sim_dev_open(dev, sim_printer_fault);
}

static const struct pos_printer_api sim_printer_api = {
    .lc = {.driver = "sim", .open = sim_printer_open, .close = pos_sim_dev_close},
    .print = sim_printer_print,
};

int pos_sim_printer_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    sim_printer_t *p;

    (void)args;
    p = pos_sim_dev_create(dev, sizeof(sim_printer_t), &sim_printer_api, o);
    if (p == NULL) {
        return -ENOMEM;
    }
    p->delay_ms = o->sim_printer_delay_ms;
    return 0;
}
