/*
 * Log lines: plain on a terminal or a file (timestamp, level), syslog
 * priorities and no timestamp when stderr is the systemd journal
 * ($JOURNAL_STREAM names stderr's device and inode).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "platform/log.h"

static void test_journal_stream_matches(void **state)
{
    (void)state;
    assert_true(pos_log_is_journal_stream("8:123456", 8, 123456));
    assert_true(pos_log_is_journal_stream("0:0", 0, 0));
    if (sizeof(dev_t) == 8 && sizeof(ino_t) == 8) { /* 32-bit ARM: ino_t may be 32 bits */
        assert_true(pos_log_is_journal_stream("18446744073709551615:18446744073709551615",
                                              (dev_t)UINT64_MAX, (ino_t)UINT64_MAX));
    }
    /* Another stream: a child's redirected stderr inherits the variable. */
    assert_false(pos_log_is_journal_stream("8:123456", 8, 123457));
    assert_false(pos_log_is_journal_stream("9:123456", 8, 123456));
}

/* Malformed values never match, whatever the device and inode. */
static void test_journal_stream_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",          "8",          "8:",
        ":123456",   "8:123456x",  "8:123456 ",
        " 8:123456", "a:b",        "-8:1",
        "8:-123",    "8::123",     "8:1:2",
        "+8:123456", "0x8:123456", "99999999999999999999999999:1", /* overflows */
    };
    assert_false(pos_log_is_journal_stream(NULL, 8, 123456));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (pos_log_is_journal_stream(bad[i], 8, 123456) ||
            pos_log_is_journal_stream(bad[i], 8, 1) || pos_log_is_journal_stream(bad[i], 0, 0)) {
            fail_msg("\"%s\" matched", bad[i]);
        }
    }
}

/* sd-daemon(3) prefixes: the level's syslog priority, no timestamp. */
static void test_format_journal(void **state)
{
    (void)state;
    char buf[256];
    static const struct {
        pos_log_level_t level;
        const char *want;
    } cases[] = {
        {POS_LOG_ERROR, "<3>link: down\n"},
        {POS_LOG_WARN, "<4>link: down\n"},
        {POS_LOG_INFO, "<6>link: down\n"},
        {POS_LOG_DEBUG, "<7>link: down\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = pos_log_format(buf, sizeof(buf), true, 1764412800, 123456, cases[i].level,
                                  "link", "down");
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
}

/* Elsewhere, as before: UTC timestamp to the millisecond, level, module. */
static void test_format_plain(void **state)
{
    (void)state;
    char buf[256];
    size_t n =
        pos_log_format(buf, sizeof(buf), false, 1764412800, 123456, POS_LOG_WARN, "link", "down");
    assert_string_equal(buf, "2025-11-29T10:40:00.123Z warn  link: down\n");
    assert_int_equal(n, strlen(buf));
    pos_log_format(buf, sizeof(buf), false, 1764412800, 999999, POS_LOG_DEBUG, "x", "y");
    assert_string_equal(buf, "2025-11-29T10:40:00.999Z debug x: y\n");
}

/* A line too long for the buffer is cut but still ends with its newline;
 * a level out of range is shown as an error rather than read past the
 * table. */
static void test_format_limits(void **state)
{
    (void)state;
    char buf[16], msg[100];
    memset(msg, 'a', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    size_t n = pos_log_format(buf, sizeof(buf), true, 0, 0, POS_LOG_INFO, "m", msg);
    assert_int_equal(n, sizeof(buf) - 1);
    assert_int_equal(buf[n - 1], '\n');
    assert_int_equal(buf[n], '\0');
    assert_memory_equal(buf, "<6>m: aaaa", 10);
    assert_int_equal(pos_log_format(buf, 1, true, 0, 0, POS_LOG_INFO, "m", "x"), 0);
    assert_int_equal(buf[0], '\0');
    char big[64];
    pos_log_format(big, sizeof(big), true, 0, 0, (pos_log_level_t)42, "m", "x");
    assert_string_equal(big, "<3>m: x\n");
}

/* Runs one POS_WARN with stderr on a fresh file and JOURNAL_STREAM set as
 * "how" says: "same" (the file's dev:ino), "other" (another inode), or
 * NULL (unset). Returns what was written. */
static char *log_through_stderr(const char *how)
{
    char path[] = "/tmp/posagent-test-log-XXXXXX", value[64];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    if (how == NULL) {
        unsetenv("JOURNAL_STREAM");
    } else {
        snprintf(value, sizeof(value), "%ju:%ju", (uintmax_t)st.st_dev,
                 (uintmax_t)st.st_ino + (strcmp(how, "other") == 0 ? 1u : 0u));
        setenv("JOURNAL_STREAM", value, 1);
    }
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    bool journal = pos_log_detect_journal();
    POS_WARN("link", "down %d", 42);
    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    unsetenv("JOURNAL_STREAM");
    pos_log_detect_journal();
    assert_int_equal(journal, how != NULL && strcmp(how, "same") == 0);

    char *out = calloc(1, 4096);
    assert_non_null(out);
    assert_true(pread(fd, out, 4095, 0) >= 0);
    close(fd);
    unlink(path);
    return out;
}

/* The real path: pos_log() on stderr, decided by stderr itself. */
static void test_stderr_journal_or_not(void **state)
{
    (void)state;
    pos_log_set_level(POS_LOG_INFO);

    char *out = log_through_stderr("same");
    assert_string_equal(out, "<4>link: down 42\n");
    free(out);

    out = log_through_stderr("other");
    assert_int_equal(strlen(out), strlen("2025-11-29T10:40:00.123Z warn  link: down 42\n"));
    assert_string_equal(out + 24, " warn  link: down 42\n");
    assert_int_equal(out[0], '2');
    free(out);

    out = log_through_stderr(NULL);
    assert_string_equal(out + 24, " warn  link: down 42\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_stream_matches),
        cmocka_unit_test(test_journal_stream_malformed),
        cmocka_unit_test(test_format_journal),
        cmocka_unit_test(test_format_plain),
        cmocka_unit_test(test_format_limits),
        cmocka_unit_test(test_stderr_journal_or_not),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
