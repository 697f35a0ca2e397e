/*
 * Routing: exchanges of the four AMQP types and their bindings.
 *
 * An exchange here is only a routing table: it maps (routing key, headers)
 * to a set of destinations. A destination is an opaque pointer owned by the
 * caller (the broker passes its queue or exchange objects); routing never
 * dereferences it. The broker keeps names, flags and arguments; this layer
 * keeps just what matching needs, so it can be unit-tested alone.
 *
 * Matching never scans every binding: direct is a hash of keys, topic a
 * trie of words (see topic.c), fanout a list, headers a list of compiled
 * argument sets (header matching is inherently per binding).
 */
#ifndef CONEY_ROUTING_ROUTE_H
#define CONEY_ROUTING_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/amqp.h"

enum route_type {
    ROUTE_DIRECT,
    ROUTE_FANOUT,
    ROUTE_TOPIC,
    ROUTE_HEADERS,
};

/* Parses "direct", "fanout", "topic", "headers"; false for anything else. */
bool route_type_parse(amqp_bytes name, enum route_type *out);
const char *route_type_name(enum route_type t);

typedef struct route_table route_table;

/* A binding as the caller sees it when listing. key and args borrow from
 * the table and are valid until that binding is removed. */
typedef struct route_binding {
    void *dest;
    amqp_bytes key;
    const uint8_t *args;           /* encoded arguments table, with prefix */
    uint32_t args_len;
} route_binding;

/* Every binding to one destination, across every table: the destination
 * holds one (zeroed) and passes it to route_bind, so that when it goes
 * route_unbind_all finds its bindings without scanning any table. */
typedef struct route_dest_list {
    struct route_rec *head;
} route_dest_list;

/* owner is the caller's (the broker passes the exchange) and is handed
 * back by route_table_owner. */
route_table *route_table_new(enum route_type type, void *owner);
/* Frees the table and its bindings (taking them off their destinations'
 * lists); destinations are not touched. */
void route_table_free(route_table *rt);
enum route_type route_table_type(const route_table *rt);
void *route_table_owner(const route_table *rt);

/*
 * Adds a binding (dest, key, args). A binding is identified by all three;
 * args compare as encoded bytes, as RabbitMQ compares binding arguments.
 * args is the encoded arguments table with its 4-byte length prefix (may be
 * NULL/0 for an empty table); both key and args are copied.
 * Returns 0 if added, 1 if an identical binding exists (not an error),
 * -1 on allocation failure or a topic pattern with a word over 65535
 * bytes, or, for a headers table, arguments that do not decode or an
 * x-match that is not all/any/all-with-x/any-with-x (-2).
 * A new binding joins dl, the destination's list (NULL: none; then only
 * route_unbind and route_table_free remove it).
 */
int route_bind(route_table *rt, void *dest, route_dest_list *dl,
               amqp_bytes key, const uint8_t *args, uint32_t args_len);

/* Removes the identified binding. Returns 0 if removed, 1 if not found. */
int route_unbind(route_table *rt, void *dest, amqp_bytes key,
                 const uint8_t *args, uint32_t args_len);

/* Removes every binding on dl, from whichever tables hold them, in time
 * proportional to their number. gone (if not NULL) sees each one, with its
 * table, just before it goes; it must not change any table. Returns how
 * many were removed. */
typedef void (*route_gone_fn)(route_table *rt, const route_binding *b, void *ctx);
size_t route_unbind_all(route_dest_list *dl, route_gone_fn gone, void *ctx);

/* Number of bindings. */
size_t route_count(const route_table *rt);

/* Calls fn for each binding, in no particular order. fn must not change
 * the table. */
typedef void (*route_binding_fn)(const route_binding *b, void *ctx);
void route_foreach(const route_table *rt, route_binding_fn fn, void *ctx);

/*
 * Calls emit for every destination whose binding matches. headers is the
 * message's decoded headers table (NULL if none; only headers tables read
 * it). A destination bound several times that match may be emitted more
 * than once: the caller deduplicates (it needs to anyway across
 * exchange-to-exchange hops).
 */
typedef void (*route_emit_fn)(void *dest, void *ctx);
void route_match(const route_table *rt, amqp_bytes key,
                 const amqp_table *headers, route_emit_fn emit, void *ctx);

/* ---- the pieces, exposed for unit tests -------------------------------- */

/* Topic matching of one key against one pattern, by the same rules the
 * trie uses ('*' exactly one word, '#' zero or more, words split on '.'). */
bool route_topic_match(amqp_bytes pattern, amqp_bytes key);

enum route_xmatch { ROUTE_XMATCH_ALL, ROUTE_XMATCH_ANY,
                    ROUTE_XMATCH_ALL_WITH_X, ROUTE_XMATCH_ANY_WITH_X };

/* Headers matching as RabbitMQ does it: binding args against message
 * headers. x-match selects all/any and whether x- keys take part; a
 * binding argument of kind 'V' (void) matches on presence alone. */
bool route_headers_match(const amqp_table *binding_args,
                         const amqp_table *headers);

#endif
