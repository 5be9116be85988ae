/*
 * Fuzz target for the write-ahead log's reader (agent/store/wal.c): what
 * the disk hands the agent at start. A record damaged in a way its CRC
 * cannot see, or a flash cell that lies, must never crash the agent, nor
 * hand the store an entry that is not inside the record.
 *
 * The input is one redo payload (docs/offline.md, "The write-ahead log").
 * Checked:
 *   - pos_wal_redo_apply() calls apply only with entries inside the
 *     payload: kind 'P' or 'D', a key of at least one byte, no value for a
 *     delete; on success their sizes add up to the whole payload;
 *   - written as a record of a real log (with its CRC, so that it passes)
 *     and read back by pos_wal_replay(), the same entries come out in the
 *     same order with the same verdict: applied once, or the same error;
 *   - the same bytes written raw where the first record starts, with the
 *     record magic and the log's generation put in so that the reader
 *     judges the rest (length, sequence, CRC), are read without a crash:
 *     at most one record, applied or refused as unparsable.
 *
 * The log lives in a scratch directory (on /dev/shm when there is one),
 * made at the first input and reused: each input starts a new generation.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/store/wal.h"
#include "platform/endian.h"
#include "tests/support/fuzz.h"

#define FNV_SEED 14695981039346656037ull

typedef struct seen {
    const uint8_t *lo, *hi; /* where entries may point (the payload); NULL: anywhere */
    size_t entries;
    size_t bytes; /* entry headers (10 bytes each) plus keys and values */
    uint64_t hash;
} seen_t;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static int note(void *ctx, char kind, unsigned db, const void *key, size_t key_len,
                const void *value, size_t value_len)
{
    seen_t *s = ctx;
    const uint8_t *k = key, *v = value;

    POS_FUZZ_CHECK(kind == 'P' || kind == 'D');
    POS_FUZZ_CHECK(key_len > 0 && (kind == 'P' || value_len == 0));
    if (s->lo != NULL) {
        POS_FUZZ_CHECK(k >= s->lo && key_len <= (size_t)(s->hi - k));
        POS_FUZZ_CHECK(value_len == 0 || (v >= s->lo && value_len <= (size_t)(s->hi - v)));
    }
    uint32_t lens[2] = {(uint32_t)key_len, (uint32_t)value_len};
    unsigned char kd[2] = {(unsigned char)kind, (unsigned char)db};
    s->hash = fnv(s->hash, kd, sizeof(kd));
    s->hash = fnv(s->hash, lens, sizeof(lens));
    s->hash = fnv(s->hash, key, key_len); /* every byte read: out of bounds shows */
    if (value_len > 0) {
        s->hash = fnv(s->hash, value, value_len);
    }
    s->entries++;
    s->bytes += 10u + key_len + value_len;
    return 0;
}

static pos_wal_t wal = {.fd = -1};
static char dir[64];

static void remove_scratch(void)
{
    char path[128];

    pos_wal_close(&wal);
    snprintf(path, sizeof(path), "%s/" POS_WAL_FILE, dir);
    (void)unlink(path);
    (void)rmdir(dir);
}

/* The scratch log, opened at the first input; aborts when it cannot be. */
static void scratch_log(void)
{
    if (wal.fd >= 0) {
        return;
    }
    snprintf(dir, sizeof(dir), "%s/posagent-fuzz-wal-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    POS_FUZZ_CHECK(mkdtemp(dir) != NULL);
    POS_FUZZ_CHECK(pos_wal_open(&wal, dir) == 0);
    atexit(remove_scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen_t direct = {data, data + size, 0, 0, FNV_SEED};
    int rc = pos_wal_redo_apply(data, size, note, &direct);

    POS_FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0) {
        POS_FUZZ_CHECK(direct.bytes == size);
    }
    if (size > POS_WAL_PAYLOAD_MAX) {
        return 0;
    }
    scratch_log();

    /* As a record: the same entries, the same verdict. */
    POS_FUZZ_CHECK(pos_wal_reset(&wal) == 0);
    uint64_t seq = wal.next_seq + (wal.next_seq == 0); /* the store's start at 1 */
    POS_FUZZ_CHECK(pos_wal_append(&wal, seq, data, size) == 0);
    seen_t logged = {NULL, NULL, 0, 0, FNV_SEED};
    uint64_t last = 0;
    long n = pos_wal_replay(&wal, 0, note, &logged, &last);
    if (rc == 0) {
        POS_FUZZ_CHECK(n == 1 && last == seq);
    } else {
        POS_FUZZ_CHECK(n == rc);
    }
    POS_FUZZ_CHECK(logged.entries == direct.entries && logged.hash == direct.hash);

    /* Raw where the first record starts: the reader judges length,
     * sequence and CRC itself. */
    POS_FUZZ_CHECK(pos_wal_reset(&wal) == 0);
    size_t raw_len = size < POS_WAL_RECORD_HDR ? POS_WAL_RECORD_HDR : size;
    uint8_t *raw = calloc(1, raw_len);
    POS_FUZZ_CHECK(raw != NULL);
    if (size > 0) {
        memcpy(raw, data, size);
    }
    memcpy(raw, "PWR1", 4);
    pos_endian_put_le64(raw + 8, wal.generation);
    POS_FUZZ_CHECK(pwrite(wal.fd, raw, raw_len, POS_WAL_BLOCK) == (ssize_t)raw_len);
    free(raw);
    seen_t rawseen = {NULL, NULL, 0, 0, FNV_SEED};
    n = pos_wal_replay(&wal, 0, note, &rawseen, &last);
    POS_FUZZ_CHECK(n == -EBADMSG || n == 0 || n == 1);
    return 0;
}
