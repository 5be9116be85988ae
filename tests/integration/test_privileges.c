/*
 * Privileges (docs/hardening.md): started as root, the agent refuses to go
 * on as root unless told to; with [security] user it opens store, socket
 * and devices, then runs as that user for good, and still works: heartbeat,
 * payments on the simulated devices, the local socket (mode 0660, the
 * configured group, also in a directory made beforehand as systemd's
 * RuntimeDirectory= does, tried by processes of other user ids); and it
 * refuses a configuration its socket's group could read. Needs root (CI
 * runs as root); skipped otherwise.
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

#include "tests/support/fixture.h"
#include "tests/support/fs.h"
#include "tests/support/users.h"

#define TID "T-PRIV"
#define SID "S-PRIV"

typedef struct fixture {
    pos_fix_t fx;
    char dir[64]; /* owned by the user the agent becomes */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/posagent-priv-XXXXXX");
    if (mkdtemp(f->dir) == NULL || chmod(f->dir, 0755) != 0 || pos_fix_start(&f->fx) != 0) {
        free(f);
        return -1;
    }
    pos_ini_set(&f->fx.ini, "terminal", "id", TID);
    pos_ini_set(&f->fx.ini, "terminal", "store_id", SID);
    f->fx.stop_signal = SIGTERM;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pos_fix_stop(&f->fx);
    pos_test_rm_tree(f->dir);
    free(f);
    return 0;
}

/* Simulated devices' files, store and socket in f->dir (which the user
 * the agent becomes can write to). */
static void in_dir(const fixture_t *f, pos_ini_t *ini)
{
    pos_ini_set(ini, "hal", "sim_dir", "%s/sim", f->dir);
    pos_ini_set(ini, "store", "path", "%s/store", f->dir);
    pos_ini_set(ini, "local", "socket", "%s/agent.sock", f->dir);
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

/* f->dir/posagent.ini, for posagent run by hand: everything in f->dir, no
 * [log] section, [security] key = value (no [security] section at all
 * when key is NULL) and [local] socket_group (none when NULL). */
static const char *write_conf_group(fixture_t *f, const char *key, const char *value,
                                    const char *group)
{
    static char path[128];
    static pos_ini_t ini;
    snprintf(path, sizeof(path), "%s/posagent.ini", f->dir);
    pos_ini_init(&ini);
    pos_ini_set(&ini, "terminal", "id", TID);
    pos_ini_set(&ini, "terminal", "store_id", SID);
    pos_ini_set(&ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)f->fx.redis.port);
    pos_ini_set(&ini, "payment", "allow_unsigned", "true");
    in_dir(f, &ini);
    if (key != NULL) {
        pos_ini_set(&ini, "security", key, "%s", value);
    }
    if (group != NULL) {
        pos_ini_set(&ini, "local", "socket_group", "%s", group);
    }
    assert_int_equal(pos_ini_write(&ini, path), 0);
    return path;
}

static const char *write_conf(fixture_t *f, const char *key, const char *value)
{
    return write_conf_group(f, key, value, NULL);
}

static void test_root_refused_without_override(void **state)
{
    fixture_t *f = *state;
    char *out = NULL;
    need_root();

    const char *conf = write_conf(f, NULL, NULL);
    const char *argv[] = {bin(), "--config", conf, NULL};
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "refusing to run as root"));
    assert_non_null(strstr(out, "[security] user"));
    free(out);
    /* Nothing was started: no store, no socket. */
    char p[128];
    snprintf(p, sizeof(p), "%s/agent.sock", f->dir);
    assert_int_not_equal(access(p, F_OK), 0);

    conf = write_conf(f, "allow_root", "false");
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    free(out);

    /* An unknown user is a configuration error too. */
    conf = write_conf(f, "user", "no-such-user-posagent");
    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "no such user"));
    free(out);

    /* The override, from the environment: it runs (check it is up, then stop). */
    conf = write_conf(f, NULL, NULL);
    const char *env[] = {"POSAGENT_ALLOW_ROOT=1", NULL};
    /* In the agent's own directory; an empty [security]: no allow_root. */
    pos_ini_unset(&f->fx.ini, "log", NULL);
    pos_ini_section(&f->fx.ini, "security");
    pos_fix_agent_start(&f->fx, env);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "running as root", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 10000));
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

/* For the agent to become nobody with a socket of group daemon: root,
 * both names (skipped otherwise), and the simulated devices' directory
 * handed to nobody, who writes their files after the switch. */
static void prepare_nobody(fixture_t *f, struct passwd **pw, struct group **gr)
{
    char path[128];

    need_root();
    *pw = getpwnam("nobody");
    *gr = getgrnam("daemon");
    if (*pw == NULL || *gr == NULL) {
        skip();
    }
    snprintf(path, sizeof(path), "%s/sim", f->dir);
    assert_int_equal(mkdir(path, 0750), 0);
    assert_int_equal(chown(path, (*pw)->pw_uid, (*pw)->pw_gid), 0);
}

static void test_drops_to_user(void **state)
{
    fixture_t *f = *state;
    char path[128], want[64], uid[128], gid[128], groups[128];
    struct passwd *pw;
    struct group *gr;
    struct stat st;

    prepare_nobody(f, &pw, &gr);

    pos_ini_t *ini = &f->fx.ini;
    pos_fix_set_heartbeat(&f->fx, 1, 10);
    in_dir(f, ini);
    pos_ini_set(ini, "hal", "sim_pinpad_delay_ms", "100");
    pos_ini_set(ini, "local", "socket_group", "daemon");
    pos_ini_set(ini, "security", "user", "nobody");
    pos_fix_agent_start(&f->fx, NULL);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "running as nobody", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 10000));

    /* All four ids (real, effective, saved, filesystem) are nobody's, and
     * root's groups are gone. */
    proc_ids(f->fx.agent.pid, uid, gid, groups, sizeof(uid));
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

    /* Heartbeats go on after the switch: the status key is rewritten.
     * The first is written just after "link: online" is logged: under an
     * emulator (qemu in the cross stages) the GET may come before it. */
    char *s1 = NULL;
    for (int i = 0; i < 100 && s1 == NULL; i++) {
        s1 = pos_test_get(&f->fx.redis, "terminal:" TID ":status");
        if (s1 == NULL) {
            pos_test_sleep_ms(50);
        }
    }
    assert_non_null(s1);
    pos_test_sleep_ms(2500);
    char *s2 = pos_test_get(&f->fx.redis, "terminal:" TID ":status");
    assert_non_null(s2);
    assert_string_not_equal(s1, s2);
    free(s1);
    free(s2);

    /* The devices opened as root still work: a payment goes through. */
    pos_test_sub_t sub;
    assert_int_equal(pos_test_sub_open(&sub, &f->fx.redis, "payment:" TID), 0);
    assert_int_equal(pos_test_int(&f->fx.redis,
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
    assert_int_equal(pos_test_agent_stop(&f->fx.agent, SIGTERM, 10000), 0);
    f->fx.agent.pid = 0;
}

/*
 * A device only root may open (a pseudo-terminal of mode 0600 standing for
 * a serial customer display) is opened before the switch and keeps working
 * after it: the text of a DISPLAY_MESSAGE reaches it.
 */
static void test_devices_opened_before_drop(void **state)
{
    fixture_t *f = *state;
    char path[128];
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
    pos_ini_t *ini = &f->fx.ini;
    pos_ini_set(ini, "hal", "display", "cd5220:%s?baud=9600", ttypath);
    in_dir(f, ini);
    pos_ini_set(ini, "security", "user", "nobody");
    pos_fix_agent_start(&f->fx, NULL);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "running as nobody", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "hal: display: ready", 1, 5000));

    assert_int_equal(pos_test_int(&f->fx.redis,
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
    assert_int_equal(pos_test_agent_log_count(&f->fx.agent, "hal: display: offline"), 0);
    close(master);
}

/* Ids that need no /etc/passwd entry: a member of the socket's group, a
 * stranger, and the group systemd gives the runtime directory (posagent's
 * own, which may read the configuration). */
#define MEMBER_UID  40001u
#define STRANGER    40002u
#define RUNTIME_GID 40000u

/*
 * The packaged layout: the socket's directory exists before the agent
 * starts (RuntimeDirectory=, 0750, the agent's user, the agent's own
 * group), and [local] socket_group names the POS application's group. A
 * member of that group reaches the agent; a member of the agent's own
 * group only (the old workaround, which also reads posagent.ini) does not.
 */
static void test_socket_group_in_runtime_dir(void **state)
{
    fixture_t *f = *state;
    char dir[128], sock[160];
    struct passwd *pw;
    struct group *gr;
    struct stat st;

    prepare_nobody(f, &pw, &gr);
    /* What systemd makes for the user the agent binds its socket as. */
    snprintf(dir, sizeof(dir), "%s/run", f->dir);
    snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
    assert_int_equal(mkdir(dir, 0750), 0);
    assert_int_equal(chown(dir, 0, RUNTIME_GID), 0);
    assert_int_equal(chmod(dir, 0750), 0);

    pos_ini_t *ini = &f->fx.ini;
    in_dir(f, ini);
    pos_ini_set(ini, "local", "socket", "%s", sock);
    pos_ini_set(ini, "local", "socket_group", "daemon");
    pos_ini_set(ini, "security", "user", "nobody");
    pos_fix_agent_start(&f->fx, NULL);
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "running as nobody", 1, 10000));
    assert_true(pos_test_agent_wait_log(&f->fx.agent, "link: online", 1, 10000));

    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_gid, gr->gr_gid);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(stat(sock, &st), 0);
    assert_int_equal(st.st_gid, gr->gr_gid);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(pos_test_ping_as(sock, MEMBER_UID, gr->gr_gid), 0);
    assert_int_equal(pos_test_ping_as(sock, STRANGER, RUNTIME_GID), POS_TEST_PING_EACCES);

    /* INFO says who came. */
    redisContext *c = redisConnectUnix(sock);
    assert_true(c != NULL && c->err == 0);
    assert_int_equal(pos_fix_local_info(c, "clients", "clients_accepted"), 2);
    assert_int_equal(pos_fix_local_info(c, "clients", "connected_clients"), 1);
    redisFree(c);
}

/* Writes text to path, owned by root and group gid, with mode. */
static void write_owned(const char *path, const char *text, gid_t gid, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chown(path, 0, gid), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The socket's group must not read the configuration: refused (exit 78,
 * also by --check-config) through the file's group or as everybody's; the
 * packaged root:<agent's group> 0640 with another socket group is fine. */
static void test_config_readable_by_socket_group_refused(void **state)
{
    fixture_t *f = *state;
    char *out = NULL;
    struct group *gr;
    need_root();

    gr = getgrnam("daemon");
    if (gr == NULL) {
        skip();
    }
    const char *conf = write_conf_group(f, "allow_root", "true", "daemon");
    const char *check[] = {bin(), "--config", conf, "--check-config", NULL};
    const char *run[] = {bin(), "--config", conf, NULL};

    assert_int_equal(chown(conf, 0, gr->gr_gid), 0);
    assert_int_equal(chmod(conf, 0640), 0);
    assert_int_equal(pos_test_run(check, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "socket_group"));
    free(out);
    assert_int_equal(pos_test_run(run, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "could read the configuration"));
    free(out);

    assert_int_equal(chown(conf, 0, 0), 0);
    assert_int_equal(chmod(conf, 0644), 0);
    assert_int_equal(pos_test_run(check, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, "everybody"));
    free(out);

    assert_int_equal(chown(conf, 0, RUNTIME_GID), 0);
    assert_int_equal(chmod(conf, 0640), 0);
    assert_int_equal(pos_test_run(check, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, "configuration OK"));
    free(out);

    /* Drop-ins: one holding a secret must not be readable by the socket's
     * group either; one holding none (the identity) may be. */
    char dir[160], secret[200], ident[200];
    snprintf(dir, sizeof(dir), "%s/posagent.d", f->dir);
    snprintf(secret, sizeof(secret), "%s/20-secrets.ini", dir);
    snprintf(ident, sizeof(ident), "%s/10-identity.ini", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_owned(ident, "[terminal]\nid = T-DROP\n", gr->gr_gid, 0640);
    write_owned(secret, "[redis]\npassword = dropin-s3cret\n", gr->gr_gid, 0640);
    assert_int_equal(pos_test_run(check, NULL, &out, 10000), 78);
    assert_non_null(strstr(out, secret));
    assert_non_null(strstr(out, "socket_group"));
    assert_null(strstr(out, "dropin-s3cret"));
    free(out);
    assert_int_equal(chown(secret, 0, 0), 0);
    assert_int_equal(chmod(secret, 0600), 0);
    assert_int_equal(pos_test_run(check, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, "T-DROP"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_root_refused_without_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drops_to_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_opened_before_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_group_in_runtime_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_readable_by_socket_group_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
