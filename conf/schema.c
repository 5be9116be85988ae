#include "conf/schema.h"
#include "hal/charset.h"
#include "hal/escpos.h"
#include "hal/registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/version.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <mbedtls/build_info.h>
#else
#include <mbedtls/config.h>
#endif

#include "platform/ident.h"
#include "platform/log.h"

/*
 * The configuration schema: the value checks that rows name, then the
 * sections and their rows (see conf/schema.h), then lookups by name.
 */

/* ---- value checks ----------------------------------------------------- */

static int check_id(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (pos_ident_char((char)c)) {
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
    if (value[0] != '/') {
        snprintf(why, whylen, "a relative path: it must start with '/'");
        return -EINVAL;
    }
    if (strstr(value, "/../") != NULL ||
        (strlen(value) >= 3 && strcmp(value + strlen(value) - 3, "/..") == 0)) {
        snprintf(why, whylen, "a path with '..' in it: name the directory itself");
        return -EINVAL;
    }
    return 0;
}

static int check_opt_abs_path(const char *value, char *why, size_t whylen)
{
    return value[0] == '\0' ? 0 : check_abs_path(value, why, whylen);
}

/* node_exporter's textfile collector reads only *.prom files. */
static int check_prom_path(const char *value, char *why, size_t whylen)
{
    size_t n = strlen(value);

    if (n == 0) {
        return 0;
    }
    if (n < 6 || strcmp(value + n - 5, ".prom") != 0 || value[n - 6] == '/') {
        snprintf(why, whylen, "not a file name ending in .prom (the collector reads no other)");
        return -EINVAL;
    }
    return check_abs_path(value, why, whylen);
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

static int check_cluster_nodes(const char *value, char *why, size_t whylen)
{
    pos_sentinel_addr_t addrs[POS_CLUSTER_NODES_MAX];
    size_t n;
    char reason[160];

    if (value[0] == '\0') {
        return 0; /* not a cluster */
    }
    if (pos_addr_list_parse(value, 6379, "cluster node", addrs, POS_CLUSTER_NODES_MAX, &n, reason,
                            sizeof(reason)) != 0) {
        snprintf(why, whylen, "invalid: %s", reason);
        return -EINVAL;
    }
    return 0;
}

static int pubsub_parse(const char *name)
{
    if (strcmp(name, "classic") == 0) {
        return POS_PUBSUB_CLASSIC;
    }
    return strcmp(name, "sharded") == 0 ? POS_PUBSUB_SHARDED : -1;
}

static const char *pubsub_name(int v)
{
    return v == POS_PUBSUB_SHARDED ? "sharded" : "classic";
}

static const char *level_name(int level)
{
    return pos_log_level_name((pos_log_level_t)level);
}

/* ---- the table -------------------------------------------------------- */

#define FIELD(f) .offset = offsetof(pos_config_t, f), .size = sizeof(((pos_config_t *)0)->f)

#define ID_ALLOWED  "1..63 characters from [A-Za-z0-9._-]"
#define URL_ALLOWED "redis://[[user]:pass@]host[:port][/db], or rediss:// for TLS"

const pos_schema_section_t pos_schema_sections[] = {
    [POS_SEC_TERMINAL] =
        {"terminal",
         POS_DOC("Identity of this terminal; both ids appear in Redis key and channel names.")},
    [POS_SEC_REDIS] = {"redis",
                       POS_DOC("Connection to the store's Redis server (the cloud side).")},
    [POS_SEC_TLS] =
        {"tls",
         POS_DOC("TLS for a rediss:// URL (mbedTLS): the server certificate is always verified.")},
    [POS_SEC_HEARTBEAT] =
        {"heartbeat",
         POS_DOC("The status key terminal:{id}:status, refreshed with SET ... EX ttl_s.")},
    [POS_SEC_HAL] =
        {"hal",
         POS_DOC(
             "Peripherals: which driver runs each device, and the simulated devices' settings.")},
    [POS_SEC_PAYMENT] = {"payment", POS_DOC("Payments taken on this terminal's pinpad.")},
    [POS_SEC_STORE] =
        {"store",
         POS_DOC("Local store (LMDB) for the offline cache, the outbox and the payment journal.")},
    [POS_SEC_CACHE] =
        {"cache",
         POS_DOC("The local copy of the cloud's keys: freshness per key family, and warm-up.")},
    [POS_SEC_LOCAL] =
        {"local",
         POS_DOC(
             "The local API: a Unix socket speaking RESP for the POS application and the CLI.")},
    [POS_SEC_INBOUND] =
        {"inbound",
         POS_DOC("Budgets of what the cloud sends, per channel (token buckets: a rate a second "
                 "and a burst): what is over is answered or handled cheaply, never left to "
                 "starve the rest (docs/load.md).")},
    [POS_SEC_METRICS] =
        {"metrics",
         POS_DOC("Metrics for the fleet (docs/contract.md \"Metrics\"): a Prometheus text file for "
                 "node_exporter, a snapshot hash in Redis, and remote diagnostics.")},
    [POS_SEC_LOG] = {"log", POS_DOC("Logging.")},
    [POS_SEC_SECURITY] =
        {"security",
         POS_DOC("Privileges: the user the agent runs as once its devices and sockets are open.")},
};

const pos_schema_item_t pos_schema_items[] = {
    {.sec = POS_SEC_TERMINAL,
     .key = "id",
     .type = CT_STR,
     FIELD(terminal_id),
     .min = 1,
     .max = 63,
     .env = "POSAGENT_TERMINAL_ID",
     .flags = F_REQUIRED,
     .check = check_id,
     .allowed = ID_ALLOWED,
     .def_doc = POS_DOC("(required)"),
     .example = POS_DOC("this till's terminal id"),
     .desc =
         POS_DOC("Terminal identifier, as in terminal:{id}:status and payment:{id}. This till's "
                 "own, never shared: provision it in a drop-in (posagent.d/10-identity.ini) or "
                 "POSAGENT_TERMINAL_ID; the agent does not start without it (exit 78).")},
    {.sec = POS_SEC_TERMINAL,
     .key = "store_id",
     .type = CT_STR,
     FIELD(store_id),
     .min = 1,
     .max = 63,
     .env = "POSAGENT_STORE_ID",
     .flags = F_REQUIRED,
     .check = check_id,
     .allowed = ID_ALLOWED,
     .def_doc = POS_DOC("(required)"),
     .example = POS_DOC("this till's store id"),
     .desc = POS_DOC("Store identifier, as in inventory:{storeId} and transaction:{storeId}; "
                     "provisioned with the terminal id.")},

    {.sec = POS_SEC_REDIS,
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
     .desc = POS_DOC("Redis server. User and password are percent-decoded (%40 is '@'). "
                     "Prefer the password key or REDIS_PASSWORD to a password in the URL.")},
    {.sec = POS_SEC_REDIS,
     .key = "password",
     .type = CT_STR,
     FIELD(redis_password),
     .set_offset = offsetof(pos_config_t, redis_password_set),
     .min = 0,
     .max = 255,
     .env = "REDIS_PASSWORD",
     .flags = F_SECRET,
     .allowed = "up to 255 bytes",
     .def_doc = POS_DOC("(none)"),
     .example = POS_DOC("change-me"),
     .desc =
         POS_DOC("Password for Redis AUTH; when set (even empty) it replaces the URL's password.")},
    {.sec = POS_SEC_REDIS,
     .key = "db",
     .type = CT_INT,
     FIELD(redis_db),
     .min = 0,
     .max = 1023,
     .env = "REDIS_DB",
     .def_doc = POS_DOC("(the URL's /db, else 0)"),
     .example = POS_DOC("0"),
     .desc = POS_DOC("Database number for SELECT; when set it replaces the URL's /db.")},
    {.sec = POS_SEC_REDIS,
     .key = "retry_delay_ms",
     .type = CT_U32,
     FIELD(retry_delay_ms),
     .def = "100",
     .min = 1,
     .max = 60000,
     .env = "REDIS_RETRY_DELAY_ON_FAILURE_MS",
     .desc = POS_DOC("First reconnect delay in milliseconds; later delays double, with jitter.")},
    {.sec = POS_SEC_REDIS,
     .key = "max_retry_delay_ms",
     .type = CT_U32,
     FIELD(max_retry_delay_ms),
     .def = "3000",
     .min = 1,
     .max = 600000,
     .env = "REDIS_MAX_RETRY_DELAY_ON_FAILURE_MS",
     .desc =
         POS_DOC("Cap of the reconnect delay in milliseconds; must not be below retry_delay_ms.")},
    {.sec = POS_SEC_REDIS,
     .key = "connect_timeout_ms",
     .type = CT_U32,
     FIELD(connect_timeout_ms),
     .def = "2000",
     .min = 100,
     .max = 60000,
     .desc = POS_DOC("Time allowed for TCP (and TLS) connection setup, in milliseconds.")},
    {.sec = POS_SEC_REDIS,
     .key = "command_timeout_ms",
     .type = CT_U32,
     FIELD(command_timeout_ms),
     .def = "5000",
     .min = 100,
     .max = 60000,
     .desc = POS_DOC(
         "Time allowed for a reply to a command, in milliseconds; must exceed the "
         "worst round trip to Redis (a 2 s round trip with a 2 s limit never gets online).")},
    {.sec = POS_SEC_REDIS,
     .key = "probe_interval_ms",
     .type = CT_U32,
     FIELD(probe_interval_ms),
     .def = "10000",
     .min = 1000,
     .max = 15000,
     .desc = POS_DOC("Period of the end-to-end probe (published on the command connection, heard "
                     "on the subscriber); a probe not heard back by the next one drops the link.")},
    {.sec = POS_SEC_REDIS,
     .key = "clock_check_s",
     .type = CT_U32,
     FIELD(redis_clock_check_s),
     .def = "300",
     .min = 10,
     .max = 86400,
     .desc = POS_DOC("Seconds between checks of the till's clock against Redis TIME (also at every "
                     "connect); an offset over half [payment] signature_window_s is logged as a "
                     "warning, since signed messages would soon be refused as stale.")},
    {.sec = POS_SEC_REDIS,
     .key = "sentinels",
     .type = CT_STR,
     FIELD(redis_sentinels),
     .min = 0,
     .max = 255,
     .env = "REDIS_SENTINELS",
     .flags = F_NOECHO, /* a mistyped entry may hold a password */
     .check = check_sentinels,
     .allowed = "host[:port] list, comma-separated, up to 8; port 26379 by default",
     .def_doc = POS_DOC("(none: connect to the URL's host)"),
     .example = POS_DOC("10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379"),
     .desc = POS_DOC("Redis Sentinel instances to ask for the master named master_name. When set, "
                     "the URL's host and port are ignored (its user, password, db and TLS still "
                     "apply).")},
    {.sec = POS_SEC_REDIS,
     .key = "master_name",
     .type = CT_STR,
     FIELD(redis_master_name),
     .min = 0,
     .max = 63,
     .env = "REDIS_MASTER_NAME",
     .check = check_id,
     .allowed = ID_ALLOWED,
     .def_doc = POS_DOC("(none; required with sentinels)"),
     .example = POS_DOC("mymaster"),
     .desc =
         POS_DOC("Name of the monitored master, as in the sentinels' 'sentinel monitor' line.")},
    {.sec = POS_SEC_REDIS,
     .key = "sentinel_password",
     .type = CT_STR,
     FIELD(redis_sentinel_password),
     .min = 0,
     .max = 255,
     .env = "REDIS_SENTINEL_PASSWORD",
     .flags = F_SECRET,
     .allowed = "up to 255 bytes",
     .def_doc = POS_DOC("(none)"),
     .example = POS_DOC("change-me"),
     .desc = POS_DOC("Password for AUTH on the sentinels (their requirepass), if they have one.")},
    {.sec = POS_SEC_REDIS,
     .key = "cluster_nodes",
     .type = CT_STR,
     FIELD(redis_cluster_nodes),
     .min = 0,
     .max = 255,
     .env = "REDIS_CLUSTER_NODES",
     .flags = F_NOECHO, /* a mistyped entry may hold a password */
     .check = check_cluster_nodes,
     .allowed = "host[:port] list, comma-separated, up to 16; port 6379 by default",
     .def_doc = POS_DOC("(none: not a cluster)"),
     .example = POS_DOC("10.0.1.1:6379,10.0.1.2:6379,10.0.1.3:6379"),
     .desc = POS_DOC(
         "Redis Cluster seed nodes: the map of slots is asked from them, commands go to "
         "the primary owning each key's slot (docs/cluster.md). The URL's host and port are "
         "then ignored (its user, password and TLS still apply; db must be 0). Not with "
         "sentinels.")},
    {.sec = POS_SEC_REDIS,
     .key = "pubsub",
     .type = CT_ENUM,
     FIELD(redis_pubsub),
     .def = "classic",
     .enum_parse = pubsub_parse,
     .enum_name = pubsub_name,
     .allowed = "classic, sharded",
     .desc = POS_DOC("With cluster_nodes: 'sharded' uses SSUBSCRIBE and SPUBLISH for payment:{id}, "
                     "inventory:{store} and transaction:{store} on the node owning each channel's "
                     "slot; system:alerts and system:terminals stay classic.")},

    {.sec = POS_SEC_REDIS,
     .key = "password_file",
     .type = CT_STR,
     FIELD(redis_password_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .def_doc = POS_DOC("(none)"),
     .example = POS_DOC("/etc/posagent/redis.password"),
     .desc = POS_DOC("File holding the password for Redis AUTH (one line); read at start, and "
                     "refused when other users may read it. Replaces the URL's password; not "
                     "together with password / REDIS_PASSWORD.")},

    {.sec = POS_SEC_TLS,
     .key = "ca_file",
     .type = CT_STR,
     FIELD(tls_ca_file),
     .min = 0,
     .max = 200,
     .env = "POSAGENT_TLS_CA_FILE",
     .check = check_abs_path,
     .allowed = "an absolute path (PEM or DER)",
     .def_doc = POS_DOC("(none; required for rediss://)"),
     .example = POS_DOC("/etc/posagent/redis-ca.pem"),
     .desc = POS_DOC("CA certificate(s) the Redis server's certificate must chain to.")},
    {.sec = POS_SEC_TLS,
     .key = "cert_file",
     .type = CT_STR,
     FIELD(tls_cert_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path (PEM or DER)",
     .def_doc = POS_DOC("(none)"),
     .example = POS_DOC("/etc/posagent/client.crt"),
     .desc = POS_DOC("Client certificate for mutual TLS (tls-auth-clients); needs key_file.")},
    {.sec = POS_SEC_TLS,
     .key = "key_file",
     .type = CT_STR,
     FIELD(tls_key_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path (unencrypted PEM or DER)",
     .def_doc = POS_DOC("(none)"),
     .example = POS_DOC("/etc/posagent/client.key"),
     .desc = POS_DOC("Private key of cert_file; refused when other users may read it.")},
    {.sec = POS_SEC_TLS,
     .key = "server_name",
     .type = CT_STR,
     FIELD(tls_server_name),
     .min = 0,
     .max = 253,
     .check = check_server_name,
     .allowed = "a host name or IP address",
     .def_doc = POS_DOC("(the URL's host)"),
     .example = POS_DOC("redis.example.com"),
     .desc = POS_DOC("Name the server certificate must carry (always checked), also sent as SNI.")},
    {.sec = POS_SEC_TLS,
     .key = "min_version",
     .type = CT_STR,
     FIELD(tls_min_version),
     .def = "1.2",
     .min = 1,
     .max = 7,
     .check = check_tls_version,
     .allowed = "1.2, or 1.3 with mbedTLS 3.x",
     .desc = POS_DOC("Oldest TLS version accepted. Debian 12's mbedTLS 2.28 speaks TLS 1.2 only.")},

    {.sec = POS_SEC_HEARTBEAT,
     .key = "interval_s",
     .type = CT_U32,
     FIELD(heartbeat_interval_s),
     .flags = F_RELOAD,
     .def = "20",
     .min = 1,
     .max = 3600,
     .desc = POS_DOC("Seconds between status writes; must be less than ttl_s.")},
    {.sec = POS_SEC_HEARTBEAT,
     .key = "ttl_s",
     .type = CT_U32,
     FIELD(heartbeat_ttl_s),
     .flags = F_RELOAD,
     .def = "60",
     .min = 2,
     .max = 86400,
     .desc = POS_DOC("Expiry of the status key in seconds: the cloud treats the terminal as gone "
                     "when it lapses.")},

    {.sec = POS_SEC_HAL,
     .key = "display",
     .type = CT_STR,
     FIELD(hal_display),
     .def = "sim",
     .min = 1,
     .max = 255,
     .check = check_display,
     .allowed = "sim, epson-display:/dev/ttyS1?baud=9600, cd5220:/dev/ttyS1?baud=9600",
     .desc = POS_DOC("Customer display driver.")},
    {.sec = POS_SEC_HAL,
     .key = "printer",
     .type = CT_STR,
     FIELD(hal_printer),
     .def = "sim",
     .min = 1,
     .max = 255,
     .check = check_printer,
     .allowed = "sim, escpos:/dev/usb/lp0, escpos-serial:/dev/ttyUSB0?baud=19200, "
                "escpos-tcp:127.0.0.1:9100",
     .desc = POS_DOC("Receipt printer driver.")},
    {.sec = POS_SEC_HAL,
     .key = "pinpad",
     .type = CT_STR,
     FIELD(hal_pinpad),
     .def = "sim",
     .min = 1,
     .max = 255,
     .check = check_pinpad,
     .allowed = "sim, telium:/dev/ttyACM0?baud=9600",
     .desc = POS_DOC("Card pinpad driver.")},
    {.sec = POS_SEC_HAL,
     .key = "sim_dir",
     .type = CT_STR,
     FIELD(hal_sim_dir),
     .def = "/var/lib/posagent/sim",
     .min = 1,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .desc = POS_DOC("Where the simulated devices keep their files (display.txt, receipts.txt, "
                     "pinpad.charges) and read injected faults (*.fault).")},
    {.sec = POS_SEC_HAL,
     .key = "sim_pinpad_delay_ms",
     .type = CT_U32,
     FIELD(hal_sim_pinpad_delay_ms),
     .def = "1500",
     .min = 0,
     .max = 600000,
     .desc = POS_DOC("Time the simulated customer takes at the pinpad, in milliseconds.")},
    {.sec = POS_SEC_HAL,
     .key = "sim_printer_delay_ms",
     .type = CT_U32,
     FIELD(hal_sim_printer_delay_ms),
     .def = "20",
     .min = 0,
     .max = 60000,
     .desc = POS_DOC("Time the simulated printer takes per receipt, in milliseconds (0: at once, "
                     "for benchmarks).")},
    {.sec = POS_SEC_HAL,
     .key = "sim_decline_ending",
     .type = CT_STR,
     FIELD(hal_sim_decline_ending),
     .def = "13",
     .min = 0,
     .max = 15,
     .check = check_decline_ending,
     .allowed = "digits and '.', or empty for never",
     .desc =
         POS_DOC("The simulated pinpad declines amounts whose text ends so (12.13 with \"13\").")},
    {.sec = POS_SEC_HAL,
     .key = "sim_card_number",
     .type = CT_STR,
     FIELD(hal_sim_card_number),
     .def = "4111111111111111",
     .min = 12,
     .max = 19,
     .flags = F_NOECHO,
     .check = check_card_number,
     .allowed = "12..19 digits (a test card)",
     .desc = POS_DOC("The test card the simulated customer presents (not a secret: a public test "
                     "number); only its masked form ever leaves the pinpad driver.")},
    {.sec = POS_SEC_HAL,
     .key = "paper_width",
     .type = CT_U32,
     FIELD(hal_paper_width),
     .def = "42",
     .min = 20,
     .max = 48,
     .desc = POS_DOC("Receipt width in characters (32 for 58 mm paper, 42 or 48 for 80 mm).")},
    {.sec = POS_SEC_HAL,
     .key = "printer_model",
     .type = CT_STR,
     FIELD(hal_printer_model),
     .def = "generic",
     .min = 1,
     .max = 31,
     .check = check_printer_model,
     .allowed = "generic, tm-t20, tm-t88, legacy, esc-i, no-cut",
     .desc = POS_DOC("ESC/POS model: decides the cut command and QR support.")},
    {.sec = POS_SEC_HAL,
     .key = "codepage",
     .type = CT_STR,
     FIELD(hal_codepage),
     .def = "cp858",
     .min = 1,
     .max = 15,
     .check = check_codepage,
     .allowed = "ascii, cp437, cp858",
     .desc = POS_DOC("Code page for printer and display text (UTF-8 is transcoded, unknown "
                     "characters become '?').")},

    {.sec = POS_SEC_PAYMENT,
     .key = "max_amount",
     .type = CT_U32,
     FIELD(payment_max_amount),
     .flags = F_RELOAD,
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .desc =
         POS_DOC("Largest payment accepted, in major units of its currency; larger requests are "
                 "rejected as invalid.")},
    {.sec = POS_SEC_PAYMENT,
     .key = "pinpad_timeout_s",
     .type = CT_U32,
     FIELD(payment_pinpad_timeout_s),
     .def = "120",
     .min = 10,
     .max = 600,
     .desc = POS_DOC("Time the customer has at the pinpad before the payment is abandoned as "
                     "declined (timeout).")},
    {.sec = POS_SEC_PAYMENT,
     .key = "hmac_key_file",
     .type = CT_STR,
     FIELD(payment_hmac_key_file),
     .min = 0,
     .max = 200,
     .check = check_opt_abs_path,
     .allowed = "an absolute path to a file of mode 0600 or 0400",
     .def_doc = POS_DOC("(none: the agent refuses to start unless allow_unsigned = true)"),
     .example = POS_DOC("/etc/posagent/hmac.key"),
     .desc =
         POS_DOC("Key file for signed messages (docs/signing.md): one or two lines of 64..128 hex "
                 "digits, the first signs what the agent sends, both are accepted. Cloud messages "
                 "on every channel without a valid sig and a fresh ts are then refused.")},
    {.sec = POS_SEC_PAYMENT,
     .key = "allow_unsigned",
     .type = CT_BOOL,
     FIELD(payment_allow_unsigned),
     .def = "false",
     .env = "POSAGENT_ALLOW_UNSIGNED",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc =
         POS_DOC("Run without hmac_key_file, taking unsigned cloud messages (anyone who can "
                 "publish on payment:{id} can then make the till charge a card). Without it and "
                 "without a key file the agent refuses to start (exit 78). For a demo or a test.")},
    {.sec = POS_SEC_PAYMENT,
     .key = "signature_window_s",
     .type = CT_U32,
     FIELD(payment_signature_window_s),
     .flags = F_RELOAD,
     .def = "60",
     .min = 1,
     .max = 3600,
     .desc = POS_DOC("Largest difference between a signed message's ts and this terminal's clock, "
                     "either way; older or newer messages are refused as stale.")},
    {.sec = POS_SEC_PAYMENT,
     .key = "dedup_window_h",
     .type = CT_U32,
     FIELD(payment_dedup_window_h),
     .def = "168",
     .min = 1,
     .max = 8760,
     .desc = POS_DOC("Hours a transaction id is remembered after its first request: within them a "
                     "repeated PAYMENT_REQUESTED never charges the card again, whatever came in "
                     "between and across restarts.")},
    {.sec = POS_SEC_PAYMENT,
     .key = "dedup_max_ids",
     .type = CT_U32,
     FIELD(payment_dedup_max_ids),
     .def = "100000",
     .min = 1000,
     .max = 10000000,
     .desc =
         POS_DOC("Most transaction ids remembered (about 150 bytes of store each). An id is never "
                 "forgotten inside the window: when all are, new payments are refused "
                 "(PAYMENT_REJECTED unavailable) until the oldest age out.")},

    {.sec = POS_SEC_STORE,
     .key = "path",
     .type = CT_STR,
     FIELD(store_path),
     .def = "/var/lib/posagent",
     .min = 1,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .desc =
         POS_DOC("Directory of the store (data.mdb, lock.mdb, posagent.lock, instance.id); a "
                 "corrupt data.mdb is moved aside to data.mdb.corrupt-<epoch> here, and payments "
                 "wait until it is salvaged or cleared (posagent store ...; docs/offline.md).")},
    {.sec = POS_SEC_STORE,
     .key = "map_size_mb",
     .type = CT_U32,
     FIELD(store_map_size_mb),
     .def = "64",
     .min = 1,
     .max = 4096,
     .desc = POS_DOC(
         "Largest size of the store file in MiB (the LMDB map; the file grows as needed).")},
    {.sec = POS_SEC_STORE,
     .key = "outbox_max_entries",
     .type = CT_U32,
     FIELD(store_outbox_max_entries),
     .def = "10000",
     .min = 1,
     .max = 10000000,
     .desc = POS_DOC("Most messages queued for Redis; beyond it the oldest non-payment ones are "
                     "dropped (payment outcomes never are).")},
    {.sec = POS_SEC_STORE,
     .key = "outbox_max_mb",
     .type = CT_U32,
     FIELD(store_outbox_max_mb),
     .def = "8",
     .min = 1,
     .max = 4096,
     .desc =
         POS_DOC("Most MiB of messages queued for Redis; same drop rule as outbox_max_entries.")},
    {.sec = POS_SEC_STORE,
     .key = "cache_max_mb",
     .type = CT_U32,
     FIELD(store_cache_max_mb),
     .def = "32",
     .min = 1,
     .max = 4096,
     .desc =
         POS_DOC("Budget of the local cache in MiB; beyond it expired entries are evicted first, "
                 "then the least recently used.")},
    {.sec = POS_SEC_STORE,
     .key = "cpu",
     .type = CT_INT,
     FIELD(store_cpu),
     .min = 0,
     .max = 1023,
     .def_doc = POS_DOC("(not pinned: the scheduler places the agent's threads)"),
     .example = POS_DOC("1"),
     .desc = POS_DOC("Runs the agent's threads (the event loop and the store writer) on this one "
                     "CPU. Every durable write crosses from one to the other and back; on one "
                     "CPU a crossing is a context switch instead of waking another CPU, which "
                     "took a quarter to a third off a payment's answer on a 2-vCPU machine "
                     "(docs/latency.md). Must be a CPU the service may use (CPUAffinity=); "
                     "a restart applies a change.")},

    {.sec = POS_SEC_CACHE,
     .key = "product_ttl_s",
     .type = CT_U32,
     FIELD(cache_product_ttl_s),
     .flags = F_RELOAD,
     .def = "7200",
     .min = 1,
     .max = 2592000,
     .desc = POS_DOC("Seconds a product:{id} copy counts as fresh; older ones are refetched when "
                     "online and still served when offline.")},
    {.sec = POS_SEC_CACHE,
     .key = "inventory_ttl_s",
     .type = CT_U32,
     FIELD(cache_inventory_ttl_s),
     .flags = F_RELOAD,
     .def = "300",
     .min = 1,
     .max = 2592000,
     .desc = POS_DOC("Seconds an inventory:{storeId}:{productId} copy counts as fresh.")},
    {.sec = POS_SEC_CACHE,
     .key = "user_ttl_s",
     .type = CT_U32,
     FIELD(cache_user_ttl_s),
     .flags = F_RELOAD,
     .def = "3600",
     .min = 1,
     .max = 2592000,
     .desc = POS_DOC("Seconds a user:{id} copy counts as fresh.")},
    {.sec = POS_SEC_CACHE,
     .key = "session_ttl_s",
     .type = CT_U32,
     FIELD(cache_session_ttl_s),
     .flags = F_RELOAD,
     .def = "86400",
     .min = 1,
     .max = 2592000,
     .desc = POS_DOC("Seconds a session:{id} copy counts as fresh.")},
    {.sec = POS_SEC_CACHE,
     .key = "warm_interval_s",
     .type = CT_U32,
     FIELD(cache_warm_interval_s),
     .flags = F_RELOAD,
     .def = "900",
     .min = 10,
     .max = 86400,
     .desc = POS_DOC(
         "Seconds between warm-ups of the products and the store's inventory (their index "
         "sets, SSCAN then MGET in batches; a set whose version is unchanged is skipped).")},
    {.sec = POS_SEC_CACHE,
     .key = "tracking",
     .type = CT_BOOL,
     FIELD(cache_tracking),
     .def = "true",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc = POS_DOC("Server-assisted invalidation (CLIENT TRACKING BCAST of the cached families): "
                     "a cached entry goes stale as soon as Redis reports its key changed. Off, an "
                     "entry stays fresh for its TTL unless a message names it; on a Redis Cluster "
                     "that saves a subscriber per terminal on every primary (docs/cluster.md).")},
    {.sec = POS_SEC_CACHE,
     .key = "max_value_bytes",
     .type = CT_U32,
     FIELD(cache_max_value_bytes),
     .def = "262144",
     .min = 1024,
     .max = 524288, /* the store's own limit, POS_CACHE_VALUE_MAX */
     .env = "POSAGENT_CACHE_MAX_VALUE_BYTES",
     .desc =
         POS_DOC("Largest value the agent reads from Redis, in bytes: a larger one is refused "
                 "(the local API answers an error naming this key) and never cached. It also "
                 "bounds what any Redis server may send: a longer bulk string drops the connection "
                 "before it is read.")},

    {.sec = POS_SEC_LOCAL,
     .key = "socket",
     .type = CT_STR,
     FIELD(local_socket),
     .def = "/run/posagent/agent.sock",
     .min = 1,
     .max = 107,
     .check = check_abs_path,
     .allowed = "an absolute path, at most 107 bytes",
     .desc = POS_DOC("Unix socket of the local API (mode 0660 with socket_group, else 0600); its "
                     "directory is created if missing, a stale socket file is replaced.")},
    {.sec = POS_SEC_LOCAL,
     .key = "socket_group",
     .type = CT_STR,
     FIELD(local_socket_group),
     .min = 0,
     .max = 31,
     .allowed = "a group name",
     .def_doc = POS_DOC("(none: only the agent's user and root may connect)"),
     .example = POS_DOC("pos"),
     .desc =
         POS_DOC("Group that may use the socket: the POS application's, never one that may read "
                 "this file (the agent refuses to start then). The socket and its directory are "
                 "given to it, also a directory systemd made (RuntimeDirectory=).")},
    {.sec = POS_SEC_LOCAL,
     .key = "max_clients",
     .type = CT_U32,
     FIELD(local_max_clients),
     .flags = F_RELOAD,
     .def = "64",
     .min = 1,
     .max = 1024,
     .desc =
         POS_DOC("Most local API connections at once. One more is let in by closing the least "
                 "recently active connection of the user holding the most (docs/local-api.md).")},
    {.sec = POS_SEC_LOCAL,
     .key = "client_rate",
     .type = CT_U32,
     FIELD(local_client_rate),
     .flags = F_RELOAD,
     .def = "1000",
     .min = 0,
     .max = 1000000,
     .desc = POS_DOC("Commands a second one local API client may sustain; over it, commands are "
                     "answered -BUSY with the time to wait. 0: no limit.")},
    {.sec = POS_SEC_LOCAL,
     .key = "client_burst",
     .type = CT_U32,
     FIELD(local_client_burst),
     .flags = F_RELOAD,
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .desc = POS_DOC("Commands a local API client may send at once on top of client_rate (its "
                     "bucket's size).")},
    {.sec = POS_SEC_LOCAL,
     .key = "commands_per_turn",
     .type = CT_U32,
     FIELD(local_commands_per_turn),
     .flags = F_RELOAD,
     .def = "256",
     .min = 1,
     .max = 65536,
     .desc = POS_DOC("Most local API commands run per event loop turn, all clients together, taken "
                     "round-robin; the rest wait for the next turn, after timers and other I/O.")},
    {.sec = POS_SEC_LOCAL,
     .key = "idle_timeout_s",
     .type = CT_U32,
     FIELD(local_idle_timeout_s),
     .flags = F_RELOAD,
     .def = "300",
     .min = 0,
     .max = 86400,
     .desc = POS_DOC("Seconds a local API client may go without a complete command before it is "
                     "closed (one waiting for a reply is not idle). 0: never.")},
    {.sec = POS_SEC_LOCAL,
     .key = "stall_timeout_s",
     .type = CT_U32,
     FIELD(local_stall_timeout_s),
     .flags = F_RELOAD,
     .def = "10",
     .min = 1,
     .max = 3600,
     .desc =
         POS_DOC("Seconds a local API client that has stopped reading may hold its replies: one "
                 "with 512 KiB of replies unread is paused (not read, its commands wait), and "
                 "closed when none of them was read for this long.")},
    {.sec = POS_SEC_LOCAL,
     .key = "password",
     .type = CT_STR,
     FIELD(local_password),
     .set_offset = offsetof(pos_config_t, local_password_set),
     .min = 1,
     .max = 255,
     .env = "POSAGENT_LOCAL_PASSWORD",
     .flags = F_SECRET,
     .allowed = "1 to 255 bytes",
     .def_doc = POS_DOC("(none: AUTH accepts any password)"),
     .example = POS_DOC("change-me"),
     .desc = POS_DOC("Password local API clients must give with AUTH (or HELLO ... AUTH) before "
                     "any other command; they are answered -NOAUTH until then. Compared in "
                     "constant time, never logged. Without it the socket's mode and group are "
                     "the only gate.")},
    {.sec = POS_SEC_LOCAL,
     .key = "password_file",
     .type = CT_STR,
     FIELD(local_password_file),
     .min = 0,
     .max = 200,
     .check = check_abs_path,
     .allowed = "an absolute path",
     .def_doc = POS_DOC("(none)"),
     .example = POS_DOC("/etc/posagent/local.password"),
     .desc = POS_DOC("File holding the local API password (one line); read at start, and "
                     "refused when other users may read it. Not together with password.")},

    {.sec = POS_SEC_INBOUND,
     .key = "payment_rate",
     .type = CT_U32,
     FIELD(inbound_payment_rate),
     .flags = F_RELOAD,
     .def = "20",
     .min = 1,
     .max = 1000000,
     .desc = POS_DOC(
         "Per second: payment:{terminalId} messages. A PAYMENT_REQUESTED over it is answered "
         "PAYMENT_REJECTED busy at once (duplicate for an id it has seen), without the state "
         "machine, a journal write or the card; a PAYMENT_CANCELLED of the running payment is "
         "still carried out; other messages over it are dropped and counted.")},
    {.sec = POS_SEC_INBOUND,
     .key = "payment_burst",
     .type = CT_U32,
     FIELD(inbound_payment_burst),
     .flags = F_RELOAD,
     .def = "100",
     .min = 1,
     .max = 10000000,
     .desc = POS_DOC("Burst of payment_rate: how many may come at once before the rate applies.")},
    {.sec = POS_SEC_INBOUND,
     .key = "inventory_rate",
     .type = CT_U32,
     FIELD(inbound_inventory_rate),
     .flags = F_RELOAD,
     .def = "200",
     .min = 1,
     .max = 1000000,
     .desc =
         POS_DOC("Per second: inventory:{storeId} messages. One over it is not applied: its key is "
                 "marked stale instead, so the next read asks Redis.")},
    {.sec = POS_SEC_INBOUND,
     .key = "inventory_burst",
     .type = CT_U32,
     FIELD(inbound_inventory_burst),
     .flags = F_RELOAD,
     .def = "2000",
     .min = 1,
     .max = 10000000,
     .desc =
         POS_DOC("Burst of inventory_rate: how many may come at once before the rate applies.")},
    {.sec = POS_SEC_INBOUND,
     .key = "system_rate",
     .type = CT_U32,
     FIELD(inbound_system_rate),
     .flags = F_RELOAD,
     .def = "20",
     .min = 1,
     .max = 1000000,
     .desc = POS_DOC(
         "Per second: system:alerts messages. A CACHE_INVALIDATE over it marks every cached "
         "entry stale (at most once a second); an alert over it is dropped and counted.")},
    {.sec = POS_SEC_INBOUND,
     .key = "system_burst",
     .type = CT_U32,
     FIELD(inbound_system_burst),
     .flags = F_RELOAD,
     .def = "100",
     .min = 1,
     .max = 10000000,
     .desc = POS_DOC("Burst of system_rate: how many may come at once before the rate applies.")},
    {.sec = POS_SEC_INBOUND,
     .key = "invalidation_rate",
     .type = CT_U32,
     FIELD(inbound_invalidation_rate),
     .flags = F_RELOAD,
     .def = "2000",
     .min = 1,
     .max = 1000000,
     .desc = POS_DOC(
         "Per second: keys Redis reports changed (client-side tracking). Past it every cached"
         " entry is marked stale once, and further reports wait for the bucket to refill.")},
    {.sec = POS_SEC_INBOUND,
     .key = "invalidation_burst",
     .type = CT_U32,
     FIELD(inbound_invalidation_burst),
     .flags = F_RELOAD,
     .def = "20000",
     .min = 1,
     .max = 10000000,
     .desc =
         POS_DOC("Burst of invalidation_rate: how many may come at once before the rate applies.")},
    {.sec = POS_SEC_METRICS,
     .key = "textfile",
     .type = CT_STR,
     FIELD(metrics_textfile),
     .min = 0,
     .max = 200,
     .check = check_prom_path,
     .allowed = "an absolute path ending in .prom, or empty",
     .def_doc = POS_DOC("(none: no file)"),
     .example = POS_DOC("/var/lib/prometheus/node-exporter/posagent.prom"),
     .desc = POS_DOC("Prometheus text file for node_exporter's textfile collector, replaced "
                     "atomically (a temporary file beside it, then rename) every interval_s. The "
                     "unit lets the agent write only its own directories: add this one with a "
                     "drop-in (ReadWritePaths=, docs/contract.md \"Metrics\").")},
    {.sec = POS_SEC_METRICS,
     .key = "interval_s",
     .type = CT_U32,
     FIELD(metrics_interval_s),
     .def = "15",
     .min = 1,
     .max = 3600,
     .desc = POS_DOC("Seconds between writes of the text file.")},
    {.sec = POS_SEC_METRICS,
     .key = "redis_interval_s",
     .type = CT_U32,
     FIELD(metrics_redis_interval_s),
     .def = "60",
     .min = 60,
     .max = 86400,
     .desc = POS_DOC("Seconds between snapshots of the metrics in the hash terminal:{id}:metrics "
                     "(HSET, with a TTL of three intervals), and at every connect.")},
    {.sec = POS_SEC_METRICS,
     .key = "diagnostics",
     .type = CT_BOOL,
     FIELD(metrics_diagnostics),
     .def = "true",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc =
         POS_DOC("Answer DIAG_REQUEST messages on diag:{id} (signed ones when a key is set; one "
                 "every 10 s at most) with the INFO text and the last warnings.")},

    {.sec = POS_SEC_LOG,
     .key = "level",
     .type = CT_ENUM,
     FIELD(log_level),
     .flags = F_RELOAD,
     .def = "info",
     .enum_parse = pos_log_level_parse,
     .enum_name = level_name,
     .allowed = "error, warn, info, debug",
     .desc = POS_DOC("Most verbose level that is logged.")},
    {.sec = POS_SEC_LOG,
     .key = "syslog",
     .type = CT_BOOL,
     FIELD(log_syslog),
     .def = "false",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc = POS_DOC("Log to syslog (facility daemon) instead of stderr.")},

    {.sec = POS_SEC_SECURITY,
     .key = "user",
     .type = CT_STR,
     FIELD(security_user),
     .min = 0,
     .max = 31,
     .check = check_user,
     .allowed = "a user name",
     .def_doc = POS_DOC("(none: keep the user it was started as)"),
     .example = POS_DOC("posagent"),
     .desc = POS_DOC("Started as root, the agent switches to this user (and its groups) once the "
                     "store, the local socket and the devices are open, and cannot regain root.")},
    {.sec = POS_SEC_SECURITY,
     .key = "allow_root",
     .type = CT_BOOL,
     FIELD(security_allow_root),
     .def = "false",
     .env = "POSAGENT_ALLOW_ROOT",
     .allowed = "true, false, yes, no, on, off, 1, 0",
     .desc =
         POS_DOC("Let the agent keep running as root when no user is set; without it, it refuses "
                 "to start as root (exit 78).")},
};

_Static_assert(sizeof(pos_schema_items) / sizeof(pos_schema_items[0]) <= POS_CONFIG_ITEMS_MAX,
               "pos_config_t.origin has a slot per row");

const size_t pos_schema_nsections = sizeof(pos_schema_sections) / sizeof(pos_schema_sections[0]);
_Static_assert(sizeof(pos_schema_sections) / sizeof(pos_schema_sections[0]) == POS_SEC_SECURITY + 1,
               "a section without its pos_schema_sec_t, or the other way round");
const size_t pos_schema_nitems = sizeof(pos_schema_items) / sizeof(pos_schema_items[0]);

/* ---- lookups ---------------------------------------------------------- */

const char *pos_schema_allowed(const pos_schema_item_t *it, char *buf, size_t len)
{
    if (it->allowed != NULL) {
        return it->allowed;
    }
    snprintf(buf, len, "%lld..%lld", it->min, it->max);
    return buf;
}

const pos_schema_section_t *pos_schema_find_section(const char *name)
{
    for (size_t i = 0; i < pos_schema_nsections; i++) {
        if (strcmp(pos_schema_sections[i].name, name) == 0) {
            return &pos_schema_sections[i];
        }
    }
    return NULL;
}

int pos_schema_find_item(const char *section, const char *key)
{
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        if (strcmp(pos_schema_section_of(&pos_schema_items[i]), section) == 0 &&
            strcmp(pos_schema_items[i].key, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void pos_schema_list_sections(char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pos_schema_nsections && o < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", pos_schema_sections[i].name);
        o += n > 0 ? (size_t)n : 0;
    }
}

void pos_schema_list_keys(const char *section, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pos_schema_nitems && o < len; i++) {
        if (strcmp(pos_schema_section_of(&pos_schema_items[i]), section) == 0) {
            int n = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", pos_schema_items[i].key);
            o += n > 0 ? (size_t)n : 0;
        }
    }
}
