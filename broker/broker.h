/*
 * The broker's state: vhosts hold exchanges and queues; connections hold
 * channels; channels hold consumers and unacknowledged deliveries. All of
 * it is owned by the loop thread and touched without locks (DESIGN.md).
 *
 * Lifetimes in one place:
 * - A message is reference-counted: one reference per queue entry, per
 *   unacked delivery, per transaction buffer. The body is stored once.
 * - A queue is reference-counted too: the vhost's map holds one, every
 *   unacked delivery holds one, so an ack after queue.delete stays safe.
 *   A deleted queue has `deleted` set and is out of the map.
 * - A connection is never freed inside its own callback: conn_close stops
 *   its watchers and queues it; an ev_check watcher frees it later.
 */
#ifndef CONEY_BROKER_BROKER_H
#define CONEY_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/buf.h"
#include "broker/config.h"
#include "broker/map.h"
#include "protocol/amqp.h"
#include "routing/route.h"

struct conn;
struct channel;
struct vhost;

/* ---- messages ---------------------------------------------------------- */

typedef struct message {
    uint32_t refs;
    uint16_t prop_flags;
    uint8_t delivery_mode;
    uint8_t priority;
    uint32_t props_len;
    uint32_t disk_refs;            /* queue index entries of this object on disk */
    uint32_t origin;               /* the MQTT session that published it, 0 = none */
    int64_t arrived_ms;            /* wall clock at arrival: queue TTLs count from it */
    int64_t expires_ms;            /* its own expiration property as a deadline; 0 = none */
    uint64_t id;                   /* unique, increasing: the msgs key */
    uint64_t body_size;
    uint64_t body_received;        /* while assembling from body frames */
    uint8_t *props;                /* encoded property list */
    uint8_t *body;
    amqp_bytes exchange;           /* as published; in the same allocation */
    amqp_bytes routing_key;
} message;

/* One allocation for the struct, names, properties and body. Returns NULL
 * if memory runs out. The new message has one reference. */
message *message_new(amqp_bytes exchange_name, amqp_bytes routing_key,
                     uint16_t prop_flags, const uint8_t *props,
                     uint32_t props_len, uint64_t body_size);
static inline message *message_ref(message *m) { m->refs++; return m; }
/* Drops a reference and clears the caller's pointer. */
void message_unref(message **m);
/* False when m certainly has no CC or BCC header: a scan of the encoded
 * properties, so the publish path decodes headers only when it must. */
bool message_may_have_cc(const message *m);
/* A copy of m without the header key (a new message, one reference), or
 * NULL if m has no headers or memory runs out. */
message *message_without_header(const message *m, const char *key);
/* Decodes the headers property into pool; false if absent or malformed. */
bool message_headers(const message *m, amqp_table *out, amqp_pool *pool);

/* ---- message statistics ------------------------------------------------- */

/* Counters with RabbitMQ's message_stats names. They only grow; every
 * STATS_INTERVAL seconds stats.c copies them into the last of two
 * samples, so a rate is the difference of the samples over the interval:
 * O(1) per event, two snapshots per object, nothing that grows with
 * traffic. */
typedef struct msg_stats {
    uint64_t publish, publish_in, publish_out, confirm;
    uint64_t deliver, deliver_no_ack, get, get_no_ack, ack, redeliver;
    uint64_t return_unroutable, drop_unroutable;
} msg_stats;

typedef struct stats {
    msg_stats now;                 /* counted in place */
    msg_stats s0, s1;              /* the last two samples, s1 newer */
} stats;

/* All zero: what a queue that never counted anything reads as. */
extern const stats stats_none;

#define STATS_INTERVAL 5.0

/* ---- routing destinations ---------------------------------------------- */

/* Queues and exchanges both start with this so a route_table destination
 * (void *) can say which it is. */
enum dest_kind { DEST_QUEUE = 1, DEST_EXCHANGE = 2 };

/* ---- queues and consumers ---------------------------------------------- */

enum {
    QE_REDELIVERED = 1,            /* delivered before: deliver with redelivered set */
    QE_ON_DISK = 2,                /* has a qidx entry (persistent, or paged) */
    QE_MARKED = 4,                 /* its qidx entry says delivered */
};

typedef struct qentry {
    message *msg;                  /* one reference */
    uint64_t seq;                  /* per-queue order: the qidx key */
    uint32_t flags;
} qentry;

/* A ring of entries ordered by seq. */
typedef struct qring {
    qentry *e;
    uint32_t head, count, cap;     /* cap is a power of two */
} qring;

struct consumer;

/* What a queue asks of whoever consumes from it: an AMQP channel or an
 * MQTT session. */
typedef struct consumer_ops {
    /* True if the consumer may take one more message now. */
    bool (*ready)(struct consumer *c);
    /* Takes one message: the reference passes to the callee. */
    void (*deliver)(struct consumer *c, message *m, uint64_t seq, uint32_t flags);
    /* The queue went away; the callee must consumer_remove(c). */
    void (*cancelled)(struct consumer *c);
} consumer_ops;

typedef struct consumer {
    struct consumer *next, *prev;  /* circular list on the queue */
    struct queue *q;
    const consumer_ops *ops;
    void *owner;                   /* the channel or session; borrowed */
    struct channel *ch;            /* AMQP consumers: the owner; else NULL */
    amqp_bytes tag;                /* owned */
    uint32_t unacked;
    uint16_t prefetch;             /* per-consumer limit, 0 = none */
    bool no_ack;
    bool exclusive;
    int32_t priority;              /* x-priority: higher is served first */
    bool embedded;                 /* in its owner's memory (consumer_attach) */
    uint64_t order;                /* when it came: the oldest is a single active consumer */
} consumer;

/* What a queue's x- arguments, or its effective options (arguments
 * combined with policies, policy.c), ask of it; -1 is "not set" for the
 * numbers. */
enum queue_overflow { QO_DROP_HEAD, QO_REJECT_PUBLISH, QO_REJECT_PUBLISH_DLX };

typedef struct queue_opts {
    int64_t message_ttl;           /* x-message-ttl, ms */
    int64_t expires;               /* x-expires, ms */
    int64_t max_length;            /* x-max-length, ready messages */
    int64_t max_length_bytes;      /* x-max-length-bytes, ready body bytes */
    uint8_t overflow;              /* enum queue_overflow */
    bool has_overflow;             /* overflow was given, not the default */
    uint8_t max_priority;          /* x-max-priority, 0 = not a priority queue */
    bool has_dlx, has_dlrk;
    amqp_bytes dlx, dlrk;          /* x-dead-letter-exchange / -routing-key, owned */
    bool single_active;            /* x-single-active-consumer */
    int64_t consumer_timeout;      /* x-consumer-timeout, ms */
} queue_opts;

/* The options of a queue that asks for nothing: every number -1, no
 * dead-lettering, drop-head. */
extern const queue_opts queue_opts_none;
/* True if o asks for nothing queue_opts_none does not. */
bool queue_opts_is_none(const queue_opts *o);

/* Reads the x- arguments of a queue.declare into out (defaults first).
 * Returns NULL, or RabbitMQ's complaint about the first bad one, e.g.
 * "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}",
 * written into err (the 406 text). */
const char *queue_opts_parse(const amqp_table *args, amqp_bytes qname, amqp_bytes vhost,
                             queue_opts *out, char *err, size_t cap);
void queue_opts_free(queue_opts *o);

/*
 * A queue. A broker may hold one per MQTT session by the thousand, most of
 * them idle, so what only some queues need is allocated when they need
 * it: counters on the first count (st), options only when arguments or a
 * policy set any (opts points to queue_opts_none otherwise), and in
 * queue_more (queue.c) what its arguments alone ask, timers for TTL and
 * x-expires, and the pages waiting for the store. The name lives in the
 * same allocation.
 */
typedef struct queue {
    enum dest_kind kind;           /* DEST_QUEUE; must be first */
    uint32_t refs;
    amqp_bytes name;               /* in this allocation (name_mem) */
    struct vhost *vh;
    uint64_t id;
    struct conn *owner;            /* exclusive queues: the declaring connection */
    uint8_t *args;                 /* encoded arguments table, owned */
    uint32_t args_len;
    uint32_t unacked;
    uint32_t nconsumers;
    uint32_t nprioritised;         /* consumers with x-priority other than 0 */
    uint32_t tail_count;           /* paged-out messages after the ring, on disk */
    bool durable : 1, exclusive : 1, auto_delete : 1;
    bool deleted : 1;
    bool had_consumer : 1;         /* auto-delete only after a first one */
    bool paged : 1;                /* has ever written paged entries */
    bool page_waiting : 1;         /* on the list of queues waiting for a commit */
    bool dispatching : 1;
    uint64_t next_seq;
    consumer *consumers;           /* round-robin cursor into the circle */
    uint64_t route_mark;           /* dedup within one publish */
    route_dest_list bound;         /* its bindings, in every exchange */
    stats *st;                     /* NULL until the first count: queue_counts */
    const queue_opts *opts;        /* effective: arguments and policies
                                    * (queue_apply_policies); never NULL */
    struct queue_more *more;       /* NULL until needed */
    char name_mem[];
} queue;

/* What only some queues need, made on first use and kept with the queue
 * (queue.c): an idle queue has none. */
struct queue_more {
    qring ready;                   /* the in-memory head */
    uint64_t mem_bytes;            /* bytes of message held by the ring */
    uint64_t ready_bytes;          /* body bytes of ready messages (x-max-length-bytes) */
    uint64_t tail_next_seq;        /* seq to read the tail from */
    struct queue *page_next;       /* on the list of queues waiting for a commit (persist.c) */
    queue_opts *arg_opts;          /* what the x- arguments ask; NULL: nothing */
    struct expiry_timer *timers;   /* TTL and x-expires, made when needed */
    struct queue_pending *pend;    /* tail entries whose write has not committed */
};

/* q's queue_more, made if it has none yet. */
struct queue_more *queue_more(queue *q);
/* The seq the on-disk tail is read from (meaningful while tail_count). */
static inline uint64_t
queue_tail_next(const queue *q)
{
    return q->more ? q->more->tail_next_seq : 0;
}

/* Messages in the in-memory ring. */
static inline uint32_t
ring_count(const queue *q)
{
    return q->more ? q->more->ready.count : 0;
}
/* Bytes the ring holds (message_bytes_ram), and body bytes of ready
 * messages (what x-max-length-bytes counts). */
static inline uint64_t
queue_mem_bytes(const queue *q)
{
    return q->more ? q->more->mem_bytes : 0;
}
static inline uint64_t
queue_ready_bytes(const queue *q)
{
    return q->more ? q->more->ready_bytes : 0;
}

/* What the x- arguments alone ask of q: queue_opts_none if nothing. */
const queue_opts *queue_arg_opts(const queue *q);

/* The queue's counters, made on first use. */
msg_stats *queue_counts_new(queue *q);
static inline msg_stats *
queue_counts(queue *q)
{
    return q->st ? &q->st->now : queue_counts_new(q);
}
/* Its counters and samples for reading: stats_none if it never counted. */
static inline const stats *
queue_stats(const queue *q)
{
    return q->st ? q->st : &stats_none;
}

queue *queue_new(struct vhost *vh, amqp_bytes name, bool durable,
                 bool exclusive, bool auto_delete, struct conn *owner,
                 const uint8_t *args, uint32_t args_len);
static inline void queue_ref(queue *q) { q->refs++; }
void queue_unref(queue *q);
/* Appends a message at sequence number seq (from ++q->next_seq; takes a
 * new reference) and delivers what it can. flags may hold QE_ON_DISK when
 * the caller already wrote its qidx entry. Past the queue's memory budget
 * the message goes to the on-disk tail instead of the ring. */
void queue_publish(queue *q, message *m, uint64_t seq, uint32_t flags);
/* Hands m straight to a no-ack consumer if the queue is empty and one is
 * ready; true if it did. A persistent message consumed this way needs no
 * write: it is gone before it could reach the disk (RabbitMQ confirms such
 * messages as consumed too). */
bool queue_deliver_noack(queue *q, message *m);
/* Puts an unacked message back in seq order, redelivered; takes over the
 * caller's reference. Drops it if the queue was deleted. */
void queue_requeue(queue *q, message *m, uint64_t seq, uint32_t flags);
/* Appends an entry read back from disk (page-in, recovery). */
void queue_push_paged(queue *q, message *m, uint64_t seq, uint32_t flags);
/* The store made progress: drop pending tail entries now readable from
 * disk and deliver what can go. */
void queue_store_progress(queue *q);
/* Releases an entry's claim on disk (ack, drop, purge). */
void queue_entry_forget(queue *q, message *m, uint64_t seq, uint32_t flags);
/* Drops (dead-letters) expired messages at the head and sets the timer
 * for the next; frees that timer. */
void queue_expire(queue *q);
void queue_expiry_free(queue *q);
/* The queue was used (declared, consumed, read): x-expires starts over. */
void queue_touch(queue *q);
/* Drops from the head while over x-max-length(-bytes) with drop-head. */
void queue_enforce_limits(queue *q);
/* Delivers ready messages to consumers that have capacity. */
void queue_dispatch(queue *q);
/* Takes the head for basic.get; false if empty. The entry's message
 * reference passes to the caller. */
bool queue_pop(queue *q, qentry *out);
/* Drops every ready message, on disk too; returns how many. */
uint32_t queue_purge(queue *q);
/* Drops every ready message from memory only, for a queue being deleted
 * whose on-disk entries go in one range delete; returns how many. */
uint32_t queue_drop_all(queue *q);
static inline uint32_t queue_ready(const queue *q)
{
    return ring_count(q) + q->tail_count;
}
/* Credit flow: a consumed queue this far behind slows its publishers
 * down (conn_brake, the MQTT plugin's brake) until it is back under LOW. */
#define QUEUE_BACKLOG_HIGH 4096
#define QUEUE_BACKLOG_LOW 1024
/* q delivered and is at or under QUEUE_BACKLOG_LOW: publishers held by
 * credit flow are looked at again from the loop (conn.c). */
void conn_brake_poke(void);

/* Adds a consumer at the end of q's round-robin circle. tag is copied;
 * owner is borrowed and must outlive the consumer. */
consumer *consumer_add(queue *q, const consumer_ops *ops, void *owner, amqp_bytes tag,
                       bool no_ack, bool exclusive, uint16_t prefetch);
/* The same in memory the caller owns (inside owner, typically), with a
 * tag that is borrowed and must outlive it (a literal); returns c.
 * consumer_remove then leaves the memory alone. */
consumer *consumer_attach(consumer *c, queue *q, const consumer_ops *ops, void *owner,
                          amqp_bytes tag, bool no_ack, bool exclusive, uint16_t prefetch);
/* Removes the consumer; may auto-delete its queue. */
void consumer_remove(consumer *c);

/* ---- exchanges ---------------------------------------------------------- */

typedef struct exchange {
    enum dest_kind kind;           /* DEST_EXCHANGE; must be first */
    amqp_bytes name;               /* owned */
    struct vhost *vh;
    enum route_type type;
    bool durable, auto_delete, internal;
    bool builtin;                  /* the default and amq.* exchanges */
    uint8_t *args;                 /* encoded arguments table, owned */
    uint32_t args_len;
    amqp_bytes alternate;          /* alternate-exchange argument, owned */
    amqp_bytes policy_alternate;   /* alternate-exchange of its policy, owned */
    route_table *rt;
    stats st;
    route_dest_list bound;         /* bindings that have this as destination */
    uint64_t route_mark;
    struct delayed *delay;         /* x-delayed-message: its held messages
                                    * (delayed.c); NULL for the other types */
} exchange;

/* The alternate exchange's name: the argument beats the policy, as in
 * RabbitMQ; empty for none. */
static inline amqp_bytes
exchange_alternate(const exchange *x)
{
    return x->alternate.len ? x->alternate : x->policy_alternate;
}

/* ---- virtual hosts ------------------------------------------------------ */

struct policy;

typedef struct vhost {
    amqp_bytes name;               /* owned */
    map exchanges;                 /* name -> exchange */
    map queues;                    /* name -> queue (one reference) */
    exchange *default_ex;
    char *description, *tags;      /* owned, "" when unset */
    int64_t max_connections;       /* vhost limits, -1 = none */
    int64_t max_queues;
    uint32_t connections;          /* open now */
    struct policy *policies[2];    /* [0] policies, [1] operator policies; by name */
} vhost;

vhost *vhost_new(const char *name);
void vhost_free(vhost *vh);
exchange *vhost_exchange(vhost *vh, amqp_bytes name);
queue *vhost_queue(vhost *vh, amqp_bytes name);
exchange *vhost_exchange_add(vhost *vh, amqp_bytes name, enum route_type type,
                             bool durable, bool auto_delete, bool internal,
                             const uint8_t *args, uint32_t args_len);
/* Removes an exchange with all its bindings, both ways. */
void vhost_exchange_delete(vhost *vh, exchange *x);
void vhost_queue_add(vhost *vh, queue *q);
/* Unbinds and removes the queue, cancels its consumers (notifying those
 * that asked), drops its ready messages; returns how many it held. */
uint32_t vhost_queue_delete(vhost *vh, queue *q);
/* Binds dest (queue or exchange) to source; route_bind's return codes. */
int vhost_bind(vhost *vh, exchange *src, void *dest, amqp_bytes key,
               const uint8_t *args, uint32_t args_len);
/* Unbinds; may auto-delete the source. route_unbind's return codes. */
int vhost_unbind(vhost *vh, exchange *src, void *dest, amqp_bytes key,
                 const uint8_t *args, uint32_t args_len);

/* The queues a message reaches from exchange x (exchange-to-exchange
 * bindings and alternate exchanges followed, each queue once). */
typedef struct route_result {
    queue **q;
    size_t n, cap;
} route_result;
void vhost_route(vhost *vh, exchange *x, message *m, route_result *out);
/* Routes m from x and queues it on every queue reached (*reached says how
 * many); m keeps the caller's reference. Returns the store batch a
 * confirm of m must wait for, or 0 if nothing was written. */
uint64_t vhost_publish(vhost *vh, exchange *x, message *m, size_t *reached);
/* The same; *rejected (if given) is set when a queue refused m for a
 * length limit (x-overflow reject-publish), which a confirming publisher
 * hears as basic.nack. */
uint64_t vhost_publish_ex(vhost *vh, exchange *x, message *m, size_t *reached, bool *rejected);

/* Routes m from x at once, even if x is a delayed exchange: how
 * delayed.c releases a held message. As vhost_publish otherwise, but x's
 * publish_in is not counted again. */
uint64_t vhost_publish_released(vhost *vh, exchange *x, message *m, size_t *reached);

/* Dead-letters m from q for reason (deadletter.c): republished to q's
 * dead-letter exchange with x-death headers, if q has one. m keeps the
 * caller's reference. */
enum dl_reason { DL_REJECTED, DL_EXPIRED, DL_MAXLEN };
void queue_dead_letter(queue *q, message *m, enum dl_reason reason);
/* The queues the last vhost_publish reached; valid until the next one. */
const route_result *vhost_last_route(void);

/* ---- delayed messages (delayed.c) --------------------------------------- */

/* The x-delayed-message exchange type of RabbitMQ's delayed message
 * plugin. Such an exchange routes by the type its x-delayed-type argument
 * names (x->type is that type); a message published to it with a
 * positive integer x-delay header is held that many milliseconds first. */
#define DELAYED_TYPE "x-delayed-message"
#define DELAYED_TYPE_ERROR "Invalid argument, 'x-delayed-type' must be an existing exchange type"

/* The routing type an x-delayed-type argument names (direct, fanout,
 * topic or headers); false if args has none or names anything else. The
 * second takes the encoded table (with its length prefix). */
bool delayed_type_arg(const amqp_table *args, enum route_type *out);
bool delayed_type_of(const uint8_t *args, uint32_t args_len, enum route_type *out);
/* The declared type's name: "x-delayed-message" or the routing type's. */
const char *exchange_type_name(const exchange *x);
/* Makes x (new, of its x-delayed-type) a delayed exchange. */
void delayed_attach(exchange *x);
/* Frees x's held messages and timer from memory only (the store keeps
 * them: see delayed_store_queue). */
void delayed_free(exchange *x);
/* m's x-delay header in milliseconds; 0 if absent or not an integer. */
int64_t delayed_header(const message *m);
/* Holds m if x is delayed and m has a positive x-delay (takes a new
 * reference) and returns true; *batch is the store batch its confirm
 * waits for (0: none). False: route m now. */
bool delayed_hold(exchange *x, message *m, uint64_t *batch);
/* How many messages x holds. */
size_t delayed_count(const exchange *x);
/* The hidden durable queue that keeps x's persistent held messages in the
 * store, or NULL if x has none yet; persist.c deletes it with x. */
queue *delayed_store_queue(const exchange *x);
/* After the store is replayed: gives each durable delayed exchange back
 * its held messages (their timers restart; those already due go at
 * once) and deletes hidden queues whose exchange is gone. */
void delayed_recover(void);

/* ---- policies (policy.c) ------------------------------------------------- */

/* RabbitMQ's policies and operator policies: a regular expression on
 * queue and exchange names, what they apply to, a priority, and a
 * definition of options (message-ttl, max-length, alternate-exchange,
 * ...). An object follows at most one policy and one operator policy of
 * its vhost; changing either recomputes the options of every object of
 * the vhost at once. */
enum policy_apply { POLICY_ALL, POLICY_QUEUES, POLICY_CLASSIC_QUEUES, POLICY_EXCHANGES,
                    POLICY_OTHER };

typedef struct policy {
    struct policy *next;
    char *name;                    /* owned */
    char *pattern;                 /* owned, as given */
    char *apply_to;                /* owned, as given ("all", "queues", ...) */
    enum policy_apply apply;
    int64_t priority;
    uint8_t *def;                  /* the definition: an encoded field table with its
                                    * length prefix, owned */
    uint32_t def_len;
    void *re, *md;                 /* pcre2 code and match data, owned */
} policy;

enum { POLICY_USER = 0, POLICY_OPERATOR = 1 };

/* Sets (creates or replaces) policy name of vh; which is POLICY_USER or
 * POLICY_OPERATOR. def is an encoded field table with its length prefix
 * (copied). Returns 1 created, 0 replaced, or -1 with RabbitMQ's 400
 * reason in why ("Validation failed\n\n<what>\n"). Durable unless
 * recovering. */
int policy_set(vhost *vh, int which, const char *name, const char *pattern,
               const char *apply_to, int64_t priority, const uint8_t *def, uint32_t def_len,
               char *why, size_t cap);
/* Deletes it; 0, or -1 if there is none. */
int policy_clear(vhost *vh, int which, const char *name);
/* Borrowed from vh, valid until the next policy_set/clear of vh. */
const policy *policy_find(const vhost *vh, int which, const char *name);
/* The policy of which kind that applies to the named queue or exchange:
 * the highest priority among those matching (ties: the name that sorts
 * first); NULL if none. Borrowed as above. */
const policy *policy_for(const vhost *vh, int which, enum dest_kind kind, amqp_bytes name);
/* The effective definition of an object following p and op (either may be
 * NULL), into out from pool: p's keys, then op's; a key in both takes the
 * lower number, as RabbitMQ merges operator policies. */
void policy_effective(const policy *p, const policy *op, amqp_table *out, amqp_pool *pool);
/* Recomputes q->opts from q->arg_opts and the policies of its vhost. The
 * arguments beat the policy for dead-letter-exchange, -routing-key and
 * overflow; for message-ttl, expires, max-length(-bytes) and
 * consumer-timeout the lower value wins (RabbitMQ's rules). */
void queue_apply_policies(queue *q);
/* Sets x->policy_alternate from the policies of its vhost. */
void exchange_apply_policies(exchange *x);
/* Frees the policies of vh (vhost_free); the store keeps them. */
void policy_vhost_free(vhost *vh);
/* Deletes the stored policies of vh, which is being deleted. */
void policy_vhost_forget(vhost *vh);
struct store_reader;
/* Reads every stored policy into its vhost (after the vhosts, before the
 * queues and exchanges). 0, or -1 with err for a store it cannot read. */
int policy_recover(struct store_reader *r, char *err, size_t cap);

/* ---- the process --------------------------------------------------------- */

typedef struct broker {
    config cfg;
    struct ev_loop *loop;
    map vhosts;                    /* name -> vhost */
    struct conn *conns;            /* every live connection */
    uint64_t next_message_id;
    uint64_t next_queue_id;
    uint64_t route_gen;            /* marks for route dedup */
    uint64_t next_conn_id;
    bool stopping;
    bool recovering;               /* replaying the store: write nothing back */
    bool disk_alarm;               /* free disk below disk_free_limit */
    bool mem_alarm;                /* resident memory above vm_memory_high_watermark */
    uint32_t braked;               /* publishers held by credit flow (conn_brake) */
    uint64_t exchange_gen;         /* bumped when any exchange is freed */
    struct store *store;
    stats st;                      /* the whole broker */
    /* the broker's samples of the last STATS_RING * STATS_INTERVAL
     * seconds, for charts: ring[ring_next - 1] is the newest */
#define STATS_RING 60
    struct stats_sample {
        double t;                  /* ev_now of the sample */
        msg_stats s;
        uint64_t messages_ready, messages_unacked;
    } ring[STATS_RING];
    unsigned ring_next, ring_len;
    double started;                /* ev_now at start, for uptime */
} broker;

extern broker B;

vhost *broker_vhost(amqp_bytes name);

#endif
