/*
 * Headers exchanges, matched as RabbitMQ matches them. Each binding's
 * arguments are decoded once, at bind time, into memory the binding owns;
 * a publish then only compares decoded values. Matching is per binding by
 * nature (no index can answer "any of these keys equal"), so a publish
 * walks the table's list of bindings.
 *
 * x-match picks the rule: all (the default) or any, and whether keys that
 * start with "x-" take part (all-with-x, any-with-x) or are skipped as
 * arguments meant for the broker. x-match itself never takes part. A
 * binding value of kind 'V' asks only that the header be present.
 */
#include <string.h>

#include "routing/route_int.h"

static bool
route_bytes_is(amqp_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.data, s, n) == 0;
}

/* First field named key, or NULL. Local because amqp_table_get wants a
 * NUL-terminated name and binding keys are counted bytes. */
static const amqp_value *
route_headers_find(const amqp_table *t, amqp_bytes key)
{
    if (!t)
        return NULL;
    for (uint32_t i = 0; i < t->n; i++) {
        const amqp_field *f = &t->fields[i];
        if (f->key.len == key.len &&
            (key.len == 0 || memcmp(f->key.data, key.data, key.len) == 0))
            return &f->value;
    }
    return NULL;
}

/* Reads x-match; false if present but not one of the four strings, which
 * RabbitMQ refuses at bind time. */
static bool
route_headers_xmatch(const amqp_table *args, enum route_xmatch *out)
{
    const amqp_value *v = route_headers_find(args, AMQP_BYTES_LIT("x-match"));
    if (!v) {
        *out = ROUTE_XMATCH_ALL;
        return true;
    }
    if (v->kind != 'S')
        return false;
    if (route_bytes_is(v->v.bytes, "all"))
        *out = ROUTE_XMATCH_ALL;
    else if (route_bytes_is(v->v.bytes, "any"))
        *out = ROUTE_XMATCH_ANY;
    else if (route_bytes_is(v->v.bytes, "all-with-x"))
        *out = ROUTE_XMATCH_ALL_WITH_X;
    else if (route_bytes_is(v->v.bytes, "any-with-x"))
        *out = ROUTE_XMATCH_ANY_WITH_X;
    else
        return false;
    return true;
}

static bool
route_headers_eval(const amqp_table *args, enum route_xmatch mode,
                   const amqp_table *headers)
{
    bool all = mode == ROUTE_XMATCH_ALL || mode == ROUTE_XMATCH_ALL_WITH_X;
    bool with_x = mode == ROUTE_XMATCH_ALL_WITH_X ||
                  mode == ROUTE_XMATCH_ANY_WITH_X;

    for (uint32_t i = 0; i < args->n; i++) {
        const amqp_field *f = &args->fields[i];
        if (route_bytes_is(f->key, "x-match"))
            continue;
        if (!with_x && f->key.len >= 2 && memcmp(f->key.data, "x-", 2) == 0)
            continue;
        const amqp_value *hv = route_headers_find(headers, f->key);
        bool ok = hv && (f->value.kind == 'V' || amqp_value_eq(&f->value, hv));
        /* Stop at the first field that decides the answer. */
        if (ok != all)
            return ok;
    }
    /* Every field agreed: all holds, any found nothing (so "any" with no
     * fields matches nothing and "all" with none matches everything). */
    return all;
}

bool
route_headers_match(const amqp_table *binding_args, const amqp_table *headers)
{
    static const amqp_table empty;
    enum route_xmatch mode;
    if (!binding_args)
        binding_args = &empty;
    if (!route_headers_xmatch(binding_args, &mode))
        return false;
    return route_headers_eval(binding_args, mode, headers);
}

/* The index is one list of every binding (the index pointer is its
 * head): header matching looks at each. */
static int
route_headers_init(route_table *rt)
{
    rt->index = NULL;
    return 0;
}

static void
route_headers_fini(route_table *rt)
{
}

static int
route_headers_add(route_table *rt, route_rec *b)
{
    route_rec_headers *h = route_rec_hdr(b);
    h->args = (amqp_table){ 0, NULL };
    if (b->args_len) {
        size_t off = 0;
        /* Decoded from the binding's own copy so the strings it borrows
         * live exactly as long as the binding. */
        int rc = amqp_table_decode(route_rec_args(b), b->args_len, &off, &h->args, &h->pool);
        if (rc != AMQP_OK || off != b->args_len) {
            amqp_pool_free(&h->pool);
            return -1;
        }
    }
    if (!route_headers_xmatch(&h->args, &h->xmatch)) {
        amqp_pool_free(&h->pool);
        return -2;
    }
    route_grp_push((route_rec **)&rt->index, b);
    return 0;
}

static void
route_headers_remove(route_table *rt, route_rec *b)
{
    route_grp_unlink((route_rec **)&rt->index, b);
    amqp_pool_free(&route_rec_hdr(b)->pool);
}

static void
route_headers_match_all(const route_table *rt, amqp_bytes key,
                        const amqp_table *headers, route_emit_fn emit,
                        void *ctx)
{
    for (const route_rec *b = rt->index; b; b = b->grp_next) {
        const route_rec_headers *h = route_rec_hdr(b);
        if (route_headers_eval(&h->args, h->xmatch, headers))
            emit(b->dest, ctx);
    }
}

const route_ops route_headers_ops = {
    .init = route_headers_init,
    .fini = route_headers_fini,
    .add = route_headers_add,
    .remove = route_headers_remove,
    .match = route_headers_match_all,
};
