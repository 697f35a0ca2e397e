/*
 * The store: durable state in one LMDB environment (DESIGN.md, FORMAT.md).
 *
 * Threads. Writes are queued by the loop thread into the open batch
 * (store_put_* / store_del_*: the arguments are encoded and copied at once,
 * so callers keep no buffers alive). A storage thread owns the single
 * write transaction: it takes the whole open batch, applies it, commits
 * with the configured sync, and reports the batch id as done; while it
 * works, new writes gather in the next batch (group commit: one commit and
 * one sync for everything that arrived meanwhile). Batches complete in id
 * order. Reads (store_reader) use LMDB read transactions on the caller's
 * thread.
 *
 * Reference counts. A message record (msgs) is written once however many
 * queue index entries (qidx) refer to it; the storage thread counts the
 * references and deletes the message with its last entry. The caller's
 * duty: store_put_message names the first entries; store_put_qentry may
 * add an entry only for a message that has at least one live entry.
 *
 * Errors: functions returning int give 0 or a negative STORE_E* code;
 * store_strerror names it.
 */
#ifndef CONEY_STORAGE_STORE_H
#define CONEY_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_error {
    STORE_OK = 0,
    STORE_ENOMEM = -1,
    STORE_EIO = -2,        /* LMDB or the file system failed */
    STORE_ECORRUPT = -3,   /* a record that does not decode */
    STORE_EVERSION = -4,   /* a record of a newer format version */
    STORE_ENOTFOUND = -5,
    STORE_EFULL = -6,      /* the disk is full */
};
const char *store_strerror(int err);

enum store_sync {
    STORE_SYNC_ALWAYS,     /* fsync every commit before reporting it done */
    STORE_SYNC_BATCH,      /* commit without fsync; fsync every interval */
    STORE_SYNC_NONE,       /* never fsync; the OS writes back when it likes */
};

typedef struct store store;

typedef struct store_config {
    const char *dir;               /* created if missing */
    enum store_sync sync;
    unsigned sync_interval_ms;     /* STORE_SYNC_BATCH */
    size_t initial_map_size;       /* bytes; 0 = 64 MiB. Grows when full. */
    /* Called on the storage thread after each batch is done (committed or
     * failed). The broker calls ev_async_send here. May be NULL. */
    void (*on_done)(void *ctx);
    void *ctx;
} store_config;

/* Opens (creating if needed) the environment and starts the storage
 * thread. On failure returns a STORE_E* code and a message in err. */
int store_open(const store_config *cfg, store **out, char *err, size_t errlen);
/* Commits what is queued, stops the thread, closes the environment. */
void store_close(store *s);

/* ---- records ----------------------------------------------------------- */

/* A byte string: borrowed, not NUL-terminated. */
typedef struct store_bytes {
    const uint8_t *data;
    uint32_t len;
} store_bytes;

enum { STORE_DEST_QUEUE = 1, STORE_DEST_EXCHANGE = 2 };

/* flags bits for exchanges and queues */
enum { STORE_F_DURABLE = 1, STORE_F_AUTO_DELETE = 2, STORE_F_INTERNAL = 4,
       STORE_F_EXCLUSIVE = 8 };

typedef struct store_exchange {
    store_bytes vhost, name;
    uint8_t type;                  /* the broker's route_type value */
    uint8_t flags;
    store_bytes args;              /* encoded AMQP field table (opaque here) */
} store_exchange;

typedef struct store_queue {
    store_bytes vhost, name;
    uint64_t id;                   /* the qidx key prefix */
    uint8_t flags;
    store_bytes args;
} store_queue;

typedef struct store_binding {
    store_bytes vhost, source;
    uint8_t dest_kind;             /* STORE_DEST_* */
    store_bytes dest, key, args;
} store_binding;

typedef struct store_message {
    uint64_t id;
    uint16_t prop_flags;
    store_bytes exchange, routing_key, props, body;
} store_message;

/* qentry flags */
enum { STORE_QE_DELIVERED = 1,     /* was delivered at least once */
       STORE_QE_TRANSIENT = 2 };   /* paged out only: dropped at start-up */

typedef struct store_qentry {
    uint64_t queue_id, seq, msg_id;
    uint8_t flags;
} store_qentry;

/* A record of the MQTT plugin: a retained message (name = the MQTT topic)
 * or a session (name = the client id). vhost and name may each be up to
 * 65535 bytes; data is the plugin's own encoding, opaque here (the plugin
 * versions it). The whole encoded record must stay under 4 GiB: a longer
 * field is a caller bug and aborts. */
typedef struct store_kv {
    store_bytes vhost, name, data;
} store_kv;

/* Access control, as RabbitMQ keeps it in its metadata store. Names
 * (vhost, user, exchange) may be up to 65535 bytes (the broker keeps to
 * AMQP's 255), as may a password hash and a default queue type; free text
 * (descriptions, tags, permission patterns) up to 4 GiB. A longer field
 * is a caller bug and aborts. The store checks none of the contents:
 * tags, patterns and hashes are the broker's to interpret. */

/* A limit: the most allowed, or STORE_NO_LIMIT (any negative value
 * reads as no limit; the broker writes -1, as RabbitMQ does). */
#define STORE_NO_LIMIT ((int64_t)-1)

typedef struct store_vhost {
    store_bytes name;
    store_bytes description;
    store_bytes tags;              /* comma-separated, opaque here */
    uint8_t flags;                 /* reserved: write 0 */
    store_bytes default_queue_type; /* may be empty: the broker's default */
    int64_t max_connections, max_queues;
} store_vhost;

/* hash_algo: how password_hash was made (RabbitMQ's hashing modules). */
enum { STORE_HASH_NONE = 0,        /* no password: only other mechanisms */
       STORE_HASH_SHA256 = 1,      /* rabbit_password_hashing_sha256 */
       STORE_HASH_SHA512 = 2,      /* rabbit_password_hashing_sha512 */
       STORE_HASH_MD5 = 3 };       /* rabbit_password_hashing_md5 */

typedef struct store_user {
    store_bytes name;
    store_bytes password_hash;     /* raw: salt (4) + digest, opaque here */
    uint8_t hash_algo;             /* STORE_HASH_*, not checked here */
    store_bytes tags;              /* comma-separated, opaque here */
    int64_t max_connections, max_channels;
} store_user;

/* One per (user, vhost); configure, write and read are regular
 * expressions on resource names, opaque here. */
typedef struct store_permission {
    store_bytes user, vhost;
    store_bytes configure, write, read;
} store_permission;

/* One per (user, vhost, exchange); write and read are regular
 * expressions on routing keys, opaque here. */
typedef struct store_topic_permission {
    store_bytes user, vhost, exchange;
    store_bytes write, read;
} store_topic_permission;

/* A policy or an operator policy of a vhost, one per (vhost, name) in
 * each of the two kinds. apply_to (`all`, `queues`, `exchanges`, ...),
 * the pattern and the definition (an encoded AMQP field table) are the
 * broker's to interpret; vhost, name and apply_to may be up to 65535
 * bytes, pattern and definition up to 4 GiB. */
typedef struct store_policy {
    store_bytes vhost, name;
    store_bytes pattern;           /* a regular expression on names */
    store_bytes apply_to;
    int64_t priority;
    store_bytes definition;        /* encoded AMQP field table, opaque here */
} store_policy;

/* ---- writes (loop thread); each goes into the open batch --------------- */

/* Id of the batch holding the latest write queued (before any write, the
 * open batch). Call it after queuing: once that batch is done, every write
 * queued before the call is committed. Called before a write it can be too
 * small, since the thread may take the open batch in between. Ids start
 * at 1 and only grow. */
uint64_t store_batch_id(const store *s);

void store_put_exchange(store *s, const store_exchange *x);
void store_del_exchange(store *s, store_bytes vhost, store_bytes name);
void store_put_queue(store *s, const store_queue *q);
/* Deletes the queue record and every qidx entry of queue_id (messages
 * whose last entry goes are deleted too). */
void store_del_queue(store *s, store_bytes vhost, store_bytes name, uint64_t queue_id);
void store_put_binding(store *s, const store_binding *b);
void store_del_binding(store *s, const store_binding *b);

/* Retained messages and MQTT sessions, one record per (vhost, name): a
 * put replaces the record of the same vhost and name, a delete of one
 * that does not exist does nothing. The bytes of r are copied before
 * the call returns. */
void store_put_retained(store *s, const store_kv *r);
void store_del_retained(store *s, store_bytes vhost, store_bytes topic);
void store_put_session(store *s, const store_kv *r);
void store_del_session(store *s, store_bytes vhost, store_bytes client_id);

/* Vhosts, users, permissions and topic permissions, one record per
 * identity (a vhost's or user's name; user and vhost; user, vhost and
 * exchange): a put replaces the record of the same identity, a delete of
 * one that does not exist does nothing. The bytes are copied before the
 * call returns. A delete removes that record only: the exchanges, queues
 * and permissions of a deleted vhost, or the permissions of a deleted
 * user, are the broker's to delete. */
void store_put_vhost(store *s, const store_vhost *h);
void store_del_vhost(store *s, store_bytes name);
void store_put_user(store *s, const store_user *u);
void store_del_user(store *s, store_bytes name);
void store_put_permission(store *s, const store_permission *p);
void store_del_permission(store *s, store_bytes user, store_bytes vhost);
void store_put_topic_permission(store *s, const store_topic_permission *p);
void store_del_topic_permission(store *s, store_bytes user, store_bytes vhost,
                                store_bytes exchange);

/* Policies and operator policies: the rules of the access control
 * records above (a put replaces the record of the same vhost and name
 * and kind; a delete of one that does not exist does nothing; a policy
 * and an operator policy of one name are two records). */
void store_put_policy(store *s, const store_policy *p);
void store_del_policy(store *s, store_bytes vhost, store_bytes name);
void store_put_operator_policy(store *s, const store_policy *p);
void store_del_operator_policy(store *s, store_bytes vhost, store_bytes name);

/* Writes the message record and its first n queue index entries (all with
 * e[i].msg_id == m->id). */
void store_put_message(store *s, const store_message *m, const store_qentry *e, size_t n);
/* Adds (or, for an existing entry, rewrites the flags of) one entry of a
 * message that is already stored with at least one live entry. */
void store_put_qentry(store *s, const store_qentry *e);
/* Deletes one entry; the message goes with its last entry. An entry put
 * earlier in the same open batch is then never written, nor is its
 * message once no entry of the batch names it: a message acknowledged
 * before the storage thread takes its batch costs the disk nothing. The
 * batch still commits in order, so waiting for its id keeps its meaning. */
void store_del_qentry(store *s, uint64_t queue_id, uint64_t seq);
/* Deletes the entries of queue_id with from_seq <= seq <= to_seq. */
void store_del_qrange(store *s, uint64_t queue_id, uint64_t from_seq, uint64_t to_seq);

/* Asks the thread to commit the open batch now even if nothing is queued
 * (useful to wait for earlier batches). Returns its id. */
uint64_t store_flush(store *s);

/* For tests: while on, the storage thread leaves the open batch alone, so
 * the writes queued meanwhile share one batch (closing the store still
 * commits it). */
void store_hold(store *s, bool on);

/* ---- completions (loop thread) ----------------------------------------- */

typedef struct store_done {
    uint64_t batch_id;
    int status;                    /* 0, or the STORE_E* that failed it */
} store_done;

/* Takes up to max completed batches, oldest first; returns how many. */
size_t store_drain(store *s, store_done *out, size_t max);
/* Highest batch id known committed (0 if none). Thread-safe. */
uint64_t store_committed(const store *s);
/* Blocks until batch id is done; for start-up and shutdown only. */
int store_wait(store *s, uint64_t batch_id);

/* ---- reads --------------------------------------------------------------- */

typedef struct store_reader store_reader;

/* A read transaction. Everything a callback or a store_get_* hands
 * out borrows from it and is valid until store_read_end. Keep it short:
 * the map cannot grow while one is open (so never hold one across
 * store_wait: a batch that needs a bigger map would wait for it). */
int store_read_begin(store *s, store_reader **out);
void store_read_end(store_reader *r);

/* Each callback returns 0 to go on, non-zero to stop (returned as is).
 * Records that do not decode are logged (to stderr, with their key) and
 * skipped. */
int store_each_exchange(store_reader *r, int (*fn)(const store_exchange *, void *), void *ctx);
int store_each_queue(store_reader *r, int (*fn)(const store_queue *, void *), void *ctx);
int store_each_binding(store_reader *r, int (*fn)(const store_binding *, void *), void *ctx);
/* Entries of one queue in seq order, starting at from_seq, at most max
 * (0 = no limit). */
int store_each_qentry(store_reader *r, uint64_t queue_id, uint64_t from_seq, size_t max,
                      int (*fn)(const store_qentry *, void *), void *ctx);
int store_get_message(store_reader *r, uint64_t id, store_message *out);

/* Every retained message, or every session, in no useful order (the order
 * of their hashed keys). The store_kv itself lives for the call only; the
 * bytes it points to borrow from the reader, as above. */
int store_each_retained(store_reader *r, int (*fn)(const store_kv *, void *), void *ctx);
int store_each_session(store_reader *r, int (*fn)(const store_kv *, void *), void *ctx);
/* One record by its vhost and name: 0 and *out filled (its bytes valid
 * until store_read_end), STORE_ENOTFOUND, or STORE_ECORRUPT /
 * STORE_EVERSION for a record that does not decode (logged). */
int store_get_retained(store_reader *r, store_bytes vhost, store_bytes topic, store_kv *out);
int store_get_session(store_reader *r, store_bytes vhost, store_bytes client_id,
                      store_kv *out);

/* Every vhost, user, permission or topic permission, in no useful order
 * (that of their hashed keys), with the rules of store_each_exchange:
 * a callback returning non-zero stops the walk and its value is
 * returned; an undecodable record is logged and skipped, one of a newer
 * format version stops the walk with STORE_EVERSION. The struct lives
 * for the call only; its bytes borrow from the reader. */
int store_each_vhost(store_reader *r, int (*fn)(const store_vhost *, void *), void *ctx);
int store_each_user(store_reader *r, int (*fn)(const store_user *, void *), void *ctx);
int store_each_permission(store_reader *r, int (*fn)(const store_permission *, void *),
                          void *ctx);
int store_each_topic_permission(store_reader *r,
                                int (*fn)(const store_topic_permission *, void *), void *ctx);

/* Every policy, or every operator policy, with the same rules. */
int store_each_policy(store_reader *r, int (*fn)(const store_policy *, void *), void *ctx);
int store_each_operator_policy(store_reader *r, int (*fn)(const store_policy *, void *),
                               void *ctx);

/* ---- start-up ----------------------------------------------------------------- */

/* Run once after store_open and before any write: deletes the qidx
 * entries of queues not in live[] (transient queues of the last run,
 * queues deleted in a crash) and entries flagged STORE_QE_TRANSIENT,
 * deletes messages no entry refers to, and builds the reference counts.
 * Synchronous. */
int store_recover(store *s, const uint64_t *live, size_t nlive);

/* Numbers for tests and the management API. */
typedef struct store_stats {
    uint64_t messages, qentries;   /* records now */
    uint64_t batches, commits;     /* since open */
    uint64_t cancelled, dropped;   /* since open: entry puts cancelled and message
                                    * puts dropped by a later write in their batch */
    size_t map_size;               /* current LMDB map size */
} store_stats;
void store_get_stats(store *s, store_stats *out);

#endif
