#ifndef AGENT_STORE_SCAN_H
#define AGENT_STORE_SCAN_H

/*
 * Reads a store's data.mdb without LMDB, page by page with pread(), for
 * salvage of a file cut short: LMDB maps the file, and the first touch of
 * a page past its end faults (SIGBUS), so nothing after it, nor anything
 * still to be listed, came back. Here every page number is checked against
 * the file's length before the page is read, and a page that is missing or
 * not what its parent says (a zero page, another page's number, a bad
 * layout) is skipped with what hangs below it; the walk goes on with the
 * next. Leaf pages no walk reached can then be read one by one, as found.
 * The file is opened read-only and never written.
 *
 * It knows LMDB 0.9's file format (data version 1) in the byte order and
 * word size of the LMDB this is built with, which wrote the file.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pos_scan {
    int fd;
    uint64_t file_size;
    uint64_t psize;     /* page size */
    uint64_t last_pgno; /* the last page the newer meta page names */
    uint64_t pages;     /* pages wholly in the file */
    uint64_t main_root; /* the main database's root page; UINT64_MAX: none */
    uint8_t *reached;   /* a bit per page in the file: read by a walk */
} pos_scan_t;

/* What the walk of one database met. */
typedef struct pos_scan_stats {
    uint64_t entries; /* the entries its record says it holds */
    uint64_t read;    /* entries given to the visitor */
    uint64_t missing; /* pages past the file's end it skipped */
    uint64_t bad;     /* pages in the file it skipped (not what their parent says) */
} pos_scan_stats_t;

/* Given each entry in key order; nonzero stops the walk (returned). */
typedef int (*pos_scan_fn)(void *ctx, const void *key, size_t key_len, const void *value,
                           size_t value_len);

/*
 * Opens file and reads its meta pages. Returns 0, -EBADMSG (not an LMDB
 * file of this format, or its meta pages unreadable) or a negative errno.
 */
int pos_scan_open(pos_scan_t *sc, const char *file);

/* True when the file ends before the last page its meta page names. */
bool pos_scan_short(const pos_scan_t *sc);

/*
 * Walks the named database, giving fn each entry it can read; *stats says
 * what it met. Returns 0, fn's nonzero value, -ENOENT (no such database),
 * -ENODATA (its record, or its root page, is on a page it cannot read).
 */
int pos_scan_db(pos_scan_t *sc, const char *name, pos_scan_fn fn, void *ctx,
                pos_scan_stats_t *stats);

/*
 * Gives fn each entry of each leaf page in the file that no walk so far
 * reached: pages whose index is missing, and older copies of pages no
 * longer in use. Which database an entry was in is not known: the caller
 * tells by its content. Returns 0 or fn's nonzero value.
 */
int pos_scan_unreached(pos_scan_t *sc, pos_scan_fn fn, void *ctx, pos_scan_stats_t *stats);

void pos_scan_close(pos_scan_t *sc);

#endif /* AGENT_STORE_SCAN_H */
