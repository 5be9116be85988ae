/*
 * Fuzz target for the configuration loader: the input is the INI file,
 * read through fmemopen() and pos_config_load_stream(). Comment lines of
 * the form "#env NAME=value" also become the environment, so the fuzzer
 * reaches the overrides and the cross-field checks. Besides memory safety it
 * checks: an error is one non-empty line and leaves no secret in the
 * config; a success satisfies the documented invariants.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "tests/support/fuzz.h"

#define MAX_ENV 8

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 63 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy, *env[MAX_ENV + 1];
    size_t nenv = 0;
    pos_config_t cfg;
    pos_config_error_t err;
    FILE *in = NULL;

    if (size > 65536) {
        return 0;
    }
    /* Collect "#env NAME=value" lines from a NUL-terminated copy. */
    copy = malloc(size + 1);
    POS_FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (char *line = copy; line != NULL && nenv < MAX_ENV;) {
        char *next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        if (strncmp(line, "#env ", 5) == 0 && strchr(line + 5, '=') != NULL) {
            env[nenv++] = line + 5;
        }
        line = next;
    }
    env[nenv] = NULL;

    if (size > 0) {
        in = fmemopen((void *)data, size, "r");
        POS_FUZZ_CHECK(in != NULL);
    }
    int rc = pos_config_load_stream(&cfg, in, "fuzz.ini", env, &err);
    if (in != NULL) {
        fclose(in);
    }
    free(copy);

    if (rc != 0) {
        POS_FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM || rc == -EIO);
        POS_FUZZ_CHECK(err.msg[0] != '\0' && strchr(err.msg, '\n') == NULL);
        POS_FUZZ_CHECK(cfg.redis_password[0] == '\0' && cfg.redis.password[0] == '\0');
        return 0;
    }
    POS_FUZZ_CHECK(err.msg[0] == '\0');
    POS_FUZZ_CHECK(id_ok(cfg.terminal_id) && id_ok(cfg.store_id));
    POS_FUZZ_CHECK(cfg.heartbeat_interval_s >= 1 && cfg.heartbeat_interval_s < cfg.heartbeat_ttl_s);
    POS_FUZZ_CHECK(cfg.heartbeat_ttl_s <= 86400);
    POS_FUZZ_CHECK(cfg.retry_delay_ms >= 1 && cfg.retry_delay_ms <= cfg.max_retry_delay_ms);
    POS_FUZZ_CHECK(cfg.max_retry_delay_ms <= 600000);
    POS_FUZZ_CHECK(cfg.connect_timeout_ms >= 100 && cfg.connect_timeout_ms <= 60000);
    POS_FUZZ_CHECK(cfg.command_timeout_ms >= 100 && cfg.command_timeout_ms <= 60000);
    POS_FUZZ_CHECK(cfg.redis_db >= -1 && cfg.redis_db <= 1023);
    POS_FUZZ_CHECK(cfg.redis.db >= 0 && cfg.redis.db <= 1023);
    POS_FUZZ_CHECK(cfg.redis_db < 0 || cfg.redis.db == cfg.redis_db);
    POS_FUZZ_CHECK(cfg.log_level >= 0 && cfg.log_level <= 3);
    POS_FUZZ_CHECK(cfg.redis.host[0] != '\0' && cfg.redis.port >= 1);
    if (cfg.redis_password_set) {
        POS_FUZZ_CHECK(strcmp(cfg.redis.password, cfg.redis_password) == 0);
    }

    /* The dump shows the password only as "****". */
    char *dump = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&dump, &len);
    POS_FUZZ_CHECK(out != NULL);
    pos_config_dump(&cfg, out);
    POS_FUZZ_CHECK(fclose(out) == 0);
    /* (a value's source may follow: "password = ****  ; environment ...") */
    POS_FUZZ_CHECK(strstr(dump, cfg.redis_password_set ? "\npassword = ****"
                                                       : "\n; password = (not set)") != NULL);
    free(dump);
    pos_config_wipe(&cfg);
    POS_FUZZ_CHECK(cfg.redis_password[0] == '\0' && cfg.redis.password[0] == '\0');
    return 0;
}
