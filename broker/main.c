/* coney: command line, configuration, then the loop (server.c). */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/broker.h"
#include "broker/log.h"
#include "broker/server.h"

/* coney.scheduler_policy. With SCHED_BATCH the loop thread's wake-up
 * does not preempt the task on its CPU: a client on the same machine
 * that has just written to us finishes its turn and sleeps, and the
 * deliveries we write then wake its consumer on that CPU too, instead of
 * on an idle one (in a VM a halted vCPU, slow to wake). At 10,000 msg/s
 * this halves the p99 (docs/bench.md). A policy someone chose for
 * us (chrt, systemd's CPUSchedulingPolicy=) is kept. Threads started
 * later (the storage thread) inherit the policy. */
static void
apply_sched_policy(bool inherit)
{
    if (inherit || sched_getscheduler(0) != SCHED_OTHER)
        return;
    struct sched_param sp = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
        log_warning("coney.scheduler_policy = batch not applied: %s", strerror(errno));
}

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: coney [OPTIONS]\n"
            "Coney, an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.\n"
            "\n"
            "Options:\n"
            "  -p, --port PORT       AMQP listener port (default 5672)\n"
            "      --mqtt-port PORT  MQTT listener port (default 1883; 0 = none)\n"
            "      --tls-port PORT   AMQP over TLS listener port (default none; needs\n"
            "                        ssl_options.* in the config file)\n"
            "      --mqtt-tls-port PORT  MQTT over TLS listener port (default none)\n"
            "      --management-port PORT  HTTP management API port (default 15672; 0 = none)\n"
            "      --prometheus-port PORT  Prometheus metrics port (default 15692; 0 = none)\n"
            "  -d, --data-dir DIR    where durable state lives (default ./data)\n"
            "  -c, --config FILE     RabbitMQ-style 'key = value' config file\n"
            "      --validate-config FILE  check FILE (keys, values, lines) and exit:\n"
            "                        0 if it is good, 1 with every problem printed\n"
            "      --config-keys     list every config key: name, default, environment\n"
            "                        variable, meaning (tab-separated) and exit\n"
            "  -l, --log-level LVL   debug, info, warning or error (default info)\n"
            "  -h, --help            show this help and exit\n"
            "  -V, --version         show the version and exit\n"
            "\n"
            "CONEY_* environment variables override the config file (CONEY_ and the key\n"
            "upper-cased, '.' as '_': CONEY_LISTENERS_TCP_DEFAULT); command-line options\n"
            "override both. Defaults: user guest/guest, accepted from loopback addresses\n"
            "only; vhost '/'.\n");
}

/* --validate-config: the file alone (no environment, no flags), checked
 * as a start would check it. */
static int
validate(const char *path)
{
    config c;
    config_defaults(&c);
    int problems = config_load(&c, path, stderr);
    if (problems < 0)
        return 1;
    problems += config_check(&c, stderr);
    if (problems) {
        fprintf(stderr, "coney: %s: %d problem%s\n", path, problems, problems == 1 ? "" : "s");
        return 1;
    }
    printf("coney: %s: ok\n", path);
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "mqtt-port", required_argument, NULL, 'm' },
        { "tls-port", required_argument, NULL, 'T' },
        { "mqtt-tls-port", required_argument, NULL, 'M' },
        { "management-port", required_argument, NULL, 'H' },
        { "prometheus-port", required_argument, NULL, 'P' },
        { "data-dir", required_argument, NULL, 'd' },
        { "config", required_argument, NULL, 'c' },
        { "log-level", required_argument, NULL, 'l' },
        { "validate-config", required_argument, NULL, 'C' },
        { "config-keys", no_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL, *port = NULL, *mqtt_port = NULL, *data_dir = NULL, *level = NULL;
    const char *tls_port = NULL, *mqtt_tls_port = NULL, *mgmt_port = NULL, *prom_port = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "p:d:c:l:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'p': port = optarg; break;
        case 'm': mqtt_port = optarg; break;
        case 'T': tls_port = optarg; break;
        case 'M': mqtt_tls_port = optarg; break;
        case 'H': mgmt_port = optarg; break;
        case 'P': prom_port = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'c': config_path = optarg; break;
        case 'l': level = optarg; break;
        case 'C': return validate(optarg);
        case 'K': config_print_keys(stdout); return 0;
        case 'h': usage(stdout); return 0;
        case 'V': printf("coney %s\n", CONEY_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "coney: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    config_defaults(&B.cfg);
    char err[512];
    int problems = config_path ? config_load(&B.cfg, config_path, stderr) : 0;
    if (problems != 0) {
        if (problems > 0)
            fprintf(stderr, "coney: not starting: %d problem%s in %s\n", problems,
                    problems == 1 ? "" : "s", config_path);
        return 2;
    }
    if ((problems = config_load_env(&B.cfg, stderr)) != 0) {
        fprintf(stderr, "coney: not starting: %d problem%s in CONEY_* environment variables\n",
                problems, problems == 1 ? "" : "s");
        return 2;
    }
    if ((port && config_set(&B.cfg, "listeners.tcp.default", port, err, sizeof err)) ||
        (mqtt_port && config_set(&B.cfg, "mqtt.listeners.tcp.default", mqtt_port, err, sizeof err)) ||
        (tls_port && config_set(&B.cfg, "listeners.ssl.default", tls_port, err, sizeof err)) ||
        (mqtt_tls_port && config_set(&B.cfg, "mqtt.listeners.ssl.default", mqtt_tls_port, err, sizeof err)) ||
        (mgmt_port && config_set(&B.cfg, "management.tcp.port", mgmt_port, err, sizeof err)) ||
        (prom_port && config_set(&B.cfg, "prometheus.tcp.port", prom_port, err, sizeof err)) ||
        (data_dir && config_set(&B.cfg, "data_dir", data_dir, err, sizeof err)) ||
        (level && config_set(&B.cfg, "log.console.level", level, err, sizeof err))) {
        fprintf(stderr, "coney: %s\n", err);
        return 2;
    }
    if (config_check(&B.cfg, stderr) != 0)
        return 2;
    log_set_level((enum log_level)B.cfg.log_level);
    log_set_console(B.cfg.log_console);
    if (B.cfg.log_file[0] &&
        log_open_file(B.cfg.log_file, (enum log_level)B.cfg.log_file_level) != 0) {
        fprintf(stderr, "coney: cannot open log.file %s: %s\n", B.cfg.log_file, strerror(errno));
        return 2;
    }
    if (mkdir(B.cfg.data_dir, 0755) < 0) {
        struct stat st;
        if (stat(B.cfg.data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            log_error("cannot create data directory %s", B.cfg.data_dir);
            return 1;
        }
    }
    apply_sched_policy(B.cfg.sched_inherit);
    int rc = server_run();
    log_close();
    return rc;
}
