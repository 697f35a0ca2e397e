/*
 * Channels: the semantics of every method a client sends on a channel.
 * conn_gate has already checked state and framing, so each handler only
 * validates its own arguments and acts.
 *
 * Unacked deliveries live in an array sorted by delivery tag (tags only
 * grow); settling one leaves a hole that the front skips, so ack, nack and
 * reject are a binary search and multiple-acks a walk from the front.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker/auth.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/persist.h"

/* A confirm that is a basic.nack whatever the store does: a queue
 * refused the message (x-overflow reject-publish). */
#define CONFIRM_NACK UINT64_MAX

/* direct reply-to (below, with basic.cancel) */
#define REPLY_TO "amq.rabbitmq.reply-to"
static map reply_channels;         /* token -> channel */
static bool message_valid(channel *ch, message *m);
static bool reply_consume(channel *ch, const amqp_basic_consume *a);
static void reply_forget(channel *ch);
static message *reply_rewrite(channel *ch, message *m);
static bool reply_deliver(channel *from, exchange *x, message *m, bool *delivered);

#define BYTES_FMT "%.*s"
#define BYTES_ARG(b) (int)(b).len, (b).data


/* ---- helpers ------------------------------------------------------------- */

/* Every synchronous reply goes through conn_reply, which holds it back
 * while a durable definition the method wrote is not yet committed. */
static void
send_simple(channel *ch, uint32_t id)
{
    amqp_method m = { .id = id };
    conn_reply(ch->conn, ch->id, &m);
}

static bool
has_prefix(amqp_bytes b, const char *prefix)
{
    size_t n = strlen(prefix);
    return b.len >= n && memcmp(b.data, prefix, n) == 0;
}

/* "amq.gen-" or "amq.ctag-" followed by 22 URL-safe random characters. */
static amqp_bytes
random_name(const char *prefix, char *out, size_t cap)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[22];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        static uint64_t counter;
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (uint8_t)((++counter * 2654435761u) >> 7);
    }
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    for (size_t i = 0; i < sizeof rnd && n + 1 < cap; i++)
        out[n++] = alphabet[rnd[i] & 63];
    return (amqp_bytes){ out, (uint32_t)n };
}

static const char *
vname(const channel *ch)
{
    return ch->conn->vh->name.data;
}
#define VHOST_ARG(ch) (int)(ch)->conn->vh->name.len, vname(ch)

static bool
check_exclusive(channel *ch, queue *q, uint32_t method)
{
    if (q->exclusive && q->owner != ch->conn) {
        channel_error(ch, AMQP_RESOURCE_LOCKED, method,
                      "cannot obtain exclusive access to locked queue '" BYTES_FMT
                      "' in vhost '%.*s'. It could be originally declared on another "
                      "connection or the exclusive property value does not match that "
                      "of the original declaration.", BYTES_ARG(q->name), VHOST_ARG(ch));
        return false;
    }
    return true;
}

/* The queue named, or the last one declared on the channel for "". */
static queue *
find_queue(channel *ch, amqp_bytes name, uint32_t method)
{
    if (name.len == 0) {
        if (ch->last_queue.len == 0) {
            channel_error(ch, AMQP_NOT_FOUND, method, "no previously declared queue");
            return NULL;
        }
        name = ch->last_queue;
    }
    queue *q = vhost_queue(ch->conn->vh, name);
    if (!q) {
        channel_error(ch, AMQP_NOT_FOUND, method, "no queue '" BYTES_FMT "' in vhost '%.*s'",
                      BYTES_ARG(name), VHOST_ARG(ch));
        return NULL;
    }
    return q;
}

/* RabbitMQ's access control: configure to declare or delete, write to
 * publish to an exchange or bind into a queue, read to consume, get or
 * purge a queue or to bind from an exchange. A refusal is 403 on the
 * channel, worded as RabbitMQ words it. */
static bool
permitted(channel *ch, uint32_t method, enum auth_perm kind, const char *what, amqp_bytes name)
{
    if (auth_permitted(ch->conn->u, ch->conn->vh, kind, name))
        return true;
    char why[600];
    auth_refusal(why, sizeof why, what, name, ch->conn->vh, ch->conn->u);
    channel_error(ch, AMQP_ACCESS_REFUSED, method, "%s", why);
    return false;
}

/* Topic permissions, on topic exchanges only: write to publish with a
 * routing key, read to bind with one. */
static bool
topic_permitted(channel *ch, uint32_t method, const exchange *x, enum auth_perm kind,
                amqp_bytes key)
{
    if (x->type != ROUTE_TOPIC ||
        auth_topic_permitted(ch->conn->u, ch->conn->vh, x->name, kind, key, NULL))
        return true;
    channel_error(ch, AMQP_ACCESS_REFUSED, method,
                  "access to topic '" BYTES_FMT "' in exchange '" BYTES_FMT "' in vhost '%.*s' "
                  "refused for user '%s'", BYTES_ARG(key), BYTES_ARG(x->name), VHOST_ARG(ch),
                  ch->conn->user);
    return false;
}

/* The publish path asks once per exchange, not once per message: the
 * answer is kept until the exchange or the permissions change. */
static bool
write_permitted(channel *ch, uint32_t method, amqp_bytes ex, bool *topic_restricted)
{
    uint64_t gen = auth_generation();
    if (ch->perm_gen != gen || ch->perm_ex_len != ex.len ||
        memcmp(ch->perm_ex, ex.data, ex.len) != 0) {
        ch->perm_ok = auth_permitted(ch->conn->u, ch->conn->vh, AUTH_WRITE, ex);
        ch->perm_topic = auth_topic_restricted(ch->conn->u, ch->conn->vh, ex);
        ch->perm_ex_len = (uint8_t)ex.len;
        memcpy(ch->perm_ex, ex.data, ex.len);
        ch->perm_gen = gen;
    }
    *topic_restricted = ch->perm_topic;
    if (ch->perm_ok)
        return true;
    char why[600];
    auth_refusal(why, sizeof why, "exchange", ex, ch->conn->vh, ch->conn->u);
    channel_error(ch, AMQP_ACCESS_REFUSED, method, "%s", why);
    return false;
}

static exchange *
find_exchange(channel *ch, amqp_bytes name, uint32_t method)
{
    exchange *x = vhost_exchange(ch->conn->vh, name);
    if (!x)
        channel_error(ch, AMQP_NOT_FOUND, method, "no exchange '" BYTES_FMT "' in vhost '%.*s'",
                      BYTES_ARG(name), VHOST_ARG(ch));
    return x;
}

/* The encoded form of a decoded arguments table, for storage and for
 * comparing declarations. Returns a pointer into the conn's pool. */
static uint8_t *
encode_args(channel *ch, const amqp_table *t, uint32_t *len)
{
    if (t->n == 0) {
        *len = 0;
        return NULL;
    }
    size_t n = amqp_table_size(t);
    uint8_t *p = amqp_pool_alloc(&ch->conn->pool, n);
    if (!p)
        abort();
    amqp_table_encode(t, p);
    *len = (uint32_t)n;
    return p;
}

/* RabbitMQ's names for field types, as its inequivalence errors print them. */
static const char *
value_type_name(char kind)
{
    switch (kind) {
    case 't': return "bool";
    case 'b': return "byte";
    case 'B': return "unsignedbyte";
    case 's': case 'U': return "short";
    case 'u': return "unsignedshort";
    case 'I': return "signedint";
    case 'i': return "unsignedint";
    case 'l': case 'L': return "long";
    case 'f': return "float";
    case 'd': return "double";
    case 'D': return "decimal";
    case 'S': return "longstr";
    case 'x': return "binary";
    case 'T': return "timestamp";
    case 'F': return "table";
    case 'A': return "array";
    default: return "void";
    }
}

static void
value_format(const amqp_value *v, char *out, size_t cap)
{
    int64_t i;
    if (v->kind == 'S' || v->kind == 'x')
        snprintf(out, cap, "%.*s", (int)v->v.bytes.len, v->v.bytes.data);
    else if (v->kind == 't')
        snprintf(out, cap, "%s", v->v.boolean ? "true" : "false");
    else if (amqp_value_int(v, &i))
        snprintf(out, cap, "%lld", (long long)i);
    else if (v->kind == 'd')
        snprintf(out, cap, "%g", v->v.d);
    else if (v->kind == 'f')
        snprintf(out, cap, "%g", (double)v->v.f);
    else
        snprintf(out, cap, "%s", value_type_name(v->kind));
}

/* Compares the arguments RabbitMQ compares on redeclaration (and only
 * those: unknown x- arguments may differ). Closes the channel and returns
 * false on a difference. */
static bool
args_equivalent(channel *ch, uint32_t method, const char *what, amqp_bytes name,
                const uint8_t *cur_raw, uint32_t cur_len, const amqp_table *got,
                const char *const *keys)
{
    amqp_table cur = { 0, NULL };
    size_t off = 0;
    if (cur_len && amqp_table_decode(cur_raw, cur_len, &off, &cur, &ch->conn->pool) != AMQP_OK)
        cur.n = 0;
    for (; *keys; keys++) {
        const amqp_value *a = amqp_table_get(&cur, *keys);
        const amqp_value *b = amqp_table_get(got, *keys);
        if (!a && !b)
            continue;
        if (a && b && amqp_value_eq(a, b))
            continue;
        char av[128], bv[128], received[192], current[192];
        if (b) {
            value_format(b, bv, sizeof bv);
            if (a)
                snprintf(received, sizeof received, "'%s'", bv);
            else
                snprintf(received, sizeof received, "the value '%s' of type '%s'", bv,
                         value_type_name(b->kind));
        } else {
            snprintf(received, sizeof received, "none");
        }
        if (a) {
            value_format(a, av, sizeof av);
            if (b)
                snprintf(current, sizeof current, "'%s'", av);
            else
                snprintf(current, sizeof current, "the value '%s' of type '%s'", av,
                         value_type_name(a->kind));
        } else {
            snprintf(current, sizeof current, "none");
        }
        channel_error(ch, AMQP_PRECONDITION_FAILED, method,
                      "inequivalent arg '%s' for %s '" BYTES_FMT "' in vhost '%.*s': "
                      "received %s but current is %s", *keys, what, BYTES_ARG(name),
                      VHOST_ARG(ch), received, current);
        return false;
    }
    return true;
}

static const char *const queue_equiv_keys[] = {
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes",
    "x-max-priority", "x-overflow", "x-queue-mode", "x-single-active-consumer",
    "x-queue-type", "x-queue-version", NULL,
};
static const char *const exchange_equiv_keys[] = { "alternate-exchange", NULL };
static const char *const delayed_equiv_keys[] = { "alternate-exchange", "x-delayed-type", NULL };

/* ---- lifetime ------------------------------------------------------------ */

channel *
channel_new(conn *c, uint16_t id)
{
    channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        abort();
    ch->conn = c;
    ch->id = id;
    ch->flow_active = true;
    ch->next_tag = 1;
    return ch;
}

static delivery *
ua_push(channel *ch)
{
    ch->ua = buf_array_room(ch->ua, sizeof *ch->ua, &ch->ua_head, &ch->ua_len, &ch->ua_cap);
    return &ch->ua[ch->ua_len++];
}

static delivery *
ua_find(channel *ch, uint64_t tag)
{
    size_t lo = ch->ua_head, hi = ch->ua_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ch->ua[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ch->ua_len && ch->ua[lo].tag == tag && ch->ua[lo].msg)
        return &ch->ua[lo];
    return NULL;
}

enum settle { SETTLE_ACK, SETTLE_REQUEUE, SETTLE_DROP };

/* Queues touched while settling, to dispatch to afterwards. Holds a
 * reference on each. */
typedef struct touched {
    queue *q[16];
    size_t n;
    bool overflow;
} touched;

static void
touched_add(touched *t, queue *q)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->q[i] == q)
            return;
    if (t->n == 16) {
        t->overflow = true;
        return;
    }
    queue_ref(q);
    t->q[t->n++] = q;
}

static void
touched_dispatch(channel *ch, touched *t)
{
    for (size_t i = 0; i < t->n; i++) {
        queue_dispatch(t->q[i]);
        queue_unref(t->q[i]);
    }
    t->n = 0;
    if ((t->overflow || ch->global_prefetch || ch->capped) && !ch->released) {
        ch->capped = false;
        channel_kick(ch);
    }
}

static void
ua_settle(channel *ch, delivery *d, enum settle how, touched *t)
{
    queue *q = d->q;
    if (d->c) {
        d->c->unacked--;
        ch->consumer_unacked--;
        touched_add(t, d->c->q);
    }
    ch->ua_live--;
    q->unacked--;
    if (how == SETTLE_REQUEUE) {
        queue_requeue(q, d->msg, d->seq, d->flags);
        d->msg = NULL;
        touched_add(t, q);
    } else {
        if (how == SETTLE_ACK) {
            ch->st.now.ack++;
            queue_counts(q)->ack++;
            B.st.now.ack++;
        } else {
            queue_dead_letter(q, d->msg, DL_REJECTED);
        }
        queue_entry_forget(q, d->msg, d->seq, d->flags);
        message_unref(&d->msg);
    }
    queue_unref(q);
    while (ch->ua_head < ch->ua_len && !ch->ua[ch->ua_head].msg)
        ch->ua_head++;
    if (ch->ua_head == ch->ua_len)
        ch->ua_head = ch->ua_len = 0;
}

/* Settles tag (or everything up to it with multiple; tag 0 with multiple
 * means all). Returns false if the tag is unknown. */
static bool
settle_tags(channel *ch, uint64_t tag, bool multiple, enum settle how)
{
    touched t = { .n = 0 };
    if (!multiple) {
        delivery *d = ua_find(ch, tag);
        if (!d)
            return false;
        ua_settle(ch, d, how, &t);
    } else {
        if (tag != 0 && !ua_find(ch, tag))
            return false;
        for (size_t i = ch->ua_head; i < ch->ua_len; i++) {
            delivery *d = &ch->ua[i];
            if (tag != 0 && d->tag > tag)
                break;
            if (d->msg)
                ua_settle(ch, d, how, &t);
            if (ch->ua_len == 0)
                break;
        }
    }
    touched_dispatch(ch, &t);
    return true;
}

static void
channel_remove_consumer(channel *ch, consumer *c)
{
    for (size_t i = ch->ua_head; i < ch->ua_len; i++) {
        if (ch->ua[i].c == c) {
            ch->ua[i].c = NULL;
            ch->consumer_unacked--;
        }
    }
    map_del(&ch->consumers, c->tag.data, c->tag.len);
    consumer_remove(c);
}

void
channel_release(channel *ch)
{
    if (ch->released)
        return;
    ch->released = true;
    message_unref(&ch->pending);
    ch->content = CONTENT_NONE;
    for (size_t i = 0; i < ch->tx_npubs; i++)
        message_unref(&ch->tx_pubs[i].msg);
    free(ch->tx_pubs);
    free(ch->tx_ops);
    ch->tx_pubs = NULL;
    ch->tx_ops = NULL;
    ch->tx_npubs = ch->tx_nops = 0;

    /* Unacked messages go back to their queues, in order, before the
     * consumers go: an auto-delete queue that dies with its last consumer
     * then takes them with it, as in RabbitMQ. */
    touched t = { .n = 0 };
    for (size_t i = ch->ua_head; i < ch->ua_len; i++) {
        delivery *d = &ch->ua[i];
        if (!d->msg)
            continue;
        d->c = NULL;
        ch->ua_live--;
        d->q->unacked--;
        touched_add(&t, d->q);
        queue_requeue(d->q, d->msg, d->seq, d->flags);
        d->msg = NULL;
        queue_unref(d->q);
    }
    ch->ua_head = ch->ua_len = 0;
    ch->consumer_unacked = 0;
    while (ch->consumers.count) {
        map_iter it = map_first(&ch->consumers);
        consumer *c = it.e->value;
        map_del(&ch->consumers, c->tag.data, c->tag.len);
        consumer_remove(c);
    }
    for (size_t i = 0; i < t.n; i++) {
        queue_dispatch(t.q[i]);
        queue_unref(t.q[i]);
    }
}

void
channel_free(channel *ch)
{
    reply_forget(ch);
    channel_release(ch);
    auth_channel_close(ch->conn->u);
    persist_unwait_channel(ch);
    free(ch->cp);
    if (ch->confirm_dirty) {
        channel **p = &ch->conn->dirty;
        while (*p != ch)
            p = &(*p)->dirty_next;
        *p = ch->dirty_next;
    }
    map_free(&ch->consumers);
    free(ch->ua);
    free((char *)ch->last_queue.data);
    free(ch);
}

/* ---- delivery ------------------------------------------------------------- */

/* coney.unacked_max_per_channel: whatever the prefetch (0 is "no limit"
 * to AMQP), a channel holds at most this many unacked deliveries, so a
 * consumer that never acks cannot make the broker keep a whole queue in
 * memory for it. At the cap its consumers wait; an ack kicks them all. */
static bool
unacked_full(const channel *ch)
{
    uint32_t cap = B.cfg.unacked_max_per_channel;
    return cap && ch->ua_live >= cap;
}

/* The channel and the prefetch limits let c take one more delivery; its
 * connection's output aside (credit flow asks just this). */
static bool
consumer_has_credit(const consumer *c)
{
    const channel *ch = c->ch;
    if (ch->closing || ch->released || !ch->flow_active)
        return false;
    if (c->no_ack)
        return true;
    return !(c->prefetch && c->unacked >= c->prefetch) &&
           !(ch->global_prefetch && ch->consumer_unacked >= ch->global_prefetch) &&
           !unacked_full(ch);
}

static bool
consumer_ready(consumer *c)
{
    channel *ch = c->ch;
    if (!consumer_has_credit(c)) {
        if (!c->no_ack && unacked_full(ch))
            ch->capped = true;     /* the next ack kicks all its consumers */
        return false;
    }
    if (!conn_writable(ch->conn)) {
        ch->conn->blocked_by_output = true;
        return false;
    }
    return true;
}

/* A delivery of an entry that is on disk is recorded there (once), so a
 * restart marks the message redelivered; a no-ack one is forgotten. */
static uint32_t
deliver_disk_state(queue *q, message *m, uint64_t seq, uint32_t flags, bool no_ack)
{
    if (!(flags & QE_ON_DISK))
        return flags;
    if (no_ack) {
        queue_entry_forget(q, m, seq, flags);
        return flags & ~(uint32_t)QE_ON_DISK;
    }
    if (!(flags & QE_MARKED)) {
        persist_mark_delivered(q, m, seq);
        flags |= QE_MARKED;
    }
    return flags;
}

static void
consumer_deliver(consumer *c, message *m, uint64_t seq, uint32_t flags)
{
    channel *ch = c->ch;
    if (c->no_ack) {
        ch->st.now.deliver_no_ack++;
        queue_counts(c->q)->deliver_no_ack++;
        B.st.now.deliver_no_ack++;
    } else {
        ch->st.now.deliver++;
        queue_counts(c->q)->deliver++;
        B.st.now.deliver++;
    }
    if (flags & QE_REDELIVERED) {
        ch->st.now.redeliver++;
        queue_counts(c->q)->redeliver++;
        B.st.now.redeliver++;
    }
    uint64_t tag = ch->next_tag++;
    amqp_method d = { .id = AMQP_BASIC_DELIVER };
    d.a.basic_deliver.consumer_tag = c->tag;
    d.a.basic_deliver.delivery_tag = tag;
    d.a.basic_deliver.redelivered = flags & QE_REDELIVERED;
    d.a.basic_deliver.exchange = m->exchange;
    d.a.basic_deliver.routing_key = m->routing_key;
    conn_send_content(ch->conn, ch->id, &d, m);
    queue *q = c->q;
    flags = deliver_disk_state(q, m, seq, flags, c->no_ack);
    if (c->no_ack) {
        message_unref(&m);
        return;
    }
    delivery *u = ua_push(ch);
    *u = (delivery){ tag, m, q, c, seq, flags, ev_now(B.loop) };
    queue_ref(q);
    q->unacked++;
    c->unacked++;
    ch->consumer_unacked++;
    ch->ua_live++;
}

/* ---- delivery acknowledgement timeout ---------------------------------------- */

static ev_timer timeout_timer;

/* The oldest unsettled delivery to a consumer of this channel older than
 * its timeout (x-consumer-timeout of its queue, else consumer_timeout)
 * closes the channel with 406, as RabbitMQ does. Deliveries are in tag
 * order, so the first unsettled one is the oldest. */
static void
check_timeout(channel *ch, double now)
{
    for (size_t i = ch->ua_head; i < ch->ua_len; i++) {
        delivery *d = &ch->ua[i];
        if (!d->msg)
            continue;
        int64_t ms = d->q->opts->consumer_timeout >= 0 ? d->q->opts->consumer_timeout
                                                      : (int64_t)B.cfg.consumer_timeout;
        if (ms > 0 && (now - d->at) * 1000.0 > (double)ms)
            channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_ACK,
                          "delivery acknowledgement on channel %u timed out. Timeout value "
                          "used: %lld ms. This timeout value can be configured, see consumers "
                          "doc guide to learn more", ch->id, (long long)ms);
        return;
    }
}

static void
timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w; (void)revents;
    double now = ev_now(loop);
    for (conn *c = B.conns; c; c = c->next)
        for (uint32_t i = 0; i < c->nchannels; i++)
            if (c->channels[i] && !c->channels[i]->closing && c->channels[i]->ua_live)
                check_timeout(c->channels[i], now);
}

void
channel_timeouts_start(void)
{
    ev_timer_init(&timeout_timer, timeout_cb, 1.0, 1.0);
    ev_timer_start(B.loop, &timeout_timer);
}

void
channel_timeouts_stop(void)
{
    ev_timer_stop(B.loop, &timeout_timer);
}

void
channel_kick(channel *ch)
{
    for (map_iter it = map_first(&ch->consumers); it.e; map_next(&ch->consumers, &it)) {
        consumer *c = it.e->value;
        queue_dispatch(c->q);
    }
}

static void
consumer_cancelled(consumer *c)
{
    channel *ch = c->ch;
    if (ch->conn->cap_cancel_notify && !ch->closing) {
        amqp_method m = { .id = AMQP_BASIC_CANCEL };
        m.a.basic_cancel.consumer_tag = c->tag;
        m.a.basic_cancel.no_wait = true;
        conn_send_method(ch->conn, ch->id, &m);
    }
    channel_remove_consumer(ch, c);
}

const consumer_ops channel_consumer_ops = { consumer_ready, consumer_deliver, consumer_cancelled };

/* ---- publishing ------------------------------------------------------------ */

static void
mark_confirm(channel *ch)
{
    if (!ch->confirm_dirty) {
        ch->confirm_dirty = true;
        ch->dirty_next = ch->conn->dirty;
        ch->conn->dirty = ch;
    }
}

/* Records publish number seq as awaiting batch (0: nothing to wait for). */
static void
confirm_push(channel *ch, uint64_t seq, uint64_t batch)
{
    ch->cp = buf_array_room(ch->cp, sizeof *ch->cp, &ch->cp_head, &ch->cp_len, &ch->cp_cap);
    ch->cp[ch->cp_len++] = (confirm_pending){ seq, batch };
    mark_confirm(ch);
}

static void
send_confirm(channel *ch, uint32_t id, uint64_t tag)
{
    amqp_method m = { .id = id };
    if (id == AMQP_BASIC_ACK) {
        m.a.basic_ack.delivery_tag = tag;
        m.a.basic_ack.multiple = tag - ch->confirmed > 1;
    } else {
        m.a.basic_nack.delivery_tag = tag;
    }
    conn_send_method(ch->conn, ch->id, &m);
    ch->confirmed = tag;
}

/* Confirms go out in publish order: the longest prefix whose writes have
 * committed is acked with one multiple ack; a failed write is nacked. */
void
channel_flush_confirms(channel *ch)
{
    ch->confirm_dirty = false;
    if (ch->closing)
        return;
    uint64_t ack_upto = 0;
    while (ch->cp_head < ch->cp_len) {
        confirm_pending *p = &ch->cp[ch->cp_head];
        if (p->batch == CONFIRM_NACK) {
            if (ack_upto)
                send_confirm(ch, AMQP_BASIC_ACK, ack_upto);
            ack_upto = 0;
            send_confirm(ch, AMQP_BASIC_NACK, p->seq);
            ch->cp_head++;
            continue;
        }
        if (p->batch && !persist_committed(p->batch)) {
            persist_wait_channel(ch);
            break;
        }
        if (p->batch && persist_failed(p->batch)) {
            if (ack_upto)
                send_confirm(ch, AMQP_BASIC_ACK, ack_upto);
            ack_upto = 0;
            send_confirm(ch, AMQP_BASIC_NACK, p->seq);
        } else {
            ack_upto = p->seq;
            ch->st.now.confirm++;
            B.st.now.confirm++;
        }
        ch->cp_head++;
    }
    if (ch->cp_head == ch->cp_len)
        ch->cp_head = ch->cp_len = 0;
    if (ack_upto)
        send_confirm(ch, AMQP_BASIC_ACK, ack_upto);
}

void
channel_store_progress(channel *ch)
{
    if (ch->tx_wait) {
        if (!persist_committed(ch->tx_wait)) {
            persist_wait_channel(ch);
        } else if (persist_failed(ch->tx_wait)) {
            ch->tx_wait = 0;
            channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_TX_COMMIT,
                          "the store failed to commit the transaction");
            return;
        } else {
            ch->tx_wait = 0;
            send_simple(ch, AMQP_TX_COMMIT_OK);
        }
    }
    if (ch->cp_head < ch->cp_len)
        channel_flush_confirms(ch);
}

/* What RabbitMQ refuses in a message's properties, with its words: an
 * expiration that is not a non-negative integer, and CC or BCC headers
 * that are not arrays. 406 on the channel. */
static bool
message_valid(channel *ch, message *m)
{
    amqp_basic_props bp;
    amqp_pool_reset(&ch->conn->pool);
    if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, &ch->conn->pool) != AMQP_OK)
        return true;               /* the routing treats undecodable headers as none */
    if (bp.flags & AMQP_BASIC_EXPIRATION) {
        const char *why = NULL;
        bool digits = bp.expiration.len > 0;
        for (uint32_t i = 0; i < bp.expiration.len; i++)
            digits &= bp.expiration.data[i] >= '0' && bp.expiration.data[i] <= '9';
        char whybuf[300];
        if (!digits) {
            bool neg = bp.expiration.len > 1 && bp.expiration.data[0] == '-';
            for (uint32_t i = 1; neg && i < bp.expiration.len; i++)
                neg = bp.expiration.data[i] >= '0' && bp.expiration.data[i] <= '9';
            if (neg) {
                snprintf(whybuf, sizeof whybuf, "{value_negative,%.*s}",
                         (int)bp.expiration.len, bp.expiration.data);
                why = whybuf;
            } else {
                why = "no_integer";
            }
        }
        if (why) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, ch->pub_method,
                          "invalid expiration '" BYTES_FMT "': %s", BYTES_ARG(bp.expiration), why);
            return false;
        }
    }
    if (bp.flags & AMQP_BASIC_HEADERS) {
        static const char *const names[] = { "CC", "BCC" };
        for (int i = 0; i < 2; i++) {
            const amqp_value *v = amqp_table_get(&bp.headers, names[i]);
            if (!v || v->kind == 'A')
                continue;
            channel_error(ch, AMQP_PRECONDITION_FAILED, ch->pub_method,
                          "invalid message: {unacceptable_type_in_header,\"%s\",%s}", names[i],
                          v->kind == 'S' ? "longstr" : v->kind == 't' ? "bool" : "long");
            return false;
        }
    }
    return true;
}

/* The exchange a publish names: most publishers use one, so the last is
 * kept and compared by name rather than looked up. */
static exchange *
publish_exchange(channel *ch, amqp_bytes name)
{
    exchange *x = ch->pub_x;
    if (x && ch->pub_x_gen == B.exchange_gen && amqp_bytes_eq(x->name, name))
        return x;
    x = find_exchange(ch, name, ch->pub_method);
    ch->pub_x = x;
    ch->pub_x_gen = B.exchange_gen;
    return x;
}

/* Credit flow (conn_brake): true if a consumer of q has credit left
 * (prefetch, channel limits) and so waits only for its connection's
 * output to drain. Looks at no more than 64 consumers. */
static bool
output_bound(const queue *q)
{
    const consumer *k = q->consumers;
    for (uint32_t i = 0; i < q->nconsumers && i < 64; i++, k = k->next) {
        if (k->ch ? consumer_has_credit(k)
                  : !k->prefetch || k->unacked < k->prefetch)  /* a plugin's: its window */
            return true;
    }
    return false;
}

/* Routes m from x into its queues, returning it to the publisher if it
 * was mandatory and reached none. Returns the store batch its confirm
 * must wait for, 0, or CONFIRM_NACK. */
static uint64_t
publish_route(channel *ch, exchange *x, message *m, bool mandatory)
{
    size_t reached;
    bool rejected = false;
    /* a delayed exchange cannot know where a held message will go: like
     * RabbitMQ's plugin it never returns one */
    bool held = x->delay && delayed_header(m) > 0;
    uint64_t batch = vhost_publish_ex(ch->conn->vh, x, m, &reached, &rejected);
    if (rejected)
        batch = CONFIRM_NACK;
    if (reached && !ch->conn->brake_q) {
        const route_result *r = vhost_last_route();
        for (size_t i = 0; i < r->n; i++) {
            queue *q = r->q[i];
            if (queue_ready(q) > QUEUE_BACKLOG_HIGH && q->nconsumers && output_bound(q)) {
                conn_brake(ch->conn, q);
                break;
            }
        }
    }
    ch->st.now.publish++;
    B.st.now.publish++;
    if (held)
        return batch;
    if (reached == 0) {
        if (mandatory) {
            ch->st.now.return_unroutable++;
            B.st.now.return_unroutable++;
        } else {
            ch->st.now.drop_unroutable++;
            B.st.now.drop_unroutable++;
        }
    }
    if (reached == 0 && mandatory) {
        amqp_method ret = { .id = AMQP_BASIC_RETURN };
        ret.a.basic_return.reply_code = AMQP_NO_ROUTE;
        ret.a.basic_return.reply_text = AMQP_BYTES_LIT("NO_ROUTE");
        ret.a.basic_return.exchange = m->exchange;
        ret.a.basic_return.routing_key = m->routing_key;
        conn_send_content(ch->conn, ch->id, &ret, m);
    }
    return batch;
}

void
channel_content_done(channel *ch)
{
    message *m = ch->pending;
    ch->pending = NULL;
    if (((m->prop_flags & AMQP_BASIC_EXPIRATION) || message_may_have_cc(m)) &&
        !message_valid(ch, m)) {
        message_unref(&m);
        return;
    }
    bool topic_restricted;
    if (!write_permitted(ch, ch->pub_method, m->exchange, &topic_restricted)) {
        message_unref(&m);
        return;
    }
    exchange *x = publish_exchange(ch, m->exchange);
    if (!x || (topic_restricted &&
               !topic_permitted(ch, ch->pub_method, x, AUTH_WRITE, m->routing_key))) {
        message_unref(&m);
        return;
    }
    if (m->prop_flags & AMQP_BASIC_USER_ID) {
        /* RabbitMQ's validated user-id: a consumer can trust it. */
        amqp_basic_props bp;
        if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, &ch->conn->pool) != AMQP_OK ||
            !amqp_bytes_eq_cstr(bp.user_id, ch->conn->user)) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, ch->pub_method,
                          "user_id property set to '" BYTES_FMT "' but authenticated user was '%s'",
                          BYTES_ARG(bp.user_id), ch->conn->user);
            message_unref(&m);
            return;
        }
    }
    if (x->internal) {
        channel_error(ch, AMQP_ACCESS_REFUSED, ch->pub_method,
                      "cannot publish to internal exchange '" BYTES_FMT "' in vhost '%.*s'",
                      BYTES_ARG(x->name), VHOST_ARG(ch));
        message_unref(&m);
        return;
    }
    if ((m = reply_rewrite(ch, m)) == NULL)
        return;
    bool replied;
    if (reply_deliver(ch, x, m, &replied)) {
        if (!replied && ch->pub_mandatory) {
            amqp_method ret = { .id = AMQP_BASIC_RETURN };
            ret.a.basic_return.reply_code = AMQP_NO_ROUTE;
            ret.a.basic_return.reply_text = AMQP_BYTES_LIT("NO_ROUTE");
            ret.a.basic_return.exchange = m->exchange;
            ret.a.basic_return.routing_key = m->routing_key;
            conn_send_content(ch->conn, ch->id, &ret, m);
        }
        if (ch->confirm)
            confirm_push(ch, ++ch->publish_seq, 0);
        message_unref(&m);
        return;
    }
    if (ch->tx) {
        ch->tx_pubs = buf_array_room(ch->tx_pubs, sizeof *ch->tx_pubs, NULL, &ch->tx_npubs,
                                     &ch->tx_cap);
        ch->tx_pubs[ch->tx_npubs++] = (tx_pub){ m, ch->pub_mandatory };
        return;
    }
    uint64_t batch = publish_route(ch, x, m, ch->pub_mandatory);
    if (ch->confirm)
        confirm_push(ch, ++ch->publish_seq, batch);
    message_unref(&m);
}

/* ---- exchange class ---------------------------------------------------------- */

static void
exchange_declare(channel *ch, const amqp_exchange_declare *a)
{
    vhost *vh = ch->conn->vh;
    const uint32_t M = AMQP_EXCHANGE_DECLARE;
    if (a->passive) {
        if (a->exchange.len && !find_exchange(ch, a->exchange, M))
            return;
        if (!a->no_wait)
            send_simple(ch, AMQP_EXCHANGE_DECLARE_OK);
        return;
    }
    /* RabbitMQ's order: the type, the default exchange, then the reserved
     * prefix only when creating (an equivalent amq.* redeclare is fine). */
    enum route_type type;
    bool delayed = amqp_bytes_eq_cstr(a->type, DELAYED_TYPE);
    if (delayed && !delayed_type_arg(&a->arguments, &type)) {
        channel_error(ch, AMQP_PRECONDITION_FAILED, M, DELAYED_TYPE_ERROR);
        return;
    }
    if (!delayed && !route_type_parse(a->type, &type)) {
        channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                      "invalid exchange type '" BYTES_FMT "' for exchange '" BYTES_FMT
                      "' in vhost '%.*s'", BYTES_ARG(a->type), BYTES_ARG(a->exchange),
                      VHOST_ARG(ch));
        return;
    }
    if (a->exchange.len == 0) {
        channel_error(ch, AMQP_ACCESS_REFUSED, M, "operation not permitted on the default exchange");
        return;
    }
    if (!permitted(ch, M, AUTH_CONFIGURE, "exchange", a->exchange))
        return;
    uint32_t alen;
    uint8_t *args = encode_args(ch, &a->arguments, &alen);
    exchange *x = vhost_exchange(vh, a->exchange);
    if (x) {
        const char *arg = NULL;
        char got[64], cur[64];
        if ((x->delay != NULL) != delayed || (!delayed && x->type != type)) {
            arg = "type";
            snprintf(got, sizeof got, "%s", delayed ? DELAYED_TYPE : route_type_name(type));
            snprintf(cur, sizeof cur, "%s", exchange_type_name(x));
        } else if (x->durable != a->durable) {
            arg = "durable";
        } else if (x->auto_delete != a->auto_delete) {
            arg = "auto_delete";
        } else if (x->internal != a->internal) {
            arg = "internal";
        }
        if (arg) {
            if (strcmp(arg, "type") != 0) {
                bool g = strcmp(arg, "durable") == 0 ? a->durable
                       : strcmp(arg, "auto_delete") == 0 ? a->auto_delete : a->internal;
                snprintf(got, sizeof got, "%s", g ? "true" : "false");
                snprintf(cur, sizeof cur, "%s", g ? "false" : "true");
            }
            channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                              "inequivalent arg '%s' for exchange '" BYTES_FMT "' in vhost "
                          "'%.*s': received '%s' but current is '%s'", arg,
                          BYTES_ARG(a->exchange), VHOST_ARG(ch), got, cur);
            return;
        }
        if (!args_equivalent(ch, M, "exchange", x->name, x->args, x->args_len, &a->arguments,
                             delayed ? delayed_equiv_keys : exchange_equiv_keys))
            return;
    } else {
        if (has_prefix(a->exchange, "amq.")) {
            channel_error(ch, AMQP_ACCESS_REFUSED, M,
                          "exchange name '" BYTES_FMT "' contains reserved prefix 'amq.*'",
                          BYTES_ARG(a->exchange));
            return;
        }
        x = vhost_exchange_add(vh, a->exchange, type, a->durable, a->auto_delete,
                               a->internal, args, alen);
        if (delayed)
            delayed_attach(x);
        persist_exchange(x, true);
    }
    if (!a->no_wait)
        send_simple(ch, AMQP_EXCHANGE_DECLARE_OK);
}

static void
exchange_delete(channel *ch, const amqp_exchange_delete *a)
{
    const uint32_t M = AMQP_EXCHANGE_DELETE;
    if (a->exchange.len == 0) {
        channel_error(ch, AMQP_ACCESS_REFUSED, M, "operation not permitted on the default exchange");
        return;
    }
    if (!permitted(ch, M, AUTH_CONFIGURE, "exchange", a->exchange))
        return;
    exchange *x = vhost_exchange(ch->conn->vh, a->exchange);
    if (x && x->builtin) {
        channel_error(ch, AMQP_ACCESS_REFUSED, M,
                      "deletion of system exchange '" BYTES_FMT "' in vhost '%.*s' not allowed",
                      BYTES_ARG(a->exchange), VHOST_ARG(ch));
        return;
    }
    if (x) {
        if (a->if_unused && route_count(x->rt) > 0) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                          "exchange '" BYTES_FMT "' in vhost '%.*s' in use",
                          BYTES_ARG(a->exchange), VHOST_ARG(ch));
            return;
        }
        vhost_exchange_delete(ch->conn->vh, x);
    }
    if (!a->no_wait)
        send_simple(ch, AMQP_EXCHANGE_DELETE_OK);
}

static void
exchange_bind(channel *ch, const amqp_exchange_bind *a, bool bind)
{
    const uint32_t M = bind ? AMQP_EXCHANGE_BIND : AMQP_EXCHANGE_UNBIND;
    if (a->source.len == 0 || a->destination.len == 0) {
        channel_error(ch, AMQP_ACCESS_REFUSED, M, "operation not permitted on the default exchange");
        return;
    }
    if (!permitted(ch, M, AUTH_WRITE, "exchange", a->destination) ||
        !permitted(ch, M, AUTH_READ, "exchange", a->source))
        return;
    exchange *dst = find_exchange(ch, a->destination, M);
    if (!dst)
        return;
    exchange *src = find_exchange(ch, a->source, M);
    if (!src || !topic_permitted(ch, M, src, AUTH_READ, a->routing_key))
        return;
    uint32_t alen;
    uint8_t *args = encode_args(ch, &a->arguments, &alen);
    if (bind) {
        int rc = vhost_bind(ch->conn->vh, src, dst, a->routing_key, args, alen);
        if (rc < 0) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, M, "invalid binding arguments");
            return;
        }
    } else {
        vhost_unbind(ch->conn->vh, src, dst, a->routing_key, args, alen);
    }
    if (!a->no_wait)
        send_simple(ch, bind ? AMQP_EXCHANGE_BIND_OK : AMQP_EXCHANGE_UNBIND_OK);
}

/* ---- queue class ------------------------------------------------------------- */

static void
set_last_queue(channel *ch, amqp_bytes name)
{
    free((char *)ch->last_queue.data);
    char *d = malloc(name.len ? name.len : 1);
    if (!d)
        abort();
    memcpy(d, name.data, name.len);
    ch->last_queue = (amqp_bytes){ d, name.len };
}

static void
queue_declare(channel *ch, const amqp_queue_declare *a)
{
    const uint32_t M = AMQP_QUEUE_DECLARE;
    vhost *vh = ch->conn->vh;
    char genbuf[64];
    amqp_bytes name = a->queue;
    queue *q = NULL;
    if (a->passive && has_prefix(name, REPLY_TO) &&
        (name.len == sizeof REPLY_TO - 1 ||
         (name.data[sizeof REPLY_TO - 1] == '.' &&
          map_get(&reply_channels, name.data + sizeof REPLY_TO,
                  name.len - (uint32_t)sizeof REPLY_TO)))) {
        /* the direct reply-to pseudo-queue and the names it hands out */
        if (!a->no_wait) {
            amqp_method ok = { .id = AMQP_QUEUE_DECLARE_OK };
            ok.a.queue_declare_ok.queue = name;
            conn_reply(ch->conn, ch->id, &ok);
        }
        return;
    }
    if (a->passive) {
        q = find_queue(ch, name, M);
        if (!q || !check_exclusive(ch, q, M))
            return;
    } else {
        if (name.len == 0) {
            do
                name = random_name("amq.gen-", genbuf, sizeof genbuf);
            while (vhost_queue(vh, name));
        } else if (has_prefix(name, "amq.")) {
            channel_error(ch, AMQP_ACCESS_REFUSED, M,
                          "queue name '" BYTES_FMT "' contains reserved prefix 'amq.*'",
                          BYTES_ARG(name));
            return;
        }
        /* a server-named queue is checked under its amq.gen-* name, as
         * RabbitMQ does */
        if (!permitted(ch, M, AUTH_CONFIGURE, "queue", name))
            return;
        queue_opts opts;
        char why[512];
        if (queue_opts_parse(&a->arguments, name, vh->name, &opts, why, sizeof why)) {
            queue_opts_free(&opts);
            channel_error(ch, AMQP_PRECONDITION_FAILED, M, "%s", why);
            return;
        }
        queue_opts_free(&opts);
        uint32_t alen;
        uint8_t *args = encode_args(ch, &a->arguments, &alen);
        q = vhost_queue(vh, name);
        if (q) {
            if (!check_exclusive(ch, q, M))
                return;
            const char *arg = NULL;
            bool got = false;
            if (q->durable != a->durable) { arg = "durable"; got = a->durable; }
            else if (q->exclusive != a->exclusive) { arg = "exclusive"; got = a->exclusive; }
            else if (q->auto_delete != a->auto_delete) { arg = "auto_delete"; got = a->auto_delete; }
            if (arg) {
                channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                              "inequivalent arg '%s' for queue '" BYTES_FMT "' in vhost '%.*s': "
                              "received '%s' but current is '%s'", arg, BYTES_ARG(name),
                              VHOST_ARG(ch), got ? "true" : "false", got ? "false" : "true");
                return;
            }
            if (!args_equivalent(ch, M, "queue", q->name, q->args, q->args_len,
                                 &a->arguments, queue_equiv_keys))
                return;
        } else if (vh->max_queues >= 0 && vh->queues.count >= (uint64_t)vh->max_queues) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                          "cannot declare queue '" BYTES_FMT "': queue limit in vhost '%.*s' "
                          "(%lld) is reached", BYTES_ARG(name), VHOST_ARG(ch),
                          (long long)vh->max_queues);
            return;
        } else {
            q = queue_new(vh, name, a->durable, a->exclusive, a->auto_delete,
                          a->exclusive ? ch->conn : NULL, args, alen);
            vhost_queue_add(vh, q);
            persist_queue(q, true);
        }
    }
    set_last_queue(ch, q->name);
    queue_touch(q);
    if (!a->no_wait) {
        amqp_method ok = { .id = AMQP_QUEUE_DECLARE_OK };
        ok.a.queue_declare_ok.queue = q->name;
        ok.a.queue_declare_ok.message_count = queue_ready(q);
        ok.a.queue_declare_ok.consumer_count = q->nconsumers;
        conn_reply(ch->conn, ch->id, &ok);
    }
}

static void
queue_bind(channel *ch, amqp_bytes qname, amqp_bytes xname, amqp_bytes key,
           const amqp_table *arguments, bool no_wait, bool bind)
{
    const uint32_t M = bind ? AMQP_QUEUE_BIND : AMQP_QUEUE_UNBIND;
    queue *q = find_queue(ch, qname, M);
    if (!q)
        return;
    if (qname.len == 0 && key.len == 0)
        key = q->name;             /* the spec's rule for an empty queue name */
    if (xname.len == 0) {
        channel_error(ch, AMQP_ACCESS_REFUSED, M, "operation not permitted on the default exchange");
        return;
    }
    if (!permitted(ch, M, AUTH_WRITE, "queue", q->name) ||
        !permitted(ch, M, AUTH_READ, "exchange", xname))
        return;
    exchange *x = find_exchange(ch, xname, M);
    if (!x || !check_exclusive(ch, q, M) || !topic_permitted(ch, M, x, AUTH_READ, key))
        return;
    uint32_t alen;
    uint8_t *args = encode_args(ch, arguments, &alen);
    if (bind) {
        if (vhost_bind(ch->conn->vh, x, q, key, args, alen) < 0) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, M, "invalid binding arguments");
            return;
        }
    } else {
        vhost_unbind(ch->conn->vh, x, q, key, args, alen);
    }
    if (!no_wait)
        send_simple(ch, bind ? AMQP_QUEUE_BIND_OK : AMQP_QUEUE_UNBIND_OK);
}

static void
queue_purge_method(channel *ch, const amqp_queue_purge *a)
{
    queue *q = find_queue(ch, a->queue, AMQP_QUEUE_PURGE);
    if (!q || !check_exclusive(ch, q, AMQP_QUEUE_PURGE) ||
        !permitted(ch, AMQP_QUEUE_PURGE, AUTH_READ, "queue", q->name))
        return;
    uint32_t n = queue_purge(q);
    if (!a->no_wait) {
        amqp_method ok = { .id = AMQP_QUEUE_PURGE_OK };
        ok.a.queue_purge_ok.message_count = n;
        conn_send_method(ch->conn, ch->id, &ok);
    }
}

static void
queue_delete_method(channel *ch, const amqp_queue_delete *a)
{
    const uint32_t M = AMQP_QUEUE_DELETE;
    amqp_bytes name = a->queue.len ? a->queue : ch->last_queue;
    if (!permitted(ch, M, AUTH_CONFIGURE, "queue", name))
        return;
    queue *q = vhost_queue(ch->conn->vh, name);
    uint32_t n = 0;
    if (q) {
        if (!check_exclusive(ch, q, M))
            return;
        if (a->if_unused && q->nconsumers) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                          "queue '" BYTES_FMT "' in vhost '%.*s' in use",
                          BYTES_ARG(q->name), VHOST_ARG(ch));
            return;
        }
        if (a->if_empty && queue_ready(q)) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                          "queue '" BYTES_FMT "' in vhost '%.*s' not empty",
                          BYTES_ARG(q->name), VHOST_ARG(ch));
            return;
        }
        n = vhost_queue_delete(ch->conn->vh, q);
    }
    if (!a->no_wait) {
        amqp_method ok = { .id = AMQP_QUEUE_DELETE_OK };
        ok.a.queue_delete_ok.message_count = n;
        conn_reply(ch->conn, ch->id, &ok);
    }
}

/* ---- basic class -------------------------------------------------------------- */

static void
basic_qos(channel *ch, const amqp_basic_qos *a)
{
    if (a->prefetch_size != 0) {
        conn_error(ch->conn, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_QOS,
                   "prefetch_size!=0 (%u)", a->prefetch_size);
        return;
    }
    if (a->global)
        ch->global_prefetch = a->prefetch_count;
    else
        ch->prefetch = a->prefetch_count;
    send_simple(ch, AMQP_BASIC_QOS_OK);
    channel_kick(ch);
}

static void
basic_consume(channel *ch, const amqp_basic_consume *a)
{
    const uint32_t M = AMQP_BASIC_CONSUME;
    if (amqp_bytes_eq_cstr(a->queue, REPLY_TO)) {
        reply_consume(ch, a);
        return;
    }
    queue *q = find_queue(ch, a->queue, M);
    if (!q || !check_exclusive(ch, q, M) || !permitted(ch, M, AUTH_READ, "queue", q->name))
        return;
    char tagbuf[64];
    amqp_bytes tag = a->consumer_tag;
    if (tag.len == 0) {
        do
            tag = random_name("amq.ctag-", tagbuf, sizeof tagbuf);
        while (map_get(&ch->consumers, tag.data, tag.len));
    } else if (map_get(&ch->consumers, tag.data, tag.len)) {
        conn_error(ch->conn, AMQP_NOT_ALLOWED, M, "attempt to reuse consumer tag '" BYTES_FMT "'",
                   BYTES_ARG(tag));
        return;
    }
    if (B.cfg.consumer_max_per_channel && ch->consumers.count >= B.cfg.consumer_max_per_channel) {
        /* RabbitMQ's consumer_max_per_channel, its code and text */
        conn_error(ch->conn, AMQP_NOT_ALLOWED, M, "reached maximum (%u) of consumers per channel",
                   B.cfg.consumer_max_per_channel);
        return;
    }
    bool locked = q->nconsumers && (a->exclusive || q->consumers->exclusive);
    if (locked) {
        channel_error(ch, AMQP_ACCESS_REFUSED, M,
                      "queue '" BYTES_FMT "' in vhost '%.*s' in exclusive use",
                      BYTES_ARG(q->name), VHOST_ARG(ch));
        return;
    }
    const amqp_value *pv = amqp_table_get(&a->arguments, "x-priority");
    int64_t prio = 0;
    if (pv && !amqp_value_int(pv, &prio)) {
        channel_error(ch, AMQP_PRECONDITION_FAILED, M,
                      "invalid arg 'x-priority' for queue '" BYTES_FMT "' in vhost '%.*s'",
                      BYTES_ARG(q->name), VHOST_ARG(ch));
        return;
    }
    consumer *c = consumer_add(q, &channel_consumer_ops, ch, tag, a->no_ack, a->exclusive,
                               ch->prefetch);
    c->ch = ch;
    c->priority = (int32_t)(prio > INT32_MAX ? INT32_MAX : prio < INT32_MIN ? INT32_MIN : prio);
    if (c->priority)
        q->nprioritised++;
    map_put(&ch->consumers, c->tag.data, c->tag.len, c);
    if (!a->no_wait) {
        amqp_method ok = { .id = AMQP_BASIC_CONSUME_OK };
        ok.a.basic_consume_ok.consumer_tag = c->tag;
        conn_send_method(ch->conn, ch->id, &ok);
    }
    queue_dispatch(q);
}

/* ---- direct reply-to ------------------------------------------------------------
 * A channel that consumes the pseudo-queue amq.rabbitmq.reply-to (no-ack
 * only) gets a token; a message it publishes with reply_to set to that
 * name leaves with reply_to "amq.rabbitmq.reply-to.<token>", and whatever
 * is published to the default exchange with that routing key is handed
 * straight to the channel: an RPC reply needs no queue (RabbitMQ's
 * feature, same names and refusals). */

static bool
reply_consume(channel *ch, const amqp_basic_consume *a)
{
    const uint32_t M = AMQP_BASIC_CONSUME;
    if (!a->no_ack) {
        channel_error(ch, AMQP_PRECONDITION_FAILED, M, "reply consumer cannot acknowledge");
        return false;
    }
    if (ch->reply_tag[0]) {
        channel_error(ch, AMQP_PRECONDITION_FAILED, M, "reply consumer already set");
        return false;
    }
    char tagbuf[64];
    amqp_bytes tag = a->consumer_tag.len ? a->consumer_tag
                                         : random_name("amq.ctag-", tagbuf, sizeof tagbuf);
    snprintf(ch->reply_tag, sizeof ch->reply_tag, "%.*s", (int)tag.len, tag.data);
    amqp_bytes tok = random_name("g", ch->reply_token, sizeof ch->reply_token - 1);
    ch->reply_token[tok.len] = 0;
    map_put(&reply_channels, tok.data, tok.len, ch);
    if (!a->no_wait) {
        amqp_method ok = { .id = AMQP_BASIC_CONSUME_OK };
        ok.a.basic_consume_ok.consumer_tag = amqp_cstr(ch->reply_tag);
        conn_send_method(ch->conn, ch->id, &ok);
    }
    return true;
}

static void
reply_forget(channel *ch)
{
    if (!ch->reply_tag[0])
        return;
    map_del(&reply_channels, ch->reply_token, (uint32_t)strlen(ch->reply_token));
    ch->reply_tag[0] = ch->reply_token[0] = 0;
}

/* A message published with reply_to amq.rabbitmq.reply-to: rewritten to
 * this channel's name, or refused (406) if the channel does not consume
 * replies. Returns the message to publish (the same or a new one) or
 * NULL after the refusal. Takes over *mp's reference. */
static message *
reply_rewrite(channel *ch, message *m)
{
    if (!(m->prop_flags & AMQP_BASIC_REPLY_TO))
        return m;
    amqp_pool pool = { 0 };
    amqp_basic_props bp;
    if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, &pool) != AMQP_OK ||
        !amqp_bytes_eq_cstr(bp.reply_to, REPLY_TO)) {
        amqp_pool_free(&pool);
        return m;
    }
    if (!ch->reply_tag[0]) {
        amqp_pool_free(&pool);
        channel_error(ch, AMQP_PRECONDITION_FAILED, ch->pub_method,
                      "fast reply consumer does not exist");
        message_unref(&m);
        return NULL;
    }
    char name[80];
    snprintf(name, sizeof name, REPLY_TO ".%s", ch->reply_token);
    bp.reply_to = amqp_cstr(name);
    size_t plen = amqp_props_size(&bp);
    uint8_t *props = malloc(plen ? plen : 1);
    if (!props)
        abort();
    amqp_props_encode(&bp, props);
    message *n = message_new(m->exchange, m->routing_key, bp.flags, props, (uint32_t)plen,
                             m->body_size);
    free(props);
    amqp_pool_free(&pool);
    if (!n)
        abort();
    memcpy(n->body, m->body, m->body_size);
    n->body_received = m->body_size;
    message_unref(&m);
    return n;
}

/* A reply: published to the default exchange with an
 * amq.rabbitmq.reply-to.<token> key. True if it was one (delivered to
 * its channel, or dropped if that channel is gone). */
static bool
reply_deliver(channel *from, exchange *x, message *m, bool *delivered)
{
    *delivered = false;
    if (x != from->conn->vh->default_ex || m->routing_key.len <= sizeof REPLY_TO ||
        memcmp(m->routing_key.data, REPLY_TO ".", sizeof REPLY_TO) != 0)
        return false;
    const char *tok = m->routing_key.data + sizeof REPLY_TO;
    channel *to = map_get(&reply_channels, tok, m->routing_key.len - (uint32_t)sizeof REPLY_TO);
    if (!to || to->closing || to->released)
        return true;
    amqp_method d = { .id = AMQP_BASIC_DELIVER };
    d.a.basic_deliver.consumer_tag = amqp_cstr(to->reply_tag);
    d.a.basic_deliver.delivery_tag = to->next_tag++;
    d.a.basic_deliver.exchange = m->exchange;
    d.a.basic_deliver.routing_key = m->routing_key;
    conn_send_content(to->conn, to->id, &d, m);
    *delivered = true;
    return true;
}

static void
basic_cancel(channel *ch, const amqp_basic_cancel *a)
{
    if (ch->reply_tag[0] && amqp_bytes_eq_cstr(a->consumer_tag, ch->reply_tag)) {
        if (!a->no_wait) {
            amqp_method ok = { .id = AMQP_BASIC_CANCEL_OK };
            ok.a.basic_cancel_ok.consumer_tag = a->consumer_tag;
            conn_send_method(ch->conn, ch->id, &ok);
        }
        reply_forget(ch);
        return;
    }
    /* Reply before removing: the tag's bytes may belong to the consumer. */
    if (!a->no_wait) {
        amqp_method ok = { .id = AMQP_BASIC_CANCEL_OK };
        ok.a.basic_cancel_ok.consumer_tag = a->consumer_tag;
        conn_send_method(ch->conn, ch->id, &ok);
    }
    consumer *c = map_get(&ch->consumers, a->consumer_tag.data, a->consumer_tag.len);
    if (c)
        channel_remove_consumer(ch, c);
}

static void
basic_get(channel *ch, const amqp_basic_get *a)
{
    queue *q = find_queue(ch, a->queue, AMQP_BASIC_GET);
    if (!q || !check_exclusive(ch, q, AMQP_BASIC_GET) ||
        !permitted(ch, AMQP_BASIC_GET, AUTH_READ, "queue", q->name))
        return;
    qentry e;
    if ((!a->no_ack && unacked_full(ch)) || !queue_pop(q, &e)) {
        send_simple(ch, AMQP_BASIC_GET_EMPTY);
        return;
    }
    uint64_t tag = ch->next_tag++;
    amqp_method ok = { .id = AMQP_BASIC_GET_OK };
    ok.a.basic_get_ok.delivery_tag = tag;
    ok.a.basic_get_ok.redelivered = e.flags & QE_REDELIVERED;
    ok.a.basic_get_ok.exchange = e.msg->exchange;
    ok.a.basic_get_ok.routing_key = e.msg->routing_key;
    ok.a.basic_get_ok.message_count = queue_ready(q);
    conn_send_content(ch->conn, ch->id, &ok, e.msg);
    if (a->no_ack) {
        ch->st.now.get_no_ack++;
        queue_counts(q)->get_no_ack++;
        B.st.now.get_no_ack++;
    } else {
        ch->st.now.get++;
        queue_counts(q)->get++;
        B.st.now.get++;
    }
    if (e.flags & QE_REDELIVERED) {
        ch->st.now.redeliver++;
        queue_counts(q)->redeliver++;
        B.st.now.redeliver++;
    }
    e.flags = deliver_disk_state(q, e.msg, e.seq, e.flags, a->no_ack);
    if (a->no_ack) {
        message_unref(&e.msg);
        return;
    }
    delivery *u = ua_push(ch);
    *u = (delivery){ tag, e.msg, q, NULL, e.seq, e.flags, ev_now(B.loop) };
    queue_ref(q);
    q->unacked++;
    ch->ua_live++;
}

static void
tx_record(channel *ch, uint8_t kind, uint64_t tag, bool multiple, bool requeue)
{
    ch->tx_ops = buf_array_room(ch->tx_ops, sizeof *ch->tx_ops, NULL, &ch->tx_nops,
                                &ch->tx_opcap);
    ch->tx_ops[ch->tx_nops++] = (tx_op){ kind, multiple, requeue, tag };
}

static void
basic_settle(channel *ch, uint32_t method, uint8_t kind, uint64_t tag, bool multiple,
             bool requeue)
{
    bool known = (multiple && tag == 0) || ua_find(ch, tag);
    if (!known) {
        channel_error(ch, AMQP_PRECONDITION_FAILED, method, "unknown delivery tag %llu",
                      (unsigned long long)tag);
        return;
    }
    if (ch->tx) {
        tx_record(ch, kind, tag, multiple, requeue);
        return;
    }
    enum settle how = kind == TX_ACK ? SETTLE_ACK : requeue ? SETTLE_REQUEUE : SETTLE_DROP;
    settle_tags(ch, tag, multiple, how);
}

static void
basic_recover(channel *ch, bool requeue, bool async)
{
    if (!requeue) {
        conn_error(ch->conn, AMQP_NOT_IMPLEMENTED,
                   async ? AMQP_BASIC_RECOVER_ASYNC : AMQP_BASIC_RECOVER, "requeue=false");
        return;
    }
    if (ch->ua_live)
        settle_tags(ch, 0, true, SETTLE_REQUEUE);
    if (!async)
        send_simple(ch, AMQP_BASIC_RECOVER_OK);
}

/* ---- confirm and tx -------------------------------------------------------------- */

/* Returns the store batch the commit-ok must wait for, or 0. */
static uint64_t
tx_commit(channel *ch)
{
    uint64_t batch = 0;
    for (size_t i = 0; i < ch->tx_npubs; i++) {
        message *m = ch->tx_pubs[i].msg;
        exchange *x = vhost_exchange(ch->conn->vh, m->exchange);
        if (x) {
            uint64_t b = publish_route(ch, x, m, ch->tx_pubs[i].mandatory);
            if (b && b != CONFIRM_NACK)
                batch = b;
        }
        message_unref(&ch->tx_pubs[i].msg);
    }
    ch->tx_npubs = 0;
    for (size_t i = 0; i < ch->tx_nops; i++) {
        tx_op *op = &ch->tx_ops[i];
        enum settle how = op->kind == TX_ACK ? SETTLE_ACK
                        : op->requeue ? SETTLE_REQUEUE : SETTLE_DROP;
        settle_tags(ch, op->tag, op->multiple, how);
    }
    if (ch->tx_nops && B.store)
        batch = persist_batch();   /* acks of persistent messages were written */
    ch->tx_nops = 0;
    return batch;
}

static void
tx_rollback(channel *ch)
{
    for (size_t i = 0; i < ch->tx_npubs; i++)
        message_unref(&ch->tx_pubs[i].msg);
    ch->tx_npubs = 0;
    ch->tx_nops = 0;
}

/* ---- dispatch ---------------------------------------------------------------------- */

void
channel_method(channel *ch, const amqp_method *m)
{
    const uint32_t id = m->id;
    switch (id) {
    case AMQP_CHANNEL_FLOW:
        /* RabbitMQ never let clients pause deliveries this way: consumers
         * use basic.qos or cancel instead. */
        if (!m->a.channel_flow.active) {
            conn_error(ch->conn, AMQP_NOT_IMPLEMENTED, id, "active=false");
            return;
        }
        {
            amqp_method ok = { .id = AMQP_CHANNEL_FLOW_OK };
            ok.a.channel_flow_ok.active = true;
            conn_send_method(ch->conn, ch->id, &ok);
        }
        return;
    case AMQP_CHANNEL_FLOW_OK:
        return;
    case AMQP_ACCESS_REQUEST: {
        amqp_method ok = { .id = AMQP_ACCESS_REQUEST_OK };
        ok.a.access_request_ok.reserved_1 = 1;
        conn_send_method(ch->conn, ch->id, &ok);
        return;
    }
    case AMQP_EXCHANGE_DECLARE:
        exchange_declare(ch, &m->a.exchange_declare);
        return;
    case AMQP_EXCHANGE_DELETE:
        exchange_delete(ch, &m->a.exchange_delete);
        return;
    case AMQP_EXCHANGE_BIND:
        exchange_bind(ch, &m->a.exchange_bind, true);
        return;
    case AMQP_EXCHANGE_UNBIND:
        exchange_bind(ch, &m->a.exchange_unbind, false);
        return;
    case AMQP_QUEUE_DECLARE:
        queue_declare(ch, &m->a.queue_declare);
        return;
    case AMQP_QUEUE_BIND: {
        const amqp_queue_bind *a = &m->a.queue_bind;
        queue_bind(ch, a->queue, a->exchange, a->routing_key, &a->arguments, a->no_wait, true);
        return;
    }
    case AMQP_QUEUE_UNBIND: {
        const amqp_queue_unbind *a = &m->a.queue_unbind;
        queue_bind(ch, a->queue, a->exchange, a->routing_key, &a->arguments, false, false);
        return;
    }
    case AMQP_QUEUE_PURGE:
        queue_purge_method(ch, &m->a.queue_purge);
        return;
    case AMQP_QUEUE_DELETE:
        queue_delete_method(ch, &m->a.queue_delete);
        return;
    case AMQP_BASIC_QOS:
        basic_qos(ch, &m->a.basic_qos);
        return;
    case AMQP_BASIC_CONSUME:
        basic_consume(ch, &m->a.basic_consume);
        return;
    case AMQP_BASIC_CANCEL:
        basic_cancel(ch, &m->a.basic_cancel);
        return;
    case AMQP_BASIC_GET:
        basic_get(ch, &m->a.basic_get);
        return;
    case AMQP_BASIC_ACK:
        basic_settle(ch, id, TX_ACK, m->a.basic_ack.delivery_tag, m->a.basic_ack.multiple, false);
        return;
    case AMQP_BASIC_REJECT:
        basic_settle(ch, id, TX_REJECT, m->a.basic_reject.delivery_tag, false,
                     m->a.basic_reject.requeue);
        return;
    case AMQP_BASIC_NACK:
        basic_settle(ch, id, TX_NACK, m->a.basic_nack.delivery_tag, m->a.basic_nack.multiple,
                     m->a.basic_nack.requeue);
        return;
    case AMQP_BASIC_RECOVER:
        basic_recover(ch, m->a.basic_recover.requeue, false);
        return;
    case AMQP_BASIC_RECOVER_ASYNC:
        basic_recover(ch, m->a.basic_recover_async.requeue, true);
        return;
    case AMQP_CONFIRM_SELECT:
        if (ch->tx) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, id, "cannot switch from tx to confirm mode");
            return;
        }
        ch->confirm = true;
        if (!m->a.confirm_select.no_wait)
            send_simple(ch, AMQP_CONFIRM_SELECT_OK);
        return;
    case AMQP_TX_SELECT:
        if (ch->confirm) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, id, "cannot switch from confirm to tx mode");
            return;
        }
        ch->tx = true;
        send_simple(ch, AMQP_TX_SELECT_OK);
        return;
    case AMQP_TX_COMMIT:
    case AMQP_TX_ROLLBACK:
        if (!ch->tx) {
            channel_error(ch, AMQP_PRECONDITION_FAILED, id, "channel is not transactional");
            return;
        }
        if (id == AMQP_TX_ROLLBACK) {
            tx_rollback(ch);
            send_simple(ch, AMQP_TX_ROLLBACK_OK);
            return;
        }
        ch->tx_wait = tx_commit(ch);
        if (ch->tx_wait)
            channel_store_progress(ch);
        else
            send_simple(ch, AMQP_TX_COMMIT_OK);
        return;
    default:
        conn_error(ch->conn, AMQP_COMMAND_INVALID, id, "unimplemented method");
    }
}
