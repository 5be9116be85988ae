#ifndef AGENT_LINK_ERRORS_H
#define AGENT_LINK_ERRORS_H

/*
 * What a Redis error reply means to the link, shared by the one-server
 * link (link.c), the cluster client (cluster.c) and the lease's gate: its
 * own module so that the cluster client needs nothing of link.c (which
 * drives it).
 */

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

/*
 * Classifies a Redis error reply: -EACCES (authentication or ACL: NOAUTH,
 * WRONGPASS, NOPERM, invalid password), -EINVAL (bad database index),
 * -EAGAIN (LOADING, BUSY, TRYAGAIN, MASTERDOWN) or -EPROTO (anything else).
 */
int pos_link_classify_error(const char *msg, size_t len);

/*
 * Whether a command's refusal stands whatever is tried again, for as long
 * as the key stays as it is: it holds another type (WRONGTYPE), no
 * integer, or the result would overflow. Others (OOM, LOADING, READONLY,
 * an ACL) may pass later.
 */
bool pos_link_error_for_good(const char *msg, size_t len);

/*
 * The verdict on a reply to AUTH on connection "name": 0 when accepted (or
 * refused only because the server has no password, which is logged), else
 * -EACCES (the caller logs the refusal).
 */
int pos_link_auth_check(const char *name, const redisReply *r);

#endif /* AGENT_LINK_ERRORS_H */
