/*
 * The connection's bookends: CONNECT and CONNACK, the keepalive pings, and
 * MQTT 5's DISCONNECT and AUTH.
 *
 * CONNECT is the one packet whose version is unknown until it is read, so
 * its decoder settles the version first and reports it even when it fails
 * later: the caller needs it to choose the CONNACK form of its refusal.
 */
#include <assert.h>
#include <string.h>

#include "plugins/mqtt/mqtt.h"

enum connect_flag {
    CF_RESERVED = 0x01,
    CF_CLEAN = 0x02,
    CF_WILL = 0x04,
    CF_WILL_QOS_SHIFT = 3,
    CF_WILL_RETAIN = 0x20,
    CF_PASSWORD = 0x40,
    CF_USERNAME = 0x80,
};

/* ---- CONNECT ------------------------------------------------------------ */

int
mqtt_connect_decode(const mqtt_frame *f, mqtt_connect *out)
{
    assert(f->type == MQTT_CONNECT);
    memset(out, 0, sizeof *out);
    mqtt_reader r = mqtt_reader_of(f);

    out->protocol_name = mqtt_read_binary(&r);
    uint8_t level = mqtt_read_u8(&r);
    if (r.err)
        return r.err;
    bool mqisdp = mqtt_str_eq(out->protocol_name, MQTT_STR("MQIsdp"));
    bool mqtt = mqtt_str_eq(out->protocol_name, MQTT_STR("MQTT"));
    if (!mqisdp && !mqtt)
        return MQTT_ERR_PROTOCOL;
    out->version = (mqtt_version)level;
    if ((mqisdp && level != MQTT_V31) || (mqtt && level != MQTT_V311 && level != MQTT_V5))
        return MQTT_ERR_VERSION;
    mqtt_version v = out->version;
    if (!mqtt_flags_ok(f, v, 0))
        return MQTT_ERR_MALFORMED;

    uint8_t flags = mqtt_read_u8(&r);
    out->keep_alive = mqtt_read_u16(&r);
    if (r.err)
        return r.err;
    out->flags = flags;
    out->clean_start = flags & CF_CLEAN;
    out->will = flags & CF_WILL;
    out->will_qos = (flags >> CF_WILL_QOS_SHIFT) & 3;
    out->will_retain = flags & CF_WILL_RETAIN;
    out->has_username = flags & CF_USERNAME;
    out->has_password = flags & CF_PASSWORD;
    if (flags & CF_RESERVED)
        return MQTT_ERR_MALFORMED;               /* MQTT-3.1.2-3 */
    if (out->will_qos == 3)
        return MQTT_ERR_MALFORMED;               /* MQTT-3.1.2-14 */
    if (!out->will && (out->will_qos != 0 || out->will_retain))
        return MQTT_ERR_MALFORMED;               /* MQTT-3.1.2-11, -13 */
    /* MQTT 5 lets a password stand alone, e.g. for a token. */
    if (v != MQTT_V5 && out->has_password && !out->has_username)
        return MQTT_ERR_PROTOCOL;                /* MQTT-3.1.2-22 */

    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_CONNECT, &out->props);
    out->client_id = mqtt_read_utf8(&r);
    if (out->will) {
        if (v == MQTT_V5)
            mqtt_props_read(&r, MQTT_PROPS_WILL, &out->will_props);
        out->will_topic = mqtt_read_utf8(&r);
        out->will_payload = mqtt_read_binary(&r);
    }
    if (out->has_username)
        out->username = mqtt_read_utf8(&r);
    if (out->has_password)
        out->password = mqtt_read_binary(&r);
    if (r.err)
        return r.err;
    if (r.off != r.len)
        return MQTT_ERR_MALFORMED;

    if (mqtt_props_has(&out->props, MQTT_PROP_AUTH_DATA) &&
        !mqtt_props_has(&out->props, MQTT_PROP_AUTH_METHOD))
        return MQTT_ERR_PROTOCOL;
    if (out->will) {
        int rc = mqtt_topic_name_check(out->will_topic);
        if (rc != MQTT_OK)
            return rc;
    }
    return MQTT_OK;
}

static mqtt_str
connect_name(mqtt_version v)
{
    return v == MQTT_V31 ? MQTT_STR("MQIsdp") : MQTT_STR("MQTT");
}

static size_t
connect_remaining(const mqtt_connect *c)
{
    size_t n = 2 + connect_name(c->version).len + 1 + 1 + 2;
    if (c->version == MQTT_V5)
        n += mqtt_props_size(&c->props);
    n += 2 + (size_t)c->client_id.len;
    if (c->will) {
        if (c->version == MQTT_V5)
            n += mqtt_props_size(&c->will_props);
        n += 4 + (size_t)c->will_topic.len + c->will_payload.len;
    }
    if (c->has_username)
        n += 2 + (size_t)c->username.len;
    if (c->has_password)
        n += 2 + (size_t)c->password.len;
    return n;
}

size_t
mqtt_connect_size(const mqtt_connect *c)
{
    return mqtt_packet_size(connect_remaining(c));
}

void
mqtt_connect_encode(const mqtt_connect *c, uint8_t *out)
{
    uint8_t flags = (uint8_t)((c->clean_start ? CF_CLEAN : 0) |
                              (c->will ? CF_WILL | (c->will_qos << CF_WILL_QOS_SHIFT) : 0) |
                              (c->will && c->will_retain ? CF_WILL_RETAIN : 0) |
                              (c->has_password ? CF_PASSWORD : 0) |
                              (c->has_username ? CF_USERNAME : 0));
    mqtt_writer w = mqtt_packet_begin(out, MQTT_CONNECT, 0, connect_remaining(c));
    mqtt_write_str(&w, connect_name(c->version));
    mqtt_write_u8(&w, (uint8_t)c->version);
    mqtt_write_u8(&w, flags);
    mqtt_write_u16(&w, c->keep_alive);
    if (c->version == MQTT_V5)
        mqtt_props_write(&w, &c->props, MQTT_CONNECT);
    mqtt_write_str(&w, c->client_id);
    if (c->will) {
        if (c->version == MQTT_V5)
            mqtt_props_write(&w, &c->will_props, MQTT_PROPS_WILL);
        mqtt_write_str(&w, c->will_topic);
        mqtt_write_str(&w, c->will_payload);
    }
    if (c->has_username)
        mqtt_write_str(&w, c->username);
    if (c->has_password)
        mqtt_write_str(&w, c->password);
    assert(w.off == w.len);
}

/* ---- CONNACK ------------------------------------------------------------ */

static size_t
connack_remaining(const mqtt_connack *c, mqtt_version v)
{
    return v == MQTT_V5 ? 2 + mqtt_props_size(&c->props) : 2;
}

size_t
mqtt_connack_size(const mqtt_connack *c, mqtt_version v)
{
    return mqtt_packet_size(connack_remaining(c, v));
}

void
mqtt_connack_encode(const mqtt_connack *c, mqtt_version v, uint8_t *out)
{
    assert(v == MQTT_V5 ? mqtt_reason_allowed(MQTT_CONNACK, c->code)
                        : c->code <= MQTT_CONNACK_REFUSED_NOT_AUTHORIZED);
    mqtt_writer w = mqtt_packet_begin(out, MQTT_CONNACK, 0, connack_remaining(c, v));
    /* 3.1 had no session present flag; it is only ever set on success. */
    mqtt_write_u8(&w, v != MQTT_V31 && c->session_present && c->code == 0);
    mqtt_write_u8(&w, c->code);
    if (v == MQTT_V5)
        mqtt_props_write(&w, &c->props, MQTT_CONNACK);
    assert(w.off == w.len);
}

int
mqtt_connack_decode(const mqtt_frame *f, mqtt_version v, mqtt_connack *out)
{
    assert(f->type == MQTT_CONNACK);
    memset(out, 0, sizeof *out);
    if (!mqtt_flags_ok(f, v, 0))
        return MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    uint8_t ack = mqtt_read_u8(&r);
    out->code = mqtt_read_u8(&r);
    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_CONNACK, &out->props);
    if (r.err)
        return r.err;
    if (r.off != r.len)
        return MQTT_ERR_MALFORMED;
    if (v != MQTT_V31) {
        if (ack & 0xFE)
            return MQTT_ERR_MALFORMED;
        out->session_present = ack & 1;
    }
    if (v == MQTT_V5 ? !mqtt_reason_allowed(MQTT_CONNACK, out->code)
                     : out->code > MQTT_CONNACK_REFUSED_NOT_AUTHORIZED)
        return MQTT_ERR_PROTOCOL;
    if (out->session_present && out->code != 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-3.2.2-4 */
    return MQTT_OK;
}

/* ---- PINGREQ, PINGRESP -------------------------------------------------- */

static int
ping_decode(const mqtt_frame *f, mqtt_version v)
{
    return mqtt_flags_ok(f, v, 0) && f->len == 0 ? MQTT_OK : MQTT_ERR_MALFORMED;
}

int
mqtt_pingreq_decode(const mqtt_frame *f, mqtt_version v)
{
    assert(f->type == MQTT_PINGREQ);
    return ping_decode(f, v);
}

int
mqtt_pingresp_decode(const mqtt_frame *f, mqtt_version v)
{
    assert(f->type == MQTT_PINGRESP);
    return ping_decode(f, v);
}

void
mqtt_pingreq_encode(uint8_t *out)
{
    out[0] = MQTT_PINGREQ << 4;
    out[1] = 0;
}

void
mqtt_pingresp_encode(uint8_t *out)
{
    out[0] = MQTT_PINGRESP << 4;
    out[1] = 0;
}

/* ---- DISCONNECT --------------------------------------------------------- */

int
mqtt_disconnect_decode(const mqtt_frame *f, mqtt_version v, mqtt_disconnect *out)
{
    assert(f->type == MQTT_DISCONNECT);
    memset(out, 0, sizeof *out);
    if (!mqtt_flags_ok(f, v, 0))
        return MQTT_ERR_MALFORMED;
    if (v != MQTT_V5 || f->len == 0)
        return f->len == 0 ? MQTT_OK : MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    out->reason = mqtt_read_u8(&r);
    /* Below two octets the property length is absent and means 0. */
    if (f->len >= 2)
        mqtt_props_read(&r, MQTT_DISCONNECT, &out->props);
    if (r.err)
        return r.err;
    if (r.off != r.len)
        return MQTT_ERR_MALFORMED;
    if (!mqtt_reason_allowed(MQTT_DISCONNECT, out->reason))
        return MQTT_ERR_PROTOCOL;
    return MQTT_OK;
}

static size_t
disconnect_remaining(const mqtt_disconnect *d, mqtt_version v)
{
    if (v != MQTT_V5)
        return 0;
    if (mqtt_props_empty(&d->props))
        return d->reason == 0 ? 0 : 1;
    return 1 + mqtt_props_size(&d->props);
}

size_t
mqtt_disconnect_size(const mqtt_disconnect *d, mqtt_version v)
{
    return mqtt_packet_size(disconnect_remaining(d, v));
}

void
mqtt_disconnect_encode(const mqtt_disconnect *d, mqtt_version v, uint8_t *out)
{
    size_t rem = disconnect_remaining(d, v);
    mqtt_writer w = mqtt_packet_begin(out, MQTT_DISCONNECT, 0, rem);
    if (rem > 0) {
        assert(mqtt_reason_allowed(MQTT_DISCONNECT, d->reason));
        mqtt_write_u8(&w, d->reason);
    }
    if (rem > 1)
        mqtt_props_write(&w, &d->props, MQTT_DISCONNECT);
    assert(w.off == w.len);
}

/* ---- AUTH --------------------------------------------------------------- */

int
mqtt_auth_decode(const mqtt_frame *f, mqtt_version v, mqtt_auth *out)
{
    assert(f->type == MQTT_AUTH);
    memset(out, 0, sizeof *out);
    /* AUTH does not exist before MQTT 5: packet type 15 is reserved there. */
    if (v != MQTT_V5 || f->flags != 0)
        return MQTT_ERR_MALFORMED;
    if (f->len == 0)
        return MQTT_OK;
    mqtt_reader r = mqtt_reader_of(f);
    out->reason = mqtt_read_u8(&r);
    if (f->len >= 2)
        mqtt_props_read(&r, MQTT_AUTH, &out->props);
    if (r.err)
        return r.err;
    if (r.off != r.len)
        return MQTT_ERR_MALFORMED;
    if (!mqtt_reason_allowed(MQTT_AUTH, out->reason))
        return MQTT_ERR_PROTOCOL;
    return MQTT_OK;
}

/* AUTH has only the empty short form; otherwise reason and properties. */
static size_t
auth_remaining(const mqtt_auth *a)
{
    if (a->reason == 0 && mqtt_props_empty(&a->props))
        return 0;
    return 1 + mqtt_props_size(&a->props);
}

size_t
mqtt_auth_size(const mqtt_auth *a)
{
    return mqtt_packet_size(auth_remaining(a));
}

void
mqtt_auth_encode(const mqtt_auth *a, uint8_t *out)
{
    size_t rem = auth_remaining(a);
    mqtt_writer w = mqtt_packet_begin(out, MQTT_AUTH, 0, rem);
    if (rem > 0) {
        assert(mqtt_reason_allowed(MQTT_AUTH, a->reason));
        mqtt_write_u8(&w, a->reason);
        mqtt_props_write(&w, &a->props, MQTT_AUTH);
    }
    assert(w.off == w.len);
}
