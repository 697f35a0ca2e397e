/*
 * The part of a route table every exchange type shares: binding identity,
 * storage, listing and removal. Each binding lives once, in one allocation,
 * linked three ways: into the identity hash (so bind and unbind cost O(1)
 * whatever the table's size; walking its buckets is how listing sees every
 * binding), into its type's index through the route_ops hooks (fanout and
 * headers tables, which must look at every binding to match, keep them all
 * in one list there), and into its destination's list, so that deleting a
 * queue costs its own bindings, not every binding of every exchange (a
 * thousand MQTT sessions leaving one topic exchange would otherwise cost a
 * million steps).
 */
#include <stdlib.h>
#include <string.h>

#include "routing/route_int.h"

#define ROUTE_IDS_MIN 16

static const route_ops *const route_ops_by_type[] = {
    [ROUTE_DIRECT] = &route_direct_ops,
    [ROUTE_FANOUT] = &route_fanout_ops,
    [ROUTE_TOPIC] = &route_topic_ops,
    [ROUTE_HEADERS] = &route_headers_ops,
};

static const char *const route_type_names[] = {
    [ROUTE_DIRECT] = "direct",
    [ROUTE_FANOUT] = "fanout",
    [ROUTE_TOPIC] = "topic",
    [ROUTE_HEADERS] = "headers",
};

uint64_t
route_hash_mix(uint64_t h)
{
    /* A final avalanche so that bucket masks, which keep only the low bits,
     * see every input bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t
route_hash_bytes(uint64_t seed, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return route_hash_mix(h ^ len);
}

void
route_grp_push(route_rec **head, route_rec *b)
{
    b->grp_prev = NULL;
    b->grp_next = *head;
    if (*head)
        (*head)->grp_prev = b;
    *head = b;
}

void
route_grp_unlink(route_rec **head, route_rec *b)
{
    if (b->grp_prev)
        b->grp_prev->grp_next = b->grp_next;
    else
        *head = b->grp_next;
    if (b->grp_next)
        b->grp_next->grp_prev = b->grp_prev;
    b->grp_prev = b->grp_next = NULL;
}

bool
route_type_parse(amqp_bytes name, enum route_type *out)
{
    for (size_t t = 0; t < sizeof route_type_names / sizeof *route_type_names; t++) {
        const char *s = route_type_names[t];
        if (name.len == strlen(s) && memcmp(name.data, s, name.len) == 0) {
            *out = (enum route_type)t;
            return true;
        }
    }
    return false;
}

const char *
route_type_name(enum route_type t)
{
    if ((size_t)t < sizeof route_type_names / sizeof *route_type_names)
        return route_type_names[t];
    return "unknown";
}

static const route_ops *
route_ops_of(const route_table *rt)
{
    return route_ops_by_type[rt->type];
}

route_table *
route_table_new(enum route_type type, void *owner)
{
    if ((size_t)type >= sizeof route_ops_by_type / sizeof *route_ops_by_type)
        return NULL;
    route_table *rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    rt->type = type;
    rt->owner = owner;
    rt->ids = calloc(ROUTE_IDS_MIN, sizeof *rt->ids);
    rt->ids_mask = ROUTE_IDS_MIN - 1;
    if (!rt->ids || route_ops_of(rt)->init(rt) != 0) {
        free(rt->ids);
        free(rt);
        return NULL;
    }
    return rt;
}

enum route_type
route_table_type(const route_table *rt)
{
    return rt->type;
}

void *
route_table_owner(const route_table *rt)
{
    return rt->owner;
}

size_t
route_count(const route_table *rt)
{
    return rt->count;
}

/* An encoded empty table and no table at all are the same arguments: a
 * client that sends {} must unbind what one that sent nothing bound. */
static void
route_args_normalise(const uint8_t **args, uint32_t *args_len)
{
    if (!*args || (*args_len == 4 && amqp_get32(*args) == 0)) {
        *args = NULL;
        *args_len = 0;
    }
}

static uint64_t
route_id_hash(void *dest, amqp_bytes key, const uint8_t *args,
              uint32_t args_len)
{
    uint64_t h = route_hash_mix((uint64_t)(uintptr_t)dest);
    h = route_hash_bytes(h, key.data, key.len);
    return route_hash_bytes(h, args, args_len);
}

static route_rec *
route_id_find(const route_table *rt, uint32_t h, void *dest, amqp_bytes key,
              const uint8_t *args, uint32_t args_len)
{
    for (route_rec *b = rt->ids[h & rt->ids_mask]; b; b = b->id_next) {
        if (b->id_hash == h && b->dest == dest &&
            b->key_len == key.len && b->args_len == args_len &&
            (key.len == 0 || memcmp(b->mem, key.data, key.len) == 0) &&
            (args_len == 0 || memcmp(b->mem + key.len, args, args_len) == 0))
            return b;
    }
    return NULL;
}

/* Doubles the identity hash once it holds as many bindings as buckets.
 * If that allocation fails the old buckets stay: chains grow longer but
 * the table is still correct, so a bind need not fail for it. */
static void
route_ids_reserve(route_table *rt)
{
    size_t nb = rt->ids_mask + 1;
    if (rt->count < nb || nb > ((size_t)UINT32_MAX >> 1) + 1)
        return;
    route_rec **ids = calloc(nb * 2, sizeof *ids);
    if (!ids)
        return;
    size_t mask = nb * 2 - 1;
    for (size_t i = 0; i < nb; i++) {
        route_rec *b = rt->ids[i];
        while (b) {
            route_rec *next = b->id_next;
            b->id_next = ids[b->id_hash & mask];
            ids[b->id_hash & mask] = b;
            b = next;
        }
    }
    free(rt->ids);
    rt->ids = ids;
    rt->ids_mask = mask;
}

int
route_bind(route_table *rt, void *dest, route_dest_list *dl, amqp_bytes key,
           const uint8_t *args, uint32_t args_len)
{
    route_args_normalise(&args, &args_len);
    uint32_t h = (uint32_t)route_id_hash(dest, key, args, args_len);
    if (route_id_find(rt, h, dest, key, args, args_len))
        return 1;
    route_ids_reserve(rt);

    /* one byte more: an empty key still points at a byte of ours */
    size_t size = (size_t)key.len + args_len + 1;
    if (rt->type == ROUTE_HEADERS)
        size = route_rec_headers_off(key.len, args_len) + sizeof(route_rec_headers);
    route_rec *b = calloc(1, offsetof(route_rec, mem) + size);
    if (!b)
        return -1;
    if (key.len)
        memcpy(b->mem, key.data, key.len);
    if (args_len)
        memcpy(b->mem + key.len, args, args_len);
    b->dest = dest;
    b->rt = rt;
    b->key_len = key.len;
    b->args_len = args_len;
    b->id_hash = h;

    int rc = route_ops_of(rt)->add(rt, b);
    if (rc != 0) {
        free(b);
        return rc;
    }

    route_rec **bucket = &rt->ids[h & rt->ids_mask];
    b->id_next = *bucket;
    *bucket = b;
    rt->count++;
    if (dl) {
        b->dest_next = dl->head;
        if (dl->head)
            dl->head->dest_pprev = &b->dest_next;
        b->dest_pprev = &dl->head;
        dl->head = b;
    }
    return 0;
}

/* Takes b out of every structure and frees it. */
static void
route_remove(route_table *rt, route_rec *b)
{
    route_ops_of(rt)->remove(rt, b);

    route_rec **pp = &rt->ids[b->id_hash & rt->ids_mask];
    while (*pp != b)
        pp = &(*pp)->id_next;
    *pp = b->id_next;
    rt->count--;
    if (b->dest_pprev) {
        *b->dest_pprev = b->dest_next;
        if (b->dest_next)
            b->dest_next->dest_pprev = b->dest_pprev;
    }
    free(b);
}

int
route_unbind(route_table *rt, void *dest, amqp_bytes key, const uint8_t *args,
             uint32_t args_len)
{
    route_args_normalise(&args, &args_len);
    uint32_t h = (uint32_t)route_id_hash(dest, key, args, args_len);
    route_rec *b = route_id_find(rt, h, dest, key, args, args_len);
    if (!b)
        return 1;
    route_remove(rt, b);
    return 0;
}

static route_binding
route_rec_binding(const route_rec *b)
{
    return (route_binding){ b->dest, route_rec_key(b), route_rec_args(b), b->args_len };
}

size_t
route_unbind_all(route_dest_list *dl, route_gone_fn gone, void *ctx)
{
    size_t n = 0;
    while (dl->head) {
        route_rec *b = dl->head;
        if (gone) {
            route_binding pub = route_rec_binding(b);
            gone(b->rt, &pub, ctx);
        }
        route_remove(b->rt, b);
        n++;
    }
    return n;
}

void
route_foreach(const route_table *rt, route_binding_fn fn, void *ctx)
{
    size_t seen = 0;
    for (size_t i = 0; i <= rt->ids_mask && seen < rt->count; i++) {
        for (const route_rec *b = rt->ids[i]; b; b = b->id_next, seen++) {
            route_binding pub = route_rec_binding(b);
            fn(&pub, ctx);
        }
    }
}

void
route_match(const route_table *rt, amqp_bytes key, const amqp_table *headers,
            route_emit_fn emit, void *ctx)
{
    route_ops_of(rt)->match(rt, key, headers, emit, ctx);
}

void
route_table_free(route_table *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i <= rt->ids_mask && rt->count; i++)
        while (rt->ids[i])
            route_remove(rt, rt->ids[i]);
    route_ops_of(rt)->fini(rt);
    free(rt->ids);
    free(rt);
}
