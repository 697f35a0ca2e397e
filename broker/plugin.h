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
} plugin;

extern const plugin mqtt_plugin;

/* ---- what plugins get from server.c ------------------------------------------ */

struct ev_io;
/* Accepts connections on addr:port into on_accept(fd non-blocking, peer
 * "host:port", peer is loopback); w is the caller's watcher, which must
 * live until server_unlisten. Returns 0, or -1 after logging why. */
int server_listen(struct ev_io *w, const char *addr, int port,
                  void (*on_accept)(int fd, const char *peer, bool loopback));
void server_unlisten(struct ev_io *w);

/* Run after each store batch is done (confirms, acks that wait for a
 * commit); at most a few hooks, registered at start. */
void persist_on_progress(void (*fn)(void));

#endif
