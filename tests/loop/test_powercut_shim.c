/*
 * The power-cut fault (tests/support/powercut.c) keeps in its shadow what
 * a power cut would leave, and nothing else. The test runs itself as a
 * child under the shim (preloaded as the fixture preloads it into the
 * agent: after the ASan runtime in this build). The child writes, flushes
 * some of it, and kills itself with SIGKILL; the parent reads the shadow:
 *
 *   flushed writes are there (fdatasync, fsync, an O_DSYNC descriptor);
 *   writes and a truncation made after the last flush are not, unless
 *   every piece is written back early (POS_POWERCUT_EARLY=1000);
 *   a rename and an unlink under the directory are mirrored, and a file
 *   of which nothing was flushed, renamed over another, leaves it empty;
 *   an open with O_TRUNC is a truncation like any other (pending);
 *   a file outside the directory has no shadow.
 *
 * test_powercut (integration) relies on all of it to say what a till
 * would find after a power cut.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fs.h"
#include "tests/support/harness.h"
#include "tests/support/slowfs_env.h"

static char work[PATH_MAX];

static int must(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "child: %s failed\n", what);
        _exit(3);
    }
    return rc;
}

static int open_in(const char *dir, const char *name, int flags)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return must(open(path, flags | O_CREAT | O_CLOEXEC, 0600), name);
}

/* What the child does, in in/ (shadowed) and out/ (not), then the cut. */
static int child_main(const char *dir)
{
    char in[PATH_MAX + 8], out[PATH_MAX + 8], page[4096];
    struct iovec iov[2] = {{"CC", 2}, {"cc", 2}};

    snprintf(in, sizeof(in), "%s/in", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    memset(page, 'P', sizeof(page));

    /* a: flushed, then a page written after the flush (pending). */
    int a = open_in(in, "a", O_RDWR);
    must((int)pwrite(a, "AAAA", 4, 0), "pwrite a");
    must(fdatasync(a), "fdatasync a");
    must((int)pwrite(a, page, sizeof(page), 4096), "pwrite a late");
    /* b: write and writev at the file position, flushed by fsync. */
    int b = open_in(in, "b", O_RDWR);
    must((int)write(b, "BB", 2), "write b");
    must((int)writev(b, iov, 2), "writev b");
    must(fsync(b), "fsync b");
    /* d: through an O_DSYNC descriptor: on the disk at once. */
    int d = open_in(in, "d", O_WRONLY | O_DSYNC);
    must((int)pwrite(d, "DDDD", 4, 0), "pwrite d");
    /* t: 8 KiB flushed, then truncated without a flush. */
    int t = open_in(in, "t", O_RDWR);
    must((int)pwrite(t, page, sizeof(page), 0), "pwrite t");
    must((int)pwrite(t, page, sizeof(page), 4096), "pwrite t");
    must(fdatasync(t), "fdatasync t");
    must(ftruncate(t, 100), "ftruncate t");
    /* r1 flushed and renamed r2; u flushed and unlinked. */
    int r = open_in(in, "r1", O_RDWR);
    must((int)pwrite(r, "RRRR", 4, 0), "pwrite r1");
    must(fdatasync(r), "fdatasync r1");
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    snprintf(from, sizeof(from), "%s/r1", in);
    snprintf(to, sizeof(to), "%s/r2", in);
    must(rename(from, to), "rename");
    int u = open_in(in, "u", O_RDWR);
    must((int)pwrite(u, "UUUU", 4, 0), "pwrite u");
    must(fdatasync(u), "fdatasync u");
    snprintf(from, sizeof(from), "%s/u", in);
    must(unlink(from), "unlink");
    /* tr: 8 KiB flushed, then opened again with O_TRUNC, not flushed. */
    int tr = open_in(in, "tr", O_RDWR);
    must((int)pwrite(tr, page, sizeof(page), 0), "pwrite tr");
    must((int)pwrite(tr, page, sizeof(page), 4096), "pwrite tr");
    must(fsync(tr), "fsync tr");
    must(open_in(in, "tr", O_RDWR | O_TRUNC), "open tr O_TRUNC");
    /* v: flushed; then w, never flushed, renamed over it. */
    int v = open_in(in, "v", O_RDWR);
    must((int)pwrite(v, "VVVV", 4, 0), "pwrite v");
    must(fdatasync(v), "fdatasync v");
    int w = open_in(in, "w", O_RDWR);
    must((int)pwrite(w, "WWWW", 4, 0), "pwrite w");
    snprintf(from, sizeof(from), "%s/w", in);
    snprintf(to, sizeof(to), "%s/v", in);
    must(rename(from, to), "rename over v");
    /* o: outside the directory. */
    int o = open_in(out, "o", O_RDWR);
    must((int)pwrite(o, "OOOO", 4, 0), "pwrite o");
    must(fdatasync(o), "fdatasync o");

    raise(SIGKILL); /* the power goes */
    return 4;
}

static int setup(void **state)
{
    (void)state;
    if (pos_test_mkdtemp(work, sizeof(work), "posagent-powercut") != 0) {
        return -1;
    }
    char p[PATH_MAX + 16];
    const char *sub[] = {"in", "out", "shadow"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", work, sub[i]);
        if (mkdir(p, 0700) != 0) {
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pos_test_rm_tree(work);
    return 0;
}

/* The child under the shim; it must end by SIGKILL. */
static void run_child(unsigned early)
{
    char self[PATH_MAX], in[PATH_MAX + 8], shadow[PATH_MAX + 8];
    pos_powercut_env_t e;
    char *out = NULL;

    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(in, sizeof(in), "%s/in", work);
    snprintf(shadow, sizeof(shadow), "%s/shadow", work);
    const char *const *env = pos_powercut_env(&e, in, shadow, early, 7);
    if (env == NULL) {
        fail_msg("the shim is not built (POS_POWERCUT_LIB)");
    }
    const char *argv[] = {self, "--child", work, NULL};
    int st = pos_test_run(argv, env, &out, 60000);
    if (st != 128 + SIGKILL) {
        fprintf(stderr, "%s", out != NULL ? out : "");
        free(out);
        fail_msg("child exited %d, not by SIGKILL", st);
    }
    free(out);
}

/* The shadow of name: its bytes (malloc'd) and length; NULL when absent. */
static char *shadow_of(const char *name, size_t *len)
{
    char path[PATH_MAX + 64];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/shadow/%s", work, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    assert_int_equal(fstat(fileno(f), &sb), 0);
    char *buf = calloc(1, (size_t)sb.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sb.st_size, f), (size_t)sb.st_size);
    fclose(f);
    *len = (size_t)sb.st_size;
    return buf;
}

/* Fails unless the shadow of name holds exactly len bytes starting with
 * head (NULL: any), and byte at (when below len) is c. */
static void expect_shadow(const char *name, size_t len, const char *head, size_t at, char c)
{
    size_t got = 0;
    char *s = shadow_of(name, &got);

    if (s == NULL) {
        fail_msg("no shadow of %s", name);
    }
    if (got != len) {
        free(s);
        fail_msg("shadow of %s: %zu bytes, not %zu", name, got, len);
    }
    bool ok = (head == NULL || memcmp(s, head, strlen(head)) == 0) && (at >= len || s[at] == c);
    free(s);
    if (!ok) {
        fail_msg("shadow of %s: not the bytes expected", name);
    }
}

static void check_common(void)
{
    size_t len = 0;

    expect_shadow("b", 6, "BBCCcc", 0, 'B');
    expect_shadow("d", 4, "DDDD", 0, 'D');
    expect_shadow("r2", 4, "RRRR", 0, 'R');
    /* tr: the truncation at open was not flushed (and is never early). */
    expect_shadow("tr", 8192, "PPPP", 8191, 'P');
    assert_null(shadow_of("w", &len));
    assert_null(shadow_of("r1", &len));
    assert_null(shadow_of("u", &len));
    assert_null(shadow_of("o", &len));
}

static void test_unflushed_lost(void **state)
{
    (void)state;
    run_child(0);
    check_common();
    /* a: the flushed 4 bytes, not the page written after. */
    expect_shadow("a", 4, "AAAA", 0, 'A');
    /* t: 8 KiB, the truncation was not flushed. */
    expect_shadow("t", 8192, "PPPP", 0, 'P');
    /* v: now the renamed file, of which nothing was flushed. */
    expect_shadow("v", 0, NULL, 0, 0);
}

static void test_written_back_early(void **state)
{
    (void)state;
    run_child(1000);
    check_common();
    /* a: every piece went early, the late page too. */
    expect_shadow("a", 8192, "AAAA", 4096, 'P');
    expect_shadow("a", 8192, NULL, 8191, 'P');
    /* v: the renamed file, written back early. */
    expect_shadow("v", 4, "WWWW", 0, 'W');
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        return child_main(argv[2]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unflushed_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_back_early, setup, teardown),
    };
    return cmocka_run_group_tests_name("powercut_shim", tests, NULL, NULL);
}
