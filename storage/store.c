/*
 * The store: one LMDB environment, a storage thread, group commit.
 *
 * How group commit orders confirms. The loop thread encodes every write
 * at once into the open batch, a byte buffer of ops (the caller's bytes
 * are copied, so it keeps nothing alive). The storage thread sleeps on a
 * condition variable; when the open batch has ops, it swaps the buffer out
 * under a short mutex hold, so the loop keeps appending into a fresh one
 * while the old one is applied in ONE write transaction and committed
 * with a single sync. Whatever arrives during that commit rides in the
 * next batch: the slower the disk, the bigger the batches. Batches are
 * taken, applied and reported strictly in id order, so "batch n is done"
 * means every write queued before batch n closed is durable (or failed).
 *
 * The map. LMDB cannot resize its map while any transaction of the
 * process is live, so readers hold a read lock of maplock for the life of
 * a store_reader and the storage thread takes the write lock to grow the
 * map when a transaction reports MDB_MAP_FULL; it then replays the whole
 * batch, whose ops it still holds.
 *
 * Reference counts (refs.h) live on the storage thread; they are changed
 * while a batch is applied and rolled back if its transaction fails.
 *
 * Writes cancelled in their batch. A persistent message that its consumer
 * acknowledges before the storage thread takes its batch need never reach
 * the disk, as in RabbitMQ's message store: the loop thread remembers
 * where each queue entry and message put of the open batch sits in the
 * buffer, and a later write of the same entry rewrites or cancels it
 * there (see "pending puts" below). A publisher's confirm still waits for
 * the batch, which then commits with nothing, or less, to write.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <time.h>

#include "storage/record.h"
#include "storage/refs.h"
#include "storage/store.h"

enum {
    DEFAULT_MAP_SIZE = 64u << 20,
    DEFAULT_SYNC_MS = 1000,
    MAX_GROWS = 40,               /* doublings of the map for one batch */
    KEEP_BUF = 4u << 20,          /* a drained batch buffer above this is freed */
};

/* Ops in a batch buffer. Private to this process and never stored, but
 * written with the same big-endian helpers to keep one habit. */
enum op {
    OP_PUT = 1,       /* u8 db, u16 klen, u32 vlen, key, value */
    OP_DEL,           /* u8 db, u16 klen, key */
    OP_PUT_MSG,       /* u64 id, u32 vlen, u32 n, value, n * (u64 queue, u64 seq, u8 flags) */
    OP_PUT_QE,        /* u64 queue, u64 seq, u64 msg, u8 flags */
    OP_DEL_QE,        /* u64 queue, u64 seq */
    OP_DEL_QRANGE,    /* u64 queue, u64 from, u64 to */
    OP_DROP_MSG,      /* an OP_PUT_MSG every entry of which was cancelled: skipped */
};
enum { QE_OP_LEN = 17 };  /* queue, seq, flags of one OP_PUT_MSG entry */
/* In an op's entry flags only: the entry's put was cancelled by a later
 * write of the same batch and is not applied. No STORE_QE_ flag uses it. */
enum { QE_CANCELLED = 0x80 };

/* Pending puts: for the open batch, where each queue entry put and each
 * message put sits in the buffer (an open-addressing table, emptied by
 * bumping gen). Only what is certain is cancelled:
 * - an entry put, then its delete: the put goes (the delete stays, since
 *   the entry may be on disk from an earlier batch);
 * - an entry put, then a put of it naming the same message: the first
 *   takes the second's flags and the second is not queued;
 * - a message put, once none of its entries is left in its op and no
 *   entry put after it in the batch names it.
 * Whatever the table cannot vouch for (it is full, a range delete or a
 * raw write to the queue index came between) is left as written. */
enum { PEND_SLOTS = 2048, PEND_MAX = PEND_SLOTS / 4 * 3 };
#define PEND_MSG UINT64_MAX           /* k1 of a message's slot; no queue has this id */
enum pend_state { PEND_LIVE = 1,      /* message: its op [at, end) may still be dropped */
                  PEND_PINNED,        /* message: put twice in the batch, keep both */
                  PEND_GONE };        /* message: its op was dropped */

typedef struct pend {
    uint64_t k1, k2;              /* entry: queue, seq; message: PEND_MSG, id */
    uint64_t msg;                 /* entry: the message it names */
    size_t at, end;               /* entry: its flags byte (0 = nothing to cancel);
                                   * message: its op's bytes */
    uint32_t gen;                 /* in use while equal to the store's pend_gen */
    uint32_t subs, deps;          /* message: entries of its op still put; entry
                                   * puts after it that need it */
    uint8_t state;                /* message: enum pend_state */
    bool sub, dep;                /* entry: inside an OP_PUT_MSG; counted in deps */
} pend;

typedef struct obuf {
    uint8_t *p;                   /* owned */
    size_t len, cap;
} obuf;

struct store {
    MDB_env *env;
    char *dir;                    /* owned copy of cfg->dir */
    MDB_dbi dbi[REC_DB_COUNT];    /* by enum rec_db */
    uint8_t hkey[16];
    enum store_sync sync;
    unsigned sync_ms;
    void (*on_done)(void *ctx);
    void *ctx;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;          /* the storage thread: work, flush, stop */
    pthread_cond_t done_cv;       /* store_wait: a batch is done */
    pthread_rwlock_t maplock;     /* readers share, map growth excludes */

    /* under mu */
    obuf open;
    pend *pend;                   /* owned, PEND_SLOTS; NULL until needed */
    uint32_t pend_gen;
    size_t pend_used;
    uint64_t cancelled, dropped;  /* entry puts cancelled, message puts dropped */
    int open_err;                 /* the open batch already failed (ENOMEM) */
    bool flush_asked, stopping;
    bool held;                    /* store_hold: leave the open batch alone */
    uint64_t done_upto, drained_upto;
    store_done *fails;            /* owned; failed batches not yet drained */
    size_t nfails, failcap;

    /* written under mu (open_id) or by the storage thread; read anywhere */
    _Atomic uint64_t open_id, committed, batches, commits;
    _Atomic uint64_t last_write;  /* the batch the latest write went into; 0 = none yet */
    _Atomic size_t map_size;
    size_t since_trim;             /* bytes committed since the map was trimmed */

    /* storage thread only (store_recover runs before any write) */
    refs refs;
    bool dirty;                   /* STORE_SYNC_BATCH: commits since the last sync */
    int last_rc;                  /* how the previous batch ended, to log a change only */
    /* At or above the greatest qidx key (deletes only lower the real
     * one), so a key above it can be appended; learnt lazily, forgotten
     * when a transaction aborts. */
    uint8_t qidx_top[REC_QE_KEY_LEN];
    bool qidx_top_known;
    struct timespec dirty_since;  /* the first of them */
};

struct store_reader {
    store *s;                     /* borrowed */
    MDB_txn *txn;                 /* owned; read-only */
};

const char *
store_strerror(int err)
{
    switch (err) {
    case STORE_OK: return "ok";
    case STORE_ENOMEM: return "out of memory";
    case STORE_EIO: return "storage I/O error";
    case STORE_ECORRUPT: return "corrupt record";
    case STORE_EVERSION: return "record of a newer format version";
    case STORE_ENOTFOUND: return "not found";
    case STORE_EFULL: return "disk full";
    }
    return "unknown storage error";
}

/* LMDB and errno codes to ours. MDB_MAP_FULL only gets here when the map
 * could not grow, so it is the disk's limit too. */
static int
store_err(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return STORE_ENOTFOUND;
    case ENOMEM: return STORE_ENOMEM;
    case ENOSPC:
    case EDQUOT:
    case MDB_MAP_FULL: return STORE_EFULL;
    default: return STORE_EIO;
    }
}

static void
now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

static void
ts_add_ms(struct timespec *ts, unsigned ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool
ts_reached(const struct timespec *now, const struct timespec *when)
{
    return now->tv_sec > when->tv_sec
           || (now->tv_sec == when->tv_sec && now->tv_nsec >= when->tv_nsec);
}

static MDB_val
val(const void *p, size_t n)
{
    MDB_val v = { n, (void *)p };
    return v;
}

/* The LMDB names of the databases, by enum rec_db. */
static const char *const db_names[REC_DB_COUNT] = {
    [REC_DB_META] = "meta", [REC_DB_MSGS] = "msgs", [REC_DB_QIDX] = "qidx",
    [REC_DB_RETAINED] = "retained", [REC_DB_SESSIONS] = "sessions",
};

/* ---- the map ------------------------------------------------------------- */

/* Doubles the map; the caller holds maplock for writing and no
 * transaction of this process is live. */
static int
map_grow_locked(store *s)
{
    size_t cur = atomic_load(&s->map_size);
    size_t next = cur * 2;
    if (next < cur)
        return MDB_MAP_FULL;
    int rc = mdb_env_set_mapsize(s->env, next);
    if (rc != 0) {
        fprintf(stderr, "coney: storage: cannot grow the map to %zu bytes: %s\n", next,
                mdb_strerror(rc));
        return MDB_MAP_FULL;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    atomic_store(&s->map_size, info.me_mapsize);
    return 0;
}

static int
map_grow(store *s)
{
    pthread_rwlock_wrlock(&s->maplock);
    int rc = map_grow_locked(s);
    pthread_rwlock_unlock(&s->maplock);
    return rc;
}

/* ---- applying a batch (storage thread) ------------------------------------ */

/* One more queue entry refers to message id. */
static int
msg_ref(store *s, uint64_t id)
{
    uint32_t c = refs_get(&s->refs, id);
    return refs_set(&s->refs, id, c == 0 ? 2 : c + 1) == 0 ? 0 : ENOMEM;
}

/* One entry fewer refers to message id; the last one takes it along. */
static int
msg_unref(store *s, MDB_txn *t, uint64_t id)
{
    uint32_t c = refs_get(&s->refs, id);
    if (c >= 2)
        return refs_set(&s->refs, id, c - 1) == 0 ? 0 : ENOMEM;
    uint8_t k[REC_MSG_KEY_LEN];
    rec_put_u64(k, id);
    MDB_val key = val(k, sizeof k);
    int rc = mdb_del(t, s->dbi[REC_DB_MSGS], &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Writes one entry. *added says whether it is a new reference to msg: an
 * existing entry for the same message only gets its flags rewritten, one
 * that pointed elsewhere (a caller bug, or a corrupt one) is replaced and
 * its old message loses the reference. */
static int
qe_write(store *s, MDB_txn *t, uint64_t queue, uint64_t seq, uint64_t msg, uint8_t flags,
         bool *added)
{
    uint8_t k[REC_QE_KEY_LEN], v[REC_QENTRY_LEN];
    rec_qentry_key(queue, seq, k);
    rec_qentry_encode(msg, flags, v);
    MDB_val key = val(k, sizeof k), data = val(v, sizeof v);
    *added = true;
    /* Nearly every entry is new, and with one busy queue beyond every
     * other key: then it is appended (no search, full pages). Otherwise
     * one descent inserts it, and only when the key is taken (LMDB then
     * hands back the old value) does a second one follow. */
    int rc;
    if (!s->qidx_top_known) {
        MDB_cursor *c;
        MDB_val lk, lv;
        rc = mdb_cursor_open(t, s->dbi[REC_DB_QIDX], &c);
        if (rc != 0)
            return rc;
        rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
        mdb_cursor_close(c);
        if (rc == 0 && lk.mv_size == REC_QE_KEY_LEN)
            memcpy(s->qidx_top, lk.mv_data, REC_QE_KEY_LEN);
        else if (rc == MDB_NOTFOUND)
            memset(s->qidx_top, 0, REC_QE_KEY_LEN);
        else
            return rc == 0 ? MDB_CORRUPTED : rc;
        s->qidx_top_known = true;
    }
    if (memcmp(k, s->qidx_top, sizeof k) > 0) {
        rc = mdb_put(t, s->dbi[REC_DB_QIDX], &key, &data, MDB_APPEND);
        if (rc == 0)
            memcpy(s->qidx_top, k, sizeof k);
        if (rc != MDB_KEYEXIST)
            return rc;
        data = val(v, sizeof v);
    }
    rc = mdb_put(t, s->dbi[REC_DB_QIDX], &key, &data, MDB_NOOVERWRITE);
    if (rc != MDB_KEYEXIST)
        return rc;
    bool unref_old = false;
    store_qentry oe;
    int err = rec_qentry_decode(data.mv_data, data.mv_size, &oe);
    if (err == 0 && oe.msg_id == msg) {
        *added = false;
        if (oe.flags == flags)
            return 0;
    } else if (err == 0) {
        unref_old = true;
    } else {
        rec_log_bad("qidx", k, sizeof k, err);
    }
    data = val(v, sizeof v);
    rc = mdb_put(t, s->dbi[REC_DB_QIDX], &key, &data, 0);
    if (rc == 0 && unref_old)
        rc = msg_unref(s, t, oe.msg_id);
    return rc;
}

static bool
msg_exists(store *s, MDB_txn *t, uint64_t id, int *rc)
{
    uint8_t k[REC_MSG_KEY_LEN];
    rec_put_u64(k, id);
    MDB_val key = val(k, sizeof k), data;
    *rc = mdb_get(t, s->dbi[REC_DB_MSGS], &key, &data);
    if (*rc == MDB_NOTFOUND) {
        *rc = 0;
        return false;
    }
    return *rc == 0;
}

static int
apply_put_msg(store *s, MDB_txn *t, const uint8_t *p, size_t *used)
{
    uint64_t id = rec_get_u64(p);
    uint32_t vlen = rec_get_u32(p + 8), n = rec_get_u32(p + 12);
    const uint8_t *v = p + 16, *e = v + vlen;
    *used = 16 + (size_t)vlen + (size_t)n * QE_OP_LEN;

    uint8_t k[REC_MSG_KEY_LEN];
    rec_put_u64(k, id);
    MDB_val key = val(k, sizeof k), data = val(v, vlen);
    /* Message ids only grow, so a new message goes at the end of the
     * tree: MDB_APPEND skips the search and fills pages to the brim
     * (a plain insert splits them half full). An id at or below the last
     * one (a message stored before, gaining references) takes the long
     * way. */
    uint32_t before = 0;
    int rc = mdb_put(t, s->dbi[REC_DB_MSGS], &key, &data, MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        bool existed = msg_exists(s, t, id, &rc);
        if (rc != 0)
            return rc;
        if (existed) {
            before = refs_get(&s->refs, id);
            if (before == 0)
                before = 1;
        }
        data = val(v, vlen);
        rc = mdb_put(t, s->dbi[REC_DB_MSGS], &key, &data, 0);
    }
    uint32_t added = 0;
    for (uint32_t i = 0; rc == 0 && i < n; i++, e += QE_OP_LEN) {
        if (e[16] & QE_CANCELLED)
            continue;
        bool a;
        rc = qe_write(s, t, rec_get_u64(e), rec_get_u64(e + 8), id, e[16], &a);
        added += a;
    }
    if (rc != 0)
        return rc;
    uint32_t total = before + added;
    if (total == 0) {   /* no entry refers to it: don't keep an orphan */
        rc = mdb_del(t, s->dbi[REC_DB_MSGS], &key, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    return refs_set(&s->refs, id, total) == 0 ? 0 : ENOMEM;
}

static int
apply_put_qe(store *s, MDB_txn *t, const uint8_t *p)
{
    uint64_t queue = rec_get_u64(p), seq = rec_get_u64(p + 8), msg = rec_get_u64(p + 16);
    if (p[24] & QE_CANCELLED)
        return 0;
    int rc;
    if (!msg_exists(s, t, msg, &rc)) {
        if (rc == 0)   /* the caller broke its duty; an entry to nothing helps no one */
            fprintf(stderr, "coney: storage: entry %llu/%llu refers to missing message %llu; "
                    "not written\n", (unsigned long long)queue, (unsigned long long)seq,
                    (unsigned long long)msg);
        return rc;
    }
    bool added;
    rc = qe_write(s, t, queue, seq, msg, p[24], &added);
    if (rc == 0 && added)
        rc = msg_ref(s, msg);
    return rc;
}

static int
apply_del_qe(store *s, MDB_txn *t, const uint8_t *p)
{
    uint8_t k[REC_QE_KEY_LEN];
    memcpy(k, p, sizeof k);
    MDB_val key = val(k, sizeof k), old;
    int rc = mdb_get(t, s->dbi[REC_DB_QIDX], &key, &old);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    store_qentry e;
    int err = rec_qentry_decode(old.mv_data, old.mv_size, &e);
    rc = mdb_del(t, s->dbi[REC_DB_QIDX], &key, NULL);
    if (rc != 0)
        return rc;
    if (err != 0) {
        rec_log_bad("qidx", k, sizeof k, err);
        return 0;
    }
    return msg_unref(s, t, e.msg_id);
}

static int
apply_del_qrange(store *s, MDB_txn *t, const uint8_t *p)
{
    uint64_t queue = rec_get_u64(p), from = rec_get_u64(p + 8), to = rec_get_u64(p + 16);
    if (from > to)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi[REC_DB_QIDX], &c);
    if (rc != 0)
        return rc;
    uint8_t k[REC_QE_KEY_LEN];
    rec_qentry_key(queue, from, k);
    MDB_val key = val(k, sizeof k), data;
    for (rc = mdb_cursor_get(c, &key, &data, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &data, MDB_NEXT)) {
        const uint8_t *kp = key.mv_data;
        if (key.mv_size != REC_QE_KEY_LEN || rec_get_u64(kp) != queue
            || rec_get_u64(kp + 8) > to)
            break;
        store_qentry e;
        int err = rec_qentry_decode(data.mv_data, data.mv_size, &e);
        if (err != 0)
            rec_log_bad("qidx", kp, key.mv_size, err);
        /* After mdb_cursor_del the cursor already stands on the next
         * entry; LMDB's MDB_NEXT knows and does not skip it. */
        rc = mdb_cursor_del(c, 0);
        if (rc == 0 && err == 0)
            rc = msg_unref(s, t, e.msg_id);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The most one write transaction applies; see batch_apply. */
#define CHUNK_OPS 4096
#define CHUNK_BYTES (8u << 20)

/* Runs the ops at p in transaction t, up to the chunk limits; *end is
 * where it stopped. */
static int
ops_run(store *s, MDB_txn *t, const uint8_t *p, size_t len, size_t *end)
{
    size_t off = 0, nops = 0;
    int rc = 0;
    while (rc == 0 && off < len && nops++ < CHUNK_OPS && off < CHUNK_BYTES) {
        const uint8_t *o = p + off + 1;
        size_t used = 0;
        switch ((enum op)p[off]) {
        case OP_PUT: {
            uint16_t klen = rec_get_u16(o + 1);
            uint32_t vlen = rec_get_u32(o + 3);
            MDB_val key = val(o + 7, klen), data = val(o + 7 + klen, vlen);
            rc = mdb_put(t, s->dbi[o[0]], &key, &data, 0);
            used = 7 + (size_t)klen + vlen;
            break;
        }
        case OP_DEL: {
            uint16_t klen = rec_get_u16(o + 1);
            MDB_val key = val(o + 3, klen);
            rc = mdb_del(t, s->dbi[o[0]], &key, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
            used = 3 + (size_t)klen;
            break;
        }
        case OP_PUT_MSG:
            rc = apply_put_msg(s, t, o, &used);
            break;
        case OP_DROP_MSG:
            used = 16 + (size_t)rec_get_u32(o + 8) + (size_t)rec_get_u32(o + 12) * QE_OP_LEN;
            break;
        case OP_PUT_QE:
            rc = apply_put_qe(s, t, o);
            used = 25;
            break;
        case OP_DEL_QE:
            rc = apply_del_qe(s, t, o);
            used = 16;
            break;
        case OP_DEL_QRANGE:
            rc = apply_del_qrange(s, t, o);
            used = 24;
            break;
        default:
            abort();   /* our own buffer: a bad op is memory corruption */
        }
        off += 1 + used;
    }
    *end = off;
    return rc;
}

/*
 * Each transaction reads the right edge of the trees through the map, and
 * over time every page was once at that edge: the whole file would end up
 * mapped and counted as our resident memory though no one reads it again.
 * Every so often the storage thread drops its page-table entries for the
 * map. The map is a read-only shared file mapping, so this loses nothing:
 * a later read faults the page back in from the page cache. Only this
 * thread resizes the map, so the range is stable here.
 */
#define MAP_TRIM_EVERY (8u << 20)


static void
map_trim(store *s, size_t written)
{
    s->since_trim += written;
    if (s->since_trim < MAP_TRIM_EVERY)
        return;
    s->since_trim = 0;
    /* LMDB reports its map address only for MDB_FIXEDMAP, so find the
     * mapping of our data file in the kernel's list. */
    char want[PATH_MAX + 16];
    snprintf(want, sizeof want, "%s/data.mdb", s->dir);
    char real[PATH_MAX];
    const char *path = realpath(want, real) ? real : want;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[PATH_MAX + 128];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        int off = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 || off == 0)
            continue;
        char *name = line + off;
        name[strcspn(name, "\n")] = 0;
        if (strcmp(name, path) == 0)
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    fclose(f);
}

/* Applies a whole batch, growing the map and replaying as often as LMDB
 * reports it full. Returns 0 or a STORE_E*. A big batch goes in several
 * transactions of at most CHUNK_OPS operations: LMDB holds a private copy
 * of every page a write transaction touches and keeps those copies for
 * reuse ever after, so the largest transaction sets the store's memory.
 * The batch is reported done after its last transaction; a crash between
 * two leaves a prefix, which is no promise broken, since nothing in the
 * batch was confirmed yet. */
static int
batch_apply(store *s, const uint8_t *ops, size_t len)
{
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        size_t end = 0;
        for (int tries = 0; tries <= MAX_GROWS; tries++) {
            MDB_txn *t;
            rc = mdb_txn_begin(s->env, NULL, 0, &t);
            if (rc == 0) {
                rc = ops_run(s, t, ops + off, len - off, &end);
                if (rc == 0)
                    rc = mdb_txn_commit(t);   /* frees t either way */
                else
                    mdb_txn_abort(t);
            }
            if (rc == 0) {
                refs_keep(&s->refs);
                atomic_fetch_add(&s->commits, 1);
                map_trim(s, end);
                break;
            }
            refs_undo(&s->refs);
            s->qidx_top_known = false;
            if (rc != MDB_MAP_FULL || map_grow(s) != 0)
                break;
        }
        if (rc != 0)
            break;
        off += end;
    }
    int prev = s->last_rc;
    s->last_rc = rc;
    if (rc == 0)
        return 0;
    /* A full disk fails every batch until space returns: say so once. */
    if (rc != prev)
        fprintf(stderr, "coney: storage: batch failed: %s\n", mdb_strerror(rc));
    /* A write cut short by a full disk reaches us from LMDB as EIO, not
     * ENOSPC; the disk's free space tells the two apart. */
    struct statvfs fs;
    if (rc == EIO && statvfs(s->dir, &fs) == 0
        && (uint64_t)fs.f_bavail * fs.f_frsize < (uint64_t)len + (1u << 20))
        return STORE_EFULL;
    return store_err(rc);
}

/* ---- pending puts of the open batch (under mu) ------------------------------ */

/* Empties the table: the open batch was taken, or a write came that the
 * table cannot follow. */
static void
pend_forget(store *s)
{
    if (s->pend_used == 0)
        return;
    s->pend_used = 0;
    if (++s->pend_gen == 0) {   /* after 2^32 batches: old slots would read as new */
        memset(s->pend, 0, PEND_SLOTS * sizeof *s->pend);
        s->pend_gen = 1;
    }
}

/* The slot of (k1, k2) in this batch; with add, a fresh one if there is
 * none (NULL when the table is full or cannot be allocated). */
static pend *
pend_find(store *s, uint64_t k1, uint64_t k2, bool add)
{
    if (s->pend == NULL) {
        if (!add || (s->pend = calloc(PEND_SLOTS, sizeof *s->pend)) == NULL)
            return NULL;
        s->pend_gen = 1;
    }
    uint64_t h = (k1 * 0x9e3779b97f4a7c15u ^ k2) * 0xff51afd7ed558ccdu;
    for (size_t i = (size_t)(h >> 40) & (PEND_SLOTS - 1);; i = (i + 1) & (PEND_SLOTS - 1)) {
        pend *p = &s->pend[i];
        if (p->gen != s->pend_gen) {
            if (!add || s->pend_used == PEND_MAX)
                return NULL;
            *p = (pend){ .k1 = k1, .k2 = k2, .gen = s->pend_gen };
            s->pend_used++;
            return p;
        }
        if (p->k1 == k1 && p->k2 == k2)
            return p;
    }
}

/* The message slot of m when its op may still be dropped. */
static pend *
pend_live_msg(store *s, uint64_t m)
{
    pend *p = pend_find(s, PEND_MSG, m, false);
    return p != NULL && p->state == PEND_LIVE ? p : NULL;
}

/* Cancels the put of entry e, if that is certain to change nothing but
 * the work: false leaves it as written. Dropping the last entry of a
 * message's op drops the message's put as well. */
static bool
pend_cancel(store *s, pend *e)
{
    pend *m = pend_live_msg(s, e->msg);
    if (e->sub) {
        /* Only in the op the table follows, and never the last entry
         * while a later put in the batch needs the message. */
        if (m == NULL || e->at < m->at || e->at >= m->end || (m->subs == 1 && m->deps > 0))
            return false;
        if (--m->subs == 0) {
            s->open.p[m->at] = OP_DROP_MSG;
            m->state = PEND_GONE;
            s->dropped++;
        }
    } else if (e->dep && m != NULL) {
        m->deps--;
    }
    s->open.p[e->at] |= QE_CANCELLED;
    e->at = 0;
    s->cancelled++;
    return true;
}

/* Notes an entry put whose flags byte is at `at` in the batch. An earlier
 * put of the entry naming another message (rare) is left as written: the
 * later one overwrites it when the batch is applied. */
static void
pend_entry(store *s, uint64_t queue, uint64_t seq, uint64_t msg, size_t at, bool sub, bool dep)
{
    pend *e = pend_find(s, queue, seq, true);
    if (e == NULL)
        return;
    e->at = at;
    e->msg = msg;
    e->sub = sub;
    e->dep = dep;
}

/* ---- the storage thread --------------------------------------------------- */

static void
sync_now(store *s)
{
    int rc = mdb_env_sync(s->env, 1);
    if (rc != 0)
        fprintf(stderr, "coney: storage: sync failed: %s\n", mdb_strerror(rc));
    s->dirty = false;
}

/* Records a finished batch; called with mu held. */
static void
batch_done(store *s, uint64_t id, int status)
{
    if (status != 0) {
        if (s->nfails == s->failcap) {
            size_t cap = s->failcap ? s->failcap * 2 : 16;
            store_done *f = realloc(s->fails, cap * sizeof *f);
            if (f == NULL) {
                /* Reporting a failed batch as committed would confirm
                 * lost messages; stopping is the only honest answer. */
                fprintf(stderr, "coney: storage: out of memory recording a failed batch\n");
                abort();
            }
            s->fails = f;
            s->failcap = cap;
        }
        s->fails[s->nfails].batch_id = id;
        s->fails[s->nfails].status = status;
        s->nfails++;
    } else {
        atomic_store(&s->committed, id);
    }
    s->done_upto = id;
    atomic_fetch_add(&s->batches, 1);
    pthread_cond_broadcast(&s->done_cv);
}

static void *
store_thread(void *arg)
{
    store *s = arg;
    obuf work = { NULL, 0, 0 };
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if ((s->open.len == 0 && !s->flush_asked && s->open_err == 0)
            || (s->held && !s->stopping)) {
            if (s->stopping)
                break;
            if (s->dirty) {
                struct timespec when = s->dirty_since;
                ts_add_ms(&when, s->sync_ms);
                if (pthread_cond_timedwait(&s->wake, &s->mu, &when) == ETIMEDOUT) {
                    pthread_mutex_unlock(&s->mu);
                    sync_now(s);
                    pthread_mutex_lock(&s->mu);
                }
            } else {
                pthread_cond_wait(&s->wake, &s->mu);
            }
            continue;
        }
        /* Take the open batch; the loop goes on filling a fresh one. */
        obuf t = s->open;
        s->open = work;
        work = t;
        pend_forget(s);
        uint64_t id = atomic_load(&s->open_id);
        atomic_store(&s->open_id, id + 1);
        int status = s->open_err;
        s->open_err = 0;
        s->flush_asked = false;
        pthread_mutex_unlock(&s->mu);

        if (status == 0 && work.len > 0) {
            status = batch_apply(s, work.p, work.len);
            /* No commit stays unsynced longer than the interval: the
             * timed wait above covers an idle thread, this a busy one. */
            if (status == 0 && s->sync == STORE_SYNC_BATCH) {
                struct timespec now;
                now_mono(&now);
                if (!s->dirty) {
                    s->dirty = true;
                    s->dirty_since = now;
                }
                struct timespec when = s->dirty_since;
                ts_add_ms(&when, s->sync_ms);
                if (ts_reached(&now, &when))
                    sync_now(s);
            }
        }
        work.len = 0;
        if (work.cap > KEEP_BUF) {
            free(work.p);
            work.p = NULL;
            work.cap = 0;
        }

        pthread_mutex_lock(&s->mu);
        batch_done(s, id, status);
        if (s->on_done != NULL) {
            pthread_mutex_unlock(&s->mu);
            s->on_done(s->ctx);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (s->dirty)
        sync_now(s);
    free(work.p);
    return NULL;
}

/* ---- opening and closing -------------------------------------------------- */

static int
mkdir_p(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        path[i] = c;
    }
    return 0;
}

static int
fill_random(uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Opens the named databases and reads (or at first open, makes) the
 * SipHash key of meta keys. */
static int
open_dbs(store *s, char *err, size_t errlen)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(s->env, NULL, 0, &t);
    if (rc != 0) {
        snprintf(err, errlen, "storage: begin: %s", mdb_strerror(rc));
        return store_err(rc);
    }
    for (int i = 0; i < REC_DB_COUNT && rc == 0; i++)
        rc = mdb_dbi_open(t, db_names[i], MDB_CREATE, &s->dbi[i]);
    MDB_val key = val(rec_hashkey_key, sizeof rec_hashkey_key), data;
    if (rc == 0)
        rc = mdb_get(t, s->dbi[REC_DB_META], &key, &data);
    int serr = 0;
    if (rc == 0) {
        serr = rec_hashkey_decode(data.mv_data, data.mv_size, s->hkey);
        if (serr != 0)
            snprintf(err, errlen, "storage: meta hash key record: %s", store_strerror(serr));
    } else if (rc == MDB_NOTFOUND) {
        uint8_t v[REC_HASHKEY_LEN];
        rc = fill_random(s->hkey, sizeof s->hkey);
        if (rc != 0) {
            snprintf(err, errlen, "storage: getrandom: %s", strerror(rc));
            mdb_txn_abort(t);
            return STORE_EIO;
        }
        rec_hashkey_encode(s->hkey, v);
        data = val(v, sizeof v);
        rc = mdb_put(t, s->dbi[REC_DB_META], &key, &data, 0);
    }
    if (rc == 0 && serr == 0)
        rc = mdb_txn_commit(t);
    else
        mdb_txn_abort(t);
    if (rc != 0) {
        snprintf(err, errlen, "storage: opening databases: %s", mdb_strerror(rc));
        return store_err(rc);
    }
    return serr;
}

static void
store_free(store *s)
{
    if (s->env != NULL)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done_cv);
    pthread_rwlock_destroy(&s->maplock);
    refs_free(&s->refs);
    free(s->dir);
    free(s->open.p);
    free(s->pend);
    free(s->fails);
    free(s);
}

int
store_open(const store_config *cfg, store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "storage: out of memory");
        return STORE_ENOMEM;
    }
    s->sync = cfg->sync;
    s->sync_ms = cfg->sync_interval_ms ? cfg->sync_interval_ms : DEFAULT_SYNC_MS;
    s->on_done = cfg->on_done;
    s->ctx = cfg->ctx;
    atomic_init(&s->open_id, 1);
    atomic_init(&s->committed, 0);
    atomic_init(&s->batches, 0);
    atomic_init(&s->commits, 0);
    atomic_init(&s->last_write, 0);
    refs_init(&s->refs);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* the sync timer */
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->done_cv, NULL);
    /* glibc's default rwlock prefers readers: a thread may hold two
     * readers at once without deadlocking against a waiting grower. */
    pthread_rwlock_init(&s->maplock, NULL);

    s->dir = strdup(cfg->dir);
    if (s->dir == NULL) {
        snprintf(err, errlen, "storage: out of memory");
        store_free(s);
        return STORE_ENOMEM;
    }
    int rc = mkdir_p(cfg->dir);
    if (rc != 0) {
        snprintf(err, errlen, "storage: cannot create %s: %s", cfg->dir, strerror(rc));
        store_free(s);
        return STORE_EIO;
    }
    size_t map = cfg->initial_map_size ? cfg->initial_map_size : DEFAULT_MAP_SIZE;
    /* NORDAHEAD: without it every read fault maps neighbouring pages too,
     * and a queue paged to disk would show up as resident memory. */
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (cfg->sync == STORE_SYNC_ALWAYS ? 0 : MDB_NOSYNC);
    rc = mdb_env_create(&s->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, 8);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, map);
    if (rc == 0)
        rc = mdb_env_open(s->env, cfg->dir, flags, 0600);
    if (rc != 0) {
        snprintf(err, errlen, "storage: cannot open %s: %s", cfg->dir, mdb_strerror(rc));
        store_free(s);
        return store_err(rc);
    }
    /* A process killed with readers open leaves their slots taken. */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);   /* an existing file may be larger than asked */
    atomic_init(&s->map_size, info.me_mapsize);

    rc = open_dbs(s, err, errlen);
    if (rc != 0) {
        store_free(s);
        return rc;
    }
    rc = pthread_create(&s->thread, NULL, store_thread, s);
    if (rc != 0) {
        snprintf(err, errlen, "storage: cannot start the storage thread: %s", strerror(rc));
        store_free(s);
        return STORE_ENOMEM;
    }
    s->thread_started = true;
    *out = s;
    return 0;
}

void
store_close(store *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started)
        pthread_join(s->thread, NULL);   /* it commits what is queued first */
    store_free(s);
}

/* ---- writes (loop thread) ---------------------------------------------------- */

static void
batch_lock(store *s)
{
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->last_write, atomic_load(&s->open_id));
}

/* Reserves n bytes at the end of the open batch, mu held. NULL when the
 * batch cannot take them: it is then marked failed (every op of a batch
 * commits or none does). */
static uint8_t *
batch_reserve(store *s, size_t n)
{
    if (s->open_err != 0)
        return NULL;
    obuf *b = &s->open;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                s->open_err = STORE_ENOMEM;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            s->open_err = STORE_ENOMEM;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->len;
    b->len += n;
    return at;
}

/* Locks mu and reserves n bytes; batch_end unlocks either way. */
static uint8_t *
batch_begin(store *s, size_t n)
{
    batch_lock(s);
    return batch_reserve(s, n);
}

static void
batch_end(store *s)
{
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

/* The batch of the latest write, not simply the open one: if the thread
 * took that batch a moment ago, the open batch is empty and might never
 * be taken, and a confirm waiting on it would wait for the next write. */
uint64_t
store_batch_id(const store *s)
{
    uint64_t last = atomic_load(&s->last_write);
    return last != 0 ? last : atomic_load(&s->open_id);
}

/* An OP_PUT whose value is written by enc (size vlen) straight into the
 * batch, so the record is encoded exactly once. */
typedef void (*rec_encoder)(const void *rec, uint8_t *out);

static void
queue_put(store *s, enum rec_db db, const uint8_t *key, size_t klen, size_t vlen,
          rec_encoder enc, const void *rec, const uint8_t *raw)
{
    if (klen > 511) {   /* LMDB's limit; our keys are 8 to 17 bytes */
        fprintf(stderr, "coney: storage: key of %zu bytes refused\n", klen);
        abort();
    }
    uint8_t *p = batch_begin(s, 1 + 7 + klen + vlen);
    if (db == REC_DB_QIDX || db == REC_DB_MSGS)
        pend_forget(s);
    if (p != NULL) {
        p[0] = OP_PUT;
        p[1] = (uint8_t)db;
        rec_put_u16(p + 2, (uint16_t)klen);
        rec_put_u32(p + 4, (uint32_t)vlen);
        memcpy(p + 8, key, klen);
        if (enc != NULL)
            enc(rec, p + 8 + klen);
        else if (vlen > 0)
            memcpy(p + 8 + klen, raw, vlen);
    }
    batch_end(s);
}

static void
queue_del(store *s, enum rec_db db, const uint8_t *key, size_t klen)
{
    uint8_t *p = batch_begin(s, 1 + 3 + klen);
    if (db == REC_DB_QIDX || db == REC_DB_MSGS)
        pend_forget(s);
    if (p != NULL) {
        p[0] = OP_DEL;
        p[1] = (uint8_t)db;
        rec_put_u16(p + 2, (uint16_t)klen);
        memcpy(p + 4, key, klen);
    }
    batch_end(s);
}

static void
enc_exchange(const void *rec, uint8_t *out)
{
    rec_exchange_encode(rec, out);
}

static void
enc_queue(const void *rec, uint8_t *out)
{
    rec_queue_encode(rec, out);
}

static void
enc_binding(const void *rec, uint8_t *out)
{
    rec_binding_encode(rec, out);
}

void
store_put_exchange(store *s, const store_exchange *x)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_exchange_key(s->hkey, x->vhost, x->name, k);
    queue_put(s, REC_DB_META, k, sizeof k, rec_exchange_size(x), enc_exchange, x, NULL);
}

void
store_del_exchange(store *s, store_bytes vhost, store_bytes name)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_exchange_key(s->hkey, vhost, name, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

void
store_put_queue(store *s, const store_queue *q)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_queue_key(s->hkey, q->vhost, q->name, k);
    queue_put(s, REC_DB_META, k, sizeof k, rec_queue_size(q), enc_queue, q, NULL);
}

void
store_del_queue(store *s, store_bytes vhost, store_bytes name, uint64_t queue_id)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_queue_key(s->hkey, vhost, name, k);
    /* Both ops under one hold of the lock, so they share a batch. */
    uint8_t *p = batch_begin(s, (1 + 3 + sizeof k) + (1 + 24));
    pend_forget(s);
    if (p != NULL) {
        p[0] = OP_DEL;
        p[1] = REC_DB_META;
        rec_put_u16(p + 2, sizeof k);
        memcpy(p + 4, k, sizeof k);
        p += 4 + sizeof k;
        p[0] = OP_DEL_QRANGE;
        rec_put_u64(p + 1, queue_id);
        rec_put_u64(p + 9, 0);
        rec_put_u64(p + 17, UINT64_MAX);
    }
    batch_end(s);
}

void
store_put_binding(store *s, const store_binding *b)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_binding_key(s->hkey, b, k);
    queue_put(s, REC_DB_META, k, sizeof k, rec_binding_size(b), enc_binding, b, NULL);
}

void
store_del_binding(store *s, const store_binding *b)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_binding_key(s->hkey, b, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

/* Retained messages and sessions: each in its own db, keyed by the hash
 * of (vhost, name), so a put of the same pair overwrites. */
static void
enc_retained(const void *rec, uint8_t *out)
{
    rec_kv_encode(REC_RETAINED, rec, out);
}

static void
enc_session(const void *rec, uint8_t *out)
{
    rec_kv_encode(REC_SESSION, rec, out);
}

static void
kv_put(store *s, enum rec_db db, const store_kv *r, rec_encoder enc)
{
    size_t vlen = rec_kv_size(r);
    if (r->vhost.len > REC_SHORT_MAX || r->name.len > REC_SHORT_MAX || vlen > UINT32_MAX) {
        fprintf(stderr, "coney: storage: %s record of %zu bytes too large\n", db_names[db],
                vlen);
        abort();
    }
    uint8_t k[REC_KV_KEY_LEN];
    rec_kv_key(s->hkey, r->vhost, r->name, k);
    queue_put(s, db, k, sizeof k, vlen, enc, r, NULL);
}

static void
kv_del(store *s, enum rec_db db, store_bytes vhost, store_bytes name)
{
    uint8_t k[REC_KV_KEY_LEN];
    rec_kv_key(s->hkey, vhost, name, k);
    queue_del(s, db, k, sizeof k);
}

void
store_put_retained(store *s, const store_kv *r)
{
    kv_put(s, REC_DB_RETAINED, r, enc_retained);
}

void
store_del_retained(store *s, store_bytes vhost, store_bytes topic)
{
    kv_del(s, REC_DB_RETAINED, vhost, topic);
}

void
store_put_session(store *s, const store_kv *r)
{
    kv_put(s, REC_DB_SESSIONS, r, enc_session);
}

void
store_del_session(store *s, store_bytes vhost, store_bytes client_id)
{
    kv_del(s, REC_DB_SESSIONS, vhost, client_id);
}

/* Access control records, in meta. The encoders assert their limits;
 * here the same limits abort in every build, since a put is the broker's
 * word that the fields fit (store.h). */
static void
enc_vhost(const void *rec, uint8_t *out)
{
    rec_vhost_encode(rec, out);
}

static void
enc_user(const void *rec, uint8_t *out)
{
    rec_user_encode(rec, out);
}

static void
enc_permission(const void *rec, uint8_t *out)
{
    rec_permission_encode(rec, out);
}

static void
enc_topic_permission(const void *rec, uint8_t *out)
{
    rec_topic_permission_encode(rec, out);
}

static void
meta_put(store *s, const char *what, const uint8_t k[REC_META_KEY_LEN],
         const store_bytes *shorts, size_t nshorts, size_t vlen, rec_encoder enc,
         const void *rec)
{
    bool fits = vlen <= UINT32_MAX;
    for (size_t i = 0; i < nshorts; i++)
        fits = fits && shorts[i].len <= REC_SHORT_MAX;
    if (!fits) {
        fprintf(stderr, "coney: storage: %s record of %zu bytes has a field too large\n",
                what, vlen);
        abort();
    }
    queue_put(s, REC_DB_META, k, REC_META_KEY_LEN, vlen, enc, rec, NULL);
}

void
store_put_vhost(store *s, const store_vhost *h)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_vhost_key(s->hkey, h->name, k);
    store_bytes shorts[] = { h->name, h->default_queue_type };
    meta_put(s, "vhost", k, shorts, 2, rec_vhost_size(h), enc_vhost, h);
}

void
store_del_vhost(store *s, store_bytes name)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_vhost_key(s->hkey, name, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

void
store_put_user(store *s, const store_user *u)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_user_key(s->hkey, u->name, k);
    store_bytes shorts[] = { u->name, u->password_hash };
    meta_put(s, "user", k, shorts, 2, rec_user_size(u), enc_user, u);
}

void
store_del_user(store *s, store_bytes name)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_user_key(s->hkey, name, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

void
store_put_permission(store *s, const store_permission *p)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_permission_key(s->hkey, p->user, p->vhost, k);
    store_bytes shorts[] = { p->user, p->vhost };
    meta_put(s, "permission", k, shorts, 2, rec_permission_size(p), enc_permission, p);
}

void
store_del_permission(store *s, store_bytes user, store_bytes vhost)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_permission_key(s->hkey, user, vhost, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

void
store_put_topic_permission(store *s, const store_topic_permission *p)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_topic_permission_key(s->hkey, p->user, p->vhost, p->exchange, k);
    store_bytes shorts[] = { p->user, p->vhost, p->exchange };
    meta_put(s, "topic permission", k, shorts, 3, rec_topic_permission_size(p),
             enc_topic_permission, p);
}

void
store_del_topic_permission(store *s, store_bytes user, store_bytes vhost, store_bytes exchange)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_topic_permission_key(s->hkey, user, vhost, exchange, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

/* Policies: one layout, two kinds. */
static void
enc_policy(const void *rec, uint8_t *out)
{
    rec_policy_encode(REC_POLICY, rec, out);
}

static void
enc_operator_policy(const void *rec, uint8_t *out)
{
    rec_policy_encode(REC_OPERATOR_POLICY, rec, out);
}

static void
policy_put(store *s, uint8_t kind, const store_policy *p)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_policy_key(kind, s->hkey, p->vhost, p->name, k);
    store_bytes shorts[] = { p->vhost, p->name, p->apply_to };
    meta_put(s, kind == REC_KIND_POLICY ? "policy" : "operator policy", k, shorts, 3,
             rec_policy_size(p), kind == REC_KIND_POLICY ? enc_policy : enc_operator_policy, p);
}

static void
policy_del(store *s, uint8_t kind, store_bytes vhost, store_bytes name)
{
    uint8_t k[REC_META_KEY_LEN];
    rec_policy_key(kind, s->hkey, vhost, name, k);
    queue_del(s, REC_DB_META, k, sizeof k);
}

void
store_put_policy(store *s, const store_policy *p)
{
    policy_put(s, REC_KIND_POLICY, p);
}

void
store_del_policy(store *s, store_bytes vhost, store_bytes name)
{
    policy_del(s, REC_KIND_POLICY, vhost, name);
}

void
store_put_operator_policy(store *s, const store_policy *p)
{
    policy_put(s, REC_KIND_OPERATOR_POLICY, p);
}

void
store_del_operator_policy(store *s, store_bytes vhost, store_bytes name)
{
    policy_del(s, REC_KIND_OPERATOR_POLICY, vhost, name);
}

void
store_put_message(store *s, const store_message *m, const store_qentry *e, size_t n)
{
    size_t vlen = rec_message_size(m);
    if (vlen > UINT32_MAX || n > UINT32_MAX) {
        fprintf(stderr, "coney: storage: message %llu too large\n", (unsigned long long)m->id);
        abort();
    }
    uint8_t *p = batch_begin(s, 1 + 16 + vlen + n * QE_OP_LEN);
    if (p != NULL) {
        p[0] = OP_PUT_MSG;
        rec_put_u64(p + 1, m->id);
        rec_put_u32(p + 9, (uint32_t)vlen);
        rec_put_u32(p + 13, (uint32_t)n);
        rec_message_encode(m, p + 17);
        uint8_t *q = p + 17 + vlen;
        for (size_t i = 0; i < n; i++, q += QE_OP_LEN) {
            if (e[i].msg_id != m->id) {
                fprintf(stderr, "coney: storage: entry of message %llu names %llu\n",
                        (unsigned long long)m->id, (unsigned long long)e[i].msg_id);
                abort();
            }
            rec_put_u64(q, e[i].queue_id);
            rec_put_u64(q + 8, e[i].seq);
            q[16] = e[i].flags & (uint8_t)~QE_CANCELLED;
        }
        size_t op = (size_t)(p - s->open.p);
        pend *pm = pend_find(s, PEND_MSG, m->id, true);
        if (pm != NULL && pm->state == PEND_LIVE) {
            pm->state = PEND_PINNED;
        } else if (pm != NULL && pm->state != PEND_PINNED) {
            pm->state = PEND_LIVE;
            pm->at = op;
            pm->end = op + 17 + vlen + n * QE_OP_LEN;
            pm->subs = (uint32_t)n;
            pm->deps = 0;
        }
        for (size_t i = 0; i < n; i++)
            pend_entry(s, e[i].queue_id, e[i].seq, m->id, op + 17 + vlen + i * QE_OP_LEN + 16,
                       true, false);
    }
    batch_end(s);
}

void
store_put_qentry(store *s, const store_qentry *e)
{
    uint8_t flags = e->flags & (uint8_t)~QE_CANCELLED;
    batch_lock(s);
    /* Already put in this batch, naming the same message (a delivery
     * marked soon after the publish): rewrite that put's flags. */
    pend *pe = s->open_err == 0 ? pend_find(s, e->queue_id, e->seq, false) : NULL;
    if (pe != NULL && pe->at != 0 && pe->msg == e->msg_id) {
        s->open.p[pe->at] = flags;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    uint8_t *p = batch_reserve(s, 1 + 25);
    if (p != NULL) {
        p[0] = OP_PUT_QE;
        rec_put_u64(p + 1, e->queue_id);
        rec_put_u64(p + 9, e->seq);
        rec_put_u64(p + 17, e->msg_id);
        p[25] = flags;
        pend *m = pend_live_msg(s, e->msg_id);
        if (m != NULL)
            m->deps++;   /* its message's put must stay */
        pend_entry(s, e->queue_id, e->seq, e->msg_id, (size_t)(p + 25 - s->open.p), false,
                   m != NULL);
    }
    batch_end(s);
}

void
store_del_qentry(store *s, uint64_t queue_id, uint64_t seq)
{
    batch_lock(s);
    pend *pe = s->open_err == 0 ? pend_find(s, queue_id, seq, false) : NULL;
    if (pe != NULL && pe->at != 0 && !pend_cancel(s, pe))
        pe->at = 0;   /* a put after this delete must not be folded into one before it */
    uint8_t *p = batch_reserve(s, 1 + 16);
    if (p != NULL) {
        p[0] = OP_DEL_QE;
        rec_put_u64(p + 1, queue_id);
        rec_put_u64(p + 9, seq);
    }
    batch_end(s);
}

void
store_del_qrange(store *s, uint64_t queue_id, uint64_t from_seq, uint64_t to_seq)
{
    uint8_t *p = batch_begin(s, 1 + 24);
    pend_forget(s);
    if (p != NULL) {
        p[0] = OP_DEL_QRANGE;
        rec_put_u64(p + 1, queue_id);
        rec_put_u64(p + 9, from_seq);
        rec_put_u64(p + 17, to_seq);
    }
    batch_end(s);
}

void
store_put_raw(store *s, enum rec_db db, const uint8_t *key, size_t klen, const uint8_t *v,
              size_t vlen)
{
    queue_put(s, db, key, klen, vlen, NULL, NULL, v);
}

void
store_hash_key(const store *s, uint8_t out[16])
{
    memcpy(out, s->hkey, 16);
}

void
store_hold(store *s, bool on)
{
    pthread_mutex_lock(&s->mu);
    s->held = on;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

uint64_t
store_flush(store *s)
{
    pthread_mutex_lock(&s->mu);
    s->flush_asked = true;
    uint64_t id = atomic_load(&s->open_id);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return id;
}

/* ---- completions -------------------------------------------------------------- */

size_t
store_drain(store *s, store_done *out, size_t max)
{
    pthread_mutex_lock(&s->mu);
    size_t n = 0, f = 0;
    /* Ids are contiguous; only failures need remembering. */
    while (n < max && s->drained_upto < s->done_upto) {
        uint64_t id = ++s->drained_upto;
        out[n].batch_id = id;
        out[n].status = 0;
        if (f < s->nfails && s->fails[f].batch_id == id)
            out[n].status = s->fails[f++].status;
        n++;
    }
    if (f > 0) {
        memmove(s->fails, s->fails + f, (s->nfails - f) * sizeof *s->fails);
        s->nfails -= f;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint64_t
store_committed(const store *s)
{
    return atomic_load(&s->committed);
}

int
store_wait(store *s, uint64_t batch_id)
{
    pthread_mutex_lock(&s->mu);
    uint64_t open = atomic_load(&s->open_id);
    if (batch_id > open) {
        pthread_mutex_unlock(&s->mu);
        return STORE_ENOTFOUND;
    }
    if (batch_id == open) {   /* may be empty: make sure it gets taken */
        s->flush_asked = true;
        pthread_cond_signal(&s->wake);
    }
    while (s->done_upto < batch_id)
        pthread_cond_wait(&s->done_cv, &s->mu);
    int status = 0;
    for (size_t i = 0; i < s->nfails; i++)
        if (s->fails[i].batch_id == batch_id)
            status = s->fails[i].status;
    pthread_mutex_unlock(&s->mu);
    return status;
}

/* ---- reads --------------------------------------------------------------------- */

int
store_read_begin(store *s, store_reader **out)
{
    *out = NULL;
    store_reader *r = malloc(sizeof *r);
    if (r == NULL)
        return STORE_ENOMEM;
    r->s = s;
    pthread_rwlock_rdlock(&s->maplock);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&s->maplock);
        free(r);
        fprintf(stderr, "coney: storage: read transaction: %s\n", mdb_strerror(rc));
        return store_err(rc);
    }
    *out = r;
    return 0;
}

void
store_read_end(store_reader *r)
{
    if (r == NULL)
        return;
    mdb_txn_abort(r->txn);
    pthread_rwlock_unlock(&r->s->maplock);
    free(r);
}

/* Steps a meta cursor through the records of one kind: MDB_NOTFOUND past
 * the last. first positions on the first record of the kind. */
static int
meta_step(MDB_cursor *c, uint8_t kind, bool first, MDB_val *k, MDB_val *v)
{
    int rc;
    if (first) {
        *k = val(&kind, 1);
        rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(c, k, v, MDB_NEXT);
    }
    if (rc == 0 && ((const uint8_t *)k->mv_data)[0] != kind)
        rc = MDB_NOTFOUND;
    return rc;
}

/* What iteration does with a record that did not decode: skips it (0),
 * or for one of a newer format stops (STORE_EVERSION), since carrying on
 * without it would silently lose state this build cannot read. */
static int
skip_bad(const char *db, const MDB_val *k, int err)
{
    rec_log_bad(db, k->mv_data, k->mv_size, err);
    return err == STORE_EVERSION ? err : 0;
}

/* The callback of one store_each_* walk; only the one of its kind is set. */
typedef struct meta_walk {
    int (*exchange)(const store_exchange *, void *);
    int (*queue)(const store_queue *, void *);
    int (*binding)(const store_binding *, void *);
    int (*vhost)(const store_vhost *, void *);
    int (*user)(const store_user *, void *);
    int (*permission)(const store_permission *, void *);
    int (*topic_permission)(const store_topic_permission *, void *);
    int (*policy)(const store_policy *, void *);   /* either kind of policy */
    void *ctx;
} meta_walk;

/* Decodes one meta record of kind and hands it to the walk's callback. A
 * value must also hash to its own key, so a record moved or damaged in
 * place is caught rather than handed out under a wrong name. Returns the
 * callback's result, or a negative STORE_E* for a record that did not
 * decode (*called stays false). */
static int
meta_visit(const store *s, uint8_t kind, const MDB_val *k, const MDB_val *v,
           const meta_walk *w, bool *called)
{
    uint8_t want[REC_META_KEY_LEN];
    union {
        store_exchange x;
        store_queue q;
        store_binding b;
        store_vhost h;
        store_user u;
        store_permission p;
        store_topic_permission t;
        store_policy y;
    } u;
    int err;
    *called = false;
    if (k->mv_size != REC_META_KEY_LEN)
        return STORE_ECORRUPT;
    switch (kind) {
    case REC_KIND_EXCHANGE:
        err = rec_exchange_decode(v->mv_data, v->mv_size, &u.x);
        if (err == 0)
            rec_exchange_key(s->hkey, u.x.vhost, u.x.name, want);
        break;
    case REC_KIND_QUEUE:
        err = rec_queue_decode(v->mv_data, v->mv_size, &u.q);
        if (err == 0)
            rec_queue_key(s->hkey, u.q.vhost, u.q.name, want);
        break;
    case REC_KIND_BINDING:
        err = rec_binding_decode(v->mv_data, v->mv_size, &u.b);
        if (err == 0)
            rec_binding_key(s->hkey, &u.b, want);
        break;
    case REC_KIND_VHOST:
        err = rec_vhost_decode(v->mv_data, v->mv_size, &u.h);
        if (err == 0)
            rec_vhost_key(s->hkey, u.h.name, want);
        break;
    case REC_KIND_USER:
        err = rec_user_decode(v->mv_data, v->mv_size, &u.u);
        if (err == 0)
            rec_user_key(s->hkey, u.u.name, want);
        break;
    case REC_KIND_PERMISSION:
        err = rec_permission_decode(v->mv_data, v->mv_size, &u.p);
        if (err == 0)
            rec_permission_key(s->hkey, u.p.user, u.p.vhost, want);
        break;
    case REC_KIND_TOPIC_PERMISSION:
        err = rec_topic_permission_decode(v->mv_data, v->mv_size, &u.t);
        if (err == 0)
            rec_topic_permission_key(s->hkey, u.t.user, u.t.vhost, u.t.exchange, want);
        break;
    case REC_KIND_POLICY:
    case REC_KIND_OPERATOR_POLICY:
        err = rec_policy_decode(kind == REC_KIND_POLICY ? REC_POLICY : REC_OPERATOR_POLICY,
                                v->mv_data, v->mv_size, &u.y);
        if (err == 0)
            rec_policy_key(kind, s->hkey, u.y.vhost, u.y.name, want);
        break;
    default:
        return STORE_ECORRUPT;   /* no walk over other kinds */
    }
    if (err != 0)
        return err;
    if (memcmp(want, k->mv_data, sizeof want) != 0)
        return STORE_ECORRUPT;
    *called = true;
    switch (kind) {
    case REC_KIND_EXCHANGE:
        return w->exchange(&u.x, w->ctx);
    case REC_KIND_QUEUE:
        return w->queue(&u.q, w->ctx);
    case REC_KIND_BINDING:
        return w->binding(&u.b, w->ctx);
    case REC_KIND_VHOST:
        return w->vhost(&u.h, w->ctx);
    case REC_KIND_USER:
        return w->user(&u.u, w->ctx);
    case REC_KIND_PERMISSION:
        return w->permission(&u.p, w->ctx);
    case REC_KIND_POLICY:
    case REC_KIND_OPERATOR_POLICY:
        return w->policy(&u.y, w->ctx);
    default:
        return w->topic_permission(&u.t, w->ctx);
    }
}

static int
meta_each(store_reader *r, uint8_t kind, const meta_walk *w)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, r->s->dbi[REC_DB_META], &c);
    if (rc != 0)
        return store_err(rc);
    MDB_val k, v;
    int result = 0;
    for (rc = meta_step(c, kind, true, &k, &v); rc == 0; rc = meta_step(c, kind, false, &k, &v)) {
        bool called;
        result = meta_visit(r->s, kind, &k, &v, w, &called);
        if (!called)
            result = skip_bad("meta", &k, result);
        if (result != 0)
            break;
    }
    mdb_cursor_close(c);
    if (result != 0)
        return result;
    return rc == MDB_NOTFOUND ? 0 : store_err(rc);
}

int
store_each_exchange(store_reader *r, int (*fn)(const store_exchange *, void *), void *ctx)
{
    meta_walk w = { .exchange = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_EXCHANGE, &w);
}

int
store_each_queue(store_reader *r, int (*fn)(const store_queue *, void *), void *ctx)
{
    meta_walk w = { .queue = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_QUEUE, &w);
}

int
store_each_binding(store_reader *r, int (*fn)(const store_binding *, void *), void *ctx)
{
    meta_walk w = { .binding = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_BINDING, &w);
}

int
store_each_vhost(store_reader *r, int (*fn)(const store_vhost *, void *), void *ctx)
{
    meta_walk w = { .vhost = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_VHOST, &w);
}

int
store_each_user(store_reader *r, int (*fn)(const store_user *, void *), void *ctx)
{
    meta_walk w = { .user = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_USER, &w);
}

int
store_each_permission(store_reader *r, int (*fn)(const store_permission *, void *), void *ctx)
{
    meta_walk w = { .permission = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_PERMISSION, &w);
}

int
store_each_topic_permission(store_reader *r, int (*fn)(const store_topic_permission *, void *),
                            void *ctx)
{
    meta_walk w = { .topic_permission = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_TOPIC_PERMISSION, &w);
}

int
store_each_policy(store_reader *r, int (*fn)(const store_policy *, void *), void *ctx)
{
    meta_walk w = { .policy = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_POLICY, &w);
}

int
store_each_operator_policy(store_reader *r, int (*fn)(const store_policy *, void *), void *ctx)
{
    meta_walk w = { .policy = fn, .ctx = ctx };
    return meta_each(r, REC_KIND_OPERATOR_POLICY, &w);
}

int
store_each_qentry(store_reader *r, uint64_t queue_id, uint64_t from_seq, size_t max,
                  int (*fn)(const store_qentry *, void *), void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, r->s->dbi[REC_DB_QIDX], &c);
    if (rc != 0)
        return store_err(rc);
    uint8_t start[REC_QE_KEY_LEN];
    rec_qentry_key(queue_id, from_seq, start);
    MDB_val k = val(start, sizeof start), v;
    size_t n = 0;
    int result = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size < 8 || rec_get_u64(kp) != queue_id) {
            rc = MDB_NOTFOUND;
            break;
        }
        if (max != 0 && n == max)
            break;
        store_qentry e;
        int err = k.mv_size == REC_QE_KEY_LEN ? rec_qentry_decode(v.mv_data, v.mv_size, &e)
                                              : STORE_ECORRUPT;
        if (err != 0) {
            result = skip_bad("qidx", &k, err);
        } else {
            e.queue_id = queue_id;
            e.seq = rec_get_u64(kp + 8);
            n++;
            result = fn(&e, ctx);
        }
        if (result != 0)
            break;
    }
    mdb_cursor_close(c);
    if (result != 0)
        return result;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(rc);
}

int
store_get_message(store_reader *r, uint64_t id, store_message *out)
{
    uint8_t k[REC_MSG_KEY_LEN];
    rec_put_u64(k, id);
    MDB_val key = val(k, sizeof k), v;
    int rc = mdb_get(r->txn, r->s->dbi[REC_DB_MSGS], &key, &v);
    if (rc != 0)
        return store_err(rc);
    int err = rec_message_decode(v.mv_data, v.mv_size, out);
    if (err != 0) {
        rec_log_bad("msgs", k, sizeof k, err);
        return err;
    }
    out->id = id;
    return 0;
}

/* Decodes one retained or session record; like a meta record, it must
 * hash to its own key, so one moved or damaged in place is caught rather
 * than handed out under a wrong name. */
static int
kv_decode(const store *s, enum rec_type type, const MDB_val *k, const MDB_val *v,
          store_kv *out)
{
    if (k->mv_size != REC_KV_KEY_LEN)
        return STORE_ECORRUPT;
    int err = rec_kv_decode(type, v->mv_data, v->mv_size, out);
    if (err != 0)
        return err;
    uint8_t want[REC_KV_KEY_LEN];
    rec_kv_key(s->hkey, out->vhost, out->name, want);
    return memcmp(want, k->mv_data, sizeof want) == 0 ? 0 : STORE_ECORRUPT;
}

static int
kv_each(store_reader *r, enum rec_db db, enum rec_type type,
        int (*fn)(const store_kv *, void *), void *ctx)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, r->s->dbi[db], &c);
    if (rc != 0)
        return store_err(rc);
    MDB_val k, v;
    int result = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        store_kv kv;
        int err = kv_decode(r->s, type, &k, &v, &kv);
        result = err != 0 ? skip_bad(db_names[db], &k, err) : fn(&kv, ctx);
        if (result != 0)
            break;
    }
    mdb_cursor_close(c);
    if (result != 0)
        return result;
    return rc == MDB_NOTFOUND ? 0 : store_err(rc);
}

static int
kv_get(store_reader *r, enum rec_db db, enum rec_type type, store_bytes vhost,
       store_bytes name, store_kv *out)
{
    uint8_t kb[REC_KV_KEY_LEN];
    rec_kv_key(r->s->hkey, vhost, name, kb);
    MDB_val k = val(kb, sizeof kb), v;
    int rc = mdb_get(r->txn, r->s->dbi[db], &k, &v);
    if (rc != 0)
        return store_err(rc);
    int err = kv_decode(r->s, type, &k, &v, out);
    if (err != 0) {
        rec_log_bad(db_names[db], kb, sizeof kb, err);
        return err;
    }
    return 0;
}

int
store_each_retained(store_reader *r, int (*fn)(const store_kv *, void *), void *ctx)
{
    return kv_each(r, REC_DB_RETAINED, REC_RETAINED, fn, ctx);
}

int
store_each_session(store_reader *r, int (*fn)(const store_kv *, void *), void *ctx)
{
    return kv_each(r, REC_DB_SESSIONS, REC_SESSION, fn, ctx);
}

int
store_get_retained(store_reader *r, store_bytes vhost, store_bytes topic, store_kv *out)
{
    return kv_get(r, REC_DB_RETAINED, REC_RETAINED, vhost, topic, out);
}

int
store_get_session(store_reader *r, store_bytes vhost, store_bytes client_id, store_kv *out)
{
    return kv_get(r, REC_DB_SESSIONS, REC_SESSION, vhost, client_id, out);
}

/* ---- start-up ------------------------------------------------------------------ */

typedef struct u64vec {
    uint64_t *v;                  /* owned */
    size_t n, cap;
} u64vec;

static int
vec_push(u64vec *a, uint64_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        uint64_t *v = realloc(a->v, cap * sizeof *v);
        if (v == NULL)
            return ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* LSD radix sort, 16 bits a pass: a million ids in a few milliseconds,
 * where qsort's comparisons would dominate the recovery. */
static int
sort_u64(uint64_t *a, size_t n)
{
    if (n < 2)
        return 0;
    uint64_t *tmp = malloc(n * sizeof *tmp);
    size_t *count = malloc(65536 * sizeof *count);
    if (tmp == NULL || count == NULL) {
        free(tmp);
        free(count);
        return ENOMEM;
    }
    uint64_t *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xffff]++;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xffff]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    /* Four passes: the result is back in a. */
    free(tmp);
    free(count);
    return 0;
}

static bool
bsearch_u64(const uint64_t *a, size_t n, uint64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else if (a[mid] > x)
            hi = mid;
        else
            return true;
    }
    return false;
}

typedef struct recovery {
    const uint64_t *live;         /* borrowed, sorted */
    size_t nlive;
    u64vec ids;                   /* msg id of every surviving entry */
    u64vec missing;               /* referred to but not stored */
    u64vec multi;                 /* pairs: id, count >= 2 */
} recovery;

/* Pass over qidx: drops entries of dead queues, transient and broken
 * ones; collects the message ids of the rest. */
static int
recover_qidx(store *s, MDB_txn *t, recovery *rv)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi[REC_DB_QIDX], &c);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    uint64_t lastq = 0;
    bool known = false, alive = false;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        bool drop;
        if (k.mv_size != REC_QE_KEY_LEN) {
            rec_log_bad("qidx", k.mv_data, k.mv_size, STORE_ECORRUPT);
            drop = true;
        } else {
            uint64_t q = rec_get_u64(k.mv_data);
            if (!known || q != lastq) {   /* entries come grouped by queue */
                alive = bsearch_u64(rv->live, rv->nlive, q);
                lastq = q;
                known = true;
            }
            drop = !alive;
            if (alive) {
                store_qentry e;
                int err = rec_qentry_decode(v.mv_data, v.mv_size, &e);
                if (err == STORE_EVERSION) {
                    rec_log_bad("qidx", k.mv_data, k.mv_size, err);
                    mdb_cursor_close(c);
                    return STORE_EVERSION;
                }
                if (err != 0)
                    rec_log_bad("qidx", k.mv_data, k.mv_size, err);
                drop = err != 0 || (e.flags & STORE_QE_TRANSIENT);
                if (!drop && vec_push(&rv->ids, e.msg_id) != 0) {
                    rc = ENOMEM;
                    break;
                }
            }
        }
        if (drop && (rc = mdb_cursor_del(c, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Pass over msgs alongside the sorted ids: a message no entry names is
 * deleted, one named twice or more gets a count, an id with no message
 * is noted as missing. */
static int
recover_msgs(store *s, MDB_txn *t, recovery *rv)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi[REC_DB_MSGS], &c);
    if (rc != 0)
        return rc;
    const uint64_t *ids = rv->ids.v;
    size_t n = rv->ids.n, j = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != REC_MSG_KEY_LEN) {
            rec_log_bad("msgs", k.mv_data, k.mv_size, STORE_ECORRUPT);
            if ((rc = mdb_cursor_del(c, 0)) != 0)
                break;
            continue;
        }
        uint64_t id = rec_get_u64(k.mv_data);
        while (j < n && ids[j] < id) {
            if ((j == 0 || ids[j - 1] != ids[j]) && vec_push(&rv->missing, ids[j]) != 0)
                goto nomem;
            j++;
        }
        size_t count = 0;
        for (; j < n && ids[j] == id; j++)
            count++;
        if (count == 0) {
            if ((rc = mdb_cursor_del(c, 0)) != 0)
                break;
        } else if (count >= 2) {
            if (vec_push(&rv->multi, id) != 0 || vec_push(&rv->multi, count) != 0)
                goto nomem;
        }
    }
    if (rc == MDB_NOTFOUND) {
        rc = 0;
        for (; j < n; j++)
            if ((j == 0 || ids[j - 1] != ids[j]) && vec_push(&rv->missing, ids[j]) != 0)
                goto nomem;
    }
    mdb_cursor_close(c);
    return rc;
nomem:
    mdb_cursor_close(c);
    return ENOMEM;
}

/* Rare: entries whose message is gone (a damaged file). They cannot be
 * delivered, so they go. */
static int
recover_dangling(store *s, MDB_txn *t, recovery *rv)
{
    if (rv->missing.n == 0)
        return 0;
    fprintf(stderr, "coney: storage: %zu messages named by queue entries are missing; "
            "dropping those entries\n", rv->missing.n);
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi[REC_DB_QIDX], &c);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        store_qentry e;
        if (rec_qentry_decode(v.mv_data, v.mv_size, &e) == 0
            && bsearch_u64(rv->missing.v, rv->missing.n, e.msg_id)
            && (rc = mdb_cursor_del(c, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_recover(store *s, const uint64_t *live, size_t nlive)
{
    uint64_t *sorted = malloc((nlive ? nlive : 1) * sizeof *sorted);
    if (sorted == NULL)
        return STORE_ENOMEM;
    if (nlive > 0)
        memcpy(sorted, live, nlive * sizeof *sorted);
    if (sort_u64(sorted, nlive) != 0) {
        free(sorted);
        return STORE_ENOMEM;
    }
    recovery rv = { .live = sorted, .nlive = nlive };
    int rc = 0;
    /* The write lock: no reader may be live if the map must grow. */
    pthread_rwlock_wrlock(&s->maplock);
    for (int tries = 0; tries <= MAX_GROWS; tries++) {
        rv.ids.n = rv.missing.n = rv.multi.n = 0;
        MDB_txn *t;
        rc = mdb_txn_begin(s->env, NULL, 0, &t);
        if (rc != 0)
            break;
        rc = recover_qidx(s, t, &rv);
        if (rc == 0)
            rc = sort_u64(rv.ids.v, rv.ids.n);
        if (rc == 0)
            rc = recover_msgs(s, t, &rv);
        if (rc == 0)
            rc = recover_dangling(s, t, &rv);
        if (rc == 0)
            rc = mdb_txn_commit(t);
        else
            mdb_txn_abort(t);
        if (rc != MDB_MAP_FULL || map_grow_locked(s) != 0)
            break;
    }
    pthread_rwlock_unlock(&s->maplock);

    int result = 0;
    if (rc == STORE_EVERSION) {
        result = rc;
    } else if (rc != 0) {
        fprintf(stderr, "coney: storage: recovery failed: %s\n", mdb_strerror(rc));
        result = store_err(rc);
    } else {
        /* Only the storage thread touches refs after this; no write can
         * have been applied yet (the caller's duty), so this is safe. */
        refs_clear(&s->refs);
        for (size_t i = 0; i + 1 < rv.multi.n && result == 0; i += 2)
            if (refs_set(&s->refs, rv.multi.v[i], (uint32_t)rv.multi.v[i + 1]) != 0)
                result = STORE_ENOMEM;
        refs_keep(&s->refs);
    }
    free(sorted);
    free(rv.ids.v);
    free(rv.missing.v);
    free(rv.multi.v);
    return result;
}

/* ---- numbers ---------------------------------------------------------------------- */

void
store_get_stats(store *s, store_stats *out)
{
    memset(out, 0, sizeof *out);
    store_reader *r;
    if (store_read_begin(s, &r) == 0) {
        MDB_stat st;
        if (mdb_stat(r->txn, s->dbi[REC_DB_MSGS], &st) == 0)
            out->messages = st.ms_entries;
        if (mdb_stat(r->txn, s->dbi[REC_DB_QIDX], &st) == 0)
            out->qentries = st.ms_entries;
        store_read_end(r);
    }
    out->batches = atomic_load(&s->batches);
    out->commits = atomic_load(&s->commits);
    pthread_mutex_lock(&s->mu);
    out->cancelled = s->cancelled;
    out->dropped = s->dropped;
    pthread_mutex_unlock(&s->mu);
    out->map_size = atomic_load(&s->map_size);
}
