/*
 * Coney's own endpoints under /api/coney/: what coney-ctl needs that
 * RabbitMQ's API has no call for (rabbitmqctl reaches the node through
 * Erlang distribution instead). They are extensions, documented as such
 * in docs/management.md, and never shadow a RabbitMQ path.
 */
#include <stdio.h>
#include <string.h>

#include "plugins/management/api.h"

/* POST /api/coney/authenticate {"user": U, "password": P}: would U log
 * in with P (rabbitmqctl authenticate_user)? Always 200, the answer in
 * the body: {"authenticated": true, "user", "tags"} or {"authenticated":
 * false, "reason"}. A peer on this host counts as loopback, so guest
 * passes over the Unix socket as over 127.0.0.1. */
static void
authenticate(http_req *rq, http_resp *rs)
{
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    const json_t *ju = json_object_get(body, "user");
    const json_t *jp = json_object_get(body, "password");
    if (!json_is_string(ju) || !json_is_string(jp)) {
        json_decref(body);
        http_error(rs, 400, "bad_request", "user and password must be strings");
        return;
    }
    const char *name = json_string_value(ju);
    amqp_bytes user = { (void *)name, (uint32_t)json_string_length(ju) };
    amqp_bytes pass = { (void *)json_string_value(jp), (uint32_t)json_string_length(jp) };
    enum auth_result r = auth_check(user, pass, http_peer_loopback(rq));
    const auth_user *u = r == AUTH_OK ? auth_user_find(user) : NULL;
    if (u) {
        http_json(rs, 200, json_pack("{s:b, s:o, s:o}", "authenticated", 1,
                                     "user", http_bytes_json(user),
                                     "tags", http_tags_json(auth_user_tags(u))));
    } else {
        char why[400];
        snprintf(why, sizeof why, r == AUTH_LOOPBACK_ONLY
                 ? "user '%s' can only log in via localhost"
                 : "user '%s' could not be authenticated", name);
        http_json(rs, 200, json_pack("{s:b, s:s}", "authenticated", 0, "reason", why));
    }
    json_decref(body);
}

const http_route http_routes_coney[] = {
    { "POST", "/api/coney/authenticate", authenticate, HTTP_NEED_ADMINISTRATOR },
    { NULL, NULL, NULL, 0 },
};
