/*
 * What every MQTT packet shares: the fixed header with its variable-length
 * remaining length, the string and integer readers and writers, and MQTT 5
 * properties.
 *
 * Properties are data: one table indexed by identifier gives each one's
 * wire type, the packets it may appear in and those where it may repeat,
 * a value rule, and where it lands in mqtt_props. One reader and one
 * writer walk that table, so a packet file never handles a property by
 * hand. Reason codes are a table too, with the packets that may carry them.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "plugins/mqtt/mqtt.h"

#define T(type) ((uint16_t)(1u << MQTT_##type))
#define WILL ((uint16_t)(1u << MQTT_PROPS_WILL))
#define TYPE_BIT(type) ((type) < 16 ? (uint16_t)(1u << (type)) : 0)

/* ---- names -------------------------------------------------------------- */

static const char *const type_names[16] = {
    "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
    "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
    "PINGRESP", "DISCONNECT", "AUTH",
};

const char *
mqtt_type_name(unsigned type)
{
    return type >= 1 && type <= 15 ? type_names[type] : "UNKNOWN";
}

#define ACKS (T(PUBACK) | T(PUBREC))
#define REFUSALS (T(CONNACK) | ACKS | T(SUBACK) | T(UNSUBACK) | T(DISCONNECT))

/* Section 2.4: each code with the packets that may carry it. */
static const struct {
    uint8_t code;
    uint16_t packets;
    const char *name;
} reasons[] = {
    { 0x00, T(CONNACK) | ACKS | T(PUBREL) | T(PUBCOMP) | T(SUBACK) | T(UNSUBACK) |
            T(DISCONNECT) | T(AUTH), "Success" },
    { 0x01, T(SUBACK), "Granted QoS 1" },
    { 0x02, T(SUBACK), "Granted QoS 2" },
    { 0x04, T(DISCONNECT), "Disconnect with Will Message" },
    { 0x10, ACKS, "No matching subscribers" },
    { 0x11, T(UNSUBACK), "No subscription existed" },
    { 0x18, T(AUTH), "Continue authentication" },
    { 0x19, T(AUTH), "Re-authenticate" },
    { 0x80, REFUSALS, "Unspecified error" },
    { 0x81, T(CONNACK) | T(DISCONNECT), "Malformed Packet" },
    { 0x82, T(CONNACK) | T(DISCONNECT), "Protocol Error" },
    { 0x83, REFUSALS, "Implementation specific error" },
    { 0x84, T(CONNACK), "Unsupported Protocol Version" },
    { 0x85, T(CONNACK), "Client Identifier not valid" },
    { 0x86, T(CONNACK), "Bad User Name or Password" },
    { 0x87, REFUSALS, "Not authorized" },
    { 0x88, T(CONNACK), "Server unavailable" },
    { 0x89, T(CONNACK) | T(DISCONNECT), "Server busy" },
    { 0x8A, T(CONNACK), "Banned" },
    { 0x8B, T(DISCONNECT), "Server shutting down" },
    { 0x8C, T(CONNACK) | T(DISCONNECT), "Bad authentication method" },
    { 0x8D, T(DISCONNECT), "Keep Alive timeout" },
    { 0x8E, T(DISCONNECT), "Session taken over" },
    { 0x8F, T(SUBACK) | T(UNSUBACK) | T(DISCONNECT), "Topic Filter invalid" },
    { 0x90, T(CONNACK) | ACKS | T(DISCONNECT), "Topic Name invalid" },
    { 0x91, ACKS | T(SUBACK) | T(UNSUBACK), "Packet Identifier in use" },
    { 0x92, T(PUBREL) | T(PUBCOMP), "Packet Identifier not found" },
    { 0x93, T(DISCONNECT), "Receive Maximum exceeded" },
    { 0x94, T(DISCONNECT), "Topic Alias invalid" },
    { 0x95, T(CONNACK) | T(DISCONNECT), "Packet too large" },
    { 0x96, T(DISCONNECT), "Message rate too high" },
    { 0x97, T(CONNACK) | ACKS | T(SUBACK) | T(DISCONNECT), "Quota exceeded" },
    { 0x98, T(DISCONNECT), "Administrative action" },
    { 0x99, T(CONNACK) | ACKS | T(DISCONNECT), "Payload format invalid" },
    { 0x9A, T(CONNACK) | T(DISCONNECT), "Retain not supported" },
    { 0x9B, T(CONNACK) | T(DISCONNECT), "QoS not supported" },
    { 0x9C, T(CONNACK) | T(DISCONNECT), "Use another server" },
    { 0x9D, T(CONNACK) | T(DISCONNECT), "Server moved" },
    { 0x9E, T(SUBACK) | T(DISCONNECT), "Shared Subscriptions not supported" },
    { 0x9F, T(CONNACK) | T(DISCONNECT), "Connection rate exceeded" },
    { 0xA0, T(DISCONNECT), "Maximum connect time" },
    { 0xA1, T(SUBACK) | T(DISCONNECT), "Subscription Identifiers not supported" },
    { 0xA2, T(SUBACK) | T(DISCONNECT), "Wildcard Subscriptions not supported" },
};

static int
reason_index(unsigned rc)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == rc)
            return (int)i;
    return -1;
}

const char *
mqtt_reason_name(unsigned rc)
{
    int i = reason_index(rc);
    return i < 0 ? "Unknown" : reasons[i].name;
}

bool
mqtt_reason_allowed(unsigned type, unsigned rc)
{
    int i = reason_index(rc);
    return i >= 0 && (reasons[i].packets & TYPE_BIT(type)) != 0;
}

uint8_t
mqtt_connack_return_code(unsigned reason)
{
    switch (reason) {
    case MQTT_RC_SUCCESS: return MQTT_CONNACK_ACCEPTED;
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return MQTT_CONNACK_REFUSED_PROTOCOL_VERSION;
    case MQTT_RC_CLIENT_ID_NOT_VALID: return MQTT_CONNACK_REFUSED_IDENTIFIER_REJECTED;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return MQTT_CONNACK_REFUSED_BAD_USERNAME_OR_PASSWORD;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED: return MQTT_CONNACK_REFUSED_NOT_AUTHORIZED;
    default: return MQTT_CONNACK_REFUSED_SERVER_UNAVAILABLE;
    }
}

const char *
mqtt_strerror(int status)
{
    if (status == MQTT_OK)
        return "ok";
    if (status == MQTT_NEED_MORE)
        return "need more";
    return status < 0 ? mqtt_reason_name((unsigned)-status) : "Unknown";
}

/* ---- strings ------------------------------------------------------------ */

mqtt_str
mqtt_str_cstr(const char *s)
{
    return (mqtt_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

bool
mqtt_str_eq(mqtt_str a, mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool
mqtt_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        /* C0 and C1 could only start overlong forms; F5..FF lie past
         * U+10FFFF. */
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n > len - i - 1)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- framing ------------------------------------------------------------ */

int
mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *value, size_t *used)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return MQTT_NEED_MORE;
        v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
        if (!(buf[i] & 0x80)) {
            *value = v;
            *used = i + 1;
            return MQTT_OK;
        }
    }
    /* A fifth octet cannot exist, so there is no point waiting for it. */
    return MQTT_ERR_MALFORMED;
}

size_t
mqtt_varint_size(uint32_t v)
{
    assert(v <= MQTT_MAX_VARINT);
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

size_t
mqtt_varint_encode(uint32_t v, uint8_t *out)
{
    size_t n = 0;
    assert(v <= MQTT_MAX_VARINT);
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[n++] = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return n;
}

size_t
mqtt_packet_size(size_t remaining)
{
    if (remaining > MQTT_MAX_REMAINING)
        return 0;
    return 1 + mqtt_varint_size((uint32_t)remaining) + remaining;
}

int
mqtt_frame_parse(const uint8_t *buf, size_t len, uint32_t max_packet,
                 mqtt_frame *out, size_t *consumed)
{
    if (len < 2)
        return MQTT_NEED_MORE;
    uint8_t type = buf[0] >> 4;
    if (type == 0)
        return MQTT_ERR_MALFORMED;

    uint32_t remaining;
    size_t n;
    int rc = mqtt_varint_decode(buf + 1, len - 1, &remaining, &n);
    if (rc != MQTT_OK)
        return rc;

    /* Judged from the fixed header alone, so a caller never buffers toward
     * a packet it will refuse anyway. */
    uint64_t total = 1 + (uint64_t)n + remaining;
    if (max_packet != 0 && total > max_packet)
        return MQTT_ERR_TOO_LARGE;
    if (remaining > len - 1 - n)
        return MQTT_NEED_MORE;

    out->type = type;
    out->flags = buf[0] & 0x0F;
    out->body = buf + 1 + n;
    out->len = remaining;
    *consumed = (size_t)total;
    return MQTT_OK;
}

/* ---- reader ------------------------------------------------------------- */

int
mqtt_reader_fail(mqtt_reader *r, int err)
{
    if (r->err == 0)
        r->err = err;
    return r->err;
}

/* True if n more octets are there to read; otherwise marks the reader. */
static bool
reader_has(mqtt_reader *r, uint32_t n)
{
    if (r->err)
        return false;
    if (n <= r->len - r->off)
        return true;
    r->err = MQTT_ERR_MALFORMED;
    return false;
}

uint8_t
mqtt_read_u8(mqtt_reader *r)
{
    if (!reader_has(r, 1))
        return 0;
    return r->buf[r->off++];
}

uint16_t
mqtt_read_u16(mqtt_reader *r)
{
    if (!reader_has(r, 2))
        return 0;
    const uint8_t *p = r->buf + r->off;
    r->off += 2;
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t
mqtt_read_u32(mqtt_reader *r)
{
    if (!reader_has(r, 4))
        return 0;
    const uint8_t *p = r->buf + r->off;
    r->off += 4;
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint32_t
mqtt_read_varint(mqtt_reader *r)
{
    if (r->err)
        return 0;
    uint32_t v;
    size_t used;
    if (mqtt_varint_decode(r->buf + r->off, r->len - r->off, &v, &used) != MQTT_OK) {
        r->err = MQTT_ERR_MALFORMED;
        return 0;
    }
    r->off += (uint32_t)used;
    return v;
}

mqtt_str
mqtt_read_binary(mqtt_reader *r)
{
    uint16_t n = mqtt_read_u16(r);
    if (!reader_has(r, n))
        return (mqtt_str){ NULL, 0 };
    mqtt_str s = { r->buf + r->off, n };
    r->off += n;
    return s;
}

mqtt_str
mqtt_read_utf8(mqtt_reader *r)
{
    mqtt_str s = mqtt_read_binary(r);
    if (!r->err && !mqtt_utf8_valid(s.p, s.len)) {
        r->err = MQTT_ERR_MALFORMED;
        return (mqtt_str){ NULL, 0 };
    }
    return s;
}

/* ---- writer ------------------------------------------------------------- */

/* Reserves n octets; running out is our bug, the size was computed first. */
static uint8_t *
writer_take(mqtt_writer *w, size_t n)
{
    assert(n <= w->len - w->off);
    uint8_t *p = w->buf + w->off;
    w->off += n;
    return p;
}

void
mqtt_write_u8(mqtt_writer *w, uint8_t v)
{
    *writer_take(w, 1) = v;
}

void
mqtt_write_u16(mqtt_writer *w, uint16_t v)
{
    uint8_t *p = writer_take(w, 2);
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void
mqtt_write_u32(mqtt_writer *w, uint32_t v)
{
    uint8_t *p = writer_take(w, 4);
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void
mqtt_write_varint(mqtt_writer *w, uint32_t v)
{
    mqtt_varint_encode(v, writer_take(w, mqtt_varint_size(v)));
}

void
mqtt_write_bytes(mqtt_writer *w, const void *p, size_t n)
{
    uint8_t *dst = writer_take(w, n);
    if (n)
        memcpy(dst, p, n);
}

void
mqtt_write_str(mqtt_writer *w, mqtt_str s)
{
    assert(s.len <= UINT16_MAX);
    mqtt_write_u16(w, (uint16_t)s.len);
    mqtt_write_bytes(w, s.p, s.len);
}

mqtt_writer
mqtt_packet_begin(uint8_t *out, uint8_t type, uint8_t flags, size_t remaining)
{
    size_t size = mqtt_packet_size(remaining);
    assert(size != 0);
    mqtt_writer w = { out, size, 0 };
    mqtt_write_u8(&w, (uint8_t)((type << 4) | (flags & 0x0F)));
    mqtt_write_varint(&w, (uint32_t)remaining);
    return w;
}

/* ---- properties --------------------------------------------------------- */

enum prop_type { PT_BYTE = 1, PT_U16, PT_U32, PT_VARINT, PT_UTF8, PT_BINARY, PT_PAIR };
enum prop_rule { PR_ANY, PR_NONZERO, PR_BOOL };

typedef struct prop_desc {
    uint8_t type;                  /* enum prop_type; 0: no such property */
    uint8_t rule;                  /* enum prop_rule */
    uint16_t allowed;              /* packet types (bit 0: will properties) */
    uint16_t repeat;               /* packet types where it may repeat */
    uint16_t offset;               /* field in mqtt_props (scalars, strings) */
} prop_desc;

#define AT(field) ((uint16_t)offsetof(mqtt_props, field))
#define PUB_WILL (T(PUBLISH) | WILL)
#define ACK_ALL (T(PUBACK) | T(PUBREC) | T(PUBREL) | T(PUBCOMP))
#define EVERY (T(CONNECT) | T(CONNACK) | PUB_WILL | ACK_ALL | T(SUBSCRIBE) | \
               T(SUBACK) | T(UNSUBSCRIBE) | T(UNSUBACK) | T(DISCONNECT) | T(AUTH))

/* Section 2.2.2.2, one row per identifier. */
static const prop_desc prop_table[] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = { PT_BYTE, PR_BOOL, PUB_WILL, 0, AT(payload_format) },
    [MQTT_PROP_MESSAGE_EXPIRY] = { PT_U32, PR_ANY, PUB_WILL, 0, AT(message_expiry) },
    [MQTT_PROP_CONTENT_TYPE] = { PT_UTF8, PR_ANY, PUB_WILL, 0, AT(content_type) },
    [MQTT_PROP_RESPONSE_TOPIC] = { PT_UTF8, PR_ANY, PUB_WILL, 0, AT(response_topic) },
    [MQTT_PROP_CORRELATION_DATA] = { PT_BINARY, PR_ANY, PUB_WILL, 0, AT(correlation_data) },
    /* One per matching subscription in a server's PUBLISH. */
    [MQTT_PROP_SUBSCRIPTION_ID] = { PT_VARINT, PR_NONZERO, T(PUBLISH) | T(SUBSCRIBE), T(PUBLISH), 0 },
    [MQTT_PROP_SESSION_EXPIRY] = { PT_U32, PR_ANY, T(CONNECT) | T(CONNACK) | T(DISCONNECT), 0, AT(session_expiry) },
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = { PT_UTF8, PR_ANY, T(CONNACK), 0, AT(assigned_client_id) },
    [MQTT_PROP_SERVER_KEEP_ALIVE] = { PT_U16, PR_ANY, T(CONNACK), 0, AT(server_keep_alive) },
    [MQTT_PROP_AUTH_METHOD] = { PT_UTF8, PR_ANY, T(CONNECT) | T(CONNACK) | T(AUTH), 0, AT(auth_method) },
    [MQTT_PROP_AUTH_DATA] = { PT_BINARY, PR_ANY, T(CONNECT) | T(CONNACK) | T(AUTH), 0, AT(auth_data) },
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = { PT_BYTE, PR_BOOL, T(CONNECT), 0, AT(request_problem_info) },
    [MQTT_PROP_WILL_DELAY] = { PT_U32, PR_ANY, WILL, 0, AT(will_delay) },
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = { PT_BYTE, PR_BOOL, T(CONNECT), 0, AT(request_response_info) },
    [MQTT_PROP_RESPONSE_INFO] = { PT_UTF8, PR_ANY, T(CONNACK), 0, AT(response_info) },
    [MQTT_PROP_SERVER_REFERENCE] = { PT_UTF8, PR_ANY, T(CONNACK) | T(DISCONNECT), 0, AT(server_reference) },
    [MQTT_PROP_REASON_STRING] = { PT_UTF8, PR_ANY, T(CONNACK) | ACK_ALL | T(SUBACK) | T(UNSUBACK) |
                                  T(DISCONNECT) | T(AUTH), 0, AT(reason_string) },
    [MQTT_PROP_RECEIVE_MAXIMUM] = { PT_U16, PR_NONZERO, T(CONNECT) | T(CONNACK), 0, AT(receive_maximum) },
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = { PT_U16, PR_ANY, T(CONNECT) | T(CONNACK), 0, AT(topic_alias_maximum) },
    [MQTT_PROP_TOPIC_ALIAS] = { PT_U16, PR_NONZERO, T(PUBLISH), 0, AT(topic_alias) },
    /* Only 0 or 1: a server that allows QoS 2 leaves it out. */
    [MQTT_PROP_MAXIMUM_QOS] = { PT_BYTE, PR_BOOL, T(CONNACK), 0, AT(maximum_qos) },
    [MQTT_PROP_RETAIN_AVAILABLE] = { PT_BYTE, PR_BOOL, T(CONNACK), 0, AT(retain_available) },
    [MQTT_PROP_USER_PROPERTY] = { PT_PAIR, PR_ANY, EVERY, EVERY, 0 },
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = { PT_U32, PR_NONZERO, T(CONNECT) | T(CONNACK), 0, AT(maximum_packet_size) },
    [MQTT_PROP_WILDCARD_AVAILABLE] = { PT_BYTE, PR_BOOL, T(CONNACK), 0, AT(wildcard_available) },
    [MQTT_PROP_SUBID_AVAILABLE] = { PT_BYTE, PR_BOOL, T(CONNACK), 0, AT(subid_available) },
    [MQTT_PROP_SHARED_AVAILABLE] = { PT_BYTE, PR_BOOL, T(CONNACK), 0, AT(shared_available) },
};

#define PROP_COUNT (sizeof prop_table / sizeof prop_table[0])

static const prop_desc *
prop_find(uint32_t id)
{
    return id < PROP_COUNT && prop_table[id].type ? &prop_table[id] : NULL;
}

bool
mqtt_prop_allowed(unsigned id, unsigned type)
{
    const prop_desc *d = prop_find(id);
    return d && (d->allowed & TYPE_BIT(type)) != 0;
}

/* Reads one value of d's type; returns it as a number (0 for strings,
 * which go to *s). */
static uint32_t
prop_value_read(mqtt_reader *r, const prop_desc *d, mqtt_str *s, mqtt_str *s2)
{
    switch (d->type) {
    case PT_BYTE: return mqtt_read_u8(r);
    case PT_U16: return mqtt_read_u16(r);
    case PT_U32: return mqtt_read_u32(r);
    case PT_VARINT: return mqtt_read_varint(r);
    case PT_UTF8: *s = mqtt_read_utf8(r); return 0;
    case PT_BINARY: *s = mqtt_read_binary(r); return 0;
    case PT_PAIR:
        *s = mqtt_read_utf8(r);
        *s2 = mqtt_read_utf8(r);
        return 0;
    }
    return 0;
}

static void
prop_store(mqtt_props *out, const prop_desc *d, uint32_t v, mqtt_str s)
{
    char *field = (char *)out + d->offset;
    switch (d->type) {
    case PT_BYTE: *(uint8_t *)field = (uint8_t)v; break;
    case PT_U16: *(uint16_t *)field = (uint16_t)v; break;
    case PT_U32: *(uint32_t *)field = v; break;
    case PT_UTF8:
    case PT_BINARY: *(mqtt_str *)field = s; break;
    }
}

void
mqtt_props_read(mqtt_reader *r, unsigned type, mqtt_props *out)
{
    memset(out, 0, sizeof *out);
    uint32_t n = mqtt_read_varint(r);
    if (!reader_has(r, n))
        return;
    /* A reader bounded by the block, so a value cannot run into what
     * follows the properties. */
    mqtt_reader pr = { r->buf + r->off, n, 0, 0 };
    out->user.raw = pr.buf;
    out->user.raw_len = n;
    while (pr.off < pr.len && !pr.err) {
        uint32_t start = pr.off;
        uint32_t id = mqtt_read_varint(&pr);
        const prop_desc *d = prop_find(id);
        if (pr.err)
            break;
        if (!d || !(d->allowed & TYPE_BIT(type))) {
            mqtt_reader_fail(&pr, MQTT_ERR_MALFORMED);
            break;
        }
        mqtt_str s = { NULL, 0 }, s2 = { NULL, 0 };
        uint32_t v = prop_value_read(&pr, d, &s, &s2);
        if (pr.err)
            break;
        if ((out->present & MQTT_PROP_BIT(id)) && !(d->repeat & TYPE_BIT(type))) {
            mqtt_reader_fail(&pr, MQTT_ERR_PROTOCOL);
            break;
        }
        if ((d->rule == PR_NONZERO && v == 0) || (d->rule == PR_BOOL && v > 1)) {
            /* 3.3.2.3.4: alias 0 has a reason of its own */
            mqtt_reader_fail(&pr, id == MQTT_PROP_TOPIC_ALIAS ? MQTT_ERR_TOPIC_ALIAS
                                                              : MQTT_ERR_PROTOCOL);
            break;
        }
        out->present |= MQTT_PROP_BIT(id);
        if (id == MQTT_PROP_USER_PROPERTY) {
            out->user.count++;
            out->user.len += pr.off - start;
        } else if (id == MQTT_PROP_SUBSCRIPTION_ID) {
            if (out->n_subids == MQTT_SUBIDS_MAX) {
                mqtt_reader_fail(&pr, MQTT_ERR_PROTOCOL);
                break;
            }
            out->subids[out->n_subids++] = v;
        } else {
            prop_store(out, d, v, s);
        }
    }
    if (pr.err)
        mqtt_reader_fail(r, pr.err);
    else
        r->off += n;
}

/* Encoded size of one present property other than user properties and
 * subscription identifiers, identifier included. */
static size_t
prop_size(const mqtt_props *p, const prop_desc *d)
{
    const char *field = (const char *)p + d->offset;
    switch (d->type) {
    case PT_BYTE: return 2;
    case PT_U16: return 3;
    case PT_U32: return 5;
    case PT_UTF8:
    case PT_BINARY: return 3 + ((const mqtt_str *)field)->len;
    }
    return 0;
}

/* Length of the property block, without its prefix. */
static size_t
props_body_size(const mqtt_props *p)
{
    size_t n = p->user.len;
    for (unsigned i = 0; i < p->n_subids; i++)
        n += 1 + mqtt_varint_size(p->subids[i]);
    for (uint32_t id = 1; id < PROP_COUNT; id++) {
        const prop_desc *d = prop_find(id);
        if (d && d->type != PT_PAIR && id != MQTT_PROP_SUBSCRIPTION_ID &&
            (p->present & MQTT_PROP_BIT(id)))
            n += prop_size(p, d);
    }
    return n;
}

size_t
mqtt_props_size(const mqtt_props *p)
{
    size_t n = props_body_size(p);
    /* Past the varint range the packet cannot be sent; let the packet size
     * report that rather than assert here. */
    return n > MQTT_MAX_VARINT ? n + 4 : n + mqtt_varint_size((uint32_t)n);
}

void
mqtt_props_write(mqtt_writer *w, const mqtt_props *p, unsigned type)
{
    size_t n = props_body_size(p);
    mqtt_write_varint(w, (uint32_t)n);
    size_t start = w->off;
    for (uint32_t id = 1; id < PROP_COUNT; id++) {
        const prop_desc *d = prop_find(id);
        if (!d || d->type == PT_PAIR)
            continue;
        if (id == MQTT_PROP_SUBSCRIPTION_ID) {
            assert(p->n_subids == 0 || (d->allowed & TYPE_BIT(type)));
            assert(p->n_subids <= MQTT_SUBIDS_MAX);
            for (unsigned i = 0; i < p->n_subids; i++) {
                mqtt_write_u8(w, (uint8_t)id);
                mqtt_write_varint(w, p->subids[i]);
            }
            continue;
        }
        if (!(p->present & MQTT_PROP_BIT(id)))
            continue;
        assert(d->allowed & TYPE_BIT(type));
        const char *field = (const char *)p + d->offset;
        mqtt_write_u8(w, (uint8_t)id);
        switch (d->type) {
        case PT_BYTE: mqtt_write_u8(w, *(const uint8_t *)field); break;
        case PT_U16: mqtt_write_u16(w, *(const uint16_t *)field); break;
        case PT_U32: mqtt_write_u32(w, *(const uint32_t *)field); break;
        case PT_UTF8:
        case PT_BINARY: mqtt_write_str(w, *(const mqtt_str *)field); break;
        }
    }
    if (p->user.count) {
        assert(EVERY & TYPE_BIT(type));
        mqtt_user_props_copy(&p->user, writer_take(w, p->user.len));
    }
    assert(w->off - start == n);
}

/* ---- user properties ---------------------------------------------------- */

/* Finds the next user property entry in u->raw at or after *pos: its
 * offsets [*start, *end) and its strings. The block was checked when it was
 * read (or built by us), but the walk still stays in bounds. */
static bool
user_entry_next(const mqtt_user_props *u, uint32_t *pos, uint32_t *start,
                mqtt_str *key, mqtt_str *value)
{
    mqtt_reader r = { u->raw, u->raw_len, *pos, 0 };
    while (r.off < r.len) {
        uint32_t at = r.off;
        uint32_t id = mqtt_read_varint(&r);
        const prop_desc *d = prop_find(id);
        if (r.err || !d)
            return false;
        mqtt_str s, s2;
        prop_value_read(&r, d, &s, &s2);
        if (r.err)
            return false;
        if (d->type == PT_PAIR) {
            *start = at;
            *key = s;
            *value = s2;
            *pos = r.off;
            return true;
        }
    }
    return false;
}

bool
mqtt_user_props_next(const mqtt_user_props *u, uint32_t *pos, mqtt_str *key,
                     mqtt_str *value)
{
    uint32_t start;
    return user_entry_next(u, pos, &start, key, value);
}

void
mqtt_user_props_copy(const mqtt_user_props *u, uint8_t *out)
{
    if (u->len == 0)
        return;
    /* A block of user properties alone copies in one piece. */
    if (u->raw_len == u->len) {
        memcpy(out, u->raw, u->len);
        return;
    }
    uint32_t pos = 0, start, done = 0;
    mqtt_str k, v;
    while (user_entry_next(u, &pos, &start, &k, &v)) {
        memcpy(out + done, u->raw + start, pos - start);
        done += pos - start;
    }
    assert(done == u->len);
}

size_t
mqtt_user_prop_size(mqtt_str key, mqtt_str value)
{
    return 5 + (size_t)key.len + value.len;
}

size_t
mqtt_user_prop_write(uint8_t *out, mqtt_str key, mqtt_str value)
{
    size_t n = mqtt_user_prop_size(key, value);
    mqtt_writer w = { out, n, 0 };
    mqtt_write_u8(&w, MQTT_PROP_USER_PROPERTY);
    mqtt_write_str(&w, key);
    mqtt_write_str(&w, value);
    return n;
}
