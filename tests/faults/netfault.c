#define _GNU_SOURCE
#include "tests/faults/netfault.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- shell helpers ---------------------------------------------------------- */

/* Runs a shell command; its output (stdout and stderr) goes to out (may be
 * NULL). Returns the exit status, or -1. */
static int nf_sh(char *out, size_t outlen, const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    FILE *p;
    size_t n = 0;
    int st;

    /* stderr with stdout, also for here-documents (nft -f - <<EOF). */
    memcpy(cmd, "exec 2>&1\n", 11);
    va_start(ap, fmt);
    vsnprintf(cmd + 10, sizeof(cmd) - 10, fmt, ap);
    va_end(ap);
    fflush(NULL);
    p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    if (out != NULL && outlen > 0) {
        out[0] = '\0';
    }
    for (;;) {
        char buf[512];
        size_t got = fread(buf, 1, sizeof(buf), p);
        if (got == 0) {
            break;
        }
        if (out != NULL && n + 1 < outlen) {
            size_t k = got < outlen - 1 - n ? got : outlen - 1 - n;
            memcpy(out + n, buf, k);
            n += k;
            out[n] = '\0';
        }
    }
    st = pclose(p);
    if (out != NULL && n > 0 && out[n - 1] == '\n') {
        out[n - 1] = '\0';
    }
    return st == -1 ? -1 : WEXITSTATUS(st);
}

/* ---- cleanup on every exit path -------------------------------------------- */

static pos_nf_t *nf_active;
static void (*nf_exit_hook)(void);

void pos_nf_on_exit(void (*fn)(void))
{
    nf_exit_hook = fn;
}

static void nf_atexit(void)
{
    if (nf_exit_hook != NULL) {
        nf_exit_hook();
    }
    if (nf_active != NULL) {
        pos_nf_teardown(nf_active);
    }
}

static void nf_on_signal(int sig)
{
    nf_atexit();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Namespaces and tables named after a process that no longer exists were
 * left by a test that was killed with SIGKILL (a ctest timeout). */
static void nf_sweep(void)
{
    char list[4096], *save = NULL;

    if (nf_sh(list, sizeof(list), "ip netns list") == 0) {
        for (char *l = strtok_r(list, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
            long pid;
            if (sscanf(l, "posf-%ld", &pid) == 1 && pid > 0 && kill((pid_t)pid, 0) != 0 &&
                errno == ESRCH) {
                nf_sh(NULL, 0, "ip netns del posf-%ld", pid);
                nf_sh(NULL, 0, "ip link del pfr%ld", pid);
            }
        }
    }
    save = NULL;
    if (nf_sh(list, sizeof(list), "nft list tables") == 0) {
        for (char *l = strtok_r(list, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
            long pid;
            if (sscanf(l, "table inet posf_%ld", &pid) == 1 && pid > 0 &&
                kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
                nf_sh(NULL, 0, "nft delete table inet posf_%ld", pid);
            }
        }
    }
}

/* ---- setup ----------------------------------------------------------------- */

static int nf_table(pos_nf_t *nf, bool in_ns, char *out, size_t outlen)
{
    const char *pre = in_ns ? "ip netns exec " : "";
    const char *ns = in_ns ? nf->ns : "";
    const char *dev = in_ns ? nf->veth_ns : nf->veth_root;

    /* Input hook, before conntrack (priority raw): dropped packets leave
     * no trace at all. Fault rules go into the "fault" chain. */
    return nf_sh(out, outlen,
                 "%s%s nft -f - <<'EOF'\n"
                 "table inet %s {\n"
                 "  chain fault { }\n"
                 "  chain in { type filter hook prerouting priority raw; policy accept;\n"
                 "    iifname \"%s\" jump fault\n"
                 "  }\n"
                 "}\n"
                 "EOF",
                 pre, ns, nf->table, dev);
}

int pos_nf_setup(pos_nf_t *nf, char *why, size_t whylen)
{
    char out[512];
    unsigned pid = (unsigned)getpid();
    unsigned sub = pid & 0x7fffu; /* /30 subnets in 198.18.0.0/15 */
    unsigned base = sub * 4u;

    memset(nf, 0, sizeof(*nf));
    if (geteuid() != 0) {
        snprintf(why, whylen, "network faults need root (network namespaces, nftables)");
        return -1;
    }
    nf_sweep();
    snprintf(nf->ns, sizeof(nf->ns), "posf-%u", pid);
    snprintf(nf->veth_root, sizeof(nf->veth_root), "pfr%u", pid);
    snprintf(nf->veth_ns, sizeof(nf->veth_ns), "pfn%u", pid);
    snprintf(nf->table, sizeof(nf->table), "posf_%u", pid);
    snprintf(nf->root_ip, sizeof(nf->root_ip), "198.%u.%u.%u", 18u + (base >> 16),
             (base >> 8) & 255u, (base & 255u) + 1u);
    snprintf(nf->ns_ip, sizeof(nf->ns_ip), "198.%u.%u.%u", 18u + (base >> 16),
             (base >> 8) & 255u, (base & 255u) + 2u);

    nf_active = nf;
    atexit(nf_atexit);
    signal(SIGTERM, nf_on_signal);
    signal(SIGINT, nf_on_signal);
    signal(SIGHUP, nf_on_signal);

    if (nf_sh(out, sizeof(out), "ip netns add %s", nf->ns) != 0) {
        snprintf(why, whylen, "ip netns add failed: %s", out);
        return -1;
    }
    nf->up = true;
    if (nf_sh(out, sizeof(out), "ip link add %s type veth peer name %s netns %s",
              nf->veth_root, nf->veth_ns, nf->ns) != 0 ||
        nf_sh(out, sizeof(out), "ip addr add %s/30 dev %s && ip link set %s up", nf->root_ip,
              nf->veth_root, nf->veth_root) != 0 ||
        nf_sh(out, sizeof(out),
              "ip netns exec %s sh -c 'ip addr add %s/30 dev %s && ip link set %s up && "
              "ip link set lo up'",
              nf->ns, nf->ns_ip, nf->veth_ns, nf->veth_ns) != 0) {
        snprintf(why, whylen, "veth setup failed: %s", out);
        pos_nf_teardown(nf);
        return -1;
    }
    if (nf_sh(out, sizeof(out), "command -v nft") != 0) {
        snprintf(why, whylen, "nft (Debian package nftables) is not installed: run .ci/deps");
        pos_nf_teardown(nf);
        return -1;
    }
    if (nf_table(nf, false, out, sizeof(out)) != 0 || nf_table(nf, true, out, sizeof(out)) != 0) {
        snprintf(why, whylen, "nftables not usable on this kernel: %s", out);
        pos_nf_teardown(nf);
        return -1;
    }
    /* The statistic match (numgen) is what the loss fault needs. */
    if (pos_nf_set(nf, POS_NF_LOSS, 30) != 0 || pos_nf_set(nf, POS_NF_NONE, 0) != 0) {
        snprintf(why, whylen, "nftables numgen (random loss) not usable on this kernel");
        pos_nf_teardown(nf);
        return -1;
    }
    if (nf_sh(out, sizeof(out), "ping -c 1 -W 2 %s", nf->ns_ip) != 0 &&
        nf_sh(out, sizeof(out), "ip netns exec %s ping -c 1 -W 2 %s", nf->ns, nf->root_ip) != 0 &&
        nf_sh(out, sizeof(out), "command -v ping") == 0) {
        snprintf(why, whylen, "the veth pair does not pass traffic: %s", out);
        pos_nf_teardown(nf);
        return -1;
    }
    return 0;
}

void pos_nf_teardown(pos_nf_t *nf)
{
    if (!nf->up) {
        return;
    }
    nf->up = false;
    nf_sh(NULL, 0, "nft delete table inet %s", nf->table);
    /* Deleting the namespace deletes the veth pair (and its table). */
    nf_sh(NULL, 0, "ip netns del %s", nf->ns);
    nf_sh(NULL, 0, "ip link del %s", nf->veth_root);
}

int pos_nf_set(pos_nf_t *nf, pos_nf_fault_t fault, unsigned percent)
{
    char rule[128] = "";
    char out[512];
    int rc = 0;

    if (fault == POS_NF_BLACKHOLE) {
        snprintf(rule, sizeof(rule), "add rule inet %s fault counter drop", nf->table);
    } else if (fault == POS_NF_LOSS) {
        snprintf(rule, sizeof(rule), "add rule inet %s fault numgen random mod 100 < %u counter drop",
                 nf->table, percent);
    }
    /* Both directions, each in one nft transaction (atomic flush + add). */
    for (int side = 0; side < 2; side++) {
        int st = nf_sh(out, sizeof(out), "%s%s nft -f - <<'EOF'\nflush chain inet %s fault\n%s\nEOF",
                       side ? "ip netns exec " : "", side ? nf->ns : "", nf->table, rule);
        if (st != 0) {
            fprintf(stderr, "netfault: nft failed: %s\n", out);
            rc = -1;
        }
    }
    return rc;
}

long pos_nf_dropped(pos_nf_t *nf)
{
    long total = 0;
    for (int side = 0; side < 2; side++) {
        char out[1024];
        if (nf_sh(out, sizeof(out), "%s%s nft list chain inet %s fault", side ? "ip netns exec " : "",
                  side ? nf->ns : "", nf->table) != 0) {
            return -1;
        }
        for (const char *p = out; (p = strstr(p, "counter packets ")) != NULL; p++) {
            total += strtol(p + 16, NULL, 10);
        }
    }
    return total;
}

bool pos_nf_netem_available(pos_nf_t *nf)
{
    char out[256];
    int st = nf_sh(out, sizeof(out), "ip netns exec %s tc qdisc add dev %s root netem delay 1ms",
                   nf->ns, nf->veth_ns);
    if (st == 0) {
        nf_sh(NULL, 0, "ip netns exec %s tc qdisc del dev %s root", nf->ns, nf->veth_ns);
    }
    return st == 0;
}

const char *const *pos_nf_wrapper(pos_nf_t *nf)
{
    static const char *words[5];
    words[0] = "ip";
    words[1] = "netns";
    words[2] = "exec";
    words[3] = nf->ns;
    words[4] = NULL;
    return words;
}

void pos_nf_redis_extra(pos_nf_t *nf, pos_test_redis_t *r)
{
    int i = 0;
    while (r->extra[i] != NULL) {
        i++;
    }
    /* A later --bind replaces the harness's; no password on the test
     * server, so protected mode would refuse the non-loopback agent. */
    r->extra[i++] = "--bind";
    r->extra[i++] = "127.0.0.1";
    r->extra[i++] = nf->root_ip;
    r->extra[i++] = "--protected-mode";
    r->extra[i++] = "no";
    r->extra[i] = NULL;
}

/* ---- delaying TCP proxy ------------------------------------------------------ */

#define PROXY_MAX_CONNS 64
#define PROXY_CHUNK     65536

typedef struct proxy_chunk {
    struct proxy_chunk *next;
    uint64_t due_ms;
    size_t len;
    char data[];
} proxy_chunk_t;

typedef struct proxy_pipe {
    struct pos_nf_proxy *proxy;
    int from, to;
    bool up; /* client to server */
    pthread_t thread;
    bool started;
} proxy_pipe_t;

typedef struct proxy_conn {
    int client, server;
    proxy_pipe_t pipes[2];
} proxy_conn_t;

struct pos_nf_proxy {
    int listen_fd;
    uint16_t port;
    uint16_t upstream_port;
    pthread_t thread;
    pthread_mutex_t mu;
    unsigned up_delay_ms, down_delay_ms;
    unsigned accepted;
    volatile bool stopping;
    proxy_conn_t conns[PROXY_MAX_CONNS];
    unsigned nconns;
};

static unsigned proxy_delay(pos_nf_proxy_t *p, bool up)
{
    pthread_mutex_lock(&p->mu);
    unsigned d = up ? p->up_delay_ms : p->down_delay_ms;
    pthread_mutex_unlock(&p->mu);
    return d;
}

static bool write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* One direction of one connection: reads as soon as bytes arrive, writes
 * each chunk when its time has come, in order. */
static void *proxy_pipe_main(void *arg)
{
    proxy_pipe_t *pp = arg;
    proxy_chunk_t *head = NULL, *tail = NULL;
    bool eof = false, failed = false;
    char *buf = malloc(PROXY_CHUNK);

    while (!failed && !pp->proxy->stopping && buf != NULL && !(eof && head == NULL)) {
        uint64_t now = pos_test_now_ms();
        while (head != NULL && head->due_ms <= now) {
            proxy_chunk_t *c = head;
            head = c->next;
            if (head == NULL) {
                tail = NULL;
            }
            failed = !write_all(pp->to, c->data, c->len);
            free(c);
            if (failed) {
                break;
            }
        }
        if (failed || (eof && head == NULL)) {
            break;
        }
        int timeout = 100;
        if (head != NULL) {
            uint64_t wait = head->due_ms > now ? head->due_ms - now : 0;
            timeout = wait < 100 ? (int)wait : 100;
        }
        struct pollfd pfd = {.fd = pp->from, .events = eof ? 0 : POLLIN};
        int n = poll(&pfd, 1, timeout);
        if (n > 0 && !eof && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            ssize_t r = recv(pp->from, buf, PROXY_CHUNK, 0);
            if (r > 0) {
                proxy_chunk_t *c = malloc(sizeof(*c) + (size_t)r);
                if (c == NULL) {
                    break;
                }
                c->next = NULL;
                c->len = (size_t)r;
                c->due_ms = pos_test_now_ms() + proxy_delay(pp->proxy, pp->up);
                memcpy(c->data, buf, (size_t)r);
                if (tail != NULL) {
                    tail->next = c;
                } else {
                    head = c;
                }
                tail = c;
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                eof = true;
            }
        }
    }
    while (head != NULL) {
        proxy_chunk_t *c = head;
        head = c->next;
        free(c);
    }
    free(buf);
    /* Pass the end on: the other side sees EOF (or a reset on failure). */
    shutdown(pp->to, failed ? SHUT_RDWR : SHUT_WR);
    if (failed) {
        shutdown(pp->from, SHUT_RDWR);
    }
    return NULL;
}

static int proxy_upstream(uint16_t port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *proxy_accept_main(void *arg)
{
    pos_nf_proxy_t *p = arg;

    while (!p->stopping) {
        int one = 1;
        int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            break;
        }
        if (p->stopping || p->nconns >= PROXY_MAX_CONNS) {
            close(c);
            continue;
        }
        int s = proxy_upstream(p->upstream_port);
        if (s < 0) {
            close(c);
            continue;
        }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_mutex_lock(&p->mu);
        proxy_conn_t *pc = &p->conns[p->nconns++];
        p->accepted++;
        pthread_mutex_unlock(&p->mu);
        pc->client = c;
        pc->server = s;
        pc->pipes[0] = (proxy_pipe_t){.proxy = p, .from = c, .to = s, .up = true};
        pc->pipes[1] = (proxy_pipe_t){.proxy = p, .from = s, .to = c, .up = false};
        for (int i = 0; i < 2; i++) {
            pc->pipes[i].started =
                pthread_create(&pc->pipes[i].thread, NULL, proxy_pipe_main, &pc->pipes[i]) == 0;
        }
    }
    return NULL;
}

pos_nf_proxy_t *pos_nf_proxy_start(const char *listen_ip, uint16_t upstream_port,
                                   unsigned up_delay_ms, unsigned down_delay_ms)
{
    pos_nf_proxy_t *p = calloc(1, sizeof(*p));
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;

    if (p == NULL) {
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->upstream_port = upstream_port;
    p->up_delay_ms = up_delay_ms;
    p->down_delay_ms = down_delay_ms;
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (p->listen_fd < 0 || inet_pton(AF_INET, listen_ip, &sa.sin_addr) != 1) {
        goto fail_socket;
    }
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(p->listen_fd, 16) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&sa, &len) != 0) {
        goto fail_socket;
    }
    p->port = ntohs(sa.sin_port);
    if (pthread_create(&p->thread, NULL, proxy_accept_main, p) != 0) {
        goto fail_socket;
    }
    return p;

fail_socket:
    if (p->listen_fd >= 0) {
        close(p->listen_fd);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

uint16_t pos_nf_proxy_port(const pos_nf_proxy_t *p)
{
    return p->port;
}

void pos_nf_proxy_set_delay(pos_nf_proxy_t *p, unsigned up_delay_ms, unsigned down_delay_ms)
{
    pthread_mutex_lock(&p->mu);
    p->up_delay_ms = up_delay_ms;
    p->down_delay_ms = down_delay_ms;
    pthread_mutex_unlock(&p->mu);
}

unsigned pos_nf_proxy_accepted(const pos_nf_proxy_t *p)
{
    pos_nf_proxy_t *m = (pos_nf_proxy_t *)p;
    pthread_mutex_lock(&m->mu);
    unsigned n = m->accepted;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void pos_nf_proxy_stop(pos_nf_proxy_t *p)
{
    if (p == NULL) {
        return;
    }
    p->stopping = true;
    shutdown(p->listen_fd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    for (unsigned i = 0; i < p->nconns; i++) {
        proxy_conn_t *pc = &p->conns[i];
        shutdown(pc->client, SHUT_RDWR);
        shutdown(pc->server, SHUT_RDWR);
        for (int k = 0; k < 2; k++) {
            if (pc->pipes[k].started) {
                pthread_join(pc->pipes[k].thread, NULL);
            }
        }
        close(pc->client);
        close(pc->server);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}
