/*
 * posagent-tools: the commands of posagent that the running daemon never
 * needs, in a binary of their own so that the daemon stays within the
 * embedded size budgets (docs/footprint.md). posagent executes it, with
 * the same arguments, for:
 *
 *   posagent --print-example-config | --print-config-reference | --print-config-man
 *   posagent [--config FILE] acl
 *   posagent [--config FILE] store salvage [--dry-run] PATH | store clear-recovered
 *   posagent [--socket PATH] [--json] status | cache get KEY | outbox |
 *            journal [--all] | devices [test-print | test-display]
 *
 * Installed as /usr/lib/posagent/posagent-tools (beside posagent in a build
 * tree). Options, messages and exit codes are posagent's (agent/main.c).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/acl.h"
#include "agent/api/cli.h"
#include "agent/salvage.h"
#include "conf/config.h"
#include "platform/version.h"

#define EX_USAGE_CODE  64
#define DEFAULT_CONFIG "/etc/posagent/posagent.ini"

extern char **environ;

static void usage(FILE *out)
{
    fprintf(out, "posagent-tools is run by posagent; see posagent --help\n");
}

int main(int argc, char **argv)
{
    enum { OPT_EXAMPLE = 256, OPT_REFERENCE, OPT_MAN, OPT_CONFIG_DIR, OPT_SOCKET, OPT_JSON };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"config-dir", required_argument, NULL, OPT_CONFIG_DIR},
        {"check-config", no_argument, NULL, 't'},
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"json", no_argument, NULL, OPT_JSON},
        {"print-example-config", no_argument, NULL, OPT_EXAMPLE},
        {"print-config-reference", no_argument, NULL, OPT_REFERENCE},
        {"print-config-man", no_argument, NULL, OPT_MAN},
        {NULL, 0, NULL, 0},
    };
    pos_config_t cfg;
    pos_config_error_t err;
    const char *path = NULL;
    const char *dir = getenv("POSAGENT_CONFIG_DIR"); /* NULL: beside the file */
    const char *cli_socket = NULL; /* --socket: the technician's commands ask there */
    bool cli_json = false;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "+c:t", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case OPT_CONFIG_DIR:
            dir = optarg;
            break;
        case 't': /* posagent's: ignored before a command, as there */
            break;
        case OPT_SOCKET:
            cli_socket = optarg;
            break;
        case OPT_JSON:
            cli_json = true;
            break;
        case OPT_EXAMPLE:
            pos_config_write_example(stdout);
            return 0;
        case OPT_REFERENCE:
            pos_config_write_reference(stdout);
            return 0;
        case OPT_MAN:
            pos_config_write_man(stdout, POS_VERSION);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE_CODE;
        }
    }
    if (path == NULL && access(DEFAULT_CONFIG, F_OK) == 0) {
        path = DEFAULT_CONFIG;
    }
    if (optind < argc && strcmp(argv[optind], "acl") == 0 && optind + 1 == argc) {
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
    if (optind < argc && strcmp(argv[optind], "store") == 0) {
        /* The operator's commands on the store (agent/salvage.h). */
        rc = pos_config_load_dir(&cfg, path, dir, environ, &err);
        if (rc != 0) {
            fprintf(stderr, "posagent: configuration error: %s\n", err.msg);
            pos_config_wipe(&cfg);
            return POS_EX_CONFIG;
        }
        rc = pos_salvage_main(argc - optind, argv + optind, &cfg);
        pos_config_wipe(&cfg);
        return rc;
    }
    if (optind < argc &&
        (strcmp(argv[optind], "status") == 0 || strcmp(argv[optind], "cache") == 0 ||
         strcmp(argv[optind], "outbox") == 0 || strcmp(argv[optind], "journal") == 0 ||
         strcmp(argv[optind], "devices") == 0)) {
        /* The technician's CLI: talk to the running agent on its socket,
         * the one --socket names or the configuration's (which a technician
         * may not be allowed to read: then the default). */
        char *cargv[16];
        int cargc = 0;
        const char *sock = cli_socket;
        const char *pw = NULL;
        if (pos_config_load_dir(&cfg, path, dir, environ, &err) == 0) {
            sock = sock != NULL ? sock : cfg.local_socket;
            pw = cfg.local_password_set ? cfg.local_password : NULL;
        }
        for (int i = optind; i < argc && cargc < 15; i++) {
            cargv[cargc++] = argv[i];
        }
        if (cli_json && cargc < 15) {
            cargv[cargc++] = "--json";
        }
        cargv[cargc] = NULL;
        rc = pos_cli_main(cargc, cargv, sock, pw);
        pos_config_wipe(&cfg);
        return rc;
    }
    usage(stderr);
    return EX_USAGE_CODE;
}
