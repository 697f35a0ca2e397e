/*
 * PUBLISH in both directions and its acknowledgements. An MQTT message
 * becomes a broker message once: the routing key is the topic with '/' and
 * '.' swapped, QoS 1 and 2 make it persistent (delivery mode 2, as
 * RabbitMQ does), and what MQTT needs later rides in the AMQP properties:
 *   headers x-mqtt-publish-qos (RabbitMQ's name), x-mqtt-retain,
 *   x-mqtt-expires-at (unix ms, MQTT 5 message expiry),
 *   x-mqtt-payload-format, x-mqtt-response-topic,
 *   x-mqtt-correlation-data (when it does not fit correlation-id),
 *   user properties as string headers in order;
 *   content-type, correlation-id and expiration (ms) as AMQP fields.
 * A QoS 1 PUBACK and a QoS 2 PUBREC go out only after the message is in
 * every queue it reached and, for durable queues, committed to disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/auth.h"
#include "broker/log.h"
#include "broker/persist.h"
#include "plugins/mqtt/session.h"

/* in session.c */
bool mqtt_session_settle(mqtt_session *s, uint16_t id, uint8_t qos);

/* ---- MQTT message <-> broker message ------------------------------------------- */

static amqp_field *
add_field(amqp_field *f, uint32_t *n, const char *key, char kind)
{
    amqp_field *x = &f[(*n)++];
    memset(x, 0, sizeof *x);
    x->key = amqp_cstr(key);
    x->value.kind = kind;
    return x;
}

message *
mqtt_message_new(vhost *vh, mqtt_str topic, uint8_t qos, bool retain, const mqtt_props *props,
                 const uint8_t *payload, uint32_t payload_len, uint32_t origin)
{
    (void)vh;
    uint32_t nuser = props ? props->user.count : 0;
    amqp_field *fields = calloc(8 + nuser, sizeof *fields);
    if (!fields)
        return NULL;
    uint32_t n = 0;
    amqp_basic_props bp = { 0 };
    bp.flags = AMQP_BASIC_HEADERS | AMQP_BASIC_DELIVERY_MODE;
    bp.delivery_mode = qos > 0 ? 2 : 1;
    add_field(fields, &n, "x-mqtt-publish-qos", 'I')->value.v.i = qos;
    if (retain)
        add_field(fields, &n, "x-mqtt-retain", 't')->value.v.boolean = true;
    char expiration[16];
    if (props) {
        if (mqtt_props_has(props, MQTT_PROP_MESSAGE_EXPIRY)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            add_field(fields, &n, "x-mqtt-expires-at", 'l')->value.v.i =
                now + (int64_t)props->message_expiry * 1000;
            snprintf(expiration, sizeof expiration, "%llu",
                     (unsigned long long)props->message_expiry * 1000ull);
            bp.expiration = amqp_cstr(expiration);
            bp.flags |= AMQP_BASIC_EXPIRATION;
        }
        if (mqtt_props_has(props, MQTT_PROP_PAYLOAD_FORMAT))
            add_field(fields, &n, "x-mqtt-payload-format", 'b')->value.v.i = props->payload_format;
        if (mqtt_props_has(props, MQTT_PROP_RESPONSE_TOPIC)) {
            amqp_field *f = add_field(fields, &n, "x-mqtt-response-topic", 'S');
            f->value.v.bytes = (amqp_bytes){ (const char *)props->response_topic.p,
                                             props->response_topic.len };
        }
        if (mqtt_props_has(props, MQTT_PROP_CORRELATION_DATA)) {
            if (props->correlation_data.len <= 255) {
                bp.correlation_id = (amqp_bytes){ (const char *)props->correlation_data.p,
                                                  props->correlation_data.len };
                bp.flags |= AMQP_BASIC_CORRELATION_ID;
            } else {
                amqp_field *f = add_field(fields, &n, "x-mqtt-correlation-data", 'x');
                f->value.v.bytes = (amqp_bytes){ (const char *)props->correlation_data.p,
                                                 props->correlation_data.len };
            }
        }
        if (mqtt_props_has(props, MQTT_PROP_CONTENT_TYPE) && props->content_type.len <= 255) {
            bp.content_type = (amqp_bytes){ (const char *)props->content_type.p,
                                            props->content_type.len };
            bp.flags |= AMQP_BASIC_CONTENT_TYPE;
        }
        uint32_t pos = 0;
        mqtt_str k, v;
        while (props->user.count && mqtt_user_props_next(&props->user, &pos, &k, &v)) {
            if (k.len > 255)
                continue;          /* an AMQP table key is a short string */
            amqp_field *f = &fields[n++];
            f->key = (amqp_bytes){ (const char *)k.p, k.len };
            f->value.kind = 'S';
            f->value.v.bytes = (amqp_bytes){ (const char *)v.p, v.len };
        }
    }
    bp.headers = (amqp_table){ n, fields };
    size_t plen = amqp_props_size(&bp);
    uint8_t *pbuf = malloc(plen ? plen : 1);
    if (!pbuf) {
        free(fields);
        return NULL;
    }
    amqp_props_encode(&bp, pbuf);
    free(fields);

    char stack_key[256];
    char *key = topic.len <= sizeof stack_key ? stack_key : malloc(topic.len);
    if (!key) {
        free(pbuf);
        return NULL;
    }
    mqtt_topic_to_amqp(topic.p, topic.len, key);
    message *m = message_new(amqp_cstr(B.cfg.mqtt_exchange), (amqp_bytes){ key, topic.len },
                             bp.flags, pbuf, (uint32_t)plen, payload_len);
    if (key != stack_key)
        free(key);
    free(pbuf);
    if (!m)
        return NULL;
    if (payload_len)
        memcpy(m->body, payload, payload_len);
    m->body_received = payload_len;
    m->origin = origin;
    return m;
}

uint64_t
mqtt_message_route(vhost *vh, message *m, size_t *reached)
{
    exchange *x = vhost_exchange(vh, amqp_cstr(B.cfg.mqtt_exchange));
    *reached = 0;
    if (!x)
        return 0;
    return vhost_publish(vh, x, m, reached);
}

void
mqtt_message_view(const message *m, mqtt_msg_view *out, amqp_pool *pool)
{
    memset(out, 0, sizeof *out);
    out->origin = m->origin;
    /* RabbitMQ's rule for messages from AMQP: persistent means QoS 1. */
    out->qos = m->delivery_mode == 2 ? 1 : 0;
    if (amqp_props_decode(m->prop_flags, m->props, m->props_len, &out->bp, pool) != AMQP_OK)
        return;
    out->has_props = true;
    if (!(out->bp.flags & AMQP_BASIC_HEADERS))
        return;
    const amqp_value *v = amqp_table_get(&out->bp.headers, "x-mqtt-publish-qos");
    int64_t i;
    if (v && amqp_value_int(v, &i) && i >= 0 && i <= 2)
        out->qos = (uint8_t)i;
    v = amqp_table_get(&out->bp.headers, "x-mqtt-retain");
    out->retain = v && v->kind == 't' && v->v.boolean;
    v = amqp_table_get(&out->bp.headers, "x-mqtt-expires-at");
    if (v && amqp_value_int(v, &i) && i > 0)
        out->expires_at_ms = i;
}

/* ---- inbound PUBLISH ------------------------------------------------------------- */

/* Write permission on the MQTT exchange (kept per connection until the
 * permissions change) and, where the user has topic permissions there,
 * on the routing key the topic maps to. */
static bool
may_publish(mqtt_client *c, mqtt_str topic)
{
    amqp_bytes ex = amqp_cstr(B.cfg.mqtt_exchange);
    uint32_t gen = (uint32_t)auth_generation();
    struct mqtt_client_x *x = mqtt_client_x(c);
    if (x->perm_gen != gen) {
        c->perm_write = auth_permitted(c->u, c->vh, AUTH_WRITE, ex);
        c->perm_topic = auth_topic_restricted(c->u, c->vh, ex);
        x->perm_gen = gen;
    }
    if (!c->perm_write)
        return false;
    if (!c->perm_topic)
        return true;
    char stack[256];
    char *key = topic.len <= sizeof stack ? stack : malloc(topic.len);
    if (!key)
        abort();
    mqtt_topic_to_amqp(topic.p, topic.len, key);
    bool ok = auth_topic_permitted(c->u, c->vh, ex, AUTH_WRITE, (amqp_bytes){ key, topic.len },
                                   c->session ? c->session->client_id : NULL);
    if (key != stack)
        free(key);
    return ok;
}

void
mqtt_handle_publish(mqtt_client *c, const mqtt_frame *f)
{
    mqtt_publish p;
    int rc = mqtt_publish_decode(f, c->version, &p);
    if (rc != MQTT_OK) {
        char why[80];
        snprintf(why, sizeof why, "bad PUBLISH: %s", mqtt_strerror(rc));
        mqtt_client_close(c, (uint8_t)-rc, why);
        return;
    }
    mqtt_session *s = c->session;
    if (c->version == MQTT_V5) {
        if (p.props.user.count > MQTT_USER_PROPS_MAX) {
            /* each pair becomes an AMQP header entry of 40 bytes: without
             * a count, a packet of empty pairs would cost eight times its
             * size while it is converted */
            mqtt_client_close(c, MQTT_RC_QUOTA_EXCEEDED, "more user properties than allowed");
            return;
        }
        if (p.props.n_subids) {
            mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR, "a PUBLISH with subscription identifiers");
            return;
        }
        if (mqtt_props_has(&p.props, MQTT_PROP_TOPIC_ALIAS)) {
            uint16_t a = p.props.topic_alias;
            if (a == 0 || a > MQTT_SERVER_ALIAS_MAX) {
                mqtt_client_close(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
                return;
            }
            struct mqtt_aliases *al = mqtt_client_aliases(c);
            if (p.topic.len) {
                char *t = malloc(p.topic.len);
                if (!t)
                    abort();
                memcpy(t, p.topic.p, p.topic.len);
                free(al->in[a]);
                al->in[a] = t;
                al->in_len[a] = (uint16_t)p.topic.len;
            } else if (al->in[a]) {
                p.topic = (mqtt_str){ (const uint8_t *)al->in[a], al->in_len[a] };
            } else {
                mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
                return;
            }
        }
        if (mqtt_props_has(&p.props, MQTT_PROP_PAYLOAD_FORMAT) && p.props.payload_format == 1 &&
            !mqtt_utf8_valid(p.payload, p.payload_len)) {
            if (p.qos == 0) {
                mqtt_client_close(c, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8");
                return;
            }
            mqtt_client_ack_after(c, p.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p.packet_id,
                                  MQTT_RC_PAYLOAD_FORMAT_INVALID, 0);
            return;
        }
    }
    if (p.topic.len == 0) {
        mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR, "empty topic");
        return;
    }
    if (mqtt_topic_levels_over(p.topic, B.cfg.mqtt_max_topic_levels)) {
        /* Mosquitto's limit too: a deep topic costs a walk per level */
        char why[80];
        snprintf(why, sizeof why, "topic name of more than %u levels", B.cfg.mqtt_max_topic_levels);
        mqtt_client_close(c, MQTT_RC_TOPIC_NAME_INVALID, why);
        return;
    }
    if (!may_publish(c, p.topic)) {
        log_warning("MQTT " MQTT_CLIENT_FMT ": user '%s' may not publish to '%.*s'",
                    MQTT_CLIENT_ARG(c), mqtt_client_user(c), (int)p.topic.len, (const char *)p.topic.p);
        if (c->version != MQTT_V5) {
            /* 3.1.1 has no way to say no but to close (as RabbitMQ does) */
            mqtt_client_close(c, MQTT_RC_NOT_AUTHORIZED, "publish not authorized");
        } else if (p.qos > 0) {
            mqtt_client_ack_after(c, p.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p.packet_id,
                                  MQTT_RC_NOT_AUTHORIZED, 0);
        }
        return;
    }
    if (p.qos > 0 && c->version == MQTT_V5 && c->x->inflight_in >= MQTT_SERVER_RECEIVE_MAX) {
        mqtt_client_close(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded");
        return;
    }
    if (p.qos == 2 && mqtt_session_qos2_in_has(s, p.packet_id)) {
        /* MQTT-4.3.3-9: a resend before PUBREL is not a new message */
        mqtt_client_ack_after(c, MQTT_PUBREC, p.packet_id, MQTT_RC_SUCCESS, 0);
        return;
    }
    if (p.qos == 2 && mqtt_session_qos2_in_count(s) >= MQTT_SERVER_RECEIVE_MAX) {
        /* The ids awaiting PUBREL are the session's to keep (across
         * reconnects, to disk when durable): as many as our Receive
         * Maximum, in every version; 3.1.1 has no code to say so. */
        mqtt_client_close(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED,
                          "too many QoS 2 publishes awaiting PUBREL");
        return;
    }

    message *m = mqtt_message_new(c->vh, p.topic, p.qos, p.retain,
                                  c->version == MQTT_V5 ? &p.props : NULL,
                                  p.payload, p.payload_len, s->number);
    if (!m) {
        mqtt_client_close(c, MQTT_RC_SERVER_BUSY, "out of memory");
        return;
    }
    if (p.retain)
        mqtt_retain_set(c->vh, p.topic, m);
    size_t reached;
    uint64_t batch = mqtt_message_route(c->vh, m, &reached);
    message_unref(&m);
    /* A queue that is consumed but falls behind slows its publishers
     * down instead of growing (and paging) without end. */
    const route_result *r = vhost_last_route();
    for (size_t i = 0; i < reached && !c->braked; i++) {
        queue *q = r->q[i];
        if (q->nconsumers && queue_ready(q) > QUEUE_BACKLOG_HIGH)
            mqtt_client_brake(c, q);
    }
    /* the store behind, or a resource alarm: stop reading publishers
     * (MQTT has no connection.blocked) */
    if (!c->braked && (persist_flow_blocked() || B.mem_alarm || B.disk_alarm))
        mqtt_client_brake(c, NULL);
    B.st.now.publish++;
    if (reached == 0)
        B.st.now.drop_unroutable++;
    uint8_t reason = reached == 0 && c->version == MQTT_V5 ? MQTT_RC_NO_MATCHING_SUBSCRIBERS
                                                           : MQTT_RC_SUCCESS;
    if (p.qos == 1) {
        c->x->inflight_in++;
        mqtt_client_ack_after(c, MQTT_PUBACK, p.packet_id, reason, batch);
    } else if (p.qos == 2) {
        mqtt_session_qos2_in_add(s, p.packet_id);
        c->x->inflight_in++;
        mqtt_session_save(s);
        if (batch == 0 && s->durable && B.store)
            batch = persist_batch();   /* the record must be down first */
        mqtt_client_ack_after(c, MQTT_PUBREC, p.packet_id, reason, batch);
    }
}

/* ---- acknowledgements ------------------------------------------------------------ */

static void
send_ack(mqtt_client *c, uint8_t type, uint16_t id, uint8_t reason)
{
    mqtt_ack a = { .type = type, .packet_id = id, .reason = reason };
    size_t n = mqtt_ack_size(&a, c->version);
    mqtt_ack_encode(&a, c->version, mqtt_client_reserve(c, n));
}

void
mqtt_handle_ack(mqtt_client *c, const mqtt_frame *f)
{
    mqtt_ack a;
    int rc = mqtt_ack_decode(f, c->version, &a);
    if (rc != MQTT_OK) {
        mqtt_client_close(c, (uint8_t)-rc, "malformed acknowledgement");
        return;
    }
    mqtt_session *s = c->session;
    switch (a.type) {
    case MQTT_PUBACK:
        /* An unknown id is a client's confusion, not worth a close. */
        mqtt_session_settle(s, a.packet_id, 1);
        return;
    case MQTT_PUBREC:
        if (!mqtt_session_settle(s, a.packet_id, 2)) {
            bool known = false;
            for (size_t i = 0; s->x && i < s->x->nrel; i++)
                known |= s->x->rel_pending[i] == a.packet_id;
            if (!known) {
                if (c->version == MQTT_V5)
                    send_ack(c, MQTT_PUBREL, a.packet_id, MQTT_RC_PACKET_ID_NOT_FOUND);
                return;
            }
        } else if (a.reason < 0x80) {
            mqtt_session_x *x = mqtt_session_x_of(s);
            x->rel_pending = buf_array_room(x->rel_pending, sizeof *x->rel_pending, NULL,
                                            &x->nrel, &x->rel_cap);
            x->rel_pending[x->nrel++] = a.packet_id;
            mqtt_session_save(s);
        } else {
            return;                /* MQTT 5: the client refused it; done */
        }
        send_ack(c, MQTT_PUBREL, a.packet_id, MQTT_RC_SUCCESS);
        return;
    case MQTT_PUBREL: {
        bool found = mqtt_session_qos2_in_del(s, a.packet_id);
        if (found) {
            if (c->x && c->x->inflight_in)
                c->x->inflight_in--;
            mqtt_session_save(s);
        }
        send_ack(c, MQTT_PUBCOMP, a.packet_id,
                 found || c->version != MQTT_V5 ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND);
        return;
    }
    case MQTT_PUBCOMP:
        for (size_t i = 0; s->x && i < s->x->nrel; i++) {
            if (s->x->rel_pending[i] == a.packet_id) {
                s->x->rel_pending[i] = s->x->rel_pending[--s->x->nrel];
                mqtt_session_save(s);
                mqtt_session_kick(s);
                break;
            }
        }
        return;
    }
}
