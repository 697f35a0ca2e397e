/*
 * A queue's x- arguments: what RabbitMQ accepts, its defaults, and its
 * complaint (406 PRECONDITION_FAILED) about a value it would not take,
 * worded as RabbitMQ words it so clients that match on the text still
 * work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

const queue_opts queue_opts_none = {
    .message_ttl = -1, .expires = -1, .max_length = -1, .max_length_bytes = -1,
    .overflow = QO_DROP_HEAD, .consumer_timeout = -1,
};

static void
defaults(queue_opts *o)
{
    *o = queue_opts_none;
}

bool
queue_opts_is_none(const queue_opts *o)
{
    const queue_opts *n = &queue_opts_none;
    return o->message_ttl == n->message_ttl && o->expires == n->expires &&
           o->max_length == n->max_length && o->max_length_bytes == n->max_length_bytes &&
           o->overflow == n->overflow && o->has_overflow == n->has_overflow &&
           o->max_priority == n->max_priority && o->has_dlx == n->has_dlx &&
           o->has_dlrk == n->has_dlrk && o->dlx.len == 0 && o->dlrk.len == 0 &&
           o->single_active == n->single_active && o->consumer_timeout == n->consumer_timeout;
}

static amqp_bytes
dup_bytes(amqp_bytes b)
{
    char *p = malloc(b.len ? b.len : 1);
    if (!p)
        abort();
    memcpy(p, b.data, b.len);
    return (amqp_bytes){ p, b.len };
}

void
queue_opts_free(queue_opts *o)
{
    free((char *)o->dlx.data);
    free((char *)o->dlrk.data);
    o->dlx = o->dlrk = (amqp_bytes){ 0 };
}

/* The error text; returns err for the caller's return. */
static const char *
bad(char *err, size_t cap, const char *key, amqp_bytes q, amqp_bytes vh, const char *what)
{
    snprintf(err, cap, "invalid arg '%s' for queue '%.*s' in vhost '%.*s': %s", key,
             (int)q.len, q.data, (int)vh.len, vh.data, what);
    return err;
}

static bool
is_string(const amqp_value *v)
{
    return v->kind == 'S' || v->kind == 'x';
}

const char *
queue_opts_parse(const amqp_table *args, amqp_bytes qname, amqp_bytes vhname, queue_opts *out,
                 char *err, size_t cap)
{
    defaults(out);
    if (!args)
        return NULL;
    char what[160];
    for (uint32_t i = 0; i < args->n; i++) {
        const amqp_field *f = &args->fields[i];
        const amqp_value *v = &f->value;
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(f->key.len < 63 ? f->key.len : 63), f->key.data);
        int64_t n = 0;
        bool is_int = amqp_value_int(v, &n);
        int64_t *num = NULL;
        int64_t min = 0;
        if (strcmp(key, "x-message-ttl") == 0) {
            num = &out->message_ttl;
        } else if (strcmp(key, "x-expires") == 0) {
            num = &out->expires;
            min = 1;
        } else if (strcmp(key, "x-max-length") == 0) {
            num = &out->max_length;
        } else if (strcmp(key, "x-max-length-bytes") == 0) {
            num = &out->max_length_bytes;
        } else if (strcmp(key, "x-consumer-timeout") == 0) {
            num = &out->consumer_timeout;
        } else if (strcmp(key, "x-max-priority") == 0) {
            if (!is_int)
                return bad(err, cap, key, qname, vhname, "{unacceptable_type,...}");
            if (n < 0) {
                snprintf(what, sizeof what, "{value_negative,%lld}", (long long)n);
                return bad(err, cap, key, qname, vhname, what);
            }
            if (n > 255) {
                snprintf(what, sizeof what, "{max_value_exceeded,%lld}", (long long)n);
                return bad(err, cap, key, qname, vhname, what);
            }
            out->max_priority = (uint8_t)n;
            continue;
        } else if (strcmp(key, "x-overflow") == 0) {
            static const char *const modes[] = { "drop-head", "reject-publish",
                                                 "reject-publish-dlx" };
            bool ok = false;
            for (int k = 0; is_string(v) && k < 3; k++) {
                if (amqp_bytes_eq_cstr(v->v.bytes, modes[k])) {
                    out->overflow = (uint8_t)k;
                    out->has_overflow = true;
                    ok = true;
                }
            }
            if (!ok)
                return bad(err, cap, key, qname, vhname, "invalid_overflow");
            continue;
        } else if (strcmp(key, "x-dead-letter-exchange") == 0 ||
                   strcmp(key, "x-dead-letter-routing-key") == 0) {
            if (!is_string(v))
                return bad(err, cap, key, qname, vhname, "{unacceptable_type,...}");
            bool dlx = strcmp(key, "x-dead-letter-exchange") == 0;
            amqp_bytes *dst = dlx ? &out->dlx : &out->dlrk;
            free((char *)dst->data);
            *dst = dup_bytes(v->v.bytes);
            if (dlx)
                out->has_dlx = true;
            else
                out->has_dlrk = true;
            continue;
        } else if (strcmp(key, "x-single-active-consumer") == 0) {
            if (v->kind != 't')
                return bad(err, cap, key, qname, vhname, "{unacceptable_type,...}");
            out->single_active = v->v.boolean;
            continue;
        } else if (strcmp(key, "x-queue-type") == 0) {
            if (!is_string(v))
                return bad(err, cap, key, qname, vhname, "{unacceptable_type,...}");
            if (amqp_bytes_eq_cstr(v->v.bytes, "classic"))
                continue;
            if (amqp_bytes_eq_cstr(v->v.bytes, "quorum") || amqp_bytes_eq_cstr(v->v.bytes, "stream")) {
                /* Coney has no replicated or stream queues yet */
                snprintf(err, cap, "queue type '%.*s' is not supported by Coney (only 'classic'); "
                         "queue '%.*s' in vhost '%.*s' not declared", (int)v->v.bytes.len,
                         v->v.bytes.data, (int)qname.len, qname.data, (int)vhname.len,
                         vhname.data);
                return err;
            }
            snprintf(what, sizeof what, "{unsupported_type,<<\"%.*s\">>}", (int)v->v.bytes.len,
                     v->v.bytes.data);
            return bad(err, cap, key, qname, vhname, what);
        } else {
            continue;              /* other arguments are kept, not read */
        }
        if (!is_int)
            return bad(err, cap, key, qname, vhname, "{unacceptable_type,...}");
        if (n < min) {
            snprintf(what, sizeof what, n < 0 ? "{value_negative,%lld}" : "{value_zero,%lld}",
                     (long long)n);
            return bad(err, cap, key, qname, vhname, what);
        }
        *num = n;
    }
    if (out->has_dlrk && !out->has_dlx)
        return bad(err, cap, "x-dead-letter-routing-key", qname, vhname,
                   "routing_key_but_no_dlx_defined");
    return NULL;
}
