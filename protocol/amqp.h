/*
 * AMQP 0-9-1 wire format: frames, field tables, the method table and the
 * basic content properties, as RabbitMQ speaks them (0-9-1 errata included).
 *
 * This layer knows nothing of sockets or of the broker. Decoders distrust
 * their input and answer need-more, done or malformed; encoders are given a
 * buffer of the size they computed first and assert they stay inside it.
 *
 * Memory: decoded strings (amqp_bytes) borrow from the buffer that was
 * decoded and are valid as long as that buffer is. Arrays built while
 * decoding (table fields, array items) come from an amqp_pool the caller
 * passes and live until the pool is reset or freed.
 */
#ifndef CONEY_PROTOCOL_AMQP_H
#define CONEY_PROTOCOL_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- constants -------------------------------------------------------- */

#define AMQP_FRAME_METHOD 1
#define AMQP_FRAME_HEADER 2
#define AMQP_FRAME_BODY 3
#define AMQP_FRAME_HEARTBEAT 8
#define AMQP_FRAME_END 0xCE
#define AMQP_FRAME_HEADER_SIZE 7      /* type, channel, size */
#define AMQP_FRAME_OVERHEAD 8         /* header plus the frame-end octet */
#define AMQP_FRAME_MIN_SIZE 4096      /* smallest frame_max a peer may set */
#define AMQP_TABLE_MAX_DEPTH 32       /* nesting cap against hostile input */

/* Reply codes (AMQP 0-9-1 section 1.2 and RabbitMQ's use of them). */
enum amqp_reply_code {
    AMQP_REPLY_SUCCESS = 200,
    AMQP_CONTENT_TOO_LARGE = 311,
    AMQP_NO_ROUTE = 312,
    AMQP_NO_CONSUMERS = 313,
    AMQP_CONNECTION_FORCED = 320,
    AMQP_INVALID_PATH = 402,
    AMQP_ACCESS_REFUSED = 403,
    AMQP_NOT_FOUND = 404,
    AMQP_RESOURCE_LOCKED = 405,
    AMQP_PRECONDITION_FAILED = 406,
    AMQP_FRAME_ERROR = 501,
    AMQP_SYNTAX_ERROR = 502,
    AMQP_COMMAND_INVALID = 503,
    AMQP_CHANNEL_ERROR = 504,
    AMQP_UNEXPECTED_FRAME = 505,
    AMQP_RESOURCE_ERROR = 506,
    AMQP_NOT_ALLOWED = 530,
    AMQP_NOT_IMPLEMENTED = 540,
    AMQP_INTERNAL_ERROR = 541,
};

/* The reply code's name as RabbitMQ writes it in reply-text, e.g.
 * "NOT_FOUND". Static storage; "UNKNOWN" for codes not listed above. */
const char *amqp_reply_name(int code);

/* True for the codes that close the whole connection rather than a channel. */
bool amqp_reply_is_hard(int code);

/* Decoder results. Negative values are errors; see amqp_strerror. */
enum amqp_status {
    AMQP_OK = 0,
    AMQP_NEED_MORE = 1,
    AMQP_ERR_MALFORMED = -1,     /* truncated or inconsistent bytes: 501 */
    AMQP_ERR_FRAME_END = -2,     /* frame-end octet is not 0xCE: 501 */
    AMQP_ERR_FRAME_SIZE = -3,    /* frame larger than frame_max: 501 */
    AMQP_ERR_FRAME_TYPE = -4,    /* unknown frame type: 501 */
    AMQP_ERR_UNKNOWN_METHOD = -5,/* class/method id not in the table: 540 */
    AMQP_ERR_TABLE = -6,         /* bad field table (type, depth): 502 */
    AMQP_ERR_NOMEM = -7,         /* the pool's malloc failed: 541 */
};

const char *amqp_strerror(int status);

/* The connection-level reply code for a negative amqp_status. */
int amqp_status_reply_code(int status);

/* ---- memory pool for decoding ----------------------------------------- */

/* A chunked bump allocator. Everything allocated from it is freed together.
 * Zero-initialise (amqp_pool p = {0};) before first use. */
typedef struct amqp_pool {
    struct amqp_pool_chunk *head;
} amqp_pool;

/* Returns zeroed memory aligned for any scalar; NULL only if malloc fails. */
void *amqp_pool_alloc(amqp_pool *pool, size_t size);
/* Copies len bytes into the pool. */
void *amqp_pool_dup(amqp_pool *pool, const void *src, size_t len);
/* Makes the pool empty again, keeping one standard-size chunk for reuse and
 * freeing the rest. */
void amqp_pool_reset(amqp_pool *pool);
void amqp_pool_free(amqp_pool *pool);

/* ---- values and field tables ------------------------------------------ */

/* A byte string; not NUL-terminated. Borrowed unless stated otherwise. */
typedef struct amqp_bytes {
    const char *data;
    uint32_t len;
} amqp_bytes;

#define AMQP_BYTES_LIT(s) ((amqp_bytes){ (s), (uint32_t)(sizeof(s) - 1) })
amqp_bytes amqp_cstr(const char *s);
bool amqp_bytes_eq(amqp_bytes a, amqp_bytes b);
bool amqp_bytes_eq_cstr(amqp_bytes a, const char *s);

typedef struct amqp_value amqp_value;
typedef struct amqp_field amqp_field;

typedef struct amqp_table {
    uint32_t n;
    amqp_field *fields;          /* n entries, pool or static storage */
} amqp_table;

typedef struct amqp_array {
    uint32_t n;
    amqp_value *items;
} amqp_array;

/* kind is the wire type octet. Accepted on decode: t b B s u U I i l L f d
 * D S A T F V x (s and U are signed 16-bit, l and L signed 64-bit, as
 * RabbitMQ reads them). Encoded as RabbitMQ writes them (s, l). */
struct amqp_value {
    char kind;
    union {
        bool boolean;            /* t */
        int64_t i;               /* b s U I l L */
        uint64_t u;              /* B u i T (T: seconds since the epoch) */
        float f;                 /* f */
        double d;                /* d */
        struct { uint8_t scale; uint32_t value; } decimal;   /* D */
        amqp_bytes bytes;        /* S x */
        amqp_table table;        /* F */
        amqp_array array;        /* A */
    } v;
};

struct amqp_field {
    amqp_bytes key;
    amqp_value value;
};

/* Decodes a table at buf[*off], including its 4-byte length prefix, and
 * advances *off. Strings borrow from buf; arrays come from pool. Returns
 * AMQP_OK, AMQP_ERR_MALFORMED (truncated), AMQP_ERR_TABLE (unknown type
 * octet, nesting deeper than AMQP_TABLE_MAX_DEPTH) or AMQP_ERR_NOMEM (also
 * for a non-empty table when pool is NULL); *off is unchanged on error. */
int amqp_table_decode(const uint8_t *buf, size_t len, size_t *off,
                      amqp_table *out, amqp_pool *pool);
/* Encoded size of the table including its 4-byte length prefix. */
size_t amqp_table_size(const amqp_table *t);
/* Writes the table (with prefix) at out; returns bytes written, which is
 * amqp_table_size(t). out must have room for that many bytes. */
size_t amqp_table_encode(const amqp_table *t, uint8_t *out);

/* First field named key, or NULL. */
const amqp_value *amqp_table_get(const amqp_table *t, const char *key);
/* Typed equality as RabbitMQ compares header values: same kind and same
 * value; integers of different widths compare by value. */
bool amqp_value_eq(const amqp_value *a, const amqp_value *b);
/* Deep equality of two tables, field order significant as on the wire. */
bool amqp_table_eq(const amqp_table *a, const amqp_table *b);
/* Integer value of any integer kind; false if the value is not an integer. */
bool amqp_value_int(const amqp_value *v, int64_t *out);
/* Deep copy of t into pool, strings included. AMQP_OK or AMQP_ERR_NOMEM. */
int amqp_table_clone(const amqp_table *t, amqp_table *out, amqp_pool *pool);

/* ---- frames ----------------------------------------------------------- */

typedef struct amqp_frame {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload;      /* borrowed from the input buffer */
} amqp_frame;

/* Parses one frame at the start of buf. frame_max bounds the whole frame
 * (payload plus the 8 octets of overhead), as the spec defines it; 0 means
 * no bound. Returns AMQP_OK with *consumed set, AMQP_NEED_MORE, or a
 * negative amqp_status. Checks the size before the caller buffers more. */
int amqp_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max,
                     amqp_frame *out, size_t *consumed);

/* Writes the 7-octet frame header. */
void amqp_frame_header_write(uint8_t *out, uint8_t type, uint16_t channel,
                             uint32_t size);

/* The 8-octet protocol header "AMQP\0\0\x09\x01". */
extern const uint8_t AMQP_PROTOCOL_HEADER[8];

/* ---- methods ----------------------------------------------------------- */

#define AMQP_METHOD_ID(cls, m) (((uint32_t)(cls) << 16) | (uint32_t)(m))
#define AMQP_CLASS_OF(id) ((uint16_t)((id) >> 16))
#define AMQP_INDEX_OF(id) ((uint16_t)((id) & 0xffff))

enum {
    AMQP_CLASS_CONNECTION = 10,
    AMQP_CLASS_CHANNEL = 20,
    AMQP_CLASS_ACCESS = 30,
    AMQP_CLASS_EXCHANGE = 40,
    AMQP_CLASS_QUEUE = 50,
    AMQP_CLASS_BASIC = 60,
    AMQP_CLASS_CONFIRM = 85,
    AMQP_CLASS_TX = 90,
};

/*
 * AMQP_METHOD_LIST(X) lists every method: X(NAME, struct_member, class,
 * index, "wire.name"). Field layouts, flags and replies are in the per-class
 * files of protocol/ (see amqp_method_info_get); the structs below mirror
 * them.
 */
#define AMQP_METHOD_LIST(X) \
    X(CONNECTION_START,        connection_start,       10, 10, "connection.start") \
    X(CONNECTION_START_OK,     connection_start_ok,    10, 11, "connection.start-ok") \
    X(CONNECTION_SECURE,       connection_secure,      10, 20, "connection.secure") \
    X(CONNECTION_SECURE_OK,    connection_secure_ok,   10, 21, "connection.secure-ok") \
    X(CONNECTION_TUNE,         connection_tune,        10, 30, "connection.tune") \
    X(CONNECTION_TUNE_OK,      connection_tune_ok,     10, 31, "connection.tune-ok") \
    X(CONNECTION_OPEN,         connection_open,        10, 40, "connection.open") \
    X(CONNECTION_OPEN_OK,      connection_open_ok,     10, 41, "connection.open-ok") \
    X(CONNECTION_CLOSE,        connection_close,       10, 50, "connection.close") \
    X(CONNECTION_CLOSE_OK,     connection_close_ok,    10, 51, "connection.close-ok") \
    X(CONNECTION_BLOCKED,      connection_blocked,     10, 60, "connection.blocked") \
    X(CONNECTION_UNBLOCKED,    connection_unblocked,   10, 61, "connection.unblocked") \
    X(CONNECTION_UPDATE_SECRET, connection_update_secret, 10, 70, "connection.update-secret") \
    X(CONNECTION_UPDATE_SECRET_OK, connection_update_secret_ok, 10, 71, "connection.update-secret-ok") \
    X(CHANNEL_OPEN,            channel_open,           20, 10, "channel.open") \
    X(CHANNEL_OPEN_OK,         channel_open_ok,        20, 11, "channel.open-ok") \
    X(CHANNEL_FLOW,            channel_flow,           20, 20, "channel.flow") \
    X(CHANNEL_FLOW_OK,         channel_flow_ok,        20, 21, "channel.flow-ok") \
    X(CHANNEL_CLOSE,           channel_close,          20, 40, "channel.close") \
    X(CHANNEL_CLOSE_OK,        channel_close_ok,       20, 41, "channel.close-ok") \
    X(ACCESS_REQUEST,          access_request,         30, 10, "access.request") \
    X(ACCESS_REQUEST_OK,       access_request_ok,      30, 11, "access.request-ok") \
    X(EXCHANGE_DECLARE,        exchange_declare,       40, 10, "exchange.declare") \
    X(EXCHANGE_DECLARE_OK,     exchange_declare_ok,    40, 11, "exchange.declare-ok") \
    X(EXCHANGE_DELETE,         exchange_delete,        40, 20, "exchange.delete") \
    X(EXCHANGE_DELETE_OK,      exchange_delete_ok,     40, 21, "exchange.delete-ok") \
    X(EXCHANGE_BIND,           exchange_bind,          40, 30, "exchange.bind") \
    X(EXCHANGE_BIND_OK,        exchange_bind_ok,       40, 31, "exchange.bind-ok") \
    X(EXCHANGE_UNBIND,         exchange_unbind,        40, 40, "exchange.unbind") \
    X(EXCHANGE_UNBIND_OK,      exchange_unbind_ok,     40, 51, "exchange.unbind-ok") \
    X(QUEUE_DECLARE,           queue_declare,          50, 10, "queue.declare") \
    X(QUEUE_DECLARE_OK,        queue_declare_ok,       50, 11, "queue.declare-ok") \
    X(QUEUE_BIND,              queue_bind,             50, 20, "queue.bind") \
    X(QUEUE_BIND_OK,           queue_bind_ok,          50, 21, "queue.bind-ok") \
    X(QUEUE_PURGE,             queue_purge,            50, 30, "queue.purge") \
    X(QUEUE_PURGE_OK,          queue_purge_ok,         50, 31, "queue.purge-ok") \
    X(QUEUE_DELETE,            queue_delete,           50, 40, "queue.delete") \
    X(QUEUE_DELETE_OK,         queue_delete_ok,        50, 41, "queue.delete-ok") \
    X(QUEUE_UNBIND,            queue_unbind,           50, 50, "queue.unbind") \
    X(QUEUE_UNBIND_OK,         queue_unbind_ok,        50, 51, "queue.unbind-ok") \
    X(BASIC_QOS,               basic_qos,              60, 10, "basic.qos") \
    X(BASIC_QOS_OK,            basic_qos_ok,           60, 11, "basic.qos-ok") \
    X(BASIC_CONSUME,           basic_consume,          60, 20, "basic.consume") \
    X(BASIC_CONSUME_OK,        basic_consume_ok,       60, 21, "basic.consume-ok") \
    X(BASIC_CANCEL,            basic_cancel,           60, 30, "basic.cancel") \
    X(BASIC_CANCEL_OK,         basic_cancel_ok,        60, 31, "basic.cancel-ok") \
    X(BASIC_PUBLISH,           basic_publish,          60, 40, "basic.publish") \
    X(BASIC_RETURN,            basic_return,           60, 50, "basic.return") \
    X(BASIC_DELIVER,           basic_deliver,          60, 60, "basic.deliver") \
    X(BASIC_GET,               basic_get,              60, 70, "basic.get") \
    X(BASIC_GET_OK,            basic_get_ok,           60, 71, "basic.get-ok") \
    X(BASIC_GET_EMPTY,         basic_get_empty,        60, 72, "basic.get-empty") \
    X(BASIC_ACK,               basic_ack,              60, 80, "basic.ack") \
    X(BASIC_REJECT,            basic_reject,           60, 90, "basic.reject") \
    X(BASIC_RECOVER_ASYNC,     basic_recover_async,    60, 100, "basic.recover-async") \
    X(BASIC_RECOVER,           basic_recover,          60, 110, "basic.recover") \
    X(BASIC_RECOVER_OK,        basic_recover_ok,       60, 111, "basic.recover-ok") \
    X(BASIC_NACK,              basic_nack,             60, 120, "basic.nack") \
    X(CONFIRM_SELECT,          confirm_select,         85, 10, "confirm.select") \
    X(CONFIRM_SELECT_OK,       confirm_select_ok,      85, 11, "confirm.select-ok") \
    X(TX_SELECT,               tx_select,              90, 10, "tx.select") \
    X(TX_SELECT_OK,            tx_select_ok,           90, 11, "tx.select-ok") \
    X(TX_COMMIT,               tx_commit,              90, 20, "tx.commit") \
    X(TX_COMMIT_OK,            tx_commit_ok,           90, 21, "tx.commit-ok") \
    X(TX_ROLLBACK,             tx_rollback,            90, 30, "tx.rollback") \
    X(TX_ROLLBACK_OK,          tx_rollback_ok,         90, 31, "tx.rollback-ok")

#define AMQP_X_ENUM(NAME, member, cls, idx, wire) AMQP_##NAME = AMQP_METHOD_ID(cls, idx),
enum amqp_method_id { AMQP_METHOD_LIST(AMQP_X_ENUM) };
#undef AMQP_X_ENUM

/* Method argument structs. Field names follow the spec with '-' as '_'.
 * Strings borrow from the decoded frame. */
typedef struct { uint8_t version_major, version_minor; amqp_table server_properties; amqp_bytes mechanisms, locales; } amqp_connection_start;
typedef struct { amqp_table client_properties; amqp_bytes mechanism, response, locale; } amqp_connection_start_ok;
typedef struct { amqp_bytes challenge; } amqp_connection_secure;
typedef struct { amqp_bytes response; } amqp_connection_secure_ok;
typedef struct { uint16_t channel_max; uint32_t frame_max; uint16_t heartbeat; } amqp_connection_tune;
typedef amqp_connection_tune amqp_connection_tune_ok;
typedef struct { amqp_bytes virtual_host, reserved_1; bool reserved_2; } amqp_connection_open;
typedef struct { amqp_bytes reserved_1; } amqp_connection_open_ok;
typedef struct { uint16_t reply_code; amqp_bytes reply_text; uint16_t class_id, method_id; } amqp_connection_close;
typedef struct { char unused; } amqp_empty;
typedef amqp_empty amqp_connection_close_ok;
typedef struct { amqp_bytes reason; } amqp_connection_blocked;
typedef amqp_empty amqp_connection_unblocked;
typedef struct { amqp_bytes new_secret, reason; } amqp_connection_update_secret;
typedef amqp_empty amqp_connection_update_secret_ok;

typedef struct { amqp_bytes reserved_1; } amqp_channel_open;
typedef struct { amqp_bytes reserved_1; } amqp_channel_open_ok;     /* longstr */
typedef struct { bool active; } amqp_channel_flow;
typedef struct { bool active; } amqp_channel_flow_ok;
typedef amqp_connection_close amqp_channel_close;
typedef amqp_empty amqp_channel_close_ok;

typedef struct { amqp_bytes realm; bool exclusive, passive, active, write, read; } amqp_access_request;
typedef struct { uint16_t reserved_1; } amqp_access_request_ok;

typedef struct { uint16_t reserved_1; amqp_bytes exchange, type; bool passive, durable, auto_delete, internal, no_wait; amqp_table arguments; } amqp_exchange_declare;
typedef amqp_empty amqp_exchange_declare_ok;
typedef struct { uint16_t reserved_1; amqp_bytes exchange; bool if_unused, no_wait; } amqp_exchange_delete;
typedef amqp_empty amqp_exchange_delete_ok;
typedef struct { uint16_t reserved_1; amqp_bytes destination, source, routing_key; bool no_wait; amqp_table arguments; } amqp_exchange_bind;
typedef amqp_empty amqp_exchange_bind_ok;
typedef amqp_exchange_bind amqp_exchange_unbind;
typedef amqp_empty amqp_exchange_unbind_ok;

typedef struct { uint16_t reserved_1; amqp_bytes queue; bool passive, durable, exclusive, auto_delete, no_wait; amqp_table arguments; } amqp_queue_declare;
typedef struct { amqp_bytes queue; uint32_t message_count, consumer_count; } amqp_queue_declare_ok;
typedef struct { uint16_t reserved_1; amqp_bytes queue, exchange, routing_key; bool no_wait; amqp_table arguments; } amqp_queue_bind;
typedef amqp_empty amqp_queue_bind_ok;
typedef struct { uint16_t reserved_1; amqp_bytes queue; bool no_wait; } amqp_queue_purge;
typedef struct { uint32_t message_count; } amqp_queue_purge_ok;
typedef struct { uint16_t reserved_1; amqp_bytes queue; bool if_unused, if_empty, no_wait; } amqp_queue_delete;
typedef struct { uint32_t message_count; } amqp_queue_delete_ok;
typedef struct { uint16_t reserved_1; amqp_bytes queue, exchange, routing_key; amqp_table arguments; } amqp_queue_unbind;
typedef amqp_empty amqp_queue_unbind_ok;

typedef struct { uint32_t prefetch_size; uint16_t prefetch_count; bool global; } amqp_basic_qos;
typedef amqp_empty amqp_basic_qos_ok;
typedef struct { uint16_t reserved_1; amqp_bytes queue, consumer_tag; bool no_local, no_ack, exclusive, no_wait; amqp_table arguments; } amqp_basic_consume;
typedef struct { amqp_bytes consumer_tag; } amqp_basic_consume_ok;
typedef struct { amqp_bytes consumer_tag; bool no_wait; } amqp_basic_cancel;
typedef struct { amqp_bytes consumer_tag; } amqp_basic_cancel_ok;
typedef struct { uint16_t reserved_1; amqp_bytes exchange, routing_key; bool mandatory, immediate; } amqp_basic_publish;
typedef struct { uint16_t reply_code; amqp_bytes reply_text, exchange, routing_key; } amqp_basic_return;
typedef struct { amqp_bytes consumer_tag; uint64_t delivery_tag; bool redelivered; amqp_bytes exchange, routing_key; } amqp_basic_deliver;
typedef struct { uint16_t reserved_1; amqp_bytes queue; bool no_ack; } amqp_basic_get;
typedef struct { uint64_t delivery_tag; bool redelivered; amqp_bytes exchange, routing_key; uint32_t message_count; } amqp_basic_get_ok;
typedef struct { amqp_bytes reserved_1; } amqp_basic_get_empty;
typedef struct { uint64_t delivery_tag; bool multiple; } amqp_basic_ack;
typedef struct { uint64_t delivery_tag; bool requeue; } amqp_basic_reject;
typedef struct { bool requeue; } amqp_basic_recover_async;
typedef struct { bool requeue; } amqp_basic_recover;
typedef amqp_empty amqp_basic_recover_ok;
typedef struct { uint64_t delivery_tag; bool multiple, requeue; } amqp_basic_nack;

typedef struct { bool no_wait; } amqp_confirm_select;
typedef amqp_empty amqp_confirm_select_ok;
typedef amqp_empty amqp_tx_select;
typedef amqp_empty amqp_tx_select_ok;
typedef amqp_empty amqp_tx_commit;
typedef amqp_empty amqp_tx_commit_ok;
typedef amqp_empty amqp_tx_rollback;
typedef amqp_empty amqp_tx_rollback_ok;

/* A decoded method: id says which union member is valid. */
typedef struct amqp_method {
    uint32_t id;
    union {
#define AMQP_X_MEMBER(NAME, member, cls, idx, wire) amqp_##member member;
        AMQP_METHOD_LIST(AMQP_X_MEMBER)
#undef AMQP_X_MEMBER
    } a;
} amqp_method;

/* Method policy flags: protocol facts the broker's gate reads. */
enum amqp_method_flag {
    AMQP_MF_CONTENT = 1 << 0,      /* followed by a content header and body */
    AMQP_MF_SYNC = 1 << 1,         /* a synchronous request: expects reply */
    AMQP_MF_FROM_CLIENT = 1 << 2,  /* a client may send it to the server */
    AMQP_MF_FROM_SERVER = 1 << 3,  /* the server may send it to a client */
    AMQP_MF_NO_WAIT = 1 << 4,      /* has a no-wait bit that suppresses reply */
};

/* Field types of the method table. */
enum amqp_field_type {
    AMQP_FT_OCTET, AMQP_FT_SHORT, AMQP_FT_LONG, AMQP_FT_LONGLONG,
    AMQP_FT_SHORTSTR, AMQP_FT_LONGSTR, AMQP_FT_BIT, AMQP_FT_TABLE,
    AMQP_FT_TIMESTAMP,
};

typedef struct amqp_field_desc {
    const char *name;
    uint8_t type;                  /* enum amqp_field_type */
    uint16_t offset;               /* offsetof within amqp_method.a */
} amqp_field_desc;

typedef struct amqp_method_info {
    uint32_t id;
    const char *name;              /* "basic.publish" */
    uint16_t flags;                /* enum amqp_method_flag */
    uint32_t reply;                /* id of the -ok for AMQP_MF_SYNC, else 0 */
    uint8_t nfields;
    const amqp_field_desc *fields;
} amqp_method_info;

/* The row for id, or NULL for an unknown class/method. */
const amqp_method_info *amqp_method_info_get(uint32_t id);
/* "basic.publish" or "unknown". */
const char *amqp_method_name(uint32_t id);

/* Decodes a method frame payload (class id, method id, arguments).
 * Returns AMQP_OK, AMQP_ERR_UNKNOWN_METHOD, AMQP_ERR_MALFORMED (truncated;
 * trailing bytes after the last field are tolerated), AMQP_ERR_TABLE or
 * AMQP_ERR_NOMEM. Strings borrow from payload; tables' arrays come from
 * pool. */
int amqp_method_decode(const uint8_t *payload, size_t len, amqp_method *out,
                       amqp_pool *pool);
/* Encoded size of the method payload (class id and method id included). */
size_t amqp_method_size(const amqp_method *m);
/* Writes the payload at out; returns amqp_method_size(m). */
size_t amqp_method_encode(const amqp_method *m, uint8_t *out);
/* Size of a whole method frame: amqp_method_size + AMQP_FRAME_OVERHEAD. */
size_t amqp_method_frame_size(const amqp_method *m);
/* Writes a whole method frame (header, payload, frame-end); returns its size. */
size_t amqp_method_frame_encode(uint16_t channel, const amqp_method *m,
                                uint8_t *out);

/* ---- content header and basic properties ------------------------------ */

enum amqp_basic_flag {
    AMQP_BASIC_CONTENT_TYPE = 0x8000,
    AMQP_BASIC_CONTENT_ENCODING = 0x4000,
    AMQP_BASIC_HEADERS = 0x2000,
    AMQP_BASIC_DELIVERY_MODE = 0x1000,
    AMQP_BASIC_PRIORITY = 0x0800,
    AMQP_BASIC_CORRELATION_ID = 0x0400,
    AMQP_BASIC_REPLY_TO = 0x0200,
    AMQP_BASIC_EXPIRATION = 0x0100,
    AMQP_BASIC_MESSAGE_ID = 0x0080,
    AMQP_BASIC_TIMESTAMP = 0x0040,
    AMQP_BASIC_TYPE = 0x0020,
    AMQP_BASIC_USER_ID = 0x0010,
    AMQP_BASIC_APP_ID = 0x0008,
    AMQP_BASIC_CLUSTER_ID = 0x0004,
};

/* A content header frame payload. props borrow from the frame. */
typedef struct amqp_content_header {
    uint16_t class_id;
    uint16_t weight;
    uint64_t body_size;
    uint16_t flags;                /* first property-flags word */
    const uint8_t *props;          /* property list after the flags word(s) */
    uint32_t props_len;
} amqp_content_header;

/* Decodes a content header payload; AMQP_OK or AMQP_ERR_MALFORMED. */
int amqp_content_header_decode(const uint8_t *payload, size_t len,
                               amqp_content_header *out);

typedef struct amqp_basic_props {
    uint16_t flags;                /* which fields are present */
    amqp_bytes content_type, content_encoding;
    amqp_table headers;
    uint8_t delivery_mode, priority;
    amqp_bytes correlation_id, reply_to, expiration, message_id;
    uint64_t timestamp;
    amqp_bytes type, user_id, app_id, cluster_id;
} amqp_basic_props;

/* Decodes the property list (as in amqp_content_header.props) of the given
 * flags. Strings borrow from props; the headers table's arrays from pool. */
int amqp_props_decode(uint16_t flags, const uint8_t *props, size_t len,
                      amqp_basic_props *out, amqp_pool *pool);
/* Reads only delivery-mode and priority (0 when absent) from a property
 * list, skipping what precedes them by its lengths: no table is decoded,
 * nothing is allocated. For the publish path. AMQP_OK or
 * AMQP_ERR_MALFORMED. */
int amqp_props_peek(uint16_t flags, const uint8_t *props, size_t len,
                    uint8_t *delivery_mode, uint8_t *priority);
/* Encoded size of the property list for p->flags (without the flags word). */
size_t amqp_props_size(const amqp_basic_props *p);
/* Writes the property list; returns amqp_props_size(p). */
size_t amqp_props_encode(const amqp_basic_props *p, uint8_t *out);

/* Writes a content header frame whose property list is already encoded
 * (props, props_len, flags): header, class 60, weight 0, body size, flags,
 * props, frame-end. Returns its size, props_len + 14 + AMQP_FRAME_OVERHEAD. */
size_t amqp_header_frame_encode(uint16_t channel, uint64_t body_size,
                                uint16_t flags, const uint8_t *props,
                                uint32_t props_len, uint8_t *out);
#define AMQP_HEADER_FRAME_SIZE(props_len) ((size_t)(props_len) + 14 + AMQP_FRAME_OVERHEAD)

/* basic.deliver, the method frame of every delivery, written straight
 * rather than by walking the method table: the same bytes as
 * amqp_method_frame_encode (the unit tests compare them). */
#define AMQP_DELIVER_FRAME_SIZE(d) \
    (AMQP_FRAME_OVERHEAD + 4 + 1 + (size_t)(d)->consumer_tag.len + 8 + 1 + \
     1 + (size_t)(d)->exchange.len + 1 + (size_t)(d)->routing_key.len)
size_t amqp_deliver_frame_encode(uint16_t channel, const amqp_basic_deliver *d, uint8_t *out);

/* ---- big-endian helpers ------------------------------------------------ */

static inline uint16_t amqp_get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t amqp_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t amqp_get64(const uint8_t *p) { return ((uint64_t)amqp_get32(p) << 32) | amqp_get32(p + 4); }
static inline void amqp_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void amqp_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void amqp_put64(uint8_t *p, uint64_t v) { amqp_put32(p, (uint32_t)(v >> 32)); amqp_put32(p + 4, (uint32_t)v); }

#endif
