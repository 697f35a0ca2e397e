/* coney-perf.c - the load generator: options, topology, the run, the report.
 *
 * In the spirit of RabbitMQ's PerfTest and lavinmqperf. The main thread
 * declares the exchange, queues and bindings on a control connection,
 * starts the consumers, waits until all are consuming, starts the
 * producers, prints a progress line every --interval seconds and decides
 * when the run is over: at the end of -z SECONDS, when every producer has
 * sent (and had confirmed) its -C MESSAGES and the consumers have received
 * what was routed to them, on SIGINT/SIGTERM, or on the first error. Then
 * it joins the threads, merges their histograms, prints the totals and,
 * unless --keep, deletes the queues.
 *
 * Rates are measured over each stream's own first-to-last message, so
 * connection set-up and the drain at the end do not dilute them.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "perf.h"

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    interrupted = 1;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_USER, OPT_PASSWORD, OPT_VHOST, OPT_QUEUES,
    OPT_QUEUE, OPT_QUEUE_PREFIX, OPT_QUEUE_ARG, OPT_MULTI_ACK, OPT_INTERVAL,
    OPT_JSON, OPT_KEEP, OPT_PREDECLARED, OPT_MANDATORY, OPT_PERSISTENT,
    OPT_DRAIN_TIMEOUT, OPT_WRITE_BATCH, OPT_PACE_US, OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"user", required_argument, NULL, OPT_USER},
    {"password", required_argument, NULL, OPT_PASSWORD},
    {"vhost", required_argument, NULL, OPT_VHOST},
    {"producers", required_argument, NULL, 'x'},
    {"consumers", required_argument, NULL, 'y'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'z'},
    {"count", required_argument, NULL, 'C'},
    {"exchange-type", required_argument, NULL, 't'},
    {"exchange", required_argument, NULL, 'e'},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"queue-prefix", required_argument, NULL, OPT_QUEUE_PREFIX},
    {"queue-arg", required_argument, NULL, OPT_QUEUE_ARG},
    {"flag", required_argument, NULL, 'f'},
    {"persistent", no_argument, NULL, OPT_PERSISTENT},
    {"mandatory", no_argument, NULL, OPT_MANDATORY},
    {"confirm", required_argument, NULL, 'c'},
    {"prefetch", required_argument, NULL, 'q'},
    {"auto-ack", no_argument, NULL, 'a'},
    {"multiple-ack-every", required_argument, NULL, OPT_MULTI_ACK},
    {"rate", required_argument, NULL, 'r'},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"json", no_argument, NULL, OPT_JSON},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"predeclared", no_argument, NULL, OPT_PREDECLARED},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"write-batch", required_argument, NULL, OPT_WRITE_BATCH},
    {"pace-us", required_argument, NULL, OPT_PACE_US},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
    fputs(
"usage: coney-perf [options]\n"
"Load generator for AMQP 0-9-1 brokers (Coney, RabbitMQ). Producers publish\n"
"messages stamped with their send time; consumers measure the end-to-end\n"
"latency. Run it on the broker's machine: the clock must be shared.\n"
"\n"
"Connection:\n"
"      --host HOST             broker host (127.0.0.1)\n"
"      --port PORT             broker port (5672)\n"
"      --user USER             user name (guest)\n"
"      --password PASS         password (guest)\n"
"      --vhost VHOST           virtual host (/)\n"
"Load:\n"
"  -x, --producers N           producer threads, one connection each (1)\n"
"  -y, --consumers N           consumer threads, one connection each (1);\n"
"                              0 = publish only, e.g. to fill a queue\n"
"  -s, --size BYTES            message body size, at least 8 (16); the first\n"
"                              8 bytes carry the send time\n"
"  -r, --rate N                messages/s per producer, paced evenly\n"
"                              (0 = as fast as possible)\n"
"  -z, --duration SECONDS      stop after this long\n"
"  -C, --count N               messages per producer, then stop when consumers\n"
"                              have them all (with -x 0: messages per consumer)\n"
"                              without -z or -C: run until Ctrl-C\n"
"Topology:\n"
"  -t, --exchange-type TYPE    direct, fanout, topic or headers (direct)\n"
"  -e, --exchange NAME         exchange (coney-perf-TYPE); \"\" = the default\n"
"                              exchange (direct only)\n"
"      --queues N              queues (1): fanout delivers every message to\n"
"                              all; otherwise producers and consumers are\n"
"                              spread over them round-robin\n"
"      --queue NAME            use this exact queue name (repeat for more)\n"
"      --queue-prefix P        queues are named P-1 .. P-N (coney-perf-PID)\n"
"      --queue-arg KEY=VALUE   a queue.declare argument (integer if numeric)\n"
"      --predeclared           declare nothing: exchange, queues, bindings exist\n"
"      --keep                  keep the queues at the end (else deleted)\n"
"Messages and acks:\n"
"  -f, --flag persistent       delivery mode 2 on durable queues (also\n"
"      --persistent            transient messages, non-durable queues otherwise)\n"
"  -f, --flag mandatory        publish mandatory; basic.return is counted\n"
"      --mandatory\n"
"  -c, --confirm WINDOW        publisher confirms, at most WINDOW unconfirmed\n"
"                              per producer (0 = off)\n"
"  -a, --auto-ack              consume with no-ack (else manual acks)\n"
"  -q, --prefetch N            basic.qos per consumer (0 = unlimited)\n"
"      --multiple-ack-every N  one ack with multiple=true per N deliveries\n"
"                              (1 = ack each delivery; acks are batched per\n"
"                              write either way)\n"
"Output:\n"
"      --interval SECONDS      progress line period (1; 0 = none)\n"
"      --json                  end with a line: RESULT {json}\n"
"      --drain-timeout SECONDS with -C, how long to wait without progress for\n"
"                              confirms and deliveries before failing (10)\n"
"      --write-batch N         messages per write() at most (64)\n"
"      --pace-us N             with -r: bursts at least N us apart (100)\n"
"  -h, --help                  this text\n", f);
}

static int
parse_num(const char *s, const char *opt, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isnan(v) || v < min || v > max) {
        fprintf(stderr, "coney-perf: invalid value for %s: %s\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int
parse_int(const char *s, const char *opt, double min, double max, uint64_t *out)
{
    double v;
    if (parse_num(s, opt, min, max, &v) < 0)
        return -1;
    if (v != floor(v)) {
        fprintf(stderr, "coney-perf: %s wants an integer: %s\n", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int
parse_opts(int argc, char **argv, perf_opts *o)
{
    static const char *names[4096];
    static perf_qarg qargs[64];
    int nnames = 0, queues_set = 0;
    uint64_t u;
    double d;

    *o = (perf_opts){
        .host = "127.0.0.1", .port = 5672, .user = "guest",
        .password = "guest", .vhost = "/", .producers = 1, .consumers = 1,
        .size = 16, .exchange_type = "direct", .queues = 1,
        .multi_ack = 1, .interval = 1, .drain_timeout = 10,
        .write_batch = 64, .pace_us = 100, .qargs = qargs,
    };
    int c;
    while ((c = getopt_long(argc, argv, "x:y:s:z:C:t:e:f:c:q:ar:h", long_opts,
                            NULL)) != -1) {
        switch (c) {
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT:
            if (parse_int(optarg, "--port", 1, 65535, &u) < 0) return -1;
            o->port = (int)u;
            break;
        case OPT_USER: o->user = optarg; break;
        case OPT_PASSWORD: o->password = optarg; break;
        case OPT_VHOST: o->vhost = optarg; break;
        case 'x':
            if (parse_int(optarg, "--producers", 0, 10000, &u) < 0) return -1;
            o->producers = (int)u;
            break;
        case 'y':
            if (parse_int(optarg, "--consumers", 0, 10000, &u) < 0) return -1;
            o->consumers = (int)u;
            break;
        case 's':
            if (parse_int(optarg, "--size", 8, 1 << 30, &u) < 0) return -1;
            o->size = (size_t)u;
            break;
        case 'z':
            if (parse_num(optarg, "--duration", 0.001, 1e9, &d) < 0) return -1;
            o->duration = d;
            break;
        case 'C':
            if (parse_int(optarg, "--count", 1, 1e15, &u) < 0) return -1;
            o->count = u;
            break;
        case 't':
            if (strcmp(optarg, "direct") && strcmp(optarg, "fanout") &&
                strcmp(optarg, "topic") && strcmp(optarg, "headers")) {
                fprintf(stderr, "coney-perf: unknown exchange type %s\n", optarg);
                return -1;
            }
            o->exchange_type = optarg;
            break;
        case 'e': o->exchange = optarg; break;
        case OPT_QUEUES:
            if (parse_int(optarg, "--queues", 1, 4096, &u) < 0) return -1;
            o->queues = (int)u;
            queues_set = 1;
            break;
        case OPT_QUEUE:
            if (nnames == 4096) {
                fprintf(stderr, "coney-perf: too many --queue\n");
                return -1;
            }
            names[nnames++] = optarg;
            break;
        case OPT_QUEUE_PREFIX: o->queue_prefix = optarg; break;
        case OPT_QUEUE_ARG: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || o->nqargs == 64) {
                fprintf(stderr, "coney-perf: --queue-arg wants KEY=VALUE\n");
                return -1;
            }
            *eq = '\0';
            qargs[o->nqargs++] = (perf_qarg){optarg, eq + 1};
            break;
        }
        case 'f':
            if (!strcmp(optarg, "persistent")) {
                o->persistent = 1;
            } else if (!strcmp(optarg, "mandatory")) {
                o->mandatory = 1;
            } else {
                fprintf(stderr, "coney-perf: unknown flag %s\n", optarg);
                return -1;
            }
            break;
        case OPT_PERSISTENT: o->persistent = 1; break;
        case OPT_MANDATORY: o->mandatory = 1; break;
        case 'c':
            if (parse_int(optarg, "--confirm", 0, 1 << 24, &u) < 0) return -1;
            o->confirm = (unsigned)u;
            break;
        case 'q':
            if (parse_int(optarg, "--prefetch", 0, 65535, &u) < 0) return -1;
            o->prefetch = (unsigned)u;
            break;
        case 'a': o->auto_ack = 1; break;
        case OPT_MULTI_ACK:
            if (parse_int(optarg, "--multiple-ack-every", 1, 1 << 24, &u) < 0)
                return -1;
            o->multi_ack = (unsigned)u;
            break;
        case 'r':
            if (parse_num(optarg, "--rate", 0, 1e9, &d) < 0) return -1;
            o->rate = d;
            break;
        case OPT_INTERVAL:
            if (parse_num(optarg, "--interval", 0, 1e6, &d) < 0) return -1;
            o->interval = d;
            break;
        case OPT_JSON: o->json = 1; break;
        case OPT_KEEP: o->keep = 1; break;
        case OPT_PREDECLARED: o->predeclared = 1; break;
        case OPT_DRAIN_TIMEOUT:
            if (parse_num(optarg, "--drain-timeout", 0.1, 1e6, &d) < 0)
                return -1;
            o->drain_timeout = d;
            break;
        case OPT_WRITE_BATCH:
            if (parse_int(optarg, "--write-batch", 1, 1 << 20, &u) < 0)
                return -1;
            o->write_batch = (unsigned)u;
            break;
        case OPT_PACE_US:
            if (parse_int(optarg, "--pace-us", 0, 1000000, &u) < 0)
                return -1;
            o->pace_us = (unsigned)u;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "coney-perf: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (nnames > 0) {
        if (queues_set && o->queues != nnames) {
            fprintf(stderr, "coney-perf: --queues %d but %d --queue names\n",
                    o->queues, nnames);
            return -1;
        }
        o->queues = nnames;
        o->queue_names = names;
    }
    if (!o->exchange) {
        static char ex[64];
        snprintf(ex, sizeof ex, "coney-perf-%s", o->exchange_type);
        o->exchange = ex;
    }
    if (!*o->exchange && strcmp(o->exchange_type, "direct")) {
        fprintf(stderr, "coney-perf: the default exchange is direct\n");
        return -1;
    }
    if (o->producers == 0 && o->consumers == 0) {
        fprintf(stderr, "coney-perf: nothing to do with -x 0 -y 0\n");
        return -1;
    }
    if (!o->auto_ack && o->prefetch > 0 && o->multi_ack > o->prefetch) {
        fprintf(stderr, "coney-perf: --multiple-ack-every %u exceeds the "
                "prefetch; using %u\n", o->multi_ack, o->prefetch);
        o->multi_ack = o->prefetch;
    }
    return 0;
}

/* ---- topology -------------------------------------------------------- */

/* Generated names live until exit; freed then so leak checkers stay quiet. */
static const char **generated_names;
static int generated_count;

static void
free_generated_names(void)
{
    for (int i = 0; i < generated_count; i++)
        free((char *)generated_names[i]);
    free(generated_names);
}

static void
make_queue_names(perf_opts *o)
{
    if (o->queue_names)
        return;
    const char **names = calloc((size_t)o->queues, sizeof *names);
    char prefix[128];
    if (o->queue_prefix)
        snprintf(prefix, sizeof prefix, "%s", o->queue_prefix);
    else
        snprintf(prefix, sizeof prefix, "coney-perf-%d", (int)getpid());
    for (int i = 0; i < o->queues; i++) {
        char buf[160];
        snprintf(buf, sizeof buf, "%s-%d", prefix, i + 1);
        names[i] = strdup(buf);
    }
    o->queue_names = names;
    generated_names = names;
    generated_count = o->queues;
    atexit(free_generated_names);
}

static int
check_reply(amqp_connection_state_t conn, const char *what, const char *name)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char why[384];
    fprintf(stderr, "coney-perf: %s %s: %s\n", what, name,
            perf_reply_str(r, why, sizeof why));
    return -1;
}

static int
declare(amqp_connection_state_t conn, const perf_opts *o)
{
    const char *type = o->exchange_type;
    if (*o->exchange && strncmp(o->exchange, "amq.", 4)) {
        amqp_exchange_declare(conn, 1, amqp_cstring_bytes(o->exchange),
                              amqp_cstring_bytes(type), 0, 1, 0, 0,
                              amqp_empty_table);
        if (check_reply(conn, "exchange.declare", o->exchange) < 0)
            return -1;
    }
    amqp_table_entry_t qa[64];
    for (int i = 0; i < o->nqargs; i++) {
        const char *v = o->qargs[i].value;
        char *end;
        long long n = strtoll(v, &end, 10);
        qa[i].key = amqp_cstring_bytes(o->qargs[i].key);
        if (*v && !*end) {
            qa[i].value.kind = AMQP_FIELD_KIND_I64;
            qa[i].value.value.i64 = n;
        } else {
            qa[i].value.kind = AMQP_FIELD_KIND_UTF8;
            qa[i].value.value.bytes = amqp_cstring_bytes(v);
        }
    }
    amqp_table_t qargs = {.num_entries = o->nqargs, .entries = qa};
    for (int i = 0; i < o->queues; i++) {
        const char *q = o->queue_names[i];
        amqp_queue_declare(conn, 1, amqp_cstring_bytes(q), 0, o->persistent,
                           0, 0, qargs);
        if (check_reply(conn, "queue.declare", q) < 0)
            return -1;
        if (!*o->exchange)
            continue;
        char key[512];
        amqp_table_entry_t match[2] = {
            {.key = amqp_cstring_bytes("x-match"),
             .value = {.kind = AMQP_FIELD_KIND_UTF8,
                       .value.bytes = amqp_cstring_bytes("all")}},
            {.key = amqp_cstring_bytes("coney-perf-queue"),
             .value = {.kind = AMQP_FIELD_KIND_UTF8,
                       .value.bytes = amqp_cstring_bytes(q)}},
        };
        amqp_table_t bargs = amqp_empty_table;
        if (!strcmp(type, "direct")) {
            snprintf(key, sizeof key, "%s", q);
        } else if (!strcmp(type, "topic")) {
            snprintf(key, sizeof key, "%s.*", q);
        } else {
            key[0] = '\0';
            if (!strcmp(type, "headers"))
                bargs = (amqp_table_t){.num_entries = 2, .entries = match};
        }
        amqp_queue_bind(conn, 1, amqp_cstring_bytes(q),
                        amqp_cstring_bytes(o->exchange),
                        amqp_cstring_bytes(key), bargs);
        if (check_reply(conn, "queue.bind", q) < 0)
            return -1;
        amqp_maybe_release_buffers(conn);
    }
    return 0;
}

static void
delete_queues(amqp_connection_state_t conn, const perf_opts *o)
{
    for (int i = 0; i < o->queues; i++) {
        amqp_queue_delete(conn, 1, amqp_cstring_bytes(o->queue_names[i]), 0, 0);
        if (check_reply(conn, "queue.delete", o->queue_names[i]) < 0)
            return;
        amqp_maybe_release_buffers(conn);
    }
}

/* Spread n workers over the queues: with at least as many workers as
 * queues, worker i takes queue i % queues; with fewer, worker i takes every
 * queue q with q % n == i, so every queue has a producer and a consumer. */
static void
assign_queues(const perf_opts *o, int i, int n, const char ***qs, int *nq)
{
    if (n >= o->queues) {
        *qs = &o->queue_names[i % o->queues];
        *nq = 1;
        return;
    }
    const char **list = calloc((size_t)(o->queues / n + 1), sizeof *list);
    int k = 0;
    for (int q = i; q < o->queues; q += n)
        list[k++] = o->queue_names[q];
    *qs = list;
    *nq = k;
}

/* The list assign_queues made, if it made one (it points into queue_names
 * otherwise). */
static void
free_queue_list(const perf_opts *o, const char **qs)
{
    for (int i = 0; qs && i < o->queues; i++)
        if (qs == &o->queue_names[i])
            return;
    free(qs);
}

/* Deliveries the consumers should see when every producer sends `count`:
 * every queue has a consumer, and fanout copies to each queue. */
static uint64_t
expected_deliveries(const perf_opts *o)
{
    if (o->producers == 0)
        return (uint64_t)o->consumers * o->count;
    uint64_t n = (uint64_t)o->producers * o->count;
    if (!strcmp(o->exchange_type, "fanout"))
        n *= (uint64_t)o->queues;
    return n;
}

/* ---- the run --------------------------------------------------------- */

typedef struct totals {
    uint64_t sent, received, confirmed, nacked, returned, lat_sum, lat_n;
} totals;

static totals
sample(perf_producer *ps, int np, perf_consumer *cs, int nc)
{
    totals t = {0};
    for (int i = 0; i < np; i++) {
        t.sent += atomic_load_explicit(&ps[i].sent, memory_order_relaxed);
        t.confirmed += atomic_load_explicit(&ps[i].confirmed, memory_order_relaxed);
        t.nacked += atomic_load_explicit(&ps[i].nacked, memory_order_relaxed);
        t.returned += atomic_load_explicit(&ps[i].returned, memory_order_relaxed);
    }
    for (int i = 0; i < nc; i++) {
        t.received += atomic_load_explicit(&cs[i].received, memory_order_relaxed);
        t.lat_sum += atomic_load_explicit(&cs[i].lat_sum_ns, memory_order_relaxed);
        t.lat_n += atomic_load_explicit(&cs[i].lat_n, memory_order_relaxed);
    }
    return t;
}

static void
sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

static int
start_threads(perf_run *run, perf_producer *ps, perf_consumer *cs)
{
    const perf_opts *o = run->o;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = 0;
    for (int i = 0; i < o->consumers && rc == 0; i++) {
        cs[i].run = run;
        cs[i].id = i;
        assign_queues(o, i, o->consumers, &cs[i].queues, &cs[i].nqueues);
        rc = pthread_create(&cs[i].thread, &attr, perf_consumer_main, &cs[i]);
        if (rc)
            fprintf(stderr, "coney-perf: cannot start consumer %d: %s\n", i + 1,
                    strerror(rc));
    }
    /* Producers start once every consumer is consuming. */
    while (rc == 0 && atomic_load(&run->consumers_ready) < o->consumers &&
           !atomic_load(&run->failed) && !interrupted)
        sleep_ns(1000000);
    for (int i = 0; i < o->producers && rc == 0; i++) {
        ps[i].run = run;
        ps[i].id = i;
        assign_queues(o, i, o->producers, &ps[i].queues, &ps[i].nqueues);
        rc = pthread_create(&ps[i].thread, &attr, perf_producer_main, &ps[i]);
        if (rc)
            fprintf(stderr, "coney-perf: cannot start producer %d: %s\n", i + 1,
                    strerror(rc));
    }
    pthread_attr_destroy(&attr);
    return rc ? -1 : 0;
}

static double
rate_of(uint64_t n, uint64_t first, uint64_t last, double fallback_s)
{
    if (n == 0)
        return 0;
    double s = last > first ? (double)(last - first) / 1e9 : fallback_s;
    return s > 0 ? (double)n / s : 0;
}

static void
print_us(FILE *f, const char *key, const perf_hist *h, double p)
{
    if (h->n == 0)
        fprintf(f, ",\"%s\":null", key);
    else
        fprintf(f, ",\"%s\":%.1f", key,
                (p > 100 ? (double)h->max : (double)perf_hist_percentile(h, p)) /
                    1e3);
}

static void
json_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, ",\"%s\":\"", key);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            fputc('\\', f);
        if ((unsigned char)*v < 0x20)
            fprintf(f, "\\u%04x", *v);
        else
            fputc(*v, f);
    }
    fputc('"', f);
}

int
main(int argc, char **argv)
{
    perf_opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    make_queue_names(&o);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* With both -C and -z, whichever comes first ends the run. */
    perf_run run = {.o = &o, .count_mode = o.count > 0};
    amqp_connection_state_t ctl;
    char err[512];
    if (perf_connect(&o, "coney-perf control", &ctl, err, sizeof err) < 0) {
        fprintf(stderr, "coney-perf: %s\n", err);
        return 1;
    }
    if (!o.predeclared && declare(ctl, &o) < 0) {
        amqp_destroy_connection(ctl);
        return 1;
    }

    perf_producer *ps = calloc((size_t)o.producers + 1, sizeof *ps);
    perf_consumer *cs = calloc((size_t)o.consumers + 1, sizeof *cs);
    if (!ps || !cs) {
        fprintf(stderr, "coney-perf: out of memory\n");
        return 1;
    }
    uint64_t expected = run.count_mode ? expected_deliveries(&o) : 0;

    /* Workers leave the signals to the main thread. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    uint64_t t_start = tool_now_ns();
    int started = start_threads(&run, ps, cs) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started)
        atomic_store(&run.failed, 1);

    /* The clock starts when the producers do. */
    t_start = tool_now_ns();
    uint64_t deadline = o.duration > 0 ? t_start + (uint64_t)(o.duration * 1e9) : 0;
    uint64_t interval_ns = (uint64_t)(o.interval * 1e9);
    uint64_t next_tick = interval_ns ? t_start + interval_ns : UINT64_MAX;
    totals prev = {0};
    uint64_t prev_t = t_start;
    uint64_t last_recv = 0, last_recv_t = t_start;
    int timed_out = 0;

    while (!atomic_load(&run.failed) && !interrupted) {
        uint64_t now = tool_now_ns();
        if (deadline && now >= deadline)
            break;
        if (now >= next_tick) {
            totals t = sample(ps, o.producers, cs, o.consumers);
            double dt = (double)(now - prev_t) / 1e9;
            printf("%7.1fs  sent %9.0f msg/s  received %9.0f msg/s  "
                   "confirmed %9.0f msg/s",
                   (double)(now - t_start) / 1e9,
                   (double)(t.sent - prev.sent) / dt,
                   (double)(t.received - prev.received) / dt,
                   (double)(t.confirmed - prev.confirmed) / dt);
            if (t.lat_n > prev.lat_n)
                printf("  latency mean %.0f us",
                       (double)(t.lat_sum - prev.lat_sum) /
                           (double)(t.lat_n - prev.lat_n) / 1e3);
            printf("\n");
            prev = t;
            prev_t = now;
            next_tick += interval_ns;
            if (next_tick <= now)
                next_tick = now + interval_ns;
        }
        if (run.count_mode &&
            atomic_load(&run.producers_done) >= o.producers) {
            totals t = sample(ps, o.producers, cs, o.consumers);
            if (o.consumers == 0 || t.received >= expected)
                break;
            if (t.received != last_recv) {
                last_recv = t.received;
                last_recv_t = now;
            } else if (now - last_recv_t > (uint64_t)(o.drain_timeout * 1e9)) {
                timed_out = 1;
                break;
            }
        } else if (run.count_mode) {
            last_recv_t = now;
        }
        uint64_t wake = now + 5000000; /* 5 ms: count mode ends promptly */
        if (next_tick < wake)
            wake = next_tick;
        if (deadline && deadline < wake)
            wake = deadline;
        if (wake > now)
            sleep_ns(wake - now);
    }
    atomic_store(&run.stop, 1);
    for (int i = 0; i < o.producers; i++)
        if (ps[i].run)
            pthread_join(ps[i].thread, NULL);
    for (int i = 0; i < o.consumers; i++)
        if (cs[i].run)
            pthread_join(cs[i].thread, NULL);
    int failed = atomic_load(&run.failed);

    /* ---- the report ---- */
    totals t = sample(ps, o.producers, cs, o.consumers);
    perf_hist *lat = malloc(sizeof *lat), *conf = malloc(sizeof *conf);
    perf_hist_init(lat);
    perf_hist_init(conf);
    uint64_t pf = UINT64_MAX, pl = 0, cf = UINT64_MAX, cl = 0, kf = UINT64_MAX,
             kl = 0, writes = 0;
    for (int i = 0; i < o.producers; i++) {
        writes += ps[i].writes;
        perf_hist_merge(conf, &ps[i].conf_hist);
        if (ps[i].first_ns && ps[i].first_ns < pf) pf = ps[i].first_ns;
        if (ps[i].last_ns > pl) pl = ps[i].last_ns;
        if (ps[i].conf_first_ns && ps[i].conf_first_ns < kf) kf = ps[i].conf_first_ns;
        if (ps[i].conf_last_ns > kl) kl = ps[i].conf_last_ns;
    }
    for (int i = 0; i < o.consumers; i++) {
        perf_hist_merge(lat, &cs[i].hist);
        if (cs[i].first_ns && cs[i].first_ns < cf) cf = cs[i].first_ns;
        if (cs[i].last_ns > cl) cl = cs[i].last_ns;
    }
    uint64_t first = pf < cf ? pf : cf;
    uint64_t last = pl > cl ? pl : cl;
    if (kl > last) last = kl;
    double seconds = first != UINT64_MAX && last > first
                         ? (double)(last - first) / 1e9
                         : (double)(tool_now_ns() - t_start) / 1e9;
    /* Each rate runs from the first message stamped (or, consuming a
     * filled queue, the first received) to its own last event. */
    double sent_rate = rate_of(t.sent, pf, pl, seconds);
    double recv_rate = rate_of(t.received, pf < cf ? pf : cf, cl, seconds);
    double conf_rate = rate_of(t.confirmed + t.nacked, pf < kf ? pf : kf, kl,
                               seconds);

    printf("coney-perf: %d producer(s), %d consumer(s), %zu B, %s exchange "
           "%s%s%s, %d queue(s), %s%s%s",
           o.producers, o.consumers, o.size, o.exchange_type,
           *o.exchange ? "\"" : "(default)", o.exchange,
           *o.exchange ? "\"" : "", o.queues,
           o.persistent ? "persistent" : "transient",
           o.consumers ? ", " : "",
           !o.consumers ? "" : o.auto_ack ? "auto-ack" : "manual ack");
    if (!o.auto_ack && o.consumers > 0)
        printf(" (prefetch %u, ack every %u)", o.prefetch, o.multi_ack);
    if (o.confirm)
        printf(", confirm window %u", o.confirm);
    if (o.rate > 0)
        printf(", %.0f msg/s per producer", o.rate);
    printf("\n");
    printf("  measured   %.3f s\n", seconds);
    printf("  sent       %12llu msgs  %10.0f msg/s\n",
           (unsigned long long)t.sent, sent_rate);
    printf("  received   %12llu msgs  %10.0f msg/s\n",
           (unsigned long long)t.received, recv_rate);
    if (o.confirm)
        printf("  confirmed  %12llu msgs  %10.0f msg/s  (nacked %llu)\n",
               (unsigned long long)t.confirmed, conf_rate,
               (unsigned long long)t.nacked);
    if (o.mandatory)
        printf("  returned   %12llu msgs\n", (unsigned long long)t.returned);
    if (lat->n)
        printf("  latency    p50 %.1f us  p95 %.1f us  p99 %.1f us  max %.1f us"
               "  (%llu samples)\n",
               perf_hist_percentile(lat, 50) / 1e3,
               perf_hist_percentile(lat, 95) / 1e3,
               perf_hist_percentile(lat, 99) / 1e3, lat->max / 1e3,
               (unsigned long long)lat->n);
    if (conf->n)
        printf("  confirm    p50 %.1f us  p95 %.1f us  p99 %.1f us  max %.1f us\n",
               perf_hist_percentile(conf, 50) / 1e3,
               perf_hist_percentile(conf, 95) / 1e3,
               perf_hist_percentile(conf, 99) / 1e3, conf->max / 1e3);
    if (timed_out) {
        fprintf(stderr, "coney-perf: received %llu of %llu expected deliveries; "
                "nothing more for %.0f s\n", (unsigned long long)t.received,
                (unsigned long long)expected, o.drain_timeout);
        failed = 1;
    }

    if (!o.keep && !o.predeclared)
        delete_queues(ctl, &o);
    perf_disconnect(ctl, 0);

    if (o.json) {
        printf("RESULT {\"ok\":%s", failed ? "false" : "true");
        printf(",\"sent\":%llu,\"received\":%llu,\"confirmed\":%llu"
               ",\"nacked\":%llu,\"returned\":%llu",
               (unsigned long long)t.sent, (unsigned long long)t.received,
               (unsigned long long)t.confirmed, (unsigned long long)t.nacked,
               (unsigned long long)t.returned);
        printf(",\"seconds\":%.3f,\"sent_rate\":%.1f,\"recv_rate\":%.1f"
               ",\"confirm_rate\":%.1f,\"writes\":%llu",
               seconds, sent_rate, recv_rate, conf_rate,
               (unsigned long long)writes);
        print_us(stdout, "p50_us", lat, 50);
        print_us(stdout, "p95_us", lat, 95);
        print_us(stdout, "p99_us", lat, 99);
        print_us(stdout, "max_us", lat, 101);
        printf(",\"latency_samples\":%llu", (unsigned long long)lat->n);
        print_us(stdout, "confirm_p50_us", conf, 50);
        print_us(stdout, "confirm_p99_us", conf, 99);
        json_str(stdout, "host", o.host);
        printf(",\"port\":%d", o.port);
        json_str(stdout, "vhost", o.vhost);
        printf(",\"producers\":%d,\"consumers\":%d,\"size\":%zu",
               o.producers, o.consumers, o.size);
        printf(",\"duration\":%g,\"count\":%llu", o.duration,
               (unsigned long long)o.count);
        json_str(stdout, "exchange_type", o.exchange_type);
        json_str(stdout, "exchange", o.exchange);
        printf(",\"queues\":%d", o.queues);
        json_str(stdout, "queue", o.queue_names[0]);
        printf(",\"persistent\":%s,\"mandatory\":%s,\"confirm\":%u"
               ",\"prefetch\":%u,\"auto_ack\":%s,\"multi_ack_every\":%u"
               ",\"rate\":%g,\"keep\":%s}\n",
               o.persistent ? "true" : "false", o.mandatory ? "true" : "false",
               o.confirm, o.prefetch, o.auto_ack ? "true" : "false",
               o.multi_ack, o.rate, o.keep ? "true" : "false");
    }
    free(lat);
    free(conf);
    for (int i = 0; ps && i < o.producers; i++)
        free_queue_list(&o, ps[i].queues);
    for (int i = 0; cs && i < o.consumers; i++)
        free_queue_list(&o, cs[i].queues);
    free(ps);
    free(cs);
    return failed ? 1 : 0;
}
