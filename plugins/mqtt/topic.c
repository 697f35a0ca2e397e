/*
 * MQTT topic names and filters: what is valid, how a filter matches, and
 * how both map onto amq.topic keys.
 *
 * The broker routes MQTT through the AMQP topic exchange, so the matcher
 * here is not on the delivery path; it serves retained messages and the
 * tests, and states the spec's rules where routing/ states AMQP's. The
 * mapping swaps the two level separators rather than escaping anything,
 * as RabbitMQ does, so keys stay readable and the same length, and an
 * AMQP client binding "a.*" sees what an MQTT client subscribed to "a/+"
 * sees.
 */
#include <string.h>

#include "plugins/mqtt/mqtt.h"

static bool
has_wildcard(const uint8_t *p, size_t len)
{
    return memchr(p, '+', len) || memchr(p, '#', len);
}

static bool
string_ok(mqtt_str s)
{
    return s.len <= UINT16_MAX && mqtt_utf8_valid(s.p, s.len);
}

int
mqtt_topic_name_check(mqtt_str topic)
{
    if (!string_ok(topic))
        return MQTT_ERR_MALFORMED;
    if (topic.len == 0 || has_wildcard(topic.p, topic.len))
        return MQTT_ERR_TOPIC_NAME;              /* MQTT-4.7.3-1, -3.3.2-2 */
    return MQTT_OK;
}

uint32_t
mqtt_topic_levels(mqtt_str s)
{
    uint32_t n = 1;
    for (uint32_t i = 0; i < s.len; i++)
        n += s.p[i] == '/';
    return n;
}

int
mqtt_topic_filter_check(mqtt_str f)
{
    if (!string_ok(f))
        return MQTT_ERR_MALFORMED;
    if (f.len == 0)
        return MQTT_ERR_TOPIC_FILTER;            /* MQTT-4.7.3-1 */
    for (uint32_t i = 0; i < f.len; i++) {
        uint8_t c = f.p[i];
        if (c != '+' && c != '#')
            continue;
        bool starts_level = i == 0 || f.p[i - 1] == '/';
        bool ends_level = i + 1 == f.len || f.p[i + 1] == '/';
        if (!starts_level || !ends_level)
            return MQTT_ERR_TOPIC_FILTER;        /* MQTT-4.7.1-2, -4.7.1-3 */
        if (c == '#' && i + 1 != f.len)
            return MQTT_ERR_TOPIC_FILTER;        /* MQTT-4.7.1-2 */
    }
    return MQTT_OK;
}

int
mqtt_topic_share_parse(mqtt_str f, mqtt_str *group, mqtt_str *filter)
{
    static const char prefix[] = "$share/";
    const uint32_t plen = sizeof prefix - 1;
    if (f.len < plen || memcmp(f.p, prefix, plen) != 0) {
        *group = (mqtt_str){ f.p, 0 };
        *filter = f;
        return MQTT_OK;
    }
    const uint8_t *name = f.p + plen;
    uint32_t left = f.len - plen;
    const uint8_t *slash = memchr(name, '/', left);
    if (slash == NULL)
        return MQTT_ERR_TOPIC_FILTER;            /* no filter after the group */
    mqtt_str g = { name, (uint32_t)(slash - name) };
    mqtt_str rest = { slash + 1, left - g.len - 1 };
    if (g.len == 0 || has_wildcard(g.p, g.len))
        return MQTT_ERR_TOPIC_FILTER;            /* MQTT-4.8.2-1, -4.8.2-2 */
    int rc = mqtt_topic_filter_check(rest);
    if (rc != MQTT_OK)
        return rc;
    *group = g;
    *filter = rest;
    return MQTT_OK;
}

/* Steps through the '/'-separated levels of a name or filter. A string of
 * n separators has n + 1 levels, empty ones included. */
typedef struct level_iter {
    mqtt_str s;
    uint32_t pos;
    bool done;
} level_iter;

static bool
level_next(level_iter *it, mqtt_str *level)
{
    if (it->done)
        return false;
    uint32_t end = it->pos;
    while (end < it->s.len && it->s.p[end] != '/')
        end++;
    *level = (mqtt_str){ it->s.p + it->pos, end - it->pos };
    if (end == it->s.len)
        it->done = true;
    else
        it->pos = end + 1;
    return true;
}

static bool
level_is(mqtt_str level, char c)
{
    return level.len == 1 && level.p[0] == c;
}

bool
mqtt_topic_match(mqtt_str filter, mqtt_str topic)
{
    /* $SYS and friends stay out of catch-all subscriptions (MQTT-4.7.2-1). */
    if (topic.len > 0 && topic.p[0] == '$' && filter.len > 0 &&
        (filter.p[0] == '#' || filter.p[0] == '+'))
        return false;
    level_iter fi = { filter, 0, filter.len == 0 };
    level_iter ti = { topic, 0, topic.len == 0 };
    for (;;) {
        mqtt_str fl, tl;
        bool have_f = level_next(&fi, &fl);
        bool have_t = level_next(&ti, &tl);
        if (!have_f)
            return !have_t;
        /* '#' also matches the parent: "a/#" matches "a". */
        if (level_is(fl, '#'))
            return true;
        if (!have_t)
            return false;
        if (!level_is(fl, '+') && !mqtt_str_eq(fl, tl))
            return false;
    }
}

static char
swap_separator(uint8_t c)
{
    return c == '/' ? '.' : c == '.' ? '/' : (char)c;
}

void
mqtt_topic_to_amqp(const uint8_t *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = swap_separator(in[i]);
}

void
mqtt_filter_to_amqp(const uint8_t *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = in[i] == '+' ? '*' : swap_separator(in[i]);
}

void
mqtt_topic_from_amqp(const char *in, size_t len, uint8_t *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)swap_separator((uint8_t)in[i]);
}
