/*
 * The slow-disk fault (tests/support/slowfs.c) delays what waits for the
 * disk and nothing else. The test runs itself as a child under the shim,
 * preloaded the way the fixture preloads it into the agent
 * (tests/support/slowfs_env.h: after the ASan runtime in this build), so
 * it also proves an ASan binary starts under it. The child does each
 * operation of the table once and prints how long it took; the parent
 * checks that the delayed ones took at least the delay and are in the
 * shim's log, and that the others are not in the log and took less.
 *
 * The files live on tmpfs when there is one, where the real syncs cost
 * nothing: what takes time is the shim.
 */
#define _GNU_SOURCE /* sync_file_range, syncfs, pwrite64 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/harness.h"
#include "tests/support/slowfs_env.h"

#define DELAY_MS 200

typedef enum op_kind {
    OP_FSYNC,
    OP_FDATASYNC,
    OP_SYNCFS,
    OP_SFR_WRITE, /* sync_file_range that only starts the write-back */
    OP_SFR_WAIT,  /* sync_file_range that waits for it */
    OP_MSYNC_ASYNC,
    OP_MSYNC_SYNC,
    OP_WRITE,
    OP_PWRITE,
    OP_PWRITE64,
    OP_WRITEV,
    OP_PWRITEV,
    OP_OPENAT_PWRITE, /* opened with openat */
    OP_DUP_WRITE,     /* through a dup() of the descriptor */
    OP_PIPE_WRITE,
    OP_SOCKET_WRITE,
} op_kind_t;

/* Each operation has a file of its own, so the log tells them apart. */
typedef struct op {
    const char *name;
    op_kind_t kind;
    const char *file; /* under the work directory; NULL for a pipe or socket */
    int oflags;       /* extra open flags: O_DSYNC, O_SYNC or 0 */
    const char *call; /* the call as the shim logs it */
    bool slow_in;     /* delayed with the prefix set to in/ */
    bool slow_all;    /* delayed with no prefix */
} op_t;

static const op_t ops[] = {
    {"fsync", OP_FSYNC, "in/f1", 0, "fsync", true, true},
    {"fdatasync", OP_FDATASYNC, "in/f2", 0, "fdatasync", true, true},
    {"syncfs", OP_SYNCFS, "in/f3", 0, "syncfs", true, true},
    {"sync_file_range WRITE", OP_SFR_WRITE, "in/f4", 0, "sync_file_range", false, false},
    {"sync_file_range WAIT", OP_SFR_WAIT, "in/f5", 0, "sync_file_range", true, true},
    {"msync MS_ASYNC", OP_MSYNC_ASYNC, "in/m1", 0, "msync", false, false},
    {"msync MS_SYNC", OP_MSYNC_SYNC, "in/m2", 0, "msync", true, true},
    {"write", OP_WRITE, "in/p1", 0, "write", false, false},
    {"pwrite", OP_PWRITE, "in/p2", 0, "pwrite", false, false},
    {"writev", OP_WRITEV, "in/p3", 0, "writev", false, false},
    {"pwrite O_DSYNC", OP_PWRITE, "in/d1", O_DSYNC, "pwrite", true, true},
    {"pwrite64 O_DSYNC", OP_PWRITE64, "in/d2", O_DSYNC, "pwrite", true, true},
    {"write O_DSYNC", OP_WRITE, "in/d3", O_DSYNC, "write", true, true},
    {"writev O_DSYNC", OP_WRITEV, "in/d4", O_DSYNC, "writev", true, true},
    {"pwritev O_DSYNC", OP_PWRITEV, "in/d5", O_DSYNC, "pwritev", true, true},
    {"write O_SYNC", OP_WRITE, "in/s1", O_SYNC, "write", true, true},
    {"openat+pwrite O_DSYNC", OP_OPENAT_PWRITE, "in/d6", O_DSYNC, "pwrite", true, true},
    {"dup+write O_DSYNC", OP_DUP_WRITE, "in/d7", O_DSYNC, "write", true, true},
    {"pipe write", OP_PIPE_WRITE, NULL, 0, "write", false, false},
    {"socket write", OP_SOCKET_WRITE, NULL, 0, "write", false, false},
    {"fsync outside", OP_FSYNC, "out/f1", 0, "fsync", false, true},
    {"pwrite O_DSYNC outside", OP_PWRITE, "out/d1", O_DSYNC, "pwrite", false, true},
    {"msync MS_SYNC outside", OP_MSYNC_SYNC, "out/m1", 0, "msync", false, true},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- the child: each operation once, timed ---------------------------------------- */

/* Does op on dir's files; returns 0 or -1 (errno set). Only the call the
 * op is about is inside [t0, t1]. */
static int child_op(const char *dir, const op_t *op, double *took)
{
    static char page[4096];
    char path[PATH_MAX];
    struct iovec iov[2] = {{page, 100}, {page + 100, 100}};
    int fd = -1, fd2 = -1, sv[2], rc = 0;
    void *map = NULL;
    double t0;

    memset(page, 'x', sizeof(page));
    if (op->file != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, op->file);
        if (op->kind == OP_OPENAT_PWRITE) {
            char sub[PATH_MAX];
            snprintf(sub, sizeof(sub), "%s", path);
            *strrchr(sub, '/') = '\0';
            int dfd = open(sub, O_RDONLY | O_DIRECTORY);
            fd = openat(dfd, strrchr(path, '/') + 1, O_RDWR | O_CREAT | op->oflags, 0600);
            close(dfd);
        } else {
            fd = open(path, O_RDWR | O_CREAT | op->oflags, 0600);
        }
        if (fd < 0 || ftruncate(fd, (off_t)sizeof(page)) != 0) {
            return -1;
        }
    }
    if (op->kind == OP_MSYNC_ASYNC || op->kind == OP_MSYNC_SYNC) {
        map = mmap(NULL, sizeof(page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            return -1;
        }
        memset(map, 'y', sizeof(page));
    }
    if (op->kind == OP_DUP_WRITE) {
        fd2 = dup(fd);
    }
    if (op->kind == OP_PIPE_WRITE && pipe(sv) != 0) {
        return -1;
    }
    if (op->kind == OP_SOCKET_WRITE && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        return -1;
    }
    t0 = now_ms();
    switch (op->kind) {
    case OP_FSYNC:
        rc = fsync(fd);
        break;
    case OP_FDATASYNC:
        rc = fdatasync(fd);
        break;
    case OP_SYNCFS:
        rc = syncfs(fd);
        break;
    case OP_SFR_WRITE:
        rc = sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        break;
    case OP_SFR_WAIT:
        rc = sync_file_range(fd, 0, 0,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                 SYNC_FILE_RANGE_WAIT_AFTER);
        break;
    case OP_MSYNC_ASYNC:
        rc = msync(map, sizeof(page), MS_ASYNC);
        break;
    case OP_MSYNC_SYNC:
        rc = msync(map, sizeof(page), MS_SYNC);
        break;
    case OP_WRITE:
        rc = write(fd, page, sizeof(page)) == (ssize_t)sizeof(page) ? 0 : -1;
        break;
    case OP_PWRITE:
    case OP_OPENAT_PWRITE:
        rc = pwrite(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page) ? 0 : -1;
        break;
    case OP_PWRITE64:
        rc = pwrite64(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page) ? 0 : -1;
        break;
    case OP_WRITEV:
        rc = writev(fd, iov, 2) == 200 ? 0 : -1;
        break;
    case OP_PWRITEV:
        rc = pwritev(fd, iov, 2, 0) == 200 ? 0 : -1;
        break;
    case OP_DUP_WRITE:
        rc = write(fd2, page, 64) == 64 ? 0 : -1;
        break;
    case OP_PIPE_WRITE:
    case OP_SOCKET_WRITE:
        rc = write(sv[1], page, 64) == 64 ? 0 : -1;
        break;
    }
    *took = now_ms() - t0;
    if (map != NULL) {
        munmap(map, sizeof(page));
    }
    if (op->kind == OP_PIPE_WRITE || op->kind == OP_SOCKET_WRITE) {
        close(sv[0]);
        close(sv[1]);
    }
    if (fd2 >= 0) {
        close(fd2);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Prints "<index> <ms>" per operation, or "<index> error <errno>". */
static int child_main(const char *dir)
{
    for (size_t i = 0; i < NOPS; i++) {
        double took = 0;
        if (child_op(dir, &ops[i], &took) != 0) {
            printf("%zu error %d\n", i, errno);
        } else {
            printf("%zu %.3f\n", i, took);
        }
    }
    return 0;
}

/* ---- the parent ------------------------------------------------------------------ */

static char work[PATH_MAX];

static int setup(void **state)
{
    char sub[PATH_MAX + 8];
    struct stat st;

    (void)state;
    /* tmpfs when there is one: the real syncs then take no time. */
    snprintf(work, sizeof(work), "%s",
             stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0
                 ? "/dev/shm/posagent-slowfs-XXXXXX"
                 : "/tmp/posagent-slowfs-XXXXXX");
    if (mkdtemp(work) == NULL) {
        return -1;
    }
    snprintf(sub, sizeof(sub), "%s/in", work);
    if (mkdir(sub, 0700) != 0) {
        return -1;
    }
    snprintf(sub, sizeof(sub), "%s/out", work);
    return mkdir(sub, 0700);
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs the child under the shim (delay_ms, prefix in/ or none); took[i]
 * is operation i's time. Returns the log's path. */
static const char *run_child(unsigned delay_ms, bool prefix, double *took)
{
    static char log[PATH_MAX + 64];
    char self[PATH_MAX], in[PATH_MAX + 8];
    pos_slowfs_env_t e;
    char *out = NULL;

    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(in, sizeof(in), "%s/in", work);
    snprintf(log, sizeof(log), "%s/slowfs-%u-%d.log", work, delay_ms, (int)prefix);
    const char *const *env = pos_slowfs_env(&e, delay_ms, prefix ? in : NULL, log);
    if (env == NULL) {
        fail_msg("the shim is not built (POS_SLOWFS_LIB)");
    }
    const char *argv[] = {self, "--child", work, NULL};
    int st = pos_test_run(argv, env, &out, 60000);
    if (st != 0) {
        fail_msg("child exited %d:\n%s", st, out != NULL ? out : "");
    }
    for (size_t i = 0; i < NOPS; i++) {
        took[i] = -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        unsigned idx;
        double ms;
        int err;
        if (sscanf(line, "%u error %d", &idx, &err) == 2) {
            fail_msg("%s failed in the child: %s", ops[idx].name, strerror(err));
        }
        if (sscanf(line, "%u %lf", &idx, &ms) == 2 && idx < NOPS) {
            took[idx] = ms;
        }
    }
    free(out);
    for (size_t i = 0; i < NOPS; i++) {
        if (took[i] < 0) {
            fail_msg("no time for %s from the child", ops[i].name);
        }
    }
    return log;
}

/* Every operation is delayed, and logged, exactly when slow[i] says. */
static void check(const char *what, const char *log, const double *took, const bool *slow)
{
    char root[PATH_MAX], path[PATH_MAX + 64];
    int delayed = 0;

    assert_non_null(realpath(work, root));
    for (size_t i = 0; i < NOPS; i++) {
        const op_t *op = &ops[i];
        int logged = 0;
        if (op->file != NULL) {
            snprintf(path, sizeof(path), "%s/%s", root, op->file);
            logged = pos_slowfs_log_count(log, op->call, path);
        }
        print_message("%-8s %-24s %8.3f ms %s\n", what, op->name, took[i],
                      slow[i] ? "(delayed)" : "");
        if (slow[i]) {
            delayed++;
            if (took[i] < DELAY_MS || logged != 1) {
                fail_msg("%s: %s took %.3f ms, logged %d times: it should have been delayed", what,
                         op->name, took[i], logged);
            }
        } else if (took[i] >= DELAY_MS || logged != 0) {
            fail_msg("%s: %s took %.3f ms, logged %d times: it should not have been delayed", what,
                     op->name, took[i], logged);
        }
    }
    /* Nothing else the child did (opening, mapping, printing) was delayed. */
    assert_int_equal(pos_slowfs_log_count(log, NULL, NULL), delayed);
}

/* Runs the child with the delay, with or without the in/ prefix, and
 * checks each operation against its column of the table. */
static void run_and_check(const char *what, bool prefix)
{
    double took[NOPS];
    bool slow[NOPS];

    const char *log = run_child(DELAY_MS, prefix, took);
    for (size_t i = 0; i < NOPS; i++) {
        slow[i] = prefix ? ops[i].slow_in : ops[i].slow_all;
    }
    check(what, log, took, slow);
}

static void test_prefix(void **state)
{
    (void)state;
    run_and_check("prefix", true);
}

static void test_every_file(void **state)
{
    (void)state;
    run_and_check("all", false);
}

/* Preloaded with no delay, the shim changes nothing and writes no log. */
static void test_no_delay(void **state)
{
    double took[NOPS];
    bool slow[NOPS] = {false};

    (void)state;
    const char *log = run_child(0, false, took);
    check("none", log, took, slow);
    assert_int_not_equal(access(log, F_OK), 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        return child_main(argv[2]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_delay, setup, teardown),
    };
    return cmocka_run_group_tests_name("slowfs", tests, NULL, NULL);
}
