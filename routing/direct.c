/*
 * Direct exchanges: a hash of routing keys, each entry holding the list of
 * bindings made with that key, so a publish costs one lookup plus one step
 * per matching destination, however many other keys are bound.
 */
#include <stdlib.h>
#include <string.h>

#include "routing/route_int.h"

#define ROUTE_DIRECT_MIN 16

/* One distinct bound key. Owns its copy of the key; lives while at least
 * one binding uses it. */
typedef struct route_direct_key {
    struct route_direct_key *next; /* bucket chain */
    route_rec *binds;             /* via grp_prev/grp_next */
    uint32_t hash;                 /* low bits */
    uint32_t len;
    char key[];
} route_direct_key;

typedef struct route_direct {
    route_direct_key **buckets;    /* mask + 1 of them */
    size_t mask;
    size_t nkeys;
    uint64_t seed;
} route_direct;

static int
route_direct_init(route_table *rt)
{
    route_direct *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    d->buckets = calloc(ROUTE_DIRECT_MIN, sizeof *d->buckets);
    if (!d->buckets) {
        free(d);
        return -1;
    }
    d->mask = ROUTE_DIRECT_MIN - 1;
    /* Tables differ in seed so one table's collisions say nothing about
     * another's; see route_hash_bytes for what this does not defend. */
    d->seed = route_hash_mix((uint64_t)(uintptr_t)d);
    rt->index = d;
    return 0;
}

static void
route_direct_fini(route_table *rt)
{
    route_direct *d = rt->index;
    /* Bindings are removed first (route_table_free), which frees every key
     * entry, so only the arrays remain. */
    free(d->buckets);
    free(d);
    rt->index = NULL;
}

static route_direct_key **
route_direct_slot(const route_direct *d, uint32_t h, amqp_bytes key)
{
    route_direct_key **pp = &d->buckets[h & d->mask];
    while (*pp && !((*pp)->hash == h && (*pp)->len == key.len &&
                    (key.len == 0 || memcmp((*pp)->key, key.data, key.len) == 0)))
        pp = &(*pp)->next;
    return pp;
}

/* Keeps chains short; a failed grow leaves a correct, fuller table. */
static void
route_direct_reserve(route_direct *d)
{
    size_t nb = d->mask + 1;
    if (d->nkeys < nb || nb > ((size_t)UINT32_MAX >> 1) + 1)
        return;
    route_direct_key **nbk = calloc(nb * 2, sizeof *nbk);
    if (!nbk)
        return;
    size_t mask = nb * 2 - 1;
    for (size_t i = 0; i < nb; i++) {
        route_direct_key *e = d->buckets[i];
        while (e) {
            route_direct_key *next = e->next;
            e->next = nbk[e->hash & mask];
            nbk[e->hash & mask] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = nbk;
    d->mask = mask;
}

static int
route_direct_add(route_table *rt, route_rec *b)
{
    route_direct *d = rt->index;
    amqp_bytes key = route_rec_key(b);
    uint32_t h = (uint32_t)route_hash_bytes(d->seed, key.data, key.len);
    route_direct_key **pp = route_direct_slot(d, h, key);
    route_direct_key *e = *pp;
    if (!e) {
        e = malloc(sizeof *e + key.len);
        if (!e)
            return -1;
        e->next = NULL;
        e->hash = h;
        e->binds = NULL;
        e->len = key.len;
        if (key.len)
            memcpy(e->key, key.data, key.len);
        *pp = e;
        d->nkeys++;
        route_direct_reserve(d);
    }
    route_grp_push(&e->binds, b);
    return 0;
}

static void
route_direct_remove(route_table *rt, route_rec *b)
{
    route_direct *d = rt->index;
    amqp_bytes key = route_rec_key(b);
    uint32_t h = (uint32_t)route_hash_bytes(d->seed, key.data, key.len);
    route_direct_key *e = *route_direct_slot(d, h, key);
    route_grp_unlink(&e->binds, b);
    if (e->binds)
        return;
    route_direct_key **pp = &d->buckets[e->hash & d->mask];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    d->nkeys--;
    free(e);
}

static void
route_direct_match(const route_table *rt, amqp_bytes key,
                   const amqp_table *headers, route_emit_fn emit, void *ctx)
{
    const route_direct *d = rt->index;
    uint32_t h = (uint32_t)route_hash_bytes(d->seed, key.data, key.len);
    const route_direct_key *e = *route_direct_slot(d, h, key);
    if (!e)
        return;
    for (const route_rec *b = e->binds; b; b = b->grp_next)
        emit(b->dest, ctx);
}

const route_ops route_direct_ops = {
    .init = route_direct_init,
    .fini = route_direct_fini,
    .add = route_direct_add,
    .remove = route_direct_remove,
    .match = route_direct_match,
};
