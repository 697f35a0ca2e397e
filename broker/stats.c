/* Sampling message counters every STATS_INTERVAL seconds (broker.h says
 * why two snapshots are enough). A walk over every queue, exchange and
 * channel: cheap next to the traffic that moved the counters, and
 * independent of it. */
#include <ev.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/stats.h"

static ev_timer timer;

const stats stats_none;

static void
sample(stats *s)
{
    s->s0 = s->s1;
    s->s1 = s->now;
}

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w; (void)revents;
    uint64_t ready = 0, unacked = 0;
    for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
        vhost *vh = vi.e->value;
        for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
            queue *q = it.e->value;
            if (q->st)                 /* a queue that never counted has none */
                sample(q->st);
            ready += queue_ready(q);
            unacked += q->unacked;
        }
        for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it))
            sample(&((exchange *)it.e->value)->st);
    }
    for (conn *c = B.conns; c; c = c->next) {
        c->oct_s0[0] = c->oct_s1[0];
        c->oct_s0[1] = c->oct_s1[1];
        c->oct_s1[0] = c->recv_oct;
        c->oct_s1[1] = c->send_oct;
        for (uint32_t i = 0; i < c->nchannels; i++)
            if (c->channels[i])
                sample(&c->channels[i]->st);
    }
    sample(&B.st);
    struct stats_sample *r = &B.ring[B.ring_next];
    r->t = ev_now(loop);
    r->s = B.st.now;
    r->messages_ready = ready;
    r->messages_unacked = unacked;
    B.ring_next = (B.ring_next + 1) % STATS_RING;
    if (B.ring_len < STATS_RING)
        B.ring_len++;
}

void
stats_start(void)
{
    B.started = ev_now(B.loop);
    ev_timer_init(&timer, tick, STATS_INTERVAL, STATS_INTERVAL);
    ev_timer_start(B.loop, &timer);
}

void
stats_stop(void)
{
    ev_timer_stop(B.loop, &timer);
}

double
stats_rate(const stats *s, size_t field)
{
    uint64_t a, b;
    memcpy(&a, (const char *)&s->s0 + field, sizeof a);
    memcpy(&b, (const char *)&s->s1 + field, sizeof b);
    return b >= a ? (double)(b - a) / STATS_INTERVAL : 0.0;
}
