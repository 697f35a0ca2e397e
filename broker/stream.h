/*
 * A byte stream to a peer: the socket and the transport that reads and
 * writes it. TCP and TLS sit behind the transport vtable so protocol code
 * (AMQP connections, MQTT clients) never sees OpenSSL.
 *
 * A TLS stream does its handshake inside the first reads: the protocols on
 * top all wait for the client to speak first, so an owner needs nothing
 * beyond its read watcher, except that a TLS read may need the socket to
 * be writable before it can go on (the handshake's own output, a key
 * update). Such a read fails with EAGAIN and sets want_write: the owner
 * then starts its write watcher and, when it fires, reads again.
 */
#ifndef CONEY_BROKER_STREAM_H
#define CONEY_BROKER_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct stream;

/* What a listener wraps its accepted sockets in. */
enum stream_kind { STREAM_TCP, STREAM_TLS };

/* read/writev return bytes, 0 on EOF (read), or -1 with errno (EAGAIN
 * when the socket is not ready; then read may set want_write). */
typedef struct transport {
    const char *name;
    bool secure;                   /* encrypted and authenticated (TLS) */
    ssize_t (*read)(struct stream *s, void *dst, size_t n);
    ssize_t (*writev)(struct stream *s, const struct iovec *iov, int iovcnt);
    /* Says goodbye (TLS close_notify, best effort) and half-closes. */
    void (*shutdown)(struct stream *s);
    /* Closes the socket and frees the transport's state. */
    void (*close)(struct stream *s);
    /* The user the peer's verified certificate names (ssl_cert_login_from:
     * the subject's CN, or its first DNS/email subject alternative name),
     * NUL-terminated in out; returns its length, or -1 when there is no
     * verified certificate (always over TCP) or the name does not fit. */
    int (*peer_name)(struct stream *s, char *out, size_t cap);
} transport;

typedef struct stream {
    int fd;
    const transport *tr;
    void *ctx;                     /* the transport's, owned by it */
    bool want_write;               /* the last read waits for the socket to be writable */
    const char *error;             /* why the last call failed, when errno says too little;
                                    * owned by the transport, valid until the next call */
} stream;

extern const transport transport_tcp;

/* A TCP stream on fd (non-blocking): TCP_NODELAY set. */
void stream_tcp(stream *s, int fd);

/* Why a read or write on s failed with err: the transport's own words
 * (a TLS alert, a certificate problem) or strerror(err). */
const char *stream_strerror(const stream *s, int err);

#endif
