#include "agent/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/api/localapi.h"
#include "platform/dirs.h"
#include "platform/files.h"
#include "platform/hex.h"
#include "platform/lockfile.h"
#include "platform/log.h"

/*
 * Takes the lease when it is free or already this till's (its value starts
 * with our token and a space), for PX ttl; otherwise answers who holds it.
 * KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] the full value.
 */
static const char lease_acquire[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then "
    "redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2]) return 1 end "
    "return v";

/* Gives the lease up, if it is still this till's. KEYS[1] lease; ARGV[1]
 * token. EXPIRE 0 deletes it (and needs no DEL in the till's ACL). */
static const char lease_release[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then "
    "return redis.call('EXPIRE', KEYS[1], 0) end "
    "return 0";

static bool token_valid(const char *t, size_t n)
{
    if (n != POS_INSTANCE_TOKEN_HEX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (pos_hex_digit(t[i]) < 0) {
            return false;
        }
    }
    return true;
}

/* Reads dir/instance.id: 0 with the token, -ENOENT or another error. */
static int token_read(const char *path, char token[POS_INSTANCE_TOKEN_HEX + 1])
{
    char buf[POS_INSTANCE_TOKEN_HEX + 2];
    ssize_t n;
    int fd = pos_file_open(path, O_RDONLY, 0);

    if (fd < 0) {
        return fd;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }
    if (n < 0 || !token_valid(buf, (size_t)n)) {
        return -EINVAL;
    }
    memcpy(token, buf, POS_INSTANCE_TOKEN_HEX);
    token[POS_INSTANCE_TOKEN_HEX] = '\0';
    return 0;
}

int pos_instance_token(const char *dir, char token[POS_INSTANCE_TOKEN_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[POS_INSTANCE_TOKEN_HEX / 2];
    char path[300];

    if ((size_t)snprintf(path, sizeof(path), "%s/instance.id", dir) >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    if (token_read(path, token) == 0) {
        return 0;
    }
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        token[2 * i] = hex[raw[i] >> 4];
        token[2 * i + 1] = hex[raw[i] & 15];
    }
    token[POS_INSTANCE_TOKEN_HEX] = '\0';
    /* Durable: a crash leaves no token or the whole one. */
    char line[POS_INSTANCE_TOKEN_HEX + 2];
    snprintf(line, sizeof(line), "%s\n", token);
    return pos_file_replace(path, line, strlen(line), 0600, true);
}

static int instance_gate(void *ctx, const redisReply *r)
{
    pos_instance_t *in = ctx;
    char holder[sizeof(in->value)];
    int rc = pos_instance_lease_reply(r, holder, sizeof(holder));

    if (rc == -EPERM) {
        in->lost = true;
        if (in->on_lost != NULL) {
            in->on_lost(in->ctx, holder);
        }
    }
    /* The agent hears of it and says why (agent.c). */
    return rc == -EPROTO && r->type == REDIS_REPLY_ERROR ? pos_link_classify_error(r->str, r->len)
                                                         : rc;
}

int pos_instance_claim(pos_instance_t *in, const pos_instance_options_t *o, char *why,
                       size_t whylen)
{
    char lock[300], host[64];
    pid_t holder = 0;
    int rc;

    memset(in, 0, sizeof(*in));
    in->store_fd = in->socket_fd = -1;
    /* A store directory that cannot even be made or locked is a store that
     * cannot be opened: the agent runs on without it (no payment then) and
     * says so; the socket and the lease still keep a second agent out. */
    rc = pos_dirs_make(o->store_path, 0700, 0700);
    if ((size_t)snprintf(lock, sizeof(lock), "%s/posagent.lock", o->store_path) >= sizeof(lock)) {
        rc = -ENAMETOOLONG;
    }
    if (rc == 0) {
        rc = pos_lockfile_take(lock, &in->store_fd, &holder);
    }
    if (rc == -EBUSY) {
        snprintf(why, whylen,
                 "another agent runs on the store %s (it holds %s, pid %ld): one agent per till",
                 o->store_path, lock, (long)holder);
        return rc;
    }
    if (rc != 0) {
        POS_WARN("agent", "cannot lock the store directory %s: %s", o->store_path, strerror(-rc));
    }
    rc = pos_localapi_lock(o->socket_path, o->socket_group, &in->socket_fd, why, whylen);
    if (rc != 0) {
        goto fail_socket;
    }
    rc = in->store_fd >= 0 ? pos_instance_token(o->store_path, in->token) : -ENOENT;
    if (rc != 0) {
        /* A token for this run only: the lease still works, but a restart
         * waits for it to lapse. */
        unsigned char raw[POS_INSTANCE_TOKEN_HEX / 2];
        POS_WARN("agent",
                 "cannot keep the instance token in %s/instance.id (%s): a restart waits for the "
                 "lease to lapse",
                 o->store_path, strerror(-rc));
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            snprintf(why, whylen, "no random bytes for an instance token");
            rc = -EIO;
            goto fail_token;
        }
        for (size_t i = 0; i < sizeof(raw); i++) {
            snprintf(in->token + 2 * i, 3, "%02x", raw[i]);
        }
    }
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "?");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(in->value, sizeof(in->value), "%s %.63s pid %ld", in->token, host, (long)getpid());
    snprintf(in->key, sizeof(in->key), "posagent:lease:%s", o->terminal_id);
    pos_instance_set_lease_ttl(in, o->lease_ttl_s);
    in->acquire[0] = "EVAL";
    in->acquire[1] = lease_acquire;
    in->acquire[2] = "1";
    in->acquire[3] = in->key;
    in->acquire[4] = in->token;
    in->acquire[5] = in->ttl_ms;
    in->acquire[6] = in->value;
    in->release[0] = "EVAL";
    in->release[1] = lease_release;
    in->release[2] = "1";
    in->release[3] = in->key;
    in->release[4] = in->token;
    in->gate.argc = 7;
    in->gate.argv = in->acquire;
    in->gate.check = instance_gate;
    in->gate.ctx = in;
    return 0;

fail_token:
    close(in->socket_fd);
    in->socket_fd = -1;
fail_socket:
    if (in->store_fd >= 0) {
        close(in->store_fd);
        in->store_fd = -1;
    }
    return rc;
}

void pos_instance_release(pos_instance_t *in)
{
    if (in->socket_fd >= 0) {
        close(in->socket_fd);
        in->socket_fd = -1;
    }
    if (in->store_fd >= 0) {
        close(in->store_fd);
        in->store_fd = -1;
    }
}

int pos_instance_lease_reply(const redisReply *r, char *holder, size_t len)
{
    if (len > 0) {
        holder[0] = '\0';
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING) {
        /* Printable only: it goes into a log line; the other till's token
         * (what comes before the first space) stays out of it. */
        size_t n = 0, i = 0;
        while (i < r->len && r->str[i] != ' ') {
            i++;
        }
        i += i < r->len;
        for (; i < r->len && n + 1 < len; i++) {
            char c = r->str[i];
            holder[n++] = c >= 0x20 && c < 0x7f ? c : '?';
        }
        if (len > 0) {
            holder[n] = '\0';
        }
        return -EPERM;
    }
    return -EPROTO;
}

void pos_instance_set_lease_ttl(pos_instance_t *in, unsigned ttl_s)
{
    snprintf(in->ttl_ms, sizeof(in->ttl_ms), "%u", ttl_s * 1000u);
}
