#include "broker/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN 4096
#define BUF_SHRINK 1048576   /* an empty buffer above this gives memory back */

uint8_t *
buf_reserve(buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    if (b->off > 0 && b->cap - buf_used(b) >= n) {
        buf_compact(b);
        if (b->cap - b->len >= n)
            return b->data + b->len;
    }
    size_t want = buf_used(b) + n;
    size_t cap = b->cap ? b->cap : BUF_MIN;
    while (cap < want)
        cap *= 2;
    uint8_t *d = malloc(cap);
    if (!d) {
        fprintf(stderr, "coney: out of memory (%zu bytes)\n", cap);
        abort();
    }
    if (b->data) {
        memcpy(d, b->data + b->off, buf_used(b));
        free(b->data);
    }
    b->len = buf_used(b);
    b->off = 0;
    b->data = d;
    b->cap = cap;
    return b->data + b->len;
}

void
buf_append(buf *b, const void *src, size_t n)
{
    if (n == 0)
        return;                    /* src may be NULL then (an empty buf) */
    memcpy(buf_reserve(b, n), src, n);
    b->len += n;
}

void
buf_consume(buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void
buf_compact(buf *b)
{
    if (b->off == b->len && b->cap > BUF_SHRINK) {
        buf_free(b);
        return;
    }
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, buf_used(b));
    b->len -= b->off;
    b->off = 0;
}

void
buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void *
buf_array_room(void *base, size_t elem, size_t *head, size_t *len, size_t *cap)
{
    if (*len < *cap)
        return base;
    size_t h = head ? *head : 0;
    if (h > *cap / 2) {
        memmove(base, (char *)base + h * elem, (*len - h) * elem);
        *len -= h;
        *head = 0;
        return base;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = realloc(base, ncap * elem);
    if (!n) {
        fprintf(stderr, "coney: out of memory (%zu bytes)\n", ncap * elem);
        abort();
    }
    *cap = ncap;
    return n;
}
