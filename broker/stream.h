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
    bool want_write;               /* the last read waits for the socket to be writable */
    const transport *tr;
    void *ctx;                     /* the transport's, owned by it */
    const char *error;             /* why the last call failed, when errno says too little;
                                    * owned by the transport, valid until the next call */
    struct stream_peer *peer;      /* counts against its address's handshakes; NULL once
                                    * logged in (stream_peer_release) */
} stream;

extern const transport transport_tcp;

/* A TCP stream on fd (non-blocking): TCP_NODELAY set. */
void stream_tcp(stream *s, int fd);

/* coney.handshake_max_per_ip: a listener counts the connections from each
 * address that have not logged in yet. stream_peer_enter counts one more
 * for the address of ss and returns its counter, which the listener
 * stores in the new stream's peer field; it sets *full and returns NULL
 * when the address already has max (and returns NULL, not counting, when
 * max is 0: no limit). */
struct sockaddr_storage;
struct stream_peer *stream_peer_enter(const struct sockaddr_storage *ss, uint32_t max,
                                      bool *full);
/* The stream logged in, or is closing: it no longer counts. Safe to call
 * more than once; the transports' close calls it. */
void stream_peer_release(stream *s);

/* Bytes written to s that the kernel still holds unsent (the peer has not
 * taken them), or -1 if it cannot tell. */
long stream_unsent(const stream *s);

/* Why a read or write on s failed with err: the transport's own words
 * (a TLS alert, a certificate problem) or strerror(err). */
const char *stream_strerror(const stream *s, int err);

#endif
