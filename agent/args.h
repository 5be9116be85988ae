#ifndef AGENT_ARGS_H
#define AGENT_ARGS_H

/*
 * posagent's command line, read by one parser for posagent, for
 * posagent-tools (which posagent executes with the same arguments) and for
 * the test harness (which must know which of the two a command line runs
 * under an emulator): so the three cannot disagree on what it asks for.
 * Pure: getopt, string compares and whether the default file exists.
 */

#include <stdbool.h>
#include <stdio.h>

#define POS_EX_USAGE 64 /* sysexits.h EX_USAGE */

/* The default configuration file, read when it exists and no --config. */
#define POS_ARGS_DEFAULT_CONFIG "/etc/posagent/posagent.ini"

/* What the command line asks for. */
typedef enum {
    POS_ARGS_RUN = 0,   /* run the agent */
    POS_ARGS_CHECK,     /* --check-config */
    POS_ARGS_VERSION,   /* --version */
    POS_ARGS_HELP,      /* --help */
    POS_ARGS_EXAMPLE,   /* --print-example-config */
    POS_ARGS_REFERENCE, /* --print-config-reference */
    POS_ARGS_MAN,       /* --print-config-man */
    POS_ARGS_ACL,       /* acl */
    POS_ARGS_STORE,     /* store ... */
    POS_ARGS_CLI,       /* status, cache, outbox, journal, devices ... */
    POS_ARGS_USAGE,     /* a usage error (pos_args_error says which) */
} pos_args_action_t;

typedef struct pos_args {
    pos_args_action_t action;
    const char *path;   /* --config, else the default file if it exists, else NULL */
    const char *dir;    /* --config-dir, else $POSAGENT_CONFIG_DIR, else NULL */
    const char *socket; /* --socket, or NULL */
    bool json;          /* --json */
    int command;        /* argv index of the command (acl, store, CLI) or of the stray argument */
    int error;          /* POS_ARGS_USAGE: 0 getopt already said, 1 --socket/--json alone,
                           2 an unexpected argument (argv[command]) */
} pos_args_t;

/*
 * Read argv as posagent does: options up to the first operand, the first
 * of --version, --help and --print-* deciding at once (as they did in
 * order), then the command. quiet: getopt says nothing about a bad option
 * (the caller has it said by the binary that prints the usage).
 */
void pos_args_parse(pos_args_t *a, int argc, char **argv, bool quiet);

/* For POS_ARGS_USAGE: the message ("posagent: ...\n") of errors 1 and 2. */
void pos_args_error(const pos_args_t *a, char **argv, FILE *out);

#endif
