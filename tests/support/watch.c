#include "tests/support/watch.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/support/harness.h"

enum { TH_STATUS, TH_LOCAL, TH_MONITOR };

static bool watch_stopping(pos_watch_t *w)
{
    return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) != 0;
}

static void series_add(pos_watch_t *w, pos_watch_series_t *s, double v)
{
    pthread_mutex_lock(&w->lock);
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 1024;
        double *nv = realloc(s->v, cap * sizeof(*nv));
        if (nv == NULL) {
            pthread_mutex_unlock(&w->lock);
            return;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    pthread_mutex_unlock(&w->lock);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

long pos_watch_proc_kib(int pid, const char *field)
{
    char path[64], line[256];
    size_t len = strlen(field);
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kib = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Remembers the first and the highest of a memory figure. */
static void watch_mem(long kib, long *first, long *max)
{
    if (kib <= 0) {
        return;
    }
    if (*first < 0) {
        *first = kib;
    }
    if (kib > *max) {
        *max = kib;
    }
}

int pos_watch_next_reply(redisContext *c, int timeout_ms, redisReply **reply)
{
    void *r = NULL;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};

    *reply = NULL;
    if (redisGetReplyFromReader(c, &r) != REDIS_OK) {
        return -1;
    }
    if (r == NULL) {
        int n = poll(&p, 1, timeout_ms);
        if (n <= 0) {
            return n < 0 && errno != EINTR ? -1 : 0;
        }
        if (redisBufferRead(c) != REDIS_OK || redisGetReplyFromReader(c, &r) != REDIS_OK) {
            return -1;
        }
        if (r == NULL) {
            return 0; /* part of a reply so far */
        }
    }
    *reply = r;
    return 1;
}

double pos_watch_pct(double *v, size_t n, double pct)
{
    if (n == 0) {
        return -1;
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort: a few thousand samples */
        double x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    size_t i = (size_t)((double)n * pct / 100.0);
    return v[i < n ? i : n - 1];
}

/* ---- the threads ----------------------------------------------------------------- */

/* The status key's PTTL and the agent's RSS, every 100 ms. */
static void *watch_status(void *arg)
{
    pos_watch_t *w = arg;
    redisContext *c = pos_test_redis_connect(&w->f->redis);

    while (c != NULL && !watch_stopping(w)) {
        redisReply *r = redisCommand(c, "PTTL %s", POS_FIX_STATUS_KEY);
        long rss = pos_watch_proc_kib(w->f->agent.pid, "VmRSS");
        long anon = pos_watch_proc_kib(w->f->agent.pid, "RssAnon");
        pthread_mutex_lock(&w->lock);
        if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
            w->pttl_samples++;
            if (r->integer < 0) {
                w->key_missing++;
            } else if (w->min_pttl_ms < 0 || r->integer < w->min_pttl_ms) {
                w->min_pttl_ms = r->integer;
            }
        }
        watch_mem(rss, &w->rss_first_kib, &w->rss_max_kib);
        watch_mem(anon, &w->anon_first_kib, &w->anon_max_kib);
        pthread_mutex_unlock(&w->lock);
        freeReplyObject(r);
        if (r == NULL) {
            redisFree(c);
            c = pos_test_redis_connect(&w->f->redis);
        }
        pos_test_sleep_ms(100);
    }
    if (c != NULL) {
        redisFree(c);
    }
    return NULL;
}

/* A local PING (or GET) every interval; a failed connection is counted and
 * replaced, its wait counted as the answer's latency. */
static void *watch_local(void *arg)
{
    pos_watch_t *w = arg;
    redisContext *c = pos_fix_local(w->f);
    unsigned every = w->opt.local_interval_ms != 0 ? w->opt.local_interval_ms : 10;

    while (c != NULL && !watch_stopping(w)) {
        double t0 = mono_ms();
        redisReply *r = w->opt.local_key != NULL ? redisCommand(c, "GET %s", w->opt.local_key)
                                                 : redisCommand(c, "PING");
        double took = mono_ms() - t0;
        bool ok = r != NULL && (w->opt.local_key != NULL ? r->type == REDIS_REPLY_STRING
                                                         : r->type == REDIS_REPLY_STATUS);
        series_add(w, &w->local_ms, took);
        if (!ok) {
            pthread_mutex_lock(&w->lock);
            w->local_errors++;
            pthread_mutex_unlock(&w->lock);
        }
        freeReplyObject(r);
        if (r == NULL) {
            redisFree(c);
            c = pos_fix_local(w->f);
        }
        pos_test_sleep_ms((int)every);
    }
    if (c != NULL) {
        redisFree(c);
    }
    return NULL;
}

/* MONITOR: Redis's timestamp of every SET of the status key. */
static void *watch_monitor(void *arg)
{
    pos_watch_t *w = arg;
    redisContext *c = pos_test_redis_connect(&w->f->redis);
    const char *needle = "\"SET\" \"" POS_FIX_STATUS_KEY "\"";
    redisReply *r = c != NULL ? redisCommand(c, "MONITOR") : NULL;

    freeReplyObject(r);
    while (r != NULL && !watch_stopping(w)) {
        redisReply *line;
        int got = pos_watch_next_reply(c, 100, &line);
        if (got < 0) {
            fprintf(stderr, "watch: MONITOR connection lost\n");
            break;
        }
        if (got == 1 && line->type == REDIS_REPLY_STATUS && strstr(line->str, needle) != NULL) {
            series_add(w, &w->set_s, strtod(line->str, NULL));
        }
        if (got == 1) {
            freeReplyObject(line);
        }
    }
    if (c != NULL) {
        redisFree(c);
    }
    return NULL;
}

/* Redis's clock in seconds, 0 when it cannot be read. */
static double redis_time(const pos_fix_t *f)
{
    redisReply *r = pos_test_redis_cmd(&f->redis, "TIME");
    double t = 0;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        t = strtod(r->element[0]->str, NULL) + strtod(r->element[1]->str, NULL) / 1e6;
    }
    freeReplyObject(r);
    return t;
}

/* ---- start, stop, results --------------------------------------------------------- */

int pos_watch_start(pos_watch_t *w, pos_fix_t *f, const pos_watch_opts_t *opt)
{
    static void *(*const fn[3])(void *) = {watch_status, watch_local, watch_monitor};

    memset(w, 0, sizeof(*w));
    w->f = f;
    if (opt != NULL) {
        w->opt = *opt;
    }
    w->min_pttl_ms = -1;
    w->rss_first_kib = -1;
    w->anon_first_kib = -1;
    pthread_mutex_init(&w->lock, NULL);
    for (int i = 0; i < 3; i++) {
        if (i == TH_MONITOR && !w->opt.status_writes) {
            continue;
        }
        if (pthread_create(&w->th[i], NULL, fn[i], w) != 0) {
            pos_watch_stop(w);
            pos_watch_free(w);
            return -1;
        }
        w->running[i] = true;
    }
    return 0;
}

void pos_watch_stop(pos_watch_t *w)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++) {
        if (w->running[i]) {
            pthread_join(w->th[i], NULL);
            w->running[i] = false;
        }
    }
    w->stopped_s = redis_time(w->f);
}

void pos_watch_free(pos_watch_t *w)
{
    free(w->local_ms.v);
    free(w->set_s.v);
    w->local_ms = (pos_watch_series_t){0};
    w->set_s = (pos_watch_series_t){0};
    pthread_mutex_destroy(&w->lock);
}

double pos_watch_local_pct(pos_watch_t *w, double pct)
{
    return pos_watch_pct(w->local_ms.v, w->local_ms.n, pct);
}

double pos_watch_status_gap_ms(const pos_watch_t *w)
{
    double gap = -1;

    for (size_t i = 0; i < w->set_s.n; i++) {
        double next = i + 1 < w->set_s.n ? w->set_s.v[i + 1] : w->stopped_s;
        if (next > 0 && (next - w->set_s.v[i]) * 1000.0 > gap) {
            gap = (next - w->set_s.v[i]) * 1000.0;
        }
    }
    return gap;
}

void pos_watch_print(pos_watch_t *w, const char *title)
{
    size_t n = w->local_ms.n;
    double p50 = pos_watch_local_pct(w, 50), p99 = pos_watch_local_pct(w, 99);
    double max = pos_watch_local_pct(w, 100);

    printf("%s: status key: lowest PTTL %lld ms, missing in %d of %d samples\n", title,
           w->min_pttl_ms, w->key_missing, w->pttl_samples);
    printf("%s: local %s: %zu answers, p50 %.3f ms, p99 %.3f ms, max %.3f ms, %d failed\n", title,
           w->opt.local_key != NULL ? "GET" : "PING", n, p50, p99, max, w->local_errors);
    printf("%s: agent VmRSS %ld KiB at the start, highest %ld KiB (+%ld KiB); RssAnon %ld KiB, "
           "highest %ld KiB (+%ld KiB)\n",
           title, w->rss_first_kib, w->rss_max_kib, w->rss_max_kib - w->rss_first_kib,
           w->anon_first_kib, w->anon_max_kib, w->anon_max_kib - w->anon_first_kib);
    if (w->opt.status_writes) {
        printf("%s: status key written %zu times, longest gap %.1f ms\n", title, w->set_s.n,
               pos_watch_status_gap_ms(w));
    }
    fflush(stdout);
}

/* ---- answers ---------------------------------------------------------------------- */

static const char *const answer_names[POS_ANS_NTYPES] = {
    "PAYMENT_PROCESSING", "PAYMENT_REJECTED",  "PAYMENT_APPROVED",
    "PAYMENT_DECLINED",   "PAYMENT_CANCELLED", "TRANSACTION_COMPLETED",
};

/* FNV-1a */
static size_t answer_hash(const char *tx)
{
    uint32_t h = 2166136261u;
    for (; *tx != '\0'; tx++) {
        h = (h ^ (uint8_t)*tx) * 16777619u;
    }
    return h;
}

/* The slot of tx (created when create is true and there is room), or NULL.
 * Under a->lock. */
static pos_answer_slot_t *answer_slot(pos_answers_t *a, const char *tx, bool create)
{
    size_t mask = a->cap - 1;

    if (strlen(tx) >= sizeof(a->slot[0].tx)) {
        return NULL;
    }
    for (size_t i = answer_hash(tx) & mask, n = 0; n < a->cap; i = (i + 1) & mask, n++) {
        pos_answer_slot_t *s = &a->slot[i];
        if (strcmp(s->tx, tx) == 0) {
            return s;
        }
        if (s->tx[0] == '\0') {
            if (!create || a->used * 4 >= a->cap * 3) {
                return NULL;
            }
            snprintf(s->tx, sizeof(s->tx), "%s", tx);
            for (unsigned k = 0; k < POS_ANS_IDS; k++) {
                s->outbox_id[k] = -1;
            }
            a->used++;
            return s;
        }
    }
    return NULL;
}

static void answer_note(pos_answers_t *a, const char *text)
{
    cJSON *j;
    const cJSON *type, *tx, *origin;

    /* Skips the cloud's own messages (the requests) before parsing. */
    if (strstr(text, "\"origin\":\"terminal\"") == NULL || (j = cJSON_Parse(text)) == NULL) {
        return;
    }
    type = cJSON_GetObjectItemCaseSensitive(j, "type");
    tx = cJSON_GetObjectItemCaseSensitive(j, "transactionId");
    origin = cJSON_GetObjectItemCaseSensitive(j, "origin");
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(j, "outboxId");
    if (cJSON_IsString(type) && cJSON_IsString(tx) && cJSON_IsString(origin) &&
        strcmp(origin->valuestring, "terminal") == 0) {
        for (int t = 0; t < POS_ANS_NTYPES; t++) {
            if (strcmp(type->valuestring, answer_names[t]) != 0) {
                continue;
            }
            pthread_mutex_lock(&a->lock);
            pos_answer_slot_t *s = answer_slot(a, tx->valuestring, true);
            a->total[t]++;
            bool again = false;
            if (s != NULL && cJSON_IsNumber(oid)) {
                for (unsigned k = 0; k < POS_ANS_IDS; k++) {
                    again = again || s->outbox_id[k] == oid->valuedouble;
                }
                if (!again) {
                    s->outbox_id[s->next_id++ % POS_ANS_IDS] = oid->valuedouble;
                }
            }
            if (s == NULL) {
                a->lost++;
            } else if (again) {
                a->total[t]--;
                a->redelivered++;
            } else {
                if ((t == POS_ANS_PROCESSING || t == POS_ANS_REJECTED) &&
                    s->count[POS_ANS_PROCESSING] + s->count[POS_ANS_REJECTED] == 0) {
                    a->first++;
                }
                s->count[t]++;
            }
            pthread_mutex_unlock(&a->lock);
        }
    }
    cJSON_Delete(j);
}

static void *answers_run(void *arg)
{
    pos_answers_t *a = arg;

    while (__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE) == 0) {
        redisReply *r;
        int got = pos_watch_next_reply(a->c, 100, &r);
        if (got < 0) {
            fprintf(stderr, "answers: subscriber connection lost\n");
            break;
        }
        if (got == 0) {
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            answer_note(a, r->element[2]->str);
        }
        freeReplyObject(r);
    }
    return NULL;
}

int pos_answers_start(pos_answers_t *a, pos_fix_t *f, size_t expected_tx)
{
    memset(a, 0, sizeof(*a));
    a->f = f;
    a->cap = 64;
    while (a->cap < expected_tx * 2) {
        a->cap *= 2;
    }
    a->slot = calloc(a->cap, sizeof(*a->slot));
    a->c = pos_test_redis_connect(&f->redis);
    if (a->slot == NULL || a->c == NULL) {
        goto fail;
    }
    redisReply *r =
        redisCommand(a->c, "SUBSCRIBE payment:%s transaction:%s", POS_FIX_TID, POS_FIX_SID);
    freeReplyObject(r);
    if (r == NULL || redisGetReply(a->c, (void **)&r) != REDIS_OK) {
        goto fail; /* the second confirmation */
    }
    freeReplyObject(r);
    pthread_mutex_init(&a->lock, NULL);
    if (pthread_create(&a->th, NULL, answers_run, a) != 0) {
        pthread_mutex_destroy(&a->lock);
        goto fail;
    }
    a->running = true;
    return 0;
fail:
    if (a->c != NULL) {
        redisFree(a->c);
    }
    free(a->slot);
    memset(a, 0, sizeof(*a));
    return -1;
}

void pos_answers_stop(pos_answers_t *a)
{
    if (!a->running) {
        return;
    }
    __atomic_store_n(&a->stop, 1, __ATOMIC_RELEASE);
    pthread_join(a->th, NULL);
    pthread_mutex_destroy(&a->lock);
    redisFree(a->c);
    free(a->slot);
    memset(a, 0, sizeof(*a));
}

unsigned pos_answers_count(pos_answers_t *a, const char *tx, enum pos_answer_type type)
{
    unsigned n;

    pthread_mutex_lock(&a->lock);
    pos_answer_slot_t *s = answer_slot(a, tx, false);
    n = s != NULL ? s->count[type] : 0;
    pthread_mutex_unlock(&a->lock);
    return n;
}

unsigned long pos_answers_first(pos_answers_t *a)
{
    unsigned long n;

    pthread_mutex_lock(&a->lock);
    n = a->first;
    pthread_mutex_unlock(&a->lock);
    return n;
}

unsigned long pos_answers_repeated(pos_answers_t *a)
{
    unsigned long n = 0;

    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->cap; i++) {
        const pos_answer_slot_t *s = &a->slot[i];
        n += s->tx[0] != '\0' && s->count[POS_ANS_PROCESSING] + s->count[POS_ANS_REJECTED] > 1;
    }
    pthread_mutex_unlock(&a->lock);
    return n;
}

bool pos_answers_wait_first(pos_answers_t *a, unsigned long n, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;

    while (pos_answers_first(a) < n) {
        if (pos_test_now_ms() >= end) {
            return false;
        }
        pos_test_sleep_ms(20);
    }
    return true;
}

bool pos_answers_wait(pos_answers_t *a, const char *tx, enum pos_answer_type type, unsigned n,
                      int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;

    while (pos_answers_count(a, tx, type) < n) {
        if (pos_test_now_ms() >= end) {
            return false;
        }
        pos_test_sleep_ms(10);
    }
    return true;
}

/* ---- checks ------------------------------------------------------------------------ */

void pos_watch_check(pos_watch_checks_t *c, bool ok, const char *fmt, ...)
{
    va_list ap;

    c->total++;
    c->failed += !ok;
    printf("  %-6s ", ok ? "ok" : "FAILED");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

void pos_watch_verdict_at(const pos_watch_checks_t *c, const char *file, int line)
{
    if (c->failed > 0) {
        print_error("ERROR: %d of %d checks failed (listed above)\n", c->failed, c->total);
        _fail(file, line);
    }
}

bool pos_watch_full(void)
{
    const char *v = getenv("POS_BURST_FULL");
    return v != NULL && strcmp(v, "1") == 0;
}
