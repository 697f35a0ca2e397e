/*
 * A byte stream to a peer: the socket and the transport that reads and
 * writes it. TCP and TLS sit behind the transport vtable so protocol code
 * (AMQP connections, MQTT clients) never sees OpenSSL.
 */
#ifndef CONEY_BROKER_STREAM_H
#define CONEY_BROKER_STREAM_H

#include <sys/types.h>
#include <sys/uio.h>

struct stream;

/* read/writev return bytes, 0 on EOF (read), or -1 with errno (EAGAIN
 * when the socket is not ready). */
typedef struct transport {
    const char *name;
    ssize_t (*read)(struct stream *s, void *dst, size_t n);
    ssize_t (*writev)(struct stream *s, const struct iovec *iov, int iovcnt);
    void (*shutdown)(struct stream *s);
    void (*close)(struct stream *s);
} transport;

typedef struct stream {
    int fd;
    const transport *tr;
    void *ctx;                     /* the transport's, owned by it */
} stream;

extern const transport transport_tcp;

/* A TCP stream on fd (non-blocking): TCP_NODELAY set. */
void stream_tcp(stream *s, int fd);

#endif
