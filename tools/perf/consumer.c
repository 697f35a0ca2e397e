/* consumer.c - one consuming thread on its own connection.
 *
 * Deliveries are read frame by frame with amqp_simple_wait_frame rather than
 * amqp_consume_message, which copies the consumer tag, exchange, routing key
 * and body of every message into fresh mallocs. Here a delivery is three
 * frames decoded into rabbitmq-c's channel pool, which is recycled after
 * each message: basic.deliver gives the tag, the content header the body
 * size, and the first body frame the send time. rabbitmq-c reads the socket
 * 128 KB at a time, so one recv() carries many messages.
 *
 * Acks are encoded into a perf_out and written when rabbitmq-c's input
 * buffer runs dry (just before it would block in recv) or when 64 KB pile
 * up: acking every message then costs a memcpy, and acks still leave at
 * once. With --multiple-ack-every N one ack with multiple=true covers N
 * deliveries; leftovers are acked after 100 ms without input and at the end.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"

#define OUT_FLUSH_BYTES (64 * 1024)
#define OUT_CAP (OUT_FLUSH_BYTES + 256)
#define CHANNEL 1
/* A sample older than this is not one of ours (or the clock is not shared). */
#define MAX_SANE_LATENCY_NS (3600ull * 1000000000ull)

typedef struct cons {
    perf_consumer *c;
    const perf_opts *o;
    perf_run *run;
    char name[32];
    amqp_connection_state_t conn;
    perf_out out;
    uint64_t received;
    uint64_t lat_sum, lat_n;
    uint64_t unacked;         /* deliveries not yet covered by an ack */
    uint64_t last_tag;
} cons;

static int
queue_ack(cons *s, uint64_t tag, int multiple)
{
    amqp_basic_ack_t ack = {.delivery_tag = tag, .multiple = multiple};
    size_t n = perf_frame_method(s->out.buf + s->out.len,
                                 s->out.cap - s->out.len, CHANNEL,
                                 AMQP_BASIC_ACK_METHOD, &ack);
    if (n == 0) {
        perf_fail(s->run, s->name, "cannot encode basic.ack");
        return -1;
    }
    s->out.len += n;
    s->unacked = 0;
    return 0;
}

/* -1 = error (reported), -2 = connection holds half a frame. */
static int
flush(cons *s)
{
    if (s->out.len == 0)
        return 0;
    int r = perf_out_flush(&s->out, NULL, NULL);
    if (r == PERF_OUT_ABANDONED)
        return -2;
    if (r != PERF_OUT_OK) {
        perf_fail(s->run, s->name, "connection lost: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int
ack_leftovers(cons *s)
{
    if (s->unacked == 0)
        return 0;
    if (queue_ack(s, s->last_tag, 1) < 0)
        return -1;
    return flush(s);
}

/* A whole message has arrived. */
static int
on_message(cons *s, uint64_t tag, const uint8_t *first, size_t first_len)
{
    uint64_t now = tool_now_ns();
    perf_consumer *c = s->c;
    if (c->first_ns == 0)
        c->first_ns = now;
    c->last_ns = now;
    if (first_len >= 8) {
        uint64_t sent;
        memcpy(&sent, first, 8);
        if (sent != 0 && sent <= now && now - sent < MAX_SANE_LATENCY_NS) {
            perf_hist_record(&c->hist, now - sent);
            s->lat_sum += now - sent;
            s->lat_n++;
        }
    }
    s->received++;
    atomic_store_explicit(&c->received, s->received, memory_order_relaxed);
    atomic_store_explicit(&c->lat_sum_ns, s->lat_sum, memory_order_relaxed);
    atomic_store_explicit(&c->lat_n, s->lat_n, memory_order_relaxed);
    if (s->o->auto_ack)
        return 0;
    s->last_tag = tag;
    if (++s->unacked >= s->o->multi_ack &&
        queue_ack(s, tag, s->o->multi_ack > 1) < 0)
        return -1;
    if (s->out.len >= OUT_FLUSH_BYTES)
        return flush(s);
    return 0;
}

static int
setup(cons *s)
{
    const perf_opts *o = s->o;
    char err[512];
    if (perf_connect(o, s->name, &s->conn, err, sizeof err) < 0) {
        perf_fail(s->run, s->name, "%s", err);
        return -1;
    }
    if (perf_out_init(&s->out, s->conn, OUT_CAP, &s->run->stop) < 0) {
        perf_fail(s->run, s->name, "out of memory");
        return -1;
    }
    amqp_rpc_reply_t r;
    if (o->prefetch > 0 && !o->auto_ack) {
        amqp_basic_qos(s->conn, CHANNEL, 0, (uint16_t)o->prefetch, 0);
        r = amqp_get_rpc_reply(s->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            perf_fail(s->run, s->name, "basic.qos: %s",
                      perf_reply_str(r, err, sizeof err));
            return -1;
        }
    }
    for (int i = 0; i < s->c->nqueues; i++) {
        const char *q = s->c->queues[i];
        amqp_basic_consume(s->conn, CHANNEL, amqp_cstring_bytes(q),
                           amqp_empty_bytes, 0, o->auto_ack, 0,
                           amqp_empty_table);
        r = amqp_get_rpc_reply(s->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            perf_fail(s->run, s->name, "basic.consume on %s: %s", q,
                      perf_reply_str(r, err, sizeof err));
            return -1;
        }
        amqp_maybe_release_buffers(s->conn);
    }
    return 0;
}

static int
consume_loop(cons *s)
{
    enum { WANT_METHOD, WANT_HEADER, WANT_BODY } want = WANT_METHOD;
    uint64_t tag = 0, remaining = 0;
    uint8_t first[8];
    size_t first_len = 0;
    char why[384];
    int r;

    while (!atomic_load_explicit(&s->run->stop, memory_order_relaxed)) {
        /* About to block in recv(): send the acks first. */
        if (s->out.len && !amqp_frames_enqueued(s->conn) &&
            !amqp_data_in_buffer(s->conn) && (r = flush(s)) < 0)
            return r;
        /* With input buffered the plain call does not block, and unlike
         * the timed one it does not read the clock for every frame. With
         * none, wait for the socket here: rabbitmq-c would try a recv()
         * first, one more system call per wake-up that only hears EAGAIN
         * (at a low rate, one per message, and it is in the latency). */
        amqp_frame_t f;
        int st;
        if (amqp_frames_enqueued(s->conn) || amqp_data_in_buffer(s->conn)) {
            st = amqp_simple_wait_frame(s->conn, &f);
        } else {
            struct pollfd pfd = {.fd = amqp_get_sockfd(s->conn), .events = POLLIN};
            int pr = poll(&pfd, 1, 100);
            if (pr < 0 && errno != EINTR) {
                perf_fail(s->run, s->name, "poll: %s", strerror(errno));
                return -1;
            }
            st = pr > 0 ? amqp_simple_wait_frame(s->conn, &f) : AMQP_STATUS_TIMEOUT;
        }
        if (st == AMQP_STATUS_TIMEOUT) {
            if ((r = ack_leftovers(s)) < 0)
                return r;
            continue;
        }
        if (st != AMQP_STATUS_OK) {
            perf_fail(s->run, s->name, "connection lost: %s",
                      amqp_error_string2(st));
            return -1;
        }
        switch (f.frame_type) {
        case AMQP_FRAME_METHOD:
            switch (f.payload.method.id) {
            case AMQP_BASIC_DELIVER_METHOD: {
                const amqp_basic_deliver_t *d = f.payload.method.decoded;
                tag = d->delivery_tag;
                want = WANT_HEADER;
                break;
            }
            case AMQP_BASIC_CANCEL_METHOD:
                perf_fail(s->run, s->name,
                          "the broker cancelled a consumer (queue deleted?)");
                return -1;
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                perf_fail(s->run, s->name, "%s",
                          perf_close_str(&f, why, sizeof why));
                return -1;
            default:
                break;
            }
            break;
        case AMQP_FRAME_HEADER:
            if (want != WANT_HEADER)
                break;
            remaining = f.payload.properties.body_size;
            first_len = 0;
            if (remaining == 0) {
                want = WANT_METHOD;
                if (on_message(s, tag, first, 0) < 0)
                    return -1;
            } else {
                want = WANT_BODY;
            }
            break;
        case AMQP_FRAME_BODY: {
            if (want != WANT_BODY)
                break;
            amqp_bytes_t b = f.payload.body_fragment;
            if (first_len < 8) {
                size_t k = 8 - first_len < b.len ? 8 - first_len : b.len;
                memcpy(first + first_len, b.bytes, k);
                first_len += k;
            }
            remaining = b.len < remaining ? remaining - b.len : 0;
            if (remaining == 0) {
                want = WANT_METHOD;
                if ((r = on_message(s, tag, first, first_len)) < 0)
                    return r;
                amqp_maybe_release_buffers_on_channel(s->conn, CHANNEL);
            }
            break;
        }
        default:
            break;
        }
    }
    return ack_leftovers(s);
}

void *
perf_consumer_main(void *arg)
{
    perf_consumer *c = arg;
    cons s = {.c = c, .o = c->run->o, .run = c->run};
    snprintf(s.name, sizeof s.name, "consumer %d", c->id + 1);
    perf_hist_init(&c->hist);

    int r = setup(&s);
    atomic_fetch_add(&s.run->consumers_ready, 1);
    if (r == 0)
        r = consume_loop(&s);
    if (r == 0 && !atomic_load(&s.run->failed))
        perf_disconnect(s.conn, 1.0);
    else
        perf_abandon(s.conn);
    perf_out_free(&s.out);
    return NULL;
}
