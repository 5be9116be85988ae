#ifndef AGENT_STARTUP_H
#define AGENT_STARTUP_H

/*
 * The configuration as the agent starts with it, validated as at every
 * start: shared by posagent (before it runs) and posagent-tools (for
 * --check-config, which then prints the effective settings), so that what
 * --check-config accepts is exactly what the agent starts with.
 */

#include <sys/types.h>

#include "agent/args.h"
#include "agent/link/tls.h"
#include "agent/msg/sign.h"
#include "conf/config.h"

/*
 * Load the configuration a names (file, drop-ins, environment) into cfg,
 * then check what would stop the agent later: the TLS material (loaded into
 * tls when [redis] url is rediss://), a signing key or allow_unsigned, the
 * files holding secrets private from the socket's group, the accounts it
 * names. What it loads to check is handed back for the agent's use: the
 * signing keys in keys (wipe them with pos_sign_keys_wipe()), [security]
 * user's ids in *run_uid and *run_gid (0 when none is set). Returns 0, or
 * POS_EX_CONFIG with the reason printed to stderr ("posagent: configuration
 * error: ...") and cfg wiped, tls disposed, keys wiped.
 */
int pos_startup_config(const pos_args_t *a, pos_config_t *cfg, pos_tls_t *tls,
                       pos_sign_keys_t *keys, uid_t *run_uid, gid_t *run_gid);

#endif
