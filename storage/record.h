/*
 * Record encoding, private to storage/ (and its unit test).
 *
 * Every LMDB value is a small wire format (FORMAT.md is the reference):
 * a format version, a record type, then explicit-width big-endian fields,
 * strings length-prefixed. Encoders compute the size first and assert:
 * a value that does not fit its field is our bug. Decoders distrust: a
 * value from disk may be truncated, of another type or of a newer
 * version, and they say which without reading past the end.
 *
 * Meta keys are kind + SipHash-2-4-128 of the record's identity under a
 * per-environment random key, so a 255-byte vhost and a 255-byte name
 * (and a binding's args) never push a key past LMDB's 511 bytes. The
 * MQTT databases (retained, sessions) hold one record type each and key
 * it by the bare hash of (vhost, name): a topic or client id may be
 * 65535 bytes.
 */
#ifndef CONEY_STORAGE_RECORD_H
#define CONEY_STORAGE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

enum { REC_VERSION = 1 };

/* Record types: the second byte of every value. */
enum rec_type {
    REC_HASHKEY = 1,      /* meta, kind 0: the SipHash key of this env */
    REC_VHOST = 2,        /* meta kind 1 */
    REC_EXCHANGE = 3,
    REC_QUEUE = 4,
    REC_BINDING = 5,
    REC_USER = 6,         /* meta kind 5 */
    REC_PERMISSION = 7,   /* meta kind 6 */
    REC_TOPIC_PERMISSION = 8, /* meta kind 7 */
    REC_POLICY = 9,       /* meta kind 8 */
    REC_OPERATOR_POLICY = 10, /* meta kind 9 */
    REC_MESSAGE = 16,     /* msgs */
    REC_QENTRY = 17,      /* qidx */
    REC_RETAINED = 18,    /* retained */
    REC_SESSION = 19,     /* sessions */
};

/* The first byte of a meta key. 10.. are free. */
enum rec_kind {
    REC_KIND_STORE = 0,   /* the store's own records */
    REC_KIND_VHOST = 1,
    REC_KIND_EXCHANGE = 2,
    REC_KIND_QUEUE = 3,
    REC_KIND_BINDING = 4,
    REC_KIND_USER = 5,
    REC_KIND_PERMISSION = 6,
    REC_KIND_TOPIC_PERMISSION = 7,
    REC_KIND_POLICY = 8,
    REC_KIND_OPERATOR_POLICY = 9,
};

enum {
    REC_HASH_LEN = 16,
    REC_META_KEY_LEN = 1 + REC_HASH_LEN,
    REC_MSG_KEY_LEN = 8,
    REC_QE_KEY_LEN = 16,
    REC_KV_KEY_LEN = REC_HASH_LEN, /* retained, sessions: no kind byte */
    REC_QENTRY_LEN = 11,          /* version, type, msg id, flags */
    REC_HASHKEY_LEN = 2 + REC_HASH_LEN,
    REC_SHORT_MAX = 0xffff,       /* a u16-prefixed string */
};

/* The meta key of the hash key record: kind 0, then 0x01. */
extern const uint8_t rec_hashkey_key[2];

/* ---- big-endian helpers ------------------------------------------------ */

static inline void
rec_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
rec_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
rec_put_u64(uint8_t *p, uint64_t v)
{
    rec_put_u32(p, (uint32_t)(v >> 32));
    rec_put_u32(p + 4, (uint32_t)v);
}

static inline uint16_t
rec_get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
rec_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
rec_get_u64(const uint8_t *p)
{
    return (uint64_t)rec_get_u32(p) << 32 | rec_get_u32(p + 4);
}

/* ---- SipHash-2-4, 128-bit output ---------------------------------------- */

/* Incremental, so identities are hashed field by field without a copy. */
typedef struct rec_sip {
    uint64_t v0, v1, v2, v3;
    uint8_t tail[8];
    size_t ntail;
    uint64_t total;
} rec_sip;

void rec_sip_init(rec_sip *h, const uint8_t key[16]);
/* data is borrowed for the call only. */
void rec_sip_update(rec_sip *h, const void *data, size_t len);
/* Writes the reference byte order: the two 64-bit halves, little-endian. */
void rec_sip_final(rec_sip *h, uint8_t out[16]);

/* ---- keys ---------------------------------------------------------------- */

void rec_exchange_key(const uint8_t hkey[16], store_bytes vhost, store_bytes name,
                      uint8_t out[REC_META_KEY_LEN]);
void rec_queue_key(const uint8_t hkey[16], store_bytes vhost, store_bytes name,
                   uint8_t out[REC_META_KEY_LEN]);
void rec_binding_key(const uint8_t hkey[16], const store_binding *b,
                     uint8_t out[REC_META_KEY_LEN]);
/* Access control: a vhost and a user are named by their name alone, a
 * permission by (user, vhost), a topic permission by (user, vhost,
 * exchange). */
void rec_vhost_key(const uint8_t hkey[16], store_bytes name, uint8_t out[REC_META_KEY_LEN]);
void rec_user_key(const uint8_t hkey[16], store_bytes name, uint8_t out[REC_META_KEY_LEN]);
void rec_permission_key(const uint8_t hkey[16], store_bytes user, store_bytes vhost,
                        uint8_t out[REC_META_KEY_LEN]);
void rec_topic_permission_key(const uint8_t hkey[16], store_bytes user, store_bytes vhost,
                              store_bytes exchange, uint8_t out[REC_META_KEY_LEN]);
/* A policy or an operator policy (kind REC_KIND_POLICY or
 * REC_KIND_OPERATOR_POLICY): named by (vhost, name). */
void rec_policy_key(uint8_t kind, const uint8_t hkey[16], store_bytes vhost, store_bytes name,
                    uint8_t out[REC_META_KEY_LEN]);
void rec_qentry_key(uint64_t queue_id, uint64_t seq, uint8_t out[REC_QE_KEY_LEN]);
/* The key of a retained message (name = topic) or a session (name =
 * client id): the hash of vhost and name, the same input as a queue's. */
void rec_kv_key(const uint8_t hkey[16], store_bytes vhost, store_bytes name,
                uint8_t out[REC_KV_KEY_LEN]);

/* ---- values ---------------------------------------------------------------- */

/* Checks version and type: 0, STORE_EVERSION or STORE_ECORRUPT. */
int rec_check_header(const uint8_t *v, size_t len, enum rec_type type);

/* Sizes (exact) and encoders; out must hold the size. Fields longer than
 * their length prefix allows are a caller bug and assert. */
size_t rec_exchange_size(const store_exchange *x);
void rec_exchange_encode(const store_exchange *x, uint8_t *out);
size_t rec_queue_size(const store_queue *q);
void rec_queue_encode(const store_queue *q, uint8_t *out);
size_t rec_binding_size(const store_binding *b);
void rec_binding_encode(const store_binding *b, uint8_t *out);
size_t rec_message_size(const store_message *m);      /* m->id is the key, not here */
void rec_message_encode(const store_message *m, uint8_t *out);
void rec_qentry_encode(uint64_t msg_id, uint8_t flags, uint8_t out[REC_QENTRY_LEN]);
void rec_hashkey_encode(const uint8_t hkey[16], uint8_t out[REC_HASHKEY_LEN]);
/* Retained messages and sessions share one layout; type is REC_RETAINED
 * or REC_SESSION. */
size_t rec_kv_size(const store_kv *r);
void rec_kv_encode(enum rec_type type, const store_kv *r, uint8_t *out);
size_t rec_vhost_size(const store_vhost *h);
void rec_vhost_encode(const store_vhost *h, uint8_t *out);
size_t rec_user_size(const store_user *u);
void rec_user_encode(const store_user *u, uint8_t *out);
size_t rec_permission_size(const store_permission *p);
void rec_permission_encode(const store_permission *p, uint8_t *out);
size_t rec_topic_permission_size(const store_topic_permission *p);
void rec_topic_permission_encode(const store_topic_permission *p, uint8_t *out);
/* Policies and operator policies share one layout; type is REC_POLICY
 * or REC_OPERATOR_POLICY. */
size_t rec_policy_size(const store_policy *p);
void rec_policy_encode(enum rec_type type, const store_policy *p, uint8_t *out);

/* Decoders: 0, STORE_ECORRUPT or STORE_EVERSION. The store_bytes of out
 * borrow from v (so, in the store, from the read transaction). A value
 * must be consumed exactly: trailing bytes are corruption too. */
int rec_exchange_decode(const uint8_t *v, size_t len, store_exchange *out);
int rec_queue_decode(const uint8_t *v, size_t len, store_queue *out);
int rec_binding_decode(const uint8_t *v, size_t len, store_binding *out);
/* Fills everything but out->id, which is the key. */
int rec_message_decode(const uint8_t *v, size_t len, store_message *out);
/* Fills msg_id and flags; queue_id and seq are the key. */
int rec_qentry_decode(const uint8_t *v, size_t len, store_qentry *out);
int rec_hashkey_decode(const uint8_t *v, size_t len, uint8_t hkey[16]);
int rec_kv_decode(enum rec_type type, const uint8_t *v, size_t len, store_kv *out);
int rec_vhost_decode(const uint8_t *v, size_t len, store_vhost *out);
int rec_user_decode(const uint8_t *v, size_t len, store_user *out);
int rec_permission_decode(const uint8_t *v, size_t len, store_permission *out);
int rec_topic_permission_decode(const uint8_t *v, size_t len, store_topic_permission *out);
int rec_policy_decode(enum rec_type type, const uint8_t *v, size_t len, store_policy *out);

/* Logs a record that is being skipped: db name, key in hex, reason. */
void rec_log_bad(const char *db, const uint8_t *key, size_t klen, int err);

/* ---- test hook ------------------------------------------------------------- */

/* The named databases, in the order store_open opens them. */
enum rec_db { REC_DB_META, REC_DB_MSGS, REC_DB_QIDX, REC_DB_RETAINED, REC_DB_SESSIONS,
              REC_DB_COUNT };
/* Queues a raw put of key/value into db, bypassing the encoders and the
 * reference counts: for tests that place corrupt records. key and val are
 * copied before it returns. */
void store_put_raw(store *s, enum rec_db db, const uint8_t *key, size_t klen,
                   const uint8_t *val, size_t vlen);
/* The environment's SipHash key, for tests that compute meta keys. */
void store_hash_key(const store *s, uint8_t out[16]);

#endif
