#define _GNU_SOURCE /* memmem, accept4, pipe2 */
#include "tests/support/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_CONNS    32
#define PROXY_SEEN_MAX (4u * 1024u * 1024u)

typedef struct {
    size_t len, cap;
    char *data;
} buf_t;

typedef struct {
    int client, server; /* -1: a free slot */
    bool held;          /* the server's bytes go to hold */
    buf_t hold;
    char tail[256]; /* the client's last bytes, for a needle across reads */
    size_t tail_len;
} conn_t;

struct pos_test_proxy {
    int lfd;
    int wake[2];
    uint16_t port, target;
    pthread_t thread;
    pthread_mutex_t lock;
    bool stop;      /* under lock */
    bool release;   /* under lock */
    char *needle;   /* under lock: armed, not yet seen */
    buf_t seen;     /* under lock: server bytes on flowing connections since armed */
    bool recording; /* under lock */
    bool stalled;   /* under lock: clients' bytes are not read */
    bool tight;     /* under lock: small receive buffers toward clients */
    conn_t c[PROXY_CONNS];
};

static void buf_add(buf_t *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 4096;
        while (cap < b->len + n) {
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_free(buf_t *b)
{
    free(b->data);
    *b = (buf_t){0, 0, NULL};
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->client >= 0) {
        close(c->client);
    }
    if (c->server >= 0) {
        close(c->server);
    }
    buf_free(&c->hold);
    *c = (conn_t){.client = -1, .server = -1};
}

static int connect_target(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void accept_one(pos_test_proxy_t *p)
{
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    int one = 1;

    if (fd < 0) {
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pthread_mutex_lock(&p->lock);
    bool tight = p->tight;
    pthread_mutex_unlock(&p->lock);
    if (tight) {
        int small = 16 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    for (int i = 0; i < PROXY_CONNS; i++) {
        if (p->c[i].client < 0) {
            p->c[i].client = fd;
            p->c[i].server = connect_target(p->target);
            if (p->c[i].server < 0) {
                pthread_mutex_lock(&p->lock);
                conn_close(&p->c[i]);
                pthread_mutex_unlock(&p->lock);
            }
            return;
        }
    }
    close(fd);
}

/* The client's bytes: forwarded, then checked for the armed needle. */
static int from_client(pos_test_proxy_t *p, conn_t *c, const char *d, size_t n)
{
    if (send_all(c->server, d, n) != 0) {
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    if (p->needle != NULL) {
        size_t nl = strlen(p->needle);
        char *scan = malloc(c->tail_len + n);
        if (scan != NULL) {
            memcpy(scan, c->tail, c->tail_len);
            memcpy(scan + c->tail_len, d, n);
            if (memmem(scan, c->tail_len + n, p->needle, nl) != NULL) {
                c->held = true;
                free(p->needle);
                p->needle = NULL;
            } else {
                size_t keep = nl - 1 < sizeof(c->tail) ? nl - 1 : sizeof(c->tail);
                size_t all = c->tail_len + n;
                keep = keep < all ? keep : all;
                memcpy(c->tail, scan + all - keep, keep);
                c->tail_len = keep;
            }
            free(scan);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static int from_server(pos_test_proxy_t *p, conn_t *c, const char *d, size_t n)
{
    pthread_mutex_lock(&p->lock);
    if (c->held) {
        buf_add(&c->hold, d, n);
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    pthread_mutex_unlock(&p->lock);
    /* Forwarded first: once pos_test_proxy_passed() says so, the bytes are
     * in the agent's socket. */
    if (send_all(c->client, d, n) != 0) {
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    if (p->recording) {
        if (p->seen.len + n > PROXY_SEEN_MAX) {
            p->seen.len = 0; /* a test's needle comes soon after it arms */
        }
        buf_add(&p->seen, d, n);
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void do_release(pos_test_proxy_t *p)
{
    for (int i = 0; i < PROXY_CONNS; i++) {
        conn_t *c = &p->c[i];
        if (c->client >= 0 && c->held) {
            if (c->hold.len > 0 && send_all(c->client, c->hold.data, c->hold.len) != 0) {
                conn_close(c);
                continue;
            }
            buf_free(&c->hold);
            c->held = false;
        }
    }
    p->recording = false;
    free(p->needle);
    p->needle = NULL;
}

static void *proxy_main(void *arg)
{
    pos_test_proxy_t *p = arg;
    struct pollfd pfd[2 + 2 * PROXY_CONNS];
    int who[2 + 2 * PROXY_CONNS];
    char d[65536];

    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool stop = p->stop, release = p->release, stalled = p->stalled;
        p->release = false;
        if (release) {
            do_release(p);
        }
        pthread_mutex_unlock(&p->lock);
        if (stop) {
            break;
        }
        int n = 0;
        pfd[n++] = (struct pollfd){p->lfd, POLLIN, 0};
        pfd[n++] = (struct pollfd){p->wake[0], POLLIN, 0};
        for (int i = 0; i < PROXY_CONNS; i++) {
            if (p->c[i].client >= 0) {
                who[n] = i;
                pfd[n++] = (struct pollfd){p->c[i].client, stalled ? 0 : POLLIN, 0};
                who[n] = PROXY_CONNS + i;
                pfd[n++] = (struct pollfd){p->c[i].server, POLLIN, 0};
            }
        }
        if (poll(pfd, (nfds_t)n, 1000) <= 0) {
            continue;
        }
        if (pfd[1].revents != 0) {
            char x[64];
            (void)!read(p->wake[0], x, sizeof(x));
        }
        for (int k = 2; k < n; k++) {
            if (pfd[k].revents == 0) {
                continue;
            }
            bool client = who[k] < PROXY_CONNS;
            conn_t *c = &p->c[client ? who[k] : who[k] - PROXY_CONNS];
            if (c->client < 0) {
                continue; /* closed by its other half in this round */
            }
            ssize_t got = recv(pfd[k].fd, d, sizeof(d), 0);
            int rc = got <= 0 ? -1
                     : client ? from_client(p, c, d, (size_t)got)
                              : from_server(p, c, d, (size_t)got);
            if (rc != 0) {
                pthread_mutex_lock(&p->lock);
                conn_close(c);
                pthread_mutex_unlock(&p->lock);
            }
        }
        if (pfd[0].revents != 0) {
            accept_one(p);
        }
    }
    return NULL;
}

pos_test_proxy_t *pos_test_proxy_start(uint16_t target_port)
{
    pos_test_proxy_t *p = calloc(1, sizeof(*p));
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);

    if (p == NULL) {
        return NULL;
    }
    p->target = target_port;
    for (int i = 0; i < PROXY_CONNS; i++) {
        p->c[i] = (conn_t){.client = -1, .server = -1};
    }
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->lfd, 16) != 0 || getsockname(p->lfd, (struct sockaddr *)&a, &alen) != 0 ||
        pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        if (p->lfd >= 0) {
            close(p->lfd);
        }
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

uint16_t pos_test_proxy_port(const pos_test_proxy_t *p)
{
    return p->port;
}

void pos_test_proxy_hold(pos_test_proxy_t *p, const char *needle)
{
    pthread_mutex_lock(&p->lock);
    free(p->needle);
    p->needle = strdup(needle);
    p->seen.len = 0;
    p->recording = true;
    for (int i = 0; i < PROXY_CONNS; i++) {
        p->c[i].tail_len = 0;
    }
    pthread_mutex_unlock(&p->lock);
}

bool pos_test_proxy_holding(pos_test_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    bool h = false;
    for (int i = 0; i < PROXY_CONNS; i++) {
        h = h || (p->c[i].client >= 0 && p->c[i].held && p->c[i].hold.len > 0);
    }
    pthread_mutex_unlock(&p->lock);
    return h;
}

bool pos_test_proxy_passed(pos_test_proxy_t *p, const char *needle)
{
    pthread_mutex_lock(&p->lock);
    bool seen =
        p->seen.len > 0 && memmem(p->seen.data, p->seen.len, needle, strlen(needle)) != NULL;
    pthread_mutex_unlock(&p->lock);
    return seen;
}

void pos_test_proxy_release(pos_test_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->release = true;
    pthread_mutex_unlock(&p->lock);
    (void)!write(p->wake[1], "r", 1);
}

void pos_test_proxy_tight(pos_test_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->tight = true; /* read by the thread at its next accept */
    pthread_mutex_unlock(&p->lock);
}

void pos_test_proxy_stall(pos_test_proxy_t *p, bool on)
{
    pthread_mutex_lock(&p->lock);
    p->stalled = on;
    pthread_mutex_unlock(&p->lock);
    (void)!write(p->wake[1], "s", 1);
}

void pos_test_proxy_stop(pos_test_proxy_t *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_mutex_unlock(&p->lock);
    (void)!write(p->wake[1], "s", 1);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < PROXY_CONNS; i++) {
        conn_close(&p->c[i]);
    }
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p->needle);
    buf_free(&p->seen);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
