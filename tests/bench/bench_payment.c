/*
 * Payment round-trip latency through a real redis-server with simulated
 * devices: PAYMENT_REQUESTED published -> PAYMENT_PROCESSING received, and
 * -> TRANSACTION_COMPLETED received, p50/p90/p99/max over N payments
 * (default 1000). The simulated pinpad answers at once; the simulated
 * printer takes 20 ms per receipt, which bounds the second figure.
 *
 * Usage: POSAGENT_BIN=build/release/agent/posagent bench_payment [N]
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "tests/support/harness.h"
#include "tests/support/ini.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    printf("  %-34s p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", what,
           (double)v[n / 2] / 1000.0, (double)v[n * 90 / 100] / 1000.0,
           (double)v[n * 99 / 100] / 1000.0, (double)v[n - 1] / 1000.0);
}

/* Reads messages until one of "type" for "tx" (origin terminal). */
static int wait_for(redisContext *sub, const char *type, const char *tx)
{
    for (;;) {
        void *reply = NULL;
        if (redisGetReply(sub, &reply) != REDIS_OK || reply == NULL) {
            return -1;
        }
        redisReply *r = reply;
        int found = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            const char *p = r->element[2]->str;
            char want_type[64], want_tx[64];
            snprintf(want_type, sizeof(want_type), "\"type\":\"%s\"", type);
            snprintf(want_tx, sizeof(want_tx), "\"transactionId\":\"%s\"", tx);
            found = strstr(p, want_type) != NULL && strstr(p, want_tx) != NULL &&
                    strstr(p, "\"origin\":\"terminal\"") != NULL;
        }
        freeReplyObject(r);
        if (found) {
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    pos_test_redis_t redis;
    pos_test_agent_t agent;
    static pos_ini_t ini;
    char tx[32], msg[512];

    if (n < 10 || n > 1000000) {
        fprintf(stderr, "usage: bench_payment [N >= 10]\n");
        return 64;
    }
    memset(&redis, 0, sizeof(redis));
    memset(&agent, 0, sizeof(agent));
    if (pos_test_redis_start(&redis) != 0) {
        return 1;
    }
    /* POS_BENCH_STORE: where the journal and outbox live (default: the
     * agent's temporary directory, on disk). A tmpfs path shows the agent's
     * own cost without the disk's fsync. */
    const char *store = getenv("POS_BENCH_STORE");
    pos_ini_init(&ini);
    pos_ini_set(&ini, "terminal", "id", "T-B");
    pos_ini_set(&ini, "terminal", "store_id", "S-B");
    pos_ini_set(&ini, "redis", "url", "redis://127.0.0.1:%u", (unsigned)redis.port);
    pos_ini_set(&ini, "hal", "sim_pinpad_delay_ms", "0");
    pos_ini_set(&ini, "hal", "sim_decline_ending", "%s", "");
    if (store != NULL) {
        pos_ini_set(&ini, "store", "path", "%s", store);
    }
    pos_ini_set(&ini, "log", "level", "warn");
    if (pos_test_agent_start(&agent, pos_ini_text(&ini), NULL) != 0) {
        return 1;
    }
    redisContext *pub = pos_test_redis_connect(&redis);
    pos_test_sub_t s;
    const char *channels[] = {"payment:T-B", "transaction:S-B", NULL};
    if (pub == NULL || pos_test_sub_open_many(&s, &redis, channels) != 0) {
        return 1;
    }
    redisContext *sub = s.c;
    /* Wait until the agent listens. */
    for (int i = 0; i < 500; i++) {
        redisReply *r = redisCommand(pub, "PUBSUB NUMSUB payment:T-B");
        long long subs = r && r->elements == 2 ? r->element[1]->integer : 0;
        /* the agent and this benchmark */
        freeReplyObject(r);
        if (subs == 2) {
            break;
        }
        pos_test_sleep_ms(20);
    }
    redisReply *r;

    uint64_t *processing = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *completed = calloc((size_t)n, sizeof(uint64_t));
    uint64_t start = now_us();
    for (int i = 0; i < n; i++) {
        snprintf(tx, sizeof(tx), "bench-%d", i);
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":%d.%02d,"
                 "\"currency\":\"EUR\",\"lines\":[{\"name\":\"Coffee\",\"qty\":1,"
                 "\"amount\":%d.%02d}]}",
                 tx, 1 + i % 50, i % 100, 1 + i % 50, i % 100);
        uint64_t t0 = now_us();
        r = redisCommand(pub, "PUBLISH payment:T-B %s", msg);
        freeReplyObject(r);
        if (wait_for(sub, "PAYMENT_PROCESSING", tx) != 0) {
            fprintf(stderr, "lost the subscriber at payment %d\n", i);
            return 1;
        }
        processing[i] = now_us() - t0;
        if (wait_for(sub, "TRANSACTION_COMPLETED", tx) != 0) {
            fprintf(stderr, "lost the subscriber at payment %d\n", i);
            return 1;
        }
        completed[i] = now_us() - t0;
    }
    double secs = (double)(now_us() - start) / 1e6;
    printf("payment round trips through redis-server on loopback, simulated devices, "
           "%d payments in %.1f s:\n",
           n, secs);
    report("request -> PAYMENT_PROCESSING", processing, n);
    report("request -> TRANSACTION_COMPLETED", completed, n);

    free(processing);
    free(completed);
    redisFree(pub);
    pos_test_sub_close(&s);
    int st = pos_test_agent_stop(&agent, SIGTERM, 5000);
    pos_test_agent_cleanup(&agent);
    pos_test_redis_stop(&redis);
    return st == 0 ? 0 : 1;
}
