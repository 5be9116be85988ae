#include "tests/support/fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pos_test_mkdtemp(char *dir, size_t len, const char *name)
{
    int n = snprintf(dir, len, "/tmp/%s-XXXXXX", name);

    if (n < 0 || (size_t)n >= len) {
        return -ENAMETOOLONG;
    }
    return mkdtemp(dir) != NULL ? 0 : -errno;
}

void pos_test_rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[512];

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            pos_test_rm_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(path);
}
