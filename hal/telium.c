#include "hal/telium.h"

#include <errno.h>
#include <string.h>

#include "hal/buf.h"

enum {
    ST_IDLE = 0, /* between frames */
    ST_FRAME,    /* after STX, collecting the payload */
    ST_LRC,      /* after ETX, the next byte is the LRC */
    ST_SKIP,     /* oversize frame: dropping bytes until ETX */
    ST_SKIP_LRC, /* oversize frame: dropping its LRC */
    ST_DONE,     /* a good frame was returned; payload readable */
};

uint8_t pos_telium_lrc(const uint8_t *data, size_t len)
{
    uint8_t x = 0;

    for (size_t i = 0; i < len; i++) {
        x ^= data[i];
    }
    return x;
}

static bool payload_ok(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F) {
            return false;
        }
    }
    return true;
}

int pos_telium_frame(const uint8_t *payload, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if ((payload == NULL && len) || out == NULL || out_len == NULL ||
        len > POS_TELIUM_MAX_PAYLOAD || !payload_ok(payload, len)) {
        return -EINVAL;
    }
    if (cap < len + POS_TELIUM_FRAME_OVERHEAD) {
        return -ENOSPC;
    }
    out[0] = POS_TELIUM_STX;
    if (len) {
        memcpy(out + 1, payload, len);
    }
    out[len + 1] = POS_TELIUM_ETX;
    out[len + 2] = pos_telium_lrc(out + 1, len + 1);
    *out_len = len + POS_TELIUM_FRAME_OVERHEAD;
    return 0;
}

/* Writes value as exactly "width" decimal digits; fails if it does not fit. */
static int put_digits(uint8_t *out, unsigned width, uint32_t value)
{
    for (unsigned i = width; i-- > 0;) {
        out[i] = (uint8_t)('0' + value % 10);
        value /= 10;
    }
    return value == 0 ? 0 : -EINVAL;
}

/* Reads exactly "width" decimal digits. */
static int get_digits(const uint8_t *in, unsigned width, uint32_t *value)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < width; i++) {
        if (in[i] < '0' || in[i] > '9') {
            return -EBADMSG;
        }
        v = v * 10 + (uint32_t)(in[i] - '0');
    }
    *value = v;
    return 0;
}

static bool printable(char c)
{
    return c >= 0x20 && c < 0x7F;
}

void pos_telium_request_defaults(pos_telium_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->pos_number = 1;
    req->want_report = true;
    req->payment_mode = '1';
    req->transaction_type = '0';
    req->currency_numeric = 978;
    memset(req->private_data, ' ', POS_TELIUM_PRIVATE_LEN);
    req->private_data[POS_TELIUM_PRIVATE_LEN] = '\0';
}

/* Copies up to 10 printable characters, padding with spaces. */
static int put_private(uint8_t *out, const char *priv)
{
    size_t n = priv ? strnlen(priv, POS_TELIUM_PRIVATE_LEN + 1) : 0;

    if (n > POS_TELIUM_PRIVATE_LEN) {
        return -EINVAL;
    }
    for (size_t i = 0; i < POS_TELIUM_PRIVATE_LEN; i++) {
        char c = i < n ? priv[i] : ' ';
        if (!printable(c)) {
            return -EINVAL;
        }
        out[i] = (uint8_t)c;
    }
    return 0;
}

int pos_telium_encode_request(const pos_telium_request_t *req, uint8_t out[POS_TELIUM_REQUEST_LEN])
{
    uint8_t tmp[POS_TELIUM_REQUEST_LEN];

    if (req == NULL || out == NULL || req->pos_number > 99 || req->amount_minor == 0 ||
        req->amount_minor > 99999999u || req->currency_numeric == 0 ||
        req->currency_numeric > 999 || !printable(req->payment_mode) ||
        !printable(req->transaction_type)) {
        return -EINVAL;
    }
    /* Offsets: 0 pos(2) 2 amount(8) 10 answer flag(1) 11 mode(1) 12 type(1)
     * 13 currency(3) 16 private(10) 26 delay(4) 30 authorisation(4). */
    put_digits(tmp, 2, req->pos_number);
    put_digits(tmp + 2, 8, req->amount_minor);
    tmp[10] = req->want_report ? '1' : '0';
    tmp[11] = (uint8_t)req->payment_mode;
    tmp[12] = (uint8_t)req->transaction_type;
    put_digits(tmp + 13, 3, req->currency_numeric);
    if (put_private(tmp + POS_TELIUM_PRIVATE_OFF, req->private_data) < 0) {
        return -EINVAL;
    }
    memcpy(tmp + 26, req->reply_immediately ? "A011" : "A010", 4);
    memcpy(tmp + 30, req->force_authorisation ? "B011" : "B010", 4);
    memcpy(out, tmp, sizeof(tmp));
    return 0;
}

int pos_telium_parse_request(const uint8_t *p, size_t len, pos_telium_request_t *req)
{
    uint32_t pos, amount, cur;

    if (p == NULL || req == NULL || len != POS_TELIUM_REQUEST_LEN || !payload_ok(p, len)) {
        return -EBADMSG;
    }
    if (get_digits(p, 2, &pos) < 0 || get_digits(p + 2, 8, &amount) < 0 ||
        get_digits(p + 13, 3, &cur) < 0 || (p[10] != '0' && p[10] != '1') ||
        (memcmp(p + 26, "A010", 4) != 0 && memcmp(p + 26, "A011", 4) != 0) ||
        (memcmp(p + 30, "B010", 4) != 0 && memcmp(p + 30, "B011", 4) != 0)) {
        return -EBADMSG;
    }
    req->pos_number = pos;
    req->amount_minor = amount;
    req->want_report = p[10] == '1';
    req->payment_mode = (char)p[11];
    req->transaction_type = (char)p[12];
    req->currency_numeric = cur;
    memcpy(req->private_data, p + POS_TELIUM_PRIVATE_OFF, POS_TELIUM_PRIVATE_LEN);
    req->private_data[POS_TELIUM_PRIVATE_LEN] = '\0';
    req->reply_immediately = p[29] == '1';
    req->force_authorisation = p[33] == '1';
    return 0;
}

void pos_telium_decoder_init(pos_telium_decoder_t *d)
{
    pos_buf_wipe_mem(d->payload, sizeof(d->payload));
    d->state = ST_IDLE;
    d->lrc = 0;
    d->len = 0;
    d->garbage = 0;
}

static void start_frame(pos_telium_decoder_t *d)
{
    /* The previous frame may have carried card data: clear it first. */
    pos_buf_wipe_mem(d->payload, d->len);
    d->len = 0;
    d->lrc = 0;
    d->state = ST_FRAME;
}

static pos_telium_event_t control_event(uint8_t byte)
{
    switch (byte) {
    case POS_TELIUM_ENQ:
        return POS_TELIUM_EV_ENQ;
    case POS_TELIUM_ACK:
        return POS_TELIUM_EV_ACK;
    case POS_TELIUM_NAK:
        return POS_TELIUM_EV_NAK;
    case POS_TELIUM_EOT:
        return POS_TELIUM_EV_EOT;
    default:
        return POS_TELIUM_EV_NONE;
    }
}

pos_telium_event_t pos_telium_decoder_feed(pos_telium_decoder_t *d, uint8_t byte)
{
    pos_telium_event_t ev;

    switch (d->state) {
    case ST_FRAME:
        if (byte == POS_TELIUM_ETX) {
            d->state = ST_LRC;
            return POS_TELIUM_EV_NONE;
        }
        if (byte == POS_TELIUM_STX) {
            /* Sender restarted: resynchronise on the new frame. */
            d->garbage++;
            start_frame(d);
            return POS_TELIUM_EV_NONE;
        }
        if (control_event(byte) != POS_TELIUM_EV_NONE) {
            /* ENQ/ACK/NAK/EOT cannot be payload: the frame was cut off. */
            d->garbage++;
            pos_buf_wipe_mem(d->payload, d->len);
            d->len = 0;
            d->state = ST_IDLE;
            return control_event(byte);
        }
        if (d->len == sizeof(d->payload)) {
            d->garbage++;
            pos_buf_wipe_mem(d->payload, d->len);
            d->len = 0;
            d->state = ST_SKIP;
            return POS_TELIUM_EV_NONE;
        }
        d->payload[d->len++] = byte;
        d->lrc ^= byte;
        return POS_TELIUM_EV_NONE;
    case ST_LRC:
        if (byte == (uint8_t)(d->lrc ^ POS_TELIUM_ETX)) {
            d->state = ST_DONE;
            return POS_TELIUM_EV_FRAME;
        }
        pos_buf_wipe_mem(d->payload, d->len);
        d->len = 0;
        d->state = ST_IDLE;
        return POS_TELIUM_EV_BAD_LRC;
    case ST_SKIP:
        if (byte == POS_TELIUM_ETX) {
            d->state = ST_SKIP_LRC;
        } else if (byte == POS_TELIUM_STX) {
            start_frame(d);
        } else if (control_event(byte) != POS_TELIUM_EV_NONE) {
            d->state = ST_IDLE;
            return control_event(byte);
        }
        return POS_TELIUM_EV_NONE;
    case ST_SKIP_LRC:
        d->state = ST_IDLE;
        return POS_TELIUM_EV_OVERSIZE;
    case ST_DONE:
        /* The frame has been handed out; forget (and wipe) it now. */
        pos_buf_wipe_mem(d->payload, d->len);
        d->len = 0;
        d->state = ST_IDLE;
        break;
    default:
        break;
    }
    /* ST_IDLE */
    if (byte == POS_TELIUM_STX) {
        start_frame(d);
        return POS_TELIUM_EV_NONE;
    }
    ev = control_event(byte);
    if (ev == POS_TELIUM_EV_NONE) {
        d->garbage++;
        return POS_TELIUM_EV_GARBAGE;
    }
    return ev;
}

uint8_t *pos_telium_decoder_payload(pos_telium_decoder_t *d, size_t *len)
{
    if (d->state != ST_DONE) {
        *len = 0;
        return d->payload;
    }
    *len = d->len;
    return d->payload;
}

const char *pos_telium_event_name(pos_telium_event_t ev)
{
    switch (ev) {
    case POS_TELIUM_EV_NONE:
        return "none";
    case POS_TELIUM_EV_ENQ:
        return "enq";
    case POS_TELIUM_EV_ACK:
        return "ack";
    case POS_TELIUM_EV_NAK:
        return "nak";
    case POS_TELIUM_EV_EOT:
        return "eot";
    case POS_TELIUM_EV_FRAME:
        return "frame";
    case POS_TELIUM_EV_BAD_LRC:
        return "bad_lrc";
    case POS_TELIUM_EV_OVERSIZE:
        return "oversize";
    case POS_TELIUM_EV_GARBAGE:
        return "garbage";
    }
    return "unknown";
}

int pos_pan_mask(const char *pan, size_t len, char *out, size_t cap)
{
    if (out != NULL && cap > 0) {
        out[0] = '\0';
    }
    if (pan == NULL || out == NULL || len < 12 || len > 19) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (pan[i] < '0' || pan[i] > '9') {
            return -EINVAL;
        }
    }
    if (cap < len + 1) {
        return -ENOSPC;
    }
    /* The last four always (what a receipt and the cloud match on); of the
     * first six, only as many as leave six digits hidden, the rule every
     * masked number that leaves the agent is held to
     * (pos_msg_pan_is_masked): 15-digit AMEX numbers showed five hidden
     * and were replaced by a placeholder, their last four lost. */
    size_t lead = len - 4 - 6 < 6 ? len - 4 - 6 : 6;
    for (size_t i = 0; i < len; i++) {
        out[i] = i < lead || i >= len - 4 ? pan[i] : 'X';
    }
    out[len] = '\0';
    return 0;
}

/* Reply payload offsets (with report / without): pos 0(2), status 2(1),
 * amount 3(8), mode 11(1), [report 12(55)], currency 67/12(3),
 * private 70/15(10). */
int pos_telium_parse_reply(uint8_t *p, size_t len, pos_telium_reply_t *out)
{
    uint32_t pos, amount, cur;
    size_t off;
    int rc = 0;

    if (p == NULL || out == NULL) {
        return -EBADMSG;
    }
    memset(out, 0, sizeof(*out));
    if (len != POS_TELIUM_REPLY_LEN && len != POS_TELIUM_REPLY_FULL_LEN) {
        pos_buf_wipe_mem(p, len);
        return -EBADMSG;
    }
    out->has_report = len == POS_TELIUM_REPLY_FULL_LEN;
    if (out->has_report) {
        /* The report starts with the card number when the terminal sends
         * one; mask it right away, then wipe the whole field. */
        uint8_t *rep = p + 12;
        size_t digits = 0;
        while (digits < 19 && rep[digits] >= '0' && rep[digits] <= '9') {
            digits++;
        }
        bool ends = digits == POS_TELIUM_REPORT_LEN || rep[digits] < '0' || rep[digits] > '9';
        if (digits && ends) {
            (void)pos_pan_mask((const char *)rep, digits, out->masked_pan, sizeof(out->masked_pan));
        }
        pos_buf_wipe_mem(rep, POS_TELIUM_REPORT_LEN);
        off = 12 + POS_TELIUM_REPORT_LEN;
    } else {
        off = 12;
    }
    if (get_digits(p, 2, &pos) < 0 || get_digits(p + 3, 8, &amount) < 0 ||
        get_digits(p + off, 3, &cur) < 0 || !printable((char)p[2]) || !printable((char)p[11])) {
        rc = -EBADMSG;
    }
    for (size_t i = 0; rc == 0 && i < POS_TELIUM_PRIVATE_LEN; i++) {
        if (!printable((char)p[off + 3 + i])) {
            rc = -EBADMSG;
        }
    }
    if (rc < 0) {
        pos_buf_wipe_mem(out->masked_pan, sizeof(out->masked_pan));
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->pos_number = pos;
    out->status = (char)p[2];
    out->approved = p[2] == '0';
    out->amount_minor = amount;
    out->payment_mode = (char)p[11];
    out->currency_numeric = cur;
    memcpy(out->private_data, p + off + 3, POS_TELIUM_PRIVATE_LEN);
    out->private_data[POS_TELIUM_PRIVATE_LEN] = '\0';
    return 0;
}

int pos_telium_encode_reply(const pos_telium_reply_spec_t *spec, uint8_t *out, size_t cap,
                            size_t *out_len)
{
    uint8_t tmp[POS_TELIUM_REPLY_FULL_LEN];
    size_t off = 12;

    if (spec == NULL || out == NULL || out_len == NULL || spec->pos_number > 99 ||
        spec->amount_minor > 99999999u || spec->currency_numeric > 999 ||
        !printable(spec->status) || !printable(spec->payment_mode)) {
        return -EINVAL;
    }
    put_digits(tmp, 2, spec->pos_number);
    tmp[2] = (uint8_t)spec->status;
    put_digits(tmp + 3, 8, spec->amount_minor);
    tmp[11] = (uint8_t)spec->payment_mode;
    if (spec->pan != NULL) {
        size_t n = strnlen(spec->pan, POS_TELIUM_REPORT_LEN + 1);
        if (n > POS_TELIUM_REPORT_LEN) {
            return -EINVAL;
        }
        for (size_t i = 0; i < POS_TELIUM_REPORT_LEN; i++) {
            char c = i < n ? spec->pan[i] : ' ';
            if (!printable(c)) {
                pos_buf_wipe_mem(tmp, sizeof(tmp));
                return -EINVAL;
            }
            tmp[12 + i] = (uint8_t)c;
        }
        off += POS_TELIUM_REPORT_LEN;
    }
    put_digits(tmp + off, 3, spec->currency_numeric);
    if (put_private(tmp + off + 3, spec->private_data) < 0) {
        pos_buf_wipe_mem(tmp, sizeof(tmp));
        return -EINVAL;
    }
    size_t len = off + 3 + POS_TELIUM_PRIVATE_LEN;
    if (cap < len) {
        pos_buf_wipe_mem(tmp, sizeof(tmp));
        return -ENOSPC;
    }
    memcpy(out, tmp, len);
    pos_buf_wipe_mem(tmp, sizeof(tmp));
    *out_len = len;
    return 0;
}
