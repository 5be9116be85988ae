#ifndef TESTS_SUPPORT_FAKE_REDIS_H
#define TESTS_SUPPORT_FAKE_REDIS_H

/*
 * A fake Redis server for the tests that need a server to misbehave: a
 * thread listening on a free loopback port, reading commands with
 * hiredis's reader and handing each to the test's callback, which answers
 * (or not) with pos_fake_redis_send(). Up to POS_FAKE_REDIS_CONNS
 * connections at once; more are closed at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define POS_FAKE_REDIS_CONNS 16

typedef struct pos_fake_redis pos_fake_redis_t;

/* A command arrived on connection "conn" (0..POS_FAKE_REDIS_CONNS-1); runs
 * on the server's thread. */
typedef void (*pos_fake_redis_fn)(pos_fake_redis_t *fk, int conn, const redisReply *cmd, void *arg);

/* Starts the server. Returns it, or NULL. */
pos_fake_redis_t *pos_fake_redis_start(pos_fake_redis_fn fn, void *arg);

/* Its port. */
uint16_t pos_fake_redis_port(const pos_fake_redis_t *fk);

/* Connections accepted so far. */
int pos_fake_redis_accepted(const pos_fake_redis_t *fk);

/* Sends bytes on connection conn (the server's thread, or any thread while
 * the callback does not run). Returns 0 or -1. */
int pos_fake_redis_send(pos_fake_redis_t *fk, int conn, const char *buf, size_t len);
int pos_fake_redis_sendf(pos_fake_redis_t *fk, int conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when argument i of cmd is s (case-insensitive). */
bool pos_fake_redis_arg_is(const redisReply *cmd, size_t i, const char *s);

/* Stops the thread and closes everything. */
void pos_fake_redis_stop(pos_fake_redis_t *fk);

#endif /* TESTS_SUPPORT_FAKE_REDIS_H */
