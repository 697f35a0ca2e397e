/*
 * Vhosts, users, permissions, topic permissions and limits over HTTP,
 * with RabbitMQ's paths and bodies. Every change goes through broker/auth
 * (auth_user_add, auth_set_permissions, ...), the functions coney-ctl
 * uses, so it is checked, persisted and logged the same way.
 *
 * Who may: reading vhosts and vhost limits needs management and shows
 * only the vhosts the user may see; everything else here (users,
 * permissions, changes) needs administrator, as in RabbitMQ. Policies
 * need policymaker and access to their vhost, operator policies
 * administrator (broker/policy.c applies them). Runtime parameters are
 * not implemented yet: their lists are empty and a change is answered
 * 501 (docs/management.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/crypto.h"
#include "broker/log.h"
#include "plugins/management/api.h"

/* ---- shared helpers ----------------------------------------------------------- */

json_t *
http_tags_json(const char *csv)
{
    json_t *a = json_array();
    const char *t = csv ? csv : "";
    while (*t) {
        while (*t == ' ' || *t == ',')
            t++;
        const char *e = t;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - t);
        while (n && t[n - 1] == ' ')
            n--;
        if (n)
            json_array_append_new(a, http_bytes_json((amqp_bytes){ t, (uint32_t)n }));
        t = e;
    }
    return a;
}

static void
csv_add(char *out, size_t cap, const char *tag, size_t n)
{
    while (n && (*tag == ' ')) {
        tag++;
        n--;
    }
    while (n && tag[n - 1] == ' ')
        n--;
    if (!n)
        return;
    size_t o = strlen(out);
    if (o && o + 1 < cap)
        out[o++] = ',';
    if (o + n < cap) {
        memcpy(out + o, tag, n);
        out[o + n] = 0;
    } else {
        out[o] = 0;
    }
}

bool
http_tags_csv(const json_t *j, char *out, size_t cap)
{
    out[0] = 0;
    if (!j || json_is_null(j))
        return true;
    if (json_is_string(j)) {
        const char *t = json_string_value(j);
        while (*t) {
            const char *e = strchr(t, ',');
            size_t n = e ? (size_t)(e - t) : strlen(t);
            csv_add(out, cap, t, n);
            t += n + (e != NULL);
        }
        return true;
    }
    if (!json_is_array(j))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
        if (!json_is_string(v))
            return false;
        csv_add(out, cap, json_string_value(v), json_string_length(v));
    }
    return true;
}

static json_t *
user_limits_json(const auth_user *u)
{
    json_t *o = json_object();
    static const char *const keys[] = { "max-connections", "max-channels" };
    for (size_t i = 0; i < 2; i++) {
        int64_t v = auth_user_limit(u, keys[i]);
        if (v >= 0)
            json_object_set_new(o, keys[i], json_integer(v));
    }
    return o;
}

json_t *
http_user_json(const auth_user *u)
{
    char hash[200];
    const char *algo;
    auth_user_hash(u, hash, sizeof hash, &algo);
    json_t *o = json_object();
    json_object_set_new(o, "name", http_bytes_json(amqp_cstr(auth_user_name(u))));
    json_object_set_new(o, "password_hash", json_string(hash));
    json_object_set_new(o, "hashing_algorithm", json_string(algo));
    json_object_set_new(o, "tags", http_tags_json(auth_user_tags(u)));
    json_object_set_new(o, "limits", user_limits_json(u));
    return o;
}

static const char *
body_str(const json_t *body, const char *key, bool *bad)
{
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

int
http_user_put(const char *name, const json_t *body, char *why, size_t cap)
{
    bool bad = false;
    const char *pass = body_str(body, "password", &bad);
    const char *hash = body_str(body, "password_hash", &bad);
    const char *algo = body_str(body, "hashing_algorithm", &bad);
    const json_t *jt = json_object_get(body, "tags");
    char tags[1024];
    if (bad || !http_tags_csv(jt, tags, sizeof tags)) {
        snprintf(why, cap, "password, password_hash and hashing_algorithm must be strings, "
                 "tags a string or an array of strings");
        return 400;
    }
    bool exists = auth_user_find(amqp_cstr(name)) != NULL;
    if (!exists && !pass && !hash) {
        snprintf(why, cap, "Must provide a password or password_hash");
        return 400;
    }
    if (!exists && auth_user_add(name, pass, why, cap) < 0)
        return 400;
    if (exists && pass && auth_user_set_password(name, pass, why, cap) < 0)
        return 400;
    if (!pass && hash && auth_user_set_hash(name, hash, algo, why, cap) < 0) {
        if (!exists) {
            char ignore[64];
            auth_user_delete(name, ignore, sizeof ignore);
        }
        return 400;
    }
    if ((jt || !exists) && auth_user_set_tags(name, tags, why, cap) < 0)
        return 400;
    return exists ? 204 : 201;
}

int
http_vhost_put(const char *name, const json_t *body, const auth_user *creator, char *why,
               size_t cap)
{
    bool bad = false;
    const char *desc = body_str(body, "description", &bad);
    const json_t *jt = json_object_get(body, "tags");
    const json_t *meta = json_object_get(body, "metadata");
    if (json_is_object(meta)) {    /* the shape of newer exports */
        if (!desc)
            desc = body_str(meta, "description", &bad);
        if (!jt)
            jt = json_object_get(meta, "tags");
    }
    char tags[1024];
    if (bad || !http_tags_csv(jt, tags, sizeof tags)) {
        snprintf(why, cap, "description must be a string, tags a string or an array of strings");
        return 400;
    }
    bool exists = broker_vhost(amqp_cstr(name)) != NULL;
    if (!exists && auth_vhost_add(name, why, cap) < 0)
        return 400;
    if ((desc || jt) && auth_vhost_set_metadata(name, desc, jt ? tags : NULL, why, cap) < 0)
        return 400;
    if (!exists && creator &&
        auth_set_permissions(auth_user_name(creator), name, ".*", ".*", ".*", why, cap) < 0)
        return 400;
    return exists ? 204 : 201;
}

static void
fail(http_resp *rs, int status, const char *why)
{
    http_error(rs, status, http_status_error(status), "%s", why);
}

static void
answer(http_resp *rs, int status, const char *why)
{
    if (status == 201)
        http_created(rs);
    else if (status == 204)
        http_no_content(rs);
    else
        fail(rs, status, why);
}

static void
not_found(http_resp *rs)
{
    http_error(rs, 404, "Object Not Found", "Not Found");
}

/* ---- permissions as rows -------------------------------------------------------- */

static void
perm_row(void *ctx, int n, const char *const *c)
{
    (void)n;
    json_t *o = json_object();
    json_object_set_new(o, "user", http_bytes_json(amqp_cstr(c[0])));
    json_object_set_new(o, "vhost", http_bytes_json(amqp_cstr(c[1])));
    json_object_set_new(o, "configure", http_bytes_json(amqp_cstr(c[2])));
    json_object_set_new(o, "write", http_bytes_json(amqp_cstr(c[3])));
    json_object_set_new(o, "read", http_bytes_json(amqp_cstr(c[4])));
    json_array_append_new(ctx, o);
}

static void
topic_perm_row(void *ctx, int n, const char *const *c)
{
    (void)n;
    json_t *o = json_object();
    json_object_set_new(o, "user", http_bytes_json(amqp_cstr(c[0])));
    json_object_set_new(o, "vhost", http_bytes_json(amqp_cstr(c[1])));
    json_object_set_new(o, "exchange", http_bytes_json(amqp_cstr(c[2])));
    json_object_set_new(o, "write", http_bytes_json(amqp_cstr(c[3])));
    json_object_set_new(o, "read", http_bytes_json(amqp_cstr(c[4])));
    json_array_append_new(ctx, o);
}

static char *
vhost_cstr(const vhost *vh, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s", (int)vh->name.len, vh->name.data);
    return out;
}

/* ---- vhosts ----------------------------------------------------------------------- */

static json_t *
vhost_json(const vhost *vh)
{
    uint64_t ready = 0, unacked = 0;
    for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
        const queue *q = it.e->value;
        ready += queue_ready(q);
        unacked += q->unacked;
    }
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
    json_object_set_new(o, "tracing", json_false());
    json_t *cs = json_object();
    json_object_set_new(cs, http_node_name(), json_string("running"));
    json_object_set_new(o, "cluster_state", cs);
    json_object_set_new(o, "messages", json_integer((json_int_t)(ready + unacked)));
    json_object_set_new(o, "messages_details", http_rate(0));
    json_object_set_new(o, "messages_ready", json_integer((json_int_t)ready));
    json_object_set_new(o, "messages_ready_details", http_rate(0));
    json_object_set_new(o, "messages_unacknowledged", json_integer((json_int_t)unacked));
    json_object_set_new(o, "messages_unacknowledged_details", http_rate(0));
    return o;
}

static void
vhosts_list(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it))
        if (http_vhost_visible(rq, it.e->value))
            json_array_append_new(a, vhost_json(it.e->value));
    http_list(rq, rs, a);
}

static void
vhost_get(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (vh)
        http_json(rs, 200, vhost_json(vh));
}

static void
vhost_put(http_req *rq, http_resp *rs)
{
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    char why[600];
    int st = http_vhost_put(rq->args[0], body, rq->user, why, sizeof why);
    json_decref(body);
    answer(rs, st, why);
}

static void
vhost_delete(http_req *rq, http_resp *rs)
{
    if (!broker_vhost(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    char why[600];
    answer(rs, auth_vhost_delete(rq->args[0], why, sizeof why) < 0 ? 400 : 204, why);
}

static void
vhost_permissions(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    char name[300];
    json_t *a = json_array();
    auth_list_permissions(NULL, vhost_cstr(vh, name, sizeof name), perm_row, a);
    http_list(rq, rs, a);
}

static void
vhost_topic_permissions(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    char name[300];
    json_t *a = json_array();
    auth_list_topic_permissions(NULL, vhost_cstr(vh, name, sizeof name), topic_perm_row, a);
    http_list(rq, rs, a);
}

/* ---- users ------------------------------------------------------------------------- */

static void
add_user(void *ctx, const auth_user *u)
{
    json_array_append_new(ctx, http_user_json(u));
}

static void
users_list(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    auth_each_user(add_user, a);
    http_list(rq, rs, a);
}

static void
count_row(void *ctx, int n, const char *const *c)
{
    (void)n; (void)c;
    (*(size_t *)ctx)++;
}

static void
add_user_without(void *ctx, const auth_user *u)
{
    size_t n = 0;
    auth_list_permissions(auth_user_name(u), NULL, count_row, &n);
    if (n == 0)
        json_array_append_new(ctx, http_user_json(u));
}

static void
users_without_permissions(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    auth_each_user(add_user_without, a);
    http_list(rq, rs, a);
}

static void
user_get(http_req *rq, http_resp *rs)
{
    auth_user *u = auth_user_find(amqp_cstr(rq->args[0]));
    if (!u)
        not_found(rs);
    else
        http_json(rs, 200, http_user_json(u));
}

static void
user_put(http_req *rq, http_resp *rs)
{
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    char why[600];
    int st = http_user_put(rq->args[0], body, why, sizeof why);
    json_decref(body);
    answer(rs, st, why);
}

static void
user_delete(http_req *rq, http_resp *rs)
{
    if (!auth_user_find(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    char why[600];
    answer(rs, auth_user_delete(rq->args[0], why, sizeof why) < 0 ? 400 : 204, why);
}

static void
users_bulk_delete(http_req *rq, http_resp *rs)
{
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    const json_t *users = json_object_get(body, "users");
    if (!json_is_array(users)) {
        json_decref(body);
        http_error(rs, 400, "bad_request", "users must be an array of user names");
        return;
    }
    size_t i;
    json_t *v;
    char why[600] = "";
    int st = 204;
    json_array_foreach(users, i, v) {
        if (!json_is_string(v) || !auth_user_find(amqp_cstr(json_string_value(v))))
            continue;
        if (auth_user_delete(json_string_value(v), why, sizeof why) < 0)
            st = 400;
    }
    json_decref(body);
    answer(rs, st, why);
}

static void
user_permissions(http_req *rq, http_resp *rs)
{
    if (!auth_user_find(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    json_t *a = json_array();
    auth_list_permissions(rq->args[0], NULL, perm_row, a);
    http_list(rq, rs, a);
}

static void
user_topic_permissions(http_req *rq, http_resp *rs)
{
    if (!auth_user_find(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    json_t *a = json_array();
    auth_list_topic_permissions(rq->args[0], NULL, topic_perm_row, a);
    http_list(rq, rs, a);
}

/* ---- permissions -------------------------------------------------------------------- */

static void
permissions_list(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    auth_list_permissions(NULL, NULL, perm_row, a);
    http_list(rq, rs, a);
}

static void
permission_get(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    auth_list_permissions(rq->args[1], rq->args[0], perm_row, a);
    if (json_array_size(a) == 0)
        not_found(rs);
    else
        http_json(rs, 200, json_incref(json_array_get(a, 0)));
    json_decref(a);
}

static bool
perm_body(const json_t *body, const char *const keys[3], const char *out[3], http_resp *rs)
{
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(body, keys[i]);
        if (!json_is_string(v)) {
            http_error(rs, 400, "bad_request", "%s must be a string (a regular expression)",
                       keys[i]);
            return false;
        }
        out[i] = json_string_value(v);
    }
    return true;
}

static bool
user_and_vhost(http_req *rq, http_resp *rs)
{
    if (!broker_vhost(amqp_cstr(rq->args[0])) || !auth_user_find(amqp_cstr(rq->args[1]))) {
        not_found(rs);
        return false;
    }
    return true;
}

static void
permission_put(http_req *rq, http_resp *rs)
{
    if (!user_and_vhost(rq, rs))
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    static const char *const keys[3] = { "configure", "write", "read" };
    const char *v[3];
    if (perm_body(body, keys, v, rs)) {
        size_t had = 0;
        auth_list_permissions(rq->args[1], rq->args[0], count_row, &had);
        char why[600];
        int rc = auth_set_permissions(rq->args[1], rq->args[0], v[0], v[1], v[2], why,
                                      sizeof why);
        answer(rs, rc < 0 ? 400 : had ? 204 : 201, why);
    }
    json_decref(body);
}

static void
permission_delete(http_req *rq, http_resp *rs)
{
    char why[600];
    if (!user_and_vhost(rq, rs))
        return;
    if (auth_clear_permissions(rq->args[1], rq->args[0], why, sizeof why) < 0)
        not_found(rs);
    else
        http_no_content(rs);
}

static void
topic_permissions_list(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    auth_list_topic_permissions(NULL, NULL, topic_perm_row, a);
    http_list(rq, rs, a);
}

static void
topic_permission_get(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    auth_list_topic_permissions(rq->args[1], rq->args[0], topic_perm_row, a);
    if (json_array_size(a) == 0) {
        json_decref(a);
        not_found(rs);
        return;
    }
    http_json(rs, 200, a);
}

static void
topic_permission_put(http_req *rq, http_resp *rs)
{
    if (!user_and_vhost(rq, rs))
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    static const char *const keys[3] = { "exchange", "write", "read" };
    const char *v[3];
    if (perm_body(body, keys, v, rs)) {
        json_t *a = json_array();
        auth_list_topic_permissions(rq->args[1], rq->args[0], topic_perm_row, a);
        bool had = false;
        size_t i;
        json_t *o;
        json_array_foreach(a, i, o)
            if (strcmp(json_string_value(json_object_get(o, "exchange")), v[0]) == 0)
                had = true;
        json_decref(a);
        char why[600];
        int rc = auth_set_topic_permissions(rq->args[1], rq->args[0], v[0], v[1], v[2], why,
                                            sizeof why);
        answer(rs, rc < 0 ? 400 : had ? 204 : 201, why);
    }
    json_decref(body);
}

static void
topic_permission_delete(http_req *rq, http_resp *rs)
{
    if (!user_and_vhost(rq, rs))
        return;
    size_t had = 0;
    auth_list_topic_permissions(rq->args[1], rq->args[0], count_row, &had);
    if (!had) {
        not_found(rs);
        return;
    }
    char why[600];
    const char *ex = http_query(rq, "exchange");
    if (auth_clear_topic_permissions(rq->args[1], rq->args[0], ex, why, sizeof why) < 0)
        not_found(rs);
    else
        http_no_content(rs);
}

/* ---- limits ---------------------------------------------------------------------------- */

static json_t *
vhost_limits_item(const vhost *vh)
{
    if (vh->max_connections < 0 && vh->max_queues < 0)
        return NULL;
    json_t *v = json_object();
    if (vh->max_connections >= 0)
        json_object_set_new(v, "max-connections", json_integer(vh->max_connections));
    if (vh->max_queues >= 0)
        json_object_set_new(v, "max-queues", json_integer(vh->max_queues));
    json_t *o = json_object();
    json_object_set_new(o, "vhost", http_bytes_json(vh->name));
    json_object_set_new(o, "value", v);
    return o;
}

static void
vhost_limits_list(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs >= 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        if ((only && vh != only) || !http_vhost_visible(rq, vh))
            continue;
        json_t *o = vhost_limits_item(vh);
        if (o)
            json_array_append_new(a, o);
    }
    http_list(rq, rs, a);
}

/* {"value": N}: N an integer (or a string of one). */
static bool
limit_value(http_req *rq, http_resp *rs, long long *out)
{
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return false;
    const json_t *v = json_object_get(body, "value");
    bool ok = true;
    char *end = NULL;
    if (json_is_integer(v))
        *out = json_integer_value(v);
    else if (json_is_string(v) && json_string_length(v))
        *out = strtoll(json_string_value(v), &end, 10), ok = *end == 0;
    else
        ok = false;
    json_decref(body);
    if (!ok)
        http_error(rs, 400, "bad_request", "value must be an integer");
    return ok;
}

static void
vhost_limit_put(http_req *rq, http_resp *rs)
{
    if (!broker_vhost(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    long long v;
    if (!limit_value(rq, rs, &v))
        return;
    char why[600];
    answer(rs, auth_vhost_set_limit(rq->args[0], rq->args[1], v, why, sizeof why) < 0 ? 400 : 204,
           why);
}

static void
vhost_limit_delete(http_req *rq, http_resp *rs)
{
    if (!broker_vhost(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    char why[600];
    answer(rs, auth_vhost_set_limit(rq->args[0], rq->args[1], -1, why, sizeof why) < 0 ? 400 : 204,
           why);
}

typedef struct limits_ctx {
    json_t *out;
    const char *only;
} limits_ctx;

static void
add_user_limits(void *ctx, const auth_user *u)
{
    limits_ctx *c = ctx;
    if (c->only && strcmp(c->only, auth_user_name(u)) != 0)
        return;
    json_t *v = user_limits_json(u);
    if (json_object_size(v) == 0) {
        json_decref(v);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "user", http_bytes_json(amqp_cstr(auth_user_name(u))));
    json_object_set_new(o, "value", v);
    json_array_append_new(c->out, o);
}

static void
user_limits_list(http_req *rq, http_resp *rs)
{
    limits_ctx c = { json_array(), rq->nargs >= 1 ? rq->args[0] : NULL };
    if (c.only && !auth_user_find(amqp_cstr(c.only))) {
        json_decref(c.out);
        not_found(rs);
        return;
    }
    auth_each_user(add_user_limits, &c);
    http_list(rq, rs, c.out);
}

static void
user_limit_put(http_req *rq, http_resp *rs)
{
    if (!auth_user_find(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    long long v;
    if (!limit_value(rq, rs, &v))
        return;
    char why[600];
    answer(rs, auth_user_set_limit(rq->args[0], rq->args[1], v, why, sizeof why) < 0 ? 400 : 204,
           why);
}

static void
user_limit_delete(http_req *rq, http_resp *rs)
{
    if (!auth_user_find(amqp_cstr(rq->args[0]))) {
        not_found(rs);
        return;
    }
    char why[600];
    answer(rs, auth_user_set_limit(rq->args[0], rq->args[1], -1, why, sizeof why) < 0 ? 400 : 204,
           why);
}

/* ---- hash_password ----------------------------------------------------------------------- */

/* RabbitMQ's default scheme: base64(salt4 + sha256(salt4 + password)). */
static void
hash_password(http_req *rq, http_resp *rs)
{
    const char *pw = rq->args[0];
    uint8_t h[CRYPTO_SALT_LEN + CRYPTO_MAX_DIGEST];
    if (!crypto_random(h, CRYPTO_SALT_LEN)) {
        http_error(rs, 500, "internal_error", "no random bytes for a salt");
        return;
    }
    crypto_digest(CRYPTO_SHA256, h, CRYPTO_SALT_LEN, pw, strlen(pw), h + CRYPTO_SALT_LEN);
    size_t n = CRYPTO_SALT_LEN + crypto_digest_len(CRYPTO_SHA256);
    char b64[4 * ((sizeof h + 2) / 3) + 1];
    crypto_b64_encode(h, n, b64);
    http_json(rs, 200, json_pack("{s:s}", "ok", b64));
}

/* ---- policies and operator policies ---------------------------------------------------- */

json_t *
http_policy_json(const vhost *vh, const policy *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "vhost", http_bytes_json(vh->name));
    json_object_set_new(o, "name", http_bytes_json(amqp_cstr(p->name)));
    json_object_set_new(o, "pattern", http_bytes_json(amqp_cstr(p->pattern)));
    json_object_set_new(o, "apply-to", http_bytes_json(amqp_cstr(p->apply_to)));
    json_object_set_new(o, "definition", http_args_json(p->def, p->def_len));
    json_object_set_new(o, "priority", json_integer(p->priority));
    return o;
}

int
http_policy_put(vhost *vh, int which, const char *name, const json_t *body, char *why,
                size_t cap)
{
    const json_t *pat = json_object_get(body, "pattern");
    const json_t *def = json_object_get(body, "definition");
    const json_t *pri = json_object_get(body, "priority");
    const json_t *to = json_object_get(body, "apply-to");
    long long priority = 0;
    char *end = NULL;
    if (!json_is_string(pat)) {
        snprintf(why, cap, "Validation failed\n\npattern not specified\n");
        return 400;
    }
    if (!json_is_object(def)) {
        snprintf(why, cap, "Validation failed\n\ndefinition must be a JSON object\n");
        return 400;
    }
    if (json_is_integer(pri)) {
        priority = json_integer_value(pri);
    } else if (json_is_string(pri) && json_string_length(pri)) {
        priority = strtoll(json_string_value(pri), &end, 10);
        if (*end) {
            snprintf(why, cap, "Validation failed\n\npriority should be a number, actually was "
                     "<<\"%.100s\">>\n", json_string_value(pri));
            return 400;
        }
    } else if (pri && !json_is_null(pri)) {
        snprintf(why, cap, "Validation failed\n\npriority should be a number\n");
        return 400;
    }
    if (to && !json_is_null(to) && !json_is_string(to)) {
        snprintf(why, cap, "Validation failed\n\napply-to should be a string\n");
        return 400;
    }
    amqp_pool pool = { 0 };
    uint8_t *raw;
    uint32_t len;
    char aw[300];
    int rc;
    if (http_json_args(def, &pool, &raw, &len, aw, sizeof aw) < 0) {
        snprintf(why, cap, "Validation failed\n\n%s\n", aw);
        rc = -1;
    } else {
        rc = policy_set(vh, which, name, json_string_value(pat),
                        json_is_string(to) ? json_string_value(to) : "all", priority, raw, len,
                        why, cap);
    }
    amqp_pool_free(&pool);
    return rc < 0 ? 400 : rc ? 201 : 204;
}

/* Policymakers manage the policies of the vhosts they have access to,
 * administrators those of every vhost (RabbitMQ's rule). */
static bool
may_manage(const http_req *rq, const vhost *vh)
{
    return (rq->tags & HTTP_TAG_ADMINISTRATOR) || (rq->user && auth_vhost_access(rq->user, vh));
}

static vhost *
policy_vhost(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (vh && !may_manage(rq, vh)) {
        http_error(rs, 401, "not_authorised", "User not authorised to access virtual host");
        return NULL;
    }
    return vh;
}

static void
policies_list(http_req *rq, http_resp *rs, int which)
{
    vhost *only = NULL;
    if (rq->nargs >= 1 && !(only = policy_vhost(rq, rs)))
        return;
    json_t *a = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        if ((only && vh != only) || !may_manage(rq, vh))
            continue;
        for (const policy *p = vh->policies[which]; p; p = p->next)
            json_array_append_new(a, http_policy_json(vh, p));
    }
    http_list(rq, rs, a);
}

static void
policy_get(http_req *rq, http_resp *rs, int which)
{
    vhost *vh = policy_vhost(rq, rs);
    if (!vh)
        return;
    const policy *p = policy_find(vh, which, rq->args[1]);
    if (!p)
        not_found(rs);
    else
        http_json(rs, 200, http_policy_json(vh, p));
}

static void
policy_put(http_req *rq, http_resp *rs, int which)
{
    vhost *vh = policy_vhost(rq, rs);
    if (!vh)
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    char why[800];
    answer(rs, http_policy_put(vh, which, rq->args[1], body, why, sizeof why), why);
    json_decref(body);
}

static void
policy_delete(http_req *rq, http_resp *rs, int which)
{
    vhost *vh = policy_vhost(rq, rs);
    if (!vh)
        return;
    if (policy_clear(vh, which, rq->args[1]) < 0)
        not_found(rs);
    else
        http_no_content(rs);
}

#define BOTH(fn) \
    static void fn##_user(http_req *rq, http_resp *rs) { fn(rq, rs, POLICY_USER); } \
    static void fn##_operator(http_req *rq, http_resp *rs) { fn(rq, rs, POLICY_OPERATOR); }
BOTH(policies_list)
BOTH(policy_get)
BOTH(policy_put)
BOTH(policy_delete)
#undef BOTH

/* ---- runtime parameters: not yet ---------------------------------------------------------- */

static void
empty_list(http_req *rq, http_resp *rs)
{
    http_list(rq, rs, json_array());
}

static void
no_such_item(http_req *rq, http_resp *rs)
{
    (void)rq;
    not_found(rs);
}

static void
not_implemented(http_req *rq, http_resp *rs)
{
    (void)rq;
    http_error(rs, 501, "not_implemented", "Coney does not support runtime parameters yet");
}

/* ---- the routes ----------------------------------------------------------------------------- */

#define M HTTP_NEED_MANAGEMENT
#define P HTTP_NEED_POLICYMAKER
#define A HTTP_NEED_ADMINISTRATOR
const http_route http_routes_access[] = {
    { "GET", "/api/vhosts", vhosts_list, M },
    { "GET", "/api/vhosts/{vhost}", vhost_get, M },
    { "PUT", "/api/vhosts/{vhost}", vhost_put, A },
    { "DELETE", "/api/vhosts/{vhost}", vhost_delete, A },
    { "GET", "/api/vhosts/{vhost}/permissions", vhost_permissions, A },
    { "GET", "/api/vhosts/{vhost}/topic-permissions", vhost_topic_permissions, A },

    { "GET", "/api/users", users_list, A },
    { "GET", "/api/users/without-permissions", users_without_permissions, A },
    { "POST", "/api/users/bulk-delete", users_bulk_delete, A },
    { "GET", "/api/users/{user}", user_get, A },
    { "PUT", "/api/users/{user}", user_put, A },
    { "DELETE", "/api/users/{user}", user_delete, A },
    { "GET", "/api/users/{user}/permissions", user_permissions, A },
    { "GET", "/api/users/{user}/topic-permissions", user_topic_permissions, A },

    { "GET", "/api/permissions", permissions_list, A },
    { "GET", "/api/permissions/{vhost}/{user}", permission_get, A },
    { "PUT", "/api/permissions/{vhost}/{user}", permission_put, A },
    { "DELETE", "/api/permissions/{vhost}/{user}", permission_delete, A },
    { "GET", "/api/topic-permissions", topic_permissions_list, A },
    { "GET", "/api/topic-permissions/{vhost}/{user}", topic_permission_get, A },
    { "PUT", "/api/topic-permissions/{vhost}/{user}", topic_permission_put, A },
    { "DELETE", "/api/topic-permissions/{vhost}/{user}", topic_permission_delete, A },

    { "GET", "/api/vhost-limits", vhost_limits_list, M },
    { "GET", "/api/vhost-limits/{vhost}", vhost_limits_list, M },
    { "PUT", "/api/vhost-limits/{vhost}/{name}", vhost_limit_put, A },
    { "DELETE", "/api/vhost-limits/{vhost}/{name}", vhost_limit_delete, A },
    { "GET", "/api/user-limits", user_limits_list, A },
    { "GET", "/api/user-limits/{user}", user_limits_list, A },
    { "PUT", "/api/user-limits/{user}/{name}", user_limit_put, A },
    { "DELETE", "/api/user-limits/{user}/{name}", user_limit_delete, A },

    { "GET", "/api/auth/hash_password/{password}", hash_password, M },

    { "GET", "/api/policies", policies_list_user, P },
    { "GET", "/api/policies/{vhost}", policies_list_user, P },
    { "GET", "/api/policies/{vhost}/{name}", policy_get_user, P },
    { "PUT", "/api/policies/{vhost}/{name}", policy_put_user, P },
    { "DELETE", "/api/policies/{vhost}/{name}", policy_delete_user, P },
    { "GET", "/api/operator-policies", policies_list_operator, A },
    { "GET", "/api/operator-policies/{vhost}", policies_list_operator, A },
    { "GET", "/api/operator-policies/{vhost}/{name}", policy_get_operator, A },
    { "PUT", "/api/operator-policies/{vhost}/{name}", policy_put_operator, A },
    { "DELETE", "/api/operator-policies/{vhost}/{name}", policy_delete_operator, A },
    { "GET", "/api/parameters", empty_list, P },
    { "GET", "/api/parameters/{component}", empty_list, P },
    { "GET", "/api/parameters/{component}/{vhost}", empty_list, P },
    { "GET", "/api/parameters/{component}/{vhost}/{name}", no_such_item, P },
    { "PUT", "/api/parameters/{component}/{vhost}/{name}", not_implemented, P },
    { "DELETE", "/api/parameters/{component}/{vhost}/{name}", no_such_item, P },
    { "GET", "/api/global-parameters", empty_list, A },
    { "GET", "/api/global-parameters/{name}", no_such_item, A },
    { "PUT", "/api/global-parameters/{name}", not_implemented, A },
    { "DELETE", "/api/global-parameters/{name}", no_such_item, A },
    { NULL, NULL, NULL, 0 },
};
#undef M
#undef P
#undef A
