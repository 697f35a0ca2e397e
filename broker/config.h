/*
 * Broker settings: embedded defaults, then the config file (RabbitMQ's
 * `key = value` format and key names), then CONEY_* environment
 * variables, then command-line flags. Every key is a row of one table in
 * config.c (name, default, how to parse it, what it means); the parser,
 * the environment mapping, `coney --config-keys`, coney.conf.example and
 * docs/configuration.md all follow that table.
 */
#ifndef CONEY_BROKER_CONFIG_H
#define CONEY_BROKER_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

typedef struct config {
    char bind_addr[64];            /* "0.0.0.0" unless listeners.tcp.* names one */
    int port;                      /* listeners.tcp.default, 5672 */
    char data_dir[512];            /* coney.data_dir, ./data */
    uint16_t heartbeat;            /* heartbeat, seconds, 60 */
    uint32_t frame_max;            /* frame_max, 131072 */
    uint16_t channel_max;          /* channel_max, 2047 */
    uint64_t max_message_size;     /* max_message_size, 128 MiB */
    char default_user[128];        /* default_user, guest */
    char default_pass[128];        /* default_pass, guest */
    char default_vhost[128];       /* default_vhost, / */
    bool default_user_loopback_only; /* loopback_users.guest, true */
    int log_level;                 /* log.console.level, info */
    bool log_console;              /* log.console, true */
    char log_file[512];            /* log.file; "" = no log file (log.file = false) */
    int log_file_level;            /* log.file.level, info */
    char load_definitions[512];    /* load_definitions: a definitions file imported at boot */
    double vm_memory_high_watermark; /* vm_memory_high_watermark.relative, 0.4 (stored;
                                      * the memory alarm reads it) */
    uint64_t vm_memory_high_watermark_absolute; /* vm_memory_high_watermark.absolute,
                                                 * bytes; 0 = use the relative one */
    int storage_sync;              /* coney.storage.sync: always (0), batch (1), none (2) */
    unsigned storage_sync_interval;/* coney.storage.sync_interval, ms, 200 */
    uint64_t queue_memory_budget;  /* coney.queue_memory_budget, bytes, 16 MB */
    uint64_t disk_free_limit;      /* disk_free_limit.absolute, bytes, 50 MB */
    uint64_t consumer_timeout;     /* consumer_timeout, ms, 1800000 (30 min); 0 = none */
    uint32_t consumer_max_per_channel; /* consumer_max_per_channel, 4096; 0 = none */
    uint32_t unacked_max_per_channel;  /* coney.unacked_max_per_channel, 65535; 0 = none */
    uint32_t handshake_max_per_ip; /* coney.handshake_max_per_ip: connections from one
                                    * address not yet logged in, 256; 0 = none */
    bool sched_inherit;            /* coney.scheduler_policy: batch (false, the default)
                                    * or inherit (true: the policy it was started with) */

    /* the MQTT plugin (RabbitMQ's mqtt.* keys) */
    char mqtt_bind_addr[64];       /* "0.0.0.0" unless mqtt.listeners.tcp.* names one */
    int mqtt_port;                 /* mqtt.listeners.tcp.default, 1883; 0 = none */
    bool mqtt_allow_anonymous;     /* mqtt.allow_anonymous, true */
    char mqtt_default_user[128];   /* mqtt.default_user, guest */
    char mqtt_default_pass[128];   /* mqtt.default_pass, guest */
    char mqtt_vhost[128];          /* mqtt.vhost, / */
    char mqtt_exchange[256];       /* mqtt.exchange, amq.topic */
    uint32_t mqtt_prefetch;        /* mqtt.prefetch: unacked QoS 1/2 per session, 10 */
    uint32_t mqtt_max_session_expiry; /* mqtt.max_session_expiry_interval_seconds, 86400 */
    uint32_t mqtt_max_packet_size; /* mqtt.max_packet_size_authenticated, 256 MiB - 1 */
    uint32_t mqtt_max_packet_size_unauth; /* mqtt.max_packet_size_unauthenticated, 65536 */
    uint32_t mqtt_max_topic_levels; /* mqtt.max_topic_levels: of a topic name or filter, 200 */

    /* the management plugin (RabbitMQ's management.* and prometheus.* keys) */
    char management_bind_addr[64]; /* management.tcp.ip, 0.0.0.0 */
    int management_port;           /* management.tcp.port, 15672; 0 = none */
    char prometheus_bind_addr[64]; /* prometheus.tcp.ip, 0.0.0.0 */
    int prometheus_port;           /* prometheus.tcp.port, 15692; 0 = none */
    char management_tls_bind_addr[64]; /* management.ssl.ip, 0.0.0.0 */
    int management_tls_port;       /* management.ssl.port (RabbitMQ: 15671); 0 = none */
    uint32_t management_max_body;  /* management.http.max_body_size, bytes, 20000000 */
    uint32_t management_idle_timeout; /* management.tcp.idle_timeout, ms of silence, 120000 */
    uint32_t management_header_timeout; /* coney.management.header_timeout, ms, 10000 */
    uint32_t management_max_conns; /* coney.management.max_connections, 1000 */
    uint32_t management_max_per_ip; /* coney.management.max_connections_per_ip, 100; 0 = any */

    /* TLS (RabbitMQ's ssl_options.* keys; docs/tls.md) and SASL */
    char tls_bind_addr[64];        /* "0.0.0.0" unless listeners.ssl.* names one */
    int tls_port;                  /* listeners.ssl.default; 0 = no AMQP TLS listener */
    char mqtt_tls_bind_addr[64];   /* as mqtt_bind_addr, for mqtt.listeners.ssl.* */
    int mqtt_tls_port;             /* mqtt.listeners.ssl.default; 0 = none */
    char tls_cacertfile[512];      /* ssl_options.cacertfile */
    char tls_certfile[512];        /* ssl_options.certfile */
    char tls_keyfile[512];         /* ssl_options.keyfile */
    bool tls_verify_peer;          /* ssl_options.verify = verify_peer (default verify_none) */
    bool tls_fail_if_no_peer_cert; /* ssl_options.fail_if_no_peer_cert, false */
    unsigned tls_versions;         /* ssl_options.versions.N: CONFIG_TLS_1_2 | CONFIG_TLS_1_3 */
    bool tls_versions_set;         /* a versions.N key replaced the default */
    char tls_ciphers[2048];        /* ssl_options.ciphers.N joined by ':'; "" = OpenSSL's */
    int tls_login_from;            /* ssl_cert_login_from: CONFIG_LOGIN_* */
    char auth_mechanisms[64];      /* auth_mechanisms.N joined by ' ', "PLAIN AMQPLAIN" */
    bool auth_mechanisms_set;      /* an auth_mechanisms.N key replaced the default */
    bool mqtt_ssl_cert_login;      /* mqtt.ssl_cert_login, false */
} config;

#define CONFIG_TLS_1_2 1u
#define CONFIG_TLS_1_3 2u
enum { CONFIG_LOGIN_COMMON_NAME, CONFIG_LOGIN_SAN };

/* "50MB", "1GB", "512kB", "1TiB" or plain bytes, as RabbitMQ reads sizes
 * (k/M/G/T powers of 1000, kiB/MiB/GiB/TiB powers of 1024). */
int config_parse_size(const char *s, uint64_t *out);

void config_defaults(config *c);

/* Reads a file of `key = value` lines ('#' starts a comment) and applies
 * each. Every problem (a line without '=', an unknown key, a bad value)
 * is printed to errs as "path:line: message" and reading goes on, so one
 * run names them all. Returns the number of problems (0: the file is
 * good), or -1 when the file cannot be read (also printed). */
int config_load(config *c, const char *path, FILE *errs);

/* Applies the CONEY_* environment variables that name keys (CONEY_ and
 * the key with "coney." dropped, '.' and '-' as '_', upper case:
 * CONEY_LISTENERS_TCP_DEFAULT, CONEY_STORAGE_SYNC). Other CONEY_*
 * variables are not keys and are left alone. Problems are printed to
 * errs; returns how many. */
int config_load_env(config *c, FILE *errs);

/* Checks that keys agree with each other (a TLS listener has a
 * certificate and key, verify_peer has CAs); prints problems to errs and
 * returns how many. */
int config_check(const config *c, FILE *errs);

/* Applies one key/value. Returns 0, or -1 with a message in err (an
 * unknown key, a bad value). */
int config_set(config *c, const char *key, const char *value, char *err,
               int errlen);

/* The key table as text, one key a line: name, default ("" when unset),
 * environment variable ("" for an alias), an example value (for an unset
 * key), then the meaning, separated by tabs. `coney --config-keys`; the tests hold the example file and the
 * docs to it. */
void config_print_keys(FILE *out);

#endif
