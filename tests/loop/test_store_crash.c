/*
 * Crash loop: a child process (fork, not the agent) hammers the store
 * with cache puts and outbox appends and reports each outbox id on a pipe
 * once its append returned (committed), and each ack before and after it
 * acks. The parent kill -9s it after a random delay, reopens the store and
 * checks: it opens (not rebuilt), every id reported committed and not
 * being acked is there, the ids are in order, and new ids only grow.
 * 200 rounds; POS_CRASH_ROUNDS and POS_CRASH_SEED override.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/store/cache.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "platform/endian.h"
#include "tests/support/fs.h"

#define MAP_SIZE  (16u * 1024u * 1024u)
#define MAX_IDS   (1u << 20)
#define ACK_ABOVE 300 /* the child acks the oldest while more are queued */

enum { REC_COMMITTED = 'C', REC_ACKING = 'a', REC_ACKED = 'A' };

static char dir[64];

/* What the parent learned about each id: bit 0 committed, 1 ack started, 2 acked. */
static uint8_t *id_state;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void report(int fd, char kind, uint64_t id)
{
    unsigned char rec[9];
    rec[0] = (unsigned char)kind;
    pos_endian_put_be64(rec + 1, id);
    ssize_t n;
    do {
        n = write(fd, rec, sizeof(rec));
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(rec)) {
        _exit(3);
    }
}

static pos_cache_config_t cache_cfg(void)
{
    pos_cache_config_t cc = {.ttl_ms = {7200000, 300000, 3600000, 86400000, 60000},
                             .max_bytes = 2u * 1024u * 1024u};
    return cc;
}

/* Opens the store in dir; the walk at open judges every cache and outbox record. */
static int open_store(pos_store_t *st)
{
    pos_store_tenant_t tenants[2];
    pos_cache_tenant(&tenants[0], NULL);
    pos_outbox_tenant(&tenants[1], NULL);
    pos_store_config_t sc = {
        .path = dir, .map_size = MAP_SIZE, .tenants = tenants, .tenant_count = 2};
    return pos_store_open(st, &sc);
}

/* The child: never returns. */
static void child(int fd, unsigned seed)
{
    pos_store_t st;
    if (open_store(&st) != 0 || st.recovered) {
        _exit(2);
    }
    pos_cache_t cache;
    pos_outbox_t ob;
    pos_cache_config_t cc = cache_cfg();
    if (pos_cache_open(&cache, &st, &cc) != 0 || pos_outbox_open(&ob, &st, NULL) != 0) {
        _exit(2);
    }
    srand(seed);
    char value[200];
    for (uint64_t i = 0;; i++) {
        char key[48];
        int kn = snprintf(key, sizeof(key), "inventory:S-042:P-%d", rand() % 5000);
        memset(value, 'a' + (int)(i % 26), sizeof(value));
        if (pos_cache_put(&cache, key, (size_t)kn, value, sizeof(value), POS_CACHE_INVENTORY,
                          now_ms()) != 0) {
            _exit(4);
        }
        pos_cache_info_t info;
        char buf[256];
        (void)pos_cache_get(&cache, key, (size_t)kn, now_ms(), buf, sizeof(buf), &info);

        char payload[96];
        int pn = snprintf(payload, sizeof(payload), "{\"type\":\"COUNTER\",\"n\":%" PRIu64 "}", i);
        pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                                .is_payment = i % 5 == 0,
                                .created_ms = now_ms(),
                                .channel = "transaction:S-042",
                                .channel_len = 17,
                                .payload = payload,
                                .payload_len = (size_t)pn};
        uint64_t id;
        if (pos_outbox_append(&ob, &e, &id) != 0) {
            _exit(5);
        }
        report(fd, REC_COMMITTED, id);

        pos_outbox_stats_t s;
        pos_outbox_stats(&ob, &s);
        if (s.entries > ACK_ABOVE) {
            pos_outbox_batch_t b;
            if (pos_outbox_peek(&ob, 8, &b) < 0) {
                _exit(6);
            }
            for (size_t k = 0; k < b.count; k++) {
                report(fd, REC_ACKING, b.entries[k].id);
                if (pos_outbox_ack(&ob, b.entries[k].id) != 0) {
                    _exit(7);
                }
                report(fd, REC_ACKED, b.entries[k].id);
            }
            pos_outbox_batch_free(&b);
        }
    }
}

typedef struct totals {
    unsigned opens;
    unsigned rounds_with_commits;
    uint64_t committed;
    uint64_t verified; /* sum over rounds of the ids checked present */
    uint64_t acked;
    uint64_t max_id;
    unsigned child_errors;
} totals_t;

/* Reopens the store and checks it against what children reported. */
static void verify(totals_t *t)
{
    pos_store_t st;
    assert_int_equal(open_store(&st), 0);
    assert_false(st.recovered);
    t->opens++;
    pos_cache_t cache;
    pos_cache_config_t cc = cache_cfg();
    assert_int_equal(pos_cache_open(&cache, &st, &cc), 0);
    pos_outbox_t ob;
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);

    pos_outbox_batch_t b;
    int n = pos_outbox_peek(&ob, MAX_IDS, &b);
    assert_true(n >= 0);
    /* On the heap: 1 MiB of .bss would not fit aarch64's tiny code model. */
    uint8_t *present = calloc(MAX_IDS, 1);
    assert_non_null(present);
    for (size_t i = 0; i < b.count; i++) {
        uint64_t id = b.entries[i].id;
        assert_true(id < MAX_IDS);
        if (i > 0) {
            assert_true(id > b.entries[i - 1].id); /* in order */
        }
        present[id] = 1;
    }
    pos_outbox_batch_free(&b);
    for (uint64_t id = 1; id <= t->max_id && id < MAX_IDS; id++) {
        uint8_t s = id_state[id];
        if ((s & 1) && !(s & 2)) {
            if (!present[id]) {
                fail_msg("committed id %" PRIu64 " lost", id);
            }
            t->verified++;
        }
        if (s & 4) {
            assert_false(present[id]); /* an acknowledged ack stays acked */
        }
    }
    free(present);
    pos_outbox_stats_t os;
    pos_outbox_stats(&ob, &os);
    assert_true(os.next_id > t->max_id); /* ids only grow */
    pos_outbox_close(&ob);
    pos_cache_close(&cache);
    pos_store_close(&st);
}

static void test_kill_loop(void **state)
{
    (void)state;
    assert_int_equal(pos_test_mkdtemp(dir, sizeof(dir), "test_store_crash"), 0);
    id_state = calloc(MAX_IDS, 1);
    assert_non_null(id_state);
    unsigned rounds = 200;
    const char *env = getenv("POS_CRASH_ROUNDS");
    if (env != NULL && atoi(env) > 0) {
        rounds = (unsigned)atoi(env);
    }
    unsigned seed = (unsigned)time(NULL);
    env = getenv("POS_CRASH_SEED");
    if (env != NULL) {
        seed = (unsigned)strtoul(env, NULL, 10);
    }
    printf("crash loop: %u rounds, seed %u, store %s\n", rounds, seed, dir);
    srand(seed);
    totals_t t = {0};
    uint64_t t0 = now_ms();
    for (unsigned r = 0; r < rounds; r++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(p[1], seed + r + 1);
        }
        close(p[1]);
        /* 1..200 ms: sometimes during open, mostly mid-transaction. */
        struct timespec d = {0, (long)(1 + rand() % 200) * 1000000L};
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        unsigned char rec[9];
        size_t have = 0;
        uint64_t committed = 0;
        for (;;) {
            ssize_t k = read(p[0], rec + have, sizeof(rec) - have);
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                break;
            }
            have += (size_t)k;
            if (have < sizeof(rec)) {
                continue;
            }
            have = 0;
            uint64_t id = pos_endian_get_be64(rec + 1);
            assert_true(id > 0 && id < MAX_IDS);
            if (rec[0] == REC_COMMITTED) {
                assert_true(id > t.max_id); /* a new id is above every earlier one */
                id_state[id] |= 1;
                t.max_id = id;
                committed++;
            } else if (rec[0] == REC_ACKING) {
                id_state[id] |= 2;
            } else if (rec[0] == REC_ACKED) {
                id_state[id] |= 4;
                t.acked++;
            }
        }
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            /* The child stopped by itself: an error exit is a store failure. */
            fail_msg("round %u: child exited with status %d", r, status);
        }
        t.committed += committed;
        t.rounds_with_commits += committed > 0;
        verify(&t);
    }
    uint64_t ms = now_ms() - t0;
    printf("crash loop result: %u kill -9 rounds, store opened %u/%u times (never rebuilt), "
           "%u rounds committed ids, %" PRIu64 " outbox ids committed, %" PRIu64 " acked, %" PRIu64
           " committed-and-unacked id checks passed, highest id %" PRIu64 ", 0 lost, %" PRIu64
           " ms\n",
           rounds, t.opens, rounds, t.rounds_with_commits, t.committed, t.acked, t.verified,
           t.max_id, ms);
    assert_int_equal(t.opens, rounds);
    assert_true(t.rounds_with_commits > rounds / 2);
    free(id_state);
    pos_test_rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
