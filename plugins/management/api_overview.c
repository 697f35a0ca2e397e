/*
 * The node as a whole, as RabbitMQ's management API shows it: overview,
 * nodes, whoami, cluster name, extensions, the health checks that load
 * balancers and Kubernetes probes call, and the old aliveness test.
 *
 * Coney is one node: /api/nodes lists it alone, node-level figures come
 * from /proc and statvfs at the moment of the request, and a health
 * check that asks about the cluster asks about this node.
 */
#include <dirent.h>
#include <ev.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "broker/conn.h"
#include "broker/stats.h"
#include "plugins/management/management.h"

/* The RabbitMQ release whose API this one follows: tools that check
 * rabbitmq_version before using a feature see one that has it. */
#define RABBITMQ_COMPAT_VERSION "3.13.0"

static char cluster_name[320];

/* The cluster name lives in a small file in the data directory so that a
 * PUT survives a restart. */
static void
cluster_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/cluster_name", B.cfg.data_dir);
}

const char *
http_cluster_name(void)
{
    if (!cluster_name[0]) {
        char path[600];
        cluster_path(path, sizeof path);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(cluster_name, sizeof cluster_name, f))
                cluster_name[0] = 0;
            fclose(f);
            cluster_name[strcspn(cluster_name, "\n")] = 0;
        }
        if (!cluster_name[0])
            snprintf(cluster_name, sizeof cluster_name, "%s", http_node_name());
    }
    return cluster_name;
}

/* ---- listeners ---------------------------------------------------------------- */

typedef struct listener_info {
    const char *protocol;
    const char *ip;
    int port;
} listener_info;

/* The open listeners, as RabbitMQ names their protocols; returns how many. */
static size_t
listeners(listener_info out[8])
{
    size_t n = 0;
    const config *c = &B.cfg;
    out[n++] = (listener_info){ "amqp", c->bind_addr, c->port };
    if (c->tls_port)
        out[n++] = (listener_info){ "amqp/ssl", c->tls_bind_addr, c->tls_port };
    if (c->mqtt_port)
        out[n++] = (listener_info){ "mqtt", c->mqtt_bind_addr, c->mqtt_port };
    if (c->mqtt_tls_port)
        out[n++] = (listener_info){ "mqtt/ssl", c->mqtt_tls_bind_addr, c->mqtt_tls_port };
    if (c->management_port)
        out[n++] = (listener_info){ "http", c->management_bind_addr, c->management_port };
    if (c->prometheus_port)
        out[n++] = (listener_info){ "http/prometheus", c->prometheus_bind_addr, c->prometheus_port };
    return n;
}

static json_t *
listeners_json(void)
{
    listener_info l[8];
    size_t n = listeners(l);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        /* RabbitMQ writes "::" for every address */
        const char *ip = strcmp(l[i].ip, "0.0.0.0") == 0 ? "::" : l[i].ip;
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i, s:{}}",
                                           "node", http_node_name(), "protocol", l[i].protocol,
                                           "ip_address", ip, "port", l[i].port,
                                           "socket_opts"));
    }
    return a;
}

static json_t *
exchange_types_json(void)
{
    static const char *const t[][2] = {
        { "direct", "AMQP direct exchange, as per the AMQP specification" },
        { "fanout", "AMQP fanout exchange, as per the AMQP specification" },
        { "headers", "AMQP headers exchange, as per the AMQP specification" },
        { "topic", "AMQP topic exchange, as per the AMQP specification" },
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "name", t[i][0],
                                           "description", t[i][1], "enabled", 1));
    return a;
}

/* ---- node figures ------------------------------------------------------------- */

unsigned long
http_fd_used(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned long n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)); )
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n ? n - 1 : 0;          /* not the one opendir holds */
}

unsigned long
http_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1048576;
    return (unsigned long)rl.rlim_cur;
}

unsigned long long
http_disk_free(void)
{
    struct statvfs st;
    if (statvfs(B.cfg.data_dir, &st) != 0)
        return 0;
    return (unsigned long long)st.f_bavail * st.f_frsize;
}

static unsigned long long
total_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (unsigned long long)pages * (unsigned long long)size : 0;
}

static long
thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long n = 1;
    if (!f)
        return n;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

typedef struct totals {
    uint64_t connections, channels, exchanges, queues, consumers;
    uint64_t ready, unacked;
} totals;

/* Objects the request's user may see. */
static void
count_totals(const http_req *rq, totals *t)
{
    memset(t, 0, sizeof *t);
    bool all = rq->tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR);
    for (map_iter vi = map_first(&B.vhosts); vi.e; map_next(&B.vhosts, &vi)) {
        vhost *vh = vi.e->value;
        if (!http_vhost_visible(rq, vh))
            continue;
        t->exchanges += vh->exchanges.count;
        t->queues += vh->queues.count;
        for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
            queue *q = it.e->value;
            t->consumers += q->nconsumers;
            t->ready += queue_ready(q);
            t->unacked += q->unacked;
        }
    }
    for (conn *c = B.conns; c; c = c->next) {
        if (c->state != CONN_OPEN || !c->u)
            continue;
        if (!all && c->u != rq->user)
            continue;
        t->connections++;
        for (uint32_t i = 0; i < c->nchannels; i++)
            t->channels += c->channels[i] != NULL;
    }
}

/* Rates of the broker-wide ready and unacked counts, from the sample
 * ring: the change over the last interval. */
static void
queue_rates(double *ready, double *unacked)
{
    *ready = *unacked = 0;
    if (B.ring_len < 2)
        return;
    const struct stats_sample *a = &B.ring[(B.ring_next + STATS_RING - 2) % STATS_RING];
    const struct stats_sample *b = &B.ring[(B.ring_next + STATS_RING - 1) % STATS_RING];
    double dt = b->t - a->t;
    if (dt <= 0)
        return;
    *ready = ((double)b->messages_ready - (double)a->messages_ready) / dt;
    *unacked = ((double)b->messages_unacked - (double)a->messages_unacked) / dt;
}

/* ---- handlers ------------------------------------------------------------------ */

static void
overview(http_req *rq, http_resp *rs)
{
    totals t;
    count_totals(rq, &t);
    double rr, ur;
    queue_rates(&rr, &ur);
    json_t *o = json_object();
    json_object_set_new(o, "management_version", json_string(CONEY_VERSION));
    json_object_set_new(o, "rates_mode", json_string("basic"));
    json_object_set_new(o, "sample_retention_policies",
                        json_pack("{s:[i,i,i,i], s:[i,i], s:[i]}",
                                  "global", 600, 3600, 28800, 86400,
                                  "basic", 600, 3600, "detailed", 600));
    json_object_set_new(o, "exchange_types", exchange_types_json());
    json_object_set_new(o, "product_version", json_string(CONEY_VERSION));
    json_object_set_new(o, "product_name", json_string("Coney"));
    json_object_set_new(o, "rabbitmq_version", json_string(RABBITMQ_COMPAT_VERSION));
    json_object_set_new(o, "cluster_name", json_string(http_cluster_name()));
    json_object_set_new(o, "erlang_version", json_string("none (Coney is written in C)"));
    json_object_set_new(o, "erlang_full_version", json_string("none"));
    json_object_set_new(o, "release_series_support_status", json_string("supported"));
    json_object_set_new(o, "disable_stats", json_false());
    json_object_set_new(o, "is_op_policy_updating_enabled", json_true());
    json_object_set_new(o, "enable_queue_totals", json_false());
    json_object_set_new(o, "default_queue_type", json_string("classic"));
    json_object_set_new(o, "message_stats", http_message_stats(&B.st));
    json_object_set_new(o, "churn_rates",
        json_pack("{s:i, s:{s:f}, s:i, s:{s:f}, s:i, s:{s:f}, s:i, s:{s:f}, s:i, s:{s:f}, "
                  "s:i, s:{s:f}, s:i, s:{s:f}}",
                  "channel_closed", 0, "channel_closed_details", "rate", 0.0,
                  "channel_created", 0, "channel_created_details", "rate", 0.0,
                  "connection_closed", 0, "connection_closed_details", "rate", 0.0,
                  "connection_created", 0, "connection_created_details", "rate", 0.0,
                  "queue_created", 0, "queue_created_details", "rate", 0.0,
                  "queue_declared", 0, "queue_declared_details", "rate", 0.0,
                  "queue_deleted", 0, "queue_deleted_details", "rate", 0.0));
    json_t *qt = json_object();
    json_object_set_new(qt, "messages", json_integer((json_int_t)(t.ready + t.unacked)));
    json_object_set_new(qt, "messages_details", http_rate(rr + ur));
    json_object_set_new(qt, "messages_ready", json_integer((json_int_t)t.ready));
    json_object_set_new(qt, "messages_ready_details", http_rate(rr));
    json_object_set_new(qt, "messages_unacknowledged", json_integer((json_int_t)t.unacked));
    json_object_set_new(qt, "messages_unacknowledged_details", http_rate(ur));
    json_object_set_new(o, "queue_totals", qt);
    json_object_set_new(o, "object_totals",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}",
                                  "channels", (json_int_t)t.channels,
                                  "connections", (json_int_t)t.connections,
                                  "consumers", (json_int_t)t.consumers,
                                  "exchanges", (json_int_t)t.exchanges,
                                  "queues", (json_int_t)t.queues));
    json_object_set_new(o, "statistics_db_event_queue", json_integer(0));
    json_object_set_new(o, "node", json_string(http_node_name()));
    /* as RabbitMQ, node-level details only for users who may monitor */
    if (rq->tags & (HTTP_TAG_MONITORING | HTTP_TAG_ADMINISTRATOR)) {
        json_object_set_new(o, "listeners", listeners_json());
        char port[16];
        snprintf(port, sizeof port, "%d", B.cfg.management_port);
        json_object_set_new(o, "contexts",
            json_pack("[{s:s, s:s, s:s, s:s, s:[]}]", "node", http_node_name(),
                      "description", "RabbitMQ Management", "path", "/",
                      "port", port, "ssl_opts"));
    } else {
        json_object_set_new(o, "listeners", json_array());
        json_object_set_new(o, "contexts", json_array());
    }
    http_json(rs, 200, o);
}

static json_t *
node_json(bool memory)
{
    unsigned long long rss = http_rss_bytes();
    unsigned long long mem = total_memory();
    unsigned long fds = http_fd_used(), fd_total = http_fd_limit();
    uint64_t sockets = 0;
    for (conn *c = B.conns; c; c = c->next)
        sockets++;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(http_node_name()));
    json_object_set_new(o, "type", json_string("disc"));
    json_object_set_new(o, "running", json_true());
    json_object_set_new(o, "being_drained", json_false());
    json_object_set_new(o, "os_pid", json_sprintf("%ld", (long)getpid()));
    json_object_set_new(o, "mem_used", json_integer((json_int_t)rss));
    json_object_set_new(o, "mem_used_details", http_rate(0));
    /* the memory alarm's limit (server.c: memory_check) */
    uint64_t limit = B.cfg.vm_memory_high_watermark_absolute
                     ? B.cfg.vm_memory_high_watermark_absolute
                     : (uint64_t)((double)mem * B.cfg.vm_memory_high_watermark);
    json_object_set_new(o, "mem_limit", json_integer((json_int_t)limit));
    json_object_set_new(o, "mem_alarm", json_boolean(B.mem_alarm));
    json_object_set_new(o, "mem_calculation_strategy", json_string("rss"));
    json_object_set_new(o, "disk_free", json_integer((json_int_t)http_disk_free()));
    json_object_set_new(o, "disk_free_details", http_rate(0));
    json_object_set_new(o, "disk_free_limit", json_integer((json_int_t)B.cfg.disk_free_limit));
    json_object_set_new(o, "disk_free_alarm", json_boolean(B.disk_alarm));
    json_object_set_new(o, "fd_used", json_integer((json_int_t)fds));
    json_object_set_new(o, "fd_used_details", http_rate(0));
    json_object_set_new(o, "fd_total", json_integer((json_int_t)fd_total));
    json_object_set_new(o, "sockets_used", json_integer((json_int_t)sockets));
    json_object_set_new(o, "sockets_used_details", http_rate(0));
    json_object_set_new(o, "sockets_total", json_integer((json_int_t)fd_total));
    json_object_set_new(o, "proc_used", json_integer(thread_count()));
    json_object_set_new(o, "proc_used_details", http_rate(0));
    json_object_set_new(o, "proc_total", json_integer(1048576));
    json_object_set_new(o, "run_queue", json_integer(0));
    json_object_set_new(o, "processors", json_integer(cpus > 0 ? cpus : 1));
    json_object_set_new(o, "uptime",
                        json_integer((json_int_t)((ev_now(B.loop) - B.started) * 1000.0)));
    json_object_set_new(o, "partitions", json_array());
    json_object_set_new(o, "rates_mode", json_string("basic"));
    json_object_set_new(o, "exchange_types", exchange_types_json());
    json_object_set_new(o, "enabled_plugins",
                        json_pack("[s, s, s]", "rabbitmq_management", "rabbitmq_mqtt",
                                  "rabbitmq_prometheus"));
    json_object_set_new(o, "net_ticktime", json_integer(60));
    json_object_set_new(o, "cluster_links", json_array());
    json_object_set_new(o, "config_files", json_array());
    json_object_set_new(o, "db_dir", json_string(B.cfg.data_dir));
    json_object_set_new(o, "log_files", json_array());
    if (memory)
        json_object_set_new(o, "memory",
                            json_pack("{s:I, s:{s:I, s:I, s:I}, s:s}",
                                      "total_rss", (json_int_t)rss,
                                      "total", "rss", (json_int_t)rss, "allocated", (json_int_t)rss,
                                      "erlang", (json_int_t)0,
                                      "strategy", "rss"));
    return o;
}

static void
nodes(http_req *rq, http_resp *rs)
{
    json_t *a = json_array();
    json_array_append_new(a, node_json(http_query_true(rq, "memory")));
    http_list(rq, rs, a);
}

static bool
node_arg(http_req *rq, http_resp *rs)
{
    if (strcmp(rq->args[0], http_node_name()) != 0) {
        http_error(rs, 404, "Object Not Found", "Not Found");
        return false;
    }
    return true;
}

static void
node(http_req *rq, http_resp *rs)
{
    if (node_arg(rq, rs))
        http_json(rs, 200, node_json(http_query_true(rq, "memory")));
}

static void
node_memory(http_req *rq, http_resp *rs)
{
    if (!node_arg(rq, rs))
        return;
    json_t *n = node_json(true);
    json_t *m = json_incref(json_object_get(n, "memory"));
    json_decref(n);
    http_json(rs, 200, json_pack("{s:o}", "memory", m));
}

static json_t *
tags_json(const char *t)
{
    json_t *tags = json_array();
    while (*t) {
        while (*t == ',' || *t == ' ')
            t++;
        const char *e = t;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - t);
        while (n && t[n - 1] == ' ')
            n--;
        if (n)
            json_array_append_new(tags, json_stringn(t, n));
        t = e;
    }
    return tags;
}

static void
whoami(http_req *rq, http_resp *rs)
{
    /* the local administrator (the Unix socket) has no name */
    http_json(rs, 200, json_pack("{s:s, s:o, s:b}", "name", http_user_name(rq),
                                 "tags", tags_json(rq->user ? auth_user_tags(rq->user)
                                                            : "administrator"),
                                 "is_internal_user", 1));
}

static void
cluster_name_get(http_req *rq, http_resp *rs)
{
    (void)rq;
    http_json(rs, 200, json_pack("{s:s}", "name", http_cluster_name()));
}

static void
cluster_name_put(http_req *rq, http_resp *rs)
{
    json_t *j = http_body_json(rq, rs);
    if (!j)
        return;
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !*name || strlen(name) >= sizeof cluster_name || strchr(name, '\n')) {
        json_decref(j);
        http_error(rs, 400, "bad_request", "name must be a non-empty string of at most %zu bytes",
                   sizeof cluster_name - 1);
        return;
    }
    char path[600], tmp[610];
    cluster_path(path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%s\n", name) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        json_decref(j);
        unlink(tmp);
        http_error(rs, 500, "internal_error", "cannot save the cluster name: %s", strerror(errno));
        return;
    }
    snprintf(cluster_name, sizeof cluster_name, "%s", name);
    json_decref(j);
    http_no_content(rs);
}

static void
extensions(http_req *rq, http_resp *rs)
{
    (void)rq;
    http_json(rs, 200, json_array());
}

/* ---- health checks ------------------------------------------------------------- */

static void
health_ok(http_resp *rs)
{
    http_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

static void
health_failed(http_resp *rs, const char *reason)
{
    http_json(rs, 503, json_pack("{s:s, s:s}", "status", "failed", "reason", reason));
}

static void
health_alarms(http_req *rq, http_resp *rs)
{
    (void)rq;
    if (!B.disk_alarm && !B.mem_alarm) {
        health_ok(rs);
        return;
    }
    health_failed(rs, "resource alarm(s) in effect");
    json_t *alarms = json_array();
    if (B.mem_alarm)
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "node", http_node_name(),
                                                "resource", "memory"));
    if (B.disk_alarm)
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "node", http_node_name(),
                                                "resource", "disk"));
    json_object_set_new(rs->json, "alarms", alarms);
}

static void
health_port_listener(http_req *rq, http_resp *rs)
{
    char *end;
    long port = strtol(rq->args[0], &end, 10);
    if (*end || port <= 0 || port > 65535) {
        http_error(rs, 400, "bad_request", "invalid port '%s'", rq->args[0]);
        return;
    }
    listener_info l[8];
    size_t n = listeners(l);
    json_t *ports = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ports, json_integer(l[i].port));
        if (l[i].port == port) {
            json_decref(ports);
            http_json(rs, 200, json_pack("{s:s, s:i}", "status", "ok", "port", (int)port));
            return;
        }
    }
    health_failed(rs, "No active listener");
    json_object_set_new(rs->json, "missing", json_integer(port));
    json_object_set_new(rs->json, "ports", ports);
}

static void
health_protocol_listener(http_req *rq, http_resp *rs)
{
    const char *want = rq->args[0];
    /* RabbitMQ's aliases */
    if (strcmp(want, "amqp091") == 0 || strcmp(want, "amqp0-9-1") == 0)
        want = "amqp";
    else if (strcmp(want, "amqps") == 0)
        want = "amqp/ssl";
    else if (strcmp(want, "mqtts") == 0)
        want = "mqtt/ssl";
    else if (strcmp(want, "prometheus") == 0)
        want = "http/prometheus";
    listener_info l[8];
    size_t n = listeners(l);
    json_t *protos = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(protos, json_string(l[i].protocol));
        if (strcmp(l[i].protocol, want) == 0) {
            json_decref(protos);
            http_json(rs, 200, json_pack("{s:s, s:s}", "status", "ok", "protocol", rq->args[0]));
            return;
        }
    }
    health_failed(rs, "No active listener");
    json_object_set_new(rs->json, "missing", json_string(rq->args[0]));
    json_object_set_new(rs->json, "protocols", protos);
}

static void
health_simple(http_req *rq, http_resp *rs)
{
    (void)rq;
    health_ok(rs);
}

static void
health_serving(http_req *rq, http_resp *rs)
{
    (void)rq;
    if (B.stopping)
        health_failed(rs, "the node is shutting down");
    else
        health_ok(rs);
}

/* RabbitMQ's historical check: declare the queue aliveness-test in the
 * vhost, publish a message to it through the default exchange and get it
 * back. The queue stays (as in RabbitMQ); the message does not. */
static void
aliveness(http_req *rq, http_resp *rs)
{
    vhost *vh = http_vhost_arg(rq, rs, rq->args[0]);
    if (!vh)
        return;
    amqp_bytes qn = AMQP_BYTES_LIT("aliveness-test");
    if (!http_permitted(rq, vh, AUTH_CONFIGURE, qn) ||
        !http_permitted(rq, vh, AUTH_WRITE, AMQP_BYTES_LIT("")) ||
        !http_permitted(rq, vh, AUTH_READ, qn)) {
        http_error(rs, 401, "not_authorised", "access to queue 'aliveness-test' refused");
        return;
    }
    queue *q = vhost_queue(vh, qn);
    if (!q) {
        q = queue_new(vh, qn, false, false, false, NULL, NULL, 0);
        vhost_queue_add(vh, q);
    }
    static const char body[] = "test_message";
    static const uint8_t no_props[1];
    message *m = message_new(AMQP_BYTES_LIT(""), qn, 0, no_props, 0, sizeof body - 1);
    if (!m) {
        http_json(rs, 500, json_pack("{s:s, s:s}", "status", "failed", "reason", "out of memory"));
        return;
    }
    memcpy(m->body, body, sizeof body - 1);
    m->body_received = sizeof body - 1;
    size_t reached = 0;
    vhost_publish(vh, vh->default_ex, m, &reached);
    message_unref(&m);
    /* take back the one we sent, whatever else is there first */
    bool found = false;
    qentry e;
    while (reached && !found && queue_pop(q, &e)) {
        found = e.msg->body_size == sizeof body - 1 &&
                memcmp(e.msg->body, body, sizeof body - 1) == 0;
        queue_entry_forget(q, e.msg, e.seq, e.flags);
        message_unref(&e.msg);
    }
    if (found)
        health_ok(rs);
    else
        http_json(rs, 500, json_pack("{s:s, s:s}", "status", "failed",
                                     "reason", "the test message did not come back"));
}

const http_route http_routes_core[] = {
    { "GET", "/api/overview", overview, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/nodes", nodes, HTTP_NEED_MONITORING },
    { "GET", "/api/nodes/{name}", node, HTTP_NEED_MONITORING },
    { "GET", "/api/nodes/{name}/memory", node_memory, HTTP_NEED_MONITORING },
    { "GET", "/api/whoami", whoami, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/cluster-name", cluster_name_get, HTTP_NEED_MANAGEMENT },
    { "PUT", "/api/cluster-name", cluster_name_put, HTTP_NEED_ADMINISTRATOR },
    { "GET", "/api/extensions", extensions, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/alarms", health_alarms, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/local-alarms", health_alarms, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/port-listener/{port}", health_port_listener, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/protocol-listener/{proto}", health_protocol_listener,
      HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/virtual-hosts", health_simple, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/node-is-quorum-critical", health_simple, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/node-is-mirror-sync-critical", health_simple, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/below-node-connection-limit", health_simple, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/is-in-service", health_serving, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/health/checks/ready-to-serve-clients", health_serving, HTTP_NEED_MANAGEMENT },
    { "GET", "/api/aliveness-test/{vhost}", aliveness, HTTP_NEED_MANAGEMENT },
    { NULL, NULL, NULL, 0 },
};
