/*
 * The MQTT codec (packet, connect, publish, subscribe and topic.c in
 * plugins/mqtt): the input is a stream of
 * control packets, read once as each of MQTT 3.1, 3.1.1 and 5. Every
 * packet is framed, then decoded by the decoder for its type; a packet
 * that decodes is encoded again (every type has an encoder: the client's
 * packets for tests and seeds, the server's for the wire), and that
 * encoding must frame, decode and encode to the same bytes. Topic names
 * and filters found on the way go through the topic checks, the
 * matcher and the AMQP mapping.
 */
#include "tests/fuzz/fuzz.h"

#include "plugins/mqtt/mqtt.h"

static void
walk_props(const mqtt_props *p)
{
    uint32_t pos = 0, n = 0;
    mqtt_str k, v;
    while (mqtt_user_props_next(&p->user, &pos, &k, &v)) {
        FUZZ_CHECK(mqtt_utf8_valid(k.p, k.len) && mqtt_utf8_valid(v.p, v.len));
        n++;
    }
    FUZZ_CHECK(n == p->user.count);
    uint8_t *copy = fuzz_alloc(p->user.len);
    mqtt_user_props_copy(&p->user, copy);
    free(copy);
    FUZZ_CHECK(p->n_subids <= MQTT_SUBIDS_MAX);
}

/* The last valid topic name seen in the input (not in a re-encoding,
 * which is freed), to match filters against. */
static mqtt_str last_topic;
static const uint8_t *input, *input_end;

static void
check_topic(mqtt_str t)
{
    if (mqtt_topic_name_check(t) != MQTT_OK)
        return;
    if (t.p >= input && t.p < input_end)
        last_topic = t;
    char *a = fuzz_alloc(t.len);
    uint8_t *back = fuzz_alloc(t.len);
    mqtt_topic_to_amqp(t.p, t.len, a);
    mqtt_topic_from_amqp(a, t.len, back);
    fuzz_same("topic mapped to AMQP and back", t.p, t.len, back, t.len);
    free(back);
    free(a);
}

static void
check_filter(mqtt_str f)
{
    mqtt_str group, filter;
    if (mqtt_topic_share_parse(f, &group, &filter) == MQTT_OK && group.len == 0)
        FUZZ_CHECK(filter.p == f.p && filter.len == f.len);
    if (mqtt_topic_filter_check(f) != MQTT_OK)
        return;
    char *a = fuzz_alloc(f.len);
    mqtt_filter_to_amqp(f.p, f.len, a);
    free(a);
    if (last_topic.p) {
        bool m = mqtt_topic_match(f, last_topic);
        /* a filter that is the topic itself matches it */
        if (f.len == last_topic.len && memcmp(f.p, last_topic.p, f.len) == 0)
            FUZZ_CHECK(m);
    }
}

#define ENCODE(size_expr, encode_stmt)                                  \
    do {                                                                \
        size_t n_ = (size_expr);                                        \
        if (n_ == 0)                                                    \
            return false;       /* too large to encode: fine */         \
        *out = fuzz_alloc(n_);                                          \
        *outlen = n_;                                                   \
        uint8_t *buf_ = *out;                                           \
        encode_stmt;                                                    \
        (void)buf_;                                                     \
    } while (0)

/* Decodes f as version v and, if it decodes, encodes it into *out
 * (malloc'd, *outlen octets). False when it does not decode. *v is set
 * from a CONNECT, whose version is its own. */
static bool
decode_encode(const mqtt_frame *f, mqtt_version *v, uint8_t **out, size_t *outlen)
{
    int rc;
    switch (f->type) {
    case MQTT_CONNECT: {
        mqtt_connect c;
        rc = mqtt_connect_decode(f, &c);
        if (rc != MQTT_OK)
            return false;
        FUZZ_CHECK(c.version == MQTT_V31 || c.version == MQTT_V311 || c.version == MQTT_V5);
        *v = c.version;
        walk_props(&c.props);
        walk_props(&c.will_props);
        if (c.will)
            check_topic(c.will_topic);
        ENCODE(mqtt_connect_size(&c), mqtt_connect_encode(&c, buf_));
        return true;
    }
    case MQTT_CONNACK: {
        mqtt_connack c;
        if (mqtt_connack_decode(f, *v, &c) != MQTT_OK)
            return false;
        walk_props(&c.props);
        ENCODE(mqtt_connack_size(&c, *v), mqtt_connack_encode(&c, *v, buf_));
        return true;
    }
    case MQTT_PUBLISH: {
        mqtt_publish p;
        if (mqtt_publish_decode(f, *v, &p) != MQTT_OK)
            return false;
        FUZZ_CHECK(p.qos <= 2);
        walk_props(&p.props);
        if (p.topic.len)
            check_topic(p.topic);
        /* 3.1 left DUP on QoS 0 unjudged and the decoder lets it pass;
         * the encoder (what the server sends) refuses to write it */
        if (p.qos == 0)
            p.dup = false;
        ENCODE(mqtt_publish_size(&p, *v), mqtt_publish_encode(&p, *v, buf_));
        return true;
    }
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP: {
        mqtt_ack a;
        if (mqtt_ack_decode(f, *v, &a) != MQTT_OK)
            return false;
        FUZZ_CHECK(a.type == f->type && a.packet_id != 0);
        walk_props(&a.props);
        ENCODE(mqtt_ack_size(&a, *v), mqtt_ack_encode(&a, *v, buf_));
        return true;
    }
    case MQTT_SUBSCRIBE: {
        mqtt_subscribe s;
        if (mqtt_subscribe_decode(f, *v, &s) != MQTT_OK)
            return false;
        walk_props(&s.props);
        mqtt_sub_filter *fs = fuzz_alloc(s.n_filters * sizeof *fs);
        uint32_t pos = 0, n = 0;
        while (n < s.n_filters && mqtt_subscribe_next(&s, &pos, &fs[n])) {
            FUZZ_CHECK(fs[n].qos <= 2 && fs[n].retain_handling <= 2);
            check_filter(fs[n].filter);
            n++;
        }
        mqtt_sub_filter extra;
        FUZZ_CHECK(n == s.n_filters && n >= 1 && !mqtt_subscribe_next(&s, &pos, &extra));
        *outlen = mqtt_subscribe_size(&s, fs, n, *v);
        if (*outlen) {
            *out = fuzz_alloc(*outlen);
            mqtt_subscribe_encode(&s, fs, n, *v, *out);
        }
        free(fs);
        return *outlen != 0;
    }
    case MQTT_SUBACK: {
        mqtt_suback s;
        if (mqtt_suback_decode(f, *v, &s) != MQTT_OK)
            return false;
        walk_props(&s.props);
        ENCODE(mqtt_suback_size(&s, *v), mqtt_suback_encode(&s, *v, buf_));
        return true;
    }
    case MQTT_UNSUBSCRIBE: {
        mqtt_unsubscribe u;
        if (mqtt_unsubscribe_decode(f, *v, &u) != MQTT_OK)
            return false;
        walk_props(&u.props);
        mqtt_str *fs = fuzz_alloc(u.n_filters * sizeof *fs);
        uint32_t pos = 0, n = 0;
        while (n < u.n_filters && mqtt_unsubscribe_next(&u, &pos, &fs[n])) {
            check_filter(fs[n]);
            n++;
        }
        mqtt_str extra;
        FUZZ_CHECK(n == u.n_filters && n >= 1 && !mqtt_unsubscribe_next(&u, &pos, &extra));
        *outlen = mqtt_unsubscribe_size(&u, fs, n, *v);
        if (*outlen) {
            *out = fuzz_alloc(*outlen);
            mqtt_unsubscribe_encode(&u, fs, n, *v, *out);
        }
        free(fs);
        return *outlen != 0;
    }
    case MQTT_UNSUBACK: {
        mqtt_unsuback u;
        if (mqtt_unsuback_decode(f, *v, &u) != MQTT_OK)
            return false;
        walk_props(&u.props);
        ENCODE(mqtt_unsuback_size(&u, *v), mqtt_unsuback_encode(&u, *v, buf_));
        return true;
    }
    case MQTT_PINGREQ:
        if (mqtt_pingreq_decode(f, *v) != MQTT_OK)
            return false;
        ENCODE(MQTT_PING_SIZE, mqtt_pingreq_encode(buf_));
        return true;
    case MQTT_PINGRESP:
        if (mqtt_pingresp_decode(f, *v) != MQTT_OK)
            return false;
        ENCODE(MQTT_PING_SIZE, mqtt_pingresp_encode(buf_));
        return true;
    case MQTT_DISCONNECT: {
        mqtt_disconnect d;
        if (mqtt_disconnect_decode(f, *v, &d) != MQTT_OK)
            return false;
        walk_props(&d.props);
        ENCODE(mqtt_disconnect_size(&d, *v), mqtt_disconnect_encode(&d, *v, buf_));
        return true;
    }
    case MQTT_AUTH: {
        mqtt_auth a;
        if (mqtt_auth_decode(f, *v, &a) != MQTT_OK)
            return false;
        FUZZ_CHECK(*v == MQTT_V5);
        walk_props(&a.props);
        ENCODE(mqtt_auth_size(&a), mqtt_auth_encode(&a, buf_));
        return true;
    }
    }
    return false;
}

static void
check_packet(const mqtt_frame *f, mqtt_version v)
{
    uint8_t *e1, *e2;
    size_t n1, n2;
    mqtt_version v1 = v;
    if (!decode_encode(f, &v1, &e1, &n1))
        return;
    mqtt_frame f2;
    size_t used;
    FUZZ_CHECK(mqtt_frame_parse(e1, n1, 0, &f2, &used) == MQTT_OK);
    FUZZ_CHECK(used == n1 && f2.type == f->type);
    mqtt_version v2 = v1;
    FUZZ_CHECK(decode_encode(&f2, &v2, &e2, &n2));
    FUZZ_CHECK(v2 == v1);
    fuzz_same(mqtt_type_name(f->type), e1, n1, e2, n2);
    free(e2);
    free(e1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mqtt_version versions[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
    input = data;
    input_end = data + size;
    for (size_t i = 0; i < 3; i++) {
        last_topic = (mqtt_str){ NULL, 0 };
        size_t off = 0;
        while (off < size) {
            mqtt_frame f;
            size_t used = 0;
            int rc = mqtt_frame_parse(data + off, size - off, 0, &f, &used);
            if (rc != MQTT_OK) {
                FUZZ_CHECK(rc == MQTT_NEED_MORE || rc == MQTT_ERR_MALFORMED);
                (void)mqtt_strerror(rc);
                break;
            }
            FUZZ_CHECK(used >= 2 && used <= size - off && f.len <= used);
            check_packet(&f, versions[i]);
            off += used;
        }
    }
    return 0;
}
