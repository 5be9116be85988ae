#include "hal/charset.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Unicode code points of bytes 0x80..0xFF, generated from the IBM code page
 * charts (CP858 is CP850 with U+20AC at 0xD5 instead of the dotless i). */
static const uint16_t cp437_high[128] = {
    0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, /* 0x80 */
    0x00EA, 0x00EB, 0x00E8, 0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5, /* 0x88 */
    0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9, /* 0x90 */
    0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192, /* 0x98 */
    0x00E1, 0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA, /* 0xA0 */
    0x00BF, 0x2310, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB, /* 0xA8 */
    0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556, /* 0xB0 */
    0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510, /* 0xB8 */
    0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F, /* 0xC0 */
    0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x2567, /* 0xC8 */
    0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B, /* 0xD0 */
    0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580, /* 0xD8 */
    0x03B1, 0x00DF, 0x0393, 0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4, /* 0xE0 */
    0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6, 0x03B5, 0x2229, /* 0xE8 */
    0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248, /* 0xF0 */
    0x00B0, 0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0, /* 0xF8 */
};

static const uint16_t cp858_high[128] = {
    0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, /* 0x80 */
    0x00EA, 0x00EB, 0x00E8, 0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5, /* 0x88 */
    0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9, /* 0x90 */
    0x00FF, 0x00D6, 0x00DC, 0x00F8, 0x00A3, 0x00D8, 0x00D7, 0x0192, /* 0x98 */
    0x00E1, 0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA, /* 0xA0 */
    0x00BF, 0x00AE, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB, /* 0xA8 */
    0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x00C1, 0x00C2, 0x00C0, /* 0xB0 */
    0x00A9, 0x2563, 0x2551, 0x2557, 0x255D, 0x00A2, 0x00A5, 0x2510, /* 0xB8 */
    0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x00E3, 0x00C3, /* 0xC0 */
    0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x00A4, /* 0xC8 */
    0x00F0, 0x00D0, 0x00CA, 0x00CB, 0x00C8, 0x20AC, 0x00CD, 0x00CE, /* 0xD0 */
    0x00CF, 0x2518, 0x250C, 0x2588, 0x2584, 0x00A6, 0x00CC, 0x2580, /* 0xD8 */
    0x00D3, 0x00DF, 0x00D4, 0x00D2, 0x00F5, 0x00D5, 0x00B5, 0x00FE, /* 0xE0 */
    0x00DE, 0x00DA, 0x00DB, 0x00D9, 0x00FD, 0x00DD, 0x00AF, 0x00B4, /* 0xE8 */
    0x00AD, 0x00B1, 0x2017, 0x00BE, 0x00B6, 0x00A7, 0x00F7, 0x00B8, /* 0xF0 */
    0x00B0, 0x00A8, 0x00B7, 0x00B9, 0x00B3, 0x00B2, 0x25A0, 0x00A0, /* 0xF8 */
};

bool pos_charset_invisible(uint32_t codepoint)
{
    switch (codepoint) {
    case 0x061C: /* ARABIC LETTER MARK */
    case 0x200B: /* ZERO WIDTH SPACE */
    case 0x200C: /* ZERO WIDTH NON-JOINER */
    case 0x200D: /* ZERO WIDTH JOINER */
    case 0x200E: /* LEFT-TO-RIGHT MARK */
    case 0x200F: /* RIGHT-TO-LEFT MARK */
    case 0x2028: /* LINE SEPARATOR */
    case 0x2029: /* PARAGRAPH SEPARATOR */
    case 0x2060: /* WORD JOINER */
    case 0xFEFF: /* ZERO WIDTH NO-BREAK SPACE (byte order mark) */
        return true;
    default:
        /* Embeddings and overrides (LRE, RLE, PDF, LRO, RLO), isolates
         * (LRI, RLI, FSI, PDI). */
        return (codepoint >= 0x202A && codepoint <= 0x202E) ||
               (codepoint >= 0x2066 && codepoint <= 0x2069);
    }
}

int pos_charset_parse(const char *name)
{
    if (name == NULL) {
        return -EINVAL;
    }
    if (strcmp(name, "ascii") == 0 || strcmp(name, "ASCII") == 0) {
        return POS_CP_ASCII;
    }
    if (strcmp(name, "cp437") == 0 || strcmp(name, "437") == 0 || strcmp(name, "CP437") == 0) {
        return POS_CP_437;
    }
    if (strcmp(name, "cp858") == 0 || strcmp(name, "858") == 0 || strcmp(name, "CP858") == 0) {
        return POS_CP_858;
    }
    return -EINVAL;
}

int pos_charset_escpos_table(pos_codepage_t cp)
{
    switch (cp) {
    case POS_CP_ASCII:
    case POS_CP_437:
        return 0;
    case POS_CP_858:
        return 19;
    }
    return -EINVAL;
}

int pos_charset_map(pos_codepage_t cp, uint32_t codepoint)
{
    const uint16_t *high;

    switch (cp) {
    case POS_CP_ASCII:
        high = NULL;
        break;
    case POS_CP_437:
        high = cp437_high;
        break;
    case POS_CP_858:
        high = cp858_high;
        break;
    default:
        return -EINVAL;
    }
    if (codepoint >= 0x20 && codepoint < 0x7F) {
        return (int)codepoint;
    }
    /* Controls (C0, DEL, C1) never reach the device: they are commands. */
    if (codepoint < 0xA0 || high == NULL || codepoint > 0xFFFF) {
        return -ENOENT;
    }
    for (int i = 0; i < 128; i++) {
        if (high[i] == codepoint) {
            return 0x80 + i;
        }
    }
    return -ENOENT;
}

size_t pos_charset_utf8_next(const char *s, size_t len, uint32_t *codepoint)
{
    const uint8_t *p = (const uint8_t *)s;
    uint32_t cp;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    if (len == 0) {
        *codepoint = UINT32_MAX;
        return 0;
    }
    if (p[0] < 0x80) {
        *codepoint = p[0];
        return 1;
    }
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        need = 1;
        cp = p[0] & 0x1Fu;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        need = 2;
        cp = p[0] & 0x0Fu;
        if (p[0] == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (p[0] == 0xED) {
            hi = 0x9F; /* surrogates */
        }
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        need = 3;
        cp = p[0] & 0x07u;
        if (p[0] == 0xF0) {
            lo = 0x90; /* overlong */
        } else if (p[0] == 0xF4) {
            hi = 0x8F; /* above U+10FFFF */
        }
    } else {
        /* Stray continuation byte, C0/C1 overlong lead, or F5..FF. */
        *codepoint = UINT32_MAX;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        uint8_t c = i < len ? p[i] : 0;
        uint8_t min = i == 1 ? lo : 0x80;
        uint8_t max = i == 1 ? hi : 0xBF;
        if (i >= len || c < min || c > max) {
            /* Maximal valid prefix becomes a single replacement. */
            *codepoint = UINT32_MAX;
            return i;
        }
        cp = (cp << 6) | (c & 0x3Fu);
    }
    *codepoint = cp;
    return need + 1;
}

int pos_charset_transcode(pos_codepage_t cp, const char *utf8, size_t len, uint8_t replacement,
                          uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    int rc = 0;

    if (out_len) {
        *out_len = 0;
    }
    if ((utf8 == NULL && len) || (out == NULL && cap) || replacement < 0x20 || replacement > 0x7E ||
        pos_charset_escpos_table(cp) < 0) {
        return -EINVAL;
    }
    while (len) {
        uint32_t c;
        size_t used = pos_charset_utf8_next(utf8, len, &c);
        if (c != UINT32_MAX && pos_charset_invisible(c)) {
            utf8 += used; /* never reaches the device, not even as '?' */
            len -= used;
            continue;
        }
        if (n == cap) {
            rc = -ENOSPC;
            break;
        }
        int b = c == UINT32_MAX ? -ENOENT : pos_charset_map(cp, c);
        out[n++] = b < 0 ? replacement : (uint8_t)b;
        utf8 += used;
        len -= used;
    }
    if (out_len) {
        *out_len = n;
    }
    return rc;
}

size_t pos_charset_columns(const char *utf8, size_t len)
{
    size_t cols = 0;

    while (len && utf8) {
        uint32_t c;
        size_t used = pos_charset_utf8_next(utf8, len, &c);
        utf8 += used;
        len -= used;
        cols += c == UINT32_MAX || !pos_charset_invisible(c);
    }
    return cols;
}

size_t pos_charset_prefix(const char *utf8, size_t len, size_t columns)
{
    size_t off = 0;

    while (off < len && columns && utf8) {
        uint32_t c;
        off += pos_charset_utf8_next(utf8 + off, len - off, &c);
        columns -= c == UINT32_MAX || !pos_charset_invisible(c);
    }
    return off;
}

int pos_charset_fit(const char *utf8, size_t len, size_t width, pos_charset_align_t align,
                    char *out, size_t cap, size_t *out_len)
{
    size_t used, cols, pad, left, right;

    if (out_len) {
        *out_len = 0;
    }
    if ((utf8 == NULL && len) || out == NULL || cap == 0 || align > POS_ALIGN_RIGHT) {
        return -EINVAL;
    }
    used = pos_charset_prefix(utf8, len, width);
    cols = pos_charset_columns(utf8, used);
    pad = width - cols;
    left = align == POS_ALIGN_RIGHT ? pad : align == POS_ALIGN_CENTER ? pad / 2 : 0;
    right = pad - left;
    /* used + pad cannot overflow: used <= len and pad <= width, both sizes of
     * objects or small widths; still check against cap one term at a time. */
    if (used >= cap || pad >= cap - used) {
        out[0] = '\0';
        return -ENOSPC;
    }
    memset(out, ' ', left);
    if (used) {
        memcpy(out + left, utf8, used);
    }
    memset(out + left + used, ' ', right);
    out[left + used + right] = '\0';
    if (out_len) {
        *out_len = left + used + right;
    }
    return 0;
}

int pos_charset_sanitize(const char *utf8, size_t len, uint8_t replacement, char *out, size_t cap,
                         size_t *out_len)
{
    size_t n = 0;
    int rc = 0;

    if (out_len) {
        *out_len = 0;
    }
    if ((utf8 == NULL && len) || out == NULL || cap == 0 || replacement < 0x20 ||
        replacement > 0x7E) {
        return -EINVAL;
    }
    while (len) {
        uint32_t c;
        size_t used = pos_charset_utf8_next(utf8, len, &c);
        int bad = c == UINT32_MAX || c < 0x20 || (c >= 0x7F && c < 0xA0);
        if (!bad && pos_charset_invisible(c)) {
            utf8 += used; /* removed: it would reorder or hide what is shown */
            len -= used;
            continue;
        }
        size_t need = bad ? 1 : used;
        if (need >= cap - n) {
            rc = -ENOSPC;
            break;
        }
        if (bad) {
            out[n] = (char)replacement;
        } else {
            memcpy(out + n, utf8, used);
        }
        n += need;
        utf8 += used;
        len -= used;
    }
    out[n] = '\0';
    if (out_len) {
        *out_len = n;
    }
    return rc;
}
