/*
 * Topic matching: a table of key/pattern cases checked against both the
 * one-pattern reference and a real topic table, then the trie against the
 * reference by brute force over many random bindings, then patterns built
 * to make a naive matcher explode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routing/route.h"
#include "suites.h"

typedef struct topic_case {
    const char *pattern;
    const char *key;
    bool match;
} topic_case;

/* The empty string has no words (RabbitMQ's split), so "" is matched by
 * "#" and "" only; otherwise every '.' separates words, empty ones too. */
static const topic_case topic_cases[] = {
    { "a.b.c", "a.b.c", true },
    { "a.b.c", "a.b", false },
    { "a.b", "a.b.c", false },
    { "a.b.c", "a.B.c", false },
    { "*", "a", true },
    { "*", "a.b", false },
    { "*", "", false },
    { "*", ".", false },
    { "*.*", ".", true },
    { "", "", true },
    { "", "a", false },
    { "#", "", true },
    { "#", "a", true },
    { "#", "a.b.c", true },
    { "#", ".", true },
    { "#.a", "a", true },
    { "#.a", "x.y.a", true },
    { "#.a", "a.x", false },
    { "a.#", "a", true },
    { "a.#", "a.b.c", true },
    { "a.#", "b.a", false },
    { "a.#.b", "a.b", true },
    { "a.#.b", "a.x.y.b", true },
    { "a.#.b", "a.x.y.c", false },
    { "a.#.b", "a.b.b.b", true },
    { "#.#", "", true },
    { "#.#", "a.b", true },
    { "*.#", "", false },
    { "*.#", "a", true },
    { "*.#", "a.b.c", true },
    { "#.*", "", false },
    { "#.*", "a", true },
    { "#.*", "a.b", true },
    { "#.*.#", "a", true },
    { "*.*.#", "a", false },
    { "a.*.c", "a..c", true },
    { "a..b", "a..b", true },
    { "a.*.b", "a..b", true },
    { "a.b", "a..b", false },
    { "a.#.b", "a..b", true },
    { "*.a", ".a", true },
    { ".a", ".a", true },
    { "a", ".a", false },
    { "a.*", "a.", true },
    { "a.", "a.", true },
    { "a", "a.", false },
    { "a.#", "a.", true },
    { "#.", "a.b.", true },
    { "#.", "a.b", false },
    { "*.*", "a", false },
    { "a.*", "a.*", true },        /* '*' in a key is a plain word */
    { "a.b", "a.*", false },
    { "a.#", "a.#", true },
    { "a.x", "a.#", false },
    { "#.b.#.d.#", "a.b.c.d.e", true },
    { "#.b.#.d.#", "a.d.c.b.e", false },
    { "*.b.*", "a.b.c", true },
    { "*.b.*", "b.c", false },
};

#define NCASES (sizeof topic_cases / sizeof *topic_cases)

static void
count_emit(void *dest, void *ctx)
{
    (void)dest;
    (*(int *)ctx)++;
}

START_TEST(test_topic_reference_cases)
{
    ck_assert_uint_ge(NCASES, 30);
    for (size_t i = 0; i < NCASES; i++) {
        const topic_case *c = &topic_cases[i];
        bool got = route_topic_match(amqp_cstr(c->pattern), amqp_cstr(c->key));
        ck_assert_msg(got == c->match, "pattern \"%s\" key \"%s\": want %d got %d",
                      c->pattern, c->key, c->match, got);
    }
}
END_TEST

/* Each case alone in a fresh table: the trie must agree with the table. */
START_TEST(test_topic_trie_cases)
{
    for (size_t i = 0; i < NCASES; i++) {
        const topic_case *c = &topic_cases[i];
        route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
        ck_assert_ptr_nonnull(rt);
        int dest;
        ck_assert_int_eq(route_bind(rt, &dest, NULL, amqp_cstr(c->pattern), NULL, 0), 0);
        int n = 0;
        route_match(rt, amqp_cstr(c->key), NULL, count_emit, &n);
        ck_assert_msg(n == (c->match ? 1 : 0),
                      "trie: pattern \"%s\" key \"%s\": want %d emits, got %d",
                      c->pattern, c->key, c->match, n);
        route_table_free(rt);
    }
}
END_TEST

typedef struct hits {
    int *count;                    /* per destination index */
    int *base;                     /* destinations are &base[index] */
} hits;

static void
hits_emit(void *dest, void *ctx)
{
    hits *h = ctx;
    h->count[(int *)dest - h->base]++;
}

/* All the case patterns in one table at once, so they share trie nodes;
 * every key must reach exactly the patterns the reference says. */
START_TEST(test_topic_trie_shared)
{
    int dests[NCASES];
    int count[NCASES];
    route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
    for (size_t i = 0; i < NCASES; i++)
        route_bind(rt, &dests[i], NULL, amqp_cstr(topic_cases[i].pattern), NULL, 0);
    ck_assert_uint_eq(route_count(rt), NCASES);

    hits h = { count, dests };
    for (size_t k = 0; k < NCASES; k++) {
        amqp_bytes key = amqp_cstr(topic_cases[k].key);
        memset(count, 0, sizeof count);
        route_match(rt, key, NULL, hits_emit, &h);
        for (size_t p = 0; p < NCASES; p++) {
            bool want = route_topic_match(amqp_cstr(topic_cases[p].pattern), key);
            ck_assert_msg(count[p] == (want ? 1 : 0),
                          "pattern \"%s\" key \"%s\": want %d got %d emits",
                          topic_cases[p].pattern, topic_cases[k].key, want, count[p]);
        }
    }
    route_table_free(rt);
}
END_TEST

static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64: deterministic so a failure reproduces. */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Writes a random dotted string of 0..maxw words drawn from words[]. */
static void
rng_topic(uint64_t *s, char *out, const char *const *words, size_t nwords,
          int maxw)
{
    int n = (int)(rng_next(s) % (uint64_t)(maxw + 1));
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, ".");
        strcat(out, words[rng_next(s) % nwords]);
    }
}

#define RANDOM_BINDINGS 10000
#define RANDOM_KEYS 200

START_TEST(test_topic_trie_random)
{
    static const char *const pwords[] = { "a", "b", "c", "", "*", "#", "*", "#" };
    static const char *const kwords[] = { "a", "b", "c", "", "d" };
    static char patterns[RANDOM_BINDINGS][64];
    int *dests = calloc(RANDOM_BINDINGS, sizeof *dests);
    int *count = calloc(RANDOM_BINDINGS, sizeof *count);
    uint64_t seed = 0x2545f4914f6cdd1dULL;

    route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
    for (int i = 0; i < RANDOM_BINDINGS; i++) {
        rng_topic(&seed, patterns[i], pwords, 8, 6);
        ck_assert_int_eq(route_bind(rt, &dests[i], NULL, amqp_cstr(patterns[i]), NULL, 0), 0);
    }
    ck_assert_uint_eq(route_count(rt), RANDOM_BINDINGS);

    hits h = { count, dests };
    size_t matched = 0;
    for (int k = 0; k < RANDOM_KEYS; k++) {
        char key[64];
        rng_topic(&seed, key, kwords, 5, 7);
        memset(count, 0, RANDOM_BINDINGS * sizeof *count);
        route_match(rt, amqp_cstr(key), NULL, hits_emit, &h);
        for (int p = 0; p < RANDOM_BINDINGS; p++) {
            bool want = route_topic_match(amqp_cstr(patterns[p]), amqp_cstr(key));
            /* The trie emits each binding at most once, although the
             * interface would allow more. */
            ck_assert_msg(count[p] == (want ? 1 : 0),
                          "pattern \"%s\" key \"%s\": want %d got %d",
                          patterns[p], key, want, count[p]);
            matched += want;
        }
    }
    /* The generator must exercise both outcomes to mean anything. */
    ck_assert_uint_gt(matched, 1000);

    /* Unbinding half must leave exactly the other half matching. */
    for (int i = 0; i < RANDOM_BINDINGS; i += 2)
        ck_assert_int_eq(route_unbind(rt, &dests[i], amqp_cstr(patterns[i]), NULL, 0), 0);
    ck_assert_uint_eq(route_count(rt), RANDOM_BINDINGS / 2);
    for (int k = 0; k < RANDOM_KEYS / 4; k++) {
        char key[64];
        rng_topic(&seed, key, kwords, 5, 7);
        memset(count, 0, RANDOM_BINDINGS * sizeof *count);
        route_match(rt, amqp_cstr(key), NULL, hits_emit, &h);
        for (int p = 0; p < RANDOM_BINDINGS; p++) {
            bool want = p % 2 && route_topic_match(amqp_cstr(patterns[p]), amqp_cstr(key));
            ck_assert_int_eq(count[p], want ? 1 : 0);
        }
    }
    route_table_free(rt);
    free(dests);
    free(count);
}
END_TEST

/* Patterns whose ways of matching grow exponentially with their length;
 * Check's per-test timeout catches a matcher that tries them all. */
START_TEST(test_topic_pathological)
{
    char pat[512], pat2[512], key[1024];
    pat[0] = pat2[0] = key[0] = '\0';
    for (int i = 0; i < 60; i++) {
        strcat(pat, i ? ".#" : "#");
        strcat(pat2, i ? ".#.a" : "#.a");
    }
    strcat(pat, ".z");                /* forces a full search: no z in key */
    for (int i = 0; i < 250; i++)
        strcat(key, i ? ".a" : "a");

    route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
    int d1, d2, d3;
    route_bind(rt, &d1, NULL, amqp_cstr(pat), NULL, 0);
    route_bind(rt, &d2, NULL, amqp_cstr(pat2), NULL, 0);
    route_bind(rt, &d3, NULL, amqp_cstr("#.#.#.#.#.#.#.#"), NULL, 0);

    int n = 0;
    route_match(rt, amqp_cstr(key), NULL, count_emit, &n);
    int want = route_topic_match(amqp_cstr(pat), amqp_cstr(key)) +
               route_topic_match(amqp_cstr(pat2), amqp_cstr(key)) +
               route_topic_match(amqp_cstr("#.#.#.#.#.#.#.#"), amqp_cstr(key));
    ck_assert_int_eq(want, 2);
    ck_assert_int_eq(n, want);

    /* A very long key: the walk and the reference spill to the heap. */
    size_t len = 19999;
    char *big = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        big[i] = i % 2 ? '.' : 'a';
    big[len] = '\0';
    n = 0;
    route_match(rt, amqp_cstr(big), NULL, count_emit, &n);
    ck_assert_int_eq(n, 2);
    ck_assert(route_topic_match(amqp_cstr(pat2), amqp_cstr(big)));
    free(big);
    route_table_free(rt);
}
END_TEST

/* A pattern deeper than any C stack would allow to recurse through. */
START_TEST(test_topic_deep_pattern)
{
    size_t words = 50000;
    char *pat = malloc(words * 2);
    char *key = malloc(words * 2);
    for (size_t i = 0; i < words; i++) {
        pat[2 * i] = i % 5 == 1 ? '*' : 'a';
        key[2 * i] = 'a';
        pat[2 * i + 1] = key[2 * i + 1] = '.';
    }
    pat[words * 2 - 1] = key[words * 2 - 1] = '\0';
    route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
    int d;
    ck_assert_int_eq(route_bind(rt, &d, NULL, amqp_cstr(pat), NULL, 0), 0);
    int n = 0;
    route_match(rt, amqp_cstr(key), NULL, count_emit, &n);
    ck_assert_int_eq(n, 1);
    /* One word short: the walk runs out of key one level from the end. */
    n = 0;
    route_match(rt, (amqp_bytes){ key, (uint32_t)(words * 2 - 3) }, NULL,
                count_emit, &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(route_unbind(rt, &d, amqp_cstr(pat), NULL, 0), 0);
    route_table_free(rt);
    free(pat);
    free(key);
}
END_TEST

/* Unbinding prunes the trie; what remains must still match correctly and
 * a removed pattern must no longer. */
START_TEST(test_topic_unbind_prunes)
{
    route_table *rt = route_table_new(ROUTE_TOPIC, NULL);
    int d1, d2;
    route_dest_list l2 = { 0 };
    route_bind(rt, &d1, NULL, amqp_cstr("a.b.c"), NULL, 0);
    route_bind(rt, &d2, &l2, amqp_cstr("a.#"), NULL, 0);
    route_bind(rt, &d2, &l2, amqp_cstr("a.*.c"), NULL, 0);

    int n = 0;
    route_match(rt, amqp_cstr("a.b.c"), NULL, count_emit, &n);
    ck_assert_int_eq(n, 3);

    ck_assert_int_eq(route_unbind(rt, &d1, amqp_cstr("a.b.c"), NULL, 0), 0);
    ck_assert_int_eq(route_unbind(rt, &d1, amqp_cstr("a.b.c"), NULL, 0), 1);
    n = 0;
    route_match(rt, amqp_cstr("a.b.c"), NULL, count_emit, &n);
    ck_assert_int_eq(n, 2);

    ck_assert_uint_eq(route_unbind_all(&l2, NULL, NULL), 2);
    n = 0;
    route_match(rt, amqp_cstr("a.b.c"), NULL, count_emit, &n);
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(route_count(rt), 0);

    /* The emptied trie takes new bindings as before. */
    ck_assert_int_eq(route_bind(rt, &d1, NULL, amqp_cstr("a.b.c"), NULL, 0), 0);
    n = 0;
    route_match(rt, amqp_cstr("a.b.c"), NULL, count_emit, &n);
    ck_assert_int_eq(n, 1);
    route_table_free(rt);
}
END_TEST

Suite *
suite_topic(void)
{
    Suite *s = suite_create("topic");
    TCase *tc = tcase_create("topic");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_topic_reference_cases);
    tcase_add_test(tc, test_topic_trie_cases);
    tcase_add_test(tc, test_topic_trie_shared);
    tcase_add_test(tc, test_topic_trie_random);
    tcase_add_test(tc, test_topic_unbind_prunes);
    suite_add_tcase(s, tc);

    /* A short timeout on purpose: an exponential matcher fails here. */
    TCase *tp = tcase_create("pathological");
    tcase_set_timeout(tp, 10);
    tcase_add_test(tp, test_topic_pathological);
    tcase_add_test(tp, test_topic_deep_pattern);
    suite_add_tcase(s, tp);
    return s;
}
