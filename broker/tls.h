/*
 * The TLS transport: OpenSSL behind the stream vtable (broker/stream.h).
 * This header and tls.c are the only places that know OpenSSL exists.
 *
 * One server context is built from the config (certificate, key, CA
 * bundle, versions, ciphers, peer verification) and shared by every TLS
 * listener. SIGHUP rebuilds it from the same files: connections accepted
 * afterwards use the new certificate; each open connection keeps a
 * reference to the context it started with, so nothing it relies on
 * changes under it.
 */
#ifndef CONEY_BROKER_TLS_H
#define CONEY_BROKER_TLS_H

#include <stddef.h>

#include "broker/config.h"
#include "broker/stream.h"

extern const transport transport_tls;

/* True when cfg opens a TLS listener (and so needs tls_init). */
bool tls_configured(const config *cfg);

/* Builds the server context from cfg, which must outlive tls_free
 * (reloads read the same files). Returns 0, or -1 with the reason in err
 * (a missing or unreadable file, a key that does not match its
 * certificate, a cipher list OpenSSL does not know). */
int tls_init(const config *cfg, char *err, size_t errlen);

/* Reads the certificate, key and CA files again into a new context, which
 * connections accepted from now on use. On failure (same errors as
 * tls_init) the old context stays and -1 is returned. */
int tls_reload(char *err, size_t errlen);

/* Frees the context (connections still open keep their reference). */
void tls_free(void);

/* Wraps an accepted, non-blocking fd into a TLS stream in the accept
 * state; the handshake runs inside the first reads. Returns 0, or -1
 * (out of memory, no context): the caller still owns fd. */
int stream_tls(stream *s, int fd);

#endif
