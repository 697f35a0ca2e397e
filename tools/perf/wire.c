/* wire.c - connections through rabbitmq-c, and a raw output path beside it.
 *
 * amqp_basic_publish sends every frame of a message with its own send():
 * three system calls for a 16-byte message, which would make the tool, not
 * the broker, the bottleneck. So the hot paths (publishing, acking) encode
 * their frames with rabbitmq-c's own encoders into a perf_out buffer and
 * write many messages per send() on the connection's socket, the way a
 * client library with an output buffer does. The handshake, declarations and
 * all reading stay with rabbitmq-c. Heartbeats are off so that rabbitmq-c
 * never writes on its own while a perf_out holds half a frame.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <amqp_tcp_socket.h>

#include "perf.h"

#define FRAME_HEADER 7  /* type, channel, size */

void
perf_fail(perf_run *run, const char *who, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "coney-perf: %s: %s\n", who, msg);
    atomic_store(&run->failed, 1);
    atomic_store(&run->stop, 1);
}

static const char *
close_str(uint16_t code, amqp_bytes_t text, uint16_t cls, uint16_t mth,
          const char *what, char *buf, size_t n)
{
    int k = snprintf(buf, n, "broker closed the %s: %u %.*s", what, code,
                     (int)text.len, (const char *)text.bytes);
    if ((cls || mth) && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " (class %u method %u)", cls, mth);
    return buf;
}

const char *
perf_close_str(const amqp_frame_t *f, char *buf, size_t n)
{
    if (f->frame_type == AMQP_FRAME_METHOD &&
        f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = f->payload.method.decoded;
        return close_str(c->reply_code, c->reply_text, c->class_id,
                         c->method_id, "channel", buf, n);
    }
    if (f->frame_type == AMQP_FRAME_METHOD &&
        f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = f->payload.method.decoded;
        return close_str(c->reply_code, c->reply_text, c->class_id,
                         c->method_id, "connection", buf, n);
    }
    snprintf(buf, n, "unexpected frame type %u", f->frame_type);
    return buf;
}

const char *
perf_reply_str(amqp_rpc_reply_t r, char *buf, size_t n)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(buf, n, "ok");
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(buf, n, "no reply from the broker");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, n, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            return close_str(c->reply_code, c->reply_text, c->class_id,
                             c->method_id, "channel", buf, n);
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            return close_str(c->reply_code, c->reply_text, c->class_id,
                             c->method_id, "connection", buf, n);
        }
        snprintf(buf, n, "unexpected reply method 0x%08x", r.reply.id);
        break;
    }
    return buf;
}

int
perf_connect(const perf_opts *o, const char *name,
             amqp_connection_state_t *out, char *err, size_t errlen)
{
    char why[256];
    *out = NULL;
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    if (!sock) {
        snprintf(err, errlen, "out of memory");
        if (conn)
            amqp_destroy_connection(conn);
        return -1;
    }
    int st = amqp_socket_open(sock, o->host, o->port);
    if (st != AMQP_STATUS_OK) {
        snprintf(err, errlen, "cannot connect to %s:%d: %s", o->host, o->port,
                 amqp_error_string2(st));
        amqp_destroy_connection(conn);
        return -1;
    }
    /* rabbitmq-c sets TCP_NODELAY already; we batch frames ourselves. */
    int one = 1;
    setsockopt(amqp_socket_get_sockfd(sock), IPPROTO_TCP, TCP_NODELAY, &one,
               sizeof one);
    /* Heartbeat 0: rabbitmq-c must never write behind our back. */
    amqp_table_entry_t cp_entry = {
        .key = amqp_cstring_bytes("connection_name"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8,
                  .value.bytes = amqp_cstring_bytes(name)},
    };
    amqp_table_t cprops = {.num_entries = 1, .entries = &cp_entry};
    amqp_rpc_reply_t r = amqp_login_with_properties(
        conn, o->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, &cprops,
        AMQP_SASL_METHOD_PLAIN, o->user, o->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "login as %s on vhost %s failed: %s", o->user,
                 o->vhost, perf_reply_str(r, why, sizeof why));
        amqp_destroy_connection(conn);
        return -1;
    }
    amqp_channel_open(conn, 1);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "channel.open failed: %s",
                 perf_reply_str(r, why, sizeof why));
        amqp_destroy_connection(conn);
        return -1;
    }
    *out = conn;
    return 0;
}

void
perf_disconnect(amqp_connection_state_t conn, double timeout_s)
{
    if (!conn)
        return;
    if (timeout_s > 0) {
        struct timeval tv = {.tv_sec = (time_t)timeout_s,
                             .tv_usec = (suseconds_t)((timeout_s -
                                                       (double)(time_t)timeout_s) *
                                                      1e6)};
        amqp_set_rpc_timeout(conn, &tv);
    }
    amqp_rpc_reply_t r = amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

void
perf_abandon(amqp_connection_state_t conn)
{
    if (conn)
        amqp_destroy_connection(conn);
}

int
perf_out_init(perf_out *out, amqp_connection_state_t conn, size_t cap,
              atomic_int *stop)
{
    out->fd = amqp_socket_get_sockfd(amqp_get_socket(conn));
    out->buf = malloc(cap);
    out->len = 0;
    out->cap = cap;
    out->stop = stop;
    return out->buf && out->fd >= 0 ? 0 : -1;
}

void
perf_out_free(perf_out *out)
{
    free(out->buf);
    out->buf = NULL;
}

int
perf_out_flush(perf_out *out, perf_readable_fn on_readable, void *ctx)
{
    size_t off = 0;
    uint64_t stopped_at = 0; /* when a wait first saw the run stopped */
    while (off < out->len) {
        ssize_t n = send(out->fd, out->buf + off, out->len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return PERF_OUT_ERROR;
        /* The socket is full (rabbitmq-c keeps it non-blocking). Wait for
         * room, and read meanwhile if the owner can: a broker that stops
         * reading us until we read it must not deadlock us. */
        struct pollfd p = {.fd = out->fd,
                           .events = POLLOUT | (on_readable ? POLLIN : 0)};
        int r = poll(&p, 1, 50);
        if (r < 0 && errno != EINTR)
            return PERF_OUT_ERROR;
        /* A broker that throttles us (flow control, a memory alarm) must
         * not hold a stopped run for long. */
        if (atomic_load_explicit(out->stop, memory_order_relaxed)) {
            uint64_t now = tool_now_ns();
            if (!stopped_at)
                stopped_at = now;
            else if (now - stopped_at > 500000000u)
                return PERF_OUT_ABANDONED;
        }
        if (r <= 0)
            continue;
        if ((p.revents & POLLIN) && on_readable && on_readable(ctx) < 0)
            return PERF_OUT_ERROR;
        if ((p.revents & (POLLERR | POLLNVAL)) ||
            ((p.revents & POLLHUP) && !(p.revents & POLLIN))) {
            errno = EPIPE;
            return PERF_OUT_ERROR;
        }
    }
    out->len = 0;
    return PERF_OUT_OK;
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

size_t
perf_frame_method(uint8_t *dst, size_t room, amqp_channel_t channel,
                  amqp_method_number_t id, void *decoded)
{
    if (room < FRAME_HEADER + 4 + 1)
        return 0;
    amqp_bytes_t args = {.len = room - FRAME_HEADER - 4 - 1,
                         .bytes = dst + FRAME_HEADER + 4};
    int n = amqp_encode_method(id, decoded, args);
    if (n < 0)
        return 0;
    size_t payload = 4 + (size_t)n;
    dst[0] = AMQP_FRAME_METHOD;
    put16(dst + 1, channel);
    put32(dst + 3, (uint32_t)payload);
    put32(dst + FRAME_HEADER, id);
    dst[FRAME_HEADER + payload] = AMQP_FRAME_END;
    return FRAME_HEADER + payload + 1;
}

size_t
perf_frame_header(uint8_t *dst, size_t room, amqp_channel_t channel,
                  uint64_t body_size, amqp_basic_properties_t *props)
{
    if (room < FRAME_HEADER + 12 + 1)
        return 0;
    amqp_bytes_t enc = {.len = room - FRAME_HEADER - 12 - 1,
                        .bytes = dst + FRAME_HEADER + 12};
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, props, enc);
    if (n < 0)
        return 0;
    size_t payload = 12 + (size_t)n;
    dst[0] = AMQP_FRAME_HEADER;
    put16(dst + 1, channel);
    put32(dst + 3, (uint32_t)payload);
    put16(dst + FRAME_HEADER, AMQP_BASIC_CLASS);
    put16(dst + FRAME_HEADER + 2, 0); /* weight */
    put64(dst + FRAME_HEADER + 4, body_size);
    dst[FRAME_HEADER + payload] = AMQP_FRAME_END;
    return FRAME_HEADER + payload + 1;
}
