/*
 * AMQP field tables (protocol/table.c), the input a 4-octet length and
 * the fields. What decodes must encode; the encoding must decode, encode
 * to the same bytes, clone into an equal table, and every integer value
 * must read through amqp_value_int.
 */
#include "tests/fuzz/fuzz.h"

#include "protocol/amqp.h"

static amqp_pool pool;

static void
walk_value(const amqp_value *v, int depth)
{
    int64_t i;
    (void)amqp_value_int(v, &i);
    FUZZ_CHECK(depth <= AMQP_TABLE_MAX_DEPTH + 1);
    if (v->kind == 'F') {
        for (uint32_t k = 0; k < v->v.table.n; k++)
            walk_value(&v->v.table.fields[k].value, depth + 1);
    } else if (v->kind == 'A') {
        for (uint32_t k = 0; k < v->v.array.n; k++)
            walk_value(&v->v.array.items[k], depth + 1);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amqp_table t;
    size_t off = 0;
    int rc = amqp_table_decode(data, size, &off, &t, &pool);
    if (rc != AMQP_OK) {
        FUZZ_CHECK(off == 0);
        FUZZ_CHECK(rc == AMQP_ERR_MALFORMED || rc == AMQP_ERR_TABLE || rc == AMQP_ERR_NOMEM);
        amqp_pool_reset(&pool);
        return 0;
    }
    FUZZ_CHECK(off >= 4 && off <= size);
    for (uint32_t k = 0; k < t.n; k++)
        walk_value(&t.fields[k].value, 1);
    if (t.n > 0) {
        char key[256];
        memcpy(key, t.fields[0].key.data, t.fields[0].key.len);
        key[t.fields[0].key.len] = 0;
        /* a key with a NUL in it finds an earlier, shorter one, or nothing */
        const amqp_value *v = amqp_table_get(&t, key);
        FUZZ_CHECK(v != NULL || strlen(key) != t.fields[0].key.len);
    }

    size_t n1 = amqp_table_size(&t);
    uint8_t *e1 = fuzz_alloc(n1);
    FUZZ_CHECK(amqp_table_encode(&t, e1) == n1);

    amqp_table t2;
    size_t off2 = 0;
    FUZZ_CHECK(amqp_table_decode(e1, n1, &off2, &t2, &pool) == AMQP_OK);
    FUZZ_CHECK(off2 == n1 && t2.n == t.n);
    size_t n2 = amqp_table_size(&t2);
    uint8_t *e2 = fuzz_alloc(n2);
    FUZZ_CHECK(amqp_table_encode(&t2, e2) == n2);
    fuzz_same("field table", e1, n1, e2, n2);

    /* a deep copy encodes as the original does */
    amqp_table c;
    FUZZ_CHECK(amqp_table_clone(&t, &c, &pool) == AMQP_OK);
    size_t n3 = amqp_table_size(&c);
    uint8_t *e3 = fuzz_alloc(n3);
    FUZZ_CHECK(amqp_table_encode(&c, e3) == n3);
    fuzz_same("cloned table", e1, n1, e3, n3);

    free(e3);
    free(e2);
    free(e1);
    amqp_pool_reset(&pool);
    return 0;
}
