#ifndef TESTS_SUPPORT_FS_H
#define TESTS_SUPPORT_FS_H

/* File-system helpers shared by the tests (no Redis, no libuv). */

/* Removes path and everything below it, like rm -rf; quiet about what is
 * already gone. */
void pos_test_rm_tree(const char *path);

#endif /* TESTS_SUPPORT_FS_H */
