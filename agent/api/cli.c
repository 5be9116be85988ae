#include "agent/api/cli.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "agent/api/localapi.h"

#define CLI_TIMEOUT_S 5

static void cli_usage(FILE *err)
{
    fputs("usage: posagent status\n"
          "       posagent cache get KEY\n"
          "       posagent outbox\n",
          err);
}

/* Prints INFO text: CRLF to LF, "# Section" headers as a blank line and
 * the section name, "key:value" indented as "key: value". */
static void cli_print_info(FILE *out, const char *text, size_t len)
{
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
                fprintf(out, "%s%.*s\n", first ? "" : "\n", (int)(n - skip), line + skip);
            } else if (colon != NULL) {
                fprintf(out, "  %.*s: %.*s\n", (int)(colon - line), line,
                        (int)(n - (size_t)(colon - line) - 1), colon + 1);
            } else {
                fprintf(out, "  %.*s\n", (int)n, line);
            }
            first = false;
        }
        i = end + 1;
    }
}

/* How old the copy just printed is (on err, so stdout stays the value). */
static void cli_print_age(redisContext *c, const char *key, FILE *err)
{
    redisReply *r = redisCommand(c, "AGE %s", key);

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        fprintf(err, "(local copy, confirmed by Redis %lld.%03lld s ago)\n", r->integer / 1000,
                r->integer % 1000);
    }
    freeReplyObject(r);
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
    const char *cargv[3];
    size_t clens[3];
    int cargc, rc = 0;
    bool info;
    struct timeval tv = {CLI_TIMEOUT_S, 0};
    redisContext *c;
    redisReply *r;

    if (socket_path == NULL) {
        socket_path = POS_LOCALAPI_DEFAULT_SOCKET;
    }
    if (argc == 1 && strcmp(argv[0], "status") == 0) {
        cargv[0] = "INFO";
        cargc = 1;
        info = true;
    } else if (argc == 1 && strcmp(argv[0], "outbox") == 0) {
        cargv[0] = "INFO";
        cargv[1] = "outbox";
        cargc = 2;
        info = true;
    } else if (argc == 3 && strcmp(argv[0], "cache") == 0 && strcmp(argv[1], "get") == 0) {
        cargv[0] = "GET";
        cargv[1] = argv[2];
        cargc = 2;
        info = false;
    } else {
        cli_usage(err);
        return POS_CLI_EX_USAGE;
    }
    for (int i = 0; i < cargc; i++) {
        clens[i] = strlen(cargv[i]);
    }

    c = redisConnectUnixWithTimeout(socket_path, tv);
    if (c == NULL || c->err) {
        fprintf(err, "posagent is not running (cannot connect to %s: %s)\n", socket_path,
                c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return POS_CLI_EX_UNAVAILABLE;
    }
    redisSetTimeout(c, tv);
    if ((rc = cli_auth(c, password, socket_path, err)) != 0) {
        redisFree(c);
        return rc;
    }
    r = redisCommandArgv(c, cargc, cargv, clens);
    if (r == NULL) {
        fprintf(err, "no answer from posagent at %s: %s\n", socket_path, c->errstr);
        redisFree(c);
        return POS_CLI_EX_UNAVAILABLE;
    }
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        if (info) {
            cli_print_info(out, r->str, r->len);
        } else {
            fwrite(r->str, 1, r->len, out);
            fputc('\n', out);
            cli_print_age(c, argv[2], err);
        }
        break;
    case REDIS_REPLY_INTEGER:
        fprintf(out, "%lld\n", r->integer);
        break;
    case REDIS_REPLY_NIL:
        fprintf(err, "%s: not cached\n", argv[argc - 1]);
        rc = POS_CLI_EX_NOTFOUND;
        break;
    case REDIS_REPLY_ERROR:
        fprintf(err, "posagent: %s\n", r->str);
        rc = POS_CLI_EX_ERROR;
        break;
    default:
        fprintf(err, "posagent: unexpected reply type %d\n", r->type);
        rc = POS_CLI_EX_ERROR;
        break;
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
