/*
 * coney-ctl's HTTP/1.1 client: just enough to send one request to the
 * management API and read its answer, over the broker's Unix socket or
 * TCP. One connection per request ("Connection: close"), so a response
 * ends where the server closes, or earlier by Content-Length or the last
 * chunk.
 */
#ifndef CONEY_TOOLS_CTL_CLIENT_H
#define CONEY_TOOLS_CTL_CLIENT_H

#include <stddef.h>

/* Where the broker is. */
typedef struct ctl_target {
    const char *socket_path;       /* the Unix socket, or NULL for TCP */
    const char *host;              /* TCP: host name or address */
    const char *port;              /* TCP: port, as a string */
    const char *user, *password;   /* TCP: Basic auth; the socket needs none */
    char where[1200];              /* for messages: the socket path or http://host:port */
} ctl_target;

typedef struct ctl_response {
    int status;                    /* the HTTP status */
    char *body;                    /* NUL-terminated (owned; ctl_response_free) */
    size_t len;
} ctl_response;

/* Sends method path (already percent-encoded) with body (NULL: none;
 * sent as application/json) and extra headers ("Name: value\r\n"..., or
 * NULL), and reads the response into out. Returns 0, or -1 with why in
 * err when no broker answers there (cannot connect, or the connection
 * ended before a whole response). */
int ctl_request(const ctl_target *t, const char *method, const char *path, const char *body,
                size_t body_len, const char *headers, ctl_response *out, char *err, size_t cap);
void ctl_response_free(ctl_response *r);

/* Appends s percent-encoded as one path segment (every byte but
 * unreserved ones) to out (cap bytes, NUL-terminated); false if it does
 * not fit. */
int ctl_path_append(char *out, size_t cap, const char *s);

#endif
