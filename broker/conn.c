/*
 * AMQP connections: bytes in, frames out.
 *
 * Reading: the input buffer is parsed frame by frame; each method frame
 * goes through conn_gate, the one place that checks a method against the
 * protocol's rules (state, channel, content expectations) and turns a
 * violation into the right channel.close or connection.close. Handlers
 * behind it hold only semantics.
 *
 * Writing: every frame is appended to the output buffer; connections with
 * output are put on a list that an ev_prepare watcher flushes with one
 * writev each just before the loop sleeps, so a batch of frames costs one
 * syscall. Past a high-water mark consumers on the connection pause.
 *
 * Closing: a connection is never freed inside its own callback. It first
 * drains its output, half-closes, discards input until EOF (so the peer
 * reads our connection.close instead of a reset), then is reaped by an
 * ev_check watcher.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/persist.h"

#define HANDSHAKE_TIMEOUT 10.0
#define CLOSE_TIMEOUT 3.0
#define LINGER_TIMEOUT 2.0
#define OUT_HIGH_WATER (4u << 20)  /* consumers stop being served */
#define OUT_LOW_WATER (1u << 20)   /* ... and are served again */
/* A client that writes but does not read (returns, confirms and replies
 * pile up) stops being read here, so its output cannot grow without end. */
#define OUT_PAUSE (16u << 20)
#define BRAKE_POLL 0.005           /* re-check braked publishers this often */
/* Output waiting this long without a byte taken by the peer: it is gone
 * or stuck (RabbitMQ's send_timeout, also 15 s). */
#define SEND_TIMEOUT 15.0
#define READ_CHUNK 65536
#define READ_BUDGET (1u << 20)   /* bytes per callback, for fairness */
/* Output is flushed at least every this many bytes of input handled, not
 * only when the loop is about to sleep: a delivery should not wait behind
 * a megabyte of other publishes (latency), and one write per 64 KB read
 * keeps the syscalls per message low (throughput). */
#define FLUSH_EVERY 65536

static void conn_process(conn *c);
static void conn_resume(conn *c);
static void brake_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void brake_drop(conn *c);

/* Not reading frames now: a resource alarm, a definition being committed,
 * the store's flow control, credit flow, or output the client does not
 * read. */
static inline bool
conn_paused(const conn *c)
{
    return c->blocked || c->stalled || c->flow || c->brake_q || c->out_full;
}


static ev_prepare flush_watcher;
static ev_timer brake_timer;       /* credit flow: braked publishers' poll */
static conn *braked_list;
static ev_check reap_watcher;
static conn *flush_list;
static conn *dead_list;

/* ---- TCP transport ------------------------------------------------------ */


/* ---- output ------------------------------------------------------------- */

static void
conn_want_flush(conn *c)
{
    if (!c->flush_queued && c->state != CONN_DEAD) {
        c->flush_queued = true;
        c->flush_next = flush_list;
        flush_list = c;
    }
}

bool
conn_writable(const conn *c)
{
    return buf_used(&c->out) < OUT_HIGH_WATER;
}

void
conn_send_method(conn *c, uint16_t ch, const amqp_method *m)
{
    if (c->state == CONN_DEAD || c->state == CONN_DRAINING)
        return;
    size_t n = amqp_method_frame_size(m);
    uint8_t *p = buf_reserve(&c->out, n);
    buf_commit(&c->out, amqp_method_frame_encode(ch, m, p));
    conn_want_flush(c);
}

void
conn_send_content(conn *c, uint16_t ch, const amqp_method *m, const message *msg)
{
    if (c->state == CONN_DEAD || c->state == CONN_DRAINING)
        return;
    size_t chunk = c->frame_max - AMQP_FRAME_OVERHEAD;
    size_t nbody = msg->body_size ? (msg->body_size + chunk - 1) / chunk : 0;
    bool deliver = m->id == AMQP_BASIC_DELIVER;   /* the common case, written straight */
    size_t total = (deliver ? AMQP_DELIVER_FRAME_SIZE(&m->a.basic_deliver)
                            : amqp_method_frame_size(m)) +
                   AMQP_HEADER_FRAME_SIZE(msg->props_len) + msg->body_size +
                   nbody * AMQP_FRAME_OVERHEAD;
    uint8_t *start = buf_reserve(&c->out, total);
    uint8_t *p = start;
    p += deliver ? amqp_deliver_frame_encode(ch, &m->a.basic_deliver, p)
                 : amqp_method_frame_encode(ch, m, p);
    p += amqp_header_frame_encode(ch, msg->body_size, msg->prop_flags, msg->props,
                                  msg->props_len, p);
    for (uint64_t off = 0; off < msg->body_size; off += chunk) {
        size_t len = msg->body_size - off < chunk ? (size_t)(msg->body_size - off) : chunk;
        amqp_frame_header_write(p, AMQP_FRAME_BODY, ch, (uint32_t)len);
        memcpy(p + AMQP_FRAME_HEADER_SIZE, msg->body + off, len);
        p[AMQP_FRAME_HEADER_SIZE + len] = AMQP_FRAME_END;
        p += len + AMQP_FRAME_OVERHEAD;
    }
    buf_commit(&c->out, (size_t)(p - start));
    conn_want_flush(c);
}

static void
conn_send_heartbeat(conn *c)
{
    uint8_t *p = buf_reserve(&c->out, AMQP_FRAME_OVERHEAD);
    amqp_frame_header_write(p, AMQP_FRAME_HEARTBEAT, 0, 0);
    p[AMQP_FRAME_HEADER_SIZE] = AMQP_FRAME_END;
    buf_commit(&c->out, AMQP_FRAME_OVERHEAD);
    conn_want_flush(c);
}

/* ---- teardown ------------------------------------------------------------ */

/* Releases everything the connection holds in the broker: channels (which
 * requeue their unacked messages) and exclusive queues. */
static void
conn_release(conn *c)
{
    for (uint32_t i = 0; i < c->nchannels; i++) {
        if (c->channels[i]) {
            channel_free(c->channels[i]);
            c->channels[i] = NULL;
        }
    }
    if (c->counted) {
        auth_connection_close(c->u, c->vh);
        c->counted = false;
    }
    if (c->vh) {
        /* exclusive queues die with their connection */
        queue *doomed[256];
        size_t n;
        do {
            n = 0;
            for (map_iter it = map_first(&c->vh->queues); it.e && n < 256;
                 map_next(&c->vh->queues, &it)) {
                queue *q = it.e->value;
                if (q->exclusive && q->owner == c)
                    doomed[n++] = q;
            }
            for (size_t i = 0; i < n; i++)
                vhost_queue_delete(c->vh, doomed[i]);
        } while (n == 256);
    }
}

static void
conn_unlink(conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        B.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* The context of a connection's log lines: " (vhost '/', user 'guest')"
 * once it is open, " (user 'guest')" after login, "" before. Written
 * into out (cap bytes), which is returned. */
static const char *
conn_log_ctx(const conn *c, char *out, size_t cap)
{
    if (c->vh)
        snprintf(out, cap, " (vhost '%.*s', user '%s')", (int)c->vh->name.len, c->vh->name.data,
                 c->user);
    else if (c->user[0])
        snprintf(out, cap, " (user '%s')", c->user);
    else
        out[0] = 0;
    return out;
}

void
conn_abort(conn *c, const char *why)
{
    if (c->state == CONN_DEAD)
        return;
    char ctx[400];
    if (why)
        log_info("closing AMQP connection %s%s: %s", c->name, conn_log_ctx(c, ctx, sizeof ctx),
                 why);
    ev_io_stop(B.loop, &c->rio);
    ev_io_stop(B.loop, &c->wio);
    ev_timer_stop(B.loop, &c->timer);
    c->state = CONN_DEAD;
    if (c->brake_q)
        brake_drop(c);
    persist_unwait_conn(c);
    conn_release(c);
    conn_unlink(c);
    c->io.tr->close(&c->io);
    c->dead_next = dead_list;
    dead_list = c;
}

static void
conn_free(conn *c)
{
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->channels);
    free(c->client_props);
    amqp_pool_free(&c->pool);
    free(c);
}

/* Output flushed: half-close and wait for the peer's EOF. */
static void
conn_linger(conn *c)
{
    c->io.tr->shutdown(&c->io);
    c->deadline = ev_now(B.loop) + LINGER_TIMEOUT;
    if (!c->reading) {
        ev_io_start(B.loop, &c->rio);
        c->reading = true;
    }
}

/* Stops processing input, sends what is queued, then closes. */
static void
conn_drain(conn *c)
{
    if (c->state == CONN_DEAD || c->state == CONN_DRAINING)
        return;
    conn_release(c);
    if (c->brake_q)
        brake_drop(c);
    c->state = CONN_DRAINING;
    c->deadline = ev_now(B.loop) + CLOSE_TIMEOUT;
    if (buf_used(&c->out) == 0)
        conn_linger(c);
    else
        conn_want_flush(c);
}

/* ---- flushing ----------------------------------------------------------- */

static void
conn_flush(conn *c)
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
            conn_abort(c, stream_strerror(&c->io, errno));
            return;
        }
        buf_consume(&c->out, (size_t)n);
        c->send_oct += (size_t)n;
        c->last_send = c->last_taken = ev_now(B.loop);
    }
    ev_io_stop(B.loop, &c->wio);
    buf_compact(&c->out);
    if (c->state == CONN_DRAINING) {
        conn_linger(c);
        return;
    }
    if (c->out_full && buf_used(&c->out) < OUT_LOW_WATER) {
        /* read_cb handles what waited in the input buffer first */
        c->out_full = false;
        c->resume_pending = true;
        if (!c->reading) {
            ev_io_start(B.loop, &c->rio);
            c->reading = true;
        }
        ev_feed_event(B.loop, &c->rio, EV_READ);
    }
    if (c->blocked_by_output && buf_used(&c->out) < OUT_LOW_WATER) {
        c->blocked_by_output = false;
        for (uint32_t i = 0; i < c->nchannels; i++)
            if (c->channels[i])
                channel_kick(c->channels[i]);
    }
}

static void
flush_all(void)
{
    /* Flushing can kick consumers and queue more output, even for other
     * connections: loop until the list stays empty. */
    while (flush_list) {
        conn *list = flush_list;
        flush_list = NULL;
        while (list) {
            conn *c = list;
            list = c->flush_next;
            c->flush_queued = false;
            if (c->state != CONN_DEAD)
                conn_flush(c);
        }
    }
}

static void
flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    flush_all();
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    conn *c = (conn *)((char *)w - offsetof(conn, wio));
    conn_flush(c);
    /* a TLS read (the handshake) was waiting for room to write */
    if (c->state != CONN_DEAD && c->io.want_write)
        read_cb(loop, &c->rio, EV_READ);
}

static void
reap_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    while (dead_list) {
        conn *c = dead_list;
        dead_list = c->dead_next;
        conn_free(c);
    }
}

void
conn_init_loop(void)
{
    ev_prepare_init(&flush_watcher, flush_cb);
    ev_prepare_start(B.loop, &flush_watcher);
    ev_check_init(&reap_watcher, reap_cb);
    ev_check_start(B.loop, &reap_watcher);
    ev_init(&brake_timer, brake_cb);
}

/* ---- errors ------------------------------------------------------------- */

static void
send_close(conn *c, int code, const char *text, uint32_t method_id)
{
    amqp_method m = { .id = AMQP_CONNECTION_CLOSE };
    m.a.connection_close.reply_code = (uint16_t)code;
    m.a.connection_close.reply_text = amqp_cstr(text);
    m.a.connection_close.class_id = AMQP_CLASS_OF(method_id);
    m.a.connection_close.method_id = AMQP_INDEX_OF(method_id);
    conn_send_method(c, 0, &m);
}

static void
format_reply(char *text, size_t cap, int code, const char *fmt, va_list ap)
{
    int n = snprintf(text, cap, "%s - ", amqp_reply_name(code));
    vsnprintf(text + n, cap - (size_t)n, fmt, ap);
}

void
conn_error(conn *c, int code, uint32_t method_id, const char *fmt, ...)
{
    if (c->state == CONN_DEAD || c->state == CONN_DRAINING || c->state == CONN_CLOSING)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    format_reply(text, sizeof text, code, fmt, ap);
    va_end(ap);
    char ctx[400];
    log_warning("closing AMQP connection %s%s: %d %s", c->name, conn_log_ctx(c, ctx, sizeof ctx),
                code, text);
    if (c->state == CONN_HEADER) {
        conn_drain(c);
        return;
    }
    send_close(c, code, text, method_id);
    conn_release(c);
    c->state = CONN_CLOSING;
    c->deadline = ev_now(B.loop) + CLOSE_TIMEOUT;
}

void
channel_error(channel *ch, int code, uint32_t method_id, const char *fmt, ...)
{
    if (ch->closing)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    format_reply(text, sizeof text, code, fmt, ap);
    va_end(ap);
    if (amqp_reply_is_hard(code)) {
        conn_error(ch->conn, code, method_id, "%s", text + strlen(amqp_reply_name(code)) + 3);
        return;
    }
    log_debug("channel %u on %s error: %s", ch->id, ch->conn->name, text);
    amqp_method m = { .id = AMQP_CHANNEL_CLOSE };
    m.a.channel_close.reply_code = (uint16_t)code;
    m.a.channel_close.reply_text = amqp_cstr(text);
    m.a.channel_close.class_id = AMQP_CLASS_OF(method_id);
    m.a.channel_close.method_id = AMQP_INDEX_OF(method_id);
    conn_send_method(ch->conn, ch->id, &m);
    ch->closing = true;
    channel_release(ch);
}

void
conn_reply(conn *c, uint16_t ch, const amqp_method *m)
{
    if (persist_definition_batch == 0 || persist_committed(persist_definition_batch)) {
        conn_send_method(c, ch, m);
        return;
    }
    /* The one field that borrows: queue.declare-ok's queue name. */
    c->deferred = *m;
    if (m->id == AMQP_QUEUE_DECLARE_OK) {
        amqp_bytes n = m->a.queue_declare_ok.queue;
        memcpy(c->deferred_name, n.data, n.len);
        c->deferred.a.queue_declare_ok.queue = (amqp_bytes){ c->deferred_name, n.len };
    }
    c->deferred_channel = ch;
    c->deferred_batch = persist_definition_batch;
    c->stalled = true;
    persist_wait_conn(c);
}

void
conn_store_progress(conn *c)
{
    if (!c->stalled)
        return;
    if (!persist_committed(c->deferred_batch)) {
        persist_wait_conn(c);
        return;
    }
    c->stalled = false;
    if (c->state != CONN_OPEN)
        return;
    if (persist_failed(c->deferred_batch)) {
        conn_error(c, AMQP_INTERNAL_ERROR, 0, "the store failed to write a definition");
        return;
    }
    conn_send_method(c, c->deferred_channel, &c->deferred);
    conn_resume(c);
}

void
conn_flow_resume(void)
{
    for (conn *c = B.conns; c; c = c->next) {
        if (!c->flow)
            continue;
        c->flow = false;
        conn_resume(c);
    }
}

/* Reads again what a pause left in the buffer, and then the socket. */
static void
conn_resume(conn *c)
{
    if (c->state != CONN_OPEN || conn_paused(c))
        return;
    if (!c->reading) {
        ev_io_start(B.loop, &c->rio);
        c->reading = true;
    }
    conn_process(c);
}

/* ---- credit flow ----------------------------------------------------------
 * A queue whose consumers could take more (they have prefetch left) but
 * whose deliveries wait because those consumers' connections are not
 * draining their output is a queue falling behind: the publishers that
 * feed it stop being read, as RabbitMQ's credit flow stops them, until
 * the backlog is down to QUEUE_BACKLOG_LOW. A queue whose consumers are
 * all at their prefetch limit (slow acks) does not brake anyone: it
 * grows and pages to disk, and other queues fed by the same publisher
 * keep going. */

/* True while q still holds its publishers back. */
static bool
brake_holds(const queue *q)
{
    return !q->deleted && q->nconsumers && queue_ready(q) > QUEUE_BACKLOG_LOW;
}

void
conn_brake(conn *c, queue *q)
{
    if (c->brake_q || c->state != CONN_OPEN)
        return;
    queue_ref(q);
    c->brake_q = q;
    c->brake_next = braked_list;
    braked_list = c;
    if (B.braked++ == 0) {
        ev_timer_set(&brake_timer, BRAKE_POLL, BRAKE_POLL);
        ev_timer_start(B.loop, &brake_timer);
    }
}

/* Unlinks c from the braked list; the caller resumes it (or it is dying). */
static void
brake_drop(conn *c)
{
    conn **p = &braked_list;
    while (*p != c)
        p = &(*p)->brake_next;
    *p = c->brake_next;
    c->brake_next = NULL;
    queue_unref(c->brake_q);
    c->brake_q = NULL;
    if (--B.braked == 0)
        ev_timer_stop(B.loop, &brake_timer);
}

static void
brake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    /* Released connections are collected first: resuming one publishes,
     * which may brake it (or others) again and change the list. */
    conn *ready = NULL;
    for (conn **p = &braked_list; *p;) {
        conn *c = *p;
        if (brake_holds(c->brake_q)) {
            p = &c->brake_next;
            continue;
        }
        *p = c->brake_next;
        queue_unref(c->brake_q);
        c->brake_q = NULL;
        B.braked--;
        c->brake_next = ready;
        ready = c;
    }
    ev_timer_stop(B.loop, &brake_timer);
    if (B.braked) {
        ev_timer_set(&brake_timer, BRAKE_POLL, BRAKE_POLL);
        ev_timer_start(B.loop, &brake_timer);
    }
    while (ready) {
        conn *c = ready;
        ready = c->brake_next;
        c->brake_next = NULL;
        conn_resume(c);
    }
}

void
conn_brake_poke(void)
{
    /* from inside a queue's dispatch: look again on the next loop turn */
    if (brake_timer.repeat != 0.0) {
        ev_timer_stop(B.loop, &brake_timer);
        ev_timer_set(&brake_timer, 0.0, 0.0);
        ev_timer_start(B.loop, &brake_timer);
    }
}

void
conn_alarm_changed(void)
{
    if (B.disk_alarm || B.mem_alarm)
        return;
    for (conn *c = B.conns; c; c = c->next) {
        if (!c->blocked)
            continue;
        c->blocked = false;
        if (c->state != CONN_OPEN)
            continue;
        if (c->cap_blocked) {
            amqp_method u = { .id = AMQP_CONNECTION_UNBLOCKED };
            conn_send_method(c, 0, &u);
        }
        conn_resume(c);            /* what waited in the buffer */
    }
}

void
conn_close_all(const char *reason)
{
    for (conn *c = B.conns; c; c = c->next) {
        if (c->state == CONN_HEADER) {
            conn_drain(c);
        } else if (c->state < CONN_CLOSING) {
            char text[256];
            snprintf(text, sizeof text,
                     "CONNECTION_FORCED - broker forced connection closure with reason '%s'",
                     reason);
            char ctx[400];
            log_info("closing AMQP connection %s%s: broker shutting down (%s)", c->name,
                     conn_log_ctx(c, ctx, sizeof ctx), reason);
            send_close(c, AMQP_CONNECTION_FORCED, text, 0);
            conn_release(c);
            c->state = CONN_CLOSING;
            c->deadline = ev_now(B.loop) + 1.0;
        }
    }
}

/* ---- the handshake ------------------------------------------------------ */

/* Whether mechanism mech (a name from auth_mechanisms) is offered on c:
 * EXTERNAL only over TLS, as RabbitMQ's rabbitmq_auth_mechanism_ssl. */
static bool
mechanism_offered(const conn *c, const char *mech, size_t len)
{
    if (len == 8 && memcmp(mech, "EXTERNAL", 8) == 0 && !c->io.tr->secure)
        return false;
    for (const char *p = B.cfg.auth_mechanisms; *p; ) {
        size_t n = strcspn(p, " ");
        if (n == len && memcmp(p, mech, n) == 0)
            return true;
        p += n + (p[n] == ' ');
    }
    return false;
}

static void
send_start(conn *c)
{
    static amqp_field caps[] = {
        { AMQP_BYTES_LIT("publisher_confirms"), { 't', { .boolean = true } } },
        { AMQP_BYTES_LIT("exchange_exchange_bindings"), { 't', { .boolean = true } } },
        { AMQP_BYTES_LIT("basic.nack"), { 't', { .boolean = true } } },
        { AMQP_BYTES_LIT("consumer_cancel_notify"), { 't', { .boolean = true } } },
        { AMQP_BYTES_LIT("connection.blocked"), { 't', { .boolean = true } } },
        { AMQP_BYTES_LIT("authentication_failure_close"), { 't', { .boolean = true } } },
        { AMQP_BYTES_LIT("per_consumer_qos"), { 't', { .boolean = true } } },
    };
    static amqp_field props[] = {
        { AMQP_BYTES_LIT("capabilities"), { 'F', { .table = { sizeof caps / sizeof caps[0], caps } } } },
        { AMQP_BYTES_LIT("cluster_name"), { 'S', { .bytes = AMQP_BYTES_LIT("coney") } } },
        { AMQP_BYTES_LIT("copyright"), { 'S', { .bytes = AMQP_BYTES_LIT("Copyright (c) the Coney authors") } } },
        { AMQP_BYTES_LIT("information"), { 'S', { .bytes = AMQP_BYTES_LIT("Coney, an AMQP 0-9-1 and MQTT broker") } } },
        { AMQP_BYTES_LIT("platform"), { 'S', { .bytes = AMQP_BYTES_LIT("C11/libev") } } },
        { AMQP_BYTES_LIT("product"), { 'S', { .bytes = AMQP_BYTES_LIT("Coney") } } },
        { AMQP_BYTES_LIT("version"), { 'S', { .bytes = AMQP_BYTES_LIT(CONEY_VERSION) } } },
    };
    amqp_method m = { .id = AMQP_CONNECTION_START };
    m.a.connection_start.version_major = 0;
    m.a.connection_start.version_minor = 9;
    m.a.connection_start.server_properties = (amqp_table){ sizeof props / sizeof props[0], props };
    char mechs[sizeof B.cfg.auth_mechanisms] = "";
    size_t mlen = 0;
    for (const char *p = B.cfg.auth_mechanisms; *p; ) {
        size_t n = strcspn(p, " ");
        if (mechanism_offered(c, p, n)) {
            mlen += (size_t)snprintf(mechs + mlen, sizeof mechs - mlen, "%s%.*s",
                                     mlen ? " " : "", (int)n, p);
        }
        p += n + (p[n] == ' ');
    }
    m.a.connection_start.mechanisms = (amqp_bytes){ mechs, (uint32_t)mlen };
    m.a.connection_start.locales = AMQP_BYTES_LIT("en_US");
    conn_send_method(c, 0, &m);
    c->state = CONN_START;
}

static bool
cap_enabled(const amqp_table *client_props, const char *name)
{
    const amqp_value *caps = amqp_table_get(client_props, "capabilities");
    if (!caps || caps->kind != 'F')
        return false;
    const amqp_value *v = amqp_table_get(&caps->v.table, name);
    return v && v->kind == 't' && v->v.boolean;
}

/* Extracts user and password from a PLAIN or AMQPLAIN response. */
static bool
parse_credentials(conn *c, amqp_bytes mech, amqp_bytes resp, amqp_bytes *user,
                  amqp_bytes *pass)
{
    if (amqp_bytes_eq_cstr(mech, "PLAIN")) {
        /* [authzid] NUL authcid NUL passwd */
        const char *z1 = memchr(resp.data, 0, resp.len);
        if (!z1)
            return false;
        const char *u = z1 + 1;
        size_t rest = resp.len - (size_t)(u - resp.data);
        const char *z2 = memchr(u, 0, rest);
        if (!z2)
            return false;
        *user = (amqp_bytes){ u, (uint32_t)(z2 - u) };
        *pass = (amqp_bytes){ z2 + 1, (uint32_t)(rest - (size_t)(z2 - u) - 1) };
        return true;
    }
    if (amqp_bytes_eq_cstr(mech, "AMQPLAIN")) {
        /* a field table without its length prefix */
        uint8_t *t = amqp_pool_alloc(&c->pool, (size_t)resp.len + 4);
        if (!t)
            return false;
        amqp_put32(t, resp.len);
        memcpy(t + 4, resp.data, resp.len);
        amqp_table tab;
        size_t off = 0;
        if (amqp_table_decode(t, (size_t)resp.len + 4, &off, &tab, &c->pool) != AMQP_OK)
            return false;
        const amqp_value *l = amqp_table_get(&tab, "LOGIN");
        const amqp_value *p = amqp_table_get(&tab, "PASSWORD");
        if (!l || !p || l->kind != 'S' || p->kind != 'S')
            return false;
        *user = l->v.bytes;
        *pass = p->v.bytes;
        return true;
    }
    return false;
}

static void
handle_start_ok(conn *c, const amqp_connection_start_ok *m)
{
    c->cap_cancel_notify = cap_enabled(&m->client_properties, "consumer_cancel_notify");
    c->cap_auth_failure_close = cap_enabled(&m->client_properties, "authentication_failure_close");
    c->cap_blocked = cap_enabled(&m->client_properties, "connection.blocked");
    /* kept encoded for the management API, which decodes it on demand */
    size_t props_len = amqp_table_size(&m->client_properties);
    free(c->client_props);
    c->client_props = malloc(props_len);
    if (c->client_props) {
        amqp_table_encode(&m->client_properties, c->client_props);
        c->client_props_len = (uint32_t)props_len;
    }
    if (!mechanism_offered(c, m->mechanism.data, m->mechanism.len)) {
        conn_error(c, AMQP_ACCESS_REFUSED, AMQP_CONNECTION_START_OK,
                   "unsupported authentication mechanism '%.*s'",
                   (int)m->mechanism.len, m->mechanism.data);
        return;
    }
    amqp_bytes user = { 0 }, pass = { 0 };
    char cert_user[128];
    bool ok;
    enum auth_result ar = AUTH_OK;
    if (amqp_bytes_eq_cstr(m->mechanism, "EXTERNAL")) {
        /* the verified client certificate names the user; the response
         * (an authorization identity at most) is not used, as RabbitMQ */
        int n = c->io.tr->peer_name(&c->io, cert_user, sizeof cert_user);
        ok = n >= 0;
        if (ok) {
            user = (amqp_bytes){ cert_user, (uint32_t)n };
            ar = auth_check_external(user, c->peer_loopback);
        } else {
            log_warning("%s: EXTERNAL login without a verified client certificate naming a user",
                        c->name);
        }
    } else {
        ok = parse_credentials(c, m->mechanism, m->response, &user, &pass);
        ar = ok ? auth_check(user, pass, c->peer_loopback) : AUTH_OK;
    }
    const config *cfg = &B.cfg;
    if (ar == AUTH_BAD_CREDENTIALS) {
        log_warning("%s: invalid credentials for user '%.*s'", c->name,
                    (int)user.len, user.data);
        ok = false;
    } else if (ar == AUTH_LOOPBACK_ONLY) {
        log_warning("%s: user '%.*s' can only connect via localhost", c->name,
                    (int)user.len, user.data);
        ok = false;
    }
    if (!ok) {
        /* The answer waits (longer after each recent failure from the
         * same address) and nothing more is read meanwhile, so passwords
         * cannot be tried quickly; the timer sends it. */
        double delay = auth_failed_login(c->peer);
        snprintf(c->deferred_name, sizeof c->deferred_name, "%.*s", (int)m->mechanism.len,
                 m->mechanism.data);
        c->refusing = true;
        c->refuse_at = ev_now(B.loop) + delay;
        if (c->reading) {
            ev_io_stop(B.loop, &c->rio);
            c->reading = false;
        }
        ev_timer_stop(B.loop, &c->timer);
        ev_timer_set(&c->timer, delay, 1.0);
        ev_timer_start(B.loop, &c->timer);
        return;
    }
    snprintf(c->user, sizeof c->user, "%.*s", (int)user.len, user.data);
    c->u = auth_user_find(user);
    amqp_method t = { .id = AMQP_CONNECTION_TUNE };
    t.a.connection_tune.channel_max = cfg->channel_max;
    t.a.connection_tune.frame_max = cfg->frame_max;
    t.a.connection_tune.heartbeat = cfg->heartbeat;
    conn_send_method(c, 0, &t);
    c->state = CONN_TUNE;
}

static void
conn_arm_timer(conn *c)
{
    ev_tstamp every = c->heartbeat ? c->heartbeat / 2.0 : 5.0;
    if (every > 5.0)
        every = 5.0;
    ev_timer_stop(B.loop, &c->timer);
    ev_timer_set(&c->timer, every, every);
    ev_timer_start(B.loop, &c->timer);
}

static void
handle_tune_ok(conn *c, const amqp_connection_tune_ok *m)
{
    const config *cfg = &B.cfg;
    uint32_t fmax = m->frame_max ? m->frame_max : cfg->frame_max;
    if (fmax < AMQP_FRAME_MIN_SIZE) {
        conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                   "frame_max=%u < %u min size", fmax, AMQP_FRAME_MIN_SIZE);
        return;
    }
    if (cfg->frame_max && fmax > cfg->frame_max) {
        conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                   "frame_max=%u > %u max size", fmax, cfg->frame_max);
        return;
    }
    uint16_t cmax = m->channel_max ? m->channel_max : cfg->channel_max;
    if (cfg->channel_max && cmax > cfg->channel_max) {
        conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
                   "channel_max=%u > %u max size", cmax, cfg->channel_max);
        return;
    }
    c->frame_max = fmax;
    c->channel_max = cmax ? cmax : 65535;
    c->heartbeat = m->heartbeat;
    c->state = CONN_OPENING;
}

static void
handle_open(conn *c, const amqp_connection_open *m)
{
    vhost *vh = broker_vhost(m->virtual_host);
    if (!vh) {
        conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                   "vhost %.*s not found", (int)m->virtual_host.len,
                   m->virtual_host.data);
        return;
    }
    if (!auth_vhost_access(c->u, vh)) {
        log_warning("%s: access to vhost '%.*s' refused for user '%s'", c->name,
                    (int)vh->name.len, vh->name.data, c->user);
        conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
                   "access to vhost '%.*s' refused for user '%s'", (int)vh->name.len,
                   vh->name.data, c->user);
        return;
    }
    char why[256];
    if (auth_connection_open(c->u, vh, why, sizeof why) != 0) {
        log_warning("%s: %s", c->name, why);
        conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN, "%s", why);
        return;
    }
    c->counted = true;
    c->vh = vh;
    c->state = CONN_OPEN;
    stream_peer_release(&c->io);   /* logged in: off the handshake count */
    amqp_method ok = { .id = AMQP_CONNECTION_OPEN_OK };
    conn_send_method(c, 0, &ok);
    conn_arm_timer(c);
    log_info("accepting AMQP connection %s (user '%s', vhost '%.*s')", c->name,
             c->user, (int)vh->name.len, vh->name.data);
}

/* Methods on channel 0. */
static void
conn_method0(conn *c, const amqp_method *m)
{
    if (m->id == AMQP_CONNECTION_CLOSE) {
        char ctx[400];
        if (c->state != CONN_CLOSING)
            log_info("closing AMQP connection %s%s: client closed it (%u %.*s)", c->name,
                     conn_log_ctx(c, ctx, sizeof ctx), m->a.connection_close.reply_code,
                     (int)m->a.connection_close.reply_text.len,
                     (const char *)m->a.connection_close.reply_text.data);
        amqp_method ok = { .id = AMQP_CONNECTION_CLOSE_OK };
        conn_send_method(c, 0, &ok);
        conn_drain(c);
        return;
    }
    if (c->state == CONN_CLOSING) {
        if (m->id == AMQP_CONNECTION_CLOSE_OK)
            conn_drain(c);
        return;
    }
    if (AMQP_CLASS_OF(m->id) != AMQP_CLASS_CONNECTION) {
        conn_error(c, AMQP_CHANNEL_ERROR, m->id, "unexpected method in connection state %s",
                   c->state == CONN_OPEN ? "running" : "handshake");
        return;
    }
    static const uint32_t expected[] = {
        [CONN_START] = AMQP_CONNECTION_START_OK,
        [CONN_TUNE] = AMQP_CONNECTION_TUNE_OK,
        [CONN_OPENING] = AMQP_CONNECTION_OPEN,
    };
    if (c->state < CONN_OPEN && m->id != expected[c->state]) {
        conn_error(c, AMQP_COMMAND_INVALID, m->id, "expected '%s', got '%s'",
                   amqp_method_name(expected[c->state]), amqp_method_name(m->id));
        return;
    }
    switch (m->id) {
    case AMQP_CONNECTION_START_OK:
        handle_start_ok(c, &m->a.connection_start_ok);
        break;
    case AMQP_CONNECTION_TUNE_OK:
        handle_tune_ok(c, &m->a.connection_tune_ok);
        break;
    case AMQP_CONNECTION_OPEN:
        handle_open(c, &m->a.connection_open);
        break;
    case AMQP_CONNECTION_UPDATE_SECRET: {
        amqp_method ok = { .id = AMQP_CONNECTION_UPDATE_SECRET_OK };
        conn_send_method(c, 0, &ok);
        break;
    }
    case AMQP_CONNECTION_CLOSE_OK:
        break;                     /* nothing was closing: ignore */
    default:
        conn_error(c, AMQP_COMMAND_INVALID, m->id, "unexpected '%s'",
                   amqp_method_name(m->id));
    }
}

/* ---- the gate ------------------------------------------------------------ */

static channel *
conn_channel(conn *c, uint16_t id)
{
    return id < c->nchannels ? c->channels[id] : NULL;
}

static void
conn_channel_set(conn *c, uint16_t id, channel *ch)
{
    if (id >= c->nchannels) {
        uint32_t n = c->nchannels ? c->nchannels : 8;
        while (n <= id)
            n *= 2;
        channel **a = realloc(c->channels, n * sizeof *a);
        if (!a)
            abort();
        memset(a + c->nchannels, 0, (n - c->nchannels) * sizeof *a);
        c->channels = a;
        c->nchannels = n;
    }
    c->channels[id] = ch;
}

static void
conn_gate(conn *c, uint16_t chan, const amqp_method *m)
{
    const amqp_method_info *info = amqp_method_info_get(m->id);
    if (c->state == CONN_CLOSING && chan != 0)
        return;                    /* discard until close-ok */
    if (!(info->flags & AMQP_MF_FROM_CLIENT)) {
        conn_error(c, AMQP_COMMAND_INVALID, m->id, "unimplemented method");
        return;
    }
    if (chan == 0) {
        conn_method0(c, m);
        return;
    }
    if (c->state != CONN_OPEN) {
        conn_error(c, AMQP_COMMAND_INVALID, m->id,
                   "'%s' on channel %u before connection.open",
                   amqp_method_name(m->id), chan);
        return;
    }
    if (AMQP_CLASS_OF(m->id) == AMQP_CLASS_CONNECTION) {
        conn_error(c, AMQP_COMMAND_INVALID, m->id,
                   "'%s' on channel %u, connection methods need channel 0",
                   amqp_method_name(m->id), chan);
        return;
    }
    channel *ch = conn_channel(c, chan);
    if (!ch) {
        if (m->id != AMQP_CHANNEL_OPEN) {
            conn_error(c, AMQP_CHANNEL_ERROR, m->id, "expected 'channel.open'");
            return;
        }
        if (chan > c->channel_max) {
            conn_error(c, AMQP_CHANNEL_ERROR, m->id,
                       "channel number %u exceeds negotiated channel_max %u",
                       chan, c->channel_max);
            return;
        }
        char why[256];
        if (auth_channel_open(c->u, why, sizeof why) != 0) {
            conn_error(c, AMQP_NOT_ALLOWED, m->id, "%s", why);
            return;
        }
        conn_channel_set(c, chan, channel_new(c, chan));
        amqp_method ok = { .id = AMQP_CHANNEL_OPEN_OK };
        conn_send_method(c, chan, &ok);
        return;
    }
    if (ch->closing) {
        /* After our channel.close only close-ok (or a crossing close)
         * counts; everything else is discarded, as the spec says. */
        if (m->id == AMQP_CHANNEL_CLOSE_OK || m->id == AMQP_CHANNEL_CLOSE) {
            if (m->id == AMQP_CHANNEL_CLOSE) {
                amqp_method ok = { .id = AMQP_CHANNEL_CLOSE_OK };
                conn_send_method(c, chan, &ok);
            }
            c->channels[chan] = NULL;
            channel_free(ch);
        }
        return;
    }
    if (ch->content == CONTENT_HEADER) {
        conn_error(c, AMQP_UNEXPECTED_FRAME, ch->pub_method,
                   "expected content header for class 60, got non content header frame instead");
        return;
    }
    if (ch->content == CONTENT_BODY) {
        conn_error(c, AMQP_UNEXPECTED_FRAME, ch->pub_method,
                   "expected content body, got non content body frame instead");
        return;
    }
    switch (m->id) {
    case AMQP_CHANNEL_OPEN:
        conn_error(c, AMQP_CHANNEL_ERROR, m->id, "second 'channel.open' seen");
        return;
    case AMQP_CHANNEL_CLOSE: {
        channel_release(ch);
        amqp_method ok = { .id = AMQP_CHANNEL_CLOSE_OK };
        conn_send_method(c, chan, &ok);
        c->channels[chan] = NULL;
        channel_free(ch);
        return;
    }
    case AMQP_CHANNEL_CLOSE_OK:
        return;                    /* nothing was closing: ignore */
    }
    if (info->flags & AMQP_MF_CONTENT) {
        const amqp_basic_publish *p = &m->a.basic_publish;
        if (persist_flow_blocked())
            c->flow = true;        /* pause after this publish */
        if ((B.disk_alarm || B.mem_alarm) && !c->blocked) {
            /* As RabbitMQ: a publisher is stopped at its first publish
             * under the alarm; this message waits in the buffer. */
            c->blocked = true;
            if (c->cap_blocked) {
                amqp_method b = { .id = AMQP_CONNECTION_BLOCKED };
                b.a.connection_blocked.reason = B.mem_alarm ? AMQP_BYTES_LIT("low on memory")
                                                            : AMQP_BYTES_LIT("low on disk");
                conn_send_method(c, 0, &b);
            }
        }
        ch->content = CONTENT_HEADER;
        ch->pub_method = m->id;
        ch->pub_mandatory = p->mandatory;
        ch->pub_ex_len = (uint8_t)p->exchange.len;
        memcpy(ch->pub_ex, p->exchange.data, p->exchange.len);
        ch->pub_rk_len = (uint8_t)p->routing_key.len;
        memcpy(ch->pub_rk, p->routing_key.data, p->routing_key.len);
        if (p->immediate) {
            conn_error(c, AMQP_NOT_IMPLEMENTED, m->id, "immediate=true");
            return;
        }
        return;
    }
    channel_method(ch, m);
}

/* ---- frames ------------------------------------------------------------- */

static void
conn_content_header(conn *c, channel *ch, const amqp_frame *f)
{
    amqp_content_header h;
    if (amqp_content_header_decode(f->payload, f->size, &h) != AMQP_OK) {
        conn_error(c, AMQP_FRAME_ERROR, ch->pub_method, "malformed content header");
        return;
    }
    if (h.class_id != AMQP_CLASS_BASIC) {
        conn_error(c, AMQP_UNEXPECTED_FRAME, ch->pub_method,
                   "expected content header for class 60, got one for class %u",
                   h.class_id);
        return;
    }
    if (h.body_size > B.cfg.max_message_size) {
        ch->content = CONTENT_NONE;
        channel_error(ch, AMQP_PRECONDITION_FAILED, ch->pub_method,
                      "message size %llu is larger than configured max size %llu",
                      (unsigned long long)h.body_size,
                      (unsigned long long)B.cfg.max_message_size);
        return;
    }
    ch->pending = message_new((amqp_bytes){ ch->pub_ex, ch->pub_ex_len },
                              (amqp_bytes){ ch->pub_rk, ch->pub_rk_len },
                              h.flags, h.props, h.props_len, h.body_size);
    if (!ch->pending) {
        conn_error(c, AMQP_INTERNAL_ERROR, ch->pub_method, "out of memory");
        return;
    }
    if (h.body_size == 0) {
        ch->content = CONTENT_NONE;
        channel_content_done(ch);
    } else {
        ch->content = CONTENT_BODY;
    }
}

static void
conn_content_body(conn *c, channel *ch, const amqp_frame *f)
{
    message *m = ch->pending;
    if (f->size > m->body_size - m->body_received) {
        conn_error(c, AMQP_FRAME_ERROR, ch->pub_method,
                   "content body is longer than the %llu bytes its header announced",
                   (unsigned long long)m->body_size);
        return;
    }
    memcpy(m->body + m->body_received, f->payload, f->size);
    m->body_received += f->size;
    if (m->body_received == m->body_size) {
        ch->content = CONTENT_NONE;
        channel_content_done(ch);
    }
}

/* Bytes as Erlang prints a binary, <<1,2,3>>, as RabbitMQ's decode errors
 * show them; long ones are cut. Static storage. */
static const char *
erlang_binary(const uint8_t *p, size_t n)
{
    static char out[200];
    size_t len = (size_t)snprintf(out, sizeof out, "<<");
    for (size_t i = 0; i < n && len < sizeof out - 12; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, i ? ",%u" : "%u", p[i]);
    snprintf(out + len, sizeof out - len, n && len >= sizeof out - 12 ? ",...>>" : ">>");
    return out;
}

static void
conn_frame(conn *c, const amqp_frame *f)
{
    if (f->type == AMQP_FRAME_METHOD) {
        amqp_method m;
        amqp_pool_reset(&c->pool);
        int rc = amqp_method_decode(f->payload, f->size, &m, &c->pool);
        if (rc != AMQP_OK) {
            uint32_t id = f->size >= 4 ? amqp_get32(f->payload) : 0;
            if (rc == AMQP_ERR_UNKNOWN_METHOD)
                conn_error(c, AMQP_NOT_IMPLEMENTED, id, "unknown method class=%u method=%u",
                           AMQP_CLASS_OF(id), AMQP_INDEX_OF(id));
            else
                conn_error(c, amqp_status_reply_code(rc), id, "cannot decode %s",
                           erlang_binary(f->size > 4 ? f->payload + 4 : f->payload,
                                         f->size > 4 ? f->size - 4 : 0));
            return;
        }
        conn_gate(c, f->channel, &m);
        return;
    }
    if (f->type == AMQP_FRAME_HEARTBEAT) {
        if (f->channel != 0)
            conn_error(c, AMQP_UNEXPECTED_FRAME, 0, "type 8, all octets = <<>>");
        return;
    }
    /* content header or body */
    if (c->state == CONN_CLOSING)
        return;
    channel *ch = f->channel ? conn_channel(c, f->channel) : NULL;
    if (ch && ch->closing)
        return;
    enum content_state want = f->type == AMQP_FRAME_HEADER ? CONTENT_HEADER : CONTENT_BODY;
    if (!ch || c->state != CONN_OPEN || ch->content != want) {
        if (ch && ch->content == CONTENT_HEADER)
            conn_error(c, AMQP_UNEXPECTED_FRAME, ch->pub_method,
                       "expected content header for class 60, got non content header frame instead");
        else if (ch && ch->content == CONTENT_BODY)
            conn_error(c, AMQP_UNEXPECTED_FRAME, ch->pub_method,
                       "expected content body, got non content body frame instead");
        else
            conn_error(c, AMQP_UNEXPECTED_FRAME, 0,
                       "expected method frame, got non method frame instead");
        return;
    }
    if (want == CONTENT_HEADER)
        conn_content_header(c, ch, f);
    else
        conn_content_body(c, ch, f);
}

static void
conn_protocol_header(conn *c)
{
    if (buf_used(&c->in) < 8)
        return;
    const uint8_t *p = c->in.data + c->in.off;
    if (memcmp(p, AMQP_PROTOCOL_HEADER, 8) != 0) {
        /* Tell the peer which protocol we speak, then hang up. */
        log_info("%s: bad protocol header, answering with AMQP 0-9-1's", c->name);
        buf_append(&c->out, AMQP_PROTOCOL_HEADER, 8);
        conn_drain(c);
        return;
    }
    buf_consume(&c->in, 8);
    send_start(c);
}

/* Parses and handles every complete frame in the input buffer. */
static void
conn_process(conn *c)
{
    if (c->state == CONN_HEADER)
        conn_protocol_header(c);
    while (c->state != CONN_HEADER && c->state < CONN_DRAINING &&
           !(conn_paused(c) && c->state == CONN_OPEN)) {
        amqp_frame f;
        size_t used;
        uint32_t fmax = c->state < CONN_OPENING ? AMQP_FRAME_MIN_SIZE : c->frame_max;
        int rc = amqp_frame_parse(c->in.data + c->in.off, buf_used(&c->in), fmax, &f, &used);
        if (rc == AMQP_NEED_MORE)
            break;
        if (rc != AMQP_OK) {
            if (c->state == CONN_CLOSING) {
                conn_abort(c, amqp_strerror(rc));
                return;
            }
            /* The texts are RabbitMQ's, so logs and client errors read the
             * same after a switch. */
            const uint8_t *h = c->in.data + c->in.off;
            if (rc == AMQP_ERR_FRAME_SIZE)
                conn_error(c, AMQP_FRAME_ERROR, 0,
                           "type %u, all octets = <<>>: {frame_too_large,%u,%u}", h[0],
                           amqp_get32(h + 3), fmax - AMQP_FRAME_OVERHEAD);
            else if (rc == AMQP_ERR_FRAME_END)
                conn_error(c, AMQP_FRAME_ERROR, 0,
                           "type %u, all octets = <<>>: {invalid_frame_end_marker,%u}", h[0],
                           h[AMQP_FRAME_HEADER_SIZE + (size_t)amqp_get32(h + 3)]);
            else if (rc == AMQP_ERR_FRAME_TYPE)
                conn_error(c, AMQP_FRAME_ERROR, 0, "type %u, all octets = <<>>: unknown_frame", h[0]);
            else
                conn_error(c, AMQP_FRAME_ERROR, 0, "%s", amqp_strerror(rc));
            conn_drain(c);        /* framing is lost: no close-ok can follow */
            return;
        }
        persist_definition_batch = 0;
        conn_frame(c, &f);
        buf_consume(&c->in, used);
        if (buf_used(&c->out) >= OUT_PAUSE && c->state == CONN_OPEN)
            c->out_full = true;    /* it writes but does not read */
        if (conn_paused(c) && c->state == CONN_OPEN)
            break;                 /* leave what follows unread for now */
    }
    /* coalesced publisher confirms, one ack for a batch */
    while (c->dirty) {
        channel *ch = c->dirty;
        c->dirty = ch->dirty_next;
        ch->dirty_next = NULL;
        channel_flush_confirms(ch);
    }
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    conn *c = (conn *)((char *)w - offsetof(conn, rio));
    size_t budget = READ_BUDGET, since_flush = 0;
    if (c->resume_pending) {       /* a pause ended: frames left unread */
        c->resume_pending = false;
        conn_process(c);
    }
    if (conn_paused(c) && c->state == CONN_OPEN) {
        ev_io_stop(B.loop, &c->rio);
        c->reading = false;
        return;
    }
    while (budget > 0 && c->state != CONN_DEAD && !(conn_paused(c) && c->state == CONN_OPEN)) {
        uint8_t *dst = buf_reserve(&c->in, READ_CHUNK);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = c->io.tr->read(&c->io, dst, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_abort(c, c->state == CONN_DRAINING ? NULL : stream_strerror(&c->io, errno));
            else if (c->io.want_write)
                ev_io_start(B.loop, &c->wio);
            break;
        }
        if (n == 0) {
            if (c->state == CONN_DRAINING || c->state == CONN_CLOSING)
                conn_abort(c, NULL);
            else
                conn_abort(c, "client unexpectedly closed TCP connection");
            break;
        }
        c->last_recv = ev_now(B.loop);
        if (c->state == CONN_DRAINING) {
            c->in.len = c->in.off = 0;     /* discard while lingering */
            continue;
        }
        buf_commit(&c->in, (size_t)n);
        c->recv_oct += (size_t)n;
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        conn_process(c);
        since_flush += (size_t)n;
        if (since_flush >= FLUSH_EVERY && flush_list) {
            since_flush = 0;
            flush_all();           /* may abort c: the loop re-checks */
        }
        /* A short read took all a plain socket held: asking again would
         * only hear EAGAIN, a system call between this input and the
         * deliveries it made (the watcher says when more comes). TLS may
         * hold decrypted bytes the socket no longer shows, so it asks. */
        if ((size_t)n < room && !c->io.tr->secure)
            break;
    }
    if (c->state != CONN_DEAD)
        buf_compact(&c->in);
}

/* Output waits: true once the peer has taken no byte for SEND_TIMEOUT,
 * neither from our buffer nor from the kernel's (a slow reader drains the
 * kernel's queue without letting us write for a while). */
static bool
conn_stuck(conn *c, ev_tstamp now)
{
    long unsent = stream_unsent(&c->io);
    if (unsent != c->unsent) {
        c->unsent = unsent;
        c->last_taken = now;
    }
    return now - c->last_taken > SEND_TIMEOUT;
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    conn *c = (conn *)((char *)w - offsetof(conn, timer));
    ev_tstamp now = ev_now(loop);
    switch (c->state) {
    case CONN_HEADER: case CONN_START: case CONN_TUNE: case CONN_OPENING:
        if (c->refusing && now >= c->refuse_at - 0.001) {
            c->refusing = false;
            if (!c->reading) {     /* for the close-ok */
                ev_io_start(B.loop, &c->rio);
                c->reading = true;
            }
            if (c->cap_auth_failure_close)
                conn_error(c, AMQP_ACCESS_REFUSED, AMQP_CONNECTION_START_OK,
                           "Login was refused using authentication mechanism %s. "
                           "For details see the broker logfile.", c->deferred_name);
            else
                conn_abort(c, "authentication failed");
            return;
        }
        if (c->refusing)
            return;
        if (now >= c->deadline)
            conn_abort(c, "handshake timeout");
        return;
    case CONN_CLOSING: case CONN_DRAINING:
        if (now >= c->deadline)
            conn_abort(c, NULL);
        return;
    case CONN_OPEN:
        if (buf_used(&c->out) && conn_stuck(c, now)) {
            char ctx[400];
            log_warning("closing AMQP connection %s%s: the client read nothing for %.0fs",
                        c->name, conn_log_ctx(c, ctx, sizeof ctx), SEND_TIMEOUT);
            conn_abort(c, NULL);
            return;
        }
        if (c->heartbeat == 0)
            return;
        if (conn_paused(c))
            c->last_recv = now;    /* we are the ones not reading */
        if (now - c->last_recv > 2.0 * c->heartbeat) {
            char ctx[400];
            log_warning("closing AMQP connection %s%s: missed heartbeats from client, "
                        "timeout: %us", c->name, conn_log_ctx(c, ctx, sizeof ctx), c->heartbeat);
            conn_abort(c, NULL);
            return;
        }
        if (now - c->last_send >= c->heartbeat / 2.0)
            conn_send_heartbeat(c);
        return;
    case CONN_DEAD:
        return;
    }
}

void
conn_accept(const stream *s, const char *peer, bool loopback)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->io = *s;
    int fd = s->fd;
    c->id = ++B.next_conn_id;
    c->state = CONN_HEADER;
    c->peer_loopback = loopback;
    c->frame_max = AMQP_FRAME_MIN_SIZE;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    snprintf(c->name, sizeof c->name, "%s (%llu)", peer, (unsigned long long)c->id);
    ev_io_init(&c->rio, read_cb, fd, EV_READ);
    ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
    ev_init(&c->timer, timer_cb);
    c->last_recv = c->last_send = c->last_taken = ev_now(B.loop);
    c->connected_at = ev_time() * 1000.0;
    c->deadline = ev_now(B.loop) + HANDSHAKE_TIMEOUT;
    ev_timer_set(&c->timer, 1.0, 1.0);
    ev_timer_start(B.loop, &c->timer);
    ev_io_start(B.loop, &c->rio);
    c->reading = true;
    c->next = B.conns;
    if (B.conns)
        B.conns->prev = c;
    B.conns = c;
    if (B.stopping)
        conn_drain(c);
}
