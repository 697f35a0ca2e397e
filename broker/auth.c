/*
 * Users, permissions, topic permissions and limits (see auth.h).
 *
 * Password hashes are RabbitMQ's: a 4-byte random salt, then
 * digest(salt || password) with the user's hashing algorithm (SHA-256 by
 * default); the definitions file shows base64(salt || digest). A
 * permission is three PCRE patterns, compiled once when set, matched
 * unanchored as RabbitMQ's re:run does; the empty pattern matches
 * nothing. Topic permission patterns expand {username}, {vhost} and
 * {client_id}, quoted, when they are checked.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/auth.h"
#include "broker/crypto.h"
#include "broker/log.h"
#include "broker/persist.h"
#include "storage/store.h"

struct auth_user {
    char *name;
    uint8_t algo;                  /* enum crypto_hash */
    uint8_t hash[CRYPTO_SALT_LEN + CRYPTO_MAX_DIGEST];
    size_t hash_len;               /* salt + digest; 0 = no password */
    char *tags;
    int64_t max_connections, max_channels;   /* -1 = none */
    uint32_t connections, channels;
};

typedef struct perm {
    char *key;                     /* "user\0vhost" (topic: "\0exchange" too), owned */
    uint32_t klen;
    const char *user, *vhost, *exchange;     /* into key */
    char *src[3];                  /* by enum auth_perm; topic: write, read */
    pcre2_code *re[3];             /* NULL for "" (matches nothing) */
} perm;

static map users;                  /* name -> auth_user */
static map perms;                  /* "user\0vhost" -> perm */
static map topic_perms;            /* "user\0vhost\0exchange" -> perm */
static pcre2_match_data *md;
static uint64_t generation = 1;

uint64_t
auth_generation(void)
{
    return generation;
}

/* ---- helpers ---------------------------------------------------------------------- */

static store_bytes
sbs(const char *s)
{
    return (store_bytes){ (const uint8_t *)s, strlen(s) };
}

static char *
xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

static char *
xstrndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static void
fail(char *err, size_t cap, const char *fmt, const char *a, const char *b)
{
    snprintf(err, cap, fmt, a, b ? b : "");
}

auth_user *
auth_user_find(amqp_bytes name)
{
    return map_get(&users, name.data, name.len);
}

const char *
auth_user_name(const auth_user *u)
{
    return u->name;
}

const char *
auth_user_tags(const auth_user *u)
{
    return u->tags;
}

void
auth_user_hash(const auth_user *u, char *b64, size_t cap, const char **algorithm)
{
    static const char *const names[] = {
        [CRYPTO_NONE] = "rabbit_password_hashing_sha256",
        [CRYPTO_SHA256] = "rabbit_password_hashing_sha256",
        [CRYPTO_SHA512] = "rabbit_password_hashing_sha512",
        [CRYPTO_MD5] = "rabbit_password_hashing_md5",
    };
    *algorithm = names[u->algo <= CRYPTO_MD5 ? u->algo : CRYPTO_SHA256];
    if (u->hash_len == 0 || cap < 4 * ((u->hash_len + 2) / 3) + 1) {
        if (cap)
            b64[0] = 0;
        return;
    }
    crypto_b64_encode(u->hash, u->hash_len, b64);
}

int64_t
auth_user_limit(const auth_user *u, const char *key)
{
    if (strcmp(key, "max-connections") == 0)
        return u->max_connections;
    if (strcmp(key, "max-channels") == 0)
        return u->max_channels;
    return -1;
}

void
auth_each_user(void (*fn)(void *ctx, const auth_user *u), void *ctx)
{
    for (map_iter it = map_first(&users); it.e; map_next(&users, &it))
        fn(ctx, it.e->value);
}

static auth_user *
user_named(const char *name)
{
    return map_get(&users, name, (uint32_t)strlen(name));
}

static vhost *
vhost_named(const char *name)
{
    return broker_vhost(amqp_cstr(name));
}

/* ---- passwords --------------------------------------------------------------------- */

static void
hash_password(auth_user *u, const char *pass)
{
    u->algo = CRYPTO_SHA256;
    if (!crypto_random(u->hash, CRYPTO_SALT_LEN))
        abort();                   /* no entropy: refuse to make weak hashes */
    crypto_digest(CRYPTO_SHA256, u->hash, CRYPTO_SALT_LEN, pass, strlen(pass),
                  u->hash + CRYPTO_SALT_LEN);
    u->hash_len = CRYPTO_SALT_LEN + crypto_digest_len(CRYPTO_SHA256);
}

static bool
password_ok(const auth_user *u, amqp_bytes pass)
{
    size_t dl = crypto_digest_len((enum crypto_hash)u->algo);
    if (u->algo == CRYPTO_NONE || dl == 0 || u->hash_len != CRYPTO_SALT_LEN + dl)
        return false;
    uint8_t d[CRYPTO_MAX_DIGEST];
    crypto_digest((enum crypto_hash)u->algo, u->hash, CRYPTO_SALT_LEN, pass.data, pass.len, d);
    return crypto_equal(d, u->hash + CRYPTO_SALT_LEN, dl);
}

static bool
loopback_only(const auth_user *u)
{
    /* loopback_users: the configured default user (guest) unless the
     * config lets it out */
    return B.cfg.default_user_loopback_only && strcmp(u->name, B.cfg.default_user) == 0;
}

enum auth_result
auth_check(amqp_bytes name, amqp_bytes pass, bool loopback)
{
    auth_user *u = auth_user_find(name);
    if (!u || !password_ok(u, pass))
        return AUTH_BAD_CREDENTIALS;
    if (loopback_only(u) && !loopback)
        return AUTH_LOOPBACK_ONLY;
    return AUTH_OK;
}

enum auth_result
auth_check_external(amqp_bytes name, bool loopback)
{
    auth_user *u = auth_user_find(name);
    if (!u)
        return AUTH_BAD_CREDENTIALS;
    if (loopback_only(u) && !loopback)
        return AUTH_LOOPBACK_ONLY;
    return AUTH_OK;
}

/* ---- throttling --------------------------------------------------------------------- */

typedef struct failure {
    char host[64];
    unsigned count;
    double last;
} failure;

static failure recent[64];         /* a small ring: enough to slow a guesser down */

double
auth_failed_login(const char *peer)
{
    char host[64];
    snprintf(host, sizeof host, "%s", peer);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    failure *f = NULL, *oldest = &recent[0];
    for (size_t i = 0; i < sizeof recent / sizeof recent[0]; i++) {
        if (strcmp(recent[i].host, host) == 0) {
            f = &recent[i];
            break;
        }
        if (recent[i].last < oldest->last)
            oldest = &recent[i];
    }
    if (!f) {
        f = oldest;
        snprintf(f->host, sizeof f->host, "%s", host);
        f->count = 0;
    }
    if (now - f->last > 60.0)      /* a minute of peace forgives */
        f->count = 0;
    f->last = now;
    double d = 0.1;
    for (unsigned i = 0; i < f->count && d < 5.0; i++)
        d *= 2;
    f->count++;
    return d > 5.0 ? 5.0 : d;
}

/* ---- permissions ---------------------------------------------------------------------- */

static pcre2_code *
compile(const char *src, char *err, size_t cap)
{
    if (!src[0])
        return NULL;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    if (!re && err) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, cap, "invalid pattern '%s': %s at %zu", src, (char *)msg, (size_t)off);
    }
    return re;
}

static bool
re_match(pcre2_code *re, const char *s, size_t n)
{
    if (!re)
        return false;
    if (!md) {
        md = pcre2_match_data_create(1, NULL);
        if (!md)
            abort();
    }
    return pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL) >= 0;
}

/* Permission i of p against s: ".*", what most permissions are, matches
 * every name (unanchored, it matches an empty part of any) and needs no
 * regex engine at all. */
static bool
perm_match(const perm *p, int i, const char *s, size_t n)
{
    const char *src = p->src[i];
    if (src && src[0] == '.' && src[1] == '*' && src[2] == 0)
        return true;
    return re_match(p->re[i], s, n);
}

static void
perm_free(perm *p)
{
    for (int i = 0; i < 3; i++) {
        free(p->src[i]);
        pcre2_code_free(p->re[i]);
    }
    free(p->key);
    free(p);
}

static char *
make_key(const char *a, const char *b, const char *c, uint32_t *klen)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    size_t n = la + 1 + lb + (c ? 1 + lc : 0);
    char *k = malloc(n + 1);
    if (!k)
        abort();
    memcpy(k, a, la + 1);
    memcpy(k + la + 1, b, lb + 1);
    if (c)
        memcpy(k + la + 1 + lb + 1, c, lc + 1);
    *klen = (uint32_t)n;
    return k;
}

static perm *
perm_of(const auth_user *u, const vhost *vh)
{
    char k[512];
    size_t lu = strlen(u->name);
    if (lu + 1 + vh->name.len > sizeof k)
        return NULL;
    memcpy(k, u->name, lu + 1);
    memcpy(k + lu + 1, vh->name.data, vh->name.len);
    return map_get(&perms, k, (uint32_t)(lu + 1 + vh->name.len));
}

bool
auth_vhost_access(const auth_user *u, const vhost *vh)
{
    return u && vh && perm_of(u, vh) != NULL;
}

bool
auth_permitted(const auth_user *u, const vhost *vh, enum auth_perm kind, amqp_bytes name)
{
    perm *p = u && vh ? perm_of(u, vh) : NULL;
    if (!p)
        return false;
    if (name.len == 0)
        name = AMQP_BYTES_LIT("amq.default");
    return perm_match(p, kind, name.data, name.len);
}

/* Appends s to out quoted for PCRE (\Q...\E, with any \E inside split). */
static size_t
quote(char *out, size_t cap, size_t off, const char *s)
{
    off += (size_t)snprintf(out + off, off < cap ? cap - off : 0, "\\Q");
    for (const char *q = s; *q; q++) {
        if (q[0] == '\\' && q[1] == 'E') {
            off += (size_t)snprintf(out + off, off < cap ? cap - off : 0, "\\E\\\\E\\Q");
            q++;
            continue;
        }
        if (off + 1 < cap)
            out[off] = *q;
        off++;
    }
    off += (size_t)snprintf(out + off, off < cap ? cap - off : 0, "\\E");
    return off;
}

static perm *
topic_perm_of(const auth_user *u, const vhost *vh, amqp_bytes ex)
{
    char k[1024];
    size_t lu = strlen(u->name);
    if (lu + 1 + vh->name.len + 1 + ex.len > sizeof k)
        return NULL;
    memcpy(k, u->name, lu + 1);
    memcpy(k + lu + 1, vh->name.data, vh->name.len);
    k[lu + 1 + vh->name.len] = 0;
    memcpy(k + lu + 2 + vh->name.len, ex.data, ex.len);
    return map_get(&topic_perms, k, (uint32_t)(lu + 2 + vh->name.len + ex.len));
}

bool
auth_topic_restricted(const auth_user *u, const vhost *vh, amqp_bytes ex)
{
    return u && vh && topic_perms.count && topic_perm_of(u, vh, ex) != NULL;
}

bool
auth_topic_permitted(const auth_user *u, const vhost *vh, amqp_bytes ex, enum auth_perm kind,
                     amqp_bytes key, const char *client_id)
{
    if (!u || !vh)
        return false;
    perm *p = topic_perms.count ? topic_perm_of(u, vh, ex) : NULL;
    if (!p)
        return true;               /* no topic permission: not restricted */
    const char *src = p->src[kind == AUTH_WRITE ? 0 : 1];
    if (!strchr(src, '{'))
        return perm_match(p, kind == AUTH_WRITE ? 0 : 1, key.data, key.len);
    char vname[256];
    snprintf(vname, sizeof vname, "%.*s", (int)vh->name.len, vh->name.data);
    char expanded[2048];
    size_t off = 0;
    for (const char *s = src; *s; ) {
        if (strncmp(s, "{username}", 10) == 0) {
            off = quote(expanded, sizeof expanded, off, u->name);
            s += 10;
        } else if (strncmp(s, "{vhost}", 7) == 0) {
            off = quote(expanded, sizeof expanded, off, vname);
            s += 7;
        } else if (strncmp(s, "{client_id}", 11) == 0) {
            off = quote(expanded, sizeof expanded, off, client_id ? client_id : "");
            s += 11;
        } else {
            if (off + 1 < sizeof expanded)
                expanded[off] = *s;
            off++;
            s++;
        }
    }
    if (off >= sizeof expanded)
        return false;
    expanded[off] = 0;
    pcre2_code *re = compile(expanded, NULL, 0);
    bool ok = re_match(re, key.data, key.len);
    pcre2_code_free(re);
    return ok;
}

void
auth_refusal(char *out, size_t cap, const char *what, amqp_bytes name, const vhost *vh,
             const auth_user *u)
{
    if (name.len == 0 && strcmp(what, "exchange") == 0)
        name = AMQP_BYTES_LIT("amq.default");
    snprintf(out, cap, "access to %s '%.*s' in vhost '%.*s' refused for user '%s'", what,
             (int)name.len, name.data, (int)vh->name.len, vh->name.data, u ? u->name : "?");
}

/* ---- limits --------------------------------------------------------------------------- */

int
auth_connection_open(auth_user *u, vhost *vh, char *why, size_t cap)
{
    if (vh->max_connections >= 0 && vh->connections >= (uint64_t)vh->max_connections) {
        snprintf(why, cap, "access to vhost '%.*s' refused for user '%s': "
                 "connection limit (%lld) is reached", (int)vh->name.len, vh->name.data,
                 u->name, (long long)vh->max_connections);
        return -1;
    }
    if (u->max_connections >= 0 && u->connections >= (uint64_t)u->max_connections) {
        snprintf(why, cap, "Connection refused for user '%s'. User connection limit (%lld) "
                 "is reached", u->name, (long long)u->max_connections);
        return -1;
    }
    vh->connections++;
    u->connections++;
    return 0;
}

void
auth_connection_close(auth_user *u, vhost *vh)
{
    if (vh && vh->connections)
        vh->connections--;
    if (u && u->connections)
        u->connections--;
}

int
auth_channel_open(auth_user *u, char *why, size_t cap)
{
    if (u->max_channels >= 0 && u->channels >= (uint64_t)u->max_channels) {
        snprintf(why, cap, "number of channels opened for user '%s' has reached the maximum "
                 "allowed user limit of (%lld)", u->name, (long long)u->max_channels);
        return -1;
    }
    u->channels++;
    return 0;
}

void
auth_channel_close(auth_user *u)
{
    if (u && u->channels)
        u->channels--;
}

/* ---- persistence ------------------------------------------------------------------------ */

static void
save_user(const auth_user *u)
{
    if (!B.store || B.recovering)
        return;
    store_user r = { sbs(u->name), { u->hash, u->hash_len }, u->algo, sbs(u->tags),
                     u->max_connections, u->max_channels };
    store_put_user(B.store, &r);
    persist_definition_batch = store_batch_id(B.store);
}

static void
save_vhost(const vhost *vh)
{
    if (!B.store || B.recovering)
        return;
    store_vhost r = { { (const uint8_t *)vh->name.data, vh->name.len }, sbs(vh->description),
                      sbs(vh->tags), 0, sbs(""), vh->max_connections, vh->max_queues };
    store_put_vhost(B.store, &r);
    persist_definition_batch = store_batch_id(B.store);
}

static void
save_perm(const perm *p, bool topic)
{
    if (!B.store || B.recovering)
        return;
    if (topic) {
        store_topic_permission r = { sbs(p->user), sbs(p->vhost), sbs(p->exchange),
                                     sbs(p->src[0]), sbs(p->src[1]) };
        store_put_topic_permission(B.store, &r);
    } else {
        store_permission r = { sbs(p->user), sbs(p->vhost), sbs(p->src[0]), sbs(p->src[1]),
                               sbs(p->src[2]) };
        store_put_permission(B.store, &r);
    }
    persist_definition_batch = store_batch_id(B.store);
}

/* ---- management -------------------------------------------------------------------------- */

static auth_user *
user_new(const char *name)
{
    auth_user *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->name = xstrdup(name);
    u->tags = xstrdup("");
    u->max_connections = u->max_channels = -1;
    map_put(&users, u->name, (uint32_t)strlen(u->name), u);
    return u;
}

static bool
name_ok(const char *name, char *err, size_t cap, const char *what)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255) {
        fail(err, cap, "%s name must be 1 to 255 bytes%s", what, NULL);
        return false;
    }
    return true;
}

int
auth_user_add(const char *name, const char *pass, char *err, size_t cap)
{
    if (!name_ok(name, err, cap, "user"))
        return -1;
    if (user_named(name)) {
        fail(err, cap, "user '%s' already exists%s", name, NULL);
        return -1;
    }
    auth_user *u = user_new(name);
    if (pass)
        hash_password(u, pass);
    save_user(u);
    log_info("created user '%s'", name);
    return 0;
}

static void
drop_perms_where(map *m, const char *user_name, const char *vhost_name, bool topic)
{
    for (map_iter it = map_first(m); it.e; map_next(m, &it)) {
        perm *p = it.e->value;
        if ((user_name && strcmp(p->user, user_name) != 0) ||
            (vhost_name && strcmp(p->vhost, vhost_name) != 0))
            continue;
        map_del(m, p->key, p->klen);
        generation++;
        if (B.store && !B.recovering) {
            if (topic)
                store_del_topic_permission(B.store, sbs(p->user), sbs(p->vhost), sbs(p->exchange));
            else
                store_del_permission(B.store, sbs(p->user), sbs(p->vhost));
        }
        perm_free(p);
    }
}

int
auth_user_delete(const char *name, char *err, size_t cap)
{
    auth_user *u = user_named(name);
    if (!u) {
        fail(err, cap, "no such user: '%s'%s", name, NULL);
        return -1;
    }
    if (u->connections) {
        /* connections point at the user; RabbitMQ closes them, we refuse
         * for now rather than leave them dangling */
        fail(err, cap, "user '%s' has open connections%s", name, NULL);
        return -1;
    }
    drop_perms_where(&perms, name, NULL, false);
    drop_perms_where(&topic_perms, name, NULL, true);
    map_del(&users, u->name, (uint32_t)strlen(u->name));
    if (B.store) {
        store_del_user(B.store, sbs(name));
        persist_definition_batch = store_batch_id(B.store);
    }
    log_info("deleted user '%s'", name);
    free(u->name);
    free(u->tags);
    free(u);
    return 0;
}

int
auth_user_set_password(const char *name, const char *pass, char *err, size_t cap)
{
    auth_user *u = user_named(name);
    if (!u) {
        fail(err, cap, "no such user: '%s'%s", name, NULL);
        return -1;
    }
    if (pass) {
        hash_password(u, pass);
    } else {
        u->algo = CRYPTO_NONE;
        u->hash_len = 0;
    }
    save_user(u);
    return 0;
}

int
auth_user_set_hash(const char *name, const char *b64, const char *algorithm, char *err,
                   size_t cap)
{
    auth_user *u = user_named(name);
    if (!u) {
        fail(err, cap, "no such user: '%s'%s", name, NULL);
        return -1;
    }
    enum crypto_hash h;
    if (!algorithm || !algorithm[0] || strcmp(algorithm, "rabbit_password_hashing_sha256") == 0)
        h = CRYPTO_SHA256;
    else if (strcmp(algorithm, "rabbit_password_hashing_sha512") == 0)
        h = CRYPTO_SHA512;
    else if (strcmp(algorithm, "rabbit_password_hashing_md5") == 0)
        h = CRYPTO_MD5;
    else {
        fail(err, cap, "unknown hashing algorithm '%s'%s", algorithm, NULL);
        return -1;
    }
    if (!b64[0]) {                 /* RabbitMQ exports "" for a user without password */
        u->algo = CRYPTO_NONE;
        u->hash_len = 0;
        save_user(u);
        return 0;
    }
    uint8_t raw[CRYPTO_SALT_LEN + CRYPTO_MAX_DIGEST];
    long n = crypto_b64_decode(b64, strlen(b64), raw, sizeof raw);
    if (n != (long)(CRYPTO_SALT_LEN + crypto_digest_len(h))) {
        fail(err, cap, "password hash of '%s' is not base64 of salt and digest%s", name, NULL);
        return -1;
    }
    memcpy(u->hash, raw, (size_t)n);
    u->hash_len = (size_t)n;
    u->algo = (uint8_t)h;
    save_user(u);
    return 0;
}

int
auth_user_set_tags(const char *name, const char *tags, char *err, size_t cap)
{
    auth_user *u = user_named(name);
    if (!u) {
        fail(err, cap, "no such user: '%s'%s", name, NULL);
        return -1;
    }
    free(u->tags);
    u->tags = xstrdup(tags);
    save_user(u);
    return 0;
}

static int
set_limit(int64_t *field, const char *key, long long value, char *err, size_t cap)
{
    if (value < -1) {
        fail(err, cap, "limit '%s' must be -1 (none) or at least 0%s", key, NULL);
        return -1;
    }
    *field = value;
    return 0;
}

/* Users and vhosts both limit max-connections and one thing of their
 * own (other: max-channels, max-queues). */
static int
set_one_limit(const char *key, long long value, const char *what, const char *other,
              int64_t *connections, int64_t *other_field, char *err, size_t cap)
{
    if (strcmp(key, "max-connections") == 0)
        return set_limit(connections, key, value, err, cap);
    if (strcmp(key, other) == 0)
        return set_limit(other_field, key, value, err, cap);
    snprintf(err, cap, "unknown %s limit '%s' (max-connections, %s)", what, key, other);
    return -1;
}

int
auth_user_set_limit(const char *name, const char *key, long long value, char *err, size_t cap)
{
    auth_user *u = user_named(name);
    if (!u) {
        fail(err, cap, "no such user: '%s'%s", name, NULL);
        return -1;
    }
    int rc = set_one_limit(key, value, "user", "max-channels", &u->max_connections,
                           &u->max_channels, err, cap);
    if (rc == 0)
        save_user(u);
    return rc;
}

int
auth_vhost_add(const char *name, char *err, size_t cap)
{
    if (!name_ok(name, err, cap, "vhost"))
        return -1;
    if (vhost_named(name)) {
        fail(err, cap, "vhost '%s' already exists%s", name, NULL);
        return -1;
    }
    vhost *vh = vhost_new(name);
    map_put(&B.vhosts, vh->name.data, vh->name.len, vh);
    save_vhost(vh);
    log_info("created vhost '%s'", name);
    return 0;
}

int
auth_vhost_delete(const char *name, char *err, size_t cap)
{
    vhost *vh = vhost_named(name);
    if (!vh) {
        fail(err, cap, "no such vhost: '%s'%s", name, NULL);
        return -1;
    }
    if (vh->connections) {
        fail(err, cap, "vhost '%s' has open connections%s", name, NULL);
        return -1;
    }
    /* queues first (their stored messages go with them), then exchanges */
    for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it))
        vhost_queue_delete(vh, it.e->value);
    for (map_iter it = map_first(&vh->exchanges); it.e; map_next(&vh->exchanges, &it)) {
        exchange *x = it.e->value;
        if (!x->builtin)
            persist_exchange(x, false);
    }
    drop_perms_where(&perms, NULL, name, false);
    drop_perms_where(&topic_perms, NULL, name, true);
    policy_vhost_forget(vh);
    if (B.store) {
        store_del_vhost(B.store, sbs(name));
        persist_definition_batch = store_batch_id(B.store);
    }
    map_del(&B.vhosts, vh->name.data, vh->name.len);
    log_info("deleted vhost '%s'", name);
    vhost_free(vh);
    return 0;
}

int
auth_vhost_set_limit(const char *name, const char *key, long long value, char *err, size_t cap)
{
    vhost *vh = vhost_named(name);
    if (!vh) {
        fail(err, cap, "no such vhost: '%s'%s", name, NULL);
        return -1;
    }
    int rc = set_one_limit(key, value, "vhost", "max-queues", &vh->max_connections,
                           &vh->max_queues, err, cap);
    if (rc == 0)
        save_vhost(vh);
    return rc;
}

int
auth_vhost_set_metadata(const char *name, const char *description, const char *tags,
                        char *err, size_t cap)
{
    vhost *vh = vhost_named(name);
    if (!vh) {
        fail(err, cap, "no such vhost: '%s'%s", name, NULL);
        return -1;
    }
    if (description) {
        free(vh->description);
        vh->description = xstrdup(description);
    }
    if (tags) {
        free(vh->tags);
        vh->tags = xstrdup(tags);
    }
    save_vhost(vh);
    return 0;
}

static perm *
perm_put(map *m, const char *u, const char *v, const char *x, const char *const *src, int n,
         char *err, size_t cap)
{
    perm *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->key = make_key(u, v, x, &p->klen);
    p->user = p->key;
    p->vhost = p->key + strlen(u) + 1;
    p->exchange = x ? p->vhost + strlen(v) + 1 : NULL;
    for (int i = 0; i < n; i++) {
        p->src[i] = xstrdup(src[i]);
        p->re[i] = compile(src[i], err, cap);
        if (src[i][0] && !p->re[i]) {
            perm_free(p);
            return NULL;
        }
    }
    perm *old = map_put(m, p->key, p->klen, p);
    if (old)
        perm_free(old);
    generation++;
    return p;
}

int
auth_set_permissions(const char *u, const char *v, const char *conf, const char *write,
                     const char *read, char *err, size_t cap)
{
    if (!user_named(u)) {
        fail(err, cap, "no such user: '%s'%s", u, NULL);
        return -1;
    }
    if (!vhost_named(v)) {
        fail(err, cap, "no such vhost: '%s'%s", v, NULL);
        return -1;
    }
    const char *src[3] = { conf, write, read };
    perm *p = perm_put(&perms, u, v, NULL, src, 3, err, cap);
    if (!p)
        return -1;
    save_perm(p, false);
    return 0;
}

int
auth_clear_permissions(const char *u, const char *v, char *err, size_t cap)
{
    uint32_t klen;
    char *k = make_key(u, v, NULL, &klen);
    perm *p = map_del(&perms, k, klen);
    free(k);
    generation++;
    if (!p) {
        fail(err, cap, "user '%s' has no permissions in vhost '%s'", u, v);
        return -1;
    }
    if (B.store) {
        store_del_permission(B.store, sbs(u), sbs(v));
        persist_definition_batch = store_batch_id(B.store);
    }
    perm_free(p);
    return 0;
}

int
auth_set_topic_permissions(const char *u, const char *v, const char *x, const char *write,
                           const char *read, char *err, size_t cap)
{
    if (!user_named(u)) {
        fail(err, cap, "no such user: '%s'%s", u, NULL);
        return -1;
    }
    if (!vhost_named(v)) {
        fail(err, cap, "no such vhost: '%s'%s", v, NULL);
        return -1;
    }
    const char *src[2] = { write, read };
    /* patterns with {…} variables are compiled when checked; compile the
     * plain ones now, and check the others' syntax with the variables
     * left in (braces are literals to PCRE unless they form a quantifier) */
    perm *p = perm_put(&topic_perms, u, v, x, src, 2, err, cap);
    if (!p)
        return -1;
    save_perm(p, true);
    return 0;
}

int
auth_clear_topic_permissions(const char *u, const char *v, const char *x, char *err, size_t cap)
{
    if (!x) {
        drop_perms_where(&topic_perms, u, v, true);
        return 0;
    }
    uint32_t klen;
    char *k = make_key(u, v, x, &klen);
    perm *p = map_del(&topic_perms, k, klen);
    free(k);
    generation++;
    if (!p) {
        fail(err, cap, "user '%s' has no topic permissions in vhost '%s'", u, v);
        return -1;
    }
    if (B.store) {
        store_del_topic_permission(B.store, sbs(u), sbs(v), sbs(x));
        persist_definition_batch = store_batch_id(B.store);
    }
    perm_free(p);
    return 0;
}

/* ---- listing ------------------------------------------------------------------------------- */

static void
limit_text(int64_t v, char *out, size_t cap)
{
    snprintf(out, cap, "%lld", (long long)v);
}

void
auth_list_users(auth_row_fn fn, void *ctx)
{
    for (map_iter it = map_first(&users); it.e; map_next(&users, &it)) {
        auth_user *u = it.e->value;
        char mc[24], mch[24];
        limit_text(u->max_connections, mc, sizeof mc);
        limit_text(u->max_channels, mch, sizeof mch);
        const char *cols[4] = { u->name, u->tags, mc, mch };
        fn(ctx, 4, cols);
    }
}

void
auth_list_vhosts(auth_row_fn fn, void *ctx)
{
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it)) {
        vhost *vh = it.e->value;
        char name[256], mc[24], mq[24];
        snprintf(name, sizeof name, "%.*s", (int)vh->name.len, vh->name.data);
        limit_text(vh->max_connections, mc, sizeof mc);
        limit_text(vh->max_queues, mq, sizeof mq);
        const char *cols[3] = { name, mc, mq };
        fn(ctx, 3, cols);
    }
}

void
auth_list_permissions(const char *u, const char *v, auth_row_fn fn, void *ctx)
{
    for (map_iter it = map_first(&perms); it.e; map_next(&perms, &it)) {
        perm *p = it.e->value;
        if ((u && strcmp(u, p->user) != 0) || (v && strcmp(v, p->vhost) != 0))
            continue;
        const char *cols[5] = { p->user, p->vhost, p->src[0], p->src[1], p->src[2] };
        fn(ctx, 5, cols);
    }
}

void
auth_list_topic_permissions(const char *u, const char *v, auth_row_fn fn, void *ctx)
{
    for (map_iter it = map_first(&topic_perms); it.e; map_next(&topic_perms, &it)) {
        perm *p = it.e->value;
        if ((u && strcmp(u, p->user) != 0) || (v && strcmp(v, p->vhost) != 0))
            continue;
        const char *cols[5] = { p->user, p->vhost, p->exchange, p->src[0], p->src[1] };
        fn(ctx, 5, cols);
    }
}

/* ---- start-up --------------------------------------------------------------------------------- */

typedef struct rec_ctx {
    size_t users, vhosts, perms, skipped;
    char *err;
    size_t cap;
} rec_ctx;

static int
rec_vhost(const store_vhost *r, void *arg)
{
    rec_ctx *c = arg;
    char *name = xstrndup(r->name.data, r->name.len);
    vhost *vh = vhost_named(name);
    if (!vh) {
        vh = vhost_new(name);
        map_put(&B.vhosts, vh->name.data, vh->name.len, vh);
    }
    free(name);
    free(vh->description);
    free(vh->tags);
    vh->description = xstrndup(r->description.data, r->description.len);
    vh->tags = xstrndup(r->tags.data, r->tags.len);
    vh->max_connections = r->max_connections < 0 ? -1 : r->max_connections;
    vh->max_queues = r->max_queues < 0 ? -1 : r->max_queues;
    c->vhosts++;
    return 0;
}

static int
rec_user(const store_user *r, void *arg)
{
    rec_ctx *c = arg;
    char *name = xstrndup(r->name.data, r->name.len);
    auth_user *u = user_named(name) ? user_named(name) : user_new(name);
    free(name);
    if (r->password_hash.len <= sizeof u->hash) {
        memcpy(u->hash, r->password_hash.data, r->password_hash.len);
        u->hash_len = r->password_hash.len;
        u->algo = r->hash_algo;
    }
    free(u->tags);
    u->tags = xstrndup(r->tags.data, r->tags.len);
    u->max_connections = r->max_connections < 0 ? -1 : r->max_connections;
    u->max_channels = r->max_channels < 0 ? -1 : r->max_channels;
    c->users++;
    return 0;
}

static int
rec_perm(const store_permission *r, void *arg)
{
    rec_ctx *c = arg;
    char *u = xstrndup(r->user.data, r->user.len), *v = xstrndup(r->vhost.data, r->vhost.len);
    char *src[3] = { xstrndup(r->configure.data, r->configure.len),
                     xstrndup(r->write.data, r->write.len), xstrndup(r->read.data, r->read.len) };
    char err[256];
    if (perm_put(&perms, u, v, NULL, (const char *const *)src, 3, err, sizeof err))
        c->perms++;
    else
        c->skipped++;
    free(u);
    free(v);
    for (int i = 0; i < 3; i++)
        free(src[i]);
    return 0;
}

static int
rec_topic_perm(const store_topic_permission *r, void *arg)
{
    rec_ctx *c = arg;
    char *u = xstrndup(r->user.data, r->user.len), *v = xstrndup(r->vhost.data, r->vhost.len);
    char *x = xstrndup(r->exchange.data, r->exchange.len);
    char *src[2] = { xstrndup(r->write.data, r->write.len), xstrndup(r->read.data, r->read.len) };
    char err[256];
    if (perm_put(&topic_perms, u, v, x, (const char *const *)src, 2, err, sizeof err))
        c->perms++;
    else
        c->skipped++;
    free(u);
    free(v);
    free(x);
    free(src[0]);
    free(src[1]);
    return 0;
}

int
auth_recover(struct store_reader *r, char *err, size_t cap)
{
    rec_ctx c = { .err = err, .cap = cap };
    int e = 0;
    if (r) {
        e = store_each_vhost(r, rec_vhost, &c);
        if (!e)
            e = store_each_user(r, rec_user, &c);
        if (!e)
            e = store_each_permission(r, rec_perm, &c);
        if (!e)
            e = store_each_topic_permission(r, rec_topic_perm, &c);
        if (e) {
            snprintf(err, cap, "cannot read users and vhosts: %s", store_strerror(e));
            return -1;
        }
    }
    bool was_recovering = B.recovering;
    B.recovering = false;          /* the defaults below must be written */
    if (c.vhosts == 0) {
        /* a first start (or a store from before vhosts were stored) */
        vhost *vh = vhost_named(B.cfg.default_vhost);
        if (!vh) {
            vh = vhost_new(B.cfg.default_vhost);
            map_put(&B.vhosts, vh->name.data, vh->name.len, vh);
        }
        save_vhost(vh);
    }
    if (c.users == 0) {
        char e2[256];
        if (auth_user_add(B.cfg.default_user, B.cfg.default_pass, e2, sizeof e2) == 0) {
            auth_user_set_tags(B.cfg.default_user, "administrator", e2, sizeof e2);
            auth_set_permissions(B.cfg.default_user, B.cfg.default_vhost, ".*", ".*", ".*",
                                 e2, sizeof e2);
        }
    }
    B.recovering = was_recovering;
    log_info("access: %zu users, %zu vhosts, %zu permissions%s", users.count, B.vhosts.count,
             perms.count + topic_perms.count, c.skipped ? " (some skipped, see above)" : "");
    return 0;
}

void
auth_free(void)
{
    for (map_iter it = map_first(&users); it.e; map_next(&users, &it)) {
        auth_user *u = it.e->value;
        map_del(&users, u->name, (uint32_t)strlen(u->name));
        free(u->name);
        free(u->tags);
        free(u);
    }
    map_free(&users);
    for (map *m = &perms; m; m = m == &perms ? &topic_perms : NULL) {
        for (map_iter it = map_first(m); it.e; map_next(m, &it)) {
            perm *p = it.e->value;
            map_del(m, p->key, p->klen);
            perm_free(p);
        }
        map_free(m);
    }
    pcre2_match_data_free(md);
    md = NULL;
}
