#include "agent/store/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "platform/endian.h"
#include "platform/files.h"

#define WAL_MAGIC     "POSWAL01"
#define WAL_REC_MAGIC "PWR1"
#define WAL_HDR_BYTES 20u /* magic, generation, CRC */
#define WAL_ENTRY_HDR 10u /* kind, database, key length, value length */

/* ---- CRC-32C ---------------------------------------------------------- */

static uint32_t crc_table[256];
static bool crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[i] = c;
    }
    crc_ready = true;
}

uint32_t pos_wal_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (!crc_ready) {
        crc_init(); /* first from pos_wal_open(), on the loop thread, before the writer starts */
    }
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    }
    return ~crc;
}

/* ---- I/O ------------------------------------------------------------------ */

static int wal_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int wal_pread(int fd, void *buf, size_t len, uint64_t off)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int wal_sync(int fd)
{
    while (fdatasync(fd) != 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* Reads the header's generation; -EBADMSG when it is not a valid header. */
static int header_read(int fd, uint64_t *generation)
{
    unsigned char h[WAL_HDR_BYTES];
    int rc = wal_pread(fd, h, sizeof(h), 0);

    if (rc != 0) {
        return rc;
    }
    if (memcmp(h, WAL_MAGIC, 8) != 0 ||
        pos_endian_get_le32(h + 16) != pos_wal_crc32c(0, h, 16)) {
        return -EBADMSG;
    }
    *generation = pos_endian_get_le64(h + 8);
    return 0;
}

static int header_write(pos_wal_t *w, uint64_t generation)
{
    unsigned char block[512];

    memset(block, 0, sizeof(block));
    memcpy(block, WAL_MAGIC, 8);
    pos_endian_put_le64(block + 8, generation);
    pos_endian_put_le32(block + 16, pos_wal_crc32c(0, block, 16));
    int rc = wal_pwrite(w->fd, block, sizeof(block), 0);
    if (rc == 0) {
        rc = wal_sync(w->fd);
    }
    if (rc == 0) {
        w->generation = generation;
        w->offset = POS_WAL_BLOCK;
    }
    return rc;
}

/* Writes the whole file once (zeros), so records overwrite allocated blocks. */
static int wal_fill(int fd)
{
    const size_t chunk = 64u * 1024u;
    unsigned char *zeros = calloc(1, chunk);
    int rc = 0;

    if (zeros == NULL) {
        return -ENOMEM;
    }
    if (ftruncate(fd, 0) != 0) {
        rc = -errno;
    }
    for (uint64_t off = 0; rc == 0 && off < POS_WAL_SIZE; off += chunk) {
        rc = wal_pwrite(fd, zeros, chunk, off);
    }
    free(zeros);
    return rc != 0 ? rc : wal_sync(fd);
}

/* A generation nobody used in this file: after old, or from the clock. */
static uint64_t fresh_generation(bool have_old, uint64_t old)
{
    if (have_old) {
        return old + 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
}

int pos_wal_open(pos_wal_t *w, const char *dir)
{
    char path[512];
    struct stat sb;
    uint64_t generation = 0;
    int rc;

    memset(w, 0, sizeof(*w));
    w->fd = -1;
    (void)pos_wal_crc32c(0, "", 0); /* the table, on this thread */
    if ((size_t)snprintf(path, sizeof(path), "%s/" POS_WAL_FILE, dir) >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int fd = pos_file_open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        return fd;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        goto fail;
    }
    w->fd = fd;
    if ((uint64_t)sb.st_size == POS_WAL_SIZE) {
        rc = header_read(fd, &generation);
        if (rc == 0) {
            w->generation = generation;
            w->offset = POS_WAL_BLOCK;
            return 0;
        }
        if (rc != -EBADMSG) {
            /* The disk failed the read (EIO): it may hold records LMDB
             * lacks. Left as it is, for the caller to set aside. */
            w->unreadable = true;
            goto fail;
        }
    }
    /* New, or not one this agent can read: nothing in it is trusted. */
    bool had = (uint64_t)sb.st_size >= WAL_HDR_BYTES && header_read(fd, &generation) == 0;
    rc = wal_fill(fd);
    if (rc == 0) {
        rc = header_write(w, fresh_generation(had, generation));
    }
    if (rc == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd); /* the new file's entry */
            close(dfd);
        }
        return 0;
    }
fail:
    close(fd);
    w->fd = -1;
    if (rc == -ENOSPC || rc == -EDQUOT) {
        (void)unlink(path); /* a part of a log is of no use; the room is */
    }
    return rc;
}

uint64_t pos_wal_record_size(size_t payload_len)
{
    uint64_t n = POS_WAL_RECORD_HDR + (uint64_t)payload_len;
    return (n + POS_WAL_BLOCK - 1) / POS_WAL_BLOCK * POS_WAL_BLOCK;
}

bool pos_wal_fits(const pos_wal_t *w, size_t payload_len)
{
    return w->fd >= 0 && payload_len <= POS_WAL_PAYLOAD_MAX &&
           w->offset + pos_wal_record_size(payload_len) <= POS_WAL_SIZE;
}

/* The CRC of a record: generation, sequence, length, payload. */
static uint32_t record_crc(const unsigned char *hdr, const void *payload, size_t len)
{
    uint32_t crc = pos_wal_crc32c(0, hdr + 8, 16); /* generation, sequence */
    crc = pos_wal_crc32c(crc, hdr + 4, 4);         /* length */
    return pos_wal_crc32c(crc, payload, len);
}

int pos_wal_append(pos_wal_t *w, uint64_t seq, const void *payload, size_t len)
{
    if (!pos_wal_fits(w, len)) {
        return w->fd < 0 ? -EBADF : -ENOSPC;
    }
    size_t total = (size_t)pos_wal_record_size(len);
    unsigned char *rec = calloc(1, total);
    if (rec == NULL) {
        return -ENOMEM;
    }
    memcpy(rec, WAL_REC_MAGIC, 4);
    pos_endian_put_le32(rec + 4, (uint32_t)len);
    pos_endian_put_le64(rec + 8, w->generation);
    pos_endian_put_le64(rec + 16, seq);
    if (len != 0) {
        memcpy(rec + POS_WAL_RECORD_HDR, payload, len);
    }
    pos_endian_put_le32(rec + 24, record_crc(rec, rec + POS_WAL_RECORD_HDR, len));
    int rc = wal_pwrite(w->fd, rec, total, w->offset);
    free(rec);
    if (rc == 0) {
        rc = wal_sync(w->fd);
    }
    if (rc != 0) {
        return rc;
    }
    w->offset += total;
    w->next_seq = seq + 1;
    w->records++;
    return 0;
}

int pos_wal_reset(pos_wal_t *w)
{
    if (w->fd < 0) {
        return -EBADF;
    }
    int rc = header_write(w, w->generation + 1);
    if (rc == 0) {
        w->checkpoints++;
    }
    return rc;
}

void pos_wal_close(pos_wal_t *w)
{
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
}

/* ---- replay ------------------------------------------------------------------ */

int pos_wal_redo_apply(const void *payload, size_t len, pos_wal_apply_fn apply, void *ctx)
{
    const unsigned char *p = payload;
    size_t off = 0;

    while (off < len) {
        if (len - off < WAL_ENTRY_HDR) {
            return -EBADMSG;
        }
        char kind = (char)p[off];
        unsigned db = p[off + 1];
        uint32_t klen = pos_endian_get_le32(p + off + 2);
        uint32_t vlen = pos_endian_get_le32(p + off + 6);
        off += WAL_ENTRY_HDR;
        if ((kind != 'P' && kind != 'D') || klen == 0 || klen > len - off ||
            vlen > len - off - klen || (kind == 'D' && vlen != 0)) {
            return -EBADMSG;
        }
        int rc = apply(ctx, kind, db, p + off, klen, p + off + klen, vlen);
        if (rc != 0) {
            return rc > 0 ? -rc : -EIO;
        }
        off += (size_t)klen + vlen;
    }
    return 0;
}

/* Reads the header of the record at off into hdr: true when one of this
 * generation starts there and fits the file, *len its payload's length. */
static bool record_header(const pos_wal_t *w, uint64_t off, unsigned char *hdr, uint32_t *len)
{
    if (off + POS_WAL_RECORD_HDR > POS_WAL_SIZE ||
        wal_pread(w->fd, hdr, POS_WAL_RECORD_HDR, off) != 0 || memcmp(hdr, WAL_REC_MAGIC, 4) != 0 ||
        pos_endian_get_le64(hdr + 8) != w->generation) {
        return false;
    }
    *len = pos_endian_get_le32(hdr + 4);
    return *len <= POS_WAL_PAYLOAD_MAX && off + pos_wal_record_size(*len) <= POS_WAL_SIZE;
}

/* Reads the payload (len bytes) of the record at off into buf: true when
 * its checksum is right. */
static bool record_payload(const pos_wal_t *w, uint64_t off, const unsigned char *hdr,
                           unsigned char *buf, uint32_t len)
{
    return wal_pread(w->fd, buf, len, off + POS_WAL_RECORD_HDR) == 0 &&
           record_crc(hdr, buf, len) == pos_endian_get_le32(hdr + 24);
}

/* Whether the record at off is whole: this generation's, of sequence seq, its checksum right. */
static bool wal_record_intact(const pos_wal_t *w, uint64_t off, uint64_t seq)
{
    unsigned char hdr[POS_WAL_RECORD_HDR];
    uint32_t len;
    if (!record_header(w, off, hdr, &len) || pos_endian_get_le64(hdr + 16) != seq) {
        return false;
    }
    unsigned char *buf = malloc(len != 0 ? len : 1);
    bool ok = buf != NULL && record_payload(w, off, hdr, buf, len);
    free(buf);
    return ok;
}

long pos_wal_replay(pos_wal_t *w, uint64_t after, pos_wal_apply_fn apply, void *ctx,
                    uint64_t *last)
{
    long applied = 0;
    uint64_t off = POS_WAL_BLOCK, expect = 0;
    unsigned char *buf = NULL;
    int rc = 0;

    *last = after;
    w->damaged_seq = 0;
    if (w->fd < 0) {
        return 0;
    }
    while (off + POS_WAL_RECORD_HDR <= POS_WAL_SIZE) {
        unsigned char hdr[POS_WAL_RECORD_HDR];
        uint32_t len;
        if (!record_header(w, off, hdr, &len)) {
            break;
        }
        uint64_t seq = pos_endian_get_le64(hdr + 16);
        if (expect != 0 && seq != expect) {
            break;
        }
        unsigned char *nb = realloc(buf, len != 0 ? len : 1);
        if (nb == NULL) {
            rc = -ENOMEM;
            break;
        }
        buf = nb;
        if (!record_payload(w, off, hdr, buf, len)) {
            /* Torn: the write that was under way when the power went. Unless
             * the next record is whole: then the disk damaged this one. */
            if (wal_record_intact(w, off + pos_wal_record_size(len), seq + 1)) {
                w->damaged_seq = seq;
            }
            break;
        }
        if (seq > after) {
            rc = pos_wal_redo_apply(buf, len, apply, ctx);
            if (rc != 0) {
                break;
            }
            applied++;
        }
        if (seq > *last) {
            *last = seq;
        }
        expect = seq + 1;
        off += pos_wal_record_size(len);
    }
    free(buf);
    w->offset = off;
    w->next_seq = (*last) + 1;
    return rc != 0 ? rc : applied;
}

/* ---- redo ---------------------------------------------------------------------- */

int pos_wal_redo_add(pos_wal_redo_t *r, char kind, unsigned db, const void *key, size_t key_len,
                     const void *value, size_t value_len)
{
    if (!r->on || r->overflow) {
        return 0;
    }
    size_t need = WAL_ENTRY_HDR + key_len + value_len;
    /* The bound is a record's: the running group's redo, not the batch's. */
    if (key_len > POS_WAL_PAYLOAD_MAX || value_len > POS_WAL_PAYLOAD_MAX ||
        r->len - r->start + need > POS_WAL_PAYLOAD_MAX) {
        r->overflow = true;
        return 0;
    }
    if (r->len + need > r->cap) {
        size_t cap = r->cap != 0 ? r->cap : 4096;
        while (cap < r->len + need) {
            cap *= 2;
        }
        unsigned char *nb = realloc(r->buf, cap);
        if (nb == NULL) {
            return -ENOMEM;
        }
        r->buf = nb;
        r->cap = cap;
    }
    unsigned char *p = r->buf + r->len;
    p[0] = (unsigned char)kind;
    p[1] = (unsigned char)db;
    pos_endian_put_le32(p + 2, (uint32_t)key_len);
    pos_endian_put_le32(p + 6, (uint32_t)value_len);
    memcpy(p + WAL_ENTRY_HDR, key, key_len);
    if (value_len != 0) {
        memcpy(p + WAL_ENTRY_HDR + key_len, value, value_len);
    }
    r->len += need;
    return 0;
}

void pos_wal_redo_free(pos_wal_redo_t *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}
