/*
 * Power cuts (tests/support/powercut.c). The agent takes a stream of
 * payments from the cloud and of PUBLISHes from the POS application, and
 * is killed (SIGKILL), a power cut. It is then started again on
 * what its disk would hold after a power cut at that moment: only what it
 * had flushed, and in some rounds a random part of what it had not (the
 * kernel writes dirty pages back in any order). Round after round, and
 * once more without the fault at the end, when every payment request is
 * sent again:
 *
 *   - the store opens every time: never moved aside as unusable, its
 *     write-ahead log never set aside as failed;
 *   - no card is charged twice: the simulated pinpad's log of charges
 *     (sim/pinpad.charged) names each transaction at most once;
 *   - no transaction is answered PAYMENT_PROCESSING twice;
 *   - every charged transaction's outcome reaches the cloud:
 *     PAYMENT_APPROVED, or PAYMENT_DECLINED "interrupted" for a payment
 *     the cut caught at the pinpad (at most one per cut);
 *   - every PUBLISH the agent answered with its outbox place reaches
 *     Redis (at least once), and every INCR it answered is counted there
 *     (at least once), the till's count then agreeing with Redis's;
 *   - and the cuts did cut: in some rounds the store on disk differed
 *     from what the process had written, and a restart applied commits
 *     again from the write-ahead log. Without that the test proves
 *     nothing, and it fails.
 *
 * The cuts come at a random moment, right after a charge (the request
 * is then sent again at the end: only its journal record, flushed before
 * the pinpad was asked, keeps the card from a second charge), or
 * offline. Offline: the agent is cut off Redis for the round's last
 * few hundred milliseconds (its ACL user disabled, its connections
 * killed) while the POS application goes on publishing: what the agent
 * answered then waits in its outbox when the power goes, and must still
 * reach Redis after the restart. Online, an answered PUBLISH is
 * delivered within a millisecond and a cut rarely finds one waiting.
 *
 * CI runs 6 rounds; POS_BURST_FULL=1 runs 40 (docs/faults.md).
 * POS_POWERCUT_SEED_BASE sets the seed (the same by default, so that CI
 * runs are alike; another seed explores other moments).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/fixture.h"
#include "tests/support/fs.h"
#include "tests/support/watch.h"

#define MAX_SEQ    20000 /* local PUBLISHes in all rounds, at most */
#define MAX_TX     12000 /* payment requests in all rounds, at most */
#define TX_LEN     32
#define CHANNEL    "transaction:" POS_FIX_SID
#define COUNTER    "counter:powercut"
#define AGENT_USER "pc-agent" /* the agent's own ACL user, to cut it off alone */
#define AGENT_PASS "pc-agent-pass"

typedef struct cut_state {
    pos_fix_t *f;
    int stop;
    int next_seq;                 /* the next PUBLISH's seq */
    unsigned char acked[MAX_SEQ]; /* answered with an outbox place */
    unsigned char heard[MAX_SEQ]; /* seen on the channel */
    int acked_n, refused_n;
    int incr_acked; /* INCR counter:powercut answered with the till's count */
    pthread_mutex_t lock;
} cut_state_t;

/* ---- the POS application's PUBLISHes, and the cloud's ear for them ------------------------ */

static void *local_publisher(void *arg)
{
    cut_state_t *s = arg;
    redisContext *c = pos_fix_local(s->f);

    while (c != NULL && __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) == 0) {
        pthread_mutex_lock(&s->lock);
        int seq = s->next_seq < MAX_SEQ ? s->next_seq++ : -1;
        pthread_mutex_unlock(&s->lock);
        if (seq < 0) {
            break;
        }
        redisReply *r = redisCommand(c, "PUBLISH " CHANNEL " {\"type\":\"SALE\",\"seq\":%d}", seq);
        if (r == NULL) {
            break; /* the agent is gone: whatever was not answered may be lost */
        }
        pthread_mutex_lock(&s->lock);
        if (r->type == REDIS_REPLY_INTEGER) {
            s->acked[seq] = 1;
            s->acked_n++;
        } else {
            s->refused_n++;
        }
        pthread_mutex_unlock(&s->lock);
        freeReplyObject(r);
        if (seq % 4 == 3) { /* and a counter, every fourth */
            redisReply *i = redisCommand(c, "INCR " COUNTER);
            if (i == NULL) {
                break;
            }
            pthread_mutex_lock(&s->lock);
            s->incr_acked += i->type == REDIS_REPLY_INTEGER;
            pthread_mutex_unlock(&s->lock);
            freeReplyObject(i);
        }
        pos_test_sleep_ms(2);
    }
    if (c != NULL) {
        redisFree(c);
    }
    return NULL;
}

static void *cloud_listener(void *arg)
{
    cut_state_t *s = arg;
    pos_test_sub_t sub;

    if (pos_test_sub_open(&sub, &s->f->redis, CHANNEL) != 0) {
        return NULL;
    }
    while (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) < 2) {
        char *m = pos_test_sub_next(&sub, 100, NULL, 0);
        const char *p = m != NULL ? strstr(m, "\"seq\":") : NULL;
        if (p != NULL) {
            int seq = atoi(p + 6);
            if (seq >= 0 && seq < MAX_SEQ) {
                pthread_mutex_lock(&s->lock);
                s->heard[seq] = 1;
                pthread_mutex_unlock(&s->lock);
            }
        }
        free(m);
    }
    pos_test_sub_close(&sub);
    return NULL;
}

/* ---- files ------------------------------------------------------------------------------- */

static void run_or_fail(const char *const *argv)
{
    char *out = NULL;
    int rc = pos_test_run(argv, NULL, &out, 30000);
    if (rc != 0) {
        fail_msg("%s %s failed (%d): %s", argv[0], argv[1], rc, out != NULL ? out : "");
    }
    free(out);
}

/* The shadow becomes a copy of the store as it is now (the disk, read
 * after the reboot). */
static void shadow_from_store(const char *store, const char *shadow)
{
    pos_test_rm_tree(shadow);
    assert_int_equal(mkdir(shadow, 0700), 0);
    if (access(store, F_OK) == 0) {
        char from[PATH_MAX];
        snprintf(from, sizeof(from), "%s/.", store);
        const char *argv[] = {"cp", "-a", from, shadow, NULL};
        run_or_fail(argv);
    }
}

/* true when the two files differ (one missing counts). */
static bool files_differ(const char *a, const char *b)
{
    const char *argv[] = {"cmp", "-s", a, b, NULL};
    return pos_test_run(argv, NULL, NULL, 30000) != 0;
}

/* The store becomes what the shadow holds: the disk after the power cut. */
static bool store_from_shadow(const char *store, const char *shadow)
{
    char a[PATH_MAX], b[PATH_MAX];
    bool lost = false;

    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "data.mdb" : "wal";
        snprintf(a, sizeof(a), "%s/%s", store, name);
        snprintf(b, sizeof(b), "%s/%s", shadow, name);
        lost = lost || files_differ(a, b);
    }
    pos_test_rm_tree(store);
    assert_int_equal(rename(shadow, store), 0);
    snprintf(a, sizeof(a), "%s/lock.mdb", store);
    (void)unlink(a); /* shared memory of the run that is gone */
    return lost;
}

/* The simulated pinpad's charges (sim/pinpad.charged), sorted. */
typedef struct charges {
    char (*tx)[TX_LEN];
    size_t n;
} charges_t;

static int tx_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void charges_load(const pos_fix_t *f, charges_t *c)
{
    char path[400], line[128];
    size_t cap = 0;

    free(c->tx);
    memset(c, 0, sizeof(*c));
    snprintf(path, sizeof(path), "%s/sim/pinpad.charged", f->agent.dir);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (c->n == cap) {
            cap = cap != 0 ? cap * 2 : 1024;
            c->tx = realloc(c->tx, cap * TX_LEN);
            assert_non_null(c->tx);
        }
        snprintf(c->tx[c->n++], TX_LEN, "%.*s", TX_LEN - 1, line);
    }
    fclose(fp);
    qsort(c->tx, c->n, TX_LEN, tx_cmp);
}

/* How many times tx was charged. */
static int charges_of(const charges_t *c, const char *tx)
{
    char(*hit)[TX_LEN] = bsearch(tx, c->tx, c->n, TX_LEN, tx_cmp);
    int n = 0;

    if (hit == NULL) {
        return 0;
    }
    while (hit > c->tx && strcmp(hit[-1], tx) == 0) {
        hit--;
    }
    for (; hit < c->tx + c->n && strcmp(*hit, tx) == 0; hit++) {
        n++;
    }
    return n;
}

/* Whether tx was charged: the file's last lines, read as they come. */
static bool charged_now(const pos_fix_t *f, const char *tx)
{
    char path[400], line[128];
    bool hit = false;

    snprintf(path, sizeof(path), "%s/sim/pinpad.charged", f->agent.dir);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return false;
    }
    if (fseek(fp, -4096, SEEK_END) != 0) {
        rewind(fp);
    }
    while (!hit && fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        hit = strcmp(line, tx) == 0;
    }
    fclose(fp);
    return hit;
}

/* Every answer to tx so far, of any type. */
static unsigned answers_of(pos_answers_t *a, const char *tx)
{
    unsigned n = 0;
    for (int t = 0; t < POS_ANS_NTYPES; t++) {
        n += pos_answers_count(a, tx, (enum pos_answer_type)t);
    }
    return n;
}

static void publish_request(pos_fix_t *f, const char *tx, int i)
{
    char msg[256];
    snprintf(msg, sizeof(msg),
             "{\"type\":\"PAYMENT_REQUESTED\",\"transactionId\":\"%s\",\"amount\":%d.%02d,"
             "\"currency\":\"EUR\"}",
             tx, 1 + i % 40, 20 + i % 70); /* never ending in .13: the simulated pinpad approves */
    pos_test_int(&f->redis, "PUBLISH payment:%s %s", POS_FIX_TID, msg);
}

static void test_power_cuts(void **state)
{
    pos_fix_t *f = *state;
    int rounds = pos_watch_full() ? 40 : 6;
    static char txs[MAX_TX][TX_LEN];
    int ntx = 0, rounds_lost = 0;
    long long checkpoints = 0;
    cut_state_t *s;
    pos_answers_t ans;
    pos_watch_checks_t c = {0};
    pos_powercut_env_t pe;
    pthread_t listener;
    char store[300], shadow[300];

    if (getenv("POSAGENT_WRAPPER") != NULL) {
        skip(); /* the shim is preloaded into a native agent only */
    }
    if (pos_powercut_lib() == NULL) {
        fail_msg("the power-cut shim was not built");
    }
    s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->f = f;
    pthread_mutex_init(&s->lock, NULL);
    const char *env_seed = getenv("POS_POWERCUT_SEED_BASE");
    unsigned seed = env_seed != NULL ? (unsigned)strtoul(env_seed, NULL, 10) : 20261206u;
    printf("power cuts: seed %u (POS_POWERCUT_SEED_BASE)\n", seed);
    srand(seed);

    pos_ini_set(&f->ini, "log", "level", "info");
    pos_ini_set(&f->ini, "hal", "sim_pinpad_delay_ms", "0");
    pos_ini_set(&f->ini, "hal", "sim_printer_delay_ms", "0");
    pos_fix_set_retry(f, 100, 500);
    redisContext *admin = pos_test_redis_connect(&f->redis);
    assert_non_null(admin);
    redisReply *r =
        redisCommand(admin, "ACL SETUSER " AGENT_USER " on >" AGENT_PASS " ~* &* +@all");
    assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    pos_ini_set(&f->ini, "redis", "url", "redis://" AGENT_USER ":" AGENT_PASS "@127.0.0.1:%u",
                (unsigned)f->redis.port);
    assert_int_equal(pos_answers_start(&ans, f, MAX_TX), 0);
    assert_int_equal(pthread_create(&listener, NULL, cloud_listener, s), 0);
    pos_test_sleep_ms(200); /* the listener's SUBSCRIBE is confirmed before it reads */

    /* The agent's directory (and so the store's path) exists before the first start. */
    if (f->agent.dir[0] == '\0') {
        assert_int_equal(pos_test_mkdtemp(f->agent.dir, sizeof(f->agent.dir), "posagent-agent"), 0);
    }
    snprintf(store, sizeof(store), "%s/store", f->agent.dir);
    snprintf(shadow, sizeof(shadow), "%s/store-after-cut", f->agent.dir);

    for (int round = 0; round < rounds; round++) {
        /* Half the rounds lose everything not flushed; the others keep a
         * random part of it. */
        unsigned early = round % 2 == 0 ? 0u : 250u + (unsigned)(rand() % 600);
        int load_ms = 300 + rand() % 1200;
        pthread_t pub;

        shadow_from_store(store, shadow);
        int onlines = pos_test_agent_log_count(&f->agent, "link: online");
        pos_fix_agent_start(f, pos_powercut_env(&pe, store, shadow, early, seed + (unsigned)round));
        pos_fix_wait_online(f, onlines + 1, 30000);
        __atomic_store_n(&s->stop, 0, __ATOMIC_RELEASE);
        assert_int_equal(pthread_create(&pub, NULL, local_publisher, s), 0);

        uint64_t end = pos_test_now_ms() + (uint64_t)load_ms;
        while (pos_test_now_ms() < end && ntx < MAX_TX) {
            snprintf(txs[ntx], TX_LEN, "pc-%d-%d", round, ntx);
            publish_request(f, txs[ntx], ntx);
            ntx++;
            pos_test_sleep_ms(4 + rand() % 8);
        }
        /* The log's checkpoints this run so far (read now: the cut at a
         * charge must not wait for it). */
        long long cp = pos_fix_info(f, "store", "store_wal_checkpoints");
        checkpoints += cp > 0 ? cp : 0;
        int offline_ms = 0;
        pthread_mutex_lock(&s->lock);
        int acked_online = s->acked_n;
        pthread_mutex_unlock(&s->lock);
        const char *kind = "at a random moment";
        if (round % 3 == 2 && ntx < MAX_TX) {
            /* Right after a charge: its journal record is all that stands
             * between a replay and a second charge. */
            kind = "at the moment of a charge";
            pos_test_sleep_ms(100); /* the last request settled: the pinpad is free */
            snprintf(txs[ntx], TX_LEN, "pc-%d-%d", round, ntx);
            publish_request(f, txs[ntx], ntx);
            ntx++;
            /* The simulated pinpad logs the charge before the agent hears of it. */
            uint64_t until = pos_test_now_ms() + 5000;
            while (!charged_now(f, txs[ntx - 1]) && pos_test_now_ms() < until) {
                usleep(1000);
            }
            if (!charged_now(f, txs[ntx - 1])) {
                kind = "at a random moment (the payment before it was not charged in time)";
            }
        }
        if (round % 3 == 1) {
            kind = "offline";
            /* Offline: the application's PUBLISHes wait in the outbox. */
            offline_ms = 200 + rand() % 400;
            int offlines = pos_test_agent_log_count(&f->agent, "link: offline");
            redisReply *off = redisCommand(admin, "ACL SETUSER " AGENT_USER " off");
            freeReplyObject(off);
            off = redisCommand(admin, "CLIENT KILL USER " AGENT_USER);
            freeReplyObject(off);
            pos_fix_wait_log(f, "link: offline", offlines + 1, 5000);
            pos_test_sleep_ms(offline_ms);
        }
        /* The power goes. */
        assert_int_equal(pos_test_agent_stop(&f->agent, SIGKILL, 5000), 128 + SIGKILL);
        __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
        pthread_join(pub, NULL);
        if (offline_ms > 0) {
            redisReply *on = redisCommand(admin, "ACL SETUSER " AGENT_USER " on");
            freeReplyObject(on);
        }
        bool lost = store_from_shadow(store, shadow);
        rounds_lost += lost;
        printf("power cut %d %s, after %d ms online, %d offline (%u per mille written back early): "
               "%d requests, %d PUBLISHes answered so far (%d while offline); the disk %s "
               "what was written\n",
               round + 1, kind, load_ms, offline_ms, early, ntx, s->acked_n,
               s->acked_n - acked_online, lost ? "lost some of" : "held all of");
    }

    /* The last start, without the fault. First what the agent recovers
     * on its own: its outbox drained, and each charge's outcome counted
     * before any request is sent again (a request sent again is answered
     * from the journal, which would hide an outcome the cut lost). */
    int onlines = pos_test_agent_log_count(&f->agent, "link: online");
    pos_fix_agent_start(f, NULL);
    pos_fix_wait_online(f, onlines + 1, 30000);
    uint64_t end = pos_test_now_ms() + 60000;
    while (pos_fix_info(f, "outbox", "outbox_entries") != 0 && pos_test_now_ms() < end) {
        pos_test_sleep_ms(100);
    }
    pos_test_sleep_ms(500); /* what was just delivered reaches the subscribers */
    charges_t ch0 = {0}, ch = {0};
    charges_load(f, &ch0);
    unsigned *appr0 = calloc((size_t)ntx + 1, sizeof(*appr0));
    unsigned *decl0 = calloc((size_t)ntx + 1, sizeof(*decl0));
    assert_true(appr0 != NULL && decl0 != NULL);
    for (int i = 0; i < ntx; i++) {
        appr0[i] = pos_answers_count(&ans, txs[i], POS_ANS_APPROVED);
        decl0[i] = pos_answers_count(&ans, txs[i], POS_ANS_DECLINED);
    }

    /* Then every request again. Those charged first, one at a time: a
     * request the agent forgot would be charged again, not refused as
     * busy behind the others. */
    for (int i = 0; i < ntx; i++) {
        if (charges_of(&ch0, txs[i]) > 0) {
            unsigned before = answers_of(&ans, txs[i]);
            publish_request(f, txs[i], i);
            uint64_t until = pos_test_now_ms() + 5000;
            while (answers_of(&ans, txs[i]) == before && pos_test_now_ms() < until) {
                pos_test_sleep_ms(1);
            }
            pos_test_sleep_ms(5); /* a second charge, had there been one, is logged by now */
        }
    }
    for (int i = 0; i < ntx; i++) {
        if (charges_of(&ch0, txs[i]) == 0) {
            publish_request(f, txs[i], i);
            if (i % 50 == 49) {
                pos_test_sleep_ms(20);
            }
        }
    }
    /* Every request answered again, the outbox empty, and the answers
     * quiet for a second (a payment between PAYMENT_PROCESSING and its
     * outcome is not). */
    end = pos_test_now_ms() + 120000;
    long long left = -1;
    unsigned long quiet_total = 0;
    uint64_t quiet_since = pos_test_now_ms();
    while (pos_test_now_ms() < end) {
        left = pos_fix_info(f, "outbox", "outbox_entries");
        unsigned long total = 0;
        pthread_mutex_lock(&ans.lock);
        for (int t = 0; t < POS_ANS_NTYPES; t++) {
            total += ans.total[t];
        }
        pthread_mutex_unlock(&ans.lock);
        if (total != quiet_total) {
            quiet_total = total;
            quiet_since = pos_test_now_ms();
        }
        if (left == 0 && pos_answers_first(&ans) >= (unsigned long)ntx &&
            pos_test_now_ms() - quiet_since >= 1000) {
            break;
        }
        pos_test_sleep_ms(100);
    }
    __atomic_store_n(&s->stop, 2, __ATOMIC_RELEASE);
    pthread_join(listener, NULL);
    charges_load(f, &ch);

    /* The counter: no answered increment lost (Redis may hold more: an
     * INCRBY delivered again after a cut is applied twice), and the till
     * counts what Redis counts once nothing is pending. */
    char *rv = pos_test_get(&f->redis, COUNTER);
    long long redis_count = rv != NULL ? atoll(rv) : 0;
    free(rv);
    redisReply *lr = pos_fix_local_cmd(f, "GET %s", COUNTER);
    long long till_count = lr->type == REDIS_REPLY_STRING ? atoll(lr->str) : -1;
    freeReplyObject(lr);

    /* The store always opened, with its log. */
    int moved = pos_test_agent_log_count(&f->agent, "moved aside");
    int unusable = pos_test_agent_log_count(&f->agent, "is unusable") +
                   pos_test_agent_log_count(&f->agent, "cannot open the store");
    int wal_failed = pos_test_agent_log_count(&f->agent, "wal.failed") +
                     pos_test_agent_log_count(&f->agent, "no write-ahead log (") +
                     pos_test_agent_log_count(&f->agent, "the write-ahead log failed");
    int replayed = pos_test_agent_log_count(&f->agent, "applied again from the write-ahead log");

    /* Charges, answers. Outcomes as they stood before the requests were
     * sent again; interrupted payments counted per cut. */
    int charged = 0, twice = 0, processing_twice = 0, unanswered = 0, interrupted = 0, first = 0;
    int both = 0, approved_uncharged = 0, worst_cut = 0;
    int *per_cut = calloc((size_t)rounds + 1, sizeof(*per_cut));
    assert_non_null(per_cut);
    for (int i = 0; i < ntx; i++) {
        int n = charges_of(&ch, txs[i]);
        unsigned proc = pos_answers_count(&ans, txs[i], POS_ANS_PROCESSING);
        unsigned appr = pos_answers_count(&ans, txs[i], POS_ANS_APPROVED);
        unsigned decl = pos_answers_count(&ans, txs[i], POS_ANS_DECLINED);
        charged += n > 0;
        twice += n > 1;
        processing_twice += proc > 1;
        first += proc + pos_answers_count(&ans, txs[i], POS_ANS_REJECTED) > 0;
        both += appr > 0 && decl > 0;
        approved_uncharged += appr > 0 && n == 0;
        if (charges_of(&ch0, txs[i]) > 0) {
            unanswered += appr0[i] + decl0[i] == 0;
            if (appr0[i] + decl0[i] == 0) {
                printf("charged, no outcome before the requests were sent again: %s (%u "
                       "PAYMENT_PROCESSING, %u PAYMENT_REJECTED in all)\n",
                       txs[i], proc, pos_answers_count(&ans, txs[i], POS_ANS_REJECTED));
            }
            if (appr0[i] == 0 && decl0[i] > 0) {
                int round = -1;
                interrupted++;
                if (sscanf(txs[i], "pc-%d-", &round) == 1 && round >= 0 && round < rounds &&
                    ++per_cut[round] > worst_cut) {
                    worst_cut = per_cut[round];
                }
            }
        }
    }
    int lost_pub = 0;
    for (int i = 0; i < s->next_seq; i++) {
        lost_pub += s->acked[i] && !s->heard[i];
    }
    printf("power cuts: %d rounds, %d lost unflushed writes; %d requests, %d answered, %d "
           "charged; %d charged twice; %d with two PAYMENT_PROCESSING; %d charged without an "
           "outcome; %d interrupted; %d PUBLISHes answered, %d refused, %d of the answered "
           "never reached Redis; commits applied again from the log at %d starts; %lld log "
           "checkpoints in the rounds; outbox left %lld\n",
           rounds, rounds_lost, ntx, first, charged, twice, processing_twice, unanswered,
           interrupted, s->acked_n, s->refused_n, lost_pub, replayed, checkpoints, left);

    pos_watch_check(&c, moved == 0 && unusable == 0 && wal_failed == 0,
                    "the store opened after every cut (moved aside %d, unusable %d, log set "
                    "aside %d)",
                    moved, unusable, wal_failed);
    pos_watch_check(&c, twice == 0, "no card charged twice: %d of %d charged transactions", twice,
                    charged);
    pos_watch_check(&c, processing_twice == 0, "no PAYMENT_PROCESSING twice: %d", processing_twice);
    pos_watch_check(&c, first == ntx, "every request answered: %d of %d", first, ntx);
    pos_watch_check(&c, unanswered == 0,
                    "every charge's outcome reached the cloud before any request was sent "
                    "again: %d missing",
                    unanswered);
    pos_watch_check(&c, both == 0 && approved_uncharged == 0,
                    "no payment both approved and declined (%d), none approved uncharged (%d)",
                    both, approved_uncharged);
    pos_watch_check(&c, worst_cut <= 1,
                    "interrupted payments at most one a cut: %d in all, at most %d in one cut",
                    interrupted, worst_cut);
    pos_watch_check(&c, lost_pub == 0 && left == 0,
                    "every answered PUBLISH reached Redis: %d of %d lost, outbox left %lld",
                    lost_pub, s->acked_n, left);
    pos_watch_check(&c, redis_count >= s->incr_acked && till_count == redis_count,
                    "no answered INCR lost: %d answered, Redis counts %lld, the till %lld",
                    s->incr_acked, redis_count, till_count);
    pos_watch_check(&c, charged > 0 && s->acked_n > 0,
                    "there was work to lose: %d charges, %d "
                    "PUBLISHes",
                    charged, s->acked_n);
    pos_watch_check(&c, rounds_lost > 0 && replayed > 0,
                    "the cuts cut: %d of %d rounds lost writes, the log was applied again at %d "
                    "starts",
                    rounds_lost, rounds, replayed);
    pos_answers_stop(&ans);
    redisFree(admin);
    free(per_cut);
    free(appr0);
    free(decl0);
    free(ch0.tx);
    free(ch.tx);
    pthread_mutex_destroy(&s->lock);
    free(s);
    pos_watch_verdict(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POS_FIX_TEST(test_power_cuts),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* the local connection of an agent just killed */
    return cmocka_run_group_tests_name("powercut", tests, NULL, NULL);
}
