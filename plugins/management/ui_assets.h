/*
 * The web UI's files, compiled into the binary. One list, read twice: by
 * ui_assets.S, which .incbin's each file of plugins/management/ui/ between
 * a start and an end symbol, and by ui.c, which serves them. Adding a
 * file to the UI is one line here (the Makefile rebuilds ui_assets.o
 * whenever a file under ui/ changes).
 *
 * X(symbol, file name under ui/, Content-Type)
 *
 * This header is read by the assembler's preprocessor too, so it holds
 * nothing but the macro.
 */
#ifndef CONEY_PLUGINS_MANAGEMENT_UI_ASSETS_H
#define CONEY_PLUGINS_MANAGEMENT_UI_ASSETS_H

#define CONEY_UI_ASSETS(X) \
    X(index_html,    index.html,    "text/html; charset=utf-8") \
    X(style_css,     style.css,     "text/css; charset=utf-8") \
    X(app_js,        app.js,        "text/javascript; charset=utf-8") \
    X(api_js,        api.js,        "text/javascript; charset=utf-8") \
    X(dom_js,        dom.js,        "text/javascript; charset=utf-8") \
    X(chart_js,      chart.js,      "text/javascript; charset=utf-8") \
    X(list_js,       list.js,       "text/javascript; charset=utf-8") \
    X(forms_js,      forms.js,      "text/javascript; charset=utf-8") \
    X(overview_js,   overview.js,   "text/javascript; charset=utf-8") \
    X(conns_js,      conns.js,      "text/javascript; charset=utf-8") \
    X(exchanges_js,  exchanges.js,  "text/javascript; charset=utf-8") \
    X(queues_js,     queues.js,     "text/javascript; charset=utf-8") \
    X(admin_js,      admin.js,      "text/javascript; charset=utf-8") \
    X(favicon_svg,   favicon.svg,   "image/svg+xml")

#endif
