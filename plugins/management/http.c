/*
 * HTTP on the broker's loop. libmicrohttpd runs with no thread of its
 * own: it keeps an epoll set of its sockets, the loop watches that one
 * fd and calls MHD_run when it is readable or when MHD's own timeout
 * (keep-alive expiry, connections with buffered work) comes due. So every
 * handler runs on the loop thread and reads broker state without locks,
 * and nothing here blocks: a handler answers at once from memory.
 *
 * The router is the route tables (http.h): a path is split into
 * segments, matched against every pattern, and the most literal match
 * wins ("/api/queues/detailed" over "/api/queues/{vhost}"), so tables
 * need no particular order. The path reaches us still percent-encoded
 * (our unescape callback keeps it), so "%2F" in a vhost segment is a
 * name, not a separator; each {x} argument is decoded on its own.
 *
 * The same API is served on <data_dir>/coney.sock, a Unix socket of mode
 * 0600, by a second daemon given the listening fd. Whoever can open it is
 * the broker's own Unix user (or root) and is trusted as the local
 * administrator, as rabbitmqctl is trusted through the Erlang cookie: no
 * login, http_req.user NULL, tags administrator. coney-ctl talks there.
 *
 * Slow clients. libmicrohttpd's own timeout counts silence, so a client
 * that sends its headers a byte at a time (slowloris) would hold its
 * connection for ever, and enough of them would take every one the
 * daemon allows. So on the TCP listeners one client address holds at
 * most coney.management.max_connections_per_ip connections, and a sweep
 * (every second, or twice per timeout if that is shorter) closes any
 * connection that has not finished a request's headers within
 * coney.management.header_timeout of opening or of its previous response
 * (a kept-alive connection waiting for its next request included).
 * docs/operations.md states the limits.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "broker/log.h"
#include "broker/persist.h"
#include "broker/plugin.h"
#include "broker/stats.h"
#include "plugins/management/management.h"

/* The body and connection limits are configuration (B.cfg.management_*,
 * docs/operations.md): the largest body (definitions are the largest),
 * connections in all and per client address on the TCP listeners, silence
 * allowed, and time to send a request's headers. */
#define MAX_SEGMENTS 32
#define PAGE_SIZE_DEFAULT 100
#define PAGE_SIZE_MAX 500

/* Route tables the other api_*.c files fill; these empty ones keep the
 * plugin linking (and serving what it has) until they do. */
#define EMPTY_TABLE(n) __attribute__((weak)) const http_route n[] = { { NULL, NULL, NULL, 0 } }
EMPTY_TABLE(http_routes_objects);
EMPTY_TABLE(http_routes_access);
EMPTY_TABLE(http_routes_definitions);
EMPTY_TABLE(http_routes_ui);

/* One open connection, for the header deadline: MHD's socket context,
 * allocated when MHD opens the connection and freed when it closes it. */
typedef struct http_conn {
    struct MHD_Connection *mc;
    ev_tstamp since;               /* waiting for a request's headers since */
    bool in_request;               /* headers read, the request not completed */
    bool cut;                      /* shut down by the sweep; MHD closes it */
    struct http_conn *next, *prev;
} http_conn;

struct http_server {
    struct MHD_Daemon *d;
    enum http_server_kind kind;
    const http_route *const *tables;
    ev_io io;
    ev_timer timer;
    ev_timer sweep;                /* the header deadline (TCP listeners) */
    ev_timer resume;               /* ends a pause for file descriptors */
    bool accept_failed;            /* MHD_run could not accept: out of descriptors */
    bool paused, pause_logged;
    http_conn *conns;              /* every open connection */
    char path[sizeof ((struct sockaddr_un *)0)->sun_path]; /* the Unix socket, or "" */
};

/* One request's state across MHD's calls: the body as it arrives and
 * the strings handed to the handler (freed when the request completes). */
typedef struct req_ctx {
    char *body;
    size_t len, cap;
    bool too_large;
    bool answered;                 /* a response went out before the body */
    char **strs;
    size_t nstrs, strcap;
    /* a reply that waits for the store: a durable change is answered
     * only once committed, as AMQP's declare-ok is */
    uint64_t wait_batch;           /* 0: not waiting */
    bool resumed;
    http_resp held;
    struct MHD_Connection *mc;
    struct http_server *srv;
    struct req_ctx *wait_next;
} req_ctx;

static req_ctx *waiting;           /* suspended requests, any server */

static char *
ctx_keep(req_ctx *rc, char *s)
{
    if (rc->nstrs == rc->strcap) {
        rc->strcap = rc->strcap ? rc->strcap * 2 : 8;
        rc->strs = realloc(rc->strs, rc->strcap * sizeof *rc->strs);
        if (!rc->strs)
            abort();
    }
    rc->strs[rc->nstrs++] = s;
    return s;
}

static void
ctx_free(req_ctx *rc)
{
    for (req_ctx **w = &waiting; *w; w = &(*w)->wait_next) {
        if (*w == rc) {
            *w = rc->wait_next;
            break;
        }
    }
    if (rc->wait_batch) {          /* never sent: the connection went away */
        if (rc->held.json)
            json_decref(rc->held.json);
        free(rc->held.owned_raw);
    }
    for (size_t i = 0; i < rc->nstrs; i++)
        free(rc->strs[i]);
    free(rc->strs);
    free(rc->body);
    free(rc);
}

/* ---- small helpers ------------------------------------------------------------ */

static int
hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A malloc'd percent-decoded copy of s[0..n). */
static char *
pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

static bool
sockaddr_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* Decodes standard base64 into out (cap bytes); length or -1. */
static long
b64_decode(const char *s, char *out, size_t cap)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(tbl, *s);
        if (!p || !*s)
            return -1;
        acc = (acc << 6) | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    return (long)n;
}

unsigned long long
http_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

/* ---- responses --------------------------------------------------------------- */

void
http_json(http_resp *rs, int status, json_t *j)
{
    if (rs->json)
        json_decref(rs->json);
    rs->status = status;
    rs->json = j;
}

void
http_error(http_resp *rs, int status, const char *error, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    http_json(rs, status, json_pack("{s:s, s:s}", "error", error, "reason", reason));
}

void
http_no_content(http_resp *rs)
{
    http_json(rs, 204, NULL);
}

void
http_created(http_resp *rs)
{
    http_json(rs, 201, NULL);
}

json_t *
http_rate(double r)
{
    return json_pack("{s:f}", "rate", r);
}

json_t *
http_message_stats(const stats *s)
{
    static const struct { const char *name; size_t off; } f[] = {
#define F(x) { #x, offsetof(msg_stats, x) }
        F(publish), F(publish_in), F(publish_out), F(confirm), F(deliver),
        F(deliver_no_ack), F(get), F(get_no_ack), F(ack), F(redeliver),
        F(return_unroutable), F(drop_unroutable),
#undef F
    };
    json_t *o = json_object();
    char key[64];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&s->now + f[i].off, sizeof v);
        /* as RabbitMQ: a counter appears once it has counted something
         * (which also keeps 10,000 idle queues cheap to list) */
        if (v == 0)
            continue;
        json_object_set_new(o, f[i].name, json_integer((json_int_t)v));
        snprintf(key, sizeof key, "%s_details", f[i].name);
        json_object_set_new(o, key, http_rate(stats_rate(s, f[i].off)));
    }
    /* RabbitMQ's sum of every way a message left a queue */
    uint64_t dg = s->now.deliver + s->now.deliver_no_ack + s->now.get + s->now.get_no_ack;
    double dgr = stats_rate(s, offsetof(msg_stats, deliver)) +
                 stats_rate(s, offsetof(msg_stats, deliver_no_ack)) +
                 stats_rate(s, offsetof(msg_stats, get)) +
                 stats_rate(s, offsetof(msg_stats, get_no_ack));
    if (dg) {
        json_object_set_new(o, "deliver_get", json_integer((json_int_t)dg));
        json_object_set_new(o, "deliver_get_details", http_rate(dgr));
    }
    return o;
}

/* ---- requests ---------------------------------------------------------------- */

/* The request context travels beside the MHD connection: http_req has
 * no slot for it, so the dispatcher keeps the current one here (there is
 * one request in a handler at a time: the loop is single-threaded). */
static req_ctx *current_ctx;

#ifdef CONEY_FUZZ
static const char *fuzz_query(const char *key);
#endif

const char *
http_query(const http_req *rq, const char *key)
{
#ifdef CONEY_FUZZ
    /* a request from http_fuzz_list has no connection */
    const char *v = rq->mhd ? MHD_lookup_connection_value(rq->mhd, MHD_GET_ARGUMENT_KIND, key)
                            : fuzz_query(key);
#else
    const char *v = MHD_lookup_connection_value(rq->mhd, MHD_GET_ARGUMENT_KIND, key);
#endif
    if (!v || !strchr(v, '%') || !current_ctx)
        return v;
    return ctx_keep(current_ctx, pct_decode(v, strlen(v)));
}

const char *
http_header(const http_req *rq, const char *key)
{
    return MHD_lookup_connection_value(rq->mhd, MHD_HEADER_KIND, key);
}

json_t *
http_body_json(const http_req *rq, http_resp *rs)
{
    size_t n = rq->body_len;
    while (n && isspace((unsigned char)rq->body[n - 1]))
        n--;
    if (!rq->body || n == 0)
        return json_object();
    json_error_t e;
    json_t *j = json_loadb(rq->body, rq->body_len, 0, &e);
    if (!j) {
        http_error(rs, 400, "bad_request", "not valid JSON: %s", e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(rs, 400, "bad_request", "expected a JSON object");
        return NULL;
    }
    return j;
}

bool
http_vhost_visible(const http_req *rq, const vhost *vh)
{
    if (rq->tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR))
        return true;
    return rq->user && auth_vhost_access(rq->user, vh);
}

vhost *
http_vhost_arg(http_req *rq, http_resp *rs, const char *name)
{
    vhost *vh = broker_vhost(amqp_cstr(name));
    if (!vh || !http_vhost_visible(rq, vh)) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return NULL;
    }
    return vh;
}

bool
http_is_local(const http_req *rq)
{
    return !rq->user && (rq->tags & HTTP_TAG_ADMINISTRATOR);
}

bool
http_permitted(const http_req *rq, const vhost *vh, enum auth_perm kind, amqp_bytes name)
{
    return http_is_local(rq) || auth_permitted(rq->user, vh, kind, name);
}

const char *
http_user_name(const http_req *rq)
{
    return rq->user ? auth_user_name(rq->user) : "";
}

bool
http_peer_loopback(const http_req *rq)
{
    if (http_is_local(rq))
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci && sockaddr_loopback(ci->client_addr);
}

/* ---- lists: filter, sort, columns, pages ------------------------------------------ */

/* The value at a dotted path ("message_stats.publish") or NULL. */
static json_t *
dotted_get(json_t *o, const char *path)
{
    char part[256];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof part || !json_is_object(o))
            return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        o = json_object_get(o, part);
        path += n + (dot != NULL);
    }
    return o;
}

/* Copies the value at a dotted path of src into dst at the same path. */
static void
dotted_copy(json_t *dst, json_t *src, const char *path)
{
    char part[256];
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n == 0 || n >= sizeof part || !json_is_object(src))
            return;
        memcpy(part, path, n);
        part[n] = 0;
        json_t *v = json_object_get(src, part);
        if (!v)
            return;
        if (!dot) {
            json_object_set(dst, part, v);
            return;
        }
        json_t *sub = json_object_get(dst, part);
        if (!sub || !json_is_object(sub)) {
            if (!json_is_object(v))
                return;
            sub = json_object();
            json_object_set_new(dst, part, sub);
        }
        dst = sub;
        src = v;
        path = dot + 1;
    }
}

typedef struct sort_ent {
    json_t *item;
    json_t *k1, *k2;
    size_t i;
} sort_ent;

static int sort_sign;

static int
type_rank(const json_t *v)
{
    if (!v || json_is_null(v)) return 0;
    if (json_is_boolean(v)) return 1;
    if (json_is_number(v)) return 2;
    if (json_is_string(v)) return 3;
    return 4;
}

static int
value_cmp(const json_t *a, const json_t *b)
{
    int ra = type_rank(a), rb = type_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 1: return (int)json_is_true(a) - (int)json_is_true(b);
    case 2: {
        double x = json_number_value(a), y = json_number_value(b);
        return x < y ? -1 : x > y;
    }
    case 3: return strcmp(json_string_value(a), json_string_value(b));
    default: return 0;
    }
}

static int
sort_cmp(const void *pa, const void *pb)
{
    const sort_ent *a = pa, *b = pb;
    int c = value_cmp(a->k1, b->k1);
    if (!c)
        c = value_cmp(a->k2, b->k2);
    if (c)
        return c * sort_sign;
    return a->i < b->i ? -1 : a->i > b->i;
}

bool
http_query_true(const http_req *rq, const char *key)
{
    const char *v = http_query(rq, key);
    return v && strcmp(v, "true") == 0;
}

/* A positive integer query argument: def when absent, -1 when malformed. */
static long
query_int(const http_req *rq, const char *key, long def)
{
    const char *v = http_query(rq, key);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1)
        return -1;
    return n;
}

static json_t *
keep_columns(json_t *item, const char *columns)
{
    json_t *o = json_object();
    const char *p = columns;
    char col[512];
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0 && n < sizeof col) {
            memcpy(col, p, n);
            col[n] = 0;
            dotted_copy(o, item, col);
        }
        p += n + (comma != NULL);
    }
    return o;
}

void
http_list(http_req *rq, http_resp *rs, json_t *items)
{
    if (!json_is_array(items)) {
        json_decref(items);
        http_error(rs, 500, "internal_error", "list is not an array");
        return;
    }
    size_t total = json_array_size(items);
    long page = query_int(rq, "page", 0);
    long page_size = query_int(rq, "page_size", PAGE_SIZE_DEFAULT);
    if (page < 0 || page_size < 0 || page_size > PAGE_SIZE_MAX) {
        json_decref(items);
        http_error(rs, 400, "bad_request",
                   page < 0 ? "page must be a positive integer"
                            : "page_size must be between 1 and %d", PAGE_SIZE_MAX);
        return;
    }

    /* filter by name */
    const char *name = http_query(rq, "name");
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    if (name && *name && http_query_true(rq, "use_regex")) {
        int ec;
        PCRE2_SIZE off;
        re = pcre2_compile((PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_UTF,
                           &ec, &off, NULL);
        if (!re) {
            char msg[256];
            pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
            json_decref(items);
            http_error(rs, 400, "bad_request", "invalid regex '%s': %s", name, msg);
            return;
        }
        md = pcre2_match_data_create_from_pattern(re, NULL);
    }
    sort_ent *ents = malloc((total ? total : 1) * sizeof *ents);
    if (!ents)
        abort();
    const char *sort = http_query(rq, "sort");
    if (sort && !*sort)
        sort = NULL;
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        json_t *it = json_array_get(items, i);
        if (name && *name) {
            json_t *nv = json_is_object(it) ? json_object_get(it, "name") : NULL;
            const char *s = json_is_string(nv) ? json_string_value(nv) : "";
            bool hit = re ? pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) >= 0
                          : strcasestr(s, name) != NULL;
            if (!hit)
                continue;
        }
        sort_ent *e = &ents[n++];
        e->item = it;
        e->i = i;
        if (sort) {
            e->k1 = dotted_get(it, sort);
            e->k2 = NULL;
        } else if (json_is_object(it)) {
            /* RabbitMQ's default order: by vhost, then name */
            e->k1 = json_object_get(it, "vhost");
            e->k2 = json_object_get(it, "name");
        } else {
            e->k1 = e->k2 = NULL;
        }
    }
    if (re) {
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
    sort_sign = http_query_true(rq, "sort_reverse") ? -1 : 1;
    qsort(ents, n, sizeof *ents, sort_cmp);

    size_t from = 0, to = n;
    long page_count = 0;
    if (page > 0) {
        page_count = (long)((n + (size_t)page_size - 1) / (size_t)page_size);
        if (page > page_count && page > 1) {
            free(ents);
            json_decref(items);
            http_error(rs, 400, "bad_request", "page out of range");
            return;
        }
        from = (size_t)(page - 1) * (size_t)page_size;
        to = from + (size_t)page_size < n ? from + (size_t)page_size : n;
        if (from > n)
            from = n;
    }
    const char *columns = http_query(rq, "columns");
    if (columns && !*columns)
        columns = NULL;
    json_t *out = json_array();
    for (size_t i = from; i < to; i++) {
        if (columns && json_is_object(ents[i].item))
            json_array_append_new(out, keep_columns(ents[i].item, columns));
        else
            json_array_append(out, ents[i].item);
    }
    free(ents);
    json_decref(items);
    if (page > 0) {
        json_t *o = json_object();
        json_object_set_new(o, "filtered_count", json_integer((json_int_t)n));
        json_object_set_new(o, "item_count", json_integer((json_int_t)(to - from)));
        json_object_set_new(o, "items", out);
        json_object_set_new(o, "page", json_integer(page));
        json_object_set_new(o, "page_count", json_integer(page_count));
        json_object_set_new(o, "page_size", json_integer(page_size));
        json_object_set_new(o, "total_count", json_integer((json_int_t)total));
        http_json(rs, 200, o);
    } else {
        http_json(rs, 200, out);
    }
}

/* ---- the router --------------------------------------------------------------- */

typedef struct path {
    const char *seg[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    int n;
    const char *rest[MAX_SEGMENTS]; /* where segment i starts, for {*} */
    const char *end;
} path;

/* "/api/queues/%2F/q" → ["api", "queues", "%2F", "q"]; false when there
 * are too many segments. A trailing slash is dropped. */
static bool
path_split(const char *url, path *p)
{
    p->n = 0;
    size_t len = strlen(url);
    if (len > 1 && url[len - 1] == '/')
        len--;
    p->end = url + len;
    const char *s = url;
    if (*s == '/')
        s++;
    while (s < p->end) {
        if (p->n == MAX_SEGMENTS)
            return false;
        const char *slash = memchr(s, '/', (size_t)(p->end - s));
        size_t n = slash ? (size_t)(slash - s) : (size_t)(p->end - s);
        p->rest[p->n] = s;
        p->seg[p->n] = s;
        p->len[p->n++] = n;
        s += n + 1;
    }
    return true;
}

/* Matches a pattern against a path. Returns -1 for no match, else a
 * score that is higher the more (and the earlier) segments are literal;
 * raw[] gets the {x} segments still encoded. */
static long
pattern_match(const char *pattern, const path *p, const char **raw, size_t *rawlen, int *nraw)
{
    long score = 0;
    int i = 0;
    *nraw = 0;
    const char *s = pattern;
    if (*s == '/')
        s++;
    while (*s) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n == 3 && memcmp(s, "{*}", 3) == 0) {
            if (*nraw == HTTP_MAX_ARGS)
                return -1;
            if (i < p->n) {
                raw[*nraw] = p->rest[i];
                rawlen[(*nraw)++] = (size_t)(p->end - p->rest[i]);
            } else {
                raw[*nraw] = "";
                rawlen[(*nraw)++] = 0;
            }
            return score;
        }
        if (i >= p->n)
            return -1;
        if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
            if (p->len[i] == 0 || *nraw == HTTP_MAX_ARGS)
                return -1;
            raw[*nraw] = p->seg[i];
            rawlen[(*nraw)++] = p->len[i];
        } else if (n == p->len[i] && memcmp(s, p->seg[i], n) == 0) {
            if (i < 30)
                score |= 1L << (30 - i);
        } else {
            return -1;
        }
        i++;
        s += n + (slash != NULL);
    }
    return i == p->n ? score : -1;
}

static bool
method_is(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

static unsigned
parse_tags(const char *tags)
{
    unsigned bits = 0;
    const char *p = tags;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
#define TAG(s, b) if (n == sizeof(s) - 1 && memcmp(p, s, n) == 0) bits |= b
        TAG("management", HTTP_TAG_MANAGEMENT);
        TAG("policymaker", HTTP_TAG_POLICYMAKER);
        TAG("monitoring", HTTP_TAG_MONITORING);
        TAG("administrator", HTTP_TAG_ADMINISTRATOR);
#undef TAG
        p = e;
    }
    return bits;
}

static bool
need_met(enum http_need need, unsigned tags)
{
    switch (need) {
    case HTTP_NEED_NONE: return true;
    case HTTP_NEED_MANAGEMENT: return tags != 0;
    case HTTP_NEED_POLICYMAKER: return tags & (HTTP_TAG_POLICYMAKER | HTTP_TAG_ADMINISTRATOR);
    case HTTP_NEED_MONITORING: return tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR);
    case HTTP_NEED_ADMINISTRATOR: return tags & HTTP_TAG_ADMINISTRATOR;
    }
    return false;
}

static const char *
need_refusal(enum http_need need)
{
    switch (need) {
    case HTTP_NEED_POLICYMAKER: return "Not policymaker user";
    case HTTP_NEED_MONITORING: return "Not monitor user";
    case HTTP_NEED_ADMINISTRATOR: return "Not administrator user";
    default: return "Not management user";
    }
}

/* Basic auth: true with the user and its tag bits, or false after a
 * 401 on rs. */
static bool
authenticate(struct MHD_Connection *mc, http_resp *rs, const auth_user **user, unsigned *tags)
{
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    char cred[1024];
    long n = -1;
    if (h && strncasecmp(h, "Basic ", 6) == 0) {
        h += 6;
        while (*h == ' ')
            h++;
        n = b64_decode(h, cred, sizeof cred - 1);
    }
    char *colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
    if (!colon) {
        http_error(rs, 401, "not_authorised", "Login failed");
        return false;
    }
    cred[n] = 0;
    amqp_bytes name = { cred, (uint32_t)(colon - cred) };
    amqp_bytes pass = { colon + 1, (uint32_t)(cred + n - colon - 1) };
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    bool loopback = ci && sockaddr_loopback(ci->client_addr);
    enum auth_result r = auth_check(name, pass, loopback);
    if (r == AUTH_LOOPBACK_ONLY) {
        http_error(rs, 401, "not_authorised", "User can only log in via localhost");
        return false;
    }
    auth_user *u = r == AUTH_OK ? auth_user_find(name) : NULL;
    if (!u) {
        http_error(rs, 401, "not_authorised", "Login failed");
        return false;
    }
    *user = u;
    *tags = parse_tags(auth_user_tags(u));
    if (!*tags) {
        http_error(rs, 401, "not_authorised", "Not management user");
        return false;
    }
    return true;
}

/* The route for method and p among tables, the most literal match
 * winning, with its {x} arguments still encoded in raw[0..*nraw); NULL
 * when none fits, and *path_known then tells 405 (some route has the
 * path) from 404. raw points into p's url. */
static const http_route *
route_find(const http_route *const *tables, const path *p, const char *method,
           const char **best_raw, size_t *best_rawlen, int *best_nraw, bool *path_known)
{
    bool api_path = p->n > 0 && p->len[0] == 3 && memcmp(p->seg[0], "api", 3) == 0;
    const http_route *best = NULL;
    long best_score = -1;
    const char *raw[HTTP_MAX_ARGS];
    size_t rawlen[HTTP_MAX_ARGS];
    int nraw = 0;
    *best_nraw = 0;
    *path_known = false;
    /* exact patterns first; "{*}" ones only when nothing else matched
     * and never for an /api/ path they were not written for */
    for (int pass = 0; pass < 2 && !best; pass++) {
        for (const http_route *const *t = tables; *t; t++) {
            for (const http_route *r = *t; r->method; r++) {
                bool wild = strstr(r->pattern, "{*}") != NULL;
                if (wild != (pass == 1))
                    continue;
                if (wild && api_path && strncmp(r->pattern, "/api/", 5) != 0)
                    continue;
                long score = pattern_match(r->pattern, p, raw, rawlen, &nraw);
                if (score < 0)
                    continue;
                *path_known = true;
                if (!method_is(r->method, method) || score <= best_score)
                    continue;
                best = r;
                best_score = score;
                *best_nraw = nraw;
                memcpy(best_raw, raw, sizeof raw);
                memcpy(best_rawlen, rawlen, sizeof rawlen);
            }
        }
        if (*path_known && !best)
            break;
    }
    return best;
}

static void
dispatch(http_server *srv, struct MHD_Connection *mc, const char *url, const char *method,
         req_ctx *rc, http_resp *rs)
{
    path p;
    if (!path_split(url, &p)) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return;
    }
    const char *best_raw[HTTP_MAX_ARGS];
    size_t best_rawlen[HTTP_MAX_ARGS];
    int best_nraw;
    bool path_known;
    const http_route *best = route_find(srv->tables, &p, method, best_raw, best_rawlen,
                                        &best_nraw, &path_known);
    if (!best) {
        if (path_known)
            http_error(rs, 405, "method_not_allowed", "Method Not Allowed");
        else if (srv->kind != HTTP_SERVER_METRICS)
            http_error(rs, 404, "Object Not Found", "Not Found");
        else
            http_error(rs, 404, "not_found", "Not Found");
        return;
    }

    http_req rq = { .method = method, .path = url, .mhd = mc };
    if (srv->kind == HTTP_SERVER_LOCAL) {
        rq.tags = HTTP_TAG_ADMINISTRATOR;  /* the local administrator */
    } else if (srv->kind == HTTP_SERVER_API && best->need != HTTP_NEED_NONE) {
        if (!authenticate(mc, rs, &rq.user, &rq.tags))
            return;
        if (!need_met(best->need, rq.tags)) {
            http_error(rs, 403, "not_authorised", "%s", need_refusal(best->need));
            return;
        }
    }
    for (int i = 0; i < best_nraw; i++)
        rq.args[i] = ctx_keep(rc, pct_decode(best_raw[i], best_rawlen[i]));
    rq.nargs = best_nraw;
    rq.body = rc->body;
    rq.body_len = rc->len;
    current_ctx = rc;
    best->fn(&rq, rs);
    current_ctx = NULL;
}

/* ---- libmicrohttpd glue ----------------------------------------------------------- */

static enum MHD_Result
send_response(struct MHD_Connection *mc, http_server *srv, http_resp *rs)
{
    struct MHD_Response *r;
    const char *ct = NULL;
    int status = rs->status ? rs->status : 200;
    if (rs->json && status != 204) {
        char *text = json_dumps(rs->json, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(rs->json);
        rs->json = NULL;
        if (!text)
            abort();
        r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        ct = "application/json";
    } else if (status == 204 || (!rs->raw && !rs->owned_raw)) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (rs->owned_raw && (!rs->raw || rs->raw == rs->owned_raw)) {
        r = MHD_create_response_from_buffer(rs->raw_len, rs->owned_raw, MHD_RESPMEM_MUST_FREE);
        rs->owned_raw = NULL;
        ct = rs->content_type;
    } else {
        r = MHD_create_response_from_buffer(rs->raw_len, (void *)rs->raw, MHD_RESPMEM_MUST_COPY);
        ct = rs->content_type;
    }
    if (rs->json)
        json_decref(rs->json);
    free(rs->owned_raw);
    if (!r)
        return MHD_NO;
    if (ct)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
    if (srv->kind != HTTP_SERVER_METRICS) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "accept, accept-encoding, origin");
    }
    if (rs->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, rs->location);
    if (status == 401 &&
        !MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Requested-With"))
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"RabbitMQ Management\"");
    enum MHD_Result ok = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *srv = cls;
    req_ctx *rc = *con_cls;
    if (!rc) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context)
            ((http_conn *)ci->socket_context)->in_request = true;
        rc = calloc(1, sizeof *rc);
        if (!rc)
            return MHD_NO;
        *con_cls = rc;
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > B.cfg.management_max_body) {
            /* refuse before reading it; MHD closes the connection after */
            rc->answered = true;
            http_resp rs = { 0 };
            http_error(&rs, 413, "bad_request", "request body larger than %u bytes",
                       B.cfg.management_max_body);
            return send_response(mc, srv, &rs);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rc->answered && !rc->too_large) {
            if (*upload_size > B.cfg.management_max_body - rc->len) {
                rc->too_large = true;
                free(rc->body);
                rc->body = NULL;
                rc->len = rc->cap = 0;
            } else {
                if (rc->len + *upload_size > rc->cap) {
                    size_t cap = rc->cap ? rc->cap : 4096;
                    while (cap < rc->len + *upload_size)
                        cap *= 2;
                    char *b = realloc(rc->body, cap);
                    if (!b)
                        return MHD_NO;
                    rc->body = b;
                    rc->cap = cap;
                }
                memcpy(rc->body + rc->len, upload, *upload_size);
                rc->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rc->resumed) {             /* the store committed what it waited for */
        rc->resumed = false;
        rc->wait_batch = 0;
        return send_response(mc, srv, &rc->held);
    }
    if (rc->answered)
        return MHD_YES;
    rc->answered = true;
    http_resp rs = { 0 };
    persist_definition_batch = 0;
    if (rc->too_large)
        http_error(&rs, 413, "bad_request", "request body larger than %u bytes",
                   B.cfg.management_max_body);
    else
        dispatch(srv, mc, url, method, rc, &rs);
    uint64_t batch = persist_definition_batch;
    persist_definition_batch = 0;
    if (batch && !persist_committed(batch)) {
        rc->held = rs;
        rc->wait_batch = batch;
        rc->mc = mc;
        rc->srv = srv;
        rc->wait_next = waiting;
        waiting = rc;
        MHD_suspend_connection(mc);
        return MHD_YES;
    }
    return send_response(mc, srv, &rs);
}

static void
on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)cls; (void)toe;
    if (*con_cls)
        ctx_free(*con_cls);
    *con_cls = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) {
        http_conn *hc = ci->socket_context;
        hc->in_request = false;
        hc->since = ev_now(B.loop);
    }
}

/* MHD opened or closed a connection: track it for the header deadline. */
static void
on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        http_conn *hc = calloc(1, sizeof *hc);
        if (!hc)
            return;                /* untracked: only MHD's idle timeout applies */
        hc->mc = mc;
        hc->since = ev_now(B.loop);
        hc->next = s->conns;
        if (s->conns)
            s->conns->prev = hc;
        s->conns = hc;
        *socket_context = hc;
        return;
    }
    http_conn *hc = *socket_context;
    if (!hc)
        return;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        s->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    free(hc);
    *socket_context = NULL;
}

/* Keeps the URL as sent: the router decodes each segment by itself. */
static size_t
keep_escaped(void *cls, struct MHD_Connection *mc, char *s)
{
    (void)cls; (void)mc;
    return strlen(s);
}

/* libmicrohttpd's messages (cls: the server). One refused connection
 * after another (a flood from one address) would log the same line each
 * time, so a repeat within ten seconds is only counted. Out of file
 * descriptors with no connection open, libmicrohttpd retries accept(2)
 * on every run and says so twice each time: that pauses the server
 * instead (server_run), with one line for the whole episode. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    http_server *srv = cls;
    static char last[512];
    static ev_tstamp last_at;
    static unsigned long repeats;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    if (srv && (strncmp(msg, "Hit process or system resource limit", 36) == 0
                || strncmp(msg, "Error accepting connection", 26) == 0)) {
        srv->accept_failed = true;
        if (srv->pause_logged)
            return;
        srv->pause_logged = true;
    }
    ev_tstamp now = B.loop ? ev_now(B.loop) : 0;
    if (strcmp(msg, last) == 0 && now - last_at < 10.0) {
        repeats++;
        return;
    }
    if (repeats)
        log_warning("http: (the previous message repeated %lu more times)", repeats);
    repeats = 0;
    snprintf(last, sizeof last, "%s", msg);
    last_at = now;
    log_warning("http: %s", msg);
}

/* How long the server stops when it cannot accept for want of file
 * descriptors (as the broker's own listeners, broker/server.c). */
#define HTTP_ACCEPT_PAUSE 0.25

static void
server_run(http_server *s)
{
    if (s->paused)
        return;                    /* resume_cb runs it */
    MHD_run(s->d);
    if (s->accept_failed) {
        s->accept_failed = false;
        s->paused = true;
        ev_io_stop(B.loop, &s->io);
        ev_timer_stop(B.loop, &s->timer);
        ev_timer_set(&s->resume, HTTP_ACCEPT_PAUSE, 0.0);
        ev_timer_start(B.loop, &s->resume);
        return;
    }
    MHD_UNSIGNED_LONG_LONG ms;
    ev_timer_stop(B.loop, &s->timer);
    if (MHD_get_timeout(s->d, &ms) == MHD_YES) {
        ev_timer_set(&s->timer, (double)ms / 1000.0, 0.0);
        ev_timer_start(B.loop, &s->timer);
    }
}

/* The store made progress: requests whose change has committed get
 * their held reply (a failed commit turns it into a 500). */
static void
resume_committed(void)
{
    req_ctx **w = &waiting;
    while (*w) {
        req_ctx *rc = *w;
        if (!persist_committed(rc->wait_batch)) {
            w = &rc->wait_next;
            continue;
        }
        *w = rc->wait_next;
        if (persist_failed(rc->wait_batch)) {
            if (rc->held.json)
                json_decref(rc->held.json);
            free(rc->held.owned_raw);
            memset(&rc->held, 0, sizeof rc->held);
            http_error(&rc->held, 500, "internal_error", "the store failed to commit the change");
        }
        rc->resumed = true;
        MHD_resume_connection(rc->mc);
        server_run(rc->srv);
    }
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    server_run(w->data);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    server_run(w->data);
}

static void
resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    http_server *s = w->data;
    s->paused = false;
    ev_io_start(loop, &s->io);
    server_run(s);
    if (!s->paused && s->pause_logged) {
        s->pause_logged = false;
        log_info("http: accepting again");
    }
}

/* Closes connections whose request headers are overdue: a shutdown of the
 * socket, which MHD reads as the client going away. */
static void
sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    http_server *s = w->data;
    ev_tstamp now = ev_now(loop);
    bool cut = false;
    for (http_conn *hc = s->conns; hc; hc = hc->next) {
        if (hc->in_request || hc->cut
            || now - hc->since < B.cfg.management_header_timeout / 1000.0)
            continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(hc->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && shutdown(ci->connect_fd, SHUT_RDWR) == 0) {
            hc->cut = true;
            cut = true;
        }
    }
    if (cut)
        server_run(s);
}

/* Options both kinds of listener share. */
#define COMMON_OPTIONS(s) \
    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (s), \
    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, \
    MHD_OPTION_NOTIFY_CONNECTION, on_connection, (s), \
    MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL, \
    MHD_OPTION_CONNECTION_TIMEOUT, (B.cfg.management_idle_timeout + 999) / 1000, \
    MHD_OPTION_CONNECTION_LIMIT, (unsigned)B.cfg.management_max_conns

static http_server *
server_new(enum http_server_kind kind, const http_route *const *tables, unsigned *flags)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->kind = kind;
    s->tables = tables;
    *flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
    static bool hooked;
    if (!hooked) {
        persist_on_progress(resume_committed);
        hooked = true;
    }
    return s;
}

/* Hooks a started daemon's epoll fd into the loop; NULL (s freed) with
 * err if it has none. */
static http_server *
server_attach(http_server *s, char *err, size_t errlen)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) {
        snprintf(err, errlen, "libmicrohttpd has no epoll fd");
        MHD_stop_daemon(s->d);
        free(s);
        return NULL;
    }
    ev_io_init(&s->io, io_cb, di->epoll_fd, EV_READ);
    s->io.data = s;
    ev_io_start(B.loop, &s->io);
    ev_timer_init(&s->timer, timer_cb, 0.0, 0.0);
    s->timer.data = s;
    double every = B.cfg.management_header_timeout / 2000.0;
    if (every > 1.0)
        every = 1.0;
    ev_timer_init(&s->sweep, sweep_cb, every, every);
    s->sweep.data = s;
    ev_timer_init(&s->resume, resume_cb, 0.0, 0.0);
    s->resume.data = s;
    if (s->kind != HTTP_SERVER_LOCAL)   /* the local administrator is trusted */
        ev_timer_start(B.loop, &s->sweep);
    server_run(s);
    return s;
}

http_server *
http_server_start(enum http_server_kind kind, const char *addr, int port,
                  const http_route *const *tables, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST };
    struct addrinfo *res;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(addr, portstr, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve listener address %s: %s", addr, gai_strerror(rc));
        return NULL;
    }
    unsigned flags;
    http_server *s = server_new(kind, tables, &flags);
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* libmicrohttpd wants its logger as the first option */
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s, COMMON_OPTIONS(s),
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)B.cfg.management_max_per_ip,
                            MHD_OPTION_SOCK_ADDR, res->ai_addr,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    freeaddrinfo(res);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        free(s);
        return NULL;
    }
    return server_attach(s, err, errlen);
}

http_server *
http_server_start_local(const char *sock_path, const http_route *const *tables, char *err,
                        size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(sock_path);
    if (n >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket sock_path too long (at most %zu bytes): %s",
                 sizeof sa.sun_path - 1, sock_path);
        return NULL;
    }
    memcpy(sa.sun_path, sock_path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket %s: %s", sock_path, strerror(errno));
        return NULL;
    }
    /* a socket left by a broker that died; the store's lock already
     * proved no other broker uses this directory */
    unlink(sock_path);
    mode_t old = umask(0177);      /* 0600: the broker's own user and root */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", sock_path, strerror(errno));
        close(fd);
        return NULL;
    }
    unsigned flags;
    http_server *s = server_new(HTTP_SERVER_LOCAL, tables, &flags);
    memcpy(s->path, sock_path, n + 1);
    /* the daemon owns fd from here and closes it when it stops */
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, COMMON_OPTIONS(s),
                            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot serve on %s: %s", sock_path,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        close(fd);
        unlink(sock_path);
        free(s);
        return NULL;
    }
    if (!server_attach(s, err, errlen)) {
        unlink(sock_path);
        return NULL;
    }
    return s;
}

void
http_server_stop(http_server **sp)
{
    http_server *s = *sp;
    if (!s)
        return;
    ev_io_stop(B.loop, &s->io);
    ev_timer_stop(B.loop, &s->timer);
    ev_timer_stop(B.loop, &s->sweep);
    ev_timer_stop(B.loop, &s->resume);
    /* libmicrohttpd cannot stop with connections suspended: let them go
     * (their held replies are freed with the request) */
    for (req_ctx **w = &waiting; *w; ) {
        req_ctx *rc = *w;
        if (rc->srv != s) {
            w = &rc->wait_next;
            continue;
        }
        *w = rc->wait_next;
        rc->wait_next = NULL;
        MHD_resume_connection(rc->mc);
    }
    MHD_stop_daemon(s->d);
    if (s->path[0])
        unlink(s->path);
    free(s);
    *sp = NULL;
}

int
http_server_add_connection(http_server *s, int fd, const struct sockaddr *addr, unsigned addrlen)
{
    if (MHD_add_connection(s->d, fd, addr, (socklen_t)addrlen) != MHD_YES)
        return -1;
    server_run(s);
    return 0;
}

#ifdef CONEY_FUZZ
/* ---- fuzzing hooks (tests/fuzz/fuzz_http.c; built with -DCONEY_FUZZ only) ---------- */

/* The query string of the request http_fuzz_list is answering, still
 * percent-encoded as MHD hands it over with keep_escaped. */
static const char *fuzz_query_string;

/* The value of the first key=value pair named key (a bare key reads as
 * ""), copied into the request context as MHD would hold it. */
static const char *
fuzz_query(const char *key)
{
    size_t klen = strlen(key);
    for (const char *s = fuzz_query_string; s && *s;) {
        const char *amp = strchr(s, '&');
        size_t n = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        size_t kn = eq ? (size_t)(eq - s) : n;
        if (kn == klen && memcmp(s, key, klen) == 0) {
            const char *v = eq ? eq + 1 : s + n;
            size_t vn = (size_t)(s + n - v);
            char *copy = malloc(vn + 1);
            if (!copy)
                abort();
            memcpy(copy, v, vn);
            copy[vn] = 0;
            return ctx_keep(current_ctx, copy);
        }
        s += n + (amp != NULL);
    }
    return NULL;
}

const http_route *
http_fuzz_route(const http_route *const *tables, const char *method, const char *url,
                char **args, int *nargs, bool *path_known)
{
    path p;
    *nargs = 0;
    *path_known = false;
    if (!path_split(url, &p))
        return NULL;
    const char *raw[HTTP_MAX_ARGS];
    size_t rawlen[HTTP_MAX_ARGS];
    const http_route *r = route_find(tables, &p, method, raw, rawlen, nargs, path_known);
    for (int i = 0; r && i < *nargs; i++)
        args[i] = pct_decode(raw[i], rawlen[i]);
    return r;
}

void
http_fuzz_list(const char *query, json_t *items, http_resp *rs)
{
    req_ctx *rc = calloc(1, sizeof *rc);
    if (!rc)
        abort();
    http_req rq = { .method = "GET", .path = "/api/queues", .tags = HTTP_TAG_ADMINISTRATOR };
    current_ctx = rc;
    fuzz_query_string = query;
    http_list(&rq, rs, items);
    fuzz_query_string = NULL;
    current_ctx = NULL;
    ctx_free(rc);
}
#endif
