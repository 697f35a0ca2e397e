/* Messages: one allocation per message, shared by reference between the
 * queues it was routed to, never copied per queue. */
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
