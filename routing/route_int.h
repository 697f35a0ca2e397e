/*
 * Private to routing/: the binding record, the table, and the hooks each
 * exchange type supplies. Nothing outside routing/ includes this.
 *
 * Ownership: a route_table owns every route_rec in it; a route_rec owns
 * its key and argument bytes (in mem[]) and, for headers tables, the pool
 * its decoded arguments live in. Destinations are the caller's and are
 * only ever compared as pointers.
 *
 * A broker may hold a binding per MQTT subscription by the thousand, so a
 * record holds only what every type needs, in one allocation: the key and
 * arguments follow it, and what only headers tables need (the decoded
 * arguments) follows those, in headers tables only. The index entry a
 * binding hangs on is found again from its key when it goes, and the
 * identity hash, which holds every binding, is what listing walks; the
 * destination's list is how a queue's bindings all go when it does.
 */
#ifndef CONEY_ROUTING_ROUTE_INT_H
#define CONEY_ROUTING_ROUTE_INT_H

#include "routing/route.h"

typedef struct route_rec {
    void *dest;
    struct route_rec *id_next;     /* chain in the table's identity hash */
    /* the destination's list (route_dest_list), across tables; dest_pprev
     * is NULL when the binding is on none */
    struct route_rec *dest_next, **dest_pprev;
    route_table *rt;               /* the table it is in, for that list */
    /* the list of bindings sharing one index entry (a direct key entry, a
     * topic trie node; every binding of a fanout or headers table) */
    struct route_rec *grp_prev, *grp_next;
    uint32_t id_hash;              /* of (dest, key, args), low bits */
    uint32_t key_len, args_len;
    uint8_t mem[];                 /* key bytes, then argument bytes, then
                                    * (headers tables) route_rec_headers */
} route_rec;

/* Headers tables only: the arguments decoded at bind time. Strings
 * borrow from the record's mem[], arrays from pool; both live as long
 * as the binding. */
typedef struct route_rec_headers {
    amqp_table args;
    amqp_pool pool;
    enum route_xmatch xmatch;
} route_rec_headers;

static inline amqp_bytes
route_rec_key(const route_rec *b)
{
    return (amqp_bytes){ (const char *)b->mem, b->key_len };
}

static inline const uint8_t *
route_rec_args(const route_rec *b)
{
    return b->args_len ? b->mem + b->key_len : NULL;
}

/* Where the headers part starts, from mem[]: past key and arguments,
 * aligned for it. */
static inline size_t
route_rec_headers_off(uint32_t key_len, uint32_t args_len)
{
    size_t a = _Alignof(route_rec_headers);
    size_t end = offsetof(route_rec, mem) + (size_t)key_len + args_len;
    return (end + a - 1) / a * a - offsetof(route_rec, mem);
}

static inline route_rec_headers *
route_rec_hdr(const route_rec *b)
{
    return (route_rec_headers *)(b->mem + route_rec_headers_off(b->key_len, b->args_len));
}

struct route_table {
    enum route_type type;
    size_t count;
    route_rec **ids;              /* identity hash, ids_mask + 1 buckets: every binding */
    size_t ids_mask;
    void *index;                   /* direct or topic index, owned */
    void *owner;                   /* the caller's, see route_table_new */
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
