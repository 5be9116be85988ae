/*
 * posagent: the point-of-sale terminal agent.
 *
 *   posagent [--config FILE]          run
 *   posagent --check-config [...]     validate, print effective settings, exit
 *   posagent [--socket PATH] [--json] status | cache get KEY | outbox |
 *            journal [--all] | devices [test-print | test-display]
 *   posagent --version | --help
 *
 * Exit codes: 0 clean stop, 64 usage error, 78 configuration error,
 * 75 another agent runs for this till (its store, its socket or its
 * terminal id: agent/instance.h), 1 any other failure. The technician's
 * commands exit as agent/api/cli.h says (69 not running, 77 permission).
 */
#include <errno.h>
#include <limits.h>
#include <gnu/libc-version.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent/agent.h"
#include "agent/args.h"
#include "agent/instance.h"
#include "agent/msg/sign.h"
#include "agent/link/tls.h"
#include "agent/startup.h"
#include "conf/config.h"
#include "platform/cpu.h"
#include "platform/log.h"
#include "platform/priv.h"
#include "platform/version.h"

/*
 * What the running daemon never needs (the configuration documents,
 * --check-config's report, --help and the usage, acl, store, the
 * technician's CLI) is in posagent-tools, so that the daemon stays within
 * the embedded size budgets (docs/footprint.md). It is run with the same
 * arguments, from beside this binary (a build tree) or from ../lib/posagent/
 * (installed: /usr/bin -> /usr/lib/posagent). Returns fail if it cannot be.
 */
static int exec_tools(char **argv, int fail)
{
    static const char *const where[] = {"/posagent-tools", "/../lib/posagent/posagent-tools"};
    char self[PATH_MAX];
    char tool[PATH_MAX + 40];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n <= 0) {
        fprintf(stderr, "posagent: cannot find posagent-tools: /proc/self/exe: %s\n",
                n < 0 ? strerror(errno) : "empty");
        return 1;
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        snprintf(tool, sizeof(tool), "%s%s", self, where[i]);
        if (access(tool, X_OK) == 0) {
            fflush(stdout);
            execv(tool, argv);
            fprintf(stderr, "posagent: cannot run %s: %s\n", tool, strerror(errno));
            return fail;
        }
    }
    fprintf(stderr, "posagent: %s/../lib/posagent/posagent-tools is missing\n", self);
    return fail;
}

/*
 * Optional libraries, named only by weak references: a version is printed
 * when the library is really linked into this binary (the symbol resolves),
 * whether or not its headers were seen here.
 */
extern char *mdb_version(int *major, int *minor, int *patch) __attribute__((weak));
extern void mbedtls_version_get_string(char *string) __attribute__((weak));

static void print_version(void)
{
    const char *arch;

    printf("posagent %s (build %s)\n", POS_VERSION, POS_BUILD_ID);
#if defined(__aarch64__)
    arch = "aarch64";
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
    arch = "arm (hard float)";
#elif defined(__arm__)
    arch = "arm (soft float)";
#elif defined(__x86_64__)
    arch = "x86_64";
#elif defined(__i386__)
    arch = "i386";
#else
    arch = "unknown";
#endif
    printf("target: %s linux, %u-bit, %s-endian", arch, (unsigned)(sizeof(void *) * 8),
           __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big");
#if defined(__ARM_ARCH)
    printf(", ARMv%d", __ARM_ARCH);
#endif
#if defined(__clang__)
    printf(", clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    printf(", gcc %d.%d.%d\n", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    printf("\n");
#endif
    /* Run-time versions where the library can tell (the shared object
     * actually loaded); hiredis 0.14 has only its header's. */
    printf("libuv %s, hiredis %d.%d.%d, cJSON %s, glibc %s", uv_version_string(), HIREDIS_MAJOR,
           HIREDIS_MINOR, HIREDIS_PATCH, cJSON_Version(), gnu_get_libc_version());
    if (mdb_version != NULL) {
        int major, minor, patch;
        mdb_version(&major, &minor, &patch);
        printf(", LMDB %d.%d.%d", major, minor, patch);
    }
    if (mbedtls_version_get_string != NULL) {
        char v[18];
        mbedtls_version_get_string(v);
        printf(", mbedTLS %s", v);
    }
    printf(", inih (no version API)\n");
}

int main(int argc, char **argv)
{
    pos_agent_t *agent; /* 800 KiB: allocated, see below */
    static pos_sign_keys_t keys;
    static pos_tls_t tls; /* used only with rediss:// */
    static pos_instance_t instance; /* this till's locks and lease */
    pos_config_t cfg;
    char why[512];
    uid_t run_uid = 0;
    gid_t run_gid = 0;
    bool drop = false;
    pos_args_t args;
    const char *path, *dir;
    uv_loop_t loop;
    int rc;

    /* Quiet: posagent-tools says what is wrong with a command line. */
    pos_args_parse(&args, argc, argv, true);
    path = args.path;
    dir = args.dir;
    switch (args.action) {
    case POS_ARGS_RUN:
        break;
    case POS_ARGS_VERSION:
        print_version();
        return 0;
    case POS_ARGS_USAGE:
        return exec_tools(argv, POS_EX_USAGE);
    default:
        /* --check-config, --help, the documents, the operator's (acl,
         * store) and the technician's commands. */
        return exec_tools(argv, 1);
    }

    /* The signing keys (read now, while the file is still readable by us)
     * and [security] user's ids come with the checked configuration. */
    rc = pos_startup_config(&args, &cfg, &tls, &keys, &run_uid, &run_gid);
    if (rc != 0) {
        return rc;
    }
    /* Before any thread is started: they all inherit the CPU. */
    if (cfg.store_cpu >= 0) {
        rc = pos_cpu_pin(cfg.store_cpu);
        if (rc != 0) {
            fprintf(stderr, "posagent: configuration error: [store] cpu = %d: %s\n", cfg.store_cpu,
                    strerror(-rc));
            goto fail_config;
        }
    }
    /* Root: only to open what needs it, then the configured user for good;
     * or on purpose ([security] allow_root). */
    if (cfg.security_user[0] != '\0') {
        if (geteuid() == 0 && run_uid != 0) {
            drop = true;
        } else if (geteuid() != run_uid) {
            fprintf(stderr,
                    "posagent: configuration error: [security] user %s: started as uid %u, "
                    "not root, so the agent cannot switch to it\n",
                    cfg.security_user, (unsigned)geteuid());
            goto fail_config;
        }
    }
    if (geteuid() == 0 && !drop && !cfg.security_allow_root) {
        fprintf(stderr, "posagent: configuration error: refusing to run as root: set [security] "
                        "user to the account to run as, or [security] allow_root = true "
                        "(POSAGENT_ALLOW_ROOT=1)\n");
        goto fail_config;
    }

    /* Card data passes through this process: no core dumps, and no ptrace
     * by other users (a non-dumpable process cannot be attached). */
    {
        struct rlimit no_core = {0, 0};
        if (setrlimit(RLIMIT_CORE, &no_core) != 0 || prctl(PR_SET_DUMPABLE, 0) != 0) {
            fprintf(stderr, "posagent: warning: could not disable core dumps\n");
        }
    }
    pos_log_set_level((pos_log_level_t)cfg.log_level);
    pos_log_use_syslog(cfg.log_syslog);
    /* A peer closing a socket must be an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (cfg.store_cpu >= 0) {
        POS_INFO("agent", "running on CPU %d ([store] cpu)", cfg.store_cpu);
    }

    /* One agent per till: its store and its socket locked, before anything
     * is opened, connected or subscribed (agent/instance.h). */
    {
        pos_instance_options_t io = {
            .store_path = cfg.store_path,
            .socket_path = cfg.local_socket,
            .socket_group = cfg.local_socket_group,
            .terminal_id = cfg.terminal_id,
            .lease_ttl_s = cfg.heartbeat_ttl_s,
        };
        rc = pos_instance_claim(&instance, &io, why, sizeof(why));
        if (rc != 0) {
            POS_ERR("agent", "cannot start: %s", why);
            pos_sign_keys_wipe(&keys);
            pos_tls_dispose(&tls);
            pos_config_wipe(&cfg);
            return rc == -EBUSY || rc == -EADDRINUSE ? POS_EX_ANOTHER : 1;
        }
    }
    /* The agent's struct (800 KiB, mostly buffers touched only when used,
     * so no more resident than in .bss) is allocated: the daemon's image
     * then fits the 1 MiB of aarch64's tiny code model (docs/footprint.md). */
    agent = calloc(1, sizeof(*agent));
    if (agent == NULL) {
        POS_ERR("agent", "cannot start: %s", strerror(ENOMEM));
        pos_tls_dispose(&tls);
        pos_config_wipe(&cfg);
        pos_sign_keys_wipe(&keys);
        return 1;
    }
    rc = uv_loop_init(&loop);
    if (rc != 0) {
        POS_ERR("agent", "cannot create the event loop: %s", uv_strerror(rc));
        free(agent);
        pos_tls_dispose(&tls);
        pos_config_wipe(&cfg);
        pos_sign_keys_wipe(&keys);
        return 1;
    }
    rc = pos_agent_init(agent, &loop, &cfg, path, &keys, cfg.redis.tls ? &tls : NULL, &instance);
    agent->config_dir = dir; /* for SIGHUP: the same files again */
    pos_config_wipe(&cfg);  /* the agent keeps its own copy */
    pos_sign_keys_wipe(&keys);
    if (rc != 0) {
        POS_ERR("agent", "cannot start: %s", strerror(-rc));
        uv_run(&loop, UV_RUN_DEFAULT); /* lets what init had opened close */
        uv_loop_close(&loop);
        free(agent);
        pos_tls_dispose(&tls);
        return 1;
    }
    POS_INFO("agent", "posagent %s starting: terminal %s, store %s, %s", POS_VERSION,
             agent->cfg.terminal_id, agent->cfg.store_id,
             agent->sign.count > 0 ? "messages signed"
                                  : "UNSIGNED messages accepted ([payment] allow_unsigned)");
    if (agent->sign.count > 0 && agent->cfg.payment_allow_unsigned) {
        POS_WARN("agent", "[payment] allow_unsigned is ignored: hmac_key_file is set");
    }
    pos_agent_start(agent);
    if (drop) {
        /* Devices are first opened from the loop (a zero timer): one turn
         * of it opens those present while still root. Re-opens later (an
         * unplugged printer back) happen as the user: it needs the
         * devices' groups (docs/hardening.md). */
        uv_run(&loop, UV_RUN_NOWAIT);
        /* Store, local socket and devices are open: the store's files must
         * stay writable (and reopenable at the next start) by the user. */
        rc = pos_priv_chown_dir(agent->cfg.store_path, run_uid, run_gid);
        if (rc != 0 && agent->store_ok) {
            POS_WARN("agent", "cannot hand %s to %s: %s", agent->cfg.store_path,
                     agent->cfg.security_user, strerror(-rc));
        }
        /* The socket's lock file too, for a next start as the user. */
        if (instance.socket_fd >= 0 && fchown(instance.socket_fd, run_uid, run_gid) != 0) {
            POS_WARN("agent", "cannot hand the socket's lock file to %s: %s",
                     agent->cfg.security_user, strerror(errno));
        }
        rc = pos_priv_drop(agent->cfg.security_user, run_uid, run_gid, why, sizeof(why));
        if (rc != 0) {
            /* Never go on as root by accident. */
            POS_ERR("agent", "cannot switch to user %s: %s", agent->cfg.security_user, why);
            exit(1);
        }
        POS_INFO("agent", "running as %s (uid %u, gid %u)", agent->cfg.security_user,
                 (unsigned)run_uid, (unsigned)run_gid);
    } else if (geteuid() == 0) {
        POS_WARN("agent", "running as root ([security] allow_root)");
    }
    uv_run(&loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&loop);
    int status = agent->exit_code;
    pos_agent_dispose(agent);
    free(agent);
    pos_tls_dispose(&tls); /* after both connections are closed */
    pos_instance_release(&instance);
    if (rc != 0) {
        POS_ERR("agent", "event loop closed with handles still open");
        return 1;
    }
    POS_INFO("agent", "stopped%s",
             status == POS_EX_ANOTHER ? ": another agent holds this till" : "");
    pos_log_use_syslog(false);
    return status;

fail_config:
    pos_sign_keys_wipe(&keys);
    pos_tls_dispose(&tls);
    pos_config_wipe(&cfg);
    return POS_EX_CONFIG;
}
