/*
 * Privileges (docs/hardening.md): started as root, the agent refuses to go
 * on as root unless told to; with [security] user it opens store, socket
 * and devices, then runs as that user for good, and still works: heartbeat,
 * payments on the simulated devices, the local socket (mode 0660, the
 * configured group). Needs root (CI runs as root); skipped otherwise.
 */
#define _GNU_SOURCE /* posix_openpt, grantpt, unlockpt, ptsname */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fs.h"
#include "tests/support/harness.h"

#define TID "T-PRIV"
#define SID "S-PRIV"

typedef struct fixture {
    pos_test_redis_t redis;
    pos_test_agent_t agent;
    char dir[64]; /* owned by the user the agent becomes */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/posagent-priv-XXXXXX");
    if (mkdtemp(f->dir) == NULL || chmod(f->dir, 0755) != 0 ||
        pos_test_redis_start(&f->redis) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->agent.pid > 0) {
        pos_test_agent_stop(&f->agent, SIGTERM, 5000);
    }
    pos_test_agent_cleanup(&f->agent);
    pos_test_redis_stop(&f->redis);
    pos_test_rm_tree(f->dir);
    free(f);
    return 0;
}

static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("not root: privilege tests skipped\n");
        skip();
    }
}

static const char *bin(void)
{
    const char *b = getenv("POSAGENT_BIN");
    assert_non_null(b);
    return b;
}

static const char *write_conf(fixture_t *f, const char *security)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/posagent.ini", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "[terminal]\nid = " TID "\nstore_id = " SID "\n"
            "[redis]\nurl = redis://127.0.0.1:%u\n"
            "[hal]\nsim_dir = %s/sim\n[store]\npath = %s/store\n"
            "[local]\nsocket = %s/agent.sock\n%s",
            (unsigned)f->redis.port, f->dir, f->dir, f->dir, security);
    fclose(fp);
    return path;
}

static void test_root_refused_without_override(void **state)
{
    fixture_t *f = *state;
    char *out = NULL;
    need_root();

    const char *conf = write_conf(f, "");
    const char *argv[] = {bin(), "--config", conf, NULL};
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "refusing to run as root"));
    assert_non_null(strstr(out, "[security] user"));
    free(out);
    /* Nothing was started: no store, no socket. */
    char p[128];
    snprintf(p, sizeof(p), "%s/agent.sock", f->dir);
    assert_int_not_equal(access(p, F_OK), 0);

    conf = write_conf(f, "[security]\nallow_root = false\n");
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    free(out);

    /* An unknown user is a configuration error too. */
    conf = write_conf(f, "[security]\nuser = no-such-user-posagent\n");
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "no such user"));
    free(out);

    /* The override, from the environment: it runs (check it is up, then stop). */
    conf = write_conf(f, "");
    const char *env[] = {"POSAGENT_ALLOW_ROOT=1", NULL};
    char ini[1024];
    snprintf(ini, sizeof(ini),
             "[terminal]\nid = " TID "\nstore_id = " SID "\n[redis]\nurl = redis://127.0.0.1:%u\n"
             "[security]\n",
             (unsigned)f->redis.port);
    assert_int_equal(pos_test_agent_start(&f->agent, ini, env), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "running as root", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 10000));
}

/* Uid:/Gid:/Groups: lines of /proc/<pid>/status. */
static void proc_ids(pid_t pid, char *uid, char *gid, char *groups, size_t len)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    uid[0] = gid[0] = groups[0] = '\0';
    while (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "Uid:", 4) == 0) {
            snprintf(uid, len, "%.100s", line + 4);
        } else if (strncmp(line, "Gid:", 4) == 0) {
            snprintf(gid, len, "%.100s", line + 4);
        } else if (strncmp(line, "Groups:", 7) == 0) {
            snprintf(groups, len, "%.100s", line + 7);
        }
    }
    fclose(fp);
}

static void test_drops_to_user(void **state)
{
    fixture_t *f = *state;
    char ini[1024], path[128], want[64], uid[128], gid[128], groups[128];
    struct passwd *pw;
    struct group *gr;
    struct stat st;
    need_root();

    pw = getpwnam("nobody");
    gr = getgrnam("daemon");
    if (pw == NULL || gr == NULL) {
        skip();
    }
    /* The simulated devices write their files as the new user. */
    snprintf(path, sizeof(path), "%s/sim", f->dir);
    assert_int_equal(mkdir(path, 0750), 0);
    assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);

    snprintf(ini, sizeof(ini),
             "[terminal]\nid = " TID "\nstore_id = " SID "\n"
             "[redis]\nurl = redis://127.0.0.1:%u\n"
             "[heartbeat]\ninterval_s = 1\nttl_s = 10\n"
             "[hal]\nsim_dir = %s/sim\nsim_pinpad_delay_ms = 100\n[store]\npath = %s/store\n"
             "[local]\nsocket = %s/agent.sock\nsocket_group = daemon\n"
             "[security]\nuser = nobody\n[log]\nlevel = debug\n",
             (unsigned)f->redis.port, f->dir, f->dir, f->dir);
    assert_int_equal(pos_test_agent_start(&f->agent, ini, NULL), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "running as nobody", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 10000));

    /* All four ids (real, effective, saved, filesystem) are nobody's, and
     * root's groups are gone. */
    proc_ids(f->agent.pid, uid, gid, groups, sizeof(uid));
    snprintf(want, sizeof(want), "\t%u\t%u\t%u\t%u", (unsigned)pw->pw_uid, (unsigned)pw->pw_uid,
             (unsigned)pw->pw_uid, (unsigned)pw->pw_uid);
    assert_string_equal(uid, want);
    snprintf(want, sizeof(want), "\t%u\t%u\t%u\t%u", (unsigned)pw->pw_gid, (unsigned)pw->pw_gid,
             (unsigned)pw->pw_gid, (unsigned)pw->pw_gid);
    assert_string_equal(gid, want);
    assert_null(strstr(groups, "\t0 "));
    assert_true(strcmp(groups, "\t0") != 0 && strncmp(groups, "\t0 ", 3) != 0);

    /* The socket: mode 0660, group daemon. */
    snprintf(path, sizeof(path), "%s/agent.sock", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(st.st_gid, gr->gr_gid);
    /* The store was handed over, so the next start as nobody can use it. */
    snprintf(path, sizeof(path), "%s/store/data.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);

    /* Heartbeats go on after the switch: the status key is rewritten. */
    char *s1 = pos_test_get(&f->redis, "terminal:" TID ":status");
    assert_non_null(s1);
    pos_test_sleep_ms(2500);
    char *s2 = pos_test_get(&f->redis, "terminal:" TID ":status");
    assert_non_null(s2);
    assert_string_not_equal(s1, s2);
    free(s1);
    free(s2);

    /* The devices opened as root still work: a payment goes through. */
    pos_test_sub_t sub;
    assert_int_equal(pos_test_sub_open(&sub, &f->redis, "payment:" TID), 0);
    assert_int_equal(pos_test_int(&f->redis,
                                  "PUBLISH payment:" TID " {\"type\":\"PAYMENT_REQUESTED\","
                                  "\"transactionId\":\"tx-p1\",\"amount\":1.50,"
                                  "\"currency\":\"EUR\"}"),
                     2);
    bool approved = false, printed = false;
    uint64_t end = pos_test_now_ms() + 10000;
    while (!printed && pos_test_now_ms() < end) {
        char ch[64];
        char *m = pos_test_sub_next(&sub, 1000, ch, sizeof(ch));
        approved = approved || (m != NULL && strstr(m, "PAYMENT_APPROVED") != NULL);
        /* The receipt is written as nobody too. */
        printed = m != NULL && strstr(m, "RECEIPT_PRINTED") != NULL;
        assert_true(m == NULL || strstr(m, "RECEIPT_FAILED") == NULL);
        free(m);
    }
    pos_test_sub_close(&sub);
    assert_true(approved);
    assert_true(printed);

    /* A clean stop as nobody. */
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 10000), 0);
    f->agent.pid = 0;
}

/*
 * A device only root may open (a pseudo-terminal of mode 0600 standing for
 * a serial customer display) is opened before the switch and keeps working
 * after it: the text of a DISPLAY_MESSAGE reaches it.
 */
static void test_devices_opened_before_drop(void **state)
{
    fixture_t *f = *state;
    char ini[1024], path[128];
    struct passwd *pw;
    need_root();

    pw = getpwnam("nobody");
    if (pw == NULL) {
        skip();
    }
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    const char *tty = ptsname(master);
    assert_non_null(tty);
    char ttypath[64];
    snprintf(ttypath, sizeof(ttypath), "%s", tty);
    assert_int_equal(chown(ttypath, 0, 0), 0);
    assert_int_equal(chmod(ttypath, 0600), 0);

    snprintf(path, sizeof(path), "%s/sim", f->dir);
    assert_int_equal(mkdir(path, 0750), 0);
    assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);
    snprintf(ini, sizeof(ini),
             "[terminal]\nid = " TID "\nstore_id = " SID "\n"
             "[redis]\nurl = redis://127.0.0.1:%u\n"
             "[hal]\ndisplay = cd5220:%s?baud=9600\nsim_dir = %s/sim\n"
             "[store]\npath = %s/store\n[local]\nsocket = %s/agent.sock\n"
             "[security]\nuser = nobody\n[log]\nlevel = debug\n",
             (unsigned)f->redis.port, ttypath, f->dir, f->dir, f->dir);
    assert_int_equal(pos_test_agent_start(&f->agent, ini, NULL), 0);
    assert_true(pos_test_agent_wait_log(&f->agent, "running as nobody", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->agent, "hal: display: ready", 1, 5000));

    assert_int_equal(pos_test_int(&f->redis,
                                  "PUBLISH payment:" TID " {\"type\":\"DISPLAY_MESSAGE\",\"lines\":"
                                  "[\"HELLO-NOBODY\",\"x\"]}"),
                     1);
    char seen[4096];
    size_t n = 0;
    uint64_t end = pos_test_now_ms() + 5000;
    seen[0] = '\0';
    while (strstr(seen, "HELLO-NOBODY") == NULL && pos_test_now_ms() < end &&
           n < sizeof(seen) - 1) {
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 200) == 1) {
            ssize_t got = read(master, seen + n, sizeof(seen) - 1 - n);
            if (got > 0) {
                n += (size_t)got;
                seen[n] = '\0';
                /* The display's bytes may hold NULs: keep searching past them. */
                for (size_t i = 0; i < n; i++) {
                    if (seen[i] == '\0') {
                        seen[i] = ' ';
                    }
                }
            }
        }
    }
    assert_non_null(strstr(seen, "HELLO-NOBODY"));
    assert_int_equal(pos_test_agent_log_count(&f->agent, "hal: display: offline"), 0);
    close(master);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_root_refused_without_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drops_to_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_opened_before_drop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
