/* The configuration the agent starts with (agent/startup.h). */
#include "agent/startup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/api/localapi.h"
#include "agent/msg/sign.h"
#include "platform/cpu.h"
#include "platform/priv.h"

extern char **environ;

int pos_startup_config(const pos_args_t *a, pos_config_t *cfg, pos_tls_t *tls,
                       pos_sign_keys_t *keys, uid_t *run_uid, gid_t *run_gid)
{
    pos_config_error_t err;
    char why[512];

    memset(keys, 0, sizeof(*keys));
    *run_uid = 0;
    *run_gid = 0;
    if (pos_config_load_dir(cfg, a->path, a->dir, environ, &err) != 0) {
        fprintf(stderr, "posagent: configuration error: %s\n", err.msg);
        goto fail_load;
    }
    /* TLS material is loaded now, so that a bad CA, certificate or key is a
     * configuration error (also for --check-config), not a retry loop. */
    if (cfg->redis.tls) {
        pos_tls_options_t topt;
        pos_tls_options_from_config(cfg, &topt);
        if (pos_tls_init(tls, &topt, why, sizeof(why)) != 0) {
            fprintf(stderr, "posagent: configuration error: %s\n", why);
            goto fail_load;
        }
    }
    /* Signed messages are the default posture: running without a key is a
     * decision written down, never an omission. */
    if (cfg->payment_hmac_key_file[0] == '\0' && !cfg->payment_allow_unsigned) {
        fprintf(stderr,
                "posagent: configuration error: [payment] hmac_key_file is not set: cloud "
                "messages could not be checked, so anyone who can publish on payment:%s could "
                "make this till charge a card. Set hmac_key_file (docs/signing.md), or "
                "[payment] allow_unsigned = true (POSAGENT_ALLOW_UNSIGNED=1) for a demo or a "
                "test\n",
                cfg->terminal_id);
        goto fail_tls;
    }
    /* The key file, read now (while it is still readable by us): one it
     * refuses (a directory, a FIFO, open to others, no key in it) is a
     * configuration error for --check-config too. */
    if (cfg->payment_hmac_key_file[0] != '\0') {
        int krc = pos_sign_keys_load(cfg->payment_hmac_key_file, keys, why, sizeof(why));
        if (krc != 0) {
            fprintf(stderr, "posagent: configuration error: [payment] hmac_key_file: %s\n", why);
            goto fail_tls;
        }
    }
    /* Accounts it names must exist: the agent refuses to start otherwise. */
    if (cfg->security_user[0] != '\0') {
        int urc = pos_priv_lookup(cfg->security_user, run_uid, run_gid);
        if (urc != 0) {
            fprintf(stderr, "posagent: configuration error: [security] user %s: %s\n",
                    cfg->security_user, urc == -ENOENT ? "no such user" : strerror(-urc));
            goto fail_tls;
        }
    }
    if (cfg->local_socket_group[0] != '\0') {
        gid_t gid;
        int grc = pos_localapi_lookup_group(cfg->local_socket_group, &gid);
        if (grc != 0) {
            fprintf(stderr, "posagent: configuration error: [local] socket_group %s: %s\n",
                    cfg->local_socket_group, grc == -ENOENT ? "no such group" : strerror(-grc));
            goto fail_tls;
        }
    }
    /* A CPU the service manager (CPUAffinity=) or taskset keeps the agent
     * off is a configuration error, not a silent no-op. */
    if (cfg->store_cpu >= 0) {
        char allowed[128];
        if (!pos_cpu_allowed(cfg->store_cpu, allowed, sizeof(allowed))) {
            fprintf(stderr,
                    "posagent: configuration error: [store] cpu = %d: not a CPU this agent may "
                    "run on (allowed: %s)\n",
                    cfg->store_cpu, allowed);
            goto fail_tls;
        }
    }
    /* The socket's group is the POS application's: it must not be able to
     * read what may hold the Redis password, nor a drop-in holding a secret. */
    for (size_t i = 0; i < cfg->nfiles; i++) {
        const pos_config_file_t *f = &cfg->files[i];
        if ((!f->dropin || f->secrets) &&
            pos_localapi_check_private(cfg->local_socket_group, f->path, why, sizeof(why)) != 0) {
            fprintf(stderr, "posagent: configuration error: %s\n", why);
            goto fail_tls;
        }
    }
    return 0;

fail_tls:
    pos_sign_keys_wipe(keys);
    pos_tls_dispose(tls);
fail_load:
    pos_config_wipe(cfg);
    return POS_EX_CONFIG;
}
