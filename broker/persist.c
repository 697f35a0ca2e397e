/*
 * Durability glue between the broker and storage/.
 *
 * Writes are queued into the store's open batch from the loop thread; the
 * storage thread commits batches in order and wakes us through an ev_async.
 * Confirms and tx.commit-oks wait on the id of the batch that holds their
 * writes (channel.c keeps them in publish order); queues whose paged tail
 * is not committed yet wait here too.
 *
 * Start-up replays the store into the default vhost: durable exchanges,
 * queues (with their ids), bindings, then each queue's entries become its
 * on-disk tail, read back on demand. Nothing is read into memory that a
 * consumer has not asked for, so start-up time follows the number of
 * records, not their size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker/auth.h"
#include "broker/log.h"
#include "broker/persist.h"
#include "broker/plugin.h"
#include "storage/store.h"

uint64_t persist_definition_batch;

static ev_async done_watcher;
static channel *waiters;
static conn *conn_waiters;
static queue *page_waiters;
static uint64_t committed;

/* Bytes written per batch not yet done, for flow control: a small ring of
 * (batch, bytes), oldest first. */
static struct { uint64_t batch, bytes; } inflight[256];
static size_t inflight_head, inflight_n;
static uint64_t inflight_bytes;

static void
inflight_add(uint64_t bytes)
{
    uint64_t batch = store_batch_id(B.store);
    size_t last = (inflight_head + inflight_n - 1) % 256;
    if (inflight_n && inflight[last].batch == batch) {
        inflight[last].bytes += bytes;
    } else if (inflight_n < 256) {
        inflight[(inflight_head + inflight_n++) % 256].batch = batch;
        inflight[(inflight_head + inflight_n - 1) % 256].bytes = bytes;
    } else {
        inflight[last].bytes += bytes;      /* full: charge the newest */
    }
    inflight_bytes += bytes;
}

static void
inflight_done(uint64_t batch)
{
    while (inflight_n && inflight[inflight_head].batch <= batch) {
        inflight_bytes -= inflight[inflight_head].bytes;
        inflight_head = (inflight_head + 1) % 256;
        inflight_n--;
    }
}

bool
persist_flow_blocked(void)
{
    return inflight_bytes > PERSIST_FLOW_HIGH;
}

/* Failed batches, as ranges of consecutive ids, oldest first, in a ring
 * that grows as needed. The store reports batches in id order, so a
 * failure extends the newest range or starts one; a full disk fails long
 * runs of batches, which stay one range however long they are. A waiter
 * asks about its batch in the pass of done_cb that completes it, or soon
 * after, so only the newest ranges are asked about; past FAILED_RANGES the
 * oldest, long settled, is forgotten. (A ring of 64 single ids forgot
 * failures when more than 64 failed in one pass, and their publishers got
 * basic.ack for messages the disk never took.) */
#define FAILED_RANGES 65536
static struct failed_range { uint64_t lo, hi; } *failed;
static size_t failed_head, failed_n, failed_cap;
static uint64_t failed_run;          /* failures since the last success */

/* A write the disk refused for lack of space raises the disk alarm at
 * once, whatever disk_free_limit says: until the periodic check noticed,
 * publishers would go on, and every message they sent would be nacked
 * yet held in memory by its queue. The alarm then holds until the file
 * system has STORE_FULL_MARGIN more free than when the write failed (and
 * is above the limit): someone made room. */
#define STORE_FULL_MARGIN (4u << 20)
static bool store_full, store_full_new;
static uint64_t store_full_avail;

static uint64_t
disk_avail(void)
{
    struct statvfs st;
    if (statvfs(B.cfg.data_dir, &st) != 0)
        return 0;
    return (uint64_t)st.f_bavail * st.f_frsize;
}

static store_bytes
sb(amqp_bytes b)
{
    return (store_bytes){ (const uint8_t *)b.data, b.len };
}

static amqp_bytes
ab(store_bytes b)
{
    return (amqp_bytes){ (const char *)b.data, b.len };
}

/* ---- completions ------------------------------------------------------------ */

uint64_t
persist_batch(void)
{
    return B.store ? store_batch_id(B.store) : 0;
}

bool
persist_committed(uint64_t batch)
{
    return batch <= committed;
}

bool
persist_failed(uint64_t batch)
{
    for (size_t i = failed_n; i > 0; i--) {
        const struct failed_range *r = &failed[(failed_head + i - 1) % failed_cap];
        if (batch > r->hi)
            return false;
        if (batch >= r->lo)
            return true;
    }
    return false;
}

static void
failed_push(uint64_t id)
{
    if (failed_n && failed[(failed_head + failed_n - 1) % failed_cap].hi + 1 == id) {
        failed[(failed_head + failed_n - 1) % failed_cap].hi = id;
        return;
    }
    if (failed_n == FAILED_RANGES) {
        failed_head = (failed_head + 1) % failed_cap;
        failed_n--;
    } else if (failed_n == failed_cap) {
        size_t cap = failed_cap ? failed_cap * 2 : 16;
        struct failed_range *f = malloc(cap * sizeof *f);
        if (!f)
            abort();   /* forgetting a failure would confirm a lost message */
        for (size_t i = 0; i < failed_n; i++)
            f[i] = failed[(failed_head + i) % failed_cap];
        free(failed);
        failed = f;
        failed_cap = cap;
        failed_head = 0;
    }
    failed[(failed_head + failed_n++) % failed_cap] = (struct failed_range){ id, id };
}

/* Records the outcome of one batch, in id order; logs the first failure
 * of a run and the success that ends it, not every batch between. */
static void
record_batch(uint64_t id, int status)
{
    if (status == 0) {
        if (failed_run)
            log_warning("storage: writing again; the %llu batches before %llu failed and "
                        "their publishers got basic.nack", (unsigned long long)failed_run,
                        (unsigned long long)id);
        failed_run = 0;
        return;
    }
    if (!failed_run++)
        log_error("storage: batch %llu failed: %s; its publishers get basic.nack, and so do "
                  "those of the batches after it until a write succeeds",
                  (unsigned long long)id, store_strerror(status));
    failed_push(id);
    if (status == STORE_EFULL && !store_full) {
        store_full = store_full_new = true;
        store_full_avail = disk_avail();
    }
}

void
persist_wait_channel(channel *ch)
{
    if (ch->waiting)
        return;
    ch->waiting = true;
    ch->wait_prev = NULL;
    ch->wait_next = waiters;
    if (waiters)
        waiters->wait_prev = ch;
    waiters = ch;
}

void
persist_unwait_channel(channel *ch)
{
    if (!ch->waiting)
        return;
    ch->waiting = false;
    if (ch->wait_prev)
        ch->wait_prev->wait_next = ch->wait_next;
    else
        waiters = ch->wait_next;
    if (ch->wait_next)
        ch->wait_next->wait_prev = ch->wait_prev;
    ch->wait_next = ch->wait_prev = NULL;
}

void
persist_wait_conn(conn *c)
{
    if (c->store_waiting)
        return;
    c->store_waiting = true;
    c->swait_prev = NULL;
    c->swait_next = conn_waiters;
    if (conn_waiters)
        conn_waiters->swait_prev = c;
    conn_waiters = c;
}

void
persist_unwait_conn(conn *c)
{
    if (!c->store_waiting)
        return;
    c->store_waiting = false;
    if (c->swait_prev)
        c->swait_prev->swait_next = c->swait_next;
    else
        conn_waiters = c->swait_next;
    if (c->swait_next)
        c->swait_next->swait_prev = c->swait_prev;
    c->swait_next = c->swait_prev = NULL;
}

void
persist_wait_queue(queue *q)
{
    if (q->page_waiting)
        return;
    q->page_waiting = true;
    queue_ref(q);
    queue_more(q)->page_next = page_waiters;
    page_waiters = q;
}

static void
on_store_done(void *ctx)
{
    (void)ctx;
    ev_async_send(B.loop, &done_watcher);   /* the one thread-safe libev call */
}

static void (*progress_hooks[4])(void);
static size_t nprogress_hooks;

void
persist_on_progress(void (*fn)(void))
{
    if (nprogress_hooks == sizeof progress_hooks / sizeof progress_hooks[0])
        abort();   /* a fixed few, registered at start: our bug */
    progress_hooks[nprogress_hooks++] = fn;
}

static void
done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    store_done d[64];
    size_t n;
    while ((n = store_drain(B.store, d, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            record_batch(d[i].batch_id, d[i].status);
            if (d[i].batch_id > committed)
                committed = d[i].batch_id;
        }
    }
    inflight_done(committed);
    if (store_full_new) {
        store_full_new = false;
        log_warning("disk resource limit alarm set: the disk is full (free %llu bytes); "
                    "publishers are blocked until %u MB more are free",
                    (unsigned long long)store_full_avail, STORE_FULL_MARGIN >> 20);
        if (!B.disk_alarm) {
            B.disk_alarm = true;
            conn_alarm_changed();
        }
    }
    if (inflight_bytes < PERSIST_FLOW_LOW)
        conn_flow_resume();
    /* Each waiter re-registers if it still waits. */
    conn *cl = conn_waiters;
    conn_waiters = NULL;
    while (cl) {
        conn *c = cl;
        cl = c->swait_next;
        c->store_waiting = false;
        c->swait_next = c->swait_prev = NULL;
        conn_store_progress(c);
    }
    channel *list = waiters;
    waiters = NULL;
    while (list) {
        channel *ch = list;
        list = ch->wait_next;
        ch->waiting = false;
        ch->wait_next = ch->wait_prev = NULL;
        channel_store_progress(ch);
    }
    queue *ql = page_waiters;
    page_waiters = NULL;
    while (ql) {
        queue *q = ql;
        ql = q->more->page_next;
        q->page_waiting = false;
        queue_store_progress(q);
        queue_unref(q);
    }
    for (size_t i = 0; i < nprogress_hooks; i++)
        progress_hooks[i]();
}

/* ---- entities ------------------------------------------------------------------ */

/* An exchange record's type byte for x-delayed-message, past the routing
 * types; its routing type is its x-delayed-type argument (FORMAT.md). */
#define EXCHANGE_TYPE_DELAYED 16

void
persist_exchange(exchange *x, bool add)
{
    if (!B.store || B.recovering || !x->durable || x->builtin)
        return;
    if (!add) {
        store_del_exchange(B.store, sb(x->vh->name), sb(x->name));
        persist_definition_batch = store_batch_id(B.store);
        /* a delayed exchange's held messages go with it */
        queue *held = delayed_store_queue(x);
        if (held)
            persist_queue(held, false);
        return;
    }
    store_exchange r = {
        .vhost = sb(x->vh->name), .name = sb(x->name),
        .type = x->delay ? EXCHANGE_TYPE_DELAYED : (uint8_t)x->type,
        .flags = (uint8_t)((x->durable ? STORE_F_DURABLE : 0) |
                           (x->auto_delete ? STORE_F_AUTO_DELETE : 0) |
                           (x->internal ? STORE_F_INTERNAL : 0)),
        .args = { x->args, x->args_len },
    };
    store_put_exchange(B.store, &r);
    persist_definition_batch = store_batch_id(B.store);
}

/* Exclusive queues die with their connection, so a restart never keeps
 * them, durable or not (RabbitMQ does the same). */
static bool
queue_is_stored(const queue *q)
{
    return q->durable && !q->exclusive;
}

void
persist_queue(queue *q, bool add)
{
    if (!B.store || B.recovering || !queue_is_stored(q))
        return;
    if (!add) {
        store_del_queue(B.store, sb(q->vh->name), sb(q->name), q->id);
        persist_definition_batch = store_batch_id(B.store);
        return;
    }
    store_queue r = {
        .vhost = sb(q->vh->name), .name = sb(q->name), .id = q->id,
        .flags = (uint8_t)(STORE_F_DURABLE | (q->auto_delete ? STORE_F_AUTO_DELETE : 0)),
        .args = { q->args, q->args_len },
    };
    store_put_queue(B.store, &r);
    persist_definition_batch = store_batch_id(B.store);
}

void
persist_binding(exchange *src, void *dest, amqp_bytes key, const uint8_t *args,
                uint32_t args_len, bool add)
{
    /* A binding lasts only if both its ends do (RabbitMQ's rule). */
    bool dest_durable;
    amqp_bytes dname;
    uint8_t kind;
    if (*(enum dest_kind *)dest == DEST_QUEUE) {
        queue *q = dest;
        dest_durable = queue_is_stored(q);
        dname = q->name;
        kind = STORE_DEST_QUEUE;
    } else {
        exchange *x = dest;
        dest_durable = x->durable;
        dname = x->name;
        kind = STORE_DEST_EXCHANGE;
    }
    if (!B.store || B.recovering || !src->durable || !dest_durable || src->name.len == 0)
        return;
    store_binding r = {
        .vhost = sb(src->vh->name), .source = sb(src->name), .dest_kind = kind,
        .dest = sb(dname), .key = sb(key), .args = { args, args_len },
    };
    if (add)
        store_put_binding(B.store, &r);
    else
        store_del_binding(B.store, &r);
    persist_definition_batch = store_batch_id(B.store);
}

/* ---- messages ------------------------------------------------------------------ */

static store_message
message_record(const message *m)
{
    return (store_message){
        .id = m->id, .prop_flags = m->prop_flags,
        .exchange = sb(m->exchange), .routing_key = sb(m->routing_key),
        .props = { m->props, m->props_len },
        .body = { m->body, (uint32_t)m->body_size },
    };
}

uint64_t
persist_publish(message *m, queue *const *q, const uint64_t *seq, size_t n)
{
    if (!B.store || n == 0)
        return 0;
    store_qentry stack[16];
    store_qentry *e = n <= 16 ? stack : malloc(n * sizeof *e);
    if (!e)
        abort();
    for (size_t i = 0; i < n; i++)
        e[i] = (store_qentry){ q[i]->id, seq[i], m->id, 0 };
    store_message r = message_record(m);
    inflight_add(m->body_size + m->props_len + 64 * n);
    if (m->disk_refs == 0)
        store_put_message(B.store, &r, e, n);
    else
        for (size_t i = 0; i < n; i++)
            store_put_qentry(B.store, &e[i]);
    m->disk_refs += (uint32_t)n;
    if (e != stack)
        free(e);
    return store_batch_id(B.store);
}

static uint8_t
entry_disk_flags(const queue *q, const message *m)
{
    return (m->delivery_mode == 2 && queue_is_stored(q)) ? 0 : STORE_QE_TRANSIENT;
}

void
persist_page_out(queue *q, message *m, uint64_t seq)
{
    store_qentry e = { q->id, seq, m->id, entry_disk_flags(q, m) };
    /* The entry joins the tail, which no in-memory object owns: disk_refs
     * (entries this object answers for) stays as it is. */
    if (m->disk_refs == 0) {
        store_message r = message_record(m);
        store_put_message(B.store, &r, &e, 1);
        /* twice: the batch's copy and the pending list's reference */
        inflight_add(2 * (m->body_size + m->props_len) + 64);
    } else {
        store_put_qentry(B.store, &e);
        inflight_add(m->body_size + 64);
    }
    q->paged = true;
}

void
persist_mark_delivered(queue *q, message *m, uint64_t seq)
{
    if (!B.store || q->deleted)
        return;
    store_qentry e = { q->id, seq, m->id,
                       (uint8_t)(STORE_QE_DELIVERED | entry_disk_flags(q, m)) };
    store_put_qentry(B.store, &e);
}

void
persist_forget(queue *q, message *m, uint64_t seq)
{
    if (m->disk_refs)
        m->disk_refs--;
    if (B.store)
        store_del_qentry(B.store, q->id, seq);
}

void
persist_drop_queue_entries(queue *q, bool whole)
{
    if (!B.store)
        return;
    if (whole && queue_is_stored(q))
        return;                    /* store_del_queue takes them all */
    if (whole)
        store_del_qrange(B.store, q->id, 0, UINT64_MAX);
    else if (q->tail_count)
        store_del_qrange(B.store, q->id, queue_tail_next(q), UINT64_MAX);
}

typedef struct page_ctx {
    queue *q;
    store_reader *r;
    size_t n;
    uint64_t limit;
} page_ctx;

static int
page_one(const store_qentry *e, void *ctx)
{
    page_ctx *p = ctx;
    queue *q = p->q;
    store_message sm;
    if (e->seq >= p->limit)
        return 1;                  /* from here on the pending list has them */
    queue_more(q)->tail_next_seq = e->seq + 1;
    q->tail_count--;
    if (store_get_message(p->r, e->msg_id, &sm) != 0) {
        log_error("queue '%.*s': entry %llu refers to message %llu that cannot be read; dropped",
                  (int)q->name.len, q->name.data, (unsigned long long)e->seq,
                  (unsigned long long)e->msg_id);
        store_del_qentry(B.store, q->id, e->seq);
        return 0;
    }
    message *m = message_new(ab(sm.exchange), ab(sm.routing_key), sm.prop_flags,
                             sm.props.data, sm.props.len, sm.body.len);
    if (!m) {
        /* put the count back and stop: we retry later */
        queue_more(q)->tail_next_seq = e->seq;
        q->tail_count++;
        return 1;
    }
    B.next_message_id--;           /* message_new took an id this one does not use */
    m->id = e->msg_id;
    memcpy(m->body, sm.body.data, sm.body.len);
    m->body_received = sm.body.len;
    m->disk_refs = 1;
    uint32_t flags = QE_ON_DISK;
    if (e->flags & STORE_QE_DELIVERED)
        flags |= QE_REDELIVERED | QE_MARKED;
    queue_push_paged(q, m, e->seq, flags);
    message_unref(&m);
    p->n++;
    return 0;
}

size_t
persist_page_in(queue *q, size_t max, uint64_t limit)
{
    if (!B.store || q->tail_count == 0 || queue_tail_next(q) >= limit)
        return 0;
    store_reader *r;
    if (store_read_begin(B.store, &r) != 0)
        return 0;
    page_ctx p = { q, r, 0, limit };
    uint64_t want = q->tail_count < max ? q->tail_count : max;
    store_each_qentry(r, q->id, queue_tail_next(q), (size_t)want, page_one, &p);
    store_read_end(r);
    return p.n;
}

typedef struct load_ctx {
    queue *q;
    store_reader *r;
    void (*fn)(message *m, uint64_t seq, void *ctx);
    void *ctx;
} load_ctx;

static int
load_one(const store_qentry *e, void *ctx)
{
    load_ctx *l = ctx;
    store_message sm;
    if (store_get_message(l->r, e->msg_id, &sm) != 0) {
        log_error("queue '%.*s': entry %llu refers to message %llu that cannot be read; dropped",
                  (int)l->q->name.len, l->q->name.data, (unsigned long long)e->seq,
                  (unsigned long long)e->msg_id);
        store_del_qentry(B.store, l->q->id, e->seq);
        return 0;
    }
    message *m = message_new(ab(sm.exchange), ab(sm.routing_key), sm.prop_flags,
                             sm.props.data, sm.props.len, sm.body.len);
    if (!m)
        abort();
    B.next_message_id--;           /* message_new took an id this one does not use */
    m->id = e->msg_id;
    memcpy(m->body, sm.body.data, sm.body.len);
    m->body_received = sm.body.len;
    m->disk_refs = 1;
    l->fn(m, e->seq, l->ctx);
    message_unref(&m);
    return 0;
}

void
persist_load_entries(queue *q, void (*fn)(message *m, uint64_t seq, void *ctx), void *ctx)
{
    store_reader *r;
    if (!B.store || store_read_begin(B.store, &r) != 0)
        return;
    load_ctx l = { q, r, fn, ctx };
    store_each_qentry(r, q->id, 0, 0, load_one, &l);
    store_read_end(r);
}

/* ---- start-up ------------------------------------------------------------------- */

typedef struct recover_ctx {
    uint64_t *live;
    size_t nlive, cap;
    size_t exchanges, queues, bindings, skipped;
} recover_ctx;

static int
recover_exchange(const store_exchange *r, void *ctx)
{
    recover_ctx *rc = ctx;
    vhost *vh = broker_vhost(ab(r->vhost));
    enum route_type type = (enum route_type)r->type;
    bool delayed = r->type == EXCHANGE_TYPE_DELAYED;
    if (!vh || (delayed ? !delayed_type_of(r->args.data, r->args.len, &type)
                        : r->type > ROUTE_HEADERS)) {
        rc->skipped++;
        return 0;
    }
    if (vhost_exchange(vh, ab(r->name)))
        return 0;                  /* a predeclared one: never duplicated */
    exchange *x = vhost_exchange_add(vh, ab(r->name), type,
                                     r->flags & STORE_F_DURABLE, r->flags & STORE_F_AUTO_DELETE,
                                     r->flags & STORE_F_INTERNAL, r->args.data, r->args.len);
    if (delayed)
        delayed_attach(x);
    rc->exchanges++;
    return 0;
}

static int
recover_queue(const store_queue *r, void *ctx)
{
    recover_ctx *rc = ctx;
    vhost *vh = broker_vhost(ab(r->vhost));
    if (!vh || vhost_queue(vh, ab(r->name))) {
        rc->skipped++;
        return 0;
    }
    queue *q = queue_new(vh, ab(r->name), true, false, r->flags & STORE_F_AUTO_DELETE,
                         NULL, r->args.data, r->args.len);
    q->id = r->id;
    if (r->id > B.next_queue_id)
        B.next_queue_id = r->id;
    vhost_queue_add(vh, q);
    if (rc->nlive == rc->cap) {
        rc->cap = rc->cap ? rc->cap * 2 : 256;
        rc->live = realloc(rc->live, rc->cap * sizeof *rc->live);
        if (!rc->live)
            abort();
    }
    rc->live[rc->nlive++] = r->id;
    rc->queues++;
    return 0;
}

static int
recover_binding(const store_binding *r, void *ctx)
{
    recover_ctx *rc = ctx;
    vhost *vh = broker_vhost(ab(r->vhost));
    exchange *src = vh ? vhost_exchange(vh, ab(r->source)) : NULL;
    void *dest = !vh ? NULL
                 : r->dest_kind == STORE_DEST_QUEUE ? (void *)vhost_queue(vh, ab(r->dest))
                                                    : (void *)vhost_exchange(vh, ab(r->dest));
    if (!src || !dest) {
        rc->skipped++;
        return 0;
    }
    if (vhost_bind(vh, src, dest, ab(r->key), r->args.data, r->args.len) < 0)
        rc->skipped++;
    else
        rc->bindings++;
    return 0;
}

typedef struct scan_ctx {
    queue *q;
    uint64_t max_msg;
} scan_ctx;

static int
scan_entry(const store_qentry *e, void *ctx)
{
    scan_ctx *s = ctx;
    queue *q = s->q;
    if (q->tail_count++ == 0)
        queue_more(q)->tail_next_seq = e->seq;
    q->next_seq = e->seq;
    if (e->msg_id > s->max_msg)
        s->max_msg = e->msg_id;
    return 0;
}

static int
recover(char *err, size_t errlen)
{
    recover_ctx rc = { 0 };
    store_reader *r;
    int e = store_read_begin(B.store, &r);
    if (e) {
        snprintf(err, errlen, "cannot read the store: %s", store_strerror(e));
        return -1;
    }
    B.recovering = true;
    /* vhosts and users first: every other record names its vhost */
    if (auth_recover(r, err, errlen) != 0) {
        store_read_end(r);
        B.recovering = false;
        return -1;
    }
    /* policies next, so queues and exchanges take theirs as they come */
    if (policy_recover(r, err, errlen) != 0) {
        store_read_end(r);
        B.recovering = false;
        return -1;
    }
    e = store_each_exchange(r, recover_exchange, &rc);
    if (!e)
        e = store_each_queue(r, recover_queue, &rc);
    if (!e)
        e = store_each_binding(r, recover_binding, &rc);
    store_read_end(r);
    if (e) {
        /* A newer format: refuse rather than half-load and then overwrite. */
        snprintf(err, errlen, "cannot read the store's definitions: %s%s", store_strerror(e),
                 e == STORE_EVERSION ? " (written by a newer Coney?)" : "");
        free(rc.live);
        B.recovering = false;
        return -1;
    }

    e = store_recover(B.store, rc.live, rc.nlive);
    if (e) {
        snprintf(err, errlen, "cannot recover the store: %s", store_strerror(e));
        free(rc.live);
        B.recovering = false;
        return -1;
    }
    uint64_t messages = 0;
    scan_ctx sc = { NULL, 0 };
    if (store_read_begin(B.store, &r) == 0) {
        for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
            vhost *vh = vi.e->value;
            for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
                sc.q = it.e->value;
                store_each_qentry(r, sc.q->id, 0, 0, scan_entry, &sc);
                messages += sc.q->tail_count;
            }
        }
        store_read_end(r);
    }
    if (sc.max_msg > B.next_message_id)
        B.next_message_id = sc.max_msg;
    B.recovering = false;
    free(rc.live);
    delayed_recover();
    log_info("recovered %zu exchanges, %zu queues, %zu bindings, %llu messages%s",
             rc.exchanges, rc.queues, rc.bindings, (unsigned long long)messages,
             rc.skipped ? " (some records skipped, see above)" : "");
    return 0;
}

int
persist_open(char *err, size_t errlen)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/store", B.cfg.data_dir);
    static const enum store_sync modes[] = { STORE_SYNC_ALWAYS, STORE_SYNC_BATCH, STORE_SYNC_NONE };
    store_config cfg = {
        .dir = dir,
        .sync = modes[B.cfg.storage_sync],
        .sync_interval_ms = B.cfg.storage_sync_interval,
        .on_done = on_store_done,
    };
    ev_async_init(&done_watcher, done_cb);
    ev_async_start(B.loop, &done_watcher);
    char serr[256] = "";
    int e = store_open(&cfg, &B.store, serr, sizeof serr);
    if (e) {
        snprintf(err, errlen, "cannot open the store in %s: %s", dir, serr[0] ? serr : store_strerror(e));
        B.store = NULL;
        return -1;
    }
    ev_tstamp t0 = ev_time();
    if (recover(err, errlen) != 0)
        return -1;
    log_info("store opened in %s (sync %s), recovery took %.3f s", dir,
             B.cfg.storage_sync == 0 ? "always" : B.cfg.storage_sync == 1 ? "batch" : "none",
             ev_time() - t0);
    return 0;
}

void
persist_close(void)
{
    if (!B.store)
        return;
    store_close(B.store);
    B.store = NULL;
    ev_async_stop(B.loop, &done_watcher);
    free(failed);
    failed = NULL;
    failed_head = failed_n = failed_cap = 0;
}

bool
persist_disk_check(void)
{
    struct statvfs st;
    if (statvfs(B.cfg.data_dir, &st) != 0)
        return B.disk_alarm;
    uint64_t avail = (uint64_t)st.f_bavail * st.f_frsize;
    bool low = avail < B.cfg.disk_free_limit;
    if (store_full && !low && avail >= store_full_avail + STORE_FULL_MARGIN)
        store_full = false;
    low = low || store_full;
    if (low != B.disk_alarm)
        log_warning(low ? "disk resource limit alarm set: free %llu bytes, limit %llu"
                        : "disk resource limit alarm cleared: free %llu bytes, limit %llu",
                    (unsigned long long)avail, (unsigned long long)B.cfg.disk_free_limit);
    return low;
}
