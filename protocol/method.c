/*
 * The generic method codec. Each class file (connection.c, channel.c, ...)
 * holds its methods as rows of field descriptors; this file finds a row and
 * walks its fields to decode, size or encode any method, so adding a method
 * is adding a row, never code.
 *
 * Consecutive bit fields share octets, least significant bit first, eight
 * to an octet; any other field type ends the run (0-9-1 section 4.2.5.2).
 */
#include <assert.h>
#include <string.h>

#include "protocol/amqp.h"

/* Defined by the class files; each array is sorted by method index. No
 * private header exists for them because these are their only users. */
#define AMQP_X_CLASS(c) \
    extern const amqp_method_info amqp_##c##_methods[]; \
    extern const size_t amqp_##c##_methods_n;
AMQP_X_CLASS(connection)
AMQP_X_CLASS(channel)
AMQP_X_CLASS(access)
AMQP_X_CLASS(exchange)
AMQP_X_CLASS(queue)
AMQP_X_CLASS(basic)
AMQP_X_CLASS(confirm)
AMQP_X_CLASS(tx)
#undef AMQP_X_CLASS

const amqp_method_info *
amqp_method_info_get(uint32_t id)
{
    const amqp_method_info *rows;
    size_t n;

    switch (AMQP_CLASS_OF(id)) {
    case AMQP_CLASS_CONNECTION: rows = amqp_connection_methods; n = amqp_connection_methods_n; break;
    case AMQP_CLASS_CHANNEL: rows = amqp_channel_methods; n = amqp_channel_methods_n; break;
    case AMQP_CLASS_ACCESS: rows = amqp_access_methods; n = amqp_access_methods_n; break;
    case AMQP_CLASS_EXCHANGE: rows = amqp_exchange_methods; n = amqp_exchange_methods_n; break;
    case AMQP_CLASS_QUEUE: rows = amqp_queue_methods; n = amqp_queue_methods_n; break;
    case AMQP_CLASS_BASIC: rows = amqp_basic_methods; n = amqp_basic_methods_n; break;
    case AMQP_CLASS_CONFIRM: rows = amqp_confirm_methods; n = amqp_confirm_methods_n; break;
    case AMQP_CLASS_TX: rows = amqp_tx_methods; n = amqp_tx_methods_n; break;
    default: return NULL;
    }
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows[mid].id == id)
            return &rows[mid];
        if (rows[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *
amqp_method_name(uint32_t id)
{
    const amqp_method_info *info = amqp_method_info_get(id);
    return info != NULL ? info->name : "unknown";
}

/* ---- decoding ---------------------------------------------------------- */

static int
str_read(const uint8_t *p, size_t len, size_t *off, size_t prefix,
         amqp_bytes *out)
{
    if (prefix > len - *off)
        return AMQP_ERR_MALFORMED;
    uint32_t n = prefix == 1 ? p[*off] : amqp_get32(p + *off);
    *off += prefix;
    if (n > len - *off)
        return AMQP_ERR_MALFORMED;
    out->data = (const char *)p + *off;
    out->len = n;
    *off += n;
    return AMQP_OK;
}

/*
 * Hand-written paths for the methods of every message: basic.publish in,
 * basic.deliver and basic.ack out. They must agree byte for byte with the
 * table walk, which the unit tests check for every method.
 */
static int
decode_publish(const uint8_t *p, size_t len, amqp_method *out)
{
    amqp_basic_publish *a = &out->a.basic_publish;
    size_t off = 4;
    out->id = AMQP_BASIC_PUBLISH;
    if (3 > len - off)
        return AMQP_ERR_MALFORMED;
    a->reserved_1 = amqp_get16(p + off);
    off += 2;
    uint8_t n = p[off++];
    if ((size_t)n + 1 > len - off)
        return AMQP_ERR_MALFORMED;
    a->exchange = (amqp_bytes){ (const char *)p + off, n };
    off += n;
    n = p[off++];
    if ((size_t)n + 1 > len - off)
        return AMQP_ERR_MALFORMED;
    a->routing_key = (amqp_bytes){ (const char *)p + off, n };
    off += n;
    a->mandatory = p[off] & 1;
    a->immediate = (p[off] >> 1) & 1;
    return AMQP_OK;
}

static size_t
deliver_size(const amqp_basic_deliver *d)
{
    return 4 + 1 + d->consumer_tag.len + 8 + 1 + 1 + d->exchange.len + 1 + d->routing_key.len;
}

/* An empty string may have a NULL pointer: memcpy must not see it. */
static uint8_t *
put_shortstr(uint8_t *p, amqp_bytes b)
{
    *p++ = (uint8_t)b.len;
    if (b.len)
        memcpy(p, b.data, b.len);
    return p + b.len;
}

static size_t
encode_deliver(const amqp_basic_deliver *d, uint8_t *p)
{
    uint8_t *start = p;
    amqp_put32(p, AMQP_BASIC_DELIVER);
    p += 4;
    assert(d->consumer_tag.len <= 255 && d->exchange.len <= 255 && d->routing_key.len <= 255);
    p = put_shortstr(p, d->consumer_tag);
    amqp_put64(p, d->delivery_tag);
    p += 8;
    *p++ = d->redelivered ? 1 : 0;
    p = put_shortstr(p, d->exchange);
    p = put_shortstr(p, d->routing_key);
    return (size_t)(p - start);
}

static size_t
encode_ack(const amqp_basic_ack *a, uint8_t *p)
{
    amqp_put32(p, AMQP_BASIC_ACK);
    amqp_put64(p + 4, a->delivery_tag);
    p[12] = a->multiple ? 1 : 0;
    return 13;
}

int
amqp_method_decode(const uint8_t *payload, size_t len, amqp_method *out,
                   amqp_pool *pool)
{
    if (len < 4)
        return AMQP_ERR_MALFORMED;
    uint32_t id = amqp_get32(payload);
    if (id == AMQP_BASIC_PUBLISH)
        return decode_publish(payload, len, out);
    const amqp_method_info *info = amqp_method_info_get(id);
    if (info == NULL)
        return AMQP_ERR_UNKNOWN_METHOD;

    memset(out, 0, sizeof *out);
    out->id = id;
    char *base = (char *)&out->a;
    size_t off = 4;
    int bit = -1;                /* position in bits, or -1: no open octet */
    uint8_t bits = 0;

    for (unsigned i = 0; i < info->nfields; i++) {
        const amqp_field_desc *fd = &info->fields[i];
        void *dst = base + fd->offset;
        int rc = AMQP_OK;

        if (fd->type == AMQP_FT_BIT) {
            if (bit < 0 || bit == 8) {
                if (1 > len - off)
                    return AMQP_ERR_MALFORMED;
                bits = payload[off++];
                bit = 0;
            }
            *(bool *)dst = (bits >> bit) & 1;
            bit++;
            continue;
        }
        bit = -1;
        switch (fd->type) {
        case AMQP_FT_OCTET:
            if (1 > len - off)
                return AMQP_ERR_MALFORMED;
            *(uint8_t *)dst = payload[off];
            off += 1;
            break;
        case AMQP_FT_SHORT:
            if (2 > len - off)
                return AMQP_ERR_MALFORMED;
            *(uint16_t *)dst = amqp_get16(payload + off);
            off += 2;
            break;
        case AMQP_FT_LONG:
            if (4 > len - off)
                return AMQP_ERR_MALFORMED;
            *(uint32_t *)dst = amqp_get32(payload + off);
            off += 4;
            break;
        case AMQP_FT_LONGLONG:
        case AMQP_FT_TIMESTAMP:
            if (8 > len - off)
                return AMQP_ERR_MALFORMED;
            *(uint64_t *)dst = amqp_get64(payload + off);
            off += 8;
            break;
        case AMQP_FT_SHORTSTR:
            rc = str_read(payload, len, &off, 1, dst);
            break;
        case AMQP_FT_LONGSTR:
            rc = str_read(payload, len, &off, 4, dst);
            break;
        case AMQP_FT_TABLE:
            rc = amqp_table_decode(payload, len, &off, dst, pool);
            break;
        default:
            assert(!"bad field type in the method table");
        }
        if (rc != AMQP_OK)
            return rc;
    }
    /* Trailing bytes are tolerated: no client sends them, and refusing
     * them would buy nothing. */
    return AMQP_OK;
}

/* ---- encoding ---------------------------------------------------------- */

static const amqp_method_info *
info_for_encode(const amqp_method *m)
{
    const amqp_method_info *info = amqp_method_info_get(m->id);
    assert(info != NULL);        /* encoding an unknown id is our bug */
    return info;
}

size_t
amqp_method_size(const amqp_method *m)
{
    if (m->id == AMQP_BASIC_DELIVER)
        return deliver_size(&m->a.basic_deliver);
    if (m->id == AMQP_BASIC_ACK)
        return 13;
    const amqp_method_info *info = info_for_encode(m);
    const char *base = (const char *)&m->a;
    size_t n = 4;
    int bit = -1;

    for (unsigned i = 0; i < info->nfields; i++) {
        const amqp_field_desc *fd = &info->fields[i];
        const void *src = base + fd->offset;

        if (fd->type == AMQP_FT_BIT) {
            if (bit < 0 || bit == 8) {
                n += 1;
                bit = 0;
            }
            bit++;
            continue;
        }
        bit = -1;
        switch (fd->type) {
        case AMQP_FT_OCTET: n += 1; break;
        case AMQP_FT_SHORT: n += 2; break;
        case AMQP_FT_LONG: n += 4; break;
        case AMQP_FT_LONGLONG:
        case AMQP_FT_TIMESTAMP: n += 8; break;
        case AMQP_FT_SHORTSTR:
            assert(((const amqp_bytes *)src)->len <= 255);
            n += 1 + (size_t)((const amqp_bytes *)src)->len;
            break;
        case AMQP_FT_LONGSTR:
            n += 4 + (size_t)((const amqp_bytes *)src)->len;
            break;
        case AMQP_FT_TABLE:
            n += amqp_table_size(src);
            break;
        default:
            assert(!"bad field type in the method table");
        }
    }
    return n;
}

size_t
amqp_method_encode(const amqp_method *m, uint8_t *out)
{
    if (m->id == AMQP_BASIC_DELIVER)
        return encode_deliver(&m->a.basic_deliver, out);
    if (m->id == AMQP_BASIC_ACK)
        return encode_ack(&m->a.basic_ack, out);
    const amqp_method_info *info = info_for_encode(m);
    const char *base = (const char *)&m->a;
    size_t expect = amqp_method_size(m);
    uint8_t *p = out;
    uint8_t *bits = NULL;        /* the octet the current bit run fills */
    int bit = -1;

    amqp_put32(p, m->id);
    p += 4;
    for (unsigned i = 0; i < info->nfields; i++) {
        const amqp_field_desc *fd = &info->fields[i];
        const void *src = base + fd->offset;
        const amqp_bytes *s = src;

        if (fd->type == AMQP_FT_BIT) {
            if (bit < 0 || bit == 8) {
                bits = p++;
                *bits = 0;
                bit = 0;
            }
            if (*(const bool *)src)
                *bits |= (uint8_t)(1u << bit);
            bit++;
            continue;
        }
        bit = -1;
        switch (fd->type) {
        case AMQP_FT_OCTET:
            *p++ = *(const uint8_t *)src;
            break;
        case AMQP_FT_SHORT:
            amqp_put16(p, *(const uint16_t *)src);
            p += 2;
            break;
        case AMQP_FT_LONG:
            amqp_put32(p, *(const uint32_t *)src);
            p += 4;
            break;
        case AMQP_FT_LONGLONG:
        case AMQP_FT_TIMESTAMP:
            amqp_put64(p, *(const uint64_t *)src);
            p += 8;
            break;
        case AMQP_FT_SHORTSTR:
            assert(s->len <= 255);
            *p++ = (uint8_t)s->len;
            if (s->len > 0)
                memcpy(p, s->data, s->len);
            p += s->len;
            break;
        case AMQP_FT_LONGSTR:
            amqp_put32(p, s->len);
            p += 4;
            if (s->len > 0)
                memcpy(p, s->data, s->len);
            p += s->len;
            break;
        case AMQP_FT_TABLE:
            p += amqp_table_encode(src, p);
            break;
        default:
            assert(!"bad field type in the method table");
        }
    }
    assert((size_t)(p - out) == expect);
    return expect;
}

size_t
amqp_method_frame_size(const amqp_method *m)
{
    return amqp_method_size(m) + AMQP_FRAME_OVERHEAD;
}

size_t
amqp_method_frame_encode(uint16_t channel, const amqp_method *m, uint8_t *out)
{
    size_t n = amqp_method_size(m);
    assert(n <= UINT32_MAX);
    amqp_frame_header_write(out, AMQP_FRAME_METHOD, channel, (uint32_t)n);
    size_t w = amqp_method_encode(m, out + AMQP_FRAME_HEADER_SIZE);
    assert(w == n);
    (void)w;
    out[AMQP_FRAME_HEADER_SIZE + n] = AMQP_FRAME_END;
    return n + AMQP_FRAME_OVERHEAD;
}
