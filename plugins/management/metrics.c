/*
 * Prometheus metrics in the text exposition format (version 0.0.4), with
 * the names of RabbitMQ's Prometheus plugin where it has one, so its
 * dashboards and alerts keep working: /metrics aggregates (one sample
 * per metric for the whole node), /metrics/per-object adds one series
 * per queue labelled {vhost, queue}. No login, as RabbitMQ's plugin.
 *
 * The page is built into one growing buffer in a single pass over the
 * queues, so a scrape of 10,000 queues costs one walk and one copy.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "plugins/management/management.h"

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void
text_reserve(text *t, size_t n)
{
    if (t->len + n + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 16384;
    while (cap < t->len + n + 1)
        cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p)
        abort();
    t->p = p;
    t->cap = cap;
}

static void __attribute__((format(printf, 2, 3)))
text_printf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= t->cap - t->len) {
        text_reserve(t, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

/* A label value with \, " and newline escaped as the format asks. */
static void
text_label(text *t, const char *s, size_t n)
{
    text_reserve(t, 2 * n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '"') {
            t->p[t->len++] = '\\';
            t->p[t->len++] = c;
        } else if (c == '\n') {
            t->p[t->len++] = '\\';
            t->p[t->len++] = 'n';
        } else {
            t->p[t->len++] = c;
        }
    }
    t->p[t->len] = 0;
}

static void
head(text *t, const char *name, const char *type, const char *help)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metric(text *t, const char *name, const char *type, const char *help, double v)
{
    head(t, name, type, help);
    text_printf(t, "%s %.17g\n", name, v);
}

typedef struct node_counts {
    uint64_t connections, channels, queues, consumers, exchanges;
    uint64_t ready, unacked;
} node_counts;

static void
count(node_counts *n)
{
    memset(n, 0, sizeof *n);
    for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
        vhost *vh = vi.e->value;
        n->queues += vh->queues.count;
        n->exchanges += vh->exchanges.count;
        for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
            queue *q = it.e->value;
            n->consumers += q->nconsumers;
            n->ready += queue_ready(q);
            n->unacked += q->unacked;
        }
    }
    for (conn *c = B.conns; c; c = c->next) {
        if (c->state != CONN_OPEN || !c->vh)
            continue;
        n->connections++;
        for (uint32_t i = 0; i < c->nchannels; i++)
            n->channels += c->channels[i] != NULL;
    }
}

/* queue_totals: the node-wide queue message counts (per-object pages
 * give them per queue instead: one family may not appear twice). */
static void
node_metrics(text *t, bool queue_totals)
{
    node_counts n;
    count(&n);
    const msg_stats *s = &B.st.now;

    head(t, "rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info");
    text_printf(t, "rabbitmq_identity_info{rabbitmq_node=\"");
    text_label(t, http_node_name(), strlen(http_node_name()));
    text_printf(t, "\",rabbitmq_cluster=\"");
    text_label(t, http_cluster_name(), strlen(http_cluster_name()));
    text_printf(t, "\",rabbitmq_cluster_permanent_id=\"\",rabbitmq_endpoint=\"default\"} 1\n");
    head(t, "rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info");
    text_printf(t, "rabbitmq_build_info{rabbitmq_version=\"3.13.0\",product_name=\"Coney\","
                   "product_version=\"%s\",prometheus_plugin_version=\"%s\","
                   "prometheus_client_version=\"\",erlang_version=\"\"} 1\n",
                CONEY_VERSION, CONEY_VERSION);

    metric(t, "rabbitmq_connections", "gauge", "Connections currently open", (double)n.connections);
    metric(t, "rabbitmq_channels", "gauge", "Channels currently open", (double)n.channels);
    metric(t, "rabbitmq_queues", "gauge", "Queues available", (double)n.queues);
    metric(t, "rabbitmq_consumers", "gauge", "Consumers currently connected", (double)n.consumers);
    metric(t, "rabbitmq_exchanges", "gauge", "Exchanges available", (double)n.exchanges);
    if (queue_totals) {
        metric(t, "rabbitmq_queue_messages_ready", "gauge",
               "Messages ready to be delivered to consumers", (double)n.ready);
        metric(t, "rabbitmq_queue_messages_unacked", "gauge",
               "Messages delivered to consumers but not yet acknowledged", (double)n.unacked);
        metric(t, "rabbitmq_queue_messages", "gauge", "Sum of ready and unacknowledged messages",
               (double)(n.ready + n.unacked));
    }

    uint64_t delivered = s->deliver + s->deliver_no_ack + s->get + s->get_no_ack;
    uint64_t unroutable = s->drop_unroutable + s->return_unroutable;
    metric(t, "rabbitmq_global_messages_received_total", "counter",
           "Total number of messages received from publishers", (double)s->publish);
    metric(t, "rabbitmq_global_messages_routed_total", "counter",
           "Total number of messages routed to queues or streams",
           (double)(s->publish >= unroutable ? s->publish - unroutable : 0));
    metric(t, "rabbitmq_global_messages_unroutable_dropped_total", "counter",
           "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
           (double)s->drop_unroutable);
    metric(t, "rabbitmq_global_messages_unroutable_returned_total", "counter",
           "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
           (double)s->return_unroutable);
    metric(t, "rabbitmq_global_messages_confirmed_total", "counter",
           "Total number of messages confirmed to publishers", (double)s->confirm);
    metric(t, "rabbitmq_global_messages_delivered_total", "counter",
           "Total number of messages delivered to consumers", (double)delivered);
    metric(t, "rabbitmq_global_messages_delivered_consume_manual_ack_total", "counter",
           "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
           (double)s->deliver);
    metric(t, "rabbitmq_global_messages_delivered_consume_auto_ack_total", "counter",
           "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
           (double)s->deliver_no_ack);
    metric(t, "rabbitmq_global_messages_delivered_get_manual_ack_total", "counter",
           "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
           (double)s->get);
    metric(t, "rabbitmq_global_messages_delivered_get_auto_ack_total", "counter",
           "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
           (double)s->get_no_ack);
    metric(t, "rabbitmq_global_messages_redelivered_total", "counter",
           "Total number of messages redelivered to consumers", (double)s->redeliver);
    metric(t, "rabbitmq_global_messages_acknowledged_total", "counter",
           "Total number of messages acknowledged by consumers", (double)s->ack);

    metric(t, "rabbitmq_alarms_free_disk_space_watermark", "gauge",
           "is 1 if free disk space alarm is in effect", B.disk_alarm ? 1 : 0);
    metric(t, "rabbitmq_alarms_memory_used_watermark", "gauge",
           "is 1 if VM memory watermark alarm is in effect", B.mem_alarm ? 1 : 0);
    metric(t, "rabbitmq_alarms_file_descriptor_limit", "gauge",
           "is 1 if file descriptor limit alarm is in effect", 0);
    metric(t, "rabbitmq_process_resident_memory_bytes", "gauge",
           "Memory used in bytes", (double)http_rss_bytes());
    metric(t, "rabbitmq_disk_space_available_bytes", "gauge",
           "Disk space available in bytes", (double)http_disk_free());
    metric(t, "rabbitmq_disk_space_available_limit_bytes", "gauge",
           "Free disk space low watermark in bytes", (double)B.cfg.disk_free_limit);
    metric(t, "rabbitmq_process_open_fds", "gauge", "Open file descriptors",
           (double)http_fd_used());
    metric(t, "rabbitmq_process_max_fds", "gauge", "Open file descriptors limit",
           (double)http_fd_limit());
    metric(t, "rabbitmq_erlang_uptime_seconds", "gauge", "Node uptime",
           ev_now(B.loop) - B.started);
}

/* One family per queue metric, a series per queue. */
static void
queue_metrics(text *t)
{
    static const struct { const char *name, *type, *help; } fam[] = {
        { "rabbitmq_queue_messages_ready", "gauge", "Messages ready to be delivered to consumers" },
        { "rabbitmq_queue_messages_unacked", "gauge",
          "Messages delivered to consumers but not yet acknowledged" },
        { "rabbitmq_queue_messages", "gauge", "Sum of ready and unacknowledged messages" },
        { "rabbitmq_queue_consumers", "gauge", "Consumers on a queue" },
        { "rabbitmq_queue_messages_published_total", "counter",
          "Total number of messages published to queues" },
        { "rabbitmq_queue_messages_ram_bytes", "gauge", "Size in bytes of ready messages in memory" },
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        head(t, fam[f].name, fam[f].type, fam[f].help);
        for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
            vhost *vh = vi.e->value;
            for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
                queue *q = it.e->value;
                uint64_t v;
                switch (f) {
                case 0: v = queue_ready(q); break;
                case 1: v = q->unacked; break;
                case 2: v = (uint64_t)queue_ready(q) + q->unacked; break;
                case 3: v = q->nconsumers; break;
                case 4: v = queue_stats(q)->now.publish; break;
                default: v = queue_mem_bytes(q); break;
                }
                text_printf(t, "%s{vhost=\"", fam[f].name);
                text_label(t, vh->name.data, vh->name.len);
                text_printf(t, "\",queue=\"");
                text_label(t, q->name.data, q->name.len);
                text_printf(t, "\"} %llu\n", (unsigned long long)v);
            }
        }
    }
}

static void
respond(http_resp *rs, text *t)
{
    rs->status = 200;
    rs->owned_raw = t->p;
    rs->raw = t->p;
    rs->raw_len = t->len;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void
metrics(http_req *rq, http_resp *rs)
{
    (void)rq;
    text t = { 0 };
    text_reserve(&t, 16384);
    node_metrics(&t, true);
    respond(rs, &t);
}

static void
metrics_per_object(http_req *rq, http_resp *rs)
{
    (void)rq;
    text t = { 0 };
    text_reserve(&t, 16384);
    node_metrics(&t, false);
    queue_metrics(&t);
    respond(rs, &t);
}

const http_route http_routes_metrics[] = {
    { "GET", "/metrics", metrics, HTTP_NEED_NONE },
    { "GET", "/metrics/per-object", metrics_per_object, HTTP_NEED_NONE },
    { NULL, NULL, NULL, 0 },
};
