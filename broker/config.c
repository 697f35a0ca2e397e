#include "broker/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/log.h"

void
config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->bind_addr, sizeof c->bind_addr, "0.0.0.0");
    c->port = 5672;
    snprintf(c->data_dir, sizeof c->data_dir, "./data");
    c->heartbeat = 60;
    c->frame_max = 131072;
    c->channel_max = 2047;
    c->max_message_size = 134217728;
    snprintf(c->default_user, sizeof c->default_user, "guest");
    snprintf(c->default_pass, sizeof c->default_pass, "guest");
    snprintf(c->default_vhost, sizeof c->default_vhost, "/");
    c->default_user_loopback_only = true;
    c->log_level = LOG_INFO;
    c->log_console = true;
    c->log_file_level = LOG_INFO;
    c->vm_memory_high_watermark = 0.4;
    c->storage_sync = 0;
    c->storage_sync_interval = 200;
    c->queue_memory_budget = 16u * 1000 * 1000;
    c->disk_free_limit = 50u * 1000 * 1000;
    c->consumer_timeout = 1800000;
    c->consumer_max_per_channel = 4096;
    c->unacked_max_per_channel = 65535;
    c->handshake_max_per_ip = 256;
    snprintf(c->mqtt_bind_addr, sizeof c->mqtt_bind_addr, "0.0.0.0");
    c->mqtt_port = 1883;
    c->mqtt_allow_anonymous = true;
    snprintf(c->mqtt_default_user, sizeof c->mqtt_default_user, "guest");
    snprintf(c->mqtt_default_pass, sizeof c->mqtt_default_pass, "guest");
    snprintf(c->mqtt_vhost, sizeof c->mqtt_vhost, "/");
    snprintf(c->mqtt_exchange, sizeof c->mqtt_exchange, "amq.topic");
    c->mqtt_prefetch = 10;
    c->mqtt_max_session_expiry = 86400;
    c->mqtt_max_packet_size = 268435455;
    c->mqtt_max_packet_size_unauth = 65536;
    c->mqtt_max_topic_levels = 200;
    snprintf(c->management_bind_addr, sizeof c->management_bind_addr, "0.0.0.0");
    c->management_port = 15672;
    snprintf(c->prometheus_bind_addr, sizeof c->prometheus_bind_addr, "0.0.0.0");
    c->prometheus_port = 15692;
    c->management_max_body = 20000000;
    c->management_idle_timeout = 120000;
    c->management_header_timeout = 10000;
    c->management_max_conns = 1000;
    c->management_max_per_ip = 100;
    snprintf(c->management_tls_bind_addr, sizeof c->management_tls_bind_addr, "0.0.0.0");
    snprintf(c->tls_bind_addr, sizeof c->tls_bind_addr, "0.0.0.0");
    snprintf(c->mqtt_tls_bind_addr, sizeof c->mqtt_tls_bind_addr, "0.0.0.0");
    c->tls_versions = CONFIG_TLS_1_2 | CONFIG_TLS_1_3;
    snprintf(c->auth_mechanisms, sizeof c->auth_mechanisms, "PLAIN AMQPLAIN");
}

int
config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    static const struct { const char *suffix; uint64_t mult; } units[] = {
        { "", 1 }, { "b", 1 },
        { "k", 1000ull }, { "kb", 1000ull }, { "kib", 1024ull },
        { "m", 1000000ull }, { "mb", 1000000ull }, { "mib", 1048576ull },
        { "g", 1000000000ull }, { "gb", 1000000000ull }, { "gib", 1073741824ull },
        { "t", 1000000000000ull }, { "tb", 1000000000000ull }, { "tib", 1099511627776ull },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return -1;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

static int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0) { *out = true; return 0; }
    if (strcmp(s, "false") == 0) { *out = false; return 0; }
    return -1;
}

/* "5672", "127.0.0.1:5672" or ":::5672" as RabbitMQ's listeners accept;
 * addr has 64 bytes. */
static int
parse_listener(char *addr, int *port_out, const char *v)
{
    const char *colon = strrchr(v, ':');
    uint64_t port;
    if (!colon) {
        if (parse_uint(v, 65535, &port))
            return -1;
        *port_out = (int)port;
        return 0;
    }
    if (parse_uint(colon + 1, 65535, &port))
        return -1;
    size_t hlen = (size_t)(colon - v);
    if (hlen == 0 || hlen >= 64)
        return -1;
    memcpy(addr, v, hlen);
    addr[hlen] = 0;
    if (strcmp(addr, "::") == 0)
        snprintf(addr, 64, "::");
    *port_out = (int)port;
    return 0;
}

static int
copy_str(char *dst, size_t cap, const char *v)
{
    if (strlen(v) >= cap)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* Appends v to a list joined by sep, unless it is there already. */
static int
list_add(char *list, size_t cap, char sep, const char *v)
{
    size_t len = strlen(list), vlen = strlen(v);
    if (vlen == 0 || memchr(v, sep, vlen))
        return -1;
    for (const char *p = list; *p; ) {
        const char *e = strchr(p, sep);
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == vlen && memcmp(p, v, n) == 0)
            return 0;
        p += n + (e != NULL);
    }
    if (len + (len > 0) + vlen >= cap)
        return -1;
    if (len > 0)
        list[len++] = sep;
    memcpy(list + len, v, vlen + 1);
    return 0;
}

/* A port that "none" or 0 turns off. */
static int
parse_port_or_none(const char *v, int *port)
{
    uint64_t n;
    if (strcmp(v, "none") == 0) {
        *port = 0;
        return 0;
    }
    if (parse_uint(v, 65535, &n))
        return -1;
    *port = (int)n;
    return 0;
}

/* ---- the key table ------------------------------------------------------------ */

typedef struct config_key config_key;
typedef int key_setter(config *c, const config_key *k, const char *key, const char *v);

/* How a row's value is parsed and where it goes. */
enum key_type {
    K_STR,                         /* a string into the char array at off */
    K_BOOL,                        /* true or false into the bool at off */
    K_UINT,                        /* min..max into the unsigned field at off (width bytes) */
    K_SIZE,                        /* a size (config_parse_size) into the uint64_t at off */
    K_PORT,                        /* a port, 0 or "none" turning it off, into the int at off */
    K_LISTENER,                    /* port or address:port: address at off, port (int) at off2 */
    K_FN,                          /* set() does it */
};

#define KEY_ANY_SUFFIX 1u          /* "a.b.c" also matches "a.b.<anything>" */

struct config_key {
    const char *name;              /* as written in a file */
    unsigned flags;
    enum key_type type;
    size_t off, off2, width;
    uint64_t min, max;
    key_setter *set;
    const char *alias_of;          /* an older or RabbitMQ-alternative name of that key */
    const char *def;               /* the default as a file would say it; NULL: unset */
    const char *example;           /* for an unset key, a value to show */
    const char *help;
};

#define F(field) offsetof(config, field)
#define W(field) sizeof(((config *)0)->field)
#define STR(field) .type = K_STR, .off = F(field), .width = W(field)
#define BOOLEAN(field) .type = K_BOOL, .off = F(field)
#define UINT(field, lo, hi) .type = K_UINT, .off = F(field), .width = W(field), .min = (lo), \
                            .max = (hi)
#define SIZE(field) .type = K_SIZE, .off = F(field)
#define PORT(field) .type = K_PORT, .off = F(field)
#define LISTENER(addr, port) .type = K_LISTENER, .off = F(addr), .off2 = F(port), \
                             .width = W(addr)
#define FN(fn) .type = K_FN, .set = (fn)
#define ALIAS(name) .alias_of = (name)

static int
set_off_switch(config *c, const config_key *k, const char *key, const char *v)
{
    /* RabbitMQ's way to turn a listener off: listeners.ssl = none */
    (void)key;
    if (strcmp(v, "none") != 0)
        return -1;
    *(int *)((char *)c + k->off) = 0;
    return 0;
}
#define OFF_SWITCH(port) .type = K_FN, .set = set_off_switch, .off = F(port)

static int
set_frame_max(config *c, const config_key *k, const char *key, const char *v)
{
    uint64_t n;
    if (parse_uint(v, UINT32_MAX, &n) || (n != 0 && n < 4096))
        return -1;
    c->frame_max = (uint32_t)n;
    return 0;
}

static int
set_consumer_timeout(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "infinity") == 0 || strcmp(v, "false") == 0) {
        c->consumer_timeout = 0;
        return 0;
    }
    return parse_uint(v, UINT64_MAX / 2, &c->consumer_timeout);
}

static int
set_loopback_none(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "none") != 0)
        return -1;
    c->default_user_loopback_only = false;
    return 0;
}

static int
set_loopback_user(config *c, const config_key *k, const char *key, const char *v)
{
    bool b;
    if (parse_bool(v, &b))
        return -1;
    /* only the default user is limited to loopback; others are accepted */
    if (strcmp(key + strlen("loopback_users."), c->default_user) == 0)
        c->default_user_loopback_only = b;
    return 0;
}

static int
set_level(config *c, const config_key *k, const char *key, const char *v)
{
    int l = log_level_parse(v);
    if (l < 0)
        return -1;
    *(int *)((char *)c + k->off) = l;
    return 0;
}
#define LEVEL(field) .type = K_FN, .set = set_level, .off = F(field)

static int
set_log_file(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "false") == 0) {
        c->log_file[0] = 0;
        return 0;
    }
    if (!*v)
        return -1;
    return copy_str(c->log_file, sizeof c->log_file, v);
}

static int
set_memory_relative(config *c, const config_key *k, const char *key, const char *v)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return -1;
    double d = strtod(v, &end);
    if (errno || *end || d < 0 || d > 1.0)
        return -1;
    c->vm_memory_high_watermark = d;
    return 0;
}

static int
set_sync(config *c, const config_key *k, const char *key, const char *v)
{
    static const char *const modes[] = { "always", "batch", "none" };
    for (int i = 0; i < 3; i++) {
        if (strcmp(v, modes[i]) == 0) {
            c->storage_sync = i;
            return 0;
        }
    }
    return -1;
}

static int
set_sched_policy(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "batch") == 0)
        c->sched_inherit = false;
    else if (strcmp(v, "inherit") == 0)
        c->sched_inherit = true;
    else
        return -1;
    return 0;
}

static int
set_session_expiry(config *c, const config_key *k, const char *key, const char *v)
{
    uint64_t n;
    if (strcmp(v, "infinity") == 0) {
        c->mqtt_max_session_expiry = UINT32_MAX;
        return 0;
    }
    if (parse_uint(v, UINT32_MAX, &n))
        return -1;
    c->mqtt_max_session_expiry = (uint32_t)n;
    return 0;
}

static int
set_verify(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "verify_peer") == 0)
        c->tls_verify_peer = true;
    else if (strcmp(v, "verify_none") == 0)
        c->tls_verify_peer = false;
    else
        return -1;
    return 0;
}

static int
set_tls_version(config *c, const config_key *k, const char *key, const char *v)
{
    /* TLS 1.2 and 1.3 only: older versions are refused, not ignored */
    unsigned bit = strcmp(v, "tlsv1.2") == 0 ? CONFIG_TLS_1_2
                 : strcmp(v, "tlsv1.3") == 0 ? CONFIG_TLS_1_3 : 0;
    if (!bit)
        return -1;
    if (!c->tls_versions_set)
        c->tls_versions = 0;
    c->tls_versions_set = true;
    c->tls_versions |= bit;
    return 0;
}

static int
set_cipher(config *c, const config_key *k, const char *key, const char *v)
{
    return list_add(c->tls_ciphers, sizeof c->tls_ciphers, ':', v);
}

static int
set_login_from(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "common_name") == 0)
        c->tls_login_from = CONFIG_LOGIN_COMMON_NAME;
    else if (strcmp(v, "subject_alternative_name") == 0)
        c->tls_login_from = CONFIG_LOGIN_SAN;
    else
        return -1;
    return 0;
}

static int
set_mechanism(config *c, const config_key *k, const char *key, const char *v)
{
    if (strcmp(v, "PLAIN") != 0 && strcmp(v, "AMQPLAIN") != 0 && strcmp(v, "EXTERNAL") != 0)
        return -1;
    if (!c->auth_mechanisms_set)
        c->auth_mechanisms[0] = 0;
    c->auth_mechanisms_set = true;
    return list_add(c->auth_mechanisms, sizeof c->auth_mechanisms, ' ', v);
}

/* Every key, in the order coney.conf.example and docs/configuration.md
 * present them. RabbitMQ's names wherever RabbitMQ has the setting;
 * Coney's own under "coney.". */
static const config_key keys[] = {
    /* AMQP 0-9-1 */
    { "listeners.tcp.default", KEY_ANY_SUFFIX, LISTENER(bind_addr, port), .def = "5672",
      .help = "AMQP port, or address:port (listeners.tcp.<any name> is the same key)" },
    { "heartbeat", 0, UINT(heartbeat, 0, 65535), .def = "60",
      .help = "heartbeat timeout the server proposes, seconds; 0 turns heartbeats off" },
    { "frame_max", 0, FN(set_frame_max), .def = "131072",
      .help = "largest frame the server accepts, bytes (4096 or more; 0 = no limit)" },
    { "channel_max", 0, UINT(channel_max, 0, 65535), .def = "2047",
      .help = "most channels per connection; 0 = 65535" },
    { "max_message_size", 0, UINT(max_message_size, 0, 536870912), .def = "134217728",
      .help = "largest message body, bytes (at most 512 MiB)" },
    { "consumer_timeout", 0, FN(set_consumer_timeout), .def = "1800000",
      .help = "milliseconds a delivery may stay unacknowledged before its channel is closed; "
              "infinity or false = no limit" },
    { "consumer_max_per_channel", 0, UINT(consumer_max_per_channel, 0, UINT32_MAX), .def = "4096",
      .help = "most consumers on one channel (NOT_ALLOWED past it); 0 = no limit" },
    { "default_user", 0, STR(default_user), .def = "guest",
      .help = "the user created when the store is new" },
    { "default_pass", 0, STR(default_pass), .def = "guest",
      .help = "that user's password" },
    { "default_vhost", 0, STR(default_vhost), .def = "/",
      .help = "the virtual host created when the store is new" },
    { "loopback_users.guest", KEY_ANY_SUFFIX, FN(set_loopback_user), .def = "true",
      .help = "loopback_users.<default user> = false lets the default user in from anywhere" },
    { "loopback_users", 0, FN(set_loopback_none), .example = "none",
      .help = "none: no user is limited to loopback addresses" },
    { "auth_mechanisms.1", KEY_ANY_SUFFIX, FN(set_mechanism), .def = "PLAIN",
      .help = "SASL mechanisms offered, one per auth_mechanisms.<n>: PLAIN, AMQPLAIN, "
              "EXTERNAL (TLS only); setting any replaces the default list" },
    { "auth_mechanisms.2", KEY_ANY_SUFFIX, FN(set_mechanism), .def = "AMQPLAIN",
      .help = "the second mechanism offered" },

    /* resources */
    { "disk_free_limit.absolute", 0, SIZE(disk_free_limit), .def = "50MB",
      .help = "below this much free disk where the data lives, publishers are blocked" },
    { "vm_memory_high_watermark.relative", 0, FN(set_memory_relative), .def = "0.4",
      .help = "memory alarm threshold as a fraction of RAM, 0 to 1: above it publishers are blocked" },
    { "vm_memory_high_watermark.absolute", 0, SIZE(vm_memory_high_watermark_absolute),
      .example = "2GB",
      .help = "memory alarm threshold in bytes, instead of the relative one" },
    { "coney.unacked_max_per_channel", 0, UINT(unacked_max_per_channel, 0, UINT32_MAX),
      .def = "65535",
      .help = "deliveries a channel may hold unacknowledged, whatever its prefetch (0 = no "
              "prefetch): past it the channel's consumers wait for acks and basic.get answers "
              "get-empty; 0 = no limit" },
    { "coney.handshake_max_per_ip", 0, UINT(handshake_max_per_ip, 0, UINT32_MAX), .def = "256",
      .help = "connections (AMQP and MQTT) from one address served before they log in; "
              "more wait, unread, for a turn (10 s at most; 4,096 waiting in all); "
              "0 = no limit" },

    /* definitions */
    { "load_definitions", 0, STR(load_definitions), .example = "/etc/coney/definitions.json",
      .help = "a definitions file (users, vhosts, permissions, queues, exchanges, bindings; "
              "RabbitMQ's JSON format) imported at boot, before the listeners open" },

    /* logging */
    { "log.console", 0, BOOLEAN(log_console), .def = "true",
      .help = "log to standard error" },
    { "log.console.level", 0, LEVEL(log_level), .def = "info",
      .help = "debug, info, warning or error" },
    { "log.file", 0, FN(set_log_file), .def = "false",
      .help = "a log file (appended to; reopened on SIGHUP, rotated to <file>.1 on SIGUSR1); "
              "false = none" },
    { "log.file.level", 0, LEVEL(log_file_level), .def = "info",
      .help = "debug, info, warning or error, for the log file" },

    /* TLS (docs/tls.md) */
    { "listeners.ssl.default", KEY_ANY_SUFFIX, LISTENER(tls_bind_addr, tls_port),
      .example = "5671", .help = "AMQP over TLS port, or address:port; unset = no TLS listener" },
    { "listeners.ssl", 0, OFF_SWITCH(tls_port), .example = "none",
      .help = "none: no AMQP over TLS listener" },
    { "ssl_options.certfile", 0, STR(tls_certfile), .example = "/etc/coney/tls/server.pem",
      .help = "the server's certificate (chain), PEM; needed by a TLS listener" },
    { "ssl_options.keyfile", 0, STR(tls_keyfile), .example = "/etc/coney/tls/server.key",
      .help = "the server certificate's unencrypted private key, PEM" },
    { "ssl_options.cacertfile", 0, STR(tls_cacertfile), .example = "/etc/coney/tls/ca.pem",
      .help = "CAs trusted for client certificates, PEM; needed by verify_peer" },
    { "ssl_options.verify", 0, FN(set_verify), .def = "verify_none",
      .help = "verify_peer asks clients for a certificate and checks it" },
    { "ssl_options.fail_if_no_peer_cert", 0, BOOLEAN(tls_fail_if_no_peer_cert), .def = "false",
      .help = "with verify_peer, true refuses clients without a valid certificate" },
    { "ssl_options.versions.1", KEY_ANY_SUFFIX, FN(set_tls_version), .def = "tlsv1.2",
      .help = "TLS versions served, one per ssl_options.versions.<n>: tlsv1.2, tlsv1.3" },
    { "ssl_options.versions.2", KEY_ANY_SUFFIX, FN(set_tls_version), .def = "tlsv1.3",
      .help = "the second TLS version served" },
    { "ssl_options.ciphers.1", KEY_ANY_SUFFIX, FN(set_cipher), .example = "TLS_AES_256_GCM_SHA384",
      .help = "OpenSSL cipher names, one per ssl_options.ciphers.<n>; unset = OpenSSL's" },
    { "ssl_cert_login_from", 0, FN(set_login_from), .def = "common_name",
      .help = "what names the user of a certificate login: common_name or "
              "subject_alternative_name" },

    /* MQTT (docs/mqtt.md) */
    { "mqtt.listeners.tcp.default", KEY_ANY_SUFFIX, LISTENER(mqtt_bind_addr, mqtt_port),
      .def = "1883", .help = "MQTT port, or address:port" },
    { "mqtt.listeners.tcp", 0, OFF_SWITCH(mqtt_port), .example = "none",
      .help = "none: no MQTT listener" },
    { "mqtt.listeners.ssl.default", KEY_ANY_SUFFIX, LISTENER(mqtt_tls_bind_addr, mqtt_tls_port),
      .example = "8883", .help = "MQTT over TLS port, or address:port; unset = none" },
    { "mqtt.listeners.ssl", 0, OFF_SWITCH(mqtt_tls_port), .example = "none",
      .help = "none: no MQTT over TLS listener" },
    { "mqtt.allow_anonymous", 0, BOOLEAN(mqtt_allow_anonymous), .def = "true",
      .help = "a client without a user name logs in as mqtt.default_user" },
    { "mqtt.default_user", 0, STR(mqtt_default_user), .def = "guest",
      .help = "the user of anonymous MQTT clients" },
    { "mqtt.default_pass", 0, STR(mqtt_default_pass), .def = "guest",
      .help = "that user's password" },
    { "mqtt.vhost", 0, STR(mqtt_vhost), .def = "/",
      .help = "the vhost of MQTT clients that do not name one" },
    { "mqtt.exchange", 0, STR(mqtt_exchange), .def = "amq.topic",
      .help = "the topic exchange MQTT publishes into and subscribes from" },
    { "mqtt.prefetch", 0, UINT(mqtt_prefetch, 1, 65535), .def = "10",
      .help = "unacknowledged QoS 1 and 2 deliveries per session" },
    { "mqtt.max_session_expiry_interval_seconds", 0, FN(set_session_expiry), .def = "86400",
      .help = "the longest session expiry granted, seconds, or infinity" },
    { "mqtt.max_packet_size_authenticated", 0,
      UINT(mqtt_max_packet_size, 1, 268435455), .def = "268435455",
      .help = "largest MQTT packet after CONNECT, bytes" },
    { "mqtt.max_packet_size_unauthenticated", 0,
      UINT(mqtt_max_packet_size_unauth, 1, 268435455), .def = "65536",
      .help = "largest CONNECT packet, bytes" },
    { "mqtt.max_topic_levels", 0, UINT(mqtt_max_topic_levels, 1, 65535), .def = "200",
      .help = "most '/'-separated levels in a topic name or filter (Mosquitto's limit: 200)" },
    { "mqtt.ssl_cert_login", 0, BOOLEAN(mqtt_ssl_cert_login), .def = "false",
      .help = "an MQTT client with a verified certificate and no user name logs in as the "
              "certificate's user" },

    /* the management plugin (docs/management.md) */
    { "management.tcp.port", 0, PORT(management_port), .def = "15672",
      .help = "HTTP management API and web UI port; 0 or none turns it off" },
    { "management.tcp.ip", 0, STR(management_bind_addr), .def = "0.0.0.0",
      .help = "address the management API listens on" },
    { "management.listener.port", 0, PORT(management_port), ALIAS("management.tcp.port"),
      .def = "15672", .help = "older name of management.tcp.port" },
    { "management.listener.ip", 0, STR(management_bind_addr), ALIAS("management.tcp.ip"),
      .def = "0.0.0.0", .help = "older name of management.tcp.ip" },
    { "management.ssl.port", 0, PORT(management_tls_port), .example = "15671",
      .help = "the management API over HTTPS (with ssl_options.*); unset = none" },
    { "management.ssl.ip", 0, STR(management_tls_bind_addr), .def = "0.0.0.0",
      .help = "address the HTTPS management API listens on" },
    { "management.http.max_body_size", 0, UINT(management_max_body, 1, 1u << 30),
      .def = "20000000", .help = "largest request body the management API reads, bytes; "
      "a larger one gets 413" },
    { "management.tcp.idle_timeout", 0, UINT(management_idle_timeout, 1000, 86400000),
      .def = "120000", .help = "milliseconds an HTTP connection may stay silent before it "
      "is closed (counted in whole seconds)" },
    { "coney.management.header_timeout", 0, UINT(management_header_timeout, 100, 3600000),
      .def = "10000", .help = "milliseconds a TCP client has to finish a request's headers, "
      "from connecting or from its previous response" },
    { "coney.management.max_connections", 0, UINT(management_max_conns, 1, 65535),
      .def = "1000", .help = "most HTTP connections at once on each management listener" },
    { "coney.management.max_connections_per_ip", 0, UINT(management_max_per_ip, 0, 65535),
      .def = "100", .help = "most HTTP connections from one client address on a TCP "
      "listener; 0 = no limit" },
    { "prometheus.tcp.port", 0, PORT(prometheus_port), .def = "15692",
      .help = "Prometheus metrics port; 0 or none turns it off" },
    { "prometheus.tcp.ip", 0, STR(prometheus_bind_addr), .def = "0.0.0.0",
      .help = "address the metrics listen on" },

    /* Coney's own */
    { "coney.data_dir", 0, STR(data_dir), .def = "./data",
      .help = "where durable state (the LMDB store) and coney.sock live" },
    { "data_dir", 0, STR(data_dir), ALIAS("coney.data_dir"), .def = "./data",
      .help = "older name of coney.data_dir" },
    { "coney.storage.sync", 0, FN(set_sync), .def = "always",
      .help = "when commits reach the disk: always, batch or none (see below)" },
    { "storage.sync", 0, FN(set_sync), ALIAS("coney.storage.sync"), .def = "always",
      .help = "older name of coney.storage.sync" },
    { "coney.storage.sync_interval", 0, UINT(storage_sync_interval, 1, 60000), .def = "200",
      .help = "milliseconds between syncs with coney.storage.sync = batch" },
    { "storage.sync_interval", 0, UINT(storage_sync_interval, 1, 60000),
      ALIAS("coney.storage.sync_interval"), .def = "200",
      .help = "older name of coney.storage.sync_interval" },
    { "coney.queue_memory_budget", 0, SIZE(queue_memory_budget), .def = "16MB",
      .help = "message bytes a queue keeps in memory before paging to disk" },
    { "queue_memory_budget", 0, SIZE(queue_memory_budget), ALIAS("coney.queue_memory_budget"),
      .def = "16MB", .help = "older name of coney.queue_memory_budget" },
    { "coney.scheduler_policy", 0, FN(set_sched_policy), .def = "batch",
      .help = "Linux scheduling policy of the broker's threads: batch (waking, they do not "
              "preempt the task on their CPU; applied only over the kernel's default policy) "
              "or inherit (the policy coney was started with)" },
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* The row for key: an exact name first, then a KEY_ANY_SUFFIX row whose
 * name up to its last '.' starts key. NULL if none. */
static const config_key *
key_find(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, key) == 0)
            return &keys[i];
    for (size_t i = 0; i < NKEYS; i++) {
        if (!(keys[i].flags & KEY_ANY_SUFFIX))
            continue;
        size_t stem = (size_t)(strrchr(keys[i].name, '.') - keys[i].name) + 1;
        if (strncmp(keys[i].name, key, stem) == 0 && key[stem])
            return &keys[i];
    }
    return NULL;
}

static int
key_apply(config *c, const config_key *k, const char *key, const char *v)
{
    char *base = (char *)c;
    uint64_t n;
    switch (k->type) {
    case K_STR:
        return copy_str(base + k->off, k->width, v);
    case K_BOOL:
        return parse_bool(v, (bool *)(base + k->off));
    case K_UINT:
        if (parse_uint(v, k->max, &n) || n < k->min)
            return -1;
        if (k->width == 2) *(uint16_t *)(base + k->off) = (uint16_t)n;
        else if (k->width == 4) *(uint32_t *)(base + k->off) = (uint32_t)n;
        else *(uint64_t *)(base + k->off) = n;
        return 0;
    case K_SIZE:
        return config_parse_size(v, (uint64_t *)(base + k->off));
    case K_PORT:
        return parse_port_or_none(v, (int *)(base + k->off));
    case K_LISTENER:
        return parse_listener(base + k->off, (int *)(base + k->off2), v);
    case K_FN:
        return k->set(c, k, key, v);
    }
    return -1;
}

int
config_set(config *c, const char *key, const char *value, char *err, int errlen)
{
    const config_key *k = key_find(key);
    if (!k) {
        snprintf(err, (size_t)errlen, "unknown key '%s'", key);
        return -1;
    }
    if (key_apply(c, k, key, value) != 0) {
        snprintf(err, (size_t)errlen, "invalid value '%s' for key '%s'", value, key);
        return -1;
    }
    return 0;
}

/* CONEY_ and the key without "coney.", '.' and '-' as '_', upper case. */
static void
env_name(const char *key, char *out, size_t cap)
{
    if (strncmp(key, "coney.", 6) == 0)
        key += 6;
    size_t n = (size_t)snprintf(out, cap, "CONEY_");
    for (; *key && n + 1 < cap; key++)
        out[n++] = *key == '.' || *key == '-' ? '_' : (char)toupper((unsigned char)*key);
    out[n] = 0;
}

int
config_load_env(config *c, FILE *errs)
{
    int problems = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].alias_of)
            continue;
        char name[128], err[600];
        env_name(keys[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (!v)
            continue;
        if (config_set(c, keys[i].name, v, err, sizeof err) != 0) {
            fprintf(errs, "coney: environment %s: %s\n", name, err);
            problems++;
        }
    }
    return problems;
}

void
config_print_keys(FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char env[128] = "";
        if (!keys[i].alias_of)
            env_name(keys[i].name, env, sizeof env);
        fprintf(out, "%s\t%s\t%s\t%s\t%s\n", keys[i].name, keys[i].def ? keys[i].def : "",
                env, keys[i].example ? keys[i].example : "", keys[i].help);
    }
}

static char *
trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int
config_load(config *c, const char *path, FILE *errs)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(errs, "coney: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, problems = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            fprintf(errs, "coney: %s:%d: line longer than %zu bytes\n", path, lineno,
                    sizeof line - 2);
            problems++;
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(errs, "coney: %s:%d: expected 'key = value', got '%s'\n", path, lineno, s);
            problems++;
            continue;
        }
        *eq = 0;
        char err[600];
        if (config_set(c, trim(s), trim(eq + 1), err, sizeof err)) {
            fprintf(errs, "coney: %s:%d: %s\n", path, lineno, err);
            problems++;
        }
    }
    fclose(f);
    return problems;
}

int
config_check(const config *c, FILE *errs)
{
    /* what tls_init would refuse, said before anything starts */
    int problems = 0;
    if (!(c->tls_port || c->mqtt_tls_port || c->management_tls_port))
        return 0;
    if (!c->tls_certfile[0] || !c->tls_keyfile[0]) {
        fprintf(errs, "coney: a TLS listener needs ssl_options.certfile and "
                      "ssl_options.keyfile\n");
        problems++;
    }
    if (c->tls_verify_peer && !c->tls_cacertfile[0]) {
        fprintf(errs, "coney: ssl_options.verify = verify_peer needs ssl_options.cacertfile\n");
        problems++;
    }
    return problems;
}
