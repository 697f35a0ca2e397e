/*
 * Shared by the libFuzzer targets in tests/fuzz/: each defines
 * LLVMFuzzerTestOneInput and checks, beyond "no crash", that what a
 * decoder accepts an encoder can write back, and that decoding that
 * again gives the same bytes once more (encode . decode is idempotent).
 */
#ifndef CONEY_TESTS_FUZZ_H
#define CONEY_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broken: says which and aborts, so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                           \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Two encodings that must be equal; hexdumps both on mismatch. */
static inline void
fuzz_same(const char *what, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
        return;
    fprintf(stderr, "fuzz: %s: re-encoding differs (%zu vs %zu octets)\n", what, alen, blen);
    for (size_t i = 0; i < alen && i < 256; i++)
        fprintf(stderr, "%02x%s", a[i], i % 32 == 31 ? "\n" : "");
    fprintf(stderr, "\n--\n");
    for (size_t i = 0; i < blen && i < 256; i++)
        fprintf(stderr, "%02x%s", b[i], i % 32 == 31 ? "\n" : "");
    fprintf(stderr, "\n");
    abort();
}

/* malloc that never returns NULL (0 octets gives a valid pointer). */
static inline void *
fuzz_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

#endif
