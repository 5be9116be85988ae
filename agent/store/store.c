#define _GNU_SOURCE /* fallocate(), FALLOC_FL_KEEP_SIZE */
#include "agent/store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "platform/clock.h"
#include "platform/dirs.h"
#include "platform/endian.h"
#include "platform/log.h"
#include "platform/uverr.h"

/* open_once() result meaning "the file is damaged or not ours": move it aside. */
#define STORE_CORRUPT 1

static const char *const db_names[POS_DB_COUNT] = {
    "meta", "cache", "cache_lru", "outbox", "journal", "seen",
};

/* ---- error codes ------------------------------------------------------ */

bool pos_store_is_corruption(int mdb_rc)
{
    switch (mdb_rc) {
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
    case MDB_PANIC:
    case MDB_BAD_DBI:
        return true;
    default:
        return false;
    }
}

int pos_store_errno(int mdb_rc)
{
    if (mdb_rc == 0) {
        return 0;
    }
    if (mdb_rc == EDQUOT) {
        return -ENOSPC; /* a quota is a full disk to us (-EDQUOT means the outbox bound) */
    }
    if (mdb_rc > 0) {
        /* A system errno (LMDB passes those through as positive values). */
        return -mdb_rc;
    }
    switch (mdb_rc) {
    case MDB_MAP_FULL:
        return -ENOSPC;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_KEYEXIST:
        return -EEXIST;
    case MDB_BAD_VALSIZE:
        return -EMSGSIZE;
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_MAP_RESIZED:
        return -EAGAIN;
    default:
        return -EIO;
    }
}

/* ---- transactions and meta -------------------------------------------- */

static bool store_reader(const pos_store_t *st, unsigned flags)
{
    return st->map_lock_ok && (flags & MDB_RDONLY) != 0;
}

int pos_store_txn_begin(pos_store_t *st, unsigned flags, MDB_txn **txn)
{
    int rc;

    if (st == NULL || st->env == NULL || txn == NULL) {
        return -EINVAL;
    }
    if ((flags & MDB_RDONLY) == 0 && st->writer != NULL) {
        uv_thread_t self = uv_thread_self();
        if (!uv_thread_equal(&self, st->writer)) {
            POS_ERR("store", "a write outside the writer thread, refused");
            return -EDEADLK;
        }
    }
    if ((flags & MDB_RDONLY) == 0 && st->stuck_seq != 0) {
        /* Any write commits after the log records kept out of LMDB, never
         * before: its commit could carry a walseq past them, or be undone
         * by them at the next start. */
        rc = pos_store_redo_unstick(st);
        if (rc != 0) {
            return rc;
        }
    }
    if (store_reader(st, flags)) {
        uv_rwlock_rdlock(&st->map_lock);
    }
    rc = mdb_txn_begin(st->env, NULL, flags, txn);
    if (rc != 0 && store_reader(st, flags)) {
        uv_rwlock_rdunlock(&st->map_lock);
    }
    return pos_store_errno(rc);
}

void pos_store_read_end(pos_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    if (st->map_lock_ok) {
        uv_rwlock_rdunlock(&st->map_lock);
    }
}

void pos_store_read_reset(pos_store_t *st, MDB_txn *txn)
{
    mdb_txn_reset(txn);
    if (st->map_lock_ok) {
        uv_rwlock_rdunlock(&st->map_lock);
    }
}

int pos_store_read_renew(pos_store_t *st, MDB_txn *txn)
{
    if (st->map_lock_ok) {
        uv_rwlock_rdlock(&st->map_lock);
    }
    int rc = mdb_txn_renew(txn);
    if (rc != 0 && st->map_lock_ok) {
        uv_rwlock_rdunlock(&st->map_lock);
    }
    return pos_store_errno(rc);
}

void pos_store_set_writer_thread(pos_store_t *st, const uv_thread_t *writer)
{
    st->writer = writer;
}

/* Resizes the map; excludes readers of other threads while it moves. */
static int store_set_mapsize(pos_store_t *st, uint64_t size)
{
    if (st->map_lock_ok) {
        uv_rwlock_wrlock(&st->map_lock);
    }
    int rc = mdb_env_set_mapsize(st->env, (size_t)size);
    if (st->map_lock_ok) {
        uv_rwlock_wrunlock(&st->map_lock);
    }
    return rc;
}

/* The room pos_store_reserve_begin() lends a deletion: a sixteenth of the
 * map, at least 256 KiB. */
static uint64_t store_reserve(const pos_store_t *st)
{
    uint64_t reserve = st->map_size / 16;
    return reserve < 256u * 1024u ? 256u * 1024u : reserve;
}

/* The file system refused room: say so (not only "the cache evicted"). */
static void store_disk_full(pos_store_t *st, const char *what, int sys_err)
{
    uint64_t now = pos_clock_mono_ms();

    st->disk_full++;
    if (st->disk_full > 1 && now - st->disk_full_log_ms < 60000u) {
        return;
    }
    st->disk_full_log_ms = now;
    POS_ERR("store",
            "the file system holding %s is full (%s, %s; %" PRIu64 " so far): "
            "cached entries give up their room, payment outcomes keep theirs",
            st->path, what, strerror(sys_err), st->disk_full);
}

/* Sets the map LMDB may use (it never goes below the pages in use). */
static void store_set_limit(pos_store_t *st, uint64_t limit)
{
    if (limit > st->map_size) {
        limit = st->map_size;
    }
    st->map_limit = limit;
    (void)store_set_mapsize(st, limit);
}

/* Keeps the reserve allocated beyond the end of data.mdb; see the header. */
static void store_keep_reserve(pos_store_t *st)
{
    struct stat sb;
    int fd;

    if (st->no_fallocate || mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) != 0) {
        return;
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint64_t reserve = store_reserve(st);
    if (!st->disk_low && size + reserve / 2 <= st->allocated_to) {
        return; /* the common case: one fstat */
    }
    uint64_t now = pos_clock_mono_ms();
    if (st->disk_low && now - st->disk_check_ms < 10000u) {
        return;
    }
    st->disk_check_ms = now;
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)size, (off_t)reserve) == 0) {
        st->allocated_to = size + reserve;
        if (st->disk_low) {
            st->disk_low = false;
            store_set_limit(st, st->map_size);
            POS_INFO("store", "the file system holding %s has room again", st->path);
        }
        return;
    }
    int err = errno;
    if (err == EOPNOTSUPP || err == ENOSYS) {
        st->no_fallocate = true;
        POS_INFO("store", "%s cannot allocate ahead (%s): no reserve against a full disk", st->path,
                 strerror(err));
        return;
    }
    if ((err == ENOSPC || err == EDQUOT) && !st->disk_low) {
        /* Whatever is allocated beyond the end stays the reserve. */
        st->disk_low = true;
        if (st->allocated_to < size) {
            st->allocated_to = size;
        }
        store_set_limit(st, size);
        store_disk_full(st, "no room for the reserve", err);
    }
}

/*
 * LMDB reports a write that came back short as EIO (mdb_page_flush), which
 * is what a file system out of room does to a multi-page write. EIO from a
 * commit while the file system has less room than the map could still grow
 * into is a full disk, not a broken one.
 */
static bool store_eio_is_full(const pos_store_t *st)
{
    struct statvfs vfs;
    int fd;

    if (mdb_env_get_fd(st->env, &fd) != 0 || fstatvfs(fd, &vfs) != 0) {
        return false;
    }
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return avail < store_reserve(st);
}

int pos_store_txn_commit(MDB_txn *txn)
{
    MDB_env *env = mdb_txn_env(txn);
    pos_store_t *st = mdb_env_get_userctx(env);
    int rc = mdb_txn_commit(txn);

    if (st == NULL) {
        return pos_store_errno(rc);
    }
    if (rc == EIO && store_eio_is_full(st)) {
        rc = ENOSPC;
    }
    if (rc == 0 && st->wal_on && !st->wal_covered) {
        /* MDB_NOMETASYNC left the meta page unflushed: this commit is in
         * no log record, so it is made durable here, as LMDB would. */
        rc = mdb_env_sync(env, 1);
    }
    if (rc == ENOSPC || rc == EDQUOT) {
        store_disk_full(st, "a write failed", rc);
    } else if (rc == 0) {
        store_keep_reserve(st);
    }
    return pos_store_errno(rc);
}

int pos_store_meta_get(pos_store_t *st, MDB_txn *txn, const char *name, uint64_t *value)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v;
    int rc = mdb_get(txn, st->dbi[POS_DB_META], &k, &v);
    *value = 0;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return pos_store_errno(rc);
    }
    if (v.mv_size != 8) {
        return -EBADMSG;
    }
    *value = pos_endian_get_le64(v.mv_data);
    return 0;
}

int pos_store_meta_put(pos_store_t *st, MDB_txn *txn, const char *name, uint64_t value)
{
    unsigned char buf[8];
    pos_endian_put_le64(buf, value);
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {sizeof(buf), buf};
    return pos_store_errno(pos_store_put(st, txn, POS_DB_META, &k, &v, 0));
}

/* ---- writes, and their redo ------------------------------------------- */

/* pos_wal_redo_add()'s -ENOMEM as LMDB would say it. */
static int redo_note(pos_store_t *st, char kind, pos_store_db_t db, const MDB_val *key,
                     const MDB_val *value)
{
    int rc = pos_wal_redo_add(&st->redo, kind, (unsigned)db, key->mv_data, key->mv_size,
                              value != NULL ? value->mv_data : NULL,
                              value != NULL ? value->mv_size : 0);
    return rc < 0 ? -rc : 0;
}

int pos_store_put(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, MDB_val *key, MDB_val *value,
                  unsigned flags)
{
    int rc = mdb_put(txn, st->dbi[db], key, value, flags);

    if (rc == 0 && (flags & MDB_RESERVE) == 0) {
        rc = redo_note(st, 'P', db, key, value);
    }
    return rc;
}

int pos_store_redo_put(pos_store_t *st, pos_store_db_t db, const MDB_val *key,
                       const MDB_val *value)
{
    return redo_note(st, 'P', db, key, value);
}

int pos_store_del(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, MDB_val *key)
{
    int rc = mdb_del(txn, st->dbi[db], key, NULL);

    if (rc == 0) {
        rc = redo_note(st, 'D', db, key, NULL);
    }
    return rc;
}

int pos_store_cursor_del(pos_store_t *st, MDB_cursor *cur, pos_store_db_t db)
{
    MDB_val k, v;
    size_t mark = st->redo.len;
    /* Noted first: the key's bytes are LMDB's and gone once deleted. */
    int rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);

    if (rc == 0) {
        rc = redo_note(st, 'D', db, &k, NULL);
    }
    if (rc == 0) {
        rc = mdb_cursor_del(cur, 0);
    }
    if (rc != 0) {
        st->redo.len = mark;
    }
    return rc;
}

int pos_store_cursor_put(pos_store_t *st, MDB_cursor *cur, pos_store_db_t db, MDB_val *key,
                         MDB_val *value, unsigned flags)
{
    int rc = mdb_cursor_put(cur, key, value, flags);

    if (rc == 0 && (flags & MDB_RESERVE) == 0) {
        rc = redo_note(st, 'P', db, key, value);
    }
    return rc;
}

/* ---- the write-ahead log ------------------------------------------------ */

/* Where redo entries are applied again: a write transaction of the store. */
typedef struct wal_target {
    pos_store_t *st;
    MDB_txn *txn;
} wal_target_t;

/* Replays one redo entry into the transaction in ctx (a wal_target_t). */
static int wal_apply(void *ctx, char kind, unsigned db, const void *key, size_t key_len,
                     const void *value, size_t value_len)
{
    wal_target_t *r = ctx;
    MDB_val k = {key_len, (void *)key};
    MDB_val v = {value_len, (void *)value};

    if (db >= POS_DB_COUNT) {
        return EBADMSG;
    }
    int rc = kind == 'P' ? mdb_put(r->txn, r->st->dbi[db], &k, &v, 0)
                         : mdb_del(r->txn, r->st->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND && kind != 'P') {
        return 0;
    }
    return rc == MDB_MAP_FULL ? ENOSPC : rc; /* room, not an I/O error, to the caller */
}

/*
 * Renames the log to POS_WAL_FILE.<what>-<epoch>, kept for an operator
 * (docs/offline.md), and begins a new one after the same sequence.
 * Returns 0, or the new log's error (then the store runs without one).
 */
static int wal_keep_aside(pos_store_t *st, const char *what, char *to, size_t tolen)
{
    char from[POS_STORE_PATH_MAX + 16];
    snprintf(from, sizeof(from), "%s/" POS_WAL_FILE, st->path);
    snprintf(to, tolen, "%s/" POS_WAL_FILE ".%s-%lld", st->path, what, (long long)time(NULL));
    uint64_t next = st->wal.next_seq;
    pos_wal_close(&st->wal);
    if (rename(from, to) != 0) {
        /* Not opened again: its records would be overwritten, or applied
         * over what this run commits. It stays for the next start, and
         * payments wait (st->wal_held) as for one set aside. */
        int err = errno;
        snprintf(to, tolen, "%s (could not be renamed: %s)", from, strerror(err));
        st->wal_held = true;
        return -err;
    }
    int rc = pos_wal_open(&st->wal, st->path);
    st->wal.next_seq = next;
    return rc; /* without a log (fd -1) when that failed: not an error */
}

/*
 * At open, before the walk: what the log holds beyond LMDB's last logged
 * commit is applied again, in one flushed commit, and the log starts a new
 * generation. A log that cannot be applied is reported and set aside: the
 * store as LMDB kept it is used. Returns 0 or a negative errno (LMDB).
 */
static int store_wal_replay(pos_store_t *st)
{
    wal_target_t r = {st, NULL};
    uint64_t after = 0, last = 0;
    int rc = mdb_txn_begin(st->env, NULL, 0, &r.txn);

    if (rc != 0) {
        return pos_store_errno(rc);
    }
    rc = pos_store_meta_get(st, r.txn, "walseq", &after);
    long n = rc == 0 ? pos_wal_replay(&st->wal, after, wal_apply, &r, &last) : rc;
    if (n > 0) {
        rc = pos_store_meta_put(st, r.txn, "walseq", last);
        if (rc == 0) {
            rc = pos_store_errno(mdb_txn_commit(r.txn));
            r.txn = NULL;
        }
        if (rc == 0) {
            st->wal_replayed = (uint64_t)n;
            POS_WARN("store", "%s: %ld commit%s applied again from the write-ahead log (an "
                     "earlier run ended before LMDB flushed them)",
                     st->path, n, n == 1 ? "" : "s");
        } else {
            n = rc;
        }
    }
    if (r.txn != NULL) {
        mdb_txn_abort(r.txn);
    }
    st->wal.next_seq = (last > after ? last : after) + 1;
    char to[POS_STORE_PATH_MAX + 48];
    if (n < 0) {
        rc = wal_keep_aside(st, "failed", to, sizeof(to));
        POS_ERR("store", "%s: the write-ahead log could not be applied (%s): kept as %s; the "
                "store goes on from LMDB's last flushed commit", st->path, strerror((int)-n), to);
        return rc;
    }
    uint64_t damaged = st->wal.damaged_seq;
    if (damaged != 0) {
        /* Not a power cut's torn tail: what came after it is lost to LMDB. */
        st->wal_damaged = damaged;
        rc = wal_keep_aside(st, "damaged", to, sizeof(to));
        POS_ERR("store",
                "%s: write-ahead log record %" PRIu64 " is damaged though the next is "
                "intact (the disk changed it): the commits from it on were not applied; the "
                "log is kept as %s",
                st->path, damaged, to);
        return rc;
    }
    return pos_wal_reset(&st->wal);
}

/* Applies redo (records up to seq) in a commit of its own, covered by the log. */
static int store_redo_apply_once(pos_store_t *st, const pos_wal_redo_t *redo, uint64_t seq)
{
    wal_target_t r = {st, NULL};
    int rc = mdb_txn_begin(st->env, NULL, 0, &r.txn);

    if (rc != 0) {
        return pos_store_errno(rc);
    }
    rc = pos_wal_redo_apply(redo->buf, redo->len, wal_apply, &r);
    if (rc == 0) {
        rc = pos_store_meta_put(st, r.txn, "walseq", seq);
    }
    if (rc != 0) {
        mdb_txn_abort(r.txn);
        return rc;
    }
    st->wal_covered = true;
    rc = pos_store_txn_commit(r.txn);
    st->wal_covered = false;
    return rc;
}

/*
 * The same; refused for room, tried again with the reserve lent (as to a
 * deletion): these commits were answered already, from their log record,
 * and every write after them waits for them. A full batch's worth of
 * redo (64 KiB) fits in the reserve (256 KiB at least).
 */
static int store_redo_apply(pos_store_t *st, const pos_wal_redo_t *redo, uint64_t seq)
{
    int rc = store_redo_apply_once(st, redo, seq);

    if (rc == -ENOSPC && pos_store_reserve_begin(st) == 0) {
        rc = store_redo_apply_once(st, redo, seq);
        pos_store_reserve_end(st);
    }
    return rc;
}

int pos_store_redo_reapply(pos_store_t *st, uint64_t seq)
{
    return store_redo_apply(st, &st->redo, seq);
}

void pos_store_redo_keep(pos_store_t *st, uint64_t seq)
{
    /* The batch's buffer becomes the kept one; the next batch starts on
     * the other (empty: nothing is kept while something is). */
    pos_wal_redo_t t = st->stuck;
    st->stuck = st->redo;
    st->redo = t;
    st->redo.len = 0;
    st->redo.on = st->redo.overflow = false;
    st->stuck.on = false;
    st->stuck_seq = seq;
    POS_ERR("store",
            "%s: log records up to %" PRIu64 " are not in LMDB (its commit failed twice): no "
            "other write is committed until they are (tried again before each), or the next "
            "start applies them",
            st->path, seq);
}

int pos_store_redo_unstick(pos_store_t *st)
{
    if (st->stuck_seq == 0) {
        return 0;
    }
    int rc = store_redo_apply(st, &st->stuck, st->stuck_seq);
    if (rc == 0) {
        POS_WARN("store", "%s: log records up to %" PRIu64 " applied to LMDB now", st->path,
                 st->stuck_seq);
        st->stuck.len = 0;
        st->stuck_seq = 0;
    }
    return rc;
}

int pos_store_checkpoint(pos_store_t *st)
{
    if (!st->wal_on || st->stuck_seq != 0) {
        return 0;
    }
    int rc = mdb_env_sync(st->env, 1);
    if (rc != 0) {
        return pos_store_errno(rc);
    }
    return pos_wal_reset(&st->wal);
}

/* Opens the log, or says why the store runs without one. */
static void store_wal_open(pos_store_t *st)
{
    int rc = pos_wal_open(&st->wal, st->path);
    if (rc != 0 && st->wal.unreadable) {
        char to[POS_STORE_PATH_MAX + 48];
        int err = rc;
        rc = wal_keep_aside(st, "unreadable", to, sizeof(to));
        POS_ERR("store",
                "%s: the write-ahead log could not be read (%s): kept as %s, not "
                "applied; the store goes on from LMDB's last flushed commit",
                st->path, strerror(-err), to);
    }
    if (rc != 0) {
        snprintf(st->wal_error, sizeof(st->wal_error), "%s", strerror(-rc));
        POS_WARN("store", "%s: no write-ahead log (%s): every commit is flushed twice", st->path,
                 strerror(-rc));
    }
}

static void store_wal_close(pos_store_t *st)
{
    /* Records kept out of LMDB: one last try, else the next start has them. */
    if (st->env != NULL && pos_store_redo_unstick(st) == 0 && st->wal_on &&
        mdb_env_sync(st->env, 1) == 0) {
        (void)pos_wal_reset(&st->wal); /* all of it is in LMDB now */
    }
    st->wal_on = false;
    pos_wal_close(&st->wal);
    pos_wal_redo_free(&st->redo);
    pos_wal_redo_free(&st->stuck);
    st->stuck_seq = 0;
}

int pos_store_txn_run(pos_store_t *st, unsigned flags, pos_store_txn_fn fn, void *ctx)
{
    MDB_txn *txn;
    int rc = pos_store_txn_begin(st, flags, &txn);
    if (rc != 0) {
        return rc;
    }
    rc = fn(ctx, txn);
    if ((flags & MDB_RDONLY) != 0) {
        pos_store_read_end(st, txn);
        return rc;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return pos_store_txn_commit(txn);
}

/* Bumps the "settle" counter: a commit that carries (almost) nothing. */
static int settle_txn(void *ctx, MDB_txn *txn)
{
    pos_store_t *st = ctx;
    uint64_t n = 0;
    int rc = pos_store_meta_get(st, txn, "settle", &n);
    if (rc == 0) {
        rc = pos_store_meta_put(st, txn, "settle", n + 1);
    }
    return rc;
}

int pos_store_settle(pos_store_t *st)
{
    return pos_store_txn_run(st, 0, settle_txn, st);
}

int pos_store_reserve_begin(pos_store_t *st)
{
    uint64_t reserve = store_reserve(st);
    if (st->disk_low) {
        /* Only what is allocated: more would fail the write anyway. */
        reserve = st->allocated_to > st->map_limit ? st->allocated_to - st->map_limit : 0;
        if (reserve == 0) {
            return -ENOSPC;
        }
    }
    uint64_t size = st->map_limit + reserve;
    if ((uint64_t)(size_t)size != size) {
        return -ENOMEM;
    }
    return pos_store_errno(store_set_mapsize(st, size));
}

void pos_store_reserve_end(pos_store_t *st)
{
    /* LMDB keeps the map at least as large as the pages in use. */
    (void)store_set_mapsize(st, st->map_limit);
}

bool pos_store_short_of_room(pos_store_t *st)
{
    MDB_envinfo info;

    if (st->disk_low) {
        return true;
    }
    /* pos_store_reserve_end() asked for map_limit; LMDB kept what is in use. */
    return mdb_env_info(st->env, &info) == 0 && (uint64_t)info.me_mapsize > st->map_limit;
}

long long pos_store_reclaim(pos_store_t *st, size_t bytes)
{
    if (st == NULL || st->reclaim == NULL) {
        return 0;
    }
    long long freed = st->reclaim(st->reclaim_ctx, bytes);
    if (freed > 0) {
        (void)pos_store_settle(st);
    }
    return freed;
}

/* ---- open ------------------------------------------------------------- */

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_dirs(const char *path)
{
    int rc = pos_dirs_make(path, 0700, 0700);
    if (rc != 0) {
        return rc;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return -errno;
    }
    return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

static void close_env(pos_store_t *st)
{
    if (st->env != NULL) {
        mdb_env_close(st->env);
        st->env = NULL;
    }
}

/* The tenants of one pos_store_open() call. */
typedef struct tenants {
    const pos_store_tenant_t *t;
    size_t count;
} tenants_t;

/* A tenant's databases must exist, must not be META, and must be its own. */
static int tenants_valid(const tenants_t *ts)
{
    uint32_t owned = POS_STORE_DB_BIT(POS_DB_META);
    if (ts->count != 0 && ts->t == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < ts->count; i++) {
        const pos_store_tenant_t *t = &ts->t[i];
        if (t->check == NULL || t->dbs == 0 || (t->dbs >> POS_DB_COUNT) != 0 ||
            (t->dbs & owned) != 0) {
            return -EINVAL;
        }
        owned |= t->dbs;
    }
    return 0;
}

/* The tenant that owns db, or NULL. */
static const pos_store_tenant_t *owner_of(const tenants_t *ts, pos_store_db_t db)
{
    for (size_t i = 0; i < ts->count; i++) {
        if ((ts->t[i].dbs & POS_STORE_DB_BIT(db)) != 0) {
            return &ts->t[i];
        }
    }
    return NULL;
}

static void census_zero(const pos_store_tenant_t *t)
{
    if (t->census != NULL) {
        memset(t->census, 0, t->census_size);
    }
}

/*
 * The walk under pos_store_each(). Returns 0 at the end of the database,
 * fn's value when fn stopped the walk (*by_fn set), or the LMDB code that
 * ended it, untranslated, *step saying where.
 */
static int each_record(MDB_txn *txn, MDB_dbi dbi, const MDB_val *from, pos_store_each_fn fn,
                       void *ctx, bool *by_fn, const char **step)
{
    MDB_cursor *cur;
    *by_fn = false;
    *step = "cursor on";
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        return rc;
    }
    *step = "reading";
    MDB_val k, v;
    if (from != NULL) {
        k = *from;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, from != NULL ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        rc = fn(ctx, cur, &k, &v);
        if (rc != 0) {
            *by_fn = true;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int pos_store_each(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, pos_store_each_fn fn,
                   void *ctx)
{
    bool by_fn;
    const char *step;
    int rc = each_record(txn, st->dbi[db], NULL, fn, ctx, &by_fn, &step);
    return by_fn ? rc : pos_store_errno(rc);
}

int pos_store_each_from(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, const void *from,
                        size_t from_len, pos_store_each_fn fn, void *ctx)
{
    MDB_val k = {from_len, (void *)from};
    bool by_fn;
    const char *step;
    int rc = each_record(txn, st->dbi[db], &k, fn, ctx, &by_fn, &step);
    return by_fn ? rc : pos_store_errno(rc);
}

/* One walk_db() of one database: the owner's check, strict or not. */
typedef struct walk_args {
    pos_store_db_t db;
    const pos_store_tenant_t *t; /* NULL: read only */
    bool strict;
    bool refused;
} walk_args_t;

static int walk_record(void *ctx, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    walk_args_t *a = ctx;
    (void)cur;
    if (a->t != NULL && a->t->check(a->t->census, a->db, k, v) != 0 && a->strict) {
        a->refused = true;
        return 1;
    }
    return 0;
}

/*
 * Reads every record of db in key order, handing each to t's check (t may
 * be NULL: read only). A refused record stops the walk when strict (with
 * *refused set) and is passed over otherwise. Returns 0 at the end of the
 * database or the LMDB code that stopped it, *step saying where.
 */
static int walk_db(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, const pos_store_tenant_t *t,
                   bool strict, bool *refused, const char **step)
{
    walk_args_t a = {db, t, strict, false};
    bool by_fn;
    int rc = each_record(txn, st->dbi[db], NULL, walk_record, &a, &by_fn, step);
    *refused = a.refused;
    return by_fn ? 0 : rc;
}

/* Walks every record of every database; the tenants judge and count theirs. */
static int walk(pos_store_t *st, MDB_txn *txn, const tenants_t *ts, char *why, size_t whylen)
{
    for (size_t i = 0; i < ts->count; i++) {
        census_zero(&ts->t[i]);
    }
    for (int db = 0; db < POS_DB_COUNT; db++) {
        bool refused;
        const char *step;
        int rc = walk_db(st, txn, (pos_store_db_t)db, owner_of(ts, (pos_store_db_t)db), true,
                         &refused, &step);
        if (refused) {
            snprintf(why, whylen, "malformed record in %s", db_names[db]);
            return STORE_CORRUPT;
        }
        if (rc != 0) {
            snprintf(why, whylen, "%s %s: %s", step, db_names[db], mdb_strerror(rc));
            return pos_store_is_corruption(rc) ? STORE_CORRUPT : pos_store_errno(rc);
        }
    }
    return 0;
}

typedef struct count_args {
    pos_store_t *st;
    const pos_store_tenant_t *t;
} count_args_t;

static int count_txn(void *ctx, MDB_txn *txn)
{
    count_args_t *a = ctx;
    int rc = 0;
    census_zero(a->t);
    for (int db = 0; db < POS_DB_COUNT && rc == 0; db++) {
        if ((a->t->dbs & POS_STORE_DB_BIT(db)) != 0) {
            bool refused;
            const char *step;
            rc = pos_store_errno(
                walk_db(a->st, txn, (pos_store_db_t)db, a->t, false, &refused, &step));
        }
    }
    return rc;
}

int pos_store_count(pos_store_t *st, const pos_store_tenant_t *t)
{
    tenants_t one = {t, 1};
    if (t == NULL || tenants_valid(&one) != 0) {
        return -EINVAL;
    }
    count_args_t a = {st, t};
    return pos_store_txn_run(st, MDB_RDONLY, count_txn, &a);
}

/*
 * data.mdb and lock.mdb, where they exist: regular files (not links), and
 * data.mdb not empty. Returns 0, STORE_CORRUPT (empty: moved aside and
 * shown like any corruption) or -ELOOP / -EINVAL with why set.
 */
static int store_files_check(const pos_store_t *st, char *why, size_t whylen)
{
    static const char *const names[] = {"data.mdb", "lock.mdb"};

    for (size_t i = 0; i < 2; i++) {
        char file[POS_STORE_PATH_MAX + 16];
        struct stat sb;
        snprintf(file, sizeof(file), "%s/%s", st->path, names[i]);
        if (lstat(file, &sb) != 0) {
            continue; /* made by LMDB */
        }
        if (S_ISLNK(sb.st_mode) || !S_ISREG(sb.st_mode)) {
            snprintf(why, whylen, "%s is %s, not the store's own file", file,
                     S_ISLNK(sb.st_mode) ? "a symbolic link" : "not a regular file");
            return S_ISLNK(sb.st_mode) ? -ELOOP : -EINVAL;
        }
        if (i == 0 && sb.st_size == 0) {
            snprintf(why, whylen, "file is empty (0 bytes): what it held is gone");
            return STORE_CORRUPT;
        }
    }
    return 0;
}

/* Pages past a short file's end that the free-list check follows, at most. */
#define STORE_TAIL_PAGES_MAX (1u << 20)

/* Marks in seen (one bit per page from first) the free pages the free list names. */
static int tail_free_pages(MDB_txn *txn, uint64_t first, uint64_t last, uint8_t *seen)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, 0 /* FREE_DBI */, &cur);
    if (rc != 0) {
        return rc;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        /* An IDL of size_t (midl.h): its count, then page numbers (unaligned). */
        size_t n = v.mv_size / sizeof(size_t);
        size_t count;
        if (n == 0) {
            continue;
        }
        memcpy(&count, v.mv_data, sizeof(count));
        if (count < n) {
            n = count + 1;
        }
        for (size_t i = 1; i < n; i++) {
            size_t pg;
            memcpy(&pg, (const char *)v.mv_data + i * sizeof(size_t), sizeof(pg));
            if (pg >= first && pg <= last) {
                seen[(pg - first) / 8] |= (uint8_t)(1u << ((pg - first) % 8));
            }
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * data.mdb may end before the last page its meta page names: LMDB does not
 * write a page freed within the commit that took it (a "loose" page), and
 * when those are the file's last pages, the file stays short, after a clean
 * stop as after a kill. A file cut short anywhere else would fault (SIGBUS)
 * on the first touch of a missing page. So a short file is first extended
 * to its full length (zero pages, which nothing reads while they are free),
 * then every page past its old end must be on LMDB's free list. Returns 0,
 * STORE_CORRUPT with why set (the old length restored), or a negative errno.
 */
static int store_tail_check(pos_store_t *st, char *why, size_t whylen)
{
    MDB_envinfo info;
    MDB_stat est;
    char file[POS_STORE_PATH_MAX + 16];
    struct stat sb;

    snprintf(file, sizeof(file), "%s/data.mdb", st->path);
    if (mdb_env_info(st->env, &info) != 0 || mdb_env_stat(st->env, &est) != 0 ||
        stat(file, &sb) != 0 || est.ms_psize == 0) {
        return 0;
    }
    uint64_t psize = est.ms_psize, last = info.me_last_pgno;
    uint64_t need = (last + 1) * psize, size = (uint64_t)sb.st_size;
    if (size >= need) {
        return 0;
    }
    uint64_t first = size / psize; /* the first page not wholly in the file */
    snprintf(why, whylen, "file is %" PRIu64 " bytes, its meta page needs %" PRIu64, size, need);
    if (first < 2 || last - first + 1 > STORE_TAIL_PAGES_MAX) {
        return STORE_CORRUPT;
    }
    int fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    if (ftruncate(fd, (off_t)need) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    uint64_t pages = last - first + 1;
    uint8_t *seen = calloc((size_t)(pages + 7) / 8, 1);
    MDB_txn *txn = NULL;
    int rc = seen == NULL ? ENOMEM : mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = tail_free_pages(txn, first, last, seen);
        mdb_txn_abort(txn);
    }
    uint64_t used = pages;
    for (uint64_t pg = 0; rc == 0 && pg < pages; pg++) {
        if ((seen[pg / 8] & (1u << (pg % 8))) == 0) {
            used = pg;
            break;
        }
    }
    free(seen);
    int result = 0;
    if (rc != 0 || used < pages) {
        /* Left as it was found, for whoever looks at it once moved aside. */
        if (ftruncate(fd, (off_t)size) != 0) {
            POS_WARN("store", "%s: cannot restore its length of %" PRIu64 " bytes: %s", file, size,
                     strerror(errno));
        }
        if (rc == ENOMEM) {
            result = -ENOMEM;
        } else if (rc != 0) {
            snprintf(why, whylen,
                     "file is %" PRIu64 " bytes, its meta page needs %" PRIu64
                     ", and its free list is unreadable (%s)",
                     size, need, mdb_strerror(rc));
            result = pos_store_is_corruption(rc) ? STORE_CORRUPT : pos_store_errno(rc);
        } else {
            snprintf(why, whylen,
                     "file is %" PRIu64 " bytes, its meta page needs %" PRIu64 ", and page %" PRIu64
                     " past its end is in use",
                     size, need, first + used);
            result = STORE_CORRUPT;
        }
    } else {
        POS_INFO("store",
                 "%s ended %" PRIu64 " free page%s before its last page (LMDB leaves "
                 "pages freed within a commit unwritten): extended to %" PRIu64 " bytes",
                 file, pages, pages == 1 ? "" : "s", need);
        why[0] = '\0';
    }
    close(fd);
    return result;
}

/*
 * Format migrations, oldest first: each turns a store of format "from" into
 * one of format "from + 1" inside txn. None yet: format 1 is the first.
 */
typedef struct store_migration {
    uint64_t from;
    int (*migrate)(pos_store_t *st, MDB_txn *txn);
} store_migration_t;

static const store_migration_t store_migrations[] = {
    {0, NULL}, /* placeholder: a store of format 0 with data is corrupt */
};

/*
 * A store of another format than POS_STORE_FORMAT: migrated step by step
 * to ours in txn (then 0), or -EPROTONOSUPPORT with why set when it is
 * newer than this agent (written by a later version) or no migration
 * leads from it. Never moved aside: what it holds is intact.
 */
static int store_migrate(pos_store_t *st, MDB_txn *txn, uint64_t format, char *why, size_t whylen)
{
    if (format > POS_STORE_FORMAT) {
        snprintf(why, whylen,
                 "the store is of format %" PRIu64 ", written by a newer posagent (this one "
                 "knows up to %u): run that version again, or move the store aside yourself; "
                 "nothing was changed",
                 format, POS_STORE_FORMAT);
        return -EPROTONOSUPPORT;
    }
    while (format < POS_STORE_FORMAT) {
        const store_migration_t *m = NULL;
        for (size_t i = 0; i < sizeof(store_migrations) / sizeof(store_migrations[0]); i++) {
            if (store_migrations[i].from == format && store_migrations[i].migrate != NULL) {
                m = &store_migrations[i];
            }
        }
        if (m == NULL) {
            snprintf(why, whylen,
                     "the store is of format %" PRIu64 " and no migration leads from it to %u; "
                     "nothing was changed",
                     format, POS_STORE_FORMAT);
            return -EPROTONOSUPPORT;
        }
        int rc = m->migrate(st, txn);
        if (rc == 0) {
            rc = pos_store_meta_put(st, txn, "format", format + 1);
        }
        if (rc != 0) {
            snprintf(why, whylen, "migrating the store from format %" PRIu64 ": %s", format,
                     strerror(-rc));
            return rc;
        }
        POS_INFO("store", "%s: migrated from format %" PRIu64 " to %" PRIu64, st->path, format,
                 format + 1);
        format++;
    }
    return 0;
}

/*
 * One attempt: opens the environment, checks the file length against the
 * meta page, opens (creating) the databases, checks or writes the format
 * version and walks every record. Returns 0, STORE_CORRUPT with why set
 * (the environment closed), or a negative errno (the environment closed).
 */
static int open_once(pos_store_t *st, const tenants_t *ts, char *why, size_t whylen)
{
    int rc = mdb_env_create(&st->env);
    if (rc != 0) {
        st->env = NULL;
        return pos_store_errno(rc);
    }
    int result = 0;
    MDB_txn *txn = NULL;
    mdb_env_set_userctx(st->env, st); /* for pos_store_txn_commit() */
    mdb_env_set_maxdbs(st->env, POS_DB_COUNT);
    st->map_limit = st->map_size;
    rc = mdb_env_set_mapsize(st->env, (size_t)st->map_size);
    if (rc != 0) {
        result = pos_store_errno(rc);
        goto fail;
    }
    /* Its files must be the store's own: a link planted in the directory
     * would have LMDB write through it. And an empty data.mdb is a store
     * whose content is gone (LMDB would take it for a new one, silently). */
    rc = store_files_check(st, why, whylen);
    if (rc != 0) {
        result = rc;
        goto fail;
    }
    /* Default durability: each commit is fsync'd (see store.h). */
    rc = mdb_env_open(st->env, st->path, MDB_NOTLS, 0600);
    if (rc != 0) {
        snprintf(why, whylen, "open: %s", mdb_strerror(rc));
        result = pos_store_is_corruption(rc) ? STORE_CORRUPT : pos_store_errno(rc);
        goto fail;
    }

    /* A file ending before the meta page's last page: LMDB's own doing, or cut short. */
    rc = store_tail_check(st, why, whylen);
    if (rc != 0) {
        result = rc;
        goto fail;
    }

    /* Readers of a process killed with -9 hold slots (and old pages) until cleared. */
    int dead = 0;
    mdb_reader_check(st->env, &dead);

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0) {
        snprintf(why, whylen, "begin: %s", mdb_strerror(rc));
        txn = NULL;
        result = pos_store_is_corruption(rc) ? STORE_CORRUPT : pos_store_errno(rc);
        goto fail;
    }
    for (int db = 0; db < POS_DB_COUNT; db++) {
        rc = mdb_dbi_open(txn, db_names[db], MDB_CREATE, &st->dbi[db]);
        if (rc != 0) {
            snprintf(why, whylen, "database %s: %s", db_names[db], mdb_strerror(rc));
            result = pos_store_is_corruption(rc) ? STORE_CORRUPT : pos_store_errno(rc);
            goto fail;
        }
    }
    uint64_t format = 0;
    rc = pos_store_meta_get(st, txn, "format", &format);
    if (rc == -EBADMSG) {
        snprintf(why, whylen, "format version unreadable");
        result = STORE_CORRUPT;
        goto fail;
    }
    if (rc == 0 && format != 0 && format != POS_STORE_FORMAT) {
        /* Another format is a store in good order, not a corrupt one: what
         * it holds is migrated, or the agent refuses to touch it. */
        rc = store_migrate(st, txn, format, why, whylen);
        if (rc != 0) {
            result = rc;
            goto fail;
        }
        format = POS_STORE_FORMAT;
    }
    if (rc != 0) {
        snprintf(why, whylen, "meta: %d", rc);
        result = rc == -EIO ? STORE_CORRUPT : rc;
        goto fail;
    }
    if (format == 0) {
        /* A new store, or one whose first commit never happened: must be empty. */
        for (int db = 0; db < POS_DB_COUNT; db++) {
            MDB_stat ds;
            rc = mdb_stat(txn, st->dbi[db], &ds);
            if (rc != 0 || ds.ms_entries != 0) {
                snprintf(why, whylen, "no format version in a non-empty store");
                result = STORE_CORRUPT;
                goto fail;
            }
        }
        rc = pos_store_meta_put(st, txn, "format", POS_STORE_FORMAT);
        if (rc != 0) {
            result = rc;
            goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        snprintf(why, whylen, "commit: %s", mdb_strerror(rc));
        result = pos_store_is_corruption(rc) ? STORE_CORRUPT : pos_store_errno(rc);
        goto fail;
    }
    if (st->wal.fd >= 0) {
        rc = store_wal_replay(st);
        if (rc != 0) {
            /* The store itself is fine: it goes on without a log. */
            snprintf(st->wal_error, sizeof(st->wal_error), "%s", strerror(-rc));
            POS_WARN("store", "%s: no write-ahead log (%s): every commit is flushed twice",
                     st->path, strerror(-rc));
            pos_wal_close(&st->wal);
        }
    }

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        txn = NULL;
        result = pos_store_errno(rc);
        goto fail;
    }
    result = walk(st, txn, ts, why, whylen);
    mdb_txn_abort(txn);
    txn = NULL;
    if (result != 0) {
        goto fail;
    }
    return 0;

fail:
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    close_env(st);
    return result;
}

/* Renames data.mdb to data.mdb.corrupt-<epoch>[-n] and removes the lock file. */
static int move_aside(pos_store_t *st, const char *why)
{
    char from[POS_STORE_PATH_MAX + 16];
    snprintf(from, sizeof(from), "%s/data.mdb", st->path);
    long long now = (long long)time(NULL);
    for (int n = 0; n < 100; n++) {
        if (n == 0) {
            snprintf(st->moved_to, sizeof(st->moved_to), "%s/data.mdb.corrupt-%lld", st->path, now);
        } else {
            snprintf(st->moved_to, sizeof(st->moved_to), "%s/data.mdb.corrupt-%lld-%d", st->path,
                     now, n);
        }
        if (access(st->moved_to, F_OK) != 0) {
            break;
        }
    }
    if (rename(from, st->moved_to) != 0) {
        int err = errno;
        POS_ERR("store", "%s is unusable (%s) and could not be moved aside: %s", from, why,
                strerror(err));
        st->moved_to[0] = '\0';
        return -err;
    }
    char lock[POS_STORE_PATH_MAX + 16];
    snprintf(lock, sizeof(lock), "%s/lock.mdb", st->path);
    unlink(lock);
    POS_ERR("store", "%s is unusable (%s): moved aside to %s, starting with an empty store", from,
            why, st->moved_to);
    return 0;
}

int pos_store_open(pos_store_t *st, const pos_store_config_t *cfg)
{
    if (st == NULL) {
        return -EINVAL;
    }
    memset(st, 0, sizeof(*st));
    st->wal.fd = -1;
    const char *path = cfg != NULL && cfg->path != NULL ? cfg->path : POS_STORE_DEFAULT_PATH;
    tenants_t ts = {cfg != NULL ? cfg->tenants : NULL, cfg != NULL ? cfg->tenant_count : 0};
    if (path[0] == '\0' || strlen(path) > POS_STORE_PATH_MAX || tenants_valid(&ts) != 0) {
        return -EINVAL;
    }
    snprintf(st->path, sizeof(st->path), "%s", path);
    st->map_size = cfg != NULL && cfg->map_size != 0 ? cfg->map_size : POS_STORE_DEFAULT_MAP;
    if ((uint64_t)(size_t)st->map_size != st->map_size) {
        return -EINVAL; /* larger than the address space of a 32-bit build */
    }
    int rc = make_dirs(st->path);
    if (rc != 0) {
        POS_ERR("store", "cannot create %s: %s", st->path, strerror(-rc));
        return rc;
    }
    store_wal_open(st);
    char why[320] = "";
    rc = open_once(st, &ts, why, sizeof(why));
    if (rc == STORE_CORRUPT) {
        rc = move_aside(st, why);
        if (rc == 0 && st->wal.fd >= 0) {
            rc = pos_wal_reset(&st->wal); /* its records were the old store's */
        }
        if (rc != 0) {
            store_wal_close(st);
            return rc;
        }
        st->recovered = true;
        why[0] = '\0';
        rc = open_once(st, &ts, why, sizeof(why));
        if (rc == STORE_CORRUPT) {
            POS_ERR("store", "a fresh store in %s is unusable too (%s)", st->path, why);
            rc = -EIO;
        }
    }
    if (rc != 0) {
        POS_ERR("store", "cannot open the store in %s: %s%s%s", st->path, strerror(-rc),
                why[0] != '\0' ? ": " : "", why);
        snprintf(st->error, sizeof(st->error), "%s", why[0] != '\0' ? why : strerror(-rc));
        store_wal_close(st);
        return rc;
    }
    if (st->wal.fd >= 0) {
        rc = mdb_env_set_flags(st->env, MDB_NOMETASYNC, 1);
        st->wal_on = rc == 0;
        if (rc != 0) {
            pos_wal_close(&st->wal);
        }
    }
    store_keep_reserve(st);
    /* Taken only once a writer thread serves the store; cheap meanwhile. */
    rc = uv_rwlock_init(&st->map_lock);
    if (rc != 0) {
        close_env(st);
        return pos_uv_errno(rc);
    }
    st->map_lock_ok = true;
    return 0;
}

void pos_store_close(pos_store_t *st)
{
    if (st == NULL) {
        return;
    }
    if (st->wal.fd > 0 || st->wal_on) {
        store_wal_close(st);
    }
    /* Also after the log failed and was closed under the writer. */
    pos_wal_redo_free(&st->redo);
    pos_wal_redo_free(&st->stuck);
    close_env(st);
    if (st->map_lock_ok) {
        uv_rwlock_destroy(&st->map_lock);
        st->map_lock_ok = false;
    }
}

/* ---- stores moved aside -------------------------------------------------- */

/* "data.mdb.corrupt-<digits>" or "...-<digits>-<digits>": one moved aside
 * and not yet dealt with (salvaged or cleared ones carry a suffix). */
bool pos_store_is_moved_aside(const char *name)
{
    /* A store found corrupt, or a write-ahead log whose records LMDB lacks
     * and could not be given (store_wal_replay): either may hold payments
     * this store does not know. */
    static const char prefixes[][24] = {"data.mdb.corrupt-", POS_WAL_FILE ".failed-",
                                        POS_WAL_FILE ".damaged-", POS_WAL_FILE ".unreadable-"};
    const char *p = NULL;
    int groups = 0;

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && p == NULL; i++) {
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) {
            p = name + strlen(prefixes[i]);
        }
    }
    if (p == NULL) {
        return false;
    }
    while (groups < 2) {
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        if (p == start) {
            return false;
        }
        groups++;
        if (*p == '\0') {
            return true;
        }
        if (*p != '-') {
            return false;
        }
        p++;
    }
    return false;
}

int pos_store_moved_aside(const char *dir, char (*names)[POS_STORE_NAME_MAX], size_t max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    int total = 0;

    if (d == NULL) {
        return errno == ENOENT ? 0 : -errno;
    }
    while ((e = readdir(d)) != NULL) {
        if (!pos_store_is_moved_aside(e->d_name) || strlen(e->d_name) >= POS_STORE_NAME_MAX) {
            continue;
        }
        total++;
        /* Keep the max first by name: insert in order, the last falls off. */
        size_t at = n;
        while (at > 0 && strcmp(names[at - 1], e->d_name) > 0) {
            at--;
        }
        if (at >= max) {
            continue;
        }
        if (n < max) {
            n++;
        }
        memmove(names[at + 1], names[at], (n - 1 - at) * POS_STORE_NAME_MAX);
        memcpy(names[at], e->d_name, strlen(e->d_name) + 1);
    }
    closedir(d);
    return total;
}

int pos_store_open_file_readonly(pos_store_t *st, const char *file)
{
    MDB_txn *txn = NULL;
    struct stat sb;
    int rc;

    if (st == NULL || file == NULL) {
        return -EINVAL;
    }
    memset(st, 0, sizeof(*st));
    st->wal.fd = -1;
    snprintf(st->path, sizeof(st->path), "%s", file);
    if (stat(file, &sb) != 0) {
        return -errno;
    }
    if (!S_ISREG(sb.st_mode)) {
        return -EINVAL;
    }
    if (sb.st_size == 0) {
        return -ENODATA;
    }
    rc = mdb_env_create(&st->env);
    if (rc != 0) {
        st->env = NULL;
        return pos_store_errno(rc);
    }
    mdb_env_set_maxdbs(st->env, POS_DB_COUNT);
    /* The map as large as the file, whatever the store's setting was. */
    st->map_size = st->map_limit = (uint64_t)sb.st_size;
    mdb_env_set_mapsize(st->env, (size_t)sb.st_size);
    rc = mdb_env_open(st->env, file, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0600);
    if (rc == 0) {
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    }
    for (int db = 0; rc == 0 && db < POS_DB_COUNT; db++) {
        rc = mdb_dbi_open(txn, db_names[db], 0, &st->dbi[db]);
    }
    if (txn != NULL) {
        /* Committed, not aborted: the handles live on only then. */
        int crc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), 0);
        rc = rc != 0 ? rc : crc;
    }
    if (rc != 0) {
        close_env(st);
        return rc == MDB_NOTFOUND ? -ENOENT : pos_store_errno(rc);
    }
    return 0;
}
