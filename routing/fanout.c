/*
 * Fanout exchanges: every binding matches, whatever its key, so the
 * table's own list of bindings is the whole index.
 */
#include "routing/route_int.h"

static int
route_fanout_init(route_table *rt)
{
    return 0;
}

static void
route_fanout_fini(route_table *rt)
{
}

static int
route_fanout_add(route_table *rt, route_rec *b)
{
    return 0;
}

static void
route_fanout_remove(route_table *rt, route_rec *b)
{
}

static void
route_fanout_match(const route_table *rt, amqp_bytes key,
                   const amqp_table *headers, route_emit_fn emit, void *ctx)
{
    for (const route_rec *b = rt->head; b; b = b->next)
        emit(b->pub.dest, ctx);
}

const route_ops route_fanout_ops = {
    .init = route_fanout_init,
    .fini = route_fanout_fini,
    .add = route_fanout_add,
    .remove = route_fanout_remove,
    .match = route_fanout_match,
};
