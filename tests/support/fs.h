#ifndef TESTS_SUPPORT_FS_H
#define TESTS_SUPPORT_FS_H

#include <stddef.h>

/* File-system helpers shared by the tests (no Redis, no libuv). */

/* Makes a fresh directory /tmp/<name>-XXXXXX, its path in dir (len
 * bytes). Returns 0 or -errno. */
int pos_test_mkdtemp(char *dir, size_t len, const char *name);

/* Removes path and everything below it, like rm -rf; quiet about what is
 * already gone. */
void pos_test_rm_tree(const char *path);

#endif /* TESTS_SUPPORT_FS_H */
