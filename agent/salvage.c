#include "agent/salvage.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/instance.h"
#include "agent/payment/journal.h"
#include "agent/store/outbox.h"
#include "agent/store/scan.h"
#include "agent/store/store.h"
#include "platform/endian.h"
#include "platform/files.h"
#include "platform/lockfile.h"
#include "platform/log.h"
#include "platform/mem.h"

#define EX_USAGE_CODE 64

/* What the reader (a child process) sends the command: frames of a kind
 * byte, a 32-bit little-endian length and that many bytes. */
enum {
    FRAME_OUTBOX = 'O',  /* header (below), channel, payload */
    FRAME_JOURNAL = 'J', /* a record as pos_journal_encode() writes it */
    FRAME_ERROR = 'E',   /* text: why the reader stopped */
    FRAME_SUMMARY = 'S', /* text: what the reader found of a database, printed as it is */
};

#define OUTBOX_FRAME_HDR                                                                           \
    28 /* kind, is_payment, sign, pad, created_ms, id, channel_len, payload_len */
#define FRAME_MAX      (OUTBOX_FRAME_HDR + POS_OUTBOX_CHANNEL_MAX + POS_OUTBOX_PAYLOAD_MAX)
#define READER_SECONDS 120 /* a damaged file must not keep the reader for ever */

typedef struct frame {
    struct frame *next;
    char kind;
    uint32_t len;
    unsigned char data[];
} frame_t;

/* ---- the reader (child process) -------------------------------------------- */

static int send_frame(int fd, char kind, const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char hdr[5];
    uint32_t len = (uint32_t)(alen + blen);

    hdr[0] = (unsigned char)kind;
    pos_endian_put_le32(hdr + 1, len);
    if (pos_file_write_all(fd, hdr, sizeof(hdr)) != 0 ||
        (alen > 0 && pos_file_write_all(fd, a, alen) != 0) ||
        (blen > 0 && pos_file_write_all(fd, b, blen) != 0)) {
        return -1;
    }
    return 0;
}

/* "<file>: <what>: <why>" as an error frame. */
static void send_error(int fd, const char *file, const char *what, int err)
{
    char msg[400];
    int n = snprintf(msg, sizeof(msg), "%s: %s: %s", file, what, strerror(-err));
    send_frame(fd, FRAME_ERROR, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, NULL,
               0);
}

static int send_outbox(int fd, const pos_outbox_entry_t *e)
{
    unsigned char hdr[OUTBOX_FRAME_HDR];
    unsigned char *both;
    int rc;

    memset(hdr, 0, sizeof(hdr));
    hdr[0] = (unsigned char)e->kind;
    hdr[1] = e->is_payment;
    hdr[2] = e->sign;
    pos_endian_put_le64(hdr + 4, e->created_ms);
    pos_endian_put_le64(hdr + 12, e->id);
    pos_endian_put_le32(hdr + 20, (uint32_t)e->channel_len);
    pos_endian_put_le32(hdr + 24, (uint32_t)e->payload_len);
    both = malloc(e->channel_len + e->payload_len + 1);
    if (both == NULL) {
        return -1;
    }
    memcpy(both, e->channel, e->channel_len);
    memcpy(both + e->channel_len, e->payload, e->payload_len);
    rc = send_frame(fd, FRAME_OUTBOX, hdr, sizeof(hdr), both, e->channel_len + e->payload_len);
    free(both);
    return rc;
}

static int send_record(void *ctx, const pos_payment_record_t *rec)
{
    int fd = *(int *)ctx;
    unsigned char buf[POS_JOURNAL_RECORD_MAX];
    int n = pos_journal_encode(rec, 0, buf, sizeof(buf));

    if (n < 0) {
        return 0; /* one bad record: the others still come */
    }
    return send_frame(fd, FRAME_JOURNAL, buf, (size_t)n, NULL, 0) == 0 ? 0 : 1;
}

/* ---- a file cut short, read without LMDB (agent/store/scan.h) -------------- */

typedef struct found_outbox {
    uint64_t id;
    unsigned char *value;
    size_t len;
    bool indexed; /* reached through the outbox's index */
} found_outbox_t;

typedef struct found_record {
    pos_payment_record_t rec;
    uint64_t seq;
    bool indexed;
} found_record_t;

typedef struct found {
    found_outbox_t *outbox;
    size_t outbox_n, outbox_cap;
    found_record_t *records;
    size_t records_n, records_cap;
    bool indexed; /* what is found now is reached through an index */
} found_t;

static int found_outbox(void *ctx, const void *key, size_t key_len, const void *value,
                        size_t value_len)
{
    found_t *fo = ctx;
    pos_outbox_entry_t e;
    if (key_len != 8 || pos_outbox_record_parse(value, value_len, &e) != 0) {
        return 0; /* not an outbox entry: on a page found by content, another database's */
    }
    found_outbox_t *v =
        pos_mem_grow(fo->outbox, fo->outbox_n, &fo->outbox_cap, sizeof(*fo->outbox), 64);
    if (v == NULL) {
        return -ENOMEM;
    }
    fo->outbox = v;
    found_outbox_t *o = &fo->outbox[fo->outbox_n];
    o->value = malloc(value_len);
    if (o->value == NULL) {
        return -ENOMEM;
    }
    memcpy(o->value, value, value_len);
    o->len = value_len;
    o->id = pos_endian_get_be64(key);
    o->indexed = fo->indexed;
    fo->outbox_n++;
    return 0;
}

static int found_record(void *ctx, const void *key, size_t key_len, const void *value,
                        size_t value_len)
{
    found_t *fo = ctx;
    found_record_t r;
    if (pos_journal_decode(value, value_len, &r.rec, &r.seq) != 0 ||
        strlen(r.rec.transaction_id) != key_len ||
        memcmp(r.rec.transaction_id, key, key_len) != 0) {
        memset(&r, 0, sizeof(r));
        return 0;
    }
    found_record_t *v =
        pos_mem_grow(fo->records, fo->records_n, &fo->records_cap, sizeof(*fo->records), 64);
    if (v == NULL) {
        return -ENOMEM;
    }
    fo->records = v;
    r.indexed = fo->indexed;
    fo->records[fo->records_n++] = r;
    memset(&r, 0, sizeof(r));
    return 0;
}

static int found_either(void *ctx, const void *key, size_t key_len, const void *value,
                        size_t value_len)
{
    found_t *fo = ctx;
    size_t n = fo->outbox_n;
    int rc = found_outbox(ctx, key, key_len, value, value_len);
    return rc != 0 || fo->outbox_n > n ? rc : found_record(ctx, key, key_len, value, value_len);
}

/* By id; the copy reached through the index first. */
static int outbox_cmp(const void *a, const void *b)
{
    const found_outbox_t *x = a, *y = b;
    if (x->id != y->id) {
        return x->id < y->id ? -1 : 1;
    }
    return (int)y->indexed - (int)x->indexed;
}

/* By transaction; the copy reached through the index first, then a final
 * state before an unresolved one (a payment's record only moves on). */
static int record_cmp(const void *a, const void *b)
{
    const found_record_t *x = a, *y = b;
    int c = strcmp(x->rec.transaction_id, y->rec.transaction_id);
    if (c != 0) {
        return c;
    }
    if (x->indexed != y->indexed) {
        return (int)y->indexed - (int)x->indexed;
    }
    return (int)pos_payment_state_final(y->rec.state) - (int)pos_payment_state_final(x->rec.state);
}

static int record_seq_cmp(const void *a, const void *b)
{
    const found_record_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The line that says what was read of a database, and what could not be. */
static void send_summary(int fd, const pos_scan_t *sc, const char *db, const char *what,
                         int walk_rc, const pos_scan_stats_t *s, size_t total, size_t indexed,
                         const char *caveat)
{
    char msg[600];
    uint64_t all = sc->last_pgno + 1, missing = all - sc->pages;
    int n;
    char more[200] = "";
    if (walk_rc == 0 && total > indexed) {
        snprintf(more, sizeof(more),
                 ", and %zu found by content on pages it no longer reaches (%s)", total - indexed,
                 caveat);
    }
    if (walk_rc == 0) {
        n = snprintf(msg, sizeof(msg),
                     "%s: %zu %s read: %zu of the %" PRIu64 " its index counts%s; %" PRIu64
                     " of the file's %" PRIu64 " pages are missing, and what was only on them is "
                     "lost",
                     db, total, what, indexed, s->entries, more, missing, all);
    } else {
        n = snprintf(msg, sizeof(msg),
                     "%s: %zu %s read, found by content: its index is on pages missing from the "
                     "file, so how many were lost is not known (%s); %" PRIu64 " of the file's "
                     "%" PRIu64 " pages are missing",
                     db, total, what, caveat, missing, all);
    }
    send_frame(fd, FRAME_SUMMARY, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, NULL,
               0);
}

/*
 * A file cut short: LMDB maps it, and the first page past its end faults
 * (SIGBUS), so nothing came back. Read here without LMDB, every page
 * number checked against the file's length first (agent/store/scan.h):
 * first through each database's index, then, as the index pages are the
 * ones written last and so the likeliest to be cut off, every leaf page
 * left over, its entries told apart by content. Those may be older copies
 * of entries (deduplicated: the indexed one, else a final state wins) or
 * entries already sent: the summary says so. The file is only read.
 */
static void scan_main(pos_scan_t *sc, const char *file, int fd)
{
    found_t f;
    pos_scan_stats_t os, js, us;
    memset(&f, 0, sizeof(f));
    f.indexed = true;
    int orc = pos_scan_db(sc, "outbox", found_outbox, &f, &os);
    int jrc = pos_scan_db(sc, "journal", found_record, &f, &js);
    f.indexed = false;
    int urc = pos_scan_unreached(sc, found_either, &f, &us);
    if (orc == -ENOMEM || jrc == -ENOMEM || urc == -ENOMEM) {
        send_error(fd, file, "reading it page by page", -ENOMEM);
        _exit(3);
    }
    if (f.outbox_n > 1) {
        qsort(f.outbox, f.outbox_n, sizeof(*f.outbox), outbox_cmp);
    }
    size_t sent = 0, sent_indexed = 0;
    for (size_t i = 0; i < f.outbox_n; i++) {
        pos_outbox_entry_t e;
        if ((i > 0 && f.outbox[i].id == f.outbox[i - 1].id) ||
            pos_outbox_record_parse(f.outbox[i].value, f.outbox[i].len, &e) != 0) {
            continue;
        }
        e.id = f.outbox[i].id;
        if (send_outbox(fd, &e) != 0) {
            _exit(3);
        }
        sent++;
        sent_indexed += f.outbox[i].indexed;
    }
    send_summary(fd, sc, "outbox", "entries", orc, &os, sent, sent_indexed,
                 "some may have been sent already");
    size_t kept = 0, kept_indexed = 0;
    if (f.records_n > 1) {
        qsort(f.records, f.records_n, sizeof(*f.records), record_cmp);
    }
    for (size_t i = 0; i < f.records_n; i++) {
        if (kept == 0 ||
            strcmp(f.records[i].rec.transaction_id, f.records[kept - 1].rec.transaction_id) != 0) {
            f.records[kept++] = f.records[i];
            kept_indexed += f.records[i].indexed;
        }
    }
    if (kept > 1) {
        qsort(f.records, kept, sizeof(*f.records), record_seq_cmp);
    }
    for (size_t i = 0; i < kept; i++) {
        if (send_record(&fd, &f.records[i].rec) != 0) {
            _exit(3);
        }
    }
    send_summary(fd, sc, "journal", "records", jrc, &js, kept, kept_indexed,
                 "a record may be an older state of its payment");
    _exit(sent + kept > 0 || orc == 0 || jrc == 0 ? 0 : 2);
}

/* Reads what it can of file, frame by frame, into fd; never returns. */
static void reader_main(const char *file, int fd)
{
    pos_store_t st;
    pos_outbox_t ob;
    pos_journal_t j;
    uint64_t from = 0;
    int rc;

    alarm(READER_SECONDS);
    pos_log_set_level(POS_LOG_ERROR);
    pos_scan_t sc;
    if (pos_scan_open(&sc, file) == 0) {
        if (pos_scan_short(&sc)) {
            scan_main(&sc, file, fd);
        }
        pos_scan_close(&sc);
    }
    rc = pos_store_open_file_readonly(&st, file);
    if (rc != 0) {
        send_error(fd, file, "cannot be opened as a store", rc);
        _exit(2);
    }
    rc = pos_outbox_open(&ob, &st, NULL);
    if (rc != 0) {
        send_error(fd, file, "the outbox cannot be read", rc);
    }
    while (rc == 0) {
        pos_outbox_batch_t batch;
        memset(&batch, 0, sizeof(batch));
        int n = pos_outbox_peek_from(&ob, from, 64, &batch);
        if (n < 0) {
            send_error(fd, file, "reading the outbox stopped", n);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (send_outbox(fd, &batch.entries[i]) != 0) {
                _exit(3);
            }
            from = batch.entries[i].id + 1;
        }
        pos_outbox_batch_free(&batch);
        if (n == 0) {
            break;
        }
    }
    rc = pos_journal_open(&j, &st, NULL);
    if (rc != 0) {
        send_error(fd, file, "the payment journal cannot be read", rc);
    } else {
        rc = pos_journal_list(&j, send_record, &fd);
        if (rc < 0) {
            send_error(fd, file, "reading the payment journal stopped", rc);
        }
    }
    _exit(0);
}

/* ---- the command -------------------------------------------------------------- */

/* Everything the reader sent, in order, until it ended (however). */
static frame_t *read_frames(int fd)
{
    frame_t *head = NULL, **tail = &head;
    unsigned char hdr[5];

    while (pos_file_read_all(fd, hdr, sizeof(hdr)) == 0) {
        uint32_t len = pos_endian_get_le32(hdr + 1);
        frame_t *f;
        if (len > FRAME_MAX || (f = malloc(sizeof(*f) + len + 1)) == NULL) {
            break;
        }
        f->next = NULL;
        f->kind = (char)hdr[0];
        f->len = len;
        if (pos_file_read_all(fd, f->data, len) != 0) {
            free(f);
            break;
        }
        f->data[len] = '\0';
        *tail = f;
        tail = &f->next;
    }
    return head;
}

static void free_frames(frame_t *f)
{
    while (f != NULL) {
        frame_t *next = f->next;
        memset(f->data, 0, f->len);
        free(f);
        f = next;
    }
}

/* Reads file in a child; the frames it sent, and how it ended in *status. */
static frame_t *salvage_read(const char *file, int *status)
{
    int fds[2];
    pid_t pid;
    frame_t *frames;

    if (pipe(fds) != 0) {
        *status = -1;
        return NULL;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        *status = -1;
        return NULL;
    }
    if (pid == 0) {
        close(fds[0]);
        reader_main(file, fds[1]);
    }
    close(fds[1]);
    frames = read_frames(fds[0]);
    close(fds[0]);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
    return frames;
}

/* An outbox frame as an entry (pointing into the frame). */
static bool frame_entry(const frame_t *f, pos_outbox_entry_t *e)
{
    if (f->len < OUTBOX_FRAME_HDR) {
        return false;
    }
    memset(e, 0, sizeof(*e));
    e->kind = (pos_outbox_kind_t)f->data[0];
    e->is_payment = f->data[1] != 0;
    e->sign = f->data[2] != 0;
    e->created_ms = pos_endian_get_le64(f->data + 4);
    e->id = pos_endian_get_le64(f->data + 12);
    e->channel_len = pos_endian_get_le32(f->data + 20);
    e->payload_len = pos_endian_get_le32(f->data + 24);
    if (e->channel_len + e->payload_len != f->len - OUTBOX_FRAME_HDR ||
        (unsigned)e->kind >= POS_OUTBOX_KIND_COUNT) {
        return false;
    }
    e->channel = (const char *)f->data + OUTBOX_FRAME_HDR;
    e->payload = f->data + OUTBOX_FRAME_HDR + e->channel_len;
    return true;
}

/* The till's store, its outbox and journal, opened for the command. */
typedef struct live {
    pos_store_t st;
    pos_outbox_t ob;
    pos_journal_t j;
} live_t;

static int live_open(live_t *l, const pos_config_t *cfg)
{
    pos_store_tenant_t tenants[2];
    pos_store_config_t sc;
    pos_outbox_config_t oc = {cfg->store_outbox_max_entries,
                              (uint64_t)cfg->store_outbox_max_mb << 20};
    pos_journal_config_t jc;
    int rc;

    pos_outbox_tenant(&tenants[0], NULL);
    pos_journal_tenant(&tenants[1], NULL);
    memset(&sc, 0, sizeof(sc));
    sc.path = cfg->store_path;
    sc.map_size = (uint64_t)cfg->store_map_size_mb << 20;
    sc.tenants = tenants;
    sc.tenant_count = 2;
    rc = pos_store_open(&l->st, &sc);
    if (rc != 0) {
        fprintf(stderr, "posagent: cannot open the store in %s: %s\n", cfg->store_path,
                l->st.error[0] != '\0' ? l->st.error : strerror(-rc));
        return rc;
    }
    memset(&jc, 0, sizeof(jc));
    jc.window_ms = (uint64_t)cfg->payment_dedup_window_h * 3600u * 1000u;
    jc.max_seen = cfg->payment_dedup_max_ids;
    rc = pos_outbox_open(&l->ob, &l->st, &oc);
    if (rc == 0) {
        rc = pos_journal_open(&l->j, &l->st, &jc);
        if (rc != 0) {
            pos_outbox_close(&l->ob);
        }
    }
    if (rc != 0) {
        fprintf(stderr, "posagent: cannot open the store's outbox or journal: %s\n", strerror(-rc));
        pos_store_close(&l->st);
    }
    return rc;
}

static void live_close(live_t *l)
{
    pos_journal_close(&l->j);
    pos_outbox_close(&l->ob);
    pos_store_close(&l->st);
}

static int salvage(const pos_config_t *cfg, const char *file, bool dry_run)
{
    char lock[300], done[400];
    pid_t holder = 0;
    int lfd = -1, status = 0, rc;
    size_t outbox = 0, records = 0, requeued = 0, restored = 0, known = 0, failed = 0;
    frame_t *frames;
    live_t l;

    /* Never beside a running agent: it owns the store (and would not know
     * of what is put back). */
    snprintf(lock, sizeof(lock), "%s/posagent.lock", cfg->store_path);
    rc = pos_lockfile_take(lock, &lfd, &holder);
    if (rc == -EBUSY) {
        fprintf(stderr,
                "posagent: an agent runs on the store %s (pid %ld): stop it first (systemctl "
                "stop posagent), then salvage\n",
                cfg->store_path, (long)holder);
        return POS_EX_ANOTHER;
    }
    if (rc != 0 && rc != -ENOENT) {
        fprintf(stderr, "posagent: cannot lock %s: %s\n", lock, strerror(-rc));
        return 1;
    }
    frames = salvage_read(file, &status);
    printf("# %s\n", file);
    for (const frame_t *f = frames; f != NULL; f = f->next) {
        pos_outbox_entry_t e;
        pos_payment_record_t rec;
        uint64_t seq;
        if (f->kind == FRAME_OUTBOX && frame_entry(f, &e)) {
            outbox++;
            printf("outbox %" PRIu64 ": %s %.*s, %zu bytes%s\n", e.id,
                   e.kind == POS_OUTBOX_PUBLISH  ? "PUBLISH"
                   : e.kind == POS_OUTBOX_INCRBY ? "INCRBY"
                                                 : "OTHER",
                   (int)e.channel_len, e.channel, e.payload_len,
                   e.is_payment ? " (payment outcome)" : "");
        } else if (f->kind == FRAME_JOURNAL &&
                   pos_journal_decode(f->data, f->len, &rec, &seq) == 0) {
            records++;
            printf("journal %s: %s%s\n", rec.transaction_id, pos_payment_state_name(rec.state),
                   pos_payment_state_final(rec.state) ? "" : " (unresolved)");
        } else if (f->kind == FRAME_ERROR) {
            printf("stopped: %s\n", (const char *)f->data);
        } else if (f->kind == FRAME_SUMMARY) {
            printf("%s\n", (const char *)f->data);
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("the reader %s: what is listed above is what could be read\n",
               WIFSIGNALED(status) ? "crashed on a damaged page" : "stopped early");
    }
    printf("%zu outbox entries, %zu journal records readable\n", outbox, records);
    if (dry_run ||
        (outbox == 0 && records == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) == 2))) {
        free_frames(frames);
        if (lfd >= 0) {
            close(lfd);
        }
        if (!dry_run) {
            printf("nothing queued again; clear it with posagent store clear-recovered\n");
        }
        return 0;
    }
    rc = live_open(&l, cfg);
    if (rc != 0) {
        free_frames(frames);
        close(lfd);
        return 1;
    }
    for (const frame_t *f = frames; f != NULL; f = f->next) {
        pos_outbox_entry_t e;
        pos_payment_record_t rec, have;
        uint64_t seq;
        if (f->kind == FRAME_OUTBOX && frame_entry(f, &e)) {
            uint64_t id;
            rc = pos_outbox_append(&l.ob, &e, &id);
            requeued += rc == 0;
            failed += rc != 0;
            if (rc != 0) {
                printf("outbox %" PRIu64 " not queued again: %s\n", e.id, strerror(-rc));
            }
        } else if (f->kind == FRAME_JOURNAL &&
                   pos_journal_decode(f->data, f->len, &rec, &seq) == 0) {
            /* The store's own record of a transaction is newer: kept. */
            if (pos_journal_get(&l.j, rec.transaction_id, &have) == 0) {
                known++;
                continue;
            }
            rc = pos_journal_put(&l.j, &rec);
            restored += rc == 0;
            failed += rc != 0;
            if (rc != 0) {
                printf("journal %s not put back: %s\n", rec.transaction_id, strerror(-rc));
            }
        }
    }
    live_close(&l);
    free_frames(frames);
    printf("queued again: %zu outbox entries (with new outbox ids); journal records put back: "
           "%zu (%zu already known); failed: %zu\n",
           requeued, restored, known, failed);
    snprintf(done, sizeof(done), "%s.salvaged", file);
    if (failed == 0 && rename(file, done) == 0) {
        printf("%s renamed %s: it no longer holds payments back\n", file, done);
    } else if (failed == 0) {
        printf("cannot rename %s: %s; clear it with posagent store clear-recovered\n", file,
               strerror(errno));
    }
    close(lfd);
    return failed == 0 ? 0 : 1;
}

static int clear_recovered(const pos_config_t *cfg)
{
    char names[64][POS_STORE_NAME_MAX];
    char lock[300];
    pid_t holder = 0;
    int n = pos_store_moved_aside(cfg->store_path, names, 64);
    int cleared = 0;

    if (n < 0) {
        fprintf(stderr, "posagent: cannot read %s: %s\n", cfg->store_path, strerror(-n));
        return 1;
    }
    if (n == 0) {
        printf("no store moved aside waits in %s\n", cfg->store_path);
        return 0;
    }
    for (int i = 0; i < n && i < 64; i++) {
        char from[sizeof(cfg->store_path) + POS_STORE_NAME_MAX + 1];
        char to[sizeof(from) + 8];
        snprintf(from, sizeof(from), "%.200s/%.63s", cfg->store_path, names[i]);
        snprintf(to, sizeof(to), "%s.cleared", from);
        if (rename(from, to) != 0) {
            fprintf(stderr, "posagent: cannot rename %s: %s\n", from, strerror(errno));
            continue;
        }
        printf("cleared %s (kept as %s)\n", from, to);
        cleared++;
    }
    /* A running agent takes payments again at once. */
    snprintf(lock, sizeof(lock), "%s/posagent.lock", cfg->store_path);
    if (pos_lockfile_probe(lock, &holder) == -EBUSY && holder > 0) {
        if (kill(holder, SIGHUP) == 0) {
            printf("told the running agent (pid %ld)\n", (long)holder);
        } else {
            printf("could not tell the running agent (pid %ld): %s; reload or restart it\n",
                   (long)holder, strerror(errno));
        }
    }
    return cleared == n ? 0 : 1;
}

int pos_salvage_main(int argc, char **argv, const pos_config_t *cfg)
{
    if (argc == 2 && strcmp(argv[1], "clear-recovered") == 0) {
        return clear_recovered(cfg);
    }
    if (argc >= 3 && strcmp(argv[1], "salvage") == 0) {
        bool dry = argc == 4 && strcmp(argv[2], "--dry-run") == 0;
        if (argc == 3 || dry) {
            return salvage(cfg, argv[argc - 1], dry);
        }
    }
    fprintf(stderr, "usage: posagent [--config FILE] store salvage [--dry-run] PATH\n"
                    "       posagent [--config FILE] store clear-recovered\n");
    return EX_USAGE_CODE;
}
