/*
 * The MQTT plugin's broker side: clients (one per TCP connection),
 * sessions (which outlive clients) and retained messages, mapped onto the
 * broker as DESIGN.md draws it. A PUBLISH goes into the vhost's topic
 * exchange (mqtt.exchange, amq.topic) with the topic as routing key ('/'
 * and '.' swapped); each session owns one queue,
 * "mqtt-subscription-<client id>qos1", bound to that exchange once per
 * topic filter, and consumes it. A shared subscription "$share/g/f" is a
 * queue of its own, "mqtt-shared-<g>-<f>", consumed by every member, so
 * the queue's round-robin spreads the messages over the group.
 *
 * Sessions that must survive (clean session 0, or an MQTT 5 session
 * expiry above 0) have a durable queue and a record in the store's
 * sessions database; a restart finds both. Messages from MQTT carry their
 * QoS, retain flag and MQTT 5 properties as AMQP properties and headers
 * (x-mqtt-publish-qos as RabbitMQ writes it), so a message that crossed
 * into AMQP and back loses nothing MQTT needs.
 *
 * Private to plugins/mqtt/.
 */
#ifndef CONEY_PLUGINS_MQTT_SESSION_H
#define CONEY_PLUGINS_MQTT_SESSION_H

#include <ev.h>

#include "broker/broker.h"
#include "broker/stream.h"
#include "plugins/mqtt/mqtt.h"

struct mqtt_session;

/* ---- clients -------------------------------------------------------------- */

enum mqtt_client_state {
    MC_CONNECTING,                 /* waiting for CONNECT */
    MC_OPEN,
    MC_DRAINING,                   /* sending what is queued, then closing */
    MC_DEAD,
};

#define MQTT_SERVER_ALIAS_MAX 64   /* topic aliases a client may use with us */
/* A publisher stops being read while a queue it reached holds more than
 * HIGH ready messages and has consumers, until it is under LOW. */
#define MQTT_BACKLOG_HIGH 4096
#define MQTT_BACKLOG_LOW 1024

typedef struct mqtt_client {
    ev_io rio, wio;
    ev_timer timer;                /* CONNECT deadline, keepalive, drain */
    stream io;
    buf in, out;
    enum mqtt_client_state state;
    mqtt_version version;
    char peer[64];
    bool peer_loopback;
    bool reading;
    bool flush_queued;
    double connected_at;           /* ev_now at accept */
    uint64_t recv_oct, send_oct;
    char name[96];                 /* "peer (MQTT n)", for the management API */
    bool graceful;                 /* DISCONNECT received: no will */
    bool will_on_close;            /* MQTT 5 DISCONNECT 0x04: will anyway */
    uint16_t keepalive;            /* seconds; 0 = none */
    ev_tstamp last_recv, deadline;
    uint32_t max_packet_in;        /* what we accept */
    uint32_t max_packet_out;       /* what the client accepts (MQTT 5) */
    uint16_t receive_max;          /* client's limit of our unacked QoS 1/2 */
    uint16_t inflight_in;          /* its QoS 1/2 publishes we have not acked */
    /* MQTT 5 topic aliases, allocated when first used (most clients
     * never do, and an idle connection should cost little) */
    struct mqtt_aliases {
        char *in[MQTT_SERVER_ALIAS_MAX + 1];      /* client-to-server, owned */
        uint16_t in_len[MQTT_SERVER_ALIAS_MAX + 1];
        /* server-to-client: the first topics we send, up to the client's
         * Topic Alias Maximum (and ours), keep their alias */
        char *out[MQTT_SERVER_ALIAS_MAX + 1];     /* owned; [1..out_n] */
        uint16_t out_len[MQTT_SERVER_ALIAS_MAX + 1];
        uint16_t out_n;
    } *aliases;
    uint16_t out_alias_max;
    /* back-pressure: reading stops while a queue this client publishes
     * to has a backlog, or the store is behind (brake_q NULL) */
    bool braked;
    queue *brake_q;                /* one reference */
    vhost *vh;
    char user[128];
    struct auth_user *u;           /* the logged-in user; NULL before */
    bool counted;                  /* counts against vhost and user limits */
    bool refusing;                 /* a failed login's CONNACK is held back */
    uint8_t refuse_reason;
    ev_tstamp refuse_at;
    uint64_t perm_gen;             /* cached publish permission (auth_generation) */
    bool perm_write, perm_topic;
    struct mqtt_session *session;  /* NULL before CONNECT succeeds */
    /* the will, held while connected: an MQTT message ready to route */
    message *will;                 /* one reference, or NULL */
    uint32_t will_delay;
    /* acks that wait for a store commit, in order */
    struct mqtt_pending_ack {
        uint64_t batch;
        uint16_t packet_id;
        uint8_t type;              /* MQTT_PUBACK or MQTT_PUBREC */
        uint8_t reason;
    } *acks;
    size_t acks_head, acks_len, acks_cap;
    bool ack_waiting;              /* on the list of clients waiting for a commit */
    struct mqtt_client *next, *prev;        /* every live client */
    struct mqtt_client *flush_next, *dead_next, *wait_next;
} mqtt_client;

/* Appends a whole packet of size n to the client's output and returns
 * where to encode it; flushed before the loop sleeps. */
uint8_t *mqtt_client_reserve(mqtt_client *c, size_t n);
/* True while the output is below the high-water mark. */
bool mqtt_client_writable(const mqtt_client *c);
/* Protocol error or policy: MQTT 5 clients get DISCONNECT with reason
 * (when reason >= 0x80 or 0x8E/0x8B...), older ones are just closed. The
 * will is published unless the client disconnected gracefully. */
void mqtt_client_close(mqtt_client *c, uint8_t reason, const char *why);
/* Closes at once without a word (socket gone). */
void mqtt_client_abort(mqtt_client *c, const char *why);
/* Sets the client's one timer for whatever it waits for next. */
void mqtt_client_arm(mqtt_client *c);
/* The aliases table, allocated on first use. */
struct mqtt_aliases *mqtt_client_aliases(mqtt_client *c);
/* Stops reading this publisher until q's backlog drains (q NULL: until
 * the store catches up). */
void mqtt_client_brake(mqtt_client *c, queue *q);
/* Sends PUBACK/PUBREC for packet_id once batch has committed (0: now). */
void mqtt_client_ack_after(mqtt_client *c, uint8_t type, uint16_t packet_id,
                           uint8_t reason, uint64_t batch);

/* ---- sessions --------------------------------------------------------------- */

typedef struct mqtt_sub {
    char *filter;                  /* MQTT form, owned; for a shared one the inner filter */
    uint16_t filter_len;
    char *group;                   /* shared subscription group, owned; NULL if not shared */
    uint16_t group_len;
    uint8_t qos;                   /* granted */
    bool no_local, retain_as_published;
    uint32_t subid;                /* MQTT 5 subscription identifier, 0 = none */
    queue *shared_q;               /* shared: the group's queue (one reference) */
    consumer *shared_c;            /* shared: our consumer on it while online */
} mqtt_sub;

/* A delivery awaiting PUBACK (QoS 1) or PUBREC (QoS 2). */
typedef struct mqtt_inflight {
    uint16_t packet_id;
    uint8_t qos;
    message *msg;                  /* one reference */
    queue *q;                      /* one reference */
    consumer *c;                   /* may be gone (NULL) */
    uint64_t seq;
    uint32_t flags;
} mqtt_inflight;

typedef struct mqtt_session {
    vhost *vh;
    char *client_id;               /* owned */
    uint16_t client_id_len;
    uint32_t number;               /* unique in this process: the origin of its publishes */
    mqtt_version version;
    bool durable;                  /* survives disconnect (and restart) */
    uint32_t expiry;               /* seconds after disconnect; UINT32_MAX = never */
    mqtt_client *client;           /* NULL while offline */
    queue *q;                      /* our queue (one reference), NULL until a subscription */
    consumer *c;                   /* on q while online */
    mqtt_sub *subs;
    size_t nsubs, subs_cap;
    mqtt_inflight *inflight;       /* unordered, small */
    size_t ninflight, inflight_cap;
    uint16_t *rel_pending;         /* QoS 2 out: PUBREC got, PUBCOMP awaited */
    size_t nrel, rel_cap;
    uint16_t *qos2_in;             /* QoS 2 in: PUBREC sent, PUBREL awaited */
    size_t nqos2_in, qos2_in_cap;
    uint16_t next_packet_id;
    ev_timer expiry_timer;         /* offline: ends the session */
    ev_timer will_timer;           /* offline: MQTT 5 will delay */
    message *will;                 /* a delayed will (one reference) */
    ev_tstamp offline_since;
    struct mqtt_session *next, *prev;
} mqtt_session;

/* The session of (vh, client id), or NULL. */
mqtt_session *mqtt_session_find(vhost *vh, const uint8_t *id, size_t len);
mqtt_session *mqtt_session_new(vhost *vh, const uint8_t *id, size_t len);
/* Ends a session: unbinds and deletes its queue, requeues what was in
 * flight, forgets its record. */
void mqtt_session_end(mqtt_session *s);
/* The client went away: requeue in-flight deliveries, stop consuming;
 * ends the session unless it is durable (then the expiry timer runs). */
void mqtt_session_detach(mqtt_session *s);
/* A client takes the session: consume again, resend PUBRELs. */
void mqtt_session_attach(mqtt_session *s, mqtt_client *c);
/* Writes the session record (durable sessions only). */
void mqtt_session_save(mqtt_session *s);
/* The name of our queue, "mqtt-subscription-<client id>qos1"; returns
 * its length. */
int mqtt_session_queue_name(const mqtt_session *s, char *out, size_t cap);
/* Our queue, created (and, for a durable session, declared durable) on
 * first use. */
queue *mqtt_session_queue(mqtt_session *s);
/* The consumer ops of session queues. */
extern const consumer_ops mqtt_consumer_ops;
/* Delivery: sends what the session's consumers can take now. */
void mqtt_session_kick(mqtt_session *s);
/* Restores sessions from the store (start-up). */
int mqtt_sessions_recover(char *err, size_t errlen);
void mqtt_sessions_free(void);
/* Publishes a will now. */
void mqtt_will_publish(vhost *vh, message *m);

/* ---- messages ------------------------------------------------------------------ */

/* An MQTT PUBLISH (or will) as a broker message: routing key from the
 * topic, QoS, retain, origin and MQTT 5 properties carried along. NULL if
 * memory runs out. */
message *mqtt_message_new(vhost *vh, mqtt_str topic, uint8_t qos, bool retain,
                          const mqtt_props *props, const uint8_t *payload,
                          uint32_t payload_len, uint32_t origin);
/* Routes m into the MQTT exchange; returns the store batch to wait for
 * (0: none) and sets *reached. */
uint64_t mqtt_message_route(vhost *vh, message *m, size_t *reached);
/* What an MQTT subscriber needs from a message. */
typedef struct mqtt_msg_view {
    uint8_t qos;
    bool retain;
    uint32_t origin;
    int64_t expires_at_ms;         /* 0 = never */
    amqp_basic_props bp;
    bool has_props;
} mqtt_msg_view;
void mqtt_message_view(const message *m, mqtt_msg_view *out, amqp_pool *pool);

/* ---- retained messages ------------------------------------------------------------ */

/* Stores (or with an empty payload clears) the retained message of a topic. */
void mqtt_retain_set(vhost *vh, mqtt_str topic, message *m);
/* Calls fn for every retained message of vh whose topic matches filter. */
void mqtt_retain_each(vhost *vh, mqtt_str filter,
                      void (*fn)(message *m, mqtt_str topic, void *ctx), void *ctx);
int mqtt_retain_recover(char *err, size_t errlen);
void mqtt_retain_free(void);

/* ---- handlers ----------------------------------------------------------------------- */

void mqtt_handle_connect(mqtt_client *c, const mqtt_frame *f);
/* Sends the refusing CONNACK held back after a failed login, and closes. */
void mqtt_refuse_now(mqtt_client *c, uint8_t reason);
void mqtt_handle_disconnect(mqtt_client *c, const mqtt_frame *f);
void mqtt_handle_publish(mqtt_client *c, const mqtt_frame *f);
void mqtt_handle_ack(mqtt_client *c, const mqtt_frame *f);
void mqtt_handle_subscribe(mqtt_client *c, const mqtt_frame *f);
void mqtt_handle_unsubscribe(mqtt_client *c, const mqtt_frame *f);

/* Sends one PUBLISH to the session's client (qos already decided). */
void mqtt_send_publish(mqtt_client *c, const mqtt_publish *p);

/* Logging context: "client-id@peer". */
#define MQTT_CLIENT_FMT "%.*s@%s"
#define MQTT_CLIENT_ARG(c) ((c)->session ? (int)(c)->session->client_id_len : 1), \
    ((c)->session ? (c)->session->client_id : "?"), (c)->peer

#endif
