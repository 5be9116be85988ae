/*
 * posagent-tools: the commands of posagent that the running daemon never
 * needs, in a binary of their own so that the daemon stays within the
 * embedded size budgets (docs/footprint.md). posagent executes it, with
 * the same arguments, for:
 *
 *   posagent --print-example-config | --print-config-reference | --print-config-man
 *   posagent --check-config [...]  (validated as at every start, then the settings)
 *   posagent --help, and the message and usage of a bad command line
 *   posagent [--config FILE] acl
 *   posagent [--config FILE] store salvage [--dry-run] PATH | store clear-recovered
 *   posagent [--socket PATH] [--json] status | cache get KEY | outbox |
 *            journal [--all] | devices [test-print | test-display]
 *
 * Installed as /usr/lib/posagent/posagent-tools (beside posagent in a build
 * tree). Options, messages and exit codes are posagent's (agent/main.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/acl.h"
#include "agent/args.h"
#include "agent/api/cli.h"
#include "agent/salvage.h"
#include "agent/startup.h"
#include "conf/config.h"
#include "platform/version.h"

extern char **environ;

/* posagent --help, and what follows a usage error. */
static void usage(FILE *out)
{
    fprintf(out,
            "Usage: posagent [--config FILE] [--check-config]\n"
            "       posagent [--config FILE] status | cache get KEY | outbox\n"
            "       posagent [--config FILE] journal [--all] | devices\n"
            "       posagent [--config FILE] devices test-print | devices test-display\n"
            "       posagent [--config FILE] store salvage [--dry-run] PATH | store "
            "clear-recovered\n"
            "       posagent [--config FILE] acl       print this till's Redis ACL rule\n"
            "       posagent --version | --help\n"
            "\n"
            "  -c, --config FILE        configuration file (default " POS_ARGS_DEFAULT_CONFIG
            " if it exists;\n"
            "                           environment variables override it)\n"
            "      --config-dir DIR     drop-in directory, its *.ini read after FILE in name\n"
            "                           order (default: FILE without .ini, plus .d:\n"
            "                           /etc/posagent/posagent.d; \"\" for none;\n"
            "                           environment POSAGENT_CONFIG_DIR)\n"
            "  -t, --check-config       validate the configuration, print the effective\n"
            "                           settings (secrets masked) and exit\n"
            "      --socket PATH        the agent's socket, for the commands that ask it\n"
            "                           (default: [local] socket)\n"
            "      --json               their answer as one JSON document\n"
            "      --print-example-config   print the commented example configuration\n"
            "      --print-config-reference print the configuration reference (Markdown)\n"
            "      --print-config-man   print the manual page posagent.ini(5) (roff)\n"
            "  -V, --version            print version information and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Environment: REDIS_URL, REDIS_PASSWORD, REDIS_DB,\n"
            "REDIS_RETRY_DELAY_ON_FAILURE_MS, REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS,\n"
            "POSAGENT_TERMINAL_ID, POSAGENT_STORE_ID, POSAGENT_TLS_CA_FILE,\n"
            "POSAGENT_ALLOW_ROOT, POSAGENT_ALLOW_UNSIGNED, POSAGENT_CONFIG_DIR.\n");
}

/*
 * --check-config: the configuration validated as the agent does at every
 * start (agent/startup.h), then the effective settings, secrets masked.
 */
static int check_config(const pos_args_t *a)
{
    static pos_tls_t tls; /* loaded only to be checked (rediss://) */
    static pos_sign_keys_t keys; /* the same */
    pos_config_t cfg;
    uid_t uid;
    gid_t gid;
    int rc = pos_startup_config(a, &cfg, &tls, &keys, &uid, &gid);

    if (rc != 0) {
        return rc;
    }
    pos_sign_keys_wipe(&keys);
    pos_tls_dispose(&tls);
    printf("# configuration OK%s%s", a->path ? ": " : " (no file, defaults and environment)",
           a->path ? a->path : "");
    for (size_t i = 1; i < cfg.nfiles; i++) {
        printf("%s%s", i == 1 ? " and drop-ins " : ", ", cfg.files[i].path);
    }
    printf("\n");
    pos_config_dump(&cfg, stdout);
    pos_config_wipe(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    pos_config_t cfg;
    pos_config_error_t err;
    pos_args_t args;
    const char *path, *dir;
    int rc;

    /* posagent's parser; posagent was quiet about a bad command line, so
     * that its error is said here, with the usage. What posagent does
     * itself (run, --version) is a usage error here. */
    pos_args_parse(&args, argc, argv, false);
    path = args.path;
    dir = args.dir;
    switch (args.action) {
    case POS_ARGS_CHECK:
        return check_config(&args);
    case POS_ARGS_HELP:
        usage(stdout);
        return 0;
    case POS_ARGS_EXAMPLE:
        pos_config_write_example(stdout);
        return 0;
    case POS_ARGS_REFERENCE:
        pos_config_write_reference(stdout);
        return 0;
    case POS_ARGS_MAN:
        pos_config_write_man(stdout, POS_VERSION);
        return 0;
    case POS_ARGS_ACL:
    case POS_ARGS_STORE:
    case POS_ARGS_CLI:
        break;
    case POS_ARGS_USAGE:
        pos_args_error(&args, argv, stderr);
        usage(stderr);
        return POS_EX_USAGE;
    default:
        fprintf(stderr, "posagent-tools is run by posagent; see posagent --help\n");
        return POS_EX_USAGE;
    }
    if (args.action == POS_ARGS_ACL) {
        /* Least privilege on Redis (docs/acl.md): the rule for this till. */
        char rule[4096];
        rc = pos_config_load_dir(&cfg, path, dir, environ, &err);
        if (rc != 0) {
            fprintf(stderr, "posagent: configuration error: %s\n", err.msg);
            pos_config_wipe(&cfg);
            return POS_EX_CONFIG;
        }
        printf("# The Redis ACL rule for terminal %s of store %s (docs/acl.md): exactly what\n"
               "# the agent uses. Run it on the master (kept by ACL SAVE or the aclfile, and on\n"
               "# each replica that may be promoted).%s\n",
               cfg.terminal_id, cfg.store_id,
               cfg.redis.user[0] == '\0'
                   ? " Then put the user in [redis] url: redis://posagent-<id>@host."
                   : "");
        if (pos_acl_rule(&cfg, rule, sizeof(rule)) < 0) {
            pos_config_wipe(&cfg);
            return 1;
        }
        printf("%s\n", rule);
        if (pos_acl_sentinel_rule(&cfg, rule, sizeof(rule)) > 0) {
            printf("# On each sentinel, where its default user serves the agents only:\n# %s\n",
                   rule);
        }
        pos_config_wipe(&cfg);
        return 0;
    }
    if (args.action == POS_ARGS_STORE) {
        /* The operator's commands on the store (agent/salvage.h). */
        rc = pos_config_load_dir(&cfg, path, dir, environ, &err);
        if (rc != 0) {
            fprintf(stderr, "posagent: configuration error: %s\n", err.msg);
            pos_config_wipe(&cfg);
            return POS_EX_CONFIG;
        }
        rc = pos_salvage_main(argc - args.command, argv + args.command, &cfg);
        pos_config_wipe(&cfg);
        return rc;
    }
    /* The technician's CLI: talk to the running agent on its socket, the
     * one --socket names or the configuration's (which a technician may not
     * be allowed to read: then the default). */
    char *cargv[16];
    int cargc = 0;
    const char *sock = args.socket;
    const char *pw = NULL;
    if (pos_config_load_dir(&cfg, path, dir, environ, &err) == 0) {
        sock = sock != NULL ? sock : cfg.local_socket;
        pw = cfg.local_password_set ? cfg.local_password : NULL;
    }
    for (int i = args.command; i < argc && cargc < 15; i++) {
        cargv[cargc++] = argv[i];
    }
    if (args.json && cargc < 15) {
        cargv[cargc++] = "--json";
    }
    cargv[cargc] = NULL;
    rc = pos_cli_main(cargc, cargv, sock, pw);
    pos_config_wipe(&cfg);
    return rc;
}
