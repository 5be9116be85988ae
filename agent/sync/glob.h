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
 * Bounded cost. A pattern is compiled once into its elements (one byte
 * each: a literal, '?' or a set, as a 256-entry bit table) and its '*'
 * runs. A string is then checked in three steps: the elements before the
 * first '*' against its start, those after the last '*' against its end
 * (both anchored, byte by byte, failing at the first mismatch), and what
 * lies between with a bit-parallel automaton (Shift-And: one bit per
 * element, a '*' a self-loop). Once the automaton has matched the pattern
 * up to a '*', everything it tracked before that '*' is dropped (whatever
 * could follow from it can follow from the '*' as well), so it only ever
 * follows the run of elements between two '*'s: each byte of the string
 * costs one machine word per 64 elements of that run. Against a string of
 * n bytes a pattern costs O(n * (1 + run / 64)): a 256-byte pattern
 * against a 500-byte key is at most 500 steps of five words, whatever the
 * pattern (no backtracking: "*a*a*a*a*b" is one pass).
 */

#include <stdbool.h>
#include <stddef.h>

/* A compiled pattern; immutable once compiled, so one may be used by
 * several threads at once. */
typedef struct pos_glob pos_glob_t;

/*
 * Compiles the "plen" bytes of "pattern" (not NUL-terminated; may contain
 * NUL) into *out. Memory: 2 KiB per 64 elements of the pattern, about
 * 10 KiB for 256 bytes. Returns 0 or -ENOMEM (*out is then NULL).
 */
int pos_glob_compile(const char *pattern, size_t plen, pos_glob_t **out);

/* True when the "slen" bytes at "str" match g. Safe to call concurrently. */
bool pos_glob_test(const pos_glob_t *g, const char *str, size_t slen);

/* Frees a compiled pattern (NULL is fine). */
void pos_glob_free(pos_glob_t *g);

/*
 * Returns true when the "slen" bytes at "str" match the "plen" bytes of
 * "pattern": compiles, tests and frees (false when memory runs out). For
 * one string; compile once to test many.
 */
bool pos_glob_match(const char *pattern, size_t plen, const char *str, size_t slen);

#endif /* AGENT_SYNC_GLOB_H */
