/*
 * The management plugin's HTTP layer: GNU libmicrohttpd driven from the
 * broker's libev loop (so every handler runs on the loop thread and reads
 * broker state without locks), JSON with Jansson, and one table of routes
 * that is the router, as STYLE.md asks: {method, path pattern, handler,
 * the least a user's tags must allow}.
 *
 * Private to plugins/management/. Each api_*.c file defines one route
 * table; http.c dispatches over all of them.
 */
#ifndef CONEY_PLUGINS_MANAGEMENT_HTTP_H
#define CONEY_PLUGINS_MANAGEMENT_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker/auth.h"
#include "broker/broker.h"

/* ---- who may ---------------------------------------------------------------- */

/* User tags as bits. RabbitMQ's order: administrator may do everything,
 * monitoring sees everything, policymaker manages policies in its vhosts,
 * management sees its own vhosts. */
enum {
    HTTP_TAG_MANAGEMENT = 1,
    HTTP_TAG_POLICYMAKER = 2,
    HTTP_TAG_MONITORING = 4,
    HTTP_TAG_ADMINISTRATOR = 8,
};

/* What a route needs; a user passes if its tags include the need or
 * any tag above it (administrator passes everything). */
enum http_need {
    HTTP_NEED_NONE = 0,            /* no login at all (static UI files) */
    HTTP_NEED_MANAGEMENT,          /* management, policymaker, monitoring, administrator */
    HTTP_NEED_POLICYMAKER,         /* policymaker, administrator */
    HTTP_NEED_MONITORING,          /* monitoring, administrator */
    HTTP_NEED_ADMINISTRATOR,
};

/* ---- requests and responses -------------------------------------------------- */

#define HTTP_MAX_ARGS 6

typedef struct http_req {
    const char *method;            /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *path;              /* as sent, without the query string */
    /* the pattern's {…} segments in order, percent-decoded (so "%2F" is
     * "/"), NUL-terminated; valid for the handler's call */
    const char *args[HTTP_MAX_ARGS];
    int nargs;
    const char *body;              /* the request body (may be NULL); NOT NUL-terminated */
    size_t body_len;
    /* the logged-in user: NULL for HTTP_NEED_NONE routes, and on the Unix
     * socket, where the local administrator needs no login (tags is
     * HTTP_TAG_ADMINISTRATOR then; http_is_local) */
    const auth_user *user;
    unsigned tags;                 /* HTTP_TAG_* of user */
    void *mhd;                     /* struct MHD_Connection *, for http_query/http_header */
} http_req;

typedef struct http_resp {
    int status;                    /* 200 unless set */
    json_t *json;                  /* the body as JSON (owned), or NULL */
    const void *raw;               /* or a raw body (static storage or owned_raw) */
    size_t raw_len;
    char *owned_raw;               /* freed after sending, if set */
    const char *content_type;      /* for raw bodies */
    char location[512];            /* a Location header when non-empty */
} http_resp;

typedef void (*http_handler)(http_req *rq, http_resp *rs);

typedef struct http_route {
    const char *method;
    const char *pattern;           /* "/api/queues/{vhost}/{name}": {x} is one path segment;
                                    * a trailing "{*}" takes the rest of the path */
    http_handler fn;
    enum http_need need;
} http_route;

/* Route tables, each ended by an entry with method NULL. */
extern const http_route http_routes_core[];        /* http.c/api_overview.c: overview, nodes, whoami, health, ... */
extern const http_route http_routes_objects[];     /* api_objects.c: exchanges, queues, bindings */
extern const http_route http_routes_access[];      /* api_access.c: vhosts, users, permissions, limits */
extern const http_route http_routes_definitions[]; /* api_definitions.c: export and import */
extern const http_route http_routes_conns[];       /* api_conns.c: connections, channels, consumers */
extern const http_route http_routes_ui[];          /* ui.c: the web UI's static files */
extern const http_route http_routes_coney[];       /* api_coney.c: Coney's own extensions */

/* Query string argument, or NULL. Valid for the handler's call. */
const char *http_query(const http_req *rq, const char *key);
/* Request header, or NULL. */
const char *http_header(const http_req *rq, const char *key);
/* The body parsed as a JSON object; on failure sets a 400 on rs and
 * returns NULL. The caller owns the result. An empty body reads as {}. */
json_t *http_body_json(const http_req *rq, http_resp *rs);

/* {"error": error, "reason": <formatted>} with status (400 bad_request,
 * 401 not_authorised, 403 not_authorised, 404 not_found (reason
 * "Not Found"), 405 method_not_allowed), as RabbitMQ writes them. */
void http_error(http_resp *rs, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Takes ownership of j. */
void http_json(http_resp *rs, int status, json_t *j);
/* 204 No Content (RabbitMQ's answer to a successful PUT or DELETE);
 * 201 Created with http_created. */
void http_no_content(http_resp *rs);
void http_created(http_resp *rs);

/* A list endpoint's answer: filters items (a JSON array, ownership
 * taken) by ?name= (substring, or a regex with use_regex=true), sorts by
 * ?sort= (a dotted field path) and sort_reverse, keeps ?columns=a,b.c,
 * and with ?page= returns RabbitMQ's pagination object {filtered_count,
 * item_count, items, page, page_count, page_size, total_count}; page_size
 * defaults to 100 and may not exceed 500 (400 otherwise). */
void http_list(http_req *rq, http_resp *rs, json_t *items);

/* May the request's user see (read) objects of vh: monitoring and
 * administrator see every vhost, management only those it has
 * permissions in. */
bool http_vhost_visible(const http_req *rq, const vhost *vh);
/* The vhost named by a path argument, or NULL after a 404 on rs (also
 * when the user may not see it: RabbitMQ answers 404 then, not 403). */
vhost *http_vhost_arg(http_req *rq, http_resp *rs, const char *name);

/* Did the request come over the Unix socket, from the local
 * administrator (no user, every right)? */
bool http_is_local(const http_req *rq);
/* auth_permitted for the request's user; the local administrator may
 * do everything. */
bool http_permitted(const http_req *rq, const vhost *vh, enum auth_perm kind, amqp_bytes name);
/* The request's user name (static or the user's, valid while it
 * exists); "" for the local administrator. */
const char *http_user_name(const http_req *rq);
/* Is the peer on this host: the Unix socket or a loopback address? */
bool http_peer_loopback(const http_req *rq);

/* {"rate": r} as RabbitMQ's *_details objects. */
json_t *http_rate(double r);
/* message_stats of an object, with *_details rates. */
json_t *http_message_stats(const stats *s);

#ifdef CONEY_FUZZ
/* Hooks for tests/fuzz/fuzz_http.c, which has no socket. */
/* The router alone: url split and matched against tables as a request
 * is, the winner's {x} arguments percent-decoded into args[0..*nargs)
 * (malloc'd, the caller frees them). NULL when nothing fits; *path_known
 * then tells 405 from 404. No handler runs. */
const http_route *http_fuzz_route(const http_route *const *tables, const char *method,
                                  const char *url, char **args, int *nargs, bool *path_known);
/* http_list on items (ownership taken) for a request whose query string
 * is query ("a=1&b=2", still percent-encoded); the answer is left in rs. */
void http_fuzz_list(const char *query, json_t *items, http_resp *rs);
#endif

#endif
