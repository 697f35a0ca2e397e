/*
 * Connections, channels and consumers as RabbitMQ's management API shows
 * them, read straight from the live structures (B.conns, each vhost's
 * queues) at the moment of the request.
 *
 * Who sees what, as RabbitMQ: a user tagged management sees its own
 * connections and their channels; monitoring and administrator see every
 * one. Consumers are listed for the vhosts the user may see. Closing a
 * connection (DELETE) is for its own user or an administrator; the client
 * gets connection.close 320 CONNECTION_FORCED with the X-Reason header's
 * text.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/conn.h"
#include "broker/plugin.h"
#include "broker/stats.h"
#include "plugins/management/management.h"

/* ---- field tables as JSON ------------------------------------------------------ */

static json_t *table_json(const amqp_table *t);

/* A JSON string of bytes that may not be UTF-8 (then '?' replaces them). */
static json_t *
bytes_json(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    if (s)
        return s;
    char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)p[i] < 0x80 ? p[i] : '?';
    s = json_stringn(copy, n);
    free(copy);
    return s ? s : json_string("");
}

static json_t *
value_json(const amqp_value *v)
{
    int64_t i;
    switch (v->kind) {
    case 't': return json_boolean(v->v.boolean);
    case 'f': return json_real(v->v.f);
    case 'd': return json_real(v->v.d);
    case 'S': case 'x': return bytes_json(v->v.bytes.data, v->v.bytes.len);
    case 'T': return json_integer((json_int_t)v->v.u);
    case 'D': {
        double d = v->v.decimal.value;
        for (int k = 0; k < v->v.decimal.scale; k++)
            d /= 10;
        return json_real(d);
    }
    case 'F': return table_json(&v->v.table);
    case 'A': {
        json_t *a = json_array();
        for (uint32_t k = 0; k < v->v.array.n; k++)
            json_array_append_new(a, value_json(&v->v.array.items[k]));
        return a;
    }
    case 'V': return json_null();
    default:
        if (amqp_value_int(v, &i))
            return json_integer((json_int_t)i);
        return json_null();
    }
}

static json_t *
table_json(const amqp_table *t)
{
    json_t *o = json_object();
    for (uint32_t i = 0; i < t->n; i++) {
        const amqp_field *f = &t->fields[i];
        char key[257];
        snprintf(key, sizeof key, "%.*s", (int)f->key.len, f->key.data);
        json_object_set_new(o, key, value_json(&f->value));
    }
    return o;
}

static json_t *
client_props_json(const conn *c)
{
    if (!c->client_props)
        return json_object();
    amqp_pool pool = { 0 };
    amqp_table t;
    size_t off = 0;
    json_t *o = amqp_table_decode(c->client_props, c->client_props_len, &off, &t, &pool) == AMQP_OK
                    ? table_json(&t) : json_object();
    amqp_pool_free(&pool);
    return o;
}

/* ---- connections ------------------------------------------------------------- */

/* "host:port" into its parts (the port after the last colon). */
static void
split_peer(const char *peer, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (n >= cap)
        n = cap - 1;
    memcpy(host, peer, n);
    host[n] = 0;
    *port = colon ? atoi(colon + 1) : 0;
}

static void
local_addr(const conn *c, char *host, size_t cap, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(host, cap, "?");
    *port = 0;
    if (getsockname(c->io.fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)cap);
        *port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)cap);
        *port = ntohs(in6->sin6_port);
    }
}

/* Connections the API shows: logged in and in a vhost. */
static bool
conn_listed(const conn *c)
{
    return c->vh && c->u && c->state >= CONN_OPEN && c->state < CONN_DEAD;
}

static bool
conn_visible(const http_req *rq, const conn *c)
{
    if (!conn_listed(c))
        return false;
    return (rq->tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR)) || c->u == rq->user;
}

static const char *
conn_state(const conn *c)
{
    if (c->state != CONN_OPEN)
        return "closing";
    if (c->blocked)
        return "blocked";
    if (c->flow || c->brake_q || c->out_full)
        return "flow";
    return "running";
}

static uint32_t
channel_count(const conn *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->nchannels; i++)
        n += c->channels[i] != NULL;
    return n;
}

static json_t *
conn_json(const conn *c)
{
    char peer_host[64], host[64];
    int peer_port, port;
    split_peer(c->peer, peer_host, sizeof peer_host, &peer_port);
    local_addr(c, host, sizeof host, &port);
    bool tls = c->io.tr && c->io.tr->secure;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "node", json_string(http_node_name()));
    json_object_set_new(o, "type", json_string("network"));
    json_object_set_new(o, "protocol", json_string("AMQP 0-9-1"));
    json_object_set_new(o, "vhost", bytes_json(c->vh->name.data, c->vh->name.len));
    json_object_set_new(o, "user", json_string(c->user));
    json_object_set_new(o, "user_who_performed_action", json_string(c->user));
    json_object_set_new(o, "auth_mechanism", json_string(tls && !c->client_props ? "EXTERNAL" : "PLAIN"));
    json_object_set_new(o, "host", json_string(host));
    json_object_set_new(o, "port", json_integer(port));
    json_object_set_new(o, "peer_host", json_string(peer_host));
    json_object_set_new(o, "peer_port", json_integer(peer_port));
    json_object_set_new(o, "state", json_string(conn_state(c)));
    json_object_set_new(o, "channels", json_integer(channel_count(c)));
    json_object_set_new(o, "channel_max", json_integer(c->channel_max));
    json_object_set_new(o, "frame_max", json_integer(c->frame_max));
    json_object_set_new(o, "timeout", json_integer(c->heartbeat));
    json_object_set_new(o, "connected_at", json_integer((json_int_t)c->connected_at));
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)c->recv_oct));
    json_object_set_new(o, "recv_oct_details",
                        http_rate(c->oct_s1[0] >= c->oct_s0[0]
                                      ? (double)(c->oct_s1[0] - c->oct_s0[0]) / STATS_INTERVAL : 0));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)c->send_oct));
    json_object_set_new(o, "send_oct_details",
                        http_rate(c->oct_s1[1] >= c->oct_s0[1]
                                      ? (double)(c->oct_s1[1] - c->oct_s0[1]) / STATS_INTERVAL : 0));
    json_object_set_new(o, "ssl", json_boolean(tls));
    json_object_set_new(o, "ssl_protocol", json_null());
    json_object_set_new(o, "ssl_key_exchange", json_null());
    json_object_set_new(o, "ssl_cipher", json_null());
    json_object_set_new(o, "ssl_hash", json_null());
    json_object_set_new(o, "peer_cert_subject", json_null());
    json_object_set_new(o, "peer_cert_issuer", json_null());
    json_object_set_new(o, "peer_cert_validity", json_null());
    json_object_set_new(o, "client_properties", client_props_json(c));
    json_object_set_new(o, "reductions", json_integer(0));
    json_object_set_new(o, "garbage_collection", json_object());
    return o;
}

/* ---- connections of plugins (MQTT) ------------------------------------------- */

static bool
plugin_conn_visible(const http_req *rq, const plugin_conn *c)
{
    return (rq->tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR)) ||
           (rq->user && strcmp(c->user, auth_user_name(rq->user)) == 0);
}

static json_t *
plugin_conn_json(const plugin_conn *c)
{
    char peer_host[64];
    int peer_port;
    split_peer(c->peer, peer_host, sizeof peer_host, &peer_port);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "node", json_string(http_node_name()));
    json_object_set_new(o, "type", json_string("network"));
    json_object_set_new(o, "protocol", json_string(c->protocol));
    json_object_set_new(o, "vhost", c->vh ? bytes_json(c->vh->name.data, c->vh->name.len)
                                          : json_null());
    json_object_set_new(o, "user", json_string(c->user));
    json_object_set_new(o, "peer_host", json_string(peer_host));
    json_object_set_new(o, "peer_port", json_integer(peer_port));
    json_object_set_new(o, "state", json_string("running"));
    json_object_set_new(o, "channels", json_integer(1));
    json_object_set_new(o, "connected_at", json_integer((json_int_t)(c->connected_at * 1000)));
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)c->recv_oct));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)c->send_oct));
    json_object_set_new(o, "ssl", json_boolean(c->tls));
    json_object_set_new(o, "client_properties",
                        c->client_id ? json_pack("{s:s}", "client_id", c->client_id)
                                     : json_object());
    return o;
}

typedef struct plugin_walk {
    http_req *rq;
    const vhost *only;
    const char *name;              /* find this one (get, delete) */
    json_t *array;                 /* or list them all here */
    const plugin *found_p;
    void *found;
    json_t *found_json;
} plugin_walk;

static void
plugin_conn_visit(void *ctx, const plugin *p, const plugin_conn *c)
{
    plugin_walk *w = ctx;
    if (!plugin_conn_visible(w->rq, c) || (w->only && c->vh != w->only))
        return;
    if (w->name) {
        if (!w->found && strcmp(w->name, c->name) == 0) {
            w->found_p = p;
            w->found = c->handle;
            w->found_json = plugin_conn_json(c);
        }
        return;
    }
    json_array_append_new(w->array, plugin_conn_json(c));
}

static conn *
conn_named(const char *name)
{
    for (conn *c = B.conns; c; c = c->next)
        if (conn_listed(c) && strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void
connections(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs == 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (conn *c = B.conns; c; c = c->next)
        if (conn_visible(rq, c) && (!only || c->vh == only))
            json_array_append_new(a, conn_json(c));
    plugin_walk w = { .rq = rq, .only = only, .array = a };
    server_each_plugin_connection(plugin_conn_visit, &w);
    http_list(rq, rs, a);
}

static void
connection_get(http_req *rq, http_resp *rs)
{
    conn *c = conn_named(rq->args[0]);
    if (!c || !conn_visible(rq, c)) {
        plugin_walk w = { .rq = rq, .name = rq->args[0] };
        server_each_plugin_connection(plugin_conn_visit, &w);
        if (w.found_json) {
            http_json(rs, 200, w.found_json);
            return;
        }
        http_error(rs, 404, "Object Not Found", "Not Found");
        return;
    }
    http_json(rs, 200, conn_json(c));
}

/* May the request's user close c (which it can see)? */
static bool
may_close(const http_req *rq, const conn *c)
{
    return (rq->tags & HTTP_TAG_ADMINISTRATOR) || c->u == rq->user;
}

static void
close_conn(const http_req *rq, conn *c)
{
    const char *reason = http_header(rq, "X-Reason");
    if (!reason || !*reason)
        reason = "Closed via management plugin";
    conn_error(c, AMQP_CONNECTION_FORCED, 0, "%s", reason);
}

static void
connection_delete(http_req *rq, http_resp *rs)
{
    conn *c = conn_named(rq->args[0]);
    if (!c || !conn_visible(rq, c)) {
        plugin_walk w = { .rq = rq, .name = rq->args[0] };
        server_each_plugin_connection(plugin_conn_visit, &w);
        if (w.found) {
            json_decref(w.found_json);
            const char *why = http_header(rq, "X-Reason");
            w.found_p->close_connection(w.found, why ? why : "closed via management plugin");
            http_no_content(rs);
            return;
        }
        http_error(rs, 404, "Object Not Found", "Not Found");
        return;
    }
    if (!may_close(rq, c)) {
        http_error(rs, 403, "not_authorised", "Not administrator user");
        return;
    }
    close_conn(rq, c);
    http_no_content(rs);
}

static bool
user_arg_visible(const http_req *rq, const char *user)
{
    return (rq->tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR)) ||
           strcmp(auth_user_name(rq->user), user) == 0;
}

static void
connections_of_user(http_req *rq, http_resp *rs)
{
    if (!user_arg_visible(rq, rq->args[0])) {
        http_error(rs, 403, "not_authorised", "Not monitor user");
        return;
    }
    json_t *a = json_array();
    for (conn *c = B.conns; c; c = c->next)
        if (conn_listed(c) && strcmp(c->user, rq->args[0]) == 0)
            json_array_append_new(a, conn_json(c));
    http_list(rq, rs, a);
}

static void
connections_of_user_delete(http_req *rq, http_resp *rs)
{
    if (!(rq->tags & HTTP_TAG_ADMINISTRATOR) && strcmp(auth_user_name(rq->user), rq->args[0]) != 0) {
        http_error(rs, 403, "not_authorised", "Not administrator user");
        return;
    }
    for (conn *c = B.conns; c; c = c->next)
        if (conn_listed(c) && c->state == CONN_OPEN && strcmp(c->user, rq->args[0]) == 0)
            close_conn(rq, c);
    http_no_content(rs);
}

/* ---- channels ------------------------------------------------------------------ */

static void
channel_name(const channel *ch, char *out, size_t cap)
{
    snprintf(out, cap, "%s (%u)", ch->conn->name, (unsigned)ch->id);
}

static json_t *
conn_details(const conn *c)
{
    char peer_host[64];
    int peer_port;
    split_peer(c->peer, peer_host, sizeof peer_host, &peer_port);
    return json_pack("{s:s, s:s, s:i}", "name", c->name, "peer_host", peer_host,
                     "peer_port", peer_port);
}

static json_t *
channel_json(const channel *ch)
{
    const conn *c = ch->conn;
    char name[160];
    channel_name(ch, name, sizeof name);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "number", json_integer(ch->id));
    json_object_set_new(o, "node", json_string(http_node_name()));
    json_object_set_new(o, "connection_details", conn_details(c));
    json_object_set_new(o, "vhost", bytes_json(c->vh->name.data, c->vh->name.len));
    json_object_set_new(o, "user", json_string(c->user));
    json_object_set_new(o, "user_who_performed_action", json_string(c->user));
    json_object_set_new(o, "state", json_string(ch->closing ? "closing"
                                                : !ch->flow_active ? "flow" : "running"));
    json_object_set_new(o, "prefetch_count", json_integer(ch->prefetch));
    json_object_set_new(o, "global_prefetch_count", json_integer(ch->global_prefetch));
    json_object_set_new(o, "messages_unacknowledged", json_integer(ch->ua_live));
    json_object_set_new(o, "messages_unconfirmed",
                        json_integer((json_int_t)(ch->cp_len - ch->cp_head)));
    json_object_set_new(o, "messages_uncommitted", json_integer((json_int_t)ch->tx_npubs));
    json_object_set_new(o, "acks_uncommitted", json_integer((json_int_t)ch->tx_nops));
    json_object_set_new(o, "confirm", json_boolean(ch->confirm));
    json_object_set_new(o, "transactional", json_boolean(ch->tx));
    json_object_set_new(o, "consumer_count", json_integer((json_int_t)ch->consumers.count));
    json_object_set_new(o, "pending_raft_commands", json_integer(0));
    json_object_set_new(o, "reductions", json_integer(0));
    json_object_set_new(o, "garbage_collection", json_object());
    json_object_set_new(o, "message_stats", http_message_stats(&ch->st));
    return o;
}

static void
add_channels(json_t *a, const conn *c)
{
    for (uint32_t i = 0; i < c->nchannels; i++)
        if (c->channels[i] && !c->channels[i]->released)
            json_array_append_new(a, channel_json(c->channels[i]));
}

static void
channels(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs == 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (conn *c = B.conns; c; c = c->next)
        if (conn_visible(rq, c) && (!only || c->vh == only))
            add_channels(a, c);
    http_list(rq, rs, a);
}

static void
connection_channels(http_req *rq, http_resp *rs)
{
    conn *c = conn_named(rq->args[0]);
    if (!c || !conn_visible(rq, c)) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return;
    }
    json_t *a = json_array();
    add_channels(a, c);
    http_list(rq, rs, a);
}

static void
channel_get(http_req *rq, http_resp *rs)
{
    /* "<connection name> (<number>)": find the connection, then the number */
    const char *name = rq->args[0];
    size_t n = strlen(name);
    const char *open = n ? strrchr(name, '(') : NULL;
    if (open && open > name + 1 && open[-1] == ' ' && name[n - 1] == ')') {
        char cname[128];
        size_t clen = (size_t)(open - 1 - name);
        char *end;
        unsigned long id = strtoul(open + 1, &end, 10);
        if (clen < sizeof cname && end == name + n - 1) {
            memcpy(cname, name, clen);
            cname[clen] = 0;
            conn *c = conn_named(cname);
            if (c && conn_visible(rq, c) && id < c->nchannels && c->channels[id] &&
                !c->channels[id]->released) {
                http_json(rs, 200, channel_json(c->channels[id]));
                return;
            }
        }
    }
    http_error(rs, 404, "Object Not Found", "Not Found");
}

/* ---- consumers ----------------------------------------------------------------- */

static json_t *
consumer_json(const consumer *k)
{
    const queue *q = k->q;
    json_t *o = json_object();
    json_object_set_new(o, "consumer_tag", bytes_json(k->tag.data, k->tag.len));
    json_object_set_new(o, "queue",
                        json_pack("{s:o, s:o}", "name", bytes_json(q->name.data, q->name.len),
                                  "vhost", bytes_json(q->vh->name.data, q->vh->name.len)));
    if (k->ch) {
        const channel *ch = k->ch;
        char name[160], peer_host[64];
        int peer_port;
        channel_name(ch, name, sizeof name);
        split_peer(ch->conn->peer, peer_host, sizeof peer_host, &peer_port);
        json_object_set_new(o, "channel_details",
                            json_pack("{s:s, s:i, s:s, s:s, s:i, s:s, s:s}", "name", name,
                                      "number", (int)ch->id, "connection_name", ch->conn->name,
                                      "peer_host", peer_host, "peer_port", peer_port,
                                      "user", ch->conn->user, "node", http_node_name()));
    } else {
        json_object_set_new(o, "channel_details", json_object());
    }
    json_object_set_new(o, "ack_required", json_boolean(!k->no_ack));
    json_object_set_new(o, "prefetch_count", json_integer(k->prefetch));
    json_object_set_new(o, "exclusive", json_boolean(k->exclusive));
    json_object_set_new(o, "active", json_true());
    json_object_set_new(o, "activity_status", json_string("up"));
    json_object_set_new(o, "arguments", json_object());
    return o;
}

static void
consumers(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs == 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
        vhost *vh = vi.e->value;
        if ((only && vh != only) || !http_vhost_visible(rq, vh))
            continue;
        for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
            queue *q = it.e->value;
            consumer *k = q->consumers;
            for (uint32_t i = 0; i < q->nconsumers && k; i++, k = k->next)
                json_array_append_new(a, consumer_json(k));
        }
    }
    http_list(rq, rs, a);
}

const http_route http_routes_conns[] = {
    { "GET", "/api/connections", connections, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/vhosts/{vhost}/connections", connections, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/connections/{name}", connection_get, HTTP_NEED_MANAGEMENT },
    { "DELETE", "/api/connections/{name}", connection_delete, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/connections/{name}/channels", connection_channels, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/connections/username/{user}", connections_of_user, HTTP_NEED_MANAGEMENT },
    { "DELETE", "/api/connections/username/{user}", connections_of_user_delete,
      HTTP_NEED_MANAGEMENT },
    { "GET", "/api/channels", channels, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/vhosts/{vhost}/channels", channels, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/channels/{channel}", channel_get, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/consumers", consumers, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/consumers/{vhost}", consumers, HTTP_NEED_MANAGEMENT },
    { NULL, NULL, NULL, 0 },
};
