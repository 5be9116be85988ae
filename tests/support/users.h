#ifndef TESTS_SUPPORT_USERS_H
#define TESTS_SUPPORT_USERS_H

#include <sys/types.h>

/*
 * Steps run as another user, for the tests of who may use the local
 * socket (root only: the ids are switched in a child process, the test
 * itself stays root). Numeric ids need no entry in /etc/passwd.
 */

/* pos_test_ping_as results besides 0 (PONG came back). */
#define POS_TEST_PING_EACCES 2 /* connect: permission denied */
#define POS_TEST_PING_NOCONN 3 /* connect failed otherwise */
#define POS_TEST_PING_NOIDS  4 /* the child could not take the ids */
#define POS_TEST_PING_NOPONG 5 /* connected, but no "+PONG" within 5 s */

/*
 * In a child process running as uid with gid as its only group, connects
 * to the Unix socket at path and sends PING. Waits for the child and
 * returns 0 when "+PONG" came back, one of POS_TEST_PING_*, or -1 when no
 * child could be run. The caller's own server must keep serving meanwhile
 * (call it from a client thread).
 */
int pos_test_ping_as(const char *path, uid_t uid, gid_t gid);

#endif /* TESTS_SUPPORT_USERS_H */
