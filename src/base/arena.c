/*
 * arena.c -- chained-block bump allocator; see arena.h for the picture.
 */
#include "base/arena.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *prev;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(16) unsigned char data[];
} block;

struct arena {
    block *cur;
    block *first;
    size_t total; /* bytes handed out since reset */
    void *last;   /* most recent allocation, for arena_realloc in place */
};

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

/* Big blocks are kept for reuse by the thread that freed them (up to
 * ARENA_CACHE_BYTES): freed to malloc they were unmapped (or trimmed) and the next
 * request faulted them in again page by page, a tenth of the request threads' time in
 * transaction ingest. The cache is released when its thread ends. */
#define ARENA_CACHE_MIN (64u << 10)
#define ARENA_CACHE_BLOCKS 16
#define ARENA_CACHE_BYTES (8u << 20)
typedef struct block_cache {
    block *b[ARENA_CACHE_BLOCKS];
    size_t n, bytes;
} block_cache;
static __thread block_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_release(void *unused)
{
    (void)unused;
    for (size_t i = 0; i < cache.n; i++)
        free(cache.b[i]);
    cache.n = cache.bytes = 0;
}

static void cache_init(void)
{
    pthread_key_create(&cache_key, cache_release);
}

static void block_free(block *b)
{
    if (b->size >= ARENA_CACHE_MIN && cache.n < ARENA_CACHE_BLOCKS &&
        cache.bytes + b->size <= ARENA_CACHE_BYTES) {
        if (!cache.n) { /* the thread's exit must free what it keeps */
            pthread_once(&cache_once, cache_init);
            pthread_setspecific(cache_key, &cache);
        }
        cache.b[cache.n++] = b;
        cache.bytes += b->size;
        return;
    }
    free(b);
}

static block *block_new(size_t size, block *prev)
{
    if (size >= ARENA_CACHE_MIN)
        for (size_t i = 0; i < cache.n; i++) {
            block *c = cache.b[i];
            if (c->size >= size && c->size / 2 <= size) { /* not much larger than asked */
                cache.b[i] = cache.b[--cache.n];
                cache.bytes -= c->size;
                c->prev = prev;
                c->used = 0;
                return c;
            }
        }
    block *b = malloc(sizeof(block) + size);
    if (!b)
        return NULL;
    b->prev = prev;
    b->size = size;
    b->used = 0;
    return b;
}

arena *arena_new(size_t first)
{
    arena *a = malloc(sizeof *a);
    if (!a)
        return NULL;
    if (first == 0)
        first = 8192;
    a->first = a->cur = block_new(ALIGN16(first), NULL);
    if (!a->cur) {
        free(a);
        return NULL;
    }
    a->total = 0;
    a->last = NULL;
    return a;
}

void arena_free(arena *a)
{
    if (!a)
        return;
    block *b = a->cur;
    while (b) {
        block *p = b->prev;
        block_free(b);
        b = p;
    }
    free(a);
}

void arena_reset(arena *a)
{
    block *b = a->cur;
    while (b != a->first) {
        block *p = b->prev;
        block_free(b);
        b = p;
    }
    a->cur = a->first;
    a->first->used = 0;
    a->total = 0;
    a->last = NULL;
}

void *arena_alloc(arena *a, size_t n)
{
    size_t need = ALIGN16(n ? n : 1);
    if (need < n)
        return NULL; /* overflow */
    block *b = a->cur;
    if (b->size - b->used < need) {
        size_t sz = b->size * 2;
        if (sz > ARENA_MAX_BLOCK)
            sz = ARENA_MAX_BLOCK;
        if (sz < need)
            sz = need;
        b = block_new(sz, a->cur);
        if (!b)
            return NULL;
        a->cur = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    a->last = p;
    return p;
}

void *arena_zalloc(arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *arena_realloc(arena *a, void *p, size_t old_n, size_t new_n)
{
    if (!p)
        return arena_alloc(a, new_n);
    if (new_n <= old_n)
        return p;
    block *b = a->cur;
    if (p == a->last) {
        size_t start = (size_t)((unsigned char *)p - b->data);
        size_t need = ALIGN16(new_n);
        if (need >= new_n && start + need <= b->size) {
            a->total += need - (b->used - start);
            b->used = start + need;
            return p;
        }
    }
    void *q = arena_alloc(a, new_n);
    if (q)
        memcpy(q, p, old_n);
    return q;
}

size_t arena_used(const arena *a)
{
    return a->total;
}
