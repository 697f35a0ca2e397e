/*
 * Retained messages: the last retained PUBLISH of each topic, per vhost,
 * kept in memory as a broker message and written to the store's retained
 * database so a restart keeps it. A subscription walks them all and
 * matches its filter against each topic: fine for the thousands a broker
 * usually holds; a topic trie can come when someone holds millions.
 *
 * The record (the plugin's blob in the store's retained record),
 * big-endian: u8 version (1), u16 AMQP property flags, u32 length +
 * encoded AMQP properties, u32 length + payload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "plugins/mqtt/session.h"
#include "storage/store.h"

#define RETAIN_REC_VERSION 1

typedef struct retained {
    char *key;                     /* "vhost\0topic", owned */
    uint32_t klen;
    vhost *vh;
    message *m;                    /* one reference */
} retained;

static map all;                    /* key -> retained */

static char *
make_key(vhost *vh, mqtt_str topic, uint32_t *klen)
{
    *klen = vh->name.len + 1 + topic.len;
    char *k = malloc(*klen);
    if (!k)
        abort();
    memcpy(k, vh->name.data, vh->name.len);
    k[vh->name.len] = 0;
    memcpy(k + vh->name.len + 1, topic.p, topic.len);
    return k;
}

static store_bytes
sbytes(const void *p, size_t n)
{
    return (store_bytes){ p, n };
}

static void
save(vhost *vh, mqtt_str topic, const message *m)
{
    if (!B.store || B.recovering)
        return;
    size_t n = 1 + 2 + 4 + m->props_len + 4 + m->body_size;
    uint8_t *rec = malloc(n), *p = rec;
    if (!rec)
        abort();
    *p++ = RETAIN_REC_VERSION;
    amqp_put16(p, m->prop_flags);
    p += 2;
    amqp_put32(p, m->props_len);
    p += 4;
    memcpy(p, m->props, m->props_len);
    p += m->props_len;
    amqp_put32(p, (uint32_t)m->body_size);
    p += 4;
    memcpy(p, m->body, m->body_size);
    store_kv r = { sbytes(vh->name.data, vh->name.len), sbytes(topic.p, topic.len),
                   sbytes(rec, n) };
    store_put_retained(B.store, &r);
    free(rec);
}

void
mqtt_retain_set(vhost *vh, mqtt_str topic, message *m)
{
    uint32_t klen;
    char *k = make_key(vh, topic, &klen);
    retained *r = map_get(&all, k, klen);
    if (m->body_size == 0) {
        /* MQTT-3.3.1-6: an empty retained message clears the topic */
        if (r) {
            map_del(&all, r->key, r->klen);
            message_unref(&r->m);
            free(r->key);
            free(r);
        }
        free(k);
        if (B.store)
            store_del_retained(B.store, sbytes(vh->name.data, vh->name.len),
                               sbytes(topic.p, topic.len));
        return;
    }
    if (r) {
        free(k);
        message_unref(&r->m);
    } else {
        r = calloc(1, sizeof *r);
        if (!r)
            abort();
        r->key = k;
        r->klen = klen;
        r->vh = vh;
        map_put(&all, r->key, r->klen, r);
    }
    r->m = message_ref(m);
    save(vh, topic, m);
}

void
mqtt_retain_each(vhost *vh, mqtt_str filter, void (*fn)(message *m, mqtt_str topic, void *ctx),
                 void *ctx)
{
    for (map_iter it = map_first(&all); it.e; map_next(&all, &it)) {
        retained *r = it.e->value;
        if (r->vh != vh)
            continue;
        mqtt_str topic = { (const uint8_t *)r->key + vh->name.len + 1,
                           r->klen - vh->name.len - 1 };
        if (mqtt_topic_match(filter, topic))
            fn(r->m, topic, ctx);
    }
}

static int
recover_one(const store_kv *kv, void *ctx)
{
    (void)ctx;
    vhost *vh = broker_vhost((amqp_bytes){ (const char *)kv->vhost.data, (uint32_t)kv->vhost.len });
    const uint8_t *p = kv->data.data;
    size_t len = kv->data.len;
    if (!vh || len < 7 || p[0] != RETAIN_REC_VERSION)
        return 0;
    uint16_t flags = amqp_get16(p + 1);
    uint32_t plen = amqp_get32(p + 3);
    if (plen > len - 7 || 4 > len - 7 - plen)
        return 0;
    const uint8_t *props = p + 7;
    uint32_t blen = amqp_get32(props + plen);
    if (blen > len - 11 - plen)
        return 0;
    mqtt_str topic = { kv->name.data, (uint32_t)kv->name.len };
    char *key = malloc(topic.len ? topic.len : 1);
    if (!key)
        abort();
    mqtt_topic_to_amqp(topic.p, topic.len, key);
    message *m = message_new(amqp_cstr(B.cfg.mqtt_exchange), (amqp_bytes){ key, topic.len },
                             flags, props, plen, blen);
    free(key);
    if (!m)
        return 0;
    memcpy(m->body, props + plen + 4, blen);
    m->body_received = blen;
    uint32_t klen;
    retained *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->key = make_key(vh, topic, &klen);
    r->klen = klen;
    r->vh = vh;
    r->m = m;
    retained *old = map_put(&all, r->key, r->klen, r);
    if (old) {
        message_unref(&old->m);
        free(old->key);
        free(old);
    }
    return 0;
}

int
mqtt_retain_recover(char *err, size_t errlen)
{
    if (!B.store)
        return 0;
    store_reader *rd;
    int rc = store_read_begin(B.store, &rd);
    if (rc == 0) {
        rc = store_each_retained(rd, recover_one, NULL);
        store_read_end(rd);
    }
    if (rc != 0) {
        snprintf(err, errlen, "reading retained messages: %s", store_strerror(rc));
        return -1;
    }
    if (all.count)
        log_info("MQTT: %zu retained messages recovered", all.count);
    return 0;
}

void
mqtt_retain_free(void)
{
    for (map_iter it = map_first(&all); it.e; map_next(&all, &it)) {
        retained *r = it.e->value;
        map_del(&all, r->key, r->klen);
        message_unref(&r->m);
        free(r->key);
        free(r);
    }
    map_free(&all);
}
