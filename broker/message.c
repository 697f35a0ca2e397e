/* Messages: one allocation per message, shared by reference between the
 * queues it was routed to, never copied per queue. */
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

message *
message_new(amqp_bytes exchange_name, amqp_bytes routing_key, uint16_t prop_flags,
            const uint8_t *props, uint32_t props_len, uint64_t body_size)
{
    size_t size = sizeof(message) + exchange_name.len + routing_key.len +
                  props_len + body_size;
    message *m = malloc(size);
    if (!m)
        return NULL;
    uint8_t *p = (uint8_t *)(m + 1);
    m->refs = 1;
    m->disk_refs = 0;
    m->origin = 0;
    m->arrived_ms = (int64_t)(ev_now(B.loop) * 1000.0);
    m->expires_ms = 0;
    m->id = ++B.next_message_id;
    m->prop_flags = prop_flags;
    m->delivery_mode = 0;
    m->priority = 0;
    m->body_size = body_size;
    m->body_received = 0;

    memcpy(p, exchange_name.data, exchange_name.len);
    m->exchange = (amqp_bytes){ (const char *)p, exchange_name.len };
    p += exchange_name.len;
    memcpy(p, routing_key.data, routing_key.len);
    m->routing_key = (amqp_bytes){ (const char *)p, routing_key.len };
    p += routing_key.len;
    m->props = p;
    m->props_len = props_len;
    if (props_len)
        memcpy(p, props, props_len);
    p += props_len;
    m->body = p;

    /* delivery mode and priority steer storage and (later) priority queues:
     * read them once here, without decoding the rest. */
    if (prop_flags & (AMQP_BASIC_DELIVERY_MODE | AMQP_BASIC_PRIORITY) &&
        amqp_props_peek(prop_flags, props, props_len, &m->delivery_mode, &m->priority) != AMQP_OK)
        m->delivery_mode = m->priority = 0;
    /* A per-message TTL is rare: only then are the properties decoded. */
    if (prop_flags & AMQP_BASIC_EXPIRATION) {
        static amqp_pool pool;
        amqp_basic_props bp;
        if (amqp_props_decode(prop_flags, props, props_len, &bp, &pool) == AMQP_OK &&
            bp.expiration.len && bp.expiration.len < 20) {
            char num[24];
            memcpy(num, bp.expiration.data, bp.expiration.len);
            num[bp.expiration.len] = 0;
            char *end;
            long long ms = strtoll(num, &end, 10);
            /* "0" is a deadline now: delivered at once or never */
            if (*end == 0 && ms >= 0)
                m->expires_ms = m->arrived_ms + ms;
        }
        amqp_pool_reset(&pool);
    }
    return m;
}

void
message_unref(message **mp)
{
    message *m = *mp;
    *mp = NULL;
    if (m && --m->refs == 0)
        free(m);
}

bool
message_headers(const message *m, amqp_table *out, amqp_pool *pool)
{
    if (!(m->prop_flags & AMQP_BASIC_HEADERS))
        return false;
    amqp_basic_props bp;
    if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, pool) != AMQP_OK)
        return false;
    *out = bp.headers;
    return true;
}

bool
message_may_have_cc(const message *m)
{
    /* a table key is a short string: its length octet, then the bytes */
    return (m->prop_flags & AMQP_BASIC_HEADERS) &&
           (memmem(m->props, m->props_len, "\002CC", 3) ||
            memmem(m->props, m->props_len, "\003BCC", 4));
}

message *
message_without_header(const message *m, const char *key)
{
    amqp_pool pool = { 0 };
    amqp_basic_props bp;
    message *n = NULL;
    if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, &pool) != AMQP_OK ||
        !(bp.flags & AMQP_BASIC_HEADERS))
        goto out;
    uint32_t k = 0;
    for (uint32_t i = 0; i < bp.headers.n; i++)
        if (!amqp_bytes_eq_cstr(bp.headers.fields[i].key, key))
            bp.headers.fields[k++] = bp.headers.fields[i];
    bp.headers.n = k;
    size_t plen = amqp_props_size(&bp);
    uint8_t *props = malloc(plen ? plen : 1);
    if (!props)
        goto out;
    amqp_props_encode(&bp, props);
    n = message_new(m->exchange, m->routing_key, bp.flags, props, (uint32_t)plen, m->body_size);
    free(props);
    if (n) {
        memcpy(n->body, m->body, m->body_size);
        n->body_received = m->body_size;
        n->origin = m->origin;
        n->arrived_ms = m->arrived_ms;
        n->expires_ms = m->expires_ms;
    }
out:
    amqp_pool_free(&pool);
    return n;
}
