#include "tests/support/fake_redis.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct pos_fake_redis {
    int lfd;
    uint16_t port;
    pos_fake_redis_fn fn;
    void *arg;
    pthread_t thread;
    atomic_bool stop;
    atomic_int accepted;
    pthread_mutex_t lock; /* sends from two threads do not interleave */
    int fd[POS_FAKE_REDIS_CONNS];
    redisReader *rd[POS_FAKE_REDIS_CONNS];
};

bool pos_fake_redis_arg_is(const redisReply *cmd, size_t i, const char *s)
{
    return cmd->type == REDIS_REPLY_ARRAY && i < cmd->elements &&
           cmd->element[i]->type == REDIS_REPLY_STRING && cmd->element[i]->len == strlen(s) &&
           strncasecmp(cmd->element[i]->str, s, cmd->element[i]->len) == 0;
}

int pos_fake_redis_send(pos_fake_redis_t *fk, int conn, const char *buf, size_t len)
{
    int rc = 0;

    pthread_mutex_lock(&fk->lock);
    while (len > 0 && fk->fd[conn] >= 0) {
        ssize_t n = send(fk->fd[conn], buf, len, MSG_NOSIGNAL);
        if (n <= 0) {
            rc = -1;
            break;
        }
        buf += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&fk->lock);
    return rc;
}

int pos_fake_redis_sendf(pos_fake_redis_t *fk, int conn, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return -1;
    }
    return pos_fake_redis_send(fk, conn, buf, (size_t)n);
}

static void fake_close(pos_fake_redis_t *fk, int i)
{
    pthread_mutex_lock(&fk->lock);
    close(fk->fd[i]);
    fk->fd[i] = -1;
    pthread_mutex_unlock(&fk->lock);
    redisReaderFree(fk->rd[i]);
    fk->rd[i] = NULL;
}

static void fake_accept(pos_fake_redis_t *fk)
{
    int fd = accept(fk->lfd, NULL, NULL);

    for (int i = 0; fd >= 0 && i < POS_FAKE_REDIS_CONNS; i++) {
        if (fk->fd[i] < 0) {
            fk->rd[i] = redisReaderCreate();
            pthread_mutex_lock(&fk->lock);
            fk->fd[i] = fd;
            pthread_mutex_unlock(&fk->lock);
            fd = -1;
            atomic_fetch_add(&fk->accepted, 1);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
}

static void fake_read(pos_fake_redis_t *fk, int i)
{
    char buf[16384];
    ssize_t n = recv(fk->fd[i], buf, sizeof(buf), 0);

    if (n <= 0) {
        fake_close(fk, i);
        return;
    }
    redisReaderFeed(fk->rd[i], buf, (size_t)n);
    while (fk->fd[i] >= 0) {
        void *cmd = NULL;
        if (redisReaderGetReply(fk->rd[i], &cmd) != REDIS_OK || cmd == NULL) {
            break;
        }
        fk->fn(fk, i, cmd, fk->arg);
        freeReplyObject(cmd);
    }
}

static void *fake_main(void *arg)
{
    pos_fake_redis_t *fk = arg;

    while (!atomic_load(&fk->stop)) {
        struct pollfd p[POS_FAKE_REDIS_CONNS + 1];
        p[0] = (struct pollfd){.fd = fk->lfd, .events = POLLIN};
        for (int i = 0; i < POS_FAKE_REDIS_CONNS; i++) {
            p[i + 1] = (struct pollfd){.fd = fk->fd[i], .events = POLLIN};
        }
        if (poll(p, POS_FAKE_REDIS_CONNS + 1, 50) <= 0) {
            continue;
        }
        if (p[0].revents & POLLIN) {
            fake_accept(fk);
        }
        for (int i = 0; i < POS_FAKE_REDIS_CONNS; i++) {
            if (fk->fd[i] >= 0 && p[i + 1].fd == fk->fd[i] &&
                (p[i + 1].revents & (POLLIN | POLLHUP))) {
                fake_read(fk, i);
            }
        }
    }
    return NULL;
}

pos_fake_redis_t *pos_fake_redis_start(pos_fake_redis_fn fn, void *arg)
{
    pos_fake_redis_t *fk = calloc(1, sizeof(*fk));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int one = 1;

    if (fk == NULL) {
        return NULL;
    }
    fk->fn = fn;
    fk->arg = arg;
    pthread_mutex_init(&fk->lock, NULL);
    for (int i = 0; i < POS_FAKE_REDIS_CONNS; i++) {
        fk->fd[i] = -1;
    }
    fk->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (fk->lfd < 0) {
        goto fail;
    }
    setsockopt(fk->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fk->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fk->lfd, 16) != 0 ||
        getsockname(fk->lfd, (struct sockaddr *)&sa, &sl) != 0) {
        goto fail_socket;
    }
    fk->port = ntohs(sa.sin_port);
    if (pthread_create(&fk->thread, NULL, fake_main, fk) != 0) {
        goto fail_socket;
    }
    return fk;

fail_socket:
    close(fk->lfd);
fail:
    pthread_mutex_destroy(&fk->lock);
    free(fk);
    return NULL;
}

uint16_t pos_fake_redis_port(const pos_fake_redis_t *fk)
{
    return fk->port;
}

int pos_fake_redis_accepted(const pos_fake_redis_t *fk)
{
    return atomic_load(&((pos_fake_redis_t *)fk)->accepted);
}

void pos_fake_redis_stop(pos_fake_redis_t *fk)
{
    atomic_store(&fk->stop, true);
    pthread_join(fk->thread, NULL);
    for (int i = 0; i < POS_FAKE_REDIS_CONNS; i++) {
        if (fk->fd[i] >= 0) {
            fake_close(fk, i);
        }
    }
    close(fk->lfd);
    pthread_mutex_destroy(&fk->lock);
    free(fk);
}
