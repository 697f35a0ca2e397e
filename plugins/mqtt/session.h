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
/* Our Receive Maximum: QoS 1 and 2 publishes a client may have with us
 * unacknowledged (announced in MQTT 5's CONNACK), and QoS 2 publishes a
 * session may hold awaiting PUBREL, in every version. */
#define MQTT_SERVER_RECEIVE_MAX 1024
/* User properties one PUBLISH may carry (each becomes an AMQP header):
 * more is DISCONNECT 0x97 Quota exceeded. */
#define MQTT_USER_PROPS_MAX 4096

/* The input and output buffers: allocated while either holds bytes, so an
 * idle client keeps none. */
struct mqtt_client_bufs {
    buf in, out;
};

/* What only some clients need, allocated on first use and kept until the
 * client goes: a will, topic aliases, a brake, acks waiting for the store. */
struct mqtt_client_x {
    message *will;                 /* the will, held while connected: one reference */
    uint32_t will_delay;
    uint32_t max_packet_out;       /* what the client accepts (MQTT 5); 0 = any */
    uint32_t perm_gen;             /* cached publish permission (auth_generation) */
    uint16_t receive_max;          /* its limit of our unacked QoS 1/2 (MQTT 5); 0 = none set */
    uint16_t inflight_in;          /* its QoS 1/2 publishes we have not acked */
    uint8_t out_alias_max;         /* topic aliases it takes from us (MQTT 5) */
    /* MQTT 5 topic aliases, allocated when first used */
    struct mqtt_aliases {
        char *in[MQTT_SERVER_ALIAS_MAX + 1];      /* client-to-server, owned */
        uint16_t in_len[MQTT_SERVER_ALIAS_MAX + 1];
        /* server-to-client: the first topics we send, up to the client's
         * Topic Alias Maximum (and ours), keep their alias */
        char *out[MQTT_SERVER_ALIAS_MAX + 1];     /* owned; [1..out_n] */
        uint16_t out_len[MQTT_SERVER_ALIAS_MAX + 1];
        uint16_t out_n;
    } *aliases;
    /* back-pressure: reading stops while a queue this client publishes
     * to has a backlog, or the store is behind (brake_q NULL) */
    queue *brake_q;                /* one reference */
    /* acks that wait for a store commit, in order */
    struct mqtt_pending_ack {
        uint64_t batch;
        uint16_t packet_id;
        uint8_t type;              /* MQTT_PUBACK or MQTT_PUBREC */
        uint8_t reason;
    } *acks;
    size_t acks_head, acks_len, acks_cap;
    struct mqtt_client *wait_next; /* on the list of clients waiting for a commit */
};

/*
 * A client: one per connection, from accept until the reaper frees it.
 * Idle, subscribed clients are what a broker holds by the thousand, so
 * this is kept small: what every client needs lives here; buffers exist
 * only while bytes wait in them, and what few clients use (a will, topic
 * aliases, a brake, acks that wait for the disk) hangs off x.
 */
typedef struct mqtt_client {
    ev_io w;                       /* reading, and writing while output waits */
    stream io;
    /* in the list of clients waiting for the same kind of deadline
     * (client.c, "timeouts") */
    struct mqtt_client *tnext, *tprev;
    struct mqtt_client_bufs *bufs; /* NULL while both are empty */
    struct mqtt_client_x *x;       /* NULL until needed */
    struct mqtt_session *session;  /* NULL before CONNECT succeeds */
    vhost *vh;
    struct auth_user *u;           /* the logged-in user; NULL before */
    struct mqtt_client *next, *prev;        /* every live client; next: the dead list */
    ev_tstamp connected_at;        /* ev_now at accept */
    /* MC_OPEN: when bytes last came (keepalive); MC_CONNECTING while
     * refusing: when the refusal goes out; MC_DRAINING: when it began */
    ev_tstamp at;
    uint64_t recv_oct, send_oct;
    uint16_t keepalive;            /* seconds; 0 = none */
    uint8_t state;                 /* enum mqtt_client_state */
    uint8_t version;               /* mqtt_version */
    uint8_t refuse_reason;
    uint8_t out_log2;              /* what the last output took, log2: the next
                                    * output buffer starts that big (client.c) */
    uint8_t waits : 3;             /* the kind of timeout list it is in (client.c) */
    bool peer_loopback : 1;
    bool reading : 1;
    bool writing : 1;              /* output waits for the socket */
    bool flush_queued : 1;
    bool graceful : 1;             /* DISCONNECT received: no will */
    bool will_on_close : 1;        /* MQTT 5 DISCONNECT 0x04: will anyway */
    bool braked : 1;
    bool counted : 1;              /* counts against vhost and user limits */
    bool refusing : 1;             /* a failed login's CONNACK is held back */
    bool ack_waiting : 1;          /* on the list of clients waiting for a commit */
    bool perm_write : 1, perm_topic : 1;
    char peer[];                   /* "host:port", NUL-terminated */
} mqtt_client;

/* The part of c that only some clients need, allocated on first use. */
struct mqtt_client_x *mqtt_client_x(mqtt_client *c);
/* Its Receive Maximum: how many QoS 1/2 deliveries may await its ack. */
static inline uint16_t
mqtt_client_receive_max(const mqtt_client *c)
{
    return c->x && c->x->receive_max ? c->x->receive_max : 65535;
}
/* The largest packet the client takes (MQTT 5 Maximum Packet Size), 0 = any. */
static inline uint32_t
mqtt_client_max_packet(const mqtt_client *c)
{
    return c->x ? c->x->max_packet_out : 0;
}
/* The logged-in user's name, "" before login. */
const char *mqtt_client_user(const mqtt_client *c);
/* Stops reading the client (a refused login waits). */
void mqtt_client_stop_reading(mqtt_client *c);

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
/* Puts the client among those waiting for what it waits for now (the
 * CONNECT, a refused login's CONNACK, its keepalive, the drain, a brake);
 * called after any change of its state, refusing or braked. */
void mqtt_client_arm(mqtt_client *c);
/* Bytes came: the keepalive counts from now. */
void mqtt_client_active(mqtt_client *c);
/* The aliases table, allocated on first use. */
struct mqtt_aliases *mqtt_client_aliases(mqtt_client *c);
/* Stops reading this publisher until q's backlog drains (q NULL: until
 * the store catches up). */
void mqtt_client_brake(mqtt_client *c, queue *q);
/* Sends PUBACK/PUBREC for packet_id once batch has committed (0: now). */
void mqtt_client_ack_after(mqtt_client *c, uint8_t type, uint16_t packet_id,
                           uint8_t reason, uint64_t batch);

/* ---- sessions --------------------------------------------------------------- */

/* A $share/group/filter membership: the group's queue, consumed by every
 * member. */
typedef struct mqtt_shared {
    queue *q;                      /* the group's queue (one reference) */
    consumer *c;                   /* our consumer on it while online */
    uint16_t group_len;
    char group[];                  /* NUL-terminated */
} mqtt_shared;

typedef struct mqtt_sub {
    char *filter;                  /* MQTT form, owned (or in the subs block: see
                                    * mqtt_session_sub_add); for a shared one the
                                    * inner filter */
    mqtt_shared *shared;           /* owned; NULL if not shared */
    uint32_t subid;                /* MQTT 5 subscription identifier, 0 = none */
    uint16_t filter_len;
    uint8_t qos;                   /* granted */
    bool no_local : 1, retain_as_published : 1;
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

/* What only some sessions need, allocated on first use and kept with the
 * session: QoS 2 packet ids, and what runs while it is offline. */
typedef struct mqtt_session_x {
    uint16_t *rel_pending;         /* QoS 2 out: PUBREC got, PUBCOMP awaited */
    size_t nrel, rel_cap;
    uint16_t *qos2_in;             /* QoS 2 in: PUBREC sent, PUBREL awaited */
    size_t nqos2_in, qos2_in_cap;
    ev_timer expiry_timer;         /* offline: ends the session */
    ev_timer will_timer;           /* offline: MQTT 5 will delay */
    message *will;                 /* a delayed will (one reference) */
    ev_tstamp offline_since;
    struct mqtt_session *s;        /* the session it belongs to */
    /* retained messages for a new subscription, waiting for room
     * (mqtt_session_send_retained), in order */
    struct mqtt_retained_send {
        message *m;                /* one reference */
        uint32_t subid;
        uint8_t qos;
    } *ret;
    size_t ret_head, ret_len, ret_cap;
} mqtt_session_x;

/* Subscriptions a session may hold. */
#define MQTT_SUBS_MAX 65535

typedef struct mqtt_session {
    consumer cons;                 /* our consumer on q, while consuming */
    vhost *vh;
    mqtt_client *client;           /* NULL while offline */
    queue *q;                      /* our queue (one reference), NULL until a subscription */
    mqtt_sub *subs;
    mqtt_inflight *inflight;       /* in send order, small */
    mqtt_session_x *x;             /* NULL until needed */
    struct mqtt_session *hnext;    /* chain in the table of sessions */
    uint32_t ninflight, inflight_cap;
    uint32_t number;               /* unique in this process: the origin of its publishes */
    uint32_t expiry;               /* seconds after disconnect; UINT32_MAX = never */
    uint16_t nsubs, subs_cap;      /* at most MQTT_SUBS_MAX */
    uint16_t next_packet_id;
    uint16_t client_id_len;
    uint8_t version;               /* mqtt_version */
    bool durable : 1;              /* survives disconnect (and restart) */
    bool consuming : 1;            /* cons is a consumer of q */
    char client_id[];              /* NUL-terminated */
} mqtt_session;

/* Appends a subscription to filter (copied; the rest zero) to s and
 * returns it, valid until s->subs next changes; NULL if s has
 * MQTT_SUBS_MAX already. A session's first filter shares the array's
 * allocation, as most sessions have exactly one. */
mqtt_sub *mqtt_session_sub_add(mqtt_session *s, mqtt_str filter);
/* Removes sub (one of s->subs) and frees what it owns. */
void mqtt_session_sub_del(mqtt_session *s, mqtt_sub *sub);
/* Records a delivery in flight, after those already in flight. */
void mqtt_session_inflight_add(mqtt_session *s, mqtt_inflight d);
/* The part of s that only some sessions need, allocated on first use. */
mqtt_session_x *mqtt_session_x_of(mqtt_session *s);
/* Calls fn for every session; fn may end the session it is given. */
void mqtt_sessions_each(void (*fn)(mqtt_session *s, void *ctx), void *ctx);
/* QoS 2 in: is packet id awaiting PUBREL; record it; forget it (false if
 * it was not there). */
bool mqtt_session_qos2_in_has(const mqtt_session *s, uint16_t id);
void mqtt_session_qos2_in_add(mqtt_session *s, uint16_t id);
bool mqtt_session_qos2_in_del(mqtt_session *s, uint16_t id);
/* How many inbound QoS 2 ids await PUBREL. */
static inline size_t
mqtt_session_qos2_in_count(const mqtt_session *s)
{
    return s->x ? s->x->nqos2_in : 0;
}

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
/* Sends retained message m for a new subscription at (at most) qos,
 * now if the client has room (its output below the high-water mark and,
 * at QoS 1/2, fewer in flight than its limit: MQTT-3.3.4-9 holds for
 * these too), else once it has, in order. Takes a new reference. */
void mqtt_session_send_retained(mqtt_session *s, message *m, uint8_t qos, uint32_t subid);
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
