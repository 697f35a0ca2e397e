/* A hash map from byte strings to pointers (names of queues, exchanges,
 * consumer tags). Keys are borrowed: the caller keeps the key's bytes alive
 * while the entry exists, normally because the key lives in the value. */
#ifndef CONEY_BROKER_MAP_H
#define CONEY_BROKER_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct map_entry {
    const char *key;
    uint32_t len;
    uint32_t hash;
    void *value;
    struct map_entry *next;
} map_entry;

typedef struct map {
    map_entry **buckets;
    size_t nbuckets;               /* a power of two, or 0 */
    size_t count;
} map;

void *map_get(const map *m, const char *key, uint32_t len);
/* Inserts or replaces; returns the previous value or NULL. */
void *map_put(map *m, const char *key, uint32_t len, void *value);
/* Removes; returns the removed value or NULL. */
void *map_del(map *m, const char *key, uint32_t len);
void map_free(map *m);

/* Iteration: for (map_iter it = map_first(m); it.e; map_next(m, &it)).
 * The current entry may be deleted during iteration; others may not. */
typedef struct map_iter {
    size_t bucket;
    map_entry *e, *next;
} map_iter;
map_iter map_first(const map *m);
void map_next(const map *m, map_iter *it);

uint32_t map_hash(const char *key, uint32_t len);

#endif
