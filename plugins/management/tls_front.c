/*
 * HTTPS for the management API (management.ssl.port; RabbitMQ's 15671).
 * libmicrohttpd can only do TLS with GnuTLS, and the broker does TLS with
 * OpenSSL in one place (broker/tls.c), so TLS ends here, in the broker's
 * own transport: each accepted connection gets a socket pair, one end
 * handed to the API server as if its listener had accepted it
 * (MHD_add_connection), the other pumped to and from the TLS stream.
 * Both directions buffer at most PIPE_HIGH bytes before the side that
 * fills them stops being read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/log.h"
#include "broker/plugin.h"
#include "plugins/management/management.h"

#define PIPE_CHUNK (16 * 1024)
#define PIPE_HIGH (256 * 1024)

typedef struct tls_pipe {
    stream io;                     /* the client's TLS stream */
    int fd;                        /* our end of the pair; the server has the other */
    ev_io tls_r, tls_w, pipe_r, pipe_w;
    buf to_pipe, to_tls;           /* bytes on their way */
    bool tls_eof, pipe_eof;
    struct tls_pipe *next, *prev;
} tls_pipe;

static ev_io listener = { .fd = -1 };
static http_server *target;
static tls_pipe *pipes;

static void
pipe_free(tls_pipe *p)
{
    ev_io_stop(B.loop, &p->tls_r);
    ev_io_stop(B.loop, &p->tls_w);
    ev_io_stop(B.loop, &p->pipe_r);
    ev_io_stop(B.loop, &p->pipe_w);
    p->io.tr->close(&p->io);
    close(p->fd);
    buf_free(&p->to_pipe);
    buf_free(&p->to_tls);
    if (p->prev)
        p->prev->next = p->next;
    else
        pipes = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

/* Writes what is buffered; false if the pipe had to be freed. */
static bool
flush_side(tls_pipe *p, bool to_tls)
{
    buf *b = to_tls ? &p->to_tls : &p->to_pipe;
    ev_io *w = to_tls ? &p->tls_w : &p->pipe_w;
    while (buf_used(b)) {
        ssize_t n;
        if (to_tls) {
            struct iovec iov = { b->data + b->off, buf_used(b) };
            n = p->io.tr->writev(&p->io, &iov, 1);
        } else {
            n = write(p->fd, b->data + b->off, buf_used(b));
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(B.loop, w);
            return true;
        }
        if (n <= 0) {
            pipe_free(p);
            return false;
        }
        buf_consume(b, (size_t)n);
    }
    ev_io_stop(B.loop, w);
    buf_compact(b);
    /* drained: the other side may be read again */
    ev_io_start(B.loop, to_tls ? &p->pipe_r : &p->tls_r);
    if (p->tls_eof && p->pipe_eof && !buf_used(&p->to_tls) && !buf_used(&p->to_pipe)) {
        pipe_free(p);
        return false;
    }
    if (to_tls && p->pipe_eof && !buf_used(&p->to_tls)) {
        pipe_free(p);             /* the server closed: so do we */
        return false;
    }
    return true;
}

/* Reads one side into the other's buffer and forwards it. */
static void
pump(tls_pipe *p, bool from_tls)
{
    buf *b = from_tls ? &p->to_pipe : &p->to_tls;
    for (;;) {
        if (buf_used(b) >= PIPE_HIGH) {
            ev_io_stop(B.loop, from_tls ? &p->tls_r : &p->pipe_r);
            break;
        }
        uint8_t *dst = buf_reserve(b, PIPE_CHUNK);
        ssize_t n = from_tls ? p->io.tr->read(&p->io, dst, PIPE_CHUNK)
                             : read(p->fd, dst, PIPE_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (from_tls && p->io.want_write)
                ev_io_start(B.loop, &p->tls_w);    /* the handshake wants to write */
            break;
        }
        if (n <= 0) {
            if (from_tls) {
                p->tls_eof = true;
                shutdown(p->fd, SHUT_WR);
            } else {
                p->pipe_eof = true;
            }
            ev_io_stop(B.loop, from_tls ? &p->tls_r : &p->pipe_r);
            break;
        }
        buf_commit(b, (size_t)n);
    }
    flush_side(p, !from_tls);
}

static void
tls_r_cb(struct ev_loop *l, ev_io *w, int e)
{
    (void)l; (void)e;
    pump((tls_pipe *)((char *)w - offsetof(tls_pipe, tls_r)), true);
}

static void
pipe_r_cb(struct ev_loop *l, ev_io *w, int e)
{
    (void)l; (void)e;
    pump((tls_pipe *)((char *)w - offsetof(tls_pipe, pipe_r)), false);
}

static void
tls_w_cb(struct ev_loop *l, ev_io *w, int e)
{
    (void)l; (void)e;
    tls_pipe *p = (tls_pipe *)((char *)w - offsetof(tls_pipe, tls_w));
    if (p->io.want_write) {        /* a handshake step: reading drives it */
        ev_io_stop(B.loop, &p->tls_w);
        pump(p, true);
        return;
    }
    flush_side(p, true);
}

static void
pipe_w_cb(struct ev_loop *l, ev_io *w, int e)
{
    (void)l; (void)e;
    flush_side((tls_pipe *)((char *)w - offsetof(tls_pipe, pipe_w)), false);
}

static void
on_accept(const stream *s, const char *peer, bool loopback)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        stream copy = *s;
        copy.tr->close(&copy);
        return;
    }
    /* the API sees the real peer: guest's loopback rule depends on it */
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    struct sockaddr_in a4 = { .sin_family = AF_INET };
    char host[64];
    snprintf(host, sizeof host, "%s", peer);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = 0;
    const struct sockaddr *addr = (const struct sockaddr *)&a4;
    unsigned alen = sizeof a4;
    if (inet_pton(AF_INET, host, &a4.sin_addr) != 1) {
        if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
            addr = (const struct sockaddr *)&a6;
            alen = sizeof a6;
        } else {
            a4.sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY);
        }
    }
    if (http_server_add_connection(target, sv[1], addr, alen) != 0) {
        close(sv[0]);
        close(sv[1]);
        stream copy = *s;
        copy.tr->close(&copy);
        return;
    }
    tls_pipe *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->io = *s;
    /* HTTP logs in per request, under libmicrohttpd's own connection limits */
    stream_peer_release(&p->io);
    p->fd = sv[0];
    ev_io_init(&p->tls_r, tls_r_cb, p->io.fd, EV_READ);
    ev_io_init(&p->tls_w, tls_w_cb, p->io.fd, EV_WRITE);
    ev_io_init(&p->pipe_r, pipe_r_cb, p->fd, EV_READ);
    ev_io_init(&p->pipe_w, pipe_w_cb, p->fd, EV_WRITE);
    ev_io_start(B.loop, &p->tls_r);
    ev_io_start(B.loop, &p->pipe_r);
    p->next = pipes;
    if (pipes)
        pipes->prev = p;
    pipes = p;
}

int
tls_front_start(http_server *api, const char *addr, int port, char *err, size_t errlen)
{
    target = api;
    if (server_listen(&listener, addr, port, STREAM_TLS, on_accept) != 0) {
        snprintf(err, errlen, "cannot open the management TLS listener on %s:%d", addr, port);
        return -1;
    }
    log_info("management API over TLS listening on %s:%d", addr, port);
    return 0;
}

void
tls_front_stop(void)
{
    server_unlisten(&listener);
    while (pipes)
        pipe_free(pipes);
    target = NULL;
}
