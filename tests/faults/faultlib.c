#define _GNU_SOURCE
#include "tests/faults/faultlib.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

bool fl_long(void)
{
    const char *v = getenv("POS_FAULTS_LONG");
    return v != NULL && strcmp(v, "1") == 0;
}

void fl_filter(void)
{
    const char *v = getenv("POS_FAULTS_FILTER");
    if (v != NULL && v[0] != '\0') {
        cmocka_set_test_filter(v);
    }
}

long fl_wait_log_ms(const pos_test_agent_t *a, const char *needle, int n, int timeout_ms)
{
    uint64_t t0 = pos_test_now_ms();
    if (!pos_test_agent_wait_log(a, needle, n, timeout_ms)) {
        return -1;
    }
    return (long)(pos_test_now_ms() - t0);
}

int fl_agent_clients(const pos_test_redis_t *r, long long *cmd_id, long long *sub_id)
{
    redisReply *rep = pos_test_redis_cmd(r, "CLIENT LIST");
    char *save = NULL, *copy;
    int n = 0;

    if (cmd_id != NULL) {
        *cmd_id = 0;
    }
    if (sub_id != NULL) {
        *sub_id = 0;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        return -1;
    }
    copy = strdup(rep->str);
    freeReplyObject(rep);
    for (char *l = strtok_r(copy, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, " name=posagent:" FL_TID " ") == NULL) {
            continue;
        }
        long long id = 0;
        sscanf(l, "id=%lld", &id);
        const char *fl = strstr(l, " flags=");
        bool pubsub =
            fl != NULL && strchr(fl + 7, 'P') != NULL && strchr(fl + 7, 'P') < strchr(fl + 7, ' ');
        n++;
        if (pubsub && sub_id != NULL) {
            *sub_id = id;
        } else if (!pubsub && cmd_id != NULL) {
            *cmd_id = id;
        }
    }
    free(copy);
    return n;
}

bool fl_local_publish_seq(redisContext *c, const char *channel, int seq)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "{\"type\":\"FAULT_SEQ\",\"seq\":%d}", seq);
    redisReply *r = redisCommand(c, "PUBLISH %s %s", channel, msg);
    bool ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        fprintf(stderr, "local PUBLISH %d: %s\n", seq,
                r == NULL ? c->errstr : (r->type == REDIS_REPLY_ERROR ? r->str : "?"));
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return ok;
}

int fl_collect(pos_test_sub_t *s, fl_seen_t *seen, int want, int timeout_ms)
{
    uint64_t end = pos_test_now_ms() + (uint64_t)timeout_ms;
    int distinct = 0;
    static bool got[4097];

    memset(got, 0, sizeof(got));
    for (int i = 0; i < seen->n; i++) {
        if (seen->seq[i] > 0 && seen->seq[i] <= 4096 && !got[seen->seq[i]]) {
            got[seen->seq[i]] = true;
            distinct++;
        }
    }
    while (distinct < want && pos_test_now_ms() < end && seen->n < 4096) {
        int left = (int)(end - pos_test_now_ms());
        char *m = pos_test_sub_next(s, left > 0 ? left : 1, NULL, 0);
        if (m == NULL) {
            break;
        }
        cJSON *j = cJSON_Parse(m);
        free(m);
        cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
        cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "seq");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "outboxId");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "FAULT_SEQ") == 0 && cJSON_IsNumber(q) &&
            cJSON_IsNumber(id)) {
            int sq = (int)q->valuedouble;
            seen->seq[seen->n] = sq;
            seen->outbox_id[seen->n] = (long long)id->valuedouble;
            seen->n++;
            if (sq > 0 && sq <= 4096 && !got[sq]) {
                got[sq] = true;
                distinct++;
            }
        }
        cJSON_Delete(j);
    }
    return distinct;
}

int fl_check_order(const fl_seen_t *seen, int k)
{
    int next = 1, dups = 0;
    long long last_id = 0;
    static long long id_of[4097];

    for (int i = 0; i < seen->n; i++) {
        int s = seen->seq[i];
        if (s == next) {
            if (seen->outbox_id[i] <= last_id) {
                fprintf(stderr, "order: seq %d has outboxId %lld after %lld\n", s,
                        seen->outbox_id[i], last_id);
                return -1;
            }
            last_id = seen->outbox_id[i];
            if (s <= 4096) {
                id_of[s] = last_id;
            }
            next++;
        } else if (s >= 1 && s < next) {
            /* A redelivery of something already seen: the same entry. */
            if (s <= 4096 && seen->outbox_id[i] != id_of[s]) {
                fprintf(stderr, "order: seq %d came again as outboxId %lld (was %lld)\n", s,
                        seen->outbox_id[i], id_of[s]);
                return -1;
            }
            dups++;
        } else {
            fprintf(stderr, "order: seq %d arrived while %d was expected (gap or reorder)\n", s,
                    next);
            return -1;
        }
    }
    if (next != k + 1) {
        fprintf(stderr, "order: only %d of %d messages arrived\n", next - 1, k);
        return -1;
    }
    return dups;
}

int fl_fd_count(pid_t pid)
{
    char path[64];
    int n = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}
