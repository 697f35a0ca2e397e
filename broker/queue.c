/*
 * Queues: a ring of message references ordered by per-queue sequence
 * number, and a circle of consumers served round-robin. A message that
 * arrives while a consumer has room skips the ring entirely.
 *
 * Requeued messages go back to their place by sequence number, so they
 * come out ahead of everything published after them, as in RabbitMQ.
 */
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "broker/persist.h"

/* Page-in reads this many entries at a time, when the ring holds fewer
 * than half of it. */
#define PAGE_BATCH 256

struct queue_more *
queue_more(queue *q)
{
    if (!q->more) {
        q->more = calloc(1, sizeof *q->more);
        if (!q->more)
            abort();
    }
    return q->more;
}

static inline struct queue_more *
more_of(queue *q)
{
    return q->more ? q->more : queue_more(q);
}

/* The ring, made with the queue's first message. */
static inline qring *
ring_of(queue *q)
{
    return &more_of(q)->ready;
}

const queue_opts *
queue_arg_opts(const queue *q)
{
    return q->more && q->more->arg_opts ? q->more->arg_opts : &queue_opts_none;
}

/* Tail entries whose write has not committed: e[head .. len), seq order. */
struct queue_pending {
    size_t head, len, cap;
    struct pending_page {
        message *msg;              /* the message, one reference */
        uint64_t seq, batch;
    } e[];
};

static void pending_push(queue *q, message *m, uint64_t seq);
static void pending_free(queue *q);
static void queue_fill(queue *q);
static qentry queue_take(queue *q);

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
    if (r->cap >= (UINT32_MAX >> 1) + 1) {
        log_error("a queue's ring cannot grow past %u entries", r->cap);
        abort();
    }
    uint32_t cap = r->cap ? r->cap * 2 : 16;
    qentry *e = malloc((size_t)cap * sizeof *e);
    if (!e)
        abort();
    for (uint32_t i = 0; i < r->count; i++)
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

/* Delivery order: by sequence number, and in a priority queue
 * (x-max-priority) higher priorities first, FIFO within each. */
static inline unsigned
prio_of(const queue *q, const message *m)
{
    return m->priority < q->opts->max_priority ? m->priority : q->opts->max_priority;
}

static inline bool
goes_before(const queue *q, const qentry *a, const qentry *b)
{
    if (q->opts->max_priority) {
        unsigned pa = prio_of(q, a->msg), pb = prio_of(q, b->msg);
        if (pa != pb)
            return pa > pb;
    }
    return a->seq < b->seq;
}

/* Inserts in delivery order. Requeued entries land near the front;
 * a new message of a priority queue is placed from the back. */
static void
ring_insert_ordered(const queue *q, qring *r, qentry e)
{
    if (r->count == r->cap)
        ring_grow(r);
    size_t pos = 0;
    if (q->opts->max_priority) {
        pos = r->count;
        while (pos > 0 && goes_before(q, &e, ring_at(r, pos - 1)))
            pos--;
    } else {
        while (pos < r->count && ring_at(r, pos)->seq < e.seq)
            pos++;
    }
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

/* ---- giving messages up: TTL and length limits ------------------------------ */

/* A ready entry the queue lets go of without delivering it: dead-lettered
 * (when the queue has a dead-letter exchange) and forgotten. */
static void
drop_entry(queue *q, qentry e, enum dl_reason why)
{
    queue_dead_letter(q, e.msg, why);
    if (e.flags & QE_ON_DISK)
        persist_forget(q, e.msg, e.seq);
    message_unref(&e.msg);
}

/* When a message expires here: the queue's TTL counted from its arrival
 * (requeued messages keep theirs, as in RabbitMQ), or its own expiration
 * if sooner; 0 = never. */
static int64_t
deadline_of(const queue *q, const message *m)
{
    int64_t d = q->opts->message_ttl >= 0 ? m->arrived_ms + q->opts->message_ttl : 0;
    if (m->expires_ms && (d == 0 || m->expires_ms < d))
        d = m->expires_ms;
    return d;
}

typedef struct expiry_timer {
    ev_timer t;                    /* the head's TTL */
    int64_t at;                    /* the deadline t is set for, while active */
    ev_timer unused;               /* x-expires: the queue's own */
    queue *q;                      /* borrowed: queue_unref stops the timers first */
} expiry_timer;

static void unused_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void expiry_cb(struct ev_loop *loop, ev_timer *w, int revents);

static expiry_timer *
timers_of(queue *q)
{
    expiry_timer *x = more_of(q)->timers;
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            abort();
        x->q = q;
        ev_init(&x->t, expiry_cb);
        ev_init(&x->unused, unused_cb);
        q->more->timers = x;
    }
    return x;
}

/* q's timers, or NULL if it has never needed them. */
static inline expiry_timer *
timers_if(const queue *q)
{
    return q->more ? q->more->timers : NULL;
}

static void
expiry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    queue *q = ((expiry_timer *)w)->q;
    if (!q->deleted) {
        queue_expire(q);
        queue_dispatch(q);
    }
}

void
queue_expiry_free(queue *q)
{
    expiry_timer *x = timers_if(q);
    if (!x)
        return;
    ev_timer_stop(B.loop, &x->t);
    ev_timer_stop(B.loop, &x->unused);
    free(x);
    q->more->timers = NULL;
}

/* Expires messages at the head of the ring (as RabbitMQ, only the head:
 * one behind a longer-lived one waits its turn), and sets the timer for
 * the next one, so expiry needs no consumer to happen. */
void
queue_expire(queue *q)
{
    if (ring_count(q) == 0 && q->tail_count)
        queue_fill(q);
    int64_t now = (int64_t)(ev_now(B.loop) * 1000.0), next = 0;
    while (ring_count(q)) {
        int64_t d = deadline_of(q, ring_at(ring_of(q), 0)->msg);
        if (d == 0)
            break;
        if (d > now) {
            next = d;
            break;
        }
        drop_entry(q, queue_take(q), DL_EXPIRED);
        if (ring_count(q) == 0 && q->tail_count)
            queue_fill(q);
    }
    expiry_timer *x = timers_if(q);
    if (!next) {
        if (x)
            ev_timer_stop(B.loop, &x->t);
        return;
    }
    x = timers_of(q);
    if (ev_is_active(&x->t) && x->at == next)
        return;                    /* a publish behind the head changes nothing */
    ev_timer_stop(B.loop, &x->t);
    ev_timer_set(&x->t, (double)(next - now) / 1000.0 + 0.0005, 0.0);
    ev_timer_start(B.loop, &x->t);
    x->at = next;
}

/* x-expires: a queue unused that long (no consumer, no basic.get, no
 * redeclare) is deleted, as RabbitMQ does. */
static void
unused_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    queue *q = ((expiry_timer *)((char *)w - offsetof(expiry_timer, unused)))->q;
    if (q->deleted || q->nconsumers)
        return;
    log_info("queue '%.*s' in vhost '%.*s' expired (x-expires)", (int)q->name.len,
             q->name.data, (int)q->vh->name.len, q->vh->name.data);
    vhost_queue_delete(q->vh, q);
}

void
queue_touch(queue *q)
{
    if (q->deleted)
        return;
    if (q->opts->expires <= 0) {
        if (timers_if(q))          /* a policy's expires was lifted */
            ev_timer_stop(B.loop, &timers_if(q)->unused);
        return;
    }
    expiry_timer *x = timers_of(q);
    ev_timer_stop(B.loop, &x->unused);
    if (q->nconsumers)
        return;
    ev_timer_set(&x->unused, (double)q->opts->expires / 1000.0, 0.0);
    ev_timer_start(B.loop, &x->unused);
}

/* x-max-length / x-max-length-bytes with x-overflow drop-head: the oldest
 * ready messages make room (reject-publish is decided before the message
 * is queued, in vhost_publish_ex). */
void
queue_enforce_limits(queue *q)
{
    if (q->opts->overflow != QO_DROP_HEAD)
        return;
    for (;;) {
        bool over = (q->opts->max_length >= 0 && queue_ready(q) > (uint64_t)q->opts->max_length) ||
                    (q->opts->max_length_bytes >= 0 &&
                     queue_ready_bytes(q) > (uint64_t)q->opts->max_length_bytes);
        if (!over)
            return;
        if (ring_count(q) == 0)
            queue_fill(q);
        if (ring_count(q) == 0)
            return;
        drop_entry(q, queue_take(q), DL_MAXLEN);
    }
}

/* ---- queues -------------------------------------------------------------- */

queue *
queue_new(vhost *vh, amqp_bytes name, bool durable, bool exclusive,
          bool auto_delete, struct conn *owner, const uint8_t *args,
          uint32_t args_len)
{
    size_t size = offsetof(queue, name_mem) + name.len;
    queue *q = calloc(1, size > sizeof *q ? size : sizeof *q);
    if (!q)
        abort();
    q->kind = DEST_QUEUE;
    q->refs = 1;
    memcpy(q->name_mem, name.data, name.len);
    q->name = (amqp_bytes){ q->name_mem, name.len };
    q->opts = &queue_opts_none;
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
    /* Every way a queue comes to be (AMQP, HTTP, recovery) reads its x-
     * arguments here; the declaring code has already refused bad ones. */
    if (args_len) {
        amqp_pool pool = { 0 };
        amqp_table t = { 0 };
        size_t off = 0;
        char err[256];
        queue_opts o;
        if (amqp_table_decode(args, args_len, &off, &t, &pool) == AMQP_OK)
            queue_opts_parse(&t, name, vh->name, &o, err, sizeof err);
        else
            queue_opts_parse(NULL, name, vh->name, &o, err, sizeof err);
        amqp_pool_free(&pool);
        if (!queue_opts_is_none(&o)) {
            queue_opts *a = malloc(sizeof *a);
            if (!a)
                abort();
            *a = o;
            more_of(q)->arg_opts = a;
        } else {
            queue_opts_free(&o);
        }
    }
    queue_apply_policies(q);
    queue_touch(q);
    return q;
}

void
queue_unref(queue *q)
{
    if (--q->refs > 0)
        return;
    /* vhost_queue_delete and vhost_free unbind first; a table must never
     * keep a freed queue, whatever path got here */
    route_unbind_all(&q->bound, NULL, NULL);
    while (ring_count(q)) {
        qentry e = ring_pop_front(ring_of(q));
        message_unref(&e.msg);
    }
    pending_free(q);
    if (q->more)
        free(q->more->ready.e);
    free(q->args);
    if (q->opts != &queue_opts_none) {
        queue_opts *o = (queue_opts *)q->opts;
        queue_opts_free(o);
        free(o);
    }
    queue_expiry_free(q);
    if (q->more && q->more->arg_opts) {
        queue_opts_free(q->more->arg_opts);
        free(q->more->arg_opts);
    }
    free(q->more);
    free(q->st);
    free(q);
}

msg_stats *
queue_counts_new(queue *q)
{
    q->st = calloc(1, sizeof *q->st);
    if (!q->st)
        abort();
    return &q->st->now;
}

/* The consumer to serve next: round-robin among those with room, the
 * highest x-priority first; with x-single-active-consumer only the
 * oldest consumer is ever served. The common case (no priorities, no
 * single active consumer) stops at the first with room. */
static consumer *
queue_next_consumer(queue *q)
{
    consumer *c = q->consumers;
    if (q->opts->single_active) {
        consumer *oldest = c;
        for (uint32_t i = 0; i < q->nconsumers; i++, c = c->next)
            if (c->order < oldest->order)
                oldest = c;
        return oldest && oldest->ops->ready(oldest) ? oldest : NULL;
    }
    consumer *best = NULL;
    for (uint32_t i = 0; i < q->nconsumers; i++, c = c->next) {
        if ((!best || c->priority > best->priority) && c->ops->ready(c)) {
            best = c;
            if (!q->nprioritised)
                break;
        }
    }
    if (best)
        q->consumers = best->next;
    return best;
}

bool
queue_deliver_noack(queue *q, message *m)
{
    if (ring_count(q) || q->tail_count || !q->nconsumers || q->dispatching)
        return false;
    if (q->opts->single_active || q->nprioritised) {
        consumer *c = queue_next_consumer(q);
        if (!c || !c->no_ack)
            return false;
        c->ops->deliver(c, message_ref(m), ++q->next_seq, 0);
        return true;
    }
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
    if (ring_count(q) == 0 && q->tail_count == 0 && q->nconsumers && !q->dispatching) {
        consumer *c = queue_next_consumer(q);
        if (c) {
            c->ops->deliver(c, message_ref(m), seq, flags);
            return;
        }
    }
    struct queue_more *mo = more_of(q);
    mo->ready_bytes += m->body_size;
    /* Past the memory budget, and for as long as a tail exists (order),
     * messages go to disk only; a priority queue keeps everything in
     * memory, since its order is not the order on disk. */
    if (!q->opts->max_priority && (q->tail_count ||
        (B.store && mo->ready.count && mo->mem_bytes + entry_cost(m) > B.cfg.queue_memory_budget))) {
        if (flags & QE_ON_DISK) {
            m->disk_refs--;        /* already written; now the tail's */
            q->paged = true;
        } else {
            persist_page_out(q, m, seq);
        }
        if (q->tail_count++ == 0)
            more_of(q)->tail_next_seq = seq;
        pending_push(q, m, seq);
        queue_enforce_limits(q);
        return;
    }
    if (q->opts->max_priority)
        ring_insert_ordered(q, &mo->ready, (qentry){ message_ref(m), seq, flags });
    else
        ring_push_back(&mo->ready, (qentry){ message_ref(m), seq, flags });
    mo->mem_bytes += entry_cost(m);
    queue_enforce_limits(q);
    queue_expire(q);
}

/* Until its write commits, a tail entry can't be read back from disk; the
 * pending list keeps it in memory till then, so a consumer never waits on
 * the disk, and page-in reads the disk only below the first pending seq. */
static void
pending_push(queue *q, message *m, uint64_t seq)
{
    struct queue_pending *p = more_of(q)->pend;
    if (!p || p->len == p->cap) {
        size_t head = p ? p->head : 0, len = p ? p->len : 0, cap = p ? p->cap : 0;
        if (head > cap / 2) {      /* more than half consumed: slide down */
            memmove(p->e, p->e + head, (len - head) * sizeof *p->e);
            p->len = len - head;
            p->head = 0;
        } else {
            size_t ncap = cap ? cap * 2 : 16;
            p = realloc(p, sizeof *p + ncap * sizeof *p->e);
            if (!p)
                abort();
            p->head = head;
            p->len = len;
            p->cap = ncap;
            q->more->pend = p;
        }
    }
    p->e[p->len++] = (struct pending_page){ message_ref(m), seq, persist_batch() };
    persist_wait_queue(q);
}

/* The seq of the first pending entry, UINT64_MAX if none. */
static uint64_t
pending_first(const queue *q)
{
    const struct queue_pending *p = q->more ? q->more->pend : NULL;
    return p && p->head < p->len ? p->e[p->head].seq : UINT64_MAX;
}

/* Drops pending entries whose write has committed (the disk has them),
 * and those page-in has already taken (seq below tail_next_seq). An entry
 * whose write failed (a full disk) is on no disk: it stays, marked never
 * to commit, until page-in takes it from here. */
static void pending_free(queue *q);

static void
pending_prune(queue *q)
{
    struct queue_pending *pd = q->more ? q->more->pend : NULL;
    if (!pd)
        return;
    while (pd->head < pd->len) {
        struct pending_page *p = &pd->e[pd->head];
        bool taken = q->tail_count == 0 || p->seq < queue_tail_next(q);
        if (!taken && persist_failed(p->batch))
            p->batch = UINT64_MAX;
        if (!taken && !persist_committed(p->batch))
            break;
        message_unref(&p->msg);
        pd->head++;
    }
    if (pd->head == pd->len)
        pending_free(q);           /* a queue that stopped paging keeps nothing */
    else
        persist_wait_queue(q);
}

static void
pending_free(queue *q)
{
    struct queue_pending *pd = q->more ? q->more->pend : NULL;
    if (!pd)
        return;
    for (size_t i = pd->head; i < pd->len; i++)
        message_unref(&pd->e[i].msg);
    free(pd);
    q->more->pend = NULL;
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
    if (q->opts->max_priority)
        ring_insert_ordered(q, ring_of(q), (qentry){ message_ref(m), seq, flags });
    else
        ring_push_back(ring_of(q), (qentry){ message_ref(m), seq, flags });
    q->more->mem_bytes += entry_cost(m);   /* ring_of made it */
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
    struct queue_more *mo = more_of(q);
    mo->mem_bytes += entry_cost(m);
    mo->ready_bytes += m->body_size;
    ring_insert_ordered(q, &mo->ready, (qentry){ m, seq, flags | QE_REDELIVERED });
    /* back at the head, it may have expired while it was out */
    queue_expire(q);
}

/* Reads the tail back while the ring runs low: from disk below the first
 * pending entry, then from the pending list itself. */
static void
queue_fill(queue *q)
{
    if (q->tail_count == 0 || (ring_count(q) >= PAGE_BATCH / 2 && !q->opts->max_priority))
        return;
    if (q->opts->max_priority) {
        /* its order is by priority, not by the disk's: read it all */
        pending_prune(q);
        while (q->tail_count && persist_page_in(q, PAGE_BATCH, pending_first(q)) > 0)
            ;
        if (q->tail_count == 0)
            return;
    }
    pending_prune(q);
    uint64_t limit = pending_first(q);
    size_t want = q->tail_count < PAGE_BATCH ? (size_t)q->tail_count : PAGE_BATCH;
    size_t n = persist_page_in(q, PAGE_BATCH, limit);
    /* Fewer than asked: the disk holds nothing more below the pending
     * list (a gap there is a write that failed), so go on from memory. */
    if (n == want)
        return;
    struct queue_pending *pd = q->more ? q->more->pend : NULL;
    for (size_t i = pd ? pd->head : 0; pd && n < PAGE_BATCH && q->tail_count && i < pd->len; i++) {
        struct pending_page *p = &pd->e[i];
        if (p->seq < queue_tail_next(q))
            continue;
        /* The ring entry now answers for the on-disk entry being written. */
        p->msg->disk_refs++;
        queue_push_paged(q, p->msg, p->seq, QE_ON_DISK);
        more_of(q)->tail_next_seq = p->seq + 1;
        q->tail_count--;
        n++;
    }
}

static qentry
queue_take(queue *q)
{
    qentry e = ring_pop_front(ring_of(q));
    struct queue_more *mo = q->more;
    mo->mem_bytes -= entry_cost(e.msg);
    mo->ready_bytes = mo->ready_bytes >= e.msg->body_size ? mo->ready_bytes - e.msg->body_size : 0;
    return e;
}

void
queue_dispatch(queue *q)
{
    if (q->dispatching || q->deleted)
        return;
    q->dispatching = true;
    while (q->nconsumers) {
        if (ring_count(q) == 0)
            queue_fill(q);
        queue_expire(q);
        if (ring_count(q) == 0)
            break;
        consumer *c = queue_next_consumer(q);
        if (!c)
            break;
        qentry e = queue_take(q);
        c->ops->deliver(c, e.msg, e.seq, e.flags);
        if (ring_count(q) < PAGE_BATCH / 2)
            queue_fill(q);
    }
    q->dispatching = false;
    if (B.braked && queue_ready(q) <= QUEUE_BACKLOG_LOW)
        conn_brake_poke();
}

bool
queue_pop(queue *q, qentry *out)
{
    queue_touch(q);
    queue_fill(q);
    queue_expire(q);
    if (ring_count(q) == 0)
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
    while (ring_count(q)) {
        qentry e = ring_pop_front(ring_of(q));
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
    if (q->more)
        q->more->mem_bytes = q->more->ready_bytes = 0;
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

static consumer *consumer_join(consumer *c, queue *q, const consumer_ops *ops, void *owner,
                               bool no_ack, bool exclusive, uint16_t prefetch);

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
    return consumer_join(c, q, ops, owner, no_ack, exclusive, prefetch);
}

consumer *
consumer_attach(consumer *c, queue *q, const consumer_ops *ops, void *owner, amqp_bytes tag,
                bool no_ack, bool exclusive, uint16_t prefetch)
{
    memset(c, 0, sizeof *c);
    c->tag = tag;
    c->embedded = true;
    return consumer_join(c, q, ops, owner, no_ack, exclusive, prefetch);
}

static consumer *
consumer_join(consumer *c, queue *q, const consumer_ops *ops, void *owner,
              bool no_ack, bool exclusive, uint16_t prefetch)
{
    c->q = q;
    c->ops = ops;
    c->owner = owner;
    c->no_ack = no_ack;
    c->exclusive = exclusive;
    c->prefetch = prefetch;
    static uint64_t next_order;
    c->order = ++next_order;
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
    queue_touch(q);
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
    if (c->priority)
        q->nprioritised--;
    if (c->embedded) {
        c->q = NULL;               /* the owner's memory: left to it */
    } else {
        free((char *)c->tag.data);
        free(c);
    }
    queue_touch(q);
    if (q->auto_delete && q->nconsumers == 0 && !q->deleted) {
        log_debug("auto-deleting queue '%.*s'", (int)q->name.len, q->name.data);
        vhost_queue_delete(q->vh, q);
    }
}
