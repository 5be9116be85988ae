#ifndef PLATFORM_VERSION_H
#define PLATFORM_VERSION_H

/*
 * The agent's version and build id, generated at every build from
 * packaging/debian/changelog and git (packaging/version.cmake), so that the
 * package, posagent --version, INFO and the heartbeat say the same.
 */

/* "0.2.0" for a release, "0.2.0~git231.1a2b3c4d5e6f" between releases:
 * characters from [A-Za-z0-9.+~_-]. */
extern const char pos_version[];

/* The commit built ("1a2b3c4d5e6f", "-dirty" appended when the tree had
 * uncommitted changes), or the packager's POS_BUILD_ID outside git. */
extern const char pos_build_id[];

/* The names the code uses. */
#define POS_VERSION  pos_version
#define POS_BUILD_ID pos_build_id

#endif /* PLATFORM_VERSION_H */
