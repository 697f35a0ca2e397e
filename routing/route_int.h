/*
 * Private to routing/: the binding record, the table, and the hooks each
 * exchange type supplies. Nothing outside routing/ includes this.
 *
 * Ownership: a route_table owns every route_rec in it; a route_rec owns
 * its key and argument bytes (in mem[]) and, for headers tables, the pool
 * its decoded arguments live in. Destinations are the caller's and are
 * only ever compared as pointers.
 */
#ifndef CONEY_ROUTING_ROUTE_INT_H
#define CONEY_ROUTING_ROUTE_INT_H

#include "routing/route.h"

typedef struct route_rec {
    route_binding pub;             /* key/args point into mem[] */
    uint64_t id_hash;              /* of (dest, key, args) */
    struct route_rec *id_next;     /* chain in the table's identity hash */
    struct route_rec *prev, *next; /* the table's list of all bindings */
    /* The per-type index entry holding this binding (a direct key entry or
     * a topic trie node) and the list of bindings sharing it. */
    void *grp;
    struct route_rec *grp_prev, *grp_next;
    /* Headers tables only: the arguments decoded at bind time. Strings
     * borrow from mem[], arrays from pool; both live as long as the
     * binding. */
    amqp_table hargs;
    amqp_pool pool;
    enum route_xmatch xmatch;
    uint8_t mem[];                 /* key bytes, then argument bytes */
} route_rec;

struct route_table {
    enum route_type type;
    size_t count;
    route_rec *head;              /* every binding, for listing and scans */
    route_rec **ids;              /* identity hash, ids_mask + 1 buckets */
    size_t ids_mask;
    void *index;                   /* direct or topic index, owned */
};

/* What each type adds to the common storage in table.c. add runs before
 * the binding becomes visible and may refuse it (-1 no memory, -2 bad
 * arguments); remove undoes add and releases what add allocated. */
typedef struct route_ops {
    int (*init)(route_table *rt);
    void (*fini)(route_table *rt);
    int (*add)(route_table *rt, route_rec *b);
    void (*remove)(route_table *rt, route_rec *b);
    void (*match)(const route_table *rt, amqp_bytes key,
                  const amqp_table *headers, route_emit_fn emit, void *ctx);
} route_ops;

extern const route_ops route_direct_ops;
extern const route_ops route_fanout_ops;
extern const route_ops route_topic_ops;
extern const route_ops route_headers_ops;

/* A seeded 64-bit hash of bytes, shared by the identity, direct and topic
 * hashes. Seeds differ per table, but this is not a keyed PRF: it keeps
 * chains short for honest keys, not against a client crafting collisions
 * (swap in SipHash here if that becomes a threat). */
uint64_t route_hash_bytes(uint64_t seed, const void *data, size_t len);
uint64_t route_hash_mix(uint64_t h);

/* Splices b into / out of a grp list whose head is *head. */
void route_grp_push(route_rec **head, route_rec *b);
void route_grp_unlink(route_rec **head, route_rec *b);

#endif
