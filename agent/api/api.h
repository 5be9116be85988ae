#ifndef AGENT_API_API_H
#define AGENT_API_API_H

/*
 * The agent's commands on the local API socket (agent/api/localapi.c speaks the
 * protocol): GET, MGET, EXISTS, TTL from the offline cache (read-through
 * while online), PUBLISH and INCR/INCRBY (counter:* only) through the
 * outbox, and INFO with sections server, link, cache, outbox, payment,
 * devices. See docs/local-api.md.
 */

typedef struct pos_agent pos_agent_t;

/* Starts the server on the agent's [local] socket. Returns 0 or -errno
 * (the agent runs on without a local API then). */
int pos_api_start(pos_agent_t *a);

#endif /* AGENT_API_API_H */
