#ifndef AGENT_STORE_STORE_H
#define AGENT_STORE_STORE_H

/*
 * The local store: one LMDB environment in a directory, holding the cache
 * (agent/store/cache.h), the outbox (agent/store/outbox.h) and the payment
 * journal (agent/payment/journal.h) in named databases. See docs/offline.md.
 *
 * Everything is synchronous and single-threaded: the agent calls these
 * from its loop, one small transaction per call. The environment is opened
 * with MDB_NOTLS and LMDB's default durability: every commit is fsync'd
 * before it returns, so a record the caller was told is written survives a
 * crash or a power cut. MDB_NOSYNC, MDB_NOMETASYNC and MDB_WRITEMAP are
 * deliberately not used (see docs/offline.md).
 *
 * Corruption: a store that LMDB refuses (MDB_INVALID, MDB_CORRUPTED,
 * MDB_PAGE_NOTFOUND, MDB_VERSION_MISMATCH, ...), whose file is shorter than
 * its meta page says, whose format version is not ours, or whose records
 * do not parse during the read walk at open, is moved aside to
 * "data.mdb.corrupt-<epoch>" with one log line, and an empty store is
 * created in its place.
 *
 * The struct is visible so the sibling modules can reach the environment
 * and the database handles; callers outside agent/{store,cache_store,
 * outbox,journal}.c use the functions only.
 */

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_STORE_FORMAT       1u  /* format version written in the meta database */
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

typedef struct pos_store_config {
    const char *path;  /* directory, created if missing (mode 0700); NULL: the default */
    uint64_t map_size; /* bytes; 0: POS_STORE_DEFAULT_MAP */
} pos_store_config_t;

/* What the read walk at open found. */
typedef struct pos_store_census {
    uint64_t cache_entries;
    uint64_t cache_bytes; /* key + header + value bytes */
    uint64_t cache_clock; /* highest access counter in use */
    uint64_t outbox_entries;
    uint64_t outbox_bytes;   /* channel + payload bytes */
    uint64_t outbox_payment; /* entries flagged as payment outcomes */
    uint64_t outbox_last_id; /* highest id present, 0: empty */
    uint64_t journal_records;
    uint64_t seen_ids;
    uint64_t seen_first_seq; /* oldest remembered sequence number, 0: none */
    uint64_t seen_last_seq;  /* newest, 0: none */
} pos_store_census_t;

typedef struct pos_store {
    MDB_env *env;
    MDB_dbi dbi[POS_DB_COUNT];
    char path[POS_STORE_PATH_MAX + 1];
    uint64_t map_size;
    bool recovered;                         /* the store was found corrupt at open and rebuilt */
    char moved_to[POS_STORE_PATH_MAX + 64]; /* where the corrupt file went, or "" */
    pos_store_census_t census;
    pos_store_reclaim_fn reclaim;
    void *reclaim_ctx;
    /* Room on the file system (see pos_store_txn_commit()). */
    uint64_t map_limit;     /* the map LMDB may use now: map_size, or less when the disk is low */
    uint64_t allocated_to;  /* data.mdb blocks are allocated up to here (beyond its end) */
    uint64_t disk_check_ms; /* monotonic ms of the last reserve attempt while low */
    bool disk_low;          /* the file system could not give the reserve */
    bool no_fallocate;      /* the file system cannot allocate ahead */
    uint64_t disk_full;     /* commits refused by the file system (ENOSPC, EDQUOT) */
    uint64_t disk_full_log_ms; /* monotonic ms of the last "disk full" log line */
} pos_store_t;

/*
 * Opens (creating if needed) the store in cfg->path. A corrupt store is
 * moved aside and replaced by an empty one (st->recovered, st->moved_to).
 * Returns 0, or a negative errno: -EINVAL (bad argument or path too long),
 * -EACCES/-EROFS/... from the file system, -EIO when even a fresh store
 * cannot be opened.
 */
int pos_store_open(pos_store_t *st, const pos_store_config_t *cfg);

/* Closes the environment (all sibling modules must be closed first). Safe on a closed store. */
void pos_store_close(pos_store_t *st);

/*
 * Begins a transaction (flags 0 or MDB_RDONLY). Returns 0 or a negative
 * errno (LMDB codes translated with pos_store_errno()).
 */
int pos_store_txn_begin(pos_store_t *st, unsigned flags, MDB_txn **txn);

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

/* Reads a u64 from the meta database (0 when absent). Returns 0 or a negative errno. */
int pos_store_meta_get(pos_store_t *st, MDB_txn *txn, const char *name, uint64_t *value);

/* Writes a u64 into the meta database inside txn. Returns 0 or a negative errno. */
int pos_store_meta_put(pos_store_t *st, MDB_txn *txn, const char *name, uint64_t value);

#endif /* AGENT_STORE_STORE_H */
