/*
 * The management plugin: RabbitMQ's HTTP API and web UI on the
 * management port (15672) and Prometheus metrics on their own port
 * (15692), both served by http.c from the broker's loop. Either port at 0
 * turns that server off. The API is also served, always, on the Unix
 * socket <data_dir>/coney.sock to the local administrator: coney-ctl's
 * way in, also with the management port off.
 */
#include <stdio.h>

#include "broker/log.h"
#include "broker/plugin.h"
#include "plugins/management/management.h"

static http_server *api, *metrics, *local;

static const http_route *const api_tables[] = {
    http_routes_core, http_routes_conns, http_routes_objects, http_routes_access,
    http_routes_definitions, http_routes_coney, http_routes_ui, NULL,
};
static const http_route *const metrics_tables[] = { http_routes_metrics, NULL };

static int
plugin_start(char *err, size_t errlen)
{
    char path[600];
    snprintf(path, sizeof path, "%s/coney.sock", B.cfg.data_dir);
    local = http_server_start_local(path, api_tables, err, errlen);
    if (!local)
        return -1;
    if (B.cfg.management_port) {
        api = http_server_start(HTTP_SERVER_API, B.cfg.management_bind_addr,
                                B.cfg.management_port, api_tables, err, errlen);
        if (!api) {
            http_server_stop(&local);
            return -1;
        }
        log_info("management API listening on %s:%d", B.cfg.management_bind_addr,
                 B.cfg.management_port);
    }
    if (B.cfg.management_tls_port) {
        /* the HTTPS twin answers the same API, also with the plain port off */
        if (!api) {
            api = http_server_start(HTTP_SERVER_API, "127.0.0.1", 0, api_tables, err, errlen);
            if (!api) {
                http_server_stop(&local);
                return -1;
            }
        }
        if (tls_front_start(api, B.cfg.management_tls_bind_addr, B.cfg.management_tls_port,
                            err, errlen) != 0) {
            http_server_stop(&api);
            http_server_stop(&local);
            return -1;
        }
    }
    if (B.cfg.prometheus_port) {
        metrics = http_server_start(HTTP_SERVER_METRICS, B.cfg.prometheus_bind_addr,
                                    B.cfg.prometheus_port, metrics_tables, err, errlen);
        if (!metrics) {
            http_server_stop(&api);
            http_server_stop(&local);
            return -1;
        }
        log_info("Prometheus metrics listening on %s:%d", B.cfg.prometheus_bind_addr,
                 B.cfg.prometheus_port);
    }
    return 0;
}

/* HTTP requests are answered at once, so there is nothing to drain:
 * closing stops the servers with whatever connections they hold. */
static void
plugin_close(const char *reason)
{
    (void)reason;
    tls_front_stop();
    http_server_stop(&api);
    http_server_stop(&metrics);
    http_server_stop(&local);
}

static size_t
plugin_clients(void)
{
    return 0;
}

static void
plugin_finish(void)
{
    tls_front_stop();
    http_server_stop(&api);
    http_server_stop(&metrics);
    http_server_stop(&local);
}

const plugin management_plugin = {
    .name = "management", .start = plugin_start, .close = plugin_close,
    .clients = plugin_clients, .finish = plugin_finish,
};
