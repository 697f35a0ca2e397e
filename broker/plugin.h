/*
 * The plugin interface: what the process asks of a protocol plugin (MQTT
 * today, the management API next). A plugin reaches the broker only
 * through broker/ public headers; server.c calls these in order:
 * start once the store is recovered, close when a signal asks the process
 * to stop, then finish after the loop has ended.
 */
#ifndef CONEY_BROKER_PLUGIN_H
#define CONEY_BROKER_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/stream.h"

struct vhost;

/* A connection a plugin holds (an MQTT client), as the management API
 * lists it; strings are borrowed for the call. */
typedef struct plugin_conn {
    const char *name;              /* unique while it lives */
    const char *protocol;          /* "MQTT 3.1.1" */
    const char *user;
    const struct vhost *vh;        /* NULL before login */
    const char *peer;              /* "host:port" */
    const char *client_id;         /* MQTT client id, or NULL */
    double connected_at;           /* ev_now at accept */
    uint64_t recv_oct, send_oct;
    bool tls;
    void *handle;                  /* for close_connection */
} plugin_conn;

typedef struct plugin {
    const char *name;
    /* Recovers the plugin's durable state and opens its listeners; a
     * plugin the config turns off returns 0 and does nothing. Returns 0,
     * or -1 with a message in err (the broker then refuses to start). */
    int (*start)(char *err, size_t errlen);
    /* Stops accepting and closes every client, saying why. */
    void (*close)(const char *reason);
    /* Clients still open (the process waits briefly for them to go). */
    size_t (*clients)(void);
    /* Frees everything; the loop has stopped. */
    void (*finish)(void);
    /* Lists its open connections (NULL if it has none to list). */
    void (*each_connection)(void (*fn)(void *ctx, const plugin_conn *c), void *ctx);
    /* Closes one listed connection (handle from plugin_conn), saying why. */
    void (*close_connection)(void *handle, const char *reason);
    /* Runs once the store is recovered, before any listener of any plugin
     * opens (the management plugin imports load_definitions there); NULL
     * if there is nothing to do. Returns 0, or -1 with a message in err
     * (the broker then refuses to start). */
    int (*before_listen)(char *err, size_t errlen);
} plugin;

/* Every plugin's connections (server.c walks the plugins). */
void server_each_plugin_connection(void (*fn)(void *ctx, const plugin *p, const plugin_conn *c),
                                   void *ctx);

extern const plugin mqtt_plugin;
extern const plugin management_plugin;

/* ---- what plugins get from server.c ------------------------------------------ */

struct ev_io;
/* Accepts connections on addr:port, wraps each in a stream of the given
 * kind (STREAM_TLS: the context broker/tls.h built from ssl_options) and
 * hands it to on_accept(s, peer "host:port", peer is loopback), which
 * takes over the stream (copies it; owns its fd and transport state). w
 * is the caller's watcher, which must live until server_unlisten. A TLS
 * twin of a listener is one more call with STREAM_TLS. Returns 0, or -1
 * after logging why. */
int server_listen(struct ev_io *w, const char *addr, int port, enum stream_kind kind,
                  void (*on_accept)(const stream *s, const char *peer, bool loopback));
/* Stops and closes a listener; does nothing for one that never opened
 * (w->fd < 0). */
void server_unlisten(struct ev_io *w);

/* Run after each store batch is done (confirms, acks that wait for a
 * commit); at most a few hooks, registered at start. */
void persist_on_progress(void (*fn)(void));

#endif
