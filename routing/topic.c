/*
 * Topic exchanges: a trie of words.
 *
 * A pattern "a.*.#" is a path root -a-> n1 -*-> n2 -#-> n3 and its binding
 * hangs on n3; patterns sharing a prefix share nodes. Edges live in one
 * hash table keyed by (parent node, word), so following a word costs one
 * lookup however many siblings it has; '*' and '#' edges are there too,
 * under the words "*" and "#" (a literal word never is either), and two
 * bits on the node say whether it has them, so a walk looks for them only
 * where they exist. A node is then only its links, its bindings and its
 * word, which matters when every MQTT client subscribes to a topic of
 * its own.
 *
 * Matching a key of n words explores states (node, i): "node's path has
 * matched the first i words". From (N, i) the walk follows N's literal edge
 * for word i and its '*' edge to (child, i + 1), and N's '#' edge to
 * (child, i) since '#' may match no words. A '#' node H may also swallow
 * word i and stay: (H, i) -> (H, i + 1). Bindings on N match when (N, n)
 * is reached.
 *
 * The only state reachable by two routes is a '#' node's (entered from its
 * parent, or by swallowing a word itself); every other node has one parent
 * and one way in. So the walk records, per '#' node, the lowest i it has
 * handled: entering at i handles i..n, and a later entry at j only needs
 * the j..lo-1 not done yet. Every state is then visited at most once and a
 * publish costs O(states reached), bounded by trie nodes times (n + 1),
 * even for "#.#.#.#" against a long key; each binding is emitted at most
 * once. The walk uses an explicit stack, so a deep pattern cannot overflow
 * the C stack.
 *
 * Words split on '.', and empty words are words ("a..b" is three words,
 * "a." two), but the empty string has no words at all, as RabbitMQ splits
 * it: the empty key matches "#" and the empty pattern, and not "*".
 */
#include <stdlib.h>
#include <string.h>

#include "routing/route_int.h"

#define ROUTE_TOPIC_EDGES_MIN 16
#define ROUTE_TOPIC_STACK_WORDS 64
#define ROUTE_TOPIC_STACK_STATES 64
#define ROUTE_TOPIC_STACK_SEEN 32   /* a power of two */
#define ROUTE_TOPIC_WORD_MAX 65535  /* as an MQTT topic; an AMQP key is shorter still */

enum route_topic_kind { ROUTE_TOPIC_WORD, ROUTE_TOPIC_STAR, ROUTE_TOPIC_HASH };

/* A trie node. Owned by the index; lives while a binding hangs on it or on
 * a descendant (route_topic_prune frees it when both go). */
enum { ROUTE_TOPIC_HAS_STAR = 1, ROUTE_TOPIC_HAS_HASH = 2 };

typedef struct route_topic_node {
    struct route_topic_node *parent;
    struct route_topic_node *edge_next;     /* chain in the edge hash */
    route_rec *binds;                       /* patterns ending here */
    uint32_t edge_hash;                     /* low bits */
    uint32_t nchildren;                     /* wildcard ones included */
    uint16_t len;                           /* a word of a pattern is at most
                                             * ROUTE_TOPIC_WORD_MAX bytes */
    uint8_t kind;                           /* enum route_topic_kind */
    uint8_t wild;                           /* ROUTE_TOPIC_HAS_*: its wildcard children */
    char word[];                            /* the word ("*", "#" for wildcards), owned */
} route_topic_node;

typedef struct route_topic {
    route_topic_node *root;
    route_topic_node **edges;               /* every edge, mask + 1 */
    size_t mask;
    size_t nedges;
    uint64_t seed;
    uint64_t star_h, hash_h;                /* the words "*" and "#", hashed */
} route_topic;

/* A word of a key or pattern, borrowed from it. */
typedef struct route_topic_word {
    const char *p;
    uint32_t len;
    uint64_t h;                             /* hash, filled for keys */
} route_topic_word;

/* ---- splitting ----------------------------------------------------- */

static uint32_t
route_topic_nwords(amqp_bytes s)
{
    if (s.len == 0)
        return 0;
    uint32_t n = 1;
    for (uint32_t i = 0; i < s.len; i++)
        n += s.data[i] == '.';
    return n;
}

/* Splits s into *out: buf if its cap suffices, else a malloc'd array the
 * caller frees when *out != buf. Returns false only if malloc fails. */
static bool
route_topic_split(amqp_bytes s, route_topic_word *buf, size_t cap,
                  route_topic_word **out, uint32_t *n)
{
    uint32_t nw = route_topic_nwords(s);
    route_topic_word *w = buf;
    if (nw > cap) {
        w = malloc((size_t)nw * sizeof *w);
        if (!w)
            return false;
    }
    const char *p = s.data, *end = s.data + s.len;
    for (uint32_t i = 0; i < nw; i++) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *wend = dot ? dot : end;
        w[i] = (route_topic_word){ p, (uint32_t)(wend - p), 0 };
        p = wend + 1;
    }
    *out = w;
    *n = nw;
    return true;
}

static bool
route_topic_word_is(const char *p, uint32_t len, char c)
{
    return len == 1 && p[0] == c;
}

static bool
route_topic_word_eq(const route_topic_word *a, const route_topic_word *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* ---- the one-pattern reference ---------------------------------------- */

/*
 * Independent of the trie on purpose, so the tests can check one against
 * the other. A table over (pattern word i, key word j) filled from the
 * ends, kept as two rows: row[j] says whether pattern words i.. match key
 * words j...
 */
bool
route_topic_match(amqp_bytes pattern, amqp_bytes key)
{
    route_topic_word pbuf[ROUTE_TOPIC_STACK_WORDS], kbuf[ROUTE_TOPIC_STACK_WORDS];
    bool rbuf[2][ROUTE_TOPIC_STACK_WORDS + 1];
    route_topic_word *pw = NULL, *kw = NULL;
    bool *rows = NULL, *next = rbuf[0], *cur = rbuf[1];
    uint32_t np, nk;
    bool result = false;

    if (!route_topic_split(pattern, pbuf, ROUTE_TOPIC_STACK_WORDS, &pw, &np))
        return false;
    if (!route_topic_split(key, kbuf, ROUTE_TOPIC_STACK_WORDS, &kw, &nk))
        goto out;
    if (nk > ROUTE_TOPIC_STACK_WORDS) {
        rows = malloc(2 * ((size_t)nk + 1) * sizeof *rows);
        if (!rows)
            goto out;
        next = rows;
        cur = rows + nk + 1;
    }

    for (uint32_t j = 0; j <= nk; j++)
        next[j] = j == nk;
    for (uint32_t i = np; i-- > 0;) {
        const route_topic_word *p = &pw[i];
        bool hash = route_topic_word_is(p->p, p->len, '#');
        bool star = route_topic_word_is(p->p, p->len, '*');
        for (uint32_t j = nk + 1; j-- > 0;) {
            if (hash)
                cur[j] = next[j] || (j < nk && cur[j + 1]);
            else
                cur[j] = j < nk && next[j + 1] &&
                         (star || route_topic_word_eq(p, &kw[j]));
        }
        bool *t = next;
        next = cur;
        cur = t;
    }
    result = next[0];
out:
    free(rows);
    if (pw != pbuf)
        free(pw);
    if (kw && kw != kbuf)
        free(kw);
    return result;
}

/* ---- the trie --------------------------------------------------------- */

static uint64_t
route_topic_edge_hash(const route_topic_node *parent, uint64_t word_hash)
{
    return route_hash_mix(word_hash ^ ((uint64_t)(uintptr_t)parent *
                                       0x9e3779b97f4a7c15ULL));
}

/* The child of parent for word w of the given kind: a literal key word
 * "*" must not follow the '*' edge, which every word follows anyway. */
static route_topic_node *
route_topic_edge_find(const route_topic *t, const route_topic_node *parent,
                      const char *w, uint32_t len, uint64_t word_hash, uint8_t kind)
{
    uint32_t h = (uint32_t)route_topic_edge_hash(parent, word_hash);
    for (route_topic_node *c = t->edges[h & t->mask]; c; c = c->edge_next)
        if (c->edge_hash == h && c->parent == parent && c->len == len && c->kind == kind &&
            (len == 0 || memcmp(c->word, w, len) == 0))
            return c;
    return NULL;
}

/* Its '*' (kind ROUTE_TOPIC_STAR) or '#' child, or NULL. */
static route_topic_node *
route_topic_wild(const route_topic *t, const route_topic_node *n, uint8_t kind)
{
    bool star = kind == ROUTE_TOPIC_STAR;
    if (!(n->wild & (star ? ROUTE_TOPIC_HAS_STAR : ROUTE_TOPIC_HAS_HASH)))
        return NULL;
    return route_topic_edge_find(t, n, star ? "*" : "#", 1, star ? t->star_h : t->hash_h, kind);
}

/* Keeps edge chains short; a failed grow leaves a correct, fuller table. */
static void
route_topic_edges_reserve(route_topic *t)
{
    size_t nb = t->mask + 1;
    if (t->nedges < nb || nb > ((size_t)UINT32_MAX >> 1) + 1)
        return;
    route_topic_node **nbk = calloc(nb * 2, sizeof *nbk);
    if (!nbk)
        return;
    size_t mask = nb * 2 - 1;
    for (size_t i = 0; i < nb; i++) {
        route_topic_node *c = t->edges[i];
        while (c) {
            route_topic_node *next = c->edge_next;
            c->edge_next = nbk[c->edge_hash & mask];
            nbk[c->edge_hash & mask] = c;
            c = next;
        }
    }
    free(t->edges);
    t->edges = nbk;
    t->mask = mask;
}

static route_topic_node *
route_topic_node_new(route_topic_node *parent, uint8_t kind, const char *w,
                     uint32_t len)
{
    /* the word from where it starts, not from the struct's padded end */
    size_t size = offsetof(route_topic_node, word) + len;
    route_topic_node *c = calloc(1, size > sizeof *c ? size : sizeof *c);
    if (!c)
        return NULL;
    c->parent = parent;
    c->kind = kind;
    c->len = (uint16_t)len;
    if (len)
        memcpy(c->word, w, len);
    return c;
}

/* The child of parent for pattern word w, created if missing; NULL only if
 * that allocation fails. */
static route_topic_node *
route_topic_child(route_topic *t, route_topic_node *parent, const char *w,
                  uint32_t len)
{
    uint8_t kind = ROUTE_TOPIC_WORD;
    if (route_topic_word_is(w, len, '*'))
        kind = ROUTE_TOPIC_STAR;
    else if (route_topic_word_is(w, len, '#'))
        kind = ROUTE_TOPIC_HASH;

    uint64_t wh = kind == ROUTE_TOPIC_STAR ? t->star_h
                : kind == ROUTE_TOPIC_HASH ? t->hash_h : route_hash_bytes(t->seed, w, len);
    route_topic_node *c = kind == ROUTE_TOPIC_WORD ? route_topic_edge_find(t, parent, w, len, wh, kind)
                                                   : route_topic_wild(t, parent, kind);
    if (c)
        return c;
    c = route_topic_node_new(parent, kind, w, len);
    if (!c)
        return NULL;
    c->edge_hash = (uint32_t)route_topic_edge_hash(parent, wh);
    route_topic_node **bucket = &t->edges[c->edge_hash & t->mask];
    c->edge_next = *bucket;
    *bucket = c;
    t->nedges++;
    parent->nchildren++;
    if (kind == ROUTE_TOPIC_STAR)
        parent->wild |= ROUTE_TOPIC_HAS_STAR;
    else if (kind == ROUTE_TOPIC_HASH)
        parent->wild |= ROUTE_TOPIC_HAS_HASH;
    route_topic_edges_reserve(t);
    return c;
}

/* Frees n and its ancestors for as long as they hold nothing, so the trie
 * never keeps paths no binding uses. The root stays. */
static void
route_topic_prune(route_topic *t, route_topic_node *n)
{
    while (n->parent && !n->binds && n->nchildren == 0) {
        route_topic_node *parent = n->parent;
        if (n->kind == ROUTE_TOPIC_STAR)
            parent->wild &= (uint8_t)~ROUTE_TOPIC_HAS_STAR;
        else if (n->kind == ROUTE_TOPIC_HASH)
            parent->wild &= (uint8_t)~ROUTE_TOPIC_HAS_HASH;
        route_topic_node **pp = &t->edges[n->edge_hash & t->mask];
        while (*pp != n)
            pp = &(*pp)->edge_next;
        *pp = n->edge_next;
        t->nedges--;
        parent->nchildren--;
        free(n);
        n = parent;
    }
}

static int
route_topic_init(route_table *rt)
{
    route_topic *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->edges = calloc(ROUTE_TOPIC_EDGES_MIN, sizeof *t->edges);
    t->root = route_topic_node_new(NULL, ROUTE_TOPIC_WORD, NULL, 0);
    if (!t->edges || !t->root) {
        free(t->edges);
        free(t->root);
        free(t);
        return -1;
    }
    t->mask = ROUTE_TOPIC_EDGES_MIN - 1;
    t->seed = route_hash_mix((uint64_t)(uintptr_t)t);
    t->star_h = route_hash_bytes(t->seed, "*", 1);
    t->hash_h = route_hash_bytes(t->seed, "#", 1);
    rt->index = t;
    return 0;
}

static void
route_topic_fini(route_table *rt)
{
    route_topic *t = rt->index;
    /* route_table_free removed every binding first, and each removal
     * pruned its path, so only the root is left. */
    free(t->root);
    free(t->edges);
    free(t);
    rt->index = NULL;
}

static int
route_topic_add(route_table *rt, route_rec *b)
{
    route_topic *t = rt->index;
    route_topic_node *n = t->root;
    amqp_bytes pat = route_rec_key(b);
    if (pat.len) {
        const char *p = pat.data, *end = pat.data + pat.len;
        for (;;) {
            const char *dot = memchr(p, '.', (size_t)(end - p));
            const char *wend = dot ? dot : end;
            route_topic_node *c = wend - p > ROUTE_TOPIC_WORD_MAX
                                  ? NULL : route_topic_child(t, n, p, (uint32_t)(wend - p));
            if (!c) {
                route_topic_prune(t, n);
                return -1;
            }
            n = c;
            if (!dot)
                break;
            p = dot + 1;
        }
    }
    route_grp_push(&n->binds, b);
    return 0;
}

/* The node b's pattern ends at: the path its words spell, which exists
 * while b does. */
static route_topic_node *
route_topic_node_of(const route_topic *t, const route_rec *b)
{
    route_topic_node *n = t->root;
    amqp_bytes pat = route_rec_key(b);
    if (pat.len == 0)
        return n;
    const char *p = pat.data, *end = pat.data + pat.len;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        uint32_t len = (uint32_t)((dot ? dot : end) - p);
        if (route_topic_word_is(p, len, '*'))
            n = route_topic_wild(t, n, ROUTE_TOPIC_STAR);
        else if (route_topic_word_is(p, len, '#'))
            n = route_topic_wild(t, n, ROUTE_TOPIC_HASH);
        else
            n = route_topic_edge_find(t, n, p, len, route_hash_bytes(t->seed, p, len),
                                      ROUTE_TOPIC_WORD);
        if (!dot)
            return n;
        p = dot + 1;
    }
}

static void
route_topic_remove(route_table *rt, route_rec *b)
{
    route_topic_node *n = route_topic_node_of(rt->index, b);
    route_grp_unlink(&n->binds, b);
    route_topic_prune(rt->index, n);
}

/* ---- matching --------------------------------------------------------- */

typedef struct route_topic_state {
    const route_topic_node *node;
    uint32_t i;
} route_topic_state;

typedef struct route_topic_seen {
    const route_topic_node *node;          /* a '#' node, NULL if free */
    uint32_t lo;                            /* lowest i handled there */
} route_topic_seen;

/* Scratch for one match; arrays start on the C stack and move to the heap
 * only for large keys or tries, freed before route_topic_match_trie
 * returns. */
typedef struct route_topic_walk {
    route_topic_state *stack;
    size_t nstack, capstack;
    route_topic_seen *seen;
    size_t nseen, maskseen;
    route_topic_state *stack0;
    route_topic_seen *seen0;
} route_topic_walk;

static bool
route_topic_push(route_topic_walk *w, const route_topic_node *node, uint32_t i)
{
    if (w->nstack == w->capstack) {
        if (w->capstack > SIZE_MAX / 2 / sizeof *w->stack)
            return false;
        size_t cap = w->capstack * 2;
        route_topic_state *s;
        if (w->stack == w->stack0) {
            s = malloc(cap * sizeof *s);
            if (s)
                memcpy(s, w->stack, w->nstack * sizeof *s);
        } else {
            s = realloc(w->stack, cap * sizeof *s);
        }
        if (!s)
            return false;
        w->stack = s;
        w->capstack = cap;
    }
    w->stack[w->nstack++] = (route_topic_state){ node, i };
    return true;
}

static route_topic_seen *
route_topic_seen_slot(route_topic_seen *tab, size_t mask,
                      const route_topic_node *node)
{
    size_t i = route_hash_mix((uint64_t)(uintptr_t)node) & mask;
    while (tab[i].node && tab[i].node != node)
        i = (i + 1) & mask;
    return &tab[i];
}

/* The record for '#' node, added with lo = nwords + 1 (nothing handled) if
 * new. NULL if the table could not grow. */
static route_topic_seen *
route_topic_seen_get(route_topic_walk *w, const route_topic_node *node,
                     uint32_t nwords)
{
    route_topic_seen *s = route_topic_seen_slot(w->seen, w->maskseen, node);
    if (s->node)
        return s;
    if (w->nseen + 1 > (w->maskseen + 1) / 2) {
        size_t cap = (w->maskseen + 1) * 2;
        route_topic_seen *tab = calloc(cap, sizeof *tab);
        if (!tab)
            return NULL;
        for (size_t i = 0; i <= w->maskseen; i++)
            if (w->seen[i].node)
                *route_topic_seen_slot(tab, cap - 1, w->seen[i].node) = w->seen[i];
        if (w->seen != w->seen0)
            free(w->seen);
        w->seen = tab;
        w->maskseen = cap - 1;
        s = route_topic_seen_slot(tab, cap - 1, node);
    }
    s->node = node;
    s->lo = nwords + 1;
    w->nseen++;
    return s;
}

/* Pushes the states reachable from (n, i) and emits n's bindings if i is
 * the end of the key. False if the stack could not grow. */
static bool
route_topic_step(const route_topic *t, route_topic_walk *w,
                 const route_topic_node *n, uint32_t i,
                 const route_topic_word *kw, uint32_t nk,
                 route_emit_fn emit, void *ctx)
{
    if (i == nk)
        for (const route_rec *b = n->binds; b; b = b->grp_next)
            emit(b->dest, ctx);
    const route_topic_node *hash = route_topic_wild(t, n, ROUTE_TOPIC_HASH);
    if (hash && !route_topic_push(w, hash, i))
        return false;
    if (i == nk)
        return true;
    unsigned nwild = !!(n->wild & ROUTE_TOPIC_HAS_STAR) + !!(n->wild & ROUTE_TOPIC_HAS_HASH);
    if (n->nchildren > nwild) {
        const route_topic_node *c =
            route_topic_edge_find(t, n, kw[i].p, kw[i].len, kw[i].h, ROUTE_TOPIC_WORD);
        if (c && !route_topic_push(w, c, i + 1))
            return false;
    }
    const route_topic_node *star = route_topic_wild(t, n, ROUTE_TOPIC_STAR);
    if (star && !route_topic_push(w, star, i + 1))
        return false;
    return true;
}

/* If scratch memory runs out mid-walk the publish reaches the
 * destinations found so far; there is no error to report from here, and
 * that takes a key of thousands of words or a trie of millions of '#'
 * nodes at once. */
static void
route_topic_match_trie(const route_table *rt, amqp_bytes key,
                       const amqp_table *headers, route_emit_fn emit, void *ctx)
{
    const route_topic *t = rt->index;
    route_topic_word kbuf[ROUTE_TOPIC_STACK_WORDS];
    route_topic_state sbuf[ROUTE_TOPIC_STACK_STATES];
    route_topic_seen hbuf[ROUTE_TOPIC_STACK_SEEN];
    route_topic_word *kw;
    uint32_t nk;

    if (!route_topic_split(key, kbuf, ROUTE_TOPIC_STACK_WORDS, &kw, &nk))
        return;
    for (uint32_t i = 0; i < nk; i++)
        kw[i].h = route_hash_bytes(t->seed, kw[i].p, kw[i].len);

    memset(hbuf, 0, sizeof hbuf);
    route_topic_walk w = {
        .stack = sbuf, .capstack = ROUTE_TOPIC_STACK_STATES, .stack0 = sbuf,
        .seen = hbuf, .maskseen = ROUTE_TOPIC_STACK_SEEN - 1, .seen0 = hbuf,
    };
    bool ok = route_topic_push(&w, t->root, 0);
    while (ok && w.nstack) {
        route_topic_state st = w.stack[--w.nstack];
        if (st.node->kind != ROUTE_TOPIC_HASH) {
            ok = route_topic_step(t, &w, st.node, st.i, kw, nk, emit, ctx);
            continue;
        }
        route_topic_seen *s = route_topic_seen_get(&w, st.node, nk);
        if (!s)
            break;
        if (st.i >= s->lo)
            continue;
        uint32_t hi = s->lo;
        s->lo = st.i;
        for (uint32_t j = st.i; ok && j < hi; j++)
            ok = route_topic_step(t, &w, st.node, j, kw, nk, emit, ctx);
    }

    if (w.stack != sbuf)
        free(w.stack);
    if (w.seen != hbuf)
        free(w.seen);
    if (kw != kbuf)
        free(kw);
}

const route_ops route_topic_ops = {
    .init = route_topic_init,
    .fini = route_topic_fini,
    .add = route_topic_add,
    .remove = route_topic_remove,
    .match = route_topic_match_trie,
};
