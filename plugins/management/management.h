/*
 * What the management plugin's own files share beyond the HTTP contract
 * (http.h): the servers http.c runs on the loop, and the route tables
 * that only this plugin's core serves. Private to plugins/management/.
 */
#ifndef CONEY_PLUGINS_MANAGEMENT_MANAGEMENT_H
#define CONEY_PLUGINS_MANAGEMENT_MANAGEMENT_H

#include <stddef.h>
#include <sys/socket.h>

#include "plugins/management/http.h"

typedef struct http_server http_server;

/* Which answers a server gives besides its routes. */
enum http_server_kind {
    HTTP_SERVER_API,               /* basic auth, JSON errors (port 15672) */
    HTTP_SERVER_METRICS,           /* no auth, plain-text errors (port 15692) */
    HTTP_SERVER_LOCAL,             /* the API on <data_dir>/coney.sock: no login, the
                                    * local administrator (http.c says why) */
};

/* Starts libmicrohttpd on addr:port with no thread of its own: the loop
 * watches its epoll fd and runs it. tables is a NULL-terminated list of
 * route tables (borrowed, static). Returns the server, or NULL with a
 * message in err. */
http_server *http_server_start(enum http_server_kind kind, const char *addr, int port,
                               const http_route *const *tables, char *err, size_t errlen);
/* The same on a Unix socket at sock_path (mode 0600, a stale one replaced),
 * kind HTTP_SERVER_LOCAL. Returns the server, or NULL with err. */
http_server *http_server_start_local(const char *sock_path, const http_route *const *tables,
                                     char *err, size_t errlen);
/* Closes the listener and every connection (and removes a Unix socket);
 * clears *s. NULL is fine. */
void http_server_stop(http_server **s);
/* Hands an accepted connection to the server as if its own listener had
 * taken it: fd (non-blocking, taken over) and the peer's address. 0 or -1. */
int http_server_add_connection(http_server *s, int fd, const struct sockaddr *addr,
                               unsigned addrlen);

/* The HTTPS twin of the API port (tls_front.c): TLS ends in the broker's
 * own transport and the plaintext reaches the API server through a
 * socket pair. 0, or -1 with err. */
int tls_front_start(http_server *api, const char *addr, int port, char *err, size_t errlen);
void tls_front_stop(void);

/* metrics.c: /metrics and /metrics/per-object on the Prometheus port. */
extern const http_route http_routes_metrics[];

/* http.c: is the query argument key "true"? */
bool http_query_true(const http_req *rq, const char *key);

/* "coney@<short hostname>", RabbitMQ's node name shape (api_objects.c;
 * declared in api_objects.h too). */
const char *http_node_name(void);
/* api_overview.c: the cluster name (PUT /api/cluster-name; the node name until set). */
const char *http_cluster_name(void);

/* Node figures: open fds, the fd limit, free bytes where data_dir is. */
unsigned long http_fd_used(void);
unsigned long http_fd_limit(void);
unsigned long long http_disk_free(void);

/* http.c: the process's resident memory in bytes (from /proc/self/statm),
 * 0 if unknown. */
unsigned long long http_rss_bytes(void);

#endif
