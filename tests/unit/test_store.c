/*
 * The store environment against real LMDB files in temporary directories:
 * open, reopen, error translation, and the corruption paths (garbage,
 * truncation, a wrong format version, a file shorter than its meta page):
 * each is moved aside with one log line and replaced by an empty store.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/payment/journal.h"
#include "agent/store/cache.h"
#include "agent/store/outbox.h"
#include "agent/store/store.h"
#include "tests/support/fs.h"

static char dir[64];

/* What the walk at the last open_store() counted for the cache and the outbox. */
static pos_cache_census_t cache_census;
static pos_outbox_census_t outbox_census;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pos_test_mkdtemp(dir, sizeof(dir), "test_store"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pos_test_rm_tree(dir);
    return 0;
}

/* Opens the store in dir with the cache and the outbox as its tenants. */
static int open_store(pos_store_t *st)
{
    pos_store_tenant_t tenants[2];
    pos_cache_tenant(&tenants[0], &cache_census);
    pos_outbox_tenant(&tenants[1], &outbox_census);
    pos_store_config_t cfg = {
        .path = dir, .map_size = 4u * 1024u * 1024u, .tenants = tenants, .tenant_count = 2};
    return pos_store_open(st, &cfg);
}

/* Counts data.mdb.corrupt-* files in dir. */
static int corrupt_files(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strncmp(e->d_name, "data.mdb.corrupt-", 17) == 0;
    }
    closedir(d);
    return n;
}

/* Fills a store with a cache entry and an outbox entry, then closes it. */
static void populate(void)
{
    pos_store_t st;
    assert_int_equal(open_store(&st), 0);
    pos_cache_t c;
    pos_cache_config_t cc = {.ttl_ms = {1000, 1000, 1000, 1000, 1000}};
    assert_int_equal(pos_cache_open(&c, &st, &cc), 0);
    char value[3000];
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < 50; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "product:%d", i);
        assert_int_equal(
            pos_cache_put(&c, key, (size_t)n, value, sizeof(value), POS_CACHE_PRODUCT, 1000), 0);
    }
    pos_cache_close(&c);
    pos_outbox_t ob;
    assert_int_equal(pos_outbox_open(&ob, &st, NULL), 0);
    pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                            .channel = "ch",
                            .channel_len = 2,
                            .payload = "{}",
                            .payload_len = 2};
    uint64_t id;
    assert_int_equal(pos_outbox_append(&ob, &e, &id), 0);
    pos_outbox_close(&ob);
    pos_store_close(&st);
}

/* Runs pos_store_open() with stderr captured into log (NUL-terminated). */
static int open_capturing(pos_store_t *st, char *log, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s.log", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = open_store(st);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(log, 1, len - 1, f);
    log[n] = '\0';
    fclose(f);
    unlink(path);
    return rc;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

/* After a corrupt open: recovered, one log line, the file moved aside, an empty store. */
static void expect_rebuilt(const char *what)
{
    pos_store_t st;
    char log[2048];
    assert_int_equal(open_capturing(&st, log, sizeof(log)), 0);
    assert_true(st.recovered);
    assert_non_null(strstr(st.moved_to, "/data.mdb.corrupt-"));
    assert_int_equal(corrupt_files(), 1);
    assert_int_equal(count_lines(log), 1);
    assert_non_null(strstr(log, "moved aside to"));
    assert_non_null(strstr(log, "data.mdb.corrupt-"));
    fprintf(stdout, "    log: %s", log);
    if (what != NULL) {
        assert_non_null(strstr(log, what));
    }
    assert_int_equal(cache_census.entries, 0);
    assert_int_equal(outbox_census.entries, 0);
    pos_store_close(&st);
    /* And it stays good: the next open is clean. */
    assert_int_equal(open_store(&st), 0);
    assert_false(st.recovered);
    pos_store_close(&st);
}

static void test_open_fresh_and_reopen(void **state)
{
    (void)state;
    pos_store_t st;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    pos_store_config_t cfg = {.path = sub, .map_size = 0};
    assert_int_equal(pos_store_open(&st, &cfg), 0);
    assert_false(st.recovered);
    assert_int_equal(st.map_size, POS_STORE_DEFAULT_MAP);
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(&st, MDB_RDONLY, &txn), 0);
    uint64_t format;
    assert_int_equal(pos_store_meta_get(&st, txn, "format", &format), 0);
    assert_int_equal(format, POS_STORE_FORMAT);
    assert_int_equal(pos_store_meta_get(&st, txn, "absent", &format), 0);
    assert_int_equal(format, 0);
    mdb_txn_abort(txn);
    pos_store_close(&st);
    pos_store_close(&st); /* twice is harmless */

    populate();
    assert_int_equal(open_store(&st), 0);
    assert_false(st.recovered);
    assert_int_equal(cache_census.entries, 50);
    assert_int_equal(outbox_census.entries, 1);
    assert_int_equal(outbox_census.last_id, 1);
    assert_true(cache_census.bytes > 50 * 3000);
    assert_int_equal(corrupt_files(), 0);
    pos_store_close(&st);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    pos_store_t st;
    assert_int_equal(pos_store_open(NULL, NULL), -EINVAL);
    pos_store_config_t cfg = {.path = ""};
    assert_int_equal(pos_store_open(&st, &cfg), -EINVAL);
    char longp[400];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    cfg.path = longp;
    assert_int_equal(pos_store_open(&st, &cfg), -EINVAL);
    /* A file where the directory should be. */
    char file[128];
    snprintf(file, sizeof(file), "%s/file", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    cfg.path = file;
    assert_int_equal(pos_store_open(&st, &cfg), -ENOTDIR);
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(NULL, 0, &txn), -EINVAL);
}

static void test_errno_translation(void **state)
{
    (void)state;
    assert_int_equal(pos_store_errno(0), 0);
    assert_int_equal(pos_store_errno(MDB_MAP_FULL), -ENOSPC);
    assert_int_equal(pos_store_errno(ENOSPC), -ENOSPC);
    assert_int_equal(pos_store_errno(EACCES), -EACCES);
    assert_int_equal(pos_store_errno(MDB_NOTFOUND), -ENOENT);
    assert_int_equal(pos_store_errno(MDB_KEYEXIST), -EEXIST);
    assert_int_equal(pos_store_errno(MDB_BAD_VALSIZE), -EMSGSIZE);
    assert_int_equal(pos_store_errno(MDB_CORRUPTED), -EIO);
    assert_int_equal(pos_store_errno(MDB_READERS_FULL), -EAGAIN);
    assert_true(pos_store_is_corruption(MDB_INVALID));
    assert_true(pos_store_is_corruption(MDB_CORRUPTED));
    assert_true(pos_store_is_corruption(MDB_PAGE_NOTFOUND));
    assert_true(pos_store_is_corruption(MDB_VERSION_MISMATCH));
    assert_false(pos_store_is_corruption(MDB_MAP_FULL));
    assert_false(pos_store_is_corruption(EACCES));
}

/* Writes key -> "short" into db of an open store, in a transaction of its own. */
static void put_short(pos_store_t *st, pos_store_db_t db, const char *key)
{
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(st, 0, &txn), 0);
    MDB_val k = {strlen(key), (void *)key};
    MDB_val v = {5, "short"};
    assert_int_equal(mdb_put(txn, st->dbi[db], &k, &v, 0), 0);
    assert_int_equal(pos_store_txn_commit(txn), 0);
}

static void data_path(char *out, size_t len)
{
    snprintf(out, len, "%s/data.mdb", dir);
}

static void test_corrupt_garbage(void **state)
{
    (void)state;
    populate();
    char p[128];
    data_path(p, sizeof(p));
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    FILE *f = fopen(p, "r+");
    assert_non_null(f);
    srand(42);
    for (off_t i = 0; i < sb.st_size; i++) {
        fputc(rand() & 0xff, f);
    }
    fclose(f);
    expect_rebuilt("MDB_INVALID");
}

static void test_corrupt_truncated(void **state)
{
    (void)state;
    populate();
    char p[128];
    data_path(p, sizeof(p));
    assert_int_equal(truncate(p, 100), 0);
    expect_rebuilt(NULL);
}

static void test_corrupt_truncated_after_meta(void **state)
{
    (void)state;
    populate();
    char p[128];
    data_path(p, sizeof(p));
    /* The meta pages survive but the pages they point to are gone: touching
     * them through the map would raise SIGBUS, so open must catch it first. */
    assert_int_equal(truncate(p, 3 * 4096), 0);
    expect_rebuilt("meta page needs");
}

/* data.mdb's length and the length its meta page names, the store closed. */
static void file_and_meta_length(uint64_t *file_len, uint64_t *meta_len)
{
    MDB_env *env;
    MDB_envinfo info;
    MDB_stat est;
    struct stat sb;
    char p[128];
    data_path(p, sizeof(p));
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_env_info(env, &info), 0);
    assert_int_equal(mdb_env_stat(env, &est), 0);
    mdb_env_close(env);
    *file_len = (uint64_t)sb.st_size;
    *meta_len = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
}

/*
 * CI failure of test_agent_crash: LMDB does not write the pages a commit
 * took and gave back (loose pages, and overflow pages freed while dirty).
 * When those are the file's last pages, data.mdb ends before the page its
 * meta page names as the last, after a kill as after a clean stop. Open
 * took that for a file cut short, moved a healthy store aside, and payments
 * were refused until an operator came. Now the short tail is checked
 * against the free list, and the file extended.
 */
static void test_short_file_of_free_pages_is_kept(void **state)
{
    (void)state;
    populate();
    pos_store_t st;
    assert_int_equal(open_store(&st), 0);
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(&st, 0, &txn), 0);
    static char big[64 * 1024];
    memset(big, 'b', sizeof(big));
    MDB_val k = {3, "big"}, v = {sizeof(big), big};
    /* Overflow pages taken at the file's end and freed in the same commit. */
    assert_int_equal(mdb_put(txn, st.dbi[POS_DB_META], &k, &v, 0), 0);
    assert_int_equal(mdb_del(txn, st.dbi[POS_DB_META], &k, NULL), 0);
    assert_int_equal(pos_store_txn_commit(txn), 0);
    pos_store_close(&st);

    uint64_t file_len, meta_len;
    file_and_meta_length(&file_len, &meta_len);
    print_message("    data.mdb %" PRIu64 " bytes, its meta page names %" PRIu64 "\n", file_len,
                  meta_len);
    assert_true(file_len < meta_len); /* the case itself */

    char log[2048];
    assert_int_equal(open_capturing(&st, log, sizeof(log)), 0);
    assert_false(st.recovered);
    assert_int_equal(corrupt_files(), 0);
    assert_non_null(strstr(log, "free pages before its last page"));
    assert_int_equal(cache_census.entries, 50);
    assert_int_equal(outbox_census.entries, 1);
    pos_store_close(&st);
    file_and_meta_length(&file_len, &meta_len);
    assert_true(file_len >= meta_len);
    /* And the next open has nothing to say. */
    assert_int_equal(open_capturing(&st, log, sizeof(log)), 0);
    assert_false(st.recovered);
    assert_string_equal(log, "");
    pos_store_close(&st);
}

/* A short file whose missing pages hold records is cut short: moved aside, as before. */
static void test_short_file_of_used_pages_moved_aside(void **state)
{
    (void)state;
    populate();
    uint64_t file_len, meta_len;
    file_and_meta_length(&file_len, &meta_len);
    char p[128];
    data_path(p, sizeof(p));
    /* Half of it gone: the products' overflow pages, in use, among them. */
    uint64_t cut = meta_len / 2 / 4096 * 4096;
    assert_int_equal(truncate(p, (off_t)cut), 0);
    /* "page N past its end is in use", or the free list itself was cut. */
    expect_rebuilt("its meta page needs");
    /* The file moved aside is left as it was found: not extended. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "data.mdb.corrupt-", 17) == 0) {
            char moved[512];
            struct stat sb;
            snprintf(moved, sizeof(moved), "%s/%s", dir, e->d_name);
            assert_int_equal(stat(moved, &sb), 0);
            assert_int_equal((uint64_t)sb.st_size, cut);
            checked++;
        }
    }
    closedir(d);
    assert_int_equal(checked, 1);
}

/* Populates the store, then lets change() alter it as a bug or a bad disk
 * could, and closes it. */
static void populate_then(void (*change)(pos_store_t *st))
{
    populate();
    pos_store_t st;
    assert_int_equal(open_store(&st), 0);
    change(&st);
    pos_store_close(&st);
}

static void next_format(pos_store_t *st)
{
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(st, 0, &txn), 0);
    assert_int_equal(pos_store_meta_put(st, txn, "format", POS_STORE_FORMAT + 1), 0);
    assert_int_equal(pos_store_txn_commit(txn), 0);
}

static void short_product(pos_store_t *st)
{
    put_short(st, POS_DB_CACHE, "product:1");
}

static void no_format(pos_store_t *st)
{
    MDB_txn *txn;
    assert_int_equal(pos_store_txn_begin(st, 0, &txn), 0);
    MDB_val k = {6, "format"};
    assert_int_equal(mdb_del(txn, st->dbi[POS_DB_META], &k, NULL), 0);
    assert_int_equal(pos_store_txn_commit(txn), 0);
}

/*
 * Issue 13 item 7: after a format change the agent moved data.mdb aside
 * and started empty while three messages were queued. A store of a newer
 * format is refused now, with a clear message, and left as it was.
 */
static void test_wrong_version(void **state)
{
    (void)state;
    populate_then(next_format);
    pos_store_t st;
    char log[2048];
    assert_int_equal(open_capturing(&st, log, sizeof(log)), -EPROTONOSUPPORT);
    assert_non_null(strstr(log, "format 2, written by a newer posagent (this one knows up to 1)"));
    assert_non_null(strstr(st.error, "written by a newer posagent"));
    assert_int_equal(corrupt_files(), 0);
    /* What it holds is still there, for the version that wrote it. */
    char p[128];
    data_path(p, sizeof(p));
    pos_store_t ro;
    assert_int_equal(pos_store_open_file_readonly(&ro, p), 0);
    pos_outbox_t ob;
    assert_int_equal(pos_outbox_open(&ob, &ro, NULL), 0);
    pos_outbox_stats_t os;
    pos_outbox_stats(&ob, &os);
    assert_int_equal(os.entries, 1);
    pos_outbox_close(&ob);
    pos_store_close(&ro);
}

/* Issue 13 item 12: a zero-length data.mdb started empty without a log
 * line. It is a store whose content is gone: moved aside and shown. */
static void test_empty_file_is_a_recovery(void **state)
{
    (void)state;
    populate();
    char p[128];
    data_path(p, sizeof(p));
    assert_int_equal(truncate(p, 0), 0);
    expect_rebuilt("file is empty (0 bytes)");
    char names[4][POS_STORE_NAME_MAX];
    assert_int_equal(pos_store_moved_aside(dir, names, 4), 1);
    assert_true(pos_store_is_moved_aside(names[0]));
}

/* A link planted as data.mdb is never written through. */
static void test_linked_file_refused(void **state)
{
    (void)state;
    char p[128], target[128];
    data_path(p, sizeof(p));
    snprintf(target, sizeof(target), "%s/elsewhere", dir);
    FILE *f = fopen(target, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(symlink(target, p), 0);
    pos_store_t st;
    assert_int_equal(open_store(&st), -ELOOP);
    assert_non_null(strstr(st.error, "symbolic link"));
    struct stat sb;
    assert_int_equal(stat(target, &sb), 0);
    assert_int_equal(sb.st_size, 0);
}

/* The names of stores moved aside, and only those not dealt with. */
static void test_moved_aside_names(void **state)
{
    (void)state;
    static const char *const yes[] = {"data.mdb.corrupt-1764412800",
                                      "data.mdb.corrupt-1764412800-3", "wal.failed-1764412800",
                                      "wal.damaged-1764412800"};
    static const char *const no[] = {"data.mdb",
                                     "data.mdb.corrupt-",
                                     "data.mdb.corrupt-12.cleared",
                                     "data.mdb.corrupt-12.salvaged",
                                     "data.mdb.corrupt-1-2-3",
                                     "data.mdb.corrupt-x",
                                     "lock.mdb",
                                     "wal",
                                     "wal.failed-",
                                     "wal.failed-12.cleared",
                                     "wal.damaged-x",
                                     "wal.other-12"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_true(pos_store_is_moved_aside(yes[i]));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_false(pos_store_is_moved_aside(no[i]));
    }
    char names[1][POS_STORE_NAME_MAX];
    assert_int_equal(pos_store_moved_aside(dir, names, 1), 0);
    for (size_t i = 0; i < 2; i++) {
        char path[200];
        snprintf(path, sizeof(path), "%s/%s", dir, yes[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fclose(f);
    }
    /* Both counted, the first by name kept. */
    assert_int_equal(pos_store_moved_aside(dir, names, 1), 2);
    assert_string_equal(names[0], yes[0]);
    assert_int_equal(pos_store_moved_aside("/nonexistent/posagent", names, 1), 0);
}

static void test_malformed_record(void **state)
{
    (void)state;
    populate_then(short_product);
    expect_rebuilt("malformed record in cache");
}

static void test_tenants(void **state)
{
    (void)state;
    pos_store_t st;
    pos_store_tenant_t t[2];
    pos_store_config_t cfg = {.path = dir, .tenants = t, .tenant_count = 2};
    /* Two owners of one database, a tenant of META, one without a check. */
    pos_cache_tenant(&t[0], NULL);
    pos_cache_tenant(&t[1], NULL);
    assert_int_equal(pos_store_open(&st, &cfg), -EINVAL);
    pos_outbox_tenant(&t[1], NULL);
    t[1].dbs |= POS_STORE_DB_BIT(POS_DB_META);
    assert_int_equal(pos_store_open(&st, &cfg), -EINVAL);
    pos_outbox_tenant(&t[1], NULL);
    t[1].check = NULL;
    assert_int_equal(pos_store_open(&st, &cfg), -EINVAL);

    /* Counting later passes over a record its tenant refuses. */
    populate();
    assert_int_equal(open_store(&st), 0);
    put_short(&st, POS_DB_CACHE, "product:x");
    pos_cache_census_t cs;
    pos_cache_tenant(&t[0], &cs);
    assert_int_equal(pos_store_count(&st, &t[0]), 0);
    assert_int_equal(cs.entries, 50);
    assert_int_equal(pos_store_count(&st, NULL), -EINVAL);
    pos_store_close(&st);
}

static void test_malformed_journal_record(void **state)
{
    (void)state;
    pos_store_t st;
    pos_store_tenant_t t;
    pos_journal_tenant(&t, NULL);
    pos_store_config_t cfg = {.path = dir, .tenants = &t, .tenant_count = 1};
    assert_int_equal(pos_store_open(&st, &cfg), 0);
    put_short(&st, POS_DB_JOURNAL, "T-001");
    pos_store_close(&st);
    /* Without the journal as a tenant its records are read, not judged. */
    assert_int_equal(open_store(&st), 0);
    assert_false(st.recovered);
    pos_store_close(&st);
    assert_int_equal(pos_store_open(&st, &cfg), 0);
    assert_true(st.recovered);
    assert_int_equal(corrupt_files(), 1);
    pos_store_close(&st);
}

static void test_missing_format_in_non_empty_store(void **state)
{
    (void)state;
    populate_then(no_format);
    expect_rebuilt("no format version");
}

static void test_two_corruptions_keep_both_files(void **state)
{
    (void)state;
    char p[128];
    data_path(p, sizeof(p));
    for (int round = 1; round <= 2; round++) {
        populate();
        assert_int_equal(truncate(p, 100), 0);
        pos_store_t st;
        char log[2048];
        assert_int_equal(open_capturing(&st, log, sizeof(log)), 0);
        assert_true(st.recovered);
        pos_store_close(&st);
        assert_int_equal(corrupt_files(), round);
    }
}

static void test_reclaim_hook(void **state)
{
    (void)state;
    pos_store_t st;
    assert_int_equal(open_store(&st), 0);
    assert_int_equal(pos_store_reclaim(&st, 100), 0); /* nobody registered */
    assert_int_equal(pos_store_reclaim(NULL, 100), 0);
    pos_store_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_fresh_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test(test_errno_translation),
        cmocka_unit_test_setup_teardown(test_corrupt_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_truncated_after_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_file_of_free_pages_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_file_of_used_pages_moved_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_is_a_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linked_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_aside_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_journal_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_format_in_non_empty_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_corruptions_keep_both_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_hook, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
