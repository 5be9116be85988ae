#ifndef HAL_CHARSET_H
#define HAL_CHARSET_H

/*
 * UTF-8 to single-byte code page transcoding for printers and displays
 * (pure; no allocation).
 *
 * One decoded unit gives one output byte and one display column: a valid
 * code point, or one invalid UTF-8 sequence (its maximal valid prefix, as
 * Unicode recommends) which becomes the replacement byte. Control
 * characters (U+0000..U+001F, U+007F, U+0080..U+009F) are never passed
 * through, since on the wire they are device commands; they too become the
 * replacement byte. The output therefore only ever holds 0x20..0x7E and,
 * for CP437/CP858, the glyphs at 0x80..0xFF.
 *
 * Invisible formatting characters (pos_charset_invisible(): bidirectional
 * embeddings, overrides, isolates and marks, zero-width characters, line
 * and paragraph separators) are removed: they take no column, never reach
 * a device, and are dropped by pos_charset_sanitize(). A receipt line
 * holding U+202E would otherwise read differently from what it holds on a
 * renderer that honours it, and a zero-width space makes two different
 * texts look the same.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pos_codepage {
    POS_CP_ASCII = 0, /* 0x20..0x7E only */
    POS_CP_437 = 1,   /* IBM PC (US) */
    POS_CP_858 = 2,   /* multilingual Latin-1 with the euro sign at 0xD5 */
} pos_codepage_t;

#define POS_CHARSET_REPLACEMENT '?'

/*
 * True for the characters removed from every text to a device: U+202A..
 * U+202E (embeddings, overrides), U+2066..U+2069 (isolates), U+200E,
 * U+200F, U+061C (marks), U+200B..U+200D, U+2060, U+FEFF (zero-width),
 * U+2028, U+2029 (separators).
 */
bool pos_charset_invisible(uint32_t codepoint);

/* Parses "ascii", "cp437" or "cp858" (also "437", "858"). Returns the code page or -EINVAL. */
int pos_charset_parse(const char *name);

/*
 * Returns the ESC/POS character code table number n of "ESC t n" for a
 * code page (0 = PC437, 19 = PC858; ASCII uses 0), or -EINVAL.
 */
int pos_charset_escpos_table(pos_codepage_t cp);

/*
 * Maps one Unicode code point to a byte of the code page. Returns the byte
 * (0x20..0xFF), or -ENOENT when it has no printable mapping (controls,
 * unmapped characters), -EINVAL for an unknown code page.
 */
int pos_charset_map(pos_codepage_t cp, uint32_t codepoint);

/*
 * Decodes one unit of UTF-8 from s[0..len). Stores the code point, or
 * UINT32_MAX for an invalid sequence, in *codepoint. Returns the number of
 * bytes consumed (1..4), or 0 when len is 0.
 */
size_t pos_charset_utf8_next(const char *s, size_t len, uint32_t *codepoint);

/*
 * Transcodes len bytes of UTF-8 into out (cap bytes). Unmappable or
 * invalid units become "replacement", which must be printable ASCII
 * (0x20..0x7E). Stores the number of bytes written in *out_len (may be
 * NULL). Returns 0, -ENOSPC when out is too small (out holds what fitted,
 * cut on a unit boundary), or -EINVAL.
 */
int pos_charset_transcode(pos_codepage_t cp, const char *utf8, size_t len, uint8_t replacement,
                          uint8_t *out, size_t cap, size_t *out_len);

/* Returns the number of display columns (decoded units, invisible
 * characters not counted) of len bytes of UTF-8. */
size_t pos_charset_columns(const char *utf8, size_t len);

/*
 * Returns how many leading bytes of utf8[0..len) hold at most "columns"
 * display columns, never splitting a unit.
 */
size_t pos_charset_prefix(const char *utf8, size_t len, size_t columns);

typedef enum pos_charset_align {
    POS_ALIGN_LEFT = 0,
    POS_ALIGN_CENTER = 1,
    POS_ALIGN_RIGHT = 2,
} pos_charset_align_t;

/*
 * Writes utf8[0..len) into out (cap bytes, NUL-terminated) truncated on a
 * unit boundary and padded with spaces to exactly "width" columns, placed
 * by "align" (centre puts the odd space on the right). Stores the byte
 * length (without the NUL) in *out_len (may be NULL). Returns 0, -ENOSPC
 * when out cannot hold the result, or -EINVAL.
 */
int pos_charset_fit(const char *utf8, size_t len, size_t width, pos_charset_align_t align,
                    char *out, size_t cap, size_t *out_len);

/*
 * Copies utf8[0..len) into out (cap bytes, NUL-terminated) as valid UTF-8
 * with every invalid unit and every control character replaced by
 * "replacement" (printable ASCII) and every invisible character removed,
 * so that the text has the same number of columns and can be stored,
 * logged or transcoded safely. Stores the byte
 * length in *out_len (may be NULL). Returns 0, -ENOSPC (out holds what
 * fitted, cut on a unit boundary), or -EINVAL.
 */
int pos_charset_sanitize(const char *utf8, size_t len, uint8_t replacement, char *out, size_t cap,
                         size_t *out_len);

#endif /* HAL_CHARSET_H */
