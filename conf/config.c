#include "conf/config.h"
#include "conf/schema.h"

#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The loader: defaults, then the INI file through inih, then the
 * environment, then the checks across fields and files, all driven by the
 * schema (conf/schema.h); and the dump for --check-config. The example
 * file and the reference are written by conf/config_doc.c.
 */

/* ---- messages --------------------------------------------------------- */

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

/* ---- defaults --------------------------------------------------------- */

void pos_config_defaults(pos_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        pos_schema_set_default(cfg, &pos_schema_items[i]);
    }
    /* The derived endpoint for the default URL; cannot fail (tested). */
    if (pos_redis_url_parse(cfg->redis_url, &cfg->redis, NULL, 0) == 0 && cfg->redis.db < 0) {
        cfg->redis.db = 0;
    }
}

/* ---- loading ---------------------------------------------------------- */

/* Where a row's value was set: a line of the file, or the environment. */
typedef struct load_seen {
    int line; /* 0: not in the file */
    bool env;
} load_seen_t;

typedef struct load_ctx {
    pos_config_t *cfg;
    pos_config_error_t *err;
    const char *name; /* file name for messages */
    FILE *in;
    int line; /* number of the line last handed to inih */
    bool eof;
    int rc;             /* first error, 0 while none */
    load_seen_t seen[]; /* one per row of pos_schema_items[] */
} load_ctx_t;

/* Where a row's current value comes from, for cross-field messages. */
static const char *origin(const load_ctx_t *c, size_t i, char *buf, size_t len)
{
    if (c->seen[i].env) {
        snprintf(buf, len, "environment %s", pos_schema_items[i].env);
    } else if (c->seen[i].line > 0) {
        snprintf(buf, len, "%s:%d", c->name, c->seen[i].line);
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
    if (pos_schema_find_section(name) == NULL || (size_t)(close - str - 1) >= sizeof(name)) {
        pos_schema_list_sections(list, sizeof(list));
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

static void value_error(load_ctx_t *c, const pos_schema_item_t *it, const char *value,
                        const char *why)
{
    char allowed[64], ex[64];
    const char *al = pos_schema_allowed(it, allowed, sizeof(allowed));
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
    if (pos_schema_find_section(section) == NULL) {
        pos_schema_list_sections(list, sizeof(list));
        set_msg(c->err, "%s:%d: [%s]: unknown section (allowed: %s)", c->name, c->line,
                excerpt(section, ex, sizeof(ex)), list);
        return 0;
    }
    int i = pos_schema_find_item(section, name);
    if (i < 0) {
        pos_schema_list_keys(section, list, sizeof(list));
        set_msg(c->err, "%s:%d: [%s] %s: unknown key (allowed: %s)", c->name, c->line,
                excerpt(section, ex, sizeof(ex)), excerpt(name, ex2, sizeof(ex2)), list);
        return 0;
    }
    const pos_schema_item_t *it = &pos_schema_items[i];
    if (c->seen[i].line != 0) {
        set_msg(c->err, "%s:%d: [%s] %s: duplicate key (first set on line %d)", c->name, c->line,
                it->section, it->key, c->seen[i].line);
        return 0;
    }
    if (pos_schema_set(c->cfg, it, value, why, sizeof(why)) != 0) {
        value_error(c, it, value, why);
        return 0;
    }
    c->seen[i].line = c->line;
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

    for (size_t i = 0; i < pos_schema_nitems; i++) {
        const pos_schema_item_t *it = &pos_schema_items[i];
        const char *value;
        if (it->env == NULL || (value = env_lookup(envp, it->env)) == NULL) {
            continue;
        }
        if (pos_schema_set(c->cfg, it, value, why, sizeof(why)) != 0) {
            const char *al = pos_schema_allowed(it, allowed, sizeof(allowed));
            if (it->flags & (F_SECRET | F_NOECHO)) {
                set_msg(c->err, "environment %s: %s (allowed: %s)", it->env, why, al);
            } else {
                set_msg(c->err, "environment %s=\"%s\": %s (allowed: %s)", it->env,
                        excerpt(value, ex, sizeof(ex)), why, al);
            }
            return -EINVAL;
        }
        c->seen[i].env = true;
    }
    return 0;
}

static int check_required(load_ctx_t *c)
{
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        const pos_schema_item_t *it = &pos_schema_items[i];
        if ((it->flags & F_REQUIRED) && !pos_schema_is_set(c->cfg, it)) {
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
    int i = pos_schema_find_item(section, key);
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
    if (cfg->redis_cluster_nodes[0] != '\0' && cfg->redis_sentinels[0] != '\0') {
        set_msg(c->err, "%s: [redis] cluster_nodes: not with [redis] sentinels (a cluster fails "
                        "over by itself)",
                origin(c, index_of("redis", "cluster_nodes"), where, sizeof(where)));
        return -EINVAL;
    }
    if (cfg->redis_cluster_nodes[0] == '\0' && cfg->redis_pubsub == POS_PUBSUB_SHARDED) {
        set_msg(c->err, "%s: [redis] pubsub: sharded needs [redis] cluster_nodes",
                origin(c, index_of("redis", "pubsub"), where, sizeof(where)));
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
    cfg->ncluster_nodes = 0;
    if (cfg->redis_cluster_nodes[0] != '\0') {
        if (pos_addr_list_parse(cfg->redis_cluster_nodes, 6379, "cluster node", cfg->cluster_nodes,
                                POS_CLUSTER_NODES_MAX, &cfg->ncluster_nodes, why,
                                sizeof(why)) != 0) {
            /* Unreachable: the list was checked when it was set. */
            set_msg(c->err, "%s: [redis] cluster_nodes: invalid: %s",
                    origin(c, index_of("redis", "cluster_nodes"), where, sizeof(where)), why);
            return -EINVAL;
        }
        if (cfg->redis.db != 0) {
            /* A cluster has database 0 only. */
            size_t id = index_of("redis", cfg->redis_db >= 0 ? "db" : "url");
            set_msg(c->err, "%s: [redis] %s: database %d, but a Redis Cluster has database 0 only",
                    origin(c, id, where, sizeof(where)), cfg->redis_db >= 0 ? "db" : "url",
                    cfg->redis.db);
            return -EINVAL;
        }
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
    c = calloc(1, sizeof(*c) + pos_schema_nitems * sizeof(c->seen[0]));
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
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        const pos_schema_item_t *it = &pos_schema_items[i];
        if (cur == NULL || strcmp(cur, it->section) != 0) {
            cur = it->section;
            fprintf(out, "\n[%s]\n", cur);
        }
        if (!pos_schema_is_set(cfg, it)) {
            fprintf(out, "; %s = (not set)\n", it->key);
            continue;
        }
        fprintf(out, "%s = %s\n", it->key, pos_schema_format(cfg, it, buf, sizeof(buf)));
    }
    pos_redis_url_format_masked(&cfg->redis, buf, sizeof(buf));
    fprintf(out, "\n; effective Redis endpoint: %s\n", buf);
}
