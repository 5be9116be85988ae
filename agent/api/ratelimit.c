#include "agent/api/ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/hash.h"

int pos_ratelimit_init(pos_ratelimit_t *rl, size_t cap)
{
    memset(rl, 0, sizeof(*rl));
    rl->cap = cap != 0 ? cap : POS_RL_DEFAULT_CAP;
    rl->entries = calloc(rl->cap, sizeof(*rl->entries));
    if (rl->entries == NULL) {
        rl->cap = 0;
        return -ENOMEM;
    }
    return 0;
}

void pos_ratelimit_free(pos_ratelimit_t *rl)
{
    free(rl->entries);
    memset(rl, 0, sizeof(*rl));
}

bool pos_ratelimit_valid_id(const char *id, size_t len)
{
    if (len == 0 || len > POS_RL_IDENT_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("._-:@+=/", c) != NULL;
        if (!ok || c == '\0') {
            return false;
        }
    }
    return true;
}

/* FNV-1a over the identifier and the window; never 0 (0 marks a free entry). */
static uint64_t rl_hash(const char *id, size_t len, uint32_t window_ms)
{
    unsigned char w[4];

    for (int i = 0; i < 4; i++) {
        w[i] = (unsigned char)(window_ms >> (8 * i));
    }
    uint64_t h = pos_fnv1a64_add(pos_fnv1a64(id, len), w, sizeof(w));
    return h != 0 ? h : 1;
}

/* The entry of (id, window), made (replacing the least recently used one
 * when the table is full) when there is none. */
static pos_rl_entry_t *rl_entry(pos_ratelimit_t *rl, const char *id, size_t len, uint32_t window_ms)
{
    uint64_t h = rl_hash(id, len, window_ms);
    pos_rl_entry_t *free_e = NULL, *lru = NULL;

    for (size_t i = 0; i < rl->cap; i++) {
        pos_rl_entry_t *e = &rl->entries[i];
        if (e->hash == 0) {
            if (free_e == NULL) {
                free_e = e;
            }
            continue;
        }
        if (e->hash == h && e->window_ms == window_ms && e->id_len == len &&
            memcmp(e->id, id, len) == 0) {
            return e;
        }
        if (lru == NULL || e->last_used < lru->last_used) {
            lru = e;
        }
    }
    if (free_e == NULL) {
        free_e = lru;
        rl->evicted++;
    } else {
        rl->used++;
    }
    memset(free_e, 0, sizeof(*free_e));
    free_e->hash = h;
    free_e->window_ms = window_ms;
    free_e->id_len = (uint32_t)len;
    memcpy(free_e->id, id, len);
    return free_e;
}

static uint64_t rl_width(uint32_t window_ms)
{
    return (window_ms + POS_RL_BUCKETS - 1u) / POS_RL_BUCKETS;
}

/*
 * Counts the live requests of e at now (buckets whose last millisecond is
 * less than window_ms old) and finds the oldest live bucket's reset time.
 */
static uint64_t rl_count(const pos_rl_entry_t *e, uint64_t now, uint64_t *reset)
{
    uint64_t w = rl_width(e->window_ms);
    uint64_t cur = now / w;
    /* Bucket b counts while (b + 1) * w - 1 + window > now. */
    uint64_t lo = now + 1 > e->window_ms ? (now + 1 - e->window_ms) / w : 0;
    uint64_t n = 0, oldest = UINT64_MAX;

    for (size_t i = 0; i < POS_RL_SLOTS; i++) {
        if (e->count[i] != 0 && e->bucket[i] >= lo && e->bucket[i] <= cur) {
            n += e->count[i];
            if (e->bucket[i] < oldest) {
                oldest = e->bucket[i];
            }
        }
    }
    *reset = oldest != UINT64_MAX ? (oldest + 1) * w - 1 + e->window_ms : now + e->window_ms;
    return n;
}

static void rl_add(pos_rl_entry_t *e, uint64_t now)
{
    uint64_t cur = now / rl_width(e->window_ms);
    size_t slot = (size_t)(cur % POS_RL_SLOTS);

    if (e->bucket[slot] != cur) {
        e->bucket[slot] = cur;
        e->count[slot] = 0;
    }
    if (e->count[slot] < UINT32_MAX) {
        e->count[slot]++;
    }
}

static bool rl_args_ok(const pos_ratelimit_t *rl, const char *id, size_t len, uint32_t window_ms)
{
    return rl->entries != NULL && pos_ratelimit_valid_id(id, len) && window_ms >= 1 &&
           window_ms <= POS_RL_WINDOW_MAX;
}

int pos_ratelimit_check(pos_ratelimit_t *rl, const char *id, size_t len, uint32_t window_ms,
                        uint32_t max, uint64_t now_ms, pos_rl_result_t *out)
{
    pos_rl_entry_t *e;
    uint64_t n, reset;

    if (!rl_args_ok(rl, id, len, window_ms) || max < 1 || max > POS_RL_MAX_MAX) {
        return -EINVAL;
    }
    e = rl_entry(rl, id, len, window_ms);
    e->last_used = ++rl->uses;
    n = rl_count(e, now_ms, &reset);
    out->allowed = n < max;
    if (out->allowed) {
        rl_add(e, now_ms);
        n++;
        (void)rl_count(e, now_ms, &reset);
    }
    out->remaining = n < max ? (uint32_t)(max - n) : 0;
    out->reset_ms = reset;
    return 0;
}

int pos_ratelimit_record(pos_ratelimit_t *rl, const char *id, size_t len, uint32_t window_ms,
                         uint64_t now_ms)
{
    pos_rl_entry_t *e;

    if (!rl_args_ok(rl, id, len, window_ms)) {
        return -EINVAL;
    }
    e = rl_entry(rl, id, len, window_ms);
    e->last_used = ++rl->uses;
    rl_add(e, now_ms);
    return 0;
}
