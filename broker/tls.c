/*
 * The TLS transport: OpenSSL on a non-blocking socket, behind the stream
 * vtable.
 *
 * The handshake is not a separate phase: an accepted stream is in the
 * accept state and SSL_read drives the handshake until application data
 * flows. Every protocol on top (AMQP's header, MQTT's CONNECT) waits for
 * the client to speak first, so the owner's read watcher is all the
 * handshake needs; when OpenSSL has to write and the socket is full, the
 * read reports EAGAIN with want_write set and the owner's write watcher
 * calls the read again. A slow or silent handshake therefore costs one
 * idle connection and is dropped by the owner's handshake timeout; a
 * failed one (plaintext, an untrusted or expired certificate, TLS 1.1)
 * fails that connection's read with the reason in stream.error.
 *
 * Reloading builds a whole new SSL_CTX and swaps it in: an SSL holds a
 * reference to the context it was made from, so connections keep theirs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "broker/log.h"
#include "broker/tls.h"

typedef struct tls_stream {
    SSL *ssl;                      /* holds a reference to its SSL_CTX */
    bool broken;                   /* a fatal error: no close_notify may follow */
    char error[200];               /* stream.error points here */
} tls_stream;

static const config *cfg;          /* borrowed from tls_init until tls_free */
static SSL_CTX *current;           /* what new connections are made from */

bool
tls_configured(const config *c)
{
    return c->tls_port != 0 || c->mqtt_tls_port != 0 || c->management_tls_port != 0;
}

/* The newest error on OpenSSL's queue in words; clears the queue. */
static const char *
ssl_reason(void)
{
    unsigned long code = ERR_peek_last_error();
    const char *why = code ? ERR_reason_error_string(code) : NULL;
    ERR_clear_error();
    return why ? why : "unknown OpenSSL error";
}

/* ---- the context ------------------------------------------------------------ */

/* Splits ssl_options.ciphers into TLS 1.3 suites (TLS_*) and the TLS 1.2
 * cipher list, as OpenSSL configures them apart. */
static int
set_ciphers(SSL_CTX *ctx, char *err, size_t errlen)
{
    if (!cfg->tls_ciphers[0])
        return 0;
    char v12[sizeof cfg->tls_ciphers] = "", v13[sizeof cfg->tls_ciphers] = "";
    size_t n12 = 0, n13 = 0;
    for (const char *p = cfg->tls_ciphers; *p; ) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool is13 = strncmp(p, "TLS_", 4) == 0;
        char *dst = is13 ? v13 : v12;
        size_t *len = is13 ? &n13 : &n12;
        if (*len)
            dst[(*len)++] = ':';
        memcpy(dst + *len, p, n);
        *len += n;
        dst[*len] = 0;
        p += n + (e != NULL);
    }
    if (n12 && !SSL_CTX_set_cipher_list(ctx, v12)) {
        snprintf(err, errlen, "ssl_options.ciphers: no TLS 1.2 cipher of '%s' is usable: %s",
                 v12, ssl_reason());
        return -1;
    }
    if (n13 && !SSL_CTX_set_ciphersuites(ctx, v13)) {
        snprintf(err, errlen, "ssl_options.ciphers: no TLS 1.3 suite of '%s' is usable: %s",
                 v13, ssl_reason());
        return -1;
    }
    return 0;
}

/* Logs which certificate the context serves (reloads are checked by it). */
static void
log_certificate(SSL_CTX *ctx, const char *what)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x)
        return;
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
    char *serial = NULL;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn)
        serial = BN_bn2hex(bn);
    log_info("TLS %s certificate %s (subject %s, serial %s)", what, cfg->tls_certfile,
             subject, serial ? serial : "?");
    OPENSSL_free(serial);
    BN_free(bn);
}

static SSL_CTX *
build_ctx(char *err, size_t errlen)
{
    if (!cfg->tls_certfile[0] || !cfg->tls_keyfile[0]) {
        snprintf(err, errlen, "a TLS listener needs ssl_options.certfile and ssl_options.keyfile");
        return NULL;
    }
    if (cfg->tls_verify_peer && !cfg->tls_cacertfile[0]) {
        snprintf(err, errlen, "ssl_options.verify = verify_peer needs ssl_options.cacertfile");
        return NULL;
    }
    if (!(cfg->tls_versions & (CONFIG_TLS_1_2 | CONFIG_TLS_1_3))) {
        snprintf(err, errlen, "ssl_options.versions allows no TLS version");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", ssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, cfg->tls_versions & CONFIG_TLS_1_2 ? TLS1_2_VERSION
                                                                          : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, cfg->tls_versions & CONFIG_TLS_1_3 ? TLS1_3_VERSION
                                                                          : TLS1_2_VERSION);
    /* No renegotiation (so a write never waits for a read after the
     * handshake); a peer's EOF without close_notify is an EOF. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    /* Writes come from an output buffer that moves when compacted and
     * grows between retries; idle connections give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char sid[] = "coney";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    SSL_CTX_set_dh_auto(ctx, 1);
    if (set_ciphers(ctx, err, errlen) != 0)
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_certfile) != 1) {
        snprintf(err, errlen, "cannot load ssl_options.certfile %s: %s", cfg->tls_certfile,
                 ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_keyfile, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "cannot load ssl_options.keyfile %s: %s", cfg->tls_keyfile,
                 ssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "ssl_options.keyfile %s does not match ssl_options.certfile %s: %s",
                 cfg->tls_keyfile, cfg->tls_certfile, ssl_reason());
        goto fail;
    }
    if (cfg->tls_cacertfile[0]) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_cacertfile, NULL) != 1) {
            snprintf(err, errlen, "cannot load ssl_options.cacertfile %s: %s",
                     cfg->tls_cacertfile, ssl_reason());
            goto fail;
        }
        /* tell clients which CAs we trust, so they pick the right certificate */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_cacertfile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    int mode = SSL_VERIFY_NONE;
    if (cfg->tls_verify_peer)
        mode = SSL_VERIFY_PEER | (cfg->tls_fail_if_no_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, NULL);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int
tls_init(const config *c, char *err, size_t errlen)
{
    cfg = c;
    current = build_ctx(err, errlen);
    if (!current) {
        cfg = NULL;
        return -1;
    }
    log_certificate(current, "serving");
    return 0;
}

int
tls_reload(char *err, size_t errlen)
{
    if (!cfg) {
        snprintf(err, errlen, "no TLS listener is configured");
        return -1;
    }
    SSL_CTX *ctx = build_ctx(err, errlen);
    if (!ctx)
        return -1;
    SSL_CTX_free(current);         /* open connections hold their own reference */
    current = ctx;
    log_certificate(current, "reloaded");
    return 0;
}

void
tls_free(void)
{
    SSL_CTX_free(current);
    current = NULL;
    cfg = NULL;
}

/* ---- the transport ----------------------------------------------------------- */

/* Maps a failed SSL_read/SSL_write (rc, errno as it was right after the
 * call) onto the stream's convention. */
static ssize_t
tls_fail(stream *s, tls_stream *t, int rc, int sys_errno, bool reading)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        s->want_write = reading;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:    /* close_notify, or a bare EOF */
        if (reading)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        t->broken = true;
        ERR_clear_error();
        if (sys_errno == 0) {
            if (reading)
                return 0;
            sys_errno = EPIPE;
        }
        errno = sys_errno;
        return -1;
    default: {                     /* SSL_ERROR_SSL: a protocol or certificate failure */
        t->broken = true;
        const char *why = ssl_reason();
        long vr = SSL_get_verify_result(t->ssl);
        const char *phase = SSL_is_init_finished(t->ssl) ? "TLS error" : "TLS handshake failed";
        if (vr != X509_V_OK)
            snprintf(t->error, sizeof t->error, "%s: %s (%s)", phase, why,
                     X509_verify_cert_error_string(vr));
        else
            snprintf(t->error, sizeof t->error, "%s: %s", phase, why);
        s->error = t->error;
        errno = EPROTO;
        return -1;
    }
    }
}

static ssize_t
tls_read(stream *s, void *dst, size_t n)
{
    tls_stream *t = s->ctx;
    s->want_write = false;
    s->error = NULL;
    size_t got = 0;
    ERR_clear_error();
    /* Take what OpenSSL has already decrypted too: bytes left inside it
     * would wait unseen while the socket stays quiet. */
    while (got < n) {
        size_t k;
        errno = 0;
        int rc = SSL_read_ex(t->ssl, (char *)dst + got, n - got, &k);
        if (rc <= 0) {
            if (got > 0) {         /* the next read meets this again */
                ERR_clear_error();
                break;
            }
            return tls_fail(s, t, rc, errno, true);
        }
        got += k;
        if (SSL_pending(t->ssl) == 0)
            break;
    }
    return (ssize_t)got;
}

static ssize_t
tls_writev(stream *s, const struct iovec *iov, int iovcnt)
{
    tls_stream *t = s->ctx;
    s->error = NULL;
    size_t total = 0;
    ERR_clear_error();
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        size_t k;
        errno = 0;
        int rc = SSL_write_ex(t->ssl, iov[i].iov_base, iov[i].iov_len, &k);
        if (rc <= 0) {
            if (total > 0) {
                ERR_clear_error();
                break;
            }
            /* WANT_READ cannot happen once the handshake is done (no
             * renegotiation), and nothing writes before it is. */
            return tls_fail(s, t, rc, errno, false);
        }
        total += k;
        if (k < iov[i].iov_len)
            break;
    }
    return (ssize_t)total;
}

/* close_notify, once, if the session is healthy; the socket may refuse it. */
static void
say_goodbye(tls_stream *t)
{
    if (t->broken || !SSL_is_init_finished(t->ssl) ||
        (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

static void
tls_shutdown(stream *s)
{
    say_goodbye(s->ctx);
    shutdown(s->fd, SHUT_WR);
}

static void
tls_close(stream *s)
{
    stream_peer_release(s);
    tls_stream *t = s->ctx;
    if (t) {
        say_goodbye(t);
        if (t->broken && !SSL_is_init_finished(t->ssl)) {
            /* A refused handshake (plaintext, say) leaves the client's
             * bytes unread; reading them first makes close() end the
             * connection with a FIN rather than a reset. */
            char junk[4096];
            for (int i = 0; i < 16 && recv(s->fd, junk, sizeof junk, MSG_DONTWAIT) > 0; i++)
                ;
        }
        SSL_free(t->ssl);
        free(t);
        s->ctx = NULL;
    }
    s->error = NULL;
    close(s->fd);
    s->fd = -1;
}

/* Copies a name from a certificate, refusing one with a NUL inside (a
 * classic way to smuggle "guest\0.evil.example") or one that does not fit. */
static int
copy_name(char *out, size_t cap, const unsigned char *p, int len)
{
    if (len <= 0 || (size_t)len >= cap || memchr(p, 0, (size_t)len))
        return -1;
    memcpy(out, p, (size_t)len);
    out[len] = 0;
    return len;
}

static int
tls_peer_name(stream *s, char *out, size_t cap)
{
    tls_stream *t = s->ctx;
    if (cap)
        *out = 0;
    if (!cap || !t || !SSL_is_init_finished(t->ssl) ||
        !(SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER))
        return -1;
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (!cert || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return -1;
    int rc = -1;
    if (cfg && cfg->tls_login_from == CONFIG_LOGIN_SAN) {
        GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
            const ASN1_IA5STRING *v = g->type == GEN_DNS ? g->d.dNSName
                                    : g->type == GEN_EMAIL ? g->d.rfc822Name : NULL;
            if (v) {
                rc = copy_name(out, cap, ASN1_STRING_get0_data(v), ASN1_STRING_length(v));
                break;
            }
        }
        GENERAL_NAMES_free(names);
        return rc;
    }
    X509_NAME *subject = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (i < 0)
        return -1;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
    if (len >= 0)
        rc = copy_name(out, cap, utf8, len);
    OPENSSL_free(utf8);
    ERR_clear_error();
    return rc;
}

const transport transport_tls = { "tls", true, tls_read, tls_writev, tls_shutdown, tls_close,
                                  tls_peer_name };

int
stream_tls(stream *s, int fd)
{
    if (!current)
        return -1;
    tls_stream *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->ssl = SSL_new(current);
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return -1;
    }
    SSL_set_accept_state(t->ssl);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    s->tr = &transport_tls;
    s->ctx = t;
    s->want_write = false;
    s->error = NULL;
    s->peer = NULL;
    return 0;
}
