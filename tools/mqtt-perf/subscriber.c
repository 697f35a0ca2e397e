/* subscriber.c - one subscribing thread on its own connection.
 *
 * Raw mode reads the socket into a 256 KB buffer and walks the whole
 * PUBLISH packets in it: each is counted, its payload's first 8 bytes give
 * the end-to-end latency against one clock reading per read(), and QoS 1
 * gets a PUBACK, QoS 2 a PUBREC (and PUBREL a PUBCOMP). The acks of one
 * read go out in one write. Lib mode counts in libmosquitto's on_message
 * callback instead and leaves the acks to the library.
 *
 * A sample in the future or over an hour old is not counted: a foreign
 * message on a shared topic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>

#include "mqtt-perf.h"

#define HOUR_NS (3600ull * 1000000000ull)

typedef struct sub {
    mperf_worker *w;
    const mperf_opts *o;
    mperf_run *run;
    char name[32];
    mperf_conn c;
    uint64_t received, lat_sum, lat_n;
} sub;

static void
record(sub *s, const uint8_t *payload, size_t len, uint64_t now)
{
    s->received++;
    if (s->w->first_ns == 0)
        s->w->first_ns = now;
    if (len < 8)
        return;
    uint64_t sent;
    memcpy(&sent, payload, 8);
    if (sent <= now && now - sent < HOUR_NS) {
        perf_hist_record(&s->w->hist, now - sent);
        s->lat_sum += now - sent;
        s->lat_n++;
    }
}

static void
publish_counts(sub *s, uint64_t now)
{
    s->w->last_ns = now;
    atomic_store_explicit(&s->w->received, s->received, memory_order_relaxed);
    atomic_store_explicit(&s->w->lat_sum_ns, s->lat_sum, memory_order_relaxed);
    atomic_store_explicit(&s->w->lat_n, s->lat_n, memory_order_relaxed);
}

static int
ack(sub *s, uint8_t type, uint16_t pid)
{
    uint8_t a[4] = {type, 0x02, (uint8_t)(pid >> 8), (uint8_t)pid};
    return mperf_conn_put(&s->c, a, 4);
}

/* Handle the whole packets in the input buffer. */
static int
parse_input(sub *s, uint64_t now)
{
    mperf_conn *c = &s->c;
    size_t pos = 0, body;
    long len;
    uint64_t before = s->received;
    while ((len = mperf_conn_packet(c, pos, &body)) > 0) {
        uint8_t type = c->in[pos];
        const uint8_t *b = c->in + body, *end = c->in + pos + len;
        switch (type >> 4) {
        case 3: { /* PUBLISH */
            int qos = (type >> 1) & 3;
            uint16_t pid = 0;
            if (end - b < 2 || (size_t)(end - b) < 2u + mperf_be16(b))
                goto malformed;
            b += 2 + mperf_be16(b);
            if (qos > 0) {
                if (end - b < 2)
                    goto malformed;
                pid = mperf_be16(b);
                b += 2;
            }
            if (s->o->version == 5) {
                uint32_t plen = 0;
                int i = 0;
                do {
                    if (b >= end || i == 4)
                        goto malformed;
                    plen |= (uint32_t)(*b & 0x7f) << (7 * i++);
                } while (*b++ & 0x80);
                if ((size_t)(end - b) < plen)
                    goto malformed;
                b += plen;
            }
            record(s, b, (size_t)(end - b), now);
            if (qos == 1 && ack(s, 0x40, pid) < 0)
                return -1;
            if (qos == 2 && ack(s, 0x50, pid) < 0)
                return -1;
            break;
        }
        case 6: /* PUBREL */
            if (end - b < 2)
                goto malformed;
            if (ack(s, 0x70, mperf_be16(b)) < 0)
                return -1;
            break;
        case 13: /* PINGRESP */
            break;
        case 14: /* DISCONNECT (MQTT 5) */
            mperf_fail(s->run, s->name, "the broker sent DISCONNECT (reason 0x%02x)",
                       (unsigned)(b < end ? b[0] : 0));
            return -1;
        default:
            mperf_fail(s->run, s->name, "unexpected packet type %u", type >> 4);
            return -1;
        }
        pos += (size_t)len;
    }
    if (len < 0)
        return -1;
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    if (s->received != before)
        publish_counts(s, now);
    return 0;
malformed:
    mperf_fail(s->run, s->name, "malformed packet type %u from the broker",
               c->in[pos] >> 4);
    return -1;
}

/* Read and handle what is there, waiting up to wait_ms for the first bytes.
 * Returns 1 when something came, 0 when nothing did, -1 on an error. */
static int
drain(sub *s, int wait_ms)
{
    int got = 0;
    for (;;) {
        long r = mperf_conn_read(&s->c, wait_ms);
        if (r < 0)
            return -1;
        if (r == 0 && s->c.in_len < s->c.in_cap)
            return got;
        got = 1;
        if (parse_input(s, tool_now_ns()) < 0)
            return -1;
        /* Read on while a large read suggests more is waiting. */
        if ((size_t)r < s->c.in_cap / 2)
            return got;
        wait_ms = 0;
    }
}

static int
drain_cb(void *ctx)
{
    return drain(ctx, 0) < 0 ? -1 : 0;
}

static int
raw_loop(sub *s)
{
    while (!atomic_load_explicit(&s->run->stop, memory_order_relaxed)) {
        if (drain(s, 100) < 0)
            return -1;
        mperf_conn_keepalive(&s->c, tool_now_ns());
        if (s->c.out_len) {
            int r = mperf_conn_flush(&s->c, drain_cb, s, 1000000000u);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* ---- lib mode -------------------------------------------------------- */

static void
lib_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
    sub *s = ((mperf_conn *)obj)->owner;
    uint64_t now = tool_now_ns();
    record(s, m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0, now);
    if ((s->received & 255) == 0)
        publish_counts(s, now);
    s->w->last_ns = now;
}

static int
lib_loop(sub *s)
{
    mosquitto_message_callback_set(s->c.mosq, lib_on_message);
    while (!atomic_load_explicit(&s->run->stop, memory_order_relaxed)) {
        int rc = mperf_conn_step(&s->c, 100);
        if (rc != MOSQ_ERR_SUCCESS) {
            if (!atomic_load(&s->run->failed))
                mperf_fail(s->run, s->name, "connection lost: %s",
                           rc == MOSQ_ERR_ERRNO ? strerror(errno)
                                                : mosquitto_strerror(rc));
            return -1;
        }
        uint64_t last = s->w->last_ns;
        publish_counts(s, last);
    }
    return 0;
}

/* ---- the thread ------------------------------------------------------ */

void *
mperf_subscriber_main(void *arg)
{
    mperf_worker *w = arg;
    sub s = {.w = w, .o = w->run->o, .run = w->run};
    char id[32];
    snprintf(s.name, sizeof s.name, "subscriber %d", w->id + 1);
    snprintf(id, sizeof id, "cmp%d-s%d", (int)getpid() % 1000000, w->id + 1);
    perf_hist_init(&w->hist);

    int r = mperf_conn_open(&s.c, s.run, s.name, id, &s);
    if (r == 0)
        r = mperf_conn_subscribe(&s.c, w->topics, w->ntopics);
    if (r == 0 && s.o->io == MPERF_IO_RAW)
        r = mperf_conn_take(&s.c);
    if (r == 0) {
        atomic_fetch_add(&s.run->subscribers_ready, 1);
        r = s.o->io == MPERF_IO_LIB ? lib_loop(&s) : raw_loop(&s);
    }
    publish_counts(&s, w->last_ns);
    mperf_conn_close(&s.c);
    return NULL;
}
