#define _GNU_SOURCE /* dl_iterate_phdr */
#include "tests/support/slowfs_env.h"

#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef POS_SLOWFS_DEFAULT_LIB
#define POS_SLOWFS_DEFAULT_LIB ""
#endif
#ifndef POS_POWERCUT_DEFAULT_LIB
#define POS_POWERCUT_DEFAULT_LIB ""
#endif

const char *pos_slowfs_lib(void)
{
    const char *lib = getenv("POS_SLOWFS_LIB");

    if (lib == NULL || lib[0] == '\0') {
        lib = POS_SLOWFS_DEFAULT_LIB;
    }
    return lib[0] != '\0' && access(lib, R_OK) == 0 ? lib : NULL;
}

typedef struct runtime_find {
    char path[512];
} runtime_find_t;

/* dl_iterate_phdr callback: remembers the ASan runtime among the loaded
 * objects (gcc's libasan.so.N or clang's shared libclang_rt.asan). */
static int find_asan_runtime(struct dl_phdr_info *info, size_t size, void *arg)
{
    runtime_find_t *f = arg;
    const char *name = info->dlpi_name;

    (void)size;
    if (name != NULL &&
        (strstr(name, "/libasan.so") != NULL || strstr(name, "/libclang_rt.asan") != NULL)) {
        snprintf(f->path, sizeof(f->path), "%s", name);
        return 1;
    }
    return 0;
}

void pos_preload_line(char *out, size_t cap, const char *lib)
{
    runtime_find_t rt;

    memset(&rt, 0, sizeof(rt));
    dl_iterate_phdr(find_asan_runtime, &rt);
    snprintf(out, cap, "LD_PRELOAD=%s%s%s", rt.path, rt.path[0] != '\0' ? " " : "", lib);
}

const char *const *pos_slowfs_env(pos_slowfs_env_t *e, unsigned delay_ms, const char *prefix,
                                  const char *log)
{
    const char *lib = pos_slowfs_lib();
    size_t n = 0;

    memset(e, 0, sizeof(*e));
    if (lib == NULL) {
        return NULL;
    }
    pos_preload_line(e->preload, sizeof(e->preload), lib);
    snprintf(e->delay, sizeof(e->delay), "POS_SLOWFS_DELAY_MS=%u", delay_ms);
    e->env[n++] = e->preload;
    e->env[n++] = e->delay;
    if (prefix != NULL) {
        snprintf(e->prefix, sizeof(e->prefix), "POS_SLOWFS_PREFIX=%s", prefix);
        e->env[n++] = e->prefix;
    }
    if (log != NULL) {
        snprintf(e->log, sizeof(e->log), "POS_SLOWFS_LOG=%s", log);
        e->env[n++] = e->log;
    }
    e->env[n] = NULL;
    return e->env;
}

/* Appends "name=value" (held in buf, cap bytes) to e's list; e->env. */
static const char *const *env_add(pos_slowfs_env_t *e, char *buf, size_t cap, const char *name,
                                  const char *value)
{
    size_t n = 0;
    while (e->env[n] != NULL) {
        n++;
    }
    snprintf(buf, cap, "%s=%s", name, value);
    e->env[n++] = buf;
    e->env[n] = NULL;
    return e->env;
}

const char *const *pos_slowfs_env_full(pos_slowfs_env_t *e, const char *prefix, const char *flag)
{
    if (pos_slowfs_env(e, 0, prefix, NULL) == NULL) {
        return NULL;
    }
    return env_add(e, e->fail, sizeof(e->fail), "POS_SLOWFS_FAIL_FLAG", flag);
}

const char *const *pos_slowfs_env_delay_flag(pos_slowfs_env_t *e, unsigned delay_ms,
                                             const char *prefix, const char *flag)
{
    if (pos_slowfs_env(e, delay_ms, prefix, NULL) == NULL) {
        return NULL;
    }
    return env_add(e, e->dflag, sizeof(e->dflag), "POS_SLOWFS_DELAY_FLAG", flag);
}

const char *const *pos_slowfs_env_full_name(pos_slowfs_env_t *e, const char *prefix,
                                            const char *flag, const char *name)
{
    if (pos_slowfs_env_full(e, prefix, flag) == NULL) {
        return NULL;
    }
    return env_add(e, e->name, sizeof(e->name), "POS_SLOWFS_FAIL_NAME", name);
}

const char *const *pos_slowfs_env_sndbuf(pos_slowfs_env_t *e, unsigned bytes)
{
    char v[24];
    if (pos_slowfs_env(e, 0, "/nonexistent-posagent-prefix", NULL) == NULL) {
        return NULL;
    }
    snprintf(v, sizeof(v), "%u", bytes);
    return env_add(e, e->sndbuf, sizeof(e->sndbuf), "POS_SLOWFS_SNDBUF", v);
}

const char *const *pos_slowfs_env_eio_name(pos_slowfs_env_t *e, const char *prefix,
                                           const char *flag, const char *name)
{
    if (pos_slowfs_env(e, 0, prefix, NULL) == NULL) {
        return NULL;
    }
    env_add(e, e->eflag, sizeof(e->eflag), "POS_SLOWFS_EIO_FLAG", flag);
    return env_add(e, e->ename, sizeof(e->ename), "POS_SLOWFS_EIO_NAME", name);
}

int pos_slowfs_log_count(const char *log, const char *call, const char *path)
{
    FILE *f = fopen(log, "r");
    char line[1200];
    int n = 0;

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        line[strcspn(line, "\n")] = '\0';
        if (sp == NULL) {
            continue;
        }
        *sp = '\0';
        if ((call == NULL || strcmp(line, call) == 0) &&
            (path == NULL || strcmp(sp + 1, path) == 0)) {
            n++;
        }
    }
    fclose(f);
    return n;
}

const char *pos_powercut_lib(void)
{
    const char *lib = getenv("POS_POWERCUT_LIB");

    if (lib == NULL || lib[0] == '\0') {
        lib = POS_POWERCUT_DEFAULT_LIB;
    }
    return lib[0] != '\0' && access(lib, R_OK) == 0 ? lib : NULL;
}

const char *const *pos_powercut_env(pos_powercut_env_t *e, const char *dir, const char *shadow,
                                    unsigned early_permille, unsigned seed)
{
    const char *lib = pos_powercut_lib();

    memset(e, 0, sizeof(*e));
    if (lib == NULL) {
        return NULL;
    }
    pos_preload_line(e->preload, sizeof(e->preload), lib);
    snprintf(e->dir, sizeof(e->dir), "POS_POWERCUT_DIR=%s", dir);
    snprintf(e->shadow, sizeof(e->shadow), "POS_POWERCUT_SHADOW=%s", shadow);
    snprintf(e->early, sizeof(e->early), "POS_POWERCUT_EARLY=%u", early_permille);
    snprintf(e->seed, sizeof(e->seed), "POS_POWERCUT_SEED=%u", seed);
    e->env[0] = e->preload;
    e->env[1] = e->dir;
    e->env[2] = e->shadow;
    e->env[3] = e->early;
    e->env[4] = e->seed;
    e->env[5] = NULL;
    return e->env;
}
