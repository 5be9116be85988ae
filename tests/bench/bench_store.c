/*
 * Store benchmark (built, not run as a test): latency of cache puts (one
 * fsync'd transaction each, and in batches of 100) and gets on a store
 * holding 10,000 items of ~200-byte values, and this process's memory
 * from /proc/self/smaps_rollup before and after (LMDB's map is file-backed:
 * it shows as Rss and Private_Clean, not as anonymous memory).
 * Usage: bench_store [directory] (default: a fresh directory under /tmp).
 * Build it in a Release tree for representative figures.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/store/cache.h"
#include "agent/store/store.h"
#include "tests/support/fs.h"
#include "tests/support/timing.h"

#define ITEMS     10000
#define VALUE_LEN 200
#define GETS      200000
#define PUTS      300

static void report(const char *what, uint64_t *ns, size_t n)
{
    pos_test_pct_t p = pos_test_percentiles(ns, n);
    printf("%-28s n=%-7zu mean %9.2f us  p50 %9.2f us  p99 %9.2f us  max %9.2f us\n", what, n,
           p.mean / 1000.0, (double)p.p50 / 1000.0, (double)p.p99 / 1000.0, (double)p.max / 1000.0);
}

/* Prints the memory lines of /proc/self/smaps_rollup that matter here. */
static void memory(const char *when)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL) {
        printf("memory %s: /proc/self/smaps_rollup unavailable\n", when);
        return;
    }
    char line[256];
    unsigned long rss = 0, pc = 0, pd = 0, anon = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        sscanf(line, "Rss: %lu kB", &rss);
        sscanf(line, "Private_Clean: %lu kB", &pc);
        sscanf(line, "Private_Dirty: %lu kB", &pd);
        sscanf(line, "Anonymous: %lu kB", &anon);
    }
    fclose(f);
    printf("memory %-22s Rss %6lu kB  Private_Clean %6lu kB  Private_Dirty %6lu kB  "
           "Anonymous %6lu kB\n",
           when, rss, pc, pd, anon);
}

int main(int argc, char **argv)
{
    char tmp[64] = "/tmp/bench_store-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
    if (dir == NULL) {
        perror("mkdtemp");
        return 1;
    }
    memory("at start");
    pos_store_t st;
    pos_store_config_t sc = {.path = dir, .map_size = 64u * 1024u * 1024u};
    if (pos_store_open(&st, &sc) != 0) {
        fprintf(stderr, "cannot open the store in %s\n", dir);
        return 1;
    }
    pos_cache_t c;
    pos_cache_config_t cc = {.ttl_ms = {7200000, 300000, 3600000, 86400000, 60000},
                             .max_bytes = 32u * 1024u * 1024u};
    pos_cache_open(&c, &st, &cc);

    static char keys[ITEMS][40];
    static size_t klen[ITEMS];
    char value[VALUE_LEN];
    for (int i = 0; i < ITEMS; i++) {
        klen[i] = (size_t)snprintf(keys[i], sizeof(keys[i]), "inventory:S-042:P-%05d", i);
    }

    /* Warm-up style: batches of 100 in one transaction (one fsync) each. */
    memory("after open");
    uint64_t *ns = malloc(GETS * sizeof(*ns)); /* freed before the memory figure */
    if (ns == NULL) {
        return 1;
    }
    size_t nb = 0;
    uint64_t t_all = pos_test_now_ns();
    for (int i = 0; i < ITEMS; i += 100) {
        pos_cache_item_t items[100];
        for (int k = 0; k < 100; k++) {
            memset(value, 'a' + k % 26, sizeof(value));
            items[k] = (pos_cache_item_t){keys[i + k], klen[i + k], value, sizeof(value),
                                          POS_CACHE_INVENTORY};
        }
        uint64_t t = pos_test_now_ns();
        if (pos_cache_put_batch(&c, items, 100, 1764412800000ull, NULL, NULL) != 0) {
            fprintf(stderr, "put_batch failed\n");
            return 1;
        }
        ns[nb++] = pos_test_now_ns() - t;
    }
    double fill_s = (double)(pos_test_now_ns() - t_all) / 1e9;
    report("put_batch (100 items)", ns, nb);
    printf("filled %d items in %.2f s\n", ITEMS, fill_s);

    /* Single puts: one durable transaction each. */
    for (int i = 0; i < PUTS; i++) {
        int k = rand() % ITEMS;
        memset(value, 'A' + i % 26, sizeof(value));
        uint64_t t = pos_test_now_ns();
        if (pos_cache_put(&c, keys[k], klen[k], value, sizeof(value), POS_CACHE_INVENTORY,
                          1764412800000ull + (uint64_t)i) != 0) {
            fprintf(stderr, "put failed\n");
            return 1;
        }
        ns[i] = pos_test_now_ns() - t;
    }
    report("put (fsync'd, single)", ns, PUTS);

    /* Gets: random keys, hits. */
    char buf[512];
    pos_cache_info_t info;
    for (int i = 0; i < GETS; i++) {
        int k = rand() % ITEMS;
        uint64_t t = pos_test_now_ns();
        if (pos_cache_get(&c, keys[k], klen[k], 1764412801000ull, buf, sizeof(buf), &info) != 0) {
            fprintf(stderr, "get failed\n");
            return 1;
        }
        ns[i] = pos_test_now_ns() - t;
    }
    report("get (hit, random key)", ns, GETS);
    uint64_t t = pos_test_now_ns();
    for (int i = 0; i < GETS; i++) {
        int k = rand() % ITEMS;
        pos_cache_get(&c, keys[k], klen[k], 1764412801000ull, buf, sizeof(buf), &info);
    }
    double secs = (double)(pos_test_now_ns() - t) / 1e9;
    printf("get throughput               %.0f gets/s (one thread)\n", GETS / secs);
    t = pos_test_now_ns();
    if (pos_cache_flush(&c) != 0) {
        fprintf(stderr, "flush failed\n");
        return 1;
    }
    printf("flush of %d pending LRU touches: %.2f ms\n", POS_CACHE_PENDING_MAX,
           (double)(pos_test_now_ns() - t) / 1e6);
    pos_cache_stats_t s;
    pos_cache_stats(&c, &s);
    printf("cache: %" PRIu64 " entries, %" PRIu64 " bytes, %" PRIu64 " hits, %" PRIu64
           " evictions, %" PRIu64 " touches dropped (no flush timer here)\n",
           s.entries, s.bytes, s.hits, s.evictions, s.touches_dropped);
    free(ns);
    memory("with 10,000 items");
    pos_cache_close(&c);
    pos_store_close(&st);
    memory("after close");
    if (argc <= 1) {
        pos_test_rm_tree(dir);
    }
    return 0;
}
