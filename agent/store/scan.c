#include "agent/store/scan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LMDB 0.9's file format (mdb.c, data version 1): what the walk needs. */
#define MDB_MAGIC        0xBEEFC0DEu
#define MDB_DATA_VERSION 1u
#define P_BRANCH         0x01u
#define P_LEAF           0x02u
#define P_OVERFLOW       0x04u
#define P_META           0x08u
#define P_LEAF2          0x20u
#define F_BIGDATA        0x01u /* the value is on overflow pages */
#define F_SUBDATA        0x02u /* the value is a named database's record */
#define P_INVALID        (~(size_t)0)
/* A page: its number (pgno_t, a size_t), pad, flags, then lower and upper
 * bounds of its free space (or an overflow run's page count), then the
 * offsets of its nodes. */
#define PAGEHDRSZ (sizeof(size_t) + 8u)
/* A node: lo, hi (the value's size, or a branch's child page with flags as
 * its top bits), flags, key size, then the key and the value. */
#define NODESIZE 8u

typedef struct mdb_db {
    uint32_t pad; /* the page size, in the free list's record */
    uint16_t flags;
    uint16_t depth;
    size_t branch_pages;
    size_t leaf_pages;
    size_t overflow_pages;
    size_t entries;
    size_t root;
} mdb_db_t;

typedef struct mdb_meta {
    uint32_t magic;
    uint32_t version;
    void *address;
    size_t mapsize;
    mdb_db_t dbs[2]; /* the free list, the main database */
    size_t last_pgno;
    size_t txnid;
} mdb_meta_t;

#define DEPTH_MAX 32          /* LMDB's own cursor stack holds as many */
#define VALUE_MAX (64u << 20) /* no value of the store comes near */

typedef int (*node_fn)(void *ctx, const void *key, size_t key_len, const void *value,
                       size_t value_len, unsigned flags);

typedef struct walk {
    pos_scan_t *sc;
    node_fn fn;
    void *ctx;
    pos_scan_stats_t *stats;
    uint64_t visited;
} walk_t;

static uint16_t get16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* A node's lo and hi halves, as LMDB lays them out in this byte order. */
static uint32_t node_lohi(const unsigned char *node)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (uint32_t)get16(node + 2) | (uint32_t)get16(node) << 16;
#else
    return (uint32_t)get16(node) | (uint32_t)get16(node + 2) << 16;
#endif
}

static int read_at(const pos_scan_t *sc, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(sc->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* Pages a walk read: the scan of what is left over passes them by. */
static void mark(pos_scan_t *sc, uint64_t pgno, uint64_t count)
{
    for (uint64_t p = pgno; p < pgno + count && p < sc->pages; p++) {
        sc->reached[p / 8] |= (uint8_t)(1u << (p % 8));
    }
}

static bool reached(const pos_scan_t *sc, uint64_t pgno)
{
    return (sc->reached[pgno / 8] & (1u << (pgno % 8))) != 0;
}

/* Reads the value of a node on overflow pages from pgno: 0, 1 (pages
 * missing) or -1 (bad); *out malloc'd. */
static int read_overflow(walk_t *w, uint64_t pgno, size_t len, unsigned char **out)
{
    pos_scan_t *sc = w->sc;
    uint64_t count = (PAGEHDRSZ + len + sc->psize - 1) / sc->psize;
    unsigned char hdr[PAGEHDRSZ];
    size_t hdr_pgno;
    uint32_t pages;

    if (pgno < 2 || pgno > sc->last_pgno || len > VALUE_MAX ||
        pgno + count - 1 > sc->last_pgno) { /* (the first test keeps the sum from wrapping) */
        return -1;
    }
    if (pgno + count > sc->pages) {
        return 1;
    }
    if (read_at(sc, hdr, sizeof(hdr), pgno * sc->psize) != 0) {
        return -1;
    }
    memcpy(&hdr_pgno, hdr, sizeof(hdr_pgno));
    memcpy(&pages, hdr + sizeof(size_t) + 4, sizeof(pages));
    if (hdr_pgno != pgno || (get16(hdr + sizeof(size_t) + 2) & P_OVERFLOW) == 0 || pages < count) {
        return -1;
    }
    *out = malloc(len > 0 ? len : 1);
    if (*out == NULL || read_at(sc, *out, len, pgno * sc->psize + PAGEHDRSZ) != 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    mark(sc, pgno, count);
    return 0;
}

/* One leaf node at node (room bytes to the page's end): given to w->fn. */
static int leaf_node(walk_t *w, const unsigned char *node, size_t room)
{
    unsigned flags = get16(node + 4);
    size_t key_len = get16(node + 6);
    size_t len = node_lohi(node);
    unsigned char *big = NULL;
    const unsigned char *value = node + NODESIZE + key_len;
    int rc;

    if (NODESIZE + key_len > room) {
        w->stats->bad++;
        return 0;
    }
    if (flags & F_BIGDATA) {
        size_t pgno;
        if (NODESIZE + key_len + sizeof(pgno) > room) {
            w->stats->bad++;
            return 0;
        }
        memcpy(&pgno, value, sizeof(pgno));
        rc = read_overflow(w, pgno, len, &big);
        if (rc != 0) {
            w->stats->missing += rc > 0;
            w->stats->bad += rc < 0;
            return 0;
        }
        value = big;
    } else if (NODESIZE + key_len + len > room) {
        w->stats->bad++;
        return 0;
    }
    w->stats->read++;
    rc = w->fn(w->ctx, node + NODESIZE, key_len, value, len, flags);
    free(big);
    return rc;
}

/* Reads page pgno (in the file) into page: 0, or -1 when it is not a
 * branch or leaf page of that number with a sound layout. */
static int read_tree_page(const pos_scan_t *sc, uint64_t pgno, unsigned char *page)
{
    size_t hdr_pgno;
    if (read_at(sc, page, sc->psize, pgno * sc->psize) != 0) {
        return -1;
    }
    memcpy(&hdr_pgno, page, sizeof(hdr_pgno));
    unsigned flags = get16(page + sizeof(size_t) + 2);
    size_t lower = get16(page + sizeof(size_t) + 4), upper = get16(page + sizeof(size_t) + 6);
    if (hdr_pgno != pgno || (flags & (P_BRANCH | P_LEAF)) == 0 ||
        (flags & (P_OVERFLOW | P_META | P_LEAF2)) != 0 || lower < PAGEHDRSZ || lower > upper ||
        upper > sc->psize) {
        return -1;
    }
    return 0;
}

/* The subtree under page pgno, in key order (only the page itself when
 * !descend); what it cannot read skipped. */
static int walk_page(walk_t *w, uint64_t pgno, int depth, bool descend)
{
    pos_scan_t *sc = w->sc;
    int rc = 0;

    /* A sound tree visits each page once: more is a loop in a bad one. */
    if (depth > DEPTH_MAX || ++w->visited > sc->pages || pgno < 2 || pgno > sc->last_pgno) {
        w->stats->bad++;
        return 0;
    }
    if (pgno >= sc->pages) {
        w->stats->missing++;
        return 0;
    }
    unsigned char *page = malloc(sc->psize);
    if (page == NULL) {
        return -ENOMEM;
    }
    if (read_tree_page(sc, pgno, page) != 0) {
        w->stats->bad++;
        free(page);
        return 0;
    }
    mark(sc, pgno, 1);
    unsigned flags = get16(page + sizeof(size_t) + 2);
    size_t lower = get16(page + sizeof(size_t) + 4), upper = get16(page + sizeof(size_t) + 6);
    size_t n = (lower - PAGEHDRSZ) / 2;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t off = get16(page + PAGEHDRSZ + 2 * i);
        if (off < upper || off + NODESIZE > sc->psize) {
            w->stats->bad++;
            continue;
        }
        const unsigned char *node = page + off;
        if ((flags & P_BRANCH) != 0 && descend) {
            uint64_t child = node_lohi(node);
            if (sizeof(size_t) > 4) {
                child |= (uint64_t)get16(node + 4) << 32;
            }
            rc = walk_page(w, child, depth + 1, true);
        } else if ((flags & P_LEAF) != 0) {
            rc = leaf_node(w, node, sc->psize - off);
        }
    }
    free(page);
    return rc;
}

static int read_meta(pos_scan_t *sc, uint64_t off, mdb_meta_t *m)
{
    unsigned char buf[PAGEHDRSZ + sizeof(mdb_meta_t)];
    if (read_at(sc, buf, sizeof(buf), off) != 0 ||
        (get16(buf + sizeof(size_t) + 2) & P_META) == 0) {
        return -1;
    }
    memcpy(m, buf + PAGEHDRSZ, sizeof(*m));
    return m->magic == MDB_MAGIC && m->version == MDB_DATA_VERSION ? 0 : -1;
}

int pos_scan_open(pos_scan_t *sc, const char *file)
{
    struct stat sb;
    mdb_meta_t m0, m1, *m;

    memset(sc, 0, sizeof(*sc));
    sc->fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (sc->fd < 0) {
        return -errno;
    }
    if (fstat(sc->fd, &sb) != 0) {
        int err = -errno;
        pos_scan_close(sc);
        return err;
    }
    sc->file_size = (uint64_t)sb.st_size;
    /* The second meta page is one page (as the first names it) on. */
    int ok0 = read_meta(sc, 0, &m0);
    uint32_t psize = ok0 == 0 ? m0.dbs[0].pad : 0;
    bool sane = psize >= 512 && psize <= 65536 && (psize & (psize - 1)) == 0;
    int ok1 = sane ? read_meta(sc, psize, &m1) : -1;
    if (ok1 == 0 && m1.dbs[0].pad != psize) {
        ok1 = -1;
    }
    if (!sane || (ok0 != 0 && ok1 != 0)) {
        pos_scan_close(sc);
        return -EBADMSG;
    }
    /* LMDB reads the newer of the two. */
    m = ok1 == 0 && (ok0 != 0 || m1.txnid > m0.txnid) ? &m1 : &m0;
    sc->psize = psize;
    sc->last_pgno = m->last_pgno;
    sc->pages = sc->file_size / psize;
    sc->main_root = m->dbs[1].root == P_INVALID ? UINT64_MAX : m->dbs[1].root;
    sc->reached = calloc((size_t)(sc->pages / 8 + 1), 1);
    if (sc->reached == NULL) {
        pos_scan_close(sc);
        return -ENOMEM;
    }
    return 0;
}

bool pos_scan_short(const pos_scan_t *sc)
{
    return sc->file_size < (sc->last_pgno + 1) * sc->psize;
}

typedef struct find {
    const char *name;
    mdb_db_t db;
    bool found;
} find_t;

static int find_db(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len,
                   unsigned flags)
{
    find_t *f = ctx;
    if ((flags & F_SUBDATA) != 0 && key_len == strlen(f->name) &&
        memcmp(key, f->name, key_len) == 0 && value_len == sizeof(f->db)) {
        memcpy(&f->db, value, sizeof(f->db));
        f->found = true;
        return 1;
    }
    return 0;
}

typedef struct each {
    pos_scan_fn fn;
    void *ctx;
    pos_scan_stats_t *stats;
} each_t;

static int each_entry(void *ctx, const void *key, size_t key_len, const void *value,
                      size_t value_len, unsigned flags)
{
    each_t *e = ctx;
    if (flags & F_SUBDATA) { /* none in the store's databases: not an entry */
        e->stats->read--;
        e->stats->bad++;
        return 0;
    }
    return e->fn(e->ctx, key, key_len, value, value_len);
}

int pos_scan_db(pos_scan_t *sc, const char *name, pos_scan_fn fn, void *ctx,
                pos_scan_stats_t *stats)
{
    pos_scan_stats_t main_stats;
    find_t f;

    memset(stats, 0, sizeof(*stats));
    memset(&main_stats, 0, sizeof(main_stats));
    memset(&f, 0, sizeof(f));
    f.name = name;
    if (sc->main_root == UINT64_MAX) {
        return -ENOENT;
    }
    walk_t w = {sc, find_db, &f, &main_stats, 0};
    int rc = walk_page(&w, sc->main_root, 0, true);
    if (rc < 0) {
        return rc;
    }
    if (!f.found) {
        return main_stats.missing + main_stats.bad > 0 ? -ENODATA : -ENOENT;
    }
    stats->entries = f.db.entries;
    if (f.db.root == P_INVALID) {
        return 0;
    }
    each_t e = {fn, ctx, stats};
    walk_t dw = {sc, each_entry, &e, stats, 0};
    return walk_page(&dw, f.db.root, 0, true);
}

int pos_scan_unreached(pos_scan_t *sc, pos_scan_fn fn, void *ctx, pos_scan_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    each_t e = {fn, ctx, stats};
    int rc = 0;
    for (uint64_t pgno = 2; pgno < sc->pages && rc == 0; pgno++) {
        unsigned char hdr[PAGEHDRSZ];
        size_t hdr_pgno;
        uint32_t count;
        if (reached(sc, pgno) || read_at(sc, hdr, sizeof(hdr), pgno * sc->psize) != 0) {
            continue;
        }
        /* An overflow run's pages after its first hold a value, no header. */
        memcpy(&hdr_pgno, hdr, sizeof(hdr_pgno));
        memcpy(&count, hdr + sizeof(size_t) + 4, sizeof(count));
        if (hdr_pgno == pgno && (get16(hdr + sizeof(size_t) + 2) & P_OVERFLOW) != 0) {
            pgno += count > 0 ? count - 1 : 0;
            continue;
        }
        if (hdr_pgno != pgno || (get16(hdr + sizeof(size_t) + 2) & P_LEAF) == 0) {
            continue; /* a branch page, or one never written or in use otherwise */
        }
        /* Each page on its own: a walk of one page. */
        walk_t w = {sc, each_entry, &e, stats, 0};
        rc = walk_page(&w, pgno, 0, false);
    }
    return rc;
}

void pos_scan_close(pos_scan_t *sc)
{
    free(sc->reached);
    sc->reached = NULL;
    if (sc->fd >= 0) {
        close(sc->fd);
    }
    sc->fd = -1;
}
