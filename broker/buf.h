/* A growable byte buffer: input and output of connections. Bytes live in
 * data[off, len); consumers advance off, producers append at len. */
#ifndef CONEY_BROKER_BUF_H
#define CONEY_BROKER_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data;
    size_t off, len, cap;
} buf;

/* Pointer to n writable bytes at the end; the caller must then call
 * buf_commit with the number it wrote. Aborts if memory runs out: a
 * broker that cannot allocate a frame buffer has no useful way on. */
uint8_t *buf_reserve(buf *b, size_t n);
static inline void buf_commit(buf *b, size_t n) { b->len += n; }
void buf_append(buf *b, const void *src, size_t n);
static inline size_t buf_used(const buf *b) { return b->len - b->off; }
/* Drops n consumed bytes from the front. */
void buf_consume(buf *b, size_t n);
/* Moves unconsumed bytes to the front; frees memory of a big idle buffer. */
void buf_compact(buf *b);
void buf_free(buf *b);

/* Makes room for one more element at the end of an array whose live part
 * is base[*head .. *len) (head may be NULL: always 0). Slides the live part
 * to the front when more than half the array is dead, else doubles it, so
 * pushes stay amortised O(1) while the front is consumed. Returns the
 * (possibly moved) array; aborts if memory runs out. */
void *buf_array_room(void *base, size_t elem, size_t *head, size_t *len, size_t *cap);

#endif
