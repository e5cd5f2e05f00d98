/*
 * testrand.h -- a deterministic pseudo-random source for the unit tests' robustness
 * loops (xorshift32, fixed seed): every run feeds the same inputs, so a failure
 * reproduces exactly.
 */
#ifndef HORTUS_TESTRAND_H
#define HORTUS_TESTRAND_H

#include <stdint.h>
#include <string.h>

static uint32_t rng_state = 2463534242u;

static inline uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Random text over `alphabet`, up to max-1 bytes, NUL-terminated; returns its length. */
static inline size_t random_text(char *dst, size_t max, const char *alphabet)
{
    size_t n = rng() % max, na = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        dst[i] = alphabet[rng() % na];
    dst[n] = '\0';
    return n;
}

#endif
