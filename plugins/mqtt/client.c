/*
 * MQTT clients: the listener, socket I/O, framing, the gate that sends
 * each packet to its handler, keepalive, closing; and the plugin's entry
 * points. Timeouts (the CONNECT deadline, the keepalive: 1.5 times the
 * interval the client chose, counted from the last bytes read) follow
 * libev's "Be smart about timeouts", its last way: clients waiting for
 * the same kind of deadline of the same length sit in one list in deadline
 * order, with one timer for the list; see "timeouts" below. Output
 * collects in the client's buffer and goes out
 * with one write before the loop sleeps; a client is never freed inside
 * its own callback (a check watcher reaps the dead).
 *
 * An idle client costs what struct mqtt_client costs and no more: one
 * watcher serves reading and writing, the buffers are freed whenever they
 * empty (most reads hold whole packets and are handled from one shared
 * buffer), and a small output buffer is enough for the next packets of a
 * client that sent little last time.
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
/* An output buffer starts as big as the last output took, between these
 * (log2); a client whose last output fitted QUIET keeps no buffer headers
 * either. */
#define OUT_MIN_LOG2 6             /* 64 bytes: a quiet client's acks and pings */
#define OUT_QUIET_LOG2 8
#define OUT_MAX_LOG2 16
#define READ_BUDGET (1024 * 1024)
#define OUT_HIGH_WATER (4u << 20)
#define CONNECT_TIMEOUT 10.0
#define DRAIN_TIMEOUT 2.0

static void tlists_free(void);

static ev_io listener, tls_listener;
static ev_prepare flush_watcher;
static ev_check reap_watcher;
static mqtt_client *clients, *dead_list, *ack_waiters;
/* clients with output to flush before the loop sleeps (flush_queued) */
static mqtt_client **flushq;
static size_t nflush, flushq_cap;
static size_t nclients;

/* ---- output ----------------------------------------------------------------- */

static void
want_flush(mqtt_client *c)
{
    if (!c->flush_queued && c->state != MC_DEAD) {
        c->flush_queued = true;
        if (nflush == flushq_cap) {
            flushq_cap = flushq_cap ? flushq_cap * 2 : 64;
            flushq = realloc(flushq, flushq_cap * sizeof *flushq);
            if (!flushq)
                abort();
        }
        flushq[nflush++] = c;
    }
}

static struct mqtt_client_bufs *
bufs_of(mqtt_client *c)
{
    if (!c->bufs) {
        c->bufs = calloc(1, sizeof *c->bufs);
        if (!c->bufs)
            abort();
    }
    return c->bufs;
}

/* Frees the buffers once both are empty. */
static void
bufs_release(mqtt_client *c)
{
    struct mqtt_client_bufs *b = c->bufs;
    if (b && buf_used(&b->in) == 0 && buf_used(&b->out) == 0) {
        buf_free(&b->in);
        buf_free(&b->out);
        free(b);
        c->bufs = NULL;
    }
}

static inline size_t
out_used(const mqtt_client *c)
{
    return c->bufs ? buf_used(&c->bufs->out) : 0;
}

uint8_t *
mqtt_client_reserve(mqtt_client *c, size_t n)
{
    buf *out = &bufs_of(c)->out;
    if (!out->data) {
        /* buf_reserve doubles from the capacity it finds */
        size_t cap = (size_t)1 << (c->out_log2 > OUT_MIN_LOG2 ? c->out_log2 : OUT_MIN_LOG2);
        while (cap < n)
            cap *= 2;
        out->data = malloc(cap);
        if (!out->data)
            abort();
        out->cap = cap;
    }
    uint8_t *p = buf_reserve(out, n);
    buf_commit(out, n);
    want_flush(c);
    return p;
}

bool
mqtt_client_writable(const mqtt_client *c)
{
    return c->state == MC_OPEN && out_used(c) < OUT_HIGH_WATER;
}

/* The one watcher follows what the client waits for: input while
 * reading, room to write while output waits. */
static void
watch(mqtt_client *c)
{
    int want = (c->reading ? EV_READ : 0) | (c->writing ? EV_WRITE : 0);
    int have = ev_is_active(&c->w) ? c->w.events & (EV_READ | EV_WRITE) : 0;
    if (want == have)
        return;
    ev_io_stop(B.loop, &c->w);
    if (want) {
        ev_io_modify(&c->w, want);
        ev_io_start(B.loop, &c->w);
    }
}

static void
set_writing(mqtt_client *c, bool on)
{
    if (c->writing != on) {
        c->writing = on;
        watch(c);
    }
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
    buf *out = c->bufs ? &c->bufs->out : NULL;
    size_t took = out ? buf_used(out) : 0;
    while (out && buf_used(out)) {
        struct iovec iov = { out->data + out->off, buf_used(out) };
        ssize_t n = c->io.tr->writev(&c->io, &iov, 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_writing(c, true);
                return;
            }
            mqtt_client_abort(c, stream_strerror(&c->io, errno));
            return;
        }
        buf_consume(out, (size_t)n);
        c->send_oct += (size_t)n;
    }
    set_writing(c, false);
    if (out) {                     /* an idle client keeps no buffer */
        unsigned lg = OUT_MIN_LOG2;
        while (lg < OUT_MAX_LOG2 && ((size_t)1 << lg) < took)
            lg++;
        c->out_log2 = (uint8_t)lg;
        buf_free(out);
        if (lg <= OUT_QUIET_LOG2)  /* a busy one keeps the headers for the next */
            bufs_release(c);
    }
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
    /* flushing one client may give others output: they join the end */
    for (size_t i = 0; i < nflush; i++) {
        mqtt_client *c = flushq[i];
        c->flush_queued = false;
        if (c->state != MC_DEAD)
            flush(c);
    }
    nflush = 0;
}

static void read_ready(mqtt_client *c);

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    mqtt_client *c = (mqtt_client *)((char *)w - offsetof(mqtt_client, w));
    if (revents & EV_WRITE) {
        flush(c);
        /* a TLS read (the handshake) was waiting for room to write */
        if (c->state != MC_DEAD && c->io.want_write && c->reading) {
            read_ready(c);
            return;
        }
    }
    if ((revents & EV_READ) && c->state != MC_DEAD && c->reading)
        read_ready(c);
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
        for (mqtt_client **p = &ack_waiters; *p; p = &(*p)->x->wait_next) {
            if (*p == c) {
                *p = c->x->wait_next;
                break;
            }
        }
        c->ack_waiting = false;
    }
    mqtt_session *s = c->session;
    c->session = NULL;
    struct mqtt_client_x *x = c->x;
    message *will = x ? x->will : NULL;
    if (x)
        x->will = NULL;
    if (s) {
        s->client = NULL;
        bool send_will = will && (!c->graceful || c->will_on_close);
        if (send_will && x->will_delay > 0 && s->durable) {
            /* MQTT 5 will delay: the session holds it; a reconnect
             * within the delay cancels it. */
            mqtt_session_x *sx = mqtt_session_x_of(s);
            sx->will = will;
            will = NULL;
            ev_timer_set(&sx->will_timer, x->will_delay, 0.0);
            ev_timer_start(B.loop, &sx->will_timer);
        } else if (send_will) {
            mqtt_will_publish(c->vh, will);
        }
        mqtt_session_detach(s);
    }
    message_unref(&will);
    if (x && x->aliases) {
        for (int i = 0; i <= MQTT_SERVER_ALIAS_MAX; i++) {
            free(x->aliases->in[i]);
            free(x->aliases->out[i]);
        }
        free(x->aliases);
        x->aliases = NULL;
    }
    if (x && x->brake_q)
        queue_unref(x->brake_q);
    if (x)
        x->brake_q = NULL;
    c->braked = false;
}

struct mqtt_client_x *
mqtt_client_x(mqtt_client *c)
{
    if (!c->x) {
        c->x = calloc(1, sizeof *c->x);
        if (!c->x)
            abort();
    }
    return c->x;
}

const char *
mqtt_client_user(const mqtt_client *c)
{
    return c->u ? auth_user_name(c->u) : "";
}

/* The context of a client's log lines: " (vhost '/', user 'guest')" once
 * it has logged in, "" before. Written into out (cap bytes). */
static const char *
client_log_ctx(const mqtt_client *c, char *out, size_t cap)
{
    if (c->vh)
        snprintf(out, cap, " (vhost '%.*s', user '%s')", (int)c->vh->name.len, c->vh->name.data,
                 mqtt_client_user(c));
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
    ev_io_stop(B.loop, &c->w);
    c->reading = c->writing = false;
    c->state = MC_DEAD;
    mqtt_client_arm(c);            /* out of its timeout list */
    client_release(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nclients--;
    c->io.tr->close(&c->io);
    c->next = dead_list;           /* off the list of the living: next is free */
    c->prev = NULL;
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
        if (n <= mqtt_client_max_packet(c) || mqtt_client_max_packet(c) == 0)
            mqtt_disconnect_encode(&d, MQTT_V5, mqtt_client_reserve(c, n));
    }
    /* The will goes out now, not after the output drained. */
    client_release(c);
    c->state = MC_DRAINING;
    c->at = ev_now(B.loop);        /* the drain starts */
    if (out_used(c) == 0) {
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
        dead_list = c->next;
        if (c->bufs) {
            buf_free(&c->bufs->in);
            buf_free(&c->bufs->out);
            free(c->bufs);
        }
        if (c->x) {
            free(c->x->acks);
            free(c->x);
        }
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
    struct mqtt_client_x *x = mqtt_client_x(c);
    while (x->acks_head < x->acks_len) {
        struct mqtt_pending_ack *a = &x->acks[x->acks_head];
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
            if (x->inflight_in)
                x->inflight_in--;
        }
        if (failed && a->type == MQTT_PUBREC && c->session)
            mqtt_session_qos2_in_del(c->session, a->packet_id);
        x->acks_head++;
    }
    if (x->acks_head == x->acks_len) {
        x->acks_head = x->acks_len = 0;
    } else if (!c->ack_waiting) {
        c->ack_waiting = true;
        x->wait_next = ack_waiters;
        ack_waiters = c;
    }
}

void
mqtt_client_ack_after(mqtt_client *c, uint8_t type, uint16_t packet_id, uint8_t reason,
                      uint64_t batch)
{
    if (batch == 0 && (!c->x || c->x->acks_head == c->x->acks_len)) {
        send_ack(c, type, packet_id, reason);
        if (type == MQTT_PUBACK && c->x && c->x->inflight_in)
            c->x->inflight_in--;
        return;
    }
    struct mqtt_client_x *x = mqtt_client_x(c);
    x->acks = buf_array_room(x->acks, sizeof *x->acks, &x->acks_head, &x->acks_len,
                             &x->acks_cap);
    x->acks[x->acks_len++] = (struct mqtt_pending_ack){ batch, packet_id, type, reason };
    acks_progress(c);
}

static void
store_progress(void)
{
    mqtt_client *list = ack_waiters;
    ack_waiters = NULL;
    while (list) {
        mqtt_client *c = list;
        list = c->x->wait_next;
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
        uint32_t max = c->state == MC_CONNECTING ? B.cfg.mqtt_max_packet_size_unauth
                                                 : B.cfg.mqtt_max_packet_size;
        int rc = mqtt_frame_parse(p + off, len - off, max, &f, &used);
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
    if (!c->bufs)
        return;
    buf *in = &c->bufs->in;
    size_t used = process_span(c, in->data + in->off, buf_used(in));
    if (c->state != MC_DEAD && c->bufs)
        buf_consume(&c->bufs->in, used);
}

/* Most reads hold whole packets: they are handled straight from one
 * shared buffer, and a client keeps its own input buffer only for a
 * packet cut in half, so an idle connection holds none. */
static uint8_t read_scratch[READ_CHUNK];

static void
read_ready(mqtt_client *c)
{
    size_t budget = READ_BUDGET;
    while (budget > 0 && c->state != MC_DEAD && c->reading) {
        bool direct = !c->bufs || buf_used(&c->bufs->in) == 0;
        buf *in = direct ? NULL : &c->bufs->in;
        uint8_t *dst = direct ? read_scratch : buf_reserve(in, READ_CHUNK);
        size_t room = direct ? sizeof read_scratch : in->cap - in->len;
        ssize_t n = c->io.tr->read(&c->io, dst, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                mqtt_client_abort(c, c->state == MC_DRAINING ? NULL
                                     : stream_strerror(&c->io, errno));
            else if (c->io.want_write)
                set_writing(c, true);
            break;
        }
        if (n == 0) {
            mqtt_client_abort(c, c->state == MC_DRAINING || c->graceful ? NULL
                                 : "client closed the connection without DISCONNECT");
            break;
        }
        c->recv_oct += (size_t)n;
        if (c->state == MC_DRAINING) {
            if (in)
                in->off = in->len = 0;
            continue;
        }
        if (c->state == MC_OPEN)
            mqtt_client_active(c);
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        if (direct) {
            size_t used = process_span(c, read_scratch, (size_t)n);
            if (c->state != MC_DEAD && used < (size_t)n)
                buf_append(&bufs_of(c)->in, read_scratch + used, (size_t)n - used);
        } else {
            buf_commit(in, (size_t)n);
            process(c);
        }
        if ((size_t)n < room && !c->io.tr->secure)
            break;             /* the socket is empty: see read_cb in conn.c */
    }
    if (c->state == MC_DEAD || !c->bufs)
        return;
    if (buf_used(&c->bufs->in) == 0) {
        buf_free(&c->bufs->in);
        bufs_release(c);
    } else {
        buf_compact(&c->bufs->in);
    }
}

void
mqtt_client_stop_reading(mqtt_client *c)
{
    if (c->reading) {
        c->reading = false;
        watch(c);
    }
}

static void
start_reading(mqtt_client *c)
{
    if (!c->reading && c->state != MC_DEAD) {
        c->reading = true;
        watch(c);
    }
}

struct mqtt_aliases *
mqtt_client_aliases(mqtt_client *c)
{
    struct mqtt_client_x *x = mqtt_client_x(c);
    if (!x->aliases) {
        x->aliases = calloc(1, sizeof *x->aliases);
        if (!x->aliases)
            abort();
    }
    return x->aliases;
}

void
mqtt_client_brake(mqtt_client *c, queue *q)
{
    if (c->braked)
        return;
    c->braked = true;
    mqtt_client_x(c)->brake_q = q;
    if (q)
        queue_ref(q);
    mqtt_client_stop_reading(c);
    mqtt_client_arm(c);
}

static bool
brake_holds(const mqtt_client *c)
{
    if (persist_flow_blocked() || B.mem_alarm || B.disk_alarm)
        return true;
    const queue *q = c->x ? c->x->brake_q : NULL;
    return q && !q->deleted && q->nconsumers && queue_ready(q) > QUEUE_BACKLOG_LOW;
}

static void
brake_release(mqtt_client *c)
{
    c->braked = false;
    mqtt_client_arm(c);
    if (c->x && c->x->brake_q)
        queue_unref(c->x->brake_q);
    if (c->x)
        c->x->brake_q = NULL;
    start_reading(c);
    process(c);                    /* what was read before the brake */
}

/* ---- timeouts ------------------------------------------------------------------------
 *
 * A client waits for one deadline at a time, decided by its state: the
 * CONNECT (10 s from accept), a refused login's CONNACK (a delay that
 * grows with failures), the drain (2 s from the close), the keepalive
 * (1.5 times its interval from the last bytes read), or, braked, the
 * queue it publishes to (polled). Clients waiting for the same kind of
 * deadline with the same length are linked, through tnext and tprev, into
 * one list in deadline order, since each joins at the end with the
 * latest deadline (activity moves a client to the end); one timer per
 * list is set for its head and, when it fires, handles every client whose
 * deadline has come. A client costs two pointers, not a timer, and
 * activity costs a few pointer writes. Refused logins, with their varying
 * delays, are few and kept sorted; braked clients are polled together.
 */

#define BRAKE_POLL 0.005
#define KA_BUCKETS 64

enum { TL_NONE, TL_CONNECTING, TL_REFUSING, TL_DRAINING, TL_BRAKED, TL_KEEPALIVE };

typedef struct tlist {
    ev_timer t;
    ev_tstamp timeout;             /* deadline = the client's reference time + this */
    mqtt_client *head, *tail;
    uint8_t kind;                  /* TL_* */
    uint16_t keepalive;            /* TL_KEEPALIVE: the interval, seconds */
    struct tlist *next;            /* TL_KEEPALIVE: chain of its bucket */
} tlist;

static tlist connecting_list = { .timeout = CONNECT_TIMEOUT, .kind = TL_CONNECTING };
static tlist refusing_list = { .timeout = 0, .kind = TL_REFUSING };
static tlist draining_list = { .timeout = DRAIN_TIMEOUT, .kind = TL_DRAINING };
static tlist braked_list = { .timeout = 0, .kind = TL_BRAKED };
static tlist *ka_lists[KA_BUCKETS]; /* one per keepalive interval in use */

static void tlist_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* The list for keepalive k, made on first use; kept until the plugin
 * finishes (there are at most 65535, and in practice a handful). */
static tlist *
ka_list(uint16_t k)
{
    tlist **b = &ka_lists[k % KA_BUCKETS];
    for (tlist *l = *b; l; l = l->next)
        if (l->keepalive == k)
            return l;
    tlist *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->timeout = 1.5 * k;
    l->kind = TL_KEEPALIVE;
    l->keepalive = k;
    ev_init(&l->t, tlist_cb);
    l->next = *b;
    *b = l;
    return l;
}

static tlist *
tlist_of(const mqtt_client *c, uint8_t kind)
{
    switch (kind) {
    case TL_CONNECTING: return &connecting_list;
    case TL_REFUSING: return &refusing_list;
    case TL_DRAINING: return &draining_list;
    case TL_BRAKED: return &braked_list;
    case TL_KEEPALIVE: return ka_list(c->keepalive);
    default: return NULL;
    }
}

/* What c waits for now. */
static uint8_t
waits_for(const mqtt_client *c)
{
    switch (c->state) {
    case MC_CONNECTING:
        return c->refusing ? TL_REFUSING : TL_CONNECTING;
    case MC_DRAINING:
        return TL_DRAINING;
    case MC_OPEN:
        return c->braked ? TL_BRAKED : c->keepalive ? TL_KEEPALIVE : TL_NONE;
    default:
        return TL_NONE;
    }
}

/* The reference time its deadline counts from (the deadline itself for
 * refused logins, whose list has no timeout). */
static ev_tstamp
ref_time(const tlist *l, const mqtt_client *c)
{
    return l->kind == TL_CONNECTING ? c->connected_at : c->at;
}

static void
tlist_set(tlist *l)
{
    ev_tstamp now = ev_now(B.loop);
    ev_tstamp at = l->kind == TL_BRAKED ? now + BRAKE_POLL : ref_time(l, l->head) + l->timeout;
    ev_timer_stop(B.loop, &l->t);
    ev_timer_set(&l->t, at > now ? at - now : 0.001, 0.0);
    ev_timer_start(B.loop, &l->t);
}

static void
tlist_unlink(tlist *l, mqtt_client *c)
{
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        l->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        l->tail = c->tprev;
    c->tnext = c->tprev = NULL;
    /* a timer left set for a client that went fires, finds a later head
     * (or none) and sets itself again: nothing to do here */
}

static void
tlist_append(tlist *l, mqtt_client *c)
{
    c->tnext = NULL;
    c->tprev = l->tail;
    if (l->tail)
        l->tail->tnext = c;
    else
        l->head = c;
    l->tail = c;
    if (l->head == c)
        tlist_set(l);
}

/* Refused logins wait for different delays: sorted by deadline. */
static void
tlist_insert_sorted(tlist *l, mqtt_client *c)
{
    mqtt_client *after = l->tail;
    while (after && after->at > c->at)
        after = after->tprev;
    c->tprev = after;
    c->tnext = after ? after->tnext : l->head;
    if (c->tnext)
        c->tnext->tprev = c;
    else
        l->tail = c;
    if (after)
        after->tnext = c;
    else
        l->head = c;
    if (l->head == c)
        tlist_set(l);
}

/* Puts c in the list of what it waits for now; called after any change
 * of its state, of refusing or of braked. */
void
mqtt_client_arm(mqtt_client *c)
{
    uint8_t want = waits_for(c);
    if (c->waits != TL_NONE)
        tlist_unlink(tlist_of(c, c->waits), c);
    c->waits = want;
    if (want == TL_REFUSING)
        tlist_insert_sorted(&refusing_list, c);
    else if (want != TL_NONE)
        tlist_append(tlist_of(c, want), c);
}

void
mqtt_client_active(mqtt_client *c)
{
    c->at = ev_now(B.loop);
    if (c->waits == TL_KEEPALIVE && c->tnext) {
        tlist *l = ka_list(c->keepalive);
        tlist_unlink(l, c);
        tlist_append(l, c);
    }
}

/* A client whose deadline has come: it leaves the list (closed, or
 * waiting for something else). */
static void
expire(tlist *l, mqtt_client *c)
{
    switch (l->kind) {
    case TL_CONNECTING:
        mqtt_client_abort(c, "no CONNECT in time");
        break;
    case TL_REFUSING:
        c->refusing = false;
        mqtt_client_arm(c);
        mqtt_refuse_now(c, c->refuse_reason);
        break;
    case TL_DRAINING:
        mqtt_client_abort(c, NULL);
        break;
    case TL_KEEPALIVE:
        /* MQTT-3.1.2-24: one and a half keepalive periods of silence. */
        mqtt_client_close(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keepalive timeout");
        break;
    }
    if (l->head == c) {            /* still here: never loop on it */
        tlist_unlink(l, c);
        c->waits = TL_NONE;
    }
}

static void
brakes_poll(void)
{
    /* released clients leave the list; a walk from a copy of the head,
     * taking the next before each release */
    for (mqtt_client *c = braked_list.head, *next; c; c = next) {
        next = c->tnext;
        if (brake_holds(c))
            continue;
        brake_release(c);
    }
}

static void
tlist_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    tlist *l = (tlist *)w;
    if (l->kind == TL_BRAKED) {
        brakes_poll();
    } else {
        ev_tstamp now = ev_now(loop);
        /* a 1 ms slack, as timers may fire a hair early */
        while (l->head && ref_time(l, l->head) + l->timeout <= now + 0.001)
            expire(l, l->head);
    }
    if (l->head)
        tlist_set(l);
}

static void
tlists_init(void)
{
    ev_init(&connecting_list.t, tlist_cb);
    ev_init(&refusing_list.t, tlist_cb);
    ev_init(&draining_list.t, tlist_cb);
    ev_init(&braked_list.t, tlist_cb);
}

static void
tlists_free(void)
{
    ev_timer_stop(B.loop, &connecting_list.t);
    ev_timer_stop(B.loop, &refusing_list.t);
    ev_timer_stop(B.loop, &draining_list.t);
    ev_timer_stop(B.loop, &braked_list.t);
    for (int i = 0; i < KA_BUCKETS; i++) {
        while (ka_lists[i]) {
            tlist *l = ka_lists[i];
            ka_lists[i] = l->next;
            ev_timer_stop(B.loop, &l->t);
            free(l);
        }
    }
}

static void
accept_client(const stream *s, const char *peer, bool loopback)
{
    size_t plen = strlen(peer);
    size_t size = offsetof(mqtt_client, peer) + plen + 1;
    mqtt_client *c = calloc(1, size > sizeof *c ? size : sizeof *c);
    if (!c)
        abort();
    c->io = *s;
    int fd = s->fd;
    memcpy(c->peer, peer, plen + 1);
    c->peer_loopback = loopback;
    c->state = MC_CONNECTING;
    ev_io_init(&c->w, io_cb, fd, EV_READ);
    c->connected_at = ev_now(B.loop);
    mqtt_client_arm(c);
    c->reading = true;
    watch(c);
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
    tlists_init();
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
    tlists_free();
    free(flushq);
    flushq = NULL;
    nflush = flushq_cap = 0;
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
        char name[128];
        snprintf(name, sizeof name, "%s (MQTT %u)", c->peer,
                 c->session ? c->session->number : 0);
        plugin_conn pc = {
            .name = name, .protocol = protocols[c->version], .user = mqtt_client_user(c),
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
