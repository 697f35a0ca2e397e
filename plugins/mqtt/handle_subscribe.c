/*
 * SUBSCRIBE and UNSUBSCRIBE. A filter becomes a binding of the session's
 * queue to the MQTT exchange ('+' as '*', '#' as '#', '/' and '.'
 * swapped); a shared filter "$share/g/f" makes the session a consumer of
 * the group's queue. One bad filter fails in SUBACK, not the connection.
 * Retained messages that match go out after the SUBACK, with the retain
 * flag set, as the filter's Retain Handling asks (never for shared ones,
 * MQTT-3.8.4 / 4.8.2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/log.h"
#include "plugins/mqtt/session.h"

/* in session.c */
queue *mqtt_shared_queue(vhost *vh, mqtt_str group, mqtt_str filter);
void mqtt_shared_leave(mqtt_session *s, mqtt_sub *sub);

static exchange *
mqtt_exchange(vhost *vh)
{
    return vhost_exchange(vh, amqp_cstr(B.cfg.mqtt_exchange));
}

/* RabbitMQ's checks for a subscription: configure, write and read on the
 * queue it uses, read on the exchange, and topic read on the binding
 * key where the user has topic permissions. */
static bool
may_subscribe(mqtt_client *c, mqtt_str group, mqtt_str filter)
{
    mqtt_session *s = c->session;
    char qname[600];
    int n;
    if (group.len) {
        n = snprintf(qname, sizeof qname, "mqtt-shared-%.*s-", (int)group.len, (const char *)group.p);
        if ((size_t)n + filter.len >= sizeof qname)
            return false;
        mqtt_filter_to_amqp(filter.p, filter.len, qname + n);
        n += (int)filter.len;
    } else {
        n = mqtt_session_queue_name(s, qname, sizeof qname);
    }
    amqp_bytes q = { qname, (uint32_t)n };
    amqp_bytes ex = amqp_cstr(B.cfg.mqtt_exchange);
    if (!auth_permitted(c->u, c->vh, AUTH_CONFIGURE, q) ||
        !auth_permitted(c->u, c->vh, AUTH_WRITE, q) || !auth_permitted(c->u, c->vh, AUTH_READ, q) ||
        !auth_permitted(c->u, c->vh, AUTH_READ, ex))
        return false;
    if (!auth_topic_restricted(c->u, c->vh, ex))
        return true;
    char stack[256];
    char *key = filter.len <= sizeof stack ? stack : malloc(filter.len);
    if (!key)
        abort();
    mqtt_filter_to_amqp(filter.p, filter.len, key);
    bool ok = auth_topic_permitted(c->u, c->vh, ex, AUTH_READ, (amqp_bytes){ key, filter.len },
                                   s->client_id);
    if (key != stack)
        free(key);
    return ok;
}

static mqtt_sub *
find_sub(mqtt_session *s, mqtt_str group, mqtt_str filter)
{
    for (size_t i = 0; i < s->nsubs; i++) {
        mqtt_sub *sub = &s->subs[i];
        if (sub->filter_len == filter.len && memcmp(sub->filter, filter.p, filter.len) == 0 &&
            sub->group_len == group.len && (group.len == 0 || memcmp(sub->group, group.p, group.len) == 0))
            return sub;
    }
    return NULL;
}

static char *
dup_str(mqtt_str s)
{
    char *p = malloc(s.len + 1);
    if (!p)
        abort();
    memcpy(p, s.p, s.len);
    p[s.len] = 0;
    return p;
}

/* Binds or unbinds the session's queue for one filter. */
static void
bind_filter(mqtt_session *s, mqtt_str filter, bool bind)
{
    exchange *x = mqtt_exchange(s->vh);
    if (!x)
        return;
    char stack[256];
    char *key = filter.len <= sizeof stack ? stack : malloc(filter.len);
    if (!key)
        abort();
    mqtt_filter_to_amqp(filter.p, filter.len, key);
    amqp_bytes k = { key, filter.len };
    if (bind)
        vhost_bind(s->vh, x, mqtt_session_queue(s), k, NULL, 0);
    else if (s->q)
        vhost_unbind(s->vh, x, s->q, k, NULL, 0);
    if (key != stack)
        free(key);
}

typedef struct retained_ctx {
    mqtt_session *s;
    uint8_t qos;
    uint32_t subid;
} retained_ctx;

static void
send_retained(message *m, mqtt_str topic, void *arg)
{
    retained_ctx *rc = arg;
    mqtt_session *s = rc->s;
    mqtt_client *c = s->client;
    if (!c)
        return;
    static amqp_pool pool;
    amqp_pool_reset(&pool);
    mqtt_msg_view v;
    mqtt_message_view(m, &v, &pool);
    uint8_t qos = v.qos < rc->qos ? v.qos : rc->qos;
    mqtt_publish p = { .qos = qos, .retain = true, .topic = topic,
                       .payload = m->body, .payload_len = (uint32_t)m->body_size };
    if (c->version == MQTT_V5) {
        if (v.bp.flags & AMQP_BASIC_CONTENT_TYPE) {
            p.props.content_type = (mqtt_str){ (const uint8_t *)v.bp.content_type.data,
                                               v.bp.content_type.len };
            mqtt_props_set(&p.props, MQTT_PROP_CONTENT_TYPE);
        }
        if (rc->subid) {
            p.props.subids[0] = rc->subid;
            p.props.n_subids = 1;
        }
    }
    if (qos > 0) {
        /* In flight without a queue entry: acked, it is done; lost with
         * the connection, the next subscription brings it again. */
        uint16_t id = s->next_packet_id;
        for (;;) {
            bool used = id == 0;
            for (size_t i = 0; i < s->ninflight && !used; i++)
                used = s->inflight[i].packet_id == id;
            for (size_t i = 0; i < s->nrel && !used; i++)
                used = s->rel_pending[i] == id;
            if (!used)
                break;
            id++;
        }
        s->next_packet_id = (uint16_t)(id + 1) ? (uint16_t)(id + 1) : 1;
        p.packet_id = id;
    }
    size_t n = mqtt_publish_size(&p, c->version);
    if (n == 0 || (c->max_packet_out && n > c->max_packet_out))
        return;
    mqtt_publish_encode(&p, c->version, mqtt_client_reserve(c, n));
    if (qos > 0) {
        s->inflight = buf_array_room(s->inflight, sizeof *s->inflight, NULL, &s->ninflight,
                                     &s->inflight_cap);
        s->inflight[s->ninflight++] = (mqtt_inflight){ p.packet_id, qos, message_ref(m),
                                                       NULL, NULL, 0, 0 };
    }
}

void
mqtt_handle_subscribe(mqtt_client *c, const mqtt_frame *f)
{
    mqtt_subscribe sb;
    int rc = mqtt_subscribe_decode(f, c->version, &sb);
    if (rc != MQTT_OK) {
        mqtt_client_close(c, (uint8_t)-rc, "malformed SUBSCRIBE");
        return;
    }
    mqtt_session *s = c->session;
    uint32_t subid = 0;
    if (c->version == MQTT_V5 && sb.props.n_subids)
        subid = sb.props.subids[0];
    uint8_t *codes = malloc(sb.n_filters);
    struct later { mqtt_str filter; uint8_t qos; } *later = calloc(sb.n_filters, sizeof *later);
    if (!codes || !later)
        abort();
    size_t nlater = 0;
    uint32_t pos = 0, i = 0;
    mqtt_sub_filter sf;
    while (mqtt_subscribe_next(&sb, &pos, &sf)) {
        mqtt_str group, inner;
        int frc = mqtt_topic_filter_check(sf.filter);
        if (frc == MQTT_OK)
            frc = mqtt_topic_share_parse(sf.filter, &group, &inner);
        if (frc != MQTT_OK) {
            if (c->version == MQTT_V31) {
                free(codes);
                free(later);
                mqtt_client_close(c, MQTT_RC_TOPIC_FILTER_INVALID, "invalid topic filter");
                return;
            }
            codes[i++] = c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
            continue;
        }
        if (!may_subscribe(c, group, inner)) {
            log_warning("MQTT " MQTT_CLIENT_FMT ": user '%s' may not subscribe to '%.*s'",
                        MQTT_CLIENT_ARG(c), c->user, (int)sf.filter.len,
                        (const char *)sf.filter.p);
            if (c->version == MQTT_V31) {
                free(codes);
                free(later);
                mqtt_client_close(c, MQTT_RC_NOT_AUTHORIZED, "subscription not authorized");
                return;
            }
            codes[i++] = c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
            continue;
        }
        uint8_t qos = sf.qos > 2 ? 2 : sf.qos;
        mqtt_sub *sub = find_sub(s, group, inner);
        bool is_new = sub == NULL;
        if (is_new) {
            s->subs = buf_array_room(s->subs, sizeof *s->subs, NULL, &s->nsubs, &s->subs_cap);
            sub = &s->subs[s->nsubs++];
            memset(sub, 0, sizeof *sub);
            sub->filter = dup_str(inner);
            sub->filter_len = (uint16_t)inner.len;
            if (group.len) {
                sub->group = dup_str(group);
                sub->group_len = (uint16_t)group.len;
            }
        }
        sub->qos = qos;
        sub->no_local = sf.no_local;
        sub->retain_as_published = sf.retain_as_published;
        sub->subid = subid;
        if (group.len) {
            if (!sub->shared_q)
                sub->shared_q = mqtt_shared_queue(s->vh, group, inner);
            if (!sub->shared_c)
                sub->shared_c = consumer_add(sub->shared_q, &mqtt_consumer_ops, s,
                                             AMQP_BYTES_LIT("mqtt-shared"), false, false, 0);
        } else if (is_new) {
            bind_filter(s, inner, true);
        }
        if (!group.len && (sf.retain_handling == MQTT_RETAIN_SEND ||
                           (sf.retain_handling == MQTT_RETAIN_SEND_IF_NEW && is_new)))
            later[nlater++] = (struct later){ inner, qos };
        codes[i++] = qos;
    }
    mqtt_suback ack = { .packet_id = sb.packet_id, .codes = codes, .n_codes = i };
    size_t n = mqtt_suback_size(&ack, c->version);
    mqtt_suback_encode(&ack, c->version, mqtt_client_reserve(c, n));
    mqtt_session_save(s);
    for (size_t k = 0; k < nlater; k++) {
        retained_ctx rctx = { s, later[k].qos, subid };
        mqtt_retain_each(s->vh, later[k].filter, send_retained, &rctx);
    }
    free(codes);
    free(later);
    mqtt_session_kick(s);
}

void
mqtt_handle_unsubscribe(mqtt_client *c, const mqtt_frame *f)
{
    mqtt_unsubscribe u;
    int rc = mqtt_unsubscribe_decode(f, c->version, &u);
    if (rc != MQTT_OK) {
        mqtt_client_close(c, (uint8_t)-rc, "malformed UNSUBSCRIBE");
        return;
    }
    mqtt_session *s = c->session;
    uint8_t *codes = malloc(u.n_filters);
    if (!codes)
        abort();
    uint32_t pos = 0, i = 0;
    mqtt_str filter;
    while (mqtt_unsubscribe_next(&u, &pos, &filter)) {
        mqtt_str group = { 0 }, inner = filter;
        if (mqtt_topic_filter_check(filter) != MQTT_OK ||
            mqtt_topic_share_parse(filter, &group, &inner) != MQTT_OK) {
            codes[i++] = MQTT_RC_TOPIC_FILTER_INVALID;
            continue;
        }
        mqtt_sub *sub = find_sub(s, group, inner);
        if (!sub) {
            codes[i++] = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
            continue;
        }
        if (sub->group)
            mqtt_shared_leave(s, sub);
        else
            bind_filter(s, inner, false);
        free(sub->filter);
        free(sub->group);
        *sub = s->subs[--s->nsubs];
        codes[i++] = MQTT_RC_SUCCESS;
    }
    mqtt_unsuback ack = { .packet_id = u.packet_id, .codes = codes, .n_codes = i };
    size_t n = mqtt_unsuback_size(&ack, c->version);
    mqtt_unsuback_encode(&ack, c->version, mqtt_client_reserve(c, n));
    mqtt_session_save(s);
    free(codes);
}
