#ifndef TESTS_FUZZ_FUZZ_CACHE_H
#define TESTS_FUZZ_FUZZ_CACHE_H

/*
 * For the fuzz targets that go on past a decoder into the offline cache:
 * the agent's cache service on a real LMDB store in a fresh temporary
 * directory (under /dev/shm when there is one: no disk writes, no fsync
 * cost), opened once per process and removed at exit. Only the fields the
 * message paths use are set up (no loop, no agent).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/sync/cachesvc.h"
#include "agent/store/store.h"
#include "tests/support/fs.h"

static pos_store_t fuzz_store;
static pos_cachesvc_t fuzz_cachesvc;
static char fuzz_store_dir[64];

static void fuzz_cache_cleanup(void)
{
    if (fuzz_cachesvc.open) {
        pos_cache_close(&fuzz_cachesvc.cache);
        fuzz_cachesvc.open = false;
    }
    pos_store_close(&fuzz_store);
    pos_test_rm_tree(fuzz_store_dir);
}

static pos_cachesvc_t *fuzz_cache(void)
{
    pos_store_config_t sc;
    pos_cache_config_t cc;

    if (fuzz_cachesvc.open) {
        return &fuzz_cachesvc;
    }
    snprintf(fuzz_store_dir, sizeof(fuzz_store_dir), "%s/posfuzz-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(fuzz_store_dir) == NULL) {
        abort();
    }
    memset(&sc, 0, sizeof(sc));
    sc.path = fuzz_store_dir;
    sc.map_size = 8u << 20;
    memset(&cc, 0, sizeof(cc));
    for (int f = 0; f < POS_CACHE_FAMILY_COUNT; f++) {
        cc.ttl_ms[f] = 60000;
    }
    cc.max_bytes = 1u << 20;
    if (pos_store_open(&fuzz_store, &sc) != 0 ||
        pos_cache_open(&fuzz_cachesvc.cache, &fuzz_store, &cc) != 0) {
        abort();
    }
    fuzz_cachesvc.open = true;
    atexit(fuzz_cache_cleanup);
    return &fuzz_cachesvc;
}

#endif /* TESTS_FUZZ_FUZZ_CACHE_H */
