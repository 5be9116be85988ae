#ifndef TESTS_SUPPORT_SLOWFS_ENV_H
#define TESTS_SUPPORT_SLOWFS_ENV_H

/*
 * Starting a process under the slow-disk fault (tests/support/slowfs.c):
 * the environment that preloads the shim with its settings.
 *
 * An ASan binary refuses to start when another library comes before its
 * runtime in the initial library list ("ASan runtime does not come first"),
 * and LD_PRELOAD puts the shim there. So when this test process itself runs
 * under ASan (the tests and the agent come from the same build), the
 * runtime it uses is put first: LD_PRELOAD="<libasan> <slowfs.so>". Calls
 * then go through ASan's interceptor, then the shim, then libc. The shim
 * is built without sanitizers, so it loads into either kind of binary.
 */

#include <stddef.h>

typedef struct pos_slowfs_env {
    char preload[1200]; /* LD_PRELOAD=... */
    char delay[48];     /* POS_SLOWFS_DELAY_MS=... */
    char prefix[320];   /* POS_SLOWFS_PREFIX=... */
    char log[320];      /* POS_SLOWFS_LOG=... */
    char fail[320];     /* POS_SLOWFS_FAIL_FLAG=... */
    char name[96];      /* POS_SLOWFS_FAIL_NAME=... */
    char dflag[320];    /* POS_SLOWFS_DELAY_FLAG=... */
    char eflag[320];    /* POS_SLOWFS_EIO_FLAG=... */
    char ename[96];     /* POS_SLOWFS_EIO_NAME=... */
    char sndbuf[48];    /* POS_SLOWFS_SNDBUF=... */
    const char *env[10]; /* the list, NULL-terminated */
} pos_slowfs_env_t;

/*
 * The shim's path: $POS_SLOWFS_LIB when set, else the one built with the
 * tests. NULL when the file is not there.
 */
const char *pos_slowfs_lib(void);

/*
 * Fills e for a process whose durable writes take delay_ms longer, for
 * files under prefix (NULL: every file), each delayed call logged to log
 * (NULL: not logged). Returns e->env (NULL-terminated "NAME=value"
 * strings, for pos_test_agent_start or pos_test_run), or NULL when the
 * shim is not built.
 */
const char *const *pos_slowfs_env(pos_slowfs_env_t *e, unsigned delay_ms, const char *prefix,
                                  const char *log);

/*
 * Fills e for a process whose writes to files under prefix fail with
 * ENOSPC while the file flag exists (the test creates and removes it): a
 * disk that is full at a moment of the test's choosing. No delay.
 */
const char *const *pos_slowfs_env_full(pos_slowfs_env_t *e, const char *prefix, const char *flag);

/* Durable writes under prefix take delay_ms longer, but only while the
 * file flag exists (the test creates and removes it). */
const char *const *pos_slowfs_env_delay_flag(pos_slowfs_env_t *e, unsigned delay_ms,
                                             const char *prefix, const char *flag);

/* The same for the files named name only (say "data.mdb": LMDB's data file
 * fails, its write-ahead log beside it does not). */
const char *const *pos_slowfs_env_full_name(pos_slowfs_env_t *e, const char *prefix,
                                            const char *flag, const char *name);

/* Every TCP socket the process connects gets a send buffer of bytes (no
 * autotuning), as on a slow uplink; nothing else is changed. */
const char *const *pos_slowfs_env_sndbuf(pos_slowfs_env_t *e, unsigned bytes);

/* The next read (pread) of a file named name under prefix fails with EIO
 * once the file flag exists; the shim then removes the flag. */
const char *const *pos_slowfs_env_eio_name(pos_slowfs_env_t *e, const char *prefix,
                                           const char *flag, const char *name);

/*
 * Lines of a shim log naming call ("fsync", "pwrite", ...; NULL: any) on
 * path (NULL: any): how many such calls were delayed. 0 when the log does
 * not exist.
 */
int pos_slowfs_log_count(const char *log, const char *call, const char *path);

/*
 * "LD_PRELOAD=..." for lib into out: after the ASan runtime this process
 * runs with, when it has one (see above).
 */
void pos_preload_line(char *out, size_t cap, const char *lib);

/*
 * The power-cut fault (tests/support/powercut.c): a shadow copy of one
 * directory that holds only what a power cut would leave of it.
 */
typedef struct pos_powercut_env {
    char preload[1200]; /* LD_PRELOAD=... */
    char dir[320];      /* POS_POWERCUT_DIR=... */
    char shadow[320];   /* POS_POWERCUT_SHADOW=... */
    char early[48];     /* POS_POWERCUT_EARLY=... */
    char seed[48];      /* POS_POWERCUT_SEED=... */
    const char *env[6];
} pos_powercut_env_t;

/* The shim's path: $POS_POWERCUT_LIB when set, else the one built with
 * the tests; NULL when the file is not there. */
const char *pos_powercut_lib(void);

/*
 * Fills e for a process whose files under dir are shadowed in shadow
 * (which must exist and hold a copy of dir's files), a fraction
 * early_permille of unflushed 4 KiB pieces written back early, chosen
 * from seed. Returns e->env, or NULL when the shim is not built.
 */
const char *const *pos_powercut_env(pos_powercut_env_t *e, const char *dir, const char *shadow,
                                    unsigned early_permille, unsigned seed);

#endif /* TESTS_SUPPORT_SLOWFS_ENV_H */
