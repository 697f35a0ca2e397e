/*
 * Queues: a ring of message references ordered by per-queue sequence
 * number, and a circle of consumers served round-robin. A message that
 * arrives while a consumer has room skips the ring entirely.
 *
 * Requeued messages go back to their place by sequence number, so they
 * come out ahead of everything published after them, as in RabbitMQ.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/log.h"

/* ---- the ring ------------------------------------------------------------ */

static void
ring_grow(qring *r)
{
    size_t cap = r->cap ? r->cap * 2 : 16;
    qentry *e = malloc(cap * sizeof *e);
    if (!e)
        abort();
    for (size_t i = 0; i < r->count; i++)
        e[i] = r->e[(r->head + i) & (r->cap - 1)];
    free(r->e);
    r->e = e;
    r->cap = cap;
    r->head = 0;
}

static inline qentry *
ring_at(qring *r, size_t i)
{
    return &r->e[(r->head + i) & (r->cap - 1)];
}

static void
ring_push_back(qring *r, qentry e)
{
    if (r->count == r->cap)
        ring_grow(r);
    *ring_at(r, r->count) = e;
    r->count++;
}

static qentry
ring_pop_front(qring *r)
{
    qentry e = *ring_at(r, 0);
    r->head = (r->head + 1) & (r->cap - 1);
    r->count--;
    return e;
}

/* Inserts keeping seq order; requeued entries land near the front. */
static void
ring_insert_ordered(qring *r, qentry e)
{
    if (r->count == r->cap)
        ring_grow(r);
    size_t pos = 0;
    while (pos < r->count && ring_at(r, pos)->seq < e.seq)
        pos++;
    if (pos == 0) {
        r->head = (r->head - 1) & (r->cap - 1);
        r->e[r->head] = e;
        r->count++;
        return;
    }
    for (size_t i = r->count; i > pos; i--)
        *ring_at(r, i) = *ring_at(r, i - 1);
    *ring_at(r, pos) = e;
    r->count++;
}

/* ---- queues -------------------------------------------------------------- */

queue *
queue_new(vhost *vh, amqp_bytes name, bool durable, bool exclusive,
          bool auto_delete, struct conn *owner, const uint8_t *args,
          uint32_t args_len)
{
    queue *q = calloc(1, sizeof *q);
    if (!q)
        abort();
    q->kind = DEST_QUEUE;
    q->refs = 1;
    char *n = malloc(name.len ? name.len : 1);
    if (!n)
        abort();
    memcpy(n, name.data, name.len);
    q->name = (amqp_bytes){ n, name.len };
    q->vh = vh;
    q->id = ++B.next_queue_id;
    q->durable = durable;
    q->exclusive = exclusive;
    q->auto_delete = auto_delete;
    q->owner = owner;
    if (args_len) {
        q->args = malloc(args_len);
        if (!q->args)
            abort();
        memcpy(q->args, args, args_len);
        q->args_len = args_len;
    }
    return q;
}

void
queue_unref(queue *q)
{
    if (--q->refs > 0)
        return;
    while (q->ready.count) {
        qentry e = ring_pop_front(&q->ready);
        message_unref(&e.msg);
    }
    free(q->ready.e);
    free((char *)q->name.data);
    free(q->args);
    free(q);
}

static consumer *
queue_next_consumer(queue *q)
{
    consumer *c = q->consumers;
    for (uint32_t i = 0; i < q->nconsumers; i++, c = c->next) {
        if (channel_consumer_ready(c->ch, c)) {
            q->consumers = c->next;
            return c;
        }
    }
    return NULL;
}

void
queue_publish(queue *q, message *m)
{
    uint64_t seq = ++q->next_seq;
    if (q->ready.count == 0 && q->nconsumers && !q->dispatching) {
        consumer *c = queue_next_consumer(q);
        if (c) {
            channel_deliver(c->ch, c, message_ref(m), seq, false);
            return;
        }
    }
    ring_push_back(&q->ready, (qentry){ message_ref(m), seq, 0 });
}

void
queue_requeue(queue *q, message *m, uint64_t seq)
{
    if (q->deleted) {
        message_unref(&m);
        return;
    }
    ring_insert_ordered(&q->ready, (qentry){ m, seq, QE_REDELIVERED });
}

void
queue_dispatch(queue *q)
{
    if (q->dispatching || q->deleted)
        return;
    q->dispatching = true;
    while (q->ready.count && q->nconsumers) {
        consumer *c = queue_next_consumer(q);
        if (!c)
            break;
        qentry e = ring_pop_front(&q->ready);
        channel_deliver(c->ch, c, e.msg, e.seq, e.flags & QE_REDELIVERED);
    }
    q->dispatching = false;
}

bool
queue_pop(queue *q, qentry *out)
{
    if (q->ready.count == 0)
        return false;
    *out = ring_pop_front(&q->ready);
    return true;
}

uint32_t
queue_purge(queue *q)
{
    uint32_t n = (uint32_t)q->ready.count;
    while (q->ready.count) {
        qentry e = ring_pop_front(&q->ready);
        message_unref(&e.msg);
    }
    return n;
}

/* ---- consumers ----------------------------------------------------------- */

consumer *
consumer_add(queue *q, channel *ch, amqp_bytes tag, bool no_ack,
             bool exclusive, uint16_t prefetch)
{
    consumer *c = calloc(1, sizeof *c);
    char *t = malloc(tag.len ? tag.len : 1);
    if (!c || !t)
        abort();
    memcpy(t, tag.data, tag.len);
    c->tag = (amqp_bytes){ t, tag.len };
    c->q = q;
    c->ch = ch;
    c->no_ack = no_ack;
    c->exclusive = exclusive;
    c->prefetch = prefetch;
    if (q->consumers) {
        /* join at the end of the circle: just before the cursor */
        consumer *first = q->consumers;
        c->next = first;
        c->prev = first->prev;
        first->prev->next = c;
        first->prev = c;
    } else {
        c->next = c->prev = c;
        q->consumers = c;
    }
    q->nconsumers++;
    q->had_consumer = true;
    return c;
}

void
consumer_remove(consumer *c)
{
    queue *q = c->q;
    if (c->next == c) {
        q->consumers = NULL;
    } else {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        if (q->consumers == c)
            q->consumers = c->next;
    }
    q->nconsumers--;
    free((char *)c->tag.data);
    free(c);
    if (q->auto_delete && q->nconsumers == 0 && !q->deleted) {
        log_debug("auto-deleting queue '%.*s'", (int)q->name.len, q->name.data);
        vhost_queue_delete(q->vh, q);
    }
}
