#ifndef AGENT_MSG_AMOUNT_H
#define AGENT_MSG_AMOUNT_H

/*
 * Money amounts as exact integers of minor units (cents, pence, fils...).
 * Pure: no I/O, no locale, no floating point on the textual path.
 *
 * The cloud sends a decimal number of major units ("12.34", or the JSON
 * number 12.34); the agent never lets a binary double decide what a
 * customer is charged: text is parsed digit by digit, and the double
 * variant only accepts values that are, within 1e-9 relative, an exact
 * multiple of one minor unit.
 */

#include <stddef.h>
#include <stdint.h>

/* Largest number of minor digits a currency may have here (ISO 4217 uses 0..4). */
#define POS_AMOUNT_MAX_DIGITS 4

/* Flag for pos_amount_parse()/pos_amount_from_double(): accept 0 (free receipt lines). */
#define POS_AMOUNT_ZERO_OK 0x1u

/* Longest text pos_amount_format() can produce for an int64, with NUL. */
#define POS_AMOUNT_TEXT_MAX 24

/* One ISO 4217 currency. */
typedef struct pos_currency {
    char alpha[4];    /* "EUR", NUL-terminated */
    uint16_t numeric; /* ISO 4217 numeric code, e.g. 978 (sent to the pinpad) */
    uint8_t digits;   /* minor digits: 2 for EUR, 0 for JPY, 3 for KWD */
} pos_currency_t;

/*
 * Looks up an ISO 4217 alphabetic code, exactly three upper-case letters
 * ("eur" is not accepted: the cloud sends canonical codes). Copies the
 * entry into *out. Returns 0, or -EINVAL for an unknown or malformed code.
 */
int pos_amount_currency(const char *alpha, pos_currency_t *out);

/*
 * Parses a decimal amount of major units, exactly "len" bytes of "text"
 * (no NUL needed), into minor units for a currency with "digits" minor
 * digits: "12.3" with digits 2 gives 1230.
 *
 * Grammar: DIGITS [ "." DIGITS ], no sign, no exponent, no spaces, no
 * thousands separator, no leading zero except "0.xx", at most "digits"
 * decimals, "." needs digits on both sides.
 *
 * Returns 0 and stores the value in *out_minor; -EINVAL for a malformed
 * text (including "-1", "+1", "1e2", "1,00", " 1", "1.234" for EUR) or a
 * digits value above POS_AMOUNT_MAX_DIGITS; -ERANGE for zero (unless flags
 * has POS_AMOUNT_ZERO_OK), above max_minor, or beyond int64.
 * *out_minor is untouched on error.
 */
int pos_amount_parse(const char *text, size_t len, unsigned digits, int64_t max_minor,
                     unsigned flags, int64_t *out_minor);

/*
 * Converts a double of major units (what cJSON keeps of a JSON number)
 * into minor units, without printf: the value times 10^digits must lie
 * within 1e-9 relative of an integer k, which is the result (so 12.34,
 * stored as 12.339999999999999857891..., gives 1234, and 0.1 + 0.2 gives
 * 30 for two digits, while 12.345 is refused for two digits).
 *
 * Returns 0 and stores k in *out_minor; -EINVAL for NaN, infinities,
 * negative values (including -0.0), a value that is not a whole number of
 * minor units, or digits above POS_AMOUNT_MAX_DIGITS; -ERANGE for zero
 * (unless POS_AMOUNT_ZERO_OK) or above max_minor (or 2^53, past which a
 * double cannot hold every integer).
 */
int pos_amount_from_double(double major, unsigned digits, int64_t max_minor, unsigned flags,
                           int64_t *out_minor);

/*
 * Writes minor units back as a decimal of major units with exactly
 * "digits" decimals: (1230, 2) gives "12.30", (5, 0) gives "5", (-5, 2)
 * gives "-0.05". Always NUL-terminates when len > 0.
 *
 * Returns the number of characters written (without the NUL), -ENOSPC if
 * buf is too small (POS_AMOUNT_TEXT_MAX always suffices), or -EINVAL for
 * digits above POS_AMOUNT_MAX_DIGITS.
 */
int pos_amount_format(int64_t minor, unsigned digits, char *buf, size_t len);

#endif /* AGENT_MSG_AMOUNT_H */
