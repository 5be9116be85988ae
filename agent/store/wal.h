#ifndef AGENT_STORE_WAL_H
#define AGENT_STORE_WAL_H

/*
 * The store's write-ahead log: one flush per durable commit.
 *
 * An LMDB commit reaches the disk in two flushes: its pages (fdatasync),
 * then its meta page (an O_DSYNC write). The writer thread instead writes
 * what a group changes (its redo: every put and delete, in order) as one
 * record to this log, flushes it once, and tells the loop the group is
 * durable; the LMDB commit follows without the meta page's flush
 * (MDB_NOMETASYNC keeps LMDB consistent after a power cut; it may only
 * lose its last commits, which the log holds). docs/offline.md, "The
 * write-ahead log".
 *
 * The file "wal" in the store's directory has a fixed size, written in full
 * when it is created, so a record's flush never waits on the file system's
 * own metadata:
 *
 *   offset 0     header: "POSWAL01", generation (le64), CRC-32C of both (le32)
 *   offset 4096  records, each starting on a 4 KiB boundary, so that writing
 *                one never rewrites a block of an earlier one:
 *                "PWR1", payload bytes (le32), generation (le64),
 *                sequence (le64), CRC-32C (le32) of the generation,
 *                sequence, length and payload, 4 bytes zero, payload
 *
 * A checkpoint (LMDB flushed, mdb_env_sync) starts a new generation: the
 * header is rewritten and records start again at 4096; records of another
 * generation are ignored. At open, the records of the current generation
 * are read in order until one is missing, torn (CRC) or out of sequence;
 * those with a sequence above the one LMDB last committed ("walseq" in its
 * meta database, written by each logged group) are applied again.
 *
 * Redo payload: entries of
 *   kind (1 byte: 'P' put, 'D' delete), database (1 byte, pos_store_db_t),
 *   key length (le32), value length (le32, 0 for a delete), key, value
 *
 * Not thread-safe: the store's writer thread owns it once the store is open.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_WAL_FILE        "wal"
#define POS_WAL_SIZE        (2u * 1024u * 1024u) /* bytes of the file */
#define POS_WAL_BLOCK       4096u                /* header block; records start on these */
#define POS_WAL_RECORD_HDR  32u                  /* bytes before a record's payload */
/* The largest payload a record carries: a group that changes more commits
 * the LMDB way (two flushes), a bulk cache fill for instance. */
#define POS_WAL_PAYLOAD_MAX (64u * 1024u)

typedef struct pos_wal {
    int fd;               /* -1: closed */
    uint64_t generation;  /* of the header on disk */
    uint64_t offset;      /* where the next record goes */
    uint64_t next_seq;    /* the next record's sequence */
    uint64_t records;     /* written since open */
    uint64_t checkpoints; /* generations started since open */
    uint64_t damaged_seq; /* the last replay: a damaged record with an intact one after it */
    bool unreadable;      /* the last open: the file is there but reading it failed */
} pos_wal_t;

/* A redo buffer: what one group changes, built in the writer thread. */
typedef struct pos_wal_redo {
    unsigned char *buf;
    size_t len, cap;
    size_t start;  /* where the running group's redo begins (a batch holds several) */
    bool on;       /* capturing (a logged group is running) */
    bool overflow; /* it grew past POS_WAL_PAYLOAD_MAX: the group is not logged */
} pos_wal_redo_t;

/* Applies one redo entry; returns 0 or an LMDB/errno code (positive or MDB_*). */
typedef int (*pos_wal_apply_fn)(void *ctx, char kind, unsigned db, const void *key,
                                size_t key_len, const void *value, size_t value_len);

/*
 * Opens (creating, POS_WAL_SIZE bytes written in full and flushed) the log
 * in directory dir. Refuses a symbolic link or a non-regular file
 * (-ELOOP, -EINVAL). A file of another size or whose header is not one
 * (bad magic or CRC) is started afresh (nothing in it can be trusted). A
 * file whose header the disk fails to read (EIO) is left untouched, with
 * w->unreadable set: its records may be ones LMDB lacks. Returns 0 or a
 * negative errno (then w->fd is -1 and the store runs without a log).
 */
int pos_wal_open(pos_wal_t *w, const char *dir);

/*
 * Calls apply for every entry of every record of the current generation
 * whose sequence is above after, in order, stopping at the first missing,
 * torn or out-of-sequence record. A damaged record followed by the intact
 * next one is not a write torn by a power cut (the log is written in
 * order, each record flushed before the next is begun) but the disk
 * changing what it held: the replay stops there as well, and
 * w->damaged_seq says so (0 otherwise). *last gets the last sequence found
 * (after when none). Returns the number of records applied, or a negative
 * errno (-EBADMSG: a record's payload does not parse; or apply's error,
 * as a negative errno).
 */
long pos_wal_replay(pos_wal_t *w, uint64_t after, pos_wal_apply_fn apply, void *ctx,
                    uint64_t *last);

/* Bytes a record of payload_len bytes takes in the file. */
uint64_t pos_wal_record_size(size_t payload_len);

/* True when a record of payload_len bytes fits after the last one. */
bool pos_wal_fits(const pos_wal_t *w, size_t payload_len);

/*
 * Writes a record of sequence seq (w->next_seq, then advanced) and flushes
 * it (fdatasync). Returns 0 once it is durable, -ENOSPC when it does not
 * fit (checkpoint first), or a negative errno from the file system.
 */
int pos_wal_append(pos_wal_t *w, uint64_t seq, const void *payload, size_t len);

/*
 * Starts a new generation: the header is rewritten and flushed, and the
 * next record goes at POS_WAL_BLOCK. Only once what the log held is
 * durable elsewhere (LMDB flushed). Returns 0 or a negative errno.
 */
int pos_wal_reset(pos_wal_t *w);

void pos_wal_close(pos_wal_t *w);

/* Redo capture. pos_wal_redo_add() returns 0, or -ENOMEM (the group then
 * fails as any write would); past POS_WAL_PAYLOAD_MAX it stops capturing
 * and sets overflow instead. */
int pos_wal_redo_add(pos_wal_redo_t *r, char kind, unsigned db, const void *key, size_t key_len,
                     const void *value, size_t value_len);
void pos_wal_redo_free(pos_wal_redo_t *r);

/* Calls apply for each entry of a redo payload, in order. Returns 0,
 * -EBADMSG when it does not parse, or apply's error as a negative errno. */
int pos_wal_redo_apply(const void *payload, size_t len, pos_wal_apply_fn apply, void *ctx);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (0 to start). */
uint32_t pos_wal_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* AGENT_STORE_WAL_H */
