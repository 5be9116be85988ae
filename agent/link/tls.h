#ifndef AGENT_LINK_TLS_H
#define AGENT_LINK_TLS_H

/*
 * TLS for the Redis link (rediss://), with mbedTLS, as a transport of
 * agent/link/conn.h: raw socket bytes go into mbedtls_ssl through memory BIO
 * callbacks, decrypted bytes go up to the RESP reader, and the handshake is
 * driven without blocking from the connection's read callback.
 *
 * One pos_tls_t per process holds what both connections share: the RNG
 * (CTR_DRBG seeded from the kernel's, getrandom(2)), the CA chain, the client
 * certificate and key, one mbedtls_ssl_config, and the last session, which
 * the next handshake offers for resumption. Each connection has only its
 * mbedtls_ssl_context, created at connect and freed at disconnect.
 *
 * The CA chain is in memory only while a server certificate is being
 * verified: ca_file is parsed when a full handshake reaches the server's
 * certificate and freed when no handshake needs it any more (with mbedTLS
 * 3.x, for the whole of every handshake). An idle agent thus holds no
 * parsed CA, which matters with a whole CA bundle (about 460 KiB for
 * Debian's 140 CAs); the price is a parse per full handshake, and a
 * resumed handshake needs none.
 *
 * Verification is always on: the server certificate must chain to ca_file
 * and carry server_name (default: the URL's host). A rejected certificate
 * fails the connection with POS_TLS_EREJECTED, any other handshake failure
 * with POS_TLS_EHANDSHAKE; the link treats both as fatal (retried at the
 * backoff cap), and nothing ever falls back to plain TCP.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "agent/link/conn.h"
#include "conf/config.h"

/* The server certificate was rejected (expired, unknown CA, name mismatch). */
#define POS_TLS_EREJECTED (-EKEYREJECTED)
/* The handshake failed otherwise (fatal alert, not a TLS server, no common
 * version or cipher). */
#define POS_TLS_EHANDSHAKE (-EPROTONOSUPPORT)

typedef struct pos_tls_options {
    const char *ca_file;     /* PEM or DER; required */
    const char *cert_file;   /* client certificate for mutual TLS, or NULL / "" */
    const char *key_file;    /* its private key (unencrypted), or NULL / "" */
    const char *server_name; /* name to verify and send as SNI; required */
    const char *min_version; /* "1.2" or "1.3"; NULL / "": "1.2" */
} pos_tls_options_t;

typedef struct pos_tls_stats {
    uint64_t full;     /* completed full handshakes */
    uint64_t resumed;  /* completed abbreviated handshakes (session resumed) */
    uint64_t rejected; /* certificate rejections */
    uint64_t failed;   /* other handshake failures */
    uint64_t last_us;  /* duration of the last completed handshake, microseconds */
    bool last_resumed;
} pos_tls_stats_t;

typedef struct pos_tls {
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca; /* parsed from ca_file while ca_users > 0 */
    unsigned ca_users;   /* connections verifying a certificate now */
    char ca_file[256];
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_session session; /* last established session */
    bool have_session;
    bool ready; /* init succeeded; dispose frees */
    char server_name[256];
    pos_tls_stats_t stats;
} pos_tls_t;

/*
 * Loads the CA chain, the optional client certificate and key, seeds the
 * RNG and builds the shared client configuration. On failure writes a
 * one-line reason naming the setting ("[tls] ca_file: ...") into why and
 * returns -EINVAL (bad file or setting), -ENOTSUP (min_version 1.3 with an
 * mbedTLS without TLS 1.3) or -ENOMEM; t needs no dispose then.
 */
int pos_tls_init(pos_tls_t *t, const pos_tls_options_t *opt, char *why, size_t whylen);

/* Frees everything init allocated and wipes the key material and session.
 * Every connection using t must be closed first. */
void pos_tls_dispose(pos_tls_t *t);

/* The TLS settings of a loaded configuration (pointers into cfg). */
void pos_tls_options_from_config(const pos_config_t *cfg, pos_tls_options_t *opt);

/* The transport for pos_conn_options_t.transport; transport_arg must point
 * at an initialised pos_tls_t. */
extern const pos_transport_ops_t pos_tls_transport;

/*
 * Describes X.509 verification flags (MBEDTLS_X509_BADCERT_*) in words,
 * e.g. "certificate expired, name mismatch". Pure; for logs and tests.
 * Returns buf.
 */
const char *pos_tls_verify_reason(uint32_t flags, char *buf, size_t len);

#endif /* AGENT_LINK_TLS_H */
