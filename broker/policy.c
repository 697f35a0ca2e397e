/*
 * Policies and operator policies, as RabbitMQ applies them.
 *
 * A policy names its objects by a regular expression on their names and
 * by kind (apply-to); of the policies matching an object the one of the
 * highest priority is its policy, and definitions never merge across
 * policies. Operator policies are chosen the same way, separately, and
 * combine with the policy key by key: a number the operator also sets
 * takes the lower of the two, so an operator policy works as a cap.
 *
 * Nothing caches "which policy": an object's options are recomputed from
 * its own arguments and the two definitions whenever its vhost's
 * policies change (and when it is declared or recovered), and the
 * management API asks policy_for when it shows an object. Vhosts hold a
 * handful of policies, so a walk of the list is cheap.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "broker/persist.h"
#include "storage/store.h"

/* ---- definitions: what RabbitMQ accepts ------------------------------------------ */

enum key_check {
    K_NONNEG,                      /* an integer >= 0 */
    K_POSITIVE,                    /* an integer >= 1 */
    K_STRING,                      /* any string */
    K_OVERFLOW,                    /* drop-head, reject-publish, reject-publish-dlx */
    K_QUEUE_MODE,                  /* default, lazy */
    K_HA_MODE,                     /* all, exactly, nodes */
    K_ANY,                         /* accepted as it is */
};

typedef struct key_rule {
    const char *key;
    enum key_check check;
    const char *what;              /* RabbitMQ's "~p is not a valid <what>" */
    bool op;                       /* allowed in operator policies too */
} key_rule;

/* The keys Coney applies, then those it accepts and ignores (mirroring,
 * quorum queue and storage settings RabbitMQ 3.10 validates). Not here,
 * as in RabbitMQ: max-priority, single-active-consumer, queue-type. */
static const key_rule rules[] = {
    { "message-ttl", K_NONNEG, "message TTL", true },
    { "expires", K_POSITIVE, "queue expiry", true },
    { "max-length", K_NONNEG, "maximum length", true },
    { "max-length-bytes", K_NONNEG, "maximum length in bytes", true },
    { "overflow", K_OVERFLOW, "overflow value", false },
    { "dead-letter-exchange", K_STRING, "dead letter exchange name", false },
    { "dead-letter-routing-key", K_STRING, "dead letter routing key", false },
    { "consumer-timeout", K_NONNEG, "consumer timeout", false },
    { "alternate-exchange", K_STRING, "alternate exchange name", false },
    { "queue-mode", K_QUEUE_MODE, "queue-mode value", false },
    { "queue-version", K_ANY, "queue version", false },
    { "queue-master-locator", K_STRING, "queue-master-locator value", false },
    { "delivery-limit", K_NONNEG, "delivery limit", true },
    { "max-in-memory-length", K_NONNEG, "maximum memory length", true },
    { "max-in-memory-bytes", K_NONNEG, "maximum memory in bytes", true },
    { "dead-letter-strategy", K_STRING, "dead letter strategy", false },
    { "ha-mode", K_HA_MODE, "ha-mode value", false },
    { "ha-params", K_ANY, "ha-params value", false },
    { "ha-sync-mode", K_STRING, "ha-sync-mode value", false },
    { "ha-sync-batch-size", K_POSITIVE, "ha-sync-batch-size value", false },
    { "ha-promote-on-shutdown", K_STRING, "ha-promote-on-shutdown value", false },
    { "ha-promote-on-failure", K_STRING, "ha-promote-on-failure value", false },
};

static const key_rule *
rule_of(amqp_bytes key)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (amqp_bytes_eq_cstr(key, rules[i].key))
            return &rules[i];
    return NULL;
}

static bool
is_str(const amqp_value *v)
{
    return v->kind == 'S' || v->kind == 'x';
}

/* A value as Erlang's ~p prints it, roughly: 5, <<"abc">>, true. */
static void
term(const amqp_value *v, char *out, size_t cap)
{
    int64_t n;
    if (is_str(v))
        snprintf(out, cap, "<<\"%.*s\">>", (int)(v->v.bytes.len < 200 ? v->v.bytes.len : 200),
                 v->v.bytes.data);
    else if (amqp_value_int(v, &n))
        snprintf(out, cap, "%lld", (long long)n);
    else if (v->kind == 't')
        snprintf(out, cap, "%s", v->v.boolean ? "true" : "false");
    else if (v->kind == 'd')
        snprintf(out, cap, "%g", v->v.d);
    else
        snprintf(out, cap, "...");
}

static bool
one_of(const amqp_value *v, const char *const *words)
{
    for (; is_str(v) && *words; words++)
        if (amqp_bytes_eq_cstr(v->v.bytes, *words))
            return true;
    return false;
}

static bool
value_ok(const key_rule *r, const amqp_value *v)
{
    static const char *const overflow[] = { "drop-head", "reject-publish", "reject-publish-dlx",
                                            NULL };
    static const char *const modes[] = { "default", "lazy", NULL };
    static const char *const ha[] = { "all", "exactly", "nodes", NULL };
    int64_t n;
    switch (r->check) {
    case K_NONNEG: return v->kind != 't' && amqp_value_int(v, &n) && n >= 0;
    case K_POSITIVE: return v->kind != 't' && amqp_value_int(v, &n) && n >= 1;
    case K_STRING: return is_str(v);
    case K_OVERFLOW: return one_of(v, overflow);
    case K_QUEUE_MODE: return one_of(v, modes);
    case K_HA_MODE: return one_of(v, ha);
    case K_ANY: return true;
    }
    return false;
}

static int __attribute__((format(printf, 3, 4)))
invalid(char *why, size_t cap, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(why, cap, "Validation failed\n\n%s\n", what);
    return -1;
}

/* Checks a decoded definition; 0 or -1 with why. */
static int
check_definition(const amqp_table *t, int which, char *why, size_t cap)
{
    if (t->n == 0)
        return invalid(why, cap, "no policy provided");
    char bad[600] = "", val[240];
    size_t o = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        const amqp_field *f = &t->fields[i];
        const key_rule *r = rule_of(f->key);
        if (!r || (which == POLICY_OPERATOR && !r->op)) {
            term(&f->value, val, sizeof val);
            o += (size_t)snprintf(bad + o, o < sizeof bad ? sizeof bad - o : 0,
                                  "%s{<<\"%.*s\">>,%s}", o ? "," : "",
                                  (int)(f->key.len < 100 ? f->key.len : 100), f->key.data, val);
            if (o >= sizeof bad)
                o = sizeof bad - 1;
            continue;
        }
        if (!value_ok(r, &f->value)) {
            term(&f->value, val, sizeof val);
            return invalid(why, cap, "%s is not a valid %s", val, r->what);
        }
    }
    if (o)
        return invalid(why, cap, "[%s] are not recognised policy settings", bad);
    return 0;
}

static enum policy_apply
apply_of(const char *s)
{
    static const char *const words[] = { "all", "queues", "classic_queues", "exchanges" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, words[i]) == 0)
            return (enum policy_apply)i;
    /* RabbitMQ 3.12's other queue types: valid, and Coney has none */
    if (strcmp(s, "quorum_queues") == 0 || strcmp(s, "streams") == 0)
        return POLICY_OTHER;
    return (enum policy_apply)-1;
}

/* ---- the lists ---------------------------------------------------------------------- */

static void
policy_free(policy *p)
{
    free(p->name);
    free(p->pattern);
    free(p->apply_to);
    free(p->def);
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->re);
    free(p);
}

static char *
str_dup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static bool
matches(const policy *p, enum dest_kind kind, amqp_bytes name)
{
    bool kind_ok = p->apply == POLICY_ALL ||
                   (kind == DEST_QUEUE && (p->apply == POLICY_QUEUES ||
                                           p->apply == POLICY_CLASSIC_QUEUES)) ||
                   (kind == DEST_EXCHANGE && p->apply == POLICY_EXCHANGES);
    return kind_ok && pcre2_match(p->re, (PCRE2_SPTR)name.data, name.len, 0, 0, p->md, NULL) >= 0;
}

const policy *
policy_for(const vhost *vh, int which, enum dest_kind kind, amqp_bytes name)
{
    const policy *best = NULL;
    for (const policy *p = vh->policies[which]; p; p = p->next)
        if ((!best || p->priority > best->priority) && matches(p, kind, name))
            best = p;
    return best;
}

const policy *
policy_find(const vhost *vh, int which, const char *name)
{
    for (const policy *p = vh->policies[which]; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* ---- effective options ------------------------------------------------------------------ */

static bool
decode_def(const policy *p, amqp_table *out, amqp_pool *pool)
{
    size_t off = 0;
    *out = (amqp_table){ 0 };
    return p && amqp_table_decode(p->def, p->def_len, &off, out, pool) == AMQP_OK;
}

void
policy_effective(const policy *p, const policy *op, amqp_table *out, amqp_pool *pool)
{
    amqp_table a, b;
    bool ha = decode_def(p, &a, pool), hb = decode_def(op, &b, pool);
    if (!ha)
        a.n = 0;
    if (!hb)
        b.n = 0;
    out->n = 0;
    out->fields = amqp_pool_alloc(pool, (a.n + b.n + 1) * sizeof *out->fields);
    if (!out->fields)
        abort();
    for (uint32_t i = 0; i < a.n; i++)
        out->fields[out->n++] = a.fields[i];
    for (uint32_t j = 0; j < b.n; j++) {
        const amqp_field *f = &b.fields[j];
        uint32_t i;
        for (i = 0; i < a.n && !amqp_bytes_eq(out->fields[i].key, f->key); i++)
            ;
        if (i == a.n) {
            out->fields[out->n++] = *f;
            continue;
        }
        int64_t x, y;
        if (amqp_value_int(&out->fields[i].value, &x) && amqp_value_int(&f->value, &y) && y < x)
            out->fields[i].value = f->value;
    }
}

static amqp_bytes
bytes_copy(amqp_bytes b)
{
    char *d = malloc(b.len ? b.len : 1);
    if (!d)
        abort();
    memcpy(d, b.data, b.len);
    return (amqp_bytes){ d, b.len };
}

/* The lower of the argument (-1: none) and the policy's value. */
static void
lower(int64_t *opt, const amqp_value *v)
{
    int64_t n;
    if (amqp_value_int(v, &n) && (*opt < 0 || n < *opt))
        *opt = n;
}

void
queue_apply_policies(queue *q)
{
    const queue_opts *a = queue_arg_opts(q);
    queue_opts o = *a;
    o.dlx = a->has_dlx ? bytes_copy(a->dlx) : (amqp_bytes){ 0 };
    o.dlrk = a->has_dlrk ? bytes_copy(a->dlrk) : (amqp_bytes){ 0 };
    const policy *p = policy_for(q->vh, POLICY_USER, DEST_QUEUE, q->name);
    const policy *op = policy_for(q->vh, POLICY_OPERATOR, DEST_QUEUE, q->name);
    amqp_pool pool = { 0 };
    amqp_table def = { 0 };
    if (p || op)
        policy_effective(p, op, &def, &pool);
    for (uint32_t i = 0; i < def.n; i++) {
        amqp_bytes k = def.fields[i].key;
        const amqp_value *v = &def.fields[i].value;
        if (amqp_bytes_eq_cstr(k, "message-ttl"))
            lower(&o.message_ttl, v);
        else if (amqp_bytes_eq_cstr(k, "expires"))
            lower(&o.expires, v);
        else if (amqp_bytes_eq_cstr(k, "max-length"))
            lower(&o.max_length, v);
        else if (amqp_bytes_eq_cstr(k, "max-length-bytes"))
            lower(&o.max_length_bytes, v);
        else if (amqp_bytes_eq_cstr(k, "consumer-timeout"))
            lower(&o.consumer_timeout, v);
        else if (amqp_bytes_eq_cstr(k, "overflow") && !o.has_overflow && is_str(v)) {
            static const char *const modes[] = { "drop-head", "reject-publish",
                                                 "reject-publish-dlx" };
            for (uint8_t m = 0; m < 3; m++)
                if (amqp_bytes_eq_cstr(v->v.bytes, modes[m]))
                    o.overflow = m;
        } else if (amqp_bytes_eq_cstr(k, "dead-letter-exchange") && !o.has_dlx && is_str(v)) {
            o.dlx = bytes_copy(v->v.bytes);
            o.has_dlx = true;
        } else if (amqp_bytes_eq_cstr(k, "dead-letter-routing-key") && !o.has_dlrk &&
                   is_str(v)) {
            o.dlrk = bytes_copy(v->v.bytes);
            o.has_dlrk = true;
        }
    }
    amqp_pool_free(&pool);
    /* a queue nothing asks anything of shares queue_opts_none */
    queue_opts *cur = q->opts != &queue_opts_none ? (queue_opts *)q->opts : NULL;
    if (cur)
        queue_opts_free(cur);
    if (queue_opts_is_none(&o)) {
        queue_opts_free(&o);
        free(cur);
        q->opts = &queue_opts_none;
        return;
    }
    if (!cur && !(cur = malloc(sizeof *cur)))
        abort();
    *cur = o;
    q->opts = cur;
}

void
exchange_apply_policies(exchange *x)
{
    free((char *)x->policy_alternate.data);
    x->policy_alternate = (amqp_bytes){ 0 };
    if (x->name.len == 0)
        return;                    /* the default exchange takes no policy */
    const policy *p = policy_for(x->vh, POLICY_USER, DEST_EXCHANGE, x->name);
    amqp_pool pool = { 0 };
    amqp_table def;
    if (decode_def(p, &def, &pool)) {
        const amqp_value *ae = amqp_table_get(&def, "alternate-exchange");
        if (ae && is_str(ae) && ae->v.bytes.len)
            x->policy_alternate = bytes_copy(ae->v.bytes);
    }
    amqp_pool_free(&pool);
}

/* A policy changed in vh: every queue and exchange takes its options
 * anew, and a queue acts on them at once (messages past a new TTL or
 * over a new length limit go, x-expires starts over with a new value). */
static void
refresh_vhost(vhost *vh)
{
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it))
        exchange_apply_policies(it.e->value);
    for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
        queue *q = it.e->value;
        int64_t expires = q->opts->expires;
        queue_apply_policies(q);
        if (B.recovering)
            continue;
        queue_expire(q);
        queue_enforce_limits(q);
        if (q->opts->expires != expires)
            queue_touch(q);
    }
}

/* ---- changes ------------------------------------------------------------------------ */

static store_bytes
sb(const char *s)
{
    return (store_bytes){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static void
persist_policy(const vhost *vh, int which, const policy *p, const char *name)
{
    if (!B.store || B.recovering)
        return;
    store_bytes v = { (const uint8_t *)vh->name.data, vh->name.len };
    if (p) {
        store_policy r = { v, sb(p->name), sb(p->pattern), sb(p->apply_to), p->priority,
                           { p->def, p->def_len } };
        (which == POLICY_USER ? store_put_policy : store_put_operator_policy)(B.store, &r);
    } else {
        (which == POLICY_USER ? store_del_policy : store_del_operator_policy)(B.store, v,
                                                                              sb(name));
    }
    persist_definition_batch = store_batch_id(B.store);
}

int
policy_set(vhost *vh, int which, const char *name, const char *pattern, const char *apply_to,
           int64_t priority, const uint8_t *def, uint32_t def_len, char *why, size_t cap)
{
    enum policy_apply apply = apply_of(apply_to);
    if ((int)apply < 0)
        return invalid(why, cap, "apply-to '%s' unrecognised; should be 'queues', "
                       "'classic_queues', 'quorum_queues', 'streams', 'exchanges', or 'all'",
                       apply_to);
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return invalid(why, cap, "<<\"%s\">> is not a valid regular expression: %s at %zu",
                       pattern, (char *)msg, (size_t)off);
    }
    amqp_pool pool = { 0 };
    amqp_table t;
    size_t toff = 0;
    int rc = def_len && amqp_table_decode(def, def_len, &toff, &t, &pool) == AMQP_OK
                 ? check_definition(&t, which, why, cap)
                 : invalid(why, cap, "no policy provided");
    amqp_pool_free(&pool);
    if (rc < 0) {
        pcre2_code_free(re);
        return -1;
    }
    policy *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->name = str_dup(name);
    p->pattern = str_dup(pattern);
    p->apply_to = str_dup(apply_to);
    p->apply = apply;
    p->priority = priority;
    p->def = malloc(def_len);
    if (!p->def)
        abort();
    memcpy(p->def, def, def_len);
    p->def_len = def_len;
    p->re = re;
    p->md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!p->md)
        abort();
    /* in the list by name; a policy of the same name is replaced */
    policy **at = &vh->policies[which];
    while (*at && strcmp((*at)->name, name) < 0)
        at = &(*at)->next;
    int created = 1;
    if (*at && strcmp((*at)->name, name) == 0) {
        policy *old = *at;
        p->next = old->next;
        policy_free(old);
        created = 0;
    } else {
        p->next = *at;
    }
    *at = p;
    persist_policy(vh, which, p, name);
    if (!B.recovering)
        log_info("%s '%s' set in vhost '%.*s'", which == POLICY_USER ? "policy" : "operator policy",
                 name, (int)vh->name.len, vh->name.data);
    refresh_vhost(vh);
    return created;
}

int
policy_clear(vhost *vh, int which, const char *name)
{
    policy **at = &vh->policies[which];
    while (*at && strcmp((*at)->name, name) != 0)
        at = &(*at)->next;
    if (!*at)
        return -1;
    policy *p = *at;
    *at = p->next;
    policy_free(p);
    persist_policy(vh, which, NULL, name);
    log_info("%s '%s' cleared in vhost '%.*s'", which == POLICY_USER ? "policy" : "operator policy",
             name, (int)vh->name.len, vh->name.data);
    refresh_vhost(vh);
    return 0;
}

void
policy_vhost_free(vhost *vh)
{
    for (int w = 0; w < 2; w++) {
        while (vh->policies[w]) {
            policy *p = vh->policies[w];
            vh->policies[w] = p->next;
            policy_free(p);
        }
    }
}

void
policy_vhost_forget(vhost *vh)
{
    for (int w = 0; w < 2; w++)
        for (const policy *p = vh->policies[w]; p; p = p->next)
            persist_policy(vh, w, NULL, p->name);
}

/* ---- recovery ---------------------------------------------------------------------------- */

typedef struct recover_ctx {
    int which;
    size_t n, skipped;
} recover_ctx;

static char *
cstr(store_bytes b)
{
    char *s = malloc((size_t)b.len + 1);
    if (!s)
        abort();
    memcpy(s, b.data, b.len);
    s[b.len] = 0;
    return s;
}

static int
recover_one(const store_policy *r, void *ctx)
{
    recover_ctx *c = ctx;
    vhost *vh = broker_vhost((amqp_bytes){ (const char *)r->vhost.data, r->vhost.len });
    char *name = cstr(r->name), *pattern = cstr(r->pattern), *apply = cstr(r->apply_to);
    char why[600];
    if (!vh || policy_set(vh, c->which, name, pattern, apply, r->priority, r->definition.data,
                          r->definition.len, why, sizeof why) < 0) {
        log_warning("skipping stored %s '%s': %s", c->which ? "operator policy" : "policy", name,
                    vh ? why : "no such vhost");
        c->skipped++;
    } else {
        c->n++;
    }
    free(name);
    free(pattern);
    free(apply);
    return 0;
}

int
policy_recover(struct store_reader *r, char *err, size_t cap)
{
    recover_ctx c = { POLICY_USER, 0, 0 };
    int e = store_each_policy(r, recover_one, &c);
    if (!e) {
        c.which = POLICY_OPERATOR;
        e = store_each_operator_policy(r, recover_one, &c);
    }
    if (e) {
        snprintf(err, cap, "cannot read the stored policies: %s%s", store_strerror(e),
                 e == STORE_EVERSION ? " (written by a newer Coney?)" : "");
        return -1;
    }
    if (c.n)
        log_info("recovered %zu policies and operator policies", c.n);
    return 0;
}
