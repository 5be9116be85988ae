#ifndef PLATFORM_DIRS_H
#define PLATFORM_DIRS_H

#include <sys/types.h>

/*
 * Creates the directory path and each missing directory above it, like
 * mkdir -p: those above with parent_mode, path itself with mode (both
 * before the umask). A directory that exists already is left as it is,
 * and so is anything else in the way (mkdir's EEXIST): callers that need a
 * directory check with stat() after. Returns 0, -EINVAL (empty path),
 * -ENAMETOOLONG (longer than PATH_MAX) or mkdir()'s negative errno.
 */
int pos_dirs_make(const char *path, mode_t parent_mode, mode_t mode);

#endif /* PLATFORM_DIRS_H */
