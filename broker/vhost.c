/*
 * Virtual hosts: the namespaces that hold exchanges and queues, and the
 * routing walk from an exchange to the set of queues a message reaches.
 *
 * The walk follows exchange-to-exchange bindings and alternate exchanges;
 * a generation mark on each queue and exchange makes every queue receive a
 * message once however many paths lead to it, and stops cycles.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "broker/persist.h"

static amqp_bytes
bytes_dup(amqp_bytes b)
{
    char *d = malloc(b.len ? b.len : 1);
    if (!d)
        abort();
    memcpy(d, b.data, b.len);
    return (amqp_bytes){ d, b.len };
}

static const struct { const char *name; enum route_type type; } builtin_exchanges[] = {
    { "", ROUTE_DIRECT },
    { "amq.direct", ROUTE_DIRECT },
    { "amq.fanout", ROUTE_FANOUT },
    { "amq.topic", ROUTE_TOPIC },
    { "amq.headers", ROUTE_HEADERS },
    { "amq.match", ROUTE_HEADERS },
};

vhost *
vhost_new(const char *name)
{
    vhost *vh = calloc(1, sizeof *vh);
    if (!vh)
        abort();
    vh->name = bytes_dup(amqp_cstr(name));
    vh->description = strdup("");
    vh->tags = strdup("");
    if (!vh->description || !vh->tags)
        abort();
    vh->max_connections = vh->max_queues = -1;
    for (size_t i = 0; i < sizeof builtin_exchanges / sizeof builtin_exchanges[0]; i++) {
        exchange *x = vhost_exchange_add(vh, amqp_cstr(builtin_exchanges[i].name),
                                         builtin_exchanges[i].type, true, false,
                                         false, NULL, 0);
        x->builtin = true;
        if (i == 0)
            vh->default_ex = x;
    }
    return vh;
}

static void
exchange_free(exchange *x)
{
    B.exchange_gen++;              /* channels' cached publish exchanges go stale */
    delayed_free(x);
    route_table_free(x->rt);
    free((char *)x->name.data);
    free((char *)x->alternate.data);
    free((char *)x->policy_alternate.data);
    free(x->args);
    free(x);
}

void
vhost_free(vhost *vh)
{
    /* the tables first: freeing a binding takes it off its destination */
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it)) {
        exchange *x = it.e->value;
        route_table_free(x->rt);
        x->rt = NULL;
    }
    for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
        queue *q = it.e->value;
        q->deleted = true;
        queue_unref(q);
    }
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it))
        exchange_free(it.e->value);
    map_free(&vh->queues);
    map_free(&vh->exchanges);
    policy_vhost_free(vh);
    free((char *)vh->name.data);
    free(vh->description);
    free(vh->tags);
    free(vh);
}

exchange *
vhost_exchange(vhost *vh, amqp_bytes name)
{
    return map_get(&vh->exchanges, name.data, name.len);
}

queue *
vhost_queue(vhost *vh, amqp_bytes name)
{
    return map_get(&vh->queues, name.data, name.len);
}

exchange *
vhost_exchange_add(vhost *vh, amqp_bytes name, enum route_type type,
                   bool durable, bool auto_delete, bool internal,
                   const uint8_t *args, uint32_t args_len)
{
    exchange *x = calloc(1, sizeof *x);
    if (!x)
        abort();
    x->kind = DEST_EXCHANGE;
    x->name = bytes_dup(name);
    x->vh = vh;
    x->type = type;
    x->durable = durable;
    x->auto_delete = auto_delete;
    x->internal = internal;
    x->rt = route_table_new(type, x);
    if (!x->rt)
        abort();
    if (args_len) {
        x->args = malloc(args_len);
        if (!x->args)
            abort();
        memcpy(x->args, args, args_len);
        x->args_len = args_len;
        amqp_pool pool = { 0 };
        amqp_table t;
        size_t off = 0;
        if (amqp_table_decode(args, args_len, &off, &t, &pool) == AMQP_OK) {
            const amqp_value *ae = amqp_table_get(&t, "alternate-exchange");
            if (ae && (ae->kind == 'S' || ae->kind == 'x'))
                x->alternate = bytes_dup(ae->v.bytes);
        }
        amqp_pool_free(&pool);
    }
    exchange_apply_policies(x);
    map_put(&vh->exchanges, x->name.data, x->name.len, x);
    return x;
}

/* route_foreach: takes a binding of the source exchange ctx off disk */
static void
forget_binding(const route_binding *b, void *ctx)
{
    persist_binding(ctx, b->dest, b->key, b->args, b->args_len, false);
}

static bool
dest_is_durable(void *dest)
{
    if (*(enum dest_kind *)dest == DEST_QUEUE)
        return ((queue *)dest)->durable;
    return ((exchange *)dest)->durable;
}

static route_dest_list *
dest_bindings(void *dest)
{
    if (*(enum dest_kind *)dest == DEST_QUEUE)
        return &((queue *)dest)->bound;
    return &((exchange *)dest)->bound;
}

typedef struct unbind_ctx {
    bool durable;                  /* the destination is in the store */
    exchange **doomed;             /* auto-delete sources left unbound */
    size_t ndoomed, cap;
} unbind_ctx;

static void
binding_gone(route_table *rt, const route_binding *b, void *ctx)
{
    unbind_ctx *u = ctx;
    exchange *x = route_table_owner(rt);
    if (u->durable && x->durable)
        persist_binding(x, b->dest, b->key, b->args, b->args_len, false);
    if (x->auto_delete && route_count(rt) == 1) {      /* its last one */
        u->doomed = buf_array_room(u->doomed, sizeof *u->doomed, NULL,
                                   &u->ndoomed, &u->cap);
        u->doomed[u->ndoomed++] = x;
    }
}

/* Removes every binding to dest from every exchange (and from the store);
 * auto-delete exchanges left without bindings go too. */
static void
vhost_unbind_dest_everywhere(vhost *vh, void *dest)
{
    unbind_ctx u = { .durable = B.store && dest_is_durable(dest) };
    route_unbind_all(dest_bindings(dest), binding_gone, &u);
    for (size_t i = 0; i < u.ndoomed; i++)
        vhost_exchange_delete(vh, u.doomed[i]);
    free(u.doomed);
}

void
vhost_exchange_delete(vhost *vh, exchange *x)
{
    map_del(&vh->exchanges, x->name.data, x->name.len);
    if (B.store && x->durable) {
        route_foreach(x->rt, forget_binding, x);
        persist_exchange(x, false);
    }
    /* its own bindings leave their destinations' lists with its table */
    route_table_free(x->rt);
    x->rt = NULL;
    vhost_unbind_dest_everywhere(vh, x);
    exchange_free(x);
}

void
vhost_queue_add(vhost *vh, queue *q)
{
    map_put(&vh->queues, q->name.data, q->name.len, q);
}

uint32_t
vhost_queue_delete(vhost *vh, queue *q)
{
    if (q->deleted)
        return 0;
    q->deleted = true;
    map_del(&vh->queues, q->name.data, q->name.len);
    vhost_unbind_dest_everywhere(vh, q);
    while (q->consumers)
        q->consumers->ops->cancelled(q->consumers);
    /* On disk the queue goes in one range delete, unacked entries too. */
    if (q->durable && !q->exclusive)
        persist_queue(q, false);
    else if (q->paged)
        persist_drop_queue_entries(q, true);
    uint32_t n = queue_drop_all(q);
    queue_unref(q);
    return n;
}

int
vhost_bind(vhost *vh, exchange *src, void *dest, amqp_bytes key,
           const uint8_t *args, uint32_t args_len)
{
    (void)vh;
    int rc = route_bind(src->rt, dest, dest_bindings(dest), key, args, args_len);
    if (rc == 0)
        persist_binding(src, dest, key, args, args_len, true);
    return rc;
}

int
vhost_unbind(vhost *vh, exchange *src, void *dest, amqp_bytes key,
             const uint8_t *args, uint32_t args_len)
{
    int rc = route_unbind(src->rt, dest, key, args, args_len);
    if (rc != 0)
        return rc;
    persist_binding(src, dest, key, args, args_len, false);
    if (src->auto_delete && route_count(src->rt) == 0)
        vhost_exchange_delete(vh, src);
    return 0;
}

/* ---- routing ------------------------------------------------------------- */

typedef struct route_walk {
    vhost *vh;
    message *m;
    amqp_bytes key;                /* the routing key being routed: m's, or a CC/BCC one */
    route_result *out;
    uint64_t gen;
    bool headers_done;
    bool have_headers;
    amqp_table headers;
    amqp_pool pool;
} route_walk;

static void route_exchange(route_walk *w, exchange *x);

static void
result_push(route_result *r, queue *q)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->q = realloc(r->q, r->cap * sizeof *r->q);
        if (!r->q)
            abort();
    }
    r->q[r->n++] = q;
}

static void
route_emit(void *dest, void *ctx)
{
    route_walk *w = ctx;
    if (*(enum dest_kind *)dest == DEST_QUEUE) {
        queue *q = dest;
        if (q->route_mark != w->gen) {
            q->route_mark = w->gen;
            result_push(w->out, q);
        }
    } else {
        exchange *x = dest;
        if (x->route_mark != w->gen)
            route_exchange(w, x);
    }
}

static void
route_exchange(route_walk *w, exchange *x)
{
    x->route_mark = w->gen;
    size_t before = w->out->n;
    if (x == w->vh->default_ex) {
        queue *q = vhost_queue(w->vh, w->key);
        if (q)
            route_emit(q, w);
    } else {
        const amqp_table *h = NULL;
        if (x->type == ROUTE_HEADERS) {
            if (!w->headers_done) {
                w->headers_done = true;
                w->have_headers = message_headers(w->m, &w->headers, &w->pool);
            }
            h = w->have_headers ? &w->headers : NULL;
        }
        route_match(x->rt, w->key, h, route_emit, w);
    }
    if (w->out->n == before && exchange_alternate(x).len) {
        exchange *ae = vhost_exchange(w->vh, exchange_alternate(x));
        if (ae && ae->route_mark != w->gen)
            route_exchange(w, ae);
    }
}

static bool route_saw_bcc;         /* the last vhost_route met a BCC header */

/* Sender-selected distribution: the string entries of the CC and BCC
 * header arrays are routed too (RabbitMQ's rule), within the same walk
 * so a queue still gets the message once. */
static void
route_cc(route_walk *w, exchange *x, const char *name)
{
    const amqp_value *v = amqp_table_get(&w->headers, name);
    if (!v || v->kind != 'A')
        return;
    for (uint32_t i = 0; i < v->v.array.n; i++) {
        const amqp_value *k = &v->v.array.items[i];
        if (k->kind != 'S')
            continue;
        w->key = k->v.bytes;
        /* each key walks the graph again; marks from the first walk
         * would stop it at exchanges already seen */
        w->gen = ++B.route_gen;
        route_exchange(w, x);
    }
}

void
vhost_route(vhost *vh, exchange *x, message *m, route_result *out)
{
    route_walk w = { .vh = vh, .m = m, .key = m->routing_key, .out = out,
                     .gen = ++B.route_gen };
    out->n = 0;
    route_saw_bcc = false;
    route_exchange(&w, x);
    if (message_may_have_cc(m)) {
        if (!w.headers_done) {
            w.headers_done = true;
            w.have_headers = message_headers(m, &w.headers, &w.pool);
        }
        if (w.have_headers) {
            size_t before = out->n;
            route_cc(&w, x, "CC");
            route_cc(&w, x, "BCC");
            route_saw_bcc = amqp_table_get(&w.headers, "BCC") != NULL;
            /* a queue reached twice (by two keys) gets the message once */
            for (size_t i = before; i < out->n; i++) {
                for (size_t k = 0; k < i; k++) {
                    if (out->q[k] == out->q[i]) {
                        out->q[i--] = out->q[--out->n];
                        break;
                    }
                }
            }
        }
    }
    amqp_pool_free(&w.pool);
}

vhost *
broker_vhost(amqp_bytes name)
{
    return map_get(&B.vhosts, name.data, name.len);
}

/* A persistent message is queued for the store (once, with an entry per
 * durable queue) before any queue can deliver it; one waiting no-ack
 * consumer takes it without a write. */
/* One set of scratch arrays per nesting level: dead-lettering publishes
 * from inside a publish (a length limit pushing a message out), and a
 * dead-letter target may do so again. Deeper than this is dropped. */
#define PUBLISH_DEPTH 4
typedef struct pub_scratch {
    route_result r;
    uint64_t *dseq;
    queue **durable;
    uint8_t *done;                 /* 1 delivered at once, 2 refused by a length limit */
    size_t cap;
} pub_scratch;
static pub_scratch scratch[PUBLISH_DEPTH];
static int depth;

const route_result *
vhost_last_route(void)
{
    return &scratch[0].r;
}

/* x-overflow reject-publish(-dlx): a full queue refuses the message. */
static bool
queue_refuses(const queue *q, const message *m)
{
    if (q->opts->overflow == QO_DROP_HEAD)
        return false;
    return (q->opts->max_length >= 0 && queue_ready(q) >= (uint64_t)q->opts->max_length) ||
           (q->opts->max_length_bytes >= 0 &&
            queue_ready_bytes(q) + m->body_size > (uint64_t)q->opts->max_length_bytes);
}

static uint64_t
publish_routed(vhost *vh, exchange *x, message *m, size_t *reached, bool *rejected)
{
    pub_scratch *ps = &scratch[depth++];
    route_result *r = &ps->r;
    vhost_route(vh, x, m, r);
    *reached = r->n;
    if (r->n == 0) {
        depth--;
        return 0;
    }
    x->st.now.publish_out++;
    /* BCC is for routing only: the queues get the message without it */
    message *stripped = NULL;
    if (route_saw_bcc && (stripped = message_without_header(m, "BCC")) != NULL)
        m = stripped;
    if (r->n > ps->cap) {
        ps->cap = r->n * 2;
        ps->dseq = realloc(ps->dseq, ps->cap * sizeof *ps->dseq);
        ps->durable = realloc(ps->durable, ps->cap * sizeof *ps->durable);
        ps->done = realloc(ps->done, ps->cap);
        if (!ps->dseq || !ps->durable || !ps->done)
            abort();
    }
    size_t nd = 0;
    memset(ps->done, 0, r->n);
    for (size_t i = 0; i < r->n; i++) {
        queue *q = r->q[i];
        queue_counts(q)->publish++;
        if (queue_refuses(q, m)) {
            ps->done[i] = 2;
            if (rejected)
                *rejected = true;
            if (q->opts->overflow == QO_REJECT_PUBLISH_DLX)
                queue_dead_letter(q, m, DL_MAXLEN);
        }
    }
    if (m->delivery_mode == 2) {
        for (size_t i = 0; i < r->n; i++) {
            queue *q = r->q[i];
            if (ps->done[i] || !q->durable || q->exclusive)
                continue;
            if (queue_deliver_noack(q, m)) {
                ps->done[i] = 1;
                continue;
            }
            ps->durable[nd] = q;
            ps->dseq[nd++] = ++q->next_seq;
        }
    }
    uint64_t batch = persist_publish(m, ps->durable, ps->dseq, nd);
    size_t di = 0;
    for (size_t i = 0; i < r->n; i++) {
        queue *q = r->q[i];
        if (ps->done[i])
            continue;
        if (di < nd && ps->durable[di] == q)
            queue_publish(q, m, ps->dseq[di++], QE_ON_DISK);
        else
            queue_publish(q, m, ++q->next_seq, 0);
    }
    message_unref(&stripped);
    depth--;
    return batch;
}

uint64_t
vhost_publish_ex(vhost *vh, exchange *x, message *m, size_t *reached, bool *rejected)
{
    *reached = 0;
    if (depth == PUBLISH_DEPTH)
        return 0;
    x->st.now.publish_in++;
    uint64_t batch;
    if (x->delay && delayed_hold(x, m, &batch)) {
        scratch[depth].r.n = 0;    /* reached no queue yet: vhost_last_route says so */
        return batch;
    }
    return publish_routed(vh, x, m, reached, rejected);
}

uint64_t
vhost_publish_released(vhost *vh, exchange *x, message *m, size_t *reached)
{
    *reached = 0;
    if (depth == PUBLISH_DEPTH)
        return 0;
    return publish_routed(vh, x, m, reached, NULL);
}

uint64_t
vhost_publish(vhost *vh, exchange *x, message *m, size_t *reached)
{
    return vhost_publish_ex(vh, x, m, reached, NULL);
}
