/* Broker settings: embedded defaults, then the config file (RabbitMQ's
 * `key = value` format and key names), then command-line flags. */
#ifndef CONEY_BROKER_CONFIG_H
#define CONEY_BROKER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct config {
    char bind_addr[64];            /* "0.0.0.0" unless listeners.tcp.* names one */
    int port;                      /* listeners.tcp.default, 5672 */
    char data_dir[512];            /* ./data */
    uint16_t heartbeat;            /* heartbeat, seconds, 60 */
    uint32_t frame_max;            /* frame_max, 131072 */
    uint16_t channel_max;          /* channel_max, 2047 */
    uint64_t max_message_size;     /* max_message_size, 128 MiB */
    char default_user[128];        /* default_user, guest */
    char default_pass[128];        /* default_pass, guest */
    char default_vhost[128];       /* default_vhost, / */
    bool default_user_loopback_only; /* loopback_users.guest, true */
    int log_level;                 /* log.console.level, info */
    int storage_sync;              /* storage.sync: always (0), batch (1), none (2) */
    unsigned storage_sync_interval;/* storage.sync_interval, ms, 200 */
    uint64_t queue_memory_budget;  /* queue_memory_budget, bytes, 16 MB */
    uint64_t disk_free_limit;      /* disk_free_limit.absolute, bytes, 50 MB */
    uint64_t consumer_timeout;     /* consumer_timeout, ms, 1800000 (30 min); 0 = none */

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

    /* the management plugin (RabbitMQ's management.* and prometheus.* keys) */
    char management_bind_addr[64]; /* management.tcp.ip, 0.0.0.0 */
    int management_port;           /* management.tcp.port, 15672; 0 = none */
    char prometheus_bind_addr[64]; /* prometheus.tcp.ip, 0.0.0.0 */
    int prometheus_port;           /* prometheus.tcp.port, 15692; 0 = none */
    char management_tls_bind_addr[64]; /* management.ssl.ip, 0.0.0.0 */
    int management_tls_port;       /* management.ssl.port (RabbitMQ: 15671); 0 = none */

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

/* Reads a file of `key = value` lines ('#' starts a comment). Unknown keys
 * are logged as warnings and ignored, as RabbitMQ would refuse them but a
 * migrating user would rather start. Returns 0, or -1 with a message in
 * err (bad value, unreadable file). */
int config_load(config *c, const char *path, char *err, int errlen);

/* Applies one key/value; same return convention. */
int config_set(config *c, const char *key, const char *value, char *err,
               int errlen);

#endif
