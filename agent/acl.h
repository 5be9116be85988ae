#ifndef AGENT_ACL_H
#define AGENT_ACL_H

/*
 * Least privilege on Redis (docs/acl.md): the ACL rule a terminal's Redis
 * user needs, from its configuration, with exactly the commands, key
 * patterns and channels the agent uses, so that a till's credentials
 * cannot publish on another terminal's payment channel, write another
 * terminal's status key, read another store's inventory, or run
 * FLUSHALL, CONFIG or KEYS. "posagent acl" prints it.
 */

#include <stddef.h>

#include "conf/config.h"

/*
 * Writes "ACL SETUSER <user> reset on <password> resetchannels ..." (one
 * line, no newline) for cfg into buf (len bytes). The user is the URL's
 * (else "posagent-<terminal id>"); the password is the configured one as
 * "#<sha256 hex>" (never in clear), else "nopass" is not used: ">CHANGE-ME".
 * Returns the length, or -ENOSPC.
 */
int pos_acl_rule(const pos_config_t *cfg, char *buf, size_t len);

/*
 * Writes the rule a Sentinel's default user needs for the agent (when
 * [redis] sentinels is set; the agent authenticates there with
 * sentinel_password only): asking for the master and hearing
 * +switch-master. Returns the length, 0 without sentinels, or -ENOSPC.
 */
int pos_acl_sentinel_rule(const pos_config_t *cfg, char *buf, size_t len);

#endif /* AGENT_ACL_H */
