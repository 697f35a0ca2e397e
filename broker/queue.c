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
#include "broker/persist.h"

/* Page-in reads this many entries at a time, when the ring holds fewer
 * than half of it. */
#define PAGE_BATCH 256

static void pending_push(queue *q, message *m, uint64_t seq);
static void pending_free(queue *q);

/* What a ring entry costs in memory, for the queue's budget. */
static inline uint64_t
entry_cost(const message *m)
{
    return sizeof(message) + sizeof(qentry) + m->exchange.len + m->routing_key.len +
           m->props_len + m->body_size;
}

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
    pending_free(q);
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
        if (c->ops->ready(c)) {
            q->consumers = c->next;
            return c;
        }
    }
    return NULL;
}

bool
queue_deliver_noack(queue *q, message *m)
{
    if (q->ready.count || q->tail_count || !q->nconsumers || q->dispatching)
        return false;
    consumer *c = q->consumers;
    for (uint32_t i = 0; i < q->nconsumers; i++, c = c->next) {
        if (c->no_ack && c->ops->ready(c)) {
            q->consumers = c->next;
            c->ops->deliver(c, message_ref(m), ++q->next_seq, 0);
            return true;
        }
    }
    return false;
}

void
queue_publish(queue *q, message *m, uint64_t seq, uint32_t flags)
{
    if (q->ready.count == 0 && q->tail_count == 0 && q->nconsumers && !q->dispatching) {
        consumer *c = queue_next_consumer(q);
        if (c) {
            c->ops->deliver(c, message_ref(m), seq, flags);
            return;
        }
    }
    /* Past the memory budget, and for as long as a tail exists (order),
     * messages go to disk only. */
    if (q->tail_count ||
        (B.store && q->ready.count && q->mem_bytes + entry_cost(m) > B.cfg.queue_memory_budget)) {
        if (flags & QE_ON_DISK) {
            m->disk_refs--;        /* already written; now the tail's */
            q->paged = true;
        } else {
            persist_page_out(q, m, seq);
        }
        if (q->tail_count++ == 0)
            q->tail_next_seq = seq;
        pending_push(q, m, seq);
        return;
    }
    ring_push_back(&q->ready, (qentry){ message_ref(m), seq, flags });
    q->mem_bytes += entry_cost(m);
}

/* Until its write commits, a tail entry can't be read back from disk; the
 * pending list keeps it in memory till then, so a consumer never waits on
 * the disk, and page-in reads the disk only below the first pending seq. */
static void
pending_push(queue *q, message *m, uint64_t seq)
{
    q->pend = buf_array_room(q->pend, sizeof *q->pend, &q->pend_head, &q->pend_len, &q->pend_cap);
    q->pend[q->pend_len++] = (struct pending_page){ message_ref(m), seq, persist_batch() };
    persist_wait_queue(q);
}

/* Drops pending entries whose write has committed (the disk has them),
 * and those page-in has already taken (seq below tail_next_seq). */
static void
pending_prune(queue *q)
{
    while (q->pend_head < q->pend_len) {
        struct pending_page *p = &q->pend[q->pend_head];
        bool taken = q->tail_count == 0 || p->seq < q->tail_next_seq;
        if (!taken && !persist_committed(p->batch))
            break;
        message_unref(&p->msg);
        q->pend_head++;
    }
    if (q->pend_head == q->pend_len)
        q->pend_head = q->pend_len = 0;
    else
        persist_wait_queue(q);
}

static void
pending_free(queue *q)
{
    for (size_t i = q->pend_head; i < q->pend_len; i++)
        message_unref(&q->pend[i].msg);
    free(q->pend);
    q->pend = NULL;
    q->pend_head = q->pend_len = q->pend_cap = 0;
}

void
queue_store_progress(queue *q)
{
    pending_prune(q);
    queue_dispatch(q);
}

void
queue_push_paged(queue *q, message *m, uint64_t seq, uint32_t flags)
{
    ring_push_back(&q->ready, (qentry){ message_ref(m), seq, flags });
    q->mem_bytes += entry_cost(m);
}

void
queue_entry_forget(queue *q, message *m, uint64_t seq, uint32_t flags)
{
    if (flags & QE_ON_DISK)
        persist_forget(q, m, seq);
}

void
queue_requeue(queue *q, message *m, uint64_t seq, uint32_t flags)
{
    if (q->deleted) {
        queue_entry_forget(q, m, seq, flags);
        message_unref(&m);
        return;
    }
    q->mem_bytes += entry_cost(m);
    ring_insert_ordered(&q->ready, (qentry){ m, seq, flags | QE_REDELIVERED });
}

/* Reads the tail back while the ring runs low: from disk below the first
 * pending entry, then from the pending list itself. */
static void
queue_fill(queue *q)
{
    if (q->tail_count == 0 || q->ready.count >= PAGE_BATCH / 2)
        return;
    pending_prune(q);
    uint64_t limit = q->pend_head < q->pend_len ? q->pend[q->pend_head].seq : UINT64_MAX;
    size_t want = q->tail_count < PAGE_BATCH ? (size_t)q->tail_count : PAGE_BATCH;
    size_t n = persist_page_in(q, PAGE_BATCH, limit);
    /* Fewer than asked: the disk holds nothing more below the pending
     * list (a gap there is a write that failed), so go on from memory. */
    if (n == want)
        return;
    for (size_t i = q->pend_head; n < PAGE_BATCH && q->tail_count && i < q->pend_len; i++) {
        struct pending_page *p = &q->pend[i];
        if (p->seq < q->tail_next_seq)
            continue;
        /* The ring entry now answers for the on-disk entry being written. */
        p->msg->disk_refs++;
        queue_push_paged(q, p->msg, p->seq, QE_ON_DISK);
        q->tail_next_seq = p->seq + 1;
        q->tail_count--;
        n++;
    }
}

static qentry
queue_take(queue *q)
{
    qentry e = ring_pop_front(&q->ready);
    q->mem_bytes -= entry_cost(e.msg);
    return e;
}

void
queue_dispatch(queue *q)
{
    if (q->dispatching || q->deleted)
        return;
    q->dispatching = true;
    while (q->nconsumers) {
        if (q->ready.count == 0)
            queue_fill(q);
        if (q->ready.count == 0)
            break;
        consumer *c = queue_next_consumer(q);
        if (!c)
            break;
        qentry e = queue_take(q);
        c->ops->deliver(c, e.msg, e.seq, e.flags);
        if (q->ready.count < PAGE_BATCH / 2)
            queue_fill(q);
    }
    q->dispatching = false;
}

bool
queue_pop(queue *q, qentry *out)
{
    queue_fill(q);
    if (q->ready.count == 0)
        return false;
    *out = queue_take(q);
    return true;
}

/* Empties the ring and forgets the tail; with forget_disk, also deletes
 * the on-disk entries one by one (purge), else the caller deletes the
 * queue's whole range (queue delete). */
static uint32_t
queue_clear(queue *q, bool forget_disk)
{
    uint32_t n = queue_ready(q);
    while (q->ready.count) {
        qentry e = ring_pop_front(&q->ready);
        if (e.flags & QE_ON_DISK) {
            if (forget_disk)
                persist_forget(q, e.msg, e.seq);
            else if (e.msg->disk_refs)
                e.msg->disk_refs--;
        }
        message_unref(&e.msg);
    }
    if (forget_disk && q->tail_count)
        persist_drop_queue_entries(q, false);
    q->tail_count = 0;
    pending_free(q);
    q->mem_bytes = 0;
    return n;
}

uint32_t
queue_purge(queue *q)
{
    return queue_clear(q, true);
}

uint32_t
queue_drop_all(queue *q)
{
    return queue_clear(q, false);
}

/* ---- consumers ----------------------------------------------------------- */

consumer *
consumer_add(queue *q, const consumer_ops *ops, void *owner, amqp_bytes tag,
             bool no_ack, bool exclusive, uint16_t prefetch)
{
    consumer *c = calloc(1, sizeof *c);
    char *t = malloc(tag.len ? tag.len : 1);
    if (!c || !t)
        abort();
    memcpy(t, tag.data, tag.len);
    c->tag = (amqp_bytes){ t, tag.len };
    c->q = q;
    c->ops = ops;
    c->owner = owner;
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
