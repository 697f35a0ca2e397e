/*
 * Writes the seed corpora of tests/fuzz/corpus/<target>/: valid inputs
 * made by Coney's own encoders (AMQP frames, MQTT packets of the three
 * versions, storage records) and by hand (config files, HTTP requests).
 * Run by `make fuzz-corpus`; the output is kept in the repository, so
 * regenerate and commit when a format changes. File names are the seed's
 * meaning, so a diff of the corpus reads.
 */
/* seeds name the fields they set; the rest are zero on purpose */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugins/mqtt/mqtt.h"
#include "protocol/amqp.h"
#include "storage/record.h"

static const char *root;

static void
put(const char *target, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void
put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* ---- AMQP ------------------------------------------------------------------- */

/* A growing byte buffer, for streams of frames. */
typedef struct out { uint8_t b[65536]; size_t n; } out;

static void
out_method(out *o, uint16_t ch, const amqp_method *m)
{
    o->n += amqp_method_frame_encode(ch, m, o->b + o->n);
}

static amqp_bytes B(const char *s) { return amqp_cstr(s); }

static amqp_field f_props[] = {
    { AMQP_BYTES_LIT("product"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("pika") } },
    { AMQP_BYTES_LIT("version"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("1.3.2") } },
};
static amqp_field f_caps[] = {
    { AMQP_BYTES_LIT("publisher_confirms"), { .kind = 't', .v.boolean = true } },
    { AMQP_BYTES_LIT("consumer_cancel_notify"), { .kind = 't', .v.boolean = true } },
    { AMQP_BYTES_LIT("basic.nack"), { .kind = 't', .v.boolean = false } },
};
static amqp_value arr_items[] = {
    { .kind = 'I', .v.i = -7 }, { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("x") },
    { .kind = 'V' }, { .kind = 'l', .v.i = 1LL << 40 },
};
/* every type the decoder knows, once */
static amqp_field f_all[] = {
    { AMQP_BYTES_LIT("t"), { .kind = 't', .v.boolean = true } },
    { AMQP_BYTES_LIT("b"), { .kind = 'b', .v.i = -1 } },
    { AMQP_BYTES_LIT("B"), { .kind = 'B', .v.u = 200 } },
    { AMQP_BYTES_LIT("s"), { .kind = 's', .v.i = -300 } },
    { AMQP_BYTES_LIT("u"), { .kind = 'u', .v.u = 60000 } },
    { AMQP_BYTES_LIT("I"), { .kind = 'I', .v.i = -100000 } },
    { AMQP_BYTES_LIT("i"), { .kind = 'i', .v.u = 4000000000u } },
    { AMQP_BYTES_LIT("l"), { .kind = 'l', .v.i = -5000000000LL } },
    { AMQP_BYTES_LIT("f"), { .kind = 'f', .v.f = 1.5f } },
    { AMQP_BYTES_LIT("d"), { .kind = 'd', .v.d = -2.25 } },
    { AMQP_BYTES_LIT("D"), { .kind = 'D', .v.decimal = { 2, 12345 } } },
    { AMQP_BYTES_LIT("S"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("long string") } },
    { AMQP_BYTES_LIT("x"), { .kind = 'x', .v.bytes = AMQP_BYTES_LIT("\0\1\2") } },
    { AMQP_BYTES_LIT("T"), { .kind = 'T', .v.u = 1700000000 } },
    { AMQP_BYTES_LIT("V"), { .kind = 'V' } },
    { AMQP_BYTES_LIT("A"), { .kind = 'A', .v.array = { 4, arr_items } } },
    { AMQP_BYTES_LIT("F"), { .kind = 'F', .v.table = { 3, f_caps } } },
};
static amqp_field f_client[] = {
    { AMQP_BYTES_LIT("product"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("pika") } },
    { AMQP_BYTES_LIT("capabilities"), { .kind = 'F', .v.table = { 3, f_caps } } },
};
static amqp_field f_qargs[] = {
    { AMQP_BYTES_LIT("x-message-ttl"), { .kind = 'I', .v.i = 60000 } },
    { AMQP_BYTES_LIT("x-dead-letter-exchange"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("dlx") } },
    { AMQP_BYTES_LIT("x-max-priority"), { .kind = 'b', .v.i = 10 } },
    { AMQP_BYTES_LIT("x-queue-type"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("classic") } },
};
static amqp_field f_headers[] = {
    { AMQP_BYTES_LIT("x-match"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("all") } },
    { AMQP_BYTES_LIT("format"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("pdf") } },
    { AMQP_BYTES_LIT("x-delay"), { .kind = 'l', .v.i = 5000 } },
    { AMQP_BYTES_LIT("CC"), { .kind = 'A', .v.array = { 2, arr_items + 1 } } },
};
#define TABLE(a) ((amqp_table){ sizeof(a) / sizeof(a)[0], (a) })

static void
amqp_seeds(void)
{
    /* single method frames, one per seed */
    struct { const char *name; amqp_method m; } ms[] = {
        { "connection.start-ok", { AMQP_CONNECTION_START_OK, .a.connection_start_ok = {
            TABLE(f_client), AMQP_BYTES_LIT("PLAIN"), AMQP_BYTES_LIT("\0guest\0guest"),
            AMQP_BYTES_LIT("en_US") } } },
        { "connection.start", { AMQP_CONNECTION_START, .a.connection_start = {
            0, 9, TABLE(f_props), AMQP_BYTES_LIT("PLAIN AMQPLAIN"), AMQP_BYTES_LIT("en_US") } } },
        { "connection.secure-ok", { AMQP_CONNECTION_SECURE_OK, .a.connection_secure_ok = {
            AMQP_BYTES_LIT("response") } } },
        { "connection.tune-ok", { AMQP_CONNECTION_TUNE_OK, .a.connection_tune_ok = { 2047, 131072, 60 } } },
        { "connection.open", { AMQP_CONNECTION_OPEN, .a.connection_open = { AMQP_BYTES_LIT("/"), {0}, false } } },
        { "connection.close", { AMQP_CONNECTION_CLOSE, .a.connection_close = {
            200, AMQP_BYTES_LIT("Normal shutdown"), 0, 0 } } },
        { "connection.close-ok", { AMQP_CONNECTION_CLOSE_OK } },
        { "connection.blocked", { AMQP_CONNECTION_BLOCKED, .a.connection_blocked = { AMQP_BYTES_LIT("low on memory") } } },
        { "connection.update-secret", { AMQP_CONNECTION_UPDATE_SECRET, .a.connection_update_secret = {
            AMQP_BYTES_LIT("token"), AMQP_BYTES_LIT("refresh") } } },
        { "channel.open", { AMQP_CHANNEL_OPEN } },
        { "channel.flow", { AMQP_CHANNEL_FLOW, .a.channel_flow = { true } } },
        { "channel.close", { AMQP_CHANNEL_CLOSE, .a.channel_close = {
            404, AMQP_BYTES_LIT("NOT_FOUND - no queue 'q'"), 50, 10 } } },
        { "access.request", { AMQP_ACCESS_REQUEST, .a.access_request = {
            AMQP_BYTES_LIT("/data"), false, true, true, true, true } } },
        { "exchange.declare", { AMQP_EXCHANGE_DECLARE, .a.exchange_declare = {
            0, AMQP_BYTES_LIT("logs"), AMQP_BYTES_LIT("topic"), false, true, false, false, false,
            TABLE(f_headers) } } },
        { "exchange.delete", { AMQP_EXCHANGE_DELETE, .a.exchange_delete = { 0, AMQP_BYTES_LIT("logs"), true, false } } },
        { "exchange.bind", { AMQP_EXCHANGE_BIND, .a.exchange_bind = {
            0, AMQP_BYTES_LIT("dst"), AMQP_BYTES_LIT("src"), AMQP_BYTES_LIT("a.*"), false, {0} } } },
        { "exchange.unbind", { AMQP_EXCHANGE_UNBIND, .a.exchange_unbind = {
            0, AMQP_BYTES_LIT("dst"), AMQP_BYTES_LIT("src"), AMQP_BYTES_LIT("#"), true, {0} } } },
        { "queue.declare", { AMQP_QUEUE_DECLARE, .a.queue_declare = {
            0, AMQP_BYTES_LIT("tasks"), false, true, false, false, false, TABLE(f_qargs) } } },
        { "queue.declare-server-named", { AMQP_QUEUE_DECLARE, .a.queue_declare = {
            0, {0}, false, false, true, true, false, {0} } } },
        { "queue.bind", { AMQP_QUEUE_BIND, .a.queue_bind = {
            0, AMQP_BYTES_LIT("tasks"), AMQP_BYTES_LIT("amq.headers"), {0}, false, TABLE(f_headers) } } },
        { "queue.purge", { AMQP_QUEUE_PURGE, .a.queue_purge = { 0, AMQP_BYTES_LIT("tasks"), false } } },
        { "queue.delete", { AMQP_QUEUE_DELETE, .a.queue_delete = { 0, AMQP_BYTES_LIT("tasks"), true, true, false } } },
        { "queue.unbind", { AMQP_QUEUE_UNBIND, .a.queue_unbind = {
            0, AMQP_BYTES_LIT("tasks"), AMQP_BYTES_LIT("logs"), AMQP_BYTES_LIT("k"), {0} } } },
        { "basic.qos", { AMQP_BASIC_QOS, .a.basic_qos = { 0, 10, false } } },
        { "basic.consume", { AMQP_BASIC_CONSUME, .a.basic_consume = {
            0, AMQP_BYTES_LIT("tasks"), AMQP_BYTES_LIT("ctag-1"), false, false, true, false,
            TABLE(f_qargs) } } },
        { "basic.cancel", { AMQP_BASIC_CANCEL, .a.basic_cancel = { AMQP_BYTES_LIT("ctag-1"), false } } },
        { "basic.get", { AMQP_BASIC_GET, .a.basic_get = { 0, AMQP_BYTES_LIT("tasks"), true } } },
        { "basic.deliver", { AMQP_BASIC_DELIVER, .a.basic_deliver = {
            AMQP_BYTES_LIT("ctag-1"), 42, true, AMQP_BYTES_LIT("logs"), AMQP_BYTES_LIT("a.b") } } },
        { "basic.ack", { AMQP_BASIC_ACK, .a.basic_ack = { 42, true } } },
        { "basic.reject", { AMQP_BASIC_REJECT, .a.basic_reject = { 7, false } } },
        { "basic.nack", { AMQP_BASIC_NACK, .a.basic_nack = { 9, true, true } } },
        { "basic.recover", { AMQP_BASIC_RECOVER, .a.basic_recover = { true } } },
        { "basic.recover-async", { AMQP_BASIC_RECOVER_ASYNC, .a.basic_recover_async = { false } } },
        { "confirm.select", { AMQP_CONFIRM_SELECT, .a.confirm_select = { false } } },
        { "tx.select", { AMQP_TX_SELECT } },
        { "tx.commit", { AMQP_TX_COMMIT } },
        { "tx.rollback", { AMQP_TX_ROLLBACK } },
    };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        out o = { .n = 0 };
        out_method(&o, 1, &ms[i].m);
        put("amqp_frame", ms[i].name, o.b, o.n);
    }

    /* content headers with properties */
    amqp_basic_props props[] = {
        { .flags = AMQP_BASIC_CONTENT_TYPE | AMQP_BASIC_DELIVERY_MODE,
          .content_type = AMQP_BYTES_LIT("text/plain"), .delivery_mode = 2 },
        { .flags = 0xfffc, .content_type = AMQP_BYTES_LIT("application/json"),
          .content_encoding = AMQP_BYTES_LIT("gzip"), .headers = TABLE(f_headers),
          .delivery_mode = 1, .priority = 5, .correlation_id = AMQP_BYTES_LIT("c-1"),
          .reply_to = AMQP_BYTES_LIT("amq.rabbitmq.reply-to"), .expiration = AMQP_BYTES_LIT("60000"),
          .message_id = AMQP_BYTES_LIT("m-1"), .timestamp = 1700000000,
          .type = AMQP_BYTES_LIT("t"), .user_id = AMQP_BYTES_LIT("guest"),
          .app_id = AMQP_BYTES_LIT("app"), .cluster_id = AMQP_BYTES_LIT("") },
        { .flags = AMQP_BASIC_HEADERS | AMQP_BASIC_PRIORITY, .headers = TABLE(f_all), .priority = 9 },
        { .flags = 0 },
    };
    /* a whole publish: protocol header, handshake, publish, header, body x2 */
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        out o = { .n = 0 };
        if (i == 0) {
            memcpy(o.b, AMQP_PROTOCOL_HEADER, 8);
            o.n = 8;
            out_method(&o, 0, &ms[0].m);
            out_method(&o, 0, &ms[3].m);
            out_method(&o, 0, &ms[4].m);
            out_method(&o, 1, &ms[9].m);
        }
        amqp_method pub = { AMQP_BASIC_PUBLISH, .a.basic_publish = {
            0, B("amq.topic"), B("a.b.c"), i == 1, false } };
        out_method(&o, 1, &pub);
        uint8_t pb[4096];
        size_t pn = amqp_props_encode(&props[i], pb);
        o.n += amqp_header_frame_encode(1, 11, props[i].flags, pb, (uint32_t)pn, o.b + o.n);
        amqp_frame_header_write(o.b + o.n, AMQP_FRAME_BODY, 1, 6);
        memcpy(o.b + o.n + 7, "hello \xce", 7);
        o.n += 14;
        amqp_frame_header_write(o.b + o.n, AMQP_FRAME_BODY, 1, 5);
        memcpy(o.b + o.n + 7, "world\xce", 6);
        o.n += 13;
        char name[64];
        snprintf(name, sizeof name, "publish-%zu", i);
        put("amqp_frame", name, o.b, o.n);
    }
    uint8_t hb[8];
    amqp_frame_header_write(hb, AMQP_FRAME_HEARTBEAT, 0, 0);
    hb[7] = AMQP_FRAME_END;
    put("amqp_frame", "heartbeat", hb, 8);

    /* field tables */
    struct { const char *name; amqp_table t; } ts[] = {
        { "empty", { 0, NULL } },
        { "client-properties", TABLE(f_client) },
        { "every-type", TABLE(f_all) },
        { "queue-arguments", TABLE(f_qargs) },
        { "headers", TABLE(f_headers) },
        { "capabilities", TABLE(f_caps) },
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        uint8_t b[4096];
        size_t n = amqp_table_encode(&ts[i].t, b);
        put("amqp_table", ts[i].name, b, n);
    }
    /* each type alone */
    for (size_t i = 0; i < sizeof f_all / sizeof f_all[0]; i++) {
        uint8_t b1[512];
        amqp_table one = { 1, &f_all[i] };
        char name[32];
        snprintf(name, sizeof name, "type-%c", f_all[i].value.kind);
        put("amqp_table", name, b1, amqp_table_encode(&one, b1));
    }
    /* nesting: a table in a table in ... */
    static amqp_field nest[8];
    for (int d = 0; d < 8; d++) {
        nest[d].key = AMQP_BYTES_LIT("n");
        nest[d].value.kind = 'F';
        nest[d].value.v.table = d ? (amqp_table){ 1, &nest[d - 1] } : TABLE(f_caps);
    }
    uint8_t b[4096];
    amqp_table nt = { 1, &nest[7] };
    put("amqp_table", "nested", b, amqp_table_encode(&nt, b));
    /* as RabbitMQ writes some types we read but do not write */
    static const uint8_t rabbit_u[] = { 0, 0, 0, 12, 1, 'a', 'U', 0xff, 0xfe,
                                        1, 'b', 'L', 0, 0, 0 };
    put("amqp_table", "short-u", rabbit_u, 12);
}

/* ---- MQTT ------------------------------------------------------------------- */

static uint8_t ubuf[256];

static void
user_props(mqtt_props *p)
{
    size_t n = mqtt_user_prop_write(ubuf, MQTT_STR("key"), MQTT_STR("value"));
    n += mqtt_user_prop_write(ubuf + n, MQTT_STR("k2"), MQTT_STR(""));
    p->user = (mqtt_user_props){ ubuf, (uint32_t)n, (uint32_t)n, 2 };
    mqtt_props_set(p, MQTT_PROP_USER_PROPERTY);
}

static void
mqtt_seed(const char *name, mqtt_version v, const uint8_t *b, size_t n)
{
    static const char *vn[] = { [MQTT_V31] = "31", [MQTT_V311] = "311", [MQTT_V5] = "5" };
    char path[128];
    snprintf(path, sizeof path, "%s-v%s", name, vn[v]);
    put("mqtt", path, b, n);
}

static void
mqtt_seeds(void)
{
    uint8_t b[4096];
    const mqtt_version vs[] = { MQTT_V31, MQTT_V311, MQTT_V5 };
    for (size_t i = 0; i < 3; i++) {
        mqtt_version v = vs[i];

        mqtt_connect c = { .version = v, .clean_start = true, .keep_alive = 60,
                           .client_id = MQTT_STR("client-1"), .has_username = true,
                           .username = MQTT_STR("guest"), .has_password = true,
                           .password = MQTT_STR("guest") };
        mqtt_connect_encode(&c, b);
        mqtt_seed("connect", v, b, mqtt_connect_size(&c));
        c.will = true;
        c.will_qos = 1;
        c.will_retain = true;
        c.will_topic = MQTT_STR("last/will");
        c.will_payload = MQTT_STR("bye");
        if (v == MQTT_V5) {
            c.props.session_expiry = 3600;
            c.props.receive_maximum = 10;
            c.props.topic_alias_maximum = 5;
            c.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) |
                              MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
                              MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
            user_props(&c.props);
            c.will_props.will_delay = 30;
            c.will_props.content_type = MQTT_STR("text/plain");
            c.will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY) |
                                   MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        }
        size_t cn = mqtt_connect_size(&c);
        mqtt_connect_encode(&c, b);
        /* a session: connect, subscribe, publish, ping, disconnect */
        size_t n = cn;
        mqtt_seed("connect-will", v, b, cn);

        mqtt_sub_filter fs[] = {
            { MQTT_STR("a/+/c"), 1, false, false, 0 },
            { MQTT_STR("sport/#"), 2, v == MQTT_V5, v == MQTT_V5, v == MQTT_V5 ? 2 : 0 },
            { MQTT_STR("$share/g/x/y"), 0, false, false, 0 },
        };
        mqtt_subscribe s = { .packet_id = 1 };
        if (v == MQTT_V5) {
            s.props.subids[0] = 7;
            s.props.n_subids = 1;
            mqtt_props_set(&s.props, MQTT_PROP_SUBSCRIPTION_ID);
        }
        size_t sn = mqtt_subscribe_size(&s, fs, 3, v);
        mqtt_subscribe_encode(&s, fs, 3, v, b + n);
        mqtt_seed("subscribe", v, b + n, sn);
        n += sn;

        mqtt_publish p = { .qos = 1, .topic = MQTT_STR("a/b/c"), .packet_id = 2,
                           .payload = (const uint8_t *)"hello", .payload_len = 5 };
        if (v == MQTT_V5) {
            p.props.payload_format = 1;
            p.props.message_expiry = 60;
            p.props.response_topic = MQTT_STR("reply/to");
            p.props.correlation_data = MQTT_STR("\x01\x02");
            p.props.present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
                              MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) |
                              MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
                              MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
            user_props(&p.props);
        }
        size_t pn = mqtt_publish_size(&p, v);
        mqtt_publish_encode(&p, v, b + n);
        mqtt_seed("publish-qos1", v, b + n, pn);
        n += pn;
        mqtt_publish p0 = { .qos = 0, .retain = true, .topic = MQTT_STR("sport/tennis"),
                            .payload = (const uint8_t *)"", .payload_len = 0 };
        pn = mqtt_publish_size(&p0, v);
        mqtt_publish_encode(&p0, v, b + n);
        mqtt_seed("publish-qos0-retain", v, b + n, pn);
        n += pn;
        mqtt_publish p2 = { .qos = 2, .dup = true, .topic = MQTT_STR("x"), .packet_id = 3,
                            .payload = (const uint8_t *)"\0\1\2", .payload_len = 3 };
        if (v == MQTT_V5) {
            p2.topic = MQTT_STR("");
            p2.props.topic_alias = 1;
            p2.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        }
        pn = mqtt_publish_size(&p2, v);
        mqtt_publish_encode(&p2, v, b + n);
        mqtt_seed("publish-qos2", v, b + n, pn);
        n += pn;

        for (unsigned t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
            mqtt_ack a = { .type = (uint8_t)t, .packet_id = 2 };
            if (v == MQTT_V5 && t == MQTT_PUBREC) {
                a.reason = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
                a.props.reason_string = MQTT_STR("nobody");
                a.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
            }
            size_t an = mqtt_ack_size(&a, v);
            mqtt_ack_encode(&a, v, b + n);
            mqtt_seed(mqtt_type_name(t), v, b + n, an);
            n += an;
        }

        mqtt_str ufs[] = { MQTT_STR("a/+/c"), MQTT_STR("#") };
        mqtt_unsubscribe u = { .packet_id = 4 };
        size_t un = mqtt_unsubscribe_size(&u, ufs, 2, v);
        mqtt_unsubscribe_encode(&u, ufs, 2, v, b + n);
        mqtt_seed("unsubscribe", v, b + n, un);
        n += un;

        mqtt_pingreq_encode(b + n);
        mqtt_seed("pingreq", v, b + n, MQTT_PING_SIZE);
        n += MQTT_PING_SIZE;

        mqtt_disconnect d = { 0 };
        if (v == MQTT_V5) {
            d.reason = MQTT_RC_DISCONNECT_WITH_WILL;
            d.props.session_expiry = 0;
            d.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
        }
        size_t dn = mqtt_disconnect_size(&d, v);
        mqtt_disconnect_encode(&d, v, b + n);
        mqtt_seed("disconnect", v, b + n, dn);
        n += dn;
        mqtt_seed("session", v, b, n);

        /* what a server sends, which the client-side decoders read */
        mqtt_connack ca = { .session_present = v != MQTT_V31, .code = 0 };
        if (v == MQTT_V5) {
            ca.props.assigned_client_id = MQTT_STR("auto-1");
            ca.props.maximum_qos = 1;
            ca.props.retain_available = 1;
            ca.props.present = MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID) |
                               MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS) |
                               MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE);
        }
        mqtt_connack_encode(&ca, v, b);
        mqtt_seed("connack", v, b, mqtt_connack_size(&ca, v));
        static const uint8_t codes[] = { 0, 1, 2, 0x80 };
        mqtt_suback sa = { .packet_id = 1, .codes = codes, .n_codes = v == MQTT_V31 ? 3 : 4 };
        mqtt_suback_encode(&sa, v, b);
        mqtt_seed("suback", v, b, mqtt_suback_size(&sa, v));
        static const uint8_t ucodes[] = { 0, 0x11 };
        mqtt_unsuback ua = { .packet_id = 4, .codes = ucodes, .n_codes = 2 };
        mqtt_unsuback_encode(&ua, v, b);
        mqtt_seed("unsuback", v, b, mqtt_unsuback_size(&ua, v));
        mqtt_pingresp_encode(b);
        mqtt_seed("pingresp", v, b, MQTT_PING_SIZE);
    }
    mqtt_auth au = { .reason = MQTT_RC_CONTINUE_AUTHENTICATION };
    au.props.auth_method = MQTT_STR("SCRAM-SHA-1");
    au.props.auth_data = MQTT_STR("n,,n=user,r=abc");
    au.props.present = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD) | MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
    mqtt_auth_encode(&au, b);
    mqtt_seed("auth", MQTT_V5, b, mqtt_auth_size(&au));
}

/* ---- storage records --------------------------------------------------------- */

#define SB(s) ((store_bytes){ (const uint8_t *)(s), (uint32_t)(sizeof(s) - 1) })

static void
record_seeds(void)
{
    uint8_t b[4096];
    uint8_t args[256];
    amqp_table qa = TABLE(f_qargs);
    size_t an = amqp_table_encode(&qa, args);
    store_bytes targs = { args, (uint32_t)an };

    store_exchange x = { SB("/"), SB("logs"), 2, STORE_F_DURABLE, targs };
    rec_exchange_encode(&x, b);
    put("record", "exchange", b, rec_exchange_size(&x));
    store_exchange x0 = { SB("vh"), SB("x"), 0, STORE_F_DURABLE | STORE_F_INTERNAL, SB("") };
    rec_exchange_encode(&x0, b);
    put("record", "exchange-no-args", b, rec_exchange_size(&x0));
    store_queue q = { SB("/"), SB("tasks"), 17, STORE_F_DURABLE, targs };
    rec_queue_encode(&q, b);
    put("record", "queue", b, rec_queue_size(&q));
    store_binding bq = { SB("/"), SB("logs"), STORE_DEST_QUEUE, SB("tasks"), SB("a.*"), SB("") };
    rec_binding_encode(&bq, b);
    put("record", "binding-queue", b, rec_binding_size(&bq));
    store_binding bx = { SB("/"), SB("logs"), STORE_DEST_EXCHANGE, SB("x2"), SB("#"), targs };
    rec_binding_encode(&bx, b);
    put("record", "binding-exchange", b, rec_binding_size(&bx));
    store_message m = { 1, AMQP_BASIC_DELIVERY_MODE, SB("amq.topic"), SB("a.b"), SB("\2"),
                        SB("hello") };
    rec_message_encode(&m, b);
    put("record", "message", b, rec_message_size(&m));
    rec_qentry_encode(99, STORE_QE_DELIVERED, b);
    put("record", "qentry", b, REC_QENTRY_LEN);
    static const uint8_t hk[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    rec_hashkey_encode(hk, b);
    put("record", "hashkey", b, REC_HASHKEY_LEN);
    store_kv kv = { SB("/"), SB("sport/tennis"), SB("\1retained payload") };
    rec_kv_encode(REC_RETAINED, &kv, b);
    put("record", "retained", b, rec_kv_size(&kv));
    store_kv ses = { SB("/"), SB("client-1"), SB("\1\0\0\0\3") };
    rec_kv_encode(REC_SESSION, &ses, b);
    put("record", "session", b, rec_kv_size(&ses));
    store_vhost vh = { SB("prod"), SB("production"), SB("a,b"), 0, SB("quorum"), 100, STORE_NO_LIMIT };
    rec_vhost_encode(&vh, b);
    put("record", "vhost", b, rec_vhost_size(&vh));
    store_user u = { SB("admin"), SB("\1\2\3\4abcdefghijklmnopqrstuvwxyz012345"), STORE_HASH_SHA256,
                     SB("administrator"), STORE_NO_LIMIT, 10 };
    rec_user_encode(&u, b);
    put("record", "user", b, rec_user_size(&u));
    store_permission pm = { SB("admin"), SB("/"), SB(".*"), SB(".*"), SB("^amq\\.") };
    rec_permission_encode(&pm, b);
    put("record", "permission", b, rec_permission_size(&pm));
    store_topic_permission tp = { SB("admin"), SB("/"), SB("amq.topic"), SB("^a"), SB(".*") };
    rec_topic_permission_encode(&tp, b);
    put("record", "topic-permission", b, rec_topic_permission_size(&tp));
    /* the same kinds with empty or extreme fields */
    store_exchange xe = { SB(""), SB(""), 255, 0xff, SB("") };
    rec_exchange_encode(&xe, b);
    put("record", "exchange-empty", b, rec_exchange_size(&xe));
    store_queue qe = { SB("/"), SB(""), UINT64_MAX, 0, SB("") };
    rec_queue_encode(&qe, b);
    put("record", "queue-empty", b, rec_queue_size(&qe));
    store_message me = { 2, 0, SB(""), SB(""), SB(""), SB("") };
    rec_message_encode(&me, b);
    put("record", "message-empty", b, rec_message_size(&me));
    rec_qentry_encode(0, STORE_QE_TRANSIENT | STORE_QE_DELIVERED, b);
    put("record", "qentry-transient", b, REC_QENTRY_LEN);
    store_kv kve = { SB(""), SB(""), SB("") };
    rec_kv_encode(REC_RETAINED, &kve, b);
    put("record", "retained-empty", b, rec_kv_size(&kve));
    store_vhost vhe = { SB("/"), SB(""), SB(""), 0, SB(""), STORE_NO_LIMIT, 0 };
    rec_vhost_encode(&vhe, b);
    put("record", "vhost-default", b, rec_vhost_size(&vhe));
    store_user ue = { SB("guest"), SB(""), STORE_HASH_NONE, SB(""), 0, STORE_NO_LIMIT };
    rec_user_encode(&ue, b);
    put("record", "user-no-password", b, rec_user_size(&ue));
    store_permission pe = { SB("u"), SB("v"), SB(""), SB(""), SB("") };
    rec_permission_encode(&pe, b);
    put("record", "permission-none", b, rec_permission_size(&pe));
    store_policy pz = { SB("v"), SB("p"), SB(".*"), SB("all"), -3, SB("") };
    rec_policy_encode(REC_POLICY, &pz, b);
    put("record", "policy-negative-priority", b, rec_policy_size(&pz));
    /* from a newer Coney: version 2 of an exchange */
    rec_exchange_encode(&x, b);
    b[0] = 2;
    put("record", "exchange-version-2", b, rec_exchange_size(&x));

    store_policy po = { SB("/"), SB("ttl"), SB("^q\\."), SB("queues"), 5, targs };
    rec_policy_encode(REC_POLICY, &po, b);
    put("record", "policy", b, rec_policy_size(&po));
    rec_policy_encode(REC_OPERATOR_POLICY, &po, b);
    put("record", "operator-policy", b, rec_policy_size(&po));
}

/* ---- config files and HTTP requests (by hand) --------------------------------- */

static void
text_seeds(void)
{
    put_str("config", "listeners", "listeners.tcp.default = 5672\nmqtt.listeners.tcp.default = 1883\n"
            "management.tcp.port = 15672\nprometheus.tcp.port = 15692\n");
    put_str("config", "listeners-ip", "listeners.tcp.local = 127.0.0.1:5673\n"
            "mqtt.listeners.tcp.1 = 0.0.0.0:1884\nmanagement.tcp.ip = ::1\n");
    put_str("config", "limits", "# limits\nheartbeat = 30\nframe_max = 131072\nchannel_max = 128\n"
            "max_message_size = 16777216\nconsumer_timeout = 900000\n");
    put_str("config", "sizes", "disk_free_limit.absolute = 1GB\nqueue_memory_budget = 512MiB\n");
    put_str("config", "size-units", "disk_free_limit.absolute = 50000kB\nqueue_memory_budget = 2TiB\n");
    put_str("config", "users", "default_user = admin\ndefault_pass = s3cret\ndefault_vhost = /prod\n"
            "loopback_users.guest = false\n");
    put_str("config", "loopback-none", "loopback_users = none\n");
    put_str("config", "log", "log.console.level = debug\n");
    put_str("config", "storage", "storage.sync = batch\nstorage.sync_interval = 50\n"
            "data_dir = /var/lib/coney\n");
    put_str("config", "mqtt", "mqtt.allow_anonymous = false\nmqtt.default_user = m\nmqtt.default_pass = p\n"
            "mqtt.vhost = /\nmqtt.exchange = amq.topic\nmqtt.prefetch = 10\n"
            "mqtt.max_session_expiry_interval_seconds = 86400\n"
            "mqtt.max_packet_size_authenticated = 1048576\n"
            "mqtt.max_packet_size_unauthenticated = 65536\n");
    put_str("config", "tls", "listeners.ssl.default = 5671\nssl_options.cacertfile = /etc/coney/ca.pem\n"
            "ssl_options.certfile = /etc/coney/cert.pem\nssl_options.keyfile = /etc/coney/key.pem\n"
            "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n"
            "ssl_options.versions.1 = tlsv1.3\nssl_options.versions.2 = tlsv1.2\n"
            "ssl_options.ciphers.1 = TLS_AES_256_GCM_SHA384\nssl_cert_login_from = common_name\n"
            "mqtt.listeners.ssl.default = 8883\nmqtt.ssl_cert_login = true\n"
            "management.ssl.port = 15671\n");
    put_str("config", "auth", "auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = AMQPLAIN\n"
            "auth_mechanisms.3 = EXTERNAL\n");
    put_str("config", "comments", "# a comment\n\n   \t\nheartbeat = 0 # inline\n  channel_max = 64  \n");
    static const char *const one[][2] = {
        { "heartbeat", "heartbeat = 600\n" }, { "frame-max", "frame_max = 4096\n" },
        { "channel-max", "channel_max = 0\n" }, { "max-message-size", "max_message_size = 536870912\n" },
        { "disk-free", "disk_free_limit.absolute = 2GiB\n" }, { "sync-none", "storage.sync = none\n" },
        { "sync-always", "storage.sync = always\n" }, { "log-error", "log.console.level = error\n" },
        { "verify-none", "ssl_options.verify = verify_none\n" },
        { "login-san", "ssl_cert_login_from = subject_alternative_name\n" },
        { "anonymous", "mqtt.allow_anonymous = true\n" }, { "vhost", "default_vhost = prod\n" },
        { "crlf", "heartbeat = 10\r\nframe_max = 8192\r\n" },
        { "no-newline", "channel_max = 16" },
    };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        put_str("config", one[i][0], one[i][1]);
    put_str("config", "no-management", "management.tcp.port = 0\nprometheus.tcp.port = 0\n"
            "mqtt.listeners.tcp.default = 0\n");

    put_str("http", "overview", "GET /api/overview\n\n");
    put_str("http", "whoami", "GET /api/whoami\n\n");
    put_str("http", "queues-page", "GET /api/queues\npage=1&page_size=2&sort=name&sort_reverse=true\n");
    put_str("http", "queues-vhost", "GET /api/queues/%2F\nname=q&columns=name,messages,message_stats.publish\n");
    put_str("http", "queue", "GET /api/queues/%2F/q%2F1\n\n");
    put_str("http", "queue-put", "PUT /api/queues/%2F/tasks\n\n{\"durable\":true,\"auto_delete\":false,"
            "\"arguments\":{\"x-message-ttl\":60000}}");
    put_str("http", "queue-delete", "DELETE /api/queues/vh/tasks/contents\n\n");
    put_str("http", "exchange-put", "PUT /api/exchanges/%2F/logs\n\n{\"type\":\"topic\",\"durable\":true}");
    put_str("http", "binding-post", "POST /api/bindings/%2F/e/logs/q/tasks\n\n{\"routing_key\":\"a.*\","
            "\"arguments\":{}}");
    put_str("http", "regex", "GET /api/queues\nname=%5Eq%5Cd%2B%24&use_regex=true\n");
    put_str("http", "bad-regex", "GET /api/exchanges\nname=(&use_regex=true\n");
    put_str("http", "sort-nested", "GET /api/queues\nsort=message_stats.publish_details.rate\n");
    put_str("http", "page-out-of-range", "GET /api/queues\npage=9&page_size=500\n");
    put_str("http", "items", "GET /api/connections\ncolumns=name,peer_host&page=1\n"
            "[{\"name\":\"c1\",\"vhost\":\"/\",\"peer_host\":\"127.0.0.1\"},{\"name\":\"c0\"}]");
    put_str("http", "users", "PUT /api/users/alice\n\n{\"password\":\"x\",\"tags\":\"management\"}");
    put_str("http", "permissions", "PUT /api/permissions/%2F/alice\n\n{\"configure\":\".*\","
            "\"write\":\".*\",\"read\":\".*\"}");
    put_str("http", "definitions", "POST /api/definitions\n\n{\"queues\":[],\"exchanges\":[],"
            "\"bindings\":[],\"users\":[],\"vhosts\":[{\"name\":\"/\"}]}");
    put_str("http", "policy", "PUT /api/policies/%2F/ttl\n\n{\"pattern\":\"^q\",\"apply-to\":\"queues\","
            "\"definition\":{\"message-ttl\":1000},\"priority\":1}");
    put_str("http", "ui", "GET /index.html\n\n");
    put_str("http", "ui-nested", "GET /js/app.js\n\n");
    put_str("http", "head", "HEAD /api/nodes\n\n");
    put_str("http", "trailing-slash", "GET /api/vhosts/\n\n");
    put_str("http", "metrics", "GET /metrics\n\n");
    put_str("http", "health", "GET /api/health/checks/alarms\n\n");
    put_str("http", "consumers", "GET /api/consumers/%2F\nsort=queue.name\n");
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    amqp_seeds();
    mqtt_seeds();
    record_seeds();
    text_seeds();
    return 0;
}
