/*
 * Writes the seed corpus of fuzz_scan (tests/fuzz/corpus/scan): real
 * LMDB files laid out as the store's (named databases "outbox", "journal"
 * and "cache" in one environment), whole and cut short.
 *
 *   cc -o /tmp/scan_seeds tests/fuzz/seeds/scan_seeds.c -llmdb
 *   /tmp/scan_seeds tests/fuzz/corpus/scan
 *
 * The values are not the store's records: the target checks the reader,
 * not what salvage makes of the entries.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "%s: %s\n", #x, mdb_strerror(rc_));                                    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Writes the environment's data file to out, cut to cut bytes (0: whole). */
static void save(const char *env_dir, const char *out, long cut)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", env_dir);
    FILE *in = fopen(path, "rb"), *o = fopen(out, "wb");
    if (in == NULL || o == NULL) {
        perror(out);
        exit(1);
    }
    char buf[4096];
    size_t n;
    long done = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (cut > 0 && done + (long)n > cut) {
            n = (size_t)(cut - done);
        }
        fwrite(buf, 1, n, o);
        done += (long)n;
        if (cut > 0 && done >= cut) {
            break;
        }
    }
    fclose(in);
    fclose(o);
}

static void fill(const char *env_dir, int entries, size_t big)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi ob, jn, ca;
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_maxdbs(env, 8));
    CHECK(mdb_env_set_mapsize(env, 4u << 20));
    CHECK(mdb_env_open(env, env_dir, 0, 0600));
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, "outbox", MDB_CREATE, &ob));
    CHECK(mdb_dbi_open(txn, "journal", MDB_CREATE, &jn));
    CHECK(mdb_dbi_open(txn, "cache", MDB_CREATE, &ca));
    for (int i = 0; i < entries; i++) {
        unsigned char id[8] = {0, 0, 0, 0, 0, 0, (unsigned char)(i >> 8), (unsigned char)i};
        char value[64], tx[32];
        int n = snprintf(value, sizeof(value), "{\"type\":\"TERMINAL_STATUS\",\"n\":%d}", i);
        MDB_val k = {sizeof(id), id}, v = {(size_t)n, value};
        CHECK(mdb_put(txn, ob, &k, &v, 0));
        n = snprintf(tx, sizeof(tx), "tx-%05d", i);
        MDB_val jk = {(size_t)n, tx};
        CHECK(mdb_put(txn, jn, &jk, &v, 0));
    }
    if (big > 0) {
        char *value = malloc(big);
        memset(value, 'v', big);
        MDB_val k = {7, "product"}, v = {big, value};
        CHECK(mdb_put(txn, ca, &k, &v, 0));
        free(value);
    }
    CHECK(mdb_txn_commit(txn));
    mdb_env_close(env);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    struct {
        const char *name;
        int entries;
        size_t big;
        long cut;
    } seeds[] = {
        {"01-empty", 0, 0, 0},
        {"02-few", 3, 0, 0},
        {"03-overflow", 2, 9000, 0},
        {"04-branches", 200, 0, 0},
        {"05-branches-cut", 200, 0, 5 * 4096},
        {"06-overflow-cut", 2, 9000, 4 * 4096 + 100},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char env_dir[] = "/tmp/scan-seed-XXXXXX", out[512], path[600];
        if (mkdtemp(env_dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        fill(env_dir, seeds[i].entries, seeds[i].big);
        snprintf(out, sizeof(out), "%s/%s", argv[1], seeds[i].name);
        save(env_dir, out, seeds[i].cut);
        snprintf(path, sizeof(path), "%s/data.mdb", env_dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/lock.mdb", env_dir);
        unlink(path);
        rmdir(env_dir);
    }
    return 0;
}
