/*
 * The basic class (60): its methods, and the content header with the basic
 * property list, which is the only content class AMQP 0-9-1 uses.
 *
 * Properties are present or absent by flag bits, high bit first, in a fixed
 * order; like the methods they are a table walked by one loop.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "protocol/amqp.h"

/* Offsets are relative to amqp_method.a, as amqp_field_desc says. */
#define OFF(m, f) ((uint16_t)(offsetof(amqp_method, a.m.f) - offsetof(amqp_method, a)))
#define FIELD(name, type, m, f) { name, AMQP_FT_##type, OFF(m, f) }
#define ROW(NAME, wire, flags, reply, fields) \
    { AMQP_##NAME, wire, flags, reply, (uint8_t)(sizeof fields / sizeof fields[0]), fields }
#define ROW0(NAME, wire, flags, reply) { AMQP_##NAME, wire, flags, reply, 0, NULL }
#define CLIENT AMQP_MF_FROM_CLIENT
#define SERVER AMQP_MF_FROM_SERVER
#define BOTH (AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER)
#define SYNC AMQP_MF_SYNC
#define NO_WAIT AMQP_MF_NO_WAIT
#define CONTENT AMQP_MF_CONTENT

static const amqp_field_desc qos_args[] = {
    FIELD("prefetch-size", LONG, basic_qos, prefetch_size),
    FIELD("prefetch-count", SHORT, basic_qos, prefetch_count),
    FIELD("global", BIT, basic_qos, global),
};
static const amqp_field_desc consume_args[] = {
    FIELD("reserved-1", SHORT, basic_consume, reserved_1),
    FIELD("queue", SHORTSTR, basic_consume, queue),
    FIELD("consumer-tag", SHORTSTR, basic_consume, consumer_tag),
    FIELD("no-local", BIT, basic_consume, no_local),
    FIELD("no-ack", BIT, basic_consume, no_ack),
    FIELD("exclusive", BIT, basic_consume, exclusive),
    FIELD("no-wait", BIT, basic_consume, no_wait),
    FIELD("arguments", TABLE, basic_consume, arguments),
};
static const amqp_field_desc consume_ok_args[] = {
    FIELD("consumer-tag", SHORTSTR, basic_consume_ok, consumer_tag),
};
static const amqp_field_desc cancel_args[] = {
    FIELD("consumer-tag", SHORTSTR, basic_cancel, consumer_tag),
    FIELD("no-wait", BIT, basic_cancel, no_wait),
};
static const amqp_field_desc cancel_ok_args[] = {
    FIELD("consumer-tag", SHORTSTR, basic_cancel_ok, consumer_tag),
};
static const amqp_field_desc publish_args[] = {
    FIELD("reserved-1", SHORT, basic_publish, reserved_1),
    FIELD("exchange", SHORTSTR, basic_publish, exchange),
    FIELD("routing-key", SHORTSTR, basic_publish, routing_key),
    FIELD("mandatory", BIT, basic_publish, mandatory),
    FIELD("immediate", BIT, basic_publish, immediate),
};
static const amqp_field_desc return_args[] = {
    FIELD("reply-code", SHORT, basic_return, reply_code),
    FIELD("reply-text", SHORTSTR, basic_return, reply_text),
    FIELD("exchange", SHORTSTR, basic_return, exchange),
    FIELD("routing-key", SHORTSTR, basic_return, routing_key),
};
static const amqp_field_desc deliver_args[] = {
    FIELD("consumer-tag", SHORTSTR, basic_deliver, consumer_tag),
    FIELD("delivery-tag", LONGLONG, basic_deliver, delivery_tag),
    FIELD("redelivered", BIT, basic_deliver, redelivered),
    FIELD("exchange", SHORTSTR, basic_deliver, exchange),
    FIELD("routing-key", SHORTSTR, basic_deliver, routing_key),
};
static const amqp_field_desc get_args[] = {
    FIELD("reserved-1", SHORT, basic_get, reserved_1),
    FIELD("queue", SHORTSTR, basic_get, queue),
    FIELD("no-ack", BIT, basic_get, no_ack),
};
static const amqp_field_desc get_ok_args[] = {
    FIELD("delivery-tag", LONGLONG, basic_get_ok, delivery_tag),
    FIELD("redelivered", BIT, basic_get_ok, redelivered),
    FIELD("exchange", SHORTSTR, basic_get_ok, exchange),
    FIELD("routing-key", SHORTSTR, basic_get_ok, routing_key),
    FIELD("message-count", LONG, basic_get_ok, message_count),
};
static const amqp_field_desc get_empty_args[] = {
    FIELD("reserved-1", SHORTSTR, basic_get_empty, reserved_1),
};
static const amqp_field_desc ack_args[] = {
    FIELD("delivery-tag", LONGLONG, basic_ack, delivery_tag),
    FIELD("multiple", BIT, basic_ack, multiple),
};
static const amqp_field_desc reject_args[] = {
    FIELD("delivery-tag", LONGLONG, basic_reject, delivery_tag),
    FIELD("requeue", BIT, basic_reject, requeue),
};
static const amqp_field_desc recover_async_args[] = {
    FIELD("requeue", BIT, basic_recover_async, requeue),
};
static const amqp_field_desc recover_args[] = {
    FIELD("requeue", BIT, basic_recover, requeue),
};
static const amqp_field_desc nack_args[] = {
    FIELD("delivery-tag", LONGLONG, basic_nack, delivery_tag),
    FIELD("multiple", BIT, basic_nack, multiple),
    FIELD("requeue", BIT, basic_nack, requeue),
};

/* basic.cancel goes both ways: RabbitMQ's consumer cancel notification
 * lets the server cancel a consumer. ack and nack go both ways as
 * publisher confirms. get may also be answered by get-empty. */
const amqp_method_info amqp_basic_methods[] = {
    ROW(BASIC_QOS, "basic.qos", CLIENT | SYNC, AMQP_BASIC_QOS_OK, qos_args),
    ROW0(BASIC_QOS_OK, "basic.qos-ok", SERVER, 0),
    ROW(BASIC_CONSUME, "basic.consume", CLIENT | SYNC | NO_WAIT,
        AMQP_BASIC_CONSUME_OK, consume_args),
    ROW(BASIC_CONSUME_OK, "basic.consume-ok", SERVER, 0, consume_ok_args),
    ROW(BASIC_CANCEL, "basic.cancel", BOTH | SYNC | NO_WAIT,
        AMQP_BASIC_CANCEL_OK, cancel_args),
    ROW(BASIC_CANCEL_OK, "basic.cancel-ok", BOTH, 0, cancel_ok_args),
    ROW(BASIC_PUBLISH, "basic.publish", CLIENT | CONTENT, 0, publish_args),
    ROW(BASIC_RETURN, "basic.return", SERVER | CONTENT, 0, return_args),
    ROW(BASIC_DELIVER, "basic.deliver", SERVER | CONTENT, 0, deliver_args),
    ROW(BASIC_GET, "basic.get", CLIENT | SYNC, AMQP_BASIC_GET_OK, get_args),
    ROW(BASIC_GET_OK, "basic.get-ok", SERVER | CONTENT, 0, get_ok_args),
    ROW(BASIC_GET_EMPTY, "basic.get-empty", SERVER, 0, get_empty_args),
    ROW(BASIC_ACK, "basic.ack", BOTH, 0, ack_args),
    ROW(BASIC_REJECT, "basic.reject", CLIENT, 0, reject_args),
    ROW(BASIC_RECOVER_ASYNC, "basic.recover-async", CLIENT, 0, recover_async_args),
    ROW(BASIC_RECOVER, "basic.recover", CLIENT | SYNC, AMQP_BASIC_RECOVER_OK, recover_args),
    ROW0(BASIC_RECOVER_OK, "basic.recover-ok", SERVER, 0),
    ROW(BASIC_NACK, "basic.nack", BOTH, 0, nack_args),
};
const size_t amqp_basic_methods_n =
    sizeof amqp_basic_methods / sizeof amqp_basic_methods[0];

/* ---- content header ---------------------------------------------------- */

int
amqp_content_header_decode(const uint8_t *payload, size_t len,
                           amqp_content_header *out)
{
    if (len < 14)
        return AMQP_ERR_MALFORMED;
    out->class_id = amqp_get16(payload);
    out->weight = amqp_get16(payload + 2);
    out->body_size = amqp_get64(payload + 4);
    out->flags = amqp_get16(payload + 12);

    /* Bit 0 announces another flags word. Basic has only 14 properties so
     * none is ever needed, but the grammar allows them; step over. */
    size_t off = 14;
    uint16_t word = out->flags;
    while (word & 1) {
        if (2 > len - off)
            return AMQP_ERR_MALFORMED;
        word = amqp_get16(payload + off);
        off += 2;
    }
    if (len - off > UINT32_MAX)
        return AMQP_ERR_MALFORMED;
    out->props = payload + off;
    out->props_len = (uint32_t)(len - off);
    return AMQP_OK;
}

size_t
amqp_header_frame_encode(uint16_t channel, uint64_t body_size, uint16_t flags,
                         const uint8_t *props, uint32_t props_len, uint8_t *out)
{
    uint8_t *p = out;
    assert(props_len <= UINT32_MAX - 14);
    amqp_frame_header_write(p, AMQP_FRAME_HEADER, channel, props_len + 14);
    p += AMQP_FRAME_HEADER_SIZE;
    amqp_put16(p, AMQP_CLASS_BASIC);
    amqp_put16(p + 2, 0);
    amqp_put64(p + 4, body_size);
    amqp_put16(p + 12, flags);
    p += 14;
    if (props_len > 0)
        memcpy(p, props, props_len);
    p += props_len;
    *p++ = AMQP_FRAME_END;
    assert((size_t)(p - out) == AMQP_HEADER_FRAME_SIZE(props_len));
    return AMQP_HEADER_FRAME_SIZE(props_len);
}

static uint8_t *
put_shortstr(uint8_t *p, amqp_bytes s)
{
    assert(s.len <= 255);
    *p++ = (uint8_t)s.len;
    if (s.len)
        memcpy(p, s.data, s.len);
    return p + s.len;
}

size_t
amqp_deliver_frame_encode(uint16_t channel, const amqp_basic_deliver *d, uint8_t *out)
{
    size_t n = AMQP_DELIVER_FRAME_SIZE(d);
    amqp_frame_header_write(out, AMQP_FRAME_METHOD, channel, (uint32_t)(n - AMQP_FRAME_OVERHEAD));
    uint8_t *p = out + AMQP_FRAME_HEADER_SIZE;
    amqp_put16(p, AMQP_CLASS_BASIC);
    amqp_put16(p + 2, 60);         /* deliver */
    p = put_shortstr(p + 4, d->consumer_tag);
    amqp_put64(p, d->delivery_tag);
    p[8] = d->redelivered ? 1 : 0;
    p = put_shortstr(p + 9, d->exchange);
    p = put_shortstr(p, d->routing_key);
    *p++ = AMQP_FRAME_END;
    assert((size_t)(p - out) == n);
    return n;
}

/* ---- basic properties -------------------------------------------------- */

#define PROP(flag, type, field) \
    { AMQP_BASIC_##flag, AMQP_FT_##type, (uint16_t)offsetof(amqp_basic_props, field) }

static const struct prop_desc {
    uint16_t flag;
    uint8_t type;                /* SHORTSTR, OCTET, TABLE or TIMESTAMP */
    uint16_t offset;             /* within amqp_basic_props */
} props_desc[] = {
    PROP(CONTENT_TYPE, SHORTSTR, content_type),
    PROP(CONTENT_ENCODING, SHORTSTR, content_encoding),
    PROP(HEADERS, TABLE, headers),
    PROP(DELIVERY_MODE, OCTET, delivery_mode),
    PROP(PRIORITY, OCTET, priority),
    PROP(CORRELATION_ID, SHORTSTR, correlation_id),
    PROP(REPLY_TO, SHORTSTR, reply_to),
    PROP(EXPIRATION, SHORTSTR, expiration),
    PROP(MESSAGE_ID, SHORTSTR, message_id),
    PROP(TIMESTAMP, TIMESTAMP, timestamp),
    PROP(TYPE, SHORTSTR, type),
    PROP(USER_ID, SHORTSTR, user_id),
    PROP(APP_ID, SHORTSTR, app_id),
    PROP(CLUSTER_ID, SHORTSTR, cluster_id),
};
#define NPROPS (sizeof props_desc / sizeof props_desc[0])
#define PROPS_KNOWN 0xfffc       /* the 14 flags above */

int
amqp_props_decode(uint16_t flags, const uint8_t *props, size_t len,
                  amqp_basic_props *out, amqp_pool *pool)
{
    memset(out, 0, sizeof *out);
    /* Unknown low bits (the continuation bit among them) carry nothing in
     * this list; dropping them keeps a re-encode well-formed. */
    out->flags = flags & PROPS_KNOWN;
    char *base = (char *)out;
    size_t off = 0;

    for (size_t i = 0; i < NPROPS; i++) {
        const struct prop_desc *pd = &props_desc[i];
        void *dst = base + pd->offset;
        if (!(flags & pd->flag))
            continue;
        switch (pd->type) {
        case AMQP_FT_SHORTSTR: {
            if (1 > len - off)
                return AMQP_ERR_MALFORMED;
            uint8_t n = props[off++];
            if (n > len - off)
                return AMQP_ERR_MALFORMED;
            *(amqp_bytes *)dst = (amqp_bytes){ (const char *)props + off, n };
            off += n;
            break;
        }
        case AMQP_FT_OCTET:
            if (1 > len - off)
                return AMQP_ERR_MALFORMED;
            *(uint8_t *)dst = props[off++];
            break;
        case AMQP_FT_TIMESTAMP:
            if (8 > len - off)
                return AMQP_ERR_MALFORMED;
            *(uint64_t *)dst = amqp_get64(props + off);
            off += 8;
            break;
        case AMQP_FT_TABLE: {
            int rc = amqp_table_decode(props, len, &off, dst, pool);
            if (rc != AMQP_OK)
                return rc;
            break;
        }
        }
    }
    return AMQP_OK;
}

int
amqp_props_peek(uint16_t flags, const uint8_t *props, size_t len,
                uint8_t *delivery_mode, uint8_t *priority)
{
    size_t off = 0;
    *delivery_mode = *priority = 0;
    for (uint16_t f = AMQP_BASIC_CONTENT_TYPE; f >= AMQP_BASIC_CONTENT_ENCODING; f >>= 1) {
        if (!(flags & f))
            continue;
        if (1 > len - off || props[off] > len - off - 1)
            return AMQP_ERR_MALFORMED;
        off += 1 + (size_t)props[off];
    }
    if (flags & AMQP_BASIC_HEADERS) {
        if (4 > len - off || amqp_get32(props + off) > len - off - 4)
            return AMQP_ERR_MALFORMED;
        off += 4 + (size_t)amqp_get32(props + off);
    }
    if (flags & AMQP_BASIC_DELIVERY_MODE) {
        if (1 > len - off)
            return AMQP_ERR_MALFORMED;
        *delivery_mode = props[off++];
    }
    if (flags & AMQP_BASIC_PRIORITY) {
        if (1 > len - off)
            return AMQP_ERR_MALFORMED;
        *priority = props[off];
    }
    return AMQP_OK;
}

size_t
amqp_props_size(const amqp_basic_props *p)
{
    const char *base = (const char *)p;
    size_t n = 0;

    for (size_t i = 0; i < NPROPS; i++) {
        const struct prop_desc *pd = &props_desc[i];
        const void *src = base + pd->offset;
        if (!(p->flags & pd->flag))
            continue;
        switch (pd->type) {
        case AMQP_FT_SHORTSTR:
            assert(((const amqp_bytes *)src)->len <= 255);
            n += 1 + (size_t)((const amqp_bytes *)src)->len;
            break;
        case AMQP_FT_OCTET: n += 1; break;
        case AMQP_FT_TIMESTAMP: n += 8; break;
        case AMQP_FT_TABLE: n += amqp_table_size(src); break;
        }
    }
    return n;
}

size_t
amqp_props_encode(const amqp_basic_props *p, uint8_t *out)
{
    const char *base = (const char *)p;
    size_t expect = amqp_props_size(p);
    uint8_t *w = out;

    for (size_t i = 0; i < NPROPS; i++) {
        const struct prop_desc *pd = &props_desc[i];
        const void *src = base + pd->offset;
        if (!(p->flags & pd->flag))
            continue;
        switch (pd->type) {
        case AMQP_FT_SHORTSTR: {
            const amqp_bytes *s = src;
            *w++ = (uint8_t)s->len;
            if (s->len > 0)
                memcpy(w, s->data, s->len);
            w += s->len;
            break;
        }
        case AMQP_FT_OCTET:
            *w++ = *(const uint8_t *)src;
            break;
        case AMQP_FT_TIMESTAMP:
            amqp_put64(w, *(const uint64_t *)src);
            w += 8;
            break;
        case AMQP_FT_TABLE:
            w += amqp_table_encode(src, w);
            break;
        }
    }
    assert((size_t)(w - out) == expect);
    return expect;
}
