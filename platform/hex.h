#ifndef PLATFORM_HEX_H
#define PLATFORM_HEX_H

/*
 * Hexadecimal digits (pure; no locale): the one decoder behind percent
 * escapes in Redis URLs, "\xHH" in inline RESP commands and the hex of
 * signing keys and signatures.
 */

/* Value 0..15 of the hex digit c (0-9, a-f, A-F), or -1 for any other byte. */
static inline int pos_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Value 0..255 of the two hex digits hi, lo (high nibble first), or -1 when
 * either is not a hex digit. */
static inline int pos_hex_byte(char hi, char lo)
{
    int h = pos_hex_digit(hi);
    int l = pos_hex_digit(lo);

    if (h < 0 || l < 0) {
        return -1;
    }
    return h << 4 | l;
}

#endif /* PLATFORM_HEX_H */
