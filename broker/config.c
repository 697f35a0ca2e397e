#include "broker/config.h"

#include <ctype.h>
#include <errno.h>
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
    c->storage_sync = 0;
    c->storage_sync_interval = 200;
    c->queue_memory_budget = 16u * 1000 * 1000;
    c->disk_free_limit = 50u * 1000 * 1000;
    c->consumer_timeout = 1800000;
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
    snprintf(c->management_bind_addr, sizeof c->management_bind_addr, "0.0.0.0");
    c->management_port = 15672;
    snprintf(c->prometheus_bind_addr, sizeof c->prometheus_bind_addr, "0.0.0.0");
    c->prometheus_port = 15692;
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

/* The management and Prometheus listeners: RabbitMQ's management.tcp.*
 * (and the older management.listener.*) and prometheus.tcp.* keys.
 * Returns 1 when key is not one of them. */
static int
config_set_http(config *c, const char *key, const char *value)
{
    if (strcmp(key, "management.tcp.port") == 0 || strcmp(key, "management.listener.port") == 0)
        return parse_port_or_none(value, &c->management_port);
    if (strcmp(key, "management.tcp.ip") == 0 || strcmp(key, "management.listener.ip") == 0)
        return copy_str(c->management_bind_addr, sizeof c->management_bind_addr, value);
    if (strcmp(key, "prometheus.tcp.port") == 0)
        return parse_port_or_none(value, &c->prometheus_port);
    if (strcmp(key, "management.ssl.port") == 0)
        return parse_port_or_none(value, &c->management_tls_port);
    if (strcmp(key, "management.ssl.ip") == 0)
        return copy_str(c->management_tls_bind_addr, sizeof c->management_tls_bind_addr, value);
    if (strcmp(key, "prometheus.tcp.ip") == 0)
        return copy_str(c->prometheus_bind_addr, sizeof c->prometheus_bind_addr, value);
    return 1;
}

/* The TLS and SASL keys. Returns 1 when key is not one of them. */
static int
config_set_tls(config *c, const char *key, const char *value)
{
    if (strcmp(key, "listeners.ssl") == 0) {
        if (strcmp(value, "none") != 0) return -1;
        c->tls_port = 0;
    } else if (strncmp(key, "listeners.ssl.", 14) == 0) {
        return parse_listener(c->tls_bind_addr, &c->tls_port, value);
    } else if (strcmp(key, "mqtt.listeners.ssl") == 0) {
        if (strcmp(value, "none") != 0) return -1;
        c->mqtt_tls_port = 0;
    } else if (strncmp(key, "mqtt.listeners.ssl.", 19) == 0) {
        return parse_listener(c->mqtt_tls_bind_addr, &c->mqtt_tls_port, value);
    } else if (strcmp(key, "ssl_options.cacertfile") == 0) {
        return copy_str(c->tls_cacertfile, sizeof c->tls_cacertfile, value);
    } else if (strcmp(key, "ssl_options.certfile") == 0) {
        return copy_str(c->tls_certfile, sizeof c->tls_certfile, value);
    } else if (strcmp(key, "ssl_options.keyfile") == 0) {
        return copy_str(c->tls_keyfile, sizeof c->tls_keyfile, value);
    } else if (strcmp(key, "ssl_options.verify") == 0) {
        if (strcmp(value, "verify_peer") == 0) c->tls_verify_peer = true;
        else if (strcmp(value, "verify_none") == 0) c->tls_verify_peer = false;
        else return -1;
    } else if (strcmp(key, "ssl_options.fail_if_no_peer_cert") == 0) {
        return parse_bool(value, &c->tls_fail_if_no_peer_cert);
    } else if (strncmp(key, "ssl_options.versions.", 21) == 0) {
        /* TLS 1.2 and 1.3 only: older versions are refused, not ignored */
        unsigned v = strcmp(value, "tlsv1.2") == 0 ? CONFIG_TLS_1_2
                   : strcmp(value, "tlsv1.3") == 0 ? CONFIG_TLS_1_3 : 0;
        if (!v) return -1;
        if (!c->tls_versions_set) c->tls_versions = 0;
        c->tls_versions_set = true;
        c->tls_versions |= v;
    } else if (strncmp(key, "ssl_options.ciphers.", 20) == 0) {
        return list_add(c->tls_ciphers, sizeof c->tls_ciphers, ':', value);
    } else if (strcmp(key, "ssl_cert_login_from") == 0) {
        if (strcmp(value, "common_name") == 0) c->tls_login_from = CONFIG_LOGIN_COMMON_NAME;
        else if (strcmp(value, "subject_alternative_name") == 0) c->tls_login_from = CONFIG_LOGIN_SAN;
        else return -1;
    } else if (strncmp(key, "auth_mechanisms.", 16) == 0) {
        if (strcmp(value, "PLAIN") != 0 && strcmp(value, "AMQPLAIN") != 0 &&
            strcmp(value, "EXTERNAL") != 0)
            return -1;
        if (!c->auth_mechanisms_set) c->auth_mechanisms[0] = 0;
        c->auth_mechanisms_set = true;
        return list_add(c->auth_mechanisms, sizeof c->auth_mechanisms, ' ', value);
    } else if (strcmp(key, "mqtt.ssl_cert_login") == 0) {
        return parse_bool(value, &c->mqtt_ssl_cert_login);
    } else {
        return 1;
    }
    return 0;
}

int
config_set(config *c, const char *key, const char *value, char *err, int errlen)
{
    uint64_t n;
    int rc = 0;
    if (strcmp(key, "listeners.tcp.default") == 0 ||
        strncmp(key, "listeners.tcp.", 14) == 0) {
        rc = parse_listener(c->bind_addr, &c->port, value);
    } else if (strcmp(key, "mqtt.listeners.tcp") == 0) {
        /* RabbitMQ's way to turn a listener off */
        if (strcmp(value, "none") != 0) rc = -1;
        else c->mqtt_port = 0;
    } else if (strncmp(key, "mqtt.listeners.tcp.", 19) == 0) {
        rc = parse_listener(c->mqtt_bind_addr, &c->mqtt_port, value);
    } else if (strcmp(key, "mqtt.allow_anonymous") == 0) {
        rc = parse_bool(value, &c->mqtt_allow_anonymous);
    } else if (strcmp(key, "mqtt.default_user") == 0) {
        rc = copy_str(c->mqtt_default_user, sizeof c->mqtt_default_user, value);
    } else if (strcmp(key, "mqtt.default_pass") == 0) {
        rc = copy_str(c->mqtt_default_pass, sizeof c->mqtt_default_pass, value);
    } else if (strcmp(key, "mqtt.vhost") == 0) {
        rc = copy_str(c->mqtt_vhost, sizeof c->mqtt_vhost, value);
    } else if (strcmp(key, "mqtt.exchange") == 0) {
        rc = copy_str(c->mqtt_exchange, sizeof c->mqtt_exchange, value);
    } else if (strcmp(key, "mqtt.prefetch") == 0) {
        rc = parse_uint(value, 65535, &n);
        if (!rc && n == 0) rc = -1;
        if (!rc) c->mqtt_prefetch = (uint32_t)n;
    } else if (strcmp(key, "mqtt.max_session_expiry_interval_seconds") == 0) {
        if (strcmp(value, "infinity") == 0) {
            c->mqtt_max_session_expiry = UINT32_MAX;
        } else {
            rc = parse_uint(value, UINT32_MAX, &n);
            if (!rc) c->mqtt_max_session_expiry = (uint32_t)n;
        }
    } else if (strcmp(key, "mqtt.max_packet_size_authenticated") == 0) {
        rc = parse_uint(value, 268435455, &n);
        if (!rc && n == 0) rc = -1;
        if (!rc) c->mqtt_max_packet_size = (uint32_t)n;
    } else if (strcmp(key, "mqtt.max_packet_size_unauthenticated") == 0) {
        rc = parse_uint(value, 268435455, &n);
        if (!rc && n == 0) rc = -1;
        if (!rc) c->mqtt_max_packet_size_unauth = (uint32_t)n;
    } else if (strcmp(key, "heartbeat") == 0) {
        rc = parse_uint(value, 65535, &n);
        if (!rc) c->heartbeat = (uint16_t)n;
    } else if (strcmp(key, "frame_max") == 0) {
        rc = parse_uint(value, UINT32_MAX, &n);
        if (!rc && n != 0 && n < 4096) rc = -1;
        if (!rc) c->frame_max = (uint32_t)n;
    } else if (strcmp(key, "channel_max") == 0) {
        rc = parse_uint(value, 65535, &n);
        if (!rc) c->channel_max = (uint16_t)n;
    } else if (strcmp(key, "max_message_size") == 0) {
        rc = parse_uint(value, 536870912, &n);
        if (!rc) c->max_message_size = n;
    } else if (strcmp(key, "default_user") == 0) {
        rc = copy_str(c->default_user, sizeof c->default_user, value);
    } else if (strcmp(key, "default_pass") == 0) {
        rc = copy_str(c->default_pass, sizeof c->default_pass, value);
    } else if (strcmp(key, "default_vhost") == 0) {
        rc = copy_str(c->default_vhost, sizeof c->default_vhost, value);
    } else if (strcmp(key, "loopback_users") == 0) {
        if (strcmp(value, "none") != 0) rc = -1;
        else c->default_user_loopback_only = false;
    } else if (strncmp(key, "loopback_users.", 15) == 0) {
        bool b;
        rc = parse_bool(value, &b);
        if (!rc && strcmp(key + 15, c->default_user) == 0)
            c->default_user_loopback_only = b;
    } else if (strcmp(key, "log.console.level") == 0) {
        int l = log_level_parse(value);
        rc = l < 0 ? -1 : 0;
        if (!rc) c->log_level = l;
    } else if (strcmp(key, "storage.sync") == 0) {
        static const char *const modes[] = { "always", "batch", "none" };
        rc = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(value, modes[i]) == 0) { c->storage_sync = i; rc = 0; }
    } else if (strcmp(key, "storage.sync_interval") == 0) {
        rc = parse_uint(value, 60000, &n);
        if (!rc && n == 0) rc = -1;
        if (!rc) c->storage_sync_interval = (unsigned)n;
    } else if (strcmp(key, "queue_memory_budget") == 0) {
        rc = config_parse_size(value, &c->queue_memory_budget);
    } else if (strcmp(key, "consumer_timeout") == 0) {
        if (strcmp(value, "infinity") == 0 || strcmp(value, "false") == 0)
            c->consumer_timeout = 0;
        else
            rc = parse_uint(value, UINT64_MAX / 2, &c->consumer_timeout);
    } else if (strcmp(key, "disk_free_limit.absolute") == 0) {
        rc = config_parse_size(value, &c->disk_free_limit);
    } else if (strcmp(key, "data_dir") == 0) {
        rc = copy_str(c->data_dir, sizeof c->data_dir, value);
    } else if ((rc = config_set_tls(c, key, value)) <= 0) {
        /* a TLS or SASL key, rc says how it went */
    } else if ((rc = config_set_http(c, key, value)) <= 0) {
        /* a management or Prometheus key */
    } else {
        log_warning("config: unknown key '%s' ignored", key);
        return 0;
    }
    if (rc)
        snprintf(err, (size_t)errlen, "invalid value '%s' for '%s'", value, key);
    return rc;
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
config_load(config *c, const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, (size_t)errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, (size_t)errlen, "%s:%d: expected 'key = value'", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = 0;
        char sub[256];
        if (config_set(c, trim(s), trim(eq + 1), sub, sizeof sub)) {
            snprintf(err, (size_t)errlen, "%s:%d: %s", path, lineno, sub);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}
