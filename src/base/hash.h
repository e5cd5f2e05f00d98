/*
 * hash.h -- content hashes (SHA-256 through OpenSSL), their text encodings, and a
 * fast non-cryptographic 64-bit hash for in-memory hash tables.
 *
 *   hash_sha256 -> 32 bytes -> hash_hex    "ba7816bf8f01cfea..."  (64 chars)
 *                           -> hash_b64url "ungWv48Bz-pBQUDeXa4i..." (43 chars)
 *
 * SHA-256 is what versions are keyed by in the store (DESIGN.md section 5); base64url
 * without padding is the compact form for ETags, ids and URLs. hash_u64 is for
 * hash tables only: it is fast and well mixed but not collision-resistant against
 * an attacker who knows the seed, so tables fed by client input use a random seed.
 *
 * Nothing here allocates; outputs go to caller storage.
 */
#ifndef HORTUS_HASH_H
#define HORTUS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SHA256_LEN 32
#define HASH_HEX_LEN(n) ((n)*2)              /* chars, without the NUL */
#define HASH_B64URL_LEN(n) (((n)*4 + 2) / 3) /* chars, without the NUL (no padding) */

/* SHA-256 of p[0..n) into out. Returns 0, or ERR_INTERNAL if OpenSSL fails. */
int hash_sha256(const void *p, size_t n, uint8_t out[HASH_SHA256_LEN]);

/* Lowercase hex of p[0..n) into out (HASH_HEX_LEN(n) + 1 bytes, NUL-terminated).
 * Returns the number of chars written (without the NUL). */
size_t hash_hex(const uint8_t *p, size_t n, char *out);

/* RFC 4648 section 5 base64url of p[0..n) without '=' padding into out
 * (HASH_B64URL_LEN(n) + 1 bytes, NUL-terminated). Returns the chars written. */
size_t hash_b64url(const uint8_t *p, size_t n, char *out);

/* Decode base64url (padding optional) from s[0..n) into out (room for n * 3 / 4
 * bytes). Returns the number of bytes, or ERR_INVALID on a character outside the
 * alphabet, a misplaced '=', or a length that no encoding produces. */
long hash_b64url_decode(const char *s, size_t n, uint8_t *out);

/* Fast 64-bit hash of p[0..n) for hash tables; a different seed gives an unrelated
 * function. Stable across runs and machines of the same endianness. */
uint64_t hash_u64(const void *p, size_t n, uint64_t seed);

#endif
