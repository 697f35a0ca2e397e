/* mqtt-perf.c - coney-mqtt-perf: options, topics, the run, the report.
 *
 * The MQTT sibling of coney-perf. The main thread starts the subscribers,
 * waits until every one has its SUBACK, starts the publishers, prints a
 * progress line every --interval seconds and decides when the run is over:
 * at the end of -z SECONDS, when every publisher has sent (and had
 * acknowledged) its -C MESSAGES and the subscribers have received what was
 * routed to them, on SIGINT/SIGTERM, or on the first error. Then it joins
 * the threads, merges their histograms and prints the totals.
 *
 * Topics: PREFIX/1 .. PREFIX/N (N = --topics, by default the number of
 * publishers). Publishers and subscribers are spread over them as
 * coney-perf spreads workers over queues; with --wildcard every subscriber
 * takes PREFIX/# instead, and so gets every message.
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

#include <mosquitto.h>

#include "mqtt-perf.h"

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    interrupted = 1;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_USER, OPT_PASSWORD, OPT_TOPIC_PREFIX,
    OPT_TOPICS, OPT_WILDCARD, OPT_PACE_US, OPT_KEEPALIVE, OPT_IO,
    OPT_INTERVAL, OPT_JSON, OPT_DRAIN_TIMEOUT, OPT_WRITE_BATCH,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"user", required_argument, NULL, OPT_USER},
    {"password", required_argument, NULL, OPT_PASSWORD},
    {"publishers", required_argument, NULL, 'x'},
    {"subscribers", required_argument, NULL, 'y'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'z'},
    {"count", required_argument, NULL, 'C'},
    {"qos", required_argument, NULL, 'q'},
    {"protocol", required_argument, NULL, 'V'},
    {"topic-prefix", required_argument, NULL, OPT_TOPIC_PREFIX},
    {"topics", required_argument, NULL, OPT_TOPICS},
    {"wildcard", no_argument, NULL, OPT_WILDCARD},
    {"rate", required_argument, NULL, 'r'},
    {"pace-us", required_argument, NULL, OPT_PACE_US},
    {"inflight", required_argument, NULL, 'w'},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"io", required_argument, NULL, OPT_IO},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"json", no_argument, NULL, OPT_JSON},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"write-batch", required_argument, NULL, OPT_WRITE_BATCH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
    fputs(
"usage: coney-mqtt-perf [options]\n"
"Load generator for MQTT brokers (Coney, Mosquitto), on libmosquitto.\n"
"Publishers send messages stamped with their send time; subscribers measure\n"
"the end-to-end latency. Run it on the broker's machine: the clock must be\n"
"shared.\n"
"\n"
"Connection:\n"
"      --host HOST             broker host (127.0.0.1)\n"
"      --port PORT             broker MQTT port (1883)\n"
"      --user USER             user name (none: anonymous)\n"
"      --password PASS         password\n"
"  -V, --protocol 311|5        MQTT 3.1.1 or 5.0 (311)\n"
"      --keepalive SECONDS     keepalive in CONNECT (60)\n"
"Load:\n"
"  -x, --publishers N          publisher threads, one connection each (1)\n"
"  -y, --subscribers N         subscriber threads, one connection each (1)\n"
"  -s, --size BYTES            payload size, at least 8 (16); the first 8\n"
"                              bytes carry the send time\n"
"  -q, --qos 0|1|2             QoS of publishes and subscriptions (0)\n"
"  -w, --inflight N            QoS 1/2: unacknowledged messages per publisher\n"
"                              at most (100; MQTT 5: also the server's\n"
"                              Receive Maximum)\n"
"  -r, --rate N                messages/s per publisher, paced evenly\n"
"                              (0 = as fast as possible)\n"
"      --pace-us N             with -r: bursts at least N us apart (100)\n"
"  -z, --duration SECONDS      stop after this long\n"
"  -C, --count N               messages per publisher, then stop when the\n"
"                              subscribers have them all (-x 0: messages\n"
"                              per subscriber); without -z or -C: until\n"
"                              Ctrl-C\n"
"Topics:\n"
"      --topic-prefix P        topics are P/1 .. P/N (coney-mqtt-perf/PID)\n"
"      --topics N              N topics (the number of publishers); workers\n"
"                              are spread over them round-robin\n"
"      --wildcard              subscribers take P/# (every message)\n"
"Output and mechanics:\n"
"      --interval SECONDS      progress line period (1; 0 = none)\n"
"      --json                  end with a line: RESULT {json}\n"
"      --drain-timeout SECONDS with -C, how long to wait without progress for\n"
"                              acks and deliveries before failing (10)\n"
"      --io raw|lib            raw: after libmosquitto's handshake, write and\n"
"                              read the socket directly, many packets per\n"
"                              call (default); lib: mosquitto_publish and\n"
"                              libmosquitto's read and write calls throughout\n"
"                              (slower)\n"
"      --write-batch N         raw: messages per write() at most (64)\n"
"  -h, --help                  this text\n", f);
}

static int
parse_num(const char *s, const char *opt, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isnan(v) || v < min || v > max) {
        fprintf(stderr, "coney-mqtt-perf: invalid value for %s: %s\n", opt, s);
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
        fprintf(stderr, "coney-mqtt-perf: %s wants an integer: %s\n", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int
parse_opts(int argc, char **argv, mperf_opts *o)
{
    uint64_t u;
    double d;
    *o = (mperf_opts){
        .host = "127.0.0.1", .port = 1883, .publishers = 1, .subscribers = 1,
        .size = 16, .version = 311, .pace_us = 100, .inflight = 100,
        .write_batch = 64, .keepalive = 60, .io = MPERF_IO_RAW, .interval = 1,
        .drain_timeout = 10,
    };
    int c;
    while ((c = getopt_long(argc, argv, "x:y:s:z:C:q:V:r:w:h", long_opts,
                            NULL)) != -1) {
        switch (c) {
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT:
            if (parse_int(optarg, "--port", 1, 65535, &u) < 0) return -1;
            o->port = (int)u;
            break;
        case OPT_USER: o->user = optarg; break;
        case OPT_PASSWORD: o->password = optarg; break;
        case 'x':
            if (parse_int(optarg, "--publishers", 0, 10000, &u) < 0) return -1;
            o->publishers = (int)u;
            break;
        case 'y':
            if (parse_int(optarg, "--subscribers", 0, 10000, &u) < 0) return -1;
            o->subscribers = (int)u;
            break;
        case 's':
            if (parse_int(optarg, "--size", 8, 256 << 20, &u) < 0) return -1;
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
        case 'q':
            if (parse_int(optarg, "--qos", 0, 2, &u) < 0) return -1;
            o->qos = (int)u;
            break;
        case 'V':
            if (!strcmp(optarg, "311") || !strcmp(optarg, "3.1.1") ||
                !strcmp(optarg, "4")) {
                o->version = 311;
            } else if (!strcmp(optarg, "5") || !strcmp(optarg, "5.0")) {
                o->version = 5;
            } else {
                fprintf(stderr, "coney-mqtt-perf: -V takes 311 or 5\n");
                return -1;
            }
            break;
        case OPT_TOPIC_PREFIX: o->topic_prefix = optarg; break;
        case OPT_TOPICS:
            if (parse_int(optarg, "--topics", 1, 100000, &u) < 0) return -1;
            o->topics = (int)u;
            break;
        case OPT_WILDCARD: o->wildcard = 1; break;
        case 'r':
            if (parse_num(optarg, "--rate", 0, 1e9, &d) < 0) return -1;
            o->rate = d;
            break;
        case OPT_PACE_US:
            if (parse_int(optarg, "--pace-us", 0, 1000000, &u) < 0) return -1;
            o->pace_us = (unsigned)u;
            break;
        case 'w':
            if (parse_int(optarg, "--inflight", 1, 65535, &u) < 0) return -1;
            o->inflight = (unsigned)u;
            break;
        case OPT_KEEPALIVE:
            if (parse_int(optarg, "--keepalive", 5, 65535, &u) < 0) return -1;
            o->keepalive = (int)u;
            break;
        case OPT_IO:
            if (!strcmp(optarg, "raw")) {
                o->io = MPERF_IO_RAW;
            } else if (!strcmp(optarg, "lib")) {
                o->io = MPERF_IO_LIB;
            } else {
                fprintf(stderr, "coney-mqtt-perf: --io takes raw or lib\n");
                return -1;
            }
            break;
        case OPT_INTERVAL:
            if (parse_num(optarg, "--interval", 0, 1e6, &d) < 0) return -1;
            o->interval = d;
            break;
        case OPT_JSON: o->json = 1; break;
        case OPT_DRAIN_TIMEOUT:
            if (parse_num(optarg, "--drain-timeout", 0.1, 1e6, &d) < 0) return -1;
            o->drain_timeout = d;
            break;
        case OPT_WRITE_BATCH:
            if (parse_int(optarg, "--write-batch", 1, 1 << 20, &u) < 0) return -1;
            o->write_batch = (unsigned)u;
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
        fprintf(stderr, "coney-mqtt-perf: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->publishers == 0 && o->subscribers == 0) {
        fprintf(stderr, "coney-mqtt-perf: nothing to do with -x 0 -y 0\n");
        return -1;
    }
    if (o->password && !o->user) {
        fprintf(stderr, "coney-mqtt-perf: --password wants --user\n");
        return -1;
    }
    if (!o->topics)
        o->topics = o->publishers > 0 ? o->publishers : 1;
    if (!o->topic_prefix) {
        static char prefix[64];
        snprintf(prefix, sizeof prefix, "coney-mqtt-perf/%d", (int)getpid());
        o->topic_prefix = prefix;
    }
    if (strchr(o->topic_prefix, '#') || strchr(o->topic_prefix, '+')) {
        fprintf(stderr, "coney-mqtt-perf: the topic prefix may hold no wildcard\n");
        return -1;
    }
    return 0;
}

/* ---- topics ---------------------------------------------------------- */

/* Spread n workers over the topics: with at least as many workers as
 * topics, worker i takes topic i % topics; with fewer, worker i takes every
 * topic t with t % n == i. Indexes are 0-based; names are PREFIX/(t+1). */
static int
assign_topics(const mperf_opts *o, mperf_worker *w, int i, int n)
{
    int nt = o->topics;
    int k = n >= nt ? 1 : (nt - i + n - 1) / n;
    w->topics = calloc((size_t)k, sizeof *w->topics);
    if (!w->topics)
        return -1;
    for (int j = 0; j < k; j++) {
        int t = n >= nt ? i % nt : i + j * n;
        size_t len = strlen(o->topic_prefix) + 16;
        if (!(w->topics[j] = malloc(len)))
            return -1;
        snprintf(w->topics[j], len, "%s/%d", o->topic_prefix, t + 1);
        w->ntopics++;
    }
    return 0;
}

static int
wildcard_topic(const mperf_opts *o, mperf_worker *w)
{
    size_t len = strlen(o->topic_prefix) + 3;
    w->topics = calloc(1, sizeof *w->topics);
    if (!w->topics || !(w->topics[0] = malloc(len)))
        return -1;
    snprintf(w->topics[0], len, "%s/#", o->topic_prefix);
    w->ntopics = 1;
    return 0;
}

static void
free_topics(mperf_worker *w)
{
    for (int i = 0; i < w->ntopics; i++)
        free(w->topics[i]);
    free(w->topics);
}

/* The topic index of a name made by assign_topics. */
static int
topic_index(const mperf_opts *o, const char *name)
{
    return atoi(name + strlen(o->topic_prefix) + 1) - 1;
}

/* Deliveries the subscribers should see when every publisher sends
 * `count`: a message reaches every subscriber of its topic. */
static uint64_t
expected_deliveries(const mperf_opts *o, mperf_worker *ps, mperf_worker *ss)
{
    if (o->publishers == 0)
        return (uint64_t)o->subscribers * o->count;
    uint64_t *subs = calloc((size_t)o->topics, sizeof *subs);
    if (!subs)
        return 0;
    for (int j = 0; j < o->subscribers; j++)
        for (int k = 0; k < ss[j].ntopics; k++) {
            if (o->wildcard) {
                for (int t = 0; t < o->topics; t++)
                    subs[t]++;
            } else {
                subs[topic_index(o, ss[j].topics[k])]++;
            }
        }
    uint64_t n = 0;
    for (int i = 0; i < o->publishers; i++) {
        uint64_t nq = (uint64_t)ps[i].ntopics;
        for (uint64_t k = 0; k < nq; k++) {
            uint64_t msgs = o->count / nq + (k < o->count % nq);
            n += msgs * subs[topic_index(o, ps[i].topics[k])];
        }
    }
    free(subs);
    return n;
}

/* ---- the run --------------------------------------------------------- */

typedef struct totals {
    uint64_t sent, acked, rejected, received, lat_sum, lat_n;
} totals;

static totals
sample(mperf_worker *ps, int np, mperf_worker *ss, int ns)
{
    totals t = {0};
    for (int i = 0; i < np; i++) {
        t.sent += atomic_load_explicit(&ps[i].sent, memory_order_relaxed);
        t.acked += atomic_load_explicit(&ps[i].acked, memory_order_relaxed);
        t.rejected += atomic_load_explicit(&ps[i].rejected, memory_order_relaxed);
    }
    for (int i = 0; i < ns; i++) {
        t.received += atomic_load_explicit(&ss[i].received, memory_order_relaxed);
        t.lat_sum += atomic_load_explicit(&ss[i].lat_sum_ns, memory_order_relaxed);
        t.lat_n += atomic_load_explicit(&ss[i].lat_n, memory_order_relaxed);
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
start_threads(mperf_run *run, mperf_worker *ps, mperf_worker *ss)
{
    const mperf_opts *o = run->o;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = 0;
    for (int i = 0; i < o->subscribers && rc == 0; i++) {
        rc = pthread_create(&ss[i].thread, &attr, mperf_subscriber_main, &ss[i]);
        if (rc)
            fprintf(stderr, "coney-mqtt-perf: cannot start subscriber %d: %s\n",
                    i + 1, strerror(rc));
        else
            ss[i].started = 1;
    }
    /* Publishers start once every subscriber has its SUBACK. */
    while (rc == 0 && atomic_load(&run->subscribers_ready) < o->subscribers &&
           !atomic_load(&run->failed) && !interrupted)
        sleep_ns(1000000);
    if (rc == 0 && (atomic_load(&run->failed) || interrupted))
        return 0; /* no publishers: the run is over */
    if (rc == 0)
        printf("ready: %d subscriber(s) subscribed\n", o->subscribers);
    for (int i = 0; i < o->publishers && rc == 0; i++) {
        rc = pthread_create(&ps[i].thread, &attr, mperf_publisher_main, &ps[i]);
        if (rc)
            fprintf(stderr, "coney-mqtt-perf: cannot start publisher %d: %s\n",
                    i + 1, strerror(rc));
        else
            ps[i].started = 1;
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
    mperf_opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 2;

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    mosquitto_lib_init();

    /* With both -C and -z, whichever comes first ends the run. */
    mperf_run run = {.o = &o, .count_mode = o.count > 0};
    mperf_worker *ps = calloc((size_t)o.publishers + 1, sizeof *ps);
    mperf_worker *ss = calloc((size_t)o.subscribers + 1, sizeof *ss);
    if (!ps || !ss) {
        fprintf(stderr, "coney-mqtt-perf: out of memory\n");
        return 1;
    }
    int oom = 0;
    for (int i = 0; i < o.publishers; i++) {
        ps[i].run = &run;
        ps[i].id = i;
        ps[i].publisher = 1;
        oom |= assign_topics(&o, &ps[i], i, o.publishers);
    }
    for (int i = 0; i < o.subscribers; i++) {
        ss[i].run = &run;
        ss[i].id = i;
        oom |= o.wildcard ? wildcard_topic(&o, &ss[i])
                          : assign_topics(&o, &ss[i], i, o.subscribers);
    }
    if (oom) {
        fprintf(stderr, "coney-mqtt-perf: out of memory\n");
        return 1;
    }
    uint64_t expected = run.count_mode ? expected_deliveries(&o, ps, ss) : 0;

    /* Workers leave the signals to the main thread. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int started = start_threads(&run, ps, ss) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started)
        atomic_store(&run.failed, 1);

    /* The clock starts when the publishers do. */
    uint64_t t_start = tool_now_ns();
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
            totals t = sample(ps, o.publishers, ss, o.subscribers);
            double dt = (double)(now - prev_t) / 1e9;
            printf("%7.1fs  sent %9.0f msg/s  received %9.0f msg/s",
                   (double)(now - t_start) / 1e9,
                   (double)(t.sent - prev.sent) / dt,
                   (double)(t.received - prev.received) / dt);
            if (o.qos > 0)
                printf("  acked %9.0f msg/s", (double)(t.acked - prev.acked) / dt);
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
        if (run.count_mode && atomic_load(&run.publishers_done) >= o.publishers) {
            totals t = sample(ps, o.publishers, ss, o.subscribers);
            if (o.subscribers == 0 || t.received >= expected)
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
    for (int i = 0; i < o.publishers; i++)
        if (ps[i].started)
            pthread_join(ps[i].thread, NULL);
    for (int i = 0; i < o.subscribers; i++)
        if (ss[i].started)
            pthread_join(ss[i].thread, NULL);
    int failed = atomic_load(&run.failed);

    /* ---- the report ---- */
    totals t = sample(ps, o.publishers, ss, o.subscribers);
    perf_hist *lat = malloc(sizeof *lat), *ack = malloc(sizeof *ack);
    if (!lat || !ack) {
        fprintf(stderr, "coney-mqtt-perf: out of memory\n");
        return 1;
    }
    perf_hist_init(lat);
    perf_hist_init(ack);
    uint64_t pf = UINT64_MAX, pl = 0, sf = UINT64_MAX, sl = 0, kf = UINT64_MAX,
             kl = 0, writes = 0;
    for (int i = 0; i < o.publishers; i++) {
        writes += ps[i].writes;
        perf_hist_merge(ack, &ps[i].hist);
        if (ps[i].first_ns && ps[i].first_ns < pf) pf = ps[i].first_ns;
        if (ps[i].last_ns > pl) pl = ps[i].last_ns;
        if (ps[i].ack_first_ns && ps[i].ack_first_ns < kf) kf = ps[i].ack_first_ns;
        if (ps[i].ack_last_ns > kl) kl = ps[i].ack_last_ns;
    }
    for (int i = 0; i < o.subscribers; i++) {
        perf_hist_merge(lat, &ss[i].hist);
        if (ss[i].first_ns && ss[i].first_ns < sf) sf = ss[i].first_ns;
        if (ss[i].last_ns > sl) sl = ss[i].last_ns;
    }
    uint64_t first = pf < sf ? pf : sf;
    uint64_t last = pl > sl ? pl : sl;
    if (kl > last) last = kl;
    double seconds = first != UINT64_MAX && last > first
                         ? (double)(last - first) / 1e9
                         : (double)(tool_now_ns() - t_start) / 1e9;
    double sent_rate = rate_of(t.sent, pf, pl, seconds);
    double recv_rate = rate_of(t.received, pf < sf ? pf : sf, sl, seconds);
    double ack_rate = rate_of(t.acked + t.rejected, pf < kf ? pf : kf, kl, seconds);

    printf("coney-mqtt-perf: %d publisher(s), %d subscriber(s)%s, %zu B, QoS %d, "
           "MQTT %s, %d topic(s) under %s/, io %s",
           o.publishers, o.subscribers, o.wildcard ? " on a wildcard" : "",
           o.size, o.qos, o.version == 5 ? "5.0" : "3.1.1", o.topics,
           o.topic_prefix, o.io == MPERF_IO_LIB ? "lib" : "raw");
    if (o.qos > 0)
        printf(", in flight %u", o.inflight);
    if (o.rate > 0)
        printf(", %.0f msg/s per publisher", o.rate);
    printf("\n");
    printf("  measured   %.3f s\n", seconds);
    printf("  sent       %12llu msgs  %10.0f msg/s\n",
           (unsigned long long)t.sent, sent_rate);
    if (o.qos > 0)
        printf("  acked      %12llu msgs  %10.0f msg/s  (refused %llu)\n",
               (unsigned long long)t.acked, ack_rate,
               (unsigned long long)t.rejected);
    printf("  received   %12llu msgs  %10.0f msg/s\n",
           (unsigned long long)t.received, recv_rate);
    if (lat->n)
        printf("  latency    p50 %.1f us  p95 %.1f us  p99 %.1f us  max %.1f us"
               "  (%llu samples)\n",
               perf_hist_percentile(lat, 50) / 1e3,
               perf_hist_percentile(lat, 95) / 1e3,
               perf_hist_percentile(lat, 99) / 1e3, lat->max / 1e3,
               (unsigned long long)lat->n);
    if (ack->n)
        printf("  ack        p50 %.1f us  p95 %.1f us  p99 %.1f us  max %.1f us\n",
               perf_hist_percentile(ack, 50) / 1e3,
               perf_hist_percentile(ack, 95) / 1e3,
               perf_hist_percentile(ack, 99) / 1e3, ack->max / 1e3);
    if (timed_out) {
        fprintf(stderr, "coney-mqtt-perf: received %llu of %llu expected "
                "deliveries; nothing more for %.0f s\n",
                (unsigned long long)t.received, (unsigned long long)expected,
                o.drain_timeout);
        failed = 1;
    }

    if (o.json) {
        printf("RESULT {\"ok\":%s", failed ? "false" : "true");
        printf(",\"sent\":%llu,\"received\":%llu,\"acked\":%llu,\"refused\":%llu",
               (unsigned long long)t.sent, (unsigned long long)t.received,
               (unsigned long long)t.acked, (unsigned long long)t.rejected);
        if (run.count_mode)
            printf(",\"expected\":%llu", (unsigned long long)expected);
        printf(",\"seconds\":%.3f,\"sent_rate\":%.1f,\"recv_rate\":%.1f"
               ",\"ack_rate\":%.1f,\"writes\":%llu",
               seconds, sent_rate, recv_rate, ack_rate,
               (unsigned long long)writes);
        print_us(stdout, "p50_us", lat, 50);
        print_us(stdout, "p95_us", lat, 95);
        print_us(stdout, "p99_us", lat, 99);
        print_us(stdout, "max_us", lat, 101);
        printf(",\"latency_samples\":%llu", (unsigned long long)lat->n);
        print_us(stdout, "ack_p50_us", ack, 50);
        print_us(stdout, "ack_p99_us", ack, 99);
        json_str(stdout, "host", o.host);
        printf(",\"port\":%d,\"protocol\":%d,\"publishers\":%d,\"subscribers\":%d"
               ",\"size\":%zu,\"qos\":%d,\"inflight\":%u",
               o.port, o.version, o.publishers, o.subscribers, o.size, o.qos,
               o.inflight);
        printf(",\"duration\":%g,\"count\":%llu", o.duration,
               (unsigned long long)o.count);
        json_str(stdout, "topic_prefix", o.topic_prefix);
        printf(",\"topics\":%d,\"wildcard\":%s,\"rate\":%g", o.topics,
               o.wildcard ? "true" : "false", o.rate);
        json_str(stdout, "io", o.io == MPERF_IO_LIB ? "lib" : "raw");
        printf("}\n");
    }
    free(lat);
    free(ack);
    for (int i = 0; i < o.publishers; i++)
        free_topics(&ps[i]);
    for (int i = 0; i < o.subscribers; i++)
        free_topics(&ss[i]);
    free(ps);
    free(ss);
    mosquitto_lib_cleanup();
    return failed ? 1 : 0;
}
