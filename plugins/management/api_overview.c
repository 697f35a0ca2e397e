/*
 * The node as a whole: overview, nodes, whoami, cluster name, health
 * checks, aliveness test.
 */
#include "plugins/management/management.h"

static void
whoami(http_req *rq, http_resp *rs)
{
    json_t *tags = json_array();
    const char *t = auth_user_tags(rq->user);
    while (*t) {
        const char *e = t;
        while (*e && *e != ',')
            e++;
        if (e > t)
            json_array_append_new(tags, json_stringn(t, (size_t)(e - t)));
        t = *e ? e + 1 : e;
    }
    http_json(rs, 200, json_pack("{s:s, s:o}", "name", auth_user_name(rq->user), "tags", tags));
}

const http_route http_routes_core[] = {
    { "GET", "/api/whoami", whoami, HTTP_NEED_MANAGEMENT },
    { NULL, NULL, NULL, 0 },
};
