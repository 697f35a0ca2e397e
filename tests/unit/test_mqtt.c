/* The MQTT codec: framing and the remaining-length varint, every packet
 * round-tripped per version, the malformed and protocol-error cases named
 * after the spec rule each one checks, MQTT 5 properties per packet type,
 * and topic names, filters, shared subscriptions, matching and the mapping
 * onto amq.topic keys. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/mqtt/mqtt.h"
#include "routing/route.h"
#include "suites.h"

/* ---- helpers ------------------------------------------------------------ */

/* Hex digits (spaces ignored) into an exact-size allocation, so a read one
 * past the end shows up under the sanitizer. */
static uint8_t *
hex(const char *s, size_t *len)
{
    size_t n = 0;
    for (const char *c = s; *c; c++)
        if (*c != ' ')
            n++;
    ck_assert_msg(n % 2 == 0, "odd hex: %s", s);
    uint8_t *b = malloc(n / 2 ? n / 2 : 1);
    size_t k = 0;
    unsigned v;
    for (const char *c = s; *c;) {
        if (*c == ' ') {
            c++;
            continue;
        }
        ck_assert(sscanf(c, "%2x", &v) == 1);
        b[k++] = (uint8_t)v;
        c += 2;
    }
    *len = k;
    return b;
}

static void
hexdump(const uint8_t *b, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x ", b[i]);
    out[o] = 0;
}

/* Compares bytes with the expected hex, showing both on mismatch. */
static void
assert_bytes(const uint8_t *got, size_t n, const char *want_hex)
{
    size_t wn;
    uint8_t *want = hex(want_hex, &wn);
    char g[512], w[512];
    hexdump(got, n, g, sizeof g);
    hexdump(want, wn, w, sizeof w);
    ck_assert_msg(n == wn && memcmp(got, want, n) == 0, "got  %s\nwant %s", g, w);
    free(want);
}

/* Every proper prefix asks for more, reads nothing past its end (each sits
 * in an exact-size allocation) and reports nothing. */
static void
assert_prefixes_need_more(const uint8_t *b, size_t n)
{
    for (size_t len = 0; len < n; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, b, len);
        mqtt_frame f;
        size_t used = 99;
        ck_assert_msg(mqtt_frame_parse(p, len, 0, &f, &used) == MQTT_NEED_MORE,
                      "prefix of %zu/%zu", len, n);
        ck_assert_uint_eq(used, 99);
        free(p);
    }
}

/* Parses b as exactly one packet of the given type. */
static void
parse_whole(const uint8_t *b, size_t n, unsigned type, mqtt_frame *f)
{
    size_t used = 0;
    ck_assert_int_eq(mqtt_frame_parse(b, n, 0, f, &used), MQTT_OK);
    ck_assert_uint_eq(used, n);
    ck_assert_uint_eq(f->type, type);
    assert_prefixes_need_more(b, n);
}

#define STR_EQ(s, lit) ck_assert_msg(mqtt_str_eq((s), MQTT_STR(lit)), "%.*s != %s", \
                                     (int)(s).len, (const char *)(s).p, lit)

/* Writes user property pairs (NULL-terminated key, value list) into buf
 * and points u at them. */
static void
user_build(mqtt_user_props *u, uint8_t *buf, const char *const *kv)
{
    size_t n = 0;
    uint32_t count = 0;
    for (; kv[0]; kv += 2, count++)
        n += mqtt_user_prop_write(buf + n, mqtt_str_cstr(kv[0]), mqtt_str_cstr(kv[1]));
    *u = (mqtt_user_props){ buf, (uint32_t)n, (uint32_t)n, count };
}

static void
user_expect(const mqtt_user_props *u, const char *const *kv)
{
    uint32_t pos = 0, count = 0;
    mqtt_str k, v;
    for (; kv[0]; kv += 2, count++) {
        ck_assert(mqtt_user_props_next(u, &pos, &k, &v));
        ck_assert(mqtt_str_eq(k, mqtt_str_cstr(kv[0])));
        ck_assert(mqtt_str_eq(v, mqtt_str_cstr(kv[1])));
    }
    ck_assert(!mqtt_user_props_next(u, &pos, &k, &v));
    ck_assert_uint_eq(u->count, count);
}

/* Frames and decodes one packet with the decoder its type calls for, as the
 * session's dispatch would. */
static int
decode_any(const uint8_t *b, size_t n, mqtt_version v)
{
    mqtt_frame f;
    size_t used;
    int rc = mqtt_frame_parse(b, n, 0, &f, &used);
    if (rc != MQTT_OK)
        return rc;
    ck_assert_msg(used == n, "case holds %zu bytes, packet %zu", n, used);
    union {
        mqtt_connect connect;
        mqtt_connack connack;
        mqtt_publish publish;
        mqtt_ack ack;
        mqtt_subscribe subscribe;
        mqtt_suback suback;
        mqtt_unsubscribe unsubscribe;
        mqtt_unsuback unsuback;
        mqtt_disconnect disconnect;
        mqtt_auth auth;
    } u;
    switch (f.type) {
    case MQTT_CONNECT: return mqtt_connect_decode(&f, &u.connect);
    case MQTT_CONNACK: return mqtt_connack_decode(&f, v, &u.connack);
    case MQTT_PUBLISH: return mqtt_publish_decode(&f, v, &u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return mqtt_ack_decode(&f, v, &u.ack);
    case MQTT_SUBSCRIBE: return mqtt_subscribe_decode(&f, v, &u.subscribe);
    case MQTT_SUBACK: return mqtt_suback_decode(&f, v, &u.suback);
    case MQTT_UNSUBSCRIBE: return mqtt_unsubscribe_decode(&f, v, &u.unsubscribe);
    case MQTT_UNSUBACK: return mqtt_unsuback_decode(&f, v, &u.unsuback);
    case MQTT_PINGREQ: return mqtt_pingreq_decode(&f, v);
    case MQTT_PINGRESP: return mqtt_pingresp_decode(&f, v);
    case MQTT_DISCONNECT: return mqtt_disconnect_decode(&f, v, &u.disconnect);
    case MQTT_AUTH: return mqtt_auth_decode(&f, v, &u.auth);
    }
    ck_abort_msg("type %u", f.type);
    return 0;
}

/* ---- varint and framing ------------------------------------------------- */

START_TEST(test_varint_edges)
{
    /* The boundaries of section 1.5.5's table, 1 to 4 octets. */
    static const struct { uint32_t v; const char *hex; } cases[] = {
        { 0, "00" }, { 127, "7f" }, { 128, "80 01" }, { 16383, "ff 7f" },
        { 16384, "80 80 01" }, { 2097151, "ff ff 7f" },
        { 2097152, "80 80 80 01" }, { 268435455, "ff ff ff 7f" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[4];
        size_t n = mqtt_varint_encode(cases[i].v, out);
        ck_assert_uint_eq(n, mqtt_varint_size(cases[i].v));
        assert_bytes(out, n, cases[i].hex);
        uint32_t v;
        size_t used;
        ck_assert_int_eq(mqtt_varint_decode(out, n, &v, &used), MQTT_OK);
        ck_assert_uint_eq(v, cases[i].v);
        ck_assert_uint_eq(used, n);
        for (size_t len = 0; len < n; len++)
            ck_assert_int_eq(mqtt_varint_decode(out, len, &v, &used), MQTT_NEED_MORE);
    }
}
END_TEST

START_TEST(test_varint_fifth_byte_malformed)
{
    /* Four continuation bits: the fifth octet cannot exist, so the answer
     * is malformed without waiting for it. */
    uint8_t b[] = { 0xff, 0xff, 0xff, 0xff, 0x01 };
    uint32_t v;
    size_t used;
    ck_assert_int_eq(mqtt_varint_decode(b, 4, &v, &used), MQTT_ERR_MALFORMED);
    ck_assert_int_eq(mqtt_varint_decode(b, 5, &v, &used), MQTT_ERR_MALFORMED);
    uint8_t p[] = { 0x30, 0x80, 0x80, 0x80, 0x80 };
    mqtt_frame f;
    ck_assert_int_eq(mqtt_frame_parse(p, 4, 0, &f, &used), MQTT_NEED_MORE);
    ck_assert_int_eq(mqtt_frame_parse(p, 5, 0, &f, &used), MQTT_ERR_MALFORMED);
}
END_TEST

START_TEST(test_varint_non_minimal_accepted)
{
    uint8_t zero[] = { 0x80, 0x00 };
    uint8_t one[] = { 0x81, 0x80, 0x80, 0x00 };
    uint32_t v;
    size_t used;
    ck_assert_int_eq(mqtt_varint_decode(zero, 2, &v, &used), MQTT_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_uint_eq(used, 2);
    ck_assert_int_eq(mqtt_varint_decode(one, 4, &v, &used), MQTT_OK);
    ck_assert_uint_eq(v, 1);
    ck_assert_uint_eq(used, 4);
    /* A PINGREQ whose zero length takes two octets is still one packet. */
    uint8_t ping[] = { 0xc0, 0x80, 0x00 };
    mqtt_frame f;
    ck_assert_int_eq(mqtt_frame_parse(ping, 3, 0, &f, &used), MQTT_OK);
    ck_assert_uint_eq(used, 3);
    ck_assert_uint_eq(f.len, 0);
    ck_assert_int_eq(mqtt_pingreq_decode(&f, MQTT_V311), MQTT_OK);
}
END_TEST

START_TEST(test_frame_two_packets)
{
    size_t n;
    uint8_t *b = hex("32 09 0003 612f62 000a 6869  c0 00", &n);
    mqtt_frame f;
    size_t used;
    ck_assert_int_eq(mqtt_frame_parse(b, n, 0, &f, &used), MQTT_OK);
    ck_assert_uint_eq(used, 11);
    ck_assert_uint_eq(f.type, MQTT_PUBLISH);
    ck_assert_uint_eq(f.flags, 2);
    ck_assert_uint_eq(f.len, 9);
    ck_assert_ptr_eq(f.body, b + 2);
    ck_assert_int_eq(mqtt_frame_parse(b + used, n - used, 0, &f, &used), MQTT_OK);
    ck_assert_uint_eq(used, 2);
    ck_assert_uint_eq(f.type, MQTT_PINGREQ);
    free(b);
}
END_TEST

START_TEST(test_frame_reserved_type)
{
    uint8_t b[] = { 0x00, 0x00 };
    mqtt_frame f;
    size_t used;
    ck_assert_int_eq(mqtt_frame_parse(b, 2, 0, &f, &used), MQTT_ERR_MALFORMED);
    ck_assert_int_eq(mqtt_frame_parse(b, 1, 0, &f, &used), MQTT_NEED_MORE);
}
END_TEST

START_TEST(test_frame_max_packet_from_header)
{
    /* A PUBLISH announcing 1000 octets against a 500-octet maximum: refused
     * once its 3-octet fixed header is in, before any body. */
    uint8_t hdr[3] = { 0x30 };
    size_t n = 1 + mqtt_varint_encode(1000, hdr + 1);
    ck_assert_uint_eq(n, 3);
    mqtt_frame f;
    size_t used;
    for (size_t len = 0; len < n; len++)
        ck_assert_int_eq(mqtt_frame_parse(hdr, len, 500, &f, &used), MQTT_NEED_MORE);
    ck_assert_int_eq(mqtt_frame_parse(hdr, n, 500, &f, &used), MQTT_ERR_TOO_LARGE);
    ck_assert_int_eq(mqtt_frame_parse(hdr, n, 0, &f, &used), MQTT_NEED_MORE);

    /* The maximum counts the fixed header: 1003 fits exactly, 1002 not. */
    ck_assert_int_eq(mqtt_frame_parse(hdr, n, 1003, &f, &used), MQTT_NEED_MORE);
    ck_assert_int_eq(mqtt_frame_parse(hdr, n, 1002, &f, &used), MQTT_ERR_TOO_LARGE);
    ck_assert_int_eq(-MQTT_ERR_TOO_LARGE, MQTT_RC_PACKET_TOO_LARGE);

    /* The largest length: no overflow with or without a bound. */
    uint8_t big[] = { 0x30, 0xff, 0xff, 0xff, 0x7f };
    ck_assert_int_eq(mqtt_frame_parse(big, 5, 0, &f, &used), MQTT_NEED_MORE);
    ck_assert_int_eq(mqtt_frame_parse(big, 5, UINT32_MAX, &f, &used), MQTT_NEED_MORE);
    ck_assert_int_eq(mqtt_frame_parse(big, 5, 268435459, &f, &used), MQTT_ERR_TOO_LARGE);
    ck_assert_int_eq(mqtt_frame_parse(big, 5, 268435460, &f, &used), MQTT_NEED_MORE);
}
END_TEST

START_TEST(test_frame_exact_max)
{
    /* A whole PINGREQ of 2 octets against a maximum of 2. */
    uint8_t b[] = { 0xc0, 0x00 };
    mqtt_frame f;
    size_t used;
    ck_assert_int_eq(mqtt_frame_parse(b, 2, 2, &f, &used), MQTT_OK);
    ck_assert_int_eq(mqtt_frame_parse(b, 2, 1, &f, &used), MQTT_ERR_TOO_LARGE);
}
END_TEST

START_TEST(test_packet_size_limit)
{
    ck_assert_uint_eq(mqtt_packet_size(0), 2);
    ck_assert_uint_eq(mqtt_packet_size(127), 129);
    ck_assert_uint_eq(mqtt_packet_size(128), 131);
    ck_assert_uint_eq(mqtt_packet_size(MQTT_MAX_REMAINING), (size_t)MQTT_MAX_REMAINING + 5);
    ck_assert_uint_eq(mqtt_packet_size((size_t)MQTT_MAX_REMAINING + 1), 0);
    /* A payload that cannot fit reports size 0 rather than wrapping. */
    mqtt_publish p = { .topic = MQTT_STR("t"), .payload_len = MQTT_MAX_REMAINING };
    ck_assert_uint_eq(mqtt_publish_size(&p, MQTT_V311), 0);
}
END_TEST

START_TEST(test_utf8)
{
    static const struct { const char *hex; bool ok; } cases[] = {
        { "616263", true },              /* ASCII */
        { "c3a9", true },                /* U+00E9 */
        { "e282ac", true },              /* U+20AC */
        { "f09d849e", true },            /* U+1D11E */
        { "efbfbf", true },              /* U+FFFF: a non-character, allowed */
        { "f48fbfbf", true },            /* U+10FFFF */
        { "", true },
        { "00", false },                 /* U+0000 (MQTT-1.5.4-2) */
        { "6100", false },
        { "c080", false },               /* overlong U+0000 */
        { "c1bf", false },               /* overlong */
        { "e08080", false },             /* overlong */
        { "f0808080", false },           /* overlong */
        { "eda080", false },             /* U+D800 surrogate (MQTT-1.5.4-1) */
        { "edbfbf", false },             /* U+DFFF surrogate */
        { "f4908080", false },           /* past U+10FFFF */
        { "f5808080", false },
        { "80", false },                 /* lone continuation */
        { "e282", false },               /* truncated */
        { "c341", false },               /* bad continuation */
        { "ff", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *b = hex(cases[i].hex, &n);
        ck_assert_msg(mqtt_utf8_valid(b, n) == cases[i].ok, "utf8 %s", cases[i].hex);
        free(b);
    }
}
END_TEST

/* ---- round trips -------------------------------------------------------- */

START_TEST(test_connect_v311_bytes)
{
    mqtt_connect c = { .version = MQTT_V311, .clean_start = true, .keep_alive = 60,
                       .client_id = MQTT_STR("a") };
    uint8_t b[15];
    ck_assert_uint_eq(mqtt_connect_size(&c), sizeof b);
    mqtt_connect_encode(&c, b);
    assert_bytes(b, sizeof b, "10 0d 0004 4d515454 04 02 003c 0001 61");

    c.version = MQTT_V31;
    uint8_t b3[17];
    ck_assert_uint_eq(mqtt_connect_size(&c), sizeof b3);
    mqtt_connect_encode(&c, b3);
    assert_bytes(b3, sizeof b3, "10 0f 0006 4d5149736470 03 02 003c 0001 61");
}
END_TEST

START_TEST(test_connect_roundtrip)
{
    static const mqtt_version versions[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
    for (size_t i = 0; i < 3; i++) {
        mqtt_version v = versions[i];
        uint8_t ub[64], wb[64];
        mqtt_connect c = {
            .version = v, .clean_start = i != 1, .keep_alive = 65535,
            .client_id = MQTT_STR("client-1"), .will = true, .will_qos = 1,
            .will_retain = true, .will_topic = MQTT_STR("last/will"),
            .will_payload = MQTT_STR("b\0ye"), .has_username = true,
            .username = MQTT_STR("guest"), .has_password = true,
            .password = MQTT_STR("\0pw\xff"),
        };
        static const char *const user[] = { "k1", "v1", NULL };
        static const char *const will_user[] = { "a", "b", "c", "", NULL };
        if (v == MQTT_V5) {
            mqtt_props *p = &c.props;
            p->session_expiry = 3600;
            p->receive_maximum = 10;
            p->maximum_packet_size = 65536;
            p->topic_alias_maximum = 5;
            p->request_problem_info = 0;
            p->request_response_info = 1;
            p->auth_method = MQTT_STR("SCRAM-SHA-1");
            p->auth_data = MQTT_STR("\x01\x00");
            p->present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) |
                         MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
                         MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) |
                         MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) |
                         MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO) |
                         MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO) |
                         MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD) |
                         MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA) |
                         MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
            user_build(&p->user, ub, user);
            mqtt_props *w = &c.will_props;
            w->will_delay = 30;
            w->payload_format = 1;
            w->message_expiry = 100;
            w->content_type = MQTT_STR("text/plain");
            w->response_topic = MQTT_STR("r/t");
            w->correlation_data = MQTT_STR("\0\1");
            w->present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY) |
                         MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
                         MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) |
                         MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
                         MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
                         MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |
                         MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
            user_build(&w->user, wb, will_user);
        }
        size_t n = mqtt_connect_size(&c);
        uint8_t *b = malloc(n);
        mqtt_connect_encode(&c, b);
        mqtt_frame f;
        parse_whole(b, n, MQTT_CONNECT, &f);
        mqtt_connect d;
        ck_assert_int_eq(mqtt_connect_decode(&f, &d), MQTT_OK);
        ck_assert_int_eq(d.version, v);
        ck_assert(mqtt_str_eq(d.protocol_name, mqtt_str_cstr(v == MQTT_V31 ? "MQIsdp" : "MQTT")));
        ck_assert_uint_eq(d.flags, (i != 1 ? 0x02 : 0) | 0x04 | 0x08 | 0x20 | 0x40 | 0x80);
        ck_assert(d.clean_start == (i != 1));
        ck_assert_uint_eq(d.keep_alive, 65535);
        STR_EQ(d.client_id, "client-1");
        ck_assert(d.will && d.will_retain);
        ck_assert_uint_eq(d.will_qos, 1);
        STR_EQ(d.will_topic, "last/will");
        STR_EQ(d.will_payload, "b\0ye");
        ck_assert(d.has_username && d.has_password);
        STR_EQ(d.username, "guest");
        STR_EQ(d.password, "\0pw\xff");
        if (v == MQTT_V5) {
            ck_assert_uint_eq(d.props.present, c.props.present);
            ck_assert_uint_eq(d.props.session_expiry, 3600);
            ck_assert_uint_eq(d.props.receive_maximum, 10);
            ck_assert_uint_eq(d.props.maximum_packet_size, 65536);
            ck_assert_uint_eq(d.props.topic_alias_maximum, 5);
            ck_assert_uint_eq(d.props.request_response_info, 1);
            STR_EQ(d.props.auth_method, "SCRAM-SHA-1");
            STR_EQ(d.props.auth_data, "\x01\x00");
            user_expect(&d.props.user, user);
            ck_assert_uint_eq(d.will_props.present, c.will_props.present);
            ck_assert_uint_eq(d.will_props.will_delay, 30);
            ck_assert_uint_eq(d.will_props.payload_format, 1);
            ck_assert_uint_eq(d.will_props.message_expiry, 100);
            STR_EQ(d.will_props.content_type, "text/plain");
            STR_EQ(d.will_props.response_topic, "r/t");
            STR_EQ(d.will_props.correlation_data, "\0\1");
            user_expect(&d.will_props.user, will_user);
        } else {
            ck_assert_uint_eq(d.props.present, 0);
        }
        free(b);
    }
}
END_TEST

START_TEST(test_connect_without_will_or_credentials)
{
    mqtt_connect c = { .version = MQTT_V5, .client_id = MQTT_STR("") };
    uint8_t b[15];
    ck_assert_uint_eq(mqtt_connect_size(&c), sizeof b);
    mqtt_connect_encode(&c, b);
    assert_bytes(b, sizeof b, "10 0d 0004 4d515454 05 00 0000 00 0000");
    mqtt_frame f;
    parse_whole(b, sizeof b, MQTT_CONNECT, &f);
    mqtt_connect d;
    ck_assert_int_eq(mqtt_connect_decode(&f, &d), MQTT_OK);
    ck_assert(!d.will && !d.has_username && !d.has_password && !d.clean_start);
    ck_assert_uint_eq(d.client_id.len, 0);
}
END_TEST

START_TEST(test_connect_version_reported_on_failure)
{
    /* The level is known before the failure, so the caller can answer in
     * the right CONNACK form. */
    size_t n;
    uint8_t *b = hex("10 0d 0004 4d515454 06 02 003c 0001 61", &n);
    mqtt_frame f;
    size_t used;
    ck_assert_int_eq(mqtt_frame_parse(b, n, 0, &f, &used), MQTT_OK);
    mqtt_connect c;
    ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_ERR_VERSION);
    ck_assert_int_eq(c.version, 6);
    ck_assert_uint_eq(mqtt_connack_return_code(-MQTT_ERR_VERSION),
                      MQTT_CONNACK_REFUSED_PROTOCOL_VERSION);
    free(b);

    b = hex("10 0e 0004 4d515454 05 01 003c 00 0001 61", &n);
    ck_assert_int_eq(mqtt_frame_parse(b, n, 0, &f, &used), MQTT_OK);
    ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_ERR_MALFORMED);
    ck_assert_int_eq(c.version, MQTT_V5);
    free(b);
}
END_TEST

START_TEST(test_connack_roundtrip)
{
    mqtt_connack c = { .session_present = true, .code = 0 };
    uint8_t b[5];
    ck_assert_uint_eq(mqtt_connack_size(&c, MQTT_V311), 4);
    mqtt_connack_encode(&c, MQTT_V311, b);
    assert_bytes(b, 4, "20 02 01 00");
    mqtt_connack_encode(&c, MQTT_V31, b);
    assert_bytes(b, 4, "20 02 00 00");       /* 3.1 has no session present */
    c.session_present = false;
    c.code = MQTT_CONNACK_REFUSED_NOT_AUTHORIZED;
    mqtt_connack_encode(&c, MQTT_V311, b);
    assert_bytes(b, 4, "20 02 00 05");
    c.code = MQTT_RC_SUCCESS;
    ck_assert_uint_eq(mqtt_connack_size(&c, MQTT_V5), 5);
    mqtt_connack_encode(&c, MQTT_V5, b);
    assert_bytes(b, 5, "20 03 00 00 00");

    /* Every property CONNACK may carry. */
    uint8_t ub[32];
    static const char *const user[] = { "node", "coney@host", NULL };
    mqtt_connack a = { .session_present = true, .code = 0 };
    mqtt_props *p = &a.props;
    p->session_expiry = 7200;
    p->assigned_client_id = MQTT_STR("auto-1");
    p->server_keep_alive = 30;
    p->auth_method = MQTT_STR("PLAIN");
    p->auth_data = MQTT_STR("\x00");
    p->response_info = MQTT_STR("resp/");
    p->server_reference = MQTT_STR("other:1883");
    p->reason_string = MQTT_STR("welcome");
    p->receive_maximum = 100;
    p->topic_alias_maximum = 16;
    p->maximum_qos = 1;
    p->retain_available = 1;
    p->maximum_packet_size = 1 << 20;
    p->wildcard_available = 1;
    p->subid_available = 0;
    p->shared_available = 1;
    static const unsigned ids[] = {
        MQTT_PROP_SESSION_EXPIRY, MQTT_PROP_ASSIGNED_CLIENT_ID, MQTT_PROP_SERVER_KEEP_ALIVE,
        MQTT_PROP_AUTH_METHOD, MQTT_PROP_AUTH_DATA, MQTT_PROP_RESPONSE_INFO,
        MQTT_PROP_SERVER_REFERENCE, MQTT_PROP_REASON_STRING, MQTT_PROP_RECEIVE_MAXIMUM,
        MQTT_PROP_TOPIC_ALIAS_MAXIMUM, MQTT_PROP_MAXIMUM_QOS, MQTT_PROP_RETAIN_AVAILABLE,
        MQTT_PROP_MAXIMUM_PACKET_SIZE, MQTT_PROP_WILDCARD_AVAILABLE, MQTT_PROP_SUBID_AVAILABLE,
        MQTT_PROP_SHARED_AVAILABLE, MQTT_PROP_USER_PROPERTY,
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        mqtt_props_set(p, ids[i]);
    user_build(&p->user, ub, user);
    size_t n = mqtt_connack_size(&a, MQTT_V5);
    uint8_t *e = malloc(n);
    mqtt_connack_encode(&a, MQTT_V5, e);
    mqtt_frame f;
    parse_whole(e, n, MQTT_CONNACK, &f);
    mqtt_connack d;
    ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V5, &d), MQTT_OK);
    ck_assert(d.session_present);
    ck_assert_uint_eq(d.props.present, p->present);
    ck_assert_uint_eq(d.props.session_expiry, 7200);
    STR_EQ(d.props.assigned_client_id, "auto-1");
    ck_assert_uint_eq(d.props.server_keep_alive, 30);
    STR_EQ(d.props.auth_method, "PLAIN");
    STR_EQ(d.props.auth_data, "\x00");
    STR_EQ(d.props.response_info, "resp/");
    STR_EQ(d.props.server_reference, "other:1883");
    STR_EQ(d.props.reason_string, "welcome");
    ck_assert_uint_eq(d.props.receive_maximum, 100);
    ck_assert_uint_eq(d.props.topic_alias_maximum, 16);
    ck_assert_uint_eq(d.props.maximum_qos, 1);
    ck_assert_uint_eq(d.props.retain_available, 1);
    ck_assert_uint_eq(d.props.maximum_packet_size, 1 << 20);
    ck_assert_uint_eq(d.props.wildcard_available, 1);
    ck_assert_uint_eq(d.props.subid_available, 0);
    ck_assert_uint_eq(d.props.shared_available, 1);
    user_expect(&d.props.user, user);
    free(e);

    /* A refusal never claims a session, whatever the struct says. */
    mqtt_connack r = { .session_present = true, .code = MQTT_RC_BANNED };
    mqtt_connack_encode(&r, MQTT_V5, b);
    assert_bytes(b, 5, "20 03 00 8a 00");
}
END_TEST

START_TEST(test_publish_bytes)
{
    mqtt_publish p = { .qos = 1, .topic = MQTT_STR("a/b"), .packet_id = 10,
                       .payload = (const uint8_t *)"hi", .payload_len = 2 };
    uint8_t b[11];
    ck_assert_uint_eq(mqtt_publish_size(&p, MQTT_V311), sizeof b);
    mqtt_publish_encode(&p, MQTT_V311, b);
    assert_bytes(b, sizeof b, "32 09 0003 612f62 000a 6869");

    /* MQTT 5, QoS 0, the topic replaced by an alias, no payload. */
    mqtt_publish a = { .retain = true, .topic = MQTT_STR("") };
    a.props.topic_alias = 1;
    mqtt_props_set(&a.props, MQTT_PROP_TOPIC_ALIAS);
    uint8_t c[8];
    ck_assert_uint_eq(mqtt_publish_size(&a, MQTT_V5), sizeof c);
    mqtt_publish_encode(&a, MQTT_V5, c);
    assert_bytes(c, sizeof c, "31 06 0000 03 230001");
    mqtt_frame f;
    parse_whole(c, sizeof c, MQTT_PUBLISH, &f);
    mqtt_publish d;
    ck_assert_int_eq(mqtt_publish_decode(&f, MQTT_V5, &d), MQTT_OK);
    ck_assert_uint_eq(d.topic.len, 0);
    ck_assert_uint_eq(d.props.topic_alias, 1);
    ck_assert_uint_eq(d.payload_len, 0);
    ck_assert(d.retain);
}
END_TEST

START_TEST(test_publish_roundtrip)
{
    static const mqtt_version versions[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
    static const size_t payloads[] = { 0, 1, 120, 200, 20000 };
    uint8_t *payload = malloc(20000);
    for (size_t i = 0; i < 20000; i++)
        payload[i] = (uint8_t)(i * 7);
    uint8_t ub[64];
    static const char *const user[] = { "x-trace", "abc", "x-trace", "def", NULL };
    for (size_t vi = 0; vi < 3; vi++) {
        for (unsigned qos = 0; qos <= 2; qos++) {
            for (size_t pi = 0; pi < sizeof payloads / sizeof payloads[0]; pi++) {
                mqtt_version v = versions[vi];
                mqtt_publish p = {
                    .qos = (uint8_t)qos, .dup = qos > 0, .retain = pi % 2,
                    .topic = MQTT_STR("sensors/room.1/t"),
                    .packet_id = qos ? (uint16_t)(65535 - pi) : 0,
                    .payload = payload, .payload_len = (uint32_t)payloads[pi],
                };
                if (v == MQTT_V5) {
                    mqtt_props *pr = &p.props;
                    pr->payload_format = 1;
                    pr->message_expiry = 86400;
                    pr->content_type = MQTT_STR("application/json");
                    pr->response_topic = MQTT_STR("reply/here");
                    pr->correlation_data = MQTT_STR("\x00\x01\x02");
                    pr->topic_alias = 7;
                    pr->subids[0] = 1;
                    pr->subids[1] = 268435455;
                    pr->subids[2] = 300;
                    pr->n_subids = 3;
                    static const unsigned ids[] = {
                        MQTT_PROP_PAYLOAD_FORMAT, MQTT_PROP_MESSAGE_EXPIRY,
                        MQTT_PROP_CONTENT_TYPE, MQTT_PROP_RESPONSE_TOPIC,
                        MQTT_PROP_CORRELATION_DATA, MQTT_PROP_TOPIC_ALIAS,
                        MQTT_PROP_SUBSCRIPTION_ID, MQTT_PROP_USER_PROPERTY,
                    };
                    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
                        mqtt_props_set(pr, ids[k]);
                    user_build(&pr->user, ub, user);
                }
                size_t n = mqtt_publish_size(&p, v);
                uint8_t *b = malloc(n);
                mqtt_publish_encode(&p, v, b);
                mqtt_frame f;
                if (payloads[pi] < 300)
                    parse_whole(b, n, MQTT_PUBLISH, &f);
                else {
                    size_t used;
                    ck_assert_int_eq(mqtt_frame_parse(b, n, 0, &f, &used), MQTT_OK);
                    ck_assert_uint_eq(used, n);
                    ck_assert_int_eq(mqtt_frame_parse(b, n - 1, 0, &f, &used), MQTT_NEED_MORE);
                }
                mqtt_publish d;
                ck_assert_int_eq(mqtt_publish_decode(&f, v, &d), MQTT_OK);
                ck_assert_uint_eq(d.qos, qos);
                ck_assert(d.dup == (qos > 0));
                ck_assert(d.retain == (pi % 2));
                STR_EQ(d.topic, "sensors/room.1/t");
                ck_assert_uint_eq(d.packet_id, p.packet_id);
                ck_assert_uint_eq(d.payload_len, payloads[pi]);
                if (payloads[pi])
                    ck_assert_mem_eq(d.payload, payload, payloads[pi]);
                if (v == MQTT_V5) {
                    ck_assert_uint_eq(d.props.present, p.props.present);
                    ck_assert_uint_eq(d.props.payload_format, 1);
                    ck_assert_uint_eq(d.props.message_expiry, 86400);
                    STR_EQ(d.props.content_type, "application/json");
                    STR_EQ(d.props.response_topic, "reply/here");
                    STR_EQ(d.props.correlation_data, "\x00\x01\x02");
                    ck_assert_uint_eq(d.props.topic_alias, 7);
                    ck_assert_uint_eq(d.props.n_subids, 3);
                    ck_assert_uint_eq(d.props.subids[0], 1);
                    ck_assert_uint_eq(d.props.subids[1], 268435455);
                    ck_assert_uint_eq(d.props.subids[2], 300);
                    user_expect(&d.props.user, user);
                }
                free(b);
            }
        }
    }
    free(payload);
}
END_TEST

START_TEST(test_ack_roundtrip)
{
    static const struct {
        unsigned type;
        mqtt_version v;
        uint8_t reason;
        const char *reason_string;
        const char *hex;
    } cases[] = {
        { MQTT_PUBACK, MQTT_V311, 0, NULL, "40 02 0007" },
        { MQTT_PUBREC, MQTT_V311, 0, NULL, "50 02 0007" },
        { MQTT_PUBREL, MQTT_V311, 0, NULL, "62 02 0007" },
        { MQTT_PUBCOMP, MQTT_V311, 0, NULL, "70 02 0007" },
        { MQTT_PUBREL, MQTT_V31, 0, NULL, "62 02 0007" },
        /* MQTT 5 short forms: success alone is the packet id alone. */
        { MQTT_PUBACK, MQTT_V5, 0, NULL, "40 02 0007" },
        { MQTT_PUBREC, MQTT_V5, MQTT_RC_NO_MATCHING_SUBSCRIBERS, NULL, "50 03 0007 10" },
        { MQTT_PUBCOMP, MQTT_V5, MQTT_RC_PACKET_ID_NOT_FOUND, NULL, "70 03 0007 92" },
        { MQTT_PUBREL, MQTT_V5, 0, "x", "62 08 0007 00 04 1f0001 78" },
        { MQTT_PUBACK, MQTT_V5, MQTT_RC_QUOTA_EXCEEDED, "full", "40 0b 0007 97 07 1f0004 66756c6c" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqtt_ack a = { .type = (uint8_t)cases[i].type, .packet_id = 7, .reason = cases[i].reason };
        if (cases[i].reason_string) {
            a.props.reason_string = mqtt_str_cstr(cases[i].reason_string);
            mqtt_props_set(&a.props, MQTT_PROP_REASON_STRING);
        }
        size_t n = mqtt_ack_size(&a, cases[i].v);
        uint8_t *b = malloc(n);
        mqtt_ack_encode(&a, cases[i].v, b);
        assert_bytes(b, n, cases[i].hex);
        mqtt_frame f;
        parse_whole(b, n, cases[i].type, &f);
        mqtt_ack d;
        ck_assert_int_eq(mqtt_ack_decode(&f, cases[i].v, &d), MQTT_OK);
        ck_assert_uint_eq(d.type, cases[i].type);
        ck_assert_uint_eq(d.packet_id, 7);
        ck_assert_uint_eq(d.reason, cases[i].reason);
        ck_assert_uint_eq(d.props.present, a.props.present);
        if (cases[i].reason_string)
            ck_assert(mqtt_str_eq(d.props.reason_string, a.props.reason_string));
        free(b);
    }
}
END_TEST

START_TEST(test_subscribe_roundtrip)
{
    static const mqtt_sub_filter filters[] = {
        { MQTT_STR("a/+/c"), 0, false, false, MQTT_RETAIN_SEND },
        { MQTT_STR("#"), 2, true, true, MQTT_RETAIN_DONT_SEND },
        { MQTT_STR("$share/grp/x/#"), 1, false, true, MQTT_RETAIN_SEND_IF_NEW },
    };
    static const mqtt_version versions[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
    for (size_t vi = 0; vi < 3; vi++) {
        mqtt_version v = versions[vi];
        mqtt_subscribe s = { .packet_id = 42 };
        if (v == MQTT_V5) {
            s.props.subids[0] = 99;
            s.props.n_subids = 1;
            mqtt_props_set(&s.props, MQTT_PROP_SUBSCRIPTION_ID);
        }
        size_t n = mqtt_subscribe_size(&s, filters, 3, v);
        uint8_t *b = malloc(n);
        mqtt_subscribe_encode(&s, filters, 3, v, b);
        mqtt_frame f;
        parse_whole(b, n, MQTT_SUBSCRIBE, &f);
        ck_assert_uint_eq(f.flags, 0x2);
        mqtt_subscribe d;
        ck_assert_int_eq(mqtt_subscribe_decode(&f, v, &d), MQTT_OK);
        ck_assert_uint_eq(d.packet_id, 42);
        ck_assert_uint_eq(d.n_filters, 3);
        uint32_t pos = 0;
        mqtt_sub_filter sf;
        for (size_t i = 0; i < 3; i++) {
            ck_assert(mqtt_subscribe_next(&d, &pos, &sf));
            ck_assert(mqtt_str_eq(sf.filter, filters[i].filter));
            ck_assert_uint_eq(sf.qos, filters[i].qos);
            /* Options beyond QoS exist only in MQTT 5. */
            bool five = v == MQTT_V5;
            ck_assert(sf.no_local == (five && filters[i].no_local));
            ck_assert(sf.retain_as_published == (five && filters[i].retain_as_published));
            ck_assert_uint_eq(sf.retain_handling, five ? filters[i].retain_handling : 0);
        }
        ck_assert(!mqtt_subscribe_next(&d, &pos, &sf));
        if (v == MQTT_V5) {
            ck_assert_uint_eq(d.props.n_subids, 1);
            ck_assert_uint_eq(d.props.subids[0], 99);
        }
        free(b);
    }

    /* One filter, pinned: options 0x2e = retain handling 2, RAP, NL, QoS 2. */
    mqtt_sub_filter one = { MQTT_STR("a/b"), 2, true, true, MQTT_RETAIN_DONT_SEND };
    mqtt_subscribe s = { .packet_id = 1 };
    uint8_t b[11];
    ck_assert_uint_eq(mqtt_subscribe_size(&s, &one, 1, MQTT_V5), sizeof b);
    mqtt_subscribe_encode(&s, &one, 1, MQTT_V5, b);
    assert_bytes(b, sizeof b, "82 09 0001 00 0003 612f62 2e");
}
END_TEST

START_TEST(test_suback_roundtrip)
{
    static const uint8_t v4codes[] = { 0, 1, 2, 0x80 };
    mqtt_suback s = { .packet_id = 5, .codes = v4codes, .n_codes = 4 };
    uint8_t b[16];
    ck_assert_uint_eq(mqtt_suback_size(&s, MQTT_V311), 8);
    mqtt_suback_encode(&s, MQTT_V311, b);
    assert_bytes(b, 8, "90 06 0005 00010280");
    mqtt_frame f;
    parse_whole(b, 8, MQTT_SUBACK, &f);
    mqtt_suback d;
    ck_assert_int_eq(mqtt_suback_decode(&f, MQTT_V311, &d), MQTT_OK);
    ck_assert_uint_eq(d.n_codes, 4);
    ck_assert_mem_eq(d.codes, v4codes, 4);

    static const uint8_t v5codes[] = { MQTT_RC_GRANTED_QOS1, MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED,
                                       MQTT_RC_SHARED_SUBS_NOT_SUPPORTED };
    mqtt_suback s5 = { .packet_id = 6, .codes = v5codes, .n_codes = 3 };
    ck_assert_uint_eq(mqtt_suback_size(&s5, MQTT_V5), 8);
    mqtt_suback_encode(&s5, MQTT_V5, b);
    assert_bytes(b, 8, "90 06 0006 00 01a29e");
    parse_whole(b, 8, MQTT_SUBACK, &f);
    ck_assert_int_eq(mqtt_suback_decode(&f, MQTT_V5, &d), MQTT_OK);
    ck_assert_uint_eq(d.packet_id, 6);
    ck_assert_mem_eq(d.codes, v5codes, 3);
}
END_TEST

START_TEST(test_unsubscribe_roundtrip)
{
    static const mqtt_str filters[] = { MQTT_STR("a/b"), MQTT_STR("+/#"), MQTT_STR("$share/g/t") };
    static const mqtt_version versions[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
    uint8_t ub[32];
    static const char *const user[] = { "why", "done", NULL };
    for (size_t vi = 0; vi < 3; vi++) {
        mqtt_version v = versions[vi];
        mqtt_unsubscribe u = { .packet_id = 300 };
        if (v == MQTT_V5) {
            user_build(&u.props.user, ub, user);
            mqtt_props_set(&u.props, MQTT_PROP_USER_PROPERTY);
        }
        size_t n = mqtt_unsubscribe_size(&u, filters, 3, v);
        uint8_t *b = malloc(n);
        mqtt_unsubscribe_encode(&u, filters, 3, v, b);
        mqtt_frame f;
        parse_whole(b, n, MQTT_UNSUBSCRIBE, &f);
        mqtt_unsubscribe d;
        ck_assert_int_eq(mqtt_unsubscribe_decode(&f, v, &d), MQTT_OK);
        ck_assert_uint_eq(d.packet_id, 300);
        ck_assert_uint_eq(d.n_filters, 3);
        uint32_t pos = 0;
        mqtt_str s;
        for (size_t i = 0; i < 3; i++) {
            ck_assert(mqtt_unsubscribe_next(&d, &pos, &s));
            ck_assert(mqtt_str_eq(s, filters[i]));
        }
        ck_assert(!mqtt_unsubscribe_next(&d, &pos, &s));
        if (v == MQTT_V5)
            user_expect(&d.props.user, user);
        free(b);
    }
}
END_TEST

START_TEST(test_unsuback_roundtrip)
{
    mqtt_unsuback u = { .packet_id = 9 };
    uint8_t b[16];
    ck_assert_uint_eq(mqtt_unsuback_size(&u, MQTT_V311), 4);
    mqtt_unsuback_encode(&u, MQTT_V311, b);
    assert_bytes(b, 4, "b0 02 0009");
    mqtt_frame f;
    parse_whole(b, 4, MQTT_UNSUBACK, &f);
    mqtt_unsuback d;
    ck_assert_int_eq(mqtt_unsuback_decode(&f, MQTT_V311, &d), MQTT_OK);
    ck_assert_uint_eq(d.packet_id, 9);

    static const uint8_t codes[] = { MQTT_RC_SUCCESS, MQTT_RC_NO_SUBSCRIPTION_EXISTED,
                                     MQTT_RC_TOPIC_FILTER_INVALID };
    mqtt_unsuback u5 = { .packet_id = 9, .codes = codes, .n_codes = 3 };
    ck_assert_uint_eq(mqtt_unsuback_size(&u5, MQTT_V5), 8);
    mqtt_unsuback_encode(&u5, MQTT_V5, b);
    assert_bytes(b, 8, "b0 06 0009 00 00118f");
    parse_whole(b, 8, MQTT_UNSUBACK, &f);
    ck_assert_int_eq(mqtt_unsuback_decode(&f, MQTT_V5, &d), MQTT_OK);
    ck_assert_uint_eq(d.n_codes, 3);
    ck_assert_mem_eq(d.codes, codes, 3);
}
END_TEST

START_TEST(test_ping_roundtrip)
{
    uint8_t b[MQTT_PING_SIZE];
    mqtt_frame f;
    mqtt_pingreq_encode(b);
    assert_bytes(b, 2, "c0 00");
    parse_whole(b, 2, MQTT_PINGREQ, &f);
    ck_assert_int_eq(mqtt_pingreq_decode(&f, MQTT_V5), MQTT_OK);
    mqtt_pingresp_encode(b);
    assert_bytes(b, 2, "d0 00");
    parse_whole(b, 2, MQTT_PINGRESP, &f);
    ck_assert_int_eq(mqtt_pingresp_decode(&f, MQTT_V311), MQTT_OK);
}
END_TEST

START_TEST(test_disconnect_roundtrip)
{
    static const struct {
        mqtt_version v;
        uint8_t reason;
        bool expiry;
        const char *hex;
    } cases[] = {
        { MQTT_V311, 0, false, "e0 00" },
        { MQTT_V311, MQTT_RC_SESSION_TAKEN_OVER, true, "e0 00" },  /* nothing to say in 3.1.1 */
        { MQTT_V5, 0, false, "e0 00" },
        { MQTT_V5, MQTT_RC_SESSION_TAKEN_OVER, false, "e0 01 8e" },
        { MQTT_V5, MQTT_RC_DISCONNECT_WITH_WILL, false, "e0 01 04" },
        { MQTT_V5, 0, true, "e0 07 00 05 11 0000012c" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqtt_disconnect d = { .reason = cases[i].reason };
        if (cases[i].expiry) {
            d.props.session_expiry = 300;
            mqtt_props_set(&d.props, MQTT_PROP_SESSION_EXPIRY);
        }
        size_t n = mqtt_disconnect_size(&d, cases[i].v);
        uint8_t *b = malloc(n);
        mqtt_disconnect_encode(&d, cases[i].v, b);
        assert_bytes(b, n, cases[i].hex);
        mqtt_frame f;
        parse_whole(b, n, MQTT_DISCONNECT, &f);
        mqtt_disconnect o;
        ck_assert_int_eq(mqtt_disconnect_decode(&f, cases[i].v, &o), MQTT_OK);
        if (cases[i].v == MQTT_V5) {
            ck_assert_uint_eq(o.reason, cases[i].reason);
            ck_assert_uint_eq(o.props.session_expiry, cases[i].expiry ? 300 : 0);
        }
        free(b);
    }
}
END_TEST

START_TEST(test_auth_roundtrip)
{
    mqtt_auth a = { 0 };
    uint8_t b[32];
    ck_assert_uint_eq(mqtt_auth_size(&a), 2);
    mqtt_auth_encode(&a, b);
    assert_bytes(b, 2, "f0 00");

    a.reason = MQTT_RC_CONTINUE_AUTHENTICATION;
    ck_assert_uint_eq(mqtt_auth_size(&a), 4);
    mqtt_auth_encode(&a, b);
    assert_bytes(b, 4, "f0 02 18 00");

    a.props.auth_method = MQTT_STR("SCRAM");
    a.props.auth_data = MQTT_STR("\x00\x01");
    mqtt_props_set(&a.props, MQTT_PROP_AUTH_METHOD);
    mqtt_props_set(&a.props, MQTT_PROP_AUTH_DATA);
    size_t n = mqtt_auth_size(&a);
    ck_assert_uint_eq(n, 17);
    mqtt_auth_encode(&a, b);
    assert_bytes(b, n, "f0 0f 18 0d 15 0005 5343 52414d 16 0002 0001");
    mqtt_frame f;
    parse_whole(b, n, MQTT_AUTH, &f);
    mqtt_auth d;
    ck_assert_int_eq(mqtt_auth_decode(&f, MQTT_V5, &d), MQTT_OK);
    ck_assert_uint_eq(d.reason, MQTT_RC_CONTINUE_AUTHENTICATION);
    STR_EQ(d.props.auth_method, "SCRAM");
    STR_EQ(d.props.auth_data, "\x00\x01");
}
END_TEST

/* ---- conformance table: {name, version, bytes, expected} ---------------- */

typedef struct wire_case {
    const char *name;
    mqtt_version v;
    const char *hex;
    int expect;
} wire_case;

#define OK MQTT_OK
#define MALFORMED MQTT_ERR_MALFORMED
#define PROTOCOL MQTT_ERR_PROTOCOL

/* A minimal 3.1.1 CONNECT is 10 0d 0004 4d515454 04 02 003c 0001 61. */
static const wire_case wire_cases[] = {
    /* framing */
    { "MQTT-2.1.3 packet type 0 is reserved", MQTT_V311, "00 00", MALFORMED },
    { "MQTT-1.5.5 remaining length over four octets", MQTT_V311, "30 ff ff ff ff 7f", MALFORMED },

    /* CONNECT */
    { "CONNECT minimal 3.1.1", MQTT_V311, "10 0d 0004 4d515454 04 02 003c 0001 61", OK },
    { "CONNECT minimal 3.1", MQTT_V31, "10 0f 0006 4d5149736470 03 02 003c 0001 61", OK },
    { "MQTT-2.2.2-2 CONNECT fixed-header flags", MQTT_V311, "11 0d 0004 4d515454 04 02 003c 0001 61", MALFORMED },
    { "MQTT-3.1.2-1 unknown protocol name", MQTT_V311, "10 0d 0004 4d515458 04 02 003c 0001 61", PROTOCOL },
    { "MQTT-3.1.2-2 unknown protocol level", MQTT_V311, "10 0d 0004 4d515454 06 02 003c 0001 61", MQTT_ERR_VERSION },
    { "MQTT-3.1.2-2 level 3 is not MQTT", MQTT_V311, "10 0d 0004 4d515454 03 02 003c 0001 61", MQTT_ERR_VERSION },
    { "MQTT-3.1.2-2 MQIsdp must be level 3", MQTT_V31, "10 0f 0006 4d5149736470 04 02 003c 0001 61", MQTT_ERR_VERSION },
    { "MQTT-3.1.2-3 reserved connect flag", MQTT_V311, "10 0d 0004 4d515454 04 03 003c 0001 61", MALFORMED },
    { "MQTT-3.1.2-14 will QoS 3", MQTT_V311, "10 0d 0004 4d515454 04 1e 003c 0001 61", MALFORMED },
    { "MQTT-3.1.2-11 will QoS without will flag", MQTT_V311, "10 0d 0004 4d515454 04 0a 003c 0001 61", MALFORMED },
    { "MQTT-3.1.2-15 will retain without will flag", MQTT_V311, "10 0d 0004 4d515454 04 22 003c 0001 61", MALFORMED },
    { "MQTT-3.1.2-22 password without user name", MQTT_V311,
      "10 10 0004 4d515454 04 42 003c 0001 61 0001 70", PROTOCOL },
    { "MQTT 5 allows a password without a user name", MQTT_V5,
      "10 11 0004 4d515454 05 42 003c 00 0001 61 0001 70", OK },
    { "CONNECT bytes after the payload", MQTT_V311, "10 0e 0004 4d515454 04 02 003c 0001 61 00", MALFORMED },
    { "CONNECT client identifier truncated", MQTT_V311, "10 0d 0004 4d515454 04 02 003c 0005 61", MALFORMED },
    { "CONNECT header truncated", MQTT_V311, "10 08 0004 4d515454 04 02", MALFORMED },
    { "MQTT-1.5.4-2 client identifier holds U+0000", MQTT_V311, "10 0d 0004 4d515454 04 02 003c 0001 00", MALFORMED },
    { "MQTT-1.5.4-1 client identifier holds a surrogate", MQTT_V311,
      "10 0f 0004 4d515454 04 02 003c 0003 eda080", MALFORMED },
    { "MQTT-1.5.4-1 user name not UTF-8", MQTT_V311,
      "10 10 0004 4d515454 04 82 003c 0001 61 0001 ff", MALFORMED },
    { "password is binary data", MQTT_V311,
      "10 14 0004 4d515454 04 c2 003c 0001 61 0001 75 0002 00ff", OK },
    { "MQTT-3.1.3-10 will topic has a wildcard", MQTT_V311,
      "10 14 0004 4d515454 04 06 003c 0001 61 0003 612f23 0000", MQTT_ERR_TOPIC_NAME },
    { "MQTT-3.1.3-10 will topic is empty", MQTT_V311,
      "10 11 0004 4d515454 04 06 003c 0001 61 0000 0000", MQTT_ERR_TOPIC_NAME },
    { "CONNECT will payload truncated", MQTT_V311,
      "10 14 0004 4d515454 04 06 003c 0001 61 0001 74 0005 6869", MALFORMED },
    { "3.1.2.11 authentication data without method", MQTT_V5,
      "10 12 0004 4d515454 05 02 003c 04 16000178 0001 61", PROTOCOL },
    { "3.1.2.11.2 session expiry twice", MQTT_V5,
      "10 18 0004 4d515454 05 02 003c 0a 1100000001 1100000002 0001 61", PROTOCOL },
    { "3.1.2.11.3 receive maximum 0", MQTT_V5, "10 11 0004 4d515454 05 02 003c 03 210000 0001 61", PROTOCOL },
    { "3.1.2.11.4 maximum packet size 0", MQTT_V5,
      "10 13 0004 4d515454 05 02 003c 05 2700000000 0001 61", PROTOCOL },
    { "3.1.2.11.7 request problem information 2", MQTT_V5, "10 10 0004 4d515454 05 02 003c 02 1702 0001 61", PROTOCOL },
    { "3.1.2.11.6 request response information 2", MQTT_V5, "10 10 0004 4d515454 05 02 003c 02 1902 0001 61", PROTOCOL },
    { "2.2.2.2 topic alias is not a CONNECT property", MQTT_V5,
      "10 11 0004 4d515454 05 02 003c 03 230001 0001 61", MALFORMED },
    { "2.2.2.2 will delay is a will property only", MQTT_V5,
      "10 13 0004 4d515454 05 02 003c 05 1800000001 0001 61", MALFORMED },
    { "2.2.2.2 unknown property identifier", MQTT_V5, "10 0f 0004 4d515454 05 02 003c 01 7f 0001 61", MALFORMED },
    { "2.2.2.1 property length past the packet", MQTT_V5, "10 0e 0004 4d515454 05 02 003c 20 0001 61", MALFORMED },
    { "3.1.3.2 session expiry is not a will property", MQTT_V5,
      "10 19 0004 4d515454 05 06 003c 00 0001 61 05 1100000001 0001 74 0000", MALFORMED },
    { "3.1.3.2 will properties", MQTT_V5,
      "10 19 0004 4d515454 05 06 003c 00 0001 61 05 1800000001 0001 74 0000", OK },

    /* PUBLISH */
    { "PUBLISH QoS 0", MQTT_V311, "30 07 0003 612f62 6869", OK },
    { "MQTT-3.3.1-4 QoS 3", MQTT_V311, "36 07 0003 612f62 6869", MALFORMED },
    { "MQTT-3.3.1-2 DUP on QoS 0", MQTT_V311, "38 07 0003 612f62 6869", MALFORMED },
    { "3.1 tolerates DUP on QoS 0", MQTT_V31, "38 07 0003 612f62 6869", OK },
    { "MQTT-3.3.2-2 '+' in topic name", MQTT_V311, "30 05 0003 612f2b", MQTT_ERR_TOPIC_NAME },
    { "MQTT-3.3.2-2 '#' in topic name", MQTT_V311, "30 05 0003 612f23", MQTT_ERR_TOPIC_NAME },
    { "MQTT-4.7.3-1 empty topic name", MQTT_V311, "30 02 0000", PROTOCOL },
    { "3.3.2.1 empty topic without alias", MQTT_V5, "30 03 0000 00", PROTOCOL },
    { "3.3.2.3.4 empty topic with alias", MQTT_V5, "30 06 0000 03 230001", OK },
    { "3.3.2.3.4 topic alias 0", MQTT_V5, "30 09 0003 612f62 03 230000", MQTT_ERR_TOPIC_ALIAS },
    { "MQTT-2.2.1-3 QoS 1 with packet identifier 0", MQTT_V311, "32 07 0003 612f62 0000", PROTOCOL },
    { "PUBLISH topic truncated", MQTT_V311, "30 03 0005 61", MALFORMED },
    { "PUBLISH QoS 1 without room for its packet id", MQTT_V311, "32 05 0003 612f62", MALFORMED },
    { "MQTT-1.5.4-2 topic holds U+0000", MQTT_V311, "30 05 0003 610062", MALFORMED },
    { "3.3.2.3.3 message expiry twice", MQTT_V5,
      "30 10 0003 612f62 0a 0200000001 0200000002", PROTOCOL },
    { "3.3.2.3.2 payload format indicator 2", MQTT_V5, "30 08 0003 612f62 02 0102", PROTOCOL },
    { "2.2.2.2 session expiry is not a PUBLISH property", MQTT_V5,
      "30 0b 0003 612f62 05 1100000001", MALFORMED },
    { "3.3.2.3.8 several subscription identifiers", MQTT_V5, "30 0a 0003 612f62 04 0b01 0b02", OK },
    { "3.3.2.3.8 subscription identifier 0", MQTT_V5, "30 08 0003 612f62 02 0b00", PROTOCOL },
    { "1.5.5 subscription identifier over four octets", MQTT_V5,
      "30 0c 0003 612f62 06 0bffffffff01", MALFORMED },
    { "3.3.2.3.7 user property twice", MQTT_V5,
      "30 14 0003 612f62 0e 2600016b000176 2600016b000176", OK },
    { "MQTT-1.5.4-1 user property key not UTF-8", MQTT_V5, "30 0d 0003 612f62 07 260001ff000176", MALFORMED },
    { "3.3.2.3.6 correlation data may hold 0x00", MQTT_V5, "30 0a 0003 612f62 04 09000100", OK },
    { "MQTT-1.5.4-2 content type holds U+0000", MQTT_V5, "30 0a 0003 612f62 04 03000100", MALFORMED },
    { "2.2.2.1 property value past its block", MQTT_V5, "30 0b 0003 612f62 03 020000 0000", MALFORMED },
    { "PUBLISH MQTT 5 without property length", MQTT_V5, "30 05 0003 612f62", MALFORMED },

    /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    { "PUBACK", MQTT_V311, "40 02 0001", OK },
    { "MQTT-2.2.1-3 PUBACK packet identifier 0", MQTT_V311, "40 02 0000", PROTOCOL },
    { "MQTT-2.2.2-2 PUBACK flags", MQTT_V311, "41 02 0001", MALFORMED },
    { "MQTT-3.6.1-1 PUBREL flags must be 0x2", MQTT_V311, "60 02 0001", MALFORMED },
    { "MQTT-3.6.1-1 PUBREL flags 0x2", MQTT_V311, "62 02 0001", OK },
    { "3.1 PUBREL flags unchecked", MQTT_V31, "60 02 0001", OK },
    { "MQTT-3.6.1-1 PUBREL flags in MQTT 5", MQTT_V5, "60 02 0001", MALFORMED },
    { "PUBREC extra octet before MQTT 5", MQTT_V311, "50 03 0001 00", MALFORMED },
    { "PUBACK truncated", MQTT_V311, "40 01 00", MALFORMED },
    { "3.4.2.1 PUBACK no matching subscribers", MQTT_V5, "40 03 0001 10", OK },
    { "3.4.2.1 PUBACK may not say packet id not found", MQTT_V5, "40 03 0001 92", PROTOCOL },
    { "3.6.2.1 PUBREL packet id not found", MQTT_V5, "62 03 0001 92", OK },
    { "3.6.2.1 PUBREL may not say quota exceeded", MQTT_V5, "62 03 0001 97", PROTOCOL },
    { "3.4.2.2 PUBACK empty properties", MQTT_V5, "40 04 0001 00 00", OK },
    { "3.4.2.2 PUBACK reason string", MQTT_V5, "40 08 0001 00 04 1f000178", OK },
    { "3.4.2.2 PUBACK reason string twice", MQTT_V5, "40 0c 0001 00 08 1f000178 1f000179", PROTOCOL },
    { "2.2.2.2 topic alias is not a PUBACK property", MQTT_V5, "40 07 0001 00 03 230001", MALFORMED },
    { "PUBCOMP bytes after the properties", MQTT_V5, "70 05 0001 00 00 00", MALFORMED },

    /* SUBSCRIBE */
    { "SUBSCRIBE", MQTT_V311, "82 08 0001 0003 612f62 01", OK },
    { "MQTT-3.8.1-1 SUBSCRIBE flags", MQTT_V311, "80 08 0001 0003 612f62 01", MALFORMED },
    { "3.1 SUBSCRIBE flags unchecked", MQTT_V31, "80 08 0001 0003 612f62 01", OK },
    { "MQTT-3.8.3-4 QoS 3 in 3.1.1", MQTT_V311, "82 08 0001 0003 612f62 03", MALFORMED },
    { "MQTT-3.8.3-4 reserved option bits in 3.1.1", MQTT_V311, "82 08 0001 0003 612f62 04", MALFORMED },
    { "MQTT-3.8.3-3 no filters", MQTT_V311, "82 02 0001", PROTOCOL },
    { "MQTT-2.2.1-3 SUBSCRIBE packet identifier 0", MQTT_V311, "82 08 0000 0003 612f62 01", PROTOCOL },
    { "SUBSCRIBE options octet missing", MQTT_V311, "82 07 0001 0003 612f62", MALFORMED },
    { "MQTT-1.5.4-1 filter not UTF-8", MQTT_V311, "82 08 0001 0003 61c062 01", MALFORMED },
    { "filter syntax is judged per filter in SUBACK", MQTT_V311, "82 08 0001 0003 612b62 00", OK },
    { "3.8.3.1 all options", MQTT_V5, "82 09 0001 00 0003 612f62 2e", OK },
    { "MQTT-3.8.3-5 reserved option bits", MQTT_V5, "82 09 0001 00 0003 612f62 41", MALFORMED },
    { "3.8.3.1 maximum QoS 3", MQTT_V5, "82 09 0001 00 0003 612f62 03", PROTOCOL },
    { "3.8.3.1 retain handling 3", MQTT_V5, "82 09 0001 00 0003 612f62 30", PROTOCOL },
    { "MQTT-3.8.3-4 no local on a shared subscription", MQTT_V5,
      "82 10 0001 00 000a 2473686172652f672f61 04", PROTOCOL },
    { "shared subscription without no local", MQTT_V5,
      "82 10 0001 00 000a 2473686172652f672f61 00", OK },
    { "3.8.2.1.2 subscription identifier", MQTT_V5, "82 0b 0001 02 0b01 0003 612f62 01", OK },
    { "3.8.2.1.2 subscription identifier twice", MQTT_V5, "82 0d 0001 04 0b010b02 0003 612f62 01", PROTOCOL },
    { "3.8.2.1.2 subscription identifier 0", MQTT_V5, "82 0b 0001 02 0b00 0003 612f62 01", PROTOCOL },
    { "MQTT-3.8.3-2 no filters in MQTT 5", MQTT_V5, "82 03 0001 00", PROTOCOL },
    { "2.2.2.2 topic alias is not a SUBSCRIBE property", MQTT_V5, "82 0c 0001 03 230001 0003 612f62 01", MALFORMED },

    /* UNSUBSCRIBE */
    { "UNSUBSCRIBE", MQTT_V311, "a2 07 0001 0003 612f62", OK },
    { "MQTT-3.10.1-1 UNSUBSCRIBE flags", MQTT_V311, "a0 07 0001 0003 612f62", MALFORMED },
    { "MQTT-3.10.3-2 no filters", MQTT_V311, "a2 02 0001", PROTOCOL },
    { "UNSUBSCRIBE filter truncated", MQTT_V311, "a2 05 0001 0003 61", MALFORMED },
    { "UNSUBSCRIBE MQTT 5", MQTT_V5, "a2 08 0001 00 0003 612f62", OK },
    { "2.2.2.2 reason string is not an UNSUBSCRIBE property", MQTT_V5,
      "a2 0c 0001 04 1f000178 0003 612f62", MALFORMED },

    /* PINGREQ, DISCONNECT, AUTH */
    { "PINGREQ", MQTT_V311, "c0 00", OK },
    { "MQTT-2.2.2-2 PINGREQ flags", MQTT_V311, "c1 00", MALFORMED },
    { "3.12 PINGREQ with a body", MQTT_V311, "c0 01 00", MALFORMED },
    { "DISCONNECT", MQTT_V311, "e0 00", OK },
    { "MQTT-2.2.2-2 DISCONNECT flags", MQTT_V311, "e2 00", MALFORMED },
    { "3.14 DISCONNECT with a body before MQTT 5", MQTT_V311, "e0 01 00", MALFORMED },
    { "3.14.2.1 DISCONNECT with will message", MQTT_V5, "e0 01 04", OK },
    { "3.14.2.1 DISCONNECT may not say no matching subscribers", MQTT_V5, "e0 01 10", PROTOCOL },
    { "3.14.2.2 DISCONNECT session expiry", MQTT_V5, "e0 07 00 05 1100000000", OK },
    { "2.2.2.2 topic alias is not a DISCONNECT property", MQTT_V5, "e0 05 00 03 230001", MALFORMED },
    { "DISCONNECT properties truncated", MQTT_V5, "e0 03 00 05 11", MALFORMED },
    { "3.15 AUTH success short form", MQTT_V5, "f0 00", OK },
    { "2.1.2 AUTH is reserved before MQTT 5", MQTT_V311, "f0 00", MALFORMED },
    { "MQTT-2.2.2-2 AUTH flags", MQTT_V5, "f1 00", MALFORMED },
    { "3.15.2.1 AUTH continue", MQTT_V5, "f0 02 18 00", OK },
    { "3.15.2.1 AUTH may not carry 0x04", MQTT_V5, "f0 02 04 00", PROTOCOL },
    { "3.15.2.2 AUTH method", MQTT_V5, "f0 0a 18 08 150005 534352414d", OK },
    { "3.15.2.2 AUTH method twice", MQTT_V5, "f0 0d 18 0b 150001 41 150001 42 1f0000", PROTOCOL },

    /* What a client decodes */
    { "CONNACK 3.1.1", MQTT_V311, "20 02 01 00", OK },
    { "MQTT-3.2.2-4 session present on a refusal", MQTT_V311, "20 02 01 05", PROTOCOL },
    { "MQTT-3.2.2-1 reserved acknowledge flags", MQTT_V311, "20 02 02 00", MALFORMED },
    { "3.2.2.3 return code 6 unknown", MQTT_V311, "20 02 00 06", PROTOCOL },
    { "3.2.2.2 CONNACK may not say no matching subscribers", MQTT_V5, "20 03 00 10 00", PROTOCOL },
    { "SUBACK failure 0x80 in 3.1.1", MQTT_V311, "90 03 0001 80", OK },
    { "3.1 SUBACK has no failure code", MQTT_V31, "90 03 0001 80", PROTOCOL },
    { "SUBACK MQTT 5 quota exceeded", MQTT_V5, "90 04 0001 00 97", OK },
    { "UNSUBACK MQTT 5 without reasons", MQTT_V5, "b0 03 0001 00", PROTOCOL },
    { "UNSUBACK 3.1.1 with an extra octet", MQTT_V311, "b0 03 0001 00", MALFORMED },
};

START_TEST(test_wire_case)
{
    const wire_case *c = &wire_cases[_i];
    size_t n;
    uint8_t *b = hex(c->hex, &n);
    int got = decode_any(b, n, c->v);
    ck_assert_msg(got == c->expect, "%s: got %d (%s), want %d (%s)", c->name, got,
                  mqtt_strerror(got), c->expect, mqtt_strerror(c->expect));
    free(b);
}
END_TEST

/* ---- properties --------------------------------------------------------- */

/* Section 2.2.2.2's table as the spec prints it: identifier, value type
 * (b byte, 2 two-byte, 4 four-byte, v varint, s string, d binary, p pair)
 * and where it may appear ("WILL" for will properties, "*" everywhere). */
static const struct {
    uint8_t id;
    char kind;
    const char *where;
} spec_props[] = {
    { 0x01, 'b', "PUBLISH,WILL" },
    { 0x02, '4', "PUBLISH,WILL" },
    { 0x03, 's', "PUBLISH,WILL" },
    { 0x08, 's', "PUBLISH,WILL" },
    { 0x09, 'd', "PUBLISH,WILL" },
    { 0x0B, 'v', "PUBLISH,SUBSCRIBE" },
    { 0x11, '4', "CONNECT,CONNACK,DISCONNECT" },
    { 0x12, 's', "CONNACK" },
    { 0x13, '2', "CONNACK" },
    { 0x15, 's', "CONNECT,CONNACK,AUTH" },
    { 0x16, 'd', "CONNECT,CONNACK,AUTH" },
    { 0x17, 'b', "CONNECT" },
    { 0x18, '4', "WILL" },
    { 0x19, 'b', "CONNECT" },
    { 0x1A, 's', "CONNACK" },
    { 0x1C, 's', "CONNACK,DISCONNECT" },
    { 0x1F, 's', "CONNACK,PUBACK,PUBREC,PUBREL,PUBCOMP,SUBACK,UNSUBACK,DISCONNECT,AUTH" },
    { 0x21, '2', "CONNECT,CONNACK" },
    { 0x22, '2', "CONNECT,CONNACK" },
    { 0x23, '2', "PUBLISH" },
    { 0x24, 'b', "CONNACK" },
    { 0x25, 'b', "CONNACK" },
    { 0x26, 'p', "*" },
    { 0x27, '4', "CONNECT,CONNACK" },
    { 0x28, 'b', "CONNACK" },
    { 0x29, 'b', "CONNACK" },
    { 0x2A, 'b', "CONNACK" },
};

#define N_SPEC_PROPS (sizeof spec_props / sizeof spec_props[0])

static bool
listed(const char *list, unsigned type)
{
    const char *name = type == MQTT_PROPS_WILL ? "WILL" : mqtt_type_name(type);
    if (strcmp(list, "*") == 0)
        return type != MQTT_PINGREQ && type != MQTT_PINGRESP;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

/* Appends one property with a valid non-zero value. */
static size_t
prop_entry(uint8_t *out, uint8_t id, char kind)
{
    size_t n = 0;
    out[n++] = id;
    switch (kind) {
    case 'b': out[n++] = 1; break;
    case '2': out[n++] = 0; out[n++] = 1; break;
    case '4': out[n++] = 0; out[n++] = 0; out[n++] = 0; out[n++] = 1; break;
    case 'v': out[n++] = 1; break;
    case 's':
    case 'd': out[n++] = 0; out[n++] = 1; out[n++] = 'x'; break;
    case 'p': memcpy(out + n, "\0\1k\0\1v", 6); n += 6; break;
    }
    return n;
}

/* Reads a property section holding `copies` of one property. */
static int
props_read_one(uint8_t id, char kind, unsigned type, int copies, mqtt_props *out)
{
    uint8_t block[32];
    size_t n = 1;
    for (int i = 0; i < copies; i++)
        n += prop_entry(block + n, id, kind);
    block[0] = (uint8_t)(n - 1);
    mqtt_reader r = { block, (uint32_t)n, 0, 0 };
    mqtt_props_read(&r, type, out);
    if (r.err == 0)
        ck_assert_uint_eq(r.off, n);
    return r.err ? r.err : MQTT_OK;
}

START_TEST(test_props_allowed_per_type)
{
    for (size_t i = 0; i < N_SPEC_PROPS; i++) {
        for (unsigned type = 0; type <= MQTT_AUTH; type++) {
            bool want = listed(spec_props[i].where, type);
            ck_assert_msg(mqtt_prop_allowed(spec_props[i].id, type) == want,
                          "property 0x%02x in %s", spec_props[i].id, mqtt_type_name(type));
            mqtt_props p;
            int rc = props_read_one(spec_props[i].id, spec_props[i].kind, type, 1, &p);
            ck_assert_msg(rc == (want ? MQTT_OK : MQTT_ERR_MALFORMED),
                          "property 0x%02x in %s: %d", spec_props[i].id,
                          type == 0 ? "will" : mqtt_type_name(type), rc);
            if (want)
                ck_assert(mqtt_props_has(&p, spec_props[i].id));
        }
    }
    /* No identifier outside the table is known anywhere. */
    for (unsigned id = 0; id < 128; id++) {
        bool known = false;
        for (size_t i = 0; i < N_SPEC_PROPS; i++)
            known |= spec_props[i].id == id;
        for (unsigned type = 0; type <= MQTT_AUTH && !known; type++)
            ck_assert(!mqtt_prop_allowed(id, type));
    }
}
END_TEST

START_TEST(test_props_duplicates)
{
    /* Repeating a property is a protocol error, except User Property, and
     * Subscription Identifier in PUBLISH (one per matching subscription). */
    for (size_t i = 0; i < N_SPEC_PROPS; i++) {
        for (unsigned type = 0; type <= MQTT_AUTH; type++) {
            if (!listed(spec_props[i].where, type))
                continue;
            uint8_t id = spec_props[i].id;
            bool may_repeat = id == MQTT_PROP_USER_PROPERTY ||
                              (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH);
            mqtt_props p;
            int rc = props_read_one(id, spec_props[i].kind, type, 2, &p);
            ck_assert_msg(rc == (may_repeat ? MQTT_OK : MQTT_ERR_PROTOCOL),
                          "property 0x%02x twice in type %u: %d", id, type, rc);
        }
    }
}
END_TEST

START_TEST(test_props_value_rules)
{
    static const struct { const char *hex; unsigned type; int expect; } cases[] = {
        { "03 210000", MQTT_CONNECT, MQTT_ERR_PROTOCOL },           /* receive maximum 0 */
        { "05 2700000000", MQTT_CONNACK, MQTT_ERR_PROTOCOL },       /* maximum packet size 0 */
        { "03 230000", MQTT_PUBLISH, MQTT_ERR_TOPIC_ALIAS },        /* topic alias 0 */
        { "02 0b00", MQTT_SUBSCRIBE, MQTT_ERR_PROTOCOL },           /* subscription id 0 */
        { "02 2402", MQTT_CONNACK, MQTT_ERR_PROTOCOL },             /* maximum QoS 2 */
        { "02 2400", MQTT_CONNACK, MQTT_OK },
        { "02 2502", MQTT_CONNACK, MQTT_ERR_PROTOCOL },
        { "02 2802", MQTT_CONNACK, MQTT_ERR_PROTOCOL },
        { "02 2902", MQTT_CONNACK, MQTT_ERR_PROTOCOL },
        { "02 2a02", MQTT_CONNACK, MQTT_ERR_PROTOCOL },
        { "02 0102", MQTT_PROPS_WILL, MQTT_ERR_PROTOCOL },
        { "03 220000", MQTT_CONNECT, MQTT_OK },                     /* topic alias maximum 0: none */
        { "05 1100000000", MQTT_DISCONNECT, MQTT_OK },
        { "05 0bffffff7f", MQTT_SUBSCRIBE, MQTT_OK },               /* largest identifier */
        { "00", MQTT_CONNECT, MQTT_OK },
        { "80 00", MQTT_CONNECT, MQTT_OK },                         /* non-minimal zero length */
        { "", MQTT_CONNECT, MQTT_ERR_MALFORMED },                   /* no length at all */
        { "02 2600", MQTT_CONNECT, MQTT_ERR_MALFORMED },            /* pair cut short */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *b = hex(cases[i].hex, &n);
        mqtt_reader r = { b, (uint32_t)n, 0, 0 };
        mqtt_props p;
        mqtt_props_read(&r, cases[i].type, &p);
        int rc = r.err ? r.err : MQTT_OK;
        ck_assert_msg(rc == cases[i].expect, "%s: %d", cases[i].hex, rc);
        free(b);
    }
}
END_TEST

START_TEST(test_props_subid_cap)
{
    uint8_t block[1 + 2 * (MQTT_SUBIDS_MAX + 1)];
    for (int extra = 0; extra <= 1; extra++) {
        size_t count = MQTT_SUBIDS_MAX + (size_t)extra, n = 1;
        for (size_t i = 0; i < count; i++) {
            block[n++] = MQTT_PROP_SUBSCRIPTION_ID;
            block[n++] = (uint8_t)(i + 1);
        }
        block[0] = (uint8_t)(n - 1);
        mqtt_reader r = { block, (uint32_t)n, 0, 0 };
        mqtt_props p;
        mqtt_props_read(&r, MQTT_PUBLISH, &p);
        ck_assert_int_eq(r.err, extra ? MQTT_ERR_PROTOCOL : 0);
        if (!extra) {
            ck_assert_uint_eq(p.n_subids, MQTT_SUBIDS_MAX);
            ck_assert_uint_eq(p.subids[MQTT_SUBIDS_MAX - 1], MQTT_SUBIDS_MAX);
        }
    }
}
END_TEST

START_TEST(test_user_props_forwarded_verbatim)
{
    /* User properties interleaved with others, as a client may send them:
     * read in order, copied out alone, and re-encoded byte for byte. */
    size_t n;
    uint8_t *b = hex("30 28 0003 612f62 20"
                     " 260001 61 000131"                 /* a=1 */
                     " 0200000010"                       /* message expiry 16 */
                     " 260001 62 0000"                   /* b= */
                     " 030004 74657874"                  /* content type "text" */
                     " 260001 61 000132"                 /* a=2 */
                     " 6869", &n);
    mqtt_frame f;
    parse_whole(b, n, MQTT_PUBLISH, &f);
    mqtt_publish p;
    ck_assert_int_eq(mqtt_publish_decode(&f, MQTT_V5, &p), MQTT_OK);
    static const char *const pairs[] = { "a", "1", "b", "", "a", "2", NULL };
    user_expect(&p.props.user, pairs);
    ck_assert_uint_eq(p.props.user.len, 7 + 6 + 7);
    ck_assert_uint_eq(p.props.message_expiry, 16);
    STR_EQ(p.props.content_type, "text");

    uint8_t copy[20];
    mqtt_user_props_copy(&p.props.user, copy);
    assert_bytes(copy, sizeof copy, "260001610001 31 2600016200 00 260001610001 32");

    /* Forward: a PUBLISH carrying only the copied user properties. */
    mqtt_publish out = { .topic = p.topic, .payload = p.payload, .payload_len = p.payload_len };
    out.props.user = (mqtt_user_props){ copy, sizeof copy, sizeof copy, 3 };
    size_t on = mqtt_publish_size(&out, MQTT_V5);
    uint8_t *ob = malloc(on);
    mqtt_publish_encode(&out, MQTT_V5, ob);
    assert_bytes(ob, on, "30 1c 0003 612f62 14 260001610001 31 2600016200 00 260001610001 32 6869");
    /* And straight from the decoded packet, other properties left out. */
    out.props.user = p.props.user;
    ck_assert_uint_eq(mqtt_publish_size(&out, MQTT_V5), on);
    memset(ob, 0, on);
    mqtt_publish_encode(&out, MQTT_V5, ob);
    assert_bytes(ob, on, "30 1c 0003 612f62 14 260001610001 31 2600016200 00 260001610001 32 6869");
    free(ob);
    free(b);
}
END_TEST

/* ---- reason codes ------------------------------------------------------- */

START_TEST(test_reason_codes)
{
    ck_assert_str_eq(mqtt_reason_name(MQTT_RC_PACKET_TOO_LARGE), "Packet too large");
    ck_assert_str_eq(mqtt_reason_name(MQTT_RC_SESSION_TAKEN_OVER), "Session taken over");
    ck_assert_str_eq(mqtt_reason_name(0x00), "Success");
    ck_assert_str_eq(mqtt_reason_name(0x03), "Unknown");
    ck_assert_str_eq(mqtt_strerror(MQTT_ERR_PROTOCOL), "Protocol Error");
    ck_assert_str_eq(mqtt_strerror(MQTT_ERR_MALFORMED), "Malformed Packet");
    ck_assert_str_eq(mqtt_strerror(MQTT_OK), "ok");
    ck_assert_str_eq(mqtt_strerror(MQTT_NEED_MORE), "need more");
    ck_assert_str_eq(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
    ck_assert_str_eq(mqtt_type_name(0), "UNKNOWN");

    ck_assert(mqtt_reason_allowed(MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS));
    ck_assert(!mqtt_reason_allowed(MQTT_PUBREL, MQTT_RC_NO_MATCHING_SUBSCRIBERS));
    ck_assert(mqtt_reason_allowed(MQTT_SUBACK, MQTT_RC_SHARED_SUBS_NOT_SUPPORTED));
    ck_assert(!mqtt_reason_allowed(MQTT_CONNACK, MQTT_RC_SESSION_TAKEN_OVER));
    ck_assert(mqtt_reason_allowed(MQTT_DISCONNECT, MQTT_RC_SESSION_TAKEN_OVER));
    ck_assert(mqtt_reason_allowed(MQTT_CONNACK, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION));
    ck_assert(mqtt_reason_allowed(MQTT_SUBACK, MQTT_RC_GRANTED_QOS2));
    ck_assert(!mqtt_reason_allowed(MQTT_PUBACK, MQTT_RC_GRANTED_QOS2));
    ck_assert(mqtt_reason_allowed(MQTT_AUTH, MQTT_RC_REAUTHENTICATE));
    ck_assert(!mqtt_reason_allowed(MQTT_PINGREQ, MQTT_RC_SUCCESS));
    ck_assert(!mqtt_reason_allowed(MQTT_CONNACK, 0x03));

    /* Every named code has a name; the errors carry their reasons. */
    for (unsigned rc = 0x80; rc <= 0xA2; rc++)
        ck_assert_str_ne(mqtt_reason_name(rc), "Unknown");
    ck_assert_int_eq(-MQTT_ERR_MALFORMED, 0x81);
    ck_assert_int_eq(-MQTT_ERR_PROTOCOL, 0x82);
    ck_assert_int_eq(-MQTT_ERR_TOPIC_NAME, 0x90);

    ck_assert_uint_eq(mqtt_connack_return_code(MQTT_RC_SUCCESS), 0);
    ck_assert_uint_eq(mqtt_connack_return_code(MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION), 1);
    ck_assert_uint_eq(mqtt_connack_return_code(MQTT_RC_CLIENT_ID_NOT_VALID), 2);
    ck_assert_uint_eq(mqtt_connack_return_code(MQTT_RC_SERVER_BUSY), 3);
    ck_assert_uint_eq(mqtt_connack_return_code(MQTT_RC_BAD_USERNAME_OR_PASSWORD), 4);
    ck_assert_uint_eq(mqtt_connack_return_code(MQTT_RC_NOT_AUTHORIZED), 5);
}
END_TEST

/* ---- topics ------------------------------------------------------------- */

START_TEST(test_topic_name_check)
{
    static const struct { const char *s; size_t len; int expect; } cases[] = {
        { "a", 1, MQTT_OK },
        { "a/b/c", 5, MQTT_OK },
        { "/", 1, MQTT_OK },
        { "a//b", 4, MQTT_OK },
        { "$SYS/broker", 11, MQTT_OK },
        { "caf\xc3\xa9", 5, MQTT_OK },
        { "a b*c", 5, MQTT_OK },
        { "", 0, MQTT_ERR_TOPIC_NAME },
        { "a/+", 3, MQTT_ERR_TOPIC_NAME },
        { "a/#", 3, MQTT_ERR_TOPIC_NAME },
        { "a+", 2, MQTT_ERR_TOPIC_NAME },
        { "a\0b", 3, MQTT_ERR_MALFORMED },
        { "a\xed\xa0\x80", 4, MQTT_ERR_MALFORMED },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqtt_str t = { (const uint8_t *)cases[i].s, (uint32_t)cases[i].len };
        ck_assert_msg(mqtt_topic_name_check(t) == cases[i].expect, "name %zu", i);
    }
}
END_TEST

START_TEST(test_topic_levels)
{
    /* mqtt.max_topic_levels counts what a trie walk would: every level,
     * empty ones included */
    static const struct { const char *s; uint32_t levels; } cases[] = {
        { "", 1 }, { "a", 1 }, { "/", 2 }, { "a/b", 2 }, { "a//b", 3 }, { "/a/", 3 },
        { "+/+/#", 3 }, { "$share/g/a/b", 4 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_uint_eq(mqtt_topic_levels(mqtt_str_cstr(cases[i].s)), cases[i].levels);
    char deep[401];
    for (int i = 0; i < 200; i++) {
        deep[2 * i] = 'x';
        deep[2 * i + 1] = '/';
    }
    deep[399] = 0;                 /* 200 levels, the last without its slash */
    ck_assert_uint_eq(mqtt_topic_levels(mqtt_str_cstr(deep)), 200);
}
END_TEST

START_TEST(test_topic_filter_check)
{
    static const struct { const char *s; int expect; } cases[] = {
        { "#", MQTT_OK }, { "+", MQTT_OK }, { "a/#", MQTT_OK }, { "+/+", MQTT_OK },
        { "+/a/#", MQTT_OK }, { "/+", MQTT_OK }, { "a//+/", MQTT_OK }, { "/", MQTT_OK },
        { "$SYS/#", MQTT_OK }, { "$share/g/a/+", MQTT_OK },
        { "", MQTT_ERR_TOPIC_FILTER },
        { "a#", MQTT_ERR_TOPIC_FILTER },      /* MQTT-4.7.1-2 */
        { "a/#/b", MQTT_ERR_TOPIC_FILTER },   /* '#' only last */
        { "#/", MQTT_ERR_TOPIC_FILTER },
        { "##", MQTT_ERR_TOPIC_FILTER },
        { "a+", MQTT_ERR_TOPIC_FILTER },      /* MQTT-4.7.1-3 */
        { "+a/b", MQTT_ERR_TOPIC_FILTER },
        { "a/b+/c", MQTT_ERR_TOPIC_FILTER },
        { "++", MQTT_ERR_TOPIC_FILTER },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(mqtt_topic_filter_check(mqtt_str_cstr(cases[i].s)) == cases[i].expect,
                      "filter '%s'", cases[i].s);
    uint8_t nul[] = { 'a', '/', 0 };
    ck_assert_int_eq(mqtt_topic_filter_check((mqtt_str){ nul, 3 }), MQTT_ERR_MALFORMED);
}
END_TEST

START_TEST(test_topic_share_parse)
{
    static const struct { const char *s; int expect; const char *group, *filter; } cases[] = {
        { "a/b", MQTT_OK, "", "a/b" },
        { "$share", MQTT_OK, "", "$share" },             /* a plain filter */
        { "$shared/g/a", MQTT_OK, "", "$shared/g/a" },
        { "$SHARE/g/a", MQTT_OK, "", "$SHARE/g/a" },     /* case matters */
        { "$share/g/a", MQTT_OK, "g", "a" },
        { "$share/consumers/sensors/+/t", MQTT_OK, "consumers", "sensors/+/t" },
        { "$share/g/#", MQTT_OK, "g", "#" },
        { "$share/g//", MQTT_OK, "g", "/" },
        { "$share/", MQTT_ERR_TOPIC_FILTER, NULL, NULL },
        { "$share//a", MQTT_ERR_TOPIC_FILTER, NULL, NULL },      /* MQTT-4.8.2-1 */
        { "$share/g", MQTT_ERR_TOPIC_FILTER, NULL, NULL },       /* no filter */
        { "$share/g/", MQTT_ERR_TOPIC_FILTER, NULL, NULL },      /* empty filter */
        { "$share/g+/a", MQTT_ERR_TOPIC_FILTER, NULL, NULL },    /* MQTT-4.8.2-2 */
        { "$share/#/a", MQTT_ERR_TOPIC_FILTER, NULL, NULL },
        { "$share/g/a#", MQTT_ERR_TOPIC_FILTER, NULL, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqtt_str g, f;
        int rc = mqtt_topic_share_parse(mqtt_str_cstr(cases[i].s), &g, &f);
        ck_assert_msg(rc == cases[i].expect, "share '%s': %d", cases[i].s, rc);
        if (rc == MQTT_OK) {
            ck_assert_msg(mqtt_str_eq(g, mqtt_str_cstr(cases[i].group)), "group of '%s'", cases[i].s);
            ck_assert_msg(mqtt_str_eq(f, mqtt_str_cstr(cases[i].filter)), "filter of '%s'", cases[i].s);
        }
    }
}
END_TEST

static const struct { const char *filter, *topic; bool match; } match_cases[] = {
    { "a/b", "a/b", true },
    { "a/b", "a/b/c", false },
    { "a/b/c", "a/b", false },
    { "A", "a", false },
    { "#", "a", true },
    { "#", "a/b/c", true },
    { "#", "/a", true },
    { "a/#", "a", true },                 /* '#' includes the parent level */
    { "a/#", "a/b/c", true },
    { "a/#", "ab", false },
    { "a/+", "a", false },
    { "a/+", "a/", true },
    { "a/+", "a/b", true },
    { "a/+", "a/b/c", false },
    { "+/+", "/x", true },
    { "+", "/x", false },
    { "/+", "/x", true },
    { "+", "x", true },
    { "a/+/c", "a/x/c", true },
    { "a/+/c", "a/x/d", false },
    { "a/+/c", "a//c", true },
    { "a//b", "a//b", true },
    { "sport/tennis/#", "sport/tennis/player1/ranking", true },
    { "sport/+/player1", "sport/tennis/player1", true },
    { "+/+/#", "a/b", true },
    { "a.b/+", "a.b/c", true },
    /* MQTT-4.7.2-1: wildcards at the start do not reach $ topics. */
    { "#", "$SYS/x", false },
    { "+/x", "$SYS/x", false },
    { "+", "$", false },
    { "$SYS/#", "$SYS/x", true },
    { "$SYS/+", "$SYS/x", true },
    { "$SYS/#", "$SYS", true },
    { "a/#", "a/$b", true },
};

START_TEST(test_topic_match)
{
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        mqtt_str f = mqtt_str_cstr(match_cases[i].filter);
        mqtt_str t = mqtt_str_cstr(match_cases[i].topic);
        ck_assert_int_eq(mqtt_topic_filter_check(f), MQTT_OK);
        ck_assert_int_eq(mqtt_topic_name_check(t), MQTT_OK);
        ck_assert_msg(mqtt_topic_match(f, t) == match_cases[i].match, "'%s' vs '%s'",
                      match_cases[i].filter, match_cases[i].topic);
    }
}
END_TEST

START_TEST(test_topic_match_agrees_with_amq_topic)
{
    /* The mapping claims an MQTT subscription bound on amq.topic sees what
     * the MQTT matcher would: check it against the AMQP topic matcher,
     * except for the $ rule, which amq.topic does not know. */
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const char *fs = match_cases[i].filter, *ts = match_cases[i].topic;
        if (ts[0] == '$')
            continue;
        size_t fl = strlen(fs), tl = strlen(ts);
        char fk[64], tk[64];
        mqtt_filter_to_amqp((const uint8_t *)fs, fl, fk);
        mqtt_topic_to_amqp((const uint8_t *)ts, tl, tk);
        bool amqp = route_topic_match((amqp_bytes){ fk, (uint32_t)fl }, (amqp_bytes){ tk, (uint32_t)tl });
        ck_assert_msg(amqp == match_cases[i].match, "'%s' vs '%s' as '%.*s' vs '%.*s'",
                      fs, ts, (int)fl, fk, (int)tl, tk);
    }
}
END_TEST

START_TEST(test_topic_mapping)
{
    static const struct { const char *mqtt, *amqp; } topics[] = {
        { "a/b.c", "a.b/c" }, { "a/b/c", "a.b.c" }, { "a", "a" }, { "/", "." },
        { "a//b", "a..b" }, { "v1.0/x", "v1/0.x" }, { "caf\xc3\xa9/x", "caf\xc3\xa9.x" },
    };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        size_t n = strlen(topics[i].mqtt);
        char key[32];
        uint8_t back[32];
        mqtt_topic_to_amqp((const uint8_t *)topics[i].mqtt, n, key);
        ck_assert_mem_eq(key, topics[i].amqp, n);
        mqtt_topic_from_amqp(key, n, back);
        ck_assert_mem_eq(back, topics[i].mqtt, n);
    }
    static const struct { const char *mqtt, *amqp; } filters[] = {
        { "a/+/c", "a.*.c" }, { "#", "#" }, { "+", "*" }, { "a/#", "a.#" },
        { "+/b.c/#", "*.b/c.#" }, { "$share/g/a", "$share.g.a" },
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        size_t n = strlen(filters[i].mqtt);
        char key[32];
        mqtt_filter_to_amqp((const uint8_t *)filters[i].mqtt, n, key);
        ck_assert_mem_eq(key, filters[i].amqp, n);
    }
    /* An AMQP routing key becomes an MQTT topic for delivery. */
    uint8_t t[16];
    mqtt_topic_from_amqp("stock.nyse/ibm", 14, t);
    ck_assert_mem_eq(t, "stock/nyse.ibm", 14);
}
END_TEST

Suite *
suite_mqtt(void)
{
    Suite *s = suite_create("mqtt");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, test_varint_edges);
    tcase_add_test(tc, test_varint_fifth_byte_malformed);
    tcase_add_test(tc, test_varint_non_minimal_accepted);
    tcase_add_test(tc, test_frame_two_packets);
    tcase_add_test(tc, test_frame_reserved_type);
    tcase_add_test(tc, test_frame_max_packet_from_header);
    tcase_add_test(tc, test_frame_exact_max);
    tcase_add_test(tc, test_packet_size_limit);
    tcase_add_test(tc, test_utf8);
    suite_add_tcase(s, tc);

    tc = tcase_create("packets");
    tcase_add_test(tc, test_connect_v311_bytes);
    tcase_add_test(tc, test_connect_roundtrip);
    tcase_add_test(tc, test_connect_without_will_or_credentials);
    tcase_add_test(tc, test_connect_version_reported_on_failure);
    tcase_add_test(tc, test_connack_roundtrip);
    tcase_add_test(tc, test_publish_bytes);
    tcase_add_test(tc, test_publish_roundtrip);
    tcase_add_test(tc, test_ack_roundtrip);
    tcase_add_test(tc, test_subscribe_roundtrip);
    tcase_add_test(tc, test_suback_roundtrip);
    tcase_add_test(tc, test_unsubscribe_roundtrip);
    tcase_add_test(tc, test_unsuback_roundtrip);
    tcase_add_test(tc, test_ping_roundtrip);
    tcase_add_test(tc, test_disconnect_roundtrip);
    tcase_add_test(tc, test_auth_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("conformance");
    tcase_add_loop_test(tc, test_wire_case, 0, (int)(sizeof wire_cases / sizeof wire_cases[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("properties");
    tcase_add_test(tc, test_props_allowed_per_type);
    tcase_add_test(tc, test_props_duplicates);
    tcase_add_test(tc, test_props_value_rules);
    tcase_add_test(tc, test_props_subid_cap);
    tcase_add_test(tc, test_user_props_forwarded_verbatim);
    tcase_add_test(tc, test_reason_codes);
    suite_add_tcase(s, tc);

    tc = tcase_create("topics");
    tcase_add_test(tc, test_topic_name_check);
    tcase_add_test(tc, test_topic_levels);
    tcase_add_test(tc, test_topic_filter_check);
    tcase_add_test(tc, test_topic_share_parse);
    tcase_add_test(tc, test_topic_match);
    tcase_add_test(tc, test_topic_match_agrees_with_amq_topic);
    tcase_add_test(tc, test_topic_mapping);
    suite_add_tcase(s, tc);
    return s;
}
