#ifndef CONF_CONFIG_H
#define CONF_CONFIG_H

/*
 * posagent configuration. One schema table (schema.c) drives the INI parser,
 * the defaults, the range checks, the environment overrides, --check-config,
 * the example file conf/posagent.ini and the README reference.
 *
 * Precedence, lowest to highest: built-in default, configuration file,
 * environment variable. REDIS_PASSWORD / [redis] password and REDIS_DB /
 * [redis] db, when set, override the password and /db given in the URL;
 * [redis] password_file (read at load, refused when other users can read
 * it) does the same and must not be combined with password.
 *
 * With a rediss:// URL, [tls] ca_file is required and every file named in
 * [tls] must be readable at load (key_file not by other users); [tls]
 * settings with a plain redis:// URL are an error, never silently unused.
 *
 * An environment variable that is present with an empty value counts as
 * set: REDIS_PASSWORD= means "no password" (and overrides the URL's), while
 * an empty number, id or URL is an error like any other bad value. The same
 * holds for "password =" in the file.
 *
 * File syntax (inih): "[section]" and "key = value" lines; ';' or '#' starts
 * a comment line, and " ;" (whitespace, then ';') starts a comment after a
 * value, so a value cannot contain " ;". Quotes are kept literally. Leading
 * whitespace is ignored (there are no continuation lines). A line may hold
 * at most INI_MAX_LINE - 1 (199) characters; a longer line is an error, never
 * truncated (put a long REDIS_URL in the environment). Control characters
 * other than tab, unknown sections and keys, and duplicate keys are errors.
 *
 * Reload: load into a scratch pos_config_t and swap it in only on success;
 * on failure the scratch config has had its secrets wiped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/redis_url.h"
#include "conf/sentinel_list.h"

#define POS_EX_CONFIG 78 /* sysexits.h EX_CONFIG */

#define POS_ID_MAX 64

#define POS_CONFIG_FILES_MAX  17  /* the main file and up to 16 drop-ins */
#define POS_CONFIG_PATH_MAX   256 /* bytes of a file's path */
#define POS_CONFIG_ITEMS_MAX  128 /* rows of the schema, at most */

/* Where a setting's value came from (see pos_config_t.origin). */
enum {
    POS_CONFIG_FROM_DEFAULT = 0, /* the built-in default (or not set) */
    POS_CONFIG_FROM_FILE,        /* files[file], line "line" */
    POS_CONFIG_FROM_ENV,         /* the row's environment variable */
};

typedef struct pos_config_origin {
    uint8_t from; /* POS_CONFIG_FROM_* */
    uint8_t file; /* index in pos_config_t.files */
    uint16_t line;
} pos_config_origin_t;

/* A file the configuration was read from, in reading order. */
typedef struct pos_config_file {
    char path[POS_CONFIG_PATH_MAX];
    bool dropin;  /* from the drop-in directory, not the main file */
    bool secrets; /* it set a secret (password, a URL that may hold one) */
} pos_config_file_t;

typedef struct pos_config {
    /* [terminal] */
    char terminal_id[POS_ID_MAX]; /* required; [A-Za-z0-9._-], 1..63 */
    char store_id[POS_ID_MAX];    /* required; same charset */

    /* [redis] */
    char redis_url[512];
    char redis_password[POS_URL_PASS_MAX]; /* secret */
    bool redis_password_set;               /* password given in file or environment */
    char redis_password_file[201];         /* "" none; absolute path, not world-readable */
    int redis_db;                          /* -1: not set here, use URL's or 0 */
    uint32_t retry_delay_ms;               /* first reconnect delay */
    uint32_t max_retry_delay_ms;           /* cap of the reconnect delay */
    uint32_t connect_timeout_ms;
    uint32_t command_timeout_ms;
    uint32_t probe_interval_ms; /* end-to-end probe period */
    uint32_t redis_clock_check_s; /* period of the TIME clock check */
    /* Redis Sentinel: "host:port,host:port" ("" for none), the master's
     * name, and the sentinels' password (secret; "" for none). */
    char redis_sentinels[256];
    char redis_master_name[64];
    char redis_sentinel_password[POS_URL_PASS_MAX];
    /* Redis Cluster: seed nodes "host:port,..." ("" for none), and the
     * pub/sub mode (POS_PUBSUB_CLASSIC or POS_PUBSUB_SHARDED). */
    char redis_cluster_nodes[256];
    int redis_pubsub;

    /* [tls] used with rediss:// only */
    char tls_ca_file[201];     /* required with rediss:// */
    char tls_cert_file[201];   /* mutual TLS: client certificate, or "" */
    char tls_key_file[201];    /* its key; not world-readable */
    char tls_server_name[256]; /* after load: the URL's host when not set */
    char tls_min_version[8];   /* "1.2" or "1.3" */

    /* [heartbeat] */
    uint32_t heartbeat_interval_s; /* must be < ttl */
    uint32_t heartbeat_ttl_s;

    /* [hal] driver strings ("sim", "escpos:/dev/usb/lp0", ...) and settings */
    char hal_display[256];
    char hal_printer[256];
    char hal_pinpad[256];
    char hal_sim_dir[256];
    uint32_t hal_sim_pinpad_delay_ms;
    uint32_t hal_sim_printer_delay_ms;
    char hal_sim_decline_ending[16];
    char hal_sim_card_number[20]; /* a test card; masked like a secret */
    uint32_t hal_paper_width;
    char hal_printer_model[32];
    char hal_codepage[16];

    /* [payment] */
    uint32_t payment_max_amount;       /* major units of any currency */
    uint32_t payment_pinpad_timeout_s; /* customer timeout at the pinpad */
    char payment_hmac_key_file[201];   /* "": messages are not signed */
    bool payment_allow_unsigned;       /* may run without hmac_key_file */
    uint32_t payment_signature_window_s; /* |now - ts| allowed for a signed message */
    uint32_t payment_dedup_window_h;     /* a transaction id is remembered this long */
    uint32_t payment_dedup_max_ids;      /* ids remembered at most */

    /* [inbound]: token buckets per source, a second and burst */
    uint32_t inbound_payment_rate, inbound_payment_burst;
    uint32_t inbound_inventory_rate, inbound_inventory_burst;
    uint32_t inbound_system_rate, inbound_system_burst;
    uint32_t inbound_invalidation_rate, inbound_invalidation_burst;

    /* [store] local LMDB store: cache, outbox, payment journal */
    char store_path[201];              /* directory, absolute */
    uint32_t store_map_size_mb;        /* LMDB map size, MiB */
    uint32_t store_outbox_max_entries; /* outbox bound, entries */
    uint32_t store_outbox_max_mb;      /* outbox bound, MiB of channel + payload */
    uint32_t store_cache_max_mb;       /* cache budget, MiB */
    int store_cpu;                     /* CPU the agent is pinned to; -1: not pinned */

    /* [cache] freshness per key family, seconds */
    uint32_t cache_product_ttl_s;
    uint32_t cache_inventory_ttl_s;
    uint32_t cache_user_ttl_s;
    uint32_t cache_session_ttl_s;
    uint32_t cache_warm_interval_s; /* period of the inventory warm-up */
    bool cache_tracking;            /* CLIENT TRACKING of the cached families */
    uint32_t cache_max_value_bytes; /* largest value read from Redis, bytes */

    /* [local] the local API socket */
    char local_socket[108];      /* absolute path, fits sun_path */
    char local_socket_group[32]; /* "": the agent's own group */
    uint32_t local_max_clients;
    uint32_t local_client_rate;       /* commands/s per client; 0: no limit */
    uint32_t local_client_burst;      /* commands at once on top of the rate */
    uint32_t local_commands_per_turn; /* commands per loop turn, all clients */
    uint32_t local_idle_timeout_s;    /* 0: idle clients are never closed */
    uint32_t local_stall_timeout_s;   /* a client paused on replies it does not read */
    /* AUTH on the socket: the password clients must give (none asked when
     * local_password_set is false); password_file fills it at load. Secret. */
    char local_password[POS_URL_PASS_MAX];
    bool local_password_set;
    char local_password_file[201]; /* "" none; absolute path, not world-readable */

    /* [metrics] */
    char metrics_textfile[201];        /* Prometheus text file; "": none */
    uint32_t metrics_interval_s;       /* its refresh */
    uint32_t metrics_redis_interval_s; /* terminal:{id}:metrics refresh (>= 60) */
    bool metrics_diagnostics;          /* answer DIAG_REQUEST on diag:{id} */

    /* [log] */
    int log_level; /* pos_log_level_t */
    bool log_syslog;

    /* [security] */
    char security_user[32];   /* "": keep the user the agent was started as */
    bool security_allow_root; /* run on as root when no user is set */

    /* Derived by pos_config_load(): the effective Redis endpoint, with the
     * password and db overrides applied; redis.db is always 0..1023 here. */
    pos_redis_url_t redis;
    /* Derived: the parsed [redis] sentinels (nsentinels 0: no Sentinel;
     * the link connects to redis.host:port). */
    pos_sentinel_addr_t sentinels[POS_SENTINEL_MAX];
    size_t nsentinels;
    /* Derived: the parsed [redis] cluster_nodes (ncluster_nodes 0: not a
     * cluster). */
    pos_sentinel_addr_t cluster_nodes[POS_CLUSTER_NODES_MAX];
    size_t ncluster_nodes;

    /* Where it came from: the files read (the main file first, then the
     * drop-ins in order) and, per row of the schema, what set its value. */
    pos_config_file_t files[POS_CONFIG_FILES_MAX];
    size_t nfiles;
    pos_config_origin_t origin[POS_CONFIG_ITEMS_MAX];
} pos_config_t;

/* [redis] pubsub */
#define POS_PUBSUB_CLASSIC 0 /* SUBSCRIBE / PUBLISH everywhere */
#define POS_PUBSUB_SHARDED 1 /* SSUBSCRIBE / SPUBLISH for per-terminal and per-store channels */

typedef struct pos_config_error {
    char msg[512]; /* "FILE:LINE: [section] key: problem (allowed: ...)" */
} pos_config_error_t;

/* Fills cfg with the built-in defaults (no file, no environment). */
void pos_config_defaults(pos_config_t *cfg);

/*
 * Loads the configuration: defaults, then the INI file at "path" (NULL for
 * none), then the drop-in directory beside it, named after it
 * (/etc/posagent/posagent.ini: /etc/posagent/posagent.d; see
 * pos_config_load_dir()), then the environment
 * "envp" (a NULL-terminated "NAME=value" array such as environ; NULL for
 * none), then cross-field checks.
 * Returns 0, or -EINVAL / -ENOENT / -errno with err->msg set. cfg is only
 * meaningful on success.
 */
int pos_config_load(pos_config_t *cfg, const char *path, char *const *envp,
                    pos_config_error_t *err);

/*
 * pos_config_load() with the drop-in directory named: NULL for the one
 * beside the main file (none without a main file), "" for none.
 *
 * Drop-ins are the directory's "*.ini" files (not starting with '.'), read
 * after the main file in byte order of their names (10-identity.ini before
 * 20-secrets.ini), at most 16: an image ships one posagent.ini and each
 * till carries its identity and secrets in a small file of its own. A key
 * set again in a later file replaces the earlier value (twice in one file
 * is an error); the environment still wins over them all. A drop-in must be
 * a regular file (not a link), owned by root, by the user the agent runs
 * as or by [security] user, and writable by its owner only; a missing
 * directory means none. The main file is read as before.
 */
int pos_config_load_dir(pos_config_t *cfg, const char *path, const char *dropin_dir,
                        char *const *envp, pos_config_error_t *err);

/*
 * Same as pos_config_load() but reads the INI text from "in" (NULL for
 * none), naming it "name" in error messages (NULL: "(no configuration
 * file)"). Does not close "in". Used by the fuzz target and the tests.
 */
int pos_config_load_stream(pos_config_t *cfg, FILE *in, const char *name, char *const *envp,
                           pos_config_error_t *err);

/* Prints the effective settings as INI, secrets masked as "****", each
 * value followed by where it was set ("; FILE:LINE" or "; environment
 * NAME"; nothing for a built-in default), the files read listed first.
 * The output loads again as a configuration. */
void pos_config_dump(const pos_config_t *cfg, FILE *out);

/* Prints the commented example file (the content of conf/posagent.ini). */
void pos_config_write_example(FILE *out);

/* Prints the Markdown reference table used in README.md. */
void pos_config_write_reference(FILE *out);

/* Prints the manual page posagent.ini(5) (roff), for the given version. */
void pos_config_write_man(FILE *out, const char *version);

/*
 * A configuration read again (SIGHUP): calls fn(ctx, section, key,
 * reloadable) for each setting whose value differs between the running
 * one and next, reloadable saying whether a running agent applies it
 * (otherwise it takes effect at the next start). fn may be NULL. Returns
 * how many differ.
 */
typedef void (*pos_config_change_fn)(void *ctx, const char *section, const char *key,
                                     bool reloadable);
size_t pos_config_changes(const pos_config_t *running, const pos_config_t *next,
                          pos_config_change_fn fn, void *ctx);

/* Copies every reloadable setting of next into running (the others stay). */
void pos_config_apply_reloadable(pos_config_t *running, const pos_config_t *next);

/* True when [section] key is applied by a running agent on SIGHUP. */
bool pos_config_reloadable(const char *section, const char *key);

/*
 * Overwrites secrets in cfg with zeros (call before freeing or exiting):
 * redis_password, the URL text (it may embed a password) and
 * redis.password. Other fields stay usable. The stores cannot be optimised
 * away (explicit_bzero).
 */
void pos_config_wipe(pos_config_t *cfg);

#endif /* CONF_CONFIG_H */
