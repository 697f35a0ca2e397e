/*
 * The few cryptographic primitives the broker needs outside TLS: the
 * digests of RabbitMQ's password hashing schemes, base64 for their text
 * form, random salts and a constant-time compare. libcrypto does the
 * work; this file and the TLS transport are the only ones that include
 * OpenSSL headers.
 */
#ifndef CONEY_BROKER_CRYPTO_H
#define CONEY_BROKER_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RabbitMQ's password hashing modules; the numbers are our record's. */
enum crypto_hash {
    CRYPTO_NONE = 0,               /* no password: PLAIN always fails */
    CRYPTO_SHA256 = 1,             /* rabbit_password_hashing_sha256 (the default) */
    CRYPTO_SHA512 = 2,             /* rabbit_password_hashing_sha512 */
    CRYPTO_MD5 = 3,                /* rabbit_password_hashing_md5 */
};
#define CRYPTO_MAX_DIGEST 64
#define CRYPTO_SALT_LEN 4

/* Digest size of h (0 for CRYPTO_NONE). */
size_t crypto_digest_len(enum crypto_hash h);
/* out = h(a || b); out has crypto_digest_len(h) bytes. */
void crypto_digest(enum crypto_hash h, const void *a, size_t alen, const void *b,
                   size_t blen, uint8_t *out);
/* Fills out with n unpredictable bytes; false if the kernel would not. */
bool crypto_random(void *out, size_t n);
/* Equal contents, in time independent of where they differ. */
bool crypto_equal(const void *a, const void *b, size_t n);

/* Standard base64 with padding. Encoding writes 4 * ((n + 2) / 3) chars
 * and a NUL. Decoding accepts the same (no line breaks); returns the
 * decoded length, or -1 if in is not base64 or does not fit cap. */
void crypto_b64_encode(const uint8_t *in, size_t n, char *out);
long crypto_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
