/*
 * Headers matching as RabbitMQ does it: x-match all/any and their -with-x
 * forms, void values as presence tests, typed equality, empty bindings,
 * and the arguments a headers table must refuse at bind time.
 */
#include <stdlib.h>
#include <string.h>

#include "routing/route.h"
#include "suites.h"

#define FS(k, s) { AMQP_BYTES_LIT(k), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT(s) } }
#define FI(k, kd, n) { AMQP_BYTES_LIT(k), { .kind = (kd), .v.i = (n) } }
#define FU(k, kd, n) { AMQP_BYTES_LIT(k), { .kind = (kd), .v.u = (n) } }
#define FV(k) { AMQP_BYTES_LIT(k), { .kind = 'V' } }
#define FB(k, b) { AMQP_BYTES_LIT(k), { .kind = 't', .v.boolean = (b) } }
#define TABLE(arr) ((amqp_table){ (uint32_t)(sizeof(arr) / sizeof *(arr)), (arr) })

static bool
hmatch(amqp_table args, amqp_table headers)
{
    return route_headers_match(&args, &headers);
}

START_TEST(test_headers_all)
{
    amqp_field b[] = { FS("x-match", "all"), FI("a", 'I', 1), FS("b", "x") };
    amqp_field h_ok[] = { FS("b", "x"), FS("c", "extra"), FI("a", 'I', 1) };
    amqp_field h_missing[] = { FI("a", 'I', 1) };
    amqp_field h_wrong[] = { FI("a", 'I', 1), FS("b", "y") };
    ck_assert(hmatch(TABLE(b), TABLE(h_ok)));
    ck_assert(!hmatch(TABLE(b), TABLE(h_missing)));
    ck_assert(!hmatch(TABLE(b), TABLE(h_wrong)));
    ck_assert(!route_headers_match(&TABLE(b), NULL));
}
END_TEST

START_TEST(test_headers_default_is_all)
{
    amqp_field b[] = { FI("a", 'I', 1), FS("b", "x") };
    amqp_field h_one[] = { FI("a", 'I', 1) };
    amqp_field h_both[] = { FI("a", 'I', 1), FS("b", "x") };
    ck_assert(!hmatch(TABLE(b), TABLE(h_one)));
    ck_assert(hmatch(TABLE(b), TABLE(h_both)));
}
END_TEST

START_TEST(test_headers_any)
{
    amqp_field b[] = { FS("x-match", "any"), FI("a", 'I', 1), FS("b", "x") };
    amqp_field h_b[] = { FS("b", "x") };
    amqp_field h_wrong[] = { FI("a", 'I', 2), FS("b", "y") };
    amqp_field h_other[] = { FS("c", "x") };
    ck_assert(hmatch(TABLE(b), TABLE(h_b)));
    ck_assert(!hmatch(TABLE(b), TABLE(h_wrong)));
    ck_assert(!hmatch(TABLE(b), TABLE(h_other)));
    ck_assert(!route_headers_match(&TABLE(b), NULL));
}
END_TEST

START_TEST(test_headers_x_keys)
{
    amqp_field all[] = { FS("x-match", "all"), FI("x-foo", 'I', 1), FI("a", 'I', 1) };
    amqp_field allx[] = { FS("x-match", "all-with-x"), FI("x-foo", 'I', 1), FI("a", 'I', 1) };
    amqp_field any[] = { FS("x-match", "any"), FI("x-foo", 'I', 1) };
    amqp_field anyx[] = { FS("x-match", "any-with-x"), FI("x-foo", 'I', 1) };
    amqp_field h_a[] = { FI("a", 'I', 1) };
    amqp_field h_ax[] = { FI("a", 'I', 1), FI("x-foo", 'I', 1) };
    amqp_field h_x[] = { FI("x-foo", 'I', 1) };

    /* all/any skip x- keys in the binding... */
    ck_assert(hmatch(TABLE(all), TABLE(h_a)));
    ck_assert(!hmatch(TABLE(any), TABLE(h_x)));  /* no keys left: any fails */
    /* ...the -with-x forms make them count. */
    ck_assert(!hmatch(TABLE(allx), TABLE(h_a)));
    ck_assert(hmatch(TABLE(allx), TABLE(h_ax)));
    ck_assert(hmatch(TABLE(anyx), TABLE(h_x)));
    ck_assert(!hmatch(TABLE(anyx), TABLE(h_a)));
    /* x-match never has to appear in the message. */
    amqp_field allx_only[] = { FS("x-match", "all-with-x") };
    amqp_field anyx_only[] = { FS("x-match", "any-with-x") };
    ck_assert(hmatch(TABLE(allx_only), TABLE(h_a)));
    ck_assert(!hmatch(TABLE(anyx_only), TABLE(h_a)));
}
END_TEST

START_TEST(test_headers_void)
{
    amqp_field b[] = { FV("a") };
    amqp_field h_s[] = { FS("a", "anything") };
    amqp_field h_i[] = { FI("a", 'l', -7) };
    amqp_field h_v[] = { FV("a") };
    amqp_field h_none[] = { FS("b", "x") };
    ck_assert(hmatch(TABLE(b), TABLE(h_s)));
    ck_assert(hmatch(TABLE(b), TABLE(h_i)));
    ck_assert(hmatch(TABLE(b), TABLE(h_v)));
    ck_assert(!hmatch(TABLE(b), TABLE(h_none)));

    /* A void header does not satisfy a valued binding. */
    amqp_field bs[] = { FS("a", "x") };
    ck_assert(!hmatch(TABLE(bs), TABLE(h_v)));

    amqp_field bany[] = { FS("x-match", "any"), FV("a"), FS("z", "z") };
    ck_assert(hmatch(TABLE(bany), TABLE(h_s)));
    ck_assert(!hmatch(TABLE(bany), TABLE(h_none)));
}
END_TEST

START_TEST(test_headers_typed_equality)
{
    amqp_field b8[] = { FI("n", 'b', 5) };
    amqp_field h64[] = { FI("n", 'l', 5) };
    amqp_field h16[] = { FI("n", 's', 5) };
    amqp_field hu32[] = { FU("n", 'i', 5) };
    amqp_field hu8[] = { FU("n", 'B', 5) };
    amqp_field h6[] = { FI("n", 'I', 6) };
    amqp_field hs[] = { FS("n", "5") };
    amqp_field hb[] = { FB("n", true) };
    ck_assert(hmatch(TABLE(b8), TABLE(h64)));
    ck_assert(hmatch(TABLE(b8), TABLE(h16)));
    ck_assert(hmatch(TABLE(b8), TABLE(hu32)));
    ck_assert(hmatch(TABLE(b8), TABLE(hu8)));
    ck_assert(!hmatch(TABLE(b8), TABLE(h6)));
    ck_assert(!hmatch(TABLE(b8), TABLE(hs)));
    ck_assert(!hmatch(TABLE(b8), TABLE(hb)));

    amqp_field bs[] = { FS("n", "5") };
    ck_assert(hmatch(TABLE(bs), TABLE(hs)));
    ck_assert(!hmatch(TABLE(bs), TABLE(h64)));
    amqp_field bs_case[] = { FS("n", "abc") };
    amqp_field hs_case[] = { FS("n", "ABC") };
    ck_assert(!hmatch(TABLE(bs_case), TABLE(hs_case)));
}
END_TEST

START_TEST(test_headers_empty_binding)
{
    amqp_table empty = { 0, NULL };
    amqp_field h[] = { FS("a", "x") };
    /* all with no keys matches everything, headers or not... */
    ck_assert(route_headers_match(&empty, &TABLE(h)));
    ck_assert(route_headers_match(&empty, NULL));
    ck_assert(route_headers_match(NULL, NULL));
    /* ...any with no keys matches nothing. */
    amqp_field any[] = { FS("x-match", "any") };
    ck_assert(!hmatch(TABLE(any), TABLE(h)));
    ck_assert(!route_headers_match(&TABLE(any), NULL));
}
END_TEST

START_TEST(test_headers_bad_xmatch)
{
    amqp_field bad[] = { FS("x-match", "some"), FS("a", "x") };
    amqp_field bad_type[] = { FI("x-match", 'I', 1) };
    amqp_field h[] = { FS("a", "x") };
    ck_assert(!hmatch(TABLE(bad), TABLE(h)));
    ck_assert(!hmatch(TABLE(bad_type), TABLE(h)));
}
END_TEST

/* ---- through a headers route_table ------------------------------------- */

/* Encodes t with its length prefix into a malloc'd buffer. */
static uint8_t *
encode(amqp_table t, uint32_t *len)
{
    size_t n = amqp_table_size(&t);
    uint8_t *buf = malloc(n);
    ck_assert_uint_eq(amqp_table_encode(&t, buf), n);
    *len = (uint32_t)n;
    return buf;
}

static int
bind_table(route_table *rt, void *dest, amqp_table args)
{
    uint32_t len;
    uint8_t *buf = encode(args, &len);
    int rc = route_bind(rt, dest, NULL, AMQP_BYTES_LIT(""), buf, len);
    free(buf);  /* the table copied it */
    return rc;
}

static void
mark_emit(void *dest, void *ctx)
{
    (void)ctx;
    (*(int *)dest)++;
}

START_TEST(test_headers_table_routing)
{
    route_table *rt = route_table_new(ROUTE_HEADERS, NULL);
    int qall = 0, qany = 0, qvoid = 0, qempty = 0, qanyx = 0;
    amqp_field ball[] = { FS("x-match", "all"), FS("fmt", "pdf"), FI("v", 'I', 2) };
    amqp_field bany[] = { FS("x-match", "any"), FS("fmt", "pdf"), FS("fmt2", "png") };
    amqp_field bvoid[] = { FV("urgent") };
    amqp_field banyx[] = { FS("x-match", "any-with-x"), FS("x-route", "r1") };
    ck_assert_int_eq(bind_table(rt, &qall, TABLE(ball)), 0);
    ck_assert_int_eq(bind_table(rt, &qany, TABLE(bany)), 0);
    ck_assert_int_eq(bind_table(rt, &qvoid, TABLE(bvoid)), 0);
    ck_assert_int_eq(route_bind(rt, &qempty, NULL, AMQP_BYTES_LIT(""), NULL, 0), 0);
    ck_assert_int_eq(bind_table(rt, &qanyx, TABLE(banyx)), 0);
    ck_assert_int_eq(bind_table(rt, &qall, TABLE(ball)), 1);
    ck_assert_uint_eq(route_count(rt), 5);

    /* The caller's decoded headers: v as a different integer width. */
    amqp_field h1[] = { FS("fmt", "pdf"), FI("v", 'l', 2), FS("x-route", "r1") };
    route_match(rt, AMQP_BYTES_LIT("ignored"), &TABLE(h1), mark_emit, NULL);
    ck_assert_int_eq(qall, 1);
    ck_assert_int_eq(qany, 1);
    ck_assert_int_eq(qvoid, 0);
    ck_assert_int_eq(qempty, 1);
    ck_assert_int_eq(qanyx, 1);

    amqp_field h2[] = { FV("urgent"), FS("fmt2", "png") };
    route_match(rt, AMQP_BYTES_LIT(""), &TABLE(h2), mark_emit, NULL);
    ck_assert_int_eq(qall, 1);
    ck_assert_int_eq(qany, 2);
    ck_assert_int_eq(qvoid, 1);
    ck_assert_int_eq(qempty, 2);
    ck_assert_int_eq(qanyx, 1);

    route_match(rt, AMQP_BYTES_LIT(""), NULL, mark_emit, NULL);
    ck_assert_int_eq(qempty, 3);
    ck_assert_int_eq(qall + qany + qvoid + qanyx, 1 + 2 + 1 + 1);

    route_table_free(rt);
}
END_TEST

START_TEST(test_headers_table_rejects)
{
    route_table *rt = route_table_new(ROUTE_HEADERS, NULL);
    int q;
    amqp_field bad[] = { FS("x-match", "most"), FS("a", "x") };
    amqp_field bad_type[] = { FI("x-match", 'I', 1) };
    amqp_field bad_void[] = { FV("x-match") };
    ck_assert_int_eq(bind_table(rt, &q, TABLE(bad)), -2);
    ck_assert_int_eq(bind_table(rt, &q, TABLE(bad_type)), -2);
    ck_assert_int_eq(bind_table(rt, &q, TABLE(bad_void)), -2);

    /* Bytes that do not decode: unknown value type 'Z'. */
    static const uint8_t garbage[] = { 0, 0, 0, 4, 1, 'a', 'Z', 0 };
    ck_assert_int_eq(route_bind(rt, &q, NULL, AMQP_BYTES_LIT(""), garbage, sizeof garbage), -1);
    /* A prefix longer than the bytes given. */
    static const uint8_t truncated[] = { 0, 0, 0, 9, 1, 'a', 'V' };
    ck_assert_int_eq(route_bind(rt, &q, NULL, AMQP_BYTES_LIT(""), truncated, sizeof truncated), -1);
    /* A valid table followed by stray bytes. */
    static const uint8_t trailing[] = { 0, 0, 0, 3, 1, 'a', 'V', 0xff };
    ck_assert_int_eq(route_bind(rt, &q, NULL, AMQP_BYTES_LIT(""), trailing, sizeof trailing), -1);
    ck_assert_uint_eq(route_count(rt), 0);

    /* Rejection leaves nothing behind; a good binding still works. */
    amqp_field good[] = { FS("x-match", "any-with-x"), FS("a", "x") };
    ck_assert_int_eq(bind_table(rt, &q, TABLE(good)), 0);
    ck_assert_uint_eq(route_count(rt), 1);
    route_table_free(rt);
}
END_TEST

Suite *
suite_headers(void)
{
    Suite *s = suite_create("headers");
    TCase *tc = tcase_create("headers");
    tcase_add_test(tc, test_headers_all);
    tcase_add_test(tc, test_headers_default_is_all);
    tcase_add_test(tc, test_headers_any);
    tcase_add_test(tc, test_headers_x_keys);
    tcase_add_test(tc, test_headers_void);
    tcase_add_test(tc, test_headers_typed_equality);
    tcase_add_test(tc, test_headers_empty_binding);
    tcase_add_test(tc, test_headers_bad_xmatch);
    tcase_add_test(tc, test_headers_table_routing);
    tcase_add_test(tc, test_headers_table_rejects);
    suite_add_tcase(s, tc);
    return s;
}
