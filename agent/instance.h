#ifndef AGENT_INSTANCE_H
#define AGENT_INSTANCE_H

/*
 * One agent per till (CONTRACT.md "One agent per terminal",
 * docs/hardening.md): an exclusive lock on the store directory, one on the
 * local socket (its own lock file), and a lease in Redis on the terminal
 * id, so that two tills misconfigured with one id are caught too. A second
 * agent refuses to start (POS_EX_ANOTHER) and never subscribes.
 *
 * The lease is the key posagent:lease:{terminalId}, whose value starts with
 * this till's instance token: a random token made once and kept in the
 * store directory (instance.id), so the same till restarted after a crash
 * or a power cut takes its lease back at once, while a till with another
 * store (another till, or this one after its store was lost) waits for it
 * to lapse. It is taken on every connect before subscribing (the link's
 * gate), renewed with every heartbeat (PX = the status key's TTL), and
 * given up at a clean shutdown, each time by one small script so that
 * "ours or free" and the write are one step.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "agent/link/link.h"

/* Exit status of an agent refused because another one runs for its store,
 * its socket or its terminal id (sysexits.h EX_TEMPFAIL). */
#define POS_EX_ANOTHER 75

#define POS_INSTANCE_TOKEN_HEX 32 /* hex digits of a token (16 random bytes) */

typedef struct pos_instance {
    int store_fd;  /* lock of <store>/posagent.lock, -1: not held */
    int socket_fd; /* lock of <socket>.lock, -1: not held */
    char token[POS_INSTANCE_TOKEN_HEX + 1];
    char value[POS_INSTANCE_TOKEN_HEX + 96]; /* the lease's value: "<token> <host> pid <pid>" */
    char key[96];                            /* posagent:lease:{terminalId} */
    char ttl_ms[16];
    const char *acquire[7]; /* EVAL <script> 1 <key> <token> <ttl> <value> */
    const char *release[5]; /* EVAL <script> 1 <key> <token> */
    pos_link_gate_t gate;
    bool lost; /* the lease was found held by another till */
    /* Called (from the link's gate) when another till holds the lease;
     * "holder" says where (its host and pid). May be NULL. */
    void (*on_lost)(void *ctx, const char *holder);
    void *ctx;
} pos_instance_t;

/* What the instance is claimed for. */
typedef struct pos_instance_options {
    const char *store_path;   /* the store's directory (created if missing) */
    const char *socket_path;  /* the local socket */
    const char *socket_group; /* its group, or NULL / "" */
    const char *terminal_id;
    unsigned lease_ttl_s; /* the lease's lifetime: the status key's TTL */
} pos_instance_options_t;

/*
 * Claims the till for this process: the store directory's lock, the
 * socket's lock, then the instance token (read, or made and kept). Returns
 * 0, -EBUSY (another agent runs on the store) or -EADDRINUSE (on the
 * socket) with why set, or a negative errno with why set; nothing is held
 * on failure. The locks hold until pos_instance_release() or the process
 * ends.
 */
int pos_instance_claim(pos_instance_t *in, const pos_instance_options_t *o, char *why,
                       size_t whylen);

/* The lease's lifetime from the next acquire or renewal on (a reload of
 * [heartbeat] ttl_s). */
void pos_instance_set_lease_ttl(pos_instance_t *in, unsigned ttl_s);

/* Lets go of the locks (idempotent). */
void pos_instance_release(pos_instance_t *in);

/*
 * The reply of an acquire (gate or renewal): 0 when the lease is ours,
 * -EPERM when another till holds it (where: its host and pid, in
 * holder[0..len); never its token), -EPROTO for anything else (an error
 * reply: logged by the caller).
 */
int pos_instance_lease_reply(const redisReply *r, char *holder, size_t len);

/*
 * The token kept in dir/instance.id, made (16 random bytes as hex, written
 * durably) when the file is missing or unreadable. Returns 0 or a negative
 * errno.
 */
int pos_instance_token(const char *dir, char token[POS_INSTANCE_TOKEN_HEX + 1]);

#endif /* AGENT_INSTANCE_H */
