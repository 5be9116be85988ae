#ifndef PLATFORM_PRIV_H
#define PLATFORM_PRIV_H

/*
 * Privileges (docs/hardening.md): a root-started agent opens what needs
 * root (store, local socket, devices), then becomes an ordinary user for
 * good.
 */

#include <stddef.h>
#include <sys/types.h>

/* Looks "user" up in the password database. Returns 0, -ENOENT for an
 * unknown user, or a negative errno. */
int pos_priv_lookup(const char *user, uid_t *uid, gid_t *gid);

/*
 * Becomes uid/gid, with the supplementary groups of "user" (initgroups),
 * then checks that the switch is for good: real, effective and saved ids
 * are the new ones and setuid(0) fails. Must be called as root. Returns 0
 * or a negative errno with "why" set; on error the caller must exit.
 */
int pos_priv_drop(const char *user, uid_t uid, gid_t gid, char *why, size_t whylen);

/* chown of a directory and the regular files directly in it (symlinks are
 * not followed). Returns 0 or the first negative errno. */
int pos_priv_chown_dir(const char *path, uid_t uid, gid_t gid);

#endif /* PLATFORM_PRIV_H */
