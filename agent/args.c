/* posagent's command line (agent/args.h). */
#include "agent/args.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The commands posagent-tools runs after the options (acl is handled apart:
 * it takes no argument, "acl x" is a stray argument). */
static const char cli_commands[] = "status\0cache\0outbox\0journal\0devices\0";

static bool is_cli_command(const char *word)
{
    for (const char *c = cli_commands; *c != '\0'; c += strlen(c) + 1) {
        if (strcmp(word, c) == 0) {
            return true;
        }
    }
    return false;
}

void pos_args_parse(pos_args_t *a, int argc, char **argv, bool quiet)
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
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool check = false;
    int opt;

    memset(a, 0, sizeof(*a));
    a->dir = getenv("POSAGENT_CONFIG_DIR"); /* NULL: beside the file */
    opterr = quiet ? 0 : 1;
    optind = 0; /* glibc: start afresh, also on a second call */
    while ((opt = getopt_long(argc, argv, "+c:tVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            a->path = optarg;
            break;
        case OPT_CONFIG_DIR:
            a->dir = optarg;
            break;
        case 't':
            check = true;
            break;
        case OPT_SOCKET:
            a->socket = optarg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_EXAMPLE:
            a->action = POS_ARGS_EXAMPLE;
            return;
        case OPT_REFERENCE:
            a->action = POS_ARGS_REFERENCE;
            return;
        case OPT_MAN:
            a->action = POS_ARGS_MAN;
            return;
        case 'V':
            a->action = POS_ARGS_VERSION;
            return;
        case 'h':
            a->action = POS_ARGS_HELP;
            return;
        default:
            a->action = POS_ARGS_USAGE;
            return;
        }
    }
    if (a->path == NULL && access(POS_ARGS_DEFAULT_CONFIG, F_OK) == 0) {
        a->path = POS_ARGS_DEFAULT_CONFIG;
    }
    a->command = optind;
    if (optind < argc) {
        const char *word = argv[optind];
        if (strcmp(word, "acl") == 0 && optind + 1 == argc) {
            a->action = POS_ARGS_ACL;
            return;
        }
        if (strcmp(word, "store") == 0) {
            a->action = POS_ARGS_STORE;
            return;
        }
        if (is_cli_command(word)) {
            a->action = POS_ARGS_CLI;
            return;
        }
    }
    if (a->socket != NULL || a->json) {
        a->action = POS_ARGS_USAGE;
        a->error = 1;
        return;
    }
    if (optind != argc) {
        a->action = POS_ARGS_USAGE;
        a->error = 2;
        return;
    }
    a->action = check ? POS_ARGS_CHECK : POS_ARGS_RUN;
}

void pos_args_error(const pos_args_t *a, char **argv, FILE *out)
{
    if (a->error == 1) {
        fprintf(out, "posagent: --socket and --json go with status, cache, outbox, journal "
                     "or devices\n");
    } else if (a->error == 2) {
        fprintf(out, "posagent: unexpected argument '%s'\n", argv[a->command]);
    }
}
