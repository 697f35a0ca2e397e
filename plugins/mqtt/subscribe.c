/*
 * SUBSCRIBE and UNSUBSCRIBE with their acks.
 *
 * A subscribe carries any number of filters; rather than cap them in an
 * array, the decoder checks the whole payload once and leaves it encoded,
 * and an iterator reads the filters back out. Filter syntax is not judged
 * here: the spec answers a bad filter in SUBACK, per filter, so that is the
 * session's call (mqtt_topic_filter_check).
 */
#include <assert.h>
#include <string.h>

#include "plugins/mqtt/mqtt.h"

enum sub_option {
    SO_QOS = 0x03,
    SO_NO_LOCAL = 0x04,
    SO_RETAIN_AS_PUBLISHED = 0x08,
    SO_RETAIN_HANDLING_SHIFT = 4,
    SO_RESERVED_V5 = 0xC0,
    SO_RESERVED_V3 = 0xFC,         /* before MQTT 5 only the QoS bits exist */
};

/* Both SUBSCRIBE and UNSUBSCRIBE carry flags 0x2 (MQTT-3.8.1-1, -3.10.1-1). */
#define REQUEST_FLAGS 0x2

static bool
is_shared(mqtt_str filter)
{
    mqtt_str group, inner;
    return mqtt_topic_share_parse(filter, &group, &inner) == MQTT_OK && group.len > 0;
}

/* Judges one subscription options octet. */
static int
sub_options_check(uint8_t opts, mqtt_str filter, mqtt_version v)
{
    if (v != MQTT_V5)
        return (opts & SO_RESERVED_V3) || (opts & SO_QOS) == 3 ? MQTT_ERR_MALFORMED : MQTT_OK;
    if (opts & SO_RESERVED_V5)
        return MQTT_ERR_MALFORMED;               /* MQTT-3.8.3-5 */
    if ((opts & SO_QOS) == 3 || (opts >> SO_RETAIN_HANDLING_SHIFT & 3) == 3)
        return MQTT_ERR_PROTOCOL;
    if ((opts & SO_NO_LOCAL) && is_shared(filter))
        return MQTT_ERR_PROTOCOL;                /* MQTT-3.8.3-4 */
    return MQTT_OK;
}

/* ---- SUBSCRIBE ---------------------------------------------------------- */

int
mqtt_subscribe_decode(const mqtt_frame *f, mqtt_version v, mqtt_subscribe *out)
{
    assert(f->type == MQTT_SUBSCRIBE);
    memset(out, 0, sizeof *out);
    if (!mqtt_flags_ok(f, v, REQUEST_FLAGS))
        return MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    out->packet_id = mqtt_read_u16(&r);
    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_SUBSCRIBE, &out->props);
    if (r.err)
        return r.err;
    out->filters = r.buf + r.off;
    out->filters_len = mqtt_reader_left(&r);
    while (r.off < r.len) {
        mqtt_str filter = mqtt_read_utf8(&r);
        uint8_t opts = mqtt_read_u8(&r);
        if (r.err)
            return r.err;
        int rc = sub_options_check(opts, filter, v);
        if (rc != MQTT_OK)
            return rc;
        out->n_filters++;
    }
    if (out->n_filters == 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-3.8.3-3 */
    if (out->packet_id == 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-2.2.1-3 */
    return MQTT_OK;
}

bool
mqtt_subscribe_next(const mqtt_subscribe *s, uint32_t *pos, mqtt_sub_filter *out)
{
    mqtt_reader r = { s->filters, s->filters_len, *pos, 0 };
    if (r.off >= r.len)
        return false;
    out->filter = mqtt_read_binary(&r);
    uint8_t opts = mqtt_read_u8(&r);
    if (r.err)
        return false;
    out->qos = opts & SO_QOS;
    out->no_local = opts & SO_NO_LOCAL;
    out->retain_as_published = opts & SO_RETAIN_AS_PUBLISHED;
    out->retain_handling = opts >> SO_RETAIN_HANDLING_SHIFT & 3;
    *pos = r.off;
    return true;
}

static size_t
subscribe_remaining(const mqtt_subscribe *s, const mqtt_sub_filter *filters,
                    uint32_t n, mqtt_version v)
{
    size_t len = 2;
    if (v == MQTT_V5)
        len += mqtt_props_size(&s->props);
    for (uint32_t i = 0; i < n; i++)
        len += 3 + (size_t)filters[i].filter.len;
    return len;
}

size_t
mqtt_subscribe_size(const mqtt_subscribe *s, const mqtt_sub_filter *filters,
                    uint32_t n, mqtt_version v)
{
    return mqtt_packet_size(subscribe_remaining(s, filters, n, v));
}

void
mqtt_subscribe_encode(const mqtt_subscribe *s, const mqtt_sub_filter *filters,
                      uint32_t n, mqtt_version v, uint8_t *out)
{
    mqtt_writer w = mqtt_packet_begin(out, MQTT_SUBSCRIBE, REQUEST_FLAGS,
                                      subscribe_remaining(s, filters, n, v));
    mqtt_write_u16(&w, s->packet_id);
    if (v == MQTT_V5)
        mqtt_props_write(&w, &s->props, MQTT_SUBSCRIBE);
    for (uint32_t i = 0; i < n; i++) {
        const mqtt_sub_filter *sf = &filters[i];
        uint8_t opts = sf->qos & SO_QOS;
        if (v == MQTT_V5)
            opts |= (uint8_t)((sf->no_local ? SO_NO_LOCAL : 0) |
                              (sf->retain_as_published ? SO_RETAIN_AS_PUBLISHED : 0) |
                              (sf->retain_handling & 3) << SO_RETAIN_HANDLING_SHIFT);
        mqtt_write_str(&w, sf->filter);
        mqtt_write_u8(&w, opts);
    }
    assert(w.off == w.len);
}

/* ---- SUBACK ------------------------------------------------------------- */

static bool
suback_code_ok(uint8_t code, mqtt_version v)
{
    if (v == MQTT_V5)
        return mqtt_reason_allowed(MQTT_SUBACK, code);
    return code <= 2 || (v == MQTT_V311 && code == 0x80);
}

static size_t
suback_remaining(const mqtt_suback *s, mqtt_version v)
{
    return 2 + (v == MQTT_V5 ? mqtt_props_size(&s->props) : 0) + s->n_codes;
}

size_t
mqtt_suback_size(const mqtt_suback *s, mqtt_version v)
{
    return mqtt_packet_size(suback_remaining(s, v));
}

void
mqtt_suback_encode(const mqtt_suback *s, mqtt_version v, uint8_t *out)
{
    mqtt_writer w = mqtt_packet_begin(out, MQTT_SUBACK, 0, suback_remaining(s, v));
    mqtt_write_u16(&w, s->packet_id);
    if (v == MQTT_V5)
        mqtt_props_write(&w, &s->props, MQTT_SUBACK);
    for (uint32_t i = 0; i < s->n_codes; i++)
        assert(suback_code_ok(s->codes[i], v));
    mqtt_write_bytes(&w, s->codes, s->n_codes);
    assert(w.off == w.len);
}

int
mqtt_suback_decode(const mqtt_frame *f, mqtt_version v, mqtt_suback *out)
{
    assert(f->type == MQTT_SUBACK);
    memset(out, 0, sizeof *out);
    if (!mqtt_flags_ok(f, v, 0))
        return MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    out->packet_id = mqtt_read_u16(&r);
    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_SUBACK, &out->props);
    if (r.err)
        return r.err;
    out->codes = r.buf + r.off;
    out->n_codes = mqtt_reader_left(&r);
    if (out->n_codes == 0 || out->packet_id == 0)
        return MQTT_ERR_PROTOCOL;
    for (uint32_t i = 0; i < out->n_codes; i++)
        if (!suback_code_ok(out->codes[i], v))
            return MQTT_ERR_PROTOCOL;
    return MQTT_OK;
}

/* ---- UNSUBSCRIBE -------------------------------------------------------- */

int
mqtt_unsubscribe_decode(const mqtt_frame *f, mqtt_version v, mqtt_unsubscribe *out)
{
    assert(f->type == MQTT_UNSUBSCRIBE);
    memset(out, 0, sizeof *out);
    if (!mqtt_flags_ok(f, v, REQUEST_FLAGS))
        return MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    out->packet_id = mqtt_read_u16(&r);
    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_UNSUBSCRIBE, &out->props);
    if (r.err)
        return r.err;
    out->filters = r.buf + r.off;
    out->filters_len = mqtt_reader_left(&r);
    while (r.off < r.len) {
        mqtt_read_utf8(&r);
        if (r.err)
            return r.err;
        out->n_filters++;
    }
    if (out->n_filters == 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-3.10.3-2 */
    if (out->packet_id == 0)
        return MQTT_ERR_PROTOCOL;                /* MQTT-2.2.1-3 */
    return MQTT_OK;
}

bool
mqtt_unsubscribe_next(const mqtt_unsubscribe *u, uint32_t *pos, mqtt_str *filter)
{
    mqtt_reader r = { u->filters, u->filters_len, *pos, 0 };
    if (r.off >= r.len)
        return false;
    *filter = mqtt_read_binary(&r);
    if (r.err)
        return false;
    *pos = r.off;
    return true;
}

static size_t
unsubscribe_remaining(const mqtt_unsubscribe *u, const mqtt_str *filters,
                      uint32_t n, mqtt_version v)
{
    size_t len = 2;
    if (v == MQTT_V5)
        len += mqtt_props_size(&u->props);
    for (uint32_t i = 0; i < n; i++)
        len += 2 + (size_t)filters[i].len;
    return len;
}

size_t
mqtt_unsubscribe_size(const mqtt_unsubscribe *u, const mqtt_str *filters,
                      uint32_t n, mqtt_version v)
{
    return mqtt_packet_size(unsubscribe_remaining(u, filters, n, v));
}

void
mqtt_unsubscribe_encode(const mqtt_unsubscribe *u, const mqtt_str *filters,
                        uint32_t n, mqtt_version v, uint8_t *out)
{
    mqtt_writer w = mqtt_packet_begin(out, MQTT_UNSUBSCRIBE, REQUEST_FLAGS,
                                      unsubscribe_remaining(u, filters, n, v));
    mqtt_write_u16(&w, u->packet_id);
    if (v == MQTT_V5)
        mqtt_props_write(&w, &u->props, MQTT_UNSUBSCRIBE);
    for (uint32_t i = 0; i < n; i++)
        mqtt_write_str(&w, filters[i]);
    assert(w.off == w.len);
}

/* ---- UNSUBACK ----------------------------------------------------------- */

static size_t
unsuback_remaining(const mqtt_unsuback *u, mqtt_version v)
{
    if (v != MQTT_V5)
        return 2;
    return 2 + mqtt_props_size(&u->props) + u->n_codes;
}

size_t
mqtt_unsuback_size(const mqtt_unsuback *u, mqtt_version v)
{
    return mqtt_packet_size(unsuback_remaining(u, v));
}

void
mqtt_unsuback_encode(const mqtt_unsuback *u, mqtt_version v, uint8_t *out)
{
    mqtt_writer w = mqtt_packet_begin(out, MQTT_UNSUBACK, 0, unsuback_remaining(u, v));
    mqtt_write_u16(&w, u->packet_id);
    if (v == MQTT_V5) {
        mqtt_props_write(&w, &u->props, MQTT_UNSUBACK);
        for (uint32_t i = 0; i < u->n_codes; i++)
            assert(mqtt_reason_allowed(MQTT_UNSUBACK, u->codes[i]));
        mqtt_write_bytes(&w, u->codes, u->n_codes);
    }
    assert(w.off == w.len);
}

int
mqtt_unsuback_decode(const mqtt_frame *f, mqtt_version v, mqtt_unsuback *out)
{
    assert(f->type == MQTT_UNSUBACK);
    memset(out, 0, sizeof *out);
    if (!mqtt_flags_ok(f, v, 0))
        return MQTT_ERR_MALFORMED;
    mqtt_reader r = mqtt_reader_of(f);
    out->packet_id = mqtt_read_u16(&r);
    if (v == MQTT_V5)
        mqtt_props_read(&r, MQTT_UNSUBACK, &out->props);
    if (r.err)
        return r.err;
    if (v != MQTT_V5)
        return r.off == r.len ? (out->packet_id ? MQTT_OK : MQTT_ERR_PROTOCOL)
                              : MQTT_ERR_MALFORMED;
    out->codes = r.buf + r.off;
    out->n_codes = mqtt_reader_left(&r);
    if (out->n_codes == 0 || out->packet_id == 0)
        return MQTT_ERR_PROTOCOL;
    for (uint32_t i = 0; i < out->n_codes; i++)
        if (!mqtt_reason_allowed(MQTT_UNSUBACK, out->codes[i]))
            return MQTT_ERR_PROTOCOL;
    return MQTT_OK;
}
