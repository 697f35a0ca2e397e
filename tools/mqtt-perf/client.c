/* client.c - connections: the handshake through libmosquitto, then the
 * socket taken over for the timed traffic (raw mode).
 *
 * The handshake runs the library's non-threaded loop until CONNACK and
 * SUBACK have come through its callbacks. libmosquitto 2.0 reads a packet
 * exactly (a byte for the type, a byte at a time for the length, then the
 * body), so when SUBACK has been handled no later byte sits in its buffers
 * and the socket can change hands. Publishers start only once every
 * subscriber has its SUBACK, so nothing is in flight at that moment either.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "mqtt-perf.h"

#define IN_CAP (256 * 1024)
#define OUT_CAP (128 * 1024)
#define HANDSHAKE_NS (10ull * 1000000000ull)

void
mperf_fail(mperf_run *run, const char *who, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "coney-mqtt-perf: %s: %s\n", who, msg);
    atomic_store(&run->failed, 1);
    atomic_store(&run->stop, 1);
}

/* ---- libmosquitto callbacks (the handshake) -------------------------- */

static void
on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
           const mosquitto_property *props)
{
    mperf_conn *c = obj;
    if (rc != 0) {
        mperf_fail(c->run, c->name, "connection refused: %s",
                   c->run->o->version == 5 ? mosquitto_reason_string(rc)
                                           : mosquitto_connack_string(rc));
        c->connack = -1;
        return;
    }
    uint16_t rm;
    if (props && mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM,
                                               &rm, false))
        c->receive_max = rm;
    c->connack = 1;
}

static void
on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n,
             const int *granted, const mosquitto_property *props)
{
    mperf_conn *c = obj;
    if (mid != c->sub_mid)
        return;
    for (int i = 0; i < n; i++) {
        if (granted[i] >= 0x80) {
            mperf_fail(c->run, c->name, "subscription refused (code 0x%02x)",
                       (unsigned)granted[i]);
            c->suback = -1;
            return;
        }
    }
    c->suback = 1;
}

static void
on_disconnect(struct mosquitto *mosq, void *obj, int rc,
              const mosquitto_property *props)
{
    mperf_conn *c = obj;
    c->lost = 1;
}

int
mperf_conn_step(mperf_conn *c, int wait_ms)
{
    struct pollfd pfd = {.fd = mosquitto_socket(c->mosq), .events = POLLIN};
    if (pfd.fd < 0)
        return MOSQ_ERR_NO_CONN;
    if (mosquitto_want_write(c->mosq))
        pfd.events |= POLLOUT;
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0 && errno != EINTR)
        return MOSQ_ERR_ERRNO;
    int rc = MOSQ_ERR_SUCCESS;
    if (r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        rc = mosquitto_loop_read(c->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && r > 0 && (pfd.revents & POLLOUT))
        rc = mosquitto_loop_write(c->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_misc(c->mosq);
    return rc;
}

/* Run the library until *flag is set. */
static int
loop_until(mperf_conn *c, const int *flag, const char *what)
{
    uint64_t deadline = tool_now_ns() + HANDSHAKE_NS;
    while (*flag == 0) {
        if (atomic_load(&c->run->stop))
            return -1;
        int rc = mperf_conn_step(c, 100);
        if (*flag)
            break;
        if (rc != MOSQ_ERR_SUCCESS || c->lost) {
            mperf_fail(c->run, c->name, "connection lost waiting for %s: %s",
                       what, rc == MOSQ_ERR_ERRNO ? strerror(errno)
                                                  : mosquitto_strerror(rc));
            return -1;
        }
        if (tool_now_ns() > deadline) {
            mperf_fail(c->run, c->name, "no %s within 10 s", what);
            return -1;
        }
    }
    return *flag > 0 ? 0 : -1;
}

int
mperf_conn_open(mperf_conn *c, mperf_run *run, const char *name,
                const char *client_id, void *owner)
{
    const mperf_opts *o = run->o;
    c->run = run;
    c->name = name;
    c->owner = owner;
    c->fd = -1;
    c->receive_max = 65535;
    c->mosq = mosquitto_new(client_id, true, c);
    if (!c->mosq) {
        mperf_fail(run, name, "mosquitto_new: %s", strerror(errno));
        return -1;
    }
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         o->version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (o->qos > 0)
        mosquitto_int_option(c->mosq, MOSQ_OPT_SEND_MAXIMUM, (int)o->inflight);
    if (o->user)
        mosquitto_username_pw_set(c->mosq, o->user, o->password);
    mosquitto_connect_v5_callback_set(c->mosq, on_connect);
    mosquitto_subscribe_v5_callback_set(c->mosq, on_subscribe);
    mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect);
    int rc = mosquitto_connect(c->mosq, o->host, o->port, o->keepalive);
    if (rc != MOSQ_ERR_SUCCESS) {
        mperf_fail(run, name, "cannot connect to %s:%d: %s", o->host, o->port,
                   rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return -1;
    }
    if (loop_until(c, &c->connack, "CONNACK") < 0)
        return -1;
    c->last_write_ns = tool_now_ns();
    return 0;
}

int
mperf_conn_subscribe(mperf_conn *c, char **topics, int n)
{
    const mperf_opts *o = c->run->o;
    int rc = mosquitto_subscribe_multiple(c->mosq, &c->sub_mid, n, topics,
                                          o->qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        mperf_fail(c->run, c->name, "subscribe: %s", mosquitto_strerror(rc));
        return -1;
    }
    return loop_until(c, &c->suback, "SUBACK");
}

int
mperf_conn_take(mperf_conn *c)
{
    /* Whatever the library still has to write goes first. */
    uint64_t deadline = tool_now_ns() + HANDSHAKE_NS;
    while (mosquitto_want_write(c->mosq)) {
        int rc = mperf_conn_step(c, 100);
        if (rc != MOSQ_ERR_SUCCESS || tool_now_ns() > deadline) {
            mperf_fail(c->run, c->name, "connection lost: %s",
                       mosquitto_strerror(rc));
            return -1;
        }
    }
    c->fd = mosquitto_socket(c->mosq);
    int fl = fcntl(c->fd, F_GETFL);
    if (c->fd < 0 || fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        mperf_fail(c->run, c->name, "no usable socket");
        return -1;
    }
    c->out = malloc(OUT_CAP);
    c->in = malloc(IN_CAP);
    if (!c->out || !c->in) {
        mperf_fail(c->run, c->name, "out of memory");
        return -1;
    }
    c->out_cap = OUT_CAP;
    c->in_cap = IN_CAP;
    return 0;
}

int
mperf_conn_put(mperf_conn *c, const void *p, size_t n)
{
    if (n > c->out_cap - c->out_len) {
        size_t cap = c->out_cap * 2;
        while (cap - c->out_len < n)
            cap *= 2;
        uint8_t *b = realloc(c->out, cap);
        if (!b) {
            mperf_fail(c->run, c->name, "out of memory");
            return -1;
        }
        c->out = b;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

int
mperf_conn_flush(mperf_conn *c, mperf_input_fn on_input, void *ctx,
                 uint64_t give_up_ns)
{
    size_t off = 0;
    uint64_t stopped_at = 0;
    /* on_input may append (acks); out_len is read afresh each time. */
    while (off < c->out_len) {
        ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (give_up_ns && atomic_load_explicit(&c->run->stop,
                                                   memory_order_relaxed)) {
                uint64_t now = tool_now_ns();
                if (!stopped_at) {
                    stopped_at = now;
                } else if (now - stopped_at > give_up_ns) {
                    if (off > 0)
                        c->half_written = 1;
                    c->out_len = 0;
                    return -2;
                }
            }
            struct pollfd pfd = {.fd = c->fd,
                                 .events = POLLOUT | (on_input ? POLLIN : 0)};
            if (poll(&pfd, 1, 100) < 0 && errno != EINTR) {
                mperf_fail(c->run, c->name, "poll: %s", strerror(errno));
                return -1;
            }
            if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && on_input &&
                on_input(ctx) < 0)
                return -1;
            continue;
        }
        if (!atomic_load(&c->run->failed))
            mperf_fail(c->run, c->name, "connection lost: %s",
                       n == 0 ? "wrote nothing" : strerror(errno));
        c->half_written = 1;
        return -1;
    }
    c->out_len = 0;
    c->last_write_ns = tool_now_ns();
    return 0;
}

long
mperf_conn_read(mperf_conn *c, int wait_ms)
{
    for (int tries = 0;; tries++) {
        if (c->in_len == c->in_cap)
            return 0; /* the caller parses (and grows) first */
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return n;
        }
        if (n == 0) {
            if (!atomic_load(&c->run->failed))
                mperf_fail(c->run, c->name, "connection closed by the broker");
            c->lost = 1;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            if (!atomic_load(&c->run->failed))
                mperf_fail(c->run, c->name, "connection lost: %s", strerror(errno));
            c->lost = 1;
            return -1;
        }
        if (wait_ms == 0 || tries > 0)
            return 0;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r = poll(&pfd, 1, wait_ms);
        if (r <= 0)
            return 0;
    }
}

void
mperf_conn_keepalive(mperf_conn *c, uint64_t now)
{
    int ka = c->run->o->keepalive;
    if (ka > 0 && now - c->last_write_ns > (uint64_t)ka * 500000000u) {
        static const uint8_t pingreq[2] = {0xc0, 0x00};
        mperf_conn_put(c, pingreq, 2);
        c->last_write_ns = now;
    }
}

long
mperf_conn_packet(mperf_conn *c, size_t start, size_t *body_off)
{
    size_t avail = c->in_len - start;
    uint32_t rl = 0;
    size_t i;
    for (i = 1;; i++) {
        if (i >= avail)
            return 0;
        uint8_t b = c->in[start + i];
        rl |= (uint32_t)(b & 0x7f) << (7 * (i - 1));
        if (!(b & 0x80))
            break;
        if (i == 4) {
            mperf_fail(c->run, c->name, "malformed remaining length from the broker");
            return -1;
        }
    }
    size_t total = i + 1 + rl;
    if (total > avail) {
        if (start + total > c->in_cap) {
            uint8_t *b = realloc(c->in, start + total);
            if (!b) {
                mperf_fail(c->run, c->name, "out of memory");
                return -1;
            }
            c->in = b;
            c->in_cap = start + total;
        }
        return 0;
    }
    *body_off = start + i + 1;
    return (long)total;
}

void
mperf_conn_close(mperf_conn *c)
{
    if (c->mosq) {
        if (c->connack > 0 && !c->lost && !c->half_written)
            mosquitto_disconnect(c->mosq);
        mosquitto_destroy(c->mosq);
        c->mosq = NULL;
    }
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
}
