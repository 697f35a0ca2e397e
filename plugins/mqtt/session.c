/*
 * MQTT sessions: what outlives a connection. A session owns one queue
 * bound to the MQTT exchange once per (non-shared) filter and consumes it
 * while its client is online; a shared subscription consumes the group's
 * queue instead. A delivery is matched against the session's filters to
 * find the granted QoS, subscription identifiers, no-local and
 * retain-as-published, so one queue serves every filter and a message
 * that several filters match arrives once, at the highest granted QoS.
 *
 * QoS 1/2 deliveries stay in the session's in-flight table, holding their
 * queue entry, until PUBACK (or PUBREC) settles them; a client that goes
 * away puts them back in their queue flagged redelivered, so they are sent
 * again with DUP when it returns. QoS 2 packet ids in their second phase
 * (PUBREL sent, PUBCOMP awaited) and inbound QoS 2 ids (PUBREC sent,
 * PUBREL awaited) are kept by the session and written with its record.
 *
 * A durable session writes a record to the store's sessions database
 * whenever its subscriptions or QoS 2 state change; at start-up the
 * records are read back and each finds its queue, which the broker's own
 * recovery restored with its bindings and messages.
 *
 * Memory: a broker holds idle sessions by the thousand, so one costs a
 * struct with its client id and its consumer inside, in a hash table
 * chained through the sessions themselves, and arrays of exactly what it
 * has (subscriptions, deliveries in flight, freed when empty); QoS 2
 * state and the timers of an offline session live in mqtt_session_x,
 * made only for sessions that need them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/log.h"
#include "broker/persist.h"
#include "plugins/mqtt/session.h"
#include "storage/store.h"

/* Every session, by (vhost, client id): buckets of chains through hnext. */
static mqtt_session **table;
static size_t table_mask;          /* buckets - 1; no table while 0 buckets */
static size_t nsessions;
static uint32_t next_number;

#define SESSION_REC_VERSION 1

/* ---- lookup ------------------------------------------------------------------- */

static size_t
bucket_of(const vhost *vh, const uint8_t *id, size_t len)
{
    uint32_t h = map_hash((const char *)id, (uint32_t)len);
    h ^= (uint32_t)((uintptr_t)vh >> 4) * 2654435761u;
    return h & table_mask;
}

mqtt_session *
mqtt_session_find(vhost *vh, const uint8_t *id, size_t len)
{
    if (!table)
        return NULL;
    for (mqtt_session *s = table[bucket_of(vh, id, len)]; s; s = s->hnext)
        if (s->vh == vh && s->client_id_len == len && memcmp(s->client_id, id, len) == 0)
            return s;
    return NULL;
}

static void
table_grow(void)
{
    size_t n = table ? (table_mask + 1) * 2 : 64;
    mqtt_session **t = calloc(n, sizeof *t);
    if (!t)
        abort();
    mqtt_session **old = table;
    size_t nold = table ? table_mask + 1 : 0;
    table = t;
    table_mask = n - 1;
    for (size_t i = 0; i < nold; i++) {
        for (mqtt_session *s = old[i], *next; s; s = next) {
            next = s->hnext;
            mqtt_session **b = &table[bucket_of(s->vh, (const uint8_t *)s->client_id,
                                                s->client_id_len)];
            s->hnext = *b;
            *b = s;
        }
    }
    free(old);
}

static void
table_del(mqtt_session *s)
{
    mqtt_session **p = &table[bucket_of(s->vh, (const uint8_t *)s->client_id, s->client_id_len)];
    while (*p != s)
        p = &(*p)->hnext;
    *p = s->hnext;
    nsessions--;
}

void
mqtt_sessions_each(void (*fn)(mqtt_session *s, void *ctx), void *ctx)
{
    for (size_t i = 0; table && i <= table_mask; i++) {
        for (mqtt_session *s = table[i], *next; s; s = next) {
            next = s->hnext;
            fn(s, ctx);
        }
    }
}

mqtt_session *
mqtt_session_new(vhost *vh, const uint8_t *id, size_t len)
{
    /* the id from where it starts, not from the struct's padded end */
    size_t size = offsetof(mqtt_session, client_id) + len + 1;
    mqtt_session *s = calloc(1, size > sizeof *s ? size : sizeof *s);
    if (!s)
        abort();
    s->vh = vh;
    memcpy(s->client_id, id, len);
    s->client_id_len = (uint16_t)len;
    s->number = ++next_number;
    s->next_packet_id = 1;
    if (nsessions >= (table ? table_mask + 1 : 0))
        table_grow();
    mqtt_session **b = &table[bucket_of(vh, id, len)];
    s->hnext = *b;
    *b = s;
    nsessions++;
    return s;
}

static void expiry_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void will_cb(struct ev_loop *loop, ev_timer *w, int revents);

mqtt_session_x *
mqtt_session_x_of(mqtt_session *s)
{
    if (!s->x) {
        s->x = calloc(1, sizeof *s->x);
        if (!s->x)
            abort();
        s->x->s = s;
        ev_init(&s->x->expiry_timer, expiry_cb);
        ev_init(&s->x->will_timer, will_cb);
    }
    return s->x;
}

static void retained_drop(mqtt_session *s);

static void
session_x_free(mqtt_session *s)
{
    mqtt_session_x *x = s->x;
    if (!x)
        return;
    retained_drop(s);
    free(x->ret);
    ev_timer_stop(B.loop, &x->expiry_timer);
    ev_timer_stop(B.loop, &x->will_timer);
    message_unref(&x->will);
    free(x->rel_pending);
    free(x->qos2_in);
    free(x);
    s->x = NULL;
}

bool
mqtt_session_qos2_in_has(const mqtt_session *s, uint16_t id)
{
    for (size_t i = 0; s->x && i < s->x->nqos2_in; i++)
        if (s->x->qos2_in[i] == id)
            return true;
    return false;
}

void
mqtt_session_qos2_in_add(mqtt_session *s, uint16_t id)
{
    mqtt_session_x *x = mqtt_session_x_of(s);
    x->qos2_in = buf_array_room(x->qos2_in, sizeof *x->qos2_in, NULL, &x->nqos2_in,
                                &x->qos2_in_cap);
    x->qos2_in[x->nqos2_in++] = id;
}

bool
mqtt_session_qos2_in_del(mqtt_session *s, uint16_t id)
{
    mqtt_session_x *x = s->x;
    for (size_t i = 0; x && i < x->nqos2_in; i++) {
        if (x->qos2_in[i] == id) {
            x->qos2_in[i] = x->qos2_in[--x->nqos2_in];
            return true;
        }
    }
    return false;
}

/* Room for one more element in an array sized to what it holds: it grows
 * from one by doubling, so a session with one subscription pays for one. */
static void *
room(void *a, size_t elem, uint32_t n, uint32_t *cap)
{
    if (n < *cap)
        return a;
    uint32_t ncap = *cap ? *cap * 2 : 1;
    a = realloc(a, (size_t)ncap * elem);
    if (!a)
        abort();
    *cap = ncap;
    return a;
}

static char *
str_dup(const uint8_t *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        abort();
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

/* True if sub's filter lives in the subs block: the array holds one
 * entry and the filter right after it. */
static bool
filter_inline(const mqtt_session *s, const mqtt_sub *sub)
{
    return s->subs_cap == 1 && sub->filter == (const char *)(s->subs + 1);
}

mqtt_sub *
mqtt_session_sub_add(mqtt_session *s, mqtt_str filter)
{
    if (s->nsubs >= MQTT_SUBS_MAX)
        return NULL;
    if (s->nsubs == 0 && s->subs_cap <= 1) {
        /* the first (and often only) one, with its filter in one block */
        mqtt_sub *b = realloc(s->subs, sizeof *b + filter.len + 1);
        if (!b)
            abort();
        s->subs = b;
        s->subs_cap = 1;
        s->nsubs = 1;
        memset(b, 0, sizeof *b);
        b->filter = (char *)(b + 1);
        memcpy(b->filter, filter.p, filter.len);
        b->filter[filter.len] = 0;
        b->filter_len = (uint16_t)filter.len;
        return b;
    }
    if (s->nsubs == s->subs_cap) {
        char *first = NULL;
        if (filter_inline(s, &s->subs[0]))  /* the block becomes an array */
            first = str_dup((const uint8_t *)s->subs[0].filter, s->subs[0].filter_len);
        uint32_t cap = s->subs_cap;
        s->subs = room(s->subs, sizeof *s->subs, s->nsubs, &cap);
        s->subs_cap = cap > MQTT_SUBS_MAX ? MQTT_SUBS_MAX : (uint16_t)cap;
        if (first)
            s->subs[0].filter = first;
    }
    mqtt_sub *sub = &s->subs[s->nsubs++];
    memset(sub, 0, sizeof *sub);
    sub->filter = str_dup(filter.p, filter.len);
    sub->filter_len = (uint16_t)filter.len;
    return sub;
}

void
mqtt_session_inflight_add(mqtt_session *s, mqtt_inflight d)
{
    s->inflight = room(s->inflight, sizeof *s->inflight, s->ninflight, &s->inflight_cap);
    s->inflight[s->ninflight++] = d;
}

/* ---- the queue -------------------------------------------------------------------- */

int
mqtt_session_queue_name(const mqtt_session *s, char *out, size_t cap)
{
    return snprintf(out, cap, "mqtt-subscription-%.*sqos1", (int)s->client_id_len, s->client_id);
}

queue *
mqtt_session_queue(mqtt_session *s)
{
    if (s->q)
        return s->q;
    char name[300];
    int n = mqtt_session_queue_name(s, name, sizeof name);
    amqp_bytes qn = { name, (uint32_t)n };
    queue *q = vhost_queue(s->vh, qn);
    if (!q) {
        q = queue_new(s->vh, qn, s->durable, false, false, NULL, NULL, 0);
        vhost_queue_add(s->vh, q);
        persist_queue(q, true);
    }
    queue_ref(q);
    s->q = q;
    if (s->client && !s->consuming) {
        consumer_attach(&s->cons, q, &mqtt_consumer_ops, s, AMQP_BYTES_LIT("mqtt"), false,
                        false, 0);
        s->consuming = true;
    }
    return q;
}

static exchange *
mqtt_exchange(vhost *vh)
{
    return vhost_exchange(vh, amqp_cstr(B.cfg.mqtt_exchange));
}

/* ---- delivery ---------------------------------------------------------------------- */

static uint16_t
inflight_limit(const mqtt_session *s)
{
    uint32_t lim = B.cfg.mqtt_prefetch;
    if (s->client && mqtt_client_receive_max(s->client) < lim)
        lim = mqtt_client_receive_max(s->client);
    return (uint16_t)lim;
}

static bool
consumer_ready(consumer *c)
{
    mqtt_session *s = c->owner;
    /* QoS 2 counts against the limit until PUBCOMP (MQTT-4.9.0-2). */
    return s->client && mqtt_client_writable(s->client) &&
           s->ninflight + (s->x ? s->x->nrel : 0) < inflight_limit(s);
}

static bool
packet_id_used(const mqtt_session *s, uint16_t id)
{
    for (size_t i = 0; i < s->ninflight; i++)
        if (s->inflight[i].packet_id == id)
            return true;
    for (size_t i = 0; s->x && i < s->x->nrel; i++)
        if (s->x->rel_pending[i] == id)
            return true;
    return false;
}

static uint16_t
next_packet_id(mqtt_session *s)
{
    for (;;) {
        uint16_t id = s->next_packet_id++;
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
        if (id != 0 && !packet_id_used(s, id))
            return id;
    }
}

/* A delivery of an entry that is on disk is recorded there (once), so a
 * restart marks it redelivered; a QoS 0 one is forgotten at once. */
static uint32_t
disk_state(queue *q, message *m, uint64_t seq, uint32_t flags, bool settled)
{
    if (!(flags & QE_ON_DISK))
        return flags;
    if (settled) {
        queue_entry_forget(q, m, seq, flags);
        return flags & ~(uint32_t)QE_ON_DISK;
    }
    if (!(flags & QE_MARKED)) {
        persist_mark_delivered(q, m, seq);
        flags |= QE_MARKED;
    }
    return flags;
}

/* What the session's subscriptions make of a message arriving through
 * consumer c: matched is false when none wants it (no-local, or no filter
 * of ours matches any more). */
typedef struct match {
    bool matched;
    uint8_t qos;
    bool rap;
    uint32_t subids[MQTT_SUBIDS_MAX];
    unsigned nsubids;
} match;

static void
match_subs(mqtt_session *s, const queue *q, mqtt_str topic, uint32_t origin, match *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < s->nsubs; i++) {
        mqtt_sub *sub = &s->subs[i];
        if (q == s->q) {
            if (sub->shared)
                continue;
        } else if (!sub->shared || sub->shared->q != q) {
            continue;
        }
        mqtt_str f = { (const uint8_t *)sub->filter, sub->filter_len };
        if (!mqtt_topic_match(f, topic))
            continue;
        if (sub->no_local && origin == s->number)
            continue;
        out->matched = true;
        if (sub->qos > out->qos)
            out->qos = sub->qos;
        out->rap |= sub->retain_as_published;
        if (sub->subid && out->nsubids < MQTT_SUBIDS_MAX)
            out->subids[out->nsubids++] = sub->subid;
    }
}

static uint8_t *scratch;
static size_t scratch_cap;

static uint8_t *
scratch_room(size_t n)
{
    if (n > scratch_cap) {
        free(scratch);
        scratch_cap = n * 2;
        scratch = malloc(scratch_cap);
        if (!scratch)
            abort();
    }
    return scratch;
}

static bool
internal_header(amqp_bytes key)
{
    return key.len >= 7 && memcmp(key.data, "x-mqtt-", 7) == 0;
}

/* Fills p's MQTT 5 properties from the message's AMQP ones: content type,
 * correlation data, response topic, remaining expiry, user properties
 * (every string header but ours). User property bytes go to *ubuf. */
static void
v5_props(const mqtt_msg_view *v, mqtt_props *p, int64_t now_ms, uint8_t **ubuf, size_t *ucap)
{
    const amqp_basic_props *bp = &v->bp;
    if (!v->has_props)
        return;
    if (bp->flags & AMQP_BASIC_CONTENT_TYPE) {
        p->content_type = (mqtt_str){ (const uint8_t *)bp->content_type.data, bp->content_type.len };
        if (mqtt_utf8_valid(p->content_type.p, p->content_type.len))
            mqtt_props_set(p, MQTT_PROP_CONTENT_TYPE);
    }
    if (bp->flags & AMQP_BASIC_CORRELATION_ID) {
        p->correlation_data = (mqtt_str){ (const uint8_t *)bp->correlation_id.data,
                                          bp->correlation_id.len };
        mqtt_props_set(p, MQTT_PROP_CORRELATION_DATA);
    }
    if (v->expires_at_ms) {
        int64_t left = (v->expires_at_ms - now_ms + 999) / 1000;
        p->message_expiry = left > 0 ? (uint32_t)left : 1;
        mqtt_props_set(p, MQTT_PROP_MESSAGE_EXPIRY);
    }
    if (!(bp->flags & AMQP_BASIC_HEADERS))
        return;
    size_t need = 0;
    for (uint32_t i = 0; i < bp->headers.n; i++) {
        const amqp_field *fl = &bp->headers.fields[i];
        if (internal_header(fl->key)) {
            if (amqp_bytes_eq_cstr(fl->key, "x-mqtt-response-topic") && fl->value.kind == 'S') {
                p->response_topic = (mqtt_str){ (const uint8_t *)fl->value.v.bytes.data,
                                                fl->value.v.bytes.len };
                mqtt_props_set(p, MQTT_PROP_RESPONSE_TOPIC);
            } else if (amqp_bytes_eq_cstr(fl->key, "x-mqtt-correlation-data") &&
                       (fl->value.kind == 'x' || fl->value.kind == 'S')) {
                p->correlation_data = (mqtt_str){ (const uint8_t *)fl->value.v.bytes.data,
                                                  fl->value.v.bytes.len };
                mqtt_props_set(p, MQTT_PROP_CORRELATION_DATA);
            } else if (amqp_bytes_eq_cstr(fl->key, "x-mqtt-payload-format")) {
                int64_t pf;
                if (amqp_value_int(&fl->value, &pf) && pf == 1) {
                    p->payload_format = 1;
                    mqtt_props_set(p, MQTT_PROP_PAYLOAD_FORMAT);
                }
            }
            continue;
        }
        if (fl->value.kind != 'S')
            continue;
        mqtt_str k = { (const uint8_t *)fl->key.data, fl->key.len };
        mqtt_str val = { (const uint8_t *)fl->value.v.bytes.data, fl->value.v.bytes.len };
        if (!mqtt_utf8_valid(k.p, k.len) || !mqtt_utf8_valid(val.p, val.len) || val.len > 65535)
            continue;
        need += mqtt_user_prop_size(k, val);
    }
    if (need == 0)
        return;
    if (need > *ucap) {
        free(*ubuf);
        *ucap = need * 2;
        *ubuf = malloc(*ucap);
        if (!*ubuf)
            abort();
    }
    size_t off = 0;
    uint32_t count = 0;
    for (uint32_t i = 0; i < bp->headers.n; i++) {
        const amqp_field *fl = &bp->headers.fields[i];
        if (internal_header(fl->key) || fl->value.kind != 'S')
            continue;
        mqtt_str k = { (const uint8_t *)fl->key.data, fl->key.len };
        mqtt_str val = { (const uint8_t *)fl->value.v.bytes.data, fl->value.v.bytes.len };
        if (!mqtt_utf8_valid(k.p, k.len) || !mqtt_utf8_valid(val.p, val.len) || val.len > 65535)
            continue;
        off += mqtt_user_prop_write(*ubuf + off, k, val);
        count++;
    }
    p->user = (mqtt_user_props){ *ubuf, (uint32_t)off, (uint32_t)off, count };
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MQTT 5 topic aliases toward the client: the first out_alias_max
 * topics sent get an alias for the life of the connection; later sends
 * of them carry the alias and an empty topic. */
static bool
apply_alias(mqtt_client *c, mqtt_publish *p)
{
    if (c->version != MQTT_V5 || !c->x || c->x->out_alias_max == 0 || p->topic.len > 65535)
        return false;
    struct mqtt_aliases *al = mqtt_client_aliases(c);
    for (uint16_t a = 1; a <= al->out_n; a++) {
        if (al->out_len[a] == p->topic.len &&
            memcmp(al->out[a], p->topic.p, p->topic.len) == 0) {
            p->props.topic_alias = a;
            mqtt_props_set(&p->props, MQTT_PROP_TOPIC_ALIAS);
            p->topic = (mqtt_str){ NULL, 0 };
            return false;
        }
    }
    if (al->out_n >= c->x->out_alias_max)
        return false;
    uint16_t a = ++al->out_n;
    al->out[a] = malloc(p->topic.len ? p->topic.len : 1);
    if (!al->out[a])
        abort();
    memcpy(al->out[a], p->topic.p, p->topic.len);
    al->out_len[a] = (uint16_t)p->topic.len;
    p->props.topic_alias = a;
    mqtt_props_set(&p->props, MQTT_PROP_TOPIC_ALIAS);
    return true;
}

void
mqtt_send_publish(mqtt_client *c, const mqtt_publish *p)
{
    size_t n = mqtt_publish_size(p, c->version);
    mqtt_publish_encode(p, c->version, mqtt_client_reserve(c, n));
}

/* Builds and sends the PUBLISH for m; false if the client cannot take it
 * (above its maximum packet size, or a topic MQTT cannot carry). */
static bool
send_message(mqtt_session *s, message *m, uint8_t qos, bool retain, bool dup,
             uint16_t packet_id, const match *mt, const mqtt_msg_view *v)
{
    static amqp_pool pool;
    static uint8_t *ubuf;
    static size_t ucap;
    (void)pool;
    mqtt_client *c = s->client;
    uint8_t *topic = scratch_room(m->routing_key.len + 1);
    mqtt_topic_from_amqp(m->routing_key.data, m->routing_key.len, topic);
    mqtt_str t = { topic, m->routing_key.len };
    if (mqtt_topic_name_check(t) != MQTT_OK)
        return false;
    mqtt_publish p = { .qos = qos, .dup = dup, .retain = retain, .topic = t,
                       .packet_id = packet_id, .payload = m->body,
                       .payload_len = (uint32_t)m->body_size };
    if (c->version == MQTT_V5) {
        v5_props(v, &p.props, now_ms(), &ubuf, &ucap);
        if (mt) {
            for (unsigned i = 0; i < mt->nsubids; i++)
                p.props.subids[i] = mt->subids[i];
            p.props.n_subids = mt->nsubids;
        }
    }
    bool new_alias = apply_alias(c, &p);
    size_t n = mqtt_publish_size(&p, c->version);
    if (n == 0 || (mqtt_client_max_packet(c) && n > mqtt_client_max_packet(c))) {
        if (new_alias) {           /* the client never learnt it */
            struct mqtt_aliases *al = c->x->aliases;
            free(al->out[al->out_n]);
            al->out[al->out_n--] = NULL;
        }
        return false;              /* MQTT-3.1.2-25: discard it for this client */
    }
    mqtt_publish_encode(&p, c->version, mqtt_client_reserve(c, n));
    return true;
}

static void
consumer_deliver(consumer *c, message *m, uint64_t seq, uint32_t flags)
{
    mqtt_session *s = c->owner;
    queue *q = c->q;
    static amqp_pool pool;
    amqp_pool_reset(&pool);
    mqtt_msg_view v;
    mqtt_message_view(m, &v, &pool);

    uint8_t *topic = scratch_room(m->routing_key.len + 1);
    mqtt_topic_from_amqp(m->routing_key.data, m->routing_key.len, topic);
    match mt;
    match_subs(s, q, (mqtt_str){ topic, m->routing_key.len }, m->origin, &mt);
    bool expired = v.expires_at_ms && v.expires_at_ms <= now_ms();
    uint8_t qos = v.qos < mt.qos ? v.qos : mt.qos;
    if (!mt.matched || expired || !s->client) {
        disk_state(q, m, seq, flags, true);
        message_unref(&m);
        return;
    }
    uint16_t id = qos ? next_packet_id(s) : 0;
    bool dup = qos && (flags & QE_REDELIVERED);
    if (qos) {
        queue_counts(q)->deliver++;
        B.st.now.deliver++;
    } else {
        queue_counts(q)->deliver_no_ack++;
        B.st.now.deliver_no_ack++;
    }
    if (dup) {
        queue_counts(q)->redeliver++;
        B.st.now.redeliver++;
    }
    if (!send_message(s, m, qos, mt.rap && v.retain, dup, id, &mt, &v) || qos == 0) {
        disk_state(q, m, seq, flags, true);
        message_unref(&m);
        return;
    }
    flags = disk_state(q, m, seq, flags, false);
    mqtt_session_inflight_add(s, (mqtt_inflight){ id, qos, m, q, c, seq, flags });
    queue_ref(q);
    q->unacked++;
}

static void
consumer_cancelled(consumer *c)
{
    mqtt_session *s = c->owner;
    for (size_t i = 0; i < s->ninflight; i++)
        if (s->inflight[i].c == c)
            s->inflight[i].c = NULL;
    if (s->consuming && c == &s->cons) {
        s->consuming = false;
        if (s->q == c->q) {
            queue_unref(s->q);
            s->q = NULL;
        }
    }
    for (size_t i = 0; i < s->nsubs; i++) {
        mqtt_shared *sh = s->subs[i].shared;
        if (!sh)
            continue;
        if (sh->c == c)
            sh->c = NULL;
        if (sh->q == c->q) {
            queue_unref(sh->q);
            sh->q = NULL;
        }
    }
    consumer_remove(c);
}

const consumer_ops mqtt_consumer_ops = { consumer_ready, consumer_deliver, consumer_cancelled };

/* ---- retained messages on subscribe ----------------------------------------------- */

/* Room for one more retained message at qos. */
static bool
retained_room(const mqtt_session *s, uint8_t qos)
{
    return s->client && mqtt_client_writable(s->client) &&
           (qos == 0 || s->ninflight + (s->x ? s->x->nrel : 0) < inflight_limit(s));
}

/* In flight without a queue entry: acked, it is done; lost with the
 * connection, the next subscription brings it again. */
static void
retained_send(mqtt_session *s, message *m, uint8_t granted, uint32_t subid)
{
    mqtt_client *c = s->client;
    static amqp_pool pool;
    amqp_pool_reset(&pool);
    mqtt_msg_view v;
    mqtt_message_view(m, &v, &pool);
    uint8_t qos = v.qos < granted ? v.qos : granted;
    uint8_t *topic = scratch_room(m->routing_key.len + 1);
    mqtt_topic_from_amqp(m->routing_key.data, m->routing_key.len, topic);
    mqtt_publish p = { .qos = qos, .retain = true,
                       .topic = { topic, m->routing_key.len },
                       .payload = m->body, .payload_len = (uint32_t)m->body_size };
    if (c->version == MQTT_V5) {
        if (v.bp.flags & AMQP_BASIC_CONTENT_TYPE) {
            p.props.content_type = (mqtt_str){ (const uint8_t *)v.bp.content_type.data,
                                               v.bp.content_type.len };
            mqtt_props_set(&p.props, MQTT_PROP_CONTENT_TYPE);
        }
        if (subid) {
            p.props.subids[0] = subid;
            p.props.n_subids = 1;
        }
    }
    size_t n = mqtt_publish_size(&p, c->version);
    if (n == 0 || (mqtt_client_max_packet(c) && n > mqtt_client_max_packet(c)))
        return;
    if (qos > 0)
        p.packet_id = next_packet_id(s);   /* a free one: fewer than the limit are used */
    mqtt_publish_encode(&p, c->version, mqtt_client_reserve(c, n));
    if (qos > 0)
        mqtt_session_inflight_add(s, (mqtt_inflight){ p.packet_id, qos, message_ref(m),
                                                      NULL, NULL, 0, 0 });
}

void
mqtt_session_send_retained(mqtt_session *s, message *m, uint8_t qos, uint32_t subid)
{
    mqtt_session_x *x = s->x;
    if ((!x || x->ret_head == x->ret_len) && retained_room(s, qos)) {
        retained_send(s, m, qos, subid);
        return;
    }
    x = mqtt_session_x_of(s);
    x->ret = buf_array_room(x->ret, sizeof *x->ret, &x->ret_head, &x->ret_len, &x->ret_cap);
    x->ret[x->ret_len++] = (struct mqtt_retained_send){ message_ref(m), subid, qos };
}

/* Sends the waiting retained messages the client has room for. */
static void
retained_flush(mqtt_session *s)
{
    mqtt_session_x *x = s->x;
    while (x && x->ret_head < x->ret_len && retained_room(s, x->ret[x->ret_head].qos)) {
        struct mqtt_retained_send r = x->ret[x->ret_head++];
        retained_send(s, r.m, r.qos, r.subid);
        message_unref(&r.m);
    }
    if (x && x->ret_head == x->ret_len)
        x->ret_head = x->ret_len = 0;
}

/* The client went: what waited is sent again by the next subscription. */
static void
retained_drop(mqtt_session *s)
{
    mqtt_session_x *x = s->x;
    while (x && x->ret_head < x->ret_len)
        message_unref(&x->ret[x->ret_head++].m);
    if (x)
        x->ret_head = x->ret_len = 0;
}

void
mqtt_session_kick(mqtt_session *s)
{
    retained_flush(s);
    if (s->consuming)
        queue_dispatch(s->cons.q);
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].shared && s->subs[i].shared->c)
            queue_dispatch(s->subs[i].shared->c->q);
}

/* Settles in-flight delivery i: acked (forgotten) or put back. */
static void
inflight_settle(mqtt_session *s, size_t i, bool requeue)
{
    mqtt_inflight d = s->inflight[i];
    /* kept in send order: a returning client gets them again in order */
    memmove(&s->inflight[i], &s->inflight[i + 1], (s->ninflight - i - 1) * sizeof *s->inflight);
    if (--s->ninflight == 0) {     /* an idle session keeps no array */
        free(s->inflight);
        s->inflight = NULL;
        s->inflight_cap = 0;
    }
    if (!d.q) {                    /* a retained message sent on subscribe */
        message_unref(&d.msg);
        return;
    }
    d.q->unacked--;
    if (requeue) {
        queue_requeue(d.q, d.msg, d.seq, d.flags);
    } else {
        queue_counts(d.q)->ack++;
        B.st.now.ack++;
        queue_entry_forget(d.q, d.msg, d.seq, d.flags);
        message_unref(&d.msg);
    }
    queue_unref(d.q);
}

/* PUBACK (QoS 1) or PUBREC (QoS 2) from the client; false if the id is
 * not one we sent at that QoS. */
bool mqtt_session_settle(mqtt_session *s, uint16_t id, uint8_t qos);

bool
mqtt_session_settle(mqtt_session *s, uint16_t id, uint8_t qos)
{
    for (size_t i = 0; i < s->ninflight; i++) {
        if (s->inflight[i].packet_id != id || s->inflight[i].qos != qos)
            continue;
        inflight_settle(s, i, false);
        mqtt_session_kick(s);
        return true;
    }
    return false;
}

/* ---- attach, detach, end --------------------------------------------------------- */

static void
send_pubrel(mqtt_client *c, uint16_t id)
{
    mqtt_ack a = { .type = MQTT_PUBREL, .packet_id = id };
    size_t n = mqtt_ack_size(&a, c->version);
    mqtt_ack_encode(&a, c->version, mqtt_client_reserve(c, n));
}

static void
resend_inflight(mqtt_session *s)
{
    static amqp_pool pool;
    for (size_t i = 0; i < s->ninflight; i++) {
        mqtt_inflight *d = &s->inflight[i];
        amqp_pool_reset(&pool);
        mqtt_msg_view v;
        mqtt_message_view(d->msg, &v, &pool);
        uint8_t *topic = scratch_room(d->msg->routing_key.len + 1);
        mqtt_topic_from_amqp(d->msg->routing_key.data, d->msg->routing_key.len, topic);
        match mt;
        match_subs(s, d->q, (mqtt_str){ topic, d->msg->routing_key.len }, d->msg->origin, &mt);
        bool retain = d->q ? mt.rap && v.retain : true;
        send_message(s, d->msg, d->qos, retain, true, d->packet_id, &mt, &v);
    }
}

void
mqtt_session_attach(mqtt_session *s, mqtt_client *c)
{
    if (s->x) {
        ev_timer_stop(B.loop, &s->x->expiry_timer);
        s->x->offline_since = 0;
    }
    s->client = c;
    c->session = s;
    /* MQTT-4.4.0-1: unacknowledged PUBLISHes again, with DUP and their
     * original packet ids, and the PUBRELs. */
    resend_inflight(s);
    for (size_t i = 0; s->x && i < s->x->nrel; i++)
        send_pubrel(c, s->x->rel_pending[i]);
    if (s->q && !s->consuming) {
        consumer_attach(&s->cons, s->q, &mqtt_consumer_ops, s, AMQP_BYTES_LIT("mqtt"), false,
                        false, 0);
        s->consuming = true;
    }
    for (size_t i = 0; i < s->nsubs; i++) {
        mqtt_shared *sh = s->subs[i].shared;
        if (sh && sh->q && !sh->c)
            sh->c = consumer_add(sh->q, &mqtt_consumer_ops, s, AMQP_BYTES_LIT("mqtt-shared"),
                                 false, false, 0);
    }
    mqtt_session_kick(s);
}

/* Stops the consumers. With requeue, in-flight deliveries go back to
 * their queues first (so they keep their place); without, the session
 * keeps them to send again when its client returns. */
static void
stop_consuming(mqtt_session *s, bool requeue)
{
    retained_drop(s);
    while (requeue && s->ninflight)
        inflight_settle(s, s->ninflight - 1, true);
    for (size_t i = 0; i < s->ninflight; i++)
        s->inflight[i].c = NULL;
    if (s->consuming) {
        consumer *c = &s->cons;
        s->consuming = false;
        consumer_remove(c);
    }
    for (size_t i = 0; i < s->nsubs; i++) {
        mqtt_shared *sh = s->subs[i].shared;
        if (sh && sh->c) {
            consumer *c = sh->c;
            sh->c = NULL;
            queue *q = c->q;
            consumer_remove(c);
            queue_dispatch(q);     /* the rest of the group takes over */
        }
    }
}

void
mqtt_session_detach(mqtt_session *s)
{
    stop_consuming(s, !s->durable);
    s->client = NULL;
    if (!s->durable) {
        mqtt_session_end(s);
        return;
    }
    mqtt_session_x *x = mqtt_session_x_of(s);
    x->offline_since = ev_now(B.loop);
    mqtt_session_save(s);
    if (s->expiry != UINT32_MAX) {
        ev_timer_set(&x->expiry_timer, (ev_tstamp)s->expiry, 0.0);
        ev_timer_start(B.loop, &x->expiry_timer);
    }
}

/* Drops one shared membership; the group's queue goes with its last member. */
void mqtt_shared_leave(mqtt_session *s, mqtt_sub *sub);

typedef struct member_ctx {
    const queue *q;
    const mqtt_sub *except;
    bool found;
} member_ctx;

static void
find_member(mqtt_session *o, void *arg)
{
    member_ctx *m = arg;
    for (size_t i = 0; i < o->nsubs && !m->found; i++)
        if (o->subs[i].shared && o->subs[i].shared->q == m->q && &o->subs[i] != m->except)
            m->found = true;
}

void
mqtt_shared_leave(mqtt_session *s, mqtt_sub *sub)
{
    (void)s;
    mqtt_shared *sh = sub->shared;
    if (sh->c) {
        consumer *c = sh->c;
        sh->c = NULL;
        consumer_remove(c);
    }
    queue *q = sh->q;
    sh->q = NULL;
    if (!q)
        return;
    member_ctx m = { q, sub, false };
    mqtt_sessions_each(find_member, &m);
    bool others = m.found;
    if (!others && !q->deleted)
        vhost_queue_delete(q->vh, q);
    else
        queue_dispatch(q);
    queue_unref(q);
}

static void
sub_free(mqtt_session *s, mqtt_sub *sub)
{
    if (!filter_inline(s, sub))
        free(sub->filter);
    free(sub->shared);
}

void
mqtt_session_sub_del(mqtt_session *s, mqtt_sub *sub)
{
    sub_free(s, sub);
    *sub = s->subs[--s->nsubs];
}

void
mqtt_session_end(mqtt_session *s)
{
    if (s->client) {
        mqtt_client *c = s->client;
        c->session = NULL;
        s->client = NULL;
    }
    stop_consuming(s, true);
    if (s->x) {
        ev_timer_stop(B.loop, &s->x->expiry_timer);
        ev_timer_stop(B.loop, &s->x->will_timer);
    }
    if (s->x && s->x->will) {
        /* MQTT-3.1.3-9: a session that ends before the will delay sends it */
        message *w = s->x->will;
        s->x->will = NULL;
        mqtt_will_publish(s->vh, w);
        message_unref(&w);
    }
    for (size_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].shared)
            mqtt_shared_leave(s, &s->subs[i]);
        sub_free(s, &s->subs[i]);
    }
    free(s->subs);
    if (s->q) {
        queue *q = s->q;
        s->q = NULL;
        if (!q->deleted)
            vhost_queue_delete(q->vh, q);
        queue_unref(q);
    }
    if (s->durable && B.store)
        store_del_session(B.store, (store_bytes){ (const uint8_t *)s->vh->name.data, s->vh->name.len },
                          (store_bytes){ (const uint8_t *)s->client_id, s->client_id_len });
    table_del(s);
    free(s->inflight);
    session_x_free(s);
    free(s);
}

static void
expiry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    mqtt_session *s = ((mqtt_session_x *)((char *)w - offsetof(mqtt_session_x, expiry_timer)))->s;
    if (s->client)
        return;
    log_info("MQTT session '%s' expired", s->client_id);
    mqtt_session_end(s);
}

static void
will_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    mqtt_session_x *x = (mqtt_session_x *)((char *)w - offsetof(mqtt_session_x, will_timer));
    message *m = x->will;
    x->will = NULL;
    mqtt_session *s = x->s;
    if (m) {
        mqtt_will_publish(s->vh, m);
        message_unref(&m);
    }
}

void
mqtt_will_publish(vhost *vh, message *m)
{
    mqtt_msg_view v;
    static amqp_pool pool;
    amqp_pool_reset(&pool);
    mqtt_message_view(m, &v, &pool);
    if (v.retain) {
        uint8_t *topic = scratch_room(m->routing_key.len + 1);
        mqtt_topic_from_amqp(m->routing_key.data, m->routing_key.len, topic);
        mqtt_retain_set(vh, (mqtt_str){ topic, m->routing_key.len }, m);
    }
    size_t reached;
    mqtt_message_route(vh, m, &reached);
}

/* ---- the session record ----------------------------------------------------------- */

static void
put16(uint8_t **p, uint16_t v)
{
    (*p)[0] = (uint8_t)(v >> 8);
    (*p)[1] = (uint8_t)v;
    *p += 2;
}

static void
put32(uint8_t **p, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t **p, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

/*
 * The record (FORMAT: the plugin's blob inside the store's session
 * record), big-endian:
 *   u8 version (1), u8 MQTT protocol level, u32 expiry seconds
 *   (0xffffffff never), u64 unix time it went offline (0 = online),
 *   u16 next packet id,
 *   u16 n subscriptions, each: u16 len + filter, u16 len + group (0 = not
 *     shared), u8 qos, u8 options (1 no-local, 2 retain-as-published),
 *     u32 subscription identifier,
 *   u16 n, u16 ids awaiting PUBCOMP,
 *   u16 n, u16 ids awaiting PUBREL.
 */
void
mqtt_session_save(mqtt_session *s)
{
    if (!s->durable || !B.store || B.recovering)
        return;
    size_t nrel = s->x ? s->x->nrel : 0, nin = s->x ? s->x->nqos2_in : 0;
    size_t n = 1 + 1 + 4 + 8 + 2 + 2 + 2 + 2 * nrel + 2 + 2 * nin;
    for (size_t i = 0; i < s->nsubs; i++)
        n += 2 + s->subs[i].filter_len + 2 +
             (s->subs[i].shared ? s->subs[i].shared->group_len : 0) + 1 + 1 + 4;
    uint8_t *rec = malloc(n), *p = rec;
    if (!rec)
        abort();
    *p++ = SESSION_REC_VERSION;
    *p++ = (uint8_t)s->version;
    put32(&p, s->expiry);
    uint64_t off = 0;
    if (!s->client && s->x)
        off = (uint64_t)time(NULL) - (uint64_t)(ev_now(B.loop) - s->x->offline_since);
    put64(&p, off);
    put16(&p, s->next_packet_id);
    put16(&p, (uint16_t)s->nsubs);
    for (size_t i = 0; i < s->nsubs; i++) {
        mqtt_sub *sub = &s->subs[i];
        put16(&p, sub->filter_len);
        memcpy(p, sub->filter, sub->filter_len);
        p += sub->filter_len;
        uint16_t gl = sub->shared ? sub->shared->group_len : 0;
        put16(&p, gl);
        if (gl)
            memcpy(p, sub->shared->group, gl);
        p += gl;
        *p++ = sub->qos;
        *p++ = (uint8_t)((sub->no_local ? 1 : 0) | (sub->retain_as_published ? 2 : 0));
        put32(&p, sub->subid);
    }
    put16(&p, (uint16_t)nrel);
    for (size_t i = 0; i < nrel; i++)
        put16(&p, s->x->rel_pending[i]);
    put16(&p, (uint16_t)nin);
    for (size_t i = 0; i < nin; i++)
        put16(&p, s->x->qos2_in[i]);
    store_kv r = {
        .vhost = { (const uint8_t *)s->vh->name.data, s->vh->name.len },
        .name = { (const uint8_t *)s->client_id, s->client_id_len },
        .data = { rec, (size_t)(p - rec) },
    };
    store_put_session(B.store, &r);
    free(rec);
}

typedef struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
} rd;

static uint64_t
get_n(rd *r, int bytes)
{
    if (r->bad || r->left < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | *r->p++;
    r->left -= (size_t)bytes;
    return v;
}

static const uint8_t *
get_bytes(rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

/* Joins the shared group's queue, creating it (bound to the exchange) on
 * first use. */
queue *mqtt_shared_queue(vhost *vh, mqtt_str group, mqtt_str filter);

queue *
mqtt_shared_queue(vhost *vh, mqtt_str group, mqtt_str filter)
{
    size_t n = 12 + group.len + 1 + filter.len;
    char *name = malloc(n + 1);
    if (!name)
        abort();
    int k = snprintf(name, n + 1, "mqtt-shared-%.*s-", (int)group.len, (const char *)group.p);
    mqtt_filter_to_amqp(filter.p, filter.len, name + k);
    amqp_bytes qn = { name, (uint32_t)(k + (int)filter.len) };
    queue *q = vhost_queue(vh, qn);
    if (!q) {
        q = queue_new(vh, qn, false, false, false, NULL, NULL, 0);
        vhost_queue_add(vh, q);
        exchange *x = mqtt_exchange(vh);
        if (x) {
            amqp_bytes key = { name + k, filter.len };
            vhost_bind(vh, x, q, key, NULL, 0);
        }
    }
    free(name);
    queue_ref(q);
    return q;
}

static int
recover_one(const store_kv *r, void *ctx)
{
    (void)ctx;
    vhost *vh = broker_vhost((amqp_bytes){ (const char *)r->vhost.data, (uint32_t)r->vhost.len });
    if (!vh || r->name.len == 0 || r->name.len > 200) {
        log_warning("MQTT session record for a vhost that is gone: dropped");
        return 0;
    }
    rd d = { r->data.data, r->data.len, false };
    if (get_n(&d, 1) != SESSION_REC_VERSION) {
        log_warning("MQTT session '%.*s': record of an unknown version; skipped",
                    (int)r->name.len, (const char *)r->name.data);
        return 0;
    }
    mqtt_session *s = mqtt_session_new(vh, r->name.data, r->name.len);
    s->durable = true;
    s->version = (mqtt_version)get_n(&d, 1);
    s->expiry = (uint32_t)get_n(&d, 4);
    uint64_t off = get_n(&d, 8);
    s->next_packet_id = (uint16_t)get_n(&d, 2);
    if (s->next_packet_id == 0)
        s->next_packet_id = 1;
    size_t nsubs = get_n(&d, 2);
    for (size_t i = 0; i < nsubs && !d.bad; i++) {
        size_t fl = get_n(&d, 2);
        const uint8_t *f = get_bytes(&d, fl);
        size_t gl = get_n(&d, 2);
        const uint8_t *g = get_bytes(&d, gl);
        uint8_t qos = (uint8_t)get_n(&d, 1), opt = (uint8_t)get_n(&d, 1);
        uint32_t subid = (uint32_t)get_n(&d, 4);
        if (d.bad || fl == 0)
            break;
        mqtt_sub *sub = mqtt_session_sub_add(s, (mqtt_str){ f, (uint32_t)fl });
        if (!sub)
            break;
        if (gl) {
            sub->shared = calloc(1, sizeof *sub->shared + gl + 1);
            if (!sub->shared)
                abort();
            memcpy(sub->shared->group, g, gl);
            sub->shared->group_len = (uint16_t)gl;
            sub->shared->q = mqtt_shared_queue(vh, (mqtt_str){ g, (uint32_t)gl },
                                               (mqtt_str){ f, (uint32_t)fl });
        }
        sub->qos = qos > 2 ? 2 : qos;
        sub->no_local = opt & 1;
        sub->retain_as_published = (opt & 2) != 0;
        sub->subid = subid;
    }
    size_t nrel = get_n(&d, 2);
    for (size_t i = 0; i < nrel && !d.bad; i++) {
        uint16_t id = (uint16_t)get_n(&d, 2);
        if (d.bad)
            break;
        mqtt_session_x *x = mqtt_session_x_of(s);
        x->rel_pending = buf_array_room(x->rel_pending, sizeof *x->rel_pending, NULL, &x->nrel,
                                        &x->rel_cap);
        x->rel_pending[x->nrel++] = id;
    }
    size_t nin = get_n(&d, 2);
    for (size_t i = 0; i < nin && !d.bad; i++) {
        uint16_t id = (uint16_t)get_n(&d, 2);
        if (!d.bad)
            mqtt_session_qos2_in_add(s, id);
    }
    if (d.bad)
        log_warning("MQTT session '%s': truncated record; kept what was readable", s->client_id);
    char name[300];
    int n = mqtt_session_queue_name(s, name, sizeof name);
    queue *q = vhost_queue(vh, (amqp_bytes){ name, (uint32_t)n });
    if (q) {
        queue_ref(q);
        s->q = q;
    }
    /* The session went offline when the broker stopped, if not before;
     * its expiry counts from then. */
    uint64_t now = (uint64_t)time(NULL);
    mqtt_session_x *x = mqtt_session_x_of(s);
    x->offline_since = ev_now(B.loop) - (double)(off && off <= now ? now - off : 0);
    if (s->expiry != UINT32_MAX) {
        double left = (double)s->expiry - (ev_now(B.loop) - x->offline_since);
        ev_timer_set(&x->expiry_timer, left > 0 ? left : 0.0, 0.0);
        ev_timer_start(B.loop, &x->expiry_timer);
    }
    return 0;
}

int
mqtt_sessions_recover(char *err, size_t errlen)
{
    if (!B.store)
        return 0;
    store_reader *r;
    int rc = store_read_begin(B.store, &r);
    if (rc != 0) {
        snprintf(err, errlen, "reading MQTT sessions: %s", store_strerror(rc));
        return -1;
    }
    rc = store_each_session(r, recover_one, NULL);
    store_read_end(r);
    if (rc != 0) {
        snprintf(err, errlen, "reading MQTT sessions: %s", store_strerror(rc));
        return -1;
    }
    if (nsessions)
        log_info("MQTT: %zu sessions recovered", nsessions);
    return 0;
}

static void
session_free(mqtt_session *s, void *ctx)
{
    (void)ctx;
    stop_consuming(s, true);
    for (size_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].shared && s->subs[i].shared->q)
            queue_unref(s->subs[i].shared->q);
        sub_free(s, &s->subs[i]);
    }
    free(s->subs);
    if (s->q)
        queue_unref(s->q);
    free(s->inflight);
    session_x_free(s);
    free(s);
}

void
mqtt_sessions_free(void)
{
    mqtt_sessions_each(session_free, NULL);
    free(table);
    table = NULL;
    table_mask = 0;
    nsessions = 0;
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}
