#ifndef AGENT_SYNC_GLOB_H
#define AGENT_SYNC_GLOB_H

/*
 * Redis glob matching (the KEYS / SCAN MATCH / PSUBSCRIBE dialect), pure.
 *
 *   *        any run of bytes, also none
 *   ?        exactly one byte
 *   [abc]    one byte out of the set; [^abc] one byte not in it
 *   [a-z]    a range (reversed ends are swapped: [z-a] == [a-z])
 *   \x       the byte x literally, outside and inside brackets
 *
 * Redis's behaviour at the edges is kept, because the cloud writes patterns
 * for a real Redis and expects the same answer here:
 *   - an unterminated "[..." is a set running to the end of the pattern;
 *     "[" alone as the last byte matches nothing, "[^" alone matches any byte;
 *   - "[]" is an empty set (matches nothing), "[^]" matches any byte;
 *   - in "[a-]" the '-' takes the ']' as the end of a range;
 *   - a trailing "\" matches a literal backslash;
 *   - an empty string is matched only by an empty pattern (as Redis's
 *     stringmatchlen; KEYS and SCAN special-case the exact pattern "*");
 *   - a pattern whose 1001st '*' run is followed by more pattern never
 *     matches (Redis's nesting limit).
 * Difference: range ends compare as unsigned bytes; Redis compares plain
 * char, which is signed on x86, so ranges with ends >= 0x80 may differ there.
 *
 * Matching is iterative, O(plen * slen) in the worst case and without
 * recursion, so a hostile pattern such as "*a*a*a*a*b" cannot blow up.
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * Returns true when the "slen" bytes at "str" match the "plen" bytes of
 * "pattern". Neither needs to be NUL-terminated; both may contain NUL.
 */
bool pos_glob_match(const char *pattern, size_t plen, const char *str, size_t slen);

#endif /* AGENT_SYNC_GLOB_H */
