#include "tests/support/cluster.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define NODE_ID_MAX 48

static redisContext *node_connect(const pos_test_redis_t *r)
{
    return r->pid > 0 ? pos_test_redis_connect(r) : NULL;
}

static redisReply *node_cmd(const pos_test_redis_t *r, const char *fmt, ...)
{
    redisContext *ctx = node_connect(r);
    redisReply *rep;
    va_list ap;

    if (ctx == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    rep = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    redisFree(ctx);
    return rep;
}

static bool node_info_has(const pos_test_redis_t *r, const char *cmd, const char *arg,
                          const char *needle)
{
    redisReply *rep = node_cmd(r, "%s %s", cmd, arg);
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STRING && strstr(rep->str, needle) != NULL;

    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

static int node_id(const pos_test_redis_t *r, char *id)
{
    redisReply *rep = node_cmd(r, "CLUSTER MYID");
    int rc = -1;

    if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len < NODE_ID_MAX) {
        memcpy(id, rep->str, rep->len + 1);
        rc = 0;
    }
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return rc;
}

static int node_index_of_port(const pos_test_cluster_t *c, long long port)
{
    for (int i = 0; i < c->n; i++) {
        if (c->node[i].port == port) {
            return i;
        }
    }
    return -1;
}

static int node_start(pos_test_cluster_t *c, int i)
{
    pos_test_redis_t *r = &c->node[i];
    int k = 0;

    r->extra[k++] = "--cluster-enabled";
    r->extra[k++] = "yes";
    r->extra[k++] = "--cluster-config-file";
    r->extra[k++] = "nodes.conf";
    /* Replicas in sync at once, not after the default 5 s delay. */
    r->extra[k++] = "--repl-diskless-sync-delay";
    r->extra[k++] = "0";
    r->extra[k++] = "--cluster-node-timeout";
    r->extra[k++] = c->timeout;
    if (c->bus_port[i][0] == '\0') {
        snprintf(c->bus_port[i], sizeof(c->bus_port[i]), "%u", (unsigned)pos_test_free_port());
    }
    r->extra[k++] = "--cluster-port";
    r->extra[k++] = c->bus_port[i];
    r->extra[k] = NULL;
    return pos_test_redis_start(r);
}

/* Every running node is ok, every replica in sync, and all agree on the
 * owner of slot 0, 8191 and 16383. */
static bool cluster_settled(void *arg)
{
    const pos_test_cluster_t *c = arg;
    int owner[3] = {-2, -2, -2};
    const int probe[3] = {0, 8191, 16383};

    for (int i = 0; i < c->n; i++) {
        if (c->node[i].pid <= 0) {
            continue;
        }
        if (!node_info_has(&c->node[i], "CLUSTER", "INFO", "cluster_state:ok")) {
            return false;
        }
        if (!pos_test_cluster_is_primary(c, i) &&
            !node_info_has(&c->node[i], "INFO", "replication", "master_link_status:up")) {
            return false;
        }
    }
    for (int i = 0; i < c->n; i++) {
        if (c->node[i].pid <= 0) {
            continue;
        }
        redisReply *rep = node_cmd(&c->node[i], "CLUSTER SLOTS");
        bool ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY;
        for (int p = 0; ok && p < 3; p++) {
            int who = -1;
            for (size_t e = 0; e < rep->elements; e++) {
                const redisReply *ent = rep->element[e];
                if (ent->elements >= 3 && ent->element[0]->integer <= probe[p] &&
                    probe[p] <= ent->element[1]->integer) {
                    who = node_index_of_port(c, ent->element[2]->element[1]->integer);
                }
            }
            ok = who >= 0 && (owner[p] == -2 || owner[p] == who);
            owner[p] = who;
        }
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

long pos_test_cluster_wait_ok(const pos_test_cluster_t *c, int timeout_ms)
{
    return pos_test_poll(cluster_settled, (void *)c, 100, timeout_ms);
}

/* The full path of a program on $PATH (pos_test_run execs without a
 * search), or NULL. */
static const char *which(const char *prog, char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    char dirs[1024];
    char *save = NULL;

    snprintf(dirs, sizeof(dirs), "%s", path != NULL ? path : "/usr/bin:/bin");
    for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, cap, "%s/%s", d, prog);
        if (access(buf, X_OK) == 0) {
            return buf;
        }
    }
    return NULL;
}

int pos_test_cluster_start(pos_test_cluster_t *c, int primaries, int replicas, int node_timeout_ms)
{
    char cli[300];
    const char *argv[4 + POS_TEST_CLUSTER_MAX + 8];
    char addr[POS_TEST_CLUSTER_MAX][32], nrep[8];
    char *out = NULL;
    int argc = 0, rc;

    memset(c, 0, sizeof(*c));
    c->n = primaries * (1 + replicas);
    if (c->n > POS_TEST_CLUSTER_MAX || primaries < 1) {
        return -1;
    }
    snprintf(c->timeout, sizeof(c->timeout), "%d", node_timeout_ms);
    argv[argc++] = which("redis-cli", cli, sizeof(cli));
    if (argv[0] == NULL) {
        fprintf(stderr, "cluster: redis-cli not found\n");
        return -1;
    }
    argv[argc++] = "--cluster";
    argv[argc++] = "create";
    for (int i = 0; i < c->n; i++) {
        if (node_start(c, i) != 0) {
            fprintf(stderr, "cluster: node %d did not start\n", i);
            pos_test_cluster_stop(c);
            return -1;
        }
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%u", (unsigned)c->node[i].port);
        argv[argc++] = addr[i];
    }
    snprintf(nrep, sizeof(nrep), "%d", replicas);
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = nrep;
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    rc = pos_test_run(argv, NULL, &out, 60000);
    if (rc != 0) {
        fprintf(stderr, "cluster: redis-cli --cluster create failed (%d):\n%s\n", rc,
                out != NULL ? out : "");
        free(out);
        pos_test_cluster_stop(c);
        return -1;
    }
    free(out);
    if (pos_test_cluster_wait_ok(c, 30000) < 0) {
        fprintf(stderr, "cluster: not ok within 30 s\n");
        pos_test_cluster_stop(c);
        return -1;
    }
    return 0;
}

void pos_test_cluster_stop(pos_test_cluster_t *c)
{
    for (int i = 0; i < c->n; i++) {
        pos_test_redis_stop(&c->node[i]);
    }
}

int pos_test_cluster_restart(pos_test_cluster_t *c, int i)
{
    return node_start(c, i);
}

void pos_test_cluster_seeds(const pos_test_cluster_t *c, char *buf, size_t cap, int count)
{
    size_t len = 0;

    buf[0] = '\0';
    for (int i = 0; i < c->n && (count == 0 || i < count); i++) {
        int n = snprintf(buf + len, cap - len, "%s127.0.0.1:%u", i > 0 ? "," : "",
                         (unsigned)c->node[i].port);
        if (n < 0 || (size_t)n >= cap - len) {
            break;
        }
        len += (size_t)n;
    }
}

/* Any running node. */
static const pos_test_redis_t *any_node(const pos_test_cluster_t *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->node[i].pid > 0) {
            return &c->node[i];
        }
    }
    return NULL;
}

int pos_test_cluster_slot(const pos_test_cluster_t *c, const char *key)
{
    const pos_test_redis_t *r = any_node(c);
    redisReply *rep = r != NULL ? node_cmd(r, "CLUSTER KEYSLOT %s", key) : NULL;
    int slot = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;

    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return slot;
}

int pos_test_cluster_owner(const pos_test_cluster_t *c, int slot)
{
    int who = -1;

    for (int i = 0; i < c->n && who < 0; i++) {
        if (!pos_test_cluster_is_primary(c, i)) {
            continue;
        }
        redisReply *rep = node_cmd(&c->node[i], "CLUSTER SLOTS");
        for (size_t e = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && e < rep->elements;
             e++) {
            const redisReply *ent = rep->element[e];
            if (ent->element[0]->integer <= slot && slot <= ent->element[1]->integer) {
                who = node_index_of_port(c, ent->element[2]->element[1]->integer);
            }
        }
        if (rep != NULL) {
            freeReplyObject(rep);
        }
    }
    return who;
}

bool pos_test_cluster_is_primary(const pos_test_cluster_t *c, int i)
{
    redisReply *rep = c->node[i].pid > 0 ? node_cmd(&c->node[i], "ROLE") : NULL;
    bool ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
              strcmp(rep->element[0]->str, "master") == 0;

    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

int pos_test_cluster_other_primary(const pos_test_cluster_t *c, int not )
{
    for (int i = 0; i < c->n; i++) {
        if (i != not &&pos_test_cluster_is_primary(c, i)) {
            return i;
        }
    }
    return -1;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the node's index, or -1. */
static int redirect_target(const pos_test_cluster_t *c, const redisReply *rep, bool *ask)
{
    const char *colon;

    if (rep->type != REDIS_REPLY_ERROR) {
        return -1;
    }
    *ask = strncmp(rep->str, "ASK ", 4) == 0;
    if (!*ask && strncmp(rep->str, "MOVED ", 6) != 0) {
        return -1;
    }
    colon = strrchr(rep->str, ':');
    return colon != NULL ? node_index_of_port(c, strtol(colon + 1, NULL, 10)) : -1;
}

redisReply *pos_test_cluster_cmd(const pos_test_cluster_t *c, const char *fmt, ...)
{
    const pos_test_redis_t *r = any_node(c);
    char *cmd = NULL;
    redisReply *rep = NULL;
    bool ask = false;
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        return NULL;
    }
    for (int tries = 0; r != NULL && tries < 6; tries++) {
        redisContext *ctx = node_connect(r);
        void *out = NULL;
        if (ctx == NULL) {
            break;
        }
        if (ask) {
            redisAppendCommand(ctx, "ASKING");
        }
        redisAppendFormattedCommand(ctx, cmd, (size_t)len);
        if (ask && redisGetReply(ctx, &out) == REDIS_OK) {
            freeReplyObject(out);
            out = NULL;
        }
        if (redisGetReply(ctx, &out) != REDIS_OK) {
            out = NULL;
        }
        redisFree(ctx);
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        rep = out;
        int to = rep != NULL ? redirect_target(c, rep, &ask) : -1;
        if (to < 0) {
            break;
        }
        r = &c->node[to];
    }
    free(cmd);
    return rep;
}

char *pos_test_cluster_get(const pos_test_cluster_t *c, const char *key)
{
    redisReply *rep = pos_test_cluster_cmd(c, "GET %s", key);
    char *v = rep != NULL && rep->type == REDIS_REPLY_STRING ? strndup(rep->str, rep->len) : NULL;

    freeReplyObject(rep); /* NULL is fine */
    return v;
}

/* MIGRATEs up to "max" keys of slot from node "from" to node "to".
 * Returns the number moved, or -1. */
static int migrate_keys(pos_test_cluster_t *c, int slot, int from, int to, int max)
{
    redisReply *keys = node_cmd(&c->node[from], "CLUSTER GETKEYSINSLOT %d %d", slot, max);
    const char *argv[8 + 100];
    char port[8];
    int argc = 0, moved = -1;

    if (keys == NULL || keys->type != REDIS_REPLY_ARRAY) {
        goto out;
    }
    moved = (int)keys->elements;
    if (moved == 0) {
        goto out;
    }
    snprintf(port, sizeof(port), "%u", (unsigned)c->node[to].port);
    argv[argc++] = "MIGRATE";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = port;
    argv[argc++] = "";
    argv[argc++] = "0";
    argv[argc++] = "5000";
    argv[argc++] = "KEYS";
    for (size_t i = 0; i < keys->elements && argc < 8 + 100; i++) {
        argv[argc++] = keys->element[i]->str;
    }
    {
        redisContext *ctx = node_connect(&c->node[from]);
        redisReply *rep = ctx != NULL ? redisCommandArgv(ctx, argc, argv, NULL) : NULL;
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "cluster: MIGRATE failed: %s\n", rep != NULL ? rep->str : "no reply");
            moved = -1;
        }
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (ctx != NULL) {
            redisFree(ctx);
        }
    }
out:
    if (keys != NULL) {
        freeReplyObject(keys);
    }
    return moved;
}

static bool reply_ok(redisReply *rep)
{
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
    if (rep != NULL) {
        if (!ok) {
            fprintf(stderr, "cluster: %s\n", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        }
        freeReplyObject(rep);
    }
    return ok;
}

int pos_test_cluster_move_slot(pos_test_cluster_t *c, int slot, int to, int pause_ms)
{
    int from = pos_test_cluster_owner(c, slot);
    char from_id[NODE_ID_MAX], to_id[NODE_ID_MAX];
    int total = 0, moved;

    if (from < 0 || from == to || node_id(&c->node[from], from_id) != 0 ||
        node_id(&c->node[to], to_id) != 0) {
        return -1;
    }
    if (!reply_ok(node_cmd(&c->node[to], "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id)) ||
        !reply_ok(node_cmd(&c->node[from], "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id))) {
        return -1;
    }
    {
        /* Half of the keys first, then the pause: the slot is split. */
        redisReply *n = node_cmd(&c->node[from], "CLUSTER COUNTKEYSINSLOT %d", slot);
        total = n != NULL && n->type == REDIS_REPLY_INTEGER ? (int)n->integer : 0;
        if (n != NULL) {
            freeReplyObject(n);
        }
    }
    if (pause_ms > 0 && total > 1) {
        if (migrate_keys(c, slot, from, to, total / 2 > 100 ? 100 : total / 2) < 0) {
            return -1;
        }
        pos_test_sleep_ms(pause_ms);
    }
    while ((moved = migrate_keys(c, slot, from, to, 100)) > 0) {
    }
    if (moved < 0) {
        return -1;
    }
    /* The new owner first, then the old one, then everyone: as redis-cli. */
    if (!reply_ok(node_cmd(&c->node[to], "CLUSTER SETSLOT %d NODE %s", slot, to_id)) ||
        !reply_ok(node_cmd(&c->node[from], "CLUSTER SETSLOT %d NODE %s", slot, to_id))) {
        return -1;
    }
    for (int i = 0; i < c->n; i++) {
        if (i != to && i != from && pos_test_cluster_is_primary(c, i)) {
            reply_ok(node_cmd(&c->node[i], "CLUSTER SETSLOT %d NODE %s", slot, to_id));
        }
    }
    return 0;
}
