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
        if (sub->filter_len != filter.len || memcmp(sub->filter, filter.p, filter.len) != 0)
            continue;
        if (group.len == 0 ? !sub->shared
                           : sub->shared && sub->shared->group_len == group.len &&
                             memcmp(sub->shared->group, group.p, group.len) == 0)
            return sub;
    }
    return NULL;
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
    (void)topic;                   /* the message's routing key says it */
    retained_ctx *rc = arg;
    mqtt_session_send_retained(rc->s, m, rc->qos, rc->subid);
}

/* SUBACK codes and retained sends of a SUBSCRIBE with this many filters
 * or fewer live on the stack: a subscribing client leaves nothing behind
 * in the heap but its subscriptions. */
#define SUBSCRIBE_STACK 16

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
    struct later { mqtt_str filter; uint8_t qos; };
    uint8_t codes_stack[SUBSCRIBE_STACK];
    struct later later_stack[SUBSCRIBE_STACK];
    bool big = sb.n_filters > SUBSCRIBE_STACK;
    uint8_t *codes = big ? malloc(sb.n_filters) : codes_stack;
    struct later *later = big ? calloc(sb.n_filters, sizeof *later) : later_stack;
    if (!codes || !later)
        abort();
    size_t nlater = 0;
    uint32_t pos = 0, i = 0;
    /* MQTT 3.1 has no failure code in SUBACK: a refused filter ends the
     * connection, with this reason */
    uint8_t close_rc = 0;
    const char *close_why = NULL;
    mqtt_sub_filter sf;
    while (mqtt_subscribe_next(&sb, &pos, &sf)) {
        mqtt_str group, inner;
        int frc = mqtt_topic_filter_check(sf.filter);
        if (frc == MQTT_OK)
            frc = mqtt_topic_share_parse(sf.filter, &group, &inner);
        if (frc == MQTT_OK && mqtt_topic_levels_over(inner, B.cfg.mqtt_max_topic_levels))
            frc = MQTT_ERR_TOPIC_FILTER;   /* Mosquitto's limit too */
        if (frc != MQTT_OK) {
            close_rc = MQTT_RC_TOPIC_FILTER_INVALID;
            close_why = "invalid topic filter";
            codes[i++] = c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
            if (c->version == MQTT_V31)
                break;
            continue;
        }
        if (!may_subscribe(c, group, inner)) {
            log_warning("MQTT " MQTT_CLIENT_FMT ": user '%s' may not subscribe to '%.*s'",
                        MQTT_CLIENT_ARG(c), mqtt_client_user(c), (int)sf.filter.len,
                        (const char *)sf.filter.p);
            close_rc = MQTT_RC_NOT_AUTHORIZED;
            close_why = "subscription not authorized";
            codes[i++] = c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
            if (c->version == MQTT_V31)
                break;
            continue;
        }
        uint8_t qos = sf.qos > 2 ? 2 : sf.qos;
        mqtt_sub *sub = find_sub(s, group, inner);
        bool is_new = sub == NULL;
        if (is_new && !(sub = mqtt_session_sub_add(s, inner))) {
            log_warning("MQTT " MQTT_CLIENT_FMT ": more than %u subscriptions refused",
                        MQTT_CLIENT_ARG(c), MQTT_SUBS_MAX);
            close_rc = MQTT_RC_QUOTA_EXCEEDED;
            close_why = "too many subscriptions";
            codes[i++] = c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
            if (c->version == MQTT_V31)
                break;
            continue;
        }
        if (is_new && group.len) {
            sub->shared = calloc(1, sizeof *sub->shared + group.len + 1);
            if (!sub->shared)
                abort();
            memcpy(sub->shared->group, group.p, group.len);
            sub->shared->group_len = (uint16_t)group.len;
        }
        sub->qos = qos;
        sub->no_local = sf.no_local;
        sub->retain_as_published = sf.retain_as_published;
        sub->subid = subid;
        if (group.len) {
            if (!sub->shared->q)
                sub->shared->q = mqtt_shared_queue(s->vh, group, inner);
            if (!sub->shared->c)
                sub->shared->c = consumer_add(sub->shared->q, &mqtt_consumer_ops, s,
                                              AMQP_BYTES_LIT("mqtt-shared"), false, false, 0);
        } else if (is_new) {
            bind_filter(s, inner, true);
        }
        if (!group.len && (sf.retain_handling == MQTT_RETAIN_SEND ||
                           (sf.retain_handling == MQTT_RETAIN_SEND_IF_NEW && is_new)))
            later[nlater++] = (struct later){ inner, qos };
        codes[i++] = qos;
    }
    if (c->version == MQTT_V31 && close_rc) {
        mqtt_client_close(c, close_rc, close_why);
    } else {
        mqtt_suback ack = { .packet_id = sb.packet_id, .codes = codes, .n_codes = i };
        size_t n = mqtt_suback_size(&ack, c->version);
        mqtt_suback_encode(&ack, c->version, mqtt_client_reserve(c, n));
        mqtt_session_save(s);
        for (size_t k = 0; k < nlater; k++) {
            retained_ctx rctx = { s, later[k].qos, subid };
            mqtt_retain_each(s->vh, later[k].filter, send_retained, &rctx);
        }
        mqtt_session_kick(s);
    }
    if (big) {
        free(codes);
        free(later);
    }
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
    uint8_t codes_stack[SUBSCRIBE_STACK];
    uint8_t *codes = u.n_filters > SUBSCRIBE_STACK ? malloc(u.n_filters) : codes_stack;
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
        if (sub->shared)
            mqtt_shared_leave(s, sub);
        else
            bind_filter(s, inner, false);
        mqtt_session_sub_del(s, sub);
        codes[i++] = MQTT_RC_SUCCESS;
    }
    mqtt_unsuback ack = { .packet_id = u.packet_id, .codes = codes, .n_codes = i };
    size_t n = mqtt_unsuback_size(&ack, c->version);
    mqtt_unsuback_encode(&ack, c->version, mqtt_client_reserve(c, n));
    mqtt_session_save(s);
    if (codes != codes_stack)
        free(codes);
}
