/*
 * Device emulators: see emulators.h. They run on the test's loop and only
 * exchange bytes with the driver through a pty or a loopback socket.
 */
#define _GNU_SOURCE /* openpty, cfmakeraw */

#include "tests/support/emulators.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "hal/charset.h"

/* ---- ports ---- */

static void emu_free_handle(uv_handle_t *h)
{
    free(h);
}

static void emu_poll_cb(uv_poll_t *h, int status, int events)
{
    pos_emu_port_t *p = h->data;
    (void)events;

    if (status < 0 || !p->plugged) {
        return;
    }
    for (;;) {
        ssize_t n = read(p->master, p->rbuf, sizeof(p->rbuf));
        if (n <= 0) {
            break;
        }
        p->rx_total += (uint64_t)n;
        if (p->on_rx != NULL) {
            p->on_rx(p, p->rbuf, (size_t)n);
        }
        if (!p->plugged) {
            break; /* unplugged from the callback */
        }
    }
}

static int emu_pty_plug(pos_emu_port_t *p)
{
    struct termios t;
    char name[64];
    int rc;

    if (openpty(&p->master, &p->slave, NULL, NULL, NULL) != 0) {
        return -errno;
    }
    /* Raw from the start, so nothing is echoed before the driver opens it.
     * The emulator keeps the slave open too: the master then never sees a
     * hangup while the driver re-opens. */
    if (tcgetattr(p->slave, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(p->slave, TCSANOW, &t);
    }
    fcntl(p->master, F_SETFL, fcntl(p->master, F_GETFL) | O_NONBLOCK);
    if (ttyname_r(p->slave, name, sizeof(name)) != 0 || symlink(name, p->path) != 0) {
        rc = -errno;
        close(p->master);
        close(p->slave);
        return rc;
    }
    p->poll = malloc(sizeof(*p->poll));
    if (p->poll == NULL || uv_poll_init(p->loop, p->poll, p->master) != 0) {
        free(p->poll);
        p->poll = NULL;
        return -ENOMEM;
    }
    p->poll->data = p;
    uv_poll_start(p->poll, UV_READABLE, emu_poll_cb);
    p->plugged = true;
    return 0;
}

int pos_emu_port_pty(pos_emu_port_t *p, uv_loop_t *loop)
{
    p->loop = loop;
    p->master = p->slave = -1;
    snprintf(p->dir, sizeof(p->dir), "/tmp/pos-emu-XXXXXX");
    if (mkdtemp(p->dir) == NULL) {
        return -errno;
    }
    snprintf(p->path, sizeof(p->path), "%s/dev", p->dir);
    return emu_pty_plug(p);
}

void pos_emu_port_unplug(pos_emu_port_t *p)
{
    if (p->tcp || !p->plugged) {
        return;
    }
    p->plugged = false;
    uv_poll_stop(p->poll);
    uv_close((uv_handle_t *)p->poll, emu_free_handle);
    p->poll = NULL;
    close(p->master);
    close(p->slave);
    p->master = p->slave = -1;
    unlink(p->path);
}

int pos_emu_port_replug(pos_emu_port_t *p)
{
    if (p->tcp || p->plugged) {
        return -EINVAL;
    }
    return emu_pty_plug(p);
}

static void emu_tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    pos_emu_port_t *p = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)p->rbuf, sizeof(p->rbuf));
}

static void emu_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pos_emu_port_t *p = s->data;
    (void)buf;

    if (n > 0) {
        p->rx_total += (uint64_t)n;
        if (p->on_rx != NULL) {
            p->on_rx(p, p->rbuf, (size_t)n);
        }
    } else if (n < 0) {
        if ((uv_tcp_t *)s == p->conn) {
            p->conn = NULL;
        }
        uv_close((uv_handle_t *)s, emu_free_handle);
    }
}

static void emu_tcp_conn(uv_stream_t *server, int status)
{
    pos_emu_port_t *p = server->data;
    uv_tcp_t *c;

    if (status != 0) {
        return;
    }
    c = malloc(sizeof(*c));
    if (c == NULL) {
        return;
    }
    uv_tcp_init(p->loop, c);
    c->data = p;
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, emu_free_handle);
        return;
    }
    if (p->conn != NULL) {
        uv_close((uv_handle_t *)p->conn, emu_free_handle); /* the newest wins */
    }
    p->conn = c;
    p->connections++;
    uv_read_start((uv_stream_t *)c, emu_tcp_alloc, emu_tcp_read);
}

int pos_emu_port_tcp(pos_emu_port_t *p, uv_loop_t *loop)
{
    struct sockaddr_in addr;
    struct sockaddr_storage got;
    int len = sizeof(got);
    int rc;

    p->loop = loop;
    p->tcp = true;
    p->master = p->slave = -1;
    p->server = malloc(sizeof(*p->server));
    if (p->server == NULL) {
        return -ENOMEM;
    }
    uv_tcp_init(loop, p->server);
    p->server->data = p;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    rc = uv_tcp_bind(p->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)p->server, 4, emu_tcp_conn);
    }
    if (rc == 0) {
        rc = uv_tcp_getsockname(p->server, (struct sockaddr *)&got, &len);
    }
    if (rc != 0) {
        uv_close((uv_handle_t *)p->server, emu_free_handle);
        p->server = NULL;
        return rc;
    }
    snprintf(p->path, sizeof(p->path), "127.0.0.1:%u",
             (unsigned)ntohs(((struct sockaddr_in *)&got)->sin_port));
    p->plugged = true;
    return 0;
}

int pos_emu_port_send(pos_emu_port_t *p, const void *buf, size_t len)
{
    const uint8_t *b = buf;

    if (!p->plugged) {
        return -ENODEV;
    }
    if (p->tcp) {
        uv_buf_t ub = uv_buf_init((char *)(uintptr_t)b, (unsigned)len);
        if (p->conn == NULL) {
            return -ENOTCONN;
        }
        return uv_try_write((uv_stream_t *)p->conn, &ub, 1) == (int)len ? 0 : -EAGAIN;
    }
    while (len > 0) {
        ssize_t n = write(p->master, b, len);
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

void pos_emu_port_close(pos_emu_port_t *p)
{
    if (p->tcp) {
        if (p->conn != NULL) {
            uv_close((uv_handle_t *)p->conn, emu_free_handle);
            p->conn = NULL;
        }
        if (p->server != NULL) {
            uv_close((uv_handle_t *)p->server, emu_free_handle);
            p->server = NULL;
        }
        p->plugged = false;
        return;
    }
    pos_emu_port_unplug(p);
    if (p->dir[0] != '\0') {
        rmdir(p->dir);
        p->dir[0] = '\0';
    }
}

/* ---- ESC/POS printer ---- */

enum { PRN_NORMAL = 0, PRN_PREFIX, PRN_ARGS, PRN_SKIP };

static void prn_utf8(pos_emu_printer_t *e, uint32_t cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    if (e->line_len + n < sizeof(e->line)) {
        memcpy(e->line + e->line_len, u, n);
        e->line_len += n;
        e->line_cols++;
    }
}

static void prn_text(pos_emu_printer_t *e, const char *s, size_t n)
{
    if (e->text_len + n < sizeof(e->text)) {
        memcpy(e->text + e->text_len, s, n);
        e->text_len += n;
        e->text[e->text_len] = '\0';
    }
}

/* LF: the line goes on the paper, placed as the printer would place it. */
static void prn_line(pos_emu_printer_t *e)
{
    size_t cols = e->dbl ? e->width / 2 : e->width;
    size_t pad = e->line_cols < cols ? cols - e->line_cols : 0;
    size_t left = e->align == 2 ? pad : e->align == 1 ? pad / 2 : 0;
    size_t len = e->line_len;

    if (e->state != POS_EMU_PRN_PAPER_OUT && e->state != POS_EMU_PRN_COVER_OPEN) {
        while (len > 0 && e->line[len - 1] == ' ') {
            len--;
        }
        for (size_t i = 0; i < (e->dbl ? left * 2 : left); i++) {
            prn_text(e, " ", 1);
        }
        prn_text(e, e->line, len);
        prn_text(e, "\n", 1);
    }
    e->line_len = 0;
    e->line_cols = 0;
}

static uint8_t prn_status_byte(const pos_emu_printer_t *e, uint8_t n)
{
    uint8_t b = 0x12; /* fixed bits 1 and 4 */
    bool out = e->state == POS_EMU_PRN_PAPER_OUT, cover = e->state == POS_EMU_PRN_COVER_OPEN;

    switch (n) {
    case 1:
        return (uint8_t)(b | ((out || cover) ? 0x08 : 0));
    case 2:
        return (uint8_t)(b | (cover ? 0x04 : 0) | (out ? 0x20 : 0));
    case 4:
        return (uint8_t)(b | ((out || e->state == POS_EMU_PRN_PAPER_LOW) ? 0x0C : 0) |
                         (out ? 0x60 : 0));
    default:
        return b;
    }
}

/* The held reply is due: it goes out with those queued behind it. */
static void prn_late_cb(uv_timer_t *t)
{
    pos_emu_printer_t *e = t->data;

    pos_emu_port_send(&e->port, e->held, e->held_len);
    e->held_len = 0;
}

/* Answers a status query at once, or holds the reply back (see late_query). */
static void prn_reply(pos_emu_printer_t *e, uint8_t r)
{
    if (e->late_query != 0 && e->queries == e->late_query) {
        if (!e->late_timer_inited) {
            uv_timer_init(e->port.loop, &e->late_timer);
            e->late_timer.data = e;
            e->late_timer_inited = true;
        }
        uv_timer_start(&e->late_timer, prn_late_cb, e->late_ms, 0);
    } else if (e->held_len == 0) {
        pos_emu_port_send(&e->port, &r, 1);
        return;
    }
    if (e->held_len < sizeof(e->held)) {
        e->held[e->held_len++] = r;
    }
}

static void prn_command(pos_emu_printer_t *e)
{
    uint8_t a = e->args[0];

    e->st = PRN_NORMAL;
    if (e->prefix == 0x1B) {
        switch (e->cmd) {
        case 'a':
            e->align = (uint8_t)(a >= '0' ? a - '0' : a) % 3;
            break;
        case 'd':
            if (e->line_len > 0) {
                prn_line(e);
            }
            e->feeds += a;
            break;
        default:
            break; /* t, E, M, !, -, J: no effect on the text */
        }
    } else if (e->prefix == 0x1D) {
        switch (e->cmd) {
        case '!':
            e->dbl = (a & 0x10) != 0;
            break;
        case 'V':
            if ((a == 65 || a == 66) && e->nargs == 1) {
                e->need = 2; /* GS V m n */
                e->st = PRN_ARGS;
                return;
            }
            e->cuts++;
            break;
        case '(':
            /* GS ( k pL pH data */
            e->skip = (uint32_t)e->args[1] | ((uint32_t)e->args[2] << 8);
            e->nargs = 0;
            e->st = e->skip > 0 ? PRN_SKIP : PRN_NORMAL;
            break;
        default:
            break;
        }
    } else if (e->prefix == 0x10 && e->cmd == 0x04) {
        /* DLE EOT n: real-time status, answered at once unless silent. */
        e->queries++;
        e->print_bytes -= 3;
        if (!e->silent && a >= 1 && a <= 4) {
            prn_reply(e, prn_status_byte(e, a));
        }
    }
}

static void prn_byte(pos_emu_printer_t *e, uint8_t c)
{
    switch (e->st) {
    case PRN_NORMAL:
        if (c == 0x1B || c == 0x1D || c == 0x10) {
            e->prefix = c;
            e->st = PRN_PREFIX;
        } else if (c == 0x0A) {
            if (e->after_qr && e->line_len == 0) {
                e->after_qr = false; /* the symbol's own line: no text */
            } else {
                prn_line(e);
            }
        } else if (c >= 0x20) {
            e->after_qr = false;
            prn_utf8(e, e->rev[c] != 0 ? e->rev[c] : '?');
        }
        return;
    case PRN_PREFIX:
        e->cmd = c;
        e->nargs = 0;
        e->st = PRN_ARGS;
        if (e->prefix == 0x1B) {
            if (c == '@') {
                e->inits++;
                if (e->silent_at_init != 0 && e->inits == e->silent_at_init) {
                    e->silent = true;
                }
                e->align = 0;
                e->dbl = false;
                e->line_len = e->line_cols = 0;
                e->st = PRN_NORMAL;
            } else if (c == 'i' || c == 'm') {
                e->cuts++;
                e->st = PRN_NORMAL;
            } else {
                e->need = 1;
            }
        } else if (e->prefix == 0x1D) {
            e->need = c == '(' ? 3 : 1;
        } else if (c == 0x04) {
            e->need = 1;
        } else {
            e->st = PRN_NORMAL;
        }
        return;
    case PRN_ARGS:
        e->args[e->nargs++] = c;
        if (e->nargs >= e->need) {
            prn_command(e);
        }
        return;
    case PRN_SKIP:
        if (e->nargs < 2) {
            e->args[e->nargs++] = c;
        }
        if (--e->skip == 0) {
            if (e->args[0] == 49 && e->args[1] == 81) {
                e->qr_prints++; /* cn 49 fn 81: print the stored symbol */
                e->after_qr = true;
            }
            e->st = PRN_NORMAL;
        }
        return;
    default:
        e->st = PRN_NORMAL;
        return;
    }
}

static void prn_rx(pos_emu_port_t *p, const uint8_t *buf, size_t len)
{
    pos_emu_printer_t *e = p->owner;

    e->print_bytes += len;
    for (size_t i = 0; i < len; i++) {
        prn_byte(e, buf[i]);
    }
}

int pos_emu_printer_start(pos_emu_printer_t *e, uv_loop_t *loop, bool tcp, unsigned width,
                          const char *codepage)
{
    int cp = pos_charset_parse(codepage);

    if (cp < 0) {
        return cp;
    }
    memset(e, 0, sizeof(*e));
    e->width = width;
    /* The printer's character table, inverted from the code page mapping. */
    for (uint32_t u = 0x20; u < 0x3000; u++) {
        int b = pos_charset_map((pos_codepage_t)cp, u);
        if (b >= 0x20 && b <= 0xFF && e->rev[b] == 0) {
            e->rev[b] = u;
        }
    }
    e->port.owner = e;
    e->port.on_rx = prn_rx;
    return tcp ? pos_emu_port_tcp(&e->port, loop) : pos_emu_port_pty(&e->port, loop);
}

void pos_emu_printer_close(pos_emu_printer_t *e)
{
    if (e->late_timer_inited) {
        uv_close((uv_handle_t *)&e->late_timer, NULL);
        e->late_timer_inited = false;
    }
    pos_emu_port_close(&e->port);
}

/* ---- display ---- */

static void dsp_rx(pos_emu_port_t *p, const uint8_t *buf, size_t len)
{
    pos_emu_display_t *e = p->owner;
    pos_display_decode(&e->dec, buf, len);
}

int pos_emu_display_start(pos_emu_display_t *e, uv_loop_t *loop, pos_display_cmdset_t set)
{
    memset(e, 0, sizeof(*e));
    pos_display_decoder_init(&e->dec, set);
    e->port.owner = e;
    e->port.on_rx = dsp_rx;
    return pos_emu_port_pty(&e->port, loop);
}

void pos_emu_display_line(const pos_emu_display_t *e, unsigned row, char out[21])
{
    memcpy(out, e->dec.text[row % POS_DISPLAY_ROWS], POS_DISPLAY_COLS);
    out[POS_DISPLAY_COLS] = '\0';
}

/* ---- Telium ---- */

enum { TEL_IDLE = 0, TEL_RX_REQ, TEL_WAIT_EOT, TEL_WAIT_ACK_ENQ, TEL_WAIT_REPLY_ACK };

static void tel_byte(pos_emu_telium_t *e, uint8_t b)
{
    pos_emu_port_send(&e->port, &b, 1);
}

static void tel_send_reply(pos_emu_telium_t *e, bool corrupt)
{
    uint8_t payload[POS_TELIUM_MAX_PAYLOAD], frame[POS_TELIUM_MAX_PAYLOAD + 3];
    size_t plen = 0, flen = 0;
    bool approve = e->mode != POS_EMU_TEL_DECLINE;
    pos_telium_reply_spec_t spec = {
        .pos_number = e->reply_pos != 0 ? e->reply_pos : e->req.pos_number,
        .status = approve ? '0' : '7',
        .amount_minor = e->reply_amount != 0 ? e->reply_amount : e->req.amount_minor,
        .payment_mode = e->req.payment_mode,
        .currency_numeric = e->req.currency_numeric,
        .private_data = e->reply_private != NULL ? e->reply_private : e->req.private_data,
        .pan = approve ? e->pan : NULL,
    };

    if (pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen) != 0 ||
        pos_telium_frame(payload, plen, frame, sizeof(frame), &flen) != 0) {
        return;
    }
    if (corrupt) {
        frame[flen - 1] ^= 0x5A;
    }
    pos_emu_port_send(&e->port, frame, flen);
}

static void tel_customer_done(uv_timer_t *t)
{
    pos_emu_telium_t *e = t->data;

    /* The card was read and, when approved, charged: now the terminal calls. */
    if (e->mode != POS_EMU_TEL_DECLINE) {
        e->charges++;
    }
    if (e->mode == POS_EMU_TEL_SILENT) {
        e->st = TEL_IDLE;
        return;
    }
    tel_byte(e, POS_TELIUM_ENQ);
    e->st = TEL_WAIT_ACK_ENQ;
}

/* POS_EMU_TEL_ENDLESS: more payload bytes of a frame that never ends. */
static void tel_flood(uv_timer_t *t)
{
    pos_emu_telium_t *e = t->data;
    uint8_t chunk[64];

    memset(chunk, '0', sizeof(chunk));
    if (pos_emu_port_send(&e->port, chunk, sizeof(chunk)) == 0) {
        e->flood_bytes += sizeof(chunk);
    }
}

/* POS_EMU_TEL_ENQ_LOOP: "may I send?" again, as if the ACK was not heard. */
static void tel_enq_again(uv_timer_t *t)
{
    pos_emu_telium_t *e = t->data;

    e->enq_repeats++;
    tel_byte(e, POS_TELIUM_ENQ);
}

static void tel_event(pos_emu_telium_t *e, pos_telium_event_t ev)
{
    size_t len;
    uint8_t *payload;

    if (ev == POS_TELIUM_EV_ENQ && e->st != TEL_WAIT_ACK_ENQ) {
        /* The register opens a session. */
        e->enqs++;
        if (e->mode == POS_EMU_TEL_NO_ACK) {
            return;
        }
        uv_timer_stop(&e->timer);
        tel_byte(e, POS_TELIUM_ACK);
        e->st = TEL_RX_REQ;
        return;
    }
    switch (e->st) {
    case TEL_RX_REQ:
        if (ev == POS_TELIUM_EV_FRAME) {
            payload = pos_telium_decoder_payload(&e->dec, &len);
            e->requests++;
            if (pos_telium_parse_request(payload, len, &e->req) != 0) {
                tel_byte(e, POS_TELIUM_NAK);
                e->naks_sent++;
                return;
            }
            if (e->mode == POS_EMU_TEL_NAK_BURST && !e->naked) {
                static const uint8_t naks[] = {POS_TELIUM_NAK, POS_TELIUM_NAK, POS_TELIUM_NAK,
                                               POS_TELIUM_NAK};
                e->naked = true;
                pos_emu_port_send(&e->port, naks, sizeof(naks));
                e->naks_sent += 4;
                return;
            }
            if (e->mode == POS_EMU_TEL_NAK_ONCE && !e->naked) {
                e->naked = true;
                tel_byte(e, POS_TELIUM_NAK);
                e->naks_sent++;
                return;
            }
            /* ACK_LOST: the line flips a bit of the ACK; the terminal
             * has the request all the same and runs it after EOT. */
            tel_byte(e, e->mode == POS_EMU_TEL_ACK_LOST ? POS_TELIUM_ACK | 0x80 : POS_TELIUM_ACK);
            e->st = TEL_WAIT_EOT;
        } else if (ev == POS_TELIUM_EV_BAD_LRC || ev == POS_TELIUM_EV_OVERSIZE) {
            tel_byte(e, POS_TELIUM_NAK);
            e->naks_sent++;
        } else if (ev == POS_TELIUM_EV_EOT) {
            e->st = TEL_IDLE;
        }
        return;
    case TEL_WAIT_EOT:
        if (ev == POS_TELIUM_EV_EOT) {
            uv_timer_start(&e->timer, tel_customer_done, e->delay_ms, 0);
            e->st = TEL_IDLE; /* until the customer is done */
        }
        return;
    case TEL_WAIT_ACK_ENQ:
        if (ev == POS_TELIUM_EV_ACK && e->mode == POS_EMU_TEL_ENQ_LOOP) {
            uv_timer_start(&e->timer, tel_enq_again, 100, 0);
            return;
        }
        if (ev == POS_TELIUM_EV_ACK && e->mode == POS_EMU_TEL_ENDLESS) {
            tel_byte(e, POS_TELIUM_STX);
            uv_timer_start(&e->timer, tel_flood, 0, 5);
            e->st = TEL_IDLE;
            return;
        }
        if (ev == POS_TELIUM_EV_ACK) {
            bool corrupt = e->mode == POS_EMU_TEL_BAD_LRC && !e->bad_sent;
            e->bad_sent = e->bad_sent || corrupt;
            tel_send_reply(e, corrupt);
            e->st = TEL_WAIT_REPLY_ACK;
        }
        return;
    case TEL_WAIT_REPLY_ACK:
        if (ev == POS_TELIUM_EV_ACK) {
            e->replies_acked++;
            tel_byte(e, POS_TELIUM_EOT);
            e->st = TEL_IDLE;
        } else if (ev == POS_TELIUM_EV_NAK) {
            e->naks_received++;
            tel_send_reply(e, false);
        }
        return;
    default:
        return;
    }
}

static void tel_rx(pos_emu_port_t *p, const uint8_t *buf, size_t len)
{
    pos_emu_telium_t *e = p->owner;

    for (size_t i = 0; i < len; i++) {
        pos_telium_event_t ev = pos_telium_decoder_feed(&e->dec, buf[i]);
        if (ev != POS_TELIUM_EV_NONE && ev != POS_TELIUM_EV_GARBAGE) {
            tel_event(e, ev);
        }
    }
}

int pos_emu_telium_start(pos_emu_telium_t *e, uv_loop_t *loop, pos_emu_telium_mode_t mode,
                         const char *pan, uint32_t delay_ms)
{
    memset(e, 0, sizeof(*e));
    e->mode = mode;
    e->pan = pan;
    e->delay_ms = delay_ms;
    pos_telium_decoder_init(&e->dec);
    uv_timer_init(loop, &e->timer);
    e->timer.data = e;
    e->port.owner = e;
    e->port.on_rx = tel_rx;
    return pos_emu_port_pty(&e->port, loop);
}

void pos_emu_telium_close(pos_emu_telium_t *e)
{
    uv_close((uv_handle_t *)&e->timer, NULL);
    pos_emu_port_close(&e->port);
}
