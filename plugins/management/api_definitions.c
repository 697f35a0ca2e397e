/*
 * Definitions: the broker's users, vhosts, permissions, exchanges, queues
 * and bindings as one JSON document in RabbitMQ's format, exported by GET
 * and merged back by POST (/api/definitions, or /api/definitions/{vhost}
 * for one vhost's objects). A file exported by RabbitMQ 3.x imports as
 * well: its password hashes are the same scheme (base64 of salt and
 * digest, with the hashing algorithm named), its tags a string or an
 * array.
 *
 * The import goes through the operations the HTTP handlers use
 * (http_user_put, http_vhost_put, http_exchange_declare, ...), so durable
 * objects are persisted and checked exactly as when they are declared one
 * by one. It merges as RabbitMQ's does: an object that exists already is
 * kept as it is (an inequivalent one is logged and skipped), and the
 * first real error stops the import with a 400 naming it; what came
 * before stays; a policy of the same name is replaced, as RabbitMQ
 * does. Sections Coney does not implement (runtime parameters other than
 * vhost limits, operator policies, which RabbitMQ does not export
 * either) are skipped with a log line.
 */
#include <stdio.h>
#include <string.h>

#include "broker/log.h"
#include "plugins/management/api.h"

/* The RabbitMQ version the export claims to be from; api_overview.c
 * reports the same one as rabbitmq_version. */
#define DEFINITIONS_RABBIT_VERSION "3.13.0"

/* ---- export ------------------------------------------------------------------- */

static void
add_user(void *ctx, const auth_user *u)
{
    json_array_append_new(ctx, http_user_json(u));
}

static void
perm_row(void *ctx, int n, const char *const *c)
{
    (void)n;
    json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", c[0], "vhost", c[1],
                                         "configure", c[2], "write", c[3], "read", c[4]));
}

static void
topic_perm_row(void *ctx, int n, const char *const *c)
{
    (void)n;
    json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", c[0], "vhost", c[1],
                                         "exchange", c[2], "write", c[3], "read", c[4]));
}

static json_t *
vhost_def(const vhost *vh)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", http_bytes_json(vh->name));
    json_object_set_new(o, "description", http_bytes_json(amqp_cstr(vh->description)));
    json_object_set_new(o, "tags", http_tags_json(vh->tags));
    json_object_set_new(o, "default_queue_type", json_string("classic"));
    json_t *meta = json_object();
    json_object_set_new(meta, "description", http_bytes_json(amqp_cstr(vh->description)));
    json_object_set_new(meta, "tags", http_tags_json(vh->tags));
    json_object_set_new(meta, "default_queue_type", json_string("classic"));
    json_object_set_new(o, "metadata", meta);
    json_t *lim = json_object();
    if (vh->max_connections >= 0)
        json_object_set_new(lim, "max-connections", json_integer(vh->max_connections));
    if (vh->max_queues >= 0)
        json_object_set_new(lim, "max-queues", json_integer(vh->max_queues));
    json_object_set_new(o, "limits", lim);
    return o;
}

typedef struct export_ctx {
    const vhost *vh;
    const exchange *src;
    bool with_vhost;               /* a whole-broker export names each object's vhost */
    json_t *bindings;
} export_ctx;

static void
binding_def(const route_binding *b, void *arg)
{
    export_ctx *c = arg;
    bool to_queue = *(const enum dest_kind *)b->dest == DEST_QUEUE;
    if (to_queue && ((const queue *)b->dest)->exclusive)
        return;
    amqp_bytes dname = to_queue ? ((const queue *)b->dest)->name
                                : ((const exchange *)b->dest)->name;
    json_t *o = json_object();
    json_object_set_new(o, "source", http_bytes_json(c->src->name));
    if (c->with_vhost)
        json_object_set_new(o, "vhost", http_bytes_json(c->vh->name));
    json_object_set_new(o, "destination", http_bytes_json(dname));
    json_object_set_new(o, "destination_type", json_string(to_queue ? "queue" : "exchange"));
    json_object_set_new(o, "routing_key", http_bytes_json(b->key));
    json_object_set_new(o, "arguments", http_args_json(b->args, b->args_len));
    json_array_append_new(c->bindings, o);
}

/* One vhost's exchanges (not the default and amq.* ones), queues (not
 * exclusive ones: they die with their connection) and bindings. */
static void
export_objects(const vhost *vh, bool with_vhost, json_t *queues, json_t *exchanges,
               json_t *bindings)
{
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it)) {
        const exchange *x = it.e->value;
        if (x->builtin)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", http_bytes_json(x->name));
        if (with_vhost)
            json_object_set_new(o, "vhost", http_bytes_json(vh->name));
        json_object_set_new(o, "type", json_string(exchange_type_name(x)));
        json_object_set_new(o, "durable", json_boolean(x->durable));
        json_object_set_new(o, "auto_delete", json_boolean(x->auto_delete));
        json_object_set_new(o, "internal", json_boolean(x->internal));
        json_object_set_new(o, "arguments", http_args_json(x->args, x->args_len));
        json_array_append_new(exchanges, o);
    }
    for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
        const queue *q = it.e->value;
        if (q->exclusive)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", http_bytes_json(q->name));
        if (with_vhost)
            json_object_set_new(o, "vhost", http_bytes_json(vh->name));
        json_object_set_new(o, "durable", json_boolean(q->durable));
        json_object_set_new(o, "auto_delete", json_boolean(q->auto_delete));
        json_object_set_new(o, "arguments", http_args_json(q->args, q->args_len));
        json_array_append_new(queues, o);
    }
    export_ctx c = { vh, NULL, with_vhost, bindings };
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it)) {
        const exchange *x = it.e->value;
        if (x == vh->default_ex)
            continue;
        c.src = x;
        route_foreach(x->rt, binding_def, &c);
    }
}

static json_t *
export_head(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "rabbit_version", json_string(DEFINITIONS_RABBIT_VERSION));
    json_object_set_new(o, "rabbitmq_version", json_string(DEFINITIONS_RABBIT_VERSION));
    json_object_set_new(o, "product_name", json_string("Coney"));
    json_object_set_new(o, "product_version", json_string(CONEY_VERSION));
    return o;
}

static void
definitions_get(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs >= 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *o = export_head();
    json_t *queues = json_array(), *exchanges = json_array(), *bindings = json_array();
    if (!only) {
        json_t *users = json_array(), *vhosts = json_array();
        json_t *perms = json_array(), *topic = json_array();
        auth_each_user(add_user, users);
        for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it))
            json_array_append_new(vhosts, vhost_def(it.e->value));
        auth_list_permissions(NULL, NULL, perm_row, perms);
        auth_list_topic_permissions(NULL, NULL, topic_perm_row, topic);
        json_object_set_new(o, "users", users);
        json_object_set_new(o, "vhosts", vhosts);
        json_object_set_new(o, "permissions", perms);
        json_object_set_new(o, "topic_permissions", topic);
        json_object_set_new(o, "parameters", json_array());
        json_object_set_new(o, "global_parameters", json_array());
    } else {
        json_object_set_new(o, "parameters", json_array());
    }
    json_t *policies = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        if (only && vh != only)
            continue;
        for (const policy *p = vh->policies[POLICY_USER]; p; p = p->next) {
            json_t *j = http_policy_json(vh, p);
            if (only)              /* a vhost's export names no vhost, as RabbitMQ's */
                json_object_del(j, "vhost");
            json_array_append_new(policies, j);
        }
    }
    json_object_set_new(o, "policies", policies);
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it))
        if (!only || it.e->value == only)
            export_objects(it.e->value, !only, queues, exchanges, bindings);
    json_object_set_new(o, "queues", queues);
    json_object_set_new(o, "exchanges", exchanges);
    json_object_set_new(o, "bindings", bindings);
    http_json(rs, 200, o);
}

/* ---- import ------------------------------------------------------------------- */

typedef struct import_ctx {
    vhost *only;                   /* /api/definitions/{vhost}: every object goes here */
    const auth_user *actor;
    char why[800];
} import_ctx;

static const char *
str_field(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An array section, or NULL (absent; not an array is an error). */
static bool
section(const json_t *doc, const char *key, const json_t **out, import_ctx *c)
{
    *out = json_object_get(doc, key);
    if (!*out || json_is_null(*out)) {
        *out = NULL;
        return true;
    }
    if (!json_is_array(*out)) {
        snprintf(c->why, sizeof c->why, "%s must be an array", key);
        return false;
    }
    return true;
}

/* Each item must be an object with the named string fields. */
static bool
item_ok(const json_t *item, const char *what, const char *const *fields, import_ctx *c)
{
    if (!json_is_object(item)) {
        snprintf(c->why, sizeof c->why, "every item of %s must be an object", what);
        return false;
    }
    for (; *fields; fields++) {
        if (!str_field(item, *fields)) {
            snprintf(c->why, sizeof c->why, "an item of %s has no string field '%s'", what,
                     *fields);
            return false;
        }
    }
    return true;
}

static bool
set_limits(const json_t *lim, const char *name, bool user, import_ctx *c)
{
    if (!json_is_object(lim))
        return true;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)lim, key, v) {
        if (!json_is_integer(v)) {
            snprintf(c->why, sizeof c->why, "limit '%s' of '%s' must be an integer", key, name);
            return false;
        }
        int rc = user ? auth_user_set_limit(name, key, json_integer_value(v), c->why,
                                            sizeof c->why)
                      : auth_vhost_set_limit(name, key, json_integer_value(v), c->why,
                                             sizeof c->why);
        if (rc < 0)
            return false;
    }
    return true;
}

static bool
import_users(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "users", &a, c))
        return false;
    if (!a)
        return true;
    static const char *const f[] = { "name", NULL };
    size_t i;
    json_t *u;
    json_array_foreach(a, i, u) {
        if (!item_ok(u, "users", f, c))
            return false;
        const char *name = str_field(u, "name");
        json_t *body = json_object();
        const char *keys[] = { "password_hash", "hashing_algorithm", "password", "tags" };
        for (size_t k = 0; k < 4; k++)
            if (json_object_get(u, keys[k]))
                json_object_set(body, keys[k], json_object_get(u, keys[k]));
        if (!json_object_get(body, "password_hash") && !json_object_get(body, "password"))
            json_object_set_new(body, "password_hash", json_string(""));
        int st = http_user_put(name, body, c->why, sizeof c->why);
        json_decref(body);
        if (st >= 400 || !set_limits(json_object_get(u, "limits"), name, true, c))
            return false;
    }
    return true;
}

static bool
import_vhosts(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "vhosts", &a, c))
        return false;
    if (!a)
        return true;
    static const char *const f[] = { "name", NULL };
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!item_ok(v, "vhosts", f, c))
            return false;
        const char *name = str_field(v, "name");
        if (http_vhost_put(name, v, NULL, c->why, sizeof c->why) >= 400 ||
            !set_limits(json_object_get(v, "limits"), name, false, c))
            return false;
    }
    return true;
}

static bool
import_permissions(const json_t *doc, import_ctx *c, bool topic)
{
    const json_t *a;
    const char *key = topic ? "topic_permissions" : "permissions";
    if (!section(doc, key, &a, c))
        return false;
    if (!a)
        return true;
    static const char *const pf[] = { "user", "vhost", "configure", "write", "read", NULL };
    static const char *const tf[] = { "user", "vhost", "exchange", "write", "read", NULL };
    size_t i;
    json_t *p;
    json_array_foreach(a, i, p) {
        if (!item_ok(p, key, topic ? tf : pf, c))
            return false;
        int rc = topic
            ? auth_set_topic_permissions(str_field(p, "user"), str_field(p, "vhost"),
                                         str_field(p, "exchange"), str_field(p, "write"),
                                         str_field(p, "read"), c->why, sizeof c->why)
            : auth_set_permissions(str_field(p, "user"), str_field(p, "vhost"),
                                   str_field(p, "configure"), str_field(p, "write"),
                                   str_field(p, "read"), c->why, sizeof c->why);
        if (rc < 0)
            return false;
    }
    return true;
}

/* Runtime parameters: RabbitMQ keeps vhost limits as the component
 * "vhost-limits"; those apply, the rest is logged and skipped. */
static bool
import_parameters(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "parameters", &a, c))
        return false;
    if (!a)
        return true;
    size_t i;
    json_t *p;
    json_array_foreach(a, i, p) {
        const char *comp = json_is_object(p) ? str_field(p, "component") : NULL;
        const char *vh = json_is_object(p) ? str_field(p, "vhost") : NULL;
        if (comp && strcmp(comp, "vhost-limits") == 0 && (vh || c->only)) {
            char name[300];
            if (c->only)
                snprintf(name, sizeof name, "%.*s", (int)c->only->name.len, c->only->name.data);
            if (!set_limits(json_object_get(p, "value"), c->only ? name : vh, false, c))
                return false;
            continue;
        }
        log_warning("definitions: skipping runtime parameter of component '%s' (not supported)",
                 comp ? comp : "?");
    }
    return true;
}

/* The vhost of an object: the path's, or the item's "vhost" field. */
static vhost *
item_vhost(const json_t *item, const char *what, import_ctx *c)
{
    if (c->only)
        return c->only;
    const char *name = str_field(item, "vhost");
    vhost *vh = name ? broker_vhost(amqp_cstr(name)) : NULL;
    if (!vh)
        snprintf(c->why, sizeof c->why, "%s '%s' names vhost '%s', which does not exist", what,
                 str_field(item, "name") ? str_field(item, "name") : "?", name ? name : "");
    return vh;
}

/* A status from an operation: inequivalence with an existing object is
 * the merge keeping it (logged); any other failure stops the import. */
static bool
merged(int st, const char *what, const char *name, import_ctx *c)
{
    if (st < 400)
        return true;
    if (st == 400 && strncmp(c->why, "inequivalent arg", 16) == 0) {
        log_warning("definitions: keeping the existing %s '%s': %s", what, name, c->why);
        c->why[0] = 0;
        return true;
    }
    return false;
}

static bool
import_exchanges(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "exchanges", &a, c))
        return false;
    if (!a)
        return true;
    static const char *const f[] = { "name", NULL };
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) {
        if (!item_ok(x, "exchanges", f, c))
            return false;
        vhost *vh = item_vhost(x, "exchange", c);
        const char *name = str_field(x, "name");
        if (!vh)
            return false;
        /* a RabbitMQ export made by hand may list the predeclared ones */
        exchange *have = vhost_exchange(vh, amqp_cstr(name));
        if (have && have->builtin)
            continue;
        if (!merged(http_exchange_declare(vh, c->actor, amqp_cstr(name), x, c->why,
                                          sizeof c->why), "exchange", name, c))
            return false;
    }
    return true;
}

static bool
import_queues(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "queues", &a, c))
        return false;
    if (!a)
        return true;
    static const char *const f[] = { "name", NULL };
    size_t i;
    json_t *q;
    json_array_foreach(a, i, q) {
        if (!item_ok(q, "queues", f, c))
            return false;
        vhost *vh = item_vhost(q, "queue", c);
        const char *name = str_field(q, "name");
        if (!vh || !merged(http_queue_declare(vh, c->actor, amqp_cstr(name), q, c->why,
                                              sizeof c->why), "queue", name, c))
            return false;
    }
    return true;
}

static bool
import_policies(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "policies", &a, c))
        return false;
    if (!a)
        return true;
    static const char *const f[] = { "name", "pattern", NULL };
    size_t i;
    json_t *p;
    json_array_foreach(a, i, p) {
        if (!item_ok(p, "policies", f, c))
            return false;
        vhost *vh = item_vhost(p, "policy", c);
        if (!vh || http_policy_put(vh, POLICY_USER, str_field(p, "name"), p, c->why,
                                   sizeof c->why) >= 400)
            return false;
    }
    return true;
}

static bool
import_bindings(const json_t *doc, import_ctx *c)
{
    const json_t *a;
    if (!section(doc, "bindings", &a, c))
        return false;
    if (!a)
        return true;
    static const char *const f[] = { "source", "destination", "destination_type", NULL };
    size_t i;
    json_t *b;
    json_array_foreach(a, i, b) {
        if (!item_ok(b, "bindings", f, c))
            return false;
        vhost *vh = item_vhost(b, "binding", c);
        if (!vh)
            return false;
        const char *src = str_field(b, "source"), *dst = str_field(b, "destination");
        const char *type = str_field(b, "destination_type");
        const char *key = str_field(b, "routing_key");
        if (src[0] == 0)
            continue;              /* the default exchange's bindings are implicit */
        bool to_queue = strcmp(type, "queue") == 0;
        if (!to_queue && strcmp(type, "exchange") != 0) {
            snprintf(c->why, sizeof c->why, "destination_type must be queue or exchange, not '%s'",
                     type);
            return false;
        }
        int st = http_binding_add(vh, c->actor, amqp_cstr(src), to_queue, amqp_cstr(dst),
                                  amqp_cstr(key ? key : ""), json_object_get(b, "arguments"),
                                  c->why, sizeof c->why);
        if (st >= 400)
            return false;
    }
    return true;
}

static const char *const known_sections[] = {
    "rabbit_version", "rabbitmq_version", "product_name", "product_version", "explanation",
    "users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
    "policies", "queues", "exchanges", "bindings", NULL,
};

static void
definitions_post(http_req *rq, http_resp *rs)
{
    import_ctx c = { .actor = NULL };
    if (rq->nargs >= 1 && !(c.only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *doc = http_body_json(rq, rs);
    if (!doc)
        return;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        const char *const *k;
        for (k = known_sections; *k && strcmp(*k, key) != 0; k++)
            ;
        if (!*k)
            log_warning("definitions: skipping unknown section '%s'", key);
    }
    const json_t *gp = json_object_get(doc, "global_parameters");
    if (json_is_array(gp) && json_array_size(gp))
        log_info("definitions: skipping %zu global parameters", json_array_size(gp));
    bool ok = true;
    if (!c.only) {
        ok = import_users(doc, &c) && import_vhosts(doc, &c) &&
             import_permissions(doc, &c, false) && import_permissions(doc, &c, true);
    }
    ok = ok && import_parameters(doc, &c) && import_policies(doc, &c) &&
         import_exchanges(doc, &c) && import_queues(doc, &c) && import_bindings(doc, &c);
    json_decref(doc);
    if (!ok) {
        log_warning("definitions: import stopped: %s", c.why);
        http_error(rs, 400, "bad_request", "%s", c.why);
        return;
    }
    log_info("definitions: imported%s%.*s", c.only ? " into vhost " : "",
             c.only ? (int)c.only->name.len : 0, c.only ? c.only->name.data : "");
    http_no_content(rs);
}

const http_route http_routes_definitions[] = {
    { "GET", "/api/definitions", definitions_get, HTTP_NEED_ADMINISTRATOR },
    { "POST", "/api/definitions", definitions_post, HTTP_NEED_ADMINISTRATOR },
    { "GET", "/api/definitions/{vhost}", definitions_get, HTTP_NEED_ADMINISTRATOR },
    { "POST", "/api/definitions/{vhost}", definitions_post, HTTP_NEED_ADMINISTRATOR },
    { NULL, NULL, NULL, 0 },
};
