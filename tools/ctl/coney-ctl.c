/*
 * coney-ctl: rabbitmqctl's counterpart for Coney, a client of the
 * management HTTP API. By default it talks to <data-dir>/coney.sock, the
 * broker's Unix socket, where it is the local administrator and needs no
 * password; with --url (or --host/--port) it talks to the management
 * port over TCP with --user/--password (guest/guest). Command names and
 * arguments are rabbitmqctl's (rabbitmqadmin's where rabbitmqctl has
 * none). Listings print a header line and tab-separated rows (-q drops
 * the header); --json prints the API's JSON instead.
 *
 * The commands are one table: name, arguments, options, handler. Each
 * handler maps its command onto API calls and the API's refusals onto
 * rabbitmqctl-style reasons (a 404 says which object is missing).
 *
 * Exit status: 0 done; 1 the broker refused (its reason on stderr);
 * 64 usage, checked here before anything is sent; 69 no broker answers.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tools/ctl/client.h"

#define EX_REFUSED 1
#define EX_USAGE 64
#define EX_UNAVAILABLE 69

static ctl_target target;
static const char *url_prefix = "";    /* a path before /api (--url http://h:p/prefix) */
static bool quiet, json_out;

/* What a command gets: positional arguments and options. */
typedef struct args {
    const char *vhost;             /* -p, "/" unless given */
    const char **v;
    int n;
    bool durable, auto_delete;
    const char *ackmode;
    const char *priority, *apply_to;   /* --priority N, --apply-to X (policies) */
} args;

static void usage(FILE *out);

/* ---- failing --------------------------------------------------------------------- */

static void __attribute__((noreturn, format(printf, 1, 2)))
refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("coney-ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EX_REFUSED);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("coney-ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EX_USAGE);
}

/* ---- the API ---------------------------------------------------------------------- */

/* A path from fmt, each "{}" replaced by the next argument
 * percent-encoded as one segment. In one of a few static buffers: valid
 * until the fourth call after. */
static const char *
P(const char *fmt, ...)
{
    static char bufs[4][8192];
    static int next;
    char *out = bufs[next++ % 4];
    snprintf(out, sizeof bufs[0], "%s", url_prefix);
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        size_t o = strlen(out);
        if (f[0] == '{' && f[1] == '}') {
            if (!ctl_path_append(out, sizeof bufs[0], va_arg(ap, const char *)))
                usage_error("arguments too long");
            f++;
        } else if (o + 1 < sizeof bufs[0]) {
            out[o] = *f;
            out[o + 1] = 0;
        }
    }
    va_end(ap);
    return out;
}

/* One request. body: JSON to send (borrowed) or NULL; raw: a body sent
 * as it is instead. Returns the answer parsed (NULL if empty or not
 * JSON; the caller owns it) and its status in *status. Exits 69 when no
 * broker answers. */
static json_t *
call_raw(const ctl_target *t, const char *method, const char *path, const char *raw,
         size_t raw_len, const char *headers, int *status)
{
    ctl_response r;
    char err[300];
    if (ctl_request(t, method, path, raw, raw_len, headers, &r, err, sizeof err) != 0) {
        fprintf(stderr, "coney-ctl: no broker answers on %s: %s\n", t->where, err);
        exit(EX_UNAVAILABLE);
    }
    *status = r.status;
    json_t *j = r.len ? json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL) : NULL;
    ctl_response_free(&r);
    return j;
}

static json_t *
call(const char *method, const char *path, const json_t *body, int *status)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_t *j = call_raw(&target, method, path, text, text ? strlen(text) : 0, NULL, status);
    free(text);
    return j;
}

/* The reason of an error answer ({"error", "reason"}). */
static const char *
reason_of(const json_t *j, int status)
{
    static char buf[64];
    const char *r = json_string_value(json_object_get(j, "reason"));
    if (r && *r)
        return r;
    snprintf(buf, sizeof buf, "the broker answered HTTP %d", status);
    return buf;
}

static bool
ok(int status)
{
    return status >= 200 && status < 300;
}

/* Exits 1 with the reason of an error answer (j is consumed). */
static void __attribute__((noreturn))
refuse_answer(json_t *j, int status)
{
    char why[1200];
    snprintf(why, sizeof why, "%s", reason_of(j, status));
    json_decref(j);
    if (status == 401)             /* the login over TCP, not the command */
        refuse("%s: %s as user '%s'", target.where, why, target.user);
    refuse("%s", why);
}

/* Does GET path answer 200? */
static bool
exists(const char *path)
{
    int st;
    json_decref(call("GET", path, NULL, &st));
    if (st == 401 || st == 403)
        refuse("%s: not allowed to read %s (HTTP %d)", target.where, path, st);
    return st == 200;
}

static void
need_user(const char *user)
{
    if (!exists(P("/api/users/{}", user)))
        refuse("no such user: '%s'", user);
}

static void
need_vhost(const char *vhost)
{
    if (!exists(P("/api/vhosts/{}", vhost)))
        refuse("no such vhost: '%s'", vhost);
}

/* A 404 about a user in a vhost: which one is missing? If both exist,
 * what was missing is said by otherwise. */
static void __attribute__((noreturn))
refuse_404(const char *vhost, const char *user, const char *otherwise)
{
    if (vhost)
        need_vhost(vhost);
    if (user)
        need_user(user);
    refuse("%s", otherwise);
}

/* A change: a 2xx is done, else exits 1 with the reason; a 404 is
 * explained by refuse_404(vhost, user, on404). */
static void
change(const char *method, const char *path, const json_t *body, const char *vhost,
       const char *user, const char *on404)
{
    int st;
    json_t *j = call(method, path, body, &st);
    if (st == 404 && (vhost || user || on404)) {
        json_decref(j);
        refuse_404(vhost, user, on404 ? on404 : "Not Found");
    }
    if (!ok(st))
        refuse_answer(j, st);
    json_decref(j);
}

/* GET path, which must answer 2xx (404: exit 1 with on404). */
static json_t *
fetch(const char *path, const char *on404)
{
    int st;
    json_t *j = call("GET", path, NULL, &st);
    if (st == 404 && on404) {
        json_decref(j);
        refuse("%s", on404);
    }
    if (!ok(st))
        refuse_answer(j, st);
    return j;
}

static const char *
fmt(const char *f, const char *a, const char *b)
{
    static char bufs[2][1200];
    static int next;
    char *out = bufs[next++ % 2];
    snprintf(out, sizeof bufs[0], f, a, b ? b : "");
    return out;
}

/* ---- printing ------------------------------------------------------------------- */

static void
print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    putchar('\n');
}

static void
header(const char *h)
{
    if (!quiet)
        printf("%s\n", h);
}

/* The value at a dotted path ("queue.name"), or NULL. */
static json_t *
field(json_t *o, const char *path)
{
    char part[128];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        o = json_object_get(o, part);
        path += n + (dot != NULL);
    }
    return o;
}

/* A cell: strings as they are, numbers and booleans as JSON writes
 * them, nothing for null or absent, objects and arrays as compact JSON. */
static void
cell(const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    if (json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
        return;
    }
    if (json_is_integer(v)) {
        printf("%lld", (long long)json_integer_value(v));
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (s)
        fputs(s, stdout);
    free(s);
}

/* A cell with tabs, newlines and backslashes escaped (message payloads). */
static void
cell_escaped(const json_t *v)
{
    if (!json_is_string(v)) {
        cell(v);
        return;
    }
    const char *s = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++) {
        switch (s[i]) {
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default: putchar(s[i]);
        }
    }
}

/* Rows of an array of objects: the header, then fields (dotted paths,
 * as many as the header has columns) of every item. */
static void
rows(json_t *items, const char *head, const char *const *fields)
{
    header(head);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        for (int k = 0; fields[k]; k++) {
            if (k)
                putchar('\t');
            cell(field(it, fields[k]));
        }
        putchar('\n');
    }
}

/* A listing: GET path (with columns= for the table when given), then the
 * JSON or the rows. */
static int
listing(const char *path, const char *columns, const char *on404, const char *head,
        const char *const *fields)
{
    char full[8400];
    snprintf(full, sizeof full, "%s%s%s", path, columns && !json_out ? "?columns=" : "",
             columns && !json_out ? columns : "");
    json_t *j = fetch(full, on404);
    if (json_out)
        print_json(j);
    else
        rows(j, head, fields);
    json_decref(j);
    return 0;
}

/* ---- users -------------------------------------------------------------------------- */

static int
c_add_user(const args *a)
{
    const char *u = a->v[0];
    if (exists(P("/api/users/{}", u)))
        refuse("user '%s' already exists", u);
    /* no password: RabbitMQ's empty hash, a user who cannot log in with one */
    json_t *b = a->n > 1 ? json_pack("{s:s, s:s}", "password", a->v[1], "tags", "")
                         : json_pack("{s:s, s:s}", "password_hash", "", "tags", "");
    change("PUT", P("/api/users/{}", u), b, NULL, NULL, NULL);
    json_decref(b);
    return 0;
}

static int
c_delete_user(const args *a)
{
    change("DELETE", P("/api/users/{}", a->v[0]), NULL, NULL, NULL,
           fmt("no such user: '%s'%s", a->v[0], NULL));
    return 0;
}

/* Changes an existing user (PUT would create a missing one). */
static int
user_put(const char *user, json_t *b)
{
    need_user(user);
    change("PUT", P("/api/users/{}", user), b, NULL, user, NULL);
    json_decref(b);
    return 0;
}

static int
c_change_password(const args *a)
{
    return user_put(a->v[0], json_pack("{s:s}", "password", a->v[1]));
}

static int
c_clear_password(const args *a)
{
    return user_put(a->v[0], json_pack("{s:s}", "password_hash", ""));
}

static int
c_set_password_hash(const args *a)
{
    json_t *b = json_pack("{s:s}", "password_hash", a->v[1]);
    if (a->n > 2)
        json_object_set_new(b, "hashing_algorithm", json_string(a->v[2]));
    return user_put(a->v[0], b);
}

static int
c_set_user_tags(const args *a)
{
    json_t *tags = json_array();
    for (int i = 1; i < a->n; i++)
        json_array_append_new(tags, json_string(a->v[i]));
    return user_put(a->v[0], json_pack("{s:o}", "tags", tags));
}

/* Over the socket, Coney's POST /api/coney/authenticate; over TCP, a
 * GET /api/whoami as that user (which a RabbitMQ answers too): a user
 * without management tags is still authenticated when the answer is
 * "Not management user". */
static int
c_authenticate_user(const args *a)
{
    int st;
    if (target.socket_path) {
        json_t *b = json_pack("{s:s, s:s}", "user", a->v[0], "password", a->v[1]);
        json_t *j = call("POST", P("/api/coney/authenticate"), b, &st);
        json_decref(b);
        if (!ok(st))
            refuse_answer(j, st);
        if (!json_is_true(json_object_get(j, "authenticated"))) {
            char why[600];
            snprintf(why, sizeof why, "%s", reason_of(j, st));
            json_decref(j);
            refuse("%s", why);
        }
        if (json_out)
            print_json(j);
        json_decref(j);
        return 0;
    }
    ctl_target as = target;
    as.user = a->v[0];
    as.password = a->v[1];
    json_t *j = call_raw(&as, "GET", P("/api/whoami"), NULL, 0, NULL, &st);
    const char *r = json_string_value(json_object_get(j, "reason"));
    bool in = st == 200 || (st == 401 && r && strcmp(r, "Not management user") == 0);
    if (in && json_out)
        print_json(j);
    json_decref(j);
    if (!in)
        refuse("user '%s' could not be authenticated", a->v[0]);
    return 0;
}

static void
limit_cell(json_t *limits, const char *key)
{
    json_t *v = json_object_get(limits, key);
    if (json_is_integer(v))
        printf("%lld", (long long)json_integer_value(v));
    else
        fputs("-1", stdout);
}

static int
c_list_users(const args *a)
{
    (void)a;
    json_t *j = fetch(P("/api/users"), NULL);
    if (json_out) {
        print_json(j);
        json_decref(j);
        return 0;
    }
    header("user\ttags\tmax-connections\tmax-channels");
    size_t i, k;
    json_t *u, *t;
    json_array_foreach(j, i, u) {
        cell(json_object_get(u, "name"));
        putchar('\t');
        json_t *tags = json_object_get(u, "tags");
        if (json_is_string(tags))
            cell(tags);
        json_array_foreach(tags, k, t) {
            if (k)
                putchar(',');
            cell(t);
        }
        putchar('\t');
        limit_cell(json_object_get(u, "limits"), "max-connections");
        putchar('\t');
        limit_cell(json_object_get(u, "limits"), "max-channels");
        putchar('\n');
    }
    json_decref(j);
    return 0;
}

/* ---- vhosts ------------------------------------------------------------------------ */

static int
c_add_vhost(const args *a)
{
    if (exists(P("/api/vhosts/{}", a->v[0])))
        refuse("vhost '%s' already exists", a->v[0]);
    json_t *b = json_object();
    change("PUT", P("/api/vhosts/{}", a->v[0]), b, NULL, NULL, NULL);
    json_decref(b);
    return 0;
}

static int
c_delete_vhost(const args *a)
{
    change("DELETE", P("/api/vhosts/{}", a->v[0]), NULL, NULL, NULL,
           fmt("no such vhost: '%s'%s", a->v[0], NULL));
    return 0;
}

static int
c_list_vhosts(const args *a)
{
    (void)a;
    json_t *j = fetch(P("/api/vhosts"), NULL);
    if (json_out) {
        print_json(j);
        json_decref(j);
        return 0;
    }
    json_t *limits = fetch(P("/api/vhost-limits"), NULL);
    header("name\tmax-connections\tmax-queues");
    size_t i, k;
    json_t *v, *l;
    json_array_foreach(j, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        json_t *mine = NULL;
        json_array_foreach(limits, k, l)
            if (name && json_equal(json_object_get(l, "vhost"), json_object_get(v, "name")))
                mine = json_object_get(l, "value");
        cell(json_object_get(v, "name"));
        putchar('\t');
        limit_cell(mine, "max-connections");
        putchar('\t');
        limit_cell(mine, "max-queues");
        putchar('\n');
    }
    json_decref(limits);
    json_decref(j);
    return 0;
}

/* ---- permissions ------------------------------------------------------------------ */

static const char *const perm_fields[] = { "user", "vhost", "configure", "write", "read", NULL };
static const char *const topic_fields[] = { "user", "vhost", "exchange", "write", "read", NULL };
#define PERM_HEADER "user\tvhost\tconfigure\twrite\tread"
#define TOPIC_HEADER "user\tvhost\texchange\twrite\tread"

/* set_permissions [-p VHOST] USER CONF WRITE READ */
static int
c_set_permissions(const args *a)
{
    json_t *b = json_pack("{s:s, s:s, s:s}", "configure", a->v[1], "write", a->v[2],
                          "read", a->v[3]);
    change("PUT", P("/api/permissions/{}/{}", a->vhost, a->v[0]), b, a->vhost, a->v[0], NULL);
    json_decref(b);
    return 0;
}

static int
c_clear_permissions(const args *a)
{
    change("DELETE", P("/api/permissions/{}/{}", a->vhost, a->v[0]), NULL, a->vhost, a->v[0],
           fmt("user '%s' has no permissions in vhost '%s'", a->v[0], a->vhost));
    return 0;
}

static int
c_list_permissions(const args *a)
{
    return listing(P("/api/vhosts/{}/permissions", a->vhost), NULL,
                   fmt("no such vhost: '%s'%s", a->vhost, NULL), PERM_HEADER, perm_fields);
}

static int
c_list_user_permissions(const args *a)
{
    return listing(P("/api/users/{}/permissions", a->v[0]), NULL,
                   fmt("no such user: '%s'%s", a->v[0], NULL), PERM_HEADER, perm_fields);
}

/* set_topic_permissions [-p VHOST] USER EXCHANGE WRITE READ */
static int
c_set_topic_permissions(const args *a)
{
    json_t *b = json_pack("{s:s, s:s, s:s}", "exchange", a->v[1], "write", a->v[2],
                          "read", a->v[3]);
    change("PUT", P("/api/topic-permissions/{}/{}", a->vhost, a->v[0]), b, a->vhost, a->v[0],
           NULL);
    json_decref(b);
    return 0;
}

/* clear_topic_permissions [-p VHOST] USER [EXCHANGE] */
static int
c_clear_topic_permissions(const args *a)
{
    const char *path = a->n > 1
        ? P("/api/topic-permissions/{}/{}?exchange={}", a->vhost, a->v[0], a->v[1])
        : P("/api/topic-permissions/{}/{}", a->vhost, a->v[0]);
    change("DELETE", path, NULL, a->vhost, a->v[0],
           fmt("user '%s' has no topic permissions in vhost '%s'", a->v[0], a->vhost));
    return 0;
}

static int
c_list_topic_permissions(const args *a)
{
    return listing(P("/api/vhosts/{}/topic-permissions", a->vhost), NULL,
                   fmt("no such vhost: '%s'%s", a->vhost, NULL), TOPIC_HEADER, topic_fields);
}

/* ---- limits ---------------------------------------------------------------------------- */

/* A JSON object of integer limits, checked here (a mistake is usage). */
static json_t *
limits_arg(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    if (!json_is_object(o))
        usage_error("limits must be a JSON object: %s", o ? "" : e.text);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
        if (!json_is_integer(v))
            usage_error("limit '%s' must be an integer", key);
    return o;
}

/* One PUT (or DELETE when clear) per limit of object o under base
 * ("/api/vhost-limits/{}"); a 404 is on404. */
static void
put_limits(const char *base_fmt, const char *target_name, json_t *o, bool clear,
           const char *on404)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        char f[128];
        snprintf(f, sizeof f, "%s/{}", base_fmt);
        json_t *b = clear ? NULL : json_pack("{s:O}", "value", v);
        change(clear ? "DELETE" : "PUT", P(f, target_name, key), b, NULL, NULL, on404);
        json_decref(b);
    }
}

static int
c_set_vhost_limits(const args *a)
{
    json_t *o = limits_arg(a->v[0]);
    put_limits("/api/vhost-limits/{}", a->vhost, o, false,
               fmt("no such vhost: '%s'%s", a->vhost, NULL));
    json_decref(o);
    return 0;
}

static int
c_clear_vhost_limits(const args *a)
{
    json_t *o = json_pack("{s:i, s:i}", "max-connections", -1, "max-queues", -1);
    put_limits("/api/vhost-limits/{}", a->vhost, o, true,
               fmt("no such vhost: '%s'%s", a->vhost, NULL));
    json_decref(o);
    return 0;
}

static int
c_set_user_limits(const args *a)
{
    json_t *o = limits_arg(a->v[1]);
    put_limits("/api/user-limits/{}", a->v[0], o, false,
               fmt("no such user: '%s'%s", a->v[0], NULL));
    json_decref(o);
    return 0;
}

/* clear_user_limits USER LIMIT|all */
static int
c_clear_user_limits(const args *a)
{
    json_t *o = strcmp(a->v[1], "all") == 0
        ? json_pack("{s:i, s:i}", "max-connections", -1, "max-channels", -1)
        : json_pack("{s:i}", a->v[1], -1);
    put_limits("/api/user-limits/{}", a->v[0], o, true,
               fmt("no such user: '%s'%s", a->v[0], NULL));
    json_decref(o);
    return 0;
}

/* ---- objects -------------------------------------------------------------------------- */

static const char *
no_vhost(const args *a)
{
    return fmt("no such vhost: '%s'%s", a->vhost, NULL);
}

/* name, messages (ready, as coney-ctl always printed), unacknowledged, consumers */
static int
c_list_queues(const args *a)
{
    static const char *const f[] = { "name", "messages_ready", "messages_unacknowledged",
                                      "consumers", NULL };
    return listing(P("/api/queues/{}", a->vhost),
                   "name,messages_ready,messages_unacknowledged,consumers", no_vhost(a),
                   "name\tmessages\tmessages_unacknowledged\tconsumers", f);
}

static int
c_list_exchanges(const args *a)
{
    static const char *const f[] = { "name", "type", "durable", "auto_delete", "internal",
                                      NULL };
    return listing(P("/api/exchanges/{}", a->vhost), "name,type,durable,auto_delete,internal",
                   no_vhost(a), "name\ttype\tdurable\tauto_delete\tinternal", f);
}

static int
c_list_bindings(const args *a)
{
    static const char *const f[] = { "source", "destination", "destination_type",
                                      "routing_key", "arguments", NULL };
    return listing(P("/api/bindings/{}", a->vhost), NULL, no_vhost(a),
                   "source\tdestination\tdestination_type\trouting_key\targuments", f);
}

static int
c_list_connections(const args *a)
{
    (void)a;
    static const char *const f[] = { "name", "user", "vhost", "protocol", "state", "channels",
                                      NULL };
    return listing(P("/api/connections"), "name,user,vhost,protocol,state,channels", NULL,
                   "name\tuser\tvhost\tprotocol\tstate\tchannels", f);
}

static int
c_list_channels(const args *a)
{
    (void)a;
    static const char *const f[] = { "name", "user", "vhost", "consumer_count",
                                      "messages_unacknowledged", "prefetch_count", NULL };
    return listing(P("/api/channels"), NULL, NULL,
                   "name\tuser\tvhost\tconsumer_count\tmessages_unacknowledged\tprefetch_count",
                   f);
}

static int
c_list_consumers(const args *a)
{
    static const char *const f[] = { "queue.name", "channel_details.name", "consumer_tag",
                                      "ack_required", "prefetch_count", "exclusive",
                                      "arguments", NULL };
    return listing(P("/api/consumers/{}", a->vhost), NULL, no_vhost(a),
                   "queue\tchannel\tconsumer_tag\tack_required\tprefetch_count\texclusive\t"
                   "arguments", f);
}

/* The default exchange is "amq.default" in a path, as RabbitMQ has it. */
static const char *
exchange_seg(const char *name)
{
    return *name ? name : "amq.default";
}

static int
c_declare_queue(const args *a)
{
    json_t *b = json_pack("{s:b, s:b}", "durable", a->durable, "auto_delete", a->auto_delete);
    change("PUT", P("/api/queues/{}/{}", a->vhost, a->v[0]), b, NULL, NULL, no_vhost(a));
    json_decref(b);
    return 0;
}

static int
c_declare_exchange(const args *a)
{
    json_t *b = json_pack("{s:s, s:b, s:b}", "type", a->v[1], "durable", a->durable,
                          "auto_delete", a->auto_delete);
    change("PUT", P("/api/exchanges/{}/{}", a->vhost, exchange_seg(a->v[0])), b, NULL, NULL,
           no_vhost(a));
    json_decref(b);
    return 0;
}

static const char *
no_queue(const args *a)
{
    return fmt("no such queue: '%s' in vhost '%s'", a->v[0], a->vhost);
}

static int
c_delete_queue(const args *a)
{
    change("DELETE", P("/api/queues/{}/{}", a->vhost, a->v[0]), NULL, NULL, NULL, no_queue(a));
    return 0;
}

static int
c_delete_exchange(const args *a)
{
    change("DELETE", P("/api/exchanges/{}/{}", a->vhost, exchange_seg(a->v[0])), NULL, NULL,
           NULL, fmt("no such exchange: '%s' in vhost '%s'", a->v[0], a->vhost));
    return 0;
}

static int
c_purge_queue(const args *a)
{
    change("DELETE", P("/api/queues/{}/{}/contents", a->vhost, a->v[0]), NULL, NULL, NULL,
           no_queue(a));
    return 0;
}

/* publish [-p VHOST] EXCHANGE ROUTING_KEY PAYLOAD */
static int
c_publish(const args *a)
{
    json_t *b = json_pack("{s:{}, s:s, s:s, s:s}", "properties", "routing_key", a->v[1],
                          "payload", a->v[2], "payload_encoding", "string");
    int st;
    json_t *j = call("POST", P("/api/exchanges/{}/{}/publish", a->vhost, exchange_seg(a->v[0])),
                     b, &st);
    json_decref(b);
    if (st == 404) {
        json_decref(j);
        need_vhost(a->vhost);
        refuse("no such exchange: '%s' in vhost '%s'", a->v[0], a->vhost);
    }
    if (!ok(st))
        refuse_answer(j, st);
    if (json_out)
        print_json(j);
    else if (json_is_true(json_object_get(j, "routed")))
        printf("Message published\n");
    else
        printf("Message published but NOT routed\n");
    json_decref(j);
    return 0;
}

/* get [-p VHOST] QUEUE [COUNT] [--ackmode MODE]: by default the messages
 * go back to the queue (ack_requeue_true), as rabbitmqadmin's get. */
static int
c_get(const args *a)
{
    long count = 1;
    if (a->n > 1) {
        char *end;
        count = strtol(a->v[1], &end, 10);
        if (*end || end == a->v[1] || count < 1)
            usage_error("COUNT must be a positive integer, not '%s'", a->v[1]);
    }
    json_t *b = json_pack("{s:i, s:s, s:s}", "count", (int)count, "ackmode",
                          a->ackmode ? a->ackmode : "ack_requeue_true", "encoding", "auto");
    int st;
    json_t *j = call("POST", P("/api/queues/{}/{}/get", a->vhost, a->v[0]), b, &st);
    json_decref(b);
    if (st == 404) {
        json_decref(j);
        need_vhost(a->vhost);
        refuse("%s", no_queue(a));
    }
    if (!ok(st))
        refuse_answer(j, st);
    if (json_out) {
        print_json(j);
        json_decref(j);
        return 0;
    }
    header("routing_key\texchange\tmessage_count\tredelivered\tpayload_bytes\tpayload_encoding"
           "\tpayload");
    size_t i;
    json_t *m;
    json_array_foreach(j, i, m) {
        static const char *const f[] = { "routing_key", "exchange", "message_count",
                                          "redelivered", "payload_bytes", "payload_encoding" };
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
            cell(json_object_get(m, f[k]));
            putchar('\t');
        }
        cell_escaped(json_object_get(m, "payload"));
        putchar('\n');
    }
    json_decref(j);
    return 0;
}

/* ---- definitions, connections ----------------------------------------------------- */

static int
c_export_definitions(const args *a)
{
    json_t *j = fetch(P("/api/definitions"), NULL);
    bool to_stdout = strcmp(a->v[0], "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(a->v[0], "w");
    if (!f) {
        json_decref(j);
        usage_error("cannot write %s: %s", a->v[0], strerror(errno));
    }
    int rc = json_dumpf(j, f, JSON_INDENT(2));
    fputc('\n', f);
    json_decref(j);
    if ((!to_stdout && fclose(f) != 0) || rc != 0)
        usage_error("cannot write %s: %s", a->v[0], strerror(errno));
    return 0;
}

static int
c_import_definitions(const args *a)
{
    bool from_stdin = strcmp(a->v[0], "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(a->v[0], "r");
    if (!f)
        usage_error("cannot read %s: %s", a->v[0], strerror(errno));
    size_t len = 0, cap = 65536;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + len, 1, cap - len, f)) > 0; ) {
        len += got;
        if (len == cap) {
            char *t = realloc(text, cap *= 2);
            if (!t)
                free(text);
            text = t;
        }
    }
    bool bad = !text || ferror(f);
    if (!from_stdin)
        fclose(f);
    if (bad) {
        free(text);
        usage_error("cannot read %s", a->v[0]);
    }
    int st;
    json_t *j = call_raw(&target, "POST", P("/api/definitions"), text, len, NULL, &st);
    free(text);
    if (!ok(st))
        refuse_answer(j, st);
    json_decref(j);
    return 0;
}

/* close_connection NAME [REASON]: the client sees connection.close 320
 * (CONNECTION_FORCED) with the reason. */
static int
c_close_connection(const args *a)
{
    char hdr[1100] = "";
    if (a->n > 1) {
        snprintf(hdr, sizeof hdr, "X-Reason: %s\r\n", a->v[1]);
        for (char *p = hdr + 10; p[2]; p++)     /* no header injection */
            if (*p == '\r' || *p == '\n')
                *p = ' ';
    }
    int st;
    json_t *j = call_raw(&target, "DELETE", P("/api/connections/{}", a->v[0]), NULL, 0,
                         hdr[0] ? hdr : NULL, &st);
    if (st == 404) {
        json_decref(j);
        refuse("no such connection: '%s'", a->v[0]);
    }
    if (!ok(st))
        refuse_answer(j, st);
    json_decref(j);
    return 0;
}

/* ---- the node ----------------------------------------------------------------------- */

static void
kv(const char *key, const json_t *v)
{
    printf("%s\t", key);
    cell(v);
    putchar('\n');
}

static int
c_status(const args *a)
{
    (void)a;
    json_t *ov = fetch(P("/api/overview"), NULL);
    const char *node = json_string_value(json_object_get(ov, "node"));
    json_t *nd = fetch(P("/api/nodes/{}", node ? node : ""), NULL);
    if (json_out) {
        json_t *both = json_pack("{s:O, s:O}", "overview", ov, "node", nd);
        print_json(both);
        json_decref(both);
    } else {
        header("key\tvalue");
        kv("version", json_object_get(ov, "product_version"));
        kv("pid", json_object_get(nd, "os_pid"));
        kv("data_dir", json_object_get(nd, "db_dir"));
        kv("node", json_object_get(ov, "node"));
        kv("rabbitmq_version", json_object_get(ov, "rabbitmq_version"));
        kv("uptime_ms", json_object_get(nd, "uptime"));
        static const char *const totals[] = { "connections", "channels", "exchanges",
                                               "queues", "consumers" };
        for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++)
            kv(totals[i], field(ov, fmt("object_totals.%s%s", totals[i], NULL)));
        kv("messages", field(ov, "queue_totals.messages"));
        kv("mem_used", json_object_get(nd, "mem_used"));
        kv("disk_free", json_object_get(nd, "disk_free"));
        kv("disk_free_alarm", json_object_get(nd, "disk_free_alarm"));
        kv("fd_used", json_object_get(nd, "fd_used"));
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(ov, "listeners"), i, l) {
            char key[64];
            snprintf(key, sizeof key, "listener %s", json_string_value(json_object_get(l, "protocol")));
            kv(key, json_object_get(l, "port"));
        }
    }
    json_decref(nd);
    json_decref(ov);
    return 0;
}

/* Every health check of /api/health/checks, one line each; exit 1 if
 * any fails. */
static int
c_health(const args *a)
{
    (void)a;
    static const char *const checks[] = {
        "alarms", "local-alarms", "virtual-hosts", "node-is-quorum-critical",
        "node-is-mirror-sync-critical", "below-node-connection-limit", "is-in-service",
        "ready-to-serve-clients",
    };
    json_t *ov = fetch(P("/api/overview"), NULL);
    json_t *all = json_array();
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        int st;
        json_t *j = call("GET", P("/api/health/checks/{}", checks[i]), NULL, &st);
        json_array_append_new(all, json_pack("{s:s, s:i, s:o}", "check", checks[i],
                                             "status", st, "result", j ? j : json_null()));
    }
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(ov, "listeners"), i, l) {
        char port[16], name[64];
        snprintf(port, sizeof port, "%lld", (long long)json_integer_value(json_object_get(l, "port")));
        snprintf(name, sizeof name, "port-listener/%s", port);
        int st;
        json_t *j = call("GET", P("/api/health/checks/port-listener/{}", port), NULL, &st);
        json_array_append_new(all, json_pack("{s:s, s:i, s:o}", "check", name, "status", st,
                                             "result", j ? j : json_null()));
    }
    json_decref(ov);
    int rc = 0;
    json_t *c;
    if (!json_out)
        header("check\tstatus\treason");
    json_array_foreach(all, i, c) {
        int st = (int)json_integer_value(json_object_get(c, "status"));
        if (!ok(st))
            rc = EX_REFUSED;
        if (json_out)
            continue;
        json_t *res = json_object_get(c, "result");
        printf("%s\t%s\t", json_string_value(json_object_get(c, "check")),
               ok(st) ? "ok" : "failed");
        if (!ok(st))
            fputs(reason_of(res, st), stdout);
        putchar('\n');
    }
    if (json_out)
        print_json(all);
    json_decref(all);
    return rc;
}

/* ---- offline ------------------------------------------------------------------------ */

/* RabbitMQ's default scheme: base64(salt4 + sha256(salt4 + password)). */
static int
c_hash_password(const args *a)
{
    const char *pass = a->v[0];
    unsigned char raw[4 + 32];
    if (getrandom(raw, 4, 0) != 4)
        return EX_REFUSED;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    bool good = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
                EVP_DigestUpdate(ctx, raw, 4) == 1 &&
                EVP_DigestUpdate(ctx, pass, strlen(pass)) == 1 &&
                EVP_DigestFinal_ex(ctx, raw + 4, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!good)
        return EX_REFUSED;
    char out[64];
    EVP_EncodeBlock((unsigned char *)out, raw, (int)sizeof raw);
    printf("%s\n", out);
    return 0;
}

/* ---- policies and operator policies ------------------------------------------------ */

static const char *const policy_fields[] = { "vhost", "name", "pattern", "apply-to",
                                             "definition", "priority", NULL };
#define POLICY_HEADER "vhost\tname\tpattern\tapply-to\tdefinition\tpriority"

/* set_policy / set_operator_policy [-p VHOST] [--priority N] [--apply-to X]
 * NAME PATTERN DEFINITION, DEFINITION a JSON object */
static int
set_policy(const args *a, const char *kind)
{
    json_error_t e;
    json_t *def = json_loads(a->v[2], JSON_DECODE_ANY, &e);
    if (!json_is_object(def)) {
        json_decref(def);
        usage_error("the definition must be a JSON object, not %s", a->v[2]);
    }
    char *end = NULL;
    long long prio = a->priority ? strtoll(a->priority, &end, 10) : 0;
    if (a->priority && (!*a->priority || *end)) {
        json_decref(def);
        usage_error("--priority takes an integer, not %s", a->priority);
    }
    json_t *b = json_pack("{s:s, s:o, s:I, s:s}", "pattern", a->v[1], "definition", def,
                          "priority", (json_int_t)prio, "apply-to",
                          a->apply_to ? a->apply_to : "all");
    change("PUT", P(kind, a->vhost, a->v[0]), b, a->vhost, NULL, NULL);
    json_decref(b);
    return 0;
}

static int
clear_policy(const args *a, const char *kind, const char *what)
{
    int st;
    json_t *j = call("DELETE", P(kind, a->vhost, a->v[0]), NULL, &st);
    if (st == 404) {
        json_decref(j);
        need_vhost(a->vhost);
        refuse("%s '%s' not found in vhost '%s'", what, a->v[0], a->vhost);
    }
    if (!ok(st))
        refuse_answer(j, st);
    json_decref(j);
    return 0;
}

static int
c_set_policy(const args *a)
{
    return set_policy(a, "/api/policies/{}/{}");
}

static int
c_clear_policy(const args *a)
{
    return clear_policy(a, "/api/policies/{}/{}", "policy");
}

static int
c_list_policies(const args *a)
{
    return listing(P("/api/policies/{}", a->vhost), NULL,
                   fmt("no such vhost: '%s'%s", a->vhost, NULL), POLICY_HEADER, policy_fields);
}

static int
c_set_operator_policy(const args *a)
{
    return set_policy(a, "/api/operator-policies/{}/{}");
}

static int
c_clear_operator_policy(const args *a)
{
    return clear_policy(a, "/api/operator-policies/{}/{}", "operator policy");
}

static int
c_list_operator_policies(const args *a)
{
    return listing(P("/api/operator-policies/{}", a->vhost), NULL,
                   fmt("no such vhost: '%s'%s", a->vhost, NULL), POLICY_HEADER, policy_fields);
}

/* ---- the commands --------------------------------------------------------------------- */

enum {
    OPT_DURABLE = 1,               /* --durable */
    OPT_AUTO_DELETE = 2,           /* --auto-delete */
    OPT_ACKMODE = 4,               /* --ackmode MODE */
    OFFLINE = 8,                   /* needs no broker */
    OPT_POLICY = 16,               /* --priority N, --apply-to X */
};

typedef struct command {
    const char *name;
    int min, max;                  /* positional arguments (-p and options aside) */
    unsigned opts;
    int (*run)(const args *a);
} command;

#define MANY 1000

static const command commands[] = {
    { "add_user", 1, 2, 0, c_add_user },
    { "delete_user", 1, 1, 0, c_delete_user },
    { "change_password", 2, 2, 0, c_change_password },
    { "clear_password", 1, 1, 0, c_clear_password },
    { "set_password_hash", 2, 3, 0, c_set_password_hash },
    { "set_user_tags", 1, MANY, 0, c_set_user_tags },
    { "authenticate_user", 2, 2, 0, c_authenticate_user },
    { "list_users", 0, 0, 0, c_list_users },
    { "hash_password", 1, 1, OFFLINE, c_hash_password },
    { "add_vhost", 1, 1, 0, c_add_vhost },
    { "delete_vhost", 1, 1, 0, c_delete_vhost },
    { "list_vhosts", 0, 0, 0, c_list_vhosts },
    { "set_permissions", 4, 4, 0, c_set_permissions },
    { "clear_permissions", 1, 1, 0, c_clear_permissions },
    { "list_permissions", 0, 0, 0, c_list_permissions },
    { "list_user_permissions", 1, 1, 0, c_list_user_permissions },
    { "set_topic_permissions", 4, 4, 0, c_set_topic_permissions },
    { "clear_topic_permissions", 1, 2, 0, c_clear_topic_permissions },
    { "list_topic_permissions", 0, 0, 0, c_list_topic_permissions },
    { "set_vhost_limits", 1, 1, 0, c_set_vhost_limits },
    { "clear_vhost_limits", 0, 0, 0, c_clear_vhost_limits },
    { "set_user_limits", 2, 2, 0, c_set_user_limits },
    { "clear_user_limits", 2, 2, 0, c_clear_user_limits },
    { "set_policy", 3, 3, OPT_POLICY, c_set_policy },
    { "clear_policy", 1, 1, 0, c_clear_policy },
    { "list_policies", 0, 0, 0, c_list_policies },
    { "set_operator_policy", 3, 3, OPT_POLICY, c_set_operator_policy },
    { "clear_operator_policy", 1, 1, 0, c_clear_operator_policy },
    { "list_operator_policies", 0, 0, 0, c_list_operator_policies },
    { "list_queues", 0, 0, 0, c_list_queues },
    { "list_exchanges", 0, 0, 0, c_list_exchanges },
    { "list_bindings", 0, 0, 0, c_list_bindings },
    { "list_connections", 0, 0, 0, c_list_connections },
    { "list_channels", 0, 0, 0, c_list_channels },
    { "list_consumers", 0, 0, 0, c_list_consumers },
    { "declare_queue", 1, 1, OPT_DURABLE | OPT_AUTO_DELETE, c_declare_queue },
    { "declare_exchange", 2, 2, OPT_DURABLE | OPT_AUTO_DELETE, c_declare_exchange },
    { "delete_queue", 1, 1, 0, c_delete_queue },
    { "delete_exchange", 1, 1, 0, c_delete_exchange },
    { "purge_queue", 1, 1, 0, c_purge_queue },
    { "publish", 3, 3, 0, c_publish },
    { "get", 1, 2, OPT_ACKMODE, c_get },
    { "export_definitions", 1, 1, 0, c_export_definitions },
    { "import_definitions", 1, 1, 0, c_import_definitions },
    { "close_connection", 1, 2, 0, c_close_connection },
    { "status", 0, 0, 0, c_status },
    { "health", 0, 0, 0, c_health },
};

static void
usage(FILE *out)
{
    fprintf(out,
        "Usage: coney-ctl [WHERE] [-q] [--json] COMMAND [ARGS]\n"
        "Administers a running Coney through its management HTTP API.\n"
        "WHERE is the broker's Unix socket (the default; no password needed):\n"
        "  --data-dir DIR      DIR/coney.sock (default $CONEY_DATA_DIR, else ./data)\n"
        "  --socket PATH       that socket\n"
        "or its management port over TCP:\n"
        "  --url http://HOST:PORT   or  --host HOST [--port PORT]  (default port 15672)\n"
        "  --user USER --password PASSWORD   (default guest/guest)\n"
        "  -q   no header line      --json   the API's JSON instead of the table\n"
        "-p VHOST picks the vhost (default /) of the commands that take one.\n"
        "\n"
        "Users:   add_user USER [PASSWORD]          delete_user USER\n"
        "         change_password USER PASSWORD     clear_password USER\n"
        "         set_user_tags USER [TAG ...]      list_users\n"
        "         authenticate_user USER PASSWORD   hash_password PASSWORD (offline)\n"
        "         set_password_hash USER HASH [rabbit_password_hashing_sha256|sha512|md5]\n"
        "Vhosts:  add_vhost VHOST   delete_vhost VHOST   list_vhosts\n"
        "Access:  set_permissions [-p VHOST] USER CONF WRITE READ\n"
        "         clear_permissions [-p VHOST] USER\n"
        "         list_permissions [-p VHOST]       list_user_permissions USER\n"
        "         set_topic_permissions [-p VHOST] USER EXCHANGE WRITE READ\n"
        "         clear_topic_permissions [-p VHOST] USER [EXCHANGE]\n"
        "         list_topic_permissions [-p VHOST]\n"
        "Limits:  set_vhost_limits [-p VHOST] '{\"max-connections\": N, \"max-queues\": N}'\n"
        "         clear_vhost_limits [-p VHOST]\n"
        "         set_user_limits USER '{\"max-connections\": N, \"max-channels\": N}'\n"
        "         clear_user_limits USER LIMIT|all\n"
        "Policies: set_policy [-p VHOST] [--priority N] [--apply-to all|queues|exchanges]\n"
        "             NAME PATTERN DEFINITION   (DEFINITION: JSON, '{\"max-length\": 10}')\n"
        "         clear_policy [-p VHOST] NAME   list_policies [-p VHOST]\n"
        "         set_operator_policy, clear_operator_policy, list_operator_policies: the same\n"
        "Objects: list_queues [-p VHOST]   list_exchanges [-p VHOST]   list_bindings [-p VHOST]\n"
        "         declare_queue [-p VHOST] NAME [--durable] [--auto-delete]\n"
        "         declare_exchange [-p VHOST] NAME TYPE [--durable] [--auto-delete]\n"
        "         delete_queue [-p VHOST] NAME   delete_exchange [-p VHOST] NAME\n"
        "         purge_queue [-p VHOST] NAME\n"
        "Messages: publish [-p VHOST] EXCHANGE ROUTING_KEY PAYLOAD\n"
        "         get [-p VHOST] QUEUE [COUNT] [--ackmode MODE]   (default ack_requeue_true;\n"
        "             ack_requeue_false, reject_requeue_true, reject_requeue_false)\n"
        "Clients: list_connections   list_channels   list_consumers [-p VHOST]\n"
        "         close_connection NAME [REASON]\n"
        "Definitions: export_definitions FILE|-   import_definitions FILE|-\n"
        "Node:    status   health (every /api/health/checks; exit 1 if one fails)\n"
        "\n"
        "Exit status: 0 done; 1 refused (the broker's reason on stderr); 64 usage;\n"
        "69 no broker answers.\n");
}

/* --url http://HOST[:PORT][/PREFIX] */
static void
parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap, char *prefix,
          size_t xcap)
{
    if (strncmp(url, "http://", 7) != 0)
        usage_error("--url must start with http:// (not %s)", url);
    const char *h = url + 7, *end;
    if (*h == '[') {               /* [::1]:15672 */
        end = strchr(h, ']');
        if (!end)
            usage_error("bad --url %s", url);
        snprintf(host, hcap, "%.*s", (int)(end - h - 1), h + 1);
        end++;
    } else {
        end = h + strcspn(h, ":/");
        snprintf(host, hcap, "%.*s", (int)(end - h), h);
    }
    if (!*host)
        usage_error("bad --url %s", url);
    snprintf(port, pcap, "15672");
    if (*end == ':') {
        const char *p = end + 1;
        end = p + strcspn(p, "/");
        snprintf(port, pcap, "%.*s", (int)(end - p), p);
    }
    snprintf(prefix, xcap, "%s", end);
    size_t n = strlen(prefix);
    while (n && prefix[n - 1] == '/')
        prefix[--n] = 0;
}

int
main(int argc, char **argv)
{
    const char *dir = getenv("CONEY_DATA_DIR"), *socket_path = NULL, *url = NULL;
    const char *host = NULL, *port = NULL;
    target.user = "guest";
    target.password = "guest";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(o, "--data-dir") == 0 && has)
            dir = argv[++i];
        else if (strcmp(o, "--socket") == 0 && has)
            socket_path = argv[++i];
        else if (strcmp(o, "--url") == 0 && has)
            url = argv[++i];
        else if (strcmp(o, "--host") == 0 && has)
            host = argv[++i];
        else if (strcmp(o, "--port") == 0 && has)
            port = argv[++i];
        else if (strcmp(o, "--user") == 0 && has)
            target.user = argv[++i];
        else if (strcmp(o, "--password") == 0 && has)
            target.password = argv[++i];
        else if (strcmp(o, "-q") == 0 || strcmp(o, "--quiet") == 0)
            quiet = true;
        else if (strcmp(o, "--json") == 0)
            json_out = true;
        else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "coney-ctl: unknown option '%s'\n", o);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EX_USAGE;
    }

    /* where: TCP when asked for, else the socket */
    static char hostbuf[256], portbuf[16], prefix[512], pathbuf[4096];
    if (url) {
        parse_url(url, hostbuf, sizeof hostbuf, portbuf, sizeof portbuf, prefix, sizeof prefix);
        target.host = hostbuf;
        target.port = portbuf;
        url_prefix = prefix;
    } else if (host || port) {
        target.host = host ? host : "localhost";
        target.port = port ? port : "15672";
    } else {
        if (!socket_path) {
            snprintf(pathbuf, sizeof pathbuf, "%s/coney.sock", dir ? dir : "./data");
            socket_path = pathbuf;
        }
        target.socket_path = socket_path;
    }
    if (target.socket_path)
        snprintf(target.where, sizeof target.where, "%s", target.socket_path);
    else
        snprintf(target.where, sizeof target.where, strchr(target.host, ':')
                 ? "http://[%s]:%s%s" : "http://%s:%s%s", target.host, target.port, url_prefix);

    const char *name = argv[i++];
    const command *cmd = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(commands[k].name, name) == 0)
            cmd = &commands[k];
    if (!cmd) {
        fprintf(stderr, "coney-ctl: unknown command '%s'\n", name);
        usage(stderr);
        return EX_USAGE;
    }

    /* after the command: -p VHOST (anywhere, as rabbitmqctl takes it),
     * the command's options, -q and --json; "--" ends them; anything
     * else (also "-1") is an argument */
    args a = { .vhost = "/" };
    const char **pos = calloc((size_t)argc, sizeof *pos);
    if (!pos)
        return EX_UNAVAILABLE;
    a.v = pos;
    bool opts_done = false;
    for (; i < argc; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (opts_done || o[0] != '-')
            pos[a.n++] = o;
        else if (strcmp(o, "--") == 0)
            opts_done = true;
        else if (strcmp(o, "-p") == 0 && has)
            a.vhost = argv[++i];
        else if (strcmp(o, "-q") == 0 || strcmp(o, "--quiet") == 0)
            quiet = true;
        else if (strcmp(o, "--json") == 0)
            json_out = true;
        else if (strcmp(o, "--durable") == 0 && (cmd->opts & OPT_DURABLE))
            a.durable = true;
        else if (strcmp(o, "--auto-delete") == 0 && (cmd->opts & OPT_AUTO_DELETE))
            a.auto_delete = true;
        else if (strcmp(o, "--ackmode") == 0 && has && (cmd->opts & OPT_ACKMODE))
            a.ackmode = argv[++i];
        else if (strcmp(o, "--priority") == 0 && has && (cmd->opts & OPT_POLICY))
            a.priority = argv[++i];
        else if (strcmp(o, "--apply-to") == 0 && has && (cmd->opts & OPT_POLICY))
            a.apply_to = argv[++i];
        else if (o[1] == '-') {
            free(pos);
            usage_error("%s does not take %s", cmd->name, o);
        } else
            pos[a.n++] = o;
    }
    if (a.n < cmd->min || a.n > cmd->max) {
        free(pos);
        if (cmd->max == MANY)
            usage_error("%s takes at least %d arguments", cmd->name, cmd->min);
        usage_error("%s takes %d to %d arguments", cmd->name, cmd->min, cmd->max);
    }
    int rc = cmd->run(&a);
    free(pos);
    return rc;
}
