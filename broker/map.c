#include "broker/map.h"

#include <stdlib.h>
#include <string.h>

uint32_t
map_hash(const char *key, uint32_t len)
{
    /* FNV-1a: names are short, so a simple hash is as fast as any. */
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    return h;
}

static map_entry **
map_slot(const map *m, const char *key, uint32_t len, uint32_t h)
{
    map_entry **p = &m->buckets[h & (m->nbuckets - 1)];
    while (*p && !((*p)->hash == h && (*p)->len == len &&
                   memcmp((*p)->key, key, len) == 0))
        p = &(*p)->next;
    return p;
}

void *
map_get(const map *m, const char *key, uint32_t len)
{
    if (m->count == 0)
        return NULL;
    map_entry *e = *map_slot(m, key, len, map_hash(key, len));
    return e ? e->value : NULL;
}

static void
map_grow(map *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    map_entry **b = calloc(n, sizeof *b);
    if (!b)
        abort();
    for (size_t i = 0; i < m->nbuckets; i++) {
        map_entry *e = m->buckets[i];
        while (e) {
            map_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *
map_put(map *m, const char *key, uint32_t len, void *value)
{
    if (m->count >= m->nbuckets)
        map_grow(m);
    uint32_t h = map_hash(key, len);
    map_entry **p = map_slot(m, key, len, h);
    if (*p) {
        void *old = (*p)->value;
        (*p)->key = key;           /* the new value owns the key now */
        (*p)->value = value;
        return old;
    }
    map_entry *e = malloc(sizeof *e);
    if (!e)
        abort();
    *e = (map_entry){ key, len, h, value, NULL };
    *p = e;
    m->count++;
    return NULL;
}

void *
map_del(map *m, const char *key, uint32_t len)
{
    if (m->count == 0)
        return NULL;
    map_entry **p = map_slot(m, key, len, map_hash(key, len));
    map_entry *e = *p;
    if (!e)
        return NULL;
    void *v = e->value;
    *p = e->next;
    free(e);
    m->count--;
    return v;
}

void
map_free(map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        map_entry *e = m->buckets[i];
        while (e) {
            map_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

static void
map_seek(const map *m, map_iter *it, size_t bucket)
{
    for (; bucket < m->nbuckets; bucket++) {
        if (m->buckets[bucket]) {
            it->bucket = bucket;
            it->e = m->buckets[bucket];
            it->next = it->e->next;
            return;
        }
    }
    it->e = it->next = NULL;
    it->bucket = m->nbuckets;
}

map_iter
map_first(const map *m)
{
    map_iter it = { 0, NULL, NULL };
    map_seek(m, &it, 0);
    return it;
}

void
map_next(const map *m, map_iter *it)
{
    if (it->next) {
        it->e = it->next;
        it->next = it->e->next;
        return;
    }
    map_seek(m, it, it->bucket + 1);
}
