/* The plain TCP transport. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/stream.h"

static ssize_t
tcp_read(stream *s, void *dst, size_t n)
{
    return read(s->fd, dst, n);
}

static ssize_t
tcp_writev(stream *s, const struct iovec *iov, int iovcnt)
{
    return writev(s->fd, iov, iovcnt);
}

static void
tcp_shutdown(stream *s)
{
    shutdown(s->fd, SHUT_WR);
}

static void
tcp_close(stream *s)
{
    close(s->fd);
    s->fd = -1;
}

static int
tcp_peer_name(stream *s, char *out, size_t cap)
{
    (void)s;
    if (cap)
        *out = 0;
    return -1;
}

const transport transport_tcp = { "tcp", false, tcp_read, tcp_writev, tcp_shutdown,
                                  tcp_close, tcp_peer_name };

void
stream_tcp(stream *s, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    s->tr = &transport_tcp;
    s->ctx = NULL;
    s->want_write = false;
    s->error = NULL;
}

const char *
stream_strerror(const stream *s, int err)
{
    return s->error ? s->error : strerror(err);
}
