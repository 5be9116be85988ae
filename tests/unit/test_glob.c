/*
 * pos_glob_match() against Redis's own answers. The table was produced by
 * loading each string as a key into a redis-server 7.0 and asking
 * KEYS <pattern> (the exact pattern "*" is special-cased by KEYS, so the
 * "*" row was asked as "**"); the test itself needs no server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "agent/sync/glob.h"
#include "tests/support/glob_oracle.h"

typedef struct glob_case {
    const char *pat;
    size_t plen;
    const char *str;
    size_t slen;
    bool match;
} glob_case_t;

/* clang-format off */
static const glob_case_t cases[] = {
    {"", 0, "", 0, true},
    {"", 0, "a", 1, false},
    {"*", 1, "", 0, false},
    {"**", 2, "", 0, false},
    {"\?", 1, "", 0, false},
    {"a", 1, "a", 1, true},
    {"a", 1, "b", 1, false},
    {"a", 1, "aa", 2, false},
    {"*", 1, "abc", 3, true},
    {"a*", 2, "a", 1, true},
    {"a*", 2, "abc", 3, true},
    {"*c", 2, "abc", 3, true},
    {"*b*", 3, "abc", 3, true},
    {"*b*", 3, "ac", 2, false},
    {"a*c", 3, "ac", 2, true},
    {"a*c", 3, "abbbc", 5, true},
    {"a*c", 3, "abbbd", 5, false},
    {"a**c", 4, "abc", 3, true},
    {"\?", 1, "a", 1, true},
    {"\?\?", 2, "a", 1, false},
    {"a\?c", 3, "abc", 3, true},
    {"a\?c", 3, "ac", 2, false},
    {"[abc]", 5, "b", 1, true},
    {"[abc]", 5, "d", 1, false},
    {"[^abc]", 6, "d", 1, true},
    {"[^abc]", 6, "a", 1, false},
    {"[a-z]", 5, "m", 1, true},
    {"[a-z]", 5, "M", 1, false},
    {"[z-a]", 5, "m", 1, true},
    {"[a-]", 4, "-", 1, false},
    {"[a-]", 4, "b", 1, false},
    {"[a-]", 4, "]", 1, true},
    {"[a-]x", 5, "bx", 2, false},
    {"[a-]x", 5, "b", 1, false},
    {"[]", 2, "a", 1, false},
    {"[]a]", 4, "a", 1, false},
    {"[]a]", 4, "a]", 2, false},
    {"[^]", 3, "a", 1, true},
    {"[^]x", 4, "ax", 2, true},
    {"[", 1, "a", 1, false},
    {"[", 1, "[", 1, false},
    {"a[", 2, "a", 1, false},
    {"a[", 2, "ab", 2, false},
    {"[^", 2, "a", 1, true},
    {"a[^", 3, "ab", 2, true},
    {"[abc", 4, "b", 1, true},
    {"[abc", 4, "d", 1, false},
    {"[abc", 4, "bc", 2, false},
    {"[\\]]", 4, "]", 1, true},
    {"[\\]]", 4, "\\", 1, false},
    {"[\\", 2, "\\", 1, true},
    {"[a\\", 3, "\\", 1, true},
    {"[\\-a]", 5, "-", 1, true},
    {"[\\-a]", 5, "b", 1, false},
    {"\\*", 2, "*", 1, true},
    {"\\*", 2, "a", 1, false},
    {"\\\?", 2, "\?", 1, true},
    {"\\\?", 2, "x", 1, false},
    {"\\[a]", 4, "[a]", 3, true},
    {"\\", 1, "\\", 1, true},
    {"a\\", 2, "a\\", 2, true},
    {"a\\", 2, "a", 1, false},
    {"\\a", 2, "a", 1, true},
    {"*\\", 2, "x\\", 2, true},
    {"[*]", 3, "*", 1, true},
    {"[*]", 3, "a", 1, false},
    {"[\?]", 3, "a", 1, false},
    {"[a-c-e]", 7, "d", 1, false},
    {"[a-c-e]", 7, "-", 1, true},
    {"[a-c-e]", 7, "e", 1, true},
    {"[-a]", 4, "-", 1, true},
    {"[^-a]", 5, "b", 1, true},
    {"[!a]", 4, "!", 1, true},
    {"[!a]", 4, "b", 1, false},
    {"[a-\\]", 5, "[", 1, false},
    {"[^a-z]", 6, "5", 1, true},
    {"[^a-z]", 6, "q", 1, false},
    {"*[0-9]", 6, "abc7", 4, true},
    {"*[0-9]", 6, "abc7x", 5, false},
    {"inventory:S-042:*", 17, "inventory:S-042:P-7", 19, true},
    {"inventory:S-042:*", 17, "inventory:S-042:", 16, true},
    {"inventory:S-042:*", 17, "inventory:S-043:P-7", 19, false},
    {"inventory:S-04[12]:*", 20, "inventory:S-042:P-7", 19, true},
    {"product:*", 9, "product:", 8, true},
    {"product:*", 9, "products", 8, false},
    {"*:P-\?", 5, "inventory:S-042:P-7", 19, true},
    {"*a*a*a*a*a*a*a*b", 16,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 60, false},
    {"*a*a*a*a*a*a*a*b", 16,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", 61, true},
    {"a*b*c", 5, "aXbXc", 5, true},
    {"a*b*c", 5, "aXcXb", 5, false},
    {"*ab", 3, "aab", 3, true},
    {"*aab", 4, "aaab", 4, true},
    {"a*a", 3, "a", 1, false},
    {"*\?", 2, "a", 1, true},
    {"*\?*", 3, "", 0, false},
    {"\?*", 2, "a", 1, true},
    {"a\x00""b", 3, "a\x00""b", 3, true},
    {"a\?b", 3, "a\x00""b", 3, true},
    {"[\x00""]", 3, "\x00""", 1, true},
    {"*\x00""", 2, "x\x00""", 2, true},
    {"a]", 2, "a]", 2, true},
    {"]", 1, "]", 1, true},
    {"^", 1, "^", 1, true},
    {"[[]", 3, "[", 1, true},
    {"[]]", 3, "]", 1, false},
    {"[]-a]", 5, "]", 1, false},
    {"**a**", 5, "xax", 3, true},
    {"*[", 2, "x", 1, false},
    {"h\?llo", 5, "hello", 5, true},
    {"h*llo", 5, "heeeello", 8, true},
    {"h[ae]llo", 8, "hallo", 5, true},
    {"h[^e]llo", 8, "hello", 5, false},
    {"h[a-b]llo", 9, "hbllo", 5, true},
    {"[b^", 3, "cbb", 3, false},
    {"", 0, "\?]a", 3, false},
    {"\\\\]", 3, "cb", 2, false},
    {"\?a[[", 4, "c", 1, false},
    {"[]bc", 4, "[\?", 2, false},
    {"*\?-", 3, "b\?", 2, false},
    {"a[c[", 4, "\?-[[^]", 6, false},
    {"-*\?[[a", 6, "", 0, false},
    {"", 0, "]\?\?", 3, false},
    {"]*\?b^\?-", 7, "c\\", 2, false},
    {"c]\\\?]b", 6, "a-]^^-", 6, false},
    {"aa]b[]a", 7, "]\\", 2, false},
    {"^c", 2, "b]^-*", 5, false},
    {"*[^c", 4, "\\", 1, true},
    {"", 0, "a*", 2, false},
    {"]]", 2, "^b", 2, false},
    {"\?^\?baaa", 7, "c^c^a", 5, false},
    {"c\?]ab\\[", 7, "[-*--*", 6, false},
    {"-a\?^-\?", 6, "[-*-a", 5, false},
    {"", 0, "]-", 2, false},
    {"\?^[", 3, "\\", 1, false},
    {"", 0, "^b", 2, false},
    {"a-^b^\?", 6, "^c\\]*\\", 6, false},
    {"\\\?[]^-", 6, "", 0, false},
    {"\?a^c", 4, "]", 1, false},
    {"", 0, "c*^*[[", 6, false},
    {"a\?*", 3, "", 0, false},
    {"b^^\?", 4, "a-c^", 4, false},
    {"\\-\\-a", 5, "", 0, false},
    {"", 0, "^b*\?]", 5, false},
    {"a]", 2, "", 0, false},
    {"", 0, "\\b", 2, false},
    {"\\", 1, "[-]", 3, false},
    {"\?-^bbb", 6, "\\\?[[", 4, false},
    {"b\?[-^b\\", 7, "\\", 1, false},
    {"**", 2, "*\\", 2, true},
    {"\\a*a", 4, "]b\?b*", 5, false},
    {"\\b\\\?^[]", 7, "c", 1, false},
    {"", 0, "a^\\\?*", 5, false},
    {"\\-cc", 4, "[c]", 3, false},
    {"]*^bc", 5, "^", 1, false},
    {"[]", 2, "^", 1, false},
    {"cbb^*", 5, "\\\\", 2, false},
    {"[a", 2, "a\?b\\", 4, false},
    {"*", 1, "^", 1, true},
    {"cbb*-\?c", 7, "][^-*-", 6, false},
    {"]\?]\\", 4, "\?*[\?[", 5, false},
    {"[-^ca", 5, "c\?", 2, false},
    {"\\c]^^ca", 7, "\?", 1, false},
    {"-", 1, "\\^]b]", 5, false},
    {"\?-cb*\?b", 7, "ca", 2, false},
    {"^c", 2, "^\?\?]a", 5, false},
    {"*b\?", 3, "", 0, false},
    {"bb[a[", 5, "cc[c", 4, false},
    {"\\", 1, "a\?", 2, false},
    {"\\^", 2, "-", 1, false},
    {"-\\b^", 4, "c", 1, false},
    {"\\^\\[", 4, "[\\c[a[", 6, false},
    {"", 0, "a]", 2, false},
    {"b*", 2, "", 0, false},
    {"", 0, "-", 1, false},
    {"", 0, "\?c*", 3, false},
    {"]*\\c\?b", 6, "^\\]", 3, false},
    {"ca\?[cc", 6, "*\\", 2, false},
    {"\?", 1, "ba", 2, false},
    {"\\-]b*", 5, "a*\?\?^", 5, false},
    {"a\?b", 3, "^c", 2, false},
    {"b\\\\a", 4, "", 0, false},
    {"c[c", 3, "", 0, false},
    {"*\?]\?][^", 7, "^[ac[", 5, false},
    {"b\\\\[\\[\?", 7, "[\\c-a", 5, false},
    {"^[]^^]c", 7, "]", 1, false},
    {"\\ba^", 4, "^]", 2, false},
    {"c]", 2, "", 0, false},
    {"cb", 2, "-]-*b", 5, false},
    {"a-c\?*", 5, "", 0, false},
    {"\\bb", 3, "\\]^^cb", 6, false},
    {"a*", 2, "-]a^\\", 5, false},
    {"c]**\?", 5, "", 0, false},
    {"-b\?*", 4, "*^\?", 3, false},
    {"\\]]^^aa", 7, "c", 1, false},
    {"\?[\?]c", 5, "-^\\[\\\?", 6, false},
    {"\?", 1, "\\", 1, true},
    {"\\\?", 2, "", 0, false},
    {"[]\\", 3, "a][", 3, false},
    {"*^", 2, "*\\\\a", 4, false},
    {"*-a^\?b]", 7, "^\?", 2, false},
    {"*\\a*c\?c", 7, "^a", 2, false},
    {"", 0, "[-^", 3, false},
    {"ca", 2, "c", 1, false},
    {"\?^]\\", 4, "\\c\\\?^", 5, false},
    {"[c]\\a", 5, "c\\^-", 4, false},
    {"-bbc\?**", 7, "c^a\?", 4, false},
    {"bac*\\", 5, "]", 1, false},
    {"", 0, "*]", 2, false},
    {"-[\\", 3, "ac][a", 5, false},
    {"", 0, "\?^", 2, false},
    {"b\?^b^", 5, "a]--c-", 6, false},
    {"b", 1, "", 0, false},
    {"", 0, "\?\?", 2, false},
    {"bb\\]*\?", 6, "\?aab", 4, false},
    {"^*", 2, "", 0, false},
    {"\\][*c", 5, "b^^b", 4, false},
    {"\\^[c", 4, "c\?", 2, false},
    {"\\-\?c-", 5, "*", 1, false},
    {"", 0, "\?^-]", 4, false},
    {"]*[*][]", 7, "-\?*^]", 5, false},
    {"]*]b", 4, "-\\-c*b", 6, false},
    {"a\\aa", 4, "a\?c--\\", 6, false},
    {"^\?-^[\\", 6, "", 0, false},
    {"ab*a^", 5, "", 0, false},
    {"*^a\\\?]", 6, "\?\\", 2, false},
    {"a]", 2, "b[", 2, false},
    {"-]c", 3, "\?b[", 3, false},
    {"b-", 2, "\?-a", 3, false},
    {"[", 1, "", 0, false},
    {"*-", 2, "\\[\\", 3, false},
    {"[^b]^\\", 6, "b*[\\-^", 6, false},
    {"^[", 2, "", 0, false},
    {"\\a\\\?c", 5, "*", 1, false},
    {"\\]^", 3, "[\?b", 3, false},
    {"a^]-[\?*", 7, "\\c", 2, false},
    {"\\c-c", 4, "c*[*\\^", 6, false},
    {"", 0, "[]^^c", 5, false},
    {"a-", 2, "^]caa", 5, false},
    {"]*]", 3, "\\*^-]a", 6, false},
    {"a", 1, "b--", 3, false},
    {"\\b\\c**\?", 7, "", 0, false},
    {"\\\?\?", 3, "", 0, false},
    {"]][c^c*", 7, "\\b^]]", 5, false},
    {"a", 1, "\\a[b--", 6, false},
    {"", 0, "[\\b", 3, false},
    {"*", 1, "*[\?[b", 5, true},
    {"*a", 2, "*", 1, false},
    {"-]c^\?[[", 7, "a][^", 4, false},
    {"[b*\\\?", 5, "[", 1, false},
    {"*c", 2, "-\?b\?b]", 6, false},
    {"b\\a[[\?\?", 7, "", 0, false},
    {"c^[\\", 4, "ab", 2, false},
    {"]c*-c]", 6, "-*-cc", 5, false},
    {"a\?\?\\-", 5, "\\c^c", 4, false},
    {"c\\^-]", 5, "b*", 2, false},
    {"[[*b[-c", 7, "**b]", 4, false},
    {"\\bc[c", 5, "", 0, false},
    {"^\\", 2, "[", 1, false},
    {"*a]\?\?^\\", 7, "-", 1, false},
    {"-[^[]^\?", 7, "a^a\?-", 5, false},
    {"", 0, "*\\]a", 4, false},
    {"]a", 2, "[[\\-\\", 5, false},
    {"]^ca^**", 7, "[]c", 3, false},
    {"\\]]cb**", 7, "^\?", 2, false},
    {"b-", 2, "\?a]^-", 5, false},
    {"", 0, "[]*", 3, false},
    {"ab", 2, "[", 1, false},
    {"\\-b]", 4, "\?*", 2, false},
    {"a]", 2, "]]", 2, false},
    {"]acc*^", 6, "]^b-^b", 6, false},
    {"-", 1, "^][b[[", 6, false},
    {"\\-c*-\\*", 7, "\\]", 2, false},
    {"-", 1, "\?^\?-]", 5, false},
    {"[\\-\\]a", 6, "^*", 2, false},
    {"\\]*\?\?", 5, "\\^b]", 4, false},
    {"-[^\\*c", 6, "[-[]\\", 5, false},
    {"[-", 2, "-", 1, true},
    {"b-c*b[c", 7, "", 0, false},
    {"]^", 2, "\\c", 2, false},
    {"c", 1, "a*\\c", 4, false},
    {"]b]\\\\", 5, "", 0, false},
    {"-\\c-**]", 7, "c\?]", 3, false},
    {"c**\?-\?^", 7, "\?", 1, false},
    {"", 0, "c\?", 2, false},
    {"c]*", 3, "-\\[b", 4, false},
    {"", 0, "\?]", 2, false},
    {"-b", 2, "]-c^b", 5, false},
    {"ba**c", 5, "bc^]ca", 6, false},
    {"][--*", 5, "b\?\\]^", 5, false},
    {"[a\\a", 4, "*]a\?", 4, false},
    {"b[ca\\", 5, "\?*b*[*", 6, false},
    {"\\-]ca\\\?", 7, "^c[^]", 5, false},
    {"-a[*^", 5, "\?", 1, false},
    {"]b\?^[\?", 6, "^*bc", 4, false},
    {"b", 1, "*c[^b", 5, false},
    {"\?c\\", 3, "c", 1, false},
    {"b[", 2, "]", 1, false},
    {"[bc", 3, "b[[*]", 5, false},
    {"\?b^--\\", 6, "]]\\", 3, false},
    {"[\?-", 3, "\?", 1, true},
    {"-]^", 3, "\\", 1, false},
    {"\?[\?-a\\*", 7, "-\?\?a", 4, false},
    {"-^\\ca", 5, "^]-cb", 5, false},
    {"^\?*", 3, "b", 1, false},
    {"[*a*\\\?]", 7, "^[]a\\", 5, false},
    {"\?^[*^*", 6, "bb", 2, false},
    {"b[^", 3, "]-c", 3, false},
    {"b[c\\c", 5, "a]**\\", 5, false},
    {"^[^", 3, "\\b[", 3, false},
    {"ca*a-\\", 6, "\\c", 2, false},
    {"\?[]-\\\?", 6, "-[bc\\-", 6, false},
    {"[b*", 3, "^[", 2, false},
    {"*babb\\b", 7, "[bc-][", 6, false},
    {"*", 1, "c^", 2, true},
    {"ac-c[^\?", 7, "c^[", 3, false},
    {"\\a\?[[c-", 7, "cbab", 4, false},
    {"\?\\c\\*", 5, "\?c*", 3, true},
    {"^\\[b]*-", 7, "*cc-b", 5, false},
    {"\?^[[ba", 6, "*a", 2, false},
    {"", 0, "\\**^[c", 6, false},
    {"^*", 2, "\\\?\?]]", 5, false},
    {"\\^^^**b", 7, "*", 1, false},
    {"]c", 2, "\\a\?*a", 5, false},
    {"\\^\?c^", 5, "]^ca", 4, false},
    {"\\**bc]", 6, "a*", 2, false},
    {"", 0, "]*\?]", 4, false},
    {"\\-\?ba*", 6, "\\", 1, false},
    {"*-\\", 3, "b]]]-^", 6, false},
    {"", 0, "^\?-^\?", 5, false},
    {"\\aa", 3, "\\", 1, false},
    {"ca*", 3, "^\\c^c[", 6, false},
    {"[a--[", 5, "c*]\\a", 5, false},
    {"\?\\*", 3, "\\b^-ab", 6, false},
    {"", 0, "c*]\\c\?", 6, false},
    {"-a", 2, "-\\]", 3, false},
    {"a*^ba", 5, "c\\--", 4, false},
    {"\?", 1, "a*^a", 4, false},
    {"^[^-a", 5, "[\?a", 3, false},
    {"\?**^", 4, "b\?[", 3, false},
    {"-*^\\\?\?[", 7, "", 0, false},
    {"b-*\\\\", 5, "b", 1, false},
    {"]]\\*[", 5, "]]]^]", 5, false},
    {"", 0, "b\?-^", 4, false},
    {"^\?*", 3, "]c[c", 4, false},
    {"[", 1, "c", 1, false},
    {"b^", 2, "", 0, false},
    {"b\?a", 3, "\\c]", 3, false},
    {"cb[a*", 5, "\\b^^*a", 6, false},
    {"bc-[", 4, "cc-", 3, false},
    {"-^-bc", 5, "[", 1, false},
    {"^a*^-\\", 6, "\\c\?", 3, false},
    {"*-", 2, "]", 1, false},
    {"", 0, "bcc\?]*", 6, false},
    {"*\\-]", 4, "c\\^^", 4, false},
    {"", 0, "\?c^", 3, false},
    {"]]*", 3, "c^\?-^", 5, false},
    {"acbc]", 5, "\\\?^^a", 5, false},
    {"]]c", 3, "\?[b", 3, false},
    {"*a", 2, "c^\\[a", 5, true},
    {"]\\*[", 4, "[", 1, false},
    {"*", 1, "-b^ba", 5, true},
    {"\\a[b*", 5, "-]a-b", 5, false},
    {"", 0, "ac*\\-", 5, false},
    {"^\\\\]a*", 6, "]]a\?", 4, false},
    {"[]b-", 4, "\\^-", 3, false},
    {"", 0, "*a-]*-", 6, false},
    {"]\?^]]", 5, "cb", 2, false},
    {"^-b", 3, "]", 1, false},
    {"---c^", 5, "^\\*]", 4, false},
    {"a-b]a", 5, "", 0, false},
    {"]\?c\\^-", 6, "]\?-", 3, false},
    {"", 0, "\?-]\\]a", 6, false},
    {"\?", 1, "[^", 2, false},
    {"\?c\?", 3, "-c", 2, false},
    {"", 0, "c\?c", 3, false},
    {"[c[b*", 5, "^", 1, false},
    {"-c[^\\", 5, "b*c", 3, false},
    {"bc^]", 4, "^ac*", 4, false},
    {"^\\--^b", 6, "", 0, false},
    {"\?[c]*\\c", 7, "a^]]\\^", 6, false},
    {"ca", 2, "\\^", 2, false},
    {"b]", 2, "\?", 1, false},
    {"", 0, "^[^b^", 5, false},
    {"^^aabb\?", 7, "^*\\a", 4, false},
    {"b*-]a*", 6, "ba\?\?a", 5, false},
    {"c", 1, "\\\?\\]a", 5, false},
    {"\?-", 2, "[*a\?]a", 6, false},
    {"a*ba\?c", 6, "", 0, false},
    {"a\?", 2, "c\\", 2, false},
    {"c\\[b", 4, "\?", 1, false},
    {"*cc][cb", 7, "]", 1, false},
    {"b", 1, "\?b\\bb", 5, false},
    {"b\\^ba[", 6, "[", 1, false},
    {"]", 1, "*]b", 3, false},
    {"^c^\?*", 5, "\?-\?", 3, false},
    {"**\?", 3, "a^abb", 5, true},
    {"", 0, "\?-", 2, false},
    {"[\?\?c[^]", 7, "*\\*\\b", 5, false},
    {"c^b\\", 4, "", 0, false},
    {"c\\-]]c^", 7, "]]cb]*", 6, false},
    {"^ab", 3, "aba-^", 5, false},
    {"\\]]\\*a*", 7, "b-", 2, false},
    {"", 0, "[\?\?^[", 5, false},
    {"b]a", 3, "bb[", 3, false},
    {"aa][", 4, "", 0, false},
    {"\?b", 2, "bc\?", 3, false},
    {"b\?^**]", 6, "-ca]*", 5, false},
    {"a", 1, "", 0, false},
    {"ca\\[*", 5, "\\a*c]", 5, false},
    {"\\", 1, "\\c\\", 3, false},
    {"", 0, "^", 1, false},
    {"", 0, "]^^\\*", 5, false},
    {"]-]*^", 5, "c*]", 3, false},
    {"-c[\\]", 5, "", 0, false},
    {"*c", 2, "\\\\a-", 4, false},
    {"^aab", 4, "\?", 1, false},
    {"a]\?]b-", 6, "--[b", 4, false},
    {"]c[", 3, "-b\?*", 4, false},
    {"\\b\?", 3, "-b-[c[", 6, false},
    {"\?-[\\^\\", 6, "", 0, false},
    {"-bb-^", 5, "c^^", 3, false},
    {"-ca[*", 5, "[", 1, false},
    {"[a-[a", 5, "", 0, false},
    {"^", 1, "", 0, false},
    {"]\\\?]*", 5, "-[\?[^\?", 6, false},
    {"^a\\", 3, "", 0, false},
    {"cab", 3, "", 0, false},
    {"ca^", 3, "*", 1, false},
    {"-[][b\\", 6, "*[b", 3, false},
    {"c-^b-]-", 7, "\\\?c", 3, false},
    {"", 0, "ccc]*", 5, false},
    {"cc\?a]", 5, "", 0, false},
    {"^ba]\\\?", 6, "*bcc", 4, false},
    {"\?][c", 4, "\\^b-**", 6, false},
    {"[\?a", 3, "[", 1, false},
    {"-[", 2, "]^b", 3, false},
    {"^]c\?[^", 6, "*b^]a^", 6, false},
    {"\?b][[", 5, "\\\?", 2, false},
    {"[-\?^^c*", 7, "*]\?", 3, false},
    {"c\?a", 3, "\\b^\?]", 5, false},
    {"-a\\", 3, "c", 1, false},
    {"c", 1, "\?\?b", 3, false},
    {"^\\", 2, "[aa]c\\", 6, false},
    {"[c[*", 4, "[^b[", 4, false},
    {"-]]\\", 4, "[a\?-^]", 6, false},
    {"\?^\?[\\\?", 6, "", 0, false},
    {"*]-", 3, "a*[c", 4, false},
    {"^c\\b", 4, "\?\?", 2, false},
    {"***", 3, "ac-", 3, true},
    {"-c[b", 4, "\\\?][a", 5, false},
    {"[ba[]-", 6, "\?\?[-^", 5, false},
    {"", 0, "\?]c[", 4, false},
    {"\?", 1, "][**\\", 5, false},
    {"b\?cc", 4, "[[*-b", 5, false},
    {"--c\?", 4, "*\?**ab", 6, false},
    {"^^", 2, "\?b", 2, false},
    {"", 0, "\?[\\c\?\?", 6, false},
    {"ba*", 3, "\?^", 2, false},
    {"-*", 2, "c*aa", 4, false},
    {"b", 1, "*[*", 3, false},
    {"]a[[", 4, "\\", 1, false},
    {"\?]-\?^c\\", 7, "a\?^a*", 5, false},
    {"-[[\\", 4, "c*^\\-b", 6, false},
    {"", 0, "[\?", 2, false},
    {"a\?[", 3, "c", 1, false},
    {"[-c", 3, "^b^", 3, false},
    {"\?a", 2, "*]-]\?", 5, false},
    {"c", 1, "-*^\\^", 5, false},
    {"", 0, "a\?][^", 5, false},
    {"^[]b", 4, "^b[b", 4, false},
    {"*", 1, "-\?\?-", 4, true},
    {"-bb*-a", 6, "]\\^ca\?", 6, false},
    {"b]", 2, "\\", 1, false},
    {"ab[c", 4, "*][\?", 4, false},
    {"a\?a]\\*c", 7, "ac\?", 3, false},
    {"-bc]", 4, "\?*\\", 3, false},
    {"[b\\\\c", 5, "--]-", 4, false},
    {"c]b*", 4, "-[cb\?", 5, false},
    {"\\a\\*c", 5, "]aca\?", 5, false},
    {"[\?", 2, "\?-", 2, false},
    {"c", 1, "]\\\?cc]", 6, false},
    {"c\?*", 3, "*a[c^c", 6, false},
    {"-[b-", 4, "][\\c]", 5, false},
    {"ab\?\?\?\?]", 7, "^", 1, false},
    {"-[]b", 4, "^-\\bb", 5, false},
    {"\\]*-", 4, "[[*^\?", 5, false},
    {"^", 1, "a-[-", 4, false},
    {"]^^a", 4, "\?^bb", 4, false},
    {"ab]-a", 5, "c]", 2, false},
    {"]a[[-", 5, "\\", 1, false},
    {"a\?", 2, "\?\?c", 3, false},
    {"\?", 1, "-c", 2, false},
    {"", 0, "a\?\\]", 4, false},
    {"ca", 2, "]a*[", 4, false},
    {"^", 1, "]*]-", 4, false},
    {"c[", 2, "caa", 3, false},
    {"\\", 1, "b-a", 3, false},
    {"^*\?", 3, "[", 1, false},
};
/* clang-format on */

static void test_redis_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const glob_case_t *c = &cases[i];
        bool got = pos_glob_match(c->pat, c->plen, c->str, c->slen);
        if (got != c->match) {
            print_error("case %zu: pattern \"%.*s\" string \"%.*s\": want %d got %d\n", i,
                        (int)c->plen, c->pat, (int)c->slen, c->str, c->match, got);
        }
        assert_int_equal(got, c->match);
    }
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
    size_t ul = strlen(unit), tl = strlen(tail);
    char *out = malloc(ul * times + tl + 1);

    assert_non_null(out);
    for (size_t i = 0; i < times; i++) {
        memcpy(out + i * ul, unit, ul);
    }
    memcpy(out + ul * times, tail, tl + 1);
    return out;
}

/* Redis stops following '*' after 1000 nested runs: checked on the server. */
static void test_nesting_limit(void **state)
{
    char *p1000t = repeat("*a", 1000, "*");
    char *p1001 = repeat("*a", 1001, "");
    char *p1000 = repeat("*a", 1000, "");
    char *s1000 = repeat("a", 1000, "");
    char *s1001 = repeat("a", 1001, "");

    (void)state;
    assert_true(pos_glob_match(p1000t, strlen(p1000t), s1000, strlen(s1000)));
    assert_false(pos_glob_match(p1001, strlen(p1001), s1001, strlen(s1001)));
    assert_true(pos_glob_match(p1000, strlen(p1000), s1000, strlen(s1000)));
    free(p1000t);
    free(p1001);
    free(p1000);
    free(s1000);
    free(s1001);
}

/* The classic exponential case for a naive backtracker must stay linear-ish:
 * 30 star runs against 200,000 bytes is about 12 million steps. */
static void test_hostile_pattern_is_fast(void **state)
{
    char *pat = repeat("*a", 30, "*b");
    char *str = repeat("a", 200000, "");
    struct timespec t0, t1;
    double ms;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_false(pos_glob_match(pat, strlen(pat), str, strlen(str)));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("hostile pattern: %.1f ms\n", ms);
    assert_true(ms < 2000.0); /* generous for sanitizer builds on a slow ARM */
    str[199999] = 'b';
    assert_true(pos_glob_match(pat, strlen(pat), str, strlen(str)));
    free(pat);
    free(str);
}

/* A deliberately naive recursive reference with the documented semantics,
 * for a differential check on many small random inputs. */
static size_t ref_set(const char *p, size_t plen, size_t i, unsigned char c, bool *hit)
{
    bool neg = false, h = false;
    i++;
    if (i < plen && p[i] == '^') {
        neg = true;
        i++;
    }
    while (i < plen) {
        if (p[i] == '\\' && i + 1 < plen) {
            h |= (unsigned char)p[i + 1] == c;
            i += 2;
        } else if (p[i] == ']') {
            i++;
            break;
        } else if (i + 2 < plen && p[i + 1] == '-') {
            unsigned char a = (unsigned char)p[i], b = (unsigned char)p[i + 2];
            h |= (a <= b) ? (c >= a && c <= b) : (c >= b && c <= a);
            i += 3;
        } else {
            h |= (unsigned char)p[i] == c;
            i++;
        }
    }
    *hit = h != neg;
    return i;
}

static bool ref_match(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t next;
    bool hit;

    if (plen == 0) {
        return slen == 0;
    }
    if (p[0] == '*') {
        for (size_t k = 0; k <= slen; k++) {
            if (ref_match(p + 1, plen - 1, s + k, slen - k)) {
                return true;
            }
        }
        return false;
    }
    if (slen == 0) {
        return false;
    }
    if (p[0] == '?') {
        return ref_match(p + 1, plen - 1, s + 1, slen - 1);
    }
    if (p[0] == '[') {
        next = ref_set(p, plen, 0, (unsigned char)s[0], &hit);
        return hit && ref_match(p + next, plen - next, s + 1, slen - 1);
    }
    if (p[0] == '\\' && plen >= 2) {
        return p[1] == s[0] && ref_match(p + 2, plen - 2, s + 1, slen - 1);
    }
    return p[0] == s[0] && ref_match(p + 1, plen - 1, s + 1, slen - 1);
}

static void test_against_reference(void **state)
{
    static const char alpha[] = "ab*?[]^-\\";
    char p[10], s[10];
    unsigned seed = 12345;

    (void)state;
    for (int n = 0; n < 200000; n++) {
        size_t plen, slen;
        seed = seed * 1103515245u + 12345u;
        plen = (seed >> 16) % 10;
        seed = seed * 1103515245u + 12345u;
        slen = 1 + (seed >> 16) % 9; /* the empty string is a separate rule */
        for (size_t i = 0; i < plen; i++) {
            seed = seed * 1103515245u + 12345u;
            p[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
        }
        for (size_t i = 0; i < slen; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
        }
        if (pos_glob_match(p, plen, s, slen) != ref_match(p, plen, s, slen)) {
            print_error("pattern \"%.*s\" string \"%.*s\"\n", (int)plen, p, (int)slen, s);
            fail();
        }
    }
}

/* A tiny deterministic generator (the tests must repeat exactly). */
static uint32_t rnd(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* n bytes drawn from alpha into buf. */
static void rnd_bytes(uint32_t *seed, const char *alpha, size_t na, char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = alpha[rnd(seed) % na];
    }
}

/* One pattern against strings: compiled once, as the cache uses it, and
 * through pos_glob_match(), both as the oracle says. */
static void check_against_oracle(const char *p, size_t plen, const char *const *strs,
                                 const size_t *lens, size_t n)
{
    pos_glob_t *g;

    assert_int_equal(pos_glob_compile(p, plen, &g), 0);
    for (size_t i = 0; i < n; i++) {
        bool want = pos_test_glob_oracle(p, plen, strs[i], lens[i]);
        if (pos_glob_test(g, strs[i], lens[i]) != want ||
            pos_glob_match(p, plen, strs[i], lens[i]) != want) {
            print_error("pattern \"%.*s\" (%zu) string \"%.*s\" (%zu): oracle %d\n", (int)plen, p,
                        plen, (int)lens[i], strs[i], lens[i], want);
            fail();
        }
    }
    pos_glob_free(g);
}

/*
 * Differential check against the first matcher (tests/support/glob_oracle.c):
 * short patterns over the special bytes (every malformed form comes up),
 * and long ones (up to 256 bytes, the CACHE_INVALIDATE limit, with many
 * '*' runs and sets) against strings up to 600 bytes made to nearly match.
 */
static void test_against_oracle(void **state)
{
    static const char special[] = "ab*?[]^-\\";
    static const char keyish[] = "aab:*?[]^-\\";
    uint32_t seed = 20240611;
    char p[300], sbuf[8][640];
    const char *strs[8];
    size_t lens[8];

    (void)state;
    for (int i = 0; i < 8; i++) {
        strs[i] = sbuf[i];
    }
    /* Short: every pattern against 8 strings of 0..12 bytes. */
    for (int round = 0; round < 40000; round++) {
        size_t plen = rnd(&seed) % 13;
        rnd_bytes(&seed, special, sizeof(special) - 1, p, plen);
        for (int i = 0; i < 8; i++) {
            lens[i] = rnd(&seed) % 13;
            rnd_bytes(&seed, special, sizeof(special) - 1, sbuf[i], lens[i]);
        }
        check_against_oracle(p, plen, strs, lens, 8);
    }
    /* Long: patterns of up to 256 bytes; the strings are the pattern's
     * literal bytes with the specials replaced, stretched or cut, so that
     * most nearly match and the automaton goes deep. */
    for (int round = 0; round < 3000; round++) {
        size_t plen = 1 + rnd(&seed) % 256;
        rnd_bytes(&seed, keyish, sizeof(keyish) - 1, p, plen);
        for (int i = 0; i < 8; i++) {
            size_t n = 0;
            for (size_t k = 0; k < plen && n < 600; k++) {
                char c = p[k];
                if (c == '*') {
                    size_t run = rnd(&seed) % 5;
                    for (size_t r = 0; r < run && n < 600; r++) {
                        sbuf[i][n++] = keyish[rnd(&seed) % 3];
                    }
                } else if (strchr("?[]^-\\", c) != NULL) {
                    sbuf[i][n++] = keyish[rnd(&seed) % (sizeof(keyish) - 1)];
                } else {
                    sbuf[i][n++] = rnd(&seed) % 50 == 0 ? 'b' : c;
                }
            }
            if (i >= 6) {
                n = rnd(&seed) % (n + 1); /* cut short */
            }
            lens[i] = n;
        }
        check_against_oracle(p, plen, strs, lens, 8);
    }
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * The matcher's own cost for CACHE_INVALIDATE's worst case: each of the
 * worst patterns we could think of (256 bytes) against 20,000 keys of 500
 * bytes, all built to keep the automaton as busy as possible. Prints the
 * figures; the bound is loose (sanitizer builds on a loaded 2-core
 * machine): 2.4 s per pattern was the old matcher on the first one alone.
 * In the agent this work runs on the store writer in slices
 * (agent/store/cache.c); the loop only tests the keys it reads.
 */
#define WORST_KEYS POS_TEST_GLOB_KEYS
#define WORST_LEN  POS_TEST_GLOB_KEY_LEN

static void test_worst_patterns_timing(void **state)
{
    enum { NPAT = POS_TEST_GLOB_WORST };
    pos_test_glob_case_t worst[NPAT];
    char *keys = malloc((size_t)WORST_KEYS * WORST_LEN);

    (void)state;
    assert_non_null(keys);
    pos_test_glob_worst(worst);
    for (int k = 0; k < WORST_KEYS; k++) {
        pos_test_glob_key(keys + (size_t)k * WORST_LEN, k);
    }
    for (int i = 0; i < NPAT; i++) {
        pos_glob_t *g;
        struct timespec t0;
        size_t matched = 0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(pos_glob_compile(worst[i].pattern, worst[i].len, &g), 0);
        for (int k = 0; k < WORST_KEYS; k++) {
            matched += pos_glob_test(g, keys + (size_t)k * WORST_LEN, WORST_LEN);
        }
        pos_glob_free(g);
        double ms = ms_since(&t0);
        print_message("glob worst case %-32s %zu bytes: %7.1f ms for %d keys of %d bytes "
                      "(%zu match)\n",
                      worst[i].name, worst[i].len, ms, WORST_KEYS, WORST_LEN, matched);
        assert_true(ms < 2000.0);
        /* Same answers as the oracle on a sample. */
        for (int k = 0; k < WORST_KEYS; k += 997) {
            const char *key = keys + (size_t)k * WORST_LEN;
            assert_int_equal(pos_glob_match(worst[i].pattern, worst[i].len, key, WORST_LEN),
                             pos_test_glob_oracle(worst[i].pattern, worst[i].len, key, WORST_LEN));
        }
    }
    free(keys);
}

static void test_high_bytes(void **state)
{
    (void)state;
    /* Unsigned comparison: 0x80..0xff form an ordinary range. */
    assert_true(pos_glob_match("[\x80-\xff]", 5, "\xc3", 1));
    assert_false(pos_glob_match("[\x80-\xff]", 5, "a", 1));
    assert_true(pos_glob_match("caf\xc3\xa9*", 6, "caf\xc3\xa9s", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_table),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_hostile_pattern_is_fast),
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_against_oracle),
        cmocka_unit_test(test_worst_patterns_timing),
        cmocka_unit_test(test_high_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
