/*
 * Fuzz target for what the Redis Cluster client reads from the servers:
 * CLUSTER SLOTS replies (pos_topology_from_slots, built by hiredis's reader
 * from the input bytes), -MOVED / -ASK errors (pos_topology_parse_redirect),
 * and the routing of a command whose arguments are the input split at NUL
 * bytes (pos_route_classify). Besides memory safety it checks: a refused
 * map is empty and says why in one line; an accepted one has owners only
 * among its nodes, each with a host and a port; a redirection has a slot
 * below 16384 and a port; a route's key index is inside the command.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agent/link/route.h"
#include "agent/link/topology.h"
#include "tests/support/fuzz.h"

static pos_topology_t map;

/* One CLUSTER SLOTS reply. */
static void fuzz_slots(const redisReply *reply, void *arg)
{
    char why[160] = "";
    int rc = pos_topology_from_slots(&map, reply, "asked.example", why, sizeof(why));

    (void)arg;
    POS_FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -ENOSPC);
    if (rc != 0) {
        POS_FUZZ_CHECK(map.nnodes == 0 && why[0] != '\0' && strchr(why, '\n') == NULL);
    }
    POS_FUZZ_CHECK(map.nnodes <= POS_TOPOLOGY_NODES_MAX);
    for (size_t i = 0; i < map.nnodes; i++) {
        POS_FUZZ_CHECK(map.nodes[i].host[0] != '\0' && map.nodes[i].port != 0);
    }
    for (size_t s = 0; s < POS_SLOT_COUNT; s++) {
        POS_FUZZ_CHECK(map.owner[s] <= map.nnodes);
    }
}

static void fuzz_redirect(const uint8_t *data, size_t size)
{
    pos_topology_redirect_t rd;
    int rc = pos_topology_parse_redirect((const char *)data, size, &rd);

    POS_FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EPROTO);
    if (rc == 0) {
        POS_FUZZ_CHECK(rd.slot < POS_SLOT_COUNT && rd.port != 0 &&
                       strlen(rd.host) < sizeof(rd.host));
        POS_FUZZ_CHECK(pos_topology_set(&map, rd.slot, rd.host, rd.port) >= 0 ||
                       map.nnodes == POS_TOPOLOGY_NODES_MAX);
    }
}

static void fuzz_route(const uint8_t *data, size_t size)
{
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    size_t start = 0;

    for (size_t i = 0; i <= size && argc < 32; i++) {
        if (i == size || data[i] == 0) {
            argv[argc] = (const char *)data + start;
            lens[argc] = i - start;
            argc++;
            start = i + 1;
        }
    }
    pos_route_t r = pos_route_classify(argc, argv, lens);
    POS_FUZZ_CHECK(r.kind <= POS_ROUTE_REFUSED);
    if (r.kind == POS_ROUTE_KEY) {
        POS_FUZZ_CHECK(r.key >= 1 && r.key < argc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the parser, so one corpus covers all three. */
    if (size == 0 || size > 1 << 20) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        pos_fuzz_replies(data + 1, size - 1, fuzz_slots, NULL);
        break;
    case 1:
        fuzz_redirect(data + 1, size - 1);
        break;
    default:
        fuzz_route(data + 1, size - 1);
        break;
    }
    return 0;
}
