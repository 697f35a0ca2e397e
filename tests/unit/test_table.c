/* Field tables and arrays: every value type, hand-checked bytes, nesting and
 * its cap, hostile input, typed equality; and the decode pool under them. */
#include <check.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/amqp.h"
#include "suites.h"

#define V_INT(k, x) ((amqp_value){ .kind = (k), .v.i = (x) })
#define V_UINT(k, x) ((amqp_value){ .kind = (k), .v.u = (x) })
#define V_STR(k, s) ((amqp_value){ .kind = (k), .v.bytes = AMQP_BYTES_LIT(s) })
#define FLD(name, val) { AMQP_BYTES_LIT(name), val }
#define N(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

/* A table holding every kind, arrays and tables nested inside arrays. */
static amqp_value inner_arr_items[] = { { .kind = 'b', .v.i = 1 }, { .kind = 'V' } };
static amqp_field in_arr_tbl_fields[] = { { AMQP_BYTES_LIT("k"), { .kind = 't', .v.boolean = true } } };
static amqp_value arr_items[4];
static amqp_field deeper_fields[] = { { AMQP_BYTES_LIT("x"), { .kind = 'V' } } };
static amqp_field inner_fields[2];
static amqp_field all_fields[20];
static amqp_table all_table;

static void
build_all(void)
{
    arr_items[0] = V_INT('I', 1);
    arr_items[1] = V_STR('S', "x");
    arr_items[2] = (amqp_value){ .kind = 'A', .v.array = { N(inner_arr_items), inner_arr_items } };
    arr_items[3] = (amqp_value){ .kind = 'F', .v.table = { N(in_arr_tbl_fields), in_arr_tbl_fields } };
    inner_fields[0] = (amqp_field)FLD("inner", V_STR('S', "v"));
    inner_fields[1] = (amqp_field)FLD("deeper",
        ((amqp_value){ .kind = 'F', .v.table = { N(deeper_fields), deeper_fields } }));

    int i = 0;
    all_fields[i++] = (amqp_field)FLD("bool", ((amqp_value){ .kind = 't', .v.boolean = true }));
    all_fields[i++] = (amqp_field)FLD("i8", V_INT('b', -5));
    all_fields[i++] = (amqp_field)FLD("u8", V_UINT('B', 200));
    all_fields[i++] = (amqp_field)FLD("i16", V_INT('s', -300));
    all_fields[i++] = (amqp_field)FLD("u16", V_UINT('u', 60000));
    all_fields[i++] = (amqp_field)FLD("U16", V_INT('U', -2));
    all_fields[i++] = (amqp_field)FLD("i32", V_INT('I', -70000));
    all_fields[i++] = (amqp_field)FLD("u32", V_UINT('i', 3000000000u));
    all_fields[i++] = (amqp_field)FLD("i64", V_INT('l', -5000000000000LL));
    all_fields[i++] = (amqp_field)FLD("L64", V_INT('L', 7000000000000000LL));
    all_fields[i++] = (amqp_field)FLD("float", ((amqp_value){ .kind = 'f', .v.f = 1.5f }));
    all_fields[i++] = (amqp_field)FLD("double", ((amqp_value){ .kind = 'd', .v.d = -2.25 }));
    all_fields[i++] = (amqp_field)FLD("dec", ((amqp_value){ .kind = 'D', .v.decimal = { 2, 12345 } }));
    all_fields[i++] = (amqp_field)FLD("str", V_STR('S', "hello"));
    all_fields[i++] = (amqp_field)FLD("arr", ((amqp_value){ .kind = 'A', .v.array = { N(arr_items), arr_items } }));
    all_fields[i++] = (amqp_field)FLD("ts", V_UINT('T', 1700000000u));
    all_fields[i++] = (amqp_field)FLD("tbl", ((amqp_value){ .kind = 'F', .v.table = { N(inner_fields), inner_fields } }));
    all_fields[i++] = (amqp_field)FLD("void", ((amqp_value){ .kind = 'V' }));
    all_fields[i++] = (amqp_field)FLD("bin", ((amqp_value){ .kind = 'x', .v.bytes = { "\0\1\2", 3 } }));
    all_fields[i++] = (amqp_field)FLD("empty-arr", ((amqp_value){ .kind = 'A' }));
    all_table = (amqp_table){ (uint32_t)i, all_fields };
}

/* Kinds must survive the round trip too, which amqp_value_eq alone would
 * not show for integers. */
static void
assert_same_kinds(const amqp_value *a, const amqp_value *b)
{
    ck_assert_int_eq(a->kind, b->kind);
    if (a->kind == 'F') {
        ck_assert_uint_eq(a->v.table.n, b->v.table.n);
        for (uint32_t i = 0; i < a->v.table.n; i++)
            assert_same_kinds(&a->v.table.fields[i].value, &b->v.table.fields[i].value);
    } else if (a->kind == 'A') {
        ck_assert_uint_eq(a->v.array.n, b->v.array.n);
        for (uint32_t i = 0; i < a->v.array.n; i++)
            assert_same_kinds(&a->v.array.items[i], &b->v.array.items[i]);
    }
}

START_TEST(test_every_type_round_trip)
{
    build_all();
    size_t size = amqp_table_size(&all_table);
    uint8_t *buf = malloc(size);
    ck_assert_uint_eq(amqp_table_encode(&all_table, buf), size);
    ck_assert_uint_eq(amqp_get32(buf), size - 4);

    amqp_pool pool = {0};
    amqp_table out;
    size_t off = 0;
    ck_assert_int_eq(amqp_table_decode(buf, size, &off, &out, &pool), AMQP_OK);
    ck_assert_uint_eq(off, size);
    ck_assert(amqp_table_eq(&all_table, &out));
    amqp_value whole_a = { .kind = 'F', .v.table = all_table };
    amqp_value whole_b = { .kind = 'F', .v.table = out };
    assert_same_kinds(&whole_a, &whole_b);

    ck_assert_int_eq(amqp_table_get(&out, "i8")->v.i, -5);
    ck_assert_uint_eq(amqp_table_get(&out, "u32")->v.u, 3000000000u);
    ck_assert_int_eq(amqp_table_get(&out, "i64")->v.i, -5000000000000LL);
    ck_assert(amqp_table_get(&out, "float")->v.f == 1.5f);
    ck_assert(amqp_table_get(&out, "double")->v.d == -2.25);
    ck_assert(amqp_bytes_eq((amqp_bytes){ "\0\1\2", 3 }, amqp_table_get(&out, "bin")->v.bytes));

    /* Re-encoding the decoded table gives the same bytes. */
    uint8_t *again = malloc(size);
    ck_assert_uint_eq(amqp_table_encode(&out, again), size);
    ck_assert_mem_eq(buf, again, size);
    free(again);
    amqp_pool_free(&pool);
    free(buf);
}
END_TEST

static const uint8_t simple_bytes[] = {
    0, 0, 0, 20,
    1, 'a', 'I', 0, 0, 0, 1,
    1, 'b', 'S', 0, 0, 0, 2, 'h', 'i',
    1, 'c', 't', 1,
};

START_TEST(test_hand_bytes)
{
    amqp_field f[] = {
        FLD("a", V_INT('I', 1)),
        FLD("b", V_STR('S', "hi")),
        FLD("c", ((amqp_value){ .kind = 't', .v.boolean = true })),
    };
    amqp_table t = { 3, f };
    uint8_t out[64];
    ck_assert_uint_eq(amqp_table_size(&t), sizeof simple_bytes);
    ck_assert_uint_eq(amqp_table_encode(&t, out), sizeof simple_bytes);
    ck_assert_mem_eq(out, simple_bytes, sizeof simple_bytes);

    amqp_pool pool = {0};
    amqp_table d;
    size_t off = 0;
    ck_assert_int_eq(amqp_table_decode(simple_bytes, sizeof simple_bytes, &off, &d, &pool), AMQP_OK);
    ck_assert_uint_eq(d.n, 3);
    ck_assert(amqp_bytes_eq_cstr(d.fields[1].key, "b"));
    ck_assert(amqp_bytes_eq_cstr(d.fields[1].value.v.bytes, "hi"));
    ck_assert(d.fields[2].value.v.boolean);
    ck_assert(amqp_table_eq(&t, &d));
    amqp_pool_free(&pool);
}
END_TEST

/* Decimal, timestamp, void, byte array, float, double, signed 8/16 and the
 * unsigned kinds, and an array holding a table and an array, from bytes. */
START_TEST(test_hand_bytes_rare_types)
{
    static const uint8_t b[] = {
        0, 0, 0, 111,
        1, 'D', 'D', 2, 0, 0, 0x30, 0x39,
        1, 'T', 'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0,
        1, 'V', 'V',
        1, 'x', 'x', 0, 0, 0, 3, 0, 1, 2,
        1, 'f', 'f', 0x3f, 0xc0, 0, 0,
        1, 'd', 'd', 0xc0, 0x02, 0, 0, 0, 0, 0, 0,
        1, 'b', 'b', 0xfe,
        1, 's', 's', 0xff, 0xfe,
        1, 'u', 'u', 0xff, 0xfe,
        1, 'i', 'i', 0xff, 0xff, 0xff, 0xfe,
        1, 'l', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd,
        1, 'A', 'A', 0, 0, 0, 15,
            'F', 0, 0, 0, 3, 1, 'k', 'V',
            'A', 0, 0, 0, 2, 'B', 7,
        1, 'E', 'F', 0, 0, 0, 0,
    };
    amqp_pool pool = {0};
    amqp_table t;
    size_t off = 0;
    ck_assert_int_eq(amqp_table_decode(b, sizeof b, &off, &t, &pool), AMQP_OK);
    ck_assert_uint_eq(off, sizeof b);
    ck_assert_uint_eq(t.n, 13);
    const amqp_value *v = amqp_table_get(&t, "D");
    ck_assert_int_eq(v->kind, 'D');
    ck_assert_uint_eq(v->v.decimal.scale, 2);
    ck_assert_uint_eq(v->v.decimal.value, 12345);
    ck_assert_uint_eq(amqp_table_get(&t, "T")->v.u, 1700000000u);
    ck_assert_int_eq(amqp_table_get(&t, "V")->kind, 'V');
    ck_assert_uint_eq(amqp_table_get(&t, "x")->v.bytes.len, 3);
    ck_assert(amqp_table_get(&t, "f")->v.f == 1.5f);
    ck_assert(amqp_table_get(&t, "d")->v.d == -2.25);
    ck_assert_int_eq(amqp_table_get(&t, "b")->v.i, -2);
    ck_assert_int_eq(amqp_table_get(&t, "s")->v.i, -2);
    ck_assert_uint_eq(amqp_table_get(&t, "u")->v.u, 65534);
    ck_assert_uint_eq(amqp_table_get(&t, "i")->v.u, 4294967294u);
    ck_assert_int_eq(amqp_table_get(&t, "l")->v.i, -3);
    v = amqp_table_get(&t, "A");
    ck_assert_uint_eq(v->v.array.n, 2);
    ck_assert_int_eq(v->v.array.items[0].kind, 'F');
    ck_assert_uint_eq(v->v.array.items[0].v.table.n, 1);
    ck_assert_int_eq(v->v.array.items[1].kind, 'A');
    ck_assert_uint_eq(v->v.array.items[1].v.array.items[0].v.u, 7);
    ck_assert_uint_eq(amqp_table_get(&t, "E")->v.table.n, 0);
    ck_assert_ptr_null(amqp_table_get(&t, "missing"));

    uint8_t out[sizeof b];
    ck_assert_uint_eq(amqp_table_size(&t), sizeof b);
    amqp_table_encode(&t, out);
    ck_assert_mem_eq(out, b, sizeof b);
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_empty_table)
{
    static const uint8_t b[] = { 0, 0, 0, 0, 0xaa };
    amqp_table t = { 7, (amqp_field *)1 };
    size_t off = 0;
    ck_assert_int_eq(amqp_table_decode(b, sizeof b, &off, &t, NULL), AMQP_OK);
    ck_assert_uint_eq(off, 4);
    ck_assert_uint_eq(t.n, 0);
    amqp_table empty = {0};
    uint8_t out[4];
    ck_assert_uint_eq(amqp_table_size(&empty), 4);
    ck_assert_uint_eq(amqp_table_encode(&empty, out), 4);
    ck_assert_mem_eq(out, b, 4);
    ck_assert(amqp_table_eq(&t, &empty));
}
END_TEST

START_TEST(test_decode_at_offset)
{
    uint8_t b[3 + sizeof simple_bytes];
    memcpy(b, "xyz", 3);
    memcpy(b + 3, simple_bytes, sizeof simple_bytes);
    amqp_pool pool = {0};
    amqp_table t;
    size_t off = 3;
    ck_assert_int_eq(amqp_table_decode(b, sizeof b, &off, &t, &pool), AMQP_OK);
    ck_assert_uint_eq(off, sizeof b);
    ck_assert_uint_eq(t.n, 3);
    /* An offset at or past the end is truncation, not a crash. */
    off = sizeof b;
    ck_assert_int_eq(amqp_table_decode(b, sizeof b, &off, &t, &pool), AMQP_ERR_MALFORMED);
    off = sizeof b + 10;
    ck_assert_int_eq(amqp_table_decode(b, sizeof b, &off, &t, &pool), AMQP_ERR_MALFORMED);
    amqp_pool_free(&pool);
}
END_TEST

/* depth tables nested in one another, each holding the next under "k";
 * with arrays set, every level below the top is an array instead. */
static size_t
nested_bytes(uint8_t *out, int depth, bool arrays)
{
    /* Built inside out: each level prefixes its header and length. */
    size_t cap = (size_t)depth * 16 + 16;
    uint8_t *tmp = calloc(1, cap);
    size_t len = 0;                 /* innermost container: empty */
    for (int level = depth; level >= 1; level--) {
        uint8_t hdr[7];
        size_t h = 0;
        if (level == depth) {
            /* nothing inside the innermost */
        } else if (arrays && level > 1) {
            hdr[h++] = 'A';             /* the array's one item */
        } else if (arrays) {
            hdr[h++] = 1; hdr[h++] = 'k'; hdr[h++] = 'A';
        } else {
            hdr[h++] = 1; hdr[h++] = 'k'; hdr[h++] = 'F';
        }
        memmove(tmp + h + 4, tmp, len);
        memcpy(tmp + 4, hdr, h);
        amqp_put32(tmp, (uint32_t)(len + h));
        len += h + 4;
    }
    memcpy(out, tmp, len);
    free(tmp);
    return len;
}

START_TEST(test_depth_cap)
{
    uint8_t buf[2048];
    amqp_pool pool = {0};
    amqp_table t;
    for (int arrays = 0; arrays <= 1; arrays++) {
        size_t len = nested_bytes(buf, AMQP_TABLE_MAX_DEPTH, arrays);
        size_t off = 0;
        ck_assert_int_eq(amqp_table_decode(buf, len, &off, &t, &pool), AMQP_OK);
        ck_assert_uint_eq(off, len);
        /* The decoded tree re-encodes to the same bytes. */
        uint8_t again[2048];
        ck_assert_uint_eq(amqp_table_encode(&t, again), len);
        ck_assert_mem_eq(again, buf, len);

        len = nested_bytes(buf, AMQP_TABLE_MAX_DEPTH + 1, arrays);
        off = 0;
        ck_assert_int_eq(amqp_table_decode(buf, len, &off, &t, &pool), AMQP_ERR_TABLE);
        len = nested_bytes(buf, 100, arrays);
        off = 0;
        ck_assert_int_eq(amqp_table_decode(buf, len, &off, &t, &pool), AMQP_ERR_TABLE);
    }
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_bad_type_octet)
{
    static const uint8_t top[] = { 0, 0, 0, 4, 1, 'a', 'Z', 0 };
    static const uint8_t in_table[] = {
        0, 0, 0, 10, 1, 'a', 'F', 0, 0, 0, 3, 1, 'b', 'q',
    };
    static const uint8_t in_array[] = { 0, 0, 0, 10, 1, 'a', 'A', 0, 0, 0, 3, 'B', 1, '?' };
    static const uint8_t after_good[] = {
        0, 0, 0, 7, 1, 'a', 't', 1, 1, 'b', 0,
    };
    const struct { const uint8_t *b; size_t n; } cases[] = {
        { top, sizeof top }, { in_table, sizeof in_table },
        { in_array, sizeof in_array }, { after_good, sizeof after_good },
    };
    amqp_pool pool = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        amqp_table t;
        size_t off = 0;
        ck_assert_int_eq(amqp_table_decode(cases[i].b, cases[i].n, &off, &t, &pool), AMQP_ERR_TABLE);
        ck_assert_uint_eq(off, 0);
    }
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_truncated_every_length)
{
    build_all();
    size_t size = amqp_table_size(&all_table);
    uint8_t *full = malloc(size);
    amqp_table_encode(&all_table, full);
    amqp_pool pool = {0};

    /* The buffer ends early: always malformed. Each prefix is copied into
     * an exact-size allocation so ASan sees any read past it. */
    for (size_t len = 0; len < size; len++) {
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, full, len);
        amqp_table t;
        size_t off = 0;
        ck_assert_int_eq(amqp_table_decode(b, len, &off, &t, &pool), AMQP_ERR_MALFORMED);
        free(b);
        amqp_pool_reset(&pool);
    }
    /* The table's own length ends early: fine on a field boundary,
     * malformed elsewhere, never anything else. */
    int ok = 0;
    for (uint32_t body = 0; body < size - 4; body++) {
        uint8_t *b = malloc(4 + body);
        memcpy(b, full, 4 + body);
        amqp_put32(b, body);
        amqp_table t;
        size_t off = 0;
        int rc = amqp_table_decode(b, 4 + body, &off, &t, &pool);
        ck_assert_msg(rc == AMQP_OK || rc == AMQP_ERR_MALFORMED, "body %u: rc %d", body, rc);
        if (rc == AMQP_OK) {
            ok++;
            ck_assert_uint_eq(off, 4 + body);
        }
        free(b);
        amqp_pool_reset(&pool);
    }
    ck_assert_int_eq(ok, (int)all_table.n);   /* 0 .. n-1 whole fields */
    amqp_pool_free(&pool);
    free(full);
}
END_TEST

START_TEST(test_inner_length_overruns)
{
    /* A nested table, array or string claiming more than its parent
     * holds, and a key running past the end. */
    static const uint8_t t1[] = { 0, 0, 0, 7, 1, 'a', 'F', 0, 0, 0, 9 };
    static const uint8_t t2[] = { 0, 0, 0, 7, 1, 'a', 'A', 0xff, 0xff, 0xff, 0xff };
    static const uint8_t t3[] = { 0, 0, 0, 8, 1, 'a', 'S', 0, 0, 0, 2, 'x', 'y' };
    static const uint8_t t4[] = { 0, 0, 0, 3, 9, 'a', 'b' };
    static const uint8_t t5[] = { 0, 0, 0, 2, 1, 'a' };
    static const uint8_t t6[] = { 0, 0, 0, 5, 1, 'a', 'I', 0, 0, 0, 0 };
    const struct { const uint8_t *b; size_t n; } cases[] = {
        { t1, sizeof t1 }, { t2, sizeof t2 }, { t3, sizeof t3 },
        { t4, sizeof t4 }, { t5, sizeof t5 }, { t6, sizeof t6 },
    };
    amqp_pool pool = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        amqp_table t;
        size_t off = 0;
        ck_assert_msg(amqp_table_decode(cases[i].b, cases[i].n, &off, &t, &pool)
                      == AMQP_ERR_MALFORMED, "case %zu", i);
    }
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_value_eq_integer_widths)
{
    const amqp_value five[] = {
        V_INT('b', 5), V_UINT('B', 5), V_INT('s', 5), V_UINT('u', 5), V_INT('U', 5),
        V_INT('I', 5), V_UINT('i', 5), V_INT('l', 5), V_INT('L', 5),
    };
    for (size_t i = 0; i < 9; i++) {
        for (size_t j = 0; j < 9; j++)
            ck_assert_msg(amqp_value_eq(&five[i], &five[j]), "%c vs %c", five[i].kind, five[j].kind);
        amqp_value six = five[i];
        six.v.i = 6;             /* i and u share storage */
        ck_assert(!amqp_value_eq(&five[i], &six));
        int64_t x = 0;
        ck_assert(amqp_value_int(&five[i], &x));
        ck_assert_int_eq(x, 5);
    }
    amqp_value m1 = V_INT('b', -1), b255 = V_UINT('B', 255), l255 = V_INT('l', 255);
    ck_assert(!amqp_value_eq(&m1, &b255));
    ck_assert(amqp_value_eq(&b255, &l255));
    amqp_value big_u = V_UINT('i', 4294967295u), big_l = V_INT('l', 4294967295LL), m1_I = V_INT('I', -1);
    ck_assert(amqp_value_eq(&big_u, &big_l));
    ck_assert(!amqp_value_eq(&big_u, &m1_I));

    /* Integers are not strings, booleans, floats or timestamps. */
    amqp_value s5 = V_STR('S', "5"), t1 = { .kind = 't', .v.boolean = true };
    amqp_value one = V_INT('I', 1), ts = V_UINT('T', 5), f5 = { .kind = 'f', .v.f = 5.0f };
    ck_assert(!amqp_value_eq(&five[5], &s5));
    ck_assert(!amqp_value_eq(&one, &t1));
    ck_assert(!amqp_value_eq(&five[0], &ts));
    ck_assert(!amqp_value_eq(&five[0], &f5));
    int64_t x;
    ck_assert(!amqp_value_int(&s5, &x));
    ck_assert(!amqp_value_int(&ts, &x));
    ck_assert(!amqp_value_int(&f5, &x));
}
END_TEST

START_TEST(test_value_eq_other_kinds)
{
    amqp_value f = { .kind = 'f', .v.f = 1.5f }, d = { .kind = 'd', .v.d = 1.5 };
    amqp_value d2 = { .kind = 'd', .v.d = 1.25 };
    ck_assert(amqp_value_eq(&f, &d));
    ck_assert(!amqp_value_eq(&f, &d2));
    amqp_value a = V_STR('S', "abc"), b = V_STR('S', "abc"), c = V_STR('S', "abd");
    amqp_value e = V_STR('S', "ab");
    ck_assert(amqp_value_eq(&a, &b));
    ck_assert(!amqp_value_eq(&a, &c));
    ck_assert(!amqp_value_eq(&a, &e));
    amqp_value t = { .kind = 't', .v.boolean = true }, fl = { .kind = 't', .v.boolean = false };
    ck_assert(!amqp_value_eq(&t, &fl));
    amqp_value v1 = { .kind = 'V' }, v2 = { .kind = 'V' };
    ck_assert(amqp_value_eq(&v1, &v2));
    ck_assert(!amqp_value_eq(&v1, &fl));
    amqp_value d1 = { .kind = 'D', .v.decimal = { 2, 100 } }, dd = { .kind = 'D', .v.decimal = { 1, 100 } };
    ck_assert(!amqp_value_eq(&d1, &dd));
    ck_assert(amqp_value_eq(&d1, &d1));

    /* Deep: tables and arrays compare by content, widths included. */
    amqp_value ai[] = { V_INT('b', 1), V_STR('S', "q") };
    amqp_value bi[] = { V_INT('l', 1), V_STR('S', "q") };
    amqp_value ci[] = { V_INT('l', 2), V_STR('S', "q") };
    amqp_value A = { .kind = 'A', .v.array = { 2, ai } }, B = { .kind = 'A', .v.array = { 2, bi } };
    amqp_value C = { .kind = 'A', .v.array = { 2, ci } }, S = { .kind = 'A', .v.array = { 1, ai } };
    ck_assert(amqp_value_eq(&A, &B));
    ck_assert(!amqp_value_eq(&A, &C));
    ck_assert(!amqp_value_eq(&A, &S));
    amqp_field fa[] = { FLD("x", A) }, fb[] = { FLD("x", B) }, fc[] = { FLD("y", B) };
    amqp_table ta = { 1, fa }, tb = { 1, fb }, tc = { 1, fc };
    ck_assert(amqp_table_eq(&ta, &tb));
    ck_assert(!amqp_table_eq(&ta, &tc));
    amqp_value TA = { .kind = 'F', .v.table = ta }, TB = { .kind = 'F', .v.table = tb };
    ck_assert(amqp_value_eq(&TA, &TB));
    ck_assert(!amqp_value_eq(&TA, &A));
}
END_TEST

START_TEST(test_clone_is_deep)
{
    build_all();
    size_t size = amqp_table_size(&all_table);
    uint8_t *buf = malloc(size);
    amqp_table_encode(&all_table, buf);
    amqp_pool dec = {0}, keep = {0};
    amqp_table t, copy;
    size_t off = 0;
    ck_assert_int_eq(amqp_table_decode(buf, size, &off, &t, &dec), AMQP_OK);
    ck_assert_int_eq(amqp_table_clone(&t, &copy, &keep), AMQP_OK);
    /* The copy owns everything: wipe the source buffer and its pool. */
    memset(buf, 0x5a, size);
    free(buf);
    amqp_pool_free(&dec);
    ck_assert(amqp_table_eq(&copy, &all_table));
    amqp_table empty = {0}, ecopy;
    ck_assert_int_eq(amqp_table_clone(&empty, &ecopy, &keep), AMQP_OK);
    ck_assert_uint_eq(ecopy.n, 0);
    amqp_pool_free(&keep);
}
END_TEST

START_TEST(test_bytes_helpers)
{
    amqp_bytes a = amqp_cstr("queue");
    ck_assert_uint_eq(a.len, 5);
    ck_assert(amqp_bytes_eq(a, AMQP_BYTES_LIT("queue")));
    ck_assert(!amqp_bytes_eq(a, AMQP_BYTES_LIT("queues")));
    ck_assert(amqp_bytes_eq_cstr(a, "queue"));
    ck_assert(!amqp_bytes_eq_cstr(a, "Queue"));
    amqp_bytes none = { NULL, 0 };
    ck_assert(amqp_bytes_eq(none, amqp_cstr("")));
    ck_assert(amqp_bytes_eq_cstr(none, ""));
    ck_assert_uint_eq(amqp_cstr(NULL).len, 0);
}
END_TEST

START_TEST(test_pool)
{
    amqp_pool pool = {0};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 1; i < 3000; i += 7) {
            unsigned char *p = amqp_pool_alloc(&pool, i);
            ck_assert_ptr_nonnull(p);
            ck_assert_uint_eq((uintptr_t)p % alignof(max_align_t), 0);
            for (size_t j = 0; j < i; j++)
                ck_assert_uint_eq(p[j], 0);
            memset(p, 0xff, i);
        }
        unsigned char *big = amqp_pool_alloc(&pool, 100000);
        ck_assert_ptr_nonnull(big);
        ck_assert_uint_eq(big[99999], 0);
        memset(big, 0xee, 100000);
        /* After an oversized chunk the current chunk is still in use. */
        ck_assert_ptr_nonnull(amqp_pool_alloc(&pool, 8));
        char *d = amqp_pool_dup(&pool, "hello", 5);
        ck_assert_mem_eq(d, "hello", 5);
        ck_assert_ptr_nonnull(amqp_pool_alloc(&pool, 0));
        ck_assert_ptr_null(amqp_pool_alloc(&pool, SIZE_MAX));
        amqp_pool_reset(&pool);
        ck_assert_ptr_nonnull(pool.head);
    }
    amqp_pool_free(&pool);
    ck_assert_ptr_null(pool.head);
    amqp_pool_reset(&pool);      /* on an empty pool */
    amqp_pool_free(&pool);
}
END_TEST

Suite *
suite_table(void)
{
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_every_type_round_trip);
    tcase_add_test(tc, test_hand_bytes);
    tcase_add_test(tc, test_hand_bytes_rare_types);
    tcase_add_test(tc, test_empty_table);
    tcase_add_test(tc, test_decode_at_offset);
    tcase_add_test(tc, test_depth_cap);
    tcase_add_test(tc, test_bad_type_octet);
    tcase_add_test(tc, test_truncated_every_length);
    tcase_add_test(tc, test_inner_length_overruns);
    tcase_add_test(tc, test_value_eq_integer_widths);
    tcase_add_test(tc, test_value_eq_other_kinds);
    tcase_add_test(tc, test_clone_is_deep);
    tcase_add_test(tc, test_bytes_helpers);
    tcase_add_test(tc, test_pool);
    suite_add_tcase(s, tc);
    return s;
}
