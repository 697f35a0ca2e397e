/*
 * Dead-lettering as RabbitMQ does it. A message a queue gives up on
 * (rejected or nacked without requeue, expired, pushed out by a length
 * limit) is republished to the queue's x-dead-letter-exchange with its
 * x-dead-letter-routing-key (else its own routing key), as a new message
 * whose headers say why: x-death, an array of tables {count, reason,
 * queue, time, exchange, routing-keys[, original-expiration]} with the
 * newest first and one entry per (queue, reason) whose count grows, and
 * x-first-death-queue/-reason/-exchange, set once. The expiration
 * property is removed so the message does not expire again elsewhere.
 *
 * Cycles: a message that comes back to a queue it was dead-lettered from,
 * without having been rejected by anyone on the way, is dropped (it would
 * circle for ever); one that was rejected somewhere is a retry loop the
 * application asked for, and goes on.
 */
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/log.h"

static const char *const reason_names[] = {
    [DL_REJECTED] = "rejected", [DL_EXPIRED] = "expired", [DL_MAXLEN] = "maxlen",
};

static bool
str_is(const amqp_value *v, const char *s)
{
    return v && (v->kind == 'S' || v->kind == 'x') && amqp_bytes_eq_cstr(v->v.bytes, s);
}

static const amqp_value *
field(const amqp_table *t, const char *key)
{
    return amqp_table_get(t, key);
}

void
queue_dead_letter(queue *q, message *m, enum dl_reason reason)
{
    if (!q->opts->has_dlx)
        return;
    vhost *vh = q->vh;
    exchange *x = q->opts->dlx.len ? vhost_exchange(vh, q->opts->dlx) : vh->default_ex;
    if (!x)
        return;                    /* RabbitMQ drops it, quietly */
    amqp_pool pool = { 0 };
    amqp_basic_props bp;
    if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, &pool) != AMQP_OK) {
        amqp_pool_free(&pool);
        return;
    }
    amqp_table old = (bp.flags & AMQP_BASIC_HEADERS) ? bp.headers : (amqp_table){ 0 };
    const amqp_value *deaths = field(&old, "x-death");
    const amqp_array *da = deaths && deaths->kind == 'A' ? &deaths->v.array : NULL;

    /* the cycle rule, and the entry this death updates */
    bool seen_here = false, rejected_somewhere = reason == DL_REJECTED;
    int64_t count = 0;
    uint32_t same = UINT32_MAX;
    for (uint32_t i = 0; da && i < da->n; i++) {
        if (da->items[i].kind != 'F')
            continue;
        const amqp_table *d = &da->items[i].v.table;
        const amqp_value *dq = field(d, "queue"), *dr = field(d, "reason");
        if (str_is(dr, "rejected"))
            rejected_somewhere = true;
        if (dq && (dq->kind == 'S') && amqp_bytes_eq(dq->v.bytes, q->name)) {
            seen_here = true;
            if (str_is(dr, reason_names[reason])) {
                same = i;
                const amqp_value *dc = field(d, "count");
                int64_t c;
                if (dc && amqp_value_int(dc, &c))
                    count = c;
            }
        }
    }
    if (seen_here && !rejected_somewhere) {
        log_debug("dropping a dead-lettering cycle at queue '%.*s'", (int)q->name.len,
                  q->name.data);
        amqp_pool_free(&pool);
        return;
    }

    /* the new x-death entry */
    amqp_bytes rk = q->opts->has_dlrk ? q->opts->dlrk : m->routing_key;
    amqp_value *keys = amqp_pool_alloc(&pool, sizeof *keys);
    amqp_field *e = amqp_pool_alloc(&pool, 7 * sizeof *e);
    if (!keys || !e) {
        amqp_pool_free(&pool);
        return;
    }
    *keys = (amqp_value){ .kind = 'S', .v.bytes = m->routing_key };
    uint32_t ne = 0;
    e[ne++] = (amqp_field){ AMQP_BYTES_LIT("count"), { .kind = 'l', .v.i = count + 1 } };
    e[ne++] = (amqp_field){ AMQP_BYTES_LIT("reason"),
                            { .kind = 'S', .v.bytes = amqp_cstr(reason_names[reason]) } };
    e[ne++] = (amqp_field){ AMQP_BYTES_LIT("queue"), { .kind = 'S', .v.bytes = q->name } };
    e[ne++] = (amqp_field){ AMQP_BYTES_LIT("time"),
                            { .kind = 'T', .v.u = (uint64_t)ev_now(B.loop) } };
    e[ne++] = (amqp_field){ AMQP_BYTES_LIT("exchange"), { .kind = 'S', .v.bytes = m->exchange } };
    e[ne++] = (amqp_field){ AMQP_BYTES_LIT("routing-keys"),
                            { .kind = 'A', .v.array = { 1, keys } } };
    if (bp.flags & AMQP_BASIC_EXPIRATION)
        e[ne++] = (amqp_field){ AMQP_BYTES_LIT("original-expiration"),
                                { .kind = 'S', .v.bytes = bp.expiration } };

    /* x-death: ours first, then the others (minus the one it replaces) */
    uint32_t nd = 1 + (da ? da->n : 0) - (same != UINT32_MAX);
    amqp_value *items = amqp_pool_alloc(&pool, nd * sizeof *items);
    amqp_field *h = amqp_pool_alloc(&pool, (old.n + 4) * sizeof *h);
    if (!items || !h) {
        amqp_pool_free(&pool);
        return;
    }
    uint32_t k = 0;
    items[k++] = (amqp_value){ .kind = 'F', .v.table = { ne, e } };
    for (uint32_t i = 0; da && i < da->n; i++)
        if (i != same)
            items[k++] = da->items[i];
    uint32_t nh = 0;
    bool first_set = false;
    for (uint32_t i = 0; i < old.n; i++) {
        if (amqp_bytes_eq_cstr(old.fields[i].key, "x-death"))
            continue;
        if (amqp_bytes_eq_cstr(old.fields[i].key, "x-first-death-reason"))
            first_set = true;
        h[nh++] = old.fields[i];
    }
    h[nh++] = (amqp_field){ AMQP_BYTES_LIT("x-death"), { .kind = 'A', .v.array = { k, items } } };
    if (!first_set) {
        h[nh++] = (amqp_field){ AMQP_BYTES_LIT("x-first-death-reason"),
                                { .kind = 'S', .v.bytes = amqp_cstr(reason_names[reason]) } };
        h[nh++] = (amqp_field){ AMQP_BYTES_LIT("x-first-death-queue"),
                                { .kind = 'S', .v.bytes = q->name } };
        h[nh++] = (amqp_field){ AMQP_BYTES_LIT("x-first-death-exchange"),
                                { .kind = 'S', .v.bytes = m->exchange } };
    }
    bp.headers = (amqp_table){ nh, h };
    bp.flags |= AMQP_BASIC_HEADERS;
    bp.flags &= (uint16_t)~AMQP_BASIC_EXPIRATION;

    size_t plen = amqp_props_size(&bp);
    uint8_t *props = malloc(plen ? plen : 1);
    if (!props) {
        amqp_pool_free(&pool);
        return;
    }
    amqp_props_encode(&bp, props);
    message *n = message_new(x->name, rk, bp.flags, props, (uint32_t)plen, m->body_size);
    free(props);
    amqp_pool_free(&pool);
    if (!n)
        return;
    memcpy(n->body, m->body, m->body_size);
    n->body_received = m->body_size;
    size_t reached;
    vhost_publish(vh, x, n, &reached);
    message_unref(&n);
}
