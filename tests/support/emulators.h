#ifndef TESTS_SUPPORT_EMULATORS_H
#define TESTS_SUPPORT_EMULATORS_H

/*
 * Device emulators for driver tests: the far side of a pseudo-terminal or
 * of a loopback TCP listener, served on the test's libuv loop. They see
 * only the bytes the driver writes and answer with bytes, as the hardware
 * would; they never look into the driver.
 *
 * A pty port is reached through a symlink (path) that points at the
 * current pty slave, so a test can unplug (close the master, remove the
 * link) and replug (new pty, same link) like a USB device.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hal/display_proto.h"
#include "hal/telium.h"

typedef struct pos_emu_port pos_emu_port_t;

struct pos_emu_port {
    uv_loop_t *loop;
    void *owner;
    void (*on_rx)(pos_emu_port_t *p, const uint8_t *buf, size_t len);
    bool tcp;
    char dir[64];   /* pty: temporary directory holding the link */
    char path[160]; /* pty: the link to give the driver; tcp: "127.0.0.1:port" */
    int master, slave;
    uv_poll_t *poll;      /* pty master */
    uv_tcp_t *server;     /* tcp listener */
    uv_tcp_t *conn;       /* tcp: the accepted connection */
    uint64_t rx_total;    /* bytes received from the driver */
    unsigned connections; /* tcp: accepted so far */
    bool plugged;
    uint8_t rbuf[4096];
};

/* Opens a pty port (link in a fresh temporary directory). Returns 0 or -errno. */
int pos_emu_port_pty(pos_emu_port_t *p, uv_loop_t *loop);
/* Opens a TCP listener on 127.0.0.1, ephemeral port. Returns 0 or -errno. */
int pos_emu_port_tcp(pos_emu_port_t *p, uv_loop_t *loop);
/* Sends bytes to the driver (pty master or the TCP connection). Returns 0 or -errno. */
int pos_emu_port_send(pos_emu_port_t *p, const void *buf, size_t len);
/* Pty: the device disappears (master closed, link removed). */
void pos_emu_port_unplug(pos_emu_port_t *p);
/* Pty: a new device behind the same link. Returns 0 or -errno. */
int pos_emu_port_replug(pos_emu_port_t *p);
/* Closes every handle (the loop must run afterwards to finish) and the link. */
void pos_emu_port_close(pos_emu_port_t *p);

/* ---- ESC/POS printer ---- */

typedef enum pos_emu_paper {
    POS_EMU_PRN_READY = 0,
    POS_EMU_PRN_PAPER_LOW,
    POS_EMU_PRN_PAPER_OUT,
    POS_EMU_PRN_COVER_OPEN,
} pos_emu_prn_state_t;

#define POS_EMU_PRN_TEXT_MAX (64 * 1024)

typedef struct pos_emu_printer {
    pos_emu_port_t port;
    pos_emu_prn_state_t state; /* answered to DLE EOT n */
    bool silent;               /* answers no status query */
    unsigned silent_at_init;   /* turns silent at this ESC @ count (0: never) */
    /* Holds back the reply to this status query (counted as queries is,
     * 0: none) for late_ms; later replies wait behind it, in order, as
     * on the wire. Closed by pos_emu_printer_close(). */
    unsigned late_query;
    uint32_t late_ms;
    uv_timer_t late_timer;
    bool late_timer_inited;
    uint8_t held[64];
    size_t held_len;
    unsigned width;            /* paper columns, to place aligned lines */
    /* What came out: text lines ('\n'-terminated, UTF-8, as placed on the
     * paper, without trailing spaces), cuts, and counters. */
    char text[POS_EMU_PRN_TEXT_MAX];
    size_t text_len;
    unsigned cuts, inits, queries, qr_prints, feeds;
    uint64_t print_bytes; /* bytes received other than DLE EOT n queries */
    /* Decoder state. */
    uint8_t st, prefix, cmd, align, need;
    bool dbl;
    bool after_qr; /* the next LF ends the QR symbol's line */
    uint32_t skip;
    uint8_t args[4];
    uint8_t nargs;
    char line[1024];
    size_t line_len, line_cols;
    uint32_t rev[256]; /* code page byte -> Unicode */
} pos_emu_printer_t;

/* Starts a printer emulator on a pty (tcp false) or a TCP listener. */
int pos_emu_printer_start(pos_emu_printer_t *e, uv_loop_t *loop, bool tcp, unsigned width,
                          const char *codepage);
/* Closes the emulator's handles (port, and the timer of a held reply). */
void pos_emu_printer_close(pos_emu_printer_t *e);

/* ---- 2 x 20 display ---- */

typedef struct pos_emu_display {
    pos_emu_port_t port;
    pos_display_decoder_t dec;
} pos_emu_display_t;

int pos_emu_display_start(pos_emu_display_t *e, uv_loop_t *loop, pos_display_cmdset_t set);
/* Copies line row (0 or 1) of the glass, 20 bytes, NUL-terminated. */
void pos_emu_display_line(const pos_emu_display_t *e, unsigned row, char out[21]);

/* ---- Telium pinpad ---- */

typedef enum pos_emu_telium_mode {
    POS_EMU_TEL_APPROVE = 0,
    POS_EMU_TEL_DECLINE,
    POS_EMU_TEL_NAK_ONCE,  /* NAKs the first request frame, then approves */
    POS_EMU_TEL_BAD_LRC,   /* sends the first reply with a wrong LRC, then approves */
    POS_EMU_TEL_SILENT,    /* acknowledges the request, never replies */
    POS_EMU_TEL_NO_ACK,    /* never answers ENQ */
    POS_EMU_TEL_ENDLESS,   /* calls back, then a reply frame that never ends (a byte flood) */
    POS_EMU_TEL_ENQ_LOOP,  /* calls back, and answers each ACK with ENQ again, for ever */
    POS_EMU_TEL_ACK_LOST,  /* takes the request, but its ACK is lost on the line */
    POS_EMU_TEL_NAK_BURST, /* NAKs the first request frame four times at once */
} pos_emu_telium_mode_t;

typedef struct pos_emu_telium {
    pos_emu_port_t port;
    pos_emu_telium_mode_t mode;
    const char *pan;   /* the test card read by the "customer" */
    uint32_t delay_ms; /* the customer's time */
    /* A faulty terminal's reply (0 / NULL: the request's, echoed faithfully). */
    uint32_t reply_amount;     /* the amount it reports (and charges) */
    const char *reply_private; /* the private data it echoes */
    unsigned reply_pos;        /* the register number it echoes */
    uint64_t flood_bytes;      /* POS_EMU_TEL_ENDLESS: bytes of the endless frame sent */
    unsigned enq_repeats;      /* POS_EMU_TEL_ENQ_LOOP: ENQs sent again after an ACK */
    uv_timer_t timer;
    pos_telium_decoder_t dec;
    pos_telium_request_t req;
    uint8_t st;
    bool naked, bad_sent;
    unsigned enqs, requests, naks_sent, naks_received, charges, replies_acked;
} pos_emu_telium_t;

int pos_emu_telium_start(pos_emu_telium_t *e, uv_loop_t *loop, pos_emu_telium_mode_t mode,
                         const char *pan, uint32_t delay_ms);
/* Closes the emulator's handles (port and timer). */
void pos_emu_telium_close(pos_emu_telium_t *e);

#endif /* TESTS_SUPPORT_EMULATORS_H */
