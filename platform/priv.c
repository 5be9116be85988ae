#define _GNU_SOURCE /* setresuid, getresuid */
#include "platform/priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pos_priv_lookup(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];

    if (user == NULL || user[0] == '\0' || uid == NULL || gid == NULL) {
        return -EINVAL;
    }
    int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
    if (rc != 0) {
        return -rc;
    }
    if (res == NULL) {
        return -ENOENT;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

int pos_priv_drop(const char *user, uid_t uid, gid_t gid, char *why, size_t whylen)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (uid == 0) {
        snprintf(why, whylen, "user %s is root", user);
        return -EINVAL;
    }
    /* Groups first: once the uid changes there is no right to set them. */
    if (initgroups(user, gid) != 0) {
        int e = errno;
        snprintf(why, whylen, "initgroups(%s): %s", user, strerror(e));
        return -e;
    }
    if (setresgid(gid, gid, gid) != 0) {
        int e = errno;
        snprintf(why, whylen, "setresgid(%u): %s", (unsigned)gid, strerror(e));
        return -e;
    }
    if (setresuid(uid, uid, uid) != 0) {
        int e = errno;
        snprintf(why, whylen, "setresuid(%u): %s", (unsigned)uid, strerror(e));
        return -e;
    }
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0 || ruid != uid ||
        euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid) {
        snprintf(why, whylen, "ids did not all change");
        return -EPERM;
    }
    /* The whole point: there must be no way back. */
    if (setuid(0) == 0 || seteuid(0) == 0) {
        snprintf(why, whylen, "root could be regained");
        return -EPERM;
    }
    return 0;
}

int pos_priv_chown_dir(const char *path, uid_t uid, gid_t gid)
{
    int first = 0;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        return -errno;
    }
    if (fchown(dfd, uid, gid) != 0) {
        first = -errno;
    }
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = -errno;
        close(dfd);
        return first ? first : e;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (fchownat(dfd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 && first == 0) {
            first = -errno;
        }
    }
    closedir(d);
    return first;
}
