/*
 * Exchanges, queues and bindings over HTTP, with RabbitMQ's paths,
 * bodies, status codes and fields.
 *
 * Everything here acts on the broker as an AMQP channel would, through
 * the same vhost_* functions, with the same checks in the same order and
 * the same texts (channel.c): RabbitMQ's management plugin runs its
 * changes through a channel too, and answers a channel error as 400
 * bad_request (403 not_authorised for an access refusal, 404 for a
 * missing object). Durable objects are persisted by those functions or
 * here right after creation, as channel.c does.
 *
 * A binding is named in URLs by its properties key, as RabbitMQ's:
 * "~" for an empty routing key without arguments, else the routing key
 * quoted (quote_plus, '~' as %7E), followed by "~" and a hash of the
 * arguments when there are any. RabbitMQ's hash is Erlang's phash2 of the
 * argument term, which only Erlang computes; ours is FNV-1a of the
 * encoded table, so a key is stable within Coney but differs from
 * RabbitMQ's for bindings with arguments (docs/management.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/crypto.h"
#include "broker/log.h"
#include "broker/persist.h"
#include "plugins/management/api.h"

#define BYTES_FMT "%.*s"
#define BYTES_ARG(b) (int)(b).len, (b).data

/* ---- small things ----------------------------------------------------------- */

const char *
http_status_error(int status)
{
    switch (status) {
    case 403: return "not_authorised";
    case 404: return "Object Not Found";
    case 405: return "method_not_allowed";
    case 501: return "not_implemented";
    default: return "bad_request";
    }
}

static void
fail(http_resp *rs, int status, const char *why)
{
    http_error(rs, status, http_status_error(status), "%s", why);
}

const char *
http_node_name(void)
{
    static char name[300];
    if (!name[0]) {
        char host[256];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = 0;
        char *dot = strchr(host, '.');
        if (dot)
            *dot = 0;
        snprintf(name, sizeof name, "coney@%s", host);
    }
    return name;
}

static bool
utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) k = 1;
        else if (c >= 0xe0 && c <= 0xef) k = 2;
        else if (c >= 0xf0 && c <= 0xf4) k = 3;
        else return false;
        if (k > n - i - 1)
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f))
            return false;
        i += k + 1;
    }
    return true;
}

json_t *
http_bytes_json(amqp_bytes b)
{
    if (utf8_valid((const unsigned char *)b.data, b.len)) {
        json_t *s = json_stringn(b.data ? b.data : "", b.len);
        if (s)
            return s;
    }
    char *t = malloc(b.len ? b.len : 1);
    if (!t)
        abort();
    for (uint32_t i = 0; i < b.len; i++)
        t[i] = (unsigned char)b.data[i] < 0x80 ? b.data[i] : '?';
    json_t *s = json_stringn(t, b.len);
    free(t);
    return s;
}

/* Base64 of any length (crypto_b64_decode is sized for password
 * hashes): padding optional, whitespace skipped. Returns the decoded
 * length, or -1 if in holds anything else. out needs n * 3 / 4 bytes. */
static long
b64_decode(const char *in, size_t n, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    bool pad = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+') v = 62;
        else if (c == '/') v = 63;
        else if (c == '=') { pad = true; continue; }
        else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        else return -1;
        if (pad)
            return -1;             /* data after padding */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

/* "name" in a path: "amq.default" is the default exchange, "" */
static amqp_bytes
exchange_arg(const char *s)
{
    return strcmp(s, "amq.default") == 0 ? amqp_cstr("") : amqp_cstr(s);
}

static amqp_bytes
pool_copy(amqp_pool *pool, amqp_bytes b)
{
    char *d = amqp_pool_dup(pool, b.data ? b.data : "", b.len ? b.len : 1);
    if (!d)
        abort();
    return (amqp_bytes){ d, b.len };
}

/* ---- field tables as JSON ------------------------------------------------------ */

static json_t *value_json(const amqp_value *v);

static json_t *
table_json(const amqp_table *t)
{
    json_t *o = json_object();
    for (uint32_t i = 0; i < t->n; i++) {
        char key[256];
        snprintf(key, sizeof key, BYTES_FMT, BYTES_ARG(t->fields[i].key));
        json_t *k = http_bytes_json(amqp_cstr(key));
        json_object_set_new(o, json_string_value(k), value_json(&t->fields[i].value));
        json_decref(k);
    }
    return o;
}

static json_t *
value_json(const amqp_value *v)
{
    switch (v->kind) {
    case 't': return json_boolean(v->v.boolean);
    case 'b': case 's': case 'U': case 'I': case 'l': case 'L':
        return json_integer(v->v.i);
    case 'B': case 'u': case 'i': case 'T':
        return json_integer((json_int_t)v->v.u);
    case 'f': return json_real((double)v->v.f);
    case 'd': return json_real(v->v.d);
    case 'D': {
        double d = v->v.decimal.value;
        for (int i = 0; i < v->v.decimal.scale; i++)
            d /= 10;
        return json_real(d);
    }
    case 'S': case 'x': return http_bytes_json(v->v.bytes);
    case 'F': return table_json(&v->v.table);
    case 'A': {
        json_t *a = json_array();
        for (uint32_t i = 0; i < v->v.array.n; i++)
            json_array_append_new(a, value_json(&v->v.array.items[i]));
        return a;
    }
    default: return json_null();
    }
}

json_t *
http_args_json(const uint8_t *raw, uint32_t len)
{
    if (!raw || len == 0)
        return json_object();
    amqp_pool pool = { 0 };
    amqp_table t;
    size_t off = 0;
    json_t *o = amqp_table_decode(raw, len, &off, &t, &pool) == AMQP_OK ? table_json(&t)
                                                                       : json_object();
    amqp_pool_free(&pool);
    return o;
}

static int json_table(const json_t *obj, amqp_table *t, amqp_pool *pool, int depth,
                      char *why, size_t cap);

static int
json_value(const json_t *j, amqp_value *v, amqp_pool *pool, int depth, char *why, size_t cap)
{
    switch (json_typeof(j)) {
    case JSON_STRING:
        v->kind = 'S';
        v->v.bytes = (amqp_bytes){ json_string_value(j), (uint32_t)json_string_length(j) };
        return 0;
    case JSON_INTEGER:
        v->kind = 'l';
        v->v.i = json_integer_value(j);
        return 0;
    case JSON_REAL:
        v->kind = 'd';
        v->v.d = json_real_value(j);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind = 't';
        v->v.boolean = json_is_true(j);
        return 0;
    case JSON_NULL:
        v->kind = 'V';
        return 0;
    case JSON_OBJECT:
        v->kind = 'F';
        return json_table(j, &v->v.table, pool, depth + 1, why, cap);
    case JSON_ARRAY: {
        v->kind = 'A';
        size_t n = json_array_size(j);
        v->v.array.n = (uint32_t)n;
        v->v.array.items = n ? amqp_pool_alloc(pool, n * sizeof(amqp_value)) : NULL;
        if (n && !v->v.array.items)
            abort();
        if (depth + 1 > 16) {
            snprintf(why, cap, "arguments nested too deeply");
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (json_value(json_array_get(j, i), &v->v.array.items[i], pool, depth + 1,
                           why, cap) < 0)
                return -1;
        return 0;
    }
    }
    snprintf(why, cap, "unsupported argument value");
    return -1;
}

static int
json_table(const json_t *obj, amqp_table *t, amqp_pool *pool, int depth, char *why, size_t cap)
{
    if (depth > 16) {
        snprintf(why, cap, "arguments nested too deeply");
        return -1;
    }
    size_t n = json_object_size(obj);
    t->n = (uint32_t)n;
    t->fields = n ? amqp_pool_alloc(pool, n * sizeof(amqp_field)) : NULL;
    if (n && !t->fields)
        abort();
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        size_t kl = strlen(key);
        if (kl > 255) {
            snprintf(why, cap, "argument name longer than 255 bytes");
            return -1;
        }
        t->fields[i].key = (amqp_bytes){ key, (uint32_t)kl };
        if (json_value(val, &t->fields[i].value, pool, depth, why, cap) < 0)
            return -1;
        i++;
    }
    return 0;
}

/* The JSON object as a decoded table (strings borrow from obj). */
static int
json_args_table(const json_t *obj, amqp_table *t, amqp_pool *pool, char *why, size_t cap)
{
    t->n = 0;
    t->fields = NULL;
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj)) {
        snprintf(why, cap, "arguments must be a JSON object");
        return -1;
    }
    return json_table(obj, t, pool, 0, why, cap);
}

int
http_json_args(const json_t *obj, amqp_pool *pool, uint8_t **out, uint32_t *len, char *why,
               size_t cap)
{
    amqp_table t;
    *out = NULL;
    *len = 0;
    if (json_args_table(obj, &t, pool, why, cap) < 0)
        return -1;
    if (t.n == 0)
        return 0;
    size_t n = amqp_table_size(&t);
    if (n > UINT32_MAX) {
        snprintf(why, cap, "arguments too large");
        return -1;
    }
    *out = amqp_pool_alloc(pool, n);
    if (!*out)
        abort();
    amqp_table_encode(&t, *out);
    *len = (uint32_t)n;
    return 0;
}

/* ---- checks shared by the operations --------------------------------------------- */

static bool
permitted(const auth_user *u, const vhost *vh, enum auth_perm kind, amqp_bytes name,
          char *why, size_t cap)
{
    if (!u || auth_permitted(u, vh, kind, name))
        return true;
    snprintf(why, cap, "Access refused.");
    return false;
}

static bool
has_prefix(amqp_bytes b, const char *prefix)
{
    size_t n = strlen(prefix);
    return b.len >= n && memcmp(b.data, prefix, n) == 0;
}

/* RabbitMQ's names for field types, as its inequivalence errors print them. */
static const char *
value_type_name(char kind)
{
    switch (kind) {
    case 't': return "bool";
    case 'b': return "byte";
    case 'B': return "unsignedbyte";
    case 's': case 'U': return "short";
    case 'u': return "unsignedshort";
    case 'I': return "signedint";
    case 'i': return "unsignedint";
    case 'l': case 'L': return "long";
    case 'f': return "float";
    case 'd': return "double";
    case 'D': return "decimal";
    case 'S': return "longstr";
    case 'x': return "binary";
    case 'T': return "timestamp";
    case 'F': return "table";
    case 'A': return "array";
    default: return "void";
    }
}

static void
value_text(const amqp_value *v, bool with_type, char *out, size_t cap)
{
    char s[128];
    int64_t i;
    if (v->kind == 'S' || v->kind == 'x')
        snprintf(s, sizeof s, BYTES_FMT, BYTES_ARG(v->v.bytes));
    else if (v->kind == 't')
        snprintf(s, sizeof s, "%s", v->v.boolean ? "true" : "false");
    else if (amqp_value_int(v, &i))
        snprintf(s, sizeof s, "%lld", (long long)i);
    else if (v->kind == 'd')
        snprintf(s, sizeof s, "%g", v->v.d);
    else if (v->kind == 'f')
        snprintf(s, sizeof s, "%g", (double)v->v.f);
    else
        snprintf(s, sizeof s, "%s", value_type_name(v->kind));
    if (with_type)
        snprintf(out, cap, "the value '%s' of type '%s'", s, value_type_name(v->kind));
    else
        snprintf(out, cap, "'%s'", s);
}

/* The arguments RabbitMQ compares on redeclaration, as channel.c does;
 * false with the inequivalence text in why. */
static bool
args_equivalent(const char *what, const vhost *vh, amqp_bytes name, const uint8_t *cur_raw,
                uint32_t cur_len, const amqp_table *got, const char *const *keys,
                char *why, size_t cap)
{
    amqp_pool pool = { 0 };
    amqp_table cur = { 0, NULL };
    size_t off = 0;
    bool ok = true;
    if (cur_len && amqp_table_decode(cur_raw, cur_len, &off, &cur, &pool) != AMQP_OK)
        cur.n = 0;
    for (; *keys; keys++) {
        const amqp_value *a = amqp_table_get(&cur, *keys);
        const amqp_value *b = amqp_table_get(got, *keys);
        if ((!a && !b) || (a && b && amqp_value_eq(a, b)))
            continue;
        char received[200], current[200];
        if (b)
            value_text(b, !a, received, sizeof received);
        else
            snprintf(received, sizeof received, "none");
        if (a)
            value_text(a, !b, current, sizeof current);
        else
            snprintf(current, sizeof current, "none");
        snprintf(why, cap, "inequivalent arg '%s' for %s '" BYTES_FMT "' in vhost '" BYTES_FMT
                 "': received %s but current is %s", *keys, what, BYTES_ARG(name),
                 BYTES_ARG(vh->name), received, current);
        ok = false;
        break;
    }
    amqp_pool_free(&pool);
    return ok;
}

static const char *const queue_equiv_keys[] = {
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes",
    "x-max-priority", "x-overflow", "x-queue-mode", "x-single-active-consumer",
    "x-queue-type", "x-queue-version", NULL,
};
static const char *const exchange_equiv_keys[] = { "alternate-exchange", NULL };
static const char *const delayed_equiv_keys[] = { "alternate-exchange", "x-delayed-type", NULL };

/* A boolean field of a body: absent means dflt; anything else but a
 * boolean (RabbitMQ's forms also accept "true"/"false") is an error. */
static int
body_bool(const json_t *body, const char *key, bool dflt, bool *out, char *why, size_t cap)
{
    const json_t *v = body ? json_object_get(body, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
                              strcmp(json_string_value(v), "false") == 0)) {
        *out = strcmp(json_string_value(v), "true") == 0;
        return 0;
    }
    snprintf(why, cap, "%s must be true or false", key);
    return -1;
}

static bool
check_exclusive(const queue *q, char *why, size_t cap)
{
    if (!q->exclusive)
        return true;
    snprintf(why, cap, "cannot obtain exclusive access to locked queue '" BYTES_FMT
             "' in vhost '" BYTES_FMT "'. It could be originally declared on another "
             "connection or the exclusive property value does not match that "
             "of the original declaration.", BYTES_ARG(q->name), BYTES_ARG(q->vh->name));
    return false;
}

/* ---- the operations -------------------------------------------------------------- */

int
http_exchange_declare(vhost *vh, const auth_user *u, amqp_bytes name, const json_t *body,
                      char *why, size_t cap)
{
    const json_t *jt = body ? json_object_get(body, "type") : NULL;
    amqp_bytes tname = amqp_cstr(jt && json_is_string(jt) ? json_string_value(jt) : "direct");
    if (jt && !json_is_string(jt) && !json_is_null(jt)) {
        snprintf(why, cap, "type must be a string");
        return 400;
    }
    bool durable, auto_delete, internal;
    if (body_bool(body, "durable", true, &durable, why, cap) < 0 ||
        body_bool(body, "auto_delete", false, &auto_delete, why, cap) < 0 ||
        body_bool(body, "internal", false, &internal, why, cap) < 0)
        return 400;
    enum route_type type = ROUTE_DIRECT;
    bool delayed = amqp_bytes_eq_cstr(tname, DELAYED_TYPE);   /* its type: below, from its arguments */
    if (!delayed && !route_type_parse(tname, &type)) {
        snprintf(why, cap, "invalid exchange type '" BYTES_FMT "' for exchange '" BYTES_FMT
                 "' in vhost '" BYTES_FMT "'", BYTES_ARG(tname), BYTES_ARG(name),
                 BYTES_ARG(vh->name));
        return 400;
    }
    if (name.len == 0) {
        snprintf(why, cap, "operation not permitted on the default exchange");
        return 403;
    }
    if (name.len > 255) {
        snprintf(why, cap, "exchange name longer than 255 bytes");
        return 400;
    }
    if (!permitted(u, vh, AUTH_CONFIGURE, name, why, cap))
        return 403;
    amqp_pool pool = { 0 };
    amqp_table args;
    uint8_t *raw;
    uint32_t alen;
    const json_t *ja = body ? json_object_get(body, "arguments") : NULL;
    int status = 400;
    if (json_args_table(ja, &args, &pool, why, cap) < 0 ||
        http_json_args(ja, &pool, &raw, &alen, why, cap) < 0)
        goto out;
    if (delayed && !delayed_type_arg(&args, &type)) {
        snprintf(why, cap, DELAYED_TYPE_ERROR);
        goto out;
    }
    exchange *x = vhost_exchange(vh, name);
    if (x) {
        const char *arg = NULL;
        char got[32], cur[32];
        if ((x->delay != NULL) != delayed || (!delayed && x->type != type)) {
            arg = "type";
            snprintf(got, sizeof got, "%s", delayed ? DELAYED_TYPE : route_type_name(type));
            snprintf(cur, sizeof cur, "%s", exchange_type_name(x));
        } else {
            bool g = false;
            if (x->durable != durable) { arg = "durable"; g = durable; }
            else if (x->auto_delete != auto_delete) { arg = "auto_delete"; g = auto_delete; }
            else if (x->internal != internal) { arg = "internal"; g = internal; }
            snprintf(got, sizeof got, "%s", g ? "true" : "false");
            snprintf(cur, sizeof cur, "%s", g ? "false" : "true");
        }
        if (arg) {
            snprintf(why, cap, "inequivalent arg '%s' for exchange '" BYTES_FMT "' in vhost '"
                     BYTES_FMT "': received '%s' but current is '%s'", arg, BYTES_ARG(name),
                     BYTES_ARG(vh->name), got, cur);
            goto out;
        }
        if (!args_equivalent("exchange", vh, x->name, x->args, x->args_len, &args,
                             delayed ? delayed_equiv_keys : exchange_equiv_keys, why, cap))
            goto out;
        status = 204;
    } else {
        if (has_prefix(name, "amq.")) {
            snprintf(why, cap, "exchange name '" BYTES_FMT "' contains reserved prefix 'amq.*'",
                     BYTES_ARG(name));
            status = 403;
            goto out;
        }
        x = vhost_exchange_add(vh, name, type, durable, auto_delete, internal, raw, alen);
        if (delayed)
            delayed_attach(x);
        persist_exchange(x, true);
        status = 201;
    }
out:
    amqp_pool_free(&pool);
    return status;
}

int
http_queue_declare(vhost *vh, const auth_user *u, amqp_bytes name, const json_t *body,
                   char *why, size_t cap)
{
    bool durable, auto_delete;
    if (body_bool(body, "durable", true, &durable, why, cap) < 0 ||
        body_bool(body, "auto_delete", false, &auto_delete, why, cap) < 0)
        return 400;
    if (name.len == 0 || name.len > 255) {
        snprintf(why, cap, "queue name must be 1 to 255 bytes");
        return 400;
    }
    if (has_prefix(name, "amq.")) {
        snprintf(why, cap, "queue name '" BYTES_FMT "' contains reserved prefix 'amq.*'",
                 BYTES_ARG(name));
        return 403;
    }
    if (!permitted(u, vh, AUTH_CONFIGURE, name, why, cap))
        return 403;
    amqp_pool pool = { 0 };
    amqp_table args;
    uint8_t *raw;
    uint32_t alen;
    const json_t *ja = body ? json_object_get(body, "arguments") : NULL;
    int status = 400;
    if (json_args_table(ja, &args, &pool, why, cap) < 0 ||
        http_json_args(ja, &pool, &raw, &alen, why, cap) < 0)
        goto out;
    queue *q = vhost_queue(vh, name);
    if (q) {
        if (!check_exclusive(q, why, cap))
            goto out;
        const char *arg = NULL;
        bool got = false;
        if (q->durable != durable) { arg = "durable"; got = durable; }
        else if (q->auto_delete != auto_delete) { arg = "auto_delete"; got = auto_delete; }
        if (arg) {
            snprintf(why, cap, "inequivalent arg '%s' for queue '" BYTES_FMT "' in vhost '"
                     BYTES_FMT "': received '%s' but current is '%s'", arg, BYTES_ARG(name),
                     BYTES_ARG(vh->name), got ? "true" : "false", got ? "false" : "true");
            goto out;
        }
        if (!args_equivalent("queue", vh, q->name, q->args, q->args_len, &args,
                             queue_equiv_keys, why, cap))
            goto out;
        status = 204;
    } else if (vh->max_queues >= 0 && vh->queues.count >= (uint64_t)vh->max_queues) {
        snprintf(why, cap, "cannot declare queue '" BYTES_FMT "': queue limit in vhost '"
                 BYTES_FMT "' (%lld) is reached", BYTES_ARG(name), BYTES_ARG(vh->name),
                 (long long)vh->max_queues);
    } else {
        q = queue_new(vh, name, durable, false, auto_delete, NULL, raw, alen);
        vhost_queue_add(vh, q);
        persist_queue(q, true);
        status = 201;
    }
out:
    amqp_pool_free(&pool);
    return status;
}

/* The source and destination of a binding, with channel.c's checks and
 * order: the default exchange, permissions (write on the destination,
 * read on the source), existence, exclusivity. */
static int
binding_ends(vhost *vh, const auth_user *u, amqp_bytes src, bool to_queue, amqp_bytes dst,
             exchange **sx, void **dest, char *why, size_t cap)
{
    if (src.len == 0 || (!to_queue && dst.len == 0)) {
        snprintf(why, cap, "operation not permitted on the default exchange");
        return 403;
    }
    if (!permitted(u, vh, AUTH_WRITE, dst, why, cap) ||
        !permitted(u, vh, AUTH_READ, src, why, cap))
        return 403;
    if (to_queue) {
        queue *q = vhost_queue(vh, dst);
        if (!q) {
            snprintf(why, cap, "no queue '" BYTES_FMT "' in vhost '" BYTES_FMT "'",
                     BYTES_ARG(dst), BYTES_ARG(vh->name));
            return 404;
        }
        *dest = q;
    } else {
        exchange *x = vhost_exchange(vh, dst);
        if (!x) {
            snprintf(why, cap, "no exchange '" BYTES_FMT "' in vhost '" BYTES_FMT "'",
                     BYTES_ARG(dst), BYTES_ARG(vh->name));
            return 404;
        }
        *dest = x;
    }
    *sx = vhost_exchange(vh, src);
    if (!*sx) {
        snprintf(why, cap, "no exchange '" BYTES_FMT "' in vhost '" BYTES_FMT "'",
                 BYTES_ARG(src), BYTES_ARG(vh->name));
        return 404;
    }
    if (to_queue && !check_exclusive(*dest, why, cap))
        return 400;
    return 0;
}

static bool
topic_ok(const auth_user *u, vhost *vh, const exchange *x, amqp_bytes key, char *why, size_t cap)
{
    if (!u || x->type != ROUTE_TOPIC ||
        auth_topic_permitted(u, vh, x->name, AUTH_READ, key, NULL))
        return true;
    snprintf(why, cap, "access to topic '" BYTES_FMT "' in exchange '" BYTES_FMT "' in vhost '"
             BYTES_FMT "' refused for user '%s'", BYTES_ARG(key), BYTES_ARG(x->name),
             BYTES_ARG(vh->name), auth_user_name(u));
    return false;
}

int
http_binding_add(vhost *vh, const auth_user *u, amqp_bytes src, bool to_queue, amqp_bytes dst,
                 amqp_bytes key, const json_t *args, char *why, size_t cap)
{
    exchange *sx;
    void *dest;
    int st = binding_ends(vh, u, src, to_queue, dst, &sx, &dest, why, cap);
    if (st)
        return st;
    if (!topic_ok(u, vh, sx, key, why, cap))
        return 403;
    if (key.len > 255) {
        snprintf(why, cap, "routing key longer than 255 bytes");
        return 400;
    }
    amqp_pool pool = { 0 };
    uint8_t *raw;
    uint32_t alen;
    st = 400;
    if (http_json_args(args, &pool, &raw, &alen, why, cap) == 0) {
        int rc = vhost_bind(vh, sx, dest, key, raw, alen);
        if (rc < 0)
            snprintf(why, cap, "invalid binding arguments");
        else
            st = rc == 0 ? 201 : 204;
    }
    amqp_pool_free(&pool);
    return st;
}

/* ---- properties keys -------------------------------------------------------------- */

static void
quote_plus(amqp_bytes s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (uint32_t i = 0; i < s.len && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == '_') {
            out[o++] = (char)c;
        } else if (c == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

static void
props_key(amqp_bytes key, const uint8_t *args, uint32_t args_len, char *out, size_t cap)
{
    if (key.len == 0 && args_len <= 4) {
        snprintf(out, cap, "~");
        return;
    }
    quote_plus(key, out, cap);
    if (args_len <= 4)             /* an empty table is its 4-byte prefix alone */
        return;
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < args_len; i++)
        h = (h ^ args[i]) * 16777619u;
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t b[4] = { (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h };
    char enc[8] = {
        b64url[b[0] >> 2], b64url[((b[0] & 3) << 4) | (b[1] >> 4)],
        b64url[((b[1] & 15) << 2) | (b[2] >> 6)], b64url[b[2] & 63],
        b64url[b[3] >> 2], b64url[(b[3] & 3) << 4], 0, 0,
    };
    size_t n = strlen(out);
    snprintf(out + n, cap > n ? cap - n : 0, "~%s", enc);
}

/* A path segment percent-encoded (everything but unreserved characters). */
static void
path_quote(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

/* ---- JSON of objects -------------------------------------------------------------- */

static json_t *
exchange_json(const exchange *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", http_bytes_json(x->name));
    json_object_set_new(o, "vhost", http_bytes_json(x->vh->name));
    json_object_set_new(o, "type", json_string(exchange_type_name(x)));
    json_object_set_new(o, "durable", json_boolean(x->durable));
    json_object_set_new(o, "auto_delete", json_boolean(x->auto_delete));
    json_object_set_new(o, "internal", json_boolean(x->internal));
    json_object_set_new(o, "arguments", http_args_json(x->args, x->args_len));
    json_object_set_new(o, "user_who_performed_action", json_string("rmq-internal"));
    const policy *p = policy_for(x->vh, POLICY_USER, DEST_EXCHANGE, x->name);
    json_object_set_new(o, "policy", p ? json_string(p->name) : json_null());
    json_object_set_new(o, "message_stats", http_message_stats(&x->st));
    if (x->delay)                  /* the plugin's name for it */
        json_object_set_new(o, "messages_delayed", json_integer((json_int_t)delayed_count(x)));
    return o;
}

/* policy, operator_policy and effective_policy_definition (the two
 * definitions merged as they apply) of a queue. */
static void
policy_fields(json_t *o, const queue *q)
{
    const policy *p = policy_for(q->vh, POLICY_USER, DEST_QUEUE, q->name);
    const policy *op = policy_for(q->vh, POLICY_OPERATOR, DEST_QUEUE, q->name);
    json_object_set_new(o, "policy", p ? json_string(p->name) : json_null());
    json_object_set_new(o, "operator_policy", op ? json_string(op->name) : json_null());
    json_t *def = json_object();
    if (p || op) {
        amqp_pool pool = { 0 };
        amqp_table t;
        policy_effective(p, op, &t, &pool);
        size_t n = amqp_table_size(&t);
        uint8_t *raw = amqp_pool_alloc(&pool, n);
        if (!raw)
            abort();
        amqp_table_encode(&t, raw);
        json_decref(def);
        def = http_args_json(raw, (uint32_t)n);
        amqp_pool_free(&pool);
    }
    json_object_set_new(o, "effective_policy_definition", def);
}

static json_t *
queue_json(const queue *q)
{
    json_t *o = json_object();
    uint32_t ready = queue_ready(q);
    json_object_set_new(o, "name", http_bytes_json(q->name));
    json_object_set_new(o, "vhost", http_bytes_json(q->vh->name));
    json_object_set_new(o, "type", json_string("classic"));
    json_object_set_new(o, "durable", json_boolean(q->durable));
    json_object_set_new(o, "auto_delete", json_boolean(q->auto_delete));
    json_object_set_new(o, "exclusive", json_boolean(q->exclusive));
    json_object_set_new(o, "arguments", http_args_json(q->args, q->args_len));
    json_object_set_new(o, "node", json_string(http_node_name()));
    json_object_set_new(o, "state", json_string("running"));
    policy_fields(o, q);
    json_object_set_new(o, "exclusive_consumer_tag",
                        q->nconsumers && q->consumers->exclusive
                            ? http_bytes_json(q->consumers->tag) : json_null());
    json_object_set_new(o, "consumers", json_integer(q->nconsumers));
    json_object_set_new(o, "consumer_capacity", json_real(q->nconsumers ? 1.0 : 0.0));
    json_object_set_new(o, "consumer_utilisation", json_real(q->nconsumers ? 1.0 : 0.0));
    json_object_set_new(o, "messages", json_integer((json_int_t)ready + q->unacked));
    json_object_set_new(o, "messages_details", http_rate(0));
    json_object_set_new(o, "messages_ready", json_integer(ready));
    json_object_set_new(o, "messages_ready_details", http_rate(0));
    json_object_set_new(o, "messages_unacknowledged", json_integer(q->unacked));
    json_object_set_new(o, "messages_unacknowledged_details", http_rate(0));
    json_object_set_new(o, "message_bytes_ram", json_integer((json_int_t)queue_mem_bytes(q)));
    json_object_set_new(o, "messages_paged_out", json_integer((json_int_t)q->tail_count));
    json_object_set_new(o, "message_stats", http_message_stats(queue_stats(q)));
    json_t *bqs = json_object();
    json_object_set_new(bqs, "mode", json_string("default"));
    json_object_set_new(bqs, "len", json_integer(ready));
    json_object_set_new(bqs, "q3", json_integer((json_int_t)q->tail_count));
    json_object_set_new(o, "backing_queue_status", bqs);
    return o;
}

static json_t *
binding_json(const vhost *vh, amqp_bytes src, const void *dest, amqp_bytes key,
             const uint8_t *args, uint32_t args_len)
{
    bool to_queue = *(const enum dest_kind *)dest == DEST_QUEUE;
    amqp_bytes dname = to_queue ? ((const queue *)dest)->name : ((const exchange *)dest)->name;
    char pk[1200];
    props_key(key, args, args_len, pk, sizeof pk);
    json_t *o = json_object();
    json_object_set_new(o, "source", http_bytes_json(src));
    json_object_set_new(o, "vhost", http_bytes_json(vh->name));
    json_object_set_new(o, "destination", http_bytes_json(dname));
    json_object_set_new(o, "destination_type", json_string(to_queue ? "queue" : "exchange"));
    json_object_set_new(o, "routing_key", http_bytes_json(key));
    json_object_set_new(o, "arguments", http_args_json(args, args_len));
    json_object_set_new(o, "properties_key", json_string(pk));
    return o;
}

/* Which bindings a listing wants: any field left NULL matches all. */
typedef struct bind_filter {
    const vhost *vh;
    const exchange *src;
    const void *dest;
    const char *props;             /* a properties key */
    json_t *out;                   /* array appended to */
    /* the first match, for DELETE: copies in pool */
    bool found;
    void *f_dest;
    amqp_bytes f_key;
    uint8_t *f_args;
    uint32_t f_args_len;
    amqp_pool *pool;
} bind_filter;

static void
bind_collect(const route_binding *b, void *ctx)
{
    bind_filter *f = ctx;
    const exchange *src = f->src;
    if (f->dest && b->dest != f->dest)
        return;
    if (f->props) {
        char pk[1200];
        props_key(b->key, b->args, b->args_len, pk, sizeof pk);
        /* a client that did not quote the key twice sends it bare */
        bool raw_key = b->args_len <= 4 && !strchr(f->props, '~') &&
                       amqp_bytes_eq_cstr(b->key, f->props);
        if (strcmp(pk, f->props) != 0 && !raw_key)
            return;
        if (f->pool && !f->found) {
            f->found = true;
            f->f_dest = b->dest;
            f->f_key = pool_copy(f->pool, b->key);
            f->f_args = b->args_len ? amqp_pool_dup(f->pool, b->args, b->args_len) : NULL;
            f->f_args_len = b->args_len;
        }
    }
    if (f->out)
        json_array_append_new(f->out, binding_json(f->vh, src->name, b->dest, b->key,
                                                   b->args, b->args_len));
}

/* Bindings of vh into f->out: the default exchange's implicit ones (one
 * per queue, as RabbitMQ lists them) and every explicit one, narrowed by
 * f's src and dest. */
static void
vhost_bindings(vhost *vh, bind_filter *f)
{
    f->vh = vh;
    const exchange *only = f->src;
    if (!only || only == vh->default_ex) {
        for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
            queue *q = it.e->value;
            if (f->dest && f->dest != q)
                continue;
            if (f->props) {
                char pk[1200];
                props_key(q->name, NULL, 0, pk, sizeof pk);
                if (strcmp(pk, f->props) != 0 &&
                    (strchr(f->props, '~') || !amqp_bytes_eq_cstr(q->name, f->props)))
                    continue;
            }
            json_array_append_new(f->out, binding_json(vh, amqp_cstr(""), q, q->name, NULL, 0));
        }
    }
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it)) {
        exchange *x = it.e->value;
        if ((only && x != only) || x == vh->default_ex)
            continue;
        f->src = x;
        route_foreach(x->rt, bind_collect, f);
    }
    f->src = only;
}

/* ---- list and item handlers ------------------------------------------------------- */

static bool
may(http_req *rq, http_resp *rs, vhost *vh, enum auth_perm kind, amqp_bytes name)
{
    if (http_permitted(rq, vh, kind, name))
        return true;
    http_error(rs, 403, "not_authorised", "Access refused.");
    return false;
}

static void
exchanges_list(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs >= 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        if ((only && vh != only) || !http_vhost_visible(rq, vh))
            continue;
        for (map_iter xi = map_first(&vh->exchanges); xi.e; map_next(&vh->exchanges, &xi))
            json_array_append_new(a, exchange_json(xi.e->value));
    }
    http_list(rq, rs, a);
}

static exchange *
exchange_of(http_req *rq, http_resp *rs, vhost **vhp)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return NULL;
    exchange *x = vhost_exchange(vh, exchange_arg(rq->args[1]));
    if (!x) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return NULL;
    }
    *vhp = vh;
    return x;
}

static void
exchange_get(http_req *rq, http_resp *rs)
{
    vhost *vh;
    exchange *x = exchange_of(rq, rs, &vh);
    if (x)
        http_json(rs, 200, exchange_json(x));
}

static void
exchange_put(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    char why[700];
    int st = http_exchange_declare(vh, rq->user, exchange_arg(rq->args[1]), body, why, sizeof why);
    json_decref(body);
    if (st == 201)
        http_created(rs);
    else if (st == 204)
        http_no_content(rs);
    else
        fail(rs, st, why);
}

static bool
query_true(const http_req *rq, const char *key)
{
    const char *v = http_query(rq, key);
    return v && strcmp(v, "true") == 0;
}

static void
exchange_delete(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    amqp_bytes name = exchange_arg(rq->args[1]);
    if (name.len == 0) {
        http_error(rs, 403, "not_authorised", "operation not permitted on the default exchange");
        return;
    }
    if (!may(rq, rs, vh, AUTH_CONFIGURE, name))
        return;
    exchange *x = vhost_exchange(vh, name);
    if (!x) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return;
    }
    if (x->builtin) {
        http_error(rs, 403, "not_authorised",
                   "deletion of system exchange '" BYTES_FMT "' in vhost '" BYTES_FMT
                   "' not allowed", BYTES_ARG(name), BYTES_ARG(vh->name));
        return;
    }
    if (query_true(rq, "if-unused") && route_count(x->rt) > 0) {
        http_error(rs, 400, "bad_request", "exchange '" BYTES_FMT "' in vhost '" BYTES_FMT
                   "' in use", BYTES_ARG(name), BYTES_ARG(vh->name));
        return;
    }
    vhost_exchange_delete(vh, x);
    http_no_content(rs);
}

static void
exchange_bindings(http_req *rq, http_resp *rs, bool as_source)
{
    vhost *vh;
    exchange *x = exchange_of(rq, rs, &vh);
    if (!x)
        return;
    bind_filter f = { .out = json_array() };
    if (as_source)
        f.src = x;
    else
        f.dest = x;
    if (!as_source && x == vh->default_ex) {
        http_list(rq, rs, f.out);  /* nothing binds into the default exchange */
        return;
    }
    vhost_bindings(vh, &f);
    http_list(rq, rs, f.out);
}

static void
exchange_bindings_source(http_req *rq, http_resp *rs)
{
    exchange_bindings(rq, rs, true);
}

static void
exchange_bindings_destination(http_req *rq, http_resp *rs)
{
    exchange_bindings(rq, rs, false);
}

/* ---- publish and get ---------------------------------------------------------------- */

static amqp_bytes
jbytes(const json_t *j)
{
    return (amqp_bytes){ json_string_value(j), (uint32_t)json_string_length(j) };
}

/* RabbitMQ's properties object of a message as basic properties. */
static int
props_from_json(const json_t *p, amqp_basic_props *bp, amqp_pool *pool, char *why, size_t cap)
{
    static const struct { const char *key; uint16_t flag; size_t off; } strs[] = {
        { "content_type", AMQP_BASIC_CONTENT_TYPE, offsetof(amqp_basic_props, content_type) },
        { "content_encoding", AMQP_BASIC_CONTENT_ENCODING,
          offsetof(amqp_basic_props, content_encoding) },
        { "correlation_id", AMQP_BASIC_CORRELATION_ID, offsetof(amqp_basic_props, correlation_id) },
        { "reply_to", AMQP_BASIC_REPLY_TO, offsetof(amqp_basic_props, reply_to) },
        { "expiration", AMQP_BASIC_EXPIRATION, offsetof(amqp_basic_props, expiration) },
        { "message_id", AMQP_BASIC_MESSAGE_ID, offsetof(amqp_basic_props, message_id) },
        { "type", AMQP_BASIC_TYPE, offsetof(amqp_basic_props, type) },
        { "user_id", AMQP_BASIC_USER_ID, offsetof(amqp_basic_props, user_id) },
        { "app_id", AMQP_BASIC_APP_ID, offsetof(amqp_basic_props, app_id) },
        { "cluster_id", AMQP_BASIC_CLUSTER_ID, offsetof(amqp_basic_props, cluster_id) },
    };
    memset(bp, 0, sizeof *bp);
    if (!p || json_is_null(p))
        return 0;
    if (!json_is_object(p)) {
        snprintf(why, cap, "properties must be a JSON object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)p, key, v) {
        size_t i;
        for (i = 0; i < sizeof strs / sizeof strs[0]; i++)
            if (strcmp(key, strs[i].key) == 0)
                break;
        if (i < sizeof strs / sizeof strs[0]) {
            if (!json_is_string(v) || json_string_length(v) > 255) {
                snprintf(why, cap, "property %s must be a string of at most 255 bytes", key);
                return -1;
            }
            *(amqp_bytes *)((char *)bp + strs[i].off) = jbytes(v);
            bp->flags |= strs[i].flag;
        } else if (strcmp(key, "delivery_mode") == 0 || strcmp(key, "priority") == 0) {
            json_int_t n;
            if (json_is_integer(v))
                n = json_integer_value(v);
            else if (json_is_string(v))
                n = strtoll(json_string_value(v), NULL, 10);
            else
                n = -1;
            if (n < 0 || n > 255) {
                snprintf(why, cap, "property %s must be an integer from 0 to 255", key);
                return -1;
            }
            if (key[0] == 'd') {
                bp->delivery_mode = (uint8_t)n;
                bp->flags |= AMQP_BASIC_DELIVERY_MODE;
            } else {
                bp->priority = (uint8_t)n;
                bp->flags |= AMQP_BASIC_PRIORITY;
            }
        } else if (strcmp(key, "timestamp") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                snprintf(why, cap, "property timestamp must be a non-negative integer");
                return -1;
            }
            bp->timestamp = (uint64_t)json_integer_value(v);
            bp->flags |= AMQP_BASIC_TIMESTAMP;
        } else if (strcmp(key, "headers") == 0) {
            if (json_args_table(v, &bp->headers, pool, why, cap) < 0)
                return -1;
            bp->flags |= AMQP_BASIC_HEADERS;
        } else {
            snprintf(why, cap, "unknown property '%s'", key);
            return -1;
        }
    }
    return 0;
}

static json_t *
props_to_json(const message *m)
{
    json_t *o = json_object();
    amqp_pool pool = { 0 };
    amqp_basic_props bp;
    if (m->prop_flags &&
        amqp_props_decode(m->prop_flags, m->props, m->props_len, &bp, &pool) == AMQP_OK) {
        static const struct { const char *key; uint16_t flag; size_t off; } strs[] = {
            { "content_type", AMQP_BASIC_CONTENT_TYPE, offsetof(amqp_basic_props, content_type) },
            { "content_encoding", AMQP_BASIC_CONTENT_ENCODING,
              offsetof(amqp_basic_props, content_encoding) },
            { "correlation_id", AMQP_BASIC_CORRELATION_ID,
              offsetof(amqp_basic_props, correlation_id) },
            { "reply_to", AMQP_BASIC_REPLY_TO, offsetof(amqp_basic_props, reply_to) },
            { "expiration", AMQP_BASIC_EXPIRATION, offsetof(amqp_basic_props, expiration) },
            { "message_id", AMQP_BASIC_MESSAGE_ID, offsetof(amqp_basic_props, message_id) },
            { "type", AMQP_BASIC_TYPE, offsetof(amqp_basic_props, type) },
            { "user_id", AMQP_BASIC_USER_ID, offsetof(amqp_basic_props, user_id) },
            { "app_id", AMQP_BASIC_APP_ID, offsetof(amqp_basic_props, app_id) },
            { "cluster_id", AMQP_BASIC_CLUSTER_ID, offsetof(amqp_basic_props, cluster_id) },
        };
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
            if (bp.flags & strs[i].flag)
                json_object_set_new(o, strs[i].key,
                                    http_bytes_json(*(amqp_bytes *)((char *)&bp + strs[i].off)));
        if (bp.flags & AMQP_BASIC_DELIVERY_MODE)
            json_object_set_new(o, "delivery_mode", json_integer(bp.delivery_mode));
        if (bp.flags & AMQP_BASIC_PRIORITY)
            json_object_set_new(o, "priority", json_integer(bp.priority));
        if (bp.flags & AMQP_BASIC_TIMESTAMP)
            json_object_set_new(o, "timestamp", json_integer((json_int_t)bp.timestamp));
        if (bp.flags & AMQP_BASIC_HEADERS)
            json_object_set_new(o, "headers", table_json(&bp.headers));
    }
    amqp_pool_free(&pool);
    return o;
}

static void
exchange_publish(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    amqp_bytes xname = exchange_arg(rq->args[1]);
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    amqp_pool pool = { 0 };
    uint8_t *payload = NULL;
    char why[700];
    int st = 400;
    if (!http_permitted(rq, vh, AUTH_WRITE, xname)) {
        st = 403;
        snprintf(why, sizeof why, "Access refused.");
        goto out;
    }
    exchange *x = vhost_exchange(vh, xname);
    if (!x) {
        st = 404;
        snprintf(why, sizeof why, "Not Found");
        goto out;
    }
    const json_t *jk = json_object_get(body, "routing_key");
    const json_t *jp = json_object_get(body, "payload");
    const json_t *je = json_object_get(body, "payload_encoding");
    if (!jk || !json_is_string(jk) || json_string_length(jk) > 255) {
        snprintf(why, sizeof why, "routing_key missing or not a string of at most 255 bytes");
        goto out;
    }
    if (!jp || !json_is_string(jp)) {
        snprintf(why, sizeof why, "payload missing or not a string");
        goto out;
    }
    const char *enc = je && json_is_string(je) ? json_string_value(je) : "string";
    amqp_bytes key = jbytes(jk);
    size_t plen = json_string_length(jp);
    if (strcmp(enc, "string") == 0) {
        payload = malloc(plen ? plen : 1);
        if (!payload)
            abort();
        memcpy(payload, json_string_value(jp), plen);
    } else if (strcmp(enc, "base64") == 0) {
        payload = malloc(plen ? plen : 1);
        if (!payload)
            abort();
        long n = b64_decode(json_string_value(jp), plen, payload);
        if (n < 0) {
            snprintf(why, sizeof why, "payload is not valid base64");
            goto out;
        }
        plen = (size_t)n;
    } else {
        snprintf(why, sizeof why, "payload_encoding must be \"string\" or \"base64\"");
        goto out;
    }
    if (plen > B.cfg.max_message_size) {
        snprintf(why, sizeof why, "message size %zu is larger than configured max size %llu",
                 plen, (unsigned long long)B.cfg.max_message_size);
        goto out;
    }
    amqp_basic_props bp;
    if (props_from_json(json_object_get(body, "properties"), &bp, &pool, why, sizeof why) < 0)
        goto out;
    /* the local administrator (no user) may set any user_id */
    if ((bp.flags & AMQP_BASIC_USER_ID) && rq->user &&
        !amqp_bytes_eq_cstr(bp.user_id, auth_user_name(rq->user))) {
        snprintf(why, sizeof why, "user_id property set to '" BYTES_FMT "' but authenticated "
                 "user was '%s'", BYTES_ARG(bp.user_id), auth_user_name(rq->user));
        goto out;
    }
    if (x->type == ROUTE_TOPIC && rq->user &&
        !auth_topic_permitted(rq->user, vh, x->name, AUTH_WRITE, key, NULL)) {
        st = 403;
        snprintf(why, sizeof why, "access to topic '" BYTES_FMT "' in exchange '" BYTES_FMT
                 "' in vhost '" BYTES_FMT "' refused for user '%s'", BYTES_ARG(key),
                 BYTES_ARG(x->name), BYTES_ARG(vh->name), auth_user_name(rq->user));
        goto out;
    }
    if (x->internal) {
        st = 403;
        snprintf(why, sizeof why, "cannot publish to internal exchange '" BYTES_FMT
                 "' in vhost '" BYTES_FMT "'", BYTES_ARG(x->name), BYTES_ARG(vh->name));
        goto out;
    }
    size_t pl = amqp_props_size(&bp);
    uint8_t *praw = pl ? amqp_pool_alloc(&pool, pl) : NULL;
    if (pl && !praw)
        abort();
    if (pl)
        amqp_props_encode(&bp, praw);
    message *m = message_new(x->name, key, bp.flags, praw, (uint32_t)pl, plen);
    if (!m)
        abort();
    if (plen)
        memcpy(m->body, payload, plen);
    m->body_received = plen;
    size_t reached;
    vhost_publish(vh, x, m, &reached);
    message_unref(&m);
    B.st.now.publish++;
    if (reached == 0)
        B.st.now.drop_unroutable++;
    json_t *o = json_object();
    json_object_set_new(o, "routed", json_boolean(reached > 0));
    http_json(rs, 200, o);
    st = 200;
out:
    if (st != 200)
        fail(rs, st, why);
    free(payload);
    amqp_pool_free(&pool);
    json_decref(body);
}

static void
queues_list(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs >= 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        if ((only && vh != only) || !http_vhost_visible(rq, vh))
            continue;
        for (map_iter qi = map_first(&vh->queues); qi.e; map_next(&vh->queues, &qi))
            json_array_append_new(a, queue_json(qi.e->value));
    }
    http_list(rq, rs, a);
}

static queue *
queue_of(http_req *rq, http_resp *rs, vhost **vhp)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return NULL;
    queue *q = vhost_queue(vh, amqp_cstr(rq->args[1]));
    if (!q) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return NULL;
    }
    *vhp = vh;
    return q;
}

static void
queue_get(http_req *rq, http_resp *rs)
{
    vhost *vh;
    queue *q = queue_of(rq, rs, &vh);
    if (q)
        http_json(rs, 200, queue_json(q));
}

static void
queue_put(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    char why[700];
    int st = http_queue_declare(vh, rq->user, amqp_cstr(rq->args[1]), body, why, sizeof why);
    json_decref(body);
    if (st == 201)
        http_created(rs);
    else if (st == 204)
        http_no_content(rs);
    else
        fail(rs, st, why);
}

static void
queue_delete(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    amqp_bytes name = amqp_cstr(rq->args[1]);
    if (!may(rq, rs, vh, AUTH_CONFIGURE, name))
        return;
    queue *q = vhost_queue(vh, name);
    if (!q) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return;
    }
    if (query_true(rq, "if-unused") && q->nconsumers) {
        http_error(rs, 400, "bad_request", "queue '" BYTES_FMT "' in vhost '" BYTES_FMT
                   "' in use", BYTES_ARG(q->name), BYTES_ARG(vh->name));
        return;
    }
    if (query_true(rq, "if-empty") && queue_ready(q)) {
        http_error(rs, 400, "bad_request", "queue '" BYTES_FMT "' in vhost '" BYTES_FMT
                   "' not empty", BYTES_ARG(q->name), BYTES_ARG(vh->name));
        return;
    }
    vhost_queue_delete(vh, q);
    http_no_content(rs);
}

static void
queue_bindings(http_req *rq, http_resp *rs)
{
    vhost *vh;
    queue *q = queue_of(rq, rs, &vh);
    if (!q)
        return;
    bind_filter f = { .out = json_array(), .dest = q };
    vhost_bindings(vh, &f);
    http_list(rq, rs, f.out);
}

static void
queue_contents_delete(http_req *rq, http_resp *rs)
{
    vhost *vh;
    queue *q = queue_of(rq, rs, &vh);
    if (!q)
        return;
    char why[600];
    if (!check_exclusive(q, why, sizeof why)) {
        http_error(rs, 400, "bad_request", "%s", why);
        return;
    }
    if (!may(rq, rs, vh, AUTH_READ, q->name))
        return;
    queue_purge(q);
    http_no_content(rs);
}

static const struct { const char *name; bool ack, requeue; } ackmodes[] = {
    { "ack_requeue_true", true, true },
    { "ack_requeue_false", true, false },
    { "reject_requeue_true", false, true },
    { "reject_requeue_false", false, false },
};

/* Gets up to count messages as basic.get would, then settles them all as
 * ackmode says, as RabbitMQ's handler does (so a requeued message is not
 * got twice by one request). */
static void
queue_get_messages(http_req *rq, http_resp *rs)
{
    vhost *vh;
    queue *q = queue_of(rq, rs, &vh);
    if (!q)
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    char why[600];
    if (!check_exclusive(q, why, sizeof why)) {
        json_decref(body);
        http_error(rs, 400, "bad_request", "%s", why);
        return;
    }
    if (!may(rq, rs, vh, AUTH_READ, q->name)) {
        json_decref(body);
        return;
    }
    const json_t *jc = json_object_get(body, "count");
    const json_t *ja = json_object_get(body, "ackmode");
    const json_t *jr = json_object_get(body, "requeue");
    const json_t *je = json_object_get(body, "encoding");
    const json_t *jt = json_object_get(body, "truncate");
    json_int_t count = 1;
    if (jc && json_is_integer(jc))
        count = json_integer_value(jc);
    else if (jc && json_is_string(jc))
        count = strtoll(json_string_value(jc), NULL, 10);
    size_t mode = 0;
    if (ja && json_is_string(ja)) {
        for (mode = 0; mode < sizeof ackmodes / sizeof ackmodes[0]; mode++)
            if (strcmp(json_string_value(ja), ackmodes[mode].name) == 0)
                break;
    } else if (jr) {
        mode = json_is_true(jr) || (json_is_string(jr) && !strcmp(json_string_value(jr), "true"))
                   ? 0 : 1;
    }
    const char *enc = je && json_is_string(je) ? json_string_value(je) : "auto";
    json_int_t truncate = -1;
    if (jt && json_is_integer(jt))
        truncate = json_integer_value(jt);
    else if (jt && json_is_string(jt) && json_string_length(jt))
        truncate = strtoll(json_string_value(jt), NULL, 10);
    if (mode == sizeof ackmodes / sizeof ackmodes[0] || count < 1 ||
        (strcmp(enc, "auto") != 0 && strcmp(enc, "base64") != 0)) {
        json_decref(body);
        http_error(rs, 400, "bad_request", "count must be at least 1, ackmode one of "
                   "ack_requeue_true, ack_requeue_false, reject_requeue_true, "
                   "reject_requeue_false, and encoding auto or base64");
        return;
    }
    bool auto_enc = strcmp(enc, "auto") == 0;
    json_decref(body);             /* enc pointed into it */
    bool requeue = ackmodes[mode].requeue;
    json_t *out = json_array();
    qentry *got = malloc((size_t)(count < 1000 ? count : 1000) * sizeof *got);
    if (!got)
        abort();
    size_t n = 0;
    while ((json_int_t)n < count && n < 1000 && queue_pop(q, &got[n])) {
        qentry *e = &got[n++];
        message *m = e->msg;
        queue_counts(q)->get++;
        B.st.now.get++;
        if (e->flags & QE_REDELIVERED) {
            queue_counts(q)->redeliver++;
            B.st.now.redeliver++;
        }
        if (ackmodes[mode].ack && !requeue) {
            queue_counts(q)->ack++;
            B.st.now.ack++;
        }
        size_t blen = (size_t)m->body_size;
        size_t shown = truncate >= 0 && (uint64_t)truncate < blen ? (size_t)truncate : blen;
        json_t *o = json_object();
        json_object_set_new(o, "payload_bytes", json_integer((json_int_t)blen));
        json_object_set_new(o, "redelivered", json_boolean(e->flags & QE_REDELIVERED));
        json_object_set_new(o, "exchange", http_bytes_json(m->exchange));
        json_object_set_new(o, "routing_key", http_bytes_json(m->routing_key));
        json_object_set_new(o, "message_count", json_integer(queue_ready(q)));
        json_object_set_new(o, "properties", props_to_json(m));
        json_t *s = NULL;
        if (auto_enc && utf8_valid(m->body, shown))
            s = json_stringn((const char *)m->body, shown);
        if (s) {
            json_object_set_new(o, "payload", s);
            json_object_set_new(o, "payload_encoding", json_string("string"));
        } else {
            char *b64 = malloc(4 * ((shown + 2) / 3) + 1);
            if (!b64)
                abort();
            crypto_b64_encode(m->body, shown, b64);
            json_object_set_new(o, "payload", json_string(b64));
            json_object_set_new(o, "payload_encoding", json_string("base64"));
            free(b64);
        }
        json_array_append_new(out, o);
    }
    /* highest first: each requeued entry then lands at the ring's front */
    for (size_t i = n; i-- > 0;) {
        qentry *e = &got[i];
        if (requeue) {
            if ((e->flags & QE_ON_DISK) && !(e->flags & QE_MARKED)) {
                persist_mark_delivered(q, e->msg, e->seq);
                e->flags |= QE_MARKED;
            }
            queue_requeue(q, e->msg, e->seq, e->flags);
        } else {
            queue_entry_forget(q, e->msg, e->seq, e->flags);
            message_unref(&e->msg);
        }
    }
    free(got);
    if (requeue && n)
        queue_dispatch(q);
    http_json(rs, 200, out);
}

/* ---- bindings ------------------------------------------------------------------------- */

static void
bindings_list(http_req *rq, http_resp *rs)
{
    vhost *only = NULL;
    if (rq->nargs >= 1 && !(only = http_vhost_arg(rq, rs, rq->args[0])))
        return;
    json_t *a = json_array();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        if ((only && vh != only) || !http_vhost_visible(rq, vh))
            continue;
        bind_filter f = { .out = a };
        vhost_bindings(vh, &f);
    }
    http_list(rq, rs, a);
}

/* The two ends named by /api/bindings/{vhost}/e/{src}/{q|e}/{dst}: both
 * must exist (404 otherwise, as RabbitMQ). */
static bool
binding_path(http_req *rq, http_resp *rs, bool to_queue, vhost **vhp, exchange **src,
             void **dest)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return false;
    *src = vhost_exchange(vh, exchange_arg(rq->args[1]));
    if (to_queue)
        *dest = vhost_queue(vh, amqp_cstr(rq->args[2]));
    else
        *dest = vhost_exchange(vh, exchange_arg(rq->args[2]));
    if (!*src || !*dest) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return false;
    }
    *vhp = vh;
    return true;
}

static void
binding_pair_list(http_req *rq, http_resp *rs, bool to_queue)
{
    vhost *vh;
    exchange *src;
    void *dest;
    if (!binding_path(rq, rs, to_queue, &vh, &src, &dest))
        return;
    bind_filter f = { .out = json_array(), .src = src, .dest = dest };
    vhost_bindings(vh, &f);
    http_list(rq, rs, f.out);
}

static void binding_eq_list(http_req *rq, http_resp *rs) { binding_pair_list(rq, rs, true); }
static void binding_ee_list(http_req *rq, http_resp *rs) { binding_pair_list(rq, rs, false); }

static void
binding_create(http_req *rq, http_resp *rs, bool to_queue)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    json_t *body = http_body_json(rq, rs);
    if (!body)
        return;
    const json_t *jk = json_object_get(body, "routing_key");
    if (jk && !json_is_string(jk) && !json_is_null(jk)) {
        json_decref(body);
        http_error(rs, 400, "bad_request", "routing_key must be a string");
        return;
    }
    amqp_bytes key = jk && json_is_string(jk) ? jbytes(jk) : amqp_cstr("");
    const json_t *args = json_object_get(body, "arguments");
    amqp_bytes src = exchange_arg(rq->args[1]);
    amqp_bytes dst = to_queue ? amqp_cstr(rq->args[2]) : exchange_arg(rq->args[2]);
    char why[700];
    int st = http_binding_add(vh, rq->user, src, to_queue, dst, key, args, why, sizeof why);
    if (st != 201 && st != 204) {
        json_decref(body);
        fail(rs, st, why);
        return;
    }
    amqp_pool pool = { 0 };
    uint8_t *raw;
    uint32_t alen;
    char pk[1200], v[800], s[800], d[800], p[3700];
    (void)http_json_args(args, &pool, &raw, &alen, why, sizeof why);
    props_key(key, raw, alen, pk, sizeof pk);
    amqp_pool_free(&pool);
    json_decref(body);
    path_quote(vh->name.data, vh->name.len, v, sizeof v);
    path_quote(rq->args[1], strlen(rq->args[1]), s, sizeof s);
    path_quote(rq->args[2], strlen(rq->args[2]), d, sizeof d);
    path_quote(pk, strlen(pk), p, sizeof p);
    http_created(rs);
    char *loc = malloc(strlen(v) + strlen(s) + strlen(d) + strlen(p) + 32);
    if (!loc)
        abort();
    sprintf(loc, "/api/bindings/%s/e/%s/%s/%s/%s", v, s, to_queue ? "q" : "e", d, p);
    if (strlen(loc) < sizeof rs->location)  /* else no Location: names too long */
        memcpy(rs->location, loc, strlen(loc) + 1);
    free(loc);
}

static void binding_eq_create(http_req *rq, http_resp *rs) { binding_create(rq, rs, true); }
static void binding_ee_create(http_req *rq, http_resp *rs) { binding_create(rq, rs, false); }

static void
binding_one(http_req *rq, http_resp *rs, bool to_queue, bool del)
{
    vhost *vh;
    exchange *src;
    void *dest;
    if (!binding_path(rq, rs, to_queue, &vh, &src, &dest))
        return;
    if (del) {
        char why[700];
        amqp_bytes dname = to_queue ? ((queue *)dest)->name : ((exchange *)dest)->name;
        exchange *sx;
        void *dx;
        int st = binding_ends(vh, rq->user, src->name, to_queue, dname, &sx, &dx, why,
                              sizeof why);
        if (st) {
            fail(rs, st, why);
            return;
        }
    }
    amqp_pool pool = { 0 };
    bind_filter f = { .out = json_array(), .src = src, .dest = dest, .props = rq->args[3],
                      .pool = &pool };
    vhost_bindings(vh, &f);
    if (json_array_size(f.out) == 0) {
        http_error(rs, 404, "Object Not Found", "Not Found");
    } else if (!del) {
        http_json(rs, 200, json_incref(json_array_get(f.out, 0)));
    } else if (!f.found) {
        /* the default exchange's implicit binding */
        http_error(rs, 403, "not_authorised", "operation not permitted on the default exchange");
    } else {
        vhost_unbind(vh, src, f.f_dest, f.f_key, f.f_args, f.f_args_len);
        http_no_content(rs);
    }
    json_decref(f.out);
    amqp_pool_free(&pool);
}

static void binding_eq_get(http_req *rq, http_resp *rs) { binding_one(rq, rs, true, false); }
static void binding_ee_get(http_req *rq, http_resp *rs) { binding_one(rq, rs, false, false); }
static void binding_eq_delete(http_req *rq, http_resp *rs) { binding_one(rq, rs, true, true); }
static void binding_ee_delete(http_req *rq, http_resp *rs) { binding_one(rq, rs, false, true); }

/* ---- the routes ------------------------------------------------------------------------ */

#define M HTTP_NEED_MANAGEMENT
const http_route http_routes_objects[] = {
    { "GET", "/api/exchanges", exchanges_list, M },
    { "GET", "/api/exchanges/{vhost}", exchanges_list, M },
    { "GET", "/api/exchanges/{vhost}/{name}", exchange_get, M },
    { "PUT", "/api/exchanges/{vhost}/{name}", exchange_put, M },
    { "DELETE", "/api/exchanges/{vhost}/{name}", exchange_delete, M },
    { "GET", "/api/exchanges/{vhost}/{name}/bindings/source", exchange_bindings_source, M },
    { "GET", "/api/exchanges/{vhost}/{name}/bindings/destination",
      exchange_bindings_destination, M },
    { "POST", "/api/exchanges/{vhost}/{name}/publish", exchange_publish, M },

    { "GET", "/api/queues", queues_list, M },
    { "GET", "/api/queues/detailed", queues_list, M },
    { "GET", "/api/queues/{vhost}", queues_list, M },
    { "GET", "/api/queues/{vhost}/{name}", queue_get, M },
    { "PUT", "/api/queues/{vhost}/{name}", queue_put, M },
    { "DELETE", "/api/queues/{vhost}/{name}", queue_delete, M },
    { "GET", "/api/queues/{vhost}/{name}/bindings", queue_bindings, M },
    { "DELETE", "/api/queues/{vhost}/{name}/contents", queue_contents_delete, M },
    { "POST", "/api/queues/{vhost}/{name}/get", queue_get_messages, M },

    { "GET", "/api/bindings", bindings_list, M },
    { "GET", "/api/bindings/{vhost}", bindings_list, M },
    { "GET", "/api/bindings/{vhost}/e/{source}/q/{destination}", binding_eq_list, M },
    { "POST", "/api/bindings/{vhost}/e/{source}/q/{destination}", binding_eq_create, M },
    { "GET", "/api/bindings/{vhost}/e/{source}/q/{destination}/{props}", binding_eq_get, M },
    { "DELETE", "/api/bindings/{vhost}/e/{source}/q/{destination}/{props}", binding_eq_delete, M },
    { "GET", "/api/bindings/{vhost}/e/{source}/e/{destination}", binding_ee_list, M },
    { "POST", "/api/bindings/{vhost}/e/{source}/e/{destination}", binding_ee_create, M },
    { "GET", "/api/bindings/{vhost}/e/{source}/e/{destination}/{props}", binding_ee_get, M },
    { "DELETE", "/api/bindings/{vhost}/e/{source}/e/{destination}/{props}", binding_ee_delete, M },
    { NULL, NULL, NULL, 0 },
};
#undef M
