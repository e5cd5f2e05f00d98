/*
 * tests/unit/hash.c -- SHA-256 against FIPS 180-2 vectors, hex and base64url against
 * RFC 4648 vectors, base64url decoding, and hash_u64 quality (no collisions on a
 * large key set, avalanche, seed and length sensitivity).
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "tap.h"

static void sha_is(const char *in, size_t n, const char *hex, const char *name)
{
    uint8_t d[HASH_SHA256_LEN];
    char h[HASH_HEX_LEN(HASH_SHA256_LEN) + 1] = "";
    if (hash_sha256(in, n, d) == 0)
        hash_hex(d, sizeof d, h);
    is_str(h, hex, "sha256 %s", name);
}

static void b64_is(const char *in, const char *want)
{
    char out[64];
    size_t n = hash_b64url((const uint8_t *)in, strlen(in), out);
    is_str(out, want, "base64url '%s'", in);
    is_int(n, HASH_B64URL_LEN(strlen(in)), "  length of '%s'", in);
    uint8_t back[64];
    long m = hash_b64url_decode(out, n, back);
    ok(m == (long)strlen(in) && memcmp(back, in, (size_t)m) == 0, "  decodes back");
}

static int popcount64(uint64_t x)
{
    int c = 0;
    for (; x; x &= x - 1)
        c++;
    return c;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    sha_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
    sha_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
    sha_is("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
           "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "448-bit message");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    sha_is(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
           "one million 'a'");
    free(million);

    uint8_t bytes[] = {0x00, 0x01, 0xab, 0xff};
    char hex[16];
    is_int(hash_hex(bytes, 4, hex), 8, "hex length");
    is_str(hex, "0001abff", "hex is lowercase, two digits per byte");

    b64_is("", "");
    b64_is("f", "Zg");
    b64_is("fo", "Zm8");
    b64_is("foo", "Zm9v");
    b64_is("foob", "Zm9vYg");
    b64_is("fooba", "Zm9vYmE");
    b64_is("foobar", "Zm9vYmFy");
    uint8_t url[] = {0xfb, 0xff, 0xbf};
    char o[8];
    hash_b64url(url, 3, o);
    is_str(o, "-_-_", "url-safe alphabet uses '-' and '_'");
    uint8_t d[HASH_SHA256_LEN];
    char b[HASH_B64URL_LEN(HASH_SHA256_LEN) + 1];
    hash_sha256("abc", 3, d);
    is_int(hash_b64url(d, sizeof d, b), 43, "sha256 as base64url is 43 chars");
    is_str(b, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", "sha256('abc') base64url");

    uint8_t back[16];
    is_int(hash_b64url_decode("Zm9vYg==", 8, back), 4, "padded input decodes");
    is_int(hash_b64url_decode("Zm9vYmE=", 8, back), 5, "single pad decodes");
    is_int(hash_b64url_decode("Zm9v+g", 6, back), ERR_INVALID, "'+' is not base64url");
    is_int(hash_b64url_decode("Zm9vY", 5, back), ERR_INVALID, "impossible length");
    is_int(hash_b64url_decode("Zh", 2, back), ERR_INVALID, "non-zero leftover bits refused");
    is_int(hash_b64url_decode("Zm=v", 4, back), ERR_INVALID, "'=' inside refused");
    is_int(hash_b64url_decode("Zg=", 3, back), ERR_INVALID, "incomplete padding refused");

    /* hash_u64 */
    const char *k = "Patient/123";
    ok(hash_u64(k, strlen(k), 0) == hash_u64(k, strlen(k), 0), "deterministic");
    ok(hash_u64(k, strlen(k), 0) != hash_u64(k, strlen(k), 1), "seed changes the hash");
    ok(hash_u64("a", 1, 0) != hash_u64("a\0", 2, 0), "length matters (trailing NUL)");
    ok(hash_u64("", 0, 0) != hash_u64("\0", 1, 0), "empty differs from one NUL");

    enum { N = 200000 };
    uint64_t *hs = malloc(N * sizeof *hs);
    for (int i = 0; i < N; i++) {
        char key[32];
        int len = snprintf(key, sizeof key, "Observation/obs-%d", i);
        hs[i] = hash_u64(key, (size_t)len, 42);
    }
    qsort(hs, N, sizeof *hs, cmp_u64);
    int dups = 0;
    for (int i = 1; i < N; i++)
        dups += hs[i] == hs[i - 1];
    is_int(dups, 0, "no collisions among %d similar keys", N);
    /* low bits spread evenly (what power-of-two tables use) */
    int buckets[256] = {0};
    for (int i = 0; i < N; i++) {
        char key[32];
        int len = snprintf(key, sizeof key, "k%d", i);
        buckets[hash_u64(key, (size_t)len, 7) & 255]++;
    }
    int minb = N, maxb = 0;
    for (int i = 0; i < 256; i++) {
        minb = buckets[i] < minb ? buckets[i] : minb;
        maxb = buckets[i] > maxb ? buckets[i] : maxb;
    }
    ok(minb > N / 256 * 8 / 10 && maxb < N / 256 * 12 / 10,
       "low 8 bits spread within 20%% of even (min %d, max %d)", minb, maxb);
    free(hs);

    /* avalanche: flipping one input bit flips about half the output bits */
    long flips = 0, trials = 0;
    int worst = 64;
    for (size_t len = 1; len <= 40; len++) {
        unsigned char in[40];
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len);
        uint64_t h0 = hash_u64(in, len, 3);
        for (size_t bit = 0; bit < len * 8; bit++) {
            in[bit / 8] ^= (unsigned char)(1u << bit % 8);
            int f = popcount64(h0 ^ hash_u64(in, len, 3));
            in[bit / 8] ^= (unsigned char)(1u << bit % 8);
            flips += f;
            trials++;
            worst = f < worst ? f : worst;
        }
    }
    double avg = (double)flips / (double)trials;
    ok(avg > 30.0 && avg < 34.0, "average output bits flipped per input bit: %.2f", avg);
    ok(worst >= 10, "no single-bit change flips fewer than 10 output bits (min %d)", worst);
    return tap_done();
}
