/*
 * The web UI: static files compiled into the binary (ui_assets.S) and
 * served on the management port beside /api, with no login of their own.
 * The page logs in itself: it asks for a user and password, checks them
 * with GET /api/whoami and sends them as HTTP Basic credentials on every
 * fetch to /api, keeping them in the tab's sessionStorage only.
 *
 * Every file is served from one table; the route table below lists the
 * URLs (the table is the router) and one handler finds the file by path.
 * Caching: the API port answers everything with Cache-Control: no-cache
 * (http.c), so a browser asks again on each load and always runs the
 * UI of the binary it talks to; the files are small and local.
 */
#include <string.h>

#include "plugins/management/http.h"
#include "plugins/management/ui_assets.h"

#define UI_DECLARE(sym, file, type) \
    extern const char coney_ui_##sym##_start[]; \
    extern const char coney_ui_##sym##_end[];
CONEY_UI_ASSETS(UI_DECLARE)

typedef struct ui_asset {
    const char *path;              /* "/app.js" */
    const char *start;             /* the bytes, in the binary's read-only data */
    const char *end;
    const char *type;              /* Content-Type */
} ui_asset;

#define UI_ENTRY(sym, file, type) { "/" #file, coney_ui_##sym##_start, coney_ui_##sym##_end, type },
static const ui_asset ui_assets[] = {
    CONEY_UI_ASSETS(UI_ENTRY)
};

static const ui_asset *
ui_asset_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < sizeof ui_assets / sizeof ui_assets[0]; i++)
        if (strcmp(ui_assets[i].path, path) == 0)
            return &ui_assets[i];
    return NULL;
}

static void
ui_serve(http_req *rq, http_resp *rs)
{
    const ui_asset *a = ui_asset_find(rq->path);
    if (a == NULL) {
        http_error(rs, 404, "not_found", "Not Found");
        return;
    }
    rs->status = 200;
    rs->raw = a->start;
    rs->raw_len = (size_t)(a->end - a->start);
    rs->content_type = a->type;
}

#define UI_ROUTE(sym, file, type) { "GET", "/" #file, ui_serve, HTTP_NEED_NONE },
const http_route http_routes_ui[] = {
    { "GET", "/", ui_serve, HTTP_NEED_NONE },
    CONEY_UI_ASSETS(UI_ROUTE)
    { NULL, NULL, NULL, 0 },
};
