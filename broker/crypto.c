/* Digests, randomness and base64 from libcrypto (see crypto.h). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

#include "broker/crypto.h"

static const EVP_MD *
md_of(enum crypto_hash h)
{
    switch (h) {
    case CRYPTO_SHA256: return EVP_sha256();
    case CRYPTO_SHA512: return EVP_sha512();
    case CRYPTO_MD5: return EVP_md5();
    case CRYPTO_NONE: break;
    }
    return NULL;
}

size_t
crypto_digest_len(enum crypto_hash h)
{
    const EVP_MD *md = md_of(h);
    return md ? (size_t)EVP_MD_get_size(md) : 0;
}

void
crypto_digest(enum crypto_hash h, const void *a, size_t alen, const void *b, size_t blen,
              uint8_t *out)
{
    const EVP_MD *md = md_of(h);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned n = 0;
    if (!md || !ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, a, alen) != 1 || EVP_DigestUpdate(ctx, b, blen) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &n) != 1) {
        /* libcrypto failing on a digest is not something to limp on from */
        abort();
    }
    EVP_MD_CTX_free(ctx);
}

bool
crypto_random(void *out, size_t n)
{
    return getrandom(out, n, 0) == (ssize_t)n;
}

bool
crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void
crypto_b64_encode(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

long
crypto_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 != 0 || n / 4 * 3 > cap + 2)
        return -1;
    if (n == 0)
        return 0;
    uint8_t tmp[3 * 64];
    uint8_t *dst = n / 4 * 3 <= sizeof tmp ? tmp : NULL;
    if (!dst)
        return -1;
    int got = EVP_DecodeBlock(dst, (const unsigned char *)in, (int)n);
    if (got < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding's zero bytes too */
    if (in[n - 1] == '=')
        got--;
    if (in[n - 2] == '=')
        got--;
    if ((size_t)got > cap)
        return -1;
    memcpy(out, dst, (size_t)got);
    return got;
}
