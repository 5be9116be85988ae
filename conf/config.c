#include "conf/config.h"
#include "hal/charset.h"
#include "hal/escpos.h"
#include "hal/registry.h"

#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/version.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <mbedtls/build_info.h>
#else
#include <mbedtls/config.h>
#endif

#include "platform/log.h"

/*
 * One schema table (items[] below) drives everything: the inih handler,
 * the defaults, range and format checks, environment overrides, the dump,
 * the example file and the Markdown reference. A new section is a row in
 * sections[] plus one row per key in items[].
 */

typedef enum conf_type {
    CT_STR,  /* char[size]; length min..max; optional check callback */
    CT_U32,  /* uint32_t; min..max */
    CT_INT,  /* int; min..max; -1 when the row has no default ("not set") */
    CT_BOOL, /* bool; true/false/yes/no/on/off/1/0 */
    CT_ENUM, /* int; names through enum_parse/enum_name */
} conf_type_t;

enum {
    F_REQUIRED = 1u << 0, /* a string that must be non-empty after file and environment */
    F_SECRET = 1u << 1,   /* masked in the dump, never quoted in errors */
    F_NOECHO = 1u << 2,   /* never quoted in errors (may embed a secret) */
    F_URL = 1u << 3,      /* dumped through pos_redis_url_format_masked() */
};

/* Checks a string value; writes the problem (without the value) into why. */
typedef int (*conf_check_fn)(const char *value, char *why, size_t whylen);

typedef struct conf_item {
    const char *section;
    const char *key;
    conf_type_t type;
    size_t offset;       /* of the field in pos_config_t */
    size_t size;         /* of the field */
    size_t set_offset;   /* of a bool "was set" field, or 0 for none */
    const char *def;     /* default, as it would be written in the file; NULL: none */
    long long min, max;  /* numbers: range; strings: length in bytes */
    const char *env;     /* environment variable, or NULL */
    unsigned flags;      /* F_* */
    conf_check_fn check; /* CT_STR: extra validation, or NULL */
    int (*enum_parse)(const char *name);
    const char *(*enum_name)(int value);
    const char *allowed; /* text for the docs and errors; NULL: "min..max" */
    const char *def_doc; /* how to describe a NULL default */
    const char *example; /* value shown in the example file when def is NULL */
    const char *desc;    /* one sentence or two */
} conf_item_t;

typedef struct conf_section {
    const char *name;
    const char *desc;
} conf_section_t;

#define FIELD(f) offsetof(pos_config_t, f), sizeof(((pos_config_t *)0)->f)

static int check_id(const char *value, char *why, size_t whylen);
static int check_url(const char *value, char *why, size_t whylen);
static int check_sentinels(const char *value, char *why, size_t whylen);
static int check_display(const char *value, char *why, size_t whylen);
static int check_printer(const char *value, char *why, size_t whylen);
static int check_pinpad(const char *value, char *why, size_t whylen);
static int check_abs_path(const char *value, char *why, size_t whylen);
static int check_opt_abs_path(const char *value, char *why, size_t whylen);
static int check_user(const char *value, char *why, size_t whylen);
static int check_decline_ending(const char *value, char *why, size_t whylen);
static int check_card_number(const char *value, char *why, size_t whylen);
static int check_printer_model(const char *value, char *why, size_t whylen);
static int check_codepage(const char *value, char *why, size_t whylen);
static int check_server_name(const char *value, char *why, size_t whylen);
static int check_tls_version(const char *value, char *why, size_t whylen);
static const char *level_name(int level);

#define ID_ALLOWED  "1..63 characters from [A-Za-z0-9._-]"
#define URL_ALLOWED "redis://[[user]:pass@]host[:port][/db], or rediss:// for TLS"

static const conf_section_t sections[] = {
    {"terminal", "Identity of this terminal; both ids appear in Redis key and channel names."},
    {"redis", "Connection to the store's Redis server (the cloud side)."},
    {"tls", "TLS for a rediss:// URL (mbedTLS): the server certificate is always verified."},
    {"heartbeat", "The status key terminal:{id}:status, refreshed with SET ... EX ttl_s."},
    {"hal", "Peripherals: which driver runs each device, and the simulated devices' settings."},
    {"payment", "Payments taken on this terminal's pinpad."},
    {"store", "Local store (LMDB) for the offline cache, the outbox and the payment journal."},
    {"cache", "The local copy of the cloud's keys: freshness per key family, and warm-up."},
    {"local", "The local API: a Unix socket speaking RESP for the POS application and the CLI."},
    {"log", "Logging."},
    {"security", "Privileges: the user the agent runs as once its devices and sockets are open."},
};

static const conf_item_t items[] = {
    {.section = "terminal",
     .key = "id",
     .type = CT_STR,
     FIELD(terminal_id),
     .min = 1,
     .max = 63,
     .env = "POSAGENT_TERMINAL_ID",
     .flags = F_REQUIRED,
     .check = check_id,
     .allowed = ID_ALLOWED,
     .def_doc = "(required)",
     .example = "T-0001",
     .desc = "Terminal identifier, as in terminal:{id}:status and payment:{id}."},
    {.section = "terminal",
     .key = "store_id",
     .type = CT_STR,
     FIELD(store_id),
     .min = 1,
     .max = 63,
     .env = "POSAGENT_STORE_ID",
     .flags = F_REQUIRED,
     .check = check_id,
     .allowed = ID_ALLOWED,
     .def_doc = "(required)",
     .example = "S-042",
     .desc = "Store identifier, as in inventory:{storeId} and transaction:{storeId}."},

    {.section = "redis",
     .key = "url",
     .type = CT_STR,
     FIELD(redis_url),
     .def = "redis://localhost:6379",
     .min = 1,
     .max = 511,
     .env = "REDIS_URL",
     .flags = F_NOECHO | F_URL,
     .check = check_url,
     .allowed = URL_ALLOWED,
     .desc = "Redis server. User and password are percent-decoded (%40 is '@'). "
             "Prefer the password key or REDIS_PASSWORD to a password in the URL."},
    {.section = "redis",
     .key = "password",
     .type = CT_STR,
     FIELD(redis_password),
     .set_offset = offsetof(pos_config_t, redis_password_set),
     .min = 0,
     .max = 255,
     .env = "REDIS_PASSWORD",
     .flags = F_SECRET,
     .allowed = "up to 255 bytes",
     .def_doc = "(none)",
     .example = "change-me",
     .desc = "Password for Redis AUTH; when set (even empty) it replaces the URL's password."},
    {.section = "redis",
     .key = "db",
     .type = CT_INT,
     FIELD(redis_db),
     .min = 0,
     .max = 1023,
     .env = "REDIS_DB",
     .def_doc = "(the URL's /db, else 0)",
     .example = "0",
     .desc = "Database number for SELECT; when set it replaces the URL's /db."},
    {.section = "redis",
     .key = "retry_delay_ms",
     .type = CT_U32,
     FIELD(retry_delay_ms),
     .def = "100",
     .min = 1,
     .max = 60000,
     .env = "REDIS_RETRY_DELAY_ON_FAILURE_MS",
     .desc = "First reconnect delay in milliseconds; later delays double, with jitter."},
    {.section = "redis",
     .key = "max_retry_delay_ms",
     .type = CT_U32,
     FIELD(max_retry_delay_ms),
     .def = "3000",
     .min = 1,
     .max = 600000,
     .env = "REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS",
     .desc = "Cap of the reconnect delay in milliseconds; must not be below retry_delay_ms."},
    {.section = "redis",
     .key = "connect_timeout_ms",
     .type = CT_U32,
     FIELD(connect_timeout_ms),
     .def = "2000",
     .min = 100,
     .max = 60000,
     .desc = "Time allowed for TCP (and TLS) connection setup, in milliseconds."},
    {.section = "redis",
     .key = "command_timeout_ms",
     .type = CT_U32,
     FIELD(command_timeout_ms),
     .def = "5000",
     .min = 100,
     .max = 60000,
     .desc = "Time allowed for a reply to a command, in milliseconds; must exceed the "
             "worst round trip to Redis (a 2 s round trip with a 2 s limit never gets online)."},
    {.section = "redis",
     .key = "probe_interval_ms",
     .type = CT_U32,
     FIELD(probe_interval_ms),
     .def = "10000",
     .min = 1000,
     .max = 15000,
     .desc = "Period of the end-to-end probe (published on the command connection, heard "
             "on the subscriber); a probe not heard back by the next one drops the link."},
    {.section = "redis",
     .key = "sentinels",
     .type = CT_STR,
     FIELD(redis_sentinels),
     .min = 0,
     .max = 255,
     .env = "REDIS_SENTINELS",
     .flags = F_NOECHO, /* a mistyped entry may hold a password */
     .check = check_sentinels,
     .allowed = "host[:port] list, comma-separated, up to 8; port 26379 by default",
     .def_doc = "(none: connect to the URL's host)",
     .example = "10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379",
     .desc = "Redis Sentinel instances to ask for the master named master_name. When set, "
             "the URL's host and port are ignored (its user, password, db and TLS still "
             "apply)."},
    {.section = "redis",
     .key = "master_name",
     .type = CT_STR,
     FIELD(redis_master_name),
     .min = 0,
     .max = 63,
     .env = "REDIS_MASTER_NAME",
     .check = check_id,
     .allowed = ID_ALLOWED,
     .def_doc = "(none; required with sentinels)",
     .example = "mymaster",
     .desc = "Name of the monitored master, as in the sentinels' 'sentinel monitor' line."},
    {.section = "redis",
     .key = "sentinel_password",
     .type = CT_STR,
     FIELD(redis_sentinel_password),
     .min = 0,
     .max = 255,
     .env = "REDIS_SENTINEL_PASSWORD",
     .flags = F_SECRET,
     .allowed = "up to 255 bytes",
     .def_doc = "(none)",
     .example = "change-me",
     .desc = "Password for AUTH on the sentinels (their requirepass), if they have one."},

    {.section = "redis",
     .key = "password_file",
     .type = CT_STR,
     FIELD(redis_password_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .def_doc = "(none)",
     .example = "/etc/posagent/redis.password",
     .desc = "File holding the password for Redis AUTH (one line); read at start, and "
             "refused when other users may read it. Replaces the URL's password; not "
             "together with password / REDIS_PASSWORD."},

    {.section = "tls",
     .key = "ca_file",
     .type = CT_STR,
     FIELD(tls_ca_file),
     .min = 0,
     .max = 200,
     .env = "POSAGENT_TLS_CA_FILE",
     .check = check_abs_path,
     .allowed = "an absolute path (PEM or DER)",
     .def_doc = "(none; required for rediss://)",
     .example = "/etc/posagent/redis-ca.pem",
     .desc = "CA certificate(s) the Redis server's certificate must chain to."},
    {.section = "tls",
     .key = "cert_file",
     .type = CT_STR,
     FIELD(tls_cert_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path (PEM or DER)",
     .def_doc = "(none)",
     .example = "/etc/posagent/client.crt",
     .desc = "Client certificate for mutual TLS (tls-auth-clients); needs key_file."},
    {.section = "tls",
     .key = "key_file",
     .type = CT_STR,
     FIELD(tls_key_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path (unencrypted PEM or DER)",
     .def_doc = "(none)",
     .example = "/etc/posagent/client.key",
     .desc = "Private key of cert_file; refused when other users may read it."},
    {.section = "tls",
     .key = "server_name",
     .type = CT_STR,
     FIELD(tls_server_name),
     .min = 0,
     .max = 253,
     .check = check_server_name,
     .allowed = "a host name or IP address",
     .def_doc = "(the URL's host)",
     .example = "redis.example.com",
     .desc = "Name the server certificate must carry (always checked), also sent as SNI."},
    {.section = "tls",
     .key = "min_version",
     .type = CT_STR,
     FIELD(tls_min_version),
     .def = "1.2",
     .min = 1,
     .max = 7,
     .check = check_tls_version,
     .allowed = "1.2, or 1.3 with mbedTLS 3.x",
     .desc = "Oldest TLS version accepted. Debian 12's mbedTLS 2.28 speaks TLS 1.2 only."},

    {.section = "heartbeat",
     .key = "interval_s",
     .type = CT_U32,
     FIELD(heartbeat_interval_s),
     .def = "20",
     .min = 1,
     .max = 3600,
     .desc = "Seconds between status writes; must be less than ttl_s."},
    {.section = "heartbeat",
     .key = "ttl_s",
     .type = CT_U32,
     FIELD(heartbeat_ttl_s),
     .def = "60",
     .min = 2,
     .max = 86400,
     .desc = "Expiry of the status key in seconds: the cloud treats the terminal as gone "
             "when it lapses."},

    {.section = "hal",
     .key = "display",
     .type = CT_STR,
     FIELD(hal_display),
     .def = "sim",
     .min = 1,
     .max = 255,
     .check = check_display,
     .allowed = "sim, epson-display:/dev/ttyS1?baud=9600, cd5220:/dev/ttyS1?baud=9600",
     .desc = "Customer display driver."},
    {.section = "hal",
     .key = "printer",
     .type = CT_STR,
     FIELD(hal_printer),
     .def = "sim",
     .min = 1,
     .max = 255,
     .check = check_printer,
     .allowed = "sim, escpos:/dev/usb/lp0, escpos-serial:/dev/ttyUSB0?baud=19200, "
                "escpos-tcp:127.0.0.1:9100",
     .desc = "Receipt printer driver."},
    {.section = "hal",
     .key = "pinpad",
     .type = CT_STR,
     FIELD(hal_pinpad),
     .def = "sim",
     .min = 1,
     .max = 255,
     .check = check_pinpad,
     .allowed = "sim, telium:/dev/ttyACM0?baud=9600",
     .desc = "Card pinpad driver."},
    {.section = "hal",
     .key = "sim_dir",
     .type = CT_STR,
     FIELD(hal_sim_dir),
     .def = "/var/lib/posagent/sim",
     .min = 1,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .desc = "Where the simulated devices keep their files (display.txt, receipts.txt, "
             "pinpad.charges) and read injected faults (*.fault)."},
    {.section = "hal",
     .key = "sim_pinpad_delay_ms",
     .type = CT_U32,
     FIELD(hal_sim_pinpad_delay_ms),
     .def = "1500",
     .min = 0,
     .max = 600000,
     .desc = "Time the simulated customer takes at the pinpad, in milliseconds."},
    {.section = "hal",
     .key = "sim_decline_ending",
     .type = CT_STR,
     FIELD(hal_sim_decline_ending),
     .def = "13",
     .min = 0,
     .max = 15,
     .check = check_decline_ending,
     .allowed = "digits and '.', or empty for never",
     .desc = "The simulated pinpad declines amounts whose text ends so (12.13 with \"13\")."},
    {.section = "hal",
     .key = "sim_card_number",
     .type = CT_STR,
     FIELD(hal_sim_card_number),
     .def = "4111111111111111",
     .min = 12,
     .max = 19,
     .flags = F_NOECHO,
     .check = check_card_number,
     .allowed = "12..19 digits (a test card)",
     .desc = "The test card the simulated customer presents (not a secret: a public test "
             "number); only its masked form ever leaves the pinpad driver."},
    {.section = "hal",
     .key = "paper_width",
     .type = CT_U32,
     FIELD(hal_paper_width),
     .def = "42",
     .min = 20,
     .max = 48,
     .desc = "Receipt width in characters (32 for 58 mm paper, 42 or 48 for 80 mm)."},
    {.section = "hal",
     .key = "printer_model",
     .type = CT_STR,
     FIELD(hal_printer_model),
     .def = "generic",
     .min = 1,
     .max = 31,
     .check = check_printer_model,
     .allowed = "generic, tm-t20, tm-t88, legacy, esc-i, no-cut",
     .desc = "ESC/POS model: decides the cut command and QR support."},
    {.section = "hal",
     .key = "codepage",
     .type = CT_STR,
     FIELD(hal_codepage),
     .def = "cp858",
     .min = 1,
     .max = 15,
     .check = check_codepage,
     .allowed = "ascii, cp437, cp858",
     .desc = "Code page for printer and display text (UTF-8 is transcoded, unknown "
             "characters become '?')."},

    {.section = "payment",
     .key = "max_amount",
     .type = CT_U32,
     FIELD(payment_max_amount),
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .desc = "Largest payment accepted, in major units of its currency; larger requests are "
             "rejected as invalid."},
    {.section = "payment",
     .key = "pinpad_timeout_s",
     .type = CT_U32,
     FIELD(payment_pinpad_timeout_s),
     .def = "120",
     .min = 10,
     .max = 600,
     .desc = "Time the customer has at the pinpad before the payment is abandoned as "
             "declined (timeout)."},
    {.section = "payment",
     .key = "hmac_key_file",
     .type = CT_STR,
     FIELD(payment_hmac_key_file),
     .min = 0,
     .max = 200,
     .check = check_opt_abs_path,
     .allowed = "an absolute path to a file of mode 0600 or 0400",
     .def_doc = "(none: messages are not signed)",
     .example = "/etc/posagent/hmac.key",
     .desc = "Key file for signed payment messages (docs/signing.md): one or two lines of "
             "64..128 hex digits, the first signs what the agent sends, both are accepted. When "
             "set, cloud payment messages without a valid sig and a fresh ts are refused."},
    {.section = "payment",
     .key = "signature_window_s",
     .type = CT_U32,
     FIELD(payment_signature_window_s),
     .def = "60",
     .min = 1,
     .max = 3600,
     .desc = "Largest difference between a signed message's ts and this terminal's clock, "
             "either way; older or newer messages are refused as stale."},

    {.section = "store",
     .key = "path",
     .type = CT_STR,
     FIELD(store_path),
     .def = "/var/lib/posagent",
     .min = 1,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .desc = "Directory of the store (data.mdb, lock.mdb); a corrupt data.mdb is moved aside "
             "to data.mdb.corrupt-<epoch> here."},
    {.section = "store",
     .key = "map_size_mb",
     .type = CT_U32,
     FIELD(store_map_size_mb),
     .def = "64",
     .min = 1,
     .max = 4096,
     .desc = "Largest size of the store file in MiB (the LMDB map; the file grows as needed)."},
    {.section = "store",
     .key = "outbox_max_entries",
     .type = CT_U32,
     FIELD(store_outbox_max_entries),
     .def = "10000",
     .min = 1,
     .max = 10000000,
     .desc = "Most messages queued for Redis; beyond it the oldest non-payment ones are "
             "dropped (payment outcomes never are)."},
    {.section = "store",
     .key = "outbox_max_mb",
     .type = CT_U32,
     FIELD(store_outbox_max_mb),
     .def = "8",
     .min = 1,
     .max = 4096,
     .desc = "Most MiB of messages queued for Redis; same drop rule as outbox_max_entries."},
    {.section = "store",
     .key = "cache_max_mb",
     .type = CT_U32,
     FIELD(store_cache_max_mb),
     .def = "32",
     .min = 1,
     .max = 4096,
     .desc = "Budget of the local cache in MiB; beyond it expired entries are evicted first, "
             "then the least recently used."},

    {.section = "cache",
     .key = "product_ttl_s",
     .type = CT_U32,
     FIELD(cache_product_ttl_s),
     .def = "7200",
     .min = 1,
     .max = 2592000,
     .desc = "Seconds a product:{id} copy counts as fresh; older ones are refetched when "
             "online and still served when offline."},
    {.section = "cache",
     .key = "inventory_ttl_s",
     .type = CT_U32,
     FIELD(cache_inventory_ttl_s),
     .def = "300",
     .min = 1,
     .max = 2592000,
     .desc = "Seconds an inventory:{storeId}:{productId} copy counts as fresh."},
    {.section = "cache",
     .key = "user_ttl_s",
     .type = CT_U32,
     FIELD(cache_user_ttl_s),
     .def = "3600",
     .min = 1,
     .max = 2592000,
     .desc = "Seconds a user:{id} copy counts as fresh."},
    {.section = "cache",
     .key = "session_ttl_s",
     .type = CT_U32,
     FIELD(cache_session_ttl_s),
     .def = "86400",
     .min = 1,
     .max = 2592000,
     .desc = "Seconds a session:{id} copy counts as fresh."},
    {.section = "cache",
     .key = "warm_interval_s",
     .type = CT_U32,
     FIELD(cache_warm_interval_s),
     .def = "900",
     .min = 10,
     .max = 86400,
     .desc = "Seconds between warm-ups of the store's inventory (SCAN, then MGET in batches)."},

    {.section = "local",
     .key = "socket",
     .type = CT_STR,
     FIELD(local_socket),
     .def = "/run/posagent/agent.sock",
     .min = 1,
     .max = 107,
     .check = check_abs_path,
     .allowed = "an absolute path, at most 107 bytes",
     .desc = "Unix socket of the local API (mode 0660); its directory is created if missing, "
             "a stale socket file is replaced."},
    {.section = "local",
     .key = "socket_group",
     .type = CT_STR,
     FIELD(local_socket_group),
     .min = 0,
     .max = 31,
     .allowed = "a group name",
     .def_doc = "(the agent's own group)",
     .example = "pos",
     .desc = "Group owning the socket and its directory: the POS application's group."},
    {.section = "local",
     .key = "max_clients",
     .type = CT_U32,
     FIELD(local_max_clients),
     .def = "64",
     .min = 1,
     .max = 1024,
     .desc = "Most local API connections at once; one more is answered with an error and "
             "closed."},

    {.section = "log",
     .key = "level",
     .type = CT_ENUM,
     FIELD(log_level),
     .def = "info",
     .enum_parse = pos_log_level_parse,
     .enum_name = level_name,
     .allowed = "error, warn, info, debug",
     .desc = "Most verbose level that is logged."},
    {.section = "log",
     .key = "syslog",
     .type = CT_BOOL,
     FIELD(log_syslog),
     .def = "false",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc = "Log to syslog (facility daemon) instead of stderr."},

    {.section = "security",
     .key = "user",
     .type = CT_STR,
     FIELD(security_user),
     .min = 0,
     .max = 31,
     .check = check_user,
     .allowed = "a user name",
     .def_doc = "(none: keep the user it was started as)",
     .example = "posagent",
     .desc = "Started as root, the agent switches to this user (and its groups) once the "
             "store, the local socket and the devices are open, and cannot regain root."},
    {.section = "security",
     .key = "allow_root",
     .type = CT_BOOL,
     FIELD(security_allow_root),
     .def = "false",
     .env = "POSAGENT_ALLOW_ROOT",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc = "Let the agent keep running as root when no user is set; without it, it refuses "
             "to start as root (exit 78)."},
};

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))
#define NITEMS    (sizeof(items) / sizeof(items[0]))

/* ---- small helpers ---------------------------------------------------- */

static const char *level_name(int level)
{
    return pos_log_level_name((pos_log_level_t)level);
}

static void *field(pos_config_t *cfg, const conf_item_t *it)
{
    return (char *)cfg + it->offset;
}

static const void *cfield(const pos_config_t *cfg, const conf_item_t *it)
{
    return (const char *)cfg + it->offset;
}

static void set_msg(pos_config_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_msg(pos_config_error_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

/* Copies s into buf as a quotable, printable excerpt (at most ~48 bytes). */
static const char *excerpt(const char *s, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (o + 8 >= len || o >= 48) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}

static const char *allowed_text(const conf_item_t *it, char *buf, size_t len)
{
    if (it->allowed != NULL) {
        return it->allowed;
    }
    snprintf(buf, len, "%lld..%lld", it->min, it->max);
    return buf;
}

static const conf_section_t *find_section(const char *name)
{
    for (size_t i = 0; i < NSECTIONS; i++) {
        if (strcmp(sections[i].name, name) == 0) {
            return &sections[i];
        }
    }
    return NULL;
}

static int find_item(const char *section, const char *key)
{
    for (size_t i = 0; i < NITEMS; i++) {
        if (strcmp(items[i].section, section) == 0 && strcmp(items[i].key, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void list_sections(char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NSECTIONS && o < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", sections[i].name);
        o += n > 0 ? (size_t)n : 0;
    }
}

static void list_keys(const char *section, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NITEMS && o < len; i++) {
        if (strcmp(items[i].section, section) == 0) {
            int n = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", items[i].key);
            o += n > 0 ? (size_t)n : 0;
        }
    }
}

/* ---- value checks ----------------------------------------------------- */

static int check_id(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-') {
            continue;
        }
        if (c > 0x20 && c < 0x7f) {
            snprintf(why, whylen, "invalid: character '%c' is not allowed", c);
        } else {
            snprintf(why, whylen, "invalid: byte 0x%02x is not allowed", c);
        }
        return -EINVAL;
    }
    return 0;
}

static int check_driver(pos_hal_kind_t kind, const char *value, char *why, size_t whylen)
{
    return pos_hal_spec_validate(kind, value, why, whylen) == 0 ? 0 : -EINVAL;
}

static int check_display(const char *value, char *why, size_t whylen)
{
    return check_driver(POS_HAL_DISPLAY, value, why, whylen);
}

static int check_printer(const char *value, char *why, size_t whylen)
{
    return check_driver(POS_HAL_PRINTER, value, why, whylen);
}

static int check_pinpad(const char *value, char *why, size_t whylen)
{
    return check_driver(POS_HAL_PINPAD, value, why, whylen);
}

static int check_abs_path(const char *value, char *why, size_t whylen)
{
    if (value[0] != '/' || strstr(value, "/../") != NULL ||
        (strlen(value) >= 3 && strcmp(value + strlen(value) - 3, "/..") == 0)) {
        snprintf(why, whylen, "must be an absolute path without '..'");
        return -EINVAL;
    }
    return 0;
}

static int check_opt_abs_path(const char *value, char *why, size_t whylen)
{
    return value[0] == '\0' ? 0 : check_abs_path(value, why, whylen);
}

static int check_user(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || (*p == '-' && p != value))) {
            snprintf(why, whylen, "only [A-Za-z0-9._-] are allowed, not starting with '-'");
            return -EINVAL;
        }
    }
    return 0;
}

static int check_decline_ending(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || *p == '.')) {
            snprintf(why, whylen, "only digits and '.' are allowed");
            return -EINVAL;
        }
    }
    return 0;
}

static int check_card_number(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            snprintf(why, whylen, "only digits are allowed");
            return -EINVAL;
        }
    }
    return 0;
}

static int check_printer_model(const char *value, char *why, size_t whylen)
{
    if (pos_escpos_model_find(value) == NULL) {
        snprintf(why, whylen, "unknown printer model");
        return -EINVAL;
    }
    return 0;
}

static int check_codepage(const char *value, char *why, size_t whylen)
{
    if (pos_charset_parse(value) < 0) {
        snprintf(why, whylen, "unknown code page");
        return -EINVAL;
    }
    return 0;
}

static int check_server_name(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == ':' || c == '_') {
            continue;
        }
        snprintf(why, whylen, "invalid: not a host name or IP address");
        return -EINVAL;
    }
    return 0;
}

static int check_tls_version(const char *value, char *why, size_t whylen)
{
    if (strcmp(value, "1.2") == 0) {
        return 0;
    }
    if (strcmp(value, "1.3") == 0) {
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
        return 0;
#else
        snprintf(why, whylen,
                 "not supported: TLS 1.3 needs mbedTLS 3.x; this build has mbedTLS %s "
                 "(TLS 1.2 only)",
                 MBEDTLS_VERSION_STRING);
        return -ENOTSUP;
#endif
    }
    snprintf(why, whylen, "not a TLS version");
    return -EINVAL;
}

static int check_url(const char *value, char *why, size_t whylen)
{
    pos_redis_url_t url;
    char reason[160];
    int rc = pos_redis_url_parse(value, &url, reason, sizeof(reason));
    explicit_bzero(&url, sizeof(url));
    if (rc != 0) {
        snprintf(why, whylen, "invalid: %s", reason);
    }
    return rc;
}

static int check_sentinels(const char *value, char *why, size_t whylen)
{
    pos_sentinel_addr_t addrs[POS_SENTINEL_MAX];
    size_t n;
    char reason[160];

    if (value[0] == '\0') {
        return 0; /* no Sentinel */
    }
    if (pos_sentinel_list_parse(value, addrs, POS_SENTINEL_MAX, &n, reason, sizeof(reason)) != 0) {
        snprintf(why, whylen, "invalid: %s", reason);
        return -EINVAL;
    }
    return 0;
}

/* Decimal with full-string, sign and range checks. */
static int parse_number(const char *s, long long min, long long max, long long *out, char *why,
                        size_t whylen)
{
    const char *p = s;
    if (*p == '-') {
        p++;
    }
    /* strtoll would also take leading blanks, '+' and nothing at all. */
    if (*p < '0' || *p > '9') {
        snprintf(why, whylen, "not a number");
        return -EINVAL;
    }
    if (*s == '-' && min >= 0) {
        snprintf(why, whylen, "out of range");
        return -EINVAL;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0') {
        snprintf(why, whylen, "not a number");
        return -EINVAL;
    }
    if (errno == ERANGE || v < min || v > max) {
        snprintf(why, whylen, "out of range");
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* Validates "value" and stores it; on error writes the problem into why. */
static int item_set(pos_config_t *cfg, const conf_item_t *it, const char *value, char *why,
                    size_t whylen)
{
    long long n;
    int rc;

    switch (it->type) {
    case CT_STR: {
        size_t len = strlen(value);
        assert(it->max >= 0 && (size_t)it->max < it->size);
        if (len == 0 && it->min > 0) {
            snprintf(why, whylen, "empty");
            return -EINVAL;
        }
        if (len > (size_t)it->max) {
            snprintf(why, whylen, "too long (%zu bytes, max %lld)", len, it->max);
            return -EINVAL;
        }
        if (it->check != NULL && (rc = it->check(value, why, whylen)) != 0) {
            return rc;
        }
        char *dst = field(cfg, it);
        explicit_bzero(dst, it->size);
        memcpy(dst, value, len + 1);
        break;
    }
    case CT_U32: {
        assert(it->size == sizeof(uint32_t) && it->min >= 0 && it->max <= UINT32_MAX);
        if ((rc = parse_number(value, it->min, it->max, &n, why, whylen)) != 0) {
            return rc;
        }
        uint32_t v = (uint32_t)n;
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    case CT_INT: {
        assert(it->size == sizeof(int) && it->min >= 0 && it->max <= INT32_MAX);
        if ((rc = parse_number(value, it->min, it->max, &n, why, whylen)) != 0) {
            return rc;
        }
        int v = (int)n;
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    case CT_BOOL: {
        bool v;
        assert(it->size == sizeof(bool));
        if (parse_bool(value, &v) != 0) {
            snprintf(why, whylen, "not a boolean");
            return -EINVAL;
        }
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    case CT_ENUM: {
        assert(it->size == sizeof(int) && it->enum_parse != NULL);
        int v = it->enum_parse(value);
        if (v < 0) {
            snprintf(why, whylen, "not one of the allowed values");
            return -EINVAL;
        }
        memcpy(field(cfg, it), &v, sizeof(v));
        break;
    }
    }
    if (it->set_offset != 0) {
        bool set = true;
        memcpy((char *)cfg + it->set_offset, &set, sizeof(set));
    }
    return 0;
}

/* Formats the current value of a row for the dump (secrets masked). */
static const char *item_format(const pos_config_t *cfg, const conf_item_t *it, char *buf,
                               size_t len)
{
    const void *f = cfield(cfg, it);
    switch (it->type) {
    case CT_STR:
        if (it->flags & F_SECRET) {
            snprintf(buf, len, "****");
        } else if (it->flags & F_URL) {
            pos_redis_url_t url;
            if (pos_redis_url_parse(f, &url, NULL, 0) == 0) {
                pos_redis_url_format_masked(&url, buf, len);
            } else {
                snprintf(buf, len, "(invalid)");
            }
            explicit_bzero(&url, sizeof(url));
        } else {
            snprintf(buf, len, "%s", (const char *)f);
        }
        break;
    case CT_U32: {
        uint32_t v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%lu", (unsigned long)v);
        break;
    }
    case CT_INT: {
        int v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%d", v);
        break;
    }
    case CT_BOOL: {
        bool v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%s", v ? "true" : "false");
        break;
    }
    case CT_ENUM: {
        int v;
        memcpy(&v, f, sizeof(v));
        snprintf(buf, len, "%s", it->enum_name(v));
        break;
    }
    }
    return buf;
}

/* True when the row holds a value (a NULL default means "not set"). */
static bool item_is_set(const pos_config_t *cfg, const conf_item_t *it)
{
    if (it->set_offset != 0) {
        bool set;
        memcpy(&set, (const char *)cfg + it->set_offset, sizeof(set));
        return set;
    }
    if (it->type == CT_INT && it->def == NULL) {
        int v;
        memcpy(&v, cfield(cfg, it), sizeof(v));
        return v >= 0;
    }
    if (it->type == CT_STR) {
        return ((const char *)cfield(cfg, it))[0] != '\0';
    }
    return true;
}

/* ---- defaults --------------------------------------------------------- */

void pos_config_defaults(pos_config_t *cfg)
{
    char why[128];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NITEMS; i++) {
        const conf_item_t *it = &items[i];
        if (it->def != NULL) {
            int rc = item_set(cfg, it, it->def, why, sizeof(why));
            assert(rc == 0 && "built-in default must pass its own checks");
            (void)rc;
        } else if (it->type == CT_INT) {
            int unset = -1;
            memcpy(field(cfg, it), &unset, sizeof(unset));
        }
    }
    /* The derived endpoint for the default URL; cannot fail (tested). */
    if (pos_redis_url_parse(cfg->redis_url, &cfg->redis, NULL, 0) == 0 && cfg->redis.db < 0) {
        cfg->redis.db = 0;
    }
}

/* ---- loading ---------------------------------------------------------- */

typedef struct load_ctx {
    pos_config_t *cfg;
    pos_config_error_t *err;
    const char *name; /* file name for messages */
    FILE *in;
    int line; /* number of the line last handed to inih */
    bool eof;
    int rc;              /* first error, 0 while none */
    int line_of[NITEMS]; /* where each key was set in the file, 0 if not */
    bool from_env[NITEMS];
} load_ctx_t;

/* Where a row's current value comes from, for cross-field messages. */
static const char *origin(const load_ctx_t *c, size_t i, char *buf, size_t len)
{
    if (c->from_env[i]) {
        snprintf(buf, len, "environment %s", items[i].env);
    } else if (c->line_of[i] > 0) {
        snprintf(buf, len, "%s:%d", c->name, c->line_of[i]);
    } else {
        snprintf(buf, len, "%s", c->name);
    }
    return buf;
}

/* Mirrors inih's find_chars_or_comment(): the first of "chars", or a ';' after whitespace. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s != '\0' && strchr(chars, *s) == NULL && !(was_space && *s == ';')) {
        was_space = *s == ' ' || *s == '\t';
        s++;
    }
    return s;
}

/*
 * Checks the syntax of one line (leading whitespace already gone) the way
 * inih will see it. Checking here keeps errors in line order: inih itself
 * would carry on after a syntax error and let a later line fail first.
 * Also rejects unknown sections, which inih never reports to the handler,
 * and text after "[section]", which inih ignores.
 */
static int check_line(load_ctx_t *c, const char *str)
{
    char name[64], list[128], ex[64];

    if (str[0] == '\0' || str[0] == ';' || str[0] == '#') {
        return 0;
    }
    if (str[0] != '[') {
        const char *eq = find_chars_or_comment(str, "=:");
        if (*eq != '=' && *eq != ':') {
            goto syntax;
        }
        return 0;
    }
    const char *close = find_chars_or_comment(str + 1, "]");
    if (*close != ']') {
        goto syntax;
    }
    const char *after = close + 1;
    while (*after == ' ' || *after == '\t') {
        after++;
    }
    if (*after != '\0' && *after != ';' && *after != '#') {
        goto syntax;
    }
    size_t len = (size_t)(close - str - 1);
    if (len >= sizeof(name)) {
        len = sizeof(name) - 1;
    }
    memcpy(name, str + 1, len);
    name[len] = '\0';
    if (find_section(name) == NULL || (size_t)(close - str - 1) >= sizeof(name)) {
        list_sections(list, sizeof(list));
        c->rc = -EINVAL;
        set_msg(c->err, "%s:%d: [%s]: unknown section (allowed: %s)", c->name, c->line,
                excerpt(name, ex, sizeof(ex)), list);
        return c->rc;
    }
    return 0;

syntax:
    c->rc = -EINVAL;
    set_msg(c->err, "%s:%d: syntax error (expected \"[section]\", \"key = value\" or a comment)",
            c->name, c->line);
    return c->rc;
}

/*
 * The ini_reader: hands inih one line at a time so that we know the line
 * number in the handler (inih 55 does not pass it), and rejects what inih
 * would silently mangle: lines longer than its buffer (it would split
 * them), NUL and control characters. Leading whitespace is dropped, which
 * turns off inih's continuation lines: an indented "key = value" is just a
 * key. check_line() then vets the line's syntax and section name.
 */
static char *reader(char *str, int num, void *stream)
{
    load_ctx_t *c = stream;
    size_t n = 0;
    size_t cap = num > 1 ? (size_t)num - 1 : 0;
    bool any = false;
    bool leading = true;

    if (c->rc != 0 || c->eof || c->in == NULL) {
        return NULL;
    }
    c->line++;
    for (;;) {
        int ch = getc(c->in);
        if (ch == EOF) {
            if (ferror(c->in)) {
                int e = errno != 0 ? errno : EIO;
                c->rc = -e;
                set_msg(c->err, "%s:%d: read error: %s", c->name, c->line, strerror(e));
                return NULL;
            }
            c->eof = true;
            if (!any) {
                return NULL;
            }
            break;
        }
        any = true;
        if (ch == '\n') {
            break;
        }
        if (ch == '\r') {
            int next = getc(c->in);
            if (next == '\n') {
                break;
            }
            if (next != EOF) {
                ungetc(next, c->in);
            }
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            c->rc = -EINVAL;
            set_msg(c->err, "%s:%d: control character 0x%02x is not allowed", c->name, c->line,
                    (unsigned)ch);
            return NULL;
        }
        if (leading && (ch == ' ' || ch == '\t')) {
            continue;
        }
        leading = false;
        if (n >= cap) {
            c->rc = -EINVAL;
            set_msg(c->err,
                    "%s:%d: line too long (max %zu characters; a long value such as the "
                    "Redis URL can go in the environment)",
                    c->name, c->line, cap);
            return NULL;
        }
        str[n++] = (char)ch;
    }
    str[n] = '\0';

    /* inih skips a UTF-8 byte order mark on line 1; so do we, before our checks. */
    if (c->line == 1 && strncmp(str, "\xef\xbb\xbf", 3) == 0) {
        size_t skip = 3;
        while (str[skip] == ' ' || str[skip] == '\t') {
            skip++;
        }
        memmove(str, str + skip, n - skip + 1);
    }
    if (check_line(c, str) != 0) {
        return NULL;
    }
    return str;
}

static void value_error(load_ctx_t *c, const conf_item_t *it, const char *value, const char *why)
{
    char allowed[64], ex[64];
    const char *al = allowed_text(it, allowed, sizeof(allowed));
    if (it->flags & (F_SECRET | F_NOECHO)) {
        set_msg(c->err, "%s:%d: [%s] %s: %s (allowed: %s)", c->name, c->line, it->section, it->key,
                why, al);
    } else {
        set_msg(c->err, "%s:%d: [%s] %s: \"%s\" is %s (allowed: %s)", c->name, c->line, it->section,
                it->key, excerpt(value, ex, sizeof(ex)), why, al);
    }
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *c = user;
    char ex[64], ex2[64], list[256], why[192];

    if (c->rc != 0) {
        return 0;
    }
    c->rc = -EINVAL;
    if (section[0] == '\0') {
        set_msg(c->err, "%s:%d: %s: key outside any section (put it under [section])", c->name,
                c->line, excerpt(name, ex, sizeof(ex)));
        return 0;
    }
    if (find_section(section) == NULL) {
        list_sections(list, sizeof(list));
        set_msg(c->err, "%s:%d: [%s]: unknown section (allowed: %s)", c->name, c->line,
                excerpt(section, ex, sizeof(ex)), list);
        return 0;
    }
    int i = find_item(section, name);
    if (i < 0) {
        list_keys(section, list, sizeof(list));
        set_msg(c->err, "%s:%d: [%s] %s: unknown key (allowed: %s)", c->name, c->line,
                excerpt(section, ex, sizeof(ex)), excerpt(name, ex2, sizeof(ex2)), list);
        return 0;
    }
    const conf_item_t *it = &items[i];
    if (c->line_of[i] != 0) {
        set_msg(c->err, "%s:%d: [%s] %s: duplicate key (first set on line %d)", c->name, c->line,
                it->section, it->key, c->line_of[i]);
        return 0;
    }
    if (item_set(c->cfg, it, value, why, sizeof(why)) != 0) {
        value_error(c, it, value, why);
        return 0;
    }
    c->line_of[i] = c->line;
    c->rc = 0;
    return 1;
}

static int load_file(load_ctx_t *c)
{
    int ret = ini_parse_stream(reader, c, handler, c);
    if (c->rc != 0) {
        return c->rc;
    }
    if (ret == -2) {
        set_msg(c->err, "%s: out of memory", c->name);
        return -ENOMEM;
    }
    if (ret != 0) {
        set_msg(c->err,
                "%s:%d: syntax error (expected \"[section]\", \"key = value\" or a "
                "comment)",
                c->name, ret);
        return -EINVAL;
    }
    return 0;
}

/* First "NAME=value" in envp, like getenv(). */
static const char *env_lookup(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; *e != NULL; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
            return *e + n + 1;
        }
    }
    return NULL;
}

static int load_env(load_ctx_t *c, char *const *envp)
{
    char why[192], allowed[64], ex[64];

    for (size_t i = 0; i < NITEMS; i++) {
        const conf_item_t *it = &items[i];
        const char *value;
        if (it->env == NULL || (value = env_lookup(envp, it->env)) == NULL) {
            continue;
        }
        if (item_set(c->cfg, it, value, why, sizeof(why)) != 0) {
            const char *al = allowed_text(it, allowed, sizeof(allowed));
            if (it->flags & (F_SECRET | F_NOECHO)) {
                set_msg(c->err, "environment %s: %s (allowed: %s)", it->env, why, al);
            } else {
                set_msg(c->err, "environment %s=\"%s\": %s (allowed: %s)", it->env,
                        excerpt(value, ex, sizeof(ex)), why, al);
            }
            return -EINVAL;
        }
        c->from_env[i] = true;
    }
    return 0;
}

static int check_required(load_ctx_t *c)
{
    for (size_t i = 0; i < NITEMS; i++) {
        const conf_item_t *it = &items[i];
        if ((it->flags & F_REQUIRED) && !item_is_set(c->cfg, it)) {
            if (it->env != NULL) {
                set_msg(c->err, "%s: [%s] %s is required (or set %s)", c->name, it->section,
                        it->key, it->env);
            } else {
                set_msg(c->err, "%s: [%s] %s is required", c->name, it->section, it->key);
            }
            return -EINVAL;
        }
    }
    return 0;
}

static size_t index_of(const char *section, const char *key)
{
    int i = find_item(section, key);
    assert(i >= 0);
    return (size_t)i;
}

static int check_cross(load_ctx_t *c)
{
    const pos_config_t *cfg = c->cfg;
    char where[300], other[300];

    if (cfg->heartbeat_interval_s >= cfg->heartbeat_ttl_s) {
        size_t ii = index_of("heartbeat", "interval_s");
        size_t it = index_of("heartbeat", "ttl_s");
        set_msg(c->err, "%s: [heartbeat] interval_s: %lu must be less than ttl_s = %lu (from %s)",
                origin(c, ii, where, sizeof(where)), (unsigned long)cfg->heartbeat_interval_s,
                (unsigned long)cfg->heartbeat_ttl_s, origin(c, it, other, sizeof(other)));
        return -EINVAL;
    }
    if ((cfg->redis_sentinels[0] != '\0') != (cfg->redis_master_name[0] != '\0')) {
        bool have_list = cfg->redis_sentinels[0] != '\0';
        size_t is = index_of("redis", have_list ? "sentinels" : "master_name");
        set_msg(c->err, "%s: [redis] %s: needs [redis] %s as well",
                origin(c, is, where, sizeof(where)), have_list ? "sentinels" : "master_name",
                have_list ? "master_name" : "sentinels");
        return -EINVAL;
    }
    if (cfg->max_retry_delay_ms < cfg->retry_delay_ms) {
        size_t im = index_of("redis", "max_retry_delay_ms");
        size_t ir = index_of("redis", "retry_delay_ms");
        set_msg(c->err,
                "%s: [redis] max_retry_delay_ms: %lu must not be less than retry_delay_ms = %lu "
                "(from %s)",
                origin(c, im, where, sizeof(where)), (unsigned long)cfg->max_retry_delay_ms,
                (unsigned long)cfg->retry_delay_ms, origin(c, ir, other, sizeof(other)));
        return -EINVAL;
    }
    return 0;
}

/* The effective endpoint: the URL, then the password and db overrides. */
static int derive_redis(load_ctx_t *c)
{
    pos_config_t *cfg = c->cfg;
    char why[160], where[300];

    if (pos_redis_url_parse(cfg->redis_url, &cfg->redis, why, sizeof(why)) != 0) {
        /* Unreachable: the URL was checked when it was set. */
        set_msg(c->err, "%s: [redis] url: invalid: %s",
                origin(c, index_of("redis", "url"), where, sizeof(where)), why);
        return -EINVAL;
    }
    if (cfg->redis_password_set) {
        explicit_bzero(cfg->redis.password, sizeof(cfg->redis.password));
        memcpy(cfg->redis.password, cfg->redis_password, sizeof(cfg->redis.password));
    }
    if (cfg->redis_db >= 0) {
        cfg->redis.db = cfg->redis_db;
    } else if (cfg->redis.db < 0) {
        cfg->redis.db = 0;
    }
    cfg->nsentinels = 0;
    if (cfg->redis_sentinels[0] != '\0' &&
        pos_sentinel_list_parse(cfg->redis_sentinels, cfg->sentinels, POS_SENTINEL_MAX,
                                &cfg->nsentinels, why, sizeof(why)) != 0) {
        /* Unreachable: the list was checked when it was set. */
        set_msg(c->err, "%s: [redis] sentinels: invalid: %s",
                origin(c, index_of("redis", "sentinels"), where, sizeof(where)), why);
        return -EINVAL;
    }
    return 0;
}

/*
 * Opens a file named by the configuration for reading: it must be a regular
 * file, and a "private" one (a password, a key) must not be open to other
 * users. Returns the descriptor, or -errno with the problem in why.
 */
static int open_checked(const char *path, bool private_file, char *why, size_t whylen)
{
    struct stat st;
    int fd, e;

    /* O_NONBLOCK: a FIFO named here must not hang the load (regular files
     * ignore it). */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        e = errno;
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, &st) != 0) {
        e = errno;
        close(fd);
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(why, whylen, "%s is not a regular file", path);
        return -EINVAL;
    }
    if (private_file && (st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
        close(fd);
        snprintf(why, whylen, "%s is open to other users (mode %04o); refusing it (chmod o-rwx %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        return -EPERM;
    }
    return fd;
}

/* [redis] password_file: one line, read into the effective endpoint. The
 * buffer is wiped; the password is never quoted in a message. */
static int load_password_file(load_ctx_t *c)
{
    pos_config_t *cfg = c->cfg;
    char buf[POS_URL_PASS_MAX + 2];
    char why[400], where[300], other[300];
    size_t n = 0;
    int fd, rc = 0;
    size_t ip = index_of("redis", "password_file");

    if (cfg->redis_password_file[0] == '\0') {
        return 0;
    }
    origin(c, ip, where, sizeof(where));
    if (cfg->redis_password_set) {
        set_msg(c->err, "%s: [redis] password_file: not together with a password (set in %s)",
                where, origin(c, index_of("redis", "password"), other, sizeof(other)));
        return -EINVAL;
    }
    fd = open_checked(cfg->redis_password_file, true, why, sizeof(why));
    if (fd < 0) {
        set_msg(c->err, "%s: [redis] password_file: %s", where, why);
        return -EINVAL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            set_msg(c->err, "%s: [redis] password_file: cannot read %s: %s", where,
                    cfg->redis_password_file, strerror(e));
            rc = -EINVAL;
            goto out;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n == sizeof(buf)) {
            break;
        }
    }
    if (n == sizeof(buf)) {
        set_msg(c->err, "%s: [redis] password_file: too long (max %d bytes)", where,
                POS_URL_PASS_MAX - 1);
        rc = -EINVAL;
        goto out;
    }
    /* One line: a final newline (or CRLF) is not part of the password. */
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }
    if (n == 0 || n > POS_URL_PASS_MAX - 1 || memchr(buf, '\n', n) != NULL ||
        memchr(buf, '\0', n) != NULL) {
        set_msg(c->err,
                "%s: [redis] password_file: must hold one non-empty line of at most %d "
                "bytes",
                where, POS_URL_PASS_MAX - 1);
        rc = -EINVAL;
        goto out;
    }
    explicit_bzero(cfg->redis.password, sizeof(cfg->redis.password));
    memcpy(cfg->redis.password, buf, n);
    cfg->redis.password[n] = '\0';
out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* [tls]: consistent with the URL's scheme, and every file readable now
 * rather than at the first connection. */
static int check_tls(load_ctx_t *c)
{
    pos_config_t *cfg = c->cfg;
    char why[400], where[300];
    static const char *const files[] = {"ca_file", "cert_file", "key_file"};
    const char *values[] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file};

    if (!cfg->redis.tls) {
        static const char *const keys[] = {"ca_file", "cert_file", "key_file", "server_name"};
        const char *set[] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file,
                             cfg->tls_server_name};
        for (size_t i = 0; i < 4; i++) {
            if (set[i][0] != '\0') {
                set_msg(c->err,
                        "%s: [tls] %s is set but [redis] url is redis:// (plain TCP): use "
                        "rediss:// or remove the [tls] settings",
                        origin(c, index_of("tls", keys[i]), where, sizeof(where)), keys[i]);
                return -EINVAL;
            }
        }
        return 0;
    }
    if (cfg->tls_ca_file[0] == '\0') {
        set_msg(c->err, "%s: [tls] ca_file is required for a rediss:// URL",
                origin(c, index_of("redis", "url"), where, sizeof(where)));
        return -EINVAL;
    }
    if ((cfg->tls_cert_file[0] != '\0') != (cfg->tls_key_file[0] != '\0')) {
        bool cert = cfg->tls_cert_file[0] != '\0';
        set_msg(c->err, "%s: [tls] %s is set but %s is not (mutual TLS needs both)",
                origin(c, index_of("tls", cert ? "cert_file" : "key_file"), where, sizeof(where)),
                cert ? "cert_file" : "key_file", cert ? "key_file" : "cert_file");
        return -EINVAL;
    }
    for (size_t i = 0; i < 3; i++) {
        if (values[i][0] == '\0') {
            continue;
        }
        int fd = open_checked(values[i], i == 2, why, sizeof(why));
        if (fd < 0) {
            set_msg(c->err, "%s: [tls] %s: %s",
                    origin(c, index_of("tls", files[i]), where, sizeof(where)), files[i], why);
            return -EINVAL;
        }
        close(fd);
    }
    if (cfg->tls_server_name[0] == '\0') {
        snprintf(cfg->tls_server_name, sizeof(cfg->tls_server_name), "%s", cfg->redis.host);
    }
    return 0;
}

int pos_config_load_stream(pos_config_t *cfg, FILE *in, const char *name, char *const *envp,
                           pos_config_error_t *err)
{
    pos_config_error_t scratch;
    load_ctx_t *c;
    int rc;

    if (err == NULL) {
        err = &scratch;
    }
    err->msg[0] = '\0';
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        set_msg(err, "out of memory");
        return -ENOMEM;
    }
    c->cfg = cfg;
    c->err = err;
    c->name = name != NULL ? name : "(no configuration file)";
    c->in = in;

    pos_config_defaults(cfg);
    rc = load_file(c);
    if (rc == 0 && envp != NULL) {
        rc = load_env(c, envp);
    }
    if (rc == 0) {
        rc = check_required(c);
    }
    if (rc == 0) {
        rc = check_cross(c);
    }
    if (rc == 0) {
        rc = derive_redis(c);
    }
    if (rc == 0) {
        rc = load_password_file(c);
    }
    if (rc == 0) {
        rc = check_tls(c);
    }
    free(c);
    if (rc != 0) {
        pos_config_wipe(cfg);
    }
    return rc;
}

int pos_config_load(pos_config_t *cfg, const char *path, char *const *envp, pos_config_error_t *err)
{
    pos_config_error_t scratch;
    FILE *in = NULL;
    int rc;

    if (err == NULL) {
        err = &scratch;
    }
    if (path != NULL) {
        in = fopen(path, "r");
        if (in == NULL) {
            int e = errno;
            pos_config_defaults(cfg);
            pos_config_wipe(cfg);
            set_msg(err, "%s: cannot open: %s", path, strerror(e));
            return -e;
        }
    }
    rc = pos_config_load_stream(cfg, in, path, envp, err);
    if (in != NULL) {
        fclose(in);
    }
    return rc;
}

void pos_config_wipe(pos_config_t *cfg)
{
    explicit_bzero(cfg->redis_password, sizeof(cfg->redis_password));
    explicit_bzero(cfg->redis_url, sizeof(cfg->redis_url));
    explicit_bzero(cfg->redis.password, sizeof(cfg->redis.password));
    explicit_bzero(cfg->redis_sentinel_password, sizeof(cfg->redis_sentinel_password));
}

/* ---- output ----------------------------------------------------------- */

void pos_config_dump(const pos_config_t *cfg, FILE *out)
{
    char buf[600];
    const char *cur = NULL;

    fprintf(out, "; posagent effective configuration (secrets masked)\n");
    for (size_t i = 0; i < NITEMS; i++) {
        const conf_item_t *it = &items[i];
        if (cur == NULL || strcmp(cur, it->section) != 0) {
            cur = it->section;
            fprintf(out, "\n[%s]\n", cur);
        }
        if (!item_is_set(cfg, it)) {
            fprintf(out, "; %s = (not set)\n", it->key);
            continue;
        }
        fprintf(out, "%s = %s\n", it->key, item_format(cfg, it, buf, sizeof(buf)));
    }
    pos_redis_url_format_masked(&cfg->redis, buf, sizeof(buf));
    fprintf(out, "\n; effective Redis endpoint: %s\n", buf);
}

/* Writes text as "; " comment lines wrapped before 78 columns. */
static void write_wrapped(FILE *out, const char *text)
{
    const size_t width = 76;
    while (*text != '\0') {
        size_t len = strlen(text);
        size_t cut = len;
        if (len > width) {
            cut = width;
            while (cut > 0 && text[cut] != ' ') {
                cut--;
            }
            if (cut == 0) {
                cut = width;
            }
        }
        fprintf(out, "; %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ') {
            text++;
        }
    }
}

void pos_config_write_example(FILE *out)
{
    char buf[64], line[256];

    fputs("; posagent configuration file (example)\n"
          ";\n"
          "; Generated from the schema in conf/config.c by pos_config_write_example();\n"
          "; do not edit by hand. Regenerate with:\n"
          ";   POS_REGENERATE=1 <build>/tests/test_config\n"
          ";\n"
          "; Precedence, lowest to highest: built-in default, this file, environment.\n"
          "; Syntax: \"[section]\" headers and \"key = value\" lines. Lines starting with\n"
          "; ';' or '#' are comments; \" ;\" starts a comment after a value, so a value\n"
          "; cannot contain \" ;\". Quotes are kept literally. A line may hold at most\n",
          out);
    fprintf(out, "; %d characters (a longer Redis URL can go in REDIS_URL). Unknown sections\n",
            INI_MAX_LINE - 1);
    fputs("; and keys, duplicate keys and bad values are errors.\n"
          "; A commented-out \"; key = value\" line shows the built-in default.\n"
          "; An environment variable set to \"\" counts as set.\n",
          out);
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(out, "\n[%s]\n", sections[s].name);
        write_wrapped(out, sections[s].desc);
        for (size_t i = 0; i < NITEMS; i++) {
            const conf_item_t *it = &items[i];
            if (strcmp(it->section, sections[s].name) != 0) {
                continue;
            }
            fputs("\n", out);
            write_wrapped(out, it->desc);
            if (it->flags & F_REQUIRED) {
                snprintf(line, sizeof(line), "Required. Allowed: %s.",
                         allowed_text(it, buf, sizeof(buf)));
            } else {
                snprintf(line, sizeof(line), "Allowed: %s. Default: %s.",
                         allowed_text(it, buf, sizeof(buf)), it->def ? it->def : it->def_doc);
            }
            write_wrapped(out, line);
            if (it->env != NULL) {
                fprintf(out, "; Environment: %s (overrides this file).\n", it->env);
            }
            if (it->flags & F_REQUIRED) {
                fprintf(out, "%s = %s\n", it->key, it->example);
            } else {
                fprintf(out, "; %s = %s\n", it->key, it->def ? it->def : it->example);
            }
        }
    }
}

/* Writes a Markdown table cell, escaping '|'. */
static void md_cell(FILE *out, const char *s, bool code)
{
    fputs(" ", out);
    if (code) {
        fputs("`", out);
    }
    for (; *s != '\0'; s++) {
        if (*s == '|') {
            fputs("\\|", out);
        } else {
            fputc(*s, out);
        }
    }
    if (code) {
        fputs("`", out);
    }
    fputs(" |", out);
}

void pos_config_write_reference(FILE *out)
{
    char buf[64];

    fputs("| section | key | env var | default | allowed | meaning |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < NITEMS; i++) {
        const conf_item_t *it = &items[i];
        fputs("|", out);
        md_cell(out, it->section, true);
        md_cell(out, it->key, true);
        md_cell(out, it->env ? it->env : "", it->env != NULL);
        md_cell(out, it->def ? it->def : it->def_doc, it->def != NULL);
        md_cell(out, allowed_text(it, buf, sizeof(buf)), false);
        md_cell(out, it->desc, false);
        fputs("\n", out);
    }
}
