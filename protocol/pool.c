/*
 * The decode pool: a bump allocator over a list of chunks. A frame's tables
 * are many small, short-lived arrays that all die together when the frame
 * is released, so one reset beats a free per array.
 */
#include <stdlib.h>
#include <string.h>

#include "protocol/amqp.h"

#define POOL_CHUNK_SIZE 8192

struct amqp_pool_chunk {
    struct amqp_pool_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];          /* the element type aligns the payload */
};

void *
amqp_pool_alloc(amqp_pool *pool, size_t size)
{
    const size_t align = _Alignof(max_align_t);

    if (size == 0)
        size = 1;                /* distinct, valid pointers even for 0 */
    if (size > SIZE_MAX - align)
        return NULL;
    size_t need = (size + align - 1) & ~(align - 1);

    struct amqp_pool_chunk *c = pool->head;
    if (c == NULL || need > c->size - c->used) {
        size_t cap = need > POOL_CHUNK_SIZE ? need : POOL_CHUNK_SIZE;
        if (cap > SIZE_MAX - sizeof *c)
            return NULL;
        struct amqp_pool_chunk *n = malloc(sizeof *n + cap);
        if (n == NULL)
            return NULL;
        n->size = cap;
        n->used = 0;
        /* An oversized chunk is used up at once; slot it behind the head
         * so the head's free space stays in use. */
        if (cap > POOL_CHUNK_SIZE && c != NULL) {
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            pool->head = n;
        }
        c = n;
    }
    char *p = (char *)c->data + c->used;
    c->used += need;
    memset(p, 0, size);
    return p;
}

void *
amqp_pool_dup(amqp_pool *pool, const void *src, size_t len)
{
    void *p = amqp_pool_alloc(pool, len);
    if (p != NULL && len > 0)
        memcpy(p, src, len);
    return p;
}

void
amqp_pool_reset(amqp_pool *pool)
{
    /* Keep one standard chunk so a reused pool does not malloc per frame;
     * oversized chunks go, or one huge frame would pin its memory. */
    struct amqp_pool_chunk *keep = NULL, *c = pool->head;
    while (c != NULL) {
        struct amqp_pool_chunk *next = c->next;
        if (keep == NULL && c->size == POOL_CHUNK_SIZE) {
            keep = c;
            keep->used = 0;
            keep->next = NULL;
        } else {
            free(c);
        }
        c = next;
    }
    pool->head = keep;
}

void
amqp_pool_free(amqp_pool *pool)
{
    struct amqp_pool_chunk *c = pool->head;
    while (c != NULL) {
        struct amqp_pool_chunk *next = c->next;
        free(c);
        c = next;
    }
    pool->head = NULL;
}
