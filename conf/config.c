#include "conf/config.h"
#include "conf/schema.h"

#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/priv.h"

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

/* Where a row's value was set: a line of a file, or the environment. */
typedef struct load_seen {
    int line; /* 0: not in a file */
    int file; /* the file's index in cfg->files (with line > 0) */
    bool env;
} load_seen_t;

typedef struct load_ctx {
    pos_config_t *cfg;
    pos_config_error_t *err;
    const char *name;      /* file name for messages (the one being read) */
    const char *main_name; /* the main file's, for messages about the whole */
    int file;              /* index of the file being read in cfg->files, -1: a stream */
    FILE *in;
    int line; /* number of the line last handed to inih */
    bool eof;
    int rc;                                 /* first error, 0 while none */
    uid_t dropin_uid[POS_CONFIG_FILES_MAX]; /* owners, checked once the user is known */
    const char *dropin_dir;                 /* where drop-ins were looked for, NULL: nowhere */
    load_seen_t seen[];                     /* one per row of pos_schema_items[] */
} load_ctx_t;

/* Where a row's current value comes from, for cross-field messages. */
static const char *origin(const load_ctx_t *c, size_t i, char *buf, size_t len)
{
    if (c->seen[i].env) {
        snprintf(buf, len, "environment %s", pos_schema_items[i].env);
    } else if (c->seen[i].line > 0 && c->seen[i].file >= 0) {
        snprintf(buf, len, "%s:%d", c->cfg->files[c->seen[i].file].path, c->seen[i].line);
    } else if (c->seen[i].line > 0) {
        snprintf(buf, len, "%s:%d", c->main_name, c->seen[i].line);
    } else {
        snprintf(buf, len, "%s", c->main_name);
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
        set_msg(c->err, "%s:%d: [%s] %s: %s (allowed: %s)", c->name, c->line,
                pos_schema_section_of(it), it->key, why, al);
    } else {
        /* "value": problem, as for the environment: a check's reason need
         * not read after "is" ("must be an absolute path"). */
        set_msg(c->err, "%s:%d: [%s] %s: \"%s\": %s (allowed: %s)", c->name, c->line,
                pos_schema_section_of(it), it->key, excerpt(value, ex, sizeof(ex)), why, al);
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
    /* Twice in one file is a mistake; again in a later drop-in replaces. */
    if (c->seen[i].line != 0 && c->seen[i].file == c->file) {
        set_msg(c->err, "%s:%d: [%s] %s: duplicate key (first set on line %d)", c->name, c->line,
                pos_schema_section_of(it), it->key, c->seen[i].line);
        return 0;
    }
    if (pos_schema_set(c->cfg, it, value, why, sizeof(why)) != 0) {
        value_error(c, it, value, why);
        return 0;
    }
    c->seen[i].line = c->line;
    c->seen[i].file = c->file;
    if (c->file >= 0 && (it->flags & (F_SECRET | F_NOECHO)) != 0) {
        c->cfg->files[c->file].secrets = true;
    }
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
            if (strcmp(pos_schema_section_of(it), "terminal") == 0) {
                /* The identity is this till's alone: never a shipped default. */
                set_msg(c->err,
                        "%s: this till's identity is not set ([terminal] %s is required): give "
                        "each till its own ids in a drop-in, %s/10-identity.ini holding "
                        "\"[terminal]\" \"id = <terminal id>\" \"store_id = <store id>\" (root "
                        "0644 or 0640), or in the environment (POSAGENT_TERMINAL_ID, "
                        "POSAGENT_STORE_ID); see README.md \"Provisioning a till\"",
                        c->main_name, it->key,
                        c->dropin_dir != NULL ? c->dropin_dir : "/etc/posagent/posagent.d");
            } else if (it->env != NULL) {
                set_msg(c->err, "%s: [%s] %s is required (or set %s)", c->main_name,
                        pos_schema_section_of(it), it->key, it->env);
            } else {
                set_msg(c->err, "%s: [%s] %s is required", c->main_name, pos_schema_section_of(it),
                        it->key);
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
        set_msg(c->err,
                "%s: [redis] cluster_nodes: not with [redis] sentinels (a cluster fails "
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

/* A password_file: one line, read into out (cap bytes). The buffer is
 * wiped; the password is never quoted in a message. "section" names the
 * key in messages; "password" is the key it may not be combined with. */
static int load_secret_file(load_ctx_t *c, const char *section, const char *path, bool pw_set,
                            char *out, size_t cap)
{
    char buf[POS_URL_PASS_MAX + 2];
    char why[400], where[300], other[300];
    size_t n = 0;
    int fd, rc = 0;
    size_t ip = index_of(section, "password_file");

    if (path[0] == '\0') {
        return 0;
    }
    origin(c, ip, where, sizeof(where));
    if (pw_set) {
        set_msg(c->err, "%s: [%s] password_file: not together with a password (set in %s)", where,
                section, origin(c, index_of(section, "password"), other, sizeof(other)));
        return -EINVAL;
    }
    fd = open_checked(path, true, why, sizeof(why));
    if (fd < 0) {
        set_msg(c->err, "%s: [%s] password_file: %s", where, section, why);
        return -EINVAL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            set_msg(c->err, "%s: [%s] password_file: cannot read %s: %s", where, section, path,
                    strerror(e));
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
        set_msg(c->err, "%s: [%s] password_file: too long (max %d bytes)", where, section,
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
    if (n == 0 || n > POS_URL_PASS_MAX - 1 || n >= cap || memchr(buf, '\n', n) != NULL ||
        memchr(buf, '\0', n) != NULL) {
        set_msg(c->err,
                "%s: [%s] password_file: must hold one non-empty line of at most %d "
                "bytes",
                where, section, POS_URL_PASS_MAX - 1);
        rc = -EINVAL;
        goto out;
    }
    explicit_bzero(out, cap);
    memcpy(out, buf, n);
    out[n] = '\0';
out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* [redis] password_file, into the effective endpoint. */
static int load_password_file(load_ctx_t *c)
{
    pos_config_t *cfg = c->cfg;

    return load_secret_file(c, "redis", cfg->redis_password_file, cfg->redis_password_set,
                            cfg->redis.password, sizeof(cfg->redis.password));
}

/* [local] password_file, into local_password (which then counts as set). */
static int load_local_password_file(load_ctx_t *c)
{
    pos_config_t *cfg = c->cfg;
    int rc = load_secret_file(c, "local", cfg->local_password_file, cfg->local_password_set,
                              cfg->local_password, sizeof(cfg->local_password));

    if (rc == 0 && cfg->local_password_file[0] != '\0') {
        cfg->local_password_set = true;
    }
    return rc;
}

/* [tls]: consistent with the URL's scheme, and every file readable now
 * rather than at the first connection. */
static int check_tls(load_ctx_t *c)
{
    pos_config_t *cfg = c->cfg;
    char why[400], where[300];
    static const char files[][10] = {"ca_file", "cert_file", "key_file"};
    const char *values[] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file};

    if (!cfg->redis.tls) {
        static const char keys[][12] = {"ca_file", "cert_file", "key_file", "server_name"};
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

/*
 * Opens a configuration file for reading: a regular file only (with
 * "nofollow", not a symbolic link either). Opened without blocking first, so
 * that a FIFO with no writer (or a device) is refused at once instead of
 * hanging the agent. Returns 0 with *in and *st set, or a negative errno
 * with err set.
 */
static int open_config(const char *path, bool nofollow, FILE **in, struct stat *st,
                       pos_config_error_t *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    int e;

    if (fd < 0) {
        e = errno;
        if (e == ELOOP && nofollow) {
            set_msg(err, "%s: a symbolic link: a drop-in must be a regular file", path);
            return -EINVAL;
        }
        set_msg(err, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, st) != 0) {
        e = errno;
        set_msg(err, "%s: cannot open: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st->st_mode)) {
        set_msg(err, "%s: not a regular file (%s): a configuration file must be one", path,
                S_ISFIFO(st->st_mode)   ? "a FIFO"
                : S_ISDIR(st->st_mode)  ? "a directory"
                : S_ISSOCK(st->st_mode) ? "a socket"
                                        : "a device");
        close(fd);
        return -EINVAL;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
        (*in = fdopen(fd, "r")) == NULL) {
        e = errno;
        set_msg(err, "%s: cannot open: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    return 0;
}

/* Adds path to cfg->files; returns its index, or -ENOSPC. */
static int add_file(pos_config_t *cfg, const char *path, bool dropin)
{
    if (cfg->nfiles == POS_CONFIG_FILES_MAX || strlen(path) >= POS_CONFIG_PATH_MAX) {
        return -ENOSPC;
    }
    pos_config_file_t *f = &cfg->files[cfg->nfiles];
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->dropin = dropin;
    return (int)cfg->nfiles++;
}

/* Reads one more file (a drop-in): its own line numbers and duplicates. */
static int load_one(load_ctx_t *c, FILE *in, int file)
{
    c->in = in;
    c->file = file;
    c->name = c->cfg->files[file].path;
    c->line = 0;
    c->eof = false;
    return load_file(c);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A drop-in's name: "*.ini", not hidden. */
static bool dropin_name(const char *n)
{
    size_t len = strlen(n);
    return n[0] != '.' && len > 4 && strcmp(n + len - 4, ".ini") == 0;
}

/*
 * Reads the drop-ins of dir in name order (see pos_config_load_dir()):
 * 0 when there are none or all loaded, or the first error.
 */
static int load_dropins(load_ctx_t *c, const char *dir)
{
    char *names[POS_CONFIG_FILES_MAX];
    size_t n = 0;
    struct dirent *de;
    int rc = 0;
    DIR *d = opendir(dir);

    if (d == NULL) {
        if (errno == ENOENT) {
            return 0; /* no drop-ins */
        }
        int e = errno;
        set_msg(c->err, "%s: cannot read the drop-in directory: %s", dir, strerror(e));
        return -e;
    }
    while ((de = readdir(d)) != NULL) {
        if (!dropin_name(de->d_name)) {
            continue;
        }
        if (n == POS_CONFIG_FILES_MAX - 1) {
            set_msg(c->err, "%s: more than %d drop-ins", dir, POS_CONFIG_FILES_MAX - 1);
            rc = -E2BIG;
            break;
        }
        if ((names[n] = strdup(de->d_name)) == NULL) {
            set_msg(c->err, "%s: out of memory", dir);
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    /* Byte order, whatever the locale: 10-identity.ini before 20-secrets.ini. */
    qsort(names, n, sizeof(names[0]), name_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[POS_CONFIG_PATH_MAX];
        struct stat st;
        FILE *in = NULL;
        int file;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path) ||
            (file = add_file(c->cfg, path, true)) < 0) {
            set_msg(c->err, "%s/%s: path too long", dir, names[i]);
            rc = -ENAMETOOLONG;
            break;
        }
        rc = open_config(path, true, &in, &st, c->err);
        if (rc != 0) {
            break;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
            set_msg(c->err,
                    "%s: writable by %s (mode %04o): a drop-in may set this till's identity and "
                    "secrets; chmod go-w it",
                    path, (st.st_mode & S_IWOTH) ? "everybody" : "its group",
                    (unsigned)(st.st_mode & 07777));
            fclose(in);
            rc = -EPERM;
            break;
        }
        c->dropin_uid[file] = st.st_uid;
        rc = load_one(c, in, file);
        fclose(in);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    return rc;
}

/* A drop-in's owner: root, the user running now, or [security] user. */
static int check_dropin_owners(load_ctx_t *c)
{
    uid_t user = (uid_t)-1;
    gid_t gid;

    if (c->cfg->security_user[0] != '\0' &&
        pos_priv_lookup(c->cfg->security_user, &user, &gid) != 0) {
        user = (uid_t)-1; /* reported by whoever switches to it */
    }
    for (size_t i = 0; i < c->cfg->nfiles; i++) {
        uid_t uid = c->dropin_uid[i];
        if (!c->cfg->files[i].dropin || uid == 0 || uid == geteuid() || uid == user) {
            continue;
        }
        set_msg(c->err,
                "%s: owned by uid %u: a drop-in must belong to root or to the user the agent "
                "runs as",
                c->cfg->files[i].path, (unsigned)uid);
        return -EPERM;
    }
    return 0;
}

/* The drop-in directory of a main file, beside it and named after it:
 * /etc/posagent/posagent.ini -> /etc/posagent/posagent.d. */
static void dropin_dir_of(const char *path, char *out, size_t len)
{
    size_t n = strlen(path);

    if (n > 4 && strcmp(path + n - 4, ".ini") == 0) {
        n -= 4;
    }
    snprintf(out, len, "%.*s.d", (int)n, path);
}

/* Keeps in cfg where each row's value came from. */
static void keep_origins(load_ctx_t *c)
{
    for (size_t i = 0; i < pos_schema_nitems && i < POS_CONFIG_ITEMS_MAX; i++) {
        pos_config_origin_t *o = &c->cfg->origin[i];
        memset(o, 0, sizeof(*o));
        if (c->seen[i].env) {
            o->from = POS_CONFIG_FROM_ENV;
        } else if (c->seen[i].line > 0 && c->seen[i].file >= 0) {
            o->from = POS_CONFIG_FROM_FILE;
            o->file = (uint8_t)c->seen[i].file;
            o->line = c->seen[i].line > UINT16_MAX ? UINT16_MAX : (uint16_t)c->seen[i].line;
        }
    }
}

/* Everything after the file(s): the environment, then the checks. */
static int load_rest(load_ctx_t *c, char *const *envp)
{
    int rc = 0;

    if (envp != NULL) {
        rc = load_env(c, envp);
    }
    if (rc == 0) {
        rc = check_dropin_owners(c);
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
        rc = load_local_password_file(c);
    }
    if (rc == 0) {
        rc = check_tls(c);
    }
    if (rc == 0) {
        keep_origins(c);
    }
    return rc;
}

static load_ctx_t *ctx_new(pos_config_t *cfg, pos_config_error_t *err, const char *name)
{
    load_ctx_t *c = calloc(1, sizeof(*c) + pos_schema_nitems * sizeof(c->seen[0]));

    if (c == NULL) {
        set_msg(err, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    c->err = err;
    c->name = name != NULL ? name : "(no configuration file)";
    c->main_name = c->name;
    c->file = -1;
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        c->seen[i].file = -1;
    }
    return c;
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
    c = ctx_new(cfg, err, name);
    if (c == NULL) {
        return -ENOMEM;
    }
    pos_config_defaults(cfg);
    c->in = in;
    rc = load_file(c);
    if (rc == 0) {
        rc = load_rest(c, envp);
    }
    free(c);
    if (rc != 0) {
        pos_config_wipe(cfg);
    }
    return rc;
}

int pos_config_load_dir(pos_config_t *cfg, const char *path, const char *dropin_dir,
                        char *const *envp, pos_config_error_t *err)
{
    pos_config_error_t scratch;
    char derived[POS_CONFIG_PATH_MAX];
    struct stat st;
    load_ctx_t *c;
    FILE *in = NULL;
    int rc = 0;

    if (err == NULL) {
        err = &scratch;
    }
    err->msg[0] = '\0';
    pos_config_defaults(cfg);
    c = ctx_new(cfg, err, path);
    if (c == NULL) {
        return -ENOMEM;
    }
    if (dropin_dir == NULL && path != NULL) {
        dropin_dir_of(path, derived, sizeof(derived));
        dropin_dir = derived;
    }
    c->dropin_dir = dropin_dir != NULL && dropin_dir[0] != '\0' ? dropin_dir : NULL;
    if (path != NULL) {
        int file = add_file(cfg, path, false);
        rc = file < 0 ? -ENAMETOOLONG : open_config(path, false, &in, &st, err);
        if (file < 0) {
            set_msg(err, "%s: path too long", path);
        }
        if (rc == 0) {
            rc = load_one(c, in, file);
            fclose(in);
        }
    }
    if (rc == 0 && c->dropin_dir != NULL) {
        rc = load_dropins(c, c->dropin_dir);
    }
    if (rc == 0) {
        rc = load_rest(c, envp);
    }
    free(c);
    if (rc != 0) {
        pos_config_wipe(cfg);
    }
    return rc;
}

int pos_config_load(pos_config_t *cfg, const char *path, char *const *envp, pos_config_error_t *err)
{
    return pos_config_load_dir(cfg, path, NULL, envp, err);
}

size_t pos_config_changes(const pos_config_t *running, const pos_config_t *next,
                          pos_config_change_fn fn, void *ctx)
{
    size_t n = 0;

    for (size_t i = 0; i < pos_schema_nitems; i++) {
        const pos_schema_item_t *it = &pos_schema_items[i];
        if (pos_schema_differs(running, next, it)) {
            n++;
            if (fn != NULL) {
                fn(ctx, pos_schema_section_of(it), it->key, (it->flags & F_RELOAD) != 0);
            }
        }
    }
    return n;
}

void pos_config_apply_reloadable(pos_config_t *running, const pos_config_t *next)
{
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        const pos_schema_item_t *it = &pos_schema_items[i];
        /* Strings are pointed at by the subsystems that use them: none is
         * reloadable (the schema test holds that). */
        if ((it->flags & F_RELOAD) != 0 && it->type != CT_STR) {
            pos_schema_copy(running, next, it);
        }
    }
}

bool pos_config_reloadable(const char *section, const char *key)
{
    int i = pos_schema_find_item(section, key);
    return i >= 0 && (pos_schema_items[i].flags & F_RELOAD) != 0;
}

void pos_config_wipe(pos_config_t *cfg)
{
    explicit_bzero(cfg->redis_password, sizeof(cfg->redis_password));
    explicit_bzero(cfg->redis_url, sizeof(cfg->redis_url));
    explicit_bzero(cfg->redis.password, sizeof(cfg->redis.password));
    explicit_bzero(cfg->redis_sentinel_password, sizeof(cfg->redis_sentinel_password));
    explicit_bzero(cfg->local_password, sizeof(cfg->local_password));
}

/* ---- output ----------------------------------------------------------- */

void pos_config_dump(const pos_config_t *cfg, FILE *out)
{
    char buf[600];
    const char *cur = NULL;

    fprintf(out, "; posagent effective configuration (secrets masked)\n");
    for (size_t i = 0; i < cfg->nfiles; i++) {
        fprintf(out, "; read %s%s\n", cfg->files[i].path, cfg->files[i].dropin ? " (drop-in)" : "");
    }
    for (size_t i = 0; i < pos_schema_nitems; i++) {
        const pos_schema_item_t *it = &pos_schema_items[i];
        const pos_config_origin_t *o = i < POS_CONFIG_ITEMS_MAX ? &cfg->origin[i] : NULL;
        char from[POS_CONFIG_PATH_MAX + 32] = "";
        if (cur == NULL || strcmp(cur, pos_schema_section_of(it)) != 0) {
            cur = pos_schema_section_of(it);
            fprintf(out, "\n[%s]\n", cur);
        }
        if (!pos_schema_is_set(cfg, it)) {
            fprintf(out, "; %s = (not set)\n", it->key);
            continue;
        }
        /* Which file and line set it (the last one, drop-ins included). */
        if (o != NULL && o->from == POS_CONFIG_FROM_FILE && o->file < cfg->nfiles) {
            snprintf(from, sizeof(from), "%s:%u", cfg->files[o->file].path, (unsigned)o->line);
        } else if (o != NULL && o->from == POS_CONFIG_FROM_ENV && it->env != NULL) {
            snprintf(from, sizeof(from), "environment %s", it->env);
        }
        pos_schema_format(cfg, it, buf, sizeof(buf));
        if (from[0] == '\0') {
            fprintf(out, "%s = %s\n", it->key, buf);
        } else if (strlen(it->key) + strlen(buf) + strlen(from) + 8 < INI_MAX_LINE) {
            /* " ;" starts a comment after a value: the dump loads again. */
            fprintf(out, "%s = %s  ; %s\n", it->key, buf, from);
        } else {
            fprintf(out, "; %s\n%s = %s\n", from, it->key, buf);
        }
    }
    pos_redis_url_format_masked(&cfg->redis, buf, sizeof(buf));
    fprintf(out, "\n; effective Redis endpoint: %s\n", buf);
}
