/* publisher.c - one publishing thread on its own connection.
 *
 * Raw mode: the fixed header, topic and (MQTT 5) empty property list of a
 * PUBLISH are the same bytes for every message to a topic, so they are
 * built once per topic into a template; a message is the template, a
 * packet identifier for QoS 1/2, and the payload, whose first 8 bytes are
 * the CLOCK_MONOTONIC send time in nanoseconds. Messages collect in the
 * connection's output buffer and go out write_batch at a time (or 64 KB).
 *
 * QoS 1/2: a table indexed by packet identifier holds the send time of
 * each unacknowledged message; PUBACK (QoS 1) or PUBCOMP (QoS 2, after our
 * PUBREL answers PUBREC) frees the identifier, in whatever order they come.
 * Publishing waits while `window` messages are unacknowledged (the
 * --inflight option, capped by the server's Receive Maximum in MQTT 5).
 *
 * With a rate, message k is due at t0 + k/rate on an absolute schedule; the
 * thread sleeps until the next is due (at least --pace-us after the last
 * burst began), then sends all that are due, so pacing is even and a late
 * wake-up does not lose rate.
 *
 * Lib mode does the same through mosquitto_publish and the library's
 * read and write calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <mosquitto.h>

#include "mqtt-perf.h"

#define OUT_FLUSH_BYTES (64 * 1024)
#define NPIDS 65536

typedef struct pub {
    mperf_worker *w;
    const mperf_opts *o;
    mperf_run *run;
    char name[32];
    mperf_conn c;
    uint8_t *tmpl;            /* per topic: header up to the packet id */
    size_t *tmpl_off;         /* ntopics + 1 offsets into tmpl */
    int rr;                   /* the next topic */
    size_t msg_max;           /* the longest message on the wire */
    unsigned in_buf;          /* messages buffered, not yet written */
    uint64_t sent;
    /* QoS 1/2 */
    unsigned window;
    unsigned outstanding;
    uint16_t next_pid;
    uint64_t *pending;        /* NPIDS send times, 0 = free */
    uint64_t acked, rejected;
    uint8_t *payload;         /* lib mode */
} pub;

/* ---- acknowledgements ------------------------------------------------ */

static void
settle(pub *s, uint16_t pid, int bad, uint64_t now)
{
    uint64_t t = s->pending[pid];
    if (t == 0)
        return; /* not ours or already settled */
    s->pending[pid] = 0;
    s->outstanding--;
    perf_hist_record(&s->w->hist, now > t ? now - t : 0);
    if (bad)
        s->rejected++;
    else
        s->acked++;
    if (s->w->ack_first_ns == 0)
        s->w->ack_first_ns = now;
    s->w->ack_last_ns = now;
}

static void
publish_counts(pub *s)
{
    atomic_store_explicit(&s->w->acked, s->acked, memory_order_relaxed);
    atomic_store_explicit(&s->w->rejected, s->rejected, memory_order_relaxed);
}

/* Handle the whole packets in the input buffer. */
static int
parse_input(pub *s)
{
    mperf_conn *c = &s->c;
    size_t pos = 0, body;
    long len;
    uint64_t now = tool_now_ns();
    while ((len = mperf_conn_packet(c, pos, &body)) > 0) {
        uint8_t type = c->in[pos];
        size_t rl = (size_t)len - (body - pos);
        const uint8_t *b = c->in + body;
        uint16_t pid = rl >= 2 ? mperf_be16(b) : 0;
        int reason = rl > 2 ? b[2] : 0;
        switch (type >> 4) {
        case 4: /* PUBACK */
        case 7: /* PUBCOMP */
            settle(s, pid, reason >= 0x80, now);
            break;
        case 5: /* PUBREC: answer PUBREL, unless it is a refusal */
            if (reason >= 0x80) {
                settle(s, pid, 1, now);
            } else {
                uint8_t rel[4] = {0x62, 0x02, (uint8_t)(pid >> 8), (uint8_t)pid};
                if (mperf_conn_put(c, rel, 4) < 0)
                    return -1;
            }
            break;
        case 13: /* PINGRESP */
            break;
        case 14: /* DISCONNECT (MQTT 5) */
            mperf_fail(s->run, s->name, "the broker sent DISCONNECT (reason 0x%02x)",
                       (unsigned)(rl ? b[0] : 0));
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
    publish_counts(s);
    return 0;
}

/* Read what the broker sent, waiting up to wait_ms for the first bytes. */
static int
drain(pub *s, int wait_ms)
{
    for (;;) {
        long r = mperf_conn_read(&s->c, wait_ms);
        if (r < 0)
            return -1;
        if (r == 0 && s->c.in_len < s->c.in_cap)
            return 0;
        if (parse_input(s) < 0)
            return -1;
        wait_ms = 0;
    }
}

static int
drain_cb(void *ctx)
{
    return drain(ctx, 0);
}

/* 0 written, -1 error, -2 the socket may hold half a packet. */
static int
flush(pub *s)
{
    if (s->c.out_len == 0)
        return 0;
    int r = mperf_conn_flush(&s->c, drain_cb, s, 1000000000u);
    if (r < 0)
        return r;
    if (s->in_buf) {
        s->w->last_ns = tool_now_ns();
        s->w->writes++;
        s->sent += s->in_buf;
        s->in_buf = 0;
        atomic_store_explicit(&s->w->sent, s->sent, memory_order_relaxed);
    }
    return 0;
}

static int
window_full(const pub *s)
{
    return s->o->qos > 0 &&
           (s->outstanding >= s->window || s->pending[s->next_pid] != 0);
}

/* Wait for room in the window: 1 = stopped, -1 = error. */
static int
wait_room(pub *s)
{
    while (window_full(s)) {
        if (atomic_load_explicit(&s->run->stop, memory_order_relaxed))
            return 1;
        int r = flush(s); /* PUBRELs */
        if (r < 0)
            return -1;
        if (drain(s, 100) < 0)
            return -1;
    }
    return 0;
}

/* Append one message stamped `now`. */
static void
append(pub *s, uint64_t now)
{
    mperf_conn *c = &s->c;
    uint8_t *d = c->out + c->out_len;
    size_t t0 = s->tmpl_off[s->rr], tl = s->tmpl_off[s->rr + 1] - t0;
    memcpy(d, s->tmpl + t0, tl);
    d += tl;
    if (++s->rr == s->w->ntopics)
        s->rr = 0;
    if (s->o->qos > 0) {
        uint16_t pid = s->next_pid;
        *d++ = (uint8_t)(pid >> 8);
        *d++ = (uint8_t)pid;
        s->pending[pid] = now ? now : 1;
        s->outstanding++;
        if (++s->next_pid == 0)
            s->next_pid = 1;
    }
    if (s->o->version == 5)
        *d++ = 0; /* no properties */
    memcpy(d, &now, 8);
    memset(d + 8, 0, s->o->size - 8);
    d += s->o->size;
    c->out_len = (size_t)(d - c->out);
    s->in_buf++;
    if (s->w->first_ns == 0)
        s->w->first_ns = now;
}

static int
build_templates(pub *s)
{
    const mperf_opts *o = s->o;
    int nt = s->w->ntopics;
    size_t room = 0;
    for (int i = 0; i < nt; i++)
        room += strlen(s->w->topics[i]) + 8;
    s->tmpl = malloc(room);
    s->tmpl_off = calloc((size_t)nt + 1, sizeof *s->tmpl_off);
    if (!s->tmpl || !s->tmpl_off) {
        mperf_fail(s->run, s->name, "out of memory");
        return -1;
    }
    size_t longest = 0;
    for (int i = 0; i < nt; i++) {
        size_t tl = strlen(s->w->topics[i]);
        size_t rl = 2 + tl + (o->qos ? 2 : 0) + (o->version == 5 ? 1 : 0) + o->size;
        if (tl > 65535 || rl > 268435455) {
            mperf_fail(s->run, s->name, "message too large for MQTT");
            return -1;
        }
        uint8_t *t = s->tmpl + s->tmpl_off[i];
        size_t n = 0;
        t[n++] = (uint8_t)(0x30 | (o->qos << 1));
        n += mperf_varint(t + n, (uint32_t)rl);
        t[n++] = (uint8_t)(tl >> 8);
        t[n++] = (uint8_t)tl;
        memcpy(t + n, s->w->topics[i], tl);
        n += tl;
        s->tmpl_off[i + 1] = s->tmpl_off[i] + n;
        if (n + rl - 2 - tl > longest)
            longest = n + rl - 2 - tl;
    }
    s->msg_max = longest;
    return 0;
}

/* Publish until stopped or `count` messages are out. 0 = done or stopped,
 * -1 = error, -2 = the connection holds half a packet. */
static int
raw_loop(pub *s)
{
    const mperf_opts *o = s->o;
    uint64_t target = o->count, n = 0;
    unsigned flushes = 0;
    pacer p;
    pacer_init(&p, o->rate, o->pace_us);
    int r;

    while (!atomic_load_explicit(&s->run->stop, memory_order_relaxed) &&
           (!target || n < target)) {
        uint64_t budget = pacer_take(&p, n, o->write_batch);
        if (budget == 0) {
            if (o->qos > 0 && drain(s, 0) < 0)
                return -1;
            continue;
        }
        if (target && budget > target - n)
            budget = target - n;
        uint64_t stamp = tool_now_ns();
        for (uint64_t i = 0; i < budget; i++) {
            if (window_full(s)) {
                if ((r = flush(s)) < 0)
                    return r;
                if ((r = wait_room(s)) != 0)
                    return r < 0 ? -1 : 0;
                stamp = tool_now_ns();
            }
            if (s->c.out_len + s->msg_max > s->c.out_cap) {
                if ((r = flush(s)) < 0)
                    return r;
                stamp = tool_now_ns();
            }
            append(s, stamp);
            n++;
            if (s->c.out_len >= OUT_FLUSH_BYTES)
                break;
        }
        mperf_conn_keepalive(&s->c, stamp);
        if ((r = flush(s)) < 0)
            return r;
        /* Acks are read after every write; otherwise now and then, for
         * PINGRESP and to notice a DISCONNECT. */
        if ((o->qos > 0 || (++flushes & 63) == 0) && drain(s, 0) < 0)
            return -1;
    }
    return flush(s);
}

/* Wait for the outstanding acks: a finished -C run as long as they keep
 * coming, a stopped run at most a second. */
static int
raw_wait_acks(pub *s, int finished)
{
    uint64_t limit = (uint64_t)((finished ? s->o->drain_timeout : 1.0) * 1e9);
    uint64_t last_progress = tool_now_ns();
    unsigned seen = s->outstanding;
    while (s->outstanding > 0 && !atomic_load(&s->run->failed)) {
        int r = flush(s); /* PUBRELs */
        if (r < 0)
            return r;
        if (drain(s, 100) < 0)
            return -1;
        uint64_t now = tool_now_ns();
        if (s->outstanding != seen) {
            seen = s->outstanding;
            last_progress = now;
        } else if (now - last_progress > limit) {
            if (finished)
                mperf_fail(s->run, s->name, "%u acks still outstanding after %.0f s",
                           s->outstanding, s->o->drain_timeout);
            break;
        }
    }
    return 0;
}

/* ---- lib mode -------------------------------------------------------- */

static void
lib_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
               const mosquitto_property *props)
{
    pub *s = ((mperf_conn *)obj)->owner;
    if (s->o->qos > 0)
        settle(s, (uint16_t)mid, reason >= 0x80, tool_now_ns());
}

static int
lib_step(pub *s, int wait_ms)
{
    int rc = mperf_conn_step(&s->c, wait_ms);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (!atomic_load(&s->run->failed))
            mperf_fail(s->run, s->name, "connection lost: %s",
                       rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return -1;
    }
    publish_counts(s);
    return 0;
}

static int
lib_loop(pub *s)
{
    const mperf_opts *o = s->o;
    uint64_t target = o->count, n = 0;
    pacer p;
    pacer_init(&p, o->rate, o->pace_us);
    int ti = 0;

    while (!atomic_load_explicit(&s->run->stop, memory_order_relaxed) &&
           (!target || n < target)) {
        uint64_t budget = pacer_take(&p, n, o->write_batch);
        if (budget == 0)
            continue;
        if (target && budget > target - n)
            budget = target - n;
        for (uint64_t i = 0; i < budget; i++) {
            /* Keep the library's queues short: the window, and the socket. */
            while (((o->qos > 0 && s->outstanding >= s->window) ||
                    mosquitto_want_write(s->c.mosq)) &&
                   !atomic_load_explicit(&s->run->stop, memory_order_relaxed))
                if (lib_step(s, 100) < 0)
                    return -1;
            uint64_t now = tool_now_ns();
            memcpy(s->payload, &now, 8);
            int mid = 0;
            int rc = mosquitto_publish(s->c.mosq, &mid, s->w->topics[ti],
                                       (int)o->size, s->payload, o->qos, false);
            if (rc != MOSQ_ERR_SUCCESS) {
                mperf_fail(s->run, s->name, "publish: %s",
                           rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
                return -1;
            }
            if (++ti == s->w->ntopics)
                ti = 0;
            if (o->qos > 0) {
                s->pending[(uint16_t)mid] = now ? now : 1;
                s->outstanding++;
            }
            if (s->w->first_ns == 0)
                s->w->first_ns = now;
            s->w->last_ns = now;
            s->sent++;
            n++;
        }
        atomic_store_explicit(&s->w->sent, s->sent, memory_order_relaxed);
        if (lib_step(s, 0) < 0)
            return -1;
    }
    return 0;
}

static void
lib_wait_acks(pub *s, int finished)
{
    uint64_t limit = (uint64_t)((finished ? s->o->drain_timeout : 1.0) * 1e9);
    uint64_t last_progress = tool_now_ns();
    unsigned seen = s->outstanding;
    while ((s->outstanding > 0 || mosquitto_want_write(s->c.mosq)) &&
           !atomic_load(&s->run->failed)) {
        if (lib_step(s, 100) < 0)
            return;
        uint64_t now = tool_now_ns();
        if (s->outstanding != seen) {
            seen = s->outstanding;
            last_progress = now;
        } else if (now - last_progress > limit) {
            if (finished)
                mperf_fail(s->run, s->name, "%u acks still outstanding after %.0f s",
                           s->outstanding, s->o->drain_timeout);
            return;
        }
    }
}

/* ---- the thread ------------------------------------------------------ */

void *
mperf_publisher_main(void *arg)
{
    mperf_worker *w = arg;
    pub s = {.w = w, .o = w->run->o, .run = w->run, .next_pid = 1};
    char id[32];
    snprintf(s.name, sizeof s.name, "publisher %d", w->id + 1);
    snprintf(id, sizeof id, "cmp%d-p%d", (int)getpid() % 1000000, w->id + 1);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* pace to the microsecond */
    perf_hist_init(&w->hist);
    const mperf_opts *o = s.o;

    int r = -1;
    if (o->qos > 0 && !(s.pending = calloc(NPIDS, sizeof *s.pending)))
        mperf_fail(s.run, s.name, "out of memory");
    else if (o->io == MPERF_IO_LIB && !(s.payload = calloc(1, o->size)))
        mperf_fail(s.run, s.name, "out of memory");
    else if (mperf_conn_open(&s.c, s.run, s.name, id, &s) == 0)
        r = 0;
    if (r == 0) {
        s.window = o->inflight;
        if (s.window > (unsigned)s.c.receive_max)
            s.window = (unsigned)s.c.receive_max;
        if (o->io == MPERF_IO_LIB) {
            mosquitto_publish_v5_callback_set(s.c.mosq, lib_on_publish);
            r = lib_loop(&s);
        } else if ((r = mperf_conn_take(&s.c)) == 0 &&
                   (r = build_templates(&s)) == 0) {
            r = raw_loop(&s);
        }
    }
    int finished = s.run->count_mode && s.sent >= o->count;
    if (r == 0 && !atomic_load(&s.run->failed)) {
        if (o->io == MPERF_IO_LIB)
            lib_wait_acks(&s, finished);
        else if (o->qos > 0)
            raw_wait_acks(&s, finished);
    }
    publish_counts(&s);
    atomic_fetch_add(&s.run->publishers_done, 1);
    mperf_conn_close(&s.c);
    free(s.pending);
    free(s.payload);
    free(s.tmpl);
    free(s.tmpl_off);
    return NULL;
}
