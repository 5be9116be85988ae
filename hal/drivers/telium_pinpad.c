/*
 * Ingenico Telium pinpad, "Caisse" protocol E+ over a serial (or USB CDC)
 * line: the link layer around the pure codecs of hal/telium.h.
 *
 *   send:    ENQ -> ACK, STX request ETX LRC -> ACK (NAK: resend), EOT
 *   receive: (customer) ENQ -> ACK, STX reply ETX LRC -> ACK (bad: NAK), EOT
 *
 * Outcomes: the request refused (NAK) every time -> ERROR (not charged); once
 * the request was written, silence or a lost link -> UNKNOWN (the card may
 * have been charged; never retried here). abort() only works before the request
 * is acknowledged: E+ has no way to stop the terminal afterwards, so the
 * driver keeps waiting and the real result follows. See
 * docs/telium-protocol.md, "The pinpad driver".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal/buf.h"
#include "hal/drivers/drivers.h"
#include "hal/pinpad.h"
#include "hal/telium.h"
#include "platform/log.h"
#include "platform/stream.h"

/* Write deadline of a control byte or a frame, ms. */
#define TEL_WRITE_DEADLINE_MS 2000u
/* Wait for the terminal's EOT after we acknowledged its reply, ms. */
#define TEL_EOT_WAIT_MS POS_TELIUM_ACK_TIMEOUT_MS
/* Bytes of one reply that re-arm the byte timer: a whole frame. Past them a
 * frame that never ends (a flood, a stuck line) no longer holds the
 * payment open; the timer then ends it. */
#define TEL_FRAME_BYTES_MAX (POS_TELIUM_MAX_PAYLOAD + POS_TELIUM_FRAME_OVERHEAD)

typedef enum tel_phase {
    TEL_IDLE = 0,
    TEL_ENQ_SENT,   /* waiting for ACK to our ENQ */
    TEL_REQ_SENT,   /* request frame written, waiting for ACK/NAK */
    TEL_WAIT_ENQ,   /* request acknowledged, EOT sent: the customer pays */
    TEL_RECV,       /* we acknowledged the terminal's ENQ: its reply frame comes */
    TEL_WAIT_EOT,   /* reply acknowledged: waiting for the terminal's EOT */
} tel_phase_t;

typedef struct telium_pinpad {
    pos_drv_port_t port; /* its timer: the protocol's deadlines */
    bool up;

    tel_phase_t phase;
    bool req_written;   /* some attempt of the request frame reached the stream */
    bool req_unheard;   /* a written attempt got neither ACK nor NAK: it may be running */
    unsigned req_queued; /* sends of the request frame not yet out of the stream */
    bool abort_pending; /* abort() after the request was acknowledged */
    unsigned tries;     /* ENQ or frame transmissions in this step */
    unsigned bad_frames;
    unsigned enq_repeats; /* the terminal's ENQ again while its reply is awaited */
    size_t frame_bytes;   /* bytes of the awaited reply frame so far */
    uint32_t customer_ms;
    int64_t amount_minor;
    unsigned currency_numeric;
    unsigned pos_number;                      /* the register number sent */
    uint8_t priv[POS_TELIUM_PRIVATE_LEN + 1]; /* the private data sent, padded */
    uint8_t frame[POS_TELIUM_MAX_PAYLOAD + POS_TELIUM_FRAME_OVERHEAD];
    size_t frame_len;
    pos_telium_decoder_t dec;
    pos_hal_event_t result; /* the reply, held until the terminal's EOT */
} telium_pinpad_t;

static void tel_send_byte(telium_pinpad_t *t, uint8_t byte)
{
    /* A failed write takes the stream down; on_down settles the payment. */
    (void)pos_stream_write(&t->port.stream, &byte, 1, TEL_WRITE_DEADLINE_MS, NULL);
}

static void tel_finish(telium_pinpad_t *t, pos_hal_event_t *ev)
{
    t->phase = TEL_IDLE;
    t->abort_pending = false;
    uv_timer_stop(&t->port.timer);
    pos_telium_decoder_init(&t->dec);
    pos_buf_wipe_mem(t->frame, sizeof(t->frame));
    t->port.dev->state = POS_HAL_IDLE;
    pos_hal_set_status(t->port.dev, t->up ? POS_DEV_READY : POS_DEV_OFFLINE);
    pos_hal_emit(t->port.dev, ev);
    pos_buf_wipe_mem(ev, sizeof(*ev));
}

static void tel_fail(telium_pinpad_t *t, pos_pinpad_outcome_t outcome, const char *reason)
{
    pos_hal_event_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = POS_HAL_EV_PINPAD_RESULT;
    ev.pinpad.outcome = outcome;
    ev.pinpad.amount_minor = t->amount_minor;
    snprintf(ev.pinpad.reason, sizeof(ev.pinpad.reason), "%s", reason);
    tel_finish(t, &ev);
}

/* Ends the session with EOT, then fails the payment. */
static void tel_end(telium_pinpad_t *t, pos_pinpad_outcome_t outcome, const char *reason)
{
    tel_send_byte(t, POS_TELIUM_EOT);
    tel_fail(t, outcome, reason);
}

/* The reply held until the terminal's EOT is the result: settle with it. */
static void tel_finish_reply(telium_pinpad_t *t)
{
    pos_hal_event_t ev = t->result;

    pos_buf_wipe_mem(&t->result, sizeof(t->result));
    tel_finish(t, &ev);
}

/* Wipes a frame nobody waits for (a repeated or unexpected reply). */
static void tel_drop_frame(telium_pinpad_t *t)
{
    size_t len;

    pos_buf_wipe_mem(pos_telium_decoder_payload(&t->dec, &len), POS_TELIUM_MAX_PAYLOAD);
}

static void tel_timeout(uv_timer_t *h);

static void tel_arm(telium_pinpad_t *t, uint32_t ms)
{
    uv_timer_start(&t->port.timer, tel_timeout, ms, 0);
}

static void tel_send_enq(telium_pinpad_t *t)
{
    t->tries++;
    t->phase = TEL_ENQ_SENT;
    tel_send_byte(t, POS_TELIUM_ENQ);
    tel_arm(t, POS_TELIUM_ACK_TIMEOUT_MS);
}

static void tel_send_request(telium_pinpad_t *t)
{
    t->tries++;
    t->phase = TEL_REQ_SENT;
    int rc = pos_stream_write(&t->port.stream, t->frame, t->frame_len, TEL_WRITE_DEADLINE_MS, t);
    if (rc == 0) {
        t->req_written = true;
        t->req_queued++;
    }
    tel_arm(t, POS_TELIUM_ACK_TIMEOUT_MS);
}

/*
 * The request went unacknowledged (silence or NAK): send it again, unless
 * an abort waits or the tries are used up. Only NAKs prove the terminal
 * never took it (CANCELLED, or ERROR "gave_up": not charged); after a
 * written attempt met silence, its ACK may have been lost on the line
 * and the terminal may be running it: UNKNOWN.
 */
static void tel_retry_request(telium_pinpad_t *t, const char *gave_up)
{
    bool stop = t->abort_pending || t->tries > POS_TELIUM_MAX_RETRIES;

    if (stop && t->req_unheard) {
        POS_WARN("hal", "pinpad: request sent but never answered; outcome unknown");
        tel_end(t, POS_PINPAD_UNKNOWN, "no_ack");
    } else if (t->abort_pending) {
        tel_end(t, POS_PINPAD_CANCELLED, "aborted");
    } else if (t->tries > POS_TELIUM_MAX_RETRIES) {
        POS_WARN("hal", "pinpad: request not acknowledged (%s)", gave_up);
        tel_end(t, POS_PINPAD_ERROR, gave_up);
    } else {
        tel_send_request(t);
    }
}

static void tel_timeout(uv_timer_t *h)
{
    telium_pinpad_t *t = h->data;

    switch (t->phase) {
    case TEL_ENQ_SENT:
        if (t->tries > POS_TELIUM_MAX_RETRIES) {
            POS_WARN("hal", "pinpad: no answer to ENQ");
            tel_end(t, POS_PINPAD_ERROR, "offline");
            return;
        }
        tel_send_byte(t, POS_TELIUM_EOT);
        tel_send_enq(t);
        return;
    case TEL_REQ_SENT:
        t->req_unheard = t->req_unheard || t->req_written;
        tel_retry_request(t, "no_ack");
        return;
    case TEL_WAIT_ENQ:
    case TEL_RECV:
        /* The terminal has the request: the card may have been charged. */
        POS_WARN("hal", "pinpad: no reply; outcome unknown");
        tel_fail(t, POS_PINPAD_UNKNOWN, "no_reply");
        return;
    case TEL_WAIT_EOT:
        tel_finish_reply(t); /* the reply is known: EOT is a formality */
        return;
    case TEL_IDLE:
        return;
    }
}

static const char *tel_brand(const char *masked)
{
    if (masked[0] == '4') {
        return "VISA";
    }
    if (masked[0] == '5' && masked[1] >= '1' && masked[1] <= '5') {
        return "MASTERCARD";
    }
    if (masked[0] == '2' && masked[1] >= '2' && masked[1] <= '7') {
        return "MASTERCARD";
    }
    if (masked[0] == '3' && (masked[1] == '4' || masked[1] == '7')) {
        return "AMEX";
    }
    return "";
}

/* Copies the echoed private data, trimmed of its space padding. */
static void tel_trimmed(char *out, size_t cap, const char *in)
{
    size_t n = strlen(in);

    while (n > 0 && in[n - 1] == ' ') {
        n--;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, in, n);
    out[n] = '\0';
}

/*
 * True when a parsed reply answers the request this payment sent: the
 * terminal echoes the register number and the private data (our
 * reference), and an approval names the amount and currency it charged.
 * Anything else is some other transaction's reply (a late one, another
 * register's) or a different charge: never this payment's approval.
 */
static bool tel_reply_matches(const telium_pinpad_t *t, const pos_telium_reply_t *r)
{
    if (r->pos_number != t->pos_number ||
        memcmp(r->private_data, t->priv, POS_TELIUM_PRIVATE_LEN) != 0) {
        return false;
    }
    return !r->approved || ((int64_t)r->amount_minor == t->amount_minor &&
                            r->currency_numeric == t->currency_numeric);
}

/* A reply frame with a good LRC: parse (masks the PAN, wipes the buffer),
 * acknowledge, and hold the result until the terminal's EOT. */
static void tel_on_reply(telium_pinpad_t *t)
{
    pos_telium_reply_t r;
    pos_hal_event_t *ev = &t->result;
    size_t len;
    uint8_t *payload = pos_telium_decoder_payload(&t->dec, &len);
    int rc = pos_telium_parse_reply(payload, len, &r);

    pos_buf_wipe_mem(payload, len);
    tel_send_byte(t, POS_TELIUM_ACK);
    memset(ev, 0, sizeof(*ev));
    ev->type = POS_HAL_EV_PINPAD_RESULT;
    ev->pinpad.amount_minor = t->amount_minor;
    if (rc != 0) {
        /* Acknowledged but unreadable: what the terminal did is unknown. */
        ev->pinpad.outcome = POS_PINPAD_UNKNOWN;
        snprintf(ev->pinpad.reason, sizeof(ev->pinpad.reason), "bad_reply");
    } else if (!tel_reply_matches(t, &r)) {
        /* The terminal reports a transaction, not ours: what happened to
         * ours is unknown (and a card was charged if this one was approved). */
        POS_WARN("hal", "pinpad: reply (%s) does not echo this payment's request; outcome unknown",
                 r.approved ? "approved" : "not approved");
        ev->pinpad.outcome = POS_PINPAD_UNKNOWN;
        snprintf(ev->pinpad.reason, sizeof(ev->pinpad.reason), "mismatch");
    } else if (r.approved) {
        ev->pinpad.outcome = POS_PINPAD_APPROVED;
        ev->pinpad.amount_minor = r.amount_minor;
        /* E+ has no authorisation code: the echoed reference stands for it. */
        tel_trimmed(ev->pinpad.auth_code, sizeof(ev->pinpad.auth_code), r.private_data);
        snprintf(ev->pinpad.masked_pan, sizeof(ev->pinpad.masked_pan), "%s", r.masked_pan);
        snprintf(ev->pinpad.card_brand, sizeof(ev->pinpad.card_brand), "%s",
                 tel_brand(r.masked_pan));
    } else {
        ev->pinpad.outcome = POS_PINPAD_DECLINED;
        snprintf(ev->pinpad.reason, sizeof(ev->pinpad.reason), "%s",
                 r.status == '7' ? "declined" : "not_handled");
    }
    pos_buf_wipe_mem(&r, sizeof(r));
    t->phase = TEL_WAIT_EOT;
    tel_arm(t, TEL_EOT_WAIT_MS);
}

static void tel_on_event(telium_pinpad_t *t, pos_telium_event_t e)
{
    if (e == POS_TELIUM_EV_FRAME && t->phase != TEL_RECV && t->phase != TEL_WAIT_EOT) {
        /* A whole frame where none is awaited (no ENQ first, or our
         * request's turn): never read, and its bytes (a card number,
         * maybe) wiped now rather than at the next byte, which may not
         * come for minutes. */
        tel_drop_frame(t);
        return;
    }
    switch (t->phase) {
    case TEL_ENQ_SENT:
        if (e == POS_TELIUM_EV_ACK) {
            t->tries = 0;
            tel_send_request(t);
        }
        return; /* NAK or noise: the timer retries the ENQ */
    case TEL_REQ_SENT:
        if (e == POS_TELIUM_EV_ACK) {
            /* From here on the terminal runs the payment; a pending abort
             * cannot stop it any more (E+ has no abort): the result follows. */
            tel_send_byte(t, POS_TELIUM_EOT);
            t->phase = TEL_WAIT_ENQ;
            tel_arm(t, t->customer_ms);
        } else if (e == POS_TELIUM_EV_NAK && t->req_queued == 0) {
            tel_retry_request(t, "nak");
        }
        /* A NAK before the frame it would answer has even left is not its
         * answer (a burst of NAKs, line noise): counting it would give up
         * early, as ERROR, on a frame the terminal may still accept. */
        return;
    case TEL_WAIT_ENQ:
        if (e == POS_TELIUM_EV_ENQ) {
            tel_send_byte(t, POS_TELIUM_ACK);
            pos_telium_decoder_init(&t->dec);
            t->bad_frames = 0;
            t->enq_repeats = 0;
            t->frame_bytes = 0;
            t->phase = TEL_RECV;
            tel_arm(t, POS_TELIUM_ACK_TIMEOUT_MS);
        }
        return;
    case TEL_RECV:
        if (e == POS_TELIUM_EV_FRAME) {
            tel_on_reply(t);
        } else if (e == POS_TELIUM_EV_BAD_LRC || e == POS_TELIUM_EV_OVERSIZE) {
            if (++t->bad_frames > POS_TELIUM_MAX_RETRIES) {
                tel_end(t, POS_PINPAD_UNKNOWN, "bad_reply");
                return;
            }
            tel_send_byte(t, POS_TELIUM_NAK);
            t->frame_bytes = 0;
            tel_arm(t, POS_TELIUM_ACK_TIMEOUT_MS);
        } else if (e == POS_TELIUM_EV_ENQ) {
            /* The terminal did not hear our ACK and asks again; as often
             * as a frame may be resent, not for ever. */
            if (++t->enq_repeats > POS_TELIUM_MAX_RETRIES) {
                tel_end(t, POS_PINPAD_UNKNOWN, "bad_reply");
                return;
            }
            tel_send_byte(t, POS_TELIUM_ACK);
            t->frame_bytes = 0;
            tel_arm(t, POS_TELIUM_ACK_TIMEOUT_MS);
        }
        return;
    case TEL_WAIT_EOT:
        if (e == POS_TELIUM_EV_EOT) {
            tel_finish_reply(t);
        } else if (e == POS_TELIUM_EV_FRAME) {
            /* Our ACK was lost and the same reply came again. */
            tel_drop_frame(t);
            tel_send_byte(t, POS_TELIUM_ACK);
        }
        return;
    case TEL_IDLE:
        if (e == POS_TELIUM_EV_FRAME) {
            tel_drop_frame(t);
        }
        return; /* nothing runs: ignore the terminal */
    }
}

static void tel_on_data(pos_stream_t *s, const uint8_t *buf, size_t len)
{
    telium_pinpad_t *t = s->data;

    for (size_t i = 0; i < len; i++) {
        pos_telium_event_t e = pos_telium_decoder_feed(&t->dec, buf[i]);
        if (e == POS_TELIUM_EV_NONE) {
            if (t->phase == TEL_RECV && t->dec.state != 0 &&
                ++t->frame_bytes <= TEL_FRAME_BYTES_MAX) {
                /* Bytes of the frame keep coming: 3 s between bytes at most,
                 * for as many bytes as a frame can have. */
                tel_arm(t, POS_TELIUM_ACK_TIMEOUT_MS);
            }
            continue;
        }
        if (e == POS_TELIUM_EV_GARBAGE) {
            continue;
        }
        tel_on_event(t, e);
    }
}

static void tel_on_write_done(pos_stream_t *s, void *ctx, int status)
{
    telium_pinpad_t *t = s->data;

    (void)status; /* a failed write takes the stream down: on_down settles */
    if (ctx == t && t->req_queued > 0) {
        t->req_queued--;
    }
}

static void tel_on_open(pos_stream_t *s)
{
    telium_pinpad_t *t = s->data;

    t->up = true;
    pos_telium_decoder_init(&t->dec);
    if (t->phase == TEL_IDLE) {
        pos_hal_set_status(t->port.dev, POS_DEV_READY);
    }
}

static void tel_on_down(pos_stream_t *s, int err)
{
    telium_pinpad_t *t = s->data;

    POS_WARN("hal", "pinpad: link down: %s", strerror(-err));
    t->up = false;
    pos_telium_decoder_init(&t->dec);
    switch (t->phase) {
    case TEL_IDLE:
        pos_hal_set_status(t->port.dev, POS_DEV_OFFLINE);
        return;
    case TEL_ENQ_SENT:
        tel_fail(t, POS_PINPAD_ERROR, "offline");
        return;
    case TEL_REQ_SENT:
    case TEL_WAIT_ENQ:
    case TEL_RECV:
        if (!t->req_written) {
            tel_fail(t, POS_PINPAD_ERROR, "offline");
            return;
        }
        tel_fail(t, POS_PINPAD_UNKNOWN, "link_lost");
        return;
    case TEL_WAIT_EOT:
        tel_finish_reply(t); /* the reply was received: it stands */
        return;
    }
}

static const pos_stream_callbacks_t tel_stream_cb = {
    .on_open = tel_on_open,
    .on_data = tel_on_data,
    .on_down = tel_on_down,
    .on_write_done = tel_on_write_done,
};

static int tel_open(pos_hal_device_t *dev)
{
    telium_pinpad_t *t = dev->driver_data;

    return pos_drv_port_open(&t->port, &tel_stream_cb, true);
}

/* The last 10 printable characters of the transaction id: our reference,
 * echoed by the terminal. */
static void tel_private(const char *txid, char out[POS_TELIUM_PRIVATE_LEN + 1])
{
    size_t n = strlen(txid);
    const char *s = n > POS_TELIUM_PRIVATE_LEN ? txid + n - POS_TELIUM_PRIVATE_LEN : txid;
    size_t i = 0;

    for (; *s != '\0' && i < POS_TELIUM_PRIVATE_LEN; s++) {
        out[i++] = (*s >= 0x20 && *s <= 0x7e) ? *s : '?';
    }
    out[i] = '\0';
}

static int tel_start(pos_hal_device_t *dev, const pos_pinpad_request_t *req)
{
    telium_pinpad_t *t = dev->driver_data;
    pos_telium_request_t tr;
    uint8_t payload[POS_TELIUM_REQUEST_LEN];
    int rc;

    if (req == NULL) {
        return -EINVAL;
    }
    if (t->phase != TEL_IDLE) {
        return -EBUSY;
    }
    if (!t->up) {
        return -ENODEV;
    }
    if (req->amount_minor <= 0 || req->amount_minor > 99999999 || req->currency_numeric == 0 ||
        req->currency_numeric > 999) {
        return -EINVAL;
    }
    pos_telium_request_defaults(&tr);
    tr.amount_minor = (uint32_t)req->amount_minor;
    tr.currency_numeric = req->currency_numeric;
    tel_private(req->transaction_id, tr.private_data);
    rc = pos_telium_encode_request(&tr, payload);
    if (rc == 0) {
        rc = pos_telium_frame(payload, sizeof(payload), t->frame, sizeof(t->frame),
                              &t->frame_len);
    }
    if (rc != 0) {
        return rc;
    }
    t->amount_minor = req->amount_minor;
    t->currency_numeric = req->currency_numeric;
    t->pos_number = tr.pos_number;
    memcpy(t->priv, payload + POS_TELIUM_PRIVATE_OFF, POS_TELIUM_PRIVATE_LEN); /* as sent, padded */
    t->customer_ms =
        req->timeout_ms > 0 ? req->timeout_ms : POS_TELIUM_CUSTOMER_TIMEOUT_S * 1000u;
    t->tries = 0;
    t->req_written = false;
    t->req_unheard = false;
    t->req_queued = 0;
    t->abort_pending = false;
    pos_telium_decoder_init(&t->dec);
    dev->state = POS_HAL_BUSY;
    pos_hal_set_status(dev, POS_DEV_BUSY);
    tel_send_enq(t);
    return 0;
}

static int tel_abort(pos_hal_device_t *dev)
{
    telium_pinpad_t *t = dev->driver_data;

    switch (t->phase) {
    case TEL_IDLE:
        return -EALREADY;
    case TEL_ENQ_SENT:
        /* Nothing was sent yet: end the session and stop. */
        tel_end(t, POS_PINPAD_CANCELLED, "aborted");
        return 0;
    case TEL_REQ_SENT:
        /* The frame may be in the terminal already: only its answer can
         * tell. NAK -> cancelled; silence -> unknown (its ACK may have been
         * lost); ACK -> it runs, result follows. */
        t->abort_pending = true;
        return 0;
    default:
        /* E+ cannot stop the terminal: the customer may cancel on the
         * keypad; the result still arrives. */
        t->abort_pending = true;
        return 0;
    }
}

static void tel_release(void *owner)
{
    telium_pinpad_t *t = owner;

    pos_buf_wipe_mem(t, sizeof(*t));
    free(t);
}

static void tel_close(pos_hal_device_t *dev)
{
    telium_pinpad_t *t = dev->driver_data;

    pos_drv_port_close(&t->port, tel_release);
}

static const struct pos_pinpad_api telium_pinpad_api = {
    .lc = {.driver = "telium", .open = tel_open, .close = tel_close},
    .start = tel_start,
    .abort = tel_abort,
};

int pos_telium_pinpad_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    telium_pinpad_t *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return -ENOMEM;
    }
    if (pos_drv_port_init(&t->port, t, dev, POS_STREAM_SERIAL, args, o) != 0) {
        free(t);
        return -EINVAL;
    }
    pos_telium_decoder_init(&t->dec);
    dev->api = &telium_pinpad_api;
    dev->driver_data = t;
    return 0;
}
