/*
 * Daemon conventions: systemd notification over $NOTIFY_SOCKET (READY=1
 * once the agent serves locally, whether or not Redis answers; the link's
 * state in STATUS=; WATCHDOG=1, STOPPING=1) and SIGHUP reloading the log
 * level.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"

/* Terminal T-D of store S-D, logging at "level". */
static void configure(pos_fix_t *f, const char *level)
{
    pos_ini_set(&f->ini, "terminal", "id", "T-D");
    pos_ini_set(&f->ini, "terminal", "store_id", "S-D");
    pos_ini_set(&f->ini, "log", "level", "%s", level);
}

/* Reads datagrams until one contains "want" or the time is up. */
static bool wait_datagram(int fd, const char *want, int timeout_ms, char *all, size_t alllen)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    char buf[512];
    while (pos_test_now_ms() < end) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = '\0';
            strncat(all, buf, alllen - strlen(all) - 2);
            strcat(all, "\n");
            if (strstr(buf, want) != NULL) {
                return true;
            }
            continue;
        }
        pos_test_sleep_ms(10);
    }
    return false;
}

static void test_sd_notify(void **state)
{
    pos_fix_t *f = *state;
    struct sockaddr_un sa;
    char path[108], env_sock[160], seen[4096] = "";

    snprintf(path, sizeof(path), "/tmp/posagent-notify-%d", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", path);
    const char *env[] = {env_sock, "WATCHDOG_USEC=200000", NULL};

    /* An offline till: Redis is down when the agent starts. It is ready
     * all the same (a unit ordered after it starts, systemctl start
     * returns), says in STATUS= that it is connecting, and serves. */
    pos_test_redis_kill(&f->redis);
    configure(f, "info");
    pos_fix_set_retry(f, 100, 500);
    pos_fix_agent_start(f, env);
    assert_true(wait_datagram(fd, "READY=1", 10000, seen, sizeof(seen)));
    assert_non_null(strstr(seen, "READY=1\nSTATUS=serving locally; connecting to Redis"));
    assert_int_equal(pos_test_agent_log_count(&f->agent, "link: online"), 0);
    redisContext *local = pos_fix_local(f);
    assert_non_null(local);
    redisReply *r = redisCommand(local, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(local);
    assert_true(wait_datagram(fd, "WATCHDOG=1", 2000, seen, sizeof(seen)));

    /* Redis back: the link's state changes STATUS=, nothing else. */
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    assert_true(wait_datagram(fd, "STATUS=online", 15000, seen, sizeof(seen)));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 1000));

    /* READY=1 only once: not again after a reconnect. */
    pos_test_int(&f->redis, "CLIENT KILL TYPE pubsub");
    assert_true(wait_datagram(fd, "STATUS=offline", 10000, seen, sizeof(seen)));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 2, 10000));
    assert_true(wait_datagram(fd, "STATUS=online", 2000, seen, sizeof(seen)));
    const char *first = strstr(seen, "READY=1");
    assert_null(strstr(first + 1, "READY=1"));

    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    assert_true(wait_datagram(fd, "STOPPING=1", 1000, seen, sizeof(seen)));
    close(fd);
    unlink(path);
}

static void test_sighup_reload(void **state)
{
    pos_fix_t *f = *state;
    const char *echo = "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\"}";

    configure(f, "info");
    pos_fix_agent_start(f, NULL);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: online", 1, 10000));

    /* Debug lines are not logged at level info. */
    pos_test_int(&f->redis, "PUBLISH payment:T-D %s", echo);
    pos_test_sleep_ms(300);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "terminal-originated"), 0);

    /* A broken file is refused and the agent keeps running as it was. */
    FILE *fp = fopen(f->agent.conf, "w");
    fputs("[log]\nlevel = chatty\n", fp);
    fclose(fp);
    kill(f->agent.pid, SIGHUP);
    assert_true(pos_test_agent_wait_log(&f->agent, "reload failed", 1, 3000));
    assert_true(pos_test_agent_alive(&f->agent));

    configure(f, "debug");
    assert_int_equal(pos_ini_write(&f->ini, f->agent.conf), 0);
    kill(f->agent.pid, SIGHUP);
    assert_true(pos_test_agent_wait_log(&f->agent, "reloaded: log level debug", 1, 3000));
    pos_test_int(&f->redis, "PUBLISH payment:T-D %s", echo);
    assert_true(pos_test_agent_wait_log(&f->agent, "terminal-originated", 1, 3000));

    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_sd_notify),
        POS_FIX_TEST(test_sighup_reload),
    };
    return cmocka_run_group_tests_name("daemon", tests, NULL, NULL);
}
