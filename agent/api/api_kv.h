#ifndef AGENT_API_API_KV_H
#define AGENT_API_API_KV_H

/*
 * The local API's writes (internal to agent/api; see docs/local-api.md
 * "Sessions, temporary data and counters"):
 *
 *   SET key value [EX s | PX ms], SETEX key s value, EXPIRE key s,
 *   PEXPIRE key ms, DEL key [key ...]   on session:* and temp:*
 *   INCR key, INCRBY key n              on counter:*
 *
 * but never on counter:terminal:*, the agent's own payment counters: any
 * write to one is refused (-ERR), reads stay.
 *
 * Each is applied to the till's local copy at once and written through to
 * Redis by the outbox, in order, at least once; GET, TTL and PTTL of these
 * keys answer the till's view (pos_api_kv_get(), pos_api_kv_ttl()).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/api/api.h"

/* The largest value SET takes (also bounded by [cache] max_value_bytes):
 * what fits an outbox entry with its origin. */
#define POS_API_KV_VALUE_MAX (POS_OUTBOX_PAYLOAD_MAX - 512u)

/* Hooks the counters' confirmed values to the local store. */
void pos_api_kv_init(pos_api_t *api);
void pos_api_kv_free(pos_api_t *api);

/* True for the keys GET answers here: session:*, temp:*, counter:*. */
bool pos_api_kv_handles(const char *key, size_t len);

/* GET of such a key; read_through serves session:* keys the till did not
 * write (the cache). Returns as a handler. */
int pos_api_kv_get(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len,
                   int (*read_through)(pos_api_t *api, pos_localapi_reply_t *r, const char *key,
                                       size_t len));

/* TTL / PTTL of a key the till wrote: 0 when answered, 1 when the till
 * has no say (the caller answers as before). */
int pos_api_kv_ttl(pos_api_t *api, pos_localapi_reply_t *r, const char *key, size_t len, bool ms);

/* Whether the outbox may take "entries" more writes or publishes of the
 * application (one per key of a DEL), of about "bytes" bytes, within its
 * share (it keeps the last 10 % for the agent's own messages): all of them
 * or none. Answers -BUSY and returns false when not. */
bool pos_api_kv_room(pos_api_t *api, pos_localapi_reply_t *r, uint64_t entries, uint64_t bytes);

int pos_api_kv_cmd_set(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens);
int pos_api_kv_cmd_setex(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens);
int pos_api_kv_cmd_expire(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens);
int pos_api_kv_cmd_pexpire(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                           const size_t *lens);
int pos_api_kv_cmd_del(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                       const size_t *lens);
int pos_api_kv_cmd_incr(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                        const size_t *lens);

#endif /* AGENT_API_API_KV_H */
