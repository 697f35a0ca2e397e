/*
 * Fanout exchanges: every binding matches, whatever its key, so the index
 * is one list of every binding (the index pointer is its head).
 */
#include "routing/route_int.h"

static int
route_fanout_init(route_table *rt)
{
    rt->index = NULL;
    return 0;
}

static void
route_fanout_fini(route_table *rt)
{
}

static int
route_fanout_add(route_table *rt, route_rec *b)
{
    route_grp_push((route_rec **)&rt->index, b);
    return 0;
}

static void
route_fanout_remove(route_table *rt, route_rec *b)
{
    route_grp_unlink((route_rec **)&rt->index, b);
}

static void
route_fanout_match(const route_table *rt, amqp_bytes key,
                   const amqp_table *headers, route_emit_fn emit, void *ctx)
{
    for (const route_rec *b = rt->index; b; b = b->grp_next)
        emit(b->dest, ctx);
}

const route_ops route_fanout_ops = {
    .init = route_fanout_init,
    .fini = route_fanout_fini,
    .add = route_fanout_add,
    .remove = route_fanout_remove,
    .match = route_fanout_match,
};
