#include "agent/api/cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "agent/api/localapi.h"

#define CLI_TIMEOUT_S 5
#define CLI_ARGS_MAX  4 /* words of the longest local API command the CLI sends */

/* What one run was asked. */
typedef struct cli_req {
    const char *socket_path;
    bool json;
    bool all; /* journal --all */
    int argc; /* the command's words, options taken out */
    char *argv[CLI_ARGS_MAX];
    FILE *out, *err;
} cli_req_t;

static void cli_usage(FILE *err)
{
    fputs("usage: posagent status [--json] [--socket PATH]\n"
          "       posagent cache get KEY [--json] [--socket PATH]\n"
          "       posagent outbox [--json] [--socket PATH]\n"
          "       posagent journal [--all] [--json] [--socket PATH]\n"
          "       posagent devices [test-print | test-display] [--json] [--socket PATH]\n",
          err);
}

/* ---- output ------------------------------------------------------------------- */

/* A JSON number for text that is one in full ("42", "-1.5", "3e2"), else a
 * string: INFO's values are both. */
static cJSON *cli_json_value(const char *text, size_t n)
{
    char buf[64];
    char *end;
    bool numeric = n > 0 && n < sizeof(buf) && strspn(text, "-0123456789.eE") >= n &&
                   (text[0] == '-' || (text[0] >= '0' && text[0] <= '9'));

    if (numeric) {
        memcpy(buf, text, n);
        buf[n] = '\0';
        double v = strtod(buf, &end);
        if (*end == '\0') {
            return cJSON_CreateNumber(v);
        }
    }
    char *s = strndup(text, n);
    cJSON *v = cJSON_CreateString(s != NULL ? s : "");
    free(s);
    return v;
}

/* Prints j on out (compact, one line) and frees it. Returns 0 or 1. */
static int cli_json_print(FILE *out, FILE *err, cJSON *j)
{
    char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

    cJSON_Delete(j);
    if (text == NULL) {
        fputs("posagent: out of memory\n", err);
        return POS_CLI_EX_ERROR;
    }
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    return 0;
}

/*
 * Walks INFO text: "# Section" headers and "key:value" lines, CRLF or LF.
 * As text: a blank line and the section name, "key: value" indented. As
 * JSON: {"section": {"key": value, ...}, ...} (names in lower case).
 */
static int cli_print_info(const cli_req_t *q, const char *text, size_t len)
{
    cJSON *root = q->json ? cJSON_CreateObject() : NULL;
    cJSON *section = root;
    size_t i = 0;
    bool first = true;

    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '\n' && text[end] != '\r') {
            end++;
        }
        if (end > i) {
            const char *line = text + i;
            size_t n = end - i;
            const char *colon = memchr(line, ':', n);
            if (line[0] == '#') {
                size_t skip = n > 1 && line[1] == ' ' ? 2 : 1;
                if (root != NULL) {
                    char name[64];
                    size_t k = 0;
                    for (; k < n - skip && k < sizeof(name) - 1; k++) {
                        char ch = line[skip + k];
                        name[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
                    }
                    name[k] = '\0';
                    section = cJSON_AddObjectToObject(root, name);
                } else {
                    fprintf(q->out, "%s%.*s\n", first ? "" : "\n", (int)(n - skip), line + skip);
                }
            } else if (colon != NULL) {
                size_t klen = (size_t)(colon - line);
                if (root != NULL && section != NULL) {
                    char *key = strndup(line, klen);
                    if (key != NULL) {
                        cJSON_AddItemToObject(section, key,
                                              cli_json_value(colon + 1, n - klen - 1));
                        free(key);
                    }
                } else if (root == NULL) {
                    fprintf(q->out, "  %.*s: %.*s\n", (int)klen, line, (int)(n - klen - 1),
                            colon + 1);
                }
            } else if (root == NULL) {
                fprintf(q->out, "  %.*s\n", (int)n, line);
            }
            first = false;
        }
        i = end + 1;
    }
    return root != NULL ? cli_json_print(q->out, q->err, root) : 0;
}

/* A field of a flat field/value array (HGETALL's shape), or "" when absent. */
static const char *cli_field(const redisReply *row, const char *name)
{
    if (row->type != REDIS_REPLY_ARRAY) {
        return "";
    }
    for (size_t i = 0; i + 1 < row->elements; i += 2) {
        const redisReply *k = row->element[i], *v = row->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0) {
            return v->str;
        }
    }
    return "";
}

/* A flat field/value array as a JSON object of strings. */
static cJSON *cli_row_json(const redisReply *row)
{
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; o != NULL && row->type == REDIS_REPLY_ARRAY && i + 1 < row->elements;
         i += 2) {
        const redisReply *k = row->element[i], *v = row->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING) {
            cJSON_AddStringToObject(o, k->str, v->str);
        }
    }
    return o;
}

/* JOURNAL's records: one paragraph each, or a JSON array of objects. */
static int cli_print_journal(const cli_req_t *q, const redisReply *r)
{
    if (q->json) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; a != NULL && i < r->elements; i++) {
            cJSON_AddItemToArray(a, cli_row_json(r->element[i]));
        }
        return cli_json_print(q->out, q->err, a);
    }
    if (r->elements == 0) {
        fprintf(q->out, "%s\n",
                q->all ? "the payment journal is empty" : "no payment needs reconciliation");
        return 0;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *row = r->element[i];
        const char *brand = cli_field(row, "card_brand"), *pan = cli_field(row, "masked_pan");
        const char *auth = cli_field(row, "auth_code"), *reason = cli_field(row, "reason");
        const char *why = cli_field(row, "reconcile");

        fprintf(q->out, "%s%s  %s  %s %s\n", i > 0 ? "\n" : "", cli_field(row, "transaction_id"),
                cli_field(row, "state"), cli_field(row, "currency"), cli_field(row, "amount"));
        if (*brand != '\0' || *pan != '\0' || *auth != '\0') {
            fprintf(q->out, "  card: %s %s  auth code: %s\n", *brand ? brand : "-",
                    *pan ? pan : "-", *auth ? auth : "-");
        }
        if (*reason != '\0') {
            fprintf(q->out, "  reason: %s\n", reason);
        }
        if (*why != '\0') {
            fprintf(q->out, "  reconcile: %s\n", why);
        }
    }
    return 0;
}

/* DEVICES: "name: state" lines, or {"display": "...", ...}. */
static int cli_print_devices(const cli_req_t *q, const redisReply *r)
{
    cJSON *o = q->json ? cJSON_CreateObject() : NULL;

    for (size_t i = 0; i < r->elements; i++) {
        const char *dev = cli_field(r->element[i], "device");
        const char *st = cli_field(r->element[i], "state");
        if (o != NULL) {
            cJSON_AddStringToObject(o, dev, st);
        } else if (!q->json) {
            fprintf(q->out, "%s: %s\n", dev, st);
        }
    }
    return q->json ? cli_json_print(q->out, q->err, o) : 0;
}

/* ---- the connection ----------------------------------------------------------- */

/*
 * Connects to the agent's socket, telling apart what the technician must
 * do about a failure: nothing listens (start the agent) or the socket is
 * there but not for this user (the group). Returns the context or NULL
 * with the exit code in *rc.
 */
static redisContext *cli_connect(const cli_req_t *q, int *rc)
{
    struct sockaddr_un sa;
    struct timeval tv = {CLI_TIMEOUT_S, 0};
    const char *path = q->socket_path;
    redisContext *c;
    int fd, e;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(q->err, "posagent: socket path too long: %s\n", path);
        *rc = POS_CLI_EX_USAGE;
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(q->err, "posagent: socket: %s\n", strerror(errno));
        *rc = POS_CLI_EX_ERROR;
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        e = errno;
        close(fd);
        if (e == EACCES || e == EPERM) {
            fprintf(q->err,
                    "posagent: permission denied on %s (is your user in [local] "
                    "socket_group?)\n",
                    path);
            *rc = POS_CLI_EX_NOPERM;
        } else if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) {
            fprintf(q->err, "posagent is not running (no socket at %s%s)\n", path,
                    e == ECONNREFUSED ? ": nothing listens on it" : "");
            *rc = POS_CLI_EX_UNAVAILABLE;
        } else {
            fprintf(q->err, "posagent: cannot connect to %s: %s\n", path, strerror(e));
            *rc = POS_CLI_EX_UNAVAILABLE;
        }
        return NULL;
    }
    c = redisConnectFd(fd);
    if (c == NULL || c->err) {
        fprintf(q->err, "posagent: %s\n", c != NULL ? c->errstr : "out of memory");
        if (c != NULL) {
            redisFree(c); /* closes fd */
        } else {
            close(fd);
        }
        *rc = POS_CLI_EX_ERROR;
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* One command; NULL (the exit code in *rc) when no answer came. */
static redisReply *cli_command(const cli_req_t *q, redisContext *c, int argc, const char **argv,
                               int *rc)
{
    size_t lens[CLI_ARGS_MAX];
    redisReply *r;

    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    r = redisCommandArgv(c, argc, argv, lens);
    if (r == NULL) {
        fprintf(q->err, "posagent: no answer from %s: %s\n", q->socket_path, c->errstr);
        *rc = POS_CLI_EX_UNAVAILABLE;
    }
    return r;
}

/* An error answer: what it means for the caller's exit code. */
static int cli_error_reply(const cli_req_t *q, const redisReply *r)
{
    if (strncmp(r->str, "NOPERM ", 7) == 0) {
        fprintf(q->err, "posagent: permission denied: %s\n", r->str + 7);
        return POS_CLI_EX_NOPERM;
    }
    if (strncmp(r->str, "BUSY ", 5) == 0) {
        fprintf(q->err, "posagent: busy: %s\n", r->str + 5);
        return POS_CLI_EX_TEMPFAIL;
    }
    fprintf(q->err, "posagent: %s\n", strncmp(r->str, "ERR ", 4) == 0 ? r->str + 4 : r->str);
    return POS_CLI_EX_ERROR;
}

/* ---- the commands --------------------------------------------------------------- */

/* cache get KEY: the value on stdout, its age on stderr (or both in JSON). */
static int cli_cache_get(const cli_req_t *q, redisContext *c, const char *key)
{
    const char *get[] = {"GET", key}, *age[] = {"AGE", key};
    long long age_ms = -1;
    redisReply *r, *a;
    int rc = 0;

    if ((r = cli_command(q, c, 2, get, &rc)) == NULL) {
        return rc;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = cli_error_reply(q, r);
        freeReplyObject(r);
        return rc;
    }
    if (r->type == REDIS_REPLY_STRING && (a = cli_command(q, c, 2, age, &rc)) != NULL) {
        if (a->type == REDIS_REPLY_INTEGER && a->integer >= 0) {
            age_ms = a->integer;
        }
        freeReplyObject(a);
    }
    rc = r->type == REDIS_REPLY_STRING ? 0 : POS_CLI_EX_NOTFOUND;
    if (q->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", key);
        if (r->type == REDIS_REPLY_STRING) {
            cJSON_AddItemToObject(o, "value", cJSON_CreateString(r->str));
        } else {
            cJSON_AddNullToObject(o, "value");
        }
        if (age_ms >= 0) {
            cJSON_AddNumberToObject(o, "age_ms", (double)age_ms);
        }
        if (cli_json_print(q->out, q->err, o) != 0) {
            rc = POS_CLI_EX_ERROR;
        }
    } else if (r->type == REDIS_REPLY_STRING) {
        fwrite(r->str, 1, r->len, q->out);
        fputc('\n', q->out);
        if (age_ms >= 0) {
            fprintf(q->err, "(local copy, confirmed by Redis %lld.%03lld s ago)\n", age_ms / 1000,
                    age_ms % 1000);
        }
    }
    if (r->type != REDIS_REPLY_STRING && !q->json) { /* JSON says "value": null */
        fprintf(q->err, "%s: not cached\n", key);
    }
    freeReplyObject(r);
    return rc;
}

/* The words after the options: which local API command, and how to show it. */
typedef enum cli_kind {
    CLI_INFO,
    CLI_CACHE_GET,
    CLI_JOURNAL,
    CLI_DEVICES,
    CLI_DEVICE_TEST
} cli_kind_t;

static int cli_parse(cli_req_t *q, int argc, char **argv)
{
    q->argc = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            q->json = true;
        } else if (strcmp(a, "--all") == 0) {
            q->all = true;
        } else if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
            q->socket_path = argv[++i];
        } else if (strncmp(a, "--socket=", 9) == 0) {
            q->socket_path = a + 9;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(q->err, "posagent: unknown option '%s'\n", a);
            return -1;
        } else if (q->argc < CLI_ARGS_MAX) {
            q->argv[q->argc++] = argv[i];
        } else {
            return -1;
        }
    }
    if (q->socket_path == NULL || q->socket_path[0] == '\0') {
        q->socket_path = POS_LOCALAPI_DEFAULT_SOCKET;
    }
    return 0;
}

/* AUTH with password (NULL or "": none asked). Returns 0, or the exit code
 * after saying why (never the password). */
static int cli_auth(redisContext *c, const char *password, const char *socket_path, FILE *err)
{
    redisReply *r;
    int rc = 0;

    if (password == NULL || password[0] == '\0') {
        return 0;
    }
    r = redisCommand(c, "AUTH %s", password);
    if (r == NULL) {
        fprintf(err, "no answer from posagent at %s: %s\n", socket_path, c->errstr);
        return POS_CLI_EX_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(err, "posagent: AUTH refused: %s\n", r->str);
        rc = POS_CLI_EX_ERROR;
    }
    freeReplyObject(r);
    return rc;
}

static int cli_run(int argc, char **argv, const char *socket_path, const char *password, FILE *out,
                   FILE *err)
{
    cli_req_t q = {.socket_path = socket_path, .out = out, .err = err};
    const char *cargv[CLI_ARGS_MAX];
    int cargc = 0, rc = 0;
    cli_kind_t kind;
    redisContext *c;
    redisReply *r;

    if (cli_parse(&q, argc, argv) != 0 || q.argc == 0) {
        cli_usage(err);
        return POS_CLI_EX_USAGE;
    }
    const char *cmd = q.argv[0], *sub = q.argc > 1 ? q.argv[1] : NULL;
    if (q.all && strcmp(cmd, "journal") != 0) {
        cli_usage(err);
        return POS_CLI_EX_USAGE;
    }
    if (q.argc == 1 && strcmp(cmd, "status") == 0) {
        cargv[cargc++] = "INFO";
        kind = CLI_INFO;
    } else if (q.argc == 1 && strcmp(cmd, "outbox") == 0) {
        cargv[cargc++] = "INFO";
        cargv[cargc++] = "outbox";
        kind = CLI_INFO;
    } else if (q.argc == 3 && strcmp(cmd, "cache") == 0 && strcmp(sub, "get") == 0) {
        kind = CLI_CACHE_GET;
    } else if (q.argc == 1 && strcmp(cmd, "journal") == 0) {
        cargv[cargc++] = "JOURNAL";
        if (q.all) {
            cargv[cargc++] = "ALL";
        }
        kind = CLI_JOURNAL;
    } else if (q.argc == 1 && strcmp(cmd, "devices") == 0) {
        cargv[cargc++] = "DEVICES";
        kind = CLI_DEVICES;
    } else if (q.argc == 2 && strcmp(cmd, "devices") == 0 &&
               (strcmp(sub, "test-print") == 0 || strcmp(sub, "test-display") == 0)) {
        cargv[cargc++] = "DEVICES";
        cargv[cargc++] = "TEST";
        cargv[cargc++] = strcmp(sub, "test-print") == 0 ? "PRINTER" : "DISPLAY";
        kind = CLI_DEVICE_TEST;
    } else {
        cli_usage(err);
        return POS_CLI_EX_USAGE;
    }

    if ((c = cli_connect(&q, &rc)) == NULL) {
        return rc;
    }
    if ((rc = cli_auth(c, password, q.socket_path, err)) != 0) {
        redisFree(c);
        return rc;
    }
    if (kind == CLI_CACHE_GET) {
        rc = cli_cache_get(&q, c, q.argv[2]);
        redisFree(c);
        return rc;
    }
    if ((r = cli_command(&q, c, cargc, cargv, &rc)) == NULL) {
        redisFree(c);
        return rc;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = cli_error_reply(&q, r);
    } else if (kind == CLI_INFO && r->type == REDIS_REPLY_STRING) {
        rc = cli_print_info(&q, r->str, r->len);
    } else if (kind == CLI_JOURNAL && r->type == REDIS_REPLY_ARRAY) {
        rc = cli_print_journal(&q, r);
    } else if (kind == CLI_DEVICES && r->type == REDIS_REPLY_ARRAY) {
        rc = cli_print_devices(&q, r);
    } else if (kind == CLI_DEVICE_TEST && r->type == REDIS_REPLY_STATUS) {
        const char *what = strcmp(cargv[2], "PRINTER") == 0 ? "printer" : "display";
        if (q.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "device", what);
            cJSON_AddStringToObject(o, "test", "sent");
            rc = cli_json_print(out, err, o);
        } else {
            fprintf(out, "test sent to the %s; its state: posagent devices\n", what);
        }
    } else {
        fprintf(err, "posagent: unexpected reply type %d (an agent of another version?)\n",
                r->type);
        rc = POS_CLI_EX_ERROR;
    }
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

int pos_cli_run(int argc, char **argv, const char *socket_path, FILE *out, FILE *err)
{
    return cli_run(argc, argv, socket_path, NULL, out, err);
}

int pos_cli_main(int argc, char **argv, const char *socket_path, const char *password)
{
    return cli_run(argc, argv, socket_path, password, stdout, stderr);
}
