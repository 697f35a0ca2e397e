/*
 * Route tables of every type: binding identity (dest, key, arguments),
 * idempotent bind, unbind, removal by destination, listing, counting, and
 * what each type matches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/route.h"
#include "suites.h"

static const enum route_type all_types[] = {
    ROUTE_DIRECT, ROUTE_FANOUT, ROUTE_TOPIC, ROUTE_HEADERS,
};
#define NTYPES (sizeof all_types / sizeof *all_types)

/* Encoded {"k": longstr v} with its prefix, in out (room for 64 bytes). */
static uint32_t
args_with(uint8_t *out, const char *v)
{
    amqp_field f = { AMQP_BYTES_LIT("k"), { .kind = 'S', .v.bytes = amqp_cstr(v) } };
    amqp_table t = { 1, &f };
    size_t n = amqp_table_size(&t);
    ck_assert_uint_le(n, 64);
    ck_assert_uint_eq(amqp_table_encode(&t, out), n);
    return (uint32_t)n;
}

typedef struct seen {
    int n;
    void *dest[16];
    amqp_bytes key[16];
    uint32_t args_len[16];
} seen;

static void
seen_binding(const route_binding *b, void *ctx)
{
    seen *s = ctx;
    ck_assert_int_lt(s->n, 16);
    s->dest[s->n] = b->dest;
    s->key[s->n] = b->key;
    s->args_len[s->n] = b->args_len;
    s->n++;
}

static void
seen_emit(void *dest, void *ctx)
{
    seen *s = ctx;
    ck_assert_int_lt(s->n, 16);
    s->dest[s->n++] = dest;
}

static int
seen_count(const seen *s, void *dest)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->dest[i] == dest;
    return n;
}

START_TEST(test_route_type_names)
{
    for (size_t i = 0; i < NTYPES; i++) {
        enum route_type t;
        ck_assert(route_type_parse(amqp_cstr(route_type_name(all_types[i])), &t));
        ck_assert_int_eq(t, all_types[i]);
        route_table *rt = route_table_new(all_types[i], NULL);
        ck_assert_int_eq(route_table_type(rt), all_types[i]);
        route_table_free(rt);
    }
    enum route_type t;
    ck_assert(!route_type_parse(AMQP_BYTES_LIT("Direct"), &t));
    ck_assert(!route_type_parse(AMQP_BYTES_LIT("x-delayed-message"), &t));
    ck_assert(!route_type_parse(AMQP_BYTES_LIT(""), &t));
    ck_assert(!route_type_parse(AMQP_BYTES_LIT("topicx"), &t));
    ck_assert_str_eq(route_type_name(ROUTE_HEADERS), "headers");
}
END_TEST

/* The identity rules hold the same for every type (the loop index _i is
 * Check's, one run per type). */
START_TEST(test_route_bind_unbind)
{
    route_table *rt = route_table_new(all_types[_i], NULL);
    int q1, q2;
    route_dest_list l1 = { 0 }, l2 = { 0 };
    amqp_bytes k = AMQP_BYTES_LIT("k"), k2 = AMQP_BYTES_LIT("k2");

    ck_assert_uint_eq(route_count(rt), 0);
    ck_assert_int_eq(route_bind(rt, &q1, &l1, k, NULL, 0), 0);
    ck_assert_int_eq(route_bind(rt, &q1, &l1, k, NULL, 0), 1);
    ck_assert_uint_eq(route_count(rt), 1);
    ck_assert_int_eq(route_bind(rt, &q2, &l2, k, NULL, 0), 0);
    ck_assert_int_eq(route_bind(rt, &q1, &l1, k2, NULL, 0), 0);
    ck_assert_uint_eq(route_count(rt), 3);

    /* Unbinding what is not there changes nothing. */
    ck_assert_int_eq(route_unbind(rt, &q2, k2, NULL, 0), 1);
    ck_assert_int_eq(route_unbind(rt, &q1, AMQP_BYTES_LIT("K"), NULL, 0), 1);
    ck_assert_uint_eq(route_count(rt), 3);

    ck_assert_int_eq(route_unbind(rt, &q2, k, NULL, 0), 0);
    ck_assert_int_eq(route_unbind(rt, &q2, k, NULL, 0), 1);
    ck_assert_uint_eq(route_count(rt), 2);
    ck_assert_ptr_null(l2.head);        /* unbinding took it off q2's list */

    /* Rebinding after unbind adds it again. */
    ck_assert_int_eq(route_bind(rt, &q2, &l2, k, NULL, 0), 0);
    ck_assert_uint_eq(route_unbind_all(&l1, NULL, NULL), 2);
    ck_assert_uint_eq(route_unbind_all(&l1, NULL, NULL), 0);
    ck_assert_uint_eq(route_count(rt), 1);

    seen s = { 0 };
    route_foreach(rt, seen_binding, &s);
    ck_assert_int_eq(s.n, 1);
    ck_assert_ptr_eq(s.dest[0], &q2);
    ck_assert(amqp_bytes_eq(s.key[0], k));
    route_table_free(rt);
}
END_TEST

START_TEST(test_route_args_identity)
{
    route_table *rt = route_table_new(all_types[_i], NULL);
    int q;
    amqp_bytes k = AMQP_BYTES_LIT("k");
    uint8_t a1[64], a2[64];
    uint32_t n1 = args_with(a1, "one"), n2 = args_with(a2, "two");
    static const uint8_t empty[4] = { 0, 0, 0, 0 };

    ck_assert_int_eq(route_bind(rt, &q, NULL, k, a1, n1), 0);
    ck_assert_int_eq(route_bind(rt, &q, NULL, k, a2, n2), 0);
    ck_assert_int_eq(route_bind(rt, &q, NULL, k, NULL, 0), 0);
    ck_assert_uint_eq(route_count(rt), 3);
    ck_assert_int_eq(route_bind(rt, &q, NULL, k, a1, n1), 1);
    /* An encoded empty table is the same as no arguments. */
    ck_assert_int_eq(route_bind(rt, &q, NULL, k, empty, sizeof empty), 1);
    ck_assert_uint_eq(route_count(rt), 3);

    /* The table copied the arguments: the caller's buffer is its own. */
    memset(a1, 0xAA, sizeof a1);
    uint32_t again = args_with(a1, "one");
    ck_assert_uint_eq(again, n1);

    seen s = { 0 };
    route_foreach(rt, seen_binding, &s);
    ck_assert_int_eq(s.n, 3);
    int with_args = 0;
    for (int i = 0; i < 3; i++)
        with_args += s.args_len[i] != 0;
    ck_assert_int_eq(with_args, 2);

    ck_assert_int_eq(route_unbind(rt, &q, k, a2, n2), 0);
    ck_assert_int_eq(route_unbind(rt, &q, k, a2, n2), 1);
    ck_assert_int_eq(route_unbind(rt, &q, k, empty, sizeof empty), 0);
    ck_assert_uint_eq(route_count(rt), 1);
    ck_assert_int_eq(route_unbind(rt, &q, k, a1, n1), 0);
    ck_assert_uint_eq(route_count(rt), 0);
    route_table_free(rt);
}
END_TEST

typedef struct listed {
    int n;
    bool ok;
} listed;

static void
check_listed(const route_binding *b, void *ctx)
{
    listed *l = ctx;
    int idx = *(int *)b->dest;
    char want[32];
    snprintf(want, sizeof want, "key.%d", idx);
    l->ok = l->ok && amqp_bytes_eq_cstr(b->key, want);
    if (idx % 3 == 0) {
        uint8_t a[64];
        uint32_t n = args_with(a, want);
        l->ok = l->ok && b->args_len == n && memcmp(b->args, a, n) == 0;
    } else {
        l->ok = l->ok && b->args_len == 0;
    }
    l->n++;
}

/* Listing returns every binding, with its own key and arguments, and a
 * freed table with bindings still in it leaks nothing (ASan checks). */
START_TEST(test_route_foreach_many)
{
    enum { N = 2000 };
    route_table *rt = route_table_new(all_types[_i], NULL);
    static int ids[N];
    static route_dest_list lists[N];
    for (int i = 0; i < N; i++) {
        char key[32];
        uint8_t a[64];
        ids[i] = i;
        snprintf(key, sizeof key, "key.%d", i);
        uint32_t n = i % 3 == 0 ? args_with(a, key) : 0;
        ck_assert_int_eq(route_bind(rt, &ids[i], &lists[i], amqp_cstr(key), n ? a : NULL, n), 0);
    }
    ck_assert_uint_eq(route_count(rt), N);
    listed l = { 0, true };
    route_foreach(rt, check_listed, &l);
    ck_assert_int_eq(l.n, N);
    ck_assert(l.ok);

    for (int i = 0; i < N; i += 2)
        ck_assert_uint_eq(route_unbind_all(&lists[i], NULL, NULL), 1);
    ck_assert_uint_eq(route_count(rt), N / 2);
    l = (listed){ 0, true };
    route_foreach(rt, check_listed, &l);
    ck_assert_int_eq(l.n, N / 2);
    ck_assert(l.ok);
    route_table_free(rt);
    for (int i = 0; i < N; i++)         /* the free took them off their lists */
        ck_assert_ptr_null(lists[i].head);
}
END_TEST

typedef struct gone_seen {
    int n;
    route_table *rt[4];
    void *owner[4];
    void *dest;
    bool ok;
} gone_seen;

static void
note_gone(route_table *rt, const route_binding *b, void *ctx)
{
    gone_seen *g = ctx;
    g->ok = g->ok && b->dest == g->dest && g->n < 4;
    if (g->n < 4) {
        g->rt[g->n] = rt;
        g->owner[g->n] = route_table_owner(rt);
    }
    g->n++;
}

static void
emit_count(void *dest, void *ctx)
{
    (void)dest;
    (*(int *)ctx)++;
}

/* A destination's bindings in several tables all go at once, each shown
 * to the callback with its table (and that table's owner), and nobody
 * else's binding goes with them. */
START_TEST(test_route_unbind_all_across_tables)
{
    int owners[3], q, other;
    route_dest_list lq = { 0 }, lo = { 0 };
    route_table *direct = route_table_new(ROUTE_DIRECT, &owners[0]);
    route_table *topic = route_table_new(ROUTE_TOPIC, &owners[1]);
    route_table *fanout = route_table_new(ROUTE_FANOUT, &owners[2]);
    amqp_bytes k = AMQP_BYTES_LIT("a.b");

    ck_assert_ptr_eq(route_table_owner(topic), &owners[1]);
    ck_assert_int_eq(route_bind(direct, &q, &lq, k, NULL, 0), 0);
    ck_assert_int_eq(route_bind(topic, &q, &lq, AMQP_BYTES_LIT("a.*"), NULL, 0), 0);
    ck_assert_int_eq(route_bind(topic, &q, &lq, AMQP_BYTES_LIT("#"), NULL, 0), 0);
    ck_assert_int_eq(route_bind(fanout, &q, &lq, k, NULL, 0), 0);
    ck_assert_int_eq(route_bind(topic, &other, &lo, AMQP_BYTES_LIT("a.*"), NULL, 0), 0);
    ck_assert_int_eq(route_bind(fanout, &other, &lo, k, NULL, 0), 0);

    gone_seen g = { .dest = &q, .ok = true };
    ck_assert_uint_eq(route_unbind_all(&lq, note_gone, &g), 4);
    ck_assert(g.ok);
    ck_assert_int_eq(g.n, 4);
    int in_topic = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert(g.rt[i] == direct || g.rt[i] == topic || g.rt[i] == fanout);
        ck_assert_ptr_eq(g.owner[i], route_table_owner(g.rt[i]));
        in_topic += g.rt[i] == topic;
    }
    ck_assert_int_eq(in_topic, 2);
    ck_assert_ptr_null(lq.head);
    ck_assert_uint_eq(route_count(direct), 0);
    ck_assert_uint_eq(route_count(topic), 1);
    ck_assert_uint_eq(route_count(fanout), 1);

    /* the other destination still routes, q does not */
    int hits = 0;
    route_match(topic, k, NULL, emit_count, &hits);
    route_match(fanout, k, NULL, emit_count, &hits);
    route_match(direct, k, NULL, emit_count, &hits);
    ck_assert_int_eq(hits, 2);

    /* a table freed with bindings in it takes them off their lists */
    route_table_free(topic);
    ck_assert_ptr_nonnull(lo.head);
    route_table_free(fanout);
    ck_assert_ptr_null(lo.head);
    route_table_free(direct);
}
END_TEST

START_TEST(test_route_direct_match)
{
    route_table *rt = route_table_new(ROUTE_DIRECT, NULL);
    int q1, q2, q3, q4;
    static const char nul_key[] = { 'a', '\0', 'b' };
    route_bind(rt, &q1, NULL, AMQP_BYTES_LIT("orders"), NULL, 0);
    route_bind(rt, &q2, NULL, AMQP_BYTES_LIT("orders"), NULL, 0);
    route_bind(rt, &q3, NULL, AMQP_BYTES_LIT(""), NULL, 0);
    route_bind(rt, &q4, NULL, (amqp_bytes){ nul_key, 3 }, NULL, 0);

    seen s = { 0 };
    route_match(rt, AMQP_BYTES_LIT("orders"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(seen_count(&s, &q1), 1);
    ck_assert_int_eq(seen_count(&s, &q2), 1);

    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("Orders"), NULL, seen_emit, &s);
    route_match(rt, AMQP_BYTES_LIT("orders."), NULL, seen_emit, &s);
    route_match(rt, AMQP_BYTES_LIT("#"), NULL, seen_emit, &s);
    route_match(rt, AMQP_BYTES_LIT("a"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 0);

    route_match(rt, AMQP_BYTES_LIT(""), NULL, seen_emit, &s);
    route_match(rt, (amqp_bytes){ nul_key, 3 }, NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(seen_count(&s, &q3), 1);
    ck_assert_int_eq(seen_count(&s, &q4), 1);

    /* One destination bound under two keys is reached by each. */
    route_bind(rt, &q1, NULL, AMQP_BYTES_LIT("billing"), NULL, 0);
    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("billing"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 1);
    ck_assert_ptr_eq(s.dest[0], &q1);

    /* Removing the last binding of a key removes the key. */
    route_unbind(rt, &q1, AMQP_BYTES_LIT("billing"), NULL, 0);
    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("billing"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 0);
    route_table_free(rt);
}
END_TEST

static void
direct_emit(void *dest, void *ctx)
{
    *(void **)ctx = dest;
}

/* Many keys: every one still finds exactly its destination as the hash
 * grows, and after half are gone. */
START_TEST(test_route_direct_many)
{
    enum { N = 10000 };
    route_table *rt = route_table_new(ROUTE_DIRECT, NULL);
    static int ids[N];
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "rk-%d", i);
        ck_assert_int_eq(route_bind(rt, &ids[i], NULL, amqp_cstr(key), NULL, 0), 0);
    }
    for (int i = 0; i < N; i++) {
        void *got = NULL;
        snprintf(key, sizeof key, "rk-%d", i);
        route_match(rt, amqp_cstr(key), NULL, direct_emit, &got);
        ck_assert_ptr_eq(got, &ids[i]);
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "rk-%d", i);
        ck_assert_int_eq(route_unbind(rt, &ids[i], amqp_cstr(key), NULL, 0), 0);
    }
    for (int i = 0; i < N; i++) {
        void *got = NULL;
        snprintf(key, sizeof key, "rk-%d", i);
        route_match(rt, amqp_cstr(key), NULL, direct_emit, &got);
        ck_assert_ptr_eq(got, i % 2 ? &ids[i] : NULL);
    }
    route_table_free(rt);
}
END_TEST

START_TEST(test_route_fanout_match)
{
    route_table *rt = route_table_new(ROUTE_FANOUT, NULL);
    int q1, q2, q3;
    route_dest_list l2 = { 0 };
    route_bind(rt, &q1, NULL, AMQP_BYTES_LIT(""), NULL, 0);
    route_bind(rt, &q2, &l2, AMQP_BYTES_LIT("anything"), NULL, 0);
    route_bind(rt, &q3, NULL, AMQP_BYTES_LIT("a.#"), NULL, 0);

    const char *keys[] = { "", "x", "a.b", "#" };
    for (size_t i = 0; i < 4; i++) {
        seen s = { 0 };
        route_match(rt, amqp_cstr(keys[i]), NULL, seen_emit, &s);
        ck_assert_int_eq(s.n, 3);
        ck_assert_int_eq(seen_count(&s, &q1), 1);
        ck_assert_int_eq(seen_count(&s, &q2), 1);
        ck_assert_int_eq(seen_count(&s, &q3), 1);
    }
    route_unbind_all(&l2, NULL, NULL);
    seen s = { 0 };
    route_match(rt, AMQP_BYTES_LIT("x"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(seen_count(&s, &q2), 0);
    route_table_free(rt);
}
END_TEST

START_TEST(test_route_topic_match)
{
    route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
    int q1, q2, q3;
    route_dest_list l3 = { 0 };
    route_bind(rt, &q1, NULL, AMQP_BYTES_LIT("stock.*.nyse"), NULL, 0);
    route_bind(rt, &q2, NULL, AMQP_BYTES_LIT("stock.#"), NULL, 0);
    route_bind(rt, &q3, &l3, AMQP_BYTES_LIT("#.nyse"), NULL, 0);
    /* Same pattern, different dest: both. Same dest twice: one binding. */
    route_bind(rt, &q3, &l3, AMQP_BYTES_LIT("stock.#"), NULL, 0);
    ck_assert_int_eq(route_bind(rt, &q3, &l3, AMQP_BYTES_LIT("stock.#"), NULL, 0), 1);

    seen s = { 0 };
    route_match(rt, AMQP_BYTES_LIT("stock.ibm.nyse"), NULL, seen_emit, &s);
    ck_assert_int_eq(seen_count(&s, &q1), 1);
    ck_assert_int_eq(seen_count(&s, &q2), 1);
    ck_assert_int_ge(seen_count(&s, &q3), 1);

    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("bond.ibm.nyse"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 1);
    ck_assert_ptr_eq(s.dest[0], &q3);

    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("stock"), NULL, seen_emit, &s);
    ck_assert_int_eq(seen_count(&s, &q1), 0);
    ck_assert_int_eq(seen_count(&s, &q2), 1);
    ck_assert_int_eq(seen_count(&s, &q3), 1);

    ck_assert_uint_eq(route_unbind_all(&l3, NULL, NULL), 2);
    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("bond.ibm.nyse"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 0);
    route_table_free(rt);
}
END_TEST

/* Headers tables ignore the routing key entirely. */
START_TEST(test_route_headers_ignore_key)
{
    route_table *rt = route_table_new(ROUTE_HEADERS, NULL);
    int q;
    uint8_t a[64];
    uint32_t n = args_with(a, "v");
    route_bind(rt, &q, NULL, AMQP_BYTES_LIT("some.key"), a, n);
    amqp_field f = { AMQP_BYTES_LIT("k"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("v") } };
    amqp_table h = { 1, &f };
    seen s = { 0 };
    route_match(rt, AMQP_BYTES_LIT("other"), &h, seen_emit, &s);
    ck_assert_int_eq(s.n, 1);
    s.n = 0;
    route_match(rt, AMQP_BYTES_LIT("some.key"), NULL, seen_emit, &s);
    ck_assert_int_eq(s.n, 0);
    route_table_free(rt);
}
END_TEST

Suite *
suite_route(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("route");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_route_type_names);
    tcase_add_loop_test(tc, test_route_bind_unbind, 0, NTYPES);
    tcase_add_loop_test(tc, test_route_args_identity, 0, NTYPES);
    tcase_add_loop_test(tc, test_route_foreach_many, 0, NTYPES);
    tcase_add_test(tc, test_route_unbind_all_across_tables);
    tcase_add_test(tc, test_route_direct_match);
    tcase_add_test(tc, test_route_direct_many);
    tcase_add_test(tc, test_route_fanout_match);
    tcase_add_test(tc, test_route_topic_match);
    tcase_add_test(tc, test_route_headers_ignore_key);
    suite_add_tcase(s, tc);
    return s;
}
