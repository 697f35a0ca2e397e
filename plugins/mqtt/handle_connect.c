/*
 * CONNECT and DISCONNECT: login, the vhost, taking over or starting a
 * session, the will, and the limits both sides announce. Credentials are
 * the broker's users; a user name "vhost:user" picks the vhost as in
 * RabbitMQ, otherwise mqtt.vhost. Without a user name the client is the
 * user its verified TLS certificate names when mqtt.ssl_cert_login is on,
 * else the configured mqtt.default_user when mqtt.allow_anonymous is on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker/auth.h"
#include "broker/log.h"
#include "plugins/mqtt/session.h"

static void
send_connack(mqtt_client *c, bool present, unsigned reason, const mqtt_props *props)
{
    mqtt_connack a = { .session_present = present };
    a.code = c->version == MQTT_V5 ? (uint8_t)reason : mqtt_connack_return_code(reason);
    if (c->version == MQTT_V5 && props)
        a.props = *props;
    size_t n = mqtt_connack_size(&a, c->version);
    mqtt_connack_encode(&a, c->version, mqtt_client_reserve(c, n));
}

/* Refuses the connection with a CONNACK, then closes once it is out. */
static void
refuse(mqtt_client *c, unsigned reason, const char *why)
{
    send_connack(c, false, reason, NULL);
    log_warning("refused MQTT connection from %s: %s", c->peer, why);
    mqtt_client_close(c, 0xff, NULL);
}

void
mqtt_refuse_now(mqtt_client *c, uint8_t reason)
{
    send_connack(c, false, reason, NULL);
    mqtt_client_close(c, 0xff, NULL);
}

/* A failed login: the CONNACK waits (longer after each recent failure
 * from the same address) and nothing more is read, so passwords cannot
 * be tried quickly; the client's timer sends it. */
static void
refuse_later(mqtt_client *c, unsigned reason, const char *why)
{
    log_warning("refused MQTT connection from %s: %s", c->peer, why);
    double delay = auth_failed_login(c->peer);
    c->refusing = true;
    c->refuse_reason = (uint8_t)reason;
    c->at = ev_now(B.loop) + delay;
    mqtt_client_stop_reading(c);
    mqtt_client_arm(c);
}

static bool
id_is_ours(mqtt_str id)
{
    /* MQTT-3.1.3-5 asks for 0-9a-zA-Z; clients use more and brokers
     * accept it. Refuse only what cannot be a queue name. */
    return id.len <= 200;
}

/* Splits "vhost:user" as RabbitMQ's MQTT plugin does. */
static void
split_user(mqtt_str u, amqp_bytes *vname, amqp_bytes *user)
{
    for (uint32_t i = 0; i < u.len; i++) {
        if (u.p[i] == ':') {
            *vname = (amqp_bytes){ (const char *)u.p, i };
            *user = (amqp_bytes){ (const char *)u.p + i + 1, u.len - i - 1 };
            return;
        }
    }
    *vname = amqp_cstr(B.cfg.mqtt_vhost);
    *user = (amqp_bytes){ (const char *)u.p, u.len };
}

void
mqtt_handle_connect(mqtt_client *c, const mqtt_frame *f)
{
    mqtt_connect ct;
    int rc = mqtt_connect_decode(f, &ct);
    c->version = ct.version >= MQTT_V31 && ct.version <= MQTT_V5 ? ct.version : MQTT_V311;
    if (rc == MQTT_ERR_VERSION) {
        c->version = ct.version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
        refuse(c, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version");
        return;
    }
    if (rc != MQTT_OK) {
        char why[96];
        snprintf(why, sizeof why, "bad CONNECT: %s", mqtt_strerror(rc));
        if (ct.version == MQTT_V5)
            refuse(c, (unsigned)-rc, why);
        else
            mqtt_client_abort(c, why);
        return;
    }

    /* who */
    amqp_bytes vname, user, pass = { 0 };
    char cert_user[128];
    int cert_len = -1;
    if (!ct.has_username && B.cfg.mqtt_ssl_cert_login)
        cert_len = c->io.tr->peer_name(&c->io, cert_user, sizeof cert_user);
    if (cert_len >= 0) {
        vname = amqp_cstr(B.cfg.mqtt_vhost);
        user = (amqp_bytes){ cert_user, (uint32_t)cert_len };
    } else if (ct.has_username) {
        split_user(ct.username, &vname, &user);
        pass = (amqp_bytes){ (const char *)ct.password.p, ct.has_password ? ct.password.len : 0 };
        if (!ct.has_password) {
            refuse(c, MQTT_RC_BAD_USERNAME_OR_PASSWORD, "a user name without a password");
            return;
        }
    } else if (B.cfg.mqtt_allow_anonymous) {
        vname = amqp_cstr(B.cfg.mqtt_vhost);
        user = amqp_cstr(B.cfg.mqtt_default_user);
        pass = amqp_cstr(B.cfg.mqtt_default_pass);
    } else {
        refuse(c, MQTT_RC_BAD_USERNAME_OR_PASSWORD, "no user name and anonymous access is off");
        return;
    }
    switch (cert_len >= 0 ? auth_check_external(user, c->peer_loopback)
                          : auth_check(user, pass, c->peer_loopback)) {
    case AUTH_OK:
        break;
    case AUTH_BAD_CREDENTIALS:
        log_warning("MQTT %s: invalid credentials for user '%.*s'", c->peer,
                    (int)user.len, user.data);
        refuse_later(c, MQTT_RC_BAD_USERNAME_OR_PASSWORD, "authentication failed");
        return;
    case AUTH_LOOPBACK_ONLY:
        log_warning("MQTT %s: user '%.*s' can only connect via localhost", c->peer,
                    (int)user.len, user.data);
        refuse(c, MQTT_RC_NOT_AUTHORIZED, "authentication failed");
        return;
    }
    vhost *vh = broker_vhost(vname);
    if (!vh) {
        log_warning("MQTT %s: vhost '%.*s' does not exist", c->peer, (int)vname.len, vname.data);
        refuse(c, MQTT_RC_NOT_AUTHORIZED, "no such vhost");
        return;
    }
    auth_user *u = auth_user_find(user);
    if (!auth_vhost_access(u, vh)) {
        log_warning("MQTT %s: access to vhost '%.*s' refused for user '%.*s'", c->peer,
                    (int)vh->name.len, vh->name.data, (int)user.len, user.data);
        refuse(c, MQTT_RC_NOT_AUTHORIZED, "no access to the vhost");
        return;
    }
    char why[256];
    if (auth_connection_open(u, vh, why, sizeof why) != 0) {
        /* RabbitMQ's mapping: quota exceeded in 5.0, not authorized before */
        refuse(c, c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_NOT_AUTHORIZED, why);
        return;
    }
    c->u = u;
    c->vh = vh;
    c->counted = true;

    /* which session */
    char assigned[40];
    mqtt_str id = ct.client_id;
    bool assigned_id = false;
    if (id.len == 0) {
        if (c->version == MQTT_V31 || (c->version == MQTT_V311 && !ct.clean_start)) {
            refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, "empty client id without a clean session");
            return;
        }
        uint8_t rnd[12];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            memset(rnd, 0, sizeof rnd);
        int n = snprintf(assigned, sizeof assigned, "coney-");
        for (size_t i = 0; i < sizeof rnd; i++)
            n += snprintf(assigned + n, sizeof assigned - (size_t)n, "%02x", rnd[i]);
        id = (mqtt_str){ (const uint8_t *)assigned, (uint32_t)n };
        assigned_id = true;
    }
    if (!id_is_ours(id)) {
        refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, "client id too long");
        return;
    }

    uint32_t expiry;
    bool expiry_capped = false;
    if (c->version == MQTT_V5) {
        expiry = mqtt_props_has(&ct.props, MQTT_PROP_SESSION_EXPIRY) ? ct.props.session_expiry : 0;
    } else {
        expiry = ct.clean_start ? 0 : UINT32_MAX;
    }
    if (expiry > B.cfg.mqtt_max_session_expiry) {
        expiry = B.cfg.mqtt_max_session_expiry;
        expiry_capped = c->version == MQTT_V5;
    }

    if (ct.will && mqtt_topic_levels_over(ct.will_topic, B.cfg.mqtt_max_topic_levels)) {
        if (c->version == MQTT_V5)
            refuse(c, MQTT_RC_TOPIC_NAME_INVALID, "will topic has too many levels");
        else
            mqtt_client_abort(c, "will topic has too many levels");
        return;
    }
    message *will = NULL;
    if (ct.will) {
        will = mqtt_message_new(vh, ct.will_topic, ct.will_qos, ct.will_retain,
                                c->version == MQTT_V5 ? &ct.will_props : NULL,
                                ct.will_payload.p, ct.will_payload.len, 0);
        if (!will) {
            refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
    }

    mqtt_session *s = mqtt_session_find(vh, id.p, id.len);
    if (s && s->client) {
        mqtt_client *old = s->client;
        log_info("MQTT client id '%.*s' connected again from %s: closing its connection from %s",
                 (int)id.len, (const char *)id.p, c->peer, old->peer);
        mqtt_client_close(old, MQTT_RC_SESSION_TAKEN_OVER, NULL);
        s = mqtt_session_find(vh, id.p, id.len);   /* a clean one may have ended */
    }
    bool present = false;
    if (s && ct.clean_start) {
        mqtt_session_end(s);
        s = NULL;
    }
    if (s) {
        present = true;
        if (s->x && s->x->will) {
            /* back within the will delay: the will is not sent */
            ev_timer_stop(B.loop, &s->x->will_timer);
            message_unref(&s->x->will);
        }
    } else {
        s = mqtt_session_new(vh, id.p, id.len);
    }
    s->version = c->version;
    s->expiry = expiry;
    bool was_durable = s->durable;
    s->durable = expiry > 0;
    if (s->durable != was_durable && s->q)
        log_info("MQTT session '%.*s' changes durability; its queue keeps its kind",
                 (int)id.len, (const char *)id.p);

    /* the connection's terms */
    c->vh = vh;
    c->keepalive = ct.keep_alive;
    if (c->version == MQTT_V5) {
        if (mqtt_props_has(&ct.props, MQTT_PROP_MAXIMUM_PACKET_SIZE))
            mqtt_client_x(c)->max_packet_out = ct.props.maximum_packet_size;
        if (mqtt_props_has(&ct.props, MQTT_PROP_RECEIVE_MAXIMUM))
            mqtt_client_x(c)->receive_max = ct.props.receive_maximum;
        if (mqtt_props_has(&ct.props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
            mqtt_client_x(c)->out_alias_max =
                ct.props.topic_alias_maximum < MQTT_SERVER_ALIAS_MAX
                ? (uint8_t)ct.props.topic_alias_maximum : MQTT_SERVER_ALIAS_MAX;
        if (will)
            mqtt_client_x(c)->will_delay = mqtt_props_has(&ct.will_props, MQTT_PROP_WILL_DELAY)
                                           ? ct.will_props.will_delay : 0;
    }
    if (will)
        mqtt_client_x(c)->will = will;
    c->state = MC_OPEN;
    c->at = ev_now(B.loop);        /* keepalive counts from here */
    stream_peer_release(&c->io);   /* logged in: off the handshake count */
    mqtt_client_arm(c);

    mqtt_props p = { 0 };
    if (c->version == MQTT_V5) {
        p.receive_maximum = MQTT_SERVER_RECEIVE_MAX;
        mqtt_props_set(&p, MQTT_PROP_RECEIVE_MAXIMUM);
        p.topic_alias_maximum = MQTT_SERVER_ALIAS_MAX;
        mqtt_props_set(&p, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        if (B.cfg.mqtt_max_packet_size < MQTT_MAX_REMAINING) {
            p.maximum_packet_size = B.cfg.mqtt_max_packet_size;
            mqtt_props_set(&p, MQTT_PROP_MAXIMUM_PACKET_SIZE);
        }
        if (assigned_id) {
            p.assigned_client_id = id;
            mqtt_props_set(&p, MQTT_PROP_ASSIGNED_CLIENT_ID);
        }
        if (expiry_capped) {
            p.session_expiry = expiry;
            mqtt_props_set(&p, MQTT_PROP_SESSION_EXPIRY);
        }
    }
    send_connack(c, present, MQTT_RC_SUCCESS, &p);
    mqtt_session_attach(s, c);
    mqtt_session_save(s);
    log_info("accepted MQTT %s connection " MQTT_CLIENT_FMT " (vhost '%.*s', user '%s', "
             "session %s)", c->version == MQTT_V5 ? "5.0" : c->version == MQTT_V311 ? "3.1.1" : "3.1",
             MQTT_CLIENT_ARG(c), (int)vh->name.len, vh->name.data, mqtt_client_user(c),
             present ? "resumed" : "new");
}

void
mqtt_handle_disconnect(mqtt_client *c, const mqtt_frame *f)
{
    mqtt_disconnect d;
    int rc = mqtt_disconnect_decode(f, c->version, &d);
    if (rc != MQTT_OK) {
        mqtt_client_close(c, (uint8_t)-rc, "malformed DISCONNECT");
        return;
    }
    mqtt_session *s = c->session;
    if (c->version == MQTT_V5 && s && mqtt_props_has(&d.props, MQTT_PROP_SESSION_EXPIRY)) {
        /* MQTT-3.14.2-2: a session that was to end at once may not be
         * given a life at the last moment. */
        if (s->expiry == 0 && d.props.session_expiry != 0) {
            mqtt_client_close(c, MQTT_RC_PROTOCOL_ERROR,
                              "session expiry set on DISCONNECT after 0 on CONNECT");
            return;
        }
        uint32_t e = d.props.session_expiry;
        s->expiry = e > B.cfg.mqtt_max_session_expiry ? B.cfg.mqtt_max_session_expiry : e;
        if (s->expiry == 0)
            s->durable = false;
        mqtt_session_save(s);
    }
    c->graceful = true;
    c->will_on_close = c->version == MQTT_V5 && d.reason == MQTT_RC_DISCONNECT_WITH_WILL;
    mqtt_client_abort(c, "client sent DISCONNECT");
}
