#ifndef AGENT_API_API_SHARED_H
#define AGENT_API_API_SHARED_H

/*
 * The local API's commands on state the till shares with the store and the
 * cloud (internal to agent/api; see docs/local-api.md):
 *
 *   RATELIMIT identifier windowMs max   CONTRACT.md "Rate limits"
 *   SMEMBERS active_transactions:{storeId}
 *   TERMINALS                           the store's terminals and their status
 *   CACHE.CLEAR pattern                 drops local entries matching a glob
 *
 * Each is a pos_localapi_handler on a pos_api_t.
 */

#include "agent/api/api.h"

/* Sets up RATELIMIT's local window. Returns 0 or -ENOMEM. */
int pos_api_shared_init(pos_api_t *api);

/* Frees it. */
void pos_api_shared_free(pos_api_t *api);

int pos_api_cmd_ratelimit(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens);
int pos_api_cmd_smembers(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens);
int pos_api_cmd_terminals(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                          const size_t *lens);
int pos_api_cmd_cache_clear(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                            const size_t *lens);

#endif /* AGENT_API_API_SHARED_H */
