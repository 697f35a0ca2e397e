/*
 * The management API's request handling that needs no socket
 * (plugins/management/http.c, built with -DCONEY_FUZZ): the router's
 * path splitting, matching over every route table and percent-decoding
 * of {x} arguments; the body read as JSON; and a list endpoint's query
 * handling (filter, regex, sort, columns, pages). No handler runs.
 *
 * Input: "METHOD URL\n" then "QUERY\n" then the body. The URL and query
 * stay percent-encoded, as MHD hands them over. A body that is a JSON
 * array is the list http_list works on; otherwise a fixed list is.
 */
#include "tests/fuzz/fuzz.h"

#include "broker/log.h"
#include "plugins/management/http.h"

static const http_route *const tables[] = {
    http_routes_core, http_routes_objects, http_routes_access, http_routes_definitions,
    http_routes_conns, http_routes_coney, http_routes_ui, NULL,
};

static const char sample_items[] =
    "[{\"name\":\"q1\",\"vhost\":\"/\",\"messages\":3,\"message_stats\":{\"publish\":10,"
    "\"publish_details\":{\"rate\":1.5}},\"arguments\":{\"x-max-length\":10}},"
    "{\"name\":\"Q2\",\"vhost\":\"v\",\"messages\":1,\"durable\":true},"
    "{\"name\":\"a.b\",\"vhost\":\"/\",\"messages\":null,\"message_stats\":{}},"
    "{\"vhost\":\"w\"},\"not an object\",7,"
    "{\"name\":\"q%2F1\",\"vhost\":\"/\",\"messages\":2.5,\"consumers\":[1,2]}]";

/* The next line of data (up to '\n' or the end) as a malloc'd string. */
static char *
take_line(const uint8_t **data, size_t *size)
{
    size_t n = 0;
    while (n < *size && (*data)[n] != '\n')
        n++;
    char *s = fuzz_alloc(n + 1);
    memcpy(s, *data, n);
    s[n] = 0;
    *data += n + (n < *size);
    *size -= n + (n < *size);
    return s;
}

static void
resp_free(http_resp *rs)
{
    if (rs->json) {
        char *text = json_dumps(rs->json, JSON_COMPACT);
        FUZZ_CHECK(text != NULL);
        free(text);
        json_decref(rs->json);
    }
    free(rs->owned_raw);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_ERROR);
        quiet = true;
    }
    char *line = take_line(&data, &size);
    char *query = take_line(&data, &size);
    const char *method = "GET", *url = line;
    char *sp = strchr(line, ' ');
    if (sp) {
        *sp = 0;
        method = line;
        url = sp + 1;
    }

    char *args[HTTP_MAX_ARGS];
    int nargs = 0;
    bool known = false;
    const http_route *r = http_fuzz_route(tables, method, url, args, &nargs, &known);
    if (r) {
        FUZZ_CHECK(known && nargs >= 0 && nargs <= HTTP_MAX_ARGS);
        for (int i = 0; i < nargs; i++) {
            /* decoding never lengthens */
            FUZZ_CHECK(strlen(args[i]) <= strlen(url));
            free(args[i]);
        }
    } else {
        FUZZ_CHECK(nargs == 0 || known);
    }

    json_t *items = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_array(items)) {
        json_decref(items);
        items = json_loads(sample_items, 0, NULL);
        FUZZ_CHECK(items != NULL);
    }
    http_resp rs = { .status = 200 };
    http_fuzz_list(query, items, &rs);
    FUZZ_CHECK(rs.status == 200 || rs.status == 400);
    resp_free(&rs);

    /* the body as a handler that wants a JSON object reads it */
    http_req rq = { .method = method, .path = url, .body = size ? (const char *)data : NULL,
                    .body_len = size };
    http_resp rb = { .status = 200 };
    json_t *body = http_body_json(&rq, &rb);
    FUZZ_CHECK(body ? json_is_object(body) && rb.status == 200 : rb.status == 400);
    json_decref(body);
    resp_free(&rb);

    free(query);
    free(line);
    return 0;
}
