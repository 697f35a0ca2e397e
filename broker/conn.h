/*
 * AMQP connections and channels: socket I/O, the handshake, the gate that
 * checks every method against the protocol's rules before a handler runs,
 * and the channel-level state (consumers, unacked deliveries, confirms,
 * transactions).
 */
#ifndef CONEY_BROKER_CONN_H
#define CONEY_BROKER_CONN_H

#include <ev.h>
#include <sys/uio.h>

#include "broker/broker.h"
#include "broker/stream.h"


/* ---- channels ---------------------------------------------------------- */

/* A delivery awaiting ack. msg == NULL marks one already settled; the
 * array stays sorted by tag so lookups are a binary search. */
typedef struct delivery {
    uint64_t tag;
    message *msg;                  /* one reference */
    queue *q;                      /* one reference */
    consumer *c;                   /* NULL for basic.get or a cancelled consumer */
    uint64_t seq;
    uint32_t flags;                /* QE_* of the queue entry */
    double at;                     /* ev_now when delivered (consumer_timeout) */
} delivery;

/* A publish awaiting its confirm: batch is the store batch it waits for
 * (0: nothing to wait for). */
typedef struct confirm_pending {
    uint64_t seq;
    uint64_t batch;
} confirm_pending;

enum tx_op_kind { TX_ACK, TX_NACK, TX_REJECT };
typedef struct tx_op {
    uint8_t kind;
    bool multiple, requeue;
    uint64_t tag;
} tx_op;

typedef struct tx_pub {
    message *msg;                  /* one reference */
    bool mandatory;
} tx_pub;

enum content_state { CONTENT_NONE, CONTENT_HEADER, CONTENT_BODY };

typedef struct channel {
    struct conn *conn;
    uint16_t id;
    bool closing;                  /* sent channel.close, awaiting close-ok */
    bool released;                 /* channel_release has run */
    bool flow_active;
    bool confirm;
    bool tx;
    bool confirm_dirty;            /* confirms to send at the end of a read */

    uint64_t next_tag;
    delivery *ua;                  /* ua[ua_head .. ua_len) live region */
    size_t ua_head, ua_len, ua_cap;
    uint32_t ua_live;              /* unsettled deliveries */
    uint32_t consumer_unacked;     /* unsettled deliveries to consumers */
    bool capped;                   /* a consumer waited for coney.unacked_max_per_channel */

    uint16_t prefetch;             /* applies to consumers created later */
    uint16_t global_prefetch;      /* channel-wide limit (qos global) */
    map consumers;                 /* tag -> consumer */

    /* content being assembled for basic.publish */
    enum content_state content;
    bool pub_mandatory;
    uint32_t pub_method;           /* the content-bearing method id */
    uint8_t pub_ex_len, pub_rk_len;
    char pub_ex[256], pub_rk[256];
    message *pending;

    uint64_t publish_seq;          /* last publish sequence number (confirms) */
    uint64_t confirmed;            /* highest sequence number confirmed */
    confirm_pending *cp;           /* unconfirmed publishes, cp[cp_head..cp_len) */
    size_t cp_head, cp_len, cp_cap;
    uint64_t tx_wait;              /* batch a pending tx.commit-ok waits for */
    bool waiting;                  /* on the store's waiter list */
    struct channel *wait_next, *wait_prev;

    tx_pub *tx_pubs;
    size_t tx_npubs, tx_cap;
    tx_op *tx_ops;
    size_t tx_nops, tx_opcap;

    amqp_bytes last_queue;         /* owned: the last queue declared here */
    /* direct reply-to: the pseudo-consumer of amq.rabbitmq.reply-to */
    char reply_tag[128];           /* its consumer tag; "" when none */
    char reply_token[40];          /* the name's suffix replies are sent to */
    stats st;
    /* the last exchange checked for write permission (publishing) */
    uint8_t perm_ex_len;
    char perm_ex[256];
    uint64_t perm_gen;             /* auth_generation() of the answer; 0 = none */
    /* the exchange the last publish went to, while B.exchange_gen says
     * no exchange has been freed since */
    struct exchange *pub_x;
    uint64_t pub_x_gen;
    bool perm_ok, perm_topic;      /* may write; has topic permissions there */
    struct channel *dirty_next;
} channel;

/* ---- connections -------------------------------------------------------- */

enum conn_state {
    CONN_HEADER,                   /* waiting for the protocol header */
    CONN_START,                    /* sent connection.start */
    CONN_TUNE,                     /* sent connection.tune */
    CONN_OPENING,                  /* got tune-ok, waiting for open */
    CONN_OPEN,
    CONN_CLOSING,                  /* sent connection.close, waiting close-ok */
    CONN_DRAINING,                 /* flushing output, then lingering close */
    CONN_DEAD,
};

typedef struct conn {
    ev_io rio, wio;
    ev_timer timer;                /* heartbeats, handshake and close timeouts */
    stream io;
    buf in, out;
    enum conn_state state;
    uint64_t id;
    char peer[64];
    char name[96];                 /* "127.0.0.1:51234 -> 127.0.0.1:5672" */
    bool peer_loopback;
    bool reading;
    bool flush_queued;
    bool blocked_by_output;        /* consumers paused by the high-water mark */
    bool blocked;                  /* a publisher stopped by a resource alarm */
    bool stalled;                  /* waiting for a definition to commit */
    bool flow;                     /* a publisher paused while the store catches up */
    bool out_full;                 /* not reading: our output to it is over OUT_PAUSE */
    bool resume_pending;           /* a pause ended: read_cb processes the input first */
    queue *brake_q;                /* not reading: this queue's consumers catch up
                                    * (credit flow); one reference */
    struct conn *brake_next;       /* the braked list (conn.c) */
    amqp_method deferred;          /* the reply sent once it has */
    uint16_t deferred_channel;
    uint64_t deferred_batch;
    char deferred_name[256];       /* owned copy of the reply's name field */
    bool store_waiting;            /* on the store's waiter list */
    struct conn *swait_next, *swait_prev;

    uint64_t recv_oct, send_oct;   /* bytes read and written */
    double connected_at;           /* wall clock, ms since the epoch (management API) */
    uint8_t *client_props;         /* start-ok's client_properties, encoded with its
                                    * length prefix; owned, NULL before start-ok */
    uint32_t client_props_len;
    uint64_t oct_s0[2], oct_s1[2]; /* their last two samples (stats.c) */
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat;
    ev_tstamp last_recv, last_send, deadline;
    ev_tstamp last_taken;          /* the peer last took output from us or the kernel */
    long unsent;                   /* the kernel's unsent bytes then (stream_unsent) */

    channel **channels;            /* index by id; grown on demand */
    uint32_t nchannels;

    vhost *vh;
    char user[128];
    struct auth_user *u;           /* the logged-in user; NULL before */
    bool counted;                  /* counts against vhost and user limits */
    bool refusing;                 /* a failed login's answer is held back */
    ev_tstamp refuse_at;
    bool cap_cancel_notify;
    bool cap_auth_failure_close;
    bool cap_blocked;              /* understands connection.blocked */

    amqp_pool pool;                /* decoding scratch, reset per frame */
    struct conn *next, *prev;      /* B.conns */
    struct conn *flush_next;
    struct conn *dead_next;
    channel *dirty;                /* channels with confirms to send */
} conn;

/* Accepts a stream (TCP or TLS, non-blocking) from a listener; takes it
 * over. */
void conn_accept(const stream *s, const char *peer, bool loopback);
/* Starts every watcher the connections need (flush, reap). */
void conn_init_loop(void);

/* Output. Everything goes through conn_send_*, which appends to the
 * output buffer; a prepare watcher flushes each connection with one
 * write before the loop sleeps. */
void conn_send_method(conn *c, uint16_t ch, const amqp_method *m);
void conn_send_content(conn *c, uint16_t ch, const amqp_method *m,
                       const message *msg);
/* True while the output buffer is below the high-water mark. */
bool conn_writable(const conn *c);

/* Closes the connection with connection.close(code, text, class, method)
 * and waits briefly for close-ok. */
void conn_error(conn *c, int code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A resource alarm changed: publishers stop at their next publish while
 * it holds, and resume (connection.unblocked) when it clears. */
void conn_alarm_changed(void);
/* Replies on ch now, or, if this method wrote a durable definition, once
 * the write has committed: the connection stops reading frames until
 * then, so replies keep their order (RabbitMQ too answers a durable
 * declare only after its write). */
void conn_reply(conn *c, uint16_t ch, const amqp_method *m);
/* The store made progress: send a deferred reply that is now due and
 * go on with the frames that waited. */
void conn_store_progress(conn *c);
/* The store caught up: publishers paused by flow control read again. */
void conn_flow_resume(void);
/* Credit flow. A publish put a message on q, a consumed queue whose
 * consumers fall behind although they have credit (their connections'
 * output is full): the publisher stops reading until q's backlog is back
 * under QUEUE_BACKLOG_LOW, q loses its consumers or is deleted. */
void conn_brake(conn *c, queue *q);
/* Sends connection.close 320 to every connection (shutdown). */
void conn_close_all(const char *reason);
/* Closes immediately (socket error, EOF, timeout): no more frames. */
void conn_abort(conn *c, const char *why);

/* Channel-level errors close just the channel. */
void channel_error(channel *ch, int code, uint32_t method_id,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- channel.c ------------------------------------------------------------ */

channel *channel_new(conn *c, uint16_t id);
/* Releases what the channel holds (requeues unacked, cancels consumers)
 * and frees it. */
void channel_free(channel *ch);
/* Requeues unacked deliveries and cancels consumers; idempotent. */
void channel_release(channel *ch);
/* Handles a method for an open channel; the gate has checked it. */
void channel_method(channel *ch, const amqp_method *m);
/* A complete message arrived for the channel's pending publish. */
void channel_content_done(channel *ch);
/* Sends coalesced publisher confirms. */
void channel_flush_confirms(channel *ch);
/* The store made progress: send confirms and commit-oks now due. */
void channel_store_progress(channel *ch);
/* Consumers on a channel: c->owner and c->ch are the channel. */
extern const consumer_ops channel_consumer_ops;
/* The once-a-second check of delivery acknowledgement timeouts. */
void channel_timeouts_start(void);
void channel_timeouts_stop(void);
/* Re-run dispatch for every queue a channel consumes from. */
void channel_kick(channel *ch);

#endif
