/*
 * hash.c -- SHA-256 (OpenSSL EVP one-shot), hex and base64url codecs, and hash_u64.
 *
 * hash_u64 reads the input sixteen bytes at a time and folds each block into the
 * state with a 64x64->128-bit multiply whose halves are xored together ("fold"):
 * one multiply mixes every input bit into every output bit of the high half, so
 * a block costs a few cycles. The last 1..15 bytes are read as two overlapping
 * words (or three single bytes for very short keys), and the length is folded in
 * at the end so that "a" and "a\0" differ.
 *
 *   state = seed ^ K0
 *   for each 16-byte block (a, b):   state = fold((a ^ K1), (b ^ state ^ K2))
 *   tail (a, b):                     state = fold((a ^ K1), (b ^ state ^ K2))
 *   result = fold(state ^ K3, n ^ K0)
 */
#include "base/hash.h"

#include <openssl/evp.h>
#include <string.h>

#include "base/err.h"

int hash_sha256(const void *p, size_t n, uint8_t out[HASH_SHA256_LEN])
{
    unsigned int len = 0;
    if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) || len != HASH_SHA256_LEN)
        return ERR_INTERNAL;
    return 0;
}

size_t hash_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
    return 2 * n;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t hash_b64url(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = 0;
    return o;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long hash_b64url_decode(const char *s, size_t n, uint8_t *out)
{
    size_t len = n;
    if (n % 4 == 0 && n > 0 && s[n - 1] == '=') { /* optional padding, only when complete */
        len--;
        if (s[len - 1] == '=')
            len--;
    }
    if (len % 4 == 1)
        return ERR_INVALID;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return ERR_INVALID;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one canonical encoding per value */
        return ERR_INVALID;
    return (long)o;
}

#define K0 0x9e3779b97f4a7c15ull
#define K1 0xc2b2ae3d27d4eb4full
#define K2 0x165667b19e3779f9ull
#define K3 0xd6e8feb86659fd93ull

__extension__ typedef unsigned __int128 u128; /* GCC and clang on 64-bit targets */

static inline uint64_t fold(uint64_t a, uint64_t b)
{
    u128 r = (u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

uint64_t hash_u64(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ K0, a, b;
    size_t rem = n;
    while (rem > 16) {
        h = fold(rd64(p) ^ K1, rd64(p + 8) ^ h ^ K2);
        p += 16;
        rem -= 16;
    }
    if (rem >= 8) {
        a = rd64(p);
        b = rd64(p + rem - 8);
    } else if (rem >= 4) {
        a = rd32(p);
        b = rd32(p + rem - 4);
    } else if (rem > 0) {
        a = (uint64_t)p[0] << 16 | (uint64_t)p[rem / 2] << 8 | p[rem - 1];
        b = 0;
    } else {
        a = b = 0;
    }
    h = fold(a ^ K1, b ^ h ^ K2);
    return fold(h ^ K3, (uint64_t)n ^ K0);
}
