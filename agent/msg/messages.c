#include "agent/msg/messages.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest integer a JSON number carries exactly through a double: 2^53 - 1. */
#define MSG_INT_MAX 9007199254740991LL

/* Raw number tokens remembered per message (top-level and line fields). */
#define MSG_RAW_MAX 256

/* cJSON copies at most 63 bytes of a number token; longer ones fail to parse. */
#define MSG_NUMBER_TOKEN_MAX 63

/*
 * cJSON 1.7.15 keeps only the double of a number, and a double cannot say
 * whether the cloud wrote 12.3, 12.30 or 1.23e1. So the decoder walks the
 * text once more: numbers appear in the text in the same order as in a
 * depth-first walk of the parsed tree, which maps each number node back to
 * its own bytes. Only nodes at depth 1 (message fields) and 3 (fields of
 * the objects in "lines") are remembered: nothing deeper is ever read.
 */
typedef struct msg_raw {
    const cJSON *node;
    const char *text;
    size_t len;
} msg_raw_t;

typedef struct msg_ctx {
    const char *json;
    size_t len;
    size_t lex_pos; /* where the next number token search starts */
    msg_raw_t raw[MSG_RAW_MAX];
    size_t raw_count;
    bool raw_overflow;
    const pos_msg_limits_t *limits;
    const char *type_name; /* for "why"; a constant, never input */
    char *why;
    size_t whylen;
} msg_ctx_t;

typedef int (*msg_decode_fn)(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out);

typedef struct msg_type_info {
    const char *name;
    pos_msg_type_t type;
    pos_msg_channel_t channel;
    msg_decode_fn decode;
} msg_type_info_t;

/* ---- reasons ---------------------------------------------------------- */

static int fail(msg_ctx_t *ctx, int rc, const char *field, const char *problem)
{
    if (ctx->why != NULL && ctx->whylen > 0) {
        if (field != NULL) {
            snprintf(ctx->why, ctx->whylen, "%s: field %s: %s", ctx->type_name, field, problem);
        } else {
            snprintf(ctx->why, ctx->whylen, "%s: %s", ctx->type_name, problem);
        }
    }
    return rc;
}

/* ---- byte-level checks ------------------------------------------------ */

/*
 * Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
 * Also refuses NUL, which JSON never needs raw and which would cut C strings.
 */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp, min;

        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1Fu, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0Fu, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= need) {
            return false;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += need + 1;
    }
    return true;
}

/*
 * Text meant for a display, a receipt or a log: valid UTF-8 without C0/C1
 * control characters or DEL, so that no escape sequence reaches a device.
 */
static bool text_valid(const char *s, size_t max_bytes, bool allow_empty)
{
    size_t len = strlen(s);
    const unsigned char *u = (const unsigned char *)s;

    if (len > max_bytes || (len == 0 && !allow_empty)) {
        return false;
    }
    if (!utf8_valid(u, len)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] == 0x7F) {
            return false;
        }
        /* C1 controls are U+0080..U+009F, encoded C2 80..C2 9F. */
        if (u[i] == 0xC2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F) {
            return false;
        }
    }
    return true;
}

static bool printable_ascii(const char *s, size_t min_len, size_t max_len)
{
    size_t len = strlen(s);

    if (len < min_len || len > max_len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7E) {
            return false;
        }
    }
    return true;
}

/* 1..max bytes, each one ok() accepts; the NUL must come within max + 1 bytes. */
static bool token_valid(const char *s, size_t max, bool (*ok)(char c))
{
    size_t n;

    if (s == NULL) {
        return false;
    }
    /* strnlen: an array without its NUL is refused, not over-read. */
    n = strnlen(s, max + 1);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ok(s[i])) {
            return false;
        }
    }
    return true;
}

static bool id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static bool reason_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool pos_msg_id_valid(const char *s)
{
    return token_valid(s, POS_MSG_ID_MAX, id_char);
}

bool pos_msg_reason_valid(const char *s)
{
    return token_valid(s, POS_MSG_REASON_MAX, reason_char);
}

bool pos_msg_pan_is_masked(const char *pan)
{
    size_t len, i = 0, lead = 0, mask = 0, trail = 0;

    if (pan == NULL) {
        return false;
    }
    len = strlen(pan);
    if (len > POS_MSG_PAN_MAX) {
        return false;
    }
    while (i < len && pan[i] >= '0' && pan[i] <= '9') {
        lead++, i++;
    }
    while (i < len && (pan[i] == '*' || pan[i] == 'X')) {
        mask++, i++;
    }
    while (i < len && pan[i] >= '0' && pan[i] <= '9') {
        trail++, i++;
    }
    return i == len && lead <= 6 && mask >= 6 && trail <= 4;
}

/* ---- raw number tokens ------------------------------------------------- */

static bool number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.';
}

/*
 * Finds the next number token at or after ctx->lex_pos, outside strings.
 * Literals (true, false, null) hold no digit or '-', so any '-' or digit
 * outside a string starts a number.
 */
static bool lex_next_number(msg_ctx_t *ctx, const char **tok, size_t *tok_len)
{
    size_t i = ctx->lex_pos;

    while (i < ctx->len) {
        char c = ctx->json[i];
        if (c == '"') {
            for (i++; i < ctx->len && ctx->json[i] != '"'; i++) {
                if (ctx->json[i] == '\\') {
                    i++;
                }
            }
            i++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            while (i < ctx->len && number_char(ctx->json[i])) {
                i++;
            }
            *tok = ctx->json + start;
            *tok_len = i - start;
            ctx->lex_pos = i;
            return true;
        }
        i++;
    }
    ctx->lex_pos = i;
    return false;
}

/*
 * "\u0000" would silently cut a string short in cJSON ("tx-1\u0000x" read
 * as "tx-1"). Counts them; with "out" (len bytes), also writes the text
 * with each one turned into "\u001f", a control character that no id,
 * amount or text field accepts: the message is still refused, but a
 * request whose own transactionId is clean can be named in the answer.
 */
static size_t escaped_nuls(const char *json, size_t len, char *out)
{
    bool in_string = false;
    size_t n = 0;

    if (out != NULL) {
        memcpy(out, json, len);
    }
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = json[i] == '"';
            continue;
        }
        if (json[i] == '"') {
            in_string = false;
        } else if (json[i] == '\\') {
            if (i + 5 < len && json[i + 1] == 'u' && memcmp(json + i + 2, "0000", 4) == 0) {
                n++;
                if (out != NULL) {
                    memcpy(out + i + 4, "1f", 2);
                }
            }
            i++;
        }
    }
    return n;
}

/* Depth-first walk in text order, pairing number nodes with their tokens. */
static int map_numbers(msg_ctx_t *ctx, const cJSON *node, int depth)
{
    for (; node != NULL; node = node->next) {
        if (cJSON_IsNumber(node)) {
            const char *tok;
            size_t tok_len;
            if (!lex_next_number(ctx, &tok, &tok_len)) {
                return -EBADMSG;
            }
            if (depth == 1 || depth == 3) {
                if (ctx->raw_count == MSG_RAW_MAX) {
                    ctx->raw_overflow = true;
                } else {
                    ctx->raw[ctx->raw_count++] = (msg_raw_t){node, tok, tok_len};
                }
            }
        }
        if (node->child != NULL) {
            int rc = map_numbers(ctx, node->child, depth + 1);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* The bytes of a number node, cross-checked against cJSON's own value. */
static int raw_number(msg_ctx_t *ctx, const cJSON *node, const char **tok, size_t *tok_len)
{
    for (size_t i = 0; i < ctx->raw_count; i++) {
        if (ctx->raw[i].node == node) {
            char buf[MSG_NUMBER_TOKEN_MAX + 1];
            size_t n = ctx->raw[i].len;
            if (n > MSG_NUMBER_TOKEN_MAX) {
                return -EBADMSG;
            }
            memcpy(buf, ctx->raw[i].text, n);
            buf[n] = '\0';
            /* Same token, same double: otherwise the pairing went wrong. */
            if (strtod(buf, NULL) != node->valuedouble) {
                return -EBADMSG;
            }
            *tok = ctx->raw[i].text;
            *tok_len = n;
            return 0;
        }
    }
    return -EBADMSG; /* more numeric fields than MSG_RAW_MAX before this one */
}

/* ---- field access -------------------------------------------------------- */

/* 0 and *item when "name" appears once, -ENOENT when absent, -EBADMSG when twice. */
static int field(const cJSON *obj, const char *name, const cJSON **item)
{
    const cJSON *found = NULL;

    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, name) == 0) {
            if (found != NULL) {
                return -EBADMSG;
            }
            found = c;
        }
    }
    *item = found;
    return found != NULL ? 0 : -ENOENT;
}

static int field_or_fail(msg_ctx_t *ctx, const cJSON *obj, const char *name, bool required,
                         const cJSON **item)
{
    int rc = field(obj, name, item);

    if (rc == -EBADMSG) {
        return fail(ctx, -EBADMSG, name, "duplicated");
    }
    if (rc == -ENOENT) {
        return required ? fail(ctx, -EINVAL, name, "missing") : -ENOENT;
    }
    return 0;
}

typedef bool (*str_check_fn)(const char *s, size_t max);

static bool check_id(const char *s, size_t max)
{
    return pos_msg_id_valid(s) && strlen(s) <= max;
}

static bool check_text(const char *s, size_t max)
{
    return text_valid(s, max, false);
}

static bool check_sig(const char *s, size_t max)
{
    return printable_ascii(s, 1, max);
}

/*
 * Copies a string field into dst (dst_size >= max + 1) after "check".
 * Returns 0, -ENOENT when optional and absent, or a failure.
 */
static int get_string(msg_ctx_t *ctx, const cJSON *obj, const char *name, bool required,
                      str_check_fn check, size_t max, char *dst, size_t dst_size)
{
    const cJSON *item;
    int rc = field_or_fail(ctx, obj, name, required, &item);

    if (rc != 0) {
        return rc;
    }
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return fail(ctx, -EINVAL, name, "not a string");
    }
    if (!check(item->valuestring, max) || strlen(item->valuestring) >= dst_size) {
        return fail(ctx, -EINVAL, name, "invalid");
    }
    memcpy(dst, item->valuestring, strlen(item->valuestring) + 1);
    return 0;
}

/* An integer written as one: -?[0-9]+ without leading zeros, in [min, max]. */
static int int_from_token(const char *tok, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    int64_t v = 0;

    if (len > 0 && tok[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || (tok[i] == '0' && len - i > 1)) {
        return -EINVAL;
    }
    for (; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9') {
            return -EINVAL;
        }
        if (v > (MSG_INT_MAX - (tok[i] - '0')) / 10) {
            return -ERANGE;
        }
        v = v * 10 + (tok[i] - '0');
    }
    v = neg ? -v : v;
    if (v < min || v > max) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

static int get_int(msg_ctx_t *ctx, const cJSON *obj, const char *name, bool required,
                   int64_t min, int64_t max, int64_t *out)
{
    const cJSON *item;
    const char *tok;
    size_t tok_len;
    int rc = field_or_fail(ctx, obj, name, required, &item);

    if (rc != 0) {
        return rc;
    }
    if (!cJSON_IsNumber(item)) {
        return fail(ctx, -EINVAL, name, "not a number");
    }
    if (raw_number(ctx, item, &tok, &tok_len) != 0) {
        return fail(ctx, -EBADMSG, name, "unreadable number");
    }
    if (int_from_token(tok, tok_len, min, max, out) != 0) {
        return fail(ctx, -EINVAL, name, "not an integer in range");
    }
    return 0;
}

/*
 * An amount as a JSON string or number, in the currency's digits. The
 * text is kept in "text" (text_size >= POS_MSG_AMOUNT_TEXT_MAX + 1) if not NULL.
 */
static int get_amount(msg_ctx_t *ctx, const cJSON *obj, const char *name, unsigned digits,
                      unsigned flags, int64_t *out, char *text, size_t text_size)
{
    const cJSON *item;
    const char *tok;
    size_t tok_len;
    int rc = field_or_fail(ctx, obj, name, true, &item);

    if (rc != 0) {
        return rc;
    }
    if (cJSON_IsString(item) && item->valuestring != NULL) {
        tok = item->valuestring;
        tok_len = strlen(tok);
    } else if (cJSON_IsNumber(item)) {
        if (raw_number(ctx, item, &tok, &tok_len) != 0) {
            return fail(ctx, -EBADMSG, name, "unreadable number");
        }
    } else {
        return fail(ctx, -EINVAL, name, "not a number or string");
    }
    if (tok_len > POS_MSG_AMOUNT_TEXT_MAX) {
        return fail(ctx, -EINVAL, name, "too long");
    }
    rc = pos_amount_parse(tok, tok_len, digits, ctx->limits->max_amount_minor, flags, out);
    if (rc == -ERANGE) {
        return fail(ctx, -EINVAL, name, "out of range");
    }
    if (rc != 0) {
        return fail(ctx, -EINVAL, name, "not a decimal amount");
    }
    if (text != NULL && text_size > tok_len) {
        memcpy(text, tok, tok_len);
        text[tok_len] = '\0';
    }
    return 0;
}

/* ---- per-type decoders ------------------------------------------------- */

static int decode_lines(msg_ctx_t *ctx, const cJSON *root, pos_msg_payment_t *p)
{
    const cJSON *arr;
    int rc = field_or_fail(ctx, root, "lines", false, &arr);

    p->line_count = 0;
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (!cJSON_IsArray(arr)) {
        return fail(ctx, -EINVAL, "lines", "not an array");
    }
    for (const cJSON *el = arr->child; el != NULL; el = el->next) {
        pos_msg_line_t *line;
        int64_t qty;

        if (p->line_count == POS_MSG_LINES_MAX) {
            return fail(ctx, -EINVAL, "lines", "too many");
        }
        if (!cJSON_IsObject(el)) {
            return fail(ctx, -EINVAL, "lines", "element not an object");
        }
        line = &p->lines[p->line_count];
        rc = get_string(ctx, el, "name", true, check_text, POS_MSG_LINE_NAME_MAX, line->name,
                        sizeof(line->name));
        if (rc == 0) {
            rc = get_int(ctx, el, "qty", true, 1, POS_MSG_LINE_QTY_MAX, &qty);
        }
        if (rc == 0) {
            rc = get_amount(ctx, el, "amount", p->currency.digits, POS_AMOUNT_ZERO_OK,
                            &line->unit_minor, NULL, 0);
        }
        if (rc != 0) {
            return rc;
        }
        line->qty = (uint16_t)qty;
        p->line_count++;
    }
    return 0;
}

static int decode_payment(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out)
{
    pos_msg_payment_t *p = &out->u.payment;
    char currency[8];
    int64_t ts;
    int rc;

    rc = get_string(ctx, root, "transactionId", true, check_id, POS_MSG_ID_MAX,
                    p->transaction_id, sizeof(p->transaction_id));
    if (rc != 0) {
        return rc;
    }
    /* From here on the request can be answered PAYMENT_REJECTED "invalid". */
    rc = get_string(ctx, root, "currency", true, check_id, 3, currency, sizeof(currency));
    if (rc == 0 && pos_amount_currency(currency, &p->currency) != 0) {
        rc = fail(ctx, -EINVAL, "currency", "unknown");
    }
    if (rc == 0) {
        rc = get_amount(ctx, root, "amount", p->currency.digits, 0, &p->amount_minor,
                        p->amount_text, sizeof(p->amount_text));
    }
    if (rc == 0) {
        rc = decode_lines(ctx, root, p);
    }
    if (rc == 0) {
        rc = get_int(ctx, root, "ts", false, 0, MSG_INT_MAX, &ts);
        p->has_ts = rc == 0;
        p->ts_ms = rc == 0 ? ts : 0;
        rc = rc == -ENOENT ? 0 : rc;
    }
    if (rc == 0) {
        rc = get_string(ctx, root, "sig", false, check_sig, POS_MSG_SIG_MAX, p->sig,
                        sizeof(p->sig));
        rc = rc == -ENOENT ? 0 : rc;
    }
    if (rc != 0) {
        memcpy(out->reject_transaction_id, p->transaction_id, sizeof(p->transaction_id));
    }
    return rc;
}

static int decode_tx(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out)
{
    return get_string(ctx, root, "transactionId", true, check_id, POS_MSG_ID_MAX,
                      out->u.tx.transaction_id, sizeof(out->u.tx.transaction_id));
}

static int decode_display(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out)
{
    pos_msg_display_t *d = &out->u.display;
    const cJSON *arr;
    int rc = field_or_fail(ctx, root, "lines", true, &arr);

    if (rc != 0) {
        return rc;
    }
    if (!cJSON_IsArray(arr)) {
        return fail(ctx, -EINVAL, "lines", "not an array");
    }
    d->line_count = 0;
    for (const cJSON *el = arr->child; el != NULL; el = el->next) {
        if (d->line_count == POS_MSG_DISPLAY_LINES_MAX) {
            return fail(ctx, -EINVAL, "lines", "too many");
        }
        if (!cJSON_IsString(el) || el->valuestring == NULL) {
            return fail(ctx, -EINVAL, "lines", "element not a string");
        }
        if (!text_valid(el->valuestring, POS_MSG_DISPLAY_LINE_MAX, true)) {
            return fail(ctx, -EINVAL, "lines", "invalid");
        }
        strcpy(d->lines[d->line_count++], el->valuestring);
    }
    if (d->line_count == 0) {
        return fail(ctx, -EINVAL, "lines", "empty");
    }
    return 0;
}

static int decode_inventory(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out)
{
    pos_msg_inventory_t *inv = &out->u.inventory;
    int rc;

    /* Required: productId and quantity; storeId (the channel's, checked by
     * the scope) and lowStockThreshold may be left out (CONTRACT.md). */
    rc = get_string(ctx, root, "storeId", false, check_id, POS_MSG_ID_MAX, inv->store_id,
                    sizeof(inv->store_id));
    rc = rc == -ENOENT ? 0 : rc;
    if (rc == 0) {
        rc = get_string(ctx, root, "productId", true, check_id, POS_MSG_ID_MAX, inv->product_id,
                        sizeof(inv->product_id));
    }
    if (rc == 0) {
        rc = get_int(ctx, root, "quantity", true, -MSG_INT_MAX, MSG_INT_MAX, &inv->quantity);
    }
    if (rc == 0) {
        rc = get_int(ctx, root, "lowStockThreshold", false, 0, MSG_INT_MAX,
                     &inv->low_stock_threshold);
        inv->has_threshold = rc == 0;
        rc = rc == -ENOENT ? 0 : rc;
    }
    return rc;
}

static int decode_alert(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out)
{
    static const char severities[][9] = {"info", "warning", "critical"};
    pos_msg_alert_t *a = &out->u.alert;
    char severity[16];
    int rc;

    rc = get_string(ctx, root, "severity", true, check_id, 8, severity, sizeof(severity));
    if (rc != 0) {
        return rc;
    }
    rc = -EINVAL;
    for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++) {
        if (strcmp(severity, severities[i]) == 0) {
            a->severity = (pos_msg_severity_t)i;
            rc = 0;
        }
    }
    if (rc != 0) {
        return fail(ctx, -EINVAL, "severity", "unknown");
    }
    rc = get_string(ctx, root, "message", true, check_text, POS_MSG_ALERT_MAX, a->message,
                    sizeof(a->message));
    if (rc != 0) {
        return rc;
    }
    rc = get_string(ctx, root, "storeId", false, check_id, POS_MSG_ID_MAX, a->store_id,
                    sizeof(a->store_id));
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    rc = get_string(ctx, root, "terminalId", false, check_id, POS_MSG_ID_MAX, a->terminal_id,
                    sizeof(a->terminal_id));
    return rc == -ENOENT ? 0 : rc;
}

static int decode_invalidate(msg_ctx_t *ctx, const cJSON *root, pos_msg_t *out)
{
    return get_string(ctx, root, "pattern", true, check_text, POS_MSG_PATTERN_MAX,
                      out->u.invalidate.pattern, sizeof(out->u.invalidate.pattern));
}

static const msg_type_info_t msg_types[] = {
    {"PAYMENT_REQUESTED", POS_MSG_PAYMENT_REQUESTED, POS_MSG_CH_PAYMENT, decode_payment},
    {"PAYMENT_CANCELLED", POS_MSG_PAYMENT_CANCELLED, POS_MSG_CH_PAYMENT, decode_tx},
    {"RECEIPT_REPRINT", POS_MSG_RECEIPT_REPRINT, POS_MSG_CH_PAYMENT, decode_tx},
    {"DISPLAY_MESSAGE", POS_MSG_DISPLAY_MESSAGE, POS_MSG_CH_PAYMENT, decode_display},
    {"INVENTORY_UPDATED", POS_MSG_INVENTORY_UPDATED, POS_MSG_CH_INVENTORY, decode_inventory},
    {"LOW_STOCK_ALERT", POS_MSG_LOW_STOCK_ALERT, POS_MSG_CH_INVENTORY, decode_inventory},
    {"SYSTEM_ALERT", POS_MSG_SYSTEM_ALERT, POS_MSG_CH_SYSTEM, decode_alert},
    {"CACHE_INVALIDATE", POS_MSG_CACHE_INVALIDATE, POS_MSG_CH_SYSTEM, decode_invalidate},
};

const char *pos_msg_type_name(pos_msg_type_t type)
{
    for (size_t i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++) {
        if (msg_types[i].type == type) {
            return msg_types[i].name;
        }
    }
    return "";
}

/* ---- decode entry point ------------------------------------------------ */

/*
 * A message belongs to the channel it came on: a top-level "storeId" or
 * "terminalId" (when present, and when the caller gave the channel's) must
 * name the channel's own. Returns 0, -EINVAL (not an id) or -EPERM.
 */
static int check_scope(msg_ctx_t *ctx, const cJSON *root, const char *name, const char *want)
{
    char have[POS_MSG_ID_MAX + 1];
    int rc;

    if (want == NULL) {
        return 0;
    }
    rc = get_string(ctx, root, name, false, check_id, POS_MSG_ID_MAX, have, sizeof(have));
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (strcmp(have, want) != 0) {
        return fail(ctx, -EPERM, name, "names another than the channel's");
    }
    return 0;
}

static int decode_root(msg_ctx_t *ctx, pos_msg_channel_t channel, const cJSON *root,
                       pos_msg_t *out)
{
    const cJSON *item;
    const msg_type_info_t *info = NULL;
    int rc;

    if (!cJSON_IsObject(root)) {
        return fail(ctx, -EBADMSG, NULL, "not a JSON object");
    }
    rc = field_or_fail(ctx, root, "origin", false, &item);
    if (rc == -EBADMSG) {
        return rc;
    }
    if (rc == 0 && cJSON_IsString(item) && item->valuestring != NULL &&
        strcmp(item->valuestring, "terminal") == 0) {
        return fail(ctx, -EALREADY, NULL, "echo of a terminal message");
    }
    if (rc == 0 && cJSON_IsString(item) && item->valuestring != NULL &&
        strcmp(item->valuestring, "pos-app") == 0) {
        out->origin = POS_MSG_FROM_POS_APP;
        /* A POS application publishes on its store's transaction and
         * inventory channels only: elsewhere it is nobody's message. */
        if (channel != POS_MSG_CH_INVENTORY) {
            return fail(ctx, -EALREADY, NULL, "a POS application's message on a cloud channel");
        }
    }
    rc = field_or_fail(ctx, root, "type", false, &item);
    if (rc == -EBADMSG) {
        return rc;
    }
    if (rc == -ENOENT) {
        return fail(ctx, -ENOMSG, NULL, "missing type");
    }
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return fail(ctx, -ENOMSG, NULL, "type not a string");
    }
    for (size_t i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++) {
        if (strcmp(item->valuestring, msg_types[i].name) == 0) {
            info = &msg_types[i];
        }
    }
    if (info == NULL) {
        return fail(ctx, -ENOMSG, NULL, "unknown type"); /* the value may be anything */
    }
    ctx->type_name = info->name;
    if (info->channel != channel) {
        return fail(ctx, -ENOMSG, NULL, "type not carried by this channel");
    }
    out->type = info->type;

    if (map_numbers(ctx, root->child, 1) != 0) {
        return fail(ctx, -EBADMSG, NULL, "number tokens do not match");
    }
    if (out->origin == POS_MSG_FROM_POS_APP) {
        /* Stamped by the publishing till's agent: which till it was. */
        rc = get_string(ctx, root, "terminalId", true, check_id, POS_MSG_ID_MAX,
                        out->origin_terminal, sizeof(out->origin_terminal));
        if (rc != 0) {
            return rc;
        }
    }
    rc = info->decode(ctx, root, out);
    bool decoded = rc == 0;
    if (rc == 0) {
        rc = check_scope(ctx, root, "storeId", ctx->limits->store_id);
    }
    if (rc == 0) {
        rc = check_scope(ctx, root, "terminalId", ctx->limits->terminal_id);
    }
    if (rc == 0 && (out->type == POS_MSG_INVENTORY_UPDATED || out->type == POS_MSG_LOW_STOCK_ALERT) &&
        out->u.inventory.store_id[0] == '\0' && ctx->limits->store_id != NULL) {
        /* Left out: the channel's store is the one meant. */
        if (!check_id(ctx->limits->store_id, POS_MSG_ID_MAX)) {
            return fail(ctx, -EINVAL, "storeId", "channel's store invalid");
        }
        memcpy(out->u.inventory.store_id, ctx->limits->store_id,
               strlen(ctx->limits->store_id) + 1);
    }
    if (rc != 0 && decoded && out->type == POS_MSG_PAYMENT_REQUESTED) {
        /* Its scope refused (another till's, or a storeId or terminalId
         * that is no id): answered PAYMENT_REJECTED, as every request gets
         * a first answer. */
        memcpy(out->reject_transaction_id, out->u.payment.transaction_id,
               sizeof(out->reject_transaction_id));
    }
    return rc;
}

int pos_msg_decode(pos_msg_channel_t channel, const char *json, size_t len,
                   const pos_msg_limits_t *limits, pos_msg_t *out, char *why, size_t whylen)
{
    static const pos_msg_limits_t defaults = {POS_MSG_DEFAULT_MAX_LEN, INT64_MAX, NULL, NULL};
    msg_ctx_t *ctx;
    const char *end = NULL;
    char *nul_free = NULL; /* the text with every \u0000 made \u001f, when it has one */
    cJSON *root;
    size_t max_len;
    int rc;

    if (why != NULL && whylen > 0) {
        why[0] = '\0';
    }
    if (out == NULL) {
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (json == NULL || (unsigned)channel >= POS_MSG_CH_COUNT) {
        return -EINVAL;
    }
    if (limits == NULL) {
        limits = &defaults;
    }
    max_len = limits->max_len != 0 ? limits->max_len : POS_MSG_DEFAULT_MAX_LEN;

    /* The context holds the raw token table: heap, not a 6 KiB stack frame. */
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return -ENOMEM;
    }
    ctx->json = json;
    ctx->len = len;
    ctx->limits = limits;
    ctx->type_name = "message";
    ctx->why = why;
    ctx->whylen = whylen;

    if (len > max_len) {
        rc = fail(ctx, -EMSGSIZE, NULL, "too large");
        goto done;
    }
    if (!utf8_valid((const unsigned char *)json, len)) {
        rc = fail(ctx, -EBADMSG, NULL, "not UTF-8 text");
        goto done;
    }
    if (escaped_nuls(json, len, NULL) > 0) {
        nul_free = malloc(len);
        if (nul_free == NULL) {
            rc = -ENOMEM;
            goto done;
        }
        escaped_nuls(json, len, nul_free);
        json = nul_free;
        ctx->json = json;
    }
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root == NULL) {
        rc = fail(ctx, -EBADMSG, NULL, "not JSON");
        goto done;
    }
    while (end != NULL && end < json + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (end != json + len) {
        rc = fail(ctx, -EBADMSG, NULL, "trailing bytes after JSON");
    } else {
        rc = decode_root(ctx, channel, root, out);
    }
    cJSON_Delete(root);
    if (nul_free != NULL && rc != -EALREADY) {
        /* Never acted on; a request that names a clean id is answered. */
        if (rc == 0 && out->type == POS_MSG_PAYMENT_REQUESTED) {
            memcpy(out->reject_transaction_id, out->u.payment.transaction_id,
                   sizeof(out->reject_transaction_id));
        }
        rc = fail(ctx, -EBADMSG, NULL, "a string holds \\u0000");
    }

done:
    if (rc != 0) {
        /* Only the type, the origin and the rejectable id survive a failure. */
        pos_msg_type_t type = out->type;
        pos_msg_origin_t origin = out->origin;
        char reject[POS_MSG_ID_MAX + 1];
        memcpy(reject, out->reject_transaction_id, sizeof(reject));
        memset(out, 0, sizeof(*out));
        out->type = type;
        out->origin = origin;
        memcpy(out->reject_transaction_id, reject, sizeof(reject));
    }
    free(nul_free);
    free(ctx);
    return rc;
}

/* ---- encoders ----------------------------------------------------------- */

static const char out_type_names[POS_MSG_OUT_COUNT][22] = {
    "PAYMENT_PROCESSING", "PAYMENT_APPROVED", "PAYMENT_DECLINED", "PAYMENT_CANCELLED",
    "PAYMENT_REJECTED",   "RECEIPT_PRINTED",  "RECEIPT_FAILED",   "TRANSACTION_COMPLETED",
};

const char *pos_msg_out_type_name(pos_msg_out_type_t type)
{
    if ((unsigned)type >= POS_MSG_OUT_COUNT) {
        return "";
    }
    return out_type_names[type];
}

/* NUL within the array, so that a garbage struct cannot make us over-read. */
static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static bool money_valid(const pos_msg_out_t *m)
{
    pos_currency_t c;

    if (m->amount_minor <= 0 || !terminated(m->currency.alpha, sizeof(m->currency.alpha))) {
        return false;
    }
    return pos_amount_currency(m->currency.alpha, &c) == 0 && c.digits == m->currency.digits;
}

static int out_validate(const pos_msg_out_t *m, const char *terminal_id, const char *store_id)
{
    if ((unsigned)m->type >= POS_MSG_OUT_COUNT || !pos_msg_id_valid(terminal_id) ||
        !pos_msg_id_valid(store_id) ||
        !terminated(m->transaction_id, sizeof(m->transaction_id)) ||
        !pos_msg_id_valid(m->transaction_id)) {
        return -EINVAL;
    }
    if (m->type == POS_MSG_OUT_PAYMENT_APPROVED) {
        if (!terminated(m->masked_pan, sizeof(m->masked_pan)) ||
            !pos_msg_pan_is_masked(m->masked_pan) ||
            !terminated(m->card_brand, sizeof(m->card_brand)) ||
            !text_valid(m->card_brand, POS_MSG_BRAND_MAX, true)) {
            return -EINVAL;
        }
    }
    if (m->type == POS_MSG_OUT_PAYMENT_APPROVED || m->type == POS_MSG_OUT_TRANSACTION_COMPLETED) {
        if (!money_valid(m) || !terminated(m->auth_code, sizeof(m->auth_code)) ||
            (m->auth_code[0] != '\0' && !printable_ascii(m->auth_code, 1, POS_MSG_AUTH_MAX))) {
            return -EINVAL;
        }
    }
    if (m->type == POS_MSG_OUT_PAYMENT_DECLINED || m->type == POS_MSG_OUT_PAYMENT_REJECTED ||
        m->type == POS_MSG_OUT_RECEIPT_FAILED) {
        if (!pos_msg_reason_valid(m->reason)) {
            return -EINVAL;
        }
    }
    return 0;
}

/* Adds a raw number token; false on allocation failure. */
static bool add_raw(cJSON *obj, const char *name, const char *raw)
{
    return cJSON_AddRawToObject(obj, name, raw) != NULL;
}

static bool add_str(cJSON *obj, const char *name, const char *value)
{
    return cJSON_AddStringToObject(obj, name, value) != NULL;
}

static bool add_money(cJSON *obj, const pos_msg_out_t *m)
{
    char amount[POS_AMOUNT_TEXT_MAX];

    if (pos_amount_format(m->amount_minor, m->currency.digits, amount, sizeof(amount)) < 0) {
        return false;
    }
    return add_raw(obj, "amount", amount) && add_str(obj, "currency", m->currency.alpha);
}

int pos_msg_encode(const pos_msg_out_t *m, const char *terminal_id, const char *store_id,
                   uint64_t ts_ms, char *buf, size_t len)
{
    char ts[24];
    cJSON *o;
    bool ok;
    int rc;

    if (buf != NULL && len > 0) {
        buf[0] = '\0';
    }
    if (m == NULL || buf == NULL) {
        return -EINVAL;
    }
    rc = out_validate(m, terminal_id, store_id);
    if (rc != 0) {
        return rc;
    }
    o = cJSON_CreateObject();
    if (o == NULL) {
        return -ENOMEM;
    }
    ok = add_str(o, "type", out_type_names[m->type]) && add_str(o, "origin", "terminal") &&
         add_str(o, "terminalId", terminal_id) && add_str(o, "storeId", store_id) &&
         add_str(o, "transactionId", m->transaction_id);
    switch (m->type) {
    case POS_MSG_OUT_PAYMENT_APPROVED:
        ok = ok && add_money(o, m) && add_str(o, "authCode", m->auth_code) &&
             add_str(o, "maskedPan", m->masked_pan) && add_str(o, "cardBrand", m->card_brand);
        break;
    case POS_MSG_OUT_PAYMENT_DECLINED:
    case POS_MSG_OUT_PAYMENT_REJECTED:
    case POS_MSG_OUT_RECEIPT_FAILED:
        ok = ok && add_str(o, "reason", m->reason);
        break;
    case POS_MSG_OUT_TRANSACTION_COMPLETED:
        ok = ok && add_money(o, m) && add_str(o, "authCode", m->auth_code) &&
             add_str(o, "receipt", m->receipt_printed ? "printed" : "failed");
        break;
    default:
        break;
    }
    snprintf(ts, sizeof(ts), "%" PRIu64, ts_ms);
    ok = ok && add_raw(o, "ts", ts);
    if (!ok) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    ok = cJSON_PrintPreallocated(o, buf, len > INT_MAX ? INT_MAX : (int)len, 0);
    cJSON_Delete(o);
    if (!ok) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return -ENOSPC;
    }
    return (int)strlen(buf);
}
