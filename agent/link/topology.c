#include "agent/link/topology.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void pos_topology_clear(pos_topology_t *t)
{
    memset(t->owner, 0, sizeof(t->owner));
    t->nnodes = 0;
}

int pos_topology_find(const pos_topology_t *t, const char *host, uint16_t port)
{
    for (size_t i = 0; i < t->nnodes; i++) {
        if (t->nodes[i].port == port && strcmp(t->nodes[i].host, host) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Index of host:port, added when new; -ENOSPC when full. */
static int topology_node(pos_topology_t *t, const char *host, uint16_t port)
{
    int i = pos_topology_find(t, host, port);

    if (i >= 0) {
        return i;
    }
    if (t->nnodes == POS_TOPOLOGY_NODES_MAX) {
        return -ENOSPC;
    }
    snprintf(t->nodes[t->nnodes].host, sizeof(t->nodes[0].host), "%s", host);
    t->nodes[t->nnodes].port = port;
    return (int)t->nnodes++;
}

int pos_topology_set(pos_topology_t *t, uint16_t slot, const char *host, uint16_t port)
{
    int i = topology_node(t, host, port);

    if (i >= 0) {
        t->owner[slot & (POS_SLOT_COUNT - 1)] = (uint8_t)(i + 1);
    }
    return i;
}

const pos_topology_addr_t *pos_topology_owner(const pos_topology_t *t, uint16_t slot)
{
    uint8_t o = t->owner[slot & (POS_SLOT_COUNT - 1)];
    return o != 0 ? &t->nodes[o - 1] : NULL;
}

size_t pos_topology_covered(const pos_topology_t *t)
{
    size_t n = 0;

    for (size_t s = 0; s < POS_SLOT_COUNT; s++) {
        n += t->owner[s] != 0;
    }
    return n;
}

/* A host as a node reports it: printable, no blanks, fits. */
static bool host_ok(const char *s, size_t len)
{
    if (len == 0 || len >= POS_URL_HOST_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

static int slots_fail(pos_topology_t *t, char *why, size_t whylen, int rc, const char *msg,
                      size_t entry)
{
    pos_topology_clear(t);
    snprintf(why, whylen, "CLUSTER SLOTS: %s (entry %zu)", msg, entry + 1);
    return rc;
}

int pos_topology_from_slots(pos_topology_t *t, const redisReply *r, const char *asked_host,
                            char *why, size_t whylen)
{
    pos_topology_clear(t);
    if (r->type != REDIS_REPLY_ARRAY) {
        return slots_fail(t, why, whylen, -EPROTO, "not an array", 0);
    }
    for (size_t e = 0; e < r->elements; e++) {
        const redisReply *ent = r->element[e], *node, *h, *p;
        char host[POS_URL_HOST_MAX];
        int idx;

        if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 3 ||
            ent->element[0]->type != REDIS_REPLY_INTEGER ||
            ent->element[1]->type != REDIS_REPLY_INTEGER ||
            ent->element[2]->type != REDIS_REPLY_ARRAY) {
            return slots_fail(t, why, whylen, -EPROTO, "malformed range", e);
        }
        long long from = ent->element[0]->integer, to = ent->element[1]->integer;
        if (from < 0 || to < from || to >= (long long)POS_SLOT_COUNT) {
            return slots_fail(t, why, whylen, -EPROTO, "slot out of range", e);
        }
        node = ent->element[2];
        if (node->elements < 2) {
            return slots_fail(t, why, whylen, -EPROTO, "malformed node", e);
        }
        h = node->element[0];
        p = node->element[1];
        if (p->type != REDIS_REPLY_INTEGER || p->integer < 1 || p->integer > 65535 ||
            (h->type != REDIS_REPLY_STRING && h->type != REDIS_REPLY_NIL)) {
            return slots_fail(t, why, whylen, -EPROTO, "malformed node", e);
        }
        if (h->type == REDIS_REPLY_NIL || h->len == 0) {
            /* "The address you used to reach me." */
            snprintf(host, sizeof(host), "%s", asked_host);
        } else if (h->len == 1 && h->str[0] == '?') {
            continue; /* no usable endpoint yet: no owner for these slots */
        } else if (!host_ok(h->str, h->len)) {
            return slots_fail(t, why, whylen, -EPROTO, "malformed host", e);
        } else {
            memcpy(host, h->str, h->len);
            host[h->len] = '\0';
        }
        idx = topology_node(t, host, (uint16_t)p->integer);
        if (idx < 0) {
            return slots_fail(t, why, whylen, -ENOSPC, "too many primaries", e);
        }
        memset(&t->owner[from], idx + 1, (size_t)(to - from + 1));
    }
    return 0;
}

int pos_topology_parse_redirect(const char *msg, size_t len, pos_topology_redirect_t *out)
{
    const char *p = msg, *end = msg + len, *colon = NULL, *sp;
    unsigned long slot = 0, port = 0;
    size_t hlen;

    memset(out, 0, sizeof(*out));
    if (len >= 6 && memcmp(msg, "MOVED ", 6) == 0) {
        p += 6;
    } else if (len >= 4 && memcmp(msg, "ASK ", 4) == 0) {
        out->ask = true;
        p += 4;
    } else {
        return -ENOENT;
    }
    /* <slot> */
    if (p == end || *p < '0' || *p > '9') {
        return -EPROTO;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        slot = slot * 10 + (unsigned long)(*p++ - '0');
        if (slot >= POS_SLOT_COUNT) {
            return -EPROTO;
        }
    }
    if (p == end || *p++ != ' ') {
        return -EPROTO;
    }
    /* <host>:<port>, the host possibly an unbracketed IPv6 address or empty. */
    sp = memchr(p, ' ', (size_t)(end - p));
    if (sp != NULL) {
        end = sp; /* nothing follows in Redis 7; tolerate it */
    }
    for (const char *q = p; q < end; q++) {
        if (*q == ':') {
            colon = q;
        }
    }
    if (colon == NULL || colon + 1 == end) {
        return -EPROTO;
    }
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9' || (port = port * 10 + (unsigned long)(*q - '0')) > 65535) {
            return -EPROTO;
        }
    }
    hlen = (size_t)(colon - p);
    if (port == 0 || (hlen > 0 && !host_ok(p, hlen))) {
        return -EPROTO;
    }
    memcpy(out->host, p, hlen);
    out->host[hlen] = '\0';
    out->slot = (uint16_t)slot;
    out->port = (uint16_t)port;
    return 0;
}
