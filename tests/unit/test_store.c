/*
 * The store against a real LMDB environment in a temporary directory:
 * every record kind round-trips, the queue index keeps seq order, message
 * reference counts follow fan-out and deletes, the map grows, batches
 * complete in order and group, recovery cleans up after a crash, MQTT
 * retained messages and sessions keep one record per vhost and name,
 * vhosts, users, permissions and topic permissions one per identity, and
 * the byte layouts match the fixtures in tests/unit/fixtures/.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/record.h"
#include "storage/store.h"
#include "suites.h"

/* ---- helpers ------------------------------------------------------------- */

/* One directory per test case, made and removed in the parent process
 * (unchecked fixture), so a test that fails in its forked child leaves
 * nothing behind; each test gets a fresh directory inside it. */
static char basedir[64], tmpdir[96];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void
rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
base_setup(void)
{
    strcpy(basedir, "/tmp/coney-store-XXXXXX");
    if (mkdtemp(basedir) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static void
base_teardown(void)
{
    rm_tree(basedir);
}

static void
tmp_setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/t-XXXXXX", basedir);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
tmp_teardown(void)
{
    rm_tree(tmpdir);
}

static store *
open_cfg(store_config *cfg)
{
    char err[256];
    store *s = NULL;
    int rc = store_open(cfg, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "store_open: %s (%s)", err, store_strerror(rc));
    return s;
}

static store *
open_store(void)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_NONE };
    return open_cfg(&cfg);
}

/* Waits for everything queued so far. */
static void
settle(store *s)
{
    ck_assert_int_eq(store_wait(s, store_flush(s)), 0);
}

static store_bytes
B(const char *str)
{
    store_bytes b = { (const uint8_t *)str, (uint32_t)strlen(str) };
    return b;
}

static bool
beq(store_bytes b, const char *str)
{
    return b.len == strlen(str) && (b.len == 0 || memcmp(b.data, str, b.len) == 0);
}

static void
put_msg(store *s, uint64_t id, const char *body, const store_qentry *e, size_t n)
{
    store_message m = { .id = id, .prop_flags = 0x1000, .exchange = B("amq.direct"),
                        .routing_key = B("rk"), .props = B("\x02"), .body = B(body) };
    store_put_message(s, &m, e, n);
}

static bool
msg_exists(store *s, uint64_t id)
{
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    store_message m;
    int rc = store_get_message(r, id, &m);
    store_read_end(r);
    ck_assert(rc == 0 || rc == STORE_ENOTFOUND);
    return rc == 0;
}

static uint64_t
count_messages(store *s)
{
    store_stats st;
    store_get_stats(s, &st);
    return st.messages;
}

/* Entries of one queue, collected. */
typedef struct qlist {
    store_qentry e[64];
    size_t n;
} qlist;

static int
collect_qe(const store_qentry *e, void *ctx)
{
    qlist *l = ctx;
    ck_assert_uint_lt(l->n, 64);
    l->e[l->n++] = *e;
    return 0;
}

static qlist
entries(store *s, uint64_t queue, uint64_t from, size_t max)
{
    qlist l = { .n = 0 };
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_qentry(r, queue, from, max, collect_qe, &l), 0);
    store_read_end(r);
    return l;
}

/* Names seen by an iteration, joined with commas. */
typedef struct names {
    char buf[4096];
    int count;
} names;

static void
names_add(names *n, store_bytes b)
{
    size_t len = strlen(n->buf);
    ck_assert_uint_lt(len + b.len + 2, sizeof n->buf);
    if (len > 0)
        n->buf[len++] = ',';
    memcpy(n->buf + len, b.data, b.len);
    n->buf[len + b.len] = '\0';
    n->count++;
}

/* ---- SipHash -------------------------------------------------------------- */

/* From the reference distribution's vectors (key 00..0f, message 00..len-1). */
static const struct { size_t len; const char *hex; } sip_vectors[] = {
    { 0, "a3817f04ba25a8e66df67214c7550293" },
    { 1, "da87c1d86b99af44347659119b22fc45" },
    { 7, "a1f1ebbed8dbc153c0b84aa61ff08239" },
    { 8, "3b62a9ba6258f5610f83e264f31497b4" },
    { 9, "264499060ad9baabc47f8b02bb6d71ed" },
    { 15, "5493e99933b0a8117e08ec0f97cfc3d9" },
    { 16, "6ee2a4ca67b054bbfd3315bf85230577" },
    { 63, "5150d1772f50834a503e069a973fbd7c" },
};

START_TEST(test_siphash_vectors)
{
    uint8_t key[16], msg[64], out[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t v = 0; v < sizeof sip_vectors / sizeof sip_vectors[0]; v++) {
        size_t len = sip_vectors[v].len;
        /* one shot, then byte by byte: the tail buffering must agree */
        for (int split = 0; split < 2; split++) {
            rec_sip h;
            rec_sip_init(&h, key);
            if (split)
                for (size_t i = 0; i < len; i++)
                    rec_sip_update(&h, msg + i, 1);
            else
                rec_sip_update(&h, msg, len);
            rec_sip_final(&h, out);
            char hex[33];
            for (int i = 0; i < 16; i++)
                sprintf(hex + 2 * i, "%02x", out[i]);
            ck_assert_str_eq(hex, sip_vectors[v].hex);
        }
    }
}
END_TEST

/* ---- meta records ------------------------------------------------------------ */

static int
collect_exchange(const store_exchange *x, void *ctx)
{
    names *n = ctx;
    if (beq(x->name, "logs") && beq(x->vhost, "/")) {
        ck_assert_uint_eq(x->type, 2);
        ck_assert_uint_eq(x->flags, STORE_F_DURABLE | STORE_F_INTERNAL);
        ck_assert(beq(x->args, "\x01\x02"));
    }
    names_add(n, x->name.len > 20 ? B("long") : x->name);
    return 0;
}

static names
exchanges(store *s)
{
    names n = { .count = 0 };
    n.buf[0] = '\0';
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_exchange(r, collect_exchange, &n), 0);
    store_read_end(r);
    return n;
}

START_TEST(test_exchange_records)
{
    store *s = open_store();
    char longv[256], longn[256];
    memset(longv, 'v', 255);
    memset(longn, 'n', 255);
    longv[255] = longn[255] = '\0';
    store_exchange a = { B("/"), B("logs"), 2, STORE_F_DURABLE | STORE_F_INTERNAL, B("\x01\x02") };
    store_exchange b = { B("/"), B("events"), 1, STORE_F_DURABLE, B("") };
    store_exchange c = { B(longv), B(longn), 3, 0, B("") };   /* 255 + 255: key stays 17 bytes */
    store_exchange d = { B("other"), B("logs"), 1, 0, B("") };
    store_put_exchange(s, &a);
    store_put_exchange(s, &b);
    store_put_exchange(s, &c);
    store_put_exchange(s, &d);
    settle(s);
    names n = exchanges(s);
    ck_assert_int_eq(n.count, 4);

    store_del_exchange(s, B("/"), B("events"));
    store_del_exchange(s, B(longv), B(longn));
    store_del_exchange(s, B("/"), B("missing"));   /* deleting nothing is fine */
    settle(s);
    n = exchanges(s);
    ck_assert_int_eq(n.count, 2);
    ck_assert_str_eq(n.buf, "logs,logs");

    a.flags = STORE_F_DURABLE | STORE_F_INTERNAL;   /* put again: a rewrite, not a copy */
    store_put_exchange(s, &a);
    settle(s);
    ck_assert_int_eq(exchanges(s).count, 2);
    store_close(s);
}
END_TEST

typedef struct qseen {
    int count;
    uint64_t id_of_jobs;
    char args[16];
} qseen;

static int
collect_queue(const store_queue *q, void *ctx)
{
    qseen *seen = ctx;
    seen->count++;
    if (beq(q->name, "jobs") && beq(q->vhost, "/")) {
        seen->id_of_jobs = q->id;
        ck_assert_uint_eq(q->flags, STORE_F_DURABLE | STORE_F_EXCLUSIVE);
        ck_assert_uint_lt(q->args.len, sizeof seen->args);
        memcpy(seen->args, q->args.data, q->args.len);
        seen->args[q->args.len] = '\0';
    }
    return 0;
}

static qseen
queues(store *s)
{
    qseen seen = { 0, 0, "" };
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_queue(r, collect_queue, &seen), 0);
    store_read_end(r);
    return seen;
}

START_TEST(test_queue_records)
{
    store *s = open_store();
    store_queue a = { B("/"), B("jobs"), 42, STORE_F_DURABLE | STORE_F_EXCLUSIVE, B("xyz") };
    store_queue b = { B("/"), B("mail"), 43, STORE_F_DURABLE, B("") };
    store_queue c = { B("/x"), B("jobs"), 44, STORE_F_DURABLE, B("") };
    store_put_queue(s, &a);
    store_put_queue(s, &b);
    store_put_queue(s, &c);
    /* An exchange of the same name is another kind of record. */
    store_exchange x = { B("/"), B("jobs"), 1, 0, B("") };
    store_put_exchange(s, &x);
    settle(s);
    qseen seen = queues(s);
    ck_assert_int_eq(seen.count, 3);
    ck_assert_uint_eq(seen.id_of_jobs, 42);
    ck_assert_str_eq(seen.args, "xyz");

    store_del_queue(s, B("/"), B("mail"), 43);
    settle(s);
    ck_assert_int_eq(queues(s).count, 2);
    ck_assert_int_eq(exchanges(s).count, 1);
    store_close(s);
}
END_TEST

static int
collect_binding(const store_binding *b, void *ctx)
{
    names *n = ctx;
    ck_assert(beq(b->vhost, "/"));
    ck_assert(beq(b->source, "logs"));
    char buf[128];
    snprintf(buf, sizeof buf, "%c:%.*s:%.*s:%u", b->dest_kind == STORE_DEST_QUEUE ? 'q' : 'x',
             (int)b->dest.len, (const char *)b->dest.data, (int)b->key.len,
             (const char *)b->key.data, b->args.len);
    /* collected in key (hash) order: count only, and look up by name */
    names_add(n, B(buf));
    return 0;
}

static names
bindings(store *s)
{
    names n = { .count = 0 };
    n.buf[0] = '\0';
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_binding(r, collect_binding, &n), 0);
    store_read_end(r);
    return n;
}

START_TEST(test_binding_records)
{
    store *s = open_store();
    store_binding b1 = { B("/"), B("logs"), STORE_DEST_QUEUE, B("jobs"), B("a.*"), B("") };
    store_binding b2 = b1;
    b2.args = B("\x07x");                    /* differs by args only */
    store_binding b3 = b1;
    b3.dest_kind = STORE_DEST_EXCHANGE;      /* differs by destination kind only */
    store_binding b4 = b1;
    b4.dest = B("jobsa");                    /* "jobs"+"a.*" vs "jobsa"+".*": lengths matter */
    b4.key = B(".*");
    store_put_binding(s, &b1);
    store_put_binding(s, &b2);
    store_put_binding(s, &b3);
    store_put_binding(s, &b4);
    store_put_binding(s, &b1);               /* the same binding twice is one record */
    settle(s);
    names n = bindings(s);
    ck_assert_int_eq(n.count, 4);
    ck_assert_ptr_nonnull(strstr(n.buf, "q:jobs:a.*:0"));
    ck_assert_ptr_nonnull(strstr(n.buf, "q:jobs:a.*:2"));
    ck_assert_ptr_nonnull(strstr(n.buf, "x:jobs:a.*:0"));
    ck_assert_ptr_nonnull(strstr(n.buf, "q:jobsa:.*:0"));

    store_del_binding(s, &b2);
    store_del_binding(s, &b3);
    settle(s);
    n = bindings(s);
    ck_assert_int_eq(n.count, 2);
    ck_assert_ptr_null(strstr(n.buf, "q:jobs:a.*:2"));
    ck_assert_ptr_null(strstr(n.buf, "x:jobs"));
    store_close(s);
}
END_TEST

static int
stop_at_first(const store_queue *q, void *ctx)
{
    (*(int *)ctx)++;
    return 7;
}

START_TEST(test_callback_stops)
{
    store *s = open_store();
    store_queue a = { B("/"), B("a"), 1, 0, B("") }, b = { B("/"), B("b"), 2, 0, B("") };
    store_put_queue(s, &a);
    store_put_queue(s, &b);
    settle(s);
    store_reader *r;
    int calls = 0;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_queue(r, stop_at_first, &calls), 7);
    store_read_end(r);
    ck_assert_int_eq(calls, 1);
    store_close(s);
}
END_TEST

/* ---- MQTT records: retained messages and sessions ------------------------------------- */

/* What a walk over retained or sessions saw: "vhost|name=data" per record,
 * a vhost or name longer than 20 bytes shown as "long<len>", data longer
 * than 20 bytes as "big!". */
typedef struct kvseen {
    char buf[4096];
    int count;
} kvseen;

static void
kv_short(char out[32], store_bytes b)
{
    if (b.len > 20)
        snprintf(out, 32, "long%u", b.len);
    else
        snprintf(out, 32, "%.*s", (int)b.len, (const char *)b.data);
}

static int
collect_kv(const store_kv *kv, void *ctx)
{
    kvseen *seen = ctx;
    char vhost[32], name[32];
    kv_short(vhost, kv->vhost);
    kv_short(name, kv->name);
    size_t len = strlen(seen->buf);
    int n = snprintf(seen->buf + len, sizeof seen->buf - len, "%s%s|%s=%.*s",
                     len > 0 ? "," : "", vhost, name, kv->data.len > 20 ? 4 : (int)kv->data.len,
                     kv->data.len > 20 ? "big!" : (const char *)kv->data.data);
    ck_assert_int_lt(n, (int)(sizeof seen->buf - len));
    seen->count++;
    return 0;
}

static kvseen
kv_walk(store *s, bool sessions)
{
    kvseen seen = { .count = 0 };
    seen.buf[0] = '\0';
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    if (sessions)
        ck_assert_int_eq(store_each_session(r, collect_kv, &seen), 0);
    else
        ck_assert_int_eq(store_each_retained(r, collect_kv, &seen), 0);
    store_read_end(r);
    return seen;
}

/* Whether vhost and name have a record, got with store_get_*; one found
 * must hold exactly data. */
static bool
kv_has(store *s, bool sessions, const char *vhost, const char *name, const char *data)
{
    store_reader *r;
    store_kv kv;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    int rc = sessions ? store_get_session(r, B(vhost), B(name), &kv)
                      : store_get_retained(r, B(vhost), B(name), &kv);
    ck_assert(rc == 0 || rc == STORE_ENOTFOUND);
    bool same = rc == 0 && beq(kv.vhost, vhost) && beq(kv.name, name) && beq(kv.data, data);
    store_read_end(r);
    if (rc == 0)
        ck_assert_msg(same, "%s %s/%s: stored with other data", sessions ? "session" : "retained",
                      vhost, name);
    return rc == 0;
}

/* The walk's order is the hashed keys': compare as sets. */
static void
kv_expect(store *s, bool sessions, int count, const char *const *items)
{
    kvseen seen = kv_walk(s, sessions);
    ck_assert_int_eq(seen.count, count);
    for (int i = 0; i < count; i++)
        ck_assert_msg(strstr(seen.buf, items[i]) != NULL, "%s not in %s", items[i], seen.buf);
}

START_TEST(test_retained_records)
{
    store *s = open_store();
    store_kv a = { B("/"), B("home/kitchen/temp"), B("21.5") };
    store_kv b = { B("/"), B("home/hall/light"), B("on") };
    store_kv c = { B("site2"), B("home/kitchen/temp"), B("19") };   /* same topic, other vhost */
    store_kv d = { B("/"), B("empty"), B("") };
    store_put_retained(s, &a);
    store_put_retained(s, &b);
    store_put_retained(s, &c);
    store_put_retained(s, &d);
    settle(s);
    kv_expect(s, false, 4, (const char *const[]){ "/|home/kitchen/temp=21.5", "/|home/hall/light=on",
                                                  "site2|home/kitchen/temp=19", "/|empty=" });
    ck_assert(kv_has(s, false, "/", "home/kitchen/temp", "21.5"));
    ck_assert(kv_has(s, false, "site2", "home/kitchen/temp", "19"));
    ck_assert(kv_has(s, false, "/", "empty", ""));
    ck_assert(!kv_has(s, false, "/", "home/kitchen", ""));
    ck_assert(!kv_has(s, false, "site3", "home/kitchen/temp", ""));
    /* retained and sessions are separate: no session of that name */
    ck_assert(!kv_has(s, true, "/", "home/kitchen/temp", ""));
    ck_assert_int_eq(kv_walk(s, true).count, 0);

    /* a put of the same vhost and topic replaces */
    a.data = B("22.0");
    store_put_retained(s, &a);
    settle(s);
    ck_assert(kv_has(s, false, "/", "home/kitchen/temp", "22.0"));
    ck_assert(kv_has(s, false, "site2", "home/kitchen/temp", "19"));
    ck_assert_int_eq(kv_walk(s, false).count, 4);

    store_del_retained(s, B("/"), B("home/kitchen/temp"));
    store_del_retained(s, B("/"), B("missing"));   /* deleting nothing is fine */
    store_del_retained(s, B("/"), B("home/hall/light"));
    settle(s);
    kv_expect(s, false, 2, (const char *const[]){ "site2|home/kitchen/temp=19", "/|empty=" });
    ck_assert(!kv_has(s, false, "/", "home/kitchen/temp", ""));
    ck_assert(kv_has(s, false, "site2", "home/kitchen/temp", "19"));
    /* a put and a delete in one batch apply in order */
    store_put_retained(s, &b);
    store_del_retained(s, B("/"), B("home/hall/light"));
    store_put_retained(s, &a);
    settle(s);
    ck_assert(!kv_has(s, false, "/", "home/hall/light", ""));
    ck_assert(kv_has(s, false, "/", "home/kitchen/temp", "22.0"));
    store_close(s);
}
END_TEST

START_TEST(test_session_records)
{
    store *s = open_store();
    store_kv a = { B("/"), B("sensor-1"), B("\x01subs") };
    store_kv b = { B("/"), B("sensor-2"), B("\x01none") };
    store_kv c = { B("plant"), B("sensor-1"), B("\x01other") };
    store_put_session(s, &a);
    store_put_session(s, &b);
    store_put_session(s, &c);
    /* a retained message of the same vhost and name is another record */
    store_kv r = { B("/"), B("sensor-1"), B("retained") };
    store_put_retained(s, &r);
    settle(s);
    kv_expect(s, true, 3, (const char *const[]){ "/|sensor-1=\x01subs", "/|sensor-2=\x01none",
                                                 "plant|sensor-1=\x01other" });
    ck_assert(kv_has(s, true, "/", "sensor-1", "\x01subs"));
    ck_assert(kv_has(s, true, "plant", "sensor-1", "\x01other"));
    ck_assert(!kv_has(s, true, "/", "sensor-3", ""));
    ck_assert(kv_has(s, false, "/", "sensor-1", "retained"));

    /* the views of a get last until the reader ends, past other reads */
    store_reader *rd;
    store_kv got, other;
    ck_assert_int_eq(store_read_begin(s, &rd), 0);
    ck_assert_int_eq(store_get_session(rd, B("/"), B("sensor-2"), &got), 0);
    ck_assert_int_eq(store_get_session(rd, B("plant"), B("sensor-1"), &other), 0);
    ck_assert_int_eq(store_each_session(rd, collect_kv, &(kvseen){ .count = 0 }), 0);
    ck_assert(beq(got.vhost, "/"));
    ck_assert(beq(got.name, "sensor-2"));
    ck_assert(beq(got.data, "\x01none"));
    ck_assert(beq(other.data, "\x01other"));
    store_read_end(rd);

    a.data = B("\x01" "changed");
    store_put_session(s, &a);
    store_del_session(s, B("/"), B("sensor-2"));
    store_del_session(s, B("nowhere"), B("sensor-2"));
    settle(s);
    kv_expect(s, true, 2, (const char *const[]){ "/|sensor-1=\x01" "changed",
                                                 "plant|sensor-1=\x01other" });
    ck_assert(!kv_has(s, true, "/", "sensor-2", ""));
    /* deleting a session leaves the retained message of that name */
    store_del_session(s, B("/"), B("sensor-1"));
    settle(s);
    ck_assert(!kv_has(s, true, "/", "sensor-1", ""));
    ck_assert(kv_has(s, false, "/", "sensor-1", "retained"));
    store_close(s);
}
END_TEST

static int
stop_kv(const store_kv *kv, void *ctx)
{
    (void)kv;
    (*(int *)ctx)++;
    return 9;
}

START_TEST(test_kv_callback_stops)
{
    store *s = open_store();
    store_kv a = { B("/"), B("a"), B("1") }, b = { B("/"), B("b"), B("2") };
    store_put_retained(s, &a);
    store_put_retained(s, &b);
    store_put_session(s, &a);
    store_put_session(s, &b);
    settle(s);
    store_reader *r;
    int calls = 0;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_retained(r, stop_kv, &calls), 9);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(store_each_session(r, stop_kv, &calls), 9);
    ck_assert_int_eq(calls, 2);
    store_read_end(r);
    store_close(s);
}
END_TEST

/* An MQTT topic or client id may be 65535 bytes: far past LMDB's key
 * limit, and the value carries it whole. */
START_TEST(test_kv_long_names)
{
    store *s = open_store();
    char *topic = malloc(65536), *topic2 = malloc(65536);
    uint8_t *data = malloc(200000);
    memset(topic, 't', 65535);
    topic[65535] = '\0';
    memcpy(topic2, topic, 65536);
    topic2[65534] = 'u';                   /* differs in the last byte only */
    for (size_t i = 0; i < 200000; i++)
        data[i] = (uint8_t)(i * 13);
    char *vhost = malloc(65536);
    memset(vhost, 'v', 65535);
    vhost[65535] = '\0';

    store_kv r1 = { B("/"), B(topic), { data, 200000 } };
    store_kv r2 = { B("/"), B(topic2), B("second") };
    store_kv s1 = { B(vhost), B(topic), B("session") };
    store_put_retained(s, &r1);
    store_put_retained(s, &r2);
    store_put_session(s, &s1);
    settle(s);
    kv_expect(s, false, 2, (const char *const[]){ "/|long65535=big!", "/|long65535=second" });
    kv_expect(s, true, 1, (const char *const[]){ "long65535|long65535=session" });

    store_reader *r;
    store_kv got;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_get_retained(r, B("/"), B(topic), &got), 0);
    ck_assert_uint_eq(got.name.len, 65535);
    ck_assert_mem_eq(got.name.data, topic, 65535);
    ck_assert_uint_eq(got.data.len, 200000);
    ck_assert_mem_eq(got.data.data, data, 200000);
    ck_assert_int_eq(store_get_retained(r, B("/"), B(topic2), &got), 0);
    ck_assert(beq(got.data, "second"));
    ck_assert_int_eq(store_get_session(r, B(vhost), B(topic), &got), 0);
    ck_assert_uint_eq(got.vhost.len, 65535);
    ck_assert_mem_eq(got.vhost.data, vhost, 65535);
    ck_assert(beq(got.data, "session"));
    store_read_end(r);

    store_del_retained(s, B("/"), B(topic));
    store_del_session(s, B(vhost), B(topic));
    settle(s);
    kv_expect(s, false, 1, (const char *const[]){ "/|long65535=second" });
    ck_assert_int_eq(kv_walk(s, true).count, 0);
    free(topic);
    free(topic2);
    free(vhost);
    free(data);
    store_close(s);
}
END_TEST

/* The key is FORMAT.md's: SipHash-2-4-128 of u32 len ‖ vhost ‖ u32 len ‖
 * name, no kind byte. */
START_TEST(test_kv_key)
{
    uint8_t hk[16], want[16], got[REC_KV_KEY_LEN], meta[REC_META_KEY_LEN];
    for (int i = 0; i < 16; i++)
        hk[i] = (uint8_t)(0xf0 ^ i);
    static const uint8_t input[] = { 0, 0, 0, 1, '/', 0, 0, 0, 2, 'c', '1' };
    rec_sip h;
    rec_sip_init(&h, hk);
    rec_sip_update(&h, input, sizeof input);
    rec_sip_final(&h, want);
    ck_assert_uint_eq(REC_KV_KEY_LEN, 16);
    rec_kv_key(hk, B("/"), B("c1"), got);
    ck_assert_mem_eq(got, want, 16);
    /* the same input as a queue's key, without its kind byte */
    rec_queue_key(hk, B("/"), B("c1"), meta);
    ck_assert_mem_eq(meta + 1, got, 16);
    /* ("/c", "1") is another identity */
    rec_kv_key(hk, B("/c"), B("1"), want);
    ck_assert(memcmp(got, want, 16) != 0);
}
END_TEST

START_TEST(test_kv_reopen)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_ALWAYS };
    store *s = open_cfg(&cfg);
    store_kv r = { B("/"), B("a/b"), B("kept") };
    store_kv ses = { B("/"), B("client"), B("state") };
    store_kv gone = { B("/"), B("gone"), B("x") };
    store_put_retained(s, &r);
    store_put_retained(s, &gone);
    store_put_session(s, &ses);
    store_del_retained(s, B("/"), B("gone"));
    store_close(s);   /* commits what is queued */

    s = open_cfg(&cfg);
    kv_expect(s, false, 1, (const char *const[]){ "/|a/b=kept" });
    kv_expect(s, true, 1, (const char *const[]){ "/|client=state" });
    ck_assert(kv_has(s, true, "/", "client", "state"));
    /* the same key after reopening: a put replaces, a delete finds it */
    ses.data = B("newer");
    store_put_session(s, &ses);
    store_del_retained(s, B("/"), B("a/b"));
    store_close(s);

    s = open_cfg(&cfg);
    ck_assert_int_eq(kv_walk(s, false).count, 0);
    kv_expect(s, true, 1, (const char *const[]){ "/|client=newer" });
    store_close(s);
}
END_TEST

/* ---- messages and the queue index ------------------------------------------------ */

START_TEST(test_message_records)
{
    store *s = open_store();
    uint8_t body[1000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7);
    store_message m = { .id = 99, .prop_flags = 0x9000, .exchange = B("amq.topic"),
                        .routing_key = B("a.b"), .props = B("\x0atext/plain\x02"),
                        .body = { body, sizeof body } };
    store_qentry e = { .queue_id = 5, .seq = 1, .msg_id = 99, .flags = 0 };
    store_put_message(s, &m, &e, 1);
    /* an empty body and empty strings are fine too */
    store_message empty = { .id = 100, .exchange = B(""), .routing_key = B(""),
                            .props = B(""), .body = B("") };
    store_qentry e2 = { .queue_id = 5, .seq = 2, .msg_id = 100, .flags = STORE_QE_DELIVERED };
    store_put_message(s, &empty, &e2, 1);
    settle(s);

    store_reader *r;
    store_message got;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_get_message(r, 99, &got), 0);
    ck_assert_uint_eq(got.id, 99);
    ck_assert_uint_eq(got.prop_flags, 0x9000);
    ck_assert(beq(got.exchange, "amq.topic"));
    ck_assert(beq(got.routing_key, "a.b"));
    ck_assert(beq(got.props, "\x0atext/plain\x02"));
    ck_assert_uint_eq(got.body.len, sizeof body);
    ck_assert_mem_eq(got.body.data, body, sizeof body);
    ck_assert_int_eq(store_get_message(r, 100, &got), 0);
    ck_assert_uint_eq(got.body.len, 0);
    ck_assert_int_eq(store_get_message(r, 101, &got), STORE_ENOTFOUND);
    store_read_end(r);

    qlist l = entries(s, 5, 0, 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(l.e[0].queue_id, 5);
    ck_assert_uint_eq(l.e[0].seq, 1);
    ck_assert_uint_eq(l.e[0].msg_id, 99);
    ck_assert_uint_eq(l.e[0].flags, 0);
    ck_assert_uint_eq(l.e[1].msg_id, 100);
    ck_assert_uint_eq(l.e[1].flags, STORE_QE_DELIVERED);

    store_del_qentry(s, 5, 1);
    store_del_qentry(s, 5, 77);   /* not there: nothing happens */
    settle(s);
    ck_assert(!msg_exists(s, 99));
    ck_assert(msg_exists(s, 100));
    ck_assert_uint_eq(entries(s, 5, 0, 0).n, 1);
    store_close(s);
}
END_TEST

START_TEST(test_qidx_order)
{
    store *s = open_store();
    static const uint64_t seqs[] = { 5, 1, 300, 3, 256, 4, 2 };
    uint64_t id = 1;
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++, id++) {
        store_qentry e = { 7, seqs[i], id, 0 };
        put_msg(s, id, "x", &e, 1);
    }
    /* neighbours on both sides, including the extremes of the key space */
    store_qentry n1 = { 6, UINT64_MAX, id, 0 };
    put_msg(s, id++, "x", &n1, 1);
    store_qentry n2 = { 8, 0, id, 0 };
    put_msg(s, id++, "x", &n2, 1);
    store_qentry n3 = { 0x100000000ULL + 7, 1, id, 0 };   /* would mix if ids were little-endian */
    put_msg(s, id++, "x", &n3, 1);
    settle(s);

    static const uint64_t want[] = { 1, 2, 3, 4, 5, 256, 300 };
    qlist l = entries(s, 7, 0, 0);
    ck_assert_uint_eq(l.n, 7);
    for (size_t i = 0; i < 7; i++) {
        ck_assert_uint_eq(l.e[i].queue_id, 7);
        ck_assert_uint_eq(l.e[i].seq, want[i]);
    }
    l = entries(s, 7, 4, 0);
    ck_assert_uint_eq(l.n, 4);
    ck_assert_uint_eq(l.e[0].seq, 4);
    l = entries(s, 7, 6, 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(l.e[0].seq, 256);
    l = entries(s, 7, 2, 3);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.e[0].seq, 2);
    ck_assert_uint_eq(l.e[2].seq, 4);
    ck_assert_uint_eq(entries(s, 7, 301, 0).n, 0);
    l = entries(s, 6, 0, 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.e[0].seq, UINT64_MAX);
    ck_assert_uint_eq(entries(s, 8, 0, 0).n, 1);
    ck_assert_uint_eq(entries(s, 9, 0, 0).n, 0);
    ck_assert_uint_eq(entries(s, 0x100000000ULL + 7, 0, 0).n, 1);

    store_del_qrange(s, 7, 3, 256);
    settle(s);
    l = entries(s, 7, 0, 0);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.e[0].seq, 1);
    ck_assert_uint_eq(l.e[1].seq, 2);
    ck_assert_uint_eq(l.e[2].seq, 300);
    ck_assert_uint_eq(entries(s, 6, 0, 0).n, 1);
    ck_assert_uint_eq(entries(s, 8, 0, 0).n, 1);
    ck_assert_uint_eq(count_messages(s), 10 - 4);
    store_close(s);
}
END_TEST

/* ---- reference counts ------------------------------------------------------------- */

START_TEST(test_refs_fanout)
{
    store *s = open_store();
    store_qentry e[3] = { { 1, 10, 50, 0 }, { 2, 20, 50, 0 }, { 3, 30, 50, 0 } };
    put_msg(s, 50, "fan", e, 3);
    settle(s);
    ck_assert_uint_eq(count_messages(s), 1);
    store_del_qentry(s, 1, 10);
    settle(s);
    ck_assert(msg_exists(s, 50));
    store_del_qentry(s, 3, 30);
    settle(s);
    ck_assert(msg_exists(s, 50));
    store_del_qentry(s, 2, 20);
    settle(s);
    ck_assert(!msg_exists(s, 50));
    /* deleting in the same batch as the put works the same way */
    put_msg(s, 51, "fan", (store_qentry[]){ { 1, 11, 51, 0 }, { 2, 21, 51, 0 } }, 2);
    store_del_qentry(s, 1, 11);
    settle(s);
    ck_assert(msg_exists(s, 51));
    store_del_qentry(s, 2, 21);
    settle(s);
    ck_assert(!msg_exists(s, 51));
    ck_assert_uint_eq(count_messages(s), 0);
    store_close(s);
}
END_TEST

START_TEST(test_refs_ranges)
{
    store *s = open_store();
    /* A in q1, q2, q3; B in q1 only; C in q2 twice (two seqs) */
    put_msg(s, 1, "A", (store_qentry[]){ { 1, 1, 1, 0 }, { 2, 1, 1, 0 }, { 3, 1, 1, 0 } }, 3);
    put_msg(s, 2, "B", (store_qentry[]){ { 1, 2, 2, 0 } }, 1);
    put_msg(s, 3, "C", (store_qentry[]){ { 2, 2, 3, 0 }, { 2, 3, 3, 0 } }, 2);
    settle(s);
    ck_assert_uint_eq(count_messages(s), 3);

    store_del_qrange(s, 1, 0, UINT64_MAX);
    settle(s);
    ck_assert(msg_exists(s, 1));
    ck_assert(!msg_exists(s, 2));

    store_del_queue(s, B("/"), B("q2"), 2);
    settle(s);
    ck_assert(msg_exists(s, 1));
    ck_assert(!msg_exists(s, 3));
    ck_assert_uint_eq(entries(s, 2, 0, 0).n, 0);

    store_del_queue(s, B("/"), B("q3"), 3);
    settle(s);
    ck_assert(!msg_exists(s, 1));
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.messages, 0);
    ck_assert_uint_eq(st.qentries, 0);
    store_close(s);
}
END_TEST

START_TEST(test_refs_put_qentry_later)
{
    store *s = open_store();
    store_qentry e = { 1, 1, 9, 0 };
    put_msg(s, 9, "later", &e, 1);
    settle(s);
    store_qentry more[2] = { { 2, 1, 9, 0 }, { 3, 1, 9, 0 } };
    store_put_qentry(s, &more[0]);
    store_put_qentry(s, &more[1]);
    settle(s);
    store_del_qentry(s, 1, 1);
    store_del_qentry(s, 3, 1);
    settle(s);
    ck_assert(msg_exists(s, 9));
    store_del_qentry(s, 2, 1);
    settle(s);
    ck_assert(!msg_exists(s, 9));

    /* an entry for a message that is not stored is refused, not dangling */
    store_qentry orphan = { 4, 1, 12345, 0 };
    store_put_qentry(s, &orphan);
    settle(s);
    ck_assert_uint_eq(entries(s, 4, 0, 0).n, 0);
    store_close(s);
}
END_TEST

/* ---- writes cancelled within their batch ----------------------------------------- */

static store_stats
stats(store *s)
{
    store_stats st;
    store_get_stats(s, &st);
    return st;
}

START_TEST(test_cancel_acked_in_batch)
{
    store *s = open_store();
    put_msg(s, 1, "old", (store_qentry[]){ { 1, 1, 1, 0 } }, 1);
    settle(s);
    store_hold(s, true);
    /* published to two queues, delivered from one, acknowledged in both */
    put_msg(s, 2, "gone", (store_qentry[]){ { 1, 2, 2, 0 }, { 2, 1, 2, 0 } }, 2);
    store_put_qentry(s, &(store_qentry){ 1, 2, 2, STORE_QE_DELIVERED });
    /* delivered, not yet acknowledged: written, with the flag */
    put_msg(s, 3, "held", (store_qentry[]){ { 1, 3, 3, 0 } }, 1);
    store_put_qentry(s, &(store_qentry){ 1, 3, 3, STORE_QE_DELIVERED });
    store_del_qentry(s, 1, 2);
    store_del_qentry(s, 2, 1);
    /* committed in an earlier batch, marked and acknowledged in this one:
     * the mark is cancelled, the delete is not */
    store_put_qentry(s, &(store_qentry){ 1, 1, 1, STORE_QE_DELIVERED });
    store_del_qentry(s, 1, 1);
    store_stats st = stats(s);
    ck_assert_uint_eq(st.cancelled, 3);
    ck_assert_uint_eq(st.dropped, 1);
    store_hold(s, false);
    settle(s);
    ck_assert(!msg_exists(s, 1));
    ck_assert(!msg_exists(s, 2));
    ck_assert(msg_exists(s, 3));
    qlist l = entries(s, 1, 0, 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.e[0].seq, 3);
    ck_assert_uint_eq(l.e[0].flags, STORE_QE_DELIVERED);
    ck_assert_uint_eq(entries(s, 2, 0, 0).n, 0);
    store_close(s);

    /* what reached the disk is whole: recovery finds nothing to mend */
    s = open_store();
    ck_assert_int_eq(store_recover(s, (uint64_t[]){ 1, 2 }, 2), 0);
    st = stats(s);
    ck_assert_uint_eq(st.messages, 1);
    ck_assert_uint_eq(st.qentries, 1);
    store_close(s);
}
END_TEST

START_TEST(test_cancel_keeps_needed_message)
{
    store *s = open_store();
    store_hold(s, true);
    /* queue 2 gains an entry of message 5 (dead-lettered, say) before
     * queue 1's is acknowledged: the message's put must stay */
    put_msg(s, 5, "five", (store_qentry[]){ { 1, 1, 5, 0 } }, 1);
    store_put_qentry(s, &(store_qentry){ 2, 1, 5, 0 });
    store_del_qentry(s, 1, 1);
    ck_assert_uint_eq(stats(s).cancelled, 0);
    /* the other way round, both go */
    put_msg(s, 6, "six", (store_qentry[]){ { 1, 2, 6, 0 } }, 1);
    store_put_qentry(s, &(store_qentry){ 2, 2, 6, 0 });
    store_del_qentry(s, 2, 2);
    store_del_qentry(s, 1, 2);
    store_stats st = stats(s);
    ck_assert_uint_eq(st.cancelled, 2);
    ck_assert_uint_eq(st.dropped, 1);
    store_hold(s, false);
    settle(s);
    ck_assert(msg_exists(s, 5));
    ck_assert(!msg_exists(s, 6));
    ck_assert_uint_eq(entries(s, 1, 0, 0).n, 0);
    qlist l = entries(s, 2, 0, 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.e[0].msg_id, 5);
    store_close(s);
}
END_TEST

START_TEST(test_cancel_stops_at_range_delete)
{
    store *s = open_store();
    store_hold(s, true);
    put_msg(s, 7, "seven", (store_qentry[]){ { 1, 1, 7, 0 }, { 2, 1, 7, 0 } }, 2);
    store_del_qrange(s, 1, 0, UINT64_MAX);
    /* put again after the purge: folding it into the put before the
     * purge would lose it */
    store_put_qentry(s, &(store_qentry){ 1, 1, 7, STORE_QE_DELIVERED });
    store_hold(s, false);
    settle(s);
    qlist l = entries(s, 1, 0, 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.e[0].flags, STORE_QE_DELIVERED);
    ck_assert_uint_eq(entries(s, 2, 0, 0).n, 1);
    ck_assert_uint_eq(stats(s).cancelled, 0);
    store_close(s);
}
END_TEST

START_TEST(test_cancel_only_in_open_batch)
{
    store *s = open_store();
    put_msg(s, 9, "nine", (store_qentry[]){ { 1, 1, 9, 0 } }, 1);
    settle(s);   /* the thread took that batch: its puts are on disk */
    store_del_qentry(s, 1, 1);
    settle(s);
    ck_assert_uint_eq(stats(s).cancelled, 0);
    ck_assert(!msg_exists(s, 9));
    store_close(s);
}
END_TEST

START_TEST(test_cancel_table_full)
{
    enum { N = 3000 };   /* more than one batch's table follows */
    store *s = open_store();
    store_hold(s, true);
    for (uint64_t i = 1; i <= N; i++)
        put_msg(s, 100 + i, "x", (store_qentry[]){ { 1, i, 100 + i, 0 } }, 1);
    for (uint64_t i = 1; i <= N; i++)
        store_del_qentry(s, 1, i);
    store_stats st = stats(s);
    ck_assert_uint_gt(st.cancelled, 0);
    ck_assert_uint_lt(st.cancelled, N);
    ck_assert_uint_eq(st.dropped, st.cancelled);
    store_hold(s, false);
    settle(s);
    st = stats(s);
    ck_assert_uint_eq(st.messages, 0);
    ck_assert_uint_eq(st.qentries, 0);
    store_close(s);
}
END_TEST

START_TEST(test_flags_rewrite)
{
    store *s = open_store();
    put_msg(s, 1, "one", (store_qentry[]){ { 1, 1, 1, 0 } }, 1);
    put_msg(s, 2, "two", (store_qentry[]){ { 1, 2, 2, 0 }, { 2, 1, 2, 0 } }, 2);
    settle(s);
    store_qentry r1 = { 1, 1, 1, STORE_QE_DELIVERED };
    store_qentry r2 = { 2, 1, 2, STORE_QE_DELIVERED };
    for (int i = 0; i < 3; i++) {   /* rewriting again and again changes nothing */
        store_put_qentry(s, &r1);
        store_put_qentry(s, &r2);
    }
    settle(s);
    qlist l = entries(s, 1, 1, 1);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.e[0].flags, STORE_QE_DELIVERED);
    ck_assert_uint_eq(entries(s, 2, 0, 0).e[0].flags, STORE_QE_DELIVERED);
    ck_assert_uint_eq(entries(s, 1, 2, 0).e[0].flags, 0);

    /* one reference each still: one delete takes message 1 */
    store_del_qentry(s, 1, 1);
    settle(s);
    ck_assert(!msg_exists(s, 1));
    /* message 2 still has exactly two */
    store_del_qentry(s, 2, 1);
    settle(s);
    ck_assert(msg_exists(s, 2));
    store_del_qentry(s, 1, 2);
    settle(s);
    ck_assert(!msg_exists(s, 2));
    store_close(s);
}
END_TEST

/* ---- the map ----------------------------------------------------------------------- */

START_TEST(test_map_growth)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_NONE, .initial_map_size = 1 << 20 };
    store *s = open_cfg(&cfg);
    enum { BODY = 64 * 1024, COUNT = 320 };   /* 20 MiB */
    uint8_t *body = malloc(BODY);
    ck_assert_ptr_nonnull(body);
    for (uint64_t id = 1; id <= COUNT; id++) {
        memset(body, (int)id, BODY);
        store_message m = { .id = id, .exchange = B(""), .routing_key = B("q"), .props = B(""),
                            .body = { body, BODY } };
        store_qentry e = { 1, id, id, 0 };
        store_put_message(s, &m, &e, 1);
        if (id % 100 == 0)   /* some batches big, some small */
            settle(s);
    }
    settle(s);
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.messages, COUNT);
    ck_assert_uint_ge(st.map_size, 20u << 20);

    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    for (uint64_t id = 1; id <= COUNT; id++) {
        store_message m;
        ck_assert_int_eq(store_get_message(r, id, &m), 0);
        ck_assert_uint_eq(m.body.len, BODY);
        ck_assert_uint_eq(m.body.data[0], (uint8_t)id);
        ck_assert_uint_eq(m.body.data[BODY - 1], (uint8_t)id);
    }
    store_read_end(r);

    store_done d[16];
    size_t n;
    while ((n = store_drain(s, d, 16)) > 0)
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(d[i].status, 0);
    store_close(s);
    free(body);
}
END_TEST

typedef struct reader_ctx {
    store *s;
    atomic_int stop;
    atomic_long rounds, seen;
} reader_ctx;

static int
check_entry(const store_qentry *e, void *ctx)
{
    reader_ctx *rc = ctx;
    rc->seen++;
    return 0;
}

/* Reads in a loop on its own thread while the map grows under it. */
static void *
reader_main(void *arg)
{
    reader_ctx *rc = arg;
    while (!atomic_load(&rc->stop)) {
        store_reader *r;
        if (store_read_begin(rc->s, &r) != 0)
            return (void *)1;
        store_each_qentry(r, 1, 0, 0, check_entry, rc);
        store_message m;
        if (store_get_message(r, 1, &m) == 0 && m.body.len != 64 * 1024)
            return (void *)2;
        store_read_end(r);
        rc->rounds++;
    }
    return NULL;
}

START_TEST(test_map_growth_with_readers)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_NONE, .initial_map_size = 1 << 20 };
    store *s = open_cfg(&cfg);
    reader_ctx rc = { .s = s };
    atomic_init(&rc.stop, 0);
    atomic_init(&rc.rounds, 0);
    atomic_init(&rc.seen, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &rc), 0);
    enum { BODY = 64 * 1024, COUNT = 320 };
    uint8_t *body = calloc(1, BODY);
    ck_assert_ptr_nonnull(body);
    for (uint64_t id = 1; id <= COUNT; id++) {
        store_message m = { .id = id, .exchange = B(""), .routing_key = B("q"), .props = B(""),
                            .body = { body, BODY } };
        store_qentry e = { 1, id, id, 0 };
        store_put_message(s, &m, &e, 1);
        if (id % 10 == 0)
            settle(s);
    }
    settle(s);
    atomic_store(&rc.stop, 1);
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        ck_assert_ptr_null(ret);
    }
    ck_assert_uint_eq(entries(s, 1, 0, 64).n, 64);   /* a qlist holds 64; stats count the rest */
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.messages, COUNT);
    ck_assert_uint_ge(st.map_size, 20u << 20);
    store_close(s);
    free(body);
}
END_TEST

/* ---- batches and completions -------------------------------------------------------- */

typedef struct slow {
    atomic_int calls;
    atomic_int in_first;
} slow;

/* Holds the storage thread after the first batch, as a slow disk would. */
static void
slow_done(void *ctx)
{
    slow *sl = ctx;
    if (atomic_fetch_add(&sl->calls, 1) == 0) {
        atomic_store(&sl->in_first, 1);
        struct timespec ts = { 0, 200 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

START_TEST(test_batches_group)
{
    slow sl;
    atomic_init(&sl.calls, 0);
    atomic_init(&sl.in_first, 0);
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_ALWAYS, .on_done = slow_done,
                         .ctx = &sl };
    store *s = open_cfg(&cfg);
    ck_assert_uint_eq(store_batch_id(s), 1);
    ck_assert_uint_eq(store_committed(s), 0);

    put_msg(s, 1, "first", (store_qentry[]){ { 1, 1, 1, 0 } }, 1);
    while (!atomic_load(&sl.in_first)) {
        struct timespec ts = { 0, 1000000L };
        nanosleep(&ts, NULL);
    }
    /* The thread is busy: everything now lands in the open batch. */
    enum { WRITES = 1000 };
    ck_assert_uint_eq(store_batch_id(s), 1);   /* the latest write's batch, taken */
    for (uint64_t i = 2; i <= WRITES; i++) {
        store_qentry e = { 1, i, i, 0 };
        put_msg(s, i, "more", &e, 1);
    }
    uint64_t last = store_batch_id(s);
    ck_assert_uint_eq(last, 2);
    ck_assert_int_eq(store_wait(s, last), 0);
    ck_assert_uint_ge(store_committed(s), last);

    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.messages, WRITES);
    ck_assert_uint_lt(st.batches, WRITES);
    ck_assert_uint_le(st.commits, 3);

    /* completions: every id once, in order, all committed */
    store_done d[8];
    uint64_t expect = 1;
    size_t n;
    while ((n = store_drain(s, d, 8)) > 0) {
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_eq(d[i].batch_id, expect++);
            ck_assert_int_eq(d[i].status, 0);
        }
    }
    ck_assert_uint_eq(expect - 1, st.batches);
    store_close(s);
    ck_assert_int_eq(atomic_load(&sl.calls), (int)st.batches);
}
END_TEST

START_TEST(test_wait_and_drain)
{
    store *s = open_store();
    store_done d[4];
    ck_assert_uint_eq(store_drain(s, d, 4), 0);
    ck_assert_uint_eq(store_committed(s), 0);
    /* nothing asked for beyond the open batch */
    ck_assert_int_eq(store_wait(s, store_batch_id(s) + 1), STORE_ENOTFOUND);

    /* waiting for the open batch while it is empty still returns */
    uint64_t id = store_batch_id(s);
    ck_assert_int_eq(store_wait(s, id), 0);
    ck_assert_uint_eq(store_committed(s), id);
    ck_assert_uint_gt(store_batch_id(s), id);

    store_queue q = { B("/"), B("q"), 1, 0, B("") };
    store_put_queue(s, &q);
    uint64_t id2 = store_batch_id(s);
    ck_assert_uint_gt(id2, id);
    ck_assert_int_eq(store_wait(s, id2), 0);
    ck_assert_uint_ge(store_committed(s), id2);
    ck_assert_int_eq(store_wait(s, id), 0);   /* an old batch: at once */

    uint64_t f = store_flush(s);
    ck_assert_int_eq(store_wait(s, f), 0);

    size_t n = store_drain(s, d, 1);   /* a short drain leaves the rest */
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(d[0].batch_id, 1);
    n = store_drain(s, d, 4);
    ck_assert_uint_eq(n, f - 1);
    ck_assert_uint_eq(d[n - 1].batch_id, f);
    ck_assert_uint_eq(store_drain(s, d, 4), 0);

    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.batches, f);
    ck_assert_uint_eq(st.commits, 1);   /* empty batches commit nothing */
    store_close(s);
}
END_TEST

/* ---- recovery ------------------------------------------------------------------------ */

START_TEST(test_recover)
{
    store *s = open_store();
    /* live queues: 1 and 3; queue 2 was transient or deleted in a crash */
    put_msg(s, 1, "m1", (store_qentry[]){ { 1, 1, 1, 0 }, { 2, 1, 1, 0 } }, 2);
    put_msg(s, 2, "m2", (store_qentry[]){ { 2, 2, 2, 0 } }, 1);
    put_msg(s, 3, "m3", (store_qentry[]){ { 1, 3, 3, STORE_QE_TRANSIENT } }, 1);
    put_msg(s, 4, "m4", (store_qentry[]){ { 1, 4, 4, 0 }, { 3, 4, 4, 0 } }, 2);
    put_msg(s, 5, "m5",
            (store_qentry[]){ { 1, 5, 5, STORE_QE_DELIVERED }, { 3, 5, 5, STORE_QE_TRANSIENT } }, 2);
    put_msg(s, 6, "m6", (store_qentry[]){ { 3, 6, 6, 0 }, { 3, 7, 6, 0 }, { 1, 6, 6, 0 } }, 3);
    settle(s);
    store_close(s);

    s = open_store();
    uint64_t live[] = { 3, 1, 99 };
    ck_assert_int_eq(store_recover(s, live, 3), 0);
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.messages, 4);   /* 1, 4, 5, 6 */
    ck_assert_uint_eq(st.qentries, 1 + 2 + 1 + 3);
    ck_assert(msg_exists(s, 1));
    ck_assert(!msg_exists(s, 2));
    ck_assert(!msg_exists(s, 3));
    ck_assert_uint_eq(entries(s, 2, 0, 0).n, 0);
    qlist l = entries(s, 1, 0, 0);
    ck_assert_uint_eq(l.n, 4);
    ck_assert_uint_eq(l.e[0].seq, 1);
    ck_assert_uint_eq(l.e[1].seq, 4);
    ck_assert_uint_eq(l.e[2].seq, 5);
    ck_assert_uint_eq(l.e[2].flags, STORE_QE_DELIVERED);
    ck_assert_uint_eq(entries(s, 3, 0, 0).n, 3);

    /* the rebuilt counts: m1 and m5 have one entry left, m4 two, m6 three */
    store_del_qentry(s, 1, 1);
    store_del_qentry(s, 1, 5);
    store_del_qentry(s, 1, 4);
    store_del_qentry(s, 3, 6);
    store_del_qentry(s, 1, 6);
    settle(s);
    ck_assert(!msg_exists(s, 1));
    ck_assert(!msg_exists(s, 5));
    ck_assert(msg_exists(s, 4));
    ck_assert(msg_exists(s, 6));
    store_del_qentry(s, 3, 4);
    store_del_qentry(s, 3, 7);
    settle(s);
    ck_assert(!msg_exists(s, 4));
    ck_assert(!msg_exists(s, 6));
    store_close(s);
}
END_TEST

START_TEST(test_recover_nothing_live)
{
    store *s = open_store();
    put_msg(s, 1, "m1", (store_qentry[]){ { 1, 1, 1, 0 } }, 1);
    settle(s);
    ck_assert_int_eq(store_recover(s, NULL, 0), 0);
    store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.messages, 0);
    ck_assert_uint_eq(st.qentries, 0);
    store_close(s);
}
END_TEST

/* ---- persistence ---------------------------------------------------------------------- */

START_TEST(test_reopen)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_BATCH, .sync_interval_ms = 5 };
    store *s = open_cfg(&cfg);
    store_exchange x = { B("/"), B("logs"), 2, STORE_F_DURABLE | STORE_F_INTERNAL, B("\x01\x02") };
    store_queue q = { B("/"), B("jobs"), 42, STORE_F_DURABLE | STORE_F_EXCLUSIVE, B("xyz") };
    store_binding b = { B("/"), B("logs"), STORE_DEST_QUEUE, B("jobs"), B("#"), B("") };
    store_put_exchange(s, &x);
    store_put_queue(s, &q);
    store_put_binding(s, &b);
    put_msg(s, 8, "kept", (store_qentry[]){ { 42, 1, 8, 0 }, { 43, 1, 8, 0 } }, 2);
    store_close(s);   /* commits what is queued */

    cfg.sync = STORE_SYNC_ALWAYS;
    s = open_cfg(&cfg);
    ck_assert_int_eq(exchanges(s).count, 1);
    qseen seen = queues(s);
    ck_assert_int_eq(seen.count, 1);
    ck_assert_uint_eq(seen.id_of_jobs, 42);
    ck_assert_int_eq(bindings(s).count, 1);
    ck_assert(msg_exists(s, 8));
    uint64_t live[] = { 42, 43 };
    ck_assert_int_eq(store_recover(s, live, 2), 0);
    /* the same key after reopening: a delete finds the record */
    store_del_binding(s, &b);
    store_del_qentry(s, 42, 1);
    settle(s);
    ck_assert_int_eq(bindings(s).count, 0);
    ck_assert(msg_exists(s, 8));
    store_del_qentry(s, 43, 1);
    settle(s);
    ck_assert(!msg_exists(s, 8));
    store_close(s);
}
END_TEST

/* Appends go at the end of a tree only when the key is beyond its last
 * one, which a reopened store must learn from the file: entries and
 * messages below, between and above what is stored all land. */
START_TEST(test_append_after_reopen)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_ALWAYS };
    store *s = open_cfg(&cfg);
    put_msg(s, 20, "a", (store_qentry[]){ { 5, 10, 20, 0 } }, 1);
    store_close(s);

    s = open_cfg(&cfg);
    put_msg(s, 10, "b", (store_qentry[]){ { 5, 3, 10, 0 } }, 1);    /* both below */
    put_msg(s, 30, "c", (store_qentry[]){ { 5, 11, 30, 0 } }, 1);   /* both above */
    put_msg(s, 25, "d", (store_qentry[]){ { 4, 99, 25, 0 }, { 6, 1, 25, 0 } }, 2);
    put_msg(s, 20, "a", (store_qentry[]){ { 6, 2, 20, 0 } }, 1);    /* stored again */
    settle(s);
    qlist l = entries(s, 5, 0, 0);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.e[0].seq, 3);
    ck_assert_uint_eq(l.e[1].seq, 10);
    ck_assert_uint_eq(l.e[2].seq, 11);
    ck_assert_uint_eq(entries(s, 4, 0, 0).n, 1);
    ck_assert_uint_eq(entries(s, 6, 0, 0).n, 2);
    ck_assert_uint_eq(count_messages(s), 4);
    /* message 20 has two entries now: one delete keeps it */
    store_del_qentry(s, 5, 10);
    settle(s);
    ck_assert(msg_exists(s, 20));
    store_del_qentry(s, 6, 2);
    settle(s);
    ck_assert(!msg_exists(s, 20));
    store_close(s);
}
END_TEST

/* ---- fixtures and corrupt records ------------------------------------------------------- */

/* Looks for tests/unit/fixtures/name in dir and each directory above it. */
static bool
fixture_find(char *dir, const char *name, char *path, size_t cap)
{
    for (;;) {
        struct stat st;
        snprintf(path, cap, "%s/tests/unit/fixtures/%s", dir, name);
        if (stat(path, &st) == 0)
            return true;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
            return false;
        *slash = '\0';
    }
}

/* Finds a fixture: $CONEY_FIXTURES, else upward from the working directory
 * (make runs the tests from the repository root), else upward from the
 * test binary (build/unit-tests run from anywhere). */
static bool
fixture_load(const char *name, uint8_t *buf, size_t cap, size_t *len)
{
    char path[8192], dir[4096];
    const char *env = getenv("CONEY_FIXTURES");
    bool found = false;
    if (env != NULL) {
        snprintf(path, sizeof path, "%s/%s", env, name);
        found = true;
    }
    if (!found && getcwd(dir, sizeof dir) != NULL)
        found = fixture_find(dir, name, path, sizeof path);
    if (!found) {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        if (n > 0) {
            dir[n] = '\0';
            found = fixture_find(dir, name, path, sizeof path);
        }
    }
    if (!found)
        return false;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return true;
}

static size_t
fixture(const char *name, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    ck_assert_msg(fixture_load(name, buf, cap, &len),
                  "fixture %s not found (run from the repository, or set CONEY_FIXTURES)", name);
    return len;
}

START_TEST(test_fixtures_valid)
{
    uint8_t v[256], enc[256];
    size_t n;

    n = fixture("exchange.bin", v, sizeof v);
    store_exchange x;
    ck_assert_int_eq(rec_exchange_decode(v, n, &x), 0);
    ck_assert(beq(x.vhost, "/"));
    ck_assert(beq(x.name, "logs"));
    ck_assert_uint_eq(x.type, 2);
    ck_assert_uint_eq(x.flags, STORE_F_DURABLE);
    ck_assert_uint_eq(x.args.len, 0);
    ck_assert_uint_eq(rec_exchange_size(&x), n);
    rec_exchange_encode(&x, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("queue.bin", v, sizeof v);
    store_queue q;
    ck_assert_int_eq(rec_queue_decode(v, n, &q), 0);
    ck_assert(beq(q.vhost, "/"));
    ck_assert(beq(q.name, "jobs"));
    ck_assert_uint_eq(q.id, 42);
    ck_assert_uint_eq(q.flags, STORE_F_DURABLE);
    ck_assert(beq(q.args, "xyz"));
    ck_assert_uint_eq(rec_queue_size(&q), n);
    rec_queue_encode(&q, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("binding.bin", v, sizeof v);
    store_binding b;
    ck_assert_int_eq(rec_binding_decode(v, n, &b), 0);
    ck_assert(beq(b.vhost, "/"));
    ck_assert(beq(b.source, "logs"));
    ck_assert_uint_eq(b.dest_kind, STORE_DEST_QUEUE);
    ck_assert(beq(b.dest, "jobs"));
    ck_assert(beq(b.key, "a.*"));
    ck_assert_uint_eq(b.args.len, 0);
    ck_assert_uint_eq(rec_binding_size(&b), n);
    rec_binding_encode(&b, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("message.bin", v, sizeof v);
    store_message m;
    ck_assert_int_eq(rec_message_decode(v, n, &m), 0);
    ck_assert_uint_eq(m.prop_flags, 0x9000);
    ck_assert(beq(m.exchange, "logs"));
    ck_assert(beq(m.routing_key, "a.b.c"));
    ck_assert(beq(m.props, "\x0atext/plain\x02"));
    ck_assert(beq(m.body, "hello"));
    ck_assert_uint_eq(rec_message_size(&m), n);
    rec_message_encode(&m, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("qentry.bin", v, sizeof v);
    store_qentry e;
    ck_assert_uint_eq(n, REC_QENTRY_LEN);
    ck_assert_int_eq(rec_qentry_decode(v, n, &e), 0);
    ck_assert_uint_eq(e.msg_id, 7);
    ck_assert_uint_eq(e.flags, STORE_QE_DELIVERED);
    rec_qentry_encode(7, STORE_QE_DELIVERED, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("retained.bin", v, sizeof v);
    store_kv kv;
    ck_assert_int_eq(rec_kv_decode(REC_RETAINED, v, n, &kv), 0);
    ck_assert(beq(kv.vhost, "/"));
    ck_assert(beq(kv.name, "a/b"));
    ck_assert(beq(kv.data, "hi"));
    ck_assert_uint_eq(rec_kv_size(&kv), n);
    rec_kv_encode(REC_RETAINED, &kv, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("session.bin", v, sizeof v);
    ck_assert_int_eq(rec_kv_decode(REC_SESSION, v, n, &kv), 0);
    ck_assert(beq(kv.vhost, "/"));
    ck_assert(beq(kv.name, "c1"));
    ck_assert_uint_eq(kv.data.len, 3);
    ck_assert_mem_eq(kv.data.data, "\x01\x00\x05", 3);
    ck_assert_uint_eq(rec_kv_size(&kv), n);
    rec_kv_encode(REC_SESSION, &kv, enc);
    ck_assert_mem_eq(enc, v, n);
}
END_TEST

START_TEST(test_fixtures_bad)
{
    uint8_t v[256];
    size_t n;
    store_message m;
    store_exchange x;
    store_qentry e;

    n = fixture("message-truncated.bin", v, sizeof v);
    ck_assert_int_eq(rec_message_decode(v, n, &m), STORE_ECORRUPT);
    n = fixture("exchange-badtype.bin", v, sizeof v);
    ck_assert_int_eq(rec_exchange_decode(v, n, &x), STORE_ECORRUPT);
    n = fixture("qentry-newer.bin", v, sizeof v);
    ck_assert_int_eq(rec_qentry_decode(v, n, &e), STORE_EVERSION);

    /* every prefix of a valid value is corrupt, never a crash; so is a
     * value with a byte too many, or one decoded as another type */
    n = fixture("message.bin", v, sizeof v);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);   /* exact size: ASan sees overreads */
        memcpy(copy, v, cut);
        ck_assert_int_eq(rec_message_decode(copy, cut, &m), STORE_ECORRUPT);
        free(copy);
    }
    v[n] = 0;
    ck_assert_int_eq(rec_message_decode(v, n + 1, &m), STORE_ECORRUPT);
    ck_assert_int_eq(rec_exchange_decode(v, n, &x), STORE_ECORRUPT);
    v[0] = 0;   /* version 0 never existed */
    ck_assert_int_eq(rec_message_decode(v, n, &m), STORE_ECORRUPT);
    /* a length field pointing far past the end */
    n = fixture("queue.bin", v, sizeof v);
    v[2] = 0xff;
    v[3] = 0xff;
    store_queue q;
    ck_assert_int_eq(rec_queue_decode(v, n, &q), STORE_ECORRUPT);
    /* a binding with an unknown destination kind */
    n = fixture("binding.bin", v, sizeof v);
    v[2 + 3 + 6] = 9;
    store_binding b;
    ck_assert_int_eq(rec_binding_decode(v, n, &b), STORE_ECORRUPT);

    /* MQTT records: a byte left over, a retained message read as a
     * session, every prefix, a data length past the end */
    store_kv kv;
    n = fixture("session-trailing.bin", v, sizeof v);
    ck_assert_int_eq(rec_kv_decode(REC_SESSION, v, n, &kv), STORE_ECORRUPT);
    ck_assert_int_eq(rec_kv_decode(REC_SESSION, v, n - 1, &kv), 0);
    n = fixture("retained.bin", v, sizeof v);
    ck_assert_int_eq(rec_kv_decode(REC_SESSION, v, n, &kv), STORE_ECORRUPT);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, v, cut);
        ck_assert_int_eq(rec_kv_decode(REC_RETAINED, copy, cut, &kv), STORE_ECORRUPT);
        free(copy);
    }
    v[2 + 3 + 5] = 0xff;   /* the data's u32 length */
    ck_assert_int_eq(rec_kv_decode(REC_RETAINED, v, n, &kv), STORE_ECORRUPT);
    n = fixture("retained.bin", v, sizeof v);
    v[0] = REC_VERSION + 1;
    ck_assert_int_eq(rec_kv_decode(REC_RETAINED, v, n, &kv), STORE_EVERSION);
}
END_TEST

/* Damaged retained and session records are logged and skipped by the
 * walks and refused by the gets; the good ones around them still come. */
START_TEST(test_kv_corrupt_in_env)
{
    store *s = open_store();
    uint8_t hk[16];
    store_hash_key(s, hk);
    store_kv a = { B("/"), B("a"), B("1") }, c = { B("/"), B("c"), B("3") };
    store_put_retained(s, &a);
    store_put_retained(s, &c);
    store_put_session(s, &a);
    store_put_session(s, &c);

    uint8_t v[256], k[REC_KV_KEY_LEN];
    size_t n;
    /* garbage under the key of "/" "b" in both */
    rec_kv_key(hk, B("/"), B("b"), k);
    n = fixture("message-truncated.bin", v, sizeof v);
    store_put_raw(s, REC_DB_RETAINED, k, sizeof k, v, n);
    store_put_raw(s, REC_DB_SESSIONS, k, sizeof k, v, n);
    /* a valid record (of "/" "a/b", "/" "c1") under the key of another name */
    rec_kv_key(hk, B("/"), B("elsewhere"), k);
    n = fixture("retained.bin", v, sizeof v);
    store_put_raw(s, REC_DB_RETAINED, k, sizeof k, v, n);
    n = fixture("session.bin", v, sizeof v);
    store_put_raw(s, REC_DB_SESSIONS, k, sizeof k, v, n);
    /* a key of the wrong length holding a valid value */
    store_put_raw(s, REC_DB_SESSIONS, k, 5, v, n);
    /* a session record in retained, under its right key */
    rec_kv_key(hk, B("/"), B("c1"), k);
    store_put_raw(s, REC_DB_RETAINED, k, sizeof k, v, n);
    /* a session with a byte too many, under its right key */
    n = fixture("session-trailing.bin", v, sizeof v);
    store_put_raw(s, REC_DB_SESSIONS, k, sizeof k, v, n);
    settle(s);

    kv_expect(s, false, 2, (const char *const[]){ "/|a=1", "/|c=3" });
    kv_expect(s, true, 2, (const char *const[]){ "/|a=1", "/|c=3" });
    store_reader *r;
    store_kv kv;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_get_retained(r, B("/"), B("b"), &kv), STORE_ECORRUPT);
    ck_assert_int_eq(store_get_session(r, B("/"), B("b"), &kv), STORE_ECORRUPT);
    ck_assert_int_eq(store_get_retained(r, B("/"), B("elsewhere"), &kv), STORE_ECORRUPT);
    ck_assert_int_eq(store_get_retained(r, B("/"), B("c1"), &kv), STORE_ECORRUPT);
    ck_assert_int_eq(store_get_session(r, B("/"), B("c1"), &kv), STORE_ECORRUPT);
    ck_assert_int_eq(store_get_session(r, B("/"), B("a"), &kv), 0);
    store_read_end(r);

    /* damaged records can be deleted, and a put over one repairs it */
    store_del_retained(s, B("/"), B("b"));
    store_kv c1 = { B("/"), B("c1"), B("fixed") };
    store_put_session(s, &c1);
    settle(s);
    ck_assert(kv_has(s, true, "/", "c1", "fixed"));
    kv_expect(s, true, 3, (const char *const[]){ "/|a=1", "/|c=3", "/|c1=fixed" });

    /* a record of a newer version stops the walk and fails the get */
    rec_kv_key(hk, B("/"), B("a/b"), k);
    n = fixture("retained.bin", v, sizeof v);
    v[0] = REC_VERSION + 1;
    store_put_raw(s, REC_DB_RETAINED, k, sizeof k, v, n);
    settle(s);
    kvseen none = { .count = 0 };
    none.buf[0] = '\0';
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_retained(r, collect_kv, &none), STORE_EVERSION);
    ck_assert_int_eq(store_get_retained(r, B("/"), B("a/b"), &kv), STORE_EVERSION);
    ck_assert_int_eq(store_each_session(r, collect_kv, &none), 0);
    store_read_end(r);
    store_close(s);
}
END_TEST

START_TEST(test_corrupt_in_env)
{
    store *s = open_store();
    uint8_t hk[16];
    store_hash_key(s, hk);
    store_exchange a = { B("/"), B("a"), 1, 0, B("") };
    store_exchange c = { B("/"), B("c"), 1, 0, B("") };
    store_put_exchange(s, &a);
    store_put_exchange(s, &c);

    uint8_t v[256];
    size_t n;
    /* garbage under an exchange key */
    uint8_t k1[REC_META_KEY_LEN];
    rec_exchange_key(hk, B("/"), B("b"), k1);
    n = fixture("message-truncated.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k1, sizeof k1, v, n);
    /* a valid exchange value under the key of another name */
    uint8_t k2[REC_META_KEY_LEN];
    rec_exchange_key(hk, B("/"), B("elsewhere"), k2);
    n = fixture("exchange.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k2, sizeof k2, v, n);
    /* an exchange key of the wrong length */
    store_put_raw(s, REC_DB_META, k2, 5, v, n);
    /* a broken queue entry between two good ones, and a broken message */
    put_msg(s, 1, "m1", (store_qentry[]){ { 1, 1, 1, 0 } }, 1);
    put_msg(s, 3, "m3", (store_qentry[]){ { 1, 3, 3, 0 } }, 1);
    uint8_t qk[REC_QE_KEY_LEN];
    rec_qentry_key(1, 2, qk);
    n = fixture("exchange-badtype.bin", v, sizeof v);
    store_put_raw(s, REC_DB_QIDX, qk, sizeof qk, v, n);
    uint8_t mk[8];
    rec_put_u64(mk, 2);
    n = fixture("message-truncated.bin", v, sizeof v);
    store_put_raw(s, REC_DB_MSGS, mk, sizeof mk, v, n);
    settle(s);

    names nm = exchanges(s);
    ck_assert_int_eq(nm.count, 2);
    ck_assert(strcmp(nm.buf, "a,c") == 0 || strcmp(nm.buf, "c,a") == 0);
    qlist l = entries(s, 1, 0, 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(l.e[0].seq, 1);
    ck_assert_uint_eq(l.e[1].seq, 3);
    l = entries(s, 1, 0, 2);   /* a skipped record does not count toward max */
    ck_assert_uint_eq(l.n, 2);
    store_reader *r;
    store_message m;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_get_message(r, 2, &m), STORE_ECORRUPT);
    store_read_end(r);

    /* deleting the broken entry is fine; so is recovery over all this */
    store_del_qentry(s, 1, 2);
    settle(s);
    uint64_t live[] = { 1 };
    ck_assert_int_eq(store_recover(s, live, 1), 0);
    ck_assert_uint_eq(entries(s, 1, 0, 0).n, 2);
    ck_assert(msg_exists(s, 1));
    ck_assert(msg_exists(s, 3));

    /* a record of a newer version stops the walk: skipping it would lose
     * state this build cannot read */
    uint8_t k3[REC_META_KEY_LEN];
    rec_exchange_key(hk, B("/"), B("logs"), k3);
    n = fixture("exchange.bin", v, sizeof v);
    v[0] = REC_VERSION + 1;
    store_put_raw(s, REC_DB_META, k3, sizeof k3, v, n);
    settle(s);
    names none = { .count = 0 };
    none.buf[0] = '\0';
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_exchange(r, collect_exchange, &none), STORE_EVERSION);
    store_read_end(r);
    store_close(s);
}
END_TEST

/* ---- access control: vhosts, users, permissions, topic permissions --------------------- */

/* What a walk over one kind saw, one line per record ("|" between
 * fields, "," between records), fields longer than 20 bytes shown as
 * "long<len>"; compared as sets, since the order is the hashed keys'. */
enum acl_kind { ACL_VHOST, ACL_USER, ACL_PERM, ACL_TOPIC };

static void
seen_add(kvseen *seen, const char *line)
{
    size_t len = strlen(seen->buf);
    int n = snprintf(seen->buf + len, sizeof seen->buf - len, "%s%s", len > 0 ? "," : "", line);
    ck_assert_int_lt(n, (int)(sizeof seen->buf - len));
    seen->count++;
}

static int
collect_vhost(const store_vhost *h, void *ctx)
{
    char name[32], desc[32], tags[32], dqt[32], line[256];
    kv_short(name, h->name);
    kv_short(desc, h->description);
    kv_short(tags, h->tags);
    kv_short(dqt, h->default_queue_type);
    snprintf(line, sizeof line, "%s|%s|%s|%u|%s|%lld|%lld", name, desc, tags, h->flags, dqt,
             (long long)h->max_connections, (long long)h->max_queues);
    seen_add(ctx, line);
    return 0;
}

static int
collect_user(const store_user *u, void *ctx)
{
    char name[32], tags[32], hash[2 * 64 + 1] = "", line[512];
    kv_short(name, u->name);
    kv_short(tags, u->tags);
    ck_assert_uint_le(u->password_hash.len, 64);
    for (uint32_t i = 0; i < u->password_hash.len; i++)
        snprintf(hash + 2 * i, 3, "%02x", u->password_hash.data[i]);
    snprintf(line, sizeof line, "%s|%s|%u|%s|%lld|%lld", name, hash, u->hash_algo, tags,
             (long long)u->max_connections, (long long)u->max_channels);
    seen_add(ctx, line);
    return 0;
}

static int
collect_permission(const store_permission *p, void *ctx)
{
    char user[32], vhost[32], conf[32], wr[32], rd[32], line[256];
    kv_short(user, p->user);
    kv_short(vhost, p->vhost);
    kv_short(conf, p->configure);
    kv_short(wr, p->write);
    kv_short(rd, p->read);
    snprintf(line, sizeof line, "%s|%s|%s|%s|%s", user, vhost, conf, wr, rd);
    seen_add(ctx, line);
    return 0;
}

static int
collect_topic_permission(const store_topic_permission *p, void *ctx)
{
    char user[32], vhost[32], x[32], wr[32], rd[32], line[256];
    kv_short(user, p->user);
    kv_short(vhost, p->vhost);
    kv_short(x, p->exchange);
    kv_short(wr, p->write);
    kv_short(rd, p->read);
    snprintf(line, sizeof line, "%s|%s|%s|%s|%s", user, vhost, x, wr, rd);
    seen_add(ctx, line);
    return 0;
}

/* One walk of kind into seen; returns what the walk returned. */
static int
acl_each(store_reader *r, enum acl_kind kind, kvseen *seen)
{
    switch (kind) {
    case ACL_VHOST:
        return store_each_vhost(r, collect_vhost, seen);
    case ACL_USER:
        return store_each_user(r, collect_user, seen);
    case ACL_PERM:
        return store_each_permission(r, collect_permission, seen);
    default:
        return store_each_topic_permission(r, collect_topic_permission, seen);
    }
}

static kvseen
acl_walk(store *s, enum acl_kind kind)
{
    kvseen seen = { .count = 0 };
    seen.buf[0] = '\0';
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(acl_each(r, kind, &seen), 0);
    store_read_end(r);
    return seen;
}

/* Exactly count records, each of items among them (whole lines). */
static void
acl_expect(store *s, enum acl_kind kind, int count, const char *const *items)
{
    kvseen seen = acl_walk(s, kind);
    ck_assert_msg(seen.count == count, "%d records, not %d: %s", seen.count, count, seen.buf);
    char padded[sizeof seen.buf + 2], item[512];
    snprintf(padded, sizeof padded, ",%s,", seen.buf);
    for (int i = 0; i < count; i++) {
        snprintf(item, sizeof item, ",%s,", items[i]);
        ck_assert_msg(strstr(padded, item) != NULL, "%s not in %s", items[i], seen.buf);
    }
}

static char long255[256];

static void
long255_init(void)
{
    memset(long255, 'L', 255);
    long255[255] = '\0';
}

START_TEST(test_vhost_records)
{
    long255_init();
    store *s = open_store();
    store_vhost a = { B("/"), B("Default"), B("prod,eu"), 0, B("classic"), STORE_NO_LIMIT,
                      STORE_NO_LIMIT };
    store_vhost b = { B("staging"), B(""), B(""), 0, B(""), 10, 0 };   /* 0: none allowed */
    store_vhost c = { B(long255), B("long"), B(""), 0, B("quorum"), 1, INT64_MAX };
    store_put_vhost(s, &a);
    store_put_vhost(s, &b);
    store_put_vhost(s, &c);
    /* an exchange, a user of the same name are other kinds */
    store_exchange x = { B("/"), B("staging"), 1, 0, B("") };
    store_put_exchange(s, &x);
    store_user u = { B("staging"), B(""), STORE_HASH_NONE, B(""), -1, -1 };
    store_put_user(s, &u);
    settle(s);
    acl_expect(s, ACL_VHOST, 3, (const char *const[]){
        "/|Default|prod,eu|0|classic|-1|-1", "staging|||0||10|0",
        "long255|long||0|quorum|1|9223372036854775807" });
    ck_assert_int_eq(exchanges(s).count, 1);
    ck_assert_int_eq(acl_walk(s, ACL_USER).count, 1);

    /* a put of the same name replaces, whatever else changed */
    a.description = B("the default");
    a.tags = B("");
    a.default_queue_type = B("quorum");
    a.max_connections = 500;
    a.max_queues = INT64_MIN;
    store_put_vhost(s, &a);
    settle(s);
    acl_expect(s, ACL_VHOST, 3, (const char *const[]){
        "/|the default||0|quorum|500|-9223372036854775808", "staging|||0||10|0",
        "long255|long||0|quorum|1|9223372036854775807" });

    store_del_vhost(s, B("staging"));
    store_del_vhost(s, B(long255));
    store_del_vhost(s, B("missing"));   /* deleting nothing is fine */
    settle(s);
    acl_expect(s, ACL_VHOST, 1, (const char *const[]){
        "/|the default||0|quorum|500|-9223372036854775808" });
    ck_assert_int_eq(exchanges(s).count, 1);
    ck_assert_int_eq(acl_walk(s, ACL_USER).count, 1);
    store_close(s);
}
END_TEST

START_TEST(test_user_records)
{
    long255_init();
    store *s = open_store();
    /* a hash is raw bytes: zeros and high bytes come back as they went */
    static const uint8_t hash[] = { 0x90, 0x8d, 0x00, 0x0a, 0xff, 0x00, 0x01 };
    store_user guest = { B("guest"), { hash, sizeof hash }, STORE_HASH_SHA256,
                         B("administrator"), STORE_NO_LIMIT, STORE_NO_LIMIT };
    store_user svc = { B("svc"), B("\x01\x02"), STORE_HASH_SHA512, B("monitoring,mgmt"),
                       5, 64 };
    store_user cert = { B(long255), B(""), STORE_HASH_NONE, B(""), 0, 2047 };
    store_put_user(s, &guest);
    store_put_user(s, &svc);
    store_put_user(s, &cert);
    settle(s);
    acl_expect(s, ACL_USER, 3, (const char *const[]){
        "guest|908d000aff0001|1|administrator|-1|-1", "svc|0102|2|monitoring,mgmt|5|64",
        "long255||0||0|2047" });
    ck_assert_int_eq(acl_walk(s, ACL_VHOST).count, 0);

    /* a new password replaces the record, not adds one */
    guest.password_hash = B("\x11\x22\x33");
    guest.hash_algo = STORE_HASH_MD5;
    guest.tags = B("");
    guest.max_channels = 1;
    store_put_user(s, &guest);
    settle(s);
    acl_expect(s, ACL_USER, 3, (const char *const[]){
        "guest|112233|3||-1|1", "svc|0102|2|monitoring,mgmt|5|64",
        "long255||0||0|2047" });

    store_del_user(s, B("svc"));
    store_del_user(s, B("Guest"));       /* names are bytes: another user */
    store_del_user(s, B(long255));
    settle(s);
    acl_expect(s, ACL_USER, 1, (const char *const[]){ "guest|112233|3||-1|1" });
    store_close(s);
}
END_TEST

START_TEST(test_permission_records)
{
    long255_init();
    store *s = open_store();
    /* the same user in two vhosts, two users in one vhost */
    store_permission p1 = { B("app"), B("/"), B("^app-"), B("^out"), B("^in") };
    store_permission p2 = { B("app"), B("staging"), B(".*"), B(".*"), B(".*") };
    store_permission p3 = { B("ops"), B("/"), B(""), B(""), B(".*") };
    /* ("ab", "c") and ("a", "bc"): the lengths keep them apart */
    store_permission p4 = { B("ab"), B("c"), B("1"), B(""), B("") };
    store_permission p5 = { B("a"), B("bc"), B("2"), B(""), B("") };
    store_permission p6 = { B(long255), B(long255), B("x"), B("y"), B("z") };
    store_permission all[] = { p1, p2, p3, p4, p5, p6 };
    for (size_t i = 0; i < 6; i++)
        store_put_permission(s, &all[i]);
    settle(s);
    acl_expect(s, ACL_PERM, 6, (const char *const[]){
        "app|/|^app-|^out|^in", "app|staging|.*|.*|.*", "ops|/|||.*", "ab|c|1||", "a|bc|2||",
        "long255|long255|x|y|z" });

    /* a put of the same user and vhost replaces; the other vhost's stays */
    p1.configure = B("");
    p1.read = B("^in|^more");
    store_put_permission(s, &p1);
    settle(s);
    acl_expect(s, ACL_PERM, 6, (const char *const[]){
        "app|/||^out|^in|^more", "app|staging|.*|.*|.*", "ops|/|||.*", "ab|c|1||", "a|bc|2||",
        "long255|long255|x|y|z" });

    store_del_permission(s, B("app"), B("staging"));
    store_del_permission(s, B("a"), B("bc"));
    store_del_permission(s, B("staging"), B("app"));   /* swapped: no such record */
    store_del_permission(s, B(long255), B(long255));
    settle(s);
    acl_expect(s, ACL_PERM, 3, (const char *const[]){
        "app|/||^out|^in|^more", "ops|/|||.*", "ab|c|1||" });
    store_close(s);
}
END_TEST

START_TEST(test_topic_permission_records)
{
    long255_init();
    store *s = open_store();
    store_topic_permission t1 = { B("app"), B("/"), B("amq.topic"), B("^sensors\\."), B(".*") };
    store_topic_permission t2 = { B("app"), B("/"), B("events"), B(""), B("^a$") };
    store_topic_permission t3 = { B("app"), B("staging"), B("amq.topic"), B(".*"), B(".*") };
    store_topic_permission t4 = { B("ops"), B("/"), B("amq.topic"), B(""), B("") };
    store_topic_permission t5 = { B(long255), B(long255), B(long255), B("w"), B("r") };
    store_topic_permission all[] = { t1, t2, t3, t4, t5 };
    for (size_t i = 0; i < 5; i++)
        store_put_topic_permission(s, &all[i]);
    /* a plain permission of the same user and vhost is another kind */
    store_permission p = { B("app"), B("/"), B(".*"), B(".*"), B(".*") };
    store_put_permission(s, &p);
    settle(s);
    acl_expect(s, ACL_TOPIC, 5, (const char *const[]){
        "app|/|amq.topic|^sensors\\.|.*", "app|/|events||^a$", "app|staging|amq.topic|.*|.*",
        "ops|/|amq.topic||", "long255|long255|long255|w|r" });
    ck_assert_int_eq(acl_walk(s, ACL_PERM).count, 1);

    t1.write = B("");
    store_put_topic_permission(s, &t1);
    store_del_topic_permission(s, B("app"), B("/"), B("events"));
    store_del_topic_permission(s, B("app"), B("/"), B("missing"));
    store_del_topic_permission(s, B(long255), B(long255), B(long255));
    settle(s);
    acl_expect(s, ACL_TOPIC, 3, (const char *const[]){
        "app|/|amq.topic||.*", "app|staging|amq.topic|.*|.*", "ops|/|amq.topic||" });
    /* deleting the topic permissions leaves the permission */
    store_del_topic_permission(s, B("app"), B("/"), B("amq.topic"));
    settle(s);
    ck_assert_int_eq(acl_walk(s, ACL_TOPIC).count, 2);
    ck_assert_int_eq(acl_walk(s, ACL_PERM).count, 1);
    store_close(s);
}
END_TEST

static int
stop_acl(void *ctx)
{
    (*(int *)ctx)++;
    return 5;
}

static int stop_vhost(const store_vhost *h, void *ctx) { (void)h; return stop_acl(ctx); }
static int stop_user(const store_user *u, void *ctx) { (void)u; return stop_acl(ctx); }
static int stop_perm(const store_permission *p, void *ctx) { (void)p; return stop_acl(ctx); }
static int stop_topic(const store_topic_permission *p, void *ctx) { (void)p; return stop_acl(ctx); }

START_TEST(test_acl_callback_stops)
{
    store *s = open_store();
    const char *names2[] = { "a", "b" };
    for (int i = 0; i < 2; i++) {
        store_vhost h = { B(names2[i]), B(""), B(""), 0, B(""), -1, -1 };
        store_user u = { B(names2[i]), B(""), 0, B(""), -1, -1 };
        store_permission p = { B(names2[i]), B("/"), B(""), B(""), B("") };
        store_topic_permission t = { B(names2[i]), B("/"), B("x"), B(""), B("") };
        store_put_vhost(s, &h);
        store_put_user(s, &u);
        store_put_permission(s, &p);
        store_put_topic_permission(s, &t);
    }
    settle(s);
    store_reader *r;
    int calls = 0;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(store_each_vhost(r, stop_vhost, &calls), 5);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(store_each_user(r, stop_user, &calls), 5);
    ck_assert_int_eq(calls, 2);
    ck_assert_int_eq(store_each_permission(r, stop_perm, &calls), 5);
    ck_assert_int_eq(calls, 3);
    ck_assert_int_eq(store_each_topic_permission(r, stop_topic, &calls), 5);
    ck_assert_int_eq(calls, 4);
    store_read_end(r);
    store_close(s);
}
END_TEST

/* The keys are FORMAT.md's: the kind, then SipHash-2-4-128 of the
 * identity's fields, each as u32 length ‖ bytes. */
START_TEST(test_acl_keys)
{
    uint8_t hk[16], want[16], got[REC_META_KEY_LEN], other[REC_META_KEY_LEN];
    for (int i = 0; i < 16; i++)
        hk[i] = (uint8_t)(0x30 + i);
    /* the worked example: permission of "app" on "/" */
    static const uint8_t input[] = { 0, 0, 0, 3, 'a', 'p', 'p', 0, 0, 0, 1, '/' };
    rec_sip h;
    rec_sip_init(&h, hk);
    rec_sip_update(&h, input, sizeof input);
    rec_sip_final(&h, want);
    rec_permission_key(hk, B("app"), B("/"), got);
    ck_assert_uint_eq(got[0], 6);
    ck_assert_mem_eq(got + 1, want, 16);
    /* (user, vhost) is ordered: "/" on "app" is another record */
    rec_permission_key(hk, B("/"), B("app"), other);
    ck_assert(memcmp(got, other, sizeof got) != 0);
    /* a topic permission adds the exchange */
    static const uint8_t tinput[] = { 0, 0, 0, 3, 'a', 'p', 'p', 0, 0, 0, 1, '/',
                                      0, 0, 0, 1, 'x' };
    rec_sip_init(&h, hk);
    rec_sip_update(&h, tinput, sizeof tinput);
    rec_sip_final(&h, want);
    rec_topic_permission_key(hk, B("app"), B("/"), B("x"), got);
    ck_assert_uint_eq(got[0], 7);
    ck_assert_mem_eq(got + 1, want, 16);
    /* a vhost and a user of one name: one hash, two kinds */
    static const uint8_t ninput[] = { 0, 0, 0, 5, 'g', 'u', 'e', 's', 't' };
    rec_sip_init(&h, hk);
    rec_sip_update(&h, ninput, sizeof ninput);
    rec_sip_final(&h, want);
    rec_vhost_key(hk, B("guest"), got);
    rec_user_key(hk, B("guest"), other);
    ck_assert_uint_eq(got[0], 1);
    ck_assert_uint_eq(other[0], 5);
    ck_assert_mem_eq(got + 1, want, 16);
    ck_assert_mem_eq(other + 1, want, 16);
}
END_TEST

START_TEST(test_acl_reopen)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_ALWAYS };
    store *s = open_cfg(&cfg);
    store_vhost h = { B("/"), B("Default"), B(""), 0, B("quorum"), -1, 100 };
    store_user u = { B("guest"), B("\x01\x02\x03\x04"), STORE_HASH_SHA256, B("administrator"),
                     -1, 8 };
    store_user gone = { B("gone"), B(""), 0, B(""), -1, -1 };
    store_permission p = { B("guest"), B("/"), B(".*"), B(".*"), B(".*") };
    store_topic_permission t = { B("guest"), B("/"), B("amq.topic"), B("a"), B("b") };
    store_put_vhost(s, &h);
    store_put_user(s, &u);
    store_put_user(s, &gone);
    store_put_permission(s, &p);
    store_put_topic_permission(s, &t);
    store_del_user(s, B("gone"));
    store_close(s);   /* commits what is queued */

    s = open_cfg(&cfg);
    acl_expect(s, ACL_VHOST, 1, (const char *const[]){ "/|Default||0|quorum|-1|100" });
    acl_expect(s, ACL_USER, 1, (const char *const[]){ "guest|01020304|1|administrator|-1|8" });
    acl_expect(s, ACL_PERM, 1, (const char *const[]){ "guest|/|.*|.*|.*" });
    acl_expect(s, ACL_TOPIC, 1, (const char *const[]){ "guest|/|amq.topic|a|b" });
    /* the same keys after reopening: a put replaces, a delete finds */
    u.max_channels = -1;
    store_put_user(s, &u);
    store_del_vhost(s, B("/"));
    store_del_permission(s, B("guest"), B("/"));
    store_close(s);

    s = open_cfg(&cfg);
    ck_assert_int_eq(acl_walk(s, ACL_VHOST).count, 0);
    ck_assert_int_eq(acl_walk(s, ACL_PERM).count, 0);
    acl_expect(s, ACL_USER, 1, (const char *const[]){ "guest|01020304|1|administrator|-1|-1" });
    acl_expect(s, ACL_TOPIC, 1, (const char *const[]){ "guest|/|amq.topic|a|b" });
    store_close(s);
}
END_TEST

/* ---- policies and operator policies ------------------------------------------------------ */

static int
collect_policy(const store_policy *p, void *ctx)
{
    char vhost[32], name[32], pat[32], to[32], line[512], def[2 * 40 + 1] = "";
    kv_short(vhost, p->vhost);
    kv_short(name, p->name);
    kv_short(pat, p->pattern);
    kv_short(to, p->apply_to);
    for (uint32_t i = 0; i < p->definition.len && i < 40; i++)
        snprintf(def + 2 * i, 3, "%02x", p->definition.data[i]);
    snprintf(line, sizeof line, "%s|%s|%s|%s|%lld|%s", vhost, name, pat, to,
             (long long)p->priority, def);
    seen_add(ctx, line);
    return 0;
}

static kvseen
policy_walk(store *s, bool op)
{
    kvseen seen = { .count = 0 };
    seen.buf[0] = '\0';
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(op ? store_each_operator_policy(r, collect_policy, &seen)
                        : store_each_policy(r, collect_policy, &seen), 0);
    store_read_end(r);
    return seen;
}

static void
policy_expect(store *s, bool op, int count, const char *const *items)
{
    kvseen seen = policy_walk(s, op);
    ck_assert_msg(seen.count == count, "%d records, not %d: %s", seen.count, count, seen.buf);
    char padded[sizeof seen.buf + 2], item[512];
    snprintf(padded, sizeof padded, ",%s,", seen.buf);
    for (int i = 0; i < count; i++) {
        snprintf(item, sizeof item, ",%s,", items[i]);
        ck_assert_msg(strstr(padded, item) != NULL, "%s not in %s", items[i], seen.buf);
    }
}

START_TEST(test_policy_records)
{
    long255_init();
    store *s = open_store();
    store_policy p1 = { B("/"), B("ttl"), B("^q\\."), B("queues"), 7, B("\x01\x02") };
    store_policy p2 = { B("staging"), B("ttl"), B(".*"), B("all"), -3, B("") };
    store_policy p3 = { B(long255), B(long255), B(""), B("exchanges"), INT64_MAX, B("\xff") };
    /* ("ab", "c") and ("a", "bc"): the lengths keep them apart */
    store_policy p4 = { B("ab"), B("c"), B("1"), B("all"), 0, B("") };
    store_policy p5 = { B("a"), B("bc"), B("2"), B("all"), 0, B("") };
    store_policy all[] = { p1, p2, p3, p4, p5 };
    for (size_t i = 0; i < 5; i++)
        store_put_policy(s, &all[i]);
    /* an operator policy of the same vhost and name is another record */
    store_policy o1 = { B("/"), B("ttl"), B(".*"), B("queues"), 0, B("\x03") };
    store_put_operator_policy(s, &o1);
    settle(s);
    policy_expect(s, false, 5, (const char *const[]){
        "/|ttl|^q\\.|queues|7|0102", "staging|ttl|.*|all|-3|", "long255|long255||exchanges|"
        "9223372036854775807|ff", "ab|c|1|all|0|", "a|bc|2|all|0|" });
    policy_expect(s, true, 1, (const char *const[]){ "/|ttl|.*|queues|0|03" });

    /* a put of the same vhost and name replaces */
    p1.priority = 1;
    p1.apply_to = B("all");
    p1.definition = B("");
    store_put_policy(s, &p1);
    store_del_policy(s, B("staging"), B("ttl"));
    store_del_policy(s, B("a"), B("bc"));
    store_del_policy(s, B("ttl"), B("/"));    /* swapped: no such record */
    store_del_policy(s, B(long255), B(long255));
    settle(s);
    policy_expect(s, false, 2, (const char *const[]){ "/|ttl|^q\\.|all|1|", "ab|c|1|all|0|" });
    policy_expect(s, true, 1, (const char *const[]){ "/|ttl|.*|queues|0|03" });
    /* deleting the operator policy leaves the policy of that name */
    store_del_operator_policy(s, B("/"), B("ttl"));
    settle(s);
    ck_assert_int_eq(policy_walk(s, true).count, 0);
    ck_assert_int_eq(policy_walk(s, false).count, 2);
    store_close(s);
}
END_TEST

START_TEST(test_policy_reopen_and_keys)
{
    store_config cfg = { .dir = tmpdir, .sync = STORE_SYNC_ALWAYS };
    store *s = open_cfg(&cfg);
    store_policy p = { B("/"), B("p"), B("^a"), B("queues"), 2, B("\x01\x02\x03\x04") };
    store_put_policy(s, &p);
    store_put_operator_policy(s, &p);
    store_close(s);
    s = open_cfg(&cfg);
    policy_expect(s, false, 1, (const char *const[]){ "/|p|^a|queues|2|01020304" });
    policy_expect(s, true, 1, (const char *const[]){ "/|p|^a|queues|2|01020304" });
    /* the keys: kind 8 or 9, then the hash of (vhost, name) */
    uint8_t hk[16], want[16], k1[REC_META_KEY_LEN], k2[REC_META_KEY_LEN];
    store_hash_key(s, hk);
    static const uint8_t input[] = { 0, 0, 0, 1, '/', 0, 0, 0, 1, 'p' };
    rec_sip h;
    rec_sip_init(&h, hk);
    rec_sip_update(&h, input, sizeof input);
    rec_sip_final(&h, want);
    rec_policy_key(REC_KIND_POLICY, hk, B("/"), B("p"), k1);
    rec_policy_key(REC_KIND_OPERATOR_POLICY, hk, B("/"), B("p"), k2);
    ck_assert_uint_eq(k1[0], 8);
    ck_assert_uint_eq(k2[0], 9);
    ck_assert_mem_eq(k1 + 1, want, 16);
    ck_assert_mem_eq(k2 + 1, want, 16);
    /* a record moved to the other kind's key is corrupt: skipped */
    uint8_t v[256];
    size_t n = rec_policy_size(&p);
    rec_policy_encode(REC_POLICY, &p, v);
    store_put_raw(s, REC_DB_META, k2, sizeof k2, v, n);
    store_del_policy(s, B("/"), B("p"));
    settle(s);
    ck_assert_int_eq(policy_walk(s, false).count, 0);
    ck_assert_int_eq(policy_walk(s, true).count, 0);
    store_close(s);
}
END_TEST

START_TEST(test_policy_fixtures)
{
    uint8_t v[256], enc[256];
    size_t n = fixture("policy.bin", v, sizeof v);
    ck_assert_uint_eq(n, 63);   /* FORMAT.md's worked example */
    store_policy p;
    ck_assert_int_eq(rec_policy_decode(REC_POLICY, v, n, &p), 0);
    ck_assert(beq(p.vhost, "/"));
    ck_assert(beq(p.name, "ttl"));
    ck_assert(beq(p.pattern, "^q\\."));
    ck_assert(beq(p.apply_to, "queues"));
    ck_assert(p.priority == 7);
    ck_assert_uint_eq(p.definition.len, 25);
    ck_assert_uint_eq(rec_policy_size(&p), n);
    rec_policy_encode(REC_POLICY, &p, enc);
    ck_assert_mem_eq(enc, v, n);
    /* the same bytes are not an operator policy */
    ck_assert_int_eq(rec_policy_decode(REC_OPERATOR_POLICY, v, n, &p), STORE_ECORRUPT);

    n = fixture("operator-policy.bin", v, sizeof v);
    ck_assert_int_eq(rec_policy_decode(REC_OPERATOR_POLICY, v, n, &p), 0);
    ck_assert(beq(p.name, "caps"));
    ck_assert(beq(p.pattern, ".*"));
    ck_assert(beq(p.apply_to, "all"));
    ck_assert(p.priority == -1);
    ck_assert_uint_eq(p.definition.len, 24);
    rec_policy_encode(REC_OPERATOR_POLICY, &p, enc);
    ck_assert_mem_eq(enc, v, n);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, v, cut);
        ck_assert_int_eq(rec_policy_decode(REC_OPERATOR_POLICY, copy, cut, &p), STORE_ECORRUPT);
        free(copy);
    }

    n = fixture("policy-truncated.bin", v, sizeof v);
    ck_assert_int_eq(rec_policy_decode(REC_POLICY, v, n, &p), STORE_ECORRUPT);
    n = fixture("operator-policy-newer.bin", v, sizeof v);
    ck_assert_int_eq(rec_policy_decode(REC_OPERATOR_POLICY, v, n, &p), STORE_EVERSION);
}
END_TEST

START_TEST(test_acl_fixtures_valid)
{
    uint8_t v[256], enc[256];
    size_t n;

    n = fixture("vhost.bin", v, sizeof v);
    store_vhost h;
    ck_assert_int_eq(rec_vhost_decode(v, n, &h), 0);
    ck_assert(beq(h.name, "/"));
    ck_assert(beq(h.description, "Default"));
    ck_assert(beq(h.tags, "prod"));
    ck_assert_uint_eq(h.flags, 0);
    ck_assert(beq(h.default_queue_type, "quorum"));
    ck_assert(h.max_connections == STORE_NO_LIMIT);
    ck_assert(h.max_queues == 100);
    ck_assert_uint_eq(rec_vhost_size(&h), n);
    rec_vhost_encode(&h, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("user.bin", v, sizeof v);
    store_user u;
    static const uint8_t hash[36] = {
        0x90, 0x8d, 0xc6, 0x0a, 0xbb, 0x30, 0x04, 0xb3, 0x59, 0x43, 0x31, 0xc9,
        0x27, 0xde, 0x50, 0x2e, 0x8c, 0x9f, 0x01, 0x5a, 0x28, 0x62, 0x19, 0xef,
        0x7f, 0xb8, 0xdb, 0xaa, 0x25, 0xbd, 0x06, 0x33, 0x98, 0x52, 0x5a, 0x1e,
    };
    ck_assert_int_eq(rec_user_decode(v, n, &u), 0);
    ck_assert(beq(u.name, "guest"));
    ck_assert_uint_eq(u.password_hash.len, 36);
    ck_assert_mem_eq(u.password_hash.data, hash, 36);
    ck_assert_uint_eq(u.hash_algo, STORE_HASH_SHA256);
    ck_assert(beq(u.tags, "administrator"));
    ck_assert(u.max_connections == STORE_NO_LIMIT);
    ck_assert(u.max_channels == 8);
    ck_assert_uint_eq(rec_user_size(&u), n);
    rec_user_encode(&u, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("permission.bin", v, sizeof v);
    ck_assert_uint_eq(n, 34);   /* FORMAT.md's worked example */
    store_permission p;
    ck_assert_int_eq(rec_permission_decode(v, n, &p), 0);
    ck_assert(beq(p.user, "app"));
    ck_assert(beq(p.vhost, "/"));
    ck_assert(beq(p.configure, "^app-"));
    ck_assert(beq(p.write, "^out"));
    ck_assert(beq(p.read, "^in"));
    ck_assert_uint_eq(rec_permission_size(&p), n);
    rec_permission_encode(&p, enc);
    ck_assert_mem_eq(enc, v, n);

    n = fixture("topic-permission.bin", v, sizeof v);
    store_topic_permission t;
    ck_assert_int_eq(rec_topic_permission_decode(v, n, &t), 0);
    ck_assert(beq(t.user, "app"));
    ck_assert(beq(t.vhost, "/"));
    ck_assert(beq(t.exchange, "amq.topic"));
    ck_assert(beq(t.write, "a.*"));
    ck_assert_uint_eq(t.read.len, 0);
    ck_assert_uint_eq(rec_topic_permission_size(&t), n);
    rec_topic_permission_encode(&t, enc);
    ck_assert_mem_eq(enc, v, n);
}
END_TEST

/* Every prefix of a valid value of type, at its exact size so ASan sees
 * an overread, is corrupt. */
static void
acl_prefixes_corrupt(enum acl_kind kind, const uint8_t *v, size_t n)
{
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, v, cut);
        union {
            store_vhost h;
            store_user u;
            store_permission p;
            store_topic_permission t;
        } out;
        int rc;
        switch (kind) {
        case ACL_VHOST: rc = rec_vhost_decode(copy, cut, &out.h); break;
        case ACL_USER: rc = rec_user_decode(copy, cut, &out.u); break;
        case ACL_PERM: rc = rec_permission_decode(copy, cut, &out.p); break;
        default: rc = rec_topic_permission_decode(copy, cut, &out.t); break;
        }
        ck_assert_msg(rc == STORE_ECORRUPT, "kind %d cut at %zu: %d", kind, cut, rc);
        free(copy);
    }
}

START_TEST(test_acl_fixtures_bad)
{
    uint8_t v[256];
    size_t n;
    store_vhost h;
    store_user u;
    store_permission p;
    store_topic_permission t;

    n = fixture("user-truncated.bin", v, sizeof v);
    ck_assert_int_eq(rec_user_decode(v, n, &u), STORE_ECORRUPT);
    n = fixture("vhost-newer.bin", v, sizeof v);
    ck_assert_int_eq(rec_vhost_decode(v, n, &h), STORE_EVERSION);
    n = fixture("permission-trailing.bin", v, sizeof v);
    ck_assert_int_eq(rec_permission_decode(v, n, &p), STORE_ECORRUPT);
    ck_assert_int_eq(rec_permission_decode(v, n - 1, &p), 0);

    /* each type read as another is corrupt (a permission and a topic
     * permission of the same sizes would otherwise pass) */
    ck_assert_int_eq(rec_topic_permission_decode(v, n - 1, &t), STORE_ECORRUPT);
    n = fixture("topic-permission.bin", v, sizeof v);
    ck_assert_int_eq(rec_permission_decode(v, n, &p), STORE_ECORRUPT);
    acl_prefixes_corrupt(ACL_TOPIC, v, n);
    n = fixture("user.bin", v, sizeof v);
    ck_assert_int_eq(rec_vhost_decode(v, n, &h), STORE_ECORRUPT);
    acl_prefixes_corrupt(ACL_USER, v, n);
    v[2 + 7] = 0xff;   /* the hash's u16 length, far past the end */
    ck_assert_int_eq(rec_user_decode(v, n, &u), STORE_ECORRUPT);
    n = fixture("vhost.bin", v, sizeof v);
    ck_assert_int_eq(rec_user_decode(v, n, &u), STORE_ECORRUPT);
    acl_prefixes_corrupt(ACL_VHOST, v, n);
    v[2 + 3] = 0x80;   /* the description's u32 length */
    ck_assert_int_eq(rec_vhost_decode(v, n, &h), STORE_ECORRUPT);
    n = fixture("permission.bin", v, sizeof v);
    acl_prefixes_corrupt(ACL_PERM, v, n);
    v[0] = 0;          /* version 0 never existed */
    ck_assert_int_eq(rec_permission_decode(v, n, &p), STORE_ECORRUPT);
    v[0] = REC_VERSION + 1;
    ck_assert_int_eq(rec_permission_decode(v, n, &p), STORE_EVERSION);
}
END_TEST

/* Damaged access control records are logged and skipped by the walks;
 * the good ones around them still come. */
START_TEST(test_acl_corrupt_in_env)
{
    store *s = open_store();
    uint8_t hk[16];
    store_hash_key(s, hk);
    store_vhost va = { B("a"), B(""), B(""), 0, B(""), -1, -1 };
    store_user ua = { B("a"), B(""), 0, B(""), -1, -1 };
    store_permission pa = { B("a"), B("/"), B(""), B(""), B("") };
    store_topic_permission ta = { B("a"), B("/"), B("x"), B(""), B("") };
    store_put_vhost(s, &va);
    store_put_user(s, &ua);
    store_put_permission(s, &pa);
    store_put_topic_permission(s, &ta);

    uint8_t v[256], k[REC_META_KEY_LEN];
    size_t n;
    /* garbage under a vhost key */
    rec_vhost_key(hk, B("b"), k);
    n = fixture("message-truncated.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    /* a valid vhost ("/") under the key of another name */
    rec_vhost_key(hk, B("elsewhere"), k);
    n = fixture("vhost.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    /* a vhost key of the wrong length */
    store_put_raw(s, REC_DB_META, k, 5, v, n);
    /* a cut user under its right key */
    rec_user_key(hk, B("guest"), k);
    n = fixture("user-truncated.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    /* a valid user under a permission key: a record of the wrong type */
    rec_permission_key(hk, B("guest"), B("/"), k);
    n = fixture("user.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    /* a permission with a byte too many, under its right key */
    rec_permission_key(hk, B("app"), B("/"), k);
    n = fixture("permission-trailing.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    /* a permission ("app", "/") under the topic permission key of
     * ("app", "/", "") */
    rec_topic_permission_key(hk, B("app"), B("/"), B(""), k);
    n = fixture("permission.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    settle(s);

    acl_expect(s, ACL_VHOST, 1, (const char *const[]){ "a|||0||-1|-1" });
    acl_expect(s, ACL_USER, 1, (const char *const[]){ "a||0||-1|-1" });
    acl_expect(s, ACL_PERM, 1, (const char *const[]){ "a|/|||" });
    acl_expect(s, ACL_TOPIC, 1, (const char *const[]){ "a|/|x||" });

    /* a put over a damaged record repairs it, a delete removes it */
    store_user guest = { B("guest"), B("\x01"), STORE_HASH_SHA256, B(""), -1, -1 };
    store_put_user(s, &guest);
    store_del_permission(s, B("guest"), B("/"));
    store_del_topic_permission(s, B("app"), B("/"), B(""));
    settle(s);
    acl_expect(s, ACL_USER, 2, (const char *const[]){ "a||0||-1|-1", "guest|01|1||-1|-1" });
    acl_expect(s, ACL_PERM, 1, (const char *const[]){ "a|/|||" });

    /* a record of a newer version stops the walk with STORE_EVERSION */
    rec_vhost_key(hk, B("/"), k);
    n = fixture("vhost-newer.bin", v, sizeof v);
    store_put_raw(s, REC_DB_META, k, sizeof k, v, n);
    settle(s);
    kvseen none = { .count = 0 };
    none.buf[0] = '\0';
    store_reader *r;
    ck_assert_int_eq(store_read_begin(s, &r), 0);
    ck_assert_int_eq(acl_each(r, ACL_VHOST, &none), STORE_EVERSION);
    ck_assert_int_eq(acl_each(r, ACL_USER, &none), 0);
    store_read_end(r);
    store_close(s);
}
END_TEST

START_TEST(test_hashkey_persists)
{
    uint8_t k1[16], k2[16];
    store *s = open_store();
    store_hash_key(s, k1);
    store_close(s);
    s = open_store();
    store_hash_key(s, k2);
    store_close(s);
    ck_assert_mem_eq(k1, k2, 16);
    static const uint8_t zero[16];
    ck_assert(memcmp(k1, zero, 16) != 0);
}
END_TEST

START_TEST(test_open_errors)
{
    store_config cfg = { .dir = "/proc/coney-cannot-be-here", .sync = STORE_SYNC_NONE };
    char err[256];
    store *s = (store *)1;
    ck_assert_int_ne(store_open(&cfg, &s, err, sizeof err), 0);
    ck_assert_ptr_null(s);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_str_eq(store_strerror(STORE_EFULL), "disk full");
    /* a directory that does not exist yet, nested, is created */
    char nested[128];
    snprintf(nested, sizeof nested, "%s/a/b", tmpdir);
    cfg.dir = nested;
    ck_assert_int_eq(store_open(&cfg, &s, err, sizeof err), 0);
    store_close(s);
}
END_TEST

Suite *
suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("records");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_siphash_vectors);
    tcase_add_test(tc, test_exchange_records);
    tcase_add_test(tc, test_queue_records);
    tcase_add_test(tc, test_binding_records);
    tcase_add_test(tc, test_callback_stops);
    tcase_add_test(tc, test_message_records);
    tcase_add_test(tc, test_qidx_order);
    tcase_add_test(tc, test_fixtures_valid);
    tcase_add_test(tc, test_fixtures_bad);
    tcase_add_test(tc, test_corrupt_in_env);
    tcase_add_test(tc, test_retained_records);
    tcase_add_test(tc, test_session_records);
    tcase_add_test(tc, test_kv_callback_stops);
    tcase_add_test(tc, test_kv_long_names);
    tcase_add_test(tc, test_kv_key);
    tcase_add_test(tc, test_kv_corrupt_in_env);
    tcase_add_test(tc, test_vhost_records);
    tcase_add_test(tc, test_user_records);
    tcase_add_test(tc, test_permission_records);
    tcase_add_test(tc, test_topic_permission_records);
    tcase_add_test(tc, test_acl_callback_stops);
    tcase_add_test(tc, test_acl_keys);
    tcase_add_test(tc, test_acl_fixtures_valid);
    tcase_add_test(tc, test_acl_fixtures_bad);
    tcase_add_test(tc, test_acl_corrupt_in_env);
    tcase_add_test(tc, test_policy_records);
    tcase_add_test(tc, test_policy_reopen_and_keys);
    tcase_add_test(tc, test_policy_fixtures);
    tcase_add_test(tc, test_hashkey_persists);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("refs");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs_fanout);
    tcase_add_test(tc, test_refs_ranges);
    tcase_add_test(tc, test_refs_put_qentry_later);
    tcase_add_test(tc, test_flags_rewrite);
    tcase_add_test(tc, test_recover);
    tcase_add_test(tc, test_recover_nothing_live);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cancel_acked_in_batch);
    tcase_add_test(tc, test_cancel_keeps_needed_message);
    tcase_add_test(tc, test_cancel_stops_at_range_delete);
    tcase_add_test(tc, test_cancel_only_in_open_batch);
    tcase_add_test(tc, test_cancel_table_full);
    suite_add_tcase(s, tc);

    tc = tcase_create("engine");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_map_growth);
    tcase_add_test(tc, test_map_growth_with_readers);
    tcase_add_test(tc, test_batches_group);
    tcase_add_test(tc, test_wait_and_drain);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_append_after_reopen);
    tcase_add_test(tc, test_kv_reopen);
    tcase_add_test(tc, test_acl_reopen);
    suite_add_tcase(s, tc);
    return s;
}
