/*
 * The management plugin: RabbitMQ's HTTP API and web UI on the
 * management port (15672) and Prometheus metrics on their own port
 * (15692), both served by http.c from the broker's loop. Either port at 0
 * turns that server off. The API is also served, always, on the Unix
 * socket <data_dir>/coney.sock to the local administrator: coney-ctl's
 * way in, also with the management port off.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* load_definitions: the file is imported as if the local administrator
 * had POSTed it to /api/definitions on coney.sock, through the same
 * handler, so a boot import merges and fails exactly as that would. */
static int
plugin_before_listen(char *err, size_t errlen)
{
    const char *path = B.cfg.load_definitions;
    if (!path[0])
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "load_definitions: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *body = malloc(cap);
    size_t n;
    while (body && (n = fread(body + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(body, cap *= 2);
            if (!bigger)
                free(body);
            body = bigger;
        }
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!body || bad) {
        free(body);
        snprintf(err, errlen, "load_definitions: cannot read %s", path);
        return -1;
    }
    const http_route *post = NULL;
    for (const http_route *r = http_routes_definitions; r->method && !post; r++)
        if (strcmp(r->method, "POST") == 0 && strcmp(r->pattern, "/api/definitions") == 0)
            post = r;
    if (!post) {
        free(body);
        snprintf(err, errlen, "load_definitions: no /api/definitions handler");
        return -1;
    }
    http_req rq = { .method = "POST", .path = "/api/definitions", .body = body,
                    .body_len = len, .tags = HTTP_TAG_ADMINISTRATOR };
    http_resp rs = { .status = 200 };
    post->fn(&rq, &rs);
    free(body);
    int rc = 0;
    if (rs.status >= 400) {
        json_t *why = rs.json ? json_object_get(rs.json, "reason") : NULL;
        snprintf(err, errlen, "load_definitions: %s: %s", path,
                 json_is_string(why) ? json_string_value(why) : "import failed");
        rc = -1;
    } else {
        log_info("load_definitions: imported %s", path);
    }
    json_decref(rs.json);
    free(rs.owned_raw);
    return rc;
}

const plugin management_plugin = {
    .name = "management", .start = plugin_start, .close = plugin_close,
    .clients = plugin_clients, .finish = plugin_finish,
    .before_listen = plugin_before_listen,
};
