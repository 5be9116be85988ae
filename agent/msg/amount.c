#include "agent/msg/amount.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* Largest integer such that every integer up to it is a double. */
#define AMOUNT_DOUBLE_EXACT_MAX 9007199254740992.0 /* 2^53 */

/* Relative tolerance of pos_amount_from_double(). */
#define AMOUNT_DOUBLE_TOLERANCE 1e-9

static const pos_currency_t currencies[] = {
    {"AUD", 36, 2},  {"BHD", 48, 3},  {"CAD", 124, 2}, {"CHF", 756, 2}, {"CZK", 203, 2},
    {"DKK", 208, 2}, {"EUR", 978, 2}, {"GBP", 826, 2}, {"JPY", 392, 0}, {"KWD", 414, 3},
    {"NOK", 578, 2}, {"PLN", 985, 2}, {"SEK", 752, 2}, {"USD", 840, 2},
};

static const int64_t pow10_table[POS_AMOUNT_MAX_DIGITS + 1] = {1, 10, 100, 1000, 10000};

int pos_amount_currency(const char *alpha, pos_currency_t *out)
{
    if (alpha == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++) {
        if (strcmp(alpha, currencies[i].alpha) == 0) {
            *out = currencies[i];
            return 0;
        }
    }
    return -EINVAL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* *v = *v * 10 + d, refusing to go past INT64_MAX. */
static int mul10_add(int64_t *v, int d)
{
    if (*v > (INT64_MAX - d) / 10) {
        return -ERANGE;
    }
    *v = *v * 10 + d;
    return 0;
}

int pos_amount_parse(const char *text, size_t len, unsigned digits, int64_t max_minor,
                     unsigned flags, int64_t *out_minor)
{
    size_t i = 0, int_len, frac_start = 0, frac_len = 0;
    int64_t value = 0;

    if (text == NULL || len == 0 || digits > POS_AMOUNT_MAX_DIGITS) {
        return -EINVAL;
    }

    /* Syntax first, so that "99999999999999999999x" is -EINVAL, not -ERANGE. */
    while (i < len && is_digit(text[i])) {
        i++;
    }
    int_len = i;
    if (int_len == 0) {
        return -EINVAL; /* "", ".5", "-1", "+1", " 1" */
    }
    if (int_len > 1 && text[0] == '0') {
        return -EINVAL; /* "012" reads like octal or a typo; JSON forbids it too */
    }
    if (i < len && text[i] == '.') {
        frac_start = ++i;
        while (i < len && is_digit(text[i])) {
            i++;
        }
        frac_len = i - frac_start;
        if (frac_len == 0) {
            return -EINVAL; /* "1." */
        }
    }
    if (i != len) {
        return -EINVAL; /* exponent, second point, comma, trailing space, NUL... */
    }
    if (frac_len > digits) {
        return -EINVAL; /* more precision than the currency has */
    }

    for (size_t k = 0; k < int_len; k++) {
        if (mul10_add(&value, text[k] - '0') != 0) {
            return -ERANGE;
        }
    }
    for (size_t k = 0; k < digits; k++) {
        int d = k < frac_len ? text[frac_start + k] - '0' : 0;
        if (mul10_add(&value, d) != 0) {
            return -ERANGE;
        }
    }
    if (value == 0 && !(flags & POS_AMOUNT_ZERO_OK)) {
        return -ERANGE;
    }
    if (value > max_minor) {
        return -ERANGE;
    }
    *out_minor = value;
    return 0;
}

int pos_amount_from_double(double major, unsigned digits, int64_t max_minor, unsigned flags,
                           int64_t *out_minor)
{
    double scaled, diff;
    int64_t k;

    if (digits > POS_AMOUNT_MAX_DIGITS || !isfinite(major) || signbit(major)) {
        return -EINVAL;
    }
    if (major == 0.0) {
        if (!(flags & POS_AMOUNT_ZERO_OK) || max_minor < 0) {
            return -ERANGE;
        }
        *out_minor = 0;
        return 0;
    }
    scaled = major * (double)pow10_table[digits];
    /* Range before conversion: casting a double beyond int64 is undefined. */
    if (scaled >= AMOUNT_DOUBLE_EXACT_MAX || scaled > (double)max_minor + 0.5) {
        return -ERANGE;
    }
    k = (int64_t)(scaled + 0.5); /* scaled > 0, so this rounds to nearest */
    diff = scaled - (double)k;
    if (diff < 0) {
        diff = -diff;
    }
    if (diff > AMOUNT_DOUBLE_TOLERANCE * scaled) {
        return -EINVAL;
    }
    if (k == 0) {
        return -EINVAL; /* unreachable with the tolerance above, kept for clarity */
    }
    if (k > max_minor) {
        return -ERANGE;
    }
    *out_minor = k;
    return 0;
}

int pos_amount_format(int64_t minor, unsigned digits, char *buf, size_t len)
{
    char tmp[POS_AMOUNT_TEXT_MAX];
    size_t n = 0, out = 0;
    uint64_t mag;

    if (buf != NULL && len > 0) {
        buf[0] = '\0';
    }
    if (digits > POS_AMOUNT_MAX_DIGITS) {
        return -EINVAL;
    }
    /* Magnitude as unsigned so that INT64_MIN needs no special case. */
    mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;

    /* Digits in reverse, with at least digits + 1 of them ("0.05"). */
    do {
        tmp[n++] = (char)('0' + (int)(mag % 10));
        mag /= 10;
    } while (mag > 0 || n < (size_t)digits + 1);

    if (buf == NULL || len < n + (minor < 0) + (digits > 0) + 1) {
        return -ENOSPC;
    }
    if (minor < 0) {
        buf[out++] = '-';
    }
    while (n > 0) {
        if (n == digits && digits > 0) {
            buf[out++] = '.';
        }
        buf[out++] = tmp[--n];
    }
    buf[out] = '\0';
    return (int)out;
}
