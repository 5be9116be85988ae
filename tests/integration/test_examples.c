/*
 * The client examples of docs/examples/ against a live agent: the C one
 * (hiredis) and the Python one (Debian's python3-redis) always, the Node
 * one (ioredis) where Node and ioredis are installed. Each logs a cashier
 * in, checks a rate limit, reads a price and bumps a counter through the
 * agent's socket; the test checks what they printed: the login is taken
 * (the session reaches the local copy and Redis) and the counter answers
 * its value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"

#define PRICE "{\"name\":\"Espresso\",\"price\":2.50}"

/* The line of out starting with prefix (malloc'd, without its newline), or NULL. */
static char *line_of(const char *out, const char *prefix)
{
    for (const char *p = out; p != NULL && *p != '\0';
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            return strndup(p, strcspn(p, "\n"));
        }
    }
    return NULL;
}

/* Runs one example and checks its lines; "remaining" is what the shared
 * rate limit must have left after it. */
static void run_example(pos_fix_t *f, const char *name, const char *const *argv, int remaining)
{
    char *out = NULL;
    int st = pos_test_run(argv, NULL, &out, 30000);
    print_message("---- %s printed:\n%s", name, out != NULL ? out : "(nothing)\n");
    assert_non_null(out);
    assert_int_equal(st, 0);

    char *login = line_of(out, "login: ");
    assert_non_null(login);
    if (strcmp(login, "login: OK") != 0) {
        fail_msg("%s: \"%s\", wanted \"login: OK\"", name, login);
    }
    free(login);
    /* The session went to the local copy, and through the outbox to Redis. */
    char *v = pos_fix_local_get(f, "session:example-C-7");
    assert_non_null(v);
    assert_non_null(strstr(v, "C-7"));
    free(v);
    bool in_redis = false;
    for (int i = 0; i < 100 && !in_redis; i++) {
        in_redis = pos_test_int(&f->redis, "EXISTS session:example-C-7") == 1;
        pos_test_sleep_ms(50);
    }
    assert_true(in_redis);

    char want[128];
    snprintf(want, sizeof(want), "ratelimit: allowed=1 remaining=%d reset=", remaining);
    char *rl = line_of(out, "ratelimit: ");
    assert_non_null(rl);
    if (strncmp(rl, want, strlen(want)) != 0 || strstr(rl, " source=redis") == NULL) {
        fail_msg("%s: \"%s\", wanted \"%s... source=redis\"", name, rl, want);
    }
    free(rl);

    char *product = line_of(out, "product: ");
    assert_non_null(product);
    assert_string_equal(product, "product: " PRICE);
    free(product);

    char *counter = line_of(out, "counter: ");
    assert_non_null(counter);
    char *end = NULL;
    long long n = strtoll(counter + 9, &end, 10);
    if (end == counter + 9 || *end != '\0' || n < 1) {
        fail_msg("%s: \"%s\", wanted an integer", name, counter);
    }
    free(counter);
    free(out);
}

static void test_examples_against_a_live_agent(void **state)
{
    pos_fix_t *f = *state;
    const char *src = getenv("POS_SOURCE_DIR");
    const char *cbin = getenv("POS_EXAMPLE_C");
    char sock[300], py[300], js[300];

    assert_non_null(src);
    assert_non_null(cbin);
    pos_fix_redis_set(f, "product:P-1", PRICE);
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, 1, 10000);
    snprintf(sock, sizeof(sock), "%s/agent.sock", f->agent.dir);
    snprintf(py, sizeof(py), "%s/docs/examples/cashier.py", src);
    snprintf(js, sizeof(js), "%s/docs/examples/cashier.js", src);

    /* Cross builds: the example is a target binary, run under the same
     * emulator as the agent ($POSAGENT_WRAPPER, words split on spaces). */
    const char *c_argv[16];
    size_t c_n = 0;
    char *wrap = getenv("POSAGENT_WRAPPER") != NULL ? strdup(getenv("POSAGENT_WRAPPER")) : NULL;
    for (char *w = wrap != NULL ? strtok(wrap, " ") : NULL; w != NULL && c_n < 13;
         w = strtok(NULL, " ")) {
        c_argv[c_n++] = w;
    }
    c_argv[c_n++] = cbin;
    c_argv[c_n++] = sock;
    c_argv[c_n] = NULL;
    run_example(f, "cashier.c (hiredis)", c_argv, 4);
    free(wrap);

    /* Debian's interpreter, where python3-redis is (.ci/deps). */
    const char *py_argv[] = {"/usr/bin/python3", py, sock, NULL};
    run_example(f, "cashier.py (python3-redis)", py_argv, 3);

    /* Node where it and ioredis are installed; said plainly otherwise. */
    const char *probe[] = {"node", "-e", "require('ioredis')", NULL};
    char *out = NULL;
    int st = pos_test_run(probe, NULL, &out, 10000);
    free(out);
    if (st == 0) {
        const char *js_argv[] = {"node", js, sock, NULL};
        run_example(f, "cashier.js (ioredis)", js_argv, 2);
    } else {
        print_message("skipped: cashier.js (Node or its ioredis module is not installed)\n");
    }
    /* Every example's check was one shared request in Redis. */
    assert_int_equal(pos_test_int(&f->redis, "ZCARD rate_limit:login:C-7:900000"), st == 0 ? 3 : 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_examples_against_a_live_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
