#define _GNU_SOURCE /* setresuid, setresgid */
#include "tests/support/users.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child's part: only system calls between fork and _exit. */
static int ping_child(const char *path, uid_t uid, gid_t gid)
{
    struct sockaddr_un sa;
    struct timeval tv = {5, 0};
    char buf[8];
    int fd;

    if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
        return POS_TEST_PING_NOIDS;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return POS_TEST_PING_NOCONN;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return POS_TEST_PING_NOCONN;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        return errno == EACCES ? POS_TEST_PING_EACCES : POS_TEST_PING_NOCONN;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (send(fd, "PING\r\n", 6, MSG_NOSIGNAL) != 6 || recv(fd, buf, 7, MSG_WAITALL) != 7 ||
        memcmp(buf, "+PONG\r\n", 7) != 0) {
        return POS_TEST_PING_NOPONG;
    }
    return 0;
}

int pos_test_ping_as(const char *path, uid_t uid, gid_t gid)
{
    int status = 0;
    pid_t pid = fork();

    if (pid == 0) {
        _exit(ping_child(path, uid, gid));
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}
