/*
 * Connections, channels and consumers as RabbitMQ's management API shows
 * them.
 */
#include "plugins/management/http.h"

const http_route http_routes_conns[] = {
    { NULL, NULL, NULL, 0 },
};
