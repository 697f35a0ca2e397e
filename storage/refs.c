/*
 * The table of messages with two or more references (refs.h).
 *
 * Open addressing with linear probing; deletion shifts later members of
 * the probe run back instead of leaving tombstones, so a table that sees
 * many inserts and deletes over days never degrades. Load stays under
 * 3/4; the table shrinks again (at refs_keep) after a burst of fan-out.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/refs.h"
#include "storage/store.h"

enum { REFS_MIN_CAP = 1024 };

/* Message ids are sequential, so they need mixing before masking. */
static size_t
refs_hash(uint64_t id)
{
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id;
}

void
refs_init(refs *r)
{
    memset(r, 0, sizeof *r);
}

void
refs_free(refs *r)
{
    free(r->slots);
    free(r->undo);
    memset(r, 0, sizeof *r);
}

static refs_slot *
refs_find(const refs *r, uint64_t id)
{
    if (r->cap == 0)
        return NULL;
    size_t mask = r->cap - 1;
    for (size_t i = refs_hash(id) & mask;; i = (i + 1) & mask) {
        if (r->slots[i].count == 0)
            return NULL;
        if (r->slots[i].id == id)
            return &r->slots[i];
    }
}

uint32_t
refs_get(const refs *r, uint64_t id)
{
    const refs_slot *sl = refs_find(r, id);
    return sl != NULL ? sl->count : 0;
}

/* Inserts or updates; the caller made sure there is room. */
static void
refs_put(refs *r, uint64_t id, uint32_t count)
{
    size_t mask = r->cap - 1;
    size_t i = refs_hash(id) & mask;
    while (r->slots[i].count != 0 && r->slots[i].id != id)
        i = (i + 1) & mask;
    if (r->slots[i].count == 0)
        r->count++;
    r->slots[i].id = id;
    r->slots[i].count = count;
}

static void
refs_remove(refs *r, refs_slot *sl)
{
    size_t mask = r->cap - 1;
    size_t hole = (size_t)(sl - r->slots);
    r->slots[hole].count = 0;
    r->count--;
    /* Pull back every later member of the run whose home is at or before
     * the hole (cyclically), so lookups never stop early at it. */
    for (size_t j = (hole + 1) & mask; r->slots[j].count != 0; j = (j + 1) & mask) {
        size_t home = refs_hash(r->slots[j].id) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            r->slots[hole] = r->slots[j];
            r->slots[j].count = 0;
            hole = j;
        }
    }
}

static int
refs_rehash(refs *r, size_t cap)
{
    refs_slot *old = r->slots;
    size_t oldcap = r->cap;
    refs_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return STORE_ENOMEM;
    r->slots = slots;
    r->cap = cap;
    r->count = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].count != 0)
            refs_put(r, old[i].id, old[i].count);
    free(old);
    return 0;
}

/* Changes a count without logging it. */
static void
refs_apply(refs *r, uint64_t id, uint32_t count)
{
    if (count >= 2) {
        refs_put(r, id, count);
    } else {
        refs_slot *sl = refs_find(r, id);
        if (sl != NULL)
            refs_remove(r, sl);
    }
}

int
refs_set(refs *r, uint64_t id, uint32_t count)
{
    if (count < 2)
        count = 0;
    uint32_t old = refs_get(r, id);
    if (old == count)
        return 0;
    if (r->nundo == r->undocap) {
        size_t cap = r->undocap ? r->undocap * 2 : 256;
        refs_change *u = realloc(r->undo, cap * sizeof *u);
        if (u == NULL)
            return STORE_ENOMEM;
        r->undo = u;
        r->undocap = cap;
    }
    if (old == 0 && (r->count + 1) * 4 > r->cap * 3) {
        int rc = refs_rehash(r, r->cap ? r->cap * 2 : REFS_MIN_CAP);
        if (rc != 0)
            return rc;
    }
    r->undo[r->nundo].id = id;
    r->undo[r->nundo].old = old;
    r->nundo++;
    refs_apply(r, id, count);
    return 0;
}

void
refs_keep(refs *r)
{
    r->nundo = 0;
    /* A huge batch leaves a huge log; don't keep it for the small ones. */
    if (r->undocap > 65536) {
        free(r->undo);
        r->undo = NULL;
        r->undocap = 0;
    }
    if (r->cap > REFS_MIN_CAP && r->count * 8 < r->cap) {
        size_t cap = r->cap;
        while (cap > REFS_MIN_CAP && r->count * 8 < cap)
            cap /= 2;
        (void)refs_rehash(r, cap);   /* failing to shrink is harmless */
    }
}

void
refs_undo(refs *r)
{
    /* Capacity only grew since refs_keep, so every earlier state fits. */
    while (r->nundo > 0) {
        r->nundo--;
        refs_apply(r, r->undo[r->nundo].id, r->undo[r->nundo].old);
    }
}

void
refs_clear(refs *r)
{
    refs_free(r);
}
