/*
 * Delayed messages: the x-delayed-message exchange type of RabbitMQ's
 * rabbitmq_delayed_message_exchange plugin (docs/extensions.md).
 *
 * A delayed exchange is an ordinary exchange of its x-delayed-type whose
 * publishes are intercepted: a message with a positive x-delay header is
 * held until its deadline and then routed by the exchange's bindings as
 * they are at that time. Deadlines are wall-clock milliseconds in 64 bits,
 * so a delay has no 49-day (2^32 ms) cap.
 *
 * Held messages sit in a binary min-heap keyed by one 64-bit number: the
 * deadline shifted left by KEY_CTR_BITS with a per-exchange counter below
 * it, so the order is deadline, then arrival. For a durable exchange that
 * same number is the sequence number of a persistent message's entry in a
 * hidden durable queue, "amq.delayed.<exchange>": the message store keeps
 * held messages with no record type of its own, and recovery rebuilds the
 * heap from the entries' keys, so the deadline needs no header. The hidden
 * queue is not in the vhost's map, so no client lists, declares or
 * consumes from it. One libev timer per exchange waits for the earliest
 * deadline; it checks the wall clock when it fires and never releases a
 * message early.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "broker/persist.h"

#define KEY_CTR_BITS 20
#define KEY_CTR_MASK ((1u << KEY_CTR_BITS) - 1)
/* The latest deadline a key holds: about the year 2527. Later ones are
 * clamped to it. */
#define DUE_MAX ((int64_t)(UINT64_MAX >> KEY_CTR_BITS))
#define STORE_QUEUE_PREFIX "amq.delayed."

typedef struct held {
    uint64_t key;                  /* deadline << KEY_CTR_BITS | counter */
    message *m;                    /* one reference */
    bool on_disk;                  /* has an entry (key) in the hidden queue */
} held;

typedef struct delayed {
    ev_timer timer;                /* first: timer_cb finds the struct from it */
    exchange *x;                   /* the owner; this lives as long as it */
    held *h;                       /* the heap, h[0] due first */
    size_t n, cap;
    uint32_t ctr;
    queue *store_q;                /* the hidden queue, made on first need; one reference */
} delayed;

static int64_t
wall_ms(void)
{
    return (int64_t)(ev_time() * 1000.0);
}

static int64_t
key_due(uint64_t key)
{
    return (int64_t)(key >> KEY_CTR_BITS);
}

/* ---- the type ------------------------------------------------------------ */

bool
delayed_type_arg(const amqp_table *args, enum route_type *out)
{
    const amqp_value *v = args ? amqp_table_get(args, "x-delayed-type") : NULL;
    if (!v || (v->kind != 'S' && v->kind != 'x'))
        return false;
    return route_type_parse(v->v.bytes, out);
}

bool
delayed_type_of(const uint8_t *args, uint32_t args_len, enum route_type *out)
{
    amqp_pool pool = { 0 };
    amqp_table t;
    size_t off = 0;
    bool ok = args_len && amqp_table_decode(args, args_len, &off, &t, &pool) == AMQP_OK &&
              delayed_type_arg(&t, out);
    amqp_pool_free(&pool);
    return ok;
}

const char *
exchange_type_name(const exchange *x)
{
    return x->delay ? DELAYED_TYPE : route_type_name(x->type);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

void
delayed_attach(exchange *x)
{
    delayed *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->x = x;
    ev_init(&d->timer, timer_cb);
    x->delay = d;
}

void
delayed_free(exchange *x)
{
    delayed *d = x->delay;
    if (!d)
        return;
    ev_timer_stop(B.loop, &d->timer);
    for (size_t i = 0; i < d->n; i++)
        message_unref(&d->h[i].m);
    free(d->h);
    if (d->store_q) {
        d->store_q->deleted = true;
        queue_unref(d->store_q);
    }
    free(d);
    x->delay = NULL;
}

size_t
delayed_count(const exchange *x)
{
    return x->delay ? x->delay->n : 0;
}

queue *
delayed_store_queue(const exchange *x)
{
    return x->delay ? x->delay->store_q : NULL;
}

/* ---- the heap ------------------------------------------------------------- */

static void
heap_push(delayed *d, held e)
{
    d->h = buf_array_room(d->h, sizeof *d->h, NULL, &d->n, &d->cap);
    size_t i = d->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (d->h[parent].key <= e.key)
            break;
        d->h[i] = d->h[parent];
        i = parent;
    }
    d->h[i] = e;
}

static held
heap_pop(delayed *d)
{
    held top = d->h[0], last = d->h[--d->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= d->n)
            break;
        if (c + 1 < d->n && d->h[c + 1].key < d->h[c].key)
            c++;
        if (last.key <= d->h[c].key)
            break;
        d->h[i] = d->h[c];
        i = c;
    }
    if (d->n)
        d->h[i] = last;
    return top;
}

/* Sets the timer for the earliest deadline (a little after it: the
 * callback checks the clock anyway). */
static void
arm(delayed *d)
{
    ev_timer_stop(B.loop, &d->timer);
    if (d->n == 0)
        return;
    int64_t wait = key_due(d->h[0].key) - wall_ms();
    ev_timer_set(&d->timer, wait > 0 ? (double)wait / 1000.0 + 0.0005 : 0.0, 0.0);
    ev_timer_start(B.loop, &d->timer);
}

/* ---- holding and releasing ------------------------------------------------ */

int64_t
delayed_header(const message *m)
{
    if (!(m->prop_flags & AMQP_BASIC_HEADERS))
        return 0;
    amqp_pool pool = { 0 };
    amqp_table h;
    int64_t ms = 0;
    if (message_headers(m, &h, &pool)) {
        const amqp_value *v = amqp_table_get(&h, "x-delay");
        if (!v || !amqp_value_int(v, &ms))
            ms = 0;
    }
    amqp_pool_free(&pool);
    return ms;
}

/* "amq.delayed.<exchange>": the caller frees data. */
static amqp_bytes
store_queue_name(const exchange *x)
{
    size_t plen = strlen(STORE_QUEUE_PREFIX);
    char *name = malloc(plen + x->name.len);
    if (!name)
        abort();
    memcpy(name, STORE_QUEUE_PREFIX, plen);
    memcpy(name + plen, x->name.data, x->name.len);
    return (amqp_bytes){ name, plen + x->name.len };
}

/* The hidden queue, made (and written) the first time a persistent
 * message is held. */
static queue *
store_queue(delayed *d)
{
    if (d->store_q)
        return d->store_q;
    amqp_bytes name = store_queue_name(d->x);
    d->store_q = queue_new(d->x->vh, name, true, false, false, NULL, NULL, 0);
    free((char *)name.data);
    persist_queue(d->store_q, true);
    return d->store_q;
}

bool
delayed_hold(exchange *x, message *m, uint64_t *batch)
{
    delayed *d = x->delay;
    int64_t ms;
    *batch = 0;
    if (!d || (ms = delayed_header(m)) <= 0)
        return false;
    int64_t now = wall_ms();
    int64_t due = ms > DUE_MAX - now ? DUE_MAX : now + ms;
    held e = { (uint64_t)due << KEY_CTR_BITS | (d->ctr++ & KEY_CTR_MASK), message_ref(m), false };
    if (m->delivery_mode == 2 && x->durable && B.store) {
        queue *q = store_queue(d);
        *batch = persist_publish(m, &q, &e.key, 1);
        e.on_disk = true;
    }
    heap_push(d, e);
    if (d->h[0].key == e.key)
        arm(d);
    return true;
}

static void
release(delayed *d, held e)
{
    exchange *x = d->x;
    size_t reached;
    /* TTLs count from now, when the message reaches its queues, as
     * RabbitMQ counts them from enqueueing */
    int64_t now = (int64_t)(ev_now(B.loop) * 1000.0);
    if (e.m->expires_ms)
        e.m->expires_ms += now - e.m->arrived_ms;
    e.m->arrived_ms = now;
    vhost_publish_released(x->vh, x, e.m, &reached);
    if (reached == 0)
        B.st.now.drop_unroutable++;
    /* after the queues' entries, so the stored message never lacks one */
    if (e.on_disk)
        persist_forget(d->store_q, e.m, e.key);
    message_unref(&e.m);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    delayed *d = (delayed *)w;
    int64_t now = wall_ms();
    while (d->n && key_due(d->h[0].key) <= now)
        release(d, heap_pop(d));
    arm(d);
}

/* ---- recovery ------------------------------------------------------------- */

static void
recover_one(message *m, uint64_t seq, void *ctx)
{
    delayed *d = ctx;
    heap_push(d, (held){ seq, message_ref(m), true });
    if ((uint32_t)(seq & KEY_CTR_MASK) >= d->ctr)
        d->ctr = (uint32_t)(seq & KEY_CTR_MASK) + 1;
}

static bool
is_store_queue_name(amqp_bytes name)
{
    size_t n = strlen(STORE_QUEUE_PREFIX);
    return name.len >= n && memcmp(name.data, STORE_QUEUE_PREFIX, n) == 0;
}

void
delayed_recover(void)
{
    size_t exchanges = 0, messages = 0;
    for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
        vhost *vh = vi.e->value;
        /* each durable delayed exchange takes its hidden queue out of the map */
        for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it)) {
            exchange *x = it.e->value;
            delayed *d = x->delay;
            if (!d || !x->durable)
                continue;
            amqp_bytes name = store_queue_name(x);
            queue *q = vhost_queue(vh, name);
            free((char *)name.data);
            if (!q)
                continue;
            map_del(&vh->queues, q->name.data, q->name.len);
            d->store_q = q;        /* the map's reference */
            persist_load_entries(q, recover_one, d);
            q->tail_count = 0;
            messages += d->n;
            exchanges++;
            arm(d);
        }
        /* the rest lost their exchange: delete them */
        queue **orphans = NULL;
        size_t n = 0, cap = 0;
        for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
            queue *q = it.e->value;
            if (is_store_queue_name(q->name)) {
                orphans = buf_array_room(orphans, sizeof *orphans, NULL, &n, &cap);
                orphans[n++] = q;
            }
        }
        for (size_t i = 0; i < n; i++) {
            log_warning("deleting queue '%.*s': its delayed exchange is gone",
                        (int)orphans[i]->name.len, orphans[i]->name.data);
            vhost_queue_delete(vh, orphans[i]);
        }
        free(orphans);
    }
    if (exchanges)
        log_info("recovered %zu delayed messages in %zu delayed exchanges", messages, exchanges);
}
