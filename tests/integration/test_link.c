/*
 * The Redis link end to end: a real redis-server on a free loopback port,
 * the posagent binary, and a plain hiredis client playing the cloud.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/fake_redis.h"
#include "tests/support/fixture.h"

#define TID        POS_FIX_TID
#define SID        POS_FIX_SID
#define STATUS_KEY POS_FIX_STATUS_KEY

/* Starts the agent on the fixture's server with fast retries (100 ms to
 * 1 s), a 1 s connect timeout and the given command timeout; further
 * settings are in f->ini already. */
static void start_agent_timeout(pos_fix_t *f, unsigned command_timeout_ms, const char *const *env)
{
    pos_fix_set_retry(f, 100, 1000);
    pos_ini_set(&f->ini, "redis", "connect_timeout_ms", "1000");
    pos_ini_set(&f->ini, "redis", "command_timeout_ms", "%u", command_timeout_ms);
    pos_fix_agent_start(f, env);
}

static void start_agent(pos_fix_t *f, const char *const *env)
{
    start_agent_timeout(f, 1000, env);
}

static void wait_online(pos_fix_t *f, int n)
{
    pos_fix_wait_online(f, n, 10000);
}

/* The status key once it holds the given status (NULL on timeout). */
static cJSON *wait_status(pos_fix_t *f, const char *status, int timeout_ms)
{
    cJSON *j = NULL;
    pos_fix_wait_status(&f->redis, status, timeout_ms, &j);
    return j;
}

static void assert_status_json(cJSON *j, const char *status)
{
    static const char *const dev_states[] = {"ready",     "busy",      "offline",    "error",
                                             "paper_low", "paper_out", "cover_open", NULL};
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "terminalId")->valuestring, TID);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "storeId")->valuestring, SID);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "status")->valuestring, status);
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    assert_true(cJSON_IsNumber(ts));
    double now = (double)pos_test_wall_ms();
    assert_true(ts->valuedouble > now - 120000 && ts->valuedouble <= now + 1000);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "version")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "uptimeS")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "outbox")));
    cJSON *devs = cJSON_GetObjectItemCaseSensitive(j, "devices");
    assert_true(cJSON_IsObject(devs));
    const char *names[] = {"display", "printer", "pinpad"};
    for (int i = 0; i < 3; i++) {
        cJSON *d = cJSON_GetObjectItemCaseSensitive(devs, names[i]);
        assert_true(cJSON_IsString(d));
        bool known = false;
        for (int k = 0; dev_states[k] != NULL; k++) {
            known = known || strcmp(d->valuestring, dev_states[k]) == 0;
        }
        assert_true(known);
    }
}

/*
 * The heartbeat's "version" and "build", INFO's posagent_version and
 * posagent_build and the first line of posagent --version ("posagent
 * VERSION (build BUILD)") are the same two strings.
 */
static void assert_version_agrees(pos_fix_t *f, cJSON *status)
{
    const char *argv[] = {getenv("POSAGENT_BIN"), "--version", NULL};
    char *out = NULL, version[96], build[64], want[200];

    assert_int_equal(pos_test_run(argv, NULL, &out, 10000), 0);
    assert_int_equal(sscanf(out, "posagent %95s (build %63[^)])", version, build), 2);
    free(out);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(status, "version")->valuestring, version);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(status, "build")->valuestring, build);

    redisContext *local = pos_fix_local(f);
    assert_non_null(local);
    redisReply *r = redisCommand(local, "INFO server");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(want, sizeof(want), "posagent_version:%s\r\nposagent_build:%s\r\n", version, build);
    assert_non_null(strstr(r->str, want));
    freeReplyObject(r);
    redisFree(local);
}

/* Heartbeat: key present, JSON as CONTRACT.md, TTL within (ttl - interval,
 * ttl], refreshed every interval; TERMINAL_STATUS on the first connect;
 * both connections named. */
static void test_heartbeat(void **state)
{
    pos_fix_t *f = *state;
    pos_test_sub_t sub = {0};
    char channel[64];

    assert_int_equal(pos_test_sub_open(&sub, &f->redis, "system:terminals"), 0);
    pos_fix_set_heartbeat(f, 2, 6);
    start_agent(f, NULL);
    wait_online(f, 1);

    char *msg = pos_test_sub_next(&sub, 5000, channel, sizeof(channel));
    assert_non_null(msg);
    assert_string_equal(channel, "system:terminals");
    cJSON *m = cJSON_Parse(msg);
    free(msg);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "type")->valuestring,
                        "TERMINAL_STATUS");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "origin")->valuestring, "terminal");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "terminalId")->valuestring, TID);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "storeId")->valuestring, SID);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "status")->valuestring, "online");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "previous")->valuestring, "offline");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m, "ts")));
    cJSON_Delete(m);
    pos_test_sub_close(&sub);

    cJSON *j = wait_status(f, "online", 5000);
    assert_status_json(j, "online");
    assert_version_agrees(f, j);
    double ts1 = cJSON_GetObjectItemCaseSensitive(j, "ts")->valuedouble;
    cJSON_Delete(j);

    /* TTL in (ttl - interval, ttl] = (4 s, 6 s], sampled over three beats.
     * PTTL, since TTL rounds; 100 ms of slack for timer and scheduling
     * latency at the very end of an interval. */
    long long lo = 1000000, hi = 0;
    for (int i = 0; i < 60; i++) {
        long long pttl = pos_test_int(&f->redis, "PTTL %s", STATUS_KEY);
        lo = pttl < lo ? pttl : lo;
        hi = pttl > hi ? pttl : hi;
        pos_test_sleep_ms(100);
    }
    fprintf(stderr, "heartbeat: PTTL between %lld and %lld ms (ttl 6000, interval 2000)\n", lo, hi);
    assert_true(lo > 4000 - 100);
    assert_true(hi <= 6000);
    j = wait_status(f, "online", 100);
    assert_non_null(j);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "ts")->valuedouble > ts1);
    cJSON_Delete(j);

    assert_int_equal(pos_test_agent_clients(&f->redis, TID), 2);

    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Redis killed and restarted on the same port: status rewritten and a
 * published message reaches the handler again within cap + 1 s. */
static void test_redis_restart(void **state)
{
    pos_fix_t *f = *state;

    start_agent(f, NULL);
    wait_online(f, 1);
    cJSON_Delete(wait_status(f, "online", 5000));

    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    pos_test_sleep_ms(1500); /* let the backoff climb to its cap */
    assert_int_equal(pos_test_redis_start(&f->redis), 0);
    uint64_t back = pos_test_now_ms();

    cJSON *j = wait_status(f, "online", 1000 + 1000);
    uint64_t rewritten = pos_test_now_ms();
    assert_non_null(j);
    assert_status_json(j, "online");
    cJSON_Delete(j);
    fprintf(stderr, "restart: status rewritten %llu ms after Redis was back (cap 1000 ms)\n",
            (unsigned long long)(rewritten - back));

    /* The subscription is back: a message reaches the handler. */
    long long receivers = -1;
    for (int i = 0; i < 100 && receivers < 1; i++) {
        receivers = pos_test_int(&f->redis, "PUBLISH payment:" TID " %s",
                                 "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":[\"Hello\"]}");
        if (receivers < 1) {
            pos_test_sleep_ms(20);
        }
    }
    assert_int_equal(receivers, 1);
    assert_true(pos_test_agent_wait_log(&f->agent, "payment:" TID ": DISPLAY_MESSAGE", 1, 2000));
    assert_true(pos_test_now_ms() - back <= 2000);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Redis frozen past the command timeout: detected, reconnected after
 * SIGCONT. */
static void test_redis_frozen(void **state)
{
    pos_fix_t *f = *state;

    pos_fix_set_heartbeat(f, 1, 10);
    start_agent_timeout(f, 300, NULL);
    wait_online(f, 1);
    pos_test_redis_signal(&f->redis, SIGSTOP);
    assert_true(pos_test_agent_wait_log(&f->agent, "no reply within 300 ms", 1, 5000));
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 1000));
    pos_test_redis_signal(&f->redis, SIGCONT);
    wait_online(f, 2);
    redisReply *del = pos_test_redis_cmd(&f->redis, "DEL %s", STATUS_KEY);
    assert_non_null(del);
    freeReplyObject(del);
    cJSON *j = wait_status(f, "online", 3000); /* heartbeat resumes */
    assert_non_null(j);
    cJSON_Delete(j);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* The subscriber connection killed: detected, resubscribed. */
static void test_subscriber_killed(void **state)
{
    pos_fix_t *f = *state;

    start_agent(f, NULL);
    wait_online(f, 1);
    long long killed = pos_test_int(&f->redis, "CLIENT KILL TYPE pubsub");
    assert_int_equal(killed, 1);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    wait_online(f, 2);
    redisReply *r = pos_test_redis_cmd(&f->redis, "PUBSUB NUMSUB payment:" TID " inventory:" SID
                                                  " system:alerts");
    assert_non_null(r);
    assert_int_equal(r->elements, 6);
    for (int i = 1; i < 6; i += 2) {
        assert_int_equal(r->element[i]->integer, 1);
    }
    freeReplyObject(r);
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH system:alerts %s",
                                  "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"info\","
                                  "\"message\":\"hi\"}"),
                     1);
    assert_true(pos_test_agent_wait_log(&f->agent, "system:alerts: SYSTEM_ALERT", 1, 2000));
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* The end-to-end probe channel is subscribed by the agent's subscriber. */
static void test_probe_traffic(void **state)
{
    pos_fix_t *f = *state;

    start_agent(f, NULL);
    wait_online(f, 1);
    redisReply *r = pos_test_redis_cmd(&f->redis, "PUBSUB NUMSUB posagent:probe:" TID);
    assert_non_null(r);
    assert_int_equal(r->element[1]->integer, 1);
    freeReplyObject(r);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* Wrong password: clear error, retries at the cap, no crash, and the
 * password never reaches the log. */
static void test_wrong_password(void **state)
{
    pos_fix_t *f = *state;
    pos_test_redis_stop(&f->redis);
    memset(&f->redis, 0, sizeof(f->redis));
    snprintf(f->redis.password, sizeof(f->redis.password), "right-horse-battery");
    assert_int_equal(pos_fix_redis_start(f), 0);

    const char *env[] = {"REDIS_PASSWORD=Wr0ngPassw0rd!", NULL};
    start_agent(f, env);
    assert_true(pos_test_agent_wait_log(&f->agent, "authentication failed", 1, 5000));
    uint64_t t0 = pos_test_now_ms();
    pos_test_sleep_ms(3500);
    int attempts = pos_test_agent_log_count(&f->agent, "reconnecting in 1000 ms");
    (void)t0;
    /* At the 1000 ms cap: about 3 attempts in 3.5 s, never a tight loop. */
    assert_true(attempts >= 2 && attempts <= 5);
    assert_true(pos_test_agent_alive(&f->agent));
    char *log = pos_test_agent_log_read(&f->agent);
    assert_null(strstr(log, "Wr0ngPassw0rd"));
    assert_null(strstr(log, "right-horse-battery"));
    free(log);
    assert_null(pos_test_get(&f->redis, STATUS_KEY));
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* The right password, from the URL with an ACL user, and a database. */
static void test_acl_user_and_db(void **state)
{
    pos_fix_t *f = *state;

    redisReply *r = pos_test_redis_cmd(&f->redis, "ACL SETUSER till on >p@ss%%w0rd ~* &* +@all");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = pos_test_redis_cmd(&f->redis, "ACL SETUSER default off");
    freeReplyObject(r);
    pos_ini_set(&f->ini, "redis", "url", "redis://till:p%%40ss%%25w0rd@127.0.0.1:%u/3",
                (unsigned)f->redis.port);
    pos_fix_agent_start(f, NULL);
    wait_online(f, 1);
    redisContext *c = redisConnect("127.0.0.1", f->redis.port);
    assert_non_null(c);
    r = redisCommand(c, "AUTH till p@ss%%w0rd");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS %s", STATUS_KEY);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    char *log = pos_test_agent_log_read(&f->agent);
    assert_null(strstr(log, "p@ss"));
    free(log);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* SIGTERM: status offline written and published, exit 0. */
static void test_sigterm_offline(void **state)
{
    pos_fix_t *f = *state;
    pos_test_sub_t sub = {0};
    char channel[64];

    start_agent(f, NULL);
    wait_online(f, 1);
    cJSON_Delete(wait_status(f, "online", 5000));
    assert_int_equal(pos_test_sub_open(&sub, &f->redis, "system:terminals"), 0);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);

    cJSON *j = wait_status(f, "offline", 100);
    assert_status_json(j, "offline");
    cJSON_Delete(j);
    long long ttl = pos_test_int(&f->redis, "TTL %s", STATUS_KEY);
    assert_true(ttl > 50 && ttl <= 60);

    char *msg = pos_test_sub_next(&sub, 2000, channel, sizeof(channel));
    assert_non_null(msg);
    cJSON *m = cJSON_Parse(msg);
    free(msg);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "status")->valuestring, "offline");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "previous")->valuestring, "online");
    cJSON_Delete(m);
    pos_test_sub_close(&sub);
}

/* SIGTERM while Redis is unreachable: no wait, exit 0. */
static void test_sigterm_while_down(void **state)
{
    pos_fix_t *f = *state;

    start_agent(f, NULL);
    wait_online(f, 1);
    pos_test_redis_kill(&f->redis);
    assert_true(pos_test_agent_wait_log(&f->agent, "link: offline", 1, 5000));
    uint64_t t0 = pos_test_now_ms();
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    assert_true(pos_test_now_ms() - t0 < 1000);
}

/* Bad input on every channel: dropped with a warning, the agent lives. */
static void test_bad_input(void **state)
{
    pos_fix_t *f = *state;
    static const char *const bad[] = {
        "not json",
        "[1,2,3]",
        "{\"type\":42}",
        "{\"no\":\"type\"}",
        "{\"type\":\"NO_SUCH_TYPE\"}",
        "{\"type\":\"PAYMENT_REQUESTED\"",
        "",
        "\xff\xfe",
        /* wrong types and missing fields of real message types */
        "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":7,\"amount\":1,\"currency\":\"EUR\"}",
        "{\"type\":\"PAYMENT_REQUESTED\",\"amount\":1,\"currency\":\"EUR\"}",
        "{\"type\":\"DISPLAY_MESSAGE\",\"lines\":\"Hello\"}",
        "{\"type\":\"DISPLAY_MESSAGE\"}",
        ("{\"type\":\"INVENTORY_UPDATED\",\"storeId\":\"S-042\",\"productId\":\"P-7\","
         "\"quantity\":\"many\"}"),
        "{\"type\":\"SYSTEM_ALERT\",\"severity\":\"loud\",\"message\":\"x\"}",
        "{\"type\":\"CACHE_INVALIDATE\"}",
    };
    const char *channels[] = {"payment:" TID, "inventory:" SID, "system:alerts"};

    start_agent(f, NULL);
    wait_online(f, 1);
    int dropped = 0;
    for (size_t c = 0; c < 3; c++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            assert_int_equal(pos_test_int(&f->redis, "PUBLISH %s %s", channels[c], bad[i]), 1);
            dropped++;
        }
    }
    /* A 100 KiB message: over the 64 KiB a message may be, under what the
     * link reads (the larger [cache] max_value_bytes): the decoder drops it. */
    size_t big = 1024 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    memcpy(huge, "{\"type\":\"DISPLAY_MESSAGE\",\"x\":\"", 31);
    huge[100 * 1024 - 2] = '"';
    huge[100 * 1024 - 1] = '}';
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" TID " %b", huge, 100 * 1024), 1);
    dropped++;
    assert_true(pos_test_agent_wait_log(&f->agent, "dropped", dropped, 5000));
    /* A 1 MiB message is not even read: the link drops the connection at
     * its header, says why, and comes back. */
    huge[big - 2] = '"';
    huge[big - 1] = '}';
    huge[big] = '\0';
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" TID " %b", huge, big), 1);
    free(huge);
    assert_true(pos_test_agent_wait_log(
        &f->agent, "sub: bulk string of 1048576 bytes exceeds the limit of 266240 bytes", 1, 5000));
    wait_online(f, 2);
    assert_int_equal(pos_test_agent_log_count(&f->agent, "dropped"), dropped);
    /* An echo of our own kind is ignored silently (not counted as bad). */
    assert_int_equal(pos_test_int(&f->redis, "PUBLISH payment:" TID " %s",
                                  "{\"type\":\"PAYMENT_APPROVED\",\"origin\":\"terminal\"}"),
                     1);
    assert_true(pos_test_agent_wait_log(&f->agent, "terminal-originated message ignored", 1, 2000));
    assert_true(pos_test_agent_alive(&f->agent));
    cJSON *j = wait_status(f, "online", 1000);
    assert_non_null(j);
    cJSON_Delete(j);

    /* Nothing was driven: a blank display, no charge, no receipt, nothing
     * published in answer but the one invalid request with a usable id. */
    char path[400], buf[256] = "";
    snprintf(path, sizeof(path), "%s/sim/display.txt", f->agent.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    assert_string_equal(buf, "                    \n                    \n");
    snprintf(path, sizeof(path), "%s/sim/pinpad.charges", f->agent.dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/sim/receipts.txt", f->agent.dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
}

/* ---- a sentinel that announces failovers without end ---- */

typedef struct flap {
    uint16_t master_port;
    int watch_conn; /* -1 until the agent subscribes */
} flap_t;

static void flap_cmd(pos_fake_redis_t *fk, int conn, const redisReply *cmd, void *arg)
{
    flap_t *fl = arg;
    char port[8];

    if (pos_fake_redis_arg_is(cmd, 0, "SENTINEL")) {
        snprintf(port, sizeof(port), "%u", (unsigned)fl->master_port);
        pos_fake_redis_sendf(fk, conn, "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port),
                             port);
    } else if (pos_fake_redis_arg_is(cmd, 0, "SUBSCRIBE")) {
        __atomic_store_n(&fl->watch_conn, conn, __ATOMIC_RELEASE);
        pos_fake_redis_sendf(fk, conn, "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
    } else if (pos_fake_redis_arg_is(cmd, 0, "PING")) {
        pos_fake_redis_sendf(fk, conn, "+PONG\r\n");
    } else {
        pos_fake_redis_sendf(fk, conn, "+OK\r\n");
    }
}

/*
 * A sentinel (a rogue one, or one flapping) that announces +switch-master
 * 50 times a second, alternately to the real master and to a port nobody
 * listens on. Each announcement had the link reconnect at once, AUTH and
 * all, as fast as they came. Now one is acted on at once per
 * max_retry_delay_ms (1 s here) and the others wait for the backoff: a
 * handful of reconnects in 3 s, and the link ends online.
 */
static void test_switch_storm(void **state)
{
    pos_fix_t *f = *state;
    flap_t fl = {f->redis.port, -1};
    pos_fake_redis_t *fk = pos_fake_redis_start(flap_cmd, &fl);

    assert_non_null(fk);
    pos_ini_set(&f->ini, "redis", "sentinels", "127.0.0.1:%u", (unsigned)pos_fake_redis_port(fk));
    pos_ini_set(&f->ini, "redis", "master_name", "mymaster");
    start_agent(f, NULL);
    wait_online(f, 1);
    for (int i = 0; i < 100 && __atomic_load_n(&fl.watch_conn, __ATOMIC_ACQUIRE) < 0; i++) {
        pos_test_sleep_ms(50);
    }
    int conn = __atomic_load_n(&fl.watch_conn, __ATOMIC_ACQUIRE);
    assert_true(conn >= 0);
    int before = pos_test_agent_log_count(&f->agent, "link: online");
    for (int i = 0; i < 150; i++) {
        char msg[128], push[256];
        unsigned to = i % 2 == 0 ? 1u : (unsigned)f->redis.port;
        unsigned from = i % 2 == 0 ? (unsigned)f->redis.port : 1u;
        int n = snprintf(msg, sizeof(msg), "mymaster 127.0.0.1 %u 127.0.0.1 %u", from, to);
        int m = snprintf(push, sizeof(push),
                         "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%d\r\n%s\r\n", n, msg);
        assert_int_equal(pos_fake_redis_send(fk, conn, push, (size_t)m), 0);
        pos_test_sleep_ms(20);
    }
    int during = pos_test_agent_log_count(&f->agent, "link: online") - before;
    print_message("switch storm: %d reconnects online in 3 s\n", during);
    assert_true(during <= 12);
    /* The last announcement named the real master: the link settles there. */
    long long online = 0;
    for (int i = 0; i < 100 && online != 1; i++) {
        pos_test_sleep_ms(50);
        online = pos_fix_info(f, "link", "online");
    }
    if (online != 1) {
        pos_fix_dump_log(f);
    }
    assert_int_equal(online, 1);
    assert_int_equal(pos_test_agent_stop(&f->agent, SIGTERM, 5000), 0);
    pos_fake_redis_stop(fk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_switch_storm),      POS_FIX_TEST(test_heartbeat),
        POS_FIX_TEST(test_redis_restart),     POS_FIX_TEST(test_redis_frozen),
        POS_FIX_TEST(test_subscriber_killed), POS_FIX_TEST(test_probe_traffic),
        POS_FIX_TEST(test_wrong_password),    POS_FIX_TEST(test_acl_user_and_db),
        POS_FIX_TEST(test_sigterm_offline),   POS_FIX_TEST(test_sigterm_while_down),
        POS_FIX_TEST(test_bad_input),
    };
    pos_fix_filters_from_env();
    return cmocka_run_group_tests_name("link", tests, NULL, NULL);
}
