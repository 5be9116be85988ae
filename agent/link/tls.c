#include "agent/link/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/entropy.h> /* MBEDTLS_ERR_ENTROPY_SOURCE_FAILED only */
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h> /* MBEDTLS_ERR_NET_SEND_FAILED only */
#include <mbedtls/version.h>

#include "platform/log.h"
#include "platform/mem.h"

/* Decrypted bytes are handed to the RESP reader in pieces of this size. */
#define TLS_PLAIN_CHUNK 4096
/* A CA file larger than this is refused (Debian's whole bundle is 220 KB). */
#define TLS_CA_FILE_MAX (8u << 20)

/* Per connection: the mbedTLS context and the bytes of the read in progress. */
typedef struct tls_conn {
    pos_tls_t *tls;
    mbedtls_ssl_context ssl;
    const unsigned char *rd; /* raw bytes not yet taken by mbedTLS */
    size_t rd_len;
    int send_err; /* why the last raw write failed (negative errno) */
    bool handshake_done;
    bool cert_seen; /* a certificate came: a full handshake */
    bool ca_held;   /* counted in tls->ca_users */
    uint64_t started_ns;
    unsigned char plain[TLS_PLAIN_CHUNK];
} tls_conn_t;

const char *pos_tls_verify_reason(uint32_t flags, char *buf, size_t len)
{
    static const struct {
        uint32_t flag;
        const char *text;
    } reasons[] = {
        {MBEDTLS_X509_BADCERT_EXPIRED, "certificate expired"},
        {MBEDTLS_X509_BADCERT_FUTURE, "certificate not valid yet"},
        {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "unknown CA (not signed by a CA in [tls] ca_file)"},
        {MBEDTLS_X509_BADCERT_CN_MISMATCH, "name mismatch (not issued for [tls] server_name)"},
        {MBEDTLS_X509_BADCERT_REVOKED, "certificate revoked"},
        {MBEDTLS_X509_BADCERT_MISSING, "no certificate sent"},
        {MBEDTLS_X509_BADCERT_SKIP_VERIFY, "verification skipped"},
        {MBEDTLS_X509_BADCERT_KEY_USAGE, "wrong key usage"},
        {MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "not a server certificate (extended key usage)"},
        {MBEDTLS_X509_BADCERT_NS_CERT_TYPE, "wrong certificate type"},
        {MBEDTLS_X509_BADCERT_BAD_MD, "weak signature hash"},
        {MBEDTLS_X509_BADCERT_BAD_PK, "unacceptable key type"},
        {MBEDTLS_X509_BADCERT_BAD_KEY, "key too small"},
        {MBEDTLS_X509_BADCRL_EXPIRED, "CRL expired"},
        {MBEDTLS_X509_BADCRL_NOT_TRUSTED, "CRL not trusted"},
        {MBEDTLS_X509_BADCRL_FUTURE, "CRL not valid yet"},
        {MBEDTLS_X509_BADCERT_OTHER, "other certificate problem"},
    };
    size_t o = 0;

    if (len == 0) {
        return buf;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if ((flags & reasons[i].flag) == 0) {
            continue;
        }
        int n = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", reasons[i].text);
        if (n < 0 || (size_t)n >= len - o) {
            break;
        }
        o += (size_t)n;
        flags &= ~reasons[i].flag;
    }
    if (flags != 0 && o < len) {
        snprintf(buf + o, len - o, "%sflags 0x%x", o ? ", " : "", (unsigned)flags);
    } else if (o == 0) {
        snprintf(buf, len, "unknown reason");
    }
    return buf;
}

static void tls_strerror(int ret, char *buf, size_t len)
{
    mbedtls_strerror(ret, buf, len);
    if (buf[0] == '\0') {
        snprintf(buf, len, "mbedTLS error -0x%04x", (unsigned)-ret);
    }
}

/* ---- shared configuration ------------------------------------------------ */

static int tls_set_min_version(pos_tls_t *t, const char *v, char *why, size_t whylen)
{
    if (v == NULL || v[0] == '\0' || strcmp(v, "1.2") == 0) {
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
        mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
        mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                     MBEDTLS_SSL_MINOR_VERSION_3);
#endif
        return 0;
    }
    if (strcmp(v, "1.3") == 0) {
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
        mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_3);
        mbedtls_ssl_conf_max_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_3);
        return 0;
#else
        snprintf(why, whylen,
                 "[tls] min_version: 1.3 needs mbedTLS 3.x built with TLS 1.3; this build "
                 "has mbedTLS %s (TLS 1.2 only)",
                 MBEDTLS_VERSION_STRING);
        return -ENOTSUP;
#endif
    }
    snprintf(why, whylen, "[tls] min_version: must be 1.2 or 1.3");
    return -EINVAL;
}

/*
 * The DRBG's seed and reseeds: the kernel's CSPRNG, which is also what
 * mbedtls_entropy_func would read. Its context is not needed: 37 KiB in
 * Debian's build (which gathers HAVEGE too), all of it written at init.
 */
static int tls_entropy(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Parses the CA file into chain. The file is read into pages of its own
 * (mbedtls_x509_crt_parse_file would malloc its size: a whole bundle is
 * over glibc's mmap threshold, and freeing it raises that threshold for
 * good, so that later large blocks stay on the heap). Returns what
 * mbedtls_x509_crt_parse returns, or an MBEDTLS_ERR_X509_FILE_IO_ERROR.
 */
static int tls_ca_parse(mbedtls_x509_crt *chain, const char *path)
{
    struct stat st;
    unsigned char *buf;
    size_t len, got = 0;
    int fd, ret = MBEDTLS_ERR_X509_FILE_IO_ERROR;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return ret;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > TLS_CA_FILE_MAX) {
        close(fd);
        return ret;
    }
    len = (size_t)st.st_size;
    /* One byte more: a PEM buffer is parsed up to its final NUL. */
    buf = mmap(NULL, len + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        close(fd);
        return MBEDTLS_ERR_X509_ALLOC_FAILED;
    }
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (got == len) {
        /* DER has no NUL; PEM is parsed with it (mmap zeroed it). */
        ret = mbedtls_x509_crt_parse(
            chain, buf, strstr((const char *)buf, "-----BEGIN ") != NULL ? len + 1 : len);
    }
    munmap(buf, len + 1);
    return ret;
}

/* Parses t->ca_file into t->ca. Returns 0, or writes why and returns
 * -EINVAL. */
static int tls_ca_load(pos_tls_t *t, char *why, size_t whylen)
{
    char err[160];
    int ret = tls_ca_parse(&t->ca, t->ca_file);

    if (ret == 0) {
        return 0;
    }
    /* > 0: that many certificates in the file could not be parsed. */
    if (ret > 0) {
        snprintf(err, sizeof(err), "%d certificate(s) in it could not be parsed", ret);
    } else {
        tls_strerror(ret, err, sizeof(err));
    }
    snprintf(why, whylen, "[tls] ca_file: cannot load %s: %s", t->ca_file, err);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_init(&t->ca);
    return -EINVAL;
}

/* Frees the parsed CA chain, and gives the heap pages it held back. */
static void tls_ca_drop(pos_tls_t *t)
{
    mbedtls_ssl_conf_ca_chain(&t->conf, NULL, NULL);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_init(&t->ca);
#if defined(__GLIBC__)
    /* The chain's many small blocks sit in the middle of the heap, where
     * free() alone returns nothing to the system. */
    malloc_trim(0);
#endif
}

int pos_tls_init(pos_tls_t *t, const pos_tls_options_t *opt, char *why, size_t whylen)
{
    static const unsigned char pers[] = "posagent-tls";
    char err[160];
    int ret, rc;
    bool with_cert = opt->cert_file != NULL && opt->cert_file[0] != '\0';
    bool with_key = opt->key_file != NULL && opt->key_file[0] != '\0';

    pos_mem_zero(t, sizeof(*t));
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ssl_session_init(&t->session);

    if (opt->ca_file == NULL || opt->ca_file[0] == '\0') {
        snprintf(why, whylen, "[tls] ca_file is required for rediss://");
        rc = -EINVAL;
        goto fail;
    }
    if (strlen(opt->ca_file) >= sizeof(t->ca_file)) {
        snprintf(why, whylen, "[tls] ca_file: path too long");
        rc = -EINVAL;
        goto fail;
    }
    snprintf(t->ca_file, sizeof(t->ca_file), "%s", opt->ca_file);
    if (opt->server_name == NULL || opt->server_name[0] == '\0' ||
        strlen(opt->server_name) >= sizeof(t->server_name)) {
        snprintf(why, whylen, "[tls] server_name: missing or too long");
        rc = -EINVAL;
        goto fail;
    }
    if (with_cert != with_key) {
        snprintf(why, whylen, "[tls] %s is set but %s is not (mutual TLS needs both)",
                 with_cert ? "cert_file" : "key_file", with_cert ? "key_file" : "cert_file");
        rc = -EINVAL;
        goto fail;
    }
    snprintf(t->server_name, sizeof(t->server_name), "%s", opt->server_name);

    ret = mbedtls_ctr_drbg_seed(&t->drbg, tls_entropy, NULL, pers, sizeof(pers) - 1);
    if (ret != 0) {
        tls_strerror(ret, err, sizeof(err));
        snprintf(why, whylen, "TLS: cannot seed the random generator: %s", err);
        rc = -EIO;
        goto fail;
    }
    /* Checked now, so that a bad file is a configuration error; loaded
     * again when a handshake needs it. */
    rc = tls_ca_load(t, why, whylen);
    if (rc != 0) {
        goto fail;
    }
    tls_ca_drop(t);
    if (with_cert) {
        ret = mbedtls_x509_crt_parse_file(&t->cert, opt->cert_file);
        if (ret != 0) {
            tls_strerror(ret, err, sizeof(err));
            snprintf(why, whylen, "[tls] cert_file: cannot load %s: %s", opt->cert_file, err);
            rc = -EINVAL;
            goto fail;
        }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
        ret = mbedtls_pk_parse_keyfile(&t->key, opt->key_file, NULL, mbedtls_ctr_drbg_random,
                                       &t->drbg);
#else
        ret = mbedtls_pk_parse_keyfile(&t->key, opt->key_file, NULL);
#endif
        if (ret != 0) {
            /* Never the key's content: only mbedTLS's description. */
            tls_strerror(ret, err, sizeof(err));
            snprintf(why, whylen, "[tls] key_file: cannot load %s: %s", opt->key_file, err);
            rc = -EINVAL;
            goto fail;
        }
    }

    ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        tls_strerror(ret, err, sizeof(err));
        snprintf(why, whylen, "TLS: cannot set up: %s", err);
        rc = -ENOMEM;
        goto fail;
    }
    /* Never optional: an unverified server could be anyone. */
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    if (with_cert) {
        ret = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key);
        if (ret != 0) {
            tls_strerror(ret, err, sizeof(err));
            snprintf(why, whylen, "[tls] cert_file: %s", err);
            rc = -EINVAL;
            goto fail;
        }
    }
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    /* The server may resume from a ticket (stateless) or its session cache;
     * offer both. */
    mbedtls_ssl_conf_session_tickets(&t->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
#endif
    rc = tls_set_min_version(t, opt->min_version, why, whylen);
    if (rc != 0) {
        goto fail;
    }
    t->ready = true;
    return 0;

fail:
    t->ready = true;
    pos_tls_dispose(t);
    return rc;
}

void pos_tls_dispose(pos_tls_t *t)
{
    if (!t->ready) {
        return;
    }
    /* The *_free functions zeroise what they held (key, session secrets). */
    mbedtls_ssl_session_free(&t->session);
    mbedtls_pk_free(&t->key);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_ctr_drbg_free(&t->drbg);
    t->have_session = false;
    t->ready = false;
}

/* ---- per connection ------------------------------------------------------ */

static int tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    pos_conn_t *c = ctx;
    tls_conn_t *t = c->transport_state;
    int rc;

    /* pos_conn_raw_write copies and queues: everything is taken or it fails,
     * so MBEDTLS_ERR_SSL_WANT_WRITE never happens. */
    rc = pos_conn_raw_write(c, (const char *)buf, len);
    if (rc != 0) {
        t->send_err = rc;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return len > INT32_MAX ? INT32_MAX : (int)len;
}

static int tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    pos_conn_t *c = ctx;
    tls_conn_t *t = c->transport_state;
    size_t n;

    if (t->rd_len == 0) {
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    n = len < t->rd_len ? len : t->rd_len;
    if (n > INT32_MAX) {
        n = INT32_MAX;
    }
    memcpy(buf, t->rd, n);
    t->rd += n;
    t->rd_len -= n;
    return (int)n;
}

static int tls_verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    tls_conn_t *t = ctx;
    (void)crt;
    (void)depth;
    (void)flags;
    /* Called only when the server sends its certificate, that is on a full
     * handshake: a resumed one skips it. mbedTLS decides; we only note it. */
    t->cert_seen = true;
    return 0;
}

static void tls_save_session(tls_conn_t *t)
{
    pos_tls_t *tls = t->tls;

    mbedtls_ssl_session_free(&tls->session);
    mbedtls_ssl_session_init(&tls->session);
    tls->have_session = mbedtls_ssl_get_session(&t->ssl, &tls->session) == 0;
}

/* Makes the CA chain available to t's handshake, loading it when no other
 * connection holds it. Returns 0, or POS_TLS_EHANDSHAKE when ca_file can no
 * longer be read (logged). */
static int tls_ca_hold(pos_conn_t *c, tls_conn_t *t)
{
    pos_tls_t *tls = t->tls;
    char why[320];

    if (t->ca_held) {
        return 0;
    }
    if (tls->ca_users == 0) {
        if (tls_ca_load(tls, why, sizeof(why)) != 0) {
            tls->stats.failed++;
            POS_ERR("link", "%s: TLS: cannot verify the server: %s", c->opt.name, why);
            return POS_TLS_EHANDSHAKE;
        }
        mbedtls_ssl_conf_ca_chain(&tls->conf, &tls->ca, NULL);
    }
    tls->ca_users++;
    t->ca_held = true;
    return 0;
}

static void tls_ca_release(tls_conn_t *t)
{
    pos_tls_t *tls = t->tls;

    if (!t->ca_held) {
        return;
    }
    t->ca_held = false;
    if (--tls->ca_users == 0) {
        tls_ca_drop(tls);
    }
}

/* mbedtls_ssl_handshake(), step by step: with mbedTLS 2.x the CA chain is
 * loaded only when the server's certificate is next, which a resumed
 * handshake skips. Returns what mbedTLS returned; *rc is nonzero when the
 * CA chain could not be loaded. */
static int tls_handshake_steps(pos_conn_t *c, tls_conn_t *t, int *rc)
{
    *rc = 0;
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        if (t->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE) {
            *rc = tls_ca_hold(c, t);
            if (*rc != 0) {
                return 0;
            }
        }
        int ret = mbedtls_ssl_handshake_step(&t->ssl);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
#else
    /* No public view of the handshake's state: hold it throughout. */
    *rc = tls_ca_hold(c, t);
    return *rc != 0 ? 0 : mbedtls_ssl_handshake(&t->ssl);
#endif
}

static bool is_ip_literal(const char *s)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

static int tls_handshake_failed(pos_conn_t *c, tls_conn_t *t, int ret)
{
    pos_tls_t *tls = t->tls;
    char err[160], reason[256];

    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        const char *hint = "";
        tls->stats.rejected++;
#if MBEDTLS_VERSION_NUMBER < 0x03050000
        /* Before 3.5, mbedTLS matches DNS names only, never an IP address
         * SAN: connecting by address needs a server_name from the cert. */
        if ((flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) != 0 && is_ip_literal(tls->server_name)) {
            hint = "; this mbedTLS cannot match IP addresses: set [tls] server_name to a DNS "
                   "name in the certificate";
        }
#endif
        POS_ERR("link", "%s: TLS: server certificate rejected: %s (server_name %s)%s", c->opt.name,
                pos_tls_verify_reason(flags, reason, sizeof(reason)), tls->server_name, hint);
        /* A stale session must not be offered to what may be another server. */
        mbedtls_ssl_session_free(&tls->session);
        mbedtls_ssl_session_init(&tls->session);
        tls->have_session = false;
        return POS_TLS_EREJECTED;
    }
    if (ret == MBEDTLS_ERR_NET_SEND_FAILED && t->send_err != 0) {
        return t->send_err; /* a socket problem, not a TLS one */
    }
    tls->stats.failed++;
    tls_strerror(ret, err, sizeof(err));
    if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        POS_ERR("link",
                "%s: TLS handshake refused by the server (%s): does it require a client "
                "certificate ([tls] cert_file, key_file) or another TLS version?",
                c->opt.name, err);
    } else if (ret == MBEDTLS_ERR_SSL_INVALID_RECORD || ret == MBEDTLS_ERR_SSL_BAD_INPUT_DATA
#if defined(MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO)
               || ret == MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO
#endif
    ) {
        POS_ERR("link", "%s: TLS handshake failed (%s): is this port a TLS port?", c->opt.name,
                err);
    } else {
        POS_ERR("link", "%s: TLS handshake failed: %s", c->opt.name, err);
    }
    return POS_TLS_EHANDSHAKE;
}

/* Advances the handshake with the bytes at hand; on completion the
 * connection opens (and its callbacks may already send commands). */
static int tls_handshake(pos_conn_t *c, tls_conn_t *t)
{
    pos_tls_t *tls = t->tls;
    int rc;
    int ret = tls_handshake_steps(c, t, &rc);
    uint64_t us;

    if (rc != 0) {
        return rc; /* ca_file unreadable: said so */
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return 0;
    }
    if (ret != 0) {
        return tls_handshake_failed(c, t, ret);
    }
    t->handshake_done = true;
    tls_ca_release(t);
    us = (uv_hrtime() - t->started_ns) / 1000u;
    tls->stats.last_us = us;
    tls->stats.last_resumed = !t->cert_seen;
    if (t->cert_seen) {
        tls->stats.full++;
    } else {
        tls->stats.resumed++;
    }
    POS_INFO("link", "%s: TLS %s handshake in %llu.%03llu ms (%s, %s)", c->opt.name,
             t->cert_seen ? "full" : "resumed", (unsigned long long)(us / 1000u),
             (unsigned long long)(us % 1000u), mbedtls_ssl_get_version(&t->ssl),
             mbedtls_ssl_get_ciphersuite(&t->ssl));
    tls_save_session(t);
    pos_conn_transport_ready(c);
    return 0;
}

static void tls_reset(pos_conn_t *c)
{
    tls_conn_t *t = c->transport_state;

    if (t == NULL) {
        return;
    }
    c->transport_state = NULL;
    tls_ca_release(t);
    /* mbedtls_ssl_free zeroises its record buffers (they held AUTH). */
    mbedtls_ssl_free(&t->ssl);
    explicit_bzero(t->plain, sizeof(t->plain));
    free(t);
}

static int tls_start(pos_conn_t *c)
{
    pos_tls_t *tls = c->opt.transport_arg;
    tls_conn_t *t;
    int ret;

    if (tls == NULL || !tls->ready) {
        return -EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->tls = tls;
    mbedtls_ssl_init(&t->ssl);
    c->transport_state = t; /* from here on tls_reset frees it */
    ret = mbedtls_ssl_setup(&t->ssl, &tls->conf);
    if (ret == 0) {
        ret = mbedtls_ssl_set_hostname(&t->ssl, tls->server_name);
    }
    if (ret != 0) {
        char err[160];
        tls_strerror(ret, err, sizeof(err));
        POS_ERR("link", "%s: TLS: cannot set up the connection: %s", c->opt.name, err);
        return -ENOMEM;
    }
    mbedtls_ssl_set_bio(&t->ssl, c, tls_bio_send, tls_bio_recv, NULL);
    mbedtls_ssl_set_verify(&t->ssl, tls_verify_cb, t);
    if (tls->have_session && mbedtls_ssl_set_session(&t->ssl, &tls->session) != 0) {
        POS_DEBUG("link", "%s: TLS: saved session not usable, full handshake", c->opt.name);
    }
    t->started_ns = uv_hrtime();
    return tls_handshake(c, t); /* sends the ClientHello */
}

static int tls_write(pos_conn_t *c, const char *buf, size_t len)
{
    tls_conn_t *t = c->transport_state;
    const unsigned char *p = (const unsigned char *)buf;

    if (t == NULL || !t->handshake_done) {
        return -ENOTCONN;
    }
    while (len > 0) {
        int ret = mbedtls_ssl_write(&t->ssl, p, len);
        if (ret > 0) {
            p += ret;
            len -= (size_t)ret;
            continue;
        }
        if (ret == MBEDTLS_ERR_NET_SEND_FAILED && t->send_err != 0) {
            return t->send_err;
        }
        char err[160];
        tls_strerror(ret, err, sizeof(err));
        POS_WARN("link", "%s: TLS write failed: %s", c->opt.name, err);
        return -EIO;
    }
    return 0;
}

/* Decrypts everything buffered and feeds it up. */
static int tls_drain(pos_conn_t *c, tls_conn_t *t)
{
    for (;;) {
        int ret = mbedtls_ssl_read(&t->ssl, t->plain, sizeof(t->plain));
        if (ret > 0) {
            int rc = pos_conn_feed(c, (const char *)t->plain, (size_t)ret);
            if (rc != 0) {
                return rc;
            }
            if (c->state != POS_CONN_OPEN) {
                return 0; /* torn down by a callback: t is gone */
            }
            continue;
        }
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
            return 0;
        }
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            tls_save_session(t); /* TLS 1.3: the ticket comes after the handshake */
            continue;
        }
#endif
        if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            POS_WARN("link", "%s: server closed the TLS session", c->opt.name);
            return -ECONNRESET;
        }
        char err[160];
        tls_strerror(ret, err, sizeof(err));
        POS_WARN("link", "%s: TLS read failed: %s", c->opt.name, err);
        return -EPROTO;
    }
}

static int tls_on_read(pos_conn_t *c, const char *buf, size_t len)
{
    tls_conn_t *t = c->transport_state;
    int rc = 0;

    if (t == NULL) {
        return 0;
    }
    t->rd = (const unsigned char *)buf;
    t->rd_len = len;
    if (!t->handshake_done) {
        rc = tls_handshake(c, t);
        /* Still handshaking, failed, or opened and already torn down by
         * on_open: in the last case t is gone. */
        if (rc != 0 || c->state != POS_CONN_OPEN) {
            if (rc == 0 && c->state == POS_CONN_CONNECTING) {
                t->rd = NULL;
                t->rd_len = 0;
            }
            return rc;
        }
    }
    rc = tls_drain(c, t);
    if (rc == 0 && c->state == POS_CONN_OPEN && c->transport_state == t) {
        t->rd = NULL;
        t->rd_len = 0;
    }
    return rc;
}

/*
 * The server hung up during the handshake. A TLS 1.2 server that wants a
 * client certificate sends an alert and closes at once; the reset often
 * reaches us as a failed write before the alert can be read. A plain Redis
 * port does the same with a ClientHello. Either way retrying fast will not
 * help, and the log must say what to check.
 */
static int tls_start_failed(pos_conn_t *c, int err)
{
    tls_conn_t *t = c->transport_state;

    if (t == NULL || t->handshake_done) {
        return err;
    }
    if (err == -ETIMEDOUT) {
        /* A plain Redis port waits for a newline that a ClientHello never
         * sends. Still transient: a slow server may answer next time. */
        POS_WARN("link",
                 "%s: no TLS handshake within the connect timeout: is the port a TLS "
                 "port (Redis tls-port)?",
                 c->opt.name);
        return err;
    }
    t->tls->stats.failed++;
    POS_ERR("link",
            "%s: TLS handshake refused by the server (connection closed: %s): does it require "
            "a client certificate ([tls] cert_file, key_file)? is the port a TLS port?",
            c->opt.name, strerror(-err));
    return POS_TLS_EHANDSHAKE;
}

const pos_transport_ops_t pos_tls_transport = {
    .start = tls_start,
    .write = tls_write,
    .on_read = tls_on_read,
    .reset = tls_reset,
    .start_failed = tls_start_failed,
};

void pos_tls_options_from_config(const pos_config_t *cfg, pos_tls_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->ca_file = cfg->tls_ca_file;
    opt->cert_file = cfg->tls_cert_file;
    opt->key_file = cfg->tls_key_file;
    opt->server_name = cfg->tls_server_name[0] != '\0' ? cfg->tls_server_name : cfg->redis.host;
    opt->min_version = cfg->tls_min_version;
}
