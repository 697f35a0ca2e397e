/*
 * Reference counts of stored messages, private to storage/.
 *
 * Almost every message sits in one queue, so the table holds only the
 * messages with two or more queue index entries: a stored message that is
 * absent here has exactly one. Ten million single-queue messages cost no
 * memory at all.
 *
 * The storage thread changes counts while it applies a batch; if the
 * write transaction then fails (map full, disk full), refs_undo puts the
 * counts back as they were at the last refs_keep, so the table always
 * matches what is committed.
 */
#ifndef CONEY_STORAGE_REFS_H
#define CONEY_STORAGE_REFS_H

#include <stddef.h>
#include <stdint.h>

typedef struct refs_slot {
    uint64_t id;
    uint32_t count;               /* 0 = empty slot, else >= 2 */
} refs_slot;

typedef struct refs_change {
    uint64_t id;
    uint32_t old;                 /* 0 = was absent */
} refs_change;

typedef struct refs {
    refs_slot *slots;             /* owned; capacity a power of two */
    size_t cap, count;
    refs_change *undo;            /* owned; changes since refs_keep */
    size_t nundo, undocap;
} refs;

void refs_init(refs *r);
void refs_free(refs *r);
/* The count held for id: 0 when absent (one reference if it exists). */
uint32_t refs_get(const refs *r, uint64_t id);
/* Sets id's count; below 2 removes it. Returns 0 or STORE_ENOMEM, in
 * which case nothing changed. */
int refs_set(refs *r, uint64_t id, uint32_t count);
/* Forgets the undo log: the changes are committed. */
void refs_keep(refs *r);
/* Reverts every change since the last refs_keep. */
void refs_undo(refs *r);
/* Empties the table and its undo log (recovery rebuilds it). */
void refs_clear(refs *r);

#endif
