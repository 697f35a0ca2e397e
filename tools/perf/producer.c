/* producer.c - one publishing thread on its own connection.
 *
 * The method frame and the content header of every message a producer
 * sends are the same bytes, so they are encoded once (by rabbitmq-c) into a
 * template; a message is the template, a body frame header and the body,
 * whose first 8 bytes are the CLOCK_MONOTONIC send time in nanoseconds.
 * Messages collect in a perf_out and go out write_batch at a time (or when
 * 64 KB are buffered), so a small message costs a memcpy, not a syscall.
 *
 * With confirms the delivery tags are tracked in a ring that holds the send
 * time of each unconfirmed tag: basic.ack/basic.nack (multiple or not)
 * settle tags in any order, the ring's low end advances over settled ones,
 * and publishing waits while `window` tags are unsettled (or the ring would
 * wrap). With a rate, messages go out in bursts on an absolute schedule
 * (tools/common/pacer.h), so pacing is even, a late wake-up does not lose
 * rate, and a burst is a few writes however fast the rate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "perf.h"

#define OUT_FLUSH_BYTES (64 * 1024)
#define CHANNEL 1

typedef struct prod {
    perf_producer *p;
    const perf_opts *o;
    perf_run *run;
    char name[32];
    amqp_connection_state_t conn;
    perf_out out;
    uint8_t *tmpl;            /* per target queue: basic.publish + header */
    size_t *tmpl_off;         /* nqueues + 1 offsets into tmpl */
    int rr;                   /* the next target queue */
    size_t body_max;          /* body bytes per frame (frame_max - 8) */
    size_t msg_wire;          /* bytes of one whole message on the wire */
    unsigned in_buf;          /* messages buffered, not yet sent */
    uint64_t sent;
    /* Confirm tracking; tags are 1-based. */
    uint64_t next_tag;        /* tag of the next message published */
    uint64_t low;             /* lowest unsettled tag */
    uint64_t outstanding;
    uint64_t mask;            /* ring size - 1 */
    uint64_t *ring;           /* send time of each unsettled tag, 0 = settled */
    uint64_t confirmed, nacked, returned;
    int blocked_noted;
} prod;

static void
put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

static void
settle(prod *s, uint64_t tag, int nack, uint64_t now)
{
    uint64_t *slot = &s->ring[tag & s->mask];
    if (*slot == 0)
        return; /* already settled: a duplicate, ignore */
    perf_hist_record(&s->p->conf_hist, now > *slot ? now - *slot : 0);
    *slot = 0;
    s->outstanding--;
    if (nack)
        s->nacked++;
    else
        s->confirmed++;
}

static void
on_confirm(prod *s, uint64_t tag, int multiple, int nack)
{
    if (tag >= s->next_tag || (tag < s->low && !multiple))
        return;
    uint64_t now = tool_now_ns();
    if (s->p->conf_first_ns == 0)
        s->p->conf_first_ns = now;
    s->p->conf_last_ns = now;
    if (multiple) {
        for (uint64_t t = s->low; t <= tag; t++)
            settle(s, t, nack, now);
    } else {
        settle(s, tag, nack, now);
    }
    while (s->low < s->next_tag && s->ring[s->low & s->mask] == 0)
        s->low++;
    atomic_store_explicit(&s->p->confirmed, s->confirmed, memory_order_relaxed);
    atomic_store_explicit(&s->p->nacked, s->nacked, memory_order_relaxed);
}

/* One frame from the broker. Returns -1 on a close. */
static int
on_frame(prod *s, const amqp_frame_t *f)
{
    char why[384];
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0; /* the content of a basic.return */
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        on_confirm(s, a->delivery_tag, a->multiple, 0);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = f->payload.method.decoded;
        on_confirm(s, a->delivery_tag, a->multiple, 1);
        break;
    }
    case AMQP_BASIC_RETURN_METHOD:
        s->returned++;
        atomic_store_explicit(&s->p->returned, s->returned,
                              memory_order_relaxed);
        break;
    case AMQP_CONNECTION_BLOCKED_METHOD:
        if (!s->blocked_noted++)
            fprintf(stderr, "coney-perf: %s: connection blocked by the broker\n",
                    s->name);
        break;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        perf_fail(s->run, s->name, "%s", perf_close_str(f, why, sizeof why));
        return -1;
    default:
        break;
    }
    return 0;
}

/* Read what the broker sent, waiting up to wait_ms for the first frame.
 * Returns -1 on an error (already reported). */
static int
drain(prod *s, int wait_ms)
{
    struct timeval tv = {.tv_sec = wait_ms / 1000,
                         .tv_usec = (wait_ms % 1000) * 1000};
    for (;;) {
        amqp_frame_t f;
        int r = amqp_simple_wait_frame_noblock(s->conn, &f, &tv);
        if (r == AMQP_STATUS_TIMEOUT)
            break;
        if (r != AMQP_STATUS_OK) {
            perf_fail(s->run, s->name, "connection lost: %s",
                      amqp_error_string2(r));
            return -1;
        }
        if (on_frame(s, &f) < 0)
            return -1;
        /* Keep going only while rabbitmq-c holds more input. */
        if (!amqp_frames_enqueued(s->conn) && !amqp_data_in_buffer(s->conn))
            break;
        tv = (struct timeval){0, 0};
    }
    amqp_maybe_release_buffers(s->conn);
    return 0;
}

static int
drain_cb(void *ctx)
{
    return drain(ctx, 0);
}

static int
flush(prod *s)
{
    if (s->out.len == 0)
        return 0;
    int r = perf_out_flush(&s->out, drain_cb, s);
    if (r == PERF_OUT_ABANDONED)
        return -2;
    if (r != PERF_OUT_OK) {
        if (!atomic_load(&s->run->failed))
            perf_fail(s->run, s->name, "connection lost: %s", strerror(errno));
        return -1;
    }
    s->p->last_ns = tool_now_ns();
    s->p->writes++;
    s->sent += s->in_buf;
    s->in_buf = 0;
    atomic_store_explicit(&s->p->sent, s->sent, memory_order_relaxed);
    return 0;
}

/* Append one message stamped `now`: the time its batch started, a
 * microsecond or so before the write that sends the batch. */
static void
append(prod *s, uint64_t now)
{
    uint8_t *d = s->out.buf + s->out.len;
    size_t t0 = s->tmpl_off[s->rr], tl = s->tmpl_off[s->rr + 1] - t0;
    memcpy(d, s->tmpl + t0, tl);
    d += tl;
    if (++s->rr == s->p->nqueues)
        s->rr = 0;
    if (s->p->first_ns == 0)
        s->p->first_ns = now;
    size_t left = s->o->size, off = 0;
    while (left > 0) {
        size_t chunk = left < s->body_max ? left : s->body_max;
        d[0] = AMQP_FRAME_BODY;
        put_be16(d + 1, CHANNEL);
        put_be32(d + 3, (uint32_t)chunk);
        d += 7;
        if (off == 0) {
            memcpy(d, &now, 8);
            memset(d + 8, 0, chunk - 8);
        } else {
            memset(d, 0, chunk);
        }
        d += chunk;
        *d++ = AMQP_FRAME_END;
        off += chunk;
        left -= chunk;
    }
    s->out.len = (size_t)(d - s->out.buf);
    s->in_buf++;
    if (s->o->confirm) {
        s->ring[s->next_tag & s->mask] = now ? now : 1;
        s->next_tag++;
        s->outstanding++;
    }
}

static int
window_full(const prod *s)
{
    return s->outstanding >= s->o->confirm || s->next_tag - s->low > s->mask;
}

/* Wait for room in the confirm window. 1 = stopped, -1 = error. */
static int
wait_room(prod *s)
{
    while (window_full(s)) {
        if (atomic_load_explicit(&s->run->stop, memory_order_relaxed))
            return 1;
        if (drain(s, 100) < 0)
            return -1;
    }
    return 0;
}

static int
setup(prod *s)
{
    const perf_opts *o = s->o;
    char err[512];
    if (perf_connect(o, s->name, &s->conn, err, sizeof err) < 0) {
        perf_fail(s->run, s->name, "%s", err);
        return -1;
    }
    if (o->confirm) {
        amqp_confirm_select(s->conn, CHANNEL);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(s->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            perf_fail(s->run, s->name, "confirm.select: %s",
                      perf_reply_str(r, err, sizeof err));
            return -1;
        }
        uint64_t ring = 1;
        while (ring < 2 * (uint64_t)o->confirm)
            ring <<= 1;
        s->ring = calloc(ring, sizeof *s->ring);
        if (!s->ring) {
            perf_fail(s->run, s->name, "out of memory");
            return -1;
        }
        s->mask = ring - 1;
        s->next_tag = 1;
        s->low = 1;
    }

    /* The templates: basic.publish and the content header, encoded once
     * per target queue. */
    int nq = s->p->nqueues;
    size_t max_tmpl = 0;
    s->tmpl_off = calloc((size_t)nq + 1, sizeof *s->tmpl_off);
    s->tmpl = malloc((size_t)nq * 1280);
    if (!s->tmpl || !s->tmpl_off) {
        perf_fail(s->run, s->name, "out of memory");
        return -1;
    }
    for (int i = 0; i < nq; i++) {
        const char *q = s->p->queues[i];
        const char *rk = "";
        char rkbuf[320];
        if (!strcmp(o->exchange_type, "direct")) {
            rk = q;
        } else if (!strcmp(o->exchange_type, "topic")) {
            snprintf(rkbuf, sizeof rkbuf, "%s.perf", q);
            rk = rkbuf;
        }
        amqp_basic_publish_t pub = {
            .ticket = 0,
            .exchange = amqp_cstring_bytes(o->exchange),
            .routing_key = amqp_cstring_bytes(rk),
            .mandatory = o->mandatory,
            .immediate = 0,
        };
        amqp_table_entry_t hdr = {
            .key = amqp_cstring_bytes("coney-perf-queue"),
            .value = {.kind = AMQP_FIELD_KIND_UTF8,
                      .value.bytes = amqp_cstring_bytes(q)},
        };
        amqp_basic_properties_t props = {
            ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
            .delivery_mode = o->persistent ? 2 : 1,
        };
        if (!strcmp(o->exchange_type, "headers")) {
            props._flags |= AMQP_BASIC_HEADERS_FLAG;
            props.headers = (amqp_table_t){.num_entries = 1, .entries = &hdr};
        }
        uint8_t *t = s->tmpl + s->tmpl_off[i];
        size_t m = perf_frame_method(t, 1280, CHANNEL,
                                     AMQP_BASIC_PUBLISH_METHOD, &pub);
        size_t h = m ? perf_frame_header(t + m, 1280 - m, CHANNEL, o->size,
                                         &props)
                     : 0;
        if (!h) {
            perf_fail(s->run, s->name, "cannot encode the publish frames");
            return -1;
        }
        s->tmpl_off[i + 1] = s->tmpl_off[i] + m + h;
        if (m + h > max_tmpl)
            max_tmpl = m + h;
    }

    int frame_max = amqp_get_frame_max(s->conn);
    s->body_max = frame_max > 4096 ? (size_t)frame_max - 8 : 4096 - 8;
    size_t frames = (o->size + s->body_max - 1) / s->body_max;
    s->msg_wire = max_tmpl + frames * 8 + o->size;
    size_t cap = OUT_FLUSH_BYTES + s->msg_wire;
    if (perf_out_init(&s->out, s->conn, cap, &s->run->stop) < 0) {
        perf_fail(s->run, s->name, "out of memory");
        return -1;
    }
    return 0;
}

/* Publish until stopped or `count` messages are out. 0 = done or stopped,
 * -1 = error, -2 = the connection holds half a frame. */
static int
publish_loop(prod *s)
{
    const perf_opts *o = s->o;
    uint64_t target = o->count;
    uint64_t n = 0;
    unsigned flushes = 0;
    pacer pc;
    int r;

    pacer_init(&pc, o->rate, o->pace_us);
    while (!atomic_load_explicit(&s->run->stop, memory_order_relaxed) &&
           (!target || n < target)) {
        uint64_t budget = pacer_take(&pc, n, o->write_batch);
        if (budget == 0) {
            if (o->confirm && drain(s, 0) < 0)
                return -1;
            continue;
        }
        if (target && budget > target - n)
            budget = target - n;
        uint64_t stamp = tool_now_ns();
        for (uint64_t i = 0; i < budget; i++) {
            if (o->confirm && window_full(s)) {
                if ((r = flush(s)) < 0)
                    return r;
                if ((r = wait_room(s)) != 0)
                    return r < 0 ? -1 : 0;
                stamp = tool_now_ns();
            }
            if (s->out.len + s->msg_wire > s->out.cap) {
                if ((r = flush(s)) < 0)
                    return r;
                stamp = tool_now_ns();
            }
            append(s, stamp);
            n++;
            if (s->out.len >= OUT_FLUSH_BYTES)
                break;
        }
        if ((r = flush(s)) < 0)
            return r;
        /* Confirms are read after every write; otherwise now and then, to
         * notice a closed channel or returned messages. */
        if ((o->confirm || (++flushes & 63) == 0) && drain(s, 0) < 0)
            return -1;
    }
    return flush(s);
}

void *
perf_producer_main(void *arg)
{
    perf_producer *p = arg;
    prod s = {.p = p, .o = p->run->o, .run = p->run};
    snprintf(s.name, sizeof s.name, "producer %d", p->id + 1);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* pace to the microsecond */
    perf_hist_init(&p->conf_hist);

    int r = setup(&s);
    if (r == 0)
        r = publish_loop(&s);
    int finished = s.run->count_mode && s.sent >= s.o->count;
    if (r == 0 && s.o->confirm && !atomic_load(&s.run->failed)) {
        /* Wait for the outstanding confirms: a finished -C run waits as
         * long as confirms keep coming, a stopped run at most a second. */
        uint64_t limit = (uint64_t)((finished ? s.o->drain_timeout : 1.0) * 1e9);
        uint64_t last_progress = tool_now_ns();
        uint64_t seen = s.outstanding;
        while (s.outstanding > 0 && !atomic_load(&s.run->failed)) {
            if (drain(&s, 100) < 0) {
                r = -1;
                break;
            }
            uint64_t now = tool_now_ns();
            if (s.outstanding != seen) {
                seen = s.outstanding;
                last_progress = now;
            } else if (now - last_progress > limit) {
                if (finished)
                    perf_fail(s.run, s.name,
                              "%llu confirms still outstanding after %.0f s",
                              (unsigned long long)s.outstanding,
                              s.o->drain_timeout);
                break;
            }
        }
    }
    atomic_fetch_add(&s.run->producers_done, 1);
    if (r == 0 && s.conn && !atomic_load(&s.run->failed))
        /* After a -C run, what is still in the socket must arrive. */
        perf_disconnect(s.conn, finished ? 0 : 1.0);
    else
        perf_abandon(s.conn);
    perf_out_free(&s.out);
    free(s.ring);
    free(s.tmpl);
    free(s.tmpl_off);
    return NULL;
}
