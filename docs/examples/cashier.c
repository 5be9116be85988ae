/*
 * A POS application's first steps through the agent's local socket, with
 * hiredis: log a cashier in, check a rate limit, read a price, bump a
 * counter. Every step says what the agent answered (docs/local-api.md).
 *
 *     cc cashier.c -lhiredis -o cashier
 *     ./cashier [/run/posagent/agent.sock]
 *
 * Prints one line per step:
 *     login: OK                     (or "login: refused: <the agent's error>")
 *     ratelimit: allowed=1 remaining=4 reset=1764413700000 source=redis
 *     product: {"name":"Espresso","price":2.50}    (or "product: (none)")
 *     counter: 7
 * and exits 0 when the rate limit and the price could be asked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/run/posagent/agent.sock";
    struct timeval timeout = {5, 0};
    redisContext *c = redisConnectUnixWithTimeout(path, timeout);
    redisReply *r;
    int rc = 0;

    if (c == NULL || c->err) {
        fprintf(stderr, "cannot connect to %s: %s\n", path, c != NULL ? c->errstr : "no memory");
        return 1;
    }

    /* A cashier logs in: the session lives 8 hours, also while offline. */
    r = redisCommand(c, "SET session:example-C-7 %s EX 28800",
                     "{\"cashierId\":\"C-7\",\"name\":\"Ann\"}");
    if (r != NULL && r->type == REDIS_REPLY_STATUS) {
        printf("login: %s\n", r->str);
    } else {
        printf("login: refused: %s\n", r != NULL && r->str != NULL ? r->str : c->errstr);
    }
    freeReplyObject(r);

    /* At most 5 logins of that cashier in 15 minutes, shared by every till. */
    r = redisCommand(c, "RATELIMIT login:C-7 900000 5");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
        printf("ratelimit: allowed=%lld remaining=%lld reset=%lld source=%s\n",
               r->element[0]->integer, r->element[1]->integer, r->element[2]->integer,
               r->element[3]->str);
    } else {
        printf("ratelimit: error: %s\n", r != NULL && r->str != NULL ? r->str : c->errstr);
        rc = 1;
    }
    freeReplyObject(r);

    /* A price: the local copy, fresh online, the last known one offline. */
    r = redisCommand(c, "GET product:P-1");
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        printf("product: %s\n", r->str);
    } else if (r != NULL && r->type == REDIS_REPLY_NIL) {
        printf("product: (none)\n");
    } else {
        printf("product: error: %s\n", r != NULL && r->str != NULL ? r->str : c->errstr);
        rc = 1;
    }
    freeReplyObject(r);

    /* A sale counted. */
    r = redisCommand(c, "INCRBY counter:example:sales 1");
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        printf("counter: %lld\n", r->integer);
    } else {
        printf("counter: error: %s\n", r != NULL && r->str != NULL ? r->str : c->errstr);
    }
    freeReplyObject(r);

    redisFree(c);
    return rc;
}
