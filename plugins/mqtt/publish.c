/*
 * PUBLISH and the four acknowledgements of its QoS 1 and 2 handshakes.
 *
 * A PUBLISH's payload is whatever follows its variable header, so the
 * decoder never copies it: the session hands the borrowed span on to the
 * message store. The acks share one layout and one pair of functions;
 * MQTT 5 lets them shrink to the packet id alone when all went well.
 */
#include <assert.h>
#include <string.h>

#include "plugins/mqtt/mqtt.h"

enum publish_flag {
    PF_RETAIN = 0x01,
    PF_QOS_SHIFT = 1,
    PF_DUP = 0x08,
};

/* ---- PUBLISH ------------------------------------------------------------ */

int
mqtt_publish_decode(const mqtt_frame *f, mqtt_version v, mqtt_publish *out)
{
    assert(f->type == MQTT_PUBLISH);
    memset(out, 0, sizeof *out);
    out->dup = f->flags & PF_DUP;
    out->qos = (f->flags >> PF_QOS_SHIFT) & 3;
    out->retain = f->flags & PF_RETAIN;
    if (out->qos == 3)
        return MQTT_ERR_MALFORMED;               /* MQTT-3.3.1-4 */
    if (v != MQTT_V31 && out->qos == 0 && out->dup)
        return MQTT_ERR_MALFORMED;               /* MQTT-3.3.1-2 */

    mqtt_reader r = mqtt_reader_of(f);
    out->topic = mqtt_read_utf8(&r);
    if (out->qos > 0)
        out->packet_id = mqtt_read_u16(&r);
    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_PUBLISH, &out->props);
    if (r.err)
        return r.err;
    out->payload = r.buf + r.off;
    out->payload_len = mqtt_reader_left(&r);

    if (out->qos > 0 && out->packet_id == 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-2.2.1-3 */
    if (out->topic.len == 0) {
        /* An alias stands in for the topic; the session resolves it. */
        if (v == MQTT_V5 && mqtt_props_has(&out->props, MQTT_PROP_TOPIC_ALIAS))
            return MQTT_OK;
        return MQTT_ERR_PROTOCOL;
    }
    return mqtt_topic_name_check(out->topic);
}

static size_t
publish_remaining(const mqtt_publish *p, mqtt_version v)
{
    size_t n = 2 + (size_t)p->topic.len + p->payload_len;
    if (p->qos > 0)
        n += 2;
    if (v == MQTT_V5)
        n += mqtt_props_size(&p->props);
    return n;
}

size_t
mqtt_publish_size(const mqtt_publish *p, mqtt_version v)
{
    return mqtt_packet_size(publish_remaining(p, v));
}

void
mqtt_publish_encode(const mqtt_publish *p, mqtt_version v, uint8_t *out)
{
    assert(p->qos <= 2);
    assert(p->qos == 0 ? !p->dup : p->packet_id != 0);
    uint8_t flags = (uint8_t)((p->dup ? PF_DUP : 0) | (p->qos << PF_QOS_SHIFT) |
                              (p->retain ? PF_RETAIN : 0));
    mqtt_writer w = mqtt_packet_begin(out, MQTT_PUBLISH, flags, publish_remaining(p, v));
    mqtt_write_str(&w, p->topic);
    if (p->qos > 0)
        mqtt_write_u16(&w, p->packet_id);
    if (v == MQTT_V5)
        mqtt_props_write(&w, &p->props, MQTT_PUBLISH);
    mqtt_write_bytes(&w, p->payload, p->payload_len);
    assert(w.off == w.len);
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP ------------------------------------ */

static bool
is_ack(unsigned type)
{
    return type >= MQTT_PUBACK && type <= MQTT_PUBCOMP;
}

/* PUBREL keeps the QoS 1 bit of its 3.1 ancestry (MQTT-3.6.1-1). */
static uint8_t
ack_flags(unsigned type)
{
    return type == MQTT_PUBREL ? 0x2 : 0;
}

int
mqtt_ack_decode(const mqtt_frame *f, mqtt_version v, mqtt_ack *out)
{
    assert(is_ack(f->type));
    memset(out, 0, sizeof *out);
    out->type = f->type;
    if (!mqtt_flags_ok(f, v, ack_flags(f->type)))
        return MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    out->packet_id = mqtt_read_u16(&r);
    /* MQTT 5 short forms: no reason means success, and below four octets
     * the property length is absent. */
    if (v == MQTT_V5 && f->len >= 3)
        out->reason = mqtt_read_u8(&r);
    if (v == MQTT_V5 && f->len >= 4)
        mqtt_props_read(&r, f->type, &out->props);
    if (r.err)
        return r.err;
    if (r.off != r.len)
        return MQTT_ERR_MALFORMED;
    if (out->packet_id == 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-2.2.1-3 */
    if (v == MQTT_V5 && !mqtt_reason_allowed(f->type, out->reason))
        return MQTT_ERR_PROTOCOL;
    return MQTT_OK;
}

static size_t
ack_remaining(const mqtt_ack *a, mqtt_version v)
{
    if (v != MQTT_V5)
        return 2;
    if (mqtt_props_empty(&a->props))
        return a->reason == 0 ? 2 : 3;
    return 3 + mqtt_props_size(&a->props);
}

size_t
mqtt_ack_size(const mqtt_ack *a, mqtt_version v)
{
    return mqtt_packet_size(ack_remaining(a, v));
}

void
mqtt_ack_encode(const mqtt_ack *a, mqtt_version v, uint8_t *out)
{
    assert(is_ack(a->type));
    assert(a->packet_id != 0);
    size_t rem = ack_remaining(a, v);
    mqtt_writer w = mqtt_packet_begin(out, a->type, ack_flags(a->type), rem);
    mqtt_write_u16(&w, a->packet_id);
    if (rem > 2) {
        assert(mqtt_reason_allowed(a->type, a->reason));
        mqtt_write_u8(&w, a->reason);
    }
    if (rem > 3)
        mqtt_props_write(&w, &a->props, a->type);
    assert(w.off == w.len);
}
