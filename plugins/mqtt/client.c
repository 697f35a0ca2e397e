/*
 * MQTT clients: the listener, socket I/O, framing, the gate that sends
 * each packet to its handler, keepalive, closing; and the plugin's entry
 * points. One lazy timer per client checks the CONNECT deadline and the
 * keepalive (1.5 times the interval the client chose) against the time of
 * the last packet. Output collects in the client's buffer and goes out
 * with one write before the loop sleeps; a client is never freed inside
 * its own callback (a check watcher reaps the dead).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/log.h"
#include "broker/persist.h"
#include "broker/plugin.h"
#include "plugins/mqtt/session.h"

#define READ_CHUNK (64 * 1024)
#define READ_BUDGET (1024 * 1024)
#define OUT_HIGH_WATER (4u << 20)
#define CONNECT_TIMEOUT 10.0
#define DRAIN_TIMEOUT 2.0

static ev_io listener, tls_listener;
static ev_prepare flush_watcher;
static ev_check reap_watcher;
static mqtt_client *clients, *flush_list, *dead_list, *ack_waiters;
static size_t nclients;

/* ---- output ----------------------------------------------------------------- */

static void
want_flush(mqtt_client *c)
{
    if (!c->flush_queued && c->state != MC_DEAD) {
        c->flush_queued = true;
        c->flush_next = flush_list;
        flush_list = c;
    }
}

uint8_t *
mqtt_client_reserve(mqtt_client *c, size_t n)
{
    uint8_t *p = buf_reserve(&c->out, n);
    buf_commit(&c->out, n);
    want_flush(c);
    return p;
}

bool
mqtt_client_writable(const mqtt_client *c)
{
    return c->state == MC_OPEN && buf_used(&c->out) < OUT_HIGH_WATER;
}

static void flush(mqtt_client *c);

static void
linger_done(mqtt_client *c)
{
    mqtt_client_abort(c, NULL);
}

static void
flush(mqtt_client *c)
{
    while (buf_used(&c->out)) {
        struct iovec iov = { c->out.data + c->out.off, buf_used(&c->out) };
        ssize_t n = c->io.tr->writev(&c->io, &iov, 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(B.loop, &c->wio);
                return;
            }
            mqtt_client_abort(c, stream_strerror(&c->io, errno));
            return;
        }
        buf_consume(&c->out, (size_t)n);
        c->send_oct += (size_t)n;
    }
    ev_io_stop(B.loop, &c->wio);
    buf_free(&c->out);             /* an idle client keeps no buffer */
    if (c->state == MC_DRAINING) {
        linger_done(c);
        return;
    }
    /* Room again: consumers held back by the high-water mark go on. */
    if (c->session)
        mqtt_session_kick(c->session);
}

static void
flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    while (flush_list) {
        mqtt_client *c = flush_list;
        flush_list = c->flush_next;
        c->flush_queued = false;
        if (c->state != MC_DEAD)
            flush(c);
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    mqtt_client *c = (mqtt_client *)((char *)w - offsetof(mqtt_client, wio));
    flush(c);
    /* a TLS read (the handshake) was waiting for room to write */
    if (c->state != MC_DEAD && c->io.want_write)
        read_cb(loop, &c->rio, EV_READ);
}

/* ---- closing ------------------------------------------------------------------ */

static void
client_release(mqtt_client *c)
{
    if (c->counted) {
        auth_connection_close(c->u, c->vh);
        c->counted = false;
    }
    if (c->ack_waiting) {
        for (mqtt_client **p = &ack_waiters; *p; p = &(*p)->wait_next) {
            if (*p == c) {
                *p = c->wait_next;
                break;
            }
        }
        c->ack_waiting = false;
    }
    mqtt_session *s = c->session;
    c->session = NULL;
    message *will = c->will;
    c->will = NULL;
    if (s) {
        s->client = NULL;
        bool send_will = will && (!c->graceful || c->will_on_close);
        if (send_will && c->will_delay > 0 && s->durable) {
            /* MQTT 5 will delay: the session holds it; a reconnect
             * within the delay cancels it. */
            s->will = will;
            will = NULL;
            ev_timer_set(&s->will_timer, c->will_delay, 0.0);
            ev_timer_start(B.loop, &s->will_timer);
        } else if (send_will) {
            mqtt_will_publish(c->vh, will);
        }
        mqtt_session_detach(s);
    }
    message_unref(&will);
    if (c->aliases) {
        for (int i = 0; i <= MQTT_SERVER_ALIAS_MAX; i++) {
            free(c->aliases->in[i]);
            free(c->aliases->out[i]);
        }
        free(c->aliases);
        c->aliases = NULL;
    }
    if (c->brake_q)
        queue_unref(c->brake_q);
    c->brake_q = NULL;
    c->braked = false;
}

/* The context of a client's log lines: " (vhost '/', user 'guest')" once
 * it has logged in, "" before. Written into out (cap bytes). */
static const char *
client_log_ctx(const mqtt_client *c, char *out, size_t cap)
{
    if (c->vh)
        snprintf(out, cap, " (vhost '%.*s', user '%s')", (int)c->vh->name.len, c->vh->name.data,
                 c->user);
    else
        out[0] = 0;
    return out;
}

void
mqtt_client_abort(mqtt_client *c, const char *why)
{
    if (c->state == MC_DEAD)
        return;
    char ctx[400];
    if (why)
        log_info("closing MQTT connection " MQTT_CLIENT_FMT "%s: %s", MQTT_CLIENT_ARG(c),
                 client_log_ctx(c, ctx, sizeof ctx), why);
    ev_io_stop(B.loop, &c->rio);
    ev_io_stop(B.loop, &c->wio);
    ev_timer_stop(B.loop, &c->timer);
    c->state = MC_DEAD;
    client_release(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nclients--;
    c->io.tr->close(&c->io);
    c->dead_next = dead_list;
    dead_list = c;
}

void
mqtt_client_close(mqtt_client *c, uint8_t reason, const char *why)
{
    if (c->state == MC_DEAD || c->state == MC_DRAINING)
        return;
    char ctx[400];
    if (why)
        log_info("closing MQTT connection " MQTT_CLIENT_FMT "%s: %s", MQTT_CLIENT_ARG(c),
                 client_log_ctx(c, ctx, sizeof ctx), why);
    if (c->version == MQTT_V5 && c->state == MC_OPEN && reason != 0xff) {
        mqtt_disconnect d = { .reason = reason };
        size_t n = mqtt_disconnect_size(&d, MQTT_V5);
        if (n <= c->max_packet_out || c->max_packet_out == 0)
            mqtt_disconnect_encode(&d, MQTT_V5, mqtt_client_reserve(c, n));
    }
    /* The will goes out now, not after the output drained. */
    client_release(c);
    c->state = MC_DRAINING;
    c->deadline = ev_now(B.loop) + DRAIN_TIMEOUT;
    if (buf_used(&c->out) == 0) {
        linger_done(c);
    } else {
        mqtt_client_arm(c);
        want_flush(c);
    }
}

static void
reap_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    while (dead_list) {
        mqtt_client *c = dead_list;
        dead_list = c->dead_next;
        buf_free(&c->in);
        buf_free(&c->out);
        free(c->acks);
        free(c);
    }
}

/* ---- acks after commit -------------------------------------------------------- */

static void
send_ack(mqtt_client *c, uint8_t type, uint16_t id, uint8_t reason)
{
    mqtt_ack a = { .type = type, .packet_id = id, .reason = reason };
    size_t n = mqtt_ack_size(&a, c->version);
    mqtt_ack_encode(&a, c->version, mqtt_client_reserve(c, n));
}

/* Sends the acks whose batch has committed, in order. */
static void
acks_progress(mqtt_client *c)
{
    while (c->acks_head < c->acks_len) {
        struct mqtt_pending_ack *a = &c->acks[c->acks_head];
        if (a->batch && !persist_committed(a->batch))
            break;
        uint8_t reason = a->reason;
        /* A failed write is not a success: MQTT 5 says so, older
         * versions can only be left unacknowledged (the client resends). */
        bool failed = a->batch && persist_failed(a->batch);
        if (failed && c->version == MQTT_V5)
            reason = MQTT_RC_UNSPECIFIED;
        if (!failed || c->version == MQTT_V5)
            send_ack(c, a->type, a->packet_id, reason);
        if (a->type == MQTT_PUBACK || failed) {
            if (c->inflight_in)
                c->inflight_in--;
        }
        if (failed && a->type == MQTT_PUBREC && c->session) {
            mqtt_session *s = c->session;
            for (size_t i = 0; i < s->nqos2_in; i++) {
                if (s->qos2_in[i] == a->packet_id) {
                    s->qos2_in[i] = s->qos2_in[--s->nqos2_in];
                    break;
                }
            }
        }
        c->acks_head++;
    }
    if (c->acks_head == c->acks_len) {
        c->acks_head = c->acks_len = 0;
    } else if (!c->ack_waiting) {
        c->ack_waiting = true;
        c->wait_next = ack_waiters;
        ack_waiters = c;
    }
}

void
mqtt_client_ack_after(mqtt_client *c, uint8_t type, uint16_t packet_id, uint8_t reason,
                      uint64_t batch)
{
    if (batch == 0 && c->acks_head == c->acks_len) {
        send_ack(c, type, packet_id, reason);
        if (type == MQTT_PUBACK && c->inflight_in)
            c->inflight_in--;
        return;
    }
    c->acks = buf_array_room(c->acks, sizeof *c->acks, &c->acks_head, &c->acks_len,
                             &c->acks_cap);
    c->acks[c->acks_len++] = (struct mqtt_pending_ack){ batch, packet_id, type, reason };
    acks_progress(c);
}

static void
store_progress(void)
{
    mqtt_client *list = ack_waiters;
    ack_waiters = NULL;
    while (list) {
        mqtt_client *c = list;
        list = c->wait_next;
        c->ack_waiting = false;
        if (c->state == MC_OPEN || c->state == MC_CONNECTING)
            acks_progress(c);
    }
}

/* ---- input ---------------------------------------------------------------------- */

/* The gate: what may come when, and who handles it. */
static void
dispatch(mqtt_client *c, const mqtt_frame *f)
{
    if (c->state == MC_CONNECTING) {
        if (f->type != MQTT_CONNECT) {
            mqtt_client_abort(c, "first packet is not CONNECT");
            return;
        }
        mqtt_handle_connect(c, f);
        return;
    }
    switch (f->type) {
    case MQTT_PUBLISH:
        mqtt_handle_publish(c, f);
        return;
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
        mqtt_handle_ack(c, f);
        return;
    case MQTT_SUBSCRIBE:
        mqtt_handle_subscribe(c, f);
        return;
    case MQTT_UNSUBSCRIBE:
        mqtt_handle_unsubscribe(c, f);
        return;
    case MQTT_PINGREQ:
        if (mqtt_pingreq_decode(f, c->version) != MQTT_OK) {
            mqtt_client_close(c, MQTT_RC_MALFORMED, "malformed PINGREQ");
            return;
        }
        mqtt_pingresp_encode(mqtt_client_reserve(c, MQTT_PING_SIZE));
        return;
    case MQTT_DISCONNECT:
        mqtt_handle_disconnect(c, f);
        return;
    case MQTT_CONNECT:
        mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
        return;
    case MQTT_AUTH:
        /* No enhanced authentication is offered, so AUTH never fits. */
        mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR, "unexpected AUTH");
        return;
    default:
        mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR, "a packet only a server sends");
        return;
    }
}

/* Handles the complete packets in p[0..len); returns how many bytes they
 * took. Stops early when the client closes or is braked. */
static size_t
process_span(mqtt_client *c, const uint8_t *p, size_t len)
{
    size_t off = 0;
    while ((c->state == MC_CONNECTING || c->state == MC_OPEN) && !c->braked &&
           !c->refusing) {
        mqtt_frame f;
        size_t used;
        int rc = mqtt_frame_parse(p + off, len - off, c->max_packet_in, &f, &used);
        if (rc == MQTT_NEED_MORE)
            break;
        if (rc != MQTT_OK) {
            char why[96];
            snprintf(why, sizeof why, "bad packet: %s", mqtt_strerror(rc));
            if (c->state == MC_CONNECTING)
                mqtt_client_abort(c, why);
            else
                mqtt_client_close(c, (uint8_t)-rc, why);
            break;
        }
        dispatch(c, &f);
        if (c->state == MC_DEAD)
            break;
        off += used;
    }
    return off;
}

static void
process(mqtt_client *c)
{
    size_t used = process_span(c, c->in.data + c->in.off, buf_used(&c->in));
    if (c->state != MC_DEAD)
        buf_consume(&c->in, used);
}

/* Most reads hold whole packets: they are handled straight from one
 * shared buffer, and a client keeps its own input buffer only for a
 * packet cut in half, so an idle connection holds none. */
static uint8_t read_scratch[READ_CHUNK];

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    mqtt_client *c = (mqtt_client *)((char *)w - offsetof(mqtt_client, rio));
    size_t budget = READ_BUDGET;
    while (budget > 0 && c->state != MC_DEAD && c->reading) {
        bool direct = buf_used(&c->in) == 0;
        uint8_t *dst = direct ? read_scratch : buf_reserve(&c->in, READ_CHUNK);
        size_t room = direct ? sizeof read_scratch : c->in.cap - c->in.len;
        ssize_t n = c->io.tr->read(&c->io, dst, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                mqtt_client_abort(c, c->state == MC_DRAINING ? NULL
                                     : stream_strerror(&c->io, errno));
            else if (c->io.want_write)
                ev_io_start(B.loop, &c->wio);
            break;
        }
        if (n == 0) {
            mqtt_client_abort(c, c->state == MC_DRAINING || c->graceful ? NULL
                                 : "client closed the connection without DISCONNECT");
            break;
        }
        c->last_recv = ev_now(B.loop);
        c->recv_oct += (size_t)n;
        if (c->state == MC_DRAINING) {
            c->in.off = c->in.len = 0;
            continue;
        }
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        if (direct) {
            size_t used = process_span(c, read_scratch, (size_t)n);
            if (c->state != MC_DEAD && used < (size_t)n)
                buf_append(&c->in, read_scratch + used, (size_t)n - used);
        } else {
            buf_commit(&c->in, (size_t)n);
            process(c);
        }
    }
    if (c->state == MC_DEAD)
        return;
    if (buf_used(&c->in) == 0)
        buf_free(&c->in);
    else
        buf_compact(&c->in);
}

static void
stop_reading(mqtt_client *c)
{
    if (c->reading) {
        ev_io_stop(B.loop, &c->rio);
        c->reading = false;
    }
}

static void
start_reading(mqtt_client *c)
{
    if (!c->reading && c->state != MC_DEAD) {
        ev_io_start(B.loop, &c->rio);
        c->reading = true;
    }
}

struct mqtt_aliases *
mqtt_client_aliases(mqtt_client *c)
{
    if (!c->aliases) {
        c->aliases = calloc(1, sizeof *c->aliases);
        if (!c->aliases)
            abort();
    }
    return c->aliases;
}

#define BRAKE_POLL 0.005

void
mqtt_client_brake(mqtt_client *c, queue *q)
{
    if (c->braked)
        return;
    c->braked = true;
    c->brake_q = q;
    if (q)
        queue_ref(q);
    stop_reading(c);
    mqtt_client_arm(c);
}

static bool
brake_holds(const mqtt_client *c)
{
    if (persist_flow_blocked() || B.mem_alarm || B.disk_alarm)
        return true;
    const queue *q = c->brake_q;
    return q && !q->deleted && q->nconsumers && queue_ready(q) > MQTT_BACKLOG_LOW;
}

static void
brake_release(mqtt_client *c)
{
    c->braked = false;
    if (c->brake_q)
        queue_unref(c->brake_q);
    c->brake_q = NULL;
    start_reading(c);
    process(c);                    /* what was read before the brake */
}

/* libev's "be smart about timeouts": one timer, set for the next thing
 * this client waits for. */
void
mqtt_client_arm(mqtt_client *c)
{
    ev_tstamp now = ev_now(B.loop), at;
    switch (c->state) {
    case MC_CONNECTING:
        at = c->refusing ? c->refuse_at : c->deadline;
        break;
    case MC_DRAINING:
        at = c->deadline;
        break;
    case MC_OPEN:
        if (c->braked)
            at = now + BRAKE_POLL;
        else if (c->keepalive)
            at = c->last_recv + 1.5 * c->keepalive;
        else {
            ev_timer_stop(B.loop, &c->timer);
            return;
        }
        break;
    default:
        ev_timer_stop(B.loop, &c->timer);
        return;
    }
    ev_timer_stop(B.loop, &c->timer);
    ev_timer_set(&c->timer, at > now ? at - now : 0.001, 0.0);
    ev_timer_start(B.loop, &c->timer);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    mqtt_client *c = (mqtt_client *)((char *)w - offsetof(mqtt_client, timer));
    ev_tstamp now = ev_now(loop);
    switch (c->state) {
    case MC_CONNECTING:
        if (c->refusing && now >= c->refuse_at - 0.001) {
            c->refusing = false;
            mqtt_refuse_now(c, c->refuse_reason);
            return;
        }
        if (!c->refusing && now >= c->deadline) {
            mqtt_client_abort(c, "no CONNECT in time");
            return;
        }
        break;
    case MC_DRAINING:
        if (now >= c->deadline) {
            mqtt_client_abort(c, NULL);
            return;
        }
        break;
    case MC_OPEN:
        if (c->braked) {
            if (brake_holds(c))
                break;
            brake_release(c);
            if (c->state != MC_OPEN)
                return;
        }
        /* MQTT-3.1.2-24: one and a half keepalive periods of silence. */
        if (c->keepalive && now - c->last_recv > 1.5 * c->keepalive) {
            mqtt_client_close(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keepalive timeout");
            return;
        }
        break;
    case MC_DEAD:
        return;
    }
    mqtt_client_arm(c);
}

static void
accept_client(const stream *s, const char *peer, bool loopback)
{
    mqtt_client *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->io = *s;
    int fd = s->fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->peer_loopback = loopback;
    c->state = MC_CONNECTING;
    c->max_packet_in = B.cfg.mqtt_max_packet_size_unauth;
    c->receive_max = 65535;
    ev_io_init(&c->rio, read_cb, fd, EV_READ);
    ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
    ev_init(&c->timer, timer_cb);
    c->last_recv = ev_now(B.loop);
    c->connected_at = c->last_recv;
    static uint64_t next_id;
    snprintf(c->name, sizeof c->name, "%s (MQTT %llu)", peer, (unsigned long long)++next_id);
    c->deadline = c->last_recv + CONNECT_TIMEOUT;
    mqtt_client_arm(c);
    ev_io_start(B.loop, &c->rio);
    c->reading = true;
    c->next = clients;
    if (clients)
        clients->prev = c;
    clients = c;
    nclients++;
    if (B.stopping)
        mqtt_client_abort(c, NULL);
}

/* ---- the plugin ------------------------------------------------------------------- */

static int
plugin_start(char *err, size_t errlen)
{
    listener.fd = -1;
    tls_listener.fd = -1;
    if (B.cfg.mqtt_port == 0 && B.cfg.mqtt_tls_port == 0)
        return 0;
    ev_prepare_init(&flush_watcher, flush_cb);
    ev_prepare_start(B.loop, &flush_watcher);
    ev_check_init(&reap_watcher, reap_cb);
    ev_check_start(B.loop, &reap_watcher);
    persist_on_progress(store_progress);
    if (mqtt_retain_recover(err, errlen) != 0 || mqtt_sessions_recover(err, errlen) != 0)
        return -1;
    if (B.cfg.mqtt_port) {
        if (server_listen(&listener, B.cfg.mqtt_bind_addr, B.cfg.mqtt_port, STREAM_TCP,
                          accept_client) != 0) {
            snprintf(err, errlen, "cannot open the MQTT listener on %s:%d",
                     B.cfg.mqtt_bind_addr, B.cfg.mqtt_port);
            return -1;
        }
        log_info("MQTT 3.1/3.1.1/5.0 listening on %s:%d", B.cfg.mqtt_bind_addr, B.cfg.mqtt_port);
    }
    if (B.cfg.mqtt_tls_port) {
        if (server_listen(&tls_listener, B.cfg.mqtt_tls_bind_addr, B.cfg.mqtt_tls_port,
                          STREAM_TLS, accept_client) != 0) {
            snprintf(err, errlen, "cannot open the MQTT TLS listener on %s:%d",
                     B.cfg.mqtt_tls_bind_addr, B.cfg.mqtt_tls_port);
            server_unlisten(&listener);
            return -1;
        }
        log_info("MQTT over TLS listening on %s:%d", B.cfg.mqtt_tls_bind_addr,
                 B.cfg.mqtt_tls_port);
    }
    return 0;
}

static void
plugin_close(const char *reason)
{
    server_unlisten(&listener);
    server_unlisten(&tls_listener);
    for (mqtt_client *c = clients, *next; c; c = next) {
        next = c->next;
        if (reason && c->state == MC_OPEN)
            mqtt_client_close(c, MQTT_RC_SERVER_SHUTTING_DOWN, NULL);
        else if (!reason || c->state != MC_DRAINING)
            mqtt_client_abort(c, NULL);
    }
}

static size_t
plugin_clients(void)
{
    return nclients;
}

static void
plugin_finish(void)
{
    if (B.cfg.mqtt_port == 0 && B.cfg.mqtt_tls_port == 0)
        return;
    reap_cb(B.loop, &reap_watcher, 0);
    ev_prepare_stop(B.loop, &flush_watcher);
    ev_check_stop(B.loop, &reap_watcher);
    mqtt_sessions_free();
    mqtt_retain_free();
}

static void
each_connection(void (*fn)(void *ctx, const plugin_conn *c), void *ctx)
{
    static const char *const protocols[] = {
        [MQTT_V31] = "MQTT 3.1", [MQTT_V311] = "MQTT 3.1.1", [MQTT_V5] = "MQTT 5.0",
    };
    for (mqtt_client *c = clients; c; c = c->next) {
        if (c->state != MC_OPEN)
            continue;
        plugin_conn pc = {
            .name = c->name, .protocol = protocols[c->version], .user = c->user,
            .vh = c->vh, .peer = c->peer,
            .client_id = c->session ? c->session->client_id : NULL,
            .connected_at = c->connected_at, .recv_oct = c->recv_oct, .send_oct = c->send_oct,
            .tls = c->io.tr && c->io.tr->secure, .handle = c,
        };
        fn(ctx, &pc);
    }
}

static void
close_connection(void *handle, const char *reason)
{
    for (mqtt_client *c = clients; c; c = c->next) {
        if (c == handle) {         /* still open: the handle is only compared */
            mqtt_client_close(c, MQTT_RC_ADMINISTRATIVE_ACTION, reason);
            return;
        }
    }
}

const plugin mqtt_plugin = { "mqtt", plugin_start, plugin_close, plugin_clients, plugin_finish,
                             each_connection, close_connection, NULL };
