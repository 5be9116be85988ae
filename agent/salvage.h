#ifndef AGENT_SALVAGE_H
#define AGENT_SALVAGE_H

/*
 * The operator's side of a store moved aside (docs/offline.md "A store
 * that cannot be read"): the technician's commands
 *
 *   posagent store salvage [--dry-run] PATH
 *       lists what is readable in the moved-aside store PATH (its outbox
 *       entries and payment journal records) and queues it again in the
 *       till's store: outbox entries go out again (new outbox ids), journal
 *       records are put back where the store has none for that transaction,
 *       so an interrupted payment is reported at the next start and a
 *       replayed one is never charged again. PATH is then renamed
 *       PATH.salvaged. Refused while an agent runs on the store (its lock).
 *       The damaged file is read in a child process: a page that crashes
 *       the reader ends the listing there, never the command.
 *
 *   posagent store clear-recovered
 *       renames every store moved aside (data.mdb.corrupt-*) to *.cleared,
 *       after which the agent takes payments again (a running agent is
 *       told with SIGHUP).
 */

#include "conf/config.h"

/*
 * Runs "store ..." (argv[0] is "store") for the configuration cfg.
 * Returns the exit status: 0, 1 (failure), 64 (usage), 75 (salvage: an
 * agent runs on the store).
 */
int pos_salvage_main(int argc, char **argv, const pos_config_t *cfg);

#endif /* AGENT_SALVAGE_H */
