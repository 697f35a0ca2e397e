/* The plain TCP transport, and the count of connections per address that
 * have not logged in yet (coney.handshake_max_per_ip). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/map.h"
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
    stream_peer_release(s);
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
    s->peer = NULL;
}

const char *
stream_strerror(const stream *s, int err)
{
    return s->error ? s->error : strerror(err);
}

long
stream_unsent(const stream *s)
{
    int n;
    return ioctl(s->fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

/* ---- connections per address not logged in yet ---------------------------- */

typedef struct stream_peer {
    uint8_t addr[16];              /* the map's key: 4 or 16 bytes */
    uint8_t len;
    uint32_t n;
} stream_peer;

static map peers;                  /* address -> stream_peer, while n > 0 */

stream_peer *
stream_peer_enter(const struct sockaddr_storage *ss, uint32_t max, bool *full)
{
    *full = false;
    if (max == 0)
        return NULL;
    uint8_t key[16];
    uint8_t len;
    if (ss->ss_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        len = 4;
    } else if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        len = 16;
    } else {
        return NULL;
    }
    stream_peer *p = map_get(&peers, (const char *)key, len);
    if (!p) {
        if (!(p = calloc(1, sizeof *p)))
            abort();
        memcpy(p->addr, key, len);
        p->len = len;
        map_put(&peers, (const char *)p->addr, len, p);
    } else if (p->n >= max) {
        *full = true;
        return NULL;
    }
    p->n++;
    return p;
}

void
stream_peer_release(stream *s)
{
    stream_peer *p = s->peer;
    if (!p)
        return;
    s->peer = NULL;
    if (--p->n == 0) {
        map_del(&peers, (const char *)p->addr, p->len);
        free(p);
    }
}
