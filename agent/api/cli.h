#ifndef AGENT_API_CLI_H
#define AGENT_API_CLI_H

/*
 * The technician's command line, a client of the local API socket:
 *
 *   posagent status                the agent's INFO (every section)
 *   posagent cache get KEY         the cached value of KEY
 *   posagent outbox                INFO outbox
 *   posagent journal [--all]       payments to reconcile (JOURNAL; root or
 *                                  the agent's user only, as the tests)
 *   posagent devices               the devices' states (DEVICES)
 *   posagent devices test-print    a test receipt (DEVICES TEST PRINTER)
 *   posagent devices test-display  a test message (DEVICES TEST DISPLAY)
 *
 * Each takes --json (one JSON document on stdout) and --socket PATH (the
 * socket to ask; otherwise the caller's). It runs as its own short-lived
 * process, so it uses blocking I/O (with a 5 s timeout) and is not part of
 * the agent's loop.
 */

#include <stdio.h>

#define POS_CLI_EX_USAGE       64 /* sysexits.h EX_USAGE */
#define POS_CLI_EX_UNAVAILABLE 69 /* sysexits.h EX_UNAVAILABLE: agent not running */
#define POS_CLI_EX_TEMPFAIL    75 /* sysexits.h EX_TEMPFAIL: busy, try again */
#define POS_CLI_EX_NOPERM      77 /* sysexits.h EX_NOPERM: the socket or command is not ours */
#define POS_CLI_EX_NOTFOUND    1  /* cache get: the key is not cached */
#define POS_CLI_EX_ERROR       1  /* the agent answered with an error */

/*
 * Runs one subcommand; argv[0] is its name ("status", "cache", "outbox",
 * "journal", "devices"); --json, --all and --socket PATH may come anywhere
 * after it. socket_path is the socket unless --socket names another
 * (NULL: the default). Prints the result on stdout and problems on stderr.
 * Returns the exit code: 0, POS_CLI_EX_USAGE, POS_CLI_EX_UNAVAILABLE (not
 * running), POS_CLI_EX_NOPERM (the socket, or a device test, is not for
 * this user), POS_CLI_EX_TEMPFAIL (a payment holds the devices), or 1 (not
 * cached, or the agent answered with an error).
 * With a password (NULL or "": none), it authenticates first ([local]
 * password).
 */
int pos_cli_main(int argc, char **argv, const char *socket_path, const char *password);

/* Same, printing to "out" and "err", without a password (for tests). */
int pos_cli_run(int argc, char **argv, const char *socket_path, FILE *out, FILE *err);

#endif /* AGENT_API_CLI_H */
