#ifndef TESTS_FAULTS_NETFAULT_H
#define TESTS_FAULTS_NETFAULT_H

/*
 * Network faults between the agent and Redis, for tests/faults.
 *
 * Topology: the agent runs in its own network namespace "posf-<pid>",
 * joined to the root namespace by a veth pair on a /30 out of
 * 198.18.0.0/15 (RFC 2544, reserved for benchmarking, so it never shadows
 * a real network). Redis runs in the root namespace and listens on
 * 127.0.0.1 (the test's own clients, never faulted) and on the root end of
 * the veth (the agent). Faults are nftables rules that drop packets as
 * they arrive from the veth, in both namespaces, so that each side's
 * packets are lost "on the wire" and neither kernel reports an error to
 * its sender: a blackhole leaves both TCP connections half-open.
 *
 * Delay: the kernel's netem qdisc is not available on every kernel (the
 * development VM and its CI lack sch_netem), so delay is added by a
 * userspace TCP proxy in the test process (pos_nf_proxy_*), which listens
 * on the root end of the veth and forwards to Redis on loopback, holding
 * every chunk the agent sends for a fixed time (like "tc netem delay D" on
 * the agent's egress). pos_nf_netem_available() says whether netem would
 * have worked; the tests use the proxy either way so that they measure the
 * same thing everywhere.
 *
 * Everything is removed at exit (atexit and SIGINT/SIGTERM handlers), and
 * namespaces and tables left by a test that was SIGKILLed are swept at the
 * next start (their pid no longer exists).
 */

#include <stdbool.h>
#include <stdint.h>

#include "tests/support/harness.h"

typedef enum pos_nf_fault {
    POS_NF_NONE = 0,
    POS_NF_BLACKHOLE, /* every packet dropped, both directions */
    POS_NF_LOSS,      /* each packet dropped with a probability, both directions */
} pos_nf_fault_t;

typedef struct pos_nf {
    char ns[32];        /* "posf-<pid>" */
    char veth_root[16]; /* root namespace end */
    char veth_ns[16];   /* agent namespace end */
    char table[32];     /* nftables table name (inet family), both namespaces */
    char root_ip[20];   /* Redis side address */
    char ns_ip[20];     /* agent side address */
    bool up;
} pos_nf_t;

/*
 * Creates the namespace, the veth pair and the (empty) fault tables.
 * Returns 0, or -1 with a one-line reason in why (the caller skips: exit 77).
 */
int pos_nf_setup(pos_nf_t *nf, char *why, size_t whylen);
/* Removes everything pos_nf_setup() created (idempotent). */
void pos_nf_teardown(pos_nf_t *nf);

/* A function run at exit and on SIGINT/SIGTERM/SIGHUP before the network
 * is removed: the test kills its agent and Redis there (a ctest timeout
 * must not leave them running). Async-signal-safe calls only. */
void pos_nf_on_exit(void (*fn)(void));

/* Sets the fault: POS_NF_NONE lifts it; percent is for POS_NF_LOSS. */
int pos_nf_set(pos_nf_t *nf, pos_nf_fault_t fault, unsigned percent);

/* Packets the current fault has dropped so far (both directions), or -1. */
long pos_nf_dropped(pos_nf_t *nf);

/* True when "tc qdisc add ... netem" works on this kernel (informational). */
bool pos_nf_netem_available(pos_nf_t *nf);

/* Wrapper words for pos_test_agent_t.wrapper: run the agent in the namespace. */
const char *const *pos_nf_wrapper(pos_nf_t *nf);

/* Extra redis-server words: listen on loopback and on the veth's root end. */
void pos_nf_redis_extra(pos_nf_t *nf, pos_test_redis_t *r);

/* ---- delaying TCP proxy ---------------------------------------------------- */

typedef struct pos_nf_proxy pos_nf_proxy_t;

/*
 * Listens on listen_ip (port chosen, see pos_nf_proxy_port) and forwards to
 * 127.0.0.1:upstream_port; bytes from the client are held up_delay_ms,
 * bytes from the server down_delay_ms, order preserved. Returns NULL on
 * failure.
 */
pos_nf_proxy_t *pos_nf_proxy_start(const char *listen_ip, uint16_t upstream_port,
                                   unsigned up_delay_ms, unsigned down_delay_ms);
uint16_t pos_nf_proxy_port(const pos_nf_proxy_t *p);
/* Changes the delays for chunks read from now on. */
void pos_nf_proxy_set_delay(pos_nf_proxy_t *p, unsigned up_delay_ms, unsigned down_delay_ms);
/* Number of client connections accepted so far. */
unsigned pos_nf_proxy_accepted(const pos_nf_proxy_t *p);
/* Closes every connection and the listener, joins the threads, frees. */
void pos_nf_proxy_stop(pos_nf_proxy_t *p);

#endif /* TESTS_FAULTS_NETFAULT_H */
