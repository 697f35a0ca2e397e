/*
 * Field tables and arrays.
 *
 * Every table and array carries its byte length and every value has either
 * a fixed size or its own length prefix, so a table can be walked once
 * without recursing to count its fields; the second walk then decodes into
 * one pool array of exactly that many entries. Nested tables and arrays
 * recurse only on that second walk, with a depth cap against hostile input.
 */
#include <assert.h>
#include <string.h>

#include "protocol/amqp.h"

amqp_bytes
amqp_cstr(const char *s)
{
    if (s == NULL)
        return (amqp_bytes){ NULL, 0 };
    size_t n = strlen(s);
    assert(n <= UINT32_MAX);
    return (amqp_bytes){ s, (uint32_t)n };
}

bool
amqp_bytes_eq(amqp_bytes a, amqp_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

bool
amqp_bytes_eq_cstr(amqp_bytes a, const char *s)
{
    return amqp_bytes_eq(a, amqp_cstr(s));
}

/* ---- decoding ---------------------------------------------------------- */

/* n elements of size bytes from pool; NULL without a pool, on overflow or
 * when malloc fails. */
static void *
pool_array(amqp_pool *pool, size_t n, size_t size)
{
    if (pool == NULL || n > SIZE_MAX / size)
        return NULL;
    return amqp_pool_alloc(pool, n * size);
}

/* Wire size of a fixed-size kind; -1 for length-prefixed kinds (S x A F),
 * -2 for an unknown type octet. */
static int
kind_fixed_size(char kind)
{
    switch (kind) {
    case 'V': return 0;
    case 't': case 'b': case 'B': return 1;
    case 's': case 'u': case 'U': return 2;
    case 'I': case 'i': case 'f': return 4;
    case 'D': return 5;
    case 'l': case 'L': case 'd': case 'T': return 8;
    case 'S': case 'x': case 'A': case 'F': return -1;
    }
    return -2;
}

/* Steps over one value of the given kind without decoding it. */
static int
value_skip(const uint8_t *b, size_t end, size_t *off, char kind)
{
    int fixed = kind_fixed_size(kind);
    if (fixed == -2)
        return AMQP_ERR_TABLE;
    if (fixed >= 0) {
        if ((size_t)fixed > end - *off)
            return AMQP_ERR_MALFORMED;
        *off += (size_t)fixed;
        return AMQP_OK;
    }
    if (4 > end - *off)
        return AMQP_ERR_MALFORMED;
    uint32_t n = amqp_get32(b + *off);
    *off += 4;
    if (n > end - *off)
        return AMQP_ERR_MALFORMED;
    *off += n;
    return AMQP_OK;
}

static int table_body_decode(const uint8_t *b, size_t start, size_t end,
                             amqp_table *out, amqp_pool *pool, int depth);
static int array_body_decode(const uint8_t *b, size_t start, size_t end,
                             amqp_array *out, amqp_pool *pool, int depth);

/* Decodes one value whose type octet was already read. The caller has
 * skipped it once, so sizes are known to fit; they are checked again
 * anyway because this function must not depend on its caller for safety. */
static int
value_decode(const uint8_t *b, size_t end, size_t *off, char kind,
             amqp_value *v, amqp_pool *pool, int depth)
{
    size_t at = *off;
    int rc = value_skip(b, end, off, kind);
    if (rc != AMQP_OK)
        return rc;
    const uint8_t *p = b + at;

    v->kind = kind;
    switch (kind) {
    case 'V': break;
    case 't': v->v.boolean = p[0] != 0; break;
    case 'b': v->v.i = (int8_t)p[0]; break;
    case 'B': v->v.u = p[0]; break;
    case 's': case 'U': v->v.i = (int16_t)amqp_get16(p); break;
    case 'u': v->v.u = amqp_get16(p); break;
    case 'I': v->v.i = (int32_t)amqp_get32(p); break;
    case 'i': v->v.u = amqp_get32(p); break;
    case 'l': case 'L': v->v.i = (int64_t)amqp_get64(p); break;
    case 'T': v->v.u = amqp_get64(p); break;
    case 'f': {
        uint32_t bits = amqp_get32(p);
        memcpy(&v->v.f, &bits, sizeof v->v.f);
        break;
    }
    case 'd': {
        uint64_t bits = amqp_get64(p);
        memcpy(&v->v.d, &bits, sizeof v->v.d);
        break;
    }
    case 'D':
        v->v.decimal.scale = p[0];
        v->v.decimal.value = amqp_get32(p + 1);
        break;
    case 'S': case 'x':
        v->v.bytes.len = amqp_get32(p);
        v->v.bytes.data = (const char *)p + 4;
        break;
    case 'F':
        if (depth >= AMQP_TABLE_MAX_DEPTH)
            return AMQP_ERR_TABLE;
        return table_body_decode(b, at + 4, *off, &v->v.table, pool, depth + 1);
    case 'A':
        if (depth >= AMQP_TABLE_MAX_DEPTH)
            return AMQP_ERR_TABLE;
        return array_body_decode(b, at + 4, *off, &v->v.array, pool, depth + 1);
    }
    return AMQP_OK;
}

/* Reads a field name: a shortstr inside [*off, end). */
static int
key_read(const uint8_t *b, size_t end, size_t *off, amqp_bytes *key)
{
    if (1 > end - *off)
        return AMQP_ERR_MALFORMED;
    uint8_t n = b[*off];
    if (n > end - *off - 1)
        return AMQP_ERR_MALFORMED;
    key->data = (const char *)b + *off + 1;
    key->len = n;
    *off += 1 + (size_t)n;
    return AMQP_OK;
}

/* Reads a type octet inside [*off, end). */
static int
kind_read(const uint8_t *b, size_t end, size_t *off, char *kind)
{
    if (1 > end - *off)
        return AMQP_ERR_MALFORMED;
    *kind = (char)b[(*off)++];
    return AMQP_OK;
}

/* The table's fields lie in b[start, end); depth is this table's level. */
static int
table_body_decode(const uint8_t *b, size_t start, size_t end,
                  amqp_table *out, amqp_pool *pool, int depth)
{
    size_t off = start;
    uint32_t n = 0;
    amqp_bytes key;
    char kind;
    int rc;

    while (off < end) {
        if ((rc = key_read(b, end, &off, &key)) != AMQP_OK ||
            (rc = kind_read(b, end, &off, &kind)) != AMQP_OK ||
            (rc = value_skip(b, end, &off, kind)) != AMQP_OK)
            return rc;
        n++;
    }
    out->n = 0;
    out->fields = NULL;
    if (n == 0)
        return AMQP_OK;

    amqp_field *f = pool_array(pool, n, sizeof *f);
    if (f == NULL)
        return AMQP_ERR_NOMEM;
    off = start;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = key_read(b, end, &off, &f[i].key)) != AMQP_OK ||
            (rc = kind_read(b, end, &off, &kind)) != AMQP_OK ||
            (rc = value_decode(b, end, &off, kind, &f[i].value, pool, depth)) != AMQP_OK)
            return rc;
    }
    out->n = n;
    out->fields = f;
    return AMQP_OK;
}

static int
array_body_decode(const uint8_t *b, size_t start, size_t end,
                  amqp_array *out, amqp_pool *pool, int depth)
{
    size_t off = start;
    uint32_t n = 0;
    char kind;
    int rc;

    while (off < end) {
        if ((rc = kind_read(b, end, &off, &kind)) != AMQP_OK ||
            (rc = value_skip(b, end, &off, kind)) != AMQP_OK)
            return rc;
        n++;
    }
    out->n = 0;
    out->items = NULL;
    if (n == 0)
        return AMQP_OK;

    amqp_value *items = pool_array(pool, n, sizeof *items);
    if (items == NULL)
        return AMQP_ERR_NOMEM;
    off = start;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = kind_read(b, end, &off, &kind)) != AMQP_OK ||
            (rc = value_decode(b, end, &off, kind, &items[i], pool, depth)) != AMQP_OK)
            return rc;
    }
    out->n = n;
    out->items = items;
    return AMQP_OK;
}

int
amqp_table_decode(const uint8_t *buf, size_t len, size_t *off,
                  amqp_table *out, amqp_pool *pool)
{
    if (*off > len || 4 > len - *off)
        return AMQP_ERR_MALFORMED;
    uint32_t n = amqp_get32(buf + *off);
    size_t start = *off + 4;
    if (n > len - start)
        return AMQP_ERR_MALFORMED;
    int rc = table_body_decode(buf, start, start + n, out, pool, 1);
    if (rc == AMQP_OK)
        *off = start + n;
    return rc;
}

/* ---- encoding ---------------------------------------------------------- */

static size_t value_size(const amqp_value *v);
static size_t value_encode(const amqp_value *v, uint8_t *out);

/* Size of the table's fields, without the length prefix. */
static size_t
table_body_size(const amqp_table *t)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        assert(t->fields[i].key.len <= 255);
        n += 1 + t->fields[i].key.len + 1 + value_size(&t->fields[i].value);
    }
    return n;
}

static size_t
array_body_size(const amqp_array *a)
{
    size_t n = 0;
    for (uint32_t i = 0; i < a->n; i++)
        n += 1 + value_size(&a->items[i]);
    return n;
}

/* Size of the value without its type octet. */
static size_t
value_size(const amqp_value *v)
{
    switch (v->kind) {
    case 'S': case 'x': return 4 + (size_t)v->v.bytes.len;
    case 'F': return 4 + table_body_size(&v->v.table);
    case 'A': return 4 + array_body_size(&v->v.array);
    }
    int fixed = kind_fixed_size(v->kind);
    assert(fixed >= 0);          /* an unknown kind is the caller's bug */
    return (size_t)fixed;
}

static size_t
table_body_encode(const amqp_table *t, uint8_t *out)
{
    uint8_t *p = out;
    for (uint32_t i = 0; i < t->n; i++) {
        const amqp_field *f = &t->fields[i];
        *p++ = (uint8_t)f->key.len;
        if (f->key.len > 0)
            memcpy(p, f->key.data, f->key.len);
        p += f->key.len;
        *p++ = (uint8_t)f->value.kind;
        p += value_encode(&f->value, p);
    }
    return (size_t)(p - out);
}

static size_t
array_body_encode(const amqp_array *a, uint8_t *out)
{
    uint8_t *p = out;
    for (uint32_t i = 0; i < a->n; i++) {
        *p++ = (uint8_t)a->items[i].kind;
        p += value_encode(&a->items[i], p);
    }
    return (size_t)(p - out);
}

/* Writes the value without its type octet; returns value_size(v). */
static size_t
value_encode(const amqp_value *v, uint8_t *out)
{
    size_t n;
    switch (v->kind) {
    case 'V': return 0;
    case 't': out[0] = v->v.boolean ? 1 : 0; return 1;
    case 'b': out[0] = (uint8_t)v->v.i; return 1;
    case 'B': out[0] = (uint8_t)v->v.u; return 1;
    case 's': case 'U': amqp_put16(out, (uint16_t)v->v.i); return 2;
    case 'u': amqp_put16(out, (uint16_t)v->v.u); return 2;
    case 'I': amqp_put32(out, (uint32_t)v->v.i); return 4;
    case 'i': amqp_put32(out, (uint32_t)v->v.u); return 4;
    case 'l': case 'L': amqp_put64(out, (uint64_t)v->v.i); return 8;
    case 'T': amqp_put64(out, v->v.u); return 8;
    case 'f': {
        uint32_t bits;
        memcpy(&bits, &v->v.f, sizeof bits);
        amqp_put32(out, bits);
        return 4;
    }
    case 'd': {
        uint64_t bits;
        memcpy(&bits, &v->v.d, sizeof bits);
        amqp_put64(out, bits);
        return 8;
    }
    case 'D':
        out[0] = v->v.decimal.scale;
        amqp_put32(out + 1, v->v.decimal.value);
        return 5;
    case 'S': case 'x':
        amqp_put32(out, v->v.bytes.len);
        if (v->v.bytes.len > 0)
            memcpy(out + 4, v->v.bytes.data, v->v.bytes.len);
        return 4 + (size_t)v->v.bytes.len;
    case 'F':
        n = table_body_encode(&v->v.table, out + 4);
        assert(n <= UINT32_MAX);
        amqp_put32(out, (uint32_t)n);
        return 4 + n;
    case 'A':
        n = array_body_encode(&v->v.array, out + 4);
        assert(n <= UINT32_MAX);
        amqp_put32(out, (uint32_t)n);
        return 4 + n;
    }
    assert(!"unknown field value kind");
    return 0;
}

size_t
amqp_table_size(const amqp_table *t)
{
    return 4 + table_body_size(t);
}

size_t
amqp_table_encode(const amqp_table *t, uint8_t *out)
{
    size_t expect = amqp_table_size(t);
    assert(expect - 4 <= UINT32_MAX);
    size_t n = table_body_encode(t, out + 4);
    amqp_put32(out, (uint32_t)n);
    assert(n + 4 == expect);
    return expect;
}

/* ---- queries ----------------------------------------------------------- */

const amqp_value *
amqp_table_get(const amqp_table *t, const char *key)
{
    amqp_bytes k = amqp_cstr(key);
    for (uint32_t i = 0; i < t->n; i++)
        if (amqp_bytes_eq(t->fields[i].key, k))
            return &t->fields[i].value;
    return NULL;
}

bool
amqp_value_int(const amqp_value *v, int64_t *out)
{
    switch (v->kind) {
    case 'b': case 's': case 'U': case 'I': case 'l': case 'L':
        *out = v->v.i;
        return true;
    case 'B': case 'u': case 'i':
        /* At most 32 bits wide, so always representable. */
        *out = (int64_t)v->v.u;
        return true;
    }
    return false;
}

static bool
is_float_kind(char kind)
{
    return kind == 'f' || kind == 'd';
}

static bool
array_eq(const amqp_array *a, const amqp_array *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (!amqp_value_eq(&a->items[i], &b->items[i]))
            return false;
    return true;
}

bool
amqp_value_eq(const amqp_value *a, const amqp_value *b)
{
    int64_t x, y;
    if (amqp_value_int(a, &x) && amqp_value_int(b, &y))
        return x == y;
    if (is_float_kind(a->kind) && is_float_kind(b->kind)) {
        double p = a->kind == 'f' ? (double)a->v.f : a->v.d;
        double q = b->kind == 'f' ? (double)b->v.f : b->v.d;
        return p == q;
    }
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case 'V': return true;
    case 't': return a->v.boolean == b->v.boolean;
    case 'T': return a->v.u == b->v.u;
    case 'D':
        return a->v.decimal.scale == b->v.decimal.scale &&
               a->v.decimal.value == b->v.decimal.value;
    case 'S': case 'x': return amqp_bytes_eq(a->v.bytes, b->v.bytes);
    case 'F': return amqp_table_eq(&a->v.table, &b->v.table);
    case 'A': return array_eq(&a->v.array, &b->v.array);
    }
    return false;
}

bool
amqp_table_eq(const amqp_table *a, const amqp_table *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++) {
        if (!amqp_bytes_eq(a->fields[i].key, b->fields[i].key) ||
            !amqp_value_eq(&a->fields[i].value, &b->fields[i].value))
            return false;
    }
    return true;
}

/* ---- cloning ----------------------------------------------------------- */

static int value_clone(const amqp_value *v, amqp_value *out, amqp_pool *pool);

static int
bytes_clone(amqp_bytes b, amqp_bytes *out, amqp_pool *pool)
{
    const char *d = amqp_pool_dup(pool, b.data, b.len);
    if (d == NULL)
        return AMQP_ERR_NOMEM;
    *out = (amqp_bytes){ d, b.len };
    return AMQP_OK;
}

int
amqp_table_clone(const amqp_table *t, amqp_table *out, amqp_pool *pool)
{
    out->n = 0;
    out->fields = NULL;
    if (t->n == 0)
        return AMQP_OK;
    amqp_field *f = pool_array(pool, t->n, sizeof *f);
    if (f == NULL)
        return AMQP_ERR_NOMEM;
    for (uint32_t i = 0; i < t->n; i++) {
        int rc;
        if ((rc = bytes_clone(t->fields[i].key, &f[i].key, pool)) != AMQP_OK ||
            (rc = value_clone(&t->fields[i].value, &f[i].value, pool)) != AMQP_OK)
            return rc;
    }
    out->n = t->n;
    out->fields = f;
    return AMQP_OK;
}

static int
value_clone(const amqp_value *v, amqp_value *out, amqp_pool *pool)
{
    *out = *v;
    switch (v->kind) {
    case 'S': case 'x':
        return bytes_clone(v->v.bytes, &out->v.bytes, pool);
    case 'F':
        return amqp_table_clone(&v->v.table, &out->v.table, pool);
    case 'A': {
        out->v.array.n = 0;
        out->v.array.items = NULL;
        if (v->v.array.n == 0)
            return AMQP_OK;
        amqp_value *items = pool_array(pool, v->v.array.n, sizeof *items);
        if (items == NULL)
            return AMQP_ERR_NOMEM;
        for (uint32_t i = 0; i < v->v.array.n; i++) {
            int rc = value_clone(&v->v.array.items[i], &items[i], pool);
            if (rc != AMQP_OK)
                return rc;
        }
        out->v.array.n = v->v.array.n;
        out->v.array.items = items;
        return AMQP_OK;
    }
    }
    return AMQP_OK;
}
