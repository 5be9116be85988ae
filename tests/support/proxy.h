#ifndef TESTS_SUPPORT_PROXY_H
#define TESTS_SUPPORT_PROXY_H

/*
 * A TCP proxy between the agent and a real redis-server, for the tests
 * that need one connection's answers to arrive after another's messages:
 * Redis answers in its own order, and two connections race only by
 * chance. A thread on a free loopback port forwards every connection to
 * the target port, byte for byte, until told to hold: then the connection
 * on which the agent sends a given string has what the server sends it
 * next held back, until released. The other connections flow.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pos_test_proxy pos_test_proxy_t;

/* Starts a proxy to 127.0.0.1:target_port. Returns it, or NULL. */
pos_test_proxy_t *pos_test_proxy_start(uint16_t target_port);

/* Its port. */
uint16_t pos_test_proxy_port(const pos_test_proxy_t *p);

/* Arms the hold: the first connection whose client sends needle (it may
 * span reads) has the server's bytes to it held from then on. */
void pos_test_proxy_hold(pos_test_proxy_t *p, const char *needle);

/* True once the needle went by and the server sent something after it,
 * held (the answer to the command that carried it, at least in part). */
bool pos_test_proxy_holding(pos_test_proxy_t *p);

/* True when a connection not held carried needle from the server since
 * pos_test_proxy_hold() (e.g. an invalidation or a message naming a key). */
bool pos_test_proxy_passed(pos_test_proxy_t *p, const char *needle);

/* Sends what was held, in order, and lets that connection flow again. */
void pos_test_proxy_release(pos_test_proxy_t *p);

/* Before the agent connects: the proxy's side of each connection from a
 * client gets a 16 KiB receive buffer, so that what a stalled proxy does
 * not read backs up into the client soon (as on a slow uplink). */
void pos_test_proxy_tight(pos_test_proxy_t *p);

/* While on, no client's bytes are read (a server that stops reading, or
 * an uplink that takes nothing); the server's still flow to the clients. */
void pos_test_proxy_stall(pos_test_proxy_t *p, bool on);

/* Stops the thread and closes every connection. */
void pos_test_proxy_stop(pos_test_proxy_t *p);

#endif /* TESTS_SUPPORT_PROXY_H */
