/*
 * Prometheus metrics in the text format (0.0.4).
 */
#include "plugins/management/management.h"

const http_route http_routes_metrics[] = {
    { NULL, NULL, NULL, 0 },
};
