#ifndef AGENT_STORE_STORE_H
#define AGENT_STORE_STORE_H

/*
 * The local store: one LMDB environment in a directory, holding the cache
 * (agent/store/cache.h), the outbox (agent/store/outbox.h) and the payment
 * journal (agent/payment/journal.h) in named databases. See docs/offline.md.
 *
 * Writes: once the agent runs, one writer thread (agent/store/writer.h)
 * makes every write; the loop only reads. The environment is opened with
 * MDB_NOTLS and LMDB's default durability: every commit is flushed before
 * it returns, so a record the caller was told is written survives a crash
 * or a power cut. With the write-ahead log (agent/store/wal.h, file "wal"
 * beside data.mdb) the writer's groups are durable once their log record
 * is flushed, and LMDB then commits with MDB_NOMETASYNC (consistent after
 * a power cut, its last commits held by the log); every commit that the
 * log does not cover is flushed in full (mdb_env_sync). MDB_NOSYNC and
 * MDB_WRITEMAP are deliberately not used (see docs/offline.md).
 *
 * Every change to a record goes through pos_store_put(), pos_store_del()
 * and the cursor variants below, which also note it in the redo of the
 * group being logged.
 *
 * Corruption: a store that LMDB refuses (MDB_INVALID, MDB_CORRUPTED,
 * MDB_PAGE_NOTFOUND, MDB_VERSION_MISMATCH, ...), whose file is empty or
 * shorter than its meta page says, or whose records do not parse during
 * the read walk at open, is moved aside to "data.mdb.corrupt-<epoch>" with
 * one log line, and an empty store is created in its place. The file
 * stays there until an operator salvages or clears it
 * (pos_store_moved_aside() finds it; docs/offline.md).
 *
 * Format: a store of another format version is no corrupt store. One of
 * an older format is migrated at open; one of a newer format (a later
 * posagent wrote it), or an older one no migration leads from, is
 * refused (-EPROTONOSUPPORT) and left as it is.
 *
 * Tenants: the store never decodes a record. Each module that keeps
 * records here (the cache, the outbox, the journal) is a tenant: it owns
 * some of the databases and hands the store a pos_store_tenant_t whose
 * check callback judges, and counts, one record of them. The read walk at
 * open runs every record of a tenant's databases through that callback;
 * the records of a database no tenant owns are read but not judged.
 *
 * The struct is visible so the tenants can reach the environment and the
 * database handles; callers outside agent/store/{store,cache,outbox}.c and
 * agent/payment/journal.c use the functions only.
 */

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/store/wal.h"

#define POS_STORE_FORMAT       1u  /* format version written in the meta database */
#define POS_STORE_NAME_MAX     64  /* bytes of a moved-aside file's name */
#define POS_STORE_PATH_MAX     200 /* directory path bytes */
#define POS_STORE_DEFAULT_PATH "/var/lib/posagent"
#define POS_STORE_DEFAULT_MAP  (64u * 1024u * 1024u) /* bytes */

/* The named databases. */
typedef enum pos_store_db {
    POS_DB_META = 0,  /* "meta": format version, outbox id counter, drop counter */
    POS_DB_CACHE,     /* "cache": Redis key -> entry header + value */
    POS_DB_CACHE_LRU, /* "cache_lru": be64 access counter -> Redis key */
    POS_DB_OUTBOX,    /* "outbox": be64 id -> entry header + channel + payload */
    POS_DB_JOURNAL,   /* "journal": transaction id -> payment record */
    POS_DB_SEEN,      /* "seen": 'i' id -> be64 seq, and 'o' be64 seq -> id */
    POS_DB_COUNT
} pos_store_db_t;

/*
 * Called when a write hit MDB_MAP_FULL (or the disk is full), to free at
 * least "bytes" (a hint) in its own transaction. Returns the bytes freed
 * (0: nothing left to free) or a negative errno. The cache registers one.
 */
typedef long long (*pos_store_reclaim_fn)(void *ctx, size_t bytes);

/* The bit of database db in pos_store_tenant_t.dbs. */
#define POS_STORE_DB_BIT(db) (1u << (unsigned)(db))

/*
 * Judges one record of a tenant's database db (key and value as LMDB holds
 * them, valid during the call only) and counts it into census, the
 * tenant's own counters (NULL: judge only). Returns 0 for a well-formed
 * record, a negative errno (-EBADMSG) for one that does not parse. It may
 * count a record it refuses: the census of a refused walk is not used.
 */
typedef int (*pos_store_check_fn)(void *census, pos_store_db_t db, const MDB_val *key,
                                  const MDB_val *value);

/*
 * A tenant of the store, as its module describes itself (pos_cache_tenant(),
 * pos_outbox_tenant(), pos_journal_tenant()). The store keeps no copy: it
 * uses it during pos_store_open() or pos_store_count() only, writing
 * nothing but *census.
 */
typedef struct pos_store_tenant {
    uint32_t dbs;             /* POS_STORE_DB_BIT() of each database it owns; never META */
    pos_store_check_fn check; /* called on every record of those databases */
    void *census;             /* handed to check; zeroed before each walk; may be NULL */
    size_t census_size;       /* bytes of *census (ignored without one) */
} pos_store_tenant_t;

typedef struct pos_store_config {
    const char *path;  /* directory, created if missing (mode 0700); NULL: the default */
    uint64_t map_size; /* bytes; 0: POS_STORE_DEFAULT_MAP */
    const pos_store_tenant_t *tenants; /* whose records the walk at open judges and counts */
    size_t tenant_count;               /* entries of tenants; no two may own the same database */
} pos_store_config_t;

typedef struct pos_store {
    MDB_env *env;
    MDB_dbi dbi[POS_DB_COUNT];
    char path[POS_STORE_PATH_MAX + 1];
    uint64_t map_size;
    bool recovered;                         /* the store was found corrupt at open and rebuilt */
    char moved_to[POS_STORE_PATH_MAX + 64]; /* where the corrupt file went, or "" */
    char error[320];                        /* why the last pos_store_open() failed */
    pos_store_reclaim_fn reclaim;
    void *reclaim_ctx;
    /* Threads: once a writer thread serves the store (pos_store_set_writer_thread()),
     * only it may begin a write transaction, and the map is resized only while
     * no read transaction of another thread is in progress. */
    uv_rwlock_t map_lock;       /* held shared by readers, exclusive to resize */
    bool map_lock_ok;
    const uv_thread_t *writer;  /* the writer thread, or NULL */
    /* Room on the file system (see pos_store_txn_commit()). */
    uint64_t map_limit;     /* the map LMDB may use now: map_size, or less when the disk is low */
    uint64_t allocated_to;  /* data.mdb blocks are allocated up to here (beyond its end) */
    uint64_t disk_check_ms; /* monotonic ms of the last reserve attempt while low */
    bool disk_low;          /* the file system could not give the reserve */
    bool no_fallocate;      /* the file system cannot allocate ahead */
    uint64_t disk_full;     /* commits refused by the file system (ENOSPC, EDQUOT) */
    uint64_t disk_full_log_ms; /* monotonic ms of the last "disk full" log line */
    /* The write-ahead log (wal.h): the writer thread's once the store is open. */
    pos_wal_t wal;
    pos_wal_redo_t redo;   /* what the group being logged changes */
    /* Logged groups whose LMDB commit and re-apply both failed: applied
     * before anything else commits (pos_store_redo_unstick), and until then
     * nothing else may, so that no later commit's walseq passes them. */
    pos_wal_redo_t stuck;
    uint64_t stuck_seq;    /* their last record; 0: none */
    bool wal_on;           /* the log is open: LMDB commits with MDB_NOMETASYNC */
    bool wal_covered;      /* the commit under way is in the log (no full flush) */
    uint64_t wal_replayed; /* records applied again at open */
    uint64_t wal_damaged; /* at open: the log record found damaged before an intact one (0: none) */
    char wal_error[160];   /* why the store runs without its log, or "" */
    bool wal_held;         /* a log to set aside could not be renamed: payments wait this run */
} pos_store_t;

/*
 * Opens (creating if needed) the store in cfg->path and walks every record
 * of every database; each record of a database in cfg->tenants goes
 * through its tenant's check, and the tenant's census holds, on return,
 * what the store holds. A corrupt store (a record refused included) is
 * moved aside and replaced by an empty one (st->recovered, st->moved_to),
 * whose walk leaves the censuses at zero. Returns 0, or a negative errno:
 * -EINVAL (bad argument, path too long, a tenant without check, owning
 * META or a database another owns), -EACCES/-EROFS/... from the file
 * system, -EIO when even a fresh store cannot be opened,
 * -EPROTONOSUPPORT for a store of a format this agent cannot use (left as
 * it is), -ELOOP when data.mdb or lock.mdb is a symbolic link. On failure
 * st->error says why in a sentence.
 */
int pos_store_open(pos_store_t *st, const pos_store_config_t *cfg);

/*
 * The stores moved aside in dir and not yet dealt with: the names
 * ("data.mdb.corrupt-<epoch>[-<n>]") of at most max of them, in name
 * order, into names. Returns how many there are (all of them, even past
 * max), or a negative errno.
 */
int pos_store_moved_aside(const char *dir, char (*names)[POS_STORE_NAME_MAX], size_t max);

/* True when name is that of a store moved aside and not yet dealt with,
 * or of a write-ahead log set aside unapplied (wal.failed-*, wal.damaged-*). */
bool pos_store_is_moved_aside(const char *name);

/*
 * Opens an LMDB file (a store moved aside) read only, without its lock
 * file and without changing it: for salvage, in a process of its own (a
 * damaged file may crash its reader). The databases must all be there.
 * Returns 0 (close with pos_store_close()), -ENODATA for an empty file,
 * -ENOENT when a database is missing, or a negative errno.
 */
int pos_store_open_file_readonly(pos_store_t *st, const char *file);

/*
 * Counts a tenant's records as they are now, e.g. when the tenant opens
 * some time after the store: zeroes t->census, then runs t->check over
 * every record of t->dbs in one read transaction. A record the check
 * refuses is passed over, not an error (the walk at open moved any store
 * holding one aside). Returns 0, -EINVAL, or a negative errno from LMDB.
 */
int pos_store_count(pos_store_t *st, const pos_store_tenant_t *t);

/* Closes the environment (all sibling modules must be closed first). Safe on a closed store. */
void pos_store_close(pos_store_t *st);

/*
 * Begins a transaction (flags 0 or MDB_RDONLY). Returns 0 or a negative
 * errno (LMDB codes translated with pos_store_errno()); -EDEADLK for a
 * write begun outside the writer thread while one serves the store (the
 * loop must never wait on the disk). A read transaction holds the map:
 * end it with pos_store_txn_end() (or reset it with pos_store_txn_reset()).
 */
int pos_store_txn_begin(pos_store_t *st, unsigned flags, MDB_txn **txn);

/* Ends a read transaction begun with pos_store_txn_begin(st, MDB_RDONLY, ...). */
void pos_store_read_end(pos_store_t *st, MDB_txn *txn);

/* Resets a read transaction for a later pos_store_read_renew() (it then
 * holds no snapshot, and does not hold the map). */
void pos_store_read_reset(pos_store_t *st, MDB_txn *txn);

/* Renews a reset read transaction. Returns 0 or a negative errno. */
int pos_store_read_renew(pos_store_t *st, MDB_txn *txn);

/*
 * Declares the thread that alone writes from now on (NULL: the calling
 * thread again, e.g. after the writer stopped). See pos_store_t.
 */
void pos_store_set_writer_thread(pos_store_t *st, const uv_thread_t *writer);

/*
 * Commits a write transaction (durable on return). Returns 0, -ENOSPC when
 * the map or the disk is full, or another negative errno.
 *
 * A full file system must not become a store that cannot even delete
 * (LMDB copies on write, so freeing room needs free pages first). After
 * every commit the store keeps the same reserve as pos_store_reserve_begin()
 * uses allocated beyond the end of data.mdb (fallocate, FALLOC_FL_KEEP_SIZE).
 * When the file system cannot give it, the store is "low": the map is
 * capped at what the file holds, so further growth is MAP_FULL, which the
 * cache answers by evicting (into the reserve) and the outbox by dropping
 * what it may; payment outcomes and the journal keep their room. Logged as
 * an error at most once a minute, counted in st->disk_full; retried every
 * 10 s, and the full map comes back when the file system has room again.
 * File systems without fallocate (UBIFS, FAT) get no reserve: there a full
 * disk is only as recoverable as LMDB's free pages make it.
 */
int pos_store_txn_commit(MDB_txn *txn);

/* The work of one transaction: returns 0 to commit it, a negative errno to abort it. */
typedef int (*pos_store_txn_fn)(void *ctx, MDB_txn *txn);

/*
 * Runs fn(ctx, txn) in a transaction of its own, begun with flags (0: a
 * write, MDB_RDONLY: a read). A write is committed with
 * pos_store_txn_commit() (durable on return) when fn returned 0, and
 * aborted otherwise; a read is always aborted (ended). The tenants write
 * through it and change their in-memory counters only after it returned 0.
 * Returns 0, the begin's error, fn's, or the commit's (-ENOSPC: full).
 */
int pos_store_txn_run(pos_store_t *st, unsigned flags, pos_store_txn_fn fn, void *ctx);

/*
 * What pos_store_each() does with one record: key and value as LMDB holds
 * them (valid until the next write), cur positioned on the record (for
 * mdb_cursor_put() with MDB_CURRENT, or mdb_cursor_del()). Returns 0 to go
 * on to the next record, anything else to stop the walk there.
 */
typedef int (*pos_store_each_fn)(void *ctx, MDB_cursor *cur, MDB_val *key, MDB_val *value);

/*
 * Hands every record of database db to fn(ctx, ...), in key order, inside
 * txn. Returns 0 at the end of the database, fn's value when fn stopped the
 * walk (a positive value thus stops it without an error), or a negative
 * errno when LMDB failed (pos_store_errno()).
 */
int pos_store_each(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, pos_store_each_fn fn,
                   void *ctx);

/* pos_store_each() from the first key >= from (from_len bytes) on. */
int pos_store_each_from(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, const void *from,
                        size_t from_len, pos_store_each_fn fn, void *ctx);

/*
 * Translates an LMDB or system return code into 0 or a negative errno:
 * MDB_MAP_FULL and ENOSPC -> -ENOSPC, MDB_NOTFOUND -> -ENOENT, MDB_KEYEXIST
 * -> -EEXIST, MDB_BAD_VALSIZE -> -EMSGSIZE, corruption codes -> -EIO,
 * MDB_READERS_FULL/MDB_TXN_FULL/MDB_CURSOR_FULL -> -EAGAIN, others -> -EIO.
 */
int pos_store_errno(int mdb_rc);

/* True when an LMDB return code means the file is damaged or not ours. */
bool pos_store_is_corruption(int mdb_rc);

/*
 * Asks the registered reclaimer (the cache) to free about "bytes".
 * Returns the bytes freed, 0 when none could be (or no reclaimer), or a
 * negative errno.
 */
long long pos_store_reclaim(pos_store_t *st, size_t bytes);

/*
 * Commits a one-record transaction so that pages freed by the previous
 * commit become reusable by the next one: LMDB hands out a transaction's
 * freed pages only two commits later. Called after an eviction or a drop
 * made room in a full map, before the retry. Returns 0 or a negative errno.
 */
int pos_store_settle(pos_store_t *st);

/*
 * Deleting needs free pages too (LMDB copies on write), so a map that is
 * completely full cannot even drop entries. For a deletion only, the map
 * is grown by a small reserve (a sixteenth, at least 256 KiB) and set back
 * right after; the file may end up that much larger than map_size, never
 * more. Returns 0 or a negative errno; end is harmless without begin.
 * No transaction may be open in this process.
 */
int pos_store_reserve_begin(pos_store_t *st);
void pos_store_reserve_end(pos_store_t *st);

/*
 * True while the store is short of room: the file system could not give
 * the reserve (the store is low), or a deletion took pages of the reserve,
 * which stay in the file for good (LMDB never gives pages back, and keeps
 * the map at least as large as the pages in use). The reserve is then not
 * there for the next deletion: the room an eviction made must stay free
 * (the cache does not grow back into it). For the thread that writes.
 */
bool pos_store_short_of_room(pos_store_t *st);

/*
 * The writes: mdb_put(), mdb_del(), mdb_cursor_del() and mdb_cursor_put()
 * on database db, each also noted in the redo of the group being logged.
 * Return codes are LMDB's (0, MDB_* or a positive errno; ENOMEM when the
 * redo could not grow). A put with MDB_RESERVE is noted only once its
 * value is written: the caller then calls pos_store_redo_put() with it.
 */
int pos_store_put(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, MDB_val *key, MDB_val *value,
                  unsigned flags);
int pos_store_del(pos_store_t *st, MDB_txn *txn, pos_store_db_t db, MDB_val *key);
int pos_store_cursor_del(pos_store_t *st, MDB_cursor *cur, pos_store_db_t db);
int pos_store_cursor_put(pos_store_t *st, MDB_cursor *cur, pos_store_db_t db, MDB_val *key,
                         MDB_val *value, unsigned flags);
int pos_store_redo_put(pos_store_t *st, pos_store_db_t db, const MDB_val *key,
                       const MDB_val *value);

/* For the writer thread: applies the redo of the group just logged as
 * record seq again, in a transaction of its own (its commit failed).
 * Returns 0 or a negative errno. */
int pos_store_redo_reapply(pos_store_t *st, uint64_t seq);

/* For the writer thread, when that re-apply failed too: keeps the redo
 * (records up to seq, all flushed in the log) as st->stuck. */
void pos_store_redo_keep(pos_store_t *st, uint64_t seq);

/* For the writer thread, with no transaction open, before any commit:
 * applies what pos_store_redo_keep() kept. Returns 0 (also with nothing
 * kept) or a negative errno: then nothing else may be committed. */
int pos_store_redo_unstick(pos_store_t *st);

/*
 * For the writer thread, with no transaction open: flushes LMDB in full
 * (mdb_env_sync) and starts the log afresh (a new generation). Nothing
 * without a log. Returns 0 or a negative errno.
 */
int pos_store_checkpoint(pos_store_t *st);

/* Reads a u64 from the meta database (0 when absent). Returns 0 or a negative errno. */
int pos_store_meta_get(pos_store_t *st, MDB_txn *txn, const char *name, uint64_t *value);

/* Writes a u64 into the meta database inside txn. Returns 0 or a negative errno. */
int pos_store_meta_put(pos_store_t *st, MDB_txn *txn, const char *name, uint64_t value);

#endif /* AGENT_STORE_STORE_H */
