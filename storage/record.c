/*
 * Keys and values of the store's records (FORMAT.md is the reference).
 *
 * The encoders here and the byte layouts in FORMAT.md and
 * tests/unit/fixtures/ must move together: a change to a layout is a new
 * format version, never an edit in place.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "storage/record.h"

const uint8_t rec_hashkey_key[2] = { REC_KIND_STORE, 0x01 };

/* ---- SipHash-2-4-128 ------------------------------------------------------
 * Written from the description in Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", with the 128-bit output variant of the reference
 * distribution (v1 ^= 0xee at start, v2 ^= 0xee then v1 ^= 0xdd in the
 * finalization). */

static inline uint64_t
rotl(uint64_t x, unsigned b)
{
    return x << b | x >> (64 - b);
}

static inline uint64_t
le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
sip_round(rec_sip *h)
{
    h->v0 += h->v1; h->v1 = rotl(h->v1, 13); h->v1 ^= h->v0; h->v0 = rotl(h->v0, 32);
    h->v2 += h->v3; h->v3 = rotl(h->v3, 16); h->v3 ^= h->v2;
    h->v0 += h->v3; h->v3 = rotl(h->v3, 21); h->v3 ^= h->v0;
    h->v2 += h->v1; h->v1 = rotl(h->v1, 17); h->v1 ^= h->v2; h->v2 = rotl(h->v2, 32);
}

static void
sip_word(rec_sip *h, uint64_t m)
{
    h->v3 ^= m;
    sip_round(h);           /* c = 2 compression rounds */
    sip_round(h);
    h->v0 ^= m;
}

void
rec_sip_init(rec_sip *h, const uint8_t key[16])
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    h->v0 = k0 ^ 0x736f6d6570736575ULL;   /* "somepseu" */
    h->v1 = k1 ^ 0x646f72616e646f6dULL ^ 0xee;   /* "dorandom", 128-bit */
    h->v2 = k0 ^ 0x6c7967656e657261ULL;   /* "lygenera" */
    h->v3 = k1 ^ 0x7465646279746573ULL;   /* "tedbytes" */
    h->ntail = 0;
    h->total = 0;
}

void
rec_sip_update(rec_sip *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h->total += len;
    if (h->ntail > 0) {
        while (len > 0 && h->ntail < 8) {
            h->tail[h->ntail++] = *p++;
            len--;
        }
        if (h->ntail < 8)
            return;
        sip_word(h, le64(h->tail));
        h->ntail = 0;
    }
    for (; len >= 8; p += 8, len -= 8)
        sip_word(h, le64(p));
    memcpy(h->tail, p, len);
    h->ntail = len;
}

static uint64_t
sip_out(rec_sip *h)
{
    for (int i = 0; i < 4; i++)   /* d = 4 finalization rounds */
        sip_round(h);
    return h->v0 ^ h->v1 ^ h->v2 ^ h->v3;
}

void
rec_sip_final(rec_sip *h, uint8_t out[16])
{
    uint8_t last[8] = { 0 };
    memcpy(last, h->tail, h->ntail);
    last[7] = (uint8_t)h->total;     /* the length mod 256 in the top byte */
    sip_word(h, le64(last));
    h->v2 ^= 0xee;
    uint64_t a = sip_out(h);
    h->v1 ^= 0xdd;
    uint64_t b = sip_out(h);
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(a >> (8 * i));
        out[8 + i] = (uint8_t)(b >> (8 * i));
    }
}

/* ---- keys ------------------------------------------------------------------ */

/* Every hashed field carries a u32 length, so ("ab","c") and ("a","bc")
 * hash different inputs. */
static void
sip_field(rec_sip *h, store_bytes b)
{
    uint8_t len[4];
    rec_put_u32(len, b.len);
    rec_sip_update(h, len, 4);
    if (b.len > 0)
        rec_sip_update(h, b.data, b.len);
}

static void
name_key(uint8_t kind, const uint8_t hkey[16], store_bytes vhost, store_bytes name,
         uint8_t out[REC_META_KEY_LEN])
{
    rec_sip h;
    rec_sip_init(&h, hkey);
    sip_field(&h, vhost);
    sip_field(&h, name);
    out[0] = kind;
    rec_sip_final(&h, out + 1);
}

void
rec_exchange_key(const uint8_t hkey[16], store_bytes vhost, store_bytes name,
                 uint8_t out[REC_META_KEY_LEN])
{
    name_key(REC_KIND_EXCHANGE, hkey, vhost, name, out);
}

void
rec_queue_key(const uint8_t hkey[16], store_bytes vhost, store_bytes name,
              uint8_t out[REC_META_KEY_LEN])
{
    name_key(REC_KIND_QUEUE, hkey, vhost, name, out);
}

void
rec_binding_key(const uint8_t hkey[16], const store_binding *b, uint8_t out[REC_META_KEY_LEN])
{
    rec_sip h;
    rec_sip_init(&h, hkey);
    sip_field(&h, b->vhost);
    sip_field(&h, b->source);
    rec_sip_update(&h, &b->dest_kind, 1);
    sip_field(&h, b->dest);
    sip_field(&h, b->key);
    sip_field(&h, b->args);
    out[0] = REC_KIND_BINDING;
    rec_sip_final(&h, out + 1);
}

/* Access control records: the identity's fields in order, as above. */
static void
fields_key(uint8_t kind, const uint8_t hkey[16], const store_bytes *f, size_t n,
           uint8_t out[REC_META_KEY_LEN])
{
    rec_sip h;
    rec_sip_init(&h, hkey);
    for (size_t i = 0; i < n; i++)
        sip_field(&h, f[i]);
    out[0] = kind;
    rec_sip_final(&h, out + 1);
}

void
rec_vhost_key(const uint8_t hkey[16], store_bytes name, uint8_t out[REC_META_KEY_LEN])
{
    fields_key(REC_KIND_VHOST, hkey, &name, 1, out);
}

void
rec_user_key(const uint8_t hkey[16], store_bytes name, uint8_t out[REC_META_KEY_LEN])
{
    fields_key(REC_KIND_USER, hkey, &name, 1, out);
}

void
rec_permission_key(const uint8_t hkey[16], store_bytes user, store_bytes vhost,
                   uint8_t out[REC_META_KEY_LEN])
{
    store_bytes f[2] = { user, vhost };
    fields_key(REC_KIND_PERMISSION, hkey, f, 2, out);
}

void
rec_topic_permission_key(const uint8_t hkey[16], store_bytes user, store_bytes vhost,
                         store_bytes exchange, uint8_t out[REC_META_KEY_LEN])
{
    store_bytes f[3] = { user, vhost, exchange };
    fields_key(REC_KIND_TOPIC_PERMISSION, hkey, f, 3, out);
}

void
rec_policy_key(uint8_t kind, const uint8_t hkey[16], store_bytes vhost, store_bytes name,
               uint8_t out[REC_META_KEY_LEN])
{
    assert(kind == REC_KIND_POLICY || kind == REC_KIND_OPERATOR_POLICY);
    store_bytes f[2] = { vhost, name };
    fields_key(kind, hkey, f, 2, out);
}

void
rec_qentry_key(uint64_t queue_id, uint64_t seq, uint8_t out[REC_QE_KEY_LEN])
{
    rec_put_u64(out, queue_id);
    rec_put_u64(out + 8, seq);
}

/* No kind byte: each of retained and sessions holds one record type, and
 * the db already tells them apart. */
void
rec_kv_key(const uint8_t hkey[16], store_bytes vhost, store_bytes name,
           uint8_t out[REC_KV_KEY_LEN])
{
    rec_sip h;
    rec_sip_init(&h, hkey);
    sip_field(&h, vhost);
    sip_field(&h, name);
    rec_sip_final(&h, out);
}

/* ---- encoding ----------------------------------------------------------------
 * The writer asserts instead of checking: sizes were computed first. */

typedef struct wr {
    uint8_t *p;
    size_t off;
} wr;

static void
wr_u8(wr *w, uint8_t v)
{
    w->p[w->off++] = v;
}

static void
wr_u16(wr *w, uint16_t v)
{
    rec_put_u16(w->p + w->off, v);
    w->off += 2;
}

static void
wr_u64(wr *w, uint64_t v)
{
    rec_put_u64(w->p + w->off, v);
    w->off += 8;
}

/* Two's complement in a u64. */
static void
wr_i64(wr *w, int64_t v)
{
    wr_u64(w, (uint64_t)v);
}

static void
wr_short(wr *w, store_bytes b)
{
    assert(b.len <= REC_SHORT_MAX);
    wr_u16(w, (uint16_t)b.len);
    if (b.len > 0)
        memcpy(w->p + w->off, b.data, b.len);
    w->off += b.len;
}

static void
wr_long(wr *w, store_bytes b)
{
    rec_put_u32(w->p + w->off, b.len);
    w->off += 4;
    if (b.len > 0)
        memcpy(w->p + w->off, b.data, b.len);
    w->off += b.len;
}

static void
wr_header(wr *w, enum rec_type t)
{
    wr_u8(w, REC_VERSION);
    wr_u8(w, (uint8_t)t);
}

#define SHORT(b) (2 + (size_t)(b).len)
#define LONG(b) (4 + (size_t)(b).len)

size_t
rec_exchange_size(const store_exchange *x)
{
    return 2 + SHORT(x->vhost) + SHORT(x->name) + 1 + 1 + LONG(x->args);
}

void
rec_exchange_encode(const store_exchange *x, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_EXCHANGE);
    wr_short(&w, x->vhost);
    wr_short(&w, x->name);
    wr_u8(&w, x->type);
    wr_u8(&w, x->flags);
    wr_long(&w, x->args);
    assert(w.off == rec_exchange_size(x));
}

size_t
rec_queue_size(const store_queue *q)
{
    return 2 + SHORT(q->vhost) + SHORT(q->name) + 8 + 1 + LONG(q->args);
}

void
rec_queue_encode(const store_queue *q, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_QUEUE);
    wr_short(&w, q->vhost);
    wr_short(&w, q->name);
    wr_u64(&w, q->id);
    wr_u8(&w, q->flags);
    wr_long(&w, q->args);
    assert(w.off == rec_queue_size(q));
}

size_t
rec_binding_size(const store_binding *b)
{
    return 2 + SHORT(b->vhost) + SHORT(b->source) + 1 + SHORT(b->dest) + SHORT(b->key)
           + LONG(b->args);
}

void
rec_binding_encode(const store_binding *b, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_BINDING);
    wr_short(&w, b->vhost);
    wr_short(&w, b->source);
    wr_u8(&w, b->dest_kind);
    wr_short(&w, b->dest);
    wr_short(&w, b->key);
    wr_long(&w, b->args);
    assert(w.off == rec_binding_size(b));
}

size_t
rec_message_size(const store_message *m)
{
    return 2 + 2 + SHORT(m->exchange) + SHORT(m->routing_key) + LONG(m->props)
           + LONG(m->body);
}

void
rec_message_encode(const store_message *m, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_MESSAGE);
    wr_u16(&w, m->prop_flags);
    wr_short(&w, m->exchange);
    wr_short(&w, m->routing_key);
    wr_long(&w, m->props);
    wr_long(&w, m->body);
    assert(w.off == rec_message_size(m));
}

void
rec_qentry_encode(uint64_t msg_id, uint8_t flags, uint8_t out[REC_QENTRY_LEN])
{
    wr w = { out, 0 };
    wr_header(&w, REC_QENTRY);
    wr_u64(&w, msg_id);
    wr_u8(&w, flags);
    assert(w.off == REC_QENTRY_LEN);
}

void
rec_hashkey_encode(const uint8_t hkey[16], uint8_t out[REC_HASHKEY_LEN])
{
    out[0] = REC_VERSION;
    out[1] = REC_HASHKEY;
    memcpy(out + 2, hkey, 16);
}

size_t
rec_kv_size(const store_kv *r)
{
    return 2 + SHORT(r->vhost) + SHORT(r->name) + LONG(r->data);
}

void
rec_kv_encode(enum rec_type type, const store_kv *r, uint8_t *out)
{
    assert(type == REC_RETAINED || type == REC_SESSION);
    wr w = { out, 0 };
    wr_header(&w, type);
    wr_short(&w, r->vhost);
    wr_short(&w, r->name);
    wr_long(&w, r->data);
    assert(w.off == rec_kv_size(r));
}

size_t
rec_vhost_size(const store_vhost *h)
{
    return 2 + SHORT(h->name) + LONG(h->description) + LONG(h->tags) + 1
           + SHORT(h->default_queue_type) + 8 + 8;
}

void
rec_vhost_encode(const store_vhost *h, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_VHOST);
    wr_short(&w, h->name);
    wr_long(&w, h->description);
    wr_long(&w, h->tags);
    wr_u8(&w, h->flags);
    wr_short(&w, h->default_queue_type);
    wr_i64(&w, h->max_connections);
    wr_i64(&w, h->max_queues);
    assert(w.off == rec_vhost_size(h));
}

size_t
rec_user_size(const store_user *u)
{
    return 2 + SHORT(u->name) + SHORT(u->password_hash) + 1 + LONG(u->tags) + 8 + 8;
}

void
rec_user_encode(const store_user *u, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_USER);
    wr_short(&w, u->name);
    wr_short(&w, u->password_hash);
    wr_u8(&w, u->hash_algo);
    wr_long(&w, u->tags);
    wr_i64(&w, u->max_connections);
    wr_i64(&w, u->max_channels);
    assert(w.off == rec_user_size(u));
}

size_t
rec_permission_size(const store_permission *p)
{
    return 2 + SHORT(p->user) + SHORT(p->vhost) + LONG(p->configure) + LONG(p->write)
           + LONG(p->read);
}

void
rec_permission_encode(const store_permission *p, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_PERMISSION);
    wr_short(&w, p->user);
    wr_short(&w, p->vhost);
    wr_long(&w, p->configure);
    wr_long(&w, p->write);
    wr_long(&w, p->read);
    assert(w.off == rec_permission_size(p));
}

size_t
rec_topic_permission_size(const store_topic_permission *p)
{
    return 2 + SHORT(p->user) + SHORT(p->vhost) + SHORT(p->exchange) + LONG(p->write)
           + LONG(p->read);
}

void
rec_topic_permission_encode(const store_topic_permission *p, uint8_t *out)
{
    wr w = { out, 0 };
    wr_header(&w, REC_TOPIC_PERMISSION);
    wr_short(&w, p->user);
    wr_short(&w, p->vhost);
    wr_short(&w, p->exchange);
    wr_long(&w, p->write);
    wr_long(&w, p->read);
    assert(w.off == rec_topic_permission_size(p));
}

size_t
rec_policy_size(const store_policy *p)
{
    return 2 + SHORT(p->vhost) + SHORT(p->name) + LONG(p->pattern) + SHORT(p->apply_to) + 8
           + LONG(p->definition);
}

void
rec_policy_encode(enum rec_type type, const store_policy *p, uint8_t *out)
{
    assert(type == REC_POLICY || type == REC_OPERATOR_POLICY);
    wr w = { out, 0 };
    wr_header(&w, type);
    wr_short(&w, p->vhost);
    wr_short(&w, p->name);
    wr_long(&w, p->pattern);
    wr_short(&w, p->apply_to);
    wr_i64(&w, p->priority);
    wr_long(&w, p->definition);
    assert(w.off == rec_policy_size(p));
}

/* ---- decoding ------------------------------------------------------------------
 * The reader never moves past len: every check is written as
 * "need <= len - off", which cannot overflow since off <= len. A failed
 * read sets bad and yields zeros, so a decoder checks once at the end. */

typedef struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} rd;

static bool
rd_has(rd *r, size_t need)
{
    if (r->bad || need > r->len - r->off) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t
rd_u8(rd *r)
{
    if (!rd_has(r, 1))
        return 0;
    return r->p[r->off++];
}

static uint16_t
rd_u16(rd *r)
{
    if (!rd_has(r, 2))
        return 0;
    uint16_t v = rec_get_u16(r->p + r->off);
    r->off += 2;
    return v;
}

static uint64_t
rd_u64(rd *r)
{
    if (!rd_has(r, 8))
        return 0;
    uint64_t v = rec_get_u64(r->p + r->off);
    r->off += 8;
    return v;
}

/* Two's complement from a u64, without relying on the conversion of an
 * out-of-range unsigned value. */
static int64_t
rd_i64(rd *r)
{
    uint64_t u = rd_u64(r);
    if (u <= (uint64_t)INT64_MAX)
        return (int64_t)u;
    return -(int64_t)(~u) - 1;
}

static store_bytes
rd_bytes(rd *r, size_t n)
{
    store_bytes b = { NULL, 0 };
    if (!rd_has(r, n))
        return b;
    b.data = r->p + r->off;
    b.len = (uint32_t)n;
    r->off += n;
    return b;
}

static store_bytes
rd_short(rd *r)
{
    size_t n = rd_u16(r);
    return rd_bytes(r, n);
}

static store_bytes
rd_long(rd *r)
{
    if (!rd_has(r, 4)) {
        store_bytes none = { NULL, 0 };
        return none;
    }
    size_t n = rec_get_u32(r->p + r->off);
    r->off += 4;
    return rd_bytes(r, n);
}

/* Done: everything read and nothing left over. */
static int
rd_end(rd *r)
{
    return r->bad || r->off != r->len ? STORE_ECORRUPT : 0;
}

int
rec_check_header(const uint8_t *v, size_t len, enum rec_type type)
{
    if (v == NULL || len < 2 || v[0] == 0)
        return STORE_ECORRUPT;
    if (v[0] > REC_VERSION)
        return STORE_EVERSION;
    if (v[1] != (uint8_t)type)
        return STORE_ECORRUPT;
    return 0;
}

static int
rd_begin(rd *r, const uint8_t *v, size_t len, enum rec_type type)
{
    r->p = v;
    r->len = len;
    r->off = 2;
    r->bad = false;
    return rec_check_header(v, len, type);
}

int
rec_exchange_decode(const uint8_t *v, size_t len, store_exchange *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_EXCHANGE);
    if (rc != 0)
        return rc;
    out->vhost = rd_short(&r);
    out->name = rd_short(&r);
    out->type = rd_u8(&r);
    out->flags = rd_u8(&r);
    out->args = rd_long(&r);
    return rd_end(&r);
}

int
rec_queue_decode(const uint8_t *v, size_t len, store_queue *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_QUEUE);
    if (rc != 0)
        return rc;
    out->vhost = rd_short(&r);
    out->name = rd_short(&r);
    out->id = rd_u64(&r);
    out->flags = rd_u8(&r);
    out->args = rd_long(&r);
    return rd_end(&r);
}

int
rec_binding_decode(const uint8_t *v, size_t len, store_binding *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_BINDING);
    if (rc != 0)
        return rc;
    out->vhost = rd_short(&r);
    out->source = rd_short(&r);
    out->dest_kind = rd_u8(&r);
    out->dest = rd_short(&r);
    out->key = rd_short(&r);
    out->args = rd_long(&r);
    if (rd_end(&r) != 0)
        return STORE_ECORRUPT;
    if (out->dest_kind != STORE_DEST_QUEUE && out->dest_kind != STORE_DEST_EXCHANGE)
        return STORE_ECORRUPT;
    return 0;
}

int
rec_message_decode(const uint8_t *v, size_t len, store_message *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_MESSAGE);
    if (rc != 0)
        return rc;
    out->prop_flags = rd_u16(&r);
    out->exchange = rd_short(&r);
    out->routing_key = rd_short(&r);
    out->props = rd_long(&r);
    out->body = rd_long(&r);
    return rd_end(&r);
}

int
rec_qentry_decode(const uint8_t *v, size_t len, store_qentry *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_QENTRY);
    if (rc != 0)
        return rc;
    out->msg_id = rd_u64(&r);
    out->flags = rd_u8(&r);
    return rd_end(&r);
}

int
rec_hashkey_decode(const uint8_t *v, size_t len, uint8_t hkey[16])
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_HASHKEY);
    if (rc != 0)
        return rc;
    store_bytes k = rd_bytes(&r, 16);
    if (rd_end(&r) != 0)
        return STORE_ECORRUPT;
    memcpy(hkey, k.data, 16);
    return 0;
}

int
rec_kv_decode(enum rec_type type, const uint8_t *v, size_t len, store_kv *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, type);
    if (rc != 0)
        return rc;
    out->vhost = rd_short(&r);
    out->name = rd_short(&r);
    out->data = rd_long(&r);
    return rd_end(&r);
}

int
rec_vhost_decode(const uint8_t *v, size_t len, store_vhost *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_VHOST);
    if (rc != 0)
        return rc;
    out->name = rd_short(&r);
    out->description = rd_long(&r);
    out->tags = rd_long(&r);
    out->flags = rd_u8(&r);
    out->default_queue_type = rd_short(&r);
    out->max_connections = rd_i64(&r);
    out->max_queues = rd_i64(&r);
    return rd_end(&r);
}

int
rec_user_decode(const uint8_t *v, size_t len, store_user *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_USER);
    if (rc != 0)
        return rc;
    out->name = rd_short(&r);
    out->password_hash = rd_short(&r);
    out->hash_algo = rd_u8(&r);
    out->tags = rd_long(&r);
    out->max_connections = rd_i64(&r);
    out->max_channels = rd_i64(&r);
    return rd_end(&r);
}

int
rec_permission_decode(const uint8_t *v, size_t len, store_permission *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_PERMISSION);
    if (rc != 0)
        return rc;
    out->user = rd_short(&r);
    out->vhost = rd_short(&r);
    out->configure = rd_long(&r);
    out->write = rd_long(&r);
    out->read = rd_long(&r);
    return rd_end(&r);
}

int
rec_topic_permission_decode(const uint8_t *v, size_t len, store_topic_permission *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, REC_TOPIC_PERMISSION);
    if (rc != 0)
        return rc;
    out->user = rd_short(&r);
    out->vhost = rd_short(&r);
    out->exchange = rd_short(&r);
    out->write = rd_long(&r);
    out->read = rd_long(&r);
    return rd_end(&r);
}

int
rec_policy_decode(enum rec_type type, const uint8_t *v, size_t len, store_policy *out)
{
    rd r;
    int rc = rd_begin(&r, v, len, type);
    if (rc != 0)
        return rc;
    out->vhost = rd_short(&r);
    out->name = rd_short(&r);
    out->pattern = rd_long(&r);
    out->apply_to = rd_short(&r);
    out->priority = rd_i64(&r);
    out->definition = rd_long(&r);
    return rd_end(&r);
}

void
rec_log_bad(const char *db, const uint8_t *key, size_t klen, int err)
{
    char hex[2 * 64 + 4];
    size_t n = klen < 64 ? klen : 64, o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(hex + o, sizeof hex - o, "%02x", key[i]);
    if (n < klen)
        snprintf(hex + o, sizeof hex - o, "...");
    fprintf(stderr, "coney: storage: skipping %s record %s: %s\n", db, hex,
            store_strerror(err));
}
