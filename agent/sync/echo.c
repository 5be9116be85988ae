#include "agent/sync/echo.h"

#include <string.h>

#include "platform/hash.h"

void pos_echo_init(pos_echo_t *e, uint64_t key)
{
    memset(e, 0, sizeof(*e));
    e->basis = POS_FNV1A64_BASIS ^ key;
}

uint64_t pos_echo_hash(const pos_echo_t *e, const void *msg, size_t len)
{
    return pos_fnv1a64_add(e->basis, msg, len);
}

void pos_echo_note(pos_echo_t *e, const void *msg, size_t len, uint64_t now_ms)
{
    pos_echo_slot_t *s = &e->slot[e->next];

    if (!s->used) {
        e->used++;
    }
    *s = (pos_echo_slot_t){pos_echo_hash(e, msg, len), now_ms, len, true};
    e->next = (e->next + 1) % POS_ECHO_SLOTS;
}

bool pos_echo_take(pos_echo_t *e, const void *msg, size_t len, uint64_t now_ms)
{
    if (e->used == 0) {
        return false;
    }
    uint64_t h = pos_echo_hash(e, msg, len);
    bool found = false;

    /* Every slot: a message published twice (the same bytes) has two
     * entries, and each echo takes one. Old entries go on the way. */
    for (unsigned i = 0; i < POS_ECHO_SLOTS && e->used > 0; i++) {
        pos_echo_slot_t *s = &e->slot[i];
        if (!s->used) {
            continue;
        }
        bool stale = now_ms > s->at_ms + POS_ECHO_MAX_AGE_MS;
        bool match = !stale && !found && s->len == len && s->hash == h;
        if (stale || match) {
            s->used = false;
            e->used--;
            found = found || match;
        }
    }
    return found;
}
