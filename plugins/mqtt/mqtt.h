/*
 * MQTT 3.1, 3.1.1 and 5.0 wire format: packet framing, every control
 * packet a server receives or sends, MQTT 5 properties and reason codes,
 * topic names and filters, and their mapping onto AMQP topic keys.
 *
 * This codec knows nothing of sockets or of the broker; it needs only libc.
 * Decoders distrust their input and answer need-more, done, or a reason:
 * the MQTT 5 reason code the spec assigns to the fault, negated, so one
 * int carries both "failed" and "say this in the CONNACK/DISCONNECT".
 * Encoders are given a buffer of the size they computed first and assert
 * they stay inside it.
 *
 * Memory: nothing here allocates. Decoded strings, payloads and property
 * blocks (mqtt_str, raw spans) borrow from the frame's buffer and are valid
 * as long as that buffer is unchanged. Encoders read what their structs
 * point to and never keep it.
 */
#ifndef CONEY_PLUGINS_MQTT_MQTT_H
#define CONEY_PLUGINS_MQTT_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- versions, packet types, reason codes ------------------------------ */

/* The protocol level octet of CONNECT. */
typedef enum mqtt_version {
    MQTT_V31 = 3,                  /* "MQIsdp" */
    MQTT_V311 = 4,                 /* "MQTT" */
    MQTT_V5 = 5,                   /* "MQTT" */
} mqtt_version;

/* Control packet types, the high nibble of the first octet. 0 is reserved
 * and malformed on the wire; AUTH exists only in MQTT 5. */
enum mqtt_type {
    MQTT_CONNECT = 1, MQTT_CONNACK, MQTT_PUBLISH, MQTT_PUBACK, MQTT_PUBREC,
    MQTT_PUBREL, MQTT_PUBCOMP, MQTT_SUBSCRIBE, MQTT_SUBACK, MQTT_UNSUBSCRIBE,
    MQTT_UNSUBACK, MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT, MQTT_AUTH,
};

/* "PUBLISH", or "UNKNOWN" outside 1..15. Static storage. */
const char *mqtt_type_name(unsigned type);

/* MQTT 5 reason codes (section 2.4). 0x00 has three names by packet. */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_NORMAL_DISCONNECTION = 0x00,
    MQTT_RC_GRANTED_QOS0 = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* The spec's name, e.g. "Packet too large"; "Success" for 0x00 and
 * "Unknown" for codes the spec does not define. Static storage. */
const char *mqtt_reason_name(unsigned rc);

/* True if rc is one the spec lists for packets of this type (CONNACK,
 * PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH). The decoders use it
 * on what peers send; encoders assert it on what we send. */
bool mqtt_reason_allowed(unsigned type, unsigned rc);

/* MQTT 3.1/3.1.1 CONNACK return codes. */
enum mqtt_connack_return {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_REFUSED_PROTOCOL_VERSION = 1,
    MQTT_CONNACK_REFUSED_IDENTIFIER_REJECTED = 2,
    MQTT_CONNACK_REFUSED_SERVER_UNAVAILABLE = 3,
    MQTT_CONNACK_REFUSED_BAD_USERNAME_OR_PASSWORD = 4,
    MQTT_CONNACK_REFUSED_NOT_AUTHORIZED = 5,
};

/* The 3.1/3.1.1 return code closest to an MQTT 5 CONNACK reason, so the
 * session code can think in reason codes for every version: 0x84 -> 1,
 * 0x85 -> 2, 0x86 -> 4, 0x87 and 0x8A -> 5, any other failure -> 3. */
uint8_t mqtt_connack_return_code(unsigned reason);

/* Decoder results. Errors are negated reason codes; -status is the reason
 * an MQTT 5 peer should be given (CONNACK before CONNACK, DISCONNECT
 * after). A 3.1/3.1.1 peer is simply disconnected, except as noted for
 * MQTT_ERR_VERSION. */
enum mqtt_status {
    MQTT_NEED_MORE = 0,            /* framing only: read more, call again */
    MQTT_OK = 1,
    MQTT_ERR_MALFORMED = -MQTT_RC_MALFORMED,
    MQTT_ERR_PROTOCOL = -MQTT_RC_PROTOCOL_ERROR,
    MQTT_ERR_VERSION = -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
    MQTT_ERR_TOPIC_FILTER = -MQTT_RC_TOPIC_FILTER_INVALID,
    MQTT_ERR_TOPIC_NAME = -MQTT_RC_TOPIC_NAME_INVALID,
    MQTT_ERR_TOO_LARGE = -MQTT_RC_PACKET_TOO_LARGE,
    MQTT_ERR_TOPIC_ALIAS = -MQTT_RC_TOPIC_ALIAS_INVALID,   /* topic alias 0 */
};

/* "ok", "need more", or the reason name of -status. Static storage. */
const char *mqtt_strerror(int status);

/* ---- strings ----------------------------------------------------------- */

/* A byte string; not NUL-terminated. Borrowed: see the file comment. */
typedef struct mqtt_str {
    const uint8_t *p;
    uint32_t len;
} mqtt_str;

#define MQTT_STR(lit) ((mqtt_str){ (const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1) })
mqtt_str mqtt_str_cstr(const char *s);
bool mqtt_str_eq(mqtt_str a, mqtt_str b);

/* True if p[0..len) is well-formed UTF-8 as MQTT requires of every string
 * (section 1.5.4): no overlong forms, no surrogates (U+D800..U+DFFF), nothing
 * past U+10FFFF, and no U+0000. Decoders refuse such strings as malformed;
 * callers use it for a payload marked as UTF-8 (payload format 1, reason
 * 0x99 if false). */
bool mqtt_utf8_valid(const uint8_t *p, size_t len);

/* ---- framing ----------------------------------------------------------- */

#define MQTT_MAX_REMAINING 268435455u   /* four varint octets */
#define MQTT_MAX_VARINT 268435455u

/* One control packet located in a buffer. */
typedef struct mqtt_frame {
    uint8_t type;                  /* enum mqtt_type */
    uint8_t flags;                 /* low nibble of the first octet */
    const uint8_t *body;           /* variable header and payload, borrowed */
    uint32_t len;                  /* the remaining length */
} mqtt_frame;

/* Parses the packet at the start of buf. max_packet bounds the whole packet
 * (fixed header included), as MQTT 5's Maximum Packet Size does; 0 means no
 * bound. Returns MQTT_OK with *out and *consumed (the whole packet's size)
 * set; MQTT_NEED_MORE; MQTT_ERR_MALFORMED for packet type 0 or a remaining
 * length whose fourth octet has its continuation bit set; MQTT_ERR_TOO_LARGE
 * as soon as the fixed header is complete, before the body arrives, so a
 * caller never buffers toward a packet it will refuse. Non-minimal length
 * encodings are accepted. Flags are left to the per-packet decoders, which
 * know the version. Nothing is written on anything but MQTT_OK. */
int mqtt_frame_parse(const uint8_t *buf, size_t len, uint32_t max_packet,
                     mqtt_frame *out, size_t *consumed);

/* Decodes a variable byte integer at buf: MQTT_OK with *value and *used,
 * MQTT_NEED_MORE if buf ends inside it, MQTT_ERR_MALFORMED past 4 octets. */
int mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *value,
                       size_t *used);
/* Octets the minimal encoding of v takes (1..4); v <= MQTT_MAX_VARINT. */
size_t mqtt_varint_size(uint32_t v);
/* Writes the minimal encoding of v; returns mqtt_varint_size(v). */
size_t mqtt_varint_encode(uint32_t v, uint8_t *out);

/* Size of a whole packet whose remaining length is remaining: the fixed
 * header plus remaining. 0 if remaining exceeds MQTT_MAX_REMAINING, i.e.
 * the packet cannot be sent at all. Every *_size function below returns
 * this, so 0 always means "too large to encode". */
size_t mqtt_packet_size(size_t remaining);

/* ---- MQTT 5 properties ------------------------------------------------- */

enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_AVAILABLE = 0x28,
    MQTT_PROP_SUBID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_AVAILABLE = 0x2A,
};

/* The property reader and writer take a packet type to judge which
 * properties belong; the will properties of CONNECT are their own set and
 * use this pseudo type. */
#define MQTT_PROPS_WILL 0

/* Subscription identifiers one PUBLISH may carry (one per matching
 * subscription of the receiving client). */
#define MQTT_SUBIDS_MAX 32

/*
 * User properties, kept encoded so they can be forwarded verbatim and in
 * order. raw is a property block that holds them (after decoding: the
 * packet's whole property block, other properties interleaved); len is the
 * encoded size of the user property entries alone and count their number.
 * To build some: write entries with mqtt_user_prop_write into a buffer and
 * point raw at it with raw_len == len.
 */
typedef struct mqtt_user_props {
    const uint8_t *raw;            /* borrowed */
    uint32_t raw_len;
    uint32_t len;
    uint32_t count;
} mqtt_user_props;

/* Walks the user properties: start with *pos = 0; true with *key and
 * *value set (borrowed from raw) until there are no more. */
bool mqtt_user_props_next(const mqtt_user_props *u, uint32_t *pos,
                          mqtt_str *key, mqtt_str *value);
/* Writes the user property entries alone, in order: exactly u->len octets.
 * Use it to keep them past the life of the frame's buffer. */
void mqtt_user_props_copy(const mqtt_user_props *u, uint8_t *out);
/* Encoded size of one user property entry (identifier, key, value). */
size_t mqtt_user_prop_size(mqtt_str key, mqtt_str value);
/* Writes one entry; returns mqtt_user_prop_size. key and value must be
 * valid UTF-8 of at most 65535 octets. */
size_t mqtt_user_prop_write(uint8_t *out, mqtt_str key, mqtt_str value);

/*
 * A packet's properties. present has bit (1 << id) set for each property
 * that is present (see mqtt_props_has); zero-initialise, then set fields
 * and bits to encode. Subscription identifiers and user properties are
 * present by their counts: decoding sets their bits too, encoding looks at
 * n_subids and user.count only. Strings borrow from the frame.
 */
typedef struct mqtt_props {
    uint64_t present;
    uint8_t payload_format;        /* 0 bytes, 1 UTF-8 */
    uint8_t request_problem_info, request_response_info;
    uint8_t maximum_qos, retain_available, wildcard_available;
    uint8_t subid_available, shared_available;
    uint16_t receive_maximum, topic_alias_maximum, topic_alias;
    uint16_t server_keep_alive;
    uint32_t message_expiry, session_expiry, will_delay;
    uint32_t maximum_packet_size;
    mqtt_str content_type, response_topic, correlation_data;
    mqtt_str reason_string, auth_method, auth_data;
    mqtt_str assigned_client_id, response_info, server_reference;
    uint32_t subids[MQTT_SUBIDS_MAX];
    unsigned n_subids;
    mqtt_user_props user;
} mqtt_props;

#define MQTT_PROP_BIT(id) ((uint64_t)1 << (id))
static inline bool mqtt_props_has(const mqtt_props *p, unsigned id) { return (p->present & MQTT_PROP_BIT(id)) != 0; }
static inline void mqtt_props_set(mqtt_props *p, unsigned id) { p->present |= MQTT_PROP_BIT(id); }

/* True if property id may appear in packets of type (or MQTT_PROPS_WILL). */
bool mqtt_prop_allowed(unsigned id, unsigned type);

/* Encoded size of p's property section including its length prefix. */
size_t mqtt_props_size(const mqtt_props *p);
/* True if p would encode as a bare zero length, so a packet with a short
 * form may leave its properties out. */
static inline bool mqtt_props_empty(const mqtt_props *p) { return mqtt_props_size(p) == 1; }

/* ---- building blocks shared by the packet files ------------------------ */

/* A cursor over a packet body. Every read checks bounds; the first failure
 * is kept in err (a negative mqtt_status) and later reads return zeroes, so
 * a decoder reads a whole layout and checks err once. */
typedef struct mqtt_reader {
    const uint8_t *buf;
    uint32_t len, off;
    int err;
} mqtt_reader;

static inline mqtt_reader mqtt_reader_of(const mqtt_frame *f) { return (mqtt_reader){ f->body, f->len, 0, 0 }; }
/* The fixed-header flags a packet type must carry: 3.1.1 and 5 fix them
 * (MQTT-2.2.2-2), 3.1 left them unused and clients of its era vary. */
static inline bool mqtt_flags_ok(const mqtt_frame *f, mqtt_version v, uint8_t want) { return v == MQTT_V31 || f->flags == want; }
static inline uint32_t mqtt_reader_left(const mqtt_reader *r) { return r->len - r->off; }
/* Keeps the first error; returns err for convenience. */
int mqtt_reader_fail(mqtt_reader *r, int err);
uint8_t mqtt_read_u8(mqtt_reader *r);
uint16_t mqtt_read_u16(mqtt_reader *r);
uint32_t mqtt_read_u32(mqtt_reader *r);
uint32_t mqtt_read_varint(mqtt_reader *r);
/* A length-prefixed string checked with mqtt_utf8_valid. */
mqtt_str mqtt_read_utf8(mqtt_reader *r);
/* Length-prefixed binary data. */
mqtt_str mqtt_read_binary(mqtt_reader *r);
/* The property section (length prefix and properties) of a packet of the
 * given type: MQTT_ERR_MALFORMED for an unknown identifier, one not allowed
 * in this packet, a value of the wrong shape or a block overrunning the
 * packet; MQTT_ERR_PROTOCOL for a property repeated where the spec forbids
 * it or a value the spec rules out (a zero Receive Maximum, Maximum Packet
 * Size, Topic Alias or Subscription Identifier; a flag other than 0 or 1;
 * Maximum QoS above 1), and for more than MQTT_SUBIDS_MAX identifiers.
 * *out is zeroed first. */
void mqtt_props_read(mqtt_reader *r, unsigned type, mqtt_props *out);

/* A cursor for encoders; every write asserts it stays inside len. */
typedef struct mqtt_writer {
    uint8_t *buf;
    size_t len, off;
} mqtt_writer;

void mqtt_write_u8(mqtt_writer *w, uint8_t v);
void mqtt_write_u16(mqtt_writer *w, uint16_t v);
void mqtt_write_u32(mqtt_writer *w, uint32_t v);
void mqtt_write_varint(mqtt_writer *w, uint32_t v);
void mqtt_write_bytes(mqtt_writer *w, const void *p, size_t n);
/* Two-octet length prefix and the bytes (UTF-8 strings and binary data). */
void mqtt_write_str(mqtt_writer *w, mqtt_str s);
/* The property section of a packet of type: asserts every present property
 * is allowed there. */
void mqtt_props_write(mqtt_writer *w, const mqtt_props *p, unsigned type);
/* Starts a packet with this remaining length at out: writes the fixed
 * header and returns a writer over the whole packet (len is
 * mqtt_packet_size(remaining)) positioned at the body. An encoder ends by
 * asserting off == len. */
mqtt_writer mqtt_packet_begin(uint8_t *out, uint8_t type, uint8_t flags,
                              size_t remaining);

/* ---- CONNECT, CONNACK, PING, DISCONNECT, AUTH (connect.c) --------------- */

typedef struct mqtt_connect {
    mqtt_version version;          /* set as soon as it is read, see below */
    mqtt_str protocol_name;        /* "MQIsdp" or "MQTT" */
    uint8_t flags;                 /* the raw connect flags octet */
    bool clean_start;              /* Clean Session in 3.1/3.1.1 */
    uint16_t keep_alive;           /* seconds; 0 disables */
    mqtt_props props;              /* MQTT 5 */
    mqtt_str client_id;            /* may be empty: policy is the caller's */
    bool will;
    uint8_t will_qos;
    bool will_retain;
    mqtt_props will_props;         /* MQTT 5 */
    mqtt_str will_topic, will_payload;
    bool has_username, has_password;
    mqtt_str username, password;
} mqtt_connect;

/* Decodes CONNECT; the version comes from the packet. Returns MQTT_OK or:
 *  MQTT_ERR_VERSION  the name is "MQIsdp"/"MQTT" but the level is not 3 /
 *                    4 or 5; out->version holds the raw level. Answer a
 *                    CONNACK with return code 1 in the 3.1.1 form (0x84 in
 *                    the MQTT 5 form if the level byte was 5), then close.
 *  MQTT_ERR_PROTOCOL an unknown protocol name (close without CONNACK, as
 *                    3.1.1 section 3.1.2.1 allows); the password flag
 *                    without the user name flag before MQTT 5; Authentication
 *                    Data without Authentication Method; duplicate or
 *                    out-of-range properties.
 *  MQTT_ERR_MALFORMED flags other than 0 in the fixed header (3.1.1, 5),
 *                    the reserved connect flag set, Will QoS 3, Will QoS or
 *                    Will Retain set without the Will Flag, bad UTF-8,
 *                    truncation, or bytes left after the payload.
 *  MQTT_ERR_TOPIC_NAME a will topic that is empty or holds a wildcard.
 * For MQTT 5 failures after the version is known, a CONNACK with -status
 * may be sent before closing. The client identifier is not judged here:
 * empty or over-long identifiers are session policy (CONNACK 2 / 0x85). */
int mqtt_connect_decode(const mqtt_frame *f, mqtt_connect *out);
/* A client's CONNECT, for tests and fuzz seeds. version and the fields
 * above are used; flags is recomputed from them. */
size_t mqtt_connect_size(const mqtt_connect *c);
void mqtt_connect_encode(const mqtt_connect *c, uint8_t *out);

typedef struct mqtt_connack {
    bool session_present;          /* always sent as 0 in 3.1 */
    uint8_t code;                  /* 3.1/3.1.1 return code or MQTT 5 reason */
    mqtt_props props;              /* MQTT 5 */
} mqtt_connack;

size_t mqtt_connack_size(const mqtt_connack *c, mqtt_version v);
/* Writes exactly mqtt_connack_size octets. */
void mqtt_connack_encode(const mqtt_connack *c, mqtt_version v, uint8_t *out);
/* A client's view, for tests: MQTT_OK, MQTT_ERR_MALFORMED or
 * MQTT_ERR_PROTOCOL (a reason code CONNACK may not carry). */
int mqtt_connack_decode(const mqtt_frame *f, mqtt_version v, mqtt_connack *out);

/* PINGREQ and PINGRESP carry nothing. The decoders check flags (3.1.1, 5)
 * and an empty body: MQTT_OK or MQTT_ERR_MALFORMED. */
#define MQTT_PING_SIZE 2
int mqtt_pingreq_decode(const mqtt_frame *f, mqtt_version v);
int mqtt_pingresp_decode(const mqtt_frame *f, mqtt_version v);
/* Write MQTT_PING_SIZE octets. */
void mqtt_pingreq_encode(uint8_t *out);
void mqtt_pingresp_encode(uint8_t *out);

/* DISCONNECT: before MQTT 5 an empty packet (reason and props unused). In
 * MQTT 5 the reason (0x00 if the body is empty) and properties; a client's
 * Session Expiry Interval here is checked against CONNECT by the caller. */
typedef struct mqtt_disconnect {
    uint8_t reason;
    mqtt_props props;
} mqtt_disconnect;

/* MQTT_OK, MQTT_ERR_MALFORMED (flags, trailing bytes, bad properties) or
 * MQTT_ERR_PROTOCOL (a reason DISCONNECT may not carry, duplicates). */
int mqtt_disconnect_decode(const mqtt_frame *f, mqtt_version v,
                           mqtt_disconnect *out);
/* Uses the short forms where the spec allows them. */
size_t mqtt_disconnect_size(const mqtt_disconnect *d, mqtt_version v);
void mqtt_disconnect_encode(const mqtt_disconnect *d, mqtt_version v,
                            uint8_t *out);

/* AUTH (MQTT 5 only): reason 0x00, 0x18 or 0x19, and properties. Whether
 * the method matches the one in CONNECT is the caller's check. */
typedef struct mqtt_auth {
    uint8_t reason;
    mqtt_props props;
} mqtt_auth;

/* MQTT_OK, MQTT_ERR_MALFORMED (before MQTT 5, flags, bad properties) or
 * MQTT_ERR_PROTOCOL (other reasons, duplicates). */
int mqtt_auth_decode(const mqtt_frame *f, mqtt_version v, mqtt_auth *out);
size_t mqtt_auth_size(const mqtt_auth *a);
void mqtt_auth_encode(const mqtt_auth *a, uint8_t *out);

/* ---- PUBLISH and its acknowledgements (publish.c) ----------------------- */

typedef struct mqtt_publish {
    uint8_t qos;
    bool dup, retain;
    mqtt_str topic;                /* empty in MQTT 5 when a topic alias stands in */
    uint16_t packet_id;            /* QoS 1 and 2 only */
    mqtt_props props;              /* MQTT 5 */
    const uint8_t *payload;        /* the rest of the packet, borrowed */
    uint32_t payload_len;
} mqtt_publish;

/* Decodes PUBLISH. Returns MQTT_OK or:
 *  MQTT_ERR_MALFORMED QoS 3, DUP set on QoS 0 (3.1.1, 5), a truncated
 *                     header, bad UTF-8 or properties.
 *  MQTT_ERR_PROTOCOL  packet identifier 0 at QoS 1/2, an empty topic with
 *                     no topic alias, duplicates.
 *  MQTT_ERR_TOPIC_ALIAS topic alias 0.
 *  MQTT_ERR_TOPIC_NAME a wildcard in the topic name.
 * Resolving a topic alias (and refusing one above the negotiated maximum,
 * 0x94) is the session's work. A PUBLISH from a client must not carry
 * Subscription Identifiers (MQTT-3.3.4-6): the server refuses n_subids > 0
 * with a protocol error; the decoder accepts them so it can read a
 * server's PUBLISH too. */
int mqtt_publish_decode(const mqtt_frame *f, mqtt_version v, mqtt_publish *out);
/* Size of the whole packet, fixed header included; 0 if too large. */
size_t mqtt_publish_size(const mqtt_publish *p, mqtt_version v);
/* Writes exactly mqtt_publish_size octets. */
void mqtt_publish_encode(const mqtt_publish *p, mqtt_version v, uint8_t *out);

/* PUBACK, PUBREC, PUBREL and PUBCOMP share one layout. */
typedef struct mqtt_ack {
    uint8_t type;                  /* MQTT_PUBACK .. MQTT_PUBCOMP */
    uint16_t packet_id;
    uint8_t reason;                /* MQTT 5; 0x00 when absent */
    mqtt_props props;              /* MQTT 5 */
} mqtt_ack;

/* Decodes f (of type PUBACK..PUBCOMP) into out, out->type included.
 * MQTT_OK or MQTT_ERR_MALFORMED (fixed-header flags other than 0x2 for
 * PUBREL, 0 for the others, in 3.1.1 and 5; wrong length; bad properties)
 * or MQTT_ERR_PROTOCOL (packet id 0, a reason this type may not carry,
 * duplicates). The MQTT 5 short forms (no reason, no properties) read as
 * reason 0x00. */
int mqtt_ack_decode(const mqtt_frame *f, mqtt_version v, mqtt_ack *out);
/* Uses the shortest form the spec allows. */
size_t mqtt_ack_size(const mqtt_ack *a, mqtt_version v);
void mqtt_ack_encode(const mqtt_ack *a, mqtt_version v, uint8_t *out);

/* ---- SUBSCRIBE, UNSUBSCRIBE and their acks (subscribe.c) ---------------- */

enum mqtt_retain_handling {
    MQTT_RETAIN_SEND = 0,          /* send retained messages on subscribe */
    MQTT_RETAIN_SEND_IF_NEW = 1,   /* only if the subscription is new */
    MQTT_RETAIN_DONT_SEND = 2,
};

/* One topic filter and its options. */
typedef struct mqtt_sub_filter {
    mqtt_str filter;               /* borrowed; syntax not yet checked */
    uint8_t qos;                   /* maximum QoS */
    bool no_local, retain_as_published;      /* MQTT 5 */
    uint8_t retain_handling;       /* MQTT 5, enum mqtt_retain_handling */
} mqtt_sub_filter;

/* A decoded SUBSCRIBE. The filters stay encoded in the packet; walk them
 * with mqtt_subscribe_next, which cannot fail because decoding already
 * checked every one. */
typedef struct mqtt_subscribe {
    uint16_t packet_id;
    mqtt_props props;              /* MQTT 5: Subscription Identifier, user */
    const uint8_t *filters;        /* borrowed payload */
    uint32_t filters_len;
    uint32_t n_filters;            /* at least 1 */
} mqtt_subscribe;

/* Decodes SUBSCRIBE. Returns MQTT_OK or:
 *  MQTT_ERR_MALFORMED fixed-header flags other than 0x2 (3.1.1, 5), reserved
 *                     option bits set, QoS 3 before MQTT 5, bad UTF-8,
 *                     truncation.
 *  MQTT_ERR_PROTOCOL  packet id 0, no filters, QoS 3 or Retain Handling 3
 *                     in MQTT 5, No Local on a shared subscription, more
 *                     than one or a zero Subscription Identifier.
 * Filter syntax is judged per filter by the caller with
 * mqtt_topic_filter_check, so one bad filter fails in SUBACK (0x80 / 0x8F)
 * rather than killing the connection. */
int mqtt_subscribe_decode(const mqtt_frame *f, mqtt_version v,
                          mqtt_subscribe *out);
/* Walks the filters: start with *pos = 0; true with *out set until done. */
bool mqtt_subscribe_next(const mqtt_subscribe *s, uint32_t *pos,
                         mqtt_sub_filter *out);
/* A client's SUBSCRIBE from s->packet_id, s->props and filters[0..n), for
 * tests and fuzz seeds; s->filters is not used. */
size_t mqtt_subscribe_size(const mqtt_subscribe *s, const mqtt_sub_filter *filters,
                           uint32_t n, mqtt_version v);
void mqtt_subscribe_encode(const mqtt_subscribe *s, const mqtt_sub_filter *filters,
                           uint32_t n, mqtt_version v, uint8_t *out);

/* SUBACK: one code per filter, in order: the granted QoS 0..2 or a failure
 * (0x80 in 3.1.1; any MQTT 5 SUBACK reason). 3.1 has no failure code. */
typedef struct mqtt_suback {
    uint16_t packet_id;
    mqtt_props props;              /* MQTT 5: reason string, user */
    const uint8_t *codes;          /* borrowed */
    uint32_t n_codes;
} mqtt_suback;

size_t mqtt_suback_size(const mqtt_suback *s, mqtt_version v);
void mqtt_suback_encode(const mqtt_suback *s, mqtt_version v, uint8_t *out);
/* A client's view, for tests: MQTT_OK, MQTT_ERR_MALFORMED or MQTT_ERR_PROTOCOL. */
int mqtt_suback_decode(const mqtt_frame *f, mqtt_version v, mqtt_suback *out);

/* A decoded UNSUBSCRIBE; walk its filters with mqtt_unsubscribe_next. */
typedef struct mqtt_unsubscribe {
    uint16_t packet_id;
    mqtt_props props;              /* MQTT 5: user properties */
    const uint8_t *filters;        /* borrowed payload */
    uint32_t filters_len;
    uint32_t n_filters;            /* at least 1 */
} mqtt_unsubscribe;

/* MQTT_OK, MQTT_ERR_MALFORMED (flags other than 0x2 in 3.1.1 and 5, bad
 * UTF-8, truncation) or MQTT_ERR_PROTOCOL (packet id 0, no filters). */
int mqtt_unsubscribe_decode(const mqtt_frame *f, mqtt_version v,
                            mqtt_unsubscribe *out);
bool mqtt_unsubscribe_next(const mqtt_unsubscribe *u, uint32_t *pos,
                           mqtt_str *filter);
/* A client's UNSUBSCRIBE, for tests; u->filters is not used. */
size_t mqtt_unsubscribe_size(const mqtt_unsubscribe *u, const mqtt_str *filters,
                             uint32_t n, mqtt_version v);
void mqtt_unsubscribe_encode(const mqtt_unsubscribe *u, const mqtt_str *filters,
                             uint32_t n, mqtt_version v, uint8_t *out);

/* UNSUBACK: before MQTT 5 the packet id alone; in MQTT 5 one reason per
 * filter (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91) and properties. */
typedef struct mqtt_unsuback {
    uint16_t packet_id;
    mqtt_props props;
    const uint8_t *codes;          /* borrowed; MQTT 5 only */
    uint32_t n_codes;
} mqtt_unsuback;

size_t mqtt_unsuback_size(const mqtt_unsuback *u, mqtt_version v);
void mqtt_unsuback_encode(const mqtt_unsuback *u, mqtt_version v, uint8_t *out);
int mqtt_unsuback_decode(const mqtt_frame *f, mqtt_version v, mqtt_unsuback *out);

/* ---- topics (topic.c) --------------------------------------------------- */

/* A topic name a PUBLISH may carry: MQTT_OK; MQTT_ERR_TOPIC_NAME if empty or
 * if it holds '+' or '#'; MQTT_ERR_MALFORMED if not valid UTF-8 (U+0000
 * included) or longer than 65535 octets. */
int mqtt_topic_name_check(mqtt_str topic);
/* How many '/'-separated levels s has: one more than its separators
 * (empty levels count). */
uint32_t mqtt_topic_levels(mqtt_str s);
/* True if s has more than max levels; looks at the bytes only when s is
 * long enough to have them (at most len + 1 levels), so the common short
 * topic costs a comparison. */
static inline bool
mqtt_topic_levels_over(mqtt_str s, uint32_t max)
{
    return s.len >= max && mqtt_topic_levels(s) > max;
}

/* A topic filter: non-empty, '#' only as the whole last level, '+' only as
 * a whole level. MQTT_OK, MQTT_ERR_TOPIC_FILTER, or MQTT_ERR_MALFORMED for
 * bad UTF-8. A shared filter is judged as it stands; see
 * mqtt_topic_share_parse for the $share rules. */
int mqtt_topic_filter_check(mqtt_str filter);

/* Splits an MQTT 5 shared subscription "$share/{group}/{filter}". MQTT_OK
 * with *group set (len 0 when f is not shared, and f is then not judged at
 * all) and *filter the filter to match with (f itself when not shared);
 * MQTT_ERR_TOPIC_FILTER when f starts with "$share/" but the group is empty
 * or holds a wildcard, or no valid filter follows it (MQTT_ERR_MALFORMED if
 * that filter is not UTF-8). Both outputs borrow from f. Whether "$share/"
 * means anything before MQTT 5 is the caller's policy. */
int mqtt_topic_share_parse(mqtt_str f, mqtt_str *group, mqtt_str *filter);

/* True if topic name `topic` matches the (valid) filter: '+' matches one
 * level (possibly empty), a last '#' matches the parent level and any
 * number below it, and a topic starting with '$' is never matched by a
 * filter starting with a wildcard (MQTT-4.7.2-1). */
bool mqtt_topic_match(mqtt_str filter, mqtt_str topic);

/*
 * The mapping onto amq.topic, as RabbitMQ's MQTT plugin makes it: MQTT's
 * level separator '/' and AMQP's '.' swap places, so MQTT "a/b.c" is AMQP
 * "a.b/c" and back; in filters '+' becomes '*' and '#' stays '#'. Lengths
 * never change: each function writes exactly len octets to out (which may
 * not overlap in). The mapping inherits RabbitMQ's blind spots: a literal
 * '*' in an MQTT filter becomes an AMQP wildcard, and an AMQP routing key
 * holding '+' or '#' yields a topic that mqtt_topic_name_check refuses.
 */
void mqtt_topic_to_amqp(const uint8_t *in, size_t len, char *out);
void mqtt_filter_to_amqp(const uint8_t *in, size_t len, char *out);
void mqtt_topic_from_amqp(const char *in, size_t len, uint8_t *out);

#endif
