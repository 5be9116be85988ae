/*
 * Connecting to the local API like to any Redis (issue 14): AUTH against
 * [local] password / password_file, SELECT 0, HELLO 2 (3 refused), CLIENT
 * SETNAME/GETNAME/ID/SETINFO, ECHO, RESET, QUIT, through the whole agent,
 * with hiredis, redis-cli and Python's redis each configured with a
 * password, a database and a client name. Malformed, flood and abuse
 * cases: bad arguments, a guessing client (disconnected after
 * POS_LOCALAPI_AUTH_TRIES), and the password never in the log.
 */
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
#include <hiredis/hiredis.h>

#include "agent/api/localapi.h"
#include "tests/support/fixture.h"
#include "tests/support/timing.h"

#define PW "s3cret-till-pw"
/* Debian's, which python3-redis serves (not a pyenv shim on PATH). */
#define PYTHON "/usr/bin/python3"

static void start_with_password(pos_fix_t *f)
{
    pos_ini_set(&f->ini, "local", "password", PW);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
}

static uint64_t now_ms(void)
{
    return pos_test_now_ns() / 1000000u;
}

static char sock_path[400];

static const char *sock(const pos_fix_t *f)
{
    snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", f->agent.dir);
    return sock_path;
}

/* The reply to a command, which must be of "type"; its text (or "")
 * compared to "want" when want is not NULL (a prefix for errors). */
static void expect(redisContext *c, int type, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != type) {
        fprintf(stderr, "%s: reply type %d (%s), wanted %d\n", fmt, r->type,
                r->str != NULL ? r->str : "", type);
    }
    assert_int_equal(r->type, type);
    if (want != NULL) {
        if (type == REDIS_REPLY_ERROR) {
            if (strncmp(r->str, want, strlen(want)) != 0) {
                fprintf(stderr, "%s: %s, wanted %s...\n", fmt, r->str, want);
            }
            assert_true(strncmp(r->str, want, strlen(want)) == 0);
        } else {
            assert_string_equal(r->str, want);
        }
    }
    freeReplyObject(r);
}

static redisContext *connect_local(const pos_fix_t *f)
{
    redisContext *c = pos_fix_local(f);
    if (c == NULL) {
        pos_fix_dump_log(f);
    }
    assert_non_null(c);
    return c;
}

/* Nothing before AUTH; everything after; the connection commands as Redis
 * answers them. */
static void test_auth_and_connection_commands(void **state)
{
    pos_fix_t *f = *state;
    start_with_password(f);
    redisContext *c = connect_local(f);

    expect(c, REDIS_REPLY_ERROR, "NOAUTH Authentication required.", "PING");
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "GET product:P-1");
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "PUBLISH transaction:S-042 {}");
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "NOSUCHCOMMAND"); /* nothing told before AUTH */
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "SELECT 0");
    expect(c, REDIS_REPLY_ERROR, "NOAUTH HELLO must be called", "HELLO 2");
    expect(c, REDIS_REPLY_ERROR, "WRONGPASS", "AUTH wrong-password");
    expect(c, REDIS_REPLY_ERROR, "WRONGPASS", "AUTH someone " PW); /* only "default" */
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "PING");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    expect(c, REDIS_REPLY_STATUS, "PONG", "PING");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH default %s", PW);

    expect(c, REDIS_REPLY_STATUS, "OK", "SELECT 0");
    expect(c, REDIS_REPLY_ERROR, "ERR DB index is out of range", "SELECT 1");
    expect(c, REDIS_REPLY_ERROR, "ERR DB index is out of range", "SELECT -1");
    expect(c, REDIS_REPLY_ERROR, "ERR value is not an integer", "SELECT zero");
    expect(c, REDIS_REPLY_ERROR, "ERR wrong number of arguments for 'select'", "SELECT");

    expect(c, REDIS_REPLY_NIL, NULL, "CLIENT GETNAME");
    expect(c, REDIS_REPLY_STATUS, "OK", "CLIENT SETNAME till-app");
    expect(c, REDIS_REPLY_STRING, "till-app", "CLIENT GETNAME");
    expect(c, REDIS_REPLY_ERROR, "ERR Client names cannot contain spaces", "CLIENT SETNAME %s",
           "a b");
    expect(c, REDIS_REPLY_STRING, "till-app", "CLIENT GETNAME");
    expect(c, REDIS_REPLY_INTEGER, NULL, "CLIENT ID");
    expect(c, REDIS_REPLY_STATUS, "OK", "CLIENT SETINFO LIB-NAME redis-py");
    expect(c, REDIS_REPLY_STATUS, "OK", "CLIENT SETINFO lib-ver 5.0.1");
    expect(c, REDIS_REPLY_ERROR, "ERR Unrecognized option", "CLIENT SETINFO COLOUR red");
    expect(c, REDIS_REPLY_ERROR, "ERR unknown subcommand", "CLIENT KILL ID 1");
    expect(c, REDIS_REPLY_ERROR, "ERR unknown subcommand", "CLIENT LIST");

    expect(c, REDIS_REPLY_STRING, "hello till", "ECHO %s", "hello till");
    expect(c, REDIS_REPLY_ERROR, "ERR wrong number of arguments for 'echo'", "ECHO a b");

    expect(c, REDIS_REPLY_ERROR, "NOPROTO", "HELLO 3");
    expect(c, REDIS_REPLY_ERROR, "ERR Protocol version is not an integer", "HELLO two");
    expect(c, REDIS_REPLY_ERROR, "ERR Syntax error in HELLO option 'FOO'", "HELLO 2 FOO");
    redisReply *r = redisCommand(c, "HELLO 2 AUTH default %s SETNAME pos-main", PW);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 14);
    assert_string_equal(r->element[4]->str, "proto");
    assert_int_equal(r->element[5]->integer, 2);
    assert_string_equal(r->element[6]->str, "id");
    freeReplyObject(r);
    expect(c, REDIS_REPLY_STRING, "pos-main", "CLIENT GETNAME");
    r = redisCommand(c, "HELLO");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);

    /* RESET: as at connect, so the password is asked again. */
    expect(c, REDIS_REPLY_STATUS, "RESET", "RESET");
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "PING");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    expect(c, REDIS_REPLY_STATUS, "PONG", "PING");
    redisFree(c);
}

static void test_hello_auth_then_reset(void **state)
{
    pos_fix_t *f = *state;
    start_with_password(f);
    redisContext *c = connect_local(f);

    /* HELLO ... AUTH authenticates in one step, as Redis 6+ clients do. */
    redisReply *r = redisCommand(c, "HELLO 2 AUTH default %s", PW);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    expect(c, REDIS_REPLY_STATUS, "PONG", "PING");
    expect(c, REDIS_REPLY_STATUS, "OK", "CLIENT SETNAME n1");
    expect(c, REDIS_REPLY_STATUS, "RESET", "RESET");
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "CLIENT GETNAME");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    expect(c, REDIS_REPLY_NIL, NULL, "CLIENT GETNAME");
    expect(c, REDIS_REPLY_STATUS, "OK", "QUIT");
    redisFree(c);
}

/* Abuse: a client guessing is disconnected after POS_LOCALAPI_AUTH_TRIES
 * wrong passwords, and fresh connections do not guess faster: each wrong
 * password makes its user id's next one wait (100, 200, 400 ms...), a
 * right one clears that. Each guess is counted; the password is never
 * logged. */
static void test_guessing_client_disconnected(void **state)
{
    pos_fix_t *f = *state;
    start_with_password(f);
    redisContext *c = connect_local(f);

    for (unsigned i = 0; i < POS_LOCALAPI_AUTH_TRIES; i++) {
        expect(c, REDIS_REPLY_ERROR, "WRONGPASS", "AUTH guess-%u", i);
    }
    redisReply *r = redisCommand(c, "AUTH %s", PW);
    assert_null(r); /* the connection is gone: no more guesses on it */
    redisFree(c);

    /* The right password still gets in, once the user id's wait (1.6 s
     * after five wrong ones) is over; it clears the wait. */
    uint64_t t0 = now_ms();
    c = connect_local(f);
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    redisFree(c);
    assert_true(now_ms() - t0 >= 1500);

    /* Guesses on fresh connections: each answered WRONGPASS, later and
     * later, none gets in, the agent keeps serving. */
    t0 = now_ms();
    for (int k = 0; k < 3; k++) {
        c = connect_local(f);
        expect(c, REDIS_REPLY_ERROR, "WRONGPASS", "AUTH flood-%d", k);
        expect(c, REDIS_REPLY_ERROR, "NOAUTH", "GET session:x");
        redisFree(c);
    }
    assert_true(now_ms() - t0 >= 300); /* 0 + 100 + 200 ms */
    c = connect_local(f);
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    r = redisCommand(c, "INFO clients");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "auth_failures:8\r\nauth_delayed:8\r\n"));
    assert_non_null(strstr(r->str, "commands_noauth:3\r\n"));
    assert_non_null(strstr(r->str, "output_pauses:0\r\noutput_drops:0\r\n"));
    freeReplyObject(r);
    redisFree(c);

    pos_fix_wait_log(f, "wrong password", 1, 2000);
    char *log = pos_test_agent_log_read(&f->agent);
    assert_non_null(log);
    assert_null(strstr(log, PW));
    assert_null(strstr(log, "guess-"));
    free(log);
}

/* Malformed: the wrong number of arguments, names that are not names, an
 * oversized name. */
static void test_malformed(void **state)
{
    pos_fix_t *f = *state;
    start_with_password(f);
    redisContext *c = connect_local(f);
    char big[POS_LOCALAPI_NAME_MAX + 2];

    expect(c, REDIS_REPLY_ERROR, "ERR wrong number of arguments for 'auth'", "AUTH");
    expect(c, REDIS_REPLY_ERROR, "ERR wrong number of arguments for 'auth'", "AUTH a b c");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    expect(c, REDIS_REPLY_ERROR, "ERR wrong number of arguments for 'client'", "CLIENT");
    expect(c, REDIS_REPLY_ERROR, "ERR unknown subcommand", "CLIENT SETNAME");
    expect(c, REDIS_REPLY_ERROR, "ERR Client names cannot", "CLIENT SETNAME %b", "a\nb", (size_t)3);
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect(c, REDIS_REPLY_ERROR, "ERR Client names cannot", "CLIENT SETNAME %s", big);
    expect(c, REDIS_REPLY_ERROR, "ERR Syntax error in HELLO option 'AUTH'", "HELLO 2 AUTH x");
    expect(c, REDIS_REPLY_ERROR, "ERR wrong number of arguments for 'reset'", "RESET now");
    expect(c, REDIS_REPLY_ERROR, "ERR value is not an integer", "SELECT %b", "0\0", (size_t)2);
    expect(c, REDIS_REPLY_STATUS, "PONG", "PING");
    redisFree(c);
}

/* Without a password configured, AUTH with any password is accepted (a
 * client configured with one still connects) and nothing is refused. */
static void test_no_password_accepts_auth(void **state)
{
    pos_fix_t *f = *state;
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    redisContext *c = connect_local(f);

    expect(c, REDIS_REPLY_STATUS, "PONG", "PING");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH anything");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH someone anything");
    redisReply *r = redisCommand(c, "HELLO 2 AUTH default x SETNAME y");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    expect(c, REDIS_REPLY_STRING, "y", "CLIENT GETNAME");
    redisFree(c);
}

/* [local] password_file: read at start (0600), used like password. */
static void test_password_file(void **state)
{
    pos_fix_t *f = *state;
    char path[400];

    /* The agent's directory exists once it has started; use the test's. */
    snprintf(path, sizeof(path), "%s.localpw", f->redis.dir);
    pos_fix_private_file(path, "file-pw-123\n");
    pos_ini_set(&f->ini, "local", "password_file", "%s", path);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    redisContext *c = connect_local(f);
    expect(c, REDIS_REPLY_ERROR, "NOAUTH", "PING");
    expect(c, REDIS_REPLY_ERROR, "WRONGPASS", "AUTH %s", "file-pw-123\n");
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH file-pw-123");
    expect(c, REDIS_REPLY_STATUS, "PONG", "PING");
    redisFree(c);
    unlink(path);
}

/* redis-cli with a password, a user and a database, as an operator would. */
static void test_redis_cli(void **state)
{
    pos_fix_t *f = *state;
    start_with_password(f);
    char *out = NULL;

    const char *ok[] = {"/usr/bin/redis-cli", "-s", sock(f), "-a",   PW,
                        "--no-auth-warning",  "-n", "0",     "PING", NULL};
    assert_int_equal(pos_test_run(ok, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, "PONG"));
    free(out);

    const char *user[] = {"/usr/bin/redis-cli", "-s",   sock(f), "--user", "default", "--pass", PW,
                          "--no-auth-warning",  "ECHO", "hi",    NULL};
    assert_int_equal(pos_test_run(user, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, "hi"));
    free(out);

    const char *nopw[] = {"/usr/bin/redis-cli", "-s", sock(f), "PING", NULL};
    pos_test_run(nopw, NULL, &out, 10000);
    assert_non_null(strstr(out, "NOAUTH"));
    free(out);

    /* The technician's CLI authenticates with the configured password. */
    const char *cli[] = {getenv("POSAGENT_BIN"), "--config", f->agent.conf, "status", NULL};
    assert_int_equal(pos_test_run(cli, NULL, &out, 10000), 0);
    assert_non_null(strstr(out, "connected_clients"));
    free(out);

    /* A database other than 0: redis-cli says SELECT failed. */
    const char *db1[] = {"/usr/bin/redis-cli", "-s", sock(f), "-a",   PW,
                         "--no-auth-warning",  "-n", "1",     "PING", NULL};
    pos_test_run(db1, NULL, &out, 10000);
    assert_non_null(strstr(out, "DB index is out of range"));
    free(out);
}

/* Python's redis (Debian python3-redis), with password, db and client name
 * (it sends AUTH, CLIENT SETNAME and SELECT while connecting). */
static void test_python_redis(void **state)
{
    pos_fix_t *f = *state;
    char *out = NULL;
    const char *probe[] = {PYTHON, "-c", "import redis", NULL};

    if (pos_test_run(probe, NULL, &out, 10000) != 0) {
        free(out);
        fprintf(stderr, "python3-redis is not installed (.ci/deps installs it)\n");
        skip();
    }
    free(out);
    start_with_password(f);
    char script[1200];
    snprintf(script, sizeof(script),
             "import redis, sys\n"
             "r = redis.Redis(unix_socket_path='%s', password='%s', db=0, "
             "client_name='till-app', socket_timeout=5)\n"
             "print('ping', r.ping())\n"
             "print('name', r.client_getname())\n"
             "print('echo', r.echo('x'))\n"
             "bad = redis.Redis(unix_socket_path='%s', password='wrong', socket_timeout=5)\n"
             "try:\n"
             "    bad.ping(); print('bad-ok')\n"
             "except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as e:\n"
             "    print('bad-auth', e)\n"
             "db1 = redis.Redis(unix_socket_path='%s', password='%s', db=1, socket_timeout=5)\n"
             "try:\n"
             "    db1.ping(); print('db1-ok')\n"
             "except redis.exceptions.ResponseError as e: print('db1-refused', e)\n",
             sock(f), PW, sock(f), sock(f), PW);
    const char *argv[] = {PYTHON, "-c", script, NULL};
    int rc = pos_test_run(argv, NULL, &out, 20000);
    fprintf(stderr, "%s", out != NULL ? out : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "ping True"));
    assert_non_null(strstr(out, "name till-app"));
    assert_non_null(strstr(out, "echo b'x'"));
    assert_non_null(strstr(out, "bad-auth"));
    assert_non_null(strstr(out, "db1-refused DB index is out of range"));
    free(out);
}

/* hiredis as the POS application would use it: AUTH, SELECT, SETNAME,
 * then the agent's own commands (a read). */
static void test_hiredis_client(void **state)
{
    pos_fix_t *f = *state;
    start_with_password(f);
    pos_fix_redis_set(f, "product:P-1", "{\"name\":\"Espresso\"}");
    redisContext *c = connect_local(f);
    expect(c, REDIS_REPLY_STATUS, "OK", "AUTH %s", PW);
    expect(c, REDIS_REPLY_STATUS, "OK", "SELECT %d", 0);
    expect(c, REDIS_REPLY_STATUS, "OK", "CLIENT SETNAME %s", "pos-hiredis");
    expect(c, REDIS_REPLY_STRING, "{\"name\":\"Espresso\"}", "GET product:P-1");
    redisFree(c);
}

int main(void)
{
    /* The agent closes a guessing client's connection: a write after that
     * must fail, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    pos_fix_filters_from_env();
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_auth_and_connection_commands),
        POS_FIX_TEST(test_hello_auth_then_reset),
        POS_FIX_TEST(test_guessing_client_disconnected),
        POS_FIX_TEST(test_malformed),
        POS_FIX_TEST(test_no_password_accepts_auth),
        POS_FIX_TEST(test_password_file),
        POS_FIX_TEST(test_redis_cli),
        POS_FIX_TEST(test_python_redis),
        POS_FIX_TEST(test_hiredis_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
