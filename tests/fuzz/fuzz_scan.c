/*
 * Fuzz target for the page-by-page reader of a store's data.mdb
 * (agent/store/scan.c): what `posagent store salvage` reads from a file
 * the agent moved aside, cut short or damaged on the disk. Whatever the
 * bytes, the reader must not crash, read outside a page or loop, and what
 * it gives the visitor must lie inside what it read.
 *
 * The input is the whole file. The seeds (tests/fuzz/seeds/scan_seeds.c)
 * are real LMDB files of the store's databases, whole and cut short.
 * Checked:
 *   - a file it opens has a page size LMDB could have written (a power of
 *     two, 512 to 64 KiB);
 *   - each entry's key is within one page, its value within the file (or
 *     the reader's own limit), and every byte of both can be read (ASan);
 *   - each walk gives no more entries than the file's pages could hold,
 *     and counts no more than it gives.
 *
 * The file lives in a scratch directory (on /dev/shm when there is one),
 * made at the first input and rewritten for each.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/store/scan.h"
#include "tests/support/fuzz.h"

typedef struct seen {
    const pos_scan_t *sc;
    uint64_t entries;
    uint64_t sum; /* every byte given is read */
} seen_t;

static char dir[64], file[96];

static void remove_scratch(void)
{
    (void)unlink(file);
    (void)rmdir(dir);
}

static void scratch_dir(void)
{
    if (dir[0] != '\0') {
        return;
    }
    snprintf(dir, sizeof(dir), "%s/posagent-fuzz-scan-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    POS_FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(file, sizeof(file), "%s/data.mdb", dir);
    atexit(remove_scratch);
}

static int visit(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len)
{
    seen_t *s = ctx;
    const uint8_t *k = key, *v = value;

    POS_FUZZ_CHECK(key_len <= s->sc->psize);
    POS_FUZZ_CHECK(value_len <= s->sc->file_size || value_len <= s->sc->psize);
    for (size_t i = 0; i < key_len; i++) {
        s->sum += k[i];
    }
    for (size_t i = 0; i < value_len; i++) {
        s->sum += v[i];
    }
    s->entries++;
    return 0;
}

/* A walk's entries: each is named by an offset (2 bytes) on a page in the
 * file (a damaged page may name one node many times), and a walk reads
 * each page once. */
static void check_walk(const pos_scan_t *sc, const seen_t *s, const pos_scan_stats_t *st)
{
    POS_FUZZ_CHECK(st->read == s->entries);
    POS_FUZZ_CHECK(s->entries <= sc->pages * (sc->psize / 2u));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_scan_t sc;
    pos_scan_stats_t st;
    static const char *const dbs[] = {"outbox", "journal", "cache", "no-such-db"};

    scratch_dir();
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    POS_FUZZ_CHECK(fd >= 0);
    POS_FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    close(fd);

    if (pos_scan_open(&sc, file) != 0) {
        return 0;
    }
    POS_FUZZ_CHECK(sc.psize >= 512 && sc.psize <= 65536 && (sc.psize & (sc.psize - 1)) == 0);
    POS_FUZZ_CHECK(sc.file_size == size && sc.pages == size / sc.psize);
    (void)pos_scan_short(&sc);
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        seen_t s = {&sc, 0, 0};
        if (pos_scan_db(&sc, dbs[i], visit, &s, &st) == 0) {
            check_walk(&sc, &s, &st);
        }
    }
    seen_t s = {&sc, 0, 0};
    POS_FUZZ_CHECK(pos_scan_unreached(&sc, visit, &s, &st) == 0);
    check_walk(&sc, &s, &st);
    pos_scan_close(&sc);
    return 0;
}
